#include "agent/balloon.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int get_stat(json_t *stats, const char *name, uint64_t *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(stats, name);
	double d;

	*out = BALLOON_NA;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v)) {
		snprintf(err, errlen, "guest-stats: %s is not a number", name);
		return -EINVAL;
	}
	/* numbers are decoded as doubles (JSON_DECODE_INT_AS_REAL): QEMU prints an
	 * unreported stat as 2^64-1, which no json_int_t holds; byte counts below
	 * 2^53 stay exact */
	d = json_number_value(v);
	if (d < 0 || d >= 18446744073709551615.0)
		return 0;
	*out = (uint64_t)d;
	return 0;
}

int balloon_parse(const char *json, size_t len, struct balloon_stats *out, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
	    {"stat-total-memory", offsetof(struct balloon_stats, total)},
	    {"stat-free-memory", offsetof(struct balloon_stats, free)},
	    {"stat-available-memory", offsetof(struct balloon_stats, available)},
	    {"stat-swap-in", offsetof(struct balloon_stats, swap_in)},
	    {"stat-swap-out", offsetof(struct balloon_stats, swap_out)},
	    {"stat-major-faults", offsetof(struct balloon_stats, major_faults)},
	    {"stat-minor-faults", offsetof(struct balloon_stats, minor_faults)},
	    {"stat-disk-caches", offsetof(struct balloon_stats, disk_caches)},
	};
	json_error_t je;
	json_t *root, *obj, *stats, *lu;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	root = json_loadb(json, len, JSON_DECODE_INT_AS_REAL, &je);
	if (!root) {
		snprintf(err, errlen, "guest-stats: not JSON: %s", je.text);
		return -EINVAL;
	}
	obj = json_object_get(root, "return");
	if (!obj)
		obj = root;
	stats = json_object_get(obj, "stats");
	if (!json_is_object(stats)) {
		snprintf(err, errlen, "guest-stats: no \"stats\" object");
		rc = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		rc = get_stat(stats, fields[i].name, (uint64_t *)((char *)out + fields[i].off), err,
		              errlen);
		if (rc < 0)
			goto out;
	}
	lu = json_object_get(obj, "last-update");
	if (lu && !json_is_number(lu)) {
		snprintf(err, errlen, "guest-stats: last-update is not a number");
		rc = -EINVAL;
		goto out;
	}
	if (lu && !(json_number_value(lu) >= 0 && json_number_value(lu) < 9.2e18)) {
		snprintf(err, errlen, "guest-stats: last-update out of range");
		rc = -EINVAL;
		goto out;
	}
	out->last_update = lu ? (int64_t)json_number_value(lu) : 0;
	if (out->total == BALLOON_NA || out->total == 0 || out->last_update == 0) {
		snprintf(err, errlen, "guest-stats: the guest has not reported yet");
		rc = -ENODATA;
	}
out:
	json_decref(root);
	if (rc < 0 && rc != -ENODATA)
		memset(out, 0, sizeof(*out));
	return rc;
}
