"""The agent's VM layer on libvirt (src/agent/virt.c, vmspec.c, domxml.c,
through api.c) on a one-host namespace cluster (tests/cluster.py): the host
runs its own libvirtd, which starts real QEMU/TCG guests (the test image of
tools/guest/); the agent manages them only through that libvirt.

Checked through the agent's HTTP API, Redis and virsh, on what a user relies
on:
- POST /v1/vms defines and starts a persistent domain: the 201 body, the
  registry (vm_configs:<id> field by field, vms_in_host:<host>), the QEMU
  process of that domain (its pid file, not root), its tap on br0, `virsh
  list`, the guest answering on its load channel, one vm_created event;
- the guest's load (cpu, mem, net to a UDP sink on the host's own br0
  address) shows in the agent's figures, balloon memory included;
- DELETE removes the domain, its registry entries, its state dir and its
  tap, with one vm_deleted event;
- bad requests and a refusing libvirt (QEMU that cannot load the kernel, an
  emulator that does not exist) get a JSON error naming the problem and
  leave nothing defined, started or written;
- domains started with virsh (not LoadEase) are registered from libvirt's
  events with their pid, tap and uuid (managed 0; a name that is no id gets
  the derived id), monitored, and leave the registry when they stop (a
  running domain that `virsh undefine` makes transient runs on, and stays
  registered until it stops);
- an agent restart (SIGTERM, SIGKILL) adopts every running VM and kills
  none; a libvirtd restart keeps the registry; a Redis FLUSHALL is healed
  within vm.reconcile_s, rules from the domains' metadata included;
- the agent exits 0 without a sanitizer report, and QEMU holds none of its
  sockets.

The module's agent runs with vm.reconcile_s = 3600: whatever the registry
does within seconds of a domain starting or stopping is then the work of
libvirt's domain events, not of the periodic check (the FLUSHALL test sets
2 s, the period it tests). Tests that change the agent's settings restart it
and restore them.

Dropped from the old QEMU-driver test (test_vmm.py), as the agent no longer
does these things: the QMP socket and console log in the VM's state dir
(libvirt owns the monitor; the console is a pty, QEMU's log is libvirt's);
the log line "adopted running qemu" and the state `lost` / event `vm_lost`
for VMs that died while the agent was down (such a VM now simply leaves the
registry, event vm_stopped); the /v1/incoming endpoints (a migration's
destination side is libvirt's, peer to peer). The reused-pid decoy is kept
in a new form: a hand-written registry entry for this host that libvirt does
not run leaves the registry, and the live process its pid names is not
touched.

Needs root, `ip netns`, libvirtd and qemu-system-x86_64; skipped with the
reason where they are truly absent. At most two guests run at a time (256
MiB and 128 MiB). The guest image is built by scripts/guest-image and copied
into a temporary vm.images_dir, with the test's own odd files in and next to
it. The guests send only to their host's br0 address.
"""
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import (SANITIZER_MARKS, SINK_PY, _cluster_module, _die_with_parent,
                      cluster_guest_image, median, running_cluster, wait_for)

lecluster = _cluster_module()

TOKEN = "virt-test-token"
MEM = 256         # the module's VM (vm_a)
SMALL = 128       # every other guest
SINK_PORT = 9
CLK_TCK = os.sysconf("SC_CLK_TCK")
PY = "/usr/bin/python3"
SETTINGS = {
    "vm.reconcile_s": 3600,  # events only (see the docstring)
    "vm.stats_poll_ms": 1000,
    "vm.max_vcpus": 4,
    "vm.max_mem_mib": 1024,
    "vm.shutdown_timeout_ms": 1000,
}
EVENT_S = 3.0  # a domain event reaches the registry within this (2 samples + margin)


# --------------------------------------------------------------------------- helpers


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_alive(pid):
    return proc_state(pid) not in (None, "Z", "X")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def proc_uid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def sockets(pid):
    """The sockets a process holds (socket:[inode])."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if t.startswith("socket:"):
            out.add(t)
    return out


def listening_inodes(pid, port):
    """socket:[inode] of the TCP sockets listening on `port` in pid's netns."""
    out = set()
    with open(f"/proc/{pid}/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if p[3] == "0A" and int(p[1].split(":")[1], 16) == port:
                out.add(f"socket:[{p[9]}]")
    return out


class Port:
    """The guest's load channel (virtio-serial, a unix socket inside the
    host): one command line, one reply line."""

    def __init__(self, h, path, timeout=5):
        self.path = path
        self.sock = h.connect_unix(path, timeout)
        self.buf = b""

    def readline(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no reply line on {self.path} within {timeout} s "
                                     f"(have {self.buf!r})")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError(f"{self.path} closed (have {self.buf!r})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def cmd(self, line, timeout=15):
        self.sock.sendall((line + "\n").encode())
        return self.readline(timeout)

    def status(self, timeout=15):
        return json.loads(self.cmd("status", timeout))

    def close(self):
        self.sock.close()


def recent(vh, vm, field, secs):
    """The median of `field` in the VM's samples of the last `secs` seconds
    (0 when there are none)."""
    now = int(time.time() * 1000)
    xs = [float(f[field]) for f in vh.vm_stream(vm, now - int(secs * 1000), now) if field in f]
    return median(xs) if xs else 0


def rising(port, since, secs=10):
    """The guest's next status once its counter and uptime are past `since`
    (it runs on, was not rebooted); AssertionError after `secs`."""
    end = time.monotonic() + secs
    while True:
        st = port.status()
        if st["counter"] > since["counter"] and st["uptime_s"] > since["uptime_s"]:
            return st
        assert st["uptime_s"] >= since["uptime_s"], f"the guest rebooted: {since} then {st}"
        if time.monotonic() > end:
            raise AssertionError(f"the guest's counter stalled: {since} then {st}")
        time.sleep(0.2)


class VirtHost:
    """Host h0 of the module's cluster, with the test's helpers."""

    def __init__(self, c, images):
        self.c = c
        self.h = c.host(0)
        self.r = c.redis()
        self.images = images
        self.ports = []
        self.settings = dict(SETTINGS)

    @property
    def id(self):
        return self.h.id

    # -------------------------------------------------------------- API
    def request(self, method, path, body=None, token=TOKEN, raw=None, timeout=90):
        """(status, JSON body); asserts the reply is JSON. token None: no
        Authorization header."""
        headers = {}
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection(self.h.ip, self.h.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            st, ctype, out = resp.status, resp.getheader("Content-Type", ""), resp.read()
        finally:
            conn.close()
        assert ctype.startswith("application/json"), (method, path, st, ctype, out[:200])
        return st, json.loads(out)

    def body(self, name, j=0, **kw):
        b = {"name": name, "vcpus": 1, "mem_mib": SMALL, "kernel": "vmlinuz",
             "initrd": "initrd.img", "append": self.append(j)}
        b.update(kw)
        return {k: v for k, v in b.items() if v is not None}

    def append(self, j):
        return (f"console=ttyS0 quiet panic=-1 loadease.ip={self.h.vm_ip(j)}/24 "
                f"loadease.sink={self.h.br_ip}:{SINK_PORT}")

    def create(self, name, j=0, **kw):
        return self.request("POST", "/v1/vms", self.body(name, j, **kw))

    def delete(self, vm, token=TOKEN):
        return self.request("DELETE", f"/v1/vms/{vm}", token=token)

    def get(self, vm):
        st, j = self.request("GET", f"/v1/vms/{vm}")
        return j if st == 200 else None

    def healthz(self):
        return self.request("GET", "/healthz", token=None)[1]

    def sampled(self, vm, timeout=20):
        """GET /v1/vms/<vm> once the monitor reports it ok with a CPU figure."""
        def ok():
            v = self.get(vm)
            return v if v and v.get("status") == "ok" and "cpu" in v["current"] else None
        return wait_for(ok, timeout, f"GET /v1/vms/{vm} status ok with current.cpu")

    # -------------------------------------------------------------- guests
    def port(self, path):
        p = Port(self.h, path)
        self.ports.append(p)
        return p

    def wait_guest(self, name, path, timeout=60):
        """A Port to the guest once it answers `status`, and that status."""
        p = self.port(path)
        try:
            return p, p.status(timeout)
        except (AssertionError, OSError) as e:
            raise AssertionError(f"guest {name} did not answer status: {e}\n"
                                 f"QEMU log:\n{self.qemu_log(name)}") from None

    def boot(self, name, j=0, **kw):
        """POST, then the guest's first status: (201 body, Port, status)."""
        t0 = time.monotonic()
        st, vm = self.create(name, j, **kw)
        assert st == 201, f"POST {name}: {st} {vm}\nagent log:\n{self.h.log(3000)}"
        p, first = self.wait_guest(name, vm["serial_socket"])
        print(f"\n{name}: POST {time.monotonic() - t0:.1f} s to the guest's first status")
        return vm, p, first

    def qemu_log(self, name):
        try:
            with open(self.h.path(f"/var/log/libvirt/qemu/{name}.log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError as e:
            return str(e)

    def pid_file(self, name):
        """The pid in libvirt's pid file of domain `name`, or None."""
        try:
            with open(self.h.path(f"/run/libvirt/qemu/{name}.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def domain_xml(self, name, j, tap, mac, mem=SMALL):
        """A domain as an operator would write it for virsh: TCG, the test
        guest, a bridge interface on br0 with its tap named, balloon
        statistics every second, the guest-load channel."""
        return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{self.images}/vmlinuz</kernel>
    <initrd>{self.images}/initrd.img</initrd>
    <cmdline>{self.append(j)}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <interface type='bridge'>
      <mac address='{mac}'/>
      <source bridge='br0'/>
      <target dev='{tap}'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
    <memballoon model='virtio'><stats period='1'/></memballoon>
    <channel type='unix'><target type='virtio' name='org.loadease.guestload'/></channel>
    <serial type='pty'/>
  </devices>
</domain>
"""

    def virsh_xml(self, verb, name, j, tap, mac):
        """virsh create (transient) or define (persistent) of domain_xml()."""
        path = os.path.join(self.c.workdir, f"domain-{tap}.xml")
        with open(path, "w") as f:
            f.write(self.domain_xml(name, j, tap, mac))
        self.h.virsh(verb, path)

    def uuid(self, name):
        return self.h.virsh("domuuid", name).stdout.strip()

    def iface(self, name):
        """(tap, mac) of the domain's interface, as libvirt reports it."""
        lines = [ln.split() for ln in self.h.virsh("domiflist", name).stdout.splitlines()
                 if ln.strip()]
        assert len(lines) == 1 and len(lines[0]) == 5, lines
        return lines[0][0], lines[0][4]

    def is_domain_qemu(self, pid, name):
        """pid is a live QEMU libvirt started for domain `name` in this host."""
        argv = lecluster._cmdline(pid)
        named = any(a == "-name" and b.split(",")[0] == f"guest={name}"
                    for a, b in zip(argv, argv[1:]))
        return pid_alive(pid) and lecluster._is_qemu(pid) and named and \
            pid in self.h.qemu_pids() and self.pid_file(name) == pid

    # -------------------------------------------------------------- host state
    def links(self):
        out = self.h.run("ip", "-o", "link", "show").stdout
        return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}

    def bridge_ports(self):
        """{ifname: flags} of br0's ports."""
        out = json.loads(self.h.run("ip", "-j", "link", "show", "master", "br0").stdout)
        return {p["ifname"]: p["flags"] for p in out}

    def tap_guest_tx_bytes(self, tap):
        """Bytes the guest sent: the tap's host side receives them."""
        out = self.h.run("ip", "-s", "-j", "link", "show", "dev", tap).stdout
        return json.loads(out)[0]["stats64"]["rx"]["bytes"]

    def vm_dir(self, vm):
        return os.path.join(self.h.state_dir, "vms", vm)

    def state_dirs(self):
        return sorted(os.listdir(os.path.join(self.h.state_dir, "vms")))

    # -------------------------------------------------------------- registry
    def cfg(self, vm):
        return self.r.hgetall(f"vm_configs:{vm}")

    def members(self):
        return self.r.smembers(f"vms_in_host:{self.id}")

    def events(self, type_=None, vm=None):
        return [f for _, f in self.r.xrange("events")
                if (type_ is None or f.get("type") == type_) and (vm is None or f.get("vm") == vm)]

    def vm_stream(self, vm, since_ms, until_ms):
        return [f for _, f in self.r.xrange(f"ts:vm:{vm}", min=since_ms + 1, max=until_ms)]

    def registry(self):
        """Every VM key of the registry with its content."""
        out = {}
        for pat in ("vm_configs:*", "vms_in_host:*", "migration:*"):
            for k in self.r.keys(pat):
                out[k] = self.r.smembers(k) if k.startswith("vms_in_host:") else self.r.hgetall(k)
        return out

    def snapshot(self):
        """What a refused request must not change."""
        return {"registry": self.registry(), "events": len(self.events()),
                "domains": sorted(self.h.domains(all=True)),
                "running": sorted(self.h.domains()), "state dirs": self.state_dirs(),
                "links": sorted(self.links()), "qemu": sorted(self.h.qemu_pids())}

    # -------------------------------------------------------------- the agent
    def restart(self, how="term", settings=None):
        """Stops the agent (SIGTERM: must exit 0 without a sanitizer report;
        SIGKILL) and starts it again, with `settings` if given."""
        self.stop_agent(how)
        self.start_agent(settings)

    def stop_agent(self, how="term"):
        if how == "term":
            rc = self.h.stop()
            bad = [m for m in SANITIZER_MARKS if m in self.h.log()]
            assert rc == 0 and not bad, (f"agent exit status {rc}, sanitizer reports {bad}:\n"
                                         f"{self.h.log(4000)}")
        else:
            self.h.kill()

    def start_agent(self, settings=None):
        if settings is not None:
            self.settings = dict(settings)
            self.h.write_config(self.settings)
        self.h.start()
        wait_for(lambda: self.healthz().get("libvirt") == "connected", 20,
                 "the agent to connect to libvirt")

    @contextlib.contextmanager
    def agent_settings(self, **overrides):
        """The agent restarted with SETTINGS plus overrides, then restored."""
        self.restart(settings=dict(SETTINGS, **overrides))
        try:
            yield
        finally:
            if self.h.alive():
                self.stop_agent()
            self.start_agent(SETTINGS)

    def close_ports(self):
        for p in self.ports:
            try:
                p.close()
            except OSError:
                pass
        self.ports = []


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def images():
    """A vm.images_dir with copies of the guest image (a symlink to a file
    outside is refused), an empty file that is no kernel, symlinks pointing
    out (to /etc/passwd, to a real kernel outside, dangling), a directory;
    and next to it a directory `outside` with a real kernel."""
    kernel, initrd = cluster_guest_image()
    top = tempfile.mkdtemp(prefix="le-ct-virt-images-")
    os.chmod(top, 0o755)  # libvirt's QEMU user searches its way to the images
    d = os.path.join(top, "images")
    out = os.path.join(top, "outside")
    try:
        os.makedirs(d, 0o755)
        os.makedirs(out, 0o755)
        shutil.copyfile(kernel, os.path.join(d, "vmlinuz"))
        shutil.copyfile(initrd, os.path.join(d, "initrd.img"))
        shutil.copyfile(kernel, os.path.join(out, "vmlinuz"))
        open(os.path.join(d, "empty-kernel"), "w").close()
        os.symlink("/etc/passwd", os.path.join(d, "evil"))
        os.symlink(os.path.join(out, "vmlinuz"), os.path.join(d, "evil-kernel"))
        os.symlink("../outside/vmlinuz", os.path.join(d, "evil-relative"))
        os.symlink(os.path.join(d, "gone"), os.path.join(d, "dangling"))
        os.mkdir(os.path.join(d, "sub"))
        for f in ("vmlinuz", "initrd.img", "empty-kernel"):
            os.chmod(os.path.join(d, f), 0o644)
        yield os.path.realpath(d)
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def vh(images):
    with running_cluster(1, images, TOKEN, SETTINGS, "le-ct-virt-") as c:
        v = VirtHost(c, images)
        try:
            yield v
        finally:
            v.close_ports()


@pytest.fixture(scope="module")
def vm_a(vh):
    """The module's VM, made through the API with rules: its 201 body, the
    time the POST took, a Port to its guest and the guest's first status."""
    name = f"vma{os.getpid()}"
    t0 = time.monotonic()
    st, vm = vh.create(name, 0, mem_mib=MEM, pin=[vh.id, "other-host"], group="web",
                       anti_group="db", exclude=True)
    took = time.monotonic() - t0
    assert st == 201, f"POST {name}: {st} {vm}\nagent log:\n{vh.h.log(3000)}"
    port, first = vh.wait_guest(name, vm["serial_socket"])
    print(f"\n{name}: POST took {took:.2f} s, first status {time.monotonic() - t0:.1f} s "
          "after it")
    yield {"name": name, "vm": vm, "port": port, "first": first, "post_s": took}
    if vh.h.alive() and vh.get(name) is not None:
        st, out = vh.delete(name)
        assert st == 200, (st, out)


@pytest.fixture
def clean(vh, vm_a):
    """Per test: afterwards only vm_a runs and is registered (else the test
    left something), and the agent runs."""
    yield
    vh.close_ports()
    # the module's port to vm_a was closed too: a new one
    vm_a["port"] = vh.port(vm_a["vm"]["serial_socket"])
    assert vh.h.alive(), "the agent is not running"
    assert vh.h.domains(all=True) == [vm_a["name"]], vh.h.domains(all=True)
    wait_for(lambda: vh.members() == {vm_a["name"]}, 10, f"only {vm_a['name']} registered")


# --------------------------------------------------------------------------- tests


def test_create_defines_starts_and_registers_the_domain(vh, vm_a, clean):
    h, name, vm = vh.h, vm_a["name"], vm_a["vm"]
    uuid = vh.uuid(name)
    tap, mac = vh.iface(name)
    pid = vh.pid_file(name)
    channel = h.channel_path(name)

    # the 201 body says what runs
    want = {"id": name, "name": name, "uuid": uuid, "host": h.id, "pid": pid, "vcpus": 1,
            "mem_mib": MEM, "max_vcpus": 1, "max_mem_mib": MEM, "state": "running", "tap": tap, "mac": mac, "bridge": "br0",
            "kernel": os.path.join(vh.images, "vmlinuz"), "disk": "", "serial_socket": channel,
            "domain_type": "qemu", "group": "web", "anti_group": "db", "exclude": True,
            "managed": True}
    assert vm == want, vm
    assert re.fullmatch(r"lt[0-9a-f]{10}", tap) and re.fullmatch(
        r"52:54:00(:[0-9a-f]{2}){3}", mac), (tap, mac)

    # libvirt: a persistent domain, running, the QEMU of that domain
    assert h.domains() == [name] and h.domains(all=True) == [name]
    assert re.search(r"^Persistent:\s+yes$", h.virsh("dominfo", name).stdout, re.M)
    assert vh.is_domain_qemu(pid, name), (pid, lecluster._cmdline(pid), h.qemu_pids())
    assert proc_uid(pid) != 0, "QEMU runs as root, not as libvirt's QEMU user"
    assert vm_a["post_s"] < 30, vm_a

    # its tap is up on the host's bridge
    ports = vh.bridge_ports()
    assert list(ports) == [tap] and "UP" in ports[tap], ports

    # the registry, field by field
    cfg = vh.cfg(name)
    want_cfg = {
        "name": name, "uuid": uuid, "mem": str(MEM), "cpu": "1", "max_mem": str(MEM),
        "max_cpu": "1", "disk": "",
        "image_path": os.path.join(vh.images, "vmlinuz"),
        "initrd": os.path.join(vh.images, "initrd.img"), "append": vh.append(0),
        "pid": str(pid), "tap_device": tap, "mac": mac, "bridge": "br0", "host_id": h.id,
        "rpc_port": str(h.port), "state": "running",
        "guest_stats": os.path.join(vh.vm_dir(name), "guest-stats.json"),
        "serial_socket": channel, "domain_type": "qemu", "managed": "1",
        "pin": f"{h.id},other-host", "group": "web", "anti_group": "db", "exclude": "1",
    }
    assert cfg == want_cfg, cfg
    assert vh.members() == {name}
    ev = vh.events("vm_created", name)
    assert len(ev) == 1 and ev[0]["host"] == h.id, vh.events()
    assert vh.events("vm_stopped") == [], vh.events()

    # the guest runs: it answers on its channel and its counter rises
    first = vm_a["first"]
    assert first["uptime_s"] > 0 and first["ncpu"] == 1, first
    rising(vm_a["port"], first)

    # the agent watches it: its figures, the driver's view, balloon memory
    v = vh.sampled(name)
    assert (v["pid"], v["tap"], v["mem_mib"], v["vcpus"]) == (pid, tap, MEM, 1), v
    assert v["driver"] == vm, v["driver"]
    st, lst = vh.request("GET", "/v1/vms")
    assert st == 200 and [x["id"] for x in lst["vms"]] == [name], lst

    def guest_mem():
        c = (vh.get(name) or {}).get("current", {})
        return c if c.get("mem_source") == "guest" else None
    cur = wait_for(guest_mem, 20, "mem_source guest (the balloon's statistics)")
    assert 0 < cur["guest_used_mib"] < MEM and 0 < cur["guest_avail_mib"] < MEM, cur
    assert os.path.isfile(want_cfg["guest_stats"])

    # QEMU outlives the agent: it must hold none of the agent's sockets
    # (Redis with the registry's write access, the API)
    agent = h.proc.pid
    assert os.path.basename(lecluster._cmdline(agent)[0]) == "loadease", \
        lecluster._cmdline(agent)
    listen = listening_inodes(agent, h.port)
    assert listen and listen <= sockets(agent), (listen, sockets(agent))
    shared = sockets(pid) & sockets(agent)
    assert not shared, f"qemu {pid} holds the agent's sockets {sorted(shared)}"


def test_guest_load_shows_in_the_agents_figures(vh, vm_a, clean):
    h, name = vh.h, vm_a["name"]
    port = vm_a["port"]
    pid = vh.pid_file(name)
    tap = vh.cfg(name)["tap_device"]
    interval = 0.5
    vh.sampled(name)
    try:
        # CPU: the agent's figure against the QEMU process's own CPU time over
        # the same window, idle and with `cpu 50` in the guest (TCG's overhead
        # rides on top; on a busy machine QEMU gets less than it asks for, so
        # the load is checked against the idle figure, not against 50 %)
        def window(secs):
            t0, c0 = time.time(), cpu_ticks(pid)
            time.sleep(secs)
            t1, c1 = time.time(), cpu_ticks(pid)
            time.sleep(3 * interval)  # the window's last sample is published
            own = (c1 - c0) / CLK_TCK / (t1 - t0)
            xs = [float(f["cpu"]) for f in vh.vm_stream(name, int(t0 * 1000) + 300,
                                                        int(t1 * 1000)) if "cpu" in f]
            assert len(xs) >= 2 * secs - 4, f"only {len(xs)} samples with cpu in ts:vm:{name}"
            agent = median(xs)
            assert abs(agent - own) <= 0.10, \
                f"agent says cpu {agent:.3f}, the qemu process used {own:.3f} of a core ({xs})"
            return round(agent, 3), round(own, 3)

        idle = window(4)
        assert port.cmd("cpu 50") == "ok"
        time.sleep(2)
        seen = []
        for _ in range(3):
            seen.append(window(5))
            if seen[-1][0] - idle[0] >= 0.2:
                break
        agent = seen[-1][0]
        print(f"\ncpu: (agent, qemu's own) idle {idle}, with cpu 50 {seen}")
        assert agent - idle[0] >= 0.2 and agent <= 0.95, \
            f"cpu 50 in the guest: agent figures idle {idle}, loaded {seen}"
        assert port.cmd("cpu 0") == "ok"

        # memory: 64 MiB written in the guest shows in the balloon's figures
        base = vh.get(name)["current"]
        assert base["mem_source"] == "guest", base
        assert port.cmd("mem 64") == "ok"

        def grown():
            c = vh.get(name)["current"]
            return c if c.get("mem_source") == "guest" and \
                c["guest_used_mib"] - base["guest_used_mib"] >= 50 else None
        cur = wait_for(grown, 20, "guest_used_mib to grow by the 64 MiB the guest wrote")
        print(f"mem 64: guest_used_mib {base['guest_used_mib']} -> {cur['guest_used_mib']}")
        assert cur["guest_used_mib"] - base["guest_used_mib"] <= 80, (base, cur)
        assert port.cmd("mem 0") == "ok"

        # network: net 5 is 5 Mbit/s of whole frames to the sink on br0
        sink = subprocess.Popen(h.argv(PY, "-c", SINK_PY, h.br_ip, str(SINK_PORT), "9"),
                                stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
        try:
            assert sink.stdout.readline().strip() == "ready"
            assert port.cmd("net 5") == "ok"
            time.sleep(1.5)
            t0, b0 = time.time(), vh.tap_guest_tx_bytes(tap)
            time.sleep(4)
            t1, b1 = time.time(), vh.tap_guest_tx_bytes(tap)
            time.sleep(3 * interval)
            tap_mbit = (b1 - b0) * 8 / (t1 - t0) / 1e6
            xs = [float(f["tx_bps"]) * 8 / 1e6
                  for f in vh.vm_stream(name, int(t0 * 1000) + 300, int(t1 * 1000))
                  if "tx_bps" in f]
            assert len(xs) >= 5, f"only {len(xs)} samples with tx_bps in ts:vm:{name}"
            agent = median(xs)
            assert port.cmd("net 0") == "ok"
            out, _ = sink.communicate(timeout=20)
            got = json.loads(out)
            print(f"net 5: agent tx {agent:.2f} Mbit/s, tap {tap_mbit:.2f} Mbit/s; sink {got}")
            assert 3.5 <= agent <= 6.5, f"net 5: the agent says tx {agent:.2f} Mbit/s ({xs})"
            assert abs(agent - tap_mbit) <= 0.15 * tap_mbit, (agent, tap_mbit)
            assert got["datagrams"] > 1000 and got["bad"] == 0, got
            assert got["sources"] == [h.vm_ip(0)], got
        finally:
            if sink.poll() is None:
                sink.kill()
                sink.wait(timeout=5)
    finally:
        for c in ("cpu 0", "mem 0", "net 0"):
            try:
                port.cmd(c)
            except (AssertionError, OSError):
                pass


def test_delete_removes_everything(vh, vm_a, clean):
    h = vh.h
    name = f"vmd{os.getpid()}"
    links0 = vh.links()
    vm, _, _ = vh.boot(name, 1)
    pid, tap = vm["pid"], vm["tap"]
    assert tap in vh.links() and name in h.domains(all=True)
    vh.sampled(name)
    wait_for(lambda: os.path.isfile(os.path.join(vh.vm_dir(name), "guest-stats.json")), 20,
             "its balloon statistics in its state dir")

    t0 = time.monotonic()
    st, out = vh.delete(name)
    print(f"\nDELETE took {time.monotonic() - t0:.1f} s")
    assert st == 200 and out == {"deleted": name, "host": h.id}, (st, out)
    # libvirt: stopped and undefined
    assert name not in h.domains(all=True), h.domains(all=True)
    assert not pid_alive(pid), f"qemu {pid} still alive ({proc_state(pid)})"
    assert vh.pid_file(name) is None
    # the registry and the host
    assert not vh.r.exists(f"vm_configs:{name}"), vh.cfg(name)
    assert name not in vh.members()
    assert not os.path.lexists(vh.vm_dir(name)), os.listdir(vh.vm_dir(name))
    wait_for(lambda: tap not in vh.links(), 5, f"tap {tap} to go")
    assert vh.links() == links0, (vh.links(), links0)
    ev = vh.events(vm=name)
    assert [e["type"] for e in ev] == ["vm_created", "vm_deleted"], ev
    assert ev[1]["host"] == h.id, ev
    wait_for(lambda: vh.request("GET", f"/v1/vms/{name}")[0] == 404, 5,
             "GET of the deleted VM to be 404")

    st, out = vh.delete(name)
    assert st == 404 and out["error"]["code"] == "vm_not_found", (st, out)
    assert name in out["error"]["message"]


def test_bad_requests_are_refused_and_leave_nothing(vh, vm_a, clean):
    ok = f"vmb{os.getpid()}"  # a good name for the cases whose problem is elsewhere
    b = vh.body
    up_passwd = os.path.relpath("/etc/passwd", vh.images)  # ../../../etc/passwd
    cases = [
        # (what, body or raw bytes, status, error code, words the message has)
        ("missing name", b(None), 400, "bad_request", "'name' is required"),
        ("name with a slash", b("a/b"), 400, "bad_request", "'name'"),
        ("name with a space", b("my vm"), 400, "bad_request", "'name'"),
        ("name starting with -", b("-x"), 400, "bad_request", "'name'"),
        ("name of 65 characters", b("a" * 65), 400, "bad_request", "'name'"),
        ("name not a string", b(5), 400, "bad_request", "'name'"),
        ("vcpus 0", b(ok, vcpus=0), 400, "bad_request", "'vcpus'"),
        ("vcpus above vm.max_vcpus", b(ok, vcpus=5), 400, "bad_request", "1 to 4"),
        ("mem_mib 10", b(ok, mem_mib=10), 400, "bad_request", "'mem_mib'"),
        ("mem_mib above vm.max_mem_mib", b(ok, mem_mib=2048), 400, "bad_request",
         "64 to 1024"),
        ("mem_mib missing", b(ok, mem_mib=None), 400, "bad_request", "'mem_mib' is required"),
        ("mem_mib a string", b(ok, mem_mib="256"), 400, "bad_request", "'mem_mib'"),
        ("mem_mib fractional", b(ok, mem_mib=128.5), 400, "bad_request", "'mem_mib'"),
        (f"kernel {up_passwd}", b(ok, kernel=up_passwd), 400, "bad_request",
         "outside the images directory"),
        ("kernel ../outside/vmlinuz (a real kernel)", b(ok, kernel="../outside/vmlinuz"), 400,
         "bad_request", "outside the images directory"),
        ("kernel sub/../../outside/vmlinuz", b(ok, kernel="sub/../../outside/vmlinuz"), 400,
         "bad_request", "outside the images directory"),
        ("kernel /etc/passwd", b(ok, kernel="/etc/passwd"), 400, "bad_request",
         "outside the images directory"),
        ("kernel an absolute path outside",
         b(ok, kernel=os.path.join(os.path.dirname(vh.images), "outside", "vmlinuz")), 400,
         "bad_request", "outside the images directory"),
        ("kernel a symlink to /etc/passwd", b(ok, kernel="evil"), 400, "bad_request",
         "outside the images directory"),
        ("kernel a symlink to a kernel outside", b(ok, kernel="evil-kernel"), 400,
         "bad_request", "outside the images directory"),
        ("kernel a relative symlink out", b(ok, kernel="evil-relative"), 400, "bad_request",
         "outside the images directory"),
        ("initrd a symlink out", b(ok, initrd="evil"), 400, "bad_request",
         "initrd 'evil' is outside the images directory"),
        ("disk a symlink out", b(ok, kernel=None, initrd=None, disk="evil"), 400,
         "bad_request", "disk 'evil' is outside the images directory"),
        ("kernel that does not exist", b(ok, kernel="nope"), 400, "bad_request",
         "kernel 'nope': No such file or directory"),
        ("kernel a dangling symlink", b(ok, kernel="dangling"), 400, "bad_request",
         "kernel 'dangling': No such file or directory"),
        ("kernel a directory", b(ok, kernel="sub"), 400, "bad_request",
         "kernel 'sub' is not a regular file"),
        ("kernel the images directory itself", b(ok, kernel="."), 400, "bad_request",
         "kernel '.'"),
        ("no kernel and no disk", b(ok, kernel=None, initrd=None), 400, "bad_request",
         "'kernel'"),
        ("initrd without kernel", b(ok, kernel=None, disk="vmlinuz"), 400, "bad_request",
         "'initrd' needs 'kernel'"),
        ("a bridge that does not exist", b(ok, bridge="lebr9"), 400, "bad_request",
         "bridge 'lebr9' does not exist"),
        ("an interface that is no bridge", b(ok, bridge="eth0"), 400, "bad_request",
         "bridge 'eth0' does not exist"),
        ("append of two lines", b(ok, append="quiet\ninit=/bin/sh"), 400, "bad_request",
         "'append' must be one line"),
        ("append with a control character", b(ok, append="quiet\tinit=/bin/sh"), 400,
         "bad_request", "'append' contains a control character"),
        ("pin not an array", b(ok, pin="h1"), 400, "bad_request", "'pin'"),
        ("pin with a bad host id", b(ok, pin=["h 1"]), 400, "bad_request", "'pin'"),
        ("group not an id", b(ok, group="a b"), 400, "bad_request", "'group'"),
        ("exclude not a boolean", b(ok, exclude="yes"), 400, "bad_request", "'exclude'"),
        ("guest_load not a boolean", b(ok, guest_load=1), 400, "bad_request",
         "'guest_load'"),
        ("unknown field", b(ok, cpus=2), 400, "bad_request", "unknown field 'cpus'"),
        ("not JSON", b"{name: x", 400, "bad_json", "not valid JSON"),
        ("a duplicate key", b'{"name": "a", "name": "b", "mem_mib": 128}', 400, "bad_json",
         "not valid JSON"),
        ("a JSON array", b'[{"name": "x"}]', 400, "bad_request", "JSON object"),
        ("a JSON string", b'"vm"', 400, "bad_json", "expected"),
        ("an empty body", b"", 400, "bad_request", "JSON object"),
    ]
    before = vh.snapshot()
    problems = []
    for what, body, status, code, words in cases:
        raw = body if isinstance(body, bytes) else None
        st, out = vh.request("POST", "/v1/vms", None if raw is not None else body, raw=raw)
        err = out.get("error") or {}
        if (st, err.get("code")) != (status, code) or words not in err.get("message", ""):
            problems.append(f"{what}: {st} {out}")
    # missing or wrong bearer token: 401 before anything is read
    for what, token in (("no token", None), ("wrong token", TOKEN + "x"),
                        ("empty token", "")):
        st, out = vh.request("POST", "/v1/vms", b(ok), token=token)
        if st != 401 or out.get("error", {}).get("code") != "unauthorized":
            problems.append(f"POST with {what}: {st} {out}")
        st, out = vh.delete(vm_a["name"], token=token)
        if st != 401 or out.get("error", {}).get("code") != "unauthorized":
            problems.append(f"DELETE with {what}: {st} {out}")
    st, out = vh.delete(f"vm{os.getpid()}unknown")
    if st != 404 or out.get("error", {}).get("code") != "vm_not_found":
        problems.append(f"DELETE of an unknown VM: {st} {out}")
    st, out = vh.delete("-x")
    if st != 400 or out.get("error", {}).get("code") != "bad_request":
        problems.append(f"DELETE of an invalid id: {st} {out}")
    assert not problems, "\n".join(problems)

    # nothing defined, started or written anywhere; vm_a untouched
    assert vh.snapshot() == before
    for name in (ok, "a/b", "-x", "my vm"):
        assert not vh.r.exists(f"vm_configs:{name}")
    assert vh.pid_file(vm_a["name"]) == vm_a["vm"]["pid"]


def test_duplicate_and_defined_names_are_refused_and_nothing_is_touched(vh, vm_a, clean):
    h, name = vh.h, vm_a["name"]
    defined = f"vmdef{os.getpid()}"
    vh.virsh_xml("define", defined, 3, "ledef0", "52:54:00:ab:00:03")
    try:
        wait_for(lambda: os.listdir(vh.vm_dir(name)), 10, f"{name}'s state dir")
        before = vh.snapshot()
        files = sorted(os.listdir(vh.vm_dir(name)))
        cfg = vh.cfg(name)

        # the same name again: 409, the first VM untouched
        st, out = vh.create(name, 1)
        assert st == 409 and out["error"]["code"] == "vm_exists", (st, out)
        assert name in out["error"]["message"] and h.id in out["error"]["message"], out
        # an id registered by another host is taken too
        vh.r.sadd("vms_in_host:h9", "elsewhere")
        vh.r.hset("vm_configs:elsewhere", mapping={"name": "elsewhere", "host_id": "h9",
                                                   "state": "running"})
        st, out = vh.create("elsewhere", 1)
        assert st == 409 and out["error"]["code"] == "vm_exists", (st, out)
        assert "already exists in the cluster" in out["error"]["message"], out
        assert vh.cfg("elsewhere") == {"name": "elsewhere", "host_id": "h9",
                                       "state": "running"}
        vh.r.delete("vm_configs:elsewhere", "vms_in_host:h9")
        # a domain of that name defined (shut off) in this host's libvirt
        st, out = vh.create(defined, 1)
        assert st == 409 and out["error"]["code"] == "vm_exists", (st, out)
        assert defined in out["error"]["message"] and "defined" in out["error"]["message"], out
        assert h.virsh("domstate", defined).stdout.strip() == "shut off"
        # a DELETE without the token, or with a wrong one, changes nothing either
        for token in (None, "nope"):
            st, out = vh.delete(name, token=token)
            assert st == 401, (st, out)

        after = vh.snapshot()
        assert after == before, (before, after)  # no reservation left, nothing started
        assert vh.cfg(name) == cfg
        assert sorted(os.listdir(vh.vm_dir(name))) == files
        assert vh.is_domain_qemu(vm_a["vm"]["pid"], name)
        assert len(vh.events("vm_created", name)) == 1
        rising(vm_a["port"], vm_a["port"].status())
    finally:
        h.virsh("undefine", defined, check=False)


def test_libvirt_refusing_is_a_500_and_leaves_nothing(vh, vm_a, clean):
    h = vh.h
    name = f"vmq{os.getpid()}"
    # QEMU cannot load the kernel: libvirt defined the domain, its start failed
    before = vh.snapshot()
    st, out = vh.create(name, 1, kernel="empty-kernel", initrd=None)
    assert st == 500 and out["error"]["code"] == "launch_failed", (st, out)
    msg = out["error"]["message"]
    assert "could not start it" in msg and "empty-kernel" in msg, msg  # libvirt's words
    assert vh.snapshot() == before  # not defined, no reservation, no tap, no state dir
    # the name is free again: a good create under it works
    st, vm = vh.create(name, 1)
    assert st == 201, (st, vm)
    st, out = vh.delete(name)
    assert st == 200, (st, out)

    # an emulator that does not exist: libvirt refuses the definition
    bad = "/nonexistent/le-qemu-system-x86_64"
    with vh.agent_settings(**{"vm.emulator": bad}):
        assert vh.members() == {vm_a["name"]}  # the restart adopted vm_a
        before = vh.snapshot()
        st, out = vh.create(name, 1)
        assert st == 500 and out["error"]["code"] == "launch_failed", (st, out)
        msg = out["error"]["message"]
        assert bad in msg and "refused its definition" in msg, msg
        assert vh.snapshot() == before
        assert not vh.r.exists(f"vm_configs:{name}")
        assert name not in h.domains(all=True)


def test_domains_started_with_virsh_are_watched(vh, vm_a, clean):
    h = vh.h
    # a transient domain whose name is no valid id
    odd = "odd name 1"
    ev0 = len(vh.events())
    vh.virsh_xml("create", odd, 2, "leodd0", "52:54:00:ab:00:02")
    t0 = time.monotonic()
    try:
        uuid = vh.uuid(odd)
        vid = f"odd_name_1-{uuid.replace('-', '')[:8]}"
        wait_for(lambda: vid in vh.members(), 10, f"{vid} in vms_in_host:{h.id}")
        took = time.monotonic() - t0
        print(f"\n'{odd}' registered {took:.2f} s after virsh create")
        assert took <= EVENT_S, f"registered only after {took:.2f} s"
        pid = vh.pid_file(odd)
        channel = h.channel_path(odd)
        cfg = vh.cfg(vid)
        want = {
            "name": odd, "uuid": uuid, "mem": str(SMALL), "cpu": "1", "max_mem": str(SMALL),
            "max_cpu": "1", "disk": "",
            "image_path": os.path.join(vh.images, "vmlinuz"),
            "initrd": os.path.join(vh.images, "initrd.img"), "append": vh.append(2),
            "pid": str(pid), "tap_device": "leodd0", "mac": "52:54:00:ab:00:02",
            "bridge": "br0", "host_id": h.id, "rpc_port": str(h.port), "state": "running",
            "guest_stats": os.path.join(vh.vm_dir(vid), "guest-stats.json"),
            "serial_socket": channel, "domain_type": "qemu", "managed": "0",
        }
        assert cfg == want, cfg  # no rules: LoadEase did not define it
        assert vh.is_domain_qemu(pid, odd)
        assert vh.members() == {vm_a["name"], vid}

        # monitored like any VM: its guest's load shows in the agent's figures
        port, first = vh.wait_guest(odd, channel)
        v = vh.sampled(vid)
        assert (v["pid"], v["tap"], v["driver"]["managed"]) == (pid, "leodd0", False), v
        assert port.cmd("cpu 80") == "ok"
        wait_for(lambda: recent(vh, vid, "cpu", 3) >= 0.3, 20,
                 f"{vid}'s cpu figure to follow cpu 80 in the guest")
        assert port.cmd("cpu 0") == "ok"
        wait_for(lambda: (vh.get(vid) or {}).get("current", {}).get("mem_source") == "guest",
                 20, f"{vid}: mem_source guest (its balloon statistics)")
        rising(port, first)

        # rules set in its registry entry are its operator's: a reconcile
        # (here after the event of a domain defined meanwhile) keeps them,
        # while it rewrites a field of its own that went missing
        vh.r.hset(f"vm_configs:{vid}", mapping={"group": "g1", "pin": f"{h.id}"})
        vh.r.hdel(f"vm_configs:{vid}", "mem")
        vh.virsh_xml("define", "lepers", 3, "lepers0", "52:54:00:ab:00:03")
        wait_for(lambda: vh.r.hget(f"vm_configs:{vid}", "mem") == str(SMALL), 10,
                 "the reconcile after the define event")
        assert vh.cfg(vid) == dict(want, group="g1", pin=h.id), vh.cfg(vid)

        # virsh destroy: it leaves the registry at once
        port.close()
        h.virsh("destroy", odd)
        t0 = time.monotonic()
        wait_for(lambda: vid not in vh.members() and not vh.r.exists(f"vm_configs:{vid}"), 10,
                 f"{vid} to leave the registry")
        took = time.monotonic() - t0
        print(f"'{odd}' left the registry {took:.2f} s after virsh destroy")
        assert took <= EVENT_S, f"left only after {took:.2f} s"
        assert odd not in h.domains(all=True)
        ev = vh.events(vm=vid)
        assert [e["type"] for e in ev] == ["vm_stopped"] and ev[0]["host"] == h.id, ev
        wait_for(lambda: vh.get(vid) is None, 5, f"GET /v1/vms/{vid} 404")
        wait_for(lambda: not os.path.lexists(vh.vm_dir(vid)), 5, f"{vid}'s state dir to go")

        # a persistent one (its name is its id), started with virsh
        h.virsh("start", "lepers")
        t0 = time.monotonic()
        wait_for(lambda: "lepers" in vh.members(), 10, "lepers in the registry")
        took = time.monotonic() - t0
        pid = vh.pid_file("lepers")
        cfg = vh.cfg("lepers")
        assert (cfg["pid"], cfg["tap_device"], cfg["uuid"], cfg["managed"]) == \
            (str(pid), "lepers0", vh.uuid("lepers"), "0"), cfg
        assert took <= EVENT_S, f"registered only after {took:.2f} s"
        # virsh undefine while it runs: libvirt keeps it running (transient),
        # so the agent keeps watching it
        h.virsh("undefine", "lepers")
        assert set(h.domains()) == {vm_a["name"], "lepers"}
        assert re.search(r"^Persistent:\s+no$", h.virsh("dominfo", "lepers").stdout, re.M)
        time.sleep(2)
        assert vh.cfg("lepers") == cfg and "lepers" in vh.members()
        assert vh.is_domain_qemu(pid, "lepers")
        # and when it stops it is gone, from libvirt and the registry
        h.virsh("destroy", "lepers")
        t0 = time.monotonic()
        wait_for(lambda: "lepers" not in vh.members() and not vh.r.exists("vm_configs:lepers"),
                 10, "lepers to leave the registry")
        took = time.monotonic() - t0
        assert took <= EVENT_S, f"left only after {took:.2f} s"
        assert "lepers" not in h.domains(all=True)
        assert [e["type"] for e in vh.events(vm="lepers")] == ["vm_stopped"], vh.events()
        assert len(vh.events()) == ev0 + 2, vh.events()[ev0:]
    finally:
        for d in (odd, "lepers"):
            h.virsh("destroy", d, check=False)
            h.virsh("undefine", d, check=False)


@pytest.mark.parametrize("how", ["term", "kill"])
def test_agent_restart_adopts_every_vm_and_kills_none(vh, vm_a, clean, how):
    h, name = vh.h, vm_a["name"]
    other = f"vmz{how}{os.getpid()}"  # a domain LoadEase did not define
    ghost = f"ghost{how}{os.getpid()}"
    vh.virsh_xml("define", other, 4, f"lez{how}0", "52:54:00:ab:00:04")
    decoy = subprocess.Popen(["sleep", "120"], preexec_fn=_die_with_parent)
    try:
        h.virsh("start", other)
        wait_for(lambda: other in vh.members(), 10, f"{other} registered")
        # a VM registered by hand for this host that libvirt does not run,
        # whose pid names a live process (a reused pid)
        with vh.r.pipeline(transaction=True) as p:
            p.sadd(f"vms_in_host:{h.id}", ghost)
            p.hset(f"vm_configs:{ghost}", mapping={"name": ghost, "host_id": h.id,
                                                "state": "running", "pid": decoy.pid})
            p.execute()
        cfgs = {v: vh.cfg(v) for v in (name, other)}
        qemus = sorted(h.qemu_pids())
        assert len(qemus) == 2, qemus
        before = vm_a["port"].status()

        vh.stop_agent(how)
        if how == "kill":
            # destroyed while the agent was down
            h.virsh("destroy", other)
            h.virsh("undefine", other)
        t0 = time.monotonic()
        vh.start_agent()
        wait_for(lambda: other not in vh.members() if how == "kill" else True, 10,
                 f"{other} to leave the registry")
        wait_for(lambda: ghost not in vh.members(), 10, f"{ghost} to leave the registry")
        print(f"\nSIG{how.upper()}: registry settled {time.monotonic() - t0:.1f} s after the "
              "restart")

        # the VMs ran on, untouched, and are registered as they were
        assert decoy.poll() is None, "the decoy process was killed"
        assert not vh.r.exists(f"vm_configs:{ghost}"), vh.cfg(ghost)
        assert [e["type"] for e in vh.events(vm=ghost)] == ["vm_stopped"], vh.events()
        kept = [name] if how == "kill" else [name, other]
        assert vh.members() == set(kept), vh.members()
        for v in kept:
            assert vh.cfg(v) == cfgs[v], (v, vh.cfg(v), cfgs[v])
            assert vh.is_domain_qemu(int(cfgs[v]["pid"]), v)
        if how == "kill":
            assert sorted(h.qemu_pids()) == [vm_a["vm"]["pid"]]
            assert not vh.r.exists(f"vm_configs:{other}")
            assert [e["type"] for e in vh.events(vm=other)] == ["vm_stopped"], vh.events()
        else:
            assert sorted(h.qemu_pids()) == qemus
            assert vh.events(vm=other) == [], vh.events()
        assert len(vh.events("vm_created", name)) == 1, vh.events()
        rising(vm_a["port"], before)  # no reboot
        v = vh.sampled(name)
        assert v["pid"] == vm_a["vm"]["pid"], v
        if how == "term":
            vs = vh.sampled(other)
            assert vs["pid"] == int(cfgs[other]["pid"]), vs
    finally:
        decoy.kill()
        decoy.wait(timeout=5)
        vh.r.delete(f"vm_configs:{ghost}")
        vh.r.srem(f"vms_in_host:{h.id}", ghost)
        h.virsh("destroy", other, check=False)
        h.virsh("undefine", other, check=False)


def test_libvirtd_restart_keeps_the_registry_and_the_agent_reconnects(vh, vm_a, clean):
    h, name = vh.h, vm_a["name"]
    cfg = vh.cfg(name)
    pid = vm_a["vm"]["pid"]
    before = vm_a["port"].status()
    new = f"vmn{os.getpid()}"

    killed = h.kill_libvirtd()
    assert killed and pid_alive(pid)
    wait_for(lambda: vh.healthz().get("libvirt") == "unreachable", 15,
             "/healthz to say libvirt is unreachable")
    # never released while libvirt cannot be asked
    end = time.monotonic() + 3
    while time.monotonic() < end:
        assert vh.members() == {name} and vh.cfg(name) == cfg, (vh.members(), vh.cfg(name))
        time.sleep(0.3)
    assert (vh.get(name) or {}).get("status") == "ok", vh.get(name)
    st, out = vh.create(new, 1)
    assert st == 503 and out["error"]["code"] == "unavailable", (st, out)
    assert "not connected" in out["error"]["message"], out
    st, out = vh.delete(name)
    assert st == 503, (st, out)
    assert not vh.r.exists(f"vm_configs:{new}")

    h.start_libvirtd()
    t0 = time.monotonic()
    wait_for(lambda: vh.healthz().get("libvirt") == "connected", 20,
             "the agent to reconnect to libvirt")
    print(f"\nthe agent reconnected {time.monotonic() - t0:.1f} s after libvirtd came back")
    assert vh.members() == {name} and vh.cfg(name) == cfg, (vh.members(), vh.cfg(name))
    assert vh.is_domain_qemu(pid, name) and h.domains() == [name]
    rising(vm_a["port"], before)

    # a VM made after works, and libvirt's events reach the agent again
    vm, port, _ = vh.boot(new, 1)
    assert vh.cfg(new)["pid"] == str(vm["pid"]) and vh.members() == {name, new}
    port.close()
    h.virsh("destroy", new)
    t0 = time.monotonic()
    wait_for(lambda: new not in vh.members(), 10, f"{new} to leave the registry")
    assert time.monotonic() - t0 <= EVENT_S, "the destroy event did not reach the agent"
    h.virsh("undefine", new)
    assert [e["type"] for e in vh.events(vm=new)] == ["vm_created", "vm_stopped"]


def test_redis_flushall_is_healed_within_a_reconcile_period(vh, vm_a, clean):
    h, name = vh.h, vm_a["name"]
    period = 2
    with vh.agent_settings(**{"vm.reconcile_s": period}):
        cfg = vh.cfg(name)
        assert (cfg["pin"], cfg["group"], cfg["anti_group"], cfg["exclude"]) == \
            (f"{h.id},other-host", "web", "db", "1"), cfg
        host = vh.r.hgetall(f"host_config:{h.id}")
        before = vm_a["port"].status()
        qemus = sorted(h.qemu_pids())

        vh.r.flushall()
        t0 = time.monotonic()

        def healed():
            hc = vh.r.hgetall(f"host_config:{h.id}")
            return hc.get("state") == "up" and h.id in vh.r.smembers("host_ids") and \
                vh.members() == {name} and vh.cfg(name) == cfg
        wait_for(healed, period + 10, "the registry to be refilled")
        took = time.monotonic() - t0
        print(f"\nregistry refilled {took:.2f} s after FLUSHALL (vm.reconcile_s = {period})")
        assert took <= period + 3 * 0.5 + 2, f"refilled only after {took:.2f} s"
        hc = vh.r.hgetall(f"host_config:{h.id}")
        assert {k: v for k, v in hc.items() if k != "last_seen"} == \
            {k: v for k, v in host.items() if k != "last_seen"}, (hc, host)
        assert vh.r.hget("host_id_to_ip", h.id) == h.ip
        assert vh.r.get(f"vmm_proxy_addr:{h.id}") == f"{h.ip}:{h.port}"
        # nothing restarted, nothing re-created
        assert sorted(h.qemu_pids()) == qemus and vh.pid_file(name) == vm_a["vm"]["pid"]
        rising(vm_a["port"], before)
        assert [e for e in vh.events() if e.get("vm") == name] == [], vh.events()


def test_agent_stop_exits_cleanly_and_leaves_the_vms_running(vh, vm_a, clean):
    h, name = vh.h, vm_a["name"]
    pid = vm_a["vm"]["pid"]
    cfg = vh.cfg(name)
    before = vm_a["port"].status()
    vh.stop_agent("term")  # exit 0, no sanitizer report (asserted there)
    assert vh.is_domain_qemu(pid, name) and h.domains() == [name]
    assert vh.cfg(name) == cfg and vh.members() == {name}
    rising(vm_a["port"], before)
    vh.start_agent()
    assert vh.cfg(name) == cfg
