/* controller.c - `loadease controller`: configuration, start-up, the round
 * loop and shutdown (docs/controller.md). */
#include "controller/controller.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cfg_keys.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "controller/ctl.h"

const char *const ctl_mode_names[] = {"off", "recommend", "auto", NULL};
static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
/* in enum plan_objective's order */
static const char *const objectives[] = {"spread", "pack", NULL};

#define O(f) offsetof(struct ctl_opts, f)
#define S(f) O(f), sizeof(((struct ctl_opts *)0)->f)

const struct cfg_key ctl_cfg_keys[] = {
    {"controller", "id", CFG_STR, "", S(id), 0, 0, NULL,
     "this controller's id (letters, digits, `_ . -`); empty = the hostname"},
    {"controller", "address", CFG_STR, "", S(address), 0, 0, NULL,
     "this host's cluster IP (the default listening address); empty = the first non-loopback "
     "IPv4 address"},
    {"controller", "listen", CFG_STR, "", S(listen), 0, 0, NULL,
     "ip:port of the REST API, /metrics and the dashboard (port 0 = any free port); empty = "
     "`<controller.address>:7100`, the cluster address only (`0.0.0.0:7100` = every "
     "interface)"},
    {"controller", "advertise", CFG_STR, "", S(advertise), 0, 0, NULL,
     "ip:port other controllers and the CLI are told (`controller:<id>`); empty = the "
     "listening address"},
    {"controller", "mode", CFG_ENUM, "auto", O(mode), 0, 0, 0, ctl_mode_names,
     "`auto` relieves hotspots and evacuates hosts by live migration; `recommend` plans and "
     "logs but moves nothing; `off` only watches; a mode set at run time (`loadease mode`, "
     "PUT /v1/mode) wins until it is reset"},
    {"controller", "token", CFG_STR, "", S(token), 0, 0, NULL,
     "cluster secret: needed for mutating API calls and sent to the agents; empty = mutating "
     "calls refused"},
    {"controller", "token_file", CFG_STR, "", S(token_file), 0, 0, NULL,
     "file holding the token (overrides `token`; refused unless mode 0600 or stricter and "
     "owned by the controller's user or root)"},
    {"controller", "read_token", CFG_STR, "", S(read_token), 0, 0, NULL,
     "a token that allows read calls only; when set, reads need it or the token"},
    {"controller", "read_token_file", CFG_STR, "", S(read_token_file), 0, 0, NULL,
     "file holding the read-only token (overrides `read_token`)"},
    {"controller", "open_reads", CFG_BOOL, "false", O(open_reads), 0, 0, 0, NULL,
     "read calls need no token while no `read_token` is set (`/healthz` and the dashboard's "
     "files are always open)"},
    {"controller", "round_ms", CFG_INT, "2000", O(round_ms), 0, 100, 600000, NULL,
     "one round (read, plan, act) every this many milliseconds"},
    {"controller", "lease_ms", CFG_INT, "10000", O(lease_ms), 0, 500, 3600000, NULL,
     "leader lease: a standby takes over within this time after the leader dies (at least 2 "
     "rounds)"},
    {"controller", "down_after_ms", CFG_INT, "10000", O(down_after_ms), 0, 500, 86400000, NULL,
     "a host whose heartbeat is older is marked `down`: no target, its VMs unreachable"},
    {"controller", "measure_after_ms", CFG_INT, "10000", O(measure_after_ms), 0, 0, 3600000, NULL,
     "the relief a migration brought is measured and logged this long after it ended"},
    {"controller", "migrate_timeout_ms", CFG_INT, "600000", O(migrate_timeout_ms), 0, 1000,
     86400000, NULL, "how long the controller waits for an agent to finish one migration"},
    {"controller", "decision_log", CFG_STR, "", S(decision_log), 0, 0, NULL,
     "JSON-lines file every decision is appended to (beside the `events` stream); empty = "
     "none"},
    {"controller", "log_file", CFG_STR, "", S(log_file), 0, 0, NULL,
     "file the controller's log is appended to (reopened on SIGHUP); empty = stderr (the "
     "journal under systemd)"},
    {"controller", "web_root", CFG_STR, "", S(web_root), 0, 0, NULL,
     "directory of the dashboard's files (`web/` of the source tree, with `vendor/`); empty = "
     "no dashboard"},
    {"controller", "events_maxlen", CFG_INT, "100000", O(events_maxlen), 0, 100, 100000000, NULL,
     "entries kept in the `events` stream (XADD MAXLEN ~)"},
    {"controller", "window", CFG_INT, "300", O(window), 0, 5, 86400, NULL,
     "samples in each host's and VM's profile window (read from the `ts:*` streams)"},
    {"controller", "log_level", CFG_ENUM, "info", O(log_level), 0, 0, 0, log_levels,
     "log verbosity"},
    CFG_TLS_KEYS,
    CFG_REDIS_KEYS("2000", "5000"),
    CFG_PROFILE_RULE_KEYS,
    {"balance", "max_per_round", CFG_INT, "4", O(max_per_round), 0, 0, 10000, NULL,
     "migrations started per round, cluster-wide"},
    {"balance", "max_per_host", CFG_INT, "2", O(max_per_host), 0, 1, 1000, NULL,
     "migrations into or out of one host at a time"},
    {"balance", "cooldown_s", CFG_INT, "300", O(cooldown_s), 0, 0, 86400, NULL,
     "a VM that moved (or failed to) rests this long before it is moved again"},
    {"balance", "settle_s", CFG_INT, "15", O(settle_s), 0, 0, 3600, NULL,
     "after a migration ends, its VM's demand is moved from the source's to the target's "
     "measured load for this long (their samples catch up), so the source is not relieved "
     "twice and the target not filled twice"},
    {"balance", "link_mbit", CFG_DOUBLE, "1000", O(link_mbit), 0, 1, 1e6, NULL,
     "migration bandwidth assumed for a move's cost, Mbit/s"},
    {"balance", "min_gain", CFG_DOUBLE, "0.0005", O(min_gain), 0, 0, 1e6, NULL,
     "a move must remove this much source volume per second of migration (0 = off)"},
    {"balance", "risk_target", CFG_DOUBLE, "0.2", O(risk_target), 0, 0, 1, NULL,
     "prevention: a host not yet hot whose chance of passing a threshold within the "
     "horizon exceeds this gets a move first (0 = off)"},
    {"balance", "risk_horizon", CFG_INT, "5", O(risk_horizon), 0, 1, 3600, NULL,
     "samples ahead the risk looks"},
    {"balance", "sample_s", CFG_DOUBLE, "1", O(sample_s), 0, 0.01, 3600, NULL,
     "seconds between two samples (the agents' interval_ms / 1000), for the reasons' "
     "wording"},
    {"balance", "swaps", CFG_BOOL, "true", O(swaps), 0, 0, 0, NULL,
     "try swapping two VMs when no single move relieves a hotspot"},
    {"balance", "resize", CFG_BOOL, "true", O(resize), 0, 0, 0, NULL,
     "resize in place before migrating: a VM whose demand reaches its allocation gets more "
     "vCPUs or memory on its own host, up to its domain's maximum, when the host has room "
     "(through the agent: vCPU hot-plug, the balloon)"},
    {"balance", "objective", CFG_ENUM, "spread", O(objective), 0, 0, 0, objectives,
     "spread: relieve and prevent hotspots; pack: also empty the least-loaded hosts onto "
     "fuller ones whose risk stays under half of `risk_target` (needs it above 0), each "
     "emptied host logged as `host_empty` so it can be powered down"},
    {"balance", "headroom_cpu", CFG_DOUBLE, "0", O(headroom[RES_CPU]), 0, 0, 0.99, NULL,
     "fraction of a target's CPU kept free"},
    {"balance", "headroom_mem", CFG_DOUBLE, "0", O(headroom[RES_MEM]), 0, 0, 0.99, NULL,
     "fraction of a target's memory kept free"},
    {"balance", "headroom_net", CFG_DOUBLE, "0", O(headroom[RES_NET]), 0, 0, 0.99, NULL,
     "fraction of a target's network kept free"},
    {"balance", "overcommit_cpu", CFG_DOUBLE, "4", O(overcommit_cpu), 0, 0.1, 100, NULL,
     "allocated vCPUs may reach the host's cores times this"},
    {"balance", "overcommit_mem", CFG_DOUBLE, "1", O(overcommit_mem), 0, 0.1, 100, NULL,
     "allocated memory may reach the host's memory times this"},
    CFG_END,
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: loadease controller [-c FILE] [-s section.key=value]... [--check]\n"
	        "       loadease controller --config-doc\n"
	        "       loadease controller --config-example [-s section.key=value]...\n"
	        "\n"
	        "Watches the cluster through Redis, relieves hotspots by live migration, places\n"
	        "new VMs, evacuates hosts in maintenance, and logs every decision with its\n"
	        "reason. Serves the REST API, /metrics and the dashboard.\n"
	        "\n"
	        "  -c, --config FILE   configuration (INI); see --config-doc\n"
	        "  -s, --set S.K=V     override one key (repeatable)\n"
	        "  --check             validate the configuration and exit\n"
	        "  --config-doc        print every key with its default and meaning\n"
	        "  --config-example    print an example configuration: every key commented out\n"
	        "                      at its default, but those given with -s\n");
}

int ctl_resolve(struct ctl_opts *o, struct round_opts *ro, struct plan_opts *po, char *err,
                size_t errlen)
{
	if (o->objective == PLAN_PACK && o->risk_target <= 0) {
		snprintf(err, errlen,
		         "balance.objective = pack needs balance.risk_target above 0: it is the "
		         "risk every host is kept under while VMs are packed");
		return -EINVAL;
	}
	if (o->k > o->n) {
		snprintf(err, errlen, "profile.k (%lld) must not exceed profile.n (%lld)", o->k,
		         o->n);
		return -EINVAL;
	}
	if (o->n > o->window) {
		snprintf(err, errlen, "profile.n (%lld) must not exceed controller.window (%lld)",
		         o->n, o->window);
		return -EINVAL;
	}
	if (o->lease_ms < 2 * o->round_ms) {
		snprintf(err, errlen,
		         "controller.lease_ms (%lld) must be at least two rounds (2 x round_ms = "
		         "%lld)",
		         o->lease_ms, 2 * o->round_ms);
		return -EINVAL;
	}
	if (!o->id[0]) {
		char h[256];
		if (gethostname(h, sizeof(h)) < 0)
			snprintf(h, sizeof(h), "controller");
		h[60] = '\0';
		for (char *p = h; *p; p++)
			if (!strchr(
			        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
			        *p))
				*p = '_';
		snprintf(o->id, sizeof(o->id), "%s", h);
	}
	if (!util_valid_id(o->id)) {
		snprintf(err, errlen, "controller.id '%s': use 1-64 of A-Z a-z 0-9 _ . -", o->id);
		return -EINVAL;
	}
	if (util_default_listen(o->address, sizeof(o->address), o->listen, sizeof(o->listen),
	                        7100) < 0) {
		snprintf(err, errlen, "controller.listen: controller.address too long");
		return -EINVAL;
	}
	if (o->token_file[0] &&
	    util_read_secret(o->token_file, o->token, sizeof(o->token), err, errlen) < 0)
		return -EINVAL;
	if (o->read_token_file[0] && util_read_secret(o->read_token_file, o->read_token,
	                                              sizeof(o->read_token), err, errlen) < 0)
		return -EINVAL;
	if (o->redis_password_file[0] &&
	    util_read_secret(o->redis_password_file, o->redis.password, sizeof(o->redis.password),
	                     err, errlen) < 0)
		return -EINVAL;
	if (store_opts_problem(&o->redis)[0]) {
		snprintf(err, errlen, "%s", store_opts_problem(&o->redis));
		return -EINVAL;
	}
	if (o->read_token[0] && strcmp(o->read_token, o->token) == 0) {
		snprintf(err, errlen, "controller.read_token must differ from controller.token");
		return -EINVAL;
	}
	if (o->web_root[0] && access(o->web_root, R_OK | X_OK) < 0) {
		snprintf(err, errlen, "controller.web_root %s: %s", o->web_root, strerror(errno));
		return -EINVAL;
	}

	round_opts_defaults(ro);
	ro->peak_pct = o->peak_pct;
	for (int r = 0; r < RES_N; r++) {
		ro->rule[r].threshold = o->threshold[r];
		ro->rule[r].k = (unsigned)o->k;
		ro->rule[r].n = (unsigned)o->n;
	}
	plan_opts_defaults(po);
	po->max_per_round = (int)o->max_per_round;
	po->max_per_host = (int)o->max_per_host;
	po->cooldown_ms = o->cooldown_s * 1000;
	po->link_mbit = o->link_mbit;
	po->min_gain = o->min_gain;
	po->swaps = o->swaps;
	po->resize = o->resize;
	po->objective = o->objective == PLAN_PACK ? PLAN_PACK : PLAN_SPREAD;
	ro->risk.horizon = (unsigned)o->risk_horizon;
	po->risk = ro->risk;
	po->risk_target = o->risk_target;
	po->sample_s = o->sample_s;
	return 0;
}

static struct ctl *the_ctl;

static void on_signal(int sig)
{
	if (!the_ctl)
		return;
	if (sig == SIGHUP)
		the_ctl->reload = 1;
	else
		the_ctl->stop = 1;
}

static void sleep_ms(int64_t ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&t, NULL);
}

static void round_once(struct ctl *c)
{
	int64_t t0 = util_mono_ns();
	bool up = store_ensure(c->redis, util_mono_ms());
	int rc = -EIO;

	if (c->reload) {
		c->reload = 0;
		ctl_reload(c);
	}
	if (up) {
		ctl_lease(c);
		ctl_rt_refresh(c, c->redis); /* the mode and windows set at run time */
		rc = ctl_refresh(c);
	}
	if (rc == 0) {
		ctl_decide(c);
		ctl_measure_due(c);
	}
	pthread_mutex_lock(&c->lock);
	if (!up || rc == -EIO) {
		if (c->leader)
			ctl_event(c, "leader_lost", "msg", "redis is unreachable: not acting",
			          NULL);
		__atomic_store_n(&c->leader, false, __ATOMIC_RELEASE);
	}
	c->redis_up = up && rc != -EIO;
	c->round++;
	c->m.rounds++;
	c->last_round_ms = util_now_ms();
	c->round_took_ms = (double)(util_mono_ns() - t0) / 1e6;
	c->m.round_s = c->round_took_ms / 1000.0;
	pthread_mutex_unlock(&c->lock);
}

static void *loop_main(void *arg)
{
	struct ctl *c = arg;
	int64_t next = util_mono_ms();

	while (!c->stop) {
		round_once(c);
		next += c->o.round_ms;
		if (next < util_mono_ms())
			next = util_mono_ms(); /* a round that overran: no burst */
		while (!c->stop && util_mono_ms() < next)
			sleep_ms(next - util_mono_ms() < 100 ? next - util_mono_ms() : 100);
	}
	return NULL;
}

static int start_threads(struct ctl *c, char *err, size_t errlen)
{
	sigset_t set, old;
	int rc = 0;

	/* other threads never take SIGINT/SIGTERM/SIGHUP: the main thread does */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	{
		char *cert = NULL, *key = NULL, who[96];
		snprintf(who, sizeof(who), "controller %s", c->o.id);
		if (tls_setup(&c->o.tls, who, &cert, &key, err, errlen) == 0)
			c->http =
			    httpd_new_tls(c->o.listen, cert, key, ctl_api_handle, c, err, errlen);
		free(cert);
		free(key);
	}
	if (!c->http) {
		rc = -EIO;
		goto out;
	}
	if (c->o.advertise[0]) {
		snprintf(c->advertise, sizeof(c->advertise), "%s", c->o.advertise);
	} else {
		char host[128] = "";
		int port = 0;
		util_split_hostport(c->o.listen, host, sizeof(host), &port);
		snprintf(c->advertise, sizeof(c->advertise), "%s:%d",
		         host[0] && strcmp(host, "0.0.0.0") ? host : c->o.address,
		         httpd_port(c->http));
	}
	c->events_started = pthread_create(&c->events_thread, NULL, ctl_events_follow, c) == 0;
	c->loop_started = pthread_create(&c->loop_thread, NULL, loop_main, c) == 0;
	if (!c->loop_started) {
		snprintf(err, errlen, "cannot start the loop thread");
		rc = -EIO;
	}
out:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static void ctl_free(struct ctl *c)
{
	if (!c)
		return;
	httpd_free(c->http);
	ctl_state_free(c);
	store_free(c->redis);
	store_free(c->aux);
	if (c->dlog)
		fclose(c->dlog);
	free(c->scratch);
	free(c->raw);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->aux_lock);
	pthread_mutex_destroy(&c->prov_lock);
	pthread_mutex_destroy(&c->dlog_lock);
	pthread_cond_destroy(&c->ev_cond);
	free(c);
}

int controller_main(int argc, char **argv)
{
	const char *cfg_path = NULL;
	const char **sets = calloc((size_t)argc + 1, sizeof(char *));
	struct ctl *c = calloc(1, sizeof(*c));
	int nsets = 0, rc = 1;
	bool check = false, example = false;
	char err[600];

	if (!c || !sets) {
		fprintf(stderr, "loadease controller: out of memory\n");
		goto out;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->aux_lock, NULL);
	pthread_mutex_init(&c->prov_lock, NULL);
	pthread_mutex_init(&c->dlog_lock, NULL);
	pthread_cond_init(&c->ev_cond, NULL);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			rc = 0;
			goto out;
		} else if (!strcmp(a, "--config-doc")) {
			cfg_print_doc(ctl_cfg_keys, stdout);
			rc = 0;
			goto out;
		} else if (!strcmp(a, "--config-example")) {
			example = true;
		} else if (!strcmp(a, "--check")) {
			check = true;
		} else if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
			cfg_path = argv[++i];
		} else if ((!strcmp(a, "-s") || !strcmp(a, "--set")) && i + 1 < argc) {
			sets[nsets++] = argv[++i];
		} else {
			fprintf(stderr, "loadease controller: unknown or incomplete option '%s'\n",
			        a);
			usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (example) {
		cfg_print_example(ctl_cfg_keys, sets, nsets, stdout);
		rc = 0;
		goto out;
	}
	c->raw = calloc(1, sizeof(*c->raw));
	if (!c->raw || cfg_load(ctl_cfg_keys, &c->o, cfg_path, sets, nsets, err, sizeof(err)) < 0) {
		fprintf(stderr, "loadease controller: configuration: %s\n",
		        c->raw ? err : "out of memory");
		rc = 2;
		goto out;
	}
	*c->raw = c->o;
	c->cfg_path = cfg_path;
	c->sets = sets;
	c->nsets = nsets;
	if (ctl_resolve(&c->o, &c->ro, &c->po, err, sizeof(err)) < 0) {
		fprintf(stderr, "loadease controller: configuration: %s\n", err);
		rc = 2;
		goto out;
	}
	log_set_level((enum log_level)c->o.log_level);
	if (check) {
		rc = ctl_check(c) ? 1 : 0;
		goto out;
	}
	if (log_to_file(c->o.log_file) < 0) {
		fprintf(stderr, "loadease controller: log_file %s: %s\n", c->o.log_file,
		        strerror(errno));
		rc = 2;
		goto out;
	}
	if (c->o.decision_log[0]) {
		c->dlog = fopen(c->o.decision_log, "ae");
		if (!c->dlog) {
			fprintf(stderr, "loadease controller: decision_log %s: %s\n",
			        c->o.decision_log, strerror(errno));
			rc = 2;
			goto out;
		}
	}
	c->scratch = malloc(sizeof(double) * ROUND_SCRATCH(c->o.window));
	c->redis = store_new(&c->o.redis);
	c->aux = store_new(&c->o.redis);
	if (!c->scratch || !c->redis || !c->aux) {
		fprintf(stderr, "loadease controller: out of memory\n");
		goto out;
	}
	the_ctl = c;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (start_threads(c, err, sizeof(err)) < 0) {
		fprintf(stderr, "loadease controller: %s\n", err);
		c->stop = 1;
		goto join;
	}
	log_info("controller %s: mode %s, API on %s://%s (advertised %s), redis %s, a round "
	         "every %lld ms",
	         c->o.id, ctl_mode_names[c->o.mode], tls_scheme(&c->o.tls), c->o.listen,
	         c->advertise, c->o.redis.address, c->o.round_ms);
	while (!c->stop)
		sleep_ms(100);
	log_info("controller %s: stopping", c->o.id);
	rc = 0;
join:
	if (c->loop_started)
		pthread_join(c->loop_thread, NULL);
	if (c->events_started)
		pthread_join(c->events_thread, NULL);
	{
		/* migrations in flight go on at the agents; give ours a moment to
		 * record their end, then leave them to the next controller */
		int64_t deadline = util_mono_ms() + 3000;
		for (;;) {
			int n;
			pthread_mutex_lock(&c->lock);
			n = c->nmigs + c->nresizes;
			pthread_mutex_unlock(&c->lock);
			if (!n)
				break;
			if (util_mono_ms() > deadline) {
				log_warn(
				    "controller %s: %d migration(s) or resize(s) still running "
				    "at the agents; the next controller reconciles them",
				    c->o.id, n);
				free(sets);
				httpd_free(c->http);
				return rc; /* their threads still use the state */
			}
			sleep_ms(100);
		}
	}
	if (c->leader && store_connected(c->redis))
		freeReplyObject(store_command(c->redis, "EVAL %s 1 leader %s",
		                              "if redis.call('GET', KEYS[1]) == ARGV[1] then "
		                              "return redis.call('DEL', KEYS[1]) end return 0",
		                              c->o.id));
out:
	free(sets);
	the_ctl = NULL;
	ctl_free(c);
	return rc;
}
