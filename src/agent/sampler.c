#include "agent/sampler.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/rtnl.h"
#include "common/log.h"
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

/* src into dst[cap], cut to fit (snprintf("%s") without the printf) */
static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
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

static void pid_files_close(struct sampler_cache *c, struct sampler_pid_files *f)
{
	if (f->ti_slot >= 0 && c->ti)
		taskiter_unwatch(c->ti, f->pid, f->ti_slot);
	f->ti_slot = -1;
	close_fd(&f->fd_stat);
	close_fd(&f->fd_statm);
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
		pid_files_close(c, &c->pids[i]);
	taskiter_free(c->ti);
	rtnl_free(c->nl);
	free(c->pids);
	free(c->buf);
	free(c->seen);
	sampler_cache_init(c);
}

void sampler_cache_sweep(struct sampler_cache *c)
{
	for (int i = 0; i < c->npids;) {
		if (!c->pids[i].used) {
			pid_files_close(c, &c->pids[i]);
			c->pids[i] = c->pids[--c->npids];
		} else {
			c->pids[i++].used = false;
		}
	}
	c->cursor = 0;
}

/* The kernel's own interfaces for what the files under root say: only when
 * root is the live system, and only for a long-running reader (the cache
 * keeps what they need). */
static bool live(const struct sampler_opts *o)
{
	return o->cache && strcmp(o->root, "/") == 0;
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
		f->fd_stat = f->fd_statm = f->fd_io = f->fd_status = -1;
		f->ti_slot = -1;
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

	if (live(o) && !o->cache->nl_off) {
		struct sampler_cache *c = o->cache;
		if (!c->nl)
			c->nl = rtnl_new();
		rc = c->nl ? rtnl_read(c->nl, tab, max) : -ENOMEM;
		if (rc >= 0 || rc == -E2BIG) {
			c->nl_fails = 0;
			return rc;
		}
		/* no rtnetlink stats here (kernel < 4.7, a sandbox): the text */
		if (++c->nl_fails >= 3)
			c->nl_off = true;
	}

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

/* The first want bytes of a kept descriptor's file, in one read (a file cut
 * on purpose: its last, cut line is not parsed). */
static int pread_head(int *fd, char *buf, size_t want, size_t *len)
{
	ssize_t n;

	do
		n = pread(*fd, buf, want, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		int rc = n < 0 ? -errno : -ENODATA;
		close_fd(fd);
		return rc;
	}
	*len = (size_t)n;
	return 0;
}

/* How much of /proc/vmstat holds the counters procfs_parse_vmstat() reads:
 * to the end of the last of their lines, plus 512 bytes for the numbers
 * before them to grow; 0 (read all) when a line is not found. */
static size_t vmstat_needed(const char *buf, size_t len, size_t max)
{
	static const char *const keys[] = {"\npswpin ", "\npswpout ", "\npgmajfault "};
	size_t end = 0;

	for (int i = 0; i < 3; i++) {
		const char *k = memmem(buf, len, keys[i], strlen(keys[i]));
		const char *nl = k ? memchr(k + 1, '\n', len - (size_t)(k + 1 - buf)) : NULL;
		if (!nl)
			return 0;
		if ((size_t)(nl + 1 - buf) > end)
			end = (size_t)(nl + 1 - buf);
	}
	return end + 512 < max ? end + 512 : 0;
}

void sampler_read_host(const struct sampler_opts *o, const struct netdev_entry *tab, int ntab,
                       struct host_raw *out)
{
	static const char *const psi_files[] = {"/proc/pressure/cpu", "/proc/pressure/memory",
	                                        "/proc/pressure/io"};
	struct sampler_cache *c = o->cache;
	size_t len, cap, want;
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
	if (c)
		c->no_swap = rc == 0 && out->mem.swap_free >= out->mem.swap_total;
	if (rc)
		note(out->err, sizeof(out->err), "%s: %s", "/proc/meminfo", rc);

	/* vmstat prints line by line as it is read, and the three counters come
	 * half way: read up to them, as far as the last full read put them
	 * (with room for longer numbers); a read cut before one of them reads
	 * the whole file again */
	want = c && c->vmstat_len && c->fd_vmstat >= 0 ? c->vmstat_len : cap;
	rc = want < cap ? pread_head(&c->fd_vmstat, buf, want, &len)
	                : read_at(o, c ? &c->fd_vmstat : NULL, "/proc/vmstat", buf, cap, &len);
	if (rc == 0)
		rc = procfs_parse_vmstat(buf, len, &out->vmstat);
	if (rc == -EINVAL && want < cap) {
		rc = read_at(o, &c->fd_vmstat, "/proc/vmstat", buf, cap, &len);
		if (rc == 0)
			rc = procfs_parse_vmstat(buf, len, &out->vmstat);
		want = cap;
	}
	if (rc == 0 && c && want == cap)
		c->vmstat_len = vmstat_needed(buf, len, cap - 1);
	out->ok_vmstat = rc == 0;
	if (rc)
		note(out->err, sizeof(out->err), "%s: %s", "/proc/vmstat", rc);

	if (live(o) && c->psi_ok && out->mono_ns - c->psi_at_ns < SAMPLER_PSI_PERIOD_NS) {
		/* the kernel refreshes the averages every 2 s: as last read */
		out->has_psi = true;
		out->psi_cpu = c->psi[0];
		out->psi_mem = c->psi[1];
		out->psi_io = c->psi[2];
		goto psi_done;
	}
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
	if (live(o)) {
		c->psi_ok = out->has_psi;
		c->psi_at_ns = out->mono_ns;
		c->psi[0] = out->psi_cpu;
		c->psi[1] = out->psi_mem;
		c->psi[2] = out->psi_io;
	}
psi_done:
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

static int seen_cmp(const void *a, const void *b)
{
	const struct sampler_proc_seen *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

/* The VM pid a process serves from its comm "vhost-<pid>", 0 for any other
 * process, -1 when its comm cannot be read (it has exited). */
static int vhost_owner(int dirfd, const char *name)
{
	char rel[64], comm[64];
	int64_t owner;
	ssize_t n;
	int fd;

	snprintf(rel, sizeof(rel), "%s/comm", name);
	fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	if (strncmp(comm, "vhost-", 6) != 0 || !util_parse_i64(comm + 6, &owner) || owner <= 0 ||
	    owner > INT32_MAX)
		return 0;
	return (int)owner;
}

void sampler_scan_vhost(const struct sampler_opts *o, struct vhost_map *map)
{
	struct sampler_cache *c = o->cache;
	struct sampler_proc_seen *now = NULL, *f;
	int nnow = 0, capnow = 0;
	bool sorted = true;
	char path[512];
	struct dirent *e;
	DIR *d;
	/* a process whose /proc directory has the inode number it had last time
	 * is the same process: /proc numbers a directory afresh (get_next_ino)
	 * each time it makes one, and drops a process's directory when the
	 * process is reaped, so a new process under a reused pid shows a new
	 * number (and one pushed out of the dentry cache is only read again).
	 * Its comm, fixed when a vhost thread is made, needs no new read. */
	bool reuse = c && c->nseen && c->scans % SAMPLER_VHOST_REREAD != 0;

	map->n = 0;
	if (c)
		c->scans++;
	if (util_fmt(path, sizeof(path), "%s/proc", strcmp(o->root, "/") ? o->root : "") < 0)
		return;
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d))) {
		struct sampler_proc_seen key;
		int64_t pid;
		int owner = -1;

		if (!all_digits(e->d_name) || !util_parse_i64(e->d_name, &pid) || pid > INT32_MAX)
			continue;
		key.pid = (int)pid;
		key.ino = (uint64_t)e->d_ino;
		if (reuse) {
			f = bsearch(&key, c->seen, (size_t)c->nseen, sizeof(key), seen_cmp);
			if (f && f->ino == key.ino)
				owner = f->owner;
		}
		if (owner < 0)
			owner = vhost_owner(dirfd(d), e->d_name);
		if (owner < 0)
			continue;
		key.owner = owner;
		if (owner > 0 && map->n < (int)(sizeof(map->e) / sizeof(map->e[0]))) {
			map->e[map->n].owner = owner;
			map->e[map->n].tid = key.pid;
			map->n++;
		}
		if (!c)
			continue;
		if (nnow == capnow) {
			int cap = capnow ? capnow * 2 : 512;
			struct sampler_proc_seen *nn = realloc(now, sizeof(*nn) * (size_t)cap);
			if (!nn)
				continue; /* only its comm is read again next time */
			now = nn;
			capnow = cap;
		}
		if (nnow && now[nnow - 1].pid > key.pid)
			sorted = false;
		now[nnow++] = key;
	}
	closedir(d);
	if (!c)
		return;
	/* readdir gives /proc in pid order; another order is sorted here */
	if (!sorted)
		qsort(now, (size_t)nnow, sizeof(*now), seen_cmp);
	free(c->seen);
	c->seen = now;
	c->nseen = nnow;
}

static int read_pid_file(const struct sampler_opts *o, int pid, const char *name, int *slot,
                         char *buf, size_t cap, size_t *len)
{
	char rel[64];

	if (slot && *slot >= 0) /* open: no path needed */
		return util_pread_file(slot, o->root, "", buf, cap, len);
	snprintf(rel, sizeof(rel), "/proc/%d/%s", pid, name);
	return read_at(o, slot, rel, buf, cap, len);
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* What the pass saves: the CPU clock and io of every watched process. */
static uint64_t time_proc_reads(const struct sampler_opts *o, int *n)
{
	struct sampler_cache *c = o->cache;
	struct procfs_pid_io io;
	struct timespec ts;
	char buf[1024];
	uint64_t t0 = thread_cpu_ns();
	size_t len;

	*n = 0;
	for (int i = 0; i < c->npids; i++) {
		struct sampler_pid_files *pf = &c->pids[i];
		if (pf->fd_statm < 0 || pf->ti_slot < 0)
			continue;
		(*n)++;
		if (clock_gettime(pf->clock, &ts) == 0 &&
		    read_pid_file(o, pf->pid, "io", &pf->fd_io, buf, sizeof(buf), &len) == 0)
			procfs_parse_pid_io(buf, len, &io);
	}
	return thread_cpu_ns() - t0;
}

static int watched(const struct sampler_cache *c)
{
	int n = 0;

	for (int i = 0; i < c->npids; i++)
		n += c->pids[i].fd_statm >= 0 && c->pids[i].ti_slot >= 0;
	return n;
}

static void reader_decide(struct sampler_cache *c, int n)
{
	bool use = c->ti_cost_pass < c->ti_cost_proc;

	if (use != c->ti_use || c->ti_decisions == 0)
		log_info("VM CPU time and I/O: %s (a BPF pass %.0f us, the /proc reads of %d "
		         "process(es) %.0f us)",
		         use ? "the BPF pass" : "/proc", (double)c->ti_cost_pass / 1000.0, n,
		         (double)c->ti_cost_proc / 1000.0);
	c->ti_use = use;
	c->ti_decisions++;
	c->ti_since = 0;
	c->ti_nwatch = n;
}

void sampler_read_tasks(const struct sampler_opts *o)
{
	struct sampler_cache *c = o->cache;
	uint64_t t0 = 0, pass = 0;
	int rc = 0, n;

	if (!c || !c->ti)
		return;
	c->ti_ok = false;
	if (!c->ti_forced && c->ti_calib == 0) {
		n = watched(c);
		if (n == 0) {
			/* nothing to read: no passes (VMs that come are timed) */
			c->ti_use = false;
			c->ti_nwatch = 0;
		} else if (c->ti_decisions == 0 || c->ti_nwatch == 0 ||
		           c->ti_since >= SAMPLER_READER_RECHECK ||
		           abs(n - c->ti_nwatch) > (c->ti_nwatch / 4 > 2 ? c->ti_nwatch / 4 : 2)) {
			c->ti_calib = SAMPLER_READER_ROUND;
			c->ti_cost_pass = c->ti_cost_proc = UINT64_MAX;
		}
	}
	c->ti_since++;
	if (c->ti_forced || c->ti_use || c->ti_calib) {
		if (c->ti_calib)
			t0 = thread_cpu_ns();
		rc = taskiter_run(c->ti);
		if (c->ti_calib)
			pass = thread_cpu_ns() - t0;
		c->ti_mono_ns = mono_ns();
		/* a timed pass serves the VMs only when it is the reader in use:
		 * no switching back and forth while both are timed */
		c->ti_ok = rc == 0 && (c->ti_forced || c->ti_use);
		c->ti_fails = rc ? c->ti_fails + 1 : 0;
	}
	if (c->ti_fails >= 3) {
		log_warn(
		    "the BPF task reader failed 3 times in a row (%s): VMs are read from /proc "
		    "from now on",
		    strerror(-rc));
		for (int i = 0; i < c->npids; i++)
			c->pids[i].ti_slot = -1; /* the map goes with the reader */
		taskiter_free(c->ti);
		c->ti = NULL;
		c->ti_ok = false;
		c->ti_calib = 0;
		return;
	}
	if (c->ti_calib && rc == 0) {
		uint64_t proc = time_proc_reads(o, &n);
		if (pass < c->ti_cost_pass)
			c->ti_cost_pass = pass;
		if (proc < c->ti_cost_proc)
			c->ti_cost_proc = proc;
		if (--c->ti_calib == 0)
			reader_decide(c, n);
	}
}

static uint64_t ticks_ns(uint64_t ticks, long hz)
{
	uint64_t h = hz > 0 ? (uint64_t)hz : 100;

	return ticks / h * 1000000000u + ticks % h * 1000000000u / h;
}

/* ns in whole clock ticks, as /proc/<pid>/stat would round them */
static uint64_t ns_ticks(uint64_t ns, long hz)
{
	uint64_t h = hz > 0 ? (uint64_t)hz : 100;

	return ns / 1000000000u * h + ns % 1000000000u * h / 1000000000u;
}

/* CPU time, start time and RSS from /proc/<pid>/stat. */
static int read_proc_stat(const struct sampler_opts *o, int pid, struct sampler_pid_files *pf,
                          char *buf, size_t cap, struct vm_raw *out, const char **what)
{
	struct procfs_pid_stat st;
	size_t len;
	int rc;

	*what = "stat";
	rc = read_pid_file(o, pid, "stat", pf ? &pf->fd_stat : NULL, buf, cap, &len);
	if (rc == 0)
		rc = procfs_parse_pid_stat(buf, len, &st);
	if (rc)
		return rc;
	out->cpu_ns = ticks_ns(st.utime + st.stime, o->hz);
	out->starttime = st.starttime;
	out->rss_pages = st.rss;
	return 0;
}

/* Whether an I/O counter of the pass is below what was last read of pf. */
static bool pass_went_back(const struct taskiter_acc *a, const struct sampler_pid_files *pf)
{
	const struct procfs_pid_io *io = &pf->io;

	if (!pf->has_io || !(a->flags & TASKITER_HAS_BYTES))
		return false;
	return a->rchar < io->rchar || a->wchar < io->wchar || a->syscr < io->syscr ||
	       a->syscw < io->syscw || a->read_bytes < io->read_bytes ||
	       a->write_bytes < io->write_bytes ||
	       a->cancelled_write_bytes < io->cancelled_write_bytes;
}

/* The same from the live system at a fifth of the cost: stat prints 52
 * fields and sums every thread's times for it; the process CPU clock sums
 * the same run time (that stat's utime+stime are scaled to) with nothing to
 * print, in ns, and statm prints 7 numbers. stat is read once per process,
 * for its start time. With the task reader, its pass of this sample gives the
 * run time and the I/O counters (out->ok_io) instead of the clock and the io
 * file. statm stays open and is read last: a descriptor of /proc/<pid>
 * belongs to that process, so a read that works means the pid was still its
 * own when the clock was read or the pass made. */
static int read_proc_live(const struct sampler_opts *o, int pid, struct sampler_pid_files *pf,
                          char *buf, size_t cap, struct vm_raw *out, const char **what)
{
	struct sampler_cache *c = o->cache;
	const struct taskiter_acc *acc = NULL;
	struct procfs_pid_statm sm;
	struct procfs_pid_stat st;
	struct timespec ts;
	uint64_t cpu_ns;
	size_t len;
	int rc;

	if (pf->fd_statm < 0) {
		/* met now: statm first, so the reads below are of its process */
		*what = "statm";
		rc = read_pid_file(o, pid, "statm", &pf->fd_statm, buf, cap, &len);
		if (rc)
			return rc;
		*what = "stat";
		rc = read_pid_file(o, pid, "stat", NULL, buf, cap, &len);
		if (rc == 0)
			rc = procfs_parse_pid_stat(buf, len, &st);
		if (rc == 0 && clock_getcpuclockid(pid, &pf->clock) != 0)
			rc = -ESRCH;
		if (rc) {
			close(pf->fd_statm);
			pf->fd_statm = -1;
			return rc;
		}
		pf->starttime = st.starttime;
		pf->cpu_ns = 0;
		pf->has_io = false;
		/* in the task reader's passes from the next sample on */
		if (c->ti && pf->ti_slot < 0)
			pf->ti_slot = taskiter_watch(c->ti, pid);
	} else if (c->ti && c->ti_ok && pf->ti_slot >= 0) {
		acc = taskiter_get(c->ti, pf->ti_slot);
		/* found, leader and all (else: the clock says what became of it),
		 * and no counter lower than last read: the pass takes no lock, so a
		 * thread that exits while it runs can be missed (its counts moved to
		 * the process's totals after those were read); /proc then */
		if (acc && (!(acc->threads && (acc->flags & TASKITER_HAS_LEADER)) ||
		            acc->runtime_ns < pf->cpu_ns || pass_went_back(acc, pf)))
			acc = NULL;
	}
	*what = "statm";
	if (acc) {
		out->mono_ns =
		    c->ti_mono_ns; /* the counters' time: rates over the pass's interval */
		cpu_ns = acc->runtime_ns;
		if (acc->flags & TASKITER_HAS_BYTES) {
			out->io.rchar = acc->rchar;
			out->io.wchar = acc->wchar;
			out->io.syscr = acc->syscr;
			out->io.syscw = acc->syscw;
			out->io.read_bytes = acc->read_bytes;
			out->io.write_bytes = acc->write_bytes;
			out->io.cancelled_write_bytes = acc->cancelled_write_bytes;
			out->ok_io = true;
		}
	} else if (clock_gettime(pf->clock, &ts) < 0) {
		return -ESRCH; /* EINVAL: no such process (any more) */
	} else {
		cpu_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	}
	rc = read_pid_file(o, pid, "statm", &pf->fd_statm, buf, cap, &len);
	if (rc == 0)
		rc = procfs_parse_pid_statm(buf, len, &sm);
	if (rc) {
		out->ok_io = false;
		return rc;
	}
	/* the clock adds the slice a thread is running now, the pass does not:
	 * a sample read the other way than the last must not go back */
	if (cpu_ns < pf->cpu_ns)
		cpu_ns = pf->cpu_ns;
	pf->cpu_ns = cpu_ns;
	out->cpu_ns = cpu_ns;
	out->starttime = pf->starttime;
	out->rss_pages = sm.resident > INT64_MAX ? INT64_MAX : (int64_t)sm.resident;
	return 0;
}

void sampler_read_vm(const struct sampler_opts *o, const struct vm_desc *d,
                     const struct vhost_map *vh, const struct netdev_entry *tab, int ntab,
                     struct vm_raw *out)
{
	struct sampler_pid_files *pf;
	const char *what = "stat";
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
	rc = pf && live(o) ? read_proc_live(o, d->pid, pf, buf, sizeof(buf), out, &what)
	                   : read_proc_stat(o, d->pid, pf, buf, sizeof(buf), out, &what);
	if (rc == -ENODATA)
		rc = -ESRCH; /* a kept descriptor of an exited process reads empty */
	out->rc_stat = rc;
	if (rc) {
		snprintf(out->err, sizeof(out->err), "/proc/%d/%s: %s", d->pid, what,
		         strerror(-rc));
		return;
	}
	if (pf && o->cache->no_swap) {
		/* no swap slot is in use on the host, and a page swapped out
		 * holds one: VmSwap is 0, and status, read for it, is not read
		 * (RSS comes from stat or statm) */
		pf->status.vm_swap_kib = 0;
	} else if (!pf || !pf->has_status || pf->reads % SAMPLER_STATUS_EVERY == 0) {
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
		/* VmSwap as last read; RSS fresh from stat or statm */
		out->status = pf->status;
		out->ok_status = true;
		if (out->status.has_vm && out->rss_pages >= 0)
			out->status.vm_rss_kib = (uint64_t)out->rss_pages * (uint64_t)o->page_kib;
	}
	if (pf)
		pf->reads++;
	if (!out->ok_io) { /* not from the task reader */
		rc = read_pid_file(o, d->pid, "io", pf ? &pf->fd_io : NULL, buf, sizeof(buf), &len);
		if (rc == 0)
			rc = procfs_parse_pid_io(buf, len, &out->io);
		out->ok_io = rc == 0;
	}
	if (pf && out->ok_io) {
		pf->io = out->io;
		pf->has_io = true;
	}

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
		const struct netdev_entry *e = NULL;
		/* where the tap was last time: the table keeps its order */
		if (pf && pf->tap_at < ntab && strcmp(tab[pf->tap_at].name, d->tap) == 0)
			e = &tab[pf->tap_at];
		else if ((e = netdev_find(tab, ntab, d->tap)) && pf)
			pf->tap_at = (int)(e - tab);
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
	} else if (cur->rss_pages > 0) {
		out->rss_mib =
		    (double)cur->rss_pages * (double)(o->page_kib ? o->page_kib : 4) / 1024.0;
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
	uint64_t dns, a, b, c, e;
	bool reset = false;

	memset(out, 0, sizeof(*out));
	copy_str(out->problem, sizeof(out->problem), cur->err);
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
	if (prev && prev->rc_stat == 0 && prev->starttime != cur->starttime) {
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
	out->cpu_ticks = ns_ticks(cur->cpu_ns, o->hz);
	for (int i = 0; i < cur->nvhost; i++)
		out->cpu_ticks += cur->vhost[i].ticks;
	if (!prev || prev->rc_stat != 0 || dt <= 0) {
		out->status = VM_STARTING;
		return;
	}

	out->status = VM_OK;
	if (delta(prev->cpu_ns, cur->cpu_ns, &dns)) {
		/* the process in ns, its vhost threads in clock ticks */
		double cpu_s = (double)dns / 1e9 + (double)vhost_ticks_delta(prev, cur) /
		                                       (double)(o->hz > 0 ? o->hz : 100);
		out->valid_cpu = true;
		out->vhost_threads = cur->nvhost;
		out->cpu = cpu_s / (dt * vcpus);
		out->cpu_host = o->cpus > 0 ? cpu_s / (dt * o->cpus) : 0;
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
