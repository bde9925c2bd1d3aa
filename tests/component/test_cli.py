"""The operator CLI (`loadease hosts|vms|top|plan|events|cluster|vm|host`)
against a real `loadease controller` on a private redis-server. The test
writes the registry the way agents do (host_ids, host_config:<h>,
vms_in_host:<h>, vm_configs:<vm>, ts:host:* and ts:vm:* stream entries), so
no agent, namespace or root is needed; no VM is started (mode `recommend`:
the controller plans but moves nothing).

Asserted: the tables and --json agree with what Redis holds, the exit codes
(0 ok, 1 the controller's error such as 404, 2 bad arguments before any
request, 3 an unreachable controller), `host maintenance on|off` changing
host_config:<h> state, the events it logs, `events -f` following them and
ending with status 0 on Ctrl-C, and `top` frames.
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BIN, SANITIZER_MARKS, Registry, _die_with_parent, free_tcp_port, wait_for

TOKEN = "cli-ct-token-1"


def _controller_missing():
    p = subprocess.run([BIN, "controller", "--help"], capture_output=True, text=True)
    return "not built yet" in p.stdout + p.stderr


pytestmark = pytest.mark.skipif(_controller_missing(), reason="controller not built")


def cli(*args, controller=None, token=TOKEN, timeout=30):
    """Runs `loadease <args>`; (exit code, stdout, stderr). No sanitizer report allowed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADEASE_TOKEN")}
    env["LOADEASE_CONTROLLER"] = controller or ""
    if token:
        env["LOADEASE_TOKEN"] = token
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=timeout)
    bad = [m for m in SANITIZER_MARKS if m in p.stderr]
    assert not bad, f"loadease {' '.join(args)}: sanitizer report:\n{p.stderr}"
    return p.returncode, p.stdout, p.stderr


def rows(table_text):
    """A table's rows as lists of cells (split on runs of 2+ blanks), header first."""
    return [re.split(r"\s{2,}", line.strip()) for line in table_text.splitlines() if line.strip()]


def assert_aligned(table_text, right):
    """Left-aligned cells start under their header, right-aligned ones end
    under it (cells are separated by two or more blanks)."""
    lines = [line for line in table_text.splitlines() if line.strip()]
    spans = [[(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+(?: \S+)*", line)]
             for line in lines]
    head = spans[0]
    for line, cells in zip(lines[1:], spans[1:]):
        assert len(cells) == len(head), f"{line!r} has {len(cells)} cells, not {len(head)}"
        for (name, hs, he), (_, cs, ce) in zip(head, cells):
            ok = ce == he if name in right else cs == hs
            assert ok, f"column {name} misaligned in:\n{table_text}"


def host_row(ctl, host):
    rc, out, err = cli("hosts", controller=ctl.url)
    assert rc == 0, err
    return next(row for row in rows(out)[1:] if row[0] == host)


@pytest.fixture
def cluster(redis_server, controller_factory):
    """Hosts h0 (hot CPU), h1 (idle), h2 (idle, small); VMs vm1 (busy) and
    vm2 on h0, vm3 on h1 with rules; a controller in recommend mode."""
    r = redis_server.client()
    reg = Registry(r)
    reg.host("h0", cpu=2, mem=4096)
    reg.host("h1", cpu=8, mem=16384)
    reg.host("h2", cpu=2, mem=2048)
    reg.vm("vm1", "h0", cpu=2, mem=1024)
    reg.vm("vm2", "h0", cpu=1, mem=512)
    reg.vm("vm3", "h1", cpu=1, mem=256, pin="h1,h2", group="web", exclude="1")
    for kind, ident, cpu, mem, net in [("host", "h0", 0.95, 0.40, 0.02),
                                       ("host", "h1", 0.10, 0.20, 0.01),
                                       ("host", "h2", 0.05, 0.10, 0.0),
                                       ("vm", "vm1", 0.90, 0.50, 0.01),
                                       ("vm", "vm2", 0.05, 0.30, 0.0),
                                       ("vm", "vm3", 0.20, 0.25, 0.0)]:
        reg.samples(kind, ident, 30, cpu=cpu, mem=mem, net=net)
    ctl = controller_factory(redis_server.address, token=TOKEN, name="ctl-cli", settings={
        "controller.mode": "recommend", "controller.round_ms": 200,
        "controller.lease_ms": 1000, "controller.down_after_ms": 600000,
        "controller.window": 30})
    wait_for(lambda: ctl.get("/v1/cluster")["round"] >= 2, 20, "two rounds")
    yield ctl, r
    r.close()


# --------------------------------------------------------------------------- tests

def test_read_verbs(cluster):
    ctl, r = cluster
    rc, out, err = cli("hosts", controller=ctl.url)
    assert rc == 0 and err == "", (rc, err)
    t = rows(out)
    assert t[0] == ["HOST", "STATE", "CPU%", "MEM%", "NET%", "PEAK(C/M/N)", "HOT", "VOLUME",
                    "VMS", "AGE"], out
    by = {row[0]: row for row in t[1:]}
    assert set(by) == {"h0", "h1", "h2"}, out
    assert by["h0"][1] == "up" and by["h0"][2] == "95.0" and by["h0"][3] == "40.0", out
    assert by["h0"][5] == "95/40/2" and by["h0"][6] == "cpu" and by["h0"][8] == "2", out
    assert by["h1"][2] == "10.0" and by["h1"][6] == "-" and by["h1"][8] == "1", out
    assert_aligned(out, right={"CPU%", "MEM%", "NET%", "PEAK(C/M/N)", "VOLUME", "VMS", "AGE"})

    rc, out, _ = cli("hosts", "--json", controller=ctl.url)
    doc = json.loads(out)
    assert rc == 0 and sorted(h["id"] for h in doc["hosts"]) == ["h0", "h1", "h2"]
    h0 = next(h for h in doc["hosts"] if h["id"] == "h0")
    assert h0["hot"]["cpu"] is True and sorted(h0["vms"]) == ["vm1", "vm2"]

    rc, out, _ = cli("vms", controller=ctl.url)
    t = rows(out)
    assert rc == 0 and t[0] == ["VM", "HOST", "STATE", "VCPU", "MEM(MiB)", "CPU%", "MEM%",
                                "NET%", "RULES", "MIGRATING"], out
    by = {row[0]: row for row in t[1:]}
    assert by["vm1"][:8] == ["vm1", "h0", "running", "2", "1024", "90.0", "50.0", "1.0"], out
    assert by["vm3"][8] == "pin=h1,h2;group=web;excl" and by["vm3"][9] == "-", out
    assert_aligned(out, right={"VCPU", "MEM(MiB)", "CPU%", "MEM%", "NET%"})
    rc, out, _ = cli("vms", "--host", "h1", controller=ctl.url)
    assert rc == 0 and [row[0] for row in rows(out)[1:]] == ["vm3"], out
    rc, out, _ = cli("vms", "--host", "h1", "--json", controller=ctl.url)
    assert [v["id"] for v in json.loads(out)["vms"]] == ["vm3"]

    rc, out, _ = cli("cluster", controller=ctl.url)
    assert rc == 0 and re.search(r"^controller\s+ctl-cli \(leader\)$", out, re.M), out
    assert re.search(r"^mode\s+recommend$", out, re.M), out
    assert re.search(r"^hosts\s+3 \(3 up, 0 down, 0 maintenance\)$", out, re.M), out
    assert re.search(r"^vms\s+3$", out, re.M) and re.search(r"^hotspots\s+h0$", out, re.M), out

    # the plan: h0 is hot; the table shows what the document holds
    rc, out, _ = cli("plan", controller=ctl.url)
    doc = json.loads(cli("plan", "--json", controller=ctl.url)[1])
    assert rc == 0 and doc["actions"], (out, doc)  # vm1 fits on h1
    head, table = out.split("\n", 1)
    assert head.startswith("plan (mode recommend, round ") and "1 action" in head, out
    t = rows(table)
    assert t[0] == ["KIND", "VM", "FROM", "TO", "RES", "SRC-VOL", "DST-VOL", "COST",
                    "REASON"], out
    for a, row in zip(doc["actions"], t[1:]):
        assert row[:5] == [a["kind"], a["vm"], a["from"], a["to"], a["res"] or "-"], (a, row)
        assert row[5] == f"{a['src_vol_before']:.2f}->{a['src_vol_after']:.2f}", (a, row)
        assert row[8] == a["reason"], (a, row)
    assert t[1][2] == "h0" and t[1][3] != "h0", out
    assert_aligned(table.split("\n\n")[0], right={"SRC-VOL", "DST-VOL", "COST"})


def test_top_frames(cluster):
    ctl, _ = cluster
    rc, out, err = cli("top", "--once", controller=ctl.url)
    assert rc == 0 and err == "" and "\033" not in out, (rc, err)
    assert out.startswith(f"loadease top  {ctl.url}  ")
    assert "HOST" in out and "vm3" in out and out.count("loadease top") == 1
    rc, out, _ = cli("top", "--count", "2", "--interval", "0.2", controller=ctl.url)
    assert rc == 0 and out.count("loadease top") == 2 and "\n\nloadease top" in out
    rc, out, _ = cli("top", "--once", "--json", controller=ctl.url)
    doc = json.loads(out)
    assert {"ts", "cluster", "hosts", "vms"} <= set(doc) and len(doc["vms"]) == 3


def test_exit_codes(cluster):
    ctl, r = cluster
    # 1: the controller's error, with its message
    rc, out, err = cli("vm", "rm", "ghost", controller=ctl.url)
    assert rc == 1 and out == "" and err.startswith("loadease vm rm: "), (rc, err)
    rc, out, err = cli("vm", "migrate", "ghost", "--to", "h1", controller=ctl.url)
    assert rc == 1 and err.startswith("loadease vm migrate: "), (rc, err)
    rc, _, err = cli("host", "maintenance", "on", "nohost", controller=ctl.url)
    assert rc == 1 and "nohost" in err, (rc, err)
    # a mutating call without the token
    rc, _, err = cli("host", "maintenance", "on", "h2", controller=ctl.url, token=None)
    assert rc == 1 and "give a token" in err, (rc, err)
    assert r.hget("host_config:h2", "state") == "up"
    # 3: nobody listens there
    dead = f"http://127.0.0.1:{free_tcp_port()}"
    rc, out, err = cli("hosts", controller=dead)
    assert rc == 3 and out == "" and dead in err and "unreachable" in err, (rc, err)
    # 2: bad arguments, caught before any request (even to a dead controller)
    for args in (["vm", "create", "x", "--mem", "abc", "--kernel", "k"],
                 ["vm", "create", "x", "--mem", "-5", "--kernel", "k"],
                 ["vm", "create", "x", "--mem", "256"],
                 ["vm", "frobnicate"], ["host", "maintenance", "maybe", "h1"],
                 ["hosts", "--bogus"], ["events", "-n", "many"], ["top", "--interval", "0"]):
        rc, out, err = cli(*args, controller=dead)
        assert rc == 2 and out == "" and "usage" in err and "unreachable" not in err, \
            (args, rc, err)


def test_maintenance_and_events(cluster):
    ctl, r = cluster
    # -n 10: whether it starts before or between the two changes, it prints
    # each once (no event is about h2 before)
    follow = subprocess.Popen([BIN, "events", "-f", "-n", "10", "--host", "h2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "LOADEASE_CONTROLLER": ctl.url},
                              preexec_fn=_die_with_parent)
    try:
        time.sleep(1)  # most likely waiting in its long poll by now
        rc, out, err = cli("host", "maintenance", "on", "h2", controller=ctl.url)
        assert rc == 0 and out == "h2: state maintenance\n", (rc, out, err)
        assert r.hget("host_config:h2", "state") == "maintenance"
        wait_for(lambda: host_row(ctl, "h2")[1] == "maintenance", 5,
                 "`hosts` to show h2 in maintenance")
        rc, out, _ = cli("host", "maintenance", "off", "h2", "--json", controller=ctl.url)
        assert rc == 0 and json.loads(out) == {"host": "h2", "state": "up"}, out
        assert r.hget("host_config:h2", "state") == "up"

        rc, out, _ = cli("events", "--type", "maintenance_on", controller=ctl.url)
        assert rc == 0 and re.search(
            r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d maintenance_on +host=h2", out, re.M), out
        rc, out, _ = cli("events", "-n", "5", "--json", controller=ctl.url)
        evs = [json.loads(line) for line in out.splitlines()]
        assert rc == 0 and 0 < len(evs) <= 5 and evs[-1]["type"] == "maintenance_off", evs

        time.sleep(2)  # the follower's long poll has answered
    finally:
        follow.send_signal(signal.SIGINT)
        out, err = follow.communicate(timeout=15)
    assert follow.returncode == 0, (follow.returncode, err)
    # it saw both, in order, and nothing about other hosts
    types = [line.split()[2] for line in out.splitlines()]
    assert types == ["maintenance_on", "maintenance_off"], out
    assert all("host=h2" in line for line in out.splitlines()), out
    assert not [m for m in SANITIZER_MARKS if m in err], err


def test_vm_create_refused(cluster):
    """A VM no host can take: 409 with why each host refused, one per line."""
    ctl, _ = cluster
    rc, out, err = cli("vm", "create", "huge", "--mem", "1048576", "--vcpus", "2",
                       "--kernel", "vmlinuz", controller=ctl.url)
    assert rc == 1 and out == "", (rc, out, err)
    lines = err.splitlines()
    assert lines[0].startswith("loadease vm create: "), err
    assert "id: a string" not in err, (
        "the controller reads the VM id from 'id', the agent (and so the CLI) from 'name' "
        "(vmm_spec_from_json): " + err)
    blocks = dict(line.strip().split(": ", 1) for line in lines[1:] if line.startswith("  "))
    assert set(blocks) == {"h0", "h1", "h2"}, err
