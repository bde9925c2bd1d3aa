/* policy.h - the balancing policies the simulator compares, each deciding
 * after every step which VMs to migrate where:
 *
 *   none      initial placement only
 *   loadease  ours: profiles, round_host/round_vm and plan_compute from the
 *             core, exactly as the controller runs them (policy.c)
 *   proxlb    ProxLB's balanciness rule (policy_proxlb.c)
 *   stddev    OpenStack Watcher's workload_stabilization (policy_stddev.c)
 *   thr-mmt   CloudSim's static threshold + minimum migration time
 *             (policy_thr.c)
 *
 * A policy sees the model after model_step(): the step's host loads and VM
 * demands, allocations, VMs per host, migrations in flight. It may keep state
 * between steps. Every baseline respects the model's hard limit (allocation
 * within overcommit, model_alloc_fits) and skips VMs that are migrating.
 */
#ifndef LE_SIM_POLICY_H
#define LE_SIM_POLICY_H

#include "sim/model.h"

struct sim_move {
	int vm, to;
	double start_s; /* seconds after the next step begins */
	double vcpus;   /* > 0: not a migration but a resize in place to this many */
};

struct sim_moves {
	struct sim_move *v;
	int n, cap;
};
/* 0 or -ENOMEM. */
int moves_add(struct sim_moves *mv, int vm, int to, double start_s);
/* A resize in place of vm to vcpus (model_resize); 0 or -ENOMEM. */
int moves_add_resize(struct sim_moves *mv, int vm, double vcpus);
void moves_free(struct sim_moves *mv);

struct policy_ops {
	const char *name;
	const char *about; /* one line for --help */
	/* 0 or a negative errno; *state is the policy's, freed by free_state */
	int (*init)(void **state, const struct sim_model *m);
	/* May be NULL. Takes in the step's measurements (what agents do between
	 * rounds); not counted in the planning time. 0 or a negative errno. */
	int (*observe)(void *state, const struct sim_model *m);
	/* Appends this step's migrations to out. 0 or a negative errno. */
	int (*decide)(void *state, const struct sim_model *m, struct sim_moves *out);
	void (*free_state)(void *state);
};

extern const struct policy_ops policy_none, policy_loadease, policy_proxlb, policy_stddev,
    policy_thr_mmt;

/* All policies, in report order; NULL terminated. */
extern const struct policy_ops *const policy_list[];
const struct policy_ops *policy_find(const char *name);

#endif
