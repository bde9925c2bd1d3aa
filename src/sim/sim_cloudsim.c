/* sim_cloudsim.c - `loadease sim --model cloudsim`: picks the model's
 * policies, runs each over the trace (cloudsim.h) and prints the table and
 * the RESULT lines. */
#include "sim/sim.h"

#include <errno.h>
#include <string.h>

static void names(char *buf, size_t cap)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; cs_policy_list[i] && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "",
		                      cs_policy_list[i]->name);
}

int sim_cloudsim_pick(const char *s, const struct cs_policy_ops **ps, int max)
{
	char buf[256], have[128], *save = NULL, *tok;
	const char *picked[64];
	int n = 0;

	if (max > 64)
		max = 64;

	names(have, sizeof(have));
	if (!*s || strcmp(s, "all") == 0) {
		for (int i = 0; cs_policy_list[i] && n < max; i++)
			ps[n++] = cs_policy_list[i];
		return n;
	}
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		const struct cs_policy_ops *p = cs_policy_find(tok);
		if (!p && policy_find(tok)) {
			fprintf(stderr,
			        "loadease sim: --policy %s: not in the cloudsim model (it has %s, "
			        "all; %s is a policy of --model default)\n",
			        tok, have, tok);
			return -EINVAL;
		}
		if (!p) {
			fprintf(stderr,
			        "loadease sim: --policy: unknown policy '%s' (--model cloudsim "
			        "has %s, all)\n",
			        tok, have);
			return -EINVAL;
		}
		if (sim_pick_add(picked, n, max, p->name) < 0)
			return -EINVAL;
		ps[n++] = p;
	}
	return n;
}

int sim_cloudsim_param(const struct cs_policy_ops *p, double x, struct cs_config *c)
{
	if (p == &cs_policy_thr_mmt) {
		if (!(x > 0 && x <= 1))
			goto bad;
		c->thr = x;
	} else if (p == &cs_policy_lr_mmt) {
		if (!(x > 0 && x <= 100))
			goto bad;
		c->lr_safety = x;
	} else if (p == &cs_policy_mad_mmt || p == &cs_policy_iqr_mmt) {
		if (!(x >= 0 && x <= 100))
			goto bad;
		if (p == &cs_policy_mad_mmt)
			c->mad_safety = x;
		else
			c->iqr_safety = x;
	} else {
		fprintf(stderr, "loadease sim: --param: %s has no parameter\n", p->name);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "loadease sim: --param '%g': %s needs %s\n", x, p->name,
	        p == &cs_policy_thr_mmt  ? "a utilisation threshold in 0..1 (CloudSim: 0.8)"
	        : p == &cs_policy_lr_mmt ? "a safety parameter above 0, at most 100 (1.2)"
	                                 : "a safety parameter in 0..100 (MAD 2.5, IQR 1.5)");
	return -EINVAL;
}

static int write_summary(const char *dir, const char *trace, const struct cs_policy_ops **ps,
                         const struct cs_summary *s, const double *wall, int n)
{
	char path[4096];
	FILE *f = sim_open_out(dir, "summary.csv", path, sizeof(path));

	if (!f)
		return -EIO;
	fprintf(f, "trace,model,policy,hosts,vms,energy_kwh,slatah,pdm,slav,esv,migrations,"
	           "host_shutdowns,vms_left,plan_ms_mean,plan_ms_max,run_s\n");
	for (int i = 0; i < n; i++)
		fprintf(
		    f,
		    "%s,cloudsim,%s,%d,%d,%.8f,%.10f,%.10f,%.12f,%.12f,%ld,%ld,%d,%.3f,%.3f,%.3f\n",
		    trace, ps[i]->name, s[i].hosts, s[i].vms, s[i].energy_kwh, s[i].slatah,
		    s[i].pdm, s[i].slav, s[i].esv, s[i].migrations, s[i].host_shutdowns,
		    s[i].vms_left, s[i].plan_ms_mean, s[i].plan_ms_max, wall[i]);
	if (fclose(f) != 0) {
		fprintf(stderr, "loadease sim: %s: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

int sim_cloudsim(struct trace *t, const struct cs_config *cfg, const struct cs_policy_ops **ps,
                 int np, const char *outdir, bool quiet)
{
	struct cs_model m;
	struct cs_summary s[16];
	double wall[16];
	char err[1024];
	int rc;

	if (np > 16)
		np = 16;
	if ((rc = cs_model_init(&m, cfg, t, err, sizeof(err))) < 0) {
		fprintf(stderr, "loadease sim: %s: %s\n", t->name, err);
		return 1;
	}
	if (!quiet)
		fprintf(stderr,
		        "sim: %s: CloudSim 3.0.3 model, %d VMs, %d hosts; running %d policies\n",
		        t->name, m.nvms, m.nhosts, np);
	for (int i = 0; i < np; i++) {
		FILE *f = NULL;
		char file[128], path[4096];
		double a = sim_mono_s();
		if (outdir) {
			snprintf(file, sizeof(file), "steps-%s.csv", ps[i]->name);
			if (!(f = sim_open_out(outdir, file, path, sizeof(path)))) {
				rc = -EIO;
				goto out;
			}
			fputs(CS_STEPS_HEADER, f);
		}
		rc = cs_run(&m, ps[i], f, &s[i], err, sizeof(err));
		wall[i] = sim_mono_s() - a;
		if (rc < 0)
			fprintf(stderr, "loadease sim: %s: %s\n", t->name, err);
		if (f && fclose(f) != 0 && rc == 0) {
			fprintf(stderr, "loadease sim: %s: %s\n", path, strerror(errno));
			rc = -EIO;
		}
		if (rc < 0)
			goto out;
		if (!quiet)
			fprintf(stderr, "sim: %s: %s done in %.2f s\n", t->name, ps[i]->name,
			        wall[i]);
	}
	printf("trace %s: %d VMs on %d hosts, CloudSim 3.0.3 model (PlanetLab power "
	       "experiments), %d samples of 300 s\n",
	       t->name, m.nvms, m.nhosts, m.nsamples);
	printf("%-8s %10s %8s %9s %11s %10s %10s %9s %8s %8s\n", "policy", "energy_kWh", "slatah",
	       "pdm", "slav", "esv", "migrations", "shutdowns", "vms_end", "run_s");
	for (int i = 0; i < np; i++)
		printf("%-8s %10.2f %7.3f%% %8.4f%% %10.5f%% %10.6f %10ld %9ld %8d %8.2f\n",
		       ps[i]->name, s[i].energy_kwh, 100 * s[i].slatah, 100 * s[i].pdm,
		       100 * s[i].slav, s[i].esv, s[i].migrations, s[i].host_shutdowns,
		       s[i].vms_left, wall[i]);
	for (int i = 0; i < np; i++)
		if (s[i].refused)
			printf("note: %s proposed %ld migrations the model refused (VM gone or "
			       "migrating, or to its own host)\n",
			       ps[i]->name, s[i].refused);
	if (outdir && write_summary(outdir, t->name, ps, s, wall, np) < 0) {
		rc = -EIO;
		goto out;
	}
	for (int i = 0; i < np; i++)
		printf("RESULT sim trace=%s model=cloudsim policy=%s hosts=%d vms=%d "
		       "energy_kwh=%.4f slatah=%.6f pdm=%.8f slav=%.10f esv=%.8f migrations=%ld "
		       "host_shutdowns=%ld\n",
		       t->name, ps[i]->name, s[i].hosts, s[i].vms, s[i].energy_kwh, s[i].slatah,
		       s[i].pdm, s[i].slav, s[i].esv, s[i].migrations, s[i].host_shutdowns);
	rc = 0;
out:
	cs_model_free(&m);
	return rc < 0 ? 1 : 0;
}
