/* Fuzz target: the QMP reader, fed in chunks whose sizes come from the
 * input itself (first byte), the way a socket delivers them. */
#include <stddef.h>
#include <stdint.h>

#include "agent/qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmp_reader r;
	struct qmp_msg m;
	size_t chunk, off = 1;

	if (size < 1)
		return 0;
	chunk = (size_t)data[0] % 64 + 1;
	qmp_reader_init(&r);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (qmp_reader_feed(&r, (const char *)data + off, n) < 0)
			break;
		off += n;
		for (int rc; (rc = qmp_reader_next(&r, &m)) != 0;)
			if (rc == 1)
				qmp_msg_release(&m);
	}
	qmp_reader_release(&r);
	return 0;
}
