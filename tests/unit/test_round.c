/* Unit tests of src/core/round.c: how profiles become a host's load and hot
 * flags and a VM's demand, with hand-computed figures. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>

#include "core/round.h"

static void push(struct profile *p, const double *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		assert_int_equal(profile_push(p, v[i]), 0);
}

static void near(double got, double want)
{
	if (fabs(got - want) > 1e-9)
		fail_msg("got %.12f, want %.12f", got, want);
}

/* A host whose CPU stepped from 0.5 to 0.9 five samples ago:
 * window {0.5 x5, 0.9 x5}: p95 (type 7) h = 9 * 0.95 = 8.55 -> 0.9;
 * mean 0.7, deviations -0.2 x5, +0.2 x5: lag-1 sum 4*0.04 - 0.04 + 4*0.04 =
 * 0.28 over 10*0.04 = 0.4: phi 0.7, forecast 0.7 + 0.7*0.2 = 0.84.
 * Hot (all 5 of the last 5 over 0.75); load = max(0.9, 0.84, 0.9) * 4 = 3.6.
 * Memory constant 0.5 of 8192: not hot, load 4096. Network never sampled. */
static void test_round_host(void **state)
{
	static const double cpu[] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9};
	static const double mem[] = {0.5, 0.5, 0.5, 0.5, 0.5};
	struct profile prof[RES_N];
	struct round_opts o;
	struct cl_host h;
	double scratch[16];

	(void)state;
	round_opts_defaults(&o);
	cluster_host_defaults(&h);
	h.cap[RES_CPU] = 4;
	h.cap[RES_MEM] = 8192;
	h.cap[RES_NET] = 1000;
	for (int r = 0; r < RES_N; r++)
		assert_int_equal(profile_init(&prof[r], 10), 0);
	push(&prof[RES_CPU], cpu, 10);
	push(&prof[RES_MEM], mem, 5);
	round_host(&h, prof, &o, scratch);
	assert_true(h.hot[RES_CPU]);
	near(h.load[RES_CPU], 3.6);
	assert_false(h.hot[RES_MEM]);
	near(h.load[RES_MEM], 4096);
	assert_false(h.hot[RES_NET]);
	near(h.load[RES_NET], 0);
	near(h.thr[RES_CPU], 0.75);
	/* a 0.6 threshold from the options reaches the host */
	o.rule[RES_MEM].threshold = 0.6;
	round_host(&h, prof, &o, scratch);
	near(h.thr[RES_MEM], 0.6);
	for (int r = 0; r < RES_N; r++)
		profile_release(&prof[r]);
}

/* A VM's demand is its peak percentile times its allocation (cpu: vCPUs,
 * mem: MiB) or the host's NIC (net): cpu {0.2, 0.4, 0.6, 0.8}: h = 3*0.95 =
 * 2.85 -> 0.6 + 0.85*0.2 = 0.77 of 2 vCPUs = 1.54 cores; net {0.01} of
 * 1000 Mbit/s = 10. Never measured: half its vCPUs busy, all its memory. */
static void test_round_vm(void **state)
{
	static const double cpu[] = {0.2, 0.4, 0.6, 0.8};
	static const double net[] = {0.01};
	struct profile prof[RES_N];
	struct round_opts o;
	struct cl_vm v;
	double scratch[8];

	(void)state;
	round_opts_defaults(&o);
	cluster_vm_defaults(&v);
	v.vcpus = 2;
	v.mem_mib = 1024;
	for (int r = 0; r < RES_N; r++)
		assert_int_equal(profile_init(&prof[r], 8), 0);
	round_vm(&v, prof, 1000, &o, scratch);
	near(v.demand[RES_CPU], 1.0);
	near(v.demand[RES_MEM], 1024);
	near(v.demand[RES_NET], 0);
	push(&prof[RES_CPU], cpu, 4);
	push(&prof[RES_NET], net, 1);
	round_vm(&v, prof, 1000, &o, scratch);
	near(v.demand[RES_CPU], 1.54);
	near(v.demand[RES_MEM], 1024);
	near(v.demand[RES_NET], 10);
	/* the percentile is the configured one: p50 of {0.2..0.8} = 0.5 -> 1.0 */
	o.peak_pct = 50;
	round_vm(&v, prof, 1000, &o, scratch);
	near(v.demand[RES_CPU], 1.0);
	for (int r = 0; r < RES_N; r++)
		profile_release(&prof[r]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_host),
	    cmocka_unit_test(test_round_vm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
