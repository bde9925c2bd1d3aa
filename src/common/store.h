/* store.h - the Redis connection (hiredis), with reconnect and backoff.
 *
 * Address forms: "host:port" or "unix:/path/to/redis.sock". Optional ACL user
 * and password (AUTH), database number, and a timeout on connect and on every
 * command. A transport error drops the connection; store_ensure() reconnects
 * later with exponential backoff (250 ms doubling to backoff_max_ms). State
 * changes are logged once (up, down, back up), not on every attempt.
 *
 * With Sentinel (sentinels = "host:port,host:port,...", master_name), the
 * address is asked of the sentinels in turn (SENTINEL
 * get-master-addr-by-name) at every connection, and the server's ROLE is
 * checked before it is used: a replica is never written to. A READONLY
 * error reply (the master became a replica in a failover) drops the
 * connection, so the next store_ensure() asks the sentinels again; the
 * error reply still reaches the caller, which keeps what it did not get
 * confirmed.
 *
 * Like hiredis, the context keeps err (0 or a REDIS_ERR_* code) and errstr.
 * Not thread-safe: one thread uses one store.
 */
#ifndef LE_COMMON_STORE_H
#define LE_COMMON_STORE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

struct store_opts {
	char address[256];
	char user[64];
	char password[256];
	long long db;
	long long timeout_ms;
	long long backoff_max_ms;
	char sentinels[512];         /* "host:port,..."; empty = address is the server */
	char master_name[64];        /* the master's name in Sentinel */
	char sentinel_password[256]; /* AUTH to the sentinels; empty = none */
};

struct store {
	redisContext *c;
	struct store_opts o;
	char cur[256]; /* the server's address in use (Sentinel's answer), for logs */
	int err;
	char errstr[128];
	int64_t next_try_ms;
	int64_t backoff_ms;
	struct log_complaint down;
	bool ever_connected;
	uint64_t connects; /* successful connections so far */
};

/* The address of the server: with Sentinel the master's last answer
 * ("lem (sentinel) 10.0.0.1:6379"), else redis.address. */
const char *store_name(const struct store *s);

/* Checks the Sentinel options: "" when fine (also when none are set), else
 * what is wrong, for the daemons' start-up errors. */
const char *store_opts_problem(const struct store_opts *o);

/* Caller frees with store_free(). Does not connect yet. */
struct store *store_new(const struct store_opts *o);
void store_free(struct store *s);

/* Connects if not connected and the backoff allows (now_ms: monotonic).
 * True when connected. */
bool store_ensure(struct store *s, int64_t now_ms);
bool store_connected(const struct store *s);
/* Drops the connection (after a protocol surprise); the next store_ensure()
 * reconnects at once. */
void store_drop(struct store *s, const char *why);

/* One command. NULL on a transport error (connection dropped, err set); a
 * Redis error reply comes back as a REDIS_REPLY_ERROR reply. Caller frees
 * with freeReplyObject(). */
redisReply *store_command(struct store *s, const char *fmt, ...);
redisReply *store_commandv(struct store *s, int argc, const char **argv, const size_t *lens);

/* Pipelining: append N commands, then read N replies in order. Append
 * fails only when not connected or out of memory (-ENOTCONN, -ENOMEM). */
int store_append(struct store *s, int argc, const char **argv, const size_t *lens);
redisReply *store_reply(struct store *s);
/* Appends commands already in the protocol (see resp.h). */
int store_append_raw(struct store *s, const char *buf, size_t len);
/* Writes what was appended, without waiting for a reply. -EIO (and the
 * connection dropped) when the write fails. */
int store_flush(struct store *s);

/* A growable argv for commands with many fields. */
struct store_args {
	int n, cap;
	char **argv;
	size_t *lens;
};
void store_args_reset(struct store_args *a);
void store_args_release(struct store_args *a);
int store_args_add(struct store_args *a, const char *s);
int store_args_addf(struct store_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The value of `field` in an HGETALL reply (a flat array of field, value);
 * "" when absent or h is not such a reply. */
const char *store_hget(redisReply *h, const char *field);

/* Redis's clock (TIME) in ms since the epoch: the one clock every agent and
 * controller agree on. -1 on a transport error or a garbled reply. */
int64_t store_time_ms(struct store *s);
/* The same from a TIME reply (an array of two integer strings); -1 when it
 * is not one. Does not free r. */
int64_t store_time_reply_ms(const redisReply *r);

/* A Lua expression for Redis's TIME in ms, as a string (scripts that stamp
 * a time use it so the stamp is Redis's, not the caller's). */
#define STORE_LUA_NOW_MS                                                                           \
	"(function() local t = redis.call('TIME') "                                                \
	"return t[1] .. string.format('%03d', math.floor(t[2] / 1000)) end)()"

#endif
