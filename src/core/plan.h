/* plan.h - the migration planner (Sandpiper, then past it) and placement.
 *
 * plan_compute() answers "what should move, and where, right now?":
 *  0. resize in place (resize.h, opts.resize): VMs at their allocation get
 *     more on their own host when it has room, idle guests on a memory-hot
 *     host give memory back; a resized VM is not moved in the same plan;
 *  1. hosts with a hot resource (cl_host.hot, the k-of-n + forecast rule),
 *     hottest volume first, then hosts in maintenance (evacuation);
 *  2. on each, its movable VMs by VSR (volume / memory size), highest first
 *     (an affinity group moves as one unit);
 *  3. each goes to the least-loaded (lowest volume) host that stays under every
 *     threshold and headroom after the move, projected with the VM's peak
 *     demand, within overcommit, rules and limits;
 *  4. when no single move relieves a hotspot, a swap with a VM of another host,
 *     ordered so the host that holds both for a while has the memory for it;
 *  5. prevention: hosts not hot but whose risk (risk.h) of passing a
 *     threshold at the horizon exceeds risk_target, riskiest first, each
 *     until under it: of its movable VMs and the first targets in volume
 *     order that fit, the pair that removes the most risk (the source's
 *     drop minus the target's rise) per second of migration, with the
 *     target's risk kept under risk_target / 4 so it does not become the
 *     next one; same limits, rules and cooldown as relief.
 * Every action carries its reason and the projected volumes of both hosts;
 * every hotspot left unresolved carries why.
 *
 * Pure and deterministic: same input, same plan. Allocation is per call
 * (O(hosts + vms)), never per VM in the search.
 */
#ifndef LE_CORE_PLAN_H
#define LE_CORE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cluster.h"
#include "core/risk.h"

struct plan_opts {
	int64_t now_ms;
	int max_per_round;   /* migrations this round, all hosts (default 4) */
	int max_per_host;    /* per host, in or out, in-flight included (default 2) */
	int64_t cooldown_ms; /* a VM that moved rests this long (default 300000) */
	double link_mbit;    /* migration bandwidth (default 1000) */
	double min_gain;     /* a move must remove at least this much source volume
	                        per second of migration (default 0.0005; 0 = off) */
	bool swaps;          /* try swaps (default true) */
	/* prevention (risk.h): a host whose risk exceeds risk_target gets the
	 * move that removes the most risk per second of migration, to a host
	 * whose risk stays under a quarter of the target (default 0.2; 0 = off) */
	double risk_target;
	struct risk_opts risk;
	double sample_s; /* seconds per sample, for the reasons' wording (0: "samples") */
	/* spread (default): relieve and prevent; pack: also consolidate VMs onto
	 * fewer hosts while every host's risk stays under risk_target, and report
	 * the hosts a plan empties (plan_result.emptied) */
	enum plan_objective { PLAN_SPREAD, PLAN_PACK } objective;
	/* resize in place before migrating (default true): a VM whose demand
	 * reaches its allocation gets more (up to max_vcpus / max_mem_mib) when
	 * its host has room; idle guests' free memory is reclaimed through the
	 * balloon to relieve a memory hotspot */
	bool resize;
};

void plan_opts_defaults(struct plan_opts *o);
const char *plan_objective_name(enum plan_objective o); /* "spread", "pack" */

enum plan_kind {
	PLAN_MOVE,        /* relieve a hotspot */
	PLAN_SWAP,        /* one half of a swap: two actions with the same swap id */
	PLAN_EVACUATE,    /* leave a host in maintenance */
	PLAN_PREVENT,     /* lower a host's risk before it is hot */
	PLAN_RESIZE,      /* change a VM's allocation on its own host (from == to) */
	PLAN_CONSOLIDATE, /* objective pack: move a VM off a host being emptied */
};
const char *plan_kind_name(enum plan_kind k);

struct plan_action {
	enum plan_kind kind;
	int vm, from, to; /* indexes into the cluster */
	int swap_id;      /* -1 unless kind == PLAN_SWAP; both halves share it, in order */
	int res;          /* the hot (or risky) resource this relieves; -1 for evacuation */
	double src_vol_before, src_vol_after, dst_vol_before, dst_vol_after;
	double cost_s; /* estimated migration time */
	double src_risk_before, src_risk_after, dst_risk_before, dst_risk_after;
	/* PLAN_RESIZE: the allocation before and after (equal when unchanged) */
	double vcpus_before, vcpus_after, mem_before, mem_after;
	char reason[256];
};

enum plan_why {
	WHY_NONE,
	WHY_NO_MOVABLE,  /* every VM on it is excluded, pinned, migrating or cooling down */
	WHY_NO_TARGET,   /* no host can take any of its VMs without a new hotspot */
	WHY_RULE,        /* affinity, anti-affinity or pinning rules block every target */
	WHY_ROUND_LIMIT, /* the round's migration limit was reached */
	WHY_HOST_LIMIT,  /* the host's migration limit was reached */
	WHY_COOLDOWN,    /* the VMs that would help moved recently */
	WHY_NOT_WORTH,   /* the moves that exist cost more than they gain */
	WHY_PARTIAL,     /* moves were planned but the hotspot is not fully relieved */
};
const char *plan_why_name(enum plan_why w);

struct plan_unresolved {
	int host;
	enum plan_why why;
	char reason[256];
};

struct plan_result {
	struct plan_action *actions;
	int nactions, cap_actions;
	struct plan_unresolved *unresolved;
	int nunresolved, cap_unresolved;
	int *overdemand; /* VMs whose demand exceeds their allocation */
	int noverdemand;
	double max_vol_before, max_vol_after; /* cluster's max host volume, projected */
	double *risk, *risk_after;            /* per host: its risk now and after the plan */
	int nrisky;                           /* hosts over the risk target now */
	int *emptied; /* objective pack: hosts left without VMs once the plan is done */
	int nemptied;
};

/* 0, -EINVAL (a VM on a host index out of range), -ENOMEM. The result is
 * owned by the caller: plan_result_free(). */
int plan_compute(const struct cluster *c, const struct plan_opts *o, struct plan_result *out);
void plan_result_free(struct plan_result *r);

/* Placement of a new VM (its host field is ignored). The checks, in this
 * order: the host's state and the operator's rules, then the hard limits
 * (memory capacity), then the soft ones (CPU overcommit, threshold and
 * headroom), which an operator may force past (place_block_soft()). */
enum place_block {
	PLACE_OK,
	PLACE_DOWN,        /* host down */
	PLACE_MAINTENANCE, /* host in maintenance */
	PLACE_EXCLUDED,    /* host excluded by the operator */
	PLACE_PIN,         /* not among the VM's pinned hosts */
	PLACE_ANTI,        /* holds a member of the VM's anti-affinity group */
	PLACE_AFFINITY,    /* the VM's affinity group lives on another host */
	PLACE_OVERCOMMIT,  /* vCPUs (soft) or memory (hard) allocated beyond the overcommit ratio */
	PLACE_THRESHOLD,   /* the VM's demand would push a resource over threshold/headroom */
	PLACE_CAPACITY,    /* the VM's memory demand would pass the host's memory (hard) */
};
#define PLACE_NBLOCKS (PLACE_CAPACITY + 1)
const char *place_block_name(enum place_block b);

/* The figures behind a host's block, in the units of its resource (cores,
 * MiB, Mbit/s; vCPUs and MiB for an allocation): the host carries `have`,
 * the VM adds `need`, and `have + need` passes `limit` (the threshold, the
 * headroom, cap x overcommit, or the capacity). */
struct place_why {
	double have, need, limit;
};

struct place_result {
	int host;                /* chosen host index, -1 when none fits */
	double vol_after;        /* its projected volume */
	enum place_block *block; /* per host: why it was not feasible (PLACE_OK if it was) */
	int *block_res;        /* per host: the resource over, for OVERCOMMIT/THRESHOLD/CAPACITY */
	struct place_why *why; /* per host: the figures of that block */
	char reason[256];
};

/* 0, -ENOMEM. Caller frees with place_result_free(). */
int place_compute(const struct cluster *c, const struct cl_vm *vm, struct place_result *out);
void place_result_free(struct place_result *r);
/* True when host h is blocked only by a soft limit (CPU overcommit,
 * threshold, headroom): an operator may force the VM there. */
bool place_block_soft(const struct place_result *r, int h);
/* Why host h cannot take the VM, with the figures, e.g. "cpu 0.82 + 0.25
 * of the VM > 0.75 threshold (1.64 + 0.5 > 1.5 cores)"; "" when it can.
 * Returns out. */
char *place_why_text(const struct cluster *c, const struct place_result *r, int h, char *out,
                     size_t cap);

#endif
