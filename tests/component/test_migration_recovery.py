"""Faults in the middle of a live migration through libvirt (src/agent/
virt_migrate.c, the reconcile in src/agent/virt.c) on a two-host namespace
cluster (tests/cluster.py) with real libvirtds, a real QEMU/TCG guest and a
real Redis: never lose the VM, never run two.

Each fault hits a migration h0 -> h1 that is under way (slowed by
vm.migrate_bandwidth_mbit on the agents, its 128 MiB guest rewriting
memory, so it does not converge on its own; migration:<vm> says phase
transfer with data sent, h1's libvirt has the incoming copy paused). Where
the migration is to finish, the test lets it: the guest stops rewriting
memory (QEMU 7.2's TCG corrupts a moved guest that rewrites much, see
test_migration.py) and the source's libvirt gets its cap lifted (virsh
migrate-setspeed). Afterwards the VM runs on exactly one host, its guest
still counting, the registry (vm_configs host_id and pid, vms_in_host) names
that host within one reconcile period (vm.reconcile_s = 2, plus slack for a
loaded machine) of the fault's end, and no migration:<vm> is left:

1. h1's libvirtd SIGKILLed: the migration fails at once, the VM stays on
   h0; h1's restarted libvirtd drops the incoming copy its predecessor left;
2. h1 dies (agent, libvirtd, QEMUs, virtlogd SIGKILLed): the VM stays on
   h0; h1 comes back empty;
3. h1's link cut, then restored once the migration call has answered: the
   VM stays on h0 (libvirt's keepalive gives up on the destination);
4. h0's agent SIGKILLed and restarted: libvirt finishes the migration alone
   and the reconcile of both agents settles the registry on h1;
5. Redis SIGSTOPped while the migration finishes, or killed and restarted
   from a snapshot taken at that moment (the registry it comes back with
   names h0 and has the migration record): settled on h1 once it is back;
6. Redis restarted with its data lost during the migration, and again after
   it: the agents rebuild host_ids, host_config, vms_in_host and vm_configs.

Needs root, `ip netns`, libvirtd, redis-server and qemu-system-x86_64;
skipped with the reason otherwise.
"""
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import cluster_guest_image, running_cluster, wait_for
from test_migration import (boot, domain_pid, domstate, guest_cmd, keeps_running, lecluster,
                            migrate_in_thread, qemus, rcli, settled_on, status, wait_settled,
                            wait_transfer, where)

TOKEN = "migrec-token"
RECONCILE_S = 2
BOUND = RECONCILE_S + 4  # one reconcile period, plus slack for a loaded machine
SLOW_MBIT = 16           # 2 MiB/s, with the guest rewriting 8 MiB/s: no convergence
DIRTY = "mem 8"
_n = [0]


@pytest.fixture(scope="module")
def cl():
    image = cluster_guest_image()
    settings = {"vm.reconcile_s": RECONCILE_S, "vm.migrate_bandwidth_mbit": SLOW_MBIT,
                "vm.migrate_timeout_ms": 120000, "vm.peer_timeout_ms": 2000,
                "redis.timeout_ms": 500, "redis.backoff_max_ms": 1000}
    with running_cluster(2, os.path.dirname(image[0]), TOKEN, settings,
                         "le-ct-migrec-") as c:
        c.r = rcli(c)
        yield c
        restore(c)


# --------------------------------------------------------------------------- Redis


def redis_kill(c):
    c.redis_proc.send_signal(signal.SIGCONT)
    c.redis_proc.kill()
    c.redis_proc.wait(timeout=10)


def redis_start(c, keep_data):
    """redis-server again on the same address and port, as the harness
    started it; from its dump.rdb when keep_data, else empty."""
    dump = os.path.join(c.redis_dir, "dump.rdb")
    if not keep_data and os.path.exists(dump):
        os.unlink(dump)
    c.redis_proc = subprocess.Popen(c.redis_proc.args, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    preexec_fn=lecluster._die_with_parent)
    wait_for(lambda: c.redis_proc.poll() is None and c.r.ping(), 10, "redis-server back")


def restore(c):
    """Every host back as the cluster started: link up, Redis running,
    libvirtd and agent running."""
    for h in c.hosts:
        h.restore_link()
    if c.redis_proc.poll() is None:
        c.redis_proc.send_signal(signal.SIGCONT)
    else:
        redis_start(c, keep_data=False)
    for h in c.hosts:
        if not h.libvirtd_pid():
            h.start_libvirtd()
        if not h.alive():
            h.start()


@pytest.fixture
def vm(cl):
    """A 128 MiB guest on h0 rewriting memory; afterwards the hosts are
    restored and the guest destroyed wherever it runs."""
    c = cl
    restore(c)
    _n[0] += 1
    name = f"rec{os.getpid()}n{_n[0]}"
    boot(c.host(0), name, 128, _n[0], (DIRTY,))
    c.r.delete("events")
    yield name
    restore(c)
    for h in c.hosts:
        h.virsh("destroy", name, check=False)
        h.virsh("undefine", name, check=False)
    wait_for(lambda: not any(c.r.exists(k) for k in (f"vm_configs:{name}",
                                                     f"migration:{name}")) and
             not any(name in c.r.smembers(f"vms_in_host:{h.id}") for h in c.hosts),
             3 * BOUND, f"{name} to leave the registry")


# --------------------------------------------------------------------------- helpers


def start_migration(c, name):
    """h0 -> h1, under way: (the guest's status before, thread, result)."""
    h0, h1 = c.hosts
    before = status(h0, name)
    t, res = migrate_in_thread(h0, name, "h1")
    m = wait_transfer(c.r, name)
    wait_for(lambda: domstate(h1, name) == "paused (migrating)", 10,
             f"h1 to hold the incoming {name} paused")
    assert t.is_alive(), f"the slowed migration is over already: {res}"
    print(f"\nunder way: {m}")
    return before, t, res


def let_it_finish(c, name):
    """The guest stops rewriting memory, the source's cap goes: the
    migration converges within seconds."""
    h0 = c.host(0)
    assert guest_cmd(h0, name, "mem 0") == "ok"
    h0.virsh("migrate-setspeed", name, "--bandwidth", "8000")


def answer(t, res, timeout, what):
    t0 = time.monotonic()
    t.join(timeout)
    assert not t.is_alive(), f"POST .../migrate did not answer within {timeout} s of {what}"
    print(f"answered {time.monotonic() - t0:.1f} s after {what}: {res['reply']}")
    return res["reply"]


def libvirt_done(c, name):
    """Where libvirt left the VM once no host's libvirt holds it paused or
    runs a job on it: the host, or None while it is still moving."""
    runs = []
    for h in c.hosts:
        st = domstate(h, name)
        if st is None:
            continue
        if not st.startswith("running"):
            return None
        job = h.virsh("domjobinfo", name, check=False).stdout
        if not re.search(r"^Job type:\s+None", job, re.M):
            return None
        runs.append(h)
    return runs[0] if len(runs) == 1 else None


def wait_libvirt_done(c, name, timeout=60):
    t0 = time.monotonic()
    h = wait_for(lambda: libvirt_done(c, name), timeout, f"libvirt to finish with {name}",
                 interval=0.2)
    print(f"libvirt: runs on {h.id} ({time.monotonic() - t0:.1f} s): "
          f"{ {x.id: domstate(x, name) for x in c.hosts} }")
    return h


def assert_after(c, name, h, before):
    """The VM on h alone, the guest counting on."""
    keeps_running(h, name, before)
    assert list(qemus(c, name)) == [h.id], where(c, name)


# --------------------------------------------------------------------------- faults


def test_destination_libvirtd_killed(cl, vm):
    c, name = cl, vm
    h0, h1 = c.hosts
    pid0 = domain_pid(h0, name)
    before, t, res = start_migration(c, name)
    h1.kill_libvirtd()
    st, out = answer(t, res, 30, "the kill")
    assert st == 502 and out["error"]["code"] == "migration_failed", (st, out)
    assert "keeps running on h0" in out["error"]["message"], out
    assert qemus(c, name)["h0"] == [pid0]
    # the incoming copy the killed libvirtd left: its successor drops it
    print(f"h1's libvirtd dead: {where(c, name)}")
    t0 = time.monotonic()
    h1.start_libvirtd()
    took = wait_settled(c, name, h0, BOUND)
    print(f"settled on h0 {took:.1f} s after h1's libvirtd came back "
          f"({time.monotonic() - t0:.1f} s)")
    assert domain_pid(h0, name) == pid0
    assert_after(c, name, h0, before)
    ev = [e["type"] for e in c.r.xrange("events") for e in [e[1]] if e.get("vm") == name]
    assert "migration_failed" in ev and "migration_done" not in ev, ev


def test_destination_host_dies(cl, vm):
    c, name = cl, vm
    h0, h1 = c.hosts
    pid0 = domain_pid(h0, name)
    before, t, res = start_migration(c, name)
    h1.kill_host()
    st, out = answer(t, res, 30, "h1's death")
    assert st == 502 and "keeps running on h0" in out["error"]["message"], (st, out)
    took = wait_settled(c, name, h0, BOUND, "h1 dead: ")
    print(f"settled on h0 {took:.1f} s after the answer")
    assert_after(c, name, h0, before)
    # h1 boots again, empty
    h1.start_libvirtd()
    h1.start()
    assert h1.domains(all=True) == [] and h1.qemu_pids() == []
    assert wait_settled(c, name, h0, BOUND) < BOUND
    assert domain_pid(h0, name) == pid0


def test_link_cut_then_restored(cl, vm):
    c, name = cl, vm
    h0, h1 = c.hosts
    before, t, res = start_migration(c, name)
    t_cut = time.monotonic()
    h1.cut_link()
    try:
        st, out = answer(t, res, 60, "the cut")
    finally:
        h1.restore_link()
    t_back = time.monotonic()
    print(f"link down for {t_back - t_cut:.1f} s; h0: {domstate(h0, name)}, "
          f"h1: {domstate(h1, name)}")
    assert st == 502 and "keeps running on h0" in out["error"]["message"], (st, out)
    took = wait_settled(c, name, h0, BOUND, "after the link came back: ")
    print(f"settled on h0 {took:.1f} s after the link came back")
    assert_after(c, name, h0, before)


def test_source_agent_killed_and_restarted(cl, vm):
    c, name = cl, vm
    h0, h1 = c.hosts
    before, t, res = start_migration(c, name)
    h0.kill()
    answer(t, res, 10, "the agent's death")
    assert res["reply"][0] is None, res  # the connection died with the agent
    let_it_finish(c, name)
    h = wait_libvirt_done(c, name)
    t0 = time.monotonic()
    h0.start()
    took = wait_settled(c, name, h, BOUND, "after h0's agent came back: ")
    print(f"settled on {h.id} {took:.1f} s after h0's agent restarted "
          f"({time.monotonic() - t0:.1f} s)")
    assert h is h1, "libvirt aborted the migration when the agent died"
    assert_after(c, name, h, before)


@pytest.mark.parametrize("how", ["sigstop", "restart"])
def test_redis_gone_while_the_migration_finishes(cl, vm, how):
    """sigstop: Redis frozen, then thawed; restart: killed (its data as at
    that moment saved first) and started again from that snapshot."""
    c, name = cl, vm
    h0, h1 = c.hosts
    before, t, res = start_migration(c, name)
    if how == "sigstop":
        c.redis_proc.send_signal(signal.SIGSTOP)
    else:
        c.r.save()
        redis_kill(c)
    t0 = time.monotonic()
    try:
        let_it_finish(c, name)
        st, out = answer(t, res, 60, "Redis going")
        h = wait_libvirt_done(c, name)
        assert h is h1 and st == 200, (h.id, st, out)
    finally:
        if how == "sigstop":
            c.redis_proc.send_signal(signal.SIGCONT)
        else:
            redis_start(c, keep_data=True)
    print(f"Redis back after {time.monotonic() - t0:.1f} s: {where(c, name)}")
    took = wait_settled(c, name, h1, BOUND, "after Redis came back: ")
    print(f"settled on h1 {took:.1f} s after Redis came back")
    assert_after(c, name, h1, before)


def registry_complete(c, name, h):
    """None when the registry holds both hosts and the VM on h in full."""
    r = c.r
    if r.smembers("host_ids") != {x.id for x in c.hosts}:
        return f"host_ids {r.smembers('host_ids')}"
    for x in c.hosts:
        hc = r.hgetall(f"host_config:{x.id}")
        if hc.get("state") != "up" or hc.get("vm_enabled") != "1" or \
                hc.get("libvirt_uri") != x.libvirt_tcp_uri:
            return f"host_config:{x.id} {hc}"
    cfg = r.hgetall(f"vm_configs:{name}")
    want = {"host_id": h.id, "name": name, "mem": "128", "cpu": "1", "state": "running",
            "pid": str(domain_pid(h, name)), "managed": "1", "serial_socket":
            h.channel_path(name)}
    if any(cfg.get(k) != v for k, v in want.items()) or not cfg.get("uuid") or \
            not cfg.get("tap_device"):
        return f"vm_configs:{name} {cfg}"
    return None


def test_redis_loses_its_data_during_and_after_a_migration(cl, vm):
    c, name = cl, vm
    h0, h1 = c.hosts
    before, t, res = start_migration(c, name)
    redis_kill(c)
    redis_start(c, keep_data=False)
    t0 = time.monotonic()
    let_it_finish(c, name)
    st, out = answer(t, res, 60, "the flush")
    assert st == 200 and out["to"] == "h1", (st, out)
    took = wait_settled(c, name, h1, BOUND, "Redis emptied mid-migration: ")
    wait_for(lambda: registry_complete(c, name, h1) is None, BOUND,
             "the registry rebuilt")
    print(f"registry rebuilt {time.monotonic() - t0:.1f} s after the restart "
          f"(settled {took:.1f} s after the answer)")
    after = keeps_running(h1, name, before)

    # and once more, nothing moving
    redis_kill(c)
    redis_start(c, keep_data=False)
    t0 = time.monotonic()
    wait_for(lambda: registry_complete(c, name, h1) is None and
             settled_on(c, name, h1) is None, BOUND, "the registry rebuilt again")
    print(f"registry rebuilt {time.monotonic() - t0:.1f} s after the second restart")
    keeps_running(h1, name, after, 1)

