"""`--check` (one line per check, exit 1 on any failure), the example configs
the build writes (`--config-example`), and SIGHUP: the configuration read
again (mode, token, threshold shown by the API), a broken one refused with
the daemon running on the old, the decision log reopened after logrotate's
rename, keys that need a restart named in the log. Real redis-server, real
daemons."""
import os
import re
import signal
import subprocess

import pytest

from conftest import BIN, BUILD, REPO, Registry, free_tcp_port, wait_for
from test_controller import hot_cluster


def run(*args, timeout=30):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=timeout)


def doc_keys(daemon):
    doc = run(daemon, "--config-doc").stdout
    return re.findall(r"^\| `([a-z_]+)\.([a-z_]+)` \| `([^`]*)` \|", doc, re.M)


@pytest.mark.parametrize("daemon", ["agent", "controller"])
def test_example_config_documents_every_key_and_passes_check(daemon, redis_server, tmp_path):
    path = os.path.join(BUILD, f"{daemon}.conf")
    text = open(path).read()
    sets = []
    for key in ("web_root", "decision_log"):
        for m in re.findall(rf"^{key} = (.*)$", text, re.M):
            sets += ["-s", f"controller.{key}={m}"]
    assert text == run(daemon, "--config-example", *sets).stdout
    # every key of --config-doc, in its section, at its default (or set)
    section, seen = None, {}
    for line in text.splitlines():
        m = re.match(r"^\[([a-z]+)\]$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^;?([a-z_]+) = (.*)$", line)
        if m:
            seen[(section, m.group(1))] = (line.startswith(";"), m.group(2))
    keys = doc_keys(daemon)
    assert len(keys) > 20
    for sec, key, default in keys:
        assert (sec, key) in seen, f"{sec}.{key} missing from {path}"
        commented, value = seen[(sec, key)]
        if commented:
            assert value == ("" if default == '""' else default), (sec, key, value, default)
    assert len(seen) == len(keys)
    # it parses, and with what this machine has the checks pass (a cluster
    # CA and this host's certificate made as the README's Install says)
    pki = tmp_path / "tls"
    assert run("tls", "init", str(pki)).returncode == 0
    p = run("tls", "host", "vm", "--ip", "127.0.0.1", str(pki))
    assert p.returncode == 0, p.stdout + p.stderr
    sets = ["-s", f"redis.address={redis_server.address}", "-s", f"tls.ca={pki}/ca.pem",
            "-s", f"tls.cert={pki}/vm.pem", "-s", f"tls.key={pki}/vm-key.pem"]
    if daemon == "agent":
        sets += ["-s", "vm.enabled=false"]
    else:
        sets += ["-s", f"controller.web_root={REPO}/web",
                 "-s", f"controller.decision_log={tmp_path}/d.jsonl"]
    p = run(daemon, "-c", path, *sets, "--check")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"ok   configuration {path}:"), lines
    assert any(l.startswith(f"ok   redis {redis_server.address}: reachable, authenticated")
               for l in lines), lines
    assert lines[-1].startswith("ok: ") and "0 failed" in lines[-1], lines


def agent_check(tmp_path, *sets):
    base = ["-s", "agent.root=/", "-s", f"vm.images_dir={tmp_path}",
            "-s", f"vm.state_dir={tmp_path}/state", "-s", "vm.bridge=lo"]
    return run("agent", *base, *sets, "--check")


def fail_lines(p):
    return [l for l in p.stdout.splitlines() if l.startswith("FAIL ")]


def test_check_names_each_failure_on_its_own_line(tmp_path, redis_factory):
    secured = redis_factory(conf_lines=["requirepass right-pw"], admin_password="right-pw")
    port = free_tcp_port()  # nothing listens there
    tok = tmp_path / "token"
    tok.write_text("t0k3n\n")
    os.chmod(tok, 0o644)
    cases = [
        ("redis unreachable", ["-s", f"redis.address=127.0.0.1:{port}"],
         rf"FAIL redis 127\.0\.0\.1:{port}: unreachable: Connection refused"),
        ("wrong password", ["-s", f"redis.address={secured.address}", "-s",
                            "redis.password=wrong-pw"],
         r"FAIL redis unix:.*: the server refused the credentials: WRONGPASS"),
        ("missing images dir", ["-s", f"vm.images_dir={tmp_path}/no-images"],
         rf"FAIL vm\.images_dir \(images\) {tmp_path}/no-images: No such file or directory"),
        ("missing bridge", ["-s", "vm.bridge=le-nobr0"],
         r"FAIL bridge le-nobr0 \(vm\.bridge\): no such interface"),
        ("not a bridge", ["-s", "vm.bridge=lo"],
         r"FAIL bridge lo \(vm\.bridge\): an interface, but not a bridge"),
        ("missing qemu", ["-s", "vm.emulator=/nonexistent/qemu-system-x86_64"],
         r"FAIL qemu /nonexistent/qemu-system-x86_64 \(vm\.emulator\): No such file"),
    ]
    for what, sets, want in cases:
        p = agent_check(tmp_path, "-s", f"redis.address={secured.address}", "-s",
                        "redis.password=right-pw", *sets)
        assert p.returncode == 1, (what, p.stdout, p.stderr)
        assert any(re.match(want, l) for l in fail_lines(p)), (what, want, p.stdout)
        assert p.stdout.splitlines()[-1].startswith("FAIL: "), p.stdout
    # a token file others can read is refused when the configuration is
    # read, before any check: exit 2 with the reason, as a start would
    p = agent_check(tmp_path, "-s", f"redis.address={secured.address}", "-s",
                    "redis.password=right-pw", "-s", f"agent.token_file={tok}")
    assert p.returncode == 2 and f"{tok}: mode 0644 lets others read" in p.stderr, \
        (p.stdout, p.stderr)
    # the token file at 0600 / 0640 passes
    for mode in (0o600, 0o640):
        os.chmod(tok, mode)
        p = agent_check(tmp_path, "-s", f"redis.address={secured.address}", "-s",
                        "redis.password=right-pw", "-s", f"agent.token_file={tok}")
        assert f"ok   agent.token_file {tok}: mode 0{mode:o}" in p.stdout, p.stdout
    # the controller's too, and a missing dashboard
    p = run("controller", "-s", f"redis.address=127.0.0.1:{port}",
            "-s", f"controller.read_token_file={tok}", "--check")
    assert p.returncode == 1
    assert any(l.startswith(f"FAIL redis 127.0.0.1:{port}: unreachable") for l in fail_lines(p))
    os.chmod(tok, 0o604)
    p = run("controller", "-s", f"redis.address=127.0.0.1:{port}",
            "-s", f"controller.read_token_file={tok}", "--check")
    assert p.returncode == 2 and f"{tok}: mode 0604 lets others read" in p.stderr, \
        (p.stdout, p.stderr)


# ------------------------------------------------------------------- SIGHUP

def rewrite(c, **changes):
    """Sets `key = value` lines in the controller's config (section.key)."""
    text = open(c.cfg_path).read()
    for k, v in changes.items():
        sec, key = k.split("__")
        if re.search(rf"^{key} = .*$", text, re.M):
            text = re.sub(rf"^{key} = .*$", f"{key} = {v}", text, flags=re.M)
        elif f"[{sec}]\n" in text:
            text = text.replace(f"[{sec}]\n", f"[{sec}]\n{key} = {v}\n", 1)
        else:
            text += f"\n[{sec}]\n{key} = {v}\n"
    with open(c.cfg_path, "w") as f:
        f.write(text)


def test_sighup_rereads_mode_token_threshold_and_names_restart_keys(redis_server,
                                                                    controller_factory):
    r = redis_server.client()
    reg = Registry(r)
    hot_cluster(reg)
    # no heartbeats here: the hosts stay up for the test's length
    c = controller_factory(redis_server.address, settings={"controller.mode": "recommend",
                                                           "controller.down_after_ms": 600000})
    wait_for(lambda: c.get("/v1/cluster")["hotspots"] == ["h0"], 10, "h0 hot at 0.75")
    assert c.http("PUT", "/v1/hosts/h1/maintenance", {"on": False})[0] == 200
    rewrite(c, controller__mode="off", controller__token="new-token-2",
            profile__cpu_threshold="0.99", controller__lease_ms="4000")
    c.proc.send_signal(signal.SIGHUP)

    def cluster_new_token():  # reads need a token: the new one from now on
        st, j = c.http("GET", "/v1/cluster", token="new-token-2")
        return j if st == 200 else {}
    wait_for(lambda: cluster_new_token().get("mode") == "off", 10, "mode off after SIGHUP")
    wait_for(lambda: cluster_new_token().get("hotspots") == [], 10, "no hotspot at 0.99")
    st, _ = c.http("PUT", "/v1/hosts/h1/maintenance", {"on": False})  # the old token
    assert st == 401, st
    st, _ = c.http("PUT", "/v1/hosts/h1/maintenance", {"on": False}, token="new-token-2")
    assert st == 200, st
    log = c.log()
    assert "controller.lease_ms changed: needs a restart" in log, log[-3000:]
    assert re.search(r"reload \(SIGHUP\): configuration read again; 3 key\(s\) changed: "
                     r"controller\.mode, controller\.token, profile\.cpu_threshold", log), \
        log[-3000:]
    c.token = "new-token-2"


def test_sighup_with_a_broken_config_keeps_the_old_one(redis_server, controller_factory):
    c = controller_factory(redis_server.address, settings={"controller.mode": "recommend"})
    good = open(c.cfg_path).read()
    for bad, why in (("[controller]\nmode = sideways\n", "controller.mode: 'sideways'"),
                     ("[profile]\nk = 9\nn = 3\n", "profile.k (9) must not exceed"),
                     ("this is no ini\n", "syntax error")):
        with open(c.cfg_path, "w") as f:
            f.write(good + bad)
        c.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: why in c.log(), 10, f"the reload refused: {why}")
        assert "the running configuration stays" in c.log()
        assert c.alive()
        j = c.get("/v1/cluster")
        assert j["mode"] == "recommend", j
        assert c.http("PUT", "/v1/hosts/hx/maintenance", {"on": False})[0] != 401


def test_sighup_reopens_the_decision_log_after_logrotate_renamed_it(redis_server,
                                                                    controller_factory):
    r = redis_server.client()
    reg = Registry(r)
    reg.host("h1")
    c = controller_factory(redis_server.address)
    wait_for(lambda: c.decisions(), 10, "a first decision (controller_started)")
    os.rename(c.decision_log, c.decision_log + ".1")
    c.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload (SIGHUP)" in c.log(), 10, "the reload")
    assert c.http("PUT", "/v1/hosts/h1/maintenance", {"on": True})[0] == 200
    wait_for(lambda: any(d["type"] == "maintenance_on" for d in c.decisions()), 10,
             "maintenance_on in the new decision log")
    old = open(c.decision_log + ".1").read()
    assert "maintenance_on" not in old and "controller_started" in old
    assert c.http("PUT", "/v1/hosts/h1/maintenance", {"on": False})[0] == 200


def test_agent_sighup_rereads_its_token(tmp_path, redis_server, agent_factory):
    tok = tmp_path / "agent-token"
    tok.write_text("first-token\n")
    os.chmod(tok, 0o600)
    a = agent_factory(redis_server, settings={"agent.token_file": str(tok)})

    def post(token):
        return a.http("DELETE", "/v1/vms/none", headers={"Authorization": f"Bearer {token}"})[0]
    assert post("second-token") == 401
    tok.write_text("second-token\n")
    a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: post("second-token") != 401, 10, "the new token accepted")
    assert post("first-token") == 401
    assert a.alive()


def test_sighup_reopens_the_log_file_after_a_rename(tmp_path, redis_server, controller_factory):
    logf = tmp_path / "controller.log"
    c = controller_factory(redis_server.address, settings={"controller.log_file": str(logf)})
    wait_for(lambda: logf.exists() and "controller c1: mode auto" in logf.read_text(), 10,
             "the start-up line in controller.log_file")
    os.rename(logf, str(logf) + ".1")
    c.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: logf.exists() and "reload (SIGHUP)" in logf.read_text(), 10,
             "the reload's line in the new log file")
    assert "reload (SIGHUP)" not in open(str(logf) + ".1").read()
    c.stop()
    assert "controller c1: stopping" in logf.read_text()
