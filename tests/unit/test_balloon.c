/* test_balloon.c - the virtio-balloon guest-stats parser on fixtures.
 *
 * cases[] names a JSON fixture under tests/fixtures/balloon/, the expected
 * return, the expected start of the error text and, on success, the expected
 * figures (literals read off the fixture). Fixtures are loaded into buffers of
 * exactly their size (no terminating NUL), so ASan catches a read past len.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/balloon.h"

#define FX "tests/fixtures/balloon/"
#define NA BALLOON_NA

struct balloon_case {
	const char *file;
	int rc;
	const char *err; /* expected prefix of err; "" on success */
	struct balloon_stats want;
	const char *bug; /* non-NULL: the src/ bug this case caught once (regression) */
};

/* want = {last_update, total, free, available, swap_in, swap_out, major, minor, disk_caches} */
static const struct balloon_case cases[] = {
    /* what QEMU 7.2 prints for qom-get guest-stats, in its QMP wrapper */
    {"qemu72_reply.json",
     0,
     "",
     {1700000000, 257720320, 215703552, 210771968, 0, 0, 120, 21890, 5296128},
     NULL},
    /* the bare value (no "return") */
    {"bare.json",
     0,
     "",
     {1700000010, 257720320, 215703552, 210771968, 8192, 4096, 120, 21890, 5296128},
     NULL},
    /* unreported stats: QEMU's -1 as uint64, as -1, absent, null */
    {"unreported_u64max.json",
     0,
     "",
     {1700000020, 1073741824, 805306368, NA, NA, NA, NA, NA, NA},
     NULL},
    {"unreported_minus1.json",
     0,
     "",
     {1700000030, 1073741824, 805306368, NA, NA, NA, NA, NA, NA},
     NULL},
    {"unreported_absent.json",
     0,
     "",
     {1700000040, 1073741824, 805306368, NA, NA, NA, NA, NA, NA},
     NULL},
    {"null_stat.json", 0, "", {1700000000, 257720320, 215703552, NA, NA, NA, NA, NA, NA}, NULL},
    /* the guest has not reported yet */
    {"never_updated.json", -ENODATA, "guest-stats: the guest has not reported yet", {0}, NULL},
    {"last_update_zero.json", -ENODATA, "guest-stats: the guest has not reported yet", {0}, NULL},
    {"no_total.json", -ENODATA, "guest-stats: the guest has not reported yet", {0}, NULL},
    {"total_zero.json", -ENODATA, "guest-stats: the guest has not reported yet", {0}, NULL},
    /* not guest-stats */
    {"no_stats.json", -EINVAL, "guest-stats: no \"stats\" object", {0}, NULL},
    {"stats_array.json", -EINVAL, "guest-stats: no \"stats\" object", {0}, NULL},
    {"qmp_error.json", -EINVAL, "guest-stats: no \"stats\" object", {0}, NULL},
    {"array.json", -EINVAL, "guest-stats: no \"stats\" object", {0}, NULL},
    {"string_number.json", -EINVAL, "guest-stats: stat-free-memory is not a number", {0}, NULL},
    {"string_last_update.json", -EINVAL, "guest-stats: last-update is not a number", {0}, NULL},
    {"not_json.json", -EINVAL, "guest-stats: not JSON: ", {0}, NULL},
    {"truncated.json", -EINVAL, "guest-stats: not JSON: ", {0}, NULL},
    {"empty.json", -EINVAL, "guest-stats: not JSON: ", {0}, NULL},
    /* a last-update no int64_t holds is not a time */
    {"huge_last_update.json",
     -EINVAL,
     "guest-stats: last-update",
     {0},
     "balloon.c casts last-update (1e300) to int64_t unchecked: undefined behaviour, "
     "x86 gives INT64_MIN and rc 0"},
    {"huge_neg_last_update.json",
     -EINVAL,
     "guest-stats: last-update",
     {0},
     "balloon.c casts last-update (-1e300) to int64_t unchecked: undefined behaviour"},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void check_stats(const struct balloon_stats *g, const struct balloon_stats *w)
{
	assert_int_equal(g->last_update, w->last_update);
	assert_int_equal(g->total, w->total);
	assert_int_equal(g->free, w->free);
	assert_int_equal(g->available, w->available);
	assert_int_equal(g->swap_in, w->swap_in);
	assert_int_equal(g->swap_out, w->swap_out);
	assert_int_equal(g->major_faults, w->major_faults);
	assert_int_equal(g->minor_faults, w->minor_faults);
	assert_int_equal(g->disk_caches, w->disk_caches);
}

static void test_case(void **state)
{
	const struct balloon_case *c = *state;
	struct balloon_stats got;
	char path[128], err[128] = "";
	size_t len;
	char *buf;
	int rc;

	snprintf(path, sizeof(path), FX "%s", c->file);
	buf = fixture_load(path, &len);
	memset(&got, 0xa5, sizeof(got));
	rc = balloon_parse(buf, len, &got, err, sizeof(err));
	free(buf);
	assert_int_equal(rc, c->rc);
	if (rc == 0) {
		check_stats(&got, &c->want);
		return;
	}
	if (strncmp(err, c->err, strlen(c->err)) != 0)
		fail_msg("err '%s' does not start with '%s'", err, c->err);
}

/* A short error buffer gets a truncated, terminated message. */
static void test_short_err(void **state)
{
	static const char j[] = "{\"return\": 5}";
	struct balloon_stats got;
	char err[12];

	memset(err, 'x', sizeof(err));
	assert_int_equal(balloon_parse(j, sizeof(j) - 1, &got, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "guest-stats");
}

/* Every cut of the QEMU reply is an error, never a half-read success. */
static void test_prefixes(void **state)
{
	size_t len;
	char *buf = fixture_load(FX "qemu72_reply.json", &len);

	for (size_t n = 0; n + 1 < len; n++) {
		struct balloon_stats got;
		char err[128] = "", *cut = malloc(n ? n : 1);
		int rc;

		assert_non_null(cut);
		memcpy(cut, buf, n);
		rc = balloon_parse(cut, n, &got, err, sizeof(err));
		free(cut);
		/* the file is the object then '\n': every cut before the last '}'
		 * is incomplete JSON */
		if (rc != -EINVAL)
			fail_msg("cut at %zu: rc %d", n, rc);
		assert_true(err[0] != '\0');
	}
	free(buf);
}

int main(void)
{
	static struct CMUnitTest tests[NCASES + 2];
	size_t i;

	for (i = 0; i < NCASES; i++)
		tests[i] =
		    (struct CMUnitTest){cases[i].file, test_case, NULL, NULL, (void *)&cases[i]};
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_short_err);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_prefixes);
	return _cmocka_run_group_tests("balloon", tests, i, NULL, NULL);
}
