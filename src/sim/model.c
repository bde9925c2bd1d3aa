/* model.c - the simulated cluster, its steps and its migrations; see model.h. */
#include "sim/model.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plan.h"
#include "core/round.h"

#define EPS 1e-9

void sim_config_defaults(struct sim_config *c)
{
	memset(c, 0, sizeof(*c));
	c->seed = 1;
	c->nhosts = 800;
	c->host_cap[RES_CPU] = 2;
	c->host_cap[RES_MEM] = 4096;
	c->host_cap[RES_NET] = 1000;
	for (int r = 0; r < RES_N; r++)
		c->thr[r] = 0.75;
	c->overcommit_cpu = 4;
	c->overcommit_mem = 1;
	c->vm_vcpus[0] = 1;
	c->nvm_vcpus = 1;
	/* CloudSim's PlanetLab VM types: 613, 870, 1740 MiB */
	c->vm_mem[0] = 613;
	c->vm_mem[1] = 870;
	c->vm_mem[2] = 1740;
	c->nvm_mem = 3;
	c->link_mbit = 1000;
	c->mig_cpu = 0.1;
	c->downtime_s = 0.3;
	c->pdm_factor = 0.1;
	c->place_shard = 0;
	c->window = 12;
	c->k = 3;
	c->n = 5;
	c->peak_pct = 95;
	c->cooldown_s = 3600;
	c->max_per_round = 0;
	c->max_per_host = 2;
	c->min_gain = 0.0005;
	c->swaps = true;
	c->vm_start_alloc = 1;
	c->resize = true;
	c->risk_target = 0.2;
	c->risk_horizon = 1;
	c->proxlb_balanciness = 10;
	c->stddev_threshold = 0.1;
	c->thr_mmt = 0.8;
}

static void seterr(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!err || !cap)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void model_free(struct sim_model *m)
{
	if (!m)
		return;
	free(m->hosts);
	free(m->vms);
	free(m->init_host);
	free(m->head);
	free(m->next);
	free(m->prev);
	free(m->count);
	free(m->acpu);
	free(m->amem);
	free(m->hload);
	free(m->vload);
	free(m->vwant);
	free(m->active);
	free(m->inflight);
	free(m->migs);
	free(m->ran);
	memset(m, 0, sizeof(*m));
}

int model_init(struct sim_model *m, const struct sim_config *cfg, struct trace *t, char *err,
               size_t errcap)
{
	size_t H = (size_t)cfg->nhosts + 1, V = (size_t)t->nvms + 1;

	memset(m, 0, sizeof(*m));
	if (cfg->nhosts <= 0 || t->nvms <= 0 || cfg->nvm_vcpus <= 0 || cfg->nvm_mem <= 0) {
		seterr(err, errcap, "need at least one host, one VM and one VM size");
		return -EINVAL;
	}
	m->cfg = cfg;
	m->trace = t;
	m->nhosts = cfg->nhosts;
	m->nvms = t->nvms;
	m->step_s = t->step_s;
	m->hosts = calloc(H, sizeof(*m->hosts));
	m->vms = calloc(V, sizeof(*m->vms));
	m->init_host = calloc(V, sizeof(int));
	m->head = calloc(H, sizeof(int));
	m->next = calloc(V, sizeof(int));
	m->prev = calloc(V, sizeof(int));
	m->count = calloc(H, sizeof(int));
	m->acpu = calloc(H, sizeof(double));
	m->amem = calloc(H, sizeof(double));
	m->hload = calloc(H, sizeof(*m->hload));
	m->vload = calloc(V, sizeof(*m->vload));
	m->vwant = calloc(V, sizeof(double));
	m->active = calloc(H, sizeof(bool));
	m->inflight = calloc(H, sizeof(int));
	if (!m->hosts || !m->vms || !m->init_host || !m->head || !m->next || !m->prev ||
	    !m->count || !m->acpu || !m->amem || !m->hload || !m->vload || !m->vwant ||
	    !m->active || !m->inflight) {
		model_free(m);
		seterr(err, errcap, "out of memory for %d hosts and %d VMs", cfg->nhosts, t->nvms);
		return -ENOMEM;
	}
	for (int h = 0; h < m->nhosts; h++) {
		memcpy(m->hosts[h].cap, cfg->host_cap, sizeof(cfg->host_cap));
		m->hosts[h].power = h % 2;
	}
	for (int v = 0; v < m->nvms; v++) {
		struct sim_vm *vm = &m->vms[v];
		uint64_t r = mix(mix(cfg->seed ^ 0x51e5) ^ (uint64_t)v);
		vm->size_vcpus = t->vcpus[v] > 0
		                     ? t->vcpus[v]
		                     : cfg->vm_vcpus[(r >> 32) % (uint64_t)cfg->nvm_vcpus];
		vm->init_vcpus = cfg->vm_start_alloc > 0 && cfg->vm_start_alloc < 1
		                     ? fmax(1, round(vm->size_vcpus * cfg->vm_start_alloc))
		                     : vm->size_vcpus;
		if (vm->init_vcpus > vm->size_vcpus)
			vm->init_vcpus = vm->size_vcpus;
		vm->vcpus = vm->init_vcpus;
		vm->mem_mib = t->mem_mib[v] > 0
		                  ? t->mem_mib[v]
		                  : cfg->vm_mem[(r & 0xffffffff) % (uint64_t)cfg->nvm_mem];
		vm->host = -1;
		vm->mig = -1;
	}
	m->step = -1;
	return 0;
}

/* ---- VMs per host ---------------------------------------------------------- */

static void list_add(struct sim_model *m, int v, int h)
{
	int p = -1, w = m->head[h];

	while (w >= 0 && w < v) { /* keep the list in index order */
		p = w;
		w = m->next[w];
	}
	m->prev[v] = p;
	m->next[v] = w;
	if (p >= 0)
		m->next[p] = v;
	else
		m->head[h] = v;
	if (w >= 0)
		m->prev[w] = v;
	m->count[h]++;
}

static void list_remove(struct sim_model *m, int v, int h)
{
	if (m->prev[v] >= 0)
		m->next[m->prev[v]] = m->next[v];
	else
		m->head[h] = m->next[v];
	if (m->next[v] >= 0)
		m->prev[m->next[v]] = m->prev[v];
	m->next[v] = m->prev[v] = -1;
	m->count[h]--;
}

void model_reset(struct sim_model *m)
{
	for (int h = 0; h < m->nhosts; h++) {
		m->head[h] = -1;
		m->count[h] = 0;
		m->acpu[h] = m->amem[h] = 0;
		m->inflight[h] = 0;
		m->active[h] = false;
		memset(m->hload[h], 0, sizeof(m->hload[h]));
	}
	for (int v = m->nvms - 1; v >= 0; v--) {
		struct sim_vm *vm = &m->vms[v];
		vm->host = m->init_host[v];
		vm->vcpus = vm->init_vcpus;
		vm->mig = -1;
		vm->last_moved_ms = 0;
		m->prev[v] = -1;
		m->next[v] = m->head[vm->host];
		if (m->head[vm->host] >= 0)
			m->prev[m->head[vm->host]] = v;
		m->head[vm->host] = v;
		m->count[vm->host]++;
		m->acpu[vm->host] += vm->vcpus;
		m->amem[vm->host] += vm->mem_mib;
	}
	m->nmigs = m->nran = m->completed = 0;
	m->downtime_s = 0;
	m->step = -1;
}

/* ---- placement ------------------------------------------------------------ */

struct shard {
	int first, n;          /* hosts [first, first + n) */
	struct cl_host *hosts; /* the planner's view of them */
	struct cl_vm *alloc;   /* one pseudo-VM per host carrying its allocation */
	struct cluster c;
};

int model_place(struct sim_model *m, char *err, size_t errcap)
{
	const struct sim_config *cfg = m->cfg;
	int shard = cfg->place_shard > 0 ? cfg->place_shard : m->nhosts;

	if (cfg->place_shard <= 0 && (double)m->nhosts * m->nvms > MODEL_PLACE_BUDGET) {
		shard = (int)(MODEL_PLACE_BUDGET / m->nvms);
		if (shard < 100)
			shard = 100;
	}
	int ns, rc = 0;
	struct shard *sh;
	struct profile prof[RES_N];
	struct round_opts ro;
	const float *u0;
	double scratch[4];

	if (shard > m->nhosts)
		shard = m->nhosts;
	ns = (m->nhosts + shard - 1) / shard;
	sh = calloc((size_t)ns, sizeof(*sh));
	memset(prof, 0, sizeof(prof));
	round_opts_defaults(&ro);
	if (!sh) {
		seterr(err, errcap, "placement: out of memory");
		return -ENOMEM;
	}
	for (int r = 0; r < RES_N; r++)
		if (profile_init(&prof[r], 1) < 0) {
			rc = -ENOMEM;
			goto out;
		}
	for (int s = 0; s < ns; s++) {
		struct shard *S = &sh[s];
		S->first = s * shard;
		S->n = m->nhosts - S->first < shard ? m->nhosts - S->first : shard;
		S->hosts = calloc((size_t)S->n, sizeof(*S->hosts));
		S->alloc = calloc((size_t)S->n, sizeof(*S->alloc));
		if (!S->hosts || !S->alloc) {
			rc = -ENOMEM;
			goto out;
		}
		for (int i = 0; i < S->n; i++) {
			struct cl_host *h = &S->hosts[i];
			cluster_host_defaults(h);
			snprintf(h->id, sizeof(h->id), "h%d", S->first + i);
			memcpy(h->cap, m->hosts[S->first + i].cap, sizeof(h->cap));
			memcpy(h->thr, cfg->thr, sizeof(h->thr));
			h->overcommit_cpu = cfg->overcommit_cpu;
			h->overcommit_mem = cfg->overcommit_mem;
			cluster_vm_defaults(&S->alloc[i]);
			S->alloc[i].host = i;
		}
		S->c.hosts = S->hosts;
		S->c.nhosts = S->n;
		S->c.vms = S->alloc;
		S->c.nvms = S->n;
	}
	if (!(u0 = trace_step(m->trace, 0))) {
		rc = -ERANGE;
		seterr(err, errcap, "placement: the trace has no step 0");
		goto out;
	}
	for (int v = 0; v < m->nvms; v++) {
		struct shard *S = &sh[v % ns];
		struct sim_vm *vm = &m->vms[v];
		double net = m->hosts[S->first].cap[RES_NET];
		struct place_result pr;
		struct cl_vm c;
		int h;

		cluster_vm_defaults(&c);
		trace_vm_id(m->trace, v, c.id);
		c.vcpus = vm->vcpus;
		c.mem_mib = vm->mem_mib;
		/* the controller's view of a running VM measured once */
		for (int r = 0; r < RES_N; r++) {
			double x = u0[(size_t)v * RES_N + (size_t)r];
			if (r == RES_NET)
				x = net > 0 ? x / net : 0;
			profile_clear(&prof[r]);
			profile_push(&prof[r], x);
		}
		round_vm(&c, prof, net, &ro, scratch);
		if ((rc = place_compute(&S->c, &c, &pr)) < 0)
			goto out;
		if (pr.host < 0) {
			seterr(
			    err, errcap,
			    "initial placement: vm %s (%d of %d, %g vCPU, %g MiB) fits on no host "
			    "of hosts %d..%d: %s; give more hosts (--hosts) or smaller VMs",
			    c.id, v + 1, m->nvms, c.vcpus, c.mem_mib, S->first, S->first + S->n - 1,
			    pr.reason);
			place_result_free(&pr);
			rc = -ENOSPC;
			goto out;
		}
		h = pr.host;
		place_result_free(&pr);
		for (int r = 0; r < RES_N; r++)
			S->hosts[h].load[r] += c.demand[r];
		S->alloc[h].vcpus += c.vcpus;
		S->alloc[h].mem_mib += c.mem_mib;
		m->init_host[v] = S->first + h;
	}
	model_reset(m);
out:
	if (rc == -ENOMEM)
		seterr(err, errcap, "placement: out of memory");
	for (int s = 0; s < ns; s++) {
		free(sh[s].hosts);
		free(sh[s].alloc);
	}
	free(sh);
	for (int r = 0; r < RES_N; r++)
		profile_release(&prof[r]);
	return rc;
}

/* ---- steps and migrations ------------------------------------------------- */

static int add_ran(struct sim_model *m, int v, double secs)
{
	if (m->nran == m->cap_ran) {
		int nc = m->cap_ran ? m->cap_ran * 2 : 64;
		struct sim_mig_run *n = realloc(m->ran, sizeof(*n) * (size_t)nc);
		if (!n)
			return -ENOMEM;
		m->ran = n;
		m->cap_ran = nc;
	}
	m->ran[m->nran].vm = v;
	m->ran[m->nran].secs = secs;
	m->nran++;
	return 0;
}

static double clamp(double x, double lo, double hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

int model_step(struct sim_model *m)
{
	const struct sim_config *cfg = m->cfg;
	const double S = m->step_s;
	const float *u;
	int keep = 0;

	if (m->step + 1 >= m->trace->nsteps)
		return -ERANGE;
	if (!(u = trace_step(m->trace, m->step + 1)))
		return -ERANGE;
	m->step++;
	for (int h = 0; h < m->nhosts; h++) {
		memset(m->hload[h], 0, sizeof(m->hload[h]));
		m->active[h] = false;
		m->inflight[h] = 0;
	}
	for (int v = 0; v < m->nvms; v++) {
		const float *x = &u[(size_t)v * RES_N];
		struct sim_vm *vm = &m->vms[v];
		m->vwant[v] = x[RES_CPU] * vm->size_vcpus;
		m->vload[v][RES_CPU] = m->vwant[v] < vm->vcpus ? m->vwant[v] : vm->vcpus;
		m->vload[v][RES_MEM] = x[RES_MEM] * vm->mem_mib;
		m->vload[v][RES_NET] = x[RES_NET];
		if (vm->mig >= 0)
			continue;
		for (int r = 0; r < RES_N; r++)
			m->hload[vm->host][r] += m->vload[v][r];
		m->active[vm->host] = true;
	}
	m->nran = m->completed = 0;
	for (int i = 0; i < m->nmigs; i++) {
		struct sim_mig g = m->migs[i];
		struct sim_vm *vm = &m->vms[g.vm];
		double a = clamp(g.start_s, 0, S), b = clamp(g.end_s, 0, S), fsrc = b / S;
		double secs = b - a;

		for (int r = 0; r < RES_N; r++) {
			m->hload[g.from][r] += m->vload[g.vm][r] * fsrc;
			m->hload[g.to][r] += m->vload[g.vm][r] * (1 - fsrc);
		}
		m->hload[g.from][RES_CPU] += cfg->mig_cpu * secs / S;
		m->hload[g.to][RES_CPU] += cfg->mig_cpu * secs / S;
		m->active[g.from] = true;
		if (secs > 0 || fsrc < 1)
			m->active[g.to] = true;
		if (secs > 0 && add_ran(m, g.vm, secs) < 0)
			return -ENOMEM;
		if (g.end_s <= S) {
			list_remove(m, g.vm, g.from);
			m->acpu[g.from] -= vm->vcpus;
			m->amem[g.from] -= vm->mem_mib;
			list_add(m, g.vm, g.to);
			vm->host = g.to;
			vm->mig = -1;
			vm->last_moved_ms = llround(((double)m->step * S + g.end_s) * 1000);
			m->downtime_s += cfg->downtime_s;
			m->completed++;
			continue;
		}
		g.start_s -= S;
		g.end_s -= S;
		vm->mig = keep;
		m->inflight[g.from]++;
		m->inflight[g.to]++;
		m->migs[keep++] = g;
	}
	m->nmigs = keep;
	return 0;
}

double model_mig_seconds(const struct sim_model *m, int v)
{
	return cluster_migration_seconds(m->vms[v].mem_mib, m->cfg->dirty_mbit, m->cfg->link_mbit);
}

int model_resize(struct sim_model *m, int v, double vcpus)
{
	struct sim_vm *vm;

	if (v < 0 || v >= m->nvms || !(vcpus >= 1) || vcpus != floor(vcpus))
		return -EINVAL;
	vm = &m->vms[v];
	if (vcpus < vm->vcpus || vcpus > vm->size_vcpus)
		return -EINVAL;
	if (vm->mig >= 0)
		return -EBUSY;
	if (m->acpu[vm->host] + vcpus - vm->vcpus >
	    m->hosts[vm->host].cap[RES_CPU] * m->cfg->overcommit_cpu + EPS)
		return -ENOSPC;
	m->acpu[vm->host] += vcpus - vm->vcpus;
	vm->vcpus = vcpus;
	return 0;
}

bool model_alloc_fits(const struct sim_model *m, int h, double acpu, double amem, int v)
{
	const struct sim_host *H = &m->hosts[h];
	const struct sim_vm *vm = &m->vms[v];

	return acpu + vm->vcpus <= H->cap[RES_CPU] * m->cfg->overcommit_cpu + EPS &&
	       amem + vm->mem_mib <= H->cap[RES_MEM] * m->cfg->overcommit_mem + EPS;
}

int model_migrate(struct sim_model *m, int v, int to, double start_s)
{
	struct sim_vm *vm;
	struct sim_mig *g;
	double dur;

	if (v < 0 || v >= m->nvms || to < 0 || to >= m->nhosts || !(start_s >= 0))
		return -EINVAL;
	vm = &m->vms[v];
	if (vm->mig >= 0)
		return -EBUSY;
	if (vm->host == to)
		return -EINVAL;
	if (!model_alloc_fits(m, to, m->acpu[to], m->amem[to], v))
		return -ENOSPC;
	dur = model_mig_seconds(m, v);
	if (dur < 0)
		return -ERANGE;
	if (m->nmigs == m->cap_migs) {
		int nc = m->cap_migs ? m->cap_migs * 2 : 64;
		struct sim_mig *n = realloc(m->migs, sizeof(*n) * (size_t)nc);
		if (!n)
			return -ENOMEM;
		m->migs = n;
		m->cap_migs = nc;
	}
	g = &m->migs[m->nmigs];
	g->vm = v;
	g->from = vm->host;
	g->to = to;
	g->start_s = start_s;
	g->end_s = start_s + dur;
	g->dur_s = dur;
	vm->mig = m->nmigs++;
	/* the destination reserves the VM's allocation from the start */
	m->acpu[to] += vm->vcpus;
	m->amem[to] += vm->mem_mib;
	m->inflight[g->from]++;
	m->inflight[to]++;
	return 0;
}

double model_power(const struct sim_model *m, int h, double u)
{
	/* CloudSim PowerModelSpecPowerHpProLiantMl110G4Xeon3040 / G5Xeon3075 */
	static const double tab[2][11] = {
	    {86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117},
	    {93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135},
	};
	const double *p = tab[m->hosts[h].power & 1];
	double x = clamp(u, 0, 1) * 10;
	int i = (int)floor(x);

	if (i >= 10)
		return p[10];
	return p[i] + (p[i + 1] - p[i]) * (x - i);
}
