"""TLS and tokens on the real daemons: `loadease tls` makes a cluster CA and
host certificates (openssl), the controller and an agent serve HTTPS with
them, and every client that lacks the CA, trusts another CA or asks for a
name the certificate does not hold is refused with a clear error. Reads need
a token, the read token cannot change anything (403), a plaintext request
to a TLS port leaves the daemon serving, loose secret files stop the start,
and plain HTTP (tls.mode = off) is said in the log."""
import json
import os
import socket
import ssl
import subprocess
import time

import pytest

from conftest import (BIN, SANITIZER_MARKS, TOKEN, cluster_guest_image, free_tcp_port,
                      http_conn, register_vm, running_cluster, wait_for)

READ = "tls-read-token-3"


def run(*args, env=None, timeout=30):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                       env=env)
    bad = [m for m in SANITIZER_MARKS if m in p.stderr]
    assert not bad, f"loadease {' '.join(args)}: sanitizer report:\n{p.stderr}"
    return p.returncode, p.stdout, p.stderr


def make_ca(d):
    rc, out, err = run("tls", "init", d)
    assert rc == 0, err
    return os.path.join(d, "ca.pem")


def make_host(d, name, *ips):
    rc, out, err = run("tls", "host", name, *sum((["--ip", ip] for ip in ips), []), d)
    assert rc == 0, err
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}-key.pem")


def tls_settings(ca, cert_key):
    return {"tls.mode": "on", "tls.ca": ca, "tls.cert": cert_key[0], "tls.key": cert_key[1]}


@pytest.fixture
def pki(workdir):
    """Two clusters' CAs (the second one for the wrong-CA cases) and
    certificates for 127.0.0.1 (the controller) from each."""
    a, b = os.path.join(workdir, "pki-a"), os.path.join(workdir, "pki-b")
    ca_a, ca_b = make_ca(a), make_ca(b)
    return {"dir": a, "ca": ca_a, "ctl": make_host(a, "ctl", "127.0.0.1"),
            "dir_b": b, "ca_b": ca_b, "ctl_b": make_host(b, "ctl", "127.0.0.1")}


def cli(url, *args, ca=None, token=TOKEN):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADEASE_")}
    env["LOADEASE_CONTROLLER"] = url
    if ca:
        env["LOADEASE_CA"] = ca
    if token:
        env["LOADEASE_TOKEN"] = token
    return run(*args, env=env)


def test_tls_tool_makes_a_ca_and_host_certificates_with_safe_modes(workdir):
    d = os.path.join(workdir, "pki")
    ca = make_ca(d)
    cert, key = make_host(d, "h1", "10.231.0.2", "127.0.0.1")
    assert os.stat(os.path.join(d, "ca-key.pem")).st_mode & 0o777 == 0o600
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert os.stat(ca).st_mode & 0o777 == 0o644 and os.stat(cert).st_mode & 0o777 == 0o644
    text = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "DNS:h1" in text and "IP Address:10.231.0.2" in text and \
        "IP Address:127.0.0.1" in text, text
    v = subprocess.run(["openssl", "verify", "-CAfile", ca, cert], capture_output=True,
                       text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    # never overwritten; bad input said, nothing made
    before = open(ca).read()
    rc, _, err = run("tls", "init", d)
    assert rc == 1 and "already exists" in err and open(ca).read() == before, err
    rc, _, err = run("tls", "host", "h1", "--ip", "10.0.0.9", d)
    assert rc == 1 and "already exists" in err, err
    rc, _, err = run("tls", "host", "h2", "--ip", "10.0.0", d)
    assert rc == 2 and "not an IP address" in err and not os.path.exists(
        os.path.join(d, "h2.pem")), err
    rc, _, err = run("tls", "host", "h2", d)
    assert rc == 2 and "--ip" in err, err
    rc, _, err = run("tls", "host", "h3", "--ip", "10.0.0.3", os.path.join(workdir, "none"))
    assert rc == 1 and "tls init" in err, err
    # the libvirt and QEMU files from the same CA
    pki_root = os.path.join(workdir, "etc-pki")
    rc, out, err = run("tls", "host", "h4", "--ip", "10.0.0.4", "--libvirt", pki_root, d)
    assert rc == 0, err
    for f, mode in (("CA/cacert.pem", 0o644), ("libvirt/servercert.pem", 0o644),
                    ("libvirt/private/serverkey.pem", 0o600), ("libvirt/clientcert.pem", 0o644),
                    ("libvirt/private/clientkey.pem", 0o600), ("qemu/ca-cert.pem", 0o644),
                    ("qemu/server-cert.pem", 0o644), ("qemu/server-key.pem", 0o600),
                    ("qemu/client-cert.pem", 0o644), ("qemu/client-key.pem", 0o600)):
        st = os.stat(os.path.join(pki_root, f))
        assert st.st_mode & 0o777 == mode, (f, oct(st.st_mode))
    assert open(os.path.join(pki_root, "CA/cacert.pem")).read() == open(ca).read()


def test_controller_https_refuses_clients_without_the_ca_or_another_name(
        redis_server, controller_factory, pki):
    c = controller_factory(redis_server.address,
                           settings={**tls_settings(pki["ca"], pki["ctl"]),
                                     "controller.read_token": READ, "controller.mode": "off"})
    assert c.url.startswith("https://127.0.0.1:")
    assert "API on https://" in c.log() and "plain HTTP" not in c.log(), c.log()

    rc, out, err = cli(c.url, "hosts", ca=pki["ca"])
    assert rc == 0 and "certificate" not in err, (rc, out, err)
    # no CA: refused, and told how to give one
    rc, out, err = cli(c.url, "hosts")
    assert rc == 3 and "certificate" in err and "--ca" in err, (rc, err)
    # another cluster's CA
    rc, out, err = cli(c.url, "hosts", ca=pki["ca_b"])
    assert rc == 3 and "certificate" in err, (rc, err)
    # a name the certificate does not hold
    rc, out, err = cli(c.url.replace("127.0.0.1", "localhost"), "hosts", ca=pki["ca"])
    assert rc == 3 and "localhost" in err and "name" in err, (rc, err)
    # --ca beats $LOADEASE_CA; a missing file is a usage error
    rc, out, err = cli(c.url, "--ca", pki["ca"], "hosts", ca=pki["ca_b"])
    assert rc == 0, err
    rc, out, err = cli(c.url, "--ca", "/nonexistent/ca.pem", "hosts")
    assert rc == 2 and "/nonexistent/ca.pem" in err, err
    # Python's client with the wrong CA, too
    with pytest.raises(ssl.SSLCertVerificationError):
        conn = http_conn("127.0.0.1", c.port, pki["ca_b"])
        conn.request("GET", "/healthz")
        conn.getresponse()

    # tokens: reads need one, the read token cannot change anything
    assert c.http("GET", "/healthz", token=None)[0] == 200
    st, j = c.http("GET", "/v1/hosts", token=None)
    assert st == 401 and j["error"]["code"] == "unauthorized", (st, j)
    assert "read_token" in j["error"]["message"], j
    assert c.http("GET", "/v1/hosts", token=READ)[0] == 200
    st, j = c.http("PUT", "/v1/hosts/h0/maintenance", {"on": True}, token=READ)
    assert st == 403 and j["error"]["code"] == "forbidden", (st, j)
    assert "read-only" in j["error"]["message"], j
    rc, out, err = cli(c.url, "host", "maintenance", "on", "h0", ca=pki["ca"], token=READ)
    assert rc == 1 and "403" in err, (rc, err)

    # plaintext HTTP to the TLS port: dropped, and the daemon keeps serving
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", c.port), timeout=5)
        s.sendall(b"GET /v1/hosts HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        try:
            while True:
                b = s.recv(4096)
                if not b:
                    break
                got += b
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        assert b"hosts" not in got and not got.startswith(b"HTTP/1.1 200"), got
    assert c.http("GET", "/healthz")[0] == 200 and c.alive()
    # a server certificate from another CA: the client refuses it
    c2 = controller_factory(redis_server.address, name="c2",
                            settings={**tls_settings(pki["ca_b"], pki["ctl_b"]),
                                      "controller.mode": "off"})
    rc, out, err = cli(c2.url, "hosts", ca=pki["ca"])
    assert rc == 3 and "certificate" in err, (rc, err)


def test_controller_calls_the_agent_over_https_and_verifies_it(
        redis_server, agent_factory, controller_factory, netns, pki):
    r = redis_server.client()
    agent_cert = make_host(pki["dir"], "h-tls", netns.ip)
    a = agent_factory(redis_server, host_id="h-tls",
                      settings={**tls_settings(pki["ca"], agent_cert),
                                "agent.read_token": READ})
    assert a.ca == pki["ca"]
    # agent reads: a token needed, the read token reads, cannot change things
    st, _, body = a.http("GET", "/v1/host", headers={})
    assert st == 401 and b"agent.read_token" in body, body
    st, _, body = a.http("GET", "/v1/host", headers={"Authorization": "Bearer " + READ})
    assert st == 200 and json.loads(body)["id"] == "h-tls", body
    st, _, body = a.http("GET", "/metrics", headers={"Authorization": "Bearer " + READ})
    assert st == 200 and b"loadease_" in body, body[:200]
    st, _, body = a.http("DELETE", "/v1/vms/x", headers={"Authorization": "Bearer " + READ})
    assert st == 403 and json.loads(body)["error"]["code"] == "forbidden", body
    assert a.http("GET", "/healthz", headers={})[0] == 200

    register_vm(r, "h-tls", "vm-tls", 1)
    c = controller_factory(redis_server.address,
                           settings={**tls_settings(pki["ca"], pki["ctl"]),
                                     "controller.mode": "off"})
    wait_for(lambda: any(h["id"] == "h-tls" and h["state"] == "up"
                         for h in c.get("/v1/hosts")["hosts"]), 15, "h-tls up")
    # the agent runs no VM driver: its own answer, over HTTPS, comes back
    st, j = c.http("DELETE", "/v1/vms/vm-tls")
    assert st == 502 and j["error"]["code"] == "agent", (st, j)
    assert "HTTP 503" in j["error"]["message"], j

    # a controller that trusts another CA refuses the agent's certificate
    c.stop()
    c2 = controller_factory(redis_server.address, name="c2",
                            settings={**tls_settings(pki["ca_b"], pki["ctl_b"]),
                                      "controller.mode": "off"})
    got = {}

    def led():  # c2 leads once c1's lease is gone
        got["r"] = c2.http("DELETE", "/v1/vms/vm-tls")
        return got["r"][0] != 503
    wait_for(led, 20, "c2 to lead")
    st, j = got["r"]
    assert st == 502 and j["error"]["code"] == "agent_unreachable", (st, j)
    assert "certificate" in j["error"]["message"], j


def start_fails(kind, cfg_text, workdir):
    cfg = os.path.join(workdir, f"{kind}-bad.ini")
    with open(cfg, "w") as f:
        f.write(cfg_text)
    p = subprocess.run([BIN, kind, "-c", cfg], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, (p.returncode, p.stderr)
    assert not [m for m in SANITIZER_MARKS if m in p.stderr], p.stderr
    return p.stderr


def test_loose_secret_files_are_refused_at_start(workdir, pki, redis_server):
    tok = os.path.join(workdir, "token")
    with open(tok, "w") as f:
        f.write("s3cret\n")
    os.chmod(tok, 0o644)
    base = (f"[tls]\nmode = on\nca = {pki['ca']}\ncert = {pki['ctl'][0]}\n"
            f"key = {pki['ctl'][1]}\n[redis]\naddress = {redis_server.address}\n")
    err = start_fails("controller", f"[controller]\nlisten = 127.0.0.1:{free_tcp_port()}\n"
                      f"token_file = {tok}\n" + base, workdir)
    assert tok in err and "0644" in err and "chmod 600" in err, err
    err = start_fails("agent", f"[agent]\nlisten = 127.0.0.1:0\nread_token_file = {tok}\n"
                      "[vm]\nenabled = false\n" + base, workdir)
    assert tok in err and "0644" in err, err
    # owned by someone else (nobody), even at 0600
    os.chmod(tok, 0o600)
    os.chown(tok, 65534, 65534)
    err = start_fails("controller", f"[controller]\nlisten = 127.0.0.1:{free_tcp_port()}\n"
                      f"token_file = {tok}\n" + base, workdir)
    assert "owned by uid 65534" in err, err
    # the TLS key: the same rule
    key = pki["ctl"][1]
    os.chmod(key, 0o644)
    err = start_fails("controller", f"[controller]\nlisten = 127.0.0.1:{free_tcp_port()}\n"
                      + base, workdir)
    assert "tls.key" in err and key in err and "0644" in err, err
    os.chmod(key, 0o600)
    # a missing certificate says what to do
    err = start_fails("controller",
                      f"[controller]\nlisten = 127.0.0.1:{free_tcp_port()}\n"
                      + base.replace(pki["ctl"][0], "/nonexistent/host.pem"), workdir)
    assert "tls.cert /nonexistent/host.pem" in err and "loadease tls" in err, err


def test_plain_http_is_said_at_start(redis_server, controller_factory, agent_factory):
    # the harness runs plain HTTP explicitly (tls.mode = off): both daemons warn
    c = controller_factory(redis_server.address)
    assert c.url.startswith("http://")
    assert "tls.mode = off: the API is plain HTTP" in c.log(), c.log()
    a = agent_factory(redis_server)
    wait_for(lambda: "tls.mode = off: the API is plain HTTP" in a.log(), 5, "the warning")
    assert " warn " in [l for l in a.log().splitlines() if "plain HTTP" in l][0]


def test_a_guest_migrates_between_hosts_whose_libvirtds_speak_tls_only_with_the_ca():
    """Two namespace hosts whose libvirtds listen on TLS (16514) with
    certificates from `loadease tls host --libvirt`; the agents publish
    qemu+tls:// peer URIs and migrate with vm.migrate_tls (QEMU's stream
    encrypted too). A peer URI without the client certificate is refused."""
    image = cluster_guest_image()
    with running_cluster(2, os.path.dirname(image[0]), TOKEN, {"vm.migrate_tls": True},
                         "le-ct-tls-", libvirt_tls=True) as c:
        h0, h1 = c.hosts
        r = c.redis()
        assert r.hget("host_config:h1", "libvirt_uri") == h1.libvirt_tls_uri
        assert h1.libvirt_tls_uri.startswith(f"qemu+tls://{h1.ip}/system")
        # the TLS port answers with the CA's client files; without them: refused
        ok = h0.run("virsh", "-c", h1.libvirt_tls_uri, "uri", check=False)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        bare = h0.run("virsh", "-c", f"qemu+tls://{h1.ip}/system", "uri", check=False)
        assert bare.returncode != 0, bare.stdout
        spec = {"name": "g-tls", "vcpus": 1, "mem_mib": 256, "kernel": "vmlinuz",
                "initrd": "initrd.img",
                "append": f"console=ttyS0 quiet loadease.ip={h0.vm_ip(0)}/24 "
                          f"loadease.sink={h0.br_ip}:9"}
        st, vm = h0.http("POST", "/v1/vms", spec, timeout=60)
        assert st == 201, (st, vm, h0.log(2000))
        st, out = h0.http("POST", "/v1/vms/g-tls/migrate", {"to": "h1"}, timeout=150)
        assert st == 200, (st, out, h0.log(3000))
        wait_for(lambda: r.hget("vm_configs:g-tls", "host_id") == "h1", 30, "g-tls on h1")
        assert "g-tls" in h1.domains() and "g-tls" not in h0.domains()
        st, j = h1.http("GET", "/v1/vms/g-tls")
        assert st == 200, (st, j)
