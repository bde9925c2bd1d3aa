/* fuzz_netdev.c - libFuzzer target for the /proc/net/dev parser and the
 * rtnetlink dump parsers.
 *
 * Besides memory errors (ASan/UBSan), it aborts when the parser breaks its
 * contract: a return other than a count in [0, max] or -EINVAL/-ERANGE/
 * -E2BIG, a name that is empty, too long, not terminated or holds a space,
 * or a result that depends on max other than by -E2BIG. The second parse
 * uses a heap array of exactly max entries (1 to 4), so a write past max is
 * caught by ASan. The same bytes as one datagram of a RTM_GETSTATS and of a
 * RTM_GETLINK dump (sequence number from the first header): a return of 1,
 * 0 or a negative errno, no more than max entries, an ifindex above 0 and a
 * name of 1 to 15 characters.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/netdev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entries(const struct netdev_entry *e, int n)
{
	for (int i = 0; i < n; i++) {
		const char *name = e[i].name;
		size_t l = strnlen(name, sizeof(e[i].name));

		if (l == 0 || l == sizeof(e[i].name) || strchr(name, ' ') || strchr(name, ':'))
			abort();
		/* the first entry of that name */
		const struct netdev_entry *f = netdev_find(e, n, name);
		if (!f || f > &e[i] || strcmp(f->name, name) != 0)
			abort();
	}
}

static void fuzz_nl(const uint8_t *data, size_t size, int max)
{
	/* exactly max entries: a write past them is caught by ASan */
	struct netdev_entry *e = malloc((size_t)max * sizeof(*e));
	struct netdev_link *l = malloc((size_t)max * sizeof(*l));
	uint32_t seq = 0;
	int n = 0, rc;

	if (!e || !l)
		abort();

	if (size >= 12)
		memcpy(&seq, data + 8, sizeof(seq));
	rc = netdev_nl_stats(data, size, seq, e, max, &n);
	if (rc > 1 || rc < -4095 || n < 0 || n > max)
		abort();
	for (int i = 0; i < n; i++)
		if (e[i].ifindex <= 0 || e[i].name[0])
			abort();
	n = 0;
	rc = netdev_nl_links(data, size, seq, l, max, &n);
	if (rc > 1 || rc < -4095 || n < 0 || n > max)
		abort();
	for (int i = 0; i < n; i++) {
		size_t len = strnlen(l[i].name, sizeof(l[i].name));
		if (l[i].ifindex <= 0 || len == 0 || len == sizeof(l[i].name))
			abort();
	}
	free(e);
	free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct netdev_entry big[NETDEV_MAX_IFACES];
	const char *buf = (const char *)data;
	int max = 1 + (size ? data[size - 1] % 4 : 0);
	struct netdev_entry *small = malloc((size_t)max * sizeof(*small));
	int rc, rc_small;

	rc = netdev_parse(buf, size, big, NETDEV_MAX_IFACES);
	if (rc > NETDEV_MAX_IFACES || (rc < 0 && rc != -EINVAL && rc != -ERANGE && rc != -E2BIG))
		abort();
	if (rc > 0)
		check_entries(big, rc);

	rc_small = netdev_parse(buf, size, small, max);
	if (rc_small > max ||
	    (rc_small < 0 && rc_small != -EINVAL && rc_small != -ERANGE && rc_small != -E2BIG))
		abort();
	/* a success with a small max is the same success with a large one */
	if (rc_small >= 0 && (rc != rc_small || memcmp(small, big, (size_t)rc * sizeof(*big)) != 0))
		abort();
	/* and a success with a large max fits a small one or is -E2BIG */
	if (rc >= 0 && rc <= max && rc_small != rc)
		abort();
	if (rc > max && rc_small != -E2BIG)
		abort();
	free(small);
	fuzz_nl(data, size, max);
	return 0;
}
