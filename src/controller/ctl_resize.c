/* ctl_resize.c - resize in place: a VM's vCPUs and memory changed on its own
 * host through its agent (POST /v1/vms/<id>/resize), for the round's
 * PLAN_RESIZE actions and the operator's API call alike; each one logged as
 * resize_started, then resize_done with what the guest got (libvirt's
 * figures, read back by the agent) or resize_failed with the reason. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "controller/ctl.h"

const struct ctl_resize *ctl_resize_find(struct ctl *c, const char *vm)
{
	for (int i = 0; i < c->nresizes; i++)
		if (strcmp(c->resizes[i]->vm, vm) == 0)
			return c->resizes[i];
	return NULL;
}

/* Registers r as running: false when its VM resizes or migrates already.
 * Under the lock. */
static bool resize_add(struct ctl *c, struct ctl_resize *r)
{
	struct ctl_vm *v = ctl_vm_find(c, r->vm);

	if (ctl_resize_find(c, r->vm) || ctl_mig_running(c, r->vm) || (v && v->migrating))
		return false;
	if (ctl_grow((void **)&c->resizes, &c->cap_resizes, c->nresizes, sizeof(*c->resizes)) < 0)
		return false;
	r->started_ms = util_now_ms();
	c->resizes[c->nresizes++] = r;
	return true;
}

static void resize_remove(struct ctl *c, struct ctl_resize *r)
{
	for (int i = 0; i < c->nresizes; i++)
		if (c->resizes[i] == r) {
			c->resizes[i] = c->resizes[--c->nresizes];
			return;
		}
}

static void fmt_int(char *buf, size_t cap, long long v)
{
	snprintf(buf, cap, "%lld", v);
}

/* Runs r through its host's agent to its end; r is removed and freed.
 * 0 or -EIO with err; *result (may be NULL) the agent's answer. */
static int resize_run(struct ctl *c, struct ctl_resize *r, json_t **result, int *http, char *err,
                      size_t errlen)
{
	char api[128] = "", path[160], vb[24], va[24], mb[24], ma[24], wall[24];
	json_t *body = json_object(), *reply = NULL;
	int64_t t0 = util_mono_ms();
	int st, rc = 0;

	ctl_fmt_double(vb, sizeof(vb), r->vcpus_before);
	ctl_fmt_double(mb, sizeof(mb), r->mem_before);
	fmt_int(va, sizeof(va), r->vcpus ? r->vcpus : (long long)r->vcpus_before);
	fmt_int(ma, sizeof(ma), r->mem_mib ? r->mem_mib : (long long)r->mem_before);
	if (r->vcpus)
		json_object_set_new(body, "vcpus", json_integer(r->vcpus));
	if (r->mem_mib)
		json_object_set_new(body, "mem_mib", json_integer(r->mem_mib));
	{
		char what[160];
		snprintf(what, sizeof(what), "resizing %s on %s", r->vm, r->host);
		if (!ctl_fence(c, what, err, errlen)) {
			json_decref(body);
			*http = 503;
			pthread_mutex_lock(&c->lock);
			resize_remove(c, r);
			pthread_mutex_unlock(&c->lock);
			free(r);
			return -EPERM;
		}
	}
	ctl_event(c, "resize_started", "by", r->by, "vm", r->vm, "host", r->host, "kind", "resize",
	          "res", r->res, "reason", r->reason, "vcpus_before", vb, "vcpus_after", va,
	          "mem_before", mb, "mem_after", ma, NULL);
	pthread_mutex_lock(&c->lock);
	{
		struct ctl_host *h = ctl_host_find(c, r->host);
		if (h)
			snprintf(api, sizeof(api), "%s", h->api);
	}
	pthread_mutex_unlock(&c->lock);
	/* ?log=caller: its outcome is logged here, once (not also by the agent) */
	snprintf(path, sizeof(path), "/v1/vms/%s/resize?log=caller", r->vm);
	/* the agent waits up to 15 s for the balloon */
	st = ctl_agent_call(c, api, "POST", path, body, 60000, &reply, err, errlen);
	json_decref(body);
	fmt_int(wall, sizeof(wall), util_mono_ms() - t0);
	if (st == 200) {
		char gv[24], gm[24];
		fmt_int(gv, sizeof(gv), json_integer_value(json_object_get(reply, "vcpus")));
		fmt_int(gm, sizeof(gm), json_integer_value(json_object_get(reply, "mem_mib")));
		ctl_event(c, "resize_done", "by", r->by, "vm", r->vm, "host", r->host,
		          "vcpus_before", vb, "vcpus", gv, "vcpus_asked", va, "mem_before", mb,
		          "mem_mib", gm, "mem_asked", ma, "wall_ms", wall, "reason", r->reason,
		          NULL);
		pthread_mutex_lock(&c->lock);
		c->m.resize_ok++;
		pthread_mutex_unlock(&c->lock);
		if (result) {
			json_object_set_new(reply, "reason", json_string(r->reason));
			*result = reply;
			reply = NULL;
		}
		*http = 200;
	} else {
		if (st > 0)
			snprintf(err, errlen, "agent of %s: HTTP %d: %s", r->host, st,
			         ctl_agent_msg(reply, "no message"));
		else {
			char e2[300];
			snprintf(e2, sizeof(e2), "agent of %s unreachable: %s", r->host, err);
			snprintf(err, errlen, "%s", e2);
		}
		/* the agent's refusals are the caller's to see as they are */
		*http = st == 400 || st == 404 || st == 409 || st == 503 ? st : 502;
		ctl_event(c, "resize_failed", "by", r->by, "vm", r->vm, "host", r->host,
		          "vcpus_before", vb, "vcpus_asked", va, "mem_before", mb, "mem_asked", ma,
		          "msg", err, "reason", r->reason, NULL);
		rc = -EIO;
	}
	json_decref(reply);
	pthread_mutex_lock(&c->lock);
	{
		struct ctl_vm *v = ctl_vm_find(c, r->vm);
		if (v)
			v->resized_ms = util_now_ms();
		if (rc < 0) {
			c->m.resize_failed++;
			if (v)
				v->resize_failed_ms =
				    util_now_ms(); /* a move is the way for a while */
		}
	}
	resize_remove(c, r);
	pthread_mutex_unlock(&c->lock);
	free(r);
	return rc;
}

struct worker_arg {
	struct ctl *c;
	struct ctl_resize *r;
};

static void *worker_main(void *arg)
{
	struct worker_arg *w = arg;
	char err[400];
	int http;

	resize_run(w->c, w->r, NULL, &http, err, sizeof(err));
	free(w);
	return NULL;
}

void ctl_resize_start(struct ctl *c, const struct plan_action *a)
{
	const struct cl_vm *mv = &c->model.vms[a->vm];
	struct ctl_vm *v = ctl_vm_find(c, mv->id);
	struct ctl_resize *r = calloc(1, sizeof(*r));
	struct worker_arg *w = malloc(sizeof(*w));

	if (!r || !w) {
		free(r);
		free(w);
		return;
	}
	/* not again before its samples show the new size (balance.settle_s, two
	 * rounds at least), nor within the cooldown after a failure */
	int64_t settle =
	    c->o.settle_s * 1000 > 2 * c->o.round_ms ? c->o.settle_s * 1000 : 2 * c->o.round_ms;
	if (v &&
	    ((v->resize_failed_ms && util_now_ms() - v->resize_failed_ms < c->po.cooldown_ms) ||
	     (v->resized_ms && util_now_ms() - v->resized_ms < settle))) {
		free(r);
		free(w);
		return;
	}
	snprintf(r->vm, sizeof(r->vm), "%s", mv->id);
	snprintf(r->host, sizeof(r->host), "%s", c->model.hosts[a->from].id);
	snprintf(r->reason, sizeof(r->reason), "%s", a->reason);
	snprintf(r->res, sizeof(r->res), "%s",
	         a->res >= 0 && a->res < RES_N ? ctl_res_names[a->res] : "");
	r->vcpus_before = a->vcpus_before;
	r->mem_before = a->mem_before;
	if (lround(a->vcpus_after) != lround(a->vcpus_before))
		r->vcpus = (int)lround(a->vcpus_after);
	if (lround(a->mem_after) != lround(a->mem_before))
		r->mem_mib = (int)lround(a->mem_after);
	if ((!r->vcpus && !r->mem_mib) || !resize_add(c, r)) {
		free(r);
		free(w);
		return;
	}
	w->c = c;
	w->r = r;
	if (ctl_spawn(worker_main, w) < 0) {
		log_error("cannot start a resize thread for vm %s", r->vm);
		resize_remove(c, r);
		free(r);
		free(w);
	}
}

/* One size of the body: absent (0), or a positive integer. */
static bool body_int(json_t *body, const char *k, int *out)
{
	json_t *j = json_object_get(body, k);

	*out = 0;
	if (!j)
		return true;
	if (!json_is_integer(j) || json_integer_value(j) < 1 || json_integer_value(j) > 1 << 24)
		return false;
	*out = (int)json_integer_value(j);
	return true;
}

void ctl_api_resize(struct ctl *c, const struct httpd_req *req, const char *id,
                    struct httpd_resp *resp)
{
	json_t *body = httpd_body_json(req, resp), *result = NULL;
	struct ctl_resize *r = NULL;
	char err[600], hstate[16] = "", host[CTL_ID_MAX] = "";
	int http = 500, vcpus, mem;
	size_t known;

	if (!body)
		return;
	known =
	    (json_object_get(body, "vcpus") != NULL) + (json_object_get(body, "mem_mib") != NULL);
	if (!known || json_object_size(body) != known || !body_int(body, "vcpus", &vcpus) ||
	    !body_int(body, "mem_mib", &mem)) {
		ctl_refuse(c, req, resp, "resize_refused", 400, "bad_request", NULL, id, NULL,
		           "resize: the body is {\"vcpus\": N, \"mem_mib\": M}, positive "
		           "integers, either or both");
		goto out;
	}
	if (!ctl_require_leader(c, resp))
		goto out;
	r = calloc(1, sizeof(*r));
	if (!r) {
		httpd_resp_error(resp, 500, "internal", "out of memory");
		goto out;
	}
	pthread_mutex_lock(&c->lock);
	{
		struct ctl_vm *v = ctl_vm_find(c, id);
		struct ctl_host *h = v ? ctl_host_find(c, v->host) : NULL;
		if (!v) {
			pthread_mutex_unlock(&c->lock);
			ctl_refuse(c, req, resp, "resize_refused", 404, "not_found", NULL, id, NULL,
			           "no vm %s", id);
			goto out;
		}
		if (h)
			snprintf(hstate, sizeof(hstate), "%s", h->state);
		snprintf(host, sizeof(host), "%s", v->host);
		if (h && h->monitor_only) {
			pthread_mutex_unlock(&c->lock);
			ctl_refuse(c, req, resp, "resize_refused", 409, "blocked", NULL, id, host,
			           "host %s only monitors (vm.enabled = false): it cannot resize "
			           "vm %s",
			           host, id);
			goto out;
		}
		if (!strcmp(hstate, "down")) {
			pthread_mutex_unlock(&c->lock);
			ctl_refuse(c, req, resp, "resize_refused", 503, "host_down", NULL, id, host,
			           "vm %s: its host %s is down", id, host);
			goto out;
		}
		/* the maxima the agent registered: a clear answer before asking it */
		if ((vcpus && v->max_vcpus > 0 && vcpus > v->max_vcpus) ||
		    (mem && v->max_mem_mib > 0 && mem > v->max_mem_mib)) {
			pthread_mutex_unlock(&c->lock);
			ctl_refuse(c, req, resp, "resize_refused", 400, "bad_request", NULL, id,
			           host,
			           "resize vm %s: its domain's maximum is %.0f vCPU, %.0f MiB", id,
			           v->max_vcpus, v->max_mem_mib);
			goto out;
		}
		snprintf(r->vm, sizeof(r->vm), "%s", id);
		snprintf(r->host, sizeof(r->host), "%s", v->host);
		snprintf(r->reason, sizeof(r->reason), "requested through the API");
		ctl_api_caller(c, req, r->by, sizeof(r->by));
		r->vcpus = vcpus;
		r->mem_mib = mem;
		r->vcpus_before = v->vcpus;
		r->mem_before = v->mem_mib;
	}
	if (!resize_add(c, r)) {
		pthread_mutex_unlock(&c->lock);
		ctl_refuse(c, req, resp, "resize_refused", 409, "busy", NULL, id, NULL,
		           "vm %s is being resized or migrated", id);
		goto out;
	}
	pthread_mutex_unlock(&c->lock);
	if (resize_run(c, r, &result, &http, err, sizeof(err)) < 0)
		httpd_resp_error(resp, http, http == 502 ? "resize_failed" : "agent", "%s", err);
	else
		httpd_resp_json(resp, 200, result);
	r = NULL; /* resize_run freed it */
out:
	free(r);
	json_decref(body);
}
