#include "core/hist.h"

#include <math.h>
#include <string.h>

/* Values this close below a bin edge (in bin units) count as on the edge, so
 * 0.15, stored as 0.1499999..., lands in bin 3 as a reader expects. */
#define HIST_EDGE_EPS 1e-9

void hist_clear(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

int hist_bin(double u)
{
	double x;

	if (isnan(u))
		return -1;
	if (u < 0.0)
		return 0;
	if (u >= 1.0)
		return HIST_BINS - 1;
	x = floor(u * HIST_BINS + HIST_EDGE_EPS);
	if (x >= HIST_BINS - 1)
		return HIST_BINS - 1;
	return (int)x;
}

void hist_add(struct hist *h, double u)
{
	int b = hist_bin(u);

	if (b < 0)
		return;
	h->bins[b]++;
	h->total++;
}

void hist_remove(struct hist *h, double u)
{
	int b = hist_bin(u);

	if (b < 0 || h->bins[b] == 0)
		return;
	h->bins[b]--;
	h->total--;
}
