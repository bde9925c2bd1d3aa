"""Live migration agent to agent (src/agent/vmm.c vmm_migrate, vmm_incoming,
vmm_incoming_end; src/agent/api.c POST /v1/vms/<id>/migrate {"to": host},
/v1/incoming) on the multi-host harness (tests/cluster.py): real agents in
network namespaces, real QEMU/TCG guests (the tools/guest image), one Redis.

Checked on what a user relies on:
- a guest under CPU load moves h0 -> h1 and back: its counter keeps rising
  and its uptime goes on (no reboot), the load it was given is still set,
  the registry names the new host only (vms_in_host, vm_configs host_id and
  the pid of a live QEMU in that host's namespace), the new host's agent
  reports it, the old host keeps no QEMU, tap or state dir of it,
  migration:<vm> is gone and a migration_done event tells total, downtime
  and bytes; agents restarted with VMs running (one of them migrated in)
  adopt all of them and kill none;
- the destination's QEMU killed mid-migration: a 5xx JSON error naming the
  step, the VM runs on at the source, the registry is unchanged, the
  destination is clean, a migration_failed event;
- bad requests (same host, unknown host, host down or in maintenance, a
  second migration while one runs, no or wrong token, a bad body, an
  unknown VM): a 4xx JSON error {"error": {code, message}} naming the
  problem, nothing started anywhere.

The load is `cpu 20` without `mem`: under TCG, QEMU 7.2's live migration of
a guest that rewrites memory (`cpu 30` + `mem 32`, 256 MiB, 1 vCPU, over
loopback) crashed the destination's kernel in 4 of 20 moves with
`-accel tcg` and in 6 of 20 with `-accel tcg,thread=single` (so
single-threaded TCG is no cure); `cpu 20` alone moved cleanly 20 times of 20
(see bench/README.md, "## migration"). A memory-dirtying load would make
this file flaky.

Needs root, `ip netns`, /dev/net/tun, redis-server and qemu-system-x86_64;
skipped with the reason otherwise. At most two guests (256 MiB) at a time.
The image is built by scripts/guest-image into $LOADEASE_GUEST_DIR (default
build/guest), which is every host's vm.images_dir. Traffic stays on the
cluster's own 10.233.x / 10.234.x addresses and unix sockets.
"""
import contextlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time

import pytest

from conftest import REPO, cluster_guest_image, running_cluster, wait_for

sys.path.insert(0, os.path.join(REPO, "tests"))
import cluster as lecluster  # noqa: E402

TOKEN = "migration-test-token"
MEM = 256
SLOW_MBIT = 8  # vm.migrate_bandwidth_mbit of the throttled cluster: 1 MB/s


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def image():
    """(kernel, initrd) from scripts/guest-image, built once."""
    return cluster_guest_image()



class Slow:
    """The throttled cluster (every agent: vm.migrate_bandwidth_mbit = 8, so a
    migration of the 256 MiB guest takes many seconds) with one guest on h0,
    shared by the tests that leave it there."""

    def __init__(self, c, vm):
        self.c, self.vm, self.name = c, vm, vm["id"]
        self.r = c.redis()


@pytest.fixture(scope="module")
def slow(image):
    with running_cluster(3, os.path.dirname(image[0]), TOKEN,
                         {"vm.migrate_bandwidth_mbit": SLOW_MBIT}, "le-ct-migration-") as c:
        vm = boot(c.host(0), f"mig{os.getpid()}s", image)
        assert port_cmd(vm["serial_socket"], "cpu 20") == "ok"
        yield Slow(c, vm)


# --------------------------------------------------------------------------- helpers


def port_cmd(sock_path, line, timeout=10):
    """One command on the guest's load port (a fresh connection); the reply."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(line.encode() + b"\n")
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        if b"\n" not in buf:
            raise AssertionError(f"no reply to {line!r} on {sock_path} within {timeout} s")
        return buf.split(b"\n", 1)[0].decode()
    finally:
        s.close()


def status(sock_path, timeout=10):
    return json.loads(port_cmd(sock_path, "status", timeout))


def keeps_running(sock_path, since, secs=3.0):
    """The guest's counter and uptime rise past `since` and go on rising for
    `secs` seconds (no reboot, no hang); the last status."""
    prev = since
    end = time.monotonic() + secs
    while True:
        st = status(sock_path)
        assert st["counter"] > prev["counter"] and st["uptime_s"] > prev["uptime_s"], \
            f"the guest stalled or rebooted: {prev} then {st}"
        prev = st
        if time.monotonic() >= end:
            return st
        time.sleep(0.5)


def boot(h, name, image, vm_index=0):
    """POST /v1/vms on h, then the guest's first status on its load port."""
    spec = {"name": name, "vcpus": 1, "mem_mib": MEM,
            "kernel": os.path.basename(image[0]), "initrd": os.path.basename(image[1]),
            "append": f"console=ttyS0 quiet loadease.ip={h.vm_ip(vm_index)}/24 "
                      f"loadease.sink={h.br_ip}:9"}
    st, vm = h.http("POST", "/v1/vms", spec)
    assert st == 201, f"POST /v1/vms on {h.id}: {st} {vm}\nagent log:\n{h.log(2000)}"
    wait_for(lambda: status(vm["serial_socket"], 2), 40, f"guest {name} to answer status")
    return vm


def qemus(c, name):
    """{host id: [pids]} of the live QEMUs named loadease-<name>, by the
    network namespace they run in ('elsewhere' for none of the cluster's)."""
    want = f"loadease-{name}"
    by_ino = {os.stat(f"/run/netns/{h.ns}").st_ino: h.id for h in c.hosts}
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        argv = lecluster._cmdline(int(d))
        if not any(a == "-name" and b == want for a, b in zip(argv, argv[1:])):
            continue
        try:
            ino = os.stat(f"/proc/{d}/ns/net").st_ino
        except OSError:
            continue
        if lecluster._pid_alive(int(d)):
            out.setdefault(by_ino.get(ino, "elsewhere"), []).append(int(d))
    return out


def links(h):
    out = h.run("ip", "-o", "link", "show").stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def vm_dir(h, name):
    return os.path.join(h.state_dir, "vms", name)


def what_is_left(c, h, name, tap=None):
    """What host h still has of VM `name`: QEMU, tap, state dir."""
    left = [f"qemu {p}" for p in qemus(c, name).get(h.id, [])]
    if tap and tap in links(h):
        left.append(f"tap {tap}")
    if os.path.lexists(vm_dir(h, name)):
        left.append(f"state dir {vm_dir(h, name)}: {os.listdir(vm_dir(h, name))}")
    return left


def clean_soon(c, h, name, tap=None, secs=5):
    """what_is_left(), once it is empty or after `secs` seconds."""
    deadline = time.monotonic() + secs
    while what_is_left(c, h, name, tap) and time.monotonic() < deadline:
        time.sleep(0.1)
    return what_is_left(c, h, name, tap)


def events(r, type_=None, vm=None):
    return [f for _, f in r.xrange("events")
            if (type_ is None or f.get("type") == type_) and (vm is None or f.get("vm") == vm)]


def migrate(h, name, to, timeout=120, **kw):
    return h.http("POST", f"/v1/vms/{name}/migrate", {"to": to}, timeout=timeout, **kw)


def reported_ok(h, name, pid):
    """h's agent reports the VM: sampled (status ok) and run by its driver
    with that pid."""
    def ok():
        st, j = h.http("GET", f"/v1/vms/{name}", token=False, timeout=5)
        return st == 200 and j.get("status") == "ok" and j.get("pid") == pid \
            and j.get("driver", {}).get("pid") == pid \
            and j.get("driver", {}).get("state") == "running" and j
    return wait_for(ok, 15, f"{h.id}'s GET /v1/vms/{name}: status ok, pid {pid}")


def assert_moved(c, name, src, dst, before, tap_src, out):
    """Everything a finished migration src -> dst promises; the guest's
    last status."""
    r = c.redis()
    assert out["vm"] == name and (out["from"], out["to"]) == (src.id, dst.id), out
    assert out["total_ms"] > 0 and 0 <= out["downtime_ms"] <= out["total_ms"], out
    assert out["bytes"] > 1 << 20, out  # at least the guest's kernel and initramfs
    cfg = r.hgetall(f"vm_configs:{name}")
    assert cfg.get("host_id") == dst.id and cfg.get("state") == "running", cfg
    assert name in r.smembers(f"vms_in_host:{dst.id}")
    assert name not in r.smembers(f"vms_in_host:{src.id}")
    pid = int(cfg["pid"])
    assert qemus(c, name) == {dst.id: [pid]}, (qemus(c, name), cfg)
    assert cfg["serial_socket"] == os.path.join(vm_dir(dst, name), "guestload.sock"), cfg
    assert cfg["tap_device"] in links(dst), cfg

    # the same guest, still loaded, its clocks going on
    after = keeps_running(cfg["serial_socket"], before)
    assert (after["cpu"], after["mem_mib"]) == (before["cpu"], before["mem_mib"]), \
        (before, after)
    assert after["uptime_s"] >= before["uptime_s"] + 1, (before, after)

    reported_ok(dst, name, pid)
    assert clean_soon(c, src, name, tap_src) == []
    wait_for(lambda: src.http("GET", f"/v1/vms/{name}", token=False, timeout=5)[0] == 404,
             5, f"{src.id}'s GET /v1/vms/{name} 404")
    assert not r.exists(f"migration:{name}"), r.hgetall(f"migration:{name}")
    return after, pid


# --------------------------------------------------------------------------- tests


def test_live_migration_there_and_back_and_agent_restarts_adopt_every_vm(image):
    """h0 -> h1 under `cpu 20`, both agents restarted (h1 with the migrated
    VM, h0 with another), then h1 -> h0."""
    with running_cluster(2, os.path.dirname(image[0]), TOKEN, prefix="le-ct-migration-") as c:
        h0, h1 = c.host(0), c.host(1)
        r = c.redis()
        name, other = f"mig{os.getpid()}a", f"mig{os.getpid()}b"
        vm = boot(h0, name, image, 0)
        vm2 = boot(h0, other, image, 1)
        assert port_cmd(vm["serial_socket"], "cpu 20") == "ok"
        time.sleep(1)
        before = status(vm["serial_socket"])

        t0 = time.monotonic()
        st, out = migrate(h0, name, "h1")
        took = time.monotonic() - t0
        assert st == 200, f"{st} {out}\nh0 log:\n{h0.log(3000)}\nh1 log:\n{h1.log(3000)}"
        print(f"\nh0 -> h1 in {took:.1f} s: {out}")
        after, pid1 = assert_moved(c, name, h0, h1, before, vm["tap"], out)
        ev = events(r, "migration_done", name)
        assert len(ev) == 1 and ev[0]["host"] == "h0", events(r)
        assert ev[0]["msg"] == (f"to h1: total {out['total_ms']} ms, downtime "
                                f"{out['downtime_ms']} ms, {out['bytes']} bytes"), ev
        assert not events(r, "migration_failed")
        # the other VM never moved
        assert qemus(c, other) == {"h0": [vm2["pid"]]}
        assert r.hget(f"vm_configs:{other}", "host_id") == "h0"

        # restart both agents with their VMs running: all adopted, none killed
        for h in (h0, h1):
            h.stop()
            h.start()
        for h, n, pid in ((h1, name, pid1), (h0, other, vm2["pid"])):
            assert f"vm {n}: adopted running qemu {pid}" in h.log(), h.log(3000)
            assert r.hget(f"vm_configs:{n}", "pid") == str(pid)
            assert r.smembers(f"vms_in_host:{h.id}") == {n}
            reported_ok(h, n, pid)
        assert qemus(c, name) == {"h1": [pid1]} and qemus(c, other) == {"h0": [vm2["pid"]]}
        after = keeps_running(os.path.join(vm_dir(h1, name), "guestload.sock"), after, 1)
        assert not events(r, "vm_lost")

        # and back, from the agent that adopted it
        tap1 = r.hget(f"vm_configs:{name}", "tap_device")
        st, out = migrate(h1, name, "h0")
        assert st == 200, f"{st} {out}\nh1 log:\n{h1.log(3000)}\nh0 log:\n{h0.log(3000)}"
        print(f"h1 -> h0: {out}")
        assert_moved(c, name, h1, h0, after, tap1, out)
        ev = events(r, "migration_done", name)
        assert [e["host"] for e in ev] == ["h0", "h1"], ev
        assert r.smembers("vms_in_host:h0") == {name, other}
        assert r.smembers("vms_in_host:h1") == set()
        assert os.listdir(os.path.join(h1.state_dir, "vms")) == []

        st, out = h0.http("DELETE", f"/v1/vms/{name}")
        assert st == 200, (st, out)
        assert not qemus(c, name)


def assert_error(st, out, status_, code, *words):
    assert st == status_ and isinstance(out, dict), (st, out)
    err = out.get("error") or {}
    assert err.get("code") == code and all(w in err.get("message", "") for w in words), \
        (st, out)


def nothing_started(s, cfg_before):
    """No migration of s.name started anywhere: registry as before, no
    migration:<vm>, no migration event, no QEMU or state of it but h0's."""
    c, r, name = s.c, s.r, s.name
    assert r.hgetall(f"vm_configs:{name}") == cfg_before
    assert r.smembers("vms_in_host:h0") == {name}
    assert not r.smembers("vms_in_host:h1") and not r.smembers("vms_in_host:h2")
    assert not r.exists(f"migration:{name}"), r.hgetall(f"migration:{name}")
    assert not [e for e in events(r) if e["type"].startswith("migration")], events(r)
    assert qemus(c, name) == {"h0": [s.vm["pid"]]}, qemus(c, name)
    for h in c.hosts[1:]:
        assert os.listdir(os.path.join(h.state_dir, "vms")) == [], h.id
        assert json.loads(h.run("ip", "-j", "link", "show", "master", "br0").stdout) == [], h.id


def test_bad_migration_requests_are_refused_and_start_nothing(slow):
    c, r, name = slow.c, slow.r, slow.name
    h0, h1, h2 = c.hosts
    cfg0 = r.hgetall(f"vm_configs:{name}")
    before = status(slow.vm["serial_socket"])
    path = f"/v1/vms/{name}/migrate"
    cases = [
        # (what, request kwargs, status, code, words of the message)
        ("to the same host", dict(body={"to": "h0"}), 400, "bad_request", name, "h0"),
        ("to an unknown host", dict(body={"to": "h9"}), 404, "not_found", "h9", "unknown"),
        ("to a host id that is no id", dict(body={"to": "../h1"}), 400, "bad_request",
         "'to'"),
        ("an empty object", dict(body={}), 400, "bad_request", "\"to\""),
        ("'to' not a string", dict(body={"to": 1}), 400, "bad_request", "\"to\""),
        ("an extra field", dict(body={"to": "h1", "live": True}), 400, "bad_request",
         "\"to\""),
        ("a JSON array", dict(body=b'["h1"]'), 400, "bad_request", ""),
        ("not JSON", dict(body=b"to=h1"), 400, "bad_json", ""),
        ("no bearer token", dict(body={"to": "h1"}, token=False), 401, "unauthorized",
         "Bearer"),
    ]
    problems = []
    for what, kw, st_want, code, *words in cases:
        st, out = h0.http("POST", path, timeout=30, **kw)
        try:
            assert_error(st, out, st_want, code, *words)
        except AssertionError:
            problems.append(f"{what}: {st} {out}")
    # a wrong token: the harness sends the cluster's; a raw request sends another
    st, out = lecluster._http(h0.api + path, "POST", {"to": "h1"}, TOKEN + "x")
    if st != 401 or (out.get("error") or {}).get("code") != "unauthorized":
        problems.append(f"wrong token: {st} {out}")
    st, out = migrate(h0, f"{name}nope", "h1", timeout=30)
    if st != 404 or name + "nope" not in (out.get("error") or {}).get("message", ""):
        problems.append(f"unknown vm: {st} {out}")
    # the VM runs on h0: h1 has nothing to migrate
    st, out = migrate(h1, name, "h2", timeout=30)
    if st != 404 or "h1" not in (out.get("error") or {}).get("message", ""):
        problems.append(f"migrate asked of a host that does not run it: {st} {out}")

    # a destination that is down or in maintenance (set in Redis), and one
    # whose agent stopped (it marks itself down)
    for state in ("down", "maintenance"):
        r.hset("host_config:h1", "state", state)
        try:
            st, out = migrate(h0, name, "h1", timeout=30)
        finally:
            r.hset("host_config:h1", "state", "up")
        if st != 409 or (out.get("error") or {}).get("code") != "conflict" or \
                f"host h1 is {state}" not in out["error"]["message"]:
            problems.append(f"to a host in state {state}: {st} {out}")
    h2.stop()
    try:
        assert r.hget("host_config:h2", "state") == "down"
        st, out = migrate(h0, name, "h2", timeout=30)
        if st != 409 or "host h2 is down" not in (out.get("error") or {}).get("message", ""):
            problems.append(f"to a host whose agent stopped: {st} {out}")
    finally:
        h2.start()
    assert not problems, "\n".join(problems)
    nothing_started(slow, cfg0)
    keeps_running(slow.vm["serial_socket"], before, 1)


def wait_incoming(s, dst):
    """The destination's QEMU once dst shows the incoming VM (state dir,
    pid file of a live process) and the source's QMP migrate has begun."""
    pid_file = os.path.join(vm_dir(dst, s.name), "qemu.pid")

    def started():
        with open(pid_file) as f:
            pid = int(f.read().split()[0])
        phase = s.r.hget(f"migration:{s.name}", "phase")
        return lecluster._pid_alive(pid) and phase == "migrating" and pid
    return wait_for(started, 30, f"{dst.id} to run the incoming QEMU of {s.name}")


def migrate_in_thread(h, name, to):
    res = {}

    def run():
        try:
            res["reply"] = migrate(h, name, to, timeout=150)
        except Exception as e:  # noqa: BLE001 - reported by the test
            res["reply"] = (None, repr(e))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, res


def test_a_second_migration_while_one_runs_is_refused(slow):
    c, r, name = slow.c, slow.r, slow.name
    h0, h1, h2 = c.hosts
    cfg0 = r.hgetall(f"vm_configs:{name}")
    t, res = migrate_in_thread(h0, name, "h1")
    dst_pid = None
    try:
        dst_pid = wait_incoming(slow, h1)
        time.sleep(0.5)
        assert t.is_alive(), f"the throttled migration is over already: {res}"
        for to in ("h1", "h2"):
            try:
                st, out = migrate(h0, name, to, timeout=5)
            except OSError as e:  # socket.timeout: no answer while the first runs
                raise AssertionError(f"second migrate to {to}: no answer within 5 s ({e})")
            assert_error(st, out, 409, "conflict", "already being migrated")
            assert qemus(c, name) == {"h0": [slow.vm["pid"]], "h1": [dst_pid]}
            assert os.listdir(os.path.join(h2.state_dir, "vms")) == []
    finally:
        # end the first migration (the destination dies) with every host
        # refusing migrations, so a queued second request starts nothing
        for h in c.hosts:
            r.hset(f"host_config:{h.id}", "state", "maintenance")
        try:
            for _ in range(20):
                for pids in (qemus(c, name).get("h1", []), [dst_pid] if dst_pid else []):
                    for p in pids:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(p, signal.SIGKILL)
                t.join(1)
                if not t.is_alive():
                    break
            # the source's lock is free again once a GET of the VM answers at once
            wait_for(lambda: h0.http("GET", f"/v1/vms/{name}", token=False, timeout=1)[0]
                     == 200, 40, "h0 to finish with the migrate requests")
            wait_for(lambda: not r.exists(f"migration:{name}"), 10, "migration: key to go")
        finally:
            for h in c.hosts:
                r.hset(f"host_config:{h.id}", "state", "up")
    assert res["reply"][0] == 502, res
    r.delete("events")  # what the first, failed migration wrote
    nothing_started(slow, cfg0)


def test_destination_killed_mid_migration_leaves_the_vm_on_the_source(slow):
    c, r, name = slow.c, slow.r, slow.name
    h0, h1 = c.host(0), c.host(1)
    r.delete("events")
    cfg0 = r.hgetall(f"vm_configs:{name}")
    before = status(slow.vm["serial_socket"])
    t, res = migrate_in_thread(h0, name, "h1")
    try:
        dst_pid = wait_incoming(slow, h1)
        tap1 = json.loads(open(os.path.join(vm_dir(h1, name), "spec.json")).read())["tap"]
        time.sleep(1)
        assert t.is_alive(), f"the throttled migration is over already: {res}"
        assert qemus(c, name) == {"h0": [slow.vm["pid"]], "h1": [dst_pid]}
        os.kill(dst_pid, signal.SIGKILL)
        t0 = time.monotonic()
        t.join(40)
        assert not t.is_alive(), "POST .../migrate did not answer within 40 s of the kill"
        print(f"\nanswered {time.monotonic() - t0:.1f} s after the kill: {res['reply']}")
    finally:
        if t.is_alive():
            for p in qemus(c, name).get("h1", []):
                os.kill(p, signal.SIGKILL)
            t.join(40)
    st, out = res["reply"]
    assert 500 <= st < 600, (st, out)
    assert_error(st, out, st, "migration_failed", name, "h1", "following the migration failed")

    # the VM runs on at h0, as it was
    keeps_running(slow.vm["serial_socket"], before)
    assert qemus(c, name) == {"h0": [slow.vm["pid"]]}, qemus(c, name)
    assert r.hgetall(f"vm_configs:{name}") == cfg0
    assert r.smembers("vms_in_host:h0") == {name} and not r.smembers("vms_in_host:h1")
    st, j = h0.http("GET", f"/v1/vms/{name}", token=False)
    assert st == 200 and j["driver"]["state"] == "running", (st, j)
    # nothing stays at the destination, and the lock is released
    assert clean_soon(c, h1, name, tap1, 10) == []
    assert os.listdir(os.path.join(h1.state_dir, "vms")) == []
    st, j = h1.http("GET", f"/v1/vms/{name}", token=False)
    assert st == 404, (st, j)
    assert not r.exists(f"migration:{name}"), r.hgetall(f"migration:{name}")
    ev = events(r, "migration_failed", name)
    assert len(ev) == 1 and ev[0]["host"] == "h0", events(r)
    assert re.match(r"to h1: following the migration failed: ", ev[0]["msg"]), ev
    assert not events(r, "migration_done")
    # and it can still be managed: DELETE works
    st, out = h0.http("DELETE", f"/v1/vms/{name}")
    assert st == 200, (st, out)
    assert not qemus(c, name)
