"""A source agent that dies in the middle of a live migration: QEMU finishes
the migration alone; when the agent comes back it settles the half-done
migration from migration:<vm> and QEMU's own state, so that exactly one copy
of the VM runs, on the host the registry names, and the guest never stopped.
Needs root, network namespaces and QEMU (skipped with the reason otherwise)."""
import json
import os
import socket
import subprocess
import threading

import pytest

from conftest import GUEST_DIR, cluster_guest_image, running_cluster, wait_for



def guest_status(sock):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    try:
        s.connect(sock)
        s.sendall(b"status\n")
        return json.loads(s.recv(1000))
    finally:
        s.close()


def qemu_pids(vm):
    out = subprocess.run(["pgrep", "-f", "--", f"qemu-system.* -name loadease-{vm}( |$)"],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.fixture
def cluster2():
    cluster_guest_image()
    # 64 Mbit/s: a 128 MiB guest takes seconds to move, time to kill the agent
    with running_cluster(2, GUEST_DIR, "migrec-token", {"vm.migrate_bandwidth_mbit": 64},
                         "le-ct-migrec-") as c:
        yield c


def test_source_agent_killed_mid_migration(cluster2):
    c = cluster2
    h0, h1 = c.host(0), c.host(1)
    r = c.redis()
    vm = f"mr{os.getpid()}"
    st, j = h0.http("POST", "/v1/vms", {
        "name": vm, "mem_mib": 128, "kernel": "vmlinuz", "initrd": "initrd.img",
        "append": f"console=ttyS0 quiet loadease.ip={h0.vm_ip(2)}/24"})
    assert st == 201, j
    before = wait_for(lambda: _try_status(j["serial_socket"]), 30, "the guest to answer")

    result = {}

    def migrate():
        try:
            result["r"] = h0.http("POST", f"/v1/vms/{vm}/migrate", {"to": h1.id}, timeout=120)
        except Exception as e:  # the agent dies under the call
            result["r"] = e
    t = threading.Thread(target=migrate)
    t.start()
    wait_for(lambda: r.hget(f"migration:{vm}", "phase") == "migrating", 20,
             "the migration to start")
    h0.kill()
    t.join(30)
    assert not isinstance(result.get("r"), tuple) or result["r"][0] != 200, result
    h0.start()

    # settled: on h1 only, one QEMU, no migration record, the guest ran on
    wait_for(lambda: r.smembers(f"vms_in_host:{h1.id}") == {vm}
             and not r.smembers(f"vms_in_host:{h0.id}")
             and not r.exists(f"migration:{vm}"), 60, "the migration to be settled")
    cfg = r.hgetall(f"vm_configs:{vm}")
    assert cfg["host_id"] == h1.id and cfg["state"] == "running", cfg
    wait_for(lambda: qemu_pids(vm) == [int(cfg["pid"])], 15, "exactly one QEMU, h1's")
    after = guest_status(cfg["serial_socket"])
    assert after["counter"] > before["counter"], (before, after)
    assert after["uptime_s"] > before["uptime_s"], "the guest rebooted"
    st, v1 = h1.http("GET", f"/v1/vms/{vm}")
    assert st == 200 and v1["driver"]["state"] == "running", v1
    assert "completed while this agent was down" in h0.log()
    types = [e[1]["type"] for e in r.xrange("events") if e[1].get("vm") == vm]
    assert "migration_done" in types, types
    st, _ = h1.http("DELETE", f"/v1/vms/{vm}")
    assert st == 200
    assert qemu_pids(vm) == []


def _try_status(sock):
    try:
        return guest_status(sock)
    except OSError:
        return None
