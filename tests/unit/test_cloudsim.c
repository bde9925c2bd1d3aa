/* test_cloudsim.c - unit tests of the CloudSim 3.0.3 model (src/sim/
 * cloudsim.h): its pieces against CloudSim's tables and formulas, two
 * hand-made scenarios with figures worked out below, and the command line.
 *
 * Scenario "one migration" (thr-mmt at 0.3, 2 hosts, 1 VM of 2 samples at
 * 70 %): the VM (type 0: 2500 MIPS, 870 MB) can only start on the G5 host
 * h1 (a G4 PE has 1860 MIPS). At 300.1 it asks 1750 MIPS: h1 at 1750 / 5320
 * = 0.329 > 0.3 is over-utilised; MMT takes the VM, power-aware best fit
 * sends it to h0 (the only other host; 1750 fits one G4 PE). It migrates
 * 870 / 62.5 = 13.92 s: h1 allocates it 90 % and counts 1750; h0 counts
 * 1750 requested, 175 allocated. At 314.02 it lands on h0; the next update
 * (600.1) is past the end (600 s). So over [300.1, 314.02): h0 violated,
 * h1 not: SLATAH = 13.92 / 27.84 = 0.5; the VM lacked 175 of 1750 MIPS:
 * PDM = 0.1; energy = 13.92 s x (P_G4(175 / 3720) + P_G5(1750 / 5320)) =
 * 13.92 x (86 + 34 x 0.0470 + 105 + 50 x 0.0289) W s; h1 goes off at
 * 314.02: 1 shutdown (h0 was active from its first entry).
 *
 * Scenario "leaving": 2 hosts, VM0 (type 0) at 50, 0, 0, 50 %, VM1 (type 1,
 * 2000 MIPS) at 50 % throughout: both start on h1 (VM1 does not fit a G4
 * PE either). At 300.1 VM0 requests 0 (samples 1 and 2 are 0) and leaves
 * for good; VM1 stays alone on h1 (nowhere else to go: h0 is off) at 1000
 * MIPS: energy = 600 s x P_G5(1000 / 5320) (the first 300 s count nothing);
 * h0 is idle from 300.1 on: 1 shutdown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sim/sim.h"
#include "sim_cli.h"

#define ARRAY_N(a) (sizeof(a) / sizeof((a)[0]))

static void near(double got, double want, double eps, const char *what)
{
	if (fabs(got - want) > eps * (fabs(want) > 1 ? fabs(want) : 1))
		fail_msg("%s = %.12g, want %.12g", what, got, want);
}

/* A trace of nvms VMs and nsteps samples, pct[v * nsteps + k] percent. */
static void hand_trace(struct trace *t, int nvms, int nsteps, const double *pct)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "hand");
	t->nvms = nvms;
	t->nsteps = nsteps;
	t->step_s = 300;
	t->cur = -1;
	t->data = calloc((size_t)(nvms * nsteps * RES_N), sizeof(float));
	assert_non_null(t->data);
	for (int v = 0; v < nvms; v++)
		for (int k = 0; k < nsteps; k++)
			t->data[(k * nvms + v) * RES_N + RES_CPU] =
			    (float)(pct[v * nsteps + k] / 100);
}

static void test_power(void **state)
{
	static const struct {
		int type;
		double u, w;
	} cases[] = {
	    {0, 0, 86},       {0, 1, 117},      {1, 0, 93.7},    {1, 1, 135},
	    {0, 0.5, 102},    {1, 0.5, 116},    {0, 0.55, 104},  {1, 0.05, 95.35},
	    {0, 0.95, 115.5}, {1, 0.33, 106.5}, {0, 1.005, 117}, {1, -0.1, 93.7},
	};

	for (size_t i = 0; i < ARRAY_N(cases); i++) {
		char what[64];
		snprintf(what, sizeof(what), "power(%d, %g)", cases[i].type, cases[i].u);
		near(cs_power(cases[i].type, cases[i].u), cases[i].w, 1e-9, what);
	}
	/* energy: the mean of the two ends; nothing from an idle (off) host */
	near(cs_energy(0, 0.5, 1, 100), (102 + 117) / 2.0 * 100, 1e-9, "energy G4 0.5 -> 1");
	near(cs_energy(1, 0.5, 0, 300), (116 + 93.7) / 2 * 300, 1e-9, "energy G5 to idle");
	near(cs_energy(0, 0, 0.8, 300), 0, 1e-9, "energy from off");
}

static void test_migration_seconds(void **state)
{
	near(cs_migration_seconds(870, CS_HOST_BW), 13.92, 1e-12, "870 MB");
	near(cs_migration_seconds(1740, CS_HOST_BW), 27.84, 1e-12, "1740 MB");
	near(cs_migration_seconds(613, CS_HOST_BW), 9.808, 1e-12, "613 MB");
	near(cs_migration_seconds(870, 2 * CS_HOST_BW), 6.96, 1e-12, "2 Gbit/s");
}

static void test_vm_types(void **state)
{
	static const struct {
		int i, n, type;
	} cases[] = {
	    {0, 1052, 0},    {262, 1052, 0}, {263, 1052, 1}, {525, 1052, 1}, {526, 1052, 2},
	    {1051, 1052, 3}, {0, 898, 0},    {224, 898, 0},  {225, 898, 1},  {897, 898, 3},
	    {0, 5, 0},       {1, 5, 0},      {2, 5, 1},      {4, 5, 2},      {0, 1, 0},
	};
	struct cs_config c;
	struct cs_model m;
	struct trace t;
	double pct[5 * 2] = {0};
	char err[256];

	for (size_t i = 0; i < ARRAY_N(cases); i++)
		if (cs_vm_type(cases[i].i, cases[i].n) != cases[i].type)
			fail_msg("VM %d of %d: type %d, want %d", cases[i].i, cases[i].n,
			         cs_vm_type(cases[i].i, cases[i].n), cases[i].type);
	cs_config_defaults(&c);
	hand_trace(&t, 5, 2, pct);
	assert_int_equal(cs_model_init(&m, &c, &t, err, sizeof(err)), 0);
	assert_int_equal(m.nhosts, 800);
	assert_true(m.vms[1].mips == 2500 && m.vms[1].ram == 870);
	assert_true(m.vms[2].mips == 2000 && m.vms[2].ram == 1740);
	assert_true(m.vms[4].mips == 1000 && m.vms[4].ram == 1740);
	assert_true(m.hosts[0].pe_mips == 1860 && m.hosts[0].total_mips == 3720);
	assert_true(m.hosts[799].pe_mips == 2660 && m.hosts[799].total_mips == 5320);
	cs_model_free(&m);
	trace_free(&t);
}

static void test_utilization(void **state)
{
	static const double u[] = {0.1, 0.3, 0.5, 0.5};

	near(cs_utilization(u, 0), 0.1, 1e-15, "at 0");
	near(cs_utilization(u, 300), 0.3, 1e-15, "at 300");
	near(cs_utilization(u, 150), 0.2, 1e-15, "at 150");
	near(cs_utilization(u, 300.1), 0.3 + 0.2 * 0.1 / 300, 1e-12, "at 300.1");
	near(cs_utilization(u, 600.1), 0.5, 1e-15, "at 600.1 (sample 3 repeats 2)");
}

static void test_leave_rule(void **state)
{
	static const struct {
		double u[6];
		int n, k;
	} cases[] = {
	    {{0.5, 0, 0, 0.5, 0.5}, 4, 1},     {{0, 0, 0.5, 0.5, 0.5}, 4, -1},
	    {{0.05, 0.05, 0, 0}, 3, 2},        {{0.05, 0, 0.05, 0, 0, 0}, 5, 3},
	    {{0.05, 0.05, 0.05, 0.05}, 3, -1}, {{0.5, 0, 0.5, 0, 0.5}, 4, -1},
	};

	for (size_t i = 0; i < ARRAY_N(cases); i++)
		if (cs_vm_leaves(cases[i].u, cases[i].n) != cases[i].k)
			fail_msg("case %zu: leaves at %d, want %d", i,
			         cs_vm_leaves(cases[i].u, cases[i].n), cases[i].k);
}

static void run_hand(int nvms, int nsteps, const double *pct, double thr, struct cs_summary *s,
                     int *home0)
{
	struct cs_config c;
	struct cs_model m;
	struct trace t;
	char err[256];

	cs_config_defaults(&c);
	c.nhosts = 2;
	c.thr = thr;
	hand_trace(&t, nvms, nsteps, pct);
	assert_int_equal(cs_model_init(&m, &c, &t, err, sizeof(err)), 0);
	if (cs_run(&m, &cs_policy_thr_mmt, NULL, s, err, sizeof(err)) != 0)
		fail_msg("run: %s", err);
	*home0 = m.vms[0].home;
	cs_model_free(&m);
	trace_free(&t);
}

static void test_one_migration(void **state)
{
	static const double pct[] = {70, 70};
	struct cs_summary s;
	int home;
	double w = 86 + 34 * (175 / 3720.0) + 105 + 50 * (1750 / 5320.0 - 0.3);

	run_hand(1, 2, pct, 0.3, &s, &home);
	assert_int_equal(s.migrations, 1);
	assert_int_equal(home, 0);
	near(s.slatah, 0.5, 1e-9, "SLATAH");
	near(s.pdm, 0.1, 1e-9, "PDM");
	near(s.slav, 0.05, 1e-9, "SLAV");
	near(s.energy_kwh, 13.92 * w / 3.6e6, 1e-9, "energy");
	near(s.esv, s.energy_kwh * 0.05, 1e-9, "ESV");
	assert_int_equal(s.host_shutdowns, 1);
	assert_int_equal(s.vms, 1);
	assert_int_equal(s.vms_left, 1);

	/* at the default 0.8 nothing is over-utilised and h1 has nowhere to go */
	run_hand(1, 2, pct, 0.8, &s, &home);
	assert_int_equal(s.migrations, 0);
	assert_int_equal(home, 1);
	near(s.slatah, 0, 1e-12, "SLATAH without migration");
	near(s.pdm, 0, 1e-12, "PDM without migration");
}

static void test_leaving(void **state)
{
	static const double pct[] = {50, 0, 0, 50, 50, 50, 50, 50};
	struct cs_summary s;
	int home;
	double p = 97 + 0.4 * (1000 / 5320.0 - 0.1) * 100;

	run_hand(2, 4, pct, 0.8, &s, &home);
	assert_int_equal(s.vms, 2);
	assert_int_equal(s.vms_left, 1);
	assert_int_equal(home, -1);
	assert_int_equal(s.migrations, 0);
	near(s.energy_kwh, 600 * p / 3.6e6, 1e-9, "energy");
	assert_int_equal(s.host_shutdowns, 1);
	near(s.slatah, 0, 1e-12, "SLATAH");
}

/* ---- LoadEase's planner in the CloudSim model (cloudsim_loadease.c) -------------------- */

/* 4 VMs (2500, 2000, 1000 and 500 MIPS) on 4 hosts, CloudSim's placement
 * (full MIPS at time 0) spreading them one per host; ramp[k] percent at
 * sample k for all of them. Runs loadease (pack or spread, max-per-host 0
 * as in the model's default) and returns its summary and where the VMs
 * ended. */
static void run_le(const double *ramp, int nsteps, bool pack, struct cs_summary *s, int *home)
{
	struct sim_config le;
	struct cs_config c;
	struct cs_model m;
	struct trace t;
	char err[256];
	double *pct = calloc((size_t)(4 * nsteps), sizeof(double));

	assert_non_null(pct);
	for (int v = 0; v < 4; v++)
		for (int k = 0; k < nsteps; k++)
			pct[v * nsteps + k] = ramp[k];
	sim_config_defaults(&le);
	le.pack = pack;
	le.max_per_host = 0;
	cs_config_defaults(&c);
	c.nhosts = 4;
	c.le = &le;
	hand_trace(&t, 4, nsteps, pct);
	assert_int_equal(cs_model_init(&m, &c, &t, err, sizeof(err)), 0);
	if (cs_run(&m, &cs_policy_loadease, NULL, s, err, sizeof(err)) != 0)
		fail_msg("run: %s", err);
	for (int v = 0; v < 4; v++)
		home[v] = m.vms[v].home;
	cs_model_free(&m);
	trace_free(&t);
	free(pct);
}

/* At 20 % the four VMs need 1200 MIPS: pack empties three hosts onto one
 * G5 (they fit under the threshold with no risk) and stays there; spread
 * leaves them where they are (nothing is hot). Then all ramp to 100 %
 * (6000 MIPS, more than a G5's 5320): pack's host is relieved by moving
 * the biggest VM before it is over, and fewer migrations and less SLA
 * violation than CloudSim's THR-MMT-0.8 on the same day follow. */
static void test_loadease_pack(void **state)
{
	double ramp[32];
	int n = 0, home[4];
	struct cs_summary s, st;
	struct cs_config c;
	struct cs_model m;
	struct trace t;
	char err[256];

	for (int k = 0; k < 32; k++) /* a flat day at 20 % */
		ramp[k] = 20;
	run_le(ramp, 32, false, &s, home);
	assert_int_equal(s.migrations, 0);
	assert_int_equal(s.host_shutdowns, 0);
	assert_true(home[0] != home[1] && home[1] != home[2] && home[2] != home[3]);
	run_le(ramp, 32, true, &st, home);
	assert_int_equal(st.migrations, 3);
	assert_int_equal(st.host_shutdowns, 3);
	assert_true(home[0] == home[1] && home[1] == home[2] && home[2] == home[3]);
	assert_true(home[0] % 2 == 1); /* a G5: the 2500- and 2000-MIPS VMs fit no G4 PE */
	assert_true(st.energy_kwh < 0.5 * s.energy_kwh);
	/* the only violation is CloudSim's 10 % of a VM lost while it migrates */
	assert_true(st.slatah > 0 && st.slatah < 0.01 && st.pdm > 0);

	for (int k = 0; k < 6; k++)
		ramp[n++] = 20;
	for (int p = 30; p <= 100; p += 10) {
		ramp[n++] = p;
		ramp[n++] = p;
	}
	while (n < 32)
		ramp[n++] = 100;
	run_le(ramp, 32, true, &s, home);
	assert_int_equal(s.migrations, 4);
	assert_true(home[0] != home[1]);
	assert_true(home[1] == home[2] && home[2] == home[3]);

	cs_config_defaults(&c);
	c.nhosts = 4;
	{
		double pct[4 * 32];
		for (int v = 0; v < 4; v++)
			for (int k = 0; k < 32; k++)
				pct[v * 32 + k] = ramp[k];
		hand_trace(&t, 4, 32, pct);
	}
	assert_int_equal(cs_model_init(&m, &c, &t, err, sizeof(err)), 0);
	assert_int_equal(cs_run(&m, &cs_policy_thr_mmt, NULL, &st, err, sizeof(err)), 0);
	cs_model_free(&m);
	trace_free(&t);
	if (!(s.slatah < st.slatah && s.migrations < st.migrations &&
	      s.energy_kwh < 1.05 * st.energy_kwh))
		fail_msg("loadease pack: SLATAH %.5f, %d migrations, %.4f kWh; THR-MMT-0.8: %.5f, "
		         "%d, %.4f",
		         s.slatah, s.migrations, s.energy_kwh, st.slatah, st.migrations,
		         st.energy_kwh);
	/* without a sim_config the policy refuses to start, with no leak */
	cs_config_defaults(&c);
	c.nhosts = 4;
	hand_trace(&t, 4, 32, (double[4 * 32]){0});
	assert_int_equal(cs_model_init(&m, &c, &t, err, sizeof(err)), 0);
	assert_int_not_equal(cs_run(&m, &cs_policy_loadease, NULL, &st, err, sizeof(err)), 0);
	cs_model_free(&m);
	trace_free(&t);
}

/* ---- the policy interface, as a further policy would use it --------------------------- */

static bool never_over(void *ctx, struct cs_model *m, int h, int extra)
{
	return false;
}

static int probe_init(void **state, const struct cs_model *m)
{
	*state = calloc(1, sizeof(int)); /* decisions seen */
	return *state ? 0 : -ENOMEM;
}

static int probe_place(void *state, struct cs_model *m, int v)
{
	assert_int_equal(cs_plan_add(m, 0, v), -EINVAL); /* the model places */
	return cs_find_host(m, v, NULL, never_over, NULL);
}

/* First decision: tries VM 0 elsewhere (undone by the model), then asks for
 * a move to its own host (refused), to h0 (started) and of a VM that does
 * not exist (refused). Second: VM 0 is on h0, h1 empty; one refused move. */
static int probe_decide(void *state, struct cs_model *m, struct cs_moves *out)
{
	int *seen = state, home = m->vms[0].home;

	if ((*seen)++ == 0) {
		assert_int_equal(home, 1);
		assert_int_equal(cs_plan_remove(m, 1, 0), 0);
		assert_int_equal(cs_plan_add(m, 0, 0), 0);
		assert_int_equal(cs_plan_add(m, 0, 0), -EINVAL);
		assert_int_equal(m->hosts[1].n, 0);
		assert_true(cs_host_alloc_mips(m, 0) == 1750);
		assert_int_equal(cs_moves_add(out, 0, 1), 0);
		assert_int_equal(cs_moves_add(out, 0, 0), 0);
		return cs_moves_add(out, 5, 0);
	}
	assert_int_equal(home, 0);
	assert_int_equal(m->hosts[1].n, 0);
	assert_int_equal(m->hosts[0].n, 1);
	assert_int_equal(m->nmigs, 0);
	assert_true(cs_vm_alloc(m, 0) == 1750);
	assert_int_equal(m->vms[0].nhist, 2); /* 300.1 and 600.1 */
	return cs_moves_add(out, 0, 0);
}

static void probe_free(void *state)
{
	free(state);
}

static void test_policy_interface(void **state)
{
	static const struct cs_policy_ops probe = {"probe",     "test",       probe_init,
	                                           probe_place, probe_decide, probe_free};
	static const double pct[] = {70, 70, 70};
	struct cs_config c;
	struct cs_model m;
	struct cs_summary s;
	struct trace t;
	char err[256];

	cs_config_defaults(&c);
	c.nhosts = 2;
	hand_trace(&t, 1, 3, pct);
	assert_int_equal(cs_model_init(&m, &c, &t, err, sizeof(err)), 0);
	assert_int_equal(cs_run(&m, &probe, NULL, &s, err, sizeof(err)), 0);
	assert_int_equal(s.migrations, 1);
	assert_int_equal(s.refused, 3);
	assert_int_equal(m.vms[0].home, 0);
	cs_model_free(&m);
	trace_free(&t);
}

/* When no VM requests anything, CloudSim schedules no further update. */
static void test_all_idle(void **state)
{
	static const double pct[] = {50, 0, 0, 0, 0};
	struct cs_config c;
	struct cs_model m;
	struct cs_summary s;
	struct trace t;
	char err[256], line[128];
	FILE *f = tmpfile();
	int rows = 0;

	assert_non_null(f);
	cs_config_defaults(&c);
	c.nhosts = 2;
	hand_trace(&t, 1, 5, pct);
	assert_int_equal(cs_model_init(&m, &c, &t, err, sizeof(err)), 0);
	assert_int_equal(cs_run(&m, &cs_policy_thr_mmt, f, &s, err, sizeof(err)), 0);
	rewind(f);
	while (fgets(line, sizeof(line), f))
		rows++;
	fclose(f);
	assert_int_equal(rows, 1); /* 300.1 only, not 600.1 .. 1200.1 */
	assert_int_equal(s.vms_left, 0);
	assert_int_equal(s.updates, 1);
	cs_model_free(&m);
	trace_free(&t);
}

/* Writes a PlanetLab day of two VMs into dir/name. */
static void write_day(const char *dir, const char *a, const char *b)
{
	char path[512];
	FILE *f;

	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/vm-a", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs(a, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/vm-b", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs(b, f);
	fclose(f);
}

/* Runs `loadease sim` on the words of line, DAY and BAD standing for the
 * two day folders; returns its exit code. */
static int sim_words(const char *outfile, const char *line, const char *day, const char *bad)
{
	char buf[512], *save = NULL, *tok;
	const char *args[32];
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", line);
	for (tok = strtok_r(buf, " ", &save); tok && n < 32; tok = strtok_r(NULL, " ", &save))
		args[n++] = strcmp(tok, "DAY") == 0 ? day : strcmp(tok, "BAD") == 0 ? bad : tok;
	return sim_cli(outfile, args, n);
}

static void test_cli(void **state)
{
	static const struct {
		const char *args;
		int rc;
		const char *msg;
	} cases[] = {
	    {"--planetlab DAY --model cloudsim --policy loadease --param 0.5", 2,
	     "--param: loadease has no parameter"},
	    {"--planetlab DAY --model cloudsim --policy proxlb", 2,
	     "--policy proxlb: not in the cloudsim model"},
	    {"--planetlab DAY --model cloudsim --policy drs", 2, "unknown policy 'drs'"},
	    {"--planetlab DAY --model cloudsim --policy lr-mmt,lr-mmt", 2, "'lr-mmt' twice"},
	    {"--planetlab DAY --model cloud", 2, "--model 'cloud': need default or cloudsim"},
	    {"--planetlab DAY --lr-safety 1.5", 2, "--lr-safety is for --model cloudsim"},
	    {"--planetlab DAY --model cloudsim --lr-safety 0", 2,
	     "--lr-safety '0': need a number in 0.001..100"},
	    {"--planetlab DAY --model cloudsim --mad-safety -1", 2, "--mad-safety '-1'"},
	    {"--planetlab DAY --model cloudsim --fallback-thr x", 2, "--fallback-thr 'x'"},
	    {"--planetlab DAY --model cloudsim --param 0.8", 2,
	     "--param sets one policy's parameter"},
	    {"--planetlab DAY --model cloudsim --policy thr-mmt --param 1.5", 2,
	     "--param '1.5': thr-mmt needs a utilisation threshold in 0..1"},
	    {"--planetlab DAY --model cloudsim --host-cpu 4", 2,
	     "--host-cpu, --host-mem, --host-net, --vm-vcpus and --vm-mem do not apply"},
	    {"--planetlab /nonexistent --model cloudsim", 1,
	     "/nonexistent: No such file or directory"},
	    {"--planetlab BAD --model cloudsim", 1, "vm-b:2: not a CPU percent"},
	};
	char dir[] = "/tmp/le-cloudsim-XXXXXX", out[256], day[256], bad_day[256], *txt;
	const char *ok[] = {"--planetlab", day,     "--model",  "cloudsim",
	                    "--hosts",     "2",     "--policy", "thr-mmt,iqr-mmt",
	                    "--quiet",     "--out", dir};

	assert_non_null(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/out.txt", dir);
	snprintf(day, sizeof(day), "%s/day", dir);
	snprintf(bad_day, sizeof(bad_day), "%s/bad", dir);
	write_day(day, "70\n70\n", "20\n20\n");
	write_day(bad_day, "70\n70\n", "20\nabc\n");
	for (size_t i = 0; i < ARRAY_N(cases); i++) {
		int rc = sim_words(out, cases[i].args, day, bad_day);
		txt = slurp(out);
		if (rc != cases[i].rc || !strstr(txt, cases[i].msg))
			fail_msg("case %zu: exit %d, output '%s', want exit %d and '%s'", i, rc,
			         txt, cases[i].rc, cases[i].msg);
		free(txt);
	}
	{
		const char *args[] = {"--help"};
		assert_int_equal(sim_cli(out, args, 1), 0);
		txt = slurp(out);
		assert_non_null(strstr(txt, "--model cloudsim"));
		assert_non_null(strstr(txt, "CloudSim has no such limit):\n  thr-mmt"));
		assert_non_null(strstr(txt, "\n  loadease "));
		assert_non_null(strstr(txt, "--mad-safety X"));
		free(txt);
	}
	/* vm-a (type 0) and vm-b (type 1, 2000 MIPS) both start on the G5 h1 (a
	 * G4 PE is too small) and stay: 1750 + 400 MIPS of 5320 is under every
	 * threshold, and h0 is off; one update (300.1), so no energy counted */
	assert_int_equal(sim_cli(out, ok, ARRAY_N(ok)), 0);
	txt = slurp(out);
	assert_non_null(strstr(txt,
	                       "\nRESULT sim trace=planetlab-day model=cloudsim "
	                       "policy=thr-mmt hosts=2 vms=2 energy_kwh=0.0000 slatah=0.000000 "
	                       "pdm=0.00000000 slav=0.0000000000 esv=0.00000000 "
	                       "migrations=0 host_shutdowns=1\n"));
	assert_non_null(strstr(txt, "\nRESULT sim trace=planetlab-day model=cloudsim "
	                            "policy=iqr-mmt hosts=2 vms=2 "));
	assert_null(strstr(strstr(txt, "\nRESULT"), "\ntrace "));
	free(txt);
	snprintf(out, sizeof(out), "%s/steps-iqr-mmt.csv", dir);
	txt = slurp(out);
	assert_true(strncmp(txt, CS_STEPS_HEADER, strlen(CS_STEPS_HEADER)) == 0);
	assert_non_null(strstr(txt, "\n300.1,0,0,1,2,0.0\n"));
	free(txt);
	snprintf(out, sizeof(out), "%s/summary.csv", dir);
	txt = slurp(out);
	assert_non_null(strstr(txt, "planetlab-day,cloudsim,thr-mmt,2,2,"));
	free(txt);
	rm_rf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_power),         cmocka_unit_test(test_migration_seconds),
	    cmocka_unit_test(test_vm_types),      cmocka_unit_test(test_utilization),
	    cmocka_unit_test(test_leave_rule),    cmocka_unit_test(test_one_migration),
	    cmocka_unit_test(test_leaving),       cmocka_unit_test(test_policy_interface),
	    cmocka_unit_test(test_all_idle),      cmocka_unit_test(test_cli),
	    cmocka_unit_test(test_loadease_pack),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
