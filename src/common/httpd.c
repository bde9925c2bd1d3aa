#include "common/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

struct httpd {
	struct MHD_Daemon *d;
	httpd_handler_fn fn;
	void *ctx;
	int port;
	char *cert, *key; /* PEM, owned; NULL for plain HTTP */
};

/* Per-request upload state. */
struct req_state {
	char *body;
	size_t len;
	bool too_big;
};

struct stream_state {
	httpd_stream_fn fn;
	void *cls;
	void (*free_fn)(void *cls);
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream_state *s = cls;
	long n = s->fn(s->cls, buf, max);

	(void)pos;
	return n > 0 ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_done(void *cls)
{
	struct stream_state *s = cls;

	if (s->free_fn)
		s->free_fn(s->cls);
	free(s);
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, struct httpd_resp *r)
{
	struct MHD_Response *mr;
	enum MHD_Result ret;

	if (r->stream) {
		struct stream_state *s = malloc(sizeof(*s));
		if (!s) {
			if (r->stream_free)
				r->stream_free(r->stream_cls);
			free(r->location);
			return MHD_NO;
		}
		s->fn = r->stream;
		s->cls = r->stream_cls;
		s->free_fn = r->stream_free;
		mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s,
		                                       stream_done);
		if (!mr)
			stream_done(s);
		free(r->body);
	} else {
		mr = MHD_create_response_from_buffer(r->len, r->body ? r->body : (char *)"",
		                                     r->body ? MHD_RESPMEM_MUST_FREE
		                                             : MHD_RESPMEM_PERSISTENT);
	}
	r->body = NULL;
	if (!mr) {
		free(r->location);
		return MHD_NO;
	}
	MHD_add_response_header(mr, "Content-Type",
	                        r->content_type ? r->content_type : "application/json");
	MHD_add_response_header(mr, "Cache-Control", "no-store");
	if (r->location) {
		MHD_add_response_header(mr, "Location", r->location);
		free(r->location);
		r->location = NULL;
	}
	ret = MHD_queue_response(conn, (unsigned int)r->status, mr);
	MHD_destroy_response(mr);
	return ret;
}

/* The client's address as text, for logs and the decision log's "who". */
static void peer_name(struct MHD_Connection *conn, char *out, size_t cap)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(out, cap, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
		          (socklen_t)cap);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		          out, (socklen_t)cap);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct httpd *h = cls;
	struct req_state *st = *con_cls;
	struct httpd_resp resp = {0};
	struct httpd_req req;

	if (!st) {
		st = calloc(1, sizeof(*st));
		if (!st)
			return MHD_NO;
		*con_cls = st;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!st->too_big) {
			if (st->len + *upload_data_size > HTTPD_MAX_BODY) {
				st->too_big = true;
				free(st->body);
				st->body = NULL;
				st->len = 0;
			} else {
				char *nb = realloc(st->body, st->len + *upload_data_size + 1);
				if (!nb)
					return MHD_NO;
				memcpy(nb + st->len, upload_data, *upload_data_size);
				st->len += *upload_data_size;
				nb[st->len] = '\0';
				st->body = nb;
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (st->too_big) {
		httpd_resp_error(&resp, 413, "body_too_large", "request body exceeds %d bytes",
		                 HTTPD_MAX_BODY);
		return send_resp(conn, &resp);
	}
	req.method = method;
	req.path = url;
	req.body = st->body ? st->body : "";
	req.body_len = st->len;
	req.conn = conn;
	peer_name(conn, req.peer, sizeof(req.peer));
	resp.status = 500;
	h->fn(h->ctx, &req, &resp);
	if (!resp.body && !resp.stream)
		httpd_resp_error(&resp, 500, "internal", "handler produced no response");
	return send_resp(conn, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct req_state *st = *con_cls;

	if (st) {
		free(st->body);
		free(st);
		*con_cls = NULL;
	}
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("http: %s", msg);
}

struct httpd *httpd_new(const char *addr, httpd_handler_fn fn, void *ctx, char *err, size_t errlen)
{
	return httpd_new_tls(addr, NULL, NULL, fn, ctx, err, errlen);
}

struct httpd *httpd_new_tls(const char *addr, const char *cert_pem, const char *key_pem,
                            httpd_handler_fn fn, void *ctx, char *err, size_t errlen)
{
	struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};
	struct sockaddr_storage ss = {0};
	char host[128];
	int port;
	unsigned int flags =
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	struct httpd *h;

	if (util_split_hostport(addr, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "listen address '%s' is not ip:port", addr);
		return NULL;
	}
	if (!host[0] || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_port = htons((uint16_t)port);
	} else if (strchr(host, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			snprintf(err, errlen, "listen address '%s': bad IPv6 address", addr);
			return NULL;
		}
		flags |= MHD_USE_IPv6;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			snprintf(err, errlen, "listen address '%s': bad IPv4 address", addr);
			return NULL;
		}
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->fn = fn;
	h->ctx = ctx;
	if (cert_pem && key_pem) {
		if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
			snprintf(err, errlen, "this libmicrohttpd has no TLS (set tls.mode = off)");
			free(h);
			return NULL;
		}
		h->cert = strdup(cert_pem);
		h->key = strdup(key_pem);
		if (!h->cert || !h->key) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert};
		tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->key};
		tls[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	}
	errno = 0;
	h->d = MHD_start_daemon(
	    flags, (uint16_t)port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
	    (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)128, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)30, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_ARRAY, tls,
	    MHD_OPTION_END);
	if (!h->d) {
		int saved = errno;
		snprintf(err, errlen, "cannot listen on %s: %s", addr,
		         saved ? strerror(saved)
		         : h->cert
		             ? "libmicrohttpd failed to start (is tls.key the key of tls.cert?)"
		             : "libmicrohttpd failed to start");
		goto fail;
	}
	{
		const union MHD_DaemonInfo *info =
		    MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
		h->port = info ? info->port : port;
	}
	return h;
fail:
	free(h->cert);
	free(h->key);
	free(h);
	return NULL;
}

void httpd_free(struct httpd *h)
{
	if (!h)
		return;
	if (h->d)
		MHD_stop_daemon(h->d);
	free(h->cert);
	free(h->key);
	free(h);
}

int httpd_port(const struct httpd *h)
{
	return h->port;
}

const char *httpd_query(const struct httpd_req *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *httpd_header(const struct httpd_req *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, key);
}

bool httpd_bearer_ok(const struct httpd_req *req, const char *token)
{
	const char *auth = httpd_header(req, "Authorization");
	size_t tl, al;
	unsigned char diff = 0;

	if (!token || !token[0] || !auth || strncmp(auth, "Bearer ", 7) != 0)
		return false;
	auth += 7;
	tl = strlen(token);
	al = strlen(auth);
	for (size_t i = 0; i < tl; i++)
		diff |= (unsigned char)(token[i] ^ (i < al ? auth[i] : 0));
	return diff == 0 && al == tl;
}

bool httpd_authorise(const struct httpd_req *req, const struct httpd_auth *a,
                     struct httpd_resp *resp)
{
	bool admin = httpd_bearer_ok(req, a->token);
	bool reader = !admin && httpd_bearer_ok(req, a->read_token);

	if (httpd_is_mutating(req)) {
		if (admin)
			return true;
		if (reader)
			httpd_resp_error(resp, 403, "forbidden",
			                 "%s %s: the read-only token (%s.read_token) cannot change "
			                 "anything; this call needs %s.token",
			                 req->method, req->path, a->who, a->who);
		else
			httpd_resp_error(
			    resp, 401, "unauthorized",
			    a->token && a->token[0]
			        ? "%s %s needs 'Authorization: Bearer <token>' with %s.token"
			        : "%s %s: mutating calls are off: no %s.token is set",
			    req->method, req->path, a->who);
		return false;
	}
	if (admin || reader || a->open_reads)
		return true;
	httpd_resp_error(resp, 401, "unauthorized",
	                 "%s %s needs 'Authorization: Bearer <token>' with %s.token or "
	                 "%s.read_token",
	                 req->method, req->path, a->who, a->who);
	return false;
}

bool httpd_is_mutating(const struct httpd_req *req)
{
	return strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0 &&
	       strcmp(req->method, "OPTIONS") != 0;
}

void httpd_resp_text(struct httpd_resp *resp, int status, const char *content_type, char *body,
                     size_t len)
{
	free(resp->body);
	resp->status = status;
	resp->content_type = content_type;
	resp->body = body;
	resp->len = len;
}

void httpd_resp_json(struct httpd_resp *resp, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;

	json_decref(j);
	if (!s) {
		s = strdup(
		    "{\"error\":{\"code\":\"internal\",\"message\":\"cannot encode reply\"}}");
		status = 500;
	}
	httpd_resp_text(resp, status, "application/json", s, s ? strlen(s) : 0);
}

void httpd_resp_error(struct httpd_resp *resp, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	httpd_resp_json(resp, status,
	                json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

json_t *httpd_body_json(const struct httpd_req *req, struct httpd_resp *resp)
{
	json_error_t e;
	json_t *j;

	if (req->body_len == 0) {
		httpd_resp_error(resp, 400, "bad_request", "a JSON object body is required");
		return NULL;
	}
	j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
	if (!j) {
		httpd_resp_error(resp, 400, "bad_json",
		                 "body is not valid JSON: %s (line %d, column %d)", e.text, e.line,
		                 e.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		httpd_resp_error(resp, 400, "bad_request", "body must be a JSON object");
		return NULL;
	}
	return j;
}

int httpd_split_path(const char *path, char *buf, size_t bufcap, const char **segs, int max)
{
	int n = 0;
	char *p, *save = NULL;

	if (util_fmt(buf, bufcap, "%s", path) < 0)
		return -1;
	if (buf[0] != '/')
		return -1;
	if (buf[1] == '\0')
		return 0;
	/* a trailing slash is tolerated; an empty segment inside is not */
	{
		size_t l = strlen(buf);
		if (strstr(buf, "//"))
			return -1;
		if (l > 1 && buf[l - 1] == '/')
			buf[l - 1] = '\0';
	}
	for (p = strtok_r(buf + 1, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (n == max)
			return -1;
		segs[n++] = p;
	}
	return n;
}
