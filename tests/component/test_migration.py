"""Live migration through libvirt (src/agent/virt_migrate.c; POST
/v1/vms/<id>/migrate {"to": host} in src/agent/api.c) on the namespace
cluster (tests/cluster.py): one libvirtd per host, peer-to-peer migrations
over the hosts' TCP addresses, real QEMU/TCG guests (tools/guest), real
agents, one real Redis.

Checked on what a user relies on:
- a loaded guest moves h0 -> h1 and back: its counter keeps rising and its
  uptime goes on (no reboot), its load is still set, exactly one QEMU of it
  runs in the whole cluster, the domain is persistent on the destination and
  gone from the source, the registry names the destination only (vm_configs
  host_id, vms_in_host) with the destination's QEMU pid and tap within a
  couple of samples, migration:<vm> is gone, and the answer and the
  migration_done event carry libvirt's figures; both agents restarted adopt
  every VM and kill none;
- a domain started with virsh (not through LoadEase) is migrated through the
  agent and arrives registered on the destination;
- bad requests (same host, unknown host, a 'to' that is no host id or no
  string, extra fields, no or wrong token, an unknown VM, a host that is
  down or only monitors, a second migration while one runs): a 4xx JSON
  error naming the problem, nothing defined or started on any other host,
  no migration:<vm> left.

The load is `cpu 20` + `mem 4` (4 MiB rewritten every second). A guest that
rewrites more memory than that is corrupted by QEMU 7.2's TCG when it is
live-migrated (its kernel panics in the hrtimer rbtree right after the
move): on this machine, with `cpu 20`, `mem 64` crashed 6 of 20 moves,
`mem 16` 2 of 20, `mem 8` 1 of 60, `mem 4` 0 of 40 and no `mem` 0 of 40
(bench/README.md, "## migration", saw the same with plain QEMU). The slowed migrations below rewrite more (`mem 32`) only where the
migration is cancelled, so the guest stays on its source, which the bug
does not touch.

Needs root, `ip netns`, libvirtd, redis-server and qemu-system-x86_64;
skipped with the reason otherwise. At most two guests (128-256 MiB) at a
time. Traffic stays on the cluster's 10.233.x / 10.234.x addresses and unix
sockets.
"""
import json
import os
import re
import sys
import tempfile
import threading
import time

import pytest

from conftest import REPO, cluster_guest_image, console_tail, running_cluster, vm_qemus, wait_for
from conftest import guest_cmd as conftest_guest_cmd

sys.path.insert(0, os.path.join(REPO, "tests"))
import cluster as lecluster  # noqa: E402

TOKEN = "migration-test-token"
LOAD = ("cpu 20", "mem 4")  # what a TCG guest survives moving (see above)
DIRTY = "mem 32"           # keeps a slowed migration from converging
SLOW_MBIT = 16             # 2 MiB/s: a slowed migration takes minutes


# --------------------------------------------------------------------------- helpers


def guest_cmd(h, name, line, timeout=10):
    """One command on the load channel of the domain `name` running on h
    (libvirt's socket for it); the reply line."""
    return conftest_guest_cmd(h, h.channel_path(name), line, timeout)


def status(h, name, timeout=10):
    return json.loads(guest_cmd(h, name, "status", timeout))


def try_status(h, name):
    try:
        return status(h, name, 3)
    except (OSError, ValueError, AssertionError, lecluster.ClusterError):
        return None


def keeps_running(h, name, since, secs=2.0):
    """The guest on h answers, its counter and uptime past `since` and still
    rising `secs` seconds later (no reboot, no hang); the last status."""
    try:
        prev = wait_for(lambda: try_status(h, name), 15, f"{name} to answer on {h.id}",
                        interval=0.3)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{h.id}'s libvirt: {domstate(h, name)}; the guest's "
                             f"console:\n{console_tail(h, name)}")
    assert prev["counter"] > since["counter"] and prev["uptime_s"] > since["uptime_s"], \
        f"{name} rebooted or stalled: {since} then {prev}"
    end = time.monotonic() + secs
    while time.monotonic() < end:
        time.sleep(0.5)
        st = status(h, name)
        assert st["counter"] > prev["counter"] and st["uptime_s"] > prev["uptime_s"], \
            f"{name} stalled or rebooted on {h.id}: {prev} then {st}"
        prev = st
    return prev


def boot(h, name, mem=256, vm_index=0, load=()):
    """POST /v1/vms on h; the guest's first status once it answers, after
    the load commands."""
    spec = {"name": name, "vcpus": 1, "mem_mib": mem, "kernel": "vmlinuz",
            "initrd": "initrd.img",
            "append": f"console=ttyS0 quiet loadease.ip={h.vm_ip(vm_index)}/24 "
                      f"loadease.sink={h.br_ip}:9"}
    st, vm = h.http("POST", "/v1/vms", spec, timeout=60)
    assert st == 201, f"POST /v1/vms on {h.id}: {st} {vm}\nagent log:\n{h.log(2000)}"
    wait_for(lambda: try_status(h, name), 60, f"guest {name} to answer", interval=0.3)
    for line in load:
        assert guest_cmd(h, name, line) == "ok", line
    return vm


def qemus(c, name):
    """{host id: [pids]} of the live QEMUs of domain `name`, sorted."""
    return {h: sorted(p) for h, p in vm_qemus(c, name).items()}


def domain_pid(h, name):
    """The QEMU pid libvirt on h wrote for the domain, or None."""
    return lecluster._read_pid(h.path(f"/run/libvirt/qemu/{name}.pid"))


def domstate(h, name):
    """`virsh domstate --reason` on h ('running (migrated)', ...), None when
    h's libvirt has no such domain (or is down)."""
    p = h.virsh("domstate", name, "--reason", check=False, timeout=20)
    return p.stdout.strip() if p.returncode == 0 else None


def persistent(h, name):
    p = h.virsh("dominfo", name, check=False, timeout=20)
    return p.returncode == 0 and re.search(r"^Persistent:\s+yes", p.stdout, re.M) is not None


def links(h):
    out = h.run("ip", "-o", "link", "show").stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def events(r, type_=None, vm=None):
    return [f for _, f in r.xrange("events")
            if (type_ is None or f.get("type") == type_) and (vm is None or f.get("vm") == vm)]


def migrate(h, name, to, timeout=120, **kw):
    return h.http("POST", f"/v1/vms/{name}/migrate", {"to": to}, timeout=timeout, **kw)


def migrate_in_thread(h, name, to, timeout=150):
    """POST .../migrate in a thread: (thread, result dict; 'reply' is
    (status, body) or (None, the exception))."""
    res = {}

    def run():
        try:
            res["reply"] = migrate(h, name, to, timeout=timeout)
        except Exception as e:  # noqa: BLE001 - the test looks at it
            res["reply"] = (None, repr(e))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, res


def wait_transfer(r, name, min_bytes=1 << 20, timeout=60):
    """migration:<name> once it says phase transfer with data sent; it."""
    def moving():
        m = r.hgetall(f"migration:{name}")
        return m.get("phase") == "transfer" and int(m.get("data_processed", 0)) >= min_bytes \
            and m
    return wait_for(moving, timeout, f"the migration of {name} to be under way", interval=0.1)


def rcli(c):
    """One Redis client per cluster for these helpers (it reconnects after
    a restart of the server)."""
    if getattr(c, "_mig_redis", None) is None:
        c._mig_redis = c.redis(socket_timeout=3)
    return c._mig_redis


def where(c, name):
    """What the cluster says about VM `name`: the QEMUs, each host's libvirt
    (domstate, or None), the registry."""
    r = rcli(c)
    return {"qemus": qemus(c, name),
            "libvirt": {h.id: domstate(h, name) for h in c.hosts if h.libvirtd_pid()},
            "vm_configs": {k: v for k, v in r.hgetall(f"vm_configs:{name}").items()
                           if k in ("host_id", "state", "pid", "tap_device")},
            "vms_in_host": {h.id: name in r.smembers(f"vms_in_host:{h.id}") for h in c.hosts},
            "migration": r.hgetall(f"migration:{name}")}


def settled_on(c, name, h):
    """None when VM `name` runs on host h alone and the registry says so:
    one QEMU (h's, the pid of h's domain), h's libvirt runs it and no other
    host's has it, vm_configs names h with that pid, only h's vms_in_host
    lists it, no migration:<name>. Else what differs (a string)."""
    r = rcli(c)
    q = qemus(c, name)
    pid = domain_pid(h, name)
    if q != {h.id: [pid]}:
        return f"QEMUs {q}, {h.id}'s domain pid {pid}"
    st = domstate(h, name)
    if not st or not st.startswith("running"):
        return f"{h.id}'s libvirt: {st}"
    for o in c.hosts:
        if o is not h and o.libvirtd_pid() and name in o.domains(all=True):
            return f"{o.id}'s libvirt has it ({domstate(o, name)})"
    cfg = r.hgetall(f"vm_configs:{name}")
    if cfg.get("host_id") != h.id or cfg.get("pid") != str(pid):
        return f"vm_configs {cfg.get('host_id')} pid {cfg.get('pid')} (QEMU {pid})"
    sets = {o.id for o in c.hosts if name in r.smembers(f"vms_in_host:{o.id}")}
    if sets != {h.id}:
        return f"vms_in_host of {sorted(sets)}"
    if r.exists(f"migration:{name}"):
        return f"migration:{name} {r.hgetall(f'migration:{name}')}"
    return None


def wait_settled(c, name, h, timeout, what=""):
    """settled_on() within `timeout` s; the seconds it took."""
    t0 = time.monotonic()
    last = [None]

    def ok():
        last[0] = settled_on(c, name, h)
        return last[0] is None
    try:
        wait_for(ok, timeout, f"{name} settled on {h.id}", interval=0.2)
    except AssertionError:
        raise AssertionError(f"{what}{name} not settled on {h.id} within {timeout} s: "
                             f"{last[0]}\n{where(c, name)}\n" +
                             "\n".join(f"--- {x.id} agent log:\n{x.log(2500)}" for x in c.hosts))
    return time.monotonic() - t0


def reported(h, name, pid):
    """h's agent reports the VM: sampled, its QEMU pid, libvirt's view."""
    def ok():
        st, j = h.http("GET", f"/v1/vms/{name}", timeout=5)
        return st == 200 and j.get("pid") == pid and j.get("status") == "ok" and \
            j.get("driver", {}).get("pid") == pid and \
            j.get("driver", {}).get("state") == "running" and j
    return wait_for(ok, 15, f"{h.id}'s GET /v1/vms/{name}: status ok, pid {pid}")


def assert_moved(c, name, src, dst, before, out, t_answer):
    """Everything a finished migration src -> dst promises; the guest's last
    status."""
    r = rcli(c)
    assert out["vm"] == name and (out["from"], out["to"]) == (src.id, dst.id), out
    assert out["total_ms"] > 0 and 0 < out["downtime_ms"] <= out["total_ms"], out
    assert out["bytes"] > 1 << 20, out  # at least the kernel and initramfs
    assert 0 < out["dest_running_ms"] <= out["wall_ms"], out
    assert "warning" not in out, out
    # the registry names the destination at once; its agent fills in the
    # pid and tap of its QEMU within a couple of samples (500 ms)
    cfg = r.hgetall(f"vm_configs:{name}")
    assert cfg.get("host_id") == dst.id and cfg.get("state") == "running", cfg
    assert name in r.smembers(f"vms_in_host:{dst.id}"), r.smembers(f"vms_in_host:{dst.id}")
    assert name not in r.smembers(f"vms_in_host:{src.id}")
    assert not r.exists(f"migration:{name}"), r.hgetall(f"migration:{name}")
    pid = domain_pid(dst, name)
    wait_for(lambda: r.hget(f"vm_configs:{name}", "pid") == str(pid), 3,
             f"vm_configs:{name} pid {pid} (the destination's QEMU)")
    print(f"  registry pid {pid} {time.monotonic() - t_answer:.2f} s after the answer")
    cfg = r.hgetall(f"vm_configs:{name}")
    assert cfg["tap_device"] and cfg["tap_device"] in links(dst), cfg
    assert cfg["serial_socket"] == dst.channel_path(name), cfg
    # one QEMU in the cluster, the destination's; persistent there, not
    # defined on the source any more
    wait_for(lambda: qemus(c, name) == {dst.id: [pid]}, 10,
             f"{name}'s only QEMU to be {dst.id}'s {pid}")
    assert domstate(dst, name).startswith("running"), domstate(dst, name)
    assert persistent(dst, name)
    assert name not in src.domains(all=True), src.domains(all=True)
    assert cfg["tap_device"] not in links(src)
    # the same guest, still loaded, its clocks going on
    after = keeps_running(dst, name, before)
    assert (after["cpu"], after["mem_mib"]) == (before["cpu"], before["mem_mib"]), \
        (before, after)
    reported(dst, name, pid)
    wait_for(lambda: src.http("GET", f"/v1/vms/{name}", timeout=5)[0] == 404,
             5, f"{src.id}'s GET /v1/vms/{name} 404")
    return after, pid


def assert_event(r, name, src, dst, out, n):
    ev = events(r, "migration_done", name)
    assert len(ev) == n and ev[-1]["host"] == src.id, ev
    assert ev[-1]["msg"].startswith(
        f"to {dst.id}: total {out['total_ms']} ms, downtime {out['downtime_ms']} ms, "
        f"{out['bytes']} bytes; "), ev[-1]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fast():
    """Two hosts, migrations at full speed."""
    image = cluster_guest_image()
    with running_cluster(2, os.path.dirname(image[0]), TOKEN, {"vm.reconcile_s": 3},
                         "le-ct-migration-") as c:
        yield c


@pytest.fixture
def fast_c(fast):
    """fast, and afterwards no domain left on it (a failed test's either)."""
    yield fast
    for h in fast.hosts:
        if not h.alive():
            h.start()
        h.destroy_domains()
    r = rcli(fast)
    wait_for(lambda: not any(r.smembers(f"vms_in_host:{h.id}") for h in fast.hosts), 10,
             "the registry to be empty")


# --------------------------------------------------------------------------- tests


def test_live_migration_under_load_there_and_back_and_agent_restarts_adopt_every_vm(fast_c):
    """h0 -> h1 with `cpu 20` + `mem 4`, both agents restarted (h1 with the
    migrated VM, h0 with another), then h1 -> h0."""
    c = fast_c
    h0, h1 = c.hosts
    r = rcli(c)
    r.delete("events")
    name, other = f"mig{os.getpid()}a", f"mig{os.getpid()}b"
    boot(h0, name, 256, 0, LOAD)
    boot(h0, other, 128, 1)
    pid_other = domain_pid(h0, other)
    time.sleep(1)
    before = status(h0, name)

    t0 = time.monotonic()
    st, out = migrate(h0, name, "h1")
    print(f"\nh0 -> h1 answered in {time.monotonic() - t0:.1f} s: {out}")
    assert st == 200, f"{st} {out}\nh0 log:\n{h0.log(3000)}\nh1 log:\n{h1.log(3000)}"
    after, pid1 = assert_moved(c, name, h0, h1, before, out, time.monotonic())
    assert_event(r, name, h0, h1, out, 1)
    assert not events(r, "migration_failed") and not events(r, "vm_conflict")
    # the other VM never moved
    assert qemus(c, other) == {"h0": [pid_other]}
    assert r.hget(f"vm_configs:{other}", "host_id") == "h0"

    # both agents restarted with their VMs running: all adopted, none killed
    cfg = {n: r.hgetall(f"vm_configs:{n}") for n in (name, other)}
    for h in (h0, h1):
        h.stop()
        h.start()
    for h, n, pid in ((h1, name, pid1), (h0, other, pid_other)):
        wait_for(lambda: r.smembers(f"vms_in_host:{h.id}") == {n}, 5,
                 f"vms_in_host:{h.id} == {{{n}}}")
        reported(h, n, pid)
        assert r.hgetall(f"vm_configs:{n}") == cfg[n]
    assert qemus(c, name) == {"h1": [pid1]} and qemus(c, other) == {"h0": [pid_other]}
    after = keeps_running(h1, name, after, 1)
    assert not events(r, "vm_stopped") and not events(r, "vm_lost")

    # and back, from the agent that adopted it
    t0 = time.monotonic()
    st, out = migrate(h1, name, "h0")
    print(f"h1 -> h0 answered in {time.monotonic() - t0:.1f} s: {out}")
    assert st == 200, f"{st} {out}\nh1 log:\n{h1.log(3000)}\nh0 log:\n{h0.log(3000)}"
    assert_moved(c, name, h1, h0, after, out, time.monotonic())
    assert_event(r, name, h1, h0, out, 2)
    assert r.smembers("vms_in_host:h0") == {name, other}
    assert r.smembers("vms_in_host:h1") == set()
    assert h1.domains(all=True) == [] and qemus(c, other) == {"h0": [pid_other]}

    for n in (name, other):
        st, body = h0.http("DELETE", f"/v1/vms/{n}")
        assert st == 200, (st, body)
    assert not qemus(c, name) and not qemus(c, other)
    assert h0.domains(all=True) == []


def domain_xml(h, name, kernel, initrd):
    """A domain as an operator would write it: no LoadEase metadata."""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet loadease.ip={h.vm_ip(5)}/24 loadease.sink={h.br_ip}:9</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <interface type='bridge'>
      <source bridge='br0'/><target dev='lv{name[-10:]}'/><model type='virtio'/>
      <rom enabled='no'/>
    </interface>
    <memballoon model='virtio'><stats period='2'/></memballoon>
    <channel type='unix'><target type='virtio' name='org.loadease.guestload'/></channel>
    <serial type='pty'/>
  </devices>
</domain>
"""


def test_a_domain_started_with_virsh_migrates_through_the_agent(fast_c):
    c = fast_c
    h0, h1 = c.hosts
    r = rcli(c)
    kernel, initrd = cluster_guest_image()
    name = f"op{os.getpid()}"
    with tempfile.NamedTemporaryFile("w", suffix=".xml", dir=c.workdir, delete=False) as f:
        f.write(domain_xml(h0, name, kernel, initrd))
    h0.virsh("define", f.name)
    h0.virsh("start", name)
    pid0 = domain_pid(h0, name)
    before = wait_for(lambda: try_status(h0, name), 60, f"{name} to answer", interval=0.3)
    # the agent watches it, whoever started it
    wait_for(lambda: r.hget(f"vm_configs:{name}", "pid") == str(pid0), 5,
             f"h0's agent to register {name}")
    cfg = r.hgetall(f"vm_configs:{name}")
    assert cfg["host_id"] == "h0" and cfg["managed"] == "0", cfg
    assert r.smembers("vms_in_host:h0") == {name}

    t0 = time.monotonic()
    st, out = migrate(h0, name, "h1")
    print(f"\nvirsh-started {name} h0 -> h1 in {time.monotonic() - t0:.1f} s: {out}")
    assert st == 200, f"{st} {out}\nh0 log:\n{h0.log(3000)}"
    assert_moved(c, name, h0, h1, before, out, time.monotonic())
    cfg = r.hgetall(f"vm_configs:{name}")
    assert cfg["managed"] == "0" and cfg["mem"] == "128", cfg
    assert r.smembers("vms_in_host:h1") == {name} and r.smembers("vms_in_host:h0") == set()
    h1.virsh("destroy", name)
    h1.virsh("undefine", name)
    wait_for(lambda: not r.exists(f"vm_configs:{name}") and not r.smembers("vms_in_host:h1"),
             10, f"{name} to leave the registry")
    assert events(r, "vm_stopped", name)


# --------------------------------------------------------------------------- bad requests


@pytest.fixture(scope="module")
def slow():
    """Three hosts, h0's migrations slowed to SLOW_MBIT, one 128 MiB guest
    on h0 for the tests that leave it there."""
    image = cluster_guest_image()
    settings = lambda i: {"vm.reconcile_s": 3,  # noqa: E731
                          **({"vm.migrate_bandwidth_mbit": SLOW_MBIT} if i == 0 else {})}
    with running_cluster(3, os.path.dirname(image[0]), TOKEN, settings,
                         "le-ct-migration-") as c:
        name = f"mig{os.getpid()}s"
        boot(c.host(0), name, 128, 0)
        yield c, name


def assert_error(st, out, status_, code, *words):
    assert st == status_ and isinstance(out, dict), (st, out)
    err = out.get("error") or {}
    assert err.get("code") == code and all(w in err.get("message", "") for w in words), \
        (st, out)


def nothing_started(c, name, cfg_before, pid):
    """No migration of `name` started: registry as before, no
    migration:<vm>, no migration event, its one QEMU h0's, no other host's
    libvirt has a domain."""
    r = rcli(c)
    assert r.hgetall(f"vm_configs:{name}") == cfg_before
    assert r.smembers("vms_in_host:h0") == {name}
    assert not r.smembers("vms_in_host:h1") and not r.smembers("vms_in_host:h2")
    assert not r.exists(f"migration:{name}"), r.hgetall(f"migration:{name}")
    assert not [e for e in events(r) if e["type"].startswith("migration")], events(r)
    assert qemus(c, name) == {"h0": [pid]}, qemus(c, name)
    for h in c.hosts[1:]:
        assert h.domains(all=True) == [], (h.id, h.domains(all=True))
        assert h.qemu_pids() == [], h.id


def test_bad_migration_requests_are_refused_and_start_nothing(slow):
    c, name = slow
    h0, h1, h2 = c.hosts
    r = rcli(c)
    r.delete("events")
    cfg0 = r.hgetall(f"vm_configs:{name}")
    pid = domain_pid(h0, name)
    before = status(h0, name)
    path = f"/v1/vms/{name}/migrate"
    cases = [
        # (what, request kwargs, status, code, words of the message)
        ("to the same host", dict(body={"to": "h0"}), 400, "bad_request", name, "h0"),
        ("to an unknown host", dict(body={"to": "h9"}), 404, "not_found", "no host 'h9'"),
        ("to a host id that is no id", dict(body={"to": "../h1"}), 400, "bad_request",
         "'to'"),
        ("an empty object", dict(body={}), 400, "bad_request", "\"to\""),
        ("'to' not a string", dict(body={"to": 1}), 400, "bad_request", "\"to\""),
        ("an extra field", dict(body={"to": "h1", "live": True}), 400, "bad_request",
         "\"to\"", "nothing else"),
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
    # a wrong token: the harness sends the cluster's; a raw request another
    st, out = lecluster._http(h0.api + path, "POST", {"to": "h1"}, TOKEN + "x")
    if st != 401 or (out.get("error") or {}).get("code") != "unauthorized":
        problems.append(f"wrong token: {st} {out}")
    st, out = migrate(h0, f"{name}nope", "h1", timeout=30)
    if st != 404 or f"no vm '{name}nope'" not in (out.get("error") or {}).get("message", ""):
        problems.append(f"unknown vm: {st} {out}")
    # the VM runs on h0: h1 has nothing to migrate
    st, out = migrate(h1, name, "h2", timeout=30)
    if st != 404 or "host h1 runs no vm" not in (out.get("error") or {}).get("message", ""):
        problems.append(f"migrate asked of a host that does not run it: {st} {out}")

    # a host whose agent stopped (it marks itself down), then one whose
    # agent only monitors (vm.enabled = false: host_config vm_enabled 0)
    h2.stop()
    try:
        assert r.hget("host_config:h2", "state") == "down"
        st, out = migrate(h0, name, "h2", timeout=30)
        if st != 409 or (out.get("error") or {}).get("code") != "conflict" or \
                "host h2 is down" not in out["error"]["message"]:
            problems.append(f"to a host whose agent stopped: {st} {out}")
        h2.write_config({"vm.reconcile_s": 3, "vm.enabled": False})
        h2.start()
        wait_for(lambda: r.hget("host_config:h2", "vm_enabled") == "0" and
                 r.hget("host_config:h2", "state") == "up", 5, "h2 up, monitoring only")
        st, out = migrate(h0, name, "h2", timeout=30)
        if st != 409 or (out.get("error") or {}).get("code") != "conflict" or \
                "host h2 only monitors" not in out["error"]["message"]:
            problems.append(f"to a host that only monitors: {st} {out}")
    finally:
        h2.stop()
        h2.write_config({"vm.reconcile_s": 3})
        h2.start()
    wait_for(lambda: r.hget("host_config:h2", "vm_enabled") == "1", 5, "h2 managing VMs")
    assert not problems, "\n".join(problems)
    nothing_started(c, name, cfg0, pid)
    keeps_running(h0, name, before, 1)


def test_a_second_migration_while_one_runs_is_refused(slow):
    """The first (slowed, its guest rewriting memory) is under way: a second
    to the same or another host gets 409 at once and starts nothing; the
    first, cancelled, leaves the VM where it was."""
    c, name = slow
    h0, h1, h2 = c.hosts
    r = rcli(c)
    r.delete("events")
    cfg0 = r.hgetall(f"vm_configs:{name}")
    pid = domain_pid(h0, name)
    assert guest_cmd(h0, name, DIRTY) == "ok"
    t, res = migrate_in_thread(h0, name, "h1")
    try:
        m = wait_transfer(r, name)
        assert m["src"] == "h0" and m["dst"] == "h1", m
        assert domstate(h1, name) == "paused (migrating)"  # the incoming copy
        for to in ("h1", "h2"):
            t0 = time.monotonic()
            st, out = migrate(h0, name, to, timeout=10)
            assert_error(st, out, 409, "conflict", "already being migrated")
            assert time.monotonic() - t0 < 5, "the second request waited for the first"
        # nor through the destination, which has the incoming copy paused
        st, out = migrate(h1, name, "h2", timeout=10)
        assert st in (404, 409), (st, out)
        assert r.hget(f"migration:{name}", "dst") == "h1"
        assert h2.domains(all=True) == [] and not h2.qemu_pids()
        assert t.is_alive(), f"the slowed migration is over already: {res}"
    finally:
        # cancelled on the source: libvirt aborts, the guest stays
        h0.virsh("domjobabort", name, check=False)
        t.join(60)
    assert not t.is_alive(), "POST .../migrate did not answer within 60 s of the cancel"
    st, out = res["reply"]
    assert_error(st, out, 502, "migration_failed", name, "h1", "keeps running on h0")
    assert guest_cmd(h0, name, "mem 0") == "ok"
    wait_settled(c, name, h0, 10)
    assert r.hgetall(f"vm_configs:{name}") == cfg0
    assert qemus(c, name) == {"h0": [pid]}
    assert h1.domains(all=True) == [] and not h1.qemu_pids()
    ev = events(r, "migration_failed", name)
    assert len(ev) == 1 and ev[0]["host"] == "h0", events(r)
    assert not events(r, "migration_done")
    r.delete("events")
    nothing_started(c, name, cfg0, pid)
