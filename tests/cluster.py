"""A LoadEase cluster on one machine: N hosts as network namespaces.

    with Cluster(3, workdir, bin="build/loadease", token="t") as c:
        h0 = c.host(0)
        st, body = h0.http("GET", "/v1/host")
        r = c.redis()

Layout (k is a free 10.233.<k>.0/24, picked under a lock):

  root namespace
    bridge le<pid>t<n>   10.233.<k>.1/24   the shared test network
    redis-server         10.233.<k>.1:<port> and <workdir>/redis/redis.sock
    veth le<pid>t<n>h<i> a port of that bridge, peer of host i's eth0
  namespace le-<pid>t<n>-h<i> (host i, agent id h<i>)
    lo
    eth0   10.233.<k>.<10+i>/24   the host's address: agent.address, its API
                                  (<ip>:7101), later migration traffic
    br0    10.234.<b>.1/24        the VMs' bridge (taps) and their sink;
                                  b = (8k + i) % 256. Nothing routes 10.234/16
                                  out of a namespace, so these never clash.
    loadease agent  -c <workdir>/h<i>/agent.ini, log <workdir>/h<i>/agent.log,
                    VM state in <workdir>/h<i>/state

No default route anywhere, no forwarding, no NAT: nothing of the cluster
reaches past 10.233.<k>.0/24 and the hosts' own br0 subnets. The root
namespace reaches every host over the bridge (HTTP here uses no proxy).

close() (also on leaving the `with`, at exit, and after a failed start)
removes, in reverse order, only what this object made: agents (SIGTERM, then
SIGKILL), the QEMUs the agents started (-name loadease-* with their files
under the workdir, and anything else left in the cluster's namespaces), the
namespaces, veths, redis-server, the bridge. It may be called any number of
times. The workdir itself (logs) is the caller's.

Cluster.unavailable() says why this machine cannot run a cluster (not root,
no `ip netns`, no /dev/net/tun, namespaces that cannot be entered, ...);
start() raises Unavailable (a unittest.SkipTest: pytest skips) with it.
clean_stale() removes what a killed harness process left behind.
"""
import atexit
import ctypes
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

AGENT_PORT = 7101
QEMU = "qemu-system-x86_64"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")
LOCK_PATH = "/run/lock/loadease-cluster.lock" if os.path.isdir("/run/lock") else \
    "/tmp/loadease-cluster.lock"
MAX_HOSTS = 64

_libc = ctypes.CDLL(None, use_errno=True)
_counter = [0]
_counter_lock = threading.Lock()
# le<pid>t<n> (bridge), le<pid>t<n>h<i> (veth), le-<pid>t<n>-h<i> (namespace)
_NS_RE = re.compile(r"^le-(\d+)t(\d+)-h(\d+)$")
_LINK_RE = re.compile(r"^le(\d+)t(\d+)(h\d+)?$")


class ClusterError(Exception):
    """Setting the cluster up failed (the message says where)."""


class Unavailable(unittest.SkipTest):
    """This machine cannot run a cluster; str() is the reason. pytest and
    unittest report it as a skip."""


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the harness process dies."""
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def sh(*cmd, check=True, timeout=20, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       stdin=subprocess.DEVNULL, timeout=timeout, **kw)
    if check and p.returncode:
        raise ClusterError(f"`{' '.join(cmd)}` -> {p.returncode}: {p.stdout.strip()}")
    return p


def wait_for(fn, timeout, what, interval=0.1):
    """Polls fn() until it returns something truthy (returned); ClusterError
    naming `what` and the last value or error after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
        except ClusterError:
            raise
        except Exception as e:  # noqa: BLE001 - the last error is reported
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise ClusterError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def _link_exists(name):
    return os.path.exists(f"/sys/class/net/{name}")


def _netns_list():
    p = sh("ip", "netns", "list", check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def _pid_alive(pid):
    """True unless the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _signal_and_wait(pids, timeout):
    """SIGTERM, wait up to `timeout` s, SIGKILL, wait; the pids still alive."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = [p for p in pids if _pid_alive(p)]
            if not pids:
                return []
            time.sleep(0.05)
    return [p for p in pids if _pid_alive(p)]


def _netns_pids(ns):
    out = sh("ip", "netns", "pids", ns, check=False).stdout.split()
    return [int(p) for p in out if p.isdigit()]


def qemu_pids(workdir):
    """QEMUs the agents under `workdir` started: named loadease-* and with a
    file (pid file, QMP socket) under the workdir. Nobody else's."""
    root = os.path.realpath(workdir) + "/"
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        argv = _cmdline(int(d))
        if not argv or not os.path.basename(argv[0]).startswith("qemu-system"):
            continue
        named = any(a == "-name" and i + 1 < len(argv) and argv[i + 1].startswith("loadease-")
                    for i, a in enumerate(argv))
        ours = any(root in a for a in argv[1:])
        if named and ours:
            found.append(int(d))
    return found


_probe = []


def unavailable(bin=None):
    """Why a cluster cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root: network namespaces, veth pairs, bridges and tap devices"
    if not shutil.which("ip") or sh("ip", "netns", "list", check=False).returncode != 0:
        return "needs `ip netns` (iproute2)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun for the VMs' tap devices"
    if not shutil.which("redis-server"):
        return "redis-server is not installed (scripts/install-deps installs it)"
    if bin is not None and not os.access(bin, os.X_OK):
        return f"the loadease binary {bin} is missing (build it: ninja -C <build dir>)"
    if not _probe:
        name = f"le-probe-{os.getpid()}"
        reason = None
        p = sh("ip", "netns", "add", name, check=False)
        if p.returncode:
            reason = f"`ip netns add` fails here: {p.stdout.strip()}"
        else:
            for cmd, what in ((("ip", "-n", name, "link", "set", "lo", "up"), "ip -n"),
                              (("ip", "netns", "exec", name, "true"), "ip netns exec"),
                              (("ip", "-n", name, "link", "add", "lprobe0", "type", "bridge"),
                               "a bridge")):
                p = sh(*cmd, check=False)
                if p.returncode:
                    reason = (f"network namespaces cannot be used here ({what}: "
                              f"{p.stdout.strip()}; e.g. / is not a mount point in a chroot)")
                    break
            sh("ip", "netns", "del", name, check=False)
        _probe.append(reason)
    return _probe[0]


def clean_stale(verbose=False):
    """Removes namespaces and links of clusters whose harness process is
    gone (killed before it could tear down), and the processes left in those
    namespaces (daemonized QEMUs). Returns what it removed."""
    removed = []
    for ns in _netns_list():
        m = _NS_RE.match(ns)
        if not m or _pid_alive(int(m.group(1))):
            continue
        left = _signal_and_wait(_netns_pids(ns), 5)
        sh("ip", "netns", "del", ns, check=False)
        removed.append(f"netns {ns}" + (f" (pids {left} would not die)" if left else ""))
    for name in sorted(os.listdir("/sys/class/net"), key=lambda n: (len(n), n), reverse=True):
        m = _LINK_RE.match(name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        if sh("ip", "link", "del", name, check=False).returncode == 0:
            removed.append(f"link {name}")
    if verbose:
        for r in removed:
            print(f"removed {r}")
    return removed


def _http(url, method="GET", body=None, token=None, timeout=10):
    """(status, parsed JSON or text). No proxy, whatever the environment says."""
    data = None
    headers = {}
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        data = data.encode() if isinstance(data, str) else data
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as r:
            status, raw, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
    text = raw.decode(errors="replace")
    if "json" in ctype and text:
        try:
            return status, json.loads(text)
        except ValueError:
            pass
    return status, text


class Host:
    """Host i of a Cluster: namespace, addresses, agent."""

    def __init__(self, cluster, i):
        c = cluster
        self.cluster = c
        self.index = i
        self.id = f"h{i}"
        self.ns = f"le-{c.tag}-h{i}"
        self.veth = f"le{c.tag}h{i}"
        self.ip = f"10.233.{c.k}.{10 + i}"
        self.port = AGENT_PORT
        self.api = f"http://{self.ip}:{self.port}"
        b = (8 * c.k + i) % 256
        self.vm_subnet = f"10.234.{b}.0/24"
        self.br_ip = f"10.234.{b}.1"  # br0's address: the VMs' sink
        self.dir = os.path.join(c.workdir, self.id)
        self.state_dir = os.path.join(self.dir, "state")
        self.cfg_path = os.path.join(self.dir, "agent.ini")
        self.log_path = os.path.join(self.dir, "agent.log")
        self.proc = None
        self._checked = None  # the process whose exit was already looked at
        self._termed = None   # the process SIGTERM was sent to

    def __repr__(self):
        return f"<Host {self.id} {self.ns} {self.ip}>"

    def vm_ip(self, j):
        """The j-th VM address in this host's br0 subnet (j >= 0)."""
        return f"{self.br_ip.rsplit('.', 1)[0]}.{10 + j}"

    # ---------------------------------------------------------------- commands
    def argv(self, *cmd):
        return ["ip", "netns", "exec", self.ns, *cmd]

    def run(self, *cmd, check=True, timeout=20):
        """Runs a command inside the host's namespace; CompletedProcess
        (stdout with stderr)."""
        return sh(*self.argv(*cmd), check=check, timeout=timeout)

    # ---------------------------------------------------------------- agent
    def write_config(self, settings):
        c = self.cluster
        conf = {
            "agent": {"id": self.id, "address": self.ip, "listen": f"{self.ip}:{self.port}",
                      "token": c.token, "interval_ms": "500", "log_level": "info"},
            # namespace hosts share one kernel: their use is their VMs' sum
            "host": {"nics": "eth0", "net": "1000", "usage": "vms"},
            "monitor": {"cpu_io_overhead": "off"},
            "redis": {"address": c.redis_address},
            "vm": {"enabled": "true", "accel": "tcg", "bridge": "br0",
                   "images_dir": c.images_dir, "state_dir": self.state_dir,
                   "shutdown_timeout_ms": "1000"},
        }
        for key, v in (settings or {}).items():
            sec, name = key.split(".", 1)
            conf.setdefault(sec, {})[name] = str(v).lower() if isinstance(v, bool) else str(v)
        with open(self.cfg_path, "w") as f:
            for sec, kv in conf.items():
                f.write(f"[{sec}]\n")
                for k, v in kv.items():
                    f.write(f"{k} = {v}\n")
                f.write("\n")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self, tail=None):
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        except OSError:
            return ""
        return text[-tail:] if tail else text

    def start(self, timeout=20):
        """Starts the agent in the namespace; returns once /healthz is 200."""
        if self.alive():
            raise ClusterError(f"agent {self.id} is already running")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(self.cluster.bin, "agent", "-c", self.cfg_path),
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         preexec_fn=_die_with_parent)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=20):
        def healthy():
            if self.proc.poll() is not None:
                raise ClusterError(f"agent {self.id} exited with {self.proc.returncode}; "
                                   f"log {self.log_path}:\n{self.log(3000)}")
            st, _ = self.http("GET", "/healthz", token=False, timeout=2)
            return st == 200
        wait_for(healthy, timeout, f"agent {self.id} /healthz 200 at {self.api}")

    def stop(self, timeout=15):
        """SIGTERM (SIGKILL after `timeout` s); the exit status (None if it
        was not running). A non-zero status or a sanitizer report in the log
        goes into cluster.problems."""
        if self.proc is None:
            return None
        if self._checked is self.proc:
            return self.proc.returncode
        self._checked = self.proc
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self.cluster.problems.append(f"agent {self.id} ignored SIGTERM for {timeout} s")
        rc = self.proc.returncode
        self._check_exit(rc)
        return rc

    def terminate(self):
        """Sends SIGTERM once per agent process; stop() waits for the exit."""
        if self.proc is not None and self.proc.poll() is None and self._termed is not self.proc:
            self._termed = self.proc
            self.proc.send_signal(signal.SIGTERM)

    def kill(self):
        """SIGKILL (a crash, as far as the agent knows); the exit status."""
        if self.proc is None:
            return None
        self._checked = self.proc
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(timeout=10)

    def _check_exit(self, rc):
        if rc != 0:
            self.cluster.problems.append(f"agent {self.id} exited with status {rc}")
        bad = [m for m in SANITIZER_MARKS if m in self.log()]
        if bad and not any(f"agent {self.id}: sanitizer" in p for p in self.cluster.problems):
            self.cluster.problems.append(f"agent {self.id}: sanitizer reports {bad} in "
                                         f"{self.log_path}")

    # ---------------------------------------------------------------- API
    def http(self, method, path, body=None, token=True, timeout=30):
        """(status, JSON body or text) of a request to this host's agent,
        sent from the root namespace over the test network."""
        return _http(self.api + path, method, body,
                     self.cluster.token if token else None, timeout)


class Cluster:
    """N LoadEase hosts as network namespaces around one private Redis.

    n_hosts   1..64
    workdir   where configs, logs, redis and VM state go (must exist or is made)
    bin       the loadease binary
    token     the cluster secret (agent.token)
    images_dir  vm.images_dir of every host (default <workdir>/images)
    settings  {'section.key': value} for every host's config, or a function
              host index -> such a dict
    handle_signals  SIGINT raises KeyboardInterrupt, SIGTERM/SIGHUP SystemExit
              (so `with` tears down); for scripts, main thread only
    """

    def __init__(self, n_hosts, workdir, bin, token, images_dir=None, settings=None,
                 handle_signals=False):
        if not 1 <= int(n_hosts) <= MAX_HOSTS:
            raise ValueError(f"n_hosts must be 1 to {MAX_HOSTS}")
        self.n = int(n_hosts)
        self.workdir = os.path.realpath(workdir)
        self.bin = os.path.realpath(bin)
        self.token = token
        self.images_dir = os.path.realpath(images_dir or os.path.join(self.workdir, "images"))
        self.settings = settings
        self.handle_signals = handle_signals
        with _counter_lock:
            self.seq = _counter[0] % 100
            _counter[0] += 1
        self.tag = f"{os.getpid()}t{self.seq}"
        self.bridge = f"le{self.tag}"
        self.k = None
        self.bridge_ip = None
        self.redis_port = None
        self.redis_dir = os.path.join(self.workdir, "redis")
        self.redis_sock = os.path.join(self.redis_dir, "redis.sock")
        self.redis_log = os.path.join(self.redis_dir, "redis.log")
        self.redis_proc = None
        self.hosts = []
        self.problems = []        # agents' bad exits, sanitizer reports
        self.teardown_errors = []  # what close() could not remove
        self._made_bridge = False
        self._made_ns = []
        self._made_veths = []
        self._clients = []
        self._started = False
        self._closed = False
        self._old_handlers = {}
        self._atexit = False

    # ---------------------------------------------------------------- context
    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    @staticmethod
    def unavailable(bin=None):
        return unavailable(bin)

    def host(self, i):
        return self.hosts[i]

    @property
    def redis_address(self):
        """What the agents are given: TCP over the test network."""
        return f"{self.bridge_ip}:{self.redis_port}"

    def redis(self, **kw):
        """A redis.Redis client (decode_responses) to the cluster's Redis,
        over the test network; closed at teardown."""
        import redis
        kw.setdefault("decode_responses", True)
        kw.setdefault("socket_timeout", 5)
        c = redis.Redis(host=self.bridge_ip, port=self.redis_port, **kw)
        self._clients.append(c)
        return c

    def describe(self):
        """Lines saying how to reach everything (for people)."""
        out = [f"test network  bridge {self.bridge}  {self.bridge_ip}/24  (no forwarding, "
               "no default route)",
               f"redis         {self.redis_address}  unix:{self.redis_sock}",
               f"token         {self.token}",
               f"workdir       {self.workdir}"]
        for h in self.hosts:
            out.append(f"{h.id:<4} ns {h.ns}  ip {h.ip}  api {h.api}  br0 {h.br_ip}/24 "
                       f"(VMs {h.vm_ip(0)}..)  log {h.log_path}")
        return out

    # ---------------------------------------------------------------- setup
    def start(self):
        if self._started:
            raise ClusterError("a Cluster starts once")
        self._started = True
        reason = unavailable(self.bin)
        if reason:
            raise Unavailable(reason)
        atexit.register(self.close)
        self._atexit = True
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                self._old_handlers[sig] = signal.signal(sig, _exit_on_signal)
            # even where it was started with SIGINT ignored (a background job)
            self._old_handlers[signal.SIGINT] = signal.signal(signal.SIGINT,
                                                              signal.default_int_handler)
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def _setup(self):
        os.makedirs(self.workdir, exist_ok=True)
        os.makedirs(self.images_dir, exist_ok=True)
        os.makedirs(self.redis_dir, exist_ok=True)
        for name in [self.bridge] + [f"le{self.tag}h{i}" for i in range(self.n)]:
            if len(name) > 15:
                raise ClusterError(f"interface name {name} is too long")
            if _link_exists(name):
                raise ClusterError(f"link {name} exists already (left by an earlier run? "
                                   "scripts/cluster clean removes leftovers)")
        existing = set(_netns_list())
        for i in range(self.n):
            if f"le-{self.tag}-h{i}" in existing:
                raise ClusterError(f"namespace le-{self.tag}-h{i} exists already "
                                   "(scripts/cluster clean removes leftovers)")

        # the shared test network: a subnet nothing here uses, taken under a lock
        with open(LOCK_PATH, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.k = self._free_k()
            self.bridge_ip = f"10.233.{self.k}.1"
            sh("ip", "link", "add", "name", self.bridge, "type", "bridge", "forward_delay", "0")
            self._made_bridge = True
            _no_ipv6(self.bridge)
            sh("ip", "addr", "add", f"{self.bridge_ip}/24", "dev", self.bridge)
            sh("ip", "link", "set", self.bridge, "up")
        self.hosts = [Host(self, i) for i in range(self.n)]

        self._start_redis()

        for h in self.hosts:
            self._make_host(h)
        for h in self.hosts:
            os.makedirs(h.state_dir, exist_ok=True)
            s = self.settings(h.index) if callable(self.settings) else self.settings
            h.write_config(s)
        for h in self.hosts:
            h.start()

    def _free_k(self):
        used = []
        for line in sh("ip", "-4", "-o", "addr", "show").stdout.splitlines():
            m = re.search(r"inet (\S+)", line)
            if m:
                used.append(ipaddress.ip_interface(m.group(1)).network)
        for line in sh("ip", "-4", "route", "show", "table", "all").stdout.splitlines():
            dst = line.split()[0] if line.split() else ""
            if dst in ("default", "local", "broadcast", "unreachable", "blackhole", "prohibit"):
                dst = line.split()[1] if dst != "default" and len(line.split()) > 1 else ""
            try:
                net = ipaddress.ip_network(dst, strict=False)
            except ValueError:
                continue
            if net.prefixlen > 0:
                used.append(net)
        start = os.getpid() % 250
        for j in range(250):
            k = (start + j) % 250 + 2
            net = ipaddress.ip_network(f"10.233.{k}.0/24")
            if not any(net.overlaps(u) for u in used):
                return k
        raise ClusterError("no free 10.233.<k>.0/24 for the test network")

    def _start_redis(self):
        with socket.socket() as s:
            s.bind((self.bridge_ip, 0))
            self.redis_port = s.getsockname()[1]
        argv = ["redis-server", "--bind", self.bridge_ip, "--port", str(self.redis_port),
                "--protected-mode", "no", "--save", "", "--appendonly", "no",
                "--dir", self.redis_dir, "--logfile", self.redis_log, "--daemonize", "no"]
        if len(self.redis_sock) < 100:
            argv += ["--unixsocket", self.redis_sock, "--unixsocketperm", "700"]
        else:
            self.redis_sock = None
        self.redis_proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           preexec_fn=_die_with_parent)
        c = self.redis()

        def up():
            if self.redis_proc.poll() is not None:
                raise ClusterError(f"redis-server exited with {self.redis_proc.returncode}; "
                                   f"see {self.redis_log}")
            return c.ping()
        wait_for(up, 10, f"redis-server on {self.redis_address}")

    def _make_host(self, h):
        sh("ip", "netns", "add", h.ns)
        self._made_ns.append(h.ns)
        # quiet links: no IPv6 router solicitations or MLD reports
        for k in ("all", "default"):
            h.run("sysctl", "-qw", f"net.ipv6.conf.{k}.disable_ipv6=1", check=False)
        sh("ip", "-n", h.ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns)
        self._made_veths.append(h.veth)
        _no_ipv6(h.veth)
        sh("ip", "link", "set", h.veth, "master", self.bridge)
        sh("ip", "link", "set", h.veth, "up")
        sh("ip", "-n", h.ns, "addr", "add", f"{h.ip}/24", "dev", "eth0")
        sh("ip", "-n", h.ns, "link", "set", "eth0", "up")
        sh("ip", "-n", h.ns, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
        sh("ip", "-n", h.ns, "addr", "add", f"{h.br_ip}/24", "dev", "br0")
        sh("ip", "-n", h.ns, "link", "set", "br0", "up")

    # ---------------------------------------------------------------- teardown
    def close(self):
        """Tears down everything this object made, in reverse order. Safe to
        call twice, after a failed start, or before start. Never raises;
        what it could not remove is in teardown_errors (and on stderr)."""
        if self._closed:
            return
        self._closed = True
        main = threading.current_thread() is threading.main_thread()
        saved = {}
        if main:  # a second Ctrl-C must not leave half a cluster
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                try:
                    saved[sig] = signal.signal(sig, signal.SIG_IGN)
                except (ValueError, OSError):
                    pass
        try:
            self._teardown()
        finally:
            if main:
                for sig, h in saved.items():
                    signal.signal(sig, h)
                for sig, h in self._old_handlers.items():
                    signal.signal(sig, h)
            if self._atexit:
                atexit.unregister(self.close)
        for e in self.teardown_errors:
            print(f"cluster {self.tag}: teardown: {e}", file=sys.stderr)

    def _step(self, what, fn, *a):
        try:
            fn(*a)
        except Exception as e:  # noqa: BLE001 - every step runs
            self.teardown_errors.append(f"{what}: {e}")

    def _teardown(self):
        # agents: SIGTERM to all at once, then wait for each
        for h in self.hosts:
            self._step(f"SIGTERM agent {h.id}", h.terminate)
        for h in self.hosts:
            self._step(f"stopping agent {h.id}", h.stop, 10)
        # QEMUs the agents started (daemonized: not our children), and
        # whatever else runs in our namespaces (only ours can)
        pids = set(qemu_pids(self.workdir)) if os.path.isdir(self.workdir) else set()
        for ns in self._made_ns:
            pids.update(_netns_pids(ns))
        pids.discard(os.getpid())
        if pids:
            left = _signal_and_wait(sorted(pids), 5)
            if left:
                self.teardown_errors.append(f"processes {left} survived SIGKILL")
        for c in self._clients:
            self._step("closing a redis client", c.close)
        self._clients = []
        for ns in reversed(self._made_ns):
            p = sh("ip", "netns", "del", ns, check=False)
            if p.returncode and ns in _netns_list():
                self.teardown_errors.append(f"ip netns del {ns}: {p.stdout.strip()}")
        self._made_ns = []
        # a veth goes with its peer's namespace, a moment later
        deadline = time.monotonic() + 3
        while any(_link_exists(v) for v in self._made_veths) and time.monotonic() < deadline:
            time.sleep(0.05)
        for v in reversed(self._made_veths):
            if _link_exists(v):
                p = sh("ip", "link", "del", v, check=False)
                if p.returncode and _link_exists(v):
                    self.teardown_errors.append(f"ip link del {v}: {p.stdout.strip()}")
        self._made_veths = []
        if self.redis_proc is not None:
            self._step("stopping redis-server", _stop_proc, self.redis_proc)
        if self._made_bridge:
            p = sh("ip", "link", "del", self.bridge, check=False)
            if p.returncode and _link_exists(self.bridge):
                self.teardown_errors.append(f"ip link del {self.bridge}: {p.stdout.strip()}")
            self._made_bridge = False


def _stop_proc(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _no_ipv6(ifname):
    try:
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w") as f:
            f.write("1")
    except OSError:
        pass


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)
