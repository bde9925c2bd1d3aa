/* sim.h - `loadease sim`: replays workload traces through LoadEase's planner
 * and the baselines, on identical copies of one initial placement, and
 * reports per policy the overload time share, PDM, SLAV, migrations, hosts
 * in use and planning time (see metrics.h).
 */
#ifndef LE_SIM_SIM_H
#define LE_SIM_SIM_H

#include <stdbool.h>
#include <stdio.h>

#include "sim/metrics.h"
#include "sim/model.h"
#include "sim/policy.h"

/* Runs policy p over the whole trace from the model's initial placement
 * (model_place() done). Writes one CSV row per step to steps (may be NULL;
 * no header): step,policy,overloaded_hosts,overload_share,migrations,
 * active_hosts,plan_ms - every column but plan_ms is deterministic. Progress
 * on stderr when progress is set and the run is long. *wall_s (may be NULL)
 * gets the run's wall-clock time. 0 or a negative errno with err set. */
int sim_run(struct sim_model *m, const struct policy_ops *p, FILE *steps, bool progress,
            struct sim_summary *out, double *wall_s, char *err, size_t errcap);

#define SIM_STEPS_HEADER                                                                           \
	"step,policy,overloaded_hosts,overload_share,migrations,active_hosts,plan_ms\n"

int sim_main(int argc, char **argv);

#endif
