/* virt_int.h - what the VM layer's files share (virt.c: domains of this host
 * and the registry; virt_migrate.c: live migration; virt_resize.c: resizing
 * in place). Not for other modules. */
#ifndef LE_AGENT_VIRT_INT_H
#define LE_AGENT_VIRT_INT_H

#include <libvirt/libvirt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/domxml.h"
#include "agent/virt.h"
#include "common/log.h"
#include "common/store.h"

/* A domain active on this host's libvirt (the cache of the last reconcile). */
struct virt_dom {
	char id[65]; /* the VM id (virt_vm_id) */
	char uuid[VIR_UUID_STRING_BUFLEN];
	int domid; /* libvirt's run-time id: another one = started again */
	int pid;   /* QEMU, from its pid file; 0 unknown */
	int state, reason;
	bool transit;   /* paused for a migration in or out: nobody claims it */
	bool job;       /* libvirt runs a job on it (a migration, perhaps not ours) */
	bool migrating; /* virt_migrate() moves it now */
	bool stopping;  /* virt_delete() shuts it down now */
	bool resizing;  /* virt_resize() changes its size now */
	bool reread;    /* its XML is read again by the next reconcile */
	bool conflict_logged;
	struct domxml_info x;
	bool seen; /* listed by the current reconcile */
};

struct virt {
	struct virt_opts o;
	pthread_mutex_t lock;
	pthread_mutex_t reconcile_lock; /* one reconcile at a time; taken before lock */
	pthread_cond_t wake;
	virConnectPtr conn;           /* NULL while libvirt is unreachable */
	int cb_lifecycle, cb_balloon; /* domain event callbacks, -1 none */
	bool conn_dead;               /* its close callback fired: reopen */
	struct store *redis;
	struct virt_dom **doms;
	int n, cap;
	bool dirty;    /* an event came: reconcile at once */
	bool job_seen; /* the last reconcile saw a domain in a libvirt job */
	bool stop;
	pthread_t ev_thread, worker;
	bool ev_started, worker_started;
	int ev_timer;
	int64_t last_reconcile_ms, next_connect_ms, backoff_ms;
	struct log_complaint lv_down, redis_down;
};

struct virt_dom *virt_find(struct virt *v, const char *id);
/* The connection, referenced (virConnectClose() it), or NULL. */
virConnectPtr virt_conn(struct virt *v);
bool virt_redis_up(struct virt *v);
void virt_event(struct virt *v, const char *type, const char *vm, const char *msg);
/* libvirt's last error, or what. */
const char *virt_lasterr(const char *what);
/* Opens another host's libvirt at uri, giving up after o.peer_timeout_ms
 * when its address does not answer. NULL with err. */
virConnectPtr virt_open_peer(struct virt *v, const char *uri, char *err, size_t errlen);
void virt_sleep_ms(int ms);

#endif
