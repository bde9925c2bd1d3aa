/* publish.c - everything the agent says to and reads from Redis: its
 * registration, the VMs the registry lists for it, the ts:* streams (through
 * a bounded backlog that survives Redis outages) and the profile:* hashes. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "common/log.h"
#include "common/util.h"

static const char *const res_names[RES_N] = {"cpu", "mem", "net"};

/* Registration touches five keys: one Lua script, so a reader never sees half
 * of it. A host an operator put into maintenance stays there. */
static const char register_lua[] =
    "redis.call('SADD', 'host_ids', ARGV[1])\n"
    "redis.call('HSET', 'host_id_to_ip', ARGV[1], ARGV[2])\n"
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if st ~= 'maintenance' then st = 'up' end\n"
    "redis.call('HSET', KEYS[1], 'mem', ARGV[3], 'cpu', ARGV[4], 'net', ARGV[5],\n"
    "  'name', ARGV[1], 'state', st, 'last_seen', ARGV[6], 'ip', ARGV[2])\n"
    "redis.call('SET', KEYS[2], ARGV[7])\n"
    "redis.call('SET', KEYS[3], ARGV[7])\n"
    "return st\n";

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
	char k1[128], k2[128], k3[128], mem[32], cpu[32], net[32], now[32];
	redisReply *r;

	snprintf(k1, sizeof(k1), "host_config:%s", a->o.id);
	snprintf(k2, sizeof(k2), "mon_proxy_addr:%s", a->o.id);
	snprintf(k3, sizeof(k3), "vmm_proxy_addr:%s", a->o.id);
	snprintf(mem, sizeof(mem), "%.0f", a->so.mem_mib);
	snprintf(cpu, sizeof(cpu), "%g", a->so.cpus);
	snprintf(net, sizeof(net), "%.0f", a->so.net_mbit);
	snprintf(now, sizeof(now), "%lld", (long long)util_now_ms());
	r = store_command(a->redis, "EVAL %s 3 %s %s %s %s %s %s %s %s %s %s", register_lua, k1, k2,
	                  k3, a->o.id, a->o.address, mem, cpu, net, now, a->o.advertise);
	if (!r)
		return -EIO;
	if (r->type == REDIS_REPLY_ERROR) {
		log_error("redis: registering host %s: %s", a->o.id, r->str);
		freeReplyObject(r);
		return -EPROTO;
	}
	log_info("registered host %s (%s) in redis, state %s", a->o.id, a->o.advertise,
	         r->type == REDIS_REPLY_STRING ? r->str : "?");
	freeReplyObject(r);
	return 0;
}

int publish_mark_down(struct agent *a)
{
	return reply_ok(a->redis,
	                store_command(a->redis, "HSET host_config:%s state down last_seen %lld",
	                              a->o.id, (long long)util_now_ms()),
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

/* Does VM id need its vm_configs read again? (under lock) */
static bool needs_config(struct agent *a, const char *id, bool full, struct vm_desc *known)
{
	struct vm_mon *m = agent_find_vm(a, id);

	if (full || !m || !m->has_last)
		return true;
	switch (m->last.status) {
	case VM_GONE:
	case VM_NO_PID:
	case VM_PROC_ERROR:
		return true; /* perhaps restarted with a new pid */
	default:
		*known = m->d;
		return false;
	}
}

int publish_registry_read(struct agent *a, bool full, struct vm_desc **out, int *n)
{
	redisReply *ids = NULL, *r;
	struct vm_desc *d = NULL;
	bool *need = NULL;
	int rc = 0, m = 0;

	*out = NULL;
	*n = 0;
	ids = store_command(a->redis, "SMEMBERS vms_in_host:%s", a->o.id);
	if (!ids)
		return -EIO;
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
		          needs_config(a, ids->element[i]->str, full, &d[i]);
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
	freeReplyObject(ids);
	return rc;
}

/* --- the samples: one flat buffer per tick --------------------------------
 * A tick's records lie back to back in t->data: key\0 id\0 then name\0 value\0
 * pairs, closed by an empty name (\0). One allocation per tick, formatted once,
 * sent from where it lies. */

static int tick_reserve(struct pub_tick *t, size_t more)
{
	if (t->len + more <= t->cap)
		return 0;
	size_t cap = t->cap ? t->cap : 4096;
	while (cap < t->len + more)
		cap *= 2;
	char *nd = realloc(t->data, cap);
	if (!nd)
		return -ENOMEM;
	t->data = nd;
	t->cap = cap;
	return 0;
}

static int tick_str(struct pub_tick *t, const char *s)
{
	size_t l = strlen(s) + 1;

	if (tick_reserve(t, l) < 0)
		return -ENOMEM;
	memcpy(t->data + t->len, s, l);
	t->len += l;
	return 0;
}

static int tick_fmt(struct pub_tick *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int tick_fmt(struct pub_tick *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (tick_reserve(t, 64) < 0)
		return -ENOMEM;
	va_start(ap, fmt);
	n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= t->cap - t->len) {
		if (tick_reserve(t, (size_t)n + 1) < 0)
			return -ENOMEM;
		va_start(ap, fmt);
		vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
	}
	t->len += (size_t)n + 1;
	return 0;
}

static int field(struct pub_tick *t, const char *name, const char *fmt, double v)
{
	if (tick_str(t, name) < 0)
		return -ENOMEM;
	return tick_fmt(t, fmt, v);
}

static int field_u64(struct pub_tick *t, const char *name, uint64_t v)
{
	if (tick_str(t, name) < 0)
		return -ENOMEM;
	return tick_fmt(t, "%llu", (unsigned long long)v);
}

static int record_begin(struct pub_tick *t, const char *kind, const char *id, int64_t ts_ms)
{
	t->nrec++;
	if (tick_fmt(t, "ts:%s:%s", kind, id) < 0)
		return -ENOMEM;
	return tick_fmt(t, "%lld-0", (long long)ts_ms);
}

static int host_fields(const struct agent *a, struct pub_tick *t)
{
	const struct host_sample *h = &a->hlast;
	int rc = record_begin(t, "host", a->o.id, h->ts_ms);

	rc |= field_u64(t, "seq", h->seq);
	rc |= field_u64(t, "ts", (uint64_t)h->ts_ms);
	if (h->valid_cpu) {
		rc |= field(t, "cpu", "%.4f", h->cpu);
		rc |= field(t, "cpu_busy_cores", "%.3f", h->cpu_busy_cores);
		rc |= field(t, "cpu_iowait", "%.4f", h->cpu_iowait);
		rc |= field(t, "cpu_steal", "%.4f", h->cpu_steal);
		rc |= field(t, "cpu_irq", "%.4f", h->cpu_irq);
		rc |= field(t, "io_overhead", "%.4f", h->io_overhead);
	}
	if (h->valid_mem) {
		rc |= field(t, "mem", "%.4f", h->mem);
		rc |= field(t, "mem_used_mib", "%.1f", h->mem_used_mib);
		rc |= field(t, "mem_avail_mib", "%.1f", h->mem_avail_mib);
		rc |= field(t, "swap_used_mib", "%.1f", h->swap_used_mib);
		rc |= field(t, "swap_in_ps", "%.2f", h->swap_in_ps);
		rc |= field(t, "swap_out_ps", "%.2f", h->swap_out_ps);
	}
	if (h->valid_net) {
		rc |= field(t, "net", "%.4f", h->net);
		rc |= field(t, "net_rx_bps", "%.0f", h->net_rx_bps);
		rc |= field(t, "net_tx_bps", "%.0f", h->net_tx_bps);
	}
	if (h->has_psi) {
		rc |= field(t, "psi_cpu_some", "%.2f", h->psi_cpu_some);
		rc |= field(t, "psi_mem_some", "%.2f", h->psi_mem_some);
		rc |= field(t, "psi_mem_full", "%.2f", h->psi_mem_full);
		rc |= field(t, "psi_io_some", "%.2f", h->psi_io_some);
		rc |= field(t, "psi_io_full", "%.2f", h->psi_io_full);
	}
	rc |= tick_str(t, "");
	return rc ? -ENOMEM : 0;
}

static int vm_fields(const struct vm_mon *m, struct pub_tick *t)
{
	const struct vm_sample *s = &m->last;
	int rc = record_begin(t, "vm", m->d.id, s->ts_ms);

	rc |= field_u64(t, "seq", s->seq);
	rc |= field_u64(t, "ts", (uint64_t)s->ts_ms);
	rc |= tick_str(t, "status");
	rc |= tick_str(t, vm_status_name(s->status));
	if (s->problem[0]) {
		rc |= tick_str(t, "problem");
		rc |= tick_str(t, s->problem);
	}
	if (s->valid_cpu) {
		rc |= field(t, "cpu", "%.4f", s->cpu);
		rc |= field(t, "cpu_host", "%.4f", s->cpu_host);
		rc |= field(t, "cpu_io_overhead", "%.4f", s->cpu_io_overhead);
	}
	if (s->valid_mem) {
		rc |= field(t, "mem", "%.4f", s->mem);
		rc |= field(t, "rss_mib", "%.1f", s->rss_mib);
		rc |= field(t, "swap_mib", "%.1f", s->swap_mib);
		if (s->gray) {
			rc |= field(t, "guest_used_mib", "%.1f", s->guest_used_mib);
			rc |= field(t, "guest_avail_mib", "%.1f", s->guest_avail_mib);
			rc |= field(t, "guest_swap_in_bps", "%.0f", s->guest_swap_in_bps);
			rc |= field(t, "guest_swap_out_bps", "%.0f", s->guest_swap_out_bps);
			rc |= field(t, "guest_majflt_ps", "%.2f", s->guest_majflt_ps);
		}
	}
	if (s->valid_net) {
		rc |= field(t, "net", "%.4f", s->net);
		rc |= field(t, "rx_bps", "%.0f", s->rx_bps);
		rc |= field(t, "tx_bps", "%.0f", s->tx_bps);
		rc |= field(t, "rx_pps", "%.1f", s->rx_pps);
		rc |= field(t, "tx_pps", "%.1f", s->tx_pps);
		rc |= field(t, "rx_drop_ps", "%.1f", s->rx_drop_ps);
		rc |= field(t, "tx_drop_ps", "%.1f", s->tx_drop_ps);
	}
	if (s->has_tap) {
		rc |= field_u64(t, "tap_rx_bytes", s->tap.rx_bytes);
		rc |= field_u64(t, "tap_tx_bytes", s->tap.tx_bytes);
	}
	if (s->valid_disk) {
		rc |= field(t, "disk_rd_bps", "%.0f", s->disk_rd_bps);
		rc |= field(t, "disk_wr_bps", "%.0f", s->disk_wr_bps);
	}
	rc |= tick_str(t, "");
	return rc ? -ENOMEM : 0;
}

void pub_tick_release(struct pub_tick *t)
{
	free(t->data);
	memset(t, 0, sizeof(*t));
}

int publish_build_tick(struct agent *a, struct pub_tick *t)
{
	memset(t, 0, sizeof(*t));
	if (host_fields(a, t) < 0)
		goto fail;
	for (int i = 0; i < a->nvms; i++)
		if (vm_fields(a->vms[i], t) < 0)
			goto fail;
	return 0;
fail:
	pub_tick_release(t);
	return -ENOMEM;
}

static void backlog_drop_oldest(struct backlog *bl)
{
	bl->bytes -= bl->t[bl->head].cap;
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

	while (bl->len && (bl->len == bl->cap || bl->bytes + t->cap > bl->max_bytes))
		backlog_drop_oldest(bl);
	bl->t[(bl->head + bl->len) % bl->cap] = *t;
	bl->len++;
	bl->bytes += t->cap;
	memset(t, 0, sizeof(*t));
}

void backlog_release(struct backlog *bl)
{
	for (int i = 0; i < bl->len; i++)
		pub_tick_release(&bl->t[(bl->head + i) % bl->cap]);
	free(bl->t);
	memset(bl, 0, sizeof(*bl));
}

#define MAX_ARGS 128

/* Sends one tick as MULTI, XADD..., EXEC. 0 when Redis took it (an entry it
 * already had counts as taken: a tick re-sent after a lost EXEC reply), -EIO
 * when the connection failed (the tick stays queued). */
static int send_tick(struct agent *a, struct pub_tick *t)
{
	static const char *const multi[] = {"MULTI"}, *const exec[] = {"EXEC"};
	const char *argv[MAX_ARGS];
	const char *keys[t->nrec > 0 ? t->nrec : 1];
	char maxlen[32];
	const char *p = t->data, *end = t->data + t->len;
	redisReply *r;
	int nrec = 0;

	snprintf(maxlen, sizeof(maxlen), "%lld", a->o.stream_maxlen);
	if (store_append(a->redis, 1, (const char **)multi, NULL) < 0)
		return -EIO;
	while (p < end && nrec < t->nrec) {
		int n = 0;
		argv[n++] = "XADD";
		argv[n++] = keys[nrec] = p;
		p += strlen(p) + 1;
		argv[n++] = "MAXLEN";
		argv[n++] = "~";
		argv[n++] = maxlen;
		argv[n++] = p; /* id */
		p += strlen(p) + 1;
		while (p < end && *p) {
			if (n + 2 > MAX_ARGS) {
				store_drop(a->redis, "a sample record has too many fields");
				return -EIO;
			}
			argv[n++] = p;
			p += strlen(p) + 1;
			argv[n++] = p;
			p += strlen(p) + 1;
		}
		p++; /* the empty name that closes the record */
		if (store_append(a->redis, n, argv, NULL) < 0)
			return -EIO;
		nrec++;
	}
	if (store_append(a->redis, 1, (const char **)exec, NULL) < 0)
		return -EIO;
	for (int i = 0; i < nrec + 1; i++) {
		r = store_reply(a->redis);
		if (!r)
			return -EIO;
		freeReplyObject(r);
	}
	r = store_reply(a->redis);
	if (!r)
		return -EIO;
	if (r->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < r->elements && (int)i < nrec; i++) {
			redisReply *e = r->element[i];
			if (e->type != REDIS_REPLY_ERROR)
				continue;
			if (strstr(e->str, "equal or smaller")) {
				a->duplicate_entries++;
				log_debug("redis: %s already has this sample", keys[i]);
			} else {
				log_warn("redis: XADD %s: %s", keys[i], e->str);
			}
		}
	} else if (r->type == REDIS_REPLY_ERROR) {
		log_warn("redis: publishing a sample: %s", r->str);
	}
	freeReplyObject(r);
	return 0;
}

int publish_flush(struct agent *a, int64_t budget_ms)
{
	struct backlog *bl = &a->bl;
	int64_t deadline = util_mono_ms() + budget_ms;
	int sent = 0;

	while (store_connected(a->redis)) {
		struct pub_tick t;
		pthread_mutex_lock(&a->lock);
		if (bl->len == 0) {
			pthread_mutex_unlock(&a->lock);
			break;
		}
		/* take it out of the queue so the lock is not held over I/O */
		t = bl->t[bl->head];
		memset(&bl->t[bl->head], 0, sizeof(t));
		bl->head = (bl->head + 1) % bl->cap;
		bl->len--;
		bl->bytes -= t.cap;
		pthread_mutex_unlock(&a->lock);
		if (send_tick(a, &t) < 0) {
			/* put it back at the front: nothing is lost */
			pthread_mutex_lock(&a->lock);
			if (bl->len == bl->cap) {
				pub_tick_release(&t);
				bl->dropped++;
			} else {
				bl->head = (bl->head - 1 + bl->cap) % bl->cap;
				bl->t[bl->head] = t;
				bl->len++;
				bl->bytes += t.cap;
			}
			pthread_mutex_unlock(&a->lock);
			return -EIO;
		}
		pub_tick_release(&t);
		a->published_ticks++;
		sent++;
		if (util_mono_ms() >= deadline)
			break;
	}
	if (sent > 1)
		log_info("redis: sent %d buffered samples, %d still queued", sent, bl->len);
	return 0;
}

static int summary_fields(struct pub_tick *t, const char *res, const struct profile_summary *s)
{
	static const char *const names[] = {"last", "mean",     "p50", "p95", "p99",  "peak",
	                                    "max",  "forecast", "phi", "hot", "over", "n"};
	double v[] = {s->last,    s->mean,        s->p50,          s->p95,
	              s->p99,     s->peak,        s->max,          s->ar1.forecast,
	              s->ar1.phi, s->hot ? 1 : 0, (double)s->over, (double)s->n};
	char hist[HIST_BINS * 11 + 1];
	size_t off = 0;
	int rc = 0;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		rc |= tick_fmt(t, "%s_%s", res, names[i]);
		rc |= tick_fmt(t, i < 9 ? "%.4f" : "%.0f", v[i]);
	}
	for (int i = 0; i < HIST_BINS; i++)
		off += (size_t)snprintf(hist + off, sizeof(hist) - off, i ? ",%u" : "%u",
		                        s->hist.bins[i]);
	rc |= tick_fmt(t, "%s_hist", res);
	rc |= tick_str(t, hist);
	return rc ? -ENOMEM : 0;
}

/* Queues HSET key f v ... from the flat pairs in t[from..]. */
static int append_hset(struct agent *a, const char *key, struct pub_tick *t, size_t from)
{
	const char *argv[MAX_ARGS];
	const char *p = t->data + from, *end = t->data + t->len;
	int n = 0;

	argv[n++] = "HSET";
	argv[n++] = key;
	while (p < end && n + 2 <= MAX_ARGS) {
		argv[n++] = p;
		p += strlen(p) + 1;
		argv[n++] = p;
		p += strlen(p) + 1;
	}
	return store_append(a->redis, n, argv, NULL);
}

/* The heartbeat every tick; the profile hashes (current values, summaries,
 * histograms) when `full`: they change slowly and cost the most to write. */
int publish_profiles(struct agent *a, bool full)
{
	struct pub_tick t = {0};
	double *scratch = NULL;
	int queued = 0, rc = 0;
	char now[32], key[128];

	snprintf(now, sizeof(now), "%lld", (long long)util_now_ms());
	{
		const char *argv[] = {"HSET", key, "last_seen", now};
		snprintf(key, sizeof(key), "host_config:%s", a->o.id);
		if (store_append(a->redis, 4, argv, NULL) == 0)
			queued++;
	}
	if (full)
		scratch = malloc(sizeof(double) * (size_t)a->o.window);
	pthread_mutex_lock(&a->lock);
	for (int i = -1; full && scratch && i < a->nvms; i++) {
		struct profile_summary sum[RES_N];
		struct profile *prof = i < 0 ? a->hprof : a->vms[i]->prof;
		t.len = 0;
		agent_summarize(a, prof, sum, scratch);
		rc |= tick_str(&t, "ts");
		rc |= tick_str(&t, now);
		rc |= tick_str(&t, "host_id");
		rc |= tick_str(&t, a->o.id);
		if (i >= 0) {
			rc |= tick_str(&t, "status");
			rc |= tick_str(&t, vm_status_name(a->vms[i]->last.status));
		}
		for (int r = 0; r < RES_N; r++)
			rc |= summary_fields(&t, res_names[r], &sum[r]);
		if (rc)
			break;
		snprintf(key, sizeof(key), i < 0 ? "profile:host:%s" : "profile:vm:%s",
		         i < 0 ? a->o.id : a->vms[i]->d.id);
		if (append_hset(a, key, &t, 0) < 0)
			break;
		queued++;
	}
	pthread_mutex_unlock(&a->lock);
	free(scratch);
	pub_tick_release(&t);
	for (int i = 0; i < queued; i++) {
		int e = reply_ok(a->redis, store_reply(a->redis), "writing profiles");
		if (e == -EIO)
			return -EIO;
	}
	return rc ? -ENOMEM : 0;
}
