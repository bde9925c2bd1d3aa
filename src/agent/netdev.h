/* netdev.h - pure parser of /proc/net/dev: the counters of every interface
 * of the reader's network namespace, in one read (cheaper than six sysfs
 * files per tap).
 *
 *   Inter-|   Receive                            ...|  Transmit
 *    face |bytes    packets errs drop fifo frame compressed multicast|bytes ...
 *     eth0: 1234 5 0 0 0 0 0 0 5678 9 0 0 0 0 0 0
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
};

/* Parses up to max entries into out; returns the number parsed or -EINVAL
 * (garbled line, missing header), -ERANGE (number overflow), -E2BIG (more
 * than max interfaces or a line over 1024 bytes). */
int netdev_parse(const char *buf, size_t len, struct netdev_entry *out, int max);
/* The entry named name, or NULL. */
const struct netdev_entry *netdev_find(const struct netdev_entry *e, int n, const char *name);

#endif
