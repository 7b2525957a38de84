/* scheduler.h - where sandboxes run on NF cores: topology, harvest cgroups, dispatch, reclaim. */
#ifndef NEMO_SCHEDULER_H
#define NEMO_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "nemo/sandbox.h"

/*
 * The scheduler is mechanism (perf counters, hwloc; cgroup knobs through their owner,
 * include/nemo/cgroup.h) and small pure policies (dispatch, reclaim, throttle) that nemod
 * calls from its 1-10 ms loop. The fast path, giving the core back to the NF, is the kernel's:
 * the NF lcore outranks the harvest cgroup (DESIGN.md, "How the core is shared"); these
 * functions only decide the slower things.
 */

#define SCHED_MAX_CPUS 256

/* ---- topology (hwloc) ---------------------------------------------------------------------- */

enum sched_cpu_role {
	SCHED_CPU_UNUSED = 0,
	SCHED_CPU_NF = 1,	    /* an NF lcore's CPU: sandboxes harvest its spare cycles */
	SCHED_CPU_HOUSEKEEPING = 2, /* nemod, overflow work, the OS */
};

struct sched_cpu {
	int os_index; /* the CPU number (cpuset, sched_setaffinity) */
	int core;     /* physical core (logical index): SMT siblings share it */
	int numa;     /* NUMA node, 0 when unknown */
	int l2;	      /* logical index of its L2 cache, -1 when unknown */
	int l3;	      /* logical index of its L3 cache, -1 when unknown */
	int role;     /* enum sched_cpu_role */
};

struct sched_topology {
	int n_cpus; /* online CPUs, in cpus[] by index */
	struct sched_cpu cpus[SCHED_MAX_CPUS];
};

/*
 * Discover the machine with hwloc and give roles: `nf_cpus` (from the harvest channels or
 * nemod's config) are NF cores; `hk_cpus` are housekeeping cores, or, if n_hk is 0, every
 * online CPU that is not an NF core. A CPU that is not online, or named twice, is an error
 * that names it and the CPUs there are. Returns 0, -EINVAL (bad CPU, logged) or -EIO (hwloc).
 */
int sched_topology_discover(struct sched_topology *t, const int *nf_cpus, int n_nf,
			    const int *hk_cpus, int n_hk);

/* The entry of CPU `os_index`, or NULL if it is not online. */
const struct sched_cpu *sched_topology_cpu(const struct sched_topology *t, int os_index);

/* Do two CPUs share a cache at `level` (2 or 3)? false if either is unknown. */
bool sched_topology_share_cache(const struct sched_topology *t, int cpu_a, int cpu_b, int level);

/* One line per CPU ("cpu 1: core 1 numa 0 l2 1 l3 0 nf") into buf. Returns the length. */
int sched_topology_format(const struct sched_topology *t, char *buf, size_t len);

/* ---- harvest cgroups: policy here, mechanism in the cgroup tree's owner (nemo/cgroup.h) --- */

enum sched_harvest_policy {
	/* cpu.idle = 1: the cgroup's tasks are SCHED_IDLE to the NF (see scheduler/README.md) */
	SCHED_HARVEST_IDLE = 0,
	/* the lowest weight: cpu.shares = 2 (v1) or cpu.weight = 1 (v2) */
	SCHED_HARVEST_SHARES = 1,
};

/*
 * The measured default (scheduler/README.md, "Harvest-cgroup policy"). Both policies kept the
 * NF loss-free and left the hog the same share of the core; idle is chosen because the kernel
 * preempts an idle group unconditionally when the NF wakes, where weight 2 leaves it to
 * EEVDF's deadlines, and the one run that lost packets (p99 33 ms) was with shares.
 */
#define SCHED_HARVEST_DEFAULT SCHED_HARVEST_IDLE

/* Names for configs and metrics: "idle", "shares". Parse returns the enum or -EINVAL. */
const char *sched_harvest_policy_name(int policy);
int sched_harvest_policy_parse(const char *name);

/* ---- runnable-thread cap ------------------------------------------------------------------- */

/*
 * Every runnable sandbox thread on an NF core is one more thread the NF's wake-up can land
 * behind and one more context switch. nemod holds the number of runnable sandbox threads
 * per core under a cap: it does not start or dispatch onto a core at its cap.
 */
#define SCHED_THREAD_CAP_DEFAULT 4

/* Threads are counted by the cgroup tree's owner: sbx_cgroup_core_threads(). */

/* May `adding` more runnable threads go to a core that has `runnable`? cap 0 = no cap. */
static inline bool sched_thread_cap_allows(uint32_t cap, uint32_t runnable, uint32_t adding)
{
	return cap == 0 || runnable + adding <= cap;
}

/* ---- dispatch (policy, behind an ops table) ------------------------------------------------ */

/* What nemod knows of one NF core when an invocation of one function arrives. */
struct sched_core_view {
	int cpu;
	double spare_pred;   /* predicted spare_ratio of the next window(s) */
	uint32_t warm_idle;  /* idle warm instances of this function on the core */
	uint32_t runnable;   /* runnable sandbox threads now */
	uint32_t thread_cap; /* 0: no cap */
	bool reclaimed;	     /* frozen/evacuated by reclaim: take nothing new */
};

enum sched_overflow {
	SCHED_OVERFLOW_HOUSEKEEPING = 0, /* run it on a housekeeping core */
	SCHED_OVERFLOW_QUEUE = 1,	 /* queue it until spare appears or its deadline passes */
};

struct sched_dispatch_config {
	double min_spare;     /* a core below this predicted spare_ratio has none [0.05] */
	int overflow;	      /* enum sched_overflow */
	int hk_cpu;	      /* the housekeeping core for SCHED_OVERFLOW_HOUSEKEEPING */
	uint64_t deadline_ns; /* queueing budget for SCHED_OVERFLOW_QUEUE */
};

enum sched_place_kind {
	SCHED_PLACE_WARM = 0,	      /* use an idle warm instance on `cpu` */
	SCHED_PLACE_COLD = 1,	      /* create an instance on `cpu` (it has spare) */
	SCHED_PLACE_HOUSEKEEPING = 2, /* no spare anywhere: cold start on housekeeping `cpu` */
	SCHED_PLACE_QUEUE = 3,	      /* no spare anywhere: queue until `deadline_ns` */
};

struct sched_placement {
	int kind;     /* enum sched_place_kind */
	int cpu;      /* -1 for SCHED_PLACE_QUEUE */
	int core_idx; /* index into the views, -1 when not an NF core */
	uint64_t deadline_ns;
};

struct sched_dispatch_ops {
	const char *name;
	/*
	 * Place one invocation arriving at `now_ns`. Returns 0 or -EINVAL. Pure: the caller
	 * picks the instance (an idle warm one on that core for WARM) and updates the views.
	 */
	int (*place)(const struct sched_dispatch_config *cfg, const struct sched_core_view *cores,
		     int n_cores, uint64_t now_ns, struct sched_placement *out);
};

/*
 * "most_spare": a warm instance on the core with the most predicted spare among those that
 * have one; else a cold start on the core with the most spare; else overflow. Cores that
 * are reclaimed, at their thread cap, or below min_spare are skipped for both.
 */
extern const struct sched_dispatch_ops sched_dispatch_most_spare;

/* ---- reclaim (pure state machine per core) ------------------------------------------------- */

enum sched_reclaim_action {
	SCHED_RECLAIM_NONE = 0,
	SCHED_RECLAIM_FREEZE = 1, /* freeze the core's sandboxes (sbx_freeze) */
	SCHED_RECLAIM_MOVE =
		2, /* pin the core's harvest cgroup to `target_cpu`; work in flight goes along */
	SCHED_RECLAIM_THAW = 3, /* spare is back: thaw what was frozen */
};

struct sched_reclaim_config {
	double threshold;	  /* spare_ratio below this ... */
	uint32_t k_windows;	  /* ... for this many windows in a row reclaims the core */
	double release;		  /* spare_ratio averaged at or above this (>= threshold) ... */
	uint32_t release_windows; /* ... over about this many windows, held at least as long,
				   * releases it */
	int prefer;		  /* SCHED_RECLAIM_FREEZE or SCHED_RECLAIM_MOVE */
	double move_min_spare;	  /* a move target needs at least this predicted spare_ratio */
	double freeze_below;	  /* prefer MOVE, nowhere to move: freeze only under this
				   * (0: never; at most threshold) */
};

struct sched_reclaim_core {
	uint32_t below;	  /* consecutive windows below threshold */
	uint32_t starved; /* consecutive windows below freeze_below */
	uint32_t held;	  /* windows since the core was reclaimed */
	double spare_avg; /* spare_ratio since then, smoothed over ~release_windows */
	bool reclaimed;
	int last_action;
	uint64_t reclaims; /* times the core was reclaimed */
} __attribute__((aligned(64)));

struct sched_reclaim_decision {
	int action;	/* enum sched_reclaim_action */
	int target_cpu; /* for SCHED_RECLAIM_MOVE */
	bool starved;	/* taken because the spare stayed under freeze_below, not threshold */
};

/* Returns 0 or -EINVAL (threshold/release out of [0, 1], release < threshold, k 0, with MOVE
 * a freeze_below out of [0, threshold]). */
int sched_reclaim_config_check(const struct sched_reclaim_config *cfg);

/*
 * Feed core `idx` its latest window's spare_ratio. When it has been below threshold for
 * k_windows, returns MOVE to the other unreclaimed core with the most predicted spare
 * (>= move_min_spare) if cfg->prefer is MOVE and there is one, else FREEZE. With MOVE
 * preferred and no core to take them, the sandboxes stay and keep the NF's scraps (at
 * SCHED_IDLE they cost a FIFO NF nothing it needs; a freeze would stop their work for no gain)
 * until the spare has been below freeze_below for k_windows: then FREEZE. While
 * reclaimed, once it has been so for release_windows and the spare_ratio smoothed over about
 * as many windows (EWMA, alpha 2 / (release_windows + 1), from the window that reclaimed it)
 * is at or above release, returns THAW (for a frozen core; a core whose sandboxes moved away
 * just becomes available again: NONE). An average, not a streak: an NF at half load has
 * windows under release now and then, and a streak of them all above could take seconds. `views` are the
 * cores' predictions for picking a target (may be NULL with n 0). Pure.
 */
struct sched_reclaim_decision sched_reclaim_step(const struct sched_reclaim_config *cfg,
						 struct sched_reclaim_core *cores, int idx,
						 double spare_ratio,
						 const struct sched_core_view *views, int n);

/*
 * The spare_ratio reclaim judges a core by, from a window's `total` and `busy` cycles and
 * `fn`, the part of busy its NF spent on packets for functions (struct hv_window). While a
 * packet instance lives on the core (`resident`), those cycles are spare owed to it: its own
 * packets must not take the core away from it. Without one they are the NF's load, as
 * everything else it does. Only reclaim (and the interference watch's guard) reads it: the
 * cycles are owed, not free, so placement and pre-warming go on judging by the spare, and
 * so does the sleep floor, since the backlog a sleep leaves holds the function's packets
 * too. 0 for an empty window. Pure.
 */
double sched_reclaim_spare_ratio(uint64_t total, uint64_t busy, uint64_t fn, bool resident);

/* ---- interference watch -------------------------------------------------------------------- */

enum sched_counter_source {
	SCHED_CTR_HW_PFM = 0,  /* a hardware event encoded by libpfm4 */
	SCHED_CTR_SW = 1,      /* a kernel software event */
	SCHED_CTR_CHANNEL = 2, /* busy cycles / rx packets from the harvest channel */
};

#define SCHED_IW_COUNTERS 4

/* One perf counter on the NF lcore thread. `open` false: never report `value`. */
struct sched_counter {
	char name[32];
	int source; /* enum sched_counter_source */
	bool open;
	int error; /* the -errno of the failed open */
	int fd;
	uint64_t value; /* cumulative, valid only when open */
};

struct sched_iwatch_config {
	double bound;		 /* throttle when cpp rises past baseline * (1 + bound) [0.10] */
	double alpha;		 /* smoothing of cycles per packet [0.2] */
	uint32_t calm_windows;	 /* windows back under the bound before loosening [50] */
	uint32_t settle_windows; /* windows between two tightenings, for cpp to react [10] */
	uint64_t period_us;	 /* CFS period for the quota [10000] */
	uint64_t min_quota_us;	 /* the tightest quota [period / 20] */
	uint64_t min_pkts;	 /* a window with fewer rx packets says nothing [64] */
};

struct sched_iwatch;

/*
 * Watch NF lcore thread `tid` (0: no perf counters, channel signal only). Tries hardware
 * cycles and instructions through libpfm4 first, then the software task-clock and
 * context-switches; what opened and what did not is logged once and kept in the counters.
 * NULL with errno EINVAL or ENOMEM; counters that fail to open are not an error.
 */
struct sched_iwatch *sched_iwatch_new(pid_t tid, const struct sched_iwatch_config *cfg);
void sched_iwatch_destroy(struct sched_iwatch *w);

/* The counters, opened or not (n set to how many). Read them with sched_iwatch_read(). */
const struct sched_counter *sched_iwatch_counters(const struct sched_iwatch *w, int *n);
/* Refresh the open counters' values. Returns 0 or the -errno of a failed read. */
int sched_iwatch_read(struct sched_iwatch *w);

struct sched_iwatch_report {
	double cpp_baseline; /* cycles per packet with no sandbox running; 0 until known */
	double cpp_shared;   /* with sandboxes running; 0 until known */
	double ratio;	     /* cpp_shared / cpp_baseline, 0 until both are known */
	uint64_t quota_us;   /* the harvest cgroup's quota now, 0 = unthrottled */
	bool throttled;
	bool changed; /* quota_us differs from the last step: apply it with set_quota */
};

/*
 * Feed one window: the NF core's busy cycles and rx packets, and whether sandboxes ran on
 * the core in it (harvested > 0). Windows without sandboxes teach the baseline; those with
 * teach the shared figure. Past the bound, the quota halves (down to min_quota_us); after
 * calm_windows under it, it doubles until the limit is lifted. Pure apart from `w`.
 */
void sched_iwatch_step(struct sched_iwatch *w, uint64_t busy_cycles, uint64_t rx_pkts,
		       bool sandboxes_ran, struct sched_iwatch_report *out);

/* ---- metrics ------------------------------------------------------------------------------- */

/* What /metrics and nemoctl top show per NF core (DESIGN.md "Definitions"). */
struct sched_core_stats {
	int cpu;
	uint64_t spare_cycles; /* last window */
	uint64_t total_cycles; /* last window */
	double spare_pred;     /* predicted spare_ratio */
	uint64_t harvested_ns; /* last window: sandboxes' CPU time on this CPU */
	double harvest_ratio;  /* harvested / spare */
	uint32_t warm;	       /* warm instances */
	uint32_t frozen;       /* frozen instances */
	uint64_t moved;	       /* instances moved away, cumulative */
	uint64_t throttled;    /* windows under a CFS quota, cumulative */
	uint32_t runnable;     /* runnable sandbox threads */
	uint32_t thread_cap;
	uint32_t sleep_floor_us; /* asked of the NF lcore now, 0 = none */
};

/*
 * harvest_ratio from a window: harvested (ns of CPU time) over spare (cycles at tsc_hz).
 * 0 when there was no spare.
 */
double sched_harvest_ratio(uint64_t harvested_ns, uint64_t spare_cycles, uint64_t tsc_hz);

/*
 * Write the stats as Prometheus text (nemo_core_spare_ratio{cpu="1"} ...) into buf.
 * Returns the length, or -ENOSPC if buf is too small.
 */
int sched_metrics_format(const struct sched_core_stats *cores, int n, char *buf, size_t len);

/* ---- co-scheduler: arbitration of the cores the harvester's loop (hv_loop) hands over ----- */

/*
 * The co-scheduler joins the pieces above into nemod's loop: it samples every NF core's
 * harvest channel each period, predicts spare, reads harvested from the core's harvest
 * cgroup, reclaims (freeze or move) and throttles, and on a slower beat forecasts demand per
 * function and pre-warms instances on the cores with spare. Invocations ask it where to run.
 * It knows sandboxes only through this table, so tests plug in fakes.
 */
struct sched_cosched_backend {
	void *arg;
	/* make `count` idle instances of `fn` on `cpu` (forked into its harvest cgroup) */
	int (*prewarm)(void *arg, const char *fn, int cpu, int count);
	/* idle warm instances of `fn`, all cores together */
	int (*idle)(void *arg, const char *fn, uint32_t *idle);
	/*
	 * The owner of the cgroup tree, whose harvest cgroup core<cpu> holds `cpu`'s sandboxes:
	 * the loop sets its policy and quota, reads `harvested`, pins it elsewhere on reclaim by
	 * move, and counts its threads and sandboxes, all through include/nemo/cgroup.h.
	 */
	struct sbx_host *host;
	/*
	 * Freeze `cpu`'s sandboxes, idle or running an invocation (which pauses and goes on at
	 * the thaw), and return once the kernel reads them frozen; or thaw them. Through the
	 * sandbox library, so that a frozen idle instance is never handed out. Returns how many
	 * are frozen / were thawed, or -errno. Optional: without it, reclaim cannot freeze (it
	 * says so) and only moves.
	 */
	int (*freeze_core)(void *arg, int cpu, bool freeze);
};

#define SCHED_CS_MAX_CHANNELS 8
#define SCHED_CS_NAME_MAX     32

struct sched_cosched_config {
	uint32_t period_ms; /* 1..10 */
	uint32_t n_channels;
	char channels[SCHED_CS_MAX_CHANNELS][SCHED_CS_NAME_MAX];
	char predictor[16]; /* "ewma" | "markov" */
	bool prewarm;
	int policy; /* enum sched_harvest_policy */
	uint32_t thread_cap;
	struct sched_reclaim_config reclaim;
	int overflow;		    /* enum sched_overflow */
	uint64_t queue_deadline_ms; /* SCHED_OVERFLOW_QUEUE: then housekeeping */
	int hk_cpu;		    /* overflow and move target of last resort */
	bool interference;
	double interference_bound; /* ratio of cycles per packet, e.g. 1.5 */
	uint32_t forecast_ms;	   /* demand interval and pre-warm beat [500] */
	/* asked of an NF lcore while sandboxes work there: at most nf_sleep_floor_us [400], less
	 * at high load so that it adds about nf_delay_budget_us [500] (sched_sleep_floor_ns) */
	uint32_t nf_sleep_floor_us;
	uint32_t nf_delay_budget_us;
};

/*
 * The sleep floor to ask of an NF lcore whose predicted spare_ratio is `spare`. A packet that
 * arrives as the lcore falls asleep waits for the sleep and then for the backlog the sleep left:
 * at busy share 1 - spare, a cycle of sleep F lasts about F / spare. So the floor is
 * budget * spare, at most floor_us: the added delay stays near the budget when the NF's packets
 * get dearer (spare 0.5: half the floor). budget_us 0 keeps floor_us fixed. In ns.
 */
uint64_t sched_sleep_floor_ns(uint32_t floor_us, uint32_t budget_us, double spare);

/* Defaults as gateway/README.md documents them ("harvest" object). */
void sched_cosched_config_defaults(struct sched_cosched_config *cfg);

/* One NF core as nemoctl top and /api/v1/cores show it. Cumulative figures since start. */
struct sched_cosched_core {
	struct sched_core_stats s;
	bool up;		   /* the NF publishes the core now */
	double spare_ratio;	   /* last window */
	double busy_ratio;	   /* last window: busy / total */
	double fn_ratio;	   /* last window: busy on packets for functions / total */
	double reclaim_spare;	   /* last window: the spare_ratio reclaim judged (owed included) */
	uint32_t resident;	   /* packet instances living here (sched_cosched_resident) */
	double harvested_ratio;	   /* last window: harvested / window wall time */
	double spare_s_total;	   /* spare, seconds */
	double harvested_s_total;  /* harvested, seconds */
	double total_s_total;	   /* the windows' length, seconds */
	uint64_t reclaims;	   /* times reclaimed */
	int moved_to;		   /* -1, or where its sandboxes run while reclaimed by MOVE */
	bool reclaimed;		   /* taking nothing new */
	uint64_t reaction_last_ns; /* first low window's start to the action done */
	uint64_t reaction_max_ns;
	uint64_t reaction_sum_ns;	  /* / reclaims for the mean */
	uint64_t invocations;		  /* placed on this core */
	uint64_t starts[SBX_START_PATHS]; /* by enum sbx_start_path */
	uint64_t prewarmed;		  /* instances the planner made here on spare cycles */
	int iw_counters_open;		  /* perf counters that opened on the NF lcore */
	char iw_counters[96];		  /* their names, "task-clock,context-switches" */
	/* every counter the watch tried (open or not) and, once read, the open ones' values */
	struct sched_counter iw_ctr[SCHED_IW_COUNTERS];
	int iw_n;
	bool iw_read; /* the values were read at least once */
};

#define SCHED_METRICS_MAX_CORES 64

/*
 * The co-scheduler's /metrics text, all through the writer of sched_metrics_format(): the
 * core stats, the loop's figures, and the perf counters on the NF lcores (those that did not
 * open are available 0, with no value). Returns the length or -ENOSPC.
 */
int sched_metrics_format_cosched(const struct sched_cosched_core *cores, int n, char *buf,
				 size_t len);

struct sched_cosched;

/*
 * Start the harvester's loop (hv_loop_new: its window and pre-warm threads) feeding this
 * arbiter. Channels need not exist yet; a core a
 * channel names that is not online is logged (naming it) and left out. Returns NULL with
 * errno EINVAL (bad config, logged) or ENOMEM.
 */
struct sched_cosched *sched_cosched_new(const struct sched_cosched_config *cfg,
					const struct sched_cosched_backend *be);
void sched_cosched_destroy(struct sched_cosched *cs);

/*
 * Where should an invocation of `fn` run? A warm instance on the core with the most predicted
 * spare, else a cold start where spare exists, else the overflow policy: housekeeping, or
 * wait (for spare, up to queue_deadline_ms) then housekeeping. Writes the CPU to *cpu and the
 * placement kind (enum sched_place_kind) to *kind. Returns 0. Thread-safe; may block (queue).
 */
int sched_cosched_place(struct sched_cosched *cs, const char *fn, int *cpu, int *kind);

/* How it went: the start path (enum sbx_start_path) and the phase times. Thread-safe. */
void sched_cosched_observe(struct sched_cosched *cs, const char *fn, int cpu, int start_path,
			   uint64_t init_ns, uint64_t run_ns);

/*
 * A sandbox that lives on `cpu` and waits there for work that comes without a placement (a
 * packet-triggered instance, fed by the NF's rings): +1 when it starts, -1 when it ends. While
 * any does, the core counts as worked on, so its NF lcore is asked for the sleep floor in
 * windows where nothing ran too: the instance wakes on the NF's packets and needs the core
 * then, not a window later. A cpu that is no NF core is ignored. Thread-safe.
 */
void sched_cosched_resident(struct sched_cosched *cs, int cpu, int delta);

/* Copy up to `max` cores. Returns how many. Thread-safe. */
int sched_cosched_cores(struct sched_cosched *cs, struct sched_cosched_core *out, int max);

/*
 * /metrics text: sched_metrics_format() plus nemo_core_spare_ratio,
 * nemo_core_harvested_seconds_total, nemo_core_spare_seconds_total, reclaim figures.
 * Returns the length or -ENOSPC.
 */
int sched_cosched_metrics(struct sched_cosched *cs, char *buf, size_t len);

#endif /* NEMO_SCHEDULER_H */
