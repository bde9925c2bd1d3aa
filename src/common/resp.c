#include "common/resp.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_ROOM 16 /* "*NNNNN\r\n" fits */

void resp_reset(struct resp_buf *b)
{
	b->len = 0;
	b->nargs = 0;
	b->ncmds = 0;
	b->cmd_start = 0;
}

void resp_release(struct resp_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static int grow(struct resp_buf *b, size_t more)
{
	size_t cap;
	char *nd;

	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	nd = realloc(b->data, cap);
	if (!nd)
		return -ENOMEM;
	b->data = nd;
	b->cap = cap;
	return 0;
}

static inline int reserve(struct resp_buf *b, size_t more)
{
	return b->len + more <= b->cap ? 0 : grow(b, more);
}

/* "00" to "99": numbers are written two digits at a time */
static const char digits2[] = "00010203040506070809101112131415161718192021222324252627282930313233"
                              "34353637383940414243444546474849505152535455565758596061626364656667"
                              "6869707172737475767778798081828384858687888990919293949596979899";

/* Writes v in decimal at p, right to left, two digits at a time; returns
 * the length. */
static size_t put_u64(char *p, uint64_t v)
{
	size_t n = 1;
	char *q;

	for (uint64_t t = v; t >= 10; t /= 10)
		n++;
	q = p + n;
	while (v >= 100) {
		q -= 2;
		memcpy(q, digits2 + 2 * (v % 100), 2);
		v /= 100;
	}
	if (v >= 10)
		memcpy(q - 2, digits2 + 2 * v, 2);
	else
		q[-1] = (char)('0' + v);
	return n;
}

size_t resp_format_u64(char *dst, uint64_t v)
{
	return put_u64(dst, v);
}

int resp_reserve(struct resp_buf *b, size_t more)
{
	return reserve(b, more);
}

int resp_begin(struct resp_buf *b)
{
	/* leave room for the header; resp_end moves the arguments up to it */
	if (reserve(b, HEADER_ROOM) < 0)
		return -ENOMEM;
	b->len += HEADER_ROOM;
	b->cmd_start = b->len;
	b->nargs = 0;
	return 0;
}

int resp_arg(struct resp_buf *b, const char *s, size_t n)
{
	char *p;

	if (reserve(b, n + 32) < 0)
		return -ENOMEM;
	p = b->data + b->len;
	*p++ = '$';
	if (n < 10) {
		*p++ = (char)('0' + n);
	} else if (n < 100) {
		memcpy(p, digits2 + 2 * n, 2);
		p += 2;
	} else {
		p += put_u64(p, n);
	}
	*p++ = '\r';
	*p++ = '\n';
	memcpy(p, s, n);
	p += n;
	*p++ = '\r';
	*p++ = '\n';
	b->len = (size_t)(p - b->data);
	b->nargs++;
	return 0;
}

int resp_cat(struct resp_buf *b, const char *const *parts, int n)
{
	size_t len[8], total = 0, hdr;
	char *p;

	if (n < 0 || n > 8)
		return -EINVAL;
	for (int i = 0; i < n; i++)
		total += len[i] = strlen(parts[i]);
	if (reserve(b, total + 32) < 0)
		return -ENOMEM;
	p = b->data + b->len;
	*p++ = '$';
	hdr = put_u64(p, total);
	p += hdr;
	*p++ = '\r';
	*p++ = '\n';
	for (int i = 0; i < n; i++) {
		memcpy(p, parts[i], len[i]);
		p += len[i];
	}
	*p++ = '\r';
	*p++ = '\n';
	b->len = (size_t)(p - b->data);
	b->nargs++;
	return 0;
}

int resp_str(struct resp_buf *b, const char *s)
{
	return resp_arg(b, s, strlen(s));
}

int resp_u64(struct resp_buf *b, uint64_t v)
{
	char tmp[24];

	return resp_arg(b, tmp, put_u64(tmp, v));
}

size_t resp_format_fixed(char *dst, double v, int dec)
{
	static const double scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
	uint64_t i, ip, fp;
	size_t n = 0;
	double x;
	bool neg;

	if (dec < 0)
		dec = 0;
	if (dec > 6)
		dec = 6;
	if (!isfinite(v))
		v = 0;
	neg = v < 0;
	x = (neg ? -v : v) * scale[dec];
	if (fabs(v) >= 1e15 || x >= 9e18) {
		int r = snprintf(dst, 32, "%.*f", dec, v);
		return r < 0 ? 0 : r > 31 ? 31 : (size_t)r; /* cut past 31 characters */
	}
	/* llround() without the call: half away from zero (x - i is exact) */
	i = (uint64_t)x;
	if (x - (double)i >= 0.5)
		i++;
	/* no "-0.0000" for a value that rounds to zero */
	if (neg && i != 0)
		dst[n++] = '-';
	/* constant divisors: the compiler multiplies instead of dividing */
	switch (dec) {
	case 0:
		ip = i, fp = 0;
		break;
	case 1:
		ip = i / 10, fp = i % 10;
		break;
	case 2:
		ip = i / 100, fp = i % 100;
		break;
	case 3:
		ip = i / 1000, fp = i % 1000;
		break;
	case 4:
		ip = i / 10000, fp = i % 10000;
		break;
	case 5:
		ip = i / 100000, fp = i % 100000;
		break;
	default:
		ip = i / 1000000, fp = i % 1000000;
		break;
	}
	n += put_u64(dst + n, ip);
	if (dec) {
		dst[n++] = '.';
		for (int d = dec - 1; d >= 0; d--) {
			dst[n + (size_t)d] = (char)('0' + fp % 10);
			fp /= 10;
		}
		n += (size_t)dec;
	}
	dst[n] = '\0';
	return n;
}

int resp_fixed(struct resp_buf *b, double v, int dec)
{
	char tmp[40];
	size_t n = resp_format_fixed(tmp, v, dec);
	char *p;

	if (reserve(b, 48) < 0)
		return -ENOMEM;
	/* n <= 32 (see resp_format_fixed): a fixed-size copy, no call */
	p = b->data + b->len;
	*p++ = '$';
	if (n < 10) {
		*p++ = (char)('0' + n);
	} else {
		memcpy(p, digits2 + 2 * n, 2);
		p += 2;
	}
	*p++ = '\r';
	*p++ = '\n';
	memcpy(p, tmp, 32);
	p += n;
	*p++ = '\r';
	*p++ = '\n';
	b->len = (size_t)(p - b->data);
	b->nargs++;
	return 0;
}

int resp_fmt(struct resp_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -EINVAL;
	return resp_arg(b, tmp, (size_t)n);
}

int resp_end(struct resp_buf *b)
{
	char hdr[HEADER_ROOM];
	size_t h = 0, start;

	hdr[h++] = '*';
	h += put_u64(hdr + h, (uint64_t)b->nargs);
	hdr[h++] = '\r';
	hdr[h++] = '\n';
	/* the header goes right before the arguments; close the gap behind it */
	start = b->cmd_start - HEADER_ROOM;
	memcpy(b->data + start, hdr, h);
	memmove(b->data + start + h, b->data + b->cmd_start, b->len - b->cmd_start);
	b->len -= HEADER_ROOM - h;
	b->ncmds++;
	b->nargs = 0;
	return 0;
}
