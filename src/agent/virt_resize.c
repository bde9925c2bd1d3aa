/* virt_resize.c - a running VM's vCPUs and memory changed in place through
 * libvirt (vCPU hot-plug, the balloon), reported as libvirt has them after;
 * see virt.h. */
#include "agent/virt.h"
#include "agent/virt_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "common/util.h"

/* How long the balloon may take to reach its target before the answer says
 * where it is (under TCG a guest gives back about 100 MiB a second). */
#define BALLOON_WAIT_MS 15000

/* What libvirt says the running domain has now. */
struct sizes {
	int vcpus, max_vcpus;
	int mem_mib, max_mem_mib;
	int used_mib; /* in the guest (balloon statistics: available - usable); -1 unknown */
};

static int read_sizes(virDomainPtr dom, struct sizes *s)
{
	virDomainMemoryStatStruct st[VIR_DOMAIN_MEMORY_STAT_NR];
	unsigned long long avail = 0, usable = 0;
	bool has_avail = false, has_usable = false;
	virDomainInfo info;
	int n;

	s->vcpus = virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_LIVE);
	s->max_vcpus =
	    virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_LIVE | VIR_DOMAIN_VCPU_MAXIMUM);
	if (s->vcpus < 0 || s->max_vcpus < 0 || virDomainGetInfo(dom, &info) < 0)
		return -EIO;
	s->mem_mib = (int)(info.memory >> 10);
	s->max_mem_mib = (int)(info.maxMem >> 10);
	s->used_mib = -1;
	n = virDomainMemoryStats(dom, st, VIR_DOMAIN_MEMORY_STAT_NR, 0);
	for (int i = 0; i < n; i++) {
		if (st[i].tag == VIR_DOMAIN_MEMORY_STAT_AVAILABLE) {
			avail = st[i].val;
			has_avail = true;
		} else if (st[i].tag == VIR_DOMAIN_MEMORY_STAT_USABLE) {
			usable = st[i].val;
			has_usable = true;
		}
	}
	if (has_avail && has_usable && avail >= usable)
		s->used_mib = (int)((avail - usable) >> 10);
	return 0;
}

/* The least memory a guest may be left with: VIRT_MIN_MEM_MIB, and what it
 * uses now plus a margin (a tenth, at least 32 MiB), so the balloon never
 * pushes a guest into its OOM killer. */
static int mem_floor(const struct sizes *s)
{
	int f = VIRT_MIN_MEM_MIB;

	if (s->used_mib >= 0) {
		int margin = s->used_mib / 10 > 32 ? s->used_mib / 10 : 32;
		if (s->used_mib + margin > f)
			f = s->used_mib + margin;
	}
	return f;
}

/* Waits (a while) for the balloon to reach target MiB; the last size read. */
static int wait_balloon(virDomainPtr dom, int target, int before)
{
	int64_t deadline = util_mono_ms() + BALLOON_WAIT_MS;
	int last = before, same = 0;
	virDomainInfo info;

	for (;;) {
		int cur;
		if (virDomainGetInfo(dom, &info) < 0)
			return last;
		cur = (int)(info.memory >> 10);
		if (cur == target)
			return cur;
		/* the guest stopped giving or taking: it is where it will stay */
		same = cur == last && cur != before ? same + 1 : 0;
		last = cur;
		if (same >= 10 || util_mono_ms() > deadline)
			return cur;
		virt_sleep_ms(100);
	}
}

static json_t *result_json(struct virt *v, const char *id, const struct sizes *before,
                           const struct sizes *now, int vcpus, int mem_mib, bool persistent,
                           int64_t t0)
{
	return json_pack(
	    "{s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:{s:i,s:i},s:b,s:b,s:I}", "vm", id, "host",
	    v->o.host_id, "vcpus", now->vcpus, "mem_mib", now->mem_mib, "max_vcpus", now->max_vcpus,
	    "max_mem_mib", now->max_mem_mib, "vcpus_before", before->vcpus, "mem_mib_before",
	    before->mem_mib, "asked", "vcpus", vcpus ? vcpus : before->vcpus, "mem_mib",
	    mem_mib ? mem_mib : before->mem_mib, "mem_settled", !mem_mib || now->mem_mib == mem_mib,
	    "persistent", persistent, "wall_ms", (json_int_t)(util_mono_ms() - t0));
}

/* Checks the request against what libvirt says the domain can have. */
static int check_request(const char *id, const struct sizes *s, int vcpus, int mem_mib, char *err,
                         size_t errlen)
{
	if (vcpus && vcpus > s->max_vcpus) {
		snprintf(err, errlen,
		         "resize vm %s: vcpus %d is more than its domain's maximum of %d (its "
		         "<vcpu> element: set when it was defined)",
		         id, vcpus, s->max_vcpus);
		return -EINVAL;
	}
	/* vCPUs are only added while it runs: libvirt 9.0 waits 5 s for a
	 * guest to eject an unplugged vCPU and never learns of one that ends
	 * later (a TCG guest took longer): it would go on counting a vCPU that
	 * QEMU and the guest no longer have */
	if (vcpus && vcpus < s->vcpus) {
		snprintf(
		    err, errlen,
		    "resize vm %s: vcpus %d is fewer than the %d it runs: a running VM's vCPUs "
		    "are only added (hot-plug), never taken away",
		    id, vcpus, s->vcpus);
		return -EINVAL;
	}
	if (mem_mib && mem_mib > s->max_mem_mib) {
		snprintf(
		    err, errlen,
		    "resize vm %s: mem_mib %d is more than its domain's maximum of %d MiB (its "
		    "<memory> element: set when it was defined)",
		    id, mem_mib, s->max_mem_mib);
		return -EINVAL;
	}
	if (mem_mib && mem_mib < s->mem_mib && mem_mib < mem_floor(s)) {
		if (s->used_mib >= 0)
			snprintf(err, errlen,
			         "resize vm %s: mem_mib %d is below its floor of %d MiB (its guest "
			         "uses %d MiB)",
			         id, mem_mib, mem_floor(s), s->used_mib);
		else
			snprintf(err, errlen,
			         "resize vm %s: mem_mib %d is below the floor of %d MiB", id,
			         mem_mib, mem_floor(s));
		return -EINVAL;
	}
	return 0;
}

int virt_resize(struct virt *v, const char *id, int vcpus, int mem_mib, json_t **out, int *http,
                char *err, size_t errlen)
{
	virConnectPtr c = virt_conn(v);
	virDomainPtr dom = NULL;
	struct virt_dom *d;
	struct sizes before = {0}, now = {0};
	char uuid[VIR_UUID_STRING_BUFLEN], why[400] = "";
	bool marked = false, persistent, mem_changed = false;
	unsigned int flags;
	int64_t t0 = util_mono_ms();
	int rc = 0;

	*out = NULL;
	if (!c) {
		*http = 503;
		snprintf(err, errlen, "resize vm %s: libvirt at %s is not connected", id, v->o.uri);
		return -ENOTCONN;
	}
	pthread_mutex_lock(&v->lock);
	d = virt_find(v, id);
	if (!d) {
		*http = 404;
		snprintf(err, errlen, "host %s runs no vm '%.64s'", v->o.host_id, id);
		rc = -ENOENT;
	} else if (d->migrating || d->transit || d->job) {
		*http = 409;
		snprintf(err, errlen, "resize vm %s: it is being migrated", id);
		rc = -EBUSY;
	} else if (d->stopping || d->resizing) {
		*http = 409;
		snprintf(err, errlen, "resize vm %s: it is being %s", id,
		         d->stopping ? "deleted" : "resized");
		rc = -EBUSY;
	} else {
		d->resizing = true;
		marked = true;
		snprintf(uuid, sizeof(uuid), "%s", d->uuid);
	}
	pthread_mutex_unlock(&v->lock);
	if (rc < 0)
		goto out;

	dom = virDomainLookupByUUIDString(c, uuid);
	if (!dom || read_sizes(dom, &before) < 0) {
		*http = dom ? 502 : 404;
		snprintf(err, errlen, "resize vm %s: %s", id,
		         dom ? virt_lasterr("libvirt cannot say its size")
		             : "it runs here no more");
		rc = dom ? -EIO : -ENOENT;
		goto out;
	}
	rc = check_request(id, &before, vcpus, mem_mib, err, errlen);
	if (rc < 0) {
		*http = 400;
		goto out;
	}
	persistent = virDomainIsPersistent(dom) == 1;
	/* the running guest, and the definition it boots from next time */
	flags = VIR_DOMAIN_AFFECT_LIVE | (persistent ? VIR_DOMAIN_AFFECT_CONFIG : 0);
	log_info("vm %s: resizing from %d vCPU, %d MiB to %d vCPU, %d MiB", id, before.vcpus,
	         before.mem_mib, vcpus ? vcpus : before.vcpus, mem_mib ? mem_mib : before.mem_mib);
	/* memory first: the balloon can be put back if the vCPUs fail */
	if (mem_mib && mem_mib != before.mem_mib) {
		if (virDomainSetMemoryFlags(dom, (unsigned long)mem_mib << 10, flags) < 0) {
			snprintf(why, sizeof(why), "memory to %d MiB: %s", mem_mib,
			         virt_lasterr("libvirt refused"));
			rc = -EIO;
		} else {
			mem_changed = true;
		}
	}
	if (rc == 0 && vcpus && vcpus != before.vcpus &&
	    virDomainSetVcpusFlags(dom, (unsigned)vcpus, flags) < 0) {
		snprintf(why, sizeof(why), "vCPUs to %d: %s", vcpus,
		         virt_lasterr("libvirt refused"));
		rc = -EIO;
	}
	/* the vCPUs failed after the memory moved: the memory goes back */
	if (rc < 0 && mem_changed &&
	    virDomainSetMemoryFlags(dom, (unsigned long)before.mem_mib << 10, flags) < 0)
		log_warn("vm %s: memory not set back to %d MiB: %s", id, before.mem_mib,
		         virt_lasterr("libvirt refused"));
	if (rc == 0 && mem_changed)
		wait_balloon(dom, mem_mib, before.mem_mib);
	if (read_sizes(dom, &now) < 0)
		now = before;
	*out = result_json(v, id, &before, &now, vcpus, mem_mib, persistent, t0);
	if (rc < 0) {
		*http = 502;
		snprintf(err, errlen, "resize vm %s: %s; it has %d vCPU, %d MiB", id, why,
		         now.vcpus, now.mem_mib);
	}
out:
	pthread_mutex_lock(&v->lock);
	d = marked ? virt_find(v, id) : NULL;
	if (d) {
		d->resizing = false;
		d->reread = true; /* the registry follows what libvirt has now */
	}
	pthread_mutex_unlock(&v->lock);
	/* a refused request (400) changed nothing and is no event */
	if (marked && (rc == 0 || *http == 502)) {
		char msg[600];
		virt_reconcile(v);
		if (rc == 0)
			snprintf(msg, sizeof(msg),
			         "%d vCPU, %d MiB -> %d vCPU, %d MiB (asked %d, %d)", before.vcpus,
			         before.mem_mib, now.vcpus, now.mem_mib,
			         vcpus ? vcpus : before.vcpus, mem_mib ? mem_mib : before.mem_mib);
		else
			snprintf(msg, sizeof(msg), "%s", err);
		pthread_mutex_lock(&v->lock);
		virt_event(v, rc == 0 ? "vm_resized" : "vm_resize_failed", id, msg);
		pthread_mutex_unlock(&v->lock);
		if (rc == 0)
			log_info("vm %s: resized: %s", id, msg);
		else
			log_warn("%s", err);
	}
	if (rc < 0) {
		json_decref(*out);
		*out = NULL;
	}
	if (dom)
		virDomainFree(dom);
	virConnectClose(c);
	return rc;
}
