/* cloudsim.c - the CloudSim 3.0.3 model's engine: hosts and their
 * schedulers, the update at every event, migrations, the metrics (see
 * cloudsim.h). The order of floating-point operations follows CloudSim's
 * Java wherever it decides a comparison. */
#include "sim/cloudsim.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const double cs_vm_mips[CS_VM_TYPES] = {2500, 2000, 1000, 500};
const int cs_vm_ram[CS_VM_TYPES] = {870, 1740, 1740, 613};
static const double host_pe_mips[2] = {1860, 2660};
static const double spec_power[2][11] = {
    {86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117}, /* ML110 G4 Xeon 3040 */
    {93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135},  /* ML110 G5 Xeon 3075 */
};

void cs_config_defaults(struct cs_config *c)
{
	*c = (struct cs_config){0};
	c->nhosts = 800;
	c->thr = 0.8;
	c->lr_safety = 1.2;
	c->mad_safety = 2.5;
	c->iqr_safety = 1.5;
	c->fallback_thr = 0.7;
}

/* ---- the pieces ------------------------------------------------------------ */

int cs_vm_type(int i, int n)
{
	return i / (int)ceil((double)n / CS_VM_TYPES);
}

double cs_power(int type, double u)
{
	const double *p = spec_power[type ? 1 : 0];
	double p1, p2, delta;
	int u1, u2;

	if (!(u > 0))
		u = 0;
	if (u > 1)
		u = 1;
	if (fmod(u, 0.1) == 0)
		return p[(int)(u * 10)];
	u1 = (int)floor(u * 10);
	u2 = (int)ceil(u * 10);
	p1 = p[u1];
	p2 = p[u2];
	delta = (p2 - p1) / 10;
	return p1 + delta * (u - (double)u1 / 10) * 100;
}

double cs_energy(int type, double u0, double u1, double dt)
{
	double p0, p1;

	if (u0 == 0)
		return 0;
	p0 = cs_power(type, u0);
	p1 = cs_power(type, u1);
	return (p0 + (p1 - p0) / 2) * dt;
}

double cs_migration_seconds(int ram, long bw)
{
	return ram / ((double)bw / (2 * 8000));
}

double cs_utilization(const double *u, double t)
{
	int t1, t2;
	double delta;

	if (fmod(t, CS_INTERVAL) == 0)
		return u[(int)t / (int)CS_INTERVAL];
	t1 = (int)floor(t / CS_INTERVAL);
	t2 = (int)ceil(t / CS_INTERVAL);
	delta = (u[t2] - u[t1]) / ((t2 - t1) * CS_INTERVAL);
	return u[t1] + delta * (t - t1 * CS_INTERVAL);
}

int cs_vm_leaves(const double *u, int n)
{
	for (int k = 1; k < n; k++)
		if (u[k] == 0 && u[k + 1] == 0)
			return k;
	return -1;
}

/* ---- building ------------------------------------------------------------------ */

static void *grow(void *p, int *cap, int need, size_t size)
{
	int nc;
	void *np;

	if (need < 1)
		need = 1; /* never NULL for an empty list */
	if (need <= *cap)
		return p;
	nc = *cap ? *cap * 2 : 8;
	while (nc < need)
		nc *= 2;
	if (!(np = realloc(p, (size_t)nc * size)))
		return NULL;
	*cap = nc;
	return np;
}

void cs_model_free(struct cs_model *m)
{
	if (!m)
		return;
	if (m->hosts)
		for (int h = 0; h < m->nhosts; h++) {
			free(m->hosts[h].v);
			free(m->hosts[h].in);
			if (m->saved)
				free(m->saved[h]);
		}
	free(m->hosts);
	free(m->vms);
	free(m->u);
	free(m->migs);
	free(m->saved);
	free(m->nsaved);
	free(m->hmark);
	free(m->hmark2);
	free(m->vtmp);
	free(m->htmp);
	free(m->dtmp);
	memset(m, 0, sizeof(*m));
}

int cs_model_init(struct cs_model *m, const struct cs_config *cfg, struct trace *t, char *err,
                  size_t errcap)
{
	int nh = cfg->nhosts, nv = t->nvms, ns = t->nsteps;

	memset(m, 0, sizeof(*m));
	m->cfg = cfg;
	snprintf(m->name, sizeof(m->name), "%s", t->name);
	if (nh < 1 || nh > CS_MAX_HOSTS) {
		snprintf(err, errcap, "cloudsim model: %d hosts (1..%d)", nh, CS_MAX_HOSTS);
		return -EINVAL;
	}
	if (ns < 2 || nv < 1) {
		snprintf(err, errcap,
		         "cloudsim model: the trace needs at least one VM and 2 samples "
		         "(has %d VMs, %d samples)",
		         nv, ns);
		return -EINVAL;
	}
	m->nhosts = nh;
	m->nvms = nv;
	m->nsamples = ns;
	m->limit = ns * CS_INTERVAL;
	m->hosts = calloc((size_t)nh, sizeof(*m->hosts));
	m->vms = calloc((size_t)nv, sizeof(*m->vms));
	m->u = calloc((size_t)nv * (size_t)(ns + 1), sizeof(double));
	m->saved = calloc((size_t)nh, sizeof(*m->saved));
	m->nsaved = calloc((size_t)nh, sizeof(int));
	m->hmark = calloc((size_t)nh, 1);
	m->hmark2 = calloc((size_t)nh, 1);
	m->htmp = calloc((size_t)nh, sizeof(int));
	m->vtmp = calloc((size_t)nv, sizeof(int));
	m->dtmp = calloc((size_t)(nv > nh ? nv : nh), sizeof(double));
	if (!m->hosts || !m->vms || !m->u || !m->saved || !m->nsaved || !m->hmark || !m->hmark2 ||
	    !m->htmp || !m->vtmp || !m->dtmp)
		goto nomem;
	for (int k = 0; k < ns; k++) {
		const float *row = trace_step(t, k);
		if (!row) {
			snprintf(err, errcap, "cloudsim model: %s: cannot read sample %d", t->name,
			         k);
			cs_model_free(m);
			return -EIO;
		}
		for (int v = 0; v < nv; v++) {
			/* CloudSim reads whole percents: Integer.valueOf(line) / 100.0 */
			double f = row[v * RES_N + RES_CPU], p = f * 100, r = nearbyint(p);
			m->u[(size_t)v * (size_t)(ns + 1) + (size_t)k] =
			    fabs(p - r) < 1e-3 ? r / 100.0 : f;
		}
	}
	for (int v = 0; v < nv; v++) {
		struct cs_vm *vm = &m->vms[v];
		double *u = m->u + (size_t)v * (size_t)(ns + 1);
		u[ns] = u[ns - 1];
		vm->u = u;
		vm->type = cs_vm_type(v, nv);
		vm->mips = cs_vm_mips[vm->type];
		vm->ram = cs_vm_ram[vm->type];
	}
	for (int h = 0; h < nh; h++) {
		struct cs_host *ho = &m->hosts[h];
		ho->type = h % 2;
		ho->pe_mips = host_pe_mips[ho->type];
		ho->total_mips = 2 * ho->pe_mips;
	}
	return 0;
nomem:
	cs_model_free(m);
	snprintf(err, errcap, "cloudsim model: out of memory");
	return -ENOMEM;
}

/* ---- hosts: lists and the scheduler ------------------------------------------------ */

bool cs_host_migrating_in(const struct cs_model *m, int h, int v)
{
	const struct cs_host *ho = &m->hosts[h];

	for (int i = 0; i < ho->nin; i++)
		if (ho->in[i] == v)
			return true;
	return false;
}

static int slot_of(const struct cs_host *ho, int v)
{
	for (int i = 0; i < ho->n; i++)
		if (ho->v[i].vm == v)
			return i;
	return -1;
}

double cs_vm_alloc(const struct cs_model *m, int v)
{
	int h = m->vms[v].home, i = h >= 0 ? slot_of(&m->hosts[h], v) : -1;

	return i >= 0 ? m->hosts[h].v[i].alloc : 0;
}

/* VmSchedulerTimeSharedOverSubscription, as it stands after allocating the
 * list in order: each VM capped at one PE; one migrating in needs a tenth;
 * when the next does not fit, all are scaled to the total and floored. */
static void host_alloc(struct cs_model *m, int h)
{
	struct cs_host *ho = &m->hosts[h];
	double avail = ho->total_mips, sum = 0, scale;
	bool fail = false;

	for (int i = 0; i < ho->n; i++) {
		struct cs_slot *s = &ho->v[i];
		bool in = cs_host_migrating_in(m, h, s->vm);
		bool out = !in && m->vms[s->vm].migrating;
		double c = s->reqd > ho->pe_mips ? ho->pe_mips : s->reqd;
		double need = in ? c * 0.1 : c;
		if (!fail && avail >= need) {
			s->alloc = out ? c * 0.9 : in ? c * 0.1 : c;
			avail -= need;
		} else {
			fail = true;
		}
		sum += need;
	}
	if (fail) {
		scale = ho->total_mips / sum;
		for (int i = 0; i < ho->n; i++) {
			struct cs_slot *s = &ho->v[i];
			bool in = cs_host_migrating_in(m, h, s->vm);
			bool out = !in && m->vms[s->vm].migrating;
			double x = s->reqd > ho->pe_mips ? ho->pe_mips : s->reqd;
			if (out) {
				x *= scale;
				x *= 0.9;
			} else if (in) {
				x *= 0.1;
				x *= scale;
			} else {
				x *= scale;
			}
			s->alloc = floor(x);
		}
		avail = 0;
	}
	ho->avail = avail;
}

static int list_add(struct cs_model *m, int h, int v)
{
	struct cs_host *ho = &m->hosts[h];
	struct cs_slot *nv = grow(ho->v, &ho->cap, ho->n + 1, sizeof(*ho->v));

	if (!nv)
		return -ENOMEM;
	ho->v = nv;
	ho->v[ho->n].vm = v;
	ho->v[ho->n].reqd = m->vms[v].req;
	ho->v[ho->n].alloc = 0;
	ho->n++;
	ho->cache_ok = false;
	host_alloc(m, h);
	return 0;
}

static int list_remove(struct cs_model *m, int h, int v)
{
	struct cs_host *ho = &m->hosts[h];
	int i = slot_of(ho, v);

	if (i < 0)
		return -EINVAL;
	memmove(&ho->v[i], &ho->v[i + 1], sizeof(*ho->v) * (size_t)(ho->n - i - 1));
	ho->n--;
	ho->cache_ok = false;
	host_alloc(m, h);
	return 0;
}

double cs_host_util(const struct cs_model *m, int h)
{
	const struct cs_host *ho = &m->hosts[h];
	double u = ho->util_mips / ho->total_mips;

	if (u > 1 && u < 1.01)
		u = 1;
	return u;
}

double cs_host_alloc_mips(const struct cs_model *m, int h)
{
	const struct cs_host *ho = &m->hosts[h];
	double sum = 0;

	for (int i = 0; i < ho->n; i++) {
		if (cs_host_migrating_in(m, h, ho->v[i].vm))
			sum += ho->v[i].alloc * 0.9 / 0.1;
		sum += ho->v[i].alloc;
	}
	return sum;
}

static void host_cache(struct cs_model *m, int h)
{
	struct cs_host *ho = &m->hosts[h];

	if (ho->cache_ok)
		return;
	ho->req_sum = 0;
	ho->max_ram = INT_MIN;
	memset(ho->hist, 0, sizeof(ho->hist));
	for (int i = 0; i < ho->n; i++) {
		const struct cs_vm *vm = &m->vms[ho->v[i].vm];
		ho->req_sum += vm->req;
		if (vm->ram > ho->max_ram)
			ho->max_ram = vm->ram;
		for (int k = 0; k < vm->nhist; k++)
			ho->hist[k] += vm->hist[k] * vm->mips / ho->total_mips;
	}
	ho->cache_ok = true;
}

double cs_host_req_mips(struct cs_model *m, int h, int extra)
{
	host_cache(m, h);
	return extra >= 0 ? m->hosts[h].req_sum + m->vms[extra].req : m->hosts[h].req_sum;
}

int cs_host_max_ram(struct cs_model *m, int h, int extra)
{
	int r;

	host_cache(m, h);
	r = m->hosts[h].max_ram;
	if (extra >= 0 && m->vms[extra].ram > r)
		r = m->vms[extra].ram;
	return r;
}

int cs_host_history(struct cs_model *m, int h, int extra, double *out)
{
	struct cs_host *ho = &m->hosts[h];
	int i;

	host_cache(m, h);
	memcpy(out, ho->hist, sizeof(ho->hist));
	if (extra >= 0) {
		const struct cs_vm *vm = &m->vms[extra];
		for (int k = 0; k < vm->nhist; k++)
			out[k] += vm->hist[k] * vm->mips / ho->total_mips;
	}
	/* MathUtil.countNonZeroBeginning: an all-zero history has length 1 */
	i = CS_HISTORY - 1;
	while (i >= 0)
		if (out[i--] != 0)
			break;
	return i + 2;
}

bool cs_host_suitable(const struct cs_model *m, int h, int v)
{
	const struct cs_host *ho = &m->hosts[h];
	const struct cs_vm *vm = &m->vms[v];

	if (ho->pe_mips < vm->req || ho->avail < vm->req)
		return false;
	if (m->placing) /* only a VM being instantiated asks for its RAM and bandwidth */
		return CS_HOST_RAM - ho->ram_used >= vm->ram &&
		       CS_HOST_BW - ho->bw_used >= CS_VM_BW;
	return true;
}

int cs_find_host(struct cs_model *m, int v, const char *excluded, cs_over_fn over, void *ctx)
{
	double min = DBL_MAX, req = m->vms[v].req;
	int best = -1;

	for (int h = 0; h < m->nhosts; h++) {
		const struct cs_host *ho = &m->hosts[h];
		double am, diff;
		if (excluded && excluded[h])
			continue;
		if (!cs_host_suitable(m, h, v))
			continue;
		am = cs_host_alloc_mips(m, h);
		if (am != 0 && over(ctx, m, h, v))
			continue;
		diff = cs_power(ho->type, (am + req) / ho->total_mips) -
		       cs_power(ho->type, cs_host_util(m, h));
		if (diff < min) {
			min = diff;
			best = h;
		}
	}
	return best;
}

/* ---- planning -------------------------------------------------------------------------- */

int cs_plan_add(struct cs_model *m, int h, int v)
{
	if (!m->planning || h < 0 || h >= m->nhosts || v < 0 || v >= m->nvms || m->vms[v].gone ||
	    slot_of(&m->hosts[h], v) >= 0)
		return -EINVAL;
	return list_add(m, h, v);
}

int cs_plan_remove(struct cs_model *m, int h, int v)
{
	if (!m->planning || h < 0 || h >= m->nhosts || v < 0 || v >= m->nvms)
		return -EINVAL;
	return list_remove(m, h, v);
}

/* saveAllocation: every host's VMs but those migrating in. */
static int plan_begin(struct cs_model *m)
{
	for (int h = 0; h < m->nhosts; h++) {
		struct cs_host *ho = &m->hosts[h];
		int n = 0;
		free(m->saved[h]);
		m->saved[h] = NULL;
		if (ho->n && !(m->saved[h] = malloc(sizeof(struct cs_slot) * (size_t)ho->n)))
			return -ENOMEM;
		for (int i = 0; i < ho->n; i++)
			if (!cs_host_migrating_in(m, h, ho->v[i].vm))
				m->saved[h][n++] = ho->v[i];
		m->nsaved[h] = n;
	}
	for (int v = 0; v < m->nvms; v++)
		m->vms[v].moved = false;
	m->planning = true;
	return 0;
}

/* restoreAllocation: every host gets its VMs migrating in, then the saved
 * ones, each allocated for its request now. */
static int plan_end(struct cs_model *m)
{
	m->planning = false;
	for (int h = 0; h < m->nhosts; h++) {
		struct cs_host *ho = &m->hosts[h];
		int n = ho->nin + m->nsaved[h], k = 0;
		struct cs_slot *nv = grow(ho->v, &ho->cap, n, sizeof(*ho->v));
		if (!nv)
			return -ENOMEM;
		ho->v = nv;
		for (int i = 0; i < ho->nin; i++)
			ho->v[k++].vm = ho->in[i];
		for (int i = 0; i < m->nsaved[h]; i++) {
			ho->v[k++].vm = m->saved[h][i].vm;
			m->vms[m->saved[h][i].vm].home = h;
		}
		ho->n = n;
		for (int i = 0; i < n; i++)
			ho->v[i].reqd = m->vms[ho->v[i].vm].req;
		ho->cache_ok = false;
		host_alloc(m, h);
	}
	return 0;
}

/* ---- the update ------------------------------------------------------------------------ */

static void vm_entry(struct cs_vm *vm, double t, double alloc, double req, bool mig)
{
	if (vm->has_entry && vm->entry_t != t) {
		double dt = t - vm->entry_t;
		vm->mips_s_req += vm->entry_req * dt;
		if (vm->entry_alloc < vm->entry_req && vm->entry_mig)
			vm->mips_s_mig += (vm->entry_req - vm->entry_alloc) * dt;
	}
	vm->has_entry = true;
	vm->entry_t = t;
	vm->entry_alloc = alloc;
	vm->entry_req = req;
	vm->entry_mig = mig;
}

/* Helper.getTimesBeforeHostShutdown, for an entry that is final. */
static void host_entry_done(struct cs_host *ho)
{
	if (ho->prev_active && !ho->entry_active)
		ho->shutdowns++;
	ho->prev_active = ho->entry_active;
}

static void host_entry(struct cs_host *ho, double t, double alloc, double req)
{
	if (ho->has_entry && ho->entry_t != t) {
		double dt = t - ho->entry_t;
		if (ho->entry_active) {
			ho->time_active += dt;
			if (ho->entry_alloc < ho->entry_req)
				ho->time_violated += dt;
		}
		host_entry_done(ho);
	}
	ho->has_entry = true;
	ho->entry_t = t;
	ho->entry_alloc = alloc;
	ho->entry_req = req;
	ho->entry_active = alloc > 0;
}

/* HostDynamicWorkload.updateVmsProcessing at time t (the VMs' requests
 * already set for t). */
static void host_update(struct cs_model *m, int h, double t)
{
	struct cs_host *ho = &m->hosts[h];
	double util = 0, req = 0;

	for (int i = 0; i < ho->n; i++)
		ho->v[i].reqd = m->vms[ho->v[i].vm].req;
	host_alloc(m, h);
	for (int i = 0; i < ho->n; i++) {
		struct cs_vm *vm = &m->vms[ho->v[i].vm];
		double a = ho->v[i].alloc;
		if (!cs_host_migrating_in(m, h, ho->v[i].vm)) {
			vm_entry(vm, t, a, vm->req, vm->migrating);
			if (vm->migrating)
				a /= 0.9; /* performance degradation due to migration - 10 % */
		}
		util += a;
		req += vm->req;
	}
	ho->util_mips = util;
	host_entry(ho, t, util, req);
}

/* PowerDatacenter.updateCloudetProcessingWithoutSchedulingFutureEventsForce:
 * every VM's request at t, every host's allocation, the energy since the
 * last update, and the VMs that leave. Returns how many VMs requested MIPS
 * (when none did, CloudSim's hosts return no next event and the data centre
 * schedules no further update). */
static int update_all(struct cs_model *m, double t)
{
	double dt = t - m->last_process, frame = 0;
	bool hist = fmod(t - CS_START, CS_INTERVAL) == 0;
	int busy = 0;

	for (int v = 0; v < m->nvms; v++) {
		struct cs_vm *vm = &m->vms[v];
		if (vm->gone || vm->home < 0)
			continue;
		vm->req = cs_utilization(vm->u, t) * vm->mips;
		busy += vm->req > 0;
		if (t > vm->hist_t && hist) { /* PowerVm.updateVmProcessing */
			double u = cs_utilization(vm->u, t);
			if (t != 0 || u != 0) {
				memmove(&vm->hist[1], &vm->hist[0],
				        sizeof(double) * (CS_HISTORY - 1));
				vm->hist[0] = u;
				if (vm->nhist < CS_HISTORY)
					vm->nhist++;
			}
			vm->hist_t = t;
		}
	}
	for (int h = 0; h < m->nhosts; h++) {
		struct cs_host *ho = &m->hosts[h];
		double prev = cs_host_util(m, h);
		ho->cache_ok = false;
		host_update(m, h, t);
		if (dt > 0)
			frame += cs_energy(ho->type, prev, cs_host_util(m, h), dt);
	}
	m->energy_ws += frame;
	for (int h = 0; h < m->nhosts; h++) { /* getCompletedVms: they leave */
		struct cs_host *ho = &m->hosts[h];
		for (int i = 0; i < ho->n;) {
			struct cs_vm *vm = &m->vms[ho->v[i].vm];
			if (!vm->migrating && vm->req == 0) {
				vm->gone = true;
				vm->home = -1;
				list_remove(m, h, ho->v[i].vm);
			} else {
				i++;
			}
		}
	}
	m->last_process = t;
	m->updates++;
	return busy;
}

/* ---- migrations ------------------------------------------------------------------------- */

/* PowerDatacenter: targetHost.addMigratingInVm(vm), and the VM_MIGRATE
 * event after ram / (bw / 16000) s. */
static int mig_start(struct cs_model *m, int v, int to)
{
	struct cs_vm *vm = &m->vms[v];
	struct cs_host *ho = &m->hosts[to];
	struct cs_mig mg;
	int i, rc;

	vm->migrating = true;
	if (!cs_host_migrating_in(m, to, v)) {
		int *ni = grow(ho->in, &ho->capin, ho->nin + 1, sizeof(int));
		if (!ni)
			return -ENOMEM;
		ho->in = ni;
		ho->in[ho->nin++] = v;
		if ((rc = list_add(m, to, v)) < 0)
			return rc;
		host_update(m, to, m->clock);
		host_update(m, vm->home, m->clock);
	}
	m->migrations++;
	mg.vm = v;
	mg.to = to;
	mg.end = m->clock + cs_migration_seconds(vm->ram, CS_HOST_BW);
	mg.seq = m->seq++;
	{
		struct cs_mig *nm = grow(m->migs, &m->capmigs, m->nmigs + 1, sizeof(*m->migs));
		if (!nm)
			return -ENOMEM;
		m->migs = nm;
	}
	for (i = m->nmigs; i > 0 && m->migs[i - 1].end > mg.end; i--)
		m->migs[i] = m->migs[i - 1];
	m->migs[i] = mg;
	m->nmigs++;
	return 0;
}

/* The VM_MIGRATE events at the time of the first in flight
 * (PowerDatacenter.processVmMigrate, Datacenter.processVmMigrate). */
static int mig_complete_batch(struct cs_model *m)
{
	double t = m->migs[0].end;
	int n = 0, rc;

	m->clock = t;
	if (t > m->last_process)
		update_all(m, t);
	while (n < m->nmigs && m->migs[n].end == t)
		n++;
	for (int i = 0; i < n; i++) {
		int v = m->migs[i].vm, to = m->migs[i].to;
		struct cs_vm *vm = &m->vms[v];
		struct cs_host *ho = &m->hosts[to];
		if (vm->home >= 0)
			list_remove(m, vm->home, v); /* deallocateHostForVm */
		vm->home = -1;
		for (int k = 0; k < ho->nin; k++) /* removeMigratingInVm */
			if (ho->in[k] == v) {
				memmove(&ho->in[k], &ho->in[k + 1],
				        sizeof(int) * (size_t)(ho->nin - k - 1));
				ho->nin--;
				break;
			}
		vm->migrating = false;
		list_remove(m, to, v);
		if ((rc = list_add(m, to, v)) < 0) /* allocateHostForVm: vmCreate */
			return rc;
		vm->home = to;
	}
	memmove(m->migs, m->migs + n, sizeof(*m->migs) * (size_t)(m->nmigs - n));
	m->nmigs -= n;
	update_all(m, t);
	return 0;
}

/* ---- moves ----------------------------------------------------------------------------- */

int cs_moves_add(struct cs_moves *mv, int vm, int to)
{
	struct cs_move *nv = grow(mv->v, &mv->cap, mv->n + 1, sizeof(*mv->v));

	if (!nv)
		return -ENOMEM;
	mv->v = nv;
	mv->v[mv->n].vm = vm;
	mv->v[mv->n].to = to;
	mv->n++;
	return 0;
}

void cs_moves_free(struct cs_moves *mv)
{
	free(mv->v);
	memset(mv, 0, sizeof(*mv));
}

/* ---- running --------------------------------------------------------------------------- */

static void reset(struct cs_model *m)
{
	for (int h = 0; h < m->nhosts; h++) {
		struct cs_host *ho = &m->hosts[h];
		ho->n = 0;
		ho->nin = 0;
		ho->avail = ho->total_mips;
		ho->util_mips = 0;
		ho->ram_used = 0;
		ho->bw_used = 0;
		ho->cache_ok = false;
		ho->has_entry = false;
		ho->prev_active = true;
		ho->time_active = ho->time_violated = 0;
		ho->shutdowns = 0;
	}
	for (int v = 0; v < m->nvms; v++) {
		struct cs_vm *vm = &m->vms[v];
		vm->home = -1;
		vm->migrating = vm->gone = vm->moved = false;
		vm->req = 0;
		vm->nhist = 0;
		vm->hist_t = 0;
		vm->has_entry = false;
		vm->mips_s_req = vm->mips_s_mig = 0;
	}
	m->nmigs = 0;
	m->seq = m->migrations = m->updates = m->refused = 0;
	m->energy_ws = 0;
	m->clock = m->last_process = 0;
	m->planning = false;
}

/* Datacenter.processVmCreate for every VM at time 0, in order. */
static int place_all(struct cs_model *m, const struct cs_policy_ops *p, void *st, char *err,
                     size_t errcap)
{
	int rc = 0;

	m->placing = true;
	for (int v = 0; v < m->nvms; v++) {
		struct cs_vm *vm = &m->vms[v];
		int h;
		vm->req = vm->mips; /* being instantiated: its full MIPS */
		h = p->place(st, m, v);
		if (h < 0 || h >= m->nhosts) {
			snprintf(err, errcap,
			         "%s: VM %d (%.0f MIPS, %d MB) fits on no host at the initial "
			         "placement (%d hosts)",
			         p->name, v, vm->mips, vm->ram, m->nhosts);
			rc = -ENOSPC;
			break;
		}
		if ((rc = list_add(m, h, v)) < 0)
			break;
		m->hosts[h].ram_used += vm->ram;
		m->hosts[h].bw_used += CS_VM_BW;
		vm->home = h;
		vm->req = 0; /* no cloudlet yet */
	}
	m->placing = false;
	return rc;
}

static int decide(struct cs_model *m, const struct cs_policy_ops *p, void *st, struct cs_moves *mv,
                  long *started)
{
	int rc;

	mv->n = 0;
	if ((rc = plan_begin(m)) < 0)
		return rc;
	rc = p->decide(st, m, mv);
	if (plan_end(m) < 0 && rc == 0)
		rc = -ENOMEM;
	if (rc < 0)
		return rc;
	for (int i = 0; i < mv->n; i++) {
		int v = mv->v[i].vm, to = mv->v[i].to;
		struct cs_vm *vm;
		if (v < 0 || v >= m->nvms || to < 0 || to >= m->nhosts) {
			m->refused++;
			continue;
		}
		vm = &m->vms[v];
		/* a VM may get two moves in one decision (CloudSim's consolidation can
		 * send a VM it just placed on), not one while it is still migrating */
		if (vm->gone || to == vm->home || (vm->migrating && !vm->moved) ||
		    cs_host_migrating_in(m, to, v)) {
			m->refused++;
			continue;
		}
		vm->moved = true;
		if ((rc = mig_start(m, v, to)) < 0)
			return rc;
		(*started)++;
	}
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void summarise(struct cs_model *m, struct cs_summary *o)
{
	double act = 0, viol = 0, req = 0, mig = 0;
	int left = 0;

	memset(o, 0, sizeof(*o));
	for (int h = 0; h < m->nhosts; h++) {
		struct cs_host *ho = &m->hosts[h];
		if (ho->has_entry)
			host_entry_done(ho);
		act += ho->time_active;
		viol += ho->time_violated;
		o->host_shutdowns += ho->shutdowns;
	}
	for (int v = 0; v < m->nvms; v++) {
		req += m->vms[v].mips_s_req;
		mig += m->vms[v].mips_s_mig;
		left += !m->vms[v].gone;
	}
	o->hosts = m->nhosts;
	o->vms = m->nvms;
	o->vms_left = left;
	o->energy_kwh = m->energy_ws / (3600 * 1000);
	o->slatah = act > 0 ? viol / act : 0;
	o->pdm = req > 0 ? mig / req : 0;
	o->slav = o->slatah * o->pdm;
	o->esv = o->energy_kwh * o->slav;
	o->migrations = m->migrations;
	o->updates = m->updates;
	o->refused = m->refused;
}

int cs_run(struct cs_model *m, const struct cs_policy_ops *p, FILE *steps, struct cs_summary *out,
           char *err, size_t errcap)
{
	struct cs_moves mv = {0};
	void *st = NULL;
	double next = CS_START + CS_INTERVAL, plan_s = 0, plan_max = 0;
	long plans = 0;
	bool stepping = true;
	int rc;

	reset(m);
	if ((rc = p->init(&st, m)) < 0) {
		snprintf(err, errcap, "%s: cannot start: %s", p->name, strerror(-rc));
		p->free_state(st); /* what init made before it failed */
		return rc;
	}
	if ((rc = place_all(m, p, st, err, errcap)) < 0)
		goto out;
	m->clock = CS_START;
	for (;;) {
		double tstep = stepping && next < m->limit ? next : INFINITY;
		double tmig = m->nmigs ? m->migs[0].end : INFINITY;
		if (tmig < m->limit && tmig <= tstep) {
			if ((rc = mig_complete_batch(m)) < 0)
				break;
		} else if (tstep < m->limit) {
			long started = 0;
			double a, d;
			int busy;
			m->clock = tstep;
			busy = update_all(m, tstep);
			a = now_s();
			rc = decide(m, p, st, &mv, &started);
			d = now_s() - a;
			plan_s += d;
			plan_max = d > plan_max ? d : plan_max;
			plans++;
			if (rc < 0) {
				snprintf(err, errcap, "%s: at %.1f s: %s", p->name, tstep,
				         strerror(-rc));
				break;
			}
			if (steps) {
				int active = 0, vms = 0;
				for (int h = 0; h < m->nhosts; h++)
					active += cs_host_util(m, h) > 0;
				for (int v = 0; v < m->nvms; v++)
					vms += !m->vms[v].gone;
				fprintf(steps, "%.1f,%ld,%ld,%d,%d,%.1f\n", tstep, started,
				        m->migrations, active, vms, m->energy_ws);
			}
			if (busy == 0) /* CloudSim schedules no further update */
				stepping = false;
			next = tstep + CS_INTERVAL;
		} else {
			break;
		}
	}
	if (rc < 0) {
		if (rc == -ENOMEM)
			snprintf(err, errcap, "%s: out of memory", p->name);
		goto out;
	}
	summarise(m, out);
	out->plan_ms_mean = plans ? plan_s * 1000 / plans : 0;
	out->plan_ms_max = plan_max * 1000;
out:
	p->free_state(st);
	cs_moves_free(&mv);
	return rc;
}
