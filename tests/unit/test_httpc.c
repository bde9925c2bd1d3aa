/* Unit tests of src/common/httpc.c against a real server (src/common/httpd.c
 * on a free loopback port): body and token delivered, status and JSON answer
 * returned, non-JSON answers, and a refused connection with its reason. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/httpc.h"
#include "common/httpd.h"

static void handler(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	(void)ctx;
	if (strcmp(req->path, "/echo") == 0) {
		json_t *body = httpd_body_json(req, resp);
		if (!body)
			return;
		httpd_resp_json(resp, 201,
		                json_pack("{s:s,s:o,s:b}", "method", req->method, "body", body,
		                          "authorized", httpd_bearer_ok(req, "sesame")));
	} else if (strcmp(req->path, "/text") == 0) {
		char *t = strdup("plain words");
		httpd_resp_text(resp, 200, "text/plain", t, strlen(t));
	} else {
		httpd_resp_error(resp, 404, "not_found", "no %s", req->path);
	}
}

static void test_httpc(void **state)
{
	char err[256], url[128];
	json_t *reply = NULL, *body;
	struct httpd *h;
	int port, st;

	(void)state;
	h = httpd_new("127.0.0.1:0", handler, NULL, err, sizeof(err));
	assert_non_null(h);
	port = httpd_port(h);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", port);
	body = json_pack("{s:s,s:i}", "to", "h2", "n", 7);
	st = httpc_json("POST", url, body, "sesame", 5000, &reply, err, sizeof(err));
	assert_int_equal(st, 201);
	assert_non_null(reply);
	assert_string_equal(json_string_value(json_object_get(reply, "method")), "POST");
	assert_true(json_equal(json_object_get(reply, "body"), body));
	assert_true(json_is_true(json_object_get(reply, "authorized")));
	json_decref(reply);
	/* a wrong or missing token reaches the server as such */
	st = httpc_json("POST", url, body, "wrong", 5000, &reply, err, sizeof(err));
	assert_int_equal(st, 201);
	assert_true(json_is_false(json_object_get(reply, "authorized")));
	json_decref(reply);
	st = httpc_json("POST", url, body, "", 5000, &reply, err, sizeof(err));
	assert_true(json_is_false(json_object_get(reply, "authorized")));
	json_decref(reply);
	json_decref(body);

	/* an error status comes back with its JSON; a text answer as no JSON */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/nowhere", port);
	st = httpc_json("GET", url, NULL, NULL, 5000, &reply, err, sizeof(err));
	assert_int_equal(st, 404);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(reply, "error"), "code")),
	    "not_found");
	json_decref(reply);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/text", port);
	st = httpc_json("GET", url, NULL, NULL, 5000, &reply, err, sizeof(err));
	assert_int_equal(st, 200);
	assert_null(reply);
	httpd_free(h);

	/* nobody listens: a negative errno and a reason naming the URL */
	err[0] = '\0';
	st = httpc_json("GET", url, NULL, NULL, 2000, &reply, err, sizeof(err));
	assert_true(st < 0);
	assert_null(reply);
	assert_non_null(strstr(err, url));
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_httpc)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
