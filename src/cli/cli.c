/* cli.c - `loadease <verb>`: the operator's client of the controller's REST
 * API (docs/controller.md). This file holds the dispatch, the global
 * options, the request helper and the one-shot verbs; top and events live
 * in cli_watch.c, tables in cli_fmt.c, request bodies in cli_req.c. */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_fmt.h"
#include "cli/cli_int.h"
#include "cli/cli_req.h"
#include "cli/cli_table.h"
#include "common/httpc.h"
#include "common/util.h"

struct verb {
	const char *group; /* "vm", "host" for subcommands, else NULL */
	const char *name;
	const char *usage;
	const char *help;
	const struct cli_opt *opts;
	int (*run)(struct cli_ctx *c, const struct cli_args *a);
};

static const struct cli_opt global_opts[] = {
    {"controller", 0, true}, {"token", 0, true},   {"token-file", 0, true}, {"timeout", 0, true},
    {"json", 0, false},      {"help", 'h', false}, {NULL, 0, false},
};

static const char global_help[] =
    "global options (anywhere after the verb and its subcommand):\n"
    "  --controller URL  the controller's API (default: $LOADEASE_CONTROLLER,\n"
    "                    else " CLI_DEFAULT_CONTROLLER ")\n"
    "  --token T         bearer token for the API (default: $LOADEASE_TOKEN)\n"
    "  --token-file F    file holding the token (default: $LOADEASE_TOKEN_FILE);\n"
    "                    order: --token, --token-file, $LOADEASE_TOKEN, $LOADEASE_TOKEN_FILE\n"
    "  --timeout S       seconds to wait for an answer (default 10; vm create 120,\n"
    "                    vm rm 60, vm migrate 900)\n"
    "  --json            machine output: the API's JSON document\n"
    "  -h, --help        this help\n"
    "\n"
    "exit status: 0 ok, 1 the controller answered with an error, 2 usage error,\n"
    "3 the controller is unreachable\n";

/* --- helpers shared with cli_watch.c ------------------------------------- */

int cli_usage(struct cli_ctx *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(c->err, "loadease %s: ", c->verb);
	va_start(ap, fmt);
	vfprintf(c->err, fmt, ap);
	va_end(ap);
	fprintf(c->err, "\nusage: %s\n'loadease %s --help' tells more.\n", c->usage, c->verb);
	return CLI_EUSAGE;
}

void cli_print_json(struct cli_ctx *c, const json_t *doc)
{
	json_dumpf(doc, c->out, JSON_INDENT(2));
	fputc('\n', c->out);
}

static int api_error(struct cli_ctx *c, int status, json_t *reply)
{
	json_t *e = json_object_get(reply, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));
	char text[1024];

	cli_table_clean(text, sizeof(text), msg); /* no control bytes to the terminal */
	if (msg)
		fprintf(c->err, "loadease %s: %s\n", c->verb, text);
	else
		fprintf(c->err, "loadease %s: the controller answered HTTP %d\n", c->verb, status);
	if (status == 409)
		cli_fmt_refused(c->err, e);
	if (status == 401 && !c->token[0])
		fprintf(c->err,
		        "loadease %s: give a token: --token, --token-file, "
		        "$LOADEASE_TOKEN or $LOADEASE_TOKEN_FILE\n",
		        c->verb);
	return CLI_EAPI;
}

int cli_call(struct cli_ctx *c, const char *method, const char *path, json_t *body, long timeout_ms,
             json_t **reply)
{
	char url[1024], err[512];
	int st;

	*reply = NULL;
	snprintf(url, sizeof(url), "%s%s", c->base, path);
	st = httpc_json(method, url, body, c->token, c->timeout_ms ? c->timeout_ms : timeout_ms,
	                reply, err, sizeof(err));
	if (st == -ETIMEDOUT) {
		fprintf(c->err,
		        "loadease %s: the controller at %s did not answer within %ld s: %s\n",
		        c->verb, c->base, (c->timeout_ms ? c->timeout_ms : timeout_ms) / 1000, err);
		return CLI_EUNREACHABLE;
	}
	if (st < 0) {
		fprintf(c->err, "loadease %s: the controller at %s is unreachable: %s\n", c->verb,
		        c->base, err);
		return CLI_EUNREACHABLE;
	}
	if (st < 200 || st > 299) {
		st = api_error(c, st, *reply);
	} else if (!json_is_object(*reply)) {
		fprintf(c->err, "loadease %s: the answer of %s %s is not a JSON object (HTTP %d)\n",
		        c->verb, method, url, st);
		st = CLI_EAPI;
	} else {
		return CLI_OK;
	}
	json_decref(*reply);
	*reply = NULL;
	return st;
}

/* --- the read-only verbs ------------------------------------------------- */

static int no_args(struct cli_ctx *c, const struct cli_args *a)
{
	if (a->npos)
		return cli_usage(c, "unexpected argument '%.64s'", a->pos[0]);
	return CLI_OK;
}

/* GET path; prints the JSON or what fmt makes of it. */
static int show(struct cli_ctx *c, const char *path, int (*fmt)(struct cli_ctx *, json_t *))
{
	json_t *doc;
	int rc = cli_call(c, "GET", path, NULL, CLI_DEFAULT_TIMEOUT_MS, &doc);

	if (rc)
		return rc;
	if (c->json)
		cli_print_json(c, doc);
	else if (fmt(c, doc) < 0) {
		fprintf(c->err, "loadease %s: unexpected answer from the controller (GET %s)\n",
		        c->verb, path);
		rc = CLI_EAPI;
	}
	json_decref(doc);
	return rc;
}

static int fmt_cluster(struct cli_ctx *c, json_t *doc)
{
	return cli_fmt_cluster(c->out, doc, util_now_ms());
}

static int fmt_hosts(struct cli_ctx *c, json_t *doc)
{
	return cli_fmt_hosts(c->out, doc, util_now_ms());
}

static int fmt_plan(struct cli_ctx *c, json_t *doc)
{
	return cli_fmt_plan(c->out, doc);
}

static int run_cluster(struct cli_ctx *c, const struct cli_args *a)
{
	return no_args(c, a) ? CLI_EUSAGE : show(c, "/v1/cluster", fmt_cluster);
}

static int run_hosts(struct cli_ctx *c, const struct cli_args *a)
{
	return no_args(c, a) ? CLI_EUSAGE : show(c, "/v1/hosts", fmt_hosts);
}

static int run_plan(struct cli_ctx *c, const struct cli_args *a)
{
	return no_args(c, a) ? CLI_EUSAGE : show(c, "/v1/plan", fmt_plan);
}

/* Keeps the VMs on host (in place). */
static void filter_vms(json_t *doc, const char *host)
{
	json_t *vms = json_object_get(doc, "vms");

	for (size_t i = json_array_size(vms); i-- > 0;) {
		const char *h = json_string_value(json_object_get(json_array_get(vms, i), "host"));
		if (!h || strcmp(h, host) != 0)
			json_array_remove(vms, i);
	}
}

static int run_vms(struct cli_ctx *c, const struct cli_args *a)
{
	const char *host = cli_opt_str(a, "host");
	char err[256];
	json_t *doc;
	int rc;

	if (no_args(c, a))
		return CLI_EUSAGE;
	if (host && cli_req_check_id("--host", host, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	rc = cli_call(c, "GET", "/v1/vms", NULL, CLI_DEFAULT_TIMEOUT_MS, &doc);
	if (rc)
		return rc;
	if (c->json) {
		if (host)
			filter_vms(doc, host);
		cli_print_json(c, doc);
	} else if (cli_fmt_vms(c->out, doc, host) < 0) {
		fprintf(c->err,
		        "loadease %s: unexpected answer from the controller (GET /v1/vms)\n",
		        c->verb);
		rc = CLI_EAPI;
	}
	json_decref(doc);
	return rc;
}

/* --- the mutating verbs -------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : dflt;
}

static double jnum(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static int run_vm_create(struct cli_ctx *c, const struct cli_args *a)
{
	json_t *body, *reply;
	char err[256];
	int rc;

	if (cli_req_vm_create(a, &body, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	rc = cli_call(c, "POST", "/v1/vms", body, 120000, &reply);
	json_decref(body);
	if (rc)
		return rc;
	if (c->json)
		cli_print_json(c, reply);
	else
		fprintf(c->out, "%s created on %s: %s\n", a->pos[0], jstr(reply, "host", "?"),
		        jstr(reply, "reason", "-"));
	json_decref(reply);
	return CLI_OK;
}

static void print_migrated(struct cli_ctx *c, const char *vm, const json_t *r)
{
	fprintf(c->out, "%s migrated %s -> %s: total %.0f ms, downtime %.0f ms, %.1f MiB sent", vm,
	        jstr(r, "from", "?"), jstr(r, "to", "?"), jnum(r, "total_ms"),
	        jnum(r, "downtime_ms"), jnum(r, "bytes") / 1048576.0);
	if (json_string_length(json_object_get(r, "reason")))
		fprintf(c->out, " (%s)", jstr(r, "reason", ""));
	fputc('\n', c->out);
}

static int run_vm_migrate(struct cli_ctx *c, const struct cli_args *a)
{
	json_t *body, *reply;
	char err[256], path[128];
	int rc;

	if (cli_req_vm_migrate(a, &body, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	snprintf(path, sizeof(path), "/v1/vms/%s/migrate", a->pos[0]);
	rc = cli_call(c, "POST", path, body, 900000, &reply);
	json_decref(body);
	if (rc)
		return rc;
	if (c->json)
		cli_print_json(c, reply);
	else
		print_migrated(c, a->pos[0], reply);
	json_decref(reply);
	return CLI_OK;
}

static int run_vm_rm(struct cli_ctx *c, const struct cli_args *a)
{
	char err[256], path[128];
	json_t *reply;
	int rc;

	if (a->npos == 0)
		return cli_usage(c, "the VM id is missing");
	if (a->npos > 1)
		return cli_usage(c, "unexpected argument '%.64s'", a->pos[1]);
	if (cli_req_check_id("VM", a->pos[0], err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	snprintf(path, sizeof(path), "/v1/vms/%s", a->pos[0]);
	rc = cli_call(c, "DELETE", path, NULL, 60000, &reply);
	if (rc)
		return rc;
	if (c->json)
		cli_print_json(c, reply);
	else
		fprintf(c->out, "%s deleted (it ran on %s)\n", a->pos[0], jstr(reply, "host", "?"));
	json_decref(reply);
	return CLI_OK;
}

static int run_maintenance(struct cli_ctx *c, const struct cli_args *a)
{
	char err[256], path[128];
	json_t *body, *reply;
	int rc;

	if (cli_req_maintenance(a, &body, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	snprintf(path, sizeof(path), "/v1/hosts/%s/maintenance", a->pos[1]);
	rc = cli_call(c, "PUT", path, body, CLI_DEFAULT_TIMEOUT_MS, &reply);
	json_decref(body);
	if (rc)
		return rc;
	if (c->json)
		cli_print_json(c, reply);
	else
		fprintf(c->out, "%s: state %s\n", jstr(reply, "host", a->pos[1]),
		        jstr(reply, "state", "?"));
	json_decref(reply);
	return CLI_OK;
}

/* --- the verbs ----------------------------------------------------------- */

static const struct cli_opt no_opts[] = {{NULL, 0, false}};
static const struct cli_opt vms_opts[] = {{"host", 0, true}, {NULL, 0, false}};
static const struct cli_opt top_opts[] = {
    {"interval", 0, true}, {"once", 0, false}, {"count", 0, true}, {NULL, 0, false}};
static const struct cli_opt events_opts[] = {{"n", 'n', true},  {"follow", 'f', false},
                                             {"type", 0, true}, {"vm", 0, true},
                                             {"host", 0, true}, {NULL, 0, false}};
static const struct cli_opt create_opts[] = {
    {"mem", 0, true},    {"vcpus", 0, true},      {"kernel", 0, true},   {"initrd", 0, true},
    {"append", 0, true}, {"disk", 0, true},       {"host", 0, true},     {"pin", 0, true},
    {"group", 0, true},  {"anti-group", 0, true}, {"exclude", 0, false}, {NULL, 0, false}};
static const struct cli_opt migrate_opts[] = {
    {"to", 0, true}, {"force", 0, false}, {NULL, 0, false}};

static const struct verb verbs[] = {
    {NULL, "cluster", "loadease cluster [--json]",
     "The cluster at a glance: the controller answering (leader or follower), mode,\n"
     "rounds, Redis, hosts by state, VMs, hotspots, migrations in flight and the\n"
     "largest volume (GET /v1/cluster).\n",
     no_opts, run_cluster},
    {NULL, "hosts", "loadease hosts [--json]",
     "Hosts: state (,excl when excluded), CPU%/MEM%/NET% of the last sample (percent\n"
     "of capacity), PEAK(C/M/N) the configured percentile in percent, HOT the hot\n"
     "resources, VOLUME (Sandpiper), VMS the VM count, AGE since the last heartbeat\n"
     "(GET /v1/hosts).\n",
     no_opts, run_hosts},
    {NULL, "vms", "loadease vms [--host H] [--json]",
     "VMs: host, state (,unreachable while its host is down), vCPUs, memory (MiB),\n"
     "CPU% of its vCPUs, MEM% of its memory, NET% of its host's NIC, RULES\n"
     "(pin=h1,h2;group=G;anti=G;excl) and a running migration (src->dst:phase)\n"
     "(GET /v1/vms).\n"
     "\noptions:\n"
     "  --host H   only the VMs on host H\n",
     vms_opts, run_vms},
    {NULL, "top", "loadease top [--interval S] [--once | --count N] [--json]",
     "A live view: the cluster line, the hosts table and the VMs table, redrawn in\n"
     "place every interval on a terminal; when the output is not a terminal, one\n"
     "frame per interval separated by a blank line (--json: one JSON object per\n"
     "line with \"cluster\", \"hosts\" and \"vms\"). Ctrl-C quits.\n"
     "\noptions:\n"
     "  --interval S   seconds between frames (default 2, 0.2 to 3600)\n"
     "  --once         one frame, then exit (same as --count 1)\n"
     "  --count N      N frames, then exit\n",
     top_opts, cli_top},
    {NULL, "plan", "loadease plan [--json]",
     "What the balancer would do now, computed on the controller's last round\n"
     "(nothing moves): the actions (KIND VM FROM TO RES, SRC-VOL and DST-VOL the\n"
     "projected volumes before->after, COST in seconds, REASON) and the hotspots\n"
     "it cannot relieve with why (GET /v1/plan).\n",
     no_opts, run_plan},
    {NULL, "events", "loadease events [-n N] [-f] [--type T] [--vm V] [--host H] [--json]",
     "The decision log, oldest first, one line per event: local time, type,\n"
     "vm=V from->to host=H, details, then the reason and message\n"
     "(GET /v1/events). --json prints one JSON object per line.\n"
     "\noptions:\n"
     "  -n N          the newest N events (default 20, 0 to 10000)\n"
     "  -f, --follow  then print new events as they come (a long poll) until\n"
     "                Ctrl-C (status 0); status 3 when the controller goes away\n"
     "  --type T      only events of type T\n"
     "  --vm V        only events about VM V\n"
     "  --host H      only events about host H\n",
     events_opts, cli_events},
    {"vm", "create",
     "loadease vm create ID --mem MIB [--vcpus N] (--kernel PATH [--initrd PATH]\n"
     "       [--append STR] | --disk PATH) [--host H] [--pin h1,h2] [--group G]\n"
     "       [--anti-group G] [--exclude]",
     "Provisions a VM (POST /v1/vms): the placement picks the host (or checks the\n"
     "one given); prints the host and why. When no host fits, prints why each\n"
     "host was refused. Paths are inside the agents' vm.images_dir.\n"
     "\noptions:\n"
     "  --mem MIB         memory in MiB (64 to 16777216; required)\n"
     "  --vcpus N         vCPUs (1 to 1024; default 1)\n"
     "  --kernel PATH     kernel to boot (direct kernel boot)\n"
     "  --initrd PATH     its initrd\n"
     "  --append STR      its command line\n"
     "  --disk PATH       a disk image to boot instead of a kernel\n"
     "  --host H          place it on host H (checked against state, rules, capacity)\n"
     "  --pin h1,h2       rule: only ever on these hosts\n"
     "  --group G         rule: keep together with the VMs of group G (affinity)\n"
     "  --anti-group G    rule: keep apart from the VMs of group G (anti-affinity)\n"
     "  --exclude         rule: never move it\n",
     create_opts, run_vm_create},
    {"vm", "migrate", "loadease vm migrate ID [--to HOST] [--force]",
     "Live-migrates a VM now and waits for the end (POST /v1/vms/ID/migrate):\n"
     "prints from -> to, the total time, the downtime and the bytes sent.\n"
     "\noptions:\n"
     "  --to HOST   the destination (default: the placement picks one)\n"
     "  --force     skip the threshold check (never the state or the rules)\n",
     migrate_opts, run_vm_migrate},
    {"vm", "rm", "loadease vm rm ID",
     "Deletes a VM: its agent powers it down and removes it (DELETE /v1/vms/ID).\n", no_opts,
     run_vm_rm},
    {"host", "maintenance", "loadease host maintenance on|off HOST",
     "Puts a host in maintenance (the controller evacuates it, in auto mode, and\n"
     "places nothing there) or takes it out (PUT /v1/hosts/HOST/maintenance).\n",
     no_opts, run_maintenance},
};
#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

bool cli_is_verb(const char *verb)
{
	for (size_t i = 0; i < NVERBS; i++)
		if (strcmp(verb, verbs[i].group ? verbs[i].group : verbs[i].name) == 0)
			return true;
	return false;
}

static bool is_help(const char *s)
{
	return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0 || strcmp(s, "help") == 0;
}

/* `loadease vm` / `loadease host` without a known subcommand. */
static int group_help(const char *group, const char *sub, FILE *out, FILE *err)
{
	FILE *f = sub && is_help(sub) ? out : err;

	if (!sub)
		fprintf(err, "loadease %s: a subcommand is missing\n", group);
	else if (f == err)
		fprintf(err, "loadease %s: unknown subcommand '%.64s'\n", group, sub);
	fprintf(f, "usage:\n");
	for (size_t i = 0; i < NVERBS; i++) {
		if (!verbs[i].group || strcmp(verbs[i].group, group) != 0)
			continue;
		fputs("  ", f);
		for (const char *p = verbs[i].usage; *p; p++) { /* continuation lines too */
			if (*p == '\n')
				fputs("\n  ", f);
			else
				fputc(*p, f);
		}
		fputc('\n', f);
	}
	fprintf(f, "'loadease %s <subcommand> --help' tells more.\n", group);
	return f == out ? CLI_OK : CLI_EUSAGE;
}

static const struct verb *find_verb(const char *group, const char *name)
{
	for (size_t i = 0; i < NVERBS; i++) {
		const struct verb *v = &verbs[i];
		if (group ? v->group && strcmp(v->group, group) == 0 && strcmp(v->name, name) == 0
		          : !v->group && strcmp(v->name, name) == 0)
			return v;
	}
	return NULL;
}

/* The token from a file: its first line without trailing blanks. */
static int read_token(struct cli_ctx *c, const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return cli_usage(c, "token file %s: %s", path, strerror(errno));
	n = fread(c->token, 1, sizeof(c->token) - 1, f);
	fclose(f);
	c->token[n] = '\0';
	n = strcspn(c->token, "\r\n");
	while (n && (c->token[n - 1] == ' ' || c->token[n - 1] == '\t'))
		n--;
	c->token[n] = '\0';
	return CLI_OK;
}

static int setup_token(struct cli_ctx *c, const struct cli_args *a)
{
	const char *t = cli_opt_str(a, "token"), *f = cli_opt_str(a, "token-file");

	if (!t && !f)
		t = getenv("LOADEASE_TOKEN");
	if (!t && !f)
		f = getenv("LOADEASE_TOKEN_FILE");
	if (t && util_fmt(c->token, sizeof(c->token), "%s", t) < 0)
		return cli_usage(c, "the token is too long");
	if (!t && f && f[0])
		return read_token(c, f);
	return CLI_OK;
}

static int setup_ctx(struct cli_ctx *c, const struct cli_args *a)
{
	const char *url = cli_opt_str(a, "controller");
	double timeout = 0;
	char err[256];
	size_t len;

	if (!url || !url[0])
		url = getenv("LOADEASE_CONTROLLER");
	if (!url || !url[0])
		url = CLI_DEFAULT_CONTROLLER;
	if (util_fmt(c->base, sizeof(c->base), "%s%s", strstr(url, "://") ? "" : "http://", url))
		return cli_usage(c, "--controller: the URL is too long");
	if (strncmp(c->base, "http://", 7) != 0 && strncmp(c->base, "https://", 8) != 0)
		return cli_usage(c, "--controller: '%.64s' is not an http:// or https:// URL", url);
	len = strlen(c->base);
	while (len && c->base[len - 1] == '/')
		c->base[--len] = '\0';
	if (cli_opt_num(a, "timeout", 0.1, 86400, &timeout, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	c->timeout_ms = (long)(timeout * 1000);
	c->json = cli_opt_flag(a, "json");
	return setup_token(c, a);
}

static int run_verb(const struct verb *v, int argc, char **argv, FILE *out, FILE *err)
{
	const struct cli_opt *const tables[] = {v->opts, global_opts, NULL};
	struct cli_ctx c = {.usage = v->usage, .out = out, .err = err};
	char name[64], msg[256];
	struct cli_args a;
	int rc;

	snprintf(name, sizeof(name), "%s%s%s", v->group ? v->group : "", v->group ? " " : "",
	         v->name);
	c.verb = name;
	if (cli_opt_parse(tables, argc, argv, &a, msg, sizeof(msg)) < 0)
		return cli_usage(&c, "%s", msg);
	if (cli_opt_flag(&a, "help")) {
		fprintf(out, "usage: %s\n\n%s\n%s", v->usage, v->help, global_help);
		return CLI_OK;
	}
	rc = setup_ctx(&c, &a);
	return rc ? rc : v->run(&c, &a);
}

int cli_run(int argc, char **argv, FILE *out, FILE *err)
{
	const struct verb *v;

	tzset();
	if (strcmp(argv[0], "vm") == 0 || strcmp(argv[0], "host") == 0) {
		v = argc > 1 ? find_verb(argv[0], argv[1]) : NULL;
		if (!v)
			return group_help(argv[0], argc > 1 ? argv[1] : NULL, out, err);
		return run_verb(v, argc - 2, argv + 2, out, err);
	}
	v = find_verb(NULL, argv[0]);
	if (!v) {
		fprintf(err, "loadease: unknown command '%.64s'\n", argv[0]);
		return CLI_EUSAGE;
	}
	return run_verb(v, argc - 1, argv + 1, out, err);
}

int cli_main(int argc, char **argv)
{
	int rc = cli_run(argc, argv, stdout, stderr);

	fflush(stdout);
	return rc;
}
