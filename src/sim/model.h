/* model.h - the simulated cluster: hosts with capacities, VMs with sizes on
 * them, each step's utilisation from a trace, and live migrations in flight
 * with their cost (duration from memory size and bandwidth, extra CPU on
 * both hosts while they run, downtime at the switch-over).
 *
 * Time: step t covers [t * step_s, (t + 1) * step_s). model_step() plays one
 * step; the policies decide after it, and the migrations they start run from
 * the beginning of the next step (plus their start offset). A host's load in
 * a step is the time average of what ran on it: a migrating VM counts on its
 * source until the migration ends and on its destination after, and both
 * hosts carry mig_cpu extra cores while the migration runs.
 */
#ifndef LE_SIM_MODEL_H
#define LE_SIM_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/cluster.h"
#include "sim/trace.h"

#define SIM_MAX_SIZES 8

struct sim_config {
	uint64_t seed;
	int nhosts;
	double host_cap[RES_N];         /* cores, MiB, Mbit/s */
	double thr[RES_N];              /* hotspot and overload threshold, fraction (0.75) */
	double overcommit_cpu;          /* vCPUs per core a host may hold (4) */
	double overcommit_mem;          /* MiB allocated per MiB of memory (1) */
	double vm_vcpus[SIM_MAX_SIZES]; /* sizes drawn (seeded) for VMs whose trace gives none */
	int nvm_vcpus;
	double vm_mem[SIM_MAX_SIZES];
	int nvm_mem;
	double link_mbit;  /* migration bandwidth (1000) */
	double dirty_mbit; /* every VM's memory dirty rate (0) */
	double mig_cpu;    /* extra cores on source and destination during a migration (0.1) */
	double downtime_s; /* a VM's pause at the switch-over (0.3) */
	double pdm_factor; /* PDM: share of a VM's CPU lost while it migrates (0.1) */
	int place_shard;   /* hosts per placement shard, 0 = auto (see model_place) */
	/* resize in place: every VM starts with this share of its size's vCPUs
	 * (at least one; 1 = its size, nothing to grow into); what it asks
	 * above its allocation is not served (sim_summary.unserved_share) */
	double vm_start_alloc;
	bool resize;  /* loadease may resize VMs in place, up to their size (true) */
	bool explain; /* loadease prints its plans' actions and refusals to stderr */
	/* loadease */
	int window, k, n;
	double peak_pct;
	double cooldown_s;
	int max_per_round, max_per_host;
	double min_gain;
	bool swaps;
	double risk_target; /* prevention: a host's risk that triggers a move (0.2; 0 off) */
	int risk_horizon;   /* samples ahead (1) */
	bool pack;          /* objective pack: consolidate under the risk target (spread) */
	/* baselines */
	double proxlb_balanciness; /* percentage points (10) */
	double stddev_threshold;   /* per metric (0.1) */
	double thr_mmt;            /* CloudSim static threshold (0.8) */
};
void sim_config_defaults(struct sim_config *c);

struct sim_host {
	double cap[RES_N];
	int power; /* power model: 0 HP ProLiant ML110 G4, 1 G5 (CloudSim) */
};

struct sim_vm {
	double vcpus, mem_mib; /* allocation */
	double size_vcpus;     /* its size: what the trace's CPU percent is of, and its
	                          maximum for a resize */
	double init_vcpus;     /* allocation at the start (cfg.vm_start_alloc) */
	int host;              /* where it runs; a migrating VM: its source */
	int mig;               /* index into migs while migrating, else -1 */
	int64_t last_moved_ms; /* simulated time its last migration ended; 0 never */
};

struct sim_mig {
	int vm, from, to;
	double start_s, end_s; /* relative to the start of the current step */
	double dur_s;
};

/* What a migration did in the last step, for the metrics. */
struct sim_mig_run {
	int vm;
	double secs; /* seconds of the step it ran */
};

struct sim_model {
	const struct sim_config *cfg;
	struct trace *trace;
	int nhosts, nvms;
	int step; /* the last step played, -1 before the first */
	double step_s;
	struct sim_host *hosts;
	struct sim_vm *vms;
	int *init_host;
	/* VMs per host (by index, ascending), allocation sums */
	int *head, *next, *prev, *count;
	double *acpu, *amem;
	/* the last step */
	double (*hload)[RES_N]; /* host load (cores, MiB, Mbit/s), migration overhead included */
	double (*vload)[RES_N]; /* VM demand in the same units, as served: CPU at most
	                           its allocation */
	double *vwant;          /* VM CPU demand before that cap, cores */
	bool *active;           /* a VM ran on it during the step */
	int *inflight;          /* migrations into or out of it still running after the step */
	struct sim_mig *migs;
	int nmigs, cap_migs;
	struct sim_mig_run *ran;
	int nran, cap_ran;
	int completed; /* migrations that ended in the step */
	double downtime_s;
};

/* 0 or a negative errno with err set. Builds the hosts (capacities from cfg;
 * power model G4/G5 alternating, as CloudSim's setup) and the VMs (sizes
 * from the trace, else drawn from cfg's size lists with cfg->seed). The
 * model keeps pointers to cfg and t. */
int model_init(struct sim_model *m, const struct sim_config *cfg, struct trace *t, char *err,
               size_t errcap);
void model_free(struct sim_model *m);

/* Initial placement, through the core's place_compute(), in trace order.
 * The cluster is already running: each VM's demand is what round_vm() makes
 * of one sample, the trace's first step (the controller's view of a VM it
 * measured once; a VM never measured would count half its vCPUs busy and
 * allow at most 3 one-vCPU VMs on a 2-core host at 75 %).
 * place_compute() costs O(hosts + VMs) per VM: the VMs placed so far are
 * passed as one pseudo-VM per host carrying its allocation (the same
 * answer, no rules here), and when hosts * VMs exceeds MODEL_PLACE_BUDGET
 * (or cfg->place_shard is set) the hosts are split into shards of
 * MODEL_PLACE_BUDGET / VMs hosts (at least 100), VM i going to shard i mod
 * shards. Below the budget it is exactly the controller's placement.
 * -ENOSPC when a VM fits nowhere (err says which and why). */
#define MODEL_PLACE_BUDGET 5e7
int model_place(struct sim_model *m, char *err, size_t errcap);

/* Back to the initial placement, no migration, before step 0. */
void model_reset(struct sim_model *m);

/* Plays the next step. 0, or -ERANGE after the trace's last step. */
int model_step(struct sim_model *m);

/* Starts migrating VM v to host to, start_s seconds after the beginning of
 * the next step. 0; -EINVAL (bad index, same host), -EBUSY (migrating),
 * -ENOSPC (the destination's allocation would pass its overcommit),
 * -ERANGE (dirty rate >= link: it would not converge), -ENOMEM. */
int model_migrate(struct sim_model *m, int v, int to, double start_s);

/* Migration time of VM v (cluster_migration_seconds); < 0: never converges. */
double model_mig_seconds(const struct sim_model *m, int v);

/* Would host h, holding acpu vCPUs and amem MiB, take VM v within its
 * overcommit ratios? (The hard limit every policy respects.) */
/* Resize in place: VM v gets `vcpus` (an integer from its current
 * allocation up to its size); 0, -EINVAL, -EBUSY (migrating), -ENOSPC (its
 * host's overcommit). */
int model_resize(struct sim_model *m, int v, double vcpus);

bool model_alloc_fits(const struct sim_model *m, int h, double acpu, double amem, int v);

/* Power draw of host h at cpu utilisation u (0..1), watts: CloudSim's
 * SPECpower tables, linear between 10 % points. */
double model_power(const struct sim_model *m, int h, double u);

#endif
