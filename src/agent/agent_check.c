/* agent_check.c - the agent's `--check` (what a start would trip on) and its
 * SIGHUP reload (README, "Install"). */
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/daemon_check.h"
#include "common/log.h"

static void check_redis_conn(struct check_ctx *x)
{
	struct agent *a = x->user;

	check_redis(x, &a->o.redis);
}

static void check_libvirt(struct check_ctx *x)
{
	struct agent *a = x->user;
	char err[512];
	int n = -1;

	if (!a->o.vm_enabled) {
		check_ok(x, "libvirt: not used (vm.enabled = false: monitoring only)");
		return;
	}
	if (virt_probe(a->o.vm.uri, &n, err, sizeof(err)) < 0)
		check_fail(x, "%s (vm.enabled = false only monitors)", err);
	else
		check_ok(x, "libvirt at %s: reachable, %d running domain(s)", a->o.vm.uri, n);
}

static void check_dirs(struct check_ctx *x)
{
	struct agent *a = x->user;
	struct stat st;
	char parent[300];

	if (!a->o.vm_enabled)
		return;
	check_dir(x, "vm.images_dir (images)", a->o.vm.images_dir, false);
	/* the agent makes the state directory itself when its parent allows */
	if (stat(a->o.vm.state_dir, &st) == 0 || errno != ENOENT) {
		check_dir(x, "vm.state_dir (state)", a->o.vm.state_dir, true);
		return;
	}
	snprintf(parent, sizeof(parent), "%s", a->o.vm.state_dir);
	*(strrchr(parent, '/') ? strrchr(parent, '/') : parent) = '\0';
	if (access(parent[0] ? parent : "/", W_OK | X_OK) < 0)
		check_fail(x, "vm.state_dir (state) %s: missing, and %s: %s", a->o.vm.state_dir,
		           parent[0] ? parent : "/", strerror(errno));
	else
		check_ok(x, "vm.state_dir (state) %s: will be created", a->o.vm.state_dir);
}

static void check_bridge(struct check_ctx *x)
{
	struct agent *a = x->user;
	char path[300];
	struct stat st;

	if (!a->o.vm_enabled)
		return;
	if (!if_nametoindex(a->o.vm.bridge)) {
		check_fail(x,
		           "bridge %s (vm.bridge): no such interface (the VMs join it: ip link "
		           "add %s type bridge)",
		           a->o.vm.bridge, a->o.vm.bridge);
		return;
	}
	snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", a->o.vm.bridge);
	if (stat(path, &st) < 0)
		check_fail(x, "bridge %s (vm.bridge): an interface, but not a bridge",
		           a->o.vm.bridge);
	else
		check_ok(x, "bridge %s (vm.bridge): a bridge", a->o.vm.bridge);
}

static bool executable_in(const char *dir, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", dir, name);
	return access(out, X_OK) == 0;
}

static void check_qemu(struct check_ctx *x)
{
	static const char *const dirs[] = {"/usr/bin", "/usr/local/bin", "/usr/libexec", NULL};
	struct agent *a = x->user;
	struct utsname u;
	char name[96], path[512];

	if (!a->o.vm_enabled)
		return;
	if (a->o.vm.dx.emulator[0]) {
		if (access(a->o.vm.dx.emulator, X_OK) < 0)
			check_fail(x, "qemu %s (vm.emulator): %s", a->o.vm.dx.emulator,
			           strerror(errno));
		else
			check_ok(x, "qemu %s (vm.emulator): executable", a->o.vm.dx.emulator);
		return;
	}
	uname(&u);
	snprintf(name, sizeof(name), "qemu-system-%s", u.machine);
	for (int i = 0; dirs[i]; i++) {
		if (executable_in(dirs[i], name, path, sizeof(path))) {
			check_ok(x, "qemu %s: executable (libvirt's default emulator)", path);
			return;
		}
	}
	check_fail(x,
	           "qemu: no %s in /usr/bin, /usr/local/bin or /usr/libexec (install "
	           "qemu-system-x86, or set vm.emulator)",
	           name);
}

/* The checks, in order; more are more rows. */
static const struct check agent_checks[] = {
    {"redis", check_redis_conn},
    {"libvirt", check_libvirt},
    {"dirs", check_dirs},
    {"bridge", check_bridge},
    {"qemu", check_qemu},
    {"files", check_config_files},
    {NULL, NULL},
};

int agent_check(struct agent *a)
{
	struct check_ctx x = {.out = stdout, .keys = agent_cfg_keys, .opts = &a->o, .user = a};
	const char *path = a->cfg_path ? a->cfg_path : "(defaults)";

	check_ok(&x, "configuration %s: host %s, %g cores, %.0f MiB, %.0f Mbit/s, %d NIC(s)", path,
	         a->o.id, a->so.cpus, a->so.mem_mib, a->so.net_mbit, a->so.nnics);
	check_run(&x, agent_checks);
	printf("%s: %d check(s) passed, %d failed\n", x.failed ? "FAIL" : "ok", x.passed, x.failed);
	return x.failed;
}

/* What SIGHUP may change while the agent runs; the rest (its id, addresses,
 * the host's capacities, Redis, the VM layer) needs a restart. */
static const char *const runtime_keys[] = {
    "agent.token",
    "agent.token_file",
    "agent.log_level",
    "agent.log_file",
    "agent.interval_ms",
    "profile.percentile",
    "profile.cpu_threshold",
    "profile.mem_threshold",
    "profile.net_threshold",
    "profile.k",
    "profile.n",
    "redis.profile_every",
    "redis.registry_every",
    "redis.flush_budget_ms",
    NULL,
};

void agent_reload(struct agent *a)
{
	struct agent *t = calloc(1, sizeof(*t));
	struct agent_opts *raw = calloc(1, sizeof(*raw));
	char err[512], changed[1024];
	int n, lrc;

	if (!t || !raw) {
		log_error("reload (SIGHUP): out of memory; the running configuration stays");
		goto out;
	}
	if (cfg_load(agent_cfg_keys, raw, a->cfg_path, a->sets, a->nsets, err, sizeof(err)) < 0) {
		log_error("reload (SIGHUP): %s; the running configuration stays", err);
		goto out;
	}
	t->o = *raw;
	if (agent_resolve(t, err, sizeof(err)) < 0) {
		log_error("reload (SIGHUP): %s; the running configuration stays", err);
		goto out;
	}
	pthread_mutex_lock(&a->lock);
	n = cfg_apply_changes(agent_cfg_keys, runtime_keys, a->raw, raw, &a->o, &t->o, changed,
	                      sizeof(changed));
	/* the token file's content may have changed under the same path */
	memcpy(a->o.token, t->o.token, sizeof(a->o.token));
	if (a->o.n > a->o.window)
		a->o.n = a->o.window; /* profile.window needs a restart; n stays within it */
	for (int r = 0; r < RES_N; r++) {
		a->rule[r].threshold = a->o.threshold[r];
		a->rule[r].k = (unsigned)a->o.k;
		a->rule[r].n = (unsigned)a->o.n;
	}
	pthread_mutex_unlock(&a->lock);
	lrc = log_to_file(a->o.log_file);
	if (lrc < 0)
		log_error("reload (SIGHUP): log_file %s: %s", a->o.log_file, strerror(-lrc));
	log_set_level((enum log_level)a->o.log_level);
	log_info("reload (SIGHUP): configuration read again; %d key(s) changed%s%s", n,
	         n ? ": " : "", changed);
out:
	free(t);
	free(raw);
}
