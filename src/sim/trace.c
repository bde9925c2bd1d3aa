/* trace.c - the simulator's trace loaders and the synthetic AR(1) generator;
 * see trace.h for the formats. */
#include "sim/trace.h"
#include "sim/trace_io.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void trace_seterr(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!err || !cap)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

/* ---- lines ------------------------------------------------------------- */

int trace_lines_next(struct trace_lines *l, char *err, size_t errcap)
{
	if (!fgets(l->buf, sizeof(l->buf), l->f)) {
		if (ferror(l->f)) {
			trace_seterr(err, errcap, "%s:%ld: read error", l->path, l->no + 1);
			return -EIO;
		}
		return 0;
	}
	l->no++;
	l->len = strlen(l->buf);
	if (l->len > 0 && l->buf[l->len - 1] == '\n') {
		l->buf[--l->len] = '\0';
	} else if (l->len > TRACE_MAX_LINE || (l->len == sizeof(l->buf) - 1 && !feof(l->f))) {
		trace_seterr(err, errcap, "%s:%ld: line longer than %d bytes", l->path, l->no,
		             TRACE_MAX_LINE);
		return -EINVAL;
	}
	if (l->len > 0 && l->buf[l->len - 1] == '\r')
		l->buf[--l->len] = '\0';
	if (memchr(l->buf, '\0', l->len)) {
		trace_seterr(err, errcap, "%s:%ld: NUL byte in line", l->path, l->no);
		return -EINVAL;
	}
	return 1;
}

/* ---- numbers ------------------------------------------------------------ */

bool trace_parse_num(const char *s, size_t len, double *out)
{
	char tmp[64], *end;

	while (len > 0 && isblank((unsigned char)*s))
		s++, len--;
	while (len > 0 && isblank((unsigned char)s[len - 1]))
		len--;
	if (len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	errno = 0;
	*out = strtod(tmp, &end);
	return errno == 0 && *end == '\0' && isfinite(*out) && end != tmp;
}

static int percent(const char *s, size_t len, double max, double *out, const char **why,
                   const char *what)
{
	if (!trace_parse_num(s, len, out)) {
		*why = what;
		return -EINVAL;
	}
	if (*out < 0 || *out > max) {
		*why =
		    max > 100 ? "memory percent out of range 0-1000" : "percent out of range 0-100";
		return -EINVAL;
	}
	return 0;
}

int trace_parse_planetlab_line(const char *s, size_t len, double *cpu, const char **why)
{
	return percent(s, len, 100, cpu, why, "not a CPU percent (one number per line)");
}

int trace_parse_google_line(const char *s, size_t len, double *cpu, double *mem, const char **why)
{
	size_t i = 0, a, b, c, d;

	while (i < len && isblank((unsigned char)s[i]))
		i++;
	a = i;
	while (i < len && !isblank((unsigned char)s[i]))
		i++;
	b = i;
	while (i < len && isblank((unsigned char)s[i]))
		i++;
	c = i;
	while (i < len && !isblank((unsigned char)s[i]))
		i++;
	d = i;
	while (i < len && isblank((unsigned char)s[i]))
		i++;
	if (b == a || d == c || i != len) {
		*why = "expected two numbers: CPU percent and memory percent";
		return -EINVAL;
	}
	if (percent(s + a, b - a, 100, cpu, why, "CPU percent is not a number") < 0)
		return -EINVAL;
	/* Google normalises usage by the request: memory goes above 100 % */
	return percent(s + c, d - c, 1000, mem, why, "memory percent is not a number");
}

/* ---- common ---------------------------------------------------------- */

void trace_free(struct trace *t)
{
	if (!t)
		return;
	free(t->ids);
	free(t->vcpus);
	free(t->mem_mib);
	free(t->data);
	free(t->mean);
	free(t->x);
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

void trace_vm_id(const struct trace *t, int v, char *out)
{
	if (t->ids)
		memcpy(out, t->ids[v], CLUSTER_ID_MAX);
	else
		snprintf(out, CLUSTER_ID_MAX, "vm%d", v);
}

void trace_set_name(struct trace *t, const char *kind, const char *path)
{
	const char *base;
	size_t n = strlen(path);

	while (n > 1 && path[n - 1] == '/')
		n--;
	base = path + n;
	while (base > path && base[-1] != '/')
		base--;
	if (kind &&
	    ((size_t)(path + n - base) != strlen(kind) || strncmp(base, kind, strlen(kind))))
		snprintf(t->name, sizeof(t->name), "%s-%.*s", kind, (int)(path + n - base), base);
	else if (kind)
		snprintf(t->name, sizeof(t->name), "%s", kind);
	else
		snprintf(t->name, sizeof(t->name), "%.*s", (int)(path + n - base), base);
	for (char *p = t->name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			*p = '_';
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the regular files in dir (dot files skipped). */
static int list_dir(const char *dir, char ***names, int *n, char *err, size_t errcap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL, path[4096];
	int cnt = 0, cap = 0, rc = 0;

	*names = NULL;
	*n = 0;
	if (!d) {
		rc = -errno;
		trace_seterr(err, errcap, "%s: %s", dir, strerror(errno));
		return rc;
	}
	while ((e = readdir(d))) {
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
			trace_seterr(err, errcap, "%s: not a regular file", path);
			rc = -EINVAL;
			goto out;
		}
		if (cnt >= TRACE_MAX_VMS) {
			trace_seterr(err, errcap, "%s: more than %d files (one per VM)", dir,
			             TRACE_MAX_VMS);
			rc = -E2BIG;
			goto out;
		}
		if (cnt == cap) {
			int nc = cap ? cap * 2 : 256;
			char **nv = realloc(v, sizeof(*nv) * (size_t)nc);
			if (!nv) {
				rc = -ENOMEM;
				goto out;
			}
			v = nv;
			cap = nc;
		}
		if (!(v[cnt] = strdup(e->d_name))) {
			rc = -ENOMEM;
			goto out;
		}
		cnt++;
	}
	if (cnt == 0) {
		trace_seterr(err, errcap, "%s: no trace files", dir);
		rc = -ENOENT;
		goto out;
	}
	qsort(v, (size_t)cnt, sizeof(*v), by_name);
out:
	closedir(d);
	if (rc < 0) {
		for (int i = 0; i < cnt; i++)
			free(v[i]);
		free(v);
		if (rc == -ENOMEM)
			trace_seterr(err, errcap, "%s: out of memory", dir);
		return rc;
	}
	*names = v;
	*n = cnt;
	return 0;
}

static int alloc_vms(struct trace *t, int nvms, bool ids)
{
	t->nvms = nvms;
	t->vcpus = calloc((size_t)nvms + 1, sizeof(double));
	t->mem_mib = calloc((size_t)nvms + 1, sizeof(double));
	if (ids)
		t->ids = calloc((size_t)nvms + 1, sizeof(*t->ids));
	return t->vcpus && t->mem_mib && (!ids || t->ids) ? 0 : -ENOMEM;
}

/* ---- one file per VM (PlanetLab, Google) ---------------------------------- */

/* Reads one VM's file into col[step * RES_N ...] (grown as needed). Returns
 * the number of lines. */
static int read_vm_file(const char *path, bool google, float **col, int *cap, char *err,
                        size_t errcap)
{
	struct trace_lines *l = calloc(1, sizeof(*l));
	int n = 0, rc;

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
		const char *why = NULL;
		double cpu, mem = 100;
		if (l->len == 0) {
			trace_seterr(err, errcap, "%s:%ld: empty line", path, l->no);
			rc = -EINVAL;
			break;
		}
		rc = google ? trace_parse_google_line(l->buf, l->len, &cpu, &mem, &why)
		            : trace_parse_planetlab_line(l->buf, l->len, &cpu, &why);
		if (rc < 0) {
			trace_seterr(err, errcap, "%s:%ld: %s", path, l->no, why);
			break;
		}
		if (n >= TRACE_MAX_STEPS) {
			trace_seterr(err, errcap, "%s:%ld: more than %d lines (steps)", path, l->no,
			             TRACE_MAX_STEPS);
			rc = -E2BIG;
			break;
		}
		if (n == *cap) {
			int nc = *cap ? *cap * 2 : 512;
			float *nv = realloc(*col, sizeof(float) * RES_N * (size_t)nc);
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			*col = nv;
			*cap = nc;
		}
		(*col)[n * RES_N + RES_CPU] = (float)(cpu / 100);
		(*col)[n * RES_N + RES_MEM] = (float)(mem / 100);
		(*col)[n * RES_N + RES_NET] = 0;
		n++;
	}
	fclose(l->f);
	if (rc == 0 && n == 0) {
		trace_seterr(err, errcap, "%s: empty file", path);
		rc = -EINVAL;
	}
	free(l);
	return rc < 0 ? rc : n;
}

static int load_dir(struct trace *t, const char *dir, bool google, char *err, size_t errcap)
{
	char **names = NULL, path[4096], first[4096] = "";
	float *col = NULL;
	int n = 0, cap = 0, rc;

	memset(t, 0, sizeof(*t));
	t->step_s = TRACE_STEP_S;
	t->cur = -1;
	trace_set_name(t, google ? "google" : "planetlab", dir);
	rc = list_dir(dir, &names, &n, err, errcap);
	if (rc < 0)
		return rc;
	if ((rc = alloc_vms(t, n, true)) < 0)
		goto out;
	for (int v = 0; v < n; v++) {
		int steps;
		snprintf(path, sizeof(path), "%s/%s", dir, names[v]);
		steps = read_vm_file(path, google, &col, &cap, err, errcap);
		if (steps < 0) {
			rc = steps;
			goto out;
		}
		if (v == 0) {
			if ((long)steps * n > TRACE_MAX_SAMPLES) {
				trace_seterr(err, errcap,
				             "%s: %d files of %d lines: more than %ld samples", dir,
				             n, steps, TRACE_MAX_SAMPLES);
				rc = -E2BIG;
				goto out;
			}
			t->nsteps = steps;
			snprintf(first, sizeof(first), "%s", path);
			t->data = malloc(sizeof(float) * RES_N * (size_t)steps * (size_t)n);
			if (!t->data) {
				rc = -ENOMEM;
				goto out;
			}
		} else if (steps != t->nsteps) {
			trace_seterr(err, errcap, "%s: %d lines, expected %d like %s", path, steps,
			             t->nsteps, first);
			rc = -EINVAL;
			goto out;
		}
		for (int s = 0; s < steps; s++)
			memcpy(&t->data[((size_t)s * (size_t)n + (size_t)v) * RES_N],
			       &col[s * RES_N], sizeof(float) * RES_N);
		snprintf(t->ids[v], CLUSTER_ID_MAX, "%s", names[v]);
	}
	rc = 0;
out:
	if (rc == -ENOMEM)
		trace_seterr(err, errcap, "%s: out of memory", dir);
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(col);
	if (rc < 0)
		trace_free(t);
	return rc;
}

int trace_load_planetlab(struct trace *t, const char *dir, char *err, size_t errcap)
{
	return load_dir(t, dir, false, err, errcap);
}

int trace_load_google(struct trace *t, const char *dir, char *err, size_t errcap)
{
	return load_dir(t, dir, true, err, errcap);
}

/* ---- synthetic AR(1) ------------------------------------------------------ */

void trace_synth_defaults(struct trace_synth *s)
{
	memset(s, 0, sizeof(*s));
	s->nsteps = 288;
	s->seed = 1;
	s->lo[RES_CPU] = 0.2;
	s->hi[RES_CPU] = 0.8;
	s->lo[RES_MEM] = 0.4;
	s->hi[RES_MEM] = 0.9;
	s->phi = 0.9;
	s->sigma = 0.1;
	s->net_scale = 10000;
}

/* splitmix64 of a key: the random stream is a pure function of its key */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static double unit(uint64_t key) /* (0, 1) */
{
	return ((double)(mix(key) >> 11) + 0.5) / 9007199254740992.0;
}

static uint64_t key(uint64_t seed, uint64_t vm, uint64_t step, uint64_t res, uint64_t k)
{
	return mix(mix(mix(seed ^ 0x5eed) ^ vm) ^ (step * 8 + res * 2 + k));
}

/* Two independent N(0, 1) draws for (vm, stream) (Box-Muller). */
static void gauss2(uint64_t seed, int vm, uint64_t stream, double out[2])
{
	double u1 = unit(key(seed, (uint64_t)vm, stream, 0, 0));
	double u2 = unit(key(seed, (uint64_t)vm, stream, 0, 1));
	double r = sqrt(-2 * log(u1)), a = 6.283185307179586 * u2;

	out[0] = r * cos(a);
	out[1] = r * sin(a);
}

int trace_synthetic(struct trace *t, const struct trace_synth *s, char *err, size_t errcap)
{
	size_t n;

	memset(t, 0, sizeof(*t));
	if (s->nvms <= 0 || s->nvms > TRACE_MAX_VMS || s->nsteps <= 0 ||
	    s->nsteps > TRACE_MAX_STEPS) {
		trace_seterr(err, errcap,
		             "synthetic: %d VMs and %d steps: need 1..%d VMs, 1..%d steps", s->nvms,
		             s->nsteps, TRACE_MAX_VMS, TRACE_MAX_STEPS);
		return -EINVAL;
	}
	for (int r = 0; r < RES_N; r++)
		if (!(s->lo[r] >= 0 && s->lo[r] <= s->hi[r] && s->hi[r] <= 1)) {
			trace_seterr(err, errcap, "synthetic: mean range %g:%g outside 0..1",
			             s->lo[r], s->hi[r]);
			return -EINVAL;
		}
	if (!(s->phi >= -1 && s->phi <= 1) || !(s->sigma >= 0 && s->sigma <= 1)) {
		trace_seterr(err, errcap, "synthetic: phi %g (need -1..1), sigma %g (need 0..1)",
		             s->phi, s->sigma);
		return -EINVAL;
	}
	n = (size_t)s->nvms * RES_N;
	t->synthetic = true;
	t->syn = *s;
	t->step_s = TRACE_STEP_S;
	t->nsteps = s->nsteps;
	t->cur = -1;
	snprintf(t->name, sizeof(t->name), "synthetic-%d", s->nvms);
	t->mean = malloc(sizeof(double) * n);
	t->x = malloc(sizeof(double) * n);
	t->buf = malloc(sizeof(float) * n);
	if (alloc_vms(t, s->nvms, false) < 0 || !t->mean || !t->x || !t->buf) {
		trace_free(t);
		trace_seterr(err, errcap, "synthetic: out of memory for %d VMs", s->nvms);
		return -ENOMEM;
	}
	for (int v = 0; v < s->nvms; v++)
		for (int r = 0; r < RES_N; r++)
			t->mean[v * RES_N + r] =
			    s->lo[r] +
			    (s->hi[r] - s->lo[r]) *
			        unit(key(s->seed, (uint64_t)v, (uint64_t)-1, (uint64_t)r, 0));
	return 0;
}

const float *trace_step(struct trace *t, int step)
{
	const struct trace_synth *s = &t->syn;

	if (step < 0 || step >= t->nsteps)
		return NULL;
	if (!t->synthetic)
		return &t->data[(size_t)step * (size_t)t->nvms * RES_N];
	if (step == t->cur)
		return t->buf;
	if (step != 0 && step != t->cur + 1)
		return NULL;
	for (int v = 0; v < t->nvms; v++) {
		double z[4] = {0, 0, 0, 0};
		if (step > 0) {
			gauss2(s->seed, v, (uint64_t)step, z); /* cpu, mem */
			if (s->hi[RES_NET] > 0)
				gauss2(s->seed, v, (uint64_t)step | 1ULL << 40, z + 2);
		}
		for (int r = 0; r < RES_N; r++) {
			size_t i = (size_t)v * RES_N + (size_t)r;
			double m = t->mean[i], x;
			if (step == 0 || s->hi[r] <= 0) {
				x = m; /* a resource whose mean range is 0:0 stays at 0 */
			} else {
				double sd = r == RES_CPU ? s->sigma : s->sigma / 4;
				x = m + s->phi * (t->x[i] - m) + sd * z[r];
			}
			x = x < 0 ? 0 : x > 1 ? 1 : x;
			t->x[i] = x;
			t->buf[i] = (float)(r == RES_NET ? x * s->net_scale : x);
		}
	}
	t->cur = step;
	return t->buf;
}
