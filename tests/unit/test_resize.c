/* test_resize.c - resize in place (resize.h) through plan_compute: growth of
 * a VM at its allocation when its host has room, the fall back to a smaller
 * step or to a migration when it has not, balloon reclaim of idle guests on
 * a memory-hot host, and, on random clusters, the invariants every resize
 * keeps (within the domain's maxima, the host's threshold, headroom and
 * overcommit; once per VM; never with a migration of the same VM).
 *
 * Hosts: 10 cores, 10000 MiB, 1000 Mbit/s, thresholds 75 % (limit 7.5 cores,
 * 7500 MiB) unless a case says otherwise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plan.h"
#include "core/resize.h"

#define MAXH 32
#define MAXV 256
#define NOW  10000000

struct fx {
	struct cl_host h[MAXH];
	struct cl_vm v[MAXV];
	struct cluster c;
	struct plan_opts o;
	struct plan_result r;
};

static void fx_init(struct fx *f, int nh)
{
	memset(f, 0, sizeof(*f));
	for (int i = 0; i < nh; i++) {
		cluster_host_defaults(&f->h[i]);
		snprintf(f->h[i].id, sizeof(f->h[i].id), "h%d", i);
		f->h[i].cap[RES_CPU] = 10;
		f->h[i].cap[RES_MEM] = 10000;
		f->h[i].cap[RES_NET] = 1000;
	}
	f->c.hosts = f->h;
	f->c.nhosts = nh;
	f->c.vms = f->v;
	plan_opts_defaults(&f->o);
	f->o.now_ms = NOW;
	f->o.risk_target = 0;
}

/* A VM on host h; its demand is added to the host's load. */
static int fx_vm(struct fx *f, int h, double vcpus, double mem, double dcpu, double dmem,
                 double max_vcpus, double max_mem)
{
	int i = f->c.nvms++;
	struct cl_vm *v = &f->v[i];

	assert_true(i < MAXV);
	cluster_vm_defaults(v);
	snprintf(v->id, sizeof(v->id), "v%d", i);
	v->host = h;
	v->vcpus = vcpus;
	v->mem_mib = mem;
	v->demand[RES_CPU] = dcpu;
	v->demand[RES_MEM] = dmem;
	v->max_vcpus = max_vcpus;
	v->max_mem_mib = max_mem;
	f->h[h].load[RES_CPU] += dcpu;
	f->h[h].load[RES_MEM] += dmem;
	return i;
}

static void fx_hot(struct fx *f)
{
	for (int h = 0; h < f->c.nhosts; h++)
		for (int r = 0; r < RES_N; r++)
			f->h[h].hot[r] = f->h[h].load[r] > f->h[h].thr[r] * f->h[h].cap[r];
}

static const struct plan_action *find(const struct fx *f, int vm, enum plan_kind k)
{
	for (int i = 0; i < f->r.nactions; i++)
		if (f->r.actions[i].vm == vm && f->r.actions[i].kind == k)
			return &f->r.actions[i];
	return NULL;
}

/* A VM burning its 2 vCPUs (demand 2.0) of max 8 on a host at 3 cores: it
 * wants ceil(2.0 x 1.25) = 3 vCPUs and is expected to use 2.5, the host
 * goes to 3.5 of its 7.5: a resize, no migration. */
static void test_grow_vcpus(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const struct plan_action *a;
	(void)state;

	fx_init(f, 2);
	fx_vm(f, 0, 2, 1024, 2.0, 500, 8, 1024);
	fx_vm(f, 0, 4, 1024, 1.0, 500, 0, 0);
	fx_hot(f);
	assert_int_equal(plan_compute(&f->c, &f->o, &f->r), 0);
	assert_int_equal(f->r.nactions, 1);
	a = find(f, 0, PLAN_RESIZE);
	assert_non_null(a);
	assert_int_equal(a->from, 0);
	assert_int_equal(a->to, 0);
	assert_int_equal(a->res, RES_CPU);
	assert_true(a->vcpus_before == 2 && a->vcpus_after == 3);
	assert_true(a->mem_before == 1024 && a->mem_after == 1024);
	/* volume 1/(1-0.3) * 1/(1-0.1) -> 1/(1-0.35) * 1/(1-0.1) */
	assert_true(fabs(a->src_vol_before - 1 / 0.7 / 0.9) < 1e-9);
	assert_true(fabs(a->src_vol_after - 1 / 0.65 / 0.9) < 1e-9);
	assert_non_null(strstr(a->reason, "vm v0 uses 2.00 of its 2 vCPUs: 2 -> 3 vCPUs"));
	assert_non_null(strstr(a->reason, "h0 cpu 30% -> 35% of 10 cores"));
	plan_result_free(&f->r);

	/* the same with resize off: nothing to do (no hotspot) */
	f->o.resize = false;
	assert_int_equal(plan_compute(&f->c, &f->o, &f->r), 0);
	assert_int_equal(f->r.nactions, 0);
	plan_result_free(&f->r);
	free(f);
}

/* Demand 4.0 on 4 vCPUs (max 8): it wants 5, expected to use 5.0, but the
 * host is at 7.0 of 7.5 cores: +1.0 does not fit, nor does any step; and
 * the host is not hot, so nothing happens. With the host at 6.0, 5 vCPUs
 * (+1.0) fit. Memory: demand 1000 of 1024 (max 2048) asks for max(1280,
 * 1280) = 1280 MiB, expected use 1250; the host at 7400 of 7500 MiB takes
 * only +100, so the largest 64 MiB step whose use fits: 1088 (+88). */
static void test_grow_falls_back(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const struct plan_action *a;
	(void)state;

	fx_init(f, 2);
	fx_vm(f, 0, 4, 1024, 4.0, 1000, 8, 2048);
	fx_vm(f, 0, 4, 4096, 3.0, 6400, 0, 0);
	fx_hot(f);
	assert_int_equal(plan_compute(&f->c, &f->o, &f->r), 0);
	a = find(f, 0, PLAN_RESIZE);
	assert_non_null(a);
	assert_true(a->vcpus_after == 4); /* no room for a core more */
	assert_true(a->mem_after == 1088);
	assert_int_equal(a->res, RES_MEM);
	assert_non_null(strstr(a->reason, "vm v0 uses 1000 of its 1024 MiB: 1024 -> 1088 MiB"));
	plan_result_free(&f->r);

	f->h[0].load[RES_CPU] = 6.0;
	f->v[1].demand[RES_CPU] = 2.0;
	assert_int_equal(plan_compute(&f->c, &f->o, &f->r), 0);
	a = find(f, 0, PLAN_RESIZE);
	assert_non_null(a);
	assert_true(a->vcpus_after == 5 && a->mem_after == 1088);
	assert_int_equal(a->res, RES_CPU);
	assert_non_null(
	    strstr(a->reason, "vm v0 uses 4.00 of its 4 vCPUs: 4 -> 5 vCPUs, 1024 -> 1088 MiB"));
	plan_result_free(&f->r);
	free(f);
}

/* A host hot on cpu (8.0 of 10 > 7.5) whose VM is at its allocation: no room
 * to grow, so relief migrates (it is the one the host sheds). With
 * max_vcpus at its allocation it is not resizable at all: the same move. */
static void test_no_room_then_migrate(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const struct plan_action *a;
	(void)state;

	fx_init(f, 2);
	fx_vm(f, 0, 2, 1024, 2.0, 500, 4, 1024);
	fx_vm(f, 0, 8, 1024, 6.0, 500, 0, 0);
	fx_hot(f);
	assert_true(f->h[0].hot[RES_CPU]);
	assert_int_equal(plan_compute(&f->c, &f->o, &f->r), 0);
	assert_null(find(f, 0, PLAN_RESIZE));
	assert_null(find(f, 1, PLAN_RESIZE));
	assert_true(f->r.nactions >= 1);
	a = &f->r.actions[0];
	assert_int_equal(a->kind, PLAN_MOVE);
	assert_int_equal(a->from, 0);
	assert_int_equal(a->to, 1);
	plan_result_free(&f->r);
	free(f);
}

/* Memory hotspot: 8200 of 10000 MiB (> 7500). Idle guests: v0 uses 1000 of
 * 4096 (keep max(1000 + 200 -> 1216, floor max(512, 1024)) = 1216, 2880
 * back), v1 uses 300 of 2048 (keep max(384, 512) = 512, 1536 back), v2 uses
 * 600 of 700 (not idle: 86 %). Most reclaimable first: v0 alone brings the
 * host to 8200 - 2880 = 5320 < 7500, so v1 keeps its memory. No migration. */
static void test_reclaim(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const struct plan_action *a;
	(void)state;

	fx_init(f, 2);
	fx_vm(f, 0, 2, 2048, 0.5, 300, 0, 2048);
	fx_vm(f, 0, 2, 4096, 0.5, 1000, 0, 4096);
	fx_vm(f, 0, 2, 700, 0.5, 600, 0, 700);
	f->h[0].load[RES_MEM] = 8200;
	fx_hot(f);
	assert_true(f->h[0].hot[RES_MEM]);
	assert_int_equal(plan_compute(&f->c, &f->o, &f->r), 0);
	assert_int_equal(f->r.nactions, 1);
	a = find(f, 1, PLAN_RESIZE);
	assert_non_null(a);
	assert_true(a->mem_before == 4096 && a->mem_after == 1216 && a->vcpus_after == 2);
	assert_int_equal(a->res, RES_MEM);
	assert_non_null(strstr(a->reason, "h0 hot on mem (82% > 75%): vm v1 uses 1000 of its 4096 "
	                                  "MiB: balloon to 1216 MiB, 2880 MiB back"));
	assert_non_null(strstr(a->reason, "h0 mem 82% -> 53% of 10000 MiB"));
	assert_true(f->r.nunresolved == 0);
	plan_result_free(&f->r);

	/* a bigger hotspot (10400 MiB, over capacity: swap): v1's 2880 leaves
	 * 7520 > 7500, so v0 gives its 1536 too (5984) */
	f->h[0].load[RES_MEM] = 10400;
	assert_int_equal(plan_compute(&f->c, &f->o, &f->r), 0);
	assert_int_equal(f->r.nactions, 2);
	assert_int_equal(f->r.actions[0].vm, 1);
	assert_int_equal(f->r.actions[1].vm, 0);
	assert_true(f->r.actions[1].mem_after == 512);
	plan_result_free(&f->r);

	/* a guest that would give back less than 128 MiB (600 of 640: not idle;
	 * 400 of 600: keep 512, 88 back) is left alone, and the hotspot goes to
	 * relief */
	fx_init(f, 2);
	fx_vm(f, 0, 2, 600, 0.5, 400, 0, 600);
	f->h[0].load[RES_MEM] = 8000;
	fx_hot(f);
	assert_int_equal(plan_compute(&f->c, &f->o, &f->r), 0);
	assert_null(find(f, 0, PLAN_RESIZE));
	plan_result_free(&f->r);
	free(f);
}

/* A VM that is migrating, excluded, or on a host in maintenance is never
 * resized; a resized VM is not also moved. */
static void test_resize_rules(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	(void)state;

	fx_init(f, 2);
	fx_vm(f, 0, 1, 1024, 1.0, 100, 2, 1024);
	fx_vm(f, 0, 1, 1024, 1.0, 100, 2, 1024);
	fx_vm(f, 1, 1, 1024, 1.0, 100, 2, 1024);
	f->v[0].migrating = true;
	f->v[1].excluded = true;
	f->h[1].state = HOST_MAINTENANCE;
	fx_hot(f);
	assert_int_equal(plan_compute(&f->c, &f->o, &f->r), 0);
	for (int i = 0; i < f->r.nactions; i++)
		assert_int_not_equal(f->r.actions[i].kind, PLAN_RESIZE);
	plan_result_free(&f->r);
	/* automation: off is never resized, manual and auto are (the
	 * controller only recommends a manual VM's resize) */
	for (int lvl = CL_AUTO; lvl <= CL_OFF; lvl++) {
		fx_init(f, 2);
		fx_vm(f, 0, 2, 1024, 2.0, 500, 8, 1024);
		f->v[0].automation = (enum cl_automation)lvl;
		fx_hot(f);
		assert_int_equal(plan_compute(&f->c, &f->o, &f->r), 0);
		if ((find(f, 0, PLAN_RESIZE) != NULL) != (lvl != CL_OFF))
			fail_msg("automation %s: resize %s", cluster_automation_name(lvl),
			         lvl != CL_OFF ? "missing" : "proposed");
		plan_result_free(&f->r);
	}
	free(f);
}

/* --- random clusters ---------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static double uni(uint64_t *s, double lo, double hi)
{
	return lo + (hi - lo) * (double)(rnd(s) >> 11) / 9007199254740992.0;
}

static double limit_of(const struct cl_host *H, int r)
{
	double l = H->cap[r] * (1 - H->headroom[r]);
	return H->thr[r] * H->cap[r] < l ? H->thr[r] * H->cap[r] : l;
}

static void gen(struct fx *f, uint64_t *s)
{
	int nh = 2 + (int)(rnd(s) % 8);

	fx_init(f, nh);
	f->o.risk_target = 0;
	for (int h = 0; h < nh; h++) {
		f->h[h].cap[RES_CPU] = (double)(4 + rnd(s) % 29);
		f->h[h].cap[RES_MEM] = (double)(4096 + 1024 * (rnd(s) % 60));
		f->h[h].headroom[RES_CPU] = rnd(s) % 3 ? 0 : 0.1;
		f->h[h].overcommit_cpu = rnd(s) % 2 ? 4 : 1.5;
		f->h[h].state = rnd(s) % 10 ? HOST_UP : HOST_MAINTENANCE;
		for (int k = (int)(rnd(s) % 12); k > 0 && f->c.nvms < MAXV; k--) {
			double vc = (double)(1 + rnd(s) % 8),
			       mem = (double)(256 * (1 + rnd(s) % 32));
			double dc = uni(s, 0, vc * 1.05), dm = uni(s, 0, mem * 1.02);
			double mvc = rnd(s) % 3 ? vc + (double)(rnd(s) % 8) : 0;
			double mm = rnd(s) % 3 ? mem + 256.0 * (double)(rnd(s) % 8) : 0;
			int v = fx_vm(f, h, vc, mem, dc, dm, mvc, mm);
			f->v[v].migrating = rnd(s) % 15 == 0;
		}
		f->h[h].load[RES_CPU] *= uni(s, 1, 1.2); /* the host's own work */
	}
	fx_hot(f);
}

/* 5000 random clusters: every resize keeps the rules of resize.h. */
static void test_prop_resize(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint64_t s = 0x9e3779b97f4a7c15ull;
	long grows = 0, reclaims = 0;
	(void)state;

	for (int it = 0; it < 5000; it++) {
		double load[MAXH][RES_N], acpu[MAXH] = {0}, amem[MAXH] = {0};
		int seen[MAXV] = {0}, moved[MAXV] = {0};
		gen(f, &s);
		assert_int_equal(plan_compute(&f->c, &f->o, &f->r), 0);
		for (int h = 0; h < f->c.nhosts; h++)
			memcpy(load[h], f->h[h].load, sizeof(load[h]));
		for (int v = 0; v < f->c.nvms; v++) {
			acpu[f->v[v].host] += f->v[v].vcpus;
			amem[f->v[v].host] += f->v[v].mem_mib;
		}
		for (int i = 0; i < f->r.nactions; i++) {
			const struct plan_action *a = &f->r.actions[i];
			const struct cl_vm *vm = &f->v[a->vm];
			const struct cl_host *H = &f->h[vm->host];
			if (a->kind != PLAN_RESIZE) {
				moved[a->vm]++;
				continue;
			}
			assert_int_equal(seen[a->vm]++, 0);
			assert_true(a->from == vm->host && a->to == vm->host);
			assert_false(vm->migrating || vm->excluded);
			assert_int_equal(H->state, HOST_UP);
			assert_true(a->vcpus_before == vm->vcpus && a->mem_before == vm->mem_mib);
			assert_true(a->vcpus_after == floor(a->vcpus_after));
			assert_true(fmod(a->mem_after, 64) == 0 || a->mem_after == vm->mem_mib ||
			            a->mem_after == vm->max_mem_mib);
			if (a->vcpus_after > a->vcpus_before || a->mem_after > a->mem_before) {
				grows++;
				assert_true(a->vcpus_after <= fmax(vm->max_vcpus, vm->vcpus));
				assert_true(a->mem_after <= fmax(vm->max_mem_mib, vm->mem_mib));
				if (a->vcpus_after > a->vcpus_before) {
					double e =
					    fmin(a->vcpus_after, vm->demand[RES_CPU] * 1.25) -
					    vm->demand[RES_CPU];
					assert_true(vm->demand[RES_CPU] >= 0.95 * vm->vcpus);
					load[vm->host][RES_CPU] += e > 0 ? e : 0;
					acpu[vm->host] += a->vcpus_after - a->vcpus_before;
					assert_true(e <= 1e-9 || load[vm->host][RES_CPU] <=
					                             limit_of(H, RES_CPU) + 1e-6);
					assert_true(acpu[vm->host] <=
					            H->cap[RES_CPU] * H->overcommit_cpu + 1e-6);
				}
				if (a->mem_after > a->mem_before) {
					double e = fmin(a->mem_after, vm->demand[RES_MEM] * 1.25) -
					           vm->demand[RES_MEM];
					assert_true(vm->demand[RES_MEM] >= 0.95 * vm->mem_mib);
					load[vm->host][RES_MEM] += e > 0 ? e : 0;
					amem[vm->host] += a->mem_after - a->mem_before;
					assert_true(e <= 1e-9 || load[vm->host][RES_MEM] <=
					                             limit_of(H, RES_MEM) + 1e-6);
					assert_true(amem[vm->host] <=
					            H->cap[RES_MEM] * H->overcommit_mem + 1e-6);
				}
			} else {
				double floor_mib =
				    fmax(512, fmax(vm->max_mem_mib, vm->mem_mib) / 4);
				reclaims++;
				assert_true(a->mem_after < a->mem_before &&
				            a->vcpus_after == a->vcpus_before);
				assert_true(vm->max_mem_mib > 0);
				assert_true(H->hot[RES_MEM] ||
				            H->load[RES_MEM] > H->thr[RES_MEM] * H->cap[RES_MEM]);
				assert_true(vm->demand[RES_MEM] <= 0.7 * vm->mem_mib);
				assert_true(a->mem_after >= floor_mib - 1e-9);
				assert_true(a->mem_after >= vm->demand[RES_MEM] * 1.2 - 1e-9);
				assert_true(a->mem_before - a->mem_after >= 128 - 1e-9);
				load[vm->host][RES_MEM] -= a->mem_before - a->mem_after;
				amem[vm->host] -= a->mem_before - a->mem_after;
			}
		}
		for (int v = 0; v < f->c.nvms; v++)
			assert_false(seen[v] && moved[v]);
		plan_result_free(&f->r);
	}
	print_message("resize on 5000 random clusters: %ld grows, %ld reclaims\n", grows, reclaims);
	assert_true(grows > 1000 && reclaims > 100);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grow_vcpus),           cmocka_unit_test(test_grow_falls_back),
	    cmocka_unit_test(test_no_room_then_migrate), cmocka_unit_test(test_reclaim),
	    cmocka_unit_test(test_resize_rules),         cmocka_unit_test(test_prop_resize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
