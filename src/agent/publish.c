/* publish.c - everything the agent says to and reads from Redis: its
 * registration, the VMs the registry lists for it, the ts:* streams (through
 * a bounded backlog that survives Redis outages) and the profile:* hashes. */
#include <errno.h>
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

int publish_registry_read(struct agent *a, struct vm_desc **out, int *n)
{
	redisReply *ids = NULL, *r;
	struct vm_desc *d = NULL;
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
	if (!d) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ids->elements; i++) {
		const char *id = ids->element[i]->str;
		const char *argv[] = {"HMGET", NULL,  "pid",        "tap_device",
		                      "mem",   "cpu", "guest_stats"};
		char key[128];
		if (ids->element[i]->type != REDIS_REPLY_STRING || !util_valid_id(id))
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
	freeReplyObject(ids);
	return rc;
}

static int addf(struct store_args *f, const char *name, const char *fmt, double v)
{
	if (store_args_add(f, name) < 0)
		return -ENOMEM;
	return store_args_addf(f, fmt, v);
}

static int host_fields(const struct agent *a, struct store_args *f)
{
	const struct host_sample *h = &a->hlast;
	int rc = 0;

	rc |= store_args_add(f, "seq");
	rc |= store_args_addf(f, "%llu", (unsigned long long)h->seq);
	rc |= store_args_add(f, "ts");
	rc |= store_args_addf(f, "%lld", (long long)h->ts_ms);
	if (h->valid_cpu) {
		rc |= addf(f, "cpu", "%.4f", h->cpu);
		rc |= addf(f, "cpu_busy_cores", "%.3f", h->cpu_busy_cores);
		rc |= addf(f, "cpu_iowait", "%.4f", h->cpu_iowait);
		rc |= addf(f, "cpu_steal", "%.4f", h->cpu_steal);
		rc |= addf(f, "cpu_irq", "%.4f", h->cpu_irq);
		rc |= addf(f, "io_overhead", "%.4f", h->io_overhead);
	}
	if (h->valid_mem) {
		rc |= addf(f, "mem", "%.4f", h->mem);
		rc |= addf(f, "mem_used_mib", "%.1f", h->mem_used_mib);
		rc |= addf(f, "mem_avail_mib", "%.1f", h->mem_avail_mib);
		rc |= addf(f, "swap_used_mib", "%.1f", h->swap_used_mib);
		rc |= addf(f, "swap_in_ps", "%.2f", h->swap_in_ps);
		rc |= addf(f, "swap_out_ps", "%.2f", h->swap_out_ps);
	}
	if (h->valid_net) {
		rc |= addf(f, "net", "%.4f", h->net);
		rc |= addf(f, "net_rx_bps", "%.0f", h->net_rx_bps);
		rc |= addf(f, "net_tx_bps", "%.0f", h->net_tx_bps);
	}
	if (h->has_psi) {
		rc |= addf(f, "psi_cpu_some", "%.2f", h->psi_cpu_some);
		rc |= addf(f, "psi_mem_some", "%.2f", h->psi_mem_some);
		rc |= addf(f, "psi_mem_full", "%.2f", h->psi_mem_full);
		rc |= addf(f, "psi_io_some", "%.2f", h->psi_io_some);
		rc |= addf(f, "psi_io_full", "%.2f", h->psi_io_full);
	}
	return rc ? -ENOMEM : 0;
}

static int vm_fields(const struct vm_sample *s, struct store_args *f)
{
	int rc = 0;

	rc |= store_args_add(f, "seq");
	rc |= store_args_addf(f, "%llu", (unsigned long long)s->seq);
	rc |= store_args_add(f, "ts");
	rc |= store_args_addf(f, "%lld", (long long)s->ts_ms);
	rc |= store_args_add(f, "status");
	rc |= store_args_add(f, vm_status_name(s->status));
	if (s->problem[0]) {
		rc |= store_args_add(f, "problem");
		rc |= store_args_add(f, s->problem);
	}
	if (s->valid_cpu) {
		rc |= addf(f, "cpu", "%.4f", s->cpu);
		rc |= addf(f, "cpu_host", "%.4f", s->cpu_host);
		rc |= addf(f, "cpu_io_overhead", "%.4f", s->cpu_io_overhead);
	}
	if (s->valid_mem) {
		rc |= addf(f, "mem", "%.4f", s->mem);
		rc |= addf(f, "rss_mib", "%.1f", s->rss_mib);
		rc |= addf(f, "swap_mib", "%.1f", s->swap_mib);
		if (s->gray) {
			rc |= addf(f, "guest_used_mib", "%.1f", s->guest_used_mib);
			rc |= addf(f, "guest_avail_mib", "%.1f", s->guest_avail_mib);
			rc |= addf(f, "guest_swap_in_bps", "%.0f", s->guest_swap_in_bps);
			rc |= addf(f, "guest_swap_out_bps", "%.0f", s->guest_swap_out_bps);
			rc |= addf(f, "guest_majflt_ps", "%.2f", s->guest_majflt_ps);
		}
	}
	if (s->valid_net) {
		rc |= addf(f, "net", "%.4f", s->net);
		rc |= addf(f, "rx_bps", "%.0f", s->rx_bps);
		rc |= addf(f, "tx_bps", "%.0f", s->tx_bps);
		rc |= addf(f, "rx_pps", "%.1f", s->rx_pps);
		rc |= addf(f, "tx_pps", "%.1f", s->tx_pps);
		rc |= addf(f, "rx_drop_ps", "%.1f", s->rx_drop_ps);
		rc |= addf(f, "tx_drop_ps", "%.1f", s->tx_drop_ps);
	}
	if (s->has_tap) {
		rc |= store_args_add(f, "tap_rx_bytes");
		rc |= store_args_addf(f, "%llu", (unsigned long long)s->tap.rx_bytes);
		rc |= store_args_add(f, "tap_tx_bytes");
		rc |= store_args_addf(f, "%llu", (unsigned long long)s->tap.tx_bytes);
	}
	if (s->valid_disk) {
		rc |= addf(f, "disk_rd_bps", "%.0f", s->disk_rd_bps);
		rc |= addf(f, "disk_wr_bps", "%.0f", s->disk_wr_bps);
	}
	return rc ? -ENOMEM : 0;
}

void pub_tick_release(struct pub_tick *t)
{
	for (int i = 0; i < t->n; i++)
		store_args_release(&t->r[i].f);
	free(t->r);
	t->r = NULL;
	t->n = 0;
}

int publish_build_tick(struct agent *a, struct pub_tick *t)
{
	t->n = 0;
	t->r = calloc((size_t)a->nvms + 1, sizeof(*t->r));
	if (!t->r)
		return -ENOMEM;
	snprintf(t->r[0].key, sizeof(t->r[0].key), "ts:host:%s", a->o.id);
	t->r[0].ts_ms = a->hlast.ts_ms;
	t->n = 1;
	if (host_fields(a, &t->r[0].f) < 0)
		goto fail;
	for (int i = 0; i < a->nvms; i++) {
		struct pub_record *rec = &t->r[t->n++];
		snprintf(rec->key, sizeof(rec->key), "ts:vm:%s", a->vms[i]->d.id);
		rec->ts_ms = a->vms[i]->last.ts_ms;
		if (vm_fields(&a->vms[i]->last, &rec->f) < 0)
			goto fail;
	}
	return 0;
fail:
	pub_tick_release(t);
	return -ENOMEM;
}

void publish_enqueue(struct agent *a, struct pub_tick *t)
{
	struct backlog *bl = &a->bl;

	if (bl->len == bl->cap) {
		pub_tick_release(&bl->t[bl->head]);
		bl->head = (bl->head + 1) % bl->cap;
		bl->len--;
		if (bl->dropped++ == 0 || bl->dropped % 100 == 0)
			log_warn("backlog full (%d samples): dropped the oldest, %llu so far",
			         bl->cap, (unsigned long long)bl->dropped);
	}
	bl->t[(bl->head + bl->len) % bl->cap] = *t;
	bl->len++;
	t->r = NULL;
	t->n = 0;
}

void backlog_release(struct backlog *bl)
{
	for (int i = 0; i < bl->len; i++)
		pub_tick_release(&bl->t[(bl->head + i) % bl->cap]);
	free(bl->t);
	memset(bl, 0, sizeof(*bl));
}

/* Sends one tick as MULTI, XADD..., EXEC. 0 when Redis took it (an entry it
 * already had counts as taken: a tick re-sent after a lost EXEC reply), -EIO
 * when the connection failed (the tick stays queued). */
static int send_tick(struct agent *a, struct pub_tick *t)
{
	static const char *const multi[] = {"MULTI"}, *const exec[] = {"EXEC"};
	char maxlen[32], id[48];
	struct store_args cmd = {0};
	redisReply *r;
	int rc = 0;

	snprintf(maxlen, sizeof(maxlen), "%lld", a->o.stream_maxlen);
	if (store_append(a->redis, 1, (const char **)multi, NULL) < 0)
		return -EIO;
	for (int i = 0; i < t->n; i++) {
		struct pub_record *rec = &t->r[i];
		store_args_reset(&cmd);
		snprintf(id, sizeof(id), "%lld-0", (long long)rec->ts_ms);
		if (store_args_add(&cmd, "XADD") || store_args_add(&cmd, rec->key) ||
		    store_args_add(&cmd, "MAXLEN") || store_args_add(&cmd, "~") ||
		    store_args_add(&cmd, maxlen) || store_args_add(&cmd, id)) {
			rc = -ENOMEM;
			break;
		}
		for (int j = 0; j < rec->f.n; j++)
			if (store_args_add(&cmd, rec->f.argv[j]) < 0)
				rc = -ENOMEM;
		if (rc || store_append(a->redis, cmd.n, (const char **)cmd.argv, cmd.lens) < 0) {
			rc = rc ? rc : -EIO;
			break;
		}
	}
	store_args_release(&cmd);
	if (rc == -ENOMEM) {
		/* the pipeline holds a partial MULTI: start over on a fresh connection */
		store_drop(a->redis, "out of memory building a transaction");
		return -EIO;
	}
	if (store_append(a->redis, 1, (const char **)exec, NULL) < 0)
		return -EIO;
	for (int i = 0; i < t->n + 1; i++) {
		r = store_reply(a->redis);
		if (!r)
			return -EIO;
		freeReplyObject(r);
	}
	r = store_reply(a->redis);
	if (!r)
		return -EIO;
	if (r->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < r->elements; i++) {
			redisReply *e = r->element[i];
			if (e->type != REDIS_REPLY_ERROR)
				continue;
			if (strstr(e->str, "equal or smaller")) {
				a->duplicate_entries++;
				log_debug("redis: %s already has entry %lld-0", t->r[i].key,
				          (long long)t->r[i].ts_ms);
			} else {
				log_warn("redis: XADD %s: %s", t->r[i].key, e->str);
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
		bl->t[bl->head].r = NULL;
		bl->t[bl->head].n = 0;
		bl->head = (bl->head + 1) % bl->cap;
		bl->len--;
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

static int summary_fields(struct store_args *f, const char *res, const struct profile_summary *s)
{
	int rc = 0;
	char name[48], hist[HIST_BINS * 11 + 1];
	size_t off = 0;

#define P(suffix, fmt, v)                                                                          \
	do {                                                                                       \
		snprintf(name, sizeof(name), "%s_%s", res, suffix);                                \
		rc |= addf(f, name, fmt, v);                                                       \
	} while (0)
	P("last", "%.4f", s->last);
	P("mean", "%.4f", s->mean);
	P("p50", "%.4f", s->p50);
	P("p95", "%.4f", s->p95);
	P("p99", "%.4f", s->p99);
	P("peak", "%.4f", s->peak);
	P("max", "%.4f", s->max);
	P("forecast", "%.4f", s->ar1.forecast);
	P("phi", "%.4f", s->ar1.phi);
	P("hot", "%.0f", s->hot ? 1.0 : 0.0);
	P("over", "%.0f", (double)s->over);
	P("n", "%.0f", (double)s->n);
#undef P
	for (int i = 0; i < HIST_BINS; i++)
		off += (size_t)snprintf(hist + off, sizeof(hist) - off, i ? ",%u" : "%u",
		                        s->hist.bins[i]);
	snprintf(name, sizeof(name), "%s_hist", res);
	rc |= store_args_add(f, name);
	rc |= store_args_add(f, hist);
	return rc ? -ENOMEM : 0;
}

/* The current profiles and the heartbeat, overwritten every tick (no backlog:
 * only the newest matters). */
int publish_profiles(struct agent *a)
{
	struct store_args f = {0};
	int queued = 0, rc = 0;
	char now[32];

	snprintf(now, sizeof(now), "%lld", (long long)util_now_ms());
	pthread_mutex_lock(&a->lock);
	{
		const char *argv[] = {"HSET", NULL, "last_seen", now};
		char key[128];
		snprintf(key, sizeof(key), "host_config:%s", a->o.id);
		argv[1] = key;
		if (store_append(a->redis, 4, argv, NULL) == 0)
			queued++;
	}
	for (int i = -1; i < a->nvms; i++) {
		const struct profile_summary *sum = i < 0 ? a->hsum : a->vms[i]->sum;
		store_args_reset(&f);
		if (store_args_add(&f, "HSET") < 0 ||
		    store_args_addf(&f, i < 0 ? "profile:host:%s" : "profile:vm:%s",
		                    i < 0 ? a->o.id : a->vms[i]->d.id) < 0 ||
		    store_args_add(&f, "ts") < 0 || store_args_add(&f, now) < 0 ||
		    store_args_add(&f, "host_id") < 0 || store_args_add(&f, a->o.id) < 0) {
			rc = -ENOMEM;
			break;
		}
		if (i >= 0 && (store_args_add(&f, "status") < 0 ||
		               store_args_add(&f, vm_status_name(a->vms[i]->last.status)) < 0)) {
			rc = -ENOMEM;
			break;
		}
		for (int r = 0; r < RES_N; r++)
			if (summary_fields(&f, res_names[r], &sum[r]) < 0)
				rc = -ENOMEM;
		if (rc || store_append(a->redis, f.n, (const char **)f.argv, f.lens) < 0)
			break;
		queued++;
	}
	pthread_mutex_unlock(&a->lock);
	store_args_release(&f);
	for (int i = 0; i < queued; i++) {
		int e = reply_ok(a->redis, store_reply(a->redis), "writing profiles");
		if (e == -EIO)
			return -EIO;
	}
	return rc;
}
