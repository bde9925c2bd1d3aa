/* le-fakevm.c - stands in for a QEMU process in the agent's component tests.
 *
 * It is a real process with real threads and a real tap device, so the agent
 * measures it exactly as it measures qemu-system-x86_64 (/proc/<pid>/stat of
 * the process and its threads, the tap's counters in /proc/net/dev); nothing
 * of the agent is mocked. Unlike a guest, its load is known exactly:
 *
 *   le-fakevm [--tap NAME] [--threads N] [--cpu PCT] [--frames F]
 *             [--frame-size S] [--duration SEC]
 *
 *   --tap NAME       attach to tap NAME (IFF_TAP|IFF_NO_PI; created when
 *                    absent) and set it up; no tap when not given
 *   --threads N      N threads (0-16), each burning PCT % of one CPU with a
 *                    duty cycle: busy for PCT ms of thread CPU time in every
 *                    100 ms period, asleep for the rest
 *   --cpu PCT        0-100
 *   --frames F       writes exactly F Ethernet frames of S bytes into the tap
 *                    fd (the kernel counts them as the tap's rx: what the
 *                    "guest" sent), spread over the first second
 *   --frame-size S   60-1514; dst 02:00:00:00:00:02 (owned by nobody), src
 *                    02:00:00:00:00:01, ethertype 0x88b5, zero payload
 *   --duration SEC   exits after SEC seconds (default 60, at most 600), or at
 *                    SIGTERM/SIGINT, or when its parent dies
 *
 * Prints "ready <pid>" once the tap is open and the threads run, then
 * "sent <F>" once every frame is written. Exit status 0, or 1 on an error
 * (the reason on stderr).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PERIOD_NS   100000000LL
#define MAX_THREADS 16

static volatile int stopping;
static long burn_pct;

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec to_ts(int64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
	return ts;
}

static void *burner(void *arg)
{
	int64_t busy_ns = burn_pct * PERIOD_NS / 100;
	int64_t next = clock_ns(CLOCK_MONOTONIC);

	(void)arg;
	while (!stopping) {
		int64_t start_cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		struct timespec ts;

		/* busy until this thread has used busy_ns of CPU in this period,
		 * or the period is over (when the machine is too loaded) */
		next += PERIOD_NS;
		while (!stopping && clock_ns(CLOCK_THREAD_CPUTIME_ID) - start_cpu < busy_ns &&
		       clock_ns(CLOCK_MONOTONIC) < next)
			;
		if (clock_ns(CLOCK_MONOTONIC) >= next + PERIOD_NS)
			next = clock_ns(CLOCK_MONOTONIC); /* fell behind: do not burst */
		ts = to_ts(next);
		while (!stopping &&
		       clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
	}
	return NULL;
}

static int open_tap(const char *name)
{
	struct ifreq ifr;
	int fd, s;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "le-fakevm: /dev/net/tun: %s\n", strerror(errno));
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "le-fakevm: TUNSETIFF %s: %s\n", name, strerror(errno));
		close(fd);
		return -1;
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		fprintf(stderr, "le-fakevm: SIOCGIFFLAGS %s: %s\n", name, strerror(errno));
		goto fail;
	}
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
		fprintf(stderr, "le-fakevm: SIOCSIFFLAGS %s: %s\n", name, strerror(errno));
		goto fail;
	}
	close(s);
	return fd;
fail:
	if (s >= 0)
		close(s);
	close(fd);
	return -1;
}

/* Sleeps until abs_ns (CLOCK_MONOTONIC) or a signal; 1 when a signal came. */
static int wait_until(const sigset_t *set, int64_t abs_ns)
{
	for (;;) {
		int64_t left = abs_ns - clock_ns(CLOCK_MONOTONIC);
		struct timespec ts;

		if (left <= 0)
			return 0;
		ts = to_ts(left);
		if (sigtimedwait(set, NULL, &ts) > 0)
			return 1;
		if (errno != EAGAIN && errno != EINTR)
			return 1;
		if (errno == EAGAIN)
			return 0;
	}
}

static int parse_long(const char *opt, const char *v, long min, long max, long *out)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < min || x > max) {
		fprintf(stderr, "le-fakevm: %s: '%s' is not an integer in [%ld, %ld]\n", opt, v,
		        min, max);
		return -1;
	}
	*out = x;
	return 0;
}

int main(int argc, char **argv)
{
	const char *tap = NULL;
	long nthreads = 0, frames = 0, frame_size = 60, duration = 60;
	pthread_t th[MAX_THREADS];
	int started = 0, fd = -1, rc = 0;
	sigset_t set;
	int64_t t0, end;

	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		if (i + 1 >= argc) {
			fprintf(stderr, "le-fakevm: option '%s' needs a value\n", o);
			return 1;
		}
		const char *v = argv[++i];
		if (strcmp(o, "--tap") == 0) {
			if (strlen(v) >= IFNAMSIZ || !v[0]) {
				fprintf(stderr, "le-fakevm: bad tap name '%s'\n", v);
				return 1;
			}
			tap = v;
		} else if ((strcmp(o, "--threads") == 0 &&
		            parse_long(o, v, 0, MAX_THREADS, &nthreads) == 0) ||
		           (strcmp(o, "--cpu") == 0 && parse_long(o, v, 0, 100, &burn_pct) == 0) ||
		           (strcmp(o, "--frames") == 0 &&
		            parse_long(o, v, 0, 1000000, &frames) == 0) ||
		           (strcmp(o, "--frame-size") == 0 &&
		            parse_long(o, v, 60, 1514, &frame_size) == 0) ||
		           (strcmp(o, "--duration") == 0 &&
		            parse_long(o, v, 1, 600, &duration) == 0)) {
			continue;
		} else {
			fprintf(stderr, "le-fakevm: unknown option or bad value: %s %s\n", o, v);
			return 1;
		}
	}
	if (frames > 0 && !tap) {
		fprintf(stderr, "le-fakevm: --frames needs --tap\n");
		return 1;
	}

	/* bounded even when the test that started it dies */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* threads inherit the mask */
	if (getppid() == 1)
		return 1;

	t0 = clock_ns(CLOCK_MONOTONIC);
	end = t0 + (int64_t)duration * 1000000000LL;
	if (tap) {
		fd = open_tap(tap);
		if (fd < 0)
			return 1;
	}
	for (; started < nthreads; started++) {
		if (pthread_create(&th[started], NULL, burner, NULL) != 0) {
			fprintf(stderr, "le-fakevm: pthread_create failed\n");
			rc = 1;
			goto out;
		}
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);

	if (frames > 0) {
		unsigned char *frame = calloc(1, (size_t)frame_size);
		static const unsigned char hdr[14] = {0x02, 0, 0, 0, 0,    0x02, 0x02,
		                                      0,    0, 0, 0, 0x01, 0x88, 0xb5};
		long sent = 0;

		if (!frame) {
			rc = 1;
			goto out;
		}
		memcpy(frame, hdr, sizeof(hdr));
		/* ten batches, 100 ms apart */
		for (int batch = 0; batch < 10 && sent < frames; batch++) {
			long upto = frames * (batch + 1) / 10;
			for (; sent < upto; sent++) {
				ssize_t w = write(fd, frame, (size_t)frame_size);
				if (w != frame_size) {
					fprintf(stderr, "le-fakevm: write to tap %s: %s\n", tap,
					        w < 0 ? strerror(errno) : "short write");
					free(frame);
					rc = 1;
					goto out;
				}
			}
			if (wait_until(&set, clock_ns(CLOCK_MONOTONIC) + PERIOD_NS)) {
				free(frame);
				goto out; /* SIGTERM while sending */
			}
		}
		free(frame);
		printf("sent %ld\n", sent);
		fflush(stdout);
	}
	wait_until(&set, end);
out:
	stopping = 1;
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (fd >= 0)
		close(fd);
	return rc;
}
