/* vmm.h - the VM driver: the QEMU virtual machines this host runs (the seed's
 * "VMM proxy"). It launches qemu-system-x86_64 (daemonized, so an agent
 * restart never kills a VM), talks QMP to it, puts its tap on the host
 * bridge, keeps the Redis registry exact (vm_configs:<id>, vms_in_host:<host>,
 * in one transaction per change), polls balloon statistics for the monitor,
 * and adopts the VMs still running after an agent restart.
 *
 * Thread-safe: every operation takes the driver's lock; long operations (a
 * launch, a shutdown) hold it, so operations on one host are serialised.
 */
#ifndef LE_AGENT_VMM_H
#define LE_AGENT_VMM_H

#include <jansson.h>
#include <stdbool.h>

#include "common/store.h"

enum vmm_accel { VMM_ACCEL_KVM, VMM_ACCEL_TCG };

struct vmm_opts {
	char host_id[65];
	char api_addr[128];   /* this agent's ip:port (rpc_port in the registry) */
	char state_dir[256];  /* VMs' sockets, logs, specs: <state_dir>/vms/<id>/ */
	char images_dir[256]; /* kernels, initrds, disks must resolve inside it */
	char qemu[256];
	int accel;
	char machine[32];
	char bridge[16]; /* default bridge for VM taps */
	int max_vcpus;
	int max_mem_mib;
	int boot_timeout_ms;
	int shutdown_timeout_ms;
	int qmp_timeout_ms;
	struct store_opts redis;
	char token[256];            /* the cluster secret, for calls to other agents */
	char address[64];           /* this host's IP: where incoming migrations listen */
	int migrate_bandwidth_mbit; /* 0 = QEMU's default */
	int migrate_downtime_ms;
	int migrate_timeout_ms;
};

/* What POST /v1/vms asks for, validated. */
struct vm_spec {
	char id[65];
	int vcpus, mem_mib;
	char kernel[512], initrd[512], disk[512]; /* absolute, inside images_dir */
	char append[1024];
	char bridge[16];
	char pin[512]; /* comma-separated host ids; "" = any */
	char group[65], anti_group[65];
	bool exclude;
};

struct vmm;

/* NULL with the reason in err. Caller frees with vmm_free(). */
struct vmm *vmm_new(const struct vmm_opts *o, char *err, size_t errlen);
void vmm_free(struct vmm *v);

/* Validates a request body into spec. 0, or -EINVAL with err naming the
 * field and the problem (a 400 for the API). */
int vmm_spec_from_json(const struct vmm_opts *o, json_t *req, struct vm_spec *spec, char *err,
                       size_t errlen);

/* Launches the VM and registers it. 0, or a negative errno with err; *http
 * gets the fitting status (409 exists, 400 bad input, 503 Redis down, 500
 * QEMU failed). Nothing is left behind on failure. *out (may be NULL) gets
 * the VM's JSON. */
int vmm_create(struct vmm *v, const struct vm_spec *spec, json_t **out, int *http, char *err,
               size_t errlen);
/* Powers the VM down (ACPI, then quit after the timeout, then SIGKILL),
 * removes its tap, registry entries and state. */
int vmm_delete(struct vmm *v, const char *id, int *http, char *err, size_t errlen);
/* Live-migrates a VM to host `to` (source side): asks the destination agent
 * (POST /v1/incoming) to start the VM waiting for the stream, runs QMP
 * migrate with the configured bandwidth and downtime limits, and on
 * completion moves the VM in the registry in one transaction and ends the
 * source QEMU. On any failure the VM keeps running here, the destination is
 * torn down, and err names the step. *out gets total time, downtime, bytes.
 * migration:<id> in Redis records the phase while it runs. */
int vmm_migrate(struct vmm *v, const char *id, const char *to, json_t **out, int *http, char *err,
                size_t errlen);
/* Destination side: starts the VM described by spec (what the source sends)
 * with -incoming, listening on this host's address; *out gets the port. */
int vmm_incoming(struct vmm *v, json_t *spec, json_t **out, int *http, char *err, size_t errlen);
/* Destination side, after the stream: commit (the VM now runs here) or
 * abort (kill the waiting QEMU and clean up). */
int vmm_incoming_end(struct vmm *v, const char *id, bool commit, int *http, char *err,
                     size_t errlen);

/* The VMs this driver runs, as JSON (array), or one (NULL when unknown). */
json_t *vmm_list(struct vmm *v);
json_t *vmm_get(struct vmm *v, const char *id);

/* At start: adopts the QEMU processes still running from the state dir and
 * reconciles the registry (VMs that died are marked lost and removed from
 * the host's set; a running VM is never killed). Returns the number adopted. */
int vmm_adopt(struct vmm *v);
/* Refreshes every VM's balloon statistics file (called from a timer). */
void vmm_poll(struct vmm *v);

#endif
