/* test_netdev.c - the /proc/net/dev parser on real and malformed fixtures,
 * and the rtnetlink parsers on real dumps and built messages.
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
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "agent/netdev.h"

/* the entries below list the counters; ifindex, last, is 0 from /proc/net/dev */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

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

/* ==== rtnetlink ==== */

/* tests/fixtures/netdev/nl_*: the RTM_GETSTATS (sequence 7) and RTM_GETLINK
 * (sequence 8) dumps of a namespace with lo, tap0 and vm-very-long-n1, and
 * its /proc/net/dev read between them: the same counters. */
#define SEQ_STATS 7
#define SEQ_LINKS 8

static int named_stats(const char *stats, size_t slen, const char *links, size_t llen,
                       struct netdev_entry *out, int max)
{
	struct netdev_link l[8];
	int n = 0, nl = 0;

	assert_int_equal(netdev_nl_links(links, llen, SEQ_LINKS, l, 8, &nl), 1);
	assert_int_equal(netdev_nl_stats(stats, slen, SEQ_STATS, out, max, &n), 1);
	for (int i = 0; i < n; i++)
		for (int j = 0; j < nl; j++)
			if (l[j].ifindex == out[i].ifindex)
				memcpy(out[i].name, l[j].name, sizeof(l[j].name));
	return n;
}

static void test_nl_real(void **state)
{
	size_t slen, llen, plen;
	char *stats = fixture_load(FX "nl_stats", &slen);
	char *links = fixture_load(FX "nl_links", &llen);
	char *proc = fixture_load(FX "nl_proc_net_dev", &plen);
	struct netdev_entry nl[4], text[4];
	struct netdev_link l[3];
	int n, nt, nlinks = 0;

	assert_int_equal(netdev_nl_links(links, llen, SEQ_LINKS, l, 3, &nlinks), 1);
	assert_int_equal(nlinks, 3);
	assert_int_equal(l[0].ifindex, 1);
	assert_string_equal(l[0].name, "lo");
	assert_int_equal(l[1].ifindex, 2);
	assert_string_equal(l[1].name, "tap0");
	assert_string_equal(l[2].name, "vm-very-long-n1");

	n = named_stats(stats, slen, links, llen, nl, 4);
	nt = netdev_parse(proc, plen, text, 4);
	assert_int_equal(n, 3);
	assert_int_equal(nt, 3);
	for (int i = 0; i < n; i++) {
		assert_int_equal(nl[i].ifindex, i + 1);
		check_entry(&nl[i], &text[i]);
	}
	/* tap0: 5 frames written into it (210 bytes), 3 dropped on the way out */
	assert_int_equal(nl[1].rx_bytes, 210);
	assert_int_equal(nl[1].rx_packets, 5);
	assert_int_equal(nl[1].tx_drop, 3);

	/* max is a hard limit */
	n = 0;
	assert_int_equal(netdev_nl_stats(stats, slen, SEQ_STATS, nl, 2, &n), -E2BIG);
	/* another request's answer is not ours: skipped, done not seen */
	n = 0;
	assert_int_equal(netdev_nl_stats(stats, slen, SEQ_STATS + 1, nl, 4, &n), 0);
	assert_int_equal(n, 0);
	/* the stats parser skips link messages and the other way round */
	n = 0;
	assert_int_equal(netdev_nl_stats(links, llen, SEQ_LINKS, nl, 4, &n), 1);
	assert_int_equal(n, 0);
	free(stats);
	free(links);
	free(proc);
}

/* A dump comes in datagrams of whole messages: fed message by message, the
 * entries add up and only the last datagram (NLMSG_DONE) returns 1. Every
 * cut inside a message is -EINVAL. Copies sit at an odd address: the parser
 * must not read through misaligned pointers (UBSan). */
static void test_nl_chunks(void **state)
{
	size_t slen, off = 0;
	char *stats = fixture_load(FX "nl_stats", &slen);
	struct netdev_entry out[4], whole[4];
	int n = 0, nw = 0, msgs = 0;

	assert_int_equal(netdev_nl_stats(stats, slen, SEQ_STATS, whole, 4, &nw), 1);
	while (off < slen) {
		struct nlmsghdr h;
		char *copy = malloc(slen + 1);
		int rc;

		assert_non_null(copy);
		memcpy(&h, stats + off, sizeof(h));
		memcpy(copy + 1, stats + off, h.nlmsg_len);
		rc = netdev_nl_stats(copy + 1, h.nlmsg_len, SEQ_STATS, out, 4, &n);
		off += NLMSG_ALIGN(h.nlmsg_len);
		assert_int_equal(rc, off == slen ? 1 : 0);
		for (size_t cut = 1; cut < h.nlmsg_len; cut++) {
			int m = n;
			assert_int_equal(netdev_nl_stats(copy + 1, cut, SEQ_STATS, out, 4, &m),
			                 -EINVAL);
		}
		free(copy);
		msgs++;
	}
	assert_int_equal(msgs, 4);
	assert_int_equal(n, nw);
	assert_memory_equal(out, whole, (size_t)n * sizeof(*out));
	free(stats);
}

/* Built messages: one header, a fixed part and attributes, seq 1. */
struct nlbuild {
	char b[1024];
	size_t len, msg;
};

static void nl_msg(struct nlbuild *m, uint16_t type, const void *fixed, size_t flen)
{
	struct nlmsghdr h = {.nlmsg_type = type, .nlmsg_flags = NLM_F_MULTI, .nlmsg_seq = 1};

	m->msg = m->len;
	memcpy(m->b + m->len, &h, sizeof(h));
	memcpy(m->b + m->len + NLMSG_HDRLEN, fixed, flen);
	m->len += NLMSG_HDRLEN + NLMSG_ALIGN(flen);
	h.nlmsg_len = (uint32_t)(m->len - m->msg);
	memcpy(m->b + m->msg, &h.nlmsg_len, sizeof(h.nlmsg_len));
}

static void nl_attr(struct nlbuild *m, uint16_t type, const void *data, size_t dlen)
{
	struct nlattr a = {.nla_len = (uint16_t)(NLA_HDRLEN + dlen), .nla_type = type};
	uint32_t len;

	memcpy(m->b + m->len, &a, sizeof(a));
	memcpy(m->b + m->len + NLA_HDRLEN, data, dlen);
	m->len += NLA_ALIGN(NLA_HDRLEN + dlen);
	len = (uint32_t)(m->len - m->msg);
	memcpy(m->b + m->msg, &len, sizeof(len));
}

static void nl_stats_msg(struct nlbuild *m, int ifindex, size_t stats_len)
{
	struct if_stats_msg ism = {.ifindex = (uint32_t)ifindex,
	                           .filter_mask = IFLA_STATS_FILTER_BIT(IFLA_STATS_LINK_64)};
	uint64_t s[40];

	for (int i = 0; i < 40; i++)
		s[i] = 1000 * (uint64_t)ifindex + (uint64_t)i;
	nl_msg(m, RTM_NEWSTATS, &ism, sizeof(ism));
	if (stats_len)
		nl_attr(m, IFLA_STATS_LINK_64, s, stats_len);
}

static void nl_done(struct nlbuild *m, int32_t err)
{
	nl_msg(m, NLMSG_DONE, &err, sizeof(err));
}

static void test_nl_built(void **state)
{
	struct netdev_entry e[2];
	struct netdev_link l[2];
	struct ifinfomsg ifi = {.ifi_index = 5};
	struct nlmsgerr nerr = {.error = -EOPNOTSUPP};
	const size_t full = sizeof(struct rtnl_link_stats64);
	const size_t need = offsetof(struct rtnl_link_stats64, rx_missed_errors) + 8;
	struct nlbuild m;
	int n;

	/* the counters /proc/net/dev prints: rx drop = rx_dropped + rx_missed */
	memset(&m, 0, sizeof(m));
	nl_stats_msg(&m, 4, full);
	nl_done(&m, 0);
	n = 0;
	assert_int_equal(netdev_nl_stats(m.b, m.len, 1, e, 2, &n), 1);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].ifindex, 4);
	assert_string_equal(e[0].name, "");
	assert_int_equal(e[0].rx_packets, 4000);
	assert_int_equal(e[0].tx_packets, 4001);
	assert_int_equal(e[0].rx_bytes, 4002);
	assert_int_equal(e[0].tx_bytes, 4003);
	assert_int_equal(e[0].rx_errs, 4004);
	assert_int_equal(e[0].tx_errs, 4005);
	assert_int_equal(e[0].rx_drop, 4006 + 4015);
	assert_int_equal(e[0].tx_drop, 4007);

	/* a later kernel's longer struct is fine; the oldest one that has
	 * RTM_GETSTATS too; one without rx_missed_errors is not */
	memset(&m, 0, sizeof(m));
	nl_stats_msg(&m, 4, full + 64);
	nl_stats_msg(&m, 5, need);
	n = 0;
	assert_int_equal(netdev_nl_stats(m.b, m.len, 1, e, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(e[1].rx_drop, 5006 + 5015);
	memset(&m, 0, sizeof(m));
	nl_stats_msg(&m, 4, need - 8);
	n = 0;
	assert_int_equal(netdev_nl_stats(m.b, m.len, 1, e, 2, &n), -EINVAL);
	/* no IFLA_STATS_LINK_64, or ifindex 0 */
	memset(&m, 0, sizeof(m));
	nl_stats_msg(&m, 4, 0);
	assert_int_equal(netdev_nl_stats(m.b, m.len, 1, e, 2, &n), -EINVAL);
	memset(&m, 0, sizeof(m));
	nl_stats_msg(&m, 0, full);
	assert_int_equal(netdev_nl_stats(m.b, m.len, 1, e, 2, &n), -EINVAL);

	/* the kernel's answer is an error (RTM_GETSTATS unknown before 4.7) */
	memset(&m, 0, sizeof(m));
	nl_msg(&m, NLMSG_ERROR, &nerr, sizeof(nerr));
	assert_int_equal(netdev_nl_stats(m.b, m.len, 1, e, 2, &n), -EOPNOTSUPP);
	assert_int_equal(netdev_nl_links(m.b, m.len, 1, l, 2, &n), -EOPNOTSUPP);
	/* a dump that failed half way ends with its errno in NLMSG_DONE */
	memset(&m, 0, sizeof(m));
	nl_done(&m, -EINTR);
	assert_int_equal(netdev_nl_stats(m.b, m.len, 1, e, 2, &n), -EINTR);
	/* an ACK is no answer to a dump */
	nerr.error = 0;
	memset(&m, 0, sizeof(m));
	nl_msg(&m, NLMSG_ERROR, &nerr, sizeof(nerr));
	assert_int_equal(netdev_nl_stats(m.b, m.len, 1, e, 2, &n), -EINVAL);

	/* links: a name of 1 to 15 characters and its NUL */
	memset(&m, 0, sizeof(m));
	nl_msg(&m, RTM_NEWLINK, &ifi, sizeof(ifi));
	nl_attr(&m, IFLA_MTU, "\x00\x05\x00\x00", 4);
	nl_attr(&m, IFLA_IFNAME, "vnet7", 6);
	n = 0;
	assert_int_equal(netdev_nl_links(m.b, m.len, 1, l, 2, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(l[0].ifindex, 5);
	assert_string_equal(l[0].name, "vnet7");
	static const struct {
		const char *name;
		size_t len;
	} bad[] = {{"", 1}, {"vnet7", 5}, {"0123456789abcdef", 17}, {"x", 0}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&m, 0, sizeof(m));
		nl_msg(&m, RTM_NEWLINK, &ifi, sizeof(ifi));
		nl_attr(&m, IFLA_IFNAME, bad[i].name, bad[i].len);
		n = 0;
		assert_int_equal(netdev_nl_links(m.b, m.len, 1, l, 2, &n), -EINVAL);
	}
	/* an attribute longer than its message */
	memset(&m, 0, sizeof(m));
	nl_msg(&m, RTM_NEWLINK, &ifi, sizeof(ifi));
	nl_attr(&m, IFLA_IFNAME, "vnet7", 6);
	m.b[m.len - 12] = 100; /* its nla_len */
	assert_int_equal(netdev_nl_links(m.b, m.len, 1, l, 2, &n), -EINVAL);
	/* a header that claims more than the datagram, or less than itself */
	memset(&m, 0, sizeof(m));
	nl_done(&m, 0);
	m.b[0] = 40;
	assert_int_equal(netdev_nl_stats(m.b, m.len, 1, e, 2, &n), -EINVAL);
	m.b[0] = 8;
	assert_int_equal(netdev_nl_stats(m.b, m.len, 1, e, 2, &n), -EINVAL);
	/* nothing at all: no message yet, not an error */
	assert_int_equal(netdev_nl_stats(m.b, 0, 1, e, 2, &n), 0);
}

int main(void)
{
	static struct CMUnitTest tests[NCASES + 7];
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
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_nl_real);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_nl_chunks);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_nl_built);
	return _cmocka_run_group_tests("netdev", tests, i, NULL, NULL);
}
