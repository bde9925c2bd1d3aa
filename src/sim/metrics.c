/* metrics.c - SLATAH, PDM, SLAV and the rest; see metrics.h. */
#include "sim/metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-9

int metrics_init(struct sim_metrics *mt, int nvms)
{
	memset(mt, 0, sizeof(*mt));
	mt->nvms = nvms;
	mt->cd = calloc((size_t)nvms + 1, sizeof(double));
	mt->cr = calloc((size_t)nvms + 1, sizeof(double));
	if (!mt->cd || !mt->cr) {
		metrics_free(mt);
		return -ENOMEM;
	}
	return 0;
}

void metrics_reset(struct sim_metrics *mt)
{
	double *cd = mt->cd, *cr = mt->cr;
	int n = mt->nvms;

	memset(cd, 0, sizeof(double) * (size_t)n);
	memset(cr, 0, sizeof(double) * (size_t)n);
	memset(mt, 0, sizeof(*mt));
	mt->cd = cd;
	mt->cr = cr;
	mt->nvms = n;
}

void metrics_free(struct sim_metrics *mt)
{
	if (!mt)
		return;
	free(mt->cd);
	free(mt->cr);
	memset(mt, 0, sizeof(*mt));
}

void metrics_step(struct sim_metrics *mt, const struct sim_model *m)
{
	const double S = m->step_s;

	mt->steps++;
	mt->step_over = mt->step_sat = mt->step_active = 0;
	mt->step_migrations = 0;
	mt->step_plan_ms = 0;
	for (int h = 0; h < m->nhosts; h++) {
		const double *cap = m->hosts[h].cap, *l = m->hload[h];
		bool over = false, sat = false, over_cpu = false;
		if (!m->active[h])
			continue;
		mt->step_active++;
		for (int r = 0; r < RES_N; r++) {
			if (cap[r] <= 0)
				continue;
			if (l[r] > m->cfg->thr[r] * cap[r] + EPS) {
				over = true;
				over_cpu |= r == RES_CPU;
			}
			if (l[r] > cap[r] + EPS)
				sat = true;
		}
		mt->step_over += over;
		mt->over_cpu_steps += over_cpu;
		mt->step_sat += sat;
		mt->energy_j +=
		    model_power(m, h, cap[RES_CPU] > 0 ? l[RES_CPU] / cap[RES_CPU] : 0) * S;
	}
	mt->host_steps += mt->step_active;
	mt->over_steps += mt->step_over;
	mt->sat_steps += mt->step_sat;
	for (int v = 0; v < m->nvms; v++) {
		mt->cr[v] += m->vwant[v] * S;
		mt->want_cs += m->vwant[v] * S;
		if (m->vwant[v] > m->vload[v][RES_CPU])
			mt->unserved_cs += (m->vwant[v] - m->vload[v][RES_CPU]) * S;
	}
	for (int i = 0; i < m->nran; i++)
		mt->cd[m->ran[i].vm] +=
		    m->cfg->pdm_factor * m->vload[m->ran[i].vm][RES_CPU] * m->ran[i].secs;
}

void metrics_plan(struct sim_metrics *mt, double plan_ms, int started, int refused, int resized)
{
	mt->resizes += resized;
	mt->step_plan_ms = plan_ms;
	mt->step_migrations = started;
	mt->migrations += started;
	mt->refused += refused;
	mt->plan_ms_sum += plan_ms;
	if (plan_ms > mt->plan_ms_max)
		mt->plan_ms_max = plan_ms;
	mt->plans++;
}

void metrics_summary(const struct sim_metrics *mt, const struct sim_model *m,
                     struct sim_summary *out)
{
	double pdm = 0;

	memset(out, 0, sizeof(*out));
	out->steps = mt->steps;
	if (mt->host_steps > 0) {
		out->overload_share = (double)mt->over_steps / (double)mt->host_steps;
		out->cpu_share = (double)mt->over_cpu_steps / (double)mt->host_steps;
		out->sat_share = (double)mt->sat_steps / (double)mt->host_steps;
	}
	for (int v = 0; v < mt->nvms; v++)
		if (mt->cr[v] > 0)
			pdm += mt->cd[v] / mt->cr[v];
	out->pdm = mt->nvms > 0 ? pdm / mt->nvms : 0;
	out->slav = out->overload_share * out->pdm;
	out->migrations = mt->migrations;
	out->refused = mt->refused;
	out->resizes = mt->resizes;
	out->unserved_share = mt->want_cs > 0 ? mt->unserved_cs / mt->want_cs : 0;
	out->hosts_in_use = mt->steps > 0 ? (double)mt->host_steps / mt->steps : 0;
	out->energy_kwh = mt->energy_j / 3.6e6;
	out->downtime_s = m->downtime_s;
	out->plan_ms_mean = mt->plans > 0 ? mt->plan_ms_sum / (double)mt->plans : 0;
	out->plan_ms_max = mt->plan_ms_max;
}
