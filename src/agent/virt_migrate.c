/* virt_migrate.c - live migration through libvirt, peer to peer, settled
 * from what both libvirts report; see virt.h. */
#include "agent/virt.h"
#include "agent/virt_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "common/util.h"

/* The registry after a migration that moved the VM: KEYS vm_configs:<id>,
 * vms_in_host:<src>, vms_in_host:<dst>, migration:<id>; ARGV src, dst, id.
 * One script: no reader sees the VM on two hosts or on none. The
 * destination's agent fills in its pid and tap when it reconciles (it may
 * have done so already: then only the record goes). */
static const char move_lua[] =
    "if redis.call('HGET', KEYS[1], 'host_id') ~= ARGV[2] then\n"
    "  redis.call('SREM', KEYS[2], ARGV[3])\n"
    "  redis.call('HSET', KEYS[1], 'host_id', ARGV[2], 'state', 'running', 'pid', '0')\n"
    "  redis.call('SADD', KEYS[3], ARGV[3])\n"
    "end\n"
    "redis.call('DEL', KEYS[4])\n"
    "return 1\n";

struct watch {
	struct virt *v;
	virDomainPtr dom;    /* source */
	virConnectPtr dconn; /* destination */
	char id[65], uuid[VIR_UUID_STRING_BUFLEN];
	int64_t t0;
	int64_t dest_running_ms; /* since t0; 0 not yet */
	bool aborted;
	volatile bool stop;
};

static bool dest_runs(virConnectPtr dc, const char *uuid)
{
	virDomainPtr d = virDomainLookupByUUIDString(dc, uuid);
	int st = 0, reason = 0;
	bool runs;

	if (!d)
		return false;
	runs = virDomainGetState(d, &st, &reason, 0) == 0 &&
	       (st == VIR_DOMAIN_RUNNING || st == VIR_DOMAIN_BLOCKED);
	virDomainFree(d);
	return runs;
}

/* Follows the migration while libvirt runs it: progress into migration:<id>,
 * the moment the guest runs on the destination, the timeout. */
static void *watch_main(void *arg)
{
	struct watch *w = arg;
	int64_t next_progress = 0;

	while (!w->stop) {
		int64_t now = util_mono_ms();
		if (!w->dest_running_ms && dest_runs(w->dconn, w->uuid))
			w->dest_running_ms = util_mono_ms() - w->t0;
		if (now >= next_progress) {
			virDomainJobInfo ji;
			next_progress = now + 250;
			if (virDomainGetJobInfo(w->dom, &ji) == 0 &&
			    ji.type != VIR_DOMAIN_JOB_NONE) {
				pthread_mutex_lock(&w->v->lock);
				if (virt_redis_up(w->v))
					freeReplyObject(store_command(
					    w->v->redis,
					    "HSET migration:%s phase transfer elapsed_ms %llu "
					    "data_processed %llu data_total %llu data_remaining "
					    "%llu",
					    w->id, (unsigned long long)ji.timeElapsed,
					    (unsigned long long)ji.dataProcessed,
					    (unsigned long long)ji.dataTotal,
					    (unsigned long long)ji.dataRemaining));
				pthread_mutex_unlock(&w->v->lock);
			}
		}
		if (!w->aborted && now - w->t0 > w->v->o.migrate_timeout_ms) {
			w->aborted = true;
			log_warn("vm %s: migration not done after %d ms: cancelling it", w->id,
			         w->v->o.migrate_timeout_ms);
			if (virDomainAbortJob(w->dom) < 0)
				log_warn("vm %s: cancelling the migration: %s", w->id,
				         virt_lasterr("failed"));
		}
		/* also how long the end of the migration waits for this thread */
		virt_sleep_ms(20);
	}
	return NULL;
}

/* Where does the VM run now? 1 destination, 0 source, -1 nowhere, 2 both.
 * A copy still paused for the migration is waited for, a few seconds. */
static int settle(struct virt *v, virConnectPtr c, virConnectPtr dc, const char *uuid)
{
	int64_t deadline = util_mono_ms() + 10000;

	for (;;) {
		virDomainPtr s = virDomainLookupByUUIDString(c, uuid);
		virDomainPtr d = dc ? virDomainLookupByUUIDString(dc, uuid) : NULL;
		int ss = 0, sr = 0, ds = 0, dr = 0;
		bool s_act =
		    s && virDomainIsActive(s) == 1 && virDomainGetState(s, &ss, &sr, 0) == 0;
		bool d_act =
		    d && virDomainIsActive(d) == 1 && virDomainGetState(d, &ds, &dr, 0) == 0;
		bool s_run = s_act && ss != VIR_DOMAIN_PAUSED;
		bool d_run = d_act && ds != VIR_DOMAIN_PAUSED;
		bool s_paused_mig = s_act && ss == VIR_DOMAIN_PAUSED;
		bool d_paused = d_act && ds == VIR_DOMAIN_PAUSED;

		if (s)
			virDomainFree(s);
		if (d)
			virDomainFree(d);
		if (d_run && !s_act)
			return 1;
		if (s_run && !d_act)
			return 0;
		if (s_run && d_run)
			return 2;
		if (!s_act && !d_act)
			return -1;
		if (util_mono_ms() > deadline) {
			/* a copy left paused: the one paused by the migration's end on the
			 * source is the one with the guest's state; resume nothing here,
			 * report what is */
			(void)v;
			return d_run ? 1 : s_run ? 0 : s_paused_mig ? 0 : d_paused ? 1 : -1;
		}
		virt_sleep_ms(100);
	}
}

static void job_figures(virConnectPtr dc, const char *uuid, json_t *out)
{
	virDomainPtr d = virDomainLookupByUUIDString(dc, uuid);
	virTypedParameterPtr p = NULL;
	unsigned long long total = 0, down = 0, bytes = 0;
	int type, np = 0;

	if (!d)
		return;
	/* the destination keeps the source's statistics of a completed
	 * migration (they travel in libvirt's migration cookie) */
	if (virDomainGetJobStats(d, &type, &p, &np, VIR_DOMAIN_JOB_STATS_COMPLETED) == 0) {
		virTypedParamsGetULLong(p, np, VIR_DOMAIN_JOB_TIME_ELAPSED, &total);
		virTypedParamsGetULLong(p, np, VIR_DOMAIN_JOB_DOWNTIME, &down);
		if (virTypedParamsGetULLong(p, np, VIR_DOMAIN_JOB_DATA_PROCESSED, &bytes) != 1)
			virTypedParamsGetULLong(p, np, VIR_DOMAIN_JOB_MEMORY_PROCESSED, &bytes);
		virTypedParamsFree(p, np);
	}
	json_object_set_new(out, "total_ms", json_integer((json_int_t)total));
	json_object_set_new(out, "downtime_ms", json_integer((json_int_t)down));
	json_object_set_new(out, "bytes", json_integer((json_int_t)bytes));
	virDomainFree(d);
}

/* Checks the destination host in the registry; its libvirt URI into uri. */
static int check_target(struct virt *v, const char *id, const char *to, char *uri, size_t cap,
                        int *http, char *err, size_t errlen)
{
	redisReply *r = store_command(
	    v->redis, "HMGET host_config:%s state last_seen libvirt_uri vm_enabled", to);
	int64_t now = store_time_ms(v->redis); /* last_seen is on Redis's clock */
	int rc = 0;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
	    r->element[0]->type != REDIS_REPLY_STRING) {
		*http = r ? 404 : 503;
		snprintf(err, errlen,
		         r ? "migrate vm %s: no host '%s' in the cluster"
		           : "migrate vm %s: Redis is unreachable",
		         id, to);
		rc = r ? -ENOENT : -EIO;
	} else if (strcmp(r->element[0]->str, "up") != 0) {
		*http = 409;
		snprintf(err, errlen, "migrate vm %s: host %s is %s", id, to, r->element[0]->str);
		rc = -EHOSTUNREACH;
	} else if (r->element[1]->type == REDIS_REPLY_STRING && now > 0 &&
	           now - atoll(r->element[1]->str) > 15000) {
		*http = 409;
		snprintf(err, errlen, "migrate vm %s: host %s has not reported for %lld s (down?)",
		         id, to, (long long)(now - atoll(r->element[1]->str)) / 1000);
		rc = -EHOSTUNREACH;
	} else if (r->element[3]->type == REDIS_REPLY_STRING &&
	           strcmp(r->element[3]->str, "0") == 0) {
		*http = 409;
		snprintf(err, errlen, "migrate vm %s: host %s only monitors (vm.enabled = false)",
		         id, to);
		rc = -EHOSTUNREACH;
	} else if (r->element[2]->type != REDIS_REPLY_STRING || !r->element[2]->str[0] ||
	           strlen(r->element[2]->str) >= cap) {
		*http = 409;
		snprintf(err, errlen, "migrate vm %s: host %s publishes no libvirt URI", id, to);
		rc = -EHOSTUNREACH;
	} else {
		snprintf(uri, cap, "%s", r->element[2]->str);
	}
	freeReplyObject(r);
	return rc;
}

int virt_migrate(struct virt *v, const char *id, const char *to, json_t **out, int *http, char *err,
                 size_t errlen)
{
	char uri[300] = "", uuid[VIR_UUID_STRING_BUFLEN], e[400] = "";
	virConnectPtr c = NULL, dc = NULL;
	virDomainPtr dom = NULL;
	virTypedParameterPtr params = NULL;
	struct watch w = {0};
	pthread_t wt;
	bool reserved = false, marked = false, watching = false;
	int np = 0, maxp = 0, rc = 0, where = 0, mrc;
	unsigned int flags;
	int64_t t0 = util_mono_ms();
	redisReply *r;
	struct virt_dom *d;

	*out = NULL;
	if (!util_valid_id(to)) {
		*http = 400;
		snprintf(err, errlen, "'to' must be a host id");
		return -EINVAL;
	}
	if (strcmp(to, v->o.host_id) == 0) {
		*http = 400;
		snprintf(err, errlen, "vm %s already runs on host %s", id, to);
		return -EINVAL;
	}
	c = virt_conn(v);
	if (!c) {
		*http = 503;
		snprintf(err, errlen, "migrate vm %s: libvirt at %s is not connected", id,
		         v->o.uri);
		return -ENOTCONN;
	}
	pthread_mutex_lock(&v->lock);
	d = virt_find(v, id);
	if (!d) {
		*http = 404;
		snprintf(err, errlen, "host %s runs no vm '%.64s'", v->o.host_id, id);
		rc = -ENOENT;
	} else if (d->migrating || d->transit || d->job) {
		*http = 409;
		snprintf(err, errlen, "vm %s is already being migrated", id);
		rc = -EBUSY;
	} else if (d->stopping || d->resizing) {
		*http = 409;
		snprintf(err, errlen, "vm %s is being %s", id, d->stopping ? "deleted" : "resized");
		rc = -EBUSY;
	} else if (!virt_redis_up(v)) {
		*http = 503;
		snprintf(err, errlen, "migrate vm %s: Redis is unreachable", id);
		rc = -EIO;
	} else {
		rc = check_target(v, id, to, uri, sizeof(uri), http, err, errlen);
	}
	if (rc == 0) {
		/* one migration of a VM at a time, cluster-wide */
		r = store_command(v->redis, "HSETNX migration:%s vm %s", id, id);
		reserved = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
		freeReplyObject(r);
		if (!reserved) {
			*http = 409;
			snprintf(err, errlen, "vm %s is already being migrated", id);
			rc = -EBUSY;
		} else {
			freeReplyObject(store_command(
			    v->redis,
			    "HSET migration:%s src %s dst %s uuid %s started %lld "
			    "phase prepare dst_uri %s",
			    id, v->o.host_id, to, d->uuid, (long long)util_now_ms(), uri));
			d->migrating = true;
			marked = true;
			snprintf(uuid, sizeof(uuid), "%s", d->uuid);
		}
	}
	pthread_mutex_unlock(&v->lock);
	if (rc < 0)
		goto out;

	dom = virDomainLookupByUUIDString(c, uuid);
	if (!dom) {
		*http = 404;
		snprintf(err, errlen, "host %s runs no vm '%.64s' any more", v->o.host_id, id);
		rc = -ENOENT;
		goto out;
	}
	dc = virt_open_peer(v, uri, e, sizeof(e));
	if (!dc) {
		*http = 502;
		snprintf(err, errlen, "migrate vm %s to %s: %s", id, to, e);
		rc = -EHOSTUNREACH;
		goto fail;
	}
	if (virDomainMigrateSetMaxDowntime(dom, (unsigned long long)v->o.migrate_downtime_ms, 0) <
	    0)
		log_warn("vm %s: downtime limit not set: %s", id, virt_lasterr("refused"));
	if (v->o.migrate_bandwidth_mbit > 0)
		virTypedParamsAddULLong(&params, &np, &maxp, VIR_MIGRATE_PARAM_BANDWIDTH,
		                        (unsigned long long)(v->o.migrate_bandwidth_mbit / 8 > 0
		                                                 ? v->o.migrate_bandwidth_mbit / 8
		                                                 : 1));
	/* live, libvirt to libvirt, defined there and not here afterwards; a
	 * guest that dirties memory faster than the link is slowed down until
	 * the migration converges, rather than never finishing */
	flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST |
	        VIR_MIGRATE_UNDEFINE_SOURCE | VIR_MIGRATE_AUTO_CONVERGE |
	        VIR_MIGRATE_ABORT_ON_ERROR;
	if (v->o.migrate_tls)
		flags |= VIR_MIGRATE_TLS;

	w.v = v;
	w.dom = dom;
	w.dconn = dc;
	w.t0 = t0;
	snprintf(w.id, sizeof(w.id), "%s", id);
	snprintf(w.uuid, sizeof(w.uuid), "%s", uuid);
	watching = pthread_create(&wt, NULL, watch_main, &w) == 0;
	log_info("vm %s: migrating to host %s (%s)", id, to, uri);
	mrc = virDomainMigrateToURI3(dom, uri, params, (unsigned)np, flags);
	if (mrc < 0)
		snprintf(e, sizeof(e), "%s", virt_lasterr("migration failed"));
	w.stop = true;
	if (watching)
		pthread_join(wt, NULL);

	/* libvirt's truth, whatever the call said */
	where = settle(v, c, dc, uuid);
	if (where == 1) {
		char k1[128], k2[128], k3[128], k4[128], msg[400];
		const char *keys[4] = {k1, k2, k3, k4}, *args[3] = {v->o.host_id, to, id};
		json_t *o = json_pack("{s:s,s:s,s:s}", "vm", id, "from", v->o.host_id, "to", to);
		int wrc = -EIO;
		snprintf(k1, sizeof(k1), "vm_configs:%s", id);
		snprintf(k2, sizeof(k2), "vms_in_host:%s", v->o.host_id);
		snprintf(k3, sizeof(k3), "vms_in_host:%s", to);
		snprintf(k4, sizeof(k4), "migration:%s", id);
		job_figures(dc, uuid, o);
		json_object_set_new(o, "dest_running_ms",
		                    json_integer((json_int_t)w.dest_running_ms));
		json_object_set_new(o, "wall_ms", json_integer((json_int_t)(util_mono_ms() - t0)));
		if (mrc < 0)
			json_object_set_new(o, "warning", json_string(e));
		pthread_mutex_lock(&v->lock);
		d = virt_find(v, id);
		if (d)
			d->migrating = false;
		marked = false;
		/* retried by the destination's reconcile if Redis refuses now */
		if (virt_redis_up(v)) {
			const char *argv[10] = {"EVAL", move_lua, "4"};
			for (int i = 0; i < 4; i++)
				argv[3 + i] = keys[i];
			for (int i = 0; i < 3; i++)
				argv[7 + i] = args[i];
			r = store_commandv(v->redis, 10, argv, NULL);
			wrc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -EIO;
			freeReplyObject(r);
		}
		if (wrc < 0)
			log_warn(
			    "vm %s: runs on %s now; Redis did not take the move: that host's agent "
			    "registers it when Redis is back",
			    id, to);
		reserved = false;
		snprintf(
		    msg, sizeof(msg),
		    "to %s: total %lld ms, downtime %lld ms, %lld bytes; runs there after %lld ms, "
		    "call %lld ms",
		    to, (long long)json_integer_value(json_object_get(o, "total_ms")),
		    (long long)json_integer_value(json_object_get(o, "downtime_ms")),
		    (long long)json_integer_value(json_object_get(o, "bytes")),
		    (long long)w.dest_running_ms,
		    (long long)json_integer_value(json_object_get(o, "wall_ms")));
		virt_event(v, "migration_done", id, msg);
		pthread_mutex_unlock(&v->lock);
		log_info("vm %s: migrated %s", id, msg);
		*out = o;
		rc = 0;
		goto out;
	}
	if (where == 0) {
		*http = 502;
		snprintf(err, errlen, "migrate vm %s to %s: %s; it keeps running on %s", id, to,
		         mrc < 0 ? e
		                 : "libvirt reported success but the destination does not run it",
		         v->o.host_id);
	} else if (where == 2) {
		*http = 500;
		snprintf(err, errlen,
		         "migrate vm %s to %s: it runs on both hosts (%s); the registry keeps %s",
		         id, to, mrc < 0 ? e : "libvirt reported success", v->o.host_id);
		log_error("%s", err);
	} else {
		*http = 500;
		snprintf(err, errlen, "migrate vm %s to %s: %s; it runs on neither host now", id,
		         to, mrc < 0 ? e : "libvirt reported success");
		log_error("%s", err);
	}
	rc = -EIO;
fail : {
	char msg[500];
	snprintf(msg, sizeof(msg), "%s", err);
	pthread_mutex_lock(&v->lock);
	virt_event(v, where < 0 && rc == -EIO ? "vm_lost" : "migration_failed", id, msg);
	pthread_mutex_unlock(&v->lock);
}
	log_warn("%s", err);
out:
	pthread_mutex_lock(&v->lock);
	if (marked) {
		d = virt_find(v, id);
		if (d)
			d->migrating = false;
	}
	if (reserved && virt_redis_up(v))
		freeReplyObject(store_command(v->redis, "DEL migration:%s", id));
	v->dirty = true; /* the registry follows at once */
	pthread_cond_signal(&v->wake);
	pthread_mutex_unlock(&v->lock);
	virTypedParamsFree(params, np);
	if (dom)
		virDomainFree(dom);
	if (dc)
		virConnectClose(dc);
	virConnectClose(c);
	return rc;
}
