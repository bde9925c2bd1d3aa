/* policy_stddev.c - the "stddev" baseline: OpenStack Watcher's
 * workload_stabilization strategy (github.com/openstack/watcher,
 * watcher/decision_engine/strategy/strategies/workload_stabilization.py:
 * check_threshold, simulate_migrations, calculate_migration_case,
 * do_execute), with its default metrics (instance cpu and ram usage),
 * weights (1.0 each) and thresholds (0.1 each).
 *
 *   The load of a host per metric is normalised by its capacity; the
 *   cluster's imbalance is the weighted sum of the metrics' standard
 *   deviations over all hosts. When one metric's deviation exceeds its
 *   threshold, every VM is tried on every other host and the move that
 *   lowers the weighted deviation most is kept for it; the VMs' moves,
 *   lowest resulting deviation first, are applied one after the other while
 *   each still lowers the deviation (recomputed after the moves before it),
 *   and the run stops at the first case where any metric's deviation is
 *   below its threshold.
 *
 * Deviations: Watcher's default host choice samples one random destination
 * per VM ("retry", retry_count 1); the issue asks for the move that most
 * lowers the deviation, so this is its "fullsearch" choice. Watcher lists a
 * VM once per improving destination; here once, with its best. Destinations
 * past the overcommit limit are skipped (Nova would refuse the migration);
 * Watcher checks only the disk. Deviations are updated in O(1) per tried
 * move (sums of loads and squares), so a step costs O(VMs * hosts).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/policy.h"

enum { M_CPU, M_MEM, M_N };

struct cand {
	int vm, src, dst;
	double value;
	int seq;
};

struct sd {
	int nh, nv;
	double (*x)[M_N]; /* normalised host load */
	double s1[M_N], s2[M_N];
	double *acpu, *amem;
	struct cand *cand;
};

static void sd_free(void *state)
{
	struct sd *s = state;

	if (!s)
		return;
	free(s->x);
	free(s->acpu);
	free(s->amem);
	free(s->cand);
	free(s);
}

static int sd_init(void **state, const struct sim_model *m)
{
	struct sd *s = calloc(1, sizeof(*s));

	*state = s;
	if (!s)
		return -ENOMEM;
	s->nh = m->nhosts;
	s->nv = m->nvms;
	s->x = malloc(((size_t)s->nh + 1) * sizeof(*s->x));
	s->acpu = malloc(((size_t)s->nh + 1) * sizeof(double));
	s->amem = malloc(((size_t)s->nh + 1) * sizeof(double));
	s->cand = malloc(((size_t)s->nv + 1) * sizeof(*s->cand));
	return s->x && s->acpu && s->amem && s->cand ? 0 : -ENOMEM;
}

static double dev(double s1, double s2, int n)
{
	double mean = s1 / n, var = s2 / n - mean * mean;

	return var > 0 ? sqrt(var) : 0;
}

/* The VM's load in host h's normalised units. */
static void vm_norm(const struct sim_model *m, int v, int h, double a[M_N])
{
	const double *cap = m->hosts[h].cap;

	a[M_CPU] = cap[RES_CPU] > 0 ? m->vload[v][RES_CPU] / cap[RES_CPU] : 0;
	a[M_MEM] = cap[RES_MEM] > 0 ? m->vload[v][RES_MEM] / cap[RES_MEM] : 0;
}

/* Deviations per metric if v moved from src to dst. */
static void move_case(const struct sd *s, const struct sim_model *m, int v, int src, int dst,
                      double out[M_N])
{
	double as[M_N], ad[M_N];

	vm_norm(m, v, src, as);
	vm_norm(m, v, dst, ad);
	for (int k = 0; k < M_N; k++) {
		double xs = s->x[src][k], xd = s->x[dst][k];
		double ns = xs - as[k], nd = xd + ad[k];
		double s1 = s->s1[k] - as[k] + ad[k];
		double s2 = s->s2[k] - xs * xs + ns * ns - xd * xd + nd * nd;
		out[k] = dev(s1, s2, s->nh);
	}
}

static void apply(struct sd *s, const struct sim_model *m, int v, int src, int dst)
{
	double as[M_N], ad[M_N];

	vm_norm(m, v, src, as);
	vm_norm(m, v, dst, ad);
	for (int k = 0; k < M_N; k++) {
		double xs = s->x[src][k], xd = s->x[dst][k];
		double ns = xs - as[k], nd = xd + ad[k];
		s->s1[k] += -as[k] + ad[k];
		s->s2[k] += -xs * xs + ns * ns - xd * xd + nd * nd;
		s->x[src][k] = ns;
		s->x[dst][k] = nd;
	}
	s->acpu[src] -= m->vms[v].vcpus;
	s->amem[src] -= m->vms[v].mem_mib;
	s->acpu[dst] += m->vms[v].vcpus;
	s->amem[dst] += m->vms[v].mem_mib;
}

static int by_value(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	return x->seq - y->seq;
}

static void load_hosts(struct sd *s, const struct sim_model *m)
{
	memset(s->s1, 0, sizeof(s->s1));
	memset(s->s2, 0, sizeof(s->s2));
	for (int h = 0; h < s->nh; h++) {
		const double *cap = m->hosts[h].cap;
		s->x[h][M_CPU] = cap[RES_CPU] > 0 ? m->hload[h][RES_CPU] / cap[RES_CPU] : 0;
		s->x[h][M_MEM] = cap[RES_MEM] > 0 ? m->hload[h][RES_MEM] / cap[RES_MEM] : 0;
		for (int k = 0; k < M_N; k++) {
			s->s1[k] += s->x[h][k];
			s->s2[k] += s->x[h][k] * s->x[h][k];
		}
		s->acpu[h] = m->acpu[h];
		s->amem[h] = m->amem[h];
	}
}

static int sd_decide(void *state, const struct sim_model *m, struct sim_moves *out)
{
	struct sd *s = state;
	double thr = m->cfg->stddev_threshold, cur, min_sd = 1, c[M_N];
	int n = 0, rc;

	if (s->nh < 2)
		return 0;
	load_hosts(s, m);
	if (!(dev(s->s1[M_CPU], s->s2[M_CPU], s->nh) > thr ||
	      dev(s->s1[M_MEM], s->s2[M_MEM], s->nh) > thr))
		return 0;
	cur = dev(s->s1[M_CPU], s->s2[M_CPU], s->nh) + dev(s->s1[M_MEM], s->s2[M_MEM], s->nh);
	/* simulate_migrations, full search */
	for (int src = 0; src < s->nh; src++) {
		for (int v = m->head[src]; v >= 0; v = m->next[v]) {
			struct cand best = {v, src, -1, cur, n};
			if (m->vms[v].mig >= 0)
				continue;
			for (int dst = 0; dst < s->nh; dst++) {
				double w;
				if (dst == src ||
				    !model_alloc_fits(m, dst, s->acpu[dst], s->amem[dst], v))
					continue;
				move_case(s, m, v, src, dst, c);
				w = c[M_CPU] + c[M_MEM];
				if (w < best.value) {
					best.value = w;
					best.dst = dst;
				}
			}
			if (best.dst >= 0)
				s->cand[n++] = best;
		}
	}
	qsort(s->cand, (size_t)n, sizeof(*s->cand), by_value);
	/* do_execute */
	for (int i = 0; i < n; i++) {
		const struct cand *k = &s->cand[i];
		double w;
		if (!model_alloc_fits(m, k->dst, s->acpu[k->dst], s->amem[k->dst], k->vm))
			continue;
		move_case(s, m, k->vm, k->src, k->dst, c);
		w = c[M_CPU] + c[M_MEM];
		if (w < min_sd) {
			min_sd = w;
			apply(s, m, k->vm, k->src, k->dst);
			if ((rc = moves_add(out, k->vm, k->dst, 0)) < 0)
				return rc;
		}
		if (c[M_CPU] < thr || c[M_MEM] < thr)
			break; /* "at least one metric fell below its threshold" */
	}
	return 0;
}

const struct policy_ops policy_stddev = {
    "stddev",  "OpenStack Watcher workload_stabilization: lower the std dev of load",
    sd_init,   NULL,
    sd_decide, sd_free,
};
