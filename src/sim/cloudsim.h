/* cloudsim.h - `loadease sim --model cloudsim`: CloudSim 3.0.3's PlanetLab
 * power experiments (org.cloudbus.cloudsim.examples.power.planetlab),
 * re-implemented event for event so that its four consolidation policies
 * reproduce CloudSim's own figures, and so that other policies can be judged
 * in CloudSim's world (see docs/sim-cloudsim.md for the mapping to CloudSim's
 * classes).
 *
 * The world (CloudSim's Constants, Helper, PlanetLabHelper):
 *  - hosts: host i is an HP ProLiant ML110 G4 (2 PEs x 1860 MIPS) when i is
 *    even, a G5 (2 x 2660) when odd; 4096 MB, 1 Gbit/s; power from their
 *    SPECpower tables, linear between 10 % points (cs_power()).
 *  - VMs: 1 PE; VM i has type i / ceil(N / 4) (cs_vm_type()): 2500 MIPS /
 *    870 MB, 2000 / 1740, 1000 / 1740, 500 / 613; 100 Mbit/s. Its request at
 *    time t is its trace's utilisation, interpolated linearly at t between
 *    the 300-s samples (cs_utilization()), times its MIPS.
 *  - time: VMs are placed at 0, the data centre updates at 300.1, 600.1, ...
 *    (accumulated in double as CloudSim does) up to the last before
 *    samples x 300 s, and at every migration's end. Every update recomputes
 *    every host's allocation (VmSchedulerTimeSharedOverSubscription: each
 *    VM capped at one PE; all scaled down, floored, when they do not fit),
 *    its energy since the last update (linear between the two utilisations;
 *    nothing when the host was idle before: idle hosts are off), and
 *    removes the VMs that request 0 MIPS and are not migrating (they leave
 *    for good: cs_vm_leaves()).
 *  - RAM and bandwidth count only at the initial placement (strict, as
 *    configured); afterwards a VM requests none, so migrations never check
 *    memory. Configured RAM still picks MMT's VM and sets a migration's
 *    duration: RAM / (host bandwidth / 16000) s (cs_migration_seconds()).
 *  - during a migration the source allocates the VM 90 % of its request
 *    (it still counts the whole as its utilisation); the destination
 *    counts its whole request but allocates 10 %, so it is in SLA violation
 *    for the migration's duration.
 *
 * Metrics (CloudSim's Helper.printResults):
 *  - energy: the sum over updates and hosts, kWh.
 *  - SLATAH: over every host's state history (one entry per update), the
 *    time it was active (allocated MIPS > 0) with allocated < requested
 *    MIPS, over all its active time.
 *  - PDM: the MIPS x time a VM lacked while migrating out (request minus
 *    allocation), over all MIPS x time requested; SLAV = SLATAH x PDM; ESV
 *    = energy x SLAV.
 *  - migrations (counted when started), host shutdowns (entries where a
 *    host goes from active to inactive; a host is taken as active before
 *    its first entry, so hosts idle at 300.1 count once).
 *
 * Policies (struct cs_policy_ops below): after each 300-s update the policy
 * decides which VMs go where. It sees the whole model (hosts, their VM
 * lists in CloudSim's order, every VM's request, allocation and utilisation
 * history, migrations in flight, hosts on and off) and may try placements
 * with cs_plan_add() / cs_plan_remove(); when decide() returns, the model
 * puts every host back as it was (CloudSim's saveAllocation /
 * restoreAllocation) and starts the returned migrations in order.
 * CloudSim's four (cloudsim_policy.c) are instances of it.
 *
 * Writing a policy: fill a struct cs_policy_ops, add it to cs_policy_list
 * (cloudsim_policy.c), and --policy finds it. What decide() may read, all
 * as of the update at m->clock: per host, its VM list hosts[h].v[0..n)
 * (each slot's requested and allocated MIPS), cs_host_util() (0: switched
 * off), cs_host_alloc_mips(), cs_host_req_mips(), cs_host_history(), its
 * VMs migrating in (in[0..nin)); per VM, req, mips, ram, hist[0..nhist)
 * (newest first), home, migrating, gone, cs_vm_alloc(); the migrations in
 * flight migs[0..nmigs). It changes nothing but through cs_plan_add() and
 * cs_plan_remove(), and may use the scratch arrays. cs_find_host() is
 * CloudSim's power-aware best fit with a policy's own over-utilisation test.
 */
#ifndef LE_SIM_CLOUDSIM_H
#define LE_SIM_CLOUDSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "sim/trace.h"

struct sim_config;

#define CS_HISTORY   30 /* PowerVm.HISTORY_LENGTH */
#define CS_VM_TYPES  4
#define CS_INTERVAL  300.0 /* Constants.SCHEDULING_INTERVAL */
#define CS_START     0.1   /* cloudlets submitted; the first update is at 300.1 */
#define CS_HOST_RAM  4096  /* MB */
#define CS_HOST_BW   1000000L
#define CS_VM_BW     100000L
#define CS_MAX_HOSTS 100000

/* The knobs of CloudSim's four policies (RunnerAbstract's "parameter"). */
struct cs_config {
	int nhosts;          /* 800 (PlanetLabConstants.NUMBER_OF_HOSTS) */
	double thr;          /* thr-mmt: static utilisation threshold (0.8) */
	double lr_safety;    /* lr-mmt: safety parameter (1.2) */
	double mad_safety;   /* mad-mmt (2.5) */
	double iqr_safety;   /* iqr-mmt (1.5) */
	double fallback_thr; /* lr, mad, iqr with short histories: static threshold (0.7) */
	/* loadease: the sim's loadease options (cloudsim_loadease.c); NULL: none */
	const struct sim_config *le;
};
void cs_config_defaults(struct cs_config *c);

/* A VM in a host's list (CloudSim's Host.vmList), with that host's
 * scheduler entries for it: the request it was allocated for
 * (mipsMapRequested) and what it got (mipsMap). */
struct cs_slot {
	int vm;
	double reqd, alloc;
};

struct cs_host {
	int type; /* 0 G4, 1 G5 */
	double pe_mips, total_mips;
	struct cs_slot *v; /* the VM list, in CloudSim's order */
	int n, cap;
	int *in; /* VMs migrating in (Host.vmsMigratingIn), in order */
	int nin, capin;
	double avail;     /* the scheduler's available MIPS */
	double util_mips; /* allocated MIPS at the last update (host utilisation) */
	int ram_used;     /* initial placement only */
	long bw_used;
	/* caches for the policies, rebuilt when the list or the histories change */
	bool cache_ok;
	double req_sum;          /* requested MIPS of the list, summed in its order */
	double hist[CS_HISTORY]; /* PowerHostUtilizationHistory.getUtilizationHistory */
	int hist_n;              /* its length after trimming the zero tail (>= 1) */
	int max_ram;             /* largest configured RAM in the list */
	/* state history, folded as it comes */
	bool has_entry, entry_active, prev_active;
	double entry_t, entry_alloc, entry_req;
	double time_active, time_violated;
	long shutdowns;
};

struct cs_vm {
	int type, ram; /* MB */
	double mips;
	const double *u; /* utilisation per sample, nsamples + 1 (the last repeated) */
	int home;        /* host it is allocated on (vmTable); -1 before placement and once gone */
	bool migrating;  /* Vm.isInMigration() */
	bool gone;       /* left: requested 0 MIPS while not migrating */
	bool moved;      /* got a migration in the current decision */
	double req;      /* requested MIPS at the last update */
	double hist[CS_HISTORY]; /* utilisation at each 300-s update, newest first */
	int nhist;
	double hist_t; /* PowerVm.previousTime */
	/* state history, folded as it comes */
	bool has_entry, entry_mig;
	double entry_t, entry_alloc, entry_req;
	double mips_s_req, mips_s_mig; /* requested MIPS x s; lacked while migrating */
};

struct cs_mig {
	int vm, to;
	double end; /* simulated time it completes */
	long seq;   /* start order (CloudSim's event serial) */
};

struct cs_summary {
	int hosts, vms, vms_left;
	double energy_kwh, slatah, pdm, slav, esv;
	long migrations, host_shutdowns, updates, refused;
	double plan_ms_mean, plan_ms_max;
};

struct cs_model {
	const struct cs_config *cfg;
	char name[64]; /* the trace's */
	int nhosts, nvms, nsamples;
	struct cs_host *hosts;
	struct cs_vm *vms;
	double *u; /* nvms x (nsamples + 1) */
	double clock, last_process, limit;
	struct cs_mig *migs; /* in flight, sorted by (end, seq) */
	int nmigs, capmigs;
	long seq, migrations, updates, refused;
	double energy_ws;
	/* inside decide(); inside place() (RAM and bandwidth count) */
	bool planning, placing;
	struct cs_slot **saved;
	int *nsaved;
	/* scratch for the policies, nhosts / nvms long, free to use in decide */
	char *hmark, *hmark2;
	int *vtmp, *htmp;
	double *dtmp;
};

/* ---- the pieces, pure ------------------------------------------------------ */

/* VM i's type of n VMs (Helper.createVmList): i / ceil(n / 4). */
int cs_vm_type(int i, int n);
extern const double cs_vm_mips[CS_VM_TYPES];
extern const int cs_vm_ram[CS_VM_TYPES];
/* Power (W) of host type 0 (G4) or 1 (G5) at utilisation u in [0, 1]
 * (PowerModelSpecPower.getPower); u is clamped to [0, 1]. */
double cs_power(int type, double u);
/* Energy (W s) of a host going from utilisation u0 to u1 over dt seconds
 * (PowerHost.getEnergyLinearInterpolation): 0 when u0 is 0. */
double cs_energy(int type, double u0, double u1, double dt);
/* Migration time (s) of a VM with ram MB to a host with bw (kbit/s as
 * CloudSim counts it): ram / (bw / 16000), 9.808, 13.92 or 27.84 s here. */
double cs_migration_seconds(int ram, long bw);
/* Utilisation at time t of samples u[0..n] (UtilizationModelPlanetLabInMemory). */
double cs_utilization(const double *u, double t);
/* The update (k >= 1, time 300 k + 0.1) at which a VM with samples u[0..n]
 * leaves if it never migrates: the first k >= 1 with u[k] and u[k+1] both
 * 0; -1 if none before n. */
int cs_vm_leaves(const double *u, int n);

/* ---- the model ----------------------------------------------------------------- */

/* Builds the hosts and VMs from trace t (its CPU utilisation; a whole-number
 * percent is taken exactly as CloudSim reads it). 0 or a negative errno with
 * err set. The model keeps cfg. */
int cs_model_init(struct cs_model *m, const struct cs_config *cfg, struct trace *t, char *err,
                  size_t errcap);
void cs_model_free(struct cs_model *m);

/* Utilisation of host h at its last update (HostDynamicWorkload.
 * getUtilizationOfCpu): allocated / total MIPS, 1 when just over 1. A host
 * at 0 is switched off. */
double cs_host_util(const struct cs_model *m, int h);
/* Allocated MIPS of host h now, a VM migrating in counted at its whole
 * request (PowerVmAllocationPolicyMigrationAbstract.getUtilizationOfCpuMips);
 * includes tentative placements. */
double cs_host_alloc_mips(const struct cs_model *m, int h);
/* Requested MIPS of h's VMs, plus VM extra's if extra >= 0 (as if it were
 * added last); summed in list order. */
double cs_host_req_mips(struct cs_model *m, int h, int extra);
/* h's utilisation history (PowerHostUtilizationHistory), with VM extra
 * added last if extra >= 0: into out[CS_HISTORY], newest first; returns its
 * length once the zero tail is trimmed (at least 1, as MathUtil's). */
int cs_host_history(struct cs_model *m, int h, int extra, double *out);
/* Largest configured RAM among h's VMs and extra's (INT_MIN when none). */
int cs_host_max_ram(struct cs_model *m, int h, int extra);
/* Would host h take VM v now (Host.isSuitableForVm): v's request within one
 * PE and the host's available MIPS (and, at the initial placement, RAM and
 * bandwidth)? */
bool cs_host_suitable(const struct cs_model *m, int h, int v);
/* MIPS allocated to VM v on its host (on the source while it migrates). */
double cs_vm_alloc(const struct cs_model *m, int v);
/* Is v in h's list of VMs migrating in? */
bool cs_host_migrating_in(const struct cs_model *m, int h, int v);

/* Planning, only inside decide() (not place()): put VM v on host h's list
 * (Host.vmCreate) or take it off (Host.vmDestroy); the allocations follow.
 * 0, or -EINVAL (bad index, already there / not there). */
int cs_plan_add(struct cs_model *m, int h, int v);
int cs_plan_remove(struct cs_model *m, int h, int v);

/* ---- policies ------------------------------------------------------------------ */

struct cs_move {
	int vm, to;
};
struct cs_moves {
	struct cs_move *v;
	int n, cap;
};
/* 0 or -ENOMEM. */
int cs_moves_add(struct cs_moves *mv, int vm, int to);
void cs_moves_free(struct cs_moves *mv);

struct cs_policy_ops {
	const char *name;
	const char *about; /* one line for --help */
	/* 0 or a negative errno; *state is the policy's, freed by free_state
	 * (also when init fails: free_state takes what it set, or NULL). */
	int (*init)(void **state, const struct cs_model *m);
	/* The host for VM v at the initial placement (time 0; v requests its
	 * full MIPS, the VMs placed before it none), or -1 when none fits; the
	 * model puts it there. */
	int (*place)(void *state, struct cs_model *m, int v);
	/* After each 300-s update (m->clock): appends the migrations to start,
	 * in order. May use cs_plan_add/remove; the model undoes them. Moves of
	 * a VM already migrating, gone, or to its own host are refused. 0 or a
	 * negative errno. */
	int (*decide)(void *state, struct cs_model *m, struct cs_moves *out);
	void (*free_state)(void *state);
};

extern const struct cs_policy_ops cs_policy_thr_mmt, cs_policy_lr_mmt, cs_policy_mad_mmt,
    cs_policy_iqr_mmt;
/* LoadEase's planner in this world (cloudsim_loadease.c); needs cs_config.le. */
extern const struct cs_policy_ops cs_policy_loadease;
/* The model's policies, in report order; NULL terminated. */
extern const struct cs_policy_ops *const cs_policy_list[];
const struct cs_policy_ops *cs_policy_find(const char *name);

/* CloudSim's findHostForVm(vm, excludedHosts) (power-aware best fit): among
 * the hosts not marked in excluded (may be NULL) that are suitable and, when
 * they have allocated MIPS, not over-utilised with v added (over(ctx, m, h,
 * v)), the one whose power rises least; -1 if none. */
typedef bool (*cs_over_fn)(void *ctx, struct cs_model *m, int h, int extra);
int cs_find_host(struct cs_model *m, int v, const char *excluded, cs_over_fn over, void *ctx);

/* ---- running ------------------------------------------------------------------- */

/* Runs policy p over the whole trace from a fresh model state (placement
 * included). Writes a CSV row per 300-s update to steps (may be NULL; no
 * header): time, migrations started then, in all, hosts switched on after
 * them, VMs not gone, energy so far (W s). 0 or a negative errno with err
 * set. */
int cs_run(struct cs_model *m, const struct cs_policy_ops *p, FILE *steps, struct cs_summary *out,
           char *err, size_t errcap);
#define CS_STEPS_HEADER "time,migrations,total_migrations,active_hosts,vms,energy_ws\n"

#endif
