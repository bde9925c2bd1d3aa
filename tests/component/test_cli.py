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
ending with status 0 on Ctrl-C, and `top` frames; the global options
anywhere on the line, a rejected token said as such, an unknown host or VM
an error in every verb, options named as typed, `top` quitting on q through
a pty with the terminal restored, and the bash completion of every verb and
of the controller's ids.

test_vm_create_migrate_rm_wait_for_the_end runs real guests on a namespace
cluster (tests/cluster.py; root, libvirt and QEMU, skipped with the reason
where absent): vm create, vm migrate (done, --no-wait, on a pty, --timeout,
a failure rolled back) and vm rm, each followed at once by `vms`.
"""
import contextlib
import json
import os
import pty
import re
import select
import signal
import subprocess
import termios
import time

import pytest

from conftest import (BIN, SANITIZER_MARKS, Controller, Registry, _die_with_parent,
                      cluster_guest_image, free_tcp_port, guest_status, running_cluster,
                      wait_for)

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
    # h2 holds no VM: an operator can power it down
    assert by["h2"][1] == "up,empty" and by["h2"][8] == "0", out
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
                 ["vm", "frobnicate", "vm1"], ["host", "maintenance", "maybe", "h1"],
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
                              env={**os.environ, "LOADEASE_CONTROLLER": ctl.url,
                                   "LOADEASE_TOKEN": TOKEN},
                              preexec_fn=_die_with_parent)
    try:
        time.sleep(1)  # most likely waiting in its long poll by now
        rc, out, err = cli("host", "maintenance", "on", "h2", controller=ctl.url)
        assert rc == 0 and out == "h2: state maintenance\n", (rc, out, err)
        assert r.hget("host_config:h2", "state") == "maintenance"
        wait_for(lambda: host_row(ctl, "h2")[1] == "maintenance,empty", 5,
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


def test_runtime_verbs(cluster):
    """vm rules, host exclude, mode, windows: shown, changed (stored in Redis,
    said in the answer with who), refused with the reason (status 1) or a
    usage error before any request (status 2)."""
    ctl, r = cluster
    url = ctl.url
    rc, out, err = cli("vm", "rules", "vm1", controller=url)
    assert rc == 0 and out == ("vm1: pin=- group=- anti_group=- exclude=off automation=auto\n"
                               "  the domain's rules (set when it was created)\n"), (rc, out, err)
    rc, out, err = cli("vm", "rules", "vm1", "--pin", "h0,h1", "--automation", "manual",
                       "--exclude", "on", controller=url)
    assert rc == 0, (rc, out, err)
    first, second = out.splitlines()
    assert first == "vm1: pin=h0,h1 group=- anti_group=- exclude=on automation=manual", out
    assert second.startswith("  set at run time by admin@127.0.0.1, ") and \
        second.endswith("; changed: pin,exclude,automation"), out
    assert r.hget("vm_rules:vm1", "pin") == "h0,h1" and r.hget("vm_rules:vm1", "exclude") == "1"
    rc, out, _ = cli("vms", controller=url)
    assert rc == 0 and "pin=h0,h1;excl;auto=manual" in next(
        line for line in out.splitlines() if line.startswith("vm1 ")), out
    rc, out, _ = cli("vm", "rules", "vm1", "--pin", "", "--json", controller=url)
    j = json.loads(out)
    assert rc == 0 and j["rules"]["pin"] == [] and j["rules"]["automation"] == "manual", j
    rc, out, err = cli("vm", "rules", "vm1", "--pin", "nosuch", controller=url)
    assert rc == 1 and out == "" and "no host nosuch" in err, (rc, err)
    rc, out, err = cli("vm", "rules", "ghost", controller=url)
    assert rc == 1 and "no vm ghost" in err, (rc, err)
    rc, out, _ = cli("vm", "rules", "vm1", "--reset", controller=url)
    assert rc == 0 and "the domain's rules" in out and "automation=auto" in out, out
    assert not r.exists("vm_rules:vm1")

    rc, out, err = cli("host", "exclude", "on", "h2", controller=url)
    assert rc == 0 and out.startswith("h2: excluded"), (rc, out, err)
    assert r.hget("host_config:h2", "exclude") == "1"
    wait_for(lambda: "excl" in host_row(ctl, "h2")[1], 5, "`hosts` to show h2 excluded")
    rc, out, _ = cli("host", "exclude", "off", "h2", "--json", controller=url)
    assert rc == 0 and json.loads(out)["excluded"] is False, out
    rc, _, err = cli("host", "exclude", "on", "nohost", controller=url)
    assert rc == 1 and "no host nohost" in err, (rc, err)

    rc, out, _ = cli("mode", controller=url)
    assert rc == 0 and out == "mode recommend (the configuration's)\n", out
    rc, out, _ = cli("mode", "off", controller=url)
    assert rc == 0 and out.startswith("mode off (set at run time by admin@127.0.0.1, ") and \
        out.endswith("; the configuration says recommend)\n"), out
    assert r.hget("controller_settings", "mode") == "off"
    wait_for(lambda: "off (set at run time)" in cli("cluster", controller=url)[1], 5,
             "`cluster` to say the mode was set at run time")
    rc, out, _ = cli("mode", "--json", controller=url)
    assert rc == 0 and json.loads(out)["source"] == "runtime", out
    rc, out, _ = cli("mode", "--reset", controller=url)
    assert rc == 0 and out == "mode recommend (the configuration's)\n", out
    rc, _, err = cli("mode", "auto", controller=url, token=None)
    assert rc == 1 and r.hget("controller_settings", "mode") is None, (rc, err)

    rc, out, _ = cli("windows", controller=url)
    assert rc == 0 and out == "windows: none (automatic migrations at any time)\n", out
    rc, out, err = cli("windows", "daily", "00:00-24:00", controller=url)
    assert rc == 0 and out == "windows: daily 00:00-24:00 (UTC)\nopen now\n", (rc, out, err)
    assert r.hget("controller_settings", "windows") == "daily 00:00-24:00"
    rc, out, err = cli("windows", "mon 25:00-26:00", controller=url)
    assert rc == 1 and "the start is not a time of day" in err, (rc, err)
    rc, out, _ = cli("windows", "--clear", "--json", controller=url)
    assert rc == 0 and json.loads(out)["windows"] == "", out
    assert [e["type"] for e in (json.loads(line) for line in cli(
        "events", "-n", "100", "--json", controller=url)[1].splitlines())
        if e["type"] in ("rule_changed", "mode_changed", "windows_changed")] == \
        ["rule_changed"] * 5 + ["mode_changed"] * 2 + ["windows_changed"] * 2

    # usage errors, before any request (a dead controller is not asked)
    dead = f"http://127.0.0.1:{free_tcp_port()}"
    for args in (["vm", "rules"], ["vm", "rules", "vm1", "--automation", "sometimes"],
                 ["vm", "rules", "vm1", "--exclude", "yes"],
                 ["vm", "rules", "vm1", "--reset", "--pin", "h0"],
                 ["vm", "rules", "vm1", "--pin", "a b"], ["host", "exclude", "maybe", "h1"],
                 ["host", "exclude", "on"], ["mode", "sideways"], ["mode", "auto", "--reset"],
                 ["mode", "auto", "off"], ["windows", "daily 00:00-01:00", "--clear"]):
        rc, out, err = cli(*args, controller=dead)
        assert rc == 2 and out == "" and "usage" in err and "unreachable" not in err, \
            (args, rc, err)
    rc, _, err = cli("mode", "auto", controller=dead)
    assert rc == 3 and "unreachable" in err, (rc, err)
    assert complete("loadease mode ") == ["off", "recommend", "auto"]
    assert complete("loadease host exclude ") == ["on", "off"]
    assert complete("loadease vm rules vm1 --au") == ["--automation"]
    assert complete("loadease vm rules ", controller=url) == ["vm1", "vm2", "vm3"]


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


# ------------------------------------------------ global options, tokens, ids

def test_global_options_anywhere(cluster):
    """The global options before the verb, after it, between a group and its
    subcommand, as --opt value and --opt=value: the same request, the same
    answer."""
    ctl, r = cluster
    dead = f"http://127.0.0.1:{free_tcp_port()}"  # the environment's: must be overridden
    docs = []
    for args in (["--json", "hosts"], ["hosts", "--json"],
                 ["--controller", ctl.url, "--json", "hosts"],
                 [f"--controller={ctl.url}", "hosts", "--json"],
                 ["--timeout", "5", "hosts", "--controller", ctl.url, "--json"]):
        has_ctl = any(a == "--controller" or a.startswith("--controller=") for a in args)
        rc, out, err = cli(*args, controller=dead if has_ctl else ctl.url)
        assert rc == 0 and err == "", (args, rc, err)
        docs.append(sorted(h["id"] for h in json.loads(out)["hosts"]))
    assert docs == [["h0", "h1", "h2"]] * 5, docs

    # a group: before it, between it and its subcommand, after
    for args in (["--json", "vm", "show", "vm3"], ["vm", "--json", "show", "vm3"],
                 ["vm", "show", "vm3", "--json"], ["--json", "vm", "vm3"]):
        rc, out, err = cli(*args, controller=ctl.url)
        assert rc == 0 and json.loads(out)["id"] == "vm3", (args, rc, out, err)

    # the token before the verb is the one sent: a mutating call goes through
    rc, out, err = cli("--token", TOKEN, "--controller", ctl.url, "host", "maintenance",
                       "on", "h2", controller=dead, token=None)
    assert rc == 0 and out == "h2: state maintenance\n", (rc, out, err)
    assert r.hget("host_config:h2", "state") == "maintenance"
    rc, out, err = cli("host", "--json", "maintenance", "off", "h2", controller=ctl.url)
    assert rc == 0 and json.loads(out) == {"host": "h2", "state": "up"}, (rc, out, err)

    # an unknown option before the verb: a usage error, no request
    rc, out, err = cli("--bogus", "hosts", controller=dead)
    assert rc == 2 and out == "" and "unknown option '--bogus'" in err, (rc, err)
    rc, out, err = cli("--json", controller=dead)
    assert rc == 2 and "a command is missing" in err, (rc, err)


def test_rejected_token_said_as_such(cluster):
    ctl, r = cluster
    rc, out, err = cli("host", "maintenance", "on", "h2", controller=ctl.url, token="wrong")
    assert rc == 1 and out == "", (rc, out, err)
    assert "the controller rejected the token (HTTP 401)" in err, err
    assert "give a token" not in err, err
    assert r.hget("host_config:h2", "state") == "up"
    # no token at all: said differently
    rc, _, err = cli("host", "maintenance", "on", "h2", controller=ctl.url, token=None)
    assert rc == 1 and "give a token" in err and "rejected" not in err, (rc, err)
    # a token file with a wrong token: the same
    path = os.path.join(ctl.workdir, "wrong-token")
    with open(path, "w") as f:
        f.write("not-the-token\n")
    rc, _, err = cli("--token-file", path, "vm", "rm", "vm1", controller=ctl.url, token=None)
    assert rc == 1 and "rejected the token" in err, (rc, err)
    assert r.sismember("vms_in_host:h0", "vm1")


def test_unknown_host_or_vm_is_an_error(cluster):
    """Every verb that names a host or a VM: status 1, nothing on stdout, a
    message naming what does not exist, and nothing changed."""
    ctl, r = cluster
    cases = [
        (["vms", "--host", "nosuch"], "no host nosuch"),
        (["vms", "--host", "nosuch", "--json"], "no host nosuch"),
        (["host", "nosuch"], "no host nosuch"),
        (["host", "show", "nosuch"], "no host nosuch"),
        (["vm", "nosuch"], "no vm nosuch"),
        (["vm", "show", "nosuch", "--json"], "no vm nosuch"),
        (["vm", "migrate", "nosuch", "--to", "h1"], "no vm nosuch"),
        (["vm", "migrate", "nosuch", "--to", "h1", "--no-wait"], "no vm nosuch"),
        (["vm", "migrate", "vm1", "--to", "nosuch"], "no host nosuch"),
        (["vm", "migrate", "vm1", "--to", "nosuch", "--no-wait"], "no host nosuch"),
        (["vm", "rm", "nosuch"], "no vm nosuch"),
        (["host", "maintenance", "on", "nosuch"], "no host nosuch"),
        (["vm", "create", "n1", "--mem", "256", "--kernel", "k", "--host", "nosuch"],
         "no host nosuch"),
        (["vm", "create", "n1", "--mem", "256", "--kernel", "k", "--pin", "nosuch"],
         "pin: none of the hosts exists"),
        # (the refusals above are logged, with vm or host nosuch: events of
        # them are found; an id nothing ever named is the error)
        (["events", "--vm", "neverseen"], "no vm neverseen"),
        (["events", "--host", "neverseen"], "no host neverseen"),
    ]
    for args, msg in cases:
        rc, out, err = cli(*args, controller=ctl.url)
        assert rc == 1 and out == "" and msg in err, (args, rc, out, err)
    assert r.hget("vm_configs:vm1", "host_id") == "h0"
    assert not r.exists("vm_configs:n1")
    # each refusal is in the log once, with who asked
    rc, out, err = cli("events", "--vm", "nosuch", "--json", controller=ctl.url)
    ev = [json.loads(line) for line in out.splitlines()]  # one entry a line
    assert rc == 0 and [e["type"] for e in ev] == ["migration_refused"] * 2 + \
        ["vm_delete_refused"], ev
    assert all(e["by"].startswith("admin@") and e["reason"] == "no vm nosuch" for e in ev), ev
    # known ones: fine, even with no event about them
    rc, out, err = cli("events", "--host", "h2", controller=ctl.url)
    assert rc == 0, (rc, err)
    rc, out, err = cli("host", "h0", controller=ctl.url)
    assert rc == 0 and rows(out)[1][:2] == ["h0", "up"], out
    assert {row[0] for row in rows(out.split("\n\n")[1])[1:]} == {"vm1", "vm2"}, out
    rc, out, err = cli("vm", "vm3", controller=ctl.url)
    assert rc == 0 and rows(out)[1][:2] == ["vm3", "h1"], out
    # a mistyped subcommand stays a usage error, not a VM lookup
    rc, out, err = cli("vm", "destroy", "vm1", controller=ctl.url)
    assert rc == 2 and "unknown subcommand 'destroy'" in err, (rc, err)


def test_option_names_as_typed(cluster):
    ctl, _ = cluster
    for args, said, not_said in (
            (["events", "-n", "many"], "-n: 'many' is not an integer", "--n"),
            (["events", "-n"], "-n needs a value", "--n"),
            (["events", "-fx"], "-f takes no value", "--follow"),
            (["events", "--follow=yes"], "--follow takes no value", None),
            (["top", "--count", "x"], "--count: 'x' is not an integer", None),
            (["vms", "--host", "a/b"], "--host 'a/b' is not an id", None),
            (["vm", "create", "x", "--mem", "256", "--kernel", "k", "--group", "a b"],
             "--group 'a b' is not an id", None)):
        rc, out, err = cli(*args, controller=ctl.url)
        assert rc == 2 and out == "" and said in err, (args, rc, err)
        if not_said:
            assert not_said not in err.split("\nusage:")[0], (args, err)


# --------------------------------------------------------------------- top: q

def _tty_flags(fd):
    lflag = termios.tcgetattr(fd)[3]
    return bool(lflag & termios.ICANON), bool(lflag & termios.ECHO)


def _read_until(fd, needle, timeout):
    buf = b""
    end = time.monotonic() + timeout
    while needle not in buf and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                buf += os.read(fd, 65536)
            except OSError:
                break
    return buf


@pytest.mark.parametrize("how", ["q", "SIGTERM", "SIGINT"])
def test_top_quits_on_q_and_restores_the_terminal(cluster, how):
    """`top` on a terminal (a pty): keys unbuffered and unechoed while it
    runs; q (or a signal) ends it with status 0 and the terminal settings as
    they were."""
    ctl, _ = cluster
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    assert _tty_flags(slave) == (True, True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADEASE_TOKEN")}
    env.update(LOADEASE_CONTROLLER=ctl.url, LOADEASE_TOKEN=TOKEN, TERM="xterm")
    p = subprocess.Popen([BIN, "top", "--interval", "0.3"], stdin=slave, stdout=slave,
                         stderr=slave, env=env, preexec_fn=os.setsid, close_fds=True)
    try:
        seen = _read_until(master, b"(q quits)", 15)
        assert b"(q quits)" in seen and b"\x1b[2J" in seen, seen[-2000:]
        assert _tty_flags(slave) == (False, False), "top reads keys: no line buffer, no echo"
        _read_until(master, b"loadease top", 3)  # a second frame: it keeps running
        assert p.poll() is None
        if how == "q":
            os.write(master, b"q")
        else:
            p.send_signal(getattr(signal, how))
        rc = p.wait(timeout=10)
        rest = _read_until(master, b"\0", 0.5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 0, (how, rc, rest[-2000:])
    assert not [m for m in SANITIZER_MARKS if m.encode() in rest], rest.decode(errors="replace")
    assert termios.tcgetattr(slave) == before, f"{how}: the terminal settings were not restored"
    os.close(master)
    os.close(slave)


def test_top_ignores_other_keys_and_reads_none_without_a_terminal(cluster):
    ctl, _ = cluster
    master, slave = pty.openpty()
    env = {**os.environ, "LOADEASE_CONTROLLER": ctl.url, "LOADEASE_TOKEN": TOKEN}
    p = subprocess.Popen([BIN, "top", "--interval", "0.3"], stdin=slave, stdout=slave,
                         stderr=slave, env=env, preexec_fn=os.setsid, close_fds=True)
    try:
        _read_until(master, b"(q quits)", 15)
        os.write(master, b"x j\n")
        time.sleep(1)
        assert p.poll() is None, "only q quits"
        os.write(master, b"Q")
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)
    # stdin not a terminal: frames as before, no key reading, --count ends it
    rc, out, err = cli("top", "--count", "2", "--interval", "0.2", controller=ctl.url)
    assert rc == 0 and out.count("loadease top") == 2 and "q quits" not in out, (rc, err)


# ------------------------------------------------------------- bash completion

COMPLETION = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "data", "bash-completion", "loadease")


def complete(line, controller=None, token=TOKEN):
    """What bash offers for `line` (the last word, possibly empty, is the one
    completed) with the repository's completion script and the binary under
    test as `loadease` on PATH."""
    words = line.split(" ")
    script = (f"source {COMPLETION}\n"
              f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
              f"COMP_CWORD={len(words) - 1}\n"
              "_loadease\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADEASE_")}
    env["PATH"] = os.path.dirname(BIN) + ":" + env.get("PATH", "/usr/bin:/bin")
    if controller:
        env["LOADEASE_CONTROLLER"] = controller
    if token:
        env["LOADEASE_TOKEN"] = token
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                       text=True, env=env, timeout=30)
    assert p.returncode == 0, p.stderr
    return [w for w in p.stdout.splitlines() if w]


def help_verbs():
    """The operator commands `loadease --help` lists: {verb: [subcommands]}."""
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
    block = out.split("operator commands", 1)[1].split("\n\n", 1)[0]
    verbs = {}
    for line in block.splitlines()[1:]:
        if not line.startswith("  "):
            continue
        name, rest = line.split(None, 1) if " " in line.strip() else (line.strip(), "")
        subs = [s.strip() for s in rest.split("|")] if "|" in rest else []
        verbs[name] = subs
    return verbs


def test_bash_completion_of_every_verb(cluster):
    ctl, _ = cluster
    verbs = help_verbs()
    assert {"cluster", "hosts", "vms", "top", "plan", "events", "vm", "host"} <= set(verbs), \
        verbs
    offered = set(complete("loadease "))
    cli_verbs = set(verbs) - {"version"}
    assert cli_verbs <= offered, f"not completed: {cli_verbs - offered}"
    for group in ("vm", "host"):
        assert verbs[group], verbs
        assert set(complete(f"loadease {group} ")) == set(verbs[group]), group
    assert complete("loadease vm mig") == ["migrate"]
    # bash splits --opt=value at '=': the words are put together again
    assert complete("loadease --timeout = 5 vm mi") == ["migrate"]
    assert complete("loadease vms --timeout = 5 --h") == ["--host", "--help"]
    for verb in cli_verbs - {"vm", "host"}:  # every verb's options, from its --help
        opts = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", subprocess.run(
            [BIN, verb, "--help"], capture_output=True, text=True).stdout))
        assert opts and opts <= set(complete(f"loadease {verb} --")), (verb, opts)
    assert complete("loadease vm migrate vm1 --no") == ["--no-wait"]
    assert complete("loadease host maintenance ") == ["on", "off"]
    # file names for paths
    here = os.path.dirname(COMPLETION)
    assert complete(f"loadease vm create x --kernel {here}/lo") == [COMPLETION]

    # host and VM ids from the controller: the environment's, or the line's
    assert complete("loadease vms --host ", controller=ctl.url) == ["h0", "h1", "h2"]
    assert complete("loadease vm migrate ", controller=ctl.url) == ["vm1", "vm2", "vm3"]
    assert complete("loadease vm migrate vm1 --to h", controller=ctl.url) == ["h0", "h1", "h2"]
    assert complete("loadease host maintenance on h", controller=ctl.url) == ["h0", "h1", "h2"]
    assert complete(f"loadease --controller {ctl.url} vm rm vm") == ["vm1", "vm2", "vm3"]
    assert complete("loadease events --vm vm3", controller=ctl.url) == ["vm3"]
    # no controller answering: nothing offered, and quickly
    t0 = time.monotonic()
    assert complete("loadease vms --host ",
                    controller=f"http://127.0.0.1:{free_tcp_port()}") == []
    assert time.monotonic() - t0 < 10


def test_bash_completion_is_installed():
    build = os.environ.get("LOADEASE_BUILD") or os.path.dirname(BIN)
    p = subprocess.run(["meson", "introspect", "--installed", build], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    installed = json.loads(p.stdout)
    dest = installed.get(os.path.realpath(COMPLETION)) or installed.get(COMPLETION)
    assert dest and dest.endswith("/share/bash-completion/completions/loadease"), installed


# ------------------------------------- actions on a namespace cluster, waited for

def _pty_run(args, env, timeout):
    """Runs loadease with stdout (and stdin) on a pty; (exit code, output)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([BIN, *args], stdin=slave, stdout=slave, stderr=slave, env=env,
                         preexec_fn=os.setsid, close_fds=True)
    os.close(slave)
    buf = b""
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the pty
                    break
                if not chunk:
                    break
                buf += chunk
            elif p.poll() is not None:
                break
        rc = p.wait(timeout=max(1, end - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return rc, buf.decode(errors="replace")


def vm_row(ctl, vm):
    rc, out, err = cli("vms", controller=ctl.url)
    assert rc == 0, err
    return next((row for row in rows(out)[1:] if row[0] == vm), None)


def test_vm_create_migrate_rm_wait_for_the_end(workdir):
    """Real guests on two namespace hosts, every action through the CLI:
    `vm create` places it; `vm migrate` returns when the move has ended, with
    the outcome and its exit code, and `vms` right after shows the VM where
    it runs (done; --no-wait; on a terminal with progress; a timeout; a
    failure rolled back); `vm rm` returns when the controller no longer
    lists it."""
    image = cluster_guest_image()
    settings = {"host.cpu": 2, "host.mem": 2048, "host.net": 100}
    with contextlib.ExitStack() as stack:
        c = stack.enter_context(running_cluster(
            2, os.path.dirname(image[0]), TOKEN, lambda i: settings, "le-ct-cli-"))
        h0, h1 = c.hosts
        r = c.redis()
        ctl = Controller(workdir, c.redis_address, {
            "controller.mode": "recommend", "controller.round_ms": 500}, ip=c.bridge_ip,
            name="ctl-cli-vm", token=TOKEN).start()
        stack.callback(ctl.stop)
        wait_for(lambda: len(ctl.get("/v1/hosts")["hosts"]) == 2, 20, "both hosts")

        # create: the placement result, the registry, and `vms`
        rc, out, err = cli("vm", "create", "g1", "--mem", "256", "--kernel",
                           os.path.basename(image[0]), "--initrd", os.path.basename(image[1]),
                           "--append", f"console=ttyS0 quiet loadease.ip={h0.vm_ip(0)}/24 "
                           f"loadease.sink={h0.br_ip}:9", "--host", "h0", "--json",
                           controller=ctl.url, timeout=180)
        assert rc == 0, (rc, out, err)
        created = json.loads(out)
        assert created["host"] == "h0", created
        wait_for(lambda: guest_status(h0, created["vm"]["serial_socket"], 2), 60,
                 "guest g1 to answer")
        wait_for(lambda: vm_row(ctl, "g1"), 10, "`vms` to list g1")
        assert r.hget("vm_configs:g1", "host_id") == "h0"

        # migrate, waited for: done, and `vms` shows it at once
        rc, out, err = cli("vm", "migrate", "g1", "--to", "h1", controller=ctl.url,
                           timeout=300)
        assert rc == 0 and err == "", (rc, out, err)
        assert "\033" not in out and "\r" not in out, out  # not a terminal: plain lines
        assert re.search(r"^g1 migrated h0 -> h1: done, total \d+ ms, downtime \d+ ms", out,
                         re.M), out
        for line in out.splitlines()[:-1]:  # progress: one plain line per phase
            assert re.match(r"^g1 h0 -> h1: [a-z_]+$", line), out
        row = vm_row(ctl, "g1")
        assert row[1] == "h1" and row[-1] == "-", row
        assert r.hget("vm_configs:g1", "host_id") == "h1"

        # --no-wait: back at once with "started"; the move then ends on its own
        t0 = time.monotonic()
        rc, out, err = cli("vm", "migrate", "g1", "--to", "h0", "--no-wait",
                           controller=ctl.url)
        took = time.monotonic() - t0
        assert rc == 0 and out == ("g1: migration h1 -> h0 started; 'loadease vm g1' shows "
                                   "where it is\n"), (rc, out, err)
        rc, out, _ = cli("vm", "g1", "--json", controller=ctl.url)
        v = json.loads(out)
        assert v["host"] == "h0" or v["migrating"], (took, v)  # under way, or ended already
        wait_for(lambda: (lambda row: row and row[1] == "h0" and row[-1] == "-")(
            vm_row(ctl, "g1")), 120, "g1 back on h0")
        assert r.hget("vm_configs:g1", "host_id") == "h0"

        # on a terminal: progress redrawn in place, then the outcome alone on its line
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOADEASE_")}
        env.update(LOADEASE_CONTROLLER=ctl.url, LOADEASE_TOKEN=TOKEN)
        rc, out = _pty_run(["vm", "migrate", "g1", "--to", "h1"], env, 300)
        assert rc == 0, (rc, out)
        last = out.rsplit("\x1b[K", 1)[-1] if "\x1b[K" in out else out
        assert re.fullmatch(r"g1 migrated h0 -> h1: done, [^\r\n]*\r?\n", last), repr(out)
        for frame in out.split("\r\x1b[K")[1:-1]:
            assert frame.startswith("g1 h0 -> h1: "), repr(out)
        assert vm_row(ctl, "g1")[1] == "h1"

        # --timeout shorter than the move: status 4, and the move goes on
        rc, out, err = cli("vm", "migrate", "g1", "--to", "h0", "--timeout", "0.2",
                           controller=ctl.url)
        assert rc == 4 and "gave up waiting after 0.2 s" in err, (rc, out, err)
        wait_for(lambda: (lambda row: row and row[1] == "h0" and row[-1] == "-")(
            vm_row(ctl, "g1")), 120, "g1 on h0 after the move it gave up waiting for")

        # a migration that fails: status 1, the reason, and where the VM stays
        h1.kill_libvirtd()
        try:
            rc, out, err = cli("vm", "migrate", "g1", "--to", "h1", controller=ctl.url,
                               timeout=300)
            assert rc == 1 and out == "", (rc, out, err)
            assert err.startswith("loadease vm migrate: ") and "h1" in err.splitlines()[0], err
            assert "loadease vm migrate: failed; rolled back: g1 keeps running on h0\n" in err, \
                err
            assert vm_row(ctl, "g1")[1] == "h0"
            assert r.hget("vm_configs:g1", "host_id") == "h0"
        finally:
            h1.start_libvirtd()

        # rm, waited for: `vms` no longer lists it, `vm g1` is an error
        rc, out, err = cli("vm", "rm", "g1", controller=ctl.url, timeout=120)
        assert rc == 0 and out == "g1 deleted (it ran on h0)\n", (rc, out, err)
        assert vm_row(ctl, "g1") is None
        rc, out, err = cli("vm", "g1", controller=ctl.url)
        assert rc == 1 and "no vm g1" in err, (rc, err)
        assert not r.sismember("vms_in_host:h0", "g1")
