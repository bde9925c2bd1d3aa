"""Changing things while the controller runs (docs/controller.md, "Changing
things at run time"): a VM's rules and automation level, a host's exclude,
the controller's mode and the migration windows, through the REST API of a
real `loadease controller` on a real redis-server. The registry is written
here the way the agents write it (conftest.Registry), including the agent's
rewrite of vm_configs:<vm> from the domain's metadata, so every rule path is
checked exactly and quickly; the hosts' agent address (127.0.0.1:1) takes no
connection, so a migration the controller starts is seen as started (its
`migration_started` and 202) and then fails, which is all these tests need
of it. Real agents and guests: test_runtime_cluster.py.

Asserted: a change reaches the plan at once, is stored in Redis, survives a
controller restart, is logged with the old and new values and who made it;
recommend mode set at run time starts nothing and still logs the plan;
closed windows recommend only and say so (/v1/cluster, /v1/plan, one event
per change); manual migrations honour exclude unless forced; bad bodies get
400 with a clear message and change nothing; a standby answers 503.
"""
import datetime
import time

import pytest

from conftest import Registry, wait_for


def events(r, type=None):
    return [dict(f, id=i) for i, f in r.xrange("events")
            if type is None or f.get("type") == type]


def hot_cluster(reg):
    """h0 CPU-hot with vm a (busy) and b; h1 idle and roomy."""
    reg.host("h0", cpu=2)
    reg.host("h1", cpu=4)
    reg.vm("a", "h0", cpu=1, mem=512, uuid="uuid-a")
    reg.vm("b", "h0", cpu=1, mem=512)
    reg.samples("host", "h0", 10, cpu=0.95, mem=0.2, net=0.01)
    reg.samples("host", "h1", 10, cpu=0.05, mem=0.1, net=0.0)
    reg.samples("vm", "a", 10, cpu=0.97, mem=0.5, net=0.0)
    reg.samples("vm", "b", 10, cpu=0.9, mem=0.5, net=0.0)


@pytest.fixture
def setup(redis_server, controller_factory):
    r = redis_server.client()
    reg = Registry(r)
    hot_cluster(reg)

    def start(name="c1", **s):
        # the hand-written hosts send no heartbeat: never down here
        s = {"controller.down_after_ms": 600000, **s}
        c = controller_factory(redis_server.address, settings=s, name=name)
        wait_for(lambda: c.get("/v1/cluster")["round"] >= 2, 10, "two rounds")
        return c
    yield r, reg, start
    r.close()


def planned(c):
    return [(a["vm"], a["from"], a["to"]) for a in c.get("/v1/plan")["actions"]]


def restart(c, start, **s):
    c.stop()
    return start(name=c.id, **s)


# --------------------------------------------------------------------------- VM rules


def test_vm_rules_set_at_run_time_reach_the_plan_and_survive_restarts(setup):
    r, reg, start = setup
    c = start(**{"controller.mode": "off"})
    wait_for(lambda: planned(c), 10, "a planned move")
    assert planned(c)[0][1:] == ("h0", "h1"), planned(c)
    v = c.get("/v1/vms/a")
    assert v["rules"] == {"pin": [], "group": "", "anti_group": "", "exclude": False,
                          "automation": "auto", "source": "domain", "by": None, "ts": 0}, v

    # a stays on h0 (pinned), b is excluded: nothing can relieve h0
    st, j = c.http("PUT", "/v1/vms/a/rules", {"pin": ["h0"], "group": "g1"})
    assert st == 200 and j["changed"] == "pin,group", j
    assert j["rules"]["pin"] == ["h0"] and j["rules"]["source"] == "runtime", j
    assert j["rules"]["by"] == "admin@127.0.0.1" and j["rules"]["automation"] == "auto", j
    st, j = c.http("PUT", "/v1/vms/b/rules", {"exclude": True})
    assert st == 200 and j["rules"]["exclude"] and j["rules"]["pin"] == [], j
    wait_for(lambda: not planned(c), 5, "no move once a is pinned and b excluded")
    assert c.get("/v1/plan")["unresolved"][0]["host"] == "h0"
    assert r.hgetall("vm_rules:a") == {
        "pin": "h0", "group": "g1", "anti_group": "", "exclude": "0", "automation": "auto",
        "uuid": "uuid-a", "by": "admin@127.0.0.1", "ts": r.hget("vm_rules:a", "ts")}
    e = [x for x in events(r, "rule_changed") if x.get("vm") == "a"]
    assert len(e) == 1 and e[0]["changed"] == "pin,group" and e[0]["by"] == "admin@127.0.0.1", e
    assert e[0]["old"] == "pin= group= anti_group= exclude=false automation=auto", e
    assert e[0]["new"] == "pin=h0 group=g1 anti_group= exclude=false automation=auto", e
    # the same again: stored, nothing changed, nothing logged
    st, j = c.http("PUT", "/v1/vms/a/rules", {"pin": ["h0"]})
    assert st == 200 and j["changed"] == "", j
    assert len([x for x in events(r, "rule_changed") if x.get("vm") == "a"]) == 1

    # the agent rewrites vm_configs from the domain's metadata (a restart, a
    # migration's claim): the runtime rules still win
    r.hset("vm_configs:a", mapping={"pin": "", "group": "", "exclude": "0"})
    r.hset("vm_configs:b", mapping={"exclude": "0"})
    time.sleep(1.5)
    assert not planned(c) and c.get("/v1/vms/a")["rules"]["pin"] == ["h0"]

    # a new controller finds them
    c = restart(c, start, **{"controller.mode": "off"})
    assert c.get("/v1/vms/a")["rules"]["pin"] == ["h0"]
    assert c.get("/v1/vms/b")["rules"]["exclude"] is True
    assert c.get("/v1/vms/a/rules")["rules"]["source"] == "runtime"
    time.sleep(1)
    assert not planned(c), "the rules survived the controller's restart"

    # a VM created again under the same name (another uuid) does not inherit them
    r.hset("vm_configs:a", "uuid", "uuid-a2")
    wait_for(lambda: c.get("/v1/vms/a")["rules"]["source"] == "domain", 5,
             "stale rules of another a ignored")
    r.hset("vm_configs:a", "uuid", "uuid-a")
    wait_for(lambda: c.get("/v1/vms/a")["rules"]["source"] == "runtime", 5, "a's own again")
    wait_for(lambda: not planned(c), 5, "a pinned again")

    # back to the domain's rules
    st, j = c.http("DELETE", "/v1/vms/b/rules")
    assert st == 200 and j["rules"]["source"] == "domain" and not j["rules"]["exclude"], j
    assert not r.exists("vm_rules:b")
    wait_for(lambda: planned(c), 5, "b movable again")
    assert planned(c)[0][0] == "b", planned(c)
    e = [x for x in events(r, "rule_changed") if x.get("vm") == "b"]
    assert e[-1]["msg"] == "back to the domain's rules" and e[-1]["changed"] == "exclude", e


def test_automation_off_is_never_moved_and_manual_is_only_recommended(setup):
    r, reg, start = setup
    c = start(**{"controller.mode": "off", "balance.max_per_round": 1})
    for vm in ("a", "b"):
        st, j = c.http("PUT", f"/v1/vms/{vm}/rules", {"automation": "manual"})
        assert st == 200 and j["rules"]["automation"] == "manual", j
    assert c.http("PUT", "/v1/mode", {"mode": "auto"})[0] == 200
    wait_for(lambda: events(r, "recommend"), 10, "a recommendation for a manual VM")
    time.sleep(1.5)
    rec = events(r, "recommend")
    assert len(rec) == 1 and rec[0]["automation"] == "manual" and rec[0]["mode"] == "auto", rec
    assert rec[0]["vm"] in ("a", "b") and rec[0]["to"] == "h1", rec
    assert not events(r, "migration_started"), "a manual VM is never moved automatically"
    assert c.get("/v1/vms/a")["rules"]["automation"] == "manual"
    # off: not even proposed
    for vm in ("a", "b"):
        assert c.http("PUT", f"/v1/vms/{vm}/rules", {"automation": "off"})[0] == 200
    wait_for(lambda: not planned(c), 5, "nothing proposed for VMs of automation off")
    assert c.get("/v1/plan")["unresolved"][0]["host"] == "h0"
    # auto again: the controller moves one (it fails: no agent listens)
    assert c.http("PUT", "/v1/vms/b/rules", {"automation": "auto"})[0] == 200
    wait_for(lambda: events(r, "migration_started"), 10, "b moved once auto")
    assert events(r, "migration_started")[0]["vm"] == "b"


# --------------------------------------------------------------------------- host exclude


def test_host_exclude_and_manual_migrations_unless_forced(setup):
    r, reg, start = setup
    c = start(**{"controller.mode": "off"})
    wait_for(lambda: planned(c), 10, "a planned move to h1")
    st, j = c.http("PUT", "/v1/hosts/h1/exclude", {"on": True})
    assert st == 200 and j == {"host": "h1", "excluded": True, "by": "admin@127.0.0.1"}, j
    assert r.hget("host_config:h1", "exclude") == "1"
    assert r.hget("host_config:h1", "exclude_by") == "admin@127.0.0.1"
    assert c.get("/v1/hosts/h1")["excluded"] is True
    wait_for(lambda: not planned(c), 5, "no move to an excluded host")
    e = events(r, "rule_changed")
    assert [(x["host"], x["old"], x["new"], x["by"]) for x in e] == \
        [("h1", "exclude=false", "exclude=true", "admin@127.0.0.1")], e

    # the agent registers again (restart): its fields, not exclude
    r.hset("host_config:h1", mapping={"state": "up", "cpu": 4, "last_seen": int(time.time() * 1000)})
    time.sleep(1)
    assert c.get("/v1/hosts/h1")["excluded"] is True and not planned(c)

    # an operator's move to it: refused with the reason, allowed with force
    st, j = c.http("POST", "/v1/vms/a/migrate", {"to": "h1", "wait": False})
    assert st == 409 and j["error"]["code"] == "blocked", j
    assert "h1" in j["error"]["message"] and "excluded" in j["error"]["message"], j
    assert "force" in j["error"]["message"], j
    assert not events(r, "migration_started")
    st, j = c.http("POST", "/v1/vms/a/migrate", {"to": "h1", "force": True, "wait": False})
    assert st == 202 and j["to"] == "h1" and j["state"] == "started", j
    wait_for(lambda: events(r, "migration_failed"), 10, "the forced move's end (no agent)")
    assert events(r, "migration_started")[0]["to"] == "h1"

    # an excluded VM, a VM on an excluded host: the same
    assert c.http("PUT", "/v1/hosts/h1/exclude", {"on": False})[0] == 200
    assert c.http("PUT", "/v1/vms/b/rules", {"exclude": True})[0] == 200
    st, j = c.http("POST", "/v1/vms/b/migrate", {"to": "h1", "wait": False})
    assert st == 409 and "vm b is excluded" in j["error"]["message"], j
    assert c.http("PUT", "/v1/hosts/h0/exclude", {"on": True})[0] == 200
    time.sleep(0.3)
    wait_for(lambda: not c.get("/v1/vms/a")["migrating"], 10, "a's failed move over")
    st, j = c.http("POST", "/v1/vms/a/migrate", {"to": "h1", "wait": False})
    assert st == 409 and "host h0, where vm a runs, is excluded" in j["error"]["message"], j
    # it survives a controller restart (host_config is the controller's here)
    c = restart(c, start, **{"controller.mode": "off"})
    assert c.get("/v1/hosts/h0")["excluded"] is True
    assert c.get("/v1/hosts/h1")["excluded"] is False
    e = events(r, "rule_changed")
    assert [x.get("new") for x in e if x.get("host")] == \
        ["exclude=true", "exclude=false", "exclude=true"], e


# --------------------------------------------------------------------------- mode


def test_mode_set_at_run_time_moves_nothing_and_survives_a_restart(setup):
    r, reg, start = setup
    c = start(**{"controller.mode": "off"})
    assert c.get("/v1/mode") == {"mode": "off", "configured": "off", "source": "config",
                                 "effective": "off", "by": None, "ts": 0, "note": None}
    st, j = c.http("PUT", "/v1/mode", {"mode": "recommend"})
    assert st == 200 and j["mode"] == "recommend" and j["source"] == "runtime", j
    assert j["configured"] == "off" and j["by"] == "admin@127.0.0.1", j
    assert r.hget("controller_settings", "mode") == "recommend"
    wait_for(lambda: events(r, "recommend"), 10, "the plan logged in recommend mode")
    m = events(r, "mode_changed")
    assert [(x["old"], x["new"], x["by"]) for x in m] == \
        [("off", "recommend", "admin@127.0.0.1")], m
    cl = c.get("/v1/cluster")
    assert cl["mode"] == "recommend" and cl["mode_source"] == "runtime", cl
    assert cl["effective_mode"] == "recommend", cl

    # a controller whose configuration says auto keeps the runtime mode
    c.stop()
    c = start(**{"controller.mode": "auto"})
    assert c.get("/v1/mode")["mode"] == "recommend"
    assert c.get("/v1/plan")["mode"] == "recommend"
    time.sleep(2)
    assert not events(r, "migration_started"), "recommend set at run time moves nothing"
    # back to the configuration's mode: auto acts
    st, j = c.http("DELETE", "/v1/mode")
    assert st == 200 and j["mode"] == "auto" and j["source"] == "config", j
    assert not r.hexists("controller_settings", "mode")
    wait_for(lambda: events(r, "migration_started"), 10, "auto moves once the override is gone")
    assert events(r, "mode_changed")[-1]["new"] == "auto"


# --------------------------------------------------------------------------- windows


def closed_window():
    """A one-hour window three days from today (UTC): closed now."""
    day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][
        (datetime.datetime.now(datetime.timezone.utc).weekday() + 3) % 7]
    return f"{day} 10:00-11:00"


def test_windows_closed_recommend_only_and_say_so(setup):
    r, reg, start = setup
    c = start(**{"controller.mode": "off"})
    spec = closed_window()
    st, j = c.http("PUT", "/v1/windows", {"windows": spec})
    assert st == 200 and j["windows"] == spec and j["open"] is False, j
    assert j["timezone"] == "UTC" and j["next_change"] > time.time() * 1000, j
    assert r.hget("controller_settings", "windows") == spec
    assert c.http("PUT", "/v1/mode", {"mode": "auto"})[0] == 200
    wait_for(lambda: events(r, "recommend"), 10, "recommendations while the windows are closed")
    time.sleep(1.5)
    assert not events(r, "migration_started"), "no migration outside the windows"
    closed = events(r, "window_closed")
    assert len(closed) == 1 and closed[0]["windows"] == spec, closed
    assert "recommending only" in closed[0]["msg"], closed
    assert events(r, "windows_changed")[0]["by"] == "admin@127.0.0.1"
    assert events(r, "recommend")[0]["mode"] == "recommend"
    cl = c.get("/v1/cluster")
    assert cl["mode"] == "auto" and cl["effective_mode"] == "recommend", cl
    assert cl["windows"]["windows"] == spec and not cl["windows"]["open"], cl
    assert "outside the migration windows" in cl["note"], cl
    p = c.get("/v1/plan")
    assert p["effective_mode"] == "recommend" and not p["windows_open"] and p["note"], p

    # a restart: still closed (the new controller says so once)
    c = restart(c, start, **{"controller.mode": "off"})
    time.sleep(1)
    assert c.get("/v1/windows")["windows"] == spec
    assert not events(r, "migration_started")

    # open (an hour either side of now; it crosses midnight near it): the controller acts
    now = datetime.datetime.now(datetime.timezone.utc)
    start_h = (now.hour + 23) % 24
    spec2 = f"{start_h:02d}:00-{(now.hour + 2) % 24:02d}:00"
    st, j = c.http("PUT", "/v1/windows", {"windows": spec2})
    assert st == 200 and j["open"] is True, j
    wait_for(lambda: events(r, "migration_started"), 10, "a move once the window is open")
    assert [x["type"] for x in events(r) if x["type"].startswith("window_")] == \
        ["window_closed", "window_closed", "window_opened"], events(r)
    assert c.get("/v1/cluster")["effective_mode"] == "auto"
    # cleared: migrations at any time
    st, j = c.http("DELETE", "/v1/windows")
    assert st == 200 and j["windows"] == "" and j["open"] is True, j
    assert not r.hexists("controller_settings", "windows")


# --------------------------------------------------------------------------- bad input


def test_bad_runtime_requests_get_clear_errors_and_change_nothing(setup):
    r, reg, start = setup
    c = start(**{"controller.mode": "off", "controller.read_token": "reader"})
    before = {k: r.dump(k) for k in r.keys("*") if not k.startswith(("ts:", "events", "leader",
                                                                     "controller:"))}
    cases = [
        # (method, path, body, token, status, code, message part)
        ("PUT", "/v1/vms/a/rules", {"pin": "h0"}, True, 400, "bad_request", "pin is an array"),
        ("PUT", "/v1/vms/a/rules", {"pin": ["nosuch"]}, True, 400, "bad_request",
         "pin: no host nosuch"),
        ("PUT", "/v1/vms/a/rules", {"pin": [3]}, True, 400, "bad_request", "pin[0]"),
        ("PUT", "/v1/vms/a/rules", {"group": 5}, True, 400, "bad_request", "group"),
        ("PUT", "/v1/vms/a/rules", {"anti_group": "a b"}, True, 400, "bad_request",
         "anti_group"),
        ("PUT", "/v1/vms/a/rules", {"exclude": "yes"}, True, 400, "bad_request",
         "exclude is true or false"),
        ("PUT", "/v1/vms/a/rules", {"automation": "sometimes"}, True, 400, "bad_request",
         "auto, manual, off"),
        ("PUT", "/v1/vms/a/rules", {"pinn": ["h0"]}, True, 400, "bad_request",
         "unknown member 'pinn'"),
        ("PUT", "/v1/vms/a/rules", {}, True, 400, "bad_request", "nothing to change"),
        ("PUT", "/v1/vms/a/rules", [], True, 400, "bad_request", "object"),
        ("PUT", "/v1/vms/a/rules", "{bad json", True, 400, None, None),
        ("PUT", "/v1/vms/nosuch/rules", {"exclude": True}, True, 404, "not_found", "nosuch"),
        ("PUT", "/v1/vms/a/rules", {"exclude": True}, "reader", 403, "forbidden", None),
        ("PUT", "/v1/vms/a/rules", {"exclude": True}, None, 401, "unauthorized", None),
        ("POST", "/v1/vms/a/rules", {"exclude": True}, True, 405, "method_not_allowed", None),
        ("GET", "/v1/vms/nosuch/rules", None, "reader", 404, "not_found", None),
        ("PUT", "/v1/hosts/h1/exclude", {"on": "yes"}, True, 400, "bad_request", "\"on\""),
        ("PUT", "/v1/hosts/h1/exclude", {"on": True, "x": 1}, True, 400, "bad_request", None),
        ("PUT", "/v1/hosts/nosuch/exclude", {"on": True}, True, 404, "not_found", "nosuch"),
        ("GET", "/v1/hosts/h1/exclude", None, "reader", 405, "method_not_allowed", None),
        ("PUT", "/v1/mode", {"mode": "sometimes"}, True, 400, "bad_request", "'sometimes'"),
        ("PUT", "/v1/mode", {"mode": 1}, True, 400, "bad_request", "recommend"),
        ("PUT", "/v1/mode", {"mode": "auto", "x": 1}, True, 400, "bad_request", None),
        ("PUT", "/v1/mode", {"mode": "auto"}, "reader", 403, "forbidden", None),
        ("POST", "/v1/mode", {"mode": "auto"}, True, 405, "method_not_allowed", None),
        ("PUT", "/v1/windows", {"windows": "mon 25:00-26:00"}, True, 400, "bad_request",
         "'25:00-26:00': the start is not a time of day"),
        ("PUT", "/v1/windows", {"windows": "funday 10:00-11:00"}, True, 400, "bad_request",
         "'funday' is not a day"),
        ("PUT", "/v1/windows", {"windows": "mon-fri"}, True, 400, "bad_request",
         "no time range"),
        ("PUT", "/v1/windows", {"windows": 5}, True, 400, "bad_request", "UTC"),
        ("PUT", "/v1/windows", {"spec": "daily 00:00-24:00"}, True, 400, "bad_request", None),
        ("PUT", "/v1/windows", {"windows": "x" * 600}, True, 400, "bad_request", "at most 512"),
        ("DELETE", "/v1/windows", None, "reader", 403, "forbidden", None),
    ]
    for method, path, body, token, status, code, part in cases:
        st, j = c.http(method, path, body, token=token)
        assert st == status, f"{method} {path} {body!r}: {st} {j}"
        assert isinstance(j, dict) and j["error"]["message"], f"{method} {path}: {j}"
        if code:
            assert j["error"]["code"] == code, f"{method} {path}: {j}"
        if part:
            assert part in j["error"]["message"], f"{method} {path}: {j}"
    after = {k: r.dump(k) for k in r.keys("*") if not k.startswith(("ts:", "events", "leader",
                                                                    "controller:"))}
    assert after == before, "a refused call changed Redis"
    assert not events(r, "rule_changed") and not events(r, "mode_changed")
    assert c.alive()
    # garbage stored by hand is ignored with a warning, not fatal
    r.hset("controller_settings", mapping={"mode": "sideways", "windows": "mon 99:00-10:00"})
    r.hset("vm_rules:a", mapping={"automation": "bogus", "pin": "h0"})
    time.sleep(1.5)
    assert c.get("/v1/mode")["mode"] == "off" and c.get("/v1/windows")["windows"] == ""
    assert c.get("/v1/vms/a")["rules"]["automation"] == "auto"
    assert "mode 'sideways' ignored" in c.log() and "windows 'mon 99:00-10:00' ignored" in c.log()
    assert c.log().count("mode 'sideways' ignored") == 1, "warned once"


def test_a_standby_refuses_runtime_changes(redis_server, controller_factory):
    r = redis_server.client()
    reg = Registry(r)
    reg.host("h0")
    reg.vm("a", "h0")
    s = {"controller.mode": "off", "controller.round_ms": "300", "controller.lease_ms": "2000"}
    a = controller_factory(redis_server.address, settings=s, name="ca")
    wait_for(lambda: a.get("/v1/cluster")["leader"], 10, "ca leader")
    b = controller_factory(redis_server.address, settings=s, name="cb")
    wait_for(lambda: b.get("/v1/cluster")["leader_id"] == "ca", 10, "cb sees ca")
    for method, path, body in [("PUT", "/v1/mode", {"mode": "auto"}),
                               ("DELETE", "/v1/mode", None),
                               ("PUT", "/v1/windows", {"windows": "daily 00:00-01:00"}),
                               ("PUT", "/v1/vms/a/rules", {"exclude": True}),
                               ("DELETE", "/v1/vms/a/rules", None),
                               ("PUT", "/v1/hosts/h0/exclude", {"on": True})]:
        st, j = b.http(method, path, body)
        assert st == 503 and j["error"]["code"] == "not_leader", (method, path, j)
        assert "the leader is ca" in j["error"]["message"], j
    assert not r.exists("controller_settings") and not r.exists("vm_rules:a")
    # the leader's change is seen by the standby within a round
    assert a.http("PUT", "/v1/mode", {"mode": "recommend"})[0] == 200
    wait_for(lambda: b.get("/v1/cluster")["mode"] == "recommend", 5, "cb follows the mode")
    r.close()
