/* ctl_api.c - the controller's REST API (docs/controller.md), its
 * /metrics and the dashboard's files. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/util.h"
#include "controller/ctl.h"

#define SERIES_MAX_READ 50000

static json_t *res_obj(const double v[RES_N], const bool *valid)
{
	json_t *o = json_object();

	for (int r = 0; r < RES_N; r++)
		json_object_set_new(o, ctl_res_names[r],
		                    valid && !valid[r] ? json_null() : json_real(v[r]));
	return o;
}

/* --- views (under the lock) ---------------------------------------------- */

static json_t *host_json(struct ctl *c, const struct ctl_host *h, bool full)
{
	double peak[RES_N], fc[RES_N];
	bool hot[RES_N], any = false;
	json_t *j, *vms = json_array(), *hotj = json_object();
	int64_t now = ctl_now_ms(c);

	for (int r = 0; r < RES_N; r++) {
		peak[r] = h->sum[r].peak;
		fc[r] = h->sum[r].ar1.forecast;
		hot[r] = h->hot[r];
		any |= hot[r];
		json_object_set_new(hotj, ctl_res_names[r], json_boolean(hot[r]));
	}
	for (int i = 0; i < c->nvms; i++)
		if (strcmp(c->vms[i]->host, h->id) == 0)
			json_array_append_new(vms, json_string(c->vms[i]->id));
	j = json_pack("{s:s,s:s,s:s,s:b,s:b,s:I,s:f,s:o,s:o,s:o,s:o,s:o,s:b,s:f,s:o,s:i,s:I}", "id",
	              h->id, "ip", h->ip, "state", h->state, "excluded", h->excluded, "vm_enabled",
	              !h->monitor_only, "last_seen", (json_int_t)h->last_seen, "age_s",
	              h->last_seen ? (double)(now - h->last_seen) / 1000.0 : -1.0, "cap",
	              res_obj(h->cap, NULL), "util", res_obj(h->last, h->has_last), "peak",
	              res_obj(peak, NULL), "forecast", res_obj(fc, NULL), "hot", hotj, "hotspot",
	              any, "volume", h->volume, "vms", vms, "inflight", h->inflight, "samples",
	              (json_int_t)profile_len(&h->prof[RES_CPU]));
	{
		/* the chance of passing a threshold within the horizon (risk.h), as
		 * the last round's plan saw it; null before a plan or without enough
		 * samples */
		int hi = ctl_host_index(c, h->id);
		bool known = c->have_plan && hi >= 0 && hi < c->model.nhosts &&
		             c->model.hosts[hi].risk_known && c->plan.risk;
		json_object_set_new(j, "risk", known ? json_real(c->plan.risk[hi]) : json_null());
		json_object_set_new(j, "empty", json_boolean(h->empty));
		json_object_set_new(j, "at_risk",
		                    json_boolean(known && c->po.risk_target > 0 &&
		                                 c->plan.risk[hi] > c->po.risk_target));
	}
	if (full) {
		json_t *p = json_object();
		for (int r = 0; r < RES_N; r++) {
			const struct profile_summary *s = &h->sum[r];
			json_object_set_new(p, ctl_res_names[r],
			                    json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:i,s:b}",
			                              "n", (json_int_t)s->n, "mean", s->mean, "p50",
			                              s->p50, "p95", s->p95, "p99", s->p99, "max",
			                              s->max, "forecast", s->ar1.forecast, "phi",
			                              s->ar1.phi, "over", (int)s->over, "hot",
			                              s->hot));
		}
		json_object_set_new(j, "profile", p);
		json_object_set_new(j, "api", json_string(h->api));
	}
	return j;
}

static json_t *vm_json(struct ctl *c, const struct ctl_vm *v)
{
	double peak[RES_N], demand[RES_N], scale[RES_N];
	struct ctl_host *h = ctl_host_find(c, v->host);
	json_t *pin = json_array(), *mig = json_null();
	const struct ctl_mig *m;
	char buf[512], *save = NULL;
	bool reachable = h && strcmp(h->state, "down") != 0;
	int64_t cooldown = v->last_migration ? v->last_migration + c->po.cooldown_ms : 0;

	scale[RES_CPU] = v->vcpus > 0 ? v->vcpus : 1;
	scale[RES_MEM] = v->mem_mib;
	scale[RES_NET] = h ? h->cap[RES_NET] : 0;
	for (int r = 0; r < RES_N; r++) {
		peak[r] = profile_percentile(&v->prof[r], c->ro.peak_pct);
		demand[r] = peak[r] * scale[r];
	}
	snprintf(buf, sizeof(buf), "%s", v->pin);
	for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
		json_array_append_new(pin, json_string(t));
	if (v->migrating) {
		mig = json_pack(
		    "{s:s,s:s,s:s,s:I,s:I,s:I}", "src", v->mig_src[0] ? v->mig_src : v->host, "dst",
		    v->mig_dst, "phase", v->mig_phase[0] ? v->mig_phase : "starting", "started",
		    (json_int_t)v->mig_started, "data_processed", (json_int_t)v->mig_data_done,
		    "data_total", (json_int_t)v->mig_data_total);
	} else if ((m = ctl_mig_find(c, v->id))) {
		/* ours, with no record in Redis: not begun on the agent yet, or
		 * ended there and its worker finishing (the VM listed on the target) */
		bool ended = strcmp(v->host, m->to) == 0;
		mig = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "src", m->from, "dst", m->to, "phase",
		                ended ? "finishing" : "starting", "started",
		                (json_int_t)m->started_ms, "data_processed", (json_int_t)0,
		                "data_total", (json_int_t)0);
	}
	json_t *j = json_pack(
	    "{s:s,s:s,s:s,s:b,s:I,s:s,s:s,s:b,s:f,s:f,s:o,s:o,s:o,s:{s:o,s:s,s:s,s:b},s:b,s:o,s:I,"
	    "s:I}",
	    "id", v->id, "host", v->host, "state", reachable ? v->state : "unreachable",
	    "reachable", reachable, "pid", (json_int_t)v->pid, "tap", v->tap, "uuid", v->uuid,
	    "managed", v->managed, "vcpus", v->vcpus, "mem_mib", v->mem_mib, "util",
	    res_obj(v->last, v->has_last), "peak", res_obj(peak, NULL), "demand",
	    res_obj(demand, NULL), "rules", "pin", pin, "group", v->group, "anti_group",
	    v->anti_group, "exclude", v->exclude, "migrating", !json_is_null(mig), "migration", mig,
	    "last_migration", (json_int_t)v->last_migration, "cooldown_until",
	    (json_int_t)cooldown);
	const struct ctl_resize *rs = ctl_resize_find(c, v->id);

	ctl_rt_vm_view(c, v, json_object_get(j, "rules")); /* automation, who set them */

	/* its domain's maxima (0 unknown: a VM registered by hand) and a
	 * resize of ours under way */
	json_object_set_new(j, "max_vcpus", json_real(v->max_vcpus));
	json_object_set_new(j, "max_mem_mib", json_real(v->max_mem_mib));
	json_object_set_new(j, "resizing",
	                    rs ? json_pack("{s:i,s:i,s:I}", "vcpus",
	                                   rs->vcpus ? rs->vcpus : (int)v->vcpus, "mem_mib",
	                                   rs->mem_mib ? rs->mem_mib : (int)v->mem_mib, "started",
	                                   (json_int_t)rs->started_ms)
	                       : json_null());
	return j;
}

static json_t *cluster_json(struct ctl *c)
{
	int up = 0, down = 0, maint = 0, inflight = c->nmigs;
	double maxv = 0;
	json_t *hot = json_array();

	for (int i = 0; i < c->nhosts; i++) {
		struct ctl_host *h = c->hosts[i];
		up += !strcmp(h->state, "up");
		down += !strcmp(h->state, "down");
		maint += !strcmp(h->state, "maintenance");
		if (h->hot[RES_CPU] || h->hot[RES_MEM] || h->hot[RES_NET])
			json_array_append_new(hot, json_string(h->id));
		if (h->volume > maxv)
			maxv = h->volume;
	}
	for (int i = 0; i < c->nvms; i++)
		if (c->vms[i]->migrating && !ctl_mig_running(c, c->vms[i]->id))
			inflight++;
	json_t *j = json_pack(
	    "{s:s,s:b,s:I,s:s,s:s,s:I,s:I,s:f,s:I,s:s,s:{s:i,s:i,s:i,s:i},s:i,s:o,s:i,s:f}", "id",
	    c->o.id, "leader", c->leader, "epoch", (json_int_t)(c->leader ? c->epoch : 0),
	    "leader_id", c->leader_id, "mode", ctl_mode_names[c->o.mode], "round",
	    (json_int_t)c->round, "round_ms", (json_int_t)c->o.round_ms, "round_took_ms",
	    c->round_took_ms, "last_round", (json_int_t)c->last_round_ms, "redis",
	    c->redis_up ? "up" : "down", "hosts", "total", c->nhosts, "up", up, "down", down,
	    "maintenance", maint, "vms", c->nvms, "hotspots", hot, "migrations_inflight", inflight,
	    "max_volume", maxv);
	ctl_rt_cluster_view(c, j); /* the mode's source, the windows */
	return j;
}

static json_t *plan_json(struct ctl *c)
{
	json_t *acts = json_array(), *unres = json_array(), *emptied = json_array();
	const struct plan_result *p = &c->plan;

	for (int i = 0; c->have_plan && i < p->nactions; i++) {
		const struct plan_action *a = &p->actions[i];
		json_t *aj = json_pack(
		    "{s:s,s:s,s:s,s:s,s:i,s:o,s:s,s:f,s:f,s:f,s:f,s:f}", "kind",
		    plan_kind_name(a->kind), "vm", c->model.vms[a->vm].id, "from",
		    c->model.hosts[a->from].id, "to", c->model.hosts[a->to].id, "swap_id",
		    a->swap_id, "res",
		    a->res >= 0 && a->res < RES_N ? json_string(ctl_res_names[a->res])
		                                  : json_null(),
		    "reason", a->reason, "src_vol_before", a->src_vol_before, "src_vol_after",
		    a->src_vol_after, "dst_vol_before", a->dst_vol_before, "dst_vol_after",
		    a->dst_vol_after, "cost_s", a->cost_s);
		if (aj && a->kind == PLAN_RESIZE) {
			json_object_set_new(aj, "vcpus_before", json_real(a->vcpus_before));
			json_object_set_new(aj, "vcpus_after", json_real(a->vcpus_after));
			json_object_set_new(aj, "mem_before", json_real(a->mem_before));
			json_object_set_new(aj, "mem_after", json_real(a->mem_after));
		}
		if (aj && c->model.hosts[a->from].risk_known) {
			json_object_set_new(aj, "src_risk_before", json_real(a->src_risk_before));
			json_object_set_new(aj, "src_risk_after", json_real(a->src_risk_after));
		}
		if (aj && c->model.hosts[a->to].risk_known) {
			json_object_set_new(aj, "dst_risk_before", json_real(a->dst_risk_before));
			json_object_set_new(aj, "dst_risk_after", json_real(a->dst_risk_after));
		}
		json_array_append_new(acts, aj);
	}
	for (int i = 0; c->have_plan && i < p->nunresolved; i++) {
		const struct plan_unresolved *u = &p->unresolved[i];
		json_array_append_new(unres,
		                      json_pack("{s:s,s:s,s:s}", "host",
		                                u->host >= 0 && u->host < c->model.nhosts
		                                    ? c->model.hosts[u->host].id
		                                    : "?",
		                                "why", plan_why_name(u->why), "reason", u->reason));
	}
	for (int i = 0; c->have_plan && i < p->nemptied; i++)
		if (p->emptied[i] >= 0 && p->emptied[i] < c->model.nhosts)
			json_array_append_new(emptied,
			                      json_string(c->model.hosts[p->emptied[i]].id));
	json_t *j =
	    json_pack("{s:s,s:s,s:I,s:o,s:o,s:o,s:f,s:f}", "mode", ctl_mode_names[c->o.mode],
	              "objective", plan_objective_name(c->po.objective), "round",
	              (json_int_t)c->round, "actions", acts, "unresolved", unres, "emptied",
	              emptied, "max_volume_before", c->have_plan ? p->max_vol_before : 0.0,
	              "max_volume_after", c->have_plan ? p->max_vol_after : 0.0);
	ctl_rt_plan_view(c, j);
	return j;
}

/* --- series and histograms ---------------------------------------------- */

static bool parse_int_arg(const struct httpd_req *req, const char *name, long long def,
                          long long lo, long long hi, long long *out, struct httpd_resp *resp)
{
	const char *s = httpd_query(req, name);
	int64_t v;

	if (!s) {
		*out = def;
		return true;
	}
	if (!util_parse_i64(s, &v) || v < lo || v > hi) {
		httpd_resp_error(resp, 400, "bad_query", "%s must be an integer from %lld to %lld",
		                 name, lo, hi);
		return false;
	}
	*out = v;
	return true;
}

static void api_series(struct ctl *c, const struct httpd_req *req, const char *kind, const char *id,
                       struct httpd_resp *resp)
{
	long long since, points;
	const char *fq = httpd_query(req, "fields");
	char fields_buf[256], *fields[16], *save = NULL, start[32], cnt[16];
	int nf = 0;
	redisReply *r = NULL;
	json_t *t = json_array(), *vals = json_object(), *arr[16];
	size_t n;
	bool down = false;
	int64_t step = 0;

	if (!parse_int_arg(req, "since", 300, 1, 604800, &since, resp) ||
	    !parse_int_arg(req, "points", 300, 10, 5000, &points, resp))
		goto out;
	snprintf(fields_buf, sizeof(fields_buf), "%s", fq ? fq : "cpu,mem,net");
	for (char *f = strtok_r(fields_buf, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
		if (nf == 16 || !util_valid_id(f)) {
			httpd_resp_error(resp, 400, "bad_query",
			                 "fields: at most 16 names of letters, digits, _ . -");
			goto out;
		}
		fields[nf++] = f;
	}
	if (!nf) {
		httpd_resp_error(resp, 400, "bad_query", "fields: name at least one field");
		goto out;
	}
	snprintf(start, sizeof(start), "%lld", (long long)(util_now_ms() - since * 1000));
	snprintf(cnt, sizeof(cnt), "%d", SERIES_MAX_READ);
	pthread_mutex_lock(&c->aux_lock);
	if (store_ensure(c->aux, util_mono_ms()))
		r = store_command(c->aux, "XREVRANGE ts:%s:%s + %s COUNT %s", kind, id, start, cnt);
	pthread_mutex_unlock(&c->aux_lock);
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		httpd_resp_error(resp, 503, "redis", "reading ts:%s:%s: %s", kind, id,
		                 r && r->type == REDIS_REPLY_ERROR ? r->str
		                                                   : "redis is unreachable");
		goto out;
	}
	for (int f = 0; f < nf; f++) {
		arr[f] = json_array();
		json_object_set_new(vals, fields[f], arr[f]);
	}
	n = r->elements;
	{
		/* time buckets: entries are newest first */
		int64_t t_new = 0, t_old = 0;
		size_t nb = n > (size_t)points ? (size_t)points : n;
		if (n) {
			t_new = atoll(r->element[0]->element[0]->str);
			t_old = atoll(r->element[n - 1]->element[0]->str);
		}
		down = n > (size_t)points;
		step = nb > 1 ? (t_new - t_old) / (int64_t)(down ? nb : nb - 1) : 0;
		if (step <= 0)
			step = 1;
		for (size_t b = 0, k = n; b < nb; b++) {
			int64_t lo = t_old + (int64_t)b * step, hi = lo + step;
			double sum[16] = {0};
			int cntv[16] = {0};
			int64_t tsum = 0;
			int m = 0;
			/* take entries (oldest first) up to hi; the last bucket takes the rest */
			while (k > 0) {
				redisReply *e = r->element[k - 1];
				int64_t et;
				if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) {
					k--;
					continue;
				}
				et = atoll(e->element[0]->str);
				if (down && et >= hi && b + 1 < nb)
					break;
				for (int f = 0; f < nf; f++) {
					double v = NAN;
					const char *s = store_hget(e->element[1], fields[f]);
					if (s[0] && util_parse_double(s, &v) && isfinite(v)) {
						sum[f] += v;
						cntv[f]++;
					}
				}
				tsum += et;
				m++;
				k--;
				if (!down)
					break;
			}
			if (!m)
				continue;
			json_array_append_new(t, json_integer(down ? lo : tsum / m));
			for (int f = 0; f < nf; f++)
				json_array_append_new(arr[f], cntv[f] ? json_real(sum[f] / cntv[f])
				                                      : json_null());
		}
	}
	httpd_resp_json(resp, 200,
	                json_pack("{s:s,s:s,s:I,s:I,s:b,s:b,s:O,s:O}", "id", id, "kind", kind,
	                          "since", (json_int_t)since, "step_ms", (json_int_t)step,
	                          "downsampled", down, "truncated", n >= SERIES_MAX_READ, "t", t,
	                          "values", vals));
out:
	freeReplyObject(r);
	json_decref(t);
	json_decref(vals);
}

static json_t *histogram_json(const char *kind, const char *id, const struct profile p[RES_N])
{
	json_t *edges = json_array(), *counts = json_object();

	for (int i = 0; i <= HIST_BINS; i++)
		json_array_append_new(edges, json_real((double)i / HIST_BINS));
	for (int r = 0; r < RES_N; r++) {
		json_t *a = json_array();
		for (int i = 0; i < HIST_BINS; i++)
			json_array_append_new(a, json_integer(p[r].hist.bins[i]));
		json_object_set_new(counts, ctl_res_names[r], a);
	}
	return json_pack("{s:s,s:s,s:i,s:o,s:o,s:I}", "id", id, "kind", kind, "bins", HIST_BINS,
	                 "edges", edges, "counts", counts, "n",
	                 (json_int_t)profile_len(&p[RES_CPU]));
}

/* --- events --------------------------------------------------------------- */

struct sse {
	struct ctl *c;
	char last[40];
	char *pending;
	size_t plen, poff;
	int64_t keepalive_ms;
};

static void sse_free(void *cls)
{
	struct sse *s = cls;

	free(s->pending);
	free(s);
}

static long sse_read(void *cls, char *buf, size_t max)
{
	struct sse *s = cls;
	struct ctl *c = s->c;

	while (!s->pending || s->poff == s->plen) {
		char err[200];
		json_t *res, *evs;
		size_t i;
		FILE *f;
		char *out = NULL;
		size_t len = 0;
		if (c->stop)
			return HTTPD_STREAM_END;
		res = ctl_events_query(c, s->last, 200, 1, NULL, NULL, NULL, err, sizeof(err));
		free(s->pending);
		s->pending = NULL;
		s->plen = s->poff = 0;
		f = open_memstream(&out, &len);
		if (!f) {
			json_decref(res);
			return HTTPD_STREAM_END;
		}
		evs = json_object_get(res, "events");
		for (i = 0; i < json_array_size(evs); i++) {
			json_t *e = json_array_get(evs, i);
			char *d = json_dumps(e, JSON_COMPACT);
			fprintf(f, "id: %s\nevent: %s\ndata: %s\n\n",
			        json_string_value(json_object_get(e, "id")),
			        json_string_value(json_object_get(e, "type"))
			            ? json_string_value(json_object_get(e, "type"))
			            : "event",
			        d ? d : "{}");
			free(d);
			snprintf(s->last, sizeof(s->last), "%s",
			         json_string_value(json_object_get(e, "id")));
		}
		if (!i && util_mono_ms() >= s->keepalive_ms) {
			fputs(res ? ": keepalive\n\n" : ": redis unreachable\n\n", f);
			s->keepalive_ms = util_mono_ms() + 15000;
		}
		fclose(f);
		json_decref(res);
		if (!res && !len) {
			free(out);
			struct timespec ts = {1, 0};
			nanosleep(&ts, NULL);
			continue;
		}
		s->pending = out;
		s->plen = len;
	}
	{
		size_t k = s->plen - s->poff < max ? s->plen - s->poff : max;
		memcpy(buf, s->pending + s->poff, k);
		s->poff += k;
		return (long)k;
	}
}

static void api_events_stream(struct ctl *c, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct sse *s = calloc(1, sizeof(*s));
	const char *last = httpd_header(req, "Last-Event-ID");

	if (!s) {
		httpd_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	s->c = c;
	if (last && last[0] && strlen(last) < sizeof(s->last) &&
	    strspn(last, "0123456789-") == strlen(last)) {
		snprintf(s->last, sizeof(s->last), "%s", last);
	} else {
		/* from the newest entry now on (not from the clock: an entry added in
		 * the same millisecond would be missed) */
		redisReply *r = NULL;
		pthread_mutex_lock(&c->aux_lock);
		if (store_ensure(c->aux, util_mono_ms()))
			r = store_command(c->aux, "XREVRANGE events + - COUNT 1");
		pthread_mutex_unlock(&c->aux_lock);
		if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
		    r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
		    r->element[0]->element[0]->type == REDIS_REPLY_STRING)
			snprintf(s->last, sizeof(s->last), "%s", r->element[0]->element[0]->str);
		else
			snprintf(s->last, sizeof(s->last), "0-0");
		freeReplyObject(r);
	}
	resp->status = 200;
	resp->content_type = "text/event-stream";
	resp->stream = sse_read;
	resp->stream_cls = s;
	resp->stream_free = sse_free;
}

static void api_events(struct ctl *c, const struct httpd_req *req, struct httpd_resp *resp)
{
	long long count, wait;
	const char *after = httpd_query(req, "after");
	json_t *res;
	char err[200];

	if (!parse_int_arg(req, "count", 100, 1, 10000, &count, resp) ||
	    !parse_int_arg(req, "wait", 0, 0, 30, &wait, resp))
		return;
	if (after &&
	    (!after[0] || strlen(after) > 40 || strspn(after, "0123456789-") != strlen(after))) {
		httpd_resp_error(resp, 400, "bad_query",
		                 "after must be a stream id like 1764115200000-0");
		return;
	}
	res = ctl_events_query(c, after, (int)count, (int)wait, httpd_query(req, "type"),
	                       httpd_query(req, "vm"), httpd_query(req, "host"), err, sizeof(err));
	if (!res)
		httpd_resp_error(resp, 503, "redis", "%s", err);
	else
		httpd_resp_json(resp, 200, res);
}

/* --- mutations ------------------------------------------------------------ */

/* 503 not_leader naming the leader (and its address when known). */
bool ctl_require_leader(struct ctl *c, struct httpd_resp *resp)
{
	char leader[CTL_ID_MAX], addr[160] = "";
	bool is;

	pthread_mutex_lock(&c->lock);
	is = c->leader;
	snprintf(leader, sizeof(leader), "%s", c->leader_id);
	pthread_mutex_unlock(&c->lock);
	if (is)
		return true;
	if (leader[0]) {
		redisReply *r = NULL;
		pthread_mutex_lock(&c->aux_lock);
		if (store_ensure(c->aux, util_mono_ms()))
			r = store_command(c->aux, "GET controller:%s", leader);
		pthread_mutex_unlock(&c->aux_lock);
		if (r && r->type == REDIS_REPLY_STRING)
			snprintf(addr, sizeof(addr), "%s", r->str);
		freeReplyObject(r);
	}
	httpd_resp_error(
	    resp, 503, "not_leader", "this controller (%s) is not the leader; %s%s%s%s", c->o.id,
	    leader[0] ? "the leader is " : "no leader yet", leader, addr[0] ? " at " : "", addr);
	return false;
}

static void api_maintenance(struct ctl *c, const struct httpd_req *req, const char *id,
                            struct httpd_resp *resp)
{
	json_t *body = httpd_body_json(req, resp), *on;
	const char *st;
	bool exists, stale;
	redisReply *r = NULL;

	if (!body)
		return;
	on = json_object_get(body, "on");
	if (!json_is_boolean(on) || json_object_size(body) != 1) {
		ctl_refuse(c, req, resp, "maintenance_refused", 400, "bad_request", NULL, NULL, id,
		           "maintenance: the body is {\"on\": true} or {\"on\": false}");
		goto out;
	}
	if (!ctl_require_leader(c, resp))
		goto out;
	pthread_mutex_lock(&c->lock);
	{
		struct ctl_host *h = ctl_host_find(c, id);
		exists = h != NULL;
		stale = h && ctl_now_ms(c) - h->last_seen > c->o.down_after_ms;
	}
	pthread_mutex_unlock(&c->lock);
	if (!exists) {
		ctl_refuse(c, req, resp, "maintenance_refused", 404, "not_found", NULL, NULL, id,
		           "no host %s", id);
		goto out;
	}
	st = json_is_true(on) ? "maintenance" : stale ? "down" : "up";
	pthread_mutex_lock(&c->aux_lock);
	if (store_ensure(c->aux, util_mono_ms()))
		r = store_command(c->aux, "EVAL %s 1 host_config:%s %s",
		                  "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
		                  "redis.call('HSET', KEYS[1], 'state', ARGV[1])\n"
		                  "redis.call('HDEL', KEYS[1], 'down_by') return 1",
		                  id, st);
	pthread_mutex_unlock(&c->aux_lock);
	if (!r || r->type != REDIS_REPLY_INTEGER) {
		httpd_resp_error(resp, 503, "redis", "setting host %s %s: %s", id, st,
		                 r && r->type == REDIS_REPLY_ERROR ? r->str
		                                                   : "redis is unreachable");
		goto out;
	}
	if (r->integer == 0) {
		ctl_refuse(c, req, resp, "maintenance_refused", 404, "not_found", NULL, NULL, id,
		           "no host %s", id);
		goto out;
	}
	pthread_mutex_lock(&c->lock);
	{
		struct ctl_host *h = ctl_host_find(c, id);
		int mi = ctl_model_host(&c->model, id);
		if (h) {
			snprintf(h->state, sizeof(h->state), "%s", st);
			h->down_by_us = false;
		}
		/* placement and migrations through the API see it before the next round */
		if (mi >= 0)
			c->model.hosts[mi].state = json_is_true(on) ? HOST_MAINTENANCE
			                           : stale          ? HOST_DOWN
			                                            : HOST_UP;
		char by[CTL_BY_MAX];
		ctl_event(c, json_is_true(on) ? "maintenance_on" : "maintenance_off", "by",
		          ctl_api_caller(c, req, by, sizeof(by)), "host", id, "msg",
		          json_is_true(on) ? "movable VMs are evacuated; not a target"
		                           : "a target again",
		          NULL);
	}
	pthread_mutex_unlock(&c->lock);
	httpd_resp_json(resp, 200, json_pack("{s:s,s:s}", "host", id, "state", st));
out:
	freeReplyObject(r);
	json_decref(body);
}

/* --- the dashboard's files ---------------------------------------------------- */

static const char *content_type(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {{".html", "text/html; charset=utf-8"},
	             {".js", "text/javascript; charset=utf-8"},
	             {".mjs", "text/javascript; charset=utf-8"},
	             {".css", "text/css; charset=utf-8"},
	             {".svg", "image/svg+xml"},
	             {".png", "image/png"},
	             {".ico", "image/x-icon"},
	             {".json", "application/json"}};
	const char *dot = strrchr(path, '.');

	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

static void api_file(struct ctl *c, const char *rel, struct httpd_resp *resp)
{
	char path[1024];
	struct stat st;
	FILE *f;
	char *buf;
	size_t n;

	/* names of letters, digits, _ . - and /, no "..", no hidden files */
	if (!rel[0] ||
	    strspn(rel, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/") !=
	        strlen(rel) ||
	    strstr(rel, "..") || strstr(rel, "/.") || rel[0] == '.' || rel[0] == '/') {
		httpd_resp_error(resp, 404, "not_found", "no such file");
		return;
	}
	if (!c->o.web_root[0] || util_fmt(path, sizeof(path), "%s/%s", c->o.web_root, rel) < 0 ||
	    stat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 16 << 20) {
		httpd_resp_error(resp, 404, "not_found", "no file %s under the web root (%s)", rel,
		                 c->o.web_root[0] ? c->o.web_root
		                                  : "controller.web_root is not set");
		return;
	}
	f = fopen(path, "rb");
	buf = f ? malloc((size_t)st.st_size + 1) : NULL;
	n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
	if (f)
		fclose(f);
	if (!buf || n != (size_t)st.st_size) {
		free(buf);
		httpd_resp_error(resp, 500, "internal", "reading %s failed", rel);
		return;
	}
	httpd_resp_text(resp, 200, content_type(rel), buf, n);
}

/* --- routing ------------------------------------------------------------------- */

const char *ctl_api_caller(const struct ctl *c, const struct httpd_req *req, char *out, size_t cap)
{
	const char *role = httpd_bearer_ok(req, c->o.token)        ? "admin"
	                   : httpd_bearer_ok(req, c->o.read_token) ? "read"
	                                                           : "anonymous";

	snprintf(out, cap, "%s@%s", role, req->peer);
	return out;
}

static bool authorised(struct ctl *c, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct httpd_auth a = {"controller", c->o.token, c->o.read_token,
	                       c->o.open_reads && !c->o.read_token[0]};

	return httpd_authorise(req, &a, resp);
}

void ctl_api_handle(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct ctl *c = ctx;
	char buf[512];
	const char *seg[6];
	int n;
	bool get = strcmp(req->method, "GET") == 0;

	if (get && strcmp(req->path, "/healthz") == 0) {
		httpd_resp_json(resp, 200, json_pack("{s:b}", "ok", true));
		return;
	}
	if (get && (strcmp(req->path, "/") == 0 || strcmp(req->path, "/index.html") == 0)) {
		api_file(c, "index.html", resp);
		return;
	}
	if (get && strncmp(req->path, "/ui/", 4) == 0) {
		api_file(c, req->path + 4, resp);
		return;
	}
	if (!authorised(c, req, resp))
		return;
	if (get && strcmp(req->path, "/metrics") == 0) {
		ctl_api_metrics(c, resp);
		return;
	}
	n = httpd_split_path(req->path, buf, sizeof(buf), seg, 6);
	if (n < 2 || strcmp(seg[0], "v1") != 0) {
		httpd_resp_error(resp, 404, "not_found", "no such endpoint: %s", req->path);
		return;
	}
	if (n >= 3 && !util_valid_id(seg[2])) {
		httpd_resp_error(resp, 400, "bad_id", "ids are letters, digits, _ . -");
		return;
	}
	if (ctl_rt_route(c, req, seg, n, resp)) /* ctl_runtime.c: rules, mode, windows */
		return;
	if (get && n == 2 && !strcmp(seg[1], "cluster")) {
		pthread_mutex_lock(&c->lock);
		httpd_resp_json(resp, 200, cluster_json(c));
		pthread_mutex_unlock(&c->lock);
	} else if (get && n == 2 && !strcmp(seg[1], "plan")) {
		pthread_mutex_lock(&c->lock);
		httpd_resp_json(resp, 200, plan_json(c));
		pthread_mutex_unlock(&c->lock);
	} else if (get && n == 2 && !strcmp(seg[1], "events")) {
		api_events(c, req, resp);
	} else if (get && n == 3 && !strcmp(seg[1], "events") && !strcmp(seg[2], "stream")) {
		api_events_stream(c, req, resp);
	} else if (get && n == 2 && (!strcmp(seg[1], "hosts") || !strcmp(seg[1], "vms"))) {
		bool hosts = !strcmp(seg[1], "hosts");
		json_t *a = json_array();
		pthread_mutex_lock(&c->lock);
		for (int i = 0; i < (hosts ? c->nhosts : c->nvms); i++)
			json_array_append_new(a, hosts ? host_json(c, c->hosts[i], false)
			                               : vm_json(c, c->vms[i]));
		pthread_mutex_unlock(&c->lock);
		httpd_resp_json(resp, 200, json_pack("{s:o}", seg[1], a));
	} else if (get && (n == 3 || n == 4) &&
	           (!strcmp(seg[1], "hosts") || !strcmp(seg[1], "vms"))) {
		bool hosts = !strcmp(seg[1], "hosts");
		const char *what = n == 4 ? seg[3] : "";
		struct ctl_host *h;
		struct ctl_vm *v;
		if (n == 4 && strcmp(what, "series") && strcmp(what, "histogram")) {
			httpd_resp_error(resp, 404, "not_found", "no such endpoint: %s", req->path);
			return;
		}
		pthread_mutex_lock(&c->lock);
		h = hosts ? ctl_host_find(c, seg[2]) : NULL;
		v = hosts ? NULL : ctl_vm_find(c, seg[2]);
		if (!h && !v) {
			pthread_mutex_unlock(&c->lock);
			httpd_resp_error(resp, 404, "not_found", "no %s %s", hosts ? "host" : "vm",
			                 seg[2]);
			return;
		}
		if (!strcmp(what, "series")) {
			pthread_mutex_unlock(&c->lock);
			api_series(c, req, hosts ? "host" : "vm", seg[2], resp);
			return;
		}
		if (!strcmp(what, "histogram"))
			httpd_resp_json(
			    resp, 200,
			    histogram_json(hosts ? "host" : "vm", seg[2], h ? h->prof : v->prof));
		else
			httpd_resp_json(resp, 200, h ? host_json(c, h, true) : vm_json(c, v));
		pthread_mutex_unlock(&c->lock);
	} else if (!strcmp(req->method, "POST") && n == 2 && !strcmp(seg[1], "vms")) {
		ctl_api_provision(c, req, resp);
	} else if (!strcmp(req->method, "DELETE") && n == 3 && !strcmp(seg[1], "vms")) {
		ctl_api_delete_vm(c, req, seg[2], resp);
	} else if (!strcmp(req->method, "POST") && n == 4 && !strcmp(seg[1], "vms") &&
	           !strcmp(seg[3], "migrate")) {
		ctl_api_migrate(c, req, seg[2], resp);
	} else if (!strcmp(req->method, "POST") && n == 4 && !strcmp(seg[1], "vms") &&
	           !strcmp(seg[3], "resize")) {
		ctl_api_resize(c, req, seg[2], resp);
	} else if (!strcmp(req->method, "PUT") && n == 4 && !strcmp(seg[1], "hosts") &&
	           !strcmp(seg[3], "maintenance")) {
		api_maintenance(c, req, seg[2], resp);
	} else {
		httpd_resp_error(resp, get ? 404 : 405, get ? "not_found" : "method_not_allowed",
		                 "no %s %s", req->method, req->path);
	}
}
