/* httpc.h - a small JSON HTTP client (libcurl) for agent-to-agent and
 * CLI-to-controller calls: one request, a timeout, an optional bearer token.
 */
#ifndef LE_COMMON_HTTPC_H
#define LE_COMMON_HTTPC_H

#include <jansson.h>

/* Sends method url with body (a JSON value, may be NULL; not stolen) and
 * "Authorization: Bearer <token>" when token is non-empty. On a transport
 * success returns the HTTP status (and *reply, caller json_decref()s, when
 * the answer is JSON; NULL otherwise); on a transport failure a negative
 * errno with the reason in err. */
int httpc_json(const char *method, const char *url, json_t *body, const char *token,
               long timeout_ms, json_t **reply, char *err, size_t errlen);

/* The CA file (PEM) https:// servers are verified against, host name
 * included; NULL or "" = the system's CAs. Set once at start-up, before any
 * request. */
void httpc_set_ca(const char *path);

#endif
