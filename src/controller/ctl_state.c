/* ctl_state.c - one round's reads: the registry and the new stream entries
 * from Redis into the controller's hosts and VMs, then the model and the
 * plan. Redis I/O happens without the lock; applying it takes the lock. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "controller/ctl.h"

const char *const ctl_res_names[RES_N] = {"cpu", "mem", "net"};

static bool truthy(const char *s)
{
	return !strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on");
}

/* A number from Redis data: finite and within [lo, hi], else def. */
static double num(const char *s, double lo, double hi, double def)
{
	double v;

	if (!s[0] || !util_parse_double(s, &v) || !isfinite(v) || v < lo || v > hi)
		return def;
	return v;
}

/* --- lookup: arrays kept sorted by id ---------------------------------- */

/* Hosts and VMs start with their id: one lookup and one constructor serve
 * both arrays (of pointers, kept sorted by id). */
static int cmp_entity(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Index of id among n elements of size stride from base, sorted by the id
 * each begins with (through a pointer when deref), or -1. */
static int sorted_index(const void *base, int n, size_t stride, bool deref, const char *id)
{
	int lo = 0, hi = n - 1;

	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		const char *e = (const char *)base + (size_t)mid * stride;
		int d = strcmp(deref ? *(const char *const *)e : e, id);
		if (d == 0)
			return mid;
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

static int entity_index(void *const *arr, int n, const char *id)
{
	return sorted_index(arr, n, sizeof(*arr), true, id);
}

/* The model's hosts are the controller's, in order; its VMs the
 * controller's with a known host: both sorted by id. */
int ctl_model_host(const struct cluster *m, const char *id)
{
	return sorted_index(m->hosts, m->nhosts, sizeof(*m->hosts), false, id);
}

int ctl_model_vm(const struct cluster *m, const char *id)
{
	return sorted_index(m->vms, m->nvms, sizeof(*m->vms), false, id);
}

int ctl_grow(void **arr, int *cap, int n, size_t elem)
{
	void *na;
	int ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	na = realloc(*arr, elem * (size_t)ncap);
	if (!na)
		return -ENOMEM;
	*arr = na;
	*cap = ncap;
	return 0;
}

int ctl_host_index(const struct ctl *c, const char *id)
{
	return entity_index((void *const *)c->hosts, c->nhosts, id);
}

struct ctl_host *ctl_host_find(struct ctl *c, const char *id)
{
	int i = ctl_host_index(c, id);
	return i < 0 ? NULL : c->hosts[i];
}

struct ctl_vm *ctl_vm_find(struct ctl *c, const char *id)
{
	int i = entity_index((void *const *)c->vms, c->nvms, id);
	return i < 0 ? NULL : c->vms[i];
}

static void profiles_free(struct profile p[RES_N])
{
	for (int r = 0; r < RES_N; r++)
		profile_release(&p[r]);
}

static int profiles_init(struct profile p[RES_N], size_t window)
{
	for (int r = 0; r < RES_N; r++)
		if (profile_init(&p[r], window) < 0) {
			profiles_free(p);
			return -ENOMEM;
		}
	return 0;
}

/* The entity with that id, made (zeroed, id and profiles set, array kept
 * sorted) when there is none. */
static void *entity_get(void ***arr, int *n, int *cap, size_t size, size_t prof_off, size_t window,
                        const char *id)
{
	int i = entity_index(*arr, *n, id);
	char *e;

	if (i >= 0)
		return (*arr)[i];
	if (ctl_grow((void **)arr, cap, *n, sizeof(void *)) < 0)
		return NULL;
	e = calloc(1, size);
	if (!e || profiles_init((struct profile *)(e + prof_off), window) < 0) {
		free(e);
		return NULL;
	}
	snprintf(e, CTL_ID_MAX, "%s", id);
	(*arr)[(*n)++] = e;
	qsort(*arr, (size_t)*n, sizeof(void *), cmp_entity);
	return e;
}

static struct ctl_host *host_get(struct ctl *c, const char *id)
{
	return entity_get((void ***)&c->hosts, &c->nhosts, &c->cap_hosts, sizeof(struct ctl_host),
	                  offsetof(struct ctl_host, prof), (size_t)c->o.window, id);
}

static struct ctl_vm *vm_get(struct ctl *c, const char *id)
{
	return entity_get((void ***)&c->vms, &c->nvms, &c->cap_vms, sizeof(struct ctl_vm),
	                  offsetof(struct ctl_vm, prof), (size_t)c->o.window, id);
}

/* --- what one round reads ---------------------------------------------- */

struct rd_host {
	char id[CTL_ID_MAX];
	redisReply *cfg, *vms, *api, *ip, *ts;
};

struct rd_vm {
	char id[CTL_ID_MAX];
	char host[CTL_ID_MAX];
	redisReply *cfg, *mig, *ts, *rules;
};

struct rd {
	int64_t redis_ms, mono_ms; /* TIME, and when we read it */
	struct rd_host *h;
	int nh;
	struct rd_vm *v;
	int nv, capv;
};

static void rd_free(struct rd *rd)
{
	for (int i = 0; i < rd->nh; i++) {
		freeReplyObject(rd->h[i].cfg);
		freeReplyObject(rd->h[i].vms);
		freeReplyObject(rd->h[i].api);
		freeReplyObject(rd->h[i].ip);
		freeReplyObject(rd->h[i].ts);
	}
	for (int i = 0; i < rd->nv; i++) {
		freeReplyObject(rd->v[i].cfg);
		freeReplyObject(rd->v[i].mig);
		freeReplyObject(rd->v[i].rules);
		freeReplyObject(rd->v[i].ts);
	}
	free(rd->h);
	free(rd->v);
	memset(rd, 0, sizeof(*rd));
}

/* Appends one command of n string arguments. */
static int app(struct store *s, int n, ...)
{
	const char *argv[8];
	size_t lens[8];
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n && i < 8; i++) {
		argv[i] = va_arg(ap, const char *);
		lens[i] = strlen(argv[i]);
	}
	va_end(ap);
	return store_append(s, n, argv, lens);
}

static const char *key(char *buf, size_t cap, const char *prefix, const char *id)
{
	snprintf(buf, cap, "%s%s", prefix, id);
	return buf;
}

/* A host or VM id from a set member: NULL when it is not a valid id. */
static const char *reply_id(const redisReply *e)
{
	return e->type == REDIS_REPLY_STRING && util_valid_id(e->str) && strlen(e->str) < CTL_ID_MAX
	           ? e->str
	           : NULL;
}

/* The stream read of one key: the newest `window` entries the first time,
 * then what came after the last entry read. */
static int append_ts(struct store *s, const char *kind, const char *id, const char *last,
                     long long window)
{
	char key[128], start[40], count[24];

	snprintf(key, sizeof(key), "ts:%s:%s", kind, id);
	snprintf(count, sizeof(count), "%lld", window);
	if (!last[0]) {
		const char *argv[] = {"XREVRANGE", key, "+", "-", "COUNT", count};
		size_t lens[] = {9, strlen(key), 1, 1, 5, strlen(count)};
		return store_append(s, 6, argv, lens);
	}
	snprintf(start, sizeof(start), "(%s", last);
	{
		const char *argv[] = {"XRANGE", key, start, "+", "COUNT", count};
		size_t lens[] = {6, strlen(key), strlen(start), 1, 5, strlen(count)};
		return store_append(s, 6, argv, lens);
	}
}

static int take(struct store *s, redisReply **out)
{
	*out = store_reply(s);
	return *out ? 0 : -EIO;
}

/* Reads the registry and the streams. The last ids come from the state
 * (copied under the lock). */
static int read_all(struct ctl *c, struct rd *rd)
{
	struct store *s = c->redis;
	redisReply *ids;
	int rc = 0;

	rd->redis_ms = store_time_ms(s);
	rd->mono_ms = util_mono_ms();
	ids = store_command(s, "SMEMBERS host_ids");

	if (!ids)
		return -EIO;
	if (ids->type != REDIS_REPLY_ARRAY) {
		log_warn("redis: host_ids is not a set");
		freeReplyObject(ids);
		return -EPROTO;
	}
	rd->h = calloc(ids->elements + 1, sizeof(*rd->h));
	if (!rd->h) {
		freeReplyObject(ids);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ids->elements; i++) {
		const char *id = reply_id(ids->element[i]);
		if (id)
			snprintf(rd->h[rd->nh++].id, CTL_ID_MAX, "%s", id);
	}
	freeReplyObject(ids);

	/* the lock only for the streams' last ids: appending is no I/O */
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < rd->nh && !rc; i++) {
		const char *id = rd->h[i].id;
		struct ctl_host *h = ctl_host_find(c, id);
		char k[128];
		rc |= app(s, 2, "HGETALL", key(k, sizeof(k), "host_config:", id));
		rc |= app(s, 2, "SMEMBERS", key(k, sizeof(k), "vms_in_host:", id));
		rc |= app(s, 2, "GET", key(k, sizeof(k), "vmm_proxy_addr:", id));
		rc |= app(s, 3, "HGET", "host_id_to_ip", id);
		rc |= append_ts(s, "host", id, h ? h->last_id : "", c->o.window);
	}
	pthread_mutex_unlock(&c->lock);
	for (int i = 0; i < rd->nh && !rc; i++)
		rc |= take(s, &rd->h[i].cfg) | take(s, &rd->h[i].vms) | take(s, &rd->h[i].api) |
		      take(s, &rd->h[i].ip) | take(s, &rd->h[i].ts);
	if (rc)
		return -EIO;

	for (int i = 0; i < rd->nh; i++) {
		redisReply *m = rd->h[i].vms;
		if (!m || m->type != REDIS_REPLY_ARRAY)
			continue;
		for (size_t j = 0; j < m->elements; j++) {
			const char *vid = reply_id(m->element[j]);
			if (!vid)
				continue;
			if (ctl_grow((void **)&rd->v, &rd->capv, rd->nv, sizeof(*rd->v)) < 0)
				return -ENOMEM;
			memset(&rd->v[rd->nv], 0, sizeof(rd->v[0]));
			snprintf(rd->v[rd->nv].id, CTL_ID_MAX, "%s", vid);
			snprintf(rd->v[rd->nv].host, CTL_ID_MAX, "%s", rd->h[i].id);
			rd->nv++;
		}
	}
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < rd->nv && !rc; i++) {
		const char *id = rd->v[i].id;
		struct ctl_vm *v = ctl_vm_find(c, id);
		char k[128];
		rc |= app(s, 2, "HGETALL", key(k, sizeof(k), "vm_configs:", id));
		rc |= app(s, 2, "HGETALL", key(k, sizeof(k), "migration:", id));
		rc |= app(s, 2, "HGETALL", key(k, sizeof(k), "vm_rules:", id));
		rc |= append_ts(s, "vm", id, v ? v->last_id : "", c->o.window);
	}
	pthread_mutex_unlock(&c->lock);
	for (int i = 0; i < rd->nv && !rc; i++)
		rc |= take(s, &rd->v[i].cfg) | take(s, &rd->v[i].mig) | take(s, &rd->v[i].rules) |
		      take(s, &rd->v[i].ts);
	return rc ? -EIO : 0;
}

/* Pushes the cpu, mem and net of stream entries into profiles; entries come
 * newest first when `reversed`. Bad values are skipped. For a VM (vm_mem_mib
 * > 0) mem is the larger of what the guest uses and what its QEMU holds on
 * the host (rss_mib + swap_mib): the host's memory is what a move relieves,
 * and a guest's freed pages stay resident without a balloon. */
static void push_entries(redisReply *ts, bool reversed, struct profile prof[RES_N],
                         double last[RES_N], bool has_last[RES_N], char *last_id, size_t idcap,
                         double vm_mem_mib)
{
	size_t n;

	if (!ts || ts->type != REDIS_REPLY_ARRAY)
		return;
	n = ts->elements;
	for (size_t k = 0; k < n; k++) {
		redisReply *e = ts->element[reversed ? n - 1 - k : k];
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING)
			continue;
		for (int r = 0; r < RES_N; r++) {
			double v = num(store_hget(e->element[1], ctl_res_names[r]), 0, 1000, NAN);
			if (r == RES_MEM && vm_mem_mib > 0 && !isnan(v)) {
				double held = num(store_hget(e->element[1], "rss_mib"), 0, 1e9, 0) +
				              num(store_hget(e->element[1], "swap_mib"), 0, 1e9, 0);
				if (held / vm_mem_mib > v)
					v = held / vm_mem_mib;
			}
			if (isnan(v))
				continue;
			profile_push(&prof[r], v);
			last[r] = v;
			has_last[r] = true;
		}
		snprintf(last_id, idcap, "%s", e->element[0]->str);
	}
}

static void apply_host(struct ctl *c, struct ctl_host *h, const struct rd_host *r, bool first)
{
	const char *st = store_hget(r->cfg, "state");

	h->seen = true;
	snprintf(h->state, sizeof(h->state), "%s",
	         !strcmp(st, "up") || !strcmp(st, "down") || !strcmp(st, "maintenance") ? st
	                                                                                : "down");
	h->excluded = truthy(store_hget(r->cfg, "exclude"));
	h->monitor_only = !strcmp(store_hget(r->cfg, "vm_enabled"), "0");
	h->down_by_us = !strcmp(store_hget(r->cfg, "down_by"), "controller");
	h->cap[RES_CPU] = num(store_hget(r->cfg, "cpu"), 0, 1e6, 0);
	h->cap[RES_MEM] = num(store_hget(r->cfg, "mem"), 0, 1e12, 0);
	h->cap[RES_NET] = num(store_hget(r->cfg, "net"), 0, 1e9, 0);
	h->last_seen = (int64_t)num(store_hget(r->cfg, "last_seen"), 0, 1e15, 0);
	snprintf(h->api, sizeof(h->api), "%s",
	         r->api && r->api->type == REDIS_REPLY_STRING ? r->api->str : "");
	snprintf(h->ip, sizeof(h->ip), "%s",
	         r->ip && r->ip->type == REDIS_REPLY_STRING ? r->ip->str : "");
	push_entries(r->ts, first, h->prof, h->last, h->has_last, h->last_id, sizeof(h->last_id),
	             0);
}

static void apply_vm(struct ctl *c, struct ctl_vm *v, const struct rd_vm *r, bool first)
{
	const char *st = store_hget(r->cfg, "state");

	v->seen = true;
	snprintf(v->host, sizeof(v->host), "%s", r->host);
	snprintf(v->state, sizeof(v->state), "%s", st[0] ? st : "unknown");
	v->vcpus = num(store_hget(r->cfg, "cpu"), 0, 1e5, 1);
	v->mem_mib = num(store_hget(r->cfg, "mem"), 0, 1e9, 0);
	v->max_vcpus = num(store_hget(r->cfg, "max_cpu"), 0, 1e5, 0);
	v->max_mem_mib = num(store_hget(r->cfg, "max_mem"), 0, 1e9, 0);
	v->pid = (int64_t)num(store_hget(r->cfg, "pid"), 0, 1e10, 0);
	snprintf(v->tap, sizeof(v->tap), "%s", store_hget(r->cfg, "tap_device"));
	snprintf(v->uuid, sizeof(v->uuid), "%s", store_hget(r->cfg, "uuid"));
	v->managed = truthy(store_hget(r->cfg, "managed"));
	snprintf(v->pin, sizeof(v->pin), "%s", store_hget(r->cfg, "pin"));
	snprintf(v->group, sizeof(v->group), "%s", store_hget(r->cfg, "group"));
	snprintf(v->anti_group, sizeof(v->anti_group), "%s", store_hget(r->cfg, "anti_group"));
	v->exclude = truthy(store_hget(r->cfg, "exclude"));
	ctl_rt_vm_rules(c, v, r->rules); /* an operator's rules set at run time win */
	v->last_migration = (int64_t)num(store_hget(r->cfg, "last_migration"), 0, 1e15, 0);
	v->migrating = r->mig && r->mig->type == REDIS_REPLY_ARRAY && r->mig->elements > 0;
	snprintf(v->mig_src, sizeof(v->mig_src), "%s", store_hget(r->mig, "src"));
	snprintf(v->mig_dst, sizeof(v->mig_dst), "%s", store_hget(r->mig, "dst"));
	snprintf(v->mig_phase, sizeof(v->mig_phase), "%s", store_hget(r->mig, "phase"));
	v->mig_started = (int64_t)num(store_hget(r->mig, "started"), 0, 1e15, 0);
	v->mig_data_done = (int64_t)num(store_hget(r->mig, "data_processed"), 0, 1e15, 0);
	v->mig_data_total = (int64_t)num(store_hget(r->mig, "data_total"), 0, 1e15, 0);
	push_entries(r->ts, first, v->prof, v->last, v->has_last, v->last_id, sizeof(v->last_id),
	             v->mem_mib);
}

/* Migrations this controller did not start (another controller's, a
 * manual one through an agent, or ours before a restart): reported when
 * first seen and where the VM ended when their record goes. */
static void watch_migrations(struct ctl *c, struct ctl_vm *v, bool was_migrating,
                             const char *was_dst)
{
	/* ours, or ours that just ended: a read made before its end may still
	 * show the agent's record (logged once, by its worker) */
	bool ours = ctl_mig_running(c, v->id) ||
	            (v->ours_ended_ms && util_mono_ms() - v->ours_ended_ms < 2 * c->o.round_ms);

	if (!c->leader)
		return; /* a standby only reads: the leader follows these */
	if (v->migrating && !ours && !v->watched) {
		v->watched = true;
		ctl_event(c, "migration_adopted", "vm", v->id, "from", v->mig_src, "to", v->mig_dst,
		          "msg", v->mig_phase[0] ? v->mig_phase : "in flight", NULL);
	} else if (!v->migrating && v->watched) {
		v->watched = false;
		ctl_event(
		    c, "migration_reconciled", "vm", v->id, "host", v->host, "to", was_dst, "msg",
		    strcmp(v->host, was_dst) == 0 ? "the migration completed: one copy runs on "
		                                    "the destination"
		                                  : "the migration did not complete: the VM "
		                                    "stays on its source",
		    NULL);
	}
	(void)was_migrating;
}

static void remove_unseen(struct ctl *c)
{
	int j = 0;

	for (int i = 0; i < c->nhosts; i++) {
		if (c->hosts[i]->seen) {
			c->hosts[j++] = c->hosts[i];
			continue;
		}
		log_info("host %s left the registry", c->hosts[i]->id);
		profiles_free(c->hosts[i]->prof);
		free(c->hosts[i]);
	}
	c->nhosts = j;
	j = 0;
	for (int i = 0; i < c->nvms; i++) {
		if (c->vms[i]->seen) {
			c->vms[j++] = c->vms[i];
			continue;
		}
		profiles_free(c->vms[i]->prof);
		free(c->vms[i]);
	}
	c->nvms = j;
}

static int apply(struct ctl *c, const struct rd *rd)
{
	for (int i = 0; i < c->nhosts; i++)
		c->hosts[i]->seen = false;
	for (int i = 0; i < c->nvms; i++)
		c->vms[i]->seen = false;
	for (int i = 0; i < rd->nh; i++) {
		struct ctl_host *h = host_get(c, rd->h[i].id);
		if (!h)
			return -ENOMEM;
		apply_host(c, h, &rd->h[i], !h->last_id[0]);
	}
	for (int i = 0; i < rd->nv; i++) {
		bool was_migrating;
		char was_dst[CTL_ID_MAX];
		struct ctl_vm *v = vm_get(c, rd->v[i].id);
		if (!v)
			return -ENOMEM;
		if (v->seen) {
			/* listed under two hosts: a registry that is being switched or
			 * is broken; the first listing stays */
			log_debug("vm %s is listed under hosts %s and %s", v->id, v->host,
			          rd->v[i].host);
			continue;
		}
		was_migrating = v->migrating;
		snprintf(was_dst, sizeof(was_dst), "%s", v->mig_dst);
		apply_vm(c, v, &rd->v[i], !v->last_id[0]);
		watch_migrations(c, v, was_migrating, was_dst);
	}
	remove_unseen(c);
	return 0;
}

/* --- the model ----------------------------------------------------------- */

double ctl_host_volume(const struct ctl_host *h)
{
	double u[RES_N];

	for (int r = 0; r < RES_N; r++)
		u[r] = h->sum[r].n ? h->sum[r].peak : 0;
	return cluster_volume(u);
}

const struct ctl_mig *ctl_mig_find(struct ctl *c, const char *vm)
{
	for (int i = 0; i < c->nmigs; i++)
		for (struct ctl_mig *m = c->migs[i]; m; m = m->then)
			if (strcmp(m->vm, vm) == 0)
				return m;
	return NULL;
}

bool ctl_mig_running(struct ctl *c, const char *vm)
{
	return ctl_mig_find(c, vm) != NULL;
}

/* Interns group names as small integers for the planner. */
static int intern(char (*names)[CTL_ID_MAX], int *n, int cap, const char *s)
{
	if (!s[0])
		return -1;
	for (int i = 0; i < *n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	if (*n == cap)
		return -1;
	snprintf(names[*n], CTL_ID_MAX, "%s", s);
	return (*n)++;
}

/* VM vi's demand, and its part of the forecast and of the forecast's error
 * (risk.h, as plan.c's projection counts them), taken off host `from` and put
 * on `to`: the samples of both still show where it was. */
static void shift(struct cluster *m, int vi, int from, int to)
{
	const struct cl_vm *v = &m->vms[vi];

	for (int r = 0; r < RES_N; r++) {
		if (from >= 0) {
			struct cl_host *f = &m->hosts[from];
			f->load[r] = f->load[r] > v->demand[r] ? f->load[r] - v->demand[r] : 0;
			if (v->risk_known) {
				f->fc[r] = f->fc[r] > v->fc[r] ? f->fc[r] - v->fc[r] : 0;
				f->ms[r] += v->ms[r] - 2 * v->cov[r];
				if (f->ms[r] < 0)
					f->ms[r] = 0;
			}
		}
		if (to >= 0) {
			m->hosts[to].load[r] += v->demand[r];
			if (v->risk_known) {
				m->hosts[to].fc[r] += v->fc[r];
				m->hosts[to].ms[r] += v->ms[r];
			}
		}
	}
}

/* The model as the moves under way will leave it: a migrating VM counts on
 * its destination, a VM that arrived within settle_s is taken off its old
 * host's measured load and put on its new one's. A hot flag whose host is
 * projected under its threshold is cleared: its relief is under way, and a
 * second move would relieve it twice. */
static void project_moves(struct ctl *c)
{
	struct cluster *m = &c->model;
	int64_t now = util_now_ms();
	int j = 0;

	for (int i = 0; i < c->nhosts; i++)
		for (int r = 0; r < RES_N; r++)
			c->hosts[i]->meas_hot[r] = m->hosts[i].hot[r];
	for (int i = 0; i < c->nvms; i++) {
		struct ctl_vm *v = c->vms[i];
		const char *src = v->mig_src, *dst = v->mig_dst;
		int vi, from, to;
		if (!v->migrating) {
			src = dst = NULL;
			for (int k = 0; k < c->nmigs && !dst; k++)
				if (!strcmp(c->migs[k]->vm, v->id)) {
					src = c->migs[k]->from;
					dst = c->migs[k]->to;
				}
		}
		if (!dst || !dst[0] || (vi = ctl_model_vm(m, v->id)) < 0)
			continue;
		from = ctl_host_index(c, src && src[0] ? src : v->host);
		to = ctl_host_index(c, dst);
		if (to < 0 || to == from)
			continue;
		/* before the registry switch the VM is listed on its source; after
		 * it (a migration that just ended, its worker not yet done) on its
		 * destination: either way the source's samples still count it */
		shift(m, vi, from, to);
		m->vms[vi].host = to;
	}
	for (int i = 0; i < c->nsettles; i++) {
		struct ctl_settle *x = &c->settles[i];
		int vi = ctl_model_vm(m, x->vm);
		if (x->until_ms <= now)
			continue;
		c->settles[j++] = *x;
		if (vi < 0 || ctl_mig_running(c, x->vm))
			continue;
		if (m->vms[vi].host == ctl_host_index(c, x->to)) {
			shift(m, vi, ctl_host_index(c, x->from), m->vms[vi].host);
		} else if (m->vms[vi].host == ctl_host_index(c, x->from) &&
		           ctl_host_index(c, x->to) >= 0) {
			/* the migration ended after this round read the registry,
			 * which still lists the VM on its source: it is on its
			 * destination (a CI run once moved a second VM off a host
			 * already relieved, in that gap) */
			shift(m, vi, m->vms[vi].host, ctl_host_index(c, x->to));
			m->vms[vi].host = ctl_host_index(c, x->to);
		}
	}
	c->nsettles = j;
	for (int i = 0; i < m->nhosts; i++)
		for (int r = 0; r < RES_N; r++)
			if (m->hosts[i].hot[r] &&
			    m->hosts[i].load[r] <= m->hosts[i].thr[r] * m->hosts[i].cap[r])
				m->hosts[i].hot[r] = false;
}

static int build_model(struct ctl *c)
{
	struct cluster *m = &c->model;
	int npins = 0, ngroups = 0, cap_groups = c->nvms * 2 + 1;
	char(*groups)[CTL_ID_MAX] = calloc((size_t)cap_groups, CTL_ID_MAX);
	int64_t now = util_now_ms();

	free(m->hosts);
	free(m->vms);
	free(c->pins);
	m->hosts = calloc((size_t)c->nhosts + 1, sizeof(*m->hosts));
	m->vms = calloc((size_t)c->nvms + 1, sizeof(*m->vms));
	for (int i = 0; i < c->nvms; i++)
		for (const char *p = c->vms[i]->pin; *p; p++)
			npins += *p == ',';
	c->pins = calloc((size_t)(npins + c->nvms + 1), sizeof(int));
	m->nhosts = m->nvms = 0;
	if (!m->hosts || !m->vms || !c->pins || !groups) {
		free(groups);
		return -ENOMEM;
	}
	npins = 0;
	for (int i = 0; i < c->nhosts; i++) {
		struct ctl_host *h = c->hosts[i];
		struct cl_host *mh = &m->hosts[i];
		cluster_host_defaults(mh);
		snprintf(mh->id, sizeof(mh->id), "%s", h->id);
		mh->state = !strcmp(h->state, "up")            ? HOST_UP
		            : !strcmp(h->state, "maintenance") ? HOST_MAINTENANCE
		                                               : HOST_DOWN;
		/* a host without a VM layer cannot take or give a VM */
		mh->excluded = h->excluded || h->monitor_only;
		for (int r = 0; r < RES_N; r++) {
			mh->cap[r] = h->cap[r];
			mh->headroom[r] = c->o.headroom[r];
			profile_summarize(&h->prof[r], &c->ro.rule[r], c->ro.peak_pct, c->scratch,
			                  &h->sum[r]);
		}
		mh->overcommit_cpu = c->o.overcommit_cpu;
		mh->overcommit_mem = c->o.overcommit_mem;
		round_host(mh, h->prof, &c->ro, c->scratch);
		if (mh->state != HOST_UP)
			for (int r = 0; r < RES_N; r++)
				mh->hot[r] = false; /* stale or leaving: not a hotspot to relieve */
		h->volume = ctl_host_volume(h);
		h->nvms = 0;
		h->inflight = 0;
	}
	m->nhosts = c->nhosts;
	for (int i = 0; i < c->nvms; i++) {
		struct ctl_vm *v = c->vms[i];
		struct cl_vm *mv = &m->vms[m->nvms];
		int hi = ctl_host_index(c, v->host);
		char pins[512], *save = NULL;
		if (hi < 0)
			continue;
		cluster_vm_defaults(mv);
		snprintf(mv->id, sizeof(mv->id), "%s", v->id);
		mv->host = hi;
		mv->vcpus = v->vcpus > 0 ? v->vcpus : 1;
		mv->mem_mib = v->mem_mib;
		round_vm(mv, v->prof, c->hosts[hi]->cap[RES_NET], &c->ro, c->scratch);
		round_vm_risk(mv, v->prof, c->hosts[hi]->prof, c->hosts[hi]->cap, &c->ro,
		              c->scratch);
		/* resizable up to its domain's maxima, unless our last resize of it
		 * failed within the cooldown: then a move is the way */
		if (!v->resize_failed_ms || now - v->resize_failed_ms >= c->po.cooldown_ms) {
			mv->max_vcpus = v->max_vcpus > mv->vcpus ? v->max_vcpus : 0;
			mv->max_mem_mib = v->max_mem_mib > 0 ? v->max_mem_mib : 0;
		}
		/* a VM being resized is not moved or resized again meanwhile */
		mv->migrating =
		    v->migrating || ctl_mig_running(c, v->id) || ctl_resize_find(c, v->id);
		mv->excluded = v->exclude || strcmp(c->hosts[hi]->state, "down") == 0;
		mv->automation = (enum cl_automation)v->automation;
		mv->last_moved_ms = v->last_migration;
		mv->group = intern(groups, &ngroups, cap_groups, v->group);
		mv->anti_group = intern(groups, &ngroups, cap_groups, v->anti_group);
		if (mv->anti_group >= 0)
			mv->anti_group += cap_groups; /* its own name space */
		if (v->pin[0]) {
			mv->pin = &c->pins[npins];
			snprintf(pins, sizeof(pins), "%s", v->pin);
			for (char *t = strtok_r(pins, ", ", &save); t;
			     t = strtok_r(NULL, ", ", &save)) {
				int pi = ctl_host_index(c, t);
				if (pi >= 0)
					c->pins[npins + mv->npin++] = pi;
			}
			npins += mv->npin;
			if (mv->npin == 0)
				mv->excluded = true; /* pinned to hosts that do not exist */
		}
		c->hosts[hi]->nvms++;
		if (mv->migrating) {
			int s = ctl_host_index(c, v->mig_src[0] ? v->mig_src : v->host);
			int d = ctl_host_index(c, v->mig_dst);
			if (s >= 0)
				c->hosts[s]->inflight++;
			if (d >= 0)
				c->hosts[d]->inflight++;
		}
		m->nvms++;
	}
	for (int i = 0; i < c->nmigs; i++) {
		/* ours, not yet visible as a record */
		struct ctl_vm *v = ctl_vm_find(c, c->migs[i]->vm);
		if (v && !v->migrating) {
			int s = ctl_host_index(c, c->migs[i]->from),
			    d = ctl_host_index(c, c->migs[i]->to);
			if (s >= 0)
				c->hosts[s]->inflight++;
			if (d >= 0)
				c->hosts[d]->inflight++;
		}
	}
	for (int i = 0; i < c->nhosts; i++)
		m->hosts[i].inflight = c->hosts[i]->inflight;
	free(groups);
	project_moves(c);
	c->po.now_ms = now;
	if (c->have_plan)
		plan_result_free(&c->plan);
	c->have_plan = false;
	if (plan_compute(m, &c->po, &c->plan) == 0)
		c->have_plan = true;
	return 0;
}

/* Each host that holds no VM any more (and has none coming or going), once
 * per spell: host_empty, so an operator or a hook can power it down. A host
 * empty since this controller started is shown empty (API) but not logged. */
static void empty_events(struct ctl *c)
{
	for (int i = 0; i < c->nhosts; i++) {
		struct ctl_host *h = c->hosts[i];
		bool was = h->empty;
		h->empty = h->nvms == 0 && h->inflight == 0;
		if (h->nvms > 0)
			h->had_vms = true;
		if (h->empty && !was && h->had_vms && !strcmp(h->state, "up") && c->leader)
			ctl_event(
			    c, "host_empty", "host", h->id, "objective",
			    plan_objective_name(c->po.objective), "msg",
			    c->po.objective == PLAN_PACK
			        ? "no VMs left: packed onto other hosts; it can be powered down"
			        : "no VMs left; it can be powered down",
			    NULL);
	}
}

/* Hot transitions of each host's resources, as events. */
static void hot_events(struct ctl *c)
{
	int64_t now = util_now_ms();

	for (int i = 0; i < c->nhosts; i++) {
		struct ctl_host *h = c->hosts[i];
		for (int r = 0; r < RES_N; r++) {
			bool hot = h->meas_hot[r];
			char u[32], f[32], d[32];
			if (hot == h->hot[r])
				continue;
			h->hot[r] = hot;
			if (hot)
				h->hot_since[r] = now;
			if (!c->leader)
				continue; /* a standby shows it (API) and logs nothing */
			ctl_fmt_double(u, sizeof(u), h->sum[r].last);
			ctl_fmt_double(f, sizeof(f), h->sum[r].ar1.forecast);
			if (hot) {
				ctl_event(c, "hotspot", "host", h->id, "res", ctl_res_names[r],
				          "util", u, "forecast", f, NULL);
			} else {
				ctl_fmt_double(d, sizeof(d),
				               (double)(now - h->hot_since[r]) / 1000.0);
				ctl_event(c, "hotspot_cleared", "host", h->id, "res",
				          ctl_res_names[r], "util", u, "hot_s", d, NULL);
			}
		}
	}
}

/* Marks hosts down whose heartbeat stopped, and up again when it is back
 * (only those we marked). The check-and-set is one script, so an agent
 * registering or an operator's maintenance in between is never overwritten. */
static const char set_state_lua[] =
    "if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', ARGV[2])\n"
    "if ARGV[2] == 'down' then redis.call('HSET', KEYS[1], 'down_by', 'controller')\n"
    "else redis.call('HDEL', KEYS[1], 'down_by') end\n"
    "return 1\n";

int64_t ctl_now_ms(const struct ctl *c)
{
	return c->redis_ms > 0 ? c->redis_ms + (util_mono_ms() - c->redis_mono_ms) : util_now_ms();
}

static void host_liveness(struct ctl *c)
{
	int64_t now = ctl_now_ms(c);

	for (int i = 0; i < c->nhosts; i++) {
		struct ctl_host *h = c->hosts[i];
		bool stale = now - h->last_seen > c->o.down_after_ms;
		const char *from = NULL, *to = NULL;
		redisReply *r;
		char age[32];
		if (!c->leader)
			break;
		if (!strcmp(h->state, "up") && stale)
			from = "up", to = "down";
		else if (!strcmp(h->state, "down") && h->down_by_us && !stale)
			from = "down", to = "up";
		if (!from)
			continue;
		r = store_command(c->redis, "EVAL %s 1 host_config:%s %s %s", set_state_lua, h->id,
		                  from, to);
		if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
			snprintf(h->state, sizeof(h->state), "%s", to);
			h->down_by_us = !strcmp(to, "down");
			ctl_fmt_double(age, sizeof(age), (double)(now - h->last_seen) / 1000.0);
			if (h->down_by_us)
				ctl_event(c, "host_down", "host", h->id, "age_s", age, "msg",
				          "no heartbeat: not a target; its VMs are unreachable",
				          NULL);
			else
				ctl_event(c, "host_up", "host", h->id, "msg", "heartbeat back",
				          NULL);
		}
		freeReplyObject(r);
	}
}

int ctl_refresh(struct ctl *c)
{
	struct rd rd = {0};
	int rc = read_all(c, &rd);

	if (rc < 0) {
		rd_free(&rd);
		return rc;
	}
	pthread_mutex_lock(&c->lock);
	if (rd.redis_ms > 0) {
		c->redis_ms = rd.redis_ms;
		c->redis_mono_ms = rd.mono_ms;
	}
	rc = apply(c, &rd);
	if (rc == 0) {
		host_liveness(c);
		rc = build_model(c);
	}
	if (rc == 0) {
		hot_events(c);
		empty_events(c);
	}
	pthread_mutex_unlock(&c->lock);
	rd_free(&rd);
	return rc;
}

void ctl_state_free(struct ctl *c)
{
	for (int i = 0; i < c->nhosts; i++) {
		profiles_free(c->hosts[i]->prof);
		free(c->hosts[i]);
	}
	for (int i = 0; i < c->nvms; i++) {
		profiles_free(c->vms[i]->prof);
		free(c->vms[i]);
	}
	free(c->hosts);
	free(c->vms);
	free(c->model.hosts);
	free(c->model.vms);
	free(c->pins);
	if (c->have_plan)
		plan_result_free(&c->plan);
	for (int i = 0; i < c->nmigs; i++) {
		struct ctl_mig *m = c->migs[i], *n;
		for (; m; m = n) {
			n = m->then;
			free(m);
		}
	}
	free(c->migs);
	for (int i = 0; i < c->nresizes; i++)
		free(c->resizes[i]);
	free(c->resizes);
	free(c->measures);
	free(c->settles);
}
