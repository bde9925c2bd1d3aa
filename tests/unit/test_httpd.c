/* test_httpd.c - the JSON HTTP server, started for real on 127.0.0.1 (port
 * 0: a free one) with a test handler, and spoken to with libcurl.
 *
 * The handler routes on the path:
 *   /echo       replies the method, path, body length and query "x" as JSON
 *   /raw        replies the request body byte for byte
 *   /auth       200 when httpd_bearer_ok(req, ctx->token), else 401
 *   /json       httpd_body_json(); 200 {"keys": N} or its 400
 *   /created    201 with a Location header
 *   /silent     fills no response (the server answers 500)
 *   otherwise   404 via httpd_resp_error()
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/httpd.h"

struct server {
	struct httpd *h;
	int port;
	pthread_mutex_t lock;
	const char *token; /* for /auth */
	int calls;         /* handler invocations */
};

static void handler(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	struct server *s = ctx;
	const char *token;

	pthread_mutex_lock(&s->lock);
	s->calls++;
	token = s->token;
	pthread_mutex_unlock(&s->lock);

	if (strcmp(req->path, "/echo") == 0 || strncmp(req->path, "/echo/", 6) == 0) {
		const char *x = httpd_query(req, "x"), *y = httpd_query(req, "y");
		httpd_resp_json(resp, 200,
		                json_pack("{s:s,s:s,s:I,s:s*,s:s*,s:b}", "method", req->method,
		                          "path", req->path, "len", (json_int_t)req->body_len, "x",
		                          x, "y", y, "mutating", httpd_is_mutating(req)));
	} else if (strcmp(req->path, "/raw") == 0) {
		char *copy = malloc(req->body_len + 1);
		memcpy(copy, req->body, req->body_len + 1); /* the body is NUL-terminated */
		httpd_resp_text(resp, 200, "application/octet-stream", copy, req->body_len);
	} else if (strcmp(req->path, "/auth") == 0) {
		if (httpd_bearer_ok(req, token))
			httpd_resp_json(resp, 200, json_pack("{s:b}", "ok", 1));
		else
			httpd_resp_error(resp, 401, "unauthorized", "a bearer token is required");
	} else if (strcmp(req->path, "/json") == 0) {
		json_t *j = httpd_body_json(req, resp);
		if (j) {
			httpd_resp_json(
			    resp, 200, json_pack("{s:I}", "keys", (json_int_t)json_object_size(j)));
			json_decref(j);
		}
	} else if (strcmp(req->path, "/created") == 0) {
		resp->location = strdup("/v1/vms/abc");
		httpd_resp_json(resp, 201, json_pack("{s:s}", "id", "abc"));
	} else if (strcmp(req->path, "/silent") == 0) {
		/* nothing */
	} else {
		httpd_resp_error(resp, 404, "not_found", "no route for %s %s", req->method,
		                 req->path);
	}
}

static int setup(void **state)
{
	struct server *s = calloc(1, sizeof(*s));
	char err[128] = "";

	if (!s)
		return -1;
	pthread_mutex_init(&s->lock, NULL);
	s->h = httpd_new("127.0.0.1:0", handler, s, err, sizeof(err));
	if (!s->h) {
		fprintf(stderr, "httpd_new: %s\n", err);
		free(s);
		return -1;
	}
	s->port = httpd_port(s->h);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct server *s = *state;

	httpd_free(s->h);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return 0;
}

struct reply {
	long status;
	char *body;
	size_t len;
	char location[128];
	char content_type[64];
};

static size_t on_body(char *p, size_t size, size_t n, void *user)
{
	struct reply *r = user;
	char *nb = realloc(r->body, r->len + size * n + 1);

	if (!nb)
		return 0;
	memcpy(nb + r->len, p, size * n);
	r->len += size * n;
	nb[r->len] = '\0';
	r->body = nb;
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *user)
{
	struct reply *r = user;
	size_t l = size * n;

	if (l > 10 && strncasecmp(p, "Location: ", 10) == 0)
		snprintf(r->location, sizeof(r->location), "%.*s", (int)(l - 12), p + 10);
	if (l > 14 && strncasecmp(p, "Content-Type: ", 14) == 0)
		snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int)(l - 16), p + 14);
	return l;
}

/* One request; header may be NULL; body NULL means none. */
static void request(struct server *s, const char *method, const char *path, const char *header,
                    const char *body, size_t body_len, struct reply *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	char url[256];
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	assert_non_null(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	if (header)
		hl = curl_slist_append(hl, header);
	hl = curl_slist_append(hl, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
}

static json_t *reply_json(const struct reply *r)
{
	json_error_t e;
	json_t *j = json_loadb(r->body ? r->body : "", r->len, 0, &e);

	if (!j)
		fail_msg("reply is not JSON (%s): %.*s", e.text, (int)r->len, r->body);
	return j;
}

/* {"error": {"code": code, "message": <string>}} */
static void assert_error(const struct reply *r, long status, const char *code)
{
	json_t *j = reply_json(r);
	const char *got_code = NULL, *msg = NULL;

	assert_int_equal(r->status, status);
	assert_string_equal(r->content_type, "application/json");
	if (json_unpack(j, "{s:{s:s,s:s}}", "error", "code", &got_code, "message", &msg) < 0)
		fail_msg("not an error object: %.*s", (int)r->len, r->body);
	if (strcmp(code, "*") != 0)
		assert_string_equal(got_code, code);
	assert_true(got_code[0] != '\0');
	assert_true(msg[0] != '\0');
	json_decref(j);
}

/* ---- routing, methods, query ---- */

static void test_routing(void **state)
{
	static const struct {
		const char *method, *path;
		long status;
		const char *want_path, *x, *y;
		bool mutating;
	} reqs[] = {
	    {"GET", "/echo", 200, "/echo", NULL, NULL, false},
	    {"GET", "/echo?x=1", 200, "/echo", "1", NULL, false},
	    {"GET", "/echo?x=a%20b&y=%2Fv1", 200, "/echo", "a b", "/v1", false},
	    {"GET", "/echo?y=2&x=", 200, "/echo", "", "2", false},
	    {"GET", "/echo/v1/vms/abc?x=7", 200, "/echo/v1/vms/abc", "7", NULL, false},
	    {"DELETE", "/echo", 200, "/echo", NULL, NULL, true},
	    {"PUT", "/echo", 200, "/echo", NULL, NULL, true},
	    {"PATCH", "/echo", 200, "/echo", NULL, NULL, true},
	    {"OPTIONS", "/echo", 200, "/echo", NULL, NULL, false},
	    {"GET", "/nowhere", 404, NULL, NULL, NULL, false},
	};
	struct server *s = *state;

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		const char *method = NULL, *path = NULL, *x = NULL, *y = NULL;
		json_int_t len = -1;
		int mutating = -1;
		struct reply r;
		json_t *j;

		request(s, reqs[i].method, reqs[i].path, NULL, NULL, 0, &r);
		if (reqs[i].status != 200) {
			assert_error(&r, reqs[i].status, "not_found");
			free(r.body);
			continue;
		}
		assert_int_equal(r.status, 200);
		j = reply_json(&r);
		assert_int_equal(json_unpack(j, "{s:s,s:s,s:I,s?s,s?s,s:b}", "method", &method,
		                             "path", &path, "len", &len, "x", &x, "y", &y,
		                             "mutating", &mutating),
		                 0);
		assert_string_equal(method, reqs[i].method);
		assert_string_equal(path, reqs[i].want_path);
		assert_int_equal(len, 0);
		if (reqs[i].x)
			assert_string_equal(x, reqs[i].x);
		else
			assert_null(x);
		if (reqs[i].y)
			assert_string_equal(y, reqs[i].y);
		else
			assert_null(y);
		assert_int_equal(mutating, reqs[i].mutating);
		json_decref(j);
		free(r.body);
	}
}

static void test_response_headers(void **state)
{
	struct server *s = *state;
	struct reply r;
	json_t *j;

	request(s, "POST", "/created", NULL, "{}", 2, &r);
	assert_int_equal(r.status, 201);
	assert_string_equal(r.location, "/v1/vms/abc");
	j = reply_json(&r);
	assert_string_equal(json_string_value(json_object_get(j, "id")), "abc");
	json_decref(j);
	free(r.body);

	/* a handler that fills nothing gets a 500 JSON error, not a hang */
	request(s, "GET", "/silent", NULL, NULL, 0, &r);
	assert_error(&r, 500, "internal");
	free(r.body);
}

/* ---- bodies ---- */

static void test_post_body(void **state)
{
	struct server *s = *state;
	size_t sizes[] = {1, 100, 4096, 65537, HTTPD_MAX_BODY};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		char *body = malloc(n);
		struct reply r;

		assert_non_null(body);
		/* every byte value, NULs included */
		for (size_t k = 0; k < n; k++)
			body[k] = (char)((k * 7 + i) & 0xff);
		request(s, "POST", "/raw", NULL, body, n, &r);
		assert_int_equal(r.status, 200);
		assert_string_equal(r.content_type, "application/octet-stream");
		assert_int_equal(r.len, n);
		assert_memory_equal(r.body, body, n);
		free(r.body);
		free(body);
	}
}

static void test_body_too_large(void **state)
{
	struct server *s = *state;
	size_t n = HTTPD_MAX_BODY + 1;
	char *body = malloc(n);
	struct reply r;
	int before, after;

	assert_non_null(body);
	memset(body, 'a', n);
	pthread_mutex_lock(&s->lock);
	before = s->calls;
	pthread_mutex_unlock(&s->lock);
	request(s, "POST", "/raw", NULL, body, n, &r);
	assert_error(&r, 413, "body_too_large");
	free(r.body);
	free(body);
	/* the handler was not called */
	pthread_mutex_lock(&s->lock);
	after = s->calls;
	pthread_mutex_unlock(&s->lock);
	assert_int_equal(after, before);

	/* the server is still fine afterwards */
	request(s, "POST", "/raw", NULL, "ok", 2, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 2);
	free(r.body);
}

static void test_body_json(void **state)
{
	static const struct {
		const char *body;
		long status;
		const char *code; /* error code ("*": any), or NULL for 200 */
		long keys;
	} bodies[] = {
	    {"{\"a\": 1, \"b\": [2]}", 200, NULL, 2},
	    {"{}", 200, NULL, 0},
	    {"", 400, "bad_request", 0},
	    {"{\"a\": ", 400, "bad_json", 0},
	    {"not json", 400, "bad_json", 0},
	    {"{\"a\": 1, \"a\": 2}", 400, "bad_json", 0}, /* duplicate keys */
	    {"[1, 2]", 400, "bad_request", 0},
	    /* a scalar: jansson (RFC 4627 mode) calls it not JSON; any code will do */
	    {"\"a string\"", 400, "*", 0},
	    {"42", 400, "*", 0},
	    {"{\"a\": 1} trailing", 400, "bad_json", 0},
	};
	struct server *s = *state;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct reply r;

		request(s, "POST", "/json", NULL, bodies[i].body, strlen(bodies[i].body), &r);
		if (bodies[i].code) {
			assert_error(&r, bodies[i].status, bodies[i].code);
		} else {
			json_t *j = reply_json(&r);
			assert_int_equal(r.status, 200);
			assert_int_equal(json_integer_value(json_object_get(j, "keys")),
			                 bodies[i].keys);
			json_decref(j);
		}
		free(r.body);
	}
}

/* ---- bearer tokens ---- */

static void test_bearer(void **state)
{
	static const struct {
		const char *token;  /* configured */
		const char *header; /* sent, or NULL */
		bool ok;
	} auths[] = {
	    {"token", "Authorization: Bearer token", true},
	    {"s3cr3t-T0ken_x", "Authorization: Bearer s3cr3t-T0ken_x", true},
	    {"token", "Authorization: Bearer tokem", false},
	    {"token", "Authorization: Bearer Token", false},
	    {"token", NULL, false},
	    {"token", "Authorization: Basic dXNlcjp0b2tlbg==", false},
	    {"token", "Authorization: token", false},
	    {"token", "Authorization: Bearer", false},
	    {"token", "Authorization: Bearer ", false},
	    /* prefix and extension of the right token */
	    {"token", "Authorization: Bearer tok", false},
	    {"token", "Authorization: Bearer tokenX", false},
	    {"token", "Authorization: Bearer token token", false},
	    /* no token configured: nothing is authorised */
	    {"", "Authorization: Bearer ", false},
	    {"", "Authorization: Bearer x", false},
	    {NULL, "Authorization: Bearer x", false},
	};
	struct server *s = *state;

	for (size_t i = 0; i < sizeof(auths) / sizeof(auths[0]); i++) {
		struct reply r;

		pthread_mutex_lock(&s->lock);
		s->token = auths[i].token;
		pthread_mutex_unlock(&s->lock);
		request(s, "GET", "/auth", auths[i].header, NULL, 0, &r);
		if (r.status != (auths[i].ok ? 200 : 401))
			fail_msg("token '%s', header '%s': status %ld", auths[i].token,
			         auths[i].header ? auths[i].header : "(none)", r.status);
		free(r.body);
	}
}

/* ---- httpd_split_path (pure) ---- */

static void test_split_path(void **state)
{
	static const struct {
		const char *path;
		size_t bufcap;
		int max;
		int rc;
		const char *segs[4];
	} paths[] = {
	    {"/", 64, 4, 0, {NULL}},
	    {"/v1", 64, 4, 1, {"v1"}},
	    {"/v1/vms/abc", 64, 4, 3, {"v1", "vms", "abc"}},
	    {"/v1/vms/abc/", 64, 4, 3, {"v1", "vms", "abc"}},
	    {"/a/b/c/d", 64, 4, 4, {"a", "b", "c", "d"}},
	    {"/a/b/c/d/e", 64, 4, -1, {NULL}},
	    {"/a/b", 64, 1, -1, {NULL}},
	    {"//x", 64, 4, -1, {NULL}},
	    {"/a//b", 64, 4, -1, {NULL}},
	    {"v1/vms", 64, 4, -1, {NULL}},
	    {"", 64, 4, -1, {NULL}},
	    /* the copy must fit in buf */
	    {"/v1/vms", 8, 4, 2, {"v1", "vms"}},
	    {"/v1/vms", 7, 4, -1, {NULL}},
	};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		const char *segs[4] = {NULL};
		char buf[64];
		int n;

		n = httpd_split_path(paths[i].path, buf, paths[i].bufcap, segs, paths[i].max);
		if (n != paths[i].rc)
			fail_msg("\"%s\": %d segments, want %d", paths[i].path, n, paths[i].rc);
		for (int k = 0; k < n; k++)
			assert_string_equal(segs[k], paths[i].segs[k]);
	}
}

/* An empty segment before the tolerated trailing slash is still empty. */
static void test_split_path_empty_tail(void **state)
{
	static const char *const paths[] = {"/a/b//", "//", "/v1/vms//"};

	/* Regression (fixed): httpd.c httpd_split_path strips one trailing '/' before looking
	 * for "//", so "/a/b//" becomes "/a/b/" (2 segments) and "//" becomes
	 * "/" (0 segments) instead of -1 */
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		const char *segs[4];
		char buf[64];
		int n = httpd_split_path(paths[i], buf, sizeof(buf), segs, 4);
		if (n != -1)
			fail_msg("\"%s\": %d segments, want -1", paths[i], n);
	}
}

/* ---- listen addresses ---- */

static void test_bad_listen(void **state)
{
	static const struct {
		const char *addr;
		const char *err;
	} addrs[] = {
	    {"nonsense", "listen address 'nonsense' is not ip:port"},
	    {"127.0.0.1:99999", "listen address '127.0.0.1:99999' is not ip:port"},
	    {"127.0.0.1:-1", "listen address '127.0.0.1:-1' is not ip:port"},
	    {"127.0.0.1:", "listen address '127.0.0.1:' is not ip:port"},
	    {"1.2.3.4.5:80", "listen address '1.2.3.4.5:80': bad IPv4 address"},
	    {"localhost:80", "listen address 'localhost:80': bad IPv4 address"},
	    {"[::g]:80", "listen address '[::g]:80': bad IPv6 address"},
	};

	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		char err[128] = "";
		struct httpd *h = httpd_new(addrs[i].addr, handler, NULL, err, sizeof(err));

		if (h) {
			httpd_free(h);
			fail_msg("httpd_new(\"%s\") succeeded", addrs[i].addr);
		}
		assert_string_equal(err, addrs[i].err);
	}
	httpd_free(NULL);
}

/* A port that is taken: NULL and the cause. */
static void test_port_taken(void **state)
{
	struct server *s = *state;
	char addr[64], err[128] = "", want[128];
	struct httpd *h;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->port);
	h = httpd_new(addr, handler, NULL, err, sizeof(err));
	if (h) {
		httpd_free(h);
		fail_msg("a second server on %s started", addr);
	}
	snprintf(want, sizeof(want), "cannot listen on %s: ", addr);
	assert_true(strncmp(err, want, strlen(want)) == 0);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_routing),    cmocka_unit_test(test_response_headers),
	    cmocka_unit_test(test_post_body),  cmocka_unit_test(test_body_too_large),
	    cmocka_unit_test(test_body_json),  cmocka_unit_test(test_bearer),
	    cmocka_unit_test(test_split_path), cmocka_unit_test(test_split_path_empty_tail),
	    cmocka_unit_test(test_bad_listen), cmocka_unit_test(test_port_taken),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests_name("httpd", tests, setup, teardown);
	curl_global_cleanup();
	return rc;
}
