/* vmspec.h - a POST /v1/vms body, validated into a struct vm_spec
 * (domxml.h): sizes within the host's limits (max_vcpus and max_mem_mib, the
 * most a resize in place may give, from the allocation up to those limits), an id, images that
 * resolve to regular files inside the images directory (no "..", no symlink out), a bridge that
 * exists, placement rules. Pure but for the file system checks. */
#ifndef LE_AGENT_VMSPEC_H
#define LE_AGENT_VMSPEC_H

#include <jansson.h>
#include <stddef.h>

#include "agent/domxml.h"

struct vmspec_limits {
	const char *images_dir;
	const char *default_bridge;
	int max_vcpus, max_mem_mib;
};

/* 0, or -EINVAL with err naming the field and the problem (a 400). */
int vmspec_from_json(const struct vmspec_limits *l, json_t *req, struct vm_spec *spec, char *err,
                     size_t errlen);

/* Resolves rel (relative to images_dir, or absolute) into out, checking it is
 * a regular file inside images_dir. 0 or -EINVAL with err. */
int vmspec_resolve_image(const char *images_dir, const char *field, const char *rel, char *out,
                         size_t cap, char *err, size_t errlen);

#endif
