/* rtnl.c - interface counters over rtnetlink; see rtnl.h. */
#include "agent/rtnl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#define NL_BUF 32768 /* the kernel fills dump datagrams up to what we read */

struct rtnl {
	int fd, watch;   /* dumps; news of links (RTNLGRP_LINK) */
	uint32_t seq_no; /* of the last request */
	bool stale;      /* the names must be read again */
	char *buf;
	struct netdev_link *links; /* sorted by ifindex */
	int nlinks, caplinks;
};

struct rtnl *rtnl_new(void)
{
	struct rtnl *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->buf = malloc(NL_BUF);
	if (!r->buf) {
		free(r);
		return NULL;
	}
	r->fd = r->watch = -1;
	return r;
}

static void nl_close(struct rtnl *r)
{
	if (r->fd >= 0)
		close(r->fd);
	if (r->watch >= 0)
		close(r->watch);
	r->fd = r->watch = -1;
}

void rtnl_free(struct rtnl *r)
{
	if (!r)
		return;
	nl_close(r);
	free(r->buf);
	free(r->links);
	free(r);
}

static int nl_open(struct rtnl *r)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
	/* the kernel answers at once; a bound on the wait all the same */
	struct timeval tv = {.tv_sec = 1};
	int rc;

	r->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	r->watch = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
	if (r->fd < 0 || r->watch < 0 ||
	    setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    bind(r->watch, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		nl_close(r);
		return rc;
	}
	/* whatever happened while no one listened: read the names */
	r->stale = true;
	return 0;
}

/* One dump: RTM_GETSTATS (link counters) into out as netdev entries, or
 * RTM_GETLINK (names) as netdev links. On an error the dump may still be
 * running in the kernel: the caller closes the socket. */
static int nl_dump(struct rtnl *r, bool stats, void *out, int max, int *n)
{
	struct {
		struct nlmsghdr h;
		union {
			struct if_stats_msg s;
			struct ifinfomsg i;
		} u;
	} req;
	uint32_t seq = ++r->seq_no;
	ssize_t got;
	int rc;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_type = stats ? RTM_GETSTATS : RTM_GETLINK;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.h.nlmsg_seq = seq;
	if (stats) {
		req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.u.s));
		req.u.s.filter_mask = IFLA_STATS_FILTER_BIT(IFLA_STATS_LINK_64);
	} else {
		req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.u.i));
		req.u.i.ifi_family = AF_UNSPEC;
	}
	if (send(r->fd, &req, req.h.nlmsg_len, 0) < 0)
		return -errno;
	*n = 0;
	for (;;) {
		got = recv(r->fd, r->buf, NL_BUF, MSG_TRUNC);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0 || got > NL_BUF)
			return got ? -EMSGSIZE : -EPROTO;
		rc = stats ? netdev_nl_stats(r->buf, (size_t)got, seq, out, max, n)
		           : netdev_nl_links(r->buf, (size_t)got, seq, out, max, n);
		if (rc != 0)
			return rc < 0 ? rc : 0;
	}
}

static int link_cmp(const void *a, const void *b)
{
	const struct netdev_link *x = a, *y = b;

	return (x->ifindex > y->ifindex) - (x->ifindex < y->ifindex);
}

/* Reads every interface's name again (a link came, went or was renamed). */
static int nl_read_names(struct rtnl *r)
{
	int rc;

	for (;;) {
		if (!r->links) {
			int cap = r->caplinks ? r->caplinks : 256;
			if (!(r->links = malloc(sizeof(*r->links) * (size_t)cap)))
				return -ENOMEM;
			r->caplinks = cap;
		}
		rc = nl_dump(r, false, r->links, r->caplinks, &r->nlinks);
		if (rc != -E2BIG || r->caplinks >= 16 * NETDEV_MAX_IFACES)
			break;
		/* more links than room: the dump is cut; again, from a new socket */
		free(r->links);
		r->links = NULL;
		r->caplinks *= 4;
		nl_close(r);
		if ((rc = nl_open(r)) < 0)
			return rc;
	}
	if (rc < 0) {
		r->nlinks = 0;
		return rc;
	}
	qsort(r->links, (size_t)r->nlinks, sizeof(*r->links), link_cmp);
	r->stale = false;
	return 0;
}

static const struct netdev_link *link_by_index(const struct rtnl *r, int ifindex)
{
	struct netdev_link key = {.ifindex = ifindex};

	return r->nlinks ? bsearch(&key, r->links, (size_t)r->nlinks, sizeof(key), link_cmp) : NULL;
}

int rtnl_read(struct rtnl *r, struct netdev_entry *tab, int max)
{
	bool fresh = false;
	ssize_t got;
	int n = 0, m = 0, rc;

	if (r->fd < 0 && (rc = nl_open(r)) < 0)
		return rc;
	/* any news of a link (or news lost: ENOBUFS) makes the names stale */
	for (;;) {
		got = recv(r->watch, r->buf, NL_BUF, MSG_DONTWAIT | MSG_TRUNC);
		if (got >= 0 || errno == ENOBUFS)
			r->stale = true;
		else if (errno != EINTR)
			break;
	}
	if (r->stale) {
		if ((rc = nl_read_names(r)) < 0)
			goto fail;
		fresh = true;
	}
	if ((rc = nl_dump(r, true, tab, max, &n)) < 0)
		goto fail;
	for (;;) {
		bool missing = false;
		for (int i = 0; i < n; i++) {
			const struct netdev_link *l = link_by_index(r, tab[i].ifindex);
			if (l)
				memcpy(tab[i].name, l->name, sizeof(l->name));
			else
				missing = true;
		}
		/* an interface newer than the names (its news not read yet):
		 * read them again, once */
		if (!missing || fresh)
			break;
		if ((rc = nl_read_names(r)) < 0)
			goto fail;
		fresh = true;
	}
	/* still without a name: gone again since */
	for (int i = m = 0; i < n; i++)
		if (tab[i].name[0])
			tab[m++] = tab[i];
	return m;
fail:
	nl_close(r);
	return rc;
}
