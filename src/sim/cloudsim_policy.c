/* cloudsim_policy.c - CloudSim 3.0.3's four PlanetLab consolidation
 * policies with minimum-migration-time selection, as instances of
 * struct cs_policy_ops (cloudsim.h):
 *
 *   thr-mmt  PowerVmAllocationPolicyMigrationStaticThreshold (0.8)
 *   lr-mmt   ...MigrationLocalRegression (safety 1.2)
 *   mad-mmt  ...MigrationMedianAbsoluteDeviation (2.5)
 *   iqr-mmt  ...MigrationInterQuartileRange (1.5)
 *
 * LR, MAD and IQR fall back to a static threshold of 0.7 while a host's
 * history is short (under 10 samples for LR, 12 for MAD and IQR), as
 * CloudSim's runner sets them up. The rest is
 * PowerVmAllocationPolicyMigrationAbstract.optimizeAllocation, in its
 * order: the over-utilised hosts; from each, MMT's VM (least RAM, the first
 * in the host's list on a tie) again until the host is no longer over; those
 * VMs, highest request first, by power-aware best fit (cs_find_host) on the
 * other hosts; then, least utilised first, every host in use that is not
 * over-utilised is emptied if all its VMs find a place on the hosts neither
 * over-utilised, nor switched off, nor already considered.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/cloudsim.h"

#define LR_LENGTH   10 /* PowerVmAllocationPolicyMigrationLocalRegression */
#define MIN_HISTORY 12 /* MAD and IQR: "12 has been suggested as a safe value" */

enum detector { DET_THR, DET_LR, DET_MAD, DET_IQR };

struct abs_policy {
	enum detector det;
	double param, fallback;
};

/* ---- statistics as CloudSim computes them (MathUtil, commons-math3) ---------------- */

static void sort_doubles(double *a, int n)
{
	for (int i = 1; i < n; i++) {
		double x = a[i];
		int j = i - 1;
		while (j >= 0 && a[j] > x) {
			a[j + 1] = a[j];
			j--;
		}
		a[j + 1] = x;
	}
}

/* DescriptiveStatistics.getPercentile(50), estimation LEGACY. */
static double median(const double *data, int n)
{
	double s[CS_HISTORY], pos, fpos, dif;
	int ip;

	if (n == 1)
		return data[0];
	memcpy(s, data, sizeof(double) * (size_t)n);
	sort_doubles(s, n);
	pos = 0.5 * (n + 1);
	fpos = floor(pos);
	ip = (int)fpos;
	dif = pos - fpos;
	if (pos < 1)
		return s[0];
	if (pos >= n)
		return s[n - 1];
	return s[ip - 1] + dif * (s[ip] - s[ip - 1]);
}

static double mad(const double *data, int n)
{
	double dev[CS_HISTORY], med = median(data, n);

	for (int i = 0; i < n; i++)
		dev[i] = fabs(med - data[i]);
	return median(dev, n);
}

static double iqr(const double *data, int n)
{
	double s[CS_HISTORY];
	int q1 = (int)floor(0.25 * (n + 1) + 0.5) - 1, q3 = (int)floor(0.75 * (n + 1) + 0.5) - 1;

	memcpy(s, data, sizeof(double) * (size_t)n);
	sort_doubles(s, n);
	return s[q3] - s[q1];
}

/* commons-math3 SimpleRegression (with intercept) of y over x = 1..n:
 * est[0] intercept, est[1] slope. */
static void regression(const double *y, int n, double est[2])
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, xbar = 0, ybar = 0, slope;
	long k = 0;

	for (int i = 0; i < n; i++) {
		double x = i + 1;
		if (k == 0) {
			xbar = x;
			ybar = y[i];
		} else {
			double f1 = 1.0 + k, f2 = k / (1.0 + k), dx = x - xbar, dy = y[i] - ybar;
			sxx += dx * dx * f2;
			sxy += dx * dy * f2;
			xbar += dx / f1;
			ybar += dy / f1;
		}
		sx += x;
		sy += y[i];
		k++;
	}
	slope = fabs(sxx) < 10 * 4.9e-324 ? NAN : sxy / sxx;
	est[0] = (sy - slope * sx) / k;
	est[1] = slope;
}

/* ---- over-utilisation ------------------------------------------------------------------ */

static bool over_static(struct cs_model *m, int h, int extra, double thr)
{
	return cs_host_req_mips(m, h, extra) / m->hosts[h].total_mips > thr;
}

/* isHostOverUtilized(host) of each policy, with VM extra added last (the
 * test of isHostOverUtilizedAfterAllocation) when extra >= 0. */
static bool over(void *ctx, struct cs_model *m, int h, int extra)
{
	const struct abs_policy *s = ctx;
	double hist[CS_HISTORY], y[LR_LENGTH], est[2], thr, mig;
	int n;

	if (s->det == DET_THR)
		return over_static(m, h, extra, s->param);
	n = cs_host_history(m, h, extra, hist);
	switch (s->det) {
	case DET_LR:
		if (n < LR_LENGTH)
			return over_static(m, h, extra, s->fallback);
		for (int i = 0; i < LR_LENGTH; i++)
			y[i] = hist[LR_LENGTH - i - 1];
		regression(y, LR_LENGTH, est);
		mig = cs_host_max_ram(m, h, extra) / ((double)CS_HOST_BW / (2 * 8000));
		return (est[0] + est[1] * (LR_LENGTH + ceil(mig / CS_INTERVAL))) * s->param >= 1;
	case DET_MAD:
	case DET_IQR:
		if (n < MIN_HISTORY)
			return over_static(m, h, extra, s->fallback);
		thr = 1 - s->param * (s->det == DET_MAD ? mad(hist, n) : iqr(hist, n));
		return cs_host_req_mips(m, h, extra) / m->hosts[h].total_mips > thr;
	default:
		return false;
	}
}

/* ---- the abstract policy's pieces ---------------------------------------------------- */

/* PowerVmSelectionPolicyMinimumMigrationTime.getVmToMigrate */
static int mmt(const struct cs_model *m, int h)
{
	const struct cs_host *ho = &m->hosts[h];
	int best = -1;
	double min = INFINITY;

	for (int i = 0; i < ho->n; i++) {
		const struct cs_vm *vm = &m->vms[ho->v[i].vm];
		if (!vm->migrating && vm->ram < min) {
			min = vm->ram;
			best = ho->v[i].vm;
		}
	}
	return best;
}

/* PowerVmList.sortByCpuUtilization: highest request first, stable (as
 * Collections.sort); the lists are a step's migrations, so insertion. */
static void sort_vms(const struct cs_model *m, int *v, int n)
{
	for (int i = 1; i < n; i++) {
		int x = v[i], j = i - 1;
		while (j >= 0 && m->vms[v[j]].req < m->vms[x].req) {
			v[j + 1] = v[j];
			j--;
		}
		v[j + 1] = x;
	}
}

/* areAllVmsMigratingOutOrAnyVmMigratingIn */
static bool busy(const struct cs_model *m, int h)
{
	const struct cs_host *ho = &m->hosts[h];

	for (int i = 0; i < ho->n; i++) {
		if (!m->vms[ho->v[i].vm].migrating)
			return false;
		if (cs_host_migrating_in(m, h, ho->v[i].vm))
			return true;
	}
	return true;
}

/* getMigrationMapFromUnderUtilizedHosts; over[] marks the over-utilised. */
static int consolidate(struct abs_policy *s, struct cs_model *m, const char *over_h,
                       struct cs_moves *out)
{
	char *xu = m->hmark2, *xp = m->hmark;
	int nh = m->nhosts, nx = 0, *vms = m->vtmp, rc;

	for (int h = 0; h < nh; h++) {
		xu[h] = xp[h] = over_h[h] || cs_host_util(m, h) == 0;
		nx += xu[h];
	}
	while (nx != nh) {
		int u = -1, n = 0, first = out->n;
		double min = 1;
		bool ok = true;
		for (int h = 0; h < nh; h++) {
			double ut;
			if (xu[h])
				continue;
			ut = cs_host_util(m, h);
			if (ut > 0 && ut < min && !busy(m, h)) {
				min = ut;
				u = h;
			}
		}
		if (u < 0)
			break;
		xu[u] = xp[u] = 1;
		nx++;
		for (int i = 0; i < m->hosts[u].n; i++)
			if (!m->vms[m->hosts[u].v[i].vm].migrating)
				vms[n++] = m->hosts[u].v[i].vm;
		if (n == 0)
			continue;
		sort_vms(m, vms, n);
		for (int i = 0; i < n; i++) {
			int t = cs_find_host(m, vms[i], xp, over, s);
			if (t < 0) {
				for (int k = first; k < out->n; k++)
					cs_plan_remove(m, out->v[k].to, out->v[k].vm);
				out->n = first;
				ok = false;
				break;
			}
			if ((rc = cs_plan_add(m, t, vms[i])) < 0 ||
			    (rc = cs_moves_add(out, vms[i], t)) < 0)
				return rc;
		}
		if (ok)
			for (int k = first; k < out->n; k++)
				if (!xu[out->v[k].to]) {
					xu[out->v[k].to] = 1;
					nx++;
				}
	}
	return 0;
}

/* PowerVmAllocationPolicyMigrationAbstract.optimizeAllocation */
static int abs_decide(void *state, struct cs_model *m, struct cs_moves *out)
{
	struct abs_policy *s = state;
	char *over_h = calloc((size_t)m->nhosts, 1);
	int *sel = m->vtmp, nsel = 0, rc = 0;

	if (!over_h)
		return -ENOMEM;
	for (int h = 0; h < m->nhosts; h++)
		over_h[h] = over(s, m, h, -1);
	for (int h = 0; h < m->nhosts; h++) {
		if (!over_h[h])
			continue;
		for (;;) {
			int v = mmt(m, h);
			if (v < 0)
				break;
			sel[nsel++] = v;
			if ((rc = cs_plan_remove(m, h, v)) < 0)
				goto out;
			if (!over(s, m, h, -1))
				break;
		}
	}
	sort_vms(m, sel, nsel);
	for (int i = 0; i < nsel; i++) {
		int t = cs_find_host(m, sel[i], over_h, over, s);
		if (t < 0)
			continue;
		if ((rc = cs_plan_add(m, t, sel[i])) < 0 || (rc = cs_moves_add(out, sel[i], t)) < 0)
			goto out;
	}
	rc = consolidate(s, m, over_h, out);
out:
	free(over_h);
	return rc;
}

static int abs_place(void *state, struct cs_model *m, int v)
{
	return cs_find_host(m, v, NULL, over, state);
}

static void abs_free(void *state)
{
	free(state);
}

static int abs_init(void **state, enum detector det, double param, double fallback)
{
	struct abs_policy *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->det = det;
	s->param = param;
	s->fallback = fallback;
	*state = s;
	return 0;
}

static int thr_init(void **state, const struct cs_model *m)
{
	return abs_init(state, DET_THR, m->cfg->thr, 0);
}

static int lr_init(void **state, const struct cs_model *m)
{
	return abs_init(state, DET_LR, m->cfg->lr_safety, m->cfg->fallback_thr);
}

static int mad_init(void **state, const struct cs_model *m)
{
	return abs_init(state, DET_MAD, m->cfg->mad_safety, m->cfg->fallback_thr);
}

static int iqr_init(void **state, const struct cs_model *m)
{
	return abs_init(state, DET_IQR, m->cfg->iqr_safety, m->cfg->fallback_thr);
}

const struct cs_policy_ops cs_policy_thr_mmt = {
    "thr-mmt",  "CloudSim THR-MMT: static threshold (--thr-mmt, 80 %)",
    thr_init,   abs_place,
    abs_decide, abs_free};
const struct cs_policy_ops cs_policy_lr_mmt = {
    "lr-mmt",   "CloudSim LR-MMT: local regression, safety --lr-safety (1.2)",
    lr_init,    abs_place,
    abs_decide, abs_free};
const struct cs_policy_ops cs_policy_mad_mmt = {
    "mad-mmt",  "CloudSim MAD-MMT: 1 - s x MAD, s = --mad-safety (2.5)",
    mad_init,   abs_place,
    abs_decide, abs_free};
const struct cs_policy_ops cs_policy_iqr_mmt = {
    "iqr-mmt",  "CloudSim IQR-MMT: 1 - s x IQR, s = --iqr-safety (1.5)",
    iqr_init,   abs_place,
    abs_decide, abs_free};

const struct cs_policy_ops *const cs_policy_list[] = {&cs_policy_thr_mmt,  &cs_policy_lr_mmt,
                                                      &cs_policy_mad_mmt,  &cs_policy_iqr_mmt,
                                                      &cs_policy_loadease, NULL};

const struct cs_policy_ops *cs_policy_find(const char *name)
{
	for (int i = 0; cs_policy_list[i]; i++)
		if (strcmp(cs_policy_list[i]->name, name) == 0)
			return cs_policy_list[i];
	return NULL;
}
