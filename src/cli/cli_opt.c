/* cli_opt.c - the CLI's option parser (see cli_opt.h). */
#include "cli/cli_opt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

/* The table entry for "--name" (len bytes of name) or "-c", or NULL. */
static const struct cli_opt *find(const struct cli_opt *const *tables, const char *name, size_t len,
                                  char c)
{
	for (int t = 0; tables[t]; t++)
		for (const struct cli_opt *o = tables[t]; o->name; o++) {
			if (c && o->short_name == c)
				return o;
			if (!c && strlen(o->name) == len && strncmp(o->name, name, len) == 0)
				return o;
		}
	return NULL;
}

static int add(struct cli_args *a, const char *name, const char *as, const char *val, char *err,
               size_t errlen)
{
	if (a->nopt >= CLI_MAX_ARGS) {
		snprintf(err, errlen, "too many options");
		return -EINVAL;
	}
	a->opt[a->nopt].name = name;
	a->opt[a->nopt].val = val;
	snprintf(a->opt[a->nopt].as, sizeof(a->opt[a->nopt].as), "%s", as);
	a->nopt++;
	return 0;
}

/* One option at argv[*i]; advances *i past its value when it takes one. */
static int parse_one(const struct cli_opt *const *tables, int argc, char **argv, int *i,
                     struct cli_args *a, char *err, size_t errlen)
{
	const char *s = argv[*i], *val = NULL;
	const struct cli_opt *o;
	char as[24];

	if (s[1] == '-') {
		const char *eq = strchr(s + 2, '=');
		size_t len = eq ? (size_t)(eq - (s + 2)) : strlen(s + 2);
		o = find(tables, s + 2, len, 0);
		val = eq ? eq + 1 : NULL;
		if (o)
			snprintf(as, sizeof(as), "--%s", o->name);
	} else {
		o = find(tables, NULL, 0, s[1]);
		val = s[1] && s[2] ? s + 2 : NULL;
		snprintf(as, sizeof(as), "-%c", s[1]);
	}
	if (!o) {
		snprintf(err, errlen, "unknown option '%.64s'", s);
		return -EINVAL;
	}
	if (!o->arg && val) {
		snprintf(err, errlen, "%s takes no value", as);
		return -EINVAL;
	}
	if (o->arg && !val) {
		if (*i + 1 >= argc) {
			snprintf(err, errlen, "%s needs a value", as);
			return -EINVAL;
		}
		val = argv[++*i];
	}
	return add(a, o->name, as, val, err, errlen);
}

int cli_opt_parse(const struct cli_opt *const *tables, int argc, char **argv, struct cli_args *a,
                  char *err, size_t errlen)
{
	bool opts_done = false;

	memset(a, 0, sizeof(*a));
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		if (!opts_done && strcmp(s, "--") == 0) {
			opts_done = true;
			continue;
		}
		if (!opts_done && s[0] == '-' && s[1]) {
			if (parse_one(tables, argc, argv, &i, a, err, errlen) < 0)
				return -EINVAL;
			continue;
		}
		if (a->npos >= CLI_MAX_ARGS) {
			snprintf(err, errlen, "too many arguments");
			return -EINVAL;
		}
		a->pos[a->npos++] = s;
	}
	return 0;
}

const char *cli_opt_str(const struct cli_args *a, const char *name)
{
	for (int i = a->nopt - 1; i >= 0; i--)
		if (strcmp(a->opt[i].name, name) == 0)
			return a->opt[i].val;
	return NULL;
}

const char *cli_opt_as(const struct cli_args *a, const char *name)
{
	for (int i = a->nopt - 1; i >= 0; i--)
		if (strcmp(a->opt[i].name, name) == 0)
			return a->opt[i].as;
	return NULL;
}

bool cli_opt_flag(const struct cli_args *a, const char *name)
{
	for (int i = 0; i < a->nopt; i++)
		if (strcmp(a->opt[i].name, name) == 0)
			return true;
	return false;
}

int cli_opt_int(const struct cli_args *a, const char *name, int64_t lo, int64_t hi, int64_t *out,
                char *err, size_t errlen)
{
	const char *s = cli_opt_str(a, name);
	int64_t v;

	if (!s)
		return 0;
	if (!util_parse_i64(s, &v) || v < lo || v > hi) {
		snprintf(err, errlen, "%s: '%.64s' is not an integer from %lld to %lld",
		         cli_opt_as(a, name), s, (long long)lo, (long long)hi);
		return -EINVAL;
	}
	*out = v;
	return 1;
}

int cli_opt_num(const struct cli_args *a, const char *name, double lo, double hi, double *out,
                char *err, size_t errlen)
{
	const char *s = cli_opt_str(a, name);
	double v;

	if (!s)
		return 0;
	if (!util_parse_double(s, &v) || v < lo || v > hi) {
		snprintf(err, errlen, "%s: '%.64s' is not a number from %g to %g",
		         cli_opt_as(a, name), s, lo, hi);
		return -EINVAL;
	}
	*out = v;
	return 1;
}
