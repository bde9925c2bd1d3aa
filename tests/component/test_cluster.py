"""The multi-host harness (tests/cluster.py): N LoadEase hosts as network
namespaces on this machine, each with eth0 on a shared test bridge
(10.233.<k>.0/24), a br0 for its VMs' taps, its own libvirtd and agent (the
real `loadease agent`, $LOADEASE_BIN) and a private redis-server on the
bridge.

Checked: the hosts come up and register, reach each other and Redis over
the test network and nothing else (no default route); a VM launched on a
host through its API runs there; and teardown leaves nothing of the cluster
behind (namespaces, veths, bridge, redis-server, QEMU), also when the body of
the `with` raises or the setup fails half-way.

Needs root, `ip netns`, /dev/net/tun, redis-server, libvirtd (and
qemu-system-x86_64 for the VM tests); skipped with the reason otherwise. At most one guest runs
at a time. Traffic goes only to the cluster's own 10.233.x/10.234.x
addresses and unix sockets.
"""
import json
import os
import shutil
import sys
import tempfile
import time

import pytest

from conftest import BIN, REPO, cluster_guest_image, guest_status, running_cluster, wait_for

sys.path.insert(0, os.path.join(REPO, "tests"))
import cluster as lecluster  # noqa: E402

TOKEN = "cluster-test-token"
PY = sys.executable


def _need_cluster():
    reason = lecluster.unavailable(BIN)
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def image():
    """(kernel, initrd) from scripts/guest-image, built once."""
    return cluster_guest_image()


@pytest.fixture
def tmpdir_():
    d = tempfile.mkdtemp(prefix="le-ct-cluster-")
    yield d
    if os.environ.get("LE_CT_KEEP"):
        print(f"\ncluster logs kept in {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def cl(image):
    """Three hosts, for the whole module; images_dir = the guest image's."""
    with running_cluster(3, os.path.dirname(image[0]), TOKEN) as c:
        yield c


# --------------------------------------------------------------------------- helpers

# run inside a host's namespace: GET /healthz of each given host, PING Redis
REACH_PY = r"""
import http.client, json, socket, sys
out = {}
redis_ip, redis_port = sys.argv[1], int(sys.argv[2])
for ip in sys.argv[3:]:
    try:
        c = http.client.HTTPConnection(ip, 7101, timeout=3)
        c.request("GET", "/healthz")
        out[ip] = c.getresponse().status
    except OSError as e:
        out[ip] = str(e)
try:
    s = socket.create_connection((redis_ip, redis_port), timeout=3)
    s.sendall(b"PING\r\n")
    out["redis"] = s.recv(64).decode().strip()
except OSError as e:
    out["redis"] = str(e)
print(json.dumps(out))
"""


def leftovers(c):
    """What of cluster c still exists, by name."""
    left = []
    names = set(lecluster._netns_list())
    left += [f"netns {h.ns}" for h in c.hosts if h.ns in names]
    left += [f"netns {n}" for n in names if n.startswith(f"le-{c.tag}-")]
    for link in [c.bridge] + [f"le{c.tag}h{i}" for i in range(c.n)]:
        if os.path.exists(f"/sys/class/net/{link}"):
            left.append(f"link {link}")
    if c.redis_proc is not None and c.redis_proc.poll() is None:
        left.append(f"redis-server pid {c.redis_proc.pid}")
    for h in c.hosts:
        if h.alive():
            left.append(f"agent {h.id} pid {h.proc.pid}")
    left += [f"qemu pid {p}" for p in lecluster.qemu_pids(c.workdir)]
    # anything else still naming the workdir or the test network's address
    marks = [c.workdir + "/"] + ([f"{c.bridge_ip}:"] if c.bridge_ip else [])
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            cmd = " ".join(lecluster._cmdline(int(d)))
            if any(m in cmd for m in marks):
                left.append(f"process {d}: {cmd[:120]}")
    return left


def launch_vm(h, name, image, vm_index=0):
    spec = {"name": name, "vcpus": 1, "mem_mib": 128,
            "kernel": os.path.basename(image[0]), "initrd": os.path.basename(image[1]),
            "append": f"console=ttyS0 quiet loadease.ip={h.vm_ip(vm_index)}/24 "
                      f"loadease.sink={h.br_ip}:9"}
    st, body = h.http("POST", "/v1/vms", spec)
    assert st == 201, f"POST /v1/vms on {h.id}: {st} {body}\nagent log:\n{h.log(2000)}"
    return body


# --------------------------------------------------------------------------- tests


def test_hosts_register_and_reach_each_other_and_redis_only(cl):
    r = cl.redis()
    ids = [h.id for h in cl.hosts]
    assert r.smembers("host_ids") == set(ids)
    for h in cl.hosts:
        cfg = r.hgetall(f"host_config:{h.id}")
        assert cfg.get("state") == "up", (h.id, cfg)
        assert r.get(f"vmm_proxy_addr:{h.id}") == f"{h.ip}:7101"
        assert r.hget("host_id_to_ip", h.id) == h.ip
        st, body = h.http("GET", "/healthz", token=False)
        assert st == 200 and body["host"] == h.id, (st, body)
        st, body = h.http("GET", "/v1/host")
        assert st == 200 and body["id"] == h.id and body["address"] == h.ip, (st, body)

    # every host reaches every other host's API and Redis over the test network
    for h in cl.hosts:
        others = [o.ip for o in cl.hosts if o is not h]
        out = json.loads(h.run(PY, "-c", REACH_PY, cl.bridge_ip, str(cl.redis_port),
                               *others).stdout)
        assert out == {**{ip: 200 for ip in others}, "redis": "+PONG"}, (h.id, out)

    # and nothing else: no default route, only the two connected subnets
    for h in cl.hosts:
        assert h.run("ip", "route", "show", "default").stdout.strip() == "", h.id
        assert h.run("ip", "-6", "route", "show", "default").stdout.strip() == "", h.id
        routes = sorted(line.split()[0] for line in
                        h.run("ip", "-4", "route", "show").stdout.splitlines())
        assert routes == sorted([f"10.233.{cl.k}.0/24", h.vm_subnet]), (h.id, routes)
        st = h.run(PY, "-c", "import socket; s = socket.socket(socket.AF_INET, "
                   "socket.SOCK_DGRAM); s.connect(('127.0.0.2', 9)); "
                   "s.connect(('10.255.255.1', 9))", check=False)
        assert st.returncode != 0 and "unreachable" in st.stdout, (h.id, st.stdout)
    assert not cl.problems, cl.problems


def test_vm_launched_through_a_hosts_api_runs_there(cl, image):
    h = cl.host(0)
    r = cl.redis()
    name = f"ct-vm-{os.getpid()}"
    t0 = time.monotonic()
    body = launch_vm(h, name, image)
    try:
        assert body["host"] == "h0" and body["bridge"] == "br0", body
        assert r.sismember("vms_in_host:h0", name)
        assert not r.sismember("vms_in_host:h1", name) and not r.sismember("vms_in_host:h2",
                                                                           name)
        assert r.hget(f"vm_configs:{name}", "host_id") == "h0"

        def ok():
            st, j = h.http("GET", f"/v1/vms/{name}")
            return st == 200 and j.get("status") == "ok" and j
        wait_for(ok, 20, f"{name} status ok on h0")
        # its QEMU runs in h0's namespace, its tap is a port of h0's br0
        pid = body["pid"]
        assert pid in lecluster.qemu_pids(cl.workdir)
        assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(
            f"/proc/{h.proc.pid}/ns/net")
        ports = json.loads(h.run("ip", "-j", "link", "show", "master", "br0").stdout)
        assert [p["ifname"] for p in ports] == [body["tap"]], ports
        assert body["serial_socket"] == h.channel_path(name), body
        st = guest_status(h, body["serial_socket"], 30)
        print(f"\nguest up {time.monotonic() - t0:.1f} s after POST: {st}")
        assert "uptime_s" in st, st
    finally:
        t1 = time.monotonic()
        st, out = h.http("DELETE", f"/v1/vms/{name}")
        print(f"DELETE took {time.monotonic() - t1:.1f} s")
    assert st == 200, (st, out)
    assert not r.sismember("vms_in_host:h0", name)
    after = h.http("GET", f"/v1/vms/{name}")
    print(f"GET right after DELETE: {after}")
    # the monitor drops it at its next look at the registry (interval 500 ms)
    wait_for(lambda: h.http("GET", f"/v1/vms/{name}")[0] == 404, 5,
             f"GET /v1/vms/{name} 404 after DELETE")
    wait_for(lambda: not lecluster.qemu_pids(cl.workdir), 10, "the guest's QEMU to be gone")
    assert not cl.problems, cl.problems


def test_close_after_an_exception_leaves_nothing_not_even_a_running_vm(image, tmpdir_):
    c = lecluster.Cluster(2, tmpdir_, BIN, TOKEN, images_dir=os.path.dirname(image[0]))
    with pytest.raises(RuntimeError, match="the test failed"):
        with c:
            launch_vm(c.host(1), "left-running", image)
            assert lecluster.qemu_pids(c.workdir), "no QEMU to tear down"
            assert leftovers(c), "leftovers() sees nothing of a running cluster"
            raise RuntimeError("the test failed")
    assert leftovers(c) == []
    assert c.teardown_errors == [] and c.problems == [], (c.teardown_errors, c.problems)
    c.close()  # again: nothing to do, nothing goes wrong
    assert c.teardown_errors == []


def test_close_twice_after_a_normal_exit_leaves_nothing(tmpdir_):
    _need_cluster()
    with lecluster.Cluster(2, tmpdir_, BIN, TOKEN) as c:
        assert c.host(1).http("GET", "/healthz", token=False)[0] == 200
        c.host(0).stop()  # a stopped agent, as a restart test leaves it
        c.host(0).start()
    assert leftovers(c) == []
    c.close()
    assert leftovers(c) == [] and c.teardown_errors == [] and c.problems == [], \
        (c.teardown_errors, c.problems)


def test_a_failed_start_leaves_nothing(tmpdir_):
    """h1's agent refuses its config: start() raises, and what was made for
    h0 and h1 (redis, bridge, namespaces, h0's running agent) is gone."""
    _need_cluster()
    c = lecluster.Cluster(2, tmpdir_, BIN, TOKEN,
                          settings=lambda i: {"agent.no_such_key": "1"} if i == 1 else {})
    with pytest.raises(lecluster.ClusterError, match="agent h1 exited"):
        with c:
            pass
    assert leftovers(c) == []
    assert c.teardown_errors == []
