/* ctl_runtime.c - what an operator changes while the controller runs
 * (docs/controller.md, "Changing things at run time"): a VM's rules and
 * automation level, a host's exclude, the controller's mode and the
 * migration windows. Each is stored in Redis, so it survives restarts of
 * the agents and the controllers, and each change is logged with who made it.
 *
 * Where each lives (one source of truth each):
 *   vm_rules:<vm>         pin, group, anti_group, exclude, automation, uuid, by, ts:
 *                         the controller's, never written by an agent; when it
 *                         exists it replaces the rules vm_configs:<vm> carries
 *                         (the domain's metadata, set at creation) as a whole
 *   host_config:<host>    exclude, exclude_by, exclude_ts (the agent's
 *                         registration never writes these fields)
 *   controller_settings   mode, mode_by, mode_ts, windows, windows_by, windows_ts
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "controller/ctl.h"

#define SETTINGS_KEY "controller_settings"
#define PIN_MAX      32

static const char *const rule_keys[] = {"pin",     "group",      "anti_group",
                                        "exclude", "automation", NULL};

/* --- time and state ------------------------------------------------------ */

/* The minute of the week now, UTC (window.h). */
static int minute_now(int64_t now_ms)
{
	time_t t = (time_t)(now_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	return win_minute_of_week(tm.tm_wday, tm.tm_hour, tm.tm_min);
}

/* Open (1), closed (0), or no windows at all (1: migrations at any time). */
static int windows_open(const struct ctl_rt *rt, int64_t now_ms)
{
	return !rt->windows[0] || win_open(&rt->win, minute_now(now_ms));
}

/* ms since the epoch of the next change of the windows' state, or 0. */
static int64_t next_change_ms(const struct ctl_rt *rt, int64_t now_ms)
{
	int k;

	if (!rt->windows[0])
		return 0;
	k = win_next_change(&rt->win, minute_now(now_ms));
	return k < 0 ? 0 : (now_ms / 60000 + k) * 60000;
}

static void fmt_utc(char *buf, size_t cap, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, cap, "%a %Y-%m-%d %H:%M UTC", &tm);
}

static int mode_index(const char *name)
{
	for (int i = 0; name && ctl_mode_names[i]; i++)
		if (strcmp(name, ctl_mode_names[i]) == 0)
			return i;
	return -1;
}

/* Warns about a bad stored value once (until it changes); seen holds it. */
static void warn_once(char *seen, size_t cap, const char *value, const char *what, const char *why)
{
	if (strncmp(seen, value, cap - 1) == 0)
		return;
	snprintf(seen, cap, "%s", value);
	log_warn("%s: %s '%s' ignored: %s", SETTINGS_KEY, what, value, why);
}

static void rt_init(struct ctl *c)
{
	if (c->rt.loaded)
		return;
	c->rt.cfg_mode = c->o.mode;
	c->rt.win_logged = -1;
	c->rt.loaded = true;
}

int ctl_rt_effective_mode(struct ctl *c)
{
	rt_init(c);
	if (c->o.mode == MODE_AUTO && !windows_open(&c->rt, util_now_ms()))
		return MODE_RECOMMEND;
	return c->o.mode;
}

static const char *mode_note(struct ctl *c)
{
	if (c->o.mode == MODE_AUTO && ctl_rt_effective_mode(c) != MODE_AUTO)
		return "outside the migration windows: recommending only";
	return NULL;
}

/* Logs the windows opening or closing once per change (the leader). */
static void log_window_state(struct ctl *c, int64_t now)
{
	int st = windows_open(&c->rt, now);
	char when[48] = "", msg[200];
	int64_t next = next_change_ms(&c->rt, now);

	if (st == c->rt.win_logged || (c->rt.win_logged < 0 && st == 1)) {
		c->rt.win_logged = st;
		return;
	}
	c->rt.win_logged = st;
	c->plan_sig[0] = 0; /* what is recommended now is said again */
	if (!c->leader)
		return;
	if (next)
		fmt_utc(when, sizeof(when), next);
	if (st)
		snprintf(msg, sizeof(msg),
		         "inside the migration windows: the controller acts (%s)%s%s",
		         ctl_mode_names[c->o.mode], next ? " until " : "", when);
	else
		snprintf(msg, sizeof(msg), "outside the migration windows: recommending only%s%s",
		         next ? " until " : "", when);
	ctl_event(c, st ? "window_opened" : "window_closed", "windows", c->rt.windows, "mode",
	          ctl_mode_names[c->o.mode], "msg", msg, NULL);
}

void ctl_rt_refresh(struct ctl *c, struct store *s)
{
	redisReply *r = store_command(s, "HGETALL %s", SETTINGS_KEY);
	const char *mode, *win;
	int m;

	if (!r || r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return; /* the round's own reads say what is wrong with Redis */
	}
	mode = store_hget(r, "mode");
	win = store_hget(r, "windows");
	pthread_mutex_lock(&c->lock);
	rt_init(c);
	m = mode[0] ? mode_index(mode) : -1;
	if (mode[0] && m < 0)
		warn_once(c->rt.bad_mode, sizeof(c->rt.bad_mode), mode, "mode",
		          "not off, recommend or auto");
	if (m >= 0 && (!c->rt.mode_set || m != c->o.mode))
		log_info("mode %s, set at run time by %s (the configuration says %s)",
		         ctl_mode_names[m], store_hget(r, "mode_by"),
		         ctl_mode_names[c->rt.cfg_mode]);
	c->rt.mode_set = m >= 0;
	c->o.mode = m >= 0 ? m : c->rt.cfg_mode;
	snprintf(c->rt.mode_by, sizeof(c->rt.mode_by), "%s", store_hget(r, "mode_by"));
	c->rt.mode_ts = atoll(store_hget(r, "mode_ts"));
	if (strcmp(win, c->rt.windows) != 0) {
		char err[160];
		struct win_set w;
		if (!win[0] || win_parse(win, &w, err, sizeof(err)) == 0) {
			snprintf(c->rt.windows, sizeof(c->rt.windows), "%s", win);
			if (win[0])
				c->rt.win = w;
			log_info("migration windows: %s", win[0] ? win : "none (any time)");
		} else {
			warn_once(c->rt.bad_windows, sizeof(c->rt.bad_windows), win, "windows",
			          err);
		}
	}
	snprintf(c->rt.windows_by, sizeof(c->rt.windows_by), "%s", store_hget(r, "windows_by"));
	c->rt.windows_ts = atoll(store_hget(r, "windows_ts"));
	log_window_state(c, util_now_ms());
	pthread_mutex_unlock(&c->lock);
	freeReplyObject(r);
}

/* --- VM rules -------------------------------------------------------------- */

void ctl_rt_vm_rules(struct ctl *c, struct ctl_vm *v, redisReply *rules)
{
	const char *uuid = store_hget(rules, "uuid");
	int a;

	(void)c;
	v->automation = CL_AUTO;
	v->rules_runtime = false;
	v->rules_by[0] = 0;
	v->rules_ts = 0;
	if (!rules || rules->type != REDIS_REPLY_ARRAY || rules->elements == 0)
		return;
	/* set for another VM of the same name (deleted, then created again) */
	if (uuid[0] && v->uuid[0] && strcmp(uuid, v->uuid) != 0)
		return;
	snprintf(v->pin, sizeof(v->pin), "%s", store_hget(rules, "pin"));
	snprintf(v->group, sizeof(v->group), "%s", store_hget(rules, "group"));
	snprintf(v->anti_group, sizeof(v->anti_group), "%s", store_hget(rules, "anti_group"));
	v->exclude = strcmp(store_hget(rules, "exclude"), "1") == 0;
	a = cluster_automation_parse(store_hget(rules, "automation"));
	v->automation = a >= 0 ? a : CL_AUTO;
	v->rules_runtime = true;
	snprintf(v->rules_by, sizeof(v->rules_by), "%s", store_hget(rules, "by"));
	v->rules_ts = atoll(store_hget(rules, "ts"));
}

/* "pin=h0,h1 group=web anti_group= exclude=false automation=auto" */
static void rules_text(const struct ctl_vm *v, char *buf, size_t cap)
{
	snprintf(buf, cap, "pin=%s group=%s anti_group=%s exclude=%s automation=%s", v->pin,
	         v->group, v->anti_group, v->exclude ? "true" : "false",
	         cluster_automation_name(v->automation));
}

static json_t *pin_array(const char *pin)
{
	char buf[512], *save = NULL;
	json_t *a = json_array();

	snprintf(buf, sizeof(buf), "%s", pin);
	for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
		json_array_append_new(a, json_string(t));
	return a;
}

static json_t *rules_json(const struct ctl_vm *v)
{
	json_t *j = json_pack("{s:o,s:s,s:s,s:b}", "pin", pin_array(v->pin), "group", v->group,
	                      "anti_group", v->anti_group, "exclude", v->exclude);

	ctl_rt_vm_view(NULL, v, j);
	return j;
}

void ctl_rt_vm_view(struct ctl *c, const struct ctl_vm *v, json_t *rules)
{
	(void)c;
	if (!rules)
		return;
	json_object_set_new(rules, "automation",
	                    json_string(cluster_automation_name(v->automation)));
	json_object_set_new(rules, "source", json_string(v->rules_runtime ? "runtime" : "domain"));
	json_object_set_new(rules, "by", v->rules_runtime ? json_string(v->rules_by) : json_null());
	json_object_set_new(rules, "ts", json_integer(v->rules_runtime ? v->rules_ts : 0));
}

/* The new rules: v's with the body's members over them (checked). 0, or
 * the 400's message in err. Under the lock (hosts are looked up). */
static int rules_merge(struct ctl *c, json_t *body, struct ctl_vm *nv, char *err, size_t errlen)
{
	const char *k;
	json_t *val;

	json_object_foreach(body, k, val)
	{
		bool known = false;
		for (int i = 0; rule_keys[i]; i++)
			known |= strcmp(k, rule_keys[i]) == 0;
		if (!known) {
			snprintf(err, errlen,
			         "rules: unknown member '%.40s' (pin, group, anti_group, exclude, "
			         "automation)",
			         k);
			return -EINVAL;
		}
	}
	if (json_object_size(body) == 0) {
		snprintf(
		    err, errlen,
		    "rules: nothing to change: give pin, group, anti_group, exclude or automation");
		return -EINVAL;
	}
	if ((val = json_object_get(body, "pin"))) {
		size_t i, n = 0;
		json_t *e;
		char pin[512] = "";
		if (!json_is_array(val) || json_array_size(val) > PIN_MAX) {
			snprintf(err, errlen,
			         "rules: pin is an array of at most %d host ids ([] = any host)",
			         PIN_MAX);
			return -EINVAL;
		}
		json_array_foreach(val, i, e)
		{
			const char *h = json_string_value(e);
			if (!h || !util_valid_id(h)) {
				snprintf(err, errlen, "rules: pin[%zu] is not a host id", i);
				return -EINVAL;
			}
			if (!ctl_host_find(c, h)) {
				snprintf(err, errlen, "rules: pin: no host %s", h);
				return -EINVAL;
			}
			n += (size_t)snprintf(pin + n, sizeof(pin) - n, "%s%s", n ? "," : "", h);
			if (n >= sizeof(pin)) {
				snprintf(err, errlen, "rules: pin is too long");
				return -EINVAL;
			}
		}
		snprintf(nv->pin, sizeof(nv->pin), "%s", pin);
	}
	for (int g = 0; g < 2; g++) {
		const char *name = g ? "anti_group" : "group";
		char *dst = g ? nv->anti_group : nv->group;
		if (!(val = json_object_get(body, name)))
			continue;
		if (!json_is_string(val) ||
		    (json_string_length(val) && !util_valid_id(json_string_value(val)))) {
			snprintf(err, errlen,
			         "rules: %s is a group id (letters, digits, _ . -) or \"\"", name);
			return -EINVAL;
		}
		snprintf(dst, CTL_ID_MAX, "%s", json_string_value(val));
	}
	if ((val = json_object_get(body, "exclude"))) {
		if (!json_is_boolean(val)) {
			snprintf(err, errlen, "rules: exclude is true or false");
			return -EINVAL;
		}
		nv->exclude = json_is_true(val);
	}
	if ((val = json_object_get(body, "automation"))) {
		int a = cluster_automation_parse(json_string_value(val));
		if (a < 0) {
			snprintf(err, errlen, "rules: automation is one of auto, manual, off");
			return -EINVAL;
		}
		nv->automation = a;
	}
	return 0;
}

/* The names of the rules that differ, comma-separated. */
static void rules_changed(const struct ctl_vm *a, const struct ctl_vm *b, char *buf, size_t cap)
{
	size_t n = 0;
	bool diff[] = {strcmp(a->pin, b->pin) != 0, strcmp(a->group, b->group) != 0,
	               strcmp(a->anti_group, b->anti_group) != 0, a->exclude != b->exclude,
	               a->automation != b->automation};

	buf[0] = 0;
	for (int i = 0; rule_keys[i] && n < cap; i++)
		if (diff[i])
			n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "," : "", rule_keys[i]);
}

/* The VM's model entry follows at once (placement, migrations through the
 * API); the pins wait for the next round's model. Under the lock. */
static void model_follow(struct ctl *c, const struct ctl_vm *v)
{
	int mi = ctl_model_vm(&c->model, v->id);
	struct ctl_host *h = ctl_host_find(c, v->host);

	if (mi < 0)
		return;
	c->model.vms[mi].automation = (enum cl_automation)v->automation;
	c->model.vms[mi].excluded = v->exclude || !h || strcmp(h->state, "down") == 0;
}

static redisReply *aux_cmd(struct ctl *c, int argc, const char **argv)
{
	redisReply *r = NULL;

	pthread_mutex_lock(&c->aux_lock);
	if (store_ensure(c->aux, util_mono_ms()))
		r = store_commandv(c->aux, argc, argv, NULL);
	pthread_mutex_unlock(&c->aux_lock);
	return r;
}

/* 503 unless r is a reply (not an error); then false. */
static bool redis_ok(redisReply *r, const char *what, struct httpd_resp *resp)
{
	if (r && r->type != REDIS_REPLY_ERROR)
		return true;
	httpd_resp_error(resp, 503, "redis", "%s: %s", what, r ? r->str : "redis is unreachable");
	return false;
}

static void api_rules_put(struct ctl *c, const struct httpd_req *req, const char *id,
                          struct httpd_resp *resp)
{
	json_t *body = httpd_body_json(req, resp);
	struct ctl_vm *v, nv, old;
	char err[200], by[96], ts[24], key[128], changed[80], ot[700], nt[700];
	const char *argv[20];
	int n = 0;
	redisReply *r = NULL;

	if (!body)
		return;
	if (!json_is_object(body)) {
		httpd_resp_error(
		    resp, 400, "bad_request",
		    "rules: the body is an object: {\"pin\": [\"h1\"], \"group\": \"G\", "
		    "\"anti_group\": \"G\", \"exclude\": false, \"automation\": \"auto\"}");
		goto out;
	}
	if (!ctl_require_leader(c, resp))
		goto out;
	ctl_api_caller(c, req, by, sizeof(by));
	pthread_mutex_lock(&c->lock);
	if (!(v = ctl_vm_find(c, id))) {
		pthread_mutex_unlock(&c->lock);
		httpd_resp_error(resp, 404, "not_found", "no vm %s", id);
		goto out;
	}
	old = *v;
	nv = *v;
	if (rules_merge(c, body, &nv, err, sizeof(err)) < 0) {
		pthread_mutex_unlock(&c->lock);
		httpd_resp_error(resp, 400, "bad_request", "%s", err);
		goto out;
	}
	pthread_mutex_unlock(&c->lock);

	snprintf(key, sizeof(key), "vm_rules:%s", id);
	snprintf(ts, sizeof(ts), "%lld", (long long)util_now_ms());
	argv[n++] = "EVAL";
	argv[n++] = "redis.call('DEL', KEYS[1]) return redis.call('HSET', KEYS[1], unpack(ARGV))";
	argv[n++] = "1";
	argv[n++] = key;
#define KV(k, val) (argv[n++] = (k), argv[n++] = (val))
	KV("pin", nv.pin);
	KV("group", nv.group);
	KV("anti_group", nv.anti_group);
	KV("exclude", nv.exclude ? "1" : "0");
	KV("automation", cluster_automation_name(nv.automation));
	KV("uuid", nv.uuid);
	KV("by", by);
	KV("ts", ts);
#undef KV
	r = aux_cmd(c, n, argv);
	if (!redis_ok(r, "storing the rules", resp))
		goto out;

	pthread_mutex_lock(&c->lock);
	if ((v = ctl_vm_find(c, id))) {
		snprintf(v->pin, sizeof(v->pin), "%s", nv.pin);
		snprintf(v->group, sizeof(v->group), "%s", nv.group);
		snprintf(v->anti_group, sizeof(v->anti_group), "%s", nv.anti_group);
		v->exclude = nv.exclude;
		v->automation = nv.automation;
		v->rules_runtime = true;
		snprintf(v->rules_by, sizeof(v->rules_by), "%s", by);
		v->rules_ts = atoll(ts);
		model_follow(c, v);
		nv = *v;
	}
	rules_changed(&old, &nv, changed, sizeof(changed));
	if (changed[0]) {
		rules_text(&old, ot, sizeof(ot));
		rules_text(&nv, nt, sizeof(nt));
		ctl_event(c, "rule_changed", "vm", id, "changed", changed, "old", ot, "new", nt,
		          "by", by, NULL);
	}
	pthread_mutex_unlock(&c->lock);
	httpd_resp_json(
	    resp, 200,
	    json_pack("{s:s,s:o,s:s}", "vm", id, "rules", rules_json(&nv), "changed", changed));
out:
	freeReplyObject(r);
	json_decref(body);
}

/* DELETE /v1/vms/<id>/rules: back to the domain's rules (vm_configs). */
static void api_rules_delete(struct ctl *c, const struct httpd_req *req, const char *id,
                             struct httpd_resp *resp)
{
	char by[96], key[128], cfg[128], ot[700], nt[700], changed[80];
	const char *argv[] = {"EVAL",
	                      "redis.call('DEL', KEYS[1]) return redis.call('HMGET', KEYS[2], "
	                      "'pin', 'group', 'anti_group', 'exclude')",
	                      "2", key, cfg};
	struct ctl_vm *v, old, nv;
	redisReply *r = NULL;

	if (!ctl_require_leader(c, resp))
		return;
	ctl_api_caller(c, req, by, sizeof(by));
	pthread_mutex_lock(&c->lock);
	v = ctl_vm_find(c, id);
	pthread_mutex_unlock(&c->lock);
	if (!v) {
		httpd_resp_error(resp, 404, "not_found", "no vm %s", id);
		return;
	}
	snprintf(key, sizeof(key), "vm_rules:%s", id);
	snprintf(cfg, sizeof(cfg), "vm_configs:%s", id);
	r = aux_cmd(c, 5, argv);
	if (!redis_ok(r, "removing the rules", resp))
		goto out;
	pthread_mutex_lock(&c->lock);
	if ((v = ctl_vm_find(c, id))) {
		old = *v;
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 4) {
			const char *f[4];
			for (int i = 0; i < 4; i++)
				f[i] = r->element[i]->type == REDIS_REPLY_STRING
				           ? r->element[i]->str
				           : "";
			snprintf(v->pin, sizeof(v->pin), "%s", f[0]);
			snprintf(v->group, sizeof(v->group), "%s", f[1]);
			snprintf(v->anti_group, sizeof(v->anti_group), "%s", f[2]);
			v->exclude = !strcmp(f[3], "1") || !strcmp(f[3], "true");
		}
		v->automation = CL_AUTO;
		v->rules_runtime = false;
		model_follow(c, v);
		nv = *v;
		rules_changed(&old, &nv, changed, sizeof(changed));
		rules_text(&old, ot, sizeof(ot));
		rules_text(&nv, nt, sizeof(nt));
		ctl_event(c, "rule_changed", "vm", id, "changed", changed[0] ? changed : "source",
		          "old", ot, "new", nt, "msg", "back to the domain's rules", "by", by,
		          NULL);
		pthread_mutex_unlock(&c->lock);
		httpd_resp_json(resp, 200,
		                json_pack("{s:s,s:o,s:s}", "vm", id, "rules", rules_json(&nv),
		                          "changed", changed));
	} else {
		pthread_mutex_unlock(&c->lock);
		httpd_resp_error(resp, 404, "not_found", "no vm %s", id);
	}
out:
	freeReplyObject(r);
}

/* --- host exclude ------------------------------------------------------------ */

static void api_host_exclude(struct ctl *c, const struct httpd_req *req, const char *id,
                             struct httpd_resp *resp)
{
	json_t *body = httpd_body_json(req, resp), *on;
	char by[96], key[128], ts[24];
	const char *argv[] = {"EVAL",
	                      "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
	                      "local old = redis.call('HGET', KEYS[1], 'exclude')\n"
	                      "redis.call('HSET', KEYS[1], 'exclude', ARGV[1], 'exclude_by', "
	                      "ARGV[2], 'exclude_ts', ARGV[3])\n"
	                      "if old == '1' or old == 'true' or old == 'yes' or old == 'on' "
	                      "then return 1 end return 0",
	                      "1",
	                      key,
	                      NULL,
	                      by,
	                      ts};
	redisReply *r = NULL;
	bool want;

	if (!body)
		return;
	on = json_object_get(body, "on");
	if (!json_is_boolean(on) || json_object_size(body) != 1) {
		httpd_resp_error(resp, 400, "bad_request",
		                 "exclude: the body is {\"on\": true} or {\"on\": false}");
		goto out;
	}
	if (!ctl_require_leader(c, resp))
		goto out;
	want = json_is_true(on);
	ctl_api_caller(c, req, by, sizeof(by));
	snprintf(key, sizeof(key), "host_config:%s", id);
	snprintf(ts, sizeof(ts), "%lld", (long long)util_now_ms());
	argv[4] = want ? "1" : "0";
	pthread_mutex_lock(&c->lock);
	if (!ctl_host_find(c, id)) {
		pthread_mutex_unlock(&c->lock);
		httpd_resp_error(resp, 404, "not_found", "no host %s", id);
		goto out;
	}
	pthread_mutex_unlock(&c->lock);
	r = aux_cmd(c, 7, argv);
	if (!redis_ok(r, "setting the host's exclude", resp))
		goto out;
	if (r->type != REDIS_REPLY_INTEGER || r->integer < 0) {
		httpd_resp_error(resp, 404, "not_found", "no host %s", id);
		goto out;
	}
	pthread_mutex_lock(&c->lock);
	{
		struct ctl_host *h = ctl_host_find(c, id);
		int mi = ctl_model_host(&c->model, id);
		if (h)
			h->excluded = want;
		if (h && mi >= 0)
			c->model.hosts[mi].excluded = want || h->monitor_only;
		if ((r->integer == 1) != want)
			ctl_event(c, "rule_changed", "host", id, "changed", "exclude", "old",
			          r->integer == 1 ? "exclude=true" : "exclude=false", "new",
			          want ? "exclude=true" : "exclude=false", "msg",
			          want ? "no source and no target of automatic moves"
			               : "balanced again",
			          "by", by, NULL);
	}
	pthread_mutex_unlock(&c->lock);
	httpd_resp_json(resp, 200,
	                json_pack("{s:s,s:b,s:s}", "host", id, "excluded", want, "by", by));
out:
	freeReplyObject(r);
	json_decref(body);
}

/* --- mode and windows -------------------------------------------------------- */

static json_t *mode_json(struct ctl *c)
{
	const char *note = mode_note(c);
	json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "mode", ctl_mode_names[c->o.mode], "configured",
	                      ctl_mode_names[c->rt.cfg_mode], "source",
	                      c->rt.mode_set ? "runtime" : "config", "effective",
	                      ctl_mode_names[ctl_rt_effective_mode(c)]);

	json_object_set_new(j, "by", c->rt.mode_set ? json_string(c->rt.mode_by) : json_null());
	json_object_set_new(j, "ts", json_integer(c->rt.mode_set ? c->rt.mode_ts : 0));
	json_object_set_new(j, "note", note ? json_string(note) : json_null());
	return j;
}

static json_t *windows_json(struct ctl *c)
{
	int64_t now = util_now_ms(), next = next_change_ms(&c->rt, now);
	json_t *j = json_pack("{s:s,s:b,s:s}", "windows", c->rt.windows, "open",
	                      windows_open(&c->rt, now), "timezone", "UTC");

	json_object_set_new(j, "next_change", next ? json_integer(next) : json_null());
	json_object_set_new(j, "by",
	                    c->rt.windows[0] ? json_string(c->rt.windows_by) : json_null());
	json_object_set_new(j, "ts", json_integer(c->rt.windows[0] ? c->rt.windows_ts : 0));
	return j;
}

void ctl_rt_cluster_view(struct ctl *c, json_t *j)
{
	const char *note;

	if (!j)
		return;
	rt_init(c);
	note = mode_note(c);
	json_object_set_new(j, "mode_source", json_string(c->rt.mode_set ? "runtime" : "config"));
	json_object_set_new(j, "effective_mode",
	                    json_string(ctl_mode_names[ctl_rt_effective_mode(c)]));
	json_object_set_new(j, "windows", windows_json(c));
	json_object_set_new(j, "note", note ? json_string(note) : json_null());
}

void ctl_rt_plan_view(struct ctl *c, json_t *j)
{
	const char *note;

	if (!j)
		return;
	rt_init(c);
	note = mode_note(c);
	json_object_set_new(j, "effective_mode",
	                    json_string(ctl_mode_names[ctl_rt_effective_mode(c)]));
	json_object_set_new(j, "windows_open", json_boolean(windows_open(&c->rt, util_now_ms())));
	json_object_set_new(j, "note", note ? json_string(note) : json_null());
}

/* PUT /v1/mode {"mode"} and DELETE /v1/mode (back to the configuration's). */
static void api_mode_set(struct ctl *c, const struct httpd_req *req, struct httpd_resp *resp)
{
	bool del = strcmp(req->method, "DELETE") == 0;
	json_t *body = del ? NULL : httpd_body_json(req, resp);
	const char *name = json_string_value(json_object_get(body, "mode"));
	int m = mode_index(name), old;
	char by[96], ts[24];
	const char *set[] = {"HSET", SETTINGS_KEY, "mode", name, "mode_by", by, "mode_ts", ts};
	const char *unset[] = {"HDEL", SETTINGS_KEY, "mode", "mode_by", "mode_ts"};
	redisReply *r = NULL;

	if (!del && !body)
		return;
	if (!del && (m < 0 || json_object_size(body) != 1)) {
		httpd_resp_error(
		    resp, 400, "bad_request",
		    "mode: the body is {\"mode\": \"off\"|\"recommend\"|\"auto\"}%s%.32s%s",
		    name ? "; not '" : "", name ? name : "", name ? "'" : "");
		goto out;
	}
	if (!ctl_require_leader(c, resp))
		goto out;
	ctl_api_caller(c, req, by, sizeof(by));
	snprintf(ts, sizeof(ts), "%lld", (long long)util_now_ms());
	r = del ? aux_cmd(c, 5, unset) : aux_cmd(c, 8, set);
	if (!redis_ok(r, "storing the mode", resp))
		goto out;
	pthread_mutex_lock(&c->lock);
	rt_init(c);
	old = c->o.mode;
	c->o.mode = del ? c->rt.cfg_mode : m;
	c->rt.mode_set = !del;
	snprintf(c->rt.mode_by, sizeof(c->rt.mode_by), "%s", by);
	c->rt.mode_ts = atoll(ts);
	c->plan_sig[0] = 0; /* a recommend mode logs the plan afresh */
	ctl_event(c, "mode_changed", "old", ctl_mode_names[old], "new", ctl_mode_names[c->o.mode],
	          "msg", del ? "back to the configuration's mode" : "set at run time", "by", by,
	          NULL);
	httpd_resp_json(resp, 200, mode_json(c));
	pthread_mutex_unlock(&c->lock);
out:
	freeReplyObject(r);
	json_decref(body);
}

/* PUT /v1/windows {"windows": "<spec>"} ("" clears) and DELETE /v1/windows. */
static void api_windows_set(struct ctl *c, const struct httpd_req *req, struct httpd_resp *resp)
{
	bool del = strcmp(req->method, "DELETE") == 0;
	json_t *body = del ? NULL : httpd_body_json(req, resp);
	json_t *w = json_object_get(body, "windows");
	const char *spec = del ? "" : json_string_value(w);
	char by[96], ts[24], err[200], old[WIN_SPEC_MAX + 1];
	const char *set[] = {"HSET",       SETTINGS_KEY, "windows",    spec,
	                     "windows_by", by,           "windows_ts", ts};
	const char *unset[] = {"HDEL", SETTINGS_KEY, "windows", "windows_by", "windows_ts"};
	struct win_set ws;
	redisReply *r = NULL;

	if (!del && !body)
		return;
	if (!del && (!json_is_string(w) || json_object_size(body) != 1)) {
		httpd_resp_error(
		    resp, 400, "bad_request",
		    "windows: the body is {\"windows\": \"mon-fri 22:00-06:00, sat,sun "
		    "00:00-24:00\"} (UTC; \"\" clears)");
		goto out;
	}
	if (spec[0] && win_parse(spec, &ws, err, sizeof(err)) < 0) {
		httpd_resp_error(resp, 400, "bad_request", "windows: %s", err);
		goto out;
	}
	if (!ctl_require_leader(c, resp))
		goto out;
	ctl_api_caller(c, req, by, sizeof(by));
	snprintf(ts, sizeof(ts), "%lld", (long long)util_now_ms());
	r = spec[0] ? aux_cmd(c, 8, set) : aux_cmd(c, 5, unset);
	if (!redis_ok(r, "storing the windows", resp))
		goto out;
	pthread_mutex_lock(&c->lock);
	rt_init(c);
	snprintf(old, sizeof(old), "%s", c->rt.windows);
	snprintf(c->rt.windows, sizeof(c->rt.windows), "%s", spec);
	if (spec[0])
		c->rt.win = ws;
	snprintf(c->rt.windows_by, sizeof(c->rt.windows_by), "%s", by);
	c->rt.windows_ts = atoll(ts);
	ctl_event(c, "windows_changed", "old", old[0] ? old : "none", "new",
	          spec[0] ? spec : "none", "msg",
	          spec[0] ? "automatic migrations start only inside the windows (UTC)"
	                  : "automatic migrations at any time",
	          "by", by, NULL);
	log_window_state(c, util_now_ms());
	httpd_resp_json(resp, 200, windows_json(c));
	pthread_mutex_unlock(&c->lock);
out:
	freeReplyObject(r);
	json_decref(body);
}

/* --- manual migrations ------------------------------------------------------- */

/* Is host in the list (comma- or blank-separated, as build_model reads it)? */
static bool pin_has(const char *pin, const char *host)
{
	char buf[512], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", pin);
	for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
		if (strcmp(t, host) == 0)
			return true;
	return false;
}

bool ctl_rt_migrate_allowed(struct ctl *c, const struct httpd_req *req, const char *vm,
                            const char *from, const char *to, bool force, struct httpd_resp *resp)
{
	const struct ctl_vm *v = ctl_vm_find(c, vm);
	const struct ctl_host *src = ctl_host_find(c, from);
	const struct ctl_host *dst = to ? ctl_host_find(c, to) : NULL;

	/* the pin as it is now (the model's follows at the next round); never forced */
	if (v && v->pin[0] && to && !pin_has(v->pin, to)) {
		ctl_refuse(c, req, resp, "migration_refused", 409, "blocked", NULL, vm, to,
		           "host %s cannot take vm %s: pin (it may run on %s only)", to, vm,
		           v->pin);
		return false;
	}
	if (force)
		return true;
	if (v && v->exclude) {
		ctl_refuse(c, req, resp, "migration_refused", 409, "blocked", NULL, vm, to,
		           "vm %s is excluded from balancing (rule exclude%s%s): \"force\": true "
		           "moves it anyway",
		           vm, v->rules_runtime ? ", set by " : "",
		           v->rules_runtime ? v->rules_by : "");
		return false;
	}
	if (src && src->excluded) {
		ctl_refuse(c, req, resp, "migration_refused", 409, "blocked", NULL, vm, to,
		           "host %s, where vm %s runs, is excluded from balancing: \"force\": "
		           "true moves it anyway",
		           from, vm);
		return false;
	}
	if (dst && dst->excluded && !dst->monitor_only) {
		ctl_refuse(c, req, resp, "migration_refused", 409, "blocked", NULL, vm, to,
		           "host %s cannot take vm %s: it is excluded from balancing: "
		           "\"force\": true moves it there anyway",
		           to, vm);
		return false;
	}
	return true;
}

/* --- routing ------------------------------------------------------------------ */

bool ctl_rt_route(struct ctl *c, const struct httpd_req *req, const char *const *seg, int n,
                  struct httpd_resp *resp)
{
	const char *m = req->method;
	bool get = !strcmp(m, "GET"), put = !strcmp(m, "PUT"), del = !strcmp(m, "DELETE");

	if (n == 2 && (!strcmp(seg[1], "mode") || !strcmp(seg[1], "windows"))) {
		bool mode = !strcmp(seg[1], "mode");
		if (get) {
			pthread_mutex_lock(&c->lock);
			rt_init(c);
			httpd_resp_json(resp, 200, mode ? mode_json(c) : windows_json(c));
			pthread_mutex_unlock(&c->lock);
		} else if (put || del) {
			if (mode)
				api_mode_set(c, req, resp);
			else
				api_windows_set(c, req, resp);
		} else {
			httpd_resp_error(resp, 405, "method_not_allowed", "no %s %s", m, req->path);
		}
		return true;
	}
	if (n == 4 && !strcmp(seg[1], "vms") && !strcmp(seg[3], "rules")) {
		if (get) {
			struct ctl_vm *v;
			pthread_mutex_lock(&c->lock);
			if ((v = ctl_vm_find(c, seg[2])))
				httpd_resp_json(
				    resp, 200,
				    json_pack("{s:s,s:o}", "vm", v->id, "rules", rules_json(v)));
			else
				httpd_resp_error(resp, 404, "not_found", "no vm %s", seg[2]);
			pthread_mutex_unlock(&c->lock);
		} else if (put) {
			api_rules_put(c, req, seg[2], resp);
		} else if (del) {
			api_rules_delete(c, req, seg[2], resp);
		} else {
			httpd_resp_error(resp, 405, "method_not_allowed", "no %s %s", m, req->path);
		}
		return true;
	}
	if (n == 4 && !strcmp(seg[1], "hosts") && !strcmp(seg[3], "exclude")) {
		if (put)
			api_host_exclude(c, req, seg[2], resp);
		else
			httpd_resp_error(
			    resp, 405, "method_not_allowed",
			    "no %s %s (PUT {\"on\": true|false}; GET /v1/hosts/%s shows it)", m,
			    req->path, seg[2]);
		return true;
	}
	return false;
}
