/* test_window.c - the migration windows' parser (window.h): which minutes of
 * the week each spec opens, windows that cross midnight and the end of the
 * week, days carried to later ranges, the next change, and a clear error
 * naming the token for every kind of bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/window.h"

enum { MON, TUE, WED, THU, FRI, SAT, SUN };

/* minute of the week of day d (MON..SUN) at hh:mm */
static int at(int d, int hh, int mm)
{
	return d * 1440 + hh * 60 + mm;
}

struct probe {
	int d, hh, mm;
	bool open;
};

static void test_specs(void **state)
{
	static const struct {
		const char *spec;
		int open_min; /* minutes of the week open */
		struct probe p[8];
	} cases[] = {
	    {"mon-fri 22:00-06:00, sat,sun 00:00-24:00",
	     5 * 480 + 2 * 1440 - 360, /* fri's night runs into sat; sun's none into mon */
	     {{MON, 21, 59, false},
	      {MON, 22, 0, true},
	      {TUE, 5, 59, true},
	      {TUE, 6, 0, false},
	      {MON, 3, 0, false}, /* sunday is 00:00-24:00 only: nothing crosses into monday */
	      {SAT, 3, 0, true},
	      {SUN, 23, 59, true},
	      {WED, 12, 0, false}}},
	    {"22:00-06:00",
	     7 * 480,
	     {{MON, 3, 0, true}, {SUN, 23, 0, true}, {WED, 12, 0, false}, {THU, 6, 0, false}}},
	    {"sun 23:00-01:00",
	     120, /* the end of the week wraps to monday */
	     {{SUN, 23, 30, true}, {MON, 0, 30, true}, {MON, 1, 0, false}, {SAT, 23, 30, false}}},
	    {"fri-mon 08:00-09:00",
	     4 * 60,
	     {{FRI, 8, 0, true}, {SAT, 8, 30, true}, {MON, 8, 59, true}, {TUE, 8, 0, false}}},
	    {"MON 08:00-09:00 12:00-13:00 wed 1:00-2:00",
	     180,
	     {{MON, 8, 0, true},
	      {MON, 12, 0, true},
	      {WED, 1, 0, true},
	      {WED, 12, 0, false},
	      {TUE, 8, 0, false}}},
	    {"daily 00:00-24:00", 7 * 1440, {{MON, 0, 0, true}, {SUN, 23, 59, true}}},
	    {"  sat , sun\t10:00-10:01 ", 2, {{SAT, 10, 0, true}, {SAT, 10, 1, false}}},
	    {"mon 10:00-12:00, mon 11:00-13:00",
	     180, /* overlaps counted once */
	     {{MON, 12, 30, true}, {MON, 13, 0, false}}},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct win_set w;
		char err[160] = "";
		int rc = win_parse(cases[i].spec, &w, err, sizeof(err));
		if (rc != 0)
			fail_msg("'%s': %s", cases[i].spec, err);
		if (w.open_min != cases[i].open_min)
			fail_msg("'%s': %d minutes open, want %d", cases[i].spec, w.open_min,
			         cases[i].open_min);
		for (int k = 0;
		     k < 8 && (cases[i].p[k].d || cases[i].p[k].hh || cases[i].p[k].open); k++) {
			const struct probe *p = &cases[i].p[k];
			if (win_open(&w, at(p->d, p->hh, p->mm)) != p->open)
				fail_msg("'%s': day %d %02d:%02d should be %s", cases[i].spec, p->d,
				         p->hh, p->mm, p->open ? "open" : "closed");
		}
	}
}

static void test_errors(void **state)
{
	static const struct {
		const char *spec, *want;
	} cases[] = {
	    {"", "no windows given"},
	    {"   ,, ", "no windows given"},
	    {"mon-fri", "'mon-fri' has no time range"},
	    {"mon 10:00-11:00 tue", "'tue' has no time range"},
	    {"funday 10:00-11:00", "'funday' is not a day"},
	    {"mon-funday 10:00-11:00", "is not a day"},
	    {"mon 25:00-26:00", "'25:00-26:00': the start is not a time of day"},
	    {"mon 10:00-24:01", "the end is not a time of day"},
	    {"mon 10:60-11:00", "the start is not a time of day"},
	    {"mon 10-11", "the start is not a time of day"},
	    {"mon 10:00", "'10:00' is not a time range"},
	    {"mon 10:00-10:00", "'10:00-10:00' is empty"},
	    {"mon 24:00-01:00", "cannot start at 24:00"},
	    {"mon 100:00-101:00", "the start is not a time of day"},
	    {"mon 10:00-11:00; tue 10:00-11:00", "';' (byte 16) is not allowed"},
	    {"mon 10:00-11:00\n", "is not allowed"},
	};
	char big[WIN_SPEC_MAX + 20], many[WIN_SPEC_MAX];
	struct win_set w;
	char err[160];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = 0;
		assert_int_equal(win_parse(cases[i].spec, &w, err, sizeof(err)), -EINVAL);
		if (!strstr(err, cases[i].want))
			fail_msg("'%s': error '%s' does not say '%s'", cases[i].spec, err,
			         cases[i].want);
	}
	assert_int_equal(win_parse(NULL, &w, err, sizeof(err)), -EINVAL);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(win_parse(big, &w, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "at most 512"));
	many[0] = 0;
	for (int i = 0; i < WIN_TOKEN_MAX + 1; i++)
		strcat(many, "mon ");
	assert_int_equal(win_parse(many, &w, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "more than 64"));
}

static void test_next_change_and_clock(void **state)
{
	struct win_set w;
	char err[160];

	(void)state;
	assert_int_equal(win_parse("mon-fri 22:00-06:00", &w, err, sizeof(err)), 0);
	assert_int_equal(win_next_change(&w, at(MON, 21, 0)), 60);           /* opens at 22:00 */
	assert_int_equal(win_next_change(&w, at(MON, 22, 0)), 8 * 60);       /* closes at 06:00 */
	assert_int_equal(win_next_change(&w, at(SAT, 6, 0)), 64 * 60);       /* mon 22:00 */
	assert_int_equal(win_next_change(&w, at(SUN, 23, 59) + 1), 22 * 60); /* wraps */
	assert_true(win_open(&w, at(SAT, 5, 0)));
	assert_true(win_open(&w, at(SAT, 5, 0) + WIN_WEEK_MIN)); /* modulo a week */
	assert_true(win_open(&w, at(SAT, 5, 0) - WIN_WEEK_MIN));
	assert_int_equal(win_parse("daily 00:00-24:00", &w, err, sizeof(err)), 0);
	assert_int_equal(win_next_change(&w, 0), -1);
	/* struct tm's wday: 0 = Sunday */
	assert_int_equal(win_minute_of_week(1, 0, 0), at(MON, 0, 0));
	assert_int_equal(win_minute_of_week(0, 23, 59), at(SUN, 23, 59));
	assert_int_equal(win_minute_of_week(5, 22, 30), at(FRI, 22, 30));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_specs),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_next_change_and_clock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
