"""A LoadEase cluster on one machine: N hosts as network namespaces, each
with its own libvirt daemon.

    with Cluster(3, workdir, bin="build/loadease", token="t") as c:
        h0 = c.host(0)
        st, body = h0.http("GET", "/v1/host")
        h0.virsh("list", "--all")
        r = c.redis()

Layout (k is a free 10.233.<k>.0/24, picked under a lock):

  root namespace
    bridge le<pid>t<n>   10.233.<k>.1/24   the shared test network
    redis-server         10.233.<k>.1:<port> and <workdir>/redis/redis.sock
    veth le<pid>t<n>h<i> a port of that bridge, peer of host i's eth0
  network namespace le-<pid>t<n>-h<i> (host i, agent id h<i>)
    lo
    eth0   10.233.<k>.<10+i>/24   the host's address: agent.address, its API
                                  (<ip>:7101), libvirtd (<ip>:16509, TCP, no
                                  auth) and migration traffic
    br0    10.234.<b>.1/24        the VMs' bridge (taps) and their sink;
                                  b = (8k + i) % 256. Nothing routes 10.234/16
                                  out of a namespace, so these never clash.
  inside it, a mount + UTS namespace (hostname le-<pid>t<n>-h<i>) held by a
  `sleep` (Host.holder), where <workdir>/h<i>/<dir> is bind-mounted over
    /run /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/libvirt
  (so pid files, sockets, domain XML, logs and the capability cache are the
  host's own; /etc/libvirt is a copy without domains or networks, plus the
  host's libvirtd.conf and qemu.conf), and a root-only null device over
  /dev/kvm. Everything of the host runs in all three namespaces (Host.argv):
    virtlogd, libvirtd --listen   log <workdir>/h<i>/var/log/libvirt/
    QEMU                          started by that libvirtd (domain type qemu)
    loadease agent  -c <workdir>/h<i>/agent.ini, log <workdir>/h<i>/agent.log,
                    VM state in <workdir>/h<i>/state, libvirt qemu:///system

No default route anywhere, no forwarding, no NAT; libvirt's `default` network
is never defined in a host: nothing of the cluster reaches past
10.233.<k>.0/24 and the hosts' own br0 subnets. The root namespace reaches
every host over the bridge (HTTP here uses no proxy) and every libvirtd over
its socket (Host.libvirt_uri) or TCP (Host.libvirt_tcp_uri).

close() (also on leaving the `with`, at exit, and after a failed start)
removes, in reverse order, only what this object made: agents (SIGTERM, then
SIGKILL), every host's domains (virsh destroy + undefine), its libvirtd and
virtlogd, then whatever else runs in the cluster's namespaces (QEMUs a killed
libvirtd left, holders: their mount namespaces and bind mounts go with them),
the namespaces, veths, redis-server, the bridge. It may be called any number
of times. The workdir itself (logs) is the caller's.

Cluster.unavailable() says why this machine cannot run a cluster (not root,
no `ip netns`, no /dev/net/tun, no libvirtd, namespaces that cannot be
entered, ...); start() raises Unavailable (a unittest.SkipTest: pytest skips)
with it. clean_stale() removes what a killed harness process left behind.
"""
import atexit
import ctypes
import fcntl
import ipaddress
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET

AGENT_PORT = 7101
QEMU = "qemu-system-x86_64"
# libvirt's daemons live in sbin, which a non-login PATH may lack
_SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
LIBVIRTD = shutil.which("libvirtd", path=_SBIN_PATH) or "/usr/sbin/libvirtd"
VIRTLOGD = shutil.which("virtlogd", path=_SBIN_PATH) or "/usr/sbin/virtlogd"
VIRSH = "virsh"
# each host's own copy of these (bind mounts in its mount namespace); /run
# last, in case the workdir lies under it
HOST_DIRS = ("/etc/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt",
             "/run")
GUESTLOAD_PORT = "org.loadease.guestload"  # the test guest's load channel
LIBVIRT_KEEPALIVE = (2, 3)  # interval s, count: a dead peer is dropped after ~8 s
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


def _signal_and_wait(pids, timeout, signals=(signal.SIGTERM, signal.SIGKILL)):
    """SIGTERM, wait up to `timeout` s, SIGKILL, wait (5 s); the pids still
    alive. signals=(SIGKILL,): SIGKILL at once."""
    for sig in signals:
        wait = 5 if sig == signal.SIGKILL else timeout
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


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _tail(path, n):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


def _copy_tree(src, dst, copy_file):
    """dst as a copy of src's directories (modes and owners kept), with
    the files and symlinks whose path relative to src copy_file(rel) says."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        d = os.path.normpath(os.path.join(dst, rel))
        os.makedirs(d, exist_ok=True)
        st = os.stat(dirpath)
        os.chmod(d, stat.S_IMODE(st.st_mode))
        os.chown(d, st.st_uid, st.st_gid)
        links = [n for n in dirnames if os.path.islink(os.path.join(dirpath, n))]
        dirnames[:] = [n for n in dirnames if n not in links]
        for f in filenames + links:
            r = os.path.normpath(os.path.join(rel, f))
            sp, dp = os.path.join(dirpath, f), os.path.join(d, f)
            if not copy_file(r) or os.path.lexists(dp):
                continue
            if os.path.islink(sp):
                os.symlink(os.readlink(sp), dp)
            elif os.path.isfile(sp):
                shutil.copy2(sp, dp)
                st = os.stat(sp)
                os.chown(dp, st.st_uid, st.st_gid)


def _write_conf(path, original, settings):
    """A libvirt config file: the original's text without lines setting any
    of our keys, then ours (strings quoted, numbers not)."""
    try:
        with open(original) as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    keys = {k for k, _ in settings}
    setting = re.compile(r"^\s*(\w+)\s*=")
    lines = [ln for ln in lines
             if not (setting.match(ln) and setting.match(ln).group(1) in keys)]
    lines.append("")
    lines.append("# a LoadEase test host (tests/cluster.py)")
    for k, v in settings:
        lines.append(f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"')
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def _netns_pids(ns):
    out = sh("ip", "netns", "pids", ns, check=False).stdout.split()
    return [int(p) for p in out if p.isdigit()]


def _is_qemu(pid):
    argv = _cmdline(pid)
    return bool(argv) and os.path.basename(argv[0]).startswith("qemu-system")


def _netns_ino(ns):
    try:
        return os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return None


def _pid_netns_ino(pid):
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def qemu_pids(workdir):
    """The live QEMUs of the hosts of a cluster under `workdir`: those its
    libvirt daemons started (pid files <workdir>/h*/run/libvirt/qemu/*.pid,
    kept when a killed libvirtd left its QEMUs running), any other QEMU in
    the hosts' network namespaces, and QEMUs named loadease-* with a file
    under the workdir (an agent that starts QEMU itself). Nobody else's."""
    root = os.path.realpath(workdir)
    found = set()
    inos = set()
    try:
        hosts = [os.path.join(root, d) for d in os.listdir(root)]
    except OSError:
        hosts = []
    for hdir in hosts:
        piddir = os.path.join(hdir, "run", "libvirt", "qemu")
        if os.path.isdir(piddir):
            for f in os.listdir(piddir):
                pid = _read_pid(os.path.join(piddir, f)) if f.endswith(".pid") else None
                if pid and _pid_alive(pid) and _is_qemu(pid):
                    found.add(pid)
        try:
            with open(os.path.join(hdir, "netns")) as f:
                ino = _netns_ino(f.read().strip())
        except OSError:
            ino = None
        if ino:
            inos.add(ino)
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in found:
            continue
        argv = _cmdline(int(d))
        if not argv or not os.path.basename(argv[0]).startswith("qemu-system"):
            continue
        named = any(a == "-name" and i + 1 < len(argv) and argv[i + 1].startswith("loadease-")
                    for i, a in enumerate(argv))
        if (named and any(root + "/" in a for a in argv[1:])) or \
                (inos and _pid_netns_ino(int(d)) in inos):
            if _pid_alive(int(d)):
                found.add(int(d))
    return sorted(found)


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
    for path, pkg in ((LIBVIRTD, "libvirt-daemon-system"), (VIRTLOGD, "libvirt-daemon-system"),
                      (shutil.which(VIRSH), "libvirt-clients")):
        if not path or not os.access(path, os.X_OK):
            what = os.path.basename(path) if path else VIRSH
            return (f"{what} is not installed (each namespace host runs its own libvirt; "
                    f"scripts/install-deps installs {pkg})")
    for tool in ("nsenter", "unshare", "mount"):
        if not shutil.which(tool, path=_SBIN_PATH):
            return f"needs {tool} (util-linux / mount)"
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
                              (("ip", "netns", "exec", name, "unshare", "--uts", "true"),
                               "a UTS namespace"),
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


def _virsh_names(uri, *args):
    p = sh(VIRSH, "-q", "-c", uri, "list", "--name", *args, check=False, timeout=30)
    if p.returncode:
        raise ClusterError(f"virsh -c {uri} list: {p.stdout.strip()}")
    return [n.strip() for n in p.stdout.splitlines() if n.strip()]


def _destroy_domains(uri, where, timeout=30):
    """Host.destroy_domains() for the libvirtd at uri; errors name `where`."""
    errors = []
    procs = [(d, subprocess.Popen([VIRSH, "-q", "-c", uri, "destroy", d],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
             for d in _virsh_names(uri)]
    for d, p in procs:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        if p.returncode:
            errors.append(f"virsh destroy {d} on {where}: {out.strip()}")
    for d in _virsh_names(uri, "--all"):
        p = sh(VIRSH, "-q", "-c", uri, "undefine", d, "--nvram", check=False)
        if p.returncode:
            p = sh(VIRSH, "-q", "-c", uri, "undefine", d, check=False)
        if p.returncode:
            errors.append(f"virsh undefine {d} on {where}: {p.stdout.strip()}")
    return errors


def clean_stale(verbose=False):
    """Removes namespaces and links of clusters whose harness process is
    gone (killed before it could tear down), and the processes left in those
    namespaces: libvirtd, virtlogd, the QEMUs they started, the holders of
    the hosts' mount namespaces (whose bind mounts go with the last of
    them). Returns what it removed."""
    removed = []
    for ns in _netns_list():
        m = _NS_RE.match(ns)
        if not m or _pid_alive(int(m.group(1))):
            continue
        # a libvirtd left running destroys its domains first: it restores
        # what it changed (the owner of a shared kernel, say)
        for pid in _netns_pids(ns):
            if os.path.basename((_cmdline(pid) or [""])[0]) == "libvirtd":
                sock = f"/proc/{pid}/root/run/libvirt/libvirt-sock"
                try:
                    _destroy_domains(f"qemu+unix:///system?socket={sock}", ns)
                except (ClusterError, subprocess.TimeoutExpired):
                    pass
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
        # libvirt: the host's own daemons, in its own mount namespace
        self.hostname = self.ns
        self.host_uuid = str(uuid.uuid4())  # libvirt refuses to migrate to "the same host"
        self.holder = None  # the `sleep` holding the host's mount and UTS namespaces
        self.libvirt_uri = f"qemu+unix:///system?socket={self.path('/run/libvirt/libvirt-sock')}"
        self.libvirt_tcp_uri = f"qemu+tcp://{self.ip}/system"
        # with Cluster(libvirt_tls=True): libvirtd's TLS port, its files from
        # `loadease tls host --libvirt` under pki/ (no /etc/pki here); the
        # client files (pkipath) are the host's own, read by the peer's
        # libvirtd on this machine
        self.pki = os.path.join(self.dir, "pki")
        self.libvirt_tls_uri = (f"qemu+tls://{self.ip}/system?"
                                f"pkipath={os.path.join(self.pki, 'client')}")
        self.libvirt_peer_uri = self.libvirt_tls_uri if c.libvirt_tls else self.libvirt_tcp_uri
        self.libvirtd_log = self.path("/var/log/libvirt/libvirtd.log")
        self.daemon_log = self.path("/var/log/libvirt/daemons.out")  # their stdout, stderr

    def __repr__(self):
        return f"<Host {self.id} {self.ns} {self.ip}>"

    def vm_ip(self, j):
        """The j-th VM address in this host's br0 subnet (j >= 0)."""
        return f"{self.br_ip.rsplit('.', 1)[0]}.{10 + j}"

    # ---------------------------------------------------------------- commands
    def argv(self, *cmd):
        """argv that runs cmd inside the host: its network, mount and UTS
        namespaces (only the network namespace while setting up, before the
        holder of the others is up)."""
        if self.holder is None:
            return ["ip", "netns", "exec", self.ns, *cmd]
        if self.holder.poll() is not None:
            raise ClusterError(f"host {self.id}: the holder of its mount namespace "
                               f"(pid {self.holder.pid}) is gone")
        # -r -w: entering a mount namespace moves a process to that namespace's
        # root; the holder's root and cwd are where this harness runs (a
        # chroot, in a fresh test root)
        return ["nsenter", "-t", str(self.holder.pid), "-n", "-m", "-u", "-r", "-w", "--", *cmd]

    def run(self, *cmd, check=True, timeout=20):
        """Runs a command inside the host's namespaces; CompletedProcess
        (stdout with stderr)."""
        return sh(*self.argv(*cmd), check=check, timeout=timeout)

    def path(self, p):
        """Where the file the host sees at absolute path p is, seen from the
        root namespace: its own /run, /var/lib/libvirt, /var/cache/libvirt,
        /var/log/libvirt and /etc/libvirt are under its dir, the rest is
        shared. E.g. path('/run/libvirt/qemu/vm1.pid')."""
        if not os.path.isabs(p):
            raise ValueError(f"path {p!r} is not absolute")
        p = os.path.normpath(p)
        if p == "/var/run" or p.startswith("/var/run/"):
            p = p[len("/var"):]
        for d in HOST_DIRS:
            if p == d or p.startswith(d + "/"):
                return self.dir + p
        return p

    def connect_unix(self, p, timeout=5):
        """A connected AF_UNIX stream socket to the socket the host sees at
        p (a domain's channel, say), also where path(p) is longer than a
        socket address can be. The caller closes it."""
        real = self.path(p)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            if len(os.fsencode(real)) < 108:
                s.connect(real)
            else:
                fd = os.open(os.path.dirname(real), os.O_PATH | os.O_DIRECTORY)
                try:
                    s.connect(f"/proc/self/fd/{fd}/{os.path.basename(real)}")
                finally:
                    os.close(fd)
        except BaseException:
            s.close()
            raise
        return s

    # ---------------------------------------------------------------- libvirt
    def virsh(self, *args, check=True, timeout=60):
        """Runs virsh against this host's libvirtd (from the root namespace,
        over its socket); CompletedProcess (stdout with stderr)."""
        return sh(VIRSH, "-q", "-c", self.libvirt_uri, *args, check=check, timeout=timeout)

    def domains(self, all=False):
        """Names of the host's running domains (all=True: defined ones too)."""
        return _virsh_names(self.libvirt_uri, *(["--all"] if all else []))

    def channel_path(self, domain, port=GUESTLOAD_PORT):
        """The socket path (inside the host) of the running domain's unix
        channel named `port` (libvirt picks it when the XML gives none; a
        migration gives it a new one on the destination): for
        connect_unix()."""
        xml = self.virsh("dumpxml", domain).stdout
        for ch in ET.fromstring(xml).iterfind("./devices/channel[@type='unix']"):
            target, source = ch.find("target"), ch.find("source")
            if target is not None and target.get("name") == port and source is not None:
                return source.get("path")
        raise ClusterError(f"domain {domain} on {self.id} has no unix channel {port}")

    def qemu_pids(self):
        """The QEMUs running in this host's network namespace, whoever
        started them (libvirtd, a killed libvirtd, anything else)."""
        return [p for p in _netns_pids(self.ns) if _is_qemu(p)]

    def _daemon_pid(self, name):
        pid = _read_pid(self.path(f"/run/{name}.pid"))
        if not pid or not _pid_alive(pid):
            return None
        argv = _cmdline(pid)
        if not argv or os.path.basename(argv[0]) != name:
            return None
        ino = _netns_ino(self.ns)
        return pid if ino and _pid_netns_ino(pid) == ino else None

    def libvirtd_pid(self):
        """The pid of the host's running libvirtd, or None."""
        return self._daemon_pid("libvirtd")

    def virtlogd_pid(self):
        """The pid of the host's running virtlogd, or None."""
        return self._daemon_pid("virtlogd")

    def _daemon(self, *cmd):
        """Runs a daemon's `-d` start inside the host under a reaper (see
        _REAPER_PY); returns once it has forked into the background."""
        with open(self.daemon_log, "ab") as log:
            p = subprocess.Popen([sys.executable, "-c", _REAPER_PY, *self.argv(*cmd)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                 cwd="/", preexec_fn=_die_with_parent)
        self.cluster._reapers.append(p)
        rc = None
        if select.select([p.stdout], [], [], 60)[0]:
            line = p.stdout.readline().strip()
            rc = int(line) if line.lstrip(b"-").isdigit() else None
        p.stdout.close()
        if rc != 0:
            raise ClusterError(f"host {self.id}: `{' '.join(cmd)}` "
                               f"{'did not fork within 60 s' if rc is None else f'exited with {rc}'}"
                               f"; see {self.daemon_log} and {self.libvirtd_log}:\n"
                               f"{_tail(self.libvirtd_log, 2000)}")

    def start_libvirtd(self, wait=True, timeout=30):
        """Starts the host's virtlogd (unless it runs) and `libvirtd -d
        --listen` in its namespaces, as a host (re)booting would: a restarted
        libvirtd finds the QEMUs a killed one left and lists them again.
        Returns once libvirtd answers (wait=False: at once)."""
        if self.libvirtd_pid():
            raise ClusterError(f"host {self.id}: libvirtd is already running")
        if not self.virtlogd_pid():
            self._daemon(VIRTLOGD, "-d")
        self._daemon(LIBVIRTD, "-d", "--listen")
        if wait:
            self.wait_libvirtd(timeout)
        return self

    def wait_libvirtd(self, timeout=30):
        def up():
            if not self.libvirtd_pid():
                raise ClusterError(f"host {self.id}: libvirtd is not running; log "
                                   f"{self.libvirtd_log}:\n{_tail(self.libvirtd_log, 2000)}")
            return self.virsh("uri", check=False, timeout=10).returncode == 0
        wait_for(up, timeout, f"libvirtd of {self.id} to answer on {self.libvirt_uri}")

    def kill_libvirtd(self):
        """SIGKILLs the host's libvirtd (a crash); its QEMUs keep running.
        The pid killed, or None if none ran."""
        pid = self.libvirtd_pid()
        if pid:
            left = _signal_and_wait([pid], 0, signals=(signal.SIGKILL,))
            if left:
                raise ClusterError(f"host {self.id}: libvirtd {pid} survived SIGKILL")
        return pid

    def stop_libvirt(self, timeout=10):
        """SIGTERM to libvirtd and virtlogd (SIGKILL after `timeout` s); the
        domains' QEMUs keep running (destroy_domains() first to stop them)."""
        pids = [p for p in (self.libvirtd_pid(), self.virtlogd_pid()) if p]
        left = _signal_and_wait(pids, timeout)
        if left:
            raise ClusterError(f"host {self.id}: libvirt daemons {left} survived SIGKILL")

    def destroy_domains(self, timeout=30):
        """virsh destroy every running domain of the host (all at once),
        then undefine every defined one. What failed, as strings."""
        return _destroy_domains(self.libvirt_uri, self.id, timeout)

    def kill_host(self, agent=True):
        """The host dies: SIGKILL to its agent (agent=False: not), libvirtd,
        every QEMU in its namespace and virtlogd, in that order. Its
        namespaces and link stay; start_libvirtd() and start() bring it back
        (without the VMs)."""
        if agent:
            self.kill()
        pids = [p for p in (self.libvirtd_pid(),) if p] + self.qemu_pids()
        pids += [p for p in (self.virtlogd_pid(),) if p]
        left = _signal_and_wait(pids, 0, signals=(signal.SIGKILL,))
        if left:
            raise ClusterError(f"host {self.id}: {left} survived SIGKILL")

    def cut_link(self):
        """Takes the host off the test network (its veth down: eth0 loses its
        carrier); everything on the host keeps running."""
        sh("ip", "link", "set", self.veth, "down")

    def restore_link(self):
        sh("ip", "link", "set", self.veth, "up")

    def _prepare(self, kvm):
        """The host's own copies of HOST_DIRS under its dir, its libvirt
        configuration, and the device that covers /dev/kvm."""
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "netns"), "w") as f:
            f.write(self.ns + "\n")

        def etc_file(rel):
            # no domains, no networks (libvirt's `default` NAT one among
            # them), nothing autostarted: the host starts empty
            parts = rel.split("/")
            return not ("autostart" in parts[:-1] or
                        (parts[0] == "qemu" and (parts[-1].endswith(".xml") or
                                                 "networks" in parts)))
        _copy_tree("/etc/libvirt", self.path("/etc/libvirt"), etc_file)
        _copy_tree("/var/lib/libvirt", self.path("/var/lib/libvirt"), lambda rel: False)
        _copy_tree("/var/cache/libvirt", self.path("/var/cache/libvirt"), lambda rel: True)
        _copy_tree("/var/log/libvirt", self.path("/var/log/libvirt"), lambda rel: False)
        run = self.path("/run")
        os.makedirs(run, mode=0o755, exist_ok=True)
        os.makedirs(os.path.join(run, "lock"), exist_ok=True)
        os.chmod(os.path.join(run, "lock"), 0o1777)
        if os.path.islink("/run/shm") and not os.path.lexists(os.path.join(run, "shm")):
            os.symlink(os.readlink("/run/shm"), os.path.join(run, "shm"))
        ka_interval, ka_count = LIBVIRT_KEEPALIVE
        tls = []
        if self.cluster.libvirt_tls:
            tls = self._make_pki()
        _write_conf(self.path("/etc/libvirt/libvirtd.conf"), "/etc/libvirt/libvirtd.conf", [
            ("host_uuid", self.host_uuid),
            ("listen_tls", 1 if tls else 0),
            *tls,
            ("listen_tcp", 1),
            ("listen_addr", self.ip),
            # no authentication: tests only, on namespace addresses nothing
            # outside this machine can reach
            ("auth_tcp", "none"),
            ("keepalive_interval", ka_interval),
            ("keepalive_count", ka_count),
            ("log_outputs", "3:file:/var/log/libvirt/libvirtd.log"),
        ])
        # qemu.conf keeps the shipped user (libvirt-qemu), dynamic_ownership
        # and remember_owner: every host chowns a shared kernel or disk to
        # that user and counts its users in the file's own xattrs, so the
        # source's restore after a migration (or a stop on one host) leaves
        # the file to the QEMUs still using it; the last one restores it.
        _write_conf(self.path("/etc/libvirt/qemu.conf"), "/etc/libvirt/qemu.conf", [
            # host names do not resolve here: migrations go to the address
            ("migration_address", self.ip),
            ("migration_host", self.ip),
            *([("migrate_tls_x509_cert_dir", os.path.join(self.pki, "qemu"))]
              if self.cluster.libvirt_tls else []),
            # the source's connection to the destination in a p2p migration
            ("keepalive_interval", ka_interval),
            ("keepalive_count", ka_count),
        ])
        _write_conf(self.path("/etc/libvirt/virtlogd.conf"), "/etc/libvirt/virtlogd.conf", [
            ("log_outputs", "3:file:/var/log/libvirt/virtlogd.log"),
        ])
        if kvm:
            # libvirt would find /dev/kvm but that libvirt-qemu cannot open
            # it, and probe QEMU again on every start (4 s); a root-only null
            # device in its place makes it settle for TCG
            node = os.path.join(self.dir, "dev-kvm")
            if not os.path.exists(node):
                os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
            os.chmod(node, 0o600)

    def _make_pki(self):
        """This host's libvirt and QEMU TLS files from the cluster's CA
        (`loadease tls host --libvirt`); the libvirtd.conf lines using them."""
        c = self.cluster
        if not os.path.exists(self.pki):
            p = subprocess.run([c.bin, "tls", "host", self.id, "--ip", self.ip, "--libvirt",
                                self.pki, c.pki_ca], capture_output=True, text=True)
            if p.returncode:
                raise ClusterError(f"loadease tls host {self.id}: {p.stderr.strip()}")
            client = os.path.join(self.pki, "client")
            os.makedirs(client, mode=0o700)
            for src, dst in (("CA/cacert.pem", "cacert.pem"),
                             ("libvirt/clientcert.pem", "clientcert.pem"),
                             ("libvirt/private/clientkey.pem", "clientkey.pem")):
                shutil.copy(os.path.join(self.pki, src), os.path.join(client, dst))
            # QEMU (libvirt-qemu) reads its files itself: the way to them
            for d in (c.workdir, self.dir, self.pki):
                os.chmod(d, os.stat(d).st_mode | 0o011)
        return [("ca_file", os.path.join(self.pki, "CA/cacert.pem")),
                ("cert_file", os.path.join(self.pki, "libvirt/servercert.pem")),
                ("key_file", os.path.join(self.pki, "libvirt/private/serverkey.pem"))]

    def _start_holder(self, kvm):
        """The holder: a `sleep` in the host's network namespace, with a mount
        and UTS namespace of its own, where HOST_DIRS are bind-mounted from
        the host's dir. It dies with the harness; what runs in the host
        keeps its namespaces alive until close() or clean_stale()."""
        with open(self.daemon_log, "ab") as log:
            self.holder = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "unshare", "--uts", "--", "sleep", "infinity"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd="/",
                preexec_fn=_die_with_parent)
        mine = os.readlink("/proc/self/ns/uts")

        def entered():
            if self.holder.poll() is not None:
                raise ClusterError(f"host {self.id}: the namespace holder exited with "
                                   f"{self.holder.returncode}; see {self.daemon_log}")
            argv = _cmdline(self.holder.pid)
            return (argv[:1] == ["sleep"] and
                    os.readlink(f"/proc/{self.holder.pid}/ns/uts") != mine)
        wait_for(entered, 10, f"the namespace holder of {self.id}", interval=0.01)
        _root_the_mount_namespace(self.holder.pid, self.daemon_log)
        script = ["set -e", f"hostname {shlex.quote(self.hostname)}"]
        for d in HOST_DIRS:
            script.append(f"mount --bind {shlex.quote(self.path(d))} {d}")
        if kvm:
            script.append(f"mount --bind {shlex.quote(os.path.join(self.dir, 'dev-kvm'))} "
                          "/dev/kvm")
        sh("nsenter", "-t", str(self.holder.pid), "-m", "-u", "-r", "-w", "--", "sh", "-c",
           "\n".join(script))

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
            # the agent runs in the host's mount namespace: qemu:///system is
            # this host's libvirtd; peers reach it over TCP. TCG guests.
            "vm": {"enabled": "true", "libvirt_uri": "qemu:///system",
                   "peer_uri": self.libvirt_peer_uri, "domain_type": "qemu", "bridge": "br0",
                   "images_dir": c.images_dir, "state_dir": self.state_dir,
                   "shutdown_timeout_ms": "1000"},
            # plain HTTP said explicitly (the default is on; tests/component/test_tls.py)
            "tls": {"mode": "off"},
        }
        for key, v in (settings or {}).items():
            sec, name = key.split(".", 1)
            if v is None:  # drops a key the harness would write
                conf.get(sec, {}).pop(name, None)
                continue
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
        if self.cluster.bin is None:
            raise ClusterError("the cluster was made without a loadease binary (bin=None)")
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
    """N LoadEase hosts as network namespaces, each with its libvirt daemons,
    around one private Redis.

    n_hosts   1..64
    workdir   where configs, logs, redis and VM state go (must exist or is made)
    bin       the loadease binary (None: only with agents=False)
    token     the cluster secret (agent.token)
    images_dir  vm.images_dir of every host (default <workdir>/images)
    settings  {'section.key': value} for every host's config, or a function
              host index -> such a dict
    handle_signals  SIGINT raises KeyboardInterrupt, SIGTERM/SIGHUP SystemExit
              (so `with` tears down); for scripts, main thread only
    agents    start every host's agent (False: configs are written, libvirt
              runs, Host.start() starts an agent when wanted)
    """

    def __init__(self, n_hosts, workdir, bin, token, images_dir=None, settings=None,
                 handle_signals=False, agents=True, libvirt_tls=False):
        if not 1 <= int(n_hosts) <= MAX_HOSTS:
            raise ValueError(f"n_hosts must be 1 to {MAX_HOSTS}")
        if bin is None and agents:
            raise ValueError("agents need the loadease binary (bin)")
        self.n = int(n_hosts)
        self.workdir = os.path.realpath(workdir)
        self.bin = os.path.realpath(bin) if bin is not None else None
        self.agents = agents
        self.token = token
        self.images_dir = os.path.realpath(images_dir or os.path.join(self.workdir, "images"))
        self.settings = settings
        self.handle_signals = handle_signals
        # libvirtds on TLS (16514) with certificates of one CA made here;
        # the agents publish qemu+tls:// peer URIs
        self.libvirt_tls = libvirt_tls
        self.pki_ca = os.path.join(self.workdir, "pki-ca")
        if libvirt_tls:
            if self.bin is None:
                raise ValueError("libvirt_tls needs the loadease binary (bin)")
            os.makedirs(self.workdir, exist_ok=True)
            if not os.path.exists(os.path.join(self.pki_ca, "ca.pem")):
                p = subprocess.run([self.bin, "tls", "init", self.pki_ca], capture_output=True,
                                   text=True)
                if p.returncode:
                    raise ClusterError(f"loadease tls init: {p.stderr.strip()}")
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
        self._reapers = []  # Popen of each _REAPER_PY (Host._daemon)
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
            out.append(f"     libvirt {h.libvirt_tcp_uri}  {VIRSH} -c '{h.libvirt_uri}'  "
                       f"shell: {' '.join(h.argv('bash'))}")
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
        self._start_libvirt()
        for h in self.hosts:
            os.makedirs(h.state_dir, exist_ok=True)
            s = self.settings(h.index) if callable(self.settings) else self.settings
            h.write_config(s)
        if self.agents:
            for h in self.hosts:
                h.start()

    def _start_libvirt(self):
        kvm = os.path.exists("/dev/kvm")
        _qemu_can_search(self.images_dir, self.workdir)
        for h in self.hosts:
            h._prepare(kvm)
            h._start_holder(kvm)
        # Probing QEMU costs libvirt about 2 s a binary; it caches what it
        # found (and probes again where the cache no longer fits). The
        # first host starts from the cache of an earlier cluster of this
        # process, the others from the first one's.
        h0 = self.hosts[0]
        _put_caps(_caps_seed, h0)
        h0.start_libvirtd()
        h0.virsh("capabilities")  # probes every QEMU binary there is
        _caps_seed.clear()
        _caps_seed.update(_get_caps(h0))
        for h in self.hosts[1:]:
            _put_caps(_caps_seed, h)
            h.start_libvirtd(wait=False)
        for h in self.hosts[1:]:
            h.wait_libvirtd()

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

    def _stop_libvirt(self, h):
        # domains a killed libvirtd left (their status files in its /run):
        # a new one takes them over, so destroying them restores what
        # libvirt changed (the owner of a shared kernel, say)
        if not h.libvirtd_pid() and h.holder.poll() is None and \
                any(f.endswith(".xml") for f in _listdir(h.path("/run/libvirt/qemu"))):
            h.start_libvirtd()
        if h.libvirtd_pid():
            self.teardown_errors.extend(h.destroy_domains())
        h.stop_libvirt()

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
        # every host's domains through its libvirtd (so it restores what it
        # changed), then its daemons; the hosts at once
        threads = [threading.Thread(target=self._step, args=(f"stopping libvirt on {h.id}",
                                                              self._stop_libvirt, h))
                   for h in self.hosts if h.holder is not None]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # whatever else runs in our namespaces (only ours can): QEMUs a
        # killed libvirtd left, the holders (their mount namespaces and bind
        # mounts go with the last process in them)
        pids = set(qemu_pids(self.workdir)) if os.path.isdir(self.workdir) else set()
        for ns in self._made_ns:
            pids.update(_netns_pids(ns))
        pids.discard(os.getpid())
        if pids:
            left = _signal_and_wait(sorted(pids), 5)
            if left:
                self.teardown_errors.append(f"processes {left} survived SIGKILL")
        for h in self.hosts:
            if h.holder is not None:
                self._step(f"reaping the holder of {h.id}", h.holder.wait, 5)
        # the reapers end with the last process they had to reap
        for p in self._reapers:
            self._step(f"waiting for reaper {p.pid}", p.wait, 5)
        self._reapers = []
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


CAPS_CACHE = "/var/cache/libvirt/qemu/capabilities"
_caps_seed = {}  # file name -> contents of a host's CAPS_CACHE


def _get_caps(h):
    d = h.path(CAPS_CACHE)
    out = {}
    for f in os.listdir(d) if os.path.isdir(d) else []:
        with open(os.path.join(d, f), "rb") as fp:
            out[f] = fp.read()
    return out


def _put_caps(caps, h):
    d = h.path(CAPS_CACHE)
    os.makedirs(d, exist_ok=True)
    for f, data in caps.items():
        with open(os.path.join(d, f), "wb") as fp:
            fp.write(data)
        os.chmod(os.path.join(d, f), 0o600)


# `python3 -c _REAPER_PY CMD...`: runs CMD (a daemon's `-d` start) as a child
# subreaper's child: the daemon it forks, and the QEMUs that daemon starts
# (libvirt daemonizes them), are reparented to this process, not to PID 1, and
# reaped at once. Where PID 1 is no real init (a container, a test VM) it may
# reap late, and libvirt, which waits until a stopped QEMU's pid is gone,
# then takes seconds to end a migration or a destroy; on a real host systemd
# reaps them. Writes CMD's exit code on stdout, then reaps until no child
# is left.
_REAPER_PY = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit(f"PR_SET_CHILD_SUBREAPER: {os.strerror(ctypes.get_errno())}")
pid = os.fork()
if pid == 0:
    os.dup2(2, 1)
    try:
        os.execvp(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
while True:
    try:
        p, status = os.wait()
    except ChildProcessError:
        break
    if p == pid:
        os.write(1, b"%d\n" % os.waitstatus_to_exitcode(status))
        os.close(1)
"""


# Run as `python3 -c` with the holder's pid: enters its mount namespace
# (setns moves the process to the namespace's root: the machine's /) and, when
# the holder's root is another directory (the harness runs in a chroot, as in
# a fresh test root), pivots the namespace onto that directory. libvirt's
# per-domain /dev (qemu.conf namespaces) is built by a helper that setns()es
# into QEMU's mount namespace, copied from this one: without the pivot, it
# creates /dev/null, /dev/ptmx, ... under the machine's / and QEMU, chrooted,
# finds an empty /dev ("-chardev pty: Failed to create PTY").
_PIVOT_PY = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def ok(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        sys.exit(f"{what}: {os.strerror(e)}")
pid = sys.argv[1]
fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
ok(libc.setns(fd, 0x00020000), "setns to the holder's mount namespace")
root = os.readlink(f"/proc/{pid}/root")
if root == "/":
    sys.exit(0)
with open("/proc/self/mountinfo") as f:
    points = {line.split()[4] for line in f}
if root not in points:
    sys.exit(f"the harness's root {root} is not a mount point (bind-mount it onto itself)")
nr = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
ok(libc.mount(None, b"/", None, 16384 | (1 << 19), None), "mount --make-rslave /")
os.chdir(root)
ok(libc.syscall(nr[os.uname().machine], b".", b"."), f"pivot_root to {root}")
ok(libc.umount2(b".", 2), "detach the old root")
"""


def _root_the_mount_namespace(holder, log):
    """The holder's mount namespace gets the holder's root as its own (see
    _PIVOT_PY); nothing to do where that root is the machine's."""
    p = subprocess.run([sys.executable, "-c", _PIVOT_PY, str(holder)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=20)
    if p.returncode:
        with open(log, "a") as f:
            f.write(p.stdout)
        raise ClusterError(f"holder {holder}: cannot root its mount namespace where the "
                           f"harness runs: {p.stdout.strip()[-500:]}")


def _qemu_can_search(images_dir, workdir):
    """libvirt runs QEMU as its unprivileged user (libvirt-qemu here), and
    chowns a domain's kernel, initrd and disks to it, but it still has to
    search its way to them: the directories from the workdir down to an
    images dir inside it get o+x (search, not listing). An images dir
    elsewhere is the caller's to make reachable."""
    # every machine's / is searchable (0755); a test root made with
    # `mktemp -d` (../shared/tools/fresh-debian) is 0700, and QEMU as
    # libvirt-qemu could not even load its own modules under it
    mode = stat.S_IMODE(os.stat("/").st_mode)
    if not mode & stat.S_IXOTH:
        os.chmod("/", mode | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP)
    d = os.path.realpath(images_dir)
    top = os.path.realpath(workdir)
    while d == top or d.startswith(top + "/"):
        mode = stat.S_IMODE(os.stat(d).st_mode)
        if not mode & stat.S_IXOTH:
            os.chmod(d, mode | stat.S_IXOTH)
        if d == top:
            break
        d = os.path.dirname(d)


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
