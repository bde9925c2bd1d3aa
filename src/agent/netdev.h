/* netdev.h - pure parsers of the interface counters of the reader's network
 * namespace, from one read (cheaper than six sysfs files per tap): the text
 * of /proc/net/dev,
 *
 *   Inter-|   Receive                            ...|  Transmit
 *    face |bytes    packets errs drop fifo frame compressed multicast|bytes ...
 *     eth0: 1234 5 0 0 0 0 0 0 5678 9 0 0 0 0 0 0
 *
 * or the binary replies of rtnetlink dumps: RTM_GETSTATS with
 * IFLA_STATS_LINK_64 (the same counters, from the same dev_get_stats(), with
 * nothing for the kernel to print or for us to parse: a fifth of the CPU) and
 * RTM_GETLINK for the names, which RTM_GETSTATS does not carry.
 */
#ifndef LE_AGENT_NETDEV_H
#define LE_AGENT_NETDEV_H

#include <stddef.h>
#include <stdint.h>

#define NETDEV_MAX_IFACES 4096

struct netdev_entry {
	char name[16];
	uint64_t rx_bytes, rx_packets, rx_errs, rx_drop;
	uint64_t tx_bytes, tx_packets, tx_errs, tx_drop;
	int ifindex; /* 0 from /proc/net/dev */
};

/* Parses up to max entries into out; returns the number parsed or -EINVAL
 * (garbled line, missing header), -ERANGE (number overflow), -E2BIG (more
 * than max interfaces or a line over 1024 bytes). */
int netdev_parse(const char *buf, size_t len, struct netdev_entry *out, int max);
/* The entry named name, or NULL. */
const struct netdev_entry *netdev_find(const struct netdev_entry *e, int n, const char *name);

/* An interface's index and name, from a RTM_GETLINK dump. */
struct netdev_link {
	int ifindex;
	char name[16];
};

/* One datagram of a dump (whole netlink messages, host byte order, any
 * alignment), answering the request with sequence number seq; messages of
 * another sequence number are skipped. netdev_nl_stats() appends an entry per
 * RTM_NEWSTATS message, with ifindex and counters and an empty name;
 * rx_drop is rx_dropped + rx_missed_errors, as /proc/net/dev prints it.
 * netdev_nl_links() appends the IFLA_IFNAME of each RTM_NEWLINK message.
 * *n counts the entries in out (the caller zeroes it before the first
 * datagram of a dump).
 *
 * Return: 1 when the datagram ends the dump (NLMSG_DONE), 0 when more are to
 * come, the negative errno of an error reply (NLMSG_ERROR, or a NLMSG_DONE
 * that carries one), -EINVAL for a garbled message or a missing attribute,
 * -E2BIG past max entries. */
int netdev_nl_stats(const void *buf, size_t len, uint32_t seq, struct netdev_entry *out, int max,
                    int *n);
int netdev_nl_links(const void *buf, size_t len, uint32_t seq, struct netdev_link *out, int max,
                    int *n);

#endif
