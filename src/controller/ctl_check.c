/* ctl_check.c - the controller's `--check` (what a start would trip on) and
 * its SIGHUP reload (docs/controller.md, "Running it"). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/daemon_check.h"
#include "common/log.h"
#include "controller/ctl.h"

static void check_redis_conn(struct check_ctx *x)
{
	struct ctl *c = x->user;

	check_redis(x, &c->o.redis);
}

static void check_web_root(struct check_ctx *x)
{
	struct ctl *c = x->user;
	char index[600];

	if (!c->o.web_root[0]) {
		check_ok(x, "controller.web_root: not set (no dashboard)");
		return;
	}
	snprintf(index, sizeof(index), "%s/index.html", c->o.web_root);
	if (access(index, R_OK) < 0)
		check_fail(x, "controller.web_root %s: %s: %s (the dashboard's files)",
		           c->o.web_root, index, strerror(errno));
	else
		check_ok(x, "controller.web_root %s: the dashboard's files", c->o.web_root);
}

/* The checks, in order; the TLS files and the like are more rows (or come
 * through check_config_files() by their key names). */
static const struct check ctl_checks[] = {
    {"redis", check_redis_conn},
    {"web_root", check_web_root},
    {"files", check_config_files},
    {NULL, NULL},
};

int ctl_check(struct ctl *c)
{
	struct check_ctx x = {.out = stdout, .keys = ctl_cfg_keys, .opts = &c->o, .user = c};

	check_ok(&x, "configuration %s: controller %s, mode %s, round %lld ms",
	         c->cfg_path ? c->cfg_path : "(defaults)", c->o.id, ctl_mode_names[c->o.mode],
	         c->o.round_ms);
	check_run(&x, ctl_checks);
	printf("%s: %d check(s) passed, %d failed\n", x.failed ? "FAIL" : "ok", x.passed, x.failed);
	return x.failed;
}

/* What SIGHUP may change while the controller runs; the rest (its id and
 * addresses, Redis, the lease, the window, the dashboard) needs a restart. */
static const char *const runtime_keys[] = {
    "controller.mode",
    "controller.token",
    "controller.token_file",
    "controller.read_token",
    "controller.read_token_file",
    "controller.open_reads",
    "controller.round_ms",
    "controller.down_after_ms",
    "controller.measure_after_ms",
    "controller.migrate_timeout_ms",
    "controller.decision_log",
    "controller.log_file",
    "controller.events_maxlen",
    "controller.log_level",
    "profile.*",
    "balance.*",
    NULL,
};

void ctl_reload(struct ctl *c)
{
	struct ctl_opts *raw = calloc(1, sizeof(*raw)), *now = calloc(1, sizeof(*now));
	struct ctl_opts *next = calloc(1, sizeof(*next));
	struct round_opts ro;
	struct plan_opts po;
	char err[600], changed[1024];
	int n, n_err;

	if (!raw || !now || !next) {
		log_error("reload (SIGHUP): out of memory; the running configuration stays");
		goto out;
	}
	if (cfg_load(ctl_cfg_keys, raw, c->cfg_path, c->sets, c->nsets, err, sizeof(err)) < 0) {
		log_error("reload (SIGHUP): %s; the running configuration stays", err);
		goto out;
	}
	*now = *raw;
	if (ctl_resolve(now, &ro, &po, err, sizeof(err)) < 0) {
		log_error("reload (SIGHUP): %s; the running configuration stays", err);
		goto out;
	}
	pthread_mutex_lock(&c->lock);
	*next = c->o;
	pthread_mutex_unlock(&c->lock);
	n = cfg_apply_changes(ctl_cfg_keys, runtime_keys, c->raw, raw, next, now, changed,
	                      sizeof(changed));
	/* the files' contents may have changed under the same paths */
	memcpy(next->token, now->token, sizeof(next->token));
	memcpy(next->read_token, now->read_token, sizeof(next->read_token));
	if (ctl_resolve(next, &ro, &po, err, sizeof(err)) < 0) {
		/* only when a restart-only key was left as it runs (profile.n
		 * against the running window, say) */
		log_error("reload (SIGHUP): %s (with the keys that need a restart as they run); "
		          "the running configuration stays",
		          err);
		goto out;
	}
	if (strcmp(next->decision_log, c->o.decision_log) != 0 || next->decision_log[0]) {
		int rc = ctl_events_reopen(c, next->decision_log);
		if (rc < 0) {
			log_error("reload (SIGHUP): decision_log %s: %s; it stays %s",
			          next->decision_log, strerror(-rc), c->o.decision_log);
			snprintf(next->decision_log, sizeof(next->decision_log), "%s",
			         c->o.decision_log);
		}
	}
	n_err = log_to_file(next->log_file);
	if (n_err < 0)
		log_error("reload (SIGHUP): log_file %s: %s", next->log_file, strerror(-n_err));
	pthread_mutex_lock(&c->lock);
	c->o = *next;
	c->ro = ro;
	c->po = po;
	/* the file's mode: in force unless one was set at run time (ctl_runtime.c) */
	c->rt.cfg_mode = now->mode;
	pthread_mutex_unlock(&c->lock);
	log_set_level((enum log_level)next->log_level);
	log_info("reload (SIGHUP): configuration read again; %d key(s) changed%s%s", n,
	         n ? ": " : "", changed);
out:
	free(raw);
	free(now);
	free(next);
}
