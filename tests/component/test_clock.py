"""One clock: liveness is judged on Redis's clock (TIME), so an agent whose
wall clock steps back or forward stays up, and its stream ids keep
increasing, with no sample dropped as "already stored" - also across a
restart with a clock behind its stream.

The stepped clock is a FAKE (tests/tools/le-clockstep.so, LD_PRELOAD): the
one fault this machine cannot cause for one process alone (a time namespace
moves only the monotonic clocks; stepping the real clock would step every
process of the run)."""
import os
import time

import pytest

from conftest import CLOCKSTEP, assert_contiguous, stream, wait_for

HOUR_MS = 3600 * 1000


def stepped_agent(agent_factory, srv, step_file, **kw):
    if not os.path.exists(CLOCKSTEP):
        pytest.fail(f"{CLOCKSTEP} is not built (tests/tools/meson.build)")
    a = agent_factory(srv, wait=False, **kw)
    a.extra_env = {"LD_PRELOAD": CLOCKSTEP, "LE_CLOCKSTEP_FILE": step_file,
                   # the fake comes first in the library list, before ASan's
                   "ASAN_OPTIONS": "detect_leaks=1:verify_asan_link_order=0"}
    return a.start()


def host_state(ctl, host):
    st, j = ctl.http("GET", f"/v1/hosts/{host}")
    return j["state"] if st == 200 else f"unknown (HTTP {st})"


def ids_increasing(entries, key):
    ids = [ms for ms, _ in entries]
    assert all(b > a for a, b in zip(ids, ids[1:])), f"{key}: ids not increasing"


def test_stepped_agent_clock_keeps_host_up_and_loses_no_sample(redis_server, agent_factory,
                                                               controller_factory, workdir):
    step = os.path.join(workdir, "clockstep")
    with open(step, "w") as f:
        f.write("0\n")
    r = redis_server.client()
    agent = stepped_agent(agent_factory, redis_server, step)
    ctl = controller_factory(redis_server.address, {"controller.down_after_ms": 3000})
    wait_for(lambda: host_state(ctl, agent.id) == "up", 10, "the host up in the controller")
    key = f"ts:host:{agent.id}"

    for shift in (-HOUR_MS, HOUR_MS, 0):
        with open(step, "w") as f:
            f.write(f"{shift}\n")
        n0 = r.xlen(key)
        # past down_after_ms twice over: an agent-clock heartbeat would be an
        # hour old (or in the future) by now
        end = time.monotonic() + 7
        while time.monotonic() < end:
            assert host_state(ctl, agent.id) == "up", \
                f"clock shifted {shift} ms: host marked {host_state(ctl, agent.id)}"
            time.sleep(0.5)
        assert r.xlen(key) >= n0 + 20, f"clock shifted {shift} ms: samples stopped"
        seen = int(r.hget(f"host_config:{agent.id}", "last_seen"))
        t = r.time()
        redis_ms = t[0] * 1000 + t[1] // 1000
        assert abs(redis_ms - seen) < 2000, \
            f"last_seen {seen} is not Redis's clock ({redis_ms}): shift {shift}"
        assert_contiguous(stream(r, key), key)  # ids increasing, no seq missing
    events = r.xrange("events")
    assert not [e for _, e in events if e.get("type") == "host_down"], events


def test_agent_restarted_behind_its_stream_numbers_after_it(redis_server, agent_factory,
                                                            workdir):
    step = os.path.join(workdir, "clockstep")
    with open(step, "w") as f:
        f.write("0\n")
    r = redis_server.client()
    a1 = agent_factory(redis_server)
    key = f"ts:host:{a1.id}"
    wait_for(lambda: r.xlen(key) >= 5, 5, "5 samples")
    a1.stop()
    last = stream(r, key)[-1][0]
    # the same host, restarted with its clock an hour behind its stream
    with open(step, "w") as f:
        f.write(f"{-HOUR_MS}\n")
    n = r.xlen(key)
    stepped_agent(agent_factory, redis_server, step, host_id=a1.id, port=a1.port)
    wait_for(lambda: r.xlen(key) >= n + 8, 6,
             "samples of the restarted agent stored (not refused as already stored)")
    entries = stream(r, key)
    ids_increasing(entries, key)
    assert entries[n][0] > last
