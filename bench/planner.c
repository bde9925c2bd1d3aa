/* bench/planner.c - time and peak memory of plan_compute() and place_compute()
 * on generated clusters of 100, 1,000 and 10,000 hosts with 20 VMs each and
 * 10 % of the hosts hot, next to a naive reference planner in the same run.
 *
 * Each size runs in a fresh child process pinned to CPU 0, so its peak RSS
 * (VmHWM) is its own and the timing is one core's. Times are wall clock
 * (CLOCK_MONOTONIC), best of --runs runs.
 *
 *   plan_ms        plan_compute, max_per_round = max_per_host = 0 (unlimited:
 *                  every hotspot is worked on, the full work)
 *   plan_dflt_ms   plan_compute with the default options (4 per round, 2 per host)
 *   plan_rules_ms  unlimited, on the same cluster with rules added: 10 % of the
 *                  VMs in affinity pairs, 10 % in anti-affinity groups, 5 % pinned
 *   pack_ms        unlimited, objective pack: every host that can be emptied is
 *                  (consolidate moves) after relief and prevention
 *   resize_ms      unlimited, with one VM in five resizable to twice its
 *                  vCPUs and memory (resize in place, before any move)
 *   place_us       place_compute, mean over --places new VMs
 *   naive_plan_ms  the reference below, same cluster, unlimited
 *
 * The naive reference: hot hosts by volume, hottest first; on each, its VMs
 * by VSR; each VM tries EVERY host (a full scan, no sorted candidates) and
 * goes to the feasible one with the lowest volume after the move, until the
 * host is relieved. Feasible = up, not excluded, under threshold and headroom
 * on every resource the VM uses, within CPU and memory overcommit. It omits
 * the rules (affinity, anti-affinity, pins, exclusions of VMs, cooldown,
 * limits, minimum gain) and swaps; the generated cluster has none of them.
 *
 * Goal: plan_ms under 50 ms at 10,000 hosts; a miss prints MISSED, and with
 * --check-goals exits 3.
 *
 * Last lines, one per size:
 * RESULT planner hosts=<n> vms=<m> plan_ms=<x> prevent_moves=<p> pack_ms=<k>
 *   consolidate_moves=<c> resize_ms=<r> resizes=<s> place_us=<y> naive_plan_ms=<z>
 *   peak_rss_kib=<r>
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/plan.h"

#define VMS_PER_HOST   20
#define HOT_FRACTION   0.10
#define RISKY_FRACTION 0.10 /* of the hosts not hot: near the threshold */
#define SEED           0x9e3779b97f4a7c15ULL
#define GOAL_HOSTS     10000
#define GOAL_PLAN_MS   50.0

/* --only: measure one part alone (for a profiler); NULL = all */
static const char *only;

static bool want(const char *part)
{
	return !only || !strcmp(only, part);
}

struct row {
	int hosts, vms, hot;
	double plan_ms, plan_dflt_ms, plan_rules_ms, place_us, naive_ms, pack_ms, resize_ms;
	int consolidate, resizes;
	int moves, moves_dflt, moves_rules, unresolved, naive_moves, naive_unresolved;
	int prevent; /* of moves: PLAN_PREVENT actions */
	long rss_kib;
	int ok;
};

/* ---- generator ------------------------------------------------------------ */

static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static double urand(uint64_t *s)
{
	return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

static double uniform(uint64_t *s, double lo, double hi)
{
	return lo + (hi - lo) * urand(s);
}

static int irand(uint64_t *s, int n)
{
	return (int)(rnd(s) % (uint64_t)n);
}

/* A VM of 1-8 vCPUs and 1-32 GiB (at most about twice the host's fair share
 * of memory, so 20 fit), its demand not yet scaled to the host's load. */
static void gen_vm(uint64_t *s, struct cl_vm *v, int id, int host, double host_mem_mib,
                   double *alloc_mem)
{
	int max_gib = (int)(host_mem_mib / 1024 * 0.9 / VMS_PER_HOST * 2);

	if (max_gib > 32)
		max_gib = 32;
	if (max_gib < 1)
		max_gib = 1;
	cluster_vm_defaults(v);
	snprintf(v->id, sizeof(v->id), "vm%d", id);
	v->host = host;
	v->vcpus = 1 + irand(s, 8);
	v->mem_mib = 1024.0 * (1 + irand(s, max_gib));
	if (alloc_mem && *alloc_mem + v->mem_mib > 0.95 * host_mem_mib)
		v->mem_mib = 1024;
	if (alloc_mem)
		*alloc_mem += v->mem_mib;
	v->demand[RES_CPU] = v->vcpus * uniform(s, 0.1, 1);
	v->demand[RES_MEM] = v->mem_mib * uniform(s, 0.3, 0.8);
	v->demand[RES_NET] = uniform(s, 5, 200);
	v->dirty_mbit = uniform(s, 0, 200);
}

static const int cores[] = {32, 40, 48, 56, 64};
static const int mem_gib[] = {128, 192, 256, 384, 512};

static int gen_cluster(struct cluster *c, int nhosts, uint64_t *s)
{
	int hot = 0;

	c->nhosts = nhosts;
	c->nvms = nhosts * VMS_PER_HOST;
	c->hosts = calloc((size_t)nhosts, sizeof(*c->hosts));
	c->vms = calloc((size_t)c->nvms, sizeof(*c->vms));
	if (!c->hosts || !c->vms)
		return -ENOMEM;
	for (int h = 0; h < nhosts; h++) {
		struct cl_host *H = &c->hosts[h];
		struct cl_vm *vms = &c->vms[h * VMS_PER_HOST];
		bool is_hot = urand(s) < HOT_FRACTION;
		double alloc = 0, target, nonvm, sum = 0;

		cluster_host_defaults(H);
		snprintf(H->id, sizeof(H->id), "host%d", h);
		H->cap[RES_CPU] = cores[irand(s, 5)];
		H->cap[RES_MEM] = 1024.0 * mem_gib[irand(s, 5)];
		H->cap[RES_NET] = 10000;
		for (int i = 0; i < VMS_PER_HOST; i++)
			gen_vm(s, &vms[i], h * VMS_PER_HOST + i, h, H->cap[RES_MEM], &alloc);
		/* cpu: a hot host runs at 80-95 %, one in ten of the others at 68-74 %
		 * (at risk, for prevention), the rest at 20-60 % */
		target = is_hot                      ? uniform(s, 0.80, 0.95)
		         : urand(s) < RISKY_FRACTION ? uniform(s, 0.68, 0.74)
		                                     : uniform(s, 0.20, 0.60);
		nonvm = 0.02 * H->cap[RES_CPU];
		for (int i = 0; i < VMS_PER_HOST; i++)
			sum += vms[i].demand[RES_CPU];
		for (int i = 0; i < VMS_PER_HOST; i++)
			vms[i].demand[RES_CPU] *= (target * H->cap[RES_CPU] - nonvm) / sum;
		for (int r = 0; r < RES_N; r++) {
			H->load[r] = r == RES_CPU ? nonvm : 0;
			for (int i = 0; i < VMS_PER_HOST; i++)
				H->load[r] += vms[i].demand[r];
			H->hot[r] = H->load[r] > H->thr[r] * H->cap[r];
		}
		/* risk (plan.h phase 5): each VM's forecast is its demand with a
		 * spread of 30 % of it, moving with its host; the hosts near their
		 * threshold are at risk and get prevention's search */
		H->risk_known = true;
		for (int i = 0; i < VMS_PER_HOST; i++) {
			struct cl_vm *v = &vms[i];
			v->risk_known = true;
			for (int r = 0; r < RES_N; r++) {
				v->fc[r] = v->demand[r];
				v->ms[r] = v->cov[r] = 0.09 * v->demand[r] * v->demand[r];
				H->ms[r] += v->ms[r];
			}
		}
		for (int r = 0; r < RES_N; r++)
			H->fc[r] = H->load[r];
		hot += H->hot[RES_CPU] || H->hot[RES_MEM] || H->hot[RES_NET];
	}
	return hot;
}

/* Adds rules to a copy: affinity pairs (two VMs of a host), anti-affinity
 * groups of 4, pins to 4 hosts. */
static void add_rules(struct cluster *c, int *pins, uint64_t *s)
{
	int ngroups = 0;

	for (int v = 0; v + 1 < c->nvms; v += 2)
		if (c->vms[v].host == c->vms[v + 1].host && urand(s) < 0.10) {
			c->vms[v].group = ngroups;
			c->vms[v + 1].group = ngroups++;
		}
	for (int v = 0; v < c->nvms; v++) {
		if (urand(s) < 0.10)
			c->vms[v].anti_group = irand(s, c->nvms / 40 + 1);
		if (urand(s) < 0.05) {
			for (int i = 0; i < 4; i++)
				pins[v * 4 + i] = i ? irand(s, c->nhosts) : c->vms[v].host;
			c->vms[v].pin = &pins[v * 4];
			c->vms[v].npin = 4;
		}
	}
}

/* ---- the naive reference --------------------------------------------------- */

struct naive {
	double (*load)[RES_N], *acpu, *amem;
	int *first, *list, *order;
	double *key;
};

static double vol_of(const struct cl_host *H, const double load[RES_N])
{
	double u[RES_N];

	for (int r = 0; r < RES_N; r++)
		u[r] = H->cap[r] > 0 ? load[r] / H->cap[r] : 0;
	return cluster_volume(u);
}

static bool naive_fits(const struct cl_host *H, const double load[RES_N], double acpu, double amem,
                       const struct cl_vm *vm)
{
	if (H->state != HOST_UP || H->excluded)
		return false;
	for (int r = 0; r < RES_N; r++) {
		double limit = H->cap[r] * (1 - H->headroom[r]);
		if (H->thr[r] * H->cap[r] < limit)
			limit = H->thr[r] * H->cap[r];
		if (vm->demand[r] > 1e-9 && load[r] + vm->demand[r] > limit + 1e-9)
			return false;
	}
	return acpu + vm->vcpus <= H->cap[RES_CPU] * H->overcommit_cpu + 1e-9 &&
	       amem + vm->mem_mib <= H->cap[RES_MEM] * H->overcommit_mem + 1e-9;
}

static bool naive_relieved(const struct cl_host *H, const double load[RES_N])
{
	for (int r = 0; r < RES_N; r++)
		if (H->hot[r] && load[r] > H->thr[r] * H->cap[r] + 1e-9)
			return false;
	return true;
}

static void sort_desc(int *idx, double *key, int n)
{
	for (int i = 1; i < n; i++) {
		int x = idx[i], j = i - 1;
		double k = key[i];
		while (j >= 0 && (key[j] < k || (key[j] == k && idx[j] > x))) {
			idx[j + 1] = idx[j];
			key[j + 1] = key[j];
			j--;
		}
		idx[j + 1] = x;
		key[j + 1] = k;
	}
}

/* Returns the number of moves; *unresolved gets the hot hosts left hot. */
static int naive_plan(const struct cluster *c, struct naive *w, int *unresolved)
{
	int H = c->nhosts, nhot = 0, moves = 0;
	int *hot = w->order;

	*unresolved = 0;
	memset(w->acpu, 0, sizeof(double) * (size_t)H);
	memset(w->amem, 0, sizeof(double) * (size_t)H);
	for (int h = 0; h < H; h++) {
		memcpy(w->load[h], c->hosts[h].load, sizeof(w->load[h]));
		w->first[h] = -1;
	}
	for (int v = c->nvms - 1; v >= 0; v--) { /* per-host lists, index order */
		int h = c->vms[v].host;
		w->list[v] = w->first[h];
		w->first[h] = v;
		w->acpu[h] += c->vms[v].vcpus;
		w->amem[h] += c->vms[v].mem_mib;
	}
	for (int h = 0; h < H; h++) {
		const struct cl_host *X = &c->hosts[h];
		if (X->state == HOST_UP && !X->excluded && !naive_relieved(X, w->load[h])) {
			w->key[nhot] = vol_of(X, w->load[h]);
			hot[nhot++] = h;
		}
	}
	sort_desc(hot, w->key, nhot);
	for (int i = 0; i < nhot; i++) {
		int h = hot[i], n = 0, vm_order[VMS_PER_HOST * 4];
		double vkey[VMS_PER_HOST * 4];
		const struct cl_host *S = &c->hosts[h];
		for (int v = w->first[h]; v >= 0 && n < VMS_PER_HOST * 4; v = w->list[v]) {
			double u[RES_N];
			for (int r = 0; r < RES_N; r++)
				u[r] = S->cap[r] > 0 ? c->vms[v].demand[r] / S->cap[r] : 0;
			vkey[n] = cluster_volume(u) / c->vms[v].mem_mib;
			vm_order[n++] = v;
		}
		sort_desc(vm_order, vkey, n);
		for (int k = 0; k < n && !naive_relieved(S, w->load[h]); k++) {
			const struct cl_vm *vm = &c->vms[vm_order[k]];
			int best = -1;
			double best_vol = 0;
			for (int t = 0; t < H; t++) { /* every host */
				double after[RES_N], vol;
				if (t == h || !naive_fits(&c->hosts[t], w->load[t], w->acpu[t],
				                          w->amem[t], vm))
					continue;
				for (int r = 0; r < RES_N; r++)
					after[r] = w->load[t][r] + vm->demand[r];
				vol = vol_of(&c->hosts[t], after);
				if (best < 0 || vol < best_vol) {
					best = t;
					best_vol = vol;
				}
			}
			if (best < 0)
				continue;
			for (int r = 0; r < RES_N; r++) {
				w->load[h][r] -= vm->demand[r];
				w->load[best][r] += vm->demand[r];
			}
			w->acpu[h] -= vm->vcpus;
			w->amem[h] -= vm->mem_mib;
			w->acpu[best] += vm->vcpus;
			w->amem[best] += vm->mem_mib;
			moves++;
		}
		if (!naive_relieved(S, w->load[h]))
			(*unresolved)++;
	}
	return moves;
}

/* ---- measuring ------------------------------------------------------------ */

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long vm_hwm_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Best of `runs` plan_compute() calls; the last result stays in *out. */
static double time_plan(const struct cluster *c, const struct plan_opts *o, int runs,
                        struct plan_result *out)
{
	double best = -1;

	for (int i = 0; i < runs; i++) {
		double t0 = now_ms(), t;
		if (i)
			plan_result_free(out);
		if (plan_compute(c, o, out) < 0)
			return -1;
		t = now_ms() - t0;
		if (best < 0 || t < best)
			best = t;
	}
	return best;
}

static int measure(int nhosts, int runs, int places, struct row *row)
{
	struct cluster c, rc;
	struct plan_opts unl, dflt;
	struct plan_result res;
	struct naive w;
	uint64_t s = SEED ^ (uint64_t)nhosts;
	int *pins;
	double t0, best;

	memset(row, 0, sizeof(*row));
	row->hosts = nhosts;
	row->hot = gen_cluster(&c, nhosts, &s);
	if (row->hot < 0)
		return -ENOMEM;
	row->vms = c.nvms;
	plan_opts_defaults(&dflt);
	dflt.link_mbit = 10000;
	dflt.now_ms = 1000000;
	unl = dflt;
	unl.max_per_round = 0;
	unl.max_per_host = 0;

	if (want("plan")) {
		row->plan_ms = time_plan(&c, &unl, runs, &res);
		row->moves = res.nactions;
		row->unresolved = res.nunresolved;
		for (int i = 0; i < res.nactions; i++)
			row->prevent += res.actions[i].kind == PLAN_PREVENT;
		plan_result_free(&res);
	}
	if (want("default")) {
		row->plan_dflt_ms = time_plan(&c, &dflt, runs, &res);
		row->moves_dflt = res.nactions;
		plan_result_free(&res);
	}
	if (want("pack")) {
		struct plan_opts pk = unl;
		pk.objective = PLAN_PACK;
		row->pack_ms = time_plan(&c, &pk, runs, &res);
		for (int i = 0; i < res.nactions; i++)
			row->consolidate += res.actions[i].kind == PLAN_CONSOLIDATE;
		plan_result_free(&res);
	}
	if (want("resize")) {
		for (int v = 0; v < c.nvms; v += 5) {
			c.vms[v].max_vcpus = 2 * c.vms[v].vcpus;
			c.vms[v].max_mem_mib = 2 * c.vms[v].mem_mib;
		}
		row->resize_ms = time_plan(&c, &unl, runs, &res);
		for (int i = 0; i < res.nactions; i++)
			row->resizes += res.actions[i].kind == PLAN_RESIZE;
		plan_result_free(&res);
		for (int v = 0; v < c.nvms; v += 5)
			c.vms[v].max_vcpus = c.vms[v].max_mem_mib = 0;
	}

	/* placement: new VMs of the same kind, mean time */
	if (want("place")) {
		struct cl_vm *nv = calloc((size_t)places, sizeof(*nv));
		struct place_result pr;
		if (!nv)
			return -ENOMEM;
		for (int i = 0; i < places; i++)
			gen_vm(&s, &nv[i], c.nvms + i, -1, 262144, NULL);
		t0 = now_ms();
		for (int i = 0; i < places; i++) {
			if (place_compute(&c, &nv[i], &pr) < 0)
				return -ENOMEM;
			place_result_free(&pr);
		}
		row->place_us = (now_ms() - t0) * 1e3 / places;
		free(nv);
	}

	/* the naive reference */
	w.load = calloc((size_t)nhosts, sizeof(*w.load));
	w.acpu = calloc((size_t)nhosts, sizeof(double));
	w.amem = calloc((size_t)nhosts, sizeof(double));
	w.first = calloc((size_t)nhosts, sizeof(int));
	w.order = calloc((size_t)nhosts, sizeof(int));
	w.key = calloc((size_t)nhosts, sizeof(double));
	w.list = calloc((size_t)c.nvms, sizeof(int));
	if (!w.load || !w.acpu || !w.amem || !w.first || !w.order || !w.key || !w.list)
		return -ENOMEM;
	best = -1;
	for (int i = 0; want("naive") && i < runs; i++) {
		double t;
		t0 = now_ms();
		row->naive_moves = naive_plan(&c, &w, &row->naive_unresolved);
		t = now_ms() - t0;
		if (best < 0 || t < best)
			best = t;
	}
	row->naive_ms = best;

	/* the same cluster with rules */
	rc = c;
	rc.vms = malloc(sizeof(*rc.vms) * (size_t)c.nvms);
	pins = malloc(sizeof(int) * 4 * (size_t)c.nvms);
	if (!rc.vms || !pins)
		return -ENOMEM;
	memcpy(rc.vms, c.vms, sizeof(*rc.vms) * (size_t)c.nvms);
	s = SEED ^ ((uint64_t)nhosts << 32); /* the rules do not depend on --places */
	add_rules(&rc, pins, &s);
	if (want("rules")) {
		row->plan_rules_ms = time_plan(&rc, &unl, runs, &res);
		row->moves_rules = res.nactions;
		plan_result_free(&res);
	}

	row->rss_kib = vm_hwm_kib();
	row->ok = 1;
	return 0;
}

/* Runs one size in a child pinned to CPU 0; its row comes back by a pipe. */
static int run_child(int nhosts, int runs, int places, struct row *row)
{
	int fd[2], status;
	pid_t pid;

	if (pipe(fd) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		cpu_set_t set;
		struct row r;
		close(fd[0]);
		CPU_ZERO(&set);
		CPU_SET(0, &set);
		sched_setaffinity(0, sizeof(set), &set);
		if (measure(nhosts, runs, places, &r) < 0)
			r.ok = 0;
		_exit(write(fd[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
	}
	close(fd[1]);
	memset(row, 0, sizeof(*row));
	if (read(fd[0], row, sizeof(*row)) != sizeof(*row))
		row->ok = 0;
	close(fd[0]);
	waitpid(pid, &status, 0);
	return row->ok && WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -EIO;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
	        "usage: %s [--sizes 100,1000,10000] [--runs 5] [--places 1000] [--check-goals]\n"
	        "          [--only plan|default|pack|resize|rules|place|naive]   (one part, for a "
	        "profiler)\n",
	        argv0);
}

int main(int argc, char **argv)
{
	int sizes[16] = {100, 1000, 10000}, nsizes = 3, runs = 5, places = 1000, missed = 0;
	bool check_goals = false;
	struct row rows[16];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
			char *p = argv[++i];
			nsizes = 0;
			while (*p && nsizes < 16) {
				sizes[nsizes++] = (int)strtol(p, &p, 10);
				if (*p == ',')
					p++;
			}
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--check-goals")) {
			check_goals = true;
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--places") && i + 1 < argc) {
			places = atoi(argv[++i]);
		} else {
			usage(argv[0]);
			return 2;
		}
	}
	if (runs < 1 || places < 1 || nsizes < 1) {
		usage(argv[0]);
		return 2;
	}
	for (int i = 0; i < nsizes; i++) {
		if (sizes[i] < 1 || run_child(sizes[i], runs, places, &rows[i]) < 0) {
			fprintf(stderr, "bench_planner: size %d failed\n", sizes[i]);
			return 1;
		}
	}
	printf("planner benchmark: %d VMs per host, %.0f %% of hosts hot, one core, best of %d "
	       "runs, placement mean of %d\n",
	       VMS_PER_HOST, HOT_FRACTION * 100, runs, places);
	printf("%7s %8s %5s | %9s %6s %6s %6s | %9s %6s | %9s %6s | %9s %6s | %9s %6s | %9s %6s "
	       "%6s | %9s | %9s\n",
	       "hosts", "vms", "hot", "plan_ms", "moves", "prev", "unres", "dflt_ms", "moves",
	       "rules_ms", "moves", "pack_ms", "cons", "resize_ms", "rsz", "naive_ms", "moves",
	       "unres", "place_us", "rss_kib");
	for (int i = 0; i < nsizes; i++) {
		const struct row *r = &rows[i];
		printf(
		    "%7d %8d %5d | %9.3f %6d %6d %6d | %9.3f %6d | %9.3f %6d | %9.3f %6d | %9.3f "
		    "%6d | %9.3f %6d %6d | %9.1f | %9ld\n",
		    r->hosts, r->vms, r->hot, r->plan_ms, r->moves, r->prevent, r->unresolved,
		    r->plan_dflt_ms, r->moves_dflt, r->plan_rules_ms, r->moves_rules, r->pack_ms,
		    r->consolidate, r->resize_ms, r->resizes, r->naive_ms, r->naive_moves,
		    r->naive_unresolved, r->place_us, r->rss_kib);
	}
	for (int i = 0; i < nsizes; i++) {
		if (rows[i].hosts != GOAL_HOSTS || only)
			continue;
		missed = rows[i].plan_ms >= GOAL_PLAN_MS;
		printf("goal: plan under %.0f ms at %d hosts / %d VMs on one core: %.3f ms, %s\n",
		       GOAL_PLAN_MS, rows[i].hosts, rows[i].vms, rows[i].plan_ms,
		       missed ? "MISSED" : "met");
	}
	for (int i = 0; i < nsizes; i++)
		printf("RESULT planner hosts=%d vms=%d plan_ms=%.3f prevent_moves=%d pack_ms=%.3f "
		       "consolidate_moves=%d resize_ms=%.3f resizes=%d place_us=%.1f "
		       "naive_plan_ms=%.3f peak_rss_kib=%ld\n",
		       rows[i].hosts, rows[i].vms, rows[i].plan_ms, rows[i].prevent,
		       rows[i].pack_ms, rows[i].consolidate, rows[i].resize_ms, rows[i].resizes,
		       rows[i].place_us, rows[i].naive_ms, rows[i].rss_kib);
	return check_goals && missed ? 3 : 0;
}
