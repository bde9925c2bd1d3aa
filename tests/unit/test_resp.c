/* Unit tests of src/common/resp.c: the protocol bytes and the fixed-point
 * number formatting, checked against printf for many values. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/resp.h"

static const struct {
	double v;
	int dec;
	const char *want;
} fixed_cases[] = {
    {0, 4, "0.0000"},
    {0.75, 4, "0.7500"},
    {0.123456, 4, "0.1235"},
    {1.5, 0, "2"},
    {2.5, 0, "3"},
    {-0.00001, 4, "0.0000"},
    {-1.25, 2, "-1.25"},
    {123456789.0, 0, "123456789"},
    {1e15, 1, "1000000000000000.0"},
    {NAN, 2, "0.00"},
    {INFINITY, 1, "0.0"},
    {0.05, 1, "0.1"},
    {99.999, 2, "100.00"},
    {7, 9, "7.000000"},
    /* past what 31 characters hold: cut, never past the buffer */
    {1e300, 2, "1000000000000000052504760255204"},
    {123456789012.5, 6, "123456789012.500000"},
};

static void test_fixed(void **state)
{
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(fixed_cases) / sizeof(fixed_cases[0]); i++) {
		size_t n = resp_format_fixed(buf, fixed_cases[i].v, fixed_cases[i].dec);
		if (strcmp(buf, fixed_cases[i].want) != 0)
			fail_msg("%g with %d decimals: got '%s', want '%s'", fixed_cases[i].v,
			         fixed_cases[i].dec, buf, fixed_cases[i].want);
		assert_int_equal(n, strlen(fixed_cases[i].want));
	}
}

/* Away from exact halves, the hand-written formatting is printf's. */
static void test_fixed_matches_printf(void **state)
{
	char a[64], b[64];
	uint64_t x = 88172645463325252ull;

	(void)state;
	for (int i = 0; i < 100000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		double v = (double)(x % 100000000) / 1000.0 + 0.0001234;
		int dec = (int)(x % 5);
		resp_format_fixed(a, v, dec);
		snprintf(b, sizeof(b), "%.*f", dec, v);
		if (strcmp(a, b) != 0)
			fail_msg("%.10f with %d decimals: got '%s', printf '%s'", v, dec, a, b);
	}
}

static void test_commands(void **state)
{
	struct resp_buf b = {0};
	const char *want = "*3\r\n$4\r\nHSET\r\n$1\r\nk\r\n$5\r\n0.500\r\n"
	                   "*2\r\n$3\r\nGET\r\n$0\r\n\r\n"
	                   "*1\r\n$4\r\nEXEC\r\n";

	(void)state;
	assert_int_equal(resp_begin(&b) | resp_str(&b, "HSET") | resp_str(&b, "k") |
	                     resp_fixed(&b, 0.5, 3) | resp_end(&b),
	                 0);
	assert_int_equal(resp_begin(&b) | resp_str(&b, "GET") | resp_arg(&b, "", 0) | resp_end(&b),
	                 0);
	assert_int_equal(resp_begin(&b) | resp_str(&b, "EXEC") | resp_end(&b), 0);
	assert_int_equal(b.ncmds, 3);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	/* a command of many arguments (header of more digits) and a long one */
	resp_reset(&b);
	resp_begin(&b);
	for (int i = 0; i < 1000; i++)
		resp_u64(&b, (uint64_t)i);
	resp_end(&b);
	assert_memory_equal(b.data, "*1000\r\n$1\r\n0\r\n$1\r\n1\r\n", 21);
	resp_release(&b);
	assert_null(b.data);
}

/* A key made of parts, without printf; numbers in decimal; a buffer sized
 * ahead keeps its one allocation. */
static void test_cat_u64_reserve(void **state)
{
	static const struct {
		uint64_t v;
		const char *want;
	} nums[] = {{0, "0"},
	            {7, "7"},
	            {10, "10"},
	            {1700000000123ull, "1700000000123"},
	            {UINT64_MAX, "18446744073709551615"}};
	const char *parts[] = {"ts:", "vm", ":", "web-1"};
	const char *too_many[9] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
	struct resp_buf b = {0};
	char buf[32];
	char *data;

	(void)state;
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		size_t n = resp_format_u64(buf, nums[i].v);
		assert_int_equal(n, strlen(nums[i].want));
		assert_memory_equal(buf, nums[i].want, n);
	}
	assert_int_equal(resp_reserve(&b, 100000), 0);
	assert_true(b.cap >= 100000);
	data = b.data;
	assert_int_equal(
	    resp_begin(&b) | resp_cat(&b, parts, 4) | resp_cat(&b, parts, 0) | resp_end(&b), 0);
	assert_int_equal(b.len, 28);
	assert_memory_equal(b.data, "*2\r\n$11\r\nts:vm:web-1\r\n$0\r\n\r\n", b.len);
	assert_ptr_equal(b.data, data);
	assert_int_equal(resp_cat(&b, too_many, 9), -EINVAL);
	resp_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fixed),
	    cmocka_unit_test(test_fixed_matches_printf),
	    cmocka_unit_test(test_commands),
	    cmocka_unit_test(test_cat_u64_reserve),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
