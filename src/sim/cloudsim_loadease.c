/* cloudsim_loadease.c - LoadEase's planner (src/core, the controller's own
 * code) as a policy of the CloudSim model (cloudsim.h), so that it is judged
 * by CloudSim's rules and metrics beside CloudSim's four policies.
 *
 * Each 300-s update is a controller round:
 *  - every VM still there is a cl_vm: "cpu" is MIPS (its allocation is its
 *    MIPS, its demand the configured percentile of its last --window
 *    utilisation samples x MIPS); memory is its RAM for the migration time
 *    (CloudSim's: RAM / (1 Gbit/s / 16000), the planner's link set to
 *    500 Mbit/s gives the same), with no demand, because CloudSim's VMs
 *    request no RAM after the initial placement; net is not modelled.
 *  - every host is a cl_host of its total MIPS, memory unbounded (as above);
 *    its profile is the sum of its current VMs' histories (what they would
 *    have put on it), so a host's risk follows its VMs as they move.
 *  - a VM of more MIPS than a G4's PE (the 2500-MIPS type) whose demand
 *    passes 80 % of that PE is pinned to the G5 hosts: on a G4 CloudSim's
 *    scheduler caps it at one PE, an SLA violation no host load shows.
 *  - swaps are off (CloudSim starts every migration of a decision at once);
 *    cooldown, limits, thresholds, risk target and objective are the sim's
 *    loadease options (--threshold, --risk-target, --objective, ...).
 * The initial placement is CloudSim's power-aware best fit under the
 * threshold (it is the only placement this world's rules allow at time 0).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plan.h"
#include "core/round.h"
#include "sim/cloudsim.h"
#include "sim/model.h"

#define LE_CS_LINK_MBIT 500 /* RAM x 8 / 500 = CloudSim's RAM / (1e6 / 16000) */
#define LE_CS_PIN_SHARE 0.8 /* of a G4 PE, above which a VM is kept on G5s */

struct lecs {
	const struct sim_config *cfg;
	struct profile (*hprof)[RES_N];
	struct profile (*vprof)[RES_N];
	struct cl_host *hosts;
	struct cl_vm *vms;
	int *vidx;         /* cluster VM -> model VM */
	int64_t *moved_ms; /* per model VM: end of its last migration */
	int *g5;           /* the G5 hosts, for pins */
	int ng5;
	double g4_pe;
	struct round_opts ro;
	struct plan_opts po;
	double *scratch, *sum;
	int nh, nv;
};

static void lecs_free(void *state)
{
	struct lecs *s = state;

	if (!s)
		return;
	profile_set_free(s->hprof, (size_t)s->nh);
	profile_set_free(s->vprof, (size_t)s->nv);
	free(s->hosts);
	free(s->vms);
	free(s->vidx);
	free(s->moved_ms);
	free(s->g5);
	free(s->scratch);
	free(s->sum);
	free(s);
}

static int lecs_init(void **state, const struct cs_model *m)
{
	const struct sim_config *cfg = m->cfg->le;
	struct lecs *s = calloc(1, sizeof(*s));

	*state = s;
	if (!s)
		return -ENOMEM;
	if (!cfg)
		return -EINVAL;
	s->cfg = cfg;
	s->nh = m->nhosts;
	s->nv = m->nvms;
	s->hprof = profile_set_new((size_t)s->nh, (size_t)cfg->window);
	s->vprof = profile_set_new((size_t)s->nv, (size_t)cfg->window);
	s->hosts = calloc((size_t)s->nh, sizeof(*s->hosts));
	s->vms = calloc((size_t)s->nv + 1, sizeof(*s->vms));
	s->vidx = calloc((size_t)s->nv + 1, sizeof(int));
	s->moved_ms = calloc((size_t)s->nv + 1, sizeof(int64_t));
	s->g5 = calloc((size_t)s->nh + 1, sizeof(int));
	s->scratch = calloc(ROUND_SCRATCH(cfg->window), sizeof(double));
	s->sum = calloc((size_t)cfg->window, sizeof(double));
	if (!s->hprof || !s->vprof || !s->hosts || !s->vms || !s->vidx || !s->moved_ms || !s->g5 ||
	    !s->scratch || !s->sum)
		return -ENOMEM;
	s->g4_pe = 0;
	for (int h = 0; h < s->nh; h++) {
		struct cl_host *H = &s->hosts[h];
		cluster_host_defaults(H);
		snprintf(H->id, sizeof(H->id), "h%d", h);
		H->cap[RES_CPU] = m->hosts[h].total_mips;
		H->cap[RES_MEM] = 1e12; /* no RAM after the placement (see the head) */
		H->overcommit_cpu = 1e9;
		H->overcommit_mem = 1;
		if (m->hosts[h].type == 1)
			s->g5[s->ng5++] = h;
		else if (s->g4_pe == 0 || m->hosts[h].pe_mips < s->g4_pe)
			s->g4_pe = m->hosts[h].pe_mips;
	}
	round_opts_defaults(&s->ro);
	s->ro.peak_pct = cfg->peak_pct;
	for (int r = 0; r < RES_N; r++) {
		s->ro.rule[r].threshold = cfg->thr[r];
		s->ro.rule[r].k = (unsigned)cfg->k;
		s->ro.rule[r].n = (unsigned)cfg->n;
	}
	s->ro.risk.horizon = (unsigned)cfg->risk_horizon;
	plan_opts_defaults(&s->po);
	s->po.max_per_round = cfg->max_per_round;
	s->po.max_per_host = cfg->max_per_host;
	s->po.cooldown_ms = (int64_t)(cfg->cooldown_s * 1000);
	s->po.link_mbit = LE_CS_LINK_MBIT;
	s->po.min_gain = cfg->min_gain;
	s->po.swaps = false;
	s->po.risk_target = cfg->risk_target;
	s->po.objective = cfg->pack ? PLAN_PACK : PLAN_SPREAD;
	s->po.risk = s->ro.risk;
	s->po.sample_s = CS_INTERVAL;
	return 0;
}

/* Refills profile p with the newest n of hist (newest first) x scale. */
static int refill(struct profile *p, const double *hist, int n, double scale)
{
	profile_clear(p);
	for (int i = n - 1; i >= 0; i--)
		if (profile_push(p, hist[i] * scale) < 0)
			return -EINVAL;
	return 0;
}

static bool lecs_over(void *ctx, struct cs_model *m, int h, int extra)
{
	const struct lecs *s = ctx;

	return cs_host_req_mips(m, h, extra) / m->hosts[h].total_mips > s->cfg->thr[RES_CPU];
}

static int lecs_place(void *state, struct cs_model *m, int v)
{
	return cs_find_host(m, v, NULL, lecs_over, state);
}

static int lecs_decide(void *state, struct cs_model *m, struct cs_moves *out)
{
	struct lecs *s = state;
	const int W = s->cfg->window;
	struct cluster c = {s->hosts, s->nh, s->vms, 0};
	struct plan_result res;
	int64_t now = (int64_t)(m->clock * 1000);
	int rc = 0;

	for (int h = 0; h < s->nh; h++)
		s->hosts[h].inflight = 0;
	for (int i = 0; i < m->nmigs; i++)
		s->hosts[m->migs[i].to].inflight++;
	/* VMs: their profiles from their own histories */
	for (int v = 0; v < s->nv; v++) {
		const struct cs_vm *vm = &m->vms[v];
		struct cl_vm *V;
		int n = vm->nhist < W ? vm->nhist : W;
		if (vm->gone || vm->home < 0)
			continue;
		V = &s->vms[c.nvms];
		s->vidx[c.nvms++] = v;
		cluster_vm_defaults(V);
		snprintf(V->id, sizeof(V->id), "vm%d", v);
		V->host = vm->home;
		V->vcpus = vm->mips;
		V->mem_mib = vm->ram;
		V->migrating = vm->migrating;
		V->last_moved_ms = s->moved_ms[v];
		if (vm->migrating)
			s->hosts[vm->home].inflight++;
		if ((rc = refill(&s->vprof[v][RES_CPU], vm->hist, n, 1)) < 0)
			return rc;
		profile_clear(&s->vprof[v][RES_MEM]);
		profile_clear(&s->vprof[v][RES_NET]);
		for (int i = 0; i < n; i++) {
			profile_push(&s->vprof[v][RES_MEM], 0);
			profile_push(&s->vprof[v][RES_NET], 0);
		}
	}
	/* hosts: the sum of their VMs' histories */
	for (int h = 0; h < s->nh; h++) {
		double *sum = s->sum, tot = m->hosts[h].total_mips;
		int n = 0;

		memset(sum, 0, sizeof(double) * (size_t)W);
		for (int i = 0; i < c.nvms; i++) {
			const struct cs_vm *vm = &m->vms[s->vidx[i]];
			int k = vm->nhist < W ? vm->nhist : W;
			if (vm->home != h)
				continue;
			for (int j = 0; j < k; j++)
				sum[j] += vm->hist[j] * vm->mips / tot;
			if (k > n)
				n = k;
		}
		for (int r = 0; r < RES_N; r++)
			profile_clear(&s->hprof[h][r]);
		for (int j = n - 1; j >= 0; j--) {
			profile_push(&s->hprof[h][RES_CPU], sum[j]);
			profile_push(&s->hprof[h][RES_MEM], 0);
			profile_push(&s->hprof[h][RES_NET], 0);
		}
		round_host(&s->hosts[h], s->hprof[h], &s->ro, s->scratch);
	}
	for (int i = 0; i < c.nvms; i++) {
		struct cl_vm *V = &s->vms[i];
		int v = s->vidx[i];
		round_vm(V, s->vprof[v], 0, &s->ro, s->scratch);
		round_vm_risk(V, s->vprof[v], s->hprof[V->host], s->hosts[V->host].cap, &s->ro,
		              s->scratch);
		if (m->vms[v].mips > s->g4_pe && V->demand[RES_CPU] > LE_CS_PIN_SHARE * s->g4_pe) {
			V->pin = s->g5;
			V->npin = s->ng5;
		}
	}
	s->po.now_ms = now;
	if ((rc = plan_compute(&c, &s->po, &res)) < 0)
		return rc;
	if (s->cfg->explain)
		for (int i = 0; i < res.nactions; i++)
			fprintf(stderr, "loadease t=%.1f: %s\n", m->clock, res.actions[i].reason);
	for (int i = 0; i < res.nactions && rc == 0; i++) {
		const struct plan_action *a = &res.actions[i];
		int v = s->vidx[a->vm];
		if (a->kind == PLAN_RESIZE || a->to == a->from)
			continue; /* CloudSim's VMs have a fixed size */
		s->moved_ms[v] =
		    now + (int64_t)(1000 * cs_migration_seconds(m->vms[v].ram, CS_HOST_BW));
		rc = cs_moves_add(out, v, a->to);
	}
	plan_result_free(&res);
	return rc;
}

const struct cs_policy_ops cs_policy_loadease = {
    "loadease",  "LoadEase's planner from core: relief, prevention by risk, --objective pack",
    lecs_init,   lecs_place,
    lecs_decide, lecs_free};
