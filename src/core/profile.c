#include "core/profile.h"

#include <errno.h>
#include <math.h>
#include <string.h>

int profile_init(struct profile *p, size_t window)
{
	int rc;

	memset(p, 0, sizeof(*p));
	if (window == 0 || window > PROFILE_MAX_WINDOW)
		return -EINVAL;
	rc = ring_init(&p->win, window);
	if (rc < 0)
		return rc;
	hist_clear(&p->hist);
	return 0;
}

void profile_release(struct profile *p)
{
	ring_release(&p->win);
	hist_clear(&p->hist);
}

void profile_clear(struct profile *p)
{
	ring_clear(&p->win);
	hist_clear(&p->hist);
}

int profile_push(struct profile *p, double u)
{
	double old;

	if (!isfinite(u))
		return -EINVAL;
	if (ring_push(&p->win, u, &old))
		hist_remove(&p->hist, old);
	hist_add(&p->hist, u);
	return 0;
}

size_t profile_len(const struct profile *p)
{
	return ring_len(&p->win);
}

bool profile_rule_hot(const double *recent, size_t m, double forecast,
                      const struct hotspot_rule *rule, unsigned *over)
{
	size_t start = m > rule->n ? m - rule->n : 0;
	unsigned cnt = 0;
	size_t i;

	for (i = start; i < m; i++)
		if (recent[i] > rule->threshold)
			cnt++;
	if (over)
		*over = cnt;
	return cnt >= rule->k && forecast > rule->threshold;
}

void profile_summarize(const struct profile *p, const struct hotspot_rule *rule, double peak_pct,
                       double *scratch, struct profile_summary *out)
{
	size_t n = profile_len(p);
	size_t i;

	memset(out, 0, sizeof(*out));
	out->hist = p->hist;
	if (n == 0)
		return;

	ring_copy_last(&p->win, scratch, n);
	out->n = n;
	out->last = scratch[n - 1];
	out->mean = stats_mean(scratch, n);
	out->min = scratch[0];
	out->max = scratch[0];
	for (i = 1; i < n; i++) {
		if (scratch[i] < out->min)
			out->min = scratch[i];
		if (scratch[i] > out->max)
			out->max = scratch[i];
	}
	/* Time order matters for the fit and the k-of-n rule: both before the
	 * sort. */
	stats_ar1_fit(scratch, n, &out->ar1);
	out->hot = profile_rule_hot(scratch, n, out->ar1.forecast, rule, &out->over);

	stats_sort(scratch, n);
	out->p50 = stats_percentile_sorted(scratch, n, 50.0);
	out->p95 = stats_percentile_sorted(scratch, n, 95.0);
	out->p99 = stats_percentile_sorted(scratch, n, 99.0);
	out->peak = stats_percentile_sorted(scratch, n, peak_pct);
}
