"""The controller against a real redis-server, without QEMU: the registry and
the ts:* streams are written here the way the agents write them (same keys,
same fields), so that every view, rule and error path of the controller can
be checked exactly and quickly. The closed loop with real agents, guests and
live migrations is in test_controller_cluster.py.
"""
import json
import os
import signal
import subprocess
import threading
import time
import http.client

import pytest

from conftest import BIN, Registry, now_ms, wait_for


def events(r, type=None):
    out = []
    for eid, f in r.xrange("events"):
        if type is None or f.get("type") == type:
            out.append(dict(f, id=eid))
    return out


@pytest.fixture
def setup(registry_controller):
    return registry_controller


def hot_cluster(reg):
    """h0 CPU-hot with vm a (busy) and b; h1 idle and roomy."""
    reg.host("h0", cpu=2)
    reg.host("h1", cpu=4)
    reg.vm("a", "h0", cpu=1, mem=512)
    reg.vm("b", "h0", cpu=1, mem=512)
    reg.samples("host", "h0", 10, cpu=0.95, mem=0.2, net=0.01)
    reg.samples("host", "h1", 10, cpu=0.05, mem=0.1, net=0.0)
    reg.samples("vm", "a", 10, cpu=0.97, mem=0.5, net=0.0)
    reg.samples("vm", "b", 10, cpu=0.9, mem=0.5, net=0.0)


# --------------------------------------------------------------------------- views


def test_views_show_hosts_vms_profiles_series_and_histograms(setup):
    r, reg, start = setup
    hot_cluster(reg)
    reg.vm("c", "h1", cpu=2, mem=2048, pin="h0,h1", group="web", anti_group="db", exclude="1")
    reg.samples("vm", "c", 10, cpu=0.25, mem=0.5, net=0.002)
    c = start(**{"controller.mode": "off"})
    wait_for(lambda: c.get("/v1/cluster")["round"] >= 2, 10, "two rounds")

    cl = c.get("/v1/cluster")
    assert cl["id"] == "c1" and cl["leader"] and cl["leader_id"] == "c1", cl
    assert cl["mode"] == "off" and cl["redis"] == "up", cl
    assert cl["hosts"] == {"total": 2, "up": 2, "down": 0, "maintenance": 0}, cl
    assert cl["vms"] == 3 and cl["hotspots"] == ["h0"], cl

    hosts = {h["id"]: h for h in c.get("/v1/hosts")["hosts"]}
    h0 = hosts["h0"]
    assert h0["state"] == "up" and h0["cap"] == {"cpu": 2, "mem": 8192, "net": 1000}, h0
    assert h0["util"]["cpu"] == pytest.approx(0.95) and h0["peak"]["cpu"] == pytest.approx(0.95)
    assert h0["hot"] == {"cpu": True, "mem": False, "net": False} and h0["hotspot"], h0
    assert sorted(h0["vms"]) == ["a", "b"] and h0["samples"] == 10, h0
    # volume = 1/(1-0.95) * 1/(1-0.2) * 1/(1-0.01)
    assert h0["volume"] == pytest.approx(1 / 0.05 / 0.8 / 0.99, rel=1e-6), h0
    assert not hosts["h1"]["hotspot"] and hosts["h1"]["vms"] == ["c"]

    one = c.get("/v1/hosts/h0")
    assert one["profile"]["cpu"]["n"] == 10 and one["profile"]["cpu"]["hot"], one["profile"]
    assert one["profile"]["mem"]["p95"] == pytest.approx(0.2), one["profile"]

    vm = c.get("/v1/vms/c")
    assert vm["host"] == "h1" and vm["reachable"] and vm["state"] == "running", vm
    assert vm["rules"] == {"pin": ["h0", "h1"], "group": "web", "anti_group": "db",
                           "exclude": True, "automation": "auto", "source": "domain",
                           "by": None, "ts": 0}, vm
    assert vm["demand"]["cpu"] == pytest.approx(0.5) and vm["demand"]["mem"] == pytest.approx(1024)
    assert vm["demand"]["net"] == pytest.approx(2.0), vm  # 0.002 of 1000 Mbit/s
    assert not vm["migrating"] and vm["migration"] is None, vm
    assert sorted(v["id"] for v in c.get("/v1/vms")["vms"]) == ["a", "b", "c"]

    s = c.get("/v1/hosts/h0/series?fields=cpu,mem&since=60&points=10")
    assert not s["downsampled"] and len(s["t"]) == 10 and s["t"] == sorted(s["t"]), s
    assert s["values"]["cpu"] == pytest.approx([0.95] * 10) and set(s["values"]) == {"cpu", "mem"}
    s = c.get("/v1/vms/a/series?since=60&points=10&fields=cpu,nosuchfield")
    assert s["values"]["nosuchfield"] == [None] * len(s["t"]), s
    reg.samples("host", "h0", 40, cpu=0.5, mem=0.2, net=0.0)
    s = c.get("/v1/hosts/h0/series?fields=cpu&since=3600&points=10")
    assert s["downsampled"] and len(s["t"]) <= 10 and s["step_ms"] >= 4000, s
    assert 0.5 <= min(s["values"]["cpu"]) and max(s["values"]["cpu"]) <= 0.95, s

    hist = c.get("/v1/vms/a/histogram")
    assert hist["bins"] == 20 and len(hist["edges"]) == 21 and hist["n"] == 10, hist
    assert hist["counts"]["cpu"][19] == 10 and sum(hist["counts"]["mem"]) == 10, hist
    assert hist["counts"]["mem"][10] == 10, hist  # 0.5 falls in [0.50, 0.55)


def test_plan_preview_names_the_vm_the_target_and_the_reason(setup):
    r, reg, start = setup
    hot_cluster(reg)
    c = start(**{"controller.mode": "off"})
    wait_for(lambda: c.get("/v1/plan")["actions"], 10, "a planned action")
    p = c.get("/v1/plan")
    assert p["mode"] == "off" and len(p["actions"]) == 1, p
    a = p["actions"][0]
    assert a["kind"] == "move" and a["from"] == "h0" and a["to"] == "h1" and a["res"] == "cpu", a
    assert a["vm"] in ("a", "b") and a["reason"], a
    assert a["src_vol_after"] < a["src_vol_before"], a
    # off: nothing logged, nothing moved
    time.sleep(1.5)
    assert not events(r, "recommend") and not events(r, "migration_started")


def test_recommend_mode_logs_the_plan_once_and_moves_nothing(setup):
    r, reg, start = setup
    hot_cluster(reg)
    c = start(**{"controller.mode": "recommend"})
    wait_for(lambda: events(r, "recommend"), 10, "a recommend event")
    time.sleep(2)  # several more rounds: the same plan is not logged again
    rec = events(r, "recommend")
    assert len(rec) == 1, rec
    e = rec[0]
    assert e["from"] == "h0" and e["to"] == "h1" and e["vm"] in ("a", "b"), e
    assert e["res"] == "cpu" and e["mode"] == "recommend" and e["by"] == "controller:c1", e
    assert float(e["src_vol_after"]) < float(e["src_vol_before"]), e
    hot = events(r, "hotspot")
    assert [(x["host"], x["res"]) for x in hot] == [("h0", "cpu")], hot
    assert not events(r, "migration_started"), "recommend mode must not move anything"
    assert r.smembers("vms_in_host:h0") == {"a", "b"}
    # the JSON-lines decision log has the same entries
    types = [d["type"] for d in c.decisions()]
    assert "recommend" in types and "hotspot" in types, types
    d = next(d for d in c.decisions() if d["type"] == "recommend")
    assert d["id"] == e["id"] and d["reason"] == e["reason"], (d, e)

    # the load goes away: the hotspot clears and is logged with its length
    reg.samples("host", "h0", 6, cpu=0.1, mem=0.2, net=0.0)
    wait_for(lambda: events(r, "hotspot_cleared"), 10, "hotspot_cleared")
    cl = events(r, "hotspot_cleared")[0]
    assert cl["host"] == "h0" and float(cl["hot_s"]) > 0, cl


def test_unresolvable_hotspot_is_logged_with_why(setup):
    r, reg, start = setup
    reg.host("h0", cpu=2)
    reg.host("h1", cpu=2)
    reg.vm("a", "h0", cpu=1, mem=512, exclude="1")
    reg.vm("b", "h0", cpu=1, mem=512, pin="h0")
    for h in ("h0", "h1"):
        reg.samples("host", h, 10, cpu=0.95 if h == "h0" else 0.1, mem=0.1, net=0)
    c = start(**{"controller.mode": "auto"})
    wait_for(lambda: events(r, "unresolved"), 10, "an unresolved event")
    u = events(r, "unresolved")[0]
    assert u["host"] == "h0" and u["why"] in ("no_movable_vm", "rule"), u
    assert u["reason"], u
    time.sleep(1.5)
    assert len(events(r, "unresolved")) == 1, "the same why is logged once"
    assert not events(r, "migration_started")
    assert c.get("/v1/plan")["unresolved"][0]["host"] == "h0"


# --------------------------------------------------------------------------- hosts


def test_a_host_without_heartbeat_goes_down_and_comes_back(setup):
    r, reg, start = setup
    hot_cluster(reg)
    c = start(**{"controller.mode": "recommend"})
    stop = threading.Event()
    beating = ["h0"]

    def beat():  # h0 keeps reporting, h1 stops (until it is put back)
        while not stop.is_set():
            reg.heartbeat(*beating)
            time.sleep(0.3)
    t = threading.Thread(target=beat, daemon=True)
    t.start()
    try:
        wait_for(lambda: r.hget("host_config:h1", "state") == "down", 10, "h1 down")
        d = events(r, "host_down")
        assert [x["host"] for x in d] == ["h1"] and float(d[0]["age_s"]) >= 3, d
        assert r.hget("host_config:h0", "state") == "up"
        wait_for(lambda: c.get("/v1/hosts/h1")["state"] == "down", 5, "h1 down in the API")
        # a down host is no target: the plan has no move to it
        wait_for(lambda: not c.get("/v1/plan")["actions"], 5, "no action to a down host")
        assert c.get("/v1/vms/a")["reachable"], "a runs on h0, which is up"
        reg.vm("z", "h1", cpu=1, mem=256)
        wait_for(lambda: c.http("GET", "/v1/vms/z")[1].get("state") == "unreachable", 5,
                 "z unreachable")
        assert not c.get("/v1/vms/z")["reachable"]
        assert r.exists("vm_configs:z"), "a down host's VMs are never deleted"
        # its heartbeat comes back
        beating.append("h1")
        wait_for(lambda: r.hget("host_config:h1", "state") == "up", 10, "h1 up again")
        assert [x["host"] for x in events(r, "host_up")] == ["h1"]
        assert not r.hexists("host_config:h1", "down_by")
    finally:
        stop.set()
        t.join()


def test_maintenance_on_and_off_through_the_api(setup):
    r, reg, start = setup
    hot_cluster(reg)
    c = start(**{"controller.mode": "recommend"})
    wait_for(lambda: c.get("/v1/cluster")["round"] >= 1, 10, "a round")
    st, j = c.http("PUT", "/v1/hosts/h1/maintenance", {"on": True})
    assert st == 200 and j == {"host": "h1", "state": "maintenance"}, j
    assert r.hget("host_config:h1", "state") == "maintenance"
    assert c.get("/v1/hosts/h1")["state"] == "maintenance"
    wait_for(lambda: c.get("/v1/cluster")["hosts"]["maintenance"] == 1, 5, "maintenance count")
    # h1 is no target now: the hot h0 has nowhere to go
    wait_for(lambda: not c.get("/v1/plan")["actions"], 5, "no move into maintenance")
    st, j = c.http("PUT", "/v1/hosts/h1/maintenance", {"on": False})
    assert st == 200 and j["state"] == "up", j
    assert r.hget("host_config:h1", "state") == "up"
    wait_for(lambda: c.get("/v1/plan")["actions"], 5, "h1 a target again")
    assert [e["type"] for e in events(r) if e["type"].startswith("maintenance")] == \
        ["maintenance_on", "maintenance_off"]


# --------------------------------------------------------------------------- leader


def test_two_controllers_one_leader_and_failover_within_the_lease(redis_server,
                                                                 controller_factory):
    r = redis_server.client()
    Registry(r).host("h0")
    s = {"controller.mode": "recommend", "controller.round_ms": "300",
         "controller.lease_ms": "2000"}
    a = controller_factory(redis_server.address, settings=s, name="ca")
    wait_for(lambda: a.get("/v1/cluster")["leader"], 10, "ca leader")
    b = controller_factory(redis_server.address, settings=s, name="cb")
    wait_for(lambda: b.get("/v1/cluster")["leader_id"] == "ca", 10, "cb sees ca")
    assert not b.get("/v1/cluster")["leader"]
    st, j = b.http("PUT", "/v1/hosts/h0/maintenance", {"on": True})
    assert st == 503 and j["error"]["code"] == "not_leader", j
    assert "ca" in j["error"]["message"] and f"127.0.0.1:{a.port}" in j["error"]["message"], j
    assert r.hget("host_config:h0", "state") == "up"

    a.kill()
    t0 = time.monotonic()
    wait_for(lambda: b.get("/v1/cluster")["leader"], 10, "cb takes over")
    took = time.monotonic() - t0
    print(f"\nfailover after SIGKILL of the leader: {took:.2f} s (lease 2 s, round 0.3 s)")
    assert took < 2.0 + 0.3 * 2 + 0.5, took
    assert r.get("leader") == "cb"
    assert [e["by"] for e in events(r, "leader_acquired")] == ["controller:ca", "controller:cb"]
    b.stop()
    assert r.get("leader") is None, "a leader that stops cleanly gives the lease back"
    r.close()


# --------------------------------------------------------------------------- events


def test_events_query_long_poll_and_server_sent_events(setup):
    r, reg, start = setup
    reg.host("h0")
    c = start(**{"controller.mode": "off"})
    for i in range(5):
        r.xadd("events", {"type": "vm_created", "host": "h0", "vm": f"v{i}", "ts": now_ms(),
                          "msg": "launched"})
    j = c.get("/v1/events?count=3&type=vm_created")
    assert [e["vm"] for e in j["events"]] == ["v2", "v3", "v4"], j
    assert j["last"] == j["events"][-1]["id"] and isinstance(j["events"][0]["ts"], int)
    assert [e["vm"] for e in c.get("/v1/events?vm=v1")["events"]] == ["v1"]
    last = j["last"]
    assert c.get(f"/v1/events?after={last}")["events"] == []

    # a long poll returns as soon as something is newer
    def later():
        time.sleep(0.7)
        r.xadd("events", {"type": "vm_deleted", "vm": "v9", "ts": now_ms()})
    threading.Thread(target=later, daemon=True).start()
    t0 = time.monotonic()
    j = c.get(f"/v1/events?after={last}&wait=10")
    took = time.monotonic() - t0
    assert [e["vm"] for e in j["events"]] == ["v9"] and 0.5 < took < 5, (j, took)

    # server-sent events
    conn = http.client.HTTPConnection(c.ip, c.port, timeout=10)
    conn.request("GET", "/v1/events/stream", headers={"Authorization": "Bearer " + c.token})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
    r.xadd("events", {"type": "vm_created", "vm": "sse1", "ts": now_ms()})
    got = b""
    deadline = time.monotonic() + 8
    try:
        while b"sse1" not in got and time.monotonic() < deadline:
            got += resp.fp.read1(4096)
    except OSError as e:
        pytest.fail(f"the stream stalled ({e}); got {got!r}")
    conn.close()
    text = got.decode()
    assert "event: vm_created\n" in text and '"vm":"sse1"' in text, text
    block = text[text.index("id: "):]
    eid = block.split("\n", 1)[0][4:]
    assert r.xrange("events", eid, eid)[0][1]["vm"] == "sse1", block


def test_metrics_count_rounds_decisions_and_hosts(setup):
    r, reg, start = setup
    hot_cluster(reg)
    c = start(**{"controller.mode": "recommend"})
    wait_for(lambda: events(r, "recommend"), 10, "a recommendation")
    st, text = c.http("GET", "/metrics", raw=True)
    assert st == 200
    m = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            m[k] = float(v)
    assert m["loadease_controller_rounds_total"] >= 1
    assert m["loadease_controller_leader"] == 1 and m["loadease_controller_redis_up"] == 1
    assert m['loadease_controller_hosts{state="up"}'] == 2
    assert m["loadease_controller_vms"] == 2 and m["loadease_controller_hotspots"] == 1
    assert m['loadease_controller_decisions_total{type="recommend"}'] == 1
    assert m['loadease_controller_decisions_total{type="hotspot"}'] == 1
    assert m['loadease_controller_migrations_total{result="done"}'] == 0


# --------------------------------------------------------------------------- bad input


def test_bad_requests_get_clear_errors_and_change_nothing(setup):
    r, reg, start = setup
    hot_cluster(reg)
    c = start(**{"controller.mode": "off", "controller.read_token": "reader"})
    wait_for(lambda: c.get("/v1/cluster")["round"] >= 1, 10, "a round")
    before = {k: r.dump(k) for k in r.keys("*") if not k.startswith(("ts:", "events", "leader",
                                                                     "controller:"))}
    cases = [
        # (method, path, body, token, status, code)
        ("GET", "/v1/hosts", None, None, 401, "unauthorized"),
        ("GET", "/v1/hosts", None, "wrong", 401, "unauthorized"),
        ("PUT", "/v1/hosts/h0/maintenance", {"on": True}, "reader", 403, "forbidden"),
        ("PUT", "/v1/hosts/h0/maintenance", {"on": True}, None, 401, "unauthorized"),
        ("PUT", "/v1/hosts/h0/maintenance", "{not json", True, 400, None),
        ("PUT", "/v1/hosts/h0/maintenance", {"on": "yes"}, True, 400, "bad_request"),
        ("PUT", "/v1/hosts/h0/maintenance", {"on": True, "x": 1}, True, 400, "bad_request"),
        ("PUT", "/v1/hosts/h0/maintenance", [], True, 400, None),
        ("PUT", "/v1/hosts/nosuch/maintenance", {"on": True}, True, 404, "not_found"),
        ("PUT", "/v1/hosts/-bad/maintenance", {"on": True}, True, 400, "bad_id"),
        ("GET", "/v1/hosts/nosuch", None, "reader", 404, "not_found"),
        ("GET", "/v1/vms/nosuch", None, "reader", 404, "not_found"),
        ("GET", "/v1/vms/a/nosuch", None, "reader", 404, "not_found"),
        ("GET", "/v1/nosuch", None, "reader", 404, "not_found"),
        ("GET", "/v2/hosts", None, "reader", 404, "not_found"),
        ("DELETE", "/v1/hosts/h0", None, True, 405, "method_not_allowed"),
        ("GET", "/v1/hosts/h0/series?since=-1", None, "reader", 400, "bad_query"),
        ("GET", "/v1/hosts/h0/series?points=9", None, "reader", 400, "bad_query"),
        ("GET", "/v1/hosts/h0/series?points=abc", None, "reader", 400, "bad_query"),
        ("GET", "/v1/hosts/h0/series?fields=a;b", None, "reader", 400, "bad_query"),
        ("GET", "/v1/hosts/h0/series?fields=", None, "reader", 400, "bad_query"),
        ("GET", "/v1/events?count=0", None, "reader", 400, "bad_query"),
        ("GET", "/v1/events?wait=31", None, "reader", 400, "bad_query"),
        ("GET", "/v1/events?after=abc", None, "reader", 400, "bad_query"),
        ("POST", "/v1/vms", {"mem_mib": 256}, True, 400, "bad_request"),
        ("POST", "/v1/vms", {"name": "x y", "mem_mib": 256}, True, 400, "bad_request"),
        ("POST", "/v1/vms", {"name": "n1", "mem_mib": -1}, True, 400, "bad_request"),
        ("POST", "/v1/vms", {"name": "n1", "mem_mib": 256, "vcpus": "2"}, True, 400, "bad_request"),
        ("POST", "/v1/vms", {"name": "n1", "mem_mib": 256, "host": 3}, True, 400, "bad_request"),
        ("POST", "/v1/vms", {"name": "n1", "mem_mib": 256, "host": "nosuch"}, True, 404,
         "not_found"),
        ("POST", "/v1/vms", {"name": "n1", "mem_mib": 256, "pin": ["nosuch"]}, True, 400,
         "bad_request"),
        ("POST", "/v1/vms", {"name": "a", "mem_mib": 256}, True, 409, "exists"),
        ("POST", "/v1/vms", {"name": "n1", "mem_mib": 1 << 40}, True, 409, "no_host"),
        ("POST", "/v1/vms/a/migrate", {"to": 5}, True, 400, "bad_request"),
        ("POST", "/v1/vms/a/migrate", {"to": "h1", "when": "now"}, True, 400, "bad_request"),
        ("POST", "/v1/vms/a/migrate", {"force": "yes"}, True, 400, "bad_request"),
        ("POST", "/v1/vms/a/migrate", {"wait": "no"}, True, 400, "bad_request"),
        ("POST", "/v1/vms/a/migrate", {"to": "h0"}, True, 409, "same_host"),
        ("POST", "/v1/vms/a/migrate", {"to": "nosuch"}, True, 404, "not_found"),
        ("POST", "/v1/vms/nosuch/migrate", {}, True, 404, "not_found"),
        ("DELETE", "/v1/vms/nosuch", None, True, 404, "not_found"),
        ("GET", "/ui/../../etc/passwd", None, None, 404, "not_found"),
        ("GET", "/ui/.hidden", None, None, 404, "not_found"),
        ("GET", "/", None, None, 404, "not_found"),  # no web_root configured
    ]
    for method, path, body, token, status, code in cases:
        st, j = c.http(method, path, body, token=token)
        assert st == status, f"{method} {path} {body!r}: {st} {j}"
        assert isinstance(j, dict) and j["error"]["message"], f"{method} {path}: {j}"
        if code:
            assert j["error"]["code"] == code, f"{method} {path}: {j}"
    # the 409 of placement says what blocked each host
    st, j = c.http("POST", "/v1/vms", {"name": "n1", "mem_mib": 1 << 40})
    assert j["error"]["blocks"] == {"h0": "overcommit", "h1": "overcommit"}, j
    big = 1 << 40
    assert j["error"]["hosts"] == {
        "h0": f"mem allocated 1024 + {big} MiB of the VM > 8192 MiB allowed "
              "(8192 MiB x 1 overcommit)",
        "h1": f"mem allocated 0 + {big} MiB of the VM > 8192 MiB allowed "
              "(8192 MiB x 1 overcommit)"}, j
    # a body over the limit
    st, j = c.http("POST", "/v1/vms", "x" * (2 << 20))
    assert st == 413, (st, j)
    after = {k: r.dump(k) for k in r.keys("*") if not k.startswith(("ts:", "events", "leader",
                                                                    "controller:"))}
    assert after == before, "a refused call changed the registry"
    assert c.alive()
    # reads with the read-only token work
    st, j = c.http("GET", "/v1/hosts", token="reader")
    assert st == 200 and len(j["hosts"]) == 2


def test_garbage_in_redis_is_skipped_not_fatal(setup):
    r, reg, start = setup
    reg.host("h0", cpu="lots", mem=-5, net="1e999", state="weird", last_seen="yesterday")
    reg.host("h1")
    r.sadd("host_ids", "bad id with spaces", "x" * 200)
    r.set("host_config:bad", "not a hash")
    reg.vm("v0", "h1", cpu="NaN", mem="abc", pin=",,nosuch,", last_migration="-3")
    r.sadd("vms_in_host:h1", "")
    r.hset("migration:v0", "phase", "\x00\xff")
    for val in ("nan", "-5", "1e999", "", "0.5x", "inf"):
        r.xadd("ts:host:h1", {"cpu": val, "mem": "0.1", "net": "0"})
    r.xadd("ts:vm:v0", {"nothing": "here"})
    r.set("ts:host:h0", "a string, not a stream")
    c = start(**{"controller.mode": "auto"})
    wait_for(lambda: c.get("/v1/cluster")["round"] >= 3, 10, "three rounds")
    hosts = {h["id"]: h for h in c.get("/v1/hosts")["hosts"]}
    assert set(hosts) == {"h0", "h1"}, hosts
    assert hosts["h0"]["state"] == "down" and hosts["h0"]["cap"]["cpu"] == 0, hosts["h0"]
    assert hosts["h1"]["samples"] == 0 or hosts["h1"]["util"]["mem"] == pytest.approx(0.1)
    v = c.get("/v1/vms/v0")
    assert v["vcpus"] == 1 and v["mem_mib"] == 0 and v["rules"]["pin"] == ["nosuch"], v
    assert c.get("/v1/vms/v0/series")["t"] is not None
    st, _ = c.http("GET", "/v1/hosts/h0/series")
    assert st == 503  # WRONGTYPE from redis, said as such
    assert c.alive()


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("conf, msg", [
    ("[controller]\nmode = sometimes\n", "mode"),
    ("[controller]\nround_ms = 50\n", "round_ms"),
    ("[controller]\nround_ms = 2000\nlease_ms = 3000\n", "two rounds"),
    ("[controller]\nid = bad id\n", "controller.id"),
    ("[controller]\nnosuchkey = 1\n", "nosuchkey"),
    ("[profile]\nk = 6\nn = 5\n", "profile.k"),
    ("[controller]\ntoken_file = /nonexistent/token\n", "/nonexistent/token"),
    ("[controller]\nweb_root = /nonexistent/web\n", "web_root"),
    ("[balance]\noverride = x\n", "override"),
    ("[balance]\nobjective = tidy\n", "balance.objective"),
    ("[balance]\nobjective = pack\nrisk_target = 0\n", "balance.objective = pack needs"),
])
def test_bad_config_is_refused_with_the_reason(tmp_path, conf, msg):
    p = tmp_path / "c.ini"
    p.write_text(conf)
    r = subprocess.run([BIN, "controller", "-c", str(p), "--check"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert msg in r.stderr and "configuration" in r.stderr, r.stderr


def test_config_doc_lists_every_key():
    r = subprocess.run([BIN, "controller", "--config-doc"], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 0
    for key in ("controller.mode", "controller.round_ms", "controller.lease_ms",
                "controller.down_after_ms", "balance.max_per_round", "balance.cooldown_s",
                "profile.cpu_threshold", "redis.address", "balance.objective",
                "balance.resize"):
        assert f"`{key}`" in r.stdout, key
