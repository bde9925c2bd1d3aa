/* trace_io.h - helpers the trace loaders share (trace.c, trace_csv.c); not
 * part of the simulator's interface. */
#ifndef LE_SIM_TRACE_IO_H
#define LE_SIM_TRACE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "sim/trace.h"

void trace_seterr(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A file read line by line with the TRACE_MAX_LINE limit. */
struct trace_lines {
	FILE *f;
	const char *path;
	long no; /* number of the line in buf */
	char buf[TRACE_MAX_LINE + 2];
	size_t len;
};
/* 1 with a line in l->buf (no newline or CR, NUL terminated), 0 at the end,
 * or -EINVAL (too long, NUL byte) / -EIO with err set ("FILE:LINE: ..."). */
int trace_lines_next(struct trace_lines *l, char *err, size_t errcap);

/* Parses s[0..len) (surrounding blanks allowed) as a finite number. */
bool trace_parse_num(const char *s, size_t len, double *out);

/* t->name from a path's last component, prefixed "kind-" (unless it is kind). */
void trace_set_name(struct trace *t, const char *kind, const char *path);

#endif
