/* harvester.h - nemod's view of the NF cores: attach to harvest channels and sample them. */
#ifndef NEMO_HARVESTER_H
#define NEMO_HARVESTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nemo/harvest_channel.h"

/*
 * An attached harvest channel: a mapping of /dev/shm/nemo-hc-<name>, read-only but for the
 * records' sleep-floor line.
 */
struct hv_channel;

/*
 * Attach to the channel of NF deployment `name`. Returns NULL with errno: ENOENT (no such
 * NF), EPROTO (wrong magic: not a harvest channel, or the writer exited), EPROTONOSUPPORT
 * (a version or layout this harvester does not know), ESRCH (the writer is dead). The
 * error is logged with the path and what was found.
 */
struct hv_channel *hv_channel_open(const char *name);
void hv_channel_close(struct hv_channel *ch);

uint32_t hv_channel_nb_lcores(const struct hv_channel *ch);
uint64_t hv_channel_tsc_hz(const struct hv_channel *ch);
uint64_t hv_channel_generation(const struct hv_channel *ch);

/*
 * Copy record `idx` without tearing and bring it up to the present (a sleeping lcore's
 * sleep so far counts). Returns 0, -ERANGE for a bad index, -EAGAIN if the writer kept it
 * busy, or -ESTALE if the NF exited or restarted since hv_channel_open() (reattach).
 */
int hv_channel_read(struct hv_channel *ch, uint32_t idx, struct hc_lcore_record *out);

/*
 * Ask lcore `idx` to sleep at least `floor_ns` at a time for the next `lease_ns` (renew it
 * before it lapses); floor_ns 0 withdraws the request. The lcore caps the floor at its
 * max_sleep_ns. Returns 0, -ERANGE, or -ESTALE (the NF exited or restarted).
 */
int hv_channel_set_sleep_floor(struct hv_channel *ch, uint32_t idx, uint64_t floor_ns,
			       uint64_t lease_ns);

/* One core over a window: the figures DESIGN.md defines, from two snapshots. */
struct hv_window {
	uint64_t total;
	uint64_t busy;
	uint64_t idle_poll;
	uint64_t sleep;
	uint64_t spare; /* total - busy */
	double spare_ratio;
	uint64_t rx_pkts;
	uint64_t tx_pkts;
	uint64_t drop_pkts;
	/*
	 * The part of busy the NF spent on packets for functions (fn_cycles, at most busy) and
	 * the packets a rule gave to one: 0 from a writer that does not count them. Spare a
	 * function's instance on this core is owed, not the NF's load (scheduler.h, reclaim).
	 */
	uint64_t fn;
	uint64_t fn_pkts;
};

/* The window between snapshots `a` (older) and `b`. Fails (-EINVAL) if b is older than a. */
int hv_window(const struct hc_lcore_record *a, const struct hc_lcore_record *b,
	      struct hv_window *w);

/* ---- sampler: every NF core of one or more channels, one window per period ----------------- */

#define HV_MAX_CHANNELS	 8
#define HV_MAX_CORES	 128 /* NF cores over all channels of one sampler */
#define HV_PERIOD_MIN_US 1000
#define HV_PERIOD_MAX_US 10000

enum hv_core_state {
	HV_CORE_UP = 0,	   /* attached; windows are fresh */
	HV_CORE_GONE = 1,  /* the NF exited, was killed or stopped this lcore; no windows */
	HV_CORE_STALE = 2, /* its record stopped moving (HV_STALE_MS): dead but not reaped,
			    * stopped or starved; up again once it moves */
};

/*
 * A record that has not changed for this long, plus twice the lcore's longest sleep or wait,
 * belongs to an lcore that no longer runs: its NF was killed and not yet reaped (a zombie
 * keeps its pid, so the pid check passes), is stopped, or cannot get its CPU. A running
 * lcore refreshes its record every publish_period_us (at most 1 ms) and at every sleep.
 */
#define HV_STALE_MS 250

struct hv_sampler_config {
	uint32_t period_us;		       /* HV_PERIOD_MIN_US..HV_PERIOD_MAX_US */
	uint32_t n_channels;		       /* 1..HV_MAX_CHANNELS */
	const char *channels[HV_MAX_CHANNELS]; /* NF deployment names (nemo-hc-<name>) */
	/* how often a detached channel is looked for again, ms [100] */
	uint32_t reattach_ms;
};

/*
 * One NF core as the sampler last saw it. `w` and `idle_hist` describe the latest window
 * only; `window_seq` grows by one for each new window, so a caller can tell fresh from seen.
 */
struct hv_core_sample {
	char nf[HC_NAME_MAX]; /* the channel (NF deployment) the core belongs to */
	uint32_t lcore_id;
	uint32_t cpu;
	int32_t tid;	     /* the lcore thread's id, once the lcore has started (else 0) */
	uint32_t state;	     /* enum hv_core_state */
	uint64_t generation; /* the NF instance: changes when it restarts */
	uint64_t window_seq;
	uint64_t window_ns; /* wall time the window covers */
	struct hv_window w;
	/* idle periods that ended in the window, bucket i holds [2^i, 2^(i+1)) us */
	uint64_t idle_hist[HC_IDLE_BUCKETS];
	/* the same since the sampler first attached to this core (across restarts) */
	uint64_t idle_hist_total[HC_IDLE_BUCKETS];
	uint64_t tsc_hz;
	uint32_t attaches; /* 1 after the first attach, +1 per reattach */
	uint32_t misses;   /* periods without a window: writer busy (-EAGAIN) or detached */
};

struct hv_sampler;

/*
 * Make a sampler over cfg->channels. Channels that are not there yet are not an error: they
 * are attached when they appear. Returns NULL with errno EINVAL (period out of range, no
 * channel, a name too long: logged, naming it) or ENOMEM.
 */
struct hv_sampler *hv_sampler_new(const struct hv_sampler_config *cfg);
void hv_sampler_destroy(struct hv_sampler *s);

/*
 * Take a sample if a period has passed since the last one (`now_ns` is CLOCK_MONOTONIC).
 * Attaches channels that appeared, reattaches those whose NF restarted (new generation),
 * marks the cores of an NF that vanished as HV_CORE_GONE and a core whose record stopped
 * moving as HV_CORE_STALE (each logged once, naming the channel, lcore and writer). Never fails because an NF is
 * missing or malformed: that is logged once per change of state. Returns the number of
 * cores with a fresh window (0 if not due). Not thread-safe: one caller (nemod's loop).
 */
int hv_sampler_sample(struct hv_sampler *s, uint64_t now_ns);

uint32_t hv_sampler_nb_cores(const struct hv_sampler *s);
/* Core `idx` (0..nb_cores-1), or NULL. Valid until the next hv_sampler_sample(). */
const struct hv_core_sample *hv_sampler_core(const struct hv_sampler *s, uint32_t idx);
/* The index of the core pinned to `cpu` (the newest, if several channels claim it), or -ENOENT. */
int hv_sampler_find_cpu(const struct hv_sampler *s, uint32_t cpu);
uint64_t hv_sampler_period_ns(const struct hv_sampler *s);
/* hv_channel_set_sleep_floor() for core `idx` of the sampler: -ENODEV while it is detached. */
int hv_sampler_set_sleep_floor(struct hv_sampler *s, uint32_t idx, uint64_t floor_ns,
			       uint64_t lease_ns);

/* The median idle period (us, the lower edge of its bucket) of a histogram; 0 if empty. */
uint32_t hv_idle_hist_median_us(const uint64_t hist[HC_IDLE_BUCKETS]);

/*
 * Is the channel's writer process still alive? Returns 0, or -ESRCH (it vanished without
 * clearing the magic, e.g. SIGKILL) or -ESTALE (it exited or restarted).
 */
int hv_channel_check(const struct hv_channel *ch);

/* ---- spare-capacity predictors (policy, behind an ops table) ------------------------------- */

struct hv_predictor;

struct hv_predictor_params {
	double alpha;	       /* EWMA smoothing weight of the newest window [0.3] */
	double idle_threshold; /* Markov: a window is "idle" if spare_ratio >= this [0.5] */
};

/*
 * A predictor learns one core's spare_ratio window by window and forecasts the mean
 * spare_ratio over the next `horizon` windows (>= 1). predict() before any observe()
 * returns 0 (assume no spare until seen). Instances are single-threaded.
 */
struct hv_predictor_ops {
	const char *name;
	/* `params` may be NULL for the defaults. NULL with errno (EINVAL, ENOMEM). */
	struct hv_predictor *(*create)(const struct hv_predictor_params *params);
	void (*observe)(struct hv_predictor *p, double spare_ratio);
	double (*predict)(const struct hv_predictor *p, unsigned int horizon);
	void (*destroy)(struct hv_predictor *p);
};

/* Exponentially weighted moving average: cheap, lags one 1/alpha windows behind a step. */
extern const struct hv_predictor_ops hv_predictor_ewma;
/*
 * Two-state (busy/idle) Markov chain over windows with learned transition probabilities
 * and a per-state mean spare_ratio: it forecasts on/off idle periods, which EWMA smears.
 */
extern const struct hv_predictor_ops hv_predictor_markov;

/* Look a predictor up by name ("ewma", "markov"); NULL if unknown. */
const struct hv_predictor_ops *hv_predictor_find(const char *name);

struct hv_predictor_error {
	double mae;  /* mean absolute error of spare_ratio */
	double rmse; /* root mean square error */
	uint32_t n;  /* predictions scored */
};

/*
 * Replay `trace` (spare_ratio per window) through a fresh predictor: at each window t >=
 * warmup, predict the mean of trace[t..t+horizon-1] before observing it, then observe
 * trace[t]. Returns 0, -EINVAL (no window to score) or -ENOMEM. Pure: no I/O.
 */
int hv_predictor_replay(const struct hv_predictor_ops *ops, const struct hv_predictor_params *p,
			const double *trace, size_t n, unsigned int horizon, unsigned int warmup,
			struct hv_predictor_error *err);

/* ---- demand forecast per function (HotC-style) -------------------------------------------- */

#define HV_DEMAND_STATES 8 /* Markov states: arrivals per interval 0, 1, 2-3, 4-7, ... 64+ */

/*
 * One function's invocation history, a value that nemod keeps per function. Exponential
 * smoothing follows the level; a Markov chain over arrival-count buckets catches patterns
 * (on/off, alternation) that smoothing averages away. The forecast weighs each by the
 * inverse of its recent error, as HotC corrects smoothing with its Markov model.
 */
struct hv_demand {
	double alpha;
	double es;			     /* smoothed arrivals per interval */
	double err_es, err_mk;		     /* smoothed absolute error of each model */
	double bucket_sum[HV_DEMAND_STATES]; /* arrivals seen in each bucket, for its mean */
	uint32_t bucket_n[HV_DEMAND_STATES];
	uint32_t trans[HV_DEMAND_STATES][HV_DEMAND_STATES];
	int last_state; /* -1 before the first interval */
	double interval_s;
	uint64_t intervals;
};

/* Start an empty history. alpha in (0, 1] (0 for the default 0.5). */
void hv_demand_init(struct hv_demand *d, double alpha);
/*
 * Record `arrivals` invocations in the interval of `interval_s` seconds that just ended.
 * Intervals must be of equal length. Returns 0 or -EINVAL (interval_s <= 0).
 */
int hv_demand_observe(struct hv_demand *d, uint64_t arrivals, double interval_s);
/* Forecast invocations per second over the next interval (0 before any history). */
double hv_demand_forecast(const struct hv_demand *d);

/* ---- pre-warm planner --------------------------------------------------------------------- */

struct hv_plan_core {
	uint32_t cpu;
	double spare_cps;  /* predicted spare, cycles per second */
	uint64_t mem_free; /* bytes the core's sandboxes may still use (UINT64_MAX: no limit) */
	uint32_t max_instances; /* instances this core may hold (its thread cap), 0: no limit */
};

struct hv_plan_function {
	const char *name;
	double demand;		/* forecast invocations per second */
	double run_cycles;	/* cycles one invocation costs */
	double init_cycles;	/* cycles to create and init one instance (paid from spare) */
	uint64_t mem_bytes;	/* memory one warm instance holds */
	uint32_t max_instances; /* the function's concurrency limit, 0: no limit */
};

struct hv_plan_limits {
	double cycles_hz;   /* the cores' clock, to turn cycles into time */
	double headroom;    /* share of predicted spare the plan may commit, (0, 1] [0.8] */
	double target_util; /* how busy a warm instance may be, (0, 1] [0.5] */
	double horizon_s;   /* warm-up cost is spread over this long [1.0] */
	double min_demand;  /* invocations/s below which a function gets no instance [0.01] */
};

struct hv_plan_target {
	uint32_t fn; /* index into the function array */
	uint32_t cpu;
	uint32_t count; /* warm instances to hold there */
};

/*
 * Pre-warm targets. A function needs ceil(demand * run_cycles / (cycles_hz * target_util))
 * instances (at least one if demand >= min_demand), capped by its max_instances. Functions
 * are placed in decreasing order of load (demand * run_cycles), one instance at a time, on
 * the core with the most uncommitted capacity (headroom * spare_cps, less the load and
 * init_cycles/horizon_s of what is placed there) that still fits it by cycles, memory and
 * instance count. What fits nowhere is left out and counted in *unplaced.
 * Writes at most max_targets targets, one per (function, core). Returns their number,
 * -EINVAL (bad limits or input) or -ENOSPC (max_targets too small). Pure.
 */
int hv_plan_prewarm(const struct hv_plan_core *cores, uint32_t n_cores,
		    const struct hv_plan_function *fns, uint32_t n_fns,
		    const struct hv_plan_limits *limits, struct hv_plan_target *targets,
		    uint32_t max_targets, uint32_t *unplaced);

/* ---- the harvest loop: sample -> predict -> forecast -> plan, handed to the arbiter ------- */

#define HV_LOOP_MAX_FNS 64

/*
 * One NF core as the loop hands it over each pass: the sampler's view plus the predicted
 * spare. `fresh` says a new window came (else only the state is news: an NF gone).
 */
struct hv_core_view {
	const struct hv_core_sample *smp;
	double spare_pred; /* mean spare_ratio over the next HV_LOOP_HORIZON windows */
	bool fresh;
};

#define HV_LOOP_HORIZON 5 /* windows the spare prediction looks ahead */

/*
 * What the loop asks of whoever arbitrates the cores (nemod's scheduler). Called from the
 * loop's threads; the arbiter locks what it shares with its own callers.
 */
struct hv_loop_ops {
	/*
	 * A core's window (v->fresh) or its NF gone (v->smp->state == HV_CORE_GONE). Returns
	 * the sleep floor to ask of the core's NF lcore in ns (0: none), or -1 to leave the
	 * channel alone (a core the arbiter does not harvest).
	 */
	int64_t (*core)(void *arg, const struct hv_core_view *v);
	/* Every pass, after the cores: housekeeping figures, waking queued placements. */
	void (*pass)(void *arg);
	/* The cores a plan may use now (up, not reclaimed) with their spare; returns n. */
	int (*plan_cores)(void *arg, struct hv_plan_core *out, int max);
	/*
	 * A pre-warm target of function `fn`: `want` instances over all cores, `best` the core
	 * with most of them. The arbiter makes what is missing (a few per beat).
	 */
	void (*prewarm)(void *arg, const char *fn, uint32_t want, uint32_t best_cpu,
			double forecast);
};

struct hv_loop_config {
	uint32_t period_ms; /* 1..10 */
	uint32_t n_channels;
	const char *channels[HV_MAX_CHANNELS];
	const char *predictor; /* "ewma" or "markov" */
	uint32_t forecast_ms;  /* the demand and pre-warm beat, >= 10 */
	bool prewarm;
};

struct hv_loop;

/*
 * Start the loop (one thread every period_ms) and the pre-warm beat (one thread every
 * forecast_ms). `ops` may be called before this returns. NULL with errno EINVAL (bad config
 * or predictor, logged) or ENOMEM.
 */
struct hv_loop *hv_loop_new(const struct hv_loop_config *cfg, const struct hv_loop_ops *ops,
			    void *arg);
/* Stop both threads; no ops call runs after this returns. */
void hv_loop_destroy(struct hv_loop *l);
/* An invocation of `fn` arrived (counted per forecast interval). Thread-safe. */
void hv_loop_arrival(struct hv_loop *l, const char *fn);
/* What one invocation of `fn` cost: run_ns, and init_ns of a cold start (0: none). */
void hv_loop_cost(struct hv_loop *l, const char *fn, uint64_t run_ns, uint64_t init_ns);

#endif /* NEMO_HARVESTER_H */
