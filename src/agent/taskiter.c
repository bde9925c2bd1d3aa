#include "agent/taskiter.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#ifdef HAVE_BPF

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent/taskiter.bpf.h" /* taskiter_bpf_o[], made by the build */
#include "common/log.h"
#include "common/util.h"

struct taskiter {
	int fd_link, fd_watched, fd_wbits, fd_accs;
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

/* The kernel objects the reader uses, as descriptors. */
enum { FD_LINK, FD_WATCHED, FD_WBITS, FD_ACCS, NFDS };

/* Loads and attaches the program (libbpf), and finds its maps: fds[] are
 * the object's own descriptors, valid while obj lives. */
static int load(struct bpf_object **obj, struct bpf_link **link, int fds[NFDS], char *err,
                size_t cap)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "taskiter");
	static const char *const maps[] = {"watched", "wbits", "accs"};
	struct bpf_program *prog;
	int rc;

	libbpf_set_print(libbpf_log);
	*obj = bpf_object__open_mem(taskiter_bpf_o, taskiter_bpf_o_len, &opts);
	if (!*obj) {
		rc = -errno;
		snprintf(err, cap, "the BPF object does not open: %s", strerror(-rc));
		return rc;
	}
	rc = bpf_object__load(*obj);
	if (rc) {
		snprintf(err, cap,
		         "the BPF program does not load: %s (it needs CAP_BPF and CAP_PERFMON or "
		         "root, and Linux 5.8 or later with BTF in /sys/kernel/btf/vmlinux)",
		         strerror(-rc));
		return rc;
	}
	prog = bpf_object__find_program_by_name(*obj, "taskiter_sum");
	*link = prog ? bpf_program__attach_iter(prog, NULL) : NULL;
	if (!*link) {
		rc = prog ? -errno : -ENOENT;
		snprintf(err, cap, "the task iterator does not attach: %s", strerror(-rc));
		return rc;
	}
	fds[FD_LINK] = bpf_link__fd(*link);
	for (int i = 0; i < 3; i++) {
		fds[FD_WATCHED + i] = bpf_object__find_map_fd_by_name(*obj, maps[i]);
		if (fds[FD_WATCHED + i] < 0) {
			snprintf(err, cap, "the BPF object lacks its map %s", maps[i]);
			return -ENOENT;
		}
	}
	return 0;
}

/* What the loading child says: rc and err; on success the descriptors
 * come along (SCM_RIGHTS). */
struct load_reply {
	int rc;
	char err[256];
};

/* libbpf reads the kernel's whole BTF to relocate the program (about 10 MiB
 * on a recent kernel, freed after): done in a child that hands the
 * descriptors over and exits, the agent's own memory never grows by it. */
static int load_in_child(int fds[NFDS], char *err, size_t cap)
{
	char ctl[CMSG_SPACE(sizeof(int) * NFDS)];
	struct load_reply rep = {.rc = -EIO};
	struct iovec iov = {.iov_base = &rep, .iov_len = sizeof(rep)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;
	int sv[2], status;
	ssize_t n;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, cap, "socketpair: %s", strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		snprintf(err, cap, "fork: %s", strerror(e));
		return -e;
	}
	if (pid == 0) {
		struct bpf_object *obj = NULL;
		struct bpf_link *link = NULL;
		int cfds[NFDS];
		close(sv[0]);
		rep.rc = load(&obj, &link, cfds, rep.err, sizeof(rep.err));
		if (rep.rc == 0) {
			memset(ctl, 0, sizeof(ctl));
			mh.msg_control = ctl;
			mh.msg_controllen = sizeof(ctl);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int) * NFDS);
			memcpy(CMSG_DATA(cm), cfds, sizeof(cfds));
		}
		_exit(sendmsg(sv[1], &mh, 0) < 0 ? 1 : 0);
	}
	close(sv[1]);
	mh.msg_control = ctl;
	mh.msg_controllen = sizeof(ctl);
	do
		n = recvmsg(sv[0], &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	close(sv[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(rep)) {
		snprintf(err, cap, "the BPF loader process ended without an answer");
		return -EIO;
	}
	if (rep.rc) {
		snprintf(err, cap, "%s", rep.err);
		return rep.rc < 0 ? rep.rc : -EINVAL;
	}
	cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
	    cm->cmsg_len != CMSG_LEN(sizeof(int) * NFDS)) {
		/* whatever came is closed */
		for (; cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; (i + 1) * sizeof(int) <= cm->cmsg_len - CMSG_LEN(0);
			     i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
				close(fd);
			}
		}
		snprintf(err, cap, "the BPF loader process sent no descriptors");
		return -EIO;
	}
	memcpy(fds, CMSG_DATA(cm), sizeof(int) * NFDS);
	return 0;
}

int taskiter_open(struct taskiter **out, char *err, size_t cap)
{
	int fds[NFDS], rc;
	struct taskiter *t;

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
	t->fd_link = t->fd_watched = t->fd_wbits = t->fd_accs = -1;
	t->accs = MAP_FAILED;
	t->wbits = MAP_FAILED;
	rc = load_in_child(fds, err, cap);
	if (rc)
		goto fail;
	t->fd_link = fds[FD_LINK];
	t->fd_watched = fds[FD_WATCHED];
	t->fd_wbits = fds[FD_WBITS];
	t->fd_accs = fds[FD_ACCS];
	t->wbitslen = TASKITER_PID_LIMIT / 8;
	t->wbits = mmap(NULL, t->wbitslen, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd_wbits, 0);
	if (t->wbits == MAP_FAILED) {
		rc = -errno;
		snprintf(err, cap, "the watched-process bitmap does not map: %s", strerror(-rc));
		goto fail;
	}
	t->maplen = sizeof(struct taskiter_acc) * TASKITER_MAX;
	t->accs = mmap(NULL, t->maplen, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd_accs, 0);
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
	int fds[] = {t->fd_link, t->fd_watched, t->fd_wbits, t->fd_accs};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
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
	fd = bpf_iter_create(t->fd_link);
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
