/* test_sampler.c - the sampler's arithmetic on hand-built readings, and its
 * readers on the fixture tree tests/fixtures/root1.
 *
 * The delta tests build two readings exactly 2 s apart with counters chosen
 * so that every rate and utilisation is a round number; cases[] mutate a
 * base pair and list every expected figure as a literal.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/sampler.h"

/* The expected figures are a base plus the fields a case changes. */
#pragma GCC diagnostic ignored "-Woverride-init"

#define ROOT1 "tests/fixtures/root1"
#define S     INT64_C(1000000000)

static void near(double got, double want, const char *what, const char *name)
{
	if (fabs(got - want) > 1e-9 * (fabs(want) > 1 ? fabs(want) : 1))
		fail_msg("%s: %s = %.12g, want %.12g", name, what, got, want);
}

/* ==== sampler_host_delta ==== */

/* hz 100, 2 s, 2 CPUs: 400 ticks of capacity. The base pair spends 300 busy
 * (user 200, system 60, irq 10, softirq 10, steal 20), idle 80, iowait 20;
 * guest time (+50) is inside user and must not count twice. */
#define HOST_MUT(fn, ...)                                                                          \
	static void fn(struct sampler_opts *o, struct host_raw *p, struct host_raw *c)             \
	{                                                                                          \
		__VA_ARGS__;                                                                       \
	}

static void host_base(struct sampler_opts *o, struct host_raw *p, struct host_raw *c)
{
	memset(o, 0, sizeof(*o));
	strcpy(o->root, "/nonexistent");
	o->cpus = 2;
	o->mem_mib = 8192;
	o->net_mbit = 1000; /* 125e6 bytes/s per direction */
	o->hz = 100;
	memset(p, 0, sizeof(*p));
	memset(c, 0, sizeof(*c));
	p->mono_ns = 10 * S;
	c->mono_ns = 12 * S;
	p->ok_stat = c->ok_stat = true;
	p->stat.all = (struct procfs_cpu){1000, 0, 500, 8000, 200, 100, 100, 100, 300, 0};
	c->stat.all = (struct procfs_cpu){1200, 0, 560, 8080, 220, 110, 110, 120, 350, 0};
	p->stat.ncpu = c->stat.ncpu = 2;
	p->ok_mem = c->ok_mem = true;
	/* 8 GiB total, 2 GiB available; 1 GiB swap, 768 MiB free */
	c->mem = (struct procfs_meminfo){8388608, 1048576, 2097152, 0, 0, 1048576, 786432, true};
	p->mem = c->mem;
	p->ok_vmstat = c->ok_vmstat = true;
	p->vmstat = (struct procfs_vmstat){1000, 2000, 300};
	c->vmstat = (struct procfs_vmstat){1100, 2040, 310};
	p->ok_nics = c->ok_nics = true;
	p->nic = (struct net_counters){1000000000, 500000000, 1000, 2000, 0, 0};
	c->nic = (struct net_counters){1125000000, 550000000, 3000, 2500, 0, 0};
	c->has_psi = true;
	c->psi_cpu.some.avg10 = 1.06;
	c->psi_mem.some.avg10 = 2.5;
	c->psi_mem.full.avg10 = 1.25;
	c->psi_mem.has_full = true;
	c->psi_io.some.avg10 = 0.21;
	c->psi_io.full.avg10 = 0.18;
	c->psi_io.has_full = false; /* an io file without a full line */
}

HOST_MUT(m_host_none, (void)0)
HOST_MUT(m_tx_busier, c->nic.rx_bytes = p->nic.rx_bytes + 50000000;
         c->nic.tx_bytes = p->nic.tx_bytes + 200000000)
HOST_MUT(m_nic_back, c->nic.rx_bytes = p->nic.rx_bytes - 1)
HOST_MUT(m_cpu_back, c->stat.all.user = p->stat.all.user - 300)
HOST_MUT(m_prev_no_stat, p->ok_stat = false)
HOST_MUT(m_no_nics, c->ok_nics = false; strcpy(c->err, "NIC eth0 not found"))
HOST_MUT(m_dt0, c->mono_ns = p->mono_ns)
/* a configured capacity below MemTotal */
HOST_MUT(m_mem_cap, o->mem_mib = 4096)
HOST_MUT(m_hz250, o->hz = 250)
HOST_MUT(m_no_link_speed, o->net_mbit = 0)
HOST_MUT(m_swapin_back, c->vmstat.pswpin = 0)
HOST_MUT(m_no_mem, c->ok_mem = false; c->has_psi = false)

struct host_want {
	bool vcpu, vmem, vnet, psi;
	double cpu, iowait, steal, irq, cores;
	double mem, total, avail, used, swap_total, swap_used;
	double swap_in, swap_out, majflt;
	double rx, tx, net;
	double psi_cpu, psi_mem_some, psi_mem_full, psi_io_some, psi_io_full;
	const char *problem;
};

#define HOST_BASE                                                                                  \
	.vcpu = true, .vmem = true, .vnet = true, .psi = true, .cpu = 0.75, .iowait = 0.05,        \
	.steal = 0.05, .irq = 0.05, .cores = 1.5, .mem = 0.75, .total = 8192, .avail = 2048,       \
	.used = 6144, .swap_total = 1024, .swap_used = 256, .swap_in = 50, .swap_out = 20,         \
	.majflt = 5, .rx = 62500000, .tx = 25000000, .net = 0.5, .psi_cpu = 1.06,                  \
	.psi_mem_some = 2.5, .psi_mem_full = 1.25, .psi_io_some = 0.21, .psi_io_full = 0,          \
	.problem = ""

static const struct host_case {
	const char *name;
	void (*mutate)(struct sampler_opts *, struct host_raw *, struct host_raw *);
	struct host_want want;
} host_cases[] = {
    {"host base", m_host_none, {HOST_BASE}},
    {"host tx is the busier direction",
     m_tx_busier,
     {HOST_BASE, .rx = 25000000, .tx = 100000000, .net = 0.8}},
    {"host NIC counter went back",
     m_nic_back,
     {HOST_BASE, .vnet = false, .rx = 0, .tx = 0, .net = 0}},
    {"host CPU counter went back",
     m_cpu_back,
     {HOST_BASE, .vcpu = false, .cpu = 0, .iowait = 0, .steal = 0, .irq = 0, .cores = 0}},
    {"host no previous stat",
     m_prev_no_stat,
     {HOST_BASE, .vcpu = false, .cpu = 0, .iowait = 0, .steal = 0, .irq = 0, .cores = 0}},
    {"host NIC missing",
     m_no_nics,
     {HOST_BASE, .vnet = false, .rx = 0, .tx = 0, .net = 0, .problem = "NIC eth0 not found"}},
    {"host configured memory", m_mem_cap, {HOST_BASE, .mem = 1.5}},
    {"host hz 250", m_hz250, {HOST_BASE, .cores = 0.6}},
    {"host link speed unknown", m_no_link_speed, {HOST_BASE, .net = 0}},
    {"host swap-in counter went back", m_swapin_back, {HOST_BASE, .swap_in = 0}},
    {"host no meminfo, no psi",
     m_no_mem,
     {HOST_BASE, .vmem = false, .psi = false, .mem = 0, .total = 0, .avail = 0, .used = 0,
      .swap_total = 0, .swap_used = 0, .psi_cpu = 0, .psi_mem_some = 0, .psi_mem_full = 0,
      .psi_io_some = 0}},
    {"host no time passed", m_dt0, {.problem = ""}},
};

static void test_host_delta(void **state)
{
	const struct host_case *hc = *state;
	const struct host_want *w = &hc->want;
	struct sampler_opts o;
	struct host_raw p, c;
	struct host_sample s;
	const char *n = hc->name;

	host_base(&o, &p, &c);
	hc->mutate(&o, &p, &c);
	memset(&s, 0xa5, sizeof(s));
	sampler_host_delta(&o, &p, &c, &s);
	assert_int_equal(s.valid_cpu, w->vcpu);
	assert_int_equal(s.valid_mem, w->vmem);
	assert_int_equal(s.valid_net, w->vnet);
	assert_int_equal(s.has_psi, w->psi);
	near(s.cpu, w->cpu, "cpu", n);
	near(s.cpu_iowait, w->iowait, "cpu_iowait", n);
	near(s.cpu_steal, w->steal, "cpu_steal", n);
	near(s.cpu_irq, w->irq, "cpu_irq", n);
	near(s.cpu_busy_cores, w->cores, "cpu_busy_cores", n);
	near(s.mem, w->mem, "mem", n);
	near(s.mem_total_mib, w->total, "mem_total_mib", n);
	near(s.mem_avail_mib, w->avail, "mem_avail_mib", n);
	near(s.mem_used_mib, w->used, "mem_used_mib", n);
	near(s.swap_total_mib, w->swap_total, "swap_total_mib", n);
	near(s.swap_used_mib, w->swap_used, "swap_used_mib", n);
	near(s.swap_in_ps, w->swap_in, "swap_in_ps", n);
	near(s.swap_out_ps, w->swap_out, "swap_out_ps", n);
	near(s.majflt_ps, w->majflt, "majflt_ps", n);
	near(s.net_rx_bps, w->rx, "net_rx_bps", n);
	near(s.net_tx_bps, w->tx, "net_tx_bps", n);
	near(s.net, w->net, "net", n);
	near(s.psi_cpu_some, w->psi_cpu, "psi_cpu_some", n);
	near(s.psi_mem_some, w->psi_mem_some, "psi_mem_some", n);
	near(s.psi_mem_full, w->psi_mem_full, "psi_mem_full", n);
	near(s.psi_io_some, w->psi_io_some, "psi_io_some", n);
	near(s.psi_io_full, w->psi_io_full, "psi_io_full", n);
	assert_string_equal(s.problem, w->problem);
	near(s.dt_s, c.mono_ns == p.mono_ns ? 0 : 2, "dt_s", n);
}

/* ==== sampler_vm_delta ==== */

/* Host: hz 100, 4 CPUs. VM: 2 vCPUs, 1 GiB, tap0. Over 2 s the process
 * spends 0.8 s (80 ticks: 1200 -> 1280 ticks, in ns), vhost thread 77 (in
 * both readings) 40 ticks; thread 78 left and 79 is new: neither counts.
 * 120 ticks = 0.3 of 2 vCPUs, 0.15 of the host. */
#define TICK INT64_C(10000000) /* ns, at hz 100 */
static void vm_base(struct sampler_opts *o, struct vm_desc *d, struct vm_raw *p, struct vm_raw *c)
{
	memset(o, 0, sizeof(*o));
	o->cpus = 4;
	o->mem_mib = 16384;
	o->net_mbit = 1000;
	o->hz = 100;
	memset(d, 0, sizeof(*d));
	strcpy(d->id, "vm1");
	d->pid = 4242;
	strcpy(d->tap, "tap0");
	d->mem_mib = 1024;
	d->vcpus = 2;
	memset(p, 0, sizeof(*p));
	memset(c, 0, sizeof(*c));
	p->mono_ns = 10 * S;
	c->mono_ns = 12 * S;
	p->starttime = c->starttime = 34165;
	p->cpu_ns = 1200 * TICK;
	c->cpu_ns = 1280 * TICK;
	p->rss_pages = c->rss_pages = 1000;
	p->ok_status = c->ok_status = true;
	/* 512 MiB resident, 128 MiB swapped out */
	p->status.vm_rss_kib = c->status.vm_rss_kib = 524288;
	p->status.vm_swap_kib = c->status.vm_swap_kib = 131072;
	p->status.has_vm = c->status.has_vm = true;
	p->ok_io = c->ok_io = true;
	p->io.read_bytes = 1000000;
	p->io.write_bytes = 2000000;
	c->io.read_bytes = 5000000;
	c->io.write_bytes = 12000000;
	p->ok_tap = c->ok_tap = true;
	p->tap = (struct net_counters){100000000, 200000000, 100000, 200000, 10, 20};
	c->tap = (struct net_counters){125000000, 205000000, 120000, 204000, 14, 20};
	p->nvhost = 2;
	p->vhost[0].tid = 77;
	p->vhost[0].ticks = 500;
	p->vhost[1].tid = 78;
	p->vhost[1].ticks = 300;
	c->nvhost = 2;
	c->vhost[0].tid = 79;
	c->vhost[0].ticks = 1000;
	c->vhost[1].tid = 77;
	c->vhost[1].ticks = 540;
}

#define VM_MUT(fn, ...)                                                                            \
	static void fn(struct sampler_opts *o, struct vm_desc *d, struct vm_raw *p,                \
	               struct vm_raw *c)                                                           \
	{                                                                                          \
		__VA_ARGS__;                                                                       \
	}

/* the guest's own figures: 1 GiB total, 256 MiB available */
static void guest(struct vm_raw *r, uint64_t swap_in, uint64_t majflt)
{
	r->ok_guest = true;
	r->guest = (struct balloon_stats){1700000000, 1073741824, 134217728, 268435456, swap_in,
	                                  0,          majflt,     5000,      1048576};
}

VM_MUT(m_vm_none, (void)0)
VM_MUT(m_pid_reused, c->starttime = 99999)
VM_MUT(m_gone, c->rc_stat = -ENOENT; strcpy(c->err, "/proc/4242/stat: No such file or directory"))
VM_MUT(m_esrch, c->rc_stat = -ESRCH)
VM_MUT(m_garbled, c->rc_stat = -EINVAL; strcpy(c->err, "/proc/4242/stat: Invalid argument"))
VM_MUT(m_no_pid, d->pid = 0; c->rc_stat = -ESRCH; strcpy(c->err, "no pid in the registry"))
VM_MUT(m_prev_failed, p->rc_stat = -EINVAL)
VM_MUT(m_dt0_vm, c->mono_ns = p->mono_ns)
VM_MUT(m_tap_missing, c->ok_tap = false; memset(&c->tap, 0, sizeof(c->tap));
       strcpy(c->err, "tap tap0 not found"))
VM_MUT(m_no_tap, d->tap[0] = '\0'; p->ok_tap = c->ok_tap = false;
       memset(&p->tap, 0, sizeof(p->tap)); memset(&c->tap, 0, sizeof(c->tap)))
VM_MUT(m_tap_back, c->tap.tx_packets = 3) /* the tap was re-created */
VM_MUT(m_cpu_back_vm, c->cpu_ns = (10 + 240) * TICK)
/* the live clock counts ns: half a tick more is seen, and cpu_ticks rounds
 * down as /proc/<pid>/stat would */
VM_MUT(m_cpu_ns, c->cpu_ns += TICK / 2)
VM_MUT(m_disk_back, c->io.write_bytes = 0)
VM_MUT(m_no_io, c->ok_io = false; memset(&c->io, 0, sizeof(c->io)))
VM_MUT(m_vcpus0, d->vcpus = 0)
/* no status file: rss from stat, 65536 pages of 4 KiB = 256 MiB */
VM_MUT(m_no_status, c->ok_status = false; memset(&c->status, 0, sizeof(c->status));
       c->rss_pages = 65536)
VM_MUT(m_no_mem_vm, d->mem_mib = 0)
/* the guest refreshed its stats 2 s after the previous reading, like the host */
VM_MUT(m_gray, guest(p, 4096000, 100); guest(c, 12288000, 120); c->guest.last_update += 2)
VM_MUT(m_gray_first, guest(c, 12288000, 120))
VM_MUT(m_gray_na, guest(p, BALLOON_NA, BALLOON_NA); guest(c, BALLOON_NA, BALLOON_NA))
VM_MUT(m_gray_no_avail, guest(p, 0, 0); guest(c, 0, 0); c->guest.available = BALLOON_NA)

struct vm_want {
	enum vm_status status;
	const char *problem;
	bool vcpu, vmem, vnet, vdisk, gray, has_tap, has_io;
	double cpu, cpu_host;
	int vhost_threads;
	uint64_t net_packets, cpu_ticks;
	double mem, mem_mib, rss, swap;
	double g_used, g_avail, g_sin, g_sout, g_maj;
	double net, rx, tx, rx_pps, tx_pps, rx_drop, tx_drop;
	double rd, wr;
};

#define VM_BASE                                                                                    \
	.status = VM_OK, .problem = "", .vcpu = true, .vmem = true, .vnet = true, .vdisk = true,   \
	.gray = false, .has_tap = true, .has_io = true, .cpu = 0.3, .cpu_host = 0.15,              \
	.vhost_threads = 2, .net_packets = 24000, .cpu_ticks = 1040 + 240 + 1000 + 540,            \
	.mem = 0.625, .mem_mib = 1024, .rss = 512, .swap = 128, .net = 0.1, .rx = 12500000,        \
	.tx = 2500000, .rx_pps = 10000, .tx_pps = 2000, .rx_drop = 2, .tx_drop = 0, .rd = 2000000, \
	.wr = 5000000

/* only what is known from one reading */
#define VM_STARTING_WANT                                                                           \
	VM_BASE, .status = VM_STARTING, .vcpu = false, .vnet = false, .vdisk = false, .cpu = 0,    \
	         .cpu_host = 0, .vhost_threads = 0, .net_packets = 0, .net = 0, .rx = 0, .tx = 0,  \
	         .rx_pps = 0, .tx_pps = 0, .rx_drop = 0, .rd = 0, .wr = 0

/* nothing but the status and the problem */
#define VM_NOTHING                                                                                 \
	.vcpu = false, .vmem = false, .vnet = false, .vdisk = false, .has_tap = false,             \
	.has_io = false

#define REWOUND "a counter went back (wrap or reset); its rate is skipped this interval"

static const struct vm_case {
	const char *name;
	void (*mutate)(struct sampler_opts *, struct vm_desc *, struct vm_raw *, struct vm_raw *);
	bool first; /* no previous reading */
	struct vm_want want;
} vm_cases[] = {
    {"vm base", m_vm_none, false, {VM_BASE}},
    {"vm first reading", m_vm_none, true, {VM_STARTING_WANT}},
    {"vm previous reading failed", m_prev_failed, false, {VM_STARTING_WANT}},
    {"vm no time passed", m_dt0_vm, false, {VM_STARTING_WANT}},
    {"vm pid reused",
     m_pid_reused,
     false,
     {.status = VM_GONE, .problem = "process 4242 exited and its pid was reused", VM_NOTHING}},
    {"vm process gone",
     m_gone,
     false,
     {.status = VM_GONE, .problem = "process 4242 has exited", VM_NOTHING}},
    {"vm process gone (ESRCH)",
     m_esrch,
     false,
     {.status = VM_GONE, .problem = "process 4242 has exited", VM_NOTHING}},
    {"vm /proc garbled",
     m_garbled,
     false,
     {.status = VM_PROC_ERROR, .problem = "/proc/4242/stat: Invalid argument", VM_NOTHING}},
    {"vm no pid",
     m_no_pid,
     false,
     {.status = VM_NO_PID, .problem = "no pid in the registry", VM_NOTHING}},
    {"vm tap missing",
     m_tap_missing,
     false,
     {VM_BASE, .status = VM_DEGRADED, .problem = "tap tap0 not found", .vnet = false,
      .has_tap = false, .net_packets = 0, .net = 0, .rx = 0, .tx = 0, .rx_pps = 0, .tx_pps = 0,
      .rx_drop = 0}},
    {"vm without a tap",
     m_no_tap,
     false,
     {VM_BASE, .vnet = false, .has_tap = false, .net_packets = 0, .net = 0, .rx = 0, .tx = 0,
      .rx_pps = 0, .tx_pps = 0, .rx_drop = 0}},
    {"vm tap counter went back",
     m_tap_back,
     false,
     {VM_BASE, .status = VM_DEGRADED, .problem = REWOUND, .vnet = false, .net_packets = 0, .net = 0,
      .rx = 0, .tx = 0, .rx_pps = 0, .tx_pps = 0, .rx_drop = 0}},
    {"vm cpu counter went back",
     m_cpu_back_vm,
     false,
     {VM_BASE, .status = VM_DEGRADED, .problem = REWOUND, .vcpu = false, .cpu = 0, .cpu_host = 0,
      .vhost_threads = 0, .cpu_ticks = 10 + 240 + 1000 + 540}},
    {"vm cpu time in ns", m_cpu_ns, false, {VM_BASE, .cpu = 120.5 / 400, .cpu_host = 120.5 / 800}},
    {"vm disk counter went back",
     m_disk_back,
     false,
     {VM_BASE, .status = VM_DEGRADED, .problem = REWOUND, .vdisk = false, .rd = 0, .wr = 0}},
    {"vm no io file", m_no_io, false, {VM_BASE, .vdisk = false, .has_io = false, .rd = 0, .wr = 0}},
    {"vm vcpus unknown counts as 1", m_vcpus0, false, {VM_BASE, .cpu = 0.6}},
    {"vm black box from stat rss",
     m_no_status,
     false,
     {VM_BASE, .rss = 256, .swap = 0, .mem = 0.25}},
    {"vm memory size unknown",
     m_no_mem_vm,
     false,
     {VM_BASE, .vmem = false, .mem = 0, .mem_mib = 0}},
    /* gray box: 1024 - 256 MiB used by the guest's own account */
    {"vm gray box",
     m_gray,
     false,
     {VM_BASE, .gray = true, .mem = 0.75, .g_used = 768, .g_avail = 256, .g_sin = 4096000,
      .g_maj = 10}},
    {"vm gray box first guest reading",
     m_gray_first,
     false,
     {VM_BASE, .gray = true, .mem = 0.75, .g_used = 768, .g_avail = 256}},
    {"vm gray box unreported counters",
     m_gray_na,
     false,
     {VM_BASE, .gray = true, .mem = 0.75, .g_used = 768, .g_avail = 256}},
    {"vm gray box without available is black box", m_gray_no_avail, false, {VM_BASE}},
};

static void test_vm_delta(void **state)
{
	const struct vm_case *vc = *state;
	const struct vm_want *w = &vc->want;
	const char *n = vc->name;
	struct sampler_opts o;
	struct vm_desc d;
	struct vm_raw p, c;
	struct vm_sample s;

	vm_base(&o, &d, &p, &c);
	vc->mutate(&o, &d, &p, &c);
	memset(&s, 0xa5, sizeof(s));
	sampler_vm_delta(&o, &d, vc->first ? NULL : &p, &c, &s);
	if (s.status != w->status)
		fail_msg("%s: status %s, want %s", n, vm_status_name(s.status),
		         vm_status_name(w->status));
	assert_string_equal(s.problem, w->problem);
	assert_int_equal(s.valid_cpu, w->vcpu);
	assert_int_equal(s.valid_mem, w->vmem);
	assert_int_equal(s.valid_net, w->vnet);
	assert_int_equal(s.valid_disk, w->vdisk);
	assert_int_equal(s.has_tap, w->has_tap);
	assert_int_equal(s.has_io, w->has_io);
	if (w->status == VM_GONE || w->status == VM_PROC_ERROR || w->status == VM_NO_PID)
		return;
	assert_int_equal(s.gray, w->gray);
	near(s.cpu, w->cpu, "cpu", n);
	near(s.cpu_host, w->cpu_host, "cpu_host", n);
	assert_int_equal(s.vhost_threads, w->vhost_threads);
	assert_int_equal(s.net_packets, w->net_packets);
	assert_int_equal(s.cpu_ticks, w->cpu_ticks);
	near(s.mem, w->mem, "mem", n);
	near(s.mem_mib, w->mem_mib, "mem_mib", n);
	near(s.rss_mib, w->rss, "rss_mib", n);
	near(s.swap_mib, w->swap, "swap_mib", n);
	near(s.guest_used_mib, w->g_used, "guest_used_mib", n);
	near(s.guest_avail_mib, w->g_avail, "guest_avail_mib", n);
	near(s.guest_swap_in_bps, w->g_sin, "guest_swap_in_bps", n);
	near(s.guest_swap_out_bps, w->g_sout, "guest_swap_out_bps", n);
	near(s.guest_majflt_ps, w->g_maj, "guest_majflt_ps", n);
	near(s.net, w->net, "net", n);
	near(s.rx_bps, w->rx, "rx_bps", n);
	near(s.tx_bps, w->tx, "tx_bps", n);
	near(s.rx_pps, w->rx_pps, "rx_pps", n);
	near(s.tx_pps, w->tx_pps, "tx_pps", n);
	near(s.rx_drop_ps, w->rx_drop, "rx_drop_ps", n);
	near(s.tx_drop_ps, w->tx_drop, "tx_drop_ps", n);
	near(s.disk_rd_bps, w->rd, "disk_rd_bps", n);
	near(s.disk_wr_bps, w->wr, "disk_wr_bps", n);
	if (w->has_tap)
		assert_int_equal(s.tap.rx_bytes, c.tap.rx_bytes);
	if (w->has_io) {
		assert_int_equal(s.disk_rd_bytes, c.io.read_bytes);
		assert_int_equal(s.disk_wr_bytes, c.io.write_bytes);
	}
}

/* The guest refreshes its stats every 10 s (QEMU's guest-stats-polling-
 * interval) while the agent samples every 2 s: 40960 bytes swapped in over
 * the guest's 10 s is 4096 bytes/s, and a reading whose last-update did not
 * move says nothing new. */
static void test_vm_gray_rate_uses_guest_time(void **state)
{
	struct sampler_opts o;
	struct vm_desc d;
	struct vm_raw p, c;
	struct vm_sample s;

	/* Regression (fixed): sampler.c vm_memory() divides the guest counters' delta by the
	 * host's dt (2 s) instead of the guest's last-update delta (10 s):
	 * 20480 bytes/s, five times the real rate, and 0 on the readings in
	 * between */
	vm_base(&o, &d, &p, &c);
	guest(&p, 0, 100);
	guest(&c, 40960, 150);
	c.guest.last_update = p.guest.last_update + 10;
	sampler_vm_delta(&o, &d, &p, &c, &s);
	near(s.guest_swap_in_bps, 4096, "guest_swap_in_bps", "10 s guest interval");
	near(s.guest_majflt_ps, 5, "guest_majflt_ps", "10 s guest interval");
}

/* ==== sampler_charge_io ==== */

enum { VA, VB, VC };

static const struct io_case {
	const char *name;
	enum io_overhead_mode mode;
	double a_cpu_host; /* VM A's share of the host; B is 0.125, C 0 */
	uint64_t a_pkts;   /* VM A's packets; B 100, C (invalid net) 999 */
	int64_t softirq_d; /* host irq+softirq delta; busy delta is 300 */
	bool host_cpu_ok;
	double host, a, b, c;
} io_cases[] = {
    /* 20 softirq ticks of 400: 0.05, split 3:1 by packets */
    {"softirq", IO_OVERHEAD_SOFTIRQ, 0.25, 300, 20, true, 0.05, 0.0375, 0.0125, 0},
    /* busy 300 - VMs (0.25 + 0.125) * 400 = 150 ticks: 0.375 */
    {"unexplained", IO_OVERHEAD_UNEXPLAINED, 0.25, 300, 20, true, 0.375, 0.28125, 0.09375, 0},
    /* the VMs explain more than the host was busy: nothing left */
    {"unexplained none left", IO_OVERHEAD_UNEXPLAINED, 0.9, 300, 20, true, 0, 0, 0, 0},
    {"off", IO_OVERHEAD_OFF, 0.25, 300, 20, true, 0, 0, 0, 0},
    {"softirq no packets", IO_OVERHEAD_SOFTIRQ, 0.25, 0, 20, true, 0, 0, 0, 0},
    {"softirq counter went back", IO_OVERHEAD_SOFTIRQ, 0.25, 300, -5, true, 0, 0, 0, 0},
    {"host cpu invalid", IO_OVERHEAD_SOFTIRQ, 0.25, 300, 20, false, 0, 0, 0, 0},
};

static void test_charge_io(void **state)
{
	const struct io_case *ic = *state;
	struct sampler_opts o;
	struct host_raw p, c;
	struct host_sample hs;
	struct vm_sample v[3], *vp[3] = {&v[0], &v[1], &v[2]};

	host_base(&o, &p, &c);
	o.io_mode = ic->mode;
	/* split the softirq delta over irq and softirq; busy stays 300 by
	 * moving the difference to/from user */
	c.stat.all.irq = p.stat.all.irq + 10;
	c.stat.all.softirq = (uint64_t)((int64_t)p.stat.all.softirq + ic->softirq_d - 10);
	c.stat.all.user = (uint64_t)((int64_t)c.stat.all.user + 20 - ic->softirq_d);
	sampler_host_delta(&o, &p, &c, &hs);
	assert_true(hs.valid_cpu);
	near(hs.cpu, 0.75, "host cpu", ic->name);
	if (!ic->host_cpu_ok)
		hs.valid_cpu = false;
	memset(v, 0, sizeof(v));
	v[VA].valid_cpu = v[VB].valid_cpu = v[VC].valid_cpu = true;
	v[VA].cpu_host = ic->a_cpu_host;
	v[VB].cpu_host = 0.125;
	v[VA].valid_net = v[VB].valid_net = true;
	v[VA].net_packets = ic->a_pkts;
	v[VB].net_packets = ic->a_pkts ? 100 : 0;
	v[VC].net_packets = 999; /* not valid: not counted */
	hs.io_overhead = 42;
	sampler_charge_io(&o, &p, &c, &hs, vp, 3);
	near(hs.io_overhead, ic->host, "host io_overhead", ic->name);
	near(v[VA].cpu_io_overhead, ic->a, "A cpu_io_overhead", ic->name);
	near(v[VB].cpu_io_overhead, ic->b, "B cpu_io_overhead", ic->name);
	near(v[VC].cpu_io_overhead, ic->c, "C cpu_io_overhead", ic->name);
}

/* ==== the readers, on tests/fixtures/root1 ==== */

static void root1_opts(struct sampler_opts *o)
{
	memset(o, 0, sizeof(*o));
	strcpy(o->root, ROOT1);
	o->cpus = 2;
	o->mem_mib = 24105;
	o->net_mbit = 1000;
	strcpy(o->nics[0], "eth0");
	o->nnics = 1;
	o->hz = 100;
}

static void test_read_host_root1(void **state)
{
	struct netdev_entry tab[16];
	struct sampler_opts o;
	struct host_raw h;
	int n;

	root1_opts(&o);
	n = sampler_read_netdev(&o, tab, 16);
	assert_int_equal(n, 4); /* lo, ifb0, ifb1, eth0 */
	assert_non_null(netdev_find(tab, n, "eth0"));

	sampler_read_host(&o, tab, n, &h);
	assert_string_equal(h.err, "");
	assert_true(h.ok_stat && h.ok_mem && h.ok_vmstat && h.ok_nics && h.has_psi);
	assert_true(h.mono_ns > 0);
	assert_int_equal(h.stat.ncpu, 2);
	assert_int_equal(h.stat.all.user, 4138);
	assert_int_equal(h.stat.all.idle, 59992);
	assert_int_equal(h.stat.all.steal, 970);
	assert_int_equal(h.mem.mem_total, 24684092);
	assert_int_equal(h.mem.mem_available, 24354780);
	assert_int_equal(h.vmstat.pgmajfault, 989);
	assert_int_equal(h.nic.rx_bytes, 24617075);
	assert_int_equal(h.nic.tx_bytes, 38057);
	assert_int_equal(h.nic.rx_packets, 650);
	assert_int_equal(h.nic.tx_packets, 463);
	near(h.psi_cpu.some.avg10, 1.06, "psi cpu some avg10", "root1");
	near(h.psi_io.full.avg10, 0.18, "psi io full avg10", "root1");
	assert_int_equal(h.psi_io.some.total, 15329307);

	/* a configured NIC that is not there */
	strcpy(o.nics[0], "eth9");
	sampler_read_host(&o, tab, n, &h);
	assert_false(h.ok_nics);
	assert_true(h.ok_stat);
	assert_string_equal(h.err, "NIC eth9 not found");

	/* the netdev read failed */
	sampler_read_host(&o, tab, -ENOENT, &h);
	assert_false(h.ok_nics);
	assert_string_equal(h.err, "/proc/net/dev: No such file or directory");

	/* a root with nothing in it: every flag down, the first cause noted */
	strcpy(o.root, "tests/fixtures/no-such-root");
	assert_int_equal(sampler_read_netdev(&o, tab, 16), -ENOENT);
	sampler_read_host(&o, tab, -ENOENT, &h);
	assert_false(h.ok_stat || h.ok_mem || h.ok_vmstat || h.ok_nics || h.has_psi);
	assert_string_equal(h.err, "/proc/stat: No such file or directory");
}

static void test_scan_vhost_root1(void **state)
{
	struct sampler_opts o;
	struct vhost_map map;

	root1_opts(&o);
	map.n = 99;
	sampler_scan_vhost(&o, &map);
	assert_int_equal(map.n, 1);
	assert_int_equal(map.e[0].owner, 4242);
	assert_int_equal(map.e[0].tid, 77);

	strcpy(o.root, "tests/fixtures/no-such-root");
	sampler_scan_vhost(&o, &map);
	assert_int_equal(map.n, 0);
}

/* The taps come from the netdev fixture with tap0 (rx 210/5, tx 642/9,
 * tx_drop 4): the VM's view is the other way round. */
static int tap_table(struct netdev_entry *tab, int max)
{
	static char buf[4096];
	FILE *f = fopen("tests/fixtures/netdev/tap_longname", "rb");
	size_t len;

	assert_non_null(f);
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return netdev_parse(buf, len, tab, max);
}

static void test_read_vm_root1(void **state)
{
	struct netdev_entry tab[16];
	struct sampler_opts o;
	struct vhost_map map;
	struct vm_desc d = {.id = "vm1", .pid = 4242, .tap = "tap0", .mem_mib = 1024, .vcpus = 2};
	struct vm_raw r, r2;
	struct vm_sample s;
	char cwd[PATH_MAX];
	int n = tap_table(tab, 16);

	assert_int_equal(n, 4);
	root1_opts(&o);
	sampler_scan_vhost(&o, &map);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(d.guest_stats, sizeof(d.guest_stats),
	         "%s/tests/fixtures/balloon/qemu72_reply.json", cwd);

	sampler_read_vm(&o, &d, &map, tab, n, &r);
	assert_string_equal(r.err, "");
	assert_int_equal(r.rc_stat, 0);
	/* utime 305 + stime 9 ticks at hz 100 */
	assert_int_equal(r.cpu_ns, 3140000000u);
	assert_int_equal(r.starttime, 34165);
	assert_int_equal(r.rss_pages, 16165);
	assert_true(r.ok_status);
	assert_int_equal(r.status.vm_rss_kib, 64944);
	assert_true(r.ok_io);
	assert_int_equal(r.io.read_bytes, 53248);
	assert_int_equal(r.io.write_bytes, 1060864);
	assert_int_equal(r.nvhost, 1);
	assert_int_equal(r.vhost[0].tid, 77);
	assert_int_equal(r.vhost[0].ticks, 0);
	assert_true(r.ok_tap);
	assert_int_equal(r.tap.rx_bytes, 642);
	assert_int_equal(r.tap.tx_bytes, 210);
	assert_int_equal(r.tap.rx_packets, 9);
	assert_int_equal(r.tap.tx_packets, 5);
	assert_int_equal(r.tap.rx_dropped, 4);
	assert_int_equal(r.tap.tx_dropped, 0);
	assert_true(r.ok_guest);
	assert_int_equal(r.guest.total, 257720320);
	assert_int_equal(r.guest.available, 210771968);

	/* two readings of a process that did not move: OK, all rates 0 */
	sampler_read_vm(&o, &d, &map, tab, n, &r2);
	assert_true(r2.mono_ns >= r.mono_ns);
	r2.mono_ns = r.mono_ns + 2 * S;
	sampler_vm_delta(&o, &d, &r, &r2, &s);
	assert_int_equal(s.status, VM_OK);
	assert_true(s.valid_cpu && s.valid_net && s.valid_disk && s.gray);
	near(s.cpu, 0, "cpu", "root1");
	near(s.rx_bps, 0, "rx_bps", "root1");
	assert_int_equal(s.cpu_ticks, 314);
	/* (257720320 - 210771968) bytes = 44.7734375 MiB used by the guest */
	near(s.guest_used_mib, 44.7734375, "guest_used_mib", "root1");

	/* without the netdev table, a missing tap, a missing process */
	sampler_read_vm(&o, &d, &map, tab, -ENOENT, &r);
	assert_false(r.ok_tap);
	strcpy(d.tap, "tap7");
	sampler_read_vm(&o, &d, &map, tab, n, &r);
	assert_false(r.ok_tap);
	assert_string_equal(r.err, "tap tap7 not found");
	d.pid = 999;
	sampler_read_vm(&o, &d, &map, tab, n, &r);
	assert_int_equal(r.rc_stat, -ENOENT);
	assert_string_equal(r.err, "/proc/999/stat: No such file or directory");
	d.pid = 0;
	sampler_read_vm(&o, &d, &map, tab, n, &r);
	assert_int_equal(r.rc_stat, -ESRCH);
	assert_string_equal(r.err, "no pid in the registry");
}

/* Guest stats that are not there yet are no problem; garbage is. */
static void test_read_vm_guest_stats(void **state)
{
	static const struct {
		const char *file;
		bool ok;
		const char *err_prefix;
	} g[] = {
	    {"tests/fixtures/balloon/bare.json", true, ""},
	    {"tests/fixtures/balloon/never_updated.json", false, ""},
	    {"tests/fixtures/balloon/not_json.json", false, "guest-stats: not JSON"},
	    /* not written yet (before the first balloon poll): no figures, no problem */
	    {"tests/fixtures/balloon/no-such-file.json", false, ""},
	};
	struct netdev_entry tab[16];
	struct sampler_opts o;
	struct vm_desc d = {.id = "vm1", .pid = 4242, .tap = "tap0", .mem_mib = 1024, .vcpus = 2};
	struct vm_raw r;
	char cwd[PATH_MAX];
	int n = tap_table(tab, 16);

	root1_opts(&o);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
		snprintf(d.guest_stats, sizeof(d.guest_stats), "%s/%s", cwd, g[i].file);
		sampler_read_vm(&o, &d, NULL, tab, n, &r);
		assert_int_equal(r.rc_stat, 0);
		assert_int_equal(r.ok_guest, g[i].ok);
		if (strncmp(r.err, g[i].err_prefix, strlen(g[i].err_prefix)) != 0 ||
		    (!g[i].err_prefix[0] && r.err[0]))
			fail_msg("%s: err '%s'", g[i].file, r.err);
	}
}

/* The physical NICs are the entries with a "device" link: in root1 eth0 has
 * one (sys/class/net/eth0/device), tap0 has none. */
static void test_find_nics_root1(void **state)
{
	char nics[SAMPLER_MAX_NICS][SAMPLER_IFNAMSIZ];
	int n;

	/* Regression (fixed): sampler.c sampler_find_nics() ignores the "device" link the
	 * header names; it readlink()s the entry itself and skips what is not a
	 * symlink, so a copied tree such as root1 (directories) has no NIC */
	n = sampler_find_nics(ROOT1, nics, SAMPLER_MAX_NICS);
	assert_int_equal(n, 1);
	assert_string_equal(nics[0], "eth0");
}

static int mkdir_p(const char *dir)
{
	char tmp[512];

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A tree laid out like real sysfs: class/net entries are symlinks into
 * devices/; a physical NIC's device has a "device" link, virtual ones live
 * under devices/virtual/ and have none. */
static void test_find_nics_sysfs_layout(void **state)
{
	static const struct {
		const char *name, *dev, *device;
	} links[] = {
	    {"eth0", "pci0000:00/0000:00:03.0/virtio2/net/eth0", "../../../virtio2"},
	    {"enp5s0f1", "pci0000:00/0000:00:1c.4/0000:05:00.1/net/enp5s0f1",
	     "../../../0000:05:00.1"},
	    {"lo", "virtual/net/lo", NULL},
	    {"tap0", "virtual/net/tap0", NULL},
	    {"br0", "virtual/net/br0", NULL},
	};
	char tmpl[] = "/tmp/le-sampler-XXXXXX", path[512], target[512];
	char nics[SAMPLER_MAX_NICS][SAMPLER_IFNAMSIZ];
	char *root = mkdtemp(tmpl);
	bool eth0 = false, enp = false;
	int n;

	assert_non_null(root);
	snprintf(path, sizeof(path), "%s/sys/class/net", root);
	assert_int_equal(mkdir_p(path), 0);
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		snprintf(path, sizeof(path), "%s/sys/devices/%s", root, links[i].dev);
		assert_int_equal(mkdir_p(path), 0);
		if (links[i].device) {
			snprintf(path, sizeof(path), "%s/sys/devices/%s/device", root,
			         links[i].dev);
			assert_int_equal(symlink(links[i].device, path), 0);
		}
		snprintf(path, sizeof(path), "%s/sys/class/net/%s", root, links[i].name);
		snprintf(target, sizeof(target), "../../devices/%s", links[i].dev);
		assert_int_equal(symlink(target, path), 0);
	}
	n = sampler_find_nics(root, nics, SAMPLER_MAX_NICS);
	for (int i = 0; i < n; i++) {
		eth0 |= strcmp(nics[i], "eth0") == 0;
		enp |= strcmp(nics[i], "enp5s0f1") == 0;
	}
	/* max is respected */
	assert_int_equal(sampler_find_nics(root, nics, 1), 1);
	rm_rf(root);
	assert_int_equal(n, 2);
	assert_true(eth0 && enp);
}

static void test_nic_speed_root1(void **state)
{
	char nics[3][SAMPLER_IFNAMSIZ] = {"eth0", "tap0", "eth9"};

	near(sampler_nic_speed(ROOT1, nics, 1), 1000, "eth0 speed", "root1");
	near(sampler_nic_speed(ROOT1, nics, 2), 11000, "eth0+tap0 speed", "root1");
	near(sampler_nic_speed(ROOT1, nics + 2, 1), 0, "missing NIC speed", "root1");
}

/* A host with 3000 interfaces (taps of many VMs): /proc/net/dev is ~360 KiB
 * and NETDEV_MAX_IFACES allows 4096 of them. */
static void test_read_netdev_many(void **state)
{
	static const char head[] =
	    "Inter-|   Receive                                                |  Transmit\n"
	    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets "
	    "errs drop fifo colls carrier compressed\n";
	char tmpl[] = "/tmp/le-netdev-XXXXXX", path[512];
	struct netdev_entry *tab = malloc(NETDEV_MAX_IFACES * sizeof(*tab));
	struct sampler_opts o;
	char *root = mkdtemp(tmpl);
	FILE *f;
	int n;

	assert_non_null(tab);
	assert_non_null(root);
	snprintf(path, sizeof(path), "%s/proc", root);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/proc/net", root);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/proc/net/dev", root);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(head, f);
	for (int i = 0; i < 3000; i++)
		fprintf(
		    f, "%6s%d: %7d %7d %4d %4d %4d %5d %10d %9d %8d %7d %4d %4d %4d %5d %7d %10d\n",
		    "tap", i, 1000000 + i, 1000, 0, 0, 0, 0, 0, 0, 2000000 + i, 2000, 0, 0, 0, 0, 0,
		    0);
	fclose(f);
	memset(&o, 0, sizeof(o));
	snprintf(o.root, sizeof(o.root), "%s", root);
	n = sampler_read_netdev(&o, tab, NETDEV_MAX_IFACES);
	unlink(path);
	snprintf(path, sizeof(path), "%s/proc/net", root);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/proc", root);
	rmdir(path);
	rmdir(root);

	/* Regression (fixed): sampler.c sampler_read_netdev() reads into HOST_BUF (256 KiB):
	 * a /proc/net/dev of more than ~2100 interfaces is -EFBIG, and every
	 * NIC and tap rate of the host is lost */
	if (n == -EFBIG) {
		free(tab);
		fail_msg("-EFBIG");
	}
	assert_int_equal(n, 3000);
	assert_string_equal(tab[2999].name, "tap2999");
	assert_int_equal(tab[2999].tx_bytes, 2002999);
	free(tab);
}

/* host.usage = vms: the host's figures are its VMs' sums against its
 * capacities; a VM with invalid figures adds nothing. */
static void test_host_from_vms(void **state)
{
	struct sampler_opts o;
	struct host_sample hs;
	struct vm_sample v[3], *vp[3] = {&v[0], &v[1], &v[2]};

	(void)state;
	memset(&o, 0, sizeof(o));
	o.cpus = 2;
	o.mem_mib = 1000;
	o.net_mbit = 8; /* 1e6 bytes/s */
	memset(&hs, 0, sizeof(hs));
	hs.psi_cpu_some = 3; /* the kernel's figures stay */
	memset(v, 0, sizeof(v));
	v[0].valid_cpu = v[0].valid_mem = v[0].valid_net = true;
	v[0].cpu_host = 0.5;
	v[0].cpu_io_overhead = 0.05;
	v[0].rss_mib = 300;
	v[0].swap_mib = 20;
	v[0].rx_bps = 100000;
	v[0].tx_bps = 600000;
	v[1].valid_cpu = v[1].valid_mem = v[1].valid_net = true;
	v[1].cpu_host = 0.25;
	v[1].rss_mib = 180;
	v[1].rx_bps = 50000;
	v[1].tx_bps = 150000;
	v[2].cpu_host = 9; /* nothing valid: not counted */
	v[2].rss_mib = 9999;
	sampler_host_from_vms(&o, &hs, vp, 3);
	assert_true(hs.valid_cpu && hs.valid_mem && hs.valid_net);
	near(hs.cpu, 0.8, "cpu", "vms");
	near(hs.cpu_busy_cores, 1.6, "busy cores", "vms");
	near(hs.mem_used_mib, 500, "mem used", "vms");
	near(hs.mem, 0.5, "mem", "vms");
	near(hs.mem_avail_mib, 500, "mem avail", "vms");
	near(hs.net_rx_bps, 750000, "host rx = guests' tx", "vms");
	near(hs.net_tx_bps, 150000, "host tx = guests' rx", "vms");
	near(hs.net, 0.75, "net", "vms");
	near(hs.psi_cpu_some, 3, "psi kept", "vms");

	/* no VMs: an idle host, not an unknown one */
	sampler_host_from_vms(&o, &hs, vp, 0);
	assert_true(hs.valid_cpu && hs.valid_mem && hs.valid_net);
	near(hs.cpu + hs.mem + hs.net, 0, "empty host", "vms");
}

/* ==== the kept state of a long-running agent (sampler_cache) ==== */

/* The vhost scan remembers each process by the inode number of its /proc
 * directory: the same number, the same process, its comm not read again (a
 * kernel thread's comm does not change); a directory made anew is read
 * again, and every SAMPLER_VHOST_REREAD-th scan reads all of them. */
static void write_comm(const char *root, const char *dir, const char *comm)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/proc/%s", root, dir);
	assert_int_equal(mkdir_p(path), 0);
	snprintf(path, sizeof(path), "%s/proc/%s/comm", root, dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", comm);
	fclose(f);
}

static void test_scan_vhost_cached(void **state)
{
	char tmpl[] = "/tmp/le-vhost-XXXXXX", a[512], b[512];
	char *root = mkdtemp(tmpl);
	struct sampler_cache cache;
	struct sampler_opts o;
	struct vhost_map map;

	assert_non_null(root);
	write_comm(root, "100", "vhost-4242");
	write_comm(root, "200", "qemu-system-x86");
	write_comm(root, "300", "bash");
	memset(&o, 0, sizeof(o));
	snprintf(o.root, sizeof(o.root), "%s", root);
	sampler_cache_init(&cache);
	o.cache = &cache;
	sampler_scan_vhost(&o, &map);
	assert_int_equal(map.n, 1);
	assert_int_equal(map.e[0].tid, 100);
	assert_int_equal(map.e[0].owner, 4242);
	assert_int_equal(cache.nseen, 3);

	/* the same directories: the answers are kept, comm is not read */
	write_comm(root, "300", "vhost-4242");
	sampler_scan_vhost(&o, &map);
	assert_int_equal(map.n, 1);
	assert_int_equal(map.e[0].tid, 100);

	/* pid 200 is a new process (a new directory: a new inode number),
	 * 100 has gone */
	write_comm(root, "200.new", "vhost-777");
	snprintf(a, sizeof(a), "%s/proc/200", root);
	snprintf(b, sizeof(b), "%s/proc/200.old", root);
	assert_int_equal(rename(a, b), 0);
	snprintf(b, sizeof(b), "%s/proc/200.new", root);
	assert_int_equal(rename(b, a), 0);
	snprintf(a, sizeof(a), "%s/proc/200.old", root);
	rm_rf(a);
	snprintf(a, sizeof(a), "%s/proc/100", root);
	rm_rf(a);
	sampler_scan_vhost(&o, &map);
	assert_int_equal(map.n, 1);
	assert_int_equal(map.e[0].tid, 200);
	assert_int_equal(map.e[0].owner, 777);
	assert_int_equal(cache.nseen, 2);

	/* the SAMPLER_VHOST_REREAD-th scan reads every comm */
	while (cache.scans % SAMPLER_VHOST_REREAD != 0) {
		sampler_scan_vhost(&o, &map);
		assert_int_equal(map.n, 1);
	}
	sampler_scan_vhost(&o, &map);
	assert_int_equal(map.n, 2);
	assert_int_equal(map.e[0].tid + map.e[1].tid, 500);

	sampler_cache_release(&cache);
	rm_rf(root);
}

/* A child that spends some CPU, then waits in pause() until killed. */
static pid_t spinner(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct timespec t0, t;
		/* a failed assertion leaves the test without killing it */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
		do
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
		while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec < 60000000L);
		for (;;)
			pause();
	}
	return pid;
}

static void wait_sleeping(pid_t pid)
{
	char path[64], buf[512];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(path, "r");
		size_t n;
		assert_non_null(f);
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		if (strstr(buf, ") S "))
			return;
		usleep(10000);
	}
	fail_msg("pid %d did not go to sleep", (int)pid);
}

/* On the live system a cached reader takes CPU time from the process CPU
 * clock and RSS from statm: the figures of /proc/<pid>/stat and status, the
 * CPU time in ns rather than in whole ticks (stat rounds utime and stime
 * down apart), RSS exactly status's VmRSS (stat's rss is a cheaper,
 * approximate sum of the per-CPU counters on recent kernels). A process that
 * exits reads as gone through the kept descriptor. */
static void test_read_vm_live(void **state)
{
	struct sampler_cache cache;
	struct sampler_opts o;
	struct vm_desc d = {.id = "vm1", .mem_mib = 1024, .vcpus = 1};
	struct vm_raw f, l1, l2;
	struct vm_sample s;
	pid_t pid = spinner();
	int status;

	memset(&o, 0, sizeof(o));
	strcpy(o.root, "/");
	o.cpus = 2;
	o.hz = sysconf(_SC_CLK_TCK);
	o.page_kib = sysconf(_SC_PAGESIZE) / 1024;
	d.pid = (int)pid;
	wait_sleeping(pid);
	sampler_cache_init(&cache);

	sampler_read_vm(&o, &d, NULL, NULL, -ENOENT, &f); /* no cache: stat */
	o.cache = &cache;
	sampler_read_vm(&o, &d, NULL, NULL, -ENOENT, &l1);
	sampler_read_vm(&o, &d, NULL, NULL, -ENOENT, &l2);
	assert_int_equal(f.rc_stat, 0);
	assert_int_equal(l1.rc_stat, 0);
	assert_int_equal(l2.rc_stat, 0);
	assert_true(cache.npids == 1 && cache.pids[0].fd_statm >= 0);
	/* 60 ms of CPU at least; stat's two round-downs lose under 2 ticks */
	assert_true(l1.cpu_ns >= 60000000u);
	assert_true(l1.cpu_ns >= f.cpu_ns);
	assert_true(l1.cpu_ns < f.cpu_ns + 2u * 1000000000u / (uint64_t)o.hz);
	assert_true(l2.cpu_ns == l1.cpu_ns);
	assert_int_equal(l1.starttime, f.starttime);
	assert_true(f.ok_status && l1.ok_status && l2.ok_status);
	assert_int_equal((uint64_t)l1.rss_pages * (uint64_t)o.page_kib, f.status.vm_rss_kib);
	assert_int_equal(l2.status.vm_rss_kib, f.status.vm_rss_kib);
	assert_int_equal(l2.status.vm_swap_kib, f.status.vm_swap_kib);
	sampler_vm_delta(&o, &d, &l1, &l2, &s);
	assert_int_equal(s.status, VM_OK);
	near(s.cpu, 0, "cpu of a sleeping process", "live");
	assert_int_equal(s.cpu_ticks, l2.cpu_ns * (uint64_t)o.hz / 1000000000u);

	/* it exits and is reaped: gone, through the kept descriptor */
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	sampler_read_vm(&o, &d, NULL, NULL, -ENOENT, &l1);
	assert_true(l1.rc_stat == -ESRCH || l1.rc_stat == -ENOENT);
	sampler_vm_delta(&o, &d, &l2, &l1, &s);
	assert_int_equal(s.status, VM_GONE);
	sampler_cache_sweep(&cache);
	sampler_cache_release(&cache);
}

static const struct netdev_entry *by_name(const struct netdev_entry *t, int n, const char *name)
{
	const struct netdev_entry *e = netdev_find(t, n, name);

	if (!e)
		fail_msg("interface %s missing", name);
	return e;
}

/* On the live system the interface counters come from rtnetlink: the same
 * interfaces as /proc/net/dev, each counter between the file's before and
 * after, read again and again. */
static void test_read_netdev_live(void **state)
{
	struct netdev_entry *before = calloc(NETDEV_MAX_IFACES, sizeof(*before));
	struct netdev_entry *nl = calloc(NETDEV_MAX_IFACES, sizeof(*nl));
	struct netdev_entry *after = calloc(NETDEV_MAX_IFACES, sizeof(*after));
	struct sampler_cache cache;
	struct sampler_opts o;
	int nb, nn, na;

	assert_true(before && nl && after);
	memset(&o, 0, sizeof(o));
	strcpy(o.root, "/");
	sampler_cache_init(&cache);
	for (int round = 0; round < 3; round++) {
		o.cache = NULL;
		nb = sampler_read_netdev(&o, before, NETDEV_MAX_IFACES);
		o.cache = &cache;
		nn = sampler_read_netdev(&o, nl, NETDEV_MAX_IFACES);
		o.cache = NULL;
		na = sampler_read_netdev(&o, after, NETDEV_MAX_IFACES);
		assert_true(nb > 0);
		assert_int_equal(nn, nb);
		assert_int_equal(na, nb);
		assert_false(cache.nl_off);
		assert_int_equal(cache.nl_fails, 0);
		for (int i = 0; i < nn; i++) {
			const struct netdev_entry *b = by_name(before, nb, nl[i].name);
			const struct netdev_entry *a = by_name(after, na, nl[i].name);
#define BETWEEN(f) assert_true(b->f <= nl[i].f && nl[i].f <= a->f)
			BETWEEN(rx_bytes);
			BETWEEN(rx_packets);
			BETWEEN(rx_errs);
			BETWEEN(rx_drop);
			BETWEEN(tx_bytes);
			BETWEEN(tx_packets);
			BETWEEN(tx_errs);
			BETWEEN(tx_drop);
#undef BETWEEN
			assert_true(nl[i].ifindex > 0);
		}
	}
	/* a table too small is the file's answer too */
	assert_int_equal(sampler_read_netdev(&o, nl, 0), -E2BIG);
	o.cache = &cache;
	assert_int_equal(sampler_read_netdev(&o, nl, 0), -E2BIG);
	sampler_cache_release(&cache);
	free(before);
	free(nl);
	free(after);
}

/* A cached reader keeps its descriptors, and reads status (for VmSwap)
 * only while the host has swap in use: root1's meminfo has none. */
static void test_read_vm_cached_root1(void **state)
{
	struct sampler_cache cache;
	struct sampler_opts o;
	struct vm_desc d = {.id = "vm1", .pid = 4242, .tap = "tap0", .mem_mib = 1024, .vcpus = 2};
	struct netdev_entry tab[16];
	struct host_raw h;
	struct vm_raw r;
	struct vm_sample s;
	int n = tap_table(tab, 16);

	root1_opts(&o);
	o.page_kib = 4;
	sampler_cache_init(&cache);
	o.cache = &cache;
	sampler_read_host(&o, tab, n, &h);
	assert_true(h.ok_mem && h.mem.swap_total == 0);
	assert_true(cache.no_swap);
	sampler_read_vm(&o, &d, NULL, tab, n, &r);
	assert_int_equal(r.rc_stat, 0);
	assert_false(r.ok_status);
	assert_int_equal(cache.pids[0].fd_status, -1);
	assert_true(cache.pids[0].fd_stat >= 0 && cache.pids[0].fd_io >= 0);
	assert_int_equal(cache.pids[0].tap_at, 2);
	assert_true(r.ok_tap && r.ok_io);
	sampler_vm_delta(&o, &d, NULL, &r, &s);
	/* stat's 16165 pages of 4 KiB, nothing swapped */
	near(s.rss_mib, 16165 * 4 / 1024.0, "rss_mib", "root1 no swap");
	near(s.swap_mib, 0, "swap_mib", "root1 no swap");

	/* swap in use: status is read at once (VmRSS 64944 kB), then every
	 * SAMPLER_STATUS_EVERY reads; between, VmSwap as last read and RSS
	 * from stat (16165 pages) */
	cache.no_swap = false;
	for (int i = 0, nstatus = 0; i < 2 * SAMPLER_STATUS_EVERY; i++) {
		bool due = i == 0 || cache.pids[0].reads % SAMPLER_STATUS_EVERY == 0;
		sampler_read_vm(&o, &d, NULL, tab, n, &r);
		assert_true(r.ok_status);
		assert_true(cache.pids[0].fd_status >= 0);
		assert_int_equal(r.status.vm_rss_kib, due ? 64944 : 16165 * 4);
		nstatus += due;
		if (i == 2 * SAMPLER_STATUS_EVERY - 1)
			assert_int_equal(nstatus, 3);
	}
	sampler_cache_sweep(&cache);
	assert_int_equal(cache.npids, 1);
	sampler_cache_sweep(&cache); /* not read since: closed */
	assert_int_equal(cache.npids, 0);
	sampler_cache_release(&cache);
}

/* A cached reader reads /proc/vmstat only up to the counters it needs (the
 * kernel prints it as it is read), as far as a full read found them; a read
 * that falls short of one reads all of it again. */
static void test_read_host_cached_root1(void **state)
{
	struct sampler_cache cache;
	struct sampler_opts o;
	struct host_raw h;

	root1_opts(&o);
	o.nnics = 0;
	sampler_cache_init(&cache);
	o.cache = &cache;
	sampler_read_host(&o, NULL, 0, &h);
	assert_true(h.ok_vmstat);
	assert_int_equal(h.vmstat.pgmajfault, 989);
	/* root1's pgmajfault line ends at byte 1959; 512 more */
	assert_int_equal(cache.vmstat_len, 1959 + 512);
	memset(&h, 0, sizeof(h));
	sampler_read_host(&o, NULL, 0, &h);
	assert_true(h.ok_vmstat);
	assert_int_equal(h.vmstat.pgmajfault, 989);

	/* numbers that grew past the margin: cut before pgmajfault */
	cache.vmstat_len = 1900; /* inside the pgmajfault line */
	sampler_read_host(&o, NULL, 0, &h);
	assert_true(h.ok_vmstat);
	assert_int_equal(h.vmstat.pgmajfault, 989);
	assert_int_equal(cache.vmstat_len, 1959 + 512);
	assert_string_equal(h.err, "");
	sampler_cache_release(&cache);
}

int main(void)
{
#define NH  (sizeof(host_cases) / sizeof(host_cases[0]))
#define NV  (sizeof(vm_cases) / sizeof(vm_cases[0]))
#define NIO (sizeof(io_cases) / sizeof(io_cases[0]))
	static struct CMUnitTest tests[NH + NV + NIO + 20];
	static char io_names[NIO][64];
	size_t i = 0;

	for (size_t k = 0; k < NH; k++)
		tests[i++] = (struct CMUnitTest){host_cases[k].name, test_host_delta, NULL, NULL,
		                                 (void *)&host_cases[k]};
	for (size_t k = 0; k < NV; k++)
		tests[i++] = (struct CMUnitTest){vm_cases[k].name, test_vm_delta, NULL, NULL,
		                                 (void *)&vm_cases[k]};
	for (size_t k = 0; k < NIO; k++) {
		snprintf(io_names[k], sizeof(io_names[k]), "charge_io %s", io_cases[k].name);
		tests[i++] = (struct CMUnitTest){io_names[k], test_charge_io, NULL, NULL,
		                                 (void *)&io_cases[k]};
	}
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_vm_gray_rate_uses_guest_time);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_read_host_root1);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_scan_vhost_root1);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_read_vm_root1);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_read_vm_guest_stats);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_find_nics_root1);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_find_nics_sysfs_layout);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_nic_speed_root1);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_read_netdev_many);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_host_from_vms);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_scan_vhost_cached);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_read_vm_cached_root1);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_read_host_cached_root1);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_read_vm_live);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_read_netdev_live);
	return _cmocka_run_group_tests("sampler", tests, i, NULL, NULL);
}
