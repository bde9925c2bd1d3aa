/* cli_act.c - the verbs that change things: vm create, vm migrate, vm
 * resize, vm rm, host maintenance.
 *
 * `vm migrate` and `vm rm` wait until the controller shows the change (where
 * the VM runs after the migration, the VM gone), so that `vms` right after
 * them shows the new state. The migration's request is synchronous on the
 * controller; it runs on a thread of its own here while this one follows
 * GET /v1/vms/<id> for the progress. --no-wait returns once the controller
 * took the request. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "cli/cli_req.h"
#include "cli/cli_table.h"
#include "common/util.h"

#define POLL_MS            500    /* between two looks at the VM */
#define POLL_TIMEOUT_MS    3000   /* one look */
#define VIEW_WAIT_MS       15000  /* the controller's view follows within a round or two */
#define CREATE_TIMEOUT_MS  120000 /* defaults of --timeout */
#define MIGRATE_TIMEOUT_MS 900000
#define RM_TIMEOUT_MS      60000
#define RESIZE_TIMEOUT_MS  90000 /* the agent waits up to 15 s for the balloon */

static const char *jstr(const json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : dflt;
}

static double jnum(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static long verb_timeout(const struct cli_ctx *c, long dflt)
{
	return c->timeout_ms ? c->timeout_ms : dflt;
}

/* Sends body (consumed); 0 with *reply, or the exit code. */
static int send_body(struct cli_ctx *c, const char *method, const char *path, json_t *body,
                     long timeout_ms, json_t **reply)
{
	int rc = cli_call(c, method, path, body, timeout_ms, reply);

	json_decref(body);
	return rc;
}

/* Prints reply (--json) or the line; frees reply. */
__attribute__((format(printf, 3, 4))) static int answer(struct cli_ctx *c, json_t *reply,
                                                        const char *fmt, ...)
{
	va_list ap;

	if (c->json) {
		cli_print_json(c, reply);
	} else {
		va_start(ap, fmt);
		vfprintf(c->out, fmt, ap);
		va_end(ap);
	}
	json_decref(reply);
	return CLI_OK;
}

/* --- vm create ----------------------------------------------------------- */

int cli_vm_create(struct cli_ctx *c, const struct cli_args *a)
{
	json_t *body, *reply;
	char err[256];
	int rc;

	if (cli_req_vm_create(a, &body, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	rc = send_body(c, "POST", "/v1/vms", body, CREATE_TIMEOUT_MS, &reply);
	if (rc)
		return rc;
	return answer(c, reply, "%s created on %s: %s\n", a->pos[0], jstr(reply, "host", "?"),
	              jstr(reply, "reason", "-"));
}

/* --- following a VM ------------------------------------------------------ */

/* The controller's view of VM vm: the document, or NULL with c->status
 * 404 when it lists no such VM (another status: it did not answer). */
static json_t *vm_view(struct cli_ctx *c, const char *vm)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/vms/%s", vm);
	return cli_get_quiet(c, path, POLL_TIMEOUT_MS);
}

/* Polls until the controller shows vm on host `on` with no migration
 * (on == NULL: until it lists the VM no more) or deadline passes. True
 * when it does; *last (caller frees) is the last view, NULL when gone. */
static bool wait_view(struct cli_ctx *c, const char *vm, const char *on, int64_t deadline,
                      json_t **last)
{
	for (;;) {
		json_t *v = vm_view(c, vm);
		bool ok;
		if (on)
			ok = v && !json_is_true(json_object_get(v, "migrating")) &&
			     strcmp(jstr(v, "host", ""), on) == 0;
		else
			ok = !v && c->status == 404;
		if (ok || util_mono_ms() >= deadline) {
			*last = v;
			return ok;
		}
		json_decref(v);
		nap_ms(POLL_MS);
	}
}

/* The migration's progress: on a terminal one line redrawn in place, else
 * a plain line each time the phase changes. */
struct progress {
	bool tty, drawn;
	char phase[32];
};

static void progress_show(struct cli_ctx *c, struct progress *p, const char *vm, const json_t *v,
                          int64_t t0)
{
	const json_t *m = json_object_get(v, "migration");
	char src[80], dst[80], phase[32];
	double done = jnum(m, "data_processed"), total = jnum(m, "data_total");

	if (!json_is_object(m))
		return;
	cli_table_clean(src, sizeof(src), jstr(m, "src", "?"));
	cli_table_clean(dst, sizeof(dst), jstr(m, "dst", "?"));
	cli_table_clean(phase, sizeof(phase), jstr(m, "phase", "?"));
	if (p->tty) {
		fprintf(c->out, "\r\033[K%s %s -> %s: %s", vm, src, dst, phase);
		if (total > 0)
			fprintf(c->out, " %.0f%% (%.1f of %.1f MiB)", 100 * done / total,
			        done / 1048576.0, total / 1048576.0);
		fprintf(c->out, " %.0fs", (double)(util_mono_ms() - t0) / 1000.0);
		p->drawn = true;
	} else if (strcmp(phase, p->phase) != 0) {
		fprintf(c->out, "%s %s -> %s: %s\n", vm, src, dst, phase);
	}
	snprintf(p->phase, sizeof(p->phase), "%s", phase);
	fflush(c->out);
}

static void progress_end(struct cli_ctx *c, struct progress *p)
{
	if (p->drawn)
		fputs("\r\033[K", c->out);
	p->drawn = false;
	fflush(c->out);
}

/* --- vm migrate ---------------------------------------------------------- */

/* The synchronous POST .../migrate, on a thread of its own. */
struct call {
	struct cli_ctx c; /* a copy whose messages go to errbuf */
	char path[128];
	json_t *body, *reply;
	long timeout_ms;
	int rc;
	char *errbuf;
	size_t errlen;
	bool done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void *call_main(void *arg)
{
	struct call *k = arg;
	FILE *f = open_memstream(&k->errbuf, &k->errlen);
	json_t *reply = NULL;
	int rc;

	if (f)
		k->c.err = f;
	rc = cli_call(&k->c, "POST", k->path, k->body, k->timeout_ms, &reply);
	if (f)
		fclose(f);
	pthread_mutex_lock(&k->lock);
	k->rc = rc;
	k->reply = reply;
	k->done = true;
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

/* Waits up to ms for the call to end; true when it has. */
static bool call_wait(struct call *k, int ms)
{
	struct timespec ts;
	bool done;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&k->lock);
	while (!k->done)
		if (pthread_cond_timedwait(&k->cond, &k->lock, &ts) == ETIMEDOUT)
			break;
	done = k->done;
	pthread_mutex_unlock(&k->lock);
	return done;
}

/* Runs the call, showing the progress meanwhile (not with --json). */
static void migrate_follow(struct cli_ctx *c, struct call *k, const char *vm)
{
	struct progress p = {.tty = isatty(fileno(c->out)) == 1};
	int64_t t0 = util_mono_ms();
	pthread_t t;

	if (pthread_create(&t, NULL, call_main, k) != 0) {
		call_main(k); /* no thread: no progress, the same answer */
		return;
	}
	while (!call_wait(k, POLL_MS)) {
		json_t *v = c->json ? NULL : vm_view(c, vm);
		if (v)
			progress_show(c, &p, vm, v, t0);
		json_decref(v);
	}
	pthread_join(t, NULL);
	progress_end(c, &p);
}

static void print_migrated(struct cli_ctx *c, const char *vm, const json_t *r)
{
	fprintf(c->out,
	        "%s migrated %s -> %s: done, total %.0f ms, downtime %.0f ms, %.1f MiB sent", vm,
	        jstr(r, "from", "?"), jstr(r, "to", "?"), jnum(r, "total_ms"),
	        jnum(r, "downtime_ms"), jnum(r, "bytes") / 1048576.0);
	if (json_string_length(json_object_get(r, "reason")))
		fprintf(c->out, " (%s)", jstr(r, "reason", ""));
	fputc('\n', c->out);
}

/* A migration that ran and failed: where is the VM now? */
static void report_failed(struct cli_ctx *c, const char *vm, const char *from, int64_t deadline)
{
	json_t *v = NULL;
	char where[80];

	wait_view(c, vm, from, deadline, &v);
	cli_table_clean(where, sizeof(where), jstr(v, "host", "?"));
	if (v && strcmp(where, from) == 0)
		fprintf(c->err, "loadease %s: failed; rolled back: %s keeps running on %s\n",
		        c->verb, vm, from);
	else if (!v && c->status == 404)
		fprintf(c->err, "loadease %s: failed, and the controller no longer lists %s\n",
		        c->verb, vm);
	else if (v)
		fprintf(c->err, "loadease %s: failed; the controller shows %s on %s%s\n", c->verb,
		        vm, where,
		        json_is_true(json_object_get(v, "migrating")) ? ", still migrating" : "");
	else
		fprintf(c->err, "loadease %s: failed; where %s runs now is unknown\n", c->verb, vm);
	json_decref(v);
}

/* The migration ended well: wait for the controller to show it there. */
static int report_done(struct cli_ctx *c, const char *vm, json_t *reply)
{
	char to[80];
	json_t *v = NULL;
	bool shown;

	cli_table_clean(to, sizeof(to), jstr(reply, "to", ""));
	shown = wait_view(c, vm, to, util_mono_ms() + VIEW_WAIT_MS, &v);
	json_decref(v);
	if (c->json)
		cli_print_json(c, reply);
	else
		print_migrated(c, vm, reply);
	if (shown)
		return CLI_OK;
	fprintf(c->err,
	        "loadease %s: %s runs on %s, but the controller does not show it there after "
	        "%d s\n",
	        c->verb, vm, to, VIEW_WAIT_MS / 1000);
	return CLI_EWAIT;
}

static int migrate_no_wait(struct cli_ctx *c, const char *vm, const char *path, json_t *body)
{
	json_t *reply;
	int rc;

	json_object_set_new(body, "wait", json_false());
	rc = send_body(c, "POST", path, body, CLI_DEFAULT_TIMEOUT_MS, &reply);
	if (rc)
		return rc;
	return answer(c, reply,
	              "%s: migration %s -> %s started; 'loadease vm %s' shows where it is\n", vm,
	              jstr(reply, "from", "?"), jstr(reply, "to", "?"), vm);
}

int cli_vm_migrate(struct cli_ctx *c, const struct cli_args *a)
{
	struct call k = {
	    .c = *c, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	long timeout = verb_timeout(c, MIGRATE_TIMEOUT_MS);
	char err[256], from[80] = "";
	const char *vm;
	json_t *before;
	int rc;

	if (cli_req_vm_migrate(a, &k.body, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	vm = a->pos[0];
	snprintf(k.path, sizeof(k.path), "/v1/vms/%s/migrate", vm);
	if (cli_opt_flag(a, "no-wait"))
		return migrate_no_wait(c, vm, k.path, k.body);
	before = vm_view(c, vm);
	cli_table_clean(from, sizeof(from), jstr(before, "host", ""));
	json_decref(before);
	k.c.timeout_ms = 0;
	k.timeout_ms = timeout;
	migrate_follow(c, &k, vm);
	json_decref(k.body);
	c->status = k.c.status;
	snprintf(c->code, sizeof(c->code), "%s", k.c.code);
	if (k.rc == CLI_OK) {
		rc = report_done(c, vm, k.reply);
	} else if (c->status == -ETIMEDOUT) {
		fprintf(c->err,
		        "loadease %s: gave up waiting after %g s; the migration may still run: "
		        "'loadease vm %s' shows where it is\n",
		        c->verb, (double)timeout / 1000, vm);
		rc = CLI_EWAIT;
	} else {
		if (k.errbuf)
			fputs(k.errbuf, c->err);
		if (strcmp(c->code, "migration_failed") == 0 && from[0])
			report_failed(c, vm, from, util_mono_ms() + VIEW_WAIT_MS);
		rc = k.rc;
	}
	free(k.errbuf);
	json_decref(k.reply);
	return rc;
}

/* --- vm resize ------------------------------------------------------------- */

int cli_vm_resize(struct cli_ctx *c, const struct cli_args *a)
{
	char err[256], path[128], note[160] = "";
	json_t *body, *reply;
	int rc;

	if (cli_req_vm_resize(a, &body, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	snprintf(path, sizeof(path), "/v1/vms/%s/resize", a->pos[0]);
	rc = send_body(c, "POST", path, body, verb_timeout(c, RESIZE_TIMEOUT_MS), &reply);
	if (rc)
		return rc;
	/* what the guest got, as libvirt has it after, not what was asked */
	if (!json_is_true(json_object_get(reply, "mem_settled")))
		snprintf(note, sizeof(note), "; the balloon stopped at %.0f of the %.0f MiB asked",
		         jnum(reply, "mem_mib"), jnum(json_object_get(reply, "asked"), "mem_mib"));
	return answer(c, reply, "%s resized on %s: %.0f -> %.0f vCPU, %.0f -> %.0f MiB%s\n",
	              a->pos[0], jstr(reply, "host", "?"), jnum(reply, "vcpus_before"),
	              jnum(reply, "vcpus"), jnum(reply, "mem_mib_before"), jnum(reply, "mem_mib"),
	              note);
}

/* --- vm rm ----------------------------------------------------------------- */

int cli_vm_rm(struct cli_ctx *c, const struct cli_args *a)
{
	long timeout = verb_timeout(c, RM_TIMEOUT_MS);
	int64_t deadline = util_mono_ms() + timeout;
	char err[256], path[128];
	json_t *reply, *v = NULL;
	bool gone = true;
	int rc;

	if (a->npos == 0)
		return cli_usage(c, "the VM id is missing");
	if (a->npos > 1)
		return cli_usage(c, "unexpected argument '%.64s'", a->pos[1]);
	if (cli_req_check_id("VM", a->pos[0], err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	snprintf(path, sizeof(path), "/v1/vms/%s", a->pos[0]);
	rc = cli_call(c, "DELETE", path, NULL, timeout, &reply);
	if (rc)
		return rc;
	if (!cli_opt_flag(a, "no-wait"))
		gone = wait_view(c, a->pos[0], NULL, deadline, &v);
	json_decref(v);
	if (c->json)
		cli_print_json(c, reply);
	else
		fprintf(c->out, "%s deleted (it ran on %s)\n", a->pos[0], jstr(reply, "host", "?"));
	json_decref(reply);
	if (gone)
		return CLI_OK;
	fprintf(c->err,
	        "loadease %s: its host deleted it, but the controller still lists %s after %g "
	        "s\n",
	        c->verb, a->pos[0], (double)timeout / 1000);
	return CLI_EWAIT;
}

/* --- host maintenance ------------------------------------------------------ */

int cli_maintenance(struct cli_ctx *c, const struct cli_args *a)
{
	char err[256], path[128];
	json_t *body, *reply;
	int rc;

	if (cli_req_maintenance(a, &body, err, sizeof(err)) < 0)
		return cli_usage(c, "%s", err);
	snprintf(path, sizeof(path), "/v1/hosts/%s/maintenance", a->pos[1]);
	rc = send_body(c, "PUT", path, body, CLI_DEFAULT_TIMEOUT_MS, &reply);
	if (rc)
		return rc;
	return answer(c, reply, "%s: state %s\n", jstr(reply, "host", a->pos[1]),
	              jstr(reply, "state", "?"));
}
