"""What the agent measures of a VM process: CPU against known loads, the tap's
byte counters to the byte, a VM that exits, a VM whose tap is missing."""
import os
import signal
import time

import pytest

from conftest import (median, metric, parse_prometheus, register_vm, stream, wait_for)


def cpu_samples(r, vm_id):
    return [f for _, f in stream(r, f"ts:vm:{vm_id}") if "cpu" in f]


@pytest.mark.parametrize("reader", ["bpf", "proc"])
def test_vm_cpu_matches_known_load(redis_server, agent_factory, fakevm_factory, netns, reader):
    """Either way of reading VM CPU time (monitor.bpf: one BPF task iterator
    pass for all VMs, or each VM's CPU clock from /proc) gives the load."""
    if reader == "bpf" and not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("the kernel has no BTF (/sys/kernel/btf/vmlinux): no BPF task reader")
    r = redis_server.client()
    host_cpus = 2
    # A: 1 thread at 30 % of one CPU, 1 vCPU -> 0.30 of its vCPUs
    # B: 2 threads at 20 % each, 2 vCPUs    -> 0.20 of its vCPUs
    # (0.7 of a core in all: this machine has 2 cores and the agent runs under ASan)
    vm_a = fakevm_factory(threads=1, cpu=30)
    vm_b = fakevm_factory(threads=2, cpu=20)
    agent = agent_factory(redis_server, settings={"agent.interval_ms": 400,
                                                  "host.cpu": host_cpus,
                                                  "monitor.bpf": "on" if reader == "bpf"
                                                  else "off"})
    register_vm(r, agent.id, "vm-cpu-a", vm_a.pid, mem=256, cpu=1)
    register_vm(r, agent.id, "vm-cpu-b", vm_b.pid, mem=256, cpu=2)
    want = {"vm-cpu-a": (0.30, 1, 0.30 / host_cpus), "vm-cpu-b": (0.20, 2, 0.40 / host_cpus)}
    wait_for(lambda: all(len(cpu_samples(r, v)) >= 11 for v in want), 20,
             "11 CPU samples of each VM")
    for vm_id, (share, vcpus, host_share) in want.items():
        last = cpu_samples(r, vm_id)[-10:]
        cpu = [float(f["cpu"]) for f in last]
        cpu_host = [float(f["cpu_host"]) for f in last]
        assert abs(median(cpu) - share) <= 0.05, \
            f"{vm_id}: cpu median {median(cpu):.3f}, load is {share}: {cpu}"
        assert abs(median(cpu_host) - host_share) <= 0.025, \
            f"{vm_id}: cpu_host median {median(cpu_host):.3f}, load is {host_share}: {cpu_host}"
        for c, ch in zip(cpu, cpu_host):
            assert abs(ch - c * vcpus / host_cpus) <= 0.0005, \
                f"{vm_id}: cpu_host {ch} is not cpu {c} * {vcpus} vCPUs / {host_cpus} CPUs"
        # the API reports the same figures
        cur = agent.vm(vm_id)["current"]
        assert abs(cur["cpu"] - share) <= 0.15 and cur["cpu_host"] <= 1.0, cur
    assert agent.get_json("/healthz")[1]["task_reader"] == reader
    _, samples = parse_prometheus(agent.metrics())
    assert metric(samples, "loadease_agent_task_reader_bpf", host=agent.id) == \
        (1 if reader == "bpf" else 0)


FRAMES, FRAME_SIZE = 1234, 987  # 1 217 958 bytes: above 1e6, not a round number


def send_frames(redis_server, agent_factory, fakevm_factory, netns, vm_id):
    r = redis_server.client()
    netns.add_tap("taptx0")
    agent = agent_factory(redis_server)
    # a fresh tap counts from 0; the frames go out over the first second
    vm = fakevm_factory(tap="taptx0", frames=FRAMES, frame_size=FRAME_SIZE)
    register_vm(r, agent.id, vm_id, vm.pid, tap="taptx0", mem=256, cpu=1)
    vm.wait_sent()
    total = FRAMES * FRAME_SIZE

    def settled():
        j = agent.vm(vm_id)
        return j and j["status"] == "ok" and j["current"].get("tap", {}).get("tx_bytes") == total
    wait_for(settled, 5, f"the agent to report {total} tap tx bytes")
    time.sleep(2 * agent.interval_s)  # a few more ticks: nothing more may be counted
    return r, agent, total


def test_tap_bytes_exact_in_api_and_stream(redis_server, agent_factory, fakevm_factory,
                                           netns):
    vm_id = "vm-tap-1"
    r, agent, total = send_frames(redis_server, agent_factory, fakevm_factory, netns, vm_id)
    tap = agent.vm(vm_id)["current"]["tap"]
    # guest view: frames the process wrote into its tap are what the guest sent
    assert tap["tx_bytes"] == total and tap["tx_packets"] == FRAMES, tap
    assert tap["rx_bytes"] < total / 100, tap  # nothing was sent to the guest
    entries = [f for _, f in stream(r, f"ts:vm:{vm_id}")]
    assert int(entries[-1]["tap_tx_bytes"]) == total, entries[-1]
    # rates integrate back to the counter: sum(tx_bps * dt) ~ the bytes sent
    # while the agent watched
    watched = total - int(entries[0]["tap_tx_bytes"])
    assert watched > total / 2, entries[0]
    sent = 0.0
    for prev, cur in zip(entries, entries[1:]):
        if "tx_bps" in cur:
            sent += float(cur["tx_bps"]) * (int(cur["ts"]) - int(prev["ts"])) / 1000
    assert abs(sent - watched) <= 0.05 * watched, \
        f"tx_bps integrates to {sent:.0f}, {watched} bytes were sent"
    assert max(float(f.get("tx_bps", 0)) for f in entries) > 0


def test_tap_bytes_exact_in_metrics(redis_server, agent_factory, fakevm_factory, netns):
    vm_id = "vm-tap-2"
    r, agent, total = send_frames(redis_server, agent_factory, fakevm_factory, netns, vm_id)
    _, samples = parse_prometheus(agent.metrics())
    labels = {"host": agent.id, "vm": vm_id}
    assert metric(samples, "loadease_vm_network_transmit_packets_total", **labels) == FRAMES
    assert metric(samples, "loadease_vm_network_transmit_bytes_total", **labels) == total
    mem_mib = agent.get_json("/v1/host")[1]["capacity"]["mem_mib"]
    assert metric(samples, "loadease_host_memory_capacity_bytes", host=agent.id) == \
        mem_mib * 1048576


def test_vm_exit_between_samples(redis_server, agent_factory, fakevm_factory, netns):
    r = redis_server.client()
    netns.add_tap("tapexit0")
    vm = fakevm_factory(tap="tapexit0", threads=1, cpu=20, frames=200, frame_size=500)
    agent = agent_factory(redis_server)
    vm_id = "vm-exit-1"
    register_vm(r, agent.id, vm_id, vm.pid, tap="tapexit0", mem=256, cpu=1)
    wait_for(lambda: len(cpu_samples(r, vm_id)) >= 3, 10, "3 CPU samples")
    vm.kill(signal.SIGKILL)  # and reaped, as QEMU's parent would
    t_kill = time.monotonic()
    wait_for(lambda: agent.vm(vm_id)["status"] == "gone", 3 * agent.interval_s + 1.5,
             "status gone within ~3 ticks")
    j = agent.vm(vm_id)
    assert str(vm.pid) in (j.get("problem") or ""), j
    assert "cpu" not in j["current"], j
    _, samples = parse_prometheus(agent.metrics())
    assert metric(samples, "loadease_vm_up", host=agent.id, vm=vm_id) == 0
    assert not [s for s in samples if s[0] == "loadease_vm_cpu_utilization_ratio"
                and s[1].get("vm") == vm_id], "no CPU figure for a gone VM"
    # a few more ticks: it stays gone, nothing bogus appears, the agent lives on
    time.sleep(max(0, t_kill + 6 * agent.interval_s - time.monotonic()))
    assert agent.alive() and agent.get_json("/healthz")[0] == 200
    entries = [f for _, f in stream(r, f"ts:vm:{vm_id}")]
    assert entries[-1]["status"] == "gone" and entries[-2]["status"] == "gone", entries[-2:]
    cap_bps = 100e6 / 8
    for f in entries:
        assert float(f.get("cpu", 0)) <= 1.5, f"cpu spike: {f}"
        for k in ("rx_bps", "tx_bps"):
            assert float(f.get(k, 0)) <= cap_bps, f"absurd {k}: {f}"
        for k in ("rx_pps", "tx_pps"):
            assert float(f.get(k, 0)) <= 1e6, f"absurd {k}: {f}"
    gone = [f for f in entries if f["status"] == "gone"]
    assert all("cpu" not in f and "tx_bps" not in f for f in gone), gone


def test_missing_tap_is_degraded_cpu_still_reported(redis_server, agent_factory,
                                                    fakevm_factory, netns):
    r = redis_server.client()
    vm = fakevm_factory(threads=1, cpu=20)
    agent = agent_factory(redis_server)
    vm_id = "vm-notap-1"
    register_vm(r, agent.id, vm_id, vm.pid, tap="tapmissing9", mem=256, cpu=1)

    def degraded():
        j = agent.vm(vm_id)
        return j if j and j["status"] == "degraded" and "cpu" in j["current"] else None
    j = wait_for(degraded, 5, "status degraded with a CPU figure")
    assert "tapmissing9" in (j.get("problem") or ""), j
    assert abs(j["current"]["cpu"] - 0.2) <= 0.15, j
    assert "tap" not in j["current"] and "net" not in j["current"], j
    _, samples = parse_prometheus(agent.metrics())
    assert metric(samples, "loadease_vm_up", host=agent.id, vm=vm_id) == 1
    metric(samples, "loadease_vm_cpu_utilization_ratio", host=agent.id, vm=vm_id)
    wait_for(lambda: any(f["status"] == "degraded" and "cpu" in f
                         and "tapmissing9" in f.get("problem", "")
                         for f in cpu_samples(r, vm_id)), 3, "a degraded sample with cpu")
