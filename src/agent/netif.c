#include "agent/netif.h"

#include <errno.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int ctl_socket(void)
{
	return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

static int fill(struct ifreq *ifr, const char *name)
{
	memset(ifr, 0, sizeof(*ifr));
	if (!name || !*name || strlen(name) >= IFNAMSIZ)
		return -EINVAL;
	memcpy(ifr->ifr_name, name, strlen(name));
	return 0;
}

bool netif_exists(const char *name)
{
	return name && strlen(name) < IFNAMSIZ && if_nametoindex(name) != 0;
}

bool netif_is_bridge(const char *name)
{
	char path[96];
	struct stat st;

	if (!netif_exists(name))
		return false;
	snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", name);
	return stat(path, &st) == 0;
}

int netif_up(const char *name)
{
	struct ifreq ifr;
	int fd, rc = 0;

	if (fill(&ifr, name) < 0)
		return -EINVAL;
	fd = ctl_socket();
	if (fd < 0)
		return -errno;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		rc = -errno;
		goto out;
	}
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		rc = -errno;
out:
	close(fd);
	return rc;
}

int netif_bridge_add(const char *br, const char *ifname)
{
	struct ifreq ifr;
	unsigned idx = netif_exists(ifname) ? if_nametoindex(ifname) : 0;
	int fd, rc = 0;

	if (fill(&ifr, br) < 0 || !idx)
		return -ENODEV;
	fd = ctl_socket();
	if (fd < 0)
		return -errno;
	ifr.ifr_ifindex = (int)idx;
	if (ioctl(fd, SIOCBRADDIF, &ifr) < 0)
		rc = -errno;
	close(fd);
	return rc;
}
