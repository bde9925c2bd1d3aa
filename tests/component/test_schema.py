"""What the agent writes to Redis (DESIGN.md section 3): every key, its type,
its fields, and the invariants readers (controller, dashboard) rely on."""
import time

from conftest import assert_contiguous, register_vm, stream, wait_for

HIST_BINS = 20


def check_profile(prof, key, expected_n):
    for res in ("cpu", "mem", "net"):
        for f in ("last", "mean", "p50", "p95", "p99", "peak", "max", "forecast", "phi", "hot",
                  "over", "n"):
            assert f"{res}_{f}" in prof, f"{key}: no field {res}_{f}"
            float(prof[f"{res}_{f}"])
        hist = [int(x) for x in prof[f"{res}_hist"].split(",")]
        assert len(hist) == HIST_BINS, f"{key}: {res}_hist has {len(hist)} bins"
        assert all(c >= 0 for c in hist)
        n = int(prof[f"{res}_n"])
        assert sum(hist) == n, f"{key}: {res}_hist {hist} sums to {sum(hist)}, {res}_n is {n}"
        assert n == expected_n[res], f"{key}: {res}_n is {n}, expected {expected_n[res]}"
        assert float(prof[f"{res}_p50"]) <= float(prof[f"{res}_p95"]) <= \
            float(prof[f"{res}_p99"]) <= float(prof[f"{res}_max"]) + 1e-9


def test_registry_keys_streams_and_profiles(redis_server, agent_factory, fakevm_factory, netns):
    window = 8
    r = redis_server.client()
    netns.add_tap("tapsch0")
    vm = fakevm_factory(tap="tapsch0", threads=1, cpu=10)
    host = f"ct-schema-{vm.pid}"
    register_vm(r, host, "vm-schema-1", vm.pid, tap="tapsch0", mem=256, cpu=1)
    t_start = int(time.time() * 1000)
    agent = agent_factory(redis_server, host_id=host,
                          settings={"host.cpu": 3, "host.mem": 2048, "host.net": 100,
                                    "profile.window": window})

    # registration
    assert r.type("host_ids") == "set" and host in r.smembers("host_ids")
    assert r.type("host_id_to_ip") == "hash" and r.hget("host_id_to_ip", host) == netns.ip
    hc_key = f"host_config:{host}"
    assert r.type(hc_key) == "hash"
    hc = r.hgetall(hc_key)
    assert {"mem", "cpu", "net", "name", "state", "last_seen", "ip"} <= hc.keys(), hc
    assert (float(hc["mem"]), float(hc["cpu"]), float(hc["net"])) == (2048, 3, 100), hc
    assert hc["name"] == host and hc["state"] == "up" and hc["ip"] == netns.ip, hc
    for k in (f"mon_proxy_addr:{host}", f"vmm_proxy_addr:{host}"):
        assert r.type(k) == "string" and r.get(k) == f"{netns.ip}:{agent.port}", k

    # last_seen is a heartbeat: recent, and it advances
    seen1 = int(r.hget(hc_key, "last_seen"))
    assert t_start - 1000 <= seen1 <= time.time() * 1000 + 1000
    wait_for(lambda: int(r.hget(hc_key, "last_seen")) > seen1, 5, "last_seen to advance")

    # enough ticks for the window to fill (cap) with valid VM samples
    vm_key = "ts:vm:vm-schema-1"
    wait_for(lambda: r.exists(vm_key) and
             sum("cpu" in f for _, f in stream(r, vm_key)) >= window + 3, 15,
             f"{window + 3} VM samples with cpu")

    # stop the agent so the streams and the profiles are of the same ticks
    agent.stop()
    assert r.hget(hc_key, "state") == "down", "a stopped agent marks its host down"

    host_key = f"ts:host:{host}"
    for key in (host_key, vm_key):
        assert r.type(key) == "stream", key
    hs = stream(r, host_key)
    vs = stream(r, vm_key)
    seqs = assert_contiguous(hs, host_key)
    assert seqs[0] == 1, f"{host_key} starts at seq {seqs[0]}"
    vseqs = assert_contiguous(vs, vm_key)
    assert vseqs == seqs, "the VM was watched from the first tick: same seqs as the host"
    for ms, f in hs + vs:
        assert int(f["ts"]) == ms, f"entry {ms}: ts field {f['ts']}"
    # every sample after the first has the host's figures
    for _, f in hs[1:]:
        for field in ("cpu", "cpu_busy_cores", "mem", "mem_used_mib", "net", "net_rx_bps"):
            assert field in f, f"{host_key} entry seq {f['seq']} lacks {field}: {f}"
            float(f[field])
    assert vs[0][1]["status"] == "starting"
    for _, f in vs[1:]:
        assert f["status"] == "ok", f
        for field in ("cpu", "cpu_host", "mem", "rss_mib", "net", "rx_bps", "tx_bps",
                      "tap_rx_bytes", "tap_tx_bytes"):
            assert field in f, f"{vm_key} entry seq {f['seq']} lacks {field}: {f}"
            float(f[field])

    # profiles: 20-bin histograms whose counts are the samples in the window
    ph = r.hgetall(f"profile:host:{host}")
    assert r.type(f"profile:host:{host}") == "hash" and ph["host_id"] == host
    n_host = {res: min(window, sum(res in f for _, f in hs)) for res in ("cpu", "mem", "net")}
    check_profile(ph, f"profile:host:{host}", n_host)
    pv = r.hgetall("profile:vm:vm-schema-1")
    assert pv["host_id"] == host and pv["status"] == "ok", pv
    n_vm = {res: min(window, sum(res in f for _, f in vs)) for res in ("cpu", "mem", "net")}
    assert n_vm["cpu"] == window  # the cap is what is being checked
    check_profile(pv, "profile:vm:vm-schema-1", n_vm)
