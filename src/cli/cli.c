/* cli.c - `loadease <verb>`: the operator's client of the controller's REST
 * API (docs/controller.md). This file holds the verb table, the dispatch
 * (global options anywhere on the line), the request helpers and the
 * read-only verbs; the verbs that change things (and wait for the end) live
 * in cli_act.c, top and events in cli_watch.c, completion in
 * cli_complete.c, tables in cli_fmt.c, request bodies in cli_req.c. */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_fmt.h"
#include "cli/cli_int.h"
#include "cli/cli_req.h"
#include "cli/cli_table.h"
#include "common/httpc.h"
#include "common/tls.h"
#include "common/util.h"

const struct cli_opt cli_global_opts[] = {
    {"controller", 0, true, CLI_K_NONE}, {"token", 0, true, CLI_K_NONE},
    {"token-file", 0, true, CLI_K_FILE}, {"timeout", 0, true, CLI_K_NONE},
    {"json", 0, false, CLI_K_NONE},      {"help", 'h', false, CLI_K_NONE},
    {"ca", 0, true, CLI_K_FILE},         {NULL, 0, false, CLI_K_NONE},
};

static const char global_help[] =
    "global options (anywhere: before the verb, after it, between its arguments):\n"
    "  --controller URL  the controller's API (default: $LOADEASE_CONTROLLER,\n"
    "                    else " CLI_DEFAULT_CONTROLLER ")\n"
    "  --token T         bearer token for the API (default: $LOADEASE_TOKEN)\n"
    "  --token-file F    file holding the token (default: $LOADEASE_TOKEN_FILE);\n"
    "                    order: --token, --token-file, $LOADEASE_TOKEN, $LOADEASE_TOKEN_FILE\n"
    "  --ca FILE         the cluster CA an https:// controller is verified with\n"
    "                    (default: $LOADEASE_CA, else " TLS_DEFAULT_CA "\n"
    "                    when it exists, else the system's CAs)\n"
    "  --timeout S       seconds to wait (default 10; vm create 120; vm rm 60 and\n"
    "                    vm migrate 900, for the end of the deletion or the move)\n"
    "  --json            machine output: the API's JSON document\n"
    "  -h, --help        this help\n"
    "\n"
    "exit status: 0 ok, 1 the controller answered with an error (an unknown host\n"
    "or VM, a refused or failed action, a rejected token), 2 usage error, 3 the\n"
    "controller is unreachable, 4 gave up waiting (--timeout) for an action's end\n";

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

	cli_table_clean(c->code, sizeof(c->code), json_string_value(json_object_get(e, "code")));
	cli_table_clean(text, sizeof(text), msg); /* no control bytes to the terminal */
	if (msg)
		fprintf(c->err, "loadease %s: %s\n", c->verb, text);
	else
		fprintf(c->err, "loadease %s: the controller answered HTTP %d\n", c->verb, status);
	if (status == 409)
		cli_fmt_refused(c->err, e);
	if ((status == 401 || status == 403) && c->token[0])
		fprintf(c->err, "loadease %s: the controller rejected the token (HTTP %d)\n",
		        c->verb, status);
	else if (status == 401 || status == 403)
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
	c->code[0] = '\0';
	snprintf(url, sizeof(url), "%s%s", c->base, path);
	st = httpc_json(method, url, body, c->token, c->timeout_ms ? c->timeout_ms : timeout_ms,
	                reply, err, sizeof(err));
	c->status = st;
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

json_t *cli_get_quiet(struct cli_ctx *c, const char *path, long timeout_ms)
{
	char url[1024], err[256];
	json_t *reply = NULL;
	int st;

	snprintf(url, sizeof(url), "%s%s", c->base, path);
	st = httpc_json("GET", url, NULL, c->token, timeout_ms, &reply, err, sizeof(err));
	c->status = st;
	if (st >= 200 && st <= 299 && json_is_object(reply))
		return reply;
	json_decref(reply);
	return NULL;
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

/* GET /v1/<what>/<id>: the document, or NULL with the exit code in *rc (an
 * unknown one is the controller's 404: "no host nosuch", status 1). */
static json_t *get_one(struct cli_ctx *c, const char *what, const char *id, int *rc)
{
	char path[128];
	json_t *doc;

	snprintf(path, sizeof(path), "/v1/%s/%s", what, id);
	*rc = cli_call(c, "GET", path, NULL, CLI_DEFAULT_TIMEOUT_MS, &doc);
	return *rc ? NULL : doc;
}

static int print_vms(struct cli_ctx *c, json_t *doc, const char *host)
{
	if (c->json) {
		if (host)
			filter_vms(doc, host);
		cli_print_json(c, doc);
	} else if (cli_fmt_vms(c->out, doc, host) < 0) {
		fprintf(c->err,
		        "loadease %s: unexpected answer from the controller (GET /v1/vms)\n",
		        c->verb);
		return CLI_EAPI;
	}
	return CLI_OK;
}

static int run_vms(struct cli_ctx *c, const struct cli_args *a)
{
	const char *host = cli_opt_str(a, "host");
	char err[256];
	json_t *doc;
	int rc;

	if (no_args(c, a))
		return CLI_EUSAGE;
	if (host && cli_req_check_id(cli_opt_as(a, "host"), host, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	if (host) { /* an unknown host is an error, not an empty list */
		doc = get_one(c, "hosts", host, &rc);
		json_decref(doc);
		if (rc)
			return rc;
	}
	rc = cli_call(c, "GET", "/v1/vms", NULL, CLI_DEFAULT_TIMEOUT_MS, &doc);
	if (rc)
		return rc;
	rc = print_vms(c, doc, host);
	json_decref(doc);
	return rc;
}

/* The one id positional of `vm show ID`, `host show ID`. */
static int one_id(struct cli_ctx *c, const struct cli_args *a, const char *what)
{
	char err[256];

	if (a->npos == 0)
		return cli_usage(c, "the %s id is missing", what);
	if (a->npos > 1)
		return cli_usage(c, "unexpected argument '%.64s'", a->pos[1]);
	if (cli_req_check_id(what, a->pos[0], err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	return CLI_OK;
}

static int run_host_show(struct cli_ctx *c, const struct cli_args *a)
{
	json_t *h, *wrap, *vms = NULL;
	int rc = one_id(c, a, "host");

	if (rc || !(h = get_one(c, "hosts", a->pos[0], &rc)))
		return rc;
	if (c->json) {
		cli_print_json(c, h);
		json_decref(h);
		return CLI_OK;
	}
	wrap = json_pack("{s:[O]}", "hosts", h);
	if (!wrap || cli_fmt_hosts(c->out, wrap, util_now_ms()) < 0)
		rc = CLI_EAPI;
	if (!rc)
		rc = cli_call(c, "GET", "/v1/vms", NULL, CLI_DEFAULT_TIMEOUT_MS, &vms);
	if (!rc) {
		fputc('\n', c->out);
		rc = print_vms(c, vms, a->pos[0]);
	}
	json_decref(vms);
	json_decref(wrap);
	json_decref(h);
	return rc;
}

/* The lines under a VM's row: its migration, the last one, the cooldown. */
static void vm_details(FILE *out, const json_t *v)
{
	const json_t *m = json_object_get(v, "migration");
	double last = json_number_value(json_object_get(v, "last_migration"));
	double cool = json_number_value(json_object_get(v, "cooldown_until"));
	char t[40], s[3][80];

	if (json_is_object(m)) {
		double done = json_number_value(json_object_get(m, "data_processed"));
		double total = json_number_value(json_object_get(m, "data_total"));
		static const char *const k[] = {"src", "dst", "phase"};
		for (int i = 0; i < 3; i++)
			cli_table_clean(s[i], sizeof(s[i]),
			                json_string_value(json_object_get(m, k[i])));
		fprintf(out, "migrating %s -> %s, phase %s", s[0], s[1], s[2]);
		if (total > 0)
			fprintf(out, ", %.0f%% of %.1f MiB", 100 * done / total, total / 1048576.0);
		fputc('\n', out);
	}
	if (last > 0) {
		cli_fmt_time((int64_t)last, t, sizeof(t));
		fprintf(out, "last migration %s\n", t);
	}
	if (cool > (double)util_now_ms()) {
		cli_fmt_time((int64_t)cool, t, sizeof(t));
		fprintf(out, "not moved by the balancer before %s (cooldown)\n", t);
	}
}

static int run_vm_show(struct cli_ctx *c, const struct cli_args *a)
{
	json_t *v, *wrap;
	int rc = one_id(c, a, "VM");

	if (rc || !(v = get_one(c, "vms", a->pos[0], &rc)))
		return rc;
	if (c->json) {
		cli_print_json(c, v);
		json_decref(v);
		return CLI_OK;
	}
	wrap = json_pack("{s:[O]}", "vms", v);
	if (!wrap || cli_fmt_vms(c->out, wrap, NULL) < 0)
		rc = CLI_EAPI;
	else
		vm_details(c->out, v);
	json_decref(wrap);
	json_decref(v);
	return rc;
}

/* --- the verbs ----------------------------------------------------------- */

#define END_OPTS                                                                                   \
	{                                                                                          \
		NULL, 0, false, CLI_K_NONE                                                         \
	}
static const struct cli_opt no_opts[] = {END_OPTS};
static const struct cli_opt vms_opts[] = {{"host", 0, true, CLI_K_HOST}, END_OPTS};
static const struct cli_opt top_opts[] = {{"interval", 0, true, CLI_K_NONE},
                                          {"once", 0, false, CLI_K_NONE},
                                          {"count", 0, true, CLI_K_NONE},
                                          END_OPTS};
static const struct cli_opt events_opts[] = {
    {"n", 'n', true, CLI_K_NONE}, {"follow", 'f', false, CLI_K_NONE}, {"type", 0, true, CLI_K_NONE},
    {"vm", 0, true, CLI_K_VM},    {"host", 0, true, CLI_K_HOST},      END_OPTS};
static const struct cli_opt create_opts[] = {{"mem", 0, true, CLI_K_NONE},
                                             {"vcpus", 0, true, CLI_K_NONE},
                                             {"max-vcpus", 0, true, CLI_K_NONE},
                                             {"max-mem", 0, true, CLI_K_NONE},
                                             {"kernel", 0, true, CLI_K_FILE},
                                             {"initrd", 0, true, CLI_K_FILE},
                                             {"append", 0, true, CLI_K_NONE},
                                             {"disk", 0, true, CLI_K_FILE},
                                             {"host", 0, true, CLI_K_HOST},
                                             {"pin", 0, true, CLI_K_HOST},
                                             {"group", 0, true, CLI_K_NONE},
                                             {"anti-group", 0, true, CLI_K_NONE},
                                             {"exclude", 0, false, CLI_K_NONE},
                                             {"force", 0, false, CLI_K_NONE},
                                             END_OPTS};
static const struct cli_opt migrate_opts[] = {{"to", 0, true, CLI_K_HOST},
                                              {"force", 0, false, CLI_K_NONE},
                                              {"no-wait", 0, false, CLI_K_NONE},
                                              END_OPTS};
static const struct cli_opt rm_opts[] = {{"no-wait", 0, false, CLI_K_NONE}, END_OPTS};
static const struct cli_opt rules_opts[] = {{"pin", 0, true, CLI_K_HOST},
                                            {"group", 0, true, CLI_K_NONE},
                                            {"anti-group", 0, true, CLI_K_NONE},
                                            {"exclude", 0, true, CLI_K_NONE},
                                            {"automation", 0, true, CLI_K_NONE},
                                            {"reset", 0, false, CLI_K_NONE},
                                            END_OPTS};
static const struct cli_opt reset_opts[] = {{"reset", 0, false, CLI_K_NONE}, END_OPTS};
static const struct cli_opt clear_opts[] = {{"clear", 0, false, CLI_K_NONE}, END_OPTS};
static const struct cli_opt resize_opts[] = {
    {"vcpus", 0, true, CLI_K_NONE}, {"mem", 0, true, CLI_K_NONE}, END_OPTS};

const struct cli_verb cli_verbs[] = {
    {NULL, "cluster", "the cluster at a glance", "loadease cluster [--json]",
     "The cluster at a glance: the controller answering (leader or follower), mode,\n"
     "rounds, Redis, hosts by state, VMs, hotspots, migrations in flight and the\n"
     "largest volume (GET /v1/cluster).\n",
     no_opts, NULL, run_cluster},
    {NULL, "hosts", "hosts with load, hotspots and state", "loadease hosts [--json]",
     "Hosts: state (,excl when excluded), CPU%/MEM%/NET% of the last sample (percent\n"
     "of capacity), PEAK(C/M/N) the configured percentile in percent, HOT the hot\n"
     "resources, VOLUME (Sandpiper), VMS the VM count, AGE since the last heartbeat\n"
     "(GET /v1/hosts).\n",
     no_opts, NULL, run_hosts},
    {NULL, "vms", "VMs with load, host and rules", "loadease vms [--host H] [--json]",
     "VMs: host, state (,unreachable while its host is down), vCPUs, memory (MiB),\n"
     "CPU% of its vCPUs, MEM% of its memory, NET% of its host's NIC, RULES\n"
     "(pin=h1,h2;group=G;anti=G;excl;auto=manual|off) and a running migration\n"
     "(src->dst:phase)\n"
     "(GET /v1/vms).\n"
     "\noptions:\n"
     "  --host H   only the VMs on host H (status 1 when there is no host H)\n",
     vms_opts, NULL, run_vms},
    {NULL, "top", "live view of hosts and VMs",
     "loadease top [--interval S] [--once | --count N] [--json]",
     "A live view: the cluster line, the hosts table and the VMs table, redrawn in\n"
     "place every interval on a terminal; when the output is not a terminal, one\n"
     "frame per interval separated by a blank line (--json: one JSON object per\n"
     "line with \"cluster\", \"hosts\" and \"vms\"). q (on a terminal), Ctrl-C or\n"
     "SIGTERM quits with status 0, the terminal as it was.\n"
     "\noptions:\n"
     "  --interval S   seconds between frames (default 2, 0.2 to 3600)\n"
     "  --once         one frame, then exit (same as --count 1)\n"
     "  --count N      N frames, then exit\n",
     top_opts, NULL, cli_top},
    {NULL, "plan", "what the balancer would do now", "loadease plan [--json]",
     "What the balancer would do now, computed on the controller's last round\n"
     "(nothing moves): the actions (KIND VM FROM TO RES, SRC-VOL and DST-VOL the\n"
     "projected volumes before->after, COST in seconds, REASON) and the hotspots\n"
     "it cannot relieve with why (GET /v1/plan).\n",
     no_opts, NULL, run_plan},
    {NULL, "events", "the decision log (-f follows it)",
     "loadease events [-n N] [-f] [--type T] [--vm V] [--host H] [--json]",
     "The decision log, oldest first, one line per event: local time, type,\n"
     "vm=V from->to host=H, details, then the reason and message\n"
     "(GET /v1/events). --json prints one JSON object per line.\n"
     "\noptions:\n"
     "  -n N          the newest N events (default 20, 0 to 10000)\n"
     "  -f, --follow  then print new events as they come (a long poll) until\n"
     "                Ctrl-C (status 0); status 3 when the controller goes away\n"
     "  --type T      only events of type T (a comma-separated list)\n"
     "  --vm V        only events about VM V\n"
     "  --host H      only events about host H\n"
     "Without -f, a VM or host the controller does not know and no event names\n"
     "is an error (status 1); a deleted VM's events are still shown.\n",
     events_opts, NULL, cli_events},
    {"vm", "show", "one VM", "loadease vm [show] ID [--json]",
     "One VM: its row of `vms`, then its migration while one runs (phase and\n"
     "progress), its last migration and its cooldown (GET /v1/vms/ID). Status 1\n"
     "when there is no VM ID. `loadease vm ID` is short for it.\n",
     no_opts, "vm", run_vm_show},
    {"vm", "create", "provision a VM (placement picks the host)",
     "loadease vm create ID --mem MIB [--vcpus N] [--max-vcpus N] [--max-mem MIB]\n"
     "       (--kernel PATH [--initrd PATH] [--append STR] | --disk PATH) [--host H]\n"
     "       [--force] [--pin h1,h2] [--group G] [--anti-group G] [--exclude]",
     "Provisions a VM (POST /v1/vms): the placement picks the host (or checks the\n"
     "one given); prints the host and why. When no host fits, prints why each\n"
     "host was refused. Paths are inside the agents' vm.images_dir.\n"
     "\noptions:\n"
     "  --mem MIB         memory in MiB (64 to 16777216; required)\n"
     "  --vcpus N         vCPUs (1 to 1024; default 1)\n"
     "  --max-vcpus N     the most vCPUs a resize in place may give it (default --vcpus)\n"
     "  --max-mem MIB     the most memory a resize in place may give it (default --mem)\n"
     "  --kernel PATH     kernel to boot (direct kernel boot)\n"
     "  --initrd PATH     its initrd\n"
     "  --append STR      its command line\n"
     "  --disk PATH       a disk image to boot instead of a kernel\n"
     "  --host H          place it on host H (checked against state, rules, capacity;\n"
     "                    status 1 when there is no host H)\n"
     "  --force           with --host: place it there past the soft limits (CPU\n"
     "                    overcommit, threshold, headroom), never past the hard ones\n"
     "                    (memory capacity, a host down or in maintenance, the rules)\n"
     "  --pin h1,h2       rule: only ever on these hosts\n"
     "  --group G         rule: keep together with the VMs of group G (affinity)\n"
     "  --anti-group G    rule: keep apart from the VMs of group G (anti-affinity)\n"
     "  --exclude         rule: never move it\n"
     "The rules are set at creation (in the domain's metadata); `loadease vm rules`\n"
     "changes them at run time.\n",
     create_opts, NULL, cli_vm_create},
    {"vm", "migrate", "live-migrate a VM and wait for the outcome",
     "loadease vm migrate ID [--to HOST] [--force] [--no-wait] [--timeout S]",
     "Live-migrates a VM now (POST /v1/vms/ID/migrate) and waits until the move\n"
     "has ended and the controller shows the VM where it runs. Meanwhile the\n"
     "phase and progress are shown: redrawn in place on a terminal, a plain line\n"
     "per phase otherwise (nothing with --json). Then the outcome:\n"
     "  done: from -> to, the total time, the downtime and the bytes sent (status 0)\n"
     "  failed: the reason, and where the VM runs now, \"rolled back: it keeps\n"
     "  running on <source>\" when it stayed (status 1)\n"
     "  refused before it started: the reason (status 1)\n"
     "  gave up waiting after --timeout (default 900 s): status 4, the move may go on\n"
     "\noptions:\n"
     "  --to HOST   the destination (default: the placement picks one)\n"
     "  --force     past the soft limits (CPU overcommit, threshold, headroom) and\n"
     "              exclude (the VM's, its host's, the target's); never the hard\n"
     "              ones (memory capacity, a host's state, pin, affinity)\n"
     "  --no-wait   return once the controller has started it (status 0);\n"
     "              `loadease vm ID` shows how it goes\n",
     migrate_opts, "vm", cli_vm_migrate},
    {"vm", "resize", "change a VM's vCPUs or memory in place",
     "loadease vm resize ID [--vcpus N] [--mem MIB] [--timeout S]",
     "Changes a running VM's allocation on its own host (POST /v1/vms/ID/resize):\n"
     "vCPUs are hot-plugged, memory moves through the balloon, up to the maxima\n"
     "its domain was defined with (`loadease vm ID` shows them). Prints what the\n"
     "guest has afterwards, as libvirt reads it back, which may differ from what\n"
     "was asked (a guest whose balloon stops short). Refused (status 1): beyond\n"
     "the maxima, fewer vCPUs than it runs, memory below what the guest uses plus\n"
     "a margin, a VM that migrates; libvirt's reason when it refuses.\n"
     "\noptions:\n"
     "  --vcpus N   the vCPUs it should have (more than it runs: hot-plug only)\n"
     "  --mem MIB   the memory it should have, MiB\n",
     resize_opts, "vm", cli_vm_resize},
    {"vm", "rm", "delete a VM and wait until it is gone",
     "loadease vm rm ID [--no-wait] [--timeout S]",
     "Deletes a VM: its agent powers it down and removes it (DELETE /v1/vms/ID);\n"
     "then waits until the controller no longer lists it (--timeout, default\n"
     "60 s; status 4 when it still does).\n"
     "\noptions:\n"
     "  --no-wait   return once the agent has deleted it\n",
     rm_opts, "vm", cli_vm_rm},
    {"vm", "rules", "show or change a VM's rules and automation level",
     "loadease vm rules ID [--pin h1,h2] [--group G] [--anti-group G] [--exclude on|off]\n"
     "       [--automation auto|manual|off] [--reset]",
     "Without options: the VM's rules, and who set them (GET /v1/vms/ID/rules).\n"
     "With options: changes the rules given, the others stay (PUT /v1/vms/ID/rules);\n"
     "stored in Redis by the controller, they replace the rules of the domain's\n"
     "metadata, survive restarts of the agents and controllers and follow the VM\n"
     "through migrations. Logged as rule_changed with the old and new rules.\n"
     "\noptions:\n"
     "  --pin h1,h2          only ever on these hosts (\"\" = any host)\n"
     "  --group G            keep together with the VMs of group G (\"\" = none)\n"
     "  --anti-group G       keep apart from the VMs of group G (\"\" = none)\n"
     "  --exclude on|off     never moved (automatically; by hand only with --force)\n"
     "  --automation LEVEL   auto: the controller moves and resizes it; manual: it\n"
     "                       only recommends (the recommend events); off: the\n"
     "                       balancer never moves or resizes it\n"
     "  --reset              back to the domain's rules (automation auto)\n",
     rules_opts, "vm", cli_vm_rules},
    {"host", "show", "one host and its VMs", "loadease host [show] HOST [--json]",
     "One host: its row of `hosts`, then the VMs on it (GET /v1/hosts/HOST).\n"
     "Status 1 when there is no host HOST. `loadease host HOST` is short for it.\n",
     no_opts, "host", run_host_show},
    {"host", "maintenance", "a host in or out of maintenance",
     "loadease host maintenance on|off HOST",
     "Puts a host in maintenance (the controller evacuates it, in auto mode, and\n"
     "places nothing there) or takes it out (PUT /v1/hosts/HOST/maintenance).\n",
     no_opts, "on|off host", cli_maintenance},
    {"host", "exclude", "keep a host out of balancing, or take it back",
     "loadease host exclude on|off HOST",
     "Excludes a host from balancing (PUT /v1/hosts/HOST/exclude): never the source\n"
     "or the target of an automatic move; a move by hand to or from it needs\n"
     "`vm migrate --force`. Stored in host_config:HOST (the agent never rewrites it),\n"
     "logged as rule_changed. `hosts` shows it as ,excl.\n",
     no_opts, "on|off host", cli_host_exclude},
    {NULL, "mode", "show or set the controller's mode",
     "loadease mode [off|recommend|auto] [--reset]",
     "Without an argument: the mode, where it comes from, and the mode in force\n"
     "(recommend outside the migration windows) (GET /v1/mode). With one: sets it\n"
     "at run time (PUT /v1/mode): auto moves, recommend logs what it would do, off\n"
     "only watches. Stored in Redis, it outlives restarts and wins over\n"
     "controller.mode until --reset (DELETE /v1/mode). Logged as mode_changed.\n"
     "\noptions:\n"
     "  --reset   back to the configuration's controller.mode\n",
     reset_opts, "off|recommend|auto", cli_mode},
    {NULL, "windows", "show or set when automatic migrations may start",
     "loadease windows [SPEC | --clear]",
     "Without an argument: the migration windows and whether they are open now\n"
     "(GET /v1/windows). With SPEC (UTC; the words are joined): automatic\n"
     "migrations start only inside them, outside the controller recommends only\n"
     "(PUT /v1/windows), e.g.\n"
     "  loadease windows 'mon-fri 22:00-06:00, sat,sun 00:00-24:00'\n"
     "Days mon..sun, ranges mon-fri, daily; a range ending before it starts\n"
     "crosses midnight into the next day. Stored in Redis, logged as\n"
     "windows_changed, their opening and closing as window_opened/window_closed.\n"
     "\noptions:\n"
     "  --clear   no windows: migrations at any time (DELETE /v1/windows)\n",
     clear_opts, NULL, cli_windows},
};
const size_t cli_nverbs = sizeof(cli_verbs) / sizeof(cli_verbs[0]);

static bool is_group(const char *s)
{
	for (size_t i = 0; i < cli_nverbs; i++)
		if (cli_verbs[i].group && strcmp(cli_verbs[i].group, s) == 0)
			return true;
	return false;
}

bool cli_is_verb(const char *verb)
{
	for (size_t i = 0; i < cli_nverbs; i++)
		if (strcmp(verb, cli_verbs[i].group ? cli_verbs[i].group : cli_verbs[i].name) == 0)
			return true;
	return strcmp(verb, "__complete") == 0 || (verb[0] == '-' && verb[1]);
}

void cli_print_verbs(FILE *f)
{
	for (size_t i = 0; i < cli_nverbs; i++) {
		const struct cli_verb *v = &cli_verbs[i];
		if (!v->group) {
			fprintf(f, "  %-12s %s\n", v->name, v->summary);
			continue;
		}
		if (i && cli_verbs[i - 1].group && strcmp(cli_verbs[i - 1].group, v->group) == 0)
			continue;
		fprintf(f, "  %-12s", v->group);
		for (size_t j = i; j < cli_nverbs; j++)
			if (cli_verbs[j].group && strcmp(cli_verbs[j].group, v->group) == 0)
				fprintf(f, "%s%s", j == i ? " " : " | ", cli_verbs[j].name);
		fputc('\n', f);
	}
}

void cli_print_globals(FILE *f)
{
	fprintf(f,
	        "global options of the operator commands, anywhere on the line:\n"
	        "  --controller URL, --token T, --token-file F, --ca FILE, --timeout S, --json\n");
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
	for (size_t i = 0; i < cli_nverbs; i++) {
		if (!cli_verbs[i].group || strcmp(cli_verbs[i].group, group) != 0)
			continue;
		fputs("  ", f);
		for (const char *p = cli_verbs[i].usage; *p; p++) { /* continuation lines too */
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

static const struct cli_verb *find_verb(const char *group, const char *name)
{
	for (size_t i = 0; i < cli_nverbs; i++) {
		const struct cli_verb *v = &cli_verbs[i];
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

/* --ca, $LOADEASE_CA, the installed cluster CA, or the system's CAs. */
static int setup_ca(struct cli_ctx *c, const struct cli_args *a)
{
	const char *ca = cli_opt_str(a, "ca");
	const char *from = "--ca";

	if (!ca || !ca[0]) {
		ca = getenv("LOADEASE_CA");
		from = "$LOADEASE_CA";
	}
	if (!ca || !ca[0]) {
		httpc_set_ca(access(TLS_DEFAULT_CA, R_OK) == 0 ? TLS_DEFAULT_CA : NULL);
		return CLI_OK;
	}
	if (access(ca, R_OK) < 0)
		return cli_usage(c, "%s %s: %s", from, ca, strerror(errno));
	httpc_set_ca(ca);
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
	if (util_fmt(c->base, sizeof(c->base), "%s%s", strstr(url, "://") ? "" : "https://", url))
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
	if (setup_ca(c, a) != CLI_OK)
		return CLI_EUSAGE;
	return setup_token(c, a);
}

static int run_verb(const struct cli_verb *v, int argc, char **argv, FILE *out, FILE *err)
{
	const struct cli_opt *const tables[] = {v->opts, cli_global_opts, NULL};
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

/* How many words from argv[i] on form global options (an option and its
 * value); -1 with the reason printed for an unknown option. */
static int leading_globals(int argc, char **argv, int i, FILE *err)
{
	const struct cli_opt *const tables[] = {cli_global_opts, NULL};
	int start = i;

	while (i < argc && argv[i][0] == '-' && argv[i][1] && strcmp(argv[i], "--") != 0 &&
	       !is_help(argv[i])) {
		const char *s = argv[i];
		size_t len = strcspn(s + 2, "=");
		const struct cli_opt *o = NULL;
		for (const struct cli_opt *g = tables[0]; g->name; g++)
			if (s[1] == '-' ? strlen(g->name) == len && !strncmp(g->name, s + 2, len)
			                : g->short_name == s[1] && !s[2])
				o = g;
		if (!o) {
			fprintf(err,
			        "loadease: unknown option '%.64s' before the command (global "
			        "options: --controller, --token, --token-file, --ca, --timeout, "
			        "--json)\n",
			        s);
			return -1;
		}
		i += o->arg && !strchr(s, '=') ? 2 : 1;
	}
	return (i > argc ? argc : i) - start;
}

/* argv with the global options found before the verb (and between a group
 * and its subcommand) moved after them, where the verb's parser reads
 * them: `--json vm --timeout 5 migrate x` -> `vm migrate --json --timeout 5 x`.
 * *head is how many words name the verb (1 or 2). */
static int reorder(int argc, char **argv, char **nv, int *head, FILE *err)
{
	int g1 = leading_globals(argc, argv, 0, err), g2 = 0, n = 0, verb, sub = -1;

	if (g1 < 0)
		return -1;
	verb = g1;
	if (verb >= argc) {
		fprintf(err, "loadease: a command is missing after the options; "
		             "'loadease --help' lists them\n");
		return -1;
	}
	if (is_group(argv[verb])) {
		g2 = leading_globals(argc, argv, verb + 1, err);
		if (g2 < 0)
			return -1;
		sub = verb + 1 + g2 < argc ? verb + 1 + g2 : -1;
	}
	nv[n++] = argv[verb];
	if (sub >= 0)
		nv[n++] = argv[sub];
	*head = n;
	for (int i = 0; i < g1; i++)
		nv[n++] = argv[i];
	for (int i = verb + 1; i < verb + 1 + g2; i++)
		nv[n++] = argv[i];
	for (int i = (sub >= 0 ? sub : verb + g2) + 1; i < argc; i++)
		nv[n++] = argv[i];
	nv[n] = NULL;
	return n;
}

/* Is `<group> ID ...` short for `<group> show ID ...`: one positional and
 * only the options of show? (`vm destroy vm1` is a wrong subcommand.) */
static bool shorthand(const char *group, int argc, char **argv)
{
	const struct cli_verb *v = find_verb(group, "show");
	const struct cli_opt *const tables[] = {v ? v->opts : NULL, cli_global_opts, NULL};
	struct cli_args a;
	char msg[256];

	return v && cli_opt_parse(tables, argc, argv, &a, msg, sizeof(msg)) == 0 && a.npos == 1;
}

int cli_run(int argc, char **argv, FILE *out, FILE *err)
{
	const struct cli_verb *v;
	char **nv = calloc((size_t)argc + 1, sizeof(*nv));
	int n, head, rc;

	tzset();
	if (!nv)
		return CLI_EAPI;
	if (strcmp(argv[0], "__complete") == 0) {
		rc = cli_complete(argc - 1, argv + 1, out);
		free(nv);
		return rc;
	}
	n = reorder(argc, argv, nv, &head, err);
	if (n > 0 && is_help(nv[0])) {
		fprintf(err,
		        "loadease: %s goes first ('loadease --help') or after a command "
		        "('loadease hosts --help')\n",
		        nv[0]);
		n = -1;
	}
	if (n < 0) {
		free(nv);
		return CLI_EUSAGE;
	}
	if (is_group(nv[0])) {
		const char *sub = head > 1 ? nv[1] : NULL;
		v = sub ? find_verb(nv[0], sub) : NULL;
		if (!v && sub && !is_help(sub) && sub[0] != '-' &&
		    shorthand(nv[0], n - 1, nv + 1)) {
			v = find_verb(nv[0], "show"); /* `vm ID`: vm show ID */
			head = 1;
		}
		if (!v)
			rc = group_help(nv[0], sub, out, err);
		else
			rc = run_verb(v, n - head, nv + head, out, err);
	} else if ((v = find_verb(NULL, nv[0]))) {
		rc = run_verb(v, n - 1, nv + 1, out, err);
	} else {
		fprintf(err, "loadease: unknown command '%.64s'\n", nv[0]);
		rc = CLI_EUSAGE;
	}
	free(nv);
	return rc;
}

int cli_main(int argc, char **argv)
{
	int rc = cli_run(argc, argv, stdout, stderr);

	fflush(stdout);
	return rc;
}
