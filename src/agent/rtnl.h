/* rtnl.h - the interface counters of the reader's network namespace over
 * rtnetlink: the table /proc/net/dev gives (struct netdev_entry), from one
 * binary RTM_GETSTATS dump per read, at about a fifth of the CPU of the text
 * (the kernel prints 16 numbers per interface for it, and we parse them).
 *
 * RTM_GETSTATS carries no names: they come from a RTM_GETLINK dump (costly:
 * every attribute of every link), read on the first read and again only
 * when a second socket, subscribed to RTNLGRP_LINK, has heard of a link that
 * came, went or was renamed, or when the counters show an interface the
 * names do not have yet. The messages are parsed by netdev_nl_*().
 */
#ifndef LE_AGENT_RTNL_H
#define LE_AGENT_RTNL_H

#include "agent/netdev.h"

struct rtnl;

/* NULL when out of memory; the sockets are opened by the first read.
 * Caller frees with rtnl_free(), which accepts NULL. */
struct rtnl *rtnl_new(void);
void rtnl_free(struct rtnl *r);

/* Fills tab with up to max interfaces; returns how many, -E2BIG when there
 * are more, or another negative errno (no rtnetlink, RTM_GETSTATS unknown
 * to the kernel, a garbled reply: the sockets are closed and opened again by
 * the next read). */
int rtnl_read(struct rtnl *r, struct netdev_entry *tab, int max);

#endif
