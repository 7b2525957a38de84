/* nf.h - nemo-nf's library: config, cycle accounting, harvest-channel writer and the runtime. */
#ifndef NEMO_NF_H
#define NEMO_NF_H

#include <stdbool.h>
#include <stdint.h>

#include "nemo/config.h"
#include "nemo/harvest_channel.h"

#define NF_NAME_MAX	    HC_NAME_MAX
#define NF_MAX_PORTS	    8
#define NF_MAX_LCORES	    16
#define NF_MAX_RX_PER_LCORE 8
#define NF_MAX_CHAIN	    8
#define NF_DEVARGS_MAX	    256

/* ---- configuration (the JSON files in configs/, parsed through the key table in nf_config.c) ---- */

struct nf_port_config {
	char vdev[NF_DEVARGS_MAX]; /* "net_memif0,role=server,socket=..." or empty */
	char pci[32];		   /* "0000:01:00.0" or empty; exactly one of vdev/pci */
	uint32_t rx_queues;
	uint32_t tx_queues;
	uint32_t rx_ring;	/* rx descriptors per queue */
	uint32_t tx_ring;	/* tx descriptors per queue */
	uint64_t line_rate_pps; /* fastest the peer can fill the rx ring; bounds max sleep */
	bool promiscuous;
};

struct nf_rx_queue_ref {
	uint16_t port;
	uint16_t queue;
};

enum nf_idle_detect {
	NF_IDLE_DETECT_TIME = 0,  /* from time and the learnt gaps (see struct nf_idle) */
	NF_IDLE_DETECT_COUNT = 1, /* after empty_polls empty iterations, nothing else */
};

struct nf_idle_config {
	int policy;		  /* enum hc_idle_policy */
	int detect;		  /* enum nf_idle_detect */
	uint32_t empty_polls;	  /* count: empty iterations before the first sleep (256); time:
				   * an upper bound on them, 0 = none */
	uint32_t idle_poll_us;	  /* time: longest empty polling before the first sleep; 0 = the
				   * wake-up cost measured at start */
	uint32_t min_sleep_us;	  /* first sleep; doubles up to max */
	uint32_t max_sleep_us;	  /* 0 = derive from the rx rings (nf_max_sleep_ns) */
	uint32_t intr_timeout_ms; /* interrupt policy: longest epoll wait */
};

struct nf_sched_config {
	int policy;   /* enum hc_sched_policy */
	int priority; /* SCHED_FIFO priority 1..99 */
	int nice;     /* SCHED_OTHER nice -20..19 */
};

struct nf_lcore_config {
	uint32_t lcore_id; /* DPDK lcore id */
	uint32_t cpu;	   /* CPU it is pinned to */
	uint32_t nb_rx;
	struct nf_rx_queue_ref rx[NF_MAX_RX_PER_LCORE];
	uint32_t chain_len;
	char chain_names[NF_MAX_CHAIN][32];
	cJSON *chain_cfg[NF_MAX_CHAIN]; /* each module's object, owned by nf_config.json */
	struct nf_idle_config idle;
	struct nf_sched_config sched;
};

struct nf_config {
	char file[256];
	char name[NF_NAME_MAX];
	uint32_t main_lcore; /* the control lcore: stats, telemetry */
	uint32_t main_cpu;
	uint32_t memory_mb;
	bool hugepages;
	uint32_t mbufs; /* 0 = derive from the rings */
	uint32_t burst;
	uint32_t publish_period_us;
	uint32_t stats_interval_ms;  /* live per-lcore lines; 0 = off */
	uint32_t delay_sample_every; /* time 1 in N packets' own delay (nemo-gen stamps); 0 = off */
	uint32_t nb_ports;
	struct nf_port_config ports[NF_MAX_PORTS];
	uint32_t nb_lcores;
	struct nf_lcore_config lcores[NF_MAX_LCORES];
	char fn_socket[108]; /* the fn modules' lease server; "" = /run/nemo/<name>.fn.sock */
	cJSON *json;	     /* the parsed file, kept for module configs */
};

/*
 * Load and check `file`: key types, ranges, cross-field rules (queues exist, each rx queue
 * polled by one lcore, lcores and CPUs distinct, module names known, max sleep within the
 * ring bound). Errors go to ctx->err naming the file and key. Returns 0 or -EINVAL/-errno.
 */
int nf_config_load(const char *file, struct nf_config *cfg, struct cfg_ctx *ctx);
/* Parse from JSON text (tests). `file` is only used in messages. */
int nf_config_parse(const char *text, const char *file, struct nf_config *cfg, struct cfg_ctx *ctx);
void nf_config_free(struct nf_config *cfg);
/* Log the effective configuration, one line per port and lcore. */
void nf_config_log(const struct nf_config *cfg);

/*
 * The longest sleep that cannot overflow an rx ring: a ring of `ring` descriptors fills in
 * ring / line_rate seconds; the lcore must be back before that, and a timed sleep overshoots
 * by up to the wake-up latency, so that margin is taken off. Returns ns; 0 when the ring
 * fills faster than a sleeping lcore can wake.
 */
uint64_t nf_max_sleep_ns(uint32_t ring, uint64_t line_rate_pps, uint64_t wake_latency_ns);
#define NF_WAKE_LATENCY_NS 40000ull /* measured 16-35 us here (DESIGN.md), rounded up */

/* ---- cycle accounting (per lcore, plain counters, one writer) ---- */

struct nf_acct {
	uint64_t start_tsc;
	uint64_t last_tsc; /* end of the last accounted interval */
	uint64_t busy;
	uint64_t idle_poll;
	uint64_t sleep;
	uint64_t iterations;
	uint64_t busy_iterations;
	uint64_t sleeps;
	uint64_t idle_start_tsc; /* end of the last busy iteration (idle period start) */
	uint64_t tsc_per_us;
	uint64_t idle_hist[HC_IDLE_BUCKETS];
};

void nf_acct_init(struct nf_acct *a, uint64_t now_tsc, uint64_t tsc_hz);

/* Charge the interval since the last call to busy (moved >= 1 packet) or idle_poll. */
static inline void nf_acct_iteration(struct nf_acct *a, uint64_t now_tsc, bool busy)
{
	uint64_t d = now_tsc - a->last_tsc;

	a->last_tsc = now_tsc;
	a->iterations++;
	if (busy) {
		if (a->idle_start_tsc) {
			/* an idle period just ended: bucket its length, log2 of microseconds */
			uint64_t us = (now_tsc - d - a->idle_start_tsc) / a->tsc_per_us;
			unsigned int b = us < 2 ? 0 : 63 - (unsigned int)__builtin_clzll(us);

			a->idle_hist[b < HC_IDLE_BUCKETS ? b : HC_IDLE_BUCKETS - 1]++;
			a->idle_start_tsc = 0;
		}
		a->busy += d;
		a->busy_iterations++;
	} else {
		if (!a->idle_start_tsc)
			a->idle_start_tsc = now_tsc - d;
		a->idle_poll += d;
	}
}

/* Charge the interval since the last call to sleep (the lcore yielded the core). */
static inline void nf_acct_sleep(struct nf_acct *a, uint64_t now_tsc)
{
	a->sleep += now_tsc - a->last_tsc;
	a->last_tsc = now_tsc;
	a->sleeps++;
}

static inline uint64_t nf_acct_total(const struct nf_acct *a)
{
	return a->last_tsc - a->start_tsc;
}

/* ---- the NF's own delay, timed from nemo-gen's stamps (per lcore, plain, one writer) ---- */

/*
 * A latency histogram that a lcore fills from its packet loop (a few ALU ops and three stores
 * per value) and that telemetry carries whole: NF_DELAY_BUCKETS counts, log-linear in units of
 * 2^NF_DELAY_UNIT_SHIFT ns. Below 2 us a bucket is 32 ns wide; above, each power of two has
 * 32 buckets, so a bucket is at most 1/32 of its value wide and the reported midpoint is within
 * 1.6 %. Values of 2^25 ns (33.5 ms) and more share the top bucket; max_ns stays exact.
 */
#define NF_DELAY_UNIT_SHIFT 5
#define NF_DELAY_SUB_BITS   6
#define NF_DELAY_BUCKETS    512

struct nf_delay_hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t max_ns;
	uint64_t buckets[NF_DELAY_BUCKETS];
};

static inline uint32_t nf_delay_index(uint64_t ns)
{
	uint64_t u = ns >> NF_DELAY_UNIT_SHIFT;
	unsigned int shift;
	uint64_t idx;

	if (u < (1u << NF_DELAY_SUB_BITS))
		return (uint32_t)u;
	shift = 63 - (unsigned int)__builtin_clzll(u) - (NF_DELAY_SUB_BITS - 1);
	idx = ((uint64_t)shift << (NF_DELAY_SUB_BITS - 1)) + (u >> shift);
	return idx < NF_DELAY_BUCKETS ? (uint32_t)idx : NF_DELAY_BUCKETS - 1;
}

/* Count `n` values of `ns` each. */
static inline void nf_delay_record(struct nf_delay_hist *h, uint64_t ns, uint32_t n)
{
	h->buckets[nf_delay_index(ns)] += n;
	h->count += n;
	h->sum_ns += ns * n;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

/* The values bucket `idx` holds, in ns: [*lo_ns, *hi_ns]. */
void nf_delay_bucket_bounds(uint32_t idx, uint64_t *lo_ns, uint64_t *hi_ns);
/*
 * The value at percentile pct (0 < pct <= 100) of `h`, in ns: the midpoint of the bucket that
 * holds that rank, at most max_ns; 0 if the histogram is empty. `h` may be written
 * by its lcore meanwhile: the figure is then that of a moment during the call.
 */
uint64_t nf_delay_percentile(const struct nf_delay_hist *h, double pct);

/* ---- idle detection (per lcore, plain state, one writer, no syscalls) ---- */

/*
 * When a lcore stops polling and yields, decided from time and from the gaps it has seen,
 * never from a count of iterations alone (an iteration lasts twice as long on a slow host):
 *  - it polls an empty queue for at most `budget` cycles, by default `break_even`: the
 *    shortest sleep plus the wake-up cost measured at start. A gap that ends within that
 *    time would have ended before a sleep did, so polling through it costs no latency;
 *    polling longer only burns the core;
 *  - it yields at once when the predicted gap (an EWMA of the idle gaps it has seen) is at
 *    least `break_even`: it will be back before the next packet, so the sleep costs it no
 *    latency;
 *  - while a harvester holds a sleep-floor lease (sandboxes wait for the core), it yields on
 *    the first empty poll: every polled microsecond is one the sandboxes lose, and the
 *    harvester has already accepted the floor's latency.
 * A gap that ends on the first poll after a sleep is known only to lie within that sleep:
 * it is learnt as ending halfway through it, so that a wrong "sleep at once" corrects itself.
 */
struct nf_idle {
	uint64_t budget;      /* cycles of empty polling before the first sleep */
	uint64_t break_even;  /* cycles: a predicted gap this long yields at once */
	uint32_t max_empty;   /* bound on consecutive empty polls; 0 = none */
	bool count_only;      /* NF_IDLE_DETECT_COUNT: max_empty alone decides */
	int64_t gap_ewma;     /* predicted idle gap, cycles (weight 1/8) */
	uint64_t idle_since;  /* TSC at the start of the current empty stretch; 0 = none */
	uint32_t empty;	      /* consecutive empty polls */
	uint64_t woke_tsc;    /* end of the last sleep */
	uint64_t last_sleep;  /* cycles of the last sleep */
	uint64_t gaps_learnt; /* idle gaps fed to the EWMA */
};

/*
 * Set up `s` for `cfg` on a TSC of `tsc_hz`, with the wake-up cost measured on this host
 * (nf_wake_cost_measure()). Cannot fail.
 */
void nf_idle_init(struct nf_idle *s, const struct nf_idle_config *cfg, uint64_t tsc_hz,
		  uint64_t wake_cost_ns);

/* A poll round that started at `iter_start` moved packets: learn the gap it ended, if any. */
static inline void nf_idle_busy(struct nf_idle *s, uint64_t iter_start)
{
	if (s->idle_since) {
		int64_t gap = (int64_t)(iter_start - s->idle_since);

		if (iter_start == s->woke_tsc)
			gap -= (int64_t)(s->last_sleep / 2);
		s->gap_ewma += (gap - s->gap_ewma) / 8;
		s->gaps_learnt++;
		s->idle_since = 0;
	}
	s->empty = 0;
}

/*
 * A poll round from `iter_start` to `now` moved nothing. `lease`: a harvester waits for the
 * core. Returns true when the lcore should yield now.
 */
static inline bool nf_idle_empty(struct nf_idle *s, uint64_t iter_start, uint64_t now, bool lease)
{
	if (!s->idle_since)
		s->idle_since = iter_start;
	if (s->empty < UINT32_MAX)
		s->empty++;
	if (s->count_only)
		return s->empty >= s->max_empty;
	return lease || s->gap_ewma >= (int64_t)s->break_even || now - s->idle_since >= s->budget ||
	       (s->max_empty && s->empty >= s->max_empty);
}

/* The lcore slept from `start` to `now`. */
static inline void nf_idle_slept(struct nf_idle *s, uint64_t start, uint64_t now)
{
	s->woke_tsc = now;
	s->last_sleep = now - start;
}

/*
 * RT budget guard. A lcore at SCHED_FIFO is stalled by the kernel's RT throttling once it
 * runs more than sched_rt_runtime_us of a sched_rt_period_us (950 of 1000 ms by default):
 * the rest of the period, up to 50 ms, no packet moves. The idle policy alone does not keep
 * it off: at 30 % load the gaps are shorter than the break-even, so it polls them, and a
 * lcore here slept 9-11 % of its time by its own count and ran 98-99 % of its busiest
 * second by the kernel's (p99.9 34-40 ms; bench-nf table 8). The guard counts what the lcore slept in slices of `slice` cycles and, once a tenth
 * of a slice has gone by with less than `min_pct` of it asleep, asks for a sleep on the next
 * empty poll (as a harvester's lease does). `min_pct` is three times the share the kernel
 * reserves, because the lcore's sleep, timed around clock_nanosleep, includes a wake-up the
 * kernel charges as run time: at twice, the lcore counted itself 17-18 % asleep and the
 * kernel still saw it run 95 % of its busiest second; at three times, 93 % (bench-nf table
 * 8). Plain state, one writer, no syscalls.
 */
struct nf_rt_guard {
	uint64_t slice;	  /* cycles; 0: off (not an RT lcore, or no RT throttling) */
	uint32_t min_pct; /* the sleep share to keep in every slice, percent */
	uint64_t start;	  /* TSC at the start of the current slice */
	uint64_t slept;	  /* cycles asleep in it */
	uint64_t forced;  /* sleeps the guard asked for */
};

/* Should the lcore sleep on this empty poll to stay within the RT budget? */
static inline bool nf_rt_guard_due(struct nf_rt_guard *g, uint64_t now)
{
	uint64_t el;

	if (!g->slice)
		return false;
	el = now - g->start;
	if (el >= g->slice) {
		g->start = now;
		g->slept = 0;
		return false;
	}
	if (el * 10 < g->slice || g->slept * 100 >= el * g->min_pct)
		return false;
	g->forced++;
	return true;
}

/* The lcore slept from `start` to `now`. */
static inline void nf_rt_guard_slept(struct nf_rt_guard *g, uint64_t start, uint64_t now)
{
	g->slept += now - start;
}

/* What the wake-up cost measurement found, in ns. */
struct nf_wake_cost {
	uint64_t median_ns; /* the wake-up cost: overshoot of a short timed sleep, median */
	uint64_t p90_ns;    /* its 90th percentile, the margin the ring-fill bound keeps */
	uint32_t samples;
};

/*
 * Time `samples` (at most 64) short timed sleeps on the calling thread, which must already
 * run on its own core in its own scheduling class, and return how late they woke. A few
 * milliseconds; call before traffic. Cannot fail (a sample that fails counts as 0 late).
 */
void nf_wake_cost_measure(struct nf_wake_cost *out, uint32_t samples, uint64_t tsc_hz);

/* ---- what the lcores may still read stays mapped (unmap.c) ---- */

struct rte_rcu_qsbr;

/*
 * While `v` is set (NULL: none), munmap() in this process first waits, with
 * rte_rcu_qsbr_synchronize(), until every thread registered and online in `v` has reported a
 * quiescent state: a memif peer's regions, which the PMD unmaps on the EAL's interrupt thread
 * when the peer leaves, stay mapped until no lcore is in a burst on them. The runtime sets it
 * while its lcores run (each registered as its index, quiescent between poll rounds, offline
 * while it sleeps). Thread-safe.
 */
void nf_unmap_guard(struct rte_rcu_qsbr *v);
/* The calling thread is reader `id` of the guard: its own munmap() does not wait for itself. */
void nf_unmap_reader(unsigned int id);

/* ---- the harvest channel, writer side ---- */

struct nf_channel;

/*
 * Create /dev/shm/nemo-hc-<name> with room for `nb_lcores` records, replacing a stale one
 * left by a dead writer. Returns NULL with errno: EEXIST if a live nemo-nf owns the name.
 */
struct nf_channel *nf_channel_create(const char *name, uint32_t nb_lcores, uint64_t tsc_hz,
				     uint32_t publish_period_us);
struct hc_lcore_record *nf_channel_record(struct nf_channel *ch, uint32_t idx);
struct hc_header *nf_channel_header(struct nf_channel *ch);
/* Zero the magic (readers see a clean exit), unmap and unlink. */
void nf_channel_destroy(struct nf_channel *ch);

/* ---- the runtime (after rte_eal_init) ---- */

struct nf_runtime;

/* Attach and start the ports, build the chains, create the channel. NULL + errno. */
struct nf_runtime *nf_runtime_create(const struct nf_config *cfg);
/* Launch the lcore loops. Returns 0 or -errno. */
int nf_runtime_start(struct nf_runtime *rt);
/* Ask the lcores to stop (async-signal-safe) and wait for them (not signal-safe). */
void nf_runtime_request_stop(struct nf_runtime *rt);
void nf_runtime_wait(struct nf_runtime *rt);
/* True if an lcore loop stopped with an error (for example its scheduling class was refused). */
bool nf_runtime_failed(struct nf_runtime *rt);
/*
 * Read the port counters and keep the highest seen. A memif port's counters read 0 once its
 * peer has left (the PMD counts the rings of the live connection only), so the control
 * thread calls this while traffic may flow, and the summary reports what it kept.
 */
void nf_runtime_sample_ports(struct nf_runtime *rt);
/* Print one line per lcore with the window since the last call (rates, shares). */
void nf_runtime_print_live(struct nf_runtime *rt);
/* Print the final per-lcore and per-port summary on stdout. */
void nf_runtime_print_summary(struct nf_runtime *rt);
/* Stop and close the ports, free the chains, remove the channel. */
void nf_runtime_destroy(struct nf_runtime *rt);

#endif /* NEMO_NF_H */
