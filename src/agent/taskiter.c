#include "agent/taskiter.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#ifdef HAVE_BPF

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent/taskiter.bpf.h" /* taskiter_bpf_o[], made by the build */
#include "common/log.h"
#include "common/util.h"

struct taskiter {
	struct bpf_object *obj;
	struct bpf_link *link;
	int fd_watched;
	__u64 *wbits; /* the wbits map, mapped */
	size_t wbitslen;
	struct taskiter_acc *accs; /* the accs map, mapped */
	size_t maplen;
	int hi; /* slots below it may be in use */
	int nfree;
	int free[TASKITER_MAX]; /* a stack of free slots below hi */
};

/* libbpf's messages go to the log at debug level: the reason for a failure
 * reaches the user through taskiter_open()'s err */
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	if (level == LIBBPF_DEBUG || log_get_level() < LOG_LVL_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	log_debug("libbpf: %s", line);
	return 0;
}

/* Whether this process sees the host's pids: its NSpid line in
 * /proc/self/status has one number (a child PID namespace adds one). */
static int host_pid_ns(char *err, size_t cap)
{
	char buf[4096];
	size_t len;
	const char *p;
	int rc = util_read_file("/", "/proc/self/status", buf, sizeof(buf), &len);

	if (rc) {
		snprintf(err, cap, "/proc/self/status: %s", strerror(-rc));
		return rc;
	}
	p = strstr(buf, "\nNSpid:");
	if (!p)
		return 0; /* Linux < 4.1: no PID namespaces to tell apart */
	p += 7;
	while (*p == ' ' || *p == '\t')
		p++;
	while (*p >= '0' && *p <= '9')
		p++;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p >= '0' && *p <= '9') {
		snprintf(err, cap,
		         "the agent runs in a child PID namespace: the kernel's pids "
		         "are not its /proc's");
		return -ENOTSUP;
	}
	return 0;
}

int taskiter_open(struct taskiter **out, char *err, size_t cap)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "taskiter");
	struct bpf_program *prog;
	struct bpf_map *map;
	struct taskiter *t;
	int rc;

	*out = NULL;
	err[0] = '\0';
	rc = host_pid_ns(err, cap);
	if (rc)
		return rc;
	t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, cap, "out of memory");
		return -ENOMEM;
	}
	t->fd_watched = -1;
	t->accs = MAP_FAILED;
	t->wbits = MAP_FAILED;
	libbpf_set_print(libbpf_log);
	t->obj = bpf_object__open_mem(taskiter_bpf_o, taskiter_bpf_o_len, &opts);
	if (!t->obj) {
		rc = -errno;
		snprintf(err, cap, "the BPF object does not open: %s", strerror(-rc));
		goto fail;
	}
	rc = bpf_object__load(t->obj);
	if (rc) {
		snprintf(err, cap,
		         "the BPF program does not load: %s (it needs CAP_BPF and CAP_PERFMON or "
		         "root, and Linux 5.8 or later with BTF in /sys/kernel/btf/vmlinux)",
		         strerror(-rc));
		goto fail;
	}
	prog = bpf_object__find_program_by_name(t->obj, "taskiter_sum");
	t->link = prog ? bpf_program__attach_iter(prog, NULL) : NULL;
	if (!t->link) {
		rc = prog ? -errno : -ENOENT;
		snprintf(err, cap, "the task iterator does not attach: %s", strerror(-rc));
		goto fail;
	}
	t->fd_watched = bpf_object__find_map_fd_by_name(t->obj, "watched");
	map = bpf_object__find_map_by_name(t->obj, "accs");
	if (t->fd_watched < 0 || !map) {
		rc = -ENOENT;
		snprintf(err, cap, "the BPF object lacks its maps");
		goto fail;
	}
	t->wbitslen = TASKITER_PID_LIMIT / 8;
	map = bpf_object__find_map_by_name(t->obj, "wbits");
	t->wbits =
	    map ? mmap(NULL, t->wbitslen, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0)
	        : MAP_FAILED;
	if (t->wbits == MAP_FAILED) {
		rc = map ? -errno : -ENOENT;
		snprintf(err, cap, "the watched-process bitmap does not map: %s", strerror(-rc));
		goto fail;
	}
	map = bpf_object__find_map_by_name(t->obj, "accs");
	t->maplen = sizeof(struct taskiter_acc) * TASKITER_MAX;
	t->accs = mmap(NULL, t->maplen, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);
	if (t->accs == MAP_FAILED) {
		rc = -errno;
		snprintf(err, cap, "the sums map does not map: %s", strerror(-rc));
		goto fail;
	}
	/* a pass that works, or the reader is no use */
	rc = taskiter_run(t);
	if (rc) {
		snprintf(err, cap, "the task iterator does not read: %s", strerror(-rc));
		goto fail;
	}
	*out = t;
	return 0;
fail:
	taskiter_free(t);
	return rc < 0 ? rc : -EINVAL;
}

void taskiter_free(struct taskiter *t)
{
	if (!t)
		return;
	if (t->accs != MAP_FAILED)
		munmap(t->accs, t->maplen);
	if (t->wbits != MAP_FAILED)
		munmap(t->wbits, t->wbitslen);
	bpf_link__destroy(t->link);
	bpf_object__close(t->obj);
	free(t);
}

int taskiter_watch(struct taskiter *t, int pid)
{
	__u32 key = (__u32)pid, slot;

	if (pid <= 0)
		return -1;
	if (t->nfree)
		slot = (__u32)t->free[--t->nfree];
	else if (t->hi < TASKITER_MAX)
		slot = (__u32)t->hi++;
	else
		return -1;
	memset(&t->accs[slot], 0, sizeof(t->accs[slot]));
	if (bpf_map_update_elem(t->fd_watched, &key, &slot, BPF_ANY) < 0) {
		t->free[t->nfree++] = (int)slot;
		return -1;
	}
	if (key < TASKITER_PID_LIMIT)
		__atomic_fetch_or(&t->wbits[key / 64], 1ull << (key % 64), __ATOMIC_RELAXED);
	return (int)slot;
}

void taskiter_unwatch(struct taskiter *t, int pid, int slot)
{
	__u32 key = (__u32)pid, cur;

	if (slot < 0 || slot >= t->hi)
		return;
	/* only if pid is still on this slot (a pid watched twice keeps the
	 * later slot) */
	if (bpf_map_lookup_elem(t->fd_watched, &key, &cur) == 0 && cur == (__u32)slot) {
		bpf_map_delete_elem(t->fd_watched, &key);
		if (key < TASKITER_PID_LIMIT)
			__atomic_fetch_and(&t->wbits[key / 64], ~(1ull << (key % 64)),
			                   __ATOMIC_RELAXED);
	}
	memset(&t->accs[slot], 0, sizeof(t->accs[slot]));
	t->free[t->nfree++] = slot;
}

int taskiter_run(struct taskiter *t)
{
	char buf[64];
	ssize_t n;
	int fd, rc = -EAGAIN;

	memset(t->accs, 0, sizeof(*t->accs) * (size_t)t->hi);
	fd = bpf_iter_create(bpf_link__fd(t->link));
	if (fd < 0)
		return -errno;
	/* the program writes nothing: one read makes the whole pass (the
	 * kernel stops a read after a million tasks with EAGAIN) */
	for (int tries = 0; tries < 64; tries++) {
		n = read(fd, buf, sizeof(buf));
		if (n == 0) {
			rc = 0;
			break;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			rc = -errno;
			break;
		}
	}
	close(fd);
	if (rc)
		memset(t->accs, 0, sizeof(*t->accs) * (size_t)t->hi);
	return rc;
}

const struct taskiter_acc *taskiter_get(const struct taskiter *t, int slot)
{
	return slot >= 0 && slot < t->hi ? &t->accs[slot] : NULL;
}

#else /* !HAVE_BPF */

int taskiter_open(struct taskiter **out, char *err, size_t cap)
{
	*out = NULL;
	snprintf(err, cap, "this loadease was built without libbpf (meson -Dbpf=disabled)");
	return -ENOTSUP;
}

void taskiter_free(struct taskiter *t)
{
	(void)t;
}

int taskiter_watch(struct taskiter *t, int pid)
{
	(void)t;
	(void)pid;
	return -1;
}

void taskiter_unwatch(struct taskiter *t, int pid, int slot)
{
	(void)t;
	(void)pid;
	(void)slot;
}

int taskiter_run(struct taskiter *t)
{
	(void)t;
	return -ENOTSUP;
}

const struct taskiter_acc *taskiter_get(const struct taskiter *t, int slot)
{
	(void)t;
	(void)slot;
	return NULL;
}

#endif
