/* domxml.h - libvirt domain XML, both ways, as pure functions (no I/O, no
 * libvirt calls, no globals): domxml_build() turns a validated VM request
 * into the XML that virDomainDefineXML() takes; domxml_parse() reads what
 * the agent needs to monitor and manage a running domain out of the XML that
 * virDomainGetXMLDesc() returns, for any domain, whoever defined it.
 *
 * LoadEase's own per-VM settings (placement rules, the guest-load channel)
 * live in the domain's <metadata> under the namespace DOMXML_NS, so they
 * travel with the domain through a migration and survive a Redis flush.
 *
 * Built on libxml2 (libvirt's own XML library). Every string written is
 * escaped by libxml2; the parser refuses external entities, DTDs and network
 * access, and has limits (DOMXML_MAX_XML bytes, DOMXML_MAX_NICS interfaces).
 */
#ifndef LE_AGENT_DOMXML_H
#define LE_AGENT_DOMXML_H

#include <stdbool.h>
#include <stddef.h>

#define DOMXML_NS             "https://loadease.org/xmlns/vm/1"
#define DOMXML_NS_PREFIX      "loadease"
#define DOMXML_GUESTLOAD_PORT "org.loadease.guestload"
#define DOMXML_MAX_XML        (4 << 20)
#define DOMXML_MAX_NICS       8

/* Host-wide settings for the domains this agent defines. */
struct domxml_opts {
	char domain_type[16];  /* "kvm" (production) or "qemu" (TCG) */
	char emulator[256];    /* e.g. /usr/bin/qemu-system-x86_64; "" = libvirt's default */
	char machine[32];      /* e.g. "q35", "pc"; "" = libvirt's default */
	int balloon_period_s;  /* balloon statistics period; 0 = none */
	char console_log[512]; /* the serial console (a pty) also logged to this file; "" = not */
};

/* What POST /v1/vms asks for, validated (paths absolute, inside the images
 * directory). */
struct vm_spec {
	char id[65];
	int vcpus, mem_mib;
	/* the most it may be resized to in place (live vCPU hot-plug up to
	 * max_vcpus, the balloon up to max_mem_mib); 0 = the allocation */
	int max_vcpus, max_mem_mib;
	char kernel[512], initrd[512], disk[512];
	char append[1024];
	char bridge[16];
	char tap[16];  /* target dev of the interface; "" = libvirt picks vnetN */
	char mac[18];  /* "" = libvirt picks */
	char pin[512]; /* comma-separated host ids; "" = any */
	char group[65], anti_group[65];
	bool exclude;
	bool guest_load; /* add the virtio-serial channel DOMXML_GUESTLOAD_PORT */
};

struct domxml_nic {
	char target[16]; /* tap device on the host ("" if the XML names none) */
	char mac[18];
	char bridge[16]; /* <source bridge=...>: type bridge, and type network on a
	                  * running domain; "" otherwise */
};

/* What the agent reads from a domain's XML. Strings are "" when absent. */
struct domxml_info {
	char name[256];
	char uuid[37];
	char type[16];   /* kvm, qemu, ... */
	int id;          /* libvirt's run-time domain id; -1 when inactive/absent */
	int vcpus;       /* current vCPUs (<vcpu current=...> else its text) */
	int max_vcpus;   /* <vcpu>'s text: the most vCPUs it can have while it runs */
	int mem_mib;     /* <currentMemory> (else <memory>), rounded down to MiB */
	int max_mem_mib; /* <memory>: the most the balloon can give it */
	char kernel[512], initrd[512], cmdline[1024];
	char disk[512]; /* source of the first disk of device "disk" (file or block dev) */
	struct domxml_nic nic[DOMXML_MAX_NICS];
	int nnics;
	bool nics_truncated;        /* more than DOMXML_MAX_NICS <interface>s: the rest unread */
	char guestload_socket[512]; /* source path of the DOMXML_GUESTLOAD_PORT channel */
	bool has_balloon;           /* a virtio memballoon (not model none) */
	/* <metadata><loadease:vm> */
	bool has_meta;
	char pin[512];
	char group[65], anti_group[65];
	bool exclude;
	bool guest_load; /* <guest_load>: the VM was asked with the guest-load channel */
};

/* The domain XML for spec under o. 0 with *out (caller frees with free()),
 * or -EINVAL / -ENOMEM with err saying why (*out NULL). Besides what the
 * request needs, it gives the guest ACPI (a clean shutdown, as QEMU's
 * default machine had) and no USB, graphics or option ROM. Refused: an
 * empty id, vcpus or mem_mib below 1, a domain type other than kvm/qemu,
 * neither kernel nor disk, an initrd without kernel, no bridge, a relative
 * path, a bridge, tap or machine name outside A-Z a-z 0-9 _ . - (libvirt's
 * schema), a tap name libvirt reserves (vnet*, macvtap*, macvlan*: it drops
 * them from a definition), a malformed or multicast mac, a negative balloon
 * period, a string with control characters or invalid UTF-8, a max_vcpus or
 * max_mem_mib below the allocation.
 * Sizes: <memory> is max_mem_mib (the guest's RAM; the balloon takes back
 * what is not allocated), <currentMemory> mem_mib, <vcpu current=vcpus>
 * max_vcpus (the current attribute only when they differ). <maxMemory>
 * (DIMM hot-plug, which needs NUMA cells) is not used.
 * append is used only with a kernel ("console=ttyS0 quiet" when empty). */
int domxml_build(const struct domxml_opts *o, const struct vm_spec *spec, char **out, char *err,
                 size_t errlen);

/* Reads xml (len bytes, need not be NUL-terminated) into out. 0, or
 * -EINVAL with err naming the problem (not XML, no <domain>, too large, a
 * DOCTYPE, a field out of range or longer than its array), -ENOMEM; on
 * failure out is zeroed (id -1). Unknown elements are ignored. The input is
 * read as UTF-8 whatever its declaration says (libvirt writes UTF-8).
 * Thread-safe: each call has its own libxml2 parser context. */
int domxml_parse(const char *xml, size_t len, struct domxml_info *out, char *err, size_t errlen);

/* LoadEase's rules from spec as the element virDomainSetMetadata() takes:
 *   virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml,
 *                        DOMXML_NS_PREFIX, DOMXML_NS, flags)
 * i.e. <vm><pin>..</pin><group>..</group><anti_group>..</anti_group>
 * <exclude>0|1</exclude><guest_load>0|1</guest_load></vm> on one line and in
 * no namespace: libvirt (9.0) puts the element and all its children into
 * DOMXML_NS under the key's prefix, giving in the domain XML the same
 * <loadease:vm xmlns:loadease=DOMXML_NS><loadease:pin>... that
 * domxml_build() writes, and it refuses an element that already declares the
 * prefix ("failed to create a new XML namespace"). virDomainGetMetadata()
 * gives the element back in the same namespace-free form.
 * Caller frees with free(). NULL with errno EINVAL when a rule string is not
 * UTF-8 text (or not terminated), ENOMEM when out of memory. */
char *domxml_meta(const struct vm_spec *spec);

#endif
