/* test_domxml.c - the libvirt domain XML builder and reader.
 *
 * build_cases[] give a request and either the golden file under
 * tests/fixtures/domxml/ that domxml_build() must write byte for byte, or
 * the error it must refuse the request with. Each golden was defined in
 * libvirt 9.0 with `virsh define --validate` (see the fixtures' README).
 * parse_cases[] name a fixture - most are what libvirt 9.0 printed with
 * `virsh dumpxml` for domains defined from those goldens, running or not -
 * and the expected return, error prefix and fields (literals read off the
 * fixture). Fixtures are loaded into buffers of exactly their size (no
 * terminating NUL), so ASan catches a read past len.
 *
 * LE_UPDATE_GOLDEN=1 rewrites the goldens from build_cases[] instead of
 * comparing (then check them with virsh and git diff).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fixture.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/domxml.h"

#define FX       "tests/fixtures/domxml/"
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- building ---------------------------------------------------------- */

/* the agent's defaults on a TCG test host, and a production KVM host */
#define OPTS_TCG                                                                                   \
	.domain_type = "qemu", .emulator = "/usr/bin/qemu-system-x86_64", .machine = "q35",        \
	.balloon_period_s = 2
#define OPTS_KVM .domain_type = "kvm", .machine = "q35", .balloon_period_s = 5

/* a valid request to break one field of: the cases below override a field of
 * it, which is what -Woverride-init warns about */
#pragma GCC diagnostic ignored "-Woverride-init"
#define SPEC_OK .id = "t", .vcpus = 1, .mem_mib = 64, .kernel = "/img/vmlinuz", .bridge = "br0"

struct build_case {
	const char *name; /* golden file on success, else a label */
	struct domxml_opts o;
	struct vm_spec s;
	int rc;
	const char *err; /* expected prefix of err; NULL on success */
};

static const struct build_case build_cases[] = {
    /* the test guest: kernel + initrd, guest-load channel, console to a file */
    {"build_kernel_guestload.xml",
     {OPTS_TCG, .console_log = "/var/lib/loadease/vms/web-1/console.log"},
     {.id = "web-1",
      .vcpus = 2,
      .mem_mib = 256,
      .kernel = "/var/lib/loadease/images/vmlinuz",
      .initrd = "/var/lib/loadease/images/initrd.img",
      .bridge = "br0",
      .tap = "le-web-1",
      .guest_load = true},
     0,
     NULL},
    /* a disk image on shared storage, libvirt's emulator and machine, no
     * balloon statistics, no console file (a pty) */
    {"build_disk.xml",
     {.domain_type = "kvm"},
     {.id = "db-2",
      .vcpus = 4,
      .mem_mib = 2048,
      .disk = "/srv/shared/images/db-2.img",
      .bridge = "br0",
      .mac = "52:54:00:aa:bb:02"},
     0,
     NULL},
    /* every rule, a kernel and a disk, a command line of its own */
    {"build_rules.xml",
     {OPTS_KVM, .console_log = "/var/lib/loadease/vms/batch-7/console.log"},
     {.id = "batch-7",
      .vcpus = 3,
      .mem_mib = 1536,
      .kernel = "/var/lib/loadease/images/vmlinuz",
      .disk = "/srv/shared/images/batch-7.img",
      .append = "console=ttyS0 loadease.ip=10.0.0.7/24 loadease.sink=10.0.0.1:9",
      .bridge = "br-vms",
      .tap = "le-batch-7",
      .mac = "52:54:00:12:34:56",
      .pin = "host-a,host-b",
      .group = "batch",
      .anti_group = "db",
      .exclude = true,
      .guest_load = true},
     0,
     NULL},
    /* resizable in place: 1 of 4 vCPUs and 256 of 1024 MiB at boot */
    {"build_resizable.xml",
     {OPTS_TCG},
     {.id = "grow-1",
      .vcpus = 1,
      .max_vcpus = 4,
      .mem_mib = 256,
      .max_mem_mib = 1024,
      .kernel = "/var/lib/loadease/images/vmlinuz",
      .initrd = "/var/lib/loadease/images/initrd.img",
      .bridge = "br0",
      .tap = "le-grow-1",
      .guest_load = true},
     0,
     NULL},
    /* markup characters in text and attributes, and UTF-8 */
    {"build_escape.xml",
     {OPTS_TCG, .console_log = "/var/log/le&co/<x>\"'.log"},
     {.id = "a<b>&\"c'd",
      .vcpus = 1,
      .mem_mib = 64,
      .kernel = "/img/k&<>\"'.bin",
      .append = "console=ttyS0 x=\"<&>\" y='1' caf\xc3\xa9 ]]>",
      .bridge = "br0",
      .tap = "le-esc",
      .pin = "h\"1',h<2>",
      .group = "g<&>",
      .anti_group = "a\"'"},
     0,
     NULL},

    {"no id", {OPTS_TCG}, {SPEC_OK, .id = ""}, -EINVAL, "domain XML: the VM has no id"},
    {"vcpus 0", {OPTS_TCG}, {SPEC_OK, .vcpus = 0}, -EINVAL, "domain XML: vm t: vcpus 0 is less"},
    {"vcpus -2", {OPTS_TCG}, {SPEC_OK, .vcpus = -2}, -EINVAL, "domain XML: vm t: vcpus -2 is less"},
    {"mem 0", {OPTS_TCG}, {SPEC_OK, .mem_mib = 0}, -EINVAL, "domain XML: vm t: mem_mib 0 is less"},
    {"max_vcpus below vcpus",
     {OPTS_TCG},
     {SPEC_OK, .vcpus = 2, .max_vcpus = 1},
     -EINVAL,
     "domain XML: vm t: max_vcpus 1 is less than vcpus 2"},
    {"max_mem_mib below mem_mib",
     {OPTS_TCG},
     {SPEC_OK, .mem_mib = 128, .max_mem_mib = 64},
     -EINVAL,
     "domain XML: vm t: max_mem_mib 64 is less than mem_mib 128"},
    {"type xen",
     {OPTS_TCG, .domain_type = "xen"},
     {SPEC_OK},
     -EINVAL,
     "domain XML: domain type 'xen' is not kvm or qemu"},
    {"type empty",
     {OPTS_TCG, .domain_type = ""},
     {SPEC_OK},
     -EINVAL,
     "domain XML: domain type '' is not"},
    {"no kernel or disk",
     {OPTS_TCG},
     {SPEC_OK, .kernel = ""},
     -EINVAL,
     "domain XML: vm t: give a kernel or a disk"},
    {"initrd only",
     {OPTS_TCG},
     {SPEC_OK, .kernel = "", .disk = "/img/d.img", .initrd = "/img/initrd"},
     -EINVAL,
     "domain XML: vm t: an initrd needs a kernel"},
    {"no bridge", {OPTS_TCG}, {SPEC_OK, .bridge = ""}, -EINVAL, "domain XML: vm t: no bridge"},
    {"relative kernel",
     {OPTS_TCG},
     {SPEC_OK, .kernel = "vmlinuz"},
     -EINVAL,
     "domain XML: 'kernel' must be an absolute path"},
    {"relative console log",
     {OPTS_TCG, .console_log = "console.log"},
     {SPEC_OK},
     -EINVAL,
     "domain XML: 'console_log' must be an absolute path"},
    /* not in libvirt's schema (deviceName), not a Linux interface name */
    {"tap with markup",
     {OPTS_TCG},
     {SPEC_OK, .tap = "t'<&>"},
     -EINVAL,
     "domain XML: vm t: tap 't'<&>' is not an interface name"},
    {"bridge with slash",
     {OPTS_TCG},
     {SPEC_OK, .bridge = "br/0"},
     -EINVAL,
     "domain XML: vm t: bridge 'br/0' is not an interface name"},
    {"machine with space",
     {OPTS_TCG, .machine = "pc q35"},
     {SPEC_OK},
     -EINVAL,
     "domain XML: machine 'pc q35' is not a machine type name"},
    /* libvirt 9.0 silently drops these from a definition (measured) */
    {"tap vnet",
     {OPTS_TCG},
     {SPEC_OK, .tap = "vnet7"},
     -EINVAL,
     "domain XML: vm t: tap 'vnet7': libvirt reserves"},
    {"tap macvtap",
     {OPTS_TCG},
     {SPEC_OK, .tap = "macvtap0"},
     -EINVAL,
     "domain XML: vm t: tap 'macvtap0': libvirt reserves"},
    /* libvirt: "expected unicast mac address, found multicast" */
    {"mac multicast",
     {OPTS_TCG},
     {SPEC_OK, .mac = "53:54:00:12:34:56"},
     -EINVAL,
     "domain XML: vm t: mac '53:54:00:12:34:56' is not a unicast"},
    {"mac short",
     {OPTS_TCG},
     {SPEC_OK, .mac = "52:54:00:12:34"},
     -EINVAL,
     "domain XML: vm t: mac '52:54:00:12:34' is not"},
    {"mac dashes",
     {OPTS_TCG},
     {SPEC_OK, .mac = "52-54-00-12-34-56"},
     -EINVAL,
     "domain XML: vm t: mac '52-54-00-12-34-56' is not"},
    {"mac not hex",
     {OPTS_TCG},
     {SPEC_OK, .mac = "52:54:00:12:34:5g"},
     -EINVAL,
     "domain XML: vm t: mac '52:54:00:12:34:5g' is not"},
    {"newline in append",
     {OPTS_TCG},
     {SPEC_OK, .append = "quiet\nrw"},
     -EINVAL,
     "domain XML: 'append' contains a control character"},
    {"control in group",
     {OPTS_TCG},
     {SPEC_OK, .group = "g\x01"},
     -EINVAL,
     "domain XML: 'group' contains a control character"},
    {"invalid UTF-8 id",
     {OPTS_TCG},
     {SPEC_OK, .id = "vm\xff"},
     -EINVAL,
     "domain XML: 'id' is not UTF-8"},
    {"negative balloon period",
     {OPTS_TCG, .balloon_period_s = -1},
     {SPEC_OK},
     -EINVAL,
     "domain XML: balloon period -1 s is negative"},
};

static bool update_golden(void)
{
	const char *e = getenv("LE_UPDATE_GOLDEN");
	return e && e[0] == '1';
}

static void expect_file(const char *file, const char *got)
{
	char path[256];
	size_t len;
	char *want;

	snprintf(path, sizeof(path), FX "%s", file);
	if (update_golden()) {
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		assert_int_equal(fputs(got, f) >= 0, 1);
		assert_int_equal(fclose(f), 0);
		return;
	}
	want = fixture_load(path, &len);
	if (strlen(got) != len || memcmp(got, want, len) != 0)
		fail_msg("%s differs from domxml_build():\n%s", path, got);
	free(want);
}

static void test_build(void **state)
{
	const struct build_case *c = *state;
	char err[160] = "", *xml = (char *)1;
	int rc = domxml_build(&c->o, &c->s, &xml, err, sizeof(err));

	assert_int_equal(rc, c->rc);
	if (rc == 0) {
		assert_non_null(xml);
		expect_file(c->name, xml);
		free(xml);
		return;
	}
	assert_null(xml);
	if (strncmp(err, c->err, strlen(c->err)) != 0)
		fail_msg("err '%s' does not start with '%s'", err, c->err);
}

/* parse(build(spec)) gives spec back. */
static void test_round_trip(void **state)
{
	const struct build_case *c = *state;
	struct domxml_info in;
	char err[160] = "", *xml;

	assert_int_equal(domxml_build(&c->o, &c->s, &xml, err, sizeof(err)), 0);
	if (domxml_parse(xml, strlen(xml), &in, err, sizeof(err)) != 0)
		fail_msg("%s: %s", c->name, err);
	free(xml);
	assert_string_equal(in.name, c->s.id);
	assert_string_equal(in.type, c->o.domain_type);
	assert_string_equal(in.uuid, "");
	assert_int_equal(in.id, -1);
	assert_int_equal(in.vcpus, c->s.vcpus);
	assert_int_equal(in.max_vcpus, c->s.max_vcpus ? c->s.max_vcpus : c->s.vcpus);
	assert_int_equal(in.mem_mib, c->s.mem_mib);
	assert_int_equal(in.max_mem_mib, c->s.max_mem_mib ? c->s.max_mem_mib : c->s.mem_mib);
	assert_string_equal(in.kernel, c->s.kernel);
	assert_string_equal(in.initrd, c->s.initrd);
	if (c->s.kernel[0])
		assert_string_equal(in.cmdline,
		                    c->s.append[0] ? c->s.append : "console=ttyS0 quiet");
	else
		assert_string_equal(in.cmdline, "");
	assert_string_equal(in.disk, c->s.disk);
	assert_int_equal(in.nnics, 1);
	assert_false(in.nics_truncated);
	assert_string_equal(in.nic[0].target, c->s.tap);
	assert_string_equal(in.nic[0].mac, c->s.mac);
	assert_string_equal(in.nic[0].bridge, c->s.bridge);
	assert_string_equal(in.guestload_socket, "");
	assert_true(in.has_balloon);
	assert_true(in.has_meta);
	assert_string_equal(in.pin, c->s.pin);
	assert_string_equal(in.group, c->s.group);
	assert_string_equal(in.anti_group, c->s.anti_group);
	assert_int_equal(in.exclude, c->s.exclude);
	assert_int_equal(in.guest_load, c->s.guest_load);
}

/* What virDomainSetMetadata takes (measured with virsh metadata --set on
 * libvirt 9.0: it adds the namespace itself). */
static void test_meta(void **state)
{
	static const struct {
		const char *label;
		struct vm_spec s;
		const char *want;
	} cases[] = {
	    {"no rules",
	     {.id = "a"},
	     "<vm><pin/><group/><anti_group/><exclude>0</exclude><guest_load>0</guest_load></vm>"},
	    {"rules",
	     {.id = "b",
	      .pin = "host-a,host-b",
	      .group = "batch",
	      .anti_group = "db",
	      .exclude = true,
	      .guest_load = true},
	     "<vm><pin>host-a,host-b</pin><group>batch</group><anti_group>db</anti_group>"
	     "<exclude>1</exclude><guest_load>1</guest_load></vm>"},
	    {"markup",
	     {.id = "c", .pin = "<&>\"'", .group = "caf\xc3\xa9"},
	     "<vm><pin>&lt;&amp;&gt;\"'</pin><group>caf\xc3\xa9</group><anti_group/>"
	     "<exclude>0</exclude><guest_load>0</guest_load></vm>"},
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		char *m = domxml_meta(&cases[i].s);
		if (!m || strcmp(m, cases[i].want) != 0)
			fail_msg("%s: got %s", cases[i].label, m ? m : "NULL");
		free(m);
	}
}

static void test_meta_invalid(void **state)
{
	struct vm_spec s = {.id = "a", .group = "g\n"};

	errno = 0;
	assert_null(domxml_meta(&s));
	assert_int_equal(errno, EINVAL);
	memset(s.pin, 'p', sizeof(s.pin)); /* not terminated */
	s.group[0] = '\0';
	errno = 0;
	assert_null(domxml_meta(&s));
	assert_int_equal(errno, EINVAL);
}

/* A string that fills its array is refused, not read past. */
static void test_build_unterminated(void **state)
{
	struct domxml_opts o = {OPTS_TCG};
	struct vm_spec s = {SPEC_OK};
	char err[160], *xml;

	memset(s.bridge, 'b', sizeof(s.bridge));
	assert_int_equal(domxml_build(&o, &s, &xml, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "domain XML: 'bridge' is not terminated");
	assert_null(xml);
}

/* ---- parsing ----------------------------------------------------------- */

struct parse_case {
	const char *file;
	int rc;
	const char *err; /* expected prefix of err; "" on success */
	struct domxml_info want;
};

/* libvirt_disk_inactive.xml, and the variants made from it by hand */
#define DB2                                                                                        \
	.name = "db-2", .uuid = "52f3a0d2-a76f-4c01-af92-2b5e3629996d", .type = "kvm", .id = -1,   \
	.vcpus = 4, .mem_mib = 2048, .max_mem_mib = 2048, .disk = "/srv/shared/images/db-2.img",   \
	.nic = {{"", "52:54:00:aa:bb:02", "br0"}}, .nnics = 1, .has_balloon = true,                \
	.has_meta = true

#define KERNEL        "/var/lib/loadease/images/vmlinuz"
#define INITRD        "/var/lib/loadease/images/initrd.img"
#define RULES_CMDLINE "console=ttyS0 loadease.ip=10.0.0.7/24 loadease.sink=10.0.0.1:9"
#define RULES_META                                                                                 \
	.has_meta = true, .pin = "host-a,host-b", .group = "batch", .anti_group = "db",            \
	.exclude = true, .guest_load = true

static const struct parse_case parse_cases[] = {
    /* what libvirt 9.0 printed for domains defined from the goldens */
    {"libvirt_kernel_inactive.xml",
     0,
     "",
     {.name = "web-1",
      .uuid = "770ec389-a4af-42b5-99df-b3423483ece6",
      .type = "qemu",
      .id = -1,
      .vcpus = 2,
      .mem_mib = 256,
      .max_mem_mib = 256,
      .kernel = KERNEL,
      .initrd = INITRD,
      .cmdline = "console=ttyS0 quiet",
      .nic = {{"le-web-1", "52:54:00:8a:03:5e", "br0"}},
      .nnics = 1,
      .has_balloon = true,
      .has_meta = true,
      .guest_load = true}},
    /* running, after virsh setmem 192 MiB and virsh metadata --set: the
     * channel path libvirt made, the id */
    {"libvirt_kernel_live.xml",
     0,
     "",
     {.name = "web-1",
      .uuid = "c061dda8-ba31-48bc-903c-28d8339f83ee",
      .type = "qemu",
      .id = 6,
      .vcpus = 2,
      .mem_mib = 192,
      .max_mem_mib = 256,
      .kernel = "/var/lib/libvirt/images/dx/vmlinuz",
      .initrd = "/var/lib/libvirt/images/dx/initrd.img",
      .cmdline = "console=ttyS0 quiet",
      .nic = {{"le-web-1", "52:54:00:24:6a:dc", "ledx0"}},
      .nnics = 1,
      .guestload_socket =
          "/var/lib/libvirt/qemu/channel/target/domain-6-web-1/org.loadease.guestload",
      .has_balloon = true,
      .has_meta = true,
      .pin = "host-b",
      .group = "web",
      .anti_group = "db",
      .exclude = true,
      .guest_load = true}},
    {"libvirt_disk_inactive.xml", 0, "", {DB2}},
    /* running: the tap libvirt named */
    {"libvirt_disk_live.xml",
     0,
     "",
     {DB2, .uuid = "8ee3b098-6bd4-4ae2-8d9a-57ac86c119b1", .type = "qemu", .id = 8,
      .disk = "/var/lib/libvirt/images/dx/db-2.img",
      .nic = {{"vnet2", "52:54:00:aa:bb:02", "ledx0"}}}},
    /* virsh metadata --key le --set: another prefix, the same namespace */
    {"libvirt_disk_live_le_prefix.xml",
     0,
     "",
     {DB2, .uuid = "8ee3b098-6bd4-4ae2-8d9a-57ac86c119b1", .type = "qemu", .id = 8,
      .disk = "/var/lib/libvirt/images/dx/db-2.img",
      .nic = {{"vnet2", "52:54:00:aa:bb:02", "ledx0"}}, .group = "db", .anti_group = "web"}},
    {"libvirt_rules_inactive.xml",
     0,
     "",
     {.name = "batch-7",
      .uuid = "695f1a51-f8e1-43e0-bdba-adda9d6c3099",
      .type = "kvm",
      .id = -1,
      .vcpus = 3,
      .mem_mib = 1536,
      .max_mem_mib = 1536,
      .kernel = KERNEL,
      .cmdline = RULES_CMDLINE,
      .disk = "/srv/shared/images/batch-7.img",
      .nic = {{"le-batch-7", "52:54:00:12:34:56", "br-vms"}},
      .nnics = 1,
      .has_balloon = true,
      RULES_META}},
    /* libvirt writes &quot; and &apos; where libxml2 did not */
    {"libvirt_escape_inactive.xml",
     0,
     "",
     {.name = "a<b>&\"c'd",
      .uuid = "3a26d970-ba17-4056-9cae-6dbd52e8960f",
      .type = "qemu",
      .id = -1,
      .vcpus = 1,
      .mem_mib = 64,
      .max_mem_mib = 64,
      .kernel = "/img/k&<>\"'.bin",
      .cmdline = "console=ttyS0 x=\"<&>\" y='1' caf\xc3\xa9 ]]>",
      .nic = {{"le-esc", "52:54:00:b4:43:13", "br0"}},
      .nnics = 1,
      .has_balloon = true,
      .has_meta = true,
      .pin = "h\"1',h<2>",
      .group = "g<&>",
      .anti_group = "a\"'"}},
    /* as virt-install writes one: a cdrom first, interface type network,
     * <vcpu current>, libosinfo's metadata and none of ours */
    {"libvirt_virtinstall_inactive.xml",
     0,
     "",
     {.name = "debian12",
      .uuid = "5b0c7a32-6f0e-4d2b-9a57-0c1f3e8d9a41",
      .type = "kvm",
      .id = -1,
      .vcpus = 2,
      .max_vcpus = 4,
      .mem_mib = 2048,
      .max_mem_mib = 2048,
      .disk = "/var/lib/libvirt/images/debian12.qcow2",
      .nic = {{"", "52:54:00:3e:91:7a", ""}},
      .nnics = 1,
      .has_balloon = true}},
    /* ten interfaces: the first DOMXML_MAX_NICS are read */
    {"libvirt_many_nics_inactive.xml",
     0,
     "",
     {.name = "many-nics",
      .uuid = "ab67a1ec-2803-4575-8daa-f5e6355477a6",
      .type = "kvm",
      .id = -1,
      .vcpus = 3,
      .mem_mib = 1536,
      .max_mem_mib = 1536,
      .kernel = KERNEL,
      .cmdline = RULES_CMDLINE,
      .disk = "/srv/shared/images/batch-7.img",
      .nic = {{"le-n0", "52:54:00:00:00:00", "br0"},
              {"le-n1", "52:54:00:00:00:01", "br1"},
              {"le-n2", "52:54:00:00:00:02", "br2"},
              {"le-n3", "52:54:00:00:00:03", "br0"},
              {"le-n4", "52:54:00:00:00:04", "br1"},
              {"le-n5", "52:54:00:00:00:05", "br2"},
              {"le-n6", "52:54:00:00:00:06", "br0"},
              {"le-n7", "52:54:00:00:00:07", "br1"}},
      .nnics = 8,
      .nics_truncated = true,
      .has_balloon = true,
      RULES_META}},

    /* memory units as libvirt reads them (virScaleInteger) */
    {"mem_unit_bytes.xml", 0, "", {DB2, .mem_mib = 128, .max_mem_mib = 256}},
    {"mem_unit_mib.xml", 0, "", {DB2, .mem_mib = 1024, .max_mem_mib = 2048}},
    {"mem_unit_gib.xml", 0, "", {DB2, .mem_mib = 1024, .max_mem_mib = 2048}},
    /* 10^9 and 5*10^8 bytes, rounded down to MiB */
    {"mem_unit_decimal.xml", 0, "", {DB2, .mem_mib = 476, .max_mem_mib = 953}},
    {"mem_unit_tib.xml", 0, "", {DB2, .mem_mib = 1048576, .max_mem_mib = 4194304}},
    /* no unit: KiB; no currentMemory: all of memory */
    {"mem_default_unit.xml", 0, "", {DB2, .mem_mib = 256, .max_mem_mib = 256}},
    {"mem_unit_unknown.xml", -EINVAL, "domain XML: memory: unknown unit 'furlongs'", {.id = -1}},
    {"mem_huge.xml", -EINVAL, "domain XML: memory is out of range", {.id = -1}},
    /* 16 EiB is 2^64 bytes */
    {"mem_huge_scaled.xml", -EINVAL, "domain XML: memory is out of range", {.id = -1}},
    /* 2 PiB: 2^31 MiB, more than an int */
    {"mem_mib_overflow.xml", -EINVAL, "domain XML: memory is out of range", {.id = -1}},
    {"mem_negative.xml", -EINVAL, "domain XML: memory '-262144' is not a number", {.id = -1}},
    {"mem_hex.xml", -EINVAL, "domain XML: memory '0x40000' is not a number", {.id = -1}},
    {"mem_missing.xml", -EINVAL, "domain XML: no <memory>", {.id = -1}},

    {"vcpu_negative.xml", -EINVAL, "domain XML: vcpu '-2' is not a number", {.id = -1}},
    {"vcpu_zero.xml", -EINVAL, "domain XML: vcpu 0 is out of range", {.id = -1}},
    {"vcpu_current_negative.xml", -EINVAL, "domain XML: vcpu '-1' is not a number", {.id = -1}},
    /* more vCPUs running than the maximum: not a domain libvirt writes */
    {"vcpu_current_above.xml", -EINVAL, "domain XML: vcpu 5 is out of range 1-4", {.id = -1}},
    {"vcpu_huge.xml", -EINVAL, "domain XML: vcpu 99999999999 is out of range", {.id = -1}},
    {"vcpu_garbage.xml", -EINVAL, "domain XML: vcpu 'two' is not a number", {.id = -1}},
    {"vcpu_padded.xml", 0, "", {DB2, .vcpus = 3}},
    /* libvirt's default */
    {"vcpu_missing.xml", 0, "", {DB2, .vcpus = 1}},
    {"id_garbage.xml", -EINVAL, "domain XML: domain id 'x1' is not a number", {.id = -1}},
    {"id_huge.xml", -EINVAL, "domain XML: domain id 4294967296 is out of range", {.id = -1}},
    {"name_missing.xml", -EINVAL, "domain XML: no <name>", {.id = -1}},
    {"name_long.xml", -EINVAL, "domain XML: name is longer than 255 bytes", {.id = -1}},
    {"nic_target_long.xml",
     -EINVAL,
     "domain XML: interface target dev is longer than 15 bytes",
     {.id = -1}},
    /* text split by a comment and a CDATA section */
    {"text_pieces.xml", 0, "", {DB2}},
    /* the first disk of device "disk" (not the cdrom) on a block device;
     * memballoon model none */
    {"disk_block.xml", 0, "", {DB2, .disk = "/dev/vg0/db-2", .has_balloon = false}},
    /* a running domain on a libvirt network (the bridge libvirt shows) and
     * a user-mode interface (no bridge, no tap) */
    {"iface_network_live.xml",
     0,
     "",
     {DB2, .id = 3,
      .nic = {{"vnet0", "52:54:00:3e:91:7a", "virbr0"}, {"", "52:54:00:3e:91:7b", ""}},
      .nnics = 2}},

    /* our metadata is found by namespace URI, whatever the prefix */
    {"meta_default_ns.xml", 0, "", {DB2, .pin = "host-c", .group = "db", .exclude = true}},
    {"meta_unprefixed_children.xml",
     0,
     "",
     {DB2, .pin = "host-a", .group = "db", .anti_group = "web", .guest_load = true}},
    {"meta_second.xml", 0, "", {DB2, .group = "db"}},
    {"meta_foreign_ns.xml", 0, "", {DB2, .has_meta = false}},
    /* loadease: bound to no namespace is not ours (libxml2 reports a
     * namespace error, the document is still well-formed) */
    {"meta_undefined_prefix.xml", 0, "", {DB2, .has_meta = false}},
    {"meta_exclude_bad.xml", -EINVAL, "domain XML: metadata exclude must be 0 or 1", {.id = -1}},
    {"meta_group_long.xml",
     -EINVAL,
     "domain XML: metadata group is longer than 64 bytes",
     {.id = -1}},

    /* not a domain */
    {"empty.xml", -EINVAL, "domain XML: empty", {.id = -1}},
    {"not_xml.xml",
     -EINVAL,
     "domain XML: not XML: line 1: Start tag expected, '<' not found",
     {.id = -1}},
    {"truncated.xml", -EINVAL, "domain XML: not XML: line 62: ", {.id = -1}},
    /* virsh net-dumpxml default */
    {"not_domain.xml", -EINVAL, "domain XML: no <domain> element", {.id = -1}},
    {"domain_in_ns.xml", -EINVAL, "domain XML: no <domain> element", {.id = -1}},
    {"nul_byte.xml",
     -EINVAL,
     "domain XML: not XML: line 2: Char 0x0 out of allowed range",
     {.id = -1}},
    {"bad_utf8.xml",
     -EINVAL,
     "domain XML: not XML: line 2: Input is not proper UTF-8, indicate encoding ! Bytes: 0xFF",
     {.id = -1}},
    /* read as UTF-8 whatever the declaration says */
    {"declared_sjis.xml",
     -EINVAL,
     "domain XML: not XML: line 3: Input is not proper UTF-8",
     {.id = -1}},
    {"declared_latin1.xml", 0, "", {DB2, .name = "caf\xc3\xa9"}},
    /* a UTF-16 byte order mark is not followed: UTF-8 it is */
    {"utf16_bom.xml", -EINVAL, "domain XML: not XML: line 1: Start tag expected", {.id = -1}},
    {"deep.xml",
     -EINVAL,
     "domain XML: not XML: line 3: Excessive depth in document: 256",
     {.id = -1}},

    /* hostile: no entity is defined, fetched or expanded */
    {"external_entity.xml", -EINVAL, "domain XML: a DOCTYPE is not allowed", {.id = -1}},
    {"external_dtd.xml", -EINVAL, "domain XML: a DOCTYPE is not allowed", {.id = -1}},
    {"billion_laughs.xml", -EINVAL, "domain XML: a DOCTYPE is not allowed", {.id = -1}},
    {"undefined_ent.xml",
     -EINVAL,
     "domain XML: not XML: line 2: Entity 'xxe' not defined",
     {.id = -1}},
};

#define NPARSE (sizeof(parse_cases) / sizeof(parse_cases[0]))

static void check_info(const char *file, const struct domxml_info *g, const struct domxml_info *w)
{
	assert_string_equal(g->name, w->name);
	assert_string_equal(g->uuid, w->uuid);
	assert_string_equal(g->type, w->type);
	assert_int_equal(g->id, w->id);
	assert_int_equal(g->vcpus, w->vcpus);
	assert_int_equal(g->max_vcpus, w->max_vcpus ? w->max_vcpus : w->vcpus);
	assert_int_equal(g->mem_mib, w->mem_mib);
	assert_int_equal(g->max_mem_mib, w->max_mem_mib);
	assert_string_equal(g->kernel, w->kernel);
	assert_string_equal(g->initrd, w->initrd);
	assert_string_equal(g->cmdline, w->cmdline);
	assert_string_equal(g->disk, w->disk);
	assert_int_equal(g->nnics, w->nnics);
	assert_int_equal(g->nics_truncated, w->nics_truncated);
	for (int i = 0; i < w->nnics; i++) {
		assert_string_equal(g->nic[i].target, w->nic[i].target);
		assert_string_equal(g->nic[i].mac, w->nic[i].mac);
		assert_string_equal(g->nic[i].bridge, w->nic[i].bridge);
	}
	assert_string_equal(g->guestload_socket, w->guestload_socket);
	assert_int_equal(g->has_balloon, w->has_balloon);
	assert_int_equal(g->has_meta, w->has_meta);
	assert_string_equal(g->pin, w->pin);
	assert_string_equal(g->group, w->group);
	assert_string_equal(g->anti_group, w->anti_group);
	assert_int_equal(g->exclude, w->exclude);
	assert_int_equal(g->guest_load, w->guest_load);
	(void)file;
}

static void test_parse(void **state)
{
	const struct parse_case *c = *state;
	struct domxml_info got, zero = {.id = -1};
	char path[256], err[160] = "";
	size_t len;
	char *buf;
	int rc;

	snprintf(path, sizeof(path), FX "%s", c->file);
	buf = fixture_load(path, &len);
	memset(&got, 0xa5, sizeof(got));
	rc = domxml_parse(buf, len, &got, err, sizeof(err));
	free(buf);
	if (rc != c->rc)
		fail_msg("%s: rc %d, want %d (%s)", c->file, rc, c->rc, err);
	if (rc == 0) {
		check_info(c->file, &got, &c->want);
		return;
	}
	if (strncmp(err, c->err, strlen(c->err)) != 0)
		fail_msg("err '%s' does not start with '%s'", err, c->err);
	/* a failed parse leaves nothing half-read */
	assert_memory_equal(&got, &zero, sizeof(got));
}

/* Every cut of a live libvirt XML before the end of </domain> is an error,
 * never a half-read success; with all of it and any of the trailing
 * newlines (virsh prints two) it reads. */
static void test_prefixes(void **state)
{
	size_t len, end;
	char *buf = fixture_load(FX "libvirt_kernel_live.xml", &len);

	for (end = len; end > 0 && buf[end - 1] != '>'; end--)
		;
	assert_true(end > 0);
	for (size_t n = 0; n <= len; n++) {
		struct domxml_info got;
		char err[160] = "", *cut = malloc(n ? n : 1);
		int rc;

		assert_non_null(cut);
		memcpy(cut, buf, n);
		rc = domxml_parse(cut, n, &got, err, sizeof(err));
		free(cut);
		if (n < end && (rc != -EINVAL || err[0] == '\0'))
			fail_msg("cut at %zu of %zu: rc %d", n, end, rc);
		if (n >= end && rc != 0)
			fail_msg("%zu bytes of %zu: rc %d: %s", n, len, rc, err);
	}
	free(buf);
}

/* DOMXML_MAX_XML bytes are read, one more is refused before parsing. */
static void test_size_limit(void **state)
{
	static const char head[] = "<domain type='kvm'><name>big</name><memory>1024</memory><!--";
	static const char tail[] = "--></domain>";
	size_t len = DOMXML_MAX_XML;
	char *buf = malloc(len + 1), err[160];
	struct domxml_info got;

	assert_non_null(buf);
	memset(buf, 'x', len + 1);
	memcpy(buf, head, sizeof(head) - 1);
	memcpy(buf + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	assert_int_equal(domxml_parse(buf, len, &got, err, sizeof(err)), 0);
	assert_string_equal(got.name, "big");
	assert_int_equal(got.max_mem_mib, 1);
	memcpy(buf + len + 1 - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	assert_int_equal(domxml_parse(buf, len + 1, &got, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "domain XML: 4194305 bytes, more than the limit of 4194304");
	free(buf);
}

/* libxml2 prints nothing of its own: errors come back in err only. */
static void test_quiet(void **state)
{
	static const char *const files[] = {
	    "not_xml.xml",        "truncated.xml",     "external_entity.xml",
	    "billion_laughs.xml", "deep.xml",          "nul_byte.xml",
	    "bad_utf8.xml",       "declared_sjis.xml", "meta_undefined_prefix.xml",
	    "undefined_ent.xml",  "external_dtd.xml",  "not_domain.xml",
	    "utf16_bom.xml",
	};
	char tmpl[] = "/tmp/test_domxml_stderr.XXXXXX";
	int fd = mkstemp(tmpl), saved;
	off_t size;

	assert_true(fd >= 0);
	unlink(tmpl);
	fflush(stderr);
	saved = dup(2);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	for (size_t i = 0; i < NELEM(files); i++) {
		char path[256], err[160];
		struct domxml_info got;
		size_t len;
		char *buf;

		snprintf(path, sizeof(path), FX "%s", files[i]);
		buf = fixture_load(path, &len);
		(void)domxml_parse(buf, len, &got, err, sizeof(err));
		free(buf);
	}
	fflush(stderr);
	size = lseek(fd, 0, SEEK_END);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	close(fd);
	assert_int_equal(size, 0);
}

/* A short error buffer gets a truncated, terminated message. */
static void test_short_err(void **state)
{
	static const char x[] = "<network/>";
	struct domxml_info got;
	char err[12];

	memset(err, 'x', sizeof(err));
	assert_int_equal(domxml_parse(x, sizeof(x) - 1, &got, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "domain XML:");
}

/* Several threads parse and build at once (the agent's API and monitor
 * threads do); each gets what it would get alone. */
struct thread_arg {
	const char *xml;
	size_t len;
	int failures;
};

static void *parse_loop(void *p)
{
	struct thread_arg *a = p;
	const struct build_case *c = &build_cases[2];

	for (int i = 0; i < 200; i++) {
		struct domxml_info got;
		char err[160], *xml;

		if (domxml_parse(a->xml, a->len, &got, err, sizeof(err)) != 0 || got.id != 6 ||
		    strcmp(got.guestload_socket, "/var/lib/libvirt/qemu/channel/target/"
		                                 "domain-6-web-1/org.loadease.guestload") != 0)
			a->failures++;
		if (domxml_parse("<domain", 7, &got, err, sizeof(err)) != -EINVAL)
			a->failures++;
		if (domxml_build(&c->o, &c->s, &xml, err, sizeof(err)) != 0)
			a->failures++;
		else
			free(xml);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct thread_arg a[4];
	pthread_t t[4];
	size_t len;
	char *buf = fixture_load(FX "libvirt_kernel_live.xml", &len);

	for (int i = 0; i < 4; i++) {
		a[i] = (struct thread_arg){buf, len, 0};
		assert_int_equal(pthread_create(&t[i], NULL, parse_loop, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(a[i].failures, 0);
	}
	free(buf);
}

int main(void)
{
	static struct CMUnitTest tests[2 * NELEM(build_cases) + NPARSE + 10];
	size_t i = 0;

	for (size_t k = 0; k < NELEM(build_cases); k++)
		tests[i++] = (struct CMUnitTest){build_cases[k].name, test_build, NULL, NULL,
		                                 (void *)&build_cases[k]};
	static char rt_names[NELEM(build_cases)][64];
	for (size_t k = 0; k < NELEM(build_cases); k++) {
		if (build_cases[k].rc != 0)
			continue;
		snprintf(rt_names[k], sizeof(rt_names[k]), "round trip %s", build_cases[k].name);
		tests[i++] = (struct CMUnitTest){rt_names[k], test_round_trip, NULL, NULL,
		                                 (void *)&build_cases[k]};
	}
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_meta);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_meta_invalid);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_build_unterminated);
	for (size_t k = 0; k < NPARSE; k++)
		tests[i++] = (struct CMUnitTest){parse_cases[k].file, test_parse, NULL, NULL,
		                                 (void *)&parse_cases[k]};
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_prefixes);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_size_limit);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_quiet);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_short_err);
	tests[i++] = (struct CMUnitTest)cmocka_unit_test(test_threads);
	return _cmocka_run_group_tests("domxml", tests, i, NULL, NULL);
}
