/* netif.h - the few network-interface operations the VM driver needs, by
 * ioctl (no shelling out to ip): does an interface exist, bring it up, put
 * it on a bridge. Actions return 0 or a negative errno. */
#ifndef LE_AGENT_NETIF_H
#define LE_AGENT_NETIF_H

#include <stdbool.h>

bool netif_exists(const char *name);
bool netif_is_bridge(const char *name);
int netif_up(const char *name);
/* Adds interface ifname to bridge br (SIOCBRADDIF). */
int netif_bridge_add(const char *br, const char *ifname);

#endif
