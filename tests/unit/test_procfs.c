/* test_procfs.c - the /proc and /sys parsers on real and malformed fixtures.
 *
 * cases[] names a fixture, the parser to feed it to, the expected return and
 * the expected struct (literals read off the fixture files). Each fixture is
 * loaded into a buffer of exactly its size, so ASan catches a read past len,
 * and the output is pre-filled with garbage, so an error that leaves it
 * unzeroed fails. Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fixture.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/procfs.h"

enum kind {
	K_STAT,
	K_MEMINFO,
	K_VMSTAT,
	K_PID_STAT,
	K_PID_STATUS,
	K_PID_IO,
	K_PSI,
	K_U64,
	K_I64,
	K_PID_STATM
};

static const char *const kind_name[] = {"stat",   "meminfo",  "vmstat", "pid_stat", "pid_status",
                                        "pid_io", "pressure", "u64",    "i64",      "pid_statm"};

union any {
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

struct procfs_case {
	const char *path;
	enum kind kind;
	int rc;
	union any want;
};

#define R1  "tests/fixtures/root1/"
#define MF  "tests/fixtures/malformed/"
#define NET R1 "sys/class/net/"
#define NONE                                                                                       \
	{                                                                                          \
		.u64 = 0                                                                           \
	} /* error cases: the output must be all zero */

/* root1/proc/stat, also what several malformed variants must still give */
#define CPU_ROOT1                                                                                  \
	{                                                                                          \
		4138, 0, 3248, 59992, 1687, 0, 128, 970, 0, 0                                      \
	}
#define STAT_ROOT1                                                                                 \
	{                                                                                          \
		.all = CPU_ROOT1, .ncpu = 2                                                        \
	}
#define MEMINFO_ROOT1                                                                              \
	{                                                                                          \
		24684092, 24397112, 24354780, 6212, 91860, 0, 0, true                              \
	}
#define PSI_CPU_SOME                                                                               \
	{                                                                                          \
		1.06, 0.59, 0.91, 7425268                                                          \
	}

static const struct procfs_case cases[] = {
    /* a real root, copied from this machine */
    {R1 "proc/stat", K_STAT, 0, {.stat = STAT_ROOT1}},
    {R1 "proc/meminfo", K_MEMINFO, 0, {.mem = MEMINFO_ROOT1}},
    {R1 "proc/vmstat", K_VMSTAT, 0, {.vm = {0, 0, 989}}},
    {R1 "proc/pressure/cpu", K_PSI, 0, {.psi = {PSI_CPU_SOME, {0, 0, 0, 0}, true}}},
    {R1 "proc/pressure/io",
     K_PSI,
     0,
     {.psi = {{0.21, 0.48, 1.95, 15329307}, {0.18, 0.43, 1.87, 14744162}, true}}},
    {R1 "proc/pressure/memory", K_PSI, 0, {.psi = {{0, 0, 0, 0}, {0, 0, 0, 0}, true}}},
    {R1 "proc/4242/stat",
     K_PID_STAT,
     0,
     {.ps = {4242, "python3", 'R', 4893, 15934, 1, 305, 9, 3, 34165, 446935040, 16165}}},
    {R1 "proc/4242/status", K_PID_STATUS, 0, {.st = {"python3", 64944, 0, 3, true}}},
    {R1 "proc/4242/io", K_PID_IO, 0, {.io = {1688131, 1052566, 1240, 33, 53248, 1060864, 0}}},
    {R1 "proc/77/stat", K_PID_STAT, 0, {.ps = {77, "vhost-4242", 'S', 2, 0, 0, 0, 0, 1, 30, 0, 0}}},
    {R1 "proc/77/status", K_PID_STATUS, 0, {.st = {"vhost-4242", 0, 0, 1, false}}},
    /* resident 16236 pages of 4 KiB = VmRSS 64944 kB of its status */
    {R1 "proc/4242/statm", K_PID_STATM, 0, {.sm = {109115, 16236, 1694, 1, 25233}}},
    {R1 "proc/77/statm", K_PID_STATM, 0, {.sm = {0, 0, 0, 0, 0}}},
    {NET "eth0/statistics/rx_bytes", K_U64, 0, {.u64 = 24617075}},
    {NET "eth0/statistics/tx_bytes", K_U64, 0, {.u64 = 38057}},
    {NET "eth0/statistics/rx_packets", K_U64, 0, {.u64 = 650}},
    {NET "eth0/statistics/tx_packets", K_U64, 0, {.u64 = 463}},
    {NET "eth0/statistics/rx_dropped", K_U64, 0, {.u64 = 0}},
    {NET "eth0/statistics/tx_dropped", K_U64, 0, {.u64 = 0}},
    {NET "eth0/speed", K_I64, 0, {.i64 = 1000}},
    {NET "eth0/speed", K_U64, 0, {.u64 = 1000}},
    {NET "tap0/statistics/rx_bytes", K_U64, 0, {.u64 = 210}},
    {NET "tap0/statistics/tx_bytes", K_U64, 0, {.u64 = 642}},
    {NET "tap0/statistics/rx_packets", K_U64, 0, {.u64 = 5}},
    {NET "tap0/statistics/tx_packets", K_U64, 0, {.u64 = 9}},
    {NET "tap0/statistics/rx_dropped", K_U64, 0, {.u64 = 0}},
    {NET "tap0/statistics/tx_dropped", K_U64, 0, {.u64 = 0}},
    {NET "tap0/speed", K_I64, 0, {.i64 = 10000}},

    /* an empty read is never a valid file */
    {MF "empty", K_STAT, -EINVAL, NONE},
    {MF "empty", K_MEMINFO, -EINVAL, NONE},
    {MF "empty", K_VMSTAT, -EINVAL, NONE},
    {MF "empty", K_PID_STAT, -EINVAL, NONE},
    {MF "empty", K_PID_STATUS, -EINVAL, NONE},
    {MF "empty", K_PID_IO, -EINVAL, NONE},
    {MF "empty", K_PSI, -EINVAL, NONE},
    {MF "empty", K_U64, -EINVAL, NONE},
    {MF "empty", K_I64, -EINVAL, NONE},
    {MF "empty", K_PID_STATM, -EINVAL, NONE},

    /* the wrong file for the parser */
    {R1 "proc/meminfo", K_PID_STAT, -EINVAL, NONE},
    {R1 "proc/4242/stat", K_STAT, -EINVAL, NONE},
    {R1 "proc/4242/status", K_PID_IO, -EINVAL, NONE},
    {R1 "proc/pressure/cpu", K_U64, -EINVAL, NONE},

    /* /proc/<pid>/stat */
    {MF "pid_stat_comm_paren",
     K_PID_STAT,
     0,
     {.ps = {7284, "a) (b c) d", 'R', 7281, 2904, 1, 4, 3, 1, 49606, 17145856, 3437}}},
    {MF "pid_stat_comm_newline",
     K_PID_STAT,
     0,
     {.ps = {7284, "qemu\nkvm)x", 'R', 7281, 2905, 1, 5, 3, 1, 49606, 17145856, 3437}}},
    {MF "pid_stat_long_comm",
     K_PID_STAT,
     0,
     {.ps = {4242, "012345678901234567890123456789012345678901234567890123456789012", 'R', 4893,
             15934, 1, 305, 9, 3, 34165, 446935040, 16165}}},
    {MF "pid_stat_cut", K_PID_STAT, -EINVAL, NONE},
    {MF "pid_stat_short", K_PID_STAT, -EINVAL, NONE},
    {MF "pid_stat_garbage", K_PID_STAT, -EINVAL, NONE},
    {MF "pid_stat_no_paren", K_PID_STAT, -EINVAL, NONE},
    {MF "pid_stat_nul_comm", K_PID_STAT, -EINVAL, NONE},
    {MF "pid_stat_crlf", K_PID_STAT, -EINVAL, NONE},
    {MF "pid_stat_overflow", K_PID_STAT, -ERANGE, NONE},
    {MF "pid_stat_negative", K_PID_STAT, -ERANGE, NONE},
    {MF "pid_stat_long_line", K_PID_STAT, -E2BIG, NONE},

    /* /proc/<pid>/status and io */
    {MF "pid_status_comm_newline", K_PID_STATUS, 0, {.st = {"qemu\\nkvm)x", 13912, 0, 1, true}}},
    {MF "pid_status_cut", K_PID_STATUS, -EINVAL, NONE},
    {MF "pid_io_cut", K_PID_IO, -EINVAL, NONE},
    {MF "pid_io_garbage", K_PID_IO, -EINVAL, NONE},
    {MF "pid_statm_cut", K_PID_STATM, -EINVAL, NONE},
    {MF "pid_statm_six", K_PID_STATM, -EINVAL, NONE},
    {MF "pid_statm_eight", K_PID_STATM, -EINVAL, NONE},
    {MF "pid_statm_two_spaces", K_PID_STATM, -EINVAL, NONE},
    {MF "pid_statm_negative", K_PID_STATM, -EINVAL, NONE},
    {MF "pid_statm_overflow", K_PID_STATM, -ERANGE, NONE},
    {MF "pid_stat_long_line", K_PID_STATM, -E2BIG, NONE},

    /* /proc/meminfo */
    {MF "meminfo_old_kernel",
     K_MEMINFO,
     0,
     {.mem = {24684092, 24397112, 24397112 + 6212 + 91860, 6212, 91860, 0, 0, false}}},
    {MF "meminfo_long_skipped", K_MEMINFO, 0, {.mem = MEMINFO_ROOT1}},
    {MF "meminfo_cut", K_MEMINFO, -EINVAL, NONE},
    {MF "meminfo_no_unit", K_MEMINFO, -EINVAL, NONE},
    {MF "meminfo_dup", K_MEMINFO, -EINVAL, NONE},
    {MF "meminfo_overflow", K_MEMINFO, -ERANGE, NONE},
    {MF "meminfo_long_line", K_MEMINFO, -E2BIG, NONE},

    /* /proc/stat */
    {MF "stat_old_kernel",
     K_STAT,
     0,
     {.stat = {.all = {.user = 4138, .system = 3248, .idle = 59992}, .ncpu = 2}}},
    {MF "stat_cpu_11cols", K_STAT, 0, {.stat = {.all = CPU_ROOT1, .ncpu = 1}}},
    {MF "stat_long_intr", K_STAT, 0, {.stat = STAT_ROOT1}},
    {MF "stat_cut", K_STAT, -EINVAL, NONE},
    {MF "stat_cpu_only", K_STAT, -EINVAL, NONE},
    {MF "stat_cpu_3cols", K_STAT, -EINVAL, NONE},
    {MF "stat_cpu_garbage", K_STAT, -EINVAL, NONE},
    {MF "stat_nul", K_STAT, -EINVAL, NONE},
    {MF "stat_overflow", K_STAT, -ERANGE, NONE},
    {MF "stat_long_cpu", K_STAT, -E2BIG, NONE},

    /* /proc/vmstat, /proc/pressure */
    {MF "vmstat_no_pswpout", K_VMSTAT, -EINVAL, NONE},
    {MF "pressure_cpu_no_full", K_PSI, 0, {.psi = {PSI_CPU_SOME, {0, 0, 0, 0}, false}}},
    {MF "pressure_no_some", K_PSI, -EINVAL, NONE},
    {MF "pressure_garbage", K_PSI, -EINVAL, NONE},
    {MF "pressure_overflow", K_PSI, -ERANGE, NONE},

    /* one-number sysfs files */
    {MF "sysfs_speed_unknown", K_I64, 0, {.i64 = -1}},
    {MF "sysfs_speed_unknown", K_U64, -EINVAL, NONE},
    {MF "sysfs_padded", K_U64, 0, {.u64 = 42}},
    {MF "sysfs_two_numbers", K_U64, -EINVAL, NONE},
    {MF "sysfs_overflow", K_U64, -ERANGE, NONE},
    {MF "sysfs_overflow", K_I64, -ERANGE, NONE},
    {MF "sysfs_u64_max", K_U64, 0, {.u64 = UINT64_MAX}},
    {MF "sysfs_u64_max", K_I64, -ERANGE, NONE},
    {MF "sysfs_i64_min", K_I64, 0, {.i64 = INT64_MIN}},
    {MF "sysfs_i64_min", K_U64, -EINVAL, NONE},
    {MF "sysfs_i64_below_min", K_I64, -ERANGE, NONE},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static size_t kind_size(enum kind k)
{
	static const size_t size[] = {
	    sizeof(struct procfs_stat),
	    sizeof(struct procfs_meminfo),
	    sizeof(struct procfs_vmstat),
	    sizeof(struct procfs_pid_stat),
	    sizeof(struct procfs_pid_status),
	    sizeof(struct procfs_pid_io),
	    sizeof(struct procfs_psi),
	    sizeof(uint64_t),
	    sizeof(int64_t),
	    sizeof(struct procfs_pid_statm),
	};
	return size[k];
}

static int parse(enum kind k, const char *buf, size_t len, union any *out)
{
	switch (k) {
	case K_STAT:
		return procfs_parse_stat(buf, len, &out->stat);
	case K_MEMINFO:
		return procfs_parse_meminfo(buf, len, &out->mem);
	case K_VMSTAT:
		return procfs_parse_vmstat(buf, len, &out->vm);
	case K_PID_STAT:
		return procfs_parse_pid_stat(buf, len, &out->ps);
	case K_PID_STATUS:
		return procfs_parse_pid_status(buf, len, &out->st);
	case K_PID_IO:
		return procfs_parse_pid_io(buf, len, &out->io);
	case K_PSI:
		return procfs_parse_pressure(buf, len, &out->psi);
	case K_U64:
		return procfs_parse_u64(buf, len, &out->u64);
	case K_I64:
		return procfs_parse_i64(buf, len, &out->i64);
	case K_PID_STATM:
		return procfs_parse_pid_statm(buf, len, &out->sm);
	}
	return -1;
}

/* Parses buf into an output pre-filled with garbage; on error checks that
 * every byte of it was zeroed. */
static int parse_checked(enum kind k, const char *buf, size_t len, union any *got)
{
	static const union any zero;
	int rc;

	memset(got, 0xa5, sizeof(*got));
	rc = parse(k, buf, len, got);
	if (rc < 0)
		assert_memory_equal(got, &zero, kind_size(k));
	return rc;
}

#define EQ(f)   assert_int_equal(g->f, w->f)
#define NEAR(f) assert_true(fabs(g->f - w->f) < 1e-9)

static void check_cpu(const struct procfs_cpu *g, const struct procfs_cpu *w)
{
	EQ(user);
	EQ(nice);
	EQ(system);
	EQ(idle);
	EQ(iowait);
	EQ(irq);
	EQ(softirq);
	EQ(steal);
	EQ(guest);
	EQ(guest_nice);
}

static void check_psi_line(const struct procfs_psi_line *g, const struct procfs_psi_line *w)
{
	NEAR(avg10);
	NEAR(avg60);
	NEAR(avg300);
	EQ(total);
}

static void check(enum kind k, const union any *gu, const union any *wu)
{
	switch (k) {
	case K_STAT:
		check_cpu(&gu->stat.all, &wu->stat.all);
		assert_int_equal(gu->stat.ncpu, wu->stat.ncpu);
		break;
	case K_MEMINFO: {
		const struct procfs_meminfo *g = &gu->mem, *w = &wu->mem;

		EQ(mem_total);
		EQ(mem_free);
		EQ(mem_available);
		EQ(buffers);
		EQ(cached);
		EQ(swap_total);
		EQ(swap_free);
		EQ(has_available);
		break;
	}
	case K_VMSTAT: {
		const struct procfs_vmstat *g = &gu->vm, *w = &wu->vm;

		EQ(pswpin);
		EQ(pswpout);
		EQ(pgmajfault);
		break;
	}
	case K_PID_STAT: {
		const struct procfs_pid_stat *g = &gu->ps, *w = &wu->ps;

		EQ(pid);
		EQ(state);
		EQ(ppid);
		EQ(minflt);
		EQ(majflt);
		EQ(utime);
		EQ(stime);
		EQ(num_threads);
		EQ(starttime);
		EQ(vsize);
		EQ(rss);
		assert_string_equal(g->comm, w->comm);
		break;
	}
	case K_PID_STATUS: {
		const struct procfs_pid_status *g = &gu->st, *w = &wu->st;

		assert_string_equal(g->name, w->name);
		EQ(vm_rss_kib);
		EQ(vm_swap_kib);
		EQ(threads);
		EQ(has_vm);
		break;
	}
	case K_PID_IO: {
		const struct procfs_pid_io *g = &gu->io, *w = &wu->io;

		EQ(rchar);
		EQ(wchar);
		EQ(syscr);
		EQ(syscw);
		EQ(read_bytes);
		EQ(write_bytes);
		EQ(cancelled_write_bytes);
		break;
	}
	case K_PSI:
		check_psi_line(&gu->psi.some, &wu->psi.some);
		check_psi_line(&gu->psi.full, &wu->psi.full);
		assert_int_equal(gu->psi.has_full, wu->psi.has_full);
		break;
	case K_U64:
		assert_int_equal(gu->u64, wu->u64);
		break;
	case K_I64:
		assert_int_equal(gu->i64, wu->i64);
		break;
	case K_PID_STATM: {
		const struct procfs_pid_statm *g = &gu->sm, *w = &wu->sm;

		EQ(size);
		EQ(resident);
		EQ(shared);
		EQ(text);
		EQ(data);
		break;
	}
	}
}

static void test_case(void **state)
{
	const struct procfs_case *c = *state;
	union any got;
	size_t len;
	char *buf = fixture_load(c->path, &len);
	int rc;

	rc = parse_checked(c->kind, buf, len, &got);
	assert_int_equal(rc, c->rc);
	if (rc == 0)
		check(c->kind, &got, &c->want);
	free(buf);
}

static void test_cpu_busy_total(void **state)
{
	/* root1/proc/stat: busy = 4138+0+3248+0+128+970, total = busy+59992+1687 */
	const struct procfs_cpu root1 = {4138, 0, 3248, 59992, 1687, 0, 128, 970, 0, 0};
	/* guest time is already inside user and nice: not counted twice */
	const struct procfs_cpu guest = {100, 10, 20, 1000, 5, 1, 2, 3, 60, 7};
	const struct procfs_cpu huge = {UINT64_MAX - 1, 1, 1, 1, 0, 0, 0, 0, 0, 0};

	assert_int_equal(procfs_cpu_busy(&root1), 8484);
	assert_int_equal(procfs_cpu_total(&root1), 70163);
	assert_int_equal(procfs_cpu_busy(&guest), 136);
	assert_int_equal(procfs_cpu_total(&guest), 1141);
	/* garbage counters saturate instead of wrapping */
	assert_int_equal(procfs_cpu_busy(&huge), UINT64_MAX);
	assert_int_equal(procfs_cpu_total(&huge), UINT64_MAX);
}

/* A buffer of nlines lines: head, then "x\n" filler. */
static char *lines_buf(const char *head, unsigned nlines, size_t *len)
{
	size_t hl = strlen(head), i;
	unsigned headlines = 0;
	char *buf;

	for (i = 0; i < hl; i++)
		headlines += head[i] == '\n';
	*len = hl + 2 * (size_t)(nlines - headlines);
	buf = malloc(*len);
	assert_non_null(buf);
	memcpy(buf, head, hl);
	for (i = hl; i < *len; i += 2)
		memcpy(buf + i, "x\n", 2);
	return buf;
}

static void test_max_lines(void **state)
{
	const char *head = "cpu  1 2 3 4\ncpu0 1 2 3 4\n";
	union any got;
	size_t len;
	char *buf;
	int k;

	buf = lines_buf(head, PROCFS_MAX_LINES, &len);
	assert_int_equal(parse_checked(K_STAT, buf, len, &got), 0);
	assert_int_equal(got.stat.ncpu, 1);
	assert_int_equal(got.stat.all.idle, 4);
	free(buf);

	buf = lines_buf(head, PROCFS_MAX_LINES + 1, &len);
	for (k = K_STAT; k <= K_PSI; k++)
		if (k != K_PID_STAT)
			assert_int_equal(parse_checked(k, buf, len, &got), -E2BIG);
	free(buf);
}

/* Every cut of a real file: an error is -EINVAL and leaves the output zeroed;
 * a success gives exactly what the whole file gives (only the optional PSI
 * "full" line may be lost), never a value the cut got wrong. */
static void test_prefixes(void **state)
{
	static const struct {
		const char *path;
		enum kind kind;
	} files[] = {
	    {R1 "proc/stat", K_STAT},
	    {R1 "proc/meminfo", K_MEMINFO},
	    {R1 "proc/vmstat", K_VMSTAT},
	    {R1 "proc/4242/stat", K_PID_STAT},
	    {R1 "proc/4242/status", K_PID_STATUS},
	    {R1 "proc/4242/io", K_PID_IO},
	    {R1 "proc/pressure/io", K_PSI},
	};
	union any got, full;
	size_t f, n, len;
	char *buf, *cut;
	int rc;

	for (f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		buf = fixture_load(files[f].path, &len);
		assert_int_equal(parse_checked(files[f].kind, buf, len, &full), 0);
		for (n = 0; n < len; n++) {
			cut = malloc(n ? n : 1);
			assert_non_null(cut);
			memcpy(cut, buf, n);
			rc = parse_checked(files[f].kind, cut, n, &got);
			free(cut);
			assert_true(rc == 0 || rc == -EINVAL);
			if (rc < 0)
				continue;
			if (files[f].kind == K_PSI) {
				check_psi_line(&got.psi.some, &full.psi.some);
				continue;
			}
			if (files[f].kind == K_PID_STAT || files[f].kind == K_PID_IO)
				fail_msg("%s cut at %zu parsed", files[f].path, n);
			check(files[f].kind, &got, &full);
		}
		free(buf);
	}
}

int main(void)
{
	static struct CMUnitTest tests[NCASES + 3];
	static char names[NCASES][160];
	size_t i;

	for (i = 0; i < NCASES; i++) {
		snprintf(names[i], sizeof(names[i]), "%s as %s",
		         cases[i].path + strlen("tests/fixtures/"), kind_name[cases[i].kind]);
		tests[i] = (struct CMUnitTest){names[i], test_case, NULL, NULL, (void *)&cases[i]};
	}
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_cpu_busy_total);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_max_lines);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_prefixes);
	return _cmocka_run_group_tests("procfs", tests, i, NULL, NULL);
}
