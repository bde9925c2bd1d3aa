/* agent.h - the host agent: its options, its state, and the pieces that
 * share them (agent.c the loop, publish.c Redis, api.c HTTP, metrics.c
 * Prometheus). The state is guarded by agent.lock: the sampling loop holds it
 * while it updates, the HTTP threads while they read. */
#ifndef LE_AGENT_AGENT_H
#define LE_AGENT_AGENT_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/sampler.h"
#include "agent/virt.h"
#include "common/config.h"
#include "common/httpd.h"
#include "common/resp.h"
#include "common/store.h"
#include "common/tls.h"
#include "core/profile.h"

enum host_usage { HOST_USAGE_PROC, HOST_USAGE_VMS };
/* with client tracking, the full registry re-read comes this many times
 * more rarely than redis.registry_every */
#define AGENT_REGISTRY_TRACKED_FACTOR 30
enum task_reader_mode { TASK_READER_AUTO, TASK_READER_ON, TASK_READER_OFF };

struct agent_opts {
	char id[65];
	char address[64]; /* the IP other hosts reach this agent at */
	char listen[128];
	char advertise[128]; /* ip:port published as mon/vmm proxy address */
	char root[256];
	long long interval_ms;
	char token[256];
	char token_file[256];
	char log_file[512];
	char read_token[256], read_token_file[256];
	bool open_reads;
	struct tls_opts tls;
	int log_level;
	double cpus, mem_mib, net_mbit; /* 0 = what the machine has */
	char nics[256];                 /* comma-separated; "" = auto */
	int io_mode;
	int usage; /* enum host_usage */
	long long vhost_scan_s;
	int bpf; /* enum task_reader_mode */
	struct store_opts redis;
	char redis_password_file[256];
	long long stream_maxlen;
	long long backlog;
	long long backlog_mib;
	long long flush_budget_ms;
	long long wait_replicas, wait_ms; /* a tick is confirmed once replicated */
	long long profile_every;
	long long registry_every;
	long long window;
	double peak_pct;
	double threshold[RES_N];
	long long k, n;
	bool vm_enabled;
	struct virt_opts vm;
	int vm_domain_type; /* enum: kvm, qemu */
	long long vm_boot_timeout_ms, vm_shutdown_timeout_ms, vm_max_vcpus, vm_max_mem_mib;
	long long vm_poll_ms, vm_reconcile_s, vm_peer_timeout_ms;
	long long vm_mig_bw, vm_mig_downtime, vm_mig_timeout;
};

extern const struct cfg_key agent_cfg_keys[];

struct vm_mon {
	struct vm_desc d;
	struct vm_raw raw;
	bool has_raw;
	struct vm_sample last;
	bool has_last;
	struct profile prof[RES_N];
	bool seen; /* in the registry at the last read */
};

/* One tick's stream entries as the commands that send them, formatted once:
 * MULTI, XADD per host/VM, EXEC (publish.c). */
struct pub_tick {
	struct resp_buf b;
};

struct backlog {
	struct pub_tick *t;
	int cap, head, len;
	size_t bytes, max_bytes;
	uint64_t dropped; /* ticks dropped because the backlog was full */
};

struct agent {
	struct agent_opts o;
	struct sampler_opts so;
	struct hotspot_rule rule[RES_N];
	pthread_mutex_t lock;

	struct netdev_entry *ntab;
	int ntab_n;
	struct vhost_map vh;
	int64_t vh_next_ms;

	struct host_raw hraw;
	bool has_hraw;
	struct host_sample hlast;
	bool has_hlast;
	struct profile hprof[RES_N];
	struct sampler_cache cache;

	struct vm_mon **vms;
	int nvms, capvms;

	struct store *redis;
	bool registered; /* registration done on the current connection */
	bool redis_up;   /* copy of store_connected() for the HTTP threads (under lock) */
	uint64_t redis_connects_seen;
	struct backlog bl;
	struct log_complaint registry_complaint;
	/* client-side tracking of the registry (publish_tracking_start) */
	struct store *inval;   /* subscribed to __redis__:invalidate */
	bool tracking;         /* the registry keys the agent reads are tracked */
	bool tracking_refused; /* by this connection's server: not asked again */
	bool reg_dirty;        /* the registry is to be read: it changed, or is not known */

	uint64_t seq;
	int64_t last_ts_ms;
	int64_t last_sample_mono_ms;
	uint64_t samples, published_ticks, duplicate_entries;
	/* ticks Redis answered with an error (OOM, MISCONF, READONLY...): kept in
	 * the backlog and sent again; refusing is the state, logged on change */
	uint64_t refused_ticks;
	bool refusing;
	/* the newest controller lease epoch a request carried (api.c): older
	 * ones are refused, a deposed leader is fenced off */
	int64_t max_epoch;
	char refused_why[160];
	/* sent, replies not read yet (publish_collect) */
	struct pub_tick *inflight;
	int ninflight, inflight_extra;
	bool inflight_wait;        /* a WAIT follows the in-flight ticks */
	double last_sample_cpu_ms; /* CPU the agent spent on the last tick */
	bool reader_bpf; /* the BPF task reader serves this sample (copied under the lock) */

	struct httpd *http;
	struct virt *virt; /* the VM layer; NULL when vm.enabled is false */
	volatile sig_atomic_t stop;
	volatile sig_atomic_t reload; /* SIGHUP: agent_reload() before the next tick */
	const char *cfg_path;         /* -c, or NULL */
	const char *const *sets;      /* the -s overrides, nsets of them */
	int nsets;
	struct agent_opts *raw; /* as cfg_load() read it: what SIGHUP compares */
};

int agent_main(int argc, char **argv);
/* agent.c: fills what the options leave to the machine; checks what the
 * table cannot (a->o in, a->o, a->so and a->rule out). */
int agent_resolve(struct agent *a, char *err, size_t errlen);
/* agent_check.c: `--check` after a clean agent_resolve(); the number of
 * failed checks. agent_reload(): SIGHUP, in the
 * sampling loop. */
int agent_check(struct agent *a);
void agent_reload(struct agent *a);

/* agent.c */
struct vm_mon *agent_find_vm(struct agent *a, const char *id);
/* Stops watching a VM at once (it was deleted or migrated away), before the
 * next registry read would notice. */
void agent_forget_vm(struct agent *a, const char *id);
/* Summaries of three profiles; scratch holds o.window doubles. Under lock. */
void agent_summarize(const struct agent *a, const struct profile *prof, struct profile_summary *sum,
                     double *scratch);

/* publish.c: all Redis traffic of the agent (called from the loop only) */
int publish_register(struct agent *a);
/* From the members of vms_in_host:<host> (ids), the VMs to watch: their
 * vm_configs read again when full, else only for those not watched yet or
 * without a live process (one round trip when any is needed). */
int publish_registry_read(struct agent *a, redisReply *ids, bool full, struct vm_desc **out,
                          int *n);
/* True when ids lists exactly the VMs watched now, in their order, none of
 * them to be read again: publish_registry_read() would change nothing. */
bool publish_registry_unchanged(struct agent *a, const redisReply *ids);
/* Asks Redis (6+) to say when a key the agent reads changes, on a second
 * connection; after it, the registry is read only when due. On a new
 * connection, after publish_register(). -EIO when Redis cannot: the registry
 * is then read every sample. */
int publish_tracking_start(struct agent *a, int64_t now_ms);
/* Whether this sample reads the registry: when a key of it changed (or when
 * that cannot be known), every registry_every samples (full), and while a
 * watched VM has no live process. */
bool publish_registry_due(struct agent *a, bool full);
int publish_build_tick(struct agent *a, struct pub_tick *t);
void publish_enqueue(struct agent *a, struct pub_tick *t);
/* Sends the backlog's ticks (oldest first, in batches, within
 * redis.flush_budget_ms) and then the commands of extra. Replies: those of
 * an earlier batch are read at once; those of the last batch and of extra
 * are read now unless defer, else by the next exchange or publish_collect()
 * (the sampling loop then never waits on Redis: by the next sample they have
 * come). A tick leaves the agent when its reply says Redis has it. -EIO when
 * the connection failed, -EAGAIN when Redis answered a tick with an error
 * (OOM, MISCONF, READONLY): either way unconfirmed ticks go back to the
 * backlog, first, in order. */
int publish_exchange(struct agent *a, const struct resp_buf *extra, bool defer);
/* Reads the replies the last exchange left in flight (extra's errors are
 * logged) before anything else uses the connection. -EIO, -EAGAIN as above. */
int publish_collect(struct agent *a);
int publish_build_profiles(struct agent *a, bool full, struct resp_buf *b);
int publish_mark_down(struct agent *a);
void pub_tick_release(struct pub_tick *t);
void backlog_release(struct backlog *bl);

/* api.c */
void api_handle(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);
/* metrics.c: Prometheus text of the current state; caller frees. */
char *metrics_render(struct agent *a, size_t *len);

#endif
