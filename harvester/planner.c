/* planner.c - pre-warm targets: which function, how many warm instances, on which NF core. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "nemo/harvester.h"

#define DEFAULT_HEADROOM    0.8
#define DEFAULT_TARGET_UTIL 0.5
#define DEFAULT_HORIZON_S   1.0
#define DEFAULT_MIN_DEMAND  0.01

struct core_left {
	double cycles; /* uncommitted capacity, cycles/s */
	uint64_t mem;
	uint32_t instances;
};

static uint32_t instances_needed(const struct hv_plan_function *f, const struct hv_plan_limits *l)
{
	double n;

	if (f->demand < l->min_demand)
		return 0;
	/* Little's law: arrivals/s times service time, at the utilisation we allow an instance */
	n = ceil(f->demand * f->run_cycles / (l->cycles_hz * l->target_util) - 1e-9);
	if (n < 1.0)
		n = 1.0;
	if (f->max_instances && n > f->max_instances)
		n = f->max_instances;
	return (uint32_t)n;
}

static int add_target(struct hv_plan_target *t, uint32_t *n, uint32_t max, uint32_t fn,
		      uint32_t cpu)
{
	for (uint32_t i = 0; i < *n; i++) {
		if (t[i].fn == fn && t[i].cpu == cpu) {
			t[i].count++;
			return 0;
		}
	}
	if (*n == max)
		return -ENOSPC;
	t[*n] = (struct hv_plan_target){.fn = fn, .cpu = cpu, .count = 1};
	(*n)++;
	return 0;
}

int hv_plan_prewarm(const struct hv_plan_core *cores, uint32_t n_cores,
		    const struct hv_plan_function *fns, uint32_t n_fns,
		    const struct hv_plan_limits *limits, struct hv_plan_target *targets,
		    uint32_t max_targets, uint32_t *unplaced)
{
	struct hv_plan_limits l = *limits;
	struct core_left *left;
	uint32_t *order, n_targets = 0, missed = 0;
	int rc = 0;

	if (!(l.cycles_hz > 0.0) || l.headroom < 0.0 || l.headroom > 1.0 || l.target_util < 0.0 ||
	    l.target_util > 1.0 || l.horizon_s < 0.0 || (n_cores && !cores) || (n_fns && !fns))
		return -EINVAL;
	if (l.headroom == 0.0)
		l.headroom = DEFAULT_HEADROOM;
	if (l.target_util == 0.0)
		l.target_util = DEFAULT_TARGET_UTIL;
	if (l.horizon_s == 0.0)
		l.horizon_s = DEFAULT_HORIZON_S;
	if (l.min_demand <= 0.0)
		l.min_demand = DEFAULT_MIN_DEMAND;
	for (uint32_t f = 0; f < n_fns; f++)
		if (fns[f].demand < 0.0 || fns[f].run_cycles < 0.0 || fns[f].init_cycles < 0.0)
			return -EINVAL;

	left = calloc(n_cores ? n_cores : 1, sizeof(*left));
	order = calloc(n_fns ? n_fns : 1, sizeof(*order));
	if (!left || !order) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t c = 0; c < n_cores; c++) {
		left[c].cycles = cores[c].spare_cps > 0.0 ? l.headroom * cores[c].spare_cps : 0.0;
		left[c].mem = cores[c].mem_free;
		left[c].instances = cores[c].max_instances ? cores[c].max_instances : UINT32_MAX;
	}
	/* heaviest first: it has the fewest places it fits; insertion sort, n is small */
	for (uint32_t f = 0; f < n_fns; f++) {
		uint32_t k = f;

		while (k > 0 && fns[order[k - 1]].demand * fns[order[k - 1]].run_cycles <
					fns[f].demand * fns[f].run_cycles) {
			order[k] = order[k - 1];
			k--;
		}
		order[k] = f;
	}

	for (uint32_t i = 0; i < n_fns; i++) {
		const struct hv_plan_function *fn = &fns[order[i]];
		uint32_t need = instances_needed(fn, &l);
		/* each instance carries its share of the load, plus its warm-up spread out */
		double per = need ? fn->demand * fn->run_cycles / need : 0.0;
		double cost = per + fn->init_cycles / l.horizon_s;

		for (uint32_t k = 0; k < need; k++) {
			int best = -1;

			for (uint32_t c = 0; c < n_cores; c++) {
				if (left[c].cycles < cost || left[c].cycles <= 0.0 ||
				    left[c].mem < fn->mem_bytes || left[c].instances == 0)
					continue;
				if (best < 0 || left[c].cycles > left[best].cycles)
					best = (int)c;
			}
			if (best < 0) {
				missed++;
				continue;
			}
			rc = add_target(targets, &n_targets, max_targets, order[i],
					cores[best].cpu);
			if (rc < 0)
				goto out;
			left[best].cycles -= cost;
			left[best].mem -= fn->mem_bytes;
			left[best].instances--;
		}
	}
	rc = (int)n_targets;
out:
	if (unplaced)
		*unplaced = missed;
	free(left);
	free(order);
	return rc;
}
