/* ctl_events.c - the decision log: entries of the Redis `events` stream and
 * lines of a JSON-lines file; the follower that wakes long polls and
 * server-sent-event streams; queries for the API. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "controller/ctl.h"

const char *const ctl_event_types[] = {"controller_started",
                                       "leader_acquired",
                                       "leader_lost",
                                       "hotspot",
                                       "hotspot_cleared",
                                       "recommend",
                                       "unresolved",
                                       "migration_started",
                                       "migration_done",
                                       "migration_failed",
                                       "migration_measured",
                                       "migration_adopted",
                                       "migration_reconciled",
                                       "resize_started",
                                       "resize_done",
                                       "resize_failed",
                                       "host_empty",
                                       "host_down",
                                       "host_up",
                                       "maintenance_on",
                                       "maintenance_off",
                                       "vm_placed",
                                       "vm_place_refused",
                                       "vm_deleted",
                                       "vm_delete_refused",
                                       "migration_refused",
                                       "resize_refused",
                                       "maintenance_refused",
                                       "rule_changed",
                                       "mode_changed",
                                       "windows_changed",
                                       "window_opened",
                                       "window_closed",
                                       NULL};

int ctl_event_type_index(const char *type)
{
	for (int i = 0; ctl_event_types[i]; i++)
		if (strcmp(ctl_event_types[i], type) == 0)
			return i;
	return -1;
}

char *ctl_fmt_double(char *buf, size_t cap, double v)
{
	snprintf(buf, cap, "%.4g", v);
	return buf;
}

#define EV_MAX_FIELDS 24

bool ctl_is_leader(const struct ctl *c)
{
	return __atomic_load_n(&c->leader, __ATOMIC_ACQUIRE);
}

void ctl_event(struct ctl *c, const char *type, ...)
{
	const char *argv[6 + 2 * (EV_MAX_FIELDS + 4)];
	size_t lens[sizeof(argv) / sizeof(argv[0])];
	const char *keys[EV_MAX_FIELDS], *vals[EV_MAX_FIELDS];
	char maxlen[24], ts[24], self[CTL_ID_MAX + 16];
	const char *by = self;
	json_t *j = json_object();
	int n = 0, nf = 0, ti = ctl_event_type_index(type);
	va_list ap;
	redisReply *r = NULL;

	snprintf(maxlen, sizeof(maxlen), "%lld", c->o.events_maxlen);
	snprintf(ts, sizeof(ts), "%lld", (long long)util_now_ms());
	snprintf(self, sizeof(self), "controller:%s", c->o.id);
	va_start(ap, type);
	while (nf < EV_MAX_FIELDS) {
		const char *k = va_arg(ap, const char *), *v;
		if (!k)
			break;
		v = va_arg(ap, const char *);
		if (!v || !v[0])
			continue;
		if (strcmp(k, "by") == 0) {
			by = v; /* who asked: this controller acts for them */
			continue;
		}
		keys[nf] = k;
		vals[nf++] = v;
	}
	va_end(ap);
	argv[n++] = "XADD";
	argv[n++] = "events";
	argv[n++] = "MAXLEN";
	argv[n++] = "~";
	argv[n++] = maxlen;
	argv[n++] = "*";
	argv[n++] = "type";
	argv[n++] = type;
	argv[n++] = "ts";
	argv[n++] = ts;
	argv[n++] = "by";
	argv[n++] = by;
	json_object_set_new(j, "type", json_string(type));
	json_object_set_new(j, "ts", json_integer(atoll(ts)));
	json_object_set_new(j, "by", json_string(by));
	if (by != self) {
		argv[n++] = "via";
		argv[n++] = self;
		json_object_set_new(j, "via", json_string(self));
	}
	for (int f = 0; f < nf; f++) {
		argv[n++] = keys[f];
		argv[n++] = vals[f];
		json_object_set_new(j, keys[f], json_string(vals[f]));
	}
	for (int i = 0; i < n; i++)
		lens[i] = strlen(argv[i]);

	if (ti >= 0 && ti < (int)(sizeof(c->m.decisions) / sizeof(c->m.decisions[0])))
		__atomic_add_fetch(&c->m.decisions[ti], 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&c->aux_lock);
	if (store_ensure(c->aux, util_mono_ms()))
		r = store_commandv(c->aux, n, argv, lens);
	if (r && r->type == REDIS_REPLY_STRING)
		json_object_set_new(j, "id", json_string(r->str));
	else
		log_warn("events: %s not stored in redis: %s", type,
		         r                   ? r->str
		         : c->aux->errstr[0] ? c->aux->errstr
		                             : "not connected");
	freeReplyObject(r);
	pthread_mutex_unlock(&c->aux_lock);

	{
		char *line = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
		if (line) {
			log_info("event %s", line);
			pthread_mutex_lock(&c->dlog_lock);
			if (c->dlog) {
				fprintf(c->dlog, "%s\n", line);
				fflush(c->dlog);
			}
			pthread_mutex_unlock(&c->dlog_lock);
			free(line);
		}
	}
	json_decref(j);
}

void ctl_refuse(struct ctl *c, const struct httpd_req *req, struct httpd_resp *resp,
                const char *type, int status, const char *code, json_t *extra, const char *vm,
                const char *host, const char *fmt, ...)
{
	char msg[2048], by[CTL_BY_MAX], st[16];
	json_t *e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e = json_pack("{s:s,s:s}", "code", code, "message", msg);
	if (extra)
		json_object_update(e, extra);
	json_decref(extra);
	httpd_resp_json(resp, status, json_pack("{s:o}", "error", e));
	if (!ctl_is_leader(c)) {
		log_info("%s (not logged: this controller is not the leader): %s", type, msg);
		return;
	}
	snprintf(st, sizeof(st), "%d", status);
	ctl_event(c, type, "by", ctl_api_caller(c, req, by, sizeof(by)), "vm", vm, "host", host,
	          "status", st, "code", code, "reason", msg, NULL);
}

int ctl_events_reopen(struct ctl *c, const char *path)
{
	FILE *f = NULL, *old;

	if (path[0] && !(f = fopen(path, "ae")))
		return -errno;
	pthread_mutex_lock(&c->dlog_lock);
	old = c->dlog;
	c->dlog = f;
	pthread_mutex_unlock(&c->dlog_lock);
	if (old)
		fclose(old);
	return 0;
}

/* Follows the events stream (XREAD BLOCK) and wakes whoever waits for new
 * entries; its own connection. */
void *ctl_events_follow(void *arg)
{
	struct ctl *c = arg;
	struct store *s = store_new(&c->o.redis);
	char last[32] = "$";

	if (!s)
		return NULL;
	s->o.timeout_ms = 3000; /* longer than the BLOCK below */
	while (!c->stop) {
		redisReply *r;
		if (!store_ensure(s, util_mono_ms())) {
			struct timespec t = {0, 200 * 1000000};
			nanosleep(&t, NULL);
			continue;
		}
		r = store_command(s, "XREAD COUNT 1000 BLOCK 1000 STREAMS events %s", last);
		if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
		    r->element[0]->elements == 2) {
			redisReply *es = r->element[0]->element[1];
			if (es->type == REDIS_REPLY_ARRAY && es->elements) {
				redisReply *e = es->element[es->elements - 1];
				if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
				    e->element[0]->type == REDIS_REPLY_STRING)
					snprintf(last, sizeof(last), "%s", e->element[0]->str);
				pthread_mutex_lock(&c->lock);
				snprintf(c->ev_last, sizeof(c->ev_last), "%s", last);
				c->ev_gen++;
				pthread_cond_broadcast(&c->ev_cond);
				pthread_mutex_unlock(&c->lock);
			}
		} else if (r && r->type == REDIS_REPLY_ERROR) {
			log_warn("events: XREAD: %s", r->str);
			snprintf(last, sizeof(last), "$");
		}
		freeReplyObject(r);
	}
	store_free(s);
	return NULL;
}

static json_t *entry_json(redisReply *e)
{
	json_t *j;
	redisReply *f;

	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
		return NULL;
	j = json_object();
	f = e->element[1];
	json_object_set_new(j, "id", json_string(e->element[0]->str));
	for (size_t i = 0; i + 1 < f->elements; i += 2) {
		const char *k = f->element[i]->str, *v = f->element[i + 1]->str;
		int64_t n;
		if (f->element[i]->type != REDIS_REPLY_STRING ||
		    f->element[i + 1]->type != REDIS_REPLY_STRING || !strcmp(k, "id"))
			continue;
		if (!strcmp(k, "ts") && util_parse_i64(v, &n))
			json_object_set_new(j, k, json_integer(n));
		else
			json_object_set_new(j, k, json_string(v));
	}
	return j;
}

static bool matches(json_t *e, const char *type, const char *vm, const char *host)
{
	const char *t = json_string_value(json_object_get(e, "type"));
	const char *v = json_string_value(json_object_get(e, "vm"));

	if (type && (!t || strcmp(t, type)))
		return false;
	if (vm && (!v || strcmp(v, vm)))
		return false;
	if (host) {
		static const char *const keys[] = {"host", "from", "to"};
		bool any = false;
		for (int i = 0; i < 3 && !any; i++) {
			const char *h = json_string_value(json_object_get(e, keys[i]));
			any = h && !strcmp(h, host);
		}
		if (!any)
			return false;
	}
	return true;
}

/* Stream ids are "<ms>-<seq>"; compares a > b. */
static bool id_after(const char *a, const char *b)
{
	unsigned long long am = 0, as = 0, bm = 0, bs = 0;

	sscanf(a, "%llu-%llu", &am, &as);
	sscanf(b, "%llu-%llu", &bm, &bs);
	return am > bm || (am == bm && as > bs);
}

json_t *ctl_events_query(struct ctl *c, const char *after, int count, int wait_s, const char *type,
                         const char *vm, const char *host, char *err, size_t errlen)
{
	json_t *out = json_array();
	int64_t deadline = util_mono_ms() + (int64_t)wait_s * 1000;
	char last[40];
	bool filtered = type || vm || host;
	/* a filter scans at most this many entries */
	int scan = filtered ? 10000 : count;

	snprintf(last, sizeof(last), "%s", after ? after : "");
	for (;;) {
		redisReply *r = NULL;
		char start[48], cnt[24];
		snprintf(cnt, sizeof(cnt), "%d", scan);
		pthread_mutex_lock(&c->aux_lock);
		if (store_ensure(c->aux, util_mono_ms())) {
			if (after) {
				snprintf(start, sizeof(start), "(%s", last);
				r = store_command(c->aux, "XRANGE events %s + COUNT %s", start,
				                  cnt);
			} else {
				r = store_command(c->aux, "XREVRANGE events + - COUNT %s", cnt);
			}
		}
		pthread_mutex_unlock(&c->aux_lock);
		if (!r || r->type != REDIS_REPLY_ARRAY) {
			snprintf(err, errlen, "reading the events stream: %s",
			         r && r->type == REDIS_REPLY_ERROR ? r->str
			                                           : "redis is unreachable");
			freeReplyObject(r);
			json_decref(out);
			return NULL;
		}
		for (size_t k = 0; k < r->elements && (!after || (int)json_array_size(out) < count);
		     k++) {
			redisReply *e = r->element[after ? k : r->elements - 1 - k];
			json_t *j = entry_json(e);
			if (!j)
				continue;
			if (after)
				snprintf(last, sizeof(last), "%s",
				         json_string_value(json_object_get(j, "id")));
			if (matches(j, type, vm, host))
				json_array_append_new(out, j);
			else
				json_decref(j);
		}
		if (!after && json_array_size(out) > (size_t)count) {
			/* newest `count`, oldest first */
			size_t extra = json_array_size(out) - (size_t)count;
			for (size_t k = 0; k < extra; k++)
				json_array_remove(out, 0);
		}
		freeReplyObject(r);
		if (!after || json_array_size(out) > 0 || util_mono_ms() >= deadline)
			break;
		/* a long poll: wait for the follower to see something newer */
		pthread_mutex_lock(&c->lock);
		while (!c->stop && !id_after(c->ev_last, last) && util_mono_ms() < deadline) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 250 * 1000000;
			ts.tv_sec += ts.tv_nsec / 1000000000;
			ts.tv_nsec %= 1000000000;
			pthread_cond_timedwait(&c->ev_cond, &c->lock, &ts);
		}
		pthread_mutex_unlock(&c->lock);
		if (c->stop)
			break;
	}
	{
		json_t *res = json_object();
		json_t *lastj =
		    json_array_size(out)
		        ? json_object_get(json_array_get(out, json_array_size(out) - 1), "id")
		        : NULL;
		json_object_set_new(res, "events", out);
		if (lastj)
			json_object_set(res, "last", lastj);
		else
			json_object_set_new(res, "last", after ? json_string(last) : json_null());
		return res;
	}
}
