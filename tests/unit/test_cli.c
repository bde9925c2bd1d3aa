/* test_cli.c - the operator CLI (src/cli/): option parsing, the request
 * bodies built from arguments (exact JSON), usage errors caught before any
 * request, the tables and event lines made of the controller's documents,
 * and whole commands against a stand-in controller (src/common/httpd.c on a
 * free loopback port) that answers like docs/controller.md and records
 * what it was sent. Times print in UTC (TZ is set in main). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_fmt.h"
#include "cli/cli_int.h"
#include "cli/cli_opt.h"
#include "cli/cli_req.h"
#include "common/httpd.h"

#define MAXARGV 32

/* Splits a command line on blanks into argv (no quoting; '~' stands for a
 * blank inside an argument). */
static int split(const char *line, char *buf, size_t cap, char **argv)
{
	int argc = 0;

	snprintf(buf, cap, "%s", line);
	for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && argc < MAXARGV;
	     t = strtok_r(NULL, " ", &save)) {
		for (char *p = t; *p; p++)
			if (*p == '~')
				*p = ' ';
		argv[argc++] = t;
	}
	argv[argc] = NULL;
	return argc;
}

/* A memory FILE and its text. */
struct mem {
	FILE *f;
	char *text;
	size_t len;
};

static void mem_open(struct mem *m)
{
	m->text = NULL;
	m->len = 0;
	m->f = open_memstream(&m->text, &m->len);
	assert_non_null(m->f);
}

static char *mem_close(struct mem *m)
{
	fclose(m->f);
	return m->text;
}

/* ---- the option parser ---- */

static const struct cli_opt t_opts[] = {
    {"mem", 0, true, 0}, {"n", 'n', true, 0}, {"follow", 'f', false, 0}, {NULL, 0, false, 0}};
static const struct cli_opt t_glob[] = {
    {"json", 0, false, 0}, {"help", 'h', false, 0}, {NULL, 0, false, 0}};

static void test_opt_parse(void **state)
{
	static const struct {
		const char *line;
		const char *err;   /* NULL: parses */
		const char *mem;   /* the value of --mem */
		const char *n;     /* of -n */
		bool follow, json; /* flags given */
		const char *pos;   /* positionals joined by ',' */
	} cases[] = {
	    {"vm1 --mem 512", NULL, "512", NULL, false, false, "vm1"},
	    {"--mem=256 vm1 --json", NULL, "256", NULL, false, true, "vm1"},
	    {"-n 5 -f", NULL, NULL, "5", true, false, ""},
	    {"-n5 --follow", NULL, NULL, "5", true, false, ""},
	    {"--mem 1 --mem 2", NULL, "2", NULL, false, false, ""}, /* the last wins */
	    {"--mem -5", NULL, "-5", NULL, false, false, ""},       /* a value, checked later */
	    {"a -- --mem b", NULL, NULL, NULL, false, false, "a,--mem,b"},
	    {"- x", NULL, NULL, NULL, false, false, "-,x"},
	    {"--mem", "--mem needs a value", NULL, NULL, false, false, NULL},
	    {"--bogus", "unknown option '--bogus'", NULL, NULL, false, false, NULL},
	    {"-x", "unknown option '-x'", NULL, NULL, false, false, NULL},
	    {"--json=1", "--json takes no value", NULL, NULL, false, false, NULL},
	    {"-fx", "-f takes no value", NULL, NULL, false, false, NULL}, /* named as typed */
	    {"--follow=x", "--follow takes no value", NULL, NULL, false, false, NULL},
	    {"-n", "-n needs a value", NULL, NULL, false, false, NULL},
	    {"--mem= x", NULL, "", NULL, false, false, "x"},
	};
	const struct cli_opt *const tables[] = {t_opts, t_glob, NULL};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[256], *argv[MAXARGV + 1], err[128] = "", pos[128] = "";
		int argc = split(cases[i].line, buf, sizeof(buf), argv);
		struct cli_args a;
		int rc = cli_opt_parse(tables, argc, argv, &a, err, sizeof(err));
		if (cases[i].err) {
			if (rc != -EINVAL || strcmp(err, cases[i].err) != 0)
				fail_msg("'%s': rc %d err '%s', want '%s'", cases[i].line, rc, err,
				         cases[i].err);
			continue;
		}
		if (rc != 0)
			fail_msg("'%s': %s", cases[i].line, err);
		for (int p = 0; p < a.npos; p++)
			snprintf(pos + strlen(pos), sizeof(pos) - strlen(pos), "%s%s", p ? "," : "",
			         a.pos[p]);
		assert_string_equal(pos, cases[i].pos);
		if (cases[i].mem)
			assert_string_equal(cli_opt_str(&a, "mem"), cases[i].mem);
		else
			assert_null(cli_opt_str(&a, "mem"));
		if (cases[i].n)
			assert_string_equal(cli_opt_str(&a, "n"), cases[i].n);
		assert_int_equal(cli_opt_flag(&a, "follow"), cases[i].follow);
		assert_int_equal(cli_opt_flag(&a, "json"), cases[i].json);
	}
}

static void test_opt_numbers(void **state)
{
	const struct cli_opt *const tables[] = {t_opts, t_glob, NULL};
	char buf[64], *argv[MAXARGV + 1], err[128];
	struct cli_args a;
	int64_t v = 7;
	double d = 0;

	(void)state;
	assert_int_equal(cli_opt_parse(tables, split("--mem 512", buf, sizeof(buf), argv), argv, &a,
	                               err, sizeof(err)),
	                 0);
	assert_int_equal(cli_opt_int(&a, "mem", 64, 1024, &v, err, sizeof(err)), 1);
	assert_int_equal(v, 512);
	assert_int_equal(cli_opt_int(&a, "n", 0, 10, &v, err, sizeof(err)), 0); /* absent */
	assert_int_equal(v, 512);
	assert_int_equal(cli_opt_int(&a, "mem", 1, 100, &v, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--mem: '512' is not an integer from 1 to 100");
	assert_int_equal(cli_opt_num(&a, "mem", 0.5, 600, &d, err, sizeof(err)), 1);
	assert_true(d == 512.0);
	cli_opt_parse(tables, split("--mem 1.5e", buf, sizeof(buf), argv), argv, &a, err,
	              sizeof(err));
	assert_int_equal(cli_opt_num(&a, "mem", 0, 10, &d, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "--mem: '1.5e' is not a number from 0 to 10");
	/* a short option is named as it was typed, the last occurrence */
	cli_opt_parse(tables, split("--n 3 -n x", buf, sizeof(buf), argv), argv, &a, err,
	              sizeof(err));
	assert_int_equal(cli_opt_int(&a, "n", 0, 10, &v, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "-n: 'x' is not an integer from 0 to 10");
	assert_string_equal(cli_opt_as(&a, "n"), "-n");
	assert_null(cli_opt_as(&a, "mem"));
}

/* ---- request bodies ---- */

static const struct cli_opt create_opts[] = {
    {"mem", 0, true, 0},        {"vcpus", 0, true, 0},     {"kernel", 0, true, 0},
    {"initrd", 0, true, 0},     {"append", 0, true, 0},    {"disk", 0, true, 0},
    {"host", 0, true, 0},       {"pin", 0, true, 0},       {"group", 0, true, 0},
    {"anti-group", 0, true, 0}, {"exclude", 0, false, 0},  {"to", 0, true, 0},
    {"force", 0, false, 0},     {"max-vcpus", 0, true, 0}, {"max-mem", 0, true, 0},
    {NULL, 0, false, 0}};

enum req_kind { CREATE, MIGRATE, MAINT, RESIZE };

static void test_request_bodies(void **state)
{
	static const struct {
		enum req_kind kind;
		const char *line;
		const char *want; /* the exact compact JSON, or the error */
	} cases[] = {
	    {CREATE, "vm1 --mem 256 --kernel vmlinuz",
	     "{\"name\": \"vm1\", \"vcpus\": 1, \"mem_mib\": 256, \"kernel\": \"vmlinuz\"}"},
	    {CREATE,
	     "web-1 --vcpus 2 --mem 1024 --kernel k/vmlinuz --initrd k/initrd.img "
	     "--append console=ttyS0~quiet --host h2 --pin h1,h2 --group web --anti-group db "
	     "--exclude",
	     "{\"name\": \"web-1\", \"vcpus\": 2, \"mem_mib\": 1024, \"kernel\": \"k/vmlinuz\", "
	     "\"initrd\": \"k/initrd.img\", \"append\": \"console=ttyS0 quiet\", \"pin\": "
	     "[\"h1\", \"h2\"], \"group\": \"web\", \"anti_group\": \"db\", \"exclude\": true, "
	     "\"host\": \"h2\"}"},
	    {CREATE, "g1 --mem 256 --max-mem 1024 --vcpus 1 --max-vcpus 4 --kernel k",
	     "{\"name\": \"g1\", \"vcpus\": 1, \"mem_mib\": 256, \"max_vcpus\": 4, "
	     "\"max_mem_mib\": 1024, \"kernel\": \"k\"}"},
	    {CREATE, "g1 --mem 256 --max-mem 32 --kernel k",
	     "--max-mem: '32' is not an integer from 64 to 16777216"},
	    {CREATE, "d1 --mem=64 --disk disk.qcow2",
	     "{\"name\": \"d1\", \"vcpus\": 1, \"mem_mib\": 64, \"disk\": \"disk.qcow2\"}"},
	    {CREATE, "--mem 256 --kernel k", "the VM id (vm create ID ...) is missing"},
	    {CREATE, "a b --mem 256 --kernel k", "unexpected argument 'b'"},
	    {CREATE, "bad/id --mem 256 --kernel k",
	     "VM 'bad/id' is not an id (1-64 of A-Z a-z 0-9 _ . -, not starting with . or -)"},
	    {CREATE, "vm1 --kernel k", "--mem MIB is required"},
	    {CREATE, "vm1 --mem abc --kernel k",
	     "--mem: 'abc' is not an integer from 64 to 16777216"},
	    {CREATE, "vm1 --mem -256 --kernel k",
	     "--mem: '-256' is not an integer from 64 to 16777216"},
	    {CREATE, "vm1 --mem 32 --kernel k",
	     "--mem: '32' is not an integer from 64 to 16777216"},
	    {CREATE, "vm1 --mem 256 --vcpus 0 --kernel k",
	     "--vcpus: '0' is not an integer from 1 to 1024"},
	    {CREATE, "vm1 --mem 256 --vcpus 2x --kernel k",
	     "--vcpus: '2x' is not an integer from 1 to 1024"},
	    {CREATE, "vm1 --mem 256", "give --kernel PATH (and --initrd PATH) or --disk PATH"},
	    {CREATE, "vm1 --mem 256 --disk d --initrd i", "--initrd needs --kernel"},
	    {CREATE, "vm1 --mem 256 --kernel k --pin h1,,h2",
	     "--pin: 'h1,,h2' is not a comma-separated list of hosts"},
	    {CREATE, "vm1 --mem 256 --kernel k --pin h1,-x",
	     "--pin host '-x' is not an id (1-64 of A-Z a-z 0-9 _ . -, not starting with . or -)"},
	    {CREATE, "vm1 --mem 256 --kernel k --host a~b",
	     "--host 'a b' is not an id (1-64 of A-Z a-z 0-9 _ . -, not starting with . or -)"},
	    {CREATE, "vm1 --mem 256 --kernel= ", "--kernel must be a non-empty single line"},
	    {MIGRATE, "vm1", "{}"},
	    {MIGRATE, "vm1 --to h2 --force", "{\"to\": \"h2\", \"force\": true}"},
	    {MIGRATE, "", "the VM id (vm migrate ID ...) is missing"},
	    {MIGRATE, "vm1 --to h~2",
	     "--to 'h 2' is not an id (1-64 of A-Z a-z 0-9 _ . -, not starting with . or -)"},
	    {RESIZE, "vm1 --vcpus 2", "{\"vcpus\": 2}"},
	    {RESIZE, "vm1 --mem 512", "{\"mem_mib\": 512}"},
	    {RESIZE, "vm1 --vcpus=4 --mem 2048", "{\"vcpus\": 4, \"mem_mib\": 2048}"},
	    {RESIZE, "vm1", "give --vcpus N or --mem MIB (or both)"},
	    {RESIZE, "", "the VM id (vm resize ID ...) is missing"},
	    {RESIZE, "vm1 --vcpus 0", "--vcpus: '0' is not an integer from 1 to 1024"},
	    {RESIZE, "vm1 --mem 32", "--mem: '32' is not an integer from 64 to 16777216"},
	    {RESIZE, "vm1 --mem 1.5", "--mem: '1.5' is not an integer from 64 to 16777216"},
	    {RESIZE, "vm1 vm2 --vcpus 2", "unexpected argument 'vm2'"},
	    {MAINT, "on h1", "{\"on\": true}"},
	    {MAINT, "off h1", "{\"on\": false}"},
	    {MAINT, "maybe h1", "'maybe' is neither on nor off"},
	    {MAINT, "on", "the host id (host maintenance on|off HOST) is missing"},
	    {MAINT, "", "on|off (host maintenance on|off HOST) is missing"},
	    {MAINT, "on h1 h2", "unexpected argument 'h2'"},
	};
	const struct cli_opt *const tables[] = {create_opts, NULL};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[512], *argv[MAXARGV + 1], err[256] = "";
		struct cli_args a;
		json_t *body = NULL;
		char *text;
		int rc;

		assert_int_equal(cli_opt_parse(tables, split(cases[i].line, buf, sizeof(buf), argv),
		                               argv, &a, err, sizeof(err)),
		                 0);
		if (cases[i].kind == CREATE)
			rc = cli_req_vm_create(&a, &body, err, sizeof(err));
		else if (cases[i].kind == MIGRATE)
			rc = cli_req_vm_migrate(&a, &body, err, sizeof(err));
		else if (cases[i].kind == RESIZE)
			rc = cli_req_vm_resize(&a, &body, err, sizeof(err));
		else
			rc = cli_req_maintenance(&a, &body, err, sizeof(err));
		if (rc < 0) {
			assert_null(body);
			if (strcmp(err, cases[i].want) != 0)
				fail_msg("'%s': error '%s', want '%s'", cases[i].line, err,
				         cases[i].want);
			continue;
		}
		text = json_dumps(body, 0);
		if (strcmp(text, cases[i].want) != 0)
			fail_msg("'%s': body %s, want %s", cases[i].line, text, cases[i].want);
		free(text);
		json_decref(body);
	}
}

/* The run-time verbs (cli_rt.c): vm rules, host exclude, mode, windows.
 * want "" = nothing to send (a show, --reset, --clear). */
static const struct cli_opt rt_opts[] = {{"pin", 0, true, 0},        {"group", 0, true, 0},
                                         {"anti-group", 0, true, 0}, {"exclude", 0, true, 0},
                                         {"automation", 0, true, 0}, {"reset", 0, false, 0},
                                         {"clear", 0, false, 0},     {NULL, 0, false, 0}};

enum rt_kind { RULES, EXCL, MODE, WINDOWS };

static void test_runtime_bodies(void **state)
{
	static const struct {
		enum rt_kind kind;
		const char *line, *want;
	} cases[] = {
	    {RULES, "vm1", ""},
	    {RULES, "vm1 --reset", ""},
	    {RULES, "vm1 --pin h0,h1 --automation manual",
	     "{\"pin\": [\"h0\", \"h1\"], \"automation\": \"manual\"}"},
	    {RULES, "vm1 --pin= --group= --anti-group db --exclude off",
	     "{\"pin\": [], \"group\": \"\", \"anti_group\": \"db\", \"exclude\": false}"},
	    {RULES, "vm1 --exclude on", "{\"exclude\": true}"},
	    {RULES, "vm1 --exclude yes", "--exclude: 'yes' is neither on nor off"},
	    {RULES, "vm1 --automation full", "--automation: 'full' is not auto, manual or off"},
	    {RULES, "vm1 --reset --group g",
	     "--reset goes alone (the domain's rules, all of them)"},
	    {RULES, "vm1 --pin h~1",
	     "--pin host 'h 1' is not an id (1-64 of A-Z a-z 0-9 _ . -, not starting with . or -)"},
	    {RULES, "vm1 --group -g",
	     "--group '-g' is not an id (1-64 of A-Z a-z 0-9 _ . -, not starting with . or -)"},
	    {RULES, "", "the VM id is missing"},
	    {RULES, "vm1 vm2", "unexpected argument 'vm2'"},
	    {EXCL, "on h1", "{\"on\": true}"},
	    {EXCL, "off h1", "{\"on\": false}"},
	    {EXCL, "maybe h1", "host exclude: 'maybe' is neither on nor off"},
	    {EXCL, "on", "the host id (host exclude on|off HOST) is missing"},
	    {EXCL, "", "on|off (host exclude on|off HOST) is missing"},
	    {EXCL, "on h1 h2", "unexpected argument 'h2'"},
	    {MODE, "", ""},
	    {MODE, "--reset", ""},
	    {MODE, "auto", "{\"mode\": \"auto\"}"},
	    {MODE, "recommend", "{\"mode\": \"recommend\"}"},
	    {MODE, "sideways", "'sideways' is not a mode (off, recommend, auto)"},
	    {MODE, "auto --reset", "a mode or --reset, not both"},
	    {MODE, "auto off", "unexpected argument 'off'"},
	    {WINDOWS, "", ""},
	    {WINDOWS, "--clear", ""},
	    {WINDOWS, "mon-fri 22:00-06:00, sat,sun 00:00-24:00",
	     "{\"windows\": \"mon-fri 22:00-06:00, sat,sun 00:00-24:00\"}"},
	    {WINDOWS, "mon~10:00-11:00", "{\"windows\": \"mon 10:00-11:00\"}"},
	    {WINDOWS, "daily --clear", "windows or --clear, not both"},
	};
	const struct cli_opt *const tables[] = {rt_opts, NULL};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[512], *argv[MAXARGV + 1], err[256] = "";
		struct cli_args a;
		json_t *body = NULL;
		char *text;
		int rc;

		assert_int_equal(cli_opt_parse(tables, split(cases[i].line, buf, sizeof(buf), argv),
		                               argv, &a, err, sizeof(err)),
		                 0);
		rc = cases[i].kind == RULES  ? cli_req_vm_rules(&a, &body, err, sizeof(err))
		     : cases[i].kind == EXCL ? cli_req_host_exclude(&a, &body, err, sizeof(err))
		     : cases[i].kind == MODE ? cli_req_mode(&a, &body, err, sizeof(err))
		                             : cli_req_windows(&a, &body, err, sizeof(err));
		if (rc < 0) {
			assert_null(body);
			if (strcmp(err, cases[i].want) != 0)
				fail_msg("'%s': error '%s', want '%s'", cases[i].line, err,
				         cases[i].want);
			continue;
		}
		text = body ? json_dumps(body, 0) : strdup("");
		if (strcmp(text, cases[i].want) != 0)
			fail_msg("'%s': body '%s', want '%s'", cases[i].line, text, cases[i].want);
		free(text);
		json_decref(body);
	}
}

static void test_events_path(void **state)
{
	char buf[256];
	struct cli_events_q q = {.count = 20};

	(void)state;
	assert_int_equal(cli_req_events_path(&q, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/v1/events?count=20");
	q = (struct cli_events_q){.after = "1764115200000-3",
	                          .count = 1000,
	                          .wait = 10,
	                          .type = "migration_done",
	                          .vm = "vm.1",
	                          .host = "h0"};
	assert_int_equal(cli_req_events_path(&q, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/v1/events?after=1764115200000-3&count=1000&wait=10&type="
	                         "migration_done&vm=vm.1&host=h0");
	q = (struct cli_events_q){.type = "a b&c=d"};
	assert_int_equal(cli_req_events_path(&q, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/v1/events?type=a%20b%26c%3Dd");
	assert_int_equal(cli_req_events_path(&q, buf, 16), -ENAMETOOLONG);
}

/* ---- formatting ---- */

static void test_fmt_cells(void **state)
{
	static const struct {
		const char *json;
		const char *pct;
	} pcts[] = {
	    {"0.812", "81.2"},   {"0", "0.0"},      {"1", "100.0"},
	    {"1.5", "150.0"},    {"0.0004", "0.0"}, {"null", "-"},
	    {"\"0.5\"", "50.0"}, {"\"x\"", "-"},    {"true", "-"},
	};
	static const struct {
		double s;
		const char *age;
	} ages[] = {{0, "0.0s"}, {0.44, "0.4s"}, {9.94, "9.9s"}, {10, "10s"},    {119, "119s"},
	            {120, "2m"}, {7199, "120m"}, {7200, "2h"},   {172800, "2d"}, {-1, "-"}};
	static const struct {
		const char *json, *hot, *rules;
	} objs[] = {
	    {"{}", "-", "-"},
	    {"{\"cpu\": true, \"mem\": false, \"net\": true}", "cpu,net", "-"},
	    {"{\"net\": true, \"mem\": true}", "mem,net", "-"},
	    {"{\"pin\": [\"h0\", \"h1\"], \"group\": \"g\", \"anti_group\": \"\", \"exclude\": "
	     "true}",
	     "-", "pin=h0,h1;group=g;excl"},
	    {"{\"pin\": [], \"group\": \"\", \"anti_group\": \"db\", \"exclude\": false}", "-",
	     "anti=db"},
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
		json_t *v = json_loads(pcts[i].json, JSON_DECODE_ANY, NULL);
		cli_fmt_pct(v, buf, sizeof(buf));
		if (strcmp(buf, pcts[i].pct))
			fail_msg("pct(%s) = '%s', want '%s'", pcts[i].json, buf, pcts[i].pct);
		json_decref(v);
	}
	for (size_t i = 0; i < sizeof(ages) / sizeof(ages[0]); i++) {
		cli_fmt_age(ages[i].s, buf, sizeof(buf));
		if (strcmp(buf, ages[i].age))
			fail_msg("age(%g) = '%s', want '%s'", ages[i].s, buf, ages[i].age);
	}
	for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
		json_t *v = json_loads(objs[i].json, 0, NULL);
		assert_non_null(v);
		cli_fmt_hot(v, buf, sizeof(buf));
		assert_string_equal(buf, objs[i].hot);
		cli_fmt_rules(v, buf, sizeof(buf));
		assert_string_equal(buf, objs[i].rules);
		json_decref(v);
	}
	cli_fmt_time(1764115200000LL + 61500, buf, sizeof(buf));
	assert_string_equal(buf, "2025-11-26 00:01:01");
}

/* Runs fmt on the document and compares the whole output. */
static void check_fmt(const char *doc_text, int (*fmt)(FILE *, const json_t *, const void *),
                      const void *arg, int want_rc, const char *want)
{
	json_t *doc = json_loads(doc_text, 0, NULL);
	struct mem m;
	char *out;
	int rc;

	if (!doc)
		fail_msg("bad test document: %s", doc_text);
	mem_open(&m);
	rc = fmt(m.f, doc, arg);
	out = mem_close(&m);
	assert_int_equal(rc, want_rc);
	if (strcmp(out, want) != 0)
		fail_msg("got:\n%s\nwant:\n%s", out, want);
	free(out);
	json_decref(doc);
}

static int fmt_hosts(FILE *f, const json_t *doc, const void *now)
{
	return cli_fmt_hosts(f, doc, *(const int64_t *)now);
}

static int fmt_vms(FILE *f, const json_t *doc, const void *host)
{
	return cli_fmt_vms(f, doc, host);
}

static int fmt_plan(FILE *f, const json_t *doc, const void *unused)
{
	(void)unused;
	return cli_fmt_plan(f, doc);
}

static int fmt_cluster(FILE *f, const json_t *doc, const void *now)
{
	return cli_fmt_cluster(f, doc, *(const int64_t *)now);
}

static const char hosts_doc[] =
    "{\"hosts\": ["
    "{\"id\": \"h0\", \"state\": \"up\", \"excluded\": false, \"last_seen\": 1000, "
    "\"age_s\": 0.4, \"util\": {\"cpu\": 0.81, \"mem\": 0.40, \"net\": 0.02}, "
    "\"peak\": {\"cpu\": 0.80, \"mem\": 0.40, \"net\": 0.02}, "
    "\"hot\": {\"cpu\": true, \"mem\": false, \"net\": false}, \"hotspot\": true, "
    "\"volume\": 5.5, \"vms\": [\"vm1\", \"vm2\"]},"
    "{\"id\": \"host-long-1\", \"state\": \"maintenance\", \"excluded\": true, "
    "\"last_seen\": 1000, \"util\": {\"cpu\": 0.05, \"mem\": 1.0, \"net\": null}, "
    "\"peak\": {\"cpu\": 0.1, \"mem\": 0.95}, "
    "\"hot\": {\"cpu\": false, \"mem\": true, \"net\": true}, \"volume\": 21, \"vms\": []},"
    "{\"id\": \"h2\", \"state\": \"up\", \"excluded\": false, \"empty\": true, "
    "\"age_s\": 1.0, \"util\": {\"cpu\": 0.01, \"mem\": 0.02, \"net\": 0}, "
    "\"peak\": {\"cpu\": 0.01, \"mem\": 0.02, \"net\": 0}, "
    "\"hot\": {\"cpu\": false, \"mem\": false, \"net\": false}, \"volume\": 1.03, "
    "\"vms\": []}"
    "]}";

static void test_fmt_hosts(void **state)
{
	int64_t now = 1000 + 125000; /* host-long-1 (no age_s) was seen 125 s ago */

	(void)state;
	check_fmt(hosts_doc, fmt_hosts, &now, 0,
	          "HOST         STATE             CPU%   MEM%  NET%  PEAK(C/M/N)  HOT      VOLUME  "
	          "VMS   AGE\n"
	          "h0           up                81.0   40.0   2.0      80/40/2  cpu        5.50  "
	          "  2  0.4s\n"
	          "host-long-1  maintenance,excl   5.0  100.0     -      10/95/-  mem,net   21.00  "
	          "  0    2m\n"
	          "h2           up,empty           1.0    2.0   0.0        1/2/0  -          1.03  "
	          "  0  1.0s\n");
	check_fmt("{\"hosts\": []}", fmt_hosts, &now, 0, "no hosts\n");
	check_fmt("{\"error\": {}}", fmt_hosts, &now, -EPROTO, "");
	/* the controller's text cannot reach the terminal as control bytes */
	check_fmt("{\"hosts\": [{\"id\": \"h\\u001b[2J\\u00e9\"}]}", fmt_hosts, &now, 0,
	          "HOST     STATE  CPU%  MEM%  NET%  PEAK(C/M/N)  HOT  VOLUME  VMS  AGE\n"
	          "h?[2J??  -         -     -     -        -/-/-  -         -    -    -\n");
}

static const char vms_doc[] =
    "{\"vms\": ["
    "{\"id\": \"vm1\", \"host\": \"h0\", \"state\": \"running\", \"reachable\": true, "
    "\"vcpus\": 1, \"mem_mib\": 256, \"util\": {\"cpu\": 0.95, \"mem\": 0.30, \"net\": 0.0}, "
    "\"rules\": {\"pin\": [\"h0\", \"h1\"], \"group\": \"\", \"anti_group\": \"\", "
    "\"exclude\": false}, \"migrating\": true, "
    "\"migration\": {\"src\": \"h0\", \"dst\": \"h2\", \"phase\": \"active\", \"started\": 1}},"
    "{\"id\": \"database-7\", \"host\": \"h1\", \"state\": \"running\", \"reachable\": false, "
    "\"vcpus\": 16, \"mem_mib\": 65536, \"util\": {\"cpu\": 0.125, \"mem\": 1.2}, "
    "\"rules\": {\"pin\": [], \"group\": \"db\", \"anti_group\": \"web\", \"exclude\": true}, "
    "\"migrating\": false, \"migration\": null}"
    "]}";

static void test_fmt_vms(void **state)
{
	(void)state;
	check_fmt(
	    vms_doc, fmt_vms, NULL, 0,
	    "VM          HOST  STATE                VCPU  MEM(MiB)  CPU%   MEM%  NET%  RULES  "
	    "                 MIGRATING\n"
	    "vm1         h0    running                 1       256  95.0   30.0   0.0  "
	    "pin=h0,h1               h0->h2:active\n"
	    "database-7  h1    running,unreachable    16     65536  12.5  120.0     -  "
	    "group=db;anti=web;excl  -\n");
	check_fmt(
	    vms_doc, fmt_vms, "h1", 0,
	    "VM          HOST  STATE                VCPU  MEM(MiB)  CPU%   MEM%  NET%  RULES  "
	    "                 MIGRATING\n"
	    "database-7  h1    running,unreachable    16     65536  12.5  120.0     -  "
	    "group=db;anti=web;excl  -\n");
	check_fmt(vms_doc, fmt_vms, "h9", 0, "no VMs on host h9\n");
	check_fmt("{\"vms\": []}", fmt_vms, NULL, 0, "no VMs\n");
	check_fmt("[]", fmt_vms, NULL, -EPROTO, "");
}

static const char plan_doc[] =
    "{\"mode\": \"recommend\", \"round\": 812, \"actions\": ["
    "{\"kind\": \"move\", \"vm\": \"vm1\", \"from\": \"h0\", \"to\": \"h2\", \"swap_id\": -1, "
    "\"res\": \"cpu\", \"reason\": \"h0 cpu hot (0.81 > 0.75)\", \"src_vol_before\": 5.5, "
    "\"src_vol_after\": 1.4, \"dst_vol_before\": 1.1, \"dst_vol_after\": 1.6, "
    "\"cost_s\": 2.1},"
    "{\"kind\": \"swap\", \"vm\": \"vm22\", \"from\": \"h1\", \"to\": \"h0\", \"swap_id\": 0, "
    "\"res\": null, \"reason\": \"swap\", \"src_vol_before\": 3, \"src_vol_after\": 2.25, "
    "\"dst_vol_before\": 1.4, \"dst_vol_after\": 1.5, \"cost_s\": 12}],"
    "\"unresolved\": [{\"host\": \"h3\", \"why\": \"no_target\", \"reason\": \"no host has "
    "room\"}], \"max_volume_before\": 5.5, \"max_volume_after\": 2.25}";

static void test_fmt_plan(void **state)
{
	(void)state;
	check_fmt(plan_doc, fmt_plan, NULL, 0,
	          "plan (mode recommend, round 812): 2 actions, max volume 5.50 -> 2.25\n"
	          "KIND    VM    FROM  TO  RES     SRC-VOL     DST-VOL   COST  REASON\n"
	          "move    vm1   h0    h2  cpu  5.50->1.40  1.10->1.60   2.1s  h0 cpu hot (0.81 > "
	          "0.75)\n"
	          "swap#0  vm22  h1    h0  -    3.00->2.25  1.40->1.50  12.0s  swap\n"
	          "\n"
	          "unresolved hotspots:\n"
	          "HOST  WHY        REASON\n"
	          "h3    no_target  no host has room\n");
	/* a resize in place: its sizes lead the reason */
	check_fmt(
	    "{\"mode\": \"auto\", \"round\": 9, \"actions\": [{\"kind\": \"resize\", "
	    "\"vm\": \"g1\", \"from\": \"h0\", \"to\": \"h0\", \"swap_id\": -1, \"res\": "
	    "\"cpu\", \"reason\": \"busy\", \"src_vol_before\": 1.2, \"src_vol_after\": 1.2, "
	    "\"dst_vol_before\": 1.2, \"dst_vol_after\": 1.2, \"cost_s\": 0, "
	    "\"vcpus_before\": 1, \"vcpus_after\": 2, \"mem_before\": 256, \"mem_after\": "
	    "256}], \"unresolved\": [], \"max_volume_before\": 1.2, \"max_volume_after\": 1.2}",
	    fmt_plan, NULL, 0,
	    "plan (mode auto, round 9): 1 action, max volume 1.20 -> 1.20\n"
	    "KIND    VM  FROM  TO  RES     SRC-VOL     DST-VOL  COST  REASON\n"
	    "resize  g1  h0    h0  cpu  1.20->1.20  1.20->1.20  0.0s  1->2 vCPU, 256->256 MiB: "
	    "busy\n");
	check_fmt("{\"mode\": \"auto\", \"round\": 3, \"actions\": [], \"unresolved\": []}",
	          fmt_plan, NULL, 0, "no action: the cluster is balanced\n");
	check_fmt("{\"actions\": [], \"unresolved\": [{\"host\": \"h3\", \"why\": \"pinned\"}]}",
	          fmt_plan, NULL, 0,
	          "no action: no move relieves the hotspots below\n"
	          "unresolved hotspots:\n"
	          "HOST  WHY     REASON\n"
	          "h3    pinned  -\n");
	check_fmt("{}", fmt_plan, NULL, -EPROTO, "");
}

static const char cluster_doc[] =
    "{\"id\": \"ctl-a\", \"leader\": true, \"leader_id\": \"ctl-a\", \"mode\": \"auto\", "
    "\"round\": 812, \"round_ms\": 2000, \"round_took_ms\": 3.1, \"last_round\": "
    "1764115200000, \"redis\": \"up\", \"hosts\": {\"total\": 3, \"up\": 2, \"down\": 0, "
    "\"maintenance\": 1}, \"vms\": 5, \"hotspots\": [\"h0\", \"h2\"], "
    "\"migrations_inflight\": 1, \"max_volume\": 1.9}";

static void test_fmt_cluster(void **state)
{
	int64_t now = 1764115200000LL + 400;
	json_t *j;
	char line[512];

	(void)state;
	check_fmt(cluster_doc, fmt_cluster, &now, 0,
	          "controller  ctl-a (leader)\n"
	          "mode        auto\n"
	          "round       812 every 2000 ms, last took 3.1 ms, 0.4s ago\n"
	          "redis       up\n"
	          "hosts       3 (2 up, 0 down, 1 maintenance)\n"
	          "vms         5\n"
	          "hotspots    h0,h2\n"
	          "migrations  1 in flight\n"
	          "max volume  1.90\n");
	j = json_loads(cluster_doc, 0, NULL);
	json_object_set_new(j, "leader", json_false());
	json_object_set_new(j, "leader_id", json_string("ctl-b"));
	json_object_set_new(j, "hotspots", json_array());
	cli_fmt_cluster_line(j, line, sizeof(line));
	assert_string_equal(line,
	                    "controller ctl-a (follower; leader ctl-b), mode auto | hosts 2 "
	                    "up, 0 down, 1 maintenance | 5 VMs, 1 migrating | hotspots: none");
	json_decref(j);
}

static void test_fmt_event(void **state)
{
	static const struct {
		const char *json, *line;
	} cases[] = {
	    {"{\"id\": \"1764115200000-0\", \"type\": \"migration_done\", \"ts\": "
	     "\"1764115200000\", "
	     "\"by\": \"controller:c1\", \"vm\": \"vm1\", \"from\": \"h0\", \"to\": \"h2\", "
	     "\"host\": \"h0\", \"total_ms\": \"1234\", \"downtime_ms\": \"20\"}",
	     "2025-11-26 00:00:00 migration_done       vm=vm1 h0->h2 total_ms=1234 downtime_ms=20"},
	    {"{\"id\": \"1764115201000-0\", \"type\": \"recommend\", \"ts\": 1764115201000, "
	     "\"vm\": \"vm1\", \"from\": \"h0\", \"to\": \"h2\", \"res\": \"cpu\", "
	     "\"src_vol_before\": \"5.5\", \"src_vol_after\": \"1.4\", \"dst_vol_before\": "
	     "\"1.1\", "
	     "\"dst_vol_after\": \"1.6\", \"cost_s\": \"2.1\", \"reason\": \"h0 cpu hot\"}",
	     "2025-11-26 00:00:01 recommend            vm=vm1 h0->h2 res=cpu cost_s=2.1 "
	     "src=5.5->1.4 dst=1.1->1.6: h0 cpu hot"},
	    {"{\"id\": \"1764115202000-1\", \"type\": \"host_down\", \"host\": \"h1\", "
	     "\"msg\": \"heartbeat 12 s old\"}",
	     "2025-11-26 00:00:02 host_down            host=h1: heartbeat 12 s old"},
	    {"{\"id\": \"1764115203000-0\", \"type\": \"migration_failed\", \"ts\": "
	     "\"1764115203000\", "
	     "\"vm\": \"vm1\", \"from\": \"h0\", \"to\": \"h2\", \"reason\": \"hotspot\", "
	     "\"msg\": \"QMP\\nmigrate failed\"}",
	     "2025-11-26 00:00:03 migration_failed     vm=vm1 h0->h2: hotspot; QMP?migrate failed"},
	    {"{\"type\": \"controller_started\", \"ts\": \"1764115204000\"}",
	     "2025-11-26 00:00:04 controller_started"},
	    {"{\"type\": \"unresolved\", \"ts\": \"1764115205000\", \"host\": \"h3\", \"why\": "
	     "\"no_target\", \"reason\": \"no room\"}",
	     "2025-11-26 00:00:05 unresolved           host=h3 why=no_target: no room"},
	    {"{}", "- ?"},
	};
	char line[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *ev = json_loads(cases[i].json, 0, NULL);
		if (!ev)
			fail_msg("bad test event %s", cases[i].json);
		cli_fmt_event(ev, line, sizeof(line));
		if (strcmp(line, cases[i].line) != 0)
			fail_msg("event %zu:\n got '%s'\nwant '%s'", i, line, cases[i].line);
		json_decref(ev);
	}
}

static void test_fmt_refused(void **state)
{
	json_t *e = json_loads("{\"code\": \"no_host\", \"message\": \"no host fits\", \"hosts\": "
	                       "{\"h0\": \"mem: 3900 of 4096 MiB used\", \"h1\": \"state down\"}}",
	                       0, NULL);
	struct mem m;
	char *out;

	(void)state;
	mem_open(&m);
	cli_fmt_refused(m.f, e);
	out = mem_close(&m);
	assert_string_equal(out, "  h0: mem: 3900 of 4096 MiB used\n  h1: state down\n");
	free(out);
	json_decref(e);
}

/* ---- whole commands against a stand-in controller ---- */

static struct fake {
	pthread_mutex_t lock;
	int requests;
	char method[16], path[256], auth[128], body[1024];
	char vm1_host[16]; /* where vm1 runs; "" once deleted */
} fake = {.lock = PTHREAD_MUTEX_INITIALIZER, .vm1_host = "h0"};

/* GET /v1/hosts/<id>, /v1/vms/<id>: one element of the list document. */
static bool fake_one(const struct httpd_req *req, struct httpd_resp *resp)
{
	bool hosts = strncmp(req->path, "/v1/hosts/", 10) == 0;
	const char *id = req->path + (hosts ? 10 : 8);
	json_t *doc, *x, *e = NULL;
	size_t i;

	if (strcmp(req->method, "GET") != 0 || (!hosts && strncmp(req->path, "/v1/vms/", 8) != 0) ||
	    strchr(id, '/'))
		return false;
	doc = json_loads(hosts ? hosts_doc : vms_doc, 0, NULL);
	json_array_foreach(json_object_get(doc, hosts ? "hosts" : "vms"), i, x)
	{
		if (strcmp(json_string_value(json_object_get(x, "id")), id) != 0)
			continue;
		e = x;
		pthread_mutex_lock(&fake.lock);
		if (!hosts && strcmp(id, "vm1") == 0 && !fake.vm1_host[0])
			e = NULL;
		else if (!hosts && strcmp(id, "vm1") == 0 && strcmp(fake.vm1_host, "h0") != 0) {
			json_t *moved = json_pack("{s:s,s:b,s:n}", "host", fake.vm1_host,
			                          "migrating", false, "migration");
			json_object_update(e, moved); /* where the migration took it */
			json_decref(moved);
		}
		pthread_mutex_unlock(&fake.lock);
		if (e)
			httpd_resp_json(resp, 200, json_incref(e));
		break;
	}
	if (!e && hosts && (strcmp(id, "h1") == 0 || strcmp(id, "h2") == 0))
		httpd_resp_json(resp, 200, json_pack("{s:s,s:s}", "id", id, "state", "up"));
	else if (!e)
		httpd_resp_error(resp, 404, "not_found", "no %s %s", hosts ? "host" : "vm", id);
	json_decref(doc);
	return true;
}

static void fake_migrate(const struct httpd_req *req, struct httpd_resp *resp)
{
	json_t *b = json_loads(req->body, 0, NULL);
	const char *to = json_string_value(json_object_get(b, "to"));

	if (json_is_false(json_object_get(b, "wait"))) {
		httpd_resp_json(resp, 202,
		                json_pack("{s:s,s:s,s:s,s:s}", "vm", "vm1", "from", "h0", "to",
		                          to ? to : "h2", "state", "started"));
		json_decref(b);
		return;
	}
	pthread_mutex_lock(&fake.lock);
	snprintf(fake.vm1_host, sizeof(fake.vm1_host), "%s", to ? to : "h2");
	pthread_mutex_unlock(&fake.lock);
	httpd_resp_json(resp, 200,
	                json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:s}", "vm", "vm1", "from", "h0", "to",
	                          to ? to : "h2", "total_ms", 1834, "downtime_ms", 41, "bytes",
	                          314572800, "reason", "operator"));
	json_decref(b);
}

static void fake_record(const struct httpd_req *req)
{
	const char *q, *auth = httpd_header(req, "Authorization");

	pthread_mutex_lock(&fake.lock);
	fake.requests++;
	if (strcmp(req->method, "GET") == 0 &&
	    (strncmp(req->path, "/v1/hosts/", 10) == 0 || strncmp(req->path, "/v1/vms/", 8) == 0)) {
		pthread_mutex_unlock(&fake.lock); /* lookups: the request before them is kept */
		return;
	}
	snprintf(fake.method, sizeof(fake.method), "%s", req->method);
	snprintf(fake.path, sizeof(fake.path), "%s", req->path);
	if ((q = httpd_query(req, "after")))
		snprintf(fake.path + strlen(fake.path), sizeof(fake.path) - strlen(fake.path),
		         "?after=%s", q);
	snprintf(fake.auth, sizeof(fake.auth), "%s", auth ? auth : "");
	snprintf(fake.body, sizeof(fake.body), "%s", req->body);
	pthread_mutex_unlock(&fake.lock);
}

static void fake_create(const struct httpd_req *req, struct httpd_resp *resp)
{
	json_t *b = httpd_body_json(req, resp), *e;
	const char *name;

	if (!b)
		return;
	name = json_string_value(json_object_get(b, "name"));
	if (name && strcmp(name, "big") == 0) {
		e = json_pack("{s:{s:s,s:s,s:{s:s,s:s}}}", "error", "code", "no_host", "message",
		              "no host can take big (4096 MiB)", "hosts", "h0",
		              "mem: 512 MiB free, 4096 wanted", "h1", "state maintenance");
		httpd_resp_json(resp, 409, e);
	} else {
		httpd_resp_json(resp, 201,
		                json_pack("{s:s,s:s,s:O}", "host", "h1", "reason",
		                          "lowest volume after placement (1.20)", "vm", b));
	}
	json_decref(b);
}

static void fake_events(const struct httpd_req *req, struct httpd_resp *resp)
{
	const char *after = httpd_query(req, "after");

	if (after)
		httpd_resp_json(resp, 200, json_pack("{s:[],s:s}", "events", "last", after));
	else
		httpd_resp_json(
		    resp, 200,
		    json_loads("{\"events\": [{\"id\": \"1764115200000-0\", \"type\": "
		               "\"host_up\", \"ts\": \"1764115200000\", \"host\": \"h0\"}, "
		               "{\"id\": \"1764115260000-0\", \"type\": \"vm_created\", "
		               "\"ts\": \"1764115260000\", \"host\": \"h1\", \"vm\": "
		               "\"vm9\"}], \"last\": \"1764115260000-0\"}",
		               0, NULL));
}

static void fake_handler(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	bool get = strcmp(req->method, "GET") == 0;

	(void)ctx;
	fake_record(req);
	if (httpd_is_mutating(req) && !httpd_bearer_ok(req, "s3cret"))
		httpd_resp_error(resp, 401, "unauthorized", "a valid bearer token is required");
	else if (get && strcmp(req->path, "/v1/hosts") == 0)
		httpd_resp_json(resp, 200, json_loads(hosts_doc, 0, NULL));
	else if (get && strcmp(req->path, "/v1/vms") == 0)
		httpd_resp_json(resp, 200, json_loads(vms_doc, 0, NULL));
	else if (get && strcmp(req->path, "/v1/cluster") == 0)
		httpd_resp_json(resp, 200, json_loads(cluster_doc, 0, NULL));
	else if (get && strcmp(req->path, "/v1/plan") == 0)
		httpd_resp_json(resp, 200, json_loads(plan_doc, 0, NULL));
	else if (get && strcmp(req->path, "/v1/events") == 0)
		fake_events(req, resp);
	else if (strcmp(req->method, "POST") == 0 && strcmp(req->path, "/v1/vms") == 0)
		fake_create(req, resp);
	else if (fake_one(req, resp))
		;
	else if (strcmp(req->path, "/v1/vms/vm1/migrate") == 0)
		fake_migrate(req, resp);
	else if (strcmp(req->method, "DELETE") == 0 && strcmp(req->path, "/v1/vms/vm1") == 0) {
		pthread_mutex_lock(&fake.lock);
		fake.vm1_host[0] = '\0';
		pthread_mutex_unlock(&fake.lock);
		httpd_resp_json(resp, 200, json_pack("{s:s,s:s}", "deleted", "vm1", "host", "h0"));
	} else if (strcmp(req->method, "PUT") == 0 &&
	           strcmp(req->path, "/v1/hosts/h1/maintenance") == 0)
		httpd_resp_json(resp, 200,
		                json_pack("{s:s,s:s}", "host", "h1", "state", "maintenance"));
	else if (strncmp(req->path, "/text/", 6) == 0)
		httpd_resp_text(resp, 200, "text/plain", strdup("hello"), 5);
	else
		httpd_resp_error(resp, 404, "vm_not_found", "no VM or route %s", req->path);
}

static struct httpd *fake_srv;
static char fake_url[64];

static int fake_setup(void **state)
{
	char err[128];

	(void)state;
	fake_srv = httpd_new("127.0.0.1:0", fake_handler, NULL, err, sizeof(err));
	if (!fake_srv)
		fail_msg("httpd_new: %s", err);
	snprintf(fake_url, sizeof(fake_url), "http://127.0.0.1:%d", httpd_port(fake_srv));
	setenv("LOADEASE_CONTROLLER", fake_url, 1);
	setenv("LOADEASE_TOKEN", "s3cret", 1);
	unsetenv("LOADEASE_TOKEN_FILE");
	return 0;
}

static int fake_teardown(void **state)
{
	(void)state;
	httpd_free(fake_srv);
	return 0;
}

/* Runs `loadease <line>`; returns the exit code, *out and *err (freed by
 * the caller). */
static int run(const char *line, char **out, char **err)
{
	char buf[1024], *argv[MAXARGV + 1];
	int argc = split(line, buf, sizeof(buf), argv);
	struct mem o, e;
	int rc;

	mem_open(&o);
	mem_open(&e);
	rc = cli_run(argc, argv, o.f, e.f);
	*out = mem_close(&o);
	*err = mem_close(&e);
	return rc;
}

static int requests(void)
{
	int n;

	pthread_mutex_lock(&fake.lock);
	n = fake.requests;
	pthread_mutex_unlock(&fake.lock);
	return n;
}

/* Bad arguments: exit 2, the reason and the usage on stderr, nothing on
 * stdout, and no request made. */
static void test_usage_errors(void **state)
{
	static const struct {
		const char *line, *msg;
	} cases[] = {
	    {"vm create vm1 --mem abc --kernel k",
	     "loadease vm create: --mem: 'abc' is not an integer from 64 to 16777216\n"
	     "usage: loadease vm create ID"},
	    {"vm create vm1 --mem -5 --kernel k", "'-5' is not an integer"},
	    {"vm create vm1 --mem 256", "give --kernel PATH"},
	    {"vm create --mem 256 --kernel k", "the VM id (vm create ID ...) is missing"},
	    {"vm destroy vm1", "loadease vm: unknown subcommand 'destroy'\nusage:\n"},
	    {"vm", "loadease vm: a subcommand is missing"},
	    {"host maintenance maybe h1", "'maybe' is neither on nor off"},
	    {"host reboot h1", "loadease host: unknown subcommand 'reboot'"},
	    {"hosts --bogus", "loadease hosts: unknown option '--bogus'\nusage: loadease hosts"},
	    {"hosts extra", "unexpected argument 'extra'"},
	    {"vms --host", "--host needs a value"},
	    {"vms --host a/b", "--host 'a/b' is not an id"},
	    {"events -n x", "-n: 'x' is not an integer from 0 to 10000"},
	    {"events -n -1", "-n: '-1' is not an integer"},
	    {"events --type Bad~Type", "--type: 'Bad Type' is not an event type"},
	    {"top --interval 0", "--interval: '0' is not a number from 0.2 to 3600"},
	    {"top --once --count 3", "--once and --count 3 contradict each other"},
	    {"plan --timeout abc", "--timeout: 'abc' is not a number"},
	    {"cluster --controller ftp://x", "--controller: 'ftp://x' is not an http://"},
	    {"vm rm", "the VM id is missing"},
	    {"vm migrate vm1 --to", "--to needs a value"},
	    {"cluster --token-file /nonexistent/token", "token file /nonexistent/token: No such"},
	};
	int before = requests();

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out, *err;
		int rc = run(cases[i].line, &out, &err);
		if (rc != 2 || !strstr(err, cases[i].msg) || !strstr(err, "usage") || out[0])
			fail_msg("'%s': exit %d, stderr:\n%s\nwant exit 2 and '%s'", cases[i].line,
			         rc, err, cases[i].msg);
		free(out);
		free(err);
	}
	assert_int_equal(requests(), before);
}

static void test_help(void **state)
{
	static const char *const lines[] = {"hosts --help",     "vms -h",
	                                    "top --help",       "plan --help",
	                                    "events --help",    "cluster --help",
	                                    "vm create --help", "vm migrate -h",
	                                    "vm rm --help",     "host maintenance --help",
	                                    "vm --help",        "host help"};
	int before = requests();

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		char *out, *err;
		assert_int_equal(run(lines[i], &out, &err), 0);
		assert_non_null(strstr(out, "usage"));
		assert_string_equal(err, "");
		if (!strstr(lines[i], "vm --help") && !strstr(lines[i], "host help"))
			assert_non_null(strstr(out, "--controller URL"));
		free(out);
		free(err);
	}
	assert_int_equal(requests(), before);
	assert_true(cli_is_verb("hosts") && cli_is_verb("vm") && cli_is_verb("host"));
	assert_false(cli_is_verb("create") || cli_is_verb("agent") || cli_is_verb(""));
}

/* One command: exit code, stdout and stderr as wanted (substrings; NULL:
 * empty), and the last request the controller got. */
struct cmd_case {
	const char *line;
	int rc;
	const char *out, *err;
	const char *method, *path, *body; /* body: exact, or NULL for none */
};

static void check_cmd(const struct cmd_case *k)
{
	char *out, *err;
	int rc = run(k->line, &out, &err);

	if (rc != k->rc || (k->out ? !strstr(out, k->out) : out[0] != '\0') ||
	    (k->err ? !strstr(err, k->err) : err[0] != '\0'))
		fail_msg(
		    "'%s': exit %d (want %d)\nstdout:\n%s\nstderr:\n%s\nwant out '%s' err '%s'",
		    k->line, rc, k->rc, out, err, k->out ? k->out : "", k->err ? k->err : "");
	if (k->method) {
		pthread_mutex_lock(&fake.lock);
		assert_string_equal(fake.method, k->method);
		assert_string_equal(fake.path, k->path);
		assert_string_equal(fake.body, k->body ? k->body : "");
		pthread_mutex_unlock(&fake.lock);
	}
	free(out);
	free(err);
}

static void test_commands(void **state)
{
	static const struct cmd_case cases[] = {
	    {"hosts", 0, "host-long-1  maintenance,excl", NULL, "GET", "/v1/hosts", NULL},
	    {"vms --host h0", 0, "vm1  h0    running", NULL, "GET", "/v1/vms", NULL},
	    {"plan", 0, "swap#0  vm22", NULL, "GET", "/v1/plan", NULL},
	    /* global options before the verb, between a group and its subcommand */
	    {"--json hosts", 0, "\"hosts\": [", NULL, "GET", "/v1/hosts", NULL},
	    {"--timeout=5 --json vm --token s3cret migrate vm1 --to h2", 0, "\"to\": \"h2\"", NULL,
	     "POST", "/v1/vms/vm1/migrate", "{\"to\":\"h2\"}"},
	    {"--bogus hosts", 2, NULL, "loadease: unknown option '--bogus' before the command",
	     NULL, NULL, NULL},
	    {"--json", 2, NULL, "a command is missing", NULL, NULL, NULL},
	    /* an unknown host or VM is an error */
	    {"vms --host nosuch", 1, NULL, "loadease vms: no host nosuch\n", NULL, NULL, NULL},
	    {"vm nosuch", 1, NULL, "loadease vm show: no vm nosuch\n", NULL, NULL, NULL},
	    {"host show nosuch --json", 1, NULL, "loadease host show: no host nosuch\n", NULL, NULL,
	     NULL},
	    {"host h0", 0, "h0    up", NULL, NULL, NULL, NULL},
	    {"vm show database-7", 0, "database-7  h1", NULL, NULL, NULL, NULL},
	    {"vm migrate vm1 --to h1 --no-wait", 0, "vm1: migration h0 -> h1 started", NULL, "POST",
	     "/v1/vms/vm1/migrate", "{\"to\":\"h1\",\"wait\":false}"},
	    /* completion, from the verb table and the controller */
	    {"__complete ho", 0, "hosts\nhost\n", NULL, NULL, NULL, NULL},
	    {"__complete vm mi", 0, "migrate\n", NULL, NULL, NULL, NULL},
	    {"__complete vm migrate vm1 --to h", 0, "h0\nhost-long-1\n", NULL, NULL, NULL, NULL},
	    {"__complete vm rm d", 0, "database-7\n", NULL, NULL, NULL, NULL},
	    {"__complete host maintenance o", 0, "on\noff\n", NULL, NULL, NULL, NULL},
	    {"__complete events -n 3 --f", 0, "--follow\n", NULL, NULL, NULL, NULL},
	    {"__complete vm create x --kernel v", 0, "__files__\n", NULL, NULL, NULL, NULL},
	    {"vm create web1 --mem 512 --kernel vmlinuz --pin h1 --exclude", 0,
	     "web1 created on h1: lowest volume after placement (1.20)\n", NULL, "POST", "/v1/vms",
	     "{\"name\":\"web1\",\"vcpus\":1,\"mem_mib\":512,\"kernel\":\"vmlinuz\",\"pin\":["
	     "\"h1\"],"
	     "\"exclude\":true}"},
	    {"vm create big --mem 4096 --kernel vmlinuz --host h0", 1, NULL,
	     "loadease vm create: no host can take big (4096 MiB)\n"
	     "  h0: mem: 512 MiB free, 4096 wanted\n  h1: state maintenance\n",
	     "POST", "/v1/vms",
	     "{\"name\":\"big\",\"vcpus\":1,\"mem_mib\":4096,\"kernel\":\"vmlinuz\",\"host\":"
	     "\"h0\"}"},
	    {"vm migrate vm1 --to h2", 0,
	     "vm1 migrated h0 -> h2: done, total 1834 ms, downtime 41 ms, 300.0 MiB sent "
	     "(operator)\n",
	     NULL, "POST", "/v1/vms/vm1/migrate", "{\"to\":\"h2\"}"},
	    {"vm migrate vm1 --force", 0, "vm1 migrated", NULL, "POST", "/v1/vms/vm1/migrate",
	     "{\"force\":true}"},
	    {"vm migrate ghost", 1, NULL,
	     "loadease vm migrate: no VM or route /v1/vms/ghost/migrate\n", "POST",
	     "/v1/vms/ghost/migrate", "{}"},
	    {"vm rm vm1", 0, "vm1 deleted (it ran on h0)\n", NULL, "DELETE", "/v1/vms/vm1", NULL},
	    {"vm rm ghost", 1, NULL, "loadease vm rm: no VM or route /v1/vms/ghost\n", "DELETE",
	     "/v1/vms/ghost", NULL},
	    {"host maintenance on h1", 0, "h1: state maintenance\n", NULL, "PUT",
	     "/v1/hosts/h1/maintenance", "{\"on\":true}"},
	    {"host maintenance off h1 --token wrong", 1, NULL,
	     "loadease host maintenance: a valid bearer token is required\n"
	     "loadease host maintenance: the controller rejected the token (HTTP 401)\n",
	     "PUT", "/v1/hosts/h1/maintenance", "{\"on\":false}"},
	    {"events -n 2", 0,
	     "2025-11-26 00:00:00 host_up              host=h0\n"
	     "2025-11-26 00:01:00 vm_created           vm=vm9 host=h1\n",
	     NULL, "GET", "/v1/events", NULL},
	    {"events --json", 0, "{\"id\":\"1764115260000-0\",\"type\":\"vm_created\"", NULL, "GET",
	     "/v1/events", NULL},
	    {"cluster", 0, "controller  ctl-a (leader)\nmode        auto\n", NULL, "GET",
	     "/v1/cluster", NULL},
	    {"hosts/x", 2, NULL, "loadease: unknown command 'hosts/x'", NULL, NULL, NULL},
	    {"plan --controller http://127.0.0.1:1", 3, NULL,
	     "loadease plan: the controller at http://127.0.0.1:1 is unreachable: GET "
	     "http://127.0.0.1:1/v1/plan: ",
	     NULL, NULL, NULL},
	    {"hosts --controller 127.0.0.1:1/", 3, NULL,
	     "the controller at https://127.0.0.1:1 is unreachable", NULL, NULL, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_cmd(&cases[i]);
}

/* --json prints the documents; vms --host filters them; a 2xx that is not
 * JSON is an error; a missing token gets a hint. */
static void test_commands_json(void **state)
{
	char *out, *err, line[256];
	json_t *j, *jw;

	(void)state;
	assert_int_equal(run("vms --json --host h1", &out, &err), 0);
	j = json_loads(out, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "vms")), 1);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(json_object_get(j, "vms"), 0), "id")),
	    "database-7");
	json_decref(j);
	free(out);
	free(err);

	assert_int_equal(run("hosts --json", &out, &err), 0);
	j = json_loads(out, 0, NULL);
	jw = json_loads(hosts_doc, 0, NULL);
	assert_true(json_equal(j, jw)); /* the document as the controller sent it */
	json_decref(j);
	json_decref(jw);
	free(out);
	free(err);

	assert_int_equal(run("top --once --json", &out, &err), 0);
	j = json_loads(out, 0, NULL); /* one line: ts, cluster, hosts, vms */
	assert_non_null(j);
	assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
	assert_int_equal(json_array_size(json_object_get(j, "hosts")), 3);
	assert_int_equal(json_array_size(json_object_get(j, "vms")), 2);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "cluster"), "id")),
	                    "ctl-a");
	json_decref(j);
	free(out);
	free(err);

	/* not a terminal: frames separated by a blank line, no escape codes */
	assert_int_equal(run("top --count 2 --interval 0.2", &out, &err), 0);
	assert_string_equal(err, "");
	assert_null(strchr(out, '\033'));
	assert_non_null(strstr(out, "\n\nloadease top  "));
	assert_non_null(strstr(out, "controller ctl-a (leader), mode auto | hosts 2 up"));
	assert_non_null(strstr(out, "database-7  h1"));
	assert_non_null(strstr(out, "host-long-1  maintenance,excl"));
	free(out);
	free(err);

	assert_int_equal(run("hosts --controller http://127.0.0.1:1 --json", &out, &err), 3);
	assert_string_equal(out, "");
	free(out);
	free(err);

	snprintf(line, sizeof(line), "hosts --controller %s/text/", fake_url);
	assert_int_equal(run(line, &out, &err), 1);
	assert_non_null(strstr(err, "/text/v1/hosts is not a JSON object (HTTP 200)"));
	free(out);
	free(err);

	unsetenv("LOADEASE_TOKEN");
	assert_int_equal(run("vm rm vm1", &out, &err), 1);
	assert_non_null(strstr(err, "give a token"));
	free(out);
	free(err);
	setenv("LOADEASE_TOKEN", "s3cret", 1);
}

/* The token's sources, in their order: --token, --token-file,
 * $LOADEASE_TOKEN, $LOADEASE_TOKEN_FILE. */
static void test_token_sources(void **state)
{
	char path[] = "/tmp/le-test-cli-token-XXXXXX", line[256], *out, *err;
	int fd = mkstemp(path);
	FILE *f;

	(void)state;
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("s3cret  \nsecond line\n", f);
	fclose(f);

	unsetenv("LOADEASE_TOKEN");
	setenv("LOADEASE_TOKEN_FILE", path, 1);
	assert_int_equal(run("vm rm vm1", &out, &err), 0); /* from $LOADEASE_TOKEN_FILE */
	free(out);
	free(err);
	setenv("LOADEASE_TOKEN", "wrong", 1);
	assert_int_equal(run("vm rm vm1", &out, &err), 1); /* $LOADEASE_TOKEN first */
	free(out);
	free(err);
	snprintf(line, sizeof(line), "vm rm vm1 --token-file %s", path);
	assert_int_equal(run(line, &out, &err), 0); /* --token-file before the environment */
	free(out);
	free(err);
	snprintf(line, sizeof(line), "vm rm vm1 --token-file %s --token wrong", path);
	assert_int_equal(run(line, &out, &err), 1); /* --token first */
	pthread_mutex_lock(&fake.lock);
	assert_string_equal(fake.auth, "Bearer wrong");
	pthread_mutex_unlock(&fake.lock);
	free(out);
	free(err);
	unlink(path);
	unsetenv("LOADEASE_TOKEN_FILE");
	setenv("LOADEASE_TOKEN", "s3cret", 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_opt_parse),      cmocka_unit_test(test_opt_numbers),
	    cmocka_unit_test(test_request_bodies), cmocka_unit_test(test_runtime_bodies),
	    cmocka_unit_test(test_events_path),    cmocka_unit_test(test_fmt_cells),
	    cmocka_unit_test(test_fmt_hosts),      cmocka_unit_test(test_fmt_vms),
	    cmocka_unit_test(test_fmt_plan),       cmocka_unit_test(test_fmt_cluster),
	    cmocka_unit_test(test_fmt_event),      cmocka_unit_test(test_fmt_refused),
	    cmocka_unit_test(test_usage_errors),   cmocka_unit_test(test_help),
	    cmocka_unit_test(test_commands),       cmocka_unit_test(test_commands_json),
	    cmocka_unit_test(test_token_sources),
	};

	setenv("TZ", "UTC", 1);
	tzset();
	return cmocka_run_group_tests(tests, fake_setup, fake_teardown);
}
