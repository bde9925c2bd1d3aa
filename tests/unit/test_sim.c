/* test_sim.c - unit tests of the simulator: trace loading (every malformed
 * input names its file and line), the migration cost model, the baselines'
 * first decisions, determinism, and one end-to-end run of the tiny 2-host /
 * 3-VM scenario (tests/fixtures/sim/tiny.csv) against hand-computed figures.
 *
 * The scenario, worked by hand once here and used below:
 *   hosts h0, h1: 2 cores, 4096 MiB, 1000 Mbit/s, threshold 75 %.
 *   VMs (1 vCPU): a 1024 MiB, b 1024 MiB, c 512 MiB; memory 50 % always
 *   (a, b: 512 MiB, c: 256 MiB). cpu: step 0 a 40 %, b 40 %, c 10 %;
 *   steps 1-7 a 90 %, b 10 %, c 70 %.
 *   Placement (one sample, step 0): a -> h0 (tie, lower index); b -> h1
 *   (volume 1/(1-0.2) * 1/(1-0.125) = 1.4286 < h0's 1/(1-0.4) * 1/(1-0.25)
 *   = 2.2222); c -> h0 (both hosts then 1/(1-0.25) * 1/(1-0.1875) = 1.6410:
 *   tie, lower index).
 *   From step 1, h0 runs 0.9 + 0.7 = 1.6 cores = 80 % > 75 %: overloaded;
 *   h1 runs 0.1 core.
 *   Migration of c: 512 MiB * 8 / 1000 Mbit/s = 4.096 s.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim/sim.h"
#include "sim_cli.h"

#define EPS        1e-6
#define ARRAY_N(a) (sizeof(a) / sizeof((a)[0]))
#define TINY       "tests/fixtures/sim/tiny.csv"
#define MIG_C      4.096 /* seconds to move c */
#define S          300.0

enum { A, B, C }; /* VM indexes in tiny.csv */

static void near(double got, double want, const char *what)
{
	if (fabs(got - want) > EPS * (fabs(want) > 1 ? fabs(want) : 1))
		fail_msg("%s = %.12g, want %.12g", what, got, want);
}

/* ---- line parsers ------------------------------------------------------------ */

static void test_parse_lines(void **state)
{
	static const struct {
		const char *line;
		bool google, ok;
		double cpu, mem;
		const char *why;
	} cases[] = {
	    {"24", false, true, 24, 0, NULL},
	    {" 7 ", false, true, 7, 0, NULL},
	    {"0", false, true, 0, 0, NULL},
	    {"100", false, true, 100, 0, NULL},
	    {"", false, false, 0, 0, "not a CPU percent"},
	    {"abc", false, false, 0, 0, "not a CPU percent"},
	    {"12a", false, false, 0, 0, "not a CPU percent"},
	    {"1 2", false, false, 0, 0, "not a CPU percent"},
	    {"nan", false, false, 0, 0, "not a CPU percent"},
	    {"1e400", false, false, 0, 0, "not a CPU percent"},
	    {"101", false, false, 0, 0, "percent out of range 0-100"},
	    {"-1", false, false, 0, 0, "percent out of range 0-100"},
	    {"6.763 5.103", true, true, 6.763, 5.103, NULL},
	    {"\t12.5   118.5 ", true, true, 12.5, 118.5, NULL},
	    {"6.7", true, false, 0, 0, "expected two numbers"},
	    {"6.7 5.1 3", true, false, 0, 0, "expected two numbers"},
	    {"", true, false, 0, 0, "expected two numbers"},
	    {"150 2", true, false, 0, 0, "percent out of range 0-100"},
	    {"1 2000", true, false, 0, 0, "memory percent out of range 0-1000"},
	    {"x 2", true, false, 0, 0, "CPU percent is not a number"},
	    {"1 x", true, false, 0, 0, "memory percent is not a number"},
	};

	for (size_t i = 0; i < ARRAY_N(cases); i++) {
		const char *why = NULL;
		double cpu = -1, mem = -1;
		int rc = cases[i].google
		             ? trace_parse_google_line(cases[i].line, strlen(cases[i].line), &cpu,
		                                       &mem, &why)
		             : trace_parse_planetlab_line(cases[i].line, strlen(cases[i].line),
		                                          &cpu, &why);
		if (cases[i].ok) {
			if (rc != 0)
				fail_msg("'%s': refused: %s", cases[i].line, why);
			near(cpu, cases[i].cpu, cases[i].line);
			if (cases[i].google)
				near(mem, cases[i].mem, cases[i].line);
		} else {
			if (rc != -EINVAL)
				fail_msg("'%s': accepted", cases[i].line);
			if (!why || !strstr(why, cases[i].why))
				fail_msg("'%s': reason '%s', want '%s'", cases[i].line, why,
				         cases[i].why);
		}
	}
}

/* ---- loaders ------------------------------------------------------------------- */

static float at(const struct trace *t, int step, int vm, int r)
{
	return t->data[((size_t)step * (size_t)t->nvms + (size_t)vm) * RES_N + (size_t)r];
}

static void test_load_fixtures(void **state)
{
	struct trace t;
	char err[512] = "", id[CLUSTER_ID_MAX];

	assert_int_equal(trace_load_planetlab(&t, "tests/fixtures/sim/planetlab", err, sizeof(err)),
	                 0);
	assert_string_equal(t.name, "planetlab");
	assert_int_equal(t.nvms, 2);
	assert_int_equal(t.nsteps, 3);
	assert_string_equal(t.ids[0], "vm-a"); /* sorted by name */
	assert_string_equal(t.ids[1], "vm-b");
	near(at(&t, 2, 0, RES_CPU), 0.99, "vm-a step 2 cpu");
	near(at(&t, 0, 1, RES_CPU), 0.24, "vm-b step 0 cpu");
	near(at(&t, 0, 1, RES_MEM), 1.0, "planetlab memory = the VM's size");
	near(at(&t, 0, 1, RES_NET), 0, "planetlab network");
	assert_true(t.vcpus[0] == 0 && t.mem_mib[0] == 0); /* sizes come from the config */
	trace_free(&t);

	assert_int_equal(trace_load_google(&t, "tests/fixtures/sim/google/", err, sizeof(err)), 0);
	assert_string_equal(t.name, "google");
	assert_int_equal(t.nvms, 2);
	assert_int_equal(t.nsteps, 2);
	near(at(&t, 0, 0, RES_CPU), 0.125, "vm_1 step 0 cpu");
	near(at(&t, 0, 0, RES_MEM), 1.185, "vm_1 step 0 mem");
	near(at(&t, 1, 1, RES_MEM), 0.055, "vm_2 step 1 mem");
	trace_free(&t);

	assert_int_equal(trace_load_csv(&t, TINY, err, sizeof(err)), 0);
	assert_string_equal(t.name, "tiny");
	assert_int_equal(t.nvms, 3);
	assert_int_equal(t.nsteps, 8);
	trace_vm_id(&t, C, id);
	assert_string_equal(id, "c");
	near(t.vcpus[A], 1, "a vcpus");
	near(t.mem_mib[B], 1024, "b mem_mib");
	near(t.mem_mib[C], 512, "c mem_mib");
	near(at(&t, 0, A, RES_CPU), 0.4, "a step 0 cpu");
	near(at(&t, 5, C, RES_CPU), 0.7, "c step 5 cpu");
	near(at(&t, 5, C, RES_MEM), 0.5, "c step 5 mem");
	trace_free(&t);
}

struct bad_case {
	enum { PL, GOOGLE, CSV } kind;
	const char *files[3][2]; /* name, content; NULL content: a subdirectory */
	const char *want;        /* %s: the folder (or the CSV file) */
};

static const struct bad_case bad_cases[] = {
    {PL, {{"x", "10\n\n20\n"}}, "%s/x:2: empty line"},
    {PL, {{"x", "10\nabc\n"}}, "%s/x:2: not a CPU percent"},
    {PL, {{"x", "10\n101\n"}}, "%s/x:2: percent out of range 0-100"},
    {PL, {{"x", "5 6\n"}}, "%s/x:1: not a CPU percent"},
    {PL, {{"x", "1\r\n2\r\nnan\r\n"}}, "%s/x:3: not a CPU percent"},
    {PL, {{"a", "1\n2\n"}, {"b", "1\n"}}, "%s/b: 1 lines, expected 2 like %s/a"},
    {PL, {{"x", ""}}, "%s/x: empty file"},
    {PL, {{"x", "1\n"}, {"sub", NULL}}, "%s/sub: not a regular file"},
    {PL, {{NULL, NULL}}, "%s: no trace files"},
    {PL, {{"x", "LONG"}}, "%s/x:2: line longer than 4096 bytes"},
    {GOOGLE, {{"x", "1 2\n3\n"}}, "%s/x:2: expected two numbers"},
    {GOOGLE, {{"x", "1 2 3\n"}}, "%s/x:1: expected two numbers"},
    {GOOGLE, {{"x", "150 2\n"}}, "%s/x:1: percent out of range 0-100"},
    {GOOGLE, {{"x", "1 2000\n"}}, "%s/x:1: memory percent out of range 0-1000"},
    {CSV, {{"t.csv", ""}}, "%s: no header line"},
    {CSV, {{"t.csv", "# only a comment\n"}}, "%s: no header line"},
    {CSV, {{"t.csv", "step,vm,cpu\n"}}, "%s: no rows after the header"},
    {CSV, {{"t.csv", "step,vm,foo\n"}}, "%s:1: unknown column 'foo'"},
    {CSV, {{"t.csv", "# c\nstep,vm\n"}}, "%s:2: header lacks the 'cpu' column"},
    {CSV, {{"t.csv", "step,vm,cpu,cpu\n"}}, "%s:1: column 'cpu' twice"},
    {CSV, {{"t.csv", "step,vm,cpu\n0,a\n"}}, "%s:2: 2 fields, the header has 3"},
    {CSV, {{"t.csv", "step,vm,cpu\n-1,a,5\n"}}, "%s:2: step '-1' is not an integer"},
    {CSV, {{"t.csv", "step,vm,cpu\n0.5,a,5\n"}}, "%s:2: step '0.5' is not an integer"},
    {CSV, {{"t.csv", "step,vm,cpu\n0,a b,5\n"}}, "%s:2: vm 'a b' is not an id"},
    {CSV, {{"t.csv", "step,vm,cpu\n0,a,150\n"}}, "%s:2: cpu '150' is not a number in 0..100"},
    {CSV, {{"t.csv", "step,vm,cpu,net\n0,a,5,x\n"}}, "%s:2: net 'x' is not a number"},
    {CSV, {{"t.csv", "step,vm,cpu\n0,a,5\n\n"}}, "%s:3: empty line"},
    {CSV,
     {{"t.csv", "step,vm,cpu\n0,a,5\n1,a,5\n0,a,6\n"}},
     "%s:4: second row for vm a step 0 (first on line 2)"},
    {CSV,
     {{"t.csv", "step,vm,cpu\n0,a,5\n1,a,5\n0,b,5\n"}},
     "%s:4: vm b has no row for step 1 (steps run 0..1)"},
    {CSV,
     {{"t.csv", "step,vm,cpu,vcpus\n0,a,5,1\n1,a,5,2\n"}},
     "%s:3: vcpus 2 differs from 1 given earlier"},
    {CSV, {{"t.csv", "step,vm,cpu,mem_mib\n0,a,5,0\n"}}, "%s:2: mem_mib '0' is not a number"},
    {CSV,
     {{"t.csv", "step,vm,cpu\n0,a,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19\n"}},
     "%s:2: more than 16 fields"},
};

static void write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	if (strcmp(content, "LONG") == 0) {
		fputs("1\n", f);
		for (int i = 0; i < 5000; i++)
			fputc('1', f);
		fputc('\n', f);
	} else {
		fputs(content, f);
	}
	assert_int_equal(fclose(f), 0);
}

static void test_load_errors(void **state)
{
	for (size_t i = 0; i < ARRAY_N(bad_cases); i++) {
		const struct bad_case *bc = &bad_cases[i];
		char dir[] = "/tmp/le-sim-test-XXXXXX", path[512], want[1024], err[1024] = "";
		struct trace t;
		const char *where = dir;
		int rc;

		assert_non_null(mkdtemp(dir));
		for (int f = 0; f < 3 && bc->files[f][0]; f++) {
			snprintf(path, sizeof(path), "%s/%s", dir, bc->files[f][0]);
			if (bc->files[f][1])
				write_file(path, bc->files[f][1]);
			else
				assert_int_equal(mkdir(path, 0700), 0);
		}
		if (bc->kind == CSV) {
			snprintf(path, sizeof(path), "%s/%s", dir, bc->files[0][0]);
			where = path;
			rc = trace_load_csv(&t, path, err, sizeof(err));
		} else if (bc->kind == PL) {
			rc = trace_load_planetlab(&t, dir, err, sizeof(err));
		} else {
			rc = trace_load_google(&t, dir, err, sizeof(err));
		}
		snprintf(want, sizeof(want), bc->want, where, where);
		if (rc >= 0)
			fail_msg("case %zu (%s): loaded", i, bc->want);
		if (!strstr(err, want))
			fail_msg("case %zu: error '%s', want '%s'", i, err, want);
		assert_null(t.data); /* nothing left behind */
		rm_rf(dir);
	}
	{
		struct trace t;
		char err[512];
		assert_int_equal(trace_load_csv(&t, "/nonexistent/x.csv", err, sizeof(err)),
		                 -ENOENT);
		assert_string_equal(err, "/nonexistent/x.csv: No such file or directory");
		assert_int_equal(trace_load_planetlab(&t, "/nonexistent", err, sizeof(err)),
		                 -ENOENT);
		assert_string_equal(err, "/nonexistent: No such file or directory");
	}
}

static void test_synthetic(void **state)
{
	struct trace_synth s;
	struct trace t;
	char err[256];
	float first[3 * RES_N], again[3 * RES_N];
	const float *u;

	trace_synth_defaults(&s);
	s.nvms = 3;
	s.nsteps = 5;
	s.seed = 7;
	assert_int_equal(trace_synthetic(&t, &s, err, sizeof(err)), 0);
	u = trace_step(&t, 0);
	assert_non_null(u);
	for (int v = 0; v < 3; v++) { /* step 0 is each VM's mean */
		assert_true(u[v * RES_N + RES_CPU] >= 0.2f && u[v * RES_N + RES_CPU] <= 0.8f);
		assert_true(u[v * RES_N + RES_MEM] >= 0.4f && u[v * RES_N + RES_MEM] <= 0.9f);
		assert_true(u[v * RES_N + RES_NET] == 0); /* net range 0:0 stays 0 */
	}
	assert_null(trace_step(&t, 2)); /* steps come in order */
	assert_non_null(trace_step(&t, 1));
	u = trace_step(&t, 2);
	assert_non_null(u);
	memcpy(first, u, sizeof(first));
	assert_non_null(trace_step(&t, 0)); /* restart: the same numbers again */
	assert_non_null(trace_step(&t, 1));
	memcpy(again, trace_step(&t, 2), sizeof(again));
	assert_memory_equal(first, again, sizeof(first));
	assert_null(trace_step(&t, 5));
	trace_free(&t);

	s.seed = 8; /* another seed, other numbers */
	assert_int_equal(trace_synthetic(&t, &s, err, sizeof(err)), 0);
	trace_step(&t, 0);
	trace_step(&t, 1);
	assert_memory_not_equal(first, trace_step(&t, 2), sizeof(first));
	trace_free(&t);

	s.lo[RES_CPU] = 0.9;
	s.hi[RES_CPU] = 0.1;
	assert_int_equal(trace_synthetic(&t, &s, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "synthetic: mean range 0.9:0.1 outside 0..1");
}

/* ---- the model and its cost model -------------------------------------------------- */

struct fx {
	struct sim_config cfg;
	struct trace t;
	struct sim_model m;
};

static void fx_open(struct fx *f, void (*tweak)(struct sim_config *))
{
	char err[512];

	memset(f, 0, sizeof(*f));
	sim_config_defaults(&f->cfg);
	f->cfg.nhosts = 2;
	f->cfg.window = 5;
	if (tweak)
		tweak(&f->cfg);
	assert_int_equal(trace_load_csv(&f->t, TINY, err, sizeof(err)), 0);
	if (model_init(&f->m, &f->cfg, &f->t, err, sizeof(err)) < 0 ||
	    model_place(&f->m, err, sizeof(err)) < 0)
		fail_msg("%s", err);
}

static void fx_close(struct fx *f)
{
	model_free(&f->m);
	trace_free(&f->t);
}

static void test_placement(void **state)
{
	struct fx f;

	fx_open(&f, NULL);
	assert_int_equal(f.m.init_host[A], 0);
	assert_int_equal(f.m.init_host[B], 1);
	assert_int_equal(f.m.init_host[C], 0);
	near(f.m.amem[0], 1536, "h0 allocated MiB");
	near(f.m.acpu[1], 1, "h1 allocated vCPUs");
	fx_close(&f);
}

static void test_migration_seconds(void **state)
{
	static const struct {
		double mem, dirty, link, want;
	} cases[] = {
	    {1740, 0, 1000, 13.92},   /* 1740 * 8 / 1000 */
	    {512, 0, 1000, 4.096},    /* c of tiny.csv */
	    {1024, 200, 1000, 10.24}, /* 1024 * 8 / 800 */
	    {512, 0, 10, 409.6},
	    {1024, 1000, 1000, -1}, /* dirtying as fast as the link: never converges */
	    {1024, 1200, 1000, -1},
	};

	for (size_t i = 0; i < ARRAY_N(cases); i++)
		near(cluster_migration_seconds(cases[i].mem, cases[i].dirty, cases[i].link),
		     cases[i].want, "migration seconds");
}

static void slow_link(struct sim_config *c)
{
	c->link_mbit = 10;
}

static void dirty_fast(struct sim_config *c)
{
	c->dirty_mbit = 1000;
}

static void small_mem(struct sim_config *c)
{
	c->host_cap[RES_MEM] = 2048;
}

static void test_cost_model(void **state)
{
	struct fx f;
	double frac = MIG_C / S;

	/* c moves h0 -> h1 at the start of step 1, for 4.096 s */
	fx_open(&f, NULL);
	assert_int_equal(model_step(&f.m), 0);
	assert_int_equal(model_migrate(&f.m, C, 1, 0), 0);
	assert_int_equal(f.m.inflight[0], 1);
	assert_int_equal(f.m.inflight[1], 1);
	near(f.m.amem[1], 1536, "h1 reserves c's memory from the start");
	assert_int_equal(model_migrate(&f.m, C, 1, 0), -EBUSY);
	assert_int_equal(model_step(&f.m), 0);
	/* h0: a 0.9 + c 0.7 for the 4.096 s it is still there + 0.1 core of
	 * migration work for 4.096 s; h1: b 0.1 + c for the rest + 0.1 core */
	near(f.m.hload[0][RES_CPU], 0.9 + 0.7 * frac + 0.1 * frac, "h0 cpu during the move");
	near(f.m.hload[1][RES_CPU], 0.1 + 0.7 * (1 - frac) + 0.1 * frac, "h1 cpu during the move");
	near(f.m.hload[0][RES_MEM], 512 + 256 * frac, "h0 mem during the move");
	near(f.m.hload[1][RES_MEM], 512 + 256 * (1 - frac), "h1 mem during the move");
	assert_int_equal(f.m.vms[C].host, 1);
	assert_int_equal(f.m.vms[C].mig, -1);
	assert_true(f.m.vms[C].last_moved_ms == 304096); /* 300 s + 4.096 s */
	assert_int_equal(f.m.nran, 1);
	near(f.m.ran[0].secs, MIG_C, "seconds of migration in the step");
	assert_int_equal(f.m.completed, 1);
	near(f.m.downtime_s, 0.3, "downtime");
	assert_int_equal(f.m.inflight[0] + f.m.inflight[1], 0);
	near(f.m.amem[0], 1024, "h0 allocation after");
	assert_int_equal(model_migrate(&f.m, C, 1, 0), -EINVAL); /* already there */
	assert_int_equal(model_migrate(&f.m, 7, 0, 0), -EINVAL);
	assert_int_equal(model_migrate(&f.m, C, 2, 0), -EINVAL);
	fx_close(&f);

	/* a later start (the second half of a swap): c leaves at 100 s */
	fx_open(&f, NULL);
	model_step(&f.m);
	assert_int_equal(model_migrate(&f.m, C, 1, 100), 0);
	model_step(&f.m);
	near(f.m.hload[0][RES_CPU], 0.9 + 0.7 * (100 + MIG_C) / S + 0.1 * frac, "h0, start 100 s");
	assert_true(f.m.vms[C].last_moved_ms == 404096);
	fx_close(&f);

	/* a 10 Mbit/s link: 409.6 s, over two steps */
	fx_open(&f, slow_link);
	model_step(&f.m);
	assert_int_equal(model_migrate(&f.m, C, 1, 0), 0);
	model_step(&f.m);
	near(f.m.hload[0][RES_CPU], 0.9 + 0.7 + 0.1, "h0, first step of a long move");
	near(f.m.hload[1][RES_CPU], 0.1 + 0.1, "h1, first step of a long move");
	assert_int_equal(f.m.vms[C].host, 0);
	assert_true(f.m.vms[C].mig >= 0);
	assert_int_equal(f.m.inflight[0], 1);
	assert_int_equal(model_migrate(&f.m, C, 1, 0), -EBUSY);
	model_step(&f.m);
	frac = 109.6 / S;
	near(f.m.hload[0][RES_CPU], 0.9 + 0.7 * frac + 0.1 * frac, "h0, second step");
	near(f.m.hload[1][RES_CPU], 0.1 + 0.7 * (1 - frac) + 0.1 * frac, "h1, second step");
	assert_int_equal(f.m.vms[C].host, 1);
	assert_true(f.m.vms[C].last_moved_ms == 709600);
	fx_close(&f);

	/* refusals: not converging, past the memory allocation */
	fx_open(&f, dirty_fast);
	model_step(&f.m);
	assert_int_equal(model_migrate(&f.m, C, 1, 0), -ERANGE);
	fx_close(&f);
	fx_open(&f, small_mem);
	assert_int_equal(f.m.init_host[C], 0);
	model_step(&f.m);
	assert_int_equal(model_migrate(&f.m, A, 1, 0), 0);       /* 1024 + 1024 = 2048 */
	assert_int_equal(model_migrate(&f.m, C, 1, 0), -ENOSPC); /* + 512 */
	fx_close(&f);
}

/* ---- the baselines' first decision (after step 1) ---------------------------------- */

static void thr75(struct sim_config *c)
{
	c->thr_mmt = 0.75;
}

static void decide_after_step1(const struct policy_ops *p, void (*tweak)(struct sim_config *),
                               const int (*want)[2], int n)
{
	struct fx f;
	struct sim_moves mv = {0};
	void *st = NULL;

	fx_open(&f, tweak);
	assert_int_equal(p->init(&st, &f.m), 0);
	for (int t = 0; t < 2; t++) {
		assert_int_equal(model_step(&f.m), 0);
		if (p->observe)
			assert_int_equal(p->observe(st, &f.m), 0);
	}
	assert_int_equal(p->decide(st, &f.m, &mv), 0);
	if (mv.n != n)
		fail_msg("%s: %d moves, want %d", p->name, mv.n, n);
	for (int i = 0; i < n; i++) {
		assert_int_equal(mv.v[i].vm, want[i][0]);
		assert_int_equal(mv.v[i].to, want[i][1]);
	}
	p->free_state(st);
	moves_free(&mv);
	fx_close(&f);
}

static void test_baselines(void **state)
{
	/* proxlb: h0 80 %, h1 5 %: spread 75 > 10. Largest guest first: a (90 %)
	 * is on the busiest node -> h1 (h0 35 %, h1 50 %: spread 15); c is on h0,
	 * no longer the busiest; b is on h1, now the busiest -> h0 (40 %, 45 %). */
	static const int proxlb[][2] = {{A, 1}, {B, 0}};
	/* stddev: cpu (0.8, 0.05) sd 0.375 > 0.1. Moves: a -> h1 gives sd cpu
	 * 0.075 + mem 0.09375 = 0.16875; c -> h1: 0.025 + 0.03125 = 0.05625;
	 * b -> h0: 0.425 + 0.15625, worse than now (0.40625). c first; after it
	 * cpu's sd 0.025 < 0.1: done. */
	static const int stddev[][2] = {{C, 1}};
	/* thr-mmt at 80 %: h0 is at 80 %, not above. Consolidation: h1 (5 %)
	 * would push h0 to 85 %: cancelled; h0's VMs have nowhere to go. */
	/* thr-mmt at 75 %: h0 over; the least RAM first: c (512 MiB); h0 then
	 * 45 %. c -> h1 (40 % after, power +14.65 W on the G5 table). h1 now
	 * has a VM migrating in: not consolidated. */
	static const int thr[][2] = {{C, 1}};

	decide_after_step1(&policy_none, NULL, NULL, 0);
	decide_after_step1(&policy_proxlb, NULL, proxlb, 2);
	decide_after_step1(&policy_stddev, NULL, stddev, 1);
	decide_after_step1(&policy_thr_mmt, NULL, NULL, 0);
	decide_after_step1(&policy_thr_mmt, thr75, thr, 1);
	/* loadease after step 1: h0 has 1 sample of 5 over: not hot yet */
	decide_after_step1(&policy_loadease, NULL, NULL, 0);
}

static void test_power(void **state)
{
	struct fx f;

	fx_open(&f, NULL);
	near(model_power(&f.m, 0, 0), 86, "G4 idle");
	near(model_power(&f.m, 0, 1), 117, "G4 full");
	near(model_power(&f.m, 0, 0.45), 100.75, "G4 45 %"); /* 99.5 + (102 - 99.5) / 2 */
	near(model_power(&f.m, 1, 0.05), 95.35, "G5 5 %");
	near(model_power(&f.m, 1, 1.5), 135, "G5 clamped");
	fx_close(&f);
}

/* ---- end to end ----------------------------------------------------------------------- */

static char *run(struct fx *f, const struct policy_ops *p, struct sim_summary *s)
{
	char *buf = NULL, err[512];
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);

	assert_non_null(mem);
	if (sim_run(&f->m, p, mem, false, s, NULL, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	fclose(mem);
	return buf;
}

static void test_end_to_end(void **state)
{
	struct fx f;
	struct sim_summary s;
	char *csv;
	/* PDM: c lost 10 % of 0.7 core for 4.096 s = 0.28672 core-s, of the
	 * (0.1 + 7 * 0.7) * 300 = 1500 core-s it asked for; a and b lost none;
	 * averaged over the 3 VMs. */
	double pdm = 0.1 * 0.7 * MIG_C / 1500 / 3;

	fx_open(&f, NULL);

	/* none: h0 overloaded in steps 1-7 = 7 of 16 host-steps */
	csv = run(&f, &policy_none, &s);
	near(s.overload_share, 7.0 / 16, "none overload share");
	near(s.cpu_share, 7.0 / 16, "none cpu share");
	near(s.sat_share, 0, "none saturation");
	assert_int_equal(s.migrations, 0);
	near(s.pdm, 0, "none pdm");
	near(s.hosts_in_use, 2, "none hosts in use");
	assert_int_equal(s.steps, 8);
	assert_non_null(strstr(csv, "0,none,0,0.000000,0,2,"));
	assert_non_null(strstr(csv, "\n7,none,1,0.500000,0,2,0.000\n")); /* no decision after it */
	free(csv);

	/* loadease, window 5, k = 3 of n = 5: h0's cpu samples run 0.25, then
	 * 0.8. After step 3 ([.25 .8 .8 .8]) and step 4 ([.25 .8 .8 .8 .8]) three
	 * samples are over, but the AR(1) forecast is not: mean 0.69, lag-1
	 * autocorrelation -0.05 (the level shift), forecast 0.6845 < 0.75. After
	 * step 5 the window is [.8 .8 .8 .8 .8]: no variance, forecast = last =
	 * 0.8: hot. The planner moves c (VSR 1.641/512 above a's 2.078/1024) to
	 * h1 (0.8 core after, 40 %); it runs in step 6 for 4.096 s: h0 45.5 %,
	 * h1 39.6 %. Overloaded: steps 1-5 = 5 of 16. */
	csv = run(&f, &policy_loadease, &s);
	near(s.overload_share, 5.0 / 16, "loadease overload share");
	assert_int_equal(s.migrations, 1);
	near(s.pdm, pdm, "loadease pdm");
	near(s.slav, 5.0 / 16 * pdm, "loadease slav");
	near(s.downtime_s, 0.3, "loadease downtime");
	assert_int_equal(s.refused, 0);
	assert_non_null(strstr(csv, "\n4,loadease,1,0.500000,0,2,"));
	assert_non_null(strstr(csv, "\n5,loadease,1,0.500000,1,2,"));
	assert_non_null(strstr(csv, "\n6,loadease,0,0.000000,0,2,"));
	free(csv);
	assert_int_equal(f.m.vms[C].host, 1);
	fx_close(&f);
}

/* ---- determinism ----------------------------------------------------------------------- */

/* The CSV without its last column (planning time, wall clock). */
static void strip_plan_ms(char *csv)
{
	char *w = csv;

	for (char *line = csv; *line;) {
		char *nl = strchr(line, '\n'), *comma;
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		line[n] = '\0';
		comma = strrchr(line, ',');
		if (comma)
			*comma = '\0';
		n = strlen(line);
		memmove(w, line, n);
		w += n;
		*w++ = '\n';
		line = nl ? nl + 1 : line + strlen(line);
		if (!nl)
			break;
	}
	*w = '\0';
}

static void synth_run(uint64_t seed, char **out, struct sim_summary sums[8])
{
	struct sim_config cfg;
	struct trace_synth syn;
	struct trace t;
	struct sim_model m;
	char err[512], *all = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&all, &len);

	sim_config_defaults(&cfg);
	cfg.seed = seed;
	cfg.nhosts = 8;
	cfg.host_cap[RES_CPU] = 12;
	cfg.host_cap[RES_MEM] = 65536;
	cfg.vm_vcpus[1] = 2;
	cfg.nvm_vcpus = 2;
	trace_synth_defaults(&syn);
	syn.seed = seed;
	syn.nvms = 80;
	syn.nsteps = 40;
	assert_int_equal(trace_synthetic(&t, &syn, err, sizeof(err)), 0);
	if (model_init(&m, &cfg, &t, err, sizeof(err)) < 0 || model_place(&m, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	for (int i = 0; policy_list[i]; i++)
		if (sim_run(&m, policy_list[i], mem, false, &sums[i], NULL, err, sizeof(err)) < 0)
			fail_msg("%s", err);
	fclose(mem);
	strip_plan_ms(all);
	*out = all;
	model_free(&m);
	trace_free(&t);
}

/* ---- prevention ------------------------------------------------------------------------ */

/* drift.csv: h0 holds a (climbing 2.5 points of its 2 vCPUs a step) and b
 * (0.3 core, steady), h1 holds c (idle after step 0). h0 is at 35 + 2.5 t %
 * and passes 75 % at step 17. With the default risk target (20 %), the
 * Holt forecast after step 15 (window 12) is about 75 % with a spread of
 * 2 % of the host (the floor): b moves in step 16, before any sample is
 * over, and h0 never passes (a alone peaks at 70 %). Without prevention
 * (target 0) the k-of-n rule moves b only once h0 has been over. */
static void drift_open(struct fx *f, double risk_target)
{
	char err[512];

	memset(f, 0, sizeof(*f));
	sim_config_defaults(&f->cfg);
	f->cfg.nhosts = 2;
	f->cfg.risk_target = risk_target;
	assert_int_equal(trace_load_csv(&f->t, "tests/fixtures/sim/drift.csv", err, sizeof(err)),
	                 0);
	if (model_init(&f->m, &f->cfg, &f->t, err, sizeof(err)) < 0 ||
	    model_place(&f->m, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_int_equal(f->m.init_host[0], f->m.init_host[2]); /* a and b together */
	assert_int_not_equal(f->m.init_host[0], f->m.init_host[1]);
}

static void test_prevention(void **state)
{
	struct fx f;
	struct sim_summary s;
	char *csv;

	(void)state;
	drift_open(&f, 0.2);
	csv = run(&f, &policy_none, &s);
	assert_true(s.overload_share > 0.1); /* steps 17-23 */
	free(csv);
	csv = run(&f, &policy_loadease, &s);
	near(s.overload_share, 0, "prevention: never over");
	assert_int_equal(s.migrations, 1);
	assert_non_null(strstr(csv, "\n15,loadease,0,0.000000,1,")); /* decided after step 15 */
	free(csv);
	fx_close(&f);

	drift_open(&f, 0);
	csv = run(&f, &policy_loadease, &s);
	assert_true(s.overload_share > 0.01); /* reacted only after h0 was over */
	assert_int_equal(s.migrations, 1);
	free(csv);
	fx_close(&f);
}

/* Resize in place: big asks for 3.6 cores of its 4-vCPU size but starts with
 * 2 (--vm-start-alloc 0.5). Unresized (none, or loadease --no-resize) it is
 * short of 1.6 of every 3.6 + 0.1 core-s asked (small gets its 0.1 of 1):
 * unserved 1.6 / 3.7. LoadEase sees it at its allocation and grows it where
 * it runs, 2 -> 3 (max(+1, ceil(2 x 1.25))) then 3 -> 4, no migration; after
 * that nothing is short. */
static void start_half(struct sim_config *c)
{
	c->vm_start_alloc = 0.5;
	c->host_cap[RES_CPU] = 8;
}

static void test_resize_in_place(void **state)
{
	struct fx f;
	struct sim_summary s;
	char err[512], *csv;
	double none;

	(void)state;
	memset(&f, 0, sizeof(f));
	sim_config_defaults(&f.cfg);
	f.cfg.nhosts = 2;
	f.cfg.window = 5;
	start_half(&f.cfg);
	assert_int_equal(trace_load_csv(&f.t, "tests/fixtures/sim/resize.csv", err, sizeof(err)),
	                 0);
	if (model_init(&f.m, &f.cfg, &f.t, err, sizeof(err)) < 0 ||
	    model_place(&f.m, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	near(f.m.vms[0].vcpus, 2, "big starts with half its 4 vCPUs");
	near(f.m.vms[1].vcpus, 1, "small keeps at least one");
	csv = run(&f, &policy_none, &s);
	none = s.unserved_share;
	near(none, 1.6 / 3.7, "none: unserved");
	assert_int_equal(s.resizes, 0);
	free(csv);
	csv = run(&f, &policy_loadease, &s);
	assert_int_equal(s.resizes, 2);
	assert_int_equal(s.migrations, 0);
	assert_true(s.unserved_share < none / 4);
	assert_true(s.unserved_share > 0); /* the first steps, before it grew */
	near(f.m.vms[0].vcpus, 4, "big grew to its size");
	near(f.m.acpu[f.m.vms[0].host], f.m.vms[0].host == f.m.vms[1].host ? 5 : 4,
	     "its host's allocation follows");
	free(csv);
	f.cfg.resize = false;
	csv = run(&f, &policy_loadease, &s);
	assert_int_equal(s.resizes, 0);
	near(s.unserved_share, none, "--no-resize: as none");
	free(csv);
	fx_close(&f);

	/* at its size (the default) there is nothing to grow into */
	fx_open(&f, NULL);
	csv = run(&f, &policy_loadease, &s);
	assert_int_equal(s.resizes, 0);
	near(s.unserved_share, 0, "full allocation: all served");
	free(csv);
	fx_close(&f);
}

static void test_determinism(void **state)
{
	char *a, *b, *c;
	struct sim_summary sa[8], sb[8], sc[8];
	long moved = 0;

	synth_run(7, &a, sa);
	synth_run(7, &b, sb);
	synth_run(8, &c, sc);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	for (int i = 0; policy_list[i]; i++) {
		assert_true(sa[i].overload_share == sb[i].overload_share);
		assert_true(sa[i].pdm == sb[i].pdm);
		assert_int_equal(sa[i].migrations, sb[i].migrations);
		assert_true(sa[i].energy_kwh == sb[i].energy_kwh);
		moved += sa[i].migrations;
	}
	assert_true(moved > 0); /* the run did exercise migrations */
	free(a);
	free(b);
	free(c);
}

/* ---- the command line -------------------------------------------------------------------- */

static void test_cli(void **state)
{
	static const struct {
		const char *args[8];
		int n;
		const char *msg;
	} bad[] = {
	    {{"--hosts", "2"}, 2, "give exactly one of --planetlab"},
	    {{"--trace", TINY, "--synthetic"}, 3, "give exactly one of"},
	    {{"--trace", TINY, "--hosts", "0"}, 4, "--hosts '0': need a number in 1..1000000"},
	    {{"--trace", TINY, "--hosts", "2x"}, 4, "--hosts '2x'"},
	    {{"--trace", TINY, "--policy", "drs"}, 4, "unknown policy 'drs'"},
	    {{"--trace", TINY, "--policy", "none,none"}, 4, "'none' twice"},
	    {{"--trace", TINY, "--k", "6"}, 4, "--k 6 is more than --n 5"},
	    {{"--trace", TINY, "--ar-cpu", "0.5"}, 4, "need LO:HI"},
	    {{"--trace", TINY, "--steps", "10"}, 4, "are for --synthetic"},
	    {{"--trace", TINY, "--bogus"}, 3, "unknown option '--bogus'"},
	    {{"--trace"}, 1, "--trace needs a value"},
	};
	char dir[] = "/tmp/le-sim-cli-XXXXXX", out[256], path[256], *txt;
	const char *ok[] = {"--trace", TINY,    "--hosts", "2",        "--window",
	                    "5",       "--out", NULL,      "--policy", "none,loadease",
	                    "--quiet"};

	assert_non_null(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/out.txt", dir);
	for (size_t i = 0; i < ARRAY_N(bad); i++) {
		int rc = sim_cli(out, bad[i].args, bad[i].n);
		txt = slurp(out);
		if (rc != 2 || !strstr(txt, bad[i].msg))
			fail_msg("case %zu: exit %d, output '%s', want exit 2 and '%s'", i, rc, txt,
			         bad[i].msg);
		free(txt);
	}
	{
		const char *args[] = {"--trace", "/nonexistent.csv"};
		assert_int_equal(sim_cli(out, args, 2), 1);
		txt = slurp(out);
		assert_non_null(strstr(txt, "/nonexistent.csv: No such file or directory"));
		free(txt);
	}
	{
		const char *args[] = {"--help"};
		assert_int_equal(sim_cli(out, args, 1), 0);
		txt = slurp(out);
		assert_non_null(strstr(txt, "--planetlab DIR"));
		assert_non_null(strstr(txt, "thr-mmt"));
		free(txt);
	}
	ok[7] = dir;
	assert_int_equal(sim_cli(out, ok, ARRAY_N(ok)), 0);
	txt = slurp(out);
	/* the RESULT lines come last */
	assert_non_null(strstr(txt, "\nRESULT sim trace=tiny policy=none hosts=2 vms=3 "
	                            "overload_share=0.437500 pdm=0 slav=0 migrations=0 "));
	assert_non_null(strstr(txt, "\nRESULT sim trace=tiny policy=loadease hosts=2 vms=3 "
	                            "overload_share=0.312500 pdm=6.37156e-05 slav=1.99111e-05 "
	                            "migrations=1 "));
	assert_null(strstr(strstr(txt, "\nRESULT"), "\ntrace "));
	free(txt);
	snprintf(path, sizeof(path), "%s/summary.csv", dir);
	txt = slurp(path);
	assert_non_null(strstr(txt, "tiny,loadease,2,3,8,0.312500,0.312500,0.000000,6.371556e-05,"
	                            "1.991111e-05,1,0,2.000,"));
	free(txt);
	snprintf(path, sizeof(path), "%s/steps-loadease.csv", dir);
	txt = slurp(path);
	assert_true(strncmp(txt, SIM_STEPS_HEADER, strlen(SIM_STEPS_HEADER)) == 0);
	assert_non_null(strstr(txt, "\n5,loadease,1,0.500000,1,2,"));
	free(txt);
	rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_lines), cmocka_unit_test(test_load_fixtures),
	    cmocka_unit_test(test_load_errors), cmocka_unit_test(test_synthetic),
	    cmocka_unit_test(test_placement),   cmocka_unit_test(test_migration_seconds),
	    cmocka_unit_test(test_cost_model),  cmocka_unit_test(test_baselines),
	    cmocka_unit_test(test_power),       cmocka_unit_test(test_end_to_end),
	    cmocka_unit_test(test_prevention),  cmocka_unit_test(test_determinism),
	    cmocka_unit_test(test_cli),         cmocka_unit_test(test_resize_in_place),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
