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
	static const char *const n[] = {"ok",        "down",          "maintenance", "excluded",
	                                "pin",       "anti_affinity", "affinity",    "overcommit",
	                                "threshold", "capacity"};
	return (unsigned)b < sizeof(n) / sizeof(n[0]) ? n[b] : "unknown";
}

void place_result_free(struct place_result *r)
{
	if (!r)
		return;
	free(r->block);
	free(r->block_res);
	free(r->why);
	r->block = NULL;
	r->block_res = NULL;
	r->why = NULL;
}

/* The limits of host H for the VM, hard ones first: memory allocated
 * beyond cap x overcommit_mem, memory demand beyond the host's memory; then
 * the soft ones: vCPUs beyond cap x overcommit_cpu, a resource's demand
 * beyond the threshold or headroom. The first one passed, with its figures. */
static enum place_block limits(const struct cl_host *H, const struct cl_vm *vm, double acpu,
                               double amem, int *res, struct place_why *why)
{
	double mem_alloc = H->cap[RES_MEM] * H->overcommit_mem;

	if (amem + vm->mem_mib > mem_alloc + EPS) {
		*res = RES_MEM;
		*why = (struct place_why){amem, vm->mem_mib, mem_alloc};
		return PLACE_OVERCOMMIT;
	}
	if (H->cap[RES_MEM] > 0 && vm->demand[RES_MEM] > EPS &&
	    H->load[RES_MEM] + vm->demand[RES_MEM] > H->cap[RES_MEM] + EPS) {
		*res = RES_MEM;
		*why = (struct place_why){H->load[RES_MEM], vm->demand[RES_MEM], H->cap[RES_MEM]};
		return PLACE_CAPACITY;
	}
	if (acpu + vm->vcpus > H->cap[RES_CPU] * H->overcommit_cpu + EPS) {
		*res = RES_CPU;
		*why = (struct place_why){acpu, vm->vcpus, H->cap[RES_CPU] * H->overcommit_cpu};
		return PLACE_OVERCOMMIT;
	}
	for (int r = 0; r < RES_N; r++) {
		double limit = cluster_host_limit(H, r);
		if (H->cap[r] > 0 && vm->demand[r] > EPS &&
		    H->load[r] + vm->demand[r] > limit + EPS) {
			*res = r;
			*why = (struct place_why){H->load[r], vm->demand[r], limit};
			return PLACE_THRESHOLD;
		}
	}
	return PLACE_OK;
}

bool place_block_soft(const struct place_result *r, int h)
{
	enum place_block b = r->block[h];

	return b == PLACE_THRESHOLD || (b == PLACE_OVERCOMMIT && r->block_res[h] == RES_CPU);
}

char *place_why_text(const struct cluster *c, const struct place_result *r, int h, char *out,
                     size_t cap)
{
	static const char *const units[RES_N] = {"cores", "MiB", "Mbit/s"};
	const struct cl_host *H = &c->hosts[h];
	const struct place_why *w = &r->why[h];
	int res = r->block_res[h];

	switch (r->block[h]) {
	case PLACE_OK:
		snprintf(out, cap, "%s", "");
		break;
	case PLACE_DOWN:
		snprintf(out, cap, "down");
		break;
	case PLACE_MAINTENANCE:
		snprintf(out, cap, "in maintenance");
		break;
	case PLACE_EXCLUDED:
		snprintf(out, cap, "excluded by the operator");
		break;
	case PLACE_PIN:
		snprintf(out, cap, "not among the VM's pinned hosts");
		break;
	case PLACE_ANTI:
		snprintf(out, cap, "holds a VM of its anti-affinity group");
		break;
	case PLACE_AFFINITY:
		snprintf(out, cap, "its affinity group runs on another host");
		break;
	case PLACE_OVERCOMMIT:
		if (res == RES_CPU)
			snprintf(out, cap,
			         "vcpus %g + %g of the VM > %g allowed (%g cores x %g overcommit)",
			         w->have, w->need, w->limit, H->cap[RES_CPU], H->overcommit_cpu);
		else
			snprintf(out, cap,
			         "mem allocated %.0f + %.0f MiB of the VM > %.0f MiB allowed (%.0f "
			         "MiB x %g overcommit)",
			         w->have, w->need, w->limit, H->cap[RES_MEM], H->overcommit_mem);
		break;
	case PLACE_CAPACITY:
		snprintf(out, cap, "mem used %.0f + %.0f MiB of the VM > %.0f MiB of memory",
		         w->have, w->need, w->limit);
		break;
	case PLACE_THRESHOLD: {
		double k = H->cap[res] > 0 ? 1 / H->cap[res] : 0;
		bool thr = w->limit >= H->thr[res] * H->cap[res] - EPS;
		char lim[48];
		if (thr)
			snprintf(lim, sizeof(lim), "threshold");
		else
			snprintf(lim, sizeof(lim), "limit of headroom %.2f", H->headroom[res]);
		snprintf(out, cap, "%s %.2f + %.2f of the VM > %.2f %s (%.4g + %.4g > %.4g %s)",
		         res_names[res], w->have * k, w->need * k, w->limit * k, lim, w->have,
		         w->need, w->limit, units[res]);
		break;
	}
	default:
		snprintf(out, cap, "%s", place_block_name(r->block[h]));
	}
	return out;
}

int place_compute(const struct cluster *c, const struct cl_vm *vm, struct place_result *out)
{
	size_t h1 = (size_t)c->nhosts + 1;
	double *acpu = calloc(h1, sizeof(double)), *amem = calloc(h1, sizeof(double));
	bool *anti_on = calloc(h1, sizeof(bool)), *group_on = calloc(h1, sizeof(bool));
	bool group_anywhere = false;
	int counts[PLACE_NBLOCKS] = {0}, rc = 0;
	double best = 0;

	memset(out, 0, sizeof(*out));
	out->host = -1;
	out->block = calloc(h1, sizeof(*out->block));
	out->block_res = calloc(h1, sizeof(int));
	out->why = calloc(h1, sizeof(*out->why));
	if (!acpu || !amem || !anti_on || !group_on || !out->block || !out->block_res ||
	    !out->why) {
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
		else
			b = limits(H, vm, acpu[h], amem[h], &out->block_res[h], &out->why[h]);
		for (int r = 0; r < RES_N; r++)
			u[r] = H->cap[r] > 0 ? (H->load[r] + vm->demand[r]) / H->cap[r] : 0;
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
		for (int b = PLACE_DOWN; b < PLACE_NBLOCKS && n > 0 && (size_t)n < left; b++) {
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
out:
	free(acpu);
	free(amem);
	free(anti_on);
	free(group_on);
	if (rc < 0)
		place_result_free(out);
	return rc;
}
