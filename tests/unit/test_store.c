/* Unit tests of src/common/store.c's parsing of Redis's clock (TIME): the
 * one clock liveness is judged on, so a garbled reply must read as "none",
 * never as a time. Replies are built by hand as hiredis would make them. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/store.h"

static redisReply *str(int type, const char *s)
{
	redisReply *r = calloc(1, sizeof(*r));
	r->type = type;
	r->str = strdup(s);
	r->len = strlen(s);
	return r;
}

static redisReply *time_reply(const char *sec, const char *usec)
{
	redisReply *r = calloc(1, sizeof(*r));
	r->type = REDIS_REPLY_ARRAY;
	r->elements = 2;
	r->element = calloc(2, sizeof(*r->element));
	r->element[0] = str(REDIS_REPLY_STRING, sec);
	r->element[1] = str(REDIS_REPLY_STRING, usec);
	return r;
}

static void test_time_reply_ms(void **state)
{
	redisReply *r = time_reply("1796407776", "516999");

	(void)state;
	assert_int_equal(store_time_reply_ms(r), 1796407776516LL);
	freeReplyObject(r);
	r = time_reply("0", "0");
	assert_int_equal(store_time_reply_ms(r), 0);
	freeReplyObject(r);
}

static void test_time_reply_garbled(void **state)
{
	static const char *const bad[][2] = {
	    {"-1", "0"},
	    {"12x", "0"},
	    {"", "0"},
	    {"1", "1000000"},
	    {"1", "-1"},
	    {"1", "0.5"},
	    {"99999999999999999999", "0"},
	    {"9223372036854775", "0"},
	};
	redisReply *r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = time_reply(bad[i][0], bad[i][1]);
		assert_int_equal(store_time_reply_ms(r), -1);
		freeReplyObject(r);
	}
	assert_int_equal(store_time_reply_ms(NULL), -1);
	r = str(REDIS_REPLY_ERROR, "ERR unknown command 'TIME'");
	assert_int_equal(store_time_reply_ms(r), -1);
	freeReplyObject(r);
	r = time_reply("1", "2");
	r->elements = 1; /* a one-element array */
	assert_int_equal(store_time_reply_ms(r), -1);
	r->elements = 2;
	freeReplyObject(r);
	r = time_reply("1", "2");
	free(r->element[1]->str); /* hiredis frees no string of an integer */
	r->element[1]->str = NULL;
	r->element[1]->type = REDIS_REPLY_INTEGER;
	assert_int_equal(store_time_reply_ms(r), -1);
	freeReplyObject(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_time_reply_ms),
	    cmocka_unit_test(test_time_reply_garbled),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
