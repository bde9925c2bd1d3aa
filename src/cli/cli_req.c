/* cli_req.c - request bodies and paths built from parsed arguments (see
 * cli_req.h). */
#include "cli/cli_req.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"

int cli_req_check_id(const char *what, const char *id, char *err, size_t errlen)
{
	if (!id) {
		snprintf(err, errlen, "%s is missing", what);
		return -EINVAL;
	}
	if (!util_valid_id(id)) {
		snprintf(err, errlen,
		         "%s '%.64s' is not an id (1-64 of A-Z a-z 0-9 _ . -, not starting "
		         "with . or -)",
		         what, id);
		return -EINVAL;
	}
	return 0;
}

/* Exactly n positionals, named by what[] in the messages. */
static int want_pos(const struct cli_args *a, int n, const char *const *what, char *err,
                    size_t errlen)
{
	if (a->npos < n) {
		snprintf(err, errlen, "%s is missing", what[a->npos]);
		return -EINVAL;
	}
	if (a->npos > n) {
		snprintf(err, errlen, "unexpected argument '%.64s'", a->pos[n]);
		return -EINVAL;
	}
	return 0;
}

/* Adds the string option opt as key when given; non-empty, one line. */
static int put_str(json_t *body, const struct cli_args *a, const char *opt, const char *key,
                   char *err, size_t errlen)
{
	const char *s = cli_opt_str(a, opt);

	if (!s)
		return 0;
	if (!s[0] || strpbrk(s, "\r\n")) {
		snprintf(err, errlen, "%s must be a non-empty single line", cli_opt_as(a, opt));
		return -EINVAL;
	}
	return json_object_set_new(body, key, json_string(s)) ? -ENOMEM : 0;
}

/* Adds the id option opt as key when given. */
static int put_id(json_t *body, const struct cli_args *a, const char *opt, const char *key,
                  char *err, size_t errlen)
{
	const char *s = cli_opt_str(a, opt);

	if (!s)
		return 0;
	if (cli_req_check_id(cli_opt_as(a, opt), s, err, errlen) < 0)
		return -EINVAL;
	return json_object_set_new(body, key, json_string(s)) ? -ENOMEM : 0;
}

/* --pin h1,h2 -> ["h1", "h2"]. */
static int put_pin(json_t *body, const struct cli_args *a, char *err, size_t errlen)
{
	const char *s = cli_opt_str(a, "pin");
	char buf[1024], *save = NULL, *tok;
	json_t *arr;

	if (!s)
		return 0;
	if (util_fmt(buf, sizeof(buf), "%s", s) < 0) {
		snprintf(err, errlen, "--pin is too long");
		return -EINVAL;
	}
	arr = json_array();
	json_object_set_new(body, "pin", arr);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (cli_req_check_id("--pin host", tok, err, errlen) < 0)
			return -EINVAL;
		json_array_append_new(arr, json_string(tok));
	}
	if (json_array_size(arr) == 0 || strstr(s, ",,") || s[0] == ',' ||
	    s[strlen(s) - 1] == ',') {
		snprintf(err, errlen, "--pin: '%.64s' is not a comma-separated list of hosts", s);
		return -EINVAL;
	}
	return 0;
}

static int create_numbers(json_t *body, const struct cli_args *a, char *err, size_t errlen)
{
	int64_t vcpus = 1, mem = 0;
	int rc;

	if (cli_opt_int(a, "vcpus", 1, CLI_MAX_VCPUS, &vcpus, err, errlen) < 0)
		return -EINVAL;
	rc = cli_opt_int(a, "mem", CLI_MIN_MEM_MIB, CLI_MAX_MEM_MIB, &mem, err, errlen);
	if (rc < 0)
		return -EINVAL;
	if (rc == 0) {
		snprintf(err, errlen, "--mem MIB is required");
		return -EINVAL;
	}
	json_object_set_new(body, "vcpus", json_integer(vcpus));
	json_object_set_new(body, "mem_mib", json_integer(mem));
	/* the most a resize in place may give it (the agent checks them
	 * against the allocation and its limits) */
	if ((rc = cli_opt_int(a, "max-vcpus", 1, CLI_MAX_VCPUS, &vcpus, err, errlen)) < 0)
		return -EINVAL;
	if (rc)
		json_object_set_new(body, "max_vcpus", json_integer(vcpus));
	if ((rc = cli_opt_int(a, "max-mem", CLI_MIN_MEM_MIB, CLI_MAX_MEM_MIB, &mem, err, errlen)) <
	    0)
		return -EINVAL;
	if (rc)
		json_object_set_new(body, "max_mem_mib", json_integer(mem));
	return 0;
}

static int create_boot(json_t *body, const struct cli_args *a, char *err, size_t errlen)
{
	bool kernel = cli_opt_str(a, "kernel"), disk = cli_opt_str(a, "disk");

	if (!kernel && !disk) {
		snprintf(err, errlen, "give --kernel PATH (and --initrd PATH) or --disk PATH");
		return -EINVAL;
	}
	if (cli_opt_str(a, "initrd") && !kernel) {
		snprintf(err, errlen, "--initrd needs --kernel");
		return -EINVAL;
	}
	if (put_str(body, a, "kernel", "kernel", err, errlen) < 0 ||
	    put_str(body, a, "initrd", "initrd", err, errlen) < 0 ||
	    put_str(body, a, "append", "append", err, errlen) < 0 ||
	    put_str(body, a, "disk", "disk", err, errlen) < 0)
		return -EINVAL;
	return 0;
}

int cli_req_vm_create(const struct cli_args *a, json_t **body, char *err, size_t errlen)
{
	static const char *const what[] = {"the VM id (vm create ID ...)"};
	json_t *b = NULL;

	*body = NULL;
	if (want_pos(a, 1, what, err, errlen) < 0 || cli_req_check_id("VM", a->pos[0], err, errlen))
		return -EINVAL;
	b = json_object();
	if (!b)
		return -ENOMEM;
	json_object_set_new(b, "name", json_string(a->pos[0]));
	if (create_numbers(b, a, err, errlen) < 0 || create_boot(b, a, err, errlen) < 0 ||
	    put_pin(b, a, err, errlen) < 0 || put_id(b, a, "group", "group", err, errlen) < 0 ||
	    put_id(b, a, "anti-group", "anti_group", err, errlen) < 0)
		goto bad;
	if (cli_opt_flag(a, "exclude"))
		json_object_set_new(b, "exclude", json_true());
	if (put_id(b, a, "host", "host", err, errlen) < 0)
		goto bad;
	if (cli_opt_flag(a, "force")) {
		if (!cli_opt_str(a, "host")) {
			snprintf(err, errlen, "--force needs --host (it forces the named host)");
			goto bad;
		}
		json_object_set_new(b, "force", json_true());
	}
	*body = b;
	return 0;
bad:
	json_decref(b);
	return -EINVAL;
}

int cli_req_vm_migrate(const struct cli_args *a, json_t **body, char *err, size_t errlen)
{
	static const char *const what[] = {"the VM id (vm migrate ID ...)"};
	json_t *b;

	*body = NULL;
	if (want_pos(a, 1, what, err, errlen) < 0 || cli_req_check_id("VM", a->pos[0], err, errlen))
		return -EINVAL;
	b = json_object();
	if (!b)
		return -ENOMEM;
	if (put_id(b, a, "to", "to", err, errlen) < 0) {
		json_decref(b);
		return -EINVAL;
	}
	if (cli_opt_flag(a, "force"))
		json_object_set_new(b, "force", json_true());
	*body = b;
	return 0;
}

int cli_req_vm_resize(const struct cli_args *a, json_t **body, char *err, size_t errlen)
{
	static const char *const what[] = {"the VM id (vm resize ID ...)"};
	int64_t vcpus = 0, mem = 0;
	int rv, rm;

	*body = NULL;
	if (want_pos(a, 1, what, err, errlen) < 0 || cli_req_check_id("VM", a->pos[0], err, errlen))
		return -EINVAL;
	rv = cli_opt_int(a, "vcpus", 1, CLI_MAX_VCPUS, &vcpus, err, errlen);
	if (rv < 0)
		return -EINVAL;
	rm = cli_opt_int(a, "mem", CLI_MIN_MEM_MIB, CLI_MAX_MEM_MIB, &mem, err, errlen);
	if (rm < 0)
		return -EINVAL;
	if (!rv && !rm) {
		snprintf(err, errlen, "give --vcpus N or --mem MIB (or both)");
		return -EINVAL;
	}
	*body = json_object();
	if (!*body)
		return -ENOMEM;
	if (rv)
		json_object_set_new(*body, "vcpus", json_integer(vcpus));
	if (rm)
		json_object_set_new(*body, "mem_mib", json_integer(mem));
	return 0;
}

int cli_req_maintenance(const struct cli_args *a, json_t **body, char *err, size_t errlen)
{
	static const char *const what[] = {"on|off (host maintenance on|off HOST)",
	                                   "the host id (host maintenance on|off HOST)"};
	bool on;

	*body = NULL;
	if (want_pos(a, 2, what, err, errlen) < 0)
		return -EINVAL;
	if (strcmp(a->pos[0], "on") != 0 && strcmp(a->pos[0], "off") != 0) {
		snprintf(err, errlen, "'%.64s' is neither on nor off", a->pos[0]);
		return -EINVAL;
	}
	if (cli_req_check_id("HOST", a->pos[1], err, errlen) < 0)
		return -EINVAL;
	on = strcmp(a->pos[0], "on") == 0;
	*body = json_pack("{s:b}", "on", on);
	return *body ? 0 : -ENOMEM;
}

/* Appends "&key=<escaped value>" (or "?key=..." first) to buf at *len. */
static int add_param(char *buf, size_t cap, size_t *len, const char *key, const char *val)
{
	char *esc = curl_easy_escape(NULL, val, 0);
	int rc;

	if (!esc)
		return -ENOMEM;
	rc = util_fmt(buf + *len, cap - *len, "%s%s=%s", strchr(buf, '?') ? "&" : "?", key, esc);
	curl_free(esc);
	if (rc == 0)
		*len += strlen(buf + *len);
	return rc;
}

int cli_req_events_path(const struct cli_events_q *q, char *buf, size_t cap)
{
	char num[32];
	size_t len;
	int rc = 0;

	if (util_fmt(buf, cap, "/v1/events") < 0)
		return -ENAMETOOLONG;
	len = strlen(buf);
	if (q->after)
		rc |= add_param(buf, cap, &len, "after", q->after);
	if (q->count > 0) {
		snprintf(num, sizeof(num), "%d", q->count);
		rc |= add_param(buf, cap, &len, "count", num);
	}
	if (q->wait > 0) {
		snprintf(num, sizeof(num), "%d", q->wait);
		rc |= add_param(buf, cap, &len, "wait", num);
	}
	if (q->type)
		rc |= add_param(buf, cap, &len, "type", q->type);
	if (q->vm)
		rc |= add_param(buf, cap, &len, "vm", q->vm);
	if (q->host)
		rc |= add_param(buf, cap, &len, "host", q->host);
	return rc ? -ENAMETOOLONG : 0;
}
