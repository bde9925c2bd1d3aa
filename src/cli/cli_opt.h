/* cli_opt.h - the CLI's option parser: "--name value", "--name=value",
 * "-x value", "-xvalue", flags, positionals and "--", checked against the
 * verb's table and the global one before any request is made. Pure: no
 * globals (unlike getopt), so it is unit-tested and re-entrant. */
#ifndef LE_CLI_CLI_OPT_H
#define LE_CLI_CLI_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cli_opt {
	const char *name; /* long name without "--"; NULL ends a table */
	char short_name;  /* 0: none */
	bool arg;         /* takes a value */
	int kind;         /* what completes its value: enum cli_kind (cli_int.h) */
};

#define CLI_MAX_ARGS 64

struct cli_args {
	struct {
		const char *name; /* the table's long name */
		const char *val;  /* points into argv; NULL for a flag */
		char as[24];      /* as typed, for messages: "-n", "--follow" */
	} opt[CLI_MAX_ARGS];
	int nopt;
	const char *pos[CLI_MAX_ARGS]; /* positionals, in order */
	int npos;
};

/* Parses argv[0..argc) against the tables (a NULL-terminated array of
 * NULL-name-terminated tables). 0, or -EINVAL with the reason in err
 * ("unknown option '--x'", "--mem needs a value", "-n needs a value": an
 * option is named as it was typed). */
int cli_opt_parse(const struct cli_opt *const *tables, int argc, char **argv, struct cli_args *a,
                  char *err, size_t errlen);

/* The last value given for name, or NULL. */
const char *cli_opt_str(const struct cli_args *a, const char *name);
/* The option's last occurrence as typed ("-n", "--count"), or NULL when it
 * was not given. Valid as long as a. */
const char *cli_opt_as(const struct cli_args *a, const char *name);
/* Was the option given (flag or value)? */
bool cli_opt_flag(const struct cli_args *a, const char *name);
/* The option as an integer / a number in [lo, hi]: 1 when given and valid
 * (*out set), 0 when absent (*out untouched), -EINVAL with the reason in err
 * ("--mem: 'abc' is not an integer from 64 to 16777216"). */
int cli_opt_int(const struct cli_args *a, const char *name, int64_t lo, int64_t hi, int64_t *out,
                char *err, size_t errlen);
int cli_opt_num(const struct cli_args *a, const char *name, double lo, double hi, double *out,
                char *err, size_t errlen);

#endif
