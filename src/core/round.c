#include "core/round.h"

#include <string.h>

void round_opts_defaults(struct round_opts *o)
{
	static const struct hotspot_rule def = HOTSPOT_RULE_DEFAULT;

	memset(o, 0, sizeof(*o));
	o->peak_pct = 95;
	for (int r = 0; r < RES_N; r++)
		o->rule[r] = def;
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
