/* vmm_migrate.c - live migration agent to agent, and the recovery of a
 * migration an agent restart interrupted; see vmm.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/netif.h"
#include "agent/vmm_int.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/util.h"

static const char *qemu_status(struct vmm_vm *vm, const char *cmd, char *buf, size_t cap)
{
	json_t *r = NULL;

	buf[0] = '\0';
	if (vm->q && qmp_command(vm->q, cmd, NULL, &r) == 0 &&
	    json_is_string(json_object_get(r, "status")))
		snprintf(buf, cap, "%s", json_string_value(json_object_get(r, "status")));
	json_decref(r);
	return buf;
}

static int migration_move(struct vmm *v, struct vmm_vm *vm, const char *to, redisReply *m);
static int registry_move(struct vmm *v, struct vmm_vm *vm, const char *to, json_t *inc);

/* After a restart, settles what a migration may have left half-done so that
 * exactly one copy of the VM runs: the one the registry names. True when the
 * local copy was ended (the caller drops it). Under the lock. */
bool vmm_recover(struct vmm *v, struct vmm_vm *vm)
{
	redisReply *m = store_command(v->redis, "HGETALL migration:%s", vm->s.id);
	redisReply *o = store_command(v->redis, "HGET vm_configs:%s host_id", vm->s.id);
	const char *src = store_hget(m, "src"), *dst = store_hget(m, "dst");
	char owner[65] = "", st[32], url[300], e[200];
	bool ended = false;

	if (o && o->type == REDIS_REPLY_STRING)
		snprintf(owner, sizeof(owner), "%s", o->str);
	freeReplyObject(o);
	if (src[0] && strcmp(src, v->o.host_id) == 0) {
		/* this agent was the source: QEMU carried on alone; ask it */
		int64_t deadline = util_mono_ms() + v->o.migrate_timeout_ms;
		while (strcmp(qemu_status(vm, "query-migrate", st, sizeof(st)), "active") == 0 ||
		       !strcmp(st, "setup") || !strcmp(st, "device") ||
		       !strcmp(st, "pre-switchover")) {
			if (util_mono_ms() > deadline) {
				qmp_command(vm->q, "migrate_cancel", NULL, NULL);
				break;
			}
			vmm_sleep_ms(100);
		}
		if (strcmp(qemu_status(vm, "query-migrate", st, sizeof(st)), "completed") == 0 &&
		    migration_move(v, vm, dst, m) == 0) {
			log_warn("vm %s: its migration to %s completed while this agent was down; "
			         "it runs there now",
			         vm->s.id, dst);
			vmm_event(v, "migration_done", vm->s.id,
			          "completed while the source agent was down");
			vmm_stop_qemu(v, vm, false);
			vmm_rm_tree(vm->dir);
			ended = true;
		} else {
			qmp_command(vm->q, "cont", NULL, NULL);
			snprintf(url, sizeof(url), "http://%s/v1/incoming/%s",
			         store_hget(m, "dst_api"), vm->s.id);
			if (store_hget(m, "dst_api")[0])
				httpc_json("DELETE", url, NULL, v->o.token, 15000, NULL, e,
				           sizeof(e));
			freeReplyObject(store_command(v->redis, "DEL migration:%s", vm->s.id));
			log_warn("vm %s: its migration to %s did not complete before this agent "
			         "restarted; it stays here",
			         vm->s.id, dst);
			vmm_event(v, "migration_failed", vm->s.id,
			          "the source agent restarted mid-migration");
			snprintf(vm->state, sizeof(vm->state), "running");
			vmm_registry_commit(v, vm);
		}
	} else if (strcmp(vm->state, "incoming") == 0) {
		if (strcmp(owner, v->o.host_id) == 0) {
			snprintf(vm->state, sizeof(vm->state), "running"); /* the switch happened */
			vmm_write_spec(v, vm);
		} else if (!(dst[0] && strcmp(dst, v->o.host_id) == 0)) {
			/* no migration of it is under way: a leftover of a failed one */
			vmm_stop_qemu(v, vm, false);
			vmm_rm_tree(vm->dir);
			ended = true;
		} /* else the source agent finishes or undoes it */
	} else if (owner[0] && strcmp(owner, v->o.host_id) != 0) {
		if (strcmp(qemu_status(vm, "query-status", st, sizeof(st)), "running") != 0) {
			log_warn("vm %s: a stopped copy (%s) of a VM that runs on %s: ended",
			         vm->s.id, st, owner);
			vmm_stop_qemu(v, vm, false);
			vmm_rm_tree(vm->dir);
			ended = true;
		} else {
			log_error(
			    "vm %s runs here but the registry places it on %s: left alone for the "
			    "operator",
			    vm->s.id, owner);
		}
	} else {
		vmm_registry_commit(v, vm);
	}
	freeReplyObject(m);
	return ended;
}

/* The registry switch of a migration that completed while its source agent
 * was down, from what the migration record kept of the destination. */
static int migration_move(struct vmm *v, struct vmm_vm *vm, const char *to, redisReply *m)
{
	json_t *inc = json_pack("{s:I,s:s,s:s}", "pid", (json_int_t)atoll(store_hget(m, "dst_pid")),
	                        "tap", store_hget(m, "dst_tap"), "dir", store_hget(m, "dst_dir"));
	char url[300], e[200];
	int rc = -EPROTO;

	if (to[0] && store_hget(m, "dst_dir")[0])
		rc = registry_move(v, vm, to, inc);
	json_decref(inc);
	if (rc == 0 && store_hget(m, "dst_api")[0]) {
		snprintf(url, sizeof(url), "http://%s/v1/incoming/%s/done",
		         store_hget(m, "dst_api"), vm->s.id);
		httpc_json("POST", url, NULL, v->o.token, 10000, NULL, e, sizeof(e));
	}
	return rc;
}

/* --- live migration -------------------------------------------------------- */

/* A free TCP port on addr (bound and released: QEMU takes it right after). */
static int free_port(const char *addr)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int fd, port = -1;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port > 0 ? port : -EADDRNOTAVAIL;
}

int vmm_incoming(struct vmm *v, json_t *spec, json_t **out, int *http, char *err, size_t errlen)
{
	struct vmm_vm *vm = NULL;
	char lerr[400] = "", uri[128], real[512];
	const char *id = json_string_value(json_object_get(spec, "id"));
	int port = -1, rc = 0;

	*out = NULL;
	pthread_mutex_lock(&v->lock);
	if (!id || !util_valid_id(id)) {
		*http = 400;
		snprintf(err, errlen, "incoming: 'id' missing or invalid");
		rc = -EINVAL;
		goto out;
	}
	if (vmm_find(v, id)) {
		*http = 409;
		snprintf(err, errlen, "incoming vm %s: this host already runs it", id);
		rc = -EEXIST;
		goto out;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		*http = 500;
		rc = -ENOMEM;
		goto out;
	}
	snprintf(vm->s.id, sizeof(vm->s.id), "%s", id);
	vmm_spec_load(spec, vm);
	/* the source's word is not trusted: sizes within limits, images inside
	 * this host's images dir, a bridge that exists here */
	if (vm->s.vcpus < 1 || vm->s.vcpus > v->o.max_vcpus || vm->s.mem_mib < 64 ||
	    vm->s.mem_mib > v->o.max_mem_mib || !vm->mac[0]) {
		*http = 400;
		snprintf(err, errlen, "incoming vm %s: bad size or MAC", id);
		rc = -EINVAL;
		goto out;
	}
	if ((vm->s.kernel[0] && vmm_resolve_image(&v->o, "kernel", vm->s.kernel, real, sizeof(real),
	                                          err, errlen) < 0) ||
	    (vm->s.initrd[0] && vmm_resolve_image(&v->o, "initrd", vm->s.initrd, real, sizeof(real),
	                                          err, errlen) < 0) ||
	    (vm->s.disk[0] &&
	     vmm_resolve_image(&v->o, "disk", vm->s.disk, real, sizeof(real), err, errlen) < 0)) {
		*http = 400;
		rc = -EINVAL;
		goto out;
	}
	if (!netif_is_bridge(vm->s.bridge))
		snprintf(vm->s.bridge, sizeof(vm->s.bridge), "%s", v->o.bridge);
	snprintf(vm->state, sizeof(vm->state), "incoming");
	snprintf(vm->dir, sizeof(vm->dir), "%s/vms/%s", v->o.state_dir, id);
	if ((mkdir(vm->dir, 0700) < 0 && errno != EEXIST) || vmm_pick_tap(vm) < 0 ||
	    vmm_write_spec(v, vm) < 0) {
		*http = 500;
		snprintf(err, errlen, "incoming vm %s: cannot prepare its state", id);
		rc = -EIO;
		goto out;
	}
	rc = vmm_launch(v, vm, "defer", lerr, sizeof(lerr));
	if (rc == 0) {
		rc = netif_bridge_add(vm->s.bridge, vm->tap);
		if (rc == 0)
			rc = netif_up(vm->tap);
		if (rc < 0)
			snprintf(lerr, sizeof(lerr), "tap %s on %s: %s", vm->tap, vm->s.bridge,
			         strerror(-rc));
	}
	if (rc == 0) {
		port = free_port(v->o.address);
		snprintf(uri, sizeof(uri), "tcp:%s:%d", v->o.address, port);
		if (port < 0 || qmp_command(vm->q, "migrate-incoming",
		                            json_pack("{s:s}", "uri", uri), NULL) < 0) {
			snprintf(lerr, sizeof(lerr), "migrate-incoming %s: %s", uri,
			         port < 0 ? strerror(-port) : qmp_errstr(vm->q));
			rc = -EIO;
		}
	}
	if (rc < 0) {
		*http = 500;
		snprintf(err, errlen, "incoming vm %s: %s", id, lerr);
		goto out;
	}
	if (vmm_add_vm(v, vm) < 0) {
		*http = 500;
		rc = -ENOMEM;
		goto out;
	}
	*out = json_pack("{s:s,s:i,s:i,s:s,s:s}", "id", id, "port", port, "pid", vm->pid, "tap",
	                 vm->tap, "dir", vm->dir);
	log_info("vm %s: waiting for its migration stream on %s (qemu %d)", id, uri, vm->pid);
	vm = NULL;
out:
	if (vm) {
		if (vm->pid)
			vmm_stop_qemu(v, vm, false);
		if (vm->dir[0])
			vmm_rm_tree(vm->dir);
		vmm_vm_free(vm);
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int vmm_incoming_end(struct vmm *v, const char *id, bool commit, int *http, char *err,
                     size_t errlen)
{
	struct vmm_vm *vm;
	int rc = 0;

	pthread_mutex_lock(&v->lock);
	vm = vmm_find(v, id);
	if (!vm || strcmp(vm->state, "incoming") != 0) {
		*http = 404;
		snprintf(err, errlen, "no incoming migration of vm '%.64s' on host %s", id,
		         v->o.host_id);
		rc = -ENOENT;
		goto out;
	}
	if (commit) {
		snprintf(vm->state, sizeof(vm->state), "running");
		vmm_write_spec(v, vm);
		vmm_balloon_polling(vm, 2);
		log_info("vm %s: now runs here (qemu %d)", id, vm->pid);
	} else {
		vmm_stop_qemu(v, vm, false);
		vmm_rm_tree(vm->dir);
		log_info("vm %s: incoming migration aborted; cleaned up", id);
		vmm_remove_vm(v, vm);
	}
out:
	pthread_mutex_unlock(&v->lock);
	return rc;
}

static void migration_phase(struct vmm *v, const char *id, const char *phase)
{
	freeReplyObject(store_command(v->redis, "HSET migration:%s phase %s updated %lld", id,
	                              phase, (long long)util_now_ms()));
}

/* The registry switch: the VM leaves this host's set and joins the
 * destination's, with the destination's process, in one transaction. */
static int registry_move(struct vmm *v, struct vmm_vm *vm, const char *to, json_t *inc)
{
	char pid[16];
	const char *dir = json_string_value(json_object_get(inc, "dir"));
	const char *tap = json_string_value(json_object_get(inc, "tap"));
	redisReply *r;

	snprintf(pid, sizeof(pid), "%lld",
	         (long long)json_integer_value(json_object_get(inc, "pid")));
	if (!dir || !tap)
		return -EPROTO;
	freeReplyObject(store_command(v->redis, "MULTI"));
	freeReplyObject(store_command(v->redis, "SREM vms_in_host:%s %s", v->o.host_id, vm->s.id));
	freeReplyObject(store_command(v->redis, "SADD vms_in_host:%s %s", to, vm->s.id));
	freeReplyObject(store_command(
	    v->redis,
	    "HSET vm_configs:%s host_id %s pid %s tap_device %s state running qmp_socket "
	    "%s/qmp.sock guest_stats %s/guest-stats.json serial_socket %s/guestload.sock",
	    vm->s.id, to, pid, tap, dir, dir, dir));
	freeReplyObject(store_command(v->redis, "DEL migration:%s", vm->s.id));
	r = store_command(v->redis, "EXEC");
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return -EIO;
	}
	freeReplyObject(r);
	return 0;
}

int vmm_migrate(struct vmm *v, const char *id, const char *to, json_t **out, int *http, char *err,
                size_t errlen)
{
	char url[300], dst_ip[64] = "", dst_api[160] = "", e[300] = "";
	struct vmm_vm *vm;
	json_t *inc = NULL, *spec = NULL, *q = NULL;
	redisReply *r;
	const char *step = "checks";
	bool reserved = false, dest_started = false, migrating = false, unlocked = false;
	int64_t t0 = util_mono_ms();
	int rc = 0, st;

	*out = NULL;
	pthread_mutex_lock(&v->lock);
	vm = vmm_find(v, id);
	if (!vm) {
		*http = 404;
		snprintf(err, errlen, "host %s runs no vm '%.64s'", v->o.host_id, id);
		rc = -ENOENT;
		goto out;
	}
	if (!util_valid_id(to)) {
		*http = 400;
		snprintf(err, errlen, "'to' must be a host id");
		rc = -EINVAL;
		goto out;
	}
	if (strcmp(to, v->o.host_id) == 0) {
		*http = 400;
		snprintf(err, errlen, "vm %s already runs on host %s", id, to);
		rc = -EINVAL;
		goto out;
	}
	if (strcmp(vm->state, "running") != 0 || !vm->q) {
		*http = 409;
		if (strcmp(vm->state, "migrating") == 0)
			snprintf(err, errlen, "vm %s is already being migrated", id);
		else
			snprintf(err, errlen, "vm %s is %s; it cannot be migrated now", id,
			         vm->q ? vm->state : "without QMP");
		rc = -EBUSY;
		goto out;
	}
	if (!vmm_redis_up(v)) {
		*http = 503;
		snprintf(err, errlen, "migrate vm %s: Redis is unreachable", id);
		rc = -EIO;
		goto out;
	}
	r = store_command(v->redis, "HMGET host_config:%s state last_seen", to);
	st = r && r->type == REDIS_REPLY_ARRAY && r->element[0]->type == REDIS_REPLY_STRING;
	if (st && r->element[1]->type == REDIS_REPLY_STRING &&
	    util_now_ms() - atoll(r->element[1]->str) > 15000) {
		*http = 409;
		snprintf(err, errlen, "migrate vm %s: host %s has not reported for %lld s (down?)",
		         id, to, (long long)(util_now_ms() - atoll(r->element[1]->str)) / 1000);
		freeReplyObject(r);
		rc = -EHOSTUNREACH;
		goto out;
	}
	if (!st || strcmp(r->element[0]->str, "up") != 0) {
		*http = st ? 409 : 404;
		snprintf(err, errlen, "migrate vm %s: host %s is %s", id, to,
		         st ? r->element[0]->str : "unknown");
		freeReplyObject(r);
		rc = -EHOSTUNREACH;
		goto out;
	}
	freeReplyObject(r);
	r = store_command(v->redis, "GET vmm_proxy_addr:%s", to);
	if (r && r->type == REDIS_REPLY_STRING)
		snprintf(dst_api, sizeof(dst_api), "%s", r->str);
	freeReplyObject(r);
	r = store_command(v->redis, "HGET host_id_to_ip %s", to);
	if (r && r->type == REDIS_REPLY_STRING)
		snprintf(dst_ip, sizeof(dst_ip), "%s", r->str);
	freeReplyObject(r);
	if (!dst_api[0] || !dst_ip[0]) {
		*http = 409;
		snprintf(err, errlen, "migrate vm %s: host %s has no agent address", id, to);
		rc = -EHOSTUNREACH;
		goto out;
	}
	/* one migration of a VM at a time, cluster-wide */
	r = store_command(v->redis, "HSETNX migration:%s vm %s", id, id);
	reserved = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	if (!reserved) {
		*http = 409;
		snprintf(err, errlen, "vm %s is already being migrated", id);
		rc = -EBUSY;
		goto out;
	}
	freeReplyObject(store_command(v->redis,
	                              "HSET migration:%s src %s dst %s started %lld phase prepare",
	                              id, v->o.host_id, to, (long long)util_now_ms()));
	snprintf(vm->state, sizeof(vm->state), "migrating");
	spec = vmm_spec_json(v, vm);
	/* The lock is not held while the VM moves: the host's other VMs and its
	 * API stay served. This VM is safe meanwhile: "migrating" keeps delete,
	 * a second migration and the balloon poller off it. Redis calls of this
	 * phase take the lock (the store is the driver's one connection). */
	pthread_mutex_unlock(&v->lock);
	unlocked = true;

	step = "starting the destination";
	snprintf(url, sizeof(url), "http://%s/v1/incoming", dst_api);
	st = httpc_json("POST", url, spec, v->o.token, v->o.boot_timeout_ms + 5000, &inc, e,
	                sizeof(e));
	if (st != 201 || !json_integer_value(json_object_get(inc, "port"))) {
		json_t *m = json_object_get(json_object_get(inc, "error"), "message");
		if (st > 0)
			snprintf(e, sizeof(e), "HTTP %d: %s", st,
			         json_is_string(m) ? json_string_value(m)
			                           : "no port in the answer");
		rc = -EIO;
		goto fail;
	}
	dest_started = true;
	/* what a restarted agent needs to finish or undo this migration */
	pthread_mutex_lock(&v->lock);
	freeReplyObject(store_command(
	    v->redis, "HSET migration:%s dst_pid %lld dst_tap %s dst_dir %s dst_api %s", id,
	    (long long)json_integer_value(json_object_get(inc, "pid")),
	    json_string_value(json_object_get(inc, "tap"))
	        ? json_string_value(json_object_get(inc, "tap"))
	        : "",
	    json_string_value(json_object_get(inc, "dir"))
	        ? json_string_value(json_object_get(inc, "dir"))
	        : "",
	    dst_api));
	migration_phase(v, id, "migrating");
	pthread_mutex_unlock(&v->lock);

	step = "QMP migrate";
	{
		char uri[128];
		json_t *params =
		    json_pack("{s:I}", "downtime-limit", (json_int_t)v->o.migrate_downtime_ms);
		if (v->o.migrate_bandwidth_mbit > 0)
			json_object_set_new(
			    params, "max-bandwidth",
			    json_integer((json_int_t)v->o.migrate_bandwidth_mbit * 125000));
		/* a guest that dirties memory faster than the link is slowed down
		 * until the migration converges, rather than never finishing */
		if (qmp_command(vm->q, "migrate-set-capabilities",
		                json_pack("{s:[{s:s,s:b}]}", "capabilities", "capability",
		                          "auto-converge", "state", 1),
		                NULL) < 0)
			log_warn("vm %s: auto-converge unavailable: %s", id, qmp_errstr(vm->q));
		if (qmp_command(vm->q, "migrate-set-parameters", params, NULL) < 0) {
			snprintf(e, sizeof(e), "migrate-set-parameters: %s", qmp_errstr(vm->q));
			rc = -EIO;
			goto fail;
		}
		snprintf(uri, sizeof(uri), "tcp:%s:%lld", dst_ip,
		         (long long)json_integer_value(json_object_get(inc, "port")));
		if (qmp_command(vm->q, "migrate", json_pack("{s:s}", "uri", uri), NULL) < 0) {
			snprintf(e, sizeof(e), "migrate %s: %s", uri, qmp_errstr(vm->q));
			rc = -EIO;
			goto fail;
		}
		migrating = true;
	}
	step = "following the migration";
	for (;;) {
		const char *status;
		json_decref(q);
		q = NULL;
		if (qmp_command(vm->q, "query-migrate", NULL, &q) < 0) {
			snprintf(e, sizeof(e), "query-migrate: %s", qmp_errstr(vm->q));
			rc = -EIO;
			goto fail;
		}
		status = json_string_value(json_object_get(q, "status"));
		if (status && strcmp(status, "completed") == 0)
			break;
		if (status && (!strcmp(status, "failed") || !strcmp(status, "cancelled"))) {
			json_t *de = json_object_get(q, "error-desc");
			snprintf(e, sizeof(e), "QEMU reports the migration %s%s%s", status,
			         de ? ": " : "", de ? json_string_value(de) : "");
			rc = -EIO;
			goto fail;
		}
		if (util_mono_ms() - t0 > v->o.migrate_timeout_ms) {
			snprintf(e, sizeof(e), "not done after %d ms", v->o.migrate_timeout_ms);
			rc = -ETIMEDOUT;
			goto fail;
		}
		vmm_sleep_ms(50);
	}
	/* from here the destination has the VM: only forward */
	pthread_mutex_lock(&v->lock);
	unlocked = false;
	step = "switching the registry";
	migration_phase(v, id, "switching");
	if (registry_move(v, vm, to, inc) < 0)
		log_error("vm %s: migrated to %s but the registry switch failed: the agents "
		          "reconcile it at their next start",
		          id, to);
	snprintf(url, sizeof(url), "http://%s/v1/incoming/%s/done", dst_api, id);
	st = httpc_json("POST", url, NULL, v->o.token, 10000, NULL, e, sizeof(e));
	if (st != 200)
		log_warn("vm %s: destination %s did not confirm: %s", id, to,
		         st > 0 ? "HTTP error" : e);
	{
		json_t *ram = json_object_get(q, "ram");
		char msg[200];
		*out = json_pack(
		    "{s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "vm", id, "from", v->o.host_id, "to", to,
		    "total_ms", (json_int_t)json_number_value(json_object_get(q, "total-time")),
		    "downtime_ms", (json_int_t)json_number_value(json_object_get(q, "downtime")),
		    "bytes", (json_int_t)json_number_value(json_object_get(ram, "transferred")),
		    "wall_ms", (json_int_t)(util_mono_ms() - t0));
		snprintf(msg, sizeof(msg), "to %s: total %lld ms, downtime %lld ms, %lld bytes", to,
		         (long long)json_integer_value(json_object_get(*out, "total_ms")),
		         (long long)json_integer_value(json_object_get(*out, "downtime_ms")),
		         (long long)json_integer_value(json_object_get(*out, "bytes")));
		vmm_event(v, "migration_done", id, msg);
		log_info("vm %s: migrated %s", id, msg);
	}
	/* the source QEMU stays paused after completion: end it */
	vmm_stop_qemu(v, vm, false);
	vmm_rm_tree(vm->dir);
	vmm_remove_vm(v, vm);
	goto out;
fail:
	if (unlocked) {
		pthread_mutex_lock(&v->lock);
		unlocked = false;
	}
	/* the VM keeps running here; nothing stays at the destination */
	if (migrating) {
		qmp_command(vm->q, "migrate_cancel", NULL, NULL);
		qmp_command(vm->q, "cont", NULL, NULL);
	}
	if (dest_started) {
		char e2[200];
		snprintf(url, sizeof(url), "http://%s/v1/incoming/%s", dst_api, id);
		httpc_json("DELETE", url, NULL, v->o.token, 15000, NULL, e2, sizeof(e2));
	}
	snprintf(vm->state, sizeof(vm->state), "running");
	*http = 502;
	snprintf(err, errlen, "migrate vm %s to %s: %s failed: %s", id, to, step, e);
	{
		char msg[300];
		snprintf(msg, sizeof(msg), "to %s: %s failed: %s", to, step, e);
		vmm_event(v, "migration_failed", id, msg);
	}
	log_warn("%s", err);
out:
	if (reserved && (rc < 0 || *out == NULL))
		freeReplyObject(store_command(v->redis, "DEL migration:%s", id));
	json_decref(spec);
	json_decref(inc);
	json_decref(q);
	pthread_mutex_unlock(&v->lock);
	return rc;
}
