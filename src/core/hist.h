/* hist.h - 20-bin utilisation histogram (5 % bins), as the seed's monitor had.
 *
 * Bin i counts values in [i*0.05, (i+1)*0.05); values < 0 go to bin 0, values
 * >= 1 (overcommitted) to the last bin. NaN is ignored. Pure, no allocation.
 */
#ifndef LE_CORE_HIST_H
#define LE_CORE_HIST_H

#include <stdint.h>

#define HIST_BINS 20

struct hist {
	uint32_t bins[HIST_BINS];
	uint32_t total;
};

void hist_clear(struct hist *h);
int hist_bin(double u); /* the bin index u falls in, -1 for NaN */
void hist_add(struct hist *h, double u);
/* Removes one count of u (used when a sample leaves the window); a no-op when
 * that bin is already empty. */
void hist_remove(struct hist *h, double u);

#endif
