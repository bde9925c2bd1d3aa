/* vmm.c - the QEMU driver; see vmm.h. */
#include "agent/vmm.h"
#include "agent/vmm_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/netif.h"
#include "agent/qmp.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/util.h"

/* --- small helpers ------------------------------------------------------ */

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

void vmm_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Alive and not a zombie (a daemonized QEMU is reaped by whoever is init;
 * until then it must not count as running). */
static bool pid_alive(int pid)
{
	char path[64], buf[512];
	size_t len;
	const char *p;

	if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (util_read_file("/", path, buf, sizeof(buf), &len) < 0)
		return false;
	p = strrchr(buf, ')');
	return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

struct vmm_vm *vmm_find(struct vmm *v, const char *id)
{
	for (int i = 0; i < v->n; i++)
		if (strcmp(v->vms[i]->s.id, id) == 0)
			return v->vms[i];
	return NULL;
}

void vmm_vm_free(struct vmm_vm *vm)
{
	if (!vm)
		return;
	qmp_close(vm->q);
	free(vm);
}

int vmm_add_vm(struct vmm *v, struct vmm_vm *vm)
{
	if (v->n == v->cap) {
		int cap = v->cap ? v->cap * 2 : 16;
		struct vmm_vm **nv = realloc(v->vms, sizeof(*nv) * (size_t)cap);
		if (!nv)
			return -ENOMEM;
		v->vms = nv;
		v->cap = cap;
	}
	v->vms[v->n++] = vm;
	return 0;
}

void vmm_remove_vm(struct vmm *v, struct vmm_vm *vm)
{
	for (int i = 0; i < v->n; i++)
		if (v->vms[i] == vm) {
			v->vms[i] = v->vms[--v->n];
			break;
		}
	vmm_vm_free(vm);
}

int vmm_rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[PATH_MAX];

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	return rmdir(dir) < 0 ? -errno : 0;
}

/* --- validation ------------------------------------------------------- */

/* Resolves rel (relative to images_dir, or absolute) and checks that it is a
 * regular file inside images_dir: no "..", no symlink out. */
int vmm_resolve_image(const struct vmm_opts *o, const char *field, const char *rel, char *out,
                      size_t cap, char *err, size_t errlen)
{
	char base[PATH_MAX], joined[PATH_MAX], real[PATH_MAX];
	struct stat st;
	size_t bl;

	if (!realpath(o->images_dir, base)) {
		snprintf(err, errlen, "images directory %s: %s", o->images_dir, strerror(errno));
		return -EINVAL;
	}
	if (rel[0] == '/')
		snprintf(joined, sizeof(joined), "%s", rel);
	else if (util_fmt(joined, sizeof(joined), "%s/%s", base, rel) < 0) {
		snprintf(err, errlen, "%s: path too long", field);
		return -EINVAL;
	}
	if (!realpath(joined, real)) {
		snprintf(err, errlen, "%s '%s': %s", field, rel, strerror(errno));
		return -EINVAL;
	}
	bl = strlen(base);
	if (strncmp(real, base, bl) != 0 || real[bl] != '/') {
		snprintf(err, errlen, "%s '%s' is outside the images directory %s", field, rel,
		         base);
		return -EINVAL;
	}
	if (stat(real, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s '%s' is not a regular file", field, rel);
		return -EINVAL;
	}
	if (strlen(real) >= cap) {
		snprintf(err, errlen, "%s: path too long", field);
		return -EINVAL;
	}
	strcpy(out, real);
	return 0;
}

static int get_int(json_t *req, const char *k, int lo, int hi, int *out, bool required, char *err,
                   size_t errlen)
{
	json_t *j = json_object_get(req, k);

	if (!j) {
		if (required) {
			snprintf(err, errlen, "'%s' is required", k);
			return -EINVAL;
		}
		return 0;
	}
	if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi) {
		snprintf(err, errlen, "'%s' must be an integer from %d to %d", k, lo, hi);
		return -EINVAL;
	}
	*out = (int)json_integer_value(j);
	return 0;
}

static int get_str(json_t *req, const char *k, char *out, size_t cap, char *err, size_t errlen)
{
	json_t *j = json_object_get(req, k);

	if (!j || json_is_null(j))
		return 0;
	if (!json_is_string(j) || strlen(json_string_value(j)) >= cap) {
		snprintf(err, errlen, "'%s' must be a string of at most %zu characters", k,
		         cap - 1);
		return -EINVAL;
	}
	strcpy(out, json_string_value(j));
	return 0;
}

int vmm_spec_from_json(const struct vmm_opts *o, json_t *req, struct vm_spec *s, char *err,
                       size_t errlen)
{
	static const char *const known[] = {"name",       "vcpus",   "mem_mib", "kernel", "initrd",
	                                    "disk",       "append",  "bridge",  "pin",    "group",
	                                    "anti_group", "exclude", NULL};
	char rel[512];
	const char *k;
	json_t *val;

	memset(s, 0, sizeof(*s));
	s->vcpus = 1;
	json_object_foreach(req, k, val)
	{
		bool ok = false;
		for (int i = 0; known[i]; i++)
			ok |= strcmp(k, known[i]) == 0;
		if (!ok) {
			snprintf(err, errlen, "unknown field '%.64s'", k);
			return -EINVAL;
		}
	}
	if (get_str(req, "name", s->id, sizeof(s->id), err, errlen) < 0)
		return -EINVAL;
	if (!s->id[0] || !util_valid_id(s->id)) {
		snprintf(
		    err, errlen,
		    "'name' is required: 1-64 of A-Z a-z 0-9 _ . - (not starting with . or -)");
		return -EINVAL;
	}
	if (get_int(req, "vcpus", 1, o->max_vcpus, &s->vcpus, false, err, errlen) < 0 ||
	    get_int(req, "mem_mib", 64, o->max_mem_mib, &s->mem_mib, true, err, errlen) < 0)
		return -EINVAL;
	rel[0] = '\0';
	if (get_str(req, "kernel", rel, sizeof(rel), err, errlen) < 0)
		return -EINVAL;
	if (rel[0] &&
	    vmm_resolve_image(o, "kernel", rel, s->kernel, sizeof(s->kernel), err, errlen) < 0)
		return -EINVAL;
	rel[0] = '\0';
	if (get_str(req, "initrd", rel, sizeof(rel), err, errlen) < 0)
		return -EINVAL;
	if (rel[0] &&
	    vmm_resolve_image(o, "initrd", rel, s->initrd, sizeof(s->initrd), err, errlen) < 0)
		return -EINVAL;
	rel[0] = '\0';
	if (get_str(req, "disk", rel, sizeof(rel), err, errlen) < 0)
		return -EINVAL;
	if (rel[0] && vmm_resolve_image(o, "disk", rel, s->disk, sizeof(s->disk), err, errlen) < 0)
		return -EINVAL;
	if (!s->kernel[0] && !s->disk[0]) {
		snprintf(err, errlen, "give 'kernel' (and 'initrd') or 'disk'");
		return -EINVAL;
	}
	if (s->initrd[0] && !s->kernel[0]) {
		snprintf(err, errlen, "'initrd' needs 'kernel'");
		return -EINVAL;
	}
	if (get_str(req, "append", s->append, sizeof(s->append), err, errlen) < 0)
		return -EINVAL;
	if (strpbrk(s->append, "\n\r")) {
		snprintf(err, errlen, "'append' must be one line");
		return -EINVAL;
	}
	snprintf(s->bridge, sizeof(s->bridge), "%s", o->bridge);
	if (get_str(req, "bridge", s->bridge, sizeof(s->bridge), err, errlen) < 0)
		return -EINVAL;
	if (!netif_is_bridge(s->bridge)) {
		snprintf(err, errlen, "bridge '%s' does not exist on this host", s->bridge);
		return -EINVAL;
	}
	val = json_object_get(req, "pin");
	if (val) {
		size_t i;
		json_t *h;
		if (!json_is_array(val)) {
			snprintf(err, errlen, "'pin' must be an array of host ids");
			return -EINVAL;
		}
		json_array_foreach(val, i, h)
		{
			size_t l = strlen(s->pin);
			if (!json_is_string(h) || !util_valid_id(json_string_value(h)) ||
			    l + strlen(json_string_value(h)) + 2 > sizeof(s->pin)) {
				snprintf(err, errlen, "'pin' must be an array of host ids");
				return -EINVAL;
			}
			snprintf(s->pin + l, sizeof(s->pin) - l, "%s%s", l ? "," : "",
			         json_string_value(h));
		}
	}
	if (get_str(req, "group", s->group, sizeof(s->group), err, errlen) < 0 ||
	    get_str(req, "anti_group", s->anti_group, sizeof(s->anti_group), err, errlen) < 0)
		return -EINVAL;
	if ((s->group[0] && !util_valid_id(s->group)) ||
	    (s->anti_group[0] && !util_valid_id(s->anti_group))) {
		snprintf(err, errlen, "'group' and 'anti_group' must be ids");
		return -EINVAL;
	}
	val = json_object_get(req, "exclude");
	if (val && !json_is_boolean(val)) {
		snprintf(err, errlen, "'exclude' must be true or false");
		return -EINVAL;
	}
	s->exclude = val && json_is_true(val);
	return 0;
}

/* --- registry ------------------------------------------------------------ */

/* Reserves vm_configs:<id> (state creating) unless the id exists anywhere in
 * the cluster: 1 when reserved, 0 when taken. */
static const char reserve_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'name', ARGV[1], 'state', 'creating', 'host_id', ARGV[2])\n"
    "return 1\n";

bool vmm_redis_up(struct vmm *v)
{
	return store_ensure(v->redis, util_mono_ms());
}

void vmm_event(struct vmm *v, const char *type, const char *vm, const char *msg)
{
	redisReply *r;

	if (!vmm_redis_up(v))
		return;
	r = store_command(v->redis,
	                  "XADD events MAXLEN ~ 100000 * type %s host %s vm %s ts %lld msg %s",
	                  type, v->o.host_id, vm, (long long)util_now_ms(), msg);
	freeReplyObject(r);
}

static json_t *vm_json(const struct vmm *v, const struct vmm_vm *vm)
{
	char qmp[700], gl[700], gs[700];

	snprintf(qmp, sizeof(qmp), "%s/qmp.sock", vm->dir);
	snprintf(gl, sizeof(gl), "%s/guestload.sock", vm->dir);
	snprintf(gs, sizeof(gs), "%s/guest-stats.json", vm->dir);
	return json_pack(
	    "{s:s,s:s,s:i,s:i,s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "id", vm->s.id,
	    "host", v->o.host_id, "pid", vm->pid, "vcpus", vm->s.vcpus, "mem_mib", vm->s.mem_mib,
	    "state", vm->state, "tap", vm->tap, "mac", vm->mac, "bridge", vm->s.bridge, "kernel",
	    vm->s.kernel, "disk", vm->s.disk, "qmp_socket", qmp, "serial_socket", gl, "guest_stats",
	    gs, "group", vm->s.group, "anti_group", vm->s.anti_group, "exclude", vm->s.exclude);
}

/* vm_configs:<id> (every field) and vms_in_host:<host>, one transaction. */
int vmm_registry_commit(struct vmm *v, const struct vmm_vm *vm)
{
	char key[128], pid[16], mem[16], cpu[16], qmp[700], gs[700], gl[700], port[16] = "0";
	const char *argv[64];
	redisReply *r;
	int n = 0, rc = 0;
	const char *colon = strrchr(v->o.api_addr, ':');

	if (colon)
		snprintf(port, sizeof(port), "%s", colon + 1);
	snprintf(key, sizeof(key), "vm_configs:%s", vm->s.id);
	snprintf(pid, sizeof(pid), "%d", vm->pid);
	snprintf(mem, sizeof(mem), "%d", vm->s.mem_mib);
	snprintf(cpu, sizeof(cpu), "%d", vm->s.vcpus);
	snprintf(qmp, sizeof(qmp), "%s/qmp.sock", vm->dir);
	snprintf(gs, sizeof(gs), "%s/guest-stats.json", vm->dir);
	snprintf(gl, sizeof(gl), "%s/guestload.sock", vm->dir);
#define KV(k, val) (argv[n++] = (k), argv[n++] = (val))
	argv[n++] = "HSET";
	argv[n++] = key;
	KV("name", vm->s.id);
	KV("mem", mem);
	KV("cpu", cpu);
	KV("disk", vm->s.disk);
	KV("image_path", vm->s.disk[0] ? vm->s.disk : vm->s.kernel);
	KV("initrd", vm->s.initrd);
	KV("append", vm->s.append);
	KV("host_id", v->o.host_id);
	KV("pid", pid);
	KV("tap_device", vm->tap);
	KV("mac", vm->mac);
	KV("bridge", vm->s.bridge);
	KV("rpc_port", port);
	KV("state", vm->state);
	KV("qmp_socket", qmp);
	KV("guest_stats", gs);
	KV("serial_socket", gl);
	KV("pin", vm->s.pin);
	KV("group", vm->s.group);
	KV("anti_group", vm->s.anti_group);
	KV("exclude", vm->s.exclude ? "1" : "0");
#undef KV
	r = store_command(v->redis, "MULTI");
	if (!r)
		return -EIO;
	freeReplyObject(r);
	freeReplyObject(store_commandv(v->redis, n, argv, NULL));
	freeReplyObject(store_command(v->redis, "SADD vms_in_host:%s %s", v->o.host_id, vm->s.id));
	r = store_command(v->redis, "EXEC");
	if (!r)
		return -EIO;
	if (r->type != REDIS_REPLY_ARRAY)
		rc = -EPROTO;
	freeReplyObject(r);
	return rc;
}

static int registry_remove(struct vmm *v, const char *id)
{
	redisReply *r;

	if (!vmm_redis_up(v))
		return -EIO;
	freeReplyObject(store_command(v->redis, "MULTI"));
	freeReplyObject(store_command(v->redis, "SREM vms_in_host:%s %s", v->o.host_id, id));
	freeReplyObject(store_command(v->redis, "DEL vm_configs:%s", id));
	r = store_command(v->redis, "EXEC");
	if (!r)
		return -EIO;
	freeReplyObject(r);
	return 0;
}

/* --- QEMU --------------------------------------------------------------- */

int vmm_pick_tap(struct vmm_vm *vm)
{
	uint32_t h = fnv1a(vm->s.id);

	for (int i = 0; i < 256; i++) {
		snprintf(vm->tap, sizeof(vm->tap), "lt%08x%02x", h, i);
		if (!netif_exists(vm->tap))
			return 0;
	}
	return -EEXIST;
}

static void pick_mac(struct vmm_vm *vm)
{
	uint32_t h = fnv1a(vm->s.id);

	/* locally administered, stable for the VM wherever it runs */
	snprintf(vm->mac, sizeof(vm->mac), "52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff,
	         (h >> 8) & 0xff, h & 0xff);
}

/* Everything needed to start this VM again (adoption) or elsewhere (the
 * destination of a migration). */
json_t *vmm_spec_json(const struct vmm *v, const struct vmm_vm *vm)
{
	json_t *j = vm_json(v, vm);

	json_object_set_new(j, "initrd", json_string(vm->s.initrd));
	json_object_set_new(j, "append", json_string(vm->s.append));
	json_object_set_new(j, "pin", json_string(vm->s.pin));
	return j;
}

/* The reverse of spec_json (pid, dir, state are the caller's). */
void vmm_spec_load(json_t *j, struct vmm_vm *vm)
{
	vm->s.vcpus = (int)json_integer_value(json_object_get(j, "vcpus"));
	vm->s.mem_mib = (int)json_integer_value(json_object_get(j, "mem_mib"));
#define STR(field, key)                                                                            \
	snprintf(field, sizeof(field), "%s",                                                       \
	         json_string_value(json_object_get(j, key))                                        \
	             ? json_string_value(json_object_get(j, key))                                  \
	             : "")
	STR(vm->tap, "tap");
	STR(vm->mac, "mac");
	STR(vm->s.bridge, "bridge");
	STR(vm->s.kernel, "kernel");
	STR(vm->s.initrd, "initrd");
	STR(vm->s.disk, "disk");
	STR(vm->s.append, "append");
	STR(vm->s.pin, "pin");
	STR(vm->s.group, "group");
	STR(vm->s.anti_group, "anti_group");
#undef STR
	vm->s.exclude = json_is_true(json_object_get(j, "exclude"));
}

int vmm_write_spec(const struct vmm *v, const struct vmm_vm *vm)
{
	char path[700];
	json_t *j = vmm_spec_json(v, vm);
	int rc;

	snprintf(path, sizeof(path), "%s/spec.json", vm->dir);
	rc = json_dump_file(j, path, JSON_INDENT(1)) < 0 ? -EIO : 0;
	json_decref(j);
	return rc;
}

/* Copies s for use inside a QEMU option string: a comma is doubled (QEMU's
 * escape), so a path cannot add options. 0 or -ENAMETOOLONG. */
static int qemu_escape(char *dst, size_t cap, const char *s)
{
	size_t n = 0;

	for (; *s; s++) {
		if (n + 3 > cap)
			return -ENAMETOOLONG;
		if (*s == ',')
			dst[n++] = ',';
		dst[n++] = *s;
	}
	dst[n] = '\0';
	return 0;
}

/* Starts QEMU daemonized (it outlives the agent), waits for QMP. */
int vmm_launch(struct vmm *v, struct vmm_vm *vm, const char *incoming, char *err, size_t errlen)
{
	char smp[16], mem[16], name[128], netdev[128], nic[128], qmp[1400], chardev[1400],
	    pidf[700], logf[700], serial[1400];
	const char *argv[64];
	int n = 0, status, fd;
	pid_t child;
	FILE *f;

	snprintf(smp, sizeof(smp), "%d", vm->s.vcpus);
	snprintf(mem, sizeof(mem), "%d", vm->s.mem_mib);
	snprintf(name, sizeof(name), "loadease-%s", vm->s.id);
	snprintf(netdev, sizeof(netdev), "tap,id=net0,ifname=%s,script=no,downscript=no", vm->tap);
	snprintf(nic, sizeof(nic), "virtio-net-pci,netdev=net0,mac=%s,romfile=", vm->mac);
	char edir[1300];
	if (qemu_escape(edir, sizeof(edir), vm->dir) < 0) {
		snprintf(err, errlen, "state directory path too long");
		return -ENAMETOOLONG;
	}
	snprintf(qmp, sizeof(qmp), "unix:%s/qmp.sock,server=on,wait=off", edir);
	snprintf(chardev, sizeof(chardev), "socket,id=gl,path=%s/guestload.sock,server=on,wait=off",
	         edir);
	snprintf(pidf, sizeof(pidf), "%s/qemu.pid", vm->dir);
	snprintf(logf, sizeof(logf), "%s/qemu.log", vm->dir);
	snprintf(serial, sizeof(serial), "file:%s/console.log", edir);
	argv[n++] = v->o.qemu;
	argv[n++] = "-name";
	argv[n++] = name;
	argv[n++] = "-accel";
	argv[n++] = v->o.accel == VMM_ACCEL_KVM ? "kvm" : "tcg";
	argv[n++] = "-machine";
	argv[n++] = v->o.machine;
	argv[n++] = "-smp";
	argv[n++] = smp;
	argv[n++] = "-m";
	argv[n++] = mem;
	argv[n++] = "-nodefaults";
	argv[n++] = "-no-user-config";
	argv[n++] = "-display";
	argv[n++] = "none";
	argv[n++] = "-serial";
	argv[n++] = serial;
	if (vm->s.kernel[0]) {
		argv[n++] = "-kernel";
		argv[n++] = vm->s.kernel;
		if (vm->s.initrd[0]) {
			argv[n++] = "-initrd";
			argv[n++] = vm->s.initrd;
		}
		argv[n++] = "-append";
		argv[n++] = vm->s.append[0] ? vm->s.append : "console=ttyS0 quiet";
	}
	char drive[1200];
	if (vm->s.disk[0]) {
		/* shared storage: no host cache, so the destination sees every write */
		char edisk[1100];
		if (qemu_escape(edisk, sizeof(edisk), vm->s.disk) < 0) {
			snprintf(err, errlen, "disk path too long");
			return -ENAMETOOLONG;
		}
		snprintf(drive, sizeof(drive), "file=%s,if=virtio,cache=none,format=raw", edisk);
		argv[n++] = "-drive";
		argv[n++] = drive;
	}
	argv[n++] = "-netdev";
	argv[n++] = netdev;
	argv[n++] = "-device";
	argv[n++] = nic;
	argv[n++] = "-device";
	argv[n++] = "virtio-balloon-pci,id=balloon0";
	argv[n++] = "-device";
	argv[n++] = "virtio-serial-pci,id=vser0";
	argv[n++] = "-chardev";
	argv[n++] = chardev;
	argv[n++] = "-device";
	argv[n++] = "virtserialport,chardev=gl,name=org.loadease.guestload";
	argv[n++] = "-qmp";
	argv[n++] = qmp;
	argv[n++] = "-pidfile";
	argv[n++] = pidf;
	if (incoming) {
		argv[n++] = "-incoming";
		argv[n++] = incoming;
	}
	argv[n++] = "-daemonize";
	argv[n] = NULL;

	child = fork();
	if (child < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -errno;
	}
	if (child == 0) {
		fd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		setsid();
		/* QEMU outlives the agent: it must hold none of its sockets */
		close_range(3, ~0U, 0);
		execv(v->o.qemu, (char *const *)argv);
		_exit(127);
	}
	/* with -daemonize the parent exits once QEMU is initialised */
	if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char tail[300] = "";
		f = fopen(logf, "r");
		if (f) {
			size_t got;
			fseek(f, -(long)sizeof(tail) + 1, SEEK_END);
			got = fread(tail, 1, sizeof(tail) - 1, f);
			tail[got] = '\0';
			fclose(f);
			tail[strcspn(tail, "\n") == got ? got : strlen(tail)] = '\0';
		}
		snprintf(err, errlen, "qemu exited with status %d: %s",
		         WIFEXITED(status) ? WEXITSTATUS(status) : -1,
		         tail[0] ? tail : "(no output)");
		return -EIO;
	}
	f = fopen(pidf, "r");
	if (!f || fscanf(f, "%d", &vm->pid) != 1) {
		if (f)
			fclose(f);
		snprintf(err, errlen, "qemu started but wrote no pid file");
		return -EIO;
	}
	fclose(f);
	{
		char sock[700], e[256] = "";
		snprintf(sock, sizeof(sock), "%s/qmp.sock", vm->dir);
		int64_t deadline = util_mono_ms() + v->o.boot_timeout_ms;
		while (!(vm->q = qmp_open(sock, v->o.qmp_timeout_ms, e, sizeof(e))) &&
		       util_mono_ms() < deadline && pid_alive(vm->pid))
			vmm_sleep_ms(50);
		if (!vm->q) {
			snprintf(err, errlen, "QMP: %s", e);
			return -EIO;
		}
	}
	return 0;
}

/* Ends a QEMU process: ACPI power-down, then quit, then SIGKILL. */
void vmm_stop_qemu(struct vmm *v, struct vmm_vm *vm, bool graceful)
{
	int64_t deadline;

	if (vm->q && graceful && qmp_command(vm->q, "system_powerdown", NULL, NULL) == 0) {
		deadline = util_mono_ms() + v->o.shutdown_timeout_ms;
		while (pid_alive(vm->pid) && util_mono_ms() < deadline)
			vmm_sleep_ms(50);
	}
	if (pid_alive(vm->pid) && vm->q)
		qmp_command(vm->q, "quit", NULL, NULL);
	deadline = util_mono_ms() + 3000;
	while (pid_alive(vm->pid) && util_mono_ms() < deadline)
		vmm_sleep_ms(20);
	if (pid_alive(vm->pid)) {
		log_warn("vm %s: qemu %d ignored quit; killing it", vm->s.id, vm->pid);
		kill(vm->pid, SIGKILL);
		deadline = util_mono_ms() + 3000;
		while (pid_alive(vm->pid) && util_mono_ms() < deadline)
			vmm_sleep_ms(20);
	}
}

/* --- operations ------------------------------------------------------------ */

void vmm_balloon_polling(struct vmm_vm *vm, int seconds)
{
	json_t *args = json_pack("{s:s,s:s,s:i}", "path", "/machine/peripheral/balloon0",
	                         "property", "guest-stats-polling-interval", "value", seconds);

	if (vm->q && qmp_command(vm->q, "qom-set", args, NULL) < 0)
		log_warn("vm %s: balloon statistics unavailable: %s", vm->s.id, qmp_errstr(vm->q));
}

int vmm_create(struct vmm *v, const struct vm_spec *spec, json_t **out, int *http, char *err,
               size_t errlen)
{
	struct vmm_vm *vm = NULL;
	redisReply *r;
	bool reserved = false;
	int rc;

	if (out)
		*out = NULL;
	pthread_mutex_lock(&v->lock);
	if (!vmm_redis_up(v)) {
		*http = 503;
		snprintf(err, errlen, "create vm %s: Redis is unreachable: %s", spec->id,
		         v->redis->errstr);
		rc = -EIO;
		goto out;
	}
	r = store_command(v->redis, "EVAL %s 1 vm_configs:%s %s %s", reserve_lua, spec->id,
	                  spec->id, v->o.host_id);
	if (!r || r->type != REDIS_REPLY_INTEGER) {
		*http = 503;
		snprintf(err, errlen, "create vm %s: Redis: %s", spec->id,
		         r && r->type == REDIS_REPLY_ERROR ? r->str : v->redis->errstr);
		freeReplyObject(r);
		rc = -EIO;
		goto out;
	}
	reserved = r->integer == 1;
	freeReplyObject(r);
	if (!reserved) {
		*http = 409;
		snprintf(err, errlen, "a vm named '%s' already exists in the cluster", spec->id);
		rc = -EEXIST;
		goto out;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		*http = 500;
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	vm->s = *spec;
	snprintf(vm->state, sizeof(vm->state), "running");
	snprintf(vm->dir, sizeof(vm->dir), "%s/vms/%s", v->o.state_dir, spec->id);
	pick_mac(vm);
	if (mkdir(vm->dir, 0700) < 0 && errno != EEXIST) {
		*http = 500;
		snprintf(err, errlen, "create vm %s: %s: %s", spec->id, vm->dir, strerror(errno));
		rc = -errno;
		goto out;
	}
	if (vmm_pick_tap(vm) < 0 || vmm_write_spec(v, vm) < 0) {
		*http = 500;
		snprintf(err, errlen, "create vm %s: cannot prepare its tap or state files",
		         spec->id);
		rc = -EIO;
		goto out;
	}
	{
		char lerr[400] = "";
		rc = vmm_launch(v, vm, NULL, lerr, sizeof(lerr));
		if (rc < 0) {
			snprintf(err, errlen, "create vm %s: launching qemu: %s", spec->id, lerr);
			*http = 500;
			goto out;
		}
	}
	rc = netif_bridge_add(vm->s.bridge, vm->tap);
	if (rc == 0)
		rc = netif_up(vm->tap);
	if (rc < 0) {
		*http = 500;
		snprintf(err, errlen, "create vm %s: tap %s on bridge %s: %s", spec->id, vm->tap,
		         vm->s.bridge, strerror(-rc));
		goto out;
	}
	vmm_balloon_polling(vm, 2);
	rc = vmm_registry_commit(v, vm);
	if (rc < 0) {
		*http = 503;
		snprintf(err, errlen, "create vm %s: registering it in Redis failed: %s", spec->id,
		         v->redis->errstr);
		goto out;
	}
	rc = vmm_add_vm(v, vm);
	if (rc < 0) {
		*http = 500;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (out)
		*out = vm_json(v, vm);
	log_info("vm %s: running (qemu pid %d, tap %s on %s, %d vCPU, %d MiB)", vm->s.id, vm->pid,
	         vm->tap, vm->s.bridge, vm->s.vcpus, vm->s.mem_mib);
	vmm_event(v, "vm_created", vm->s.id, "launched");
	vm = NULL;
	rc = 0;
out:
	if (vm) {
		/* nothing half-made stays: the process, its files, the reservation */
		if (vm->pid)
			vmm_stop_qemu(v, vm, false);
		vmm_rm_tree(vm->dir);
		vmm_vm_free(vm);
	}
	if (rc < 0 && reserved)
		registry_remove(v, spec->id);
	if (rc < 0)
		log_warn("%s", err);
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int vmm_delete(struct vmm *v, const char *id, int *http, char *err, size_t errlen)
{
	struct vmm_vm *vm;
	int rc = 0;

	pthread_mutex_lock(&v->lock);
	vm = vmm_find(v, id);
	if (!vm) {
		*http = 404;
		snprintf(err, errlen, "host %s runs no vm '%.64s'", v->o.host_id, id);
		rc = -ENOENT;
		goto out;
	}
	if (strcmp(vm->state, "running") != 0) {
		*http = 409;
		snprintf(err, errlen, "vm %s is %s; try again when it is done", id, vm->state);
		rc = -EBUSY;
		goto out;
	}
	vmm_stop_qemu(v, vm, true);
	if (registry_remove(v, id) < 0)
		log_warn("vm %s: stopped, but Redis is unreachable: its registry entry stays until "
		         "the agent reconciles",
		         id);
	vmm_rm_tree(vm->dir);
	log_info("vm %s: deleted", id);
	vmm_event(v, "vm_deleted", id, "powered down and removed");
	vmm_remove_vm(v, vm);
out:
	pthread_mutex_unlock(&v->lock);
	return rc;
}

json_t *vmm_list(struct vmm *v)
{
	json_t *a = json_array();

	pthread_mutex_lock(&v->lock);
	for (int i = 0; i < v->n; i++)
		json_array_append_new(a, vm_json(v, v->vms[i]));
	pthread_mutex_unlock(&v->lock);
	return a;
}

json_t *vmm_get(struct vmm *v, const char *id)
{
	struct vmm_vm *vm;
	json_t *j = NULL;

	pthread_mutex_lock(&v->lock);
	vm = vmm_find(v, id);
	if (vm)
		j = vm_json(v, vm);
	pthread_mutex_unlock(&v->lock);
	return j;
}

void vmm_poll(struct vmm *v)
{
	pthread_mutex_lock(&v->lock);
	for (int i = 0; i < v->n; i++) {
		struct vmm_vm *vm = v->vms[i];
		json_t *args, *ret = NULL;
		char path[700], tmp[720];
		if (!vm->q || strcmp(vm->state, "running") != 0)
			continue; /* a migrating VM's QMP belongs to its migration */
		args = json_pack("{s:s,s:s}", "path", "/machine/peripheral/balloon0", "property",
		                 "guest-stats");
		if (qmp_command(vm->q, "qom-get", args, &ret) < 0)
			continue;
		/* written whole, then renamed: the sampler never reads half a file */
		snprintf(path, sizeof(path), "%s/guest-stats.json", vm->dir);
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		if (json_dump_file(ret, tmp, JSON_COMPACT) == 0)
			rename(tmp, path);
		json_decref(ret);
	}
	pthread_mutex_unlock(&v->lock);
}

/* --- adoption after a restart ------------------------------------------- */

static int adopt_one(struct vmm *v, const char *dir, const char *id)
{
	char path[700], cmd[4096], want[128], e[256];
	struct vmm_vm *vm;
	json_error_t je;
	json_t *j;
	size_t len;
	FILE *f;
	int pid = 0;

	snprintf(path, sizeof(path), "%s/qemu.pid", dir);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%d", &pid) != 1 || !pid_alive(pid)) {
		if (f)
			fclose(f);
		return -ESRCH;
	}
	fclose(f);
	/* the pid must still be that VM's QEMU, not a reused pid */
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	if (util_read_file("/", path, cmd, sizeof(cmd), &len) < 0 && len == 0)
		return -ESRCH;
	snprintf(want, sizeof(want), "loadease-%s", id);
	{
		bool found = false;
		for (size_t i = 0; i < len; i += strlen(cmd + i) + 1)
			found |= strcmp(cmd + i, want) == 0;
		if (!found)
			return -ESRCH;
	}
	snprintf(path, sizeof(path), "%s/spec.json", dir);
	j = json_load_file(path, 0, &je);
	if (!j)
		return -EINVAL;
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		json_decref(j);
		return -ENOMEM;
	}
	snprintf(vm->s.id, sizeof(vm->s.id), "%s", id);
	snprintf(vm->dir, sizeof(vm->dir), "%s", dir);
	vm->pid = pid;
	vmm_spec_load(j, vm);
	/* a QEMU waiting for a migration stream stays "incoming" until the
	 * source settles it */
	snprintf(vm->state, sizeof(vm->state), "%s",
	         json_is_string(json_object_get(j, "state")) &&
	                 strcmp(json_string_value(json_object_get(j, "state")), "incoming") == 0
	             ? "incoming"
	             : "running");
	json_decref(j);
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	vm->q = qmp_open(path, v->o.qmp_timeout_ms, e, sizeof(e));
	if (!vm->q)
		log_warn("vm %s: adopted without QMP (%s); it keeps running", id, e);
	if (vmm_add_vm(v, vm) < 0) {
		vmm_vm_free(vm);
		return -ENOMEM;
	}
	return 0;
}

int vmm_adopt(struct vmm *v)
{
	char vmsdir[600], dir[900];
	struct dirent *e;
	redisReply *r;
	int adopted = 0;
	DIR *d;

	pthread_mutex_lock(&v->lock);
	snprintf(vmsdir, sizeof(vmsdir), "%s/vms", v->o.state_dir);
	d = opendir(vmsdir);
	while (d && (e = readdir(d))) {
		if (!util_valid_id(e->d_name))
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", vmsdir, e->d_name);
		if (adopt_one(v, dir, e->d_name) == 0) {
			adopted++;
			log_info("vm %s: adopted running qemu %d", e->d_name,
			         vmm_find(v, e->d_name)->pid);
		} else {
			log_warn("vm %s: its qemu is gone; removing its state", e->d_name);
			vmm_rm_tree(dir);
		}
	}
	if (d)
		closedir(d);
	/* reconcile: the registry's VMs of this host that no longer run are lost;
	 * every running one is registered with its current pid */
	if (vmm_redis_up(v)) {
		r = store_command(v->redis, "SMEMBERS vms_in_host:%s", v->o.host_id);
		for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
			const char *id = r->element[i]->str;
			if (r->element[i]->type != REDIS_REPLY_STRING || vmm_find(v, id))
				continue;
			log_warn("vm %s: registered on host %s but not running: marked lost", id,
			         v->o.host_id);
			freeReplyObject(store_command(v->redis, "MULTI"));
			freeReplyObject(
			    store_command(v->redis, "SREM vms_in_host:%s %s", v->o.host_id, id));
			freeReplyObject(
			    store_command(v->redis, "HSET vm_configs:%s state lost", id));
			freeReplyObject(store_command(v->redis, "EXEC"));
			vmm_event(v, "vm_lost", id, "not running when the agent started");
		}
		freeReplyObject(r);
		for (int i = v->n - 1; i >= 0; i--)
			if (vmm_recover(v, v->vms[i])) {
				adopted--;
				vmm_remove_vm(v, v->vms[i]);
			}
	} else {
		log_warn(
		    "adoption: Redis unreachable; the registry is reconciled on the next start");
	}
	pthread_mutex_unlock(&v->lock);
	return adopted;
}

struct vmm *vmm_new(const struct vmm_opts *o, char *err, size_t errlen)
{
	struct vmm *v = calloc(1, sizeof(*v));
	char path[600];

	if (!v) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	v->o = *o;
	pthread_mutex_init(&v->lock, NULL);
	snprintf(path, sizeof(path), "%s/vms", o->state_dir);
	if ((mkdir(o->state_dir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST)) {
		snprintf(err, errlen, "state directory %s: %s", path, strerror(errno));
		goto fail;
	}
	if (access(o->qemu, X_OK) < 0) {
		snprintf(err, errlen, "qemu '%s' is not executable: %s", o->qemu, strerror(errno));
		goto fail;
	}
	v->redis = store_new(&o->redis);
	if (!v->redis) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return v;
fail:
	pthread_mutex_destroy(&v->lock);
	free(v);
	return NULL;
}

void vmm_free(struct vmm *v)
{
	if (!v)
		return;
	/* the VMs keep running: only the driver's handles go */
	for (int i = 0; i < v->n; i++)
		vmm_vm_free(v->vms[i]);
	free(v->vms);
	store_free(v->redis);
	pthread_mutex_destroy(&v->lock);
	free(v);
}
