/* agent.c - `loadease agent`: options, start-up, and the sampling loop. */
#include "agent/agent.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cfg_keys.h"
#include "common/log.h"
#include "common/util.h"

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const io_modes[] = {"softirq", "unexplained", "off", NULL};
static const char *const domain_types[] = {"kvm", "qemu", NULL};
static const char *const usages[] = {"proc", "vms", NULL};
static const char *const bpf_modes[] = {"auto", "on", "off", NULL};

#define O(f) offsetof(struct agent_opts, f)
#define S(f) O(f), sizeof(((struct agent_opts *)0)->f)

const struct cfg_key agent_cfg_keys[] = {
    {"agent", "id", CFG_STR, "", S(id), 0, 0, NULL,
     "host id in the registry (letters, digits, `_ . -`); empty = the hostname"},
    {"agent", "address", CFG_STR, "", S(address), 0, 0, NULL,
     "IP other hosts and the controller reach this host at (`host_id_to_ip`); empty = the first "
     "non-loopback IPv4 address"},
    {"agent", "listen", CFG_STR, "", S(listen), 0, 0, NULL,
     "ip:port of the HTTP API and /metrics (port 0 = any free port); empty = "
     "`<agent.address>:7101`, the cluster address only (`0.0.0.0:7101` = every interface)"},
    {"agent", "advertise", CFG_STR, "", S(advertise), 0, 0, NULL,
     "ip:port published as `mon_proxy_addr`/`vmm_proxy_addr`; empty = address + the listening "
     "port"},
    {"agent", "root", CFG_STR, "/", S(root), 0, 0, NULL,
     "directory /proc and /sys are read under (tests point it at a fixture tree)"},
    {"agent", "interval_ms", CFG_INT, "1000", O(interval_ms), 0, 100, 60000, NULL,
     "sampling interval in milliseconds"},
    {"agent", "token", CFG_STR, "", S(token), 0, 0, NULL,
     "cluster secret for mutating API calls (`Authorization: Bearer`); empty = mutating calls "
     "refused"},
    {"agent", "token_file", CFG_STR, "", S(token_file), 0, 0, NULL,
     "file holding the token (overrides `token`; keeps it out of the config; refused unless "
     "mode 0600 or stricter and owned by the agent's user or root)"},
    {"agent", "read_token", CFG_STR, "", S(read_token), 0, 0, NULL,
     "a token that allows read calls only (GET: /v1/..., /metrics for Prometheus); reads need "
     "it or the token"},
    {"agent", "read_token_file", CFG_STR, "", S(read_token_file), 0, 0, NULL,
     "file holding the read-only token (overrides `read_token`; the same mode rule)"},
    {"agent", "open_reads", CFG_BOOL, "false", O(open_reads), 0, 0, 0, NULL,
     "read calls need no token while no `read_token` is set (`/healthz` is always open)"},
    {"agent", "log_level", CFG_ENUM, "info", O(log_level), 0, 0, 0, log_levels, "log verbosity"},
    {"agent", "log_file", CFG_STR, "", S(log_file), 0, 0, NULL,
     "file the agent's log is appended to (reopened on SIGHUP); empty = stderr (the journal "
     "under systemd)"},
    {"host", "cpu", CFG_DOUBLE, "0", O(cpus), 0, 0, 65536, NULL,
     "CPU capacity in cores (`host_config.cpu`); 0 = the online CPUs"},
    {"host", "mem", CFG_DOUBLE, "0", O(mem_mib), 0, 0, 1e9, NULL,
     "memory capacity in MiB (`host_config.mem`); 0 = MemTotal"},
    {"host", "net", CFG_DOUBLE, "0", O(net_mbit), 0, 0, 1e7, NULL,
     "NIC capacity in Mbit/s per direction (`host_config.net`); 0 = the NICs' link speed, else "
     "1000"},
    {"host", "nics", CFG_STR, "", S(nics), 0, 0, NULL,
     "comma-separated physical NICs whose traffic is the host's; empty = every interface with a "
     "device behind it"},
    {"host", "usage", CFG_ENUM, "proc", O(usage), 0, 0, 0, usages,
     "where the host's CPU, memory and network use come from: `proc` (the kernel's /proc/stat, "
     "/proc/meminfo and NIC counters) or `vms` (the sum of its VMs' use: for hosts that share "
     "one kernel, like the network-namespace hosts of the tests and the demo)"},
    {"monitor", "cpu_io_overhead", CFG_ENUM, "softirq", O(io_mode), 0, 0, 0, io_modes,
     "host CPU charged to VMs by their share of packets: `softirq` (irq+softirq time), "
     "`unexplained` (all busy time no VM process explains: the seed's rule, right on dedicated "
     "hosts), `off`"},
    {"monitor", "vhost_scan_s", CFG_INT, "10", O(vhost_scan_s), 0, 1, 3600, NULL,
     "how often to look for new `vhost-<pid>` kernel threads, seconds"},
    {"monitor", "bpf", CFG_ENUM, "auto", O(bpf), 0, 0, 0, bpf_modes,
     "read every VM's CPU time and I/O counters in one pass of a BPF task iterator over the host's "
     "tasks instead of two /proc reads per VM: `auto` (whichever costs less, timed every 300 "
     "samples; /proc when the kernel refuses BPF, saying why), `on` (always the pass; refuse to "
     "start without it), `off`"},
    CFG_TLS_KEYS,
    CFG_REDIS_KEYS("500", "10000"),
    {"redis", "stream_maxlen", CFG_INT, "86400", O(stream_maxlen), 0, 10, 100000000, NULL,
     "entries kept per `ts:*` stream (XADD MAXLEN ~)"},
    {"redis", "backlog", CFG_INT, "600", O(backlog), 0, 1, 1000000, NULL,
     "samples (ticks) buffered while Redis is unreachable; the oldest are dropped beyond it, and "
     "counted"},
    {"redis", "backlog_mib", CFG_INT, "64", O(backlog_mib), 0, 1, 65536, NULL,
     "memory the backlog may use; the oldest samples are dropped beyond it, and counted"},
    {"redis", "profile_every", CFG_INT, "5", O(profile_every), 0, 1, 3600, NULL,
     "write the `profile:*` hashes every this many samples (streams and heartbeat: every sample)"},
    {"redis", "registry_every", CFG_INT, "10", O(registry_every), 0, 1, 3600, NULL,
     "re-read every `vm_configs:*` of this host every this many samples (new VMs and dead "
     "processes: every sample); with Redis client tracking, which reports each change, every 30 "
     "times this many"},
    {"redis", "flush_budget_ms", CFG_INT, "300", O(flush_budget_ms), 0, 10, 60000, NULL,
     "longest time one tick spends sending backlog, so sampling keeps its pace"},
    {"redis", "wait_replicas", CFG_INT, "0", O(wait_replicas), 0, 0, 16, NULL,
     "a sample counts as stored only once this many replicas have it (WAIT): with Sentinel, "
     "1 loses no confirmed sample in a failover; 0 = the master's word"},
    {"redis", "wait_ms", CFG_INT, "200", O(wait_ms), 0, 1, 10000, NULL,
     "how long WAIT waits for the replicas; a sample they have not acknowledged by then "
     "stays buffered and is sent again"},
    {"profile", "window", CFG_INT, "300", O(window), 0, 5, 86400, NULL,
     "samples in a profile's window (percentiles, histogram, AR(1))"},
    CFG_PROFILE_RULE_KEYS,
    {"vm", "enabled", CFG_BOOL, "true", O(vm_enabled), 0, 0, 0, NULL,
     "manage this host's VMs through libvirt; false = monitoring only (VMs registered by hand, "
     "and the controller never migrates to or from this host)"},
    {"vm", "libvirt_uri", CFG_STR, "qemu:///system", S(vm.uri), 0, 0, NULL,
     "this host's libvirt; every running domain of it is watched, whoever started it"},
    {"vm", "peer_uri", CFG_STR, "", S(vm.peer_uri), 0, 0, NULL,
     "where other hosts reach this libvirt for migrations, published as host_config "
     "`libvirt_uri`; empty = `qemu+tls://<agent.address>/system`"},
    {"vm", "domain_type", CFG_ENUM, "kvm", O(vm_domain_type), 0, 0, 0, domain_types,
     "domain type of the VMs LoadEase defines: `kvm` in production; `qemu` (TCG) where KVM "
     "cannot run guests (nested, CI)"},
    {"vm", "emulator", CFG_STR, "", S(vm.dx.emulator), 0, 0, NULL,
     "QEMU binary of the VMs LoadEase defines; empty = libvirt's default"},
    {"vm", "pid_dir", CFG_STR, "/run/libvirt/qemu", S(vm.pid_dir), 0, 0, NULL,
     "where libvirt writes each QEMU's pid file (`<name>.pid`)"},
    {"vm", "state_dir", CFG_STR, "/var/lib/loadease", S(vm.state_dir), 0, 0, NULL,
     "where the agent keeps each VM's guest statistics (`<dir>/vms/<id>/`)"},
    {"vm", "images_dir", CFG_STR, "/var/lib/loadease/images", S(vm.images_dir), 0, 0, NULL,
     "kernels, initrds and disks must be inside it (shared storage, same path on every host)"},
    {"vm", "console_log_dir", CFG_STR, "/var/log/libvirt/qemu", S(vm.console_log_dir), 0, 0, NULL,
     "what each VM LoadEase defines prints on its serial console is also kept in "
     "`<dir>/<id>-console.log` (by libvirt's virtlogd; `virsh console` still works); "
     "empty = not kept"},
    {"vm", "machine", CFG_STR, "q35", S(vm.dx.machine), 0, 0, NULL, "QEMU machine type"},
    {"vm", "bridge", CFG_STR, "br0", S(vm.bridge), 0, 0, NULL,
     "bridge the VMs' interfaces join unless a VM names another"},
    {"vm", "max_vcpus", CFG_INT, "64", O(vm_max_vcpus), 0, 1, 1024, NULL,
     "largest vCPU count a VM may ask for"},
    {"vm", "max_mem_mib", CFG_INT, "1048576", O(vm_max_mem_mib), 0, 64, 16777216, NULL,
     "largest memory a VM may ask for, MiB"},
    {"vm", "boot_timeout_ms", CFG_INT, "30000", O(vm_boot_timeout_ms), 0, 1000, 600000, NULL,
     "how long a started domain may take to write its QEMU pid file"},
    {"vm", "shutdown_timeout_ms", CFG_INT, "10000", O(vm_shutdown_timeout_ms), 0, 0, 600000, NULL,
     "ACPI shutdown grace before a deleted VM is destroyed"},
    {"vm", "migrate_bandwidth_mbit", CFG_INT, "0", O(vm_mig_bw), 0, 0, 1000000, NULL,
     "live-migration bandwidth cap, Mbit/s (0 = no cap)"},
    {"vm", "migrate_downtime_ms", CFG_INT, "300", O(vm_mig_downtime), 0, 1, 60000, NULL,
     "the longest pause a live migration may cause"},
    {"vm", "migrate_timeout_ms", CFG_INT, "300000", O(vm_mig_timeout), 0, 1000, 3600000, NULL,
     "a migration not done by then is cancelled; the VM stays where it was"},
    {"vm", "migrate_tls", CFG_BOOL, "false", O(vm.migrate_tls), 0, 0, 0, NULL,
     "encrypt the migration stream (libvirt's VIR_MIGRATE_TLS; needs libvirt's TLS "
     "certificates on both hosts)"},
    {"vm", "stats_poll_ms", CFG_INT, "2000", O(vm_poll_ms), 0, 200, 60000, NULL,
     "how often balloon statistics are read from libvirt, for every VM in one call"},
    {"vm", "reconcile_s", CFG_INT, "10", O(vm_reconcile_s), 0, 1, 3600, NULL,
     "the registry is checked against libvirt at least this often (domain events make it "
     "follow at once; this is the safety net, and how a Redis that lost its data is healed)"},
    {"vm", "peer_timeout_ms", CFG_INT, "3000", O(vm_peer_timeout_ms), 0, 100, 60000, NULL,
     "how long to wait for another host's libvirt to answer"},
    CFG_END,
};

static struct agent *the_agent; /* for the signal handler only */

static void on_signal(int sig)
{
	if (!the_agent)
		return;
	if (sig == SIGHUP)
		the_agent->reload = 1;
	else
		the_agent->stop = 1;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: loadease agent [-c FILE] [-s section.key=value]... [--check] [--config-doc]\n"
	    "\n"
	    "Samples this host and the VMs the Redis registry lists for it, publishes\n"
	    "time series and profiles to Redis, and serves the host's HTTP API.\n"
	    "\n"
	    "  -c, --config FILE   INI configuration file (every key has a default)\n"
	    "  -s, --set K=V       override one key, e.g. -s redis.address=unix:/run/redis.sock\n"
	    "      --check         load and validate the configuration, then exit\n"
	    "      --config-doc    print every configuration key with its default\n"
	    "      --config-example  print an example configuration: every key commented\n"
	    "                      out at its default, but those given with -s\n"
	    "  -h, --help          this text\n");
}

/* Fills what the options leave to the machine; checks what the table cannot. */
int agent_resolve(struct agent *a, char *err, size_t errlen)
{
	struct agent_opts *o = &a->o;
	struct sampler_opts *so = &a->so;
	struct host_raw hr;

	if (o->k > o->n) {
		snprintf(err, errlen, "profile.k (%lld) must not exceed profile.n (%lld)", o->k,
		         o->n);
		return -EINVAL;
	}
	if (o->n > o->window) {
		snprintf(err, errlen, "profile.n (%lld) must not exceed profile.window (%lld)",
		         o->n, o->window);
		return -EINVAL;
	}
	if (!o->id[0]) {
		char h[256];
		if (gethostname(h, sizeof(h)) < 0)
			snprintf(h, sizeof(h), "host");
		h[64] = '\0';
		for (char *p = h; *p; p++)
			if (!util_valid_id((char[]){*p, 0}) && *p != '.' && *p != '-')
				*p = '_';
		snprintf(o->id, sizeof(o->id), "%s", h);
	}
	if (!util_valid_id(o->id)) {
		snprintf(err, errlen,
		         "agent.id '%s': use 1-64 of A-Z a-z 0-9 _ . - (not starting with . or -)",
		         o->id);
		return -EINVAL;
	}
	if (o->token_file[0] &&
	    util_read_secret(o->token_file, o->token, sizeof(o->token), err, errlen) < 0)
		return -EINVAL;
	if (o->read_token_file[0] && util_read_secret(o->read_token_file, o->read_token,
	                                              sizeof(o->read_token), err, errlen) < 0)
		return -EINVAL;
	if (o->read_token[0] && strcmp(o->read_token, o->token) == 0) {
		snprintf(err, errlen, "agent.read_token must differ from agent.token");
		return -EINVAL;
	}
	if (o->redis_password_file[0] &&
	    util_read_secret(o->redis_password_file, o->redis.password, sizeof(o->redis.password),
	                     err, errlen) < 0)
		return -EINVAL;
	if (store_opts_problem(&o->redis)[0]) {
		snprintf(err, errlen, "%s", store_opts_problem(&o->redis));
		return -EINVAL;
	}
	if (util_default_listen(o->address, sizeof(o->address), o->listen, sizeof(o->listen),
	                        7101) < 0) {
		snprintf(err, errlen, "agent.listen: agent.address too long");
		return -EINVAL;
	}
	if (o->bpf == TASK_READER_ON && strcmp(o->root, "/") != 0) {
		snprintf(err, errlen,
		         "monitor.bpf = on reads the live kernel: it needs agent.root = /");
		return -EINVAL;
	}

	snprintf(so->root, sizeof(so->root), "%s", o->root);
	so->hz = sysconf(_SC_CLK_TCK);
	so->page_kib = sysconf(_SC_PAGESIZE) / 1024;
	so->io_mode = (enum io_overhead_mode)o->io_mode;
	if (o->nics[0]) {
		char tmp[256], *save = NULL;
		snprintf(tmp, sizeof(tmp), "%s", o->nics);
		for (char *t = strtok_r(tmp, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
			if (so->nnics == SAMPLER_MAX_NICS || strlen(t) >= SAMPLER_IFNAMSIZ) {
				snprintf(err, errlen,
				         "host.nics: too many NICs or name '%s' too long", t);
				return -EINVAL;
			}
			snprintf(so->nics[so->nnics++], SAMPLER_IFNAMSIZ, "%s", t);
		}
	} else {
		so->nnics = sampler_find_nics(o->root, so->nics, SAMPLER_MAX_NICS);
	}
	sampler_read_host(so, NULL, 0, &hr);
	if (!hr.ok_stat || !hr.ok_mem) {
		snprintf(err, errlen, "cannot read the host under root '%s': %s", o->root, hr.err);
		return -EINVAL;
	}
	so->cpus = o->cpus > 0 ? o->cpus : hr.stat.ncpu ? hr.stat.ncpu : 1;
	so->mem_mib = o->mem_mib > 0 ? o->mem_mib : (double)hr.mem.mem_total / 1024.0;
	so->net_mbit =
	    o->net_mbit > 0 ? o->net_mbit : sampler_nic_speed(o->root, so->nics, so->nnics);
	if (so->net_mbit <= 0)
		so->net_mbit = 1000;
	snprintf(o->vm.host_id, sizeof(o->vm.host_id), "%s", o->id);
	o->vm.redis = o->redis;
	snprintf(o->vm.dx.domain_type, sizeof(o->vm.dx.domain_type), "%s",
	         domain_types[o->vm_domain_type]);
	o->vm.dx.balloon_period_s = (int)((o->vm_poll_ms + 999) / 1000);
	o->vm.max_vcpus = (int)o->vm_max_vcpus;
	o->vm.max_mem_mib = (int)o->vm_max_mem_mib;
	o->vm.boot_timeout_ms = (int)o->vm_boot_timeout_ms;
	o->vm.shutdown_timeout_ms = (int)o->vm_shutdown_timeout_ms;
	o->vm.migrate_bandwidth_mbit = (int)o->vm_mig_bw;
	o->vm.migrate_downtime_ms = (int)o->vm_mig_downtime;
	o->vm.migrate_timeout_ms = (int)o->vm_mig_timeout;
	o->vm.stats_poll_ms = (int)o->vm_poll_ms;
	o->vm.reconcile_ms = (int)o->vm_reconcile_s * 1000;
	o->vm.peer_timeout_ms = (int)o->vm_peer_timeout_ms;
	if (!o->vm.peer_uri[0] && util_fmt(o->vm.peer_uri, sizeof(o->vm.peer_uri),
	                                   "qemu+tls://%s/system", o->address) < 0) {
		snprintf(err, errlen, "vm.peer_uri: agent.address too long");
		return -EINVAL;
	}
	for (int r = 0; r < RES_N; r++) {
		a->rule[r].threshold = o->threshold[r];
		a->rule[r].k = (unsigned)o->k;
		a->rule[r].n = (unsigned)o->n;
	}
	return 0;
}

void agent_summarize(const struct agent *a, const struct profile *prof, struct profile_summary *sum,
                     double *scratch)
{
	for (int r = 0; r < RES_N; r++)
		profile_summarize(&prof[r], &a->rule[r], a->o.peak_pct, scratch, &sum[r]);
}

struct vm_mon *agent_find_vm(struct agent *a, const char *id)
{
	for (int i = 0; i < a->nvms; i++)
		if (strcmp(a->vms[i]->d.id, id) == 0)
			return a->vms[i];
	return NULL;
}

static void vm_mon_free(struct vm_mon *m)
{
	if (!m)
		return;
	for (int r = 0; r < RES_N; r++)
		profile_release(&m->prof[r]);
	free(m);
}

void agent_forget_vm(struct agent *a, const char *id)
{
	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < a->nvms; i++) {
		if (strcmp(a->vms[i]->d.id, id) == 0) {
			vm_mon_free(a->vms[i]);
			a->vms[i] = a->vms[--a->nvms];
			break;
		}
	}
	pthread_mutex_unlock(&a->lock);
}

/* Brings the watched set in line with the registry (under the lock), in
 * its order: while the registry does not change, the next read finds the
 * same VMs in the same places (publish_registry_unchanged). */
static void agent_apply_registry(struct agent *a, struct vm_desc *descs, int n)
{
	struct vm_mon **order = calloc((size_t)n + 1, sizeof(*order));
	int k = 0;

	for (int i = 0; i < a->nvms; i++)
		a->vms[i]->seen = false;
	for (int i = 0; i < n; i++) {
		/* the registry lists the VMs in the order they are watched in */
		struct vm_mon *m = i < a->nvms && strcmp(a->vms[i]->d.id, descs[i].id) == 0
		                       ? a->vms[i]
		                       : agent_find_vm(a, descs[i].id);
		if (!m) {
			if (a->nvms == a->capvms) {
				int cap = a->capvms ? a->capvms * 2 : 16;
				struct vm_mon **nv = realloc(a->vms, sizeof(*nv) * (size_t)cap);
				if (!nv)
					continue;
				a->vms = nv;
				a->capvms = cap;
			}
			m = calloc(1, sizeof(*m));
			if (!m)
				continue;
			for (int r = 0; r < RES_N; r++) {
				if (profile_init(&m->prof[r], (size_t)a->o.window) < 0) {
					vm_mon_free(m);
					m = NULL;
					break;
				}
			}
			if (!m)
				continue;
			/* until its first sample, it is starting (not "ok" with no figures) */
			m->last.status = VM_STARTING;
			a->vms[a->nvms++] = m;
			log_info("watching vm %s (pid %d, tap %s)", descs[i].id, descs[i].pid,
			         descs[i].tap[0] ? descs[i].tap : "none");
		} else if (m->d.pid != descs[i].pid) {
			/* a new process for this VM (restart, or migrated back) */
			m->has_raw = false;
			for (int r = 0; r < RES_N; r++)
				profile_clear(&m->prof[r]);
		}
		m->d = descs[i];
		if (order && !m->seen)
			order[k++] = m;
		m->seen = true;
	}
	for (int i = 0; i < a->nvms;) {
		if (!a->vms[i]->seen) {
			log_info("vm %s left the registry of host %s; no longer watched",
			         a->vms[i]->d.id, a->o.id);
			vm_mon_free(a->vms[i]);
			a->vms[i] = a->vms[--a->nvms];
		} else {
			i++;
		}
	}
	if (order && k > 0 && k == a->nvms)
		memcpy(a->vms, order, sizeof(*order) * (size_t)k);
	free(order);
}

static void prefetch_mon(const struct vm_mon *m)
{
	for (size_t off = 0; off < sizeof(*m); off += 64)
		__builtin_prefetch((const char *)m + off);
}

/* Asks the CPU for what the next VMs' samples touch, all of it out of the
 * caches since the last sample, while the kernel reads VM i's counters: the
 * state of the VM after next, and the newest slot of the next one's profile
 * windows. (Not their sorted copies: a push reads a few entries of one by
 * binary search and moves only those between the evicted value and the new
 * one, so fetching all of it costs more than it saves.) */
static void vm_prefetch(const struct agent *a, int i)
{
	if (i == 0 && a->nvms > 1)
		prefetch_mon(a->vms[1]);
	if (i + 2 < a->nvms)
		prefetch_mon(a->vms[i + 2]);
	if (i + 1 >= a->nvms)
		return;
	for (int r = 0; r < RES_N; r++) {
		const struct profile *p = &a->vms[i + 1]->prof[r];
		__builtin_prefetch(p->win.buf + p->win.head);
	}
}

/* A VM's sample into its profiles. */
static void vm_push(struct vm_mon *m)
{
	const struct vm_sample *s = &m->last;

	if (s->valid_cpu)
		profile_push(&m->prof[RES_CPU], s->cpu);
	if (s->valid_mem)
		profile_push(&m->prof[RES_MEM], s->mem);
	if (s->valid_net)
		profile_push(&m->prof[RES_NET], s->net);
}

/* Whether the kernel runs CPUs without a local tick (nohz_full=): their
 * list in cpus, else false. */
static bool nohz_full_cpus(char *cpus, size_t cap)
{
	size_t len;

	if (util_read_file("/", "/sys/devices/system/cpu/nohz_full", cpus, cap, &len) < 0)
		return false;
	while (len && (cpus[len - 1] == '\n' || cpus[len - 1] == ' '))
		cpus[--len] = '\0';
	return len > 0 && strcmp(cpus, "(null)") != 0;
}

/* The BPF task reader, as monitor.bpf says. -1: it is `on` and cannot be. */
static int agent_open_task_reader(struct agent *a)
{
	char err[256];
	int rc;

	if (a->o.bpf == TASK_READER_OFF)
		return 0;
	if (strcmp(a->so.root, "/") != 0)
		return 0; /* fixtures: /proc (monitor.bpf = on was refused as a config error) */
	if (a->o.bpf == TASK_READER_AUTO && nohz_full_cpus(err, sizeof(err))) {
		/* their threads' run time reaches the kernel's sums once a second */
		log_info("VM CPU time and I/O: from /proc (the BPF task reader would trail the CPU "
		         "clock on the nohz_full CPUs %s by up to a second)",
		         err);
		return 0;
	}
	rc = taskiter_open(&a->cache.ti, err, sizeof(err));
	if (rc == 0) {
		a->cache.ti_forced = a->o.bpf == TASK_READER_ON;
		if (a->cache.ti_forced)
			log_info("VM CPU time and I/O: one BPF task iterator pass per sample");
		return 0;
	}
	if (a->o.bpf == TASK_READER_ON) {
		fprintf(stderr, "loadease agent: monitor.bpf = on: %s\n", err);
		return -1;
	}
	log_info("VM CPU time and I/O: from /proc (the BPF task reader is not available: %s)", err);
	return 0;
}

/* The host's half of a sampling tick: the interface table, the host's
 * files, the vhost threads now and then. Only the sampling loop uses what it
 * writes, so it runs without the lock, while Redis answers the registry
 * read. */
static void agent_sample_host(struct agent *a, int64_t now_mono_ms, struct host_raw *hr)
{
	sampler_read_tasks(&a->so); /* before the VMs' statm reads: see sampler.c */
	a->ntab_n = sampler_read_netdev(&a->so, a->ntab, NETDEV_MAX_IFACES);
	sampler_read_host(&a->so, a->ntab, a->ntab_n, hr);
	if (now_mono_ms >= a->vh_next_ms) {
		sampler_scan_vhost(&a->so, &a->vh);
		a->vh_next_ms = now_mono_ms + a->o.vhost_scan_s * 1000;
	}
}

/* The rest of the tick (under the lock): the VMs, the host's figures, the
 * profiles. */
static void agent_sample(struct agent *a, int64_t now_mono_ms, const struct host_raw *hr)
{
	struct host_sample hs;
	struct vm_sample **vs = NULL;
	int64_t ts = util_now_ms();

	/* strictly increasing sample times: they are the stream entry ids */
	if (ts <= a->last_ts_ms)
		ts = a->last_ts_ms + 1;
	a->last_ts_ms = ts;
	a->seq++;

	if (a->has_hraw)
		sampler_host_delta(&a->so, &a->hraw, hr, &hs);
	else
		memset(&hs, 0, sizeof(hs));
	hs.ts_ms = ts;
	hs.seq = a->seq;

	vs = calloc((size_t)a->nvms + 1, sizeof(*vs));
	for (int i = 0; i < a->nvms; i++) {
		struct vm_mon *m = a->vms[i];
		struct vm_raw raw;
		struct vm_sample before = m->last;
		vm_prefetch(a, i);
		sampler_read_vm(&a->so, &m->d, &a->vh, a->ntab, a->ntab_n, &raw);
		sampler_vm_delta(&a->so, &m->d, m->has_raw ? &m->raw : NULL, &raw, &m->last);
		if (m->has_raw && raw.ok_guest && m->raw.ok_guest && before.gray && m->last.gray &&
		    raw.guest.last_update == m->raw.guest.last_update) {
			/* the guest has not refreshed its stats: its rates still hold */
			m->last.guest_swap_in_bps = before.guest_swap_in_bps;
			m->last.guest_swap_out_bps = before.guest_swap_out_bps;
			m->last.guest_majflt_ps = before.guest_majflt_ps;
		}
		m->last.ts_ms = ts;
		m->last.seq = a->seq;
		m->has_last = true;
		/* the reading of the VM's own process stays the reference: a pid
		 * reused by another process is told apart by its start time */
		if (raw.rc_stat == 0 && m->last.status != VM_GONE) {
			m->raw = raw;
			m->has_raw = true;
		}
		vm_push(m);
		if (vs)
			vs[i] = &m->last;
	}
	if (a->has_hraw && vs)
		sampler_charge_io(&a->so, &a->hraw, hr, &hs, vs, a->nvms);
	if (a->o.usage == HOST_USAGE_VMS && vs && a->has_hraw)
		sampler_host_from_vms(&a->so, &hs, vs, a->nvms);
	free(vs);

	if (hr->ok_stat) {
		a->hraw = *hr;
		a->has_hraw = true;
	}
	a->hlast = hs;
	a->has_hlast = true;
	if (hs.valid_cpu)
		profile_push(&a->hprof[RES_CPU], hs.cpu);
	if (hs.valid_mem)
		profile_push(&a->hprof[RES_MEM], hs.mem);
	if (hs.valid_net)
		profile_push(&a->hprof[RES_NET], hs.net);
	sampler_cache_sweep(&a->cache);
	a->reader_bpf = a->cache.ti && a->cache.ti_ok;
	a->samples++;
	a->last_sample_mono_ms = now_mono_ms;
}

static double thread_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The registry's VMs, read before a sample whenever it may have changed
 * (publish_registry_due: Redis says so, or cannot) so that a VM registered
 * now is watched from the next sample on; their vm_configs only when needed.
 * The read is sent first (agent_registry_send) and its answer taken after
 * the host's counters (agent_load_registry): by then it has come, and the
 * loop does not sleep on it. */
static bool agent_registry_send(struct agent *a)
{
	char key[128];
	const char *argv[] = {"SMEMBERS", key};
	int done = 0;

	snprintf(key, sizeof(key), "vms_in_host:%s", a->o.id);
	if (store_append(a->redis, 2, argv, NULL) < 0)
		return false;
	/* a failed write shows as a failed reply */
	redisBufferWrite(a->redis->c, &done);
	return true;
}

static int agent_load_registry(struct agent *a, bool full)
{
	redisReply *ids = store_reply(a->redis);
	struct vm_desc *descs = NULL;
	int n = 0, rc = -EIO;

	if (ids && !full && publish_registry_unchanged(a, ids)) {
		rc = 0; /* as watched: nothing to read or change */
	} else if (ids && publish_registry_read(a, ids, full, &descs, &n) == 0) {
		pthread_mutex_lock(&a->lock);
		agent_apply_registry(a, descs, n);
		pthread_mutex_unlock(&a->lock);
		rc = 0;
	}
	free(descs);
	freeReplyObject(ids);
	return rc;
}

static void agent_tick(struct agent *a)
{
	int64_t now = util_mono_ms();
	struct pub_tick t = {0};
	struct host_raw hr;
	bool due = a->samples % (uint64_t)a->o.registry_every == 0, registry = false;
	/* with client tracking Redis reports every change of the registry: the
	 * full re-read is only a safety net then (an invalidation channel that
	 * went quiet without closing) */
	bool full =
	    a->tracking
	        ? a->samples % ((uint64_t)a->o.registry_every * AGENT_REGISTRY_TRACKED_FACTOR) == 0
	        : due;
	double c0 = thread_cpu_ms();

	/* the last sample's replies first: they have come by now, and nothing
	 * else may read from the connection before them */
	if (a->ninflight || a->inflight_extra)
		publish_collect(a);
	if (store_ensure(a->redis, now)) {
		if (a->redis->connects != a->redis_connects_seen) {
			a->redis_connects_seen = a->redis->connects;
			a->registered = false;
			a->tracking_refused = false; /* perhaps another server */
		}
		if (!a->registered && publish_register(a) == 0) {
			a->registered = true;
			publish_tracking_start(a, now);
		}
		if (a->registered && !a->tracking && due && store_connected(a->redis))
			publish_tracking_start(a, now); /* its connection was lost: again */
		if (a->registered && store_connected(a->redis) && publish_registry_due(a, full)) {
			/* after a change, every vm_configs again (and tracked again) */
			full = full || a->reg_dirty;
			a->reg_dirty = false;
			registry = agent_registry_send(a);
			a->reg_dirty = !registry;
		}
	}
	agent_sample_host(a, now, &hr);
	if (registry && agent_load_registry(a, full) < 0)
		a->reg_dirty = true;
	pthread_mutex_lock(&a->lock);
	a->redis_up = store_connected(a->redis);
	agent_sample(a, now, &hr);
	if (publish_build_tick(a, &t) == 0)
		publish_enqueue(a, &t);
	pthread_mutex_unlock(&a->lock);
	if (store_connected(a->redis) && a->registered) {
		/* samples, heartbeat and profiles in one round trip */
		struct resp_buf extra = {0};
		bool full_prof =
		    a->o.profile_every == 1 || a->samples % (uint64_t)a->o.profile_every == 1;
		if (publish_build_profiles(a, full_prof, &extra) == 0)
			publish_exchange(a, &extra, true); /* replies read next tick */
		resp_release(&extra);
	}
	a->last_sample_cpu_ms = thread_cpu_ms() - c0;
}

static void agent_free(struct agent *a)
{
	httpd_free(a->http);
	virt_free(a->virt);
	for (int i = 0; i < a->nvms; i++)
		vm_mon_free(a->vms[i]);
	free(a->vms);
	for (int r = 0; r < RES_N; r++)
		profile_release(&a->hprof[r]);
	backlog_release(&a->bl);
	for (int i = 0; a->inflight && i < a->ninflight; i++)
		pub_tick_release(&a->inflight[i]);
	free(a->inflight);
	sampler_cache_release(&a->cache);
	store_free(a->inval);
	store_free(a->redis);
	free(a->ntab);
	free(a->raw);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

int agent_main(int argc, char **argv)
{
	const char *cfg_path = NULL;
	const char **sets = calloc((size_t)argc, sizeof(char *));
	int nsets = 0, rc = 1;
	bool check = false, example = false;
	char err[512];
	struct agent *a = calloc(1, sizeof(*a));
	struct timespec next;

	if (!a || !sets) {
		fprintf(stderr, "loadease agent: out of memory\n");
		goto out;
	}
	pthread_mutex_init(&a->lock, NULL);
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
			usage(stdout);
			rc = 0;
			goto out;
		} else if (strcmp(arg, "--config-doc") == 0) {
			cfg_print_doc(agent_cfg_keys, stdout);
			rc = 0;
			goto out;
		} else if (strcmp(arg, "--config-example") == 0) {
			example = true;
		} else if (strcmp(arg, "--check") == 0) {
			check = true;
		} else if ((strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) &&
		           i + 1 < argc) {
			cfg_path = argv[++i];
		} else if ((strcmp(arg, "-s") == 0 || strcmp(arg, "--set") == 0) && i + 1 < argc) {
			sets[nsets++] = argv[++i];
		} else {
			fprintf(stderr, "loadease agent: unknown or incomplete option '%s'\n", arg);
			usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (example) {
		cfg_print_example(agent_cfg_keys, sets, nsets, stdout);
		rc = 0;
		goto out;
	}
	a->raw = calloc(1, sizeof(*a->raw));
	if (!a->raw ||
	    cfg_load(agent_cfg_keys, &a->o, cfg_path, sets, nsets, err, sizeof(err)) < 0) {
		fprintf(stderr, "loadease agent: configuration: %s\n",
		        a->raw ? err : "out of memory");
		rc = 2;
		goto out;
	}
	*a->raw = a->o;
	a->cfg_path = cfg_path;
	a->sets = sets;
	a->nsets = nsets;
	if (agent_resolve(a, err, sizeof(err)) < 0) {
		fprintf(stderr, "loadease agent: configuration: %s\n", err);
		rc = 2;
		goto out;
	}
	log_set_level((enum log_level)a->o.log_level);
	if (check) {
		rc = agent_check(a) ? 1 : 0;
		goto out;
	}
	{
		int lrc = log_to_file(a->o.log_file);
		if (lrc < 0) {
			fprintf(stderr, "loadease agent: log_file %s: %s\n", a->o.log_file,
			        strerror(-lrc));
			rc = 2;
			goto out;
		}
	}
	for (int r = 0; r < RES_N; r++) {
		if (profile_init(&a->hprof[r], (size_t)a->o.window) < 0) {
			fprintf(stderr, "loadease agent: out of memory\n");
			goto out;
		}
	}
	a->ntab = calloc(NETDEV_MAX_IFACES, sizeof(*a->ntab));
	a->bl.cap = (int)a->o.backlog;
	a->bl.max_bytes = (size_t)a->o.backlog_mib << 20;
	sampler_cache_init(&a->cache);
	a->so.cache = &a->cache;
	if (agent_open_task_reader(a) < 0)
		goto out;
	a->bl.t = calloc((size_t)a->bl.cap, sizeof(*a->bl.t));
	a->redis = store_new(&a->o.redis);
	if (!a->ntab || !a->bl.t || !a->redis) {
		fprintf(stderr, "loadease agent: out of memory\n");
		goto out;
	}
	{
		/* the HTTP threads inherit a mask without SIGINT/SIGTERM, so the
		 * signal lands on this thread and ends its sleep at once */
		sigset_t set, old;
		sigemptyset(&set);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGHUP);
		pthread_sigmask(SIG_BLOCK, &set, &old);
		char *cert = NULL, *key = NULL, who[96];
		snprintf(who, sizeof(who), "agent %s", a->o.id);
		if (tls_setup(&a->o.tls, who, &cert, &key, err, sizeof(err)) == 0)
			a->http =
			    httpd_new_tls(a->o.listen, cert, key, api_handle, a, err, sizeof(err));
		free(cert);
		free(key);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (!a->http) {
		fprintf(stderr, "loadease agent: HTTP API: %s\n", err);
		goto out;
	}
	if (!a->o.advertise[0])
		snprintf(a->o.advertise, sizeof(a->o.advertise), "%s:%d", a->o.address,
		         httpd_port(a->http));
	if (a->o.vm_enabled) {
		snprintf(a->o.vm.api_addr, sizeof(a->o.vm.api_addr), "%s", a->o.advertise);
		a->virt = virt_new(&a->o.vm, err, sizeof(err));
		if (!a->virt) {
			fprintf(stderr,
			        "loadease agent: VM layer: %s (set vm.enabled = false to only "
			        "monitor)\n",
			        err);
			rc = 2;
			goto out;
		}
	}
	the_agent = a;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
	log_info("agent %s: %g cores, %.0f MiB, %.0f Mbit/s; API on %s://%s (advertised %s); redis "
	         "%s; every %lld ms",
	         a->o.id, a->so.cpus, a->so.mem_mib, a->so.net_mbit, tls_scheme(&a->o.tls),
	         a->o.listen, a->o.advertise, a->o.redis.address, a->o.interval_ms);

	if (a->virt) {
		/* its threads (libvirt's event loop, the reconcile worker) leave the
		 * signals to this one */
		sigset_t set, old;
		sigemptyset(&set);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGHUP);
		pthread_sigmask(SIG_BLOCK, &set, &old);
		if (virt_start(a->virt, err, sizeof(err)) < 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			fprintf(stderr, "loadease agent: VM layer: %s\n", err);
			goto out;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!a->stop) {
		if (a->reload) {
			a->reload = 0;
			agent_reload(a);
		}
		agent_tick(a);
		next.tv_nsec += (a->o.interval_ms % 1000) * 1000000;
		next.tv_sec += a->o.interval_ms / 1000 + next.tv_nsec / 1000000000;
		next.tv_nsec %= 1000000000;
		{
			/* a tick that overran the interval: skip ahead, do not burst */
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > next.tv_sec ||
			    (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
				next = now;
		}
		while (!a->stop &&
		       clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
	log_info("agent %s: stopping", a->o.id);
	if (a->ninflight || a->inflight_extra)
		publish_collect(a); /* unconfirmed ticks back to the backlog */
	if (store_connected(a->redis)) {
		struct resp_buf none = {0};
		a->o.flush_budget_ms = 2000;
		publish_exchange(a, &none, false);
		publish_mark_down(a);
	}
	if (a->bl.len)
		log_warn("agent %s: %d buffered samples not published (Redis unreachable)", a->o.id,
		         a->bl.len);
	rc = 0;
out:
	the_agent = NULL;
	free(sets);
	if (a)
		agent_free(a);
	return rc;
}
