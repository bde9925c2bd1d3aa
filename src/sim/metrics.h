/* metrics.h - what a simulated run is judged by (Beloglazov and Buyya, "Optimal
 * online deterministic algorithms and adaptive heuristics for energy and
 * performance efficient dynamic consolidation of virtual machines in cloud
 * data centers", CCPE 2012):
 *
 *  - overload time share (SLATAH): overloaded host-steps / active host-steps;
 *    a host is active in a step when a VM ran on it, overloaded when any
 *    resource's load (actual, time-averaged over the step, migration overhead
 *    included) is above its threshold. (The paper averages per-host ratios
 *    and counts 100 % CPU; saturation below counts demand over capacity,
 *    and the cpu share counts CPU alone.)
 *  - PDM: for each VM, the CPU it lost to migrations (pdm_factor, 10 %, of
 *    its CPU use for the seconds each migration ran) over the CPU it asked
 *    for in the whole run; averaged over all VMs.
 *  - SLAV = overload share * PDM.
 *  - unserved CPU share: the CPU VMs asked for above their allocation (the
 *    vCPUs they have, sim_config.vm_start_alloc) over all they asked for;
 *    resizes in place (loadease) that gave VMs more.
 *  - migrations started, hosts in use (mean active hosts per step), energy
 *    (CloudSim's G4/G5 power tables, idle hosts switched off), planning time.
 */
#ifndef LE_SIM_METRICS_H
#define LE_SIM_METRICS_H

#include "sim/model.h"

struct sim_metrics {
	int nvms, steps;
	long host_steps, over_steps, over_cpu_steps, sat_steps;
	long migrations, refused, resizes;
	double want_cs, unserved_cs; /* CPU core-seconds asked for, and not served */
	double *cd, *cr;             /* per VM: CPU core-seconds lost to migrations, requested */
	double energy_j;
	double plan_ms_sum, plan_ms_max;
	long plans;
	/* the last step */
	int step_over, step_sat, step_active, step_migrations;
	double step_plan_ms;
};

struct sim_summary {
	int steps;
	double overload_share, cpu_share, sat_share, pdm, slav;
	long migrations, refused, resizes;
	double unserved_share;
	double hosts_in_use, energy_kwh, downtime_s;
	double plan_ms_mean, plan_ms_max;
};

/* 0 or -ENOMEM. */
int metrics_init(struct sim_metrics *mt, int nvms);
void metrics_reset(struct sim_metrics *mt);
void metrics_free(struct sim_metrics *mt);
/* After model_step(): counts the step. */
void metrics_step(struct sim_metrics *mt, const struct sim_model *m);
/* After a policy's decision: its time and the migrations it started or had
 * refused by the model. */
void metrics_plan(struct sim_metrics *mt, double plan_ms, int started, int refused, int resized);
void metrics_summary(const struct sim_metrics *mt, const struct sim_model *m,
                     struct sim_summary *out);

#endif
