/* config.h - INI configuration (inih) described by a table of keys.
 *
 * Each program declares a table of struct cfg_key (section, name, type,
 * default, range, doc, where the value lives in its options struct). The same
 * table loads the file, applies command-line overrides ("section.key=value"),
 * fills defaults and prints the reference documentation, so the README and
 * the code cannot disagree. A bad key or value stops with file, line and
 * reason.
 */
#ifndef LE_COMMON_CONFIG_H
#define LE_COMMON_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum cfg_type {
	CFG_STR,    /* char[size] */
	CFG_INT,    /* long long, within [min, max] */
	CFG_DOUBLE, /* double, within [min, max] */
	CFG_BOOL,   /* bool: true/false/yes/no/on/off/1/0 */
	CFG_ENUM,   /* int index into choices (NULL-terminated) */
};

struct cfg_key {
	const char *section;
	const char *name;
	enum cfg_type type;
	const char *def;            /* default, as text; "" for an empty string */
	size_t offset;              /* offsetof() into the options struct */
	size_t size;                /* CFG_STR: buffer size */
	double min, max;            /* CFG_INT / CFG_DOUBLE */
	const char *const *choices; /* CFG_ENUM */
	const char *doc;
};

#define CFG_END                                                                                    \
	{                                                                                          \
		NULL, NULL, CFG_STR, NULL, 0, 0, 0, 0, NULL, NULL                                  \
	}

/* Fills obj with defaults, then the file (path may be NULL: defaults only),
 * then the overrides. 0 on success; -EINVAL (or -errno for an unreadable
 * file) with err set to "FILE:LINE: reason" or "command line: reason". */
int cfg_load(const struct cfg_key *keys, void *obj, const char *path, const char *const *overrides,
             int noverrides, char *err, size_t errlen);

/* Sets one key from text; 0 or -EINVAL with err set to the reason. */
int cfg_set(const struct cfg_key *keys, void *obj, const char *section, const char *name,
            const char *value, char *err, size_t errlen);

/* Prints the key reference as a Markdown table (section, key, default, doc). */
void cfg_print_doc(const struct cfg_key *keys, FILE *f);

/* Prints an example INI file: every section and every key of the table,
 * commented out at its default ("; key = default") under its doc. A key
 * named in `set` ("section.key=value", nset of them) is written uncommented
 * with that value instead (an installed file's paths). */
void cfg_print_example(const struct cfg_key *keys, const char *const *set, int nset, FILE *f);

/* SIGHUP: what changed between the configuration the daemon started with
 * (raw_old, as cfg_load() left it) and the one read now (raw_new). A changed
 * key that `runtime` lists ("section.key" or "section.*", NULL-terminated) is
 * copied from `resolved` (raw_new after the daemon's own resolution: token
 * files read and so on) into `running` and into raw_old; any other changed key
 * is logged as needing a restart and left as it runs. The applied keys'
 * names go into changed ("mode, profile.k"). The number applied. */
int cfg_apply_changes(const struct cfg_key *keys, const char *const *runtime, void *raw_old,
                      const void *raw_new, void *running, const void *resolved, char *changed,
                      size_t cap);

#endif
