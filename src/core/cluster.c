#include "core/cluster.h"

#include <string.h>

void cluster_host_defaults(struct cl_host *h)
{
	memset(h, 0, sizeof(*h));
	h->state = HOST_UP;
	for (int r = 0; r < RES_N; r++)
		h->thr[r] = 0.75;
	h->overcommit_cpu = 4;
	h->overcommit_mem = 1;
}

void cluster_vm_defaults(struct cl_vm *v)
{
	memset(v, 0, sizeof(*v));
	v->group = -1;
	v->anti_group = -1;
}

static const char *const automation_names[CL_AUTOMATION_N] = {"auto", "manual", "off"};

const char *cluster_automation_name(int a)
{
	return a >= 0 && a < CL_AUTOMATION_N ? automation_names[a] : "?";
}

int cluster_automation_parse(const char *s)
{
	for (int a = 0; s && a < CL_AUTOMATION_N; a++)
		if (strcmp(s, automation_names[a]) == 0)
			return a;
	return -1;
}

double cluster_load_volume(const double load[RES_N], const double cap[RES_N])
{
	double u[RES_N];

	for (int r = 0; r < RES_N; r++)
		u[r] = cap[r] > 0 ? load[r] / cap[r] : 0;
	return cluster_volume(u);
}

double cluster_host_limit(const struct cl_host *h, int r)
{
	double l = h->cap[r] * (1 - h->headroom[r]);

	return h->thr[r] * h->cap[r] < l ? h->thr[r] * h->cap[r] : l;
}

double cluster_volume(const double util[RES_N])
{
	double vol = 1;

	for (int r = 0; r < RES_N; r++) {
		double u = util[r];
		if (!(u > 0)) /* negative or NaN */
			u = 0;
		if (u > CLUSTER_UTIL_CLAMP)
			u = CLUSTER_UTIL_CLAMP;
		vol /= 1 - u;
	}
	return vol;
}

double cluster_migration_seconds(double mem_mib, double dirty_mbit, double link_mbit)
{
	double eff = link_mbit - (dirty_mbit > 0 ? dirty_mbit : 0);

	if (link_mbit <= 0 || eff <= 0)
		return -1;
	/* the first full copy, then each round resends what was dirtied meanwhile:
	 * a geometric series with ratio dirty/link */
	return mem_mib * 8.0 / eff;
}
