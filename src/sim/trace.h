/* trace.h - workload traces for the simulator: for every VM and every step,
 * its utilisation of cpu (fraction of its vCPUs), memory (fraction of its
 * configured memory) and network (Mbit/s).
 *
 * Sources: the PlanetLab traces shipped with CloudSim (a folder, one file per
 * VM, one CPU percent per line), the Google cluster VM traces (a folder, one
 * file per VM, "cpu mem" percent per line; memory may exceed 100 %, up to
 * 1000: Google normalises usage by the request), a CSV of the user's own
 * (header + one row per VM and step) and a synthetic AR(1) generator (the
 * workload model of the Sandpiper paper's simulations).
 *
 * Every malformed input is refused with "FILE:LINE: reason". Limits: lines
 * of TRACE_MAX_LINE bytes, TRACE_MAX_VMS VMs, TRACE_MAX_STEPS steps and
 * TRACE_MAX_SAMPLES samples (VMs * steps) per trace.
 */
#ifndef LE_SIM_TRACE_H
#define LE_SIM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/cluster.h"

#define TRACE_MAX_LINE    4096
#define TRACE_MAX_VMS     1000000
#define TRACE_MAX_STEPS   100000
#define TRACE_MAX_SAMPLES 100000000L /* stored traces: 1.2 GB of floats */
#define TRACE_STEP_S      300.0      /* every source here is one sample per 5 minutes */

/* The synthetic AR(1) workload: per VM and resource a mean drawn uniformly in
 * [lo, hi], then x[t] = mean + phi * (x[t-1] - mean) + N(0, sigma), clamped
 * to [0, 1]; x[0] = mean. cpu and mem are fractions of the VM's size, net a
 * fraction of net_scale Mbit/s. mem and net use sigma / 4 (they move more
 * slowly than cpu). Samples are a pure function of (seed, vm, step,
 * resource), generated step by step, so a run needs no storage per step. */
struct trace_synth {
	int nvms, nsteps;
	uint64_t seed;
	double lo[RES_N], hi[RES_N];
	double phi, sigma;
	double net_scale; /* Mbit/s of a net utilisation of 1 */
};
void trace_synth_defaults(struct trace_synth *s);

struct trace {
	char name[64]; /* e.g. "planetlab-20110303" */
	int nvms, nsteps;
	double step_s;
	char (*ids)[CLUSTER_ID_MAX]; /* per VM; NULL: "vm<index>" */
	double *vcpus, *mem_mib;     /* per VM size; 0 when the trace does not give it */
	float *data;                 /* stored traces: nsteps * nvms * RES_N, step-major */
	/* synthetic traces */
	bool synthetic;
	struct trace_synth syn;
	double *mean, *x; /* nvms * RES_N */
	float *buf;       /* one step */
	int cur;          /* step held in buf, -1 none */
};

/* Loaders: 0, or a negative errno with the reason in err ("FILE:LINE: ...").
 * The trace is owned by the caller: trace_free(). */
int trace_load_planetlab(struct trace *t, const char *dir, char *err, size_t errcap);
int trace_load_google(struct trace *t, const char *dir, char *err, size_t errcap);
/* CSV: '#' comment lines; a header naming the columns, in any order: step,
 * vm, cpu (required), mem, net, vcpus, mem_mib (optional); then one row per
 * VM and step. cpu and mem are percent (0-100) of the VM's vCPUs and memory,
 * net Mbit/s. Missing mem = 100 %, missing net = 0. vcpus and mem_mib give
 * the VM's size (constant per VM). Every VM needs every step 0..S-1 once. */
int trace_load_csv(struct trace *t, const char *path, char *err, size_t errcap);
int trace_synthetic(struct trace *t, const struct trace_synth *s, char *err, size_t errcap);
void trace_free(struct trace *t);

/* The utilisation of every VM at step (nvms * RES_N floats, VM-major: cpu
 * fraction, mem fraction, net Mbit/s), valid until the next call. A
 * synthetic trace generates steps in order: step must be 0 (restart) or the
 * step after the last one. NULL when step is out of range or out of order. */
const float *trace_step(struct trace *t, int step);

/* The VM's id into out (CLUSTER_ID_MAX bytes). */
void trace_vm_id(const struct trace *t, int v, char *out);

/* Pure line parsers (no newline in s). 0, or -EINVAL with *why set. */
int trace_parse_planetlab_line(const char *s, size_t len, double *cpu, const char **why);
int trace_parse_google_line(const char *s, size_t len, double *cpu, double *mem, const char **why);

#endif
