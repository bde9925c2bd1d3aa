/*
 * loadease-guestload: the workload of the LoadEase test guest.
 *
 * Runs inside the guest (as PID 1, exec'd by the initramfs /init) and takes
 * one command per line on the virtio-serial port named
 * org.loadease.guestload:
 *
 *   cpu <0-100>     duty cycle of one burner thread per online vCPU
 *   mem <MiB>       resident memory, every page written and re-written
 *   net <Mbit/s>    UDP datagrams to the sink at that rate (frame bytes)
 *   status          one line of JSON: uptime, counter, settings, bytes sent,
 *                   and the vCPUs and memory the kernel has now (a resize in
 *                   place: hot-plugged vCPUs, the balloon)
 *
 * A set command answers "ok" or "error <reason>". The counter rises every
 * 10 ms in its own thread, so a test can see the guest keep running across a
 * migration. Datagrams go only to the sink given with --sink or
 * loadease.sink=IP:PORT on the kernel command line, over a connected socket.
 *
 * The host side of the port may go away at any time (a migration moves it):
 * on EOF the program waits for the host to come back; on errors it reopens
 * the port.
 *
 * Static C, libc only: gcc -static -O2 -pthread (see Makefile).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#define GL_PORT_NAME       "org.loadease.guestload"
#define GL_LINE_MAX        256
#define GL_MAX_CPUS        256
#define GL_CPU_PERIOD_NS   (100 * 1000000LL) /* one duty-cycle period */
#define GL_COUNTER_TICK_NS (10 * 1000000LL)
#define GL_NET_TICK_NS     (5 * 1000000LL)
#define GL_NET_MAX_MBIT    1000
#define GL_PAYLOAD         1200
#define GL_FRAME_OVERHEAD  42 /* UDP 8 + IPv4 20 + Ethernet 14: the rate counts frames */
#define GL_MEM_CHUNK       (1024 * 1024)
#define GL_MEM_RESERVE_MIB 24 /* MemAvailable kept free when growing */
#define GL_MEM_MAX_MIB     (1024 * 1024)
#define GL_RETOUCH_S       1

struct gl_state {
	pthread_mutex_t lock; /* guards the settings below and the chunks */
	pthread_cond_t changed;
	int cpu;           /* duty cycle, percent */
	unsigned net_mbit; /* send rate, Mbit/s of Ethernet frames */
	char **chunks;     /* mem: nchunks mappings of GL_MEM_CHUNK bytes */
	unsigned nchunks;
	bool have_sink;
	struct sockaddr_in sink;
	int ncpu;
	atomic_uint_fast64_t counter;
	atomic_uint_fast64_t sent_bytes; /* UDP payload bytes accepted by send() */
	atomic_uint_fast64_t sent_datagrams;
	atomic_uint_fast64_t send_errors;
};

static struct gl_state gl = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .changed = PTHREAD_COND_INITIALIZER,
};

static void gl_log(const char *fmt, ...)
{
	va_list ap;

	fputs("loadease-guestload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until(int64_t t_ns)
{
	struct timespec ts = {.tv_sec = t_ns / 1000000000LL, .tv_nsec = t_ns % 1000000000LL};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void sleep_ms(int ms)
{
	sleep_until(now_ns(CLOCK_MONOTONIC) + (int64_t)ms * 1000000LL);
}

/* ------------------------------------------------------------------ parsing */

/* "a.b.c.d:port" -> *out; false if malformed or not a unicast address. */
static bool parse_sink(const char *s, struct sockaddr_in *out)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;
	uint32_t a;

	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
		return false;
	memcpy(host, s, colon - s);
	host[colon - s] = '\0';
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
		return false;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port == 0 || port > 65535)
		return false;
	out->sin_port = htons((uint16_t)port);
	a = ntohl(out->sin_addr.s_addr);
	/* 0.0.0.0/8, multicast and reserved (224/3) and loopback are refused */
	return (a >> 24) != 0 && (a >> 24) != 127 && (a >> 29) != 7;
}

/* Strict unsigned decimal, no sign, no junk, at most max. */
static bool parse_uint(const char *s, unsigned max, unsigned *out)
{
	unsigned long v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return false;
	}
	*out = (unsigned)v;
	return true;
}

static bool sink_from_cmdline(struct sockaddr_in *out)
{
	char buf[4096], *tok, *save = NULL;
	FILE *f = fopen("/proc/cmdline", "r");
	bool ok = false;

	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f)) {
		for (tok = strtok_r(buf, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save))
			if (!strncmp(tok, "loadease.sink=", 14))
				ok = parse_sink(tok + 14, out);
	}
	fclose(f);
	return ok;
}

/* ------------------------------------------------------------------ workers */

static void *counter_main(void *arg)
{
	int64_t next = now_ns(CLOCK_MONOTONIC);

	for (;;) {
		next += GL_COUNTER_TICK_NS;
		sleep_until(next);
		atomic_fetch_add(&gl.counter, 1);
		if (now_ns(CLOCK_MONOTONIC) > next + 1000000000LL)
			next = now_ns(CLOCK_MONOTONIC); /* paused (migration, stop): no burst */
	}
	return NULL;
}

static void *burner_main(void *arg)
{
	long cpu = (long)arg;
	cpu_set_t set;
	volatile uint64_t acc = 0;

	CPU_ZERO(&set);
	CPU_SET((int)cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* best effort */
	for (;;) {
		int64_t start, busy_until;
		int duty;

		pthread_mutex_lock(&gl.lock);
		while (gl.cpu == 0)
			pthread_cond_wait(&gl.changed, &gl.lock);
		duty = gl.cpu;
		pthread_mutex_unlock(&gl.lock);

		start = now_ns(CLOCK_MONOTONIC);
		busy_until = start + GL_CPU_PERIOD_NS * duty / 100;
		while (now_ns(CLOCK_MONOTONIC) < busy_until)
			for (int i = 0; i < 1000; i++)
				acc += (uint64_t)i * 2654435761u;
		if (duty < 100)
			sleep_until(start + GL_CPU_PERIOD_NS);
	}
	return NULL;
}

/* Writes one byte per page of every chunk so the memory stays resident. */
static void *retouch_main(void *arg)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char v = 0;

	for (;;) {
		sleep_ms(GL_RETOUCH_S * 1000);
		v++;
		pthread_mutex_lock(&gl.lock);
		for (unsigned c = 0; c < gl.nchunks; c++)
			for (long off = 0; off < GL_MEM_CHUNK; off += page)
				gl.chunks[c][off] = (char)(v ^ c);
		pthread_mutex_unlock(&gl.lock);
	}
	return NULL;
}

static int sink_socket(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	/* connected: every datagram goes to the sink and nowhere else */
	if (connect(fd, (struct sockaddr *)&gl.sink, sizeof(gl.sink)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *net_main(void *arg)
{
	static char payload[GL_PAYLOAD];
	const double frame = GL_PAYLOAD + GL_FRAME_OVERHEAD;
	double tokens = 0;
	int64_t last = 0;
	int fd = -1, last_errno = 0;

	memcpy(payload, "loadease-guestload", 18);
	for (;;) {
		unsigned mbit;
		int64_t now;
		double rate, cap;

		pthread_mutex_lock(&gl.lock);
		while (gl.net_mbit == 0) {
			last = 0;
			pthread_cond_wait(&gl.changed, &gl.lock);
		}
		mbit = gl.net_mbit;
		pthread_mutex_unlock(&gl.lock);

		if (fd < 0 && (fd = sink_socket()) < 0) {
			if (errno != last_errno)
				gl_log("sink socket: %s (retrying)", strerror(errno));
			last_errno = errno;
			sleep_ms(500);
			continue;
		}
		rate = mbit * 1e6 / 8; /* frame bytes per second */
		cap = rate * 0.02 > 2 * frame ? rate * 0.02 : 2 * frame;
		now = now_ns(CLOCK_MONOTONIC);
		if (last)
			tokens += (double)(now - last) / 1e9 * rate;
		last = now;
		if (tokens > cap)
			tokens = cap;
		while (tokens >= frame) {
			tokens -= frame; /* a failed send spends its tokens too */
			ssize_t n = send(fd, payload, sizeof(payload), 0);

			/* an ICMP port unreachable from the sink comes back as the
			 * next send's ECONNREFUSED, which then sent nothing: again */
			if (n < 0 && errno == ECONNREFUSED)
				n = send(fd, payload, sizeof(payload), 0);
			if (n == (ssize_t)sizeof(payload)) {
				atomic_fetch_add(&gl.sent_bytes, sizeof(payload));
				atomic_fetch_add(&gl.sent_datagrams, 1);
				last_errno = 0;
			} else {
				atomic_fetch_add(&gl.send_errors, 1);
				if (errno != last_errno && errno != ECONNREFUSED)
					gl_log("send to sink: %s", strerror(errno));
				last_errno = errno;
				if (errno == EAGAIN || errno == ENOBUFS)
					break;
			}
		}
		sleep_until(now + GL_NET_TICK_NS);
	}
	return NULL;
}

/* ------------------------------------------------------------------ commands */

static long mem_available_mib(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb / 1024;
}

/* Called with gl.lock held. */
static int set_mem(unsigned mib, char *err, size_t errlen)
{
	char **chunks;
	unsigned have = gl.nchunks;

	if (mib > have) {
		long avail = mem_available_mib();

		if (avail >= 0 && (long)(mib - have) > avail - GL_MEM_RESERVE_MIB) {
			snprintf(err, errlen,
			         "not enough memory: %u MiB more asked, %ld MiB available",
			         mib - have, avail);
			return -ENOMEM;
		}
		chunks = realloc(gl.chunks, mib * sizeof(*chunks));
		if (!chunks) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		gl.chunks = chunks;
		for (; gl.nchunks < mib; gl.nchunks++) {
			void *p = mmap(NULL, GL_MEM_CHUNK, PROT_READ | PROT_WRITE,
			               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (p == MAP_FAILED) {
				snprintf(err, errlen, "cannot map memory: %s", strerror(errno));
				set_mem(have, NULL, 0);
				return -ENOMEM;
			}
			memset(p, 0x5a ^ (int)gl.nchunks, GL_MEM_CHUNK);
			gl.chunks[gl.nchunks] = p;
		}
	}
	for (; gl.nchunks > mib; gl.nchunks--)
		munmap(gl.chunks[gl.nchunks - 1], GL_MEM_CHUNK);
	return 0;
}

/* The CPUs in a sysfs list such as "0-1,3" (/sys/devices/system/cpu/present,
 * online); -1 when it cannot be read. */
static long cpu_list_count(const char *path)
{
	char buf[256], *p = buf;
	long n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	while (*p >= '0' && *p <= '9') {
		long a = strtol(p, &p, 10), b = a;
		if (*p == '-')
			b = strtol(p + 1, &p, 10);
		n += b >= a ? b - a + 1 : 0;
		if (*p != ',')
			break;
		p++;
	}
	return n;
}

/* One command line (no newline) -> one reply line (no newline) in out. */
static void handle_line(char *line, char *out, size_t outlen)
{
	char *argv[3], *save = NULL, err[128];
	int argc = 0;
	unsigned v, max;

	for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
		if (argc == 3) {
			snprintf(out, outlen, "error too many arguments");
			return;
		}
		argv[argc++] = t;
	}
	if (argc == 0) {
		snprintf(out, outlen, "error empty command");
		return;
	}
	if (!strcmp(argv[0], "status") && argc == 1) {
		double up = (double)now_ns(CLOCK_BOOTTIME) / 1e9;
		/* now, not at start: vCPUs the kernel knows (present) and runs
		 * (online), and its MemTotal (the balloon takes pages from it) */
		long present = cpu_list_count("/sys/devices/system/cpu/present");
		long online = cpu_list_count("/sys/devices/system/cpu/online");
		struct sysinfo si;
		unsigned long long total = 0;

		if (sysinfo(&si) == 0)
			total = (unsigned long long)si.totalram * si.mem_unit >> 20;
		pthread_mutex_lock(&gl.lock);
		snprintf(out, outlen,
		         "{\"uptime_s\":%.3f,\"counter\":%" PRIuFAST64 ",\"cpu\":%d,\"mem_mib\":%u,"
		         "\"net_mbit\":%u,\"sent_bytes\":%" PRIuFAST64
		         ",\"sent_datagrams\":%" PRIuFAST64 ",\"send_errors\":%" PRIuFAST64
		         ",\"ncpu\":%d,\"cpus_present\":%ld,\"cpus_online\":%ld,"
		         "\"mem_total_mib\":%llu}",
		         up, atomic_load(&gl.counter), gl.cpu, gl.nchunks, gl.net_mbit,
		         atomic_load(&gl.sent_bytes), atomic_load(&gl.sent_datagrams),
		         atomic_load(&gl.send_errors), gl.ncpu, present, online, total);
		pthread_mutex_unlock(&gl.lock);
		return;
	}
	if (strcmp(argv[0], "cpu") && strcmp(argv[0], "mem") && strcmp(argv[0], "net")) {
		snprintf(out, outlen, "error unknown command (cpu, mem, net, status)");
		return;
	}
	max = !strcmp(argv[0], "cpu")   ? 100
	      : !strcmp(argv[0], "mem") ? GL_MEM_MAX_MIB
	                                : GL_NET_MAX_MBIT;
	if (argc != 2 || !parse_uint(argv[1], max, &v)) {
		snprintf(out, outlen, "error %s wants one integer 0-%u%s", argv[0], max,
		         argv[0][0] == 'c'   ? " (percent)"
		         : argv[0][0] == 'm' ? " (MiB)"
		                             : " (Mbit/s)");
		return;
	}
	if (argv[0][0] == 'n' && v > 0 && !gl.have_sink) {
		snprintf(out, outlen, "error no sink: boot with loadease.sink=IP:PORT");
		return;
	}
	pthread_mutex_lock(&gl.lock);
	if (argv[0][0] == 'c') {
		gl.cpu = (int)v;
	} else if (argv[0][0] == 'n') {
		gl.net_mbit = v;
	} else if (set_mem(v, err, sizeof(err)) < 0) {
		pthread_mutex_unlock(&gl.lock);
		snprintf(out, outlen, "error %s", err);
		return;
	}
	pthread_cond_broadcast(&gl.changed);
	pthread_mutex_unlock(&gl.lock);
	snprintf(out, outlen, "ok");
}

/* ------------------------------------------------------------------ the port */

static int find_port(const char *path, char *out, size_t outlen)
{
	char p[300], name[128];
	struct dirent *de;
	DIR *d;
	int found = -1;

	if (path) {
		snprintf(out, outlen, "%s", path);
		return 0;
	}
	if (access("/dev/virtio-ports/" GL_PORT_NAME, F_OK) == 0) {
		snprintf(out, outlen, "/dev/virtio-ports/" GL_PORT_NAME);
		return 0;
	}
	d = opendir("/sys/class/virtio-ports");
	if (!d)
		return -1;
	while (found < 0 && (de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", de->d_name);
		f = fopen(p, "r");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f)) {
			name[strcspn(name, "\n")] = '\0';
			if (!strcmp(name, GL_PORT_NAME)) {
				snprintf(out, outlen, "/dev/%s", de->d_name);
				found = 0;
			}
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

/* Writes all of buf; gives up after ~2 s if the host side does not read. */
static int write_reply(int fd, const char *buf, size_t len)
{
	int64_t deadline = now_ns(CLOCK_MONOTONIC) + 2000000000LL;

	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (now_ns(CLOCK_MONOTONIC) > deadline)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		poll(&pfd, 1, 100);
	}
	return 0;
}

/* Bytes read from the port, cut into lines. */
struct linebuf {
	char buf[GL_LINE_MAX + 1];
	size_t len;
	bool overflow; /* dropping the rest of an over-long line */
};

/* Answers each complete line; 0, or the negative errno of a failed reply
 * (-ETIMEDOUT: the host side stopped reading, the reply was dropped). */
static int feed(int fd, struct linebuf *lb, const char *data, size_t n)
{
	char reply[512];
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (data[i] != '\n') {
			if (lb->len < GL_LINE_MAX)
				lb->buf[lb->len++] = data[i];
			else
				lb->overflow = true;
			continue;
		}
		lb->buf[lb->len] = '\0';
		if (lb->overflow)
			snprintf(reply, sizeof(reply), "error line longer than %d bytes",
			         GL_LINE_MAX);
		else
			handle_line(lb->buf, reply, sizeof(reply));
		lb->len = 0;
		lb->overflow = false;
		strcat(reply, "\n");
		rc = write_reply(fd, reply, strlen(reply));
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void serve(const char *port_arg)
{
	char path[300], data[1024];
	struct linebuf lb = {.len = 0};
	int fd = -1, rc;
	bool said_wait = false;

	for (;;) {
		struct pollfd pfd;
		ssize_t n;

		if (fd < 0) {
			if (find_port(port_arg, path, sizeof(path)) < 0 ||
			    (fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0) {
				if (!said_wait)
					gl_log("waiting for the virtio-serial port " GL_PORT_NAME);
				said_wait = true;
				sleep_ms(500);
				continue;
			}
			gl_log("serving on %s", path);
			said_wait = false;
		}
		pfd = (struct pollfd){.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 1000) < 0) {
			if (errno != EINTR)
				sleep_ms(100);
			continue;
		}
		if (pfd.revents & POLLIN) {
			n = read(fd, data, sizeof(data));
			if (n > 0) {
				rc = feed(fd, &lb, data, (size_t)n);
				if (rc == 0 || rc == -ETIMEDOUT)
					continue;
				gl_log("reply on %s: %s (reopening)", path, strerror(-rc));
				goto reopen;
			}
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				gl_log("read %s: %s (reopening)", path, strerror(errno));
				goto reopen;
			}
			pfd.revents |= POLLHUP; /* EOF: the host side is gone */
		}
		if (pfd.revents & (POLLERR | POLLNVAL))
			goto reopen;
		if (pfd.revents & POLLHUP) {
			/* host side not connected: wait for it; a half line from the
			 * previous peer is dropped */
			lb.len = 0;
			lb.overflow = false;
			sleep_ms(100);
		}
		continue;
	reopen:
		close(fd);
		fd = -1;
		lb.len = 0;
		lb.overflow = false;
		sleep_ms(200);
	}
}

static void start_thread(void *(*fn)(void *), void *arg, const char *what)
{
	pthread_t t;
	pthread_attr_t attr;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (rc) {
		gl_log("cannot start the %s thread: %s", what, strerror(rc));
		exit(1);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: loadease-guestload [--port PATH] [--sink IP:PORT]\n"
	                "  default port: the virtio-serial port named " GL_PORT_NAME "\n"
	                "  default sink: loadease.sink=IP:PORT on the kernel command line\n");
}

int main(int argc, char **argv)
{
	const char *port = NULL;
	char sinkstr[64] = "none";

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			port = argv[++i];
		} else if (!strcmp(argv[i], "--sink") && i + 1 < argc) {
			if (!parse_sink(argv[++i], &gl.sink)) {
				gl_log("--sink %s: not a unicast IPv4 address and port", argv[i]);
				return 2;
			}
			gl.have_sink = true;
		} else {
			usage();
			return 2;
		}
	}
	if (!gl.have_sink)
		gl.have_sink = sink_from_cmdline(&gl.sink);
	if (gl.have_sink)
		snprintf(sinkstr, sizeof(sinkstr), "%s:%u", inet_ntoa(gl.sink.sin_addr),
		         ntohs(gl.sink.sin_port));

	signal(SIGPIPE, SIG_IGN);
	if (getpid() == 1)
		signal(SIGCHLD, SIG_IGN); /* as init: orphans are reaped automatically */

	gl.ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (gl.ncpu < 1)
		gl.ncpu = 1;
	if (gl.ncpu > GL_MAX_CPUS)
		gl.ncpu = GL_MAX_CPUS;
	start_thread(counter_main, NULL, "counter");
	start_thread(retouch_main, NULL, "memory");
	start_thread(net_main, NULL, "network");
	for (long c = 0; c < gl.ncpu; c++)
		start_thread(burner_main, (void *)c, "cpu");
	gl_log("%d vCPU, sink %s", gl.ncpu, sinkstr);
	serve(port);
	return 0;
}
