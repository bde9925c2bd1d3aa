#include "core/stats.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

double stats_mean(const double *x, size_t n)
{
	double sum = 0.0;
	size_t i;

	if (n == 0)
		return 0.0;
	for (i = 0; i < n; i++)
		sum += x[i];
	return sum / (double)n;
}

static int stats_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

void stats_sort(double *x, size_t n)
{
	if (n > 1)
		qsort(x, n, sizeof(*x), stats_cmp);
}

double stats_percentile_sorted(const double *sorted, size_t n, double p)
{
	double h, lo;
	size_t i;

	if (n == 0)
		return 0.0;
	if (!(p > 0.0)) /* also catches NaN */
		p = 0.0;
	if (p > 100.0)
		p = 100.0;
	h = (double)(n - 1) * p / 100.0;
	lo = floor(h);
	i = (size_t)lo;
	if (i >= n - 1)
		return sorted[n - 1];
	return sorted[i] + (h - lo) * (sorted[i + 1] - sorted[i]);
}

void stats_ar1_fit(const double *x, size_t n, struct stats_ar1 *out)
{
	double sum = 0.0;
	bool constant = true;
	size_t t;

	/* one pass for the mean (summed in order, as stats_mean) and whether
	 * the series is constant */
	for (t = 0; t < n; t++) {
		sum += x[t];
		constant = constant && x[t] == x[0];
	}
	stats_ar1_fit_mean(x, n, n ? sum / (double)n : 0.0, constant, out);
}

void stats_ar1_fit_mean(const double *x, size_t n, double m, bool constant, struct stats_ar1 *out)
{
	double num = 0.0, den = 0.0, phi = 0.0;
	size_t t;

	out->mean = 0.0;
	out->phi = 0.0;
	out->forecast = 0.0;
	if (n == 0)
		return;
	/* A constant series has zero variance, but its computed mean may be off
	 * by an ulp, which would turn rounding noise into a phi. */
	if (constant) {
		out->mean = x[0];
		out->forecast = x[0];
		return;
	}
	for (t = 0; t < n; t++) {
		double d = x[t] - m;

		den += d * d;
		if (t > 0)
			num += d * (x[t - 1] - m);
	}
	if (den > 0.0)
		phi = num / den;
	if (phi > 1.0)
		phi = 1.0;
	if (phi < -1.0)
		phi = -1.0;
	out->mean = m;
	out->phi = phi;
	out->forecast = m + phi * (x[n - 1] - m);
}
