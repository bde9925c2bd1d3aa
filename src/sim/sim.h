/* sim.h - `loadease sim`: replays workload traces through LoadEase's planner
 * and the baselines, on identical copies of one initial placement, and
 * reports per policy the overload time share, PDM, SLAV, migrations, hosts
 * in use and planning time (see metrics.h).
 */
#ifndef LE_SIM_SIM_H
#define LE_SIM_SIM_H

#include <stdbool.h>
#include <stdio.h>

#include "sim/cloudsim.h"
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

/* Helpers of sim.c that sim_cloudsim.c shares: a monotonic clock (s); DIR/
 * FILE opened for writing into path (NULL with the reason on stderr);
 * picked[n] = name unless it is there already or n == max (-EINVAL, the
 * reason on stderr). */
double sim_mono_s(void);
FILE *sim_open_out(const char *dir, const char *file, char *path, size_t cap);
int sim_pick_add(const char **picked, int n, int max, const char *name);

/* --model cloudsim (sim_cloudsim.c). The policies named in s ("all" or a
 * comma list) into ps: their count, or -EINVAL with the reason on stderr. */
int sim_cloudsim_pick(const char *s, const struct cs_policy_ops **ps, int max);
/* Sets policy p's CloudSim parameter (--param) in c; -EINVAL when out of
 * range, with the reason on stderr. */
int sim_cloudsim_param(const struct cs_policy_ops *p, double x, struct cs_config *c);
/* Runs ps[0..np) on trace t in the CloudSim model and prints the table and
 * one RESULT line per policy; outdir (may be NULL) gets steps-<policy>.csv
 * and summary.csv. The exit status: 0, or 1 when a run failed. */
int sim_cloudsim(struct trace *t, const struct cs_config *cfg, const struct cs_policy_ops **ps,
                 int np, const char *outdir, bool quiet);

#endif
