/* fuzz_balloon.c - libFuzzer target for the guest-stats JSON parser.
 *
 * Besides memory errors (ASan/UBSan: run the libFuzzer build with
 * UBSAN_OPTIONS=halt_on_error=1 so a float-to-int overflow stops it), it
 * aborts when the parser breaks its contract: a return other than 0,
 * -EINVAL or -ENODATA, an error without a message, a failed parse that
 * leaves the output unzeroed, or a success without a usable total and time.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/balloon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct balloon_stats zero;
	struct balloon_stats out;
	char err[128];
	int rc;

	memset(&out, 0xa5, sizeof(out));
	memset(err, 'x', sizeof(err));
	rc = balloon_parse((const char *)data, size, &out, err, sizeof(err));
	if (rc != 0 && rc != -EINVAL && rc != -ENODATA)
		abort();
	if (rc == 0 && (out.total == BALLOON_NA || out.total == 0 || out.last_update == 0))
		abort();
	if (rc < 0 && (!memchr(err, '\0', sizeof(err)) || err[0] == '\0'))
		abort();
	if (rc == -EINVAL && memcmp(&out, &zero, sizeof(out)) != 0)
		abort();
	return 0;
}
