#include "core/ring.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int ring_init(struct ring *r, size_t cap)
{
	memset(r, 0, sizeof(*r));
	if (cap == 0)
		return -EINVAL;
	/* Checked here rather than left to calloc(), whose overflow report
	 * aborts under ASan. */
	if (cap > SIZE_MAX / sizeof(double))
		return -ENOMEM;
	r->buf = calloc(cap, sizeof(double));
	if (!r->buf)
		return -ENOMEM;
	r->cap = cap;
	return 0;
}

void ring_release(struct ring *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

void ring_clear(struct ring *r)
{
	r->len = 0;
	r->head = 0;
}

int ring_push(struct ring *r, double v, double *evicted)
{
	int ret = 0;

	if (r->len == r->cap) {
		/* Full: head is also the index of the oldest sample. */
		if (evicted)
			*evicted = r->buf[r->head];
		ret = 1;
	} else {
		r->len++;
	}
	r->buf[r->head] = v;
	r->head = (r->head + 1) % r->cap;
	return ret;
}

size_t ring_len(const struct ring *r)
{
	return r->len;
}

double ring_get(const struct ring *r, size_t i)
{
	size_t oldest = (r->head + r->cap - r->len) % r->cap;

	return r->buf[(oldest + i) % r->cap];
}

double ring_last(const struct ring *r)
{
	return r->buf[(r->head + r->cap - 1) % r->cap];
}

size_t ring_copy_last(const struct ring *r, double *out, size_t n)
{
	size_t start, first;

	if (n > r->len)
		n = r->len;
	if (n == 0)
		return 0;
	/* the n newest, oldest first: up to two runs of the buffer */
	start = (r->head + r->cap - n) % r->cap;
	first = r->cap - start < n ? r->cap - start : n;
	memcpy(out, &r->buf[start], first * sizeof(double));
	memcpy(out + first, r->buf, (n - first) * sizeof(double));
	return n;
}
