/* stats.h - small statistics on sample arrays: mean, percentiles, AR(1).
 *
 * Pure functions. Arrays are oldest first. No allocation.
 */
#ifndef LE_CORE_STATS_H
#define LE_CORE_STATS_H

#include <stdbool.h>
#include <stddef.h>

/* Mean of x[0..n); 0 when n == 0. */
double stats_mean(const double *x, size_t n);
/* Sorts x ascending in place (NaN not allowed in input). */
void stats_sort(double *x, size_t n);
/* Percentile p in [0, 100] of an ascending sorted array, linear interpolation
 * between closest ranks (the "type 7" definition numpy and R use by default):
 * h = (n - 1) * p / 100, result = x[floor(h)] + (h - floor(h)) * (x[floor(h)+1] - x[floor(h)]).
 * 0 when n == 0. A p outside [0, 100] (or NaN) is clamped to it. */
double stats_percentile_sorted(const double *sorted, size_t n, double p);

/* AR(1) model x[t] - mean = phi * (x[t-1] - mean) + e, fitted by the lag-1
 * sample autocorrelation: phi = sum_{t>=1} (x[t]-m)(x[t-1]-m) / sum_t (x[t]-m)^2,
 * clamped to [-1, 1]. The one-step forecast is mean + phi * (x[n-1] - mean).
 * With n < 2 or zero variance, phi = 0 and the forecast is the last value
 * (or 0 when n == 0). */
struct stats_ar1 {
	double mean;
	double phi;
	double forecast;
};
void stats_ar1_fit(const double *x, size_t n, struct stats_ar1 *out);
/* The same with the series' mean (stats_mean(x, n)) and whether every x[i]
 * equals x[0] already known: one pass over x instead of three. */
void stats_ar1_fit_mean(const double *x, size_t n, double mean, bool constant,
                        struct stats_ar1 *out);

#endif
