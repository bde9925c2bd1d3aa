/* ctl_exec.c - acting on the plan: the leader lease, the round's decisions
 * (recommend or start migrations, and resizes through ctl_resize.c), the migration workers and the
 * measured relief after each migration. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/httpc.h"
#include "common/log.h"
#include "common/util.h"
#include "controller/ctl.h"

/* --- the lease ------------------------------------------------------------ */

/* {1, epoch}: renewed; {2, epoch}: acquired; {0, epoch}: another controller
 * holds it. Each acquisition takes a new epoch (leader_epoch): Redis's clock
 * in ms then, and above every epoch before, so epochs keep increasing even
 * after Redis lost its data. Agents refuse a request whose epoch is older
 * than one they have seen: a leader that lost its lease while it was about
 * to act is fenced off. */
static const char lease_lua[] =
    "local e = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return {1, e} end\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
    "  local t = tonumber(" STORE_LUA_NOW_MS ")\n"
    "  if t <= e then t = e + 1 end\n"
    "  redis.call('SET', KEYS[2], string.format('%d', t)) return {2, t} end\n"
    "return {0, e}\n";

/* 1 while this controller holds the lease with this epoch. */
static const char lease_check_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] "
    "then return 1 end return 0\n";

void ctl_lease(struct ctl *c)
{
	redisReply *r = store_command(c->redis, "EVAL %s 2 leader leader_epoch %s %lld", lease_lua,
	                              c->o.id, c->o.lease_ms);
	bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	          r->element[0]->type == REDIS_REPLY_INTEGER &&
	          r->element[1]->type == REDIS_REPLY_INTEGER;
	bool leader = ok && r->element[0]->integer > 0;
	int64_t epoch = ok ? (int64_t)r->element[1]->integer : 0;
	redisReply *who;

	if (r && !ok)
		log_warn("redis: the lease script answered %s",
		         r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
	freeReplyObject(r);
	/* the leader's API address, so a follower can name it (a follower
	 * writes nothing: the lease attempt above changes nothing unless free) */
	if (leader)
		freeReplyObject(store_command(c->redis, "SET controller:%s %s PX %lld", c->o.id,
		                              c->advertise, c->o.lease_ms));
	who = store_command(c->redis, "GET leader");
	pthread_mutex_lock(&c->lock);
	snprintf(c->leader_id, sizeof(c->leader_id), "%s",
	         who && who->type == REDIS_REPLY_STRING ? who->str : "");
	if (leader)
		c->epoch = epoch;
	if (leader != c->leader) {
		__atomic_store_n(&c->leader, leader, __ATOMIC_RELEASE);
		/* a standby writes nothing: its start is in its own log only */
		if (leader && !c->lease_seen)
			ctl_event(c, "controller_started", "mode", ctl_mode_names[c->o.mode],
			          "addr", c->advertise, NULL);
		if (leader)
			ctl_event(c, "leader_acquired", "mode", ctl_mode_names[c->o.mode], "addr",
			          c->advertise, "msg", "this controller acts", NULL);
		else
			ctl_event(c, "leader_lost", "msg", "another controller holds the lease",
			          "leader", c->leader_id, NULL);
	}
	c->lease_seen = true;
	pthread_mutex_unlock(&c->lock);
	freeReplyObject(who);
}

/* --- agents --------------------------------------------------------------- */

/* Is the lease still ours, with our epoch? Asked of Redis just before an
 * action: a controller paused past its lease (SIGSTOP, a VM freeze, a long
 * GC of the host) learns it here, not after it acted. */
static bool lease_held(struct ctl *c, int64_t epoch)
{
	char e[24];
	redisReply *r;
	bool held;

	snprintf(e, sizeof(e), "%lld", (long long)epoch);
	pthread_mutex_lock(&c->aux_lock);
	store_ensure(c->aux, util_mono_ms());
	r = store_command(c->aux, "EVAL %s 2 leader leader_epoch %s %s", lease_check_lua, c->o.id,
	                  e);
	held = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	pthread_mutex_unlock(&c->aux_lock);
	freeReplyObject(r);
	return held;
}

/* A FAULT hook for tests, named as such: LOADEASE_FAULT_ACTION_DELAY_MS
 * makes every action wait that long before its lease check, so a test can
 * pause (SIGSTOP) a leader that is about to act. Unset in production. */
static void fault_delay(const char *what)
{
	const char *v = getenv("LOADEASE_FAULT_ACTION_DELAY_MS");
	int64_t ms;

	if (!v || !util_parse_i64(v, &ms) || ms <= 0 || ms > 600000)
		return;
	log_warn("fault injection: waiting %lld ms before %s", (long long)ms, what);
	nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000}, NULL);
}

int64_t ctl_fence(struct ctl *c, const char *what, char *err, size_t errlen)
{
	int64_t epoch;

	fault_delay(what);
	pthread_mutex_lock(&c->lock);
	epoch = c->leader ? c->epoch : 0;
	pthread_mutex_unlock(&c->lock);
	if (epoch && lease_held(c, epoch))
		return epoch;
	snprintf(err, errlen,
	         "not acting (%s): this controller no longer holds the lease (epoch %lld)", what,
	         (long long)epoch);
	log_warn("%s", err);
	pthread_mutex_lock(&c->lock);
	/* until the next round's lease says otherwise */
	__atomic_store_n(&c->leader, false, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int ctl_agent_call(struct ctl *c, const char *api, const char *method, const char *path,
                   json_t *body, long timeout_ms, json_t **reply, char *err, size_t errlen)
{
	char url[512];
	int64_t epoch = 0;

	if (!api[0]) {
		snprintf(err, errlen, "the host has no agent address (vmm_proxy_addr)");
		return -EHOSTUNREACH;
	}
	if (strcmp(method, "GET") != 0) {
		char what[300];
		snprintf(what, sizeof(what), "%s %s://%s%s", method, tls_scheme(&c->o.tls), api,
		         path);
		if (!(epoch = ctl_fence(c, what, err, errlen)))
			return -EPERM;
	}
	/* the epoch goes with every action: the agent refuses one older than
	 * any it has seen */
	snprintf(url, sizeof(url), "%s://%s%s%sepoch=%lld", tls_scheme(&c->o.tls), api, path,
	         strchr(path, '?') ? "&" : "?", (long long)epoch);
	return httpc_json(method, url, body, c->o.token, timeout_ms, reply, err, errlen);
}

/* The message of an agent's JSON error, or a fallback. */
const char *ctl_agent_msg(json_t *reply, const char *fallback)
{
	const char *m =
	    json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
	return m ? m : fallback;
}

/* --- migrations ----------------------------------------------------------- */

bool ctl_mig_add(struct ctl *c, struct ctl_mig *m)
{
	struct ctl_vm *v = ctl_vm_find(c, m->vm);

	for (struct ctl_mig *x = m; x; x = x->then)
		if (ctl_mig_running(c, x->vm) || (v && v->migrating && x == m))
			return false;
	if (ctl_grow((void **)&c->migs, &c->cap_migs, c->nmigs, sizeof(*c->migs)) < 0)
		return false;
	m->started_ms = util_now_ms();
	c->migs[c->nmigs++] = m;
	return true;
}

static void mig_remove(struct ctl *c, struct ctl_mig *m)
{
	for (int i = 0; i < c->nmigs; i++)
		if (c->migs[i] == m) {
			c->migs[i] = c->migs[--c->nmigs];
			return;
		}
}

static void mig_free(struct ctl_mig *m)
{
	while (m) {
		struct ctl_mig *n = m->then;
		free(m);
		m = n;
	}
}

static void add_measure(struct ctl *c, const struct ctl_mig *m)
{
	struct ctl_measure *x;

	if (ctl_grow((void **)&c->measures, &c->cap_measures, c->nmeasures, sizeof(*c->measures)) <
	    0)
		return;
	x = &c->measures[c->nmeasures++];
	snprintf(x->vm, sizeof(x->vm), "%s", m->vm);
	snprintf(x->from, sizeof(x->from), "%s", m->from);
	snprintf(x->to, sizeof(x->to), "%s", m->to);
	memcpy(x->proj, m->proj, sizeof(x->proj));
	x->at_ms = util_now_ms() + c->o.measure_after_ms;
}

static void add_settle(struct ctl *c, const struct ctl_mig *m)
{
	struct ctl_settle *x;

	if (c->o.settle_s <= 0)
		return;
	if (ctl_grow((void **)&c->settles, &c->cap_settles, c->nsettles, sizeof(*c->settles)) < 0)
		return;
	x = &c->settles[c->nsettles++];
	snprintf(x->vm, sizeof(x->vm), "%s", m->vm);
	snprintf(x->from, sizeof(x->from), "%s", m->from);
	snprintf(x->to, sizeof(x->to), "%s", m->to);
	x->until_ms = util_now_ms() + c->o.settle_s * 1000;
}

static const char last_migration_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  redis.call('HSET', KEYS[1], 'last_migration', ARGV[1]) end\n"
    "return 0\n";

static void set_last_migration(struct ctl *c, const char *vm)
{
	pthread_mutex_lock(&c->aux_lock);
	if (store_ensure(c->aux, util_mono_ms()))
		freeReplyObject(store_command(c->aux, "EVAL %s 1 vm_configs:%s %lld",
		                              last_migration_lua, vm, (long long)util_now_ms()));
	pthread_mutex_unlock(&c->aux_lock);
}

static void fmt_proj(const struct ctl_mig *m, char out[4][32])
{
	for (int i = 0; i < 4; i++)
		ctl_fmt_double(out[i], sizeof(out[i]), m->proj[i]);
}

/* One migration; 0 or -EIO. */
static int run_one(struct ctl *c, struct ctl_mig *m, json_t **result, int *http, char *err,
                   size_t errlen)
{
	char api[128] = "", path[128], p[4][32], cost[32];
	json_t *body = json_pack("{s:s}", "to", m->to), *reply = NULL;
	int64_t t0 = util_mono_ms();
	int st;

	fmt_proj(m, p);
	ctl_fmt_double(cost, sizeof(cost), m->cost_s);
	{
		char what[200];
		snprintf(what, sizeof(what), "migrating %s from %s to %s", m->vm, m->from, m->to);
		if (!ctl_fence(c, what, err, errlen)) {
			json_decref(body);
			*http = 503;
			return -EPERM;
		}
	}
	ctl_event(c, "migration_started", "by", m->by, "vm", m->vm, "from", m->from, "to", m->to,
	          "res", m->res, "kind", m->kind, "reason", m->reason, "src_vol_before", p[0],
	          "src_vol_after", p[1], "dst_vol_before", p[2], "dst_vol_after", p[3], "cost_s",
	          cost, NULL);
	pthread_mutex_lock(&c->lock);
	{
		struct ctl_host *h = ctl_host_find(c, m->from);
		if (h)
			snprintf(api, sizeof(api), "%s", h->api);
	}
	pthread_mutex_unlock(&c->lock);
	/* ?log=caller: its end is logged here, once (not also by the agent) */
	snprintf(path, sizeof(path), "/v1/vms/%s/migrate?log=caller", m->vm);
	st = ctl_agent_call(c, api, "POST", path, body, c->o.migrate_timeout_ms, &reply, err,
	                    errlen);
	json_decref(body);
	set_last_migration(c, m->vm);
	if (st == 200) {
		char tot[24], down[24], bytes[24], wall[24];
		snprintf(tot, sizeof(tot), "%lld",
		         (long long)json_integer_value(json_object_get(reply, "total_ms")));
		snprintf(down, sizeof(down), "%lld",
		         (long long)json_integer_value(json_object_get(reply, "downtime_ms")));
		snprintf(bytes, sizeof(bytes), "%lld",
		         (long long)json_integer_value(json_object_get(reply, "bytes")));
		snprintf(wall, sizeof(wall), "%lld", (long long)(util_mono_ms() - t0));
		ctl_event(c, "migration_done", "by", m->by, "vm", m->vm, "from", m->from, "to",
		          m->to, "total_ms", tot, "downtime_ms", down, "bytes", bytes, "wall_ms",
		          wall, "reason", m->reason, NULL);
		pthread_mutex_lock(&c->lock);
		c->m.mig_ok++;
		c->m.mig_seconds += (double)(util_mono_ms() - t0) / 1000.0;
		add_measure(c, m);
		add_settle(c, m);
		pthread_mutex_unlock(&c->lock);
		if (result) {
			json_object_set_new(reply, "reason", json_string(m->reason));
			*result = reply;
			reply = NULL;
		}
		json_decref(reply);
		*http = 200;
		return 0;
	}
	if (st > 0)
		snprintf(err, errlen, "agent of %s: HTTP %d: %s", m->from, st,
		         ctl_agent_msg(reply, "no message"));
	else {
		char e2[300];
		snprintf(e2, sizeof(e2), "agent of %s unreachable: %s", m->from, err);
		snprintf(err, errlen, "%s", e2);
	}
	*http = st == 409 || st == 404 ? st : 502;
	ctl_event(c, "migration_failed", "by", m->by, "vm", m->vm, "from", m->from, "to", m->to,
	          "msg", err, "reason", m->reason, NULL);
	pthread_mutex_lock(&c->lock);
	c->m.mig_failed++;
	pthread_mutex_unlock(&c->lock);
	json_decref(reply);
	return -EIO;
}

int ctl_migrate_run(struct ctl *c, struct ctl_mig *m, json_t **result, int *http, char *err,
                    size_t errlen)
{
	int rc = 0;

	for (struct ctl_mig *cur = m; cur; cur = cur->then) {
		if (rc == -EPERM)
			break; /* fenced: a controller that does not lead writes nothing */
		if (rc < 0) {
			ctl_event(c, "migration_failed", "by", cur->by, "vm", cur->vm, "from",
			          cur->from, "to", cur->to, "msg",
			          "not started: the swap's first half failed", NULL);
			continue;
		}
		rc = run_one(c, cur, cur == m ? result : NULL, http, err, errlen);
	}
	pthread_mutex_lock(&c->lock);
	mig_remove(c, m);
	for (struct ctl_mig *cur = m; cur; cur = cur->then) {
		struct ctl_vm *v = ctl_vm_find(c, cur->vm);
		if (v)
			v->ours_ended_ms = util_mono_ms();
	}
	pthread_mutex_unlock(&c->lock);
	mig_free(m);
	return rc;
}

struct worker_arg {
	struct ctl *c;
	struct ctl_mig *m;
};

static void *worker_main(void *arg)
{
	struct worker_arg *w = arg;
	char err[400];
	int http;

	ctl_migrate_run(w->c, w->m, NULL, &http, err, sizeof(err));
	free(w);
	return NULL;
}

/* --- the round's decisions --------------------------------------------------- */

static struct ctl_mig *mig_from_action(struct ctl *c, const struct plan_action *a)
{
	struct ctl_mig *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	snprintf(m->vm, sizeof(m->vm), "%s", c->model.vms[a->vm].id);
	snprintf(m->from, sizeof(m->from), "%s", c->model.hosts[a->from].id);
	snprintf(m->to, sizeof(m->to), "%s", c->model.hosts[a->to].id);
	snprintf(m->reason, sizeof(m->reason), "%s", a->reason);
	snprintf(m->kind, sizeof(m->kind), "%s", plan_kind_name(a->kind));
	snprintf(m->res, sizeof(m->res), "%s",
	         a->res >= 0 && a->res < RES_N ? ctl_res_names[a->res] : "");
	m->proj[0] = a->src_vol_before;
	m->proj[1] = a->src_vol_after;
	m->proj[2] = a->dst_vol_before;
	m->proj[3] = a->dst_vol_after;
	m->cost_s = a->cost_s;
	return m;
}

int ctl_spawn(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = -pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return rc;
}

int ctl_migrate_start(struct ctl *c, struct ctl_mig *m)
{
	struct worker_arg *w = malloc(sizeof(*w));
	int rc = 0;

	if (!w) {
		mig_remove(c, m);
		mig_free(m);
		return -ENOMEM;
	}
	w->c = c;
	w->m = m;
	rc = ctl_spawn(worker_main, w);
	if (rc < 0) {
		log_error("cannot start a migration thread for vm %s", m->vm);
		mig_remove(c, m);
		free(w);
		mig_free(m);
	}
	return rc;
}

static void start_worker(struct ctl *c, struct ctl_mig *m)
{
	if (!ctl_mig_add(c, m)) {
		mig_free(m);
		return;
	}
	ctl_migrate_start(c, m);
}

/* Is action i (or its swap's other half) on a VM of automation manual? */
static bool action_manual(const struct ctl *c, int i)
{
	const struct plan_action *a = &c->plan.actions[i];

	for (int j = 0; j < c->plan.nactions; j++) {
		const struct plan_action *b = &c->plan.actions[j];
		if ((j == i || (a->kind == PLAN_SWAP && b->swap_id == a->swap_id)) &&
		    c->model.vms[b->vm].automation == CL_MANUAL)
			return true;
	}
	return false;
}

/* Logs the plan's actions (only those of VMs of automation manual when
 * manual_only: auto mode) as `recommend`, once per change of the plan. */
static void log_recommendations(struct ctl *c, bool manual_only)
{
	char sig[sizeof(c->plan_sig)] = "";
	size_t off = 0;

	for (int i = 0; i < c->plan.nactions; i++) {
		const struct plan_action *a = &c->plan.actions[i];
		if (manual_only && !action_manual(c, i))
			continue;
		off += (size_t)snprintf(sig + off, off < sizeof(sig) ? sizeof(sig) - off : 0,
		                        "%d:%d>%d:%g,%g;", a->vm, a->from, a->to, a->vcpus_after,
		                        a->mem_after);
		if (off >= sizeof(sig))
			off = sizeof(sig) - 1;
	}
	if (strcmp(sig, c->plan_sig) == 0)
		return;
	snprintf(c->plan_sig, sizeof(c->plan_sig), "%s", sig);
	for (int i = 0; i < c->plan.nactions; i++) {
		const struct plan_action *a = &c->plan.actions[i];
		struct ctl_mig *m;
		char p[4][32], cost[32];
		if (manual_only && !action_manual(c, i))
			continue;
		m = mig_from_action(c, a);
		if (!m)
			continue;
		if (a->kind == PLAN_RESIZE) {
			char vb[32], va[32], mb[32], ma[32];
			ctl_fmt_double(vb, sizeof(vb), a->vcpus_before);
			ctl_fmt_double(va, sizeof(va), a->vcpus_after);
			ctl_fmt_double(mb, sizeof(mb), a->mem_before);
			ctl_fmt_double(ma, sizeof(ma), a->mem_after);
			ctl_event(c, "recommend", "vm", m->vm, "host", m->from, "kind", "resize",
			          "res", m->res, "reason", m->reason, "vcpus_before", vb,
			          "vcpus_after", va, "mem_before", mb, "mem_after", ma, "mode",
			          ctl_mode_names[ctl_rt_effective_mode(c)], "automation",
			          cluster_automation_name(c->model.vms[a->vm].automation), NULL);
			free(m);
			continue;
		}
		fmt_proj(m, p);
		ctl_fmt_double(cost, sizeof(cost), m->cost_s);
		ctl_event(c, "recommend", "vm", m->vm, "from", m->from, "to", m->to, "res", m->res,
		          "reason", m->reason, "src_vol_before", p[0], "src_vol_after", p[1],
		          "dst_vol_before", p[2], "dst_vol_after", p[3], "cost_s", cost, "mode",
		          ctl_mode_names[ctl_rt_effective_mode(c)], "automation",
		          cluster_automation_name(c->model.vms[a->vm].automation), NULL);
		free(m);
	}
}

static void log_unresolved(struct ctl *c)
{
	bool *listed = calloc((size_t)c->nhosts + 1, sizeof(bool));

	for (int i = 0; i < c->plan.nunresolved; i++) {
		const struct plan_unresolved *u = &c->plan.unresolved[i];
		struct ctl_host *h;
		if (u->host < 0 || u->host >= c->nhosts)
			continue;
		h = c->hosts[u->host];
		if (listed)
			listed[u->host] = true;
		if (h->why == (int)u->why)
			continue;
		h->why = (int)u->why;
		ctl_event(c, "unresolved", "host", h->id, "why", plan_why_name(u->why), "reason",
		          u->reason, "mode", ctl_mode_names[ctl_rt_effective_mode(c)], NULL);
	}
	for (int i = 0; listed && i < c->nhosts; i++)
		if (!listed[i])
			c->hosts[i]->why = WHY_NONE;
	free(listed);
}

void ctl_decide(struct ctl *c)
{
	int mode;

	pthread_mutex_lock(&c->lock);
	mode = ctl_rt_effective_mode(c); /* recommend outside the migration windows */
	/* a standby only reads: it neither logs the plan nor acts on it */
	if (mode == MODE_OFF || !c->have_plan || !c->leader) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	log_unresolved(c);
	if (mode == MODE_RECOMMEND) {
		log_recommendations(c, false);
	} else {
		log_recommendations(c, true); /* automation manual: an operator acts */
		for (int i = 0; i < c->plan.nactions; i++) {
			const struct plan_action *a = &c->plan.actions[i];
			struct ctl_mig *m;
			if (action_manual(c, i)) {
				if (a->kind == PLAN_SWAP && i + 1 < c->plan.nactions &&
				    c->plan.actions[i + 1].swap_id == a->swap_id)
					i++;
				continue;
			}
			if (a->kind == PLAN_RESIZE) {
				ctl_resize_start(c, a);
				continue;
			}
			m = mig_from_action(c, a);
			if (!m)
				break;
			if (a->kind == PLAN_SWAP && i + 1 < c->plan.nactions &&
			    c->plan.actions[i + 1].swap_id == a->swap_id) {
				m->then = mig_from_action(c, &c->plan.actions[i + 1]);
				i++;
			}
			start_worker(c, m);
		}
	}
	pthread_mutex_unlock(&c->lock);
}

/* Mean of the host's last n samples of resource r. */
static double recent_mean(const struct ctl_host *h, int r, size_t n)
{
	double buf[64], s = 0;
	size_t k;

	if (n > 64)
		n = 64;
	k = ring_copy_last(&h->prof[r].win, buf, n);
	for (size_t i = 0; i < k; i++)
		s += buf[i];
	return k ? s / (double)k : 0;
}

void ctl_measure_due(struct ctl *c)
{
	int64_t now = util_now_ms();
	int j = 0;

	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->nmeasures; i++) {
		struct ctl_measure *x = &c->measures[i];
		struct ctl_host *s, *d;
		if (x->at_ms > now) {
			c->measures[j++] = *x;
			continue;
		}
		s = ctl_host_find(c, x->from);
		d = ctl_host_find(c, x->to);
		if (s && d) {
			double su[RES_N], du[RES_N];
			char sv[32], dv[32], sc[32], dc[32], sm[32], dm[32], sn[32], dn[32], p1[32],
			    p3[32];
			for (int r = 0; r < RES_N; r++) {
				su[r] = recent_mean(s, r, c->ro.rule[r].n);
				du[r] = recent_mean(d, r, c->ro.rule[r].n);
			}
			ctl_fmt_double(sv, sizeof(sv), cluster_volume(su));
			ctl_fmt_double(dv, sizeof(dv), cluster_volume(du));
			ctl_fmt_double(sc, sizeof(sc), su[RES_CPU]);
			ctl_fmt_double(dc, sizeof(dc), du[RES_CPU]);
			ctl_fmt_double(sm, sizeof(sm), su[RES_MEM]);
			ctl_fmt_double(dm, sizeof(dm), du[RES_MEM]);
			ctl_fmt_double(sn, sizeof(sn), su[RES_NET]);
			ctl_fmt_double(dn, sizeof(dn), du[RES_NET]);
			ctl_fmt_double(p1, sizeof(p1), x->proj[1]);
			ctl_fmt_double(p3, sizeof(p3), x->proj[3]);
			ctl_event(c, "migration_measured", "vm", x->vm, "from", x->from, "to",
			          x->to, "src_vol", sv, "dst_vol", dv, "src_vol_after", p1,
			          "dst_vol_after", p3, "src_cpu", sc, "dst_cpu", dc, "src_mem", sm,
			          "dst_mem", dm, "src_net", sn, "dst_net", dn, NULL);
		}
	}
	c->nmeasures = j;
	pthread_mutex_unlock(&c->lock);
}
