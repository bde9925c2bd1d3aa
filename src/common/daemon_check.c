/* daemon_check.c - `--check` lines and the checks both daemons share; see
 * daemon_check.h. */
#include "common/daemon_check.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"

static void line(struct check_ctx *ctx, bool ok, const char *fmt, va_list ap)
{
	fputs(ok ? "ok   " : "FAIL ", ctx->out);
	vfprintf(ctx->out, fmt, ap);
	fputc('\n', ctx->out);
	fflush(ctx->out);
	if (ok)
		ctx->passed++;
	else
		ctx->failed++;
}

void check_ok(struct check_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line(ctx, true, fmt, ap);
	va_end(ap);
}

void check_fail(struct check_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line(ctx, false, fmt, ap);
	va_end(ap);
}

int check_run(struct check_ctx *ctx, const struct check *table)
{
	for (const struct check *c = table; c->fn; c++)
		c->fn(ctx);
	return ctx->failed;
}

void check_redis(struct check_ctx *ctx, const struct store_opts *o)
{
	struct store *s = store_new(o);
	enum log_level lvl = log_get_level();
	redisReply *r;

	if (!s) {
		check_fail(ctx, "redis %s: out of memory", o->address);
		return;
	}
	log_set_level(LOG_LVL_NONE); /* the line below says it */
	if (!store_ensure(s, util_mono_ms())) {
		log_set_level(lvl);
		if (s->err == REDIS_ERR_OTHER && strstr(s->errstr, "host:port") == NULL)
			check_fail(ctx,
			           "redis %s: the server refused the credentials: %s (check "
			           "redis.user, redis.password / password_file, redis.db)",
			           o->address, s->errstr);
		else
			check_fail(ctx, "redis %s: unreachable: %s", o->address, s->errstr);
		store_free(s);
		return;
	}
	log_set_level(lvl);
	r = store_command(s, "INFO server");
	if (r && r->type == REDIS_REPLY_STRING && strstr(r->str, "redis_version:")) {
		const char *v = strstr(r->str, "redis_version:") + 14;
		check_ok(ctx, "redis %s: reachable, authenticated, Redis %.*s", o->address,
		         (int)strcspn(v, "\r\n"), v);
	} else {
		check_ok(ctx, "redis %s: reachable, authenticated", o->address);
	}
	freeReplyObject(r);
	store_free(s);
}

void check_dir(struct check_ctx *ctx, const char *what, const char *path, bool write)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		check_fail(ctx, "%s %s: %s", what, path, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		check_fail(ctx, "%s %s: not a directory", what, path);
		return;
	}
	if (access(path, R_OK | X_OK | (write ? W_OK : 0)) < 0) {
		check_fail(ctx, "%s %s: %s (need %s)", what, path, strerror(errno),
		           write ? "read, write and search" : "read and search");
		return;
	}
	check_ok(ctx, "%s %s: a %s directory", what, path, write ? "writable" : "readable");
}

void check_writable_file(struct check_ctx *ctx, const char *what, const char *path)
{
	char dir[1024];
	const char *slash = strrchr(path, '/');

	if (access(path, F_OK) == 0) {
		if (access(path, W_OK) < 0)
			check_fail(ctx, "%s %s: %s", what, path, strerror(errno));
		else
			check_ok(ctx, "%s %s: writable", what, path);
		return;
	}
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	if (!dir[0])
		snprintf(dir, sizeof(dir), "/");
	if (access(dir, W_OK | X_OK) < 0)
		check_fail(ctx, "%s %s: cannot be created in %s: %s", what, path, dir,
		           strerror(errno));
	else
		check_ok(ctx, "%s %s: will be created", what, path);
}

void check_secret_file(struct check_ctx *ctx, const char *what, const char *path)
{
	struct stat st;
	FILE *f;
	int c;

	if (stat(path, &st) < 0) {
		check_fail(ctx, "%s %s: %s", what, path, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		check_fail(ctx, "%s %s: not a regular file", what, path);
		return;
	}
	if (st.st_mode & (S_IRWXO | S_IWGRP | S_IXGRP)) {
		check_fail(ctx,
		           "%s %s: mode %04o lets others read or the group write it (use 0600 or "
		           "0640: chmod 600 %s)",
		           what, path, (unsigned)(st.st_mode & 07777), path);
		return;
	}
	f = fopen(path, "r");
	if (!f) {
		check_fail(ctx, "%s %s: %s", what, path, strerror(errno));
		return;
	}
	c = fgetc(f);
	fclose(f);
	if (c == EOF || c == '\n' || c == '\r') {
		check_fail(ctx, "%s %s: empty (the secret is its first line)", what, path);
		return;
	}
	check_ok(ctx, "%s %s: mode %04o", what, path, (unsigned)(st.st_mode & 07777));
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && strcmp(s + n - t, tail) == 0;
}

static void check_readable_file(struct check_ctx *ctx, const char *what, const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		check_fail(ctx, "%s %s: %s", what, path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		check_fail(ctx, "%s %s: not a regular file", what, path);
	else if (access(path, R_OK) < 0)
		check_fail(ctx, "%s %s: %s", what, path, strerror(errno));
	else
		check_ok(ctx, "%s %s: readable", what, path);
}

/* Is tls.mode off in the loaded options (its files are then not used)? */
static bool tls_off(const struct check_ctx *ctx)
{
	for (const struct cfg_key *k = ctx->keys; k && k->name; k++)
		if (!strcmp(k->section, "tls") && !strcmp(k->name, "mode"))
			return *(const int *)(const void *)((const char *)ctx->opts + k->offset) ==
			       TLS_OFF;
	return true;
}

void check_config_files(struct check_ctx *ctx)
{
	bool no_tls = tls_off(ctx);

	for (const struct cfg_key *k = ctx->keys; k && k->name; k++) {
		const char *v = (const char *)ctx->opts + k->offset;
		char what[160];
		const char *n = k->name;
		bool tls = !strcmp(k->section, "tls");

		if (k->type != CFG_STR || !v[0] || (tls && no_tls))
			continue;
		snprintf(what, sizeof(what), "%s.%s", k->section, n);
		if (tls && !strcmp(n, "key"))
			check_secret_file(ctx, what, v);
		else if (tls && (!strcmp(n, "ca") || !strcmp(n, "cert")))
			check_readable_file(ctx, what, v);
		else if (strcmp(n, "log_file") == 0 || ends_with(n, "_log"))
			check_writable_file(ctx, what, v);
		else if (ends_with(n, "token_file") || ends_with(n, "password_file") ||
		         ends_with(n, "secret_file") || ends_with(n, "key_file") ||
		         ends_with(n, "_key"))
			check_secret_file(ctx, what, v);
		else if (ends_with(n, "_file") || strstr(n, "cert") || ends_with(n, "_ca"))
			check_readable_file(ctx, what, v);
	}
}
