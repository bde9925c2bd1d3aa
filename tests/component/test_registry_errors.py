"""Bad data in the registry (an operator's typo, a half-written VM, a key of
the wrong type) never stops the agent; each VM gets a status that says what is
wrong with it."""
import time


from conftest import register_vm, wait_for

NO_SUCH_PID = 5000000  # above PID_MAX_LIMIT (4194304): never a process


def statuses(agent):
    st, j = agent.get_json("/v1/vms")
    assert st == 200, j
    return {v["id"]: v for v in j["vms"]}


def test_bad_registry_data(redis_server, agent_factory, fakevm_factory):
    r = redis_server.client()
    vm = fakevm_factory(threads=1, cpu=5)
    agent = agent_factory(redis_server)
    host = agent.id
    set_key = f"vms_in_host:{host}"

    # 1. vms_in_host:<host> is a string, not a set
    r.set(set_key, "vm-a,vm-b")
    n0 = agent.get_json("/v1/host")[1]["samples"]
    wait_for(lambda: agent.get_json("/v1/host")[1]["samples"] >= n0 + 4, 5, "4 more ticks")
    assert agent.alive() and agent.get_json("/healthz")[0] == 200
    assert statuses(agent) == {}
    assert f"vms_in_host:{host} is not a set" in agent.log()
    assert r.xlen(f"ts:host:{host}") >= n0 + 3, "sampling and publishing go on"

    # 2. a proper set of badly described VMs
    r.delete(set_key)
    cases = {
        "vm-pid-abc": ({"pid": "abc", "mem": 256, "cpu": 1}, "no_pid"),
        "vm-pid-neg": ({"pid": "-7", "mem": 256, "cpu": 1}, "no_pid"),
        "vm-pid-huge": ({"pid": "99999999999999999999999", "mem": 256}, "no_pid"),
        "vm-pid-none": ({"pid": NO_SUCH_PID, "mem": 256, "cpu": 1}, "gone"),
        "vm-no-fields": ({"mem": 256}, "no_pid"),  # pid, tap, cpu missing
        "vm-partial": ({"pid": vm.pid}, "ok"),  # only a pid: mem/cpu/tap unknown
    }
    for vm_id, (fields, _) in cases.items():
        p = r.pipeline(transaction=True)
        p.sadd(set_key, vm_id)
        p.hset(f"vm_configs:{vm_id}", mapping=fields)
        p.execute()
    r.sadd(set_key, "vm-no-config")  # in the set, no vm_configs hash at all
    cases["vm-no-config"] = (None, "no_pid")
    r.sadd(set_key, "vm-wrong-type")
    r.set("vm_configs:vm-wrong-type", "pid=1")  # a string, not a hash
    cases["vm-wrong-type"] = (None, "no_pid")
    r.sadd(set_key, "bad id with spaces", "-dash-first")  # invalid ids: ignored

    want = {vm_id: st for vm_id, (_, st) in cases.items()}
    got = {}

    def all_statuses():
        nonlocal got
        got = {k: v["status"] for k, v in statuses(agent).items()}
        return got == want
    wait_for(all_statuses, 5, f"statuses {want}")
    assert agent.alive()
    h = agent.get_json("/healthz")
    assert h[0] == 200 and h[1]["redis"] is True, h
    vms = statuses(agent)
    assert str(NO_SUCH_PID) in vms["vm-pid-none"]["problem"]
    assert "cpu" in vms["vm-partial"]["current"], vms["vm-partial"]
    assert "mem" not in vms["vm-partial"]["current"], "memory size unknown: no utilisation"
    assert vms["vm-pid-abc"]["problem"] == "no pid in the registry", vms["vm-pid-abc"]
    # registry complaints share one throttle (1 s, 2 s, 4 s ...): a bad pid is
    # logged once the complaint about the string key has had its interval, at
    # a full registry read (every redis.registry_every = 10 ticks of 250 ms
    # since the agent re-reads on change only, with Redis client tracking)
    wait_for(lambda: "is not a process id" in agent.log(), 10, "a log line about a bad pid")
    # every VM has a stream entry saying so
    def last_status(key):
        e = r.xrevrange(key, count=1)
        return e[0][1]["status"] if e else None
    for vm_id, st in want.items():
        wait_for(lambda: last_status(f"ts:vm:{vm_id}") == st, 3, f"ts:vm:{vm_id} status {st}")
        # profile hashes are rewritten every redis.profile_every samples
        wait_for(lambda: r.hget(f"profile:vm:{vm_id}", "status") == st, 5,
                 f"profile:vm:{vm_id} status {st}")


def test_overlong_tap_name_is_degraded(redis_server, agent_factory, fakevm_factory):
    r = redis_server.client()
    vm = fakevm_factory(threads=1, cpu=5)
    agent = agent_factory(redis_server)
    tap = "tap-name-far-too-long-for-linux"
    register_vm(r, agent.id, "vm-longtap", vm.pid, tap=tap, mem=256, cpu=1)
    wait_for(lambda: (agent.vm("vm-longtap") or {}).get("status") not in (None, "starting"), 5,
             "a first full sample")
    time.sleep(2 * agent.interval_s)
    j = agent.vm("vm-longtap")
    assert j["status"] == "degraded", j
    assert "tap" in (j.get("problem") or ""), j
