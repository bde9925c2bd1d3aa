/* daemon_check.h - `--check`: what a daemon's start would trip on, one line
 * per check.
 *
 * A daemon lists its checks as a table of struct check (a name and a
 * function); check_run() calls each in order. A check reports through
 * check_ok() / check_fail(), which print "ok   <what>" or "FAIL <what>: <why>"
 * to the context's stream and count the failures, so the exit status is
 * non-zero on any. More checks are more rows (the TLS files, say), and
 * check_config_files() already checks every file a configuration key names,
 * whatever the key is called, by the shape of its name (see the .c).
 */
#ifndef LE_COMMON_DAEMON_CHECK_H
#define LE_COMMON_DAEMON_CHECK_H

#include <stdbool.h>
#include <stdio.h>

#include "common/config.h"
#include "common/store.h"

struct check_ctx {
	FILE *out;
	int failed, passed;
	const struct cfg_key *keys; /* the daemon's table, for check_config_files() */
	const void *opts;           /* its loaded options */
	void *user;                 /* the daemon's own state (struct agent, struct ctl) */
};

struct check {
	const char *name; /* for the reader of the table; the lines say their own what */
	void (*fn)(struct check_ctx *ctx);
};

void check_ok(struct check_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void check_fail(struct check_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs every check of the table (ended by a row with fn NULL); the number of
 * failures. */
int check_run(struct check_ctx *ctx, const struct check *table);

/* Redis at o->address answers PING after AUTH / SELECT with o's credentials. */
void check_redis(struct check_ctx *ctx, const struct store_opts *o);

/* A directory that must exist (and be readable, and writable when write). */
void check_dir(struct check_ctx *ctx, const char *what, const char *path, bool write);

/* A file the daemon will append to: its directory exists and is writable,
 * the file (if there) writable. */
void check_writable_file(struct check_ctx *ctx, const char *what, const char *path);

/* A secret (token, password, private key): readable, not empty, and no
 * access for others nor write for the group (mode 0600, 0640, 0400 or 0440). */
void check_secret_file(struct check_ctx *ctx, const char *what, const char *path);

/* Every CFG_STR key of ctx->keys with a value that names a file, by its name:
 *   *token_file, *password_file, *secret_file, *key_file, *_key  secrets
 *   *_file, *cert*, *_ca, *ca_file                                readable files
 *   log_file, *_log                                               appended to
 * (keys ending in _dir and _root are the daemons' own checks). */
void check_config_files(struct check_ctx *ctx);

#endif
