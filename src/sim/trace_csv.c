/* trace_csv.c - the simulator's CSV trace loader (the format is in trace.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/trace.h"
#include "sim/trace_io.h"

/* ---- CSV ---------------------------------------------------------------- */

enum col { C_STEP, C_VM, C_CPU, C_MEM, C_NET, C_VCPUS, C_MEMMIB, C_N };
static const char *const col_names[C_N] = {"step", "vm", "cpu", "mem", "net", "vcpus", "mem_mib"};
#define CSV_MAX_COLS 16

struct csv_row {
	int vm, step;
	long line;
	float u[RES_N];
};

struct csv {
	struct trace *t;
	int nvms, capvms;
	long *first_line; /* per VM: the line that named it first */
	/* id -> VM index, open addressing */
	int *slot;
	size_t nslots;
	struct csv_row *rows;
	long nrows, caprows;
	int maxstep;
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int csv_grow_slots(struct csv *c)
{
	size_t n = c->nslots ? c->nslots * 2 : 1024;
	int *s = malloc(sizeof(int) * n);

	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		s[i] = -1;
	for (int v = 0; v < c->nvms; v++) {
		size_t i = fnv1a(c->t->ids[v]) & (n - 1);
		while (s[i] >= 0)
			i = (i + 1) & (n - 1);
		s[i] = v;
	}
	free(c->slot);
	c->slot = s;
	c->nslots = n;
	return 0;
}

/* Index of VM id, added when new; -ENOMEM or -E2BIG. */
static int csv_vm(struct csv *c, const char *id, long line)
{
	size_t i;

	if ((size_t)(c->nvms + 1) * 2 > c->nslots && csv_grow_slots(c) < 0)
		return -ENOMEM;
	for (i = fnv1a(id) & (c->nslots - 1); c->slot[i] >= 0; i = (i + 1) & (c->nslots - 1))
		if (strcmp(c->t->ids[c->slot[i]], id) == 0)
			return c->slot[i];
	if (c->nvms >= TRACE_MAX_VMS)
		return -E2BIG;
	if (c->nvms == c->capvms) {
		int nc = c->capvms ? c->capvms * 2 : 64;
		void *a = realloc(c->t->ids, sizeof(*c->t->ids) * (size_t)nc);
		if (!a)
			return -ENOMEM;
		c->t->ids = a;
		if (!(a = realloc(c->t->vcpus, sizeof(double) * (size_t)nc)))
			return -ENOMEM;
		c->t->vcpus = a;
		if (!(a = realloc(c->t->mem_mib, sizeof(double) * (size_t)nc)))
			return -ENOMEM;
		c->t->mem_mib = a;
		if (!(a = realloc(c->first_line, sizeof(long) * (size_t)nc)))
			return -ENOMEM;
		c->first_line = a;
		c->capvms = nc;
	}
	snprintf(c->t->ids[c->nvms], CLUSTER_ID_MAX, "%s", id);
	c->t->vcpus[c->nvms] = 0;
	c->t->mem_mib[c->nvms] = 0;
	c->first_line[c->nvms] = line;
	c->slot[i] = c->nvms;
	return c->nvms++;
}

static bool valid_id(const char *s, size_t n)
{
	if (n == 0 || n >= CLUSTER_ID_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

/* Splits buf at commas into f[] (NUL terminated in place, blanks trimmed). */
static int split_csv(char *buf, char **f, int max)
{
	int n = 0;
	char *p = buf;

	for (;;) {
		char *e = strchr(p, ','), *end;
		if (n == max)
			return -1;
		if (e)
			*e = '\0';
		while (isblank((unsigned char)*p))
			p++;
		end = p + strlen(p);
		while (end > p && isblank((unsigned char)end[-1]))
			*--end = '\0';
		f[n++] = p;
		if (!e)
			return n;
		p = e + 1;
	}
}

static int csv_header(struct trace_lines *l, int *colof, char *err, size_t errcap)
{
	char *f[CSV_MAX_COLS];
	int n = split_csv(l->buf, f, CSV_MAX_COLS);

	if (n < 0) {
		trace_seterr(err, errcap, "%s:%ld: more than %d columns", l->path, l->no,
		             CSV_MAX_COLS);
		return -EINVAL;
	}
	for (int c = 0; c < C_N; c++)
		colof[c] = -1;
	for (int i = 0; i < n; i++) {
		int c;
		for (c = 0; c < C_N; c++)
			if (strcmp(f[i], col_names[c]) == 0)
				break;
		if (c == C_N) {
			trace_seterr(
			    err, errcap,
			    "%s:%ld: unknown column '%.40s' (known: step, vm, cpu, mem, net, "
			    "vcpus, mem_mib)",
			    l->path, l->no, f[i]);
			return -EINVAL;
		}
		if (colof[c] >= 0) {
			trace_seterr(err, errcap, "%s:%ld: column '%s' twice", l->path, l->no,
			             col_names[c]);
			return -EINVAL;
		}
		colof[c] = i;
	}
	for (int c = C_STEP; c <= C_CPU; c++)
		if (colof[c] < 0) {
			trace_seterr(err, errcap, "%s:%ld: header lacks the '%s' column", l->path,
			             l->no, col_names[c]);
			return -EINVAL;
		}
	return n;
}

/* A VM size column: constant per VM. */
static int csv_size(struct csv *c, struct trace_lines *l, const char *s, double *slot, double max,
                    const char *name, char *err, size_t errcap)
{
	double x;

	if (!*s)
		return 0;
	if (!trace_parse_num(s, strlen(s), &x) || x <= 0 || x > max) {
		trace_seterr(err, errcap, "%s:%ld: %s '%.40s' is not a number in (0, %g]", l->path,
		             l->no, name, s, max);
		return -EINVAL;
	}
	if (*slot > 0 && *slot != x) {
		trace_seterr(err, errcap, "%s:%ld: %s %g differs from %g given earlier for this vm",
		             l->path, l->no, name, x, *slot);
		return -EINVAL;
	}
	*slot = x;
	return 0;
}

static int csv_row(struct csv *c, struct trace_lines *l, const int *colof, int ncols, char *err,
                   size_t errcap)
{
	char *f[CSV_MAX_COLS];
	struct csv_row r;
	double x, step;
	int n = split_csv(l->buf, f, CSV_MAX_COLS);

	if (n < 0) {
		trace_seterr(err, errcap, "%s:%ld: more than %d fields", l->path, l->no,
		             CSV_MAX_COLS);
		return -EINVAL;
	}
	if (n != ncols) {
		trace_seterr(err, errcap, "%s:%ld: %d fields, the header has %d", l->path, l->no, n,
		             ncols);
		return -EINVAL;
	}
	r.line = l->no;
	if (!trace_parse_num(f[colof[C_STEP]], strlen(f[colof[C_STEP]]), &step) || step < 0 ||
	    step != floor(step) || step >= TRACE_MAX_STEPS) {
		trace_seterr(err, errcap, "%s:%ld: step '%.40s' is not an integer in 0..%d",
		             l->path, l->no, f[colof[C_STEP]], TRACE_MAX_STEPS - 1);
		return -EINVAL;
	}
	r.step = (int)step;
	if (!valid_id(f[colof[C_VM]], strlen(f[colof[C_VM]]))) {
		trace_seterr(err, errcap,
		             "%s:%ld: vm '%.40s' is not an id (1-64 of A-Z a-z 0-9 _ . -, not "
		             "starting with . or -)",
		             l->path, l->no, f[colof[C_VM]]);
		return -EINVAL;
	}
	for (int res = 0; res < RES_N; res++) {
		int col = res == RES_CPU ? C_CPU : res == RES_MEM ? C_MEM : C_NET;
		const char *s = colof[col] >= 0 ? f[colof[col]] : NULL;
		double max = res == RES_NET ? 1e7 : 100;
		if (!s) {
			r.u[res] = res == RES_MEM ? 1.0f : 0.0f;
			continue;
		}
		if (!trace_parse_num(s, strlen(s), &x) || x < 0 || x > max) {
			trace_seterr(err, errcap, "%s:%ld: %s '%.40s' is not a number in 0..%g%s",
			             l->path, l->no, col_names[col], s, max,
			             res == RES_NET ? " Mbit/s" : " %");
			return -EINVAL;
		}
		r.u[res] = (float)(res == RES_NET ? x : x / 100);
	}
	r.vm = csv_vm(c, f[colof[C_VM]], l->no);
	if (r.vm < 0) {
		trace_seterr(err, errcap, "%s:%ld: %s", l->path, l->no,
		             r.vm == -E2BIG ? "too many VMs" : "out of memory");
		return r.vm;
	}
	if (colof[C_VCPUS] >= 0 &&
	    csv_size(c, l, f[colof[C_VCPUS]], &c->t->vcpus[r.vm], 1024, "vcpus", err, errcap) < 0)
		return -EINVAL;
	if (colof[C_MEMMIB] >= 0 && csv_size(c, l, f[colof[C_MEMMIB]], &c->t->mem_mib[r.vm],
	                                     16777216, "mem_mib", err, errcap) < 0)
		return -EINVAL;
	if (c->nrows >= TRACE_MAX_SAMPLES) {
		trace_seterr(err, errcap, "%s:%ld: more than %ld rows", l->path, l->no,
		             TRACE_MAX_SAMPLES);
		return -E2BIG;
	}
	if (c->nrows == c->caprows) {
		long nc = c->caprows ? c->caprows * 2 : 1024;
		struct csv_row *nr = realloc(c->rows, sizeof(*nr) * (size_t)nc);
		if (!nr)
			return -ENOMEM;
		c->rows = nr;
		c->caprows = nc;
	}
	c->rows[c->nrows++] = r;
	if (r.step > c->maxstep)
		c->maxstep = r.step;
	return 0;
}

/* Places the rows; every (vm, step) exactly once. */
static int csv_fill(struct csv *c, const char *path, char *err, size_t errcap)
{
	struct trace *t = c->t;
	long *line;
	size_t S = (size_t)c->maxstep + 1, V = (size_t)c->nvms;

	if (S * V > (size_t)TRACE_MAX_SAMPLES) {
		trace_seterr(err, errcap, "%s: %zu VMs x %zu steps: more than %ld samples", path, V,
		             S, TRACE_MAX_SAMPLES);
		return -E2BIG;
	}
	t->nvms = c->nvms;
	t->nsteps = (int)S;
	t->data = malloc(sizeof(float) * RES_N * S * V);
	line = calloc(S * V, sizeof(long));
	if (!t->data || !line) {
		free(line);
		return -ENOMEM;
	}
	for (long i = 0; i < c->nrows; i++) {
		const struct csv_row *r = &c->rows[i];
		size_t k = (size_t)r->step * V + (size_t)r->vm;
		if (line[k]) {
			trace_seterr(err, errcap,
			             "%s:%ld: second row for vm %s step %d (first on line %ld)",
			             path, r->line, t->ids[r->vm], r->step, line[k]);
			free(line);
			return -EINVAL;
		}
		line[k] = r->line;
		memcpy(&t->data[k * RES_N], r->u, sizeof(r->u));
	}
	for (size_t v = 0; v < V; v++)
		for (size_t s = 0; s < S; s++)
			if (!line[s * V + v]) {
				trace_seterr(
				    err, errcap,
				    "%s:%ld: vm %s has no row for step %zu (steps run 0..%zu)",
				    path, c->first_line[v], t->ids[v], s, S - 1);
				free(line);
				return -EINVAL;
			}
	free(line);
	return 0;
}

int trace_load_csv(struct trace *t, const char *path, char *err, size_t errcap)
{
	struct trace_lines *l = calloc(1, sizeof(*l));
	struct csv c;
	int colof[C_N], ncols = -1, rc;

	memset(t, 0, sizeof(*t));
	memset(&c, 0, sizeof(c));
	c.t = t;
	t->step_s = TRACE_STEP_S;
	t->cur = -1;
	trace_set_name(t, NULL, path);
	{
		char *dot = strrchr(t->name, '.');
		if (dot && dot != t->name && strcmp(dot, ".csv") == 0)
			*dot = '\0';
	}
	if (!l)
		return -ENOMEM;
	l->path = path;
	if (!(l->f = fopen(path, "r"))) {
		rc = -errno;
		trace_seterr(err, errcap, "%s: %s", path, strerror(errno));
		free(l);
		return rc;
	}
	while ((rc = trace_lines_next(l, err, errcap)) > 0) {
		const char *p = l->buf;
		while (isblank((unsigned char)*p))
			p++;
		if (*p == '#')
			continue;
		if (*p == '\0') {
			trace_seterr(err, errcap, "%s:%ld: empty line", path, l->no);
			rc = -EINVAL;
			break;
		}
		if (ncols < 0) {
			rc = ncols = csv_header(l, colof, err, errcap);
			if (rc < 0)
				break;
			continue;
		}
		if ((rc = csv_row(&c, l, colof, ncols, err, errcap)) < 0)
			break;
	}
	fclose(l->f);
	if (rc == 0 && ncols < 0) {
		trace_seterr(err, errcap, "%s: no header line (step,vm,cpu,...)", path);
		rc = -EINVAL;
	} else if (rc == 0 && c.nrows == 0) {
		trace_seterr(err, errcap, "%s: no rows after the header", path);
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = csv_fill(&c, path, err, errcap);
	if (rc == -ENOMEM)
		trace_seterr(err, errcap, "%s: out of memory", path);
	free(c.slot);
	free(c.rows);
	free(c.first_line);
	free(l);
	if (rc < 0)
		trace_free(t);
	return rc < 0 ? rc : 0;
}
