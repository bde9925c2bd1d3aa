/* cli_watch.c - the live verbs: `top` (a frame of the cluster, its hosts
 * and its VMs every interval) and `events` (-f: a long poll on GET
 * /v1/events?after=ID&wait=10).
 *
 * Ctrl-C (or SIGTERM, SIGHUP, SIGQUIT) ends both with status 0, and so
 * does q in `top` when its input is a terminal (put in non-canonical mode
 * without echo while it runs, and restored on every way out). Between
 * requests the handler sets a flag the loops check; during a request, which
 * may wait 10 s for the long poll, it ends the process at once (restoring
 * the terminal first): everything printed so far has been flushed before
 * the request started, and nothing is half-written. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_fmt.h"
#include "cli/cli_int.h"
#include "cli/cli_req.h"
#include "common/util.h"

#define POLL_WAIT_S     10   /* the long poll's wait */
#define POLL_COUNT      1000 /* events per long-poll answer */
#define CLI_STOPPED     (-1) /* a watched call not made: Ctrl-C came first */
#define TOP_INTERVAL_MS 2000

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t in_request;
/* The terminal `top` reads keys from, and its settings before: restored by
 * keys_end() and by the signal handler (tcsetattr is async-signal-safe). */
static int keys_fd = -1;
static struct termios keys_saved;

static void on_signal(int sig)
{
	(void)sig;
	if (in_request) {
		if (keys_fd >= 0)
			tcsetattr(keys_fd, TCSANOW, &keys_saved);
		_exit(CLI_OK);
	}
	stop_flag = 1;
}

static void watch_signals(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: a sleep ends at once */
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	stop_flag = 0;
}

/* Keys from standard input when it is a terminal: no line buffering, no
 * echo (signals stay on: Ctrl-C is still SIGINT). */
static void keys_begin(void)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &keys_saved) < 0)
		return;
	raw = keys_saved;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_cc[VMIN] = 0;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
		keys_fd = STDIN_FILENO;
}

static void keys_end(void)
{
	if (keys_fd >= 0)
		tcsetattr(keys_fd, TCSANOW, &keys_saved);
	keys_fd = -1;
}

/* Reads what was typed; q quits. */
static void keys_read(void)
{
	char buf[32];
	ssize_t n = read(keys_fd, buf, sizeof(buf));

	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == 'q' || buf[i] == 'Q')
			stop_flag = 1;
	if (n == 0 && !isatty(keys_fd)) /* the terminal went away */
		stop_flag = 1;
}

/* GET path, with Ctrl-C ending the process during the request. */
static int watched_get(struct cli_ctx *c, const char *path, long timeout_ms, json_t **reply)
{
	int rc;

	*reply = NULL;
	fflush(c->out);
	fflush(c->err);
	in_request = 1;
	if (stop_flag) {
		in_request = 0;
		return CLI_STOPPED;
	}
	rc = cli_call(c, "GET", path, NULL, timeout_ms, reply);
	in_request = 0;
	return rc;
}

/* Sleeps ms, or less when Ctrl-C (or q, when keys are read) comes. */
static void nap(int64_t ms)
{
	int64_t end = util_mono_ms() + ms;

	while (!stop_flag) {
		int64_t left = end - util_mono_ms();
		struct pollfd p = {.fd = keys_fd, .events = POLLIN};
		if (left <= 0)
			break;
		/* fd -1: poll only sleeps */
		if (poll(&p, 1, left > 1000 ? 1000 : (int)left) > 0 && keys_fd >= 0)
			keys_read();
	}
}

/* --- top ----------------------------------------------------------------- */

struct top {
	struct cli_ctx *c;
	double interval_s;
	bool tty;
};

/* The three documents of a frame; errors go to c->err. */
static int top_fetch(struct cli_ctx *c, json_t **cl, json_t **hosts, json_t **vms)
{
	int rc = watched_get(c, "/v1/cluster", CLI_DEFAULT_TIMEOUT_MS, cl);

	if (!rc)
		rc = watched_get(c, "/v1/hosts", CLI_DEFAULT_TIMEOUT_MS, hosts);
	if (!rc)
		rc = watched_get(c, "/v1/vms", CLI_DEFAULT_TIMEOUT_MS, vms);
	return rc;
}

static void top_title(struct top *t, FILE *f)
{
	char when[32];

	cli_fmt_time(util_now_ms(), when, sizeof(when));
	fprintf(f, "loadease top  %s  %s  every %gs%s\n", t->c->base, when, t->interval_s,
	        t->tty ? (keys_fd >= 0 ? " (q quits)" : " (Ctrl-C quits)") : "");
}

static void top_body(FILE *f, json_t *cl, json_t *hosts, json_t *vms)
{
	char line[512];

	cli_fmt_cluster_line(cl, line, sizeof(line));
	fprintf(f, "%s\n\n", line);
	if (cli_fmt_hosts(f, hosts, util_now_ms()) < 0)
		fprintf(f, "(unexpected answer to GET /v1/hosts)\n");
	fputc('\n', f);
	if (cli_fmt_vms(f, vms, NULL) < 0)
		fprintf(f, "(unexpected answer to GET /v1/vms)\n");
}

static void top_json(FILE *f, json_t *cl, json_t *hosts, json_t *vms)
{
	json_t *o =
	    json_pack("{s:I,s:O,s:O?,s:O?}", "ts", (json_int_t)util_now_ms(), "cluster", cl,
	              "hosts", json_object_get(hosts, "hosts"), "vms", json_object_get(vms, "vms"));

	if (o) {
		json_dumpf(o, f, JSON_COMPACT);
		fputc('\n', f);
	}
	json_decref(o);
}

/* Writes a frame to out at once (no flicker): on a terminal over the last
 * one, else after a blank line (text) or as the next line (JSON). */
static void top_show(struct top *t, bool first, const char *text, size_t len)
{
	FILE *out = t->c->out;

	if (t->tty && !t->c->json)
		fputs("\033[H\033[2J", out);
	else if (!first && !t->c->json)
		fputc('\n', out);
	fwrite(text, 1, len, out);
	fflush(out);
}

/* One frame. The first frame's errors end `top` with their exit code (on
 * stderr); later ones are shown in the frame (text) or on stderr (JSON),
 * and the next interval tries again. */
static int top_frame(struct top *t, bool first)
{
	struct cli_ctx fc = *t->c;
	json_t *cl = NULL, *hosts = NULL, *vms = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int rc;

	if (!f)
		return CLI_EAPI;
	if (!t->c->json) {
		top_title(t, f);
		if (!first)
			fc.err = f;
	}
	rc = top_fetch(&fc, &cl, &hosts, &vms);
	if (!rc && t->c->json)
		top_json(f, cl, hosts, vms);
	else if (!rc)
		top_body(f, cl, hosts, vms);
	fclose(f);
	if (rc != CLI_STOPPED && (!rc || (!first && !t->c->json)))
		top_show(t, first, text, len);
	free(text);
	json_decref(cl);
	json_decref(hosts);
	json_decref(vms);
	return first && rc != CLI_STOPPED ? rc : CLI_OK;
}

int cli_top(struct cli_ctx *c, const struct cli_args *a)
{
	struct top t = {.c = c, .interval_s = TOP_INTERVAL_MS / 1000.0};
	int64_t count = 0;
	char err[256];
	int rc = CLI_OK;

	if (a->npos)
		return cli_usage(c, "unexpected argument '%.64s'", a->pos[0]);
	if (cli_opt_num(a, "interval", 0.2, 3600, &t.interval_s, err, sizeof(err)) < 0 ||
	    cli_opt_int(a, "count", 1, 1000000000, &count, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	if (cli_opt_flag(a, "once") && count > 1)
		return cli_usage(c, "--once and --count %lld contradict each other",
		                 (long long)count);
	if (cli_opt_flag(a, "once"))
		count = 1;
	t.tty = isatty(fileno(c->out));
	watch_signals();
	if (count != 1)
		keys_begin();
	for (int64_t n = 0; !stop_flag && (count == 0 || n < count); n++) {
		if (n)
			nap((int64_t)(t.interval_s * 1000));
		if (stop_flag)
			break;
		rc = top_frame(&t, n == 0);
		if (rc)
			break;
	}
	keys_end();
	return rc;
}

/* --- events -------------------------------------------------------------- */

/* Prints the events of doc (when show) and keeps the newest id in last. */
static int print_events(struct cli_ctx *c, const json_t *doc, bool show, char *last, size_t cap)
{
	const json_t *evs = json_object_get(doc, "events"), *ev;
	const char *l = json_string_value(json_object_get(doc, "last"));
	char line[2048];
	size_t i;

	if (!json_is_array(evs)) {
		fprintf(c->err, "loadease %s: unexpected answer from the controller (no events)\n",
		        c->verb);
		return CLI_EAPI;
	}
	json_array_foreach(evs, i, ev)
	{
		if (show && c->json) {
			json_dumpf(ev, c->out, JSON_COMPACT);
			fputc('\n', c->out);
		} else if (show) {
			cli_fmt_event(ev, line, sizeof(line));
			fprintf(c->out, "%s\n", line);
		}
	}
	if ((!l || !l[0]) && json_array_size(evs))
		l = json_string_value(json_object_get(json_array_get(evs, i - 1), "id"));
	if (l && l[0])
		snprintf(last, cap, "%s", l);
	fflush(c->out);
	return CLI_OK;
}

static int events_args(struct cli_ctx *c, const struct cli_args *a, struct cli_events_q *q,
                       int64_t *n)
{
	static const char *const ids[] = {"vm", "host"};
	const char *type = cli_opt_str(a, "type");
	char err[256];

	if (a->npos)
		return cli_usage(c, "unexpected argument '%.64s'", a->pos[0]);
	if (cli_opt_int(a, "n", 0, 10000, n, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	if (type && (!type[0] || strspn(type, "abcdefghijklmnopqrstuvwxyz_,") != strlen(type)))
		return cli_usage(c, "--type: '%.64s' is not an event type", type);
	for (int i = 0; i < 2; i++) {
		const char *v = cli_opt_str(a, ids[i]);
		if (v && cli_req_check_id(cli_opt_as(a, ids[i]), v, err, sizeof(err)) < 0)
			return cli_usage(c, "%s", err);
	}
	q->type = type;
	q->vm = cli_opt_str(a, "vm");
	q->host = cli_opt_str(a, "host");
	return CLI_OK;
}

/* No event about --vm V / --host H: an error when the controller does not
 * know it either (a typo), not when it does or did (a deleted VM's events
 * are found). */
static int events_unknown(struct cli_ctx *c, const struct cli_events_q *q)
{
	static const char *const what[] = {"vms", "hosts"};
	const char *id[] = {q->vm, q->host};
	char path[128];

	for (int i = 0; i < 2; i++) {
		json_t *doc;
		if (!id[i])
			continue;
		snprintf(path, sizeof(path), "/v1/%s/%s", what[i], id[i]);
		doc = cli_get_quiet(c, path, CLI_DEFAULT_TIMEOUT_MS);
		json_decref(doc);
		if (!doc && c->status == 404) {
			fprintf(c->err, "loadease %s: no %s %s, and no event names it\n", c->verb,
			        i ? "host" : "vm", id[i]);
			return CLI_EAPI;
		}
	}
	return CLI_OK;
}

/* -f: long polls from last on, until Ctrl-C. */
static int events_follow(struct cli_ctx *c, struct cli_events_q q, char *last, size_t cap)
{
	long timeout =
	    POLL_WAIT_S * 1000L + (c->timeout_ms ? c->timeout_ms : CLI_DEFAULT_TIMEOUT_MS);
	struct cli_ctx pc = *c;
	char path[1024];
	json_t *doc;
	int rc = CLI_OK;

	pc.timeout_ms = timeout; /* the long poll waits longer than --timeout */
	while (!stop_flag) {
		int64_t t0 = util_mono_ms();
		q.after = last[0] ? last : "0-0";
		q.count = POLL_COUNT;
		q.wait = POLL_WAIT_S;
		if (cli_req_events_path(&q, path, sizeof(path)) < 0)
			return cli_usage(c, "the filters are too long");
		rc = watched_get(&pc, path, timeout, &doc);
		if (rc)
			break;
		rc = print_events(c, doc, true, last, cap);
		if (!rc && json_array_size(json_object_get(doc, "events")) == 0 &&
		    util_mono_ms() - t0 < 1000)
			nap(1000); /* an answer that did not wait: do not spin */
		json_decref(doc);
		if (rc)
			break;
	}
	return rc == CLI_STOPPED ? CLI_OK : rc;
}

int cli_events(struct cli_ctx *c, const struct cli_args *a)
{
	struct cli_events_q q = {0};
	char path[1024], last[128] = "";
	bool follow = cli_opt_flag(a, "follow");
	int64_t n = 20;
	json_t *doc;
	int rc;

	rc = events_args(c, a, &q, &n);
	if (rc)
		return rc;
	q.count = n ? (int)n : 1; /* -n 0: only the newest id, to follow from */
	if (cli_req_events_path(&q, path, sizeof(path)) < 0)
		return cli_usage(c, "the filters are too long");
	if (follow)
		watch_signals();
	rc = watched_get(c, path, CLI_DEFAULT_TIMEOUT_MS, &doc);
	if (rc)
		return rc == CLI_STOPPED ? CLI_OK : rc;
	rc = print_events(c, doc, n > 0, last, sizeof(last));
	if (!rc && !follow && json_array_size(json_object_get(doc, "events")) == 0)
		rc = events_unknown(c, &q);
	json_decref(doc);
	if (rc || !follow)
		return rc;
	return events_follow(c, q, last, sizeof(last));
}
