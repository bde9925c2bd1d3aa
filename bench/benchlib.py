"""bench/benchlib.py - helpers shared by bench/migration and bench/hotspot (not
a benchmark: run-all runs only executable files).

- GuestPort: the test guest's load channel (tools/guest/README.md) behind any
  socket factory, with status() and alive_for().
- Qmp: a small QMP client, spoken the way libvirt speaks it: greeting,
  qmp_capabilities, an id on every command, each line sorted into return /
  error / event, unknown keys ignored, a timeout on every command. Events are
  kept with the monotonic time they were read.
- PlainQemu: qemu-system-x86_64 started by hand inside a harness host's
  namespaces (Host.argv), with the devices libvirt gives a LoadEase domain,
  as the baseline of a live migration.
- LifecycleWatch: `virsh event --loop --timestamp` on one host's libvirtd:
  the moment each domain was started, suspended, resumed, stopped there.
- QmpLog: the QMP replies a host's libvirtd logs (virt-admin sets it on a
  running daemon): QEMU's own query-migrate figures of a libvirt migration.
"""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

QEMU = "qemu-system-x86_64"


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------- guest port

class GuestPort:
    """The load channel of a test guest; connect() returns a connected socket."""

    def __init__(self, connect):
        self.connect = connect

    def cmd(self, line, timeout=5):
        """One command; the reply line. OSError when there is no answer."""
        s = self.connect(timeout)
        try:
            s.settimeout(timeout)
            s.sendall(line.encode() + b"\n")
            buf = b""
            end = time.monotonic() + timeout
            while b"\n" not in buf and time.monotonic() < end:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            if b"\n" not in buf:
                raise OSError(f"no reply to {line!r}")
            return buf.split(b"\n", 1)[0].decode()
        finally:
            s.close()

    def status(self, timeout=5):
        return json.loads(self.cmd("status", timeout))

    def alive_for(self, secs):
        """The guest's counter and uptime rise for `secs` seconds; (ok, why)."""
        try:
            prev = self.status()
            end = time.monotonic() + secs
            while time.monotonic() < end:
                time.sleep(0.5)
                st = self.status()
                if not (st["counter"] > prev["counter"] and st["uptime_s"] > prev["uptime_s"]):
                    return False, f"stalled or rebooted: {prev} then {st}"
                prev = st
            return True, ""
        except (OSError, ValueError) as e:
            return False, str(e)


# --------------------------------------------------------------------------- QMP

class QmpError(Exception):
    pass


class Qmp:
    """A QMP connection over a connected socket."""

    def __init__(self, sock, timeout=10):
        self.s = sock
        self.buf = b""
        self.next_id = 0
        self.events = []  # (monotonic s read, event name, data, QEMU's wall-clock s)
        self.s.settimeout(timeout)
        greeting = self._line(time.monotonic() + timeout)
        if "QMP" not in greeting:
            raise QmpError(f"no QMP greeting: {greeting}")
        self.cmd("qmp_capabilities", timeout=timeout)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def _line(self, deadline):
        """The next message; QmpError('timed out') when none is complete by
        deadline (a deadline already past still reads what is there)."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            self.s.settimeout(max(left, 0.0005))
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                raise QmpError("timed out") from None
            if not chunk:
                raise QmpError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def _sort(self, msg):
        """An event is kept; anything else is returned."""
        if "event" in msg:
            ts = msg.get("timestamp") or {}
            qt = ts.get("seconds", 0) + ts.get("microseconds", 0) / 1e6
            self.events.append((time.monotonic(), msg["event"], msg.get("data", {}), qt))
            return None
        return msg

    def cmd(self, name, timeout=10, **args):
        self.next_id += 1
        mid = f"bench-{self.next_id}"
        req = {"execute": name, "id": mid}
        if args:
            req["arguments"] = args
        self.s.sendall(json.dumps(req).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            msg = self._sort(self._line(deadline))
            if msg is None or msg.get("id") != mid:
                continue
            if "error" in msg:
                raise QmpError(f"{name}: {msg['error'].get('desc', msg['error'])}")
            return msg.get("return")

    def pump(self, secs):
        """Reads the events that come within secs seconds (0: those there)."""
        deadline = time.monotonic() + secs
        try:
            while True:
                self._sort(self._line(deadline))
        except QmpError as e:
            if str(e) != "timed out":
                raise

    def event_time(self, name, pred=lambda d: True, qemu_clock=False):
        """When the first such event was read (monotonic s), or QEMU's own
        wall-clock stamp of it (qemu_clock); None if it did not come."""
        for t, n, d, qt in self.events:
            if n == name and pred(d):
                return qt if qemu_clock else t
        return None


# --------------------------------------------------------------------------- plain QEMU

class PlainQemu:
    """One qemu-system-x86_64 in a harness host's namespaces, run as root
    (libvirt runs it as libvirt-qemu, sandboxed: the same -sandbox here). Its
    QMP and load channel are unix sockets under the host's own /run
    (/run/lbq-<tag>/), its serial console a file there. incoming: the
    address for -incoming ("tcp:IP:PORT") or None to boot the guest."""

    def __init__(self, host, tag, machine, cpu, mem_mib, image, append, tap, mac,
                 incoming=None, extra_args=()):
        self.host, self.tag = host, tag
        self.dir = f"/run/lbq-{tag}"
        os.makedirs(host.path(self.dir), exist_ok=True)
        self.qmp_path = f"{self.dir}/qmp.sock"
        self.chan_path = f"{self.dir}/guestload.sock"
        for p in (self.qmp_path, self.chan_path):
            try:
                os.unlink(host.path(p))
            except FileNotFoundError:
                pass
        self.log_path = host.path(f"{self.dir}/qemu.log")
        argv = [QEMU, "-name", f"guest=lbq-{tag},debug-threads=on",
                "-machine", f"{machine},usb=off,dump-guest-core=off", "-accel", "tcg",
                "-cpu", cpu, "-m", str(mem_mib), "-overcommit", "mem-lock=off",
                "-smp", "1,sockets=1,cores=1,threads=1", "-display", "none",
                "-no-user-config", "-nodefaults",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-rtc", "base=utc", "-no-shutdown", "-boot", "strict=on",
                "-kernel", image[0], "-initrd", image[1], "-append", append]
        # the PCI layout libvirt gives the domain: 4 root ports, net on 1,
        # virtio-serial on 2, balloon on 3
        for i in range(4):
            argv += ["-device", f"pcie-root-port,port={8 + i},chassis={i + 1},id=pci.{i + 1},"
                     f"bus=pcie.0,addr=0x1.0x{i}" + (",multifunction=on" if i == 0 else "")]
        argv += ["-device", "virtio-serial-pci,id=virtio-serial0,bus=pci.2,addr=0x0"]
        if tap:
            argv += ["-netdev", f"tap,id=hostnet0,ifname={tap},script=no,downscript=no",
                     "-device", f"virtio-net-pci,netdev=hostnet0,id=net0,mac={mac},bus=pci.1,"
                     "addr=0x0,romfile="]
        argv += ["-chardev", f"file,id=charserial0,path={self.dir}/console.log",
                 "-device", "isa-serial,chardev=charserial0,id=serial0,index=0",
                 "-chardev", f"socket,id=charchannel0,path={self.chan_path},server=on,wait=off",
                 "-device", "virtserialport,bus=virtio-serial0.0,nr=1,chardev=charchannel0,"
                 "id=channel0,name=org.loadease.guestload",
                 "-audiodev", "none,id=audio1",
                 "-device", "virtio-balloon-pci,id=balloon0,bus=pci.3,addr=0x0",
                 "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
                 "resourcecontrol=deny",
                 "-msg", "timestamp=on"]
        if incoming:
            argv += ["-incoming", incoming]
        argv += list(extra_args)
        self.argv = argv
        with open(self.log_path, "ab") as log:
            # a session of its own, as libvirt starts each QEMU: with the
            # kernel's sched autogroups every session gets its own share of
            # the CPU, and this one must not share the benchmark's (agents,
            # Redis, this script)
            self.proc = subprocess.Popen(host.argv(*argv), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.qmp = None
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"plain QEMU on {host.id} exited with {self.proc.returncode}: "
                                 f"{self.log()}")
            try:
                self.qmp = Qmp(host.connect_unix(self.qmp_path, 5))
                break
            except (OSError, QmpError):
                if time.monotonic() > deadline:
                    raise BenchError(f"plain QEMU on {host.id}: no QMP at {self.qmp_path}")
                time.sleep(0.02)
        self.qmp.cmd("migrate-set-capabilities",
                     capabilities=[{"capability": "events", "state": True}])
        # as libvirt does for <stats period='2'/>
        self.qmp.cmd("qom-set", path="/machine/peripheral/balloon0",
                     property="guest-stats-polling-interval", value=2)

    def cpu_check(self):
        """What libvirt 9.0 asks every x86 QEMU it starts, an incoming one
        too, before the guest may run (qemuProcessFetchGuestCPU: qom-list of
        vCPU 0, then qom-get of each of its bool properties, then its
        unavailable-features): the seconds it takes, and the qom-gets."""
        path = "/machine/unattached/device[0]"
        t = time.monotonic()
        props = [p["name"] for p in self.qmp.cmd("qom-list", path=path)
                 if p.get("type") == "bool"]
        for name in props:
            self.qmp.cmd("qom-get", path=path, property=name)
        self.qmp.cmd("qom-get", path=path, property="unavailable-features")
        return time.monotonic() - t, len(props)

    def log(self, tail=1500):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-tail:]
        except OSError:
            return ""

    def port(self):
        return GuestPort(lambda timeout: self.host.connect_unix(self.chan_path, timeout))

    def status(self):
        return self.qmp.cmd("query-status")["status"]

    def stop(self, timeout=10):
        """quit over QMP (SIGKILL if it will not); the seconds until it exited."""
        t = time.monotonic()
        if self.proc.poll() is None:
            try:
                if self.qmp:
                    self.qmp.cmd("quit", timeout=5)
            except (OSError, QmpError):
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self.qmp:
            self.qmp.close()
            self.qmp = None
        return time.monotonic() - t


def migrate_plain(src, dst, uri, downtime_ms, bandwidth_bps, timeout_s, poll_s=0.01):
    """A live migration from PlainQemu src to PlainQemu dst (started with
    -incoming uri): auto-converge, downtime-limit and max-bandwidth set on
    the source, then `migrate`. The destination's query-status is polled
    every poll_s s. A migration not completed after timeout_s is cancelled.
    Returns a dict:
      status        completed | failed | cancelled | not running (completed,
                    but the destination never said running)
      total_ms, downtime_ms, setup_ms, bytes
                    QEMU's own query-migrate on the source (total-time,
                    downtime, setup-time, ram.transferred)
      running_ms    `migrate` sent -> the destination's query-status says running
      completed_ms  `migrate` sent -> the source's MIGRATION completed event read
      pause_ms      the source's STOP event -> the destination's RESUME event,
                    by QEMU's stamps on them: the pause the guest sees
      resume_ms     `migrate` sent -> the destination's RESUME event (its stamp)"""
    src.qmp.cmd("migrate-set-capabilities",
                capabilities=[{"capability": "auto-converge", "state": True},
                              {"capability": "events", "state": True}])
    src.qmp.cmd("migrate-set-parameters", **{"downtime-limit": downtime_ms,
                                             "max-bandwidth": bandwidth_bps})
    src.qmp.events.clear()
    dst.qmp.events.clear()
    t0 = time.monotonic()
    t0_wall = time.time()
    src.qmp.cmd("migrate", uri=uri)
    running = completed = final = None
    deadline = t0 + timeout_s
    while time.monotonic() < deadline:
        if running is None and dst.status() == "running":
            running = time.monotonic()
        src.qmp.pump(0)
        if final is None:
            for t, n, d, _ in src.qmp.events:
                if n == "MIGRATION" and d.get("status") in ("completed", "failed",
                                                             "cancelled"):
                    final, completed = d["status"], t
                    break
        if final in ("failed", "cancelled") or (final and running is not None):
            break
        time.sleep(poll_s)
    info = src.qmp.cmd("query-migrate")
    if final is None:
        src.qmp.cmd("migrate_cancel")
        final = "cancelled"
    elif final == "completed" and running is None:
        final = "not running"
    dst.qmp.pump(0)
    # QEMU's own stamps (both on this machine's clock), not when they were read
    stop = src.qmp.event_time("STOP", qemu_clock=True)
    resume = dst.qmp.event_time("RESUME", qemu_clock=True)

    def ms(t):
        return round((t - t0) * 1000) if t is not None else None
    return {"status": final, "total_ms": info.get("total-time"),
            "downtime_ms": info.get("downtime"), "setup_ms": info.get("setup-time"),
            "bytes": (info.get("ram") or {}).get("transferred"),
            "running_ms": ms(running), "completed_ms": ms(completed),
            "pause_ms": round((resume - stop) * 1000) if stop and resume else None,
            "resume_ms": round((resume - t0_wall) * 1000) if resume else None}


def make_tap(host, name):
    """A persistent tap `name` on the host's br0, up (for PlainQemu)."""
    host.run("ip", "tuntap", "add", "dev", name, "mode", "tap", check=False)
    host.run("ip", "link", "set", name, "master", "br0")
    host.run("ip", "link", "set", name, "up")


def qemu_machine_cpu(host, domain):
    """The -machine type and -cpu value of the QEMU libvirt runs for
    domain on host (from its command line), or (None, None)."""
    pid_path = host.path(f"/run/libvirt/qemu/{domain}.pid")
    try:
        with open(pid_path) as f:
            pid = int(f.read().split()[0])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
    except (OSError, ValueError, IndexError):
        return None, None
    machine = cpu = None
    for i, a in enumerate(argv[:-1]):
        if a == "-machine":
            machine = argv[i + 1].split(",")[0]
        elif a == "-cpu":
            cpu = argv[i + 1]
    return machine, cpu


# --------------------------------------------------------------------------- libvirt

_EV_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\+0000: event 'lifecycle' for "
                    r"domain '?([^':]+)'?: (\w+) (\w+)")


class LifecycleWatch:
    """`virsh event --loop --timestamp --event lifecycle` against one
    host's libvirtd, read by a thread: (wall ms, domain, event, detail),
    e.g. (..., 'ha', 'Resumed', 'Migrated'). virsh stamps an event when it
    reads it (ms)."""

    def __init__(self, host):
        self.host = host
        self.events = []
        self.lock = threading.Lock()
        # line-buffered: virsh's stdout is a pipe here
        self.proc = subprocess.Popen(
            ["stdbuf", "-oL", "virsh", "-c", host.libvirt_uri, "event", "--loop", "--timestamp",
             "--event", "lifecycle"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        import calendar
        for line in self.proc.stdout:
            m = _EV_RE.match(line.strip())
            if not m:
                continue
            ts, dom, ev, detail = m.groups()
            sec = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%d %H:%M:%S"))
            with self.lock:
                self.events.append((sec * 1000 + int(ts[20:23]), dom, ev, detail))

    def find(self, domain, event, detail=None, since_ms=0):
        """Wall ms of the first such event at or after since_ms, or None."""
        with self.lock:
            for t, d, e, x in self.events:
                if t >= since_ms and d == domain and e == event and \
                        (detail is None or x == detail):
                    return t
        return None

    def wait(self, domain, event, detail=None, since_ms=0, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.find(domain, event, detail, since_ms)
            if t is not None:
                return t
            time.sleep(0.02)
        return None

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class QmpLog:
    """QEMU's QMP replies as a host's libvirtd logs them: virt-admin points
    its qemu.qemu_monitor_json messages (info) at /var/log/libvirt/qmp.log
    of the host, beside the harness's own warning log. Costs a log line per
    QMP reply (about 400 while a destination QEMU starts)."""

    def __init__(self, host):
        self.host = host
        self.path = host.path("/var/log/libvirt/qmp.log")
        uri = f"libvirtd:///system?socket={host.path('/run/libvirt/libvirt-admin-sock')}"
        for args in (("daemon-log-filters", "2:qemu.qemu_monitor_json"),
                     ("daemon-log-outputs", "2:file:/var/log/libvirt/qmp.log "
                                            "3:file:/var/log/libvirt/libvirtd.log")):
            p = subprocess.run(["virt-admin", "-c", uri, *args], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=20)
            if p.returncode:
                raise BenchError(f"virt-admin {args[0]} on {host.id}: {p.stdout.strip()}")

    def offset(self):
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def completed_migration(self, since):
        """QEMU's query-migrate reply with status completed, logged after
        file offset `since`: dict (total-time, downtime, setup-time, ram...)
        or None."""
        try:
            with open(self.path, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except OSError:
            return None
        for line in text.splitlines():
            if "QEMU_MONITOR_RECV_REPLY" not in line or '"completed"' not in line:
                continue
            m = re.search(r"reply=(\{.*\})\s*$", line)
            if not m:
                continue
            try:
                ret = json.loads(m.group(1)).get("return")
            except ValueError:
                continue
            # an outgoing migration's reply (total-time > 0), not the
            # incoming side's
            if isinstance(ret, dict) and ret.get("status") == "completed" and \
                    ret.get("total-time", 0) > 0:
                return ret
        return None
