#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_level = LOG_LVL_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level lvl)
{
	log_level = lvl;
}

enum log_level log_get_level(void)
{
	return log_level;
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

static void log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	struct timespec ts;
	struct tm tm;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s.%03ldZ %-5s ", stamp, ts.tv_nsec / 1000000, level_names[lvl]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (lvl > log_level)
		return;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void log_complain(struct log_complaint *c, int64_t now_ms, enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (c->active && now_ms - c->last_ms < c->interval_ms) {
		c->suppressed++;
		return;
	}
	if (!c->active) {
		c->active = true;
		c->interval_ms = 1000;
	} else {
		c->interval_ms *= 2;
		if (c->interval_ms > 3600 * 1000)
			c->interval_ms = 3600 * 1000;
	}
	c->last_ms = now_ms;
	if (lvl > log_level)
		return;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
	if (c->suppressed) {
		log_msg(lvl, "(the message above was repeated %llu more times)",
		        (unsigned long long)c->suppressed);
		c->suppressed = 0;
	}
}

void log_release(struct log_complaint *c, enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (!c->active)
		return;
	c->active = false;
	c->suppressed = 0;
	if (lvl > log_level)
		return;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

int log_to_file(const char *path)
{
	int fd, rc = 0;

	if (!path || !path[0])
		return 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&log_lock);
	fflush(stderr);
	if (dup2(fd, STDERR_FILENO) < 0)
		rc = -errno;
	pthread_mutex_unlock(&log_lock);
	close(fd);
	return rc;
}
