/* sim.c - `loadease sim`: options, the step loop, CSV and RESULT output. */
#include "sim/sim.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

double sim_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int sim_run(struct sim_model *m, const struct policy_ops *p, FILE *steps, bool progress,
            struct sim_summary *out, double *wall_s, char *err, size_t errcap)
{
	struct sim_metrics mt;
	struct sim_moves mv = {0};
	void *st = NULL;
	double t0 = sim_mono_s(), last = t0;
	bool shown = false;
	int rc;

	if ((rc = metrics_init(&mt, m->nvms)) < 0) {
		snprintf(err, errcap, "%s: out of memory", p->name);
		return rc;
	}
	model_reset(m);
	if ((rc = p->init(&st, m)) < 0) {
		snprintf(err, errcap, "%s: cannot start: %s", p->name, strerror(-rc));
		goto out;
	}
	for (int t = 0; t < m->trace->nsteps; t++) {
		double plan_ms = 0, now;
		int started = 0, refused = 0, resized = 0;

		if ((rc = model_step(m)) < 0) {
			snprintf(err, errcap, "%s: step %d: %s", p->name, t, strerror(-rc));
			goto out;
		}
		metrics_step(&mt, m);
		if (t + 1 < m->trace->nsteps) { /* after the last step nothing would run */
			double a;
			if (p->observe && (rc = p->observe(st, m)) < 0) {
				snprintf(err, errcap, "%s: step %d: %s", p->name, t, strerror(-rc));
				goto out;
			}
			mv.n = 0;
			a = sim_mono_s();
			rc = p->decide(st, m, &mv);
			plan_ms = (sim_mono_s() - a) * 1000;
			if (rc < 0) {
				snprintf(err, errcap, "%s: step %d: %s", p->name, t, strerror(-rc));
				goto out;
			}
			for (int i = 0; i < mv.n; i++) {
				if (mv.v[i].vcpus > 0)
					resized += model_resize(m, mv.v[i].vm, mv.v[i].vcpus) == 0;
				else if (model_migrate(m, mv.v[i].vm, mv.v[i].to,
				                       mv.v[i].start_s) == 0)
					started++;
				else
					refused++;
			}
			metrics_plan(&mt, plan_ms, started, refused, resized);
		}
		if (steps)
			fprintf(steps, "%d,%s,%d,%.6f,%d,%d,%.3f\n", t, p->name, mt.step_over,
			        mt.step_active ? (double)mt.step_over / mt.step_active : 0.0,
			        started, mt.step_active, plan_ms);
		now = sim_mono_s();
		if (progress && now - last >= 2) {
			fprintf(stderr, "sim: %s: %s step %d/%d, %ld migrations, %.0f s\n",
			        m->trace->name, p->name, t + 1, m->trace->nsteps, mt.migrations,
			        now - t0);
			last = now;
			shown = true;
		}
	}
	metrics_summary(&mt, m, out);
	if (wall_s)
		*wall_s = sim_mono_s() - t0;
	if (shown)
		fprintf(stderr, "sim: %s: %s done in %.1f s\n", m->trace->name, p->name,
		        sim_mono_s() - t0);
	rc = 0;
out:
	p->free_state(st);
	moves_free(&mv);
	metrics_free(&mt);
	return rc;
}

/* ---- options ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: loadease sim (--planetlab DIR | --google DIR | --trace FILE.csv |\n"
	    "                     --synthetic) [--model default|cloudsim] [--hosts N]\n"
	    "                    [--policy NAME[,NAME...]|all] [--seed S] [--out DIR] [options]\n"
	    "\n"
	    "Replays a workload through LoadEase's planner (the controller's own core code)\n"
	    "and through the baselines, each on a copy of the same initial placement, one\n"
	    "step per trace sample (5 minutes), and reports per policy the overload time\n"
	    "share, PDM, SLAV, migrations, hosts in use and planning time. Deterministic for\n"
	    "a seed, except the planning times. Progress goes to stderr; a table, then one\n"
	    "RESULT line per policy, to stdout.\n"
	    "\n"
	    "workload (one of):\n"
	    "  --planetlab DIR      a PlanetLab day as shipped with CloudSim: one file per\n"
	    "                       VM, one CPU percent per line; memory = the VM's size\n"
	    "  --google DIR         Google cluster VMs: one file per VM, 'cpu%% mem%%' lines\n"
	    "  --trace FILE.csv     your own: '#' comments, a header naming the columns\n"
	    "                       step,vm,cpu (required) and mem,net,vcpus,mem_mib, then a\n"
	    "                       row per VM and step; cpu and mem in percent of the VM's\n"
	    "                       size (mem missing: 100), net in Mbit/s (missing: 0)\n"
	    "  --synthetic          AR(1) workloads (the Sandpiper paper's simulations):\n"
	    "    --vms-per-host K   VMs per host (20), or --vms M\n"
	    "    --steps S          steps (288)\n"
	    "    --ar-cpu LO:HI     range of the VMs' mean cpu, fraction (0.2:0.8)\n"
	    "    --ar-mem LO:HI     mean memory, fraction (0.4:0.9)\n"
	    "    --ar-net LO:HI     mean network, fraction of the host NIC (0:0)\n"
	    "    --ar-phi X         lag-1 correlation (0.9)\n"
	    "    --ar-sigma X       cpu noise per step (0.1; mem and net a quarter of it)\n"
	    "\n"
	    "cluster:\n"
	    "  --hosts N            hosts (800)\n"
	    "  --host-cpu CORES     per host (2; synthetic 24)\n"
	    "  --host-mem MIB       (4096; synthetic 131072)\n"
	    "  --host-net MBIT      (1000; synthetic 10000)\n"
	    "  --vm-vcpus LIST      sizes drawn (seeded) for VMs the trace gives none (1;\n"
	    "                       synthetic 1,2)\n"
	    "  --vm-mem LIST        MiB (613,870,1740: CloudSim's VM types; synthetic\n"
	    "                       1024,2048,4096)\n"
	    "  --threshold PCT      hotspot and overload threshold of every resource (75)\n"
	    "  --overcommit-cpu X   vCPUs per core a host may hold (4); memory: none\n"
	    "  --place-shard N      initial placement works on shards of N hosts (auto:\n"
	    "                       all hosts while hosts x VMs <= 5e7)\n"
	    "  --vm-start-alloc F   every VM starts with this share of its size's vCPUs\n"
	    "                       (at least 1; default 1): CPU asked above the allocation\n"
	    "                       is not served (unserved_share) unless a resize gives it\n"
	    "\n"
	    "migration cost:\n"
	    "  --link-mbit X        bandwidth; duration = memory * 8 / (link - dirty) (1000)\n"
	    "  --dirty-mbit X       every VM's memory dirty rate (0)\n"
	    "  --mig-cpu CORES      extra CPU on source and destination while it runs (0.1)\n"
	    "  --downtime-ms MS     the VM's pause at the switch-over (300)\n"
	    "  --pdm-factor X       share of its CPU a migrating VM loses, for PDM (0.1)\n"
	    "\n"
	    "loadease (the controller's planner):\n"
	    "  --window N           samples per profile (12 = 1 hour)\n"
	    "  --k K --n N          hot when K of the last N samples and the forecast are\n"
	    "                       over the threshold (3 of 5)\n"
	    "  --peak-pct P         percentile taken as demand (95)\n"
	    "  --cooldown-min M     a VM that moved rests M minutes (60)\n"
	    "  --max-per-round N    migrations per step, all hosts (0 = no limit)\n"
	    "  --max-per-host N     per host, in flight included (2)\n"
	    "  --min-gain X         volume per second of migration a move must gain (0.0005)\n"
	    "  --no-swaps           do not try swaps\n"
	    "  --risk-target P      move before a hotspot when a host's chance of passing\n"
	    "                       a threshold in the next sample exceeds P (0.2; 0 off)\n"
	    "  --risk-horizon N     samples ahead the risk looks (1)\n"
	    "  --objective OBJ      spread (default) or pack: also empty the least-loaded\n"
	    "                       hosts onto fuller ones that stay under half the risk\n"
	    "                       target (wakes an empty host only when none in use fits)\n"
	    "  --no-resize          do not resize VMs in place (by default a VM at its\n"
	    "                       vCPU allocation grows, up to its size, where it runs)\n"
	    "\n"
	    "baselines:\n"
	    "  --balanciness PTS    proxlb: max - min host CPU percent that triggers it (10)\n"
	    "  --stddev-threshold X stddev: per-metric standard deviation that triggers (0.1)\n"
	    "  --thr-mmt PCT        thr-mmt: static CPU threshold (80)\n"
	    "\n"
	    "model:\n"
	    "  --model default      today's model: the options above and below (the default)\n"
	    "  --model cloudsim     CloudSim 3.0.3's PlanetLab power experiments, event for\n"
	    "                       event (docs/sim-cloudsim.md): --hosts CloudSim hosts (800,\n"
	    "                       G4 and G5 alternating), VM types by blocks of the trace\n"
	    "                       files' order, RAM checked at the initial placement only,\n"
	    "                       VMs leaving when they request nothing, CloudSim's\n"
	    "                       migration time and 10 %% CPU loss; prints energy_kwh,\n"
	    "                       slatah, pdm, slav, esv, migrations, host_shutdowns. Its\n"
	    "                       knobs (each policy's CloudSim parameter):\n"
	    "    --thr-mmt PCT      thr-mmt: static threshold (80)\n"
	    "    --lr-safety X      lr-mmt: safety parameter (1.2)\n"
	    "    --mad-safety X     mad-mmt: threshold 1 - X * MAD (2.5)\n"
	    "    --iqr-safety X     iqr-mmt: threshold 1 - X * IQR (1.5)\n"
	    "    --fallback-thr PCT lr, mad, iqr while a host's history is short (70)\n"
	    "    --param X          the one chosen policy's parameter as CloudSim's runner\n"
	    "                       takes it (thr-mmt 0.8, lr-mmt 1.2, mad-mmt 2.5, iqr-mmt 1.5)\n"
	    "\n"
	    "run:\n"
	    "  --policy LIST        default model: none, proxlb, stddev, thr-mmt, loadease;\n"
	    "                       cloudsim model: thr-mmt, lr-mmt, mad-mmt, iqr-mmt; or all\n"
	    "                       (all; see the lists below)\n"
	    "  --seed S             VM sizes and synthetic workloads (1)\n"
	    "  --out DIR            write DIR/steps-<policy>.csv and DIR/summary.csv\n"
	    "  --name NAME          the trace's name in the output\n"
	    "  --quiet              no progress on stderr\n"
	    "  --explain            loadease prints every planned action and every hotspot\n"
	    "                       it leaves, with the planner's reason, to stderr\n"
	    "  -h, --help           this text\n"
	    "\n"
	    "policies of --model default:\n");
	for (int i = 0; policy_list[i]; i++)
		fprintf(f, "  %-10s %s\n", policy_list[i]->name, policy_list[i]->about);
	fprintf(f, "\npolicies of --model cloudsim (loadease takes the loadease options above;\n"
	           "--max-per-host is 0 there unless given: CloudSim has no such limit):\n");
	for (int i = 0; cs_policy_list[i]; i++)
		fprintf(f, "  %-10s %s\n", cs_policy_list[i]->name, cs_policy_list[i]->about);
}

struct opts {
	const char *planetlab, *google, *csv, *out, *name;
	bool synthetic, quiet;
	int nsrc;
	char policies[256];
	int vms_per_host, vms;
	struct trace_synth syn;
	bool set_cpu, set_mem, set_net, set_vcpus, set_vmem;
	bool cloudsim;       /* --model cloudsim */
	struct cs_config cs; /* its knobs */
	const char *cs_opt;  /* a cloudsim-only option given */
	bool set_mph;        /* --max-per-host given */
	bool param_set;
	double param;
};

static int bad(const char *opt, const char *val, const char *want)
{
	fprintf(stderr, "loadease sim: %s '%s': %s\n", opt, val, want);
	return -EINVAL;
}

static int num(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(x) || x < lo || x > hi) {
		char want[96];
		snprintf(want, sizeof(want), "need a number in %.15g..%.15g", lo, hi);
		return bad(opt, s, want);
	}
	*out = x;
	return 0;
}

static int inum(const char *opt, const char *s, int lo, int hi, int *out)
{
	double x;

	if (num(opt, s, lo, hi, &x) < 0)
		return -EINVAL;
	if (x != floor(x))
		return bad(opt, s, "need a whole number");
	*out = (int)x;
	return 0;
}

static int range(const char *opt, const char *s, double *lo, double *hi)
{
	const char *colon = strchr(s, ':');
	char a[64];

	if (!colon || (size_t)(colon - s) >= sizeof(a))
		return bad(opt, s, "need LO:HI, fractions 0..1");
	memcpy(a, s, (size_t)(colon - s));
	a[colon - s] = '\0';
	if (num(opt, a, 0, 1, lo) < 0 || num(opt, colon + 1, 0, 1, hi) < 0)
		return -EINVAL;
	if (*lo > *hi)
		return bad(opt, s, "LO must not exceed HI");
	return 0;
}

static int list(const char *opt, const char *s, double lo, double hi, double *out, int *n)
{
	char buf[256], *save = NULL, *tok;

	if (strlen(s) >= sizeof(buf))
		return bad(opt, s, "list too long");
	snprintf(buf, sizeof(buf), "%s", s);
	*n = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*n == SIM_MAX_SIZES)
			return bad(opt, s, "at most 8 sizes");
		if (num(opt, tok, lo, hi, &out[(*n)++]) < 0)
			return -EINVAL;
	}
	return *n ? 0 : bad(opt, s, "need a comma-separated list of sizes");
}

/* Parses argv into o and cfg. 0, 1 (help printed), or -EINVAL. */
static int parse(int argc, char **argv, struct opts *o, struct sim_config *c)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		double x;
		int rc = 0;

#define OPT(name) (strcmp(a, name) == 0)
#define NEEDV                                                                                      \
	do {                                                                                       \
		if (!v) {                                                                          \
			fprintf(stderr, "loadease sim: %s needs a value\n", a);                    \
			return -EINVAL;                                                            \
		}                                                                                  \
		i++;                                                                               \
	} while (0)
		if (OPT("-h") || OPT("--help")) {
			usage(stdout);
			return 1;
		} else if (OPT("--synthetic")) {
			o->synthetic = true;
			o->nsrc++;
		} else if (OPT("--quiet")) {
			o->quiet = true;
		} else if (OPT("--explain")) {
			c->explain = true;
		} else if (OPT("--no-swaps")) {
			c->swaps = false;
		} else if (OPT("--no-resize")) {
			c->resize = false;
		} else if (OPT("--vm-start-alloc")) {
			NEEDV;
			rc = num(a, v, 0.01, 1, &c->vm_start_alloc);
		} else if (OPT("--planetlab")) {
			NEEDV;
			o->planetlab = v;
			o->nsrc++;
		} else if (OPT("--google")) {
			NEEDV;
			o->google = v;
			o->nsrc++;
		} else if (OPT("--trace")) {
			NEEDV;
			o->csv = v;
			o->nsrc++;
		} else if (OPT("--out")) {
			NEEDV;
			o->out = v;
		} else if (OPT("--name")) {
			NEEDV;
			o->name = v;
		} else if (OPT("--policy")) {
			NEEDV;
			if (strlen(v) >= sizeof(o->policies))
				return bad(a, v, "too long");
			snprintf(o->policies, sizeof(o->policies), "%s", v);
		} else if (OPT("--seed")) {
			NEEDV;
			rc = num(a, v, 0, 9007199254740992.0, &x);
			c->seed = (uint64_t)x;
			o->syn.seed = c->seed;
		} else if (OPT("--hosts")) {
			NEEDV;
			rc = inum(a, v, 1, 1000000, &c->nhosts);
		} else if (OPT("--host-cpu")) {
			NEEDV;
			rc = num(a, v, 0.01, 1e5, &c->host_cap[RES_CPU]);
			o->set_cpu = true;
		} else if (OPT("--host-mem")) {
			NEEDV;
			rc = num(a, v, 1, 1e9, &c->host_cap[RES_MEM]);
			o->set_mem = true;
		} else if (OPT("--host-net")) {
			NEEDV;
			rc = num(a, v, 1, 1e9, &c->host_cap[RES_NET]);
			o->set_net = true;
		} else if (OPT("--vm-vcpus")) {
			NEEDV;
			rc = list(a, v, 0.01, 1024, c->vm_vcpus, &c->nvm_vcpus);
			o->set_vcpus = true;
		} else if (OPT("--vm-mem")) {
			NEEDV;
			rc = list(a, v, 1, 16777216, c->vm_mem, &c->nvm_mem);
			o->set_vmem = true;
		} else if (OPT("--threshold")) {
			NEEDV;
			rc = num(a, v, 1, 100, &x);
			for (int r = 0; r < RES_N; r++)
				c->thr[r] = x / 100;
		} else if (OPT("--overcommit-cpu")) {
			NEEDV;
			rc = num(a, v, 0.1, 1000, &c->overcommit_cpu);
		} else if (OPT("--place-shard")) {
			NEEDV;
			rc = inum(a, v, 1, 1000000, &c->place_shard);
		} else if (OPT("--vms-per-host")) {
			NEEDV;
			rc = inum(a, v, 1, 10000, &o->vms_per_host);
		} else if (OPT("--vms")) {
			NEEDV;
			rc = inum(a, v, 1, TRACE_MAX_VMS, &o->vms);
		} else if (OPT("--steps")) {
			NEEDV;
			rc = inum(a, v, 1, TRACE_MAX_STEPS, &o->syn.nsteps);
		} else if (OPT("--ar-cpu")) {
			NEEDV;
			rc = range(a, v, &o->syn.lo[RES_CPU], &o->syn.hi[RES_CPU]);
		} else if (OPT("--ar-mem")) {
			NEEDV;
			rc = range(a, v, &o->syn.lo[RES_MEM], &o->syn.hi[RES_MEM]);
		} else if (OPT("--ar-net")) {
			NEEDV;
			rc = range(a, v, &o->syn.lo[RES_NET], &o->syn.hi[RES_NET]);
		} else if (OPT("--ar-phi")) {
			NEEDV;
			rc = num(a, v, -1, 1, &o->syn.phi);
		} else if (OPT("--ar-sigma")) {
			NEEDV;
			rc = num(a, v, 0, 1, &o->syn.sigma);
		} else if (OPT("--link-mbit")) {
			NEEDV;
			rc = num(a, v, 1, 1e7, &c->link_mbit);
		} else if (OPT("--dirty-mbit")) {
			NEEDV;
			rc = num(a, v, 0, 1e7, &c->dirty_mbit);
		} else if (OPT("--mig-cpu")) {
			NEEDV;
			rc = num(a, v, 0, 1024, &c->mig_cpu);
		} else if (OPT("--downtime-ms")) {
			NEEDV;
			rc = num(a, v, 0, 3.6e6, &x);
			c->downtime_s = x / 1000;
		} else if (OPT("--pdm-factor")) {
			NEEDV;
			rc = num(a, v, 0, 1, &c->pdm_factor);
		} else if (OPT("--window")) {
			NEEDV;
			rc = inum(a, v, 1, PROFILE_MAX_WINDOW, &c->window);
		} else if (OPT("--k")) {
			NEEDV;
			rc = inum(a, v, 1, 1000, &c->k);
		} else if (OPT("--n")) {
			NEEDV;
			rc = inum(a, v, 1, 1000, &c->n);
		} else if (OPT("--peak-pct")) {
			NEEDV;
			rc = num(a, v, 0, 100, &c->peak_pct);
		} else if (OPT("--cooldown-min")) {
			NEEDV;
			rc = num(a, v, 0, 1e6, &x);
			c->cooldown_s = x * 60;
		} else if (OPT("--max-per-round")) {
			NEEDV;
			rc = inum(a, v, 0, 1000000, &c->max_per_round);
		} else if (OPT("--max-per-host")) {
			NEEDV;
			rc = inum(a, v, 0, 1000000, &c->max_per_host);
			o->set_mph = true;
		} else if (OPT("--min-gain")) {
			NEEDV;
			rc = num(a, v, 0, 1e6, &c->min_gain);
		} else if (OPT("--risk-target")) {
			NEEDV;
			rc = num(a, v, 0, 1, &c->risk_target);
		} else if (OPT("--risk-horizon")) {
			NEEDV;
			rc = inum(a, v, 1, 1000, &c->risk_horizon);
		} else if (OPT("--objective")) {
			NEEDV;
			if (strcmp(v, "pack") == 0)
				c->pack = true;
			else if (strcmp(v, "spread") == 0)
				c->pack = false;
			else
				rc = bad(a, v, "need spread or pack");
		} else if (OPT("--balanciness")) {
			NEEDV;
			rc = num(a, v, 0, 100, &c->proxlb_balanciness);
		} else if (OPT("--stddev-threshold")) {
			NEEDV;
			rc = num(a, v, 0, 10, &c->stddev_threshold);
		} else if (OPT("--thr-mmt")) {
			NEEDV;
			rc = num(a, v, 1, 100, &x);
			c->thr_mmt = x / 100;
			o->cs.thr = x / 100;
		} else if (OPT("--model")) {
			NEEDV;
			if (strcmp(v, "cloudsim") == 0)
				o->cloudsim = true;
			else if (strcmp(v, "default") == 0)
				o->cloudsim = false;
			else
				rc = bad(a, v, "need default or cloudsim");
		} else if (OPT("--param")) {
			NEEDV;
			rc = num(a, v, -1e9, 1e9, &o->param);
			o->param_set = true;
			o->cs_opt = a;
		} else if (OPT("--lr-safety")) {
			NEEDV;
			rc = num(a, v, 0.001, 100, &o->cs.lr_safety);
			o->cs_opt = a;
		} else if (OPT("--mad-safety")) {
			NEEDV;
			rc = num(a, v, 0, 100, &o->cs.mad_safety);
			o->cs_opt = a;
		} else if (OPT("--iqr-safety")) {
			NEEDV;
			rc = num(a, v, 0, 100, &o->cs.iqr_safety);
			o->cs_opt = a;
		} else if (OPT("--fallback-thr")) {
			NEEDV;
			rc = num(a, v, 1, 100, &x);
			o->cs.fallback_thr = x / 100;
			o->cs_opt = a;
		} else {
			fprintf(stderr, "loadease sim: unknown option '%s' (see --help)\n", a);
			return -EINVAL;
		}
#undef OPT
#undef NEEDV
		if (rc < 0)
			return rc;
	}
	if (o->nsrc != 1) {
		fprintf(stderr, "loadease sim: give exactly one of --planetlab, --google, --trace, "
		                "--synthetic (see --help)\n");
		return -EINVAL;
	}
	o->cs.nhosts = c->nhosts;
	if (o->cs_opt && !o->cloudsim) {
		fprintf(stderr, "loadease sim: %s is for --model cloudsim\n", o->cs_opt);
		return -EINVAL;
	}
	if (o->cloudsim &&
	    (o->set_cpu || o->set_mem || o->set_net || o->set_vcpus || o->set_vmem)) {
		fprintf(stderr,
		        "loadease sim: --model cloudsim has CloudSim's hosts and VMs: "
		        "--host-cpu, --host-mem, --host-net, --vm-vcpus and --vm-mem do not "
		        "apply (--hosts does)\n");
		return -EINVAL;
	}
	if (c->k > c->n) {
		fprintf(stderr, "loadease sim: --k %d is more than --n %d\n", c->k, c->n);
		return -EINVAL;
	}
	if ((o->vms || o->vms_per_host || o->syn.nsteps != 288) && !o->synthetic) {
		fprintf(stderr, "loadease sim: --vms, --vms-per-host and --steps are for "
		                "--synthetic\n");
		return -EINVAL;
	}
	if (o->synthetic) {
		if (!o->set_cpu)
			c->host_cap[RES_CPU] = 24;
		if (!o->set_mem)
			c->host_cap[RES_MEM] = 131072;
		if (!o->set_net)
			c->host_cap[RES_NET] = 10000;
		if (!o->set_vcpus) {
			c->vm_vcpus[0] = 1;
			c->vm_vcpus[1] = 2;
			c->nvm_vcpus = 2;
		}
		if (!o->set_vmem) {
			c->vm_mem[0] = 1024;
			c->vm_mem[1] = 2048;
			c->vm_mem[2] = 4096;
			c->nvm_mem = 3;
		}
		if (!o->vms_per_host)
			o->vms_per_host = 20;
		o->syn.nvms = o->vms ? o->vms : c->nhosts * o->vms_per_host;
		o->syn.net_scale = c->host_cap[RES_NET];
		if ((long)c->nhosts * o->vms_per_host > TRACE_MAX_VMS && !o->vms) {
			fprintf(stderr, "loadease sim: %d hosts x %d VMs is more than %d VMs\n",
			        c->nhosts, o->vms_per_host, TRACE_MAX_VMS);
			return -EINVAL;
		}
	}
	return 0;
}

int sim_pick_add(const char **picked, int n, int max, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(picked[i], name) == 0) {
			fprintf(stderr, "loadease sim: --policy: '%s' twice\n", name);
			return -EINVAL;
		}
	if (n == max)
		return -EINVAL;
	picked[n] = name;
	return 0;
}

/* The policies named in s ("all" or a comma list) into ps. Count, or -EINVAL. */
static int pick_policies(const char *s, const struct policy_ops **ps, int max)
{
	char buf[256], *save = NULL, *tok;
	const char *picked[64];
	int n = 0;

	if (max > 64)
		max = 64;

	if (!*s || strcmp(s, "all") == 0) {
		for (int i = 0; policy_list[i] && n < max; i++)
			ps[n++] = policy_list[i];
		return n;
	}
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		const struct policy_ops *p = policy_find(tok);
		if (!p) {
			fprintf(
			    stderr,
			    "loadease sim: --policy: unknown policy '%s' (none, proxlb, stddev, "
			    "thr-mmt, loadease, all)\n",
			    tok);
			return -EINVAL;
		}
		if (sim_pick_add(picked, n, max, p->name) < 0)
			return -EINVAL;
		ps[n++] = p;
	}
	return n;
}

FILE *sim_open_out(const char *dir, const char *file, char *path, size_t cap)
{
	FILE *f;

	snprintf(path, cap, "%s/%s", dir, file);
	if (!(f = fopen(path, "w")))
		fprintf(stderr, "loadease sim: %s: %s\n", path, strerror(errno));
	return f;
}

struct row {
	const struct policy_ops *p;
	struct sim_summary s;
	double wall_s;
};

static void print_table(const struct sim_model *m, const struct sim_config *c,
                        const struct row *rows, int n)
{
	printf("trace %s: %d VMs on %d hosts (%g cores, %g MiB, %g Mbit/s), %d steps of %g s, "
	       "seed %llu\n",
	       m->trace->name, m->nvms, m->nhosts, c->host_cap[RES_CPU], c->host_cap[RES_MEM],
	       c->host_cap[RES_NET], m->trace->nsteps, m->step_s, (unsigned long long)c->seed);
	printf("%-9s %9s %9s %9s %10s %10s %10s %8s %10s %9s %9s %9s %8s %9s\n", "policy",
	       "overload", "cpu_over", "saturated", "pdm", "slav", "migrations", "hosts",
	       "energy_kWh", "plan_ms", "plan_max", "steps/s", "resizes", "unserved");
	for (int i = 0; i < n; i++) {
		const struct sim_summary *s = &rows[i].s;
		printf("%-9s %8.4f%% %8.4f%% %8.4f%% %10.3e %10.3e %10ld %8.1f %10.1f %9.3f %9.3f "
		       "%9.1f %8ld %8.4f%%\n",
		       rows[i].p->name, 100 * s->overload_share, 100 * s->cpu_share,
		       100 * s->sat_share, s->pdm, s->slav, s->migrations, s->hosts_in_use,
		       s->energy_kwh, s->plan_ms_mean, s->plan_ms_max,
		       rows[i].wall_s > 0 ? s->steps / rows[i].wall_s : 0, s->resizes,
		       100 * s->unserved_share);
	}
	for (int i = 0; i < n; i++)
		if (rows[i].s.refused)
			printf("note: %s proposed %ld migrations the model refused (VM already "
			       "migrating, over the overcommit, or not converging)\n",
			       rows[i].p->name, rows[i].s.refused);
}

static int write_summary(const char *dir, const struct sim_model *m, const struct row *rows, int n)
{
	char path[4096];
	FILE *f = sim_open_out(dir, "summary.csv", path, sizeof(path));

	if (!f)
		return -EIO;
	fprintf(f, "trace,policy,hosts,vms,steps,overload_share,cpu_share,sat_share,pdm,slav,"
	           "migrations,"
	           "refused,hosts_in_use,energy_kwh,downtime_s,plan_ms_mean,plan_ms_max,"
	           "steps_per_s,resizes,unserved_share\n");
	for (int i = 0; i < n; i++) {
		const struct sim_summary *s = &rows[i].s;
		fprintf(f,
		        "%s,%s,%d,%d,%d,%.6f,%.6f,%.6f,%.6e,%.6e,%ld,%ld,%.3f,%.3f,%.1f,%.3f,%.3f,"
		        "%.1f,%ld,%.6f\n",
		        m->trace->name, rows[i].p->name, m->nhosts, m->nvms, s->steps,
		        s->overload_share, s->cpu_share, s->sat_share, s->pdm, s->slav,
		        s->migrations, s->refused, s->hosts_in_use, s->energy_kwh, s->downtime_s,
		        s->plan_ms_mean, s->plan_ms_max,
		        rows[i].wall_s > 0 ? s->steps / rows[i].wall_s : 0, s->resizes,
		        s->unserved_share);
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "loadease sim: %s: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

int sim_main(int argc, char **argv)
{
	struct opts o;
	struct sim_config cfg;
	struct trace t;
	struct sim_model m;
	const struct policy_ops *ps[16];
	struct row rows[16];
	const struct cs_policy_ops *cps[16];
	char err[1024];
	int np, rc;
	bool have_model = false;

	memset(&o, 0, sizeof(o));
	memset(&t, 0, sizeof(t));
	sim_config_defaults(&cfg);
	trace_synth_defaults(&o.syn);
	cs_config_defaults(&o.cs);
	snprintf(o.policies, sizeof(o.policies), "all");
	rc = parse(argc, argv, &o, &cfg);
	if (rc == 1)
		return 0;
	if (rc < 0) {
		fprintf(stderr, "usage: loadease sim (--planetlab DIR | --google DIR | --trace "
		                "FILE.csv | --synthetic) [options]; see --help\n");
		return 2;
	}
	if (o.cloudsim) {
		if ((np = sim_cloudsim_pick(o.policies, cps, 16)) < 0)
			return 2;
		if (o.param_set && np != 1) {
			fprintf(stderr,
			        "loadease sim: --param sets one policy's parameter: give one "
			        "--policy (or use --thr-mmt, --lr-safety, --mad-safety, "
			        "--iqr-safety)\n");
			return 2;
		}
		if (o.param_set && sim_cloudsim_param(cps[0], o.param, &o.cs) < 0)
			return 2;
	} else if ((np = pick_policies(o.policies, ps, 16)) < 0) {
		return 2;
	}
	if (o.out && mkdir(o.out, 0777) < 0 && errno != EEXIST) {
		fprintf(stderr, "loadease sim: --out %s: %s\n", o.out, strerror(errno));
		return 2;
	}
	rc = o.planetlab ? trace_load_planetlab(&t, o.planetlab, err, sizeof(err))
	     : o.google  ? trace_load_google(&t, o.google, err, sizeof(err))
	     : o.csv     ? trace_load_csv(&t, o.csv, err, sizeof(err))
	                 : trace_synthetic(&t, &o.syn, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "loadease sim: %s\n", err);
		return 1;
	}
	if (o.name)
		snprintf(t.name, sizeof(t.name), "%s", o.name);
	if (o.cloudsim) {
		/* CloudSim starts every migration of a decision at once, with no
		 * per-host limit: loadease gets none either unless asked */
		if (!o.set_mph)
			cfg.max_per_host = 0;
		o.cs.le = &cfg;
		rc = sim_cloudsim(&t, &o.cs, cps, np, o.out, o.quiet);
		goto out;
	}
	if (model_init(&m, &cfg, &t, err, sizeof(err)) < 0) {
		fprintf(stderr, "loadease sim: %s: %s\n", t.name, err);
		rc = 1;
		goto out;
	}
	have_model = true;
	if (model_place(&m, err, sizeof(err)) < 0) {
		fprintf(stderr, "loadease sim: %s: %s\n", t.name, err);
		rc = 1;
		goto out;
	}
	if (!o.quiet)
		fprintf(stderr, "sim: %s: %d VMs placed on %d hosts; running %d policies\n", t.name,
		        m.nvms, m.nhosts, np);
	for (int i = 0; i < np; i++) {
		FILE *f = NULL;
		char file[128], path[4096];
		rows[i].p = ps[i];
		if (o.out) {
			snprintf(file, sizeof(file), "steps-%s.csv", ps[i]->name);
			if (!(f = sim_open_out(o.out, file, path, sizeof(path)))) {
				rc = 1;
				goto out;
			}
			fputs(SIM_STEPS_HEADER, f);
		}
		rc = sim_run(&m, ps[i], f, !o.quiet, &rows[i].s, &rows[i].wall_s, err, sizeof(err));
		if (rc < 0)
			fprintf(stderr, "loadease sim: %s: %s\n", t.name, err);
		if (f && fclose(f) != 0 && rc == 0) {
			fprintf(stderr, "loadease sim: %s: %s\n", path, strerror(errno));
			rc = -EIO;
		}
		if (rc < 0) {
			rc = 1;
			goto out;
		}
	}
	print_table(&m, &cfg, rows, np);
	if (o.out && write_summary(o.out, &m, rows, np) < 0) {
		rc = 1;
		goto out;
	}
	for (int i = 0; i < np; i++) {
		const struct sim_summary *s = &rows[i].s;
		printf(
		    "RESULT sim trace=%s policy=%s hosts=%d vms=%d overload_share=%.6f pdm=%.6g "
		    "slav=%.6g migrations=%ld plan_ms_mean=%.3f plan_ms_max=%.3f "
		    "hosts_in_use=%.1f cpu_share=%.6f sat_share=%.6f steps_per_s=%.1f resizes=%ld "
		    "unserved_share=%.6f\n",
		    t.name, ps[i]->name, m.nhosts, m.nvms, s->overload_share, s->pdm, s->slav,
		    s->migrations, s->plan_ms_mean, s->plan_ms_max, s->hosts_in_use, s->cpu_share,
		    s->sat_share, rows[i].wall_s > 0 ? s->steps / rows[i].wall_s : 0, s->resizes,
		    s->unserved_share);
	}
	rc = 0;
out:
	if (have_model)
		model_free(&m);
	trace_free(&t);
	return rc;
}
