/* window.c - the migration windows' parser and queries (window.h). */
#include "core/window.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

static void set_bit(struct win_set *w, int m)
{
	m %= WIN_WEEK_MIN;
	if (!(w->bits[m / 8] & (1u << (m % 8)))) {
		w->bits[m / 8] |= (uint8_t)(1u << (m % 8));
		w->open_min++;
	}
}

bool win_open(const struct win_set *w, int m)
{
	m %= WIN_WEEK_MIN;
	if (m < 0)
		m += WIN_WEEK_MIN;
	return (w->bits[m / 8] >> (m % 8)) & 1u;
}

int win_next_change(const struct win_set *w, int m)
{
	bool now = win_open(w, m);

	if (w->open_min == 0 || w->open_min == WIN_WEEK_MIN)
		return -1;
	for (int k = 1; k <= WIN_WEEK_MIN; k++)
		if (win_open(w, m + k) != now)
			return k;
	return -1;
}

int win_minute_of_week(int wday, int hour, int minute)
{
	int d = ((wday % 7) + 6) % 7; /* Monday = 0 */

	return d * 24 * 60 + hour * 60 + minute;
}

/* "mon" -> 0 .. "sun" -> 6, or -1. */
static int day_index(const char *s, size_t n)
{
	for (int d = 0; d < 7; d++)
		if (n == 3 && strncmp(s, day_names[d], 3) == 0)
			return d;
	return -1;
}

/* "HH:MM" (H:MM too) -> minutes 0..1440, or -1. */
static int parse_time(const char *s, size_t n)
{
	int h = 0, m, digits = 0;
	size_t i = 0;

	while (i < n && isdigit((unsigned char)s[i]) && digits < 2) {
		h = h * 10 + (s[i++] - '0');
		digits++;
	}
	if (digits == 0 || i + 3 != n || s[i] != ':' || !isdigit((unsigned char)s[i + 1]) ||
	    !isdigit((unsigned char)s[i + 2]))
		return -1;
	m = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
	if (h > 24 || m > 59 || (h == 24 && m != 0))
		return -1;
	return h * 60 + m;
}

static int fail(char *err, size_t errlen, const char *fmt, const char *tok, size_t n)
{
	char t[40];

	snprintf(t, sizeof(t), "%.*s%s", (int)(n > 32 ? 32 : n), tok, n > 32 ? "..." : "");
	snprintf(err, errlen, fmt, t);
	return -EINVAL;
}

/* Days token ("mon", "mon-fri", "daily") into days[]. */
static int parse_days(const char *tok, size_t n, bool days[7], char *err, size_t errlen)
{
	const char *dash = memchr(tok, '-', n);
	int a, b;

	if (n == 5 && strncmp(tok, "daily", 5) == 0) {
		for (int d = 0; d < 7; d++)
			days[d] = true;
		return 0;
	}
	if (!dash) {
		a = b = day_index(tok, n);
	} else {
		a = day_index(tok, (size_t)(dash - tok));
		b = day_index(dash + 1, n - (size_t)(dash - tok) - 1);
	}
	if (a < 0 || b < 0)
		return fail(err, errlen,
		            "'%s' is not a day (mon tue wed thu fri sat sun, a range such as "
		            "mon-fri, or daily)",
		            tok, n);
	for (int d = a;; d = (d + 1) % 7) {
		days[d] = true;
		if (d == b)
			break;
	}
	return 0;
}

/* Range token ("22:00-06:00") on days[]. */
static int parse_range(const char *tok, size_t n, const bool days[7], struct win_set *w, char *err,
                       size_t errlen)
{
	const char *dash = memchr(tok, '-', n);
	int from, to;

	if (!dash)
		return fail(err, errlen, "'%s' is not a time range (HH:MM-HH:MM, e.g. 22:00-06:00)",
		            tok, n);
	from = parse_time(tok, (size_t)(dash - tok));
	to = parse_time(dash + 1, n - (size_t)(dash - tok) - 1);
	if (from < 0)
		return fail(err, errlen,
		            "'%s': the start is not a time of day (HH:MM, 00:00 to 23:59)", tok, n);
	if (to < 0)
		return fail(err, errlen,
		            "'%s': the end is not a time of day (HH:MM, 00:00 to 24:00)", tok, n);
	if (from == 24 * 60)
		return fail(err, errlen, "'%s': a window cannot start at 24:00", tok, n);
	if (from == to)
		return fail(err, errlen,
		            "'%s' is empty (start = end; 00:00-24:00 is the whole day)", tok, n);
	for (int d = 0; d < 7; d++) {
		int start = d * 24 * 60 + from;
		int len = to > from ? to - from : 24 * 60 - from + to;
		if (!days[d])
			continue;
		for (int k = 0; k < len; k++)
			set_bit(w, start + k);
	}
	return 0;
}

int win_parse(const char *spec, struct win_set *out, char *err, size_t errlen)
{
	char buf[WIN_SPEC_MAX + 1];
	bool days[7] = {false}, days_open = false, any_days = false;
	const char *p, *pending = NULL;
	size_t len, pending_n = 0;
	int ntok = 0, nranges = 0;

	memset(out, 0, sizeof(*out));
	if (!spec) {
		snprintf(err, errlen, "no windows given");
		return -EINVAL;
	}
	len = strlen(spec);
	if (len > WIN_SPEC_MAX) {
		snprintf(err, errlen, "the windows are %zu bytes long, at most %d", len,
		         WIN_SPEC_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i <= len; i++) {
		unsigned char ch = (unsigned char)spec[i];
		if (ch && !isalnum(ch) && !strchr("-:, \t", ch)) {
			if (isprint(ch))
				snprintf(err, errlen, "'%c' (byte %zu) is not allowed in windows",
				         ch, i + 1);
			else
				snprintf(err, errlen, "byte %zu (0x%02x) is not allowed in windows",
				         i + 1, ch);
			return -EINVAL;
		}
		buf[i] = (char)tolower(ch);
	}
	for (p = buf; *p;) {
		const char *t;
		size_t n;
		if (*p == ',' || *p == ' ' || *p == '\t') {
			p++;
			continue;
		}
		for (t = p; *p && *p != ',' && *p != ' ' && *p != '\t'; p++)
			;
		n = (size_t)(p - t);
		if (++ntok > WIN_TOKEN_MAX) {
			snprintf(err, errlen, "more than %d days and ranges", WIN_TOKEN_MAX);
			return -EINVAL;
		}
		if (memchr(t, ':', n) || isdigit((unsigned char)t[0])) {
			if (!any_days)
				for (int d = 0; d < 7; d++)
					days[d] = true; /* no day before it: every day */
			if (parse_range(t, n, days, out, err, errlen) < 0)
				return -EINVAL;
			days_open = false;
			any_days = true;
			pending = NULL;
			nranges++;
			continue;
		}
		if (!days_open) {
			/* the first day after a range starts a new entry */
			memset(days, 0, sizeof(days));
			days_open = true;
		}
		if (parse_days(t, n, days, err, errlen) < 0)
			return -EINVAL;
		any_days = true;
		pending = t;
		pending_n = n;
	}
	if (pending)
		return fail(err, errlen,
		            "'%s' has no time range after it (e.g. mon-fri 22:00-06:00)", pending,
		            pending_n);
	if (nranges == 0) {
		snprintf(err, errlen,
		         "no windows given (e.g. \"mon-fri 22:00-06:00, sat,sun 00:00-24:00\")");
		return -EINVAL;
	}
	return 0;
}
