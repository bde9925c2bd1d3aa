#include "agent/qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define QMP_MAX_EVENTS 256 /* queued events beyond this are dropped (oldest first) */

void qmp_msg_release(struct qmp_msg *m)
{
	json_decref(m->json);
	memset(m, 0, sizeof(*m));
}

void qmp_reader_init(struct qmp_reader *r)
{
	memset(r, 0, sizeof(*r));
}

void qmp_reader_release(struct qmp_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

int qmp_reader_feed(struct qmp_reader *r, const char *data, size_t len)
{
	if (r->len + len + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + len + 1)
			cap *= 2;
		char *nb = realloc(r->buf, cap);
		if (!nb)
			return -ENOMEM;
		r->buf = nb;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, data, len);
	r->len += len;
	return 0;
}

static void consume(struct qmp_reader *r, size_t n)
{
	memmove(r->buf, r->buf + n, r->len - n);
	r->len -= n;
}

static void classify(struct qmp_msg *m)
{
	json_t *j = m->json, *v;

	v = json_object_get(j, "id");
	m->id = json_is_string(v) ? json_string_value(v) : NULL;
	if ((v = json_object_get(j, "return"))) {
		m->kind = QMP_MSG_RETURN;
		m->value = v;
	} else if ((v = json_object_get(j, "error")) && json_is_object(v)) {
		json_t *c = json_object_get(v, "class"), *d = json_object_get(v, "desc");
		m->kind = QMP_MSG_ERROR;
		m->name = json_is_string(c) ? json_string_value(c) : "GenericError";
		m->desc = json_is_string(d) ? json_string_value(d) : "(no description)";
		m->value = v;
	} else if ((v = json_object_get(j, "event")) && json_is_string(v)) {
		m->kind = QMP_MSG_EVENT;
		m->name = json_string_value(v);
		m->value = json_object_get(j, "data");
	} else if (json_object_get(j, "QMP")) {
		m->kind = QMP_MSG_GREETING;
	} else {
		m->kind = QMP_MSG_UNKNOWN;
	}
}

int qmp_reader_next(struct qmp_reader *r, struct qmp_msg *m)
{
	json_error_t e;
	char *nl;
	size_t n;

	memset(m, 0, sizeof(*m));
	for (;;) {
		nl = r->len ? memchr(r->buf, '\n', r->len) : NULL;
		if (!nl) {
			if (r->len > QMP_MAX_LINE) {
				/* drop what we have of this line, and the rest of it later */
				r->len = 0;
				r->overflow = true;
				return -EPROTO;
			}
			return 0;
		}
		n = (size_t)(nl - r->buf);
		if (r->overflow) {
			r->overflow = false;
			consume(r, n + 1);
			continue;
		}
		if (n > QMP_MAX_LINE) {
			consume(r, n + 1);
			return -EPROTO;
		}
		/* blank lines (QEMU sends \r\n) are not messages */
		{
			size_t i = 0;
			while (i < n &&
			       (r->buf[i] == ' ' || r->buf[i] == '\r' || r->buf[i] == '\t'))
				i++;
			if (i == n) {
				consume(r, n + 1);
				continue;
			}
		}
		m->json = json_loadb(r->buf, n, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &e);
		consume(r, n + 1);
		if (!m->json || !json_is_object(m->json)) {
			json_decref(m->json);
			m->json = NULL;
			return -EPROTO;
		}
		classify(m);
		return 1;
	}
}

/* --- the client -------------------------------------------------------- */

struct qmp {
	int fd;
	int timeout_ms;
	unsigned long next_id;
	struct qmp_reader rd;
	json_t *events; /* queued event messages */
	char errstr[256];
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *qmp_errstr(const struct qmp *q)
{
	return q->errstr;
}

/* Reads until one message is complete or the deadline passes. */
static int read_msg(struct qmp *q, int64_t deadline, struct qmp_msg *m)
{
	char buf[65536];

	for (;;) {
		int rc = qmp_reader_next(&q->rd, m);
		if (rc != 0) {
			if (rc < 0)
				snprintf(q->errstr, sizeof(q->errstr), "QMP sent a malformed line");
			return rc;
		}
		int left = (int)(deadline - mono_ms());
		if (left <= 0) {
			snprintf(q->errstr, sizeof(q->errstr), "QMP did not answer within %d ms",
			         q->timeout_ms);
			return -ETIMEDOUT;
		}
		struct pollfd pfd = {.fd = q->fd, .events = POLLIN};
		rc = poll(&pfd, 1, left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0) {
			snprintf(q->errstr, sizeof(q->errstr), "poll: %s", strerror(errno));
			return -EIO;
		}
		if (rc == 0)
			continue;
		ssize_t n = read(q->fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			snprintf(q->errstr, sizeof(q->errstr), "QMP connection closed%s%s",
			         n < 0 ? ": " : " by QEMU", n < 0 ? strerror(errno) : "");
			return -ECONNRESET;
		}
		if (qmp_reader_feed(&q->rd, buf, (size_t)n) < 0)
			return -ENOMEM;
	}
}

static void queue_event(struct qmp *q, struct qmp_msg *m)
{
	if (json_array_size(q->events) >= QMP_MAX_EVENTS)
		json_array_remove(q->events, 0);
	json_array_append(q->events, m->json);
}

static int write_all(struct qmp *q, const char *s, size_t len)
{
	while (len) {
		ssize_t n = send(q->fd, s, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(q->errstr, sizeof(q->errstr), "QMP write: %s", strerror(errno));
			return -EIO;
		}
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

int qmp_command(struct qmp *q, const char *cmd, json_t *args, json_t **ret)
{
	char id[32];
	json_t *req;
	char *text;
	int rc;
	int64_t deadline = mono_ms() + q->timeout_ms;

	if (ret)
		*ret = NULL;
	snprintf(id, sizeof(id), "le-%lu", ++q->next_id);
	req = json_pack("{s:s,s:s}", "execute", cmd, "id", id);
	if (args)
		json_object_set_new(req, "arguments", args);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		return -ENOMEM;
	log_debug("qmp -> %s", text);
	rc = write_all(q, text, strlen(text));
	if (rc == 0)
		rc = write_all(q, "\n", 1);
	free(text);
	if (rc < 0)
		return rc;
	for (;;) {
		struct qmp_msg m;
		rc = read_msg(q, deadline, &m);
		if (rc == -EPROTO)
			continue; /* a garbled line: not ours, keep waiting */
		if (rc < 0)
			return rc;
		if (log_get_level() >= LOG_LVL_DEBUG) {
			char *s = json_dumps(m.json, JSON_COMPACT);
			log_debug("qmp <- %s", s ? s : "?");
			free(s);
		}
		if (m.kind == QMP_MSG_EVENT) {
			queue_event(q, &m);
		} else if ((m.kind == QMP_MSG_RETURN || m.kind == QMP_MSG_ERROR) && m.id &&
		           strcmp(m.id, id) == 0) {
			rc = 0;
			if (m.kind == QMP_MSG_ERROR) {
				snprintf(q->errstr, sizeof(q->errstr), "%s: %s", m.name, m.desc);
				rc = -EPROTO;
			} else if (ret) {
				*ret = json_incref(m.value);
			}
			qmp_msg_release(&m);
			return rc;
		}
		/* replies to other ids (a command that timed out earlier), greetings and
		 * unknown shapes are ignored */
		qmp_msg_release(&m);
	}
}

int qmp_next_event(struct qmp *q, int timeout_ms, json_t **ev)
{
	int64_t deadline = mono_ms() + timeout_ms;

	*ev = NULL;
	for (;;) {
		struct qmp_msg m;
		int rc;
		if (json_array_size(q->events)) {
			*ev = json_incref(json_array_get(q->events, 0));
			json_array_remove(q->events, 0);
			return 1;
		}
		rc = read_msg(q, deadline, &m);
		if (rc == -ETIMEDOUT)
			return 0;
		if (rc == -EPROTO)
			continue;
		if (rc < 0)
			return rc;
		if (m.kind == QMP_MSG_EVENT)
			queue_event(q, &m);
		qmp_msg_release(&m);
	}
}

struct qmp *qmp_open(const char *path, int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct qmp *q = NULL;
	struct qmp_msg m = {0};
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "QMP socket path too long: %s", path);
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	q->events = json_array();
	qmp_reader_init(&q->rd);
	strcpy(sa.sun_path, path);
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "QMP connect %s: %s", path, strerror(errno));
		goto fail;
	}
	rc = read_msg(q, mono_ms() + q->timeout_ms, &m);
	if (rc < 0 || m.kind != QMP_MSG_GREETING) {
		snprintf(err, errlen, "QMP %s: no greeting (%s)", path,
		         rc < 0 ? q->errstr : "unexpected first message");
		qmp_msg_release(&m);
		goto fail;
	}
	qmp_msg_release(&m);
	rc = qmp_command(q, "qmp_capabilities", NULL, NULL);
	if (rc < 0) {
		snprintf(err, errlen, "QMP %s: qmp_capabilities: %s", path, q->errstr);
		goto fail;
	}
	return q;
fail:
	qmp_close(q);
	return NULL;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	qmp_reader_release(&q->rd);
	json_decref(q->events);
	free(q);
}
