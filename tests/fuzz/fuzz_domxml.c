/* fuzz_domxml.c - libFuzzer target for the libvirt domain XML reader.
 *
 * Besides memory errors (ASan/UBSan) and libxml2 printing anything (the
 * parse has its own error handler: run with 2>&1 and look), it aborts when
 * domxml_parse() breaks its contract: a return other than 0, -EINVAL or
 * -ENOMEM, an error without a message, a failure that leaves the output
 * other than zeroed with id -1, or a success with an unterminated string, a
 * count out of range or vCPUs below 1.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/domxml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TERMINATED(s) (memchr((s), '\0', sizeof(s)) != NULL)

static void check_ok(const struct domxml_info *o)
{
	if (!TERMINATED(o->name) || !TERMINATED(o->uuid) || !TERMINATED(o->type) ||
	    !TERMINATED(o->kernel) || !TERMINATED(o->initrd) || !TERMINATED(o->cmdline) ||
	    !TERMINATED(o->disk) || !TERMINATED(o->guestload_socket) || !TERMINATED(o->pin) ||
	    !TERMINATED(o->group) || !TERMINATED(o->anti_group))
		abort();
	if (o->nnics < 0 || o->nnics > DOMXML_MAX_NICS ||
	    (o->nics_truncated && o->nnics != DOMXML_MAX_NICS))
		abort();
	for (int i = 0; i < o->nnics; i++)
		if (!TERMINATED(o->nic[i].target) || !TERMINATED(o->nic[i].mac) ||
		    !TERMINATED(o->nic[i].bridge))
			abort();
	if (o->vcpus < 1 || o->mem_mib < 0 || o->max_mem_mib < 0 || o->id < -1)
		abort();
	if (!o->has_meta &&
	    (o->pin[0] || o->group[0] || o->anti_group[0] || o->exclude || o->guest_load))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct domxml_info zero;
	struct domxml_info out;
	char err[160];
	int rc;

	zero.id = -1;
	memset(&out, 0xa5, sizeof(out));
	memset(err, 'x', sizeof(err));
	rc = domxml_parse((const char *)data, size, &out, err, sizeof(err));
	if (rc != 0 && rc != -EINVAL && rc != -ENOMEM)
		abort();
	if (rc == 0)
		check_ok(&out);
	if (rc < 0 && (!memchr(err, '\0', sizeof(err)) || err[0] == '\0'))
		abort();
	if (rc < 0 && memcmp(&out, &zero, sizeof(out)) != 0)
		abort();
	return 0;
}
