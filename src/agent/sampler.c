#include "agent/sampler.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

#define HOST_BUF (256 * 1024)
#define PID_BUF  8192
#define MIB      (1024.0 * 1024.0)

const char *vm_status_name(enum vm_status s)
{
	static const char *const names[] = {"ok",     "starting",   "gone",
	                                    "no_pid", "proc_error", "degraded"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void note(char *err, size_t cap, const char *fmt, const char *what, int rc)
{
	if (err[0])
		return; /* keep the first problem */
	snprintf(err, cap, fmt, what, strerror(-rc));
}

void sampler_cache_init(struct sampler_cache *c)
{
	memset(c, 0, sizeof(*c));
	c->fd_stat = c->fd_meminfo = c->fd_vmstat = c->fd_netdev = -1;
	for (int i = 0; i < 3; i++)
		c->fd_psi[i] = -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void pid_files_close(struct sampler_pid_files *f)
{
	close_fd(&f->fd_stat);
	close_fd(&f->fd_io);
	close_fd(&f->fd_status);
}

void sampler_cache_release(struct sampler_cache *c)
{
	close_fd(&c->fd_stat);
	close_fd(&c->fd_meminfo);
	close_fd(&c->fd_vmstat);
	close_fd(&c->fd_netdev);
	for (int i = 0; i < 3; i++)
		close_fd(&c->fd_psi[i]);
	for (int i = 0; i < c->npids; i++)
		pid_files_close(&c->pids[i]);
	free(c->pids);
	free(c->buf);
	sampler_cache_init(c);
}

void sampler_cache_sweep(struct sampler_cache *c)
{
	for (int i = 0; i < c->npids;) {
		if (!c->pids[i].used) {
			pid_files_close(&c->pids[i]);
			c->pids[i] = c->pids[--c->npids];
		} else {
			c->pids[i++].used = false;
		}
	}
	c->cursor = 0;
}

/* The cache entry of pid (created when missing); NULL without a cache. The
 * cursor makes the lookups O(1) when VMs are read in the same order each
 * time. */
static struct sampler_pid_files *pid_files(struct sampler_cache *c, int pid)
{
	struct sampler_pid_files *f;

	if (!c)
		return NULL;
	if (c->cursor < c->npids && c->pids[c->cursor].pid == pid)
		f = &c->pids[c->cursor++];
	else {
		f = NULL;
		for (int i = 0; i < c->npids; i++)
			if (c->pids[i].pid == pid) {
				f = &c->pids[i];
				c->cursor = i + 1;
				break;
			}
	}
	if (!f) {
		if (c->npids == c->cappids) {
			int cap = c->cappids ? c->cappids * 2 : 64;
			struct sampler_pid_files *np = realloc(c->pids, sizeof(*np) * (size_t)cap);
			if (!np)
				return NULL;
			c->pids = np;
			c->cappids = cap;
		}
		f = &c->pids[c->npids++];
		memset(f, 0, sizeof(*f));
		f->pid = pid;
		f->fd_stat = f->fd_io = f->fd_status = -1;
		c->cursor = c->npids;
	}
	f->used = true;
	return f;
}

/* Reads root+path, through a kept descriptor when slot is given. */
static int read_at(const struct sampler_opts *o, int *slot, const char *path, char *buf, size_t cap,
                   size_t *len)
{
	if (slot)
		return util_pread_file(slot, o->root, path, buf, cap, len);
	return util_read_file(o->root, path, buf, cap, len);
}

/* A buffer for host files: the cache's (grown on demand) or a fresh one. */
static char *host_buf(const struct sampler_opts *o, size_t want, size_t *cap)
{
	struct sampler_cache *c = o->cache;

	if (!c) {
		*cap = want;
		return malloc(want);
	}
	if (c->cap < want) {
		char *nb = realloc(c->buf, want);
		if (!nb)
			return NULL;
		c->buf = nb;
		c->cap = want;
	}
	*cap = c->cap;
	return c->buf;
}

static void host_buf_done(const struct sampler_opts *o, char *buf)
{
	if (!o->cache)
		free(buf);
}

int sampler_read_netdev(const struct sampler_opts *o, struct netdev_entry *tab, int max)
{
	size_t want = 64 * 1024, cap, len;
	int rc;

	/* grows for hosts with thousands of interfaces (about 120 bytes each) */
	for (;;) {
		char *buf = host_buf(o, want, &cap);
		if (!buf)
			return -ENOMEM;
		rc = read_at(o, o->cache ? &o->cache->fd_netdev : NULL, "/proc/net/dev", buf, cap,
		             &len);
		if (rc == 0)
			rc = netdev_parse(buf, len, tab, max);
		host_buf_done(o, buf);
		if (rc != -EFBIG || cap >= 8 * 1024 * 1024)
			return rc;
		want = cap * 4;
	}
}

void sampler_read_host(const struct sampler_opts *o, const struct netdev_entry *tab, int ntab,
                       struct host_raw *out)
{
	static const char *const psi_files[] = {"/proc/pressure/cpu", "/proc/pressure/memory",
	                                        "/proc/pressure/io"};
	struct sampler_cache *c = o->cache;
	size_t len, cap;
	char *buf = host_buf(o, HOST_BUF, &cap);
	int rc;

	memset(out, 0, sizeof(*out));
	out->mono_ns = mono_ns();
	if (!buf) {
		snprintf(out->err, sizeof(out->err), "out of memory");
		return;
	}
	rc = read_at(o, c ? &c->fd_stat : NULL, "/proc/stat", buf, cap, &len);
	if (rc == 0)
		rc = procfs_parse_stat(buf, len, &out->stat);
	out->ok_stat = rc == 0;
	if (rc)
		note(out->err, sizeof(out->err), "%s: %s", "/proc/stat", rc);

	rc = read_at(o, c ? &c->fd_meminfo : NULL, "/proc/meminfo", buf, cap, &len);
	if (rc == 0)
		rc = procfs_parse_meminfo(buf, len, &out->mem);
	out->ok_mem = rc == 0;
	if (rc)
		note(out->err, sizeof(out->err), "%s: %s", "/proc/meminfo", rc);

	rc = read_at(o, c ? &c->fd_vmstat : NULL, "/proc/vmstat", buf, cap, &len);
	if (rc == 0)
		rc = procfs_parse_vmstat(buf, len, &out->vmstat);
	out->ok_vmstat = rc == 0;
	if (rc)
		note(out->err, sizeof(out->err), "%s: %s", "/proc/vmstat", rc);

	out->has_psi = true;
	for (int i = 0; i < 3; i++) {
		struct procfs_psi *dst = i == 0   ? &out->psi_cpu
		                         : i == 1 ? &out->psi_mem
		                                  : &out->psi_io;
		rc = read_at(o, c ? &c->fd_psi[i] : NULL, psi_files[i], buf, cap, &len);
		if (rc == 0)
			rc = procfs_parse_pressure(buf, len, dst);
		if (rc) {
			/* absent on kernels without CONFIG_PSI: not a problem */
			if (rc != -ENOENT && rc != -EOPNOTSUPP)
				note(out->err, sizeof(out->err), "%s: %s", psi_files[i], rc);
			out->has_psi = false;
		}
	}
	host_buf_done(o, buf);

	out->ok_nics = ntab >= 0;
	if (ntab < 0)
		note(out->err, sizeof(out->err), "%s: %s", "/proc/net/dev", ntab);
	for (int i = 0; i < o->nnics && ntab >= 0; i++) {
		const struct netdev_entry *e = netdev_find(tab, ntab, o->nics[i]);
		if (!e) {
			if (!out->err[0])
				snprintf(out->err, sizeof(out->err), "NIC %s not found",
				         o->nics[i]);
			out->ok_nics = false;
			continue;
		}
		out->nic.rx_bytes += e->rx_bytes;
		out->nic.tx_bytes += e->tx_bytes;
		out->nic.rx_packets += e->rx_packets;
		out->nic.tx_packets += e->tx_packets;
		out->nic.rx_dropped += e->rx_drop;
		out->nic.tx_dropped += e->tx_drop;
	}
}

/* A counter delta; false when the counter went back (wrap, reset, device
 * re-created): the caller then reports no rate rather than a spike. */
static bool delta(uint64_t prev, uint64_t cur, uint64_t *d)
{
	if (cur < prev)
		return false;
	*d = cur - prev;
	return true;
}

static double rate(uint64_t d, double dt_s)
{
	return dt_s > 0 ? (double)d / dt_s : 0;
}

void sampler_host_delta(const struct sampler_opts *o, const struct host_raw *prev,
                        const struct host_raw *cur, struct host_sample *out)
{
	double dt = (double)(cur->mono_ns - prev->mono_ns) / 1e9;
	uint64_t d, dtotal, dbusy;

	memset(out, 0, sizeof(*out));
	out->dt_s = dt;
	snprintf(out->problem, sizeof(out->problem), "%s", cur->err);
	if (dt <= 0)
		return;

	if (prev->ok_stat && cur->ok_stat &&
	    delta(procfs_cpu_total(&prev->stat.all), procfs_cpu_total(&cur->stat.all), &dtotal) &&
	    delta(procfs_cpu_busy(&prev->stat.all), procfs_cpu_busy(&cur->stat.all), &dbusy) &&
	    dtotal > 0 && dbusy <= dtotal) {
		uint64_t dio = 0, dst = 0, dirq = 0;
		delta(prev->stat.all.iowait, cur->stat.all.iowait, &dio);
		delta(prev->stat.all.steal, cur->stat.all.steal, &dst);
		delta(prev->stat.all.irq + prev->stat.all.softirq,
		      cur->stat.all.irq + cur->stat.all.softirq, &dirq);
		out->valid_cpu = true;
		out->cpu = (double)dbusy / (double)dtotal;
		out->cpu_iowait = (double)dio / (double)dtotal;
		out->cpu_steal = (double)dst / (double)dtotal;
		out->cpu_irq = (double)dirq / (double)dtotal;
		out->cpu_busy_cores = (double)dbusy / ((double)o->hz * dt);
	}

	if (cur->ok_mem) {
		const struct procfs_meminfo *m = &cur->mem;
		out->valid_mem = m->mem_total > 0;
		out->mem_total_mib = (double)m->mem_total / 1024.0;
		out->mem_avail_mib = (double)m->mem_available / 1024.0;
		out->mem_used_mib = m->mem_available <= m->mem_total
		                        ? (double)(m->mem_total - m->mem_available) / 1024.0
		                        : 0;
		/* utilisation against the configured capacity (defaults to MemTotal) */
		out->mem = o->mem_mib > 0 ? out->mem_used_mib / o->mem_mib : 0;
		out->swap_total_mib = (double)m->swap_total / 1024.0;
		out->swap_used_mib = m->swap_free <= m->swap_total
		                         ? (double)(m->swap_total - m->swap_free) / 1024.0
		                         : 0;
	}
	if (prev->ok_vmstat && cur->ok_vmstat) {
		if (delta(prev->vmstat.pswpin, cur->vmstat.pswpin, &d))
			out->swap_in_ps = rate(d, dt);
		if (delta(prev->vmstat.pswpout, cur->vmstat.pswpout, &d))
			out->swap_out_ps = rate(d, dt);
		if (delta(prev->vmstat.pgmajfault, cur->vmstat.pgmajfault, &d))
			out->majflt_ps = rate(d, dt);
	}

	if (prev->ok_nics && cur->ok_nics) {
		uint64_t drx, dtx;
		if (delta(prev->nic.rx_bytes, cur->nic.rx_bytes, &drx) &&
		    delta(prev->nic.tx_bytes, cur->nic.tx_bytes, &dtx)) {
			double cap = o->net_mbit * 1e6 / 8.0;
			out->valid_net = true;
			out->net_rx_bps = rate(drx, dt);
			out->net_tx_bps = rate(dtx, dt);
			/* full duplex: the busier direction against the link */
			out->net = cap > 0 ? (out->net_rx_bps > out->net_tx_bps ? out->net_rx_bps
			                                                        : out->net_tx_bps) /
			                         cap
			                   : 0;
		}
	}

	if (cur->has_psi) {
		out->has_psi = true;
		out->psi_cpu_some = cur->psi_cpu.some.avg10;
		out->psi_mem_some = cur->psi_mem.some.avg10;
		out->psi_mem_full = cur->psi_mem.has_full ? cur->psi_mem.full.avg10 : 0;
		out->psi_io_some = cur->psi_io.some.avg10;
		out->psi_io_full = cur->psi_io.has_full ? cur->psi_io.full.avg10 : 0;
	}
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

void sampler_scan_vhost(const struct sampler_opts *o, struct vhost_map *map)
{
	char path[512], comm[64];
	struct dirent *e;
	size_t len;
	DIR *d;

	map->n = 0;
	if (util_fmt(path, sizeof(path), "%s/proc", strcmp(o->root, "/") ? o->root : "") < 0)
		return;
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d)) && map->n < (int)(sizeof(map->e) / sizeof(map->e[0]))) {
		int64_t owner, tid;
		char rel[64];

		if (!all_digits(e->d_name))
			continue;
		snprintf(rel, sizeof(rel), "/proc/%s/comm", e->d_name);
		if (util_read_file(o->root, rel, comm, sizeof(comm), &len) < 0)
			continue;
		comm[strcspn(comm, "\n")] = '\0';
		if (strncmp(comm, "vhost-", 6) != 0 || !util_parse_i64(comm + 6, &owner) ||
		    !util_parse_i64(e->d_name, &tid))
			continue;
		map->e[map->n].owner = (int)owner;
		map->e[map->n].tid = (int)tid;
		map->n++;
	}
	closedir(d);
}

static int read_pid_file(const struct sampler_opts *o, int pid, const char *name, int *slot,
                         char *buf, size_t cap, size_t *len)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "/proc/%d/%s", pid, name);
	return read_at(o, slot, rel, buf, cap, len);
}

void sampler_read_vm(const struct sampler_opts *o, const struct vm_desc *d,
                     const struct vhost_map *vh, const struct netdev_entry *tab, int ntab,
                     struct vm_raw *out)
{
	struct sampler_pid_files *pf;
	char buf[PID_BUF];
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	out->mono_ns = mono_ns();
	if (d->pid <= 0) {
		out->rc_stat = -ESRCH;
		snprintf(out->err, sizeof(out->err), "no pid in the registry");
		return;
	}
	pf = pid_files(o->cache, d->pid);
	rc = read_pid_file(o, d->pid, "stat", pf ? &pf->fd_stat : NULL, buf, sizeof(buf), &len);
	if (rc == -ENODATA)
		rc = -ESRCH; /* a kept descriptor of an exited process reads empty */
	if (rc == 0)
		rc = procfs_parse_pid_stat(buf, len, &out->st);
	out->rc_stat = rc;
	if (rc) {
		snprintf(out->err, sizeof(out->err), "/proc/%d/stat: %s", d->pid, strerror(-rc));
		return;
	}
	if (!pf || !pf->has_status || pf->reads % SAMPLER_STATUS_EVERY == 0) {
		rc = read_pid_file(o, d->pid, "status", pf ? &pf->fd_status : NULL, buf,
		                   sizeof(buf), &len);
		if (rc == 0)
			rc = procfs_parse_pid_status(buf, len, &out->status);
		out->ok_status = rc == 0;
		if (pf && rc == 0) {
			pf->status = out->status;
			pf->has_status = true;
		}
	} else {
		/* VmSwap as last read; RSS fresh from stat */
		out->status = pf->status;
		out->ok_status = true;
		if (out->status.has_vm && out->st.rss >= 0)
			out->status.vm_rss_kib = (uint64_t)out->st.rss * (uint64_t)o->page_kib;
	}
	if (pf)
		pf->reads++;
	rc = read_pid_file(o, d->pid, "io", pf ? &pf->fd_io : NULL, buf, sizeof(buf), &len);
	if (rc == 0)
		rc = procfs_parse_pid_io(buf, len, &out->io);
	out->ok_io = rc == 0;

	for (int i = 0; vh && i < vh->n && out->nvhost < SAMPLER_MAX_VHOST; i++) {
		struct procfs_pid_stat ts;
		if (vh->e[i].owner != d->pid)
			continue;
		if (read_pid_file(o, vh->e[i].tid, "stat", NULL, buf, sizeof(buf), &len) < 0 ||
		    procfs_parse_pid_stat(buf, len, &ts) < 0)
			continue;
		out->vhost[out->nvhost].tid = vh->e[i].tid;
		out->vhost[out->nvhost].ticks = ts.utime + ts.stime;
		out->nvhost++;
	}

	if (d->tap[0] && ntab >= 0) {
		const struct netdev_entry *e = netdev_find(tab, ntab, d->tap);
		if (e) {
			out->ok_tap = true;
			/* a tap's rx is what the guest sent; report from the guest's view */
			out->tap.rx_bytes = e->tx_bytes;
			out->tap.tx_bytes = e->rx_bytes;
			out->tap.rx_packets = e->tx_packets;
			out->tap.tx_packets = e->rx_packets;
			out->tap.rx_dropped = e->tx_drop;
			out->tap.tx_dropped = e->rx_drop;
		} else {
			snprintf(out->err, sizeof(out->err), "tap %s not found", d->tap);
		}
	}

	if (d->guest_stats[0]) {
		char err[128];
		/* an absolute path, not under root: it is the agent's own file */
		rc = util_read_file("/", d->guest_stats, buf, sizeof(buf), &len);
		if (rc == 0)
			rc = balloon_parse(buf, len, &out->guest, err, sizeof(err));
		else
			snprintf(err, sizeof(err), "%s: %s", d->guest_stats, strerror(-rc));
		out->ok_guest = rc == 0;
		/* no file yet (before the first balloon poll): no figures, no problem */
		if (rc && rc != -ENODATA && rc != -ENOENT && !out->err[0])
			snprintf(out->err, sizeof(out->err), "%s", err);
	}
}

static uint64_t vhost_ticks_delta(const struct vm_raw *prev, const struct vm_raw *cur)
{
	uint64_t sum = 0, d;

	/* only threads present in both readings; a new thread counts from the next */
	for (int i = 0; i < cur->nvhost; i++)
		for (int j = 0; j < prev->nvhost; j++)
			if (cur->vhost[i].tid == prev->vhost[j].tid &&
			    delta(prev->vhost[j].ticks, cur->vhost[i].ticks, &d))
				sum += d;
	return sum;
}

static void vm_memory(const struct sampler_opts *o, const struct vm_desc *d,
                      const struct vm_raw *prev, const struct vm_raw *cur, double dt,
                      struct vm_sample *out)
{
	uint64_t dd;

	out->mem_mib = d->mem_mib;
	out->rss_mib = out->swap_mib = 0;
	if (cur->ok_status && cur->status.has_vm) {
		out->rss_mib = (double)cur->status.vm_rss_kib / 1024.0;
		out->swap_mib = (double)cur->status.vm_swap_kib / 1024.0;
	} else if (cur->st.rss > 0) {
		out->rss_mib =
		    (double)cur->st.rss * (double)(o->page_kib ? o->page_kib : 4) / 1024.0;
	}
	if (cur->ok_guest && cur->guest.available != BALLOON_NA) {
		const struct balloon_stats *g = &cur->guest;
		out->gray = true;
		out->guest_avail_mib = (double)g->available / MIB;
		out->guest_used_mib =
		    g->available <= g->total ? (double)(g->total - g->available) / MIB : 0;
		/* rates over the guest's own reporting interval: stats refreshed
		 * every 10 s and sampled every 2 s must not read 0, 0, 0, 0, 5x */
		double gdt =
		    prev && prev->ok_guest ? (double)(g->last_update - prev->guest.last_update) : 0;
		if (gdt > 0) {
			dt = gdt;
			if (g->swap_in != BALLOON_NA && prev->guest.swap_in != BALLOON_NA &&
			    delta(prev->guest.swap_in, g->swap_in, &dd))
				out->guest_swap_in_bps = rate(dd, dt);
			if (g->swap_out != BALLOON_NA && prev->guest.swap_out != BALLOON_NA &&
			    delta(prev->guest.swap_out, g->swap_out, &dd))
				out->guest_swap_out_bps = rate(dd, dt);
			if (g->major_faults != BALLOON_NA &&
			    prev->guest.major_faults != BALLOON_NA &&
			    delta(prev->guest.major_faults, g->major_faults, &dd))
				out->guest_majflt_ps = rate(dd, dt);
		}
		out->mem = d->mem_mib > 0 ? out->guest_used_mib / d->mem_mib : 0;
	} else {
		/* black box: what the process holds, resident or swapped out */
		out->mem = d->mem_mib > 0 ? (out->rss_mib + out->swap_mib) / d->mem_mib : 0;
	}
	out->valid_mem = d->mem_mib > 0;
}

void sampler_vm_delta(const struct sampler_opts *o, const struct vm_desc *d,
                      const struct vm_raw *prev, const struct vm_raw *cur, struct vm_sample *out)
{
	double dt = prev ? (double)(cur->mono_ns - prev->mono_ns) / 1e9 : 0;
	double vcpus = d->vcpus > 0 ? d->vcpus : 1;
	uint64_t dticks, a, b, c, e;
	bool reset = false;

	memset(out, 0, sizeof(*out));
	snprintf(out->problem, sizeof(out->problem), "%s", cur->err);
	if (d->pid <= 0) {
		out->status = VM_NO_PID;
		return;
	}
	if (cur->rc_stat == -ENOENT || cur->rc_stat == -ESRCH) {
		out->status = VM_GONE;
		snprintf(out->problem, sizeof(out->problem), "process %d has exited", d->pid);
		return;
	}
	if (cur->rc_stat) {
		out->status = VM_PROC_ERROR;
		return;
	}
	if (prev && prev->rc_stat == 0 && prev->st.starttime != cur->st.starttime) {
		out->status = VM_GONE;
		snprintf(out->problem, sizeof(out->problem),
		         "process %d exited and its pid was reused", d->pid);
		return;
	}
	vm_memory(o, d, prev, cur, dt, out);
	out->has_tap = cur->ok_tap;
	out->tap = cur->tap;
	out->has_io = cur->ok_io;
	out->disk_rd_bytes = cur->io.read_bytes;
	out->disk_wr_bytes = cur->io.write_bytes;
	out->cpu_ticks = cur->st.utime + cur->st.stime;
	for (int i = 0; i < cur->nvhost; i++)
		out->cpu_ticks += cur->vhost[i].ticks;
	if (!prev || prev->rc_stat != 0 || dt <= 0) {
		out->status = VM_STARTING;
		return;
	}

	out->status = VM_OK;
	if (delta(prev->st.utime + prev->st.stime, cur->st.utime + cur->st.stime, &dticks)) {
		dticks += vhost_ticks_delta(prev, cur);
		out->valid_cpu = true;
		out->vhost_threads = cur->nvhost;
		out->cpu = (double)dticks / ((double)o->hz * dt * vcpus);
		out->cpu_host = o->cpus > 0 ? (double)dticks / ((double)o->hz * dt * o->cpus) : 0;
	} else {
		reset = true;
	}

	if (d->tap[0] && !cur->ok_tap) {
		out->status = VM_DEGRADED;
	} else if (cur->ok_tap && prev->ok_tap) {
		const struct net_counters *p = &prev->tap, *q = &cur->tap;
		if (delta(p->rx_bytes, q->rx_bytes, &a) && delta(p->tx_bytes, q->tx_bytes, &b) &&
		    delta(p->rx_packets, q->rx_packets, &c) &&
		    delta(p->tx_packets, q->tx_packets, &e)) {
			double cap = o->net_mbit * 1e6 / 8.0;
			uint64_t drd = 0, dtd = 0;
			delta(p->rx_dropped, q->rx_dropped, &drd);
			delta(p->tx_dropped, q->tx_dropped, &dtd);
			out->valid_net = true;
			out->rx_bps = rate(a, dt);
			out->tx_bps = rate(b, dt);
			out->rx_pps = rate(c, dt);
			out->tx_pps = rate(e, dt);
			out->rx_drop_ps = rate(drd, dt);
			out->tx_drop_ps = rate(dtd, dt);
			out->net_packets = c + e;
			out->net =
			    cap > 0 ? (out->rx_bps > out->tx_bps ? out->rx_bps : out->tx_bps) / cap
			            : 0;
		} else {
			reset = true;
		}
	}

	if (cur->ok_io && prev->ok_io) {
		if (delta(prev->io.read_bytes, cur->io.read_bytes, &a) &&
		    delta(prev->io.write_bytes, cur->io.write_bytes, &b)) {
			out->valid_disk = true;
			out->disk_rd_bps = rate(a, dt);
			out->disk_wr_bps = rate(b, dt);
		} else {
			reset = true;
		}
	}
	if (reset && out->status == VM_OK) {
		out->status = VM_DEGRADED;
		snprintf(out->problem, sizeof(out->problem),
		         "a counter went back (wrap or reset); its rate is skipped this interval");
	}
}

void sampler_charge_io(const struct sampler_opts *o, const struct host_raw *prev,
                       const struct host_raw *cur, struct host_sample *hs, struct vm_sample **vms,
                       int nvms)
{
	double dt = hs->dt_s, overhead_ticks = 0, vm_ticks = 0;
	uint64_t pkts = 0, d;

	hs->io_overhead = 0;
	if (o->io_mode == IO_OVERHEAD_OFF || !hs->valid_cpu || dt <= 0 || o->cpus <= 0)
		return;
	if (o->io_mode == IO_OVERHEAD_SOFTIRQ) {
		if (!delta(prev->stat.all.irq + prev->stat.all.softirq,
		           cur->stat.all.irq + cur->stat.all.softirq, &d))
			return;
		overhead_ticks = (double)d;
	} else {
		/* the seed's rule: all host CPU that no VM process explains */
		for (int i = 0; i < nvms; i++)
			if (vms[i]->valid_cpu)
				vm_ticks += vms[i]->cpu_host * (double)o->hz * dt * o->cpus;
		if (!delta(procfs_cpu_busy(&prev->stat.all), procfs_cpu_busy(&cur->stat.all), &d))
			return;
		overhead_ticks = (double)d - vm_ticks;
		if (overhead_ticks < 0)
			overhead_ticks = 0;
	}
	for (int i = 0; i < nvms; i++)
		if (vms[i]->valid_net)
			pkts += vms[i]->net_packets;
	if (pkts == 0)
		return;
	hs->io_overhead = overhead_ticks / ((double)o->hz * dt * o->cpus);
	for (int i = 0; i < nvms; i++)
		if (vms[i]->valid_net)
			vms[i]->cpu_io_overhead =
			    hs->io_overhead * (double)vms[i]->net_packets / (double)pkts;
}

void sampler_host_from_vms(const struct sampler_opts *o, struct host_sample *hs,
                           struct vm_sample *const *vms, int nvms)
{
	double cpu = 0, mem_mib = 0, rx = 0, tx = 0, cap_net = o->net_mbit * 1e6 / 8.0;

	for (int i = 0; i < nvms; i++) {
		const struct vm_sample *v = vms[i];
		if (v->valid_cpu)
			cpu += v->cpu_host + v->cpu_io_overhead;
		if (v->valid_mem)
			mem_mib += v->rss_mib + v->swap_mib;
		if (v->valid_net) {
			rx += v->rx_bps;
			tx += v->tx_bps;
		}
	}
	hs->valid_cpu = o->cpus > 0;
	hs->cpu = cpu;
	hs->cpu_busy_cores = cpu * o->cpus;
	hs->valid_mem = o->mem_mib > 0;
	hs->mem_total_mib = o->mem_mib;
	hs->mem_used_mib = mem_mib;
	hs->mem_avail_mib = mem_mib < o->mem_mib ? o->mem_mib - mem_mib : 0;
	hs->mem = o->mem_mib > 0 ? mem_mib / o->mem_mib : 0;
	hs->valid_net = cap_net > 0;
	/* the tap counters are the guest's view: its tx is what the host receives */
	hs->net_rx_bps = tx;
	hs->net_tx_bps = rx;
	hs->net = cap_net > 0 ? (rx > tx ? rx : tx) / cap_net : 0;
}

int sampler_find_nics(const char *root, char nics[][SAMPLER_IFNAMSIZ], int max)
{
	char path[512], link[512];
	struct dirent *e;
	int n = 0;
	DIR *d;

	if (util_fmt(path, sizeof(path), "%s/sys/class/net", strcmp(root, "/") ? root : "") < 0)
		return 0;
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		struct stat st;
		if (e->d_name[0] == '.' || strlen(e->d_name) >= SAMPLER_IFNAMSIZ)
			continue;
		/* a physical NIC has a "device" link to the hardware behind it;
		 * virtual ones (lo, bridges, taps, veths) have none */
		if (util_fmt(link, sizeof(link), "%s/%s/device", path, e->d_name) < 0)
			continue;
		if (lstat(link, &st) < 0)
			continue;
		snprintf(nics[n++], SAMPLER_IFNAMSIZ, "%s", e->d_name);
	}
	closedir(d);
	return n;
}

double sampler_nic_speed(const char *root, char nics[][SAMPLER_IFNAMSIZ], int n)
{
	double sum = 0;
	char rel[128], buf[64];
	size_t len;

	for (int i = 0; i < n; i++) {
		int64_t v;
		snprintf(rel, sizeof(rel), "/sys/class/net/%s/speed", nics[i]);
		if (util_read_file(root, rel, buf, sizeof(buf), &len) < 0 ||
		    procfs_parse_i64(buf, len, &v) < 0 || v <= 0)
			continue;
		sum += (double)v;
	}
	return sum;
}
