#include "common/httpc.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
	char *data;
	size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t add = size * n;
	char *nd;

	if (b->len + add > (8u << 20))
		return 0; /* answers are small; refuse a flood */
	nd = realloc(b->data, b->len + add + 1);
	if (!nd)
		return 0;
	memcpy(nd + b->len, p, add);
	b->len += add;
	nd[b->len] = '\0';
	b->data = nd;
	return add;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static char ca_file[4096]; /* httpc_set_ca(); "" = the system's CAs */

void httpc_set_ca(const char *path)
{
	snprintf(ca_file, sizeof(ca_file), "%s", path ? path : "");
}

/* A failed transfer said for a person: curl's detail, and what to do when
 * the server's certificate was not accepted. */
static void say_failure(CURLcode cc, const char *method, const char *url, const char *detail,
                        char *err, size_t errlen)
{
	const char *hint = "";

	if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
	    cc == CURLE_SSL_CONNECT_ERROR)
		hint = ca_file[0] ? " (the server's certificate is not one the cluster CA "
		                    "signed for this address: check --ca / tls.ca and the host's "
		                    "certificate, `loadease tls host`)"
		                  : " (no cluster CA given: --ca FILE or $LOADEASE_CA)";
	snprintf(err, errlen, "%s %s: %s%s", method, url,
	         detail[0] ? detail : curl_easy_strerror(cc), hint);
}

static void init_curl(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int httpc_json(const char *method, const char *url, json_t *body, const char *token,
               long timeout_ms, json_t **reply, char *err, size_t errlen)
{
	struct curl_slist *hdr = NULL;
	struct buf b = {0};
	char *text = NULL, auth[512], detail[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode cc;
	CURL *c;
	int rc;

	if (reply)
		*reply = NULL;
	pthread_once(&init_once, init_curl);
	c = curl_easy_init();
	if (!c) {
		snprintf(err, errlen, "cannot start an HTTP client");
		return -ENOMEM;
	}
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	if (token && token[0]) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hdr = curl_slist_append(hdr, auth);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
	if (ca_file[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, text ? text : "{}");
	}
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		say_failure(cc, method, url, detail, err, errlen);
		rc = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	rc = (int)status;
	if (reply && b.data) {
		json_error_t je;
		*reply = json_loads(b.data, 0, &je);
	}
out:
	free(text);
	free(b.data);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	return rc;
}
