/* dispatch.c - where an invocation runs: warm instance, cold start with spare, or overflow. */
#include <errno.h>

#include "nemo/scheduler.h"

#define DEFAULT_MIN_SPARE 0.05

static bool usable(const struct sched_core_view *c, double min_spare)
{
	/* a cold start adds a runnable thread; a warm instance wakes one: both count */
	return !c->reclaimed && c->spare_pred >= min_spare &&
	       sched_thread_cap_allows(c->thread_cap, c->runnable, 1);
}

static int most_spare_place(const struct sched_dispatch_config *cfg,
			    const struct sched_core_view *cores, int n_cores, uint64_t now_ns,
			    struct sched_placement *out)
{
	double min_spare = cfg->min_spare > 0.0 ? cfg->min_spare : DEFAULT_MIN_SPARE;
	int warm = -1, cold = -1;

	if (n_cores < 0 || (n_cores && !cores) || !out)
		return -EINVAL;
	for (int i = 0; i < n_cores; i++) {
		const struct sched_core_view *c = &cores[i];

		if (!usable(c, min_spare))
			continue;
		if (c->warm_idle && (warm < 0 || c->spare_pred > cores[warm].spare_pred))
			warm = i;
		if (cold < 0 || c->spare_pred > cores[cold].spare_pred)
			cold = i;
	}
	if (warm >= 0) {
		*out = (struct sched_placement){SCHED_PLACE_WARM, cores[warm].cpu, warm, 0};
		return 0;
	}
	if (cold >= 0) {
		*out = (struct sched_placement){SCHED_PLACE_COLD, cores[cold].cpu, cold, 0};
		return 0;
	}
	if (cfg->overflow == SCHED_OVERFLOW_QUEUE) {
		*out = (struct sched_placement){SCHED_PLACE_QUEUE, -1, -1,
						now_ns + cfg->deadline_ns};
		return 0;
	}
	if (cfg->overflow != SCHED_OVERFLOW_HOUSEKEEPING || cfg->hk_cpu < 0)
		return -EINVAL;
	*out = (struct sched_placement){SCHED_PLACE_HOUSEKEEPING, cfg->hk_cpu, -1, 0};
	return 0;
}

const struct sched_dispatch_ops sched_dispatch_most_spare = {
	.name = "most_spare",
	.place = most_spare_place,
};
