/* httpd.h - a small JSON HTTP server on libmicrohttpd.
 *
 * One handler per server gets every complete request (body already read, up
 * to HTTPD_MAX_BODY bytes; larger bodies are answered 413 without calling
 * the handler). The handler fills a struct httpd_resp; the server sends it.
 * Handlers run on libmicrohttpd's threads (one per connection): they must
 * lock whatever state they share with the rest of the program.
 */
#ifndef LE_COMMON_HTTPD_H
#define LE_COMMON_HTTPD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define HTTPD_MAX_BODY (1 << 20)

struct MHD_Connection;

struct httpd_req {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* URL path without the query string */
	const char *body;   /* NUL-terminated; "" when none */
	size_t body_len;
	struct MHD_Connection *conn;
	char peer[48]; /* the client's address ("10.0.0.1", "::1"); "?" when unknown */
};

/* A streamed body (server-sent events): called on the connection's thread
 * for the next bytes; may block for a while. Returns the bytes written to
 * buf (at most max, > 0), or HTTPD_STREAM_END to end the response. */
#define HTTPD_STREAM_END (-1)
typedef long (*httpd_stream_fn)(void *cls, char *buf, size_t max);

struct httpd_resp {
	int status;
	char *body; /* malloc'd, owned by the response */
	size_t len;
	const char *content_type; /* static string */
	char *location;           /* optional Location header, malloc'd */
	httpd_stream_fn stream;   /* set instead of body for a streamed response */
	void *stream_cls;
	void (*stream_free)(void *cls); /* called once the response is done */
};

typedef void (*httpd_handler_fn)(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);

struct httpd;

/* Listens on addr ("ip:port", "[v6]:port"; port 0 picks a free one). NULL on
 * failure with the reason in err. Caller frees with httpd_free(). */
struct httpd *httpd_new(const char *addr, httpd_handler_fn fn, void *ctx, char *err, size_t errlen);
/* The same over TLS when cert_pem and key_pem (PEM text, copied) are both
 * given: HTTPS only; a plaintext request is dropped at the handshake and
 * the server keeps serving. Both NULL = plain HTTP, as httpd_new(). */
struct httpd *httpd_new_tls(const char *addr, const char *cert_pem, const char *key_pem,
                            httpd_handler_fn fn, void *ctx, char *err, size_t errlen);
/* Stops the server (waits for running handlers) and frees it. NULL is fine. */
void httpd_free(struct httpd *h);
int httpd_port(const struct httpd *h);

/* Query-string argument or request header; NULL when absent. Valid during the
 * handler only. */
const char *httpd_query(const struct httpd_req *req, const char *key);
const char *httpd_header(const struct httpd_req *req, const char *key);

/* Is the request carrying "Authorization: Bearer <token>"? Constant-time
 * comparison. An empty token configured means nothing is authorised. */
bool httpd_bearer_ok(const struct httpd_req *req, const char *token);
/* Who may call: the token may do everything, the read token only reads
 * (GET, HEAD), and with open_reads anyone may read. */
struct httpd_auth {
	const char *who; /* the config section the tokens are in: "agent", "controller" */
	const char *token, *read_token;
	bool open_reads;
};
/* true when the request may go on; else resp holds 401 (no or an unknown
 * token) or 403 (the read token on a mutating call), each saying which
 * token the call needs. */
bool httpd_authorise(const struct httpd_req *req, const struct httpd_auth *a,
                     struct httpd_resp *resp);
/* Mutating methods (POST, PUT, PATCH, DELETE). */
bool httpd_is_mutating(const struct httpd_req *req);

/* Response helpers. httpd_resp_json steals the reference to j. */
void httpd_resp_json(struct httpd_resp *resp, int status, json_t *j);
void httpd_resp_text(struct httpd_resp *resp, int status, const char *content_type, char *body,
                     size_t len);
/* {"error": {"code": code, "message": ...}} */
void httpd_resp_error(struct httpd_resp *resp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parses the request body as a JSON object; on failure fills resp with a 400
 * and returns NULL. Caller json_decref()s the result. */
json_t *httpd_body_json(const struct httpd_req *req, struct httpd_resp *resp);

/* Splits a path like "/v1/vms/abc" into at most max segments ("v1", "vms",
 * "abc") in buf; returns the count, or -1 when it does not fit or a segment
 * is empty. */
int httpd_split_path(const char *path, char *buf, size_t bufcap, const char **segs, int max);

#endif
