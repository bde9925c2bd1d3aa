/* vmspec.c - request validation; see vmspec.h. */
#include "agent/vmspec.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/netif.h"
#include "common/util.h"

/* Resolves rel (relative to images_dir, or absolute) and checks that it is a
 * regular file inside images_dir: no "..", no symlink out. */
int vmspec_resolve_image(const char *images_dir, const char *field, const char *rel, char *out,
                         size_t cap, char *err, size_t errlen)
{
	char base[PATH_MAX], joined[PATH_MAX], real[PATH_MAX];
	struct stat st;
	size_t bl;

	if (!realpath(images_dir, base)) {
		snprintf(err, errlen, "images directory %s: %s", images_dir, strerror(errno));
		return -EINVAL;
	}
	if (rel[0] == '/')
		snprintf(joined, sizeof(joined), "%s", rel);
	else if (util_fmt(joined, sizeof(joined), "%s/%s", base, rel) < 0) {
		snprintf(err, errlen, "%s: path too long", field);
		return -EINVAL;
	}
	if (!realpath(joined, real)) {
		snprintf(err, errlen, "%s '%s': %s", field, rel, strerror(errno));
		return -EINVAL;
	}
	bl = strlen(base);
	if (strncmp(real, base, bl) != 0 || real[bl] != '/') {
		snprintf(err, errlen, "%s '%s' is outside the images directory %s", field, rel,
		         base);
		return -EINVAL;
	}
	if (stat(real, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s '%s' is not a regular file", field, rel);
		return -EINVAL;
	}
	if (strlen(real) >= cap) {
		snprintf(err, errlen, "%s: path too long", field);
		return -EINVAL;
	}
	strcpy(out, real);
	return 0;
}

static int get_int(json_t *req, const char *k, int lo, int hi, int *out, bool required, char *err,
                   size_t errlen)
{
	json_t *j = json_object_get(req, k);

	if (!j) {
		if (required) {
			snprintf(err, errlen, "'%s' is required", k);
			return -EINVAL;
		}
		return 0;
	}
	if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi) {
		snprintf(err, errlen, "'%s' must be an integer from %d to %d", k, lo, hi);
		return -EINVAL;
	}
	*out = (int)json_integer_value(j);
	return 0;
}

static int get_str(json_t *req, const char *k, char *out, size_t cap, char *err, size_t errlen)
{
	json_t *j = json_object_get(req, k);

	if (!j || json_is_null(j))
		return 0;
	if (!json_is_string(j) || strlen(json_string_value(j)) >= cap) {
		snprintf(err, errlen, "'%s' must be a string of at most %zu characters", k,
		         cap - 1);
		return -EINVAL;
	}
	strcpy(out, json_string_value(j));
	return 0;
}

int vmspec_from_json(const struct vmspec_limits *o, json_t *req, struct vm_spec *s, char *err,
                     size_t errlen)
{
	static const char *const known[] = {"name",        "vcpus",   "mem_mib",    "max_vcpus",
	                                    "max_mem_mib", "kernel",  "initrd",     "disk",
	                                    "append",      "bridge",  "pin",        "group",
	                                    "anti_group",  "exclude", "guest_load", NULL};
	char rel[512];
	const char *k;
	json_t *val;

	memset(s, 0, sizeof(*s));
	s->vcpus = 1;
	json_object_foreach(req, k, val)
	{
		bool ok = false;
		for (int i = 0; known[i]; i++)
			ok |= strcmp(k, known[i]) == 0;
		if (!ok) {
			snprintf(err, errlen, "unknown field '%.64s'", k);
			return -EINVAL;
		}
	}
	if (get_str(req, "name", s->id, sizeof(s->id), err, errlen) < 0)
		return -EINVAL;
	if (!s->id[0] || !util_valid_id(s->id)) {
		snprintf(
		    err, errlen,
		    "'name' is required: 1-64 of A-Z a-z 0-9 _ . - (not starting with . or -)");
		return -EINVAL;
	}
	if (get_int(req, "vcpus", 1, o->max_vcpus, &s->vcpus, false, err, errlen) < 0 ||
	    get_int(req, "mem_mib", 64, o->max_mem_mib, &s->mem_mib, true, err, errlen) < 0)
		return -EINVAL;
	/* the most it may be resized to in place; default its allocation */
	s->max_vcpus = s->vcpus;
	s->max_mem_mib = s->mem_mib;
	if (get_int(req, "max_vcpus", s->vcpus, o->max_vcpus, &s->max_vcpus, false, err, errlen) <
	        0 ||
	    get_int(req, "max_mem_mib", s->mem_mib, o->max_mem_mib, &s->max_mem_mib, false, err,
	            errlen) < 0)
		return -EINVAL;
	rel[0] = '\0';
	if (get_str(req, "kernel", rel, sizeof(rel), err, errlen) < 0)
		return -EINVAL;
	if (rel[0] && vmspec_resolve_image(o->images_dir, "kernel", rel, s->kernel,
	                                   sizeof(s->kernel), err, errlen) < 0)
		return -EINVAL;
	rel[0] = '\0';
	if (get_str(req, "initrd", rel, sizeof(rel), err, errlen) < 0)
		return -EINVAL;
	if (rel[0] && vmspec_resolve_image(o->images_dir, "initrd", rel, s->initrd,
	                                   sizeof(s->initrd), err, errlen) < 0)
		return -EINVAL;
	rel[0] = '\0';
	if (get_str(req, "disk", rel, sizeof(rel), err, errlen) < 0)
		return -EINVAL;
	if (rel[0] && vmspec_resolve_image(o->images_dir, "disk", rel, s->disk, sizeof(s->disk),
	                                   err, errlen) < 0)
		return -EINVAL;
	if (!s->kernel[0] && !s->disk[0]) {
		snprintf(err, errlen, "give 'kernel' (and 'initrd') or 'disk'");
		return -EINVAL;
	}
	if (s->initrd[0] && !s->kernel[0]) {
		snprintf(err, errlen, "'initrd' needs 'kernel'");
		return -EINVAL;
	}
	if (get_str(req, "append", s->append, sizeof(s->append), err, errlen) < 0)
		return -EINVAL;
	if (strpbrk(s->append, "\n\r")) {
		snprintf(err, errlen, "'append' must be one line");
		return -EINVAL;
	}
	snprintf(s->bridge, sizeof(s->bridge), "%s", o->default_bridge);
	if (get_str(req, "bridge", s->bridge, sizeof(s->bridge), err, errlen) < 0)
		return -EINVAL;
	if (!netif_is_bridge(s->bridge)) {
		snprintf(err, errlen, "bridge '%s' does not exist on this host", s->bridge);
		return -EINVAL;
	}
	val = json_object_get(req, "pin");
	if (val) {
		size_t i;
		json_t *h;
		if (!json_is_array(val)) {
			snprintf(err, errlen, "'pin' must be an array of host ids");
			return -EINVAL;
		}
		json_array_foreach(val, i, h)
		{
			size_t l = strlen(s->pin);
			if (!json_is_string(h) || !util_valid_id(json_string_value(h)) ||
			    l + strlen(json_string_value(h)) + 2 > sizeof(s->pin)) {
				snprintf(err, errlen, "'pin' must be an array of host ids");
				return -EINVAL;
			}
			snprintf(s->pin + l, sizeof(s->pin) - l, "%s%s", l ? "," : "",
			         json_string_value(h));
		}
	}
	if (get_str(req, "group", s->group, sizeof(s->group), err, errlen) < 0 ||
	    get_str(req, "anti_group", s->anti_group, sizeof(s->anti_group), err, errlen) < 0)
		return -EINVAL;
	if ((s->group[0] && !util_valid_id(s->group)) ||
	    (s->anti_group[0] && !util_valid_id(s->anti_group))) {
		snprintf(err, errlen, "'group' and 'anti_group' must be ids");
		return -EINVAL;
	}
	val = json_object_get(req, "exclude");
	if (val && !json_is_boolean(val)) {
		snprintf(err, errlen, "'exclude' must be true or false");
		return -EINVAL;
	}
	s->exclude = val && json_is_true(val);
	val = json_object_get(req, "guest_load");
	if (val && !json_is_boolean(val)) {
		snprintf(err, errlen, "'guest_load' must be true or false");
		return -EINVAL;
	}
	/* the test guest's load channel: on unless asked otherwise */
	s->guest_load = !val || json_is_true(val);
	return 0;
}
