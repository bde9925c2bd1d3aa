/* test_plan_prop.c - randomised property tests of plan_compute().
 *
 * Thousands of clusters from a fixed-seed xorshift generator (2-40 hosts,
 * 0-30 VMs each, random capacities, loads = the VMs' demands + some non-VM
 * load, hot flags where a load is over its threshold, random rules, states,
 * limits and options). Each plan is applied, in order, to a copy of the
 * cluster and checked against the properties the planner promises (see
 * check_plan()). LE_PROP_SEED and LE_PROP_N in the environment change the
 * seed and the number of clusters for longer runs.
 *
 * Tests named test_bug_* are regressions of planner bugs these properties
 * found.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/plan.h"

#define MAXH      40
#define MAXPERH   30
#define MAXV      (MAXH * MAXPERH)
#define NOW_MS    1000000000LL
#define N_DEFAULT 5000
#define TOL       1e-6

/* ---- generator ------------------------------------------------------------ */

static uint64_t rnd_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static double urand(uint64_t *s) /* [0, 1) */
{
	return (double)(rnd_next(s) >> 11) / 9007199254740992.0;
}

static double uniform(uint64_t *s, double lo, double hi)
{
	return lo + (hi - lo) * urand(s);
}

static int irand(uint64_t *s, int n) /* [0, n) */
{
	return (int)(rnd_next(s) % (uint64_t)n);
}

static bool chance(uint64_t *s, double p)
{
	return urand(s) < p;
}

struct gen {
	struct cl_host hosts[MAXH];
	struct cl_vm vms[MAXV];
	int pins[MAXV][3];
	struct cluster c;
	struct plan_opts o;
};

static void gen_host(struct gen *g, uint64_t *s, int h)
{
	struct cl_host *H = &g->hosts[h];

	cluster_host_defaults(H);
	snprintf(H->id, sizeof(H->id), "h%d", h);
	H->cap[RES_CPU] = 8 + irand(s, 57);
	H->cap[RES_MEM] = 1024.0 * (16 + irand(s, 241));
	H->cap[RES_NET] = chance(s, 0.5) ? 1000 : 10000;
	if (chance(s, 0.5))
		for (int r = 0; r < RES_N; r++)
			H->thr[r] = uniform(s, 0.6, 0.9);
	if (chance(s, 0.2))
		for (int r = 0; r < RES_N; r++)
			H->headroom[r] = chance(s, 0.5) ? uniform(s, 0, 0.3) : 0;
	H->overcommit_cpu = uniform(s, 1, 4);
	H->overcommit_mem = chance(s, 0.7) ? 1 : uniform(s, 1, 1.5);
	H->state = chance(s, 0.06) ? HOST_DOWN : chance(s, 0.06) ? HOST_MAINTENANCE : HOST_UP;
	H->excluded = chance(s, 0.05);
	H->inflight = chance(s, 0.15) ? irand(s, 3) : 0;
}

static void gen_vm(struct gen *g, uint64_t *s, int h, int zmask)
{
	int v = g->c.nvms++;
	struct cl_vm *vm = &g->vms[v];

	cluster_vm_defaults(vm);
	snprintf(vm->id, sizeof(vm->id), "v%d", v);
	vm->host = h;
	vm->vcpus = 1 + irand(s, 8);
	vm->mem_mib = 512.0 * (1 + irand(s, 64));
	vm->demand[RES_CPU] = vm->vcpus * uniform(s, 0.05, 1);
	vm->demand[RES_MEM] = vm->mem_mib * uniform(s, 0.1, 1);
	vm->demand[RES_NET] = uniform(s, 1, 300);
	for (int r = 0; r < RES_N; r++)
		if ((zmask & (1 << r)) && chance(s, 0.2))
			vm->demand[r] = 0;
	vm->dirty_mbit = chance(s, 0.2) ? uniform(s, 0, 1100) : 0;
	vm->excluded = chance(s, 0.04);
	vm->migrating = chance(s, 0.04);
	if (chance(s, 0.1))
		vm->last_moved_ms = NOW_MS - irand(s, 600000);
}

/* Scales the VMs' demands on host h so that its load of resource r is a
 * chosen utilisation: a quarter of the hosts run hot on one resource. */
static void gen_loads(struct gen *g, uint64_t *s, int h, int first_vm)
{
	struct cl_host *H = &g->hosts[h];
	int hotres = chance(s, 0.25) ? irand(s, RES_N) : -1;

	for (int r = 0; r < RES_N; r++) {
		double t = r == hotres ? uniform(s, 0.7, 1.1) : uniform(s, 0.02, 0.7);
		double nonvm = uniform(s, 0, 0.05) * H->cap[r], sum = 0, scale;
		for (int v = first_vm; v < g->c.nvms; v++)
			sum += g->vms[v].demand[r];
		if (sum <= 0) {
			H->load[r] = t * H->cap[r];
			continue;
		}
		scale = t * H->cap[r] > nonvm ? (t * H->cap[r] - nonvm) / sum : 0;
		H->load[r] = nonvm;
		for (int v = first_vm; v < g->c.nvms; v++) {
			g->vms[v].demand[r] *= scale;
			H->load[r] += g->vms[v].demand[r];
		}
	}
}

static void gen_rules(struct gen *g, uint64_t *s)
{
	int nh = g->c.nhosts, nv = g->c.nvms, ngroups = 0, nanti = irand(s, 4);

	/* affinity groups, mostly of VMs that share a host */
	for (int v = 0; v + 2 < nv; v++) {
		if (!chance(s, 0.05))
			continue;
		int n = 2 + irand(s, 2);
		for (int w = v; w < nv && n > 0; w++)
			if (g->vms[w].host == g->vms[v].host && g->vms[w].group < 0) {
				g->vms[w].group = ngroups;
				n--;
			}
		if (chance(s, 0.2)) /* and one member elsewhere */
			g->vms[irand(s, nv)].group = ngroups;
		ngroups++;
	}
	for (int v = 0; v < nv; v++) {
		struct cl_vm *vm = &g->vms[v];
		if (nanti && chance(s, 0.1))
			vm->anti_group = irand(s, nanti);
		if (chance(s, 0.08)) {
			vm->npin = 1 + irand(s, 3);
			for (int i = 0; i < vm->npin; i++)
				g->pins[v][i] = irand(s, nh);
			if (chance(s, 0.3))
				g->pins[v][0] = vm->host;
			if (chance(s, 0.3)) { /* pinned where it is: not movable */
				vm->npin = 1;
				g->pins[v][0] = vm->host;
			}
			vm->pin = g->pins[v];
		}
	}
}

/* zmask: resources on which VMs may have no demand; such VMs may land on a
 * host hot on that resource (test_bug_vmbuf_overflow in test_plan.c). */
static void gen_cluster(struct gen *g, uint64_t *s)
{
	int zmask = chance(s, 0.3) ? 1 + irand(s, 7) : 0;

	memset(g, 0, sizeof(*g));
	g->c.hosts = g->hosts;
	g->c.vms = g->vms;
	g->c.nhosts = 2 + irand(s, MAXH - 1);
	for (int h = 0; h < g->c.nhosts; h++) {
		int first = g->c.nvms, n = irand(s, MAXPERH + 1);
		gen_host(g, s, h);
		for (int i = 0; i < n; i++)
			gen_vm(g, s, h, zmask);
		gen_loads(g, s, h, first);
		for (int r = 0; r < RES_N; r++)
			g->hosts[h].hot[r] =
			    g->hosts[h].load[r] > g->hosts[h].thr[r] * g->hosts[h].cap[r] &&
			    chance(s, 0.9);
	}
	gen_rules(g, s);
	plan_opts_defaults(&g->o);
	g->o.now_ms = NOW_MS;
	g->o.max_per_round = chance(s, 0.4) ? 0 : 1 + irand(s, 8);
	g->o.max_per_host = chance(s, 0.4) ? 0 : 1 + irand(s, 3);
	g->o.cooldown_ms = chance(s, 0.5) ? 300000 : irand(s, 600000);
	g->o.link_mbit = chance(s, 0.5) ? 1000 : 10000;
	g->o.min_gain = chance(s, 0.3) ? 0 : chance(s, 0.7) ? 0.0005 : uniform(s, 0, 0.05);
	g->o.swaps = chance(s, 0.8);
}

/* ---- checking ------------------------------------------------------------- */

enum {
	V_SAFETY = 1,  /* a property the planner keeps today */
	V_MAXVOL = 2,  /* Regression (fixed): the maximum volume rose */
	V_EXCLSRC = 4, /* Regression (fixed): an excluded host in maintenance was evacuated */
};

struct world {
	double load[MAXH][RES_N], acpu[MAXH], amem[MAXH];
	int vh[MAXV], moved[MAXV], touched[MAXH];
};

struct check {
	const struct gen *g;
	const struct plan_result *r;
	struct world w;
	int flags;
	char first[300];
};

static void violation(struct check *k, int flag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void violation(struct check *k, int flag, const char *fmt, ...)
{
	va_list ap;

	if (!(k->flags & flag) && (flag == V_SAFETY || !k->first[0])) {
		va_start(ap, fmt);
		vsnprintf(k->first, sizeof(k->first), fmt, ap);
		va_end(ap);
	}
	k->flags |= flag;
}

static double vol_of(const struct check *k, int h)
{
	const struct cl_host *H = &k->g->hosts[h];
	double u[RES_N];

	for (int r = 0; r < RES_N; r++)
		u[r] = H->cap[r] > 0 ? k->w.load[h][r] / H->cap[r] : 0;
	return cluster_volume(u);
}

static bool vol_eq(double a, double b)
{
	return fabs(a - b) <= TOL * (1 + fabs(b));
}

static double max_vol(const struct check *k, bool up_only)
{
	double m = 0;

	for (int h = 0; h < k->g->c.nhosts; h++) {
		enum host_state st = k->g->hosts[h].state;
		if (st == HOST_DOWN || (up_only && st != HOST_UP))
			continue;
		if (vol_of(k, h) > m)
			m = vol_of(k, h);
	}
	return m;
}

static double limit_of(const struct cl_host *H, int r)
{
	double l = H->cap[r] * (1 - H->headroom[r]);

	return H->thr[r] * H->cap[r] < l ? H->thr[r] * H->cap[r] : l;
}

static bool cooling(const struct gen *g, const struct cl_vm *vm)
{
	return vm->last_moved_ms > 0 && g->o.now_ms - vm->last_moved_ms < g->o.cooldown_ms;
}

static void apply(struct check *k, int v, int from, int to)
{
	const struct cl_vm *vm = &k->g->vms[v];

	for (int r = 0; r < RES_N; r++) {
		k->w.load[from][r] -= vm->demand[r];
		if (k->w.load[from][r] < 0)
			k->w.load[from][r] = 0;
		k->w.load[to][r] += vm->demand[r];
	}
	k->w.acpu[from] -= vm->vcpus;
	k->w.amem[from] -= vm->mem_mib;
	k->w.acpu[to] += vm->vcpus;
	k->w.amem[to] += vm->mem_mib;
	k->w.vh[v] = to;
	k->w.moved[v]++;
	k->w.touched[from]++;
	k->w.touched[to]++;
}

/* One action's own checks (not its effect); false when its indexes are bad. */
static bool check_action(struct check *k, int i)
{
	const struct gen *g = k->g;
	const struct plan_action *a = &k->r->actions[i];
	const struct cl_vm *vm;
	const struct cl_host *S, *T;

	if (a->vm < 0 || a->vm >= g->c.nvms || a->from < 0 || a->from >= g->c.nhosts || a->to < 0 ||
	    a->to >= g->c.nhosts || a->to == a->from) {
		violation(k, V_SAFETY, "action %d: bad indexes", i);
		return false;
	}
	vm = &g->vms[a->vm];
	S = &g->hosts[a->from];
	T = &g->hosts[a->to];
	if (!a->reason[0])
		violation(k, V_SAFETY, "action %d: empty reason", i);
	if (k->w.vh[a->vm] != a->from)
		violation(k, V_SAFETY, "action %d: vm %d is not on h%d", i, a->vm, a->from);
	if (k->w.moved[a->vm])
		violation(k, V_SAFETY, "action %d: vm %d moves twice", i, a->vm);
	if (vm->excluded || vm->migrating || cooling(g, vm))
		violation(k, V_SAFETY, "action %d: vm %d is excluded/migrating/cooling", i, a->vm);
	if (T->state != HOST_UP || T->excluded)
		violation(k, V_SAFETY, "action %d: target h%d is down/maintenance/excluded", i,
		          a->to);
	if (S->state == HOST_DOWN)
		violation(k, V_SAFETY, "action %d: source h%d is down", i, a->from);
	if (S->excluded)
		violation(k, S->state == HOST_MAINTENANCE ? V_EXCLSRC : V_SAFETY,
		          "action %d: source h%d is excluded", i, a->from);
	if (vm->npin > 0) {
		bool ok = false;
		for (int p = 0; p < vm->npin; p++)
			ok |= vm->pin[p] == a->to;
		if (!ok)
			violation(k, V_SAFETY, "action %d: vm %d leaves its pins", i, a->vm);
	}
	switch (a->kind) {
	case PLAN_MOVE:
		if (S->state != HOST_UP || a->res < 0 || a->res >= RES_N || !S->hot[a->res] ||
		    a->swap_id != -1)
			violation(k, V_SAFETY, "action %d: move not from a hot host", i);
		break;
	case PLAN_EVACUATE:
		if (S->state != HOST_MAINTENANCE || a->res != -1 || a->swap_id != -1)
			violation(k, V_SAFETY, "action %d: evacuation not from maintenance", i);
		break;
	case PLAN_SWAP:
		if (a->swap_id < 0 || a->res < 0 || a->res >= RES_N ||
		    !(S->hot[a->res] || T->hot[a->res]) || vm->group >= 0)
			violation(k, V_SAFETY, "action %d: swap of no hot host or of a group", i);
		break;
	default:
		violation(k, V_SAFETY, "action %d: kind %d", i, a->kind);
	}
	return true;
}

/* Applies the actions in order, checking each and the volumes it reports.
 * Consecutive non-swap actions of one affinity group with the same hosts and
 * before-volumes are one unit: each reports the unit's whole effect. Swap halves
 * come in pairs: same id, opposite directions. Returns the maximum volume
 * over up hosts after the relief actions (before any evacuation). */
static double replay(struct check *k)
{
	const struct plan_result *r = k->r;
	double mid = -1;
	int swap_first = -1;

	for (int i = 0; i < r->nactions;) {
		const struct plan_action *a = &r->actions[i];
		int j = i + 1;
		if (!check_action(k, i))
			return 0;
		if (a->kind == PLAN_EVACUATE && mid < 0)
			mid = max_vol(k, true);
		if (a->kind != PLAN_EVACUATE && mid >= 0)
			violation(k, V_SAFETY, "action %d: relief after an evacuation", i);
		if (a->kind == PLAN_SWAP && swap_first < 0) {
			const struct plan_action *b = i + 1 < r->nactions ? a + 1 : NULL;
			if (!b || b->kind != PLAN_SWAP || b->swap_id != a->swap_id ||
			    b->from != a->to || b->to != a->from || b->vm == a->vm)
				violation(k, V_SAFETY, "action %d: malformed swap", i);
			swap_first = i;
		} else if (a->kind == PLAN_SWAP) {
			swap_first = -1;
		} else {
			while (j < r->nactions && k->g->vms[a->vm].group >= 0 &&
			       k->g->vms[r->actions[j].vm].group == k->g->vms[a->vm].group &&
			       r->actions[j].kind == a->kind && r->actions[j].from == a->from &&
			       r->actions[j].to == a->to &&
			       r->actions[j].src_vol_before == a->src_vol_before &&
			       r->actions[j].dst_vol_before == a->dst_vol_before) {
				if (!check_action(k, j++))
					return 0;
			}
		}
		if (!vol_eq(a->src_vol_before, vol_of(k, a->from)) ||
		    !vol_eq(a->dst_vol_before, vol_of(k, a->to)))
			violation(k, V_SAFETY, "action %d: before volumes %g %g, want %g %g", i,
			          a->src_vol_before, a->dst_vol_before, vol_of(k, a->from),
			          vol_of(k, a->to));
		for (int x = i; x < j; x++)
			apply(k, r->actions[x].vm, r->actions[x].from, r->actions[x].to);
		for (int x = i; x < j; x++)
			if (!vol_eq(r->actions[x].src_vol_after, vol_of(k, a->from)) ||
			    !vol_eq(r->actions[x].dst_vol_after, vol_of(k, a->to)))
				violation(k, V_SAFETY, "action %d: after volumes %g %g, want %g %g",
				          x, r->actions[x].src_vol_after,
				          r->actions[x].dst_vol_after, vol_of(k, a->from),
				          vol_of(k, a->to));
		i = j;
	}
	return mid < 0 ? max_vol(k, true) : mid;
}

static bool has_unresolved(const struct plan_result *r, int h)
{
	for (int i = 0; i < r->nunresolved; i++)
		if (r->unresolved[i].host == h)
			return true;
	return false;
}

/* The placement after the plan: capacity, rules, limits, reports. */
static void check_final(struct check *k)
{
	const struct gen *g = k->g;
	const struct plan_result *r = k->r;
	int anti[MAXH][4], gfirst[MAXV], ginit[MAXV], gfinal[MAXV], nod = 0;

	memset(anti, 0, sizeof(anti));
	for (int i = 0; i < g->c.nvms; i++)
		gfirst[i] = ginit[i] = gfinal[i] = -1;
	for (int v = 0; v < g->c.nvms; v++) {
		const struct cl_vm *vm = &g->vms[v];
		int h = k->w.vh[v], grp = vm->group;
		if (vm->anti_group >= 0)
			anti[h][vm->anti_group]++;
		if (grp >= 0) {
			if (gfirst[grp] < 0)
				gfirst[grp] = v, ginit[grp] = vm->host, gfinal[grp] = h;
			if (ginit[grp] != vm->host)
				ginit[grp] = -2;
			if (gfinal[grp] != h)
				gfinal[grp] = -2;
		}
		if ((vm->vcpus > 0 && vm->demand[RES_CPU] > vm->vcpus + 1e-9) ||
		    (vm->mem_mib > 0 && vm->demand[RES_MEM] > vm->mem_mib + 1e-9)) {
			if (nod >= r->noverdemand || r->overdemand[nod] != v)
				violation(k, V_SAFETY, "overdemand: vm %d missing", v);
			nod++;
		}
	}
	if (nod != r->noverdemand)
		violation(k, V_SAFETY, "overdemand: %d listed, want %d", r->noverdemand, nod);
	for (int i = 0; i < g->c.nvms; i++)
		if (ginit[i] >= 0 && gfinal[i] < 0)
			violation(k, V_SAFETY, "affinity group %d split", i);
	for (int v = 0; v < g->c.nvms; v++) {
		const struct cl_vm *vm = &g->vms[v];
		int d = k->w.vh[v];
		const struct cl_host *D = &g->hosts[d];
		if (d == vm->host)
			continue;
		for (int rr = 0; rr < RES_N; rr++)
			if (vm->demand[rr] > 1e-9 && D->cap[rr] > 0 &&
			    k->w.load[d][rr] > limit_of(D, rr) + TOL)
				violation(k, V_SAFETY,
				          "h%d over its limit on res %d (vm %d arrived)", d, rr, v);
		if (k->w.acpu[d] > D->cap[RES_CPU] * D->overcommit_cpu + TOL ||
		    k->w.amem[d] > D->cap[RES_MEM] * D->overcommit_mem + TOL)
			violation(k, V_SAFETY, "h%d over its overcommit (vm %d arrived)", d, v);
		if (vm->group >= 0 && ginit[vm->group] == -2) {
			/* a split group moves only towards its other members */
			bool joined = false;
			for (int w = 0; w < g->c.nvms && !joined; w++)
				joined = g->vms[w].group == vm->group && k->w.vh[w] == d &&
				         g->vms[w].host != vm->host;
			if (!joined)
				violation(k, V_SAFETY, "vm %d leaves its affinity group for h%d", v,
				          d);
		}
		if (vm->anti_group >= 0 && anti[d][vm->anti_group] > 1)
			violation(k, V_SAFETY, "vm %d shares h%d with its anti group", v, d);
	}
	if (g->o.max_per_round > 0 && r->nactions > g->o.max_per_round)
		violation(k, V_SAFETY, "%d actions over the round limit %d", r->nactions,
		          g->o.max_per_round);
	for (int h = 0; h < g->c.nhosts; h++) {
		const struct cl_host *H = &g->hosts[h];
		bool hot = false;
		if (g->o.max_per_host > 0 && k->w.touched[h] &&
		    k->w.touched[h] + H->inflight > g->o.max_per_host)
			violation(k, V_SAFETY, "h%d: %d migrations + %d in flight over %d", h,
			          k->w.touched[h], H->inflight, g->o.max_per_host);
		for (int rr = 0; rr < RES_N; rr++)
			hot |= H->hot[rr] && k->w.load[h][rr] > H->thr[rr] * H->cap[rr] + TOL;
		if (H->state == HOST_UP && hot && !has_unresolved(r, h))
			violation(k, V_SAFETY, "h%d still hot and not reported", h);
		if (H->state == HOST_MAINTENANCE && !has_unresolved(r, h))
			for (int v = 0; v < g->c.nvms; v++)
				if (k->w.vh[v] == h) {
					violation(k, V_SAFETY,
					          "h%d in maintenance keeps vm %d silently", h, v);
					break;
				}
	}
	for (int i = 0; i < r->nunresolved; i++) {
		const struct plan_unresolved *u = &r->unresolved[i];
		if (u->host < 0 || u->host >= g->c.nhosts || u->why <= WHY_NONE ||
		    u->why > WHY_PARTIAL || !u->reason[0])
			violation(k, V_SAFETY, "unresolved %d malformed", i);
		for (int j = 0; j < i; j++)
			if (r->unresolved[j].host == u->host)
				violation(k, V_SAFETY, "h%d reported twice", u->host);
	}
}

/* Unresolved reasons are compared as strings: the bytes after the NUL are
 * not initialised by the planner. */
static bool same_result(const struct plan_result *a, const struct plan_result *b)
{
	for (int i = 0; i < a->nunresolved && i < b->nunresolved; i++)
		if (a->unresolved[i].host != b->unresolved[i].host ||
		    a->unresolved[i].why != b->unresolved[i].why ||
		    strcmp(a->unresolved[i].reason, b->unresolved[i].reason))
			return false;
	return a->nactions == b->nactions && a->nunresolved == b->nunresolved &&
	       a->noverdemand == b->noverdemand &&
	       (!a->nactions ||
	        !memcmp(a->actions, b->actions, sizeof(*a->actions) * (size_t)a->nactions)) &&
	       (!a->noverdemand ||
	        !memcmp(a->overdemand, b->overdemand, sizeof(int) * (size_t)a->noverdemand)) &&
	       a->max_vol_before == b->max_vol_before && a->max_vol_after == b->max_vol_after;
}

/* Plans g (twice) and checks every property; returns the violation flags. */
static int check_plan(const struct gen *g, struct check *k, int *kinds, int *whys)
{
	struct plan_result r, again;
	double before_up, mid_up;

	memset(k, 0, sizeof(*k));
	k->g = g;
	k->r = &r;
	assert_int_equal(plan_compute(&g->c, &g->o, &r), 0);
	for (int h = 0; h < g->c.nhosts; h++)
		memcpy(k->w.load[h], g->hosts[h].load, sizeof(k->w.load[h]));
	for (int v = 0; v < g->c.nvms; v++) {
		k->w.vh[v] = g->vms[v].host;
		k->w.acpu[g->vms[v].host] += g->vms[v].vcpus;
		k->w.amem[g->vms[v].host] += g->vms[v].mem_mib;
	}
	before_up = max_vol(k, true);
	if (!vol_eq(r.max_vol_before, max_vol(k, false)))
		violation(k, V_SAFETY, "max_vol_before %g, want %g", r.max_vol_before,
		          max_vol(k, false));
	if (r.nactions > g->c.nvms)
		violation(k, V_SAFETY, "%d actions for %d VMs", r.nactions, g->c.nvms);
	mid_up = replay(k);
	if (!(k->flags & V_SAFETY)) {
		check_final(k);
		if (!vol_eq(r.max_vol_after, max_vol(k, false)))
			violation(k, V_SAFETY, "max_vol_after %g, want %g", r.max_vol_after,
			          max_vol(k, false));
		if (mid_up > before_up * (1 + 1e-9))
			violation(k, V_MAXVOL, "max volume of up hosts %g -> %g", before_up,
			          mid_up);
	}
	if ((k->flags & V_SAFETY) && getenv("LE_PROP_DUMP"))
		for (int i = 0; i < r.nactions; i++)
			print_message("  action %d: %s vm %d (group %d) h%d->h%d swap %d: %s\n", i,
			              r.actions[i].kind == PLAN_MOVE   ? "move"
			              : r.actions[i].kind == PLAN_SWAP ? "swap"
			                                               : "evac",
			              r.actions[i].vm, g->vms[r.actions[i].vm].group,
			              r.actions[i].from, r.actions[i].to, r.actions[i].swap_id,
			              r.actions[i].reason);
	assert_int_equal(plan_compute(&g->c, &g->o, &again), 0);
	if (!same_result(&r, &again))
		violation(k, V_SAFETY, "a second run gives another plan");
	for (int i = 0; kinds && i < r.nactions; i++)
		kinds[r.actions[i].kind]++;
	for (int i = 0; whys && i < r.nunresolved; i++)
		whys[r.unresolved[i].why]++;
	k->r = NULL;
	plan_result_free(&again);
	plan_result_free(&r);
	return k->flags;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : dflt;
}

/* Runs the generator; fails on the first cluster whose violations include
 * one of the flags in `fail_on`. */
static void run(int fail_on, bool stats)
{
	static struct gen g;
	struct check k;
	uint64_t seed = env_u64("LE_PROP_SEED", 0x5eed1e5a11ce0001ULL), s = seed;
	int n = (int)env_u64("LE_PROP_N", N_DEFAULT), kinds[PLAN_CONSOLIDATE + 1] = {0},
	    whys[WHY_PARTIAL + 1] = {0};
	long vms = 0;

	for (int i = 0; i < n; i++) {
		gen_cluster(&g, &s);
		vms += g.c.nvms;
		if (check_plan(&g, &k, kinds, whys) & fail_on)
			fail_msg("seed %#llx cluster %d (%d hosts, %d vms): %s",
			         (unsigned long long)seed, i, g.c.nhosts, g.c.nvms, k.first);
	}
	if (stats) {
		print_message("%d clusters, %ld vms: %d moves, %d swap halves, %d evacuations\n", n,
		              vms, kinds[PLAN_MOVE], kinds[PLAN_SWAP], kinds[PLAN_EVACUATE]);
		for (int w = WHY_NO_MOVABLE; w <= WHY_PARTIAL; w++)
			print_message("  unresolved %-14s %d\n", plan_why_name((enum plan_why)w),
			              whys[w]);
		/* the generator must reach every kind of action, or the test proves little */
		assert_true(kinds[PLAN_MOVE] > 0 && kinds[PLAN_SWAP] > 0 &&
		            kinds[PLAN_EVACUATE] > 0);
	}
}

static void test_prop_safety(void **state)
{
	run(V_SAFETY, true);
}

/* Regression (fixed): plans raise the maximum volume of the up hosts (try_move takes the
 * first candidate that fits whatever its volume after; see
 * test_bug_max_volume_rises in test_plan.c). */
static void test_bug_prop_max_volume(void **state)
{
	run(V_MAXVOL, false);
}

/* Regression (fixed): an excluded host in maintenance is evacuated (evacuate_host ignores
 * cl_host.excluded; see test_bug_evacuates_excluded_host in test_plan.c). */
static void test_bug_prop_excluded_source(void **state)
{
	run(V_EXCLSRC, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prop_safety),
	    cmocka_unit_test(test_bug_prop_max_volume),
	    cmocka_unit_test(test_bug_prop_excluded_source),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
