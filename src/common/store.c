#include "common/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define BACKOFF_START_MS 250

struct store *store_new(const struct store_opts *o)
{
	struct store *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->o = *o;
	if (s->o.timeout_ms <= 0)
		s->o.timeout_ms = 1000;
	if (s->o.backoff_max_ms <= 0)
		s->o.backoff_max_ms = 10000;
	s->backoff_ms = BACKOFF_START_MS;
	return s;
}

void store_free(struct store *s)
{
	if (!s)
		return;
	if (s->c)
		redisFree(s->c);
	free(s);
}

bool store_connected(const struct store *s)
{
	return s->c != NULL;
}

static void set_err(struct store *s, int err, const char *msg)
{
	s->err = err;
	snprintf(s->errstr, sizeof(s->errstr), "%s", msg);
}

const char *store_name(const struct store *s)
{
	return s->cur[0] ? s->cur : s->o.address;
}

const char *store_opts_problem(const struct store_opts *o)
{
	char one[256], host[200];
	const char *p = o->sentinels;
	int port, n = 0;

	if (!o->sentinels[0])
		return o->master_name[0] ? "redis.master_name is set but redis.sentinels is empty"
		                         : "";
	if (!o->master_name[0])
		return "redis.sentinels is set: redis.master_name must name the master";
	while (*p) {
		size_t len = strcspn(p, ",");
		if (len == 0 || len >= sizeof(one))
			return "redis.sentinels: an empty or too long entry "
			       "(host:port,host:port,...)";
		snprintf(one, sizeof(one), "%.*s", (int)len, p);
		if (util_split_hostport(one, host, sizeof(host), &port) < 0 || !host[0] ||
		    port <= 0)
			return "redis.sentinels: each entry is host:port";
		n++;
		p += len;
		if (*p == ',')
			p++;
	}
	return n ? "" : "redis.sentinels: no entry";
}

void store_drop(struct store *s, const char *why)
{
	if (!s->c)
		return;
	log_warn("redis %s: connection lost: %s; sampling goes on, samples are buffered",
	         store_name(s), why);
	redisFree(s->c);
	s->c = NULL;
	s->next_try_ms = 0;
	s->backoff_ms = BACKOFF_START_MS;
	/* the next failure to reconnect is a fresh complaint */
	s->down.active = true;
	s->down.interval_ms = 1000;
	s->down.last_ms = util_mono_ms();
}

static int handshake(struct store *s, redisContext *c)
{
	redisReply *r = NULL;
	int rc = 0;

	if (s->o.password[0]) {
		if (s->o.user[0])
			r = redisCommand(c, "AUTH %s %s", s->o.user, s->o.password);
		else
			r = redisCommand(c, "AUTH %s", s->o.password);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			set_err(s, REDIS_ERR_OTHER, r ? r->str : c->errstr);
			rc = -EACCES;
			goto out;
		}
		freeReplyObject(r);
		r = NULL;
	}
	if (s->o.db) {
		r = redisCommand(c, "SELECT %lld", s->o.db);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			set_err(s, REDIS_ERR_OTHER, r ? r->str : c->errstr);
			rc = -EINVAL;
			goto out;
		}
		freeReplyObject(r);
		r = NULL;
	}
	r = redisCommand(c, "PING");
	if (!r || r->type == REDIS_REPLY_ERROR) {
		set_err(s, REDIS_ERR_OTHER, r ? r->str : c->errstr);
		rc = -EIO;
	}
out:
	freeReplyObject(r);
	return rc;
}

/* Connects to addr (host:port or unix:/path) with the timeout on connect
 * and (the handshake too: a server that accepts but never answers, frozen
 * or SIGSTOPped, must not hold the caller) on every command. NULL with err
 * set; *bad_addr when addr cannot be parsed. */
static redisContext *connect_to(struct store *s, const char *addr, bool *bad_addr)
{
	struct timeval tv = {s->o.timeout_ms / 1000, (s->o.timeout_ms % 1000) * 1000};
	redisContext *c;

	*bad_addr = false;
	if (strncmp(addr, "unix:", 5) == 0) {
		c = redisConnectUnixWithTimeout(addr + 5, tv);
	} else {
		char host[200];
		int port;
		if (util_split_hostport(addr, host, sizeof(host), &port) < 0 || !host[0]) {
			set_err(s, REDIS_ERR_OTHER, "address is not host:port or unix:/path");
			*bad_addr = true;
			return NULL;
		}
		c = redisConnectWithTimeout(host, port, tv);
	}
	if (!c || c->err) {
		set_err(s, c ? c->err : REDIS_ERR_OOM, c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	return c;
}

/* Asks the sentinels in turn where the master is: 0 with "ip:port" in out,
 * or -EHOSTUNREACH with the last reason in err. */
static int sentinel_master(struct store *s, char *out, size_t cap, char *via, size_t vcap)
{
	const char *p = s->o.sentinels;
	char why[200] = "no sentinel answered";

	while (*p) {
		size_t len = strcspn(p, ",");
		char one[256];
		bool bad;
		redisContext *c;
		redisReply *r = NULL;

		snprintf(one, sizeof(one), "%.*s", (int)len, p);
		p += len;
		if (*p == ',')
			p++;
		if (!(c = connect_to(s, one, &bad))) {
			snprintf(why, sizeof(why), "sentinel %s: %s", one, s->errstr);
			continue;
		}
		if (s->o.sentinel_password[0]) {
			r = redisCommand(c, "AUTH %s", s->o.sentinel_password);
			if (!r || r->type == REDIS_REPLY_ERROR) {
				snprintf(why, sizeof(why), "sentinel %s: AUTH: %s", one,
				         r ? r->str : c->errstr);
				freeReplyObject(r);
				redisFree(c);
				continue;
			}
			freeReplyObject(r);
		}
		r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", s->o.master_name);
		if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		    r->element[0]->type == REDIS_REPLY_STRING &&
		    r->element[1]->type == REDIS_REPLY_STRING) {
			snprintf(out, cap, "%s%s%s:%s", strchr(r->element[0]->str, ':') ? "[" : "",
			         r->element[0]->str, strchr(r->element[0]->str, ':') ? "]" : "",
			         r->element[1]->str);
			snprintf(via, vcap, "%s", one);
			freeReplyObject(r);
			redisFree(c);
			return 0;
		}
		snprintf(why, sizeof(why), "sentinel %s: %s", one,
		         !r                             ? c->errstr
		         : r->type == REDIS_REPLY_ERROR ? r->str
		         : r->type == REDIS_REPLY_NIL   ? "does not know the master name"
		                                        : "an unexpected reply");
		freeReplyObject(r);
		redisFree(c);
	}
	set_err(s, REDIS_ERR_OTHER, why);
	return -EHOSTUNREACH;
}

/* With Sentinel: is the server we reached the master? */
static int check_master(struct store *s, redisContext *c)
{
	redisReply *r = redisCommand(c, "ROLE");
	int rc = 0;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING) {
		set_err(s, REDIS_ERR_OTHER,
		        r && r->type == REDIS_REPLY_ERROR ? r->str : "ROLE failed");
		rc = -EIO;
	} else if (strcmp(r->element[0]->str, "master") != 0) {
		char m[128];
		snprintf(m, sizeof(m),
		         "the server Sentinel named is a %s, not the master (a failover "
		         "in progress?)",
		         r->element[0]->str);
		set_err(s, REDIS_ERR_OTHER, m);
		rc = -EAGAIN;
	}
	freeReplyObject(r);
	return rc;
}

bool store_ensure(struct store *s, int64_t now_ms)
{
	redisContext *c;
	char addr[256], via[256] = "";
	bool bad;

	if (s->c)
		return true;
	if (now_ms < s->next_try_ms)
		return false;
	snprintf(addr, sizeof(addr), "%s", s->o.address);
	if (s->o.sentinels[0] && sentinel_master(s, addr, sizeof(addr), via, sizeof(via)) < 0) {
		c = NULL;
		goto fail;
	}
	if (!(c = connect_to(s, addr, &bad))) {
		if (bad && !s->o.sentinels[0]) {
			log_complain(&s->down, now_ms, LOG_LVL_ERROR, "redis %s: %s", s->o.address,
			             s->errstr);
			s->next_try_ms = now_ms + s->o.backoff_max_ms;
			return false;
		}
		goto fail;
	}
	if (s->o.sentinels[0]) {
		char name[sizeof(s->cur)];
		snprintf(name, sizeof(name), "%s (master '%s' by sentinel %s)", addr,
		         s->o.master_name, via);
		if (strncmp(s->cur, addr, strlen(addr)) != 0 && s->ever_connected)
			log_warn("redis: Sentinel names a new master for '%s': %s",
			         s->o.master_name, name);
		snprintf(s->cur, sizeof(s->cur), "%s", name);
	}
	if (handshake(s, c) < 0) {
		redisFree(c);
		log_complain(&s->down, now_ms, LOG_LVL_ERROR,
		             "redis %s: connection refused by the server: %s (check redis.user, "
		             "redis.password, redis.db; retrying)",
		             store_name(s), s->errstr);
		goto backoff;
	}
	if (s->o.sentinels[0] && check_master(s, c) < 0) {
		redisFree(c);
		c = NULL;
		goto fail;
	}
	/* no child (a daemonized QEMU) may inherit the connection */
	fcntl(c->fd, F_SETFD, FD_CLOEXEC);
	s->c = c;
	s->err = 0;
	s->errstr[0] = '\0';
	s->backoff_ms = BACKOFF_START_MS;
	s->connects++;
	if (s->down.active || !s->ever_connected)
		log_info("redis %s: connected", store_name(s));
	s->down.active = false;
	s->ever_connected = true;
	return true;
fail:
	if (c)
		redisFree(c);
	log_complain(&s->down, now_ms, LOG_LVL_WARN,
	             "redis %s: unreachable: %s (retrying with backoff up to %lld ms)",
	             s->o.sentinels[0] ? "(through Sentinel)" : s->o.address, s->errstr,
	             s->o.backoff_max_ms);
backoff:
	s->next_try_ms = now_ms + s->backoff_ms;
	s->backoff_ms *= 2;
	if (s->backoff_ms > s->o.backoff_max_ms)
		s->backoff_ms = s->o.backoff_max_ms;
	return false;
}

static redisReply *check_reply(struct store *s, void *r)
{
	redisReply *e = r;

	/* a master demoted in a failover answers writes with READONLY: ask
	 * Sentinel again at the next store_ensure() */
	if (e && e->type == REDIS_REPLY_ERROR && s->o.sentinels[0] && s->c &&
	    strncmp(e->str, "READONLY", 8) == 0) {
		store_drop(
		    s, "the server is a replica now (READONLY): asking Sentinel for the master");
		return r;
	}
	if (!r && s->c) {
		char why[160];
		set_err(s, s->c->err ? s->c->err : REDIS_ERR_IO,
		        s->c->errstr[0] ? s->c->errstr : "I/O error");
		snprintf(why, sizeof(why), "%s", s->errstr);
		store_drop(s, why);
	}
	return r;
}

redisReply *store_command(struct store *s, const char *fmt, ...)
{
	va_list ap;
	void *r;

	if (!s->c) {
		set_err(s, REDIS_ERR_IO, "not connected");
		return NULL;
	}
	va_start(ap, fmt);
	r = redisvCommand(s->c, fmt, ap);
	va_end(ap);
	return check_reply(s, r);
}

redisReply *store_commandv(struct store *s, int argc, const char **argv, const size_t *lens)
{
	if (!s->c) {
		set_err(s, REDIS_ERR_IO, "not connected");
		return NULL;
	}
	return check_reply(s, redisCommandArgv(s->c, argc, argv, lens));
}

int store_append(struct store *s, int argc, const char **argv, const size_t *lens)
{
	if (!s->c)
		return -ENOTCONN;
	if (redisAppendCommandArgv(s->c, argc, argv, lens) != REDIS_OK)
		return -ENOMEM;
	return 0;
}

int store_append_raw(struct store *s, const char *buf, size_t len)
{
	if (!s->c)
		return -ENOTCONN;
	if (redisAppendFormattedCommand(s->c, buf, len) != REDIS_OK)
		return -ENOMEM;
	return 0;
}

int store_flush(struct store *s)
{
	int done = 0;

	if (!s->c)
		return -ENOTCONN;
	while (!done) {
		if (redisBufferWrite(s->c, &done) != REDIS_OK) {
			check_reply(s, NULL);
			return -EIO;
		}
	}
	return 0;
}

redisReply *store_reply(struct store *s)
{
	void *r = NULL;

	if (!s->c) {
		set_err(s, REDIS_ERR_IO, "not connected");
		return NULL;
	}
	if (redisGetReply(s->c, &r) != REDIS_OK)
		r = NULL;
	return check_reply(s, r);
}

void store_args_reset(struct store_args *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->argv[i]);
	a->n = 0;
}

void store_args_release(struct store_args *a)
{
	store_args_reset(a);
	free(a->argv);
	free(a->lens);
	memset(a, 0, sizeof(*a));
}

static int args_push(struct store_args *a, char *s, size_t len)
{
	if (!s)
		return -ENOMEM;
	if (a->n == a->cap) {
		int cap = a->cap ? a->cap * 2 : 32;
		char **nv = realloc(a->argv, sizeof(*nv) * (size_t)cap);
		if (!nv)
			goto fail;
		a->argv = nv;
		size_t *nl = realloc(a->lens, sizeof(*nl) * (size_t)cap);
		if (!nl)
			goto fail;
		a->lens = nl;
		a->cap = cap;
	}
	a->argv[a->n] = s;
	a->lens[a->n] = len;
	a->n++;
	return 0;
fail:
	free(s);
	return -ENOMEM;
}

int store_args_add(struct store_args *a, const char *s)
{
	return args_push(a, strdup(s), strlen(s));
}

int store_args_addf(struct store_args *a, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	return args_push(a, s, (size_t)n);
}

int64_t store_time_reply_ms(const redisReply *r)
{
	int64_t sec, usec;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING ||
	    !util_parse_i64(r->element[0]->str, &sec) ||
	    !util_parse_i64(r->element[1]->str, &usec) || sec < 0 || sec > INT64_MAX / 1000 - 1 ||
	    usec < 0 || usec >= 1000000)
		return -1;
	return sec * 1000 + usec / 1000;
}

int64_t store_time_ms(struct store *s)
{
	redisReply *r = store_command(s, "TIME");
	int64_t ms = store_time_reply_ms(r);

	freeReplyObject(r);
	return ms;
}

const char *store_hget(redisReply *h, const char *field)
{
	for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2)
		if (h->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(h->element[i]->str, field) == 0 &&
		    h->element[i + 1]->type == REDIS_REPLY_STRING)
			return h->element[i + 1]->str;
	return "";
}
