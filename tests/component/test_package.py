"""Installing LoadEase: `meson install` into a DESTDIR, and the Debian package
(`make deb`) installed with apt-get into a brand-new Debian 12 root, where
`loadease agent --check` and `loadease controller --check` must pass on the
installed configuration.

The fresh root: `debootstrap --variant=minbase bookworm` from this machine's
Debian mirror, tarred once to /var/cache/loadease-test/bookworm-minbase.tar
(about 1 min the first time on a clean machine, a few seconds after); apt's
downloaded .debs are kept in /var/cache/loadease-test/apt-archives so a repeated
run downloads nothing. The root runs in its own network namespace (its
127.0.0.1 is its own, and it gets the bridge br0 the default agent.conf names)
and its own mount namespace (a fresh /sys of that namespace, a tmpfs /run).
Inside it the test starts, as the cluster harness does on its hosts,
redis-server on 127.0.0.1:6379 (the installed configs' default) and libvirtd
(qemu:///system, the agent's default URI). Last, the root is booted by its own
systemd (PID 1 of new namespaces) and the installed units must run under their
hardening. Time, measured here: 61-121 s with the caches warm (the package build
~15 s, apt-get install of the package with its dependencies and recommends
35-90 s, the systemd boot 6 s), 113 s on a machine with nothing cached
(debootstrap and every download included).
"""
import glob
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile

import pytest

from conftest import BIN, BUILD, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = "/var/cache/loadease-test"
BASE_TAR = os.path.join(CACHE, "bookworm-minbase.tar")
APT_CACHE = os.path.join(CACHE, "apt-archives")


def run(cmd, timeout=600, check=True, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode:
        raise AssertionError(f"{cmd if isinstance(cmd, str) else ' '.join(cmd)} -> "
                             f"{p.returncode}:\n{p.stdout[-6000:]}")
    return p


def meson_prefix(build):
    opts = json.loads(run(["meson", "introspect", "--buildoptions", build]).stdout)
    o = {x["name"]: x["value"] for x in opts}
    return o["prefix"], o["sysconfdir"], o["datadir"], o["bindir"]


def test_meson_install_puts_every_file_in_its_place(tmp_path):
    dest = str(tmp_path / "dest")
    run(["meson", "install", "-C", BUILD, "--no-rebuild", "--destdir", dest])
    prefix, sysconfdir, datadir, bindir = meson_prefix(BUILD)
    etc = sysconfdir if sysconfdir.startswith("/") else os.path.join(prefix, sysconfdir)
    share = os.path.join(prefix, datadir)
    unitdir = "/lib/systemd/system"
    lib = "/usr/lib" if prefix == "/usr" else os.path.join(prefix, "lib")
    web_files = sorted(os.path.relpath(f, os.path.join(REPO, "web"))
                       for f in glob.glob(os.path.join(REPO, "web", "**"), recursive=True)
                       if os.path.isfile(f) and not f.endswith("web/README.md"))
    assert "vendor/uPlot.iife.min.js" in web_files, \
        "web/vendor/ is missing: `make web` (scripts/web-deps) copies uPlot there"
    expected = {os.path.join(prefix, bindir, "loadease"),
                os.path.join(etc, "loadease", "agent.conf"),
                os.path.join(etc, "loadease", "controller.conf"),
                os.path.join(etc, "logrotate.d", "loadease"),
                os.path.join(unitdir, "loadease-agent.service"),
                os.path.join(unitdir, "loadease-controller.service"),
                os.path.join(lib, "tmpfiles.d", "loadease.conf"),
                os.path.join(lib, "sysusers.d", "loadease.conf"),
                os.path.join(share, "bash-completion", "completions", "loadease")}
    expected |= {os.path.join(share, "doc", "loadease", f) for f in
                 ("README.md", "controller.md", "sim-cloudsim.md", "dashboard.md",
                  "agent-config.md", "controller-config.md")}
    expected |= {os.path.join(share, "loadease", "web", f) for f in web_files}
    got = set()
    for d, _, files in os.walk(dest):
        for f in files:
            got.add("/" + os.path.relpath(os.path.join(d, f), dest))
    assert got == expected, (f"missing: {sorted(expected - got)}\n"
                             f"unexpected: {sorted(got - expected)}")
    # the units run the installed binary on the installed configs
    unit = open(dest + os.path.join(unitdir, "loadease-controller.service")).read()
    assert f"ExecStart={os.path.join(prefix, bindir)}/loadease controller -c " \
        f"{os.path.join(etc, 'loadease')}/controller.conf" in unit, unit
    assert "User=loadease" in unit and "CapabilityBoundingSet=\n" in unit, unit
    agent_unit = open(dest + os.path.join(unitdir, "loadease-agent.service")).read()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in agent_unit
    # the installed controller.conf serves the installed dashboard
    conf = open(dest + os.path.join(etc, "loadease", "controller.conf")).read()
    assert f"\nweb_root = {os.path.join(share, 'loadease', 'web')}\n" in conf, conf
    # the docs of the keys are the binary's own --config-doc
    doc = open(dest + os.path.join(share, "doc", "loadease", "agent-config.md")).read()
    assert doc == run([BIN, "agent", "--config-doc"]).stdout
    units = [dest + os.path.join(unitdir, u) for u in
             ("loadease-agent.service", "loadease-controller.service")]
    if shutil.which("systemd-analyze"):
        # unknown or misspelt directives are reported (a real boot would
        # ignore them silently); the binary it names must exist: the DESTDIR's
        p = run(["systemd-analyze", "verify", "--man=no", "--root", dest] + units, check=False)
        bad = [l for l in p.stdout.splitlines()
               if "Unknown key" in l or "Unknown section" in l or "Invalid" in l or
               "Failed to parse" in l]
        assert not bad, p.stdout
        # and the hardening systemd itself scores (0 = sealed, 10 = exposed):
        # the controller has no privilege at all, the agent what libvirt, BPF
        # and the QEMUs' /proc need
        for unit, most in zip(units, (4.0, 2.0)):
            p = run(["systemd-analyze", "security", "--offline=true", unit], check=False)
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
            assert m and float(m.group(1)) <= most, p.stdout[-3000:]


# --- the Debian package in a fresh Debian 12 root ---------------------------

def mirror():
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        try:
            for line in open(path):
                w = line.split()
                if w[:1] == ["URIs:"] or (w[:1] == ["deb"] and len(w) > 1):
                    return w[1]
        except OSError:
            pass
    raise AssertionError("cannot find this machine's Debian mirror in /etc/apt")


def base_tar():
    """The debootstrapped minbase root, as a tar (made once, cached)."""
    if os.path.exists(BASE_TAR):
        return BASE_TAR
    os.makedirs(CACHE, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="le-pkg-base-")
    try:
        run(["debootstrap", "--variant=minbase", "bookworm", tmp, mirror()], timeout=900)
        run(["tar", "-cf", BASE_TAR + ".part", "-C", tmp, "."])
        os.rename(BASE_TAR + ".part", BASE_TAR)
    finally:
        run(["rm", "-rf", "--one-file-system", tmp], check=False)
    return BASE_TAR


class FreshRoot:
    """A Debian 12 root extracted from the base tar, its apt cache shared."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="le-pkg-root-")
        self.mounts = []
        run(["tar", "-xf", base_tar(), "-C", self.dir])
        # its / as on a real machine (mkdtemp's 0700, kept in the tar's "."
        # entry, would let no user but root in)
        os.chmod(self.dir, 0o755)
        os.makedirs(APT_CACHE + "/partial", exist_ok=True)
        self._mount("--bind", APT_CACHE, self.path("/var/cache/apt/archives"))
        self._mount("-t", "proc", "proc", self.path("/proc"))
        self._mount("--rbind", "/dev", self.path("/dev"))
        shutil.copy("/etc/resolv.conf", self.path("/etc/resolv.conf"))
        for f in glob.glob("/usr/local/share/ca-certificates/*.crt"):
            os.makedirs(self.path("/usr/local/share/ca-certificates"), exist_ok=True)
            shutil.copy(f, self.path("/usr/local/share/ca-certificates/"))
        # apt keeps the downloaded packages (the shared cache above)
        with open(self.path("/etc/apt/apt.conf.d/99keep-debs"), "w") as f:
            f.write('Binary::apt::APT::Keep-Downloaded-Packages "true";\n')
        # no service starts during the install, as on a machine being set up
        # by an image builder: the package must not need one
        with open(self.path("/usr/sbin/policy-rc.d"), "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(self.path("/usr/sbin/policy-rc.d"), 0o755)

    def path(self, p):
        return os.path.join(self.dir, p.lstrip("/"))

    def _mount(self, *args):
        os.makedirs(args[-1], exist_ok=True)
        run(["mount"] + list(args))
        self.mounts.append(args[-1])

    def chroot(self, script, timeout=600, check=True, netns=None):
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": "/root", "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
        cmd = ["chroot", self.dir, "/bin/sh", "-ec", script]
        if netns:
            # its own mount namespace: a sysfs of the network namespace and a
            # fresh /run, gone with the processes
            cmd = ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation",
                   "private", "sh", "-ec",
                   f"mount -t sysfs sysfs {self.path('/sys')} && "
                   f"mount -t tmpfs tmpfs {self.path('/run')} && exec \"$@\"", "sh"] + cmd
        return run(cmd, timeout=timeout, check=check, env=env)

    def close(self):
        for m in reversed(self.mounts):
            run(["umount", "-l", m], check=False)
        # processes left in the root (redis, libvirtd): killed by pid
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    if os.readlink(f"/proc/{pid}/root") == self.dir:
                        os.kill(int(pid), 9)
                except OSError:
                    pass
        run(["rm", "-rf", "--one-file-system", self.dir], check=False)


@pytest.fixture(scope="module")
def installed_root(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root: debootstrap, chroot, mounts, network namespaces")
    for tool in ("dpkg-buildpackage", "debootstrap", "ip", "unshare"):
        assert shutil.which(tool), f"{tool} is missing: scripts/install-deps installs it"
    out = str(tmp_path_factory.mktemp("deb"))
    p = run([os.path.join(REPO, "scripts", "make-deb"), out], timeout=900)
    deb = p.stdout.strip().splitlines()[-1]
    assert os.path.basename(deb).startswith("loadease_") and deb.endswith(".deb"), p.stdout
    root = FreshRoot()
    try:
        shutil.copy(deb, root.path("/tmp/"))
        p = root.chroot("apt-get update -q && "
                        f"apt-get install -y -q /tmp/{os.path.basename(deb)}", timeout=1200)
        root.install_log = p.stdout
        yield root
    finally:
        root.close()


def test_deb_installs_user_directories_and_enabled_units(installed_root):
    r = installed_root
    assert "Setting up loadease" in r.install_log, r.install_log[-3000:]
    # pulled with it: libvirt, QEMU, Redis (recommends), its libraries
    for b in ("/usr/bin/loadease", "/usr/sbin/libvirtd", "/usr/bin/qemu-system-x86_64",
              "/usr/bin/redis-server"):
        assert os.access(r.path(b), os.X_OK), f"{b} not installed:\n{r.install_log[-3000:]}"
    pw = r.chroot("getent passwd loadease").stdout.strip().split(":")
    assert pw[0] == "loadease" and int(pw[2]) < 1000 and pw[6] == "/usr/sbin/nologin", pw
    gid_loadease = int(r.chroot("getent group loadease").stdout.split(":")[2])
    for d, mode, uid, gid in (("/etc/loadease", 0o750, 0, gid_loadease),
                              ("/var/lib/loadease", 0o755, 0, 0),
                              ("/var/lib/loadease/images", 0o755, 0, 0),
                              ("/var/log/loadease", 0o2770, 0, gid_loadease)):
        st = os.stat(r.path(d))
        assert stat.S_ISDIR(st.st_mode), d
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, uid, gid), \
            f"{d}: {oct(stat.S_IMODE(st.st_mode))} {st.st_uid}:{st.st_gid}"
    for f in ("agent.conf", "controller.conf"):
        st = os.stat(r.path("/etc/loadease/" + f))
        assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == gid_loadease, f
    # enabled (the wants symlinks), not started: no loadease process in it
    for u in ("loadease-agent.service", "loadease-controller.service"):
        link = r.path("/etc/systemd/system/multi-user.target.wants/" + u)
        assert os.path.islink(link) and os.readlink(link) == "/lib/systemd/system/" + u, u
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/root") == r.dir:
                assert "loadease" not in open(f"/proc/{pid}/cmdline").read(), pid
        except OSError:
            pass
    conf = open(r.path("/etc/loadease/controller.conf")).read()
    assert "\nweb_root = /usr/share/loadease/web\n" in conf
    assert os.path.isfile(r.path("/usr/share/loadease/web/vendor/uPlot.iife.min.js"))
    # the logrotate snippet rotates the decision log (logrotate came as a
    # recommend; the SIGHUP that follows needs systemd, absent here: ignored)
    p = r.chroot("echo '{\"type\":\"x\"}' >/var/log/loadease/decisions.jsonl && "
                 "chown loadease:loadease /var/log/loadease/decisions.jsonl && "
                 "logrotate -v -f -s /tmp/logrotate.state /etc/logrotate.d/loadease 2>&1")
    assert "error" not in p.stdout.lower(), p.stdout
    assert os.path.isfile(r.path("/var/log/loadease/decisions.jsonl.1")), p.stdout


# What the README's Install says an operator does before starting: the
# cluster CA (once per cluster; here on the host itself) and this host's
# certificate under the names the configs expect, the key readable by the
# loadease group (the controller) and root (the agent). Idempotent.
MAKE_TLS = (
    "if [ ! -f /etc/loadease/tls/host.pem ]; then\n"
    "  loadease tls init /etc/loadease/tls >/dev/null\n"
    "  loadease tls host vm --ip 127.0.0.1 /etc/loadease/tls >/dev/null\n"
    "  mv /etc/loadease/tls/vm.pem /etc/loadease/tls/host.pem\n"
    "  mv /etc/loadease/tls/vm-key.pem /etc/loadease/tls/host-key.pem\n"
    "  chgrp loadease /etc/loadease/tls/host-key.pem; chmod 0640 /etc/loadease/tls/host-key.pem\n"
    "fi\n")


def test_checks_pass_on_the_installed_configs(installed_root):
    """In the root's own network namespace: the bridge br0 (agent.conf's
    default vm.bridge), redis-server on 127.0.0.1:6379 and libvirtd (what the
    checks need), then both --check runs on the installed files."""
    r = installed_root
    ns = f"le-pkg-{os.getpid()}"
    run(["ip", "netns", "add", ns])
    try:
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", ns, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", ns, "link", "set", "br0", "up"])
        p = r.chroot(
            "mkdir -p /run/redis /run/libvirt /run/lock\n"
            "redis-server --port 6379 --bind 127.0.0.1 --daemonize yes --save '' "
            "--dir /tmp --logfile /tmp/redis.log\n"
            "virtlogd -d\n"
            "libvirtd -d\n"
            "for i in $(seq 100); do [ -S /run/libvirt/libvirt-sock ] && break; sleep 0.1; done\n"
            + MAKE_TLS +
            "rc=0\n"
            "echo '== agent'; loadease agent --check -c /etc/loadease/agent.conf || rc=1\n"
            "echo '== controller'\n"
            "su -s /bin/sh loadease -c "
            "'loadease controller --check -c /etc/loadease/controller.conf' || rc=1\n"
            "kill $(cat /run/libvirtd.pid) $(cat /run/virtlogd.pid) 2>/dev/null || true\n"
            "redis-cli -p 6379 shutdown nosave >/dev/null 2>&1 || true\n"
            "exit $rc", netns=ns, timeout=120, check=False)
        out = p.stdout
        assert p.returncode == 0, out
        agent = out.split("== agent")[1].split("== controller")[0]
        ctl = out.split("== controller")[1]
        for what in ("redis", "libvirt", "images", "state", "bridge br0", "qemu"):
            assert any(l.startswith("ok") and what in l for l in agent.splitlines()), \
                f"no ok line about {what} from the agent:\n{out}"
        for what in ("redis", "web_root"):
            assert any(l.startswith("ok") and what in l for l in ctl.splitlines()), \
                f"no ok line about {what} from the controller:\n{out}"
        assert "FAIL" not in out, out
    finally:
        run(["ip", "netns", "del", ns], check=False)


AGENT_CAPS = (1 << 2) | (1 << 19) | (1 << 21) | (1 << 38) | (1 << 39)
# CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF


def test_services_run_under_systemd_with_their_hardening(installed_root):
    """The root booted by its own systemd as PID 1 (new pid, mount, network,
    UTS and IPC namespaces; pivot_root rather than chroot, as a container
    manager does, so that units may create user namespaces: PrivateUsers=).
    The enabled units start at boot: redis-server, libvirtd, then
    loadease-agent and loadease-controller with every hardening directive of
    their units, which must leave them running and working: the controller
    as user loadease with no capability answering its API, the agent as root
    with its five capabilities registered in Redis; `systemctl reload` is a
    SIGHUP the controller logs."""
    r = installed_root
    r.chroot(MAKE_TLS, timeout=60)
    R = r.dir
    # configured as an operator would: the BPF task reader required (a start
    # refused without it), so the unit's capabilities and system-call filter
    # are shown to allow it
    conf = open(r.path("/etc/loadease/agent.conf")).read()
    assert "\n;bpf = auto\n" in conf
    with open(r.path("/etc/loadease/agent.conf"), "w") as f:
        f.write(conf.replace("\n;bpf = auto\n", "\nbpf = on\n"))
    boot = (f"mount --bind {R} {R} && mount -t proc proc {R}/proc && "
            f"mount -t sysfs sysfs {R}/sys && mount -t tmpfs tmpfs {R}/run && "
            f"mount --rbind /dev {R}/dev && mount -t tmpfs tmpfs {R}/sys/fs/cgroup && "
            f"mkdir {R}/sys/fs/cgroup/systemd && "
            f"mount -t cgroup -o none,name=systemd cgroup {R}/sys/fs/cgroup/systemd && "
            f"mkdir -p {R}/.oldroot && cd {R} && pivot_root . .oldroot && "
            "exec /usr/bin/env -i container=other PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -c "
            "'umount -l /.oldroot && exec /lib/systemd/systemd --system'")
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--net",
                             "--propagation", "private", "sh", "-c", boot],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    init = None
    try:
        def child():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    stat_ = open(f"/proc/{pid}/stat").read()
                except OSError:
                    continue
                comm, rest = stat_[stat_.index("(") + 1:stat_.rindex(")")], stat_.rsplit(")", 1)[1]
                if int(rest.split()[1]) == proc.pid and comm == "systemd":
                    return int(pid)
            return None
        init = wait_for(child, 20, "systemd as PID 1 of the root")

        def inside(script, check=True, timeout=60):
            return run(["nsenter", "-t", str(init), "-m", "-p", "-n", "-u", "-i", "-r", "-w",
                        "/bin/bash", "-c", script], check=check, timeout=timeout)

        # a root that is itself inside a chroot (CI's fresh-debian) may create
        # no user namespace at all, so PrivateUsers= (the controller's, Redis's)
        # cannot work there: only then it is turned off for those two, said here
        if inside("unshare --user true", check=False).returncode != 0:
            print("test_package: no user namespaces in this root (a chroot above it): "
                  "PrivateUsers=no for loadease-controller and redis-server")
            for unit in ("loadease-controller", "redis-server"):
                os.makedirs(r.path(f"/etc/systemd/system/{unit}.service.d"), exist_ok=True)
                with open(r.path(f"/etc/systemd/system/{unit}.service.d/no-userns.conf"),
                          "w") as f:
                    f.write("[Service]\nPrivateUsers=no\n")
            inside("systemctl daemon-reload && systemctl reset-failed && "
                   "systemctl restart redis-server loadease-controller", check=False)

        def active():
            p = inside("systemctl is-active redis-server libvirtd loadease-agent "
                       "loadease-controller", check=False)
            return p.stdout.split() == ["active"] * 4 and p.stdout
        try:
            wait_for(active, 60, "the four services active", interval=0.5)
        except AssertionError:
            print(inside("systemctl status --no-pager loadease-agent loadease-controller "
                         "redis-server libvirtd 2>&1 | tail -60", check=False).stdout)
            raise
        # the controller as loadease without a capability, the agent as root with
        # only its own
        for unit, user, caps in (("loadease-controller", "loadease", 0),
                                 ("loadease-agent", "root", AGENT_CAPS)):
            out = inside(f"pid=$(systemctl show -p MainPID --value {unit}); "
                         "ps -o user= -p $pid; grep -E '^Cap(Eff|Bnd):' /proc/$pid/status").stdout
            lines = out.split("\n")
            assert lines[0].strip() == user, out
            for l in lines[1:]:
                if l.startswith("Cap"):
                    assert int(l.split()[1], 16) == caps, (unit, out)
        # the controller serves; the agent registered itself in Redis
        # over HTTPS, the default, verified against the cluster CA
        health = inside("printf 'GET /healthz HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' | "
                        "openssl s_client -quiet -connect 127.0.0.1:7100 -verify_return_error "
                        "-CAfile /etc/loadease/tls/ca.pem 2>/dev/null").stdout
        assert health.startswith("HTTP/1.") and " 200 " in health.split("\n")[0], health
        wait_for(lambda: inside("redis-cli --raw keys 'host_config:*'").stdout.strip(), 20,
                 "the agent's host_config in Redis")
        assert "VM CPU time and I/O: one BPF task iterator pass per sample" in \
            inside("journalctl --no-pager -o cat -u loadease-agent").stdout
        inside("systemctl reload loadease-controller")
        wait_for(lambda: "reload (SIGHUP): configuration read again" in
                 inside("journalctl --no-pager -o cat -u loadease-controller").stdout, 20,
                 "the controller's reload in the journal")
        assert inside("systemctl is-active loadease-controller").stdout.strip() == "active"
    finally:
        if init:
            os.kill(init, 9)  # the pid namespace and its mounts go with it
        proc.kill()
        proc.wait(timeout=20)
