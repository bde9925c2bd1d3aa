#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int64_t util_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int64_t util_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int util_read_file(const char *root, const char *path, char *buf, size_t cap, size_t *len)
{
	char full[PATH_MAX];
	size_t got = 0;
	int fd, rc = 0;

	*len = 0;
	if (cap == 0)
		return -EINVAL;
	buf[0] = '\0';
	if (util_fmt(full, sizeof(full), "%s%s", strcmp(root, "/") == 0 ? "" : root, path) < 0)
		return -ENAMETOOLONG;
	fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;
		if (got == cap - 1) {
			char probe;
			n = read(fd, &probe, 1);
			if (n > 0)
				rc = -EFBIG;
			break;
		}
		n = read(fd, buf + got, cap - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
out:
	close(fd);
	buf[got] = '\0';
	*len = got;
	return rc;
}

int util_pread_file(int *fd, const char *root, const char *path, char *buf, size_t cap, size_t *len)
{
	char full[PATH_MAX];
	ssize_t n;
	int rc;

	*len = 0;
	if (cap == 0)
		return -EINVAL;
	buf[0] = '\0';
	if (*fd < 0) {
		if (util_fmt(full, sizeof(full), "%s%s", strcmp(root, "/") == 0 ? "" : root, path) <
		    0)
			return -ENAMETOOLONG;
		*fd = open(full, O_RDONLY | O_CLOEXEC);
		if (*fd < 0)
			return -errno;
	}
	/* seq_file hands out about a page per read: keep reading while a read
	 * came back large; a short one (its records are far smaller than a page)
	 * is the end, which saves the costly extra read at an offset */
	size_t got = 0;
	for (;;) {
		do
			n = pread(*fd, buf + got, cap - 1 - got, (off_t)got);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			rc = -errno;
			close(*fd);
			*fd = -1;
			return rc;
		}
		got += (size_t)n;
		if (n < 2048 || got == cap - 1)
			break;
	}
	if (got == 0) {
		close(*fd);
		*fd = -1;
		return -ENODATA;
	}
	buf[got] = '\0';
	*len = got;
	if (got == cap - 1) {
		char probe;
		if (pread(*fd, &probe, 1, (off_t)got) > 0)
			return -EFBIG;
	}
	return 0;
}

bool util_valid_id(const char *s)
{
	size_t n = 0;

	if (!s || !*s || s[0] == '.' || s[0] == '-')
		return false;
	for (; s[n]; n++) {
		char c = s[n];
		if (n >= 64)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

int util_split_hostport(const char *s, char *host, size_t hostcap, int *port)
{
	const char *colon, *h = s;
	size_t hl;
	int64_t p;

	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl >= hostcap)
		return -EINVAL;
	if (!util_parse_i64(colon + 1, &p) || p < 0 || p > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

bool util_parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s || *s == ' ' || *s == '\t')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || end == s)
		return false;
	*out = v;
	return true;
}

bool util_parse_double(const char *s, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || end == s || !isfinite(v))
		return false;
	*out = v;
	return true;
}

int util_fmt(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	return 0;
}

int util_check_secret_file(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		int saved = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(saved));
		return -saved;
	}
	/* others never; the group only when it is the daemon's own (root:loadease
	 * 0640 for a controller running as loadease, the Debian way), or for a
	 * daemon running as root (the agent, sharing that key) */
	if ((st.st_mode & 027) ||
	    ((st.st_mode & 040) && st.st_gid != getegid() && geteuid() != 0)) {
		snprintf(err, errlen,
		         "%s: mode %04o lets %s read a secret; refused (chmod 600 %s, or 0640 "
		         "with the daemon's group)",
		         path, (unsigned)(st.st_mode & 07777),
		         st.st_mode & 07 ? "others" : "group or others", path);
		return -EPERM;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(
		    err, errlen,
		    "%s: owned by uid %u, neither this daemon's user (uid %u) nor root; refused",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	return 0;
}

int util_read_secret(const char *path, char *dst, size_t cap, char *err, size_t errlen)
{
	size_t len;
	int rc = util_check_secret_file(path, err, errlen);

	if (rc < 0)
		return rc;
	rc = util_read_file("/", path, dst, cap, &len);

	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	dst[strcspn(dst, "\r\n")] = '\0';
	return 0;
}

void util_first_ipv4(char *dst, size_t cap)
{
	struct ifaddrs *ifa, *i;

	snprintf(dst, cap, "127.0.0.1");
	if (getifaddrs(&ifa) < 0)
		return;
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, dst,
		          (socklen_t)cap);
		break;
	}
	freeifaddrs(ifa);
}

int util_default_listen(char *address, size_t acap, char *listen, size_t lcap, int port)
{
	if (!address[0])
		util_first_ipv4(address, acap);
	if (listen[0])
		return 0;
	return util_fmt(listen, lcap, strchr(address, ':') ? "[%s]:%d" : "%s:%d", address, port);
}
