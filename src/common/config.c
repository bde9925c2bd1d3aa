#include "common/config.h"

#include <errno.h>
#include <ini.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

struct load_ctx {
	const struct cfg_key *keys;
	void *obj;
	FILE *f;
	int line;      /* the line inih is on (counted by the reader) */
	int err_line;  /* the line of the first handler error */
	int long_line; /* the first line longer than inih takes */
	int read_errno;
	char err[256];
	bool failed;
};

static const struct cfg_key *find_key(const struct cfg_key *keys, const char *section,
                                      const char *name)
{
	for (const struct cfg_key *k = keys; k->name; k++)
		if (strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static bool section_known(const struct cfg_key *keys, const char *section)
{
	for (const struct cfg_key *k = keys; k->name; k++)
		if (strcmp(k->section, section) == 0)
			return true;
	return false;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (int i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int set_value(const struct cfg_key *k, void *obj, const char *value, char *err,
                     size_t errlen)
{
	char *field = (char *)obj + k->offset;
	int64_t i;
	double d;
	bool b;

	switch (k->type) {
	case CFG_STR:
		if (strlen(value) >= k->size) {
			snprintf(err, errlen, "%s.%s: value longer than %zu characters", k->section,
			         k->name, k->size - 1);
			return -EINVAL;
		}
		memcpy(field, value, strlen(value) + 1);
		return 0;
	case CFG_INT:
		if (!util_parse_i64(value, &i)) {
			snprintf(err, errlen, "%s.%s: '%s' is not an integer", k->section, k->name,
			         value);
			return -EINVAL;
		}
		if ((double)i < k->min || (double)i > k->max) {
			snprintf(err, errlen, "%s.%s: %lld is out of range [%.0f, %.0f]",
			         k->section, k->name, (long long)i, k->min, k->max);
			return -EINVAL;
		}
		*(long long *)field = i;
		return 0;
	case CFG_DOUBLE:
		if (!util_parse_double(value, &d)) {
			snprintf(err, errlen, "%s.%s: '%s' is not a number", k->section, k->name,
			         value);
			return -EINVAL;
		}
		if (d < k->min || d > k->max) {
			snprintf(err, errlen, "%s.%s: %g is out of range [%g, %g]", k->section,
			         k->name, d, k->min, k->max);
			return -EINVAL;
		}
		*(double *)field = d;
		return 0;
	case CFG_BOOL:
		if (parse_bool(value, &b) < 0) {
			snprintf(err, errlen, "%s.%s: '%s' is not a boolean (true/false)",
			         k->section, k->name, value);
			return -EINVAL;
		}
		*(bool *)field = b;
		return 0;
	case CFG_ENUM:
		for (int c = 0; k->choices[c]; c++) {
			if (strcmp(k->choices[c], value) == 0) {
				*(int *)field = c;
				return 0;
			}
		}
		{
			char list[200] = "";
			for (int c = 0; k->choices[c]; c++) {
				if (c)
					strncat(list, ", ", sizeof(list) - strlen(list) - 1);
				strncat(list, k->choices[c], sizeof(list) - strlen(list) - 1);
			}
			snprintf(err, errlen, "%s.%s: '%s' is not one of: %s", k->section, k->name,
			         value, list);
		}
		return -EINVAL;
	}
	return -EINVAL;
}

int cfg_set(const struct cfg_key *keys, void *obj, const char *section, const char *name,
            const char *value, char *err, size_t errlen)
{
	const struct cfg_key *k = find_key(keys, section, name);

	if (!k) {
		if (!section_known(keys, section))
			snprintf(err, errlen, "unknown section [%s]", section);
		else
			snprintf(err, errlen, "unknown key '%s' in section [%s]", name, section);
		return -EINVAL;
	}
	return set_value(k, obj, value, err, errlen);
}

/* fgets that counts lines, so a handler error knows its line (inih reports
 * only the first error's line, which may be an earlier syntax error) */
static char *counting_reader(char *str, int num, void *stream)
{
	struct load_ctx *ctx = stream;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, ctx->f);

	if (n < 0) {
		if (ferror(ctx->f) && !ctx->read_errno)
			ctx->read_errno = errno ? errno : EIO;
		free(line);
		return NULL;
	}
	ctx->line++;
	if (n >= num && (line[strspn(line, " \t")] == ';' || line[strspn(line, " \t")] == '#')) {
		snprintf(str, (size_t)num, "#\n"); /* a long comment is still a comment */
	} else if (n >= num) {
		/* inih would split it and misreport the tail: give it a comment and
		 * report the long line ourselves */
		if (!ctx->long_line)
			ctx->long_line = ctx->line;
		snprintf(str, (size_t)num, "#\n");
	} else {
		memcpy(str, line, (size_t)n + 1);
	}
	free(line);
	return str;
}

static int cfg_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;
	char err[256];

	if (ctx->failed)
		return 1; /* keep only the first error */
	if (!name) /* a section header alone (inih built with INI_CALL_HANDLER_ON_NEW_SECTION) */
		return 1;
	if (cfg_set(ctx->keys, ctx->obj, section, name, value, err, sizeof(err)) < 0) {
		snprintf(ctx->err, sizeof(ctx->err), "%s", err);
		ctx->err_line = ctx->line;
		ctx->failed = true;
		return 0;
	}
	return 1;
}

int cfg_load(const struct cfg_key *keys, void *obj, const char *path, const char *const *overrides,
             int noverrides, char *err, size_t errlen)
{
	struct load_ctx ctx = {.keys = keys, .obj = obj};
	char e[256];
	int line;

	for (const struct cfg_key *k = keys; k->name; k++) {
		if (set_value(k, obj, k->def, e, sizeof(e)) < 0) {
			snprintf(err, errlen, "built-in default: %s", e);
			return -EINVAL;
		}
	}
	if (path) {
		FILE *f = fopen(path, "r");
		if (!f) {
			int saved = errno;
			snprintf(err, errlen, "%s: %s", path, strerror(saved));
			return -saved;
		}
		ctx.f = f;
		line = ini_parse_stream(counting_reader, &ctx, cfg_ini_handler, &ctx);
		fclose(f);
		if (ctx.read_errno) {
			snprintf(err, errlen, "%s: %s", path, strerror(ctx.read_errno));
			return -ctx.read_errno;
		}
		if (ctx.long_line && (line == 0 || ctx.long_line < line)) {
			snprintf(err, errlen, "%s:%d: line too long (at most %d characters)", path,
			         ctx.long_line, INI_MAX_LINE - 2);
			return -EINVAL;
		}
		if (line != 0) {
			if (ctx.failed && ctx.err_line == line)
				snprintf(err, errlen, "%s:%d: %s", path, line, ctx.err);
			else
				snprintf(err, errlen,
				         "%s:%d: syntax error (expected [section] or key = value)",
				         path, line);
			return -EINVAL;
		}
	}
	for (int i = 0; i < noverrides; i++) {
		const char *o = overrides[i];
		const char *dot = strchr(o, '.');
		const char *eq = strchr(o, '=');
		char section[64], name[64];

		if (!dot || !eq || dot > eq || (size_t)(dot - o) >= sizeof(section) ||
		    (size_t)(eq - dot - 1) >= sizeof(name) || dot == o || eq == dot + 1) {
			snprintf(err, errlen, "command line: '%s' is not section.key=value", o);
			return -EINVAL;
		}
		memcpy(section, o, (size_t)(dot - o));
		section[dot - o] = '\0';
		memcpy(name, dot + 1, (size_t)(eq - dot - 1));
		name[eq - dot - 1] = '\0';
		if (cfg_set(keys, obj, section, name, eq + 1, e, sizeof(e)) < 0) {
			snprintf(err, errlen, "command line: %s", e);
			return -EINVAL;
		}
	}
	return 0;
}

void cfg_print_doc(const struct cfg_key *keys, FILE *f)
{
	fprintf(f, "| key | default | meaning |\n|---|---|---|\n");
	for (const struct cfg_key *k = keys; k->name; k++) {
		fprintf(f, "| `%s.%s` | `%s` | %s", k->section, k->name,
		        k->def[0] ? k->def : "\"\"", k->doc);
		if (k->type == CFG_INT)
			fprintf(f, " (%.0f to %.0f)", k->min, k->max);
		else if (k->type == CFG_DOUBLE)
			fprintf(f, " (%g to %g)", k->min, k->max);
		else if (k->type == CFG_ENUM) {
			fprintf(f, " (one of:");
			for (int c = 0; k->choices[c]; c++)
				fprintf(f, " `%s`", k->choices[c]);
			fprintf(f, ")");
		}
		fprintf(f, " |\n");
	}
}

/* The words of doc, wrapped at about 76 columns, each line led by "; ". */
static void print_comment(const char *doc, FILE *f)
{
	int col = 0;

	while (*doc) {
		size_t w = strcspn(doc, " ");
		if (col && col + 1 + (int)w > 76) {
			fputc('\n', f);
			col = 0;
		}
		if (!col) {
			fputs(";", f);
			col = 1;
		}
		fprintf(f, " %.*s", (int)w, doc);
		col += 1 + (int)w;
		doc += w;
		doc += strspn(doc, " ");
	}
	if (col)
		fputc('\n', f);
}

static const char *example_value(const struct cfg_key *k, const char *const *set, int nset)
{
	size_t sl = strlen(k->section), nl = strlen(k->name);

	for (int i = 0; i < nset; i++)
		if (strncmp(set[i], k->section, sl) == 0 && set[i][sl] == '.' &&
		    strncmp(set[i] + sl + 1, k->name, nl) == 0 && set[i][sl + 1 + nl] == '=')
			return set[i] + sl + 2 + nl;
	return NULL;
}

void cfg_print_example(const struct cfg_key *keys, const char *const *set, int nset, FILE *f)
{
	const char *section = NULL;

	for (const struct cfg_key *k = keys; k->name; k++) {
		const char *v = example_value(k, set, nset);
		char range[128] = "";

		if (!section || strcmp(section, k->section) != 0) {
			fprintf(f, "%s[%s]\n", section ? "\n" : "", k->section);
			section = k->section;
		}
		if (k->type == CFG_INT)
			snprintf(range, sizeof(range), " (%.0f to %.0f)", k->min, k->max);
		else if (k->type == CFG_DOUBLE)
			snprintf(range, sizeof(range), " (%g to %g)", k->min, k->max);
		else if (k->type == CFG_ENUM)
			for (int c = 0; k->choices[c]; c++)
				snprintf(range + strlen(range), sizeof(range) - strlen(range),
				         "%s%s", c ? ", " : " (one of: ", k->choices[c]);
		if (k->type == CFG_ENUM)
			snprintf(range + strlen(range), sizeof(range) - strlen(range), ")");
		{
			char doc[1200];
			snprintf(doc, sizeof(doc), "%s%s", k->doc, range);
			print_comment(doc, f);
		}
		if (v)
			fprintf(f, "%s = %s\n", k->name, v);
		else
			fprintf(f, ";%s = %s\n", k->name, k->def);
	}
}

static size_t key_size(const struct cfg_key *k)
{
	switch (k->type) {
	case CFG_STR:
		return k->size;
	case CFG_INT:
		return sizeof(long long);
	case CFG_DOUBLE:
		return sizeof(double);
	case CFG_BOOL:
		return sizeof(bool);
	case CFG_ENUM:
		return sizeof(int);
	}
	return 0;
}

static bool key_equal(const struct cfg_key *k, const void *a, const void *b)
{
	const char *x = (const char *)a + k->offset, *y = (const char *)b + k->offset;

	if (k->type == CFG_STR)
		return strcmp(x, y) == 0;
	return memcmp(x, y, key_size(k)) == 0;
}

static void key_copy(const struct cfg_key *k, void *dst, const void *src)
{
	memcpy((char *)dst + k->offset, (const char *)src + k->offset, key_size(k));
}

static bool key_listed(const struct cfg_key *k, const char *const *list)
{
	size_t sl = strlen(k->section);

	for (int i = 0; list && list[i]; i++)
		if (strncmp(list[i], k->section, sl) == 0 && list[i][sl] == '.' &&
		    (strcmp(list[i] + sl + 1, k->name) == 0 || strcmp(list[i] + sl + 1, "*") == 0))
			return true;
	return false;
}

int cfg_apply_changes(const struct cfg_key *keys, const char *const *runtime, void *raw_old,
                      const void *raw_new, void *running, const void *resolved, char *changed,
                      size_t cap)
{
	int n = 0;

	if (cap)
		changed[0] = '\0';
	for (const struct cfg_key *k = keys; k->name; k++) {
		if (key_equal(k, raw_old, raw_new))
			continue;
		if (!key_listed(k, runtime)) {
			log_warn("%s.%s changed: needs a restart (it keeps its running value until "
			         "then)",
			         k->section, k->name);
			continue;
		}
		key_copy(k, running, resolved);
		key_copy(k, raw_old, raw_new);
		if (cap)
			snprintf(changed + strlen(changed), cap - strlen(changed), "%s%s.%s",
			         n ? ", " : "", k->section, k->name);
		n++;
	}
	return n;
}
