/* ring.h - fixed-capacity ring buffer of doubles (the sample window).
 *
 * Pure: no I/O, no globals. The buffer is owned by the ring; ring_init()
 * allocates it and ring_release() frees it (safe on a zeroed or released ring).
 */
#ifndef LE_CORE_RING_H
#define LE_CORE_RING_H

#include <stddef.h>

struct ring {
	double *buf;
	size_t cap;  /* capacity in samples */
	size_t len;  /* samples held, <= cap */
	size_t head; /* index of the next write */
};

/* 0, -EINVAL for cap == 0, -ENOMEM. */
int ring_init(struct ring *r, size_t cap);
void ring_release(struct ring *r);
void ring_clear(struct ring *r);
/* Appends v, evicting the oldest sample when full. Returns 1 and stores the
 * evicted value in *evicted (may be NULL) when one was evicted, else 0. */
int ring_push(struct ring *r, double v, double *evicted);
size_t ring_len(const struct ring *r);
/* i = 0 is the oldest held sample; i must be < ring_len(). */
double ring_get(const struct ring *r, size_t i);
/* The newest sample; ring must not be empty. */
double ring_last(const struct ring *r);
/* Copies the newest min(n, len) samples, oldest first, into out; returns the
 * number copied. */
size_t ring_copy_last(const struct ring *r, double *out, size_t n);

#endif
