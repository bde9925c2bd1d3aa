/* cli_fmt.h - the human output of the CLI: the controller's JSON documents
 * (docs/controller.md) as aligned tables and one-line events. Pure: the
 * documents and the time are parameters, the output goes to a FILE * or a
 * buffer. Missing or mistyped members print as "-"; a document without its
 * main member ("hosts", "vms", "actions") is -EPROTO. Text is ASCII only. */
#ifndef LE_CLI_CLI_FMT_H
#define LE_CLI_CLI_FMT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A fraction of capacity as a percentage with one decimal: 0.812 -> "81.2";
 * "-" when v is not a number. */
void cli_fmt_pct(const json_t *v, char *buf, size_t cap);
/* Seconds as a short age: "0.4s" (under 10 s), "42s", "12m", "5h", "3d";
 * "-" when negative or not finite. */
void cli_fmt_age(double s, char *buf, size_t cap);
/* The resources set true in {"cpu": true, "mem": false, ...} in the order
 * cpu, mem, net: "cpu,net", or "-". */
void cli_fmt_hot(const json_t *hot, char *buf, size_t cap);
/* A VM's rules object in short form: "pin=h0,h1;group=g;anti=a;excl", or "-". */
void cli_fmt_rules(const json_t *rules, char *buf, size_t cap);
/* ms since the epoch as local time "2025-11-26 01:00:00". */
void cli_fmt_time(int64_t ms, char *buf, size_t cap);

/* {"hosts": [...]}: HOST STATE CPU% MEM% NET% PEAK(C/M/N) HOT VOLUME VMS AGE
 * (AGE from age_s, else from last_seen and now_ms). "no hosts" when empty. */
int cli_fmt_hosts(FILE *out, const json_t *doc, int64_t now_ms);
/* {"vms": [...]}, only those on host when host is not NULL:
 * VM HOST STATE VCPU MEM(MiB) CPU% MEM% NET% RULES MIGRATING. */
int cli_fmt_vms(FILE *out, const json_t *doc, const char *host);
/* GET /v1/plan: a headline, the actions (KIND VM FROM TO RES SRC-VOL DST-VOL
 * COST REASON) and the unresolved hotspots (HOST WHY REASON); "no action:
 * the cluster is balanced" when there is nothing to do. */
int cli_fmt_plan(FILE *out, const json_t *doc);
/* GET /v1/cluster as "name  value" lines. */
int cli_fmt_cluster(FILE *out, const json_t *doc, int64_t now_ms);
/* GET /v1/cluster in one line (the header of `top`). */
void cli_fmt_cluster_line(const json_t *doc, char *buf, size_t cap);
/* One event (flat fields; strings or numbers) as one line without newline:
 * "<local time> <type padded> vm=V from->to host=H key=value...: reason; msg". */
void cli_fmt_event(const json_t *ev, char *buf, size_t cap);
/* The per-host blocks of a 409 from placement ({"hosts": {"h0": "why"}}
 * inside "error"), one "  h0: why" line each. */
void cli_fmt_refused(FILE *out, const json_t *error);

#endif
