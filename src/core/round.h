/* round.h - from profiles to the planner's cluster model: the one place that
 * says how measured utilisation becomes a host's load and hot flags and a
 * VM's demand. The controller and the simulator both call it, so a simulated
 * round is the round the controller runs.
 *
 * Units: host profiles are utilisation of the host's capacity; VM profiles
 * are cpu of its vCPUs, mem of its configured memory, net of its host's NIC
 * capacity (what the agent publishes). Pure.
 */
#ifndef LE_CORE_ROUND_H
#define LE_CORE_ROUND_H

#include "core/cluster.h"
#include "core/profile.h"
#include "core/risk.h"

struct round_opts {
	double peak_pct;                 /* the percentile taken as demand (95) */
	struct hotspot_rule rule[RES_N]; /* per resource: threshold, k, n */
	struct risk_opts risk;           /* the forecast behind a host's risk */
};

/* Doubles of scratch round_vm_risk() needs for windows of up to w samples. */
#define ROUND_SCRATCH(w) (4 * (size_t)(w) + 4)
void round_opts_defaults(struct round_opts *o);

/* Sets h->load and h->hot from the host's three profiles (h->cap must be
 * set): hot by the k-of-n + forecast rule; load = cap * peak, and for a hot
 * resource cap * max(peak, forecast, last), so the planner sees the level that
 * made it hot. h->thr is set from the rule; h->fc, h->ms and h->risk_known
 * from Holt's fit of each profile (risk.h). scratch: PROFILE_MAX_WINDOW
 * doubles, or the longest window. */
void round_host(struct cl_host *h, const struct profile prof[RES_N], const struct round_opts *o,
                double *scratch);

/* Sets v->demand from the VM's profiles: cpu = peak * vcpus (cores), mem =
 * peak * mem_mib (MiB), net = peak * host_net_mbit (Mbit/s). An empty profile
 * gives demand from the allocation (cpu: vcpus * 0.5, mem: mem_mib, net: 0):
 * a new VM is assumed half busy until measured. */
void round_vm(struct cl_vm *v, const struct profile prof[RES_N], double host_net_mbit,
              const struct round_opts *o, double *scratch);

/* Sets v->fc, v->ms, v->cov and v->risk_known from the VM's profiles and
 * those of the host it runs on (hprof, capacities host_cap; the newest
 * samples of both are taken as simultaneous). Without enough samples of
 * either, risk_known is false and fc is the VM's demand (v->demand set by
 * round_vm first). scratch: ROUND_SCRATCH(longest window) doubles. */
void round_vm_risk(struct cl_vm *v, const struct profile vprof[RES_N],
                   const struct profile hprof[RES_N], const double host_cap[RES_N],
                   const struct round_opts *o, double *scratch);

#endif
