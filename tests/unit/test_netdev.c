/* test_netdev.c - the /proc/net/dev parser on real and malformed fixtures.
 *
 * cases[] names a fixture under tests/fixtures/netdev/, the max passed to the
 * parser, the expected return and the expected entries (literals read off the
 * fixture files). The fixture is loaded into a buffer of exactly its size and
 * the output array has exactly max entries, so ASan catches a read or write
 * past either. Run from the repository root.
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

#include "agent/netdev.h"

#define FX "tests/fixtures/netdev/"

struct netdev_case {
	const char *file;
	int max;
	int rc;
	struct netdev_entry want[6];
};

#define ZEROS(name)                                                                                \
	{                                                                                          \
		name, 0, 0, 0, 0, 0, 0, 0, 0                                                       \
	}

#define NONE                                                                                       \
	{                                                                                          \
		ZEROS("")                                                                          \
	}

static const struct netdev_case cases[] = {
    /* a copy of this machine's /proc/net/dev */
    {"real",
     16,
     4,
     {{"lo", 53396, 285, 0, 0, 53396, 285, 0, 0},
      ZEROS("ifb0"),
      ZEROS("ifb1"),
      {"eth0", 24617075, 650, 0, 0, 38057, 463, 0, 0}}},
    /* a tap, a 15-character name (the longest IFNAMSIZ allows) and 2^64-1 */
    {"tap_longname",
     NETDEV_MAX_IFACES,
     4,
     {{"lo", 32201, 175, 0, 0, 32201, 175, 0, 0},
      {"eth0", 987654321, 812345, 3, 17, 123456789, 654321, 1, 2},
      {"tap0", 210, 5, 0, 0, 642, 9, 0, 4},
      {"vm-very-long-n1", UINT64_MAX, 1, 2, 3, 8, 9, 10, 11}}},
    /* old kernels print no space after the colon */
    {"old_kernel",
     4,
     2,
     {{"lo", 1234, 5, 0, 0, 1234, 5, 0, 0}, {"eth0", 123, 45, 6, 7, 890, 12, 1, 3}}},
    /* max is a hard limit: exactly max entries fit, one more is -E2BIG */
    {"too_many",
     5,
     5,
     {{"lo", 32201, 175, 0, 0, 32201, 175, 0, 0},
      {"eth0", 987654321, 812345, 3, 17, 123456789, 654321, 1, 2},
      {"eth1", 1, 2, 3, 4, 9, 10, 11, 12},
      {"tap0", 210, 5, 0, 0, 642, 9, 0, 4},
      ZEROS("tap1")}},
    {"too_many", 4, -E2BIG, NONE},
    {"header_only", 4, 0, NONE},
    /* a 1024-byte line is the limit itself; 1025 and 2000 bytes are over it */
    {"line_1024", 1, 1, {{"eth0", 7, 7, 7, 7, 7, 7, 7, 7}}},
    {"line_1025", 1, -E2BIG, NONE},
    {"long_line", 4, -E2BIG, NONE},
    /* garbled or cut */
    {"truncated", 8, -EINVAL, NONE},
    {"garbled", 8, -EINVAL, NONE},
    {"fields_15", 8, -EINVAL, NONE},
    {"fields_17", 8, -EINVAL, NONE},
    {"name_space", 8, -EINVAL, NONE},
    {"name_16", 8, -EINVAL, NONE},
    {"no_colon", 8, -EINVAL, NONE},
    {"negative", 8, -EINVAL, NONE},
    {"no_header", 8, -EINVAL, NONE},
    {"empty", 8, -EINVAL, NONE},
    /* numbers that do not fit in 64 bits */
    {"overflow", 8, -ERANGE, NONE},
    {"overflow_by_one", 8, -ERANGE, NONE},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void check_entry(const struct netdev_entry *g, const struct netdev_entry *w)
{
	assert_string_equal(g->name, w->name);
	assert_int_equal(g->rx_bytes, w->rx_bytes);
	assert_int_equal(g->rx_packets, w->rx_packets);
	assert_int_equal(g->rx_errs, w->rx_errs);
	assert_int_equal(g->rx_drop, w->rx_drop);
	assert_int_equal(g->tx_bytes, w->tx_bytes);
	assert_int_equal(g->tx_packets, w->tx_packets);
	assert_int_equal(g->tx_errs, w->tx_errs);
	assert_int_equal(g->tx_drop, w->tx_drop);
}

static void test_case(void **state)
{
	const struct netdev_case *c = *state;
	struct netdev_entry *out = malloc((size_t)c->max * sizeof(*out));
	char path[128];
	size_t len;
	char *buf;
	int rc;

	snprintf(path, sizeof(path), FX "%s", c->file);
	buf = fixture_load(path, &len);
	assert_non_null(out);
	memset(out, 0xa5, (size_t)c->max * sizeof(*out));
	rc = netdev_parse(buf, len, out, c->max);
	assert_int_equal(rc, c->rc);
	for (int i = 0; i < rc; i++)
		check_entry(&out[i], &c->want[i]);
	free(out);
	free(buf);
}

static void test_find(void **state)
{
	struct netdev_entry tab[8];
	size_t len;
	char *buf = fixture_load(FX "tap_longname", &len);
	int n = netdev_parse(buf, len, tab, 8);

	assert_int_equal(n, 4);
	assert_ptr_equal(netdev_find(tab, n, "tap0"), &tab[2]);
	assert_ptr_equal(netdev_find(tab, n, "vm-very-long-n1"), &tab[3]);
	assert_ptr_equal(netdev_find(tab, n, "lo"), &tab[0]);
	/* whole names only */
	assert_null(netdev_find(tab, n, "tap"));
	assert_null(netdev_find(tab, n, "tap00"));
	assert_null(netdev_find(tab, n, ""));
	/* only the first n entries count */
	assert_null(netdev_find(tab, 2, "tap0"));
	assert_null(netdev_find(tab, 0, "lo"));
	free(buf);
}

/* NETDEV_MAX_IFACES interfaces parse with max = NETDEV_MAX_IFACES; one more
 * is -E2BIG, not a write past the array. */
static void test_max_ifaces(void **state)
{
	static const char head[] = "Inter-|\n face |\n";
	const size_t linecap = 64;
	size_t cap = sizeof(head) + (NETDEV_MAX_IFACES + 1) * linecap, len;
	struct netdev_entry *out = malloc(NETDEV_MAX_IFACES * sizeof(*out));
	char *buf = malloc(cap);

	assert_non_null(out);
	assert_non_null(buf);
	len = (size_t)snprintf(buf, cap, "%s", head);
	for (int i = 0; i < NETDEV_MAX_IFACES; i++)
		len += (size_t)snprintf(buf + len, cap - len,
		                        "tap%d: %d 1 0 0 0 0 0 0 %d 2 0 0 0 0 0 0\n", i, i, 2 * i);
	assert_int_equal(netdev_parse(buf, len, out, NETDEV_MAX_IFACES), NETDEV_MAX_IFACES);
	assert_string_equal(out[4095].name, "tap4095");
	assert_int_equal(out[4095].rx_bytes, 4095);
	assert_int_equal(out[4095].tx_bytes, 8190);
	assert_int_equal(out[4095].tx_packets, 2);

	len += (size_t)snprintf(buf + len, cap - len, "tap%d: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n",
	                        NETDEV_MAX_IFACES);
	assert_int_equal(netdev_parse(buf, len, out, NETDEV_MAX_IFACES), -E2BIG);
	free(buf);
	free(out);
}

/* Every cut of the real file: an error is -EINVAL, a success gives entries
 * equal to the whole file's (a cut inside the last, unused "compressed" field
 * may still parse), never a value the cut got wrong. */
static void test_prefixes(void **state)
{
	struct netdev_entry full[8], got[8];
	size_t len;
	char *buf = fixture_load(FX "real", &len);
	int nfull = netdev_parse(buf, len, full, 8);

	assert_int_equal(nfull, 4);
	for (size_t n = 0; n < len; n++) {
		char *cut = malloc(n ? n : 1);
		int rc;

		assert_non_null(cut);
		memcpy(cut, buf, n);
		rc = netdev_parse(cut, n, got, 8);
		free(cut);
		if (rc < 0) {
			assert_int_equal(rc, -EINVAL);
			continue;
		}
		assert_true(rc <= nfull);
		for (int i = 0; i < rc; i++)
			check_entry(&got[i], &full[i]);
	}
	free(buf);
}

/* The parser takes (buf, len), not a C string: bytes after len are not read,
 * and a NUL inside a line is garbage. */
static void test_not_a_string(void **state)
{
	static const char two[] = "a|\nb|\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
	                          "garbage that is past len";
	static const char nul[] = "a|\nb|\n  et\0h0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
	static const char nul_num[] = "a|\nb|\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 1\0 6\n";
	struct netdev_entry out[2];
	size_t cut = strlen(two) - strlen("garbage that is past len");

	assert_int_equal(netdev_parse(two, cut, out, 2), 1);
	assert_string_equal(out[0].name, "eth0");
	assert_int_equal(out[0].tx_drop, 12);
	assert_int_equal(netdev_parse(two, strlen(two), out, 2), -EINVAL);
	assert_int_equal(netdev_parse(nul, sizeof(nul) - 1, out, 2), -EINVAL);
	assert_int_equal(netdev_parse(nul_num, sizeof(nul_num) - 1, out, 2), -EINVAL);
}

int main(void)
{
	static struct CMUnitTest tests[NCASES + 4];
	static char names[NCASES][96];
	size_t i;

	for (i = 0; i < NCASES; i++) {
		snprintf(names[i], sizeof(names[i]), "%s max=%d", cases[i].file, cases[i].max);
		tests[i] = (struct CMUnitTest){names[i], test_case, NULL, NULL, (void *)&cases[i]};
	}
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_find);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_max_ifaces);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_prefixes);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_not_a_string);
	return _cmocka_run_group_tests("netdev", tests, i, NULL, NULL);
}
