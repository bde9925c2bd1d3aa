#include "core/round.h"

#include <string.h>

#include "core/risk.h"

void round_opts_defaults(struct round_opts *o)
{
	static const struct hotspot_rule def = HOTSPOT_RULE_DEFAULT;

	memset(o, 0, sizeof(*o));
	o->peak_pct = 95;
	for (int r = 0; r < RES_N; r++)
		o->rule[r] = def;
	risk_opts_defaults(&o->risk);
}

void round_host(struct cl_host *h, const struct profile prof[RES_N], const struct round_opts *o,
                double *scratch)
{
	for (int r = 0; r < RES_N; r++) {
		struct profile_summary s;
		double u;

		profile_summarize(&prof[r], &o->rule[r], o->peak_pct, scratch, &s);
		h->thr[r] = o->rule[r].threshold;
		h->hot[r] = s.hot;
		u = s.peak;
		if (s.hot) {
			if (s.ar1.forecast > u)
				u = s.ar1.forecast;
			if (s.last > u)
				u = s.last;
		}
		h->load[r] = u * h->cap[r];
	}
	h->risk_known = true;
	for (int r = 0; r < RES_N; r++) {
		struct risk_fit f;
		size_t n = ring_copy_last(&prof[r].win, scratch, prof[r].win.cap);
		risk_fit(scratch, n, h->cap[r], &o->risk, NULL, &f);
		if (!f.n)
			h->risk_known = false;
		h->fc[r] = f.forecast;
		h->ms[r] = f.ms;
	}
}

void round_vm(struct cl_vm *v, const struct profile prof[RES_N], double host_net_mbit,
              const struct round_opts *o, double *scratch)
{
	double scale[RES_N] = {v->vcpus, v->mem_mib, host_net_mbit};

	(void)scratch;
	for (int r = 0; r < RES_N; r++) {
		if (profile_len(&prof[r]) == 0) {
			v->demand[r] = r == RES_CPU   ? v->vcpus * 0.5
			               : r == RES_MEM ? v->mem_mib
			                              : 0;
			continue;
		}
		/* only the peak is needed: O(1) from the sorted window */
		v->demand[r] = profile_percentile(&prof[r], o->peak_pct) * scale[r];
	}
}

void round_vm_risk(struct cl_vm *v, const struct profile vprof[RES_N],
                   const struct profile hprof[RES_N], const double host_cap[RES_N],
                   const struct round_opts *o, double *scratch)
{
	double scale[RES_N] = {v->vcpus, v->mem_mib, host_cap[RES_NET]};
	struct risk_fit fv[RES_N];
	double cov[RES_N];

	v->risk_known = false;
	memcpy(v->fc, v->demand, sizeof(v->fc));
	memset(v->ms, 0, sizeof(v->ms));
	memset(v->cov, 0, sizeof(v->cov));
	for (int r = 0; r < RES_N; r++) {
		size_t w =
		    vprof[r].win.cap > hprof[r].win.cap ? vprof[r].win.cap : hprof[r].win.cap;
		size_t nv = profile_len(&vprof[r]), nh = profile_len(&hprof[r]);
		size_t n = nv < nh ? nv : nh;
		double *vx = scratch, *verr = vx + w + 1, *hx = verr + w + 1, *herr = hx + w + 1;
		struct risk_fit fh;

		ring_copy_last(&vprof[r].win, vx, n);
		ring_copy_last(&hprof[r].win, hx, n);
		risk_fit(vx, n, scale[r], &o->risk, verr, &fv[r]);
		risk_fit(hx, n, host_cap[r], &o->risk, herr, &fh);
		if (!fv[r].n || !fh.n)
			return;
		cov[r] = risk_cov(verr, fv[r].nerr, herr, fh.nerr);
	}
	v->risk_known = true;
	for (int r = 0; r < RES_N; r++) {
		v->fc[r] = fv[r].forecast;
		v->ms[r] = fv[r].ms;
		v->cov[r] = cov[r] * (o->risk.horizon ? o->risk.horizon : 1); /* as ms */
	}
}
