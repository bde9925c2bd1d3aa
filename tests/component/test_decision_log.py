"""The decision log is honest, and /metrics passes `promtool check metrics`.

Against a real redis-server and `loadease controller` (the registry written
the way the agents write it, as in test_controller.py; the promtool test adds
a real agent with a real process and tap): every refused call appears once in
the `events` stream and in the JSON-lines file, with the caller (`by`), the
status and the reason with its figures; a manual migration appears once with
its projection; a standby writes nothing to Redis. The same with real agents,
guests and live migrations (one entry per migration, not one per writer, and
`vm create --force`) is in test_controller_cluster.py.
"""
import shutil
import subprocess
import threading
import time

import pytest

from conftest import register_vm, wait_for

CALLER = "admin@127.0.0.1"


def entries(r, type=None):
    return [dict(f, id=i) for i, f in r.xrange("events")
            if type is None or f.get("type") == type]


@pytest.fixture
def setup(registry_controller):
    return registry_controller


def small_cluster(reg):
    """h0 CPU-hot (vm a busy, b); h1 idle and roomy; h2 one core at 70 %
    (a soft limit for anything that uses CPU); h3 256 MiB (a hard limit for
    a VM of 512 MiB)."""
    reg.host("h0", cpu=2)
    reg.host("h1", cpu=4)
    reg.host("h2", cpu=1)
    reg.host("h3", cpu=4, mem=256)
    reg.vm("a", "h0", cpu=1, mem=512)
    reg.vm("b", "h0", cpu=1, mem=512)
    reg.samples("host", "h0", 10, cpu=0.95, mem=0.2, net=0.01)
    reg.samples("host", "h1", 10, cpu=0.05, mem=0.1, net=0.0)
    reg.samples("host", "h2", 10, cpu=0.7, mem=0.1, net=0.0)
    reg.samples("host", "h3", 10, cpu=0.0, mem=0.1, net=0.0)
    reg.samples("vm", "a", 10, cpu=0.97, mem=0.5, net=0.0)
    reg.samples("vm", "b", 10, cpu=0.9, mem=0.5, net=0.0)


def start_quiet(start, **s):
    """A leader in mode off (no plan acted on), hosts never marked down."""
    c = start(**{"controller.mode": "off", "controller.down_after_ms": 600000, **s})
    wait_for(lambda: c.get("/v1/cluster")["round"] >= 2 and c.get("/v1/cluster")["leader"],
             10, "two rounds as the leader")
    return c


SOFT_NEW = "cpu 0.70 + 0.50 of the VM > 0.75 threshold (0.7 + 0.5 > 0.75 cores)"
HARD_512 = "mem allocated 0 + 512 MiB of the VM > 256 MiB allowed (256 MiB x 1 overcommit)"
SOFT_A = "cpu 0.70 + 0.97 of the VM > 0.75 threshold (0.7 + 0.97 > 0.75 cores)"


def test_every_refusal_is_logged_once_with_the_caller_and_the_figures(setup):
    r, reg, start = setup
    small_cluster(reg)
    c = start_quiet(start)
    cases = [
        # (method, path, body, status, code, type, vm, host, [texts in the reason])
        ("POST", "/v1/vms", {"name": "n1", "mem_mib": 256, "host": "h2"}, 409, "blocked",
         "vm_place_refused", "n1", "h2",
         ["host h2 cannot take vm n1: " + SOFT_NEW, "a soft limit: \"force\": true"]),
        ("POST", "/v1/vms", {"name": "n2", "mem_mib": 512, "host": "h3", "force": True}, 409,
         "blocked", "vm_place_refused", "n2", "h3",
         ["host h3 cannot take vm n2: " + HARD_512, "a hard limit"]),
        ("POST", "/v1/vms", {"name": "n3", "mem_mib": 1 << 20}, 409, "no_host",
         "vm_place_refused", "n3", None,
         ["no host fits n3: 4 overcommit",
          f"h3: mem allocated 0 + {1 << 20} MiB of the VM > 256 MiB allowed"]),
        ("POST", "/v1/vms", {"name": "n4", "mem_mib": 256, "force": True}, 400, "bad_request",
         "vm_place_refused", "n4", None, ["force: needs \"host\""]),
        ("POST", "/v1/vms", {"name": "a", "mem_mib": 256}, 409, "exists",
         "vm_place_refused", "a", None, ["vm a exists already"]),
        ("POST", "/v1/vms/a/migrate", {"to": "h2"}, 409, "blocked", "migration_refused", "a",
         "h2", ["host h2 cannot take vm a: " + SOFT_A]),
        ("POST", "/v1/vms/a/migrate", {"to": "h3", "force": True}, 409, "blocked",
         "migration_refused", "a", "h3", ["host h3 cannot take vm a: " + HARD_512,
                                          "a hard limit"]),
        ("POST", "/v1/vms/a/migrate", {"to": "h0"}, 409, "same_host", "migration_refused", "a",
         "h0", ["vm a runs on h0 already"]),
        ("POST", "/v1/vms/a/migrate", {"to": "nosuch"}, 404, "not_found", "migration_refused",
         "a", "nosuch", ["no host nosuch"]),
        ("POST", "/v1/vms/a/migrate", {"when": "now"}, 400, "bad_request", "migration_refused",
         "a", None, ["migrate: the body is"]),
        ("DELETE", "/v1/vms/nosuch", None, 404, "not_found", "vm_delete_refused", "nosuch",
         None, ["no vm nosuch"]),
        ("PUT", "/v1/hosts/nosuch/maintenance", {"on": True}, 404, "not_found",
         "maintenance_refused", None, "nosuch", ["no host nosuch"]),
        ("PUT", "/v1/hosts/h1/maintenance", {"on": "yes"}, 400, "bad_request",
         "maintenance_refused", None, "h1", ["maintenance: the body is"]),
        ("POST", "/v1/vms/nosuch/resize", {"vcpus": 2}, 404, "not_found", "resize_refused",
         "nosuch", None, ["no vm nosuch"]),
        ("POST", "/v1/vms/a/resize", {"vcpus": "two"}, 400, "bad_request", "resize_refused",
         "a", None, ["resize: the body is"]),
    ]
    for method, path, body, status, code, type_, vm, host, texts in cases:
        before = {e["id"] for e in entries(r)}
        st, j = c.http(method, path, body)
        assert st == status and j["error"]["code"] == code, (method, path, body, st, j)
        msg = j["error"]["message"]
        for t in texts:
            assert t in msg, (path, body, t, msg)
        new = [e for e in entries(r) if e["id"] not in before and e["by"] != "controller:c1"]
        assert len(new) == 1, (path, body, new)
        e = new[0]
        assert e["type"] == type_ and e["by"] == CALLER and e["via"] == "controller:c1", e
        assert e["status"] == str(status) and e["code"] == code and e["reason"] == msg, e
        assert e.get("vm") == vm and e.get("host") == host, e
        # the JSON-lines file has the same entry, once
        same = [d for d in c.decisions() if d.get("id") == e["id"]]
        assert len(same) == 1 and same[0]["reason"] == msg and same[0]["by"] == CALLER, same
    # a refusal of a host named by the caller lists every host's figures too
    st, j = c.http("POST", "/v1/vms", {"name": "n1", "mem_mib": 256, "host": "h2"})
    assert j["error"]["hosts"]["h2"] == SOFT_NEW and j["error"]["hosts"]["h1"] == "ok", j
    # h3: 256 MiB allocatable, but 26 MiB in use + 256 passes its memory (hard)
    assert j["error"]["blocks"] == {"h0": "threshold", "h1": "ok", "h2": "threshold",
                                    "h3": "capacity"}, j
    assert j["error"]["hosts"]["h3"] == "mem used 26 + 256 MiB of the VM > 256 MiB of memory", j
    # a call without the token is not logged (anyone could flood the log)
    n = len(entries(r))
    st, _ = c.http("POST", "/v1/vms", {"name": "n9", "mem_mib": 64}, token=None)
    assert st == 401 and len(entries(r)) == n
    # the counters count them
    st, text = c.http("GET", "/metrics", raw=True)
    assert 'loadease_controller_decisions_total{type="migration_refused"} 5' in text, text
    assert c.alive()


def test_a_manual_migration_is_logged_once_with_its_projection(setup):
    """Forced past h2's soft threshold; the source's agent does not answer
    (nothing listens at its address), so it fails: one migration_started
    with the planner's projection, one migration_failed, both by the caller."""
    r, reg, start = setup
    small_cluster(reg)
    c = start_quiet(start)
    hosts = {h["id"]: h for h in c.get("/v1/hosts")["hosts"]}
    st, j = c.http("POST", "/v1/vms/a/migrate", {"to": "h2", "force": True})
    assert st == 502 and j["error"]["code"] == "migration_failed", j
    wait_for(lambda: entries(r, "migration_failed"), 5, "migration_failed")
    time.sleep(1)  # nothing else comes
    mig = [e for e in entries(r) if e["type"].startswith("migration")]
    assert [e["type"] for e in mig] == ["migration_started", "migration_failed"], mig
    s, f = mig
    for e in (s, f):
        assert e["by"] == CALLER and e["via"] == "controller:c1", e
        assert (e["vm"], e["from"], e["to"]) == ("a", "h0", "h2"), e
    assert s["kind"] == "manual", s
    assert "requested through the API, forced past a soft limit: " + SOFT_A in s["reason"], s
    # the projection: the volumes the hosts have now, and after the move
    assert float(s["src_vol_before"]) == pytest.approx(hosts["h0"]["volume"], rel=1e-3), s
    assert float(s["dst_vol_before"]) == pytest.approx(hosts["h2"]["volume"], rel=1e-3), s
    assert float(s["src_vol_after"]) < float(s["src_vol_before"]), s
    # h2: cpu 0.7 + 0.97 of its one core, clamped at 0.99: a volume of 100 x mem
    assert float(s["dst_vol_after"]) > 10 * float(s["dst_vol_before"]), s
    assert float(s["cost_s"]) > 0, s
    assert "h0 cpu 0.95 -> 0.4" in s["reason"] and "h2 cpu 0.70 -> 1.67" in s["reason"], s
    assert "unreachable" in f["msg"], f
    ids = [d["id"] for d in c.decisions() if d["type"].startswith("migration")]
    assert ids == [s["id"], f["id"]], ids


WRITES = {"SET", "SETNX", "SETEX", "PSETEX", "GETSET", "GETDEL", "HSET", "HSETNX", "HMSET",
          "HDEL", "HINCRBY", "DEL", "UNLINK", "SADD", "SREM", "SMOVE", "XADD", "XTRIM", "XDEL",
          "EXPIRE", "PEXPIRE", "PERSIST", "INCR", "INCRBY", "DECR", "RPUSH", "LPUSH", "ZADD",
          "RENAME", "FLUSHDB", "FLUSHALL", "EVALSHA", "FCALL", "COPY", "RESTORE"}


class Monitor:
    """Redis MONITOR on its own connection: every command any client sends."""

    def __init__(self, r):
        self.cmds, self.stop = [], False
        self.m = r.monitor()
        self.m.__enter__()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        for c in self.m.listen():
            self.cmds.append(c["command"])
            if self.stop:
                break

    def close(self, r):
        self.stop = True
        r.ping()  # one more command so that listen() returns
        self.t.join(5)
        self.m.__exit__(None, None, None)
        return self.cmds


def test_a_standby_writes_nothing(setup):
    """The lease is held by another controller (c0): c1 is a standby. It
    sees a hotspot, a host whose heartbeat stopped, a migration it did not
    start and a plan in recommend mode, all of which a leader logs or acts
    on; it must only read. When the lease is free it takes over and does."""
    r, reg, start = setup
    small_cluster(reg)
    reg.host("h4", last_seen=1000)  # no heartbeat for 55 years
    reg.vm("m", "h1", cpu=1, mem=256)  # migrating, started by someone else
    r.hset("migration:m", mapping={"src": "h1", "dst": "h3", "phase": "transfer",
                                   "started": 1})
    r.set("leader", "c0", px=120000)
    r.set("controller:c0", "127.0.0.1:9")
    keys = lambda: {k: r.dump(k) for k in r.keys("*")}  # noqa: E731
    before = keys()
    mon = Monitor(r)
    c = start(**{"controller.mode": "recommend", "controller.down_after_ms": 3000})
    wait_for(lambda: c.get("/v1/cluster")["round"] >= 4, 10, "four rounds")
    cl = c.get("/v1/cluster")
    assert not cl["leader"] and cl["leader_id"] == "c0" and cl["hotspots"] == ["h0"], cl
    assert c.get("/v1/plan")["actions"], "a standby still plans (read-only)"
    # its refusals are answered, not logged; mutations go to the leader
    st, j = c.http("POST", "/v1/vms", {"name": "x y", "mem_mib": 1})
    assert st == 400, j
    st, j = c.http("PUT", "/v1/hosts/h1/maintenance", {"on": True})
    assert st == 503 and j["error"]["code"] == "not_leader" and "127.0.0.1:9" in \
        j["error"]["message"], j
    cmds = mon.close(r)
    assert keys() == before, "the standby changed Redis"
    assert not r.exists("events")
    writes = []
    for cmd in cmds:
        argv = cmd.split()
        name = argv[0].upper() if argv else ""
        if name == "EVAL":
            # the lease script only: SET leader NX (fails while c0 holds it)
            if "'NX', 'PX'" not in cmd:
                writes.append(cmd)
        elif name == "SET" and argv[1:2] == ["leader"] and "NX" in argv:
            pass  # the lease script's SET NX: changes nothing while c0 holds it
        elif name in WRITES:
            writes.append(cmd)
    assert not writes, writes[:10]
    assert any("XREVRANGE" in x or "XRANGE" in x for x in cmds), "it did read"
    assert c.decisions() == [], "a standby writes no decision log either"

    # the lease is free: c1 leads, and acts on what it sees
    r.delete("leader")
    wait_for(lambda: c.get("/v1/cluster")["leader"], 10, "c1 to lead")
    wait_for(lambda: entries(r, "host_down"), 10, "h4 marked down")
    types = [e["type"] for e in entries(r)]
    assert types[0] == "leader_acquired" and "controller_started" not in types, types
    assert entries(r)[0]["mode"] == "recommend", entries(r)[0]
    for t in ("migration_adopted", "recommend"):
        wait_for(lambda: t in [e["type"] for e in entries(r)], 10, t)
    assert r.get("controller:c1"), "the leader says where its API is"
    assert all(e["by"] == "controller:c1" for e in entries(r)), entries(r)


def test_metrics_of_an_agent_and_a_controller_pass_promtool(redis_server, agent_factory,
                                                            fakevm_factory, netns,
                                                            controller_factory):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/install-deps installs Debian's prometheus"
    r = redis_server.client()
    netns.add_tap("tapprom0")
    vm = fakevm_factory(tap="tapprom0", threads=1, cpu=10)
    agent = agent_factory(redis_server, settings={"host.cpu": 2, "host.mem": 4096,
                                                  "host.net": 100})
    register_vm(r, agent.id, "vm-prom-1", vm.pid, tap="tapprom0", mem=256, cpu=1)
    wait_for(lambda: (agent.vm("vm-prom-1") or {}).get("status") == "ok", 5, "vm-prom-1 ok")
    c = controller_factory(redis_server.address, settings={"controller.mode": "off"})
    def seen():
        st, v = c.http("GET", "/v1/vms/vm-prom-1")
        return st == 200 and v["peak"]["cpu"] > 0
    wait_for(seen, 15, "the controller sees the VM's samples")
    wait_for(lambda: c.get(f"/v1/hosts/{agent.id}")["samples"] >= 5, 15, "five host samples")
    st, _, raw = agent.http("GET", "/metrics")
    assert st == 200
    st, text = c.http("GET", "/metrics", raw=True)
    assert st == 200
    for who, body in (("agent", raw.decode()), ("controller", text)):
        p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, f"{who}: promtool: {p.stdout}{p.stderr}\n{body[:3000]}"
        series = [line.split(" ")[0] for line in body.splitlines()
                  if line and not line.startswith("#")]
        assert len(series) == len(set(series)), f"{who}: duplicate series"
    # the controller's per host and per VM decisions
    h = agent.id
    for name in (f'loadease_controller_host_volume{{host="{h}"}}',
                 f'loadease_controller_host_hot{{host="{h}",resource="cpu"}}',
                 f'loadease_controller_host_forecast_ratio{{host="{h}",resource="mem"}}',
                 f'loadease_controller_host_utilization_ratio{{host="{h}",resource="net"}}',
                 f'loadease_controller_vm_demand_cpu_cores{{vm="vm-prom-1",host="{h}"}}',
                 f'loadease_controller_vm_utilization_ratio{{vm="vm-prom-1",host="{h}",'
                 'resource="cpu"}',
                 f'loadease_controller_vm_memory_bytes{{vm="vm-prom-1",host="{h}"}} 268435456',
                 "loadease_controller_round_duration_seconds "):
        assert name in text, (name, text)
    vol = c.get(f"/v1/hosts/{h}")["volume"]
    got = float(text.split(f'loadease_controller_host_volume{{host="{h}"}} ')[1].split()[0])
    assert got == pytest.approx(vol, rel=0.05), (got, vol)
