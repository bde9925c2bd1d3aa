/* profile.h - the profile of one resource (cpu, mem or net) of a host or VM:
 * a window of utilisation samples (fractions, 1.0 = the whole capacity), its
 * histogram, mean, percentiles, AR(1) forecast and the k-of-n hotspot flag.
 *
 * Pure: the caller supplies samples, no clocks. Reused by the planner.
 */
#ifndef LE_CORE_PROFILE_H
#define LE_CORE_PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/hist.h"
#include "core/ring.h"
#include "core/stats.h"

/* The resources a profile tracks, in this order everywhere. */
enum le_res { RES_CPU, RES_MEM, RES_NET, RES_N };

/* A resource is hot when at least k of its last n samples AND the AR(1)
 * forecast of the next sample are strictly above threshold, or when all of
 * its last n samples are (a level that held n samples is no spike, even while
 * the AR(1) model, fitted on a window that remembers the lower level,
 * forecasts below it). */
struct hotspot_rule {
	double threshold; /* fraction, default 0.75 */
	unsigned k;       /* default 3 */
	unsigned n;       /* default 5; k <= n */
};

#define HOTSPOT_RULE_DEFAULT                                                                       \
	{                                                                                          \
		0.75, 3, 5                                                                         \
	}
#define PROFILE_MAX_WINDOW 86400

struct profile {
	struct ring win;
	struct hist hist; /* histogram of the samples in the window */
	double *sorted;   /* the window's samples in ascending order, kept on every
	                     push so percentiles cost no sort (O(window) memmove) */
};

struct profile_summary {
	size_t n; /* samples in the window */
	double last, mean, min, max;
	double p50, p95, p99;
	double peak; /* the configured peak percentile (e.g. p95) */
	struct stats_ar1 ar1;
	unsigned over; /* how many of the last rule.n samples are above threshold */
	bool hot;
	struct hist hist;
};

/* 0, -EINVAL (window 0 or > PROFILE_MAX_WINDOW), -ENOMEM. */
int profile_init(struct profile *p, size_t window);
void profile_release(struct profile *p);
void profile_clear(struct profile *p);
/* n sets of the RES_N profiles (a host's or a VM's), each of window
 * samples; NULL on bad window or no memory. profile_set_free() takes what
 * profile_set_new() gave, or NULL. */
struct profile (*profile_set_new(size_t n, size_t window))[RES_N];
void profile_set_free(struct profile (*set)[RES_N], size_t n);
/* Adds one sample; NaN and infinities are rejected (returns -EINVAL, nothing
 * changes). */
int profile_push(struct profile *p, double u);
size_t profile_len(const struct profile *p);
/* Fills *out. scratch must hold at least profile_len(p) doubles (it is
 * overwritten). peak_pct in [0, 100] chooses out->peak. An empty profile gives
 * all zeroes and hot = false. */
void profile_summarize(const struct profile *p, const struct hotspot_rule *rule, double peak_pct,
                       double *scratch, struct profile_summary *out);

/* The pct percentile of the window in O(1) (the window is kept sorted); 0
 * for an empty profile. What a VM's demand needs, without a full summary. */
double profile_percentile(const struct profile *p, double pct);

/* The k-of-n rule on its own: recent[] holds the newest samples, oldest first
 * (m of them; only the last rule->n count). Sets *over (may be NULL). True when
 * over >= k and forecast > threshold, or over == n (with m >= n). */
bool profile_rule_hot(const double *recent, size_t m, double forecast,
                      const struct hotspot_rule *rule, unsigned *over);

#endif
