/* policy_proxlb.c - the "proxlb" baseline: ProxLB's rebalancing
 * (github.com/gyptazy/ProxLB, proxlb/models/calculations.py:
 * get_balanciness, get_most_free_node, relocate_guests,
 * validate_node_resources), with method = cpu, mode = used.
 *
 *   Balance while the spread of the nodes' CPU use, highest minus lowest
 *   percent, exceeds the balanciness (default 10 points). Guests are taken
 *   largest first; before each, the spread is checked again; a guest moves
 *   only when its node is still the most loaded one, to the node with the
 *   most free CPU (the lowest percent), when that node's free memory
 *   exceeds the guest's used memory. Resources are updated on paper after
 *   each move.
 *
 * Deviations: ProxLB orders guests by memory used (smaller first unless
 * balance_larger_guests_first); here "largest" is by the balanced resource,
 * CPU used, largest first. ProxLB runs on a schedule (often hours); here it
 * runs every step like every policy. Ties: the lowest host index. Guests
 * migrating and moves past the overcommit limit are skipped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim/policy.h"

struct pl {
	int nh, nv;
	double *pct, *memfree, *acpu, *amem;
	int *where, *order;
	double *key;
};

static void pl_free(void *state)
{
	struct pl *s = state;

	if (!s)
		return;
	free(s->pct);
	free(s->memfree);
	free(s->acpu);
	free(s->amem);
	free(s->where);
	free(s->order);
	free(s->key);
	free(s);
}

static int pl_init(void **state, const struct sim_model *m)
{
	struct pl *s = calloc(1, sizeof(*s));
	size_t H = (size_t)m->nhosts + 1, V = (size_t)m->nvms + 1;

	*state = s;
	if (!s)
		return -ENOMEM;
	s->nh = m->nhosts;
	s->nv = m->nvms;
	s->pct = malloc(H * sizeof(double));
	s->memfree = malloc(H * sizeof(double));
	s->acpu = malloc(H * sizeof(double));
	s->amem = malloc(H * sizeof(double));
	s->where = malloc(V * sizeof(int));
	s->order = malloc(V * sizeof(int));
	s->key = malloc(V * sizeof(double));
	return s->pct && s->memfree && s->acpu && s->amem && s->where && s->order && s->key
	           ? 0
	           : -ENOMEM;
}

static int by_key_desc(const void *a, const void *b, void *arg)
{
	const double *key = arg;
	int x = *(const int *)a, y = *(const int *)b;

	if (key[x] != key[y])
		return key[x] > key[y] ? -1 : 1;
	return x < y ? -1 : x > y;
}

static void extremes(const struct pl *s, int *hi, int *lo)
{
	*hi = *lo = 0;
	for (int h = 1; h < s->nh; h++) {
		if (s->pct[h] > s->pct[*hi])
			*hi = h;
		if (s->pct[h] < s->pct[*lo])
			*lo = h;
	}
}

static int pl_decide(void *state, const struct sim_model *m, struct sim_moves *out)
{
	struct pl *s = state;
	double bal = m->cfg->proxlb_balanciness;
	int n = 0, hi, lo, rc;

	for (int h = 0; h < s->nh; h++) {
		const double *cap = m->hosts[h].cap;
		s->pct[h] = cap[RES_CPU] > 0 ? m->hload[h][RES_CPU] / cap[RES_CPU] * 100 : 0;
		s->memfree[h] = cap[RES_MEM] - m->hload[h][RES_MEM];
		if (s->memfree[h] < 0)
			s->memfree[h] = 0;
		s->acpu[h] = m->acpu[h];
		s->amem[h] = m->amem[h];
	}
	extremes(s, &hi, &lo);
	if (s->pct[hi] - s->pct[lo] <= bal)
		return 0;
	for (int v = 0; v < s->nv; v++) {
		s->where[v] = m->vms[v].host;
		if (m->vms[v].mig >= 0)
			continue;
		s->key[v] = m->vload[v][RES_CPU];
		s->order[n++] = v;
	}
	qsort_r(s->order, (size_t)n, sizeof(int), by_key_desc, s->key);
	for (int i = 0; i < n; i++) {
		int v = s->order[i], src = s->where[v];
		const double *cap;
		if (s->pct[hi] - s->pct[lo] <= bal)
			break; /* balanciness is ok now */
		if (src != hi || lo == hi)
			continue; /* its node is no longer the most loaded */
		if (!(m->vload[v][RES_MEM] < s->memfree[lo]) ||
		    !model_alloc_fits(m, lo, s->acpu[lo], s->amem[lo], v))
			continue; /* insufficient resources on the target */
		if ((rc = moves_add(out, v, lo, 0)) < 0)
			return rc;
		cap = m->hosts[src].cap;
		s->pct[src] -= m->vload[v][RES_CPU] / cap[RES_CPU] * 100;
		s->memfree[src] += m->vload[v][RES_MEM];
		s->acpu[src] -= m->vms[v].vcpus;
		s->amem[src] -= m->vms[v].mem_mib;
		cap = m->hosts[lo].cap;
		s->pct[lo] += m->vload[v][RES_CPU] / cap[RES_CPU] * 100;
		s->memfree[lo] -= m->vload[v][RES_MEM];
		s->acpu[lo] += m->vms[v].vcpus;
		s->amem[lo] += m->vms[v].mem_mib;
		s->where[v] = lo;
		extremes(s, &hi, &lo);
	}
	return 0;
}

const struct policy_ops policy_proxlb = {
    "proxlb",  "ProxLB: busiest node's largest guest to the emptiest (max-min CPU > 10)",
    pl_init,   NULL,
    pl_decide, pl_free,
};
