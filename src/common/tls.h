/* tls.h - the TLS settings the agent and the controller share (`tls.*`,
 * rows CFG_TLS_KEYS in common/cfg_keys.h) and what start-up does with them:
 * the server's certificate and key read into memory for httpd_new_tls(),
 * the cluster CA handed to the HTTP client (httpc_set_ca()).
 */
#ifndef LE_COMMON_TLS_H
#define LE_COMMON_TLS_H

#include <stddef.h>

enum tls_mode { TLS_ON, TLS_OFF };
extern const char *const tls_mode_names[]; /* "on", "off", NULL */

#define TLS_DEFAULT_DIR  "/etc/loadease/tls"
#define TLS_DEFAULT_CA   TLS_DEFAULT_DIR "/ca.pem"
#define TLS_DEFAULT_CERT TLS_DEFAULT_DIR "/host.pem"
#define TLS_DEFAULT_KEY  TLS_DEFAULT_DIR "/host-key.pem"

struct tls_opts {
	int mode; /* enum tls_mode */
	char ca[256], cert[256], key[256];
};

/* The largest certificate chain or key file read (PEM). */
#define TLS_MAX_PEM (64 * 1024)

/* For a daemon called who ("agent h1"): with tls.mode = on reads tls.cert
 * and tls.key (the key must pass util_check_secret_file()) into *cert and
 * *key (malloc'd, caller frees), checks that tls.ca is a readable PEM file
 * and makes it the HTTP client's CA (httpc_set_ca()); with tls.mode = off
 * sets *cert = *key = NULL and logs a warning that the API is plain HTTP.
 * 0, or a negative errno with err naming the key and the file. */
int tls_setup(const struct tls_opts *t, const char *who, char **cert, char **key, char *err,
              size_t errlen);

/* "https" or "http", for URLs of peers that run the same tls.mode. */
const char *tls_scheme(const struct tls_opts *t);

#endif
