/* api.c - the agent's HTTP API (DESIGN.md section 4): host, VMs, health,
 * Prometheus metrics. Read-only for now; every mutating method already needs
 * the bearer token, so the VM calls to come inherit the check. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "common/util.h"

static const char *const res_names[RES_N] = {"cpu", "mem", "net"};

static json_t *summary_json(const struct profile_summary *s)
{
	json_t *hist = json_array();

	for (int i = 0; i < HIST_BINS; i++)
		json_array_append_new(hist, json_integer(s->hist.bins[i]));
	return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:b,s:i,s:o}", "n",
	                 (json_int_t)s->n, "last", s->last, "mean", s->mean, "min", s->min, "max",
	                 s->max, "p50", s->p50, "p95", s->p95, "p99", s->p99, "peak", s->peak,
	                 "forecast", s->ar1.forecast, "phi", s->ar1.phi, "hot", s->hot, "over",
	                 (int)s->over, "hist", hist);
}

/* Summaries are computed on request (under the lock), not every tick. */
static json_t *profiles_json(const struct agent *a, const struct profile *prof)
{
	struct profile_summary sum[RES_N];
	double *scratch = malloc(sizeof(double) * (size_t)a->o.window);
	json_t *p = json_object();

	if (!scratch)
		return p;
	agent_summarize(a, prof, sum, scratch);
	free(scratch);
	for (int r = 0; r < RES_N; r++)
		json_object_set_new(p, res_names[r], summary_json(&sum[r]));
	return p;
}

static json_t *host_json(struct agent *a)
{
	const struct host_sample *h = &a->hlast;
	json_t *cur = json_object();

	json_object_set_new(cur, "ts", json_integer(h->ts_ms));
	json_object_set_new(cur, "seq", json_integer((json_int_t)h->seq));
	if (h->valid_cpu) {
		json_object_set_new(cur, "cpu", json_real(h->cpu));
		json_object_set_new(cur, "cpu_busy_cores", json_real(h->cpu_busy_cores));
		json_object_set_new(cur, "cpu_iowait", json_real(h->cpu_iowait));
		json_object_set_new(cur, "cpu_steal", json_real(h->cpu_steal));
		json_object_set_new(cur, "cpu_irq", json_real(h->cpu_irq));
		json_object_set_new(cur, "io_overhead", json_real(h->io_overhead));
	}
	if (h->valid_mem) {
		json_object_set_new(cur, "mem", json_real(h->mem));
		json_object_set_new(cur, "mem_total_mib", json_real(h->mem_total_mib));
		json_object_set_new(cur, "mem_used_mib", json_real(h->mem_used_mib));
		json_object_set_new(cur, "mem_avail_mib", json_real(h->mem_avail_mib));
		json_object_set_new(cur, "swap_total_mib", json_real(h->swap_total_mib));
		json_object_set_new(cur, "swap_used_mib", json_real(h->swap_used_mib));
		json_object_set_new(cur, "swap_in_ps", json_real(h->swap_in_ps));
		json_object_set_new(cur, "swap_out_ps", json_real(h->swap_out_ps));
		json_object_set_new(cur, "majflt_ps", json_real(h->majflt_ps));
	}
	if (h->valid_net) {
		json_object_set_new(cur, "net", json_real(h->net));
		json_object_set_new(cur, "net_rx_bps", json_real(h->net_rx_bps));
		json_object_set_new(cur, "net_tx_bps", json_real(h->net_tx_bps));
	}
	if (h->has_psi)
		json_object_set_new(cur, "psi",
		                    json_pack("{s:f,s:f,s:f,s:f,s:f}", "cpu_some", h->psi_cpu_some,
		                              "mem_some", h->psi_mem_some, "mem_full",
		                              h->psi_mem_full, "io_some", h->psi_io_some, "io_full",
		                              h->psi_io_full));
	if (h->problem[0])
		json_object_set_new(cur, "problem", json_string(h->problem));
	return json_pack("{s:s,s:s,s:s,s:{s:f,s:f,s:f},s:o,s:o,s:i,s:{s:b,s:i,s:I,s:I},s:I}", "id",
	                 a->o.id, "address", a->o.address, "api", a->o.advertise, "capacity", "cpu",
	                 a->so.cpus, "mem_mib", a->so.mem_mib, "net_mbit", a->so.net_mbit,
	                 "current", cur, "profile", profiles_json(a, a->hprof), "vms", a->nvms,
	                 "redis", "connected", a->redis_up, "backlog", a->bl.len, "dropped",
	                 (json_int_t)a->bl.dropped, "connects", (json_int_t)a->redis_connects_seen,
	                 "samples", (json_int_t)a->samples);
}

static json_t *vm_json(const struct agent *a, struct vm_mon *m)
{
	const struct vm_sample *s = &m->last;
	json_t *cur = json_object();

	json_object_set_new(cur, "ts", json_integer(s->ts_ms));
	if (s->valid_cpu) {
		json_object_set_new(cur, "cpu", json_real(s->cpu));
		json_object_set_new(cur, "cpu_host", json_real(s->cpu_host));
		json_object_set_new(cur, "cpu_io_overhead", json_real(s->cpu_io_overhead));
		json_object_set_new(cur, "vhost_threads", json_integer(s->vhost_threads));
	}
	if (s->valid_mem) {
		json_object_set_new(cur, "mem", json_real(s->mem));
		json_object_set_new(cur, "rss_mib", json_real(s->rss_mib));
		json_object_set_new(cur, "swap_mib", json_real(s->swap_mib));
		json_object_set_new(cur, "mem_source", json_string(s->gray ? "guest" : "rss"));
		if (s->gray) {
			json_object_set_new(cur, "guest_used_mib", json_real(s->guest_used_mib));
			json_object_set_new(cur, "guest_avail_mib", json_real(s->guest_avail_mib));
			json_object_set_new(cur, "guest_swap_in_bps",
			                    json_real(s->guest_swap_in_bps));
			json_object_set_new(cur, "guest_swap_out_bps",
			                    json_real(s->guest_swap_out_bps));
			json_object_set_new(cur, "guest_majflt_ps", json_real(s->guest_majflt_ps));
		}
	}
	if (s->valid_net) {
		json_object_set_new(cur, "net", json_real(s->net));
		json_object_set_new(cur, "rx_bps", json_real(s->rx_bps));
		json_object_set_new(cur, "tx_bps", json_real(s->tx_bps));
		json_object_set_new(cur, "rx_pps", json_real(s->rx_pps));
		json_object_set_new(cur, "tx_pps", json_real(s->tx_pps));
		json_object_set_new(cur, "rx_drop_ps", json_real(s->rx_drop_ps));
		json_object_set_new(cur, "tx_drop_ps", json_real(s->tx_drop_ps));
	}
	if (s->has_tap)
		json_object_set_new(cur, "tap",
		                    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "rx_bytes",
		                              (json_int_t)s->tap.rx_bytes, "tx_bytes",
		                              (json_int_t)s->tap.tx_bytes, "rx_packets",
		                              (json_int_t)s->tap.rx_packets, "tx_packets",
		                              (json_int_t)s->tap.tx_packets, "rx_dropped",
		                              (json_int_t)s->tap.rx_dropped, "tx_dropped",
		                              (json_int_t)s->tap.tx_dropped));
	if (s->status != VM_GONE && s->status != VM_NO_PID && s->status != VM_PROC_ERROR)
		json_object_set_new(cur, "cpu_ticks", json_integer((json_int_t)s->cpu_ticks));
	if (s->valid_disk) {
		json_object_set_new(cur, "disk_rd_bps", json_real(s->disk_rd_bps));
		json_object_set_new(cur, "disk_wr_bps", json_real(s->disk_wr_bps));
	}
	return json_pack("{s:s,s:i,s:s,s:f,s:f,s:s,s:s*,s:o,s:o}", "id", m->d.id, "pid", m->d.pid,
	                 "tap", m->d.tap, "mem_mib", m->d.mem_mib, "vcpus", m->d.vcpus, "status",
	                 vm_status_name(s->status), "problem", s->problem[0] ? s->problem : NULL,
	                 "current", cur, "profile", profiles_json(a, m->prof));
}

static bool driver_ready(struct agent *a, struct httpd_resp *resp)
{
	if (a->virt)
		return true;
	httpd_resp_error(resp, 503, "vm_driver_disabled",
	                 "host %s runs no VMs (vm.enabled = false in its configuration)", a->o.id);
	return false;
}

/* ?log=caller: the caller (a controller) writes this action's decision-log
 * entries itself, so the agent's own outcome entry is left out. */
static void caller_logs(const struct httpd_req *req, const char *vm)
{
	const char *q = httpd_query(req, "log");

	virt_caller_logs(q && strcmp(q, "caller") == 0 ? vm : NULL);
}

/* POST /v1/vms: validate, launch, register. */
static void api_create_vm(struct agent *a, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct vm_spec spec;
	char err[512] = "";
	json_t *body, *out = NULL;
	int http = 500, rc;

	if (!driver_ready(a, resp))
		return;
	body = httpd_body_json(req, resp);
	if (!body)
		return;
	struct vmspec_limits lim = {a->o.vm.images_dir, a->o.vm.bridge, a->o.vm.max_vcpus,
	                            a->o.vm.max_mem_mib};
	if (vmspec_from_json(&lim, body, &spec, err, sizeof(err)) < 0) {
		json_decref(body);
		httpd_resp_error(resp, 400, "bad_request", "create vm: %s", err);
		return;
	}
	json_decref(body);
	caller_logs(req, spec.id);
	rc = virt_create(a->virt, &spec, &out, &http, err, sizeof(err));
	virt_caller_logs(NULL);
	if (rc < 0) {
		httpd_resp_error(resp, http,
		                 http == 400   ? "bad_request" /* domxml_build refused it */
		                 : http == 409 ? "vm_exists"
		                 : http == 503 ? "unavailable"
		                               : "launch_failed",
		                 "%s", err);
		return;
	}
	httpd_resp_json(resp, 201, out);
}

/* DELETE /v1/vms/<id>: power down, clean up. */
static void api_delete_vm(struct agent *a, const struct httpd_req *req, const char *id,
                          struct httpd_resp *resp)
{
	char err[512] = "";
	int http = 500, rc;

	if (!driver_ready(a, resp))
		return;
	if (!util_valid_id(id)) {
		httpd_resp_error(resp, 400, "bad_request", "'%.64s' is not a vm id", id);
		return;
	}
	caller_logs(req, id);
	rc = virt_delete(a->virt, id, &http, err, sizeof(err));
	virt_caller_logs(NULL);
	if (rc < 0) {
		httpd_resp_error(resp, http, http == 404 ? "vm_not_found" : "conflict", "%s", err);
		return;
	}
	agent_forget_vm(a, id);
	httpd_resp_json(resp, 200, json_pack("{s:s,s:s}", "deleted", id, "host", a->o.id));
}

/* POST /v1/vms/<id>/migrate {"to": "<host>"} (source side). */
static void api_migrate_vm(struct agent *a, const struct httpd_req *req, const char *id,
                           struct httpd_resp *resp)
{
	char err[600] = "";
	json_t *body, *out = NULL, *to;
	int http = 500, rc;

	if (!driver_ready(a, resp))
		return;
	body = httpd_body_json(req, resp);
	if (!body)
		return;
	to = json_object_get(body, "to");
	if (!json_is_string(to) || json_object_size(body) != 1) {
		json_decref(body);
		httpd_resp_error(resp, 400, "bad_request",
		                 "migrate: the body is {\"to\": \"<host id>\"} and nothing else");
		return;
	}
	caller_logs(req, id);
	rc = virt_migrate(a->virt, id, json_string_value(to), &out, &http, err, sizeof(err));
	virt_caller_logs(NULL);
	if (rc < 0) {
		json_decref(body);
		httpd_resp_error(resp, http,
		                 http == 404   ? "not_found"
		                 : http == 400 ? "bad_request"
		                 : http == 409 ? "conflict"
		                 : http == 503 ? "unavailable"
		                               : "migration_failed",
		                 "%s", err);
		return;
	}
	json_decref(body);
	agent_forget_vm(a, id); /* it runs elsewhere now */
	httpd_resp_json(resp, 200, out);
}

/* One size of a resize body: absent (0), or an integer from lo to hi. */
static int resize_field(json_t *body, const char *k, int lo, int hi, int *out, char *err,
                        size_t errlen)
{
	json_t *j = json_object_get(body, k);

	*out = 0;
	if (!j)
		return 0;
	if (!json_is_integer(j)) {
		snprintf(err, errlen, "resize: '%s' must be an integer", k);
		return -EINVAL;
	}
	if (json_integer_value(j) < lo || json_integer_value(j) > hi) {
		snprintf(err, errlen, "resize: '%s' %lld is %s %d", k,
		         (long long)json_integer_value(j),
		         json_integer_value(j) < lo ? "below the floor of"
		                                    : "more than this host's limit of",
		         json_integer_value(j) < lo ? lo : hi);
		return -EINVAL;
	}
	*out = (int)json_integer_value(j);
	return 0;
}

/* POST /v1/vms/<id>/resize {"vcpus": N, "mem_mib": M} (either or both). */
static void api_resize_vm(struct agent *a, const struct httpd_req *req, const char *id,
                          struct httpd_resp *resp)
{
	char err[600] = "";
	json_t *body, *out = NULL;
	int http = 500, vcpus, mem, rc;

	if (!driver_ready(a, resp))
		return;
	if (!util_valid_id(id)) {
		httpd_resp_error(resp, 400, "bad_request", "'%.64s' is not a vm id", id);
		return;
	}
	body = httpd_body_json(req, resp);
	if (!body)
		return;
	if (json_object_size(body) !=
	        (size_t)(!!json_object_get(body, "vcpus") + !!json_object_get(body, "mem_mib")) ||
	    json_object_size(body) == 0) {
		json_decref(body);
		httpd_resp_error(resp, 400, "bad_request",
		                 "resize: the body is {\"vcpus\": N, \"mem_mib\": M}, either or "
		                 "both, and nothing else");
		return;
	}
	if (resize_field(body, "vcpus", 1, a->o.vm.max_vcpus, &vcpus, err, sizeof(err)) < 0 ||
	    resize_field(body, "mem_mib", VIRT_MIN_MEM_MIB, a->o.vm.max_mem_mib, &mem, err,
	                 sizeof(err)) < 0) {
		json_decref(body);
		httpd_resp_error(resp, 400, "bad_request", "%s", err);
		return;
	}
	json_decref(body);
	caller_logs(req, id);
	rc = virt_resize(a->virt, id, vcpus, mem, &out, &http, err, sizeof(err));
	virt_caller_logs(NULL);
	if (rc < 0) {
		httpd_resp_error(resp, http,
		                 http == 404   ? "vm_not_found"
		                 : http == 400 ? "bad_request"
		                 : http == 409 ? "conflict"
		                 : http == 503 ? "unavailable"
		                               : "resize_failed",
		                 "%s", err);
		return;
	}
	httpd_resp_json(resp, 200, out);
}

/* A controller sends its lease's epoch with every action (?epoch=N). One
 * older than the newest seen comes from a leader that has been replaced:
 * refused, so two controllers never act on one host at once. A request
 * without one (an operator's own call) is not fenced. */
static bool epoch_ok(struct agent *a, const struct httpd_req *req, struct httpd_resp *resp)
{
	const char *e = httpd_query(req, "epoch");
	int64_t v, seen;

	if (!e)
		return true;
	if (!util_parse_i64(e, &v) || v < 0) {
		httpd_resp_error(resp, 400, "bad_epoch", "epoch '%s' is not a non-negative integer",
		                 e);
		return false;
	}
	pthread_mutex_lock(&a->lock);
	seen = a->max_epoch;
	if (v >= seen)
		a->max_epoch = v;
	pthread_mutex_unlock(&a->lock);
	if (v >= seen)
		return true;
	log_warn("refused %s %s from %s: lease epoch %lld is older than %lld, a newer leader's",
	         req->method, req->path, req->peer, (long long)v, (long long)seen);
	httpd_resp_error(resp, 409, "stale_epoch",
	                 "a newer controller (lease epoch %lld) acts on this host; this request "
	                 "carries epoch %lld: refused",
	                 (long long)seen, (long long)v);
	return false;
}

void api_handle(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct agent *a = ctx;
	const char *seg[4];
	char buf[512];
	int n;

	n = httpd_split_path(req->path, buf, sizeof(buf), seg, 4);
	if (!(n == 1 && strcmp(seg[0], "healthz") == 0 && !httpd_is_mutating(req))) {
		struct httpd_auth au = {"agent", a->o.token, a->o.read_token,
		                        a->o.open_reads && !a->o.read_token[0]};
		if (!httpd_authorise(req, &au, resp))
			return;
	}
	if (httpd_is_mutating(req) && !epoch_ok(a, req, resp))
		return;
	if (n == 1 && strcmp(seg[0], "healthz") == 0) {
		int64_t age;
		/* asked before the monitor's lock: the VM layer has its own */
		bool lv = a->virt && virt_connected(a->virt);
		pthread_mutex_lock(&a->lock);
		age = a->samples ? util_mono_ms() - a->last_sample_mono_ms : -1;
		httpd_resp_json(
		    resp, age >= 0 && age < 3 * a->o.interval_ms + 2000 ? 200 : 503,
		    json_pack("{s:s,s:s,s:b,s:b,s:I,s:s,s:I,s:i,s:s,s:s}", "status",
		              age >= 0 && age < 3 * a->o.interval_ms + 2000 ? "ok" : "stalled",
		              "host", a->o.id, "redis", a->redis_up, "redis_refusing", a->refusing,
		              "redis_refused", (json_int_t)a->refused_ticks, "redis_refused_why",
		              a->refusing ? a->refused_why : "", "last_sample_age_ms",
		              (json_int_t)age, "backlog", a->bl.len, "task_reader",
		              a->reader_bpf ? "bpf" : "proc", "libvirt",
		              a->virt ? (lv ? "connected" : "unreachable") : "disabled"));
		pthread_mutex_unlock(&a->lock);
		return;
	}
	if (n == 1 && strcmp(seg[0], "metrics") == 0) {
		size_t len;
		char *text = metrics_render(a, &len);
		if (!text) {
			httpd_resp_error(resp, 500, "internal", "out of memory rendering metrics");
			return;
		}
		httpd_resp_text(resp, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
		return;
	}
	if (n < 2 || strcmp(seg[0], "v1") != 0) {
		httpd_resp_error(resp, 404, "not_found", "no such endpoint: %s", req->path);
		return;
	}
	if (n == 2 && strcmp(seg[1], "vms") == 0 && strcmp(req->method, "POST") == 0) {
		api_create_vm(a, req, resp);
		return;
	}
	if (n == 3 && strcmp(seg[1], "vms") == 0 && strcmp(req->method, "DELETE") == 0) {
		api_delete_vm(a, req, seg[2], resp);
		return;
	}
	if (n == 4 && strcmp(seg[1], "vms") == 0 && strcmp(seg[3], "migrate") == 0 &&
	    strcmp(req->method, "POST") == 0) {
		api_migrate_vm(a, req, seg[2], resp);
		return;
	}
	if (n == 4 && strcmp(seg[1], "vms") == 0 && strcmp(seg[3], "resize") == 0 &&
	    strcmp(req->method, "POST") == 0) {
		api_resize_vm(a, req, seg[2], resp);
		return;
	}
	if (strcmp(req->method, "GET") != 0) {
		httpd_resp_error(resp, 405, "method_not_allowed", "%s is not allowed on %s",
		                 req->method, req->path);
		return;
	}
	/* the driver's view first: it may be busy launching, and the monitor's
	 * lock must not wait for it */
	json_t *drv = n == 3 && strcmp(seg[1], "vms") == 0 && a->virt && util_valid_id(seg[2])
	                  ? virt_get(a->virt, seg[2])
	                  : NULL;
	pthread_mutex_lock(&a->lock);
	if (n == 2 && strcmp(seg[1], "host") == 0) {
		httpd_resp_json(resp, 200, host_json(a));
	} else if (n == 2 && strcmp(seg[1], "vms") == 0) {
		json_t *arr = json_array();
		for (int i = 0; i < a->nvms; i++)
			json_array_append_new(arr, vm_json(a, a->vms[i]));
		httpd_resp_json(resp, 200, json_pack("{s:s,s:o}", "host", a->o.id, "vms", arr));
	} else if (n == 3 && strcmp(seg[1], "vms") == 0) {
		struct vm_mon *m = util_valid_id(seg[2]) ? agent_find_vm(a, seg[2]) : NULL;
		if (m) {
			json_t *j = vm_json(a, m);
			if (drv)
				json_object_set_new(j, "driver", drv);
			httpd_resp_json(resp, 200, j);
		} else if (drv) {
			/* launched, not sampled yet */
			httpd_resp_json(resp, 200,
			                json_pack("{s:s,s:s,s:o}", "id", seg[2], "status",
			                          "starting", "driver", drv));
		} else
			httpd_resp_error(resp, 404, "vm_not_found", "host %s watches no vm '%.64s'",
			                 a->o.id, seg[2]);
	} else {
		httpd_resp_error(resp, 404, "not_found", "no such endpoint: %s", req->path);
	}
	pthread_mutex_unlock(&a->lock);
}
