/* reclaim.c - take a core's sandboxes off it when its spare stays low, give it back with hysteresis. */
#include <errno.h>

#include "nemo/scheduler.h"

int sched_reclaim_config_check(const struct sched_reclaim_config *cfg)
{
	if (!cfg || cfg->threshold < 0.0 || cfg->threshold > 1.0 || cfg->release < 0.0 ||
	    cfg->release > 1.0 || cfg->release < cfg->threshold || cfg->k_windows == 0 ||
	    cfg->release_windows == 0 ||
	    (cfg->prefer == SCHED_RECLAIM_MOVE &&
	     (cfg->freeze_below < 0.0 || cfg->freeze_below > cfg->threshold)) ||
	    (cfg->prefer != SCHED_RECLAIM_FREEZE && cfg->prefer != SCHED_RECLAIM_MOVE))
		return -EINVAL;
	return 0;
}

static int move_target(const struct sched_reclaim_config *cfg,
		       const struct sched_reclaim_core *cores, int idx,
		       const struct sched_core_view *views, int n)
{
	int best = -1;

	for (int i = 0; i < n; i++) {
		if (i == idx || cores[i].reclaimed || views[i].reclaimed ||
		    views[i].spare_pred < cfg->move_min_spare)
			continue;
		if (best < 0 || views[i].spare_pred > views[best].spare_pred)
			best = i;
	}
	return best;
}

struct sched_reclaim_decision sched_reclaim_step(const struct sched_reclaim_config *cfg,
						 struct sched_reclaim_core *cores, int idx,
						 double spare_ratio,
						 const struct sched_core_view *views, int n)
{
	struct sched_reclaim_core *c = &cores[idx];
	struct sched_reclaim_decision d = {SCHED_RECLAIM_NONE, -1, false};

	c->below = spare_ratio < cfg->threshold ? c->below + 1 : 0;
	c->starved = spare_ratio < cfg->freeze_below ? c->starved + 1 : 0;
	if (c->reclaimed) {
		c->held++;
		c->spare_avg += 2.0 / (cfg->release_windows + 1.0) * (spare_ratio - c->spare_avg);
	}
	if (!c->reclaimed && c->below >= cfg->k_windows) {
		bool move = cfg->prefer == SCHED_RECLAIM_MOVE;
		int t = move && views ? move_target(cfg, cores, idx, views, n) : -1;

		/* nowhere to move them: freezing helps only an NF that needs the whole core */
		if (t < 0 && move && c->starved < cfg->k_windows)
			return d;
		d.action = t >= 0 ? SCHED_RECLAIM_MOVE : SCHED_RECLAIM_FREEZE;
		d.target_cpu = t >= 0 ? views[t].cpu : -1;
		d.starved = t < 0 && move;
		c->reclaimed = true;
		c->reclaims++;
		c->last_action = d.action;
		c->held = 0;
		c->spare_avg = spare_ratio;
	} else if (c->reclaimed && c->held >= cfg->release_windows &&
		   c->spare_avg >= cfg->release) {
		/* what moved away stays where it runs; only frozen work waits here for the core */
		d.action = c->last_action == SCHED_RECLAIM_FREEZE ? SCHED_RECLAIM_THAW
								  : SCHED_RECLAIM_NONE;
		c->reclaimed = false;
		c->below = 0;
		c->last_action = d.action;
	}
	return d;
}

double sched_reclaim_spare_ratio(uint64_t total, uint64_t busy, uint64_t fn, bool resident)
{
	uint64_t spare;

	if (!total)
		return 0.0;
	busy = busy < total ? busy : total;
	spare = total - busy;
	if (resident)
		spare += fn < busy ? fn : busy;
	return (double)spare / (double)total;
}
