/* policy_thr.c - the "thr-mmt" baseline: CloudSim's THR/MMT (Beloglazov and
 * Buyya, CCPE 2012; github.com/Cloudslab/cloudsim, org.cloudbus.cloudsim.
 * power: PowerVmAllocationPolicyMigrationStaticThreshold (utilisation
 * threshold 0.8), PowerVmSelectionPolicyMinimumMigrationTime, and the
 * optimizeAllocation of PowerVmAllocationPolicyMigrationAbstract).
 *
 *   1. A host is over-utilised when its CPU use is above 80 %.
 *   2. From each, the VM with the shortest migration time (the least RAM)
 *      is taken, again and again, until the host is no longer over.
 *   3. Those VMs, highest CPU use first, go by power-aware best fit
 *      decreasing (PABFD): to the host whose power draw rises least, among
 *      the hosts not over-utilised that have the capacity and would not go
 *      over 80 % (an idle host may), using CloudSim's SPECpower tables for
 *      the HP ProLiant G4/G5 hosts.
 *   4. Then consolidation: the least utilised host (CPU use > 0, no VM
 *      arriving, not all leaving) is emptied if PABFD finds a place for
 *      every one of its VMs among the other hosts in use; again with the
 *      next least utilised host, until every host was considered.
 *
 * As in CloudSim, targets of step 4 are not emptied in turn, and utilisation
 * is the current one (the last step). A host that receives a VM in step 3
 * counts as having a VM migrating in, so step 4 leaves it alone (a VM cannot
 * be sent on twice in one decision). Capacity: CPU use within the host's cores and the
 * allocation within the overcommit limit (CloudSim allocates RAM as
 * configured, without overcommit; the default limit here is the same).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim/policy.h"

#define EPS 1e-9

struct thr {
	int nh, nv;
	double *load, *acpu, *amem;   /* projected cpu use (cores), allocations */
	int *where;                   /* projected host per VM */
	char *over, *xunder, *xplace; /* over-utilised; excluded as source / as target */
	char *busy;                   /* VMs migrating in, or all of its VMs migrating out */
	int *sel, nsel;               /* VMs selected to leave */
	int *tmp;
	double *key;
};

static void thr_free(void *state)
{
	struct thr *s = state;

	if (!s)
		return;
	free(s->load);
	free(s->acpu);
	free(s->amem);
	free(s->where);
	free(s->over);
	free(s->xunder);
	free(s->xplace);
	free(s->sel);
	free(s->busy);
	free(s->tmp);
	free(s->key);
	free(s);
}

static int thr_init(void **state, const struct sim_model *m)
{
	struct thr *s = calloc(1, sizeof(*s));
	size_t H = (size_t)m->nhosts + 1, V = (size_t)m->nvms + 1;

	*state = s;
	if (!s)
		return -ENOMEM;
	s->nh = m->nhosts;
	s->nv = m->nvms;
	s->load = malloc(H * sizeof(double));
	s->acpu = malloc(H * sizeof(double));
	s->amem = malloc(H * sizeof(double));
	s->where = malloc(V * sizeof(int));
	s->over = malloc(H);
	s->xunder = malloc(H);
	s->xplace = malloc(H);
	s->sel = malloc(V * sizeof(int));
	s->busy = malloc(H);
	s->tmp = malloc(V * sizeof(int));
	s->key = malloc(V * sizeof(double));
	return s->load && s->acpu && s->amem && s->where && s->over && s->xunder && s->xplace &&
	               s->sel && s->busy && s->tmp && s->key
	           ? 0
	           : -ENOMEM;
}

static double util(const struct thr *s, const struct sim_model *m, int h)
{
	double cap = m->hosts[h].cap[RES_CPU];

	return cap > 0 ? s->load[h] / cap : 0;
}

static void project(struct thr *s, const struct sim_model *m, int v, int from, int to)
{
	double d = m->vload[v][RES_CPU];

	if (from >= 0) {
		s->load[from] -= d;
		s->acpu[from] -= m->vms[v].vcpus;
		s->amem[from] -= m->vms[v].mem_mib;
	}
	if (to >= 0) {
		s->load[to] += d;
		s->acpu[to] += m->vms[v].vcpus;
		s->amem[to] += m->vms[v].mem_mib;
	}
	s->where[v] = to;
}

/* PABFD's findHostForVm: the host whose power rises least; -1 none. */
static int find_host(const struct thr *s, const struct sim_model *m, int v, const char *excl)
{
	double thr = m->cfg->thr_mmt, d = m->vload[v][RES_CPU], best = 0;
	int pick = -1;

	for (int h = 0; h < s->nh; h++) {
		double cap = m->hosts[h].cap[RES_CPU], after, diff;
		if (excl[h] || cap <= 0)
			continue;
		if (s->load[h] + d > cap + EPS ||
		    !model_alloc_fits(m, h, s->acpu[h], s->amem[h], v))
			continue; /* isSuitableForVm */
		after = (s->load[h] + d) / cap;
		if (s->load[h] != 0 && after > thr + EPS)
			continue; /* would be over-utilised after the allocation */
		diff = model_power(m, h, after) - model_power(m, h, s->load[h] / cap);
		if (pick < 0 || diff < best) {
			best = diff;
			pick = h;
		}
	}
	return pick;
}

static int by_cpu_desc(const void *a, const void *b, void *arg)
{
	const double *key = arg;
	int x = *(const int *)a, y = *(const int *)b;

	if (key[x] != key[y])
		return key[x] > key[y] ? -1 : 1;
	return 0;
}

/* Stable sort of vms[0..n) by CPU use, highest first (Java's sort is stable). */
static void sort_cpu(struct thr *s, const struct sim_model *m, int *vms, int n)
{
	for (int i = 0; i < n; i++)
		s->key[vms[i]] = m->vload[vms[i]][RES_CPU];
	/* insertion sort: stable, and the lists are short */
	for (int i = 1; i < n; i++) {
		int v = vms[i], j = i - 1;
		while (j >= 0 && by_cpu_desc(&vms[j], &v, s->key) > 0) {
			vms[j + 1] = vms[j];
			j--;
		}
		vms[j + 1] = v;
	}
}

/* Step 2 for host h: minimum migration time until not over. */
static void select_vms(struct thr *s, const struct sim_model *m, int h)
{
	double thr = m->cfg->thr_mmt;

	while (util(s, m, h) > thr + EPS) {
		int pick = -1;
		for (int v = m->head[h]; v >= 0; v = m->next[v])
			if (m->vms[v].mig < 0 && s->where[v] == h &&
			    (pick < 0 || m->vms[v].mem_mib < m->vms[pick].mem_mib))
				pick = v;
		if (pick < 0)
			return;
		s->sel[s->nsel++] = pick;
		project(s, m, pick, h, -1);
	}
}

/* The VMs of host h that may leave it (not migrating, not moved in step 3). */
static int vms_on(struct thr *s, const struct sim_model *m, int h, int *out)
{
	int n = 0;

	for (int v = m->head[h]; v >= 0; v = m->next[v])
		if (s->where[v] == h && m->vms[v].mig < 0)
			out[n++] = v;
	return n;
}

/* areAllVmsMigratingOutOrAnyVmMigratingIn, for every host at once; a host
 * that receives a VM in step 3 has one migrating in. */
static void mark_busy(struct thr *s, const struct sim_model *m)
{
	for (int h = 0; h < s->nh; h++) {
		int all = m->head[h] >= 0;
		for (int v = m->head[h]; v >= 0 && all; v = m->next[v])
			if (m->vms[v].mig < 0)
				all = 0;
		s->busy[h] = (char)all;
	}
	for (int i = 0; i < m->nmigs; i++)
		s->busy[m->migs[i].to] = 1;
}

static int thr_decide(void *state, const struct sim_model *m, struct sim_moves *out)
{
	struct thr *s = state;
	double thr = m->cfg->thr_mmt;
	int nx = 0, rc;

	s->nsel = 0;
	mark_busy(s, m);
	for (int h = 0; h < s->nh; h++) {
		s->load[h] = m->hload[h][RES_CPU];
		s->acpu[h] = m->acpu[h];
		s->amem[h] = m->amem[h];
	}
	for (int v = 0; v < s->nv; v++)
		s->where[v] = m->vms[v].host;
	for (int h = 0; h < s->nh; h++) {
		s->over[h] = util(s, m, h) > thr + EPS;
		s->xunder[h] = s->over[h] || s->load[h] == 0; /* over or switched off */
		s->xplace[h] = s->xunder[h];
		nx += s->xunder[h];
	}
	/* steps 1-3 */
	for (int h = 0; h < s->nh; h++)
		if (s->over[h])
			select_vms(s, m, h);
	sort_cpu(s, m, s->sel, s->nsel);
	for (int i = 0; i < s->nsel; i++) {
		int v = s->sel[i], to = find_host(s, m, v, s->over);
		if (to < 0)
			continue;
		project(s, m, v, -1, to);
		s->busy[to] = 1;
		if ((rc = moves_add(out, v, to, 0)) < 0)
			return rc;
	}
	/* step 4: consolidation */
	while (nx < s->nh) {
		int under = -1, n, placed = 0;
		double minu = 1;
		for (int h = 0; h < s->nh; h++) {
			double u = util(s, m, h);
			if (!s->xunder[h] && u > 0 && u < minu && !s->busy[h]) {
				minu = u;
				under = h;
			}
		}
		if (under < 0)
			break;
		s->xunder[under] = s->xplace[under] = 1;
		nx++;
		n = vms_on(s, m, under, s->tmp);
		if (n == 0)
			continue;
		sort_cpu(s, m, s->tmp, n);
		for (; placed < n; placed++) {
			int v = s->tmp[placed], to = find_host(s, m, v, s->xplace);
			if (to < 0)
				break;
			project(s, m, v, -1, to); /* the source keeps it until done */
		}
		if (placed < n) { /* not all fit: reallocation cancelled */
			for (int i = 0; i < placed; i++) {
				project(s, m, s->tmp[i], s->where[s->tmp[i]], -1);
				s->where[s->tmp[i]] = under;
			}
			continue;
		}
		for (int i = 0; i < n; i++) {
			int v = s->tmp[i];
			if (!s->xunder[s->where[v]]) {
				s->xunder[s->where[v]] = 1;
				nx++;
			}
			if ((rc = moves_add(out, v, s->where[v], 0)) < 0)
				return rc;
		}
	}
	return 0;
}

const struct policy_ops policy_thr_mmt = {
    "thr-mmt",  "CloudSim THR/MMT: 80 % threshold, least RAM first, PABFD, consolidation",
    thr_init,   NULL,
    thr_decide, thr_free,
};
