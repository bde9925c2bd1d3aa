/* resize.c - resize in place; see resize.h for the rules. */
#include "core/resize.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-9

static double util_of(const struct resize_view *w, int h, int r)
{
	double cap = w->c->hosts[h].cap[r];

	return cap > 0 ? w->load[h][r] / cap : 0;
}

static double volume_of(const struct resize_view *w, int h)
{
	return cluster_load_volume(w->load[h], w->c->hosts[h].cap);
}

static bool resizable(const struct resize_view *w, int v)
{
	const struct cl_vm *vm = &w->c->vms[v];
	const struct cl_host *H = &w->c->hosts[vm->host];

	return !vm->excluded && vm->automation != CL_OFF && !vm->migrating && !w->planned[v] &&
	       H->state == HOST_UP && !H->excluded;
}

/* The load the VM is expected to add at allocation `to`: its demand grows
 * into the new room up to RESIZE_GROW_BY times what it uses now. */
static double extra_at(double demand, double to)
{
	double want = demand * RESIZE_GROW_BY, e = (to < want ? to : want) - demand;

	return e > 0 ? e : 0;
}

static bool room_for(const struct resize_view *w, int h, int r, double extra, double alloc_extra,
                     double alloc_now, double overcommit)
{
	const struct cl_host *H = &w->c->hosts[h];

	if (H->cap[r] <= 0)
		return false;
	if (extra > EPS && w->load[h][r] + extra > cluster_host_limit(H, r) + EPS)
		return false;
	return alloc_now + alloc_extra <= H->cap[r] * overcommit + EPS;
}

static double round_up(double x, double step)
{
	return ceil(x / step - EPS) * step;
}

/* The action of one resize, its effect applied to the projection. */
static int record(struct resize_view *w, int v, int res, double vcpus, double mem, double dcpu,
                  double dmem, const char *why)
{
	const struct cl_vm *vm = &w->c->vms[v];
	int h = vm->host;
	struct plan_action *a = plan_action_add(w->out);
	double ub[RES_N];

	if (!a)
		return -ENOMEM;
	for (int r = 0; r < RES_N; r++)
		ub[r] = util_of(w, h, r);
	a->kind = PLAN_RESIZE;
	a->vm = v;
	a->from = a->to = h;
	a->swap_id = -1;
	a->res = res;
	a->vcpus_before = vm->vcpus;
	a->vcpus_after = vcpus;
	a->mem_before = vm->mem_mib;
	a->mem_after = mem;
	a->src_vol_before = a->dst_vol_before = volume_of(w, h);
	w->load[h][RES_CPU] += dcpu;
	w->fc[h][RES_CPU] += dcpu;
	w->load[h][RES_MEM] += dmem;
	w->fc[h][RES_MEM] += dmem;
	for (int r = RES_CPU; r <= RES_MEM; r++) {
		if (w->load[h][r] < 0)
			w->load[h][r] = 0;
		if (w->fc[h][r] < 0)
			w->fc[h][r] = 0;
	}
	w->acpu[h] += vcpus - vm->vcpus;
	w->amem[h] += mem - vm->mem_mib;
	a->src_vol_after = a->dst_vol_after = volume_of(w, h);
	w->planned[v] = true;
	snprintf(a->reason, sizeof(a->reason), "%s; %s %s %.0f%% -> %.0f%% of %g%s", why,
	         w->c->hosts[h].id, res == RES_CPU ? "cpu" : "mem", ub[res] * 100,
	         util_of(w, h, res) * 100, w->c->hosts[h].cap[res],
	         res == RES_CPU ? " cores" : " MiB");
	return 0;
}

/* Growth of VM v, if it asks for it and its host has room. */
static int grow(struct resize_view *w, int v)
{
	const struct cl_vm *vm = &w->c->vms[v];
	const struct cl_host *H = &w->c->hosts[vm->host];
	double dc = vm->demand[RES_CPU], dm = vm->demand[RES_MEM];
	double vcpus = vm->vcpus, mem = vm->mem_mib, ec = 0, em = 0;
	char why[192] = "", part[96];
	int res = -1;

	if (vm->max_vcpus > vm->vcpus && vm->vcpus > 0 && dc >= RESIZE_GROW_AT * vm->vcpus) {
		double want = ceil(dc * RESIZE_GROW_BY - EPS);
		if (want < vm->vcpus + 1)
			want = vm->vcpus + 1;
		if (want > vm->max_vcpus)
			want = floor(vm->max_vcpus + EPS);
		for (double to = want; to >= vm->vcpus + 1 - EPS; to -= 1)
			if (room_for(w, vm->host, RES_CPU, extra_at(dc, to), to - vm->vcpus,
			             w->acpu[vm->host], H->overcommit_cpu)) {
				vcpus = to;
				ec = extra_at(dc, to);
				break;
			}
		if (vcpus > vm->vcpus) {
			res = RES_CPU;
			snprintf(why, sizeof(why),
			         "vm %s uses %.2f of its %g vCPU%s: %g -> %g vCPUs", vm->id, dc,
			         vm->vcpus, vm->vcpus == 1 ? "" : "s", vm->vcpus, vcpus);
		}
	}
	if (vm->max_mem_mib > vm->mem_mib && vm->mem_mib > 0 &&
	    dm >= RESIZE_GROW_AT * vm->mem_mib) {
		double want =
		    round_up(fmax(vm->mem_mib + RESIZE_GROW_MEM, vm->mem_mib * RESIZE_GROW_BY),
		             RESIZE_MEM_STEP);
		if (want > vm->max_mem_mib)
			want = vm->max_mem_mib;
		for (double to = want; to > vm->mem_mib + EPS;
		     to = round_up(to - RESIZE_MEM_STEP, RESIZE_MEM_STEP))
			if (room_for(w, vm->host, RES_MEM, extra_at(dm, to), to - vm->mem_mib,
			             w->amem[vm->host], H->overcommit_mem)) {
				mem = to;
				em = extra_at(dm, to);
				break;
			}
		if (mem > vm->mem_mib) {
			snprintf(part, sizeof(part), "%s%g -> %g MiB", why[0] ? ", " : "",
			         vm->mem_mib, mem);
			if (res < 0) {
				res = RES_MEM;
				snprintf(why, sizeof(why), "vm %s uses %.0f of its %g MiB: %s",
				         vm->id, dm, vm->mem_mib, part);
			} else {
				strncat(why, part, sizeof(why) - strlen(why) - 1);
			}
		}
	}
	if (res < 0)
		return 0;
	return record(w, v, res, vcpus, mem, ec, em, why);
}

/* The memory VM v can give back through its balloon (0: none worth it), and
 * the size it would keep. */
static double reclaimable(const struct resize_view *w, int v, double *keep)
{
	const struct cl_vm *vm = &w->c->vms[v];
	double d = vm->demand[RES_MEM], floor_mib, k;

	if (vm->max_mem_mib <= 0 || vm->mem_mib <= 0 || d > RESIZE_IDLE_AT * vm->mem_mib)
		return 0;
	floor_mib = fmax(RESIZE_MEM_FLOOR, fmax(vm->max_mem_mib, vm->mem_mib) / 4);
	k = round_up(d + fmax(d / 5, RESIZE_MEM_STEP), RESIZE_MEM_STEP);
	if (k < floor_mib)
		k = floor_mib;
	if (vm->mem_mib - k < RESIZE_MIN_RECLAIM - EPS)
		return 0;
	*keep = k;
	return vm->mem_mib - k;
}

static int reclaim_host(struct resize_view *w, int h)
{
	const struct cl_host *H = &w->c->hosts[h];
	double keep, thr = H->thr[RES_MEM] * H->cap[RES_MEM], *key = w->keybuf;
	int n = 0, *buf = w->vmbuf;

	for (int v = 0; v < w->c->nvms; v++) {
		double k;
		if (w->c->vms[v].host != h || !resizable(w, v) ||
		    (k = reclaimable(w, v, &keep)) <= 0)
			continue;
		/* most reclaimable first; ties by index (insertion keeps it) */
		int j = n++;
		while (j > 0 && key[j - 1] < k) {
			buf[j] = buf[j - 1];
			key[j] = key[j - 1];
			j--;
		}
		buf[j] = v;
		key[j] = k;
	}
	for (int i = 0; i < n && w->load[h][RES_MEM] > thr + EPS; i++) {
		const struct cl_vm *vm = &w->c->vms[buf[i]];
		char why[192];
		double back = key[i];
		keep = vm->mem_mib - back;
		snprintf(why, sizeof(why),
		         "%s hot on mem (%.0f%% > %.0f%%): vm %s uses %.0f of its %g MiB: "
		         "balloon to %g MiB, %.0f MiB back",
		         H->id, util_of(w, h, RES_MEM) * 100, H->thr[RES_MEM] * 100, vm->id,
		         vm->demand[RES_MEM], vm->mem_mib, keep, back);
		if (record(w, buf[i], RES_MEM, vm->vcpus, keep, 0, -back, why) < 0)
			return -ENOMEM;
	}
	return 0;
}

int resize_plan(struct resize_view *w)
{
	const struct cluster *c = w->c;
	int rc = 0;

	for (int h = 0; h < c->nhosts && rc == 0; h++) {
		const struct cl_host *H = &c->hosts[h];
		if (H->state == HOST_UP && !H->excluded && H->cap[RES_MEM] > 0 &&
		    (H->hot[RES_MEM] ||
		     w->load[h][RES_MEM] > H->thr[RES_MEM] * H->cap[RES_MEM] + EPS))
			rc = reclaim_host(w, h);
	}
	for (int v = 0; v < c->nvms && rc == 0; v++)
		if (resizable(w, v))
			rc = grow(w, v);
	return rc;
}
