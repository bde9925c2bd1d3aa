/* fuzz_procfs.c - libFuzzer target: every procfs parser on the same bytes.
 *
 * Besides memory errors (ASan/UBSan), it aborts when a parser breaks its
 * contract: a return other than 0/-EINVAL/-ERANGE/-E2BIG, an output not
 * zeroed on error, or a name that is not NUL terminated.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/procfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

union fuzz_out {
	struct procfs_stat stat;
	struct procfs_meminfo mem;
	struct procfs_vmstat vm;
	struct procfs_pid_stat ps;
	struct procfs_pid_status st;
	struct procfs_pid_io io;
	struct procfs_pid_statm sm;
	struct procfs_psi psi;
	uint64_t u64;
	int64_t i64;
};

static void fuzz_check(int rc, const void *out, size_t size)
{
	static const union fuzz_out zero;

	if (rc != 0 && rc != -EINVAL && rc != -ERANGE && rc != -E2BIG)
		abort();
	if (rc < 0 && memcmp(out, &zero, size) != 0)
		abort();
}

/* Fills the output with garbage first, so "zeroed on error" is tested. */
#define FUZZ(fn, field)                                                                            \
	do {                                                                                       \
		memset(&o, 0xa5, sizeof(o));                                                       \
		rc = fn((const char *)data, size, &o.field);                                       \
		fuzz_check(rc, &o.field, sizeof(o.field));                                         \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	union fuzz_out o;
	int rc;

	FUZZ(procfs_parse_stat, stat);
	if (rc == 0 &&
	    (o.stat.ncpu == 0 || procfs_cpu_total(&o.stat.all) < procfs_cpu_busy(&o.stat.all)))
		abort();
	FUZZ(procfs_parse_meminfo, mem);
	FUZZ(procfs_parse_vmstat, vm);
	FUZZ(procfs_parse_pid_stat, ps);
	if (!memchr(o.ps.comm, '\0', sizeof(o.ps.comm)))
		abort();
	FUZZ(procfs_parse_pid_status, st);
	if (!memchr(o.st.name, '\0', sizeof(o.st.name)))
		abort();
	FUZZ(procfs_parse_pid_io, io);
	FUZZ(procfs_parse_pid_statm, sm);
	FUZZ(procfs_parse_pressure, psi);
	FUZZ(procfs_parse_u64, u64);
	FUZZ(procfs_parse_i64, i64);
	return 0;
}
