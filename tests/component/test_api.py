"""The agent's HTTP API (DESIGN.md section 4) and its /metrics, as a
controller, a dashboard and Prometheus use them."""
import json

from conftest import TOKEN, is_finite, metric, parse_prometheus, register_vm, wait_for

HIST_BINS = 20
SUMMARY_FIELDS = ("n", "last", "mean", "min", "max", "p50", "p95", "p99", "peak", "forecast",
                  "phi", "hot", "over", "hist")


def check_profiles(p, where):
    assert set(p) == {"cpu", "mem", "net"}, f"{where}: {p.keys()}"
    for res, s in p.items():
        for f in SUMMARY_FIELDS:
            assert f in s, f"{where}.{res}: no {f}"
        assert len(s["hist"]) == HIST_BINS and sum(s["hist"]) == s["n"], f"{where}.{res}: {s}"
        assert isinstance(s["hot"], bool)


def error_of(agent, method, path, headers=None, body=None):
    st, hdr, raw = agent.http(method, path, headers=headers, body=body)
    assert hdr.get("Content-Type", "").startswith("application/json"), (method, path, hdr)
    j = json.loads(raw)
    assert set(j) == {"error"} and {"code", "message"} <= set(j["error"]), j
    assert j["error"]["code"] and j["error"]["message"], j
    return st, j["error"]["code"]


def test_http_api(redis_server, agent_factory, fakevm_factory, netns):
    r = redis_server.client()
    netns.add_tap("tapapi0")
    vm = fakevm_factory(tap="tapapi0", threads=1, cpu=10)
    agent = agent_factory(redis_server, settings={"host.cpu": 2, "host.mem": 4096,
                                                  "host.net": 100})
    register_vm(r, agent.id, "vm-api-1", vm.pid, tap="tapapi0", mem=256, cpu=1)
    wait_for(lambda: (agent.vm("vm-api-1") or {}).get("status") == "ok", 5, "vm-api-1 ok")
    wait_for(lambda: agent.get_json("/v1/host")[1]["profile"]["cpu"]["n"] >= 2, 5,
             "2 host CPU samples")

    st, h = agent.get_json("/healthz")
    assert st == 200 and h["status"] == "ok" and h["host"] == agent.id and h["redis"] is True, h
    assert 0 <= h["last_sample_age_ms"] < 3 * 250 + 2000

    st, host = agent.get_json("/v1/host")
    assert st == 200
    assert host["id"] == agent.id and host["address"] == netns.ip
    assert host["api"] == f"{netns.ip}:{agent.port}"
    assert host["capacity"] == {"cpu": 2.0, "mem_mib": 4096.0, "net_mbit": 100.0}, host
    cur = host["current"]
    for f in ("ts", "seq", "cpu", "mem", "net", "mem_total_mib", "mem_avail_mib"):
        assert f in cur and is_finite(cur[f]), f"current.{f}: {cur}"
    assert 0 <= cur["cpu"] <= 1 and 0 <= cur["mem"] <= 1.5
    check_profiles(host["profile"], "host.profile")
    assert host["vms"] == 1 and host["redis"]["connected"] is True

    st, lst = agent.get_json("/v1/vms")
    assert st == 200 and lst["host"] == agent.id
    assert [v["id"] for v in lst["vms"]] == ["vm-api-1"]
    v = lst["vms"][0]
    assert (v["pid"], v["tap"], v["mem_mib"], v["vcpus"], v["status"]) == \
        (vm.pid, "tapapi0", 256.0, 1.0, "ok"), v
    assert {"cpu", "cpu_host", "mem", "rss_mib", "net", "tap"} <= set(v["current"]), v
    check_profiles(v["profile"], "vm.profile")
    st, one = agent.get_json("/v1/vms/vm-api-1")
    assert st == 200 and one["id"] == "vm-api-1" and one["pid"] == vm.pid

    # errors: JSON {"error": {"code", "message"}} with a fitting status
    assert error_of(agent, "GET", "/v1/vms/no-such-vm") == (404, "vm_not_found")
    assert error_of(agent, "GET", "/v1/vms/bad%20id") == (404, "vm_not_found")
    assert error_of(agent, "GET", "/nope") == (404, "not_found")
    assert error_of(agent, "GET", "/v1/nope") == (404, "not_found")
    assert error_of(agent, "GET", "/v1/vms/vm-api-1/extra/deep") == (404, "not_found")
    body = json.dumps({"name": "x"})
    assert error_of(agent, "POST", "/v1/vms", body=body)[0] == 401
    assert error_of(agent, "POST", "/v1/vms", body=body)[1] == "unauthorized"
    assert error_of(agent, "DELETE", "/v1/vms/vm-api-1")[0] == 401
    assert error_of(agent, "POST", "/v1/vms", body=body,
                    headers={"Authorization": "Bearer wrong-token"})[0] == 401
    assert error_of(agent, "POST", "/v1/vms", body=body,
                    headers={"Authorization": "Bearer " + TOKEN + "x"})[0] == 401
    assert error_of(agent, "POST", "/v1/vms", body=body,
                    headers={"Authorization": TOKEN})[0] == 401
    # the right token passes the check; this agent runs no VMs (vm.enabled =
    # false), so the VM calls say so, and other methods are not allowed
    assert error_of(agent, "POST", "/v1/vms", body=body,
                    headers={"Authorization": "Bearer " + TOKEN}) == (503, "vm_driver_disabled")
    assert error_of(agent, "DELETE", "/v1/vms/vm-api-1",
                    headers={"Authorization": "Bearer " + TOKEN}) == (503, "vm_driver_disabled")
    assert error_of(agent, "PUT", "/v1/host",
                    headers={"Authorization": "Bearer " + TOKEN}) == (405, "method_not_allowed")
    assert agent.vm("vm-api-1")["status"] == "ok", "a refused call changes nothing"

    # /metrics: Prometheus text format
    st, hdr, raw = agent.http("GET", "/metrics")
    assert st == 200 and hdr["Content-Type"].startswith("text/plain; version=0.0.4"), hdr
    types, samples = parse_prometheus(raw.decode())
    assert samples
    for name, labels, value in samples:
        assert labels.get("host") == agent.id, (name, labels)
        if name.startswith("loadease_vm_"):
            assert labels.get("vm") == "vm-api-1", (name, labels)
        if types.get(name) == "counter":
            assert name.endswith("_total") and value >= 0, name
        assert is_finite(value), (name, value)
    for name in ("loadease_host_cpu_capacity_cores", "loadease_host_cpu_utilization_ratio",
                 "loadease_vm_up", "loadease_vm_cpu_utilization_ratio",
                 "loadease_vm_network_transmit_bytes_total", "loadease_agent_redis_up"):
        assert name in types, name
    assert metric(samples, "loadease_host_cpu_capacity_cores", host=agent.id) == 2
    assert metric(samples, "loadease_host_network_capacity_bytes_per_second",
                  host=agent.id) == 100e6 / 8
    assert metric(samples, "loadease_vm_up", host=agent.id, vm="vm-api-1") == 1
    assert metric(samples, "loadease_agent_redis_up", host=agent.id) == 1
    assert metric(samples, "loadease_vms", host=agent.id) == 1
