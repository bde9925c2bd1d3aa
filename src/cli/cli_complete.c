/* cli_complete.c - `loadease __complete WORD... CUR`: what may follow on a
 * command line, one candidate a line, for the bash completion
 * (data/bash-completion/loadease). Everything comes from the verb table
 * (cli.c): verbs, subcommands, options, what each option and positional
 * takes; host and VM ids from the controller (GET /v1/hosts, /v1/vms, with
 * a short timeout, the --controller and --token of the line or the
 * environment). "__files__" asks the shell for file names. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "common/httpc.h"
#include "common/tls.h"
#include "common/util.h"

#define COMPLETE_TIMEOUT_MS 1500

struct line {
	const char *cur;
	const char *controller, *token;
	const struct cli_verb *verb;
	const char *group; /* a group named, its subcommand not yet */
	bool verb_seen;
	int npos;                    /* positionals after the verb */
	const struct cli_opt *wants; /* the previous word is this option: cur is its value */
};

static void cand(FILE *out, const char *cur, const char *s)
{
	if (strncmp(s, cur, strlen(cur)) == 0)
		fprintf(out, "%s\n", s);
}

static const struct cli_opt *find_opt(const struct cli_opt *t, const char *w, bool *has_val)
{
	size_t len;

	if (!t || w[0] != '-' || !w[1])
		return NULL;
	*has_val = false;
	if (w[1] != '-') {
		for (; t->name; t++)
			if (t->short_name == w[1]) {
				*has_val = w[2] != '\0';
				return t;
			}
		return NULL;
	}
	len = strcspn(w + 2, "=");
	*has_val = w[2 + len] == '=';
	for (; t->name; t++)
		if (strlen(t->name) == len && strncmp(t->name, w + 2, len) == 0)
			return t;
	return NULL;
}

static const struct cli_verb *lookup(const char *group, const char *name)
{
	for (size_t i = 0; i < cli_nverbs; i++) {
		const struct cli_verb *v = &cli_verbs[i];
		if ((group ? v->group && !strcmp(v->group, group) : !v->group) &&
		    !strcmp(v->name, name))
			return v;
	}
	return NULL;
}

static bool is_group(const char *s)
{
	for (size_t i = 0; i < cli_nverbs; i++)
		if (cli_verbs[i].group && !strcmp(cli_verbs[i].group, s))
			return true;
	return false;
}

/* Remembers --controller and --token (the value of o in word w or next). */
static void note_global(struct line *l, const struct cli_opt *o, const char *val)
{
	if (!strcmp(o->name, "controller"))
		l->controller = val;
	else if (!strcmp(o->name, "token"))
		l->token = val;
}

/* Reads the words before the current one. */
static void parse(struct line *l, int n, char **w)
{
	for (int i = 0; i < n; i++) {
		const struct cli_opt *o;
		bool has_val;
		if (w[i][0] == '-' && w[i][1]) {
			o = find_opt(cli_global_opts, w[i], &has_val);
			if (!o && l->verb)
				o = find_opt(l->verb->opts, w[i], &has_val);
			if (o && o->arg && !has_val) {
				if (i + 1 == n) {
					l->wants = o;
					return;
				}
				note_global(l, o, w[++i]);
			} else if (o && has_val) {
				note_global(l, o, strchr(w[i], '=') ? strchr(w[i], '=') + 1 : "");
			}
			continue;
		}
		if (!l->verb_seen && is_group(w[i])) {
			l->verb_seen = true;
			l->group = w[i];
		} else if (!l->verb_seen) {
			l->verb_seen = true;
			l->verb = lookup(NULL, w[i]);
		} else if (l->group && !l->verb) {
			l->verb = lookup(l->group, w[i]);
			if (!l->verb) { /* `vm ID`: vm show ID */
				l->verb = lookup(l->group, "show");
				l->npos++;
			}
			l->group = NULL;
		} else {
			l->npos++;
		}
	}
}

/* The ids of /v1/<what> ("hosts", "vms") from the controller. */
static void ids(FILE *out, const struct line *l, const char *what)
{
	struct cli_ctx c = {.verb = "__complete", .out = out, .err = stderr};
	const char *url =
	    l->controller && l->controller[0] ? l->controller : getenv("LOADEASE_CONTROLLER");
	const char *tok = l->token ? l->token : getenv("LOADEASE_TOKEN");
	const char *ca = getenv("LOADEASE_CA");
	char path[32];
	json_t *doc, *e;
	size_t i;

	if (!url || !url[0])
		url = CLI_DEFAULT_CONTROLLER;
	httpc_set_ca(ca && ca[0] ? ca : access(TLS_DEFAULT_CA, R_OK) == 0 ? TLS_DEFAULT_CA : NULL);
	if (util_fmt(c.base, sizeof(c.base), "%s%s", strstr(url, "://") ? "" : "https://", url) ||
	    util_fmt(c.token, sizeof(c.token), "%s", tok ? tok : ""))
		return;
	snprintf(path, sizeof(path), "/v1/%s", what);
	doc = cli_get_quiet(&c, path, COMPLETE_TIMEOUT_MS);
	json_array_foreach(json_object_get(doc, what), i, e)
	{
		const char *id = json_string_value(json_object_get(e, "id"));
		if (id && util_valid_id(id))
			cand(out, l->cur, id);
	}
	json_decref(doc);
}

static void values(FILE *out, const struct line *l, int kind)
{
	if (kind == CLI_K_HOST)
		ids(out, l, "hosts");
	else if (kind == CLI_K_VM)
		ids(out, l, "vms");
	else if (kind == CLI_K_FILE)
		fprintf(out, "__files__\n");
}

static void options(FILE *out, const char *cur, const struct cli_opt *t)
{
	char buf[48];

	for (; t && t->name; t++) {
		snprintf(buf, sizeof(buf), strlen(t->name) == 1 ? "-%s" : "--%s", t->name);
		cand(out, cur, buf);
	}
}

/* The positional number k of v: its kind from v->args. */
static void positional(FILE *out, const struct line *l, const struct cli_verb *v, int k)
{
	char buf[128], *save = NULL, *tok;
	int i = 0;

	if (!v->args || util_fmt(buf, sizeof(buf), "%s", v->args) < 0)
		return;
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save), i++) {
		if (i != k)
			continue;
		if (!strcmp(tok, "vm"))
			values(out, l, CLI_K_VM);
		else if (!strcmp(tok, "host"))
			values(out, l, CLI_K_HOST);
		else
			for (char *s2 = NULL, *w = strtok_r(tok, "|", &s2); w;
			     w = strtok_r(NULL, "|", &s2))
				cand(out, l->cur, w);
	}
}

int cli_complete(int argc, char **argv, FILE *out)
{
	struct line l = {.cur = argc > 0 ? argv[argc - 1] : ""};

	parse(&l, argc > 0 ? argc - 1 : 0, argv);
	if (l.wants) {
		values(out, &l, l.wants->kind);
	} else if (l.cur[0] == '-') {
		if (l.verb)
			options(out, l.cur, l.verb->opts);
		options(out, l.cur, cli_global_opts);
	} else if (!l.verb_seen) {
		for (size_t i = 0; i < cli_nverbs; i++) {
			const struct cli_verb *v = &cli_verbs[i];
			if (v->group && i && cli_verbs[i - 1].group &&
			    !strcmp(cli_verbs[i - 1].group, v->group))
				continue;
			cand(out, l.cur, v->group ? v->group : v->name);
		}
	} else if (l.group) {
		for (size_t i = 0; i < cli_nverbs; i++)
			if (cli_verbs[i].group && !strcmp(cli_verbs[i].group, l.group))
				cand(out, l.cur, cli_verbs[i].name);
	} else if (l.verb) {
		positional(out, &l, l.verb, l.npos);
	}
	return CLI_OK;
}
