/* cosched.c - arbitration of the NF cores: account, reclaim, throttle, pre-warm, place. */
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
#include "nemo/cgroup.h"
#include "nemo/scheduler.h"

#define CS_LOG		   "cosched"
#define CS_MAX_CORES	   64
#define CS_MAX_FNS	   64
#define CS_COUNT_EVERY	   5 /* windows between two counts of threads and sandboxes */
#define CS_IW_PERIOD	   10000
#define CS_IW_GUARD	   0.5 /* spare under which the interference watch's quota applies */
#define CS_HK_EVERY_NS	   250000000ull	 /* /proc/stat counts in 10 ms ticks: sample it slowly */
#define CS_HK_BUSY_WAIT_NS 2000000000ull /* longest extra wait for spare while hk is busy */
#define CS_HK_MIN_IDLE	   0.10		 /* housekeeping idle share below which it is no refuge */

struct cs_fn {
	char name[64];
	uint32_t on_core[CS_MAX_CORES]; /* instances started here: a warm one may be idle */
};

struct cs_core {
	int cpu;
	bool online; /* false: a channel named a CPU that is not there (logged once) */
	bool cg_ok;
	struct sched_iwatch *iw;
	bool iw_read_failed;
	uint64_t generation;
	uint64_t usage_prev;
	bool usage_primed;
	uint64_t iw_quota_us;	   /* the quota written to the cgroup (0: none) */
	uint64_t low_since_ns;	   /* start of the first window of the current low streak */
	uint64_t starved_since_ns; /* ... and of the streak under reclaim.freeze_below */
	uint32_t windows;
	/*
	 * Invocations placed here and finished since the last thread count (under cs->lock):
	 * the count is 10 ms old at worst, and a queued invocation should not wait that long
	 * for a slot that a finished one just freed, nor should a burst overshoot the cap.
	 */
	uint32_t placed_since, done_since;
	uint32_t resident; /* sandboxes living here between calls (sched_cosched_resident) */
	int n_frozen;	   /* sandboxes the backend froze here on reclaim */
	struct sched_cosched_core pub; /* what readers see, under cs->lock */
} __attribute__((aligned(64)));

struct sched_cosched {
	struct sched_cosched_config cfg;
	struct sched_cosched_backend be;
	struct hv_loop *loop; /* the harvester's: windows and pre-warm targets come from it */
	struct sched_topology topo;
	bool topo_ok;
	atomic_bool stop;
	pthread_mutex_t lock;	    /* cores[].pub, fns, n_cores */
	pthread_cond_t window_cond; /* a window was processed: queued placements look again */
	int n_cores;
	struct cs_core *cores; /* CS_MAX_CORES, written by the loop thread only (pub: locked) */
	struct sched_reclaim_core rc[CS_MAX_CORES]; /* the loop thread's */
	int n_fns;
	struct cs_fn fns[CS_MAX_FNS];
	/* the housekeeping core's idle share (-1: not known yet), from /proc/stat */
	double hk_idle;
	uint64_t hk_idle_ticks, hk_all_ticks, hk_sampled_ns;
};

static bool hk_usable(const struct sched_cosched *cs);

void sched_cosched_config_defaults(struct sched_cosched_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->period_ms = 2;
	cfg->n_channels = 1;
	snprintf(cfg->channels[0], sizeof(cfg->channels[0]), "default");
	snprintf(cfg->predictor, sizeof(cfg->predictor), "markov");
	cfg->prewarm = true;
	cfg->policy = SCHED_HARVEST_DEFAULT;
	cfg->thread_cap = SCHED_THREAD_CAP_DEFAULT;
	cfg->reclaim = (struct sched_reclaim_config){
		/* under 20 % spare a CPU-bound function gets a fifth of a core: better elsewhere;
		 * at 0.05 the bench's 14 Mpps step (spare 0.25-0.5 here) never reclaimed */
		.threshold = 0.2,
		.k_windows = 3,
		.release = 0.4,
		.release_windows = 50,
		.prefer = SCHED_RECLAIM_MOVE,
		.move_min_spare = 0.3,
		/* a 90 % burst leaves 0.10-0.15: frozen there, a bursty NF's sandboxes got 0.85
		 * of its spare instead of 0.93, and the NF gained nothing (experiments/README.md,
		 * bench-harvest S4) */
		.freeze_below = 0.05,
	};
	cfg->overflow = SCHED_OVERFLOW_HOUSEKEEPING;
	cfg->queue_deadline_ms = 100;
	cfg->hk_cpu = 0;
	cfg->interference = true;
	cfg->interference_bound = 1.5;
	cfg->forecast_ms = 500;
	cfg->nf_sleep_floor_us = 400;
	cfg->nf_delay_budget_us = 500;
}

/* The core's sandboxes, as the cgroup tree's owner knows them; -errno when it cannot say. */
static int core_sandboxes(struct sched_cosched *cs, const struct cs_core *c)
{
	uint32_t n;
	int rc = sbx_cgroup_core_sandboxes(cs->be.host, c->cpu, &n, NULL);

	return rc ? rc : (int)n;
}

/* ---- reclaim actions ------------------------------------------------------------------------ */

/*
 * Freezing goes through the backend (the sandbox library), never the freezer files: the
 * library must know, or its warm pool hands a frozen idle instance to the next invocation,
 * which then hangs until the thaw. The backend returns once the kernel reads every sandbox
 * frozen (within ~100 ms), so the reaction time still counts until then.
 */
static int freeze_core(struct sched_cosched *cs, struct cs_core *c)
{
	int n;

	c->n_frozen = 0;
	if (!cs->be.freeze_core)
		return -EOPNOTSUPP; /* said once at start; the reclaim line says "failed" */
	n = cs->be.freeze_core(cs->be.arg, c->cpu, true);
	if (n < 0)
		return n;
	c->n_frozen = n;
	return 0;
}

static void thaw_core(struct sched_cosched *cs, struct cs_core *c)
{
	int rc = cs->be.freeze_core ? cs->be.freeze_core(cs->be.arg, c->cpu, false) : 0;

	/* the sandbox library logged which sandbox; here, which core keeps some frozen */
	if (rc < 0)
		NEMO_ERR(CS_LOG, "cpu %d: thaw failed: %s; a sandbox may stay frozen", c->cpu,
			 strerror(-rc));
	c->n_frozen = 0;
}

/* ---- cores as channels reveal them ---------------------------------------------------------- */

static void core_iwatch(struct sched_cosched *cs, struct cs_core *c,
			const struct hv_core_sample *smp)
{
	struct sched_iwatch_config iwc = {
		.bound = cs->cfg.interference_bound - 1.0,
		.alpha = 0.2,
		.calm_windows = 50,
		.settle_windows = 10,
		.period_us = CS_IW_PERIOD,
		.min_quota_us = CS_IW_PERIOD / 20,
		.min_pkts = 64,
	};
	const struct sched_counter *ctr;
	int n, off = 0;

	if (!cs->cfg.interference)
		return;
	if (c->iw)
		sched_iwatch_destroy(c->iw);
	c->iw = sched_iwatch_new(smp->tid, &iwc);
	c->iw_read_failed = false;
	c->pub.iw_counters_open = 0;
	c->pub.iw_counters[0] = '\0';
	if (!c->iw)
		return;
	ctr = sched_iwatch_counters(c->iw, &n);
	pthread_mutex_lock(&cs->lock);
	c->pub.iw_n = n < SCHED_IW_COUNTERS ? n : SCHED_IW_COUNTERS;
	memcpy(c->pub.iw_ctr, ctr, sizeof(ctr[0]) * (size_t)c->pub.iw_n);
	c->pub.iw_read = false;
	pthread_mutex_unlock(&cs->lock);
	for (int i = 0; i < n; i++)
		if (ctr[i].open && off < (int)sizeof(c->pub.iw_counters))
			off += snprintf(c->pub.iw_counters + off, sizeof(c->pub.iw_counters) - off,
					"%s%s", c->pub.iw_counters_open++ ? "," : "", ctr[i].name);
	NEMO_INFO(CS_LOG,
		  "cpu %d: interference watch counters=%s (plus cycles/packet from the "
		  "channel)",
		  c->cpu, c->pub.iw_counters[0] ? c->pub.iw_counters : "none");
}

static struct cs_core *core_get(struct sched_cosched *cs, const struct hv_core_sample *smp)
{
	char path[512];
	struct cs_core *c;
	int rc;

	for (int i = 0; i < cs->n_cores; i++)
		if (cs->cores[i].cpu == (int)smp->cpu)
			return &cs->cores[i];
	if (cs->n_cores >= CS_MAX_CORES)
		return NULL;
	c = &cs->cores[cs->n_cores];
	memset(c, 0, sizeof(*c));
	c->cpu = (int)smp->cpu;
	c->pub.s.cpu = c->cpu;
	c->pub.moved_to = -1;
	c->pub.s.thread_cap = cs->cfg.thread_cap;
	c->online = !cs->topo_ok || sched_topology_cpu(&cs->topo, c->cpu);
	if (!c->online) {
		NEMO_ERR(CS_LOG,
			 "NF '%s' lcore %u is on cpu %d, which is not online (%d CPUs): not "
			 "harvesting it",
			 smp->nf, smp->lcore_id, c->cpu, cs->topo.n_cpus);
		goto publish;
	}
	rc = sbx_cgroup_core_idle(cs->be.host, c->cpu, cs->cfg.policy == SCHED_HARVEST_IDLE);
	if (rc) {
		NEMO_ERR(CS_LOG, "cpu %d: no harvest cgroup for it: %s", c->cpu, strerror(-rc));
		goto publish;
	}
	c->cg_ok = true;
	sbx_host_core_cgroup(cs->be.host, c->cpu, "cpu", path, sizeof(path));
	NEMO_INFO(CS_LOG, "harvesting cpu %d (NF '%s' lcore %u) cgroup=%s policy=%s", c->cpu,
		  smp->nf, smp->lcore_id, path, sched_harvest_policy_name(cs->cfg.policy));
publish:
	pthread_mutex_lock(&cs->lock);
	cs->n_cores++;
	pthread_mutex_unlock(&cs->lock);
	return c;
}

/*
 * The NF of a core is gone, or its channel went stale (killed but not reaped, stopped,
 * starved: harvester.h, HV_CORE_STALE): no window will release the core, so whatever was
 * frozen there would stay frozen and its invocations wait forever. The core is the NF's no
 * longer: thaw, bring moved sandboxes home, lift the interference quota, forget the streak;
 * said once, in one line. Called every pass while the NF is away: does nothing twice.
 */
static void release_gone(struct sched_cosched *cs, struct cs_core *c)
{
	int idx = (int)(c - cs->cores), thawed = c->n_frozen;
	bool moved = c->pub.moved_to >= 0, quota = c->iw_quota_us != 0;

	if (thawed)
		thaw_core(cs, c);
	if (moved)
		sbx_cgroup_core_pin(cs->be.host, c->cpu, c->cpu);
	if (quota && !sbx_cgroup_core_quota(cs->be.host, c->cpu, 0, CS_IW_PERIOD))
		c->iw_quota_us = 0;
	if (cs->rc[idx].reclaimed || thawed || moved || quota)
		NEMO_INFO(CS_LOG,
			  "cpu %d: its NF is away: reclaim undone (%d sandboxes thawed, cpuset %s, "
			  "quota %s)",
			  c->cpu, thawed, moved ? "home" : "unchanged", quota ? "lifted" : "none");
	cs->rc[idx].reclaimed = false;
	cs->rc[idx].below = cs->rc[idx].held = 0;
	pthread_mutex_lock(&cs->lock);
	c->pub.up = false;
	c->pub.reclaimed = false;
	c->pub.moved_to = -1;
	c->pub.s.frozen = 0;
	c->pub.s.sleep_floor_us = 0;
	pthread_mutex_unlock(&cs->lock);
}

/* ---- one window of one core ----------------------------------------------------------------- */

/* Under cs->lock: the last count of runnable threads, moved on by what started and ended since. */
static uint32_t runnable_now(const struct cs_core *c)
{
	uint32_t n = c->pub.s.runnable + c->placed_since;

	return n > c->done_since ? n - c->done_since : 0;
}

static void views_of(struct sched_cosched *cs, struct sched_core_view *v)
{
	for (int i = 0; i < cs->n_cores; i++) {
		const struct cs_core *c = &cs->cores[i];

		v[i] = (struct sched_core_view){
			.cpu = c->cpu,
			.spare_pred = c->pub.up && c->cg_ok ? c->pub.s.spare_pred : 0.0,
			.runnable = runnable_now(c),
			.thread_cap = cs->cfg.thread_cap,
			.reclaimed = c->pub.reclaimed || !c->pub.up || !c->cg_ok,
		};
	}
}

static void reclaim(struct sched_cosched *cs, int idx, double spare_ratio, uint64_t now,
		    uint64_t window_ns)
{
	struct cs_core *c = &cs->cores[idx];
	struct sched_core_view views[CS_MAX_CORES];
	struct sched_reclaim_decision d;
	bool was = cs->rc[idx].reclaimed;
	int rc = 0, n = 0;
	char failed[64] = "";

	if (spare_ratio < cs->cfg.reclaim.threshold && cs->rc[idx].below == 0)
		c->low_since_ns = now > window_ns ? now - window_ns : now;
	if (spare_ratio < cs->cfg.reclaim.freeze_below && cs->rc[idx].starved == 0)
		c->starved_since_ns = now > window_ns ? now - window_ns : now;
	views_of(cs, views);
	d = sched_reclaim_step(&cs->cfg.reclaim, cs->rc, idx, spare_ratio, views, cs->n_cores);
	if (d.starved && cs->cfg.hk_cpu >= 0 && cs->cfg.hk_cpu != c->cpu && hk_usable(cs)) {
		/* no NF core has spare and the NF needs its whole core: the housekeeping core is
		 * the place of last resort, if it has idle time; else freezing is what keeps both
		 * cores' pollers whole */
		d.action = SCHED_RECLAIM_MOVE;
		d.target_cpu = cs->cfg.hk_cpu;
		cs->rc[idx].last_action = SCHED_RECLAIM_MOVE;
	}
	switch (d.action) {
	case SCHED_RECLAIM_FREEZE:
		rc = freeze_core(cs, c);
		break;
	case SCHED_RECLAIM_MOVE:
		/*
		 * The core cgroup's cpuset goes to the target: the kernel migrates every sandbox
		 * at once, one in the middle of an invocation carries on there, and the pool's
		 * view of "core N" stays right for release.
		 */
		n = core_sandboxes(cs, c);
		rc = sbx_cgroup_core_pin(cs->be.host, c->cpu, d.target_cpu);
		break;
	case SCHED_RECLAIM_THAW:
		thaw_core(cs, c);
		break;
	default:
		break;
	}
	if (was && !cs->rc[idx].reclaimed && c->pub.moved_to >= 0)
		sbx_cgroup_core_pin(cs->be.host, c->cpu,
				    c->cpu); /* spare is back: the core's sandboxes come home */
	if (d.action == SCHED_RECLAIM_FREEZE || d.action == SCHED_RECLAIM_MOVE) {
		uint64_t reaction =
			nemo_now_ns() - (d.starved ? c->starved_since_ns : c->low_since_ns);

		if (rc)
			snprintf(failed, sizeof(failed), " (failed: %s)", strerror(-rc));
		NEMO_INFO(CS_LOG,
			  "cpu %d: reclaimed (%s, target cpu %d) after %u windows below %.2f: "
			  "reaction %.2f ms%s",
			  c->cpu, d.action == SCHED_RECLAIM_MOVE ? "move" : "freeze", d.target_cpu,
			  cs->cfg.reclaim.k_windows,
			  d.starved ? cs->cfg.reclaim.freeze_below : cs->cfg.reclaim.threshold,
			  reaction / 1e6, failed);
		pthread_mutex_lock(&cs->lock);
		c->pub.reclaims++;
		c->pub.reaction_last_ns = reaction;
		c->pub.reaction_sum_ns += reaction;
		if (reaction > c->pub.reaction_max_ns)
			c->pub.reaction_max_ns = reaction;
		if (d.action == SCHED_RECLAIM_MOVE) {
			c->pub.moved_to = d.target_cpu;
			c->pub.s.moved += n > 0 ? (uint64_t)n : 0;
		} else {
			c->pub.s.frozen = (uint32_t)c->n_frozen;
		}
		c->pub.reclaimed = true;
		pthread_mutex_unlock(&cs->lock);
	} else if (was && !cs->rc[idx].reclaimed) {
		NEMO_INFO(CS_LOG, "cpu %d: spare is back, harvesting again", c->cpu);
		pthread_mutex_lock(&cs->lock);
		c->pub.reclaimed = false;
		c->pub.moved_to = -1;
		c->pub.s.frozen = 0;
		pthread_mutex_unlock(&cs->lock);
	}
}

static void window(struct sched_cosched *cs, int idx, const struct hv_core_sample *smp, double pred)
{
	struct cs_core *c = &cs->cores[idx];
	const struct hv_window *w = &smp->w;
	uint64_t usage = 0, harvested = 0, hz = smp->tsc_hz ? smp->tsc_hz : 1;
	struct sched_iwatch_report rep = {0};
	double spare_ns = (double)w->spare * 1e9 / (double)hz, judged;
	int count = -1;
	bool counted = false, iw_read = false;
	uint32_t total, runnable = c->pub.s.runnable, resident;
	uint64_t fn_pkts = w->fn_pkts < w->rx_pkts ? w->fn_pkts : w->rx_pkts;

	if (!sbx_cgroup_cpu_harvested(cs->be.host, c->cpu, &usage)) {
		harvested = c->usage_primed && usage >= c->usage_prev ? usage - c->usage_prev : 0;
		c->usage_prev = usage;
		c->usage_primed = true;
	}
	pthread_mutex_lock(&cs->lock);
	resident = c->resident;
	pthread_mutex_unlock(&cs->lock);
	/*
	 * The NF's work on packets for a packet instance living here grows with that
	 * instance's traffic: counted as the NF's load, it reclaimed the core from the very
	 * function the packets are for (experiments/README.md, bench-packet table 5).
	 */
	judged = sched_reclaim_spare_ratio(w->total, w->busy, w->fn, resident > 0);
	reclaim(cs, idx, judged, nemo_now_ns(), smp->window_ns);
	if (c->iw) {
		uint64_t quota;

		/* the NF's own packets and cycles: a function's packet costs more, which is no
		 * interference */
		sched_iwatch_step(c->iw, w->busy - w->fn, w->rx_pkts - fn_pkts, harvested > 0,
				  &rep);
		/*
		 * Sandboxes do raise the NF's cycles per packet here (cache and TLB refills after
		 * each wake-up: 111 -> 175 at 30 % load), but that costs the NF only headroom it
		 * does not need. The watch keeps learning; its quota applies while the core's spare
		 * is under CS_IW_GUARD, where inflated packet costs start to eat the NF's margin.
		 */
		quota = judged < CS_IW_GUARD ? rep.quota_us : 0;
		rep.throttled = quota != 0;
		if (quota != c->iw_quota_us) {
			char cpp[112];

			/* a window with too few packets has no cycles per packet: no 0.0 */
			if (rep.cpp_shared > 0.0 || rep.cpp_baseline > 0.0)
				snprintf(cpp, sizeof(cpp),
					 "cycles/packet %.1f with sandboxes, %.1f without "
					 "(ratio %.2f, bound %.2f)",
					 rep.cpp_shared, rep.cpp_baseline, rep.ratio,
					 cs->cfg.interference_bound);
			else
				snprintf(cpp, sizeof(cpp),
					 "%llu packets in the window, too few for cycles/packet",
					 (unsigned long long)w->rx_pkts);
			NEMO_INFO(CS_LOG,
				  "cpu %d: interference watch: %s, spare %.2f: quota %llu us of %d",
				  c->cpu, cpp, judged, (unsigned long long)quota, CS_IW_PERIOD);
			if (!sbx_cgroup_core_quota(cs->be.host, c->cpu, quota, CS_IW_PERIOD))
				c->iw_quota_us = quota;
		}
	}
	if (c->windows++ % CS_COUNT_EVERY == 0) {
		counted = !sbx_cgroup_core_threads(cs->be.host, c->cpu, &total, &runnable);
		count = core_sandboxes(cs, c);
		/* the perf counters it opened on the lcore: read, so /metrics shows them */
		if (c->iw && !c->iw_read_failed) {
			iw_read = !sched_iwatch_read(c->iw);
			c->iw_read_failed = !iw_read; /* logged once by the watch; not again */
		}
	}
	pthread_mutex_lock(&cs->lock);
	c->pub.up = true;
	c->pub.spare_ratio = w->spare_ratio;
	c->pub.busy_ratio = w->total ? (double)w->busy / (double)w->total : 0.0;
	c->pub.fn_ratio = w->total ? (double)w->fn / (double)w->total : 0.0;
	c->pub.reclaim_spare = judged;
	c->pub.resident = resident;
	c->pub.harvested_ratio = smp->window_ns ? (double)harvested / (double)smp->window_ns : 0.0;
	c->pub.spare_s_total += spare_ns / 1e9;
	c->pub.harvested_s_total += (double)harvested / 1e9;
	c->pub.total_s_total += (double)smp->window_ns / 1e9;
	c->pub.s.spare_cycles = w->spare;
	c->pub.s.total_cycles = w->total;
	c->pub.s.spare_pred = pred;
	c->pub.s.harvested_ns = harvested;
	c->pub.s.harvest_ratio = sched_harvest_ratio(harvested, w->spare, hz);
	if (counted) {
		c->pub.s.runnable = runnable;
		c->placed_since = c->done_since = 0;
	}
	if (count >= 0)
		c->pub.s.warm = (uint32_t)count;
	if (iw_read) {
		int n;
		const struct sched_counter *ctr = sched_iwatch_counters(c->iw, &n);

		c->pub.iw_n = n < SCHED_IW_COUNTERS ? n : SCHED_IW_COUNTERS;
		memcpy(c->pub.iw_ctr, ctr, sizeof(ctr[0]) * (size_t)c->pub.iw_n);
		c->pub.iw_read = true;
	}
	c->pub.s.throttled += rep.throttled;
	pthread_mutex_unlock(&cs->lock);
}

/*
 * The housekeeping core is the overflow and the place of last resort for moved sandboxes, but
 * only while it has idle time: a core that something busy-polls (a traffic generator, another
 * poll-mode process) gives a default-weight sandbox whole scheduler slices and stalls that
 * poller for milliseconds. Read its idle share from /proc/stat every CS_HK_EVERY_NS.
 */
static void hk_sample(struct sched_cosched *cs, uint64_t now)
{
	char line[256], want[16];
	unsigned long long v[8] = {0};
	FILE *f;
	int wl;

	if (cs->cfg.hk_cpu < 0 || now - cs->hk_sampled_ns < CS_HK_EVERY_NS)
		return;
	cs->hk_sampled_ns = now;
	wl = snprintf(want, sizeof(want), "cpu%d ", cs->cfg.hk_cpu);
	f = fopen("/proc/stat", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		uint64_t idle, all = 0;
		double share;

		if (strncmp(line, want, (size_t)wl))
			continue;
		if (sscanf(line + wl, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
			   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 5)
			break;
		for (int i = 0; i < 8; i++)
			all += v[i];
		idle = v[3] + v[4];
		if (cs->hk_all_ticks && all > cs->hk_all_ticks) {
			share = (double)(idle - cs->hk_idle_ticks) /
				(double)(all - cs->hk_all_ticks);
			pthread_mutex_lock(&cs->lock);
			if ((cs->hk_idle < 0 || cs->hk_idle >= CS_HK_MIN_IDLE) !=
			    (share >= CS_HK_MIN_IDLE))
				NEMO_INFO(
					CS_LOG,
					"housekeeping cpu %d idle %.0f %%: %s as overflow and move "
					"target",
					cs->cfg.hk_cpu, 100 * share,
					share >= CS_HK_MIN_IDLE ? "usable" : "not used");
			cs->hk_idle = share;
			pthread_mutex_unlock(&cs->lock);
		}
		cs->hk_idle_ticks = idle;
		cs->hk_all_ticks = all;
		break;
	}
	fclose(f);
}

/* Under cs->lock or on the loop thread. Not known yet counts as usable, as before. */
static bool hk_usable(const struct sched_cosched *cs)
{
	return cs->cfg.hk_cpu >= 0 && (cs->hk_idle < 0 || cs->hk_idle >= CS_HK_MIN_IDLE);
}

uint64_t sched_sleep_floor_ns(uint32_t floor_us, uint32_t budget_us, double spare)
{
	double f = floor_us;

	if (budget_us && spare >= 0.0 && budget_us * spare < f)
		f = budget_us * spare;
	return (uint64_t)(f * 1000.0);
}

/*
 * While sandboxes work on the core, ask its NF lcore to sleep longer at a time
 * (harvest_channel.h says why: 20 us sleeps left a CPU hog half the spare here, 300 us sleeps
 * 0.91-0.93 of it; bench_harvest.py --only 0): nf_sleep_floor_us, shrunk by the delay budget
 * as the NF's spare falls (sched_sleep_floor_ns). The request is a lease renewed every window
 * and withdrawn when they stop, so an NF with nothing beside it keeps its short sleeps and its
 * latency.
 */
static int64_t nf_sleep_floor(struct sched_cosched *cs, struct cs_core *c)
{
	uint64_t floor_ns = 0;
	bool want;

	if (!cs->cfg.nf_sleep_floor_us)
		return -1;
	pthread_mutex_lock(&cs->lock);
	want = !c->pub.reclaimed &&
	       (c->pub.s.harvested_ns > 0 || runnable_now(c) > 0 || c->resident > 0);
	if (want)
		floor_ns = sched_sleep_floor_ns(cs->cfg.nf_sleep_floor_us,
						cs->cfg.nf_delay_budget_us, c->pub.s.spare_pred);
	c->pub.s.sleep_floor_us = (uint32_t)(floor_ns / 1000);
	pthread_mutex_unlock(&cs->lock);
	return (int64_t)floor_ns;
}

/* ---- what the harvest loop hands over ------------------------------------------------------- */

static int64_t on_core(void *arg, const struct hv_core_view *v)
{
	struct sched_cosched *cs = arg;
	const struct hv_core_sample *smp = v->smp;
	struct cs_core *c = core_get(cs, smp);

	if (!c || !c->online || !c->cg_ok)
		return -1;
	if (smp->state != HV_CORE_UP) {
		if (c->pub.up)
			NEMO_WARN(CS_LOG,
				  "cpu %d: NF '%s' %s: no spare known, placing nothing there",
				  c->cpu, smp->nf,
				  smp->state == HV_CORE_STALE ? "stopped publishing (stale channel)"
							      : "is gone");
		release_gone(cs, c);
		return -1;
	}
	if (smp->generation != c->generation) {
		c->generation = smp->generation;
		core_iwatch(cs, c, smp);
	}
	window(cs, (int)(c - cs->cores), smp, v->spare_pred);
	return nf_sleep_floor(cs, c);
}

static void on_pass(void *arg)
{
	struct sched_cosched *cs = arg;

	hk_sample(cs, nemo_now_ns());
	pthread_mutex_lock(&cs->lock);
	pthread_cond_broadcast(&cs->window_cond);
	pthread_mutex_unlock(&cs->lock);
}

static int on_plan_cores(void *arg, struct hv_plan_core *pc, int max)
{
	struct sched_cosched *cs = arg;
	int n = 0;

	pthread_mutex_lock(&cs->lock);
	for (int i = 0; i < cs->n_cores && n < max; i++) {
		const struct cs_core *c = &cs->cores[i];

		if (!c->cg_ok || !c->pub.up || c->pub.reclaimed)
			continue;
		pc[n++] = (struct hv_plan_core){
			.cpu = (uint32_t)c->cpu,
			.spare_cps = c->pub.s.spare_pred * 1e9, /* spare ns per second */
			.mem_free = UINT64_MAX,
			.max_instances = cs->cfg.thread_cap,
		};
	}
	pthread_mutex_unlock(&cs->lock);
	return n;
}

static struct cs_fn *fn_get(struct sched_cosched *cs, const char *name);

static void on_prewarm(void *arg, const char *name, uint32_t want, uint32_t cpu, double forecast)
{
	struct sched_cosched *cs = arg;
	uint32_t idle = 0;
	struct cs_fn *fn;
	int made;

	if (cs->be.idle(cs->be.arg, name, &idle) || idle >= want)
		return;
	/* a few per beat: warm-up is paid from spare, and spare is what we measure next */
	made = cs->be.prewarm(cs->be.arg, name, (int)cpu, want - idle > 2 ? 2 : (int)(want - idle));
	if (made <= 0)
		return;
	pthread_mutex_lock(&cs->lock);
	fn = fn_get(cs, name);
	for (int i = 0; i < cs->n_cores; i++) {
		struct cs_core *c = &cs->cores[i];

		if (c->cpu != (int)cpu || !c->cg_ok || !c->pub.up || c->pub.reclaimed)
			continue;
		c->pub.prewarmed += (uint64_t)made;
		if (fn)
			fn->on_core[i] += (uint32_t)made;
	}
	pthread_mutex_unlock(&cs->lock);
	NEMO_DEBUG(CS_LOG, "prewarmed function=%s cpu=%u instances=%d forecast=%.2f/s", name, cpu,
		   made, forecast);
}

/* ---- life cycle ----------------------------------------------------------------------------- */

struct sched_cosched *sched_cosched_new(const struct sched_cosched_config *cfg,
					const struct sched_cosched_backend *be)
{
	static const struct hv_loop_ops ops = {
		.core = on_core,
		.pass = on_pass,
		.plan_cores = on_plan_cores,
		.prewarm = on_prewarm,
	};
	struct hv_loop_config lc = {0};
	struct sched_cosched *cs;
	int rc;

	if (!cfg || !be || !be->prewarm || !be->idle || !be->host || cfg->period_ms < 1 ||
	    cfg->period_ms > 10 || !cfg->n_channels || cfg->n_channels > SCHED_CS_MAX_CHANNELS ||
	    sched_reclaim_config_check(&cfg->reclaim) || cfg->forecast_ms < 10) {
		NEMO_ERR(CS_LOG,
			 "bad co-scheduler config (a backend with prewarm, idle and the sandbox "
			 "host; period 1..10 ms, 1..%d channels, "
			 "reclaim threshold <= release in [0, 1], forecast >= 10 ms)",
			 SCHED_CS_MAX_CHANNELS);
		errno = EINVAL;
		return NULL;
	}
	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return NULL;
	cs->cores = aligned_alloc(64, sizeof(*cs->cores) * CS_MAX_CORES);
	if (!cs->cores) {
		free(cs);
		errno = ENOMEM;
		return NULL;
	}
	memset(cs->cores, 0, sizeof(*cs->cores) * CS_MAX_CORES);
	cs->cfg = *cfg;
	cs->hk_idle = -1.0;
	cs->be = *be;
	/* the machine as hwloc sees it: a channel naming a CPU that is not online is refused */
	cs->topo_ok = !sched_topology_discover(&cs->topo, NULL, 0, NULL, 0);
	lc.period_ms = cfg->period_ms;
	lc.n_channels = cfg->n_channels;
	for (uint32_t i = 0; i < cfg->n_channels; i++)
		lc.channels[i] = cs->cfg.channels[i];
	lc.predictor = cs->cfg.predictor;
	lc.forecast_ms = cfg->forecast_ms;
	lc.prewarm = cfg->prewarm;
	pthread_mutex_init(&cs->lock, NULL);
	pthread_cond_init(&cs->window_cond, NULL);
	/* the harvester's loop hands each window and each pre-warm target to the ops above */
	cs->loop = hv_loop_new(&lc, &ops, cs);
	if (!cs->loop) {
		rc = -errno;
		goto fail_lock;
	}
	if (!be->freeze_core)
		NEMO_WARN(CS_LOG, "the sandbox backend cannot freeze: a reclaim that finds no core "
				  "to move sandboxes to leaves them running");
	NEMO_INFO(CS_LOG,
		  "harvest loop period_ms=%u channels=%u first=%s predictor=%s prewarm=%d "
		  "policy=%s thread_cap=%u reclaim=%.2f/%u/%s overflow=%s deadline_ms=%llu "
		  "hk_cpu=%d interference=%d bound=%.2f cgroup=%s",
		  cfg->period_ms, cfg->n_channels, cfg->channels[0], cfg->predictor, cfg->prewarm,
		  sched_harvest_policy_name(cfg->policy), cfg->thread_cap, cfg->reclaim.threshold,
		  cfg->reclaim.k_windows,
		  cfg->reclaim.prefer == SCHED_RECLAIM_MOVE ? "move" : "freeze",
		  cfg->overflow == SCHED_OVERFLOW_QUEUE ? "queue" : "housekeeping",
		  (unsigned long long)cfg->queue_deadline_ms, cfg->hk_cpu, cfg->interference,
		  cfg->interference_bound, sbx_host_cgroup_backend(be->host));
	return cs;

fail_lock:
	pthread_cond_destroy(&cs->window_cond);
	pthread_mutex_destroy(&cs->lock);
	free(cs->cores);
	free(cs);
	errno = -rc;
	return NULL;
}

void sched_cosched_destroy(struct sched_cosched *cs)
{
	if (!cs)
		return;
	atomic_store(&cs->stop, true);
	hv_loop_destroy(cs->loop); /* no window or target comes after this */
	pthread_mutex_lock(&cs->lock);
	pthread_cond_broadcast(&cs->window_cond);
	pthread_mutex_unlock(&cs->lock);
	for (int i = 0; i < cs->n_cores; i++) {
		struct cs_core *c = &cs->cores[i];

		if (!c->cg_ok)
			continue;
		/* leave the cores as we found them: nothing frozen, throttled or elsewhere */
		if (c->n_frozen)
			thaw_core(cs, c);
		if (c->pub.moved_to >= 0)
			sbx_cgroup_core_pin(cs->be.host, c->cpu, c->cpu);
		if (c->iw) {
			sbx_cgroup_core_quota(cs->be.host, c->cpu, 0, CS_IW_PERIOD);
			sched_iwatch_destroy(c->iw);
		}
	}
	pthread_cond_destroy(&cs->window_cond);
	pthread_mutex_destroy(&cs->lock);
	free(cs->cores);
	free(cs);
}

/* ---- placement ------------------------------------------------------------------------------ */

static struct cs_fn *fn_get(struct sched_cosched *cs, const char *name)
{
	for (int i = 0; i < cs->n_fns; i++)
		if (!strcmp(cs->fns[i].name, name))
			return &cs->fns[i];
	if (cs->n_fns >= CS_MAX_FNS)
		return NULL;
	memset(&cs->fns[cs->n_fns], 0, sizeof(cs->fns[0]));
	snprintf(cs->fns[cs->n_fns].name, sizeof(cs->fns[0].name), "%s", name);
	return &cs->fns[cs->n_fns++];
}

/* Under cs->lock. */
static void place_locked(struct sched_cosched *cs, struct cs_fn *fn, uint32_t idle,
			 struct sched_placement *p)
{
	struct sched_core_view views[CS_MAX_CORES];
	struct sched_dispatch_config dc = {
		.min_spare = cs->cfg.reclaim.threshold > 0.05 ? cs->cfg.reclaim.threshold : 0.05,
		/* a busy housekeeping core is no overflow: wait for spare up to the deadline */
		.overflow = hk_usable(cs) ? cs->cfg.overflow : SCHED_OVERFLOW_QUEUE,
		.hk_cpu = cs->cfg.hk_cpu,
		.deadline_ns = cs->cfg.queue_deadline_ms * 1000000ull,
	};

	views_of(cs, views);
	for (int i = 0; i < cs->n_cores && fn; i++)
		views[i].warm_idle = idle && fn->on_core[i] ? 1 : 0;
	if (sched_dispatch_most_spare.place(&dc, views, cs->n_cores, nemo_now_ns(), p))
		*p = (struct sched_placement){SCHED_PLACE_HOUSEKEEPING, cs->cfg.hk_cpu, -1, 0};
}

int sched_cosched_place(struct sched_cosched *cs, const char *fn_name, int *cpu, int *kind)
{
	struct sched_placement p;
	struct cs_fn *fn;
	uint32_t idle = 0;
	uint64_t deadline = 0;

	cs->be.idle(cs->be.arg, fn_name, &idle);
	hv_loop_arrival(cs->loop, fn_name); /* demand is the harvester's to forecast */
	pthread_mutex_lock(&cs->lock);
	fn = fn_get(cs, fn_name);
	place_locked(cs, fn, idle, &p);
	if (p.kind == SCHED_PLACE_QUEUE) {
		struct timespec until;

		uint64_t hard;

		deadline = nemo_now_ns() + cs->cfg.queue_deadline_ms * 1000000ull;
		hard = deadline + CS_HK_BUSY_WAIT_NS;
		/*
		 * Wait for spare window by window, up to the deadline; past it, while the
		 * housekeeping core is busy-polled, go on waiting up to `hard`: measured here,
		 * overflow sandboxes on the generator's core cost 288 packets and +4.7 ms p99.
		 */
		while (p.kind == SCHED_PLACE_QUEUE && !atomic_load(&cs->stop)) {
			uint64_t t = nemo_now_ns(), until_ns = t < deadline ? deadline : hard;

			if (t >= deadline && (hk_usable(cs) || t >= hard))
				break;
			until = nemo_deadline_after_ns(CLOCK_REALTIME, until_ns - t);
			pthread_cond_timedwait(&cs->window_cond, &cs->lock, &until);
			place_locked(cs, fn, idle, &p);
		}
		if (p.kind == SCHED_PLACE_QUEUE)
			p = (struct sched_placement){SCHED_PLACE_HOUSEKEEPING, cs->cfg.hk_cpu, -1,
						     0};
	}
	if (p.core_idx >= 0 && p.core_idx < cs->n_cores)
		cs->cores[p.core_idx].placed_since++;
	pthread_mutex_unlock(&cs->lock);
	*cpu = p.cpu >= 0 ? p.cpu : cs->cfg.hk_cpu;
	*kind = p.kind;
	return 0;
}

void sched_cosched_observe(struct sched_cosched *cs, const char *fn_name, int cpu, int start_path,
			   uint64_t init_ns, uint64_t run_ns)
{
	struct cs_fn *fn;

	hv_loop_cost(cs->loop, fn_name, run_ns, start_path == SBX_START_COLD ? init_ns : 0);
	pthread_mutex_lock(&cs->lock);
	fn = fn_get(cs, fn_name);
	for (int i = 0; i < cs->n_cores; i++) {
		if (cs->cores[i].cpu != cpu)
			continue;
		cs->cores[i].pub.invocations++;
		cs->cores[i].done_since++;
		if (start_path >= 0 && start_path < SBX_START_PATHS)
			cs->cores[i].pub.starts[start_path]++;
		if (fn && start_path == SBX_START_COLD)
			fn->on_core[i]++;
	}
	/* a slot may have come free: queued placements look again now, not at the next window */
	pthread_cond_broadcast(&cs->window_cond);
	pthread_mutex_unlock(&cs->lock);
}

void sched_cosched_resident(struct sched_cosched *cs, int cpu, int delta)
{
	pthread_mutex_lock(&cs->lock);
	for (int i = 0; i < cs->n_cores; i++) {
		struct cs_core *c = &cs->cores[i];

		if (c->cpu != cpu)
			continue;
		if (delta < 0 && c->resident < (uint32_t)-delta)
			c->resident = 0;
		else
			c->resident = (uint32_t)((int64_t)c->resident + delta);
	}
	pthread_mutex_unlock(&cs->lock);
}

int sched_cosched_cores(struct sched_cosched *cs, struct sched_cosched_core *out, int max)
{
	int n;

	pthread_mutex_lock(&cs->lock);
	n = cs->n_cores < max ? cs->n_cores : max;
	for (int i = 0; i < n; i++) {
		out[i] = cs->cores[i].pub;
		out[i].s.cpu = cs->cores[i].cpu;
		out[i].s.thread_cap = cs->cfg.thread_cap;
	}
	pthread_mutex_unlock(&cs->lock);
	return n;
}

int sched_cosched_metrics(struct sched_cosched *cs, char *buf, size_t len)
{
	struct sched_cosched_core cores[CS_MAX_CORES];
	int n = sched_cosched_cores(cs, cores, CS_MAX_CORES);

	return sched_metrics_format_cosched(cores, n, buf, len);
}
