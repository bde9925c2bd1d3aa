/* cli.h - `loadease <verb>`: the operator's command line, a client of the
 * controller's REST API (docs/controller.md). */
#ifndef LE_CLI_CLI_H
#define LE_CLI_CLI_H

#include <stdbool.h>

/* True when argv[1] is one of the CLI's verbs (hosts, vms, top, plan,
 * events, vm, host, cluster). */
bool cli_is_verb(const char *verb);
/* argv[0] is the verb. Exit code: 0 ok, 1 the controller refused or failed,
 * 2 usage, 3 the controller unreachable. */
int cli_main(int argc, char **argv);

#endif
