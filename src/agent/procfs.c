/* procfs.c - pure parsers for the /proc and /sys files the agent samples.
 *
 * Everything reads through a bounded cursor (bytes s[0..n), position i), so no
 * parser ever looks past len or needs a NUL terminator. Numbers are parsed
 * digit by digit with an overflow check, never with strtoull.
 */
#include "agent/procfs.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/* A read cursor: the bytes s[0..n) and the position i. */
struct procfs_cur {
	const char *s;
	size_t n, i;
};

/* One "name<sep>value" line a key-value parser reads. */
struct procfs_key {
	const char *name;
	uint64_t *dst;
	bool kb; /* the value ends in " kB" */
};

static bool cur_end(const struct procfs_cur *c)
{
	return c->i >= c->n;
}

static bool cur_is_digit(const struct procfs_cur *c)
{
	return c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9';
}

/* Consumes ch if it comes next. */
static bool cur_eat(struct procfs_cur *c, char ch)
{
	if (c->i >= c->n || c->s[c->i] != ch)
		return false;
	c->i++;
	return true;
}

/* Consumes the literal lit if it comes next. */
static bool cur_lit(struct procfs_cur *c, const char *lit)
{
	size_t l = strlen(lit);

	if (c->n - c->i < l || memcmp(c->s + c->i, lit, l) != 0)
		return false;
	c->i += l;
	return true;
}

static void cur_blanks(struct procfs_cur *c)
{
	while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t'))
		c->i++;
}

static bool procfs_is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* An unsigned decimal: at least one digit; -ERANGE past UINT64_MAX. */
static int cur_u64(struct procfs_cur *c, uint64_t *v)
{
	uint64_t x = 0;

	if (!cur_is_digit(c))
		return -EINVAL;
	while (cur_is_digit(c)) {
		unsigned d = (unsigned)(c->s[c->i] - '0');

		if (x > (UINT64_MAX - d) / 10)
			return -ERANGE;
		x = x * 10 + d;
		c->i++;
	}
	*v = x;
	return 0;
}

/* A decimal with an optional '-'; -ERANGE outside int64_t. */
static int cur_i64(struct procfs_cur *c, int64_t *v)
{
	bool neg = cur_eat(c, '-');
	uint64_t mag;
	int rc;

	rc = cur_u64(c, &mag);
	if (rc < 0)
		return rc;
	if (mag > (uint64_t)INT64_MAX + neg)
		return -ERANGE;
	/* -(INT64_MAX + 1) without signed overflow */
	*v = neg ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
	return 0;
}

/* A fixed-point percentage as PSI prints it ("12.34"). Fraction digits past
 * the 18th do not change a double and are skipped. */
static int cur_decimal(struct procfs_cur *c, double *v)
{
	uint64_t ip, frac = 0;
	double scale = 1;
	unsigned nfrac = 0;
	int rc;

	rc = cur_u64(c, &ip);
	if (rc < 0)
		return rc;
	if (cur_eat(c, '.')) {
		if (!cur_is_digit(c))
			return -EINVAL;
		for (; cur_is_digit(c); c->i++) {
			if (nfrac++ >= 18)
				continue;
			frac = frac * 10 + (uint64_t)(c->s[c->i] - '0');
			scale *= 10;
		}
	}
	*v = (double)ip + (double)frac / scale;
	return 0;
}

/* The next complete line of r (without its '\n') into *line. Returns 1, 0 at
 * the end, -E2BIG past PROCFS_MAX_LINES. A last line without '\n' was cut by a
 * short read: it is incomplete and not returned. Line length is checked by the
 * caller, and only for lines it reads (see procfs.h). */
static int procfs_next_line(struct procfs_cur *r, unsigned *nlines, struct procfs_cur *line)
{
	const char *nl;
	size_t ll;

	if (r->i >= r->n)
		return 0;
	nl = memchr(r->s + r->i, '\n', r->n - r->i);
	if (!nl) {
		r->i = r->n;
		return 0;
	}
	if (++*nlines > PROCFS_MAX_LINES)
		return -E2BIG;
	ll = (size_t)(nl - (r->s + r->i));
	line->s = r->s + r->i;
	line->n = ll;
	line->i = 0;
	r->i += ll + 1;
	return 1;
}

/* The rest of a "name: value" line: blanks, digits, " kB" when kb, blanks,
 * end of line. */
static int procfs_value_u64(struct procfs_cur *c, bool kb, uint64_t *v)
{
	int rc;

	cur_blanks(c);
	rc = cur_u64(c, v);
	if (rc < 0)
		return rc;
	if (kb && !cur_lit(c, " kB"))
		return -EINVAL;
	cur_blanks(c);
	return cur_end(c) ? 0 : -EINVAL;
}

/* Consumes "name<sep>" if the line starts with it. */
static bool procfs_key_is(struct procfs_cur *line, const char *name, char sep)
{
	line->i = 0;
	return cur_lit(line, name) && cur_eat(line, sep);
}

/* Reads line if it is one of keys[] and sets that key's bit in *seen.
 * Returns 1 when read, 0 when the line is not one of keys[] (skipped whatever
 * its length), -EINVAL for a bad value or a key given twice, -ERANGE, -E2BIG. */
static int procfs_key_line(struct procfs_cur *line, char sep, const struct procfs_key *keys,
                           unsigned nkeys, uint32_t *seen)
{
	unsigned k;
	int rc;

	for (k = 0; k < nkeys; k++)
		if (procfs_key_is(line, keys[k].name, sep))
			break;
	if (k == nkeys)
		return 0;
	if (line->n > PROCFS_MAX_LINE)
		return -E2BIG;
	if (*seen & (1u << k))
		return -EINVAL;
	rc = procfs_value_u64(line, keys[k].kb, keys[k].dst);
	if (rc < 0)
		return rc;
	*seen |= 1u << k;
	return 1;
}

/* Reads every line of buf that is one of keys[]; see procfs_key_line(). */
static int procfs_parse_keys(const char *buf, size_t len, char sep, const struct procfs_key *keys,
                             unsigned nkeys, uint32_t *seen)
{
	struct procfs_cur r = {buf, len, 0}, line;
	unsigned nlines = 0;
	int rc;

	*seen = 0;
	while ((rc = procfs_next_line(&r, &nlines, &line)) > 0) {
		rc = procfs_key_line(&line, sep, keys, nkeys, seen);
		if (rc < 0)
			break;
	}
	return rc;
}

/* Copies a name into dst[size], truncating; a NUL inside is -EINVAL (the
 * kernel never prints one). */
static int procfs_copy_name(char *dst, size_t size, const char *src, size_t n)
{
	if (memchr(src, '\0', n))
		return -EINVAL;
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

/* a + b, saturated at UINT64_MAX: garbage counters must not wrap around */
static uint64_t procfs_add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t procfs_cpu_busy(const struct procfs_cpu *c)
{
	uint64_t v = c->user;

	v = procfs_add_sat(v, c->nice);
	v = procfs_add_sat(v, c->system);
	v = procfs_add_sat(v, c->irq);
	v = procfs_add_sat(v, c->softirq);
	return procfs_add_sat(v, c->steal);
}

uint64_t procfs_cpu_total(const struct procfs_cpu *c)
{
	return procfs_add_sat(procfs_add_sat(procfs_cpu_busy(c), c->idle), c->iowait);
}

/* The numbers of the aggregate "cpu" line, after "cpu ": 4 to 10 of them;
 * columns past the 10th (a future kernel) are ignored. */
static int procfs_cpu_line(struct procfs_cur *c, struct procfs_cpu *cpu)
{
	uint64_t *col[] = {&cpu->user, &cpu->nice,    &cpu->system, &cpu->idle,  &cpu->iowait,
	                   &cpu->irq,  &cpu->softirq, &cpu->steal,  &cpu->guest, &cpu->guest_nice};
	unsigned ncol = 0;
	int rc;

	for (;;) {
		cur_blanks(c);
		if (cur_end(c) || ncol == sizeof(col) / sizeof(col[0]))
			break;
		rc = cur_u64(c, col[ncol]);
		if (rc < 0)
			return rc;
		if (!cur_end(c) && c->s[c->i] != ' ' && c->s[c->i] != '\t')
			return -EINVAL;
		ncol++;
	}
	return ncol < 4 ? -EINVAL : 0;
}

int procfs_parse_stat(const char *buf, size_t len, struct procfs_stat *out)
{
	struct procfs_cur r = {buf, len, 0}, line;
	unsigned nlines = 0;
	bool have_all = false, closed = false;
	uint64_t id;
	int rc;

	memset(out, 0, sizeof(*out));
	while ((rc = procfs_next_line(&r, &nlines, &line)) > 0) {
		if (!cur_lit(&line, "cpu")) {
			closed = true;
			continue;
		}
		closed = false;
		if (line.n > PROCFS_MAX_LINE) {
			rc = -E2BIG;
			goto out;
		}
		if (cur_eat(&line, ' ')) {
			if (have_all) {
				rc = -EINVAL;
				goto out;
			}
			rc = procfs_cpu_line(&line, &out->all);
			if (rc < 0)
				goto out;
			have_all = true;
		} else if (cur_is_digit(&line)) {
			rc = cur_u64(&line, &id);
			if (rc < 0)
				goto out;
			if (!cur_eat(&line, ' ')) {
				rc = -EINVAL;
				goto out;
			}
			out->ncpu++;
		}
	}
	if (rc < 0)
		goto out;
	/* the cpu lines come first and are followed by "intr": a file that
	 * ends inside them was cut and ncpu would be short */
	if (!have_all || out->ncpu == 0 || !closed)
		rc = -EINVAL;
out:
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

int procfs_parse_meminfo(const char *buf, size_t len, struct procfs_meminfo *out)
{
	enum { AVAIL };
	const struct procfs_key keys[] = {
	    [AVAIL] = {"MemAvailable", &out->mem_available, true},
	    {"MemTotal", &out->mem_total, true},
	    {"MemFree", &out->mem_free, true},
	    {"Buffers", &out->buffers, true},
	    {"Cached", &out->cached, true},
	    {"SwapTotal", &out->swap_total, true},
	    {"SwapFree", &out->swap_free, true},
	};
	const unsigned nkeys = sizeof(keys) / sizeof(keys[0]);
	uint32_t all = (1u << nkeys) - 1;
	uint32_t seen;
	uint64_t sum;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = procfs_parse_keys(buf, len, ':', keys, nkeys, &seen);
	if (rc < 0)
		goto out;
	if ((seen | 1u << AVAIL) != all) {
		rc = -EINVAL;
		goto out;
	}
	out->has_available = seen & (1u << AVAIL);
	if (!out->has_available) {
		if (__builtin_add_overflow(out->mem_free, out->buffers, &sum) ||
		    __builtin_add_overflow(sum, out->cached, &sum)) {
			rc = -ERANGE;
			goto out;
		}
		out->mem_available = sum;
	}
out:
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* "key value" files whose keys are all required: parses them into keys[],
 * and leaves out (size bytes) zeroed on any error or missing key. */
static int parse_all_keys(const char *buf, size_t len, char sep, const struct procfs_key *keys,
                          unsigned nkeys, void *out, size_t size)
{
	uint32_t seen;
	int rc;

	memset(out, 0, size);
	rc = procfs_parse_keys(buf, len, sep, keys, nkeys, &seen);
	if (rc == 0 && seen != (1u << nkeys) - 1)
		rc = -EINVAL;
	if (rc < 0)
		memset(out, 0, size);
	return rc;
}

int procfs_parse_vmstat(const char *buf, size_t len, struct procfs_vmstat *out)
{
	const struct procfs_key keys[] = {
	    {"pswpin", &out->pswpin, false},
	    {"pswpout", &out->pswpout, false},
	    {"pgmajfault", &out->pgmajfault, false},
	};
	return parse_all_keys(buf, len, ' ', keys, sizeof(keys) / sizeof(keys[0]), out,
	                      sizeof(*out));
}

/* Field 4 onwards of /proc/<pid>/stat, the 1-based numbers of proc(5). */
enum {
	PROCFS_F_PPID = 4,
	PROCFS_F_MINFLT = 10,
	PROCFS_F_MAJFLT = 12,
	PROCFS_F_UTIME = 14,
	PROCFS_F_STIME = 15,
	PROCFS_F_THREADS = 20,
	PROCFS_F_START = 22,
	PROCFS_F_VSIZE = 23,
	PROCFS_F_RSS = 24, /* the last field read: fewer is a cut file */
};

/* Stores field number f (a valid integer, sign neg, magnitude mag). */
static int procfs_pid_field(struct procfs_pid_stat *out, unsigned f, bool neg, uint64_t mag)
{
	uint64_t *u = NULL;
	int64_t *s = NULL;

	switch (f) {
	case PROCFS_F_PPID:
		if (neg || mag > INT_MAX)
			return -ERANGE;
		out->ppid = (int)mag;
		return 0;
	case PROCFS_F_MINFLT:
		u = &out->minflt;
		break;
	case PROCFS_F_MAJFLT:
		u = &out->majflt;
		break;
	case PROCFS_F_UTIME:
		u = &out->utime;
		break;
	case PROCFS_F_STIME:
		u = &out->stime;
		break;
	case PROCFS_F_START:
		u = &out->starttime;
		break;
	case PROCFS_F_VSIZE:
		u = &out->vsize;
		break;
	case PROCFS_F_THREADS:
		s = &out->num_threads;
		break;
	case PROCFS_F_RSS:
		s = &out->rss;
		break;
	default:
		return 0;
	}
	if (u) {
		if (neg)
			return -ERANGE;
		*u = mag;
	} else {
		if (mag > (uint64_t)INT64_MAX + neg)
			return -ERANGE;
		*s = neg ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
	}
	return 0;
}

/* The fields after the comm: " S 1 2 ...", one space before each. Every
 * field past the state must be an integer that fits 64 bits. */
static int procfs_pid_fields(struct procfs_cur *c, struct procfs_pid_stat *out)
{
	unsigned f;
	uint64_t mag;
	bool neg;
	int rc;

	if (!cur_eat(c, ' ') || c->n - c->i < 1)
		return -EINVAL;
	out->state = c->s[c->i++];
	if (!((out->state >= 'A' && out->state <= 'Z') || (out->state >= 'a' && out->state <= 'z')))
		return -EINVAL;
	for (f = 4; !cur_end(c); f++) {
		if (!cur_eat(c, ' '))
			return -EINVAL;
		neg = cur_eat(c, '-');
		rc = cur_u64(c, &mag);
		if (rc < 0)
			return rc;
		rc = procfs_pid_field(out, f, neg, mag);
		if (rc < 0)
			return rc;
	}
	return f > PROCFS_F_RSS ? 0 : -EINVAL;
}

int procfs_parse_pid_stat(const char *buf, size_t len, struct procfs_pid_stat *out)
{
	struct procfs_cur c = {buf, len, 0};
	const char *comm_end;
	size_t comm;
	uint64_t pid;
	int rc;

	memset(out, 0, sizeof(*out));
	/* one line, but the comm may hold '\n' too: only the last byte ends it */
	if (len == 0 || buf[len - 1] != '\n') {
		rc = len > PROCFS_MAX_LINE ? -E2BIG : -EINVAL;
		goto out;
	}
	c.n = len - 1;
	if (c.n > PROCFS_MAX_LINE) {
		rc = -E2BIG;
		goto out;
	}
	rc = cur_u64(&c, &pid);
	if (rc < 0)
		goto out;
	if (pid > INT_MAX) {
		rc = -ERANGE;
		goto out;
	}
	out->pid = (int)pid;
	if (!cur_eat(&c, ' ') || !cur_eat(&c, '(')) {
		rc = -EINVAL;
		goto out;
	}
	comm = c.i;
	comm_end = memrchr(c.s + comm, ')', c.n - comm);
	if (!comm_end) {
		rc = -EINVAL;
		goto out;
	}
	rc = procfs_copy_name(out->comm, sizeof(out->comm), c.s + comm,
	                      (size_t)(comm_end - (c.s + comm)));
	if (rc < 0)
		goto out;
	c.i = (size_t)(comm_end - c.s) + 1;
	rc = procfs_pid_fields(&c, out);
out:
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

int procfs_parse_pid_status(const char *buf, size_t len, struct procfs_pid_status *out)
{
	enum { RSS, SWAP, THREADS };
	uint64_t threads = 0;
	const struct procfs_key keys[] = {
	    [RSS] = {"VmRSS", &out->vm_rss_kib, true},
	    [SWAP] = {"VmSwap", &out->vm_swap_kib, true},
	    [THREADS] = {"Threads", &threads, false},
	};
	struct procfs_cur r = {buf, len, 0}, line;
	unsigned nlines = 0;
	uint32_t seen = 0;
	bool have_name = false;
	int rc;

	memset(out, 0, sizeof(*out));
	while ((rc = procfs_next_line(&r, &nlines, &line)) > 0) {
		if (procfs_key_is(&line, "Name", ':')) {
			if (line.n > PROCFS_MAX_LINE) {
				rc = -E2BIG;
				goto out;
			}
			if (have_name) {
				rc = -EINVAL;
				goto out;
			}
			/* "Name:\t" then the name, escaped by the kernel */
			cur_eat(&line, '\t');
			rc = procfs_copy_name(out->name, sizeof(out->name), line.s + line.i,
			                      line.n - line.i);
			if (rc < 0)
				goto out;
			have_name = true;
			continue;
		}
		rc = procfs_key_line(&line, ':', keys, sizeof(keys) / sizeof(keys[0]), &seen);
		if (rc < 0)
			goto out;
	}
	if (rc < 0)
		goto out;
	/* Threads follows the Vm* lines: without it a cut file would pass
	 * for a kernel thread */
	if (!have_name || !(seen & (1u << THREADS))) {
		rc = -EINVAL;
		goto out;
	}
	if (threads > INT64_MAX) {
		rc = -ERANGE;
		goto out;
	}
	out->threads = (int64_t)threads;
	out->has_vm = seen & (1u << RSS);
out:
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

int procfs_parse_pid_statm(const char *buf, size_t len, struct procfs_pid_statm *out)
{
	uint64_t v[7];
	struct procfs_cur c = {buf, len, 0};
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (len == 0 || buf[len - 1] != '\n') {
		rc = len > PROCFS_MAX_LINE ? -E2BIG : -EINVAL;
		goto out;
	}
	c.n = len - 1;
	if (c.n > PROCFS_MAX_LINE) {
		rc = -E2BIG;
		goto out;
	}
	for (unsigned i = 0; i < 7; i++) {
		if (i > 0 && !cur_eat(&c, ' ')) {
			rc = -EINVAL;
			goto out;
		}
		rc = cur_u64(&c, &v[i]);
		if (rc < 0)
			goto out;
	}
	if (!cur_end(&c)) {
		rc = -EINVAL;
		goto out;
	}
	out->size = v[0];
	out->resident = v[1];
	out->shared = v[2];
	out->text = v[3];
	out->data = v[5];
out:
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

int procfs_parse_pid_io(const char *buf, size_t len, struct procfs_pid_io *out)
{
	const struct procfs_key keys[] = {
	    {"rchar", &out->rchar, false},
	    {"wchar", &out->wchar, false},
	    {"syscr", &out->syscr, false},
	    {"syscw", &out->syscw, false},
	    {"read_bytes", &out->read_bytes, false},
	    {"write_bytes", &out->write_bytes, false},
	    {"cancelled_write_bytes", &out->cancelled_write_bytes, false},
	};
	return parse_all_keys(buf, len, ':', keys, sizeof(keys) / sizeof(keys[0]), out,
	                      sizeof(*out));
}

/* " avg10=0.00 avg60=0.00 avg300=0.00 total=0", after "some" or "full". */
static int procfs_psi_line(struct procfs_cur *c, struct procfs_psi_line *l)
{
	static const char *const key[] = {" avg10=", " avg60=", " avg300="};
	double *avg[] = {&l->avg10, &l->avg60, &l->avg300};
	unsigned k;
	int rc;

	for (k = 0; k < 3; k++) {
		if (!cur_lit(c, key[k]))
			return -EINVAL;
		rc = cur_decimal(c, avg[k]);
		if (rc < 0)
			return rc;
	}
	if (!cur_lit(c, " total="))
		return -EINVAL;
	rc = cur_u64(c, &l->total);
	if (rc < 0)
		return rc;
	return cur_end(c) ? 0 : -EINVAL;
}

int procfs_parse_pressure(const char *buf, size_t len, struct procfs_psi *out)
{
	struct procfs_cur r = {buf, len, 0}, line;
	unsigned nlines = 0;
	bool have_some = false;
	struct procfs_psi_line *l;
	bool *have;
	int rc;

	memset(out, 0, sizeof(*out));
	while ((rc = procfs_next_line(&r, &nlines, &line)) > 0) {
		if (cur_lit(&line, "some")) {
			l = &out->some;
			have = &have_some;
		} else if (cur_lit(&line, "full")) {
			l = &out->full;
			have = &out->has_full;
		} else {
			continue;
		}
		if (line.n > PROCFS_MAX_LINE) {
			rc = -E2BIG;
			goto out;
		}
		if (*have) {
			rc = -EINVAL;
			goto out;
		}
		rc = procfs_psi_line(&line, l);
		if (rc < 0)
			goto out;
		*have = true;
	}
	if (rc < 0)
		goto out;
	if (!have_some)
		rc = -EINVAL;
out:
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	return rc;
}

/* One integer between optional whitespace: the whole of a sysfs file. */
static int procfs_parse_one(const char *buf, size_t len, bool is_signed, uint64_t *u, int64_t *s)
{
	struct procfs_cur c = {buf, len, 0};
	int rc;

	if (len > PROCFS_MAX_LINE)
		return -E2BIG;
	while (!cur_end(&c) && procfs_is_space(c.s[c.i]))
		c.i++;
	rc = is_signed ? cur_i64(&c, s) : cur_u64(&c, u);
	if (rc < 0)
		return rc;
	while (!cur_end(&c) && procfs_is_space(c.s[c.i]))
		c.i++;
	return cur_end(&c) ? 0 : -EINVAL;
}

int procfs_parse_u64(const char *buf, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	int rc;

	rc = procfs_parse_one(buf, len, false, &v, NULL);
	*out = rc < 0 ? 0 : v;
	return rc;
}

int procfs_parse_i64(const char *buf, size_t len, int64_t *out)
{
	int64_t v = 0;
	int rc;

	rc = procfs_parse_one(buf, len, true, NULL, &v);
	*out = rc < 0 ? 0 : v;
	return rc;
}
