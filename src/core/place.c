/* place.c - placement of a new VM: the feasible host whose volume after
 * placement is lowest (ties: the lower index), with the reason each other
 * host was ruled out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plan.h"

#define EPS 1e-9

static const char *const res_names[RES_N] = {"cpu", "mem", "net"};

const char *place_block_name(enum place_block b)
{
	static const char *const n[] = {"ok",       "down",       "maintenance",
	                                "excluded", "pin",        "anti_affinity",
	                                "affinity", "overcommit", "threshold"};
	return (unsigned)b < sizeof(n) / sizeof(n[0]) ? n[b] : "unknown";
}

void place_result_free(struct place_result *r)
{
	if (!r)
		return;
	free(r->block);
	free(r->block_res);
	r->block = NULL;
	r->block_res = NULL;
}

int place_compute(const struct cluster *c, const struct cl_vm *vm, struct place_result *out)
{
	size_t h1 = (size_t)c->nhosts + 1;
	double *acpu = calloc(h1, sizeof(double)), *amem = calloc(h1, sizeof(double));
	bool *anti_on = calloc(h1, sizeof(bool)), *group_on = calloc(h1, sizeof(bool));
	bool group_anywhere = false;
	int counts[PLACE_THRESHOLD + 1] = {0}, rc = 0;
	double best = 0;

	memset(out, 0, sizeof(*out));
	out->host = -1;
	out->block = calloc(h1, sizeof(*out->block));
	out->block_res = calloc(h1, sizeof(int));
	if (!acpu || !amem || !anti_on || !group_on || !out->block || !out->block_res) {
		rc = -ENOMEM;
		goto out;
	}
	for (int v = 0; v < c->nvms; v++) {
		const struct cl_vm *w = &c->vms[v];
		int h = w->host;
		if (h < 0 || h >= c->nhosts)
			continue;
		acpu[h] += w->vcpus;
		amem[h] += w->mem_mib;
		if (vm->anti_group >= 0 && w->anti_group == vm->anti_group)
			anti_on[h] = true;
		if (vm->group >= 0 && w->group == vm->group) {
			group_on[h] = true;
			group_anywhere = true;
		}
	}
	for (int h = 0; h < c->nhosts; h++) {
		const struct cl_host *H = &c->hosts[h];
		enum place_block b = PLACE_OK;
		double u[RES_N], vol;
		bool pinned = !vm->pin || vm->npin <= 0;

		for (int i = 0; !pinned && i < vm->npin; i++)
			pinned = vm->pin[i] == h;
		out->block_res[h] = -1;
		if (H->state == HOST_DOWN)
			b = PLACE_DOWN;
		else if (H->state == HOST_MAINTENANCE)
			b = PLACE_MAINTENANCE;
		else if (H->excluded)
			b = PLACE_EXCLUDED;
		else if (!pinned)
			b = PLACE_PIN;
		else if (anti_on[h])
			b = PLACE_ANTI;
		else if (group_anywhere && !group_on[h])
			b = PLACE_AFFINITY;
		else if (acpu[h] + vm->vcpus > H->cap[RES_CPU] * H->overcommit_cpu + EPS) {
			b = PLACE_OVERCOMMIT;
			out->block_res[h] = RES_CPU;
		} else if (amem[h] + vm->mem_mib > H->cap[RES_MEM] * H->overcommit_mem + EPS) {
			b = PLACE_OVERCOMMIT;
			out->block_res[h] = RES_MEM;
		}
		for (int r = 0; b == PLACE_OK && r < RES_N; r++) {
			double limit;
			if (H->cap[r] <= 0) {
				u[r] = 0;
				continue;
			}
			limit = cluster_host_limit(H, r);
			if (vm->demand[r] > EPS && H->load[r] + vm->demand[r] > limit + EPS) {
				b = PLACE_THRESHOLD;
				out->block_res[h] = r;
			}
			u[r] = (H->load[r] + vm->demand[r]) / H->cap[r];
		}
		out->block[h] = b;
		counts[b]++;
		if (b != PLACE_OK)
			continue;
		vol = cluster_volume(u);
		if (out->host < 0 || vol < best) {
			out->host = h;
			best = vol;
		}
	}
	if (out->host >= 0) {
		out->vol_after = best;
		snprintf(out->reason, sizeof(out->reason),
		         "%s: the lowest volume after placement (%.2f) of %d feasible hosts",
		         c->hosts[out->host].id, best, counts[PLACE_OK]);
	} else {
		char *p = out->reason;
		size_t left = sizeof(out->reason);
		int n = snprintf(p, left, "no host fits %s:", vm->id[0] ? vm->id : "the VM");
		for (int b = PLACE_DOWN; b <= PLACE_THRESHOLD && n > 0 && (size_t)n < left; b++) {
			if (!counts[b])
				continue;
			p += n;
			left -= (size_t)n;
			n = snprintf(p, left, " %d %s", counts[b],
			             place_block_name((enum place_block)b));
		}
		if (c->nhosts == 0)
			snprintf(out->reason, sizeof(out->reason),
			         "no host fits: the cluster has no hosts");
	}
	(void)res_names;
out:
	free(acpu);
	free(amem);
	free(anti_on);
	free(group_on);
	if (rc < 0)
		place_result_free(out);
	return rc;
}
