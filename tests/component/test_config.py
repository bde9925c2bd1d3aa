"""Configuration: every mistake an operator can make is refused at start-up
with exit status 2 and a message naming the file, the line and the reason;
and the agent reads the host from a fixture tree (agent.root)."""
import os
import re
import subprocess

import pytest

from conftest import BIN, REPO, wait_for

FIXTURE_ROOT = os.path.join(REPO, "tests", "fixtures", "root1")


def run_agent(*args, timeout=30):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    p = subprocess.run([BIN, "agent", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    for mark in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert mark not in p.stderr, p.stderr
    return p


# (file content, -s overrides, line named in the message or None, reason regex)
FILE_CASES = {
    "bad_key": ("[agent]\ninterval_ms = 500\nbogus = 1\n", [], 3,
                r"unknown key 'bogus' in section \[agent\]"),
    "unknown_section": ("[agent]\nid = h1\n[nosuch]\nx = 1\n", [], 4,
                        r"unknown section \[nosuch\]"),
    "not_integer": ("[agent]\ninterval_ms = fast\n", [], 2,
                    r"agent\.interval_ms: 'fast' is not an integer"),
    "out_of_range": ("[redis]\n\ntimeout_ms = 5\n", [], 3,
                     r"redis\.timeout_ms: 5 is out of range \[10, 60000\]"),
    "double_out_of_range": ("[profile]\ncpu_threshold = 1.5\n", [], 2,
                            r"profile\.cpu_threshold: 1\.5 is out of range"),
    "bad_enum": ("[agent]\nlog_level = loud\n", [], 2,
                 r"agent\.log_level: 'loud' is not one of: error, warn, info, debug"),
    "syntax": ("[agent]\nid = h1\nthis line is not ini\n", [], 3, r"syntax error"),
    "syntax_unclosed_section": ("[agent\nid = h1\n", [], 1, r"syntax error"),
    "k_gt_n": ("[profile]\nk = 5\nn = 3\n", [], None,
               r"profile\.k \(5\) must not exceed profile\.n \(3\)"),
    "n_gt_window": ("[profile]\nn = 10\nwindow = 6\n", [], None,
                    r"profile\.n \(10\) must not exceed profile\.window \(6\)"),
    "bad_id": ("[agent]\nid = has space\n", [], None, r"agent\.id 'has space'"),
    "bad_override_form": ("[agent]\nid = h1\n", ["-s", "agent.interval_ms"], None,
                          r"command line: 'agent\.interval_ms' is not section\.key=value"),
    "bad_override_key": ("[agent]\nid = h1\n", ["-s", "agent.nope=1"], None,
                         r"command line: unknown key 'nope' in section \[agent\]"),
    "bad_override_value": ("[agent]\nid = h1\n", ["-s", "profile.window=2"], None,
                           r"command line: profile\.window: 2 is out of range"),
    "missing_token_file": ("[agent]\ntoken_file = /nonexistent/le-token\n", [], None,
                           r"/nonexistent/le-token: No such file or directory"),
    "bad_root": ("[agent]\nroot = /nonexistent/root\n", [], None,
                 r"cannot read the host under root '/nonexistent/root'"),
    # the QEMU driver's keys went with it (the VM layer is libvirt's now):
    # an old configuration is refused, not half-read
    "old_vm_accel": ("[vm]\naccel = kvm\n", [], 2, r"unknown key 'accel' in section \[vm\]"),
    "old_vm_qemu": ("[vm]\nqemu = /usr/bin/qemu-system-x86_64\n", [], 2,
                    r"unknown key 'qemu' in section \[vm\]"),
    "bad_domain_type": ("[vm]\ndomain_type = xen\n", [], 2,
                        r"vm\.domain_type: 'xen' is not one of: kvm, qemu"),
}


def _cases():
    for name in sorted(FILE_CASES):
        c = FILE_CASES[name]
        if not hasattr(c, "marks"):  # a plain case, not a pytest.param
            yield pytest.param(c, id=name)
        else:
            yield pytest.param(*c.values, marks=c.marks, id=name)


@pytest.mark.parametrize("case", _cases())
def test_config_error_exits_2_and_names_file_line_reason(case, tmp_path):
    text, overrides, line, reason = case
    cfg = tmp_path / "agent.ini"
    cfg.write_text(text)
    p = run_agent("-c", str(cfg), *overrides, "--check")
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert re.search(reason, p.stderr), p.stderr
    if line is not None:
        assert f"{cfg}:{line}: " in p.stderr, p.stderr
    assert p.stderr.startswith("loadease agent: configuration: "), p.stderr
    assert p.stdout == ""


def test_config_missing_file_and_bad_option(tmp_path):
    missing = tmp_path / "nope.ini"
    p = run_agent("-c", str(missing), "--check")
    assert p.returncode == 2 and f"{missing}: No such file or directory" in p.stderr, p.stderr
    p = run_agent("--bogus-flag")
    assert p.returncode == 2 and "--bogus-flag" in p.stderr, p.stderr
    p = run_agent("-c")  # no file after -c
    assert p.returncode == 2 and "'-c'" in p.stderr, p.stderr


def test_bpf_on_needs_the_live_kernel():
    # the BPF task reader reads the running kernel, not a fixture tree
    p = run_agent("-s", f"agent.root={FIXTURE_ROOT}", "-s", "monitor.bpf=on", "--check")
    assert p.returncode == 2 and "monitor.bpf = on" in p.stderr and "agent.root = /" in p.stderr, \
        p.stderr
    p = run_agent("-s", "monitor.bpf=sometimes", "--check")
    assert p.returncode == 2 and "monitor.bpf" in p.stderr, p.stderr


def test_config_check_ok_and_doc(tmp_path, redis_server):
    cfg = tmp_path / "agent.ini"
    cfg.write_text("; a comment\n[agent]\nid = good-host_1\ninterval_ms = 500\n"
                   "[host]\ncpu = 3\nmem = 2048\nnet = 250\n[profile]\nk = 2\nn = 4\n")
    red = ("-s", f"redis.address={redis_server.address}")
    # (plain HTTP here: the certificate checks are test_check's)
    red = red + ("-s", "tls.mode=off")
    p = run_agent("-c", str(cfg), "-s", "host.net=300", "-s", "vm.enabled=false", *red,
                  "--check")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert p.stdout.startswith(f"ok   configuration {cfg}: host good-host_1, 3 cores, 2048 MiB, "
                               "300 Mbit/s"), p.stdout
    # with the VM layer on, --check also reaches libvirt, and says so when it cannot
    sock = tmp_path / "no-libvirt-sock"
    p = run_agent("-c", str(cfg), "-s", f"vm.libvirt_uri=qemu+unix:///system?socket={sock}",
                  *red, "--check")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert f"FAIL libvirt at qemu+unix:///system?socket={sock}" in p.stdout, p.stdout
    assert "No such file or directory" in p.stdout, p.stdout
    assert "libvirt: XML-RPC error" not in p.stderr, p.stderr  # libvirt's own print is off
    # --config-doc lists every key with its default
    doc = run_agent("--config-doc")
    assert doc.returncode == 0
    keys = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \| `([^`]*)` \|", doc.stdout, re.M)
    assert len(keys) >= 30, doc.stdout
    assert ("agent.interval_ms", "1000") in keys and ("redis.address", "127.0.0.1:6379") in keys


def read_fixture(rel):
    with open(os.path.join(FIXTURE_ROOT, rel)) as f:
        return f.read()


def test_fixture_root_host_capacity(redis_server, agent_factory):
    meminfo = dict(re.findall(r"^(\w+):\s+(\d+) kB", read_fixture("proc/meminfo"), re.M))
    ncpu = len(re.findall(r"^cpu\d+ ", read_fixture("proc/stat"), re.M))
    psi_cpu = float(re.search(r"^some avg10=([\d.]+)", read_fixture("proc/pressure/cpu"),
                              re.M).group(1))
    mem_mib = int(meminfo["MemTotal"]) / 1024
    r = redis_server.client()
    agent = agent_factory(redis_server, settings={"agent.root": FIXTURE_ROOT})
    wait_for(lambda: agent.get_json("/v1/host")[1]["samples"] >= 2, 5, "2 samples")
    st, host = agent.get_json("/v1/host")
    assert host["capacity"]["cpu"] == ncpu and host["capacity"]["mem_mib"] == mem_mib, host
    cur = host["current"]
    # the fixture's figures, not this machine's
    assert cur["mem_total_mib"] == mem_mib
    assert cur["mem_avail_mib"] == int(meminfo["MemAvailable"]) / 1024, cur
    assert cur["psi"]["cpu_some"] == psi_cpu, cur
    assert "cpu" not in cur, "static /proc/stat: no utilisation (not 0/0)"
    hc = r.hgetall(f"host_config:{agent.id}")
    assert hc["cpu"] == str(ncpu) and hc["mem"] == f"{mem_mib:.0f}", hc
