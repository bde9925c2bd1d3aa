/* test_profile.c - unit tests of the pure core: ring, stats, hist, profile.
 *
 * Every expected value below was worked out by hand and is written as a
 * literal; the tests never recompute it with the formula under test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "core/hist.h"
#include "core/profile.h"
#include "core/ring.h"
#include "core/stats.h"

#define EPS        1e-9
#define MAXV       16
#define ARRAY_N(a) (sizeof(a) / sizeof((a)[0]))
#define SENTINEL   -12345.0

static void assert_doubles(const double *got, const double *want, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (fabs(got[i] - want[i]) > EPS)
			fail_msg("%s: [%zu] = %.17g, want %.17g", name, i, got[i], want[i]);
}

static void assert_near(double got, double want, const char *name, const char *field)
{
	if (fabs(got - want) > EPS)
		fail_msg("%s: %s = %.17g, want %.17g", name, field, got, want);
}

/* ---- ring ---------------------------------------------------------------- */

static void test_ring_init_errors(void **state)
{
	struct ring r;

	assert_int_equal(ring_init(&r, 0), -EINVAL);
	assert_null(r.buf);
	ring_release(&r); /* safe after a failed init */
	assert_int_equal(ring_init(&r, SIZE_MAX / sizeof(double) + 1), -ENOMEM);
	assert_null(r.buf);
	ring_release(&r);
	assert_int_equal(ring_init(&r, 1), 0);
	assert_int_equal(r.cap, 1);
	assert_int_equal(ring_len(&r), 0);
	ring_release(&r);
	ring_release(&r); /* twice is fine */
	assert_null(r.buf);
}

static const struct ring_case {
	const char *name;
	size_t cap;
	size_t npush;
	double push[MAXV];
	int ret[MAXV];        /* ring_push return per push */
	double evicted[MAXV]; /* value evicted by push i, when ret[i] == 1 */
	size_t len;
	double held[MAXV]; /* oldest first */
	double last;
	size_t head;
} ring_cases[] = {
    {"partial", 4, 2, {1, 2}, {0, 0}, {0}, 2, {1, 2}, 2, 2},
    {"exactly full", 3, 3, {1, 2, 3}, {0, 0, 0}, {0}, 3, {1, 2, 3}, 3, 0},
    {"wrap once", 3, 4, {1, 2, 3, 4}, {0, 0, 0, 1}, {0, 0, 0, 1}, 3, {2, 3, 4}, 4, 1},
    {"wrap twice", 3, 5, {1, 2, 3, 4, 5}, {0, 0, 0, 1, 1}, {0, 0, 0, 1, 2}, 3, {3, 4, 5}, 5, 2},
    {"wrap full lap",
     3,
     7,
     {1, 2, 3, 4, 5, 6, 7},
     {0, 0, 0, 1, 1, 1, 1},
     {0, 0, 0, 1, 2, 3, 4},
     3,
     {5, 6, 7},
     7,
     1},
    {"cap 1", 1, 3, {7, 8, 9}, {0, 1, 1}, {0, 7, 8}, 1, {9}, 9, 0},
    {"overcommit values", 2, 3, {0.5, 1.5, 2.5}, {0, 0, 1}, {0, 0, 0.5}, 2, {1.5, 2.5}, 2.5, 1},
};

static void test_ring_push(void **state)
{
	size_t c, i;

	for (c = 0; c < ARRAY_N(ring_cases); c++) {
		const struct ring_case *tc = &ring_cases[c];
		struct ring r;
		double got[MAXV];

		assert_int_equal(ring_init(&r, tc->cap), 0);
		for (i = 0; i < tc->npush; i++) {
			double ev = SENTINEL;
			int ret = ring_push(&r, tc->push[i], &ev);

			if (ret != tc->ret[i])
				fail_msg("%s: push %zu returned %d, want %d", tc->name, i, ret,
				         tc->ret[i]);
			if (ret)
				assert_near(ev, tc->evicted[i], tc->name, "evicted");
			else
				assert_near(ev, SENTINEL, tc->name, "evicted untouched");
		}
		assert_int_equal(ring_len(&r), tc->len);
		assert_int_equal(r.head, tc->head);
		for (i = 0; i < tc->len; i++)
			got[i] = ring_get(&r, i);
		assert_doubles(got, tc->held, tc->len, tc->name);
		assert_near(ring_last(&r), tc->last, tc->name, "last");
		ring_release(&r);
	}
}

static void test_ring_push_null_evicted(void **state)
{
	struct ring r;

	assert_int_equal(ring_init(&r, 2), 0);
	assert_int_equal(ring_push(&r, 1, NULL), 0);
	assert_int_equal(ring_push(&r, 2, NULL), 0);
	assert_int_equal(ring_push(&r, 3, NULL), 1);
	assert_near(ring_get(&r, 0), 2, "null evicted", "oldest");
	ring_release(&r);
}

static const struct copy_case {
	const char *name;
	size_t cap;
	size_t npush;
	double push[MAXV];
	size_t ask;
	size_t ret;
	double want[MAXV];
} copy_cases[] = {
    {"wrapped, fewer than held", 3, 5, {1, 2, 3, 4, 5}, 2, 2, {4, 5}},
    {"wrapped, all held", 3, 5, {1, 2, 3, 4, 5}, 3, 3, {3, 4, 5}},
    {"wrapped, more than held", 3, 5, {1, 2, 3, 4, 5}, 5, 3, {3, 4, 5}},
    {"ask 0", 3, 5, {1, 2, 3, 4, 5}, 0, 0, {0}},
    {"not wrapped", 5, 3, {1, 2, 3}, 2, 2, {2, 3}},
    {"not wrapped, more than held", 5, 3, {1, 2, 3}, 4, 3, {1, 2, 3}},
    {"empty", 4, 0, {0}, 3, 0, {0}},
    {"wrap at buffer end", 4, 6, {1, 2, 3, 4, 5, 6}, 4, 4, {3, 4, 5, 6}},
    {"newest only, wrapped", 4, 6, {1, 2, 3, 4, 5, 6}, 1, 1, {6}},
    {"two across the wrap", 4, 5, {1, 2, 3, 4, 5}, 2, 2, {4, 5}},
    {"full, not wrapped", 4, 4, {1, 2, 3, 4}, 4, 4, {1, 2, 3, 4}},
};

static void test_ring_copy_last(void **state)
{
	size_t c, i;

	for (c = 0; c < ARRAY_N(copy_cases); c++) {
		const struct copy_case *tc = &copy_cases[c];
		struct ring r;
		double out[MAXV];
		size_t got;

		for (i = 0; i < MAXV; i++)
			out[i] = SENTINEL;
		assert_int_equal(ring_init(&r, tc->cap), 0);
		for (i = 0; i < tc->npush; i++)
			ring_push(&r, tc->push[i], NULL);
		got = ring_copy_last(&r, out, tc->ask);
		if (got != tc->ret)
			fail_msg("%s: copied %zu, want %zu", tc->name, got, tc->ret);
		assert_doubles(out, tc->want, tc->ret, tc->name);
		for (i = tc->ret; i < MAXV; i++)
			assert_near(out[i], SENTINEL, tc->name, "past the copy");
		ring_release(&r);
	}
}

static void test_ring_clear(void **state)
{
	struct ring r;
	double ev = SENTINEL;

	assert_int_equal(ring_init(&r, 3), 0);
	ring_push(&r, 1, NULL);
	ring_push(&r, 2, NULL);
	ring_push(&r, 3, NULL);
	ring_push(&r, 4, NULL);
	ring_clear(&r);
	assert_int_equal(ring_len(&r), 0);
	assert_int_equal(r.cap, 3);
	assert_int_equal(ring_push(&r, 9, &ev), 0);
	assert_near(ev, SENTINEL, "clear", "nothing evicted");
	assert_int_equal(ring_len(&r), 1);
	assert_near(ring_get(&r, 0), 9, "clear", "oldest");
	assert_near(ring_last(&r), 9, "clear", "last");
	ring_release(&r);
}

/* ---- stats --------------------------------------------------------------- */

static const struct mean_case {
	const char *name;
	size_t n;
	double x[MAXV];
	double want;
} mean_cases[] = {
    {"empty", 0, {0}, 0},
    {"one", 1, {2}, 2},
    {"1..4", 4, {1, 2, 3, 4}, 2.5},
    {"symmetric", 2, {-1, 1}, 0},
    {"halves", 4, {1.5, 0.5, 2.5, 3.5}, 2},
    {"tenths", 3, {0.1, 0.2, 0.3}, 0.2},
    {"overcommit", 3, {0.9, 1.2, 1.5}, 1.2},
};

static void test_stats_mean(void **state)
{
	size_t c;

	for (c = 0; c < ARRAY_N(mean_cases); c++)
		assert_near(stats_mean(mean_cases[c].x, mean_cases[c].n), mean_cases[c].want,
		            mean_cases[c].name, "mean");
}

static const struct pct_case {
	const char *name;
	size_t n;
	double sorted[MAXV];
	double p;
	double want;
} pct_cases[] = {
    {"empty", 0, {0}, 50, 0},
    {"n=1 p0", 1, {7}, 0, 7},
    {"n=1 p50", 1, {7}, 50, 7},
    {"n=1 p100", 1, {7}, 100, 7},
    {"1..4 p0", 4, {1, 2, 3, 4}, 0, 1},
    {"1..4 p25", 4, {1, 2, 3, 4}, 25, 1.75},
    {"1..4 p50", 4, {1, 2, 3, 4}, 50, 2.5},
    {"1..4 p95", 4, {1, 2, 3, 4}, 95, 3.85},
    {"1..4 p99", 4, {1, 2, 3, 4}, 99, 3.97},
    {"1..4 p100", 4, {1, 2, 3, 4}, 100, 4},
    {"two p50", 2, {10, 20}, 50, 15},
    {"two p90", 2, {10, 20}, 90, 19},
    {"five p50 exact rank", 5, {0.1, 0.2, 0.5, 0.9, 1.3}, 50, 0.5},
    {"five p75 exact rank", 5, {0.1, 0.2, 0.5, 0.9, 1.3}, 75, 0.9},
    {"five p95", 5, {0.1, 0.2, 0.5, 0.9, 1.3}, 95, 1.22},
    {"five p99", 5, {0.1, 0.2, 0.5, 0.9, 1.3}, 99, 1.284},
    {"ties", 4, {2, 2, 2, 5}, 50, 2},
    {"p below 0 clamps", 4, {1, 2, 3, 4}, -5, 1},
    {"p above 100 clamps", 4, {1, 2, 3, 4}, 150, 4},
    {"p NaN clamps to 0", 4, {1, 2, 3, 4}, NAN, 1},
};

static void test_stats_percentile(void **state)
{
	size_t c;

	for (c = 0; c < ARRAY_N(pct_cases); c++) {
		const struct pct_case *tc = &pct_cases[c];

		assert_near(stats_percentile_sorted(tc->sorted, tc->n, tc->p), tc->want, tc->name,
		            "percentile");
	}
}

static const struct sort_case {
	const char *name;
	size_t n;
	double in[MAXV];
	double want[MAXV];
} sort_cases[] = {
    {"empty", 0, {0}, {0}},
    {"one", 1, {5}, {5}},
    {"three", 3, {3, 1, 2}, {1, 2, 3}},
    {"dups", 3, {2, 2, 1}, {1, 2, 2}},
    {"negatives", 5, {-1, 0.5, -3, 10, 0}, {-3, -1, 0, 0.5, 10}},
    {"sorted", 4, {1, 2, 3, 4}, {1, 2, 3, 4}},
    {"reversed", 6, {6, 5, 4, 3, 2, 1}, {1, 2, 3, 4, 5, 6}},
    {"fractions", 4, {0.95, 0.05, 1.7, 0.5}, {0.05, 0.5, 0.95, 1.7}},
};

static void test_stats_sort(void **state)
{
	size_t c;

	for (c = 0; c < ARRAY_N(sort_cases); c++) {
		const struct sort_case *tc = &sort_cases[c];
		double x[MAXV];

		memcpy(x, tc->in, sizeof(x));
		stats_sort(x, tc->n);
		assert_doubles(x, tc->want, tc->n, tc->name);
	}
}

static const struct ar1_case {
	const char *name;
	size_t n;
	double x[MAXV];
	double mean, phi, forecast;
} ar1_cases[] = {
    {"empty", 0, {0}, 0, 0, 0},
    {"one", 1, {0.7}, 0.7, 0, 0.7},
    /* devs -2,-1,0,1,2: num (-1)(-2)+0+0+(2)(1) = 4, den 10 */
    {"rising 1..5", 5, {1, 2, 3, 4, 5}, 3, 0.4, 3.8},
    /* devs 2,1,0,-1,-2: num 4, den 10, last dev -2 */
    {"falling 5..1", 5, {5, 4, 3, 2, 1}, 3, 0.4, 2.2},
    {"constant", 4, {0.3, 0.3, 0.3, 0.3}, 0.3, 0, 0.3},
    {"constant 0.1 x7", 7, {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}, 0.1, 0, 0.1},
    /* devs -1,1,-1,1: num -3, den 4 */
    {"alternating", 4, {1, 3, 1, 3}, 2, -0.75, 1.25},
    /* devs -1,1: num -1, den 2 */
    {"two", 2, {2, 4}, 3, -0.5, 2.5},
    /* devs -.5,-.5,.5,.5: num .25, den 1 */
    {"steps", 4, {1, 1, 2, 2}, 1.5, 0.25, 1.625},
    /* devs -.25,-.25,-.25,.75: num -.0625, den .75 -> -1/12 */
    {"spike", 4, {0, 0, 0, 1}, 0.25, -0.083333333333333333, 0.1875},
};

static void test_stats_ar1(void **state)
{
	size_t c;

	for (c = 0; c < ARRAY_N(ar1_cases); c++) {
		const struct ar1_case *tc = &ar1_cases[c];
		struct stats_ar1 a = {-1, -1, -1};

		stats_ar1_fit(tc->x, tc->n, &a);
		assert_near(a.mean, tc->mean, tc->name, "mean");
		assert_near(a.phi, tc->phi, tc->name, "phi");
		assert_near(a.forecast, tc->forecast, tc->name, "forecast");
	}
}

/* ---- hist ---------------------------------------------------------------- */

/* The first four are arithmetic that means an edge but lands an ulp below it. */
static const struct bin_case {
	double u;
	int bin;
} bin_cases[] = {
    /* arithmetic that means an edge but lands an ulp below it */
    {0.35 - 0.2, 3}, {0.3 - 0.1, 4},  {0.15 - 0.1, 1},    {0.3 - 0.2, 2}, {0.0, 0},
    {0.0499, 0},     {0.05, 1},       {0.1, 2},           {0.15, 3},      {0.2, 4},
    {0.25, 5},       {0.3, 6},        {0.35, 7},          {0.4, 8},       {0.45, 9},
    {0.5, 10},       {0.55, 11},      {0.6, 12},          {0.65, 13},     {0.7, 14},
    {0.75, 15},      {0.8, 16},       {0.85, 17},         {0.9, 18},      {0.9499, 18},
    {0.95, 19},      {0.999, 19},     {0.9999999999, 19}, {1.0, 19},      {1.7, 19},
    {-0.1, 0},       {-0.0, 0},       {NAN, -1},          {INFINITY, 19}, {-INFINITY, 0},
    {0.1499999, 2},  {0.14999999, 2},
};

static void test_hist_bin(void **state)
{
	size_t c;

	for (c = 0; c < ARRAY_N(bin_cases); c++) {
		int got = hist_bin(bin_cases[c].u);

		if (got != bin_cases[c].bin)
			fail_msg("hist_bin(%.17g) = %d, want %d", bin_cases[c].u, got,
			         bin_cases[c].bin);
	}
}

static const struct hist_case {
	const char *name;
	size_t nadd;
	double add[MAXV];
	size_t nrem;
	double rem[MAXV];
	uint32_t bins[HIST_BINS];
	uint32_t total;
} hist_cases[] = {
    {"empty", 0, {0}, 0, {0}, {0}, 0},
    {"adds", 5, {0.0, 0.05, 0.15, 1.0, 1.7}, 0, {0}, {[0] = 1, [1] = 1, [3] = 1, [19] = 2}, 5},
    {"NaN ignored", 3, {0.5, NAN, 0.5}, 0, {0}, {[10] = 2}, 2},
    {"remove one", 3, {0.5, 0.52, 0.9}, 1, {0.51}, {[10] = 1, [18] = 1}, 2},
    {"remove from empty bin is a no-op", 1, {0.5}, 1, {0.2}, {[10] = 1}, 1},
    {"remove NaN is a no-op", 1, {0.5}, 1, {NAN}, {[10] = 1}, 1},
    {"remove more than added", 1, {0.3}, 3, {0.3, 0.3, 0.3}, {0}, 0},
    {"remove negative from bin 0", 2, {-0.1, 0.01}, 1, {-5}, {[0] = 1}, 1},
};

static void test_hist_add_remove(void **state)
{
	size_t c, i;

	for (c = 0; c < ARRAY_N(hist_cases); c++) {
		const struct hist_case *tc = &hist_cases[c];
		struct hist h;

		memset(&h, 0xff, sizeof(h));
		hist_clear(&h);
		for (i = 0; i < tc->nadd; i++)
			hist_add(&h, tc->add[i]);
		for (i = 0; i < tc->nrem; i++)
			hist_remove(&h, tc->rem[i]);
		for (i = 0; i < HIST_BINS; i++)
			if (h.bins[i] != tc->bins[i])
				fail_msg("%s: bin %zu = %u, want %u", tc->name, i, h.bins[i],
				         tc->bins[i]);
		if (h.total != tc->total)
			fail_msg("%s: total %u, want %u", tc->name, h.total, tc->total);
	}
}

/* ---- profile ------------------------------------------------------------- */

static void test_profile_init_errors(void **state)
{
	struct profile p;

	assert_int_equal(profile_init(&p, 0), -EINVAL);
	profile_release(&p);
	assert_int_equal(profile_init(&p, PROFILE_MAX_WINDOW + 1), -EINVAL);
	profile_release(&p);
	assert_int_equal(profile_init(&p, PROFILE_MAX_WINDOW), 0);
	assert_int_equal(profile_len(&p), 0);
	assert_int_equal(p.hist.total, 0);
	profile_release(&p);
	profile_release(&p);
}

static const struct window_case {
	const char *name;
	size_t window;
	size_t npush;
	double push[MAXV];
	size_t len;
	double held[MAXV];
	uint32_t bins[HIST_BINS];
} window_cases[] = {
    {"no eviction", 4, 3, {0.1, 0.2, 0.9}, 3, {0.1, 0.2, 0.9}, {[2] = 1, [4] = 1, [18] = 1}},
    {"one evicted",
     3,
     4,
     {0.1, 0.2, 0.9, 0.95},
     3,
     {0.2, 0.9, 0.95},
     {[4] = 1, [18] = 1, [19] = 1}},
    {"same bin evicted", 2, 4, {0.5, 0.51, 0.52, 0.1}, 2, {0.52, 0.1}, {[2] = 1, [10] = 1}},
    {"edges and overcommit evicted",
     3,
     6,
     {0.15, 1.7, -0.1, 0.05, 0.0, 1.0},
     3,
     {0.05, 0.0, 1.0},
     {[0] = 1, [1] = 1, [19] = 1}},
    {"window 1", 1, 3, {0.3, 0.6, 0.99}, 1, {0.99}, {[19] = 1}},
};

static void test_profile_window(void **state)
{
	size_t c, i;

	for (c = 0; c < ARRAY_N(window_cases); c++) {
		const struct window_case *tc = &window_cases[c];
		struct profile p;
		uint32_t total = 0;

		assert_int_equal(profile_init(&p, tc->window), 0);
		for (i = 0; i < tc->npush; i++)
			assert_int_equal(profile_push(&p, tc->push[i]), 0);
		assert_int_equal(profile_len(&p), tc->len);
		for (i = 0; i < tc->len; i++)
			assert_near(ring_get(&p.win, i), tc->held[i], tc->name, "held");
		for (i = 0; i < HIST_BINS; i++) {
			if (p.hist.bins[i] != tc->bins[i])
				fail_msg("%s: bin %zu = %u, want %u", tc->name, i, p.hist.bins[i],
				         tc->bins[i]);
			total += tc->bins[i];
		}
		assert_int_equal(p.hist.total, total);
		assert_int_equal(p.hist.total, tc->len);

		profile_clear(&p);
		assert_int_equal(profile_len(&p), 0);
		assert_int_equal(p.hist.total, 0);
		for (i = 0; i < HIST_BINS; i++)
			assert_int_equal(p.hist.bins[i], 0);
		profile_release(&p);
	}
}

static void test_profile_push_rejects(void **state)
{
	static const double bad[] = {NAN, -NAN, INFINITY, -INFINITY};
	struct profile p;
	struct hist before;
	size_t i;

	assert_int_equal(profile_init(&p, 2), 0);
	assert_int_equal(profile_push(&p, 0.4), 0);
	assert_int_equal(profile_push(&p, 0.6), 0);
	before = p.hist;
	for (i = 0; i < ARRAY_N(bad); i++) {
		assert_int_equal(profile_push(&p, bad[i]), -EINVAL);
		assert_int_equal(profile_len(&p), 2);
		assert_near(ring_get(&p.win, 0), 0.4, "reject", "oldest");
		assert_near(ring_last(&p.win), 0.6, "reject", "last");
		assert_memory_equal(&p.hist, &before, sizeof(before));
	}
	assert_int_equal(p.hist.bins[8], 1);
	assert_int_equal(p.hist.bins[12], 1);
	assert_int_equal(p.hist.total, 2);
	/* Large but finite overcommit is a legal sample. */
	assert_int_equal(profile_push(&p, 3.5), 0);
	assert_int_equal(p.hist.bins[19], 1);
	assert_int_equal(p.hist.bins[8], 0);
	profile_release(&p);
}

static const struct hot_case {
	const char *name;
	size_t m;
	double recent[MAXV];
	double forecast;
	struct hotspot_rule rule;
	unsigned over;
	bool hot;
} hot_cases[] = {
    {"fewer than n, k met", 3, {0.8, 0.8, 0.8}, 0.9, HOTSPOT_RULE_DEFAULT, 3, true},
    {"fewer than n, k not met", 2, {0.8, 0.8}, 0.9, HOTSPOT_RULE_DEFAULT, 2, false},
    {"exactly k of n", 5, {0.1, 0.8, 0.2, 0.9, 0.8}, 0.8, HOTSPOT_RULE_DEFAULT, 3, true},
    {"k-1 of n", 5, {0.1, 0.8, 0.2, 0.9, 0.3}, 0.8, HOTSPOT_RULE_DEFAULT, 2, false},
    {"forecast below blocks", 5, {0.9, 0.9, 0.1, 0.9, 0.9}, 0.7, HOTSPOT_RULE_DEFAULT, 4, false},
    {"forecast equal blocks", 5, {0.9, 0.1, 0.9, 0.9, 0.9}, 0.75, HOTSPOT_RULE_DEFAULT, 4, false},
    /* a level held for all n samples is no spike: hot whatever the model says */
    {"all n over, forecast below",
     5,
     {0.9, 0.9, 0.9, 0.9, 0.9},
     0.7,
     HOTSPOT_RULE_DEFAULT,
     5,
     true},
    {"all of fewer than n over, forecast below",
     4,
     {0.9, 0.9, 0.9, 0.9},
     0.7,
     HOTSPOT_RULE_DEFAULT,
     4,
     false},
    {"sample equal not above",
     5,
     {0.75, 0.75, 0.75, 0.8, 0.8},
     0.9,
     HOTSPOT_RULE_DEFAULT,
     2,
     false},
    {"only the last n count",
     8,
     {0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.8, 0.8},
     0.9,
     HOTSPOT_RULE_DEFAULT,
     2,
     false},
    {"old hot samples ignored, new ones count",
     7,
     {0.1, 0.1, 0.9, 0.9, 0.1, 0.9, 0.1},
     0.76,
     HOTSPOT_RULE_DEFAULT,
     3,
     true},
    {"empty", 0, {0}, 0.9, HOTSPOT_RULE_DEFAULT, 0, false},
    {"1 of 1", 2, {0.2, 0.6}, 0.55, {0.5, 1, 1}, 1, true},
    {"1 of 1, newest cool", 2, {0.6, 0.2}, 0.55, {0.5, 1, 1}, 0, false},
    {"overcommit", 3, {1.2, 1.3, 1.1}, 1.05, {1.0, 2, 3}, 3, true},
};

static void test_profile_rule_hot(void **state)
{
	size_t c;

	for (c = 0; c < ARRAY_N(hot_cases); c++) {
		const struct hot_case *tc = &hot_cases[c];
		unsigned over = 999;
		bool hot = profile_rule_hot(tc->recent, tc->m, tc->forecast, &tc->rule, &over);

		if (over != tc->over || hot != tc->hot)
			fail_msg("%s: over %u hot %d, want over %u hot %d", tc->name, over, hot,
			         tc->over, tc->hot);
		/* over may be NULL; the answer does not change. */
		hot = profile_rule_hot(tc->recent, tc->m, tc->forecast, &tc->rule, NULL);
		if (hot != tc->hot)
			fail_msg("%s: with over NULL hot %d, want %d", tc->name, hot, tc->hot);
	}
}

static const struct sum_case {
	const char *name;
	size_t window;
	size_t npush;
	double push[MAXV];
	struct hotspot_rule rule;
	double peak_pct;
	struct profile_summary want; /* hist.total is checked against n */
} sum_cases[] = {
    /* window {0.4,0.6,0.8,1.4}: sum 3.2; devs -.4,-.2,0,.6: num .08, den .56 ->
     * phi 1/7, forecast .8 + .6/7; p95 h=2.85 -> .8+.85*.6 */
    {"overcommit, not hot",
     4,
     5,
     {0.2, 0.4, 0.6, 0.8, 1.4},
     HOTSPOT_RULE_DEFAULT,
     95,
     {.n = 4,
      .last = 1.4,
      .mean = 0.8,
      .min = 0.4,
      .max = 1.4,
      .p50 = 0.7,
      .p95 = 1.31,
      .p99 = 1.382,
      .peak = 1.31,
      .ar1 = {0.8, 0.14285714285714285, 0.88571428571428571},
      .over = 2,
      .hot = false,
      .hist = {.bins = {[8] = 1, [12] = 1, [16] = 1, [19] = 1}}}},
    /* window {.9,.8,1,.6,.9}: mean .84; devs .06,-.04,.16,-.24,.06:
     * num -.0616, den .092 -> phi -.669565..., forecast .84-.06*.669565... */
    {"unsorted, hot",
     5,
     6,
     {0.1, 0.9, 0.8, 1.0, 0.6, 0.9},
     HOTSPOT_RULE_DEFAULT,
     50,
     {.n = 5,
      .last = 0.9,
      .mean = 0.84,
      .min = 0.6,
      .max = 1.0,
      .p50 = 0.9,
      .p95 = 0.98,
      .p99 = 0.996,
      .peak = 0.9,
      .ar1 = {0.84, -0.66956521739130435, 0.79982608695652174},
      .over = 4,
      .hot = true,
      .hist = {.bins = {[12] = 1, [16] = 1, [18] = 2, [19] = 1}}}},
    /* mean 20/30; devs 7,7,7,-14,-11,4 (/30): num 110, den 480 (/900);
     * forecast 20/30 + 110/480*4/30 = 10040/14400 */
    {"rule n shorter than window",
     6,
     6,
     {0.9, 0.9, 0.9, 0.2, 0.3, 0.8},
     {0.75, 2, 3},
     0,
     {.n = 6,
      .last = 0.8,
      .mean = 0.66666666666666667,
      .min = 0.2,
      .max = 0.9,
      .p50 = 0.85,
      .p95 = 0.9,
      .p99 = 0.9,
      .peak = 0.2,
      .ar1 = {0.66666666666666667, 0.22916666666666667, 0.69722222222222222},
      .over = 1,
      .hot = false,
      .hist = {.bins = {[4] = 1, [6] = 1, [16] = 1, [18] = 3}}}},
    {"single sample",
     3,
     1,
     {0.8},
     {0.75, 1, 1},
     100,
     {.n = 1,
      .last = 0.8,
      .mean = 0.8,
      .min = 0.8,
      .max = 0.8,
      .p50 = 0.8,
      .p95 = 0.8,
      .p99 = 0.8,
      .peak = 0.8,
      .ar1 = {0.8, 0, 0.8},
      .over = 1,
      .hot = true,
      .hist = {.bins = {[16] = 1}}}},
    {"empty", 3, 0, {0}, HOTSPOT_RULE_DEFAULT, 95, {.n = 0}},
};

static void test_profile_summarize(void **state)
{
	size_t c, i;

	for (c = 0; c < ARRAY_N(sum_cases); c++) {
		const struct sum_case *tc = &sum_cases[c];
		const struct profile_summary *w = &tc->want;
		struct profile_summary s;
		struct profile p;
		double scratch[MAXV + 1];

		for (i = 0; i < ARRAY_N(scratch); i++)
			scratch[i] = SENTINEL;
		memset(&s, 0xff, sizeof(s));
		assert_int_equal(profile_init(&p, tc->window), 0);
		for (i = 0; i < tc->npush; i++)
			assert_int_equal(profile_push(&p, tc->push[i]), 0);
		profile_summarize(&p, &tc->rule, tc->peak_pct, scratch, &s);

		assert_int_equal(s.n, w->n);
		assert_near(s.last, w->last, tc->name, "last");
		assert_near(s.mean, w->mean, tc->name, "mean");
		assert_near(s.min, w->min, tc->name, "min");
		assert_near(s.max, w->max, tc->name, "max");
		assert_near(s.p50, w->p50, tc->name, "p50");
		assert_near(s.p95, w->p95, tc->name, "p95");
		assert_near(s.p99, w->p99, tc->name, "p99");
		assert_near(s.peak, w->peak, tc->name, "peak");
		assert_near(s.ar1.mean, w->ar1.mean, tc->name, "ar1.mean");
		assert_near(s.ar1.phi, w->ar1.phi, tc->name, "ar1.phi");
		assert_near(s.ar1.forecast, w->ar1.forecast, tc->name, "ar1.forecast");
		if (s.over != w->over || s.hot != w->hot)
			fail_msg("%s: over %u hot %d, want over %u hot %d", tc->name, s.over, s.hot,
			         w->over, w->hot);
		for (i = 0; i < HIST_BINS; i++)
			if (s.hist.bins[i] != w->hist.bins[i])
				fail_msg("%s: bin %zu = %u, want %u", tc->name, i, s.hist.bins[i],
				         w->hist.bins[i]);
		assert_int_equal(s.hist.total, w->n);
		/* scratch past n is not touched, and the profile is unchanged */
		for (i = w->n; i < ARRAY_N(scratch); i++)
			assert_near(scratch[i], SENTINEL, tc->name, "scratch past n");
		assert_int_equal(profile_len(&p), w->n);
		if (w->n > 0)
			assert_near(ring_last(&p.win), w->last, tc->name, "ring last");
		profile_release(&p);
	}
}

/* The incrementally kept sorted window must give exactly the percentiles a
 * full sort of the window gives, whatever is pushed and evicted (repeated
 * values, zeros, overcommit), with windows of several sizes. */
static void test_profile_sorted_matches_sort(void **state)
{
	static const size_t windows[] = {1, 2, 5, 60, 301};
	double scratch[400], ref[400];
	unsigned seed = 12345;

	(void)state;
	for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++) {
		struct profile p;
		struct hotspot_rule rule = HOTSPOT_RULE_DEFAULT;
		assert_int_equal(profile_init(&p, windows[w]), 0);
		for (int i = 0; i < 2000; i++) {
			struct profile_summary s;
			size_t n;
			seed = seed * 1103515245u + 12345u;
			/* few distinct values, so duplicates are common */
			double v = (double)((seed >> 16) % 23) / 20.0;
			assert_int_equal(profile_push(&p, v), 0);
			n = profile_len(&p);
			ring_copy_last(&p.win, ref, n);
			stats_sort(ref, n);
			assert_memory_equal(p.sorted, ref, n * sizeof(double));
			profile_summarize(&p, &rule, 90.0, scratch, &s);
			assert_true(s.min == ref[0]);
			assert_true(s.max == ref[n - 1]);
			assert_true(s.p50 == stats_percentile_sorted(ref, n, 50.0));
			assert_true(s.p95 == stats_percentile_sorted(ref, n, 95.0));
			assert_true(s.p99 == stats_percentile_sorted(ref, n, 99.0));
			assert_true(s.peak == stats_percentile_sorted(ref, n, 90.0));
			if (i % 500 == 499)
				profile_clear(&p);
		}
		profile_release(&p);
	}
}

/* A set of profiles is n independent RES_N-arrays of the window asked for;
 * a bad window gives NULL, not a half-made set. */
static void test_profile_set(void **state)
{
	struct profile(*set)[RES_N];

	(void)state;
	assert_null(profile_set_new(2, 0));
	assert_null(profile_set_new(2, PROFILE_MAX_WINDOW + 1));
	set = profile_set_new(3, 4);
	assert_non_null(set);
	for (int i = 0; i < 6; i++)
		assert_int_equal(profile_push(&set[2][RES_NET], i), 0);
	assert_int_equal(profile_len(&set[2][RES_NET]), 4);
	assert_int_equal(profile_len(&set[0][RES_CPU]), 0);
	assert_int_equal(profile_len(&set[2][RES_MEM]), 0);
	profile_set_free(set, 3);
	profile_set_free(NULL, 3);
	set = profile_set_new(0, 4);
	assert_non_null(set);
	profile_set_free(set, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ring_init_errors),
	    cmocka_unit_test(test_ring_push),
	    cmocka_unit_test(test_ring_push_null_evicted),
	    cmocka_unit_test(test_ring_copy_last),
	    cmocka_unit_test(test_ring_clear),
	    cmocka_unit_test(test_stats_mean),
	    cmocka_unit_test(test_stats_percentile),
	    cmocka_unit_test(test_stats_sort),
	    cmocka_unit_test(test_stats_ar1),
	    cmocka_unit_test(test_hist_bin),
	    cmocka_unit_test(test_hist_add_remove),
	    cmocka_unit_test(test_profile_init_errors),
	    cmocka_unit_test(test_profile_window),
	    cmocka_unit_test(test_profile_push_rejects),
	    cmocka_unit_test(test_profile_rule_hot),
	    cmocka_unit_test(test_profile_summarize),
	    cmocka_unit_test(test_profile_sorted_matches_sort),
	    cmocka_unit_test(test_profile_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
