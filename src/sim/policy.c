/* policy.c - the policy registry, "none" and "loadease".
 *
 * loadease runs what the controller runs each round, through the same core
 * calls: every host and VM keeps a profile per resource (one sample per
 * step, what the agents publish: host utilisation of its capacity, VM cpu of
 * its vCPUs, mem of its memory, net of its host's NIC); round_host() and
 * round_vm() turn them into the planner's model; plan_compute() plans with
 * the limits, cooldown (cl_vm.last_moved_ms), migrations in flight
 * (cl_vm.migrating, cl_host.inflight) and minimum gain of struct plan_opts.
 * The two halves of a swap run one after the other, as the executor runs
 * them: the second starts when the first ends.
 *
 * Defaults adapted to 5-minute steps (sim_config_defaults): a window of 12
 * samples (1 h), k = 3 of n = 5 (15-25 min over the threshold), peak = p95,
 * cooldown 1 h, no cluster-wide cap per round (a round is 5 minutes, not the
 * controller's seconds), at most 2 migrations per host in flight.
 */
#include "sim/policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plan.h"
#include "core/round.h"

int moves_add(struct sim_moves *mv, int vm, int to, double start_s)
{
	if (mv->n == mv->cap) {
		int nc = mv->cap ? mv->cap * 2 : 64;
		struct sim_move *n = realloc(mv->v, sizeof(*n) * (size_t)nc);
		if (!n)
			return -ENOMEM;
		mv->v = n;
		mv->cap = nc;
	}
	mv->v[mv->n].vm = vm;
	mv->v[mv->n].to = to;
	mv->v[mv->n].start_s = start_s;
	mv->v[mv->n].vcpus = 0;
	mv->n++;
	return 0;
}

int moves_add_resize(struct sim_moves *mv, int vm, double vcpus)
{
	int rc = moves_add(mv, vm, -1, 0);

	if (rc == 0)
		mv->v[mv->n - 1].vcpus = vcpus;
	return rc;
}

void moves_free(struct sim_moves *mv)
{
	if (!mv)
		return;
	free(mv->v);
	memset(mv, 0, sizeof(*mv));
}

/* ---- none ------------------------------------------------------------------- */

static int none_init(void **state, const struct sim_model *m)
{
	*state = NULL;
	return 0;
}

static int none_decide(void *state, const struct sim_model *m, struct sim_moves *out)
{
	return 0;
}

static void none_free(void *state)
{
}

const struct policy_ops policy_none = {
    "none", "initial placement only, no migration", none_init, NULL, none_decide, none_free,
};

/* ---- loadease ---------------------------------------------------------------- */

struct le {
	struct profile (*hprof)[RES_N];
	struct profile (*vprof)[RES_N];
	struct cl_host *hosts;
	struct cl_vm *vms;
	struct cluster c;
	struct round_opts ro;
	struct plan_opts po;
	double *scratch;
	int nh, nv;
};

static void le_free(void *state)
{
	struct le *s = state;

	if (!s)
		return;
	profile_set_free(s->hprof, (size_t)s->nh);
	profile_set_free(s->vprof, (size_t)s->nv);
	free(s->hosts);
	free(s->vms);
	free(s->scratch);
	free(s);
}

static int le_init(void **state, const struct sim_model *m)
{
	const struct sim_config *cfg = m->cfg;
	struct le *s = calloc(1, sizeof(*s));

	*state = s;
	if (!s)
		return -ENOMEM;
	s->nh = m->nhosts;
	s->nv = m->nvms;
	s->hprof = profile_set_new((size_t)s->nh, (size_t)cfg->window);
	s->vprof = profile_set_new((size_t)s->nv, (size_t)cfg->window);
	s->hosts = calloc((size_t)s->nh, sizeof(*s->hosts));
	s->vms = calloc((size_t)s->nv, sizeof(*s->vms));
	s->scratch = calloc(ROUND_SCRATCH(cfg->window), sizeof(double));
	if (!s->hprof || !s->vprof || !s->hosts || !s->vms || !s->scratch)
		return -ENOMEM;
	for (int h = 0; h < s->nh; h++) {
		struct cl_host *H = &s->hosts[h];
		cluster_host_defaults(H);
		snprintf(H->id, sizeof(H->id), "h%d", h);
		memcpy(H->cap, m->hosts[h].cap, sizeof(H->cap));
		H->overcommit_cpu = cfg->overcommit_cpu;
		H->overcommit_mem = cfg->overcommit_mem;
	}
	for (int v = 0; v < s->nv; v++) {
		struct cl_vm *V = &s->vms[v];
		cluster_vm_defaults(V);
		trace_vm_id(m->trace, v, V->id);
		V->vcpus = m->vms[v].vcpus;
		V->mem_mib = m->vms[v].mem_mib;
		V->dirty_mbit = cfg->dirty_mbit;
	}
	s->c.hosts = s->hosts;
	s->c.nhosts = s->nh;
	s->c.vms = s->vms;
	s->c.nvms = s->nv;
	round_opts_defaults(&s->ro);
	s->ro.peak_pct = cfg->peak_pct;
	for (int r = 0; r < RES_N; r++) {
		s->ro.rule[r].threshold = cfg->thr[r];
		s->ro.rule[r].k = (unsigned)cfg->k;
		s->ro.rule[r].n = (unsigned)cfg->n;
	}
	plan_opts_defaults(&s->po);
	s->po.max_per_round = cfg->max_per_round;
	s->po.max_per_host = cfg->max_per_host;
	s->po.cooldown_ms = (int64_t)(cfg->cooldown_s * 1000);
	s->po.link_mbit = cfg->link_mbit;
	s->po.min_gain = cfg->min_gain;
	s->po.swaps = cfg->swaps;
	s->po.risk_target = cfg->risk_target;
	s->po.objective = cfg->pack ? PLAN_PACK : PLAN_SPREAD;
	s->po.resize = cfg->resize;
	s->ro.risk.horizon = (unsigned)cfg->risk_horizon;
	s->po.risk = s->ro.risk;
	s->po.sample_s = m->step_s;
	return 0;
}

static double frac(double x, double of)
{
	double u = of > 0 ? x / of : 0;

	return u < 0 ? 0 : u > 1 ? 1 : u; /* what a utilisation counter can show */
}

/* The agents' part: one sample per profile. */
static int le_observe(void *state, const struct sim_model *m)
{
	struct le *s = state;

	for (int h = 0; h < s->nh; h++)
		for (int r = 0; r < RES_N; r++)
			if (profile_push(&s->hprof[h][r],
			                 frac(m->hload[h][r], m->hosts[h].cap[r])) < 0)
				return -EINVAL;
	for (int v = 0; v < s->nv; v++) {
		const struct sim_vm *vm = &m->vms[v];
		double u[RES_N] = {frac(m->vload[v][RES_CPU], vm->vcpus),
		                   frac(m->vload[v][RES_MEM], vm->mem_mib),
		                   frac(m->vload[v][RES_NET], m->hosts[vm->host].cap[RES_NET])};
		for (int r = 0; r < RES_N; r++)
			if (profile_push(&s->vprof[v][r], u[r]) < 0)
				return -EINVAL;
	}
	return 0;
}

/* The controller's part: the round. */
static int le_decide(void *state, const struct sim_model *m, struct sim_moves *out)
{
	struct le *s = state;
	struct plan_result res;
	int rc;

	for (int h = 0; h < s->nh; h++) {
		round_host(&s->hosts[h], s->hprof[h], &s->ro, s->scratch);
		s->hosts[h].inflight = m->inflight[h];
	}
	for (int v = 0; v < s->nv; v++) {
		const struct sim_vm *vm = &m->vms[v];
		struct cl_vm *V = &s->vms[v];
		V->host = vm->host;
		V->vcpus = vm->vcpus;
		/* resizable up to its size (the CPU percent of the trace is of it) */
		V->max_vcpus = m->cfg->resize && vm->size_vcpus > vm->vcpus ? vm->size_vcpus : 0;
		V->migrating = vm->mig >= 0;
		V->last_moved_ms = vm->last_moved_ms;
		round_vm(V, s->vprof[v], m->hosts[vm->host].cap[RES_NET], &s->ro, s->scratch);
		round_vm_risk(V, s->vprof[v], s->hprof[vm->host], m->hosts[vm->host].cap, &s->ro,
		              s->scratch);
	}
	s->po.now_ms = (int64_t)((m->step + 1) * m->step_s * 1000);
	if ((rc = plan_compute(&s->c, &s->po, &res)) < 0)
		return rc;
	if (m->cfg->explain) {
		for (int i = 0; i < res.nactions; i++)
			fprintf(stderr, "loadease step %d: %s\n", m->step, res.actions[i].reason);
		for (int i = 0; i < res.nunresolved; i++)
			fprintf(stderr, "loadease step %d: unresolved (%s): %s\n", m->step,
			        plan_why_name(res.unresolved[i].why), res.unresolved[i].reason);
	}
	for (int i = 0; i < res.nactions && rc == 0; i++) {
		const struct plan_action *a = &res.actions[i];
		double start = 0;
		if (a->kind == PLAN_RESIZE) {
			if (a->vcpus_after > a->vcpus_before)
				rc = moves_add_resize(out, a->vm, a->vcpus_after);
			continue;
		}
		/* the second half of a swap starts when the first has ended */
		if (a->kind == PLAN_SWAP && i > 0 && res.actions[i - 1].kind == PLAN_SWAP &&
		    res.actions[i - 1].swap_id == a->swap_id)
			start = model_mig_seconds(m, res.actions[i - 1].vm);
		rc = moves_add(out, a->vm, a->to, start < 0 ? 0 : start);
	}
	plan_result_free(&res);
	return rc;
}

const struct policy_ops policy_loadease = {
    "loadease", "LoadEase: Sandpiper relief (k of n + AR(1)) and prevention by risk, from core",
    le_init,    le_observe,
    le_decide,  le_free,
};

/* ---- registry --------------------------------------------------------------- */

const struct policy_ops *const policy_list[] = {
    &policy_none, &policy_proxlb, &policy_stddev, &policy_thr_mmt, &policy_loadease, NULL,
};

const struct policy_ops *policy_find(const char *name)
{
	for (int i = 0; policy_list[i]; i++)
		if (strcmp(policy_list[i]->name, name) == 0)
			return policy_list[i];
	return NULL;
}
