/* cluster.h - the cluster as the planner sees it: hosts with capacities,
 * thresholds and measured peak loads; VMs with allocations, peak demands and
 * operator rules. Plain structs filled by the caller (controller, simulator,
 * tests); the planner never keeps pointers into them past a call.
 *
 * Units: cpu in cores, mem in MiB, net in Mbit/s (enum le_res order).
 * Utilisation = load / capacity.
 */
#ifndef LE_CORE_CLUSTER_H
#define LE_CORE_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/profile.h"

#define CLUSTER_ID_MAX 65

enum host_state { HOST_UP, HOST_DOWN, HOST_MAINTENANCE };

/* A VM's automation level (as VMware DRS has): what the balancer may do
 * with it. auto: the planner moves and resizes it and the controller acts;
 * manual: the planner proposes its moves and resizes, the controller only
 * recommends them (an operator acts); off: the planner never moves or
 * resizes it (its load still counts on its host). */
enum cl_automation { CL_AUTO = 0, CL_MANUAL, CL_OFF };
#define CL_AUTOMATION_N 3
/* "auto", "manual", "off"; "?" out of range. */
const char *cluster_automation_name(int a);
/* The level named s, or -1. */
int cluster_automation_parse(const char *s);

struct cl_host {
	char id[CLUSTER_ID_MAX];
	enum host_state state;
	bool excluded;          /* the operator keeps it out of balancing: no source, no target */
	double cap[RES_N];      /* capacity */
	double thr[RES_N];      /* hotspot threshold, fraction (default 0.75) */
	double headroom[RES_N]; /* fraction of capacity kept free on a target (default 0) */
	double overcommit_cpu;  /* allocated vCPUs may reach cap[cpu] * this (default 4) */
	double overcommit_mem;  /* allocated MiB may reach cap[mem] * this (default 1) */
	double load[RES_N];     /* measured peak demand (the profile's peak * cap); for a
	                           hot resource at least the level that made it hot (the
	                           controller uses max(peak, forecast)) */
	bool hot[RES_N];        /* detection: k of n samples and the forecast over thr */
	int inflight;           /* migrations in flight into or out of it */
	/* risk (risk.h), set by round_host: the forecast of the next sample(s)
	 * and the mean square of the forecast's errors, in the units above */
	bool risk_known; /* enough samples for a forecast */
	double fc[RES_N], ms[RES_N];
};

struct cl_vm {
	char id[CLUSTER_ID_MAX];
	int host;              /* index into the hosts */
	double vcpus, mem_mib; /* allocation */
	/* resize in place: the most the VM may be given on its own host (its
	 * domain's maximum vCPUs and memory); 0 = its allocation (not resizable) */
	double max_vcpus, max_mem_mib;
	double demand[RES_N];          /* peak demand (the configured percentile) */
	double dirty_mbit;             /* memory dirty rate, Mbit/s; 0 when unknown */
	bool excluded;                 /* never moved by the balancer */
	enum cl_automation automation; /* CL_AUTO unless the operator says otherwise */
	bool migrating;                /* a migration is in flight */
	int64_t last_moved_ms;         /* end of its last migration; 0 = never */
	int group;                     /* affinity group: members stay on one host; -1 none */
	int anti_group;                /* anti-affinity group: members on distinct hosts; -1 none */
	const int *pin;                /* allowed hosts (indexes); NULL/npin 0 = any */
	int npin;
	/* risk (risk.h), set by round_vm_risk: the VM's forecast and error mean
	 * square in its host's units (cores, MiB, Mbit/s), and the covariance of
	 * its errors with its host's */
	bool risk_known;
	double fc[RES_N], ms[RES_N], cov[RES_N];
};

struct cluster {
	struct cl_host *hosts;
	int nhosts;
	struct cl_vm *vms;
	int nvms;
};

/* Fills a host / VM with the defaults above (no rules, state up). */
void cluster_host_defaults(struct cl_host *h);
void cluster_vm_defaults(struct cl_vm *v);

/* Sandpiper's volume of a utilisation vector: 1/(1-cpu) * 1/(1-mem) *
 * 1/(1-net), each utilisation clamped to [0, CLUSTER_UTIL_CLAMP] so that a
 * saturated resource gives a large, finite volume. */
#define CLUSTER_UTIL_CLAMP 0.99
double cluster_volume(const double util[RES_N]);
/* The volume of loads on capacities (a resource without capacity counts 0). */
double cluster_load_volume(const double load[RES_N], const double cap[RES_N]);

/* What host h may carry of resource r as a target: under its threshold and
 * its headroom, in the units of cap. */
double cluster_host_limit(const struct cl_host *h, int r);

/* Migration time estimate (pre-copy): memory / (link - dirty rate), seconds;
 * a negative value when the dirty rate reaches the link (it would not
 * converge). */
double cluster_migration_seconds(double mem_mib, double dirty_mbit, double link_mbit);

#endif
