/* sampler.h - reads the host's and its VMs' counters (from a configurable
 * root, "/" in production, a fixture tree in tests) and turns two readings
 * into rates and utilisations.
 *
 * Reading (sampler_read_*) does the I/O; the deltas (sampler_*_delta) are
 * plain arithmetic on two readings, so they are tested with fixture values.
 * Utilisations are fractions of a capacity (1.0 = all of it).
 */
#ifndef LE_AGENT_SAMPLER_H
#define LE_AGENT_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "agent/balloon.h"
#include "agent/netdev.h"
#include "agent/procfs.h"
#include "agent/taskiter.h"

struct rtnl;

#define SAMPLER_MAX_NICS  16
#define SAMPLER_MAX_VHOST 16
#define SAMPLER_IFNAMSIZ  16

enum io_overhead_mode { IO_OVERHEAD_SOFTIRQ, IO_OVERHEAD_UNEXPLAINED, IO_OVERHEAD_OFF };

/* What a long-running agent keeps between samples (sampler_opts.cache):
 *
 * - descriptors of /proc files, re-read with pread at 0 instead of open,
 *   read, close (a third of the cost), and the last /proc/<pid>/status of
 *   each process, costly to render and read only every SAMPLER_STATUS_EVERY
 *   samples (VmSwap; RSS is fresh each time), and not at all while the host
 *   has no swap in use (then every VmSwap is 0);
 * - with root "/", the kernel's cheaper interfaces for the same figures: a
 *   VM's CPU time from its process CPU clock (clock_gettime; /proc/<pid>/stat
 *   only once, for the start time), its RSS from statm, and the interface
 *   counters from rtnetlink (see netdev.h) instead of /proc/net/dev;
 * - the last /proc scan for vhost threads (sampler_scan_vhost). */
#define SAMPLER_STATUS_EVERY 10
#define SAMPLER_VHOST_REREAD 30 /* every this many scans, every comm is read again */
struct sampler_pid_files {
	int pid;
	int fd_stat, fd_statm, fd_io, fd_status;
	clockid_t clock;    /* its CPU clock, with fd_statm (root "/") */
	uint64_t starttime; /* read when fd_statm was opened */
	int tap_at;         /* where its tap was in the last netdev table */
	unsigned reads;
	bool used; /* read during this sample */
	bool has_status;
	struct procfs_pid_status status;
	int ti_slot;     /* its slot in the task reader, or -1 */
	uint64_t cpu_ns; /* the highest CPU time read (readers may differ by a slice) */
	bool has_io;
	struct procfs_pid_io io; /* its I/O counters as last read */
};
/* A process the last vhost scan saw: its /proc directory's inode number and
 * the VM pid it serves (0 when it is no vhost thread). */
struct sampler_proc_seen {
	int pid, owner;
	uint64_t ino;
};
#define SAMPLER_PSI_PERIOD_NS INT64_C(2000000000) /* the kernel's PSI_FREQ */
struct sampler_cache {
	int fd_stat, fd_meminfo, fd_vmstat, fd_psi[3], fd_netdev;
	char *buf; /* host file buffer, grows */
	size_t cap;
	struct sampler_pid_files *pids;
	int npids, cappids, cursor;
	/* the last sampler_read_host() saw no swap in use: no process has
	 * anything swapped out, and status (for VmSwap) need not be read */
	bool no_swap;
	size_t vmstat_len;              /* what of /proc/vmstat to read; 0: all of it */
	struct sampler_proc_seen *seen; /* sorted by pid */
	int nseen;
	unsigned scans;
	struct rtnl *nl; /* the interface counters, root "/" */
	/* the pressure averages as last read (root "/"): the kernel computes
	 * them every 2 s, so they are read again only SAMPLER_PSI_PERIOD_NS
	 * after */
	bool psi_ok;
	int64_t psi_at_ns;
	struct procfs_psi psi[3];
	bool nl_off; /* rtnetlink failed 3 times in a row: /proc/net/dev */
	int nl_fails;
	/* the BPF task reader (root "/"; the owner opens it): CPU time and I/O
	 * counters of every watched process in one pass per sample. Its cost
	 * grows with the host's tasks, the /proc reads' with its VMs: unless
	 * forced, both are timed now and then (sampler_read_tasks) and the
	 * cheaper one is used */
	struct taskiter *ti;
	bool ti_forced;     /* monitor.bpf = on: always the pass, no timing */
	bool ti_use;        /* the pass is the cheaper (as last timed) */
	bool ti_ok;         /* this sample's VMs come from its pass */
	int64_t ti_mono_ns; /* when the last pass ran (CLOCK_MONOTONIC) */
	int ti_fails;
	int ti_calib;          /* timed samples left in this round; 0: none under way */
	unsigned ti_since;     /* samples since the last decision */
	int ti_nwatch;         /* watched processes at the last decision */
	uint64_t ti_cost_pass; /* the round's cheapest pass, ns of thread CPU */
	uint64_t ti_cost_proc; /* the round's cheapest /proc reads of the same VMs */
	unsigned ti_decisions; /* rounds decided */
};
void sampler_cache_init(struct sampler_cache *c);
void sampler_cache_release(struct sampler_cache *c);
/* Closes the descriptors of processes not read since the last sweep. */
void sampler_cache_sweep(struct sampler_cache *c);
/* The task reader's pass for this sample, before the VMs are read (a
 * no-op without one). Unless forced, the pass and the /proc reads it saves
 * (the CPU clock and io of every watched process) are both timed in
 * SAMPLER_READER_ROUND samples in a row, every SAMPLER_READER_RECHECK
 * samples and when the number of watched processes changed by a quarter;
 * the cheaper is used until the next round, and a change is logged. After
 * 3 failed passes in a row the reader is closed, saying why, and the VMs
 * are read from /proc. */
#define SAMPLER_READER_ROUND   3
#define SAMPLER_READER_RECHECK 300
struct sampler_opts;
void sampler_read_tasks(const struct sampler_opts *o);

struct sampler_opts {
	char root[256];
	double cpus;     /* host CPU capacity, cores */
	double mem_mib;  /* host memory capacity */
	double net_mbit; /* host NIC capacity, Mbit/s (full duplex: per direction) */
	char nics[SAMPLER_MAX_NICS][SAMPLER_IFNAMSIZ];
	int nnics;
	enum io_overhead_mode io_mode;
	long hz;                     /* clock ticks per second (sysconf(_SC_CLK_TCK)) */
	long page_kib;               /* page size in KiB */
	struct sampler_cache *cache; /* NULL: open and close every file */
};

/* Counters that move together at one instant. */
struct net_counters {
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets, rx_dropped, tx_dropped;
};

struct host_raw {
	int64_t mono_ns;
	bool ok_stat, ok_mem, ok_vmstat, ok_nics;
	struct procfs_stat stat;
	struct procfs_meminfo mem;
	struct procfs_vmstat vmstat;
	struct net_counters nic; /* sum over the configured physical NICs */
	bool has_psi;
	struct procfs_psi psi_cpu, psi_mem, psi_io;
	char err[128]; /* first read/parse problem, "" when none */
};

struct host_sample {
	int64_t ts_ms;
	uint64_t seq;
	double dt_s;
	bool valid_cpu, valid_mem, valid_net;
	double cpu, cpu_iowait, cpu_steal, cpu_irq; /* fractions of all CPUs */
	double cpu_busy_cores;
	double mem, mem_total_mib, mem_avail_mib, mem_used_mib;
	double swap_total_mib, swap_used_mib;
	double swap_in_ps, swap_out_ps, majflt_ps; /* pages or faults per second */
	double net, net_rx_bps, net_tx_bps;        /* bytes per second */
	bool has_psi;
	double psi_cpu_some, psi_mem_some, psi_mem_full, psi_io_some, psi_io_full; /* avg10, % */
	double io_overhead; /* host CPU charged to VMs' I/O, fraction of the host */
	char problem[128];
};

/* What the registry says about one VM. */
struct vm_desc {
	char id[65];
	int pid;
	char tap[64];          /* as the registry says; a name of 16+ chars matches no interface */
	double mem_mib;        /* configured; 0 when unknown */
	double vcpus;          /* configured; 0 when unknown (then: 1) */
	char guest_stats[256]; /* path of a guest-stats JSON file, or "" */
};

struct vm_raw {
	int64_t mono_ns;
	int rc_stat;        /* 0, -ENOENT or -ESRCH (process gone), -EINVAL (garbled)... */
	uint64_t cpu_ns;    /* CPU time of the process: all its threads, live and exited */
	uint64_t starttime; /* clock ticks after boot: a reused pid shows another */
	int64_t rss_pages;
	bool ok_status;
	struct procfs_pid_status status;
	bool ok_io;
	struct procfs_pid_io io;
	bool ok_tap;
	struct net_counters tap;
	int nvhost;
	struct {
		int tid;
		uint64_t ticks;
	} vhost[SAMPLER_MAX_VHOST];
	bool ok_guest;
	struct balloon_stats guest;
	char err[128];
};

enum vm_status {
	VM_OK,         /* all figures valid */
	VM_STARTING,   /* first reading: no rates yet */
	VM_GONE,       /* the process exited, or its pid now belongs to another */
	VM_NO_PID,     /* the registry gives no pid */
	VM_PROC_ERROR, /* its /proc files could not be read or parsed */
	VM_DEGRADED,   /* CPU valid, but the tap is missing or a counter went back */
};
const char *vm_status_name(enum vm_status s);

struct vm_sample {
	int64_t ts_ms;
	uint64_t seq;
	enum vm_status status;
	char problem[128];
	bool valid_cpu, valid_mem, valid_net, valid_disk;
	double cpu;             /* of its vCPUs */
	double cpu_host;        /* of the host's CPUs (process, threads, vhost) */
	double cpu_io_overhead; /* host CPU charged to it for packet work, of the host */
	int vhost_threads;
	uint64_t net_packets; /* packets this interval, for the overhead share */
	double mem, mem_mib, rss_mib, swap_mib;
	bool gray; /* mem comes from the guest's own figures */
	double guest_used_mib, guest_avail_mib, guest_swap_in_bps, guest_swap_out_bps,
	    guest_majflt_ps;
	double net, rx_bps, tx_bps, rx_pps, tx_pps, rx_drop_ps, tx_drop_ps;
	bool has_tap; /* the tap's own counters, guest view (rx = to the guest) */
	struct net_counters tap;
	double disk_rd_bps, disk_wr_bps;
	bool has_io; /* /proc/<pid>/io counters */
	uint64_t disk_rd_bytes, disk_wr_bytes;
	uint64_t cpu_ticks; /* process + threads + vhost, clock ticks */
};

/* The interface counters of the namespace: <root>/proc/net/dev. Returns the
 * number of entries (up to max) or a negative errno; used by both readers. */
int sampler_read_netdev(const struct sampler_opts *o, struct netdev_entry *tab, int max);

/* Reads /proc/stat, meminfo, vmstat, pressure and sums the physical NICs'
 * counters from tab (ntab < 0: the netdev read failed). A file that is
 * missing or garbled clears its ok_ flag and notes err; never fails. */
void sampler_read_host(const struct sampler_opts *o, const struct netdev_entry *tab, int ntab,
                       struct host_raw *out);
void sampler_host_delta(const struct sampler_opts *o, const struct host_raw *prev,
                        const struct host_raw *cur, struct host_sample *out);

/* vhost worker threads: scans <root>/proc/<n>/comm for "vhost-<pid>" and
 * records the tids that serve each VM pid. With a cache, a process whose
 * /proc directory keeps its inode number is not read again (its comm is
 * kept), and every SAMPLER_VHOST_REREAD-th scan reads them all. */
struct vhost_map {
	int n;
	struct {
		int owner;
		int tid;
	} e[256];
};
void sampler_scan_vhost(const struct sampler_opts *o, struct vhost_map *map);

void sampler_read_vm(const struct sampler_opts *o, const struct vm_desc *d,
                     const struct vhost_map *vh, const struct netdev_entry *tab, int ntab,
                     struct vm_raw *out);
/* prev may be NULL (first reading). */
void sampler_vm_delta(const struct sampler_opts *o, const struct vm_desc *d,
                      const struct vm_raw *prev, const struct vm_raw *cur, struct vm_sample *out);

/* Charges the host's I/O overhead ticks to VMs by their share of packets:
 * sets cpu_io_overhead on each valid VM sample and hs->io_overhead. */
void sampler_charge_io(const struct sampler_opts *o, const struct host_raw *prev,
                       const struct host_raw *cur, struct host_sample *hs, struct vm_sample **vms,
                       int nvms);

/* Replaces the host's CPU, memory and network figures with the sums of its
 * VMs' (process CPU and its I/O overhead share, QEMU RSS plus swap, tap
 * traffic), against the host's configured capacities: the view for hosts
 * that share one kernel with others (network-namespace hosts in tests and
 * the demo), whose /proc/stat and /proc/meminfo describe the whole machine.
 * Pressure, iowait and swap rates stay the kernel's. */
void sampler_host_from_vms(const struct sampler_opts *o, struct host_sample *hs,
                           struct vm_sample *const *vms, int nvms);

/* The physical NICs of the host: entries of <root>/sys/class/net with a
 * "device" link (not lo, bridges, taps, veths). */
int sampler_find_nics(const char *root, char nics[][SAMPLER_IFNAMSIZ], int max);
/* Sum of the NICs' speeds in Mbit/s; 0 when none is known. */
double sampler_nic_speed(const char *root, char nics[][SAMPLER_IFNAMSIZ], int n);

#endif
