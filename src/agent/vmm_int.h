/* vmm_int.h - what the driver's two files share (vmm.c: VMs on this host;
 * vmm_migrate.c: live migration and its recovery). Not for other modules. */
#ifndef LE_AGENT_VMM_INT_H
#define LE_AGENT_VMM_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

#include "agent/qmp.h"
#include "agent/vmm.h"

struct vmm_vm {
	struct vm_spec s;
	char dir[600];
	char tap[16];
	char mac[18];
	int pid;
	struct qmp *q;
	char state[16]; /* running, migrating */
};

struct vmm {
	struct vmm_opts o;
	pthread_mutex_t lock;
	struct store *redis;
	struct vmm_vm **vms;
	int n, cap;
};

struct vmm_vm *vmm_find(struct vmm *v, const char *id);
void vmm_sleep_ms(int ms);
int vmm_rm_tree(const char *dir);
int vmm_add_vm(struct vmm *v, struct vmm_vm *vm);
void vmm_remove_vm(struct vmm *v, struct vmm_vm *vm);
int vmm_resolve_image(const struct vmm_opts *o, const char *field, const char *rel, char *out,
                      size_t cap, char *err, size_t errlen);
bool vmm_redis_up(struct vmm *v);
void vmm_event(struct vmm *v, const char *type, const char *vm, const char *msg);
int vmm_registry_commit(struct vmm *v, const struct vmm_vm *vm);
int vmm_pick_tap(struct vmm_vm *vm);
json_t *vmm_spec_json(const struct vmm *v, const struct vmm_vm *vm);
void vmm_spec_load(json_t *j, struct vmm_vm *vm);
int vmm_write_spec(const struct vmm *v, const struct vmm_vm *vm);
int vmm_launch(struct vmm *v, struct vmm_vm *vm, const char *incoming, char *err, size_t errlen);
void vmm_stop_qemu(struct vmm *v, struct vmm_vm *vm, bool graceful);
void vmm_balloon_polling(struct vmm_vm *vm, int seconds);
void vmm_vm_free(struct vmm_vm *vm);

/* After a restart: settles a migration the VM may be in the middle of, so
 * exactly the copy the registry names runs; true when the local copy ended
 * (the caller drops it). Under the lock. */
bool vmm_recover(struct vmm *v, struct vmm_vm *vm);

#endif
