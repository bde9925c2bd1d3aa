/* test_taskiter.c - the BPF task reader against the kernel's own figures.
 *
 * A child process with threads that burn CPU and do I/O, one of which has
 * exited, is stopped (SIGSTOP): no thread is running, so the process CPU
 * clock and /proc/<pid>/io are final and the reader's sums must equal them
 * to the nanosecond and the byte. Then the reader in the sampler: the same
 * figures through sampler_read_vm, a process that exits reads as gone.
 *
 * The tests need the reader: root (or CAP_BPF and CAP_PERFMON), a kernel
 * with BTF, a build with libbpf. They skip without one of those (the
 * reason is printed), and fail when all are there and the reader does not
 * open.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/procfs.h"
#include "agent/sampler.h"
#include "agent/taskiter.h"
#include "common/util.h"

#define WORKERS    3
#define IO_ROUNDS  10
#define READ_SIZE  777
#define WRITE_SIZE 1234
#define BURN_NS    20000000L

/* The reader, or a skip saying why it cannot be had here. */
static struct taskiter *open_or_skip(void)
{
	struct taskiter *t;
	char err[256];
	int rc = taskiter_open(&t, err, sizeof(err));

	if (rc == 0)
		return t;
	if (rc == -ENOTSUP || geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
		print_message("skipped: %s\n", err);
		skip();
	}
	fail_msg("root, kernel BTF and a libbpf build, and still: %s", err);
	return NULL;
}

static void burn(long ns)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	do
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec < ns);
}

static void *worker(void *arg)
{
	char buf[WRITE_SIZE];
	int zero = open("/dev/zero", O_RDONLY), null = open("/dev/null", O_WRONLY);

	memset(buf, 'x', sizeof(buf));
	burn(BURN_NS);
	for (int i = 0; i < IO_ROUNDS; i++) {
		if (read(zero, buf, READ_SIZE) != READ_SIZE || write(null, buf, WRITE_SIZE) < 0)
			_exit(3);
	}
	close(zero);
	close(null);
	if (arg) /* stays: a live thread */
		for (;;)
			pause();
	return NULL;
}

/* A child with WORKERS threads (the first exits when done) that stops
 * itself once they are done; returned stopped. */
static pid_t stopped_child(void)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		pthread_t th[WORKERS];
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (int i = 0; i < WORKERS; i++)
			if (pthread_create(&th[i], NULL, worker, i ? (void *)1 : NULL))
				_exit(2);
		pthread_join(th[0], NULL);
		burn(BURN_NS / 2);
		usleep(50000); /* the others finish their I/O */
		raise(SIGSTOP);
		for (;;)
			pause();
	}
	assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
	assert_true(WIFSTOPPED(status));
	return pid;
}

static void reap(pid_t pid)
{
	int status;

	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
}

static uint64_t clock_of(pid_t pid)
{
	clockid_t clk;
	struct timespec ts;

	assert_int_equal(clock_getcpuclockid(pid, &clk), 0);
	assert_int_equal(clock_gettime(clk, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void io_of(pid_t pid, struct procfs_pid_io *io)
{
	char path[64], buf[1024];
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	assert_int_equal(util_read_file("/", path, buf, sizeof(buf), &len), 0);
	assert_int_equal(procfs_parse_pid_io(buf, len, io), 0);
}

/* A stopped process: the sums are the kernel's, exactly; its exited
 * thread's share is in them; other processes are not. */
static void test_sums_equal_kernel(void **state)
{
	struct taskiter *t = open_or_skip();
	pid_t pid = stopped_child(), other = stopped_child();
	const struct taskiter_acc *a;
	struct procfs_pid_io io;
	int slot;

	slot = taskiter_watch(t, (int)pid);
	assert_true(slot >= 0);
	assert_int_equal(taskiter_run(t), 0);
	a = taskiter_get(t, slot);
	assert_non_null(a);
	assert_int_equal(a->threads, WORKERS); /* the leader and 2 live workers */
	assert_true(a->flags & TASKITER_HAS_LEADER);
	assert_true(a->flags & TASKITER_HAS_BYTES);
	assert_int_equal(a->runtime_ns, clock_of(pid));
	assert_true(a->runtime_ns >= (uint64_t)(WORKERS * BURN_NS + BURN_NS / 2));
	io_of(pid, &io);
	assert_int_equal(a->rchar, io.rchar);
	assert_int_equal(a->wchar, io.wchar);
	assert_int_equal(a->syscr, io.syscr);
	assert_int_equal(a->syscw, io.syscw);
	assert_int_equal(a->read_bytes, io.read_bytes);
	assert_int_equal(a->write_bytes, io.write_bytes);
	assert_int_equal(a->cancelled_write_bytes, io.cancelled_write_bytes);
	/* every worker's reads and writes, the exited one's too */
	assert_true(a->rchar >= (uint64_t)WORKERS * IO_ROUNDS * READ_SIZE);
	assert_true(a->wchar >= (uint64_t)WORKERS * IO_ROUNDS * WRITE_SIZE);

	/* the same again: a pass starts from zero */
	assert_int_equal(taskiter_run(t), 0);
	assert_int_equal(taskiter_get(t, slot)->runtime_ns, clock_of(pid));
	assert_int_equal(taskiter_get(t, slot)->threads, WORKERS);

	/* the other child, watched now, has its own sums */
	{
		int s2 = taskiter_watch(t, (int)other);
		assert_true(s2 >= 0 && s2 != slot);
		assert_int_equal(taskiter_run(t), 0);
		assert_int_equal(taskiter_get(t, s2)->runtime_ns, clock_of(other));
		assert_int_equal(taskiter_get(t, slot)->runtime_ns, clock_of(pid));
		taskiter_unwatch(t, (int)other, s2);
	}
	reap(other);
	reap(pid);
	taskiter_free(t);
}

/* Unwatched, exited, or never there: not found (threads 0). */
static void test_not_found(void **state)
{
	struct taskiter *t = open_or_skip();
	pid_t pid = stopped_child();
	int slot = taskiter_watch(t, (int)pid), dead;

	assert_true(slot >= 0);
	assert_int_equal(taskiter_run(t), 0);
	assert_int_equal(taskiter_get(t, slot)->threads, WORKERS);
	taskiter_unwatch(t, (int)pid, slot);
	assert_int_equal(taskiter_run(t), 0);
	/* the slot may be reused; nothing is summed into it now */
	assert_true(taskiter_get(t, slot) == NULL || taskiter_get(t, slot)->threads == 0);

	slot = taskiter_watch(t, (int)pid);
	assert_true(slot >= 0);
	reap(pid);
	assert_int_equal(taskiter_run(t), 0);
	assert_int_equal(taskiter_get(t, slot)->threads, 0);
	assert_int_equal(taskiter_get(t, slot)->runtime_ns, 0);
	taskiter_unwatch(t, (int)pid, slot);

	/* a pid no process has (above pid_max) */
	dead = taskiter_watch(t, 1 << 30);
	assert_true(dead >= 0);
	assert_int_equal(taskiter_run(t), 0);
	assert_int_equal(taskiter_get(t, dead)->threads, 0);
	assert_null(taskiter_get(t, -1));
	assert_null(taskiter_get(t, TASKITER_MAX));
	assert_int_equal(taskiter_watch(t, 0), -1);
	assert_int_equal(taskiter_watch(t, -5), -1);
	taskiter_free(t);
}

/* Slots come back: many watch/unwatch rounds never run out; TASKITER_MAX
 * processes at once fit and one more is refused (read from /proc then). */
static void test_slots(void **state)
{
	static int slots[TASKITER_MAX];
	struct taskiter *t = open_or_skip();

	for (int i = 0; i < 3 * TASKITER_MAX; i++) {
		int s = taskiter_watch(t, 100000 + i);
		assert_true(s >= 0 && s < 2);
		taskiter_unwatch(t, 100000 + i, s);
	}
	for (int i = 0; i < TASKITER_MAX; i++) {
		slots[i] = taskiter_watch(t, 200000 + i);
		assert_true(slots[i] >= 0);
	}
	assert_int_equal(taskiter_watch(t, 900000), -1);
	taskiter_unwatch(t, 200000 + 7, slots[7]);
	assert_int_equal(taskiter_watch(t, 900000), slots[7]);
	assert_int_equal(taskiter_run(t), 0);
	taskiter_free(t);
}

/* A sampler of the live system with a task reader (monitor.bpf = auto). */
static void live_sampler(struct sampler_opts *o, struct sampler_cache *cache)
{
	sampler_cache_init(cache);
	cache->ti = open_or_skip();
	memset(o, 0, sizeof(*o));
	strcpy(o->root, "/");
	o->cpus = 2;
	o->hz = sysconf(_SC_CLK_TCK);
	o->page_kib = sysconf(_SC_PAGESIZE) / 1024;
	o->cache = cache;
}

/* In the sampler: the first reading of a VM comes from the CPU clock and
 * /proc/<pid>/io and puts it in the passes; the next from the pass, the same
 * figures (the process is stopped). A process that exits reads as gone. */
static void test_sampler_reads_through_it(void **state)
{
	struct sampler_cache cache;
	struct sampler_opts o;
	struct vm_desc d = {.id = "vm1", .mem_mib = 1024, .vcpus = 1};
	struct vm_raw r1, r2;
	struct vm_sample s;
	struct procfs_pid_io io;
	pid_t pid;

	live_sampler(&o, &cache);
	cache.ti_forced = true; /* monitor.bpf = on */
	pid = stopped_child();
	d.pid = (int)pid;

	sampler_read_tasks(&o);
	assert_true(cache.ti_ok);
	sampler_read_vm(&o, &d, NULL, NULL, -ENOENT, &r1);
	assert_int_equal(r1.rc_stat, 0);
	assert_true(cache.npids == 1 && cache.pids[0].ti_slot >= 0);
	sampler_cache_sweep(&cache);

	sampler_read_tasks(&o);
	assert_true(cache.ti_ok);
	assert_int_equal(taskiter_get(cache.ti, cache.pids[0].ti_slot)->threads, WORKERS);
	sampler_read_vm(&o, &d, NULL, NULL, -ENOENT, &r2);
	assert_int_equal(r2.rc_stat, 0);
	assert_int_equal(r2.cpu_ns, clock_of(pid));
	assert_int_equal(r2.cpu_ns, r1.cpu_ns);
	assert_true(r2.ok_io);
	io_of(pid, &io);
	assert_memory_equal(&r2.io, &io, sizeof(io));
	assert_memory_equal(&r2.io, &r1.io, sizeof(io));
	assert_int_equal(r2.rss_pages, r1.rss_pages);
	/* its counters are as of the pass: rates over the pass's interval */
	assert_int_equal(r2.mono_ns, cache.ti_mono_ns);
	sampler_vm_delta(&o, &d, &r1, &r2, &s);
	assert_int_equal(s.status, VM_OK);
	sampler_cache_sweep(&cache);

	/* a pass whose counters are below the last reading (a thread that
	 * exited while it ran was missed): that sample comes from /proc */
	cache.pids[0].io.rchar = UINT64_MAX;
	sampler_read_tasks(&o);
	sampler_read_vm(&o, &d, NULL, NULL, -ENOENT, &r1);
	assert_int_equal(r1.rc_stat, 0);
	assert_true(r1.mono_ns > cache.ti_mono_ns); /* read after the pass, by the clock */
	assert_int_equal(r1.cpu_ns, clock_of(pid));
	assert_memory_equal(&r1.io, &io, sizeof(io));
	sampler_cache_sweep(&cache);
	sampler_read_tasks(&o); /* and the next from the pass again */
	sampler_read_vm(&o, &d, NULL, NULL, -ENOENT, &r2);
	assert_int_equal(r2.mono_ns, cache.ti_mono_ns);
	assert_memory_equal(&r2.io, &io, sizeof(io));
	sampler_cache_sweep(&cache);

	reap(pid);
	sampler_read_tasks(&o);
	sampler_read_vm(&o, &d, NULL, NULL, -ENOENT, &r1);
	assert_true(r1.rc_stat == -ESRCH || r1.rc_stat == -ENOENT);
	sampler_vm_delta(&o, &d, &r2, &r1, &s);
	assert_int_equal(s.status, VM_GONE);
	sampler_cache_sweep(&cache);
	sampler_cache_sweep(&cache); /* not read: unwatched and closed */
	assert_int_equal(cache.npids, 0);
	sampler_cache_release(&cache);
}

/* One sample of the VMs d[0..n) the agent's way: the pass, each VM, the sweep. */
static void sample(struct sampler_opts *o, struct vm_desc *d, int n, struct vm_raw *r)
{
	sampler_read_tasks(o);
	for (int i = 0; i < n; i++)
		sampler_read_vm(o, &d[i], NULL, NULL, -ENOENT, &r[i]);
	sampler_cache_sweep(o->cache);
}

/* monitor.bpf = auto: both readers are timed in SAMPLER_READER_ROUND
 * samples once VMs are watched, the cheaper is used, and a quarter more
 * VMs times them again; the figures are the kernel's either way. */
static void test_auto_times_both(void **state)
{
	enum { N1 = 4, N2 = 8 };
	struct sampler_cache cache;
	struct sampler_opts o;
	struct vm_desc d[N2];
	struct vm_raw r[N2];
	pid_t pid[N2];
	int s;

	live_sampler(&o, &cache);
	for (int i = 0; i < N2; i++) {
		memset(&d[i], 0, sizeof(d[i]));
		snprintf(d[i].id, sizeof(d[i].id), "vm%d", i);
		d[i].pid = (int)(pid[i] = stopped_child());
		d[i].vcpus = 1;
		d[i].mem_mib = 256;
	}

	sample(&o, d, N1, r); /* met: watched from the next sample */
	assert_int_equal(cache.ti_decisions, 0);
	for (s = 0; s < SAMPLER_READER_ROUND; s++) {
		assert_int_equal(cache.ti_decisions, 0);
		sample(&o, d, N1, r);
		/* timed, but the VMs are read the way in use (/proc until decided) */
		assert_false(cache.ti_ok);
	}
	assert_int_equal(cache.ti_decisions, 1);
	assert_int_equal(cache.ti_nwatch, N1);
	assert_true(cache.ti_cost_pass > 0 && cache.ti_cost_pass < UINT64_MAX);
	assert_true(cache.ti_cost_proc > 0 && cache.ti_cost_proc < UINT64_MAX);
	assert_int_equal(cache.ti_use, cache.ti_cost_pass < cache.ti_cost_proc);
	print_message("pass %.1f us, /proc reads of %d processes %.1f us: %s\n",
	              (double)cache.ti_cost_pass / 1000, N1, (double)cache.ti_cost_proc / 1000,
	              cache.ti_use ? "the pass" : "/proc");

	/* decided: the pass only when it is the cheaper; same figures */
	sample(&o, d, N1, r);
	assert_int_equal(cache.ti_ok, cache.ti_use);
	for (int i = 0; i < N1; i++) {
		assert_int_equal(r[i].rc_stat, 0);
		assert_int_equal(r[i].cpu_ns, clock_of(pid[i]));
		assert_true(r[i].ok_io);
	}
	assert_int_equal(cache.ti_decisions, 1);

	/* twice the VMs: timed again, read the way decided meanwhile */
	sample(&o, d, N2, r);
	for (s = 0; s < SAMPLER_READER_ROUND; s++) {
		bool use = cache.ti_use;
		sample(&o, d, N2, r);
		assert_int_equal(cache.ti_ok, use);
	}
	assert_int_equal(cache.ti_decisions, 2);
	assert_int_equal(cache.ti_nwatch, N2);
	for (int i = 0; i < N2; i++) {
		assert_int_equal(r[i].cpu_ns, clock_of(pid[i]));
		reap(pid[i]);
	}

	/* no VM left: no passes at all */
	sample(&o, d, 0, r);
	sample(&o, d, 0, r);
	assert_int_equal(cache.npids, 0);
	sampler_read_tasks(&o);
	assert_false(cache.ti_use);
	assert_false(cache.ti_ok);
	sampler_cache_release(&cache);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sums_equal_kernel),
	    cmocka_unit_test(test_not_found),
	    cmocka_unit_test(test_slots),
	    cmocka_unit_test(test_sampler_reads_through_it),
	    cmocka_unit_test(test_auto_times_both),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
