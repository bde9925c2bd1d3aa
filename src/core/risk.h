/* risk.h - the chance that a host's demand passes its threshold soon.
 *
 * Sandpiper's rule (profile.h) calls a host hot once k of its last n samples
 * and a forecast are over the threshold: it reacts to an overload that has
 * already held. Risk looks ahead instead. Each series (a host's utilisation,
 * a VM's demand, in the host's units) is smoothed by Holt's linear method
 * (level and trend, alpha and beta fixed); its forecast h samples ahead is
 * level + h * trend, and its one-step errors over the window give the spread
 * of what comes next. The next sample is taken as normal with the forecast
 * as mean and the errors' mean square (times h) as variance; the risk of a
 * resource is the chance that it passes threshold * capacity, and a host's
 * risk is the chance that any of its resources does (the three taken as
 * independent).
 *
 * Holt's method is linear in the series, so a host's forecast and errors
 * without one of its VMs are its own minus the VM's, exactly: the variance
 * of the host without VM v is s2(H) + s2(V) - 2 cov(H, V), where cov is the
 * mean product of the two error series over the same samples (how the VM
 * moves with the rest of its host). A VM's co-movement with the VMs of
 * another host is not measured; on a target the two are taken as
 * independent: s2(D + V) = s2(D) + s2(V).
 *
 * Pure: no allocation, no clocks.
 */
#ifndef LE_CORE_RISK_H
#define LE_CORE_RISK_H

#include <stdbool.h>
#include <stddef.h>

#include "core/profile.h"

struct risk_opts {
	double alpha, beta;   /* Holt's smoothing of level and trend (0.5, 0.2) */
	unsigned horizon;     /* samples ahead the risk looks (1) */
	unsigned min_samples; /* fewer samples: no forecast, risk unknown (6) */
	double sd_floor;      /* least spread, fraction of capacity (0.02): a flat window
	                         is no promise */
};
void risk_opts_defaults(struct risk_opts *o);

/* One series' fit, in the units of its samples. */
struct risk_fit {
	size_t n;        /* samples fitted; 0 = too few, nothing else is set */
	double forecast; /* level + horizon * trend */
	double level, trend;
	double ms;   /* mean square of the one-step errors, times horizon */
	size_t nerr; /* errors written to err[] */
};

/* Fits x[0..n) (oldest first, scaled by scale: e.g. a utilisation times
 * its capacity). err (may be NULL) receives the one-step errors, oldest
 * first, scaled: at most n - 1 of them; the first error (of the second
 * sample, before the trend means anything) is left out. out->n = 0 when
 * n < o->min_samples. */
void risk_fit(const double *x, size_t n, double scale, const struct risk_opts *o, double *err,
              struct risk_fit *out);

/* Mean product of the newest min(na, nb) errors of a and b, aligned on the
 * newest: their covariance (the errors' mean is near 0). 0 when either is
 * empty. */
double risk_cov(const double *a, size_t na, const double *b, size_t nb);

/* P(N(forecast, var) > limit); var is floored at floor_sd^2. */
double risk_pass(double forecast, double var, double floor_sd, double limit);

/* A host's risk: 1 - prod(1 - p_r) over the resources with a capacity,
 * p_r = risk_pass(fc[r], ms[r], o->sd_floor * cap[r], thr[r] * cap[r]).
 * per_res (may be NULL) gets each p_r. */
double risk_host(const double fc[RES_N], const double ms[RES_N], const double cap[RES_N],
                 const double thr[RES_N], const struct risk_opts *o, double per_res[RES_N]);

#endif
