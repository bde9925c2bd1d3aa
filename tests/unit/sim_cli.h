/* sim_cli.h - shared by the simulator's unit tests (test_sim.c,
 * test_cloudsim.c): running `loadease sim` in-process with its output in a
 * file, reading that file, removing a temporary folder. Include it after
 * <cmocka.h> and "sim/sim.h". */
#ifndef LE_TEST_SIM_CLI_H
#define LE_TEST_SIM_CLI_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void rm_rf(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* Runs sim_main with stdout and stderr sent to files; returns its exit code. */
static inline int sim_cli(const char *outfile, const char *const *args, int n)
{
	char *argv[64];
	int so = dup(1), se = dup(2), fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0600), rc;

	assert_true(n < 63 && so >= 0 && se >= 0 && fd >= 0);
	argv[0] = "sim";
	for (int i = 0; i < n; i++)
		argv[i + 1] = (char *)args[i];
	argv[n + 1] = NULL;
	fflush(stdout);
	fflush(stderr);
	dup2(fd, 1);
	dup2(fd, 2);
	rc = sim_main(n + 1, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	close(fd);
	return rc;
}

static inline char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 65536);

	assert_non_null(f);
	assert_non_null(buf);
	fread(buf, 1, 65535, f);
	fclose(f);
	return buf;
}

#endif
