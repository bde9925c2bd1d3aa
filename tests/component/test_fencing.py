"""Fenced leaders: each lease acquisition takes a new epoch (Redis's clock,
above every epoch before, so also after Redis lost its data); a controller
sends its epoch with every action; an agent refuses an epoch older than one
it has seen. The end-to-end case (a leader paused past its lease while a
migration was about to start) is in test_controller_cluster.py."""
import time

from conftest import wait_for


def cluster(ctl):
    st, j = ctl.http("GET", "/v1/cluster")
    assert st == 200, (st, j)
    return j


def redis_ms(r):
    s, us = r.time()
    return s * 1000 + us // 1000


def test_every_lease_takes_a_newer_epoch(redis_server, controller_factory):
    r = redis_server.client()
    t0 = redis_ms(r)
    c1 = controller_factory(redis_server.address, name="e1")
    wait_for(lambda: cluster(c1)["leader"], 5, "e1 to lead")
    e1 = cluster(c1)["epoch"]
    assert e1 >= t0 and int(r.get("leader_epoch")) == e1, (e1, t0)
    c2 = controller_factory(redis_server.address, name="e2")
    time.sleep(1)
    assert not cluster(c2)["leader"] and cluster(c2)["epoch"] == 0
    assert cluster(c1)["epoch"] == e1, "a renewal must keep the epoch"

    c1.kill()  # the lease runs out (3 s); e2 takes it with a newer epoch
    wait_for(lambda: cluster(c2)["leader"], 8, "e2 to take over")
    e2 = cluster(c2)["epoch"]
    assert e2 > e1, (e1, e2)

    # Redis loses everything: the next epoch is still newer than any before
    r.flushall()
    c2.kill()
    c3 = controller_factory(redis_server.address, name="e3")
    wait_for(lambda: cluster(c3)["leader"], 8, "e3 to lead after the data loss")
    assert cluster(c3)["epoch"] > e2


def test_agent_refuses_an_action_with_an_older_epoch(redis_server, agent_factory):
    agent = agent_factory(redis_server)
    hdr = {"Authorization": "Bearer " + agent.token}

    def delete(q=""):
        st, _, body = agent.http("DELETE", "/v1/vms/nosuch" + q, headers=hdr)
        return st, body.decode()

    st, body = delete("?epoch=1000")
    assert st != 409 and "stale_epoch" not in body, (st, body)
    st, body = delete("?epoch=999")
    assert st == 409 and "stale_epoch" in body and "1000" in body and "999" in body, \
        (st, body)
    assert "epoch 999 is older than 1000" in agent.log()
    # the same epoch and newer ones pass; a call without one is not fenced
    for q in ("?epoch=1000", "?epoch=1001", ""):
        st, body = delete(q)
        assert st != 409, (q, st, body)
    st, body = delete("?epoch=1000")
    assert st == 409, "1001 was seen: 1000 is stale now"
    st, body = delete("?epoch=x1")
    assert st == 400 and "bad_epoch" in body, (st, body)
    # reads are never fenced
    st, _, _ = agent.http("GET", "/v1/host?epoch=1")
    assert st == 200
