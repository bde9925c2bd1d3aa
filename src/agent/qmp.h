/* qmp.h - a QEMU Machine Protocol client, spoken the way libvirt speaks it:
 * read the greeting, negotiate qmp_capabilities, put an id on every command,
 * sort every line into return / error / event, ignore unknown keys, a timeout
 * on every command, full JSON only at debug level.
 *
 * Two layers: the pure push-fed reader (bytes in, classified messages out,
 * with a line-length limit; unit-tested and fuzzed), and the client on a unix
 * socket. Like hiredis, the client keeps err and errstr.
 */
#ifndef LE_AGENT_QMP_H
#define LE_AGENT_QMP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QMP_MAX_LINE (4 << 20) /* a query-* reply of a big VM stays well under */

enum qmp_msg_kind {
	QMP_MSG_GREETING, /* {"QMP": {...}} */
	QMP_MSG_RETURN,   /* {"return": ..., "id": ...} */
	QMP_MSG_ERROR,    /* {"error": {"class": ..., "desc": ...}, "id": ...} */
	QMP_MSG_EVENT,    /* {"event": NAME, "data": ..., "timestamp": ...} */
	QMP_MSG_UNKNOWN,  /* valid JSON object of none of these shapes: ignored */
};

struct qmp_msg {
	enum qmp_msg_kind kind;
	json_t *json;     /* the whole message; owned by the msg */
	const char *id;   /* the "id" string, or NULL */
	const char *name; /* event name, or error class */
	const char *desc; /* error description */
	json_t *value;    /* "return" value, or event "data"; borrowed from json */
};
void qmp_msg_release(struct qmp_msg *m);

struct qmp_reader {
	char *buf;
	size_t len, cap;
	bool overflow; /* dropping the rest of a line longer than QMP_MAX_LINE */
};

void qmp_reader_init(struct qmp_reader *r);
void qmp_reader_release(struct qmp_reader *r);
/* Appends bytes. 0 or -ENOMEM. */
int qmp_reader_feed(struct qmp_reader *r, const char *data, size_t len);
/* The next complete message: 1 and *m filled (release it), 0 when no complete
 * line is buffered, -EPROTO for a line that is not a JSON object or is longer
 * than QMP_MAX_LINE (that line is dropped; reading can go on). */
int qmp_reader_next(struct qmp_reader *r, struct qmp_msg *m);

struct qmp;

/* Connects to QEMU's QMP unix socket, reads the greeting, negotiates
 * capabilities. NULL on failure with the reason in err. timeout_ms bounds
 * every step and every later command. */
struct qmp *qmp_open(const char *path, int timeout_ms, char *err, size_t errlen);
void qmp_close(struct qmp *q);

/* Runs a command (args: an object or NULL; the reference is stolen). On 0,
 * *ret (may be NULL) gets the return value (caller json_decref()s).
 * -ETIMEDOUT, -EIO / -ECONNRESET (the connection is unusable after), or
 * -EPROTO for an error reply: then qmp_errstr() is "Class: description". */
int qmp_command(struct qmp *q, const char *cmd, json_t *args, json_t **ret);
/* Waits up to timeout_ms for an event (queued ones first). 1 with *ev set
 * (caller json_decref()s the whole message), 0 on timeout, <0 on error. */
int qmp_next_event(struct qmp *q, int timeout_ms, json_t **ev);
const char *qmp_errstr(const struct qmp *q);

#endif
