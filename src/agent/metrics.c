/* metrics.c - the agent's state in the Prometheus text format (0.0.4).
 * Names follow Prometheus conventions: base units (bytes, seconds), ratios
 * 0..1 named _ratio, rates as gauges named _per_second, labels host and vm. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"

struct mbuf {
	FILE *f;
	const char *host;
};

static void family(struct mbuf *b, const char *name, const char *type, const char *help)
{
	fprintf(b->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Whole numbers (byte and packet counters, capacities) exactly; others with
 * nine significant digits. */
static void value(FILE *f, double v)
{
	if (v == floor(v) && fabs(v) < 9007199254740992.0)
		fprintf(f, " %.0f\n", v);
	else
		fprintf(f, " %.9g\n", v);
}

static void host_val(struct mbuf *b, const char *name, double v)
{
	fprintf(b->f, "%s{host=\"%s\"}", name, b->host);
	value(b->f, v);
}

/* ids are restricted to [A-Za-z0-9_.-], so they need no escaping */
static void vm_val(struct mbuf *b, const char *name, const char *vm, double v)
{
	fprintf(b->f, "%s{host=\"%s\",vm=\"%s\"}", name, b->host, vm);
	value(b->f, v);
}

#define HOST_GAUGE(name, help, cond, expr)                                                         \
	do {                                                                                       \
		family(&b, name, "gauge", help);                                                   \
		if (cond)                                                                          \
			host_val(&b, name, expr);                                                  \
	} while (0)

#define VM_GAUGE(name, help, cond, expr)   VM_FAMILY(name, "gauge", help, cond, expr)
#define VM_COUNTER(name, help, cond, expr) VM_FAMILY(name, "counter", help, cond, expr)
#define VM_FAMILY(name, type, help, cond, expr)                                                    \
	do {                                                                                       \
		family(&b, name, type, help);                                                      \
		for (int i = 0; i < a->nvms; i++) {                                                \
			const struct vm_mon *m = a->vms[i];                                        \
			const struct vm_sample *s = &m->last;                                      \
			(void)s;                                                                   \
			if (cond)                                                                  \
				vm_val(&b, name, m->d.id, expr);                                   \
		}                                                                                  \
	} while (0)

static const char *const res_names[RES_N] = {"cpu", "mem", "net"};

char *metrics_render(struct agent *a, size_t *len)
{
	struct mbuf b;
	char *out = NULL;

	b.f = open_memstream(&out, len);
	if (!b.f)
		return NULL;
	pthread_mutex_lock(&a->lock);
	b.host = a->o.id;
	struct profile_summary hsum[RES_N];
	{
		double *scratch = malloc(sizeof(double) * (size_t)a->o.window);
		memset(hsum, 0, sizeof(hsum));
		if (scratch)
			agent_summarize(a, a->hprof, hsum, scratch);
		free(scratch);
	}
	const struct host_sample *h = &a->hlast;

	HOST_GAUGE("loadease_host_cpu_capacity_cores", "CPU capacity of the host.", 1, a->so.cpus);
	HOST_GAUGE("loadease_host_memory_capacity_bytes", "Memory capacity of the host.", 1,
	           a->so.mem_mib * 1048576.0);
	HOST_GAUGE("loadease_host_network_capacity_bytes_per_second",
	           "NIC capacity of the host, per direction.", 1, a->so.net_mbit * 1e6 / 8);
	HOST_GAUGE("loadease_host_cpu_utilization_ratio", "Busy share of all host CPUs.",
	           h->valid_cpu, h->cpu);
	HOST_GAUGE("loadease_host_cpu_iowait_ratio", "Iowait share of all host CPUs.", h->valid_cpu,
	           h->cpu_iowait);
	HOST_GAUGE("loadease_host_cpu_steal_ratio", "Steal share of all host CPUs.", h->valid_cpu,
	           h->cpu_steal);
	HOST_GAUGE("loadease_host_cpu_io_overhead_ratio",
	           "Host CPU charged to VMs for packet work, share of the host.", h->valid_cpu,
	           h->io_overhead);
	HOST_GAUGE("loadease_host_memory_utilization_ratio", "Used memory / capacity.",
	           h->valid_mem, h->mem);
	HOST_GAUGE("loadease_host_memory_available_bytes", "MemAvailable.", h->valid_mem,
	           h->mem_avail_mib * 1048576.0);
	HOST_GAUGE("loadease_host_swap_used_bytes", "Swap in use.", h->valid_mem,
	           h->swap_used_mib * 1048576.0);
	HOST_GAUGE("loadease_host_swap_in_pages_per_second", "Pages swapped in.", h->valid_mem,
	           h->swap_in_ps);
	HOST_GAUGE("loadease_host_swap_out_pages_per_second", "Pages swapped out.", h->valid_mem,
	           h->swap_out_ps);
	HOST_GAUGE("loadease_host_network_receive_bytes_per_second", "Physical NICs, received.",
	           h->valid_net, h->net_rx_bps);
	HOST_GAUGE("loadease_host_network_transmit_bytes_per_second", "Physical NICs, sent.",
	           h->valid_net, h->net_tx_bps);
	HOST_GAUGE("loadease_host_network_utilization_ratio",
	           "Busier direction of the NICs / capacity.", h->valid_net, h->net);
	family(&b, "loadease_host_pressure_ratio", "gauge",
	       "PSI avg10 as a ratio, by resource and kind (some, full).");
	if (h->has_psi) {
		const struct {
			const char *res, *kind;
			double v;
		} psi[] = {{"cpu", "some", h->psi_cpu_some},
		           {"memory", "some", h->psi_mem_some},
		           {"memory", "full", h->psi_mem_full},
		           {"io", "some", h->psi_io_some},
		           {"io", "full", h->psi_io_full}};
		for (size_t i = 0; i < sizeof(psi) / sizeof(psi[0]); i++)
			fprintf(b.f,
			        "loadease_host_pressure_ratio{host=\"%s\",resource=\"%s\",kind=\"%"
			        "s\"} %.6g\n",
			        b.host, psi[i].res, psi[i].kind, psi[i].v / 100.0);
	}
	family(&b, "loadease_host_hotspot", "gauge",
	       "1 when the resource is a hotspot (k of n and forecast).");
	for (int r = 0; r < RES_N; r++)
		fprintf(b.f, "loadease_host_hotspot{host=\"%s\",resource=\"%s\"} %d\n", b.host,
		        res_names[r], hsum[r].hot);
	family(&b, "loadease_host_utilization_p95_ratio", "gauge",
	       "95th percentile of the window.");
	for (int r = 0; r < RES_N; r++)
		fprintf(b.f,
		        "loadease_host_utilization_p95_ratio{host=\"%s\",resource=\"%s\"} %.6g\n",
		        b.host, res_names[r], hsum[r].p95);
	family(&b, "loadease_host_utilization_forecast_ratio", "gauge", "AR(1) one-step forecast.");
	for (int r = 0; r < RES_N; r++)
		fprintf(
		    b.f,
		    "loadease_host_utilization_forecast_ratio{host=\"%s\",resource=\"%s\"} %.6g\n",
		    b.host, res_names[r], hsum[r].ar1.forecast);

	HOST_GAUGE("loadease_vms", "VMs this agent watches.", 1, (double)a->nvms);
	VM_GAUGE("loadease_vm_up", "1 when the VM's process is there and its figures are valid.", 1,
	         s->status == VM_OK || s->status == VM_STARTING || s->status == VM_DEGRADED);
	VM_GAUGE("loadease_vm_cpu_utilization_ratio",
	         "CPU used / its vCPUs (process, threads, vhost).", s->valid_cpu, s->cpu);
	VM_GAUGE("loadease_vm_cpu_host_ratio", "CPU used / the host's CPUs.", s->valid_cpu,
	         s->cpu_host);
	VM_GAUGE("loadease_vm_cpu_io_overhead_ratio",
	         "Host CPU charged to the VM for its packets / the host's CPUs.", s->valid_cpu,
	         s->cpu_io_overhead);
	VM_GAUGE("loadease_vm_memory_utilization_ratio",
	         "Memory in use / configured (guest figures when reported, else RSS+swap).",
	         s->valid_mem, s->mem);
	VM_GAUGE("loadease_vm_memory_configured_bytes", "Configured memory.", s->valid_mem,
	         s->mem_mib * 1048576.0);
	VM_GAUGE("loadease_vm_memory_rss_bytes", "Resident memory of the VM process.", s->valid_mem,
	         s->rss_mib * 1048576.0);
	VM_GAUGE("loadease_vm_guest_memory_used_bytes", "Used memory as the guest reports it.",
	         s->valid_mem && s->gray, s->guest_used_mib * 1048576.0);
	VM_GAUGE("loadease_vm_network_receive_bytes_per_second", "Bytes the guest received.",
	         s->valid_net, s->rx_bps);
	VM_GAUGE("loadease_vm_network_transmit_bytes_per_second", "Bytes the guest sent.",
	         s->valid_net, s->tx_bps);
	VM_GAUGE("loadease_vm_network_receive_packets_per_second", "Packets the guest received.",
	         s->valid_net, s->rx_pps);
	VM_GAUGE("loadease_vm_network_transmit_packets_per_second", "Packets the guest sent.",
	         s->valid_net, s->tx_pps);
	VM_GAUGE("loadease_vm_network_drops_per_second", "Packets dropped on its tap, both ways.",
	         s->valid_net, s->rx_drop_ps + s->tx_drop_ps);
	VM_GAUGE("loadease_vm_network_utilization_ratio", "Busier direction / host NIC capacity.",
	         s->valid_net, s->net);
	VM_GAUGE("loadease_vm_disk_read_bytes_per_second", "Bytes read from storage.",
	         s->valid_disk, s->disk_rd_bps);
	VM_GAUGE("loadease_vm_disk_write_bytes_per_second", "Bytes written to storage.",
	         s->valid_disk, s->disk_wr_bps);

	VM_COUNTER("loadease_vm_cpu_seconds_total",
	           "CPU time of the VM process, its threads and vhost threads.",
	           s->status == VM_OK || s->status == VM_STARTING || s->status == VM_DEGRADED,
	           (double)s->cpu_ticks / (double)a->so.hz);
	VM_COUNTER("loadease_vm_network_receive_bytes_total", "Bytes the guest received (tap).",
	           s->has_tap, (double)s->tap.rx_bytes);
	VM_COUNTER("loadease_vm_network_transmit_bytes_total", "Bytes the guest sent (tap).",
	           s->has_tap, (double)s->tap.tx_bytes);
	VM_COUNTER("loadease_vm_network_receive_packets_total", "Packets the guest received (tap).",
	           s->has_tap, (double)s->tap.rx_packets);
	VM_COUNTER("loadease_vm_network_transmit_packets_total", "Packets the guest sent (tap).",
	           s->has_tap, (double)s->tap.tx_packets);
	VM_COUNTER("loadease_vm_network_dropped_packets_total", "Packets dropped on the tap.",
	           s->has_tap, (double)(s->tap.rx_dropped + s->tap.tx_dropped));
	VM_COUNTER("loadease_vm_disk_read_bytes_total", "Bytes read from storage.", s->has_io,
	           (double)s->disk_rd_bytes);
	VM_COUNTER("loadease_vm_disk_written_bytes_total", "Bytes written to storage.", s->has_io,
	           (double)s->disk_wr_bytes);

	family(&b, "loadease_agent_samples_total", "counter", "Sampling ticks since start.");
	host_val(&b, "loadease_agent_samples_total", (double)a->samples);
	family(&b, "loadease_agent_task_reader_bpf", "gauge",
	       "1 when the last sample read VM CPU time and I/O in one BPF task iterator pass, "
	       "0 when from /proc.");
	host_val(&b, "loadease_agent_task_reader_bpf", a->reader_bpf);
	family(&b, "loadease_agent_redis_up", "gauge", "1 when connected to Redis.");
	host_val(&b, "loadease_agent_redis_up", a->redis_up);
	family(&b, "loadease_agent_backlog_samples", "gauge", "Samples waiting for Redis.");
	host_val(&b, "loadease_agent_backlog_samples", a->bl.len);
	family(&b, "loadease_agent_redis_refused_total", "counter",
	       "Samples Redis answered with an error (OOM, MISCONF, READONLY); each was kept "
	       "and sent again.");
	host_val(&b, "loadease_agent_redis_refused_total", (double)a->refused_ticks);
	family(&b, "loadease_agent_redis_refusing", "gauge",
	       "1 while Redis refuses the agent's writes.");
	host_val(&b, "loadease_agent_redis_refusing", a->refusing);
	family(&b, "loadease_agent_backlog_dropped_total", "counter",
	       "Samples dropped because the backlog was full.");
	host_val(&b, "loadease_agent_backlog_dropped_total", (double)a->bl.dropped);
	family(&b, "loadease_agent_sample_cpu_seconds", "gauge",
	       "CPU time of the last sampling tick.");
	host_val(&b, "loadease_agent_sample_cpu_seconds", a->last_sample_cpu_ms / 1000.0);
	pthread_mutex_unlock(&a->lock);
	if (fclose(b.f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}
