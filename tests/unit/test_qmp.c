/* Unit tests of src/agent/qmp.c: the push-fed reader on recorded QEMU 7.2
 * output (fed whole and in every chunk size), its limits, and the client
 * against a real qemu-system-x86_64 (skipped with a reason only where QEMU
 * is absent). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fixture.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/qmp.h"

#define FX "tests/fixtures/qmp/"

struct expect {
	int rc; /* of qmp_reader_next */
	enum qmp_msg_kind kind;
	const char *id, *name;
};

static const struct {
	const char *file;
	int n;
	struct expect e[10];
} cases[] = {
    {"greeting.txt", 1, {{1, QMP_MSG_GREETING, NULL, NULL}}},
    {"session.txt",
     6,
     {{1, QMP_MSG_RETURN, "le-1", NULL},
      {1, QMP_MSG_EVENT, NULL, "STOP"},
      {1, QMP_MSG_RETURN, "le-2", NULL},
      {1, QMP_MSG_ERROR, "le-3", "CommandNotFound"},
      {1, QMP_MSG_EVENT, NULL, "MIGRATION"},
      {1, QMP_MSG_RETURN, "le-4", NULL}}},
    /* a return without id; junk and arrays are -EPROTO, and reading goes on;
     * blank lines are no messages; odd shapes are UNKNOWN */
    {"odd.txt",
     7,
     {{1, QMP_MSG_RETURN, NULL, NULL},
      {-EPROTO, 0, NULL, NULL},
      {-EPROTO, 0, NULL, NULL},
      {1, QMP_MSG_UNKNOWN, "x", NULL},
      {1, QMP_MSG_UNKNOWN, NULL, NULL},
      {1, QMP_MSG_UNKNOWN, NULL, NULL},
      {1, QMP_MSG_RETURN, NULL, NULL}}},
};

static void check_stream(const char *buf, size_t len, size_t chunk, size_t ci)
{
	struct qmp_reader r;
	int got = 0;

	qmp_reader_init(&r);
	for (size_t off = 0; off < len || got < cases[ci].n;) {
		struct qmp_msg m;
		int rc = qmp_reader_next(&r, &m);
		if (rc == 0) {
			size_t n = len - off < chunk ? len - off : chunk;
			assert_true(n > 0); /* more messages expected than the input holds */
			assert_int_equal(qmp_reader_feed(&r, buf + off, n), 0);
			off += n;
			continue;
		}
		const struct expect *e = &cases[ci].e[got++];
		assert_int_equal(rc, e->rc);
		if (rc == 1) {
			assert_int_equal(m.kind, e->kind);
			if (e->id)
				assert_string_equal(m.id, e->id);
			else
				assert_null(m.id);
			if (e->name)
				assert_string_equal(m.name, e->name);
		}
		qmp_msg_release(&m);
	}
	assert_int_equal(got, cases[ci].n);
	qmp_reader_release(&r);
}

static void test_reader_fixtures(void **state)
{
	(void)state;
	for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
		size_t len;
		char path[256];
		snprintf(path, sizeof(path), FX "%s", cases[ci].file);
		char *buf = fixture_load(path, &len);
		for (size_t chunk = 1; chunk <= len; chunk = chunk < 16 ? chunk + 1 : chunk * 2)
			check_stream(buf, len, chunk, ci);
		check_stream(buf, len, len, ci);
		free(buf);
	}
}

/* The values of a return and an error are reachable; 2^64-1 survives as a
 * number (decoded as a double: QEMU prints unreported balloon stats so). */
static void test_reader_values(void **state)
{
	size_t len;
	char *buf = fixture_load(FX "session.txt", &len);
	struct qmp_reader r;
	struct qmp_msg m;

	(void)state;
	qmp_reader_init(&r);
	qmp_reader_feed(&r, buf, len);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(qmp_reader_next(&r, &m), 1);
		if (i == 2)
			assert_true(json_is_true(json_object_get(m.value, "running")));
		qmp_msg_release(&m);
	}
	assert_int_equal(qmp_reader_next(&r, &m), 1);
	assert_string_equal(m.desc, "The command no-such has not been found");
	qmp_msg_release(&m);
	assert_int_equal(qmp_reader_next(&r, &m), 1);
	assert_string_equal(json_string_value(json_object_get(m.value, "status")), "completed");
	qmp_msg_release(&m);
	assert_int_equal(qmp_reader_next(&r, &m), 1);
	assert_true(json_number_value(json_object_get(json_object_get(m.value, "stats"),
	                                              "stat-total-memory")) > 1.8e19);
	qmp_msg_release(&m);
	assert_int_equal(qmp_reader_next(&r, &m), 0);
	qmp_reader_release(&r);
	free(buf);
}

/* A line longer than QMP_MAX_LINE is dropped (-EPROTO once), whether it
 * arrives whole or in pieces, and the next line is read normally. */
static void test_reader_long_line(void **state)
{
	size_t big = QMP_MAX_LINE + 100;
	char *line = malloc(big);
	struct qmp_reader r;
	struct qmp_msg m;

	(void)state;
	memset(line, 'x', big);
	for (int pieces = 1; pieces <= 3; pieces += 2) {
		qmp_reader_init(&r);
		for (int p = 0; p < pieces; p++)
			assert_int_equal(
			    qmp_reader_feed(&r, line + p * (big / pieces), big / pieces), 0);
		assert_int_equal(qmp_reader_next(&r, &m), -EPROTO);
		assert_int_equal(qmp_reader_feed(&r, "yyy\n{\"return\": 3}\n", 18), 0);
		assert_int_equal(qmp_reader_next(&r, &m), 1);
		assert_int_equal(m.kind, QMP_MSG_RETURN);
		qmp_msg_release(&m);
		qmp_reader_release(&r);
	}
	free(line);
}

/* The client against a real QEMU: greeting, capabilities, a command, an
 * error reply, an event, and a connection QEMU closed. */
static void test_client_real_qemu(void **state)
{
	char dir[] = "/tmp/le-test-qmp-XXXXXX", sock[300], arg[400], err[256];
	json_t *ret = NULL, *ev = NULL;
	struct qmp *q = NULL;
	pid_t pid;
	int status;

	(void)state;
	if (access("/usr/bin/qemu-system-x86_64", X_OK) != 0)
		skip(); /* QEMU is not installed on this machine */
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
	snprintf(arg, sizeof(arg), "unix:%s,server=on,wait=off", sock);
	pid = fork();
	if (pid == 0) {
		execl("/usr/bin/qemu-system-x86_64", "qemu-system-x86_64", "-accel", "tcg",
		      "-machine", "q35", "-m", "64", "-nodefaults", "-display", "none", "-S",
		      "-qmp", arg, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100 && !q; i++) {
		q = qmp_open(sock, 3000, err, sizeof(err));
		if (!q)
			usleep(50000);
	}
	assert_non_null(q);
	assert_int_equal(qmp_command(q, "query-status", NULL, &ret), 0);
	assert_string_equal(json_string_value(json_object_get(ret, "status")), "prelaunch");
	json_decref(ret);
	assert_int_equal(qmp_command(q, "no-such-command", NULL, &ret), -EPROTO);
	assert_null(ret);
	assert_non_null(strstr(qmp_errstr(q), "CommandNotFound"));
	assert_int_equal(qmp_command(q, "quit", NULL, NULL), 0);
	assert_int_equal(qmp_next_event(q, 5000, &ev), 1);
	assert_string_equal(json_string_value(json_object_get(ev, "event")), "SHUTDOWN");
	json_decref(ev);
	/* QEMU is gone: the next command fails at once, it does not hang */
	assert_true(qmp_command(q, "query-status", NULL, &ret) < 0);
	qmp_close(q);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(sock);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reader_fixtures),
	    cmocka_unit_test(test_reader_values),
	    cmocka_unit_test(test_reader_long_line),
	    cmocka_unit_test(test_client_real_qemu),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
