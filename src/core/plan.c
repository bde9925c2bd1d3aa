/* plan.c - the migration planner; see plan.h for the algorithm. */
#include "core/plan.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/resize.h"

#define EPS        1e-9
#define SWAP_MAX_A 8  /* VMs of the hot host tried in swaps */
#define SWAP_MAX_T 16 /* partner hosts tried */
#define SWAP_MAX_B 32 /* VMs of a partner host tried */

static const char *const res_names[RES_N] = {"cpu", "mem", "net"};

void plan_opts_defaults(struct plan_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_per_round = 4;
	o->max_per_host = 2;
	o->cooldown_ms = 300000;
	o->link_mbit = 1000;
	o->min_gain = 0.0005;
	o->swaps = true;
	o->risk_target = 0.2;
	risk_opts_defaults(&o->risk);
	o->objective = PLAN_SPREAD;
	o->resize = true;
}

const char *plan_objective_name(enum plan_objective o)
{
	return o == PLAN_PACK ? "pack" : "spread";
}

const char *plan_kind_name(enum plan_kind k)
{
	static const char *const n[] = {"move",    "swap",   "evacuate",
	                                "prevent", "resize", "consolidate"};
	return (unsigned)k < sizeof(n) / sizeof(n[0]) ? n[k] : "unknown";
}

const char *plan_why_name(enum plan_why w)
{
	static const char *const n[] = {"none",     "no_movable_vm", "no_target",
	                                "rule",     "round_limit",   "host_limit",
	                                "cooldown", "not_worth_it",  "partial"};
	return (unsigned)w < sizeof(n) / sizeof(n[0]) ? n[w] : "unknown";
}

/* Working state of one plan_compute() call. */
struct pctx {
	const struct cluster *c;
	const struct plan_opts *o;
	double (*load)[RES_N];   /* projected loads */
	double *acpu, *amem;     /* projected allocations */
	double *vol;             /* projected volume per host */
	int *moves;              /* migrations touching each host (in-flight + planned) */
	int *head, *next, *prev; /* VMs per host (projected), doubly linked */
	int *vhost;              /* projected host per VM */
	bool *planned;           /* VM already in the plan */
	int *cand, ncand;        /* target hosts sorted by (vol, index) */
	int *unit;               /* scratch: the VMs of one move unit */
	int *gfirst, *gnext;     /* affinity group members: first of v's group, next */
	double (*fc)[RES_N];     /* projected forecast per host (risk.h) */
	double (*ms)[RES_N];     /* projected error mean square per host */
	int nround;
	int nswaps;
	struct plan_result *out;
};

static double host_util(const struct pctx *p, int h, int r)
{
	double cap = p->c->hosts[h].cap[r];
	return cap > 0 ? p->load[h][r] / cap : 0;
}

static double host_volume(const struct pctx *p, int h)
{
	return cluster_load_volume(p->load[h], p->c->hosts[h].cap);
}

/* Host h's projected risk (0 while its forecast is unknown). */
static double host_risk(const struct pctx *p, int h, double per[RES_N])
{
	const struct cl_host *H = &p->c->hosts[h];

	if (!H->risk_known) {
		if (per)
			memset(per, 0, sizeof(double) * RES_N);
		return 0;
	}
	return risk_host(p->fc[h], p->ms[h], H->cap, H->thr, &p->o->risk, per);
}

/* Host h's risk with the current unit (p->unit[0..n)) gone (sign -1) or
 * added (sign +1). A host without a forecast counts its projected load
 * with no spread. */
static double risk_with(const struct pctx *p, int h, int n, int sign)
{
	const struct cl_host *H = &p->c->hosts[h];
	double fc[RES_N], ms[RES_N];

	for (int r = 0; r < RES_N; r++) {
		fc[r] = H->risk_known ? p->fc[h][r] : p->load[h][r];
		ms[r] = H->risk_known ? p->ms[h][r] : 0;
		for (int i = 0; i < n; i++) {
			const struct cl_vm *vm = &p->c->vms[p->unit[i]];
			fc[r] += sign * vm->fc[r];
			ms[r] += vm->ms[r] - (sign < 0 ? 2 * vm->cov[r] : 0);
		}
		if (ms[r] < 0)
			ms[r] = 0;
	}
	return risk_host(fc, ms, H->cap, H->thr, &p->o->risk, NULL);
}

static bool is_target(const struct cl_host *h)
{
	return h->state == HOST_UP && !h->excluded;
}

/* cand[] order: volume ascending, then index */
static bool cand_less(const struct pctx *p, int a, int b)
{
	return p->vol[a] < p->vol[b] || (p->vol[a] == p->vol[b] && a < b);
}

static int cand_find(const struct pctx *p, int h)
{
	int lo = 0, hi = p->ncand;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (cand_less(p, p->cand[mid], h))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void cand_remove(struct pctx *p, int h)
{
	int i;

	if (!is_target(&p->c->hosts[h]))
		return;
	i = cand_find(p, h);
	if (i < p->ncand && p->cand[i] == h) {
		memmove(&p->cand[i], &p->cand[i + 1], sizeof(int) * (size_t)(p->ncand - i - 1));
		p->ncand--;
	}
}

static void cand_insert(struct pctx *p, int h)
{
	int i;

	if (!is_target(&p->c->hosts[h]))
		return;
	i = cand_find(p, h);
	memmove(&p->cand[i + 1], &p->cand[i], sizeof(int) * (size_t)(p->ncand - i));
	p->cand[i] = h;
	p->ncand++;
}

static void list_remove(struct pctx *p, int v)
{
	int h = p->vhost[v];

	if (p->prev[v] >= 0)
		p->next[p->prev[v]] = p->next[v];
	else
		p->head[h] = p->next[v];
	if (p->next[v] >= 0)
		p->prev[p->next[v]] = p->prev[v];
	p->next[v] = p->prev[v] = -1;
}

static void list_add(struct pctx *p, int v, int h)
{
	p->vhost[v] = h;
	p->prev[v] = -1;
	p->next[v] = p->head[h];
	if (p->head[h] >= 0)
		p->prev[p->head[h]] = v;
	p->head[h] = v;
}

/* Moves VM v to host to in the projection (loads, allocations, lists, cand). */
static void project_move(struct pctx *p, int v, int to)
{
	const struct cl_vm *vm = &p->c->vms[v];
	int from = p->vhost[v];

	cand_remove(p, from);
	cand_remove(p, to);
	for (int r = 0; r < RES_N; r++) {
		p->load[from][r] -= vm->demand[r];
		if (p->load[from][r] < 0)
			p->load[from][r] = 0;
		p->load[to][r] += vm->demand[r];
		/* risk.h: exact on the source (its errors minus the VM's), the
		 * target taken as independent of the VM */
		p->fc[from][r] -= vm->fc[r];
		p->ms[from][r] += vm->ms[r] - 2 * vm->cov[r];
		if (p->ms[from][r] < 0)
			p->ms[from][r] = 0;
		p->fc[to][r] += vm->fc[r];
		p->ms[to][r] += vm->ms[r];
	}
	p->acpu[from] -= vm->vcpus;
	p->amem[from] -= vm->mem_mib;
	p->acpu[to] += vm->vcpus;
	p->amem[to] += vm->mem_mib;
	list_remove(p, v);
	list_add(p, v, to);
	p->vol[from] = host_volume(p, from);
	p->vol[to] = host_volume(p, to);
	cand_insert(p, from);
	cand_insert(p, to);
}

/* --- rules ------------------------------------------------------------ */

static bool pinned_ok(const struct cl_vm *vm, int h)
{
	if (!vm->pin || vm->npin <= 0)
		return true;
	for (int i = 0; i < vm->npin; i++)
		if (vm->pin[i] == h)
			return true;
	return false;
}

static bool in_unit(const int *unit, int n, int v)
{
	for (int i = 0; i < n; i++)
		if (unit[i] == v)
			return true;
	return false;
}

/* Would host h break the anti-affinity or affinity of the unit? */
static bool rules_ok(const struct pctx *p, const int *unit, int n, int h)
{
	const struct cl_vm *vms = p->c->vms;
	int g = vms[unit[0]].group;
	bool others_elsewhere = false, group_on_h = false;

	for (int i = 0; i < n; i++) {
		const struct cl_vm *vm = &vms[unit[i]];
		if (!pinned_ok(vm, h))
			return false;
		if (vm->anti_group < 0)
			continue;
		for (int w = p->head[h]; w >= 0; w = p->next[w])
			if (vms[w].anti_group == vm->anti_group && !in_unit(unit, n, w))
				return false;
		for (int j = 0; j < i; j++)
			if (vms[unit[j]].anti_group == vm->anti_group)
				return false;
	}
	if (g < 0)
		return true;
	/* an affinity group moves whole; if members live elsewhere already, only
	 * towards them */
	for (int v = p->gfirst[unit[0]]; v >= 0; v = p->gnext[v]) {
		if (in_unit(unit, n, v))
			continue;
		if (p->vhost[v] == h)
			group_on_h = true;
		else
			others_elsewhere = true;
	}
	return !others_elsewhere || group_on_h;
}

/* Capacity check of host h taking extra demand/allocation. 0 when it fits,
 * else 1 + the resource that does not fit (RES_N + 1 for overcommit). */
static int fits(const struct pctx *p, int h, const double dem[RES_N], double vcpus, double mem,
                bool check_thr)
{
	const struct cl_host *H = &p->c->hosts[h];

	for (int r = 0; r < RES_N; r++) {
		double limit;
		if (H->cap[r] <= 0)
			continue;
		limit = check_thr ? cluster_host_limit(H, r) : H->cap[r] * (1 - H->headroom[r]);
		if (dem[r] > EPS && p->load[h][r] + dem[r] > limit + EPS)
			return 1 + r;
	}
	if (vcpus > 0 && p->acpu[h] + vcpus > H->cap[RES_CPU] * H->overcommit_cpu + EPS)
		return 1 + RES_N;
	if (mem > 0 && p->amem[h] + mem > H->cap[RES_MEM] * H->overcommit_mem + EPS)
		return 1 + RES_N;
	return 0;
}

/* --- the unit of a move: one VM, or its affinity group on the host ---- */

static int build_unit(struct pctx *p, int v, double dem[RES_N], double *vcpus, double *mem)
{
	const struct cl_vm *vms = p->c->vms;
	int n = 0, g = vms[v].group, h = p->vhost[v];

	if (g < 0) {
		p->unit[n++] = v;
	} else {
		for (int w = p->head[h]; w >= 0; w = p->next[w])
			if (vms[w].group == g)
				p->unit[n++] = w;
	}
	memset(dem, 0, sizeof(double) * RES_N);
	*vcpus = *mem = 0;
	for (int i = 0; i < n; i++) {
		for (int r = 0; r < RES_N; r++)
			dem[r] += vms[p->unit[i]].demand[r];
		*vcpus += vms[p->unit[i]].vcpus;
		*mem += vms[p->unit[i]].mem_mib;
	}
	return n;
}

/* Why a VM cannot be moved at all, or WHY_NONE. */
static enum plan_why vm_blocked(const struct pctx *p, int v, int src)
{
	const struct cl_vm *vm = &p->c->vms[v];

	if (vm->excluded || vm->automation == CL_OFF || vm->migrating || p->planned[v])
		return WHY_NO_MOVABLE;
	if (vm->last_moved_ms > 0 && p->o->now_ms - vm->last_moved_ms < p->o->cooldown_ms)
		return WHY_COOLDOWN;
	if (vm->npin == 1 && vm->pin && vm->pin[0] == src)
		return WHY_NO_MOVABLE;
	return WHY_NONE;
}

/* --- output ----------------------------------------------------------- */

struct plan_action *plan_action_add(struct plan_result *r)
{
	if (r->nactions == r->cap_actions) {
		int cap = r->cap_actions ? r->cap_actions * 2 : 16;
		struct plan_action *na = realloc(r->actions, sizeof(*na) * (size_t)cap);
		if (!na)
			return NULL;
		r->actions = na;
		r->cap_actions = cap;
	}
	memset(&r->actions[r->nactions], 0, sizeof(r->actions[0]));
	return &r->actions[r->nactions++];
}

static struct plan_action *add_action(struct pctx *p)
{
	return plan_action_add(p->out);
}

static int add_unresolved(struct pctx *p, int h, enum plan_why why, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int add_unresolved(struct pctx *p, int h, enum plan_why why, const char *fmt, ...)
{
	struct plan_result *r = p->out;
	va_list ap;

	if (r->nunresolved == r->cap_unresolved) {
		int cap = r->cap_unresolved ? r->cap_unresolved * 2 : 16;
		struct plan_unresolved *nu = realloc(r->unresolved, sizeof(*nu) * (size_t)cap);
		if (!nu)
			return -ENOMEM;
		r->unresolved = nu;
		r->cap_unresolved = cap;
	}
	r->unresolved[r->nunresolved].host = h;
	r->unresolved[r->nunresolved].why = why;
	va_start(ap, fmt);
	vsnprintf(r->unresolved[r->nunresolved].reason, sizeof(r->unresolved[0].reason), fmt, ap);
	va_end(ap);
	r->nunresolved++;
	return 0;
}

/* --- single moves ------------------------------------------------------ */

/* Tally of why the moves of one host failed, for its unresolved reason. */
struct tally {
	int n[WHY_PARTIAL + 1];
	char first[WHY_PARTIAL + 1][160];
};

static void tally_add(struct tally *t, enum plan_why w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void tally_add(struct tally *t, enum plan_why w, const char *fmt, ...)
{
	va_list ap;

	if (t->n[w]++ == 0) {
		va_start(ap, fmt);
		vsnprintf(t->first[w], sizeof(t->first[w]), fmt, ap);
		va_end(ap);
	}
}

static bool limit_ok(const struct pctx *p, int n)
{
	return p->o->max_per_round <= 0 || p->nround + n <= p->o->max_per_round;
}

static bool host_limit_ok(const struct pctx *p, int h, int n)
{
	return p->o->max_per_host <= 0 || p->moves[h] + n <= p->o->max_per_host;
}

static bool relieved(const struct pctx *p, int h)
{
	const struct cl_host *H = &p->c->hosts[h];

	for (int r = 0; r < RES_N; r++)
		if (H->hot[r] && p->load[h][r] > H->thr[r] * H->cap[r] + EPS)
			return false;
	return true;
}

static int hottest_res(const struct pctx *p, int h)
{
	const struct cl_host *H = &p->c->hosts[h];
	int best = -1;
	double bu = -1;

	for (int r = 0; r < RES_N; r++)
		if (H->hot[r] && host_util(p, h, r) > bu) {
			bu = host_util(p, h, r);
			best = r;
		}
	return best;
}

static double unit_cost(const struct pctx *p, int n)
{
	double cost = 0;

	for (int i = 0; i < n; i++) {
		const struct cl_vm *vm = &p->c->vms[p->unit[i]];
		double s = cluster_migration_seconds(vm->mem_mib, vm->dirty_mbit, p->o->link_mbit);
		if (s < 0)
			return -1;
		cost += s;
	}
	return cost;
}

/* Projected volume of host h with extra demand. */
static double vol_with(const struct pctx *p, int h, const double dem[RES_N])
{
	double u[RES_N];

	for (int r = 0; r < RES_N; r++) {
		double cap = p->c->hosts[h].cap[r];
		u[r] = cap > 0 ? (p->load[h][r] + dem[r]) / cap : 0;
	}
	return cluster_volume(u);
}

/* Projected source volume if the unit's demand left host h. */
static double vol_without(const struct pctx *p, int h, const double dem[RES_N])
{
	double u[RES_N];

	for (int r = 0; r < RES_N; r++) {
		double cap = p->c->hosts[h].cap[r], l = p->load[h][r] - dem[r];
		u[r] = cap > 0 && l > 0 ? l / cap : 0;
	}
	return cluster_volume(u);
}

static int record_moves(struct pctx *p, int n, int src, int dst, enum plan_kind kind, int res,
                        double cost, int swap_id, const char *why)
{
	double sb = p->vol[src], db = p->vol[dst];
	double srb = host_risk(p, src, NULL), drb = host_risk(p, dst, NULL);

	for (int i = 0; i < n; i++) {
		int v = p->unit[i];
		struct plan_action *a = add_action(p);
		if (!a)
			return -ENOMEM;
		a->kind = kind;
		a->vm = v;
		a->from = src;
		a->to = dst;
		a->swap_id = swap_id;
		a->res = res;
		a->cost_s = cost / n;
		a->src_vol_before = sb;
		a->dst_vol_before = db;
		project_move(p, v, dst);
		p->planned[v] = true;
		a->src_vol_after = p->vol[src];
		a->dst_vol_after = p->vol[dst];
		snprintf(a->reason, sizeof(a->reason),
		         "%s; %s volume %.2f -> %.2f, %s %.2f -> %.2f", why, p->c->hosts[src].id,
		         sb, p->vol[src], p->c->hosts[dst].id, db, p->vol[dst]);
	}
	/* after the loop, so every action of a unit shows the unit's whole effect */
	for (int i = p->out->nactions - n; i < p->out->nactions; i++) {
		struct plan_action *a = &p->out->actions[i];
		a->src_vol_after = p->vol[src];
		a->dst_vol_after = p->vol[dst];
		a->src_risk_before = srb;
		a->dst_risk_before = drb;
		a->src_risk_after = host_risk(p, src, NULL);
		a->dst_risk_after = host_risk(p, dst, NULL);
	}
	p->moves[src] += n;
	p->moves[dst] += n;
	p->nround += n;
	return 0;
}

static bool any_hot(const struct cl_host *H)
{
	return H->hot[RES_CPU] || H->hot[RES_MEM] || H->hot[RES_NET];
}

/* A host of the projection that holds VMs (an empty one is a host pack
 * would rather keep empty). */
static bool in_use(const struct pctx *p, int h)
{
	return p->head[h] >= 0;
}

/* Target scans under pack run twice: hosts in use, then (pass 0 over)
 * the empty ones. */
static bool pack_wake(const struct pctx *p, int pass)
{
	return p->o->objective == PLAN_PACK && pass == 0 && p->ncand > 0;
}

/* Tries to move VM v (with its affinity unit) off host src. Returns 1 when a
 * move was planned, 0 when not (the reason goes to the tally), -ENOMEM. */
static int try_move(struct pctx *p, int v, int src, enum plan_kind kind, int res, struct tally *t)
{
	const struct cl_vm *vms = p->c->vms;
	double dem[RES_N], vcpus, mem, cost;
	enum plan_why w;
	int n, dst = -1, rule_blocked = 0, limit_blocked = 0, full = 0, full_res = 0, worse = 0;

	n = build_unit(p, v, dem, &vcpus, &mem);
	for (int i = 0; i < n; i++) {
		w = vm_blocked(p, p->unit[i], src);
		if (w != WHY_NONE) {
			const struct cl_vm *b = &vms[p->unit[i]];
			tally_add(t, w, "vm %s %s", b->id,
			          w == WHY_COOLDOWN         ? "moved recently (cooldown)"
			          : b->excluded             ? "is excluded from balancing"
			          : b->automation == CL_OFF ? "has automation off"
			          : b->migrating            ? "is already migrating"
			          : p->planned[p->unit[i]]  ? "is already in this plan"
			                                    : "is pinned to this host");
			return 0;
		}
	}
	if (!limit_ok(p, n)) {
		tally_add(t, WHY_ROUND_LIMIT, "the round's limit of %d migrations is reached",
		          p->o->max_per_round);
		return 0;
	}
	if (!host_limit_ok(p, src, n)) {
		tally_add(t, WHY_HOST_LIMIT, "host %s has reached its limit of %d migrations",
		          p->c->hosts[src].id, p->o->max_per_host);
		return 0;
	}
	cost = unit_cost(p, n);
	if (cost < 0) {
		tally_add(
		    t, WHY_NOT_WORTH,
		    "vm %s dirties memory faster than the %.0f Mbit/s link: it would not converge",
		    vms[v].id, p->o->link_mbit);
		return 0;
	}
	/* pack: hosts in use first; an empty host is woken only when none fits */
	for (int i = 0, pass = 0; i < p->ncand || (pack_wake(p, pass) && (i = 0, ++pass)); i++) {
		int h = p->cand[i], f;
		if (h == src || (p->o->objective == PLAN_PACK && (pass == 0) != in_use(p, h)))
			continue;
		if (!host_limit_ok(p, h, n)) {
			limit_blocked++;
			continue;
		}
		if (!rules_ok(p, p->unit, n, h)) {
			rule_blocked++;
			continue;
		}
		f = fits(p, h, dem, vcpus, mem, true);
		if (f) {
			if (!full++)
				full_res = f - 1;
			continue;
		}
		/* relief must not make the cluster's hottest host hotter: the target
		 * ends no hotter than the source is now (evacuation must move) */
		if (kind == PLAN_MOVE && vol_with(p, h, dem) > p->vol[src] + EPS) {
			worse++;
			continue;
		}
		dst = h;
		break;
	}
	if (dst < 0) {
		if (worse && !full)
			tally_add(
			    t, WHY_NO_TARGET,
			    "every host that could take vm %s would end hotter than %s is now",
			    vms[v].id, p->c->hosts[src].id);
		else if (full)
			tally_add(t, WHY_NO_TARGET,
			          "no host can take vm %s: %d would exceed a threshold (first: %s)",
			          vms[v].id, full,
			          full_res < RES_N ? res_names[full_res] : "overcommit");
		else if (rule_blocked)
			tally_add(t, WHY_RULE,
			          "affinity, anti-affinity or pinning of vm %s rules out all %d "
			          "hosts with room",
			          vms[v].id, rule_blocked);
		else if (limit_blocked)
			tally_add(t, WHY_HOST_LIMIT,
			          "every target host has reached its migration limit");
		else
			tally_add(t, WHY_NO_TARGET, "there is no other host to move vm %s to",
			          vms[v].id);
		return 0;
	}
	if (kind == PLAN_MOVE && p->o->min_gain > 0) {
		double gain = p->vol[src] - vol_without(p, src, dem);
		if (gain < p->o->min_gain * cost) {
			tally_add(t, WHY_NOT_WORTH,
			          "moving vm %s gains %.3f volume for %.1f s of migration (minimum "
			          "%.4f/s)",
			          vms[v].id, gain, cost, p->o->min_gain);
			return 0;
		}
	}
	{
		char why[200];
		const struct cl_host *S = &p->c->hosts[src];
		if (kind == PLAN_EVACUATE)
			snprintf(why, sizeof(why), "evacuate %s (maintenance): vm %s%s to %s",
			         S->id, vms[v].id, n > 1 ? " with its affinity group" : "",
			         p->c->hosts[dst].id);
		else
			snprintf(
			    why, sizeof(why),
			    "%s hot on %s (%.0f%% > %.0f%%): vm %s%s (VSR rank) to least-loaded %s",
			    S->id, res_names[res], 100 * host_util(p, src, res), 100 * S->thr[res],
			    vms[v].id, n > 1 ? " with its affinity group" : "",
			    p->c->hosts[dst].id);
		if (record_moves(p, n, src, dst, kind, res, cost, -1, why) < 0)
			return -ENOMEM;
	}
	return 1;
}

/* VMs of host h (projected), by VSR on h, highest first. */
static int sorted_vms(struct pctx *p, int h, int *out, double *key)
{
	const struct cl_host *H = &p->c->hosts[h];
	int n = 0;

	for (int v = p->head[h]; v >= 0; v = p->next[v]) {
		const struct cl_vm *vm = &p->c->vms[v];
		double u[RES_N];
		for (int r = 0; r < RES_N; r++)
			u[r] = H->cap[r] > 0 ? vm->demand[r] / H->cap[r] : 0;
		key[n] = cluster_volume(u) / (vm->mem_mib > 0 ? vm->mem_mib : 1);
		out[n++] = v;
	}
	/* insertion sort: hosts hold tens of VMs; ties by index for determinism */
	for (int i = 1; i < n; i++) {
		int v = out[i];
		double k = key[i];
		int j = i - 1;
		while (j >= 0 && (key[j] < k || (key[j] == k && out[j] > v))) {
			out[j + 1] = out[j];
			key[j + 1] = key[j];
			j--;
		}
		out[j + 1] = v;
		key[j + 1] = k;
	}
	return n;
}

static bool helps(const struct pctx *p, int v, int h)
{
	for (int r = 0; r < RES_N; r++)
		if (p->c->hosts[h].hot[r] && p->c->vms[v].demand[r] > EPS)
			return true;
	return false;
}

/* --- swaps ------------------------------------------------------------- */

static bool swap_movable(const struct pctx *p, int v, int h)
{
	return vm_blocked(p, v, h) == WHY_NONE && p->c->vms[v].group < 0;
}

/* Loads of host h with VM out leaving and VM in arriving, checked against
 * thresholds/headroom and overcommit. */
static bool swap_side_ok(const struct pctx *p, int h, int out, int in)
{
	const struct cl_host *H = &p->c->hosts[h];
	const struct cl_vm *o = &p->c->vms[out], *i = &p->c->vms[in];

	for (int r = 0; r < RES_N; r++) {
		double l = p->load[h][r] - o->demand[r] + i->demand[r], limit;
		if (H->cap[r] <= 0)
			continue;
		limit = cluster_host_limit(H, r);
		if (l > limit + EPS)
			return false;
	}
	if (p->acpu[h] - o->vcpus + i->vcpus > H->cap[RES_CPU] * H->overcommit_cpu + EPS)
		return false;
	if (p->amem[h] - o->mem_mib + i->mem_mib > H->cap[RES_MEM] * H->overcommit_mem + EPS)
		return false;
	return true;
}

/* No VM of host h but except shares v's anti-affinity group. */
static bool anti_ok(const struct pctx *p, int v, int h, int except)
{
	int g = p->c->vms[v].anti_group;

	if (g < 0)
		return true;
	for (int w = p->head[h]; w >= 0; w = p->next[w])
		if (w != except && w != v && p->c->vms[w].anti_group == g)
			return false;
	return true;
}

/* Can host h hold VM v on top of what it has (the middle of a swap)? Memory
 * only: CPU and network may peak for the seconds of a migration. */
static bool staging_ok(const struct pctx *p, int h, int v)
{
	const struct cl_host *H = &p->c->hosts[h];
	const struct cl_vm *vm = &p->c->vms[v];

	return p->amem[h] + vm->mem_mib <= H->cap[RES_MEM] * H->overcommit_mem + EPS &&
	       p->load[h][RES_MEM] + vm->demand[RES_MEM] <= H->cap[RES_MEM] + EPS;
}

/* 1 when a swap was planned, 0 when none fits, -ENOMEM. */
static int try_swap(struct pctx *p, int h, int res, const int *avms, int na, struct tally *t)
{
	const struct cl_vm *vms = p->c->vms;
	int tried_a = 0, staging_blocked = 0;

	if (!limit_ok(p, 2) || !host_limit_ok(p, h, 2))
		return 0;
	for (int ia = 0; ia < na && tried_a < SWAP_MAX_A; ia++) {
		int a = avms[ia], tried_t = 0;
		if (!swap_movable(p, a, h) || !helps(p, a, h))
			continue;
		tried_a++;
		for (int ic = 0; ic < p->ncand && tried_t < SWAP_MAX_T; ic++) {
			int T = p->cand[ic], tried_b = 0;
			if (T == h || !host_limit_ok(p, T, 2))
				continue;
			tried_t++;
			for (int b = p->head[T]; b >= 0 && tried_b < SWAP_MAX_B; b = p->next[b]) {
				int first, second, ffrom, fto;
				double ca, cb, gain, vb;
				char why[200];
				if (!swap_movable(p, b, T))
					continue;
				tried_b++;
				if (vms[b].demand[res] >= vms[a].demand[res])
					continue; /* b must take less of the hot resource */
				if (!swap_side_ok(p, h, a, b) || !swap_side_ok(p, T, b, a))
					continue;
				{
					/* neither side may end hotter than h is now */
					double dh[RES_N], dt[RES_N];
					for (int r = 0; r < RES_N; r++) {
						dh[r] = vms[b].demand[r] - vms[a].demand[r];
						dt[r] = -dh[r];
					}
					if (vol_with(p, h, dh) > p->vol[h] + EPS ||
					    vol_with(p, T, dt) > p->vol[h] + EPS)
						continue;
				}
				if (!pinned_ok(&vms[a], T) || !pinned_ok(&vms[b], h) ||
				    !anti_ok(p, a, T, b) || !anti_ok(p, b, h, a))
					continue;
				if (staging_ok(p, T, a)) {
					first = a, ffrom = h, fto = T, second = b;
				} else if (staging_ok(p, h, b)) {
					first = b, ffrom = T, fto = h, second = a;
				} else {
					staging_blocked++;
					continue;
				}
				ca = cluster_migration_seconds(vms[a].mem_mib, vms[a].dirty_mbit,
				                               p->o->link_mbit);
				cb = cluster_migration_seconds(vms[b].mem_mib, vms[b].dirty_mbit,
				                               p->o->link_mbit);
				if (ca < 0 || cb < 0)
					continue;
				{
					double dem[RES_N];
					for (int r = 0; r < RES_N; r++)
						dem[r] = vms[a].demand[r] - vms[b].demand[r];
					vb = p->vol[h];
					gain = vb - vol_without(p, h, dem);
				}
				if (p->o->min_gain > 0 && gain < p->o->min_gain * (ca + cb))
					continue;
				snprintf(why, sizeof(why),
				         "%s hot on %s (%.0f%% > %.0f%%) and no single move fits: "
				         "swap vm %s with vm %s of %s",
				         p->c->hosts[h].id, res_names[res],
				         100 * host_util(p, h, res), 100 * p->c->hosts[h].thr[res],
				         vms[a].id, vms[b].id, p->c->hosts[T].id);
				p->unit[0] = first;
				if (record_moves(p, 1, ffrom, fto, PLAN_SWAP, res,
				                 first == a ? ca : cb, p->nswaps, why) < 0)
					return -ENOMEM;
				p->unit[0] = second;
				if (record_moves(p, 1, fto, ffrom, PLAN_SWAP, res,
				                 second == a ? ca : cb, p->nswaps, why) < 0)
					return -ENOMEM;
				p->nswaps++;
				return 1;
			}
		}
	}
	if (staging_blocked)
		tally_add(
		    t, WHY_NO_TARGET,
		    "%d swaps would relieve %s but no host has the spare memory to stage them",
		    staging_blocked, p->c->hosts[h].id);
	return 0;
}

/* --- the plan ---------------------------------------------------------- */

static const char *main_text(const struct tally *t, enum plan_why w)
{
	return t->n[w] ? t->first[w] : "no further VM can go without breaking a rule or limit";
}

static enum plan_why main_why(const struct tally *t)
{
	static const enum plan_why order[] = {WHY_ROUND_LIMIT, WHY_HOST_LIMIT, WHY_NO_TARGET,
	                                      WHY_RULE,        WHY_COOLDOWN,   WHY_NOT_WORTH,
	                                      WHY_NO_MOVABLE};
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (t->n[order[i]])
			return order[i];
	return WHY_NO_MOVABLE;
}

static void pctx_free(struct pctx *p)
{
	free(p->load);
	free(p->acpu);
	free(p->amem);
	free(p->vol);
	free(p->moves);
	free(p->head);
	free(p->next);
	free(p->prev);
	free(p->vhost);
	free(p->planned);
	free(p->cand);
	free(p->unit);
	free(p->gfirst);
	free(p->gnext);
	free(p->fc);
	free(p->ms);
}

static int by_group(const void *x, const void *y, void *arg)
{
	const struct cl_vm *vms = arg;
	int a = *(const int *)x, b = *(const int *)y;
	int ga = vms[a].group, gb = vms[b].group;

	return ga != gb ? (ga < gb ? -1 : 1) : (a < b ? -1 : a > b);
}

/* Links the members of each affinity group, so rules are checked in
 * O(group size), not O(all VMs). */
static int link_groups(struct pctx *p)
{
	const struct cl_vm *vms = p->c->vms;
	int V = p->c->nvms, n = 0, *idx = malloc(((size_t)V + 1) * sizeof(int));

	if (!idx)
		return -ENOMEM;
	for (int v = 0; v < V; v++) {
		p->gfirst[v] = p->gnext[v] = -1;
		if (vms[v].group >= 0)
			idx[n++] = v;
	}
	qsort_r(idx, (size_t)n, sizeof(int), by_group, (void *)vms);
	for (int i = 0, start = 0; i < n; i++) {
		if (i > 0 && vms[idx[i]].group != vms[idx[i - 1]].group)
			start = i;
		p->gfirst[idx[i]] = idx[start];
		if (i + 1 < n && vms[idx[i + 1]].group == vms[idx[i]].group)
			p->gnext[idx[i]] = idx[i + 1];
	}
	free(idx);
	return 0;
}

static int pctx_init(struct pctx *p, const struct cluster *c, const struct plan_opts *o,
                     struct plan_result *out)
{
	int H = c->nhosts, V = c->nvms;
	size_t h1 = (size_t)H + 1, v1 = (size_t)V + 1;

	memset(p, 0, sizeof(*p));
	p->c = c;
	p->o = o;
	p->out = out;
	p->load = calloc(h1, sizeof(*p->load));
	p->acpu = calloc(h1, sizeof(double));
	p->amem = calloc(h1, sizeof(double));
	p->vol = calloc(h1, sizeof(double));
	p->moves = calloc(h1, sizeof(int));
	p->head = malloc(h1 * sizeof(int));
	p->next = malloc(v1 * sizeof(int));
	p->prev = malloc(v1 * sizeof(int));
	p->vhost = malloc(v1 * sizeof(int));
	p->planned = calloc(v1, sizeof(bool));
	p->cand = malloc(h1 * sizeof(int));
	p->unit = malloc(v1 * sizeof(int));
	p->gfirst = malloc(v1 * sizeof(int));
	p->gnext = malloc(v1 * sizeof(int));
	p->fc = calloc(h1, sizeof(*p->fc));
	p->ms = calloc(h1, sizeof(*p->ms));
	if (!p->fc || !p->ms || !p->load || !p->acpu || !p->amem || !p->vol || !p->moves ||
	    !p->head || !p->next || !p->prev || !p->vhost || !p->planned || !p->cand || !p->unit ||
	    !p->gfirst || !p->gnext || link_groups(p) < 0)
		return -ENOMEM;
	for (int h = 0; h < H; h++) {
		memcpy(p->load[h], c->hosts[h].load, sizeof(p->load[h]));
		memcpy(p->fc[h], c->hosts[h].fc, sizeof(p->fc[h]));
		memcpy(p->ms[h], c->hosts[h].ms, sizeof(p->ms[h]));
		p->head[h] = -1;
		p->moves[h] = c->hosts[h].inflight;
	}
	/* reverse order so each host's list runs in index order */
	for (int v = V - 1; v >= 0; v--) {
		int h = c->vms[v].host;
		list_add(p, v, h);
		p->acpu[h] += c->vms[v].vcpus;
		p->amem[h] += c->vms[v].mem_mib;
	}
	for (int h = 0; h < H; h++) {
		p->vol[h] = host_volume(p, h);
		cand_insert(p, h);
	}
	return 0;
}

static double max_volume(const struct pctx *p)
{
	double m = 0;

	for (int h = 0; h < p->c->nhosts; h++)
		if (p->c->hosts[h].state != HOST_DOWN && p->vol[h] > m)
			m = p->vol[h];
	return m;
}

static int relieve_host(struct pctx *p, int h, int *vmbuf, double *keybuf)
{
	const struct cl_host *H = &p->c->hosts[h];
	struct tally t;
	int res = hottest_res(p, h), n, rc, moved = 0, helpful = 0;

	memset(&t, 0, sizeof(t));
	if (H->excluded)
		return add_unresolved(p, h, WHY_RULE, "%s is hot on %s but excluded from balancing",
		                      H->id, res_names[res]);
	n = sorted_vms(p, h, vmbuf, keybuf);
	for (int i = 0; i < n && !relieved(p, h); i++) {
		if (p->planned[vmbuf[i]] || !helps(p, vmbuf[i], h))
			continue; /* planned: moved already with its affinity group */
		helpful++;
		rc = try_move(p, vmbuf[i], h, PLAN_MOVE, res, &t);
		if (rc < 0)
			return rc;
		moved += rc;
	}
	if (!relieved(p, h) && p->o->swaps && helpful) {
		n = sorted_vms(p, h, vmbuf, keybuf);
		rc = try_swap(p, h, res, vmbuf, n, &t);
		if (rc < 0)
			return rc;
		moved += rc;
	}
	if (relieved(p, h))
		return 0;
	if (!helpful)
		return add_unresolved(p, h, WHY_NO_MOVABLE,
		                      "%s is hot on %s (%.0f%%) but none of its VMs uses it", H->id,
		                      res_names[res], 100 * host_util(p, h, res));
	if (moved)
		return add_unresolved(
		    p, h, WHY_PARTIAL, "%s is still at %.0f%% %s after %d planned moves; %s", H->id,
		    100 * host_util(p, h, res), res_names[res], moved, main_text(&t, main_why(&t)));
	return add_unresolved(p, h, main_why(&t), "%s is hot on %s (%.0f%% > %.0f%%): %s", H->id,
	                      res_names[res], 100 * host_util(p, h, res), 100 * H->thr[res],
	                      main_text(&t, main_why(&t)));
}

static int evacuate_host(struct pctx *p, int h, int *vmbuf, double *keybuf)
{
	struct tally t;
	int n, rc, left = 0;

	memset(&t, 0, sizeof(t));
	if (p->c->hosts[h].excluded)
		return add_unresolved(
		    p, h, WHY_RULE,
		    "%s is in maintenance but excluded from balancing: its VMs stay",
		    p->c->hosts[h].id);
	n = sorted_vms(p, h, vmbuf, keybuf);
	for (int i = 0; i < n; i++) {
		if (p->planned[vmbuf[i]] || p->vhost[vmbuf[i]] != h)
			continue; /* moved already with its affinity group */
		rc = try_move(p, vmbuf[i], h, PLAN_EVACUATE, -1, &t);
		if (rc < 0)
			return rc;
		if (rc == 0)
			left++;
	}
	if (!left)
		return 0;
	return add_unresolved(p, h, main_why(&t),
	                      "%s is in maintenance; %d VMs stay this round: %s", p->c->hosts[h].id,
	                      left, main_text(&t, main_why(&t)));
}

/* --- prevention: hosts at risk -------------------------------------------- */

#define RISK_MAX_T     16   /* feasible targets scored per VM, in volume order */
#define RISK_MIN_CUT   0.2  /* a move must cut the source's risk by this share */
#define RISK_DST_SHARE 0.25 /* a target's risk stays under this share of the target */

static void horizon_text(const struct pctx *p, char *buf, size_t cap)
{
	unsigned h = p->o->risk.horizon ? p->o->risk.horizon : 1;
	double s = h * p->o->sample_s;

	if (p->o->sample_s <= 0)
		snprintf(buf, cap, "%u sample%s", h, h > 1 ? "s" : "");
	else if (s >= 90)
		snprintf(buf, cap, "%.0f min", s / 60);
	else
		snprintf(buf, cap, "%.0f s", s);
}

static int prevent_host(struct pctx *p, int h, int *vmbuf, double *keybuf)
{
	const struct cl_host *H = &p->c->hosts[h];
	const double target = p->o->risk_target;
	int moved = 0;

	if (H->excluded)
		return 0;
	for (;;) {
		double per[RES_N], r0 = host_risk(p, h, per), best = 0, b_rs = 0, b_rd0 = 0,
		                   b_rd1 = 0, b_cost = 0;
		int n = sorted_vms(p, h, vmbuf, keybuf), bv = -1, bd = -1, res = 0;
		char hz[32], why[220];

		if (r0 <= target)
			break;
		for (int r = 1; r < RES_N; r++)
			if (per[r] > per[res])
				res = r;
		/* each movable VM's bound: the source's drop per second (a target's
		 * rise only lowers it), best first; stop at a bound no better than
		 * the best pair found */
		for (int i = 0; i < n; i++) {
			int v = vmbuf[i], nu, blocked = 0;
			double dem[RES_N], vcpus, mem, cost, rs;

			keybuf[i] = -1;
			if (p->planned[v])
				continue;
			nu = build_unit(p, v, dem, &vcpus, &mem);
			for (int j = 0; j < nu && !blocked; j++)
				blocked = vm_blocked(p, p->unit[j], h) != WHY_NONE;
			if (blocked || !limit_ok(p, nu) || !host_limit_ok(p, h, nu))
				continue;
			cost = unit_cost(p, nu);
			if (cost <= 0)
				continue;
			rs = risk_with(p, h, nu, -1);
			if (rs <= r0 * (1 - RISK_MIN_CUT))
				keybuf[i] = (r0 - rs) / cost;
		}
		for (int i = 1; i < n; i++) { /* stable: ties keep the VSR order */
			int v = vmbuf[i], j = i - 1;
			double k = keybuf[i];
			while (j >= 0 && keybuf[j] < k) {
				vmbuf[j + 1] = vmbuf[j];
				keybuf[j + 1] = keybuf[j];
				j--;
			}
			vmbuf[j + 1] = v;
			keybuf[j + 1] = k;
		}
		for (int i = 0; i < n && keybuf[i] > best + EPS; i++) {
			int v = vmbuf[i], nu, scanned = 0;
			double dem[RES_N], vcpus, mem, cost, rs;

			nu = build_unit(p, v, dem, &vcpus, &mem);
			cost = unit_cost(p, nu);
			rs = risk_with(p, h, nu, -1);
			for (int c = 0, pass = 0;
			     (c < p->ncand && scanned < RISK_MAX_T) ||
			     (pack_wake(p, pass) && bv < 0 && (c = 0, scanned = 0, ++pass));
			     c++) {
				int d = p->cand[c];
				double rd0, rd1, score;
				if (d == h ||
				    (p->o->objective == PLAN_PACK && (pass == 0) != in_use(p, d)) ||
				    p->c->hosts[d].hot[RES_CPU] || p->c->hosts[d].hot[RES_MEM] ||
				    p->c->hosts[d].hot[RES_NET] || !host_limit_ok(p, d, nu) ||
				    !rules_ok(p, p->unit, nu, d) ||
				    fits(p, d, dem, vcpus, mem, true))
					continue;
				scanned++;
				rd0 = host_risk(p, d, NULL);
				rd1 = risk_with(p, d, nu, +1);
				if (rd1 > target * RISK_DST_SHARE)
					continue;
				score = ((r0 - rs) - (rd1 > rd0 ? rd1 - rd0 : 0)) / cost;
				if (score > best + EPS) {
					best = score;
					bv = v;
					bd = d;
					b_rs = rs;
					b_rd0 = rd0;
					b_rd1 = rd1;
					b_cost = cost;
				}
			}
		}
		if (bv < 0)
			break;
		horizon_text(p, hz, sizeof(hz));
		{
			int nu = build_unit(p, bv, (double[RES_N]){0}, &(double){0}, &(double){0});
			const struct cl_host *D = &p->c->hosts[bd];
			snprintf(why, sizeof(why),
			         "%s has a %.1f%% chance of passing %.0f%% %s in the next %s "
			         "(forecast %.0f%%); moving vm %s%s to %s brings it to %.1f%% (%s "
			         "%.1f%% -> %.1f%%)",
			         H->id, 100 * r0, 100 * H->thr[res], res_names[res], hz,
			         H->cap[res] > 0 ? 100 * p->fc[h][res] / H->cap[res] : 0,
			         p->c->vms[bv].id, nu > 1 ? " with its affinity group" : "", D->id,
			         100 * b_rs, D->id, 100 * b_rd0, 100 * b_rd1);
			if (record_moves(p, nu, h, bd, PLAN_PREVENT, res, b_cost, -1, why) < 0)
				return -ENOMEM;
		}
		moved++;
	}
	return moved;
}

/* --- objective pack: empty the least-loaded hosts ------------------------- */

#define PACK_MAX_T     128 /* targets tried per VM, fullest first */
#define PACK_DST_SHARE 0.5 /* a host being filled stays under this share of the risk target */
/* donors dry-run per plan, least loaded first: bounds pack's time on large
 * clusters (the fullest hosts are the least likely to empty; the next round
 * tries again from the least loaded) */
#define PACK_MAX_DONORS 1024

/* What a dry run changes on a host, to put it back. */
struct hsnap {
	int h, moves;
	double load[RES_N], fc[RES_N], ms[RES_N], acpu, amem, vol;
};

static void snap_save(struct pctx *p, struct hsnap *s, int *ns, int h)
{
	for (int i = 0; i < *ns; i++)
		if (s[i].h == h)
			return;
	s[*ns].h = h;
	s[*ns].moves = p->moves[h];
	memcpy(s[*ns].load, p->load[h], sizeof(s[*ns].load));
	memcpy(s[*ns].fc, p->fc[h], sizeof(s[*ns].fc));
	memcpy(s[*ns].ms, p->ms[h], sizeof(s[*ns].ms));
	s[*ns].acpu = p->acpu[h];
	s[*ns].amem = p->amem[h];
	s[*ns].vol = p->vol[h];
	(*ns)++;
}

static void snap_restore(struct pctx *p, const struct hsnap *s, int ns)
{
	for (int i = 0; i < ns; i++) {
		int h = s[i].h;
		cand_remove(p, h);
		p->moves[h] = s[i].moves;
		memcpy(p->load[h], s[i].load, sizeof(s[i].load));
		memcpy(p->fc[h], s[i].fc, sizeof(s[i].fc));
		memcpy(p->ms[h], s[i].ms, sizeof(s[i].ms));
		p->acpu[h] = s[i].acpu;
		p->amem[h] = s[i].amem;
		p->vol[h] = s[i].vol;
		cand_insert(p, h);
	}
}

/* The fullest host in use, other than src and the hosts marked in skip,
 * that takes the unit within capacity, headroom, rules and limits and whose
 * risk stays under target x PACK_DST_SHARE; -1 if none. */
static int pack_target(const struct pctx *p, int src, int n, const double dem[RES_N], double vcpus,
                       double mem, const char *skip, double *rd1)
{
	const double lim = p->o->risk_target * PACK_DST_SHARE;
	int scanned = 0;

	for (int i = p->ncand - 1; i >= 0 && scanned < PACK_MAX_T; i--) {
		int d = p->cand[i];
		if (d == src || skip[d] || !in_use(p, d) || any_hot(&p->c->hosts[d]) ||
		    !host_limit_ok(p, d, n) || !rules_ok(p, p->unit, n, d))
			continue;
		scanned++;
		if (fits(p, d, dem, vcpus, mem, false))
			continue;
		*rd1 = risk_with(p, d, n, +1);
		if (*rd1 <= lim)
			return d;
	}
	return -1;
}

/* Empties host h if every one of its VMs finds a fuller host that stays
 * under the pack risk limit; moves as many as the limits allow this round
 * (the rest in later rounds: h stays the emptiest). 1 when moves were
 * planned, 0 when not, -ENOMEM. */
static int pack_host(struct pctx *p, int h, char *skip, int *vmbuf, double *keybuf,
                     struct hsnap *snap, int *dst)
{
	const struct cl_host *H = &p->c->hosts[h];
	int n = 0, ns = 0, k, left, ok = 1, total;
	double u = H->cap[RES_CPU] > 0 ? p->load[h][RES_CPU] / H->cap[RES_CPU] : 0;

	for (int v = p->head[h]; v >= 0; v = p->next[v]) {
		if (vm_blocked(p, v, h) != WHY_NONE || p->c->vms[v].group >= 0)
			return 0; /* a VM that cannot move (or moves with a group): h stays */
		vmbuf[n] = v;
		keybuf[n++] = p->c->vms[v].demand[RES_CPU];
	}
	if (n == 0)
		return 0;
	for (int i = 1; i < n; i++) { /* largest demand first, as best fit wants */
		int v = vmbuf[i], j = i - 1;
		double key = keybuf[i];
		while (j >= 0 && keybuf[j] < key) {
			vmbuf[j + 1] = vmbuf[j];
			keybuf[j + 1] = keybuf[j];
			j--;
		}
		vmbuf[j + 1] = v;
		keybuf[j + 1] = key;
	}
	total = n;
	left = p->o->max_per_round > 0 ? p->o->max_per_round - p->nround : n;
	if (p->o->max_per_host > 0 && p->o->max_per_host - p->moves[h] < left)
		left = p->o->max_per_host - p->moves[h];
	if (left <= 0)
		return 0;
	skip[h] = 1;
	/* dry run: every VM placed, cumulatively, then all put back */
	snap_save(p, snap, &ns, h);
	for (int i = 0; i < n && ok; i++) {
		double dem[RES_N], vcpus, mem, rd1;
		int v = vmbuf[i];
		build_unit(p, v, dem, &vcpus, &mem);
		dst[i] = pack_target(p, h, 1, dem, vcpus, mem, skip, &rd1);
		if (dst[i] < 0 ||
		    cluster_migration_seconds(p->c->vms[v].mem_mib, p->c->vms[v].dirty_mbit,
		                              p->o->link_mbit) < 0) {
			ok = 0;
			n = i;
			break;
		}
		snap_save(p, snap, &ns, dst[i]);
		project_move(p, v, dst[i]);
		p->moves[dst[i]]++;
	}
	for (int i = n - 1; i >= 0; i--) {
		list_remove(p, vmbuf[i]);
		list_add(p, vmbuf[i], h);
	}
	snap_restore(p, snap, ns);
	if (!ok) {
		skip[h] = 0; /* it may still take VMs of others */
		return 0;
	}
	k = n < left ? n : left;
	for (int i = 0; i < k; i++) {
		double dem[RES_N], vcpus, mem, cost, rb = host_risk(p, dst[i], NULL);
		const struct cl_host *D = &p->c->hosts[dst[i]];
		int v = vmbuf[i];
		char why[220];
		build_unit(p, v, dem, &vcpus, &mem);
		cost = unit_cost(p, 1);
		snprintf(why, sizeof(why),
		         "pack: %s (cpu %.0f%%) can be emptied, its %d VM%s fit on fuller hosts "
		         "under %.1f%% risk; vm %s to %s (risk %.1f%% -> %.1f%%)",
		         H->id, 100 * u, total, total > 1 ? "s" : "",
		         100 * p->o->risk_target * PACK_DST_SHARE, p->c->vms[v].id, D->id, 100 * rb,
		         100 * risk_with(p, dst[i], 1, +1));
		if (record_moves(p, 1, h, dst[i], PLAN_CONSOLIDATE, RES_CPU, cost, -1, why) < 0)
			return -ENOMEM;
	}
	return 1;
}

/* Donors: hosts in use, up, not excluded, not hot, not at risk, the least
 * loaded (lowest volume) first, each emptied whole or not at all. */
static int pack(struct pctx *p, int *vmbuf, double *keybuf)
{
	int H = p->c->nhosts, nd = 0, rc = 0, *order = malloc(((size_t)H + 1) * sizeof(int));
	int *dst = malloc(((size_t)p->c->nvms + 1) * sizeof(int));
	char *skip = calloc((size_t)H + 1, 1);
	struct hsnap *snap = malloc(((size_t)p->c->nvms + 2) * sizeof(*snap));

	if (!order || !dst || !skip || !snap) {
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < p->ncand; i++) {
		int h = p->cand[i];
		if (in_use(p, h) && !any_hot(&p->c->hosts[h]) &&
		    host_risk(p, h, NULL) <= p->o->risk_target)
			order[nd++] = h;
	}
	if (nd > PACK_MAX_DONORS)
		nd = PACK_MAX_DONORS;
	for (int i = 0; i < nd && rc >= 0; i++) {
		if (!limit_ok(p, 1))
			break;
		if (in_use(p, order[i]) && p->moves[order[i]] <= p->c->hosts[order[i]].inflight)
			rc = pack_host(p, order[i], skip, vmbuf, keybuf, snap, dst);
	}
out:
	free(order);
	free(dst);
	free(skip);
	free(snap);
	return rc < 0 ? rc : 0;
}

int plan_compute(const struct cluster *c, const struct plan_opts *o, struct plan_result *out)
{
	struct pctx p;
	int *hot = NULL, *vmbuf = NULL, nhot = 0, rc;
	double *keybuf = NULL;

	memset(out, 0, sizeof(*out));
	for (int v = 0; v < c->nvms; v++)
		if (c->vms[v].host < 0 || c->vms[v].host >= c->nhosts)
			return -EINVAL;
	rc = pctx_init(&p, c, o, out);
	hot = malloc(((size_t)c->nhosts + 1) * sizeof(int));
	out->overdemand = malloc(((size_t)c->nvms + 1) * sizeof(int));
	out->risk = calloc((size_t)c->nhosts + 1, sizeof(double));
	out->risk_after = calloc((size_t)c->nhosts + 1, sizeof(double));
	if (rc < 0 || !hot || !out->overdemand || !out->risk || !out->risk_after) {
		rc = -ENOMEM;
		goto out;
	}
	for (int v = 0; v < c->nvms; v++) {
		const struct cl_vm *vm = &c->vms[v];
		if ((vm->vcpus > 0 && vm->demand[RES_CPU] > vm->vcpus + EPS) ||
		    (vm->mem_mib > 0 && vm->demand[RES_MEM] > vm->mem_mib + EPS))
			out->overdemand[out->noverdemand++] = v;
	}
	/* moves can gather more VMs on a host than any had at the start */
	vmbuf = malloc(((size_t)c->nvms + 1) * sizeof(int));
	keybuf = malloc(((size_t)c->nvms + 1) * sizeof(double));
	if (!vmbuf || !keybuf) {
		rc = -ENOMEM;
		goto out;
	}
	out->max_vol_before = max_volume(&p);
	for (int h = 0; h < c->nhosts; h++)
		out->risk[h] = host_risk(&p, h, NULL);
	/* resize in place first: a VM that gets more where it is needs no move */
	if (o->resize) {
		struct resize_view w = {c,         p.load, p.fc,  p.acpu, p.amem,
		                        p.planned, out,    vmbuf, keybuf};
		if ((rc = resize_plan(&w)) < 0)
			goto out;
		/* every action so far is a resize: its host's volume and place
		 * among the targets follow */
		for (int i = 0; i < out->nactions; i++) {
			int h = out->actions[i].from;
			cand_remove(&p, h);
			p.vol[h] = host_volume(&p, h);
			cand_insert(&p, h);
		}
	}

	for (int h = 0; h < c->nhosts; h++) {
		const struct cl_host *H = &c->hosts[h];
		if (H->state == HOST_UP && (H->hot[RES_CPU] || H->hot[RES_MEM] || H->hot[RES_NET]))
			hot[nhot++] = h;
	}
	/* hottest first; ties by index */
	for (int i = 1; i < nhot; i++) {
		int x = hot[i], j = i - 1;
		while (j >= 0 &&
		       (p.vol[hot[j]] < p.vol[x] || (p.vol[hot[j]] == p.vol[x] && hot[j] > x))) {
			hot[j + 1] = hot[j];
			j--;
		}
		hot[j + 1] = x;
	}
	for (int i = 0; i < nhot; i++) {
		if (relieved(&p, hot[i]))
			continue; /* an earlier move of this round already helped it */
		rc = relieve_host(&p, hot[i], vmbuf, keybuf);
		if (rc < 0)
			goto out;
	}
	for (int h = 0; h < c->nhosts; h++) {
		if (c->hosts[h].state != HOST_MAINTENANCE)
			continue;
		rc = evacuate_host(&p, h, vmbuf, keybuf);
		if (rc < 0)
			goto out;
	}
	/* prevention, riskiest first (ties by index), with what is left of the
	 * round's limits */
	nhot = 0;
	for (int h = 0; h < c->nhosts; h++) {
		const struct cl_host *H = &c->hosts[h];
		double *rk = out->risk_after; /* projected after relief, for the order */
		rk[h] = host_risk(&p, h, NULL);
		if (o->risk_target > 0 && out->risk[h] > o->risk_target)
			out->nrisky++;
		if (o->risk_target > 0 && H->state == HOST_UP && !H->hot[RES_CPU] &&
		    !H->hot[RES_MEM] && !H->hot[RES_NET] && rk[h] > o->risk_target)
			hot[nhot++] = h;
	}
	for (int i = 1; i < nhot; i++) {
		const double *rk = out->risk_after;
		int x = hot[i], j = i - 1;
		while (j >= 0 && (rk[hot[j]] < rk[x] || (rk[hot[j]] == rk[x] && hot[j] > x))) {
			hot[j + 1] = hot[j];
			j--;
		}
		hot[j + 1] = x;
	}
	for (int i = 0; i < nhot; i++) {
		rc = prevent_host(&p, hot[i], vmbuf, keybuf);
		if (rc < 0)
			goto out;
	}
	if (o->objective == PLAN_PACK && o->risk_target > 0 && (rc = pack(&p, vmbuf, keybuf)) < 0)
		goto out;
	for (int h = 0; h < c->nhosts; h++)
		out->risk_after[h] = host_risk(&p, h, NULL);
	out->max_vol_after = max_volume(&p);
	/* the hosts the plan leaves without VMs */
	out->emptied = malloc(((size_t)c->nhosts + 1) * sizeof(int));
	if (!out->emptied) {
		rc = -ENOMEM;
		goto out;
	}
	memset(hot, 0, sizeof(int) * (size_t)c->nhosts);
	for (int v = 0; v < c->nvms; v++)
		hot[c->vms[v].host] = 1;
	for (int h = 0; h < c->nhosts; h++)
		if (hot[h] && p.head[h] < 0)
			out->emptied[out->nemptied++] = h;
	rc = 0;
out:
	free(hot);
	free(vmbuf);
	free(keybuf);
	pctx_free(&p);
	if (rc < 0)
		plan_result_free(out);
	return rc;
}

void plan_result_free(struct plan_result *r)
{
	if (!r)
		return;
	free(r->actions);
	free(r->unresolved);
	free(r->overdemand);
	free(r->emptied);
	free(r->risk);
	free(r->risk_after);
	memset(r, 0, sizeof(*r));
}
