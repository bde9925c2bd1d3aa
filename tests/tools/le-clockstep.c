/* le-clockstep.c - a FAKE wall clock for tests (LD_PRELOAD), the one fault
 * this machine cannot cause for one process alone: a stepped clock. A time
 * namespace moves only CLOCK_MONOTONIC and CLOCK_BOOTTIME, and stepping the
 * real CLOCK_REALTIME would step every process of the test run.
 *
 * CLOCK_REALTIME (clock_gettime, gettimeofday, time) is shifted by the
 * signed number of milliseconds in the file $LE_CLOCKSTEP_FILE, read again at
 * most every 20 ms of monotonic time; a missing or unreadable file means no
 * shift. Every other clock is the real one. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime(void)
{
	static clock_gettime_fn fn;

	if (!fn)
		fn = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
	return fn;
}

static long long shift_ms(void)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static long long shift, read_at = -1000000;
	const char *path = getenv("LE_CLOCKSTEP_FILE");
	struct timespec m;
	long long now, v;

	if (!path || real_clock_gettime()(CLOCK_MONOTONIC, &m) != 0)
		return 0;
	now = (long long)m.tv_sec * 1000 + m.tv_nsec / 1000000;
	pthread_mutex_lock(&lock);
	if (now - read_at >= 20) {
		FILE *f = fopen(path, "r");
		read_at = now;
		shift = f && fscanf(f, "%lld", &v) == 1 ? v : 0;
		if (f)
			fclose(f);
	}
	v = shift;
	pthread_mutex_unlock(&lock);
	return v;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	int rc = real_clock_gettime()(id, ts);
	long long ns;

	if (rc != 0 || (id != CLOCK_REALTIME && id != CLOCK_REALTIME_COARSE))
		return rc;
	ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + shift_ms() * 1000000LL;
	ts->tv_sec = (time_t)(ns / 1000000000LL);
	ts->tv_nsec = (long)(ns % 1000000000LL);
	return 0;
}

int gettimeofday(struct timeval *tv, void *tz)
{
	struct timespec ts;

	(void)tz;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return -1;
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

time_t time(time_t *t)
{
	struct timespec ts;
	time_t v = clock_gettime(CLOCK_REALTIME, &ts) == 0 ? ts.tv_sec : (time_t)-1;

	if (t)
		*t = v;
	return v;
}
