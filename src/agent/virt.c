/* virt.c - the VM layer on libvirt: the domains of this host and the
 * registry that follows them; see virt.h. Migration is in virt_migrate.c. */
#include "agent/virt.h"
#include "agent/virt_int.h"

#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "agent/netif.h"
#include "common/util.h"

/* --- small helpers ------------------------------------------------------ */

void virt_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

const char *virt_lasterr(const char *what)
{
	const char *m = virGetLastErrorMessage();

	return m && strcmp(m, "no error") != 0 ? m : what;
}

void virt_vm_id(const char *name, const char *uuid, char *out, size_t cap)
{
	char buf[65];
	size_t n = 0;

	if (util_valid_id(name) && strlen(name) < cap) {
		snprintf(out, cap, "%s", name);
		return;
	}
	for (const char *p = name; *p && n < 55; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		buf[n] = ok && !(n == 0 && (c == '.' || c == '-')) ? c : '_';
		n++;
	}
	buf[n] = '\0';
	snprintf(out, cap, "%s-%.8s", n ? buf : "vm", uuid);
}

struct virt_dom *virt_find(struct virt *v, const char *id)
{
	for (int i = 0; i < v->n; i++)
		if (strcmp(v->doms[i]->id, id) == 0)
			return v->doms[i];
	return NULL;
}

static struct virt_dom *find_uuid(struct virt *v, const char *uuid)
{
	for (int i = 0; i < v->n; i++)
		if (strcmp(v->doms[i]->uuid, uuid) == 0)
			return v->doms[i];
	return NULL;
}

static void remove_dom(struct virt *v, struct virt_dom *d)
{
	for (int i = 0; i < v->n; i++)
		if (v->doms[i] == d) {
			v->doms[i] = v->doms[--v->n];
			break;
		}
	free(d);
}

virConnectPtr virt_conn(struct virt *v)
{
	virConnectPtr c;

	pthread_mutex_lock(&v->lock);
	c = v->conn && !v->conn_dead ? v->conn : NULL;
	if (c)
		virConnectRef(c);
	pthread_mutex_unlock(&v->lock);
	return c;
}

bool virt_connected(struct virt *v)
{
	virConnectPtr c = virt_conn(v);

	if (c)
		virConnectClose(c);
	return c != NULL;
}

bool virt_redis_up(struct virt *v)
{
	return store_ensure(v->redis, util_mono_ms());
}

/* The VM of the API call this thread runs for a controller that logs the
 * action itself ("" = none): the call's thread runs the whole action. */
static __thread char caller_logs[65];

void virt_caller_logs(const char *vm)
{
	snprintf(caller_logs, sizeof(caller_logs), "%s", vm ? vm : "");
}

/* The entries of an action's outcome, which its caller may log instead. */
static bool action_event(const char *type)
{
	static const char *const types[] = {"vm_created",       "vm_deleted", "migration_done",
	                                    "migration_failed", "vm_resized", "vm_resize_failed"};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(type, types[i]) == 0)
			return true;
	return false;
}

void virt_event(struct virt *v, const char *type, const char *vm, const char *msg)
{
	/* a VM lost on the way, or another VM's news, is always this host's to say */
	if (caller_logs[0] && strcmp(caller_logs, vm) == 0 && action_event(type))
		return;
	if (!virt_redis_up(v))
		return;
	freeReplyObject(store_command(v->redis,
	                              "XADD events MAXLEN ~ 100000 * type %s host %s vm %s ts %lld "
	                              "msg %s",
	                              type, v->o.host_id, vm, (long long)util_now_ms(), msg));
}

/* host and port of a libvirt URI such as qemu+tcp://10.0.0.2/system or
 * qemu+tls://host1:16514/system; false for local URIs. */
static bool uri_hostport(const char *uri, char *host, size_t cap, int *port)
{
	const char *p = strstr(uri, "://"), *end;
	size_t n;

	if (!p)
		return false;
	*port = strncmp(uri, "qemu+tls", 8) == 0   ? 16514
	        : strncmp(uri, "qemu+ssh", 8) == 0 ? 22
	                                           : 16509;
	p += 3;
	if (*p == '/' || *p == '\0')
		return false;
	if (strchr(p, '@') && strchr(p, '@') < strchr(p, '/'))
		p = strchr(p, '@') + 1;
	end = p + strcspn(p, ":/?");
	n = (size_t)(end - p);
	if (n == 0 || n >= cap)
		return false;
	memcpy(host, p, n);
	host[n] = '\0';
	if (*end == ':')
		*port = atoi(end + 1);
	return true;
}

/* Does host:port accept a TCP connection within ms? (libvirt's own connect
 * has no timeout: a host whose link is cut would hold the caller for the
 * kernel's SYN retries, minutes.) */
static bool tcp_answers(const char *host, int port, int ms)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	char ps[16];
	bool ok = false;
	int fd;

	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(host, ps, &hints, &ai) != 0 || !ai)
		return false;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			ok = true;
		} else if (errno == EINPROGRESS) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			ok = poll(&p, 1, ms) == 1 &&
			     getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0;
		}
		close(fd);
	}
	freeaddrinfo(ai);
	return ok;
}

virConnectPtr virt_open_peer(struct virt *v, const char *uri, char *err, size_t errlen)
{
	char host[256];
	int port;
	virConnectPtr c;

	if (uri_hostport(uri, host, sizeof(host), &port) &&
	    !tcp_answers(host, port, v->o.peer_timeout_ms)) {
		snprintf(err, errlen, "libvirt at %s does not answer within %d ms", uri,
		         v->o.peer_timeout_ms);
		return NULL;
	}
	c = virConnectOpen(uri);
	if (!c) {
		snprintf(err, errlen, "libvirt at %s: %s", uri, virt_lasterr("cannot connect"));
		return NULL;
	}
	/* a peer that stops answering (its link cut, its host gone) is noticed
	 * within about 8 s: a migration's outcome and a conflict are decided
	 * from this connection, and the caller waits for it */
	virConnectSetKeepAlive(c, 2, 3);
	return c;
}

/* --- what a domain is ---------------------------------------------------- */

static int read_pid(const struct virt *v, const char *name)
{
	char path[600], buf[32], proc[64];
	size_t len = 0;
	int64_t pid;

	if (util_fmt(path, sizeof(path), "%s/%s.pid", v->o.pid_dir, name) < 0 ||
	    util_read_file("/", path, buf, sizeof(buf) - 1, &len) < 0)
		return 0;
	buf[len] = '\0';
	buf[strcspn(buf, "\n ")] = '\0';
	if (!util_parse_i64(buf, &pid) || pid <= 1 || pid >= 1 << 30)
		return 0;
	snprintf(proc, sizeof(proc), "/proc/%lld", (long long)pid);
	return access(proc, F_OK) == 0 ? (int)pid : 0;
}

/* Paused on the way in or out of a migration (or still starting): the host
 * that owned it before keeps it until libvirt says where it runs. */
static bool in_transit(int state, int reason)
{
	if (state != VIR_DOMAIN_PAUSED)
		return false;
	return reason == VIR_DOMAIN_PAUSED_MIGRATION || reason == VIR_DOMAIN_PAUSED_STARTING_UP ||
	       reason == VIR_DOMAIN_PAUSED_POSTCOPY || reason == VIR_DOMAIN_PAUSED_POSTCOPY_FAILED;
}

static const char *state_name(int state)
{
	switch (state) {
	case VIR_DOMAIN_RUNNING:
		return "running";
	case VIR_DOMAIN_BLOCKED:
		return "blocked";
	case VIR_DOMAIN_PAUSED:
		return "paused";
	case VIR_DOMAIN_SHUTDOWN:
		return "shutting_down";
	case VIR_DOMAIN_PMSUSPENDED:
		return "suspended";
	case VIR_DOMAIN_CRASHED:
		return "crashed";
	default:
		return "unknown";
	}
}

/* One listed domain, read without the lock. */
struct listed {
	virDomainPtr dom;
	char uuid[VIR_UUID_STRING_BUFLEN];
	char name[256];
	int domid, state, reason;
	bool job;
	bool need_xml;
	int vcpus, mem_mib; /* virDomainGetInfo's: a change made elsewhere (virsh) */
	struct domxml_info x;
	int pid;
	bool ok;
};

static void read_listed(struct virt *v, struct listed *l)
{
	virDomainJobInfo ji;
	char err[200];
	char *xml;
	const char *name;

	l->ok = false;
	if (virDomainGetUUIDString(l->dom, l->uuid) < 0 || !(name = virDomainGetName(l->dom)))
		return;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->domid = (int)virDomainGetID(l->dom);
	if (virDomainGetState(l->dom, &l->state, &l->reason, 0) < 0)
		return; /* gone meanwhile */
	l->job = virDomainGetJobInfo(l->dom, &ji) == 0 && ji.type != VIR_DOMAIN_JOB_NONE;
	if (!l->need_xml && l->vcpus >= 0) {
		/* resized since its XML was read (virsh setvcpus, setmem, the
		 * balloon moving): read it again */
		virDomainInfo info;
		if (virDomainGetInfo(l->dom, &info) == 0 &&
		    ((int)info.nrVirtCpu != l->vcpus || (int)(info.memory >> 10) != l->mem_mib))
			l->need_xml = true;
	}
	if (l->need_xml) {
		xml = virDomainGetXMLDesc(l->dom, 0);
		if (!xml)
			return;
		if (domxml_parse(xml, strlen(xml), &l->x, err, sizeof(err)) < 0) {
			log_warn("domain %s: its XML cannot be read: %s", l->name, err);
			free(xml);
			return;
		}
		free(xml);
		l->pid = read_pid(v, l->name);
	}
	l->ok = true;
}

/* --- the registry -------------------------------------------------------- */

/* Claims vm_configs:<id> for this host: KEYS vm_configs:<id>,
 * vms_in_host:<me>, migration:<id>; ARGV me, id, force, settle, then field
 * value pairs. Another host that lists the VM keeps it ("conflict", unless
 * force or a migration record names this host as its destination); the
 * move from another host's set to this one is atomic. A VM this host is
 * migrating (settle 0) that the record's destination has claimed already
 * (it runs there: the source's copy is finishing) is left to it, no
 * conflict. Fields are written
 * only when one differs. settle: this host has the VM running and no
 * migration of it runs: a migration record that names this host is done. */
static const char claim_lua[] =
    "local me, id = ARGV[1], ARGV[2]\n"
    "local owner = redis.call('HGET', KEYS[1], 'host_id')\n"
    "if ARGV[4] ~= '1' and ARGV[3] ~= '1' and owner and owner ~= me and\n"
    "   redis.call('HGET', KEYS[3], 'src') == me and\n"
    "   redis.call('HGET', KEYS[3], 'dst') == owner then\n"
    "  return {'same', owner}\n"
    "end\n"
    "if owner and owner ~= me and owner ~= '' and ARGV[3] ~= '1' and\n"
    "   redis.call('HGET', KEYS[1], 'state') ~= 'creating' and\n"
    "   redis.call('SISMEMBER', 'vms_in_host:' .. owner, id) == 1 and\n"
    "   redis.call('HGET', KEYS[3], 'dst') ~= me then\n"
    "  return {'conflict', owner}\n"
    "end\n"
    "local changed = 0\n"
    "if owner and owner ~= me and owner ~= '' then\n"
    "  redis.call('SREM', 'vms_in_host:' .. owner, id)\n"
    "  changed = 1\n"
    "end\n"
    "if owner ~= me then changed = 1 end\n"
    "if changed == 0 then\n"
    "  for i = 5, #ARGV, 2 do\n"
    "    if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then changed = 1 break end\n"
    "  end\n"
    "end\n"
    "if changed == 1 then\n"
    "  local a = {'host_id', me}\n"
    "  for i = 5, #ARGV do a[#a + 1] = ARGV[i] end\n"
    "  redis.call('HSET', KEYS[1], unpack(a))\n"
    "end\n"
    "if redis.call('SADD', KEYS[2], id) == 1 then changed = 1 end\n"
    "if ARGV[4] == '1' then\n"
    "  local s = redis.call('HGET', KEYS[3], 'src')\n"
    "  local d = redis.call('HGET', KEYS[3], 'dst')\n"
    "  if s == me or d == me then redis.call('DEL', KEYS[3]) end\n"
    "end\n"
    "return {changed == 1 and 'claimed' or 'same', owner or ''}\n";

/* Releases a VM this host no longer runs: KEYS vm_configs:<id>,
 * vms_in_host:<me>, migration:<id>; ARGV me, id, now (ms), patience (ms).
 * 2 when its entry went (this host owned it), 1 when only this host's set
 * named it, 0 when nothing changed. A VM this host is migrating away (its
 * record younger than patience) stays: the destination takes it over. */
static const char release_lua[] =
    "local src = redis.call('HGET', KEYS[3], 'src')\n"
    "local t = tonumber(redis.call('HGET', KEYS[3], 'started') or '0') or 0\n"
    "if src == ARGV[1] and tonumber(ARGV[3]) - t < tonumber(ARGV[4]) then return 0 end\n"
    "if src == ARGV[1] then redis.call('DEL', KEYS[3]) end\n"
    "local n = redis.call('SREM', KEYS[2], ARGV[2])\n"
    "local owner = redis.call('HGET', KEYS[1], 'host_id')\n"
    "if owner == ARGV[1] and redis.call('HGET', KEYS[1], 'state') ~= 'creating' then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  return 2\n"
    "end\n"
    "return n\n";

static int run_lua(struct virt *v, const char *script, int nkeys, const char **keys, int nargs,
                   const char **args, redisReply **out)
{
	const char *argv[96];
	char nk[8];
	int n = 0;
	redisReply *r;

	if (3 + nkeys + nargs > (int)(sizeof(argv) / sizeof(argv[0])))
		return -E2BIG;
	snprintf(nk, sizeof(nk), "%d", nkeys);
	argv[n++] = "EVAL";
	argv[n++] = script;
	argv[n++] = nk;
	for (int i = 0; i < nkeys; i++)
		argv[n++] = keys[i];
	for (int i = 0; i < nargs; i++)
		argv[n++] = args[i];
	r = store_commandv(v->redis, n, argv, NULL);
	if (!r)
		return -EIO;
	if (r->type == REDIS_REPLY_ERROR) {
		log_complain(&v->redis_down, util_mono_ms(), LOG_LVL_WARN, "registry: %s", r->str);
		freeReplyObject(r);
		return -EPROTO;
	}
	if (out)
		*out = r;
	else
		freeReplyObject(r);
	return 0;
}

/* 1 claimed or unchanged, 0 conflict (*owner set), negative on failure. */
static int claim(struct virt *v, const struct virt_dom *d, bool force, char *owner, size_t ocap)
{
	char k1[128], k2[128], k3[128], pid[16], mem[16], cpu[16], maxmem[16], maxcpu[16];
	char port[16] = "0", gs[600];
	const char *keys[3] = {k1, k2, k3}, *args[64];
	const char *colon = strrchr(v->o.api_addr, ':');
	const struct domxml_info *x = &d->x;
	redisReply *r = NULL;
	int n = 0, rc;

	if (colon)
		snprintf(port, sizeof(port), "%s", colon + 1);
	snprintf(k1, sizeof(k1), "vm_configs:%s", d->id);
	snprintf(k2, sizeof(k2), "vms_in_host:%s", v->o.host_id);
	snprintf(k3, sizeof(k3), "migration:%s", d->id);
	snprintf(pid, sizeof(pid), "%d", d->pid);
	snprintf(mem, sizeof(mem), "%d", x->mem_mib);
	snprintf(cpu, sizeof(cpu), "%d", x->vcpus);
	snprintf(maxmem, sizeof(maxmem), "%d", x->max_mem_mib);
	snprintf(maxcpu, sizeof(maxcpu), "%d", x->max_vcpus);
	snprintf(gs, sizeof(gs), "%s/vms/%s/guest-stats.json", v->o.state_dir, d->id);
	args[n++] = v->o.host_id;
	args[n++] = d->id;
	args[n++] = force ? "1" : "0";
	args[n++] = !d->migrating && !d->job ? "1" : "0";
#define KV(k, val) (args[n++] = (k), args[n++] = (val))
	KV("name", x->name);
	KV("uuid", d->uuid);
	KV("mem", mem);
	KV("cpu", cpu);
	KV("max_mem", maxmem);
	KV("max_cpu", maxcpu);
	KV("disk", x->disk);
	KV("image_path", x->disk[0] ? x->disk : x->kernel);
	KV("initrd", x->initrd);
	KV("append", x->cmdline);
	KV("pid", pid);
	KV("tap_device", x->nnics ? x->nic[0].target : "");
	KV("mac", x->nnics ? x->nic[0].mac : "");
	KV("bridge", x->nnics ? x->nic[0].bridge : "");
	KV("rpc_port", port);
	KV("state", state_name(d->state));
	KV("guest_stats", x->has_balloon ? gs : "");
	KV("serial_socket", x->guestload_socket);
	KV("domain_type", x->type);
	KV("managed", x->has_meta ? "1" : "0");
	if (x->has_meta) {
		/* rules travel in the domain's metadata; for domains LoadEase did not
		 * define, rules set in the registry are left as they are */
		KV("pin", x->pin);
		KV("group", x->group);
		KV("anti_group", x->anti_group);
		KV("exclude", x->exclude ? "1" : "0");
	}
#undef KV
	rc = run_lua(v, claim_lua, 3, keys, n, args, &r);
	if (rc < 0)
		return rc;
	rc = -EPROTO;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[1]->type == REDIS_REPLY_STRING) {
		snprintf(owner, ocap, "%s", r->element[1]->str);
		if (strcmp(r->element[0]->str, "conflict") == 0) {
			rc = 0;
		} else {
			rc = 1;
			if (strcmp(r->element[0]->str, "claimed") == 0)
				log_info(
				    "vm %s: registered on host %s (domain %s, qemu pid %d, tap "
				    "%s%s%s)",
				    d->id, v->o.host_id, x->name, d->pid,
				    x->nnics ? x->nic[0].target : "-",
				    owner[0] && strcmp(owner, v->o.host_id) ? ", was on " : "",
				    owner[0] && strcmp(owner, v->o.host_id) ? owner : "");
		}
	}
	freeReplyObject(r);
	return rc;
}

static int release(struct virt *v, const char *id)
{
	char k1[128], k2[128], k3[128], now[24], patience[24];
	const char *keys[3] = {k1, k2, k3}, *args[4] = {v->o.host_id, id, now, patience};
	redisReply *r = NULL;
	int rc;

	snprintf(k1, sizeof(k1), "vm_configs:%s", id);
	snprintf(k2, sizeof(k2), "vms_in_host:%s", v->o.host_id);
	snprintf(k3, sizeof(k3), "migration:%s", id);
	snprintf(now, sizeof(now), "%lld", (long long)util_now_ms());
	snprintf(patience, sizeof(patience), "%lld", (long long)v->o.migrate_timeout_ms + 60000);
	rc = run_lua(v, release_lua, 3, keys, 4, args, &r);
	if (rc < 0)
		return rc;
	rc = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -EPROTO;
	freeReplyObject(r);
	return rc;
}

/* The owner another host claims: does its libvirt really run the domain?
 * true when it does not (or the host is down), so this host takes it. */
static bool owner_lost_it(struct virt *v, const char *owner, const char *uuid)
{
	char uri[300] = "", err[300];
	redisReply *r;
	virConnectPtr c;
	virDomainPtr dom;
	int state = 0, reason = 0;
	bool lost = false;

	pthread_mutex_lock(&v->lock);
	r = store_command(v->redis, "HMGET host_config:%s libvirt_uri state", owner);
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
		if (r->element[0]->type == REDIS_REPLY_STRING)
			snprintf(uri, sizeof(uri), "%s", r->element[0]->str);
		if (r->element[1]->type != REDIS_REPLY_STRING ||
		    strcmp(r->element[1]->str, "up") != 0)
			lost = true; /* down, gone or monitoring only */
	}
	freeReplyObject(r);
	pthread_mutex_unlock(&v->lock);
	if (lost || !uri[0])
		return true;
	c = virt_open_peer(v, uri, err, sizeof(err));
	if (!c) {
		log_warn("vm with uuid %s: host %s claims it but %s", uuid, owner, err);
		return false; /* unknown: ask again next round */
	}
	dom = virDomainLookupByUUIDString(c, uuid);
	lost = !dom || virDomainGetState(dom, &state, &reason, 0) < 0 ||
	       !(state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_BLOCKED ||
	         (state == VIR_DOMAIN_PAUSED && !in_transit(state, reason)));
	if (dom)
		virDomainFree(dom);
	virConnectClose(c);
	return lost;
}

/* --- reconcile ----------------------------------------------------------- */

static void rm_state(const struct virt *v, const char *id);

int virt_reconcile(struct virt *v)
{
	virConnectPtr c = virt_conn(v);
	virDomainPtr *list = NULL;
	struct listed *ls = NULL;
	redisReply *members = NULL;
	char conflicts[16][65], cuuid[16][VIR_UUID_STRING_BUFLEN], cowner[16][65];
	int nl, nconf = 0, rc = 0;

	if (!c)
		return -ENOTCONN;
	/* one at a time: a round that listed earlier must not merge after one
	 * that listed later */
	pthread_mutex_lock(&v->reconcile_lock);
	nl = virConnectListAllDomains(c, &list, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	if (nl < 0) {
		pthread_mutex_unlock(&v->reconcile_lock);
		log_complain(&v->lv_down, util_mono_ms(), LOG_LVL_WARN,
		             "libvirt: listing the domains: %s", virt_lasterr("failed"));
		virConnectClose(c);
		return -EIO;
	}
	ls = calloc((size_t)nl + 1, sizeof(*ls));
	if (!ls) {
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < nl; i++) {
		struct virt_dom *d;
		ls[i].dom = list[i];
		if (virDomainGetUUIDString(list[i], ls[i].uuid) < 0)
			continue;
		pthread_mutex_lock(&v->lock);
		d = find_uuid(v, ls[i].uuid);
		ls[i].need_xml =
		    !d || d->domid != (int)virDomainGetID(list[i]) || !d->pid || d->reread;
		ls[i].vcpus = d && !d->transit && !d->migrating ? d->x.vcpus : -1;
		ls[i].mem_mib = d ? d->x.mem_mib : -1;
		if (d)
			d->reread = false;
		pthread_mutex_unlock(&v->lock);
		read_listed(v, &ls[i]);
	}

	pthread_mutex_lock(&v->lock);
	for (int i = 0; i < v->n; i++)
		v->doms[i]->seen = false;
	for (int i = 0; i < nl; i++) {
		struct listed *l = &ls[i];
		struct virt_dom *d;
		if (!l->ok)
			continue;
		d = find_uuid(v, l->uuid);
		if (!d && !l->need_xml)
			continue; /* dropped meanwhile: the next round reads it */
		if (!d) {
			if (v->n == v->cap) {
				int cap = v->cap ? v->cap * 2 : 16;
				struct virt_dom **nd = realloc(v->doms, (size_t)cap * sizeof(*nd));
				if (!nd)
					continue;
				v->doms = nd;
				v->cap = cap;
			}
			d = calloc(1, sizeof(*d));
			if (!d)
				continue;
			snprintf(d->uuid, sizeof(d->uuid), "%s", l->uuid);
			v->doms[v->n++] = d;
		}
		if (l->need_xml) {
			d->x = l->x;
			d->pid = l->pid;
			virt_vm_id(l->x.name[0] ? l->x.name : l->name, l->uuid, d->id,
			           sizeof(d->id));
		}
		d->domid = l->domid;
		d->state = l->state;
		d->reason = l->reason;
		d->job = l->job;
		d->transit = in_transit(l->state, l->reason);
		d->seen = true;
	}
	for (int i = v->n - 1; i >= 0; i--)
		if (!v->doms[i]->seen && !v->doms[i]->stopping) {
			char gone[sizeof(v->doms[i]->id)];
			log_info("vm %s: domain %s no longer runs on host %s", v->doms[i]->id,
			         v->doms[i]->x.name, v->o.host_id);
			snprintf(gone, sizeof(gone), "%s", v->doms[i]->id);
			remove_dom(v, v->doms[i]);
			if (!virt_find(v, gone))
				rm_state(v, gone); /* its balloon statistics */
		}

	if (!virt_redis_up(v)) {
		log_complain(&v->redis_down, util_mono_ms(), LOG_LVL_WARN,
		             "registry: Redis unreachable; the registry is brought up to date when "
		             "it is back");
		rc = -EIO;
		goto unlock;
	}
	for (int i = 0; i < v->n; i++) {
		struct virt_dom *d = v->doms[i];
		char owner[65] = "";
		int r;
		if (d->transit || !d->seen)
			continue; /* in transit, or being deleted (virt_delete releases it) */
		if (d->migrating)
			continue; /* leaving: virt_migrate() settles where it runs */
		if (d->job)
			v->job_seen = true; /* look again soon: the job's end sends no event */
		r = claim(v, d, false, owner, sizeof(owner));
		if (r < 0) {
			rc = r;
			continue;
		}
		/* a domain in a libvirt job (a migration this agent did not start, or
		 * one a restart interrupted) is settled when the job ends, not
		 * contested meanwhile */
		if (r == 0 && !d->job && nconf < 16) {
			snprintf(conflicts[nconf], sizeof(conflicts[0]), "%s", d->id);
			snprintf(cuuid[nconf], sizeof(cuuid[0]), "%s", d->uuid);
			snprintf(cowner[nconf], sizeof(cowner[0]), "%s", owner);
			nconf++;
		}
	}
	members = store_command(v->redis, "SMEMBERS vms_in_host:%s", v->o.host_id);
	for (size_t i = 0; members && members->type == REDIS_REPLY_ARRAY && i < members->elements;
	     i++) {
		const char *id = members->element[i]->str;
		int r;
		if (members->element[i]->type != REDIS_REPLY_STRING)
			continue;
		if (virt_find(v, id))
			continue;
		r = release(v, id);
		if (r > 0)
			rm_state(v, id); /* stopped while this agent was not looking */
		if (r == 2) {
			log_info("vm %s: not running on host %s: left the registry", id,
			         v->o.host_id);
			virt_event(v, "vm_stopped", id, "its domain no longer runs");
		} else if (r < 0) {
			rc = r;
		}
	}
	if (!members || members->type != REDIS_REPLY_ARRAY)
		rc = -EIO;
	freeReplyObject(members);
	if (rc == 0)
		log_release(&v->redis_down, LOG_LVL_INFO, "registry: Redis reachable again");
	v->last_reconcile_ms = util_mono_ms();
unlock:
	pthread_mutex_unlock(&v->lock);

	/* another host lists a VM this host runs: whose libvirt is right? */
	for (int i = 0; i < nconf; i++) {
		char owner[65];
		if (owner_lost_it(v, cowner[i], cuuid[i])) {
			pthread_mutex_lock(&v->lock);
			struct virt_dom *d = virt_find(v, conflicts[i]);
			if (d && claim(v, d, true, owner, sizeof(owner)) == 1) {
				char msg[200];
				snprintf(msg, sizeof(msg),
				         "runs here; host %s listed it but does not run it",
				         cowner[i]);
				virt_event(v, "vm_adopted", d->id, msg);
				d->conflict_logged = false;
			}
			pthread_mutex_unlock(&v->lock);
		} else {
			pthread_mutex_lock(&v->lock);
			struct virt_dom *d = virt_find(v, conflicts[i]);
			if (d && !d->conflict_logged) {
				char msg[200];
				d->conflict_logged = true;
				snprintf(msg, sizeof(msg),
				         "a domain with this name also runs on host %s; the "
				         "registry keeps "
				         "it there",
				         cowner[i]);
				log_error("vm %s: %s", d->id, msg);
				virt_event(v, "vm_conflict", d->id, msg);
			}
			pthread_mutex_unlock(&v->lock);
		}
	}
out:
	pthread_mutex_unlock(&v->reconcile_lock);
	for (int i = 0; i < nl; i++)
		virDomainFree(list[i]);
	free(list);
	free(ls);
	virConnectClose(c);
	return rc;
}

/* --- balloon statistics -------------------------------------------------- */

/* libvirt's balloon.* (KiB, counts) as the guest-stats JSON the sampler
 * reads (balloon.h: QEMU's names and units). */
static void write_guest_stats(const struct virt *v, const char *id, virTypedParameterPtr p, int np)
{
	static const struct {
		const char *lv, *qemu;
		unsigned long long mul;
	} map[] = {
	    {"balloon.available", "stat-total-memory", 1024},
	    {"balloon.unused", "stat-free-memory", 1024},
	    {"balloon.usable", "stat-available-memory", 1024},
	    {"balloon.swap_in", "stat-swap-in", 1024},
	    {"balloon.swap_out", "stat-swap-out", 1024},
	    {"balloon.major_fault", "stat-major-faults", 1},
	    {"balloon.minor_fault", "stat-minor-faults", 1},
	    {"balloon.disk_caches", "stat-disk-caches", 1024},
	};
	char path[700], tmp[720], dir[600];
	unsigned long long val, lu = 0;
	json_t *stats = json_object(), *j;
	bool any = false;

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (virTypedParamsGetULLong(p, np, map[i].lv, &val) == 1) {
			json_object_set_new(stats, map[i].qemu,
			                    json_integer((json_int_t)(val * map[i].mul)));
			any = true;
		}
	virTypedParamsGetULLong(p, np, "balloon.last-update", &lu);
	j = json_pack("{s:o,s:I}", "stats", stats, "last-update", (json_int_t)lu);
	snprintf(dir, sizeof(dir), "%s/vms/%s", v->o.state_dir, id);
	snprintf(path, sizeof(path), "%s/guest-stats.json", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (any && (mkdir(dir, 0700) == 0 || errno == EEXIST) &&
	    json_dump_file(j, tmp, JSON_COMPACT) == 0)
		rename(tmp, path); /* whole, then renamed: never half a file */
	json_decref(j);
}

static void poll_balloon(struct virt *v)
{
	virConnectPtr c = virt_conn(v);
	virDomainStatsRecordPtr *recs = NULL;
	int n;

	if (!c)
		return;
	/* every VM of the host in one call; NOWAIT: a domain busy with a job
	 * (an incoming migration allows none) is skipped, else this worker, and
	 * with it the reconcile, waits for that job or libvirt's 30 s timeout */
	n = virConnectGetAllDomainStats(c, VIR_DOMAIN_STATS_BALLOON, &recs,
	                                VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE |
	                                    VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT);
	for (int i = 0; i < n; i++) {
		char uuid[VIR_UUID_STRING_BUFLEN], id[65] = "";
		struct virt_dom *d;
		if (virDomainGetUUIDString(recs[i]->dom, uuid) < 0)
			continue;
		pthread_mutex_lock(&v->lock);
		d = find_uuid(v, uuid);
		if (d && !d->transit)
			snprintf(id, sizeof(id), "%s", d->id);
		pthread_mutex_unlock(&v->lock);
		if (id[0])
			write_guest_stats(v, id, recs[i]->params, recs[i]->nparams);
	}
	if (recs)
		virDomainStatsRecordListFree(recs);
	virConnectClose(c);
}

/* --- the connection, its events, the worker ------------------------------ */

static void wake(struct virt *v)
{
	pthread_mutex_lock(&v->lock);
	v->dirty = true;
	pthread_cond_signal(&v->wake);
	pthread_mutex_unlock(&v->lock);
}

static int on_lifecycle(virConnectPtr c, virDomainPtr dom, int event, int detail, void *opaque)
{
	(void)c;
	log_debug("libvirt: domain %s: lifecycle event %d/%d", virDomainGetName(dom), event,
	          detail);
	wake(opaque);
	return 0;
}

/* The balloon moved (a resize, the guest's driver starting, virsh setmem):
 * the registry's mem follows. */
static int on_balloon(virConnectPtr c, virDomainPtr dom, unsigned long long actual, void *opaque)
{
	(void)c;
	log_debug("libvirt: domain %s: balloon at %llu KiB", virDomainGetName(dom), actual);
	wake(opaque);
	return 0;
}

static void on_close(virConnectPtr c, int reason, void *opaque)
{
	struct virt *v = opaque;

	(void)c;
	log_warn("libvirt: the connection to %s closed (reason %d); reconnecting", v->o.uri,
	         reason);
	pthread_mutex_lock(&v->lock);
	v->conn_dead = true;
	pthread_cond_signal(&v->wake);
	pthread_mutex_unlock(&v->lock);
}

static void on_timer(int timer, void *opaque)
{
	(void)timer;
	(void)opaque; /* wakes the event loop so it sees stop */
}

static void *event_main(void *arg)
{
	struct virt *v = arg;

	while (!v->stop)
		if (virEventRunDefaultImpl() < 0)
			virt_sleep_ms(100);
	return NULL;
}

static void disconnect(struct virt *v)
{
	virConnectPtr c;

	pthread_mutex_lock(&v->lock);
	c = v->conn;
	v->conn = NULL;
	v->conn_dead = false;
	pthread_mutex_unlock(&v->lock);
	if (!c)
		return;
	if (v->cb_lifecycle >= 0)
		virConnectDomainEventDeregisterAny(c, v->cb_lifecycle);
	if (v->cb_balloon >= 0)
		virConnectDomainEventDeregisterAny(c, v->cb_balloon);
	v->cb_lifecycle = v->cb_balloon = -1;
	virConnectUnregisterCloseCallback(c, on_close);
	virConnectClose(c);
}

static void try_connect(struct virt *v)
{
	virConnectPtr c;
	int64_t now = util_mono_ms();

	if (now < v->next_connect_ms)
		return;
	c = virConnectOpen(v->o.uri);
	if (!c) {
		log_complain(&v->lv_down, now, LOG_LVL_WARN, "libvirt at %s: %s; retrying",
		             v->o.uri, virt_lasterr("cannot connect"));
		v->backoff_ms = v->backoff_ms ? v->backoff_ms * 2 : 250;
		if (v->backoff_ms > 5000)
			v->backoff_ms = 5000;
		v->next_connect_ms = now + v->backoff_ms;
		return;
	}
	v->backoff_ms = 0;
	virConnectSetKeepAlive(c, 5, 3);
	virConnectRegisterCloseCallback(c, on_close, v, NULL);
	v->cb_lifecycle =
	    virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	                                     VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), v, NULL);
	v->cb_balloon =
	    virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
	                                     VIR_DOMAIN_EVENT_CALLBACK(on_balloon), v, NULL);
	if (v->cb_lifecycle < 0)
		log_warn("libvirt: no domain events (%s); the registry follows by polling every "
		         "%d ms",
		         virt_lasterr("refused"), v->o.reconcile_ms);
	pthread_mutex_lock(&v->lock);
	v->conn = c;
	v->dirty = true;
	pthread_mutex_unlock(&v->lock);
	log_release(&v->lv_down, LOG_LVL_INFO, "libvirt at %s: connected", v->o.uri);
	log_info("libvirt at %s: connected (domains of this host are registered as host %s)",
	         v->o.uri, v->o.host_id);
}

static void *worker_main(void *arg)
{
	struct virt *v = arg;
	int64_t next_stats = 0;

	while (!v->stop) {
		bool dead, dirty, connected;
		int64_t now;
		pthread_mutex_lock(&v->lock);
		dead = v->conn_dead;
		connected = v->conn != NULL;
		pthread_mutex_unlock(&v->lock);
		if (dead)
			disconnect(v);
		if (!connected || dead)
			try_connect(v);
		now = util_mono_ms();
		pthread_mutex_lock(&v->lock);
		dirty = v->dirty || now - v->last_reconcile_ms >= v->o.reconcile_ms;
		v->dirty = false;
		pthread_mutex_unlock(&v->lock);
		if (dirty && virt_connected(v)) {
			int rrc;
			pthread_mutex_lock(&v->lock);
			v->job_seen = false;
			pthread_mutex_unlock(&v->lock);
			rrc = virt_reconcile(v);
			pthread_mutex_lock(&v->lock);
			/* retried soon after a failure, not only at the next period;
			 * a domain in a job is looked at again in half a second */
			if (rrc < 0)
				v->last_reconcile_ms = util_mono_ms() - v->o.reconcile_ms + 1000;
			else if (v->job_seen)
				v->last_reconcile_ms = util_mono_ms() - v->o.reconcile_ms + 500;
			pthread_mutex_unlock(&v->lock);
		}
		if (util_mono_ms() >= next_stats) {
			poll_balloon(v);
			next_stats = util_mono_ms() + v->o.stats_poll_ms;
		}
		{
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += 200 * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_mutex_lock(&v->lock);
			if (!v->dirty && !v->stop && !v->conn_dead)
				pthread_cond_timedwait(&v->wake, &v->lock, &ts);
			pthread_mutex_unlock(&v->lock);
		}
	}
	return NULL;
}

/* --- VM JSON ------------------------------------------------------------- */

static json_t *dom_json(const struct virt *v, const struct virt_dom *d)
{
	const struct domxml_info *x = &d->x;

	return json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,"
	                 "s:s,s:b,s:b}",
	                 "id", d->id, "name", x->name, "uuid", d->uuid, "host", v->o.host_id, "pid",
	                 d->pid, "vcpus", x->vcpus, "mem_mib", x->mem_mib, "max_vcpus",
	                 x->max_vcpus, "max_mem_mib", x->max_mem_mib, "state",
	                 d->transit     ? "migrating"
	                 : d->migrating ? "migrating"
	                                : state_name(d->state),
	                 "tap", x->nnics ? x->nic[0].target : "", "mac",
	                 x->nnics ? x->nic[0].mac : "", "bridge", x->nnics ? x->nic[0].bridge : "",
	                 "kernel", x->kernel, "disk", x->disk, "serial_socket", x->guestload_socket,
	                 "domain_type", x->type, "group", x->group, "anti_group", x->anti_group,
	                 "exclude", x->exclude, "managed", x->has_meta);
}

json_t *virt_list(struct virt *v)
{
	json_t *a = json_array();

	pthread_mutex_lock(&v->lock);
	for (int i = 0; i < v->n; i++)
		json_array_append_new(a, dom_json(v, v->doms[i]));
	pthread_mutex_unlock(&v->lock);
	return a;
}

json_t *virt_get(struct virt *v, const char *id)
{
	struct virt_dom *d;
	json_t *j = NULL;

	pthread_mutex_lock(&v->lock);
	d = virt_find(v, id);
	if (d)
		j = dom_json(v, d);
	pthread_mutex_unlock(&v->lock);
	return j;
}

/* --- create and delete --------------------------------------------------- */

/* Reserves vm_configs:<id> (state creating) unless the id exists anywhere in
 * the cluster: 1 when reserved, 0 when taken. */
static const char reserve_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'name', ARGV[1], 'state', 'creating', 'host_id', ARGV[2])\n"
    "return 1\n";

static void unreserve(struct virt *v, const char *id)
{
	/* only the reservation: a VM registered meanwhile stays */
	freeReplyObject(store_command(v->redis, "EVAL %s 1 vm_configs:%s %s",
	                              "if redis.call('HGET', KEYS[1], 'state') == 'creating' and "
	                              "redis.call('HGET', KEYS[1], 'host_id') == ARGV[1] then "
	                              "redis.call('DEL', KEYS[1]) end return 0",
	                              id, v->o.host_id));
}

static int pick_tap(struct virt *v, struct vm_spec *s)
{
	uint32_t h = fnv1a(s->id);

	for (int i = 0; i < 256; i++) {
		bool used = false;
		snprintf(s->tap, sizeof(s->tap), "lt%08x%02x", h, i);
		for (int j = 0; j < v->n && !used; j++)
			for (int k = 0; k < v->doms[j]->x.nnics; k++)
				used |= strcmp(v->doms[j]->x.nic[k].target, s->tap) == 0;
		if (!used && !netif_exists(s->tap))
			return 0;
	}
	return -EEXIST;
}

static void rm_state(const struct virt *v, const char *id)
{
	char dir[600], f[700];

	snprintf(dir, sizeof(dir), "%s/vms/%s", v->o.state_dir, id);
	snprintf(f, sizeof(f), "%s/guest-stats.json", dir);
	unlink(f);
	snprintf(f, sizeof(f), "%s/guest-stats.json.tmp", dir);
	unlink(f);
	rmdir(dir);
}

static void undefine(virDomainPtr dom)
{
	if (virDomainIsPersistent(dom) == 1 &&
	    virDomainUndefineFlags(
	        dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
	                 VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA) < 0)
		log_warn("domain %s: undefine: %s", virDomainGetName(dom), virt_lasterr("failed"));
}

int virt_create(struct virt *v, const struct vm_spec *spec, json_t **out, int *http, char *err,
                size_t errlen)
{
	struct vm_spec s = *spec;
	struct domxml_opts dx;
	virConnectPtr c = virt_conn(v);
	virDomainPtr dom = NULL;
	char *xml = NULL, e[400] = "";
	bool reserved = false, defined = false, started = false;
	redisReply *r;
	uint32_t h = fnv1a(spec->id);
	int rc = 0;
	int64_t deadline;

	if (out)
		*out = NULL;
	if (!c) {
		*http = 503;
		snprintf(err, errlen, "create vm %s: libvirt at %s is not connected", s.id,
		         v->o.uri);
		return -ENOTCONN;
	}
	pthread_mutex_lock(&v->lock);
	if (virt_find(v, s.id)) {
		pthread_mutex_unlock(&v->lock);
		*http = 409;
		snprintf(err, errlen, "a vm named '%s' already runs on host %s", s.id,
		         v->o.host_id);
		rc = -EEXIST;
		goto out;
	}
	if (!virt_redis_up(v)) {
		pthread_mutex_unlock(&v->lock);
		*http = 503;
		snprintf(err, errlen, "create vm %s: Redis is unreachable: %s", s.id,
		         v->redis->errstr);
		rc = -EIO;
		goto out;
	}
	r = store_command(v->redis, "EVAL %s 1 vm_configs:%s %s %s", reserve_lua, s.id, s.id,
	                  v->o.host_id);
	if (!r || r->type != REDIS_REPLY_INTEGER) {
		*http = 503;
		snprintf(err, errlen, "create vm %s: Redis: %s", s.id,
		         r && r->type == REDIS_REPLY_ERROR ? r->str : v->redis->errstr);
		freeReplyObject(r);
		pthread_mutex_unlock(&v->lock);
		rc = -EIO;
		goto out;
	}
	reserved = r->integer == 1;
	freeReplyObject(r);
	if (reserved && pick_tap(v, &s) < 0) {
		pthread_mutex_unlock(&v->lock);
		*http = 500;
		snprintf(err, errlen, "create vm %s: no free tap name", s.id);
		rc = -EEXIST;
		goto out;
	}
	pthread_mutex_unlock(&v->lock);
	if (!reserved) {
		*http = 409;
		snprintf(err, errlen, "a vm named '%s' already exists in the cluster", s.id);
		rc = -EEXIST;
		goto out;
	}
	dom = virDomainLookupByName(c, s.id);
	if (dom) {
		*http = 409;
		snprintf(err, errlen,
		         "create vm %s: a domain of that name is already defined on host %s", s.id,
		         v->o.host_id);
		rc = -EEXIST;
		goto out;
	}
	/* locally administered, stable for the VM wherever it runs */
	snprintf(s.mac, sizeof(s.mac), "52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff,
	         h & 0xff);
	dx = v->o.dx;
	_Static_assert(sizeof(dx.console_log) >=
	                   sizeof(v->o.console_log_dir) + sizeof(s.id) + sizeof("/-console.log"),
	               "every console log path fits");
	if (v->o.console_log_dir[0])
		snprintf(dx.console_log, sizeof(dx.console_log), "%s/%s-console.log",
		         v->o.console_log_dir, s.id);
	rc = domxml_build(&dx, &s, &xml, e, sizeof(e));
	if (rc < 0) {
		*http = 400;
		snprintf(err, errlen, "create vm %s: %s", s.id, e);
		goto out;
	}
	dom = virDomainDefineXML(c, xml);
	if (!dom) {
		*http = 500;
		snprintf(err, errlen, "create vm %s: libvirt refused its definition: %s", s.id,
		         virt_lasterr("define failed"));
		rc = -EIO;
		goto out;
	}
	defined = true;
	if (virDomainCreate(dom) < 0) {
		*http = 500;
		snprintf(err, errlen, "create vm %s: libvirt could not start it: %s", s.id,
		         virt_lasterr("start failed"));
		rc = -EIO;
		goto out;
	}
	started = true;
	/* registered by the reconcile it triggers (the pid file comes first) */
	deadline = util_mono_ms() + v->o.boot_timeout_ms;
	for (;;) {
		struct virt_dom *d;
		bool done;
		virt_reconcile(v);
		pthread_mutex_lock(&v->lock);
		d = virt_find(v, s.id);
		done = d && d->pid > 0;
		if (done && out)
			*out = dom_json(v, d);
		pthread_mutex_unlock(&v->lock);
		if (done)
			break;
		if (util_mono_ms() > deadline) {
			*http = 500;
			snprintf(err, errlen,
			         "create vm %s: started, but no QEMU pid file in %s after %d ms",
			         s.id, v->o.pid_dir, v->o.boot_timeout_ms);
			rc = -ETIMEDOUT;
			goto out;
		}
		virt_sleep_ms(50);
	}
	pthread_mutex_lock(&v->lock);
	r = store_command(v->redis, "HMGET vm_configs:%s state host_id", s.id);
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "creating") == 0 ||
	    strcmp(r->element[1]->str, v->o.host_id) != 0) {
		freeReplyObject(r);
		pthread_mutex_unlock(&v->lock);
		*http = 503;
		snprintf(err, errlen, "create vm %s: started, but registering it in Redis failed",
		         s.id);
		rc = -EIO;
		goto out;
	}
	freeReplyObject(r);
	virt_event(v, "vm_created", s.id, "defined and started through libvirt");
	pthread_mutex_unlock(&v->lock);
	log_info("vm %s: running (tap %s on %s, %d vCPU, %d MiB, domain type %s)", s.id, s.tap,
	         s.bridge, s.vcpus, s.mem_mib, v->o.dx.domain_type);
	reserved = false;
out:
	if (rc < 0) {
		/* nothing half-made stays: the domain, its definition, the reservation */
		if (started)
			virDomainDestroy(dom);
		if (defined)
			undefine(dom);
		if (out && *out) {
			json_decref(*out);
			*out = NULL;
		}
		if (started || defined)
			virt_reconcile(v);
		pthread_mutex_lock(&v->lock);
		if (reserved)
			unreserve(v, s.id);
		pthread_mutex_unlock(&v->lock);
		/* only a state dir this attempt made: a refused duplicate's id
		 * belongs to a VM that runs */
		if (reserved)
			rm_state(v, s.id);
		log_warn("%s", err);
	}
	if (dom)
		virDomainFree(dom);
	free(xml);
	virConnectClose(c);
	return rc;
}

int virt_delete(struct virt *v, const char *id, int *http, char *err, size_t errlen)
{
	virConnectPtr c = virt_conn(v);
	virDomainPtr dom = NULL;
	struct virt_dom *d;
	char uuid[VIR_UUID_STRING_BUFLEN];
	int64_t deadline;
	int rc = 0;

	if (!c) {
		*http = 503;
		snprintf(err, errlen, "delete vm %s: libvirt at %s is not connected", id, v->o.uri);
		return -ENOTCONN;
	}
	pthread_mutex_lock(&v->lock);
	d = virt_find(v, id);
	if (!d) {
		*http = 404;
		snprintf(err, errlen, "host %s runs no vm '%.64s'", v->o.host_id, id);
		rc = -ENOENT;
	} else if (d->migrating || d->stopping || d->transit || d->resizing) {
		*http = 409;
		snprintf(err, errlen, "vm %s is %s; try again when it is done", id,
		         d->stopping   ? "being deleted"
		         : d->resizing ? "being resized"
		                       : "migrating");
		rc = -EBUSY;
	} else {
		d->stopping = true;
		snprintf(uuid, sizeof(uuid), "%s", d->uuid);
	}
	pthread_mutex_unlock(&v->lock);
	if (rc < 0)
		goto out;
	dom = virDomainLookupByUUIDString(c, uuid);
	if (!dom) {
		*http = 404;
		snprintf(err, errlen, "host %s runs no vm '%.64s' any more", v->o.host_id, id);
		rc = -ENOENT;
		goto done;
	}
	/* ACPI first: the guest may shut down cleanly */
	if (v->o.shutdown_timeout_ms > 0 && virDomainShutdown(dom) == 0) {
		deadline = util_mono_ms() + v->o.shutdown_timeout_ms;
		while (virDomainIsActive(dom) == 1 && util_mono_ms() < deadline)
			virt_sleep_ms(100);
	}
	if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) < 0 &&
	    virDomainIsActive(dom) == 1) {
		*http = 500;
		snprintf(err, errlen, "delete vm %s: libvirt could not stop it: %s", id,
		         virt_lasterr("destroy failed"));
		rc = -EIO;
		goto done;
	}
	undefine(dom);
	log_info("vm %s: deleted", id);
done:
	pthread_mutex_lock(&v->lock);
	d = virt_find(v, id);
	if (d)
		d->stopping = false;
	if (rc == 0) {
		if (d)
			remove_dom(v, d);
		if (!virt_redis_up(v) || release(v, id) < 0)
			log_warn("vm %s: stopped, but Redis is unreachable: its entry leaves the "
			         "registry at the next reconcile",
			         id);
		virt_event(v, "vm_deleted", id, "shut down and undefined");
	}
	pthread_mutex_unlock(&v->lock);
	if (rc == 0)
		rm_state(v, id);
out:
	if (dom)
		virDomainFree(dom);
	virConnectClose(c);
	return rc;
}

/* --- life ---------------------------------------------------------------- */

static void silent(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e; /* errors are reported where they happen, with their context */
}

int virt_probe(const char *uri, int *n, char *err, size_t errlen)
{
	virConnectPtr c;

	virSetErrorFunc(NULL, silent);
	c = virConnectOpen(uri);

	if (!c) {
		snprintf(err, errlen, "libvirt at %s: %s", uri, virt_lasterr("cannot connect"));
		return -ENOTCONN;
	}
	*n = virConnectNumOfDomains(c);
	virConnectClose(c);
	return 0;
}

static pthread_once_t ev_once = PTHREAD_ONCE_INIT;
static int ev_rc;

static void ev_init(void)
{
	ev_rc = virEventRegisterDefaultImpl();
}

struct virt *virt_new(const struct virt_opts *o, char *err, size_t errlen)
{
	struct virt *v = calloc(1, sizeof(*v));
	char path[600];

	if (!v) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	v->o = *o;
	v->cb_lifecycle = v->cb_balloon = -1;
	v->ev_timer = -1;
	pthread_mutex_init(&v->lock, NULL);
	pthread_mutex_init(&v->reconcile_lock, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&v->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	snprintf(path, sizeof(path), "%s/vms", o->state_dir);
	if ((mkdir(o->state_dir, 0755) < 0 && errno != EEXIST) ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST)) {
		snprintf(err, errlen, "state directory %s: %s", path, strerror(errno));
		goto fail;
	}
	if (o->console_log_dir[0] && o->console_log_dir[0] != '/') {
		snprintf(err, errlen, "vm.console_log_dir must be an absolute path, not '%s'",
		         o->console_log_dir);
		goto fail;
	}
	if (strcmp(o->dx.domain_type, "kvm") != 0 && strcmp(o->dx.domain_type, "qemu") != 0) {
		snprintf(err, errlen, "vm.domain_type must be kvm or qemu, not '%s'",
		         o->dx.domain_type);
		goto fail;
	}
	v->redis = store_new(&o->redis);
	if (!v->redis) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return v;
fail:
	pthread_cond_destroy(&v->wake);
	pthread_mutex_destroy(&v->reconcile_lock);
	pthread_mutex_destroy(&v->lock);
	free(v);
	return NULL;
}

int virt_start(struct virt *v, char *err, size_t errlen)
{
	pthread_once(&ev_once, ev_init);
	if (ev_rc < 0) {
		snprintf(err, errlen, "libvirt event loop: %s", virt_lasterr("cannot register"));
		return -EIO;
	}
	virSetErrorFunc(NULL, silent);
	/* the loop wakes at least every 500 ms, so it notices stop */
	v->ev_timer = virEventAddTimeout(500, on_timer, v, NULL);
	v->ev_started = pthread_create(&v->ev_thread, NULL, event_main, v) == 0;
	v->worker_started = pthread_create(&v->worker, NULL, worker_main, v) == 0;
	if (!v->ev_started || !v->worker_started) {
		snprintf(err, errlen, "cannot start the VM layer's threads");
		return -EAGAIN;
	}
	return 0;
}

void virt_free(struct virt *v)
{
	if (!v)
		return;
	pthread_mutex_lock(&v->lock);
	v->stop = true;
	pthread_cond_broadcast(&v->wake);
	pthread_mutex_unlock(&v->lock);
	if (v->worker_started)
		pthread_join(v->worker, NULL);
	disconnect(v);
	if (v->ev_started)
		pthread_join(v->ev_thread, NULL);
	if (v->ev_timer >= 0)
		virEventRemoveTimeout(v->ev_timer);
	/* the VMs keep running: only the layer's handles go */
	for (int i = 0; i < v->n; i++)
		free(v->doms[i]);
	free(v->doms);
	store_free(v->redis);
	pthread_cond_destroy(&v->wake);
	pthread_mutex_destroy(&v->reconcile_lock);
	pthread_mutex_destroy(&v->lock);
	free(v);
}
