"""`bench/sim-report --pareto` (bench/sim-pareto) on a small copy of the
traces: 40 VMs of one PlanetLab day and 40 Google VMs, the quick sweeps with
two of them replaced by --sweep. Checks the points CSV against the sweeps and
against a run of the binary by hand, the frontier lines against frontiers
computed here, the RESULT sim-pareto lines and the SVGs. Needs no root."""
import csv
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import BIN, REPO

TRACES = os.environ.get("LOADEASE_TRACES") or os.path.join(REPO, "..", "shared", "traces")
DAY = "20110303"
N_VMS = 40
SETS = [f"planetlab-{DAY}", f"planetlab-{DAY}-dense", "google", "google-dense"]
# --pareto-quick, then --sweep loadease=0,0.1,0.3 --sweep cloudsim:lr-mmt=1.1,1.2
EXPECT = {
    "default": {"none": {""}, "proxlb": {"10", "40"}, "stddev": {"0.1", "0.4"},
                "thr-mmt": {"80", "90"}, "loadease": {"0", "0.1", "0.3"}},
    "cloudsim": {"thr-mmt": {"80"}, "lr-mmt": {"1.1", "1.2"}, "mad-mmt": {"2.5"},
                 "iqr-mmt": {"1.5"}, "loadease": {"0.1", "0.2"}},
}
DEFAULTS = {"default": {"none": "", "proxlb": "10", "stddev": "0.1", "thr-mmt": "80", "loadease": "0.2"},
            "cloudsim": {"thr-mmt": "80", "lr-mmt": "1.2", "mad-mmt": "2.5", "iqr-mmt": "1.5",
                         "loadease": "0.2"}}
RIVALS = {"default": ["proxlb", "stddev", "thr-mmt"],
          "cloudsim": ["thr-mmt", "lr-mmt", "mad-mmt", "iqr-mmt"]}
KEYS = {"default": ("migrations", "overload_share"),
        "cloudsim": ("migrations", "slav", "energy_kwh")}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    day = os.path.join(TRACES, "planetlab", DAY)
    google = os.path.join(TRACES, "google")
    if not (os.path.isdir(day) and os.path.isdir(google)):
        pytest.skip(f"no traces in {TRACES} (set LOADEASE_TRACES)")
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"{BIN} is missing: build first (meson, ninja)")
    tmp = tmp_path_factory.mktemp("pareto")
    tree = tmp / "traces"
    for src, dst in ((day, tree / "planetlab" / DAY), (google, tree / "google")):
        dst.mkdir(parents=True)
        for f in sorted(os.listdir(src))[:N_VMS]:
            shutil.copy(os.path.join(src, f), dst / f)
    out = tmp / "out"
    p = subprocess.run(
        [os.path.join(REPO, "bench", "sim-report"), "--bin", BIN, "--traces", str(tree),
         "--out", str(out), "--pareto-quick", "--no-synthetic",
         "--sweep", "loadease=0,0.1,0.3", "--sweep", "cloudsim:lr-mmt=1.1,1.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    with open(out / "pareto" / "points.csv") as f:
        rows = list(csv.DictReader(f))
    return dict(tree=tree, out=out / "pareto", stdout=p.stdout, stderr=p.stderr, rows=rows)


def points(run, s, model):
    pts = []
    for r in run["rows"]:
        if r["set"] == s and r["model"] == model:
            q = dict(r)
            for k in ("migrations", "hosts", "vms", "steps", "is_default", "on_frontier"):
                q[k] = int(q[k])
            for k in KEYS[model][1:] + ("mig_per_host_day",):
                q[k] = float(q[k])
            pts.append(q)
    return pts


def test_a_point_per_policy_and_knob_value(run):
    assert "[1/" in run["stderr"] and "planetlab-20110303 (default): none" in run["stderr"]
    for s in SETS:
        for model in ("default", "cloudsim") if s == f"planetlab-{DAY}" else ("default",):
            pts = points(run, s, model)
            got = {}
            for q in pts:
                got.setdefault(q["policy"], []).append(q["value"])
            assert {k: sorted(v) for k, v in got.items()} == \
                {k: sorted(v) for k, v in EXPECT[model].items()}, (s, model)
            for q in pts:
                assert q["vms"] == N_VMS
                assert q["hosts"] == (10 if s.endswith("-dense") else 800)
                assert q["steps"] == 288
                assert q["mig_per_host_day"] == pytest.approx(
                    q["migrations"] / (q["hosts"] * q["steps"] / 288), rel=1e-6)
                assert q["is_default"] == int(DEFAULTS[model].get(q["policy"]) == q["value"])
                if model == "default":
                    over, act = int(q["overloaded_host_steps"]), int(q["active_host_steps"])
                    assert act > 0 and 0 <= over <= act
                    assert q["overload_share"] == pytest.approx(over / act, rel=1e-6, abs=1e-12)
                else:
                    assert q["energy_kwh"] > 0 and q["slav"] >= 0
            if model == "default":
                none = [q for q in pts if q["policy"] == "none"]
                assert none[0]["migrations"] == 0
    # somebody migrates: the points are not all the same
    assert len({(r["migrations"], r["overload_share"]) for r in run["rows"]
                if r["model"] == "default"}) > 5


def test_points_match_a_run_by_hand(run):
    """loadease at --risk-target 0.1 on the dense set, and lr-mmt 1.1 in the
    CloudSim model, run directly: the same migrations and overload / SLAV."""
    day = str(run["tree"] / "planetlab" / DAY)
    for model, args, policy, value, key in (
            ("default", ["--hosts", "10", "--host-mem", "8192", "--risk-target", "0.1"],
             "loadease", "0.1", "overload_share"),
            ("cloudsim", ["--model", "cloudsim", "--lr-safety", "1.1"], "lr-mmt", "1.1", "slav")):
        p = subprocess.run([BIN, "sim", "--planetlab", day, *args, "--policy", policy,
                            "--seed", "1", "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        res = dict(kv.split("=", 1) for kv in
                   next(l for l in p.stdout.splitlines() if l.startswith("RESULT")).split()[2:])
        s = f"planetlab-{DAY}-dense" if model == "default" else f"planetlab-{DAY}"
        q = next(q for q in points(run, s, model) if q["policy"] == policy and q["value"] == value)
        assert q["migrations"] == int(res["migrations"])
        assert q[key] == pytest.approx(float(res[key]), rel=1e-3, abs=1e-6)


def _frontier(pts, keys):
    def dom(a, b):
        return all(a[k] <= b[k] for k in keys) and any(a[k] < b[k] for k in keys)
    return [p for p in pts if not any(dom(q, p) for q in pts)]


def _below(le, rival, keys):
    for r in rival:
        if r[keys[0]] == 0 and any(r[k] > 0 for k in keys[1:]):
            continue  # none's point: nothing is under it without migrating
        if not any(l[keys[0]] <= r[keys[0]] and
                   all(l[k] < r[k] or l[k] == r[k] == 0 for k in keys[1:]) for l in le):
            return False
    return True


def test_frontier_lines(run):
    lines = run["stdout"].splitlines()
    for s in SETS:
        for model in ("default", "cloudsim") if s == f"planetlab-{DAY}" else ("default",):
            pts = points(run, s, model)
            keys = KEYS[model]
            fronts = {pol: _frontier([p for p in pts if p["policy"] == pol], keys)
                      for pol in EXPECT[model]}
            for p in pts:  # the CSV marks the frontier points (of equal points one)
                on = any(all(p[k] == f[k] for k in keys) for f in fronts[p["policy"]])
                assert bool(p["on_frontier"]) <= on, p
            for pol, f in fronts.items():
                assert sum(p["on_frontier"] for p in pts if p["policy"] == pol) == \
                    len({tuple(q[k] for k in keys) for q in f}), (s, pol)
            tag = f"frontier {s}:" if model == "default" else f"frontier {s} (cloudsim):"
            for r in RIVALS[model]:
                got = [l for l in lines if l.startswith(f"{tag} loadease below {r}: ")]
                assert len(got) == 1, (tag, r, lines)
                want = _below(fronts["loadease"], fronts[r], keys)
                assert re.match(rf"{re.escape(tag)} loadease below {r}: (yes|no)( \(.+\))?$", got[0])
                assert got[0].split(": ", 2)[2].startswith("yes" if want else "no"), got[0]
                if not want:
                    assert f"the rival points it does not beat: {r} " in got[0]
    cs = [l for l in lines if l.startswith(f"cloudsim planetlab-{DAY}: ")]
    assert len(cs) == 1 and re.search(r": (yes|no)( \(.*\))?$", cs[0]), cs


def test_result_lines(run):
    lines = run["stdout"].rstrip("\n").splitlines()
    want = [(s, "default") for s in SETS] + [(f"planetlab-{DAY}", "cloudsim")]
    res = [l for l in lines if l.startswith("RESULT")]
    assert lines[-len(want):] == res, "the RESULT lines are not the last lines"
    seen = set()
    for l in res:
        assert re.fullmatch(r"RESULT sim-pareto( [a-z_0-9]+=\S+)+", l), l
        kv = dict(t.split("=", 1) for t in l.split()[2:])
        s, model = kv["set"], kv["model"]
        seen.add((s, model))
        assert int(kv["points"]) == len(points(run, s, model)) > 0
        k, n = kv["loadease_frontier_below"].split("/")
        assert int(n) == len(RIVALS[model])
        tag = f"frontier {s}:" if model == "default" else f"frontier {s} (cloudsim):"
        yes = [x for x in lines if x.startswith(tag) and x.split(": ", 2)[2].startswith("yes")]
        assert int(k) == len(yes), (l, yes)
        for r in RIVALS[model]:
            assert kv["below_" + r.replace("-", "_")] in ("yes", "no")
        if model == "default":
            sd = next(q for q in points(run, s, model) if q["policy"] == "stddev" and q["is_default"])
            assert int(kv["stddev_default_migrations"]) == sd["migrations"]
            le = [q for q in points(run, s, model) if q["policy"] == "loadease"
                  and q["migrations"] <= sd["migrations"]]
            if le:
                assert float(kv["loadease_best_overload_at_stddev_migrations"]) == pytest.approx(
                    min(q["overload_share"] for q in le), rel=1e-5, abs=1e-9)
        else:
            assert kv["loadease_energy_esv_below_defaults"] in ("yes", "no")
            assert float(kv["best_default_energy_kwh"]) > 0
    assert seen == set(want)


def test_svgs(run):
    if not shutil.which("gnuplot"):
        pytest.skip("gnuplot not installed: no plots")
    names = [f"{s}.svg" for s in SETS] + [f"planetlab-{DAY}-cloudsim.svg"]
    for n in names:
        path = run["out"] / n
        assert path.exists(), n
        root = ET.parse(path).getroot()
        assert root.tag.endswith("svg"), (n, root.tag)
        text = " ".join(t for t in root.itertext())
        for pol in EXPECT["cloudsim" if "cloudsim" in n else "default"]:
            assert pol in text, (n, pol)


def test_frontier_rule():
    """The rule itself, on made-up points: strictly lower overload with no more
    migrations; 0 ties 0; none's point (0 migrations, overload above 0) is not
    counted; a frontier keeps one of equal points and drops dominated ones."""
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader("sim_pareto",
                                                  os.path.join(REPO, "bench", "sim-pareto"))
    spec = importlib.util.spec_from_loader("sim_pareto", loader)
    sp = importlib.util.module_from_spec(spec)
    loader.exec_module(sp)
    keys = ("migrations", "overload_share")

    def pt(m, o, v=""):
        return {"migrations": m, "overload_share": o, "policy": "x", "value": v}
    rival = [pt(0, 0.3, "a"), pt(10, 0.2, "b"), pt(10, 0.2, "b2"), pt(20, 0.25, "c"),
             pt(50, 0.0, "d")]
    f = sp.frontier(rival, keys)
    assert [(p["migrations"], p["overload_share"], p["value"]) for p in f] == \
        [(0, 0.3, "a"), (10, 0.2, "b"), (50, 0.0, "d")]
    assert sp.beats(pt(10, 0.1), pt(10, 0.2), keys)
    assert not sp.beats(pt(10, 0.2), pt(10, 0.2), keys)      # a tie is not lower
    assert not sp.beats(pt(11, 0.1), pt(10, 0.2), keys)      # more migrations
    assert sp.beats(pt(40, 0.0), pt(50, 0.0), keys)          # 0 ties 0
    assert not sp.beats(pt(60, 0.0), pt(50, 0.0), keys)
    assert not sp.counts(pt(0, 0.3), keys) and sp.counts(pt(0, 0.0), keys)
    assert sp.counts(pt(10, 0.2), keys)
    out = []
    pts = [dict(p, policy="stddev", is_default=int(p["value"] == "b")) for p in rival]
    pts += [dict(pt(5, 0.15, "0.2"), policy="loadease", is_default=1),
            dict(pt(45, 0.0, "0.05"), policy="loadease", is_default=0)]
    for p in pts:
        p["mig_per_host_day"] = p["migrations"] / 100
    fronts = {pol: sp.frontier([p for p in pts if p["policy"] == pol], keys)
              for pol in ("stddev", "loadease")}
    res = sp.check_default("made-up", pts, fronts, out)
    assert out == ["frontier made-up: loadease below stddev: yes (2 counted frontier points, all beaten)"]
    assert "loadease_frontier_below=1/1" in res and "stddev_default_migrations=10" in res
    assert "loadease_best_overload_at_stddev_migrations=0.15 " in res
    out = []
    pts[-1]["migrations"] = 55  # now d (50, 0) is not beaten
    fronts["loadease"] = sp.frontier([p for p in pts if p["policy"] == "loadease"], keys)
    res = sp.check_default("made-up", pts, fronts, out)
    assert out[0].startswith("frontier made-up: loadease below stddev: no (the rival points it "
                             "does not beat: stddev d: 50 migrations"), out
    assert "loadease_frontier_below=0/1" in res and "below_stddev=no" in res
