/* window.h - migration windows: the times of the week when the controller
 * may start automatic migrations ("mon-fri 22:00-06:00, sat,sun 00:00-24:00").
 *
 * Pure: the caller turns its clock into a minute of the week (UTC in the
 * controller). A set is one bit per minute of the week, Monday 00:00 first.
 *
 * Grammar (case-insensitive; entries and days separated by commas and/or
 * blanks):
 *   spec   := entry { entry }
 *   entry  := { days } range { range }
 *   days   := day | day "-" day            (mon tue wed thu fri sat sun,
 *                                            or "daily"; a range may wrap: fri-mon)
 *   range  := HH:MM "-" HH:MM              (00:00 to 24:00; an end before the
 *                                            start crosses midnight into the next day)
 * Days written before a range apply to it and to the ranges that follow
 * until other days are written; a range with no days before it is every day.
 * A window that crosses midnight belongs to the day it starts on:
 * "fri 22:00-06:00" is open from Friday 22:00 to Saturday 06:00.
 */
#ifndef LE_CORE_WINDOW_H
#define LE_CORE_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIN_WEEK_MIN  (7 * 24 * 60)
#define WIN_SPEC_MAX  512 /* longest spec accepted, bytes */
#define WIN_TOKEN_MAX 64  /* most days and ranges in one spec */

struct win_set {
	uint8_t bits[WIN_WEEK_MIN / 8];
	int open_min; /* minutes of the week inside a window */
};

/* Parses spec into out. 0, or -EINVAL with the reason in err, naming the
 * token ("'25:00' is not a time of day (HH:MM, 00:00 to 24:00)"). An empty
 * spec is an error: no windows at all is the caller's "none" (always open). */
int win_parse(const char *spec, struct win_set *out, char *err, size_t errlen);

/* Is minute m of the week (0 = Monday 00:00; taken modulo a week) inside a window? */
bool win_open(const struct win_set *w, int m);

/* Minutes from minute m until the open state changes, or -1 when it never
 * does (always open or never open). */
int win_next_change(const struct win_set *w, int m);

/* The minute of the week of a broken-down time: wday as struct tm's (0 =
 * Sunday), hour 0-23, minute 0-59. */
int win_minute_of_week(int wday, int hour, int minute);

#endif
