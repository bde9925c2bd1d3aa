/* cli_req.h - the requests the CLI sends, built from parsed arguments and
 * checked before anything is sent. Pure (no I/O). Bodies: the caller
 * json_decref()s them. Errors: -EINVAL with the reason in err, naming the
 * argument ("--mem: 'x' is not an integer from 64 to 16777216"). */
#ifndef LE_CLI_CLI_REQ_H
#define LE_CLI_CLI_REQ_H

#include <jansson.h>
#include <stddef.h>

#include "cli/cli_opt.h"

/* Largest values the agents accept at all (vm.max_vcpus, vm.max_mem_mib). */
#define CLI_MAX_VCPUS   1024
#define CLI_MIN_MEM_MIB 64
#define CLI_MAX_MEM_MIB 16777216

/* `vm create ID --mem MIB [--vcpus N] [--max-vcpus N] [--max-mem MIB] (--kernel
 * PATH [--initrd PATH] | --disk PATH) [--append STR] [--host H] [--pin h1,h2]
 * [--group G] [--anti-group G] [--exclude]` (a->pos[0] = ID) -> the body of
 * POST /v1/vms: the agent's VM spec ("name", "vcpus", "mem_mib", "max_vcpus",
 * "max_mem_mib", "kernel", "initrd", "append", "disk",
 * "pin", "group", "anti_group", "exclude") plus "host". */
int cli_req_vm_create(const struct cli_args *a, json_t **body, char *err, size_t errlen);

/* `vm migrate ID [--to HOST] [--force]` -> {"to": HOST, "force": true}, the
 * members only when given ({} lets the placement choose). */
int cli_req_vm_migrate(const struct cli_args *a, json_t **body, char *err, size_t errlen);

/* `vm resize ID [--vcpus N] [--mem MIB]` (one or both) -> {"vcpus": N,
 * "mem_mib": MIB}, the members only when given. */
int cli_req_vm_resize(const struct cli_args *a, json_t **body, char *err, size_t errlen);

/* `host maintenance on|off HOST` (pos[0] = on|off, pos[1] = HOST) -> {"on": bool}. */
int cli_req_maintenance(const struct cli_args *a, json_t **body, char *err, size_t errlen);

/* Run-time changes (cli_rt.c). *body NULL (and 0) when there is nothing to
 * send: a show, --reset or --clear.
 * `vm rules ID [--pin h1,h2] [--group G] [--anti-group G] [--exclude on|off]
 * [--automation auto|manual|off] [--reset]` -> {"pin": [...], "group",
 * "anti_group", "exclude", "automation"}, the members given ("" clears). */
int cli_req_vm_rules(const struct cli_args *a, json_t **body, char *err, size_t errlen);
/* `host exclude on|off HOST` -> {"on": bool}. */
int cli_req_host_exclude(const struct cli_args *a, json_t **body, char *err, size_t errlen);
/* `mode [off|recommend|auto] [--reset]` -> {"mode": M}. */
int cli_req_mode(const struct cli_args *a, json_t **body, char *err, size_t errlen);
/* `windows [SPEC...] [--clear]` -> {"windows": "the words joined by blanks"}. */
int cli_req_windows(const struct cli_args *a, json_t **body, char *err, size_t errlen);

/* The query of GET /v1/events; NULL / 0 members are left out. */
struct cli_events_q {
	const char *after;
	int count;
	int wait;
	const char *type, *vm, *host;
};

/* "/v1/events?count=20&type=host_down..." into buf, values percent-encoded.
 * 0 or -ENAMETOOLONG. */
int cli_req_events_path(const struct cli_events_q *q, char *buf, size_t cap);

/* Checks an id given as the argument `what` (VM, HOST): 1-64 of [A-Za-z0-9_.-]. */
int cli_req_check_id(const char *what, const char *id, char *err, size_t errlen);

#endif
