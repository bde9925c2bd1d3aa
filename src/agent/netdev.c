#include "agent/netdev.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#define NETDEV_MAX_LINE 1024

static int parse_u64(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end || *s < '0' || *s > '9')
		return -EINVAL;
	while (s < end && *s >= '0' && *s <= '9') {
		uint64_t d = (uint64_t)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*out = v;
	return 0;
}

static int parse_line(const char *s, const char *end, struct netdev_entry *e)
{
	const char *colon;
	uint64_t v[16];
	size_t nl;
	int rc;

	while (s < end && *s == ' ')
		s++;
	colon = memchr(s, ':', (size_t)(end - s));
	if (!colon)
		return -EINVAL;
	nl = (size_t)(colon - s);
	if (nl == 0 || nl >= sizeof(e->name) || memchr(s, ' ', nl) || memchr(s, '\0', nl))
		return -EINVAL;
	memset(e, 0, sizeof(*e));
	memcpy(e->name, s, nl);
	s = colon + 1;
	for (int i = 0; i < 16; i++) {
		rc = parse_u64(&s, end, &v[i]);
		if (rc < 0)
			return rc;
	}
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s != end)
		return -EINVAL;
	e->rx_bytes = v[0];
	e->rx_packets = v[1];
	e->rx_errs = v[2];
	e->rx_drop = v[3];
	e->tx_bytes = v[8];
	e->tx_packets = v[9];
	e->tx_errs = v[10];
	e->tx_drop = v[11];
	return 0;
}

int netdev_parse(const char *buf, size_t len, struct netdev_entry *out, int max)
{
	const char *p = buf, *end = buf + len;
	int line = 0, n = 0, rc;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		if (le - p > NETDEV_MAX_LINE)
			return -E2BIG;
		if (line < 2) {
			/* the two header lines */
			if (!memchr(p, '|', (size_t)(le - p)))
				return -EINVAL;
		} else if (le > p) {
			if (n == max)
				return -E2BIG;
			rc = parse_line(p, le, &out[n]);
			if (rc < 0)
				return rc;
			n++;
		}
		line++;
		p = nl ? nl + 1 : end;
	}
	if (line < 2)
		return -EINVAL;
	return n;
}

const struct netdev_entry *netdev_find(const struct netdev_entry *e, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(e[i].name, name) == 0)
			return &e[i];
	return NULL;
}

/* --- rtnetlink ------------------------------------------------------- */

/* Calls fn on the payload of every message of type `type` answering seq in
 * one datagram. The bytes may be unaligned (a fuzzer's): headers are copied
 * out, never cast. Returns as documented in netdev.h. */
static int nl_each(const char *buf, size_t len, uint32_t seq, uint16_t type,
                   int (*fn)(const char *p, size_t n, void *arg), void *arg)
{
	size_t off = 0, step;
	int rc;

	while (off < len) {
		struct nlmsghdr h;
		const char *p;
		size_t pn;
		int32_t err;

		if (len - off < sizeof(h))
			return -EINVAL;
		memcpy(&h, buf + off, sizeof(h));
		if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len - off)
			return -EINVAL;
		p = buf + off + NLMSG_HDRLEN;
		pn = h.nlmsg_len - NLMSG_HDRLEN;
		step = NLMSG_ALIGN((size_t)h.nlmsg_len);
		off += step < len - off ? step : len - off;
		if (h.nlmsg_seq != seq)
			continue;
		if (h.nlmsg_type == NLMSG_DONE || h.nlmsg_type == NLMSG_ERROR) {
			/* both start with an int: 0, or the dump's negative errno */
			if (pn < sizeof(err))
				return h.nlmsg_type == NLMSG_DONE ? 1 : -EINVAL;
			memcpy(&err, p, sizeof(err));
			if (err < 0)
				return err < -4095 ? -EINVAL : (int)err;
			/* an ACK is no answer to a dump */
			return h.nlmsg_type == NLMSG_DONE ? 1 : -EINVAL;
		}
		if (h.nlmsg_type != type)
			continue;
		rc = fn(p, pn, arg);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The payload of attribute `type` in the attributes a[0..n), or NULL. */
static const char *nl_attr(const char *a, size_t n, uint16_t type, size_t *len)
{
	size_t off = 0, step;

	while (n - off >= sizeof(struct nlattr)) {
		struct nlattr at;

		memcpy(&at, a + off, sizeof(at));
		if (at.nla_len < NLA_HDRLEN || at.nla_len > n - off)
			return NULL;
		if ((at.nla_type & NLA_TYPE_MASK) == type) {
			*len = (size_t)at.nla_len - NLA_HDRLEN;
			return a + off + NLA_HDRLEN;
		}
		step = NLA_ALIGN((size_t)at.nla_len);
		off += step < n - off ? step : n - off;
	}
	return NULL;
}

struct nl_out {
	void *out;
	int max, *n;
};

static int one_stats(const char *p, size_t n, void *arg)
{
	struct nl_out *o = arg;
	struct netdev_entry *e;
	struct if_stats_msg m;
	struct rtnl_link_stats64 s;
	const char *a;
	size_t alen = 0;

	if (n < NLMSG_ALIGN(sizeof(m)))
		return -EINVAL;
	memcpy(&m, p, sizeof(m));
	a = nl_attr(p + NLMSG_ALIGN(sizeof(m)), n - NLMSG_ALIGN(sizeof(m)), IFLA_STATS_LINK_64,
	            &alen);
	/* up to rx_missed_errors, in every kernel that has RTM_GETSTATS; later
	 * kernels add fields at the end */
	if (!a ||
	    alen <
	        offsetof(struct rtnl_link_stats64, rx_missed_errors) + sizeof(s.rx_missed_errors) ||
	    m.ifindex == 0 || m.ifindex > INT32_MAX)
		return -EINVAL;
	if (*o->n == o->max)
		return -E2BIG;
	memset(&s, 0, sizeof(s));
	memcpy(&s, a, alen < sizeof(s) ? alen : sizeof(s));
	e = (struct netdev_entry *)o->out + (*o->n)++;
	memset(e, 0, sizeof(*e));
	e->ifindex = (int)m.ifindex;
	e->rx_bytes = s.rx_bytes;
	e->rx_packets = s.rx_packets;
	e->rx_errs = s.rx_errors;
	e->rx_drop = s.rx_dropped + s.rx_missed_errors;
	e->tx_bytes = s.tx_bytes;
	e->tx_packets = s.tx_packets;
	e->tx_errs = s.tx_errors;
	e->tx_drop = s.tx_dropped;
	return 0;
}

int netdev_nl_stats(const void *buf, size_t len, uint32_t seq, struct netdev_entry *out, int max,
                    int *n)
{
	struct nl_out o = {out, max, n};

	return nl_each(buf, len, seq, RTM_NEWSTATS, one_stats, &o);
}

static int one_link(const char *p, size_t n, void *arg)
{
	struct nl_out *o = arg;
	struct netdev_link *l;
	struct ifinfomsg m;
	const char *a;
	size_t alen = 0, nl;

	if (n < NLMSG_ALIGN(sizeof(m)))
		return -EINVAL;
	memcpy(&m, p, sizeof(m));
	a = nl_attr(p + NLMSG_ALIGN(sizeof(m)), n - NLMSG_ALIGN(sizeof(m)), IFLA_IFNAME, &alen);
	/* a NUL-terminated name of 1 to 15 characters */
	nl = a ? strnlen(a, alen) : 0;
	if (nl == 0 || nl == alen || nl >= sizeof(l->name) || m.ifi_index <= 0)
		return -EINVAL;
	if (*o->n == o->max)
		return -E2BIG;
	l = (struct netdev_link *)o->out + (*o->n)++;
	memset(l, 0, sizeof(*l));
	l->ifindex = m.ifi_index;
	memcpy(l->name, a, nl);
	return 0;
}

int netdev_nl_links(const void *buf, size_t len, uint32_t seq, struct netdev_link *out, int max,
                    int *n)
{
	struct nl_out o = {out, max, n};

	return nl_each(buf, len, seq, RTM_NEWLINK, one_link, &o);
}
