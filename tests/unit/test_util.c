/* test_util.c - the shared helpers (ids, host:port, numbers, file reading
 * under a root, util_fmt) and log.h's complaint throttling.
 *
 * The complaint tests pass explicit now_ms values and check both the struct
 * and what reached stderr (captured into a temporary file).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define FX "tests/fixtures/util"

/* ---- util_valid_id ---- */

#define ID64 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_."

static void test_valid_id(void **state)
{
	static const struct {
		const char *id;
		bool ok;
	} ids[] = {
	    {"vm-1.ok_2", true}, {"a", true},       {"0", true},
	    {"a.", true},        {"a-", true},      {"_x", true},
	    {ID64, true},        {ID64 "x", false}, /* 65 characters */
	    {"", false},         {".x", false},     {"..", false},
	    {"-x", false},       {"a/b", false},    {"a b", false},
	    {"a:b", false},      {"a\nb", false},   {"vm\xc3\xa9", false}, /* non-ASCII */
	    {"a*", false},
	};

	assert_int_equal(strlen(ID64), 64);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		if (util_valid_id(ids[i].id) != ids[i].ok)
			fail_msg("util_valid_id(\"%s\") != %d", ids[i].id, ids[i].ok);
	assert_false(util_valid_id(NULL));
}

/* ---- util_split_hostport ---- */

static void test_split_hostport(void **state)
{
	static const struct {
		const char *s;
		size_t hostcap;
		int rc;
		const char *host;
		int port;
	} hp[] = {
	    {"127.0.0.1:8080", 64, 0, "127.0.0.1", 8080},
	    {"redis.example:6379", 64, 0, "redis.example", 6379},
	    {"[::1]:443", 64, 0, "::1", 443},
	    {"[fe80::1%eth0]:22", 64, 0, "fe80::1%eth0", 22},
	    {"[]:1", 64, 0, "", 1},
	    {":80", 64, 0, "", 80},
	    {"h:0", 64, 0, "h", 0},
	    {"h:65535", 64, 0, "h", 65535},
	    {"h:65536", 64, -EINVAL, NULL, 0},
	    {"h:99999", 64, -EINVAL, NULL, 0},
	    {"h:-1", 64, -EINVAL, NULL, 0},
	    {"h:", 64, -EINVAL, NULL, 0},
	    {"h:80x", 64, -EINVAL, NULL, 0},
	    {"localhost", 64, -EINVAL, NULL, 0},
	    {"", 64, -EINVAL, NULL, 0},
	    {"[::1]", 64, -EINVAL, NULL, 0},
	    {"[::1]80", 64, -EINVAL, NULL, 0},
	    {"[::1:80", 64, -EINVAL, NULL, 0},
	    /* the host must fit in hostcap with its NUL */
	    {"abcdefg:1", 8, 0, "abcdefg", 1},
	    {"abcdefgh:1", 8, -EINVAL, NULL, 0},
	    {"[abcdefgh]:1", 8, -EINVAL, NULL, 0},
	};
	char host[64];
	int port;

	for (size_t i = 0; i < sizeof(hp) / sizeof(hp[0]); i++) {
		int rc;

		strcpy(host, "junk");
		port = -42;
		rc = util_split_hostport(hp[i].s, host, hp[i].hostcap, &port);
		if (rc != hp[i].rc)
			fail_msg("\"%s\": rc %d, want %d", hp[i].s, rc, hp[i].rc);
		if (rc == 0) {
			assert_string_equal(host, hp[i].host);
			assert_int_equal(port, hp[i].port);
		}
	}
	assert_int_equal(util_split_hostport(NULL, host, sizeof(host), &port), -EINVAL);
}

/* ---- util_parse_i64 / util_parse_double ---- */

static void test_parse_i64(void **state)
{
	static const struct {
		const char *s;
		bool ok;
		int64_t v;
	} nums[] = {
	    {"0", true, 0},
	    {"42", true, 42},
	    {"-17", true, -17},
	    {"9223372036854775807", true, INT64_MAX},
	    {"-9223372036854775808", true, INT64_MIN},
	    {"9223372036854775808", false, 0},
	    {"-9223372036854775809", false, 0},
	    {"99999999999999999999999", false, 0},
	    {"", false, 0},
	    {"12x", false, 0},
	    {"x12", false, 0},
	    {"1 ", false, 0},
	    {"1.0", false, 0},
	    {"0x10", false, 0},
	    {"-", false, 0},
	};
	int64_t v;

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		v = 12345;
		if (util_parse_i64(nums[i].s, &v) != nums[i].ok)
			fail_msg("util_parse_i64(\"%s\") != %d", nums[i].s, nums[i].ok);
		if (nums[i].ok)
			assert_int_equal(v, nums[i].v);
	}
	assert_false(util_parse_i64(NULL, &v));
}

static void test_parse_double(void **state)
{
	static const struct {
		const char *s;
		bool ok;
		double v;
	} nums[] = {
	    {"0", true, 0},         {"1.5", true, 1.5},     {"-2e3", true, -2000},
	    {"0.125", true, 0.125}, {"1e308", true, 1e308}, {"1e309", false, 0}, /* overflow */
	    {"-1e309", false, 0},   {"inf", false, 0},      {"-inf", false, 0},
	    {"Infinity", false, 0}, {"nan", false, 0},      {"NAN(123)", false, 0},
	    {"", false, 0},         {"1.5x", false, 0},     {"x", false, 0},
	    {"1.5 ", false, 0},     {".", false, 0},
	};
	double v;

	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		v = 12345;
		if (util_parse_double(nums[i].s, &v) != nums[i].ok)
			fail_msg("util_parse_double(\"%s\") != %d", nums[i].s, nums[i].ok);
		if (nums[i].ok)
			assert_true(v == nums[i].v);
	}
	assert_false(util_parse_double(NULL, &v));
}

/* ---- util_read_file ---- */

static void test_read_file(void **state)
{
	char cwd[PATH_MAX], abs[PATH_MAX + 64], buf[64];
	size_t len;

	/* under a fixture root */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(util_read_file(FX, "/etc/hello", buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 16);
	assert_string_equal(buf, "hello, loadease\n");

	/* root "/" takes the path as it is */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(abs, sizeof(abs), "%s/" FX "/etc/hello", cwd);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(util_read_file("/", abs, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 16);
	assert_string_equal(buf, "hello, loadease\n");
	/* ...and a fixture root is a prefix, not the file system root */
	assert_int_equal(util_read_file(FX, abs, buf, sizeof(buf), &len), -ENOENT);

	/* exactly fits: content + NUL */
	assert_int_equal(util_read_file(FX, "/etc/hello", buf, 17, &len), 0);
	assert_int_equal(len, 16);
	assert_string_equal(buf, "hello, loadease\n");
	/* one byte short: -EFBIG, what fitted is kept and terminated */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(util_read_file(FX, "/etc/hello", buf, 16, &len), -EFBIG);
	assert_int_equal(len, 15);
	assert_string_equal(buf, "hello, loadease");
	assert_int_equal(util_read_file(FX, "/etc/hello", buf, 0, &len), -EINVAL);

	/* empty file, missing file, a directory */
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(util_read_file(FX, "/etc/empty", buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	len = 99;
	assert_int_equal(util_read_file(FX, "/etc/nope", buf, sizeof(buf), &len), -ENOENT);
	assert_int_equal(len, 0);
	assert_int_equal(
	    util_read_file("tests/fixtures/nope", "/etc/hello", buf, sizeof(buf), &len), -ENOENT);
	assert_int_equal(util_read_file(FX, "/etc", buf, sizeof(buf), &len), -EISDIR);
}

/* A buffer with room for the NUL only: nothing of a non-empty file fits. */
static void test_read_file_cap1(void **state)
{
	char buf[1] = {'x'};
	size_t len = 99;

	/* Regression (fixed): util.c util_read_file() calls read(fd, buf, cap - 1 - got) = read(..,
	 * 0) when cap == 1, takes its 0 for end of file and returns 0 */
	assert_int_equal(util_read_file(FX, "/etc/hello", buf, 1, &len), -EFBIG);
	assert_int_equal(len, 0);
	assert_int_equal(buf[0], '\0');
	/* an empty file does fit */
	assert_int_equal(util_read_file(FX, "/etc/empty", buf, 1, &len), 0);
}

/* ---- util_fmt ---- */

static void test_fmt(void **state)
{
	char buf[8];

	memset(buf, 'x', sizeof(buf));
	assert_int_equal(util_fmt(buf, 4, "%s", "abc"), 0);
	assert_string_equal(buf, "abc");
	assert_int_equal(util_fmt(buf, 3, "%s", "abc"), -ENAMETOOLONG);
	assert_string_equal(buf, "ab");
	assert_int_equal(util_fmt(buf, 1, "%d", 7), -ENAMETOOLONG);
	assert_string_equal(buf, "");
	assert_int_equal(util_fmt(buf, sizeof(buf), "%s/%d", "vm", 42), 0);
	assert_string_equal(buf, "vm/42");
	assert_int_equal(util_fmt(buf, sizeof(buf), "%s", ""), 0);
	assert_string_equal(buf, "");
}

static void test_clocks(void **state)
{
	int64_t a = util_mono_ns(), b = util_mono_ns();
	int64_t ms = util_mono_ms(), now = util_now_ms();

	assert_true(b >= a);
	assert_true(ms >= a / 1000000 && ms <= util_mono_ns() / 1000000);
	assert_true(now > INT64_C(1600000000000)); /* after 2020 */
}

/* ---- log.h ---- */

static void test_level_parse(void **state)
{
	assert_int_equal(log_level_parse("error"), LOG_LVL_ERROR);
	assert_int_equal(log_level_parse("warn"), LOG_LVL_WARN);
	assert_int_equal(log_level_parse("info"), LOG_LVL_INFO);
	assert_int_equal(log_level_parse("debug"), LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("warning"), -1);
	assert_int_equal(log_level_parse("INFO"), -1);
	assert_int_equal(log_level_parse(""), -1);
}

/* stderr into a temporary file while the test runs */
struct capture {
	FILE *f;
	int saved;
};

static void capture_start(struct capture *c)
{
	fflush(stderr);
	c->f = tmpfile();
	assert_non_null(c->f);
	c->saved = dup(2);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(c->f), 2) == 2);
}

/* Restores stderr; returns what was written (caller frees). */
static char *capture_end(struct capture *c)
{
	long n;
	char *s;

	fflush(stderr);
	assert_true(dup2(c->saved, 2) == 2);
	close(c->saved);
	n = ftell(c->f);
	assert_true(n >= 0);
	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	rewind(c->f);
	assert_int_equal(fread(s, 1, (size_t)n, c->f), (size_t)n);
	fclose(c->f);
	return s;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

enum step_op { COMPLAIN, RELEASE };

/* A dead Redis at 1 s, then every 100 ms: logged at 1.0, 2.0, 4.0, 8.0 s;
 * the rest counted; one recovery line; then a fresh complaint. */
static void test_complain(void **state)
{
	static const struct {
		enum step_op op;
		int64_t now;
		bool logged; /* this step printed the complaint */
		bool active;
		int64_t interval, last;
		uint64_t suppressed;
		int repeated; /* "repeated N more times" printed by this step, or -1 */
	} steps[] = {
	    {COMPLAIN, 1000, true, true, 1000, 1000, 0, -1},
	    {COMPLAIN, 1100, false, true, 1000, 1000, 1, -1},
	    {COMPLAIN, 1999, false, true, 1000, 1000, 2, -1},
	    {COMPLAIN, 2000, true, true, 2000, 2000, 0, 2},
	    {COMPLAIN, 3999, false, true, 2000, 2000, 1, -1},
	    {COMPLAIN, 4000, true, true, 4000, 4000, 0, 1},
	    {COMPLAIN, 4100, false, true, 4000, 4000, 1, -1},
	    {COMPLAIN, 4200, false, true, 4000, 4000, 2, -1},
	    {COMPLAIN, 4300, false, true, 4000, 4000, 3, -1},
	    {COMPLAIN, 8000, true, true, 8000, 8000, 0, 3},
	    {RELEASE, 8500, false, false, 8000, 8000, 0, -1},
	    {RELEASE, 8600, false, false, 8000, 8000, 0, -1},
	    /* after a release the next failure is news again */
	    {COMPLAIN, 8700, true, true, 1000, 8700, 0, -1},
	    {COMPLAIN, 8800, false, true, 1000, 8700, 1, -1},
	    {RELEASE, 8900, false, false, 1000, 8700, 0, -1},
	};
	struct log_complaint c = {0};
	int releases = 0;

	log_set_level(LOG_LVL_INFO);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct capture cap;
		char want[80], *out;

		capture_start(&cap);
		if (steps[i].op == COMPLAIN)
			log_complain(&c, steps[i].now, LOG_LVL_WARN, "redis %s: refused",
			             "10.0.0.1");
		else
			log_release(&c, LOG_LVL_INFO, "redis %s: back", "10.0.0.1");
		out = capture_end(&cap);
		if (count(out, "redis 10.0.0.1: refused\n") != (steps[i].logged ? 1 : 0))
			fail_msg("step %zu (t=%lld): output '%s'", i, (long long)steps[i].now, out);
		if (steps[i].op == RELEASE) {
			/* the recovery is logged once, only when a complaint was active */
			int want_back = i > 0 && steps[i - 1].active ? 1 : 0;
			assert_int_equal(count(out, "redis 10.0.0.1: back\n"), want_back);
			releases += want_back;
		}
		if (steps[i].repeated >= 0) {
			snprintf(want, sizeof(want),
			         "(the message above was repeated %d more times)\n",
			         steps[i].repeated);
			if (!strstr(out, want))
				fail_msg("step %zu: no '%s' in '%s'", i, want, out);
		} else {
			assert_null(strstr(out, "repeated"));
		}
		if (steps[i].logged)
			assert_non_null(strstr(out, " warn  redis"));
		free(out);
		assert_int_equal(c.active, steps[i].active);
		assert_int_equal(c.interval_ms, steps[i].interval);
		assert_int_equal(c.last_ms, steps[i].last);
		assert_int_equal(c.suppressed, steps[i].suppressed);
	}
	assert_int_equal(releases, 2);
}

/* The interval doubles up to one hour and stays there. */
static void test_complain_cap(void **state)
{
	struct log_complaint c = {0};
	int64_t now = 0, want = 1000;
	struct capture cap;
	char *out;

	log_set_level(LOG_LVL_ERROR); /* warnings are not printed: state only */
	capture_start(&cap);
	for (int i = 0; i < 20; i++) {
		log_complain(&c, now, LOG_LVL_WARN, "x");
		assert_int_equal(c.interval_ms, want);
		assert_int_equal(c.last_ms, now);
		/* just before the interval: suppressed */
		log_complain(&c, now + c.interval_ms - 1, LOG_LVL_WARN, "x");
		assert_int_equal(c.last_ms, now);
		now += c.interval_ms;
		want = want * 2 > 3600000 ? 3600000 : want * 2;
	}
	out = capture_end(&cap);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(c.interval_ms, 3600000);
	log_set_level(LOG_LVL_INFO);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* A kept descriptor re-read with pread: the whole file every time, also a
 * seq_file longer than the page the kernel hands out per read (/proc/vmstat
 * is about 4 KiB, 180 lines); errors close the descriptor. */
static void test_pread_file(void **state)
{
	static char a[1 << 16], b[1 << 16];
	char path[] = "/tmp/le-test-pread-XXXXXX", small[8];
	size_t la, lb;
	int fd = -1, tmp;

	(void)state;
	assert_int_equal(util_read_file("/", "/proc/vmstat", a, sizeof(a), &la), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(util_pread_file(&fd, "/", "/proc/vmstat", b, sizeof(b), &lb), 0);
		assert_true(fd >= 0);
		assert_true(lb > 2048);
		assert_int_equal(count_lines(b), count_lines(a));
		assert_int_equal(b[lb], '\0');
	}
	/* too small a buffer: -EFBIG, the descriptor stays for the next try */
	assert_int_equal(util_pread_file(&fd, "/", "/proc/vmstat", small, sizeof(small), &lb),
	                 -EFBIG);
	assert_true(fd >= 0);
	close(fd);
	fd = -1;
	assert_int_equal(util_pread_file(&fd, "/", "/no/such/file", b, sizeof(b), &lb), -ENOENT);
	assert_int_equal(fd, -1);
	/* an empty file reads as -ENODATA (what /proc/<pid>/stat of a reaped process gives) */
	tmp = mkstemp(path);
	assert_true(tmp >= 0);
	close(tmp);
	assert_int_equal(util_pread_file(&fd, "/", path, b, sizeof(b), &lb), -ENODATA);
	assert_int_equal(fd, -1);
	unlink(path);
}

/* Secret files: only the owner may read them, and the owner is us or root. */
static void test_secret_file_modes(void **state)
{
	static const struct {
		mode_t mode;
		int rc;
		const char *says;
	} cases[] = {
	    {0600, 0, NULL},        {0400, 0, NULL},
	    {0640, 0, NULL},        {0644, -EPERM, "chmod 600"},
	    {0604, -EPERM, "0604"}, {0660, -EPERM, "group or others"},
	};
	char path[] = "/tmp/le-test-secret-XXXXXX", err[256], dst[64];
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "tok\n", 4), 4);
	close(fd);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(chmod(path, cases[i].mode), 0);
		err[0] = '\0';
		assert_int_equal(util_check_secret_file(path, err, sizeof(err)), cases[i].rc);
		assert_int_equal(util_read_secret(path, dst, sizeof(dst), err, sizeof(err)) < 0,
		                 cases[i].rc < 0);
		if (cases[i].says)
			assert_non_null(strstr(err, cases[i].says));
		else
			assert_string_equal(dst, "tok");
	}
	if (geteuid() == 0) { /* someone else's file, even at 0600 */
		assert_int_equal(chmod(path, 0600), 0);
		assert_int_equal(chown(path, 65534, 65534), 0);
		assert_int_equal(util_check_secret_file(path, err, sizeof(err)), -EPERM);
		assert_non_null(strstr(err, "owned by uid 65534"));
	}
	unlink(path);
	assert_int_equal(util_check_secret_file(path, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_id),
	    cmocka_unit_test(test_split_hostport),
	    cmocka_unit_test(test_parse_i64),
	    cmocka_unit_test(test_parse_double),
	    cmocka_unit_test(test_read_file),
	    cmocka_unit_test(test_read_file_cap1),
	    cmocka_unit_test(test_fmt),
	    cmocka_unit_test(test_clocks),
	    cmocka_unit_test(test_level_parse),
	    cmocka_unit_test(test_complain),
	    cmocka_unit_test(test_complain_cap),
	    cmocka_unit_test(test_pread_file),
	    cmocka_unit_test(test_secret_file_modes),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
