/* util.h - small shared helpers: clocks, file reading under a root, id checks. */
#ifndef LE_COMMON_UTIL_H
#define LE_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int64_t util_now_ms(void);  /* CLOCK_REALTIME, ms since the epoch */
int64_t util_mono_ms(void); /* CLOCK_MONOTONIC, ms */
int64_t util_mono_ns(void);

/* Reads root + path (path starts with '/') into buf (cap bytes, NUL
 * terminated, so at most cap - 1 bytes of content). 0 or a negative errno
 * (-ENOENT, -EACCES, ...); -EFBIG when the file does not fit. *len gets the
 * content length. */
int util_read_file(const char *root, const char *path, char *buf, size_t cap, size_t *len);

/* Like util_read_file, through a descriptor kept open in *fd (-1: open it
 * now): pread at offset 0 re-reads a /proc or /sys file without the cost of
 * open and close. On a read error the descriptor is closed and *fd = -1; an
 * empty file is -ENODATA (a /proc file of an exited process reads empty). */
int util_pread_file(int *fd, const char *root, const char *path, char *buf, size_t cap,
                    size_t *len);

/* Ids of hosts and VMs: 1-64 chars of [A-Za-z0-9_.-], not starting with '.'
 * or '-'. They become parts of Redis keys, file names and URLs. */
bool util_valid_id(const char *s);

/* Parses "host:port", "[v6]:port" or ":port" into host (may come back empty)
 * and port. 0 or -EINVAL. */
int util_split_hostport(const char *s, char *host, size_t hostcap, int *port);

/* Parses a whole string as a number; false on junk, overflow or empty. */
bool util_parse_i64(const char *s, int64_t *out);
bool util_parse_double(const char *s, double *out);

/* snprintf that reports truncation: 0 or -ENAMETOOLONG. */
int util_fmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Is path fit to hold a secret: no access for group or others (mode & 077
 * == 0), owned by this process's user or root? 0, or a negative errno
 * (-EPERM for a loose file) with err saying what is wrong and the fix. */
int util_check_secret_file(const char *path, char *err, size_t errlen);

/* Reads a secret (token, password) from the file's first line, after
 * util_check_secret_file(). 0, or a negative errno with err "<path>: <reason>". */
int util_read_secret(const char *path, char *dst, size_t cap, char *err, size_t errlen);

/* The first non-loopback IPv4 address that is up, as text; "127.0.0.1"
 * when there is none. */
void util_first_ipv4(char *dst, size_t cap);
/* A daemon's addresses: an empty address becomes util_first_ipv4(), an
 * empty listen "<address>:<port>" ("[v6]:port"). 0 or -ENAMETOOLONG. */
int util_default_listen(char *address, size_t acap, char *listen, size_t lcap, int port);

#endif
