/* test_config.c - INI loading from a key table: defaults, the file, the
 * command-line overrides, and the exact "FILE:LINE: reason" of every error.
 *
 * A small options struct with one key of each type stands for a program's
 * configuration; fixtures are the .ini files in tests/fixtures/config/. The options are
 * pre-filled with garbage before each load, so a default not applied fails.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"

#define FX "tests/fixtures/config/"

struct topts {
	char name[16];
	long long port;
	double ratio;
	bool debug;
	int mode;
	char url[64];
};

static const char *const modes[] = {"packed", "balanced", "spread", NULL};

static const struct cfg_key keys[] = {
    {"agent", "name", CFG_STR, "node", offsetof(struct topts, name),
     sizeof(((struct topts *)0)->name), 0, 0, NULL, "host name"},
    {"agent", "port", CFG_INT, "8080", offsetof(struct topts, port), 0, 1, 65535, NULL, "API port"},
    {"agent", "debug", CFG_BOOL, "false", offsetof(struct topts, debug), 0, 0, 0, NULL,
     "verbose logging"},
    {"sched", "ratio", CFG_DOUBLE, "0.5", offsetof(struct topts, ratio), 0, 0, 1, NULL,
     "target utilisation"},
    {"sched", "mode", CFG_ENUM, "balanced", offsetof(struct topts, mode), 0, 0, 0, modes,
     "placement"},
    {"store", "url", CFG_STR, "", offsetof(struct topts, url), sizeof(((struct topts *)0)->url), 0,
     0, NULL, "Redis URL"},
    CFG_END,
};

#define DEFAULTS                                                                                   \
	{                                                                                          \
		"node", 8080, 0.5, false, 1, ""                                                    \
	}
#define GOOD                                                                                       \
	{                                                                                          \
		"host-7", 9090, 0.25, true, 2, "redis://10.0.0.1:6379"                             \
	}

struct config_case {
	const char *name;
	const char *path;
	const char *ovr[4];
	int novr;
	int rc;
	const char *err; /* exact text; "" on success */
	struct topts want;
	const char *bug; /* non-NULL: the src/ bug this case caught once (regression) */
};

static const struct config_case cases[] = {
    {"defaults only", NULL, {NULL}, 0, 0, "", DEFAULTS, NULL},
    {"good file", FX "good.ini", {NULL}, 0, 0, "", GOOD, NULL},
    {"empty file", FX "empty.ini", {NULL}, 0, 0, "", DEFAULTS, NULL},
    {"a 15-character string fits",
     FX "string_15.ini",
     {NULL},
     0,
     0,
     "",
     {"exactly-15-char", 8080, 0.5, false, 1, ""},
     NULL},

    /* file errors: FILE:LINE: reason, the line of the offending key */
    {"unknown key",
     FX "unknown_key.ini",
     {NULL},
     0,
     -EINVAL,
     FX "unknown_key.ini:3: unknown key 'colour' in section [agent]",
     DEFAULTS,
     NULL},
    {"unknown section",
     FX "unknown_section.ini",
     {NULL},
     0,
     -EINVAL,
     FX "unknown_section.ini:5: unknown section [agnet]",
     DEFAULTS,
     NULL},
    {"bad int",
     FX "bad_int.ini",
     {NULL},
     0,
     -EINVAL,
     FX "bad_int.ini:3: agent.port: '12x' is not an integer",
     DEFAULTS,
     NULL},
    {"int out of range",
     FX "int_range.ini",
     {NULL},
     0,
     -EINVAL,
     FX "int_range.ini:2: agent.port: 70000 is out of range [1, 65535]",
     DEFAULTS,
     NULL},
    {"double out of range",
     FX "double_range.ini",
     {NULL},
     0,
     -EINVAL,
     FX "double_range.ini:3: sched.ratio: 1.5 is out of range [0, 1]",
     DEFAULTS,
     NULL},
    {"nan is not a number",
     FX "bad_double.ini",
     {NULL},
     0,
     -EINVAL,
     FX "bad_double.ini:2: sched.ratio: 'nan' is not a number",
     DEFAULTS,
     NULL},
    {"bad bool",
     FX "bad_bool.ini",
     {NULL},
     0,
     -EINVAL,
     FX "bad_bool.ini:2: agent.debug: 'maybe' is not a boolean (true/false)",
     DEFAULTS,
     NULL},
    {"bad enum",
     FX "bad_enum.ini",
     {NULL},
     0,
     -EINVAL,
     FX "bad_enum.ini:3: sched.mode: 'random' is not one of: packed, balanced, spread",
     DEFAULTS,
     NULL},
    {"string too long",
     FX "long_string.ini",
     {NULL},
     0,
     -EINVAL,
     FX "long_string.ini:2: agent.name: value longer than 15 characters",
     DEFAULTS,
     NULL},
    {"syntax error",
     FX "syntax.ini",
     {NULL},
     0,
     -EINVAL,
     FX "syntax.ini:4: syntax error (expected [section] or key = value)",
     DEFAULTS,
     NULL},
    {"first of two errors",
     FX "two_errors.ini",
     {NULL},
     0,
     -EINVAL,
     FX "two_errors.ini:2: agent.port: '12x' is not an integer",
     DEFAULTS,
     NULL},
    {"syntax error before a bad value",
     FX "syntax_then_bad.ini",
     {NULL},
     0,
     -EINVAL,
     FX "syntax_then_bad.ini:2: syntax error (expected [section] or key = value)",
     DEFAULTS,
     NULL},
    {"a long comment line is a comment",
     FX "long_comment.ini",
     {NULL},
     0,
     0,
     "",
     {"node", 9091, 0.5, false, 1, ""},
     "inih (INI_MAX_LINE 200, no realloc) splits the 252-char comment; its tail is "
     "reported as a syntax error on line 3"},
    {"missing file",
     FX "nonexistent.ini",
     {NULL},
     0,
     -ENOENT,
     FX "nonexistent.ini: No such file or directory",
     DEFAULTS,
     NULL},
    {"a directory is not a config file",
     "tests/fixtures/config",
     {NULL},
     0,
     -EISDIR,
     "tests/fixtures/config: Is a directory",
     DEFAULTS,
     "fopen() of a directory succeeds, inih's fgets fails and ini_parse_file returns 0: "
     "cfg_load succeeds with the defaults"},

    /* overrides come after the file */
    {"overrides",
     FX "good.ini",
     {"agent.port=7000", "sched.mode=packed", "agent.name="},
     3,
     0,
     "",
     {"", 7000, 0.25, true, 0, "redis://10.0.0.1:6379"},
     NULL},
    {"override value holding '=' and '.'",
     NULL,
     {"store.url=redis://a.b:1/?x=y"},
     1,
     0,
     "",
     {"node", 8080, 0.5, false, 1, "redis://a.b:1/?x=y"},
     NULL},
    {"the last override wins",
     NULL,
     {"sched.ratio=0.1", "sched.ratio=1"},
     2,
     0,
     "",
     {"node", 8080, 1, false, 1, ""},
     NULL},
    {"override bad value",
     FX "good.ini",
     {"agent.port=abc"},
     1,
     -EINVAL,
     "command line: agent.port: 'abc' is not an integer",
     GOOD,
     NULL},
    {"override out of range",
     NULL,
     {"agent.port=0"},
     1,
     -EINVAL,
     "command line: agent.port: 0 is out of range [1, 65535]",
     DEFAULTS,
     NULL},
    {"override unknown key",
     NULL,
     {"agent.nope=1"},
     1,
     -EINVAL,
     "command line: unknown key 'nope' in section [agent]",
     DEFAULTS,
     NULL},
    {"override unknown section",
     NULL,
     {"nosuch.k=1"},
     1,
     -EINVAL,
     "command line: unknown section [nosuch]",
     DEFAULTS,
     NULL},
    {"override second one bad",
     NULL,
     {"agent.port=1", "agent.debug=2"},
     2,
     -EINVAL,
     "command line: agent.debug: '2' is not a boolean (true/false)",
     {"node", 1, 0.5, false, 1, ""},
     NULL},
    {"file error wins over overrides",
     FX "bad_int.ini",
     {"agent.port=abc"},
     1,
     -EINVAL,
     FX "bad_int.ini:3: agent.port: '12x' is not an integer",
     DEFAULTS,
     NULL},

    /* malformed overrides */
    {"override nodot",
     NULL,
     {"nodot=1"},
     1,
     -EINVAL,
     "command line: 'nodot=1' is not section.key=value",
     DEFAULTS,
     NULL},
    {"override no =",
     NULL,
     {"a.b"},
     1,
     -EINVAL,
     "command line: 'a.b' is not section.key=value",
     DEFAULTS,
     NULL},
    {"override no section",
     NULL,
     {".k=v"},
     1,
     -EINVAL,
     "command line: '.k=v' is not section.key=value",
     DEFAULTS,
     NULL},
    {"override no key",
     NULL,
     {"s.=v"},
     1,
     -EINVAL,
     "command line: 's.=v' is not section.key=value",
     DEFAULTS,
     NULL},
    {"override dot after =",
     NULL,
     {"agent=b.c"},
     1,
     -EINVAL,
     "command line: 'agent=b.c' is not section.key=value",
     DEFAULTS,
     NULL},
    {"override empty",
     NULL,
     {""},
     1,
     -EINVAL,
     "command line: '' is not section.key=value",
     DEFAULTS,
     NULL},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void check_opts(const struct topts *g, const struct topts *w)
{
	assert_string_equal(g->name, w->name);
	assert_int_equal(g->port, w->port);
	assert_true(g->ratio == w->ratio);
	assert_int_equal(g->debug, w->debug);
	assert_int_equal(g->mode, w->mode);
	assert_string_equal(g->url, w->url);
}

static void test_case(void **state)
{
	const struct config_case *c = *state;
	struct topts o;
	char err[256];
	int rc;

	memset(&o, 0xa5, sizeof(o));
	o.name[sizeof(o.name) - 1] = '\0';
	o.url[sizeof(o.url) - 1] = '\0';
	strcpy(err, "untouched");
	rc = cfg_load(keys, &o, c->path, c->ovr, c->novr, err, sizeof(err));
	assert_int_equal(rc, c->rc);
	if (rc == 0) {
		check_opts(&o, &c->want);
		return;
	}
	assert_string_equal(err, c->err);
	/* an override error leaves the file and the earlier overrides applied */
	if (strncmp(err, "command line: ", 14) == 0)
		check_opts(&o, &c->want);
}

/* cfg_set on its own: value syntax and the edges of each range. */
static void test_set(void **state)
{
	static const struct {
		const char *section, *name, *value;
		int rc;
		const char *err;
	} sets[] = {
	    {"agent", "port", "1", 0, ""},
	    {"agent", "port", "65535", 0, ""},
	    {"agent", "port", "65536", -EINVAL, "agent.port: 65536 is out of range [1, 65535]"},
	    {"agent", "port", "-5", -EINVAL, "agent.port: -5 is out of range [1, 65535]"},
	    {"agent", "port", "", -EINVAL, "agent.port: '' is not an integer"},
	    {"agent", "port", "1.0", -EINVAL, "agent.port: '1.0' is not an integer"},
	    {"agent", "port", "99999999999999999999", -EINVAL,
	     "agent.port: '99999999999999999999' is not an integer"},
	    {"sched", "ratio", "0", 0, ""},
	    {"sched", "ratio", "1", 0, ""},
	    {"sched", "ratio", "1e-3", 0, ""},
	    {"sched", "ratio", "-0.001", -EINVAL, "sched.ratio: -0.001 is out of range [0, 1]"},
	    {"sched", "ratio", "inf", -EINVAL, "sched.ratio: 'inf' is not a number"},
	    {"sched", "ratio", "0.5x", -EINVAL, "sched.ratio: '0.5x' is not a number"},
	    {"agent", "debug", "TRUE", 0, ""},
	    {"agent", "debug", "Yes", 0, ""},
	    {"agent", "debug", "on", 0, ""},
	    {"agent", "debug", "1", 0, ""},
	    {"agent", "debug", "OFF", 0, ""},
	    {"agent", "debug", "", -EINVAL, "agent.debug: '' is not a boolean (true/false)"},
	    {"sched", "mode", "packed", 0, ""},
	    {"sched", "mode", "Packed", -EINVAL,
	     "sched.mode: 'Packed' is not one of: packed, balanced, spread"},
	    {"agent", "name", "", 0, ""},
	    {"agent", "name", "0123456789abcdef", -EINVAL,
	     "agent.name: value longer than 15 characters"},
	    {"agent", "mode", "packed", -EINVAL, "unknown key 'mode' in section [agent]"},
	    {"", "port", "1", -EINVAL, "unknown section []"},
	};
	struct topts o;
	char err[256];

	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		err[0] = '\0';
		int rc = cfg_set(keys, &o, sets[i].section, sets[i].name, sets[i].value, err,
		                 sizeof(err));
		if (rc != sets[i].rc)
			fail_msg("%s.%s=%s: rc %d, want %d (%s)", sets[i].section, sets[i].name,
			         sets[i].value, rc, sets[i].rc, err);
		if (rc < 0)
			assert_string_equal(err, sets[i].err);
	}
	/* the values the successful sets left */
	assert_int_equal(o.port, 65535);
	assert_true(o.ratio == 1e-3);
	assert_false(o.debug);
	assert_int_equal(o.mode, 0);
	assert_string_equal(o.name, "");
}

/* A bad built-in default is the program's bug: reported as such. */
static void test_bad_default(void **state)
{
	static const struct cfg_key bad[] = {
	    {"agent", "port", CFG_INT, "80x", offsetof(struct topts, port), 0, 1, 65535, NULL, "p"},
	    CFG_END,
	};
	struct topts o;
	char err[256];

	assert_int_equal(cfg_load(bad, &o, NULL, NULL, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "built-in default: agent.port: '80x' is not an integer");
}

/* The reference documentation names every key, its default and range. */
static void test_print_doc(void **state)
{
	static const char *const want[] = {
	    "| key | default | meaning |\n|---|---|---|\n",
	    "| `agent.name` | `node` | host name |\n",
	    "| `agent.port` | `8080` | API port (1 to 65535) |\n",
	    "| `agent.debug` | `false` | verbose logging |\n",
	    "| `sched.ratio` | `0.5` | target utilisation (0 to 1) |\n",
	    "| `sched.mode` | `balanced` | placement (one of: `packed` `balanced` `spread`) |\n",
	    "| `store.url` | `\"\"` | Redis URL |\n",
	};
	char *doc = NULL;
	size_t len = 0, total = 0;
	FILE *f = open_memstream(&doc, &len);

	assert_non_null(f);
	cfg_print_doc(keys, f);
	fclose(f);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!strstr(doc, want[i]))
			fail_msg("doc lacks %s---\n%s", want[i], doc);
		total += strlen(want[i]);
	}
	/* nothing else: one line per key */
	assert_int_equal(len, total);
	free(doc);
}

int main(void)
{
	static struct CMUnitTest tests[NCASES + 3];
	size_t i;

	for (i = 0; i < NCASES; i++)
		tests[i] =
		    (struct CMUnitTest){cases[i].name, test_case, NULL, NULL, (void *)&cases[i]};
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_set);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_bad_default);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_print_doc);
	return _cmocka_run_group_tests("config", tests, i, NULL, NULL);
}
