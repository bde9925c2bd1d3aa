#include "common/resp.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
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

static int reserve(struct resp_buf *b, size_t more)
{
	size_t cap;
	char *nd;

	if (b->len + more <= b->cap)
		return 0;
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

/* Writes v in decimal at p; returns the length. */
static size_t put_u64(char *p, uint64_t v)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
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
	p += put_u64(p, n);
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
	uint64_t i, ip, fp, div = 1;
	size_t n = 0;

	if (dec < 0)
		dec = 0;
	if (dec > 6)
		dec = 6;
	if (!isfinite(v))
		v = 0;
	if (fabs(v) >= 1e15)
		return (size_t)snprintf(dst, 32, "%.*f", dec, v);
	if (v < 0) {
		/* no "-0.0000" for a value that rounds to zero */
		if (llround(-v * scale[dec]) != 0)
			dst[n++] = '-';
		v = -v;
	}
	i = (uint64_t)llround(v * scale[dec]);
	for (int d = 0; d < dec; d++)
		div *= 10;
	ip = i / div;
	fp = i % div;
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

	return resp_arg(b, tmp, resp_format_fixed(tmp, v, dec));
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
