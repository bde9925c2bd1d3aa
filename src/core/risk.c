/* risk.c - Holt's forecast and the chance of passing a threshold; see risk.h. */
#include "core/risk.h"

#include <math.h>
#include <string.h>

void risk_opts_defaults(struct risk_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->alpha = 0.5;
	o->beta = 0.2;
	o->horizon = 1;
	o->min_samples = 6;
	o->sd_floor = 0.02;
}

void risk_fit(const double *x, size_t n, double scale, const struct risk_opts *o, double *err,
              struct risk_fit *out)
{
	double l, b = 0, ss = 0;
	unsigned h = o->horizon ? o->horizon : 1;
	size_t ne = 0;

	memset(out, 0, sizeof(*out));
	if (n < 2 || n < o->min_samples)
		return;
	/* error-correction form: linear in x, so fits of sums are sums of fits */
	l = x[0] * scale;
	for (size_t t = 1; t < n; t++) {
		double p = l + b, e = x[t] * scale - p;
		l = p + o->alpha * e;
		b += o->alpha * o->beta * e;
		if (t == 1)
			continue;
		ss += e * e;
		if (err)
			err[ne] = e;
		ne++;
	}
	out->n = n;
	out->level = l;
	out->trend = b;
	out->forecast = l + h * b;
	out->ms = ne ? ss / (double)ne * h : 0;
	out->nerr = ne;
}

double risk_cov(const double *a, size_t na, const double *b, size_t nb)
{
	size_t m = na < nb ? na : nb;
	double s = 0;

	if (!m)
		return 0;
	a += na - m;
	b += nb - m;
	for (size_t i = 0; i < m; i++)
		s += a[i] * b[i];
	return s / (double)m;
}

double risk_pass(double forecast, double var, double floor_sd, double limit)
{
	double sd = var > 0 ? sqrt(var) : 0;

	if (sd < floor_sd)
		sd = floor_sd;
	if (sd <= 0)
		return forecast > limit ? 1 : 0;
	return 0.5 * erfc((limit - forecast) / (sd * M_SQRT2));
}

double risk_host(const double fc[RES_N], const double ms[RES_N], const double cap[RES_N],
                 const double thr[RES_N], const struct risk_opts *o, double per_res[RES_N])
{
	double none = 1;

	for (int r = 0; r < RES_N; r++) {
		double p = 0;
		if (cap[r] > 0)
			p = risk_pass(fc[r], ms[r], o->sd_floor * cap[r], thr[r] * cap[r]);
		if (per_res)
			per_res[r] = p;
		none *= 1 - p;
	}
	return 1 - none;
}
