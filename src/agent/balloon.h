/* balloon.h - the guest's own memory figures (gray-box monitoring), from
 * virtio-balloon statistics as QEMU reports them: the value of
 * `qom-get <balloon> guest-stats`, i.e.
 *   {"stats": {"stat-total-memory": N, "stat-available-memory": N, ...},
 *    "last-update": SECONDS}
 * (a QMP reply wrapper {"return": {...}} is accepted too). Stats the guest
 * does not report are absent, -1, or 2^64-1; they come back as UINT64_MAX.
 */
#ifndef LE_AGENT_BALLOON_H
#define LE_AGENT_BALLOON_H

#include <stddef.h>
#include <stdint.h>

#define BALLOON_NA UINT64_MAX

struct balloon_stats {
	int64_t last_update;             /* guest time of the stats, seconds; 0 = never */
	uint64_t total, free, available; /* bytes */
	uint64_t swap_in, swap_out;      /* bytes (pages * 4096 in QEMU's report) */
	uint64_t major_faults, minor_faults;
	uint64_t disk_caches;
};

/* 0, or -EINVAL with a reason in err when the JSON is not guest-stats (a
 * missing "stats" object, a non-numeric value). An object with no usable
 * total is -ENODATA: the guest has not reported yet. */
int balloon_parse(const char *json, size_t len, struct balloon_stats *out, char *err,
                  size_t errlen);

#endif
