"""Rules changed at run time on a real cluster: agents in network namespaces
with libvirt and QEMU/TCG guests (tests/cluster.py), one Redis, the
controller in the root namespace (the harness of test_controller_cluster.py).

The rules a VM is created with travel in its domain's metadata, and its
agent writes them into vm_configs:<vm> whenever it registers the VM (at
start, after a migration). Asserted: rules set through the controller's API
outlive a restart of the VM's agent and of the controller, follow the VM
through a live migration (the destination's agent registers it with the
domain's rules again), and are honoured by a manual migration: an excluded
host is refused unless forced, a pin even when forced.

Needs root, `ip netns`, /dev/net/tun, redis-server and qemu-system-x86_64;
skipped with the reason otherwise.
"""
import time

from conftest import wait_for
from test_controller_cluster import image, loop_factory  # noqa: F401 (fixtures)


def test_rules_set_at_run_time_outlive_agent_and_controller_restarts(loop_factory):  # noqa: F811
    lp = loop_factory(2)
    h0, h1 = lp.c.hosts
    lp.boot(h0, "rt1", exclude=True)  # the domain's metadata says: never moved
    ctl = lp.start_controller(**{"controller.mode": "off"})
    st, v = ctl.http("GET", "/v1/vms/rt1/rules")
    assert st == 200 and v["rules"]["exclude"] is True and v["rules"]["source"] == "domain", v
    st, j = ctl.http("POST", "/v1/vms/rt1/migrate", {"to": "h1"})
    assert st == 409 and "vm rt1 is excluded" in j["error"]["message"], j

    st, j = ctl.http("PUT", "/v1/vms/rt1/rules",
                     {"exclude": False, "pin": ["h0", "h1"], "automation": "manual"})
    assert st == 200 and j["changed"] == "pin,exclude,automation", j

    # the VM's agent restarts and registers the VM again from its domain
    h0.stop()
    h0.start()
    wait_for(lambda: lp.r.hget("host_config:h0", "state") == "up", 20, "h0's agent back")
    time.sleep(2)
    assert lp.r.hget("vm_configs:rt1", "exclude") == "1", "the domain's rules, as before"
    st, v = ctl.http("GET", "/v1/vms/rt1")
    assert v["rules"]["exclude"] is False and v["rules"]["pin"] == ["h0", "h1"], v
    assert v["rules"]["automation"] == "manual" and v["rules"]["source"] == "runtime", v

    # and the controller restarts
    ctl.stop()
    ctl = lp.start_controller(**{"controller.mode": "off"})
    st, v = ctl.http("GET", "/v1/vms/rt1")
    assert st == 200 and v["rules"]["exclude"] is False and v["rules"]["automation"] == "manual"

    # h1 excluded: a move there by hand is refused, allowed when forced
    assert ctl.http("PUT", "/v1/hosts/h1/exclude", {"on": True})[0] == 200
    st, j = ctl.http("POST", "/v1/vms/rt1/migrate", {"to": "h1"})
    assert st == 409 and "host h1 cannot take vm rt1: it is excluded" in j["error"]["message"], j
    st, j = ctl.http("POST", "/v1/vms/rt1/migrate", {"to": "h1", "force": True})
    assert st == 200 and j["from"] == "h0" and j["to"] == "h1", j
    wait_for(lambda: ctl.http("GET", "/v1/vms/rt1")[1].get("host") == "h1", 15,
             "the controller's view to follow the move")
    lp.running_once("rt1")
    # the destination's agent registered it with the domain's rules; the
    # runtime rules still hold there
    assert lp.r.hget("vm_configs:rt1", "exclude") == "1"
    st, v = ctl.http("GET", "/v1/vms/rt1")
    assert v["rules"]["exclude"] is False and v["rules"]["pin"] == ["h0", "h1"], v

    # pinned to h1 only: back to h0 is refused even when forced (force never
    # overrides a pin)
    assert ctl.http("PUT", "/v1/vms/rt1/rules", {"pin": ["h1"]})[0] == 200
    st, j = ctl.http("POST", "/v1/vms/rt1/migrate", {"to": "h0", "force": True})
    assert st == 409 and "pin" in j["error"]["message"], j
    kinds = [(e.get("vm") or e.get("host"), e.get("changed")) for e in lp.events("rule_changed")]
    assert kinds == [("rt1", "pin,exclude,automation"), ("h1", "exclude"), ("rt1", "pin")], kinds
    assert all(e["by"].startswith("admin@") for e in lp.events("rule_changed"))
