#include "core/profile.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* First index in sorted[0..n) whose value is >= v. */
static size_t lower_bound(const double *sorted, size_t n, double v)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sorted[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* a == b to the bit (0.0 and -0.0 differ: sorted[] keeps what was pushed) */
static bool same_bits(double a, double b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

int profile_init(struct profile *p, size_t window)
{
	int rc;

	memset(p, 0, sizeof(*p));
	if (window == 0 || window > PROFILE_MAX_WINDOW)
		return -EINVAL;
	rc = ring_init(&p->win, window);
	if (rc < 0)
		return rc;
	p->sorted = calloc(window, sizeof(double));
	if (!p->sorted) {
		ring_release(&p->win);
		return -ENOMEM;
	}
	hist_clear(&p->hist);
	return 0;
}

void profile_release(struct profile *p)
{
	ring_release(&p->win);
	free(p->sorted);
	p->sorted = NULL;
	hist_clear(&p->hist);
}

struct profile (*profile_set_new(size_t n, size_t window))[RES_N]
{
	struct profile(*set)[RES_N] = calloc(n ? n : 1, sizeof(*set));

	if (!set)
		return NULL;
	for (size_t i = 0; i < n; i++)
		for (int r = 0; r < RES_N; r++)
			if (profile_init(&set[i][r], window) < 0) {
				profile_set_free(set, n);
				return NULL;
			}
	return set;
}

void profile_set_free(struct profile (*set)[RES_N], size_t n)
{
	/* a profile calloc left zero, or that failed to init, releases as
	 * a no-op: ring_release and free take the zeroed pointers */
	for (size_t i = 0; set && i < n; i++)
		for (int r = 0; r < RES_N; r++)
			profile_release(&set[i][r]);
	free(set);
}

void profile_clear(struct profile *p)
{
	ring_clear(&p->win);
	hist_clear(&p->hist);
}

int profile_push(struct profile *p, double u)
{
	double old;
	size_t n, i, j;

	if (!isfinite(u))
		return -EINVAL;
	n = ring_len(&p->win);
	if (n == p->win.cap && same_bits(ring_get(&p->win, 0), u)) {
		/* u replaces an equal value (a steady series): the sorted
		 * copy and the histogram stay as they are */
		ring_push(&p->win, u, &old);
		return 0;
	}
	j = lower_bound(p->sorted, n, u); /* where u goes among the n kept */
	if (ring_push(&p->win, u, &old)) {
		hist_remove(&p->hist, old);
		/* the evicted value is in sorted[]: it was pushed bit-identical.
		 * One move of what lies between it and u's place (nothing when a
		 * steady series pushes what it evicts) */
		i = lower_bound(p->sorted, n, old);
		if (j <= i) {
			memmove(&p->sorted[j + 1], &p->sorted[j], (i - j) * sizeof(double));
		} else {
			memmove(&p->sorted[i], &p->sorted[i + 1], (j - 1 - i) * sizeof(double));
			j--;
		}
	} else {
		memmove(&p->sorted[j + 1], &p->sorted[j], (n - j) * sizeof(double));
	}
	p->sorted[j] = u;
	hist_add(&p->hist, u);
	return 0;
}

double profile_percentile(const struct profile *p, double pct)
{
	return stats_percentile_sorted(p->sorted, ring_len(&p->win), pct);
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
	/* k of n and the forecast, as Sandpiper; or all of n: a level that has
	 * held n samples is a hotspot even while the fitted AR(1) model, whose
	 * mean still remembers the lower level, forecasts below it */
	return (cnt >= rule->k && forecast > rule->threshold) ||
	       (rule->n > 0 && m >= rule->n && cnt == rule->n);
}

void profile_summarize(const struct profile *p, const struct hotspot_rule *rule, double peak_pct,
                       double *scratch, struct profile_summary *out)
{
	size_t n = profile_len(p);

	memset(out, 0, sizeof(*out));
	out->hist = p->hist;
	if (n == 0)
		return;

	ring_copy_last(&p->win, scratch, n);
	out->n = n;
	out->last = scratch[n - 1];
	out->mean = stats_mean(scratch, n);
	out->min = p->sorted[0];
	out->max = p->sorted[n - 1];
	/* time order (scratch) for the fit and the k-of-n rule; value order
	 * (sorted, kept by profile_push) for the percentiles: the window is
	 * constant when its least and greatest are equal */
	stats_ar1_fit_mean(scratch, n, out->mean, out->min == out->max, &out->ar1);
	out->hot = profile_rule_hot(scratch, n, out->ar1.forecast, rule, &out->over);
	out->p50 = stats_percentile_sorted(p->sorted, n, 50.0);
	out->p95 = stats_percentile_sorted(p->sorted, n, 95.0);
	out->p99 = stats_percentile_sorted(p->sorted, n, 99.0);
	out->peak = stats_percentile_sorted(p->sorted, n, peak_pct);
}
