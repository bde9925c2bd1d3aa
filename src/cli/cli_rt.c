/* cli_rt.c - the verbs that change the controller at run time: vm rules,
 * host exclude, mode and windows (docs/controller.md, "Changing things at
 * run time"). The request bodies are built by pure functions (cli_req.h),
 * unit-tested in tests/unit/test_cli.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_int.h"
#include "cli/cli_req.h"
#include "cli/cli_table.h"

/* --- request bodies (pure) ------------------------------------------------ */

static const char *const rule_opts[] = {"pin",     "group",      "anti-group",
                                        "exclude", "automation", NULL};

static int on_off(const char *s, const char *what, bool *out, char *err, size_t errlen)
{
	if (s && (!strcmp(s, "on") || !strcmp(s, "off"))) {
		*out = !strcmp(s, "on");
		return 0;
	}
	snprintf(err, errlen, "%s: '%.64s' is neither on nor off", what, s ? s : "");
	return -EINVAL;
}

int cli_req_vm_rules(const struct cli_args *a, json_t **body, char *err, size_t errlen)
{
	const char *s;
	bool any = false, b;
	json_t *j;

	*body = NULL;
	if (a->npos != 1) {
		snprintf(err, errlen,
		         a->npos ? "unexpected argument '%.64s'" : "the VM id is missing",
		         a->npos ? a->pos[1] : "");
		return -EINVAL;
	}
	if (cli_req_check_id("VM", a->pos[0], err, errlen) < 0)
		return -EINVAL;
	for (int i = 0; rule_opts[i]; i++)
		any |= cli_opt_flag(a, rule_opts[i]);
	if (cli_opt_flag(a, "reset") && any) {
		snprintf(err, errlen, "--reset goes alone (the domain's rules, all of them)");
		return -EINVAL;
	}
	if (!any)
		return 0; /* show, or --reset */
	if (!(j = json_object()))
		return -ENOMEM;
	if ((s = cli_opt_str(a, "pin"))) {
		json_t *pin = json_array();
		char buf[512], *save = NULL;
		if (strlen(s) >= sizeof(buf)) {
			snprintf(err, errlen, "--pin: too long");
			goto bad;
		}
		snprintf(buf, sizeof(buf), "%s", s);
		for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			if (cli_req_check_id("--pin host", t, err, errlen) < 0) {
				json_decref(pin);
				goto bad;
			}
			json_array_append_new(pin, json_string(t));
		}
		json_object_set_new(j, "pin", pin); /* "" = any host */
	}
	for (int g = 0; g < 2; g++) {
		const char *opt = g ? "anti-group" : "group";
		if (!(s = cli_opt_str(a, opt)))
			continue;
		if (s[0] && cli_req_check_id(g ? "--anti-group" : "--group", s, err, errlen) < 0)
			goto bad;
		json_object_set_new(j, g ? "anti_group" : "group", json_string(s));
	}
	if ((s = cli_opt_str(a, "exclude"))) {
		if (on_off(s, "--exclude", &b, err, errlen) < 0)
			goto bad;
		json_object_set_new(j, "exclude", json_boolean(b));
	}
	if ((s = cli_opt_str(a, "automation"))) {
		if (strcmp(s, "auto") && strcmp(s, "manual") && strcmp(s, "off")) {
			snprintf(err, errlen, "--automation: '%.64s' is not auto, manual or off",
			         s);
			goto bad;
		}
		json_object_set_new(j, "automation", json_string(s));
	}
	*body = j;
	return 0;
bad:
	json_decref(j);
	return -EINVAL;
}

int cli_req_host_exclude(const struct cli_args *a, json_t **body, char *err, size_t errlen)
{
	bool on;

	*body = NULL;
	if (a->npos != 2) {
		snprintf(err, errlen, a->npos < 2 ? "%s is missing" : "unexpected argument '%.64s'",
		         a->npos == 0   ? "on|off (host exclude on|off HOST)"
		         : a->npos == 1 ? "the host id (host exclude on|off HOST)"
		                        : a->pos[2]);
		return -EINVAL;
	}
	if (on_off(a->pos[0], "host exclude", &on, err, errlen) < 0 ||
	    cli_req_check_id("HOST", a->pos[1], err, errlen) < 0)
		return -EINVAL;
	*body = json_pack("{s:b}", "on", on);
	return *body ? 0 : -ENOMEM;
}

int cli_req_mode(const struct cli_args *a, json_t **body, char *err, size_t errlen)
{
	*body = NULL;
	if (a->npos > 1) {
		snprintf(err, errlen, "unexpected argument '%.64s'", a->pos[1]);
		return -EINVAL;
	}
	if (a->npos == 1 && cli_opt_flag(a, "reset")) {
		snprintf(err, errlen, "a mode or --reset, not both");
		return -EINVAL;
	}
	if (a->npos == 0)
		return 0;
	if (strcmp(a->pos[0], "off") && strcmp(a->pos[0], "recommend") &&
	    strcmp(a->pos[0], "auto")) {
		snprintf(err, errlen, "'%.64s' is not a mode (off, recommend, auto)", a->pos[0]);
		return -EINVAL;
	}
	*body = json_pack("{s:s}", "mode", a->pos[0]);
	return *body ? 0 : -ENOMEM;
}

int cli_req_windows(const struct cli_args *a, json_t **body, char *err, size_t errlen)
{
	char spec[600] = "";
	size_t n = 0;

	*body = NULL;
	if (a->npos && cli_opt_flag(a, "clear")) {
		snprintf(err, errlen, "windows or --clear, not both");
		return -EINVAL;
	}
	if (a->npos == 0)
		return 0;
	/* the words of the spec, as one string: `windows mon-fri 22:00-06:00` */
	for (int i = 0; i < a->npos; i++) {
		n += (size_t)snprintf(spec + n, n < sizeof(spec) ? sizeof(spec) - n : 0, "%s%s",
		                      i ? " " : "", a->pos[i]);
		if (n >= sizeof(spec)) {
			snprintf(err, errlen, "the windows are too long");
			return -EINVAL;
		}
	}
	*body = json_pack("{s:s}", "windows", spec);
	return *body ? 0 : -ENOMEM;
}

/* --- output ----------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s && s[0] ? s : dflt;
}

static void fmt_time(char *buf, size_t cap, json_int_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, cap, "%a %Y-%m-%d %H:%M UTC", &tm);
}

/* Prints the reply (--json) or the text fn makes of it; frees reply. */
static int print(struct cli_ctx *c, json_t *reply, void (*fn)(struct cli_ctx *, json_t *))
{
	if (c->json)
		cli_print_json(c, reply);
	else
		fn(c, reply);
	json_decref(reply);
	return CLI_OK;
}

static void print_rules(struct cli_ctx *c, json_t *reply)
{
	json_t *r = json_object_get(reply, "rules"), *pin = json_object_get(r, "pin"), *e;
	char pins[600] = "", when[48] = "", by[128];
	const char *changed = jstr(reply, "changed", NULL);
	size_t i, n = 0;

	json_array_foreach(pin, i, e) n +=
	    (size_t)snprintf(pins + n, n < sizeof(pins) ? sizeof(pins) - n : 0, "%s%s",
	                     i ? "," : "", json_string_value(e) ? json_string_value(e) : "?");
	cli_table_clean(by, sizeof(by), jstr(r, "by", "?"));
	fmt_time(when, sizeof(when), json_integer_value(json_object_get(r, "ts")));
	fprintf(c->out, "%s: pin=%s group=%s anti_group=%s exclude=%s automation=%s\n",
	        jstr(reply, "vm", "?"), pins[0] ? pins : "-", jstr(r, "group", "-"),
	        jstr(r, "anti_group", "-"),
	        json_is_true(json_object_get(r, "exclude")) ? "on" : "off",
	        jstr(r, "automation", "?"));
	if (!strcmp(jstr(r, "source", ""), "runtime"))
		fprintf(c->out, "  set at run time by %s, %s%s%s\n", by, when,
		        changed ? "; changed: " : "", changed ? changed : "");
	else
		fprintf(c->out, "  the domain's rules (set when it was created)\n");
}

static void print_mode(struct cli_ctx *c, json_t *j)
{
	char when[48] = "", by[128];
	const char *mode = jstr(j, "mode", "?"), *eff = jstr(j, "effective", "?");

	cli_table_clean(by, sizeof(by), jstr(j, "by", "?"));
	fmt_time(when, sizeof(when), json_integer_value(json_object_get(j, "ts")));
	fprintf(c->out, "mode %s", mode);
	if (!strcmp(jstr(j, "source", ""), "runtime"))
		fprintf(c->out, " (set at run time by %s, %s; the configuration says %s)", by, when,
		        jstr(j, "configured", "?"));
	else
		fprintf(c->out, " (the configuration's)");
	fprintf(c->out, "\n");
	if (strcmp(mode, eff))
		fprintf(c->out, "in force: %s: %s\n", eff, jstr(j, "note", ""));
}

static void print_windows(struct cli_ctx *c, json_t *j)
{
	char when[48] = "", spec[600];
	json_t *next = json_object_get(j, "next_change");
	bool open = json_is_true(json_object_get(j, "open"));

	cli_table_clean(spec, sizeof(spec), jstr(j, "windows", ""));
	if (!spec[0]) {
		fprintf(c->out, "windows: none (automatic migrations at any time)\n");
		return;
	}
	if (json_is_integer(next))
		fmt_time(when, sizeof(when), json_integer_value(next));
	fprintf(c->out, "windows: %s (%s)\n%s now%s%s\n", spec, jstr(j, "timezone", "UTC"),
	        open ? "open" : "closed: recommending only",
	        when[0] ? (open ? ", closes " : ", opens ") : "", when);
}

static void print_exclude(struct cli_ctx *c, json_t *j)
{
	fprintf(c->out, "%s: %s\n", jstr(j, "host", "?"),
	        json_is_true(json_object_get(j, "excluded"))
	            ? "excluded (no source and no target of automatic moves)"
	            : "not excluded");
}

/* --- verbs ------------------------------------------------------------------- */

/* method path body (consumed); prints the answer with fn. */
static int run(struct cli_ctx *c, const char *method, const char *path, json_t *body,
               void (*fn)(struct cli_ctx *, json_t *))
{
	json_t *reply = NULL;
	int rc = cli_call(c, method, path, body, CLI_DEFAULT_TIMEOUT_MS, &reply);

	json_decref(body);
	return rc ? rc : print(c, reply, fn);
}

int cli_vm_rules(struct cli_ctx *c, const struct cli_args *a)
{
	char err[256], path[160];
	json_t *body;

	if (cli_req_vm_rules(a, &body, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	snprintf(path, sizeof(path), "/v1/vms/%s/rules", a->pos[0]);
	if (body)
		return run(c, "PUT", path, body, print_rules);
	return run(c, cli_opt_flag(a, "reset") ? "DELETE" : "GET", path, NULL, print_rules);
}

int cli_host_exclude(struct cli_ctx *c, const struct cli_args *a)
{
	char err[256], path[160];
	json_t *body;

	if (cli_req_host_exclude(a, &body, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	snprintf(path, sizeof(path), "/v1/hosts/%s/exclude", a->pos[1]);
	return run(c, "PUT", path, body, print_exclude);
}

int cli_mode(struct cli_ctx *c, const struct cli_args *a)
{
	char err[256];
	json_t *body;

	if (cli_req_mode(a, &body, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	if (body)
		return run(c, "PUT", "/v1/mode", body, print_mode);
	return run(c, cli_opt_flag(a, "reset") ? "DELETE" : "GET", "/v1/mode", NULL, print_mode);
}

int cli_windows(struct cli_ctx *c, const struct cli_args *a)
{
	char err[256];
	json_t *body;

	if (cli_req_windows(a, &body, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	if (body)
		return run(c, "PUT", "/v1/windows", body, print_windows);
	return run(c, cli_opt_flag(a, "clear") ? "DELETE" : "GET", "/v1/windows", NULL,
	           print_windows);
}
