/* procfs.h - pure parsers for the /proc and /sys files the agent samples.
 *
 * Every parser takes the whole file content (buf, len; not necessarily NUL
 * terminated) and fills a plain struct. They never read files themselves, so
 * unit tests and fuzzers feed them fixture bytes. Limits: a line longer than
 * PROCFS_MAX_LINE, more than PROCFS_MAX_LINES lines, or a number that does not
 * fit in 64 bits is an error, never a crash or a silent wrap. The line limit
 * applies to the lines a parser reads; lines it skips are skipped whatever
 * their length (/proc/stat's "intr" line passes 4 KiB on hosts with many
 * IRQs).
 *
 * Real /proc files end with '\n': a last line without one was cut by a short
 * read and is ignored, so a field on it counts as missing. A field the parser
 * reads that appears twice is -EINVAL.
 *
 * Return: 0 on success; -EINVAL when the content is garbled or a required
 * field is missing (truncated file); -ERANGE for a number out of range;
 * -E2BIG when a limit is exceeded. On error *out is left zeroed.
 */
#ifndef LE_AGENT_PROCFS_H
#define LE_AGENT_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROCFS_MAX_LINE  4096
#define PROCFS_MAX_LINES 100000

/* One "cpu" line of /proc/stat, in clock ticks (USER_HZ). Fields a kernel does
 * not print (old kernels print fewer) are 0. */
struct procfs_cpu {
	uint64_t user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice;
};

/* Ticks that count as busy: user+nice+system+irq+softirq+steal (guest time is
 * already inside user/nice, so it is not added again). */
uint64_t procfs_cpu_busy(const struct procfs_cpu *c);
/* All ticks: busy + idle + iowait. Both sums saturate at UINT64_MAX. */
uint64_t procfs_cpu_total(const struct procfs_cpu *c);

/* /proc/stat: the aggregate "cpu" line (required) and the number of "cpuN"
 * lines (online CPUs, at least one). The cpu lines must be followed by another
 * line ("intr"), otherwise the file was cut and ncpu would be short: -EINVAL.
 * Other lines are ignored. */
struct procfs_stat {
	struct procfs_cpu all;
	unsigned ncpu;
};
int procfs_parse_stat(const char *buf, size_t len, struct procfs_stat *out);

/* /proc/meminfo, in KiB. All but MemAvailable are required (every kernel
 * since 2.6 prints them, and MemAvailable comes before them, so a file cut
 * early cannot pass for an old kernel); when MemAvailable is absent (kernels
 * < 3.14) has_available is false and mem_available = MemFree + Buffers +
 * Cached. */
struct procfs_meminfo {
	uint64_t mem_total, mem_free, mem_available, buffers, cached;
	uint64_t swap_total, swap_free;
	bool has_available;
};
int procfs_parse_meminfo(const char *buf, size_t len, struct procfs_meminfo *out);

/* /proc/vmstat counters (pages / events). All three are required (they are
 * all vm event counters: a kernel prints all or none). */
struct procfs_vmstat {
	uint64_t pswpin, pswpout, pgmajfault;
};
int procfs_parse_vmstat(const char *buf, size_t len, struct procfs_vmstat *out);

/* /proc/<pid>/stat (or /proc/<pid>/task/<tid>/stat). The comm field may hold
 * spaces, parentheses and even '\n': it runs from the first '(' to the LAST
 * ')'. The file is one line and must end with '\n'; fields 1 to 24 are
 * required and every field after the state must be an integer.
 * utime/stime are in clock ticks and, for a thread-group leader's file, cover
 * all of its threads (live and exited). starttime identifies the process
 * across pid reuse. */
struct procfs_pid_stat {
	int pid;
	char comm[64]; /* truncated if longer, always NUL terminated */
	char state;
	int ppid;
	uint64_t minflt, majflt;
	uint64_t utime, stime;
	int64_t num_threads;
	uint64_t starttime;
	uint64_t vsize; /* bytes */
	int64_t rss;    /* pages */
};
int procfs_parse_pid_stat(const char *buf, size_t len, struct procfs_pid_stat *out);

/* /proc/<pid>/status: VmRSS, VmSwap (KiB), Threads. Kernel threads have no
 * VmRSS: then has_vm is false and the sizes are 0 (not an error). Name and
 * Threads are required (Threads follows the Vm* lines, so a file cut before it
 * cannot pass for a kernel thread). name is copied as the kernel escaped it
 * ("a\\nb" for a newline). */
struct procfs_pid_status {
	char name[64];
	uint64_t vm_rss_kib, vm_swap_kib;
	int64_t threads;
	bool has_vm;
};
int procfs_parse_pid_status(const char *buf, size_t len, struct procfs_pid_status *out);

/* /proc/<pid>/statm, in pages: "size resident shared text lib data dt", all
 * seven required, one line ending in '\n' (lib and dt print 0 since Linux
 * 2.6). resident is the VmRSS of status and the rss of stat, the cheapest of
 * the three to read (the kernel prints seven numbers, takes no lock on the
 * task). A kernel thread or a zombie prints all zeros. */
struct procfs_pid_statm {
	uint64_t size, resident, shared, text, data;
};
int procfs_parse_pid_statm(const char *buf, size_t len, struct procfs_pid_statm *out);

/* /proc/<pid>/io. All seven fields are required. */
struct procfs_pid_io {
	uint64_t rchar, wchar, syscr, syscw, read_bytes, write_bytes, cancelled_write_bytes;
};
int procfs_parse_pid_io(const char *buf, size_t len, struct procfs_pid_io *out);

/* /proc/pressure/{cpu,memory,io}: the "some" line is required, "full" is
 * optional (the cpu file has no full line before Linux 5.13). avg* are
 * percentages, total is microseconds. */
struct procfs_psi_line {
	double avg10, avg60, avg300;
	uint64_t total;
};
struct procfs_psi {
	struct procfs_psi_line some, full;
	bool has_full;
};
int procfs_parse_pressure(const char *buf, size_t len, struct procfs_psi *out);

/* A sysfs file holding one unsigned decimal number and an optional newline,
 * e.g. /sys/class/net/<dev>/statistics/rx_bytes. Leading/trailing whitespace
 * allowed; anything else is -EINVAL. */
int procfs_parse_u64(const char *buf, size_t len, uint64_t *out);
/* Same for a signed number (e.g. /sys/class/net/<dev>/speed prints -1). */
int procfs_parse_i64(const char *buf, size_t len, int64_t *out);

#endif
