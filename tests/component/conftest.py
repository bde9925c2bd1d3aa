"""Component tests of the LoadEase host agent: the real `loadease agent`
binary (ASan/UBSan build), a real redis-server started by the test, real
processes with real taps in network namespaces (tests/tools/le-fakevm stands in
for QEMU). Nothing of the agent is mocked.

Environment (set by scripts/run-tests):
  LOADEASE_BIN    the loadease binary to test
  LOADEASE_BUILD  its build directory (for tests/tools/le-fakevm)

Needs root (network namespaces, taps); skipped with the reason otherwise.
Traffic goes only to 127.0.0.1 and to the test's own 10.231.x.0/30 veth pair.
"""
import contextlib
import ctypes
import http.client
import itertools
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import pytest
import redis

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("LOADEASE_BUILD") or os.path.join(REPO, "build-test")
BIN = os.environ.get("LOADEASE_BIN") or os.path.join(BUILD, "loadease")
FAKEVM = os.path.join(BUILD, "tests", "tools", "le-fakevm")
# a FAKE wall clock for one process (LD_PRELOAD; tests/tools/le-clockstep.c)
CLOCKSTEP = os.path.join(BUILD, "tests", "tools", "le-clockstep.so")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")
AGENT_PORT = 7101
TOKEN = "ct-secret-token-1"

_libc = ctypes.CDLL(None, use_errno=True)
_ns_counter = itertools.count()


def _die_with_parent():
    """preexec_fn: the child is killed when the test process dies."""
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def sh(*cmd, check=True, timeout=20):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    if check and p.returncode:
        raise AssertionError(f"{' '.join(cmd)} -> {p.returncode}: {p.stdout.strip()}")
    return p


def wait_for(fn, timeout, what, interval=0.05):
    """Polls fn() until it returns a truthy value (returned); AssertionError
    naming `what` and the last value seen after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
        except (OSError, redis.RedisError, http.client.HTTPException) as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


# --------------------------------------------------------------------------- redis


class RedisServer:
    """redis-server in its own temp dir, on a free 127.0.0.1 port and a unix
    socket, with an fsync-always AOF so kill() + restart() loses nothing that
    was acknowledged."""

    def __init__(self, conf_lines=(), admin_password=None):
        self.dir = tempfile.mkdtemp(prefix="le-ct-redis-")
        self.port = free_tcp_port()
        self.sock = os.path.join(self.dir, "redis.sock")
        self.conf = os.path.join(self.dir, "redis.conf")
        self.log = os.path.join(self.dir, "redis.log")
        self.admin_password = admin_password
        self.proc = None
        with open(self.conf, "w") as f:
            f.write(f"dir {self.dir}\nlogfile {self.log}\n")
            for line in conf_lines:
                f.write(line + "\n")

    @property
    def address(self):
        return "unix:" + self.sock

    def start(self, timeout=10):
        assert self.proc is None or self.proc.poll() is not None
        self.proc = subprocess.Popen(
            ["redis-server", self.conf, "--port", str(self.port), "--bind", "127.0.0.1",
             "--unixsocket", self.sock, "--unixsocketperm", "777", "--appendonly", "yes",
             "--appendfsync", "always", "--save", "", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        c = self.client()
        wait_for(lambda: self.proc.poll() is None and c.ping(), timeout,
                 f"redis-server on port {self.port} to answer PING")
        c.close()
        return self

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.admin_password,
                           decode_responses=True, socket_timeout=5)

    def kill(self):
        """SIGKILL: no shutdown, no final save; the AOF is what survives."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self):
        self.kill()
        return self.start()

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_factory():
    """make(start=True, conf_lines=(), admin_password=None) -> RedisServer."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (scripts/install-deps installs it)")
    servers = []

    def make(start=True, conf_lines=(), admin_password=None):
        s = RedisServer(conf_lines, admin_password)
        servers.append(s)
        if start:
            s.start()
        return s

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def redis_server(redis_factory):
    return redis_factory()


# --------------------------------------------------------------------------- netns


_netns_probe = []


def netns_unusable():
    """Why network namespaces cannot be entered here, or None. `ip netns exec`
    and `ip -n` remount / as a slave, which fails where / is not a mount
    point (a chroot such as ../shared/tools/fresh-debian's): the namespace
    tests cannot run there, and say so."""
    if not _netns_probe:
        name = f"le-probe-{os.getpid()}"
        reason = None
        p = sh("ip", "netns", "add", name, check=False)
        if p.returncode != 0:
            reason = f"`ip netns add` fails here: {p.stdout.strip()}"
        else:
            p = sh("ip", "-n", name, "link", "set", "lo", "up", check=False)
            if p.returncode != 0:
                reason = ("network namespaces cannot be entered here (`ip -n`: "
                          f"{p.stdout.strip()}; / is not a mount point, e.g. a chroot)")
            sh("ip", "netns", "del", name, check=False)
        _netns_probe.append(reason)
    return _netns_probe[0]


def _need_root_and_netns():
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, veth pairs and tap devices")
    if not shutil.which("ip") or sh("ip", "netns", "list", check=False).returncode != 0:
        pytest.skip("needs `ip netns` (iproute2) for the test's network namespaces")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("needs /dev/net/tun for tap devices")
    reason = netns_unusable()
    if reason:
        pytest.skip(reason)


class NetNS:
    """A network namespace joined to the root namespace by a veth pair:
    10.231.<o>.1/30 on the root side, 10.231.<o>.2/30 inside. No default
    route, no forwarding: nothing leaves the pair."""

    def __init__(self):
        n = next(_ns_counter)
        self.name = f"le-ct-{os.getpid()}-{n}"
        used = sh("ip", "-4", "-o", "addr", "show").stdout
        start = (os.getpid() * 7 + n * 13) % 250
        for i in range(250):
            o = (start + i) % 250 + 1
            if f" 10.231.{o}." not in used:
                break
        else:
            raise AssertionError("no free 10.231.x.0/30 subnet")
        self.octet = o
        self.root_ip = f"10.231.{o}.1"
        self.ip = f"10.231.{o}.2"
        self.veth = f"lct{os.getpid() % 100000}x{n % 1000}"
        self._ports = itertools.count(AGENT_PORT)
        self.created = False

    def setup(self):
        sh("ip", "netns", "add", self.name)
        self.created = True
        sh("ip", "-n", self.name, "link", "set", "lo", "up")
        sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "ve0", "netns",
           self.name)
        sh("ip", "addr", "add", f"{self.root_ip}/30", "dev", self.veth)
        sh("ip", "link", "set", self.veth, "up")
        sh("ip", "-n", self.name, "addr", "add", f"{self.ip}/30", "dev", "ve0")
        sh("ip", "-n", self.name, "link", "set", "ve0", "up")
        # quiet taps: no IPv6 router solicitations or MLD reports on them
        for k in ("all", "default"):
            self.exec_run("sh", "-c",
                          f"echo 1 > /proc/sys/net/ipv6/conf/{k}/disable_ipv6", check=False)
        return self

    def exec_argv(self, *cmd):
        return ["ip", "netns", "exec", self.name, *cmd]

    def exec_run(self, *cmd, check=True):
        return sh(*self.exec_argv(*cmd), check=check)

    def add_tap(self, name):
        sh("ip", "-n", self.name, "tuntap", "add", "dev", name, "mode", "tap")
        sh("ip", "-n", self.name, "link", "set", name, "up")

    def next_port(self):
        return next(self._ports)

    def close(self):
        if self.created:
            pids = sh("ip", "netns", "pids", self.name, check=False).stdout.split()
            for p in pids:  # only our own processes can be in our namespace
                try:
                    os.kill(int(p), signal.SIGKILL)
                except (ValueError, ProcessLookupError):
                    pass
            sh("ip", "netns", "del", self.name, check=False)
        if os.path.exists(f"/sys/class/net/{self.veth}"):
            sh("ip", "link", "del", self.veth, check=False)


@pytest.fixture
def netns():
    _need_root_and_netns()
    ns = NetNS()
    try:
        ns.setup()
        yield ns
    finally:
        ns.close()


# --------------------------------------------------------------------------- agent


def http_conn(host, port, ca=None, timeout=5):
    """An http.client connection: HTTPS verified against the CA file ca
    (host name included) when ca is given, else plain HTTP."""
    if not ca:
        return http.client.HTTPConnection(host, port, timeout=timeout)
    return http.client.HTTPSConnection(host, port, timeout=timeout,
                                       context=ssl.create_default_context(cafile=ca))


def tls_ca_of(conf):
    """The CA file clients use for a daemon configured with conf, or None
    when its tls.mode is off."""
    t = conf.get("tls", {})
    return t.get("ca", "/etc/loadease/tls/ca.pem") if t.get("mode", "on") == "on" else None


class Daemon:
    """A loadease process the tests started: `proc` (None before start) and
    its `log_path`."""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Agent(Daemon):
    """`loadease agent` running inside a namespace; HTTP API on ns.ip:port."""

    def __init__(self, ns, workdir, host_id, redis_address, port, settings):
        self.ns = ns
        self.id = host_id
        self.port = port
        self.log_path = os.path.join(workdir, f"agent-{host_id}.log")
        self.cfg_path = os.path.join(workdir, f"agent-{host_id}.ini")
        self.token = TOKEN
        conf = {
            "agent": {"id": host_id, "address": ns.ip, "listen": f"{ns.ip}:{port}",
                      "interval_ms": "250", "token": TOKEN, "log_level": "info"},
            "host": {"net": "100"},
            "redis": {"address": redis_address, "timeout_ms": "500", "backoff_max_ms": "1000"},
            "profile": {"window": "20"},
            # these tests watch registered processes; the QEMU driver has its own
            "vm": {"state_dir": os.path.join(workdir, f"state-{host_id}"), "enabled": "false"},
            # plain HTTP said explicitly (the default is on); test_tls.py runs TLS
            "tls": {"mode": "off"},
        }
        overrides = []
        for k, v in settings.items():
            sec, key = k.split(".", 1)
            if sec in conf and key in conf[sec]:
                conf[sec][key] = str(v)
            else:
                overrides += ["-s", f"{k}={v}"]  # also exercises -s
        with open(self.cfg_path, "w") as f:
            for sec, kv in conf.items():
                f.write(f"[{sec}]\n")
                for k, v in kv.items():
                    f.write(f"{k} = {v}\n")
        self.ca = tls_ca_of({"tls": {"mode": str(settings.get("tls.mode", conf["tls"]["mode"])),
                                     "ca": str(settings.get("tls.ca", ""))}})
        self.interval_s = int(conf["agent"]["interval_ms"]) / 1000
        self.argv = ns.exec_argv(BIN, "agent", "-c", self.cfg_path, *overrides)
        self.proc = None
        self.checked = False

    def start(self, timeout=15):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env.update(getattr(self, "extra_env", {}))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         preexec_fn=_die_with_parent)
        wait_for(lambda: self._healthy_or_dead(), timeout, f"agent {self.id} /healthz 200")
        return self

    def _healthy_or_dead(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"agent {self.id} exited with {self.proc.returncode}:\n"
                                 + self.log())
        st, _ = self.get_json("/healthz")
        return st == 200


    # HTTP (http.client: no proxy from the environment is ever used)
    def http(self, method, path, headers=None, body=None, timeout=5):
        """Reads without headers carry the token (reads need one by default);
        mutating calls send only the headers given."""
        if headers is None and method in ("GET", "HEAD"):
            headers = {"Authorization": "Bearer " + self.token}
        c = http_conn(self.ns.ip, self.port, self.ca, timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def get_json(self, path):
        st, _, body = self.http("GET", path)
        return st, json.loads(body) if body else None

    def vm(self, vm_id):
        st, j = self.get_json(f"/v1/vms/{vm_id}")
        return j if st == 200 else None

    def metrics(self):
        st, hdr, body = self.http("GET", "/metrics")
        assert st == 200, (st, body)
        return body.decode()

    def stop(self, timeout=20):
        """SIGTERM; asserts a clean exit (status 0, no sanitizer report)."""
        if self.checked:
            return
        self.checked = True
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError(f"agent {self.id} did not stop within {timeout} s of "
                                     f"SIGTERM; log:\n{self.log()}")
        else:
            rc = self.proc.returncode
        log = self.log()
        bad = [m for m in SANITIZER_MARKS if m in log]
        assert rc == 0 and not bad, (f"agent {self.id}: exit status {rc}, sanitizer reports "
                                     f"{bad}; log:\n{log}")


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="le-ct-")
    yield d
    if os.environ.get("LE_CT_KEEP"):  # keep the agents' logs for a look
        print(f"\nlogs kept in {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def agent_factory(request, netns, redis_factory, workdir):
    """start(redis_or_address, host_id=None, port=None, wait=True, settings=None)
    -> Agent (running, /healthz 200 unless wait=False). settings: {'section.key':
    value} (keys the test's INI file has are replaced there, others go on the
    command line as -s). At teardown
    every agent gets SIGTERM and must exit 0 with a clean sanitizer log."""
    agents = []
    names = itertools.count()

    def start(redis_srv, host_id=None, port=None, wait=True, settings=None):
        addr = redis_srv if isinstance(redis_srv, str) else redis_srv.address
        if host_id is None:
            base = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:32]
            host_id = f"ct-{base}-{os.getpid()}-{next(names)}"
        a = Agent(netns, workdir, host_id, addr, port or netns.next_port(),
                  dict(settings or {}))
        agents.append(a)
        if wait:
            a.start()
        return a

    yield start
    errors = []
    for a in agents:
        if a.proc is None:
            continue
        try:
            a.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


# --------------------------------------------------------------------------- fake VMs


class FakeVM:
    """tests/tools/le-fakevm in the namespace: a stand-in QEMU process."""

    def __init__(self, ns, workdir, tap=None, threads=0, cpu=0, frames=0, frame_size=60,
                 duration=60):
        argv = [FAKEVM, "--threads", str(threads), "--cpu", str(cpu), "--duration",
                str(duration)]
        if tap:
            argv += ["--tap", tap]
        if frames:
            argv += ["--frames", str(frames), "--frame-size", str(frame_size)]
        self.frames = frames
        self.log_path = os.path.join(workdir, f"fakevm-{id(self)}.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(ns.exec_argv(*argv), stdout=subprocess.PIPE,
                                         stderr=log, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
        self._buf = b""
        line = self._readline(10)
        m = re.fullmatch(r"ready (\d+)", line or "")
        assert m, f"le-fakevm did not start: {line!r}; stderr: {self._log()}"
        self.pid = int(m.group(1))
        assert self.pid == self.proc.pid  # `ip netns exec` execs, it does not fork

    def _log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def _readline(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return None
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def wait_sent(self, timeout=10):
        line = self._readline(timeout)
        assert line == f"sent {self.frames}", f"le-fakevm: {line!r}; stderr: {self._log()}"

    def kill(self, sig=signal.SIGKILL):
        """Kills it and reaps it, as QEMU's parent would."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


@pytest.fixture
def fakevm_factory(netns, workdir):
    if not os.path.exists(FAKEVM):
        pytest.fail(f"{FAKEVM} is missing: build with meson (-Dtests=true)")
    vms = []

    def start(**kw):
        vm = FakeVM(netns, workdir, **kw)
        vms.append(vm)
        return vm

    yield start
    for vm in vms:
        try:
            vm.kill()
        except Exception:
            pass


# --------------------------------------------------------------------------- registry


def register_vm(r, host, vm, pid, tap="", mem=512, cpu=1, **extra):
    """What the controller writes for a VM on a host: one MULTI/EXEC."""
    fields = {"pid": pid, "tap_device": tap, "mem": mem, "cpu": cpu, "host_id": host}
    fields.update(extra)
    p = r.pipeline(transaction=True)
    p.sadd(f"vms_in_host:{host}", vm)
    p.hset(f"vm_configs:{vm}", mapping=fields)
    p.execute()


def stream(r, key):
    """[(entry id ms, fields)] oldest first; checks ids are '<ms>-0'."""
    out = []
    for eid, fields in r.xrange(key):
        ms, sub = eid.split("-")
        assert sub == "0", f"{key}: entry id {eid} is not <ms>-0"
        out.append((int(ms), fields))
    return out


def assert_contiguous(entries, key):
    ids = [e[0] for e in entries]
    seqs = [int(f["seq"]) for _, f in entries]
    assert all(b > a for a, b in zip(ids, ids[1:])), f"{key}: ids not increasing: {ids}"
    gaps = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]
    assert not gaps, f"{key}: seq not contiguous, gaps {gaps[:10]} in {seqs}"
    return seqs


# --------------------------------------------------------------------------- prometheus

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)( -?\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse_prometheus(text):
    """Parses the text format (0.0.4) strictly enough to catch what a scraper
    rejects. Returns (types {family: type}, samples [(name, labels, value)])."""
    types, helps, samples = {}, set(), []
    assert text.endswith("\n"), "exposition does not end with a newline"
    for no, line in enumerate(text.split("\n")[:-1], 1):
        if not line:
            continue
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helps, f"line {no}: second HELP for {name}"
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            assert len(parts) == 4, f"line {no}: bad TYPE line {line!r}"
            name, typ = parts[2], parts[3]
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in types, f"line {no}: second TYPE for {name}"
            types[name] = typ
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"line {no}: not a sample line: {line!r}"
        name, labels_s, value = m.group(1), m.group(3) or "", m.group(4)
        labels = dict(_LABEL.findall(labels_s))
        rebuilt = ",".join(f'{k}="{v}"' for k, v in _LABEL.findall(labels_s))
        assert rebuilt == labels_s.rstrip(","), f"line {no}: bad labels {labels_s!r}"
        try:
            v = float(value)
        except ValueError:
            raise AssertionError(f"line {no}: value {value!r} is not a number")
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name not in types and name.endswith(suffix):
                fam = name[: -len(suffix)]
        assert fam in types, f"line {no}: sample {name} belongs to no # TYPE'd family"
        samples.append((name, labels, v))
    return types, samples


def metric(samples, name, **labels):
    """The value of the one sample of `name` whose labels include `labels`."""
    hits = [v for n, l, v in samples
            if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
    assert len(hits) == 1, f"{name}{labels}: {len(hits)} samples"
    return hits[0]


def is_finite(x):
    return isinstance(x, (int, float)) and not math.isnan(x) and not math.isinf(x)


# --------------------------------------------------------------------------- guests

GUEST_DIR = os.environ.get("LOADEASE_GUEST_DIR") or os.path.join(REPO, "build", "guest")
_guest_image = []


def _cluster_module():
    """tests/cluster.py (the namespace-cluster harness)."""
    if os.path.join(REPO, "tests") not in sys.path:
        sys.path.insert(0, os.path.join(REPO, "tests"))
    import cluster
    return cluster


def cluster_guest_image():
    """guest_image() for tests that run guests on a namespace cluster; skips
    where the cluster or QEMU cannot run."""
    lecluster = _cluster_module()
    reason = lecluster.unavailable(BIN)
    if reason:
        pytest.skip(reason)
    if not shutil.which(lecluster.QEMU):
        pytest.skip(f"{lecluster.QEMU} is not installed (scripts/install-deps installs it)")
    return guest_image()


def guest_image():
    """(kernel, initrd) built by scripts/guest-image into GUEST_DIR, once per
    test run (the script itself reuses an up-to-date image)."""
    if not _guest_image:
        p = subprocess.run([os.path.join(REPO, "scripts", "guest-image"), "--out", GUEST_DIR],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=600)
        assert p.returncode == 0, f"scripts/guest-image failed ({p.returncode}):\n{p.stderr}"
        paths = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
        _guest_image.append((paths["KERNEL"], paths["INITRD"]))
    return _guest_image[0]


# A UDP sink run inside the namespace: counts what arrives for `secs` seconds.
SINK_PY = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(0.2)
n = b = bad = 0
srcs = set()
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    try:
        data, addr = s.recvfrom(65536)
    except socket.timeout:
        continue
    n += 1
    b += len(data)
    srcs.add(addr[0])
    bad += not data.startswith(b"loadease-guestload")
print(json.dumps({"datagrams": n, "bytes": b, "sources": sorted(srcs), "bad": bad}), flush=True)
"""


# --------------------------------------------------------------------------- clusters


@contextlib.contextmanager
def running_cluster(n, images_dir, token, settings=None, prefix="le-ct-cluster-", **kw):
    """A started tests/cluster.py Cluster of n hosts; on the way out it is
    closed, and an agent's bad exit, a sanitizer report or a teardown error
    fails the test (logs are kept then, or with LE_CT_KEEP=1). agents=False:
    libvirt runs, the test starts each agent (Host.start())."""
    lecluster = _cluster_module()
    workdir = tempfile.mkdtemp(prefix=prefix)
    c = lecluster.Cluster(n, workdir, BIN, token, images_dir=images_dir, settings=settings,
                          **kw)
    try:
        t0 = time.monotonic()
        c.start()
        print(f"\n{n} hosts up in {time.monotonic() - t0:.1f} s:\n  " + "\n  ".join(c.describe()))
        yield c
    finally:
        c.close()
        problems = c.problems + c.teardown_errors
        if os.environ.get("LE_CT_KEEP") or problems:
            print(f"\ncluster logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if problems:
            pytest.fail("cluster: " + "; ".join(problems), pytrace=False)


# --------------------------------------------------------------------------- controller


def now_ms():
    return int(time.time() * 1000)


class Registry:
    """Writes hosts, VMs and samples into Redis the way the agents do (same
    keys, same fields), for tests of what reads them (controller, CLI,
    dashboard) without agents or VMs."""

    def __init__(self, r):
        self.r = r
        self.t = {}  # last entry time per stream

    def host(self, h, cpu=4, mem=8192, net=1000, state="up", api="127.0.0.1:1", **extra):
        """host_ids, host_id_to_ip, host_config (heartbeat now), the agent addresses."""
        r = self.r
        r.sadd("host_ids", h)
        r.hset("host_id_to_ip", h, "127.0.0.1")
        r.hset(f"host_config:{h}", mapping={"cpu": cpu, "mem": mem, "net": net, "name": h,
                                            "state": state, "last_seen": now_ms(), **extra})
        r.set(f"vmm_proxy_addr:{h}", api)
        r.set(f"mon_proxy_addr:{h}", api)

    def vm(self, v, h, cpu=1, mem=1024, **extra):
        self.r.sadd(f"vms_in_host:{h}", v)
        self.r.hset(f"vm_configs:{v}", mapping={"cpu": cpu, "mem": mem, "host_id": h,
                                                "state": "running", **extra})

    def samples(self, kind, id, n, **vals):
        """n entries, 1 s apart ending now (or after the last one)."""
        key = f"ts:{kind}:{id}"
        t = max(self.t.get(key, 0) + 1000, now_ms() - (n - 1) * 1000)
        for i in range(n):
            self.r.xadd(key, {"seq": i, "ts": t, **vals}, id=f"{t}-0")
            self.t[key] = t
            t += 1000

    def heartbeat(self, *hosts):
        for h in hosts:
            self.r.hset(f"host_config:{h}", "last_seen", now_ms())



@pytest.fixture
def registry_controller(redis_server, controller_factory):
    """(redis client, Registry, start(**settings) -> a controller on that
    Redis): a controller against a registry the test writes."""
    r = redis_server.client()
    yield r, Registry(r), lambda **s: controller_factory(redis_server.address, settings=s)
    r.close()


class Controller(Daemon):
    """`loadease controller` in the root namespace, its API on ip:port (port
    from free_tcp_port()); the config is written from `settings`
    ({'section.key': value}, overriding the test defaults below)."""

    def __init__(self, workdir, redis_address, settings=None, ip="127.0.0.1", name="c1",
                 token=TOKEN):
        self.workdir = workdir
        self.id = name
        self.ip = ip
        self.port = free_tcp_port()
        self.token = token
        self.log_path = os.path.join(workdir, f"controller-{name}.log")
        self.cfg_path = os.path.join(workdir, f"controller-{name}.ini")
        self.decision_log = os.path.join(workdir, f"decisions-{name}.jsonl")
        conf = {
            "controller": {"id": name, "listen": f"{ip}:{self.port}", "token": token,
                           "round_ms": "500", "lease_ms": "3000", "down_after_ms": "3000",
                           "measure_after_ms": "2000", "decision_log": self.decision_log,
                           "log_level": "info"},
            "redis": {"address": redis_address, "timeout_ms": "1000", "backoff_max_ms": "1000"},
            # plain HTTP said explicitly (the default is on); test_tls.py runs TLS
            "tls": {"mode": "off"},
        }
        for k, v in (settings or {}).items():
            sec, key = k.split(".", 1)
            conf.setdefault(sec, {})[key] = str(v).lower() if isinstance(v, bool) else str(v)
        with open(self.cfg_path, "w") as f:
            for sec, kv in conf.items():
                f.write(f"[{sec}]\n" + "".join(f"{k} = {v}\n" for k, v in kv.items()) + "\n")
        self.ca = tls_ca_of(conf)
        self.proc = None

    @property
    def url(self):
        return f"{'https' if self.ca else 'http'}://{self.ip}:{self.port}"

    def start(self, timeout=15):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env.update(getattr(self, "extra_env", {}))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([BIN, "controller", "-c", self.cfg_path], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, preexec_fn=_die_with_parent)

        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError(f"controller exited with {self.proc.returncode}:\n"
                                     + self.log())
            return self.http("GET", "/healthz")[0] == 200
        wait_for(healthy, timeout, "controller /healthz 200")
        return self


    def http(self, method, path, body=None, token=True, timeout=30, raw=False):
        """(status, JSON or text). token: True = the controller's token,
        a string = that token, None/False = none."""
        c = http_conn(self.ip, self.port, self.ca, timeout)
        headers = {}
        if token:
            headers["Authorization"] = "Bearer " + (self.token if token is True else token)
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            text = r.read().decode("utf-8", "replace")
        except OSError as e:
            return -1, str(e)
        finally:
            c.close()
        if raw or not text:
            return r.status, text
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text

    def get(self, path):
        st, j = self.http("GET", path)
        assert st == 200, f"GET {path}: {st} {j}"
        return j

    def decisions(self):
        try:
            with open(self.decision_log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except OSError:
            return []

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stops it; asserts a clean exit (0, no sanitizer report) for SIGTERM."""
        if not self.alive():
            return None
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        if sig == signal.SIGTERM:
            log = self.log()
            assert rc == 0, f"controller exited {rc}:\n{log[-3000:]}"
            for m in SANITIZER_MARKS:
                assert m not in log, f"sanitizer report in the controller log:\n{log[-5000:]}"
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)


@pytest.fixture
def controller_factory(workdir):
    """make(redis_address, settings=None, start=True, **kw) -> Controller;
    every controller is stopped (cleanly, checked) at the end."""
    made = []

    def make(redis_address, settings=None, start=True, **kw):
        c = Controller(workdir, redis_address, settings, **kw)
        made.append(c)
        if start:
            c.start()
        return c

    yield make
    errors = []
    for c in made:
        try:
            c.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("; ".join(errors), pytrace=False)


# ------------------------------------------------- guests on a namespace cluster
# A guest's load channel is a socket libvirt made inside its host (its own
# /run and /var/lib/libvirt): reached through the Host, at the path the
# registry's serial_socket names.

class NoReply(AssertionError):
    """A guest's load channel took a command and answered nothing in time."""


def guest_cmd(h, sock, line, timeout=10, tries=3):
    """One command on the load channel `sock` (a path inside host h) of a
    guest; the reply line. QEMU's channel takes one client at a time and may
    reset a connection made just as the last one closed, and a reply written
    while QEMU had no client is lost (seen once in CI: a guest that had
    answered every second of a ramp answered nothing to the next command for
    10 s): every command of the load tool sets a state (not a step), so it is
    sent again on a new connection, up to `tries` times."""
    for i in range(tries):
        try:
            return _guest_cmd_once(h, sock, line, timeout)
        except (ConnectionResetError, ConnectionRefusedError, NoReply):
            if i == tries - 1:
                raise
            time.sleep(0.5)


def _guest_cmd_once(h, sock, line, timeout):
    s = h.connect_unix(sock, timeout)
    try:
        s.sendall(line.encode() + b"\n")
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        if b"\n" not in buf:
            raise NoReply(f"no reply to {line!r} on {h.id}:{sock} within {timeout} s")
        return buf.split(b"\n", 1)[0].decode()
    finally:
        s.close()


def console_tail(h, name, n=3000):
    """The end of what a VM LoadEase defined printed on its serial console:
    the file libvirt keeps of it (the agent's vm.console_log_dir, default
    /var/log/libvirt/qemu, inside the host)."""
    try:
        with open(h.path(f"/var/log/libvirt/qemu/{name}-console.log"), "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError as e:
        return f"(no console log: {e})"


def guest_status(h, sock, timeout=10):
    return json.loads(guest_cmd(h, sock, "status", timeout))


def vm_qemus(c, name):
    """{host id: [pids]} of the live QEMUs of domain `name` (libvirt starts
    them with -name guest=<name>,...), by the host namespace they run in."""
    out = {}
    for h in c.hosts:
        for pid in h.qemu_pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            for a, b in zip(argv, argv[1:]):
                if a == b"-name" and b.split(b",")[0] in (f"guest={name}".encode(),
                                                          name.encode()):
                    out.setdefault(h.id, []).append(pid)
    return out
