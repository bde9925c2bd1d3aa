/* The BPF side of the task reader (taskiter.c): one pass over every task of
 * the host adds each watched process's threads up, into a memory-mapped
 * array the agent reads without a system call.
 *
 * What it sums is what the kernel sums for a whole process:
 * - run time: every live thread's se.sum_exec_runtime plus the signal
 *   struct's sum_sched_runtime (its exited threads), as the process CPU
 *   clock (thread_group_cputime) does; the slice a thread is running right
 *   now is not in it yet (the clock adds it), so a reading may trail the
 *   clock by up to a scheduler tick per running thread, and by up to a
 *   second on nohz_full CPUs (their tick is remote, once a second: the agent
 *   does not choose the pass there);
 * - I/O: every live thread's ioac plus the signal struct's (exited
 *   threads), as /proc/<pid>/io (do_io_accounting) does.
 * The pass takes no lock: a thread that exits while it runs may be missed
 * (its counts reach the process's totals after those were read); the agent
 * reads a process whose counters went back from /proc for that sample.
 *
 * Compiled with clang -target bpf; the kernel types are declared with only
 * the fields read, and libbpf relocates them against the running kernel's
 * BTF (CO-RE), so one object serves every kernel with BTF and task
 * iterators (Linux 5.8 and later). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "agent/taskiter_abi.h"

struct task_io_accounting {
	__u64 rchar, wchar, syscr, syscw, read_bytes, write_bytes, cancelled_write_bytes;
} __attribute__((preserve_access_index));

struct sched_entity {
	__u64 sum_exec_runtime;
} __attribute__((preserve_access_index));

struct signal_struct {
	struct task_io_accounting ioac;
	__u64 sum_sched_runtime;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
	struct sched_entity se;
	struct task_io_accounting ioac;
	struct signal_struct *signal;
} __attribute__((preserve_access_index));

struct bpf_iter_meta {
	void *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
} __attribute__((preserve_access_index));

/* a bit per watched tgid: most tasks of a host are no VM's, and one array
 * load (inlined by the verifier) says so where a hash lookup costs a
 * helper call and a hash */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, TASKITER_PID_LIMIT / 64);
	__type(key, __u32);
	__type(value, __u64);
} wbits SEC(".maps");

/* tgid -> slot in accs; the agent keeps it */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TASKITER_MAX);
	__type(key, __u32);
	__type(value, __u32);
} watched SEC(".maps");

/* the sums, by slot; the agent zeroes them before each pass */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, TASKITER_MAX);
	__type(key, __u32);
	__type(value, struct taskiter_acc);
} accs SEC(".maps");

static __always_inline void add_io(struct taskiter_acc *a, const struct task_io_accounting *io)
{
	a->rchar += io->rchar;
	a->wchar += io->wchar;
	a->syscr += io->syscr;
	a->syscw += io->syscw;
	if (bpf_core_field_exists(io->read_bytes)) {
		/* CONFIG_TASK_IO_ACCOUNTING */
		a->read_bytes += io->read_bytes;
		a->write_bytes += io->write_bytes;
		a->cancelled_write_bytes += io->cancelled_write_bytes;
		a->flags |= TASKITER_HAS_BYTES;
	}
}

SEC("iter/task")
int taskiter_sum(struct bpf_iter__task *ctx)
{
	struct task_struct *t = ctx->task;
	struct taskiter_acc *a;
	__u32 tgid, *slot;

	if (!t)
		return 0; /* the end of the pass */
	tgid = (__u32)t->tgid;
	if (tgid < TASKITER_PID_LIMIT) {
		__u32 w = tgid / 64;
		__u64 *bits = bpf_map_lookup_elem(&wbits, &w);
		if (!bits || !(*bits & (1ull << (tgid % 64))))
			return 0;
	}
	slot = bpf_map_lookup_elem(&watched, &tgid);
	if (!slot)
		return 0;
	a = bpf_map_lookup_elem(&accs, slot);
	if (!a)
		return 0;
	a->threads++;
	a->runtime_ns += t->se.sum_exec_runtime;
	add_io(a, &t->ioac);
	if (t->pid == t->tgid) {
		/* the leader: once per process, what its exited threads left */
		struct signal_struct *s = t->signal;
		a->runtime_ns += s->sum_sched_runtime;
		add_io(a, &s->ioac);
		a->flags |= TASKITER_HAS_LEADER;
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
