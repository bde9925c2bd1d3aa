/* test_cloudsim_ref.c - the CloudSim model against CloudSim itself: every
 * row of ../shared/reference/cloudsim/figures.csv (CloudSim 3.0.3's own
 * figures for its four policies on the shared PlanetLab days) is run here on
 * ../shared/traces/planetlab/<day> with the row's parameter, and each figure
 * must be within the acceptance tolerance: migrations, energy and SLATAH 5 %,
 * PDM 10 %, host shutdowns 5 %; hosts and VMs exactly. The CSV is read at
 * test time, so a model that drifts from CloudSim fails here.
 *
 * The shared folder is the project's, beside the repository; where it is
 * absent (a checkout elsewhere) the test says so and skips.
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
#include <unistd.h>

#include "sim/sim.h"

#define FIGURES "../shared/reference/cloudsim/figures.csv"
#define DAYS    "../shared/traces/planetlab"

enum col {
	C_DAY,
	C_POLICY,
	C_PARAM,
	C_HOSTS,
	C_VMS,
	C_ENERGY,
	C_MIG,
	C_SLATAH,
	C_PDM,
	C_SHUT,
	C_N
};
static const char *const col_name[C_N] = {"day", "policy",        "parameter",  "hosts",
                                          "vms", "energy_kwh",    "migrations", "slatah",
                                          "pdm", "host_shutdowns"};

struct row {
	char day[32], policy[32];
	double v[C_N];
};

/* The CSV's rows by its header's column names. Returns the count. */
static int read_figures(struct row *rows, int max)
{
	FILE *f = fopen(FIGURES, "r");
	char line[1024];
	int idx[C_N], ncols = 0, n = 0;

	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	for (int c = 0; c < C_N; c++)
		idx[c] = -1;
	for (char *save = NULL, *tok = strtok_r(line, ",\r\n", &save); tok;
	     tok = strtok_r(NULL, ",\r\n", &save), ncols++)
		for (int c = 0; c < C_N; c++)
			if (strcmp(tok, col_name[c]) == 0)
				idx[c] = ncols;
	for (int c = 0; c < C_N; c++)
		if (idx[c] < 0)
			fail_msg("%s: no column '%s'", FIGURES, col_name[c]);
	while (n < max && fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok;
		int k = 0;
		if (line[0] == '\n' || line[0] == '#')
			continue;
		memset(&rows[n], 0, sizeof(rows[n]));
		for (tok = strtok_r(line, ",\r\n", &save); tok;
		     tok = strtok_r(NULL, ",\r\n", &save), k++)
			for (int c = 0; c < C_N; c++) {
				if (idx[c] != k)
					continue;
				if (c == C_DAY)
					snprintf(rows[n].day, sizeof(rows[n].day), "%s", tok);
				else if (c == C_POLICY)
					snprintf(rows[n].policy, sizeof(rows[n].policy), "%s", tok);
				else
					rows[n].v[c] = strtod(tok, NULL);
			}
		n++;
	}
	fclose(f);
	return n;
}

static double rel(double got, double want)
{
	return want != 0 ? fabs(got - want) / fabs(want) : fabs(got);
}

static void test_figures(void **state)
{
	struct row rows[64];
	int n, bad = 0;
	char err[1024];

	if (access(FIGURES, R_OK) != 0 || access(DAYS, R_OK) != 0) {
		print_message("# skip: %s or %s not here (the project's shared folder beside the "
		              "repository)\n",
		              FIGURES, DAYS);
		skip();
	}
	n = read_figures(rows, 64);
	assert_true(n >= 12);
	print_message("# %-8s %-8s %8s %8s %8s %8s %8s (%% error against CloudSim 3.0.3)\n", "day",
	              "policy", "migr", "energy", "slatah", "pdm", "shutdn");
	for (int i = 0; i < n; i++) {
		struct row *r = &rows[i];
		const struct cs_policy_ops *p = cs_policy_find(r->policy);
		struct cs_config c;
		struct cs_model m;
		struct cs_summary s;
		struct trace t;
		char dir[256];
		double e[5];

		if (!p)
			fail_msg("%s: policy '%s' is not in the cloudsim model", FIGURES,
			         r->policy);
		cs_config_defaults(&c);
		c.nhosts = (int)r->v[C_HOSTS];
		assert_int_equal(sim_cloudsim_param(p, r->v[C_PARAM], &c), 0);
		snprintf(dir, sizeof(dir), "%s/%s", DAYS, r->day);
		if (trace_load_planetlab(&t, dir, err, sizeof(err)) != 0)
			fail_msg("%s", err);
		assert_int_equal(cs_model_init(&m, &c, &t, err, sizeof(err)), 0);
		if (cs_run(&m, p, NULL, &s, err, sizeof(err)) != 0)
			fail_msg("%s %s: %s", r->day, r->policy, err);
		e[0] = rel((double)s.migrations, r->v[C_MIG]);
		e[1] = rel(s.energy_kwh, r->v[C_ENERGY]);
		e[2] = rel(s.slatah, r->v[C_SLATAH]);
		e[3] = rel(s.pdm, r->v[C_PDM]);
		e[4] = rel((double)s.host_shutdowns, r->v[C_SHUT]);
		print_message("# %-8s %-8s %7.3f%% %7.3f%% %7.3f%% %7.3f%% %7.3f%%\n", r->day,
		              r->policy, 100 * e[0], 100 * e[1], 100 * e[2], 100 * e[3],
		              100 * e[4]);
		if (s.hosts != (int)r->v[C_HOSTS] || s.vms != (int)r->v[C_VMS] || e[0] > 0.05 ||
		    e[1] > 0.05 || e[2] > 0.05 || e[3] > 0.10 || e[4] > 0.05) {
			print_message(
			    "#   FAIL: %d hosts, %d VMs, %ld migrations, %.2f kWh, SLATAH "
			    "%.5f, PDM %.6f, %ld shutdowns; CloudSim: %.0f, %.0f, %.0f, "
			    "%.2f, %.5f, %.6f, %.0f\n",
			    s.hosts, s.vms, s.migrations, s.energy_kwh, s.slatah, s.pdm,
			    s.host_shutdowns, r->v[C_HOSTS], r->v[C_VMS], r->v[C_MIG],
			    r->v[C_ENERGY], r->v[C_SLATAH], r->v[C_PDM], r->v[C_SHUT]);
			bad++;
		}
		cs_model_free(&m);
		trace_free(&t);
	}
	if (bad)
		fail_msg("%d of %d day/policy pairs off CloudSim's figures", bad, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_figures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
