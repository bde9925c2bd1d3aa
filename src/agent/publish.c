/* publish.c - everything the agent says to and reads from Redis: its
 * registration, the VMs the registry lists for it, the ts:* streams (through
 * a bounded backlog that survives Redis outages) and the profile:* hashes. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent/agent.h"
#include "common/log.h"
#include "common/util.h"

/* Registration touches five keys: one Lua script, so a reader never sees half
 * of it. A host an operator put into maintenance stays there. vm_enabled 0
 * marks a host that only monitors (never a migration source or target);
 * libvirt_uri is where other hosts' libvirt reaches this one's. last_seen is
 * Redis's clock, never the agent's: liveness is judged against it. Returns
 * the state and the last id of the host's stream: an agent restarted with a
 * clock behind it numbers its samples after it, not under it (they would be
 * refused as already stored). */
static const char register_lua[] =
    "redis.call('SADD', 'host_ids', ARGV[1])\n"
    "redis.call('HSET', 'host_id_to_ip', ARGV[1], ARGV[2])\n"
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if st ~= 'maintenance' then st = 'up' end\n"
    "redis.call('HSET', KEYS[1], 'mem', ARGV[3], 'cpu', ARGV[4], 'net', ARGV[5],\n"
    "  'name', ARGV[1], 'state', st, 'last_seen', " STORE_LUA_NOW_MS ", 'ip', ARGV[2],\n"
    "  'vm_enabled', ARGV[7], 'libvirt_uri', ARGV[8])\n"
    "redis.call('SET', KEYS[2], ARGV[6])\n"
    "redis.call('SET', KEYS[3], ARGV[6])\n"
    "local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)\n"
    "return {st, last[1] and last[1][1] or ''}\n";

/* The heartbeat: last_seen on Redis's clock; HSET's reply says whether the
 * field was made (1: host_config was gone). */
static const char heartbeat_lua[] =
    "return redis.call('HSET', KEYS[1], 'last_seen', " STORE_LUA_NOW_MS ")";

static const char mark_down_lua[] =
    "return redis.call('HSET', KEYS[1], 'state', 'down', 'last_seen', " STORE_LUA_NOW_MS ")";

static int reply_ok(struct store *s, redisReply *r, const char *what)
{
	int rc = 0;

	if (!r) {
		log_debug("redis: %s: %s", what, s->errstr);
		return -EIO;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		log_warn("redis: %s: %s", what, r->str);
		rc = -EPROTO;
	}
	freeReplyObject(r);
	return rc;
}

int publish_register(struct agent *a)
{
	char k1[128], k2[128], k3[128], k4[128], mem[32], cpu[32], net[32];
	int64_t last_ms = 0;
	redisReply *r;

	snprintf(k1, sizeof(k1), "host_config:%s", a->o.id);
	snprintf(k2, sizeof(k2), "mon_proxy_addr:%s", a->o.id);
	snprintf(k3, sizeof(k3), "vmm_proxy_addr:%s", a->o.id);
	snprintf(k4, sizeof(k4), "ts:host:%s", a->o.id);
	snprintf(mem, sizeof(mem), "%.0f", a->so.mem_mib);
	snprintf(cpu, sizeof(cpu), "%g", a->so.cpus);
	snprintf(net, sizeof(net), "%.0f", a->so.net_mbit);
	r = store_command(a->redis, "EVAL %s 4 %s %s %s %s %s %s %s %s %s %s %s %s", register_lua,
	                  k1, k2, k3, k4, a->o.id, a->o.address, mem, cpu, net, a->o.advertise,
	                  a->o.vm_enabled ? "1" : "0", a->o.vm_enabled ? a->o.vm.peer_uri : "");
	if (!r)
		return -EIO;
	if (r->type == REDIS_REPLY_ERROR) {
		log_error("redis: registering host %s: %s", a->o.id, r->str);
		freeReplyObject(r);
		return -EPROTO;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		log_error("redis: registering host %s: unexpected reply", a->o.id);
		freeReplyObject(r);
		return -EPROTO;
	}
	if (r->element[1]->str[0] && !util_parse_i64(r->element[1]->str, &last_ms)) {
		/* "<ms>-<seq>": the part before the dash */
		char ms[24];
		snprintf(ms, sizeof(ms), "%.*s", (int)strcspn(r->element[1]->str, "-"),
		         r->element[1]->str);
		if (!util_parse_i64(ms, &last_ms))
			last_ms = 0;
	}
	if (last_ms > a->last_ts_ms) {
		if (last_ms > util_now_ms())
			log_warn(
			    "ts:host:%s ends at %lld, %lld ms after this host's clock: samples "
			    "are numbered after it",
			    a->o.id, (long long)last_ms, (long long)(last_ms - util_now_ms()));
		a->last_ts_ms = last_ms;
	}
	log_info("registered host %s (%s) in redis, state %s", a->o.id, a->o.advertise,
	         r->element[0]->str);
	freeReplyObject(r);
	return 0;
}

int publish_mark_down(struct agent *a)
{
	return reply_ok(a->redis,
	                store_command(a->redis, "EVAL %s 1 host_config:%s", mark_down_lua, a->o.id),
	                "marking host down");
}

static void desc_from_reply(struct agent *a, const char *id, redisReply *r, struct vm_desc *d)
{
	int64_t v;
	double x;

	memset(d, 0, sizeof(*d));
	snprintf(d->id, sizeof(d->id), "%s", id);
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 5)
		return;
	for (size_t i = 0; i < 5; i++)
		if (r->element[i]->type != REDIS_REPLY_STRING &&
		    r->element[i]->type != REDIS_REPLY_NIL)
			return;
	const char *f[5];
	for (size_t i = 0; i < 5; i++)
		f[i] = r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : NULL;
	if (f[0]) {
		if (util_parse_i64(f[0], &v) && v > 0 && v < 1 << 30)
			d->pid = (int)v;
		else
			log_complain(&a->registry_complaint, util_mono_ms(), LOG_LVL_WARN,
			             "registry: vm_configs:%s pid '%s' is not a process id", id,
			             f[0]);
	}
	if (f[1] && strlen(f[1]) < sizeof(d->tap))
		snprintf(d->tap, sizeof(d->tap), "%s", f[1]);
	if (f[2] && util_parse_double(f[2], &x) && x > 0)
		d->mem_mib = x;
	if (f[3] && util_parse_double(f[3], &x) && x > 0)
		d->vcpus = x;
	if (f[4] && f[4][0] == '/' && strlen(f[4]) < sizeof(d->guest_stats))
		snprintf(d->guest_stats, sizeof(d->guest_stats), "%s", f[4]);
}

/* Is a watched VM's vm_configs to be read again? */
static bool stale_config(const struct vm_mon *m)
{
	if (!m->has_last)
		return true;
	switch (m->last.status) {
	case VM_GONE:
	case VM_NO_PID:
	case VM_PROC_ERROR:
		return true; /* perhaps restarted with a new pid */
	default:
		return false;
	}
}

/* Does VM id, at position i of the registry, need its vm_configs read
 * again? (under lock) */
static bool needs_config(struct agent *a, const char *id, size_t i, bool full,
                         struct vm_desc *known)
{
	/* the VMs are watched in the registry's order (see agent_apply_registry) */
	struct vm_mon *m = i < (size_t)a->nvms && strcmp(a->vms[i]->d.id, id) == 0
	                       ? a->vms[i]
	                       : agent_find_vm(a, id);

	if (full || !m || stale_config(m))
		return true;
	*known = m->d;
	return false;
}

bool publish_registry_unchanged(struct agent *a, const redisReply *ids)
{
	bool same;

	pthread_mutex_lock(&a->lock);
	same = ids->type == REDIS_REPLY_ARRAY && ids->elements == (size_t)a->nvms;
	for (size_t i = 0; same && i < ids->elements; i++) {
		const redisReply *e = ids->element[i];
		same = e->type == REDIS_REPLY_STRING && strcmp(e->str, a->vms[i]->d.id) == 0 &&
		       !stale_config(a->vms[i]);
	}
	pthread_mutex_unlock(&a->lock);
	return same;
}

/* --- the registry, read when it changed -------------------------------- */

/* Client-side caching (Redis 6+, RESP2 redirect mode): the server remembers
 * the keys the agent's connection reads (vms_in_host, vm_configs) and, when
 * one changes, publishes its name on __redis__:invalidate to a second
 * connection. NOLOOP leaves out the keys the agent writes itself. Between
 * changes the registry is known, and the round trip that reads it every
 * sample is saved; a change made before a sample is seen by that sample, as
 * with a read. */
static void tracking_off(struct agent *a, const char *why)
{
	if (a->tracking || a->inval)
		log_info("redis: registry changes no longer tracked (%s): read every sample", why);
	a->tracking = false;
	a->reg_dirty = true;
	store_free(a->inval);
	a->inval = NULL;
}

int publish_tracking_start(struct agent *a, int64_t now_ms)
{
	redisReply *r = NULL;
	long long id;
	int rc = -EIO;

	a->tracking = false;
	a->reg_dirty = true;
	if (a->tracking_refused)
		return -EIO;
	if (!a->inval && !(a->inval = store_new(&a->o.redis)))
		return -ENOMEM;
	if (!store_ensure(a->inval, now_ms))
		goto out;
	r = store_command(a->inval, "CLIENT ID");
	if (!r || r->type != REDIS_REPLY_INTEGER)
		goto out;
	id = r->integer;
	freeReplyObject(r);
	r = store_command(a->inval, "SUBSCRIBE __redis__:invalidate");
	if (!r || r->type != REDIS_REPLY_ARRAY)
		goto out;
	freeReplyObject(r);
	r = store_command(a->redis, "CLIENT TRACKING on REDIRECT %lld NOLOOP", id);
	if (r && r->type == REDIS_REPLY_STATUS) {
		a->tracking = true;
		rc = 0;
	} else if (r && r->type == REDIS_REPLY_ERROR) {
		/* Redis < 6, or an ACL without it: as before */
		log_info("redis: no tracking of registry changes (%s): read every sample", r->str);
		a->tracking_refused = true;
	}
out:
	freeReplyObject(r);
	if (rc < 0) {
		store_free(a->inval);
		a->inval = NULL;
	}
	return rc;
}

bool publish_registry_due(struct agent *a, bool full)
{
	char buf[4096];
	bool stale = false;
	ssize_t n;

	if (a->tracking && a->inval && a->inval->c) {
		/* any message is news of a change (a key, or all: FLUSHDB) */
		while ((n = recv(a->inval->c->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			a->reg_dirty = true;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			tracking_off(a, n == 0 ? "connection closed" : strerror(errno));
	}
	if (!a->tracking || a->reg_dirty || full)
		return true;
	pthread_mutex_lock(&a->lock);
	for (int i = 0; i < a->nvms && !stale; i++)
		stale = stale_config(a->vms[i]);
	pthread_mutex_unlock(&a->lock);
	return stale;
}

int publish_registry_read(struct agent *a, redisReply *ids, bool full, struct vm_desc **out, int *n)
{
	redisReply *r;
	struct vm_desc *d = NULL;
	bool *need = NULL;
	int rc = 0, m = 0;

	*out = NULL;
	*n = 0;
	if (ids->type != REDIS_REPLY_ARRAY) {
		log_complain(&a->registry_complaint, util_mono_ms(), LOG_LVL_WARN,
		             "registry: vms_in_host:%s is not a set: %s", a->o.id,
		             ids->type == REDIS_REPLY_ERROR ? ids->str : "wrong type");
		rc = -EPROTO;
		goto out;
	}
	d = calloc(ids->elements + 1, sizeof(*d));
	need = calloc(ids->elements + 1, sizeof(*need));
	if (!d || !need) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < ids->elements; i++)
		need[i] = ids->element[i]->type == REDIS_REPLY_STRING &&
		          util_valid_id(ids->element[i]->str) &&
		          needs_config(a, ids->element[i]->str, i, full, &d[i]);
	pthread_mutex_unlock(&a->lock);
	for (size_t i = 0; i < ids->elements; i++) {
		const char *id = ids->element[i]->str;
		const char *argv[] = {"HMGET", NULL,  "pid",        "tap_device",
		                      "mem",   "cpu", "guest_stats"};
		char key[128];
		if (!need[i])
			continue;
		snprintf(key, sizeof(key), "vm_configs:%s", id);
		argv[1] = key;
		if (store_append(a->redis, 7, argv, NULL) < 0) {
			rc = -EIO;
			goto out;
		}
	}
	for (size_t i = 0; i < ids->elements; i++) {
		const char *id = ids->element[i]->str;
		if (ids->element[i]->type != REDIS_REPLY_STRING || !util_valid_id(id)) {
			log_complain(&a->registry_complaint, util_mono_ms(), LOG_LVL_WARN,
			             "registry: vms_in_host:%s holds an invalid vm id; ignored",
			             a->o.id);
			continue;
		}
		if (!need[i]) {
			d[m++] = d[i]; /* as watched now (m <= i) */
			continue;
		}
		r = store_reply(a->redis);
		if (!r) {
			rc = -EIO;
			goto out;
		}
		desc_from_reply(a, id, r, &d[m++]);
		freeReplyObject(r);
	}
	*out = d;
	*n = m;
	d = NULL;
out:
	free(d);
	free(need);
	return rc;
}

/* --- the samples ------------------------------------------------------ */

/* A string literal as an argument, its length known at compile time. */
#define LIT(b, lit) resp_arg(b, lit, sizeof(lit) - 1)
/* name value: a number with dec decimals, or an integer */
#define FIELD(b, lit, v, dec) (LIT(b, lit) | resp_fixed(b, v, dec))
#define FIELD_U64(b, lit, v)  (LIT(b, lit) | resp_u64(b, v))

/* XADD ts:<kind>:<id> MAXLEN ~ <n> <ts>-0 */
static int record_begin(const struct agent *a, struct resp_buf *b, const char *kind, const char *id,
                        int64_t ts_ms)
{
	const char *key[] = {"ts:", kind, ":", id};
	char id_s[32];
	size_t n = resp_format_u64(id_s, ts_ms > 0 ? (uint64_t)ts_ms : 0);

	memcpy(id_s + n, "-0", 2);
	return resp_begin(b) | LIT(b, "XADD") | resp_cat(b, key, 4) | LIT(b, "MAXLEN") |
	       LIT(b, "~") | resp_u64(b, (uint64_t)a->o.stream_maxlen) | resp_arg(b, id_s, n + 2);
}

static int host_fields(const struct agent *a, struct resp_buf *b)
{
	const struct host_sample *h = &a->hlast;
	int rc = record_begin(a, b, "host", a->o.id, h->ts_ms);

	rc |= FIELD_U64(b, "seq", h->seq);
	rc |= FIELD_U64(b, "ts", (uint64_t)h->ts_ms);
	if (h->valid_cpu) {
		rc |= FIELD(b, "cpu", h->cpu, 4);
		rc |= FIELD(b, "cpu_busy_cores", h->cpu_busy_cores, 3);
		rc |= FIELD(b, "cpu_iowait", h->cpu_iowait, 4);
		rc |= FIELD(b, "cpu_steal", h->cpu_steal, 4);
		rc |= FIELD(b, "cpu_irq", h->cpu_irq, 4);
		rc |= FIELD(b, "io_overhead", h->io_overhead, 4);
	}
	if (h->valid_mem) {
		rc |= FIELD(b, "mem", h->mem, 4);
		rc |= FIELD(b, "mem_used_mib", h->mem_used_mib, 1);
		rc |= FIELD(b, "mem_avail_mib", h->mem_avail_mib, 1);
		rc |= FIELD(b, "swap_used_mib", h->swap_used_mib, 1);
		rc |= FIELD(b, "swap_in_ps", h->swap_in_ps, 2);
		rc |= FIELD(b, "swap_out_ps", h->swap_out_ps, 2);
	}
	if (h->valid_net) {
		rc |= FIELD(b, "net", h->net, 4);
		rc |= FIELD(b, "net_rx_bps", h->net_rx_bps, 0);
		rc |= FIELD(b, "net_tx_bps", h->net_tx_bps, 0);
	}
	if (h->has_psi) {
		rc |= FIELD(b, "psi_cpu_some", h->psi_cpu_some, 2);
		rc |= FIELD(b, "psi_mem_some", h->psi_mem_some, 2);
		rc |= FIELD(b, "psi_mem_full", h->psi_mem_full, 2);
		rc |= FIELD(b, "psi_io_some", h->psi_io_some, 2);
		rc |= FIELD(b, "psi_io_full", h->psi_io_full, 2);
	}
	rc |= resp_end(b);
	return rc ? -ENOMEM : 0;
}

static int vm_fields(const struct agent *a, const struct vm_mon *m, struct resp_buf *b)
{
	const struct vm_sample *s = &m->last;
	int rc = record_begin(a, b, "vm", m->d.id, s->ts_ms);

	rc |= FIELD_U64(b, "seq", s->seq);
	rc |= FIELD_U64(b, "ts", (uint64_t)s->ts_ms);
	rc |= LIT(b, "status") | resp_str(b, vm_status_name(s->status));
	if (s->problem[0])
		rc |= LIT(b, "problem") | resp_str(b, s->problem);
	if (s->valid_cpu) {
		rc |= FIELD(b, "cpu", s->cpu, 4);
		rc |= FIELD(b, "cpu_host", s->cpu_host, 4);
		rc |= FIELD(b, "cpu_io_overhead", s->cpu_io_overhead, 4);
	}
	if (s->valid_mem) {
		rc |= FIELD(b, "mem", s->mem, 4);
		rc |= FIELD(b, "rss_mib", s->rss_mib, 1);
		rc |= FIELD(b, "swap_mib", s->swap_mib, 1);
		if (s->gray) {
			rc |= FIELD(b, "guest_used_mib", s->guest_used_mib, 1);
			rc |= FIELD(b, "guest_avail_mib", s->guest_avail_mib, 1);
			rc |= FIELD(b, "guest_swap_in_bps", s->guest_swap_in_bps, 0);
			rc |= FIELD(b, "guest_swap_out_bps", s->guest_swap_out_bps, 0);
			rc |= FIELD(b, "guest_majflt_ps", s->guest_majflt_ps, 2);
		}
	}
	if (s->valid_net) {
		rc |= FIELD(b, "net", s->net, 4);
		rc |= FIELD(b, "rx_bps", s->rx_bps, 0);
		rc |= FIELD(b, "tx_bps", s->tx_bps, 0);
		rc |= FIELD(b, "rx_pps", s->rx_pps, 1);
		rc |= FIELD(b, "tx_pps", s->tx_pps, 1);
		rc |= FIELD(b, "rx_drop_ps", s->rx_drop_ps, 1);
		rc |= FIELD(b, "tx_drop_ps", s->tx_drop_ps, 1);
	}
	if (s->has_tap) {
		rc |= FIELD_U64(b, "tap_rx_bytes", s->tap.rx_bytes);
		rc |= FIELD_U64(b, "tap_tx_bytes", s->tap.tx_bytes);
	}
	if (s->valid_disk) {
		rc |= FIELD(b, "disk_rd_bps", s->disk_rd_bps, 0);
		rc |= FIELD(b, "disk_wr_bps", s->disk_wr_bps, 0);
	}
	rc |= resp_end(b);
	return rc ? -ENOMEM : 0;
}

void pub_tick_release(struct pub_tick *t)
{
	resp_release(&t->b);
}

int publish_build_tick(struct agent *a, struct pub_tick *t)
{
	struct resp_buf *b = &t->b;
	int rc;

	memset(t, 0, sizeof(*t));
	/* about 700 bytes a VM: one allocation, no copies as it grows */
	rc = resp_reserve(b, 1024 + 768 * (size_t)a->nvms);
	rc |= resp_begin(b) | LIT(b, "MULTI") | resp_end(b);
	rc |= host_fields(a, b);
	for (int i = 0; i < a->nvms && !rc; i++)
		rc |= vm_fields(a, a->vms[i], b);
	rc |= resp_begin(b) | LIT(b, "EXEC") | resp_end(b);
	if (rc) {
		pub_tick_release(t);
		return -ENOMEM;
	}
	return 0;
}

static void backlog_drop_oldest(struct backlog *bl)
{
	bl->bytes -= bl->t[bl->head].b.cap;
	pub_tick_release(&bl->t[bl->head]);
	bl->head = (bl->head + 1) % bl->cap;
	bl->len--;
	if (bl->dropped++ == 0 || bl->dropped % 100 == 0)
		log_warn("backlog full (%d samples, %zu KiB): dropped the oldest, %llu so far",
		         bl->len + 1, bl->bytes / 1024, (unsigned long long)bl->dropped);
}

void publish_enqueue(struct agent *a, struct pub_tick *t)
{
	struct backlog *bl = &a->bl;

	while (bl->len && (bl->len == bl->cap || bl->bytes + t->b.cap > bl->max_bytes))
		backlog_drop_oldest(bl);
	bl->t[(bl->head + bl->len) % bl->cap] = *t;
	bl->len++;
	bl->bytes += t->b.cap;
	memset(t, 0, sizeof(*t));
}

void backlog_release(struct backlog *bl)
{
	for (int i = 0; i < bl->len; i++)
		pub_tick_release(&bl->t[(bl->head + i) % bl->cap]);
	free(bl->t);
	memset(bl, 0, sizeof(*bl));
}

/* Takes the oldest tick out of the backlog (the lock is not held over I/O). */
static bool backlog_take(struct agent *a, struct pub_tick *t)
{
	struct backlog *bl = &a->bl;
	bool got = false;

	pthread_mutex_lock(&a->lock);
	if (bl->len) {
		*t = bl->t[bl->head];
		memset(&bl->t[bl->head], 0, sizeof(*t));
		bl->head = (bl->head + 1) % bl->cap;
		bl->len--;
		bl->bytes -= t->b.cap;
		got = true;
	}
	pthread_mutex_unlock(&a->lock);
	return got;
}

/* Puts ticks back at the front, in order: nothing is lost on a failure. */
static void backlog_return(struct agent *a, struct pub_tick *t, int n)
{
	struct backlog *bl = &a->bl;

	pthread_mutex_lock(&a->lock);
	for (int i = n - 1; i >= 0; i--) {
		if (bl->len == bl->cap) {
			pub_tick_release(&t[i]);
			bl->dropped++;
			continue;
		}
		bl->head = (bl->head - 1 + bl->cap) % bl->cap;
		bl->t[bl->head] = t[i];
		bl->len++;
		bl->bytes += t[i].b.cap;
	}
	pthread_mutex_unlock(&a->lock);
}

/* Redis refused (part of) a tick: said once, when it starts. The figures
 * are the API's to read, under the lock. */
static void tick_refused(struct agent *a, const char *why)
{
	bool was;
	int queued;

	pthread_mutex_lock(&a->lock);
	was = a->refusing;
	a->refused_ticks++;
	a->refusing = true;
	snprintf(a->refused_why, sizeof(a->refused_why), "%s", why);
	queued = a->bl.len;
	pthread_mutex_unlock(&a->lock);
	if (!was)
		log_warn("redis refuses samples (%s): they stay in the backlog (%d queued) and "
		         "are sent again",
		         why, queued);
}

static void tick_accepted(struct agent *a)
{
	bool was;
	unsigned long long n;

	pthread_mutex_lock(&a->lock);
	was = a->refusing;
	a->refusing = false;
	n = a->refused_ticks;
	pthread_mutex_unlock(&a->lock);
	if (was)
		log_info("redis accepts samples again (%llu refused so far, all kept)", n);
}

/* Reads the replies of one sent tick (MULTI, +QUEUED..., EXEC). Returns 0
 * when Redis stored it, 1 when it refused it (an error reply: OOM, MISCONF,
 * READONLY, a discarded transaction; the tick must be sent again), -EIO when
 * the connection failed. An XADD refused as "equal or smaller" than the
 * stream's last id is a tick re-sent after a lost reply: already stored. */
static int tick_replies(struct agent *a, const struct pub_tick *t, char *why, size_t cap)
{
	redisReply *r = NULL;

	for (int i = 0; i < t->b.ncmds; i++) {
		freeReplyObject(r);
		r = store_reply(a->redis);
		if (!r)
			return -EIO;
		if (i < t->b.ncmds - 1 && r->type == REDIS_REPLY_ERROR && !why[0])
			snprintf(why, cap, "%s", r->str);
	}
	if (r && r->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < r->elements; i++) {
			redisReply *e = r->element[i];
			if (e->type != REDIS_REPLY_ERROR)
				continue;
			if (strstr(e->str, "equal or smaller")) {
				a->duplicate_entries++;
				log_debug("redis: entry %zu of a re-sent sample was already stored",
				          i);
			} else if (!why[0]) {
				snprintf(why, cap, "%s", e->str);
			}
		}
	} else if (r && r->type == REDIS_REPLY_ERROR && !why[0]) {
		snprintf(why, cap, "%s", r->str);
	} else if (r && r->type != REDIS_REPLY_ERROR && r->type != REDIS_REPLY_ARRAY && !why[0]) {
		snprintf(why, cap, "EXEC answered with reply type %d", r->type);
	}
	freeReplyObject(r);
	return why[0] ? 1 : 0;
}

#define BATCH 32

static int extra_replies(struct agent *a, int n)
{
	for (int i = 0; i < n; i++) {
		redisReply *r = store_reply(a->redis);
		if (!r)
			return -EIO;
		if (r->type == REDIS_REPLY_ERROR && !a->refusing)
			log_warn("redis: writing profiles: %s", r->str);
		/* the heartbeat created last_seen: host_config was gone (Redis lost
		 * its data); register again at the next sample */
		if (i == 0 && r->type == REDIS_REPLY_INTEGER && r->integer == 1 && a->registered) {
			log_warn("redis: host_config:%s was gone; registering again", a->o.id);
			a->registered = false;
		}
		freeReplyObject(r);
	}
	return 0;
}

/* Reads the replies of n sent ticks, then WAIT's (when wait), then those of
 * extra_n more commands. 0: every tick stored (and replicated), released;
 * -EAGAIN: Redis refused one or the replicas did not acknowledge them;
 * -EIO: the connection failed. On failure all n go back to the backlog, in
 * order (those Redis did store are refused as duplicates when sent again). */
static int confirm(struct agent *a, struct pub_tick *t, int n, bool wait, int extra_n)
{
	char why[160] = "", more[160];

	for (int i = 0; i < n; i++) { /* the first reason is the one said */
		more[0] = '\0';
		if (tick_replies(a, &t[i], why[0] ? more : why, sizeof(why)) < 0)
			goto io;
	}
	if (wait) {
		redisReply *r = store_reply(a->redis);
		if (!r)
			goto io;
		if (!why[0] && r->type == REDIS_REPLY_ERROR)
			snprintf(why, sizeof(why), "WAIT: %s", r->str);
		else if (!why[0] &&
		         (r->type != REDIS_REPLY_INTEGER || r->integer < a->o.wait_replicas))
			snprintf(why, sizeof(why),
			         "%lld of %lld replica(s) acknowledged the samples within %lld ms",
			         r->type == REDIS_REPLY_INTEGER ? (long long)r->integer : 0LL,
			         a->o.wait_replicas, a->o.wait_ms);
		freeReplyObject(r);
	}
	if (extra_n && extra_replies(a, extra_n) < 0)
		goto io;
	if (why[0]) {
		tick_refused(a, why);
		backlog_return(a, t, n);
		return -EAGAIN;
	}
	if (n)
		tick_accepted(a);
	for (int i = 0; i < n; i++) {
		pub_tick_release(&t[i]);
		a->published_ticks++;
	}
	return 0;
io:
	backlog_return(a, t, n);
	return -EIO;
}

int publish_collect(struct agent *a)
{
	int n = a->ninflight, extra = a->inflight_extra;
	bool wait = a->inflight_wait;

	a->ninflight = a->inflight_extra = 0;
	a->inflight_wait = false;
	return confirm(a, a->inflight, n, wait, extra);
}

int publish_exchange(struct agent *a, const struct resp_buf *extra, bool defer)
{
	int64_t deadline = util_mono_ms() + a->o.flush_budget_ms;
	struct pub_tick batch[BATCH];
	int sent = 0;

	if (!a->inflight && !(a->inflight = calloc(BATCH, sizeof(*a->inflight))))
		return -ENOMEM;
	{
		int rc = publish_collect(a);
		if (rc < 0)
			return rc; /* -EAGAIN: refused; sent again next tick */
	}
	for (;;) {
		int n = 0, rc;
		bool last, wait;
		/* while Redis refuses writes, only the oldest tick goes, as a probe */
		int max = a->refusing ? 1 : BATCH;
		while (n < max && backlog_take(a, &batch[n]))
			n++;
		last = a->refusing || a->bl.len == 0 || util_mono_ms() >= deadline;
		wait = n && a->o.wait_replicas > 0;
		for (int i = 0; i < n; i++)
			if (store_append_raw(a->redis, batch[i].b.data, batch[i].b.len) < 0)
				goto fail;
		if (wait) {
			char nr[24], ms[24];
			const char *argv[] = {"WAIT", nr, ms};
			snprintf(nr, sizeof(nr), "%lld", a->o.wait_replicas);
			snprintf(ms, sizeof(ms), "%lld", a->o.wait_ms);
			if (store_append(a->redis, 3, argv, NULL) < 0)
				goto fail;
		}
		if (last && extra->ncmds && store_append_raw(a->redis, extra->data, extra->len) < 0)
			goto fail;
		if (last && defer) {
			if (store_flush(a->redis) < 0)
				goto fail;
			memcpy(a->inflight, batch, sizeof(*batch) * (size_t)n);
			a->ninflight = n;
			a->inflight_extra = extra->ncmds;
			a->inflight_wait = wait;
			sent += n;
			if (sent > 1)
				log_info("redis: sent %d buffered samples, %d still queued", sent,
				         a->bl.len);
			return 0;
		}
		rc = confirm(a, batch, n, wait, last ? extra->ncmds : 0);
		if (rc < 0)
			return rc;
		sent += n;
		if (!last)
			continue;
		if (sent > 1)
			log_info("redis: sent %d buffered samples, %d still queued", sent,
			         a->bl.len);
		return 0;
	fail:
		backlog_return(a, batch, n);
		return -EIO;
	}
}

static int summary_fields(struct resp_buf *b, enum le_res r, const struct profile_summary *s)
{
	/* the field names, "<res>_<figure>", without printf */
#define SUMMARY_NAMES(res)                                                                         \
	{                                                                                          \
		res "_last", res "_mean", res "_p50", res "_p95", res "_p99", res "_peak",         \
		    res "_max", res "_forecast", res "_phi", res "_hot", res "_over", res "_n",    \
		    res "_hist"                                                                    \
	}
	static const char *const names[RES_N][13] = {[RES_CPU] = SUMMARY_NAMES("cpu"),
	                                             [RES_MEM] = SUMMARY_NAMES("mem"),
	                                             [RES_NET] = SUMMARY_NAMES("net")};
#undef SUMMARY_NAMES
	double v[] = {s->last,    s->mean,        s->p50,          s->p95,
	              s->p99,     s->peak,        s->max,          s->ar1.forecast,
	              s->ar1.phi, s->hot ? 1 : 0, (double)s->over, (double)s->n};
	char hist[HIST_BINS * 11 + 1];
	size_t off = 0;
	int rc = 0;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		rc |= resp_str(b, names[r][i]) | resp_fixed(b, v[i], i < 9 ? 4 : 0);
	for (int i = 0; i < HIST_BINS; i++) {
		if (i)
			hist[off++] = ',';
		off += resp_format_u64(hist + off, s->hist.bins[i]);
	}
	rc |= resp_str(b, names[r][12]) | resp_arg(b, hist, off);
	return rc ? -ENOMEM : 0;
}

/* The heartbeat (host_config last_seen) and, when `full`, the profile hashes
 * (summaries, histograms: they change slowly and cost the most to write),
 * as commands appended to b. */
int publish_build_profiles(struct agent *a, bool full, struct resp_buf *b)
{
	const char *hkey[] = {"host_config:", a->o.id};
	int64_t t = util_now_ms();
	double *scratch = NULL;
	char now[32];
	size_t nnow = resp_format_u64(now, t > 0 ? (uint64_t)t : 0);
	int rc;

	rc = resp_begin(b) | LIT(b, "EVAL") |
	     resp_arg(b, heartbeat_lua, sizeof(heartbeat_lua) - 1) | LIT(b, "1") |
	     resp_cat(b, hkey, 2) | resp_end(b);
	if (full) {
		scratch = malloc(sizeof(double) * (size_t)a->o.window);
		/* about 1.3 KB a profile hash */
		rc |= resp_reserve(b, 1536 * ((size_t)a->nvms + 1));
	}
	pthread_mutex_lock(&a->lock);
	for (int i = -1; full && scratch && !rc && i < a->nvms; i++) {
		const char *key[] = {i < 0 ? "profile:host:" : "profile:vm:",
		                     i < 0 ? a->o.id : a->vms[i]->d.id};
		struct profile_summary sum[RES_N];

		agent_summarize(a, i < 0 ? a->hprof : a->vms[i]->prof, sum, scratch);
		rc |= resp_begin(b) | LIT(b, "HSET") | resp_cat(b, key, 2);
		rc |= LIT(b, "ts") | resp_arg(b, now, nnow) | LIT(b, "host_id") |
		      resp_str(b, a->o.id);
		if (i >= 0)
			rc |=
			    LIT(b, "status") | resp_str(b, vm_status_name(a->vms[i]->last.status));
		for (int r = 0; r < RES_N; r++)
			rc |= summary_fields(b, (enum le_res)r, &sum[r]);
		rc |= resp_end(b);
	}
	pthread_mutex_unlock(&a->lock);
	free(scratch);
	return rc ? -ENOMEM : 0;
}
