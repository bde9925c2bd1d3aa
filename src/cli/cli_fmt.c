/* cli_fmt.c - tables and event lines from the controller's JSON (see
 * cli_fmt.h). */
#include "cli/cli_fmt.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_table.h"
#include "common/util.h"

#define CELL             160
#define EVENT_TYPE_WIDTH 20 /* "migration_reconciled" */

static const char *const res_names[] = {"cpu", "mem", "net"};

/* --- small helpers ------------------------------------------------------- */

/* A bounded string builder: appends what fits, always NUL-terminated. */
struct sb {
	char *buf;
	size_t cap, len;
};

__attribute__((format(printf, 2, 3))) static void sb_add(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->len + 1 >= b->cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len = b->len + (size_t)n < b->cap ? b->len + (size_t)n : b->cap - 1;
}

/* A number, or a string holding one (events are flat strings). */
static bool num(const json_t *v, double *out)
{
	if (json_is_number(v)) {
		*out = json_number_value(v);
		return isfinite(*out);
	}
	return json_is_string(v) && util_parse_double(json_string_value(v), out);
}

static bool num_at(const json_t *o, const char *k, double *out)
{
	return num(json_object_get(o, k), out);
}

static const char *str_at(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* A scalar as text: strings as they are, integers without decimals, reals
 * with %g, booleans; NULL for anything else (null, objects, arrays). */
static const char *scalar(const json_t *v, char *buf, size_t cap)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v))
		snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, cap, "%g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false");
	else
		return NULL;
	return buf;
}

/* printf into a cell; "-" when ok is false. Compute ok before the call:
 * the order arguments are evaluated in is unspecified. */
__attribute__((format(printf, 4, 5))) static void cell(char *buf, size_t cap, bool ok,
                                                       const char *fmt, ...)
{
	va_list ap;

	if (!ok) {
		snprintf(buf, cap, "-");
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
}

/* The number o[k] through fmt (one double conversion), or "-". */
static void num_cell(char *buf, size_t cap, const json_t *o, const char *k, const char *fmt)
{
	double x;

	if (num_at(o, k, &x))
		snprintf(buf, cap, fmt, x);
	else
		snprintf(buf, cap, "-");
}

void cli_fmt_pct(const json_t *v, char *buf, size_t cap)
{
	double x;

	if (num(v, &x))
		snprintf(buf, cap, "%.1f", x * 100);
	else
		snprintf(buf, cap, "-");
}

void cli_fmt_age(double s, char *buf, size_t cap)
{
	if (!isfinite(s) || s < 0)
		snprintf(buf, cap, "-");
	else if (s < 10)
		snprintf(buf, cap, "%.1fs", s);
	else if (s < 120)
		snprintf(buf, cap, "%.0fs", s);
	else if (s < 7200)
		snprintf(buf, cap, "%.0fm", s / 60);
	else if (s < 172800)
		snprintf(buf, cap, "%.0fh", s / 3600);
	else
		snprintf(buf, cap, "%.0fd", s / 86400);
}

void cli_fmt_hot(const json_t *hot, char *buf, size_t cap)
{
	struct sb b = {buf, cap, 0};

	buf[0] = '\0';
	for (int r = 0; r < 3; r++)
		if (json_is_true(json_object_get(hot, res_names[r])))
			sb_add(&b, "%s%s", b.len ? "," : "", res_names[r]);
	if (!b.len)
		sb_add(&b, "-");
}

void cli_fmt_rules(const json_t *rules, char *buf, size_t cap)
{
	struct sb b = {buf, cap, 0};
	const json_t *pin = json_object_get(rules, "pin"), *h;
	const char *g = str_at(rules, "group"), *ag = str_at(rules, "anti_group");
	size_t i;

	buf[0] = '\0';
	json_array_foreach(pin, i, h)
	{
		sb_add(&b, "%s%s",
		       i ? "," : "pin=", json_string_value(h) ? json_string_value(h) : "?");
	}
	if (g && g[0])
		sb_add(&b, "%sgroup=%s", b.len ? ";" : "", g);
	if (ag && ag[0])
		sb_add(&b, "%santi=%s", b.len ? ";" : "", ag);
	if (json_is_true(json_object_get(rules, "exclude")))
		sb_add(&b, "%sexcl", b.len ? ";" : "");
	{
		const char *lvl = json_string_value(json_object_get(rules, "automation"));
		if (lvl && strcmp(lvl, "auto") != 0)
			sb_add(&b, "%sauto=%s", b.len ? ";" : "", lvl); /* manual, off */
	}
	if (!b.len)
		sb_add(&b, "-");
}

void cli_fmt_time(int64_t ms, char *buf, size_t cap)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || !localtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, cap, "-");
}

/* --- hosts --------------------------------------------------------------- */

static const struct cli_col host_cols[] = {
    {"HOST", false},       {"STATE", false}, {"CPU%", true},   {"MEM%", true}, {"NET%", true},
    {"PEAK(C/M/N)", true}, {"HOT", false},   {"VOLUME", true}, {"VMS", true},  {"AGE", true},
};
#define HOST_COLS (int)(sizeof(host_cols) / sizeof(host_cols[0]))

/* "80/40/2": the peaks in percent, "-" for a missing one. */
static void peaks(const json_t *peak, char *buf, size_t cap)
{
	struct sb b = {buf, cap, 0};
	double x;

	for (int r = 0; r < 3; r++) {
		if (num_at(peak, res_names[r], &x))
			sb_add(&b, "%s%.0f", r ? "/" : "", x * 100);
		else
			sb_add(&b, "%s-", r ? "/" : "");
	}
}

static double host_age(const json_t *h, int64_t now_ms)
{
	double age, seen;

	if (num_at(h, "age_s", &age))
		return age;
	if (num_at(h, "last_seen", &seen) && seen > 0)
		return (double)(now_ms - (int64_t)seen) / 1000.0;
	return -1;
}

static int host_row(struct cli_table *t, const json_t *h, int64_t now_ms)
{
	char c[HOST_COLS][CELL];
	const char *cells[HOST_COLS];
	const json_t *util = json_object_get(h, "util"), *vms = json_object_get(h, "vms");
	const char *state = str_at(h, "state");

	snprintf(c[0], CELL, "%s", str_at(h, "id") ? str_at(h, "id") : "?");
	snprintf(c[1], CELL, "%s%s%s", state ? state : "-",
	         json_is_true(json_object_get(h, "excluded")) ? ",excl" : "",
	         json_is_true(json_object_get(h, "empty")) ? ",empty" : "");
	for (int r = 0; r < 3; r++)
		cli_fmt_pct(json_object_get(util, res_names[r]), c[2 + r], CELL);
	peaks(json_object_get(h, "peak"), c[5], CELL);
	cli_fmt_hot(json_object_get(h, "hot"), c[6], CELL);
	num_cell(c[7], CELL, h, "volume", "%.2f");
	cell(c[8], CELL, json_is_array(vms) || json_is_integer(vms), "%lld",
	     json_is_array(vms) ? (long long)json_array_size(vms)
	                        : (long long)json_integer_value(vms));
	cli_fmt_age(host_age(h, now_ms), c[9], CELL);
	for (int i = 0; i < HOST_COLS; i++)
		cells[i] = c[i];
	return cli_table_add(t, cells);
}

int cli_fmt_hosts(FILE *out, const json_t *doc, int64_t now_ms)
{
	const json_t *hosts = json_object_get(doc, "hosts"), *h;
	struct cli_table *t;
	size_t i;
	int rc = 0;

	if (!json_is_array(hosts))
		return -EPROTO;
	if (json_array_size(hosts) == 0) {
		fprintf(out, "no hosts\n");
		return 0;
	}
	t = cli_table_new(host_cols, HOST_COLS);
	if (!t)
		return -ENOMEM;
	json_array_foreach(hosts, i, h)
	{
		rc = rc ? rc : host_row(t, h, now_ms);
	}
	if (!rc)
		cli_table_print(t, out, true);
	cli_table_free(t);
	return rc;
}

/* --- vms ----------------------------------------------------------------- */

static const struct cli_col vm_cols[] = {
    {"VM", false},  {"HOST", false}, {"STATE", false}, {"VCPU", true},   {"MEM(MiB)", true},
    {"CPU%", true}, {"MEM%", true},  {"NET%", true},   {"RULES", false}, {"MIGRATING", false},
};
#define VM_COLS (int)(sizeof(vm_cols) / sizeof(vm_cols[0]))

/* "h0->h2:phase" while a migration runs, "yes" without details, else "-". */
static void migrating(const json_t *vm, char *buf, size_t cap)
{
	const json_t *m = json_object_get(vm, "migration");
	const char *src = str_at(m, "src"), *dst = str_at(m, "dst"), *phase = str_at(m, "phase");

	if (json_is_object(m))
		snprintf(buf, cap, "%s->%s%s%s", src ? src : "?", dst ? dst : "?", phase ? ":" : "",
		         phase ? phase : "");
	else
		snprintf(buf, cap, "%s",
		         json_is_true(json_object_get(vm, "migrating")) ? "yes" : "-");
}

static int vm_row(struct cli_table *t, const json_t *vm)
{
	char c[VM_COLS][CELL];
	const char *cells[VM_COLS];
	const json_t *util = json_object_get(vm, "util");
	const char *state = str_at(vm, "state"), *host = str_at(vm, "host");

	snprintf(c[0], CELL, "%s", str_at(vm, "id") ? str_at(vm, "id") : "?");
	snprintf(c[1], CELL, "%s", host ? host : "-");
	snprintf(c[2], CELL, "%s%s", state ? state : "-",
	         json_is_false(json_object_get(vm, "reachable")) ? ",unreachable" : "");
	num_cell(c[3], CELL, vm, "vcpus", "%.0f");
	num_cell(c[4], CELL, vm, "mem_mib", "%.0f");
	for (int r = 0; r < 3; r++)
		cli_fmt_pct(json_object_get(util, res_names[r]), c[5 + r], CELL);
	cli_fmt_rules(json_object_get(vm, "rules"), c[8], CELL);
	migrating(vm, c[9], CELL);
	for (int i = 0; i < VM_COLS; i++)
		cells[i] = c[i];
	return cli_table_add(t, cells);
}

int cli_fmt_vms(FILE *out, const json_t *doc, const char *host)
{
	const json_t *vms = json_object_get(doc, "vms"), *vm;
	struct cli_table *t;
	size_t i;
	int rc = 0;

	if (!json_is_array(vms))
		return -EPROTO;
	t = cli_table_new(vm_cols, VM_COLS);
	if (!t)
		return -ENOMEM;
	json_array_foreach(vms, i, vm)
	{
		const char *h = str_at(vm, "host");
		if (!rc && (!host || (h && strcmp(h, host) == 0)))
			rc = vm_row(t, vm);
	}
	if (!rc && cli_table_rows(t))
		cli_table_print(t, out, true);
	else if (!rc)
		fprintf(out, "no VMs%s%s\n", host ? " on host " : "", host ? host : "");
	cli_table_free(t);
	return rc;
}

/* --- plan ---------------------------------------------------------------- */

static const struct cli_col action_cols[] = {
    {"KIND", false},   {"VM", false},     {"FROM", false}, {"TO", false},     {"RES", false},
    {"SRC-VOL", true}, {"DST-VOL", true}, {"COST", true},  {"REASON", false},
};
#define ACTION_COLS (int)(sizeof(action_cols) / sizeof(action_cols[0]))

static const struct cli_col unresolved_cols[] = {
    {"HOST", false},
    {"WHY", false},
    {"REASON", false},
};

/* "5.50->1.40" from <prefix>_before and <prefix>_after. */
static void vol_change(const json_t *a, const char *prefix, char *buf, size_t cap)
{
	char kb[32], ka[32];
	double b = 0, f = 0;
	bool ok;

	snprintf(kb, sizeof(kb), "%s_before", prefix);
	snprintf(ka, sizeof(ka), "%s_after", prefix);
	ok = num_at(a, kb, &b) && num_at(a, ka, &f);
	cell(buf, cap, ok, "%.2f->%.2f", b, f);
}

static int action_row(struct cli_table *t, const json_t *a)
{
	static const char *const keys[] = {"kind", "vm", "from", "to", "res"};
	char c[ACTION_COLS][CELL];
	const char *cells[ACTION_COLS];
	double swap = -1;

	for (int i = 0; i < 5; i++)
		snprintf(c[i], CELL, "%s", str_at(a, keys[i]) ? str_at(a, keys[i]) : "-");
	if (num_at(a, "swap_id", &swap) && swap >= 0) {
		size_t l = strlen(c[0]);
		snprintf(c[0] + l, CELL - l, "#%.0f", swap);
	}
	vol_change(a, "src_vol", c[5], CELL);
	vol_change(a, "dst_vol", c[6], CELL);
	num_cell(c[7], CELL, a, "cost_s", "%.1fs");
	snprintf(c[8], CELL, "%s", str_at(a, "reason") ? str_at(a, "reason") : "-");
	if (str_at(a, "kind") && !strcmp(str_at(a, "kind"), "resize")) {
		/* resize in place: the sizes before and after lead its reason */
		double vb = 0, va = 0, mb = 0, ma = 0;
		char r[CELL];
		snprintf(r, sizeof(r), "%s", c[8]);
		if (num_at(a, "vcpus_before", &vb) && num_at(a, "vcpus_after", &va) &&
		    num_at(a, "mem_before", &mb) && num_at(a, "mem_after", &ma))
			snprintf(c[8], CELL, "%.0f->%.0f vCPU, %.0f->%.0f MiB: %s", vb, va, mb, ma,
			         r);
	}
	for (int i = 0; i < ACTION_COLS; i++)
		cells[i] = c[i];
	return cli_table_add(t, cells);
}

static int unresolved_row(struct cli_table *t, const json_t *u)
{
	const char *cells[] = {str_at(u, "host"), str_at(u, "why"), str_at(u, "reason")};

	return cli_table_add(t, cells);
}

/* Fills a table with row() of every element of arr and prints it. */
static int print_list(FILE *out, const json_t *arr, const struct cli_col *cols, int ncols,
                      int (*row)(struct cli_table *, const json_t *))
{
	struct cli_table *t = cli_table_new(cols, ncols);
	const json_t *e;
	size_t i;
	int rc = 0;

	if (!t)
		return -ENOMEM;
	json_array_foreach(arr, i, e)
	{
		rc = rc ? rc : row(t, e);
	}
	if (!rc)
		cli_table_print(t, out, true);
	cli_table_free(t);
	return rc;
}

static void plan_headline(FILE *out, const json_t *doc, size_t nact)
{
	const char *mode = str_at(doc, "mode");
	double before = 0, after = 0;
	char rb[32], vb[64];
	bool ok =
	    num_at(doc, "max_volume_before", &before) && num_at(doc, "max_volume_after", &after);

	num_cell(rb, sizeof(rb), doc, "round", "%.0f");
	cell(vb, sizeof(vb), ok, "%.2f -> %.2f", before, after);
	fprintf(out, "plan (mode %s, round %s): %zu action%s, max volume %s\n", mode ? mode : "-",
	        rb, nact, nact == 1 ? "" : "s", vb);
}

int cli_fmt_plan(FILE *out, const json_t *doc)
{
	const json_t *acts = json_object_get(doc, "actions"),
	             *un = json_object_get(doc, "unresolved");
	size_t nun = json_array_size(un);
	int rc = 0;

	if (!json_is_array(acts))
		return -EPROTO;
	if (json_array_size(acts) == 0 && nun == 0) {
		fprintf(out, "no action: the cluster is balanced\n");
		return 0;
	}
	if (json_array_size(acts) == 0)
		fprintf(out, "no action: no move relieves the hotspots below\n");
	else
		plan_headline(out, doc, json_array_size(acts));
	if (json_array_size(acts))
		rc = print_list(out, acts, action_cols, ACTION_COLS, action_row);
	if (!rc && nun) {
		fprintf(out, "%sunresolved hotspots:\n", json_array_size(acts) ? "\n" : "");
		rc = print_list(out, un, unresolved_cols, 3, unresolved_row);
	}
	return rc;
}

/* --- cluster ------------------------------------------------------------- */

static const struct cli_col kv_cols[] = {{"", false}, {"", false}};

static void hotspot_list(const json_t *doc, char *buf, size_t cap)
{
	struct sb b = {buf, cap, 0};
	const json_t *h;
	size_t i;

	buf[0] = '\0';
	json_array_foreach(json_object_get(doc, "hotspots"), i, h)
	{
		sb_add(&b, "%s%s", i ? "," : "", json_string_value(h) ? json_string_value(h) : "?");
	}
	if (!b.len)
		sb_add(&b, "none");
}

static void leader_text(const json_t *doc, char *buf, size_t cap)
{
	const char *id = str_at(doc, "id"), *lid = str_at(doc, "leader_id");

	if (json_is_true(json_object_get(doc, "leader")))
		snprintf(buf, cap, "%s (leader)", id ? id : "?");
	else
		snprintf(buf, cap, "%s (follower; leader %s)", id ? id : "?",
		         lid && lid[0] ? lid : "none");
}

static void round_text(const json_t *doc, int64_t now_ms, char *buf, size_t cap)
{
	double round = 0, every = 0, took = 0, last = 0;
	struct sb b = {buf, cap, 0};

	buf[0] = '\0';
	if (num_at(doc, "round", &round))
		sb_add(&b, "%.0f", round);
	if (num_at(doc, "round_ms", &every))
		sb_add(&b, " every %.0f ms", every);
	if (num_at(doc, "round_took_ms", &took))
		sb_add(&b, ", last took %.1f ms", took);
	if (num_at(doc, "last_round", &last) && last > 0) {
		char age[32];
		cli_fmt_age((double)(now_ms - (int64_t)last) / 1000.0, age, sizeof(age));
		sb_add(&b, ", %s ago", age);
	}
	if (!b.len)
		sb_add(&b, "-");
}

static void hosts_text(const json_t *doc, char *buf, size_t cap)
{
	const json_t *h = json_object_get(doc, "hosts");
	double n[4] = {0};
	static const char *const k[] = {"total", "up", "down", "maintenance"};

	for (int i = 0; i < 4; i++)
		num_at(h, k[i], &n[i]);
	snprintf(buf, cap, "%.0f (%.0f up, %.0f down, %.0f maintenance)", n[0], n[1], n[2], n[3]);
}

int cli_fmt_cluster(FILE *out, const json_t *doc, int64_t now_ms)
{
	static const char *const names[] = {"controller", "mode",       "round",
	                                    "redis",      "hosts",      "vms",
	                                    "hotspots",   "migrations", "max volume"};
	char v[9][CELL];
	const char *mode = str_at(doc, "mode"), *redis = str_at(doc, "redis");
	struct cli_table *t;
	int rc = 0;

	if (!json_is_object(doc))
		return -EPROTO;
	leader_text(doc, v[0], CELL);
	{
		/* set at run time; recommend in force outside the migration windows */
		const char *src = str_at(doc, "mode_source"), *eff = str_at(doc, "effective_mode");
		snprintf(v[1], CELL, "%s%s%s%s%s", mode ? mode : "-",
		         src && !strcmp(src, "runtime") ? " (set at run time)" : "",
		         eff && mode && strcmp(eff, mode) ? ", in force: " : "",
		         eff && mode && strcmp(eff, mode) ? eff : "",
		         eff && mode && strcmp(eff, mode) ? " (outside the migration windows)"
		                                          : "");
	}
	round_text(doc, now_ms, v[2], CELL);
	snprintf(v[3], CELL, "%s", redis ? redis : "-");
	hosts_text(doc, v[4], CELL);
	num_cell(v[5], CELL, doc, "vms", "%.0f");
	hotspot_list(doc, v[6], CELL);
	num_cell(v[7], CELL, doc, "migrations_inflight", "%.0f in flight");
	num_cell(v[8], CELL, doc, "max_volume", "%.2f");
	t = cli_table_new(kv_cols, 2);
	if (!t)
		return -ENOMEM;
	for (int i = 0; i < 9 && !rc; i++) {
		const char *row[] = {names[i], v[i]};
		rc = cli_table_add(t, row);
	}
	if (!rc)
		cli_table_print(t, out, false);
	cli_table_free(t);
	return rc;
}

void cli_fmt_cluster_line(const json_t *doc, char *buf, size_t cap)
{
	const json_t *h = json_object_get(doc, "hosts");
	const char *mode = str_at(doc, "mode");
	double up = 0, down = 0, maint = 0, vms = 0, infl = 0;
	char hot[CELL], lead[CELL];

	num_at(h, "up", &up);
	num_at(h, "down", &down);
	num_at(h, "maintenance", &maint);
	num_at(doc, "vms", &vms);
	num_at(doc, "migrations_inflight", &infl);
	hotspot_list(doc, hot, sizeof(hot));
	leader_text(doc, lead, sizeof(lead));
	snprintf(buf, cap,
	         "controller %s, mode %s | hosts %.0f up, %.0f down, %.0f maintenance | %.0f VMs, "
	         "%.0f migrating | hotspots: %s",
	         lead, mode ? mode : "-", up, down, maint, vms, infl, hot);
}

/* --- events -------------------------------------------------------------- */

/* The event's time: "ts", else the ms part of its stream id. */
static int64_t event_ms(const json_t *ev)
{
	double ts;
	const char *id = str_at(ev, "id");

	if (num_at(ev, "ts", &ts))
		return (int64_t)ts;
	return id ? strtoll(id, NULL, 10) : 0;
}

/* vm=V from->to host=H */
static void event_subject(const json_t *ev, struct sb *b)
{
	char x[3][64];
	const char *vm = scalar(json_object_get(ev, "vm"), x[0], sizeof(x[0]));
	const char *from = scalar(json_object_get(ev, "from"), x[1], sizeof(x[1]));
	const char *to = scalar(json_object_get(ev, "to"), x[2], sizeof(x[2]));
	const char *host = str_at(ev, "host");

	if (vm)
		sb_add(b, " vm=%s", vm);
	if (from || to)
		sb_add(b, " %s->%s", from ? from : "?", to ? to : "?");
	if (host && (!from || strcmp(host, from)) && (!to || strcmp(host, to)))
		sb_add(b, " host=%s", host);
}

static void event_details(const json_t *ev, struct sb *b)
{
	static const char *const keys[] = {"res",     "util",    "forecast", "hot_s",
	                                   "why",     "mode",    "total_ms", "downtime_ms",
	                                   "bytes",   "cost_s",  "src_util", "dst_util",
	                                   "src_vol", "dst_vol", NULL};
	char x[64], y[64];

	for (int i = 0; keys[i]; i++) {
		const char *v = scalar(json_object_get(ev, keys[i]), x, sizeof(x));
		if (v && v[0])
			sb_add(b, " %s=%s", keys[i], v);
	}
	for (int i = 0; i < 2; i++) {
		const char *side = i ? "dst" : "src";
		char kb[32], ka[32];
		snprintf(kb, sizeof(kb), "%s_vol_before", side);
		snprintf(ka, sizeof(ka), "%s_vol_after", side);
		const char *bv = scalar(json_object_get(ev, kb), x, sizeof(x));
		const char *av = scalar(json_object_get(ev, ka), y, sizeof(y));
		if (bv && av)
			sb_add(b, " %s=%s->%s", side, bv, av);
	}
}

void cli_fmt_event(const json_t *ev, char *buf, size_t cap)
{
	struct sb b = {buf, cap, 0};
	const char *type = str_at(ev, "type"), *reason = str_at(ev, "reason"),
	           *msg = str_at(ev, "msg");
	char when[32];
	size_t head;

	cli_fmt_time(event_ms(ev), when, sizeof(when));
	sb_add(&b, "%s %-*s", when, EVENT_TYPE_WIDTH, type ? type : "?");
	head = b.len;
	event_subject(ev, &b);
	event_details(ev, &b);
	if ((reason && reason[0]) || (msg && msg[0]))
		sb_add(&b, "%s%s%s%s", b.len > head ? ": " : " ", reason ? reason : "",
		       reason && reason[0] && msg && msg[0] ? "; " : "", msg ? msg : "");
	/* trailing blanks from the padding of a bare type */
	while (b.len && buf[b.len - 1] == ' ')
		buf[--b.len] = '\0';
	for (size_t i = 0; i < b.len; i++) /* ASCII only, no control bytes */
		if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
			buf[i] = '?';
}

void cli_fmt_refused(FILE *out, const json_t *error)
{
	json_t *hosts = json_object_get(error, "hosts"), *v;
	char k[CELL], why[512], x[64];
	const char *key;

	json_object_foreach(hosts, key, v)
	{
		cli_table_clean(k, sizeof(k), key);
		cli_table_clean(why, sizeof(why), scalar(v, x, sizeof(x)));
		fprintf(out, "  %s: %s\n", k, why[0] ? why : "-");
	}
}
