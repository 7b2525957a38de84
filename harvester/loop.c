/* loop.c - the harvest loop: sample the NF cores, predict their spare, forecast demand, plan. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/harvester.h"
#include "nemo/log.h"

#define HL_LOG	  "harvester"
#define HL_SLOW_S 20.0 /* time constant of the slow arrival rate that keeps pre-warm targets */

struct hl_core {
	uint32_t cpu;
	struct hv_predictor *pred;
	uint64_t seen_seq;
	bool floor_on; /* the NF lcore was asked for long sleeps */
};

struct hl_fn {
	char name[64];
	uint64_t arrivals; /* since the last forecast interval */
	struct hv_demand demand;
	double rate_slow; /* arrivals per second, smoothed over HL_SLOW_S: on-off demand */
	double run_ns;	  /* smoothed run time of one invocation */
	double init_ns;	  /* smoothed create + init of a cold start */
};

struct hv_loop {
	struct hv_loop_config cfg;
	struct hv_loop_ops ops;
	void *arg;
	const struct hv_predictor_ops *pops;
	struct hv_sampler *sampler;
	pthread_t loop_thread, plan_thread;
	bool plan_started;
	atomic_bool stop;
	struct hl_core cores[HV_MAX_CORES]; /* the loop thread's only */
	uint32_t n_cores;
	pthread_mutex_t fn_lock; /* fns, n_fns */
	struct hl_fn fns[HV_LOOP_MAX_FNS];
	int n_fns;
};

static struct hl_core *core_of(struct hv_loop *l, uint32_t cpu)
{
	struct hl_core *c;

	for (uint32_t i = 0; i < l->n_cores; i++)
		if (l->cores[i].cpu == cpu)
			return &l->cores[i];
	if (l->n_cores >= HV_MAX_CORES)
		return NULL;
	c = &l->cores[l->n_cores];
	memset(c, 0, sizeof(*c));
	c->cpu = cpu;
	c->pred = l->pops->create(NULL);
	if (!c->pred)
		return NULL;
	l->n_cores++;
	return c;
}

/*
 * While sandboxes work on the core the arbiter asks for a sleep floor (harvest_channel.h says
 * why); the request is a lease renewed every window and withdrawn when they stop, so an NF
 * with nothing beside it keeps its short sleeps and its latency.
 */
static void sleep_floor(struct hv_loop *l, struct hl_core *c, uint32_t idx, int64_t floor_ns)
{
	uint64_t lease_ns = 25ull * l->cfg.period_ms * 1000000ull;

	if (floor_ns < 0 || (!floor_ns && !c->floor_on))
		return;
	if (!hv_sampler_set_sleep_floor(l->sampler, idx, (uint64_t)floor_ns, lease_ns))
		c->floor_on = floor_ns > 0;
}

static void *loop_main(void *arg)
{
	struct hv_loop *l = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&l->stop)) {
		/* every core, fresh or not: a vanished NF shows as a core with no fresh window */
		hv_sampler_sample(l->sampler, nemo_now_ns());
		for (uint32_t i = 0; i < hv_sampler_nb_cores(l->sampler); i++) {
			const struct hv_core_sample *smp = hv_sampler_core(l->sampler, i);
			struct hl_core *c = smp ? core_of(l, smp->cpu) : NULL;
			struct hv_core_view v = {.smp = smp};

			if (!c)
				continue;
			if (smp->state != HV_CORE_UP) {
				c->floor_on = false;
				l->ops.core(l->arg, &v);
				continue;
			}
			if (smp->window_seq == c->seen_seq)
				continue;
			c->seen_seq = smp->window_seq;
			l->pops->observe(c->pred, smp->w.spare_ratio);
			v.spare_pred = l->pops->predict(c->pred, HV_LOOP_HORIZON);
			v.fresh = true;
			sleep_floor(l, c, i, l->ops.core(l->arg, &v));
		}
		l->ops.pass(l->arg);
		nemo_timespec_add_ns(&next, (uint64_t)l->cfg.period_ms * 1000000ull);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	return NULL;
}

/* ---- demand forecast and pre-warm targets --------------------------------------------------- */

/* Under l->fn_lock. */
static struct hl_fn *fn_get(struct hv_loop *l, const char *name)
{
	for (int i = 0; i < l->n_fns; i++)
		if (!strcmp(l->fns[i].name, name))
			return &l->fns[i];
	if (l->n_fns >= HV_LOOP_MAX_FNS)
		return NULL;
	memset(&l->fns[l->n_fns], 0, sizeof(l->fns[0]));
	snprintf(l->fns[l->n_fns].name, sizeof(l->fns[0].name), "%s", name);
	hv_demand_init(&l->fns[l->n_fns].demand, 0.5);
	return &l->fns[l->n_fns++];
}

void hv_loop_arrival(struct hv_loop *l, const char *fn_name)
{
	struct hl_fn *fn;

	pthread_mutex_lock(&l->fn_lock);
	fn = fn_get(l, fn_name);
	if (fn)
		fn->arrivals++;
	pthread_mutex_unlock(&l->fn_lock);
}

void hv_loop_cost(struct hv_loop *l, const char *fn_name, uint64_t run_ns, uint64_t init_ns)
{
	struct hl_fn *fn;

	pthread_mutex_lock(&l->fn_lock);
	fn = fn_get(l, fn_name);
	if (fn && run_ns)
		fn->run_ns =
			fn->run_ns > 0 ? 0.8 * fn->run_ns + 0.2 * (double)run_ns : (double)run_ns;
	if (fn && init_ns)
		fn->init_ns = fn->init_ns > 0 ? 0.8 * fn->init_ns + 0.2 * (double)init_ns
					      : (double)init_ns;
	pthread_mutex_unlock(&l->fn_lock);
}

static void plan_once(struct hv_loop *l)
{
	struct hv_plan_core pc[HV_MAX_CORES];
	struct hv_plan_function pf[HV_LOOP_MAX_FNS];
	struct hv_plan_target tg[HV_LOOP_MAX_FNS * 4];
	char names[HV_LOOP_MAX_FNS][64];
	uint32_t unplaced = 0;
	int n_pc, n_fns, n_tg;
	struct hv_plan_limits lim = {
		/* times are in ns, so the "cycles" clock is 1e9 per second */
		.cycles_hz = 1e9, .headroom = 0.8,    .target_util = 0.5,
		.horizon_s = 1.0, .min_demand = 0.02,
	};

	n_pc = l->ops.plan_cores(l->arg, pc, HV_MAX_CORES);
	pthread_mutex_lock(&l->fn_lock);
	n_fns = l->n_fns;
	for (int f = 0; f < n_fns; f++) {
		struct hl_fn *fn = &l->fns[f];
		double dt = l->cfg.forecast_ms / 1e3,
		       a = dt / HL_SLOW_S > 1.0 ? 1.0 : dt / HL_SLOW_S;

		hv_demand_observe(&fn->demand, fn->arrivals, dt);
		fn->rate_slow += a * ((double)fn->arrivals / dt - fn->rate_slow);
		fn->arrivals = 0;
		memcpy(names[f], fn->name, sizeof(names[f]));
		pf[f] = (struct hv_plan_function){
			.name = names[f],
			/*
			 * The forecast is for the next interval, and after a quiet one it rightly
			 * says 0: but a burst that then comes finds no instance and starts cold.
			 * Demand seen in the last tens of seconds keeps a target, so an idle
			 * instance waits out the gaps of on-off traffic.
			 */
			.demand = fmax(hv_demand_forecast(&fn->demand), fn->rate_slow),
			.run_cycles = fn->run_ns > 0 ? fn->run_ns : 1e6,
			.init_cycles = fn->init_ns > 0 ? fn->init_ns : 1e7,
		};
	}
	pthread_mutex_unlock(&l->fn_lock);
	if (!l->cfg.prewarm || n_pc <= 0 || !n_fns)
		return;
	n_tg = hv_plan_prewarm(pc, (uint32_t)n_pc, pf, (uint32_t)n_fns, &lim, tg,
			       HV_LOOP_MAX_FNS * 4, &unplaced);
	for (int f = 0; f < n_fns && n_tg > 0; f++) {
		uint32_t want = 0;
		int best = -1;

		for (int t = 0; t < n_tg; t++) {
			if (tg[t].fn != (uint32_t)f)
				continue;
			want += tg[t].count;
			if (best < 0 || tg[t].count > tg[best].count)
				best = t;
		}
		if (best >= 0)
			l->ops.prewarm(l->arg, names[f], want, tg[best].cpu, pf[f].demand);
	}
}

static void *plan_main(void *arg)
{
	struct hv_loop *l = arg;

	while (!atomic_load(&l->stop)) {
		/* short naps so that destroy does not wait a whole interval */
		for (uint32_t t = 0; t < l->cfg.forecast_ms / 10 && !atomic_load(&l->stop); t++)
			usleep(10000);
		if (!atomic_load(&l->stop))
			plan_once(l);
	}
	return NULL;
}

/* ---- life cycle ----------------------------------------------------------------------------- */

struct hv_loop *hv_loop_new(const struct hv_loop_config *cfg, const struct hv_loop_ops *ops,
			    void *arg)
{
	struct hv_sampler_config sc = {0};
	struct hv_loop *l;
	int rc;

	if (!cfg || !ops || !ops->core || !ops->pass || !ops->plan_cores || !ops->prewarm ||
	    cfg->period_ms < 1 || cfg->period_ms > 10 || !cfg->n_channels ||
	    cfg->n_channels > HV_MAX_CHANNELS || cfg->forecast_ms < 10) {
		NEMO_ERR(HL_LOG,
			 "bad harvest loop config (period 1..10 ms, 1..%d channels, "
			 "forecast >= 10 ms, every op)",
			 HV_MAX_CHANNELS);
		errno = EINVAL;
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->cfg = *cfg;
	l->ops = *ops;
	l->arg = arg;
	l->pops = hv_predictor_find(cfg->predictor ? cfg->predictor : "markov");
	if (!l->pops) {
		NEMO_ERR(HL_LOG, "predictor '%s' is not ewma or markov", cfg->predictor);
		rc = -EINVAL;
		goto fail;
	}
	sc.period_us = cfg->period_ms * 1000;
	sc.n_channels = cfg->n_channels;
	for (uint32_t i = 0; i < cfg->n_channels; i++)
		sc.channels[i] = cfg->channels[i];
	sc.reattach_ms = 100;
	l->sampler = hv_sampler_new(&sc);
	if (!l->sampler) {
		rc = -errno;
		goto fail;
	}
	pthread_mutex_init(&l->fn_lock, NULL);
	rc = -pthread_create(&l->loop_thread, NULL, loop_main, l);
	if (rc)
		goto fail_sampler;
	rc = -pthread_create(&l->plan_thread, NULL, plan_main, l);
	if (rc) {
		atomic_store(&l->stop, true);
		pthread_join(l->loop_thread, NULL);
		goto fail_sampler;
	}
	l->plan_started = true;
	return l;

fail_sampler:
	pthread_mutex_destroy(&l->fn_lock);
	hv_sampler_destroy(l->sampler);
fail:
	free(l);
	errno = -rc;
	return NULL;
}

void hv_loop_destroy(struct hv_loop *l)
{
	if (!l)
		return;
	atomic_store(&l->stop, true);
	pthread_join(l->loop_thread, NULL);
	if (l->plan_started)
		pthread_join(l->plan_thread, NULL);
	for (uint32_t i = 0; i < l->n_cores; i++)
		l->pops->destroy(l->cores[i].pred);
	hv_sampler_destroy(l->sampler);
	pthread_mutex_destroy(&l->fn_lock);
	free(l);
}
