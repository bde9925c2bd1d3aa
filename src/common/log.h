/* log.h - logging to stderr with a level, plus collectd-style complaint
 * throttling so a dead Redis does not flood the log.
 *
 * The level is process-wide (set once at start-up by main). */
#ifndef LE_COMMON_LOG_H
#define LE_COMMON_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LVL_NONE = -1, LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* "error", "warn", "info", "debug" -> level; -1 when unknown. */
int log_level_parse(const char *s);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

/* Sends the log (and anything else the process writes to stderr) to path,
 * appended, from now on; path NULL or "" keeps stderr as it is. Called
 * again (SIGHUP, after logrotate renamed the file) it opens the path anew.
 * 0 or a negative errno (the log stays where it was). */
int log_to_file(const char *path);

/* A repeated failure: the first complaint is logged, then the same complaint
 * only after growing intervals (1 s, 2 s, 4 s ... up to 1 h); log_release()
 * logs the recovery once when a complaint was active. Zero-initialise. */
struct log_complaint {
	int64_t last_ms;
	int64_t interval_ms;
	uint64_t suppressed;
	bool active;
};
void log_complain(struct log_complaint *c, int64_t now_ms, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_release(struct log_complaint *c, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
