/* Fuzz target: the simulator's trace readers. The line parsers get every
 * line of the input; the whole input is also loaded as a CSV trace file (the
 * format users feed their own traces in). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char path[] = "/tmp/le-fuzz-trace-XXXXXX", err[256];
	struct trace t;
	int fd;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);
		double cpu, mem;
		const char *why;
		trace_parse_planetlab_line(p, len, &cpu, &why);
		trace_parse_google_line(p, len, &cpu, &mem, &why);
		p = nl ? nl + 1 : end;
	}
	fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		memset(&t, 0, sizeof(t));
		if (trace_load_csv(&t, path, err, sizeof(err)) == 0)
			trace_free(&t);
	}
	close(fd);
	unlink(path);
	return 0;
}
