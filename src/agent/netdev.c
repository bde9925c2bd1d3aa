#include "agent/netdev.h"

#include <errno.h>
#include <string.h>

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
