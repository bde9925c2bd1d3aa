#include "common/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpc.h"
#include "common/log.h"
#include "common/util.h"

const char *const tls_mode_names[] = {"on", "off", NULL};

/* Reads a PEM file of at most TLS_MAX_PEM bytes; *out malloc'd. */
static int read_pem(const char *key, const char *path, const char *marker, char **out, char *err,
                    size_t errlen)
{
	size_t len = 0;
	char *buf = malloc(TLS_MAX_PEM + 1);
	int rc;

	*out = NULL;
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = util_read_file("/", path, buf, TLS_MAX_PEM + 1, &len);
	if (rc < 0) {
		snprintf(err, errlen, "%s %s: %s%s", key, path,
		         rc == -EFBIG ? "larger than 64 KiB" : strerror(-rc),
		         rc == -ENOENT ? " (make it with `loadease tls`, or set tls.mode = off)"
		                       : "");
		free(buf);
		return rc;
	}
	if (!strstr(buf, marker)) {
		snprintf(err, errlen, "%s %s: not PEM (no '%s' line)", key, path, marker);
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	return 0;
}

int tls_setup(const struct tls_opts *t, const char *who, char **cert, char **key, char *err,
              size_t errlen)
{
	char *ca = NULL;
	int rc;

	*cert = *key = NULL;
	if (t->mode == TLS_OFF) {
		log_warn("%s: tls.mode = off: the API is plain HTTP, tokens and answers cross the "
		         "network readable by anyone on it",
		         who);
		httpc_set_ca(NULL);
		return 0;
	}
	rc = read_pem("tls.ca", t->ca, "-----BEGIN CERTIFICATE-----", &ca, err, errlen);
	if (rc < 0)
		goto out;
	rc = read_pem("tls.cert", t->cert, "-----BEGIN CERTIFICATE-----", cert, err, errlen);
	if (rc < 0)
		goto out;
	{
		char why[384];
		rc = util_check_secret_file(t->key, why, sizeof(why));
		if (rc < 0) {
			snprintf(err, errlen, "tls.key %s", why);
			goto out;
		}
	}
	rc = read_pem("tls.key", t->key, "PRIVATE KEY-----", key, err, errlen);
	if (rc < 0)
		goto out;
	httpc_set_ca(t->ca);
out:
	free(ca);
	if (rc < 0) {
		free(*cert);
		free(*key);
		*cert = *key = NULL;
	}
	return rc;
}

const char *tls_scheme(const struct tls_opts *t)
{
	return t->mode == TLS_OFF ? "http" : "https";
}
