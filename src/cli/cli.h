/* cli.h - `loadease <verb>`: the operator's command line, a client of the
 * controller's REST API (docs/controller.md). */
#ifndef LE_CLI_CLI_H
#define LE_CLI_CLI_H

#include <stdbool.h>
#include <stdio.h>

/* True when argv[1] starts a CLI command line: one of the CLI's verbs
 * (hosts, vms, top, plan, events, vm, host, cluster) or an option (the
 * global options may come before the verb). */
bool cli_is_verb(const char *verb);
/* argv[0] is the verb (or a global option). Exit code: 0 ok, 1 the
 * controller refused or failed, 2 usage, 3 the controller unreachable, 4
 * gave up waiting for an action's end. */
int cli_main(int argc, char **argv);
/* For `loadease --help`: the verbs, one line each; the global options. */
void cli_print_verbs(FILE *f);
void cli_print_globals(FILE *f);

/* `loadease tls init|host ...` (cli_tls.c); argv[0] is "tls". Exit code 0,
 * 1 failed, 2 usage. */
int cli_tls_main(int argc, char **argv);

#endif
