/* domxml.c - libvirt domain XML with libxml2 (see domxml.h).
 *
 * Thread safety: libxml2 sets up process-wide tables in xmlInitParser(),
 * which before libxml2 2.11 must not run in two threads at once; xml_init()
 * runs it exactly once (pthread_once) before any other libxml2 call here.
 * After that every call works on its own document, parser context and
 * output buffer: nothing here changes libxml2's global or thread-local
 * settings (error handlers, indentation, entity substitution), and nothing
 * calls xmlCleanupParser(), which would pull those tables from under libvirt
 * and any other libxml2 user in the process.
 */
#include "agent/domxml.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlsave.h>

#define PFX       "domain XML: "
#define MAX_VCPUS 65535

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init_once(void)
{
	xmlInitParser();
}

static void xml_init(void)
{
	pthread_once(&xml_once, xml_init_once);
}

/* ---- building ---------------------------------------------------------- */

/* A string libxml2 can write as XML text: NUL-terminated inside its array,
 * UTF-8, no control characters (XML 1.0 cannot carry most of them, and none
 * belongs in a name, path or kernel command line). */
static int check_text(const char *what, const char *s, size_t cap, char *err, size_t errlen)
{
	size_t n = strnlen(s, cap);

	if (n == cap) {
		snprintf(err, errlen, PFX "'%s' is not terminated", what);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f) {
			snprintf(err, errlen, PFX "'%s' contains a control character", what);
			return -EINVAL;
		}
	}
	if (!xmlCheckUTF8((const xmlChar *)s)) {
		snprintf(err, errlen, PFX "'%s' is not UTF-8", what);
		return -EINVAL;
	}
	return 0;
}

static int check_path(const char *what, const char *s, char *err, size_t errlen)
{
	if (s[0] && s[0] != '/') {
		snprintf(err, errlen, PFX "'%s' must be an absolute path", what);
		return -EINVAL;
	}
	return 0;
}

/* xx:xx:xx:xx:xx:xx, unicast (libvirt refuses a multicast address). */
static bool valid_mac(const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *d;

	if (strlen(s) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	/* the low bit of the first octet is the multicast bit */
	d = strchr(hex, tolower((unsigned char)s[1]));
	return (d - hex) % 2 == 0;
}

/* What libvirt's schema (deviceName, the machine pattern) and Linux (no '/',
 * ':' or space in an interface name) both take. */
static bool valid_name(const char *s)
{
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
	       strlen(s);
}

static int check_rules(const struct vm_spec *s, char *err, size_t errlen)
{
	if (check_text("pin", s->pin, sizeof(s->pin), err, errlen) < 0 ||
	    check_text("group", s->group, sizeof(s->group), err, errlen) < 0 ||
	    check_text("anti_group", s->anti_group, sizeof(s->anti_group), err, errlen) < 0)
		return -EINVAL;
	return 0;
}

static int check_build(const struct domxml_opts *o, const struct vm_spec *s, char *err,
                       size_t errlen)
{
	const struct {
		const char *what, *s;
		size_t cap;
		bool path;
	} strs[] = {
	    {"domain_type", o->domain_type, sizeof(o->domain_type), false},
	    {"emulator", o->emulator, sizeof(o->emulator), true},
	    {"machine", o->machine, sizeof(o->machine), false},
	    {"console_log", o->console_log, sizeof(o->console_log), true},
	    {"id", s->id, sizeof(s->id), false},
	    {"kernel", s->kernel, sizeof(s->kernel), true},
	    {"initrd", s->initrd, sizeof(s->initrd), true},
	    {"disk", s->disk, sizeof(s->disk), true},
	    {"append", s->append, sizeof(s->append), false},
	    {"bridge", s->bridge, sizeof(s->bridge), false},
	    {"tap", s->tap, sizeof(s->tap), false},
	    {"mac", s->mac, sizeof(s->mac), false},
	};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if (check_text(strs[i].what, strs[i].s, strs[i].cap, err, errlen) < 0 ||
		    (strs[i].path && check_path(strs[i].what, strs[i].s, err, errlen) < 0))
			return -EINVAL;
	}
	if (check_rules(s, err, errlen) < 0)
		return -EINVAL;
	if (strcmp(o->domain_type, "kvm") != 0 && strcmp(o->domain_type, "qemu") != 0) {
		snprintf(err, errlen, PFX "domain type '%s' is not kvm or qemu", o->domain_type);
		return -EINVAL;
	}
	if (!valid_name(o->machine)) {
		snprintf(err, errlen, PFX "machine '%s' is not a machine type name", o->machine);
		return -EINVAL;
	}
	if (o->balloon_period_s < 0) {
		snprintf(err, errlen, PFX "balloon period %d s is negative", o->balloon_period_s);
		return -EINVAL;
	}
	if (!s->id[0]) {
		snprintf(err, errlen, PFX "the VM has no id");
		return -EINVAL;
	}
	if (s->vcpus < 1) {
		snprintf(err, errlen, PFX "vm %s: vcpus %d is less than 1", s->id, s->vcpus);
		return -EINVAL;
	}
	if (s->mem_mib < 1) {
		snprintf(err, errlen, PFX "vm %s: mem_mib %d is less than 1", s->id, s->mem_mib);
		return -EINVAL;
	}
	if (s->max_vcpus && s->max_vcpus < s->vcpus) {
		snprintf(err, errlen, PFX "vm %s: max_vcpus %d is less than vcpus %d", s->id,
		         s->max_vcpus, s->vcpus);
		return -EINVAL;
	}
	if (s->max_mem_mib && s->max_mem_mib < s->mem_mib) {
		snprintf(err, errlen, PFX "vm %s: max_mem_mib %d is less than mem_mib %d", s->id,
		         s->max_mem_mib, s->mem_mib);
		return -EINVAL;
	}
	if (!s->kernel[0] && !s->disk[0]) {
		snprintf(err, errlen, PFX "vm %s: give a kernel or a disk", s->id);
		return -EINVAL;
	}
	if (s->initrd[0] && !s->kernel[0]) {
		snprintf(err, errlen, PFX "vm %s: an initrd needs a kernel", s->id);
		return -EINVAL;
	}
	if (!s->bridge[0]) {
		snprintf(err, errlen, PFX "vm %s: no bridge", s->id);
		return -EINVAL;
	}
	if (!valid_name(s->bridge) || !valid_name(s->tap)) {
		snprintf(err, errlen,
		         PFX "vm %s: %s '%s' is not an interface name (A-Z a-z 0-9 _ . -)", s->id,
		         valid_name(s->bridge) ? "tap" : "bridge",
		         valid_name(s->bridge) ? s->tap : s->bridge);
		return -EINVAL;
	}
	/* libvirt drops these names from a definition and picks its own */
	if (!strncmp(s->tap, "vnet", 4) || !strncmp(s->tap, "macvtap", 7) ||
	    !strncmp(s->tap, "macvlan", 7)) {
		snprintf(err, errlen,
		         PFX "vm %s: tap '%s': libvirt reserves names starting with vnet, "
		             "macvtap and macvlan",
		         s->id, s->tap);
		return -EINVAL;
	}
	if (s->mac[0] && !valid_mac(s->mac)) {
		snprintf(err, errlen,
		         PFX "vm %s: mac '%s' is not a unicast address xx:xx:xx:xx:xx:xx", s->id,
		         s->mac);
		return -EINVAL;
	}
	return 0;
}

/* The tree is built without checking each call: a failed allocation sets
 * b->oom and later calls on the missing node do nothing. */
struct bld {
	xmlDocPtr doc;
	bool oom;
};

/* A child element of parent (NULL: a root without a parent) holding text
 * (may be NULL), in no namespace, then NULL-terminated attribute name/value
 * pairs. libxml2 escapes text and values when it writes them. */
__attribute__((sentinel)) static xmlNodePtr el(struct bld *b, xmlNodePtr parent, const char *name,
                                               const char *text, ...)
{
	xmlNodePtr n;
	const char *k;
	va_list ap;

	if (b->oom)
		return NULL;
	/* "" as NULL: an empty element is written <name/> */
	n = xmlNewDocRawNode(b->doc, NULL, BAD_CAST name, text && *text ? BAD_CAST text : NULL);
	if (!n) {
		b->oom = true;
		return NULL;
	}
	if (parent)
		xmlAddChild(parent, n);
	else
		xmlDocSetRootElement(b->doc, n);
	va_start(ap, text);
	while ((k = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);
		if (!xmlNewProp(n, BAD_CAST k, BAD_CAST v))
			b->oom = true;
	}
	va_end(ap);
	return n;
}

/* <vm> and its rules. In a domain definition (ns) they are all in DOMXML_NS
 * under DOMXML_NS_PREFIX, as libvirt writes them after virDomainSetMetadata;
 * for virDomainSetMetadata itself in no namespace, because libvirt 9.0 puts
 * the element and every descendant into the namespace itself and refuses
 * ("failed to create a new XML namespace") one that declares the prefix. */
static xmlNodePtr meta_node(struct bld *b, xmlNodePtr parent, const struct vm_spec *s, bool ns)
{
	xmlNodePtr vm = el(b, parent, "vm", NULL, NULL);
	xmlNsPtr n = NULL;

	if (vm && ns) {
		n = xmlNewNs(vm, BAD_CAST DOMXML_NS, BAD_CAST DOMXML_NS_PREFIX);
		if (!n)
			b->oom = true;
	}
	el(b, vm, "pin", s->pin, NULL);
	el(b, vm, "group", s->group, NULL);
	el(b, vm, "anti_group", s->anti_group, NULL);
	el(b, vm, "exclude", s->exclude ? "1" : "0", NULL);
	el(b, vm, "guest_load", s->guest_load ? "1" : "0", NULL);
	if (vm && n) {
		xmlSetNs(vm, n);
		for (xmlNodePtr c = vm->children; c; c = c->next)
			xmlSetNs(c, n);
	}
	return vm;
}

/* node written indented (two spaces a level) or on one line, plus nl;
 * NULL when out of memory. */
static char *dump(xmlNodePtr node, bool indent, const char *nl)
{
	xmlBufferPtr buf = xmlBufferCreate();
	xmlSaveCtxtPtr save;
	char *out = NULL;
	size_t n;

	if (!buf)
		return NULL;
	save = xmlSaveToBuffer(buf, "UTF-8", (indent ? XML_SAVE_FORMAT : 0) | XML_SAVE_NO_DECL);
	if (!save)
		goto out;
	if (xmlSaveTree(save, node) < 0) {
		xmlSaveClose(save);
		goto out;
	}
	if (xmlSaveClose(save) < 0)
		goto out;
	n = (size_t)xmlBufferLength(buf);
	out = malloc(n + strlen(nl) + 1);
	if (out) {
		memcpy(out, xmlBufferContent(buf), n);
		strcpy(out + n, nl);
	}
out:
	xmlBufferFree(buf);
	return out;
}

static struct bld new_doc(void)
{
	struct bld b = {NULL, false};

	xml_init();
	b.doc = xmlNewDoc(BAD_CAST "1.0");
	if (!b.doc) {
		b.oom = true;
		return b;
	}
	/* UTF-8 written as is in attributes too, not as character references */
	b.doc->encoding = xmlStrdup(BAD_CAST "UTF-8");
	if (!b.doc->encoding)
		b.oom = true;
	return b;
}

char *domxml_meta(const struct vm_spec *spec)
{
	struct bld b;
	xmlNodePtr vm;
	char err[128], *out = NULL;

	if (check_rules(spec, err, sizeof(err)) < 0) {
		errno = EINVAL;
		return NULL;
	}
	b = new_doc();
	vm = meta_node(&b, NULL, spec, false);
	if (!b.oom)
		out = dump(vm, false, "");
	xmlFreeDoc(b.doc);
	if (!out)
		errno = ENOMEM;
	return out;
}

static void build_os(struct bld *b, xmlNodePtr dom, const struct domxml_opts *o,
                     const struct vm_spec *s)
{
	xmlNodePtr os = el(b, dom, "os", NULL, NULL);
	xmlNodePtr type = el(b, os, "type", "hvm", "arch", "x86_64", NULL);

	if (type && o->machine[0] && !xmlNewProp(type, BAD_CAST "machine", BAD_CAST o->machine))
		b->oom = true;
	if (s->kernel[0]) {
		el(b, os, "kernel", s->kernel, NULL);
		if (s->initrd[0])
			el(b, os, "initrd", s->initrd, NULL);
		el(b, os, "cmdline", s->append[0] ? s->append : "console=ttyS0 quiet", NULL);
	} else {
		el(b, os, "boot", NULL, "dev", "hd", NULL);
	}
}

static void build_devices(struct bld *b, xmlNodePtr dom, const struct domxml_opts *o,
                          const struct vm_spec *s)
{
	xmlNodePtr dev = el(b, dom, "devices", NULL, NULL), n;

	if (o->emulator[0])
		el(b, dev, "emulator", o->emulator, NULL);
	if (s->disk[0]) {
		/* shared storage, live migration: no host page cache, so the
		 * destination reads every write the source made */
		n = el(b, dev, "disk", NULL, "type", "file", "device", "disk", NULL);
		el(b, n, "driver", NULL, "name", "qemu", "type", "raw", "cache", "none", NULL);
		el(b, n, "source", NULL, "file", s->disk, NULL);
		el(b, n, "target", NULL, "dev", "vda", "bus", "virtio", NULL);
	}
	n = el(b, dev, "interface", NULL, "type", "bridge", NULL);
	if (s->mac[0])
		el(b, n, "mac", NULL, "address", s->mac, NULL);
	el(b, n, "source", NULL, "bridge", s->bridge, NULL);
	if (s->tap[0])
		el(b, n, "target", NULL, "dev", s->tap, NULL);
	el(b, n, "model", NULL, "type", "virtio", NULL);
	/* no option ROM (QEMU's romfile=): the guest boots from a kernel or
	 * disk, never PXE, and the ROM would have to match on every host */
	el(b, n, "rom", NULL, "enabled", "no", NULL);
	/* a pty (virsh console), and what the guest prints kept in a file */
	n = el(b, dev, "serial", NULL, "type", "pty", NULL);
	if (o->console_log[0])
		el(b, n, "log", NULL, "file", o->console_log, "append", "on", NULL);
	n = el(b, dev, "console", NULL, "type", "pty", NULL);
	el(b, n, "target", NULL, "type", "serial", NULL);
	if (s->guest_load) {
		/* no path: libvirt makes one in its per-domain channel directory */
		n = el(b, dev, "channel", NULL, "type", "unix", NULL);
		el(b, n, "source", NULL, "mode", "bind", NULL);
		el(b, n, "target", NULL, "type", "virtio", "name", DOMXML_GUESTLOAD_PORT, NULL);
	}
	el(b, dev, "controller", NULL, "type", "usb", "model", "none", NULL);
	n = el(b, dev, "memballoon", NULL, "model", "virtio", NULL);
	if (o->balloon_period_s > 0) {
		char period[16];
		snprintf(period, sizeof(period), "%d", o->balloon_period_s);
		el(b, n, "stats", NULL, "period", period, NULL);
	}
}

int domxml_build(const struct domxml_opts *o, const struct vm_spec *spec, char **out, char *err,
                 size_t errlen)
{
	char kib[32], max_kib[32], vcpus[16], max_vcpus[16];
	struct bld b;
	xmlNodePtr dom, n;
	int rc, maxv, maxm;

	*out = NULL;
	rc = check_build(o, spec, err, errlen);
	if (rc < 0)
		return rc;
	maxv = spec->max_vcpus ? spec->max_vcpus : spec->vcpus;
	maxm = spec->max_mem_mib ? spec->max_mem_mib : spec->mem_mib;
	snprintf(kib, sizeof(kib), "%lld", (long long)spec->mem_mib * 1024);
	snprintf(max_kib, sizeof(max_kib), "%lld", (long long)maxm * 1024);
	snprintf(vcpus, sizeof(vcpus), "%d", spec->vcpus);
	snprintf(max_vcpus, sizeof(max_vcpus), "%d", maxv);

	b = new_doc();
	dom = el(&b, NULL, "domain", NULL, "type", o->domain_type, NULL);
	el(&b, dom, "name", spec->id, NULL);
	n = el(&b, dom, "metadata", NULL, NULL);
	meta_node(&b, n, spec, true);
	/* the guest's RAM is the maximum; the balloon holds back the rest */
	el(&b, dom, "memory", max_kib, "unit", "KiB", NULL);
	el(&b, dom, "currentMemory", kib, "unit", "KiB", NULL);
	/* vCPUs up to the maximum can be hot-plugged while it runs */
	if (maxv > spec->vcpus)
		el(&b, dom, "vcpu", max_vcpus, "current", vcpus, NULL);
	else
		el(&b, dom, "vcpu", vcpus, NULL);
	build_os(&b, dom, o, spec);
	/* ACPI, as QEMU gives by default: a guest can be shut down cleanly */
	n = el(&b, dom, "features", NULL, NULL);
	el(&b, n, "acpi", NULL, NULL);
	el(&b, dom, "on_poweroff", "destroy", NULL);
	el(&b, dom, "on_reboot", "restart", NULL);
	el(&b, dom, "on_crash", "destroy", NULL);
	build_devices(&b, dom, o, spec);
	if (!b.oom)
		*out = dump(dom, true, "\n");
	xmlFreeDoc(b.doc);
	if (!*out) {
		snprintf(err, errlen, PFX "vm %s: out of memory", spec->id);
		return -ENOMEM;
	}
	return 0;
}

/* ---- parsing ----------------------------------------------------------- */

struct perr {
	char first[160]; /* the first error, "line N: message" */
	char fatal[160]; /* the first fatal error */
	bool doctype;
};

static void note_error(char *dst, size_t cap, const xmlError *e)
{
	size_t n;

	if (dst[0])
		return;
	snprintf(dst, cap, "line %d: %s", e->line, e->message ? e->message : "error");
	/* one line: libxml2 ends messages with '\n' and puts some inside */
	for (char *p = dst; (p = strchr(p, '\n'));)
		*p = ' ';
	n = strlen(dst);
	while (n && dst[n - 1] == ' ')
		dst[--n] = '\0';
}

/* Called by libxml2 for each diagnostic of this parse (the context's own
 * structured handler, so nothing goes to stderr). */
static void on_error(void *data, xmlErrorPtr e)
{
	xmlParserCtxtPtr ctxt = data;
	struct perr *pe = ctxt->_private;

	if (e->level == XML_ERR_FATAL)
		note_error(pe->fatal, sizeof(pe->fatal), e);
	if (e->level >= XML_ERR_ERROR)
		note_error(pe->first, sizeof(pe->first), e);
}

/* <!DOCTYPE ...>: libvirt never writes one, and it is where entities and
 * external subsets come from. Stop before libxml2 reads the subset. */
static void on_doctype(void *data, const xmlChar *name, const xmlChar *ext_id,
                       const xmlChar *sys_id)
{
	xmlParserCtxtPtr ctxt = data;
	struct perr *pe = ctxt->_private;

	pe->doctype = true;
	xmlStopParser(ctxt);
}

static bool is_el(xmlNodePtr n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && !n->ns && !strcmp((const char *)n->name, name);
}

static xmlNodePtr child_el(xmlNodePtr parent, const char *name)
{
	for (xmlNodePtr c = parent ? parent->children : NULL; c; c = c->next)
		if (is_el(c, name))
			return c;
	return NULL;
}

static int copy_str(const char *what, const char *v, char *out, size_t cap, char *err,
                    size_t errlen)
{
	size_t n = strlen(v);

	if (n >= cap) {
		snprintf(err, errlen, PFX "%s is longer than %zu bytes", what, cap - 1);
		return -EINVAL;
	}
	memcpy(out, v, n + 1);
	return 0;
}

/* The text directly inside n: its text and CDATA children, never the
 * content of entity references (a document without a DOCTYPE can have none
 * but the predefined ones, which libxml2 turns into text). */
static int get_text(xmlNodePtr n, const char *what, char *out, size_t cap, char *err, size_t errlen)
{
	size_t len = 0;

	out[0] = '\0';
	for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next) {
		size_t l;
		if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
			continue;
		l = strlen((const char *)c->content);
		if (len + l >= cap) {
			snprintf(err, errlen, PFX "%s is longer than %zu bytes", what, cap - 1);
			return -EINVAL;
		}
		memcpy(out + len, c->content, l + 1);
		len += l;
	}
	return 0;
}

/* Attribute name of n (no namespace) into out; "" when n or it is absent. */
static int get_attr(xmlNodePtr n, const char *name, const char *what, char *out, size_t cap,
                    char *err, size_t errlen)
{
	xmlChar *v;
	int rc;

	out[0] = '\0';
	if (!n)
		return 0;
	v = xmlGetNoNsProp(n, BAD_CAST name);
	if (!v)
		return 0;
	rc = copy_str(what, (const char *)v, out, cap, err, errlen);
	xmlFree(v);
	return rc;
}

static const char *trim(char *s)
{
	size_t n = strlen(s);

	while (n && strchr(" \t\r\n", s[n - 1]))
		s[--n] = '\0';
	while (*s && strchr(" \t\r\n", *s))
		s++;
	return s;
}

/* Decimal digits only (libvirt writes no sign, no base prefix). */
static int parse_u64(const char *what, char *text, uint64_t *v, char *err, size_t errlen)
{
	const char *s = trim(text);
	uint64_t x = 0;

	if (!*s) {
		snprintf(err, errlen, PFX "%s is empty", what);
		return -EINVAL;
	}
	for (; *s; s++) {
		if (*s < '0' || *s > '9') {
			snprintf(err, errlen, PFX "%s '%.32s' is not a number", what, trim(text));
			return -EINVAL;
		}
		if (x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) {
			snprintf(err, errlen, PFX "%s is out of range", what);
			return -EINVAL;
		}
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*v = x;
	return 0;
}

static int parse_int(const char *what, char *text, int lo, int hi, int *v, char *err, size_t errlen)
{
	uint64_t x;

	if (parse_u64(what, text, &x, err, errlen) < 0)
		return -EINVAL;
	if (x < (uint64_t)lo || x > (uint64_t)hi) {
		snprintf(err, errlen, PFX "%s %llu is out of range %d-%d", what,
		         (unsigned long long)x, lo, hi);
		return -EINVAL;
	}
	*v = (int)x;
	return 0;
}

/* The unit attribute of a libvirt scaled integer, as virScaleInteger reads
 * it (case does not matter): b, byte, bytes; k, m, g, t, p, e alone or with
 * "iB" are powers of 1024; KB, MB ... powers of 1000. Absent: KiB. 0 when
 * unknown. */
static uint64_t unit_scale(const char *u)
{
	static const char order[] = "kmgtpe";
	const char *p;
	uint64_t base, scale = 1;

	if (!u[0])
		return 1024;
	if (!strcasecmp(u, "b") || !strcasecmp(u, "byte") || !strcasecmp(u, "bytes"))
		return 1;
	if (!u[1] || !strcasecmp(u + 1, "iB"))
		base = 1024;
	else if ((u[1] == 'b' || u[1] == 'B') && !u[2])
		base = 1000;
	else
		return 0;
	p = strchr(order, u[0] | 0x20);
	if (!p || !*p)
		return 0;
	for (long i = 0; i <= p - order; i++)
		scale *= base;
	return scale;
}

/* <memory unit=...>N</memory> in bytes. */
static int get_mem(xmlNodePtr n, const char *what, uint64_t *bytes, char *err, size_t errlen)
{
	char unit[16], text[32];
	uint64_t v, scale;

	if (get_attr(n, "unit", what, unit, sizeof(unit), err, errlen) < 0 ||
	    get_text(n, what, text, sizeof(text), err, errlen) < 0 ||
	    parse_u64(what, text, &v, err, errlen) < 0)
		return -EINVAL;
	scale = unit_scale(unit);
	if (!scale) {
		snprintf(err, errlen, PFX "%s: unknown unit '%s'", what, unit);
		return -EINVAL;
	}
	if (v > UINT64_MAX / scale) {
		snprintf(err, errlen, PFX "%s is out of range", what);
		return -EINVAL;
	}
	*bytes = v * scale;
	return 0;
}

static int mem_mib(const char *what, uint64_t bytes, int *out, char *err, size_t errlen)
{
	if (bytes >> 20 > INT_MAX) {
		snprintf(err, errlen, PFX "%s is out of range", what);
		return -EINVAL;
	}
	*out = (int)(bytes >> 20);
	return 0;
}

static int parse_bool(const char *what, xmlNodePtr n, bool *out, char *err, size_t errlen)
{
	char text[8];
	const char *t;

	*out = false;
	if (!n)
		return 0;
	if (get_text(n, what, text, sizeof(text), err, errlen) < 0)
		return -EINVAL;
	t = trim(text);
	if (strcmp(t, "0") != 0 && strcmp(t, "1") != 0) {
		snprintf(err, errlen, PFX "%s must be 0 or 1", what);
		return -EINVAL;
	}
	*out = t[0] == '1';
	return 0;
}

/* A child of <loadease:vm>: in DOMXML_NS (what domxml_build() and libvirt
 * write) or in no namespace (a hand-written definition). */
static xmlNodePtr meta_child(xmlNodePtr vm, const char *name)
{
	for (xmlNodePtr c = vm->children; c; c = c->next) {
		if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, name) != 0)
			continue;
		if (!c->ns || (c->ns->href && !strcmp((const char *)c->ns->href, DOMXML_NS)))
			return c;
	}
	return NULL;
}

static int parse_meta(xmlNodePtr metadata, struct domxml_info *out, char *err, size_t errlen)
{
	xmlNodePtr vm = NULL;

	for (xmlNodePtr c = metadata ? metadata->children : NULL; c && !vm; c = c->next) {
		if (c->type == XML_ELEMENT_NODE && c->ns && c->ns->href &&
		    !strcmp((const char *)c->ns->href, DOMXML_NS) &&
		    !strcmp((const char *)c->name, "vm"))
			vm = c;
	}
	if (!vm)
		return 0;
	out->has_meta = true;
	if (get_text(meta_child(vm, "pin"), "metadata pin", out->pin, sizeof(out->pin), err,
	             errlen) < 0 ||
	    get_text(meta_child(vm, "group"), "metadata group", out->group, sizeof(out->group), err,
	             errlen) < 0 ||
	    get_text(meta_child(vm, "anti_group"), "metadata anti_group", out->anti_group,
	             sizeof(out->anti_group), err, errlen) < 0 ||
	    parse_bool("metadata exclude", meta_child(vm, "exclude"), &out->exclude, err, errlen) <
	        0 ||
	    parse_bool("metadata guest_load", meta_child(vm, "guest_load"), &out->guest_load, err,
	               errlen) < 0)
		return -EINVAL;
	return 0;
}

static int parse_nic(xmlNodePtr n, struct domxml_nic *nic, char *err, size_t errlen)
{
	if (get_attr(child_el(n, "target"), "dev", "interface target dev", nic->target,
	             sizeof(nic->target), err, errlen) < 0 ||
	    get_attr(child_el(n, "mac"), "address", "interface mac address", nic->mac,
	             sizeof(nic->mac), err, errlen) < 0 ||
	    get_attr(child_el(n, "source"), "bridge", "interface source bridge", nic->bridge,
	             sizeof(nic->bridge), err, errlen) < 0)
		return -EINVAL;
	return 0;
}

static int parse_devices(xmlNodePtr devices, struct domxml_info *out, char *err, size_t errlen)
{
	bool disk_seen = false;
	char v[64];

	for (xmlNodePtr c = devices ? devices->children : NULL; c; c = c->next) {
		if (is_el(c, "disk") && !disk_seen) {
			xmlNodePtr src = child_el(c, "source");
			if (get_attr(c, "device", "disk device", v, sizeof(v), err, errlen) < 0)
				return -EINVAL;
			if (v[0] && strcmp(v, "disk") != 0)
				continue;
			disk_seen = true;
			if (get_attr(src, "file", "disk source", out->disk, sizeof(out->disk), err,
			             errlen) < 0)
				return -EINVAL;
			if (!out->disk[0] && get_attr(src, "dev", "disk source", out->disk,
			                              sizeof(out->disk), err, errlen) < 0)
				return -EINVAL;
		} else if (is_el(c, "interface")) {
			if (out->nnics == DOMXML_MAX_NICS) {
				out->nics_truncated = true;
				continue;
			}
			if (parse_nic(c, &out->nic[out->nnics], err, errlen) < 0)
				return -EINVAL;
			out->nnics++;
		} else if (is_el(c, "channel")) {
			if (get_attr(child_el(c, "target"), "name", "channel target name", v,
			             sizeof(v), err, errlen) < 0)
				return -EINVAL;
			if (strcmp(v, DOMXML_GUESTLOAD_PORT) != 0)
				continue;
			if (get_attr(child_el(c, "source"), "path", "guest-load channel path",
			             out->guestload_socket, sizeof(out->guestload_socket), err,
			             errlen) < 0)
				return -EINVAL;
		} else if (is_el(c, "memballoon")) {
			if (get_attr(c, "model", "memballoon model", v, sizeof(v), err, errlen) < 0)
				return -EINVAL;
			out->has_balloon = !strncmp(v, "virtio", 6);
		}
	}
	return 0;
}

static int parse_domain(xmlNodePtr dom, struct domxml_info *out, char *err, size_t errlen)
{
	xmlNodePtr n, os;
	char text[32];
	uint64_t max_bytes, cur_bytes;

	if (get_attr(dom, "type", "domain type", out->type, sizeof(out->type), err, errlen) < 0 ||
	    get_attr(dom, "id", "domain id", text, sizeof(text), err, errlen) < 0)
		return -EINVAL;
	out->id = -1;
	if (text[0] && parse_int("domain id", text, 0, INT_MAX, &out->id, err, errlen) < 0)
		return -EINVAL;
	n = child_el(dom, "name");
	if (!n) {
		snprintf(err, errlen, PFX "no <name>");
		return -EINVAL;
	}
	if (get_text(n, "name", out->name, sizeof(out->name), err, errlen) < 0 ||
	    get_text(child_el(dom, "uuid"), "uuid", out->uuid, sizeof(out->uuid), err, errlen) < 0)
		return -EINVAL;

	/* vCPUs: libvirt always writes <vcpu>; it means 1 when absent */
	out->vcpus = out->max_vcpus = 1;
	n = child_el(dom, "vcpu");
	if (n && (get_text(n, "vcpu", text, sizeof(text), err, errlen) < 0 ||
	          parse_int("vcpu", text, 1, MAX_VCPUS, &out->max_vcpus, err, errlen) < 0))
		return -EINVAL;
	out->vcpus = out->max_vcpus;
	if (get_attr(n, "current", "vcpu current", text, sizeof(text), err, errlen) < 0)
		return -EINVAL;
	if (n && text[0] &&
	    parse_int("vcpu", text, 1, out->max_vcpus, &out->vcpus, err, errlen) < 0)
		return -EINVAL;

	n = child_el(dom, "memory");
	if (!n) {
		snprintf(err, errlen, PFX "no <memory>");
		return -EINVAL;
	}
	if (get_mem(n, "memory", &max_bytes, err, errlen) < 0)
		return -EINVAL;
	cur_bytes = max_bytes;
	n = child_el(dom, "currentMemory");
	if (n && get_mem(n, "currentMemory", &cur_bytes, err, errlen) < 0)
		return -EINVAL;
	if (mem_mib("memory", max_bytes, &out->max_mem_mib, err, errlen) < 0 ||
	    mem_mib("currentMemory", cur_bytes, &out->mem_mib, err, errlen) < 0)
		return -EINVAL;

	os = child_el(dom, "os");
	if (get_text(child_el(os, "kernel"), "os kernel", out->kernel, sizeof(out->kernel), err,
	             errlen) < 0 ||
	    get_text(child_el(os, "initrd"), "os initrd", out->initrd, sizeof(out->initrd), err,
	             errlen) < 0 ||
	    get_text(child_el(os, "cmdline"), "os cmdline", out->cmdline, sizeof(out->cmdline), err,
	             errlen) < 0)
		return -EINVAL;

	if (parse_devices(child_el(dom, "devices"), out, err, errlen) < 0 ||
	    parse_meta(child_el(dom, "metadata"), out, err, errlen) < 0)
		return -EINVAL;
	return 0;
}

int domxml_parse(const char *xml, size_t len, struct domxml_info *out, char *err, size_t errlen)
{
	/* no XML_PARSE_NOENT (entities stay references), no DTD loading or
	 * validation, no network; the input is UTF-8 whatever it declares
	 * (libvirt writes UTF-8), so no iconv converter runs either */
	const int opts = XML_PARSE_NONET | XML_PARSE_IGNORE_ENC;
	struct perr pe = {"", "", false};
	xmlParserCtxtPtr ctxt = NULL;
	xmlDocPtr doc = NULL;
	xmlNodePtr root;
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	out->id = -1;
	if (len == 0) {
		snprintf(err, errlen, PFX "empty");
		goto out;
	}
	if (len > DOMXML_MAX_XML) {
		snprintf(err, errlen, PFX "%zu bytes, more than the limit of %d", len,
		         DOMXML_MAX_XML);
		goto out;
	}
	xml_init();
	ctxt = xmlNewParserCtxt();
	if (!ctxt) {
		snprintf(err, errlen, PFX "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	/* this context's own handlers (ctxt->sax is a private copy) */
	ctxt->_private = &pe;
	ctxt->sax->initialized = XML_SAX2_MAGIC;
	ctxt->sax->serror = on_error;
	ctxt->sax->internalSubset = on_doctype;
	doc = xmlCtxtReadMemory(ctxt, xml, (int)len, NULL, "UTF-8", opts);
	if (pe.doctype) {
		snprintf(err, errlen, PFX "a DOCTYPE is not allowed");
		goto out;
	}
	if (!doc || !ctxt->wellFormed) {
		const char *why = pe.fatal[0] ? pe.fatal : pe.first;
		snprintf(err, errlen, PFX "not XML: %s", why[0] ? why : "parse failed");
		goto out;
	}
	root = xmlDocGetRootElement(doc);
	if (!root || !is_el(root, "domain")) {
		snprintf(err, errlen, PFX "no <domain> element");
		goto out;
	}
	rc = parse_domain(root, out, err, errlen);
out:
	xmlFreeDoc(doc);
	xmlFreeParserCtxt(ctxt);
	if (rc < 0) {
		memset(out, 0, sizeof(*out));
		out->id = -1;
	}
	return rc;
}
