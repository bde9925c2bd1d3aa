/* resize.h - resize in place (Sandpiper's journal version): the planner's
 * first step, before any migration is considered.
 *
 *  1. reclaim: on a host hot on memory (or over its memory threshold), idle
 *     guests (demand at most 70 % of their allocation, a balloon to give it
 *     back through) are shrunk, most reclaimable first, until the host is
 *     under its threshold: each to its demand plus a fifth (at least 64 MiB),
 *     rounded up to 64 MiB, never under max(512 MiB, a quarter of its
 *     maximum); only when at least 128 MiB comes back;
 *  2. grow: a VM whose demand reaches 95 % of its allocation (vCPUs or MiB)
 *     and whose domain allows more (cl_vm.max_vcpus, max_mem_mib) gets
 *     max(+1, ceil(demand x 1.25)) vCPUs and max(+256 MiB, x 1.25) memory,
 *     capped at its maximum; the host must take the demand the VM is expected
 *     to reach (min(new allocation, demand x 1.25)) under its threshold and
 *     headroom, and the allocation under its overcommit; else the largest
 *     smaller step that does; else nothing, and relief may migrate it.
 * One resize per VM per plan; a resized VM is not migrated in the same plan.
 * Resizes do not count against the migration limits or the cooldown (no
 * migration happens), and a VM that is migrating is never resized.
 */
#ifndef LE_CORE_RESIZE_H
#define LE_CORE_RESIZE_H

#include <stdbool.h>

#include "core/plan.h"

#define RESIZE_GROW_AT     0.95 /* demand / allocation that asks for more */
#define RESIZE_GROW_BY     1.25 /* new allocation / demand */
#define RESIZE_GROW_MEM    256  /* MiB: the least memory step up */
#define RESIZE_IDLE_AT     0.70 /* demand / allocation under which memory is reclaimable */
#define RESIZE_MEM_FLOOR   512  /* MiB: never ballooned under this */
#define RESIZE_MEM_STEP    64   /* MiB: sizes are multiples of this */
#define RESIZE_MIN_RECLAIM 128  /* MiB: a smaller reclaim is not worth a balloon change */

/* The planner's projection, shared with plan.c for one call. */
struct resize_view {
	const struct cluster *c;
	double (*load)[RES_N]; /* projected loads per host, updated */
	double (*fc)[RES_N];   /* projected forecasts per host, updated */
	double *acpu, *amem;   /* projected allocations per host, updated */
	bool *planned;         /* per VM: in the plan already; set for each resized VM */
	struct plan_result *out;
	int *vmbuf;     /* scratch of nvms entries */
	double *keybuf; /* scratch of nvms entries */
};

/* Appends the resize actions to v->out; 0 or -ENOMEM. Deterministic: VMs in
 * index order for growth, hosts in index order for reclaim. */
int resize_plan(struct resize_view *v);

/* A new zeroed action at the end of r's list; NULL when out of memory. */
struct plan_action *plan_action_add(struct plan_result *r);

#endif
