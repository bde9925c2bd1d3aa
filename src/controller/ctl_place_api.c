/* ctl_place_api.c - the operator's calls that place VMs: provisioning
 * (POST /v1/vms), deletion (DELETE /v1/vms/<id>) and manual migration
 * (POST /v1/vms/<id>/migrate), docs/controller.md. Every refusal is answered
 * and logged once (ctl_refuse) with the caller; a placement's refusal names
 * what blocked each host with the figures (place_why_text). The agents are
 * asked with ?log=caller: these entries are the action's only ones. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "controller/ctl.h"

/* Fills a cl_vm for a VM described by a spec (provisioning); the rules are
 * resolved against the model. */
static void vm_from_spec(struct ctl *c, json_t *spec, struct cl_vm *v, int *pins, int maxpins)
{
	json_t *pin = json_object_get(spec, "pin");
	const char *g = json_string_value(json_object_get(spec, "group"));
	const char *ag = json_string_value(json_object_get(spec, "anti_group"));
	const char *id = json_string_value(json_object_get(spec, "name"));

	cluster_vm_defaults(v);
	snprintf(v->id, sizeof(v->id), "%s", id ? id : "");
	v->vcpus = (double)json_integer_value(json_object_get(spec, "vcpus"));
	if (v->vcpus <= 0)
		v->vcpus = 1;
	v->mem_mib = (double)json_integer_value(json_object_get(spec, "mem_mib"));
	v->demand[RES_CPU] = v->vcpus * 0.5;
	v->demand[RES_MEM] = v->mem_mib;
	v->demand[RES_NET] = 0;
	for (int i = 0; i < c->nvms && (g || ag); i++) {
		int mi = ctl_model_vm(&c->model, c->vms[i]->id);
		if (mi < 0)
			continue;
		if (g && !strcmp(c->vms[i]->group, g))
			v->group = c->model.vms[mi].group;
		if (ag && !strcmp(c->vms[i]->anti_group, ag))
			v->anti_group = c->model.vms[mi].anti_group;
	}
	if (json_is_array(pin)) {
		size_t i;
		json_t *e;
		v->pin = pins;
		json_array_foreach(pin, i, e)
		{
			int hi = json_is_string(e) ? ctl_model_host(&c->model, json_string_value(e))
			                           : -1;
			if (hi >= 0 && v->npin < maxpins)
				pins[v->npin++] = hi;
		}
		if (v->npin == 0)
			v->npin = -1; /* pinned to hosts that do not exist: refused */
	}
}

/* {"hosts": {"<host>": "<why blocked, with the figures>" or "ok"},
 *  "blocks": {"<host>": "<block name>"}}, the members of a 409's error. */
static json_t *blocks_json(struct ctl *c, const struct place_result *pr)
{
	json_t *hosts = json_object(), *names = json_object();

	for (int i = 0; i < c->model.nhosts; i++) {
		char t[256];
		place_why_text(&c->model, pr, i, t, sizeof(t));
		json_object_set_new(hosts, c->model.hosts[i].id, json_string(t[0] ? t : "ok"));
		json_object_set_new(names, c->model.hosts[i].id,
		                    json_string(place_block_name(pr->block[i])));
	}
	return json_pack("{s:o,s:o}", "hosts", hosts, "blocks", names);
}

/* "h0: down; h1: cpu 0.82 + 0.25 of the VM > 0.75 threshold (...)" for
 * every blocked host other than skip, appended to out. */
static void blocks_text(struct ctl *c, const struct place_result *pr, int skip, char *out,
                        size_t cap)
{
	size_t off = strlen(out);

	for (int i = 0; i < c->model.nhosts && off + 1 < cap; i++) {
		char t[256];
		if (i == skip || pr->block[i] == PLACE_OK)
			continue;
		place_why_text(&c->model, pr, i, t, sizeof(t));
		off += (size_t)snprintf(out + off, cap - off, "; %s: %s", c->model.hosts[i].id, t);
	}
}

/* "h2 cpu 0.30 -> 0.55, mem 0.20 -> 0.33, net 0.00 -> 0.00": host hi's
 * utilisation before and after a VM of demand dem arrives (sign +1) or
 * leaves (-1). */
static void util_change(const struct cl_host *h, const double dem[RES_N], int sign, char *out,
                        size_t cap)
{
	size_t off = (size_t)snprintf(out, cap, "%s", h->id);

	for (int r = 0; r < RES_N && off < cap; r++) {
		double b = h->cap[r] > 0 ? h->load[r] / h->cap[r] : 0;
		double a = h->cap[r] > 0 ? (h->load[r] + sign * dem[r]) / h->cap[r] : 0;
		off += (size_t)snprintf(out + off, cap - off, "%s %s %.2f -> %.2f", r ? "," : "",
		                        ctl_res_names[r], b, a < 0 ? 0 : a);
	}
}

/* The agent's refusal or failure (st its HTTP status, or < 0: unreachable,
 * err), answered and logged as type: its 4xx as they are, others 502. */
static void agent_refused(struct ctl *c, const struct httpd_req *req, struct httpd_resp *resp,
                          const char *type, int st, json_t *reply, const char *err, const char *vm,
                          const char *host)
{
	if (st > 0)
		ctl_refuse(c, req, resp, type, st >= 400 && st < 500 ? st : 502, "agent", NULL, vm,
		           host, "agent of %s: HTTP %d: %s", host, st,
		           ctl_agent_msg(reply, "no message"));
	else
		ctl_refuse(c, req, resp, type, 502, "agent_unreachable", NULL, vm, host,
		           "agent of %s: %s", host, err);
}

/* --- provisioning ------------------------------------------------------------ */

/* The body's checks; false with resp answered (and logged). */
static bool provision_body_ok(struct ctl *c, const struct httpd_req *req, json_t *body,
                              struct httpd_resp *resp)
{
	const char *id = json_string_value(json_object_get(body, "name"));
	json_t *mem = json_object_get(body, "mem_mib"), *vcpus = json_object_get(body, "vcpus");
	json_t *host = json_object_get(body, "host"), *force = json_object_get(body, "force");
	const char *why = NULL;

	if (!id || !util_valid_id(id) || strlen(id) >= CTL_ID_MAX)
		why = "name: the VM id, a string of letters, digits, _ . - (at most 64)";
	else if (host && !json_is_string(host))
		why = "host: a host id string";
	else if (!json_is_integer(mem) || json_integer_value(mem) <= 0)
		why = "mem_mib: a positive integer (MiB)";
	else if (vcpus && (!json_is_integer(vcpus) || json_integer_value(vcpus) <= 0))
		why = "vcpus: a positive integer";
	else if (force && !json_is_boolean(force))
		why = "force: true or false";
	else if (json_is_true(force) && !host)
		why = "force: needs \"host\" (it places the VM on the named host past the soft "
		      "limits: CPU overcommit, threshold, headroom)";
	if (!why)
		return true;
	ctl_refuse(c, req, resp, "vm_place_refused", 400, "bad_request", NULL,
	           id && util_valid_id(id) ? id : NULL, NULL, "%s", why);
	return false;
}

/* Where the VM goes, under c->lock: the host's index, with reason, or -1
 * with resp answered (refusals logged). */
static int provision_pick(struct ctl *c, const struct httpd_req *req, json_t *body,
                          struct httpd_resp *resp, char *reason, size_t rcap, bool *forced)
{
	const char *id = json_string_value(json_object_get(body, "name"));
	const char *want = json_string_value(json_object_get(body, "host"));
	bool force = json_is_true(json_object_get(body, "force"));
	struct place_result pr = {0};
	struct cl_vm v;
	int pins[64], hi = -1;
	char t[256], msg[2048], chg[160];

	*forced = false;
	if (ctl_vm_find(c, id)) {
		ctl_refuse(c, req, resp, "vm_place_refused", 409, "exists", NULL, id, NULL,
		           "vm %s exists already", id);
		return -1;
	}
	vm_from_spec(c, body, &v, pins, 64);
	if (v.npin < 0) {
		ctl_refuse(c, req, resp, "vm_place_refused", 400, "bad_request", NULL, id, NULL,
		           "pin: none of the hosts exists");
		return -1;
	}
	if (place_compute(&c->model, &v, &pr) < 0) {
		httpd_resp_error(resp, 500, "internal", "placement: out of memory");
		return -1;
	}
	if (want) {
		hi = ctl_model_host(&c->model, want);
		if (hi < 0) {
			ctl_refuse(c, req, resp, "vm_place_refused", 404, "not_found", NULL, id,
			           want, "no host %s", want);
			goto out;
		}
		place_why_text(&c->model, &pr, hi, t, sizeof(t));
		if (pr.block[hi] != PLACE_OK && !(force && place_block_soft(&pr, hi))) {
			bool soft = place_block_soft(&pr, hi);
			ctl_refuse(c, req, resp, "vm_place_refused", 409, "blocked",
			           blocks_json(c, &pr), id, want, "host %s cannot take vm %s: %s%s",
			           want, id, t,
			           soft    ? " (a soft limit: \"force\": true places it past it)"
			           : force ? " (a hard limit: \"force\" does not pass it)"
			                   : "");
			hi = -1;
			goto out;
		}
		util_change(&c->model.hosts[hi], v.demand, +1, chg, sizeof(chg));
		*forced = pr.block[hi] != PLACE_OK;
		if (*forced)
			snprintf(reason, rcap,
			         "host %s named by the caller, forced past a soft limit: %s; %s",
			         want, t, chg);
		else
			snprintf(
			    reason, rcap,
			    "host %s named by the caller: state, rules and capacity allow it; %s",
			    want, chg);
	} else if (pr.host < 0) {
		snprintf(msg, sizeof(msg), "%s", pr.reason);
		blocks_text(c, &pr, -1, msg, sizeof(msg));
		ctl_refuse(c, req, resp, "vm_place_refused", 409, "no_host", blocks_json(c, &pr),
		           id, NULL, "%s", msg);
	} else {
		hi = pr.host;
		util_change(&c->model.hosts[hi], v.demand, +1, chg, sizeof(chg));
		snprintf(reason, rcap, "%s; %s", pr.reason, chg);
	}
out:
	place_result_free(&pr);
	return hi;
}

void ctl_api_provision(struct ctl *c, const struct httpd_req *req, struct httpd_resp *resp)
{
	json_t *body = httpd_body_json(req, resp), *fwd = NULL, *reply = NULL;
	const char *id;
	int hi, st;
	bool forced;
	char api[128] = "", host[CTL_ID_MAX] = "", reason[600] = "", err[300], by[CTL_BY_MAX];

	if (!body)
		return;
	if (!provision_body_ok(c, req, body, resp) || !ctl_require_leader(c, resp))
		goto out;
	id = json_string_value(json_object_get(body, "name"));
	pthread_mutex_lock(&c->prov_lock);
	pthread_mutex_lock(&c->lock);
	hi = provision_pick(c, req, body, resp, reason, sizeof(reason), &forced);
	if (hi >= 0) {
		struct ctl_host *h;
		snprintf(host, sizeof(host), "%s", c->model.hosts[hi].id);
		h = ctl_host_find(c, host);
		snprintf(api, sizeof(api), "%s", h ? h->api : "");
	}
	pthread_mutex_unlock(&c->lock);
	if (hi < 0) {
		pthread_mutex_unlock(&c->prov_lock);
		goto out;
	}

	fwd = json_deep_copy(body);
	json_object_del(fwd, "host");
	json_object_del(fwd, "force");
	st = ctl_agent_call(c, api, "POST", "/v1/vms?log=caller", fwd, 120000, &reply, err,
	                    sizeof(err));
	if (st == 201 || st == 200) {
		ctl_event(c, "vm_placed", "by", ctl_api_caller(c, req, by, sizeof(by)), "vm", id,
		          "host", host, "reason", reason, "forced", forced ? "true" : "", NULL);
		httpd_resp_json(resp, 201,
		                json_pack("{s:s,s:s,s:b,s:O}", "host", host, "reason", reason,
		                          "forced", forced, "vm", reply ? reply : json_null()));
	} else {
		agent_refused(c, req, resp, "vm_place_refused", st, reply, err, id, host);
	}
	pthread_mutex_unlock(&c->prov_lock);
out:
	json_decref(fwd);
	json_decref(reply);
	json_decref(body);
}

/* --- deletion ------------------------------------------------------------------ */

void ctl_api_delete_vm(struct ctl *c, const struct httpd_req *req, const char *id,
                       struct httpd_resp *resp)
{
	char api[128] = "", host[CTL_ID_MAX] = "", path[160], err[300], hstate[16] = "";
	char by[CTL_BY_MAX];
	bool migrating = false, found = false;
	json_t *reply = NULL;
	int st;

	if (!ctl_require_leader(c, resp))
		return;
	pthread_mutex_lock(&c->lock);
	{
		struct ctl_vm *v = ctl_vm_find(c, id);
		struct ctl_host *h = v ? ctl_host_find(c, v->host) : NULL;
		found = v != NULL;
		if (v) {
			migrating = v->migrating || ctl_mig_running(c, id);
			snprintf(host, sizeof(host), "%s", v->host);
		}
		if (h) {
			snprintf(api, sizeof(api), "%s", h->api);
			snprintf(hstate, sizeof(hstate), "%s", h->state);
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (!found) {
		ctl_refuse(c, req, resp, "vm_delete_refused", 404, "not_found", NULL, id, NULL,
		           "no vm %s", id);
		return;
	}
	if (migrating) {
		ctl_refuse(c, req, resp, "vm_delete_refused", 409, "busy", NULL, id, host,
		           "vm %s is migrating; delete it when it is done", id);
		return;
	}
	if (!strcmp(hstate, "down")) {
		ctl_refuse(c, req, resp, "vm_delete_refused", 503, "host_down", NULL, id, host,
		           "vm %s: its host %s is down", id, host);
		return;
	}
	snprintf(path, sizeof(path), "/v1/vms/%s?log=caller", id);
	st = ctl_agent_call(c, api, "DELETE", path, NULL, 60000, &reply, err, sizeof(err));
	if (st == 200 || st == 204) {
		ctl_event(c, "vm_deleted", "by", ctl_api_caller(c, req, by, sizeof(by)), "vm", id,
		          "host", host, "msg", "shut down and undefined by its agent", NULL);
		httpd_resp_json(resp, 200, json_pack("{s:s,s:s}", "deleted", id, "host", host));
	} else {
		agent_refused(c, req, resp, "vm_delete_refused", st, reply, err, id, host);
	}
	json_decref(reply);
}

/* --- migration ------------------------------------------------------------------ */

#define MIG_REFUSE(status, code, extra, host, ...)                                                 \
	ctl_refuse(c, req, resp, "migration_refused", status, code, extra, id, host, __VA_ARGS__)

/* The target of vm vi (index in the model) from host `from`, under c->lock:
 * `to` checked as if the VM were new there (its own allocation counted once:
 * it is taken off its host), or the feasible host of lowest volume after
 * the move when to is NULL. The host's index, or -1 with resp answered.
 * *forced_past gets the soft limit forced past ("" when none). */
static int migrate_target(struct ctl *c, const struct httpd_req *req, const char *id, int vi,
                          const char *to, bool force, struct httpd_resp *resp, char *forced_past,
                          size_t fcap)
{
	struct cl_vm v = c->model.vms[vi];
	struct cluster cl = c->model;
	struct cl_vm *vms = malloc(sizeof(*vms) * (size_t)(cl.nvms + 1));
	struct place_result pr = {0};
	int n = 0, from = v.host, ti = -1;
	char t[256], msg[2048];

	forced_past[0] = '\0';
	if (!vms) {
		httpd_resp_error(resp, 500, "internal", "out of memory");
		return -1;
	}
	for (int i = 0; i < cl.nvms; i++)
		if (i != vi)
			vms[n++] = cl.vms[i];
	cl.vms = vms;
	cl.nvms = n;
	if (place_compute(&cl, &v, &pr) < 0) {
		free(vms);
		httpd_resp_error(resp, 500, "internal", "out of memory");
		return -1;
	}
	free(vms);
	if (!to) {
		/* the VM's own host is never the answer */
		double best = 0;
		for (int i = 0; i < c->model.nhosts; i++) {
			double u[RES_N];
			const struct cl_host *h = &c->model.hosts[i];
			if (i == from || pr.block[i] != PLACE_OK)
				continue;
			for (int r = 0; r < RES_N; r++)
				u[r] = h->cap[r] > 0 ? (h->load[r] + v.demand[r]) / h->cap[r] : 0;
			if (ti < 0 || cluster_volume(u) < best) {
				best = cluster_volume(u);
				ti = i;
			}
		}
		if (ti < 0) {
			snprintf(msg, sizeof(msg), "no other host can take vm %s", id);
			blocks_text(c, &pr, from, msg, sizeof(msg));
			MIG_REFUSE(409, "blocked", blocks_json(c, &pr), NULL, "%s", msg);
		}
	} else {
		ti = ctl_model_host(&c->model, to);
		place_why_text(&c->model, &pr, ti, t, sizeof(t));
		/* an excluded target was let through by ctl_rt_migrate_allowed: forced */
		bool passable = place_block_soft(&pr, ti) || pr.block[ti] == PLACE_EXCLUDED;
		if (pr.block[ti] != PLACE_OK && !(force && passable)) {
			bool soft = place_block_soft(&pr, ti);
			MIG_REFUSE(409, "blocked", blocks_json(c, &pr), to,
			           "host %s cannot take vm %s: %s%s", to, id, t,
			           soft    ? " (a soft limit: \"force\": true moves it past it)"
			           : force ? " (a hard limit: \"force\" does not pass it)"
			                   : "");
			ti = -1;
		} else if (pr.block[ti] != PLACE_OK) {
			snprintf(forced_past, fcap, "%s", t);
		}
	}
	place_result_free(&pr);
	return ti;
}

/* The move's projection, as the planner's actions have it: the volumes of
 * source and target before and after, the migration's cost; and the reason. */
static void migrate_project(struct ctl *c, int vi, int ti, const char *forced_past,
                            struct ctl_mig *m)
{
	const struct cl_vm *v = &c->model.vms[vi];
	const struct cl_host *s = &c->model.hosts[v->host], *d = &c->model.hosts[ti];
	double sl[RES_N], dl[RES_N];
	char sc[160], dc[160];

	for (int r = 0; r < RES_N; r++) {
		sl[r] = s->load[r] - v->demand[r] > 0 ? s->load[r] - v->demand[r] : 0;
		dl[r] = d->load[r] + v->demand[r];
	}
	m->proj[0] = cluster_load_volume(s->load, s->cap);
	m->proj[1] = cluster_load_volume(sl, s->cap);
	m->proj[2] = cluster_load_volume(d->load, d->cap);
	m->proj[3] = cluster_load_volume(dl, d->cap);
	m->cost_s = cluster_migration_seconds(v->mem_mib, v->dirty_mbit, c->po.link_mbit);
	util_change(s, v->demand, -1, sc, sizeof(sc));
	util_change(d, v->demand, +1, dc, sizeof(dc));
	snprintf(m->reason, sizeof(m->reason),
	         "requested through the API%s%s; %s volume %.2f -> %.2f, %s %.2f -> %.2f; %s; %s",
	         forced_past[0] ? ", forced past a soft limit: " : "", forced_past, s->id,
	         m->proj[0], m->proj[1], d->id, m->proj[2], m->proj[3], sc, dc);
}

/* The body: {"to", "force", "wait"}, all optional; false with resp answered. */
static bool migrate_body_ok(struct ctl *c, const struct httpd_req *req, const char *id,
                            json_t *body, struct httpd_resp *resp)
{
	json_t *to = json_object_get(body, "to"), *force = json_object_get(body, "force");
	json_t *wait = json_object_get(body, "wait");
	size_t known = (to != NULL) + (force != NULL) + (wait != NULL);

	if ((to && !json_is_string(to)) || (force && !json_is_boolean(force)) ||
	    (wait && !json_is_boolean(wait)) || json_object_size(body) != known) {
		MIG_REFUSE(400, "bad_request", NULL, NULL,
		           "migrate: the body is {\"to\": \"<host>\", \"force\": false, \"wait\": "
		           "true}, all optional");
		return false;
	}
	return true;
}

/* The source and target checks before placement, under c->lock; the VM's
 * index in the model, or -1 with resp answered. */
static int migrate_vm_ok(struct ctl *c, const struct httpd_req *req, const char *id, const char *to,
                         struct httpd_resp *resp)
{
	int vi = ctl_model_vm(&c->model, id), from;

	if (vi < 0) {
		MIG_REFUSE(404, "not_found", NULL, to, "no vm %s", id);
		return -1;
	}
	from = c->model.vms[vi].host;
	if (to && ctl_model_host(&c->model, to) < 0) {
		MIG_REFUSE(404, "not_found", NULL, to, "no host %s", to);
		return -1;
	}
	if (to && ctl_model_host(&c->model, to) == from) {
		MIG_REFUSE(409, "same_host", NULL, to, "vm %s runs on %s already", id, to);
		return -1;
	}
	for (int i = 0; i < c->nhosts; i++) {
		const struct ctl_host *h = c->hosts[i];
		bool is_src = strcmp(h->id, c->model.hosts[from].id) == 0;
		if (h->monitor_only && (is_src || (to && strcmp(h->id, to) == 0))) {
			MIG_REFUSE(409, "blocked", NULL, h->id,
			           "host %s only monitors (vm.enabled = false): it cannot %s a "
			           "migration",
			           h->id, is_src ? "be the source of" : "take");
			return -1;
		}
	}
	return vi;
}

void ctl_api_migrate(struct ctl *c, const struct httpd_req *req, const char *id,
                     struct httpd_resp *resp)
{
	json_t *body = httpd_body_json(req, resp), *result = NULL;
	struct ctl_mig *m = NULL;
	char err[400], forced_past[256];
	int http = 500, vi, ti;
	bool force, wait;
	const char *to;

	if (!body)
		return;
	if (!migrate_body_ok(c, req, id, body, resp) || !ctl_require_leader(c, resp))
		goto out;
	wait = !json_is_false(json_object_get(body, "wait"));
	force = json_is_true(json_object_get(body, "force"));
	to = json_string_value(json_object_get(body, "to"));
	m = calloc(1, sizeof(*m));
	if (!m) {
		httpd_resp_error(resp, 500, "internal", "out of memory");
		goto out;
	}
	pthread_mutex_lock(&c->lock);
	vi = migrate_vm_ok(c, req, id, to, resp);
	/* exclude (the VM's, its host's, the target's) holds unless forced */
	if (vi >= 0 && !ctl_rt_migrate_allowed(c, req, id, c->model.hosts[c->model.vms[vi].host].id,
	                                       to, force, resp))
		vi = -1;
	ti = vi < 0 ? -1
	            : migrate_target(c, req, id, vi, to, force, resp, forced_past,
	                             sizeof(forced_past));
	if (ti < 0) {
		pthread_mutex_unlock(&c->lock);
		goto out;
	}
	snprintf(m->vm, sizeof(m->vm), "%s", id);
	snprintf(m->from, sizeof(m->from), "%s", c->model.hosts[c->model.vms[vi].host].id);
	snprintf(m->to, sizeof(m->to), "%s", c->model.hosts[ti].id);
	snprintf(m->kind, sizeof(m->kind), "manual");
	ctl_api_caller(c, req, m->by, sizeof(m->by));
	migrate_project(c, vi, ti, forced_past, m);
	if (!ctl_mig_add(c, m)) {
		pthread_mutex_unlock(&c->lock);
		MIG_REFUSE(409, "busy", NULL, m->to, "vm %s is migrating already", id);
		goto out;
	}
	if (!wait) {
		json_t *started = json_pack(
		    "{s:s,s:s,s:s,s:s,s:s,s:f,s:f,s:f,s:f,s:f}", "vm", id, "from", m->from, "to",
		    m->to, "state", "started", "reason", m->reason, "src_vol_before", m->proj[0],
		    "src_vol_after", m->proj[1], "dst_vol_before", m->proj[2], "dst_vol_after",
		    m->proj[3], "cost_s", m->cost_s);
		int rc = ctl_migrate_start(c, m); /* m is the thread's (or freed) now */
		m = NULL;
		pthread_mutex_unlock(&c->lock);
		if (rc < 0) {
			json_decref(started);
			httpd_resp_error(resp, 500, "internal", "cannot start the migration: %s",
			                 strerror(-rc));
		} else {
			httpd_resp_json(resp, 202, started);
		}
		goto out;
	}
	pthread_mutex_unlock(&c->lock);
	if (ctl_migrate_run(c, m, &result, &http, err, sizeof(err)) < 0)
		httpd_resp_error(resp, http, "migration_failed", "%s", err);
	else
		httpd_resp_json(resp, 200, result);
	m = NULL; /* ctl_migrate_run freed it */
out:
	free(m);
	json_decref(body);
}
