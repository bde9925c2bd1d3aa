"""The agent and its Redis: an outage mid-run loses no sample, a Redis that
is not there yet at start-up is waited for, and Redis authentication."""
import re
import pytest
import time

from conftest import (assert_contiguous, metric, parse_prometheus, register_vm, stream,
                      wait_for)


def health(agent):
    st, j = agent.get_json("/healthz")
    assert st == 200, (st, j)
    return j


def test_redis_killed_and_restarted_loses_no_sample(redis_server, agent_factory,
                                                    fakevm_factory, netns):
    r = redis_server.client()
    netns.add_tap("tapout0")
    vm = fakevm_factory(tap="tapout0", threads=1, cpu=5)
    agent = agent_factory(redis_server)
    vm_id = "vm-outage-1"
    register_vm(r, agent.id, vm_id, vm.pid, tap="tapout0", mem=256, cpu=1)
    host_key, vm_key = f"ts:host:{agent.id}", f"ts:vm:{vm_id}"
    wait_for(lambda: r.xlen(vm_key) >= 3, 5, "3 VM samples")
    first = {host_key: 1, vm_key: int(stream(r, vm_key)[0][1]["seq"])}

    redis_server.kill()
    t_down = time.time() * 1000
    wait_for(lambda: health(agent)["redis"] is False, 3, "/healthz to show redis false")
    samples_at_down = agent.get_json("/v1/host")[1]["samples"]
    # down ~3 s; the agent keeps sampling and stays healthy
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        h = health(agent)
        assert h["redis"] is False and h["status"] == "ok", h
        assert agent.alive()
        time.sleep(0.2)
    backlog = health(agent)["backlog"]
    missed = agent.get_json("/v1/host")[1]["samples"] - samples_at_down
    assert missed >= 8 and backlog >= missed, (missed, backlog)

    redis_server.restart()
    t_up = time.time() * 1000
    r = redis_server.client()
    wait_for(lambda: (lambda h: h["redis"] and h["backlog"] == 0)(health(agent)), 10,
             "the agent to reconnect and send its backlog")
    assert agent.alive()
    for key in (host_key, vm_key):
        entries = stream(r, key)
        seqs = assert_contiguous(entries, key)
        assert seqs[0] == first[key], \
            f"{key} starts at seq {seqs[0]}, not {first[key]}: samples before the kill lost"
        during = [ms for ms, _ in entries if t_down < ms < t_up]
        assert len(during) >= missed - 1, \
            f"{key}: {len(during)} samples taken during the outage, expected ~{missed}"
        assert int(entries[-1][1]["seq"]) >= samples_at_down + missed
    # the registry came back with the AOF: the VM is still watched and sampled
    n = r.xlen(vm_key)
    wait_for(lambda: r.xlen(vm_key) > n + 1, 3, "new VM samples after the outage")
    assert agent.vm(vm_id)["status"] == "ok"


def test_redis_absent_at_start_then_backfilled(redis_factory, agent_factory):
    srv = redis_factory(start=False)
    agent = agent_factory(srv)
    h = health(agent)
    assert h["redis"] is False and h["status"] == "ok", h
    _, samples = parse_prometheus(agent.metrics())
    assert metric(samples, "loadease_agent_redis_up", host=agent.id) == 0
    wait_for(lambda: health(agent)["backlog"] >= 5, 5, "5 samples buffered")
    assert agent.alive()

    srv.start()
    r = srv.client()
    wait_for(lambda: agent.id in r.smembers("host_ids"), 5, "registration after Redis starts")
    assert r.hget(f"host_config:{agent.id}", "state") == "up"
    assert r.get(f"mon_proxy_addr:{agent.id}") == f"{agent.ns.ip}:{agent.port}"
    wait_for(lambda: health(agent)["backlog"] == 0 and health(agent)["redis"], 5,
             "the backlog to drain")
    key = f"ts:host:{agent.id}"
    seqs = assert_contiguous(stream(r, key), key)
    assert seqs[0] == 1, f"{key} starts at seq {seqs[0]}: buffered samples not backfilled"
    assert len(seqs) >= 5


REDIS_ACL = ["requirepass adminpw", "user alice on >alicepw ~* &* +@all"]


def test_redis_acl_user_and_password(redis_factory, agent_factory):
    srv = redis_factory(conf_lines=REDIS_ACL, admin_password="adminpw")
    r = srv.client()
    agent = agent_factory(srv, settings={"redis.user": "alice", "redis.password": "alicepw"})
    wait_for(lambda: agent.id in r.smembers("host_ids"), 5, "registration as alice")
    wait_for(lambda: r.xlen(f"ts:host:{agent.id}") >= 2, 5, "samples written as alice")
    assert health(agent)["redis"] is True


def test_redis_wrong_password_refused_logged_once(redis_factory, agent_factory):
    srv = redis_factory(conf_lines=REDIS_ACL, admin_password="adminpw")
    r = srv.client()
    agent = agent_factory(srv, settings={"redis.user": "alice", "redis.password": "wrong"})
    t0 = time.monotonic()
    ticks0 = agent.get_json("/v1/host")[1]["samples"]
    time.sleep(3)
    assert agent.alive()
    h = health(agent)
    assert h["redis"] is False and h["status"] == "ok", h
    ticks = agent.get_json("/v1/host")[1]["samples"] - ticks0
    assert ticks >= 8
    assert agent.id not in r.smembers("host_ids")
    refusals = [l for l in agent.log().splitlines() if re.search("WRONGPASS|invalid username", l)]
    assert refusals, "the refusal is never logged:\n" + agent.log()
    assert srv.address in refusals[0], refusals[0]
    # logged once, then only after growing intervals (1 s, 2 s, 4 s ...)
    elapsed = time.monotonic() - t0 + 1
    assert len(refusals) <= 3 and len(refusals) < elapsed, \
        f"{len(refusals)} refusal lines in {elapsed:.1f} s ({ticks} ticks):\n" + \
        "\n".join(refusals)


def _refuse_oom(c):
    c.config_set("maxmemory-policy", "noeviction")
    c.config_set("maxmemory", "1")


def _allow_oom(c):
    c.config_set("maxmemory", "0")


def _refuse_misconf(c):
    # a snapshot that cannot be written (no file can be made in /proc) with
    # stop-writes-on-bgsave-error, Redis's default: every write is MISCONF
    c.config_set("save", "3600 1")
    c.config_set("dir", "/proc")
    c.bgsave()
    wait_for(lambda: c.info("persistence")["rdb_last_bgsave_status"] == "err", 5,
             "the snapshot to fail")


def _allow_misconf(c, srv):
    c.config_set("dir", srv.dir)
    c.config_set("save", "")
    c.bgsave()
    wait_for(lambda: c.info("persistence")["rdb_last_bgsave_status"] == "ok", 5,
             "a snapshot to succeed")


@pytest.mark.parametrize("fault", ["oom", "misconf"])
def test_redis_refusing_writes_loses_no_sample(fault, redis_factory, agent_factory):
    """A full Redis (maxmemory, OOM) or one refusing writes (MISCONF) answers
    each tick with an error: the tick is not confirmed, stays in the backlog,
    is counted, logged once and sent when Redis accepts writes again."""
    srv = redis_factory(conf_lines=["enable-protected-configs yes"])
    c = srv.client()
    agent = agent_factory(srv)
    key = f"ts:host:{agent.id}"
    wait_for(lambda: c.xlen(key) >= 3, 5, "3 samples stored")
    (_refuse_oom if fault == "oom" else _refuse_misconf)(c)
    n_refused_at = c.xlen(key)
    try:
        wait_for(lambda: health(agent)["backlog"] >= 4, 8, "4 samples kept in the backlog")
    except AssertionError:
        print(health(agent), c.xlen(key), agent.log())
        raise
    h = health(agent)
    assert h["redis"] is True and h["redis_refusing"] is True, h
    assert ("OOM" if fault == "oom" else "MISCONF") in h["redis_refused_why"], h
    assert c.xlen(key) <= n_refused_at + 1, "Redis stored samples while refusing writes"
    _, samples = parse_prometheus(agent.metrics())
    assert metric(samples, "loadease_agent_redis_refused_total", host=agent.id) >= 4
    assert metric(samples, "loadease_agent_redis_refusing", host=agent.id) == 1
    queued = h["backlog"]

    if fault == "oom":
        _allow_oom(c)
    else:
        _allow_misconf(c, srv)
    wait_for(lambda: (lambda h: h["backlog"] == 0 and not h["redis_refusing"])(health(agent)),
             10, "the backlog to drain once Redis accepts writes")
    seqs = assert_contiguous(stream(c, key), key)
    assert seqs[0] == 1, f"{key} starts at seq {seqs[0]}"
    assert len(seqs) >= n_refused_at + queued, (len(seqs), n_refused_at, queued)
    log = agent.log()
    starts = [l for l in log.splitlines() if "redis refuses samples" in l]
    assert len(starts) == 1, "the refusal is to be logged once:\n" + log
    assert "redis accepts samples again" in log, log
    assert agent.alive()
