/* cli_int.h - what the CLI's files share (not for other subcommands), and
 * cli_run, the whole CLI with its output streams as parameters, for tests. */
#ifndef LE_CLI_CLI_INT_H
#define LE_CLI_CLI_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "cli/cli_opt.h"

#define CLI_DEFAULT_CONTROLLER "http://127.0.0.1:7100"
#define CLI_DEFAULT_TIMEOUT_MS 10000

/* Exit codes (cli.h). */
enum { CLI_OK = 0, CLI_EAPI = 1, CLI_EUSAGE = 2, CLI_EUNREACHABLE = 3 };

struct cli_ctx {
	const char *verb;  /* for messages: "hosts", "vm create" */
	const char *usage; /* the verb's synopsis, printed after a usage error */
	char base[512];    /* the controller's URL without a trailing '/' */
	char token[1024];
	long timeout_ms; /* --timeout; 0 = the verb's default */
	bool json;
	FILE *out, *err;
};

/* `loadease <argv[0]> ...` with the output to out and the messages to err;
 * returns the exit code. */
int cli_run(int argc, char **argv, FILE *out, FILE *err);

/* Sends one request (timeout_ms unless --timeout was given). 0 with *reply
 * (a 2xx JSON answer; caller json_decref()s it); otherwise the reason is
 * printed to c->err and the exit code returned: CLI_EAPI (the controller's
 * error.message, and a 409's per-host blocks), CLI_EUNREACHABLE (the URL
 * and the transport error). */
int cli_call(struct cli_ctx *c, const char *method, const char *path, json_t *body, long timeout_ms,
             json_t **reply);

/* Prints "loadease <verb>: <reason>" and the verb's usage line to c->err;
 * returns CLI_EUSAGE. */
int cli_usage(struct cli_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints a document as indented JSON to c->out. */
void cli_print_json(struct cli_ctx *c, const json_t *doc);

/* The live verbs (cli_watch.c): `top` and `events`. */
int cli_top(struct cli_ctx *c, const struct cli_args *a);
int cli_events(struct cli_ctx *c, const struct cli_args *a);

#endif
