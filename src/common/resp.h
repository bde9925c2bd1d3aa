/* resp.h - Redis commands built straight into the protocol (RESP), so a tick
 * of samples is formatted once, kept as it will be sent, and handed to
 * hiredis without a second formatting pass. Numbers are written by hand
 * (fixed point), several times faster than printf.
 */
#ifndef LE_COMMON_RESP_H
#define LE_COMMON_RESP_H

#include <stddef.h>
#include <stdint.h>

struct resp_buf {
	char *data;
	size_t len, cap;
	size_t cmd_start; /* where the open command's arguments begin */
	int nargs;        /* arguments of the open command */
	int ncmds;        /* complete commands in the buffer */
};

void resp_reset(struct resp_buf *b); /* empty, keeps the memory */
/* Room for more bytes at once (one allocation for a buffer whose size is
 * known roughly, instead of doubling and copying). */
int resp_reserve(struct resp_buf *b, size_t more);
void resp_release(struct resp_buf *b); /* frees; the buffer is empty after */
/* Opens a command; its arguments follow; resp_end() closes it. */
int resp_begin(struct resp_buf *b);
int resp_arg(struct resp_buf *b, const char *s, size_t n);
/* One argument made of the strings parts[0..n) end to end (a key such as
 * "ts:vm:<id>", without printf). */
int resp_cat(struct resp_buf *b, const char *const *parts, int n);
int resp_str(struct resp_buf *b, const char *s);
int resp_u64(struct resp_buf *b, uint64_t v);
/* v with dec (0-6) decimals, rounded half away from zero; NaN and infinities
 * as 0; |v| >= 1e15 through printf, cut to 31 characters (past 1e23). */
int resp_fixed(struct resp_buf *b, double v, int dec);
int resp_fmt(struct resp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int resp_end(struct resp_buf *b);

/* The formatting of resp_fixed into dst (at least 32 bytes); returns the
 * length, at most 31. */
size_t resp_format_fixed(char *dst, double v, int dec);
/* v in decimal into dst (at least 20 bytes), no NUL; returns the length. */
size_t resp_format_u64(char *dst, uint64_t v);

#endif
