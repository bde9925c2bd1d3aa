/* cli_int.h - what the CLI's files share (not for other subcommands), and
 * cli_run, the whole CLI with its output streams as parameters, for tests. */
#ifndef LE_CLI_CLI_INT_H
#define LE_CLI_CLI_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "cli/cli_opt.h"

#define CLI_DEFAULT_CONTROLLER "https://127.0.0.1:7100"
#define CLI_DEFAULT_TIMEOUT_MS 10000

/* Exit codes (cli.h). */
enum { CLI_OK = 0, CLI_EAPI = 1, CLI_EUSAGE = 2, CLI_EUNREACHABLE = 3, CLI_EWAIT = 4 };

struct cli_ctx {
	const char *verb;  /* for messages: "hosts", "vm create" */
	const char *usage; /* the verb's synopsis, printed after a usage error */
	char base[512];    /* the controller's URL without a trailing '/' */
	char token[1024];
	long timeout_ms; /* --timeout; 0 = the verb's default */
	bool json;
	FILE *out, *err;
	/* the last cli_call's HTTP status (a negative errno when it got none)
	 * and its error.code ("" when none) */
	int status;
	char code[32];
};

/* What completes a value (an option's or a positional's). */
enum cli_kind { CLI_K_NONE = 0, CLI_K_HOST, CLI_K_VM, CLI_K_FILE, CLI_K_WORDS };

/* One verb ("hosts") or one subcommand of a group ("vm migrate"). */
struct cli_verb {
	const char *group; /* "vm", "host" for subcommands, else NULL */
	const char *name;
	const char *summary; /* one line for `loadease --help` */
	const char *usage;
	const char *help;
	const struct cli_opt *opts;
	/* what each positional is, for completion: "vm", "host", or
	 * "word|word" (literal choices), separated by blanks; NULL: none */
	const char *args;
	int (*run)(struct cli_ctx *c, const struct cli_args *a);
};

/* The verb table and the global options (cli.c). */
extern const struct cli_verb cli_verbs[];
extern const size_t cli_nverbs;
extern const struct cli_opt cli_global_opts[];

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

/* GET path without any message: the 2xx JSON object (caller json_decref()s
 * it) or NULL. For polls whose failures the caller handles. */
json_t *cli_get_quiet(struct cli_ctx *c, const char *path, long timeout_ms);

/* The live verbs (cli_watch.c): `top` and `events`. */
int cli_top(struct cli_ctx *c, const struct cli_args *a);
int cli_events(struct cli_ctx *c, const struct cli_args *a);

/* The verbs that change things (cli_act.c). */
int cli_vm_create(struct cli_ctx *c, const struct cli_args *a);
int cli_vm_migrate(struct cli_ctx *c, const struct cli_args *a);
int cli_vm_rm(struct cli_ctx *c, const struct cli_args *a);
int cli_vm_resize(struct cli_ctx *c, const struct cli_args *a);
int cli_maintenance(struct cli_ctx *c, const struct cli_args *a);

/* The verbs that change the controller at run time (cli_rt.c). */
int cli_vm_rules(struct cli_ctx *c, const struct cli_args *a);
int cli_host_exclude(struct cli_ctx *c, const struct cli_args *a);
int cli_mode(struct cli_ctx *c, const struct cli_args *a);
int cli_windows(struct cli_ctx *c, const struct cli_args *a);

/* `loadease __complete WORD...` (cli_complete.c): the candidates for the
 * last word, one a line (bash-completion/loadease calls it). */
int cli_complete(int argc, char **argv, FILE *out);

#endif
