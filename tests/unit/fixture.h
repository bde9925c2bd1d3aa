/* fixture.h - shared by the unit tests that read fixture files. Include it
 * after <cmocka.h>. Tests run from the repository root. */
#ifndef LE_TEST_FIXTURE_H
#define LE_TEST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

/* The file in a buffer of exactly its size (1 byte allocated when empty), so
 * AddressSanitizer sees a parser read past the end. Caller frees. */
static inline char *fixture_load(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		fail_msg("cannot open %s (run from the repository root)", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc(n ? (size_t)n : 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

#endif
