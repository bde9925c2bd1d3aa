"""The dashboard (web/) served by the real controller, in headless Chromium.

Redis is filled the way the agents fill it (registry hashes and sets, one
ts:host:<h> / ts:vm:<vm> entry per second, heartbeats), `loadease controller`
serves web/ as its web_root, and tests/ui/dashboard.mjs (playwright-core
from npm driving Debian's /usr/bin/chromium) loads the page, clicks through
it and reports what it saw; the assertions are here.

Needs: node, `make web` (npm ci: node_modules/playwright-core and
web/vendor/uPlot.*), /usr/bin/chromium (scripts/install-deps installs node
and chromium). A missing piece fails with what to run; the tests skip only
while the controller is not built yet.
"""
import json
import math
import os
import select
import shutil
import subprocess
import threading
import time

import pytest

from conftest import BIN, REPO

WEB = os.path.join(REPO, "web")
DRIVER = os.path.join(REPO, "tests", "ui", "dashboard.mjs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
READ_TOKEN = "ui-read-token-7"


def now_ms():
    return int(time.time() * 1000)


@pytest.fixture
def ui_tools():
    """Skips while the controller is a stub or when `make web` could not reach
    the npm registry (it says why in .web-unavailable); fails when a tool is
    missing otherwise."""
    p = subprocess.run([BIN, "controller", "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=10)
    if "not built yet" in p.stdout:
        pytest.skip("controller not built")
    unavailable = os.path.join(REPO, ".web-unavailable")
    if os.path.exists(unavailable):  # `make web` tried and said why (scripts/web-deps)
        with open(unavailable) as f:
            pytest.skip(f"the npm packages could not be installed: {f.read().strip()}")
    missing = []
    if not shutil.which("node"):
        missing.append("node (scripts/install-deps installs nodejs)")
    if not os.path.isdir(os.path.join(REPO, "node_modules", "playwright-core")):
        missing.append("node_modules/playwright-core (run `make web`: npm ci)")
    for f in ("uPlot.iife.min.js", "uPlot.min.css"):
        if not os.path.isfile(os.path.join(WEB, "vendor", f)):
            missing.append(f"web/vendor/{f} (run `make web`)")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (scripts/install-deps installs chromium)")
    if missing:
        pytest.fail("the dashboard test needs: " + "; ".join(missing), pytrace=False)


class Agents:
    """Plays the agents of a small cluster in Redis: h0 CPU-hot with vm1 and
    vm2, h1 quiet with vm3, h2 in maintenance and without any sample yet.
    Every 5th h0 entry lacks `net` (a gap in its series). A thread adds one
    sample per second per host and VM and refreshes the heartbeats."""

    HOSTS = {"h0": {"cpu": 2, "mem": 4096}, "h1": {"cpu": 4, "mem": 8192},
             "h2": {"cpu": 4, "mem": 8192, "state": "maintenance"}}
    VMS = {"vm1": ("h0", {"cpu": 1, "mem": 512, "pin": "h0,h1"}),
           "vm2": ("h0", {"cpu": 1, "mem": 512}),
           "vm3": ("h1", {"cpu": 1, "mem": 1024, "anti_group": "db"})}

    def __init__(self, r, backfill=120):
        self.r = r
        self.last = {}
        self.stop_ev = threading.Event()
        for h, cfg in self.HOSTS.items():
            r.sadd("host_ids", h)
            r.hset("host_id_to_ip", h, "127.0.0.1")
            r.hset(f"host_config:{h}", mapping={"net": 1000, "name": h, "ip": "127.0.0.1",
                                                "state": "up", "last_seen": now_ms(), **cfg})
            r.set(f"vmm_proxy_addr:{h}", "127.0.0.1:1")  # no agent API: nothing moves
            r.set(f"mon_proxy_addr:{h}", "127.0.0.1:1")
        for vm, (h, cfg) in self.VMS.items():
            r.sadd(f"vms_in_host:{h}", vm)
            r.hset(f"vm_configs:{vm}", mapping={"host_id": h, "state": "running", **cfg})
        t0 = now_ms() - backfill * 1000
        for i in range(backfill):
            self.sample(t0 + i * 1000, i)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def values(self, key, i):
        wave = math.sin(i / 7)
        v = {"ts:host:h0": {"cpu": 0.88 + 0.06 * wave, "mem": 0.42, "net": 0.02},
             "ts:host:h1": {"cpu": 0.20 + 0.05 * wave, "mem": 0.30, "net": 0.01},
             "ts:vm:vm1": {"cpu": 0.95, "mem": 0.60, "net": 0.01},
             "ts:vm:vm2": {"cpu": 0.70 + 0.1 * wave, "mem": 0.50, "net": 0.01},
             "ts:vm:vm3": {"cpu": 0.30, "mem": 0.40, "net": 0.005}}[key]
        if key == "ts:host:h0" and i % 5 == 0:
            del v["net"]
        return v

    def sample(self, t, i):
        for key in ("ts:host:h0", "ts:host:h1", "ts:vm:vm1", "ts:vm:vm2", "ts:vm:vm3"):
            t = max(t, self.last.get(key, 0) + 1)
            self.r.xadd(key, {"ts": t, **self.values(key, i)}, id=f"{t}-0")
            self.last[key] = t

    def run(self):
        i = 10_000
        while not self.stop_ev.wait(1.0):
            i += 1
            self.sample(now_ms(), i)
            for h in self.HOSTS:
                self.r.hset(f"host_config:{h}", "last_seen", now_ms())

    def stop(self):
        self.stop_ev.set()
        self.thread.join(timeout=5)


@pytest.fixture
def cluster(redis_server):
    r = redis_server.client()
    agents = Agents(r)
    yield redis_server, r
    agents.stop()
    r.close()


class Browser:
    """tests/ui/dashboard.mjs: JSON lines out, a step name in when it is
    ready for the driver to act (see the script's header)."""

    def __init__(self, url, args, workdir, actions, timeout=40):
        self.stderr_path = os.path.join(workdir, "dashboard-node.log")
        self.deadline = time.monotonic() + timeout
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                ["node", DRIVER, "--url", url, *args], cwd=REPO, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=err, text=True)
        self.actions = actions
        self.steps = []

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()[-4000:]

    def result(self):
        try:
            while True:
                left = self.deadline - time.monotonic()
                if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                    raise AssertionError("dashboard.mjs did not finish in time; stderr:\n"
                                         + self.stderr())
                line = self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"dashboard.mjs ended without a result "
                                         f"({self.proc.wait()}); stderr:\n{self.stderr()}")
                msg = json.loads(line)
                if "ready" in msg:
                    step = msg["ready"]
                    self.steps.append(step)
                    self.actions[step]()
                    self.proc.stdin.write(step + "\n")
                    self.proc.stdin.flush()
                elif "error" in msg:
                    raise AssertionError("dashboard.mjs: " + msg["error"])
                else:
                    return msg["result"]
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)


def start_controller(controller_factory, redis_server, **settings):
    c = controller_factory(redis_server.address, settings={
        "controller.web_root": WEB, "controller.mode": "recommend", **settings})
    return c


def add_event(r, marker):
    """An agent's own entry in the decision log (no `by`)."""
    r.xadd("events", {"type": "vm_created", "ts": now_ms(), "host": "h1", "vm": "vm-ui",
                      "msg": marker})


def assert_charts(d, kind, ident):
    assert d["title"] == f"{'Host' if kind == 'host' else 'VM'} {ident}", d
    assert d["canvas"] and d["points"] >= 60 and d["values"] > 0, d
    assert d["legend"][1:] == ["cpu", "mem", "net", "threshold"], d
    assert d["cpuPixels"] > 50, f"no cpu line drawn in the series chart: {d}"
    for res in ("cpu", "mem", "net"):
        h = d["hist"][res]
        assert h["canvas"] and h["bins"] == 20 and h["n"] > 0, (res, d)
    assert d["histPixels"] > 50, f"no cpu bars drawn in the histogram: {d}"


def test_dashboard_shows_cluster_charts_and_live_events(ui_tools, cluster, controller_factory,
                                                        workdir):
    redis_server, r = cluster
    # reads open, said explicitly (the default needs a token): the live
    # event stream (EventSource sends no token) is what this test watches
    c = start_controller(controller_factory, redis_server, **{"controller.open_reads": True})
    marker = f"ui-event-{os.getpid()}-{now_ms()}"
    shot = os.path.join(workdir, "dashboard.png")
    b = Browser(c.url + "/", ["--hosts", "h0,h1,h2", "--host", "h0", "--empty-host", "h2",
                              "--vm", "vm1", "--event", marker, "--screenshot", shot],
                workdir, {"event": lambda: add_event(r, marker)})
    res = b.result()

    states = {h["id"]: h["state"] for h in res["hosts"]}
    assert states == {"h0": "up", "h1": "up", "h2": "maintenance"}, res["hosts"]
    hot = {h["id"]: h["hotBars"] for h in res["hosts"]}
    assert hot["h0"] >= 1 and hot["h1"] == 0, f"h0's CPU is hot, h1 is not: {res['hosts']}"
    # h2 holds no VM: the badge an operator powers it down by; the others hold some
    badges = {h["id"]: h["badges"] for h in res["hosts"]}
    assert "empty" in badges["h2"] and "empty" not in badges["h0"] + badges["h1"], badges
    assert sorted(res["vms"]) == ["vm1", "vm2", "vm3"], res["vms"]
    assert "recommend" in res["summary"], res["summary"]

    assert_charts(res["hostDetail"], "host", "h0")
    assert_charts(res["vmDetail"], "vm", "vm1")
    e = res["emptyDetail"]
    assert e["note"] == "no samples yet" and e["canvas"] and e["points"] == 0, e
    assert e["histN"] == 0, e

    assert res["eventsMode"] == "live", res["eventsMode"]
    assert res["eventMs"] < 5000, f"the event took {res['eventMs']} ms to show"
    assert marker in res["eventFirst"] and "vm_created" in res["eventFirst"], res["eventFirst"]
    assert res["banner"] == "", res["banner"]
    assert res["pageErrors"] == [] and res["consoleErrors"] == [], \
        (res["pageErrors"], res["consoleErrors"])


def test_dashboard_asks_for_a_token_polls_events_and_reports_a_lost_controller(
        ui_tools, cluster, controller_factory, workdir):
    redis_server, r = cluster
    c = start_controller(controller_factory, redis_server,
                         **{"controller.read_token": READ_TOKEN})
    st, body = c.http("GET", "/v1/hosts", token=None)
    assert st == 401, (st, body)
    marker = f"ui-polled-{os.getpid()}-{now_ms()}"
    b = Browser(c.url + "/", ["--hosts", "h0,h1,h2", "--host", "h0", "--token", READ_TOKEN,
                              "--event", marker, "--unreachable"],
                workdir, {"event": lambda: add_event(r, marker), "unreachable": c.kill})
    res = b.result()

    assert b.steps == ["event", "unreachable"], b.steps
    assert res["tokenFormShown"], res
    assert {h["id"] for h in res["hosts"]} == {"h0", "h1", "h2"}, res["hosts"]
    assert_charts(res["hostDetail"], "host", "h0")
    # EventSource cannot send the token: the panel long-polls /v1/events
    assert res["eventsMode"] == "polling", res["eventsMode"]
    assert res["eventMs"] < 5000 and marker in res["eventFirst"], res
    assert "controller unreachable" in res["unreachableBanner"], res["unreachableBanner"]
    assert res["pageErrors"] == [], res["pageErrors"]
    # the browser logs each failed call (401 before the token; refused or
    # reset connections once the controller is gone: net::ERR_*), nothing else
    other = [e for e in res["consoleErrors"]
             if not ("401" in e["text"] and e["phase"] in ("load", "token", "authorised"))
             and not (e["phase"] == "unreachable" and "net::ERR_" in e["text"])]
    assert other == [], other
