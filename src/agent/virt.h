/* virt.h - the VM layer: every domain of this host's libvirt, whoever
 * started it (virsh, virt-manager, another tool, LoadEase).
 *
 * libvirt is the truth. The registry (vm_configs:<id>, vms_in_host:<host>)
 * follows it: the host whose libvirt has a domain running owns that VM.
 * virt_reconcile() makes the registry say so (claiming what runs here,
 * releasing what stopped), on every libvirt domain event and every
 * vm.reconcile_s as the safety net; since it is idempotent, a failed Redis
 * write is retried by the next round, and a Redis that lost its data is
 * healed within one period. A migration's record (migration:<vm>) is settled
 * the same way, from what the libvirts report.
 *
 * Threads: virt_start() starts two of its own, libvirt's event loop (domain
 * events, keepalive, the connection's close callback) and a worker
 * (reconnect, reconcile, balloon statistics). The API threads call
 * virt_create/delete/migrate/list/get. A virt's lock guards its cache, its
 * Redis connection and its flags; it is never held across a long libvirt
 * call (a start, a shutdown, a migration), so the host's other VMs and its
 * API stay served meanwhile. Lock order: reconcile_lock (one reconcile at a
 * time), then lock; nothing else is taken under either.
 */
#ifndef LE_AGENT_VIRT_H
#define LE_AGENT_VIRT_H

#include <jansson.h>
#include <stdbool.h>

#include "agent/domxml.h"
#include "agent/vmspec.h"
#include "common/store.h"

struct virt_opts {
	char host_id[65];
	char api_addr[128];  /* this agent's ip:port (rpc_port in the registry) */
	char uri[256];       /* this host's libvirt, e.g. qemu:///system */
	char peer_uri[256];  /* where other hosts reach it (host_config libvirt_uri) */
	char pid_dir[256];   /* QEMU pid files: <pid_dir>/<domain name>.pid */
	char state_dir[256]; /* <state_dir>/vms/<id>/: console log, guest stats */
	char images_dir[256];
	char console_log_dir[256]; /* <dir>/<id>-console.log per VM defined; "" = none */
	char bridge[16];
	struct domxml_opts dx; /* domain type, emulator, machine, balloon period */
	int max_vcpus, max_mem_mib;
	int boot_timeout_ms, shutdown_timeout_ms;
	int migrate_bandwidth_mbit; /* 0 = libvirt's default (no cap) */
	int migrate_downtime_ms;
	int migrate_timeout_ms;
	bool migrate_tls;
	int stats_poll_ms;
	int reconcile_ms;
	int peer_timeout_ms; /* connecting to another host's libvirt */
	struct store_opts redis;
};

struct virt;

/* Checks the options and the directories; connects later (virt_start).
 * NULL with the reason in err. Caller frees with virt_free(). */
struct virt *virt_new(const struct virt_opts *o, char *err, size_t errlen);
/* Starts the event loop and the worker: it connects to libvirt (retrying
 * with backoff while libvirt is down) and adopts every running domain. */
int virt_start(struct virt *v, char *err, size_t errlen);
/* Stops the threads; the VMs keep running. NULL is fine. */
void virt_free(struct virt *v);

/* Defines and starts a domain from spec and registers it; nothing is left
 * behind on failure. *http gets the status (409 exists, 503 Redis or libvirt
 * down, 500 libvirt failed). *out (may be NULL) gets the VM's JSON. */
int virt_create(struct virt *v, const struct vm_spec *spec, json_t **out, int *http, char *err,
                size_t errlen);
/* Shuts the domain down (ACPI, destroyed after vm.shutdown_timeout_ms),
 * undefines it, and removes it from the registry. */
int virt_delete(struct virt *v, const char *id, int *http, char *err, size_t errlen);
/* Live-migrates a VM to host `to`, peer to peer (this libvirt talks to the
 * destination's), persistent there and undefined here, auto-converge, with
 * the configured bandwidth, downtime limit and timeout (and TLS when
 * vm.migrate_tls). The registry names the host that runs it when this
 * returns, whatever happened. *out gets the figures: total_ms, downtime_ms,
 * bytes (libvirt's job statistics), dest_running_ms (the guest runs on the
 * destination), wall_ms (this call). */
int virt_migrate(struct virt *v, const char *id, const char *to, json_t **out, int *http, char *err,
                 size_t errlen);

/* The least memory a resize leaves a VM (also the least POST /v1/vms takes). */
#define VIRT_MIN_MEM_MIB 64

/* Changes a running VM's allocation in place (virt_resize.c): vcpus by
 * vCPU hot-plug, mem_mib by the balloon (0 = unchanged), both in the running
 * domain and, when it is persistent, in its definition. Refused (400) beyond
 * the domain's maxima (<vcpu>, <memory>), below the memory floor (64 MiB,
 * and what the guest uses plus a tenth, at least 32 MiB), or with fewer
 * vCPUs than it runs (hot-plug only: libvirt loses track of an unplug that
 * a guest finishes after its 5 s wait); 404 unknown; 409
 * migrating, being deleted or resized; 503 libvirt down; 502 libvirt
 * refused (memory is set back when the vCPUs fail after it). The balloon is
 * waited for (15 s at most). Whatever happened, the registry then says what
 * libvirt has. *out: vm, host, vcpus, mem_mib, max_vcpus, max_mem_mib (read
 * back from libvirt), vcpus_before, mem_mib_before, asked {vcpus, mem_mib},
 * mem_settled (the balloon reached the asked size), persistent, wall_ms. */
int virt_resize(struct virt *v, const char *id, int vcpus, int mem_mib, json_t **out, int *http,
                char *err, size_t errlen);

/* The outcome entries (vm_created, vm_deleted, migration_done/failed,
 * vm_resized, vm_resize_failed) of VM vm's create, delete, migrate or resize
 * that this thread runs next are the caller's to log: a controller that asks
 * with ?log=caller writes its own, so each action is in the log once
 * (vm_lost and other VMs' entries are always written). NULL clears it. */
void virt_caller_logs(const char *vm);

/* The VMs of this host (array), or one (NULL when unknown). */
json_t *virt_list(struct virt *v);
json_t *virt_get(struct virt *v, const char *id);
/* libvirt connected, and the last reconcile's time (monotonic ms, 0 never). */
bool virt_connected(struct virt *v);
/* Runs a reconcile now (tests, SIGHUP); 0 or a negative errno. */
int virt_reconcile(struct virt *v);

/* For --check: can libvirt at uri be reached? 0 with the running domains'
 * count in *n, or a negative errno with err. */
int virt_probe(const char *uri, int *n, char *err, size_t errlen);

/* The VM id for a domain name: the name when it is a valid id, else its
 * characters outside [A-Za-z0-9_.-] turned to '_', cut to 55, then '-' and
 * the first 8 hex digits of the UUID. Pure. */
void virt_vm_id(const char *name, const char *uuid, char *out, size_t cap);

#endif
