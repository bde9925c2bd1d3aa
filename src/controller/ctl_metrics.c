/* ctl_metrics.c - GET /metrics: the controller's state in the Prometheus
 * text format (0.0.4), checked by `promtool check metrics` in the tests.
 * Names follow Prometheus conventions: base units (seconds, bytes), ratios
 * 0..1 named _ratio, counters _total, one HELP and TYPE per family. Besides
 * its own counters, it exports per host and per VM what it decides on: the
 * volume, the hot flags per resource, the risk, the forecasts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/ctl.h"

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newlines escaped (ids are restricted to
 * [A-Za-z0-9_.-] by the registry's reader, this is the safety net). */
static void label(FILE *f, const char *k, const char *v, bool first)
{
	fprintf(f, "%s%s=\"", first ? "" : ",", k);
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
	fputc('"', f);
}

static void value(FILE *f, double v)
{
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		fprintf(f, " %.0f\n", v);
	else
		fprintf(f, " %.9g\n", v);
}

/* name{host="h"[,resource="r"]} v; unknown values (NaN) are left out. */
static void host_val(FILE *f, const char *name, const char *host, const char *res, double v)
{
	if (!isfinite(v))
		return;
	fprintf(f, "%s{", name);
	label(f, "host", host, true);
	if (res)
		label(f, "resource", res, false);
	fputc('}', f);
	value(f, v);
}

static void vm_val(FILE *f, const char *name, const struct ctl_vm *v, const char *res, double x)
{
	if (!isfinite(x))
		return;
	fprintf(f, "%s{", name);
	label(f, "vm", v->id, true);
	label(f, "host", v->host, false);
	if (res)
		label(f, "resource", res, false);
	fputc('}', f);
	value(f, x);
}

/* A counter of ends by result (done, failed). */
static void by_result(FILE *f, const char *name, const char *help, uint64_t done, uint64_t failed)
{
	family(f, name, "counter", help);
	fprintf(f, "%s{result=\"done\"} %llu\n%s{result=\"failed\"} %llu\n", name,
	        (unsigned long long)done, name, (unsigned long long)failed);
}

static void cluster_metrics(struct ctl *c, FILE *f)
{
	int up = 0, down = 0, maint = 0, hot = 0;

	for (int i = 0; i < c->nhosts; i++) {
		struct ctl_host *h = c->hosts[i];
		up += !strcmp(h->state, "up");
		down += !strcmp(h->state, "down");
		maint += !strcmp(h->state, "maintenance");
		hot += h->hot[RES_CPU] || h->hot[RES_MEM] || h->hot[RES_NET];
	}
	family(f, "loadease_controller_rounds_total", "counter", "Rounds run.");
	fprintf(f, "loadease_controller_rounds_total %llu\n", (unsigned long long)c->m.rounds);
	family(f, "loadease_controller_round_duration_seconds", "gauge",
	       "Duration of the last round.");
	fprintf(f, "loadease_controller_round_duration_seconds %.6f\n", c->m.round_s);
	family(f, "loadease_controller_leader", "gauge", "1 when this controller holds the lease.");
	fprintf(f, "loadease_controller_leader %d\n", c->leader ? 1 : 0);
	family(f, "loadease_controller_redis_up", "gauge", "1 when Redis answered the last round.");
	fprintf(f, "loadease_controller_redis_up %d\n", c->redis_up ? 1 : 0);
	family(f, "loadease_controller_hosts", "gauge", "Hosts by state.");
	fprintf(f,
	        "loadease_controller_hosts{state=\"up\"} %d\n"
	        "loadease_controller_hosts{state=\"down\"} %d\n"
	        "loadease_controller_hosts{state=\"maintenance\"} %d\n",
	        up, down, maint);
	family(f, "loadease_controller_vms", "gauge", "VMs in the registry.");
	fprintf(f, "loadease_controller_vms %d\n", c->nvms);
	family(f, "loadease_controller_hotspots", "gauge", "Hosts with a hot resource.");
	fprintf(f, "loadease_controller_hotspots %d\n", hot);
	family(f, "loadease_controller_migrations_inflight", "gauge",
	       "Migrations this controller runs.");
	fprintf(f, "loadease_controller_migrations_inflight %d\n", c->nmigs);
	by_result(f, "loadease_controller_migrations_total",
	          "Migrations this controller ran to their end, by result.", c->m.mig_ok,
	          c->m.mig_failed);
	family(f, "loadease_controller_migration_duration_seconds", "summary",
	       "Wall time of the migrations that completed.");
	fprintf(f,
	        "loadease_controller_migration_duration_seconds_sum %.3f\n"
	        "loadease_controller_migration_duration_seconds_count %llu\n",
	        c->m.mig_seconds, (unsigned long long)c->m.mig_ok);
	by_result(f, "loadease_controller_resizes_total", "Resizes in place ended, by result.",
	          c->m.resize_ok, c->m.resize_failed);
	family(f, "loadease_controller_decisions_total", "counter",
	       "Decision log entries this controller wrote, by type.");
	for (int i = 0; ctl_event_types[i]; i++)
		fprintf(f, "loadease_controller_decisions_total{type=\"%s\"} %llu\n",
		        ctl_event_types[i],
		        (unsigned long long)__atomic_load_n(&c->m.decisions[i], __ATOMIC_RELAXED));
}

#define EACH_HOST(name, type, help, stmt)                                                          \
	do {                                                                                       \
		family(f, name, type, help);                                                       \
		for (int i = 0; i < c->nhosts; i++) {                                              \
			const struct ctl_host *h = c->hosts[i];                                    \
			stmt;                                                                      \
		}                                                                                  \
	} while (0)

#define EACH_HOST_RES(name, help, expr)                                                            \
	EACH_HOST(name, "gauge", help,                                                             \
	          for (int r = 0; r < RES_N; r++)                                                  \
	              host_val(f, name, h->id, ctl_res_names[r], expr))

static void host_metrics(struct ctl *c, FILE *f)
{
	EACH_HOST("loadease_controller_host_volume", "gauge",
	          "Sandpiper's volume of the host's peak loads, 1/((1-cpu)(1-mem)(1-net)).",
	          host_val(f, "loadease_controller_host_volume", h->id, NULL, h->volume));
	EACH_HOST_RES("loadease_controller_host_utilization_ratio",
	              "Last sample of the host's load, a fraction of its capacity.",
	              h->has_last[r] ? h->last[r] : NAN);
	EACH_HOST_RES("loadease_controller_host_peak_ratio",
	              "The host's peak load (profile.percentile of the window), a fraction of "
	              "its capacity.",
	              h->sum[r].n ? h->sum[r].peak : NAN);
	EACH_HOST_RES("loadease_controller_host_forecast_ratio",
	              "The next sample's AR(1) forecast, a fraction of capacity.",
	              h->sum[r].n ? h->sum[r].ar1.forecast : NAN);
	EACH_HOST_RES("loadease_controller_host_threshold_ratio",
	              "The hotspot threshold (profile.<res>_threshold).", c->o.threshold[r]);
	EACH_HOST_RES("loadease_controller_host_hot", "1 while the resource is hot (k of n).",
	              h->hot[r] ? 1 : 0);
	EACH_HOST("loadease_controller_host_risk_ratio", "gauge",
	          "The chance that the host passes a threshold within balance.risk_horizon "
	          "samples, as the last plan saw it (absent without enough samples).",
	          {
		          int hi = ctl_host_index(c, h->id);
		          bool known = c->have_plan && c->plan.risk && hi >= 0 &&
		                       hi < c->model.nhosts && c->model.hosts[hi].risk_known;
		          host_val(f, "loadease_controller_host_risk_ratio", h->id, NULL,
		                   known ? c->plan.risk[hi] : NAN);
	          });
	EACH_HOST(
	    "loadease_controller_host_migrations_inflight", "gauge",
	    "Migrations into or out of the host.",
	    host_val(f, "loadease_controller_host_migrations_inflight", h->id, NULL, h->inflight));
	EACH_HOST("loadease_controller_host_vms", "gauge", "VMs on the host.",
	          host_val(f, "loadease_controller_host_vms", h->id, NULL, h->nvms));
	EACH_HOST("loadease_controller_host_up", "gauge",
	          "1 when the host is up (not down, not in maintenance).",
	          host_val(f, "loadease_controller_host_up", h->id, NULL,
	                   !strcmp(h->state, "up") ? 1 : 0));
}

#define EACH_VM(name, help, stmt)                                                                  \
	do {                                                                                       \
		family(f, name, "gauge", help);                                                    \
		for (int i = 0; i < c->nvms; i++) {                                                \
			const struct ctl_vm *v = c->vms[i];                                        \
			int mi = ctl_model_vm(&c->model, v->id);                                   \
			const struct cl_vm *mv = mi >= 0 ? &c->model.vms[mi] : NULL;               \
			const struct cl_host *mh =                                                 \
			    mv && mv->host >= 0 && mv->host < c->model.nhosts                      \
			        ? &c->model.hosts[mv->host]                                        \
			        : NULL;                                                            \
			(void)mh;                                                                  \
			stmt;                                                                      \
		}                                                                                  \
	} while (0)

static void vm_metrics(struct ctl *c, FILE *f)
{
	/* the demand the planner moves, in base units: cores, bytes, bytes/s */
	static const double to_base[RES_N] = {1, 1048576, 1e6 / 8};
	static const char *const demand_names[RES_N] = {
	    "loadease_controller_vm_demand_cpu_cores", "loadease_controller_vm_demand_memory_bytes",
	    "loadease_controller_vm_demand_network_bytes_per_second"};
	static const char *const demand_help[RES_N] = {
	    "The VM's peak CPU demand the planner uses, in cores.",
	    "The VM's peak memory demand the planner uses (the larger of the guest's use and "
	    "its QEMU's resident and swapped memory).",
	    "The VM's peak network demand the planner uses."};

	EACH_VM("loadease_controller_vm_utilization_ratio",
	        "Last sample of the VM's load: cpu of its vCPUs, mem of its memory, net of its "
	        "host's NIC.",
	        for (int r = 0; r < RES_N; r++)
	            vm_val(f, "loadease_controller_vm_utilization_ratio", v, ctl_res_names[r],
	                   v->has_last[r] ? v->last[r] : NAN));
	for (int r = 0; r < RES_N; r++)
		EACH_VM(demand_names[r], demand_help[r],
		        vm_val(f, demand_names[r], v, NULL, mv ? mv->demand[r] * to_base[r] : NAN));
	EACH_VM("loadease_controller_vm_forecast_ratio",
	        "Holt's forecast of the VM's demand balance.risk_horizon samples ahead, a "
	        "fraction of its host's capacity (what the risk uses; absent without enough "
	        "samples).",
	        for (int r = 0; r < RES_N; r++) vm_val(
	            f, "loadease_controller_vm_forecast_ratio", v, ctl_res_names[r],
	            mv && mh && mv->risk_known && mh->cap[r] > 0 ? mv->fc[r] / mh->cap[r] : NAN));
	EACH_VM("loadease_controller_vm_migrating", "1 while the VM migrates.",
	        vm_val(f, "loadease_controller_vm_migrating", v, NULL,
	               v->migrating || ctl_mig_running(c, v->id) ? 1 : 0));
	EACH_VM("loadease_controller_vm_vcpus", "vCPUs allocated to the VM.",
	        vm_val(f, "loadease_controller_vm_vcpus", v, NULL, v->vcpus));
	EACH_VM("loadease_controller_vm_memory_bytes", "Memory allocated to the VM.",
	        vm_val(f, "loadease_controller_vm_memory_bytes", v, NULL, v->mem_mib * 1048576));
}

void ctl_api_metrics(struct ctl *c, struct httpd_resp *resp)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f) {
		httpd_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	pthread_mutex_lock(&c->lock);
	cluster_metrics(c, f);
	host_metrics(c, f);
	vm_metrics(c, f);
	pthread_mutex_unlock(&c->lock);
	fclose(f);
	httpd_resp_text(resp, 200, "text/plain; version=0.0.4", out, len);
}
