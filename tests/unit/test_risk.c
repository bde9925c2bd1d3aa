/* test_risk.c - the risk a host passes its threshold (risk.c), the fits of
 * hosts and VMs from their profiles (round_vm_risk) and the planner's
 * prevention phase (plan.c, PLAN_PREVENT).
 *
 * Planner cases use hosts of 10 cores, 10000 MiB, 1000 Mbit/s, threshold
 * 75 % (7.5 cores), no memory or network demand; the arithmetic of each
 * expected figure is in the comment above it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/plan.h"
#include "core/risk.h"
#include "core/round.h"

#define NOW 10000000
/* in double (cmocka's assert_float_equal works in float) */
#define NEAR(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

static void test_pass(void **state)
{
	(void)state;
	/* at the limit: one half; one sd below it: 1 - Phi(1) = 0.158655 */
	NEAR(risk_pass(7.5, 0.25, 0, 7.5), 0.5, 1e-12);
	NEAR(risk_pass(7.0, 0.25, 0, 7.5), 0.158655, 1e-6);
	/* the floor: no spread measured, 0.5 assumed */
	NEAR(risk_pass(7.0, 0, 0.5, 7.5), 0.158655, 1e-6);
	/* no spread and no floor: certain either way */
	NEAR(risk_pass(7.6, 0, 0, 7.5), 1, 0);
	NEAR(risk_pass(7.4, 0, 0, 7.5), 0, 0);
}

static void test_host_combines(void **state)
{
	struct risk_opts o;
	double fc[RES_N] = {7.5, 7500, 0}, ms[RES_N] = {0.01, 1, 0}, cap[RES_N] = {10, 10000, 1000},
	       thr[RES_N] = {0.75, 0.75, 0.75}, per[RES_N];

	(void)state;
	risk_opts_defaults(&o);
	/* cpu and mem each at their limit (1/2 each), net idle: 1 - 1/2 * 1/2 */
	NEAR(risk_host(fc, ms, cap, thr, &o, per), 0.75, 1e-9);
	NEAR(per[RES_CPU], 0.5, 1e-12);
	NEAR(per[RES_NET], 0, 1e-12);
	/* a resource without capacity does not count */
	cap[RES_MEM] = 0;
	NEAR(risk_host(fc, ms, cap, thr, &o, NULL), 0.5, 1e-9);
}

static void test_fit(void **state)
{
	struct risk_opts o;
	struct risk_fit f, g, d;
	double flat[12], ramp[24], a[12], b[12], diff[12], ea[12], eb[12], ed[12];

	(void)state;
	risk_opts_defaults(&o);
	for (int i = 0; i < 12; i++)
		flat[i] = 0.4;
	risk_fit(flat, 12, 10, &o, NULL, &f);
	assert_int_equal(f.n, 12);
	NEAR(f.forecast, 4, 1e-12); /* scaled by the capacity */
	NEAR(f.ms, 0, 1e-12);
	/* too few samples: unknown */
	risk_fit(flat, 5, 10, &o, NULL, &f);
	assert_int_equal(f.n, 0);
	/* a ramp of 1 point per sample: the trend is learnt, the forecast is
	 * ahead of the last sample (0.33) and near the next (0.34) */
	for (int i = 0; i < 24; i++)
		ramp[i] = 0.1 + 0.01 * i;
	risk_fit(ramp, 24, 1, &o, NULL, &f);
	assert_true(f.forecast > ramp[23]);
	NEAR(f.forecast, 0.34, 0.005);
	assert_true(f.trend > 0.009);
	/* linear: the fit of a - b is the fit of a minus the fit of b, errors
	 * included (what makes a host's projection without a VM exact) */
	for (int i = 0; i < 12; i++) {
		a[i] = 0.5 + 0.2 * sin(i * 1.3);
		b[i] = 0.1 + 0.05 * cos(i * 0.7);
		diff[i] = a[i] - b[i];
	}
	risk_fit(a, 12, 2, &o, ea, &f);
	risk_fit(b, 12, 2, &o, eb, &g);
	risk_fit(diff, 12, 2, &o, ed, &d);
	assert_int_equal(f.nerr, 10);
	NEAR(d.forecast, f.forecast - g.forecast, 1e-12);
	for (size_t i = 0; i < f.nerr; i++)
		NEAR(ed[i], ea[i] - eb[i], 1e-12);
	/* ms(a - b) = ms(a) + ms(b) - 2 cov(a, b), exactly */
	NEAR(d.ms, f.ms + g.ms - 2 * risk_cov(ea, f.nerr, eb, g.nerr), 1e-12);
	/* the horizon stretches the trend and the spread */
	o.horizon = 3;
	risk_fit(ramp, 24, 1, &o, NULL, &g);
	o.horizon = 1;
	risk_fit(ramp, 24, 1, &o, NULL, &f);
	NEAR(g.forecast, f.level + 3 * f.trend, 1e-12);
	NEAR(g.ms, 3 * f.ms, 1e-12);
}

/* A host whose only moving part is one VM: that VM's errors are the host's,
 * so the host without it has no spread left. */
static void test_round_vm_risk(void **state)
{
	struct profile hp[RES_N], vp[RES_N];
	struct round_opts ro;
	struct cl_host h;
	struct cl_vm v;
	double scratch[ROUND_SCRATCH(16)], cap[RES_N] = {4, 8192, 1000};

	(void)state;
	round_opts_defaults(&ro);
	for (int r = 0; r < RES_N; r++) {
		assert_int_equal(profile_init(&hp[r], 16), 0);
		assert_int_equal(profile_init(&vp[r], 16), 0);
	}
	cluster_host_defaults(&h);
	memcpy(h.cap, cap, sizeof(cap));
	cluster_vm_defaults(&v);
	v.vcpus = 2;
	v.mem_mib = 1024;
	for (int i = 0; i < 16; i++) {
		double u = 0.3 + 0.25 * sin(i * 0.9); /* the VM's share of its 2 vCPUs */
		/* host cpu: 1 core of others plus the VM's 2 * u, of 4 cores */
		profile_push(&hp[RES_CPU], (1 + 2 * u) / 4);
		profile_push(&vp[RES_CPU], u);
		profile_push(&hp[RES_MEM], 0.5);
		profile_push(&vp[RES_MEM], 0.5);
		profile_push(&hp[RES_NET], 0);
		profile_push(&vp[RES_NET], 0);
	}
	round_host(&h, hp, &ro, scratch);
	round_vm(&v, vp, cap[RES_NET], &ro, scratch);
	round_vm_risk(&v, vp, hp, cap, &ro, scratch);
	assert_true(h.risk_known && v.risk_known);
	assert_true(v.ms[RES_CPU] > 0.01);
	NEAR(v.cov[RES_CPU], v.ms[RES_CPU], 1e-9);
	NEAR(h.ms[RES_CPU], v.ms[RES_CPU], 1e-9);
	/* without the VM: 1 core flat */
	NEAR(h.fc[RES_CPU] - v.fc[RES_CPU], 1, 1e-9);
	NEAR(h.ms[RES_CPU] + v.ms[RES_CPU] - 2 * v.cov[RES_CPU], 0, 1e-9);
	/* too short a window: unknown, and the VM's forecast is its demand */
	for (int r = 0; r < RES_N; r++)
		profile_clear(&vp[r]);
	profile_push(&vp[RES_CPU], 0.5);
	round_vm(&v, vp, cap[RES_NET], &ro, scratch);
	round_vm_risk(&v, vp, hp, cap, &ro, scratch);
	assert_false(v.risk_known);
	NEAR(v.fc[RES_CPU], v.demand[RES_CPU], 0);
	for (int r = 0; r < RES_N; r++) {
		profile_release(&hp[r]);
		profile_release(&vp[r]);
	}
}

struct fx {
	struct cl_host h[4];
	struct cl_vm v[4];
	struct cluster c;
	struct plan_opts o;
	struct plan_result r;
};

static void fx_host(struct fx *f, int i, double load, double fc, double ms)
{
	struct cl_host *H = &f->h[i];

	cluster_host_defaults(H);
	snprintf(H->id, sizeof(H->id), "h%d", i);
	H->cap[RES_CPU] = 10;
	H->cap[RES_MEM] = 10000;
	H->cap[RES_NET] = 1000;
	H->load[RES_CPU] = load;
	H->risk_known = true;
	H->fc[RES_CPU] = fc;
	H->ms[RES_CPU] = ms;
}

static void fx_vm(struct fx *f, int i, int host, double fc, double ms, double cov, double mem)
{
	struct cl_vm *v = &f->v[i];

	cluster_vm_defaults(v);
	snprintf(v->id, sizeof(v->id), "v%d", i);
	v->host = host;
	v->vcpus = 1;
	v->mem_mib = mem;
	v->demand[RES_CPU] = fc;
	v->risk_known = true;
	v->fc[RES_CPU] = fc;
	v->ms[RES_CPU] = ms;
	v->cov[RES_CPU] = cov;
}

/* The cluster of the first nh hosts and nv VMs, default options at NOW. */
static void fx_done(struct fx *f, int nh, int nv)
{
	f->c.hosts = f->h;
	f->c.nhosts = nh;
	f->c.vms = f->v;
	f->c.nvms = nv;
	plan_opts_defaults(&f->o);
	f->o.now_ms = NOW;
	f->o.sample_s = 300;
}

/* h0: forecast 7.3 cores, sd 0.5: P(> 7.5) = 1 - Phi(0.4) = 34.5 %, over
 * the 20 % target, though no sample was over (not hot). v0 (3 cores,
 * moving with the host: cov = ms = 0.16) and v1 (3 cores, steady) both
 * take the risk to ~0; v0 has 1000 MiB (8 s), v1 4000 MiB (32 s): v0
 * removes more risk per second. h1 (forecast 1 core) ends at 4 cores, risk
 * ~0; h2 (forecast 4.6) would end at 7.6 (risk > 50 %, over a quarter of
 * the target): ruled out. */
static void fx_base(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	fx_host(f, 0, 6.5, 7.3, 0.25);
	fx_host(f, 1, 1, 1, 0.01);
	fx_host(f, 2, 4.6, 4.6, 0.25);
	fx_vm(f, 0, 0, 3, 0.16, 0.16, 1000);
	fx_vm(f, 1, 0, 3, 0.01, 0.01, 4000);
	fx_vm(f, 2, 1, 1, 0.01, 0, 1000);
	fx_vm(f, 3, 2, 4.6, 0.25, 0.25, 1000);
	fx_done(f, 3, 4);
}

static void test_prevent(void **state)
{
	struct fx f;
	const struct plan_action *a;

	(void)state;
	fx_base(&f);
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 1);
	a = &f.r.actions[0];
	assert_int_equal(a->kind, PLAN_PREVENT);
	assert_string_equal(plan_kind_name(a->kind), "prevent");
	assert_int_equal(a->vm, 0);
	assert_int_equal(a->from, 0);
	assert_int_equal(a->to, 1);
	assert_int_equal(a->res, RES_CPU);
	NEAR(a->src_risk_before, 0.344578, 1e-5);
	assert_true(a->src_risk_after < 1e-6);
	assert_true(a->dst_risk_after < f.o.risk_target / 4);
	NEAR(f.r.risk[0], 0.344578, 1e-5);
	assert_true(f.r.risk_after[0] < 1e-6);
	assert_int_equal(f.r.nrisky, 1);
	assert_non_null(strstr(a->reason, "h0 has a 34.5% chance of passing 75% cpu in the "
	                                  "next 5 min (forecast 73%); moving vm v0 to h1"));
	assert_int_equal(f.r.nunresolved, 0);
	plan_result_free(&f.r);

	/* v0 rests after a recent move: v1 goes instead, the cost higher */
	fx_base(&f);
	f.v[0].last_moved_ms = NOW - 1000;
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 1);
	assert_int_equal(f.r.actions[0].vm, 1);
	plan_result_free(&f.r);

	/* every target would end over a quarter of the target: no move */
	fx_base(&f);
	f.h[1].fc[RES_CPU] = 4.6;
	f.h[1].ms[RES_CPU] = 0.25;
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 0);
	plan_result_free(&f.r);

	/* prevention off; or the risk under its target; or no forecast */
	fx_base(&f);
	f.o.risk_target = 0;
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 0);
	plan_result_free(&f.r);
	fx_base(&f);
	f.o.risk_target = 0.4;
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 0);
	plan_result_free(&f.r);
	fx_base(&f);
	f.h[0].risk_known = false;
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 0);
	plan_result_free(&f.r);

	/* an excluded host, or one already hot (relief's job), is not prevented */
	fx_base(&f);
	f.h[0].excluded = true;
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 0);
	plan_result_free(&f.r);

	/* a pin keeps v0 home: v1 moves */
	fx_base(&f);
	{
		static const int home[] = {0};
		f.v[0].pin = home;
		f.v[0].npin = 1;
	}
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 1);
	assert_int_equal(f.r.actions[0].vm, 1);
	plan_result_free(&f.r);
}

/* Objective pack (plan.c, PLAN_CONSOLIDATE). h0 runs v0 (2 cores), h1 v1
 * (5 cores), h2 v2 (3 cores), h3 nothing; every forecast is steady (ms
 * 0.01). Donors go least loaded first: h0's v0 fits the fullest host, h1,
 * at 7 cores (P(> 7.5) with sd 0.14: ~0, under the 10 % that a filled host
 * may reach): h0 is emptied. h2's v2 fits nowhere in use (h1 would be at 10
 * cores, h0 is empty now and h3 was: empty hosts are never woken for it),
 * so h2 stays; h1, the fullest, is no donor anyone could take. The
 * reason's cpu share is of the host's capacity (2 of 10 cores). */
static void fx_pack(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	fx_host(f, 0, 2, 2, 0.01);
	fx_host(f, 1, 5, 5, 0.01);
	fx_host(f, 2, 3, 3, 0.01);
	fx_host(f, 3, 0, 0, 0.01);
	fx_vm(f, 0, 0, 2, 0.01, 0, 1000);
	fx_vm(f, 1, 1, 5, 0.01, 0, 1000);
	fx_vm(f, 2, 2, 3, 0.01, 0, 1000);
	fx_done(f, 4, 3);
	f->o.objective = PLAN_PACK;
	f->o.max_per_host = 0;
}

static void test_pack(void **state)
{
	struct fx f;
	const struct plan_action *a;

	(void)state;
	fx_pack(&f);
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 1);
	a = &f.r.actions[0];
	assert_int_equal(a->kind, PLAN_CONSOLIDATE);
	assert_string_equal(plan_kind_name(a->kind), "consolidate");
	assert_int_equal(a->vm, 0);
	assert_int_equal(a->from, 0);
	assert_int_equal(a->to, 1);
	assert_true(f.r.risk_after[1] <= f.o.risk_target / 2);
	assert_int_equal(f.r.nemptied, 1);
	assert_int_equal(f.r.emptied[0], 0);
	assert_non_null(strstr(a->reason, "pack: h0 (cpu 20%) can be emptied, its 1 VM fit on "
	                                  "fuller hosts under 10.0% risk; vm v0 to h1"));
	plan_result_free(&f.r);

	/* spread (the default), or prevention off (no risk to bound a filled
	 * host by): nothing moves */
	fx_pack(&f);
	f.o.objective = PLAN_SPREAD;
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 0);
	assert_int_equal(f.r.nemptied, 0);
	plan_result_free(&f.r);
	fx_pack(&f);
	f.o.risk_target = 0;
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 0);
	plan_result_free(&f.r);

	/* h1 less steady: 7 cores there would be a 10.6 % risk (sd 0.6), over
	 * the 10 % limit: h0 is not emptied onto it; h2 takes v0 (5 cores, ~0) */
	fx_pack(&f);
	f.h[1].ms[RES_CPU] = 0.35;
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 1);
	assert_int_equal(f.r.actions[0].to, 2);
	plan_result_free(&f.r);

	/* a host is emptied whole or not at all: a second VM on h0 (5 cores)
	 * fits nowhere (h1 at 10, h2 at 8), so v0 does not move either; a
	 * pinned VM keeps its host in use */
	fx_pack(&f);
	fx_vm(&f, 3, 0, 5, 0.01, 0, 1000);
	f.h[0].load[RES_CPU] = f.h[0].fc[RES_CPU] = 7;
	f.c.nvms = 4;
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	for (int i = 0; i < f.r.nactions; i++)
		assert_int_not_equal(f.r.actions[i].from, 0);
	plan_result_free(&f.r);
	fx_pack(&f);
	{
		static const int home[] = {0};
		f.v[0].pin = home;
		f.v[0].npin = 1;
	}
	/* ... h0, pinned to, takes h2's v2 instead (5 cores; h1 would be at 8) */
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 1);
	assert_int_equal(f.r.actions[0].vm, 2);
	assert_int_equal(f.r.actions[0].to, 0);
	assert_int_equal(f.r.nemptied, 1);
	assert_int_equal(f.r.emptied[0], 2);
	plan_result_free(&f.r);

	/* h0 with v0 and v3 (1 core): v0 to h1 (7 cores), v3 to h2 (4; h1 would
	 * be at 8). The round's limit holds for pack as for any move: at 1, v0
	 * moves now and h0 is not yet empty (the rest next round) */
	fx_pack(&f);
	fx_vm(&f, 3, 0, 1, 0.01, 0, 1000);
	f.h[0].load[RES_CPU] = f.h[0].fc[RES_CPU] = 3;
	f.c.nvms = 4;
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 2);
	assert_int_equal(f.r.actions[0].vm, 0);
	assert_int_equal(f.r.actions[0].to, 1);
	assert_int_equal(f.r.actions[1].vm, 3);
	assert_int_equal(f.r.actions[1].to, 2);
	assert_int_equal(f.r.nemptied, 1);
	plan_result_free(&f.r);
	f.o.max_per_round = 1;
	assert_int_equal(plan_compute(&f.c, &f.o, &f.r), 0);
	assert_int_equal(f.r.nactions, 1);
	assert_int_equal(f.r.actions[0].vm, 0);
	assert_int_equal(f.r.nemptied, 0);
	plan_result_free(&f.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pass),    cmocka_unit_test(test_host_combines),
	    cmocka_unit_test(test_fit),     cmocka_unit_test(test_round_vm_risk),
	    cmocka_unit_test(test_prevent), cmocka_unit_test(test_pack),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
