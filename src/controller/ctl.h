/* ctl.h - the controller's state, shared by its parts (internal).
 *
 * Threads: the loop thread owns the round (Redis reads, the model, the plan,
 * starting migrations); libmicrohttpd's threads serve the API; one worker
 * thread per running migration; one thread follows the events stream.
 * Everything below `lock` is read and written under it. Redis: the loop has
 * its own connection; everyone else shares `aux` under `aux_lock` (short
 * commands only); the events follower has its own.
 */
#ifndef LE_CONTROLLER_CTL_H
#define LE_CONTROLLER_CTL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"
#include "common/httpd.h"
#include "common/store.h"
#include "common/tls.h"
#include "core/cluster.h"
#include "core/plan.h"
#include "core/round.h"
#include "core/window.h"

#define CTL_ID_MAX 65
#define CTL_BY_MAX 96 /* "controller:<id>" or ctl_api_caller()'s "<role>@<address>" */

enum ctl_mode { MODE_OFF, MODE_RECOMMEND, MODE_AUTO };
extern const char *const ctl_mode_names[];
extern const char *const ctl_res_names[RES_N];

struct ctl_opts {
	char id[CTL_ID_MAX];
	char address[64];
	char listen[128];
	char advertise[128];
	char token[256], token_file[256];
	char read_token[256], read_token_file[256];
	bool open_reads;
	struct tls_opts tls;
	int mode;
	long long round_ms, lease_ms, down_after_ms, measure_after_ms, migrate_timeout_ms;
	char decision_log[512];
	char log_file[512];
	char web_root[512];
	long long events_maxlen;
	long long window;
	int log_level;
	struct store_opts redis;
	char redis_password_file[256];
	double peak_pct;
	double threshold[RES_N];
	long long k, n;
	long long max_per_round, max_per_host, cooldown_s, settle_s;
	double link_mbit, min_gain;
	double risk_target, sample_s;
	long long risk_horizon;
	bool swaps;
	bool resize;
	int objective; /* enum plan_objective: spread, pack */
	double headroom[RES_N];
	double overcommit_cpu, overcommit_mem;
};

extern const struct cfg_key ctl_cfg_keys[];

struct ctl_host {
	char id[CTL_ID_MAX];
	char ip[64];
	char api[128]; /* vmm_proxy_addr */
	char state[16];
	bool excluded;
	bool monitor_only; /* vm_enabled 0: no libvirt, never a migration source or target */
	bool down_by_us;   /* we set it down: we set it up when it reports again */
	double cap[RES_N];
	int64_t last_seen;
	struct profile prof[RES_N];
	char last_id[32]; /* newest ts:host entry read */
	double last[RES_N];
	bool has_last[RES_N];
	struct profile_summary sum[RES_N];
	bool hot[RES_N];      /* as last reported (events) */
	bool meas_hot[RES_N]; /* this round's k-of-n verdict on the samples */
	int64_t hot_since[RES_N];
	double volume;
	int nvms, inflight;
	int why; /* the unresolved reason last logged, WHY_NONE = none */
	bool seen;
	bool empty;   /* no VMs and none coming or going */
	bool had_vms; /* held a VM since this controller started */
};

struct ctl_vm {
	char id[CTL_ID_MAX];
	char host[CTL_ID_MAX];
	char state[24];
	double vcpus, mem_mib;
	double max_vcpus, max_mem_mib; /* its domain's maxima (max_cpu, max_mem); 0 unknown */
	int64_t resize_failed_ms;      /* our last resize of it failed then; 0 = never */
	int64_t resized_ms;            /* our last resize of it ended then; 0 = never */
	/* where it runs, as its host's agent registered it from libvirt */
	int64_t pid;
	char tap[32], uuid[40];
	bool managed; /* defined through LoadEase (else adopted: virsh, another tool) */
	char pin[512];
	char group[CTL_ID_MAX], anti_group[CTL_ID_MAX];
	bool exclude;
	int automation;     /* enum cl_automation */
	bool rules_runtime; /* the rules above are vm_rules:<vm>'s (ctl_runtime.c) */
	char rules_by[96];  /* who set them then */
	int64_t rules_ts;
	int64_t last_migration;
	bool migrating; /* a migration:<vm> record exists, or one of ours runs */
	char mig_src[CTL_ID_MAX], mig_dst[CTL_ID_MAX], mig_phase[24];
	int64_t mig_started;
	int64_t mig_data_done, mig_data_total; /* bytes, from the agent's progress */
	bool watched;          /* a migration we did not start: report where it ended */
	int64_t ours_ended_ms; /* one of ours ended then (a round read before may still show
	                          its record: not another's to adopt) */
	struct profile prof[RES_N];
	char last_id[32];
	double last[RES_N];
	bool has_last[RES_N];
	bool seen;
};

/* A migration this controller runs (a swap's two halves: two entries). */
struct ctl_mig {
	char vm[CTL_ID_MAX], from[CTL_ID_MAX], to[CTL_ID_MAX];
	char reason[256];
	char res[8];
	char kind[16];       /* plan_kind_name(); "" for an operator's move */
	char by[CTL_BY_MAX]; /* who asked (an operator's call); "" = the controller */
	double proj[4];      /* src before/after, dst before/after volumes */
	double cost_s;
	int64_t started_ms;
	struct ctl_mig *then; /* the second half of a swap, run after this one */
};

/* A resize in place this controller runs (ctl_resize.c). */
struct ctl_resize {
	char vm[CTL_ID_MAX], host[CTL_ID_MAX];
	char reason[256];
	char res[8];
	int vcpus, mem_mib;              /* asked; 0 = unchanged */
	char by[CTL_BY_MAX];             /* who asked (an operator's call); "" = the controller */
	double vcpus_before, mem_before; /* as the controller saw it */
	int64_t started_ms;
};

/* A relief to measure measure_after_ms after a migration ended. */
struct ctl_measure {
	char vm[CTL_ID_MAX], from[CTL_ID_MAX], to[CTL_ID_MAX];
	double proj[4];
	int64_t at_ms;
};

/* A migration that ended recently: the hosts' samples do not show it yet
 * (the source's still count the VM, the target's do not), so the model
 * shifts the VM's demand until `until_ms`. */
struct ctl_settle {
	char vm[CTL_ID_MAX], from[CTL_ID_MAX], to[CTL_ID_MAX];
	int64_t until_ms;
};

struct ctl_metrics {
	uint64_t rounds;
	double round_s;
	uint64_t decisions[32]; /* by event type index */
	uint64_t mig_ok, mig_failed;
	double mig_seconds;
	uint64_t resize_ok, resize_failed;
};

/* What an operator changed at run time (ctl_runtime.c), from Redis's
 * `controller_settings`: the mode and the migration windows. */
struct ctl_rt {
	int cfg_mode;     /* controller.mode of the configuration */
	bool mode_set;    /* a runtime mode is stored (it is o.mode) */
	char mode_by[96]; /* who set it, when */
	int64_t mode_ts;
	char windows[WIN_SPEC_MAX + 1]; /* "" = none: migrations at any time */
	struct win_set win;
	char windows_by[96];
	int64_t windows_ts;
	int win_logged; /* -1 not yet, 0 closed, 1 open: what was last logged */
	bool loaded;    /* initialised (cfg_mode taken from the configuration) */
	char bad_mode[32], bad_windows[WIN_SPEC_MAX + 1]; /* warned about once */
};

struct ctl {
	struct ctl_opts o;
	struct ctl_rt rt;
	struct round_opts ro;
	struct plan_opts po;
	volatile int stop;
	volatile int reload;     /* SIGHUP: the loop re-reads the configuration */
	const char *cfg_path;    /* -c, or NULL */
	const char *const *sets; /* the -s overrides, nsets of them */
	int nsets;
	struct ctl_opts *raw; /* as cfg_load() read it: what SIGHUP compares */
	pthread_t loop_thread, events_thread;
	bool loop_started, events_started;
	struct httpd *http;
	char advertise[160];
	FILE *dlog; /* the JSON-lines decision log, or NULL */
	pthread_mutex_t dlog_lock;

	struct store *redis; /* the loop's */
	struct store *aux;   /* API handlers, workers, events */
	pthread_mutex_t aux_lock;
	pthread_mutex_t prov_lock; /* one provisioning at a time */

	pthread_mutex_t lock;
	pthread_cond_t ev_cond; /* signalled when new events arrive */
	char ev_last[32];       /* newest id of the events stream seen */
	uint64_t ev_gen;

	bool leader;     /* written under lock with __atomic_store_n, read anywhere */
	bool lease_seen; /* the first lease attempt was made (controller_started then) */
	int64_t epoch;   /* of our lease while leader (ctl_lease) */
	char leader_id[CTL_ID_MAX];
	bool redis_up;
	uint64_t round;
	int64_t last_round_ms;
	/* Redis's clock (TIME) as read at the last round, and our monotonic
	 * clock then: ctl_now_ms() extrapolates it (under lock) */
	int64_t redis_ms, redis_mono_ms;
	double round_took_ms;
	struct ctl_host **hosts;
	int nhosts, cap_hosts;
	struct ctl_vm **vms;
	int nvms, cap_vms;
	/* the last round's model and plan (indexes follow hosts[] / vms[]) */
	struct cluster model;
	int *pins; /* storage for the model's pin lists */
	struct plan_result plan;
	bool have_plan;
	char plan_sig[1024];   /* what recommend mode last logged */
	struct ctl_mig **migs; /* running */
	int nmigs, cap_migs;
	struct ctl_resize **resizes; /* running */
	int nresizes, cap_resizes;
	struct ctl_measure *measures;
	int nmeasures, cap_measures;
	struct ctl_settle *settles;
	int nsettles, cap_settles;
	struct ctl_metrics m;
	double *scratch;
};
/* The cluster's clock: Redis's TIME at the last round plus the monotonic
 * time since, so a stepped clock here or on an agent never marks a live host
 * down; our own clock until a round has read Redis's. Under the lock. */
int64_t ctl_now_ms(const struct ctl *c);

/* ctl_state.c: reading Redis into hosts/VMs and the model */
/* Makes room for element n of a growing array: 0 or -ENOMEM. */
int ctl_grow(void **arr, int *cap, int n, size_t elem);
struct ctl_host *ctl_host_find(struct ctl *c, const char *id);
struct ctl_vm *ctl_vm_find(struct ctl *c, const char *id);
int ctl_host_index(const struct ctl *c, const char *id);
/* Index of a host / VM in a model built by ctl_refresh(), or -1. */
int ctl_model_host(const struct cluster *m, const char *id);
int ctl_model_vm(const struct cluster *m, const char *id);
/* One round's reads and the model and plan. Under no lock: it takes it. */
int ctl_refresh(struct ctl *c);
void ctl_state_free(struct ctl *c);
double ctl_host_volume(const struct ctl_host *h);
/* The migration of vm this controller runs (a swap's half too), or NULL. */
const struct ctl_mig *ctl_mig_find(struct ctl *c, const char *vm);
bool ctl_mig_running(struct ctl *c, const char *vm); /* under the lock */

/* ctl_exec.c: the lease, migrations, the round's decisions */
void ctl_lease(struct ctl *c);
void ctl_decide(struct ctl *c);
/* Runs one migration (and the swap half after it) to its end, synchronously;
 * m is freed. 0 or -EIO with err; *result (may be NULL) the agent's answer. */
int ctl_migrate_run(struct ctl *c, struct ctl_mig *m, json_t **result, int *http, char *err,
                    size_t errlen);
/* Registers m as running (false: the VM migrates already). Under the lock. */
bool ctl_mig_add(struct ctl *c, struct ctl_mig *m);
/* Runs m (added with ctl_mig_add) on a thread of its own, as the round's
 * migrations run: 0, or -errno with m removed and freed. Call with c->lock held. */
int ctl_migrate_start(struct ctl *c, struct ctl_mig *m);
void ctl_measure_due(struct ctl *c);
/* Runs fn(arg) on a detached thread: 0 or -errno. */
int ctl_spawn(void *(*fn)(void *), void *arg);
/* Fencing: the epoch of our lease when Redis says it is still ours, else 0
 * with err ("not acting (what): ...") logged, and leader false until the
 * next round. Called just before each action. */
int64_t ctl_fence(struct ctl *c, const char *what, char *err, size_t errlen);
/* HTTP to an agent: url = http://<api><path>?epoch=<our lease's epoch>. A
 * mutating call is fenced first (ctl_fence): -EPERM with err when not ours. */
int ctl_agent_call(struct ctl *c, const char *api, const char *method, const char *path,
                   json_t *body, long timeout_ms, json_t **reply, char *err, size_t errlen);

/* ctl_resize.c: resizes in place through the agents */
/* The resize of vm this controller runs, or NULL. Under the lock. */
const struct ctl_resize *ctl_resize_find(struct ctl *c, const char *vm);
/* Starts a PLAN_RESIZE action on a worker thread (skipped when the VM
 * resizes already or its last resize failed within the cooldown). Under
 * the lock. */
void ctl_resize_start(struct ctl *c, const struct plan_action *a);
/* POST /v1/vms/<id>/resize {"vcpus", "mem_mib"}: an operator's resize. */
void ctl_api_resize(struct ctl *c, const struct httpd_req *req, const char *id,
                    struct httpd_resp *resp);
/* The agent's error message in a reply, or fallback. */
const char *ctl_agent_msg(json_t *reply, const char *fallback);
/* 503 not_leader unless this controller leads (ctl_api.c). */
bool ctl_require_leader(struct ctl *c, struct httpd_resp *resp);

/* ctl_events.c: the decision log */
/* Writes one entry (XADD events, the JSON-lines file): type, then
 * NULL-terminated key, value pairs (values are strings; empty ones are left
 * out). `by` is "controller:<id>" unless a non-empty "by" pair names who
 * asked (an operator's call: then `via` names this controller). */
void ctl_event(struct ctl *c, const char *type, ...) __attribute__((sentinel));
/* An API refusal: answers status with {"error": {"code", "message"}} (and
 * the members of extra inside "error"; extra is stolen, may be NULL) and,
 * when this controller leads, logs it once as `type` with the caller (`by`),
 * `vm`, `host` (either may be NULL), `status`, `code` and the message as
 * `reason`. A follower logs nothing: it answers only. */
void ctl_refuse(struct ctl *c, const struct httpd_req *req, struct httpd_resp *resp,
                const char *type, int status, const char *code, json_t *extra, const char *vm,
                const char *host, const char *fmt, ...) __attribute__((format(printf, 10, 11)));
/* Is this controller the leader now (any thread, no lock needed)? */
bool ctl_is_leader(const struct ctl *c);
/* Opens the decision log at path anew (SIGHUP: a new path, or the old one
 * renamed by logrotate; "" = none from now on); on failure the open file
 * stays. 0 or -errno. */
int ctl_events_reopen(struct ctl *c, const char *path);

/* controller.c: validates o and derives the round's and the planner's
 * options from it (reading the token and password files). */
int ctl_resolve(struct ctl_opts *o, struct round_opts *ro, struct plan_opts *po, char *err,
                size_t errlen);
/* ctl_check.c: `--check` after a clean ctl_resolve(); the number of failed
 * checks. SIGHUP: ctl_reload(), in the loop thread. */
int ctl_check(struct ctl *c);
void ctl_reload(struct ctl *c);
void *ctl_events_follow(void *arg);
/* Events as JSON from the stream; see docs/controller.md GET /v1/events. */
json_t *ctl_events_query(struct ctl *c, const char *after, int count, int wait_s, const char *type,
                         const char *vm, const char *host, char *err, size_t errlen);
int ctl_event_type_index(const char *type);
extern const char *const ctl_event_types[];

/* ctl_place_api.c: provisioning, deletion and migration through the API */
void ctl_api_provision(struct ctl *c, const struct httpd_req *req, struct httpd_resp *resp);
void ctl_api_delete_vm(struct ctl *c, const struct httpd_req *req, const char *id,
                       struct httpd_resp *resp);
void ctl_api_migrate(struct ctl *c, const struct httpd_req *req, const char *id,
                     struct httpd_resp *resp);

/* ctl_metrics.c: GET /metrics (Prometheus text) */
void ctl_api_metrics(struct ctl *c, struct httpd_resp *resp);

/* ctl_runtime.c: rules, automation, exclude, mode and windows at run time */
/* Reads controller_settings (mode, windows) through s; logs the windows
 * opening and closing. Called by the loop each round, under no lock. */
void ctl_rt_refresh(struct ctl *c, struct store *s);
/* Applies vm_rules:<vm> (the reply of its HGETALL, may be NULL) over the
 * rules vm_configs gave v. Under the lock. */
void ctl_rt_vm_rules(struct ctl *c, struct ctl_vm *v, redisReply *rules);
/* The mode the round acts in: o.mode, but recommend outside the migration
 * windows. Under the lock. */
int ctl_rt_effective_mode(struct ctl *c);
/* Adds the runtime state to the views (under the lock). */
void ctl_rt_cluster_view(struct ctl *c, json_t *j);
void ctl_rt_plan_view(struct ctl *c, json_t *j);
void ctl_rt_vm_view(struct ctl *c, const struct ctl_vm *v, json_t *rules);
/* A manual migration's rules check (under the lock): false with the 409
 * in resp when the VM, its host or the target is excluded and not force. */
bool ctl_rt_migrate_allowed(struct ctl *c, const struct httpd_req *req, const char *vm,
                            const char *from, const char *to, bool force, struct httpd_resp *resp);
/* The runtime endpoints; true when it answered req (ctl_api_handle). */
bool ctl_rt_route(struct ctl *c, const struct httpd_req *req, const char *const *seg, int n,
                  struct httpd_resp *resp);

/* ctl_api.c */
/* Who made a request, for the decision log: "<role>@<address>", the role
 * being the token it carried (admin, read, anonymous). Returns out. */
const char *ctl_api_caller(const struct ctl *c, const struct httpd_req *req, char *out, size_t cap);
void ctl_api_handle(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);

/* small helpers */
char *ctl_fmt_double(char *buf, size_t cap, double v);

#endif
