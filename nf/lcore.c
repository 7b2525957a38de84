/* lcore.c - the NF lcore loop: rx, chain, tx, cycle accounting, idle yielding, publishing. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_epoll.h>
#include <rte_ethdev.h>
#include <rte_interrupts.h>
#include <rte_lcore.h>

#include "fn_internal.h"
#include "nemo/gen_stamp.h"
#include "nemo/log.h"
#include "nf_internal.h"
#include "runtime_internal.h"

#define TX_RETRIES	4
#define DELAY_PER_BURST 32 /* sampled packets of one burst timed to its send; more are skipped */

/* Copy the lcore's counters into its harvest-channel record (no syscalls, no locks). */
static void publish(struct nf_lcore_ctx *c, uint64_t now_tsc)
{
	struct hc_lcore_record *r = c->rec;
	const struct nf_acct *a = &c->acct;
	uint64_t fn_cycles = c->fn_reply_cycles, fn_pkts = 0;

	for (uint32_t p = 0; p < c->nb_pollers; p++)
		if (c->poll_ops[p] == &nf_mod_fn_ops)
			nf_fn_work(c->poll_inst[p], &fn_cycles, &fn_pkts);
	hc_write_begin(r);
	r->state = c->state;
	r->state_since_tsc = c->state_since_tsc;
	r->now_tsc = now_tsc;
	r->total_cycles = nf_acct_total(a);
	r->busy_cycles = a->busy;
	r->idle_poll_cycles = a->idle_poll;
	r->sleep_cycles = a->sleep;
	r->iterations = a->iterations;
	r->busy_iterations = a->busy_iterations;
	r->sleeps = a->sleeps;
	r->wakeups_early = c->wakeups_early;
	r->rx_pkts = c->rx_pkts;
	r->tx_pkts = c->tx_pkts;
	r->drop_pkts = c->drop_pkts;
	r->rx_bursts = c->rx_bursts;
	r->fn_cycles = fn_cycles;
	r->fn_pkts = fn_pkts;
	for (int i = 0; i < NF_DROP_REASONS; i++)
		r->drops[i] = c->drops[i];
	for (int i = 0; i < HC_IDLE_BUCKETS; i++)
		r->idle_hist[i] = a->idle_hist[i];
	hc_write_end(r);
	/* for telemetry, which reads it from another thread */
	__atomic_store_n(&c->predicted_gap, c->idle.gap_ewma > 0 ? (uint64_t)c->idle.gap_ewma : 0,
			 __ATOMIC_RELAXED);
}

static inline void set_state(struct nf_lcore_ctx *c, uint32_t state, uint64_t now_tsc)
{
	if (c->state != state) {
		c->state = state;
		c->state_since_tsc = now_tsc;
	}
}

/* Transmit the burst, each packet on m->port, with this lcore's own tx queue. */
static inline void transmit(struct nf_lcore_ctx *c, struct rte_mbuf **pkts, uint16_t n)
{
	struct nf_runtime *rt = c->rt;
	uint16_t txq = (uint16_t)c->idx;

	while (n) {
		/* the common case is one output port: find the run of packets that share it */
		uint16_t port = pkts[0]->port, run = 1, sent = 0;

		while (run < n && pkts[run]->port == port)
			run++;
		for (int t = 0; t < TX_RETRIES && sent < run; t++)
			sent += rte_eth_tx_burst(rt->port_id[port], txq, pkts + sent,
						 (uint16_t)(run - sent));
		c->tx_pkts += sent;
		if (sent < run) {
			rte_pktmbuf_free_bulk(pkts + sent, run - sent);
			c->drops[NF_DROP_TX_FULL] += run - sent;
			c->drop_pkts += run - sent;
		}
		pkts += run;
		n = (uint16_t)(n - run);
	}
}

static inline uint64_t delay_ns(const struct nf_lcore_ctx *c, uint64_t cycles)
{
	return (uint64_t)(((unsigned __int128)cycles * c->delay_ns_mult) >> 32);
}

/*
 * The burst holds the next sampled packet(s) of the 1 in delay_every: read their nemo-gen
 * stamps (before the chain rewrites or frees them), record how long each waited, and keep the
 * stamps for delay_sent(). Only a sampled burst pays: one rdtsc and a 64-byte line that
 * validation reads anyway (and delay_sent() a second rdtsc). Returns how many stamps it
 * kept; *rx_tsc is the dequeue time.
 */
static uint32_t delay_take(struct nf_lcore_ctx *c, struct rte_mbuf **pkts, uint16_t n,
			   uint64_t *stamps, uint64_t *rx_tsc)
{
	uint64_t i = c->delay_left - 1, now = rte_rdtsc();
	uint32_t k = 0;

	for (; i < n; i += c->delay_every) {
		const struct rte_mbuf *m = pkts[i];
		struct gen_stamp st;

		if (m->data_len < GEN_STAMP_OFF + sizeof(st)) {
			c->delay_unstamped++;
			continue;
		}
		memcpy(&st, rte_pktmbuf_mtod_offset(m, const uint8_t *, GEN_STAMP_OFF), sizeof(st));
		if (st.magic != GEN_MAGIC) {
			c->delay_unstamped++;
		} else if (st.tsc > now || now - st.tsc > c->delay_max_age) {
			c->delay_bad_clock++;
		} else if (k < DELAY_PER_BURST) {
			nf_delay_record(&c->delay_wait, delay_ns(c, now - st.tsc), 1);
			stamps[k++] = st.tsc;
		}
	}
	c->delay_left = i - n + 1;
	*rx_tsc = now;
	return k;
}

/* The sampled packets' burst has been sent (or dropped) by `now`. */
static void delay_sent(struct nf_lcore_ctx *c, const uint64_t *stamps, uint32_t k, uint64_t rx_tsc)
{
	uint64_t now = rte_rdtsc();

	nf_delay_record(&c->delay_send, delay_ns(c, now - rx_tsc), k);
	for (uint32_t i = 0; i < k; i++)
		nf_delay_record(&c->delay_total, delay_ns(c, now - stamps[i]), 1);
}

static inline void process_burst(struct nf_lcore_ctx *c, struct rte_mbuf **pkts, uint16_t n,
				 uint16_t in_port, uint64_t now_tsc)
{
	uint64_t consumed = c->consumed_pkts, stamps[DELAY_PER_BURST], rx_tsc = 0;
	uint32_t sampled = 0;
	uint16_t kept;

	if (unlikely(c->delay_left <= n))
		sampled = delay_take(c, pkts, n, stamps, &rx_tsc);
	else
		c->delay_left -= n;
	c->rx_pkts += n;
	c->rx_bursts++;
	/* m->port carries the NF config's port index, not the DPDK id, through the chain; the
	 * PMD already wrote the DPDK id, which is the index when ports attached in order */
	if (!c->port_ids_are_indexes)
		for (uint16_t i = 0; i < n; i++)
			pkts[i]->port = in_port;
	kept = nf_pkt_validate(pkts, n, c->drops);
	for (uint32_t m = 0; m < c->chain_len && kept; m++)
		kept = c->chain_ops[m]->process(c->chain_inst[m], pkts, kept, now_tsc, c->drops);
	/* what a module took out of the chain for a function is neither sent nor dropped */
	c->drop_pkts += n - kept - (c->consumed_pkts - consumed);
	if (kept)
		transmit(c, pkts, kept);
	if (unlikely(sampled))
		delay_sent(c, stamps, sampled, rx_tsc);
}

/* Pin is done by the EAL (--lcores); here the scheduling class and the timer slack. */
static int apply_sched(struct nf_lcore_ctx *c)
{
	const struct nf_sched_config *s = &c->cfg->sched;
	cpu_set_t set;

	/*
	 * Timer slack defaults to 50 us for SCHED_OTHER threads: it would stretch every short
	 * sleep past the ring-fill bound. 1 ns asks for the kernel's best.
	 */
	if (prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0) < 0)
		NEMO_WARN("nf", "lcore %u: PR_SET_TIMERSLACK: %s", c->cfg->lcore_id,
			  strerror(errno));
	if (s->policy == HC_SCHED_FIFO) {
		struct sched_param sp = {.sched_priority = s->priority};
		int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);

		if (rc) {
			NEMO_ERR("nf", "lcore %u: SCHED_FIFO priority %d: %s", c->cfg->lcore_id,
				 s->priority, strerror(rc));
			return -rc;
		}
	} else if (setpriority(PRIO_PROCESS, (id_t)gettid(), s->nice) < 0) {
		NEMO_ERR("nf", "lcore %u: nice %d: %s", c->cfg->lcore_id, s->nice, strerror(errno));
		return -errno;
	}
	if (pthread_getaffinity_np(pthread_self(), sizeof(set), &set) == 0 &&
	    (CPU_COUNT(&set) != 1 || !CPU_ISSET(c->cfg->cpu, &set)))
		NEMO_WARN("nf", "lcore %u is not pinned to cpu %u alone", c->cfg->lcore_id,
			  c->cfg->cpu);
	return 0;
}

/* Sleep `ns` (a timed sleep: the wake-up latency floor here is 16-35 us). */
static void timed_sleep(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
			      .tv_nsec = (long)(ns % 1000000000ull)};

	clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}

/*
 * Interrupt policy: arm rx interrupts, check the queues once more (a packet may have come in
 * since the last poll and would not raise an interrupt), then wait.
 */
static void wait_for_rx(struct nf_lcore_ctx *c)
{
	struct rte_epoll_event ev[NF_MAX_RX_PER_LCORE];
	uint32_t nb_rx = c->cfg->nb_rx;
	int n;

	for (uint32_t r = 0; r < nb_rx; r++)
		rte_eth_dev_rx_intr_enable(c->rx_port[r], c->rx_queue[r]);
	for (uint32_t r = 0; r < nb_rx; r++) {
		if (rte_eth_rx_queue_count(c->rx_port[r], c->rx_queue[r]) > 0)
			goto disarm;
	}
	n = rte_epoll_wait(RTE_EPOLL_PER_THREAD, ev, (int)nb_rx, (int)c->cfg->idle.intr_timeout_ms);
	if (n > 0)
		c->wakeups_early++;
disarm:
	for (uint32_t r = 0; r < nb_rx; r++)
		rte_eth_dev_rx_intr_disable(c->rx_port[r], c->rx_queue[r]);
}

static int intr_register(struct nf_lcore_ctx *c)
{
	for (uint32_t r = 0; r < c->cfg->nb_rx; r++) {
		int rc = rte_eth_dev_rx_intr_ctl_q(c->rx_port[r], c->rx_queue[r],
						   RTE_EPOLL_PER_THREAD, RTE_INTR_EVENT_ADD, NULL);

		if (rc < 0) {
			NEMO_ERR("nf", "lcore %u: rx interrupt on port %u queue %u: %s",
				 c->cfg->lcore_id, c->rx_port[r], c->rx_queue[r], strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/*
 * The longest sleep that keeps every rx ring of this lcore from overflowing, with the wake-up
 * margin measured on this host when it is larger than the one the config was checked with.
 */
static uint64_t ring_bound_ns(const struct nf_lcore_ctx *c, uint64_t wake_margin_ns,
			      uint32_t left_in_ring)
{
	const struct nf_config *cfg = c->rt->cfg;
	uint64_t bound = UINT64_MAX;

	if (wake_margin_ns < NF_WAKE_LATENCY_NS)
		wake_margin_ns = NF_WAKE_LATENCY_NS;
	for (uint32_t r = 0; r < c->cfg->nb_rx; r++) {
		const struct nf_port_config *pc = &cfg->ports[c->cfg->rx[r].port];
		uint32_t room = pc->rx_ring > left_in_ring ? pc->rx_ring - left_in_ring : 0;
		uint64_t b = nf_max_sleep_ns(room, pc->line_rate_pps, wake_margin_ns);

		bound = b < bound ? b : bound;
	}
	return bound;
}

/*
 * Before traffic: measure what a wake-up costs here, and derive the idle policy from it.
 * *drain_cap_ns: the longest sleep taken with up to a burst still in the rings (while a
 * harvester holds a sleep floor, the lcore sleeps once a poll returns less than a burst).
 */
static void idle_setup(struct nf_lcore_ctx *c, uint64_t *max_sleep_ns, uint64_t *drain_cap_ns)
{
	const struct nf_lcore_config *lc = c->cfg;
	uint64_t bound;

	nf_wake_cost_measure(&c->wake, 32, c->rt->tsc_hz);
	nf_idle_init(&c->idle, &lc->idle, c->rt->tsc_hz, c->wake.median_ns);
	if (lc->sched.policy == HC_SCHED_FIFO && lc->idle.policy == HC_IDLE_SLEEP &&
	    lc->idle.detect == NF_IDLE_DETECT_TIME && c->rt->rt_min_sleep_pct)
		c->rt_guard = (struct nf_rt_guard){.slice = c->rt->tsc_hz / 100, /* 10 ms */
						   .min_pct = c->rt->rt_min_sleep_pct,
						   .start = rte_rdtsc()};
	*drain_cap_ns = 0;
	if (lc->idle.policy == HC_IDLE_SLEEP) {
		bound = ring_bound_ns(c, c->wake.p90_ns, 0);
		if (bound < *max_sleep_ns) {
			NEMO_WARN(
				"nf",
				"lcore %u: wake-ups here are late by up to %lu us (p90), more than "
				"the %llu us the config allowed for: max sleep %lu -> %lu us so "
				"that the rx ring cannot overflow",
				lc->lcore_id, (unsigned long)(c->wake.p90_ns / 1000),
				NF_WAKE_LATENCY_NS / 1000, (unsigned long)(*max_sleep_ns / 1000),
				(unsigned long)(bound / 1000));
			*max_sleep_ns = bound > 1000 ? bound : 1000;
		}
		bound = ring_bound_ns(c, c->wake.p90_ns, c->burst);
		*drain_cap_ns = bound < *max_sleep_ns ? bound : *max_sleep_ns;
		/* even the shortest sleep would not be safe with a burst left: poll it out */
		if (*drain_cap_ns < (uint64_t)lc->idle.min_sleep_us * 1000)
			*drain_cap_ns = 0;
	}
	if (lc->idle.policy == HC_IDLE_POLL)
		NEMO_INFO("nf",
			  "lcore %u: wake-up cost %lu us (median of %u timed sleeps, p90 %lu "
			  "us); idle policy poll never sleeps",
			  lc->lcore_id, (unsigned long)(c->wake.median_ns / 1000), c->wake.samples,
			  (unsigned long)(c->wake.p90_ns / 1000));
	else if (c->idle.count_only)
		NEMO_INFO("nf",
			  "lcore %u: wake-up cost %lu us (median of %u timed sleeps, p90 %lu "
			  "us); yields after %u empty polls (detect 'count')",
			  lc->lcore_id, (unsigned long)(c->wake.median_ns / 1000), c->wake.samples,
			  (unsigned long)(c->wake.p90_ns / 1000), c->idle.max_empty);
	else
		NEMO_INFO("nf",
			  "lcore %u: wake-up cost %lu us (median of %u timed sleeps, p90 %lu "
			  "us); yields after %lu us of empty polls, at once when the predicted "
			  "gap is over %lu us or a harvester holds a sleep floor; max sleep %lu us",
			  lc->lcore_id, (unsigned long)(c->wake.median_ns / 1000), c->wake.samples,
			  (unsigned long)(c->wake.p90_ns / 1000),
			  (unsigned long)(c->idle.budget * 1000000 / c->rt->tsc_hz),
			  (unsigned long)(c->idle.break_even * 1000000 / c->rt->tsc_hz),
			  (unsigned long)(*max_sleep_ns / 1000));
}

/* Yield the core (timed sleep or rx-interrupt wait); returns the TSC at wake-up. */
static uint64_t yield_core(struct nf_lcore_ctx *c, uint64_t now, uint64_t *sleep_ns,
			   uint64_t max_sleep_ns, uint64_t floor_ns)
{
	/* a module's deferred work (an fn wake-up) must not wait out the sleep */
	for (uint32_t p = 0; p < c->nb_pollers; p++)
		if (c->poll_ops[p]->idle)
			c->poll_ops[p]->idle(c->poll_inst[p], now);
	/* publish first: the record must say we are asleep, and since when */
	set_state(c, HC_STATE_SLEEPING, now);
	publish(c, now);
	/* asleep, the lcore reads no port: a munmap() need not wait for it (unmap.c) */
	rte_rcu_qsbr_thread_offline(c->qsbr, c->idx);
	if (c->cfg->idle.policy == HC_IDLE_SLEEP) {
		timed_sleep(*sleep_ns > floor_ns ? *sleep_ns : floor_ns);
		*sleep_ns = *sleep_ns * 2 < max_sleep_ns ? *sleep_ns * 2 : max_sleep_ns;
	} else {
		wait_for_rx(c);
	}
	rte_rcu_qsbr_thread_online(c->qsbr, c->idx);
	return rte_rdtsc();
}

int nf_lcore_main(void *arg)
{
	struct nf_lcore_ctx *c = arg;
	const struct nf_lcore_config *lc = c->cfg;
	const struct nf_idle_config *idle = &lc->idle;
	struct nf_runtime *rt = c->rt;
	struct rte_mbuf *pkts[512];
	uint64_t publish_cycles = rt->tsc_hz / 1000000 * rt->cfg->publish_period_us;
	uint64_t next_publish, now, sleep_ns, min_sleep_ns, max_sleep_ns, drain_cap_ns;
	uint32_t nb_rx = lc->nb_rx;
	uint16_t burst = (uint16_t)c->burst;
	/* a harvester's sleep floor makes the lcore yield as soon as its rings are drained */
	bool drain_then_sleep =
		idle->policy == HC_IDLE_SLEEP && idle->detect == NF_IDLE_DETECT_TIME;

	c->rc = apply_sched(c);
	if (!c->rc && idle->policy == HC_IDLE_INTERRUPT)
		c->rc = intr_register(c);
	if (c->rc) {
		c->state = HC_STATE_STOPPED;
		return c->rc;
	}
	c->rec->tid = (int32_t)gettid(); /* readers may want it while the wake-up is measured */
	min_sleep_ns = (uint64_t)idle->min_sleep_us * 1000;
	max_sleep_ns = (uint64_t)idle->max_sleep_us * 1000;
	idle_setup(c, &max_sleep_ns, &drain_cap_ns);
	if (min_sleep_ns > max_sleep_ns && idle->policy == HC_IDLE_SLEEP)
		min_sleep_ns = max_sleep_ns;
	sleep_ns = min_sleep_ns;
	now = rte_rdtsc();
	nf_acct_init(&c->acct, now, rt->tsc_hz);
	c->rec->start_tsc = now;
	/* the longest the record may stand still while the lcore runs (harvester: HV_STALE_MS) */
	if (idle->policy == HC_IDLE_SLEEP)
		c->rec->max_sleep_ns = max_sleep_ns;
	else if (idle->policy == HC_IDLE_INTERRUPT)
		c->rec->max_sleep_ns = (uint64_t)idle->intr_timeout_ms * 1000000;
	else
		c->rec->max_sleep_ns = 0;
	c->max_sleep_ns = c->rec->max_sleep_ns;
	set_state(c, HC_STATE_IDLE_POLL, now);
	publish(c, now);
	next_publish = now + publish_cycles;
	nf_unmap_reader(c->idx);
	rte_rcu_qsbr_thread_register(c->qsbr, c->idx);
	rte_rcu_qsbr_thread_online(c->qsbr, c->idx);

	while (!__atomic_load_n(&rt->quit, __ATOMIC_RELAXED)) {
		uint64_t iter_start = c->acct.last_tsc, floor = 0;
		uint32_t moved = 0;
		bool full = false, yield;

		/* between two rounds the lcore holds nothing of a port's rings (unmap.c) */
		rte_rcu_qsbr_quiescent(c->qsbr, c->idx);
		/*
		 * Packets the modules made (fn replies), before new ones come in: up to the whole
		 * array, since a function answers in batches while the lcore slept; more left
		 * counts as a full burst, so the lcore does not sleep on them.
		 */
		for (uint32_t p = 0; p < c->nb_pollers; p++) {
			uint16_t n = c->poll_ops[p]->poll(c->poll_inst[p], pkts,
							  (uint16_t)RTE_DIM(pkts), iter_start);

			if (n) {
				moved += n;
				full |= n == RTE_DIM(pkts);
				transmit(c, pkts, n);
			}
		}
		/*
		 * Replies are work for a function, not the NF's own: a harvester owes their cycles
		 * to the function's instance (harvest_channel.h, fn_cycles). The round began at
		 * iter_start, so one clock read times them, and only when there were some.
		 */
		if (moved)
			c->fn_reply_cycles += rte_rdtsc() - iter_start;
		for (uint32_t r = 0; r < nb_rx; r++) {
			uint16_t n = rte_eth_rx_burst(c->rx_port[r], c->rx_queue[r], pkts, burst);

			if (n) {
				moved += n;
				full |= n == burst;
				process_burst(c, pkts, n, lc->rx[r].port, iter_start);
			}
		}
		now = rte_rdtsc();
		nf_acct_iteration(&c->acct, now, moved != 0);
		if (idle->policy == HC_IDLE_POLL) {
			set_state(c, moved ? HC_STATE_BUSY : HC_STATE_IDLE_POLL, now);
			yield = false;
		} else if (moved) {
			nf_idle_busy(&c->idle, iter_start);
			sleep_ns = min_sleep_ns;
			set_state(c, HC_STATE_BUSY, now);
			/* the rings hold less than a burst: sleep now if sandboxes wait */
			yield = drain_then_sleep && !full &&
				(floor = hc_sleep_floor(c->rec, now, drain_cap_ns)) != 0;
		} else {
			/* a lease, whatever its floor: an interrupt wait has no ring bound */
			bool lease = idle->detect == NF_IDLE_DETECT_TIME &&
				     hc_sleep_floor(c->rec, now, UINT64_MAX) != 0;

			set_state(c, HC_STATE_IDLE_POLL, now);
			yield = nf_idle_empty(&c->idle, iter_start, now,
					      lease || nf_rt_guard_due(&c->rt_guard, now));
		}
		if (yield) {
			uint64_t t0 = now;

			if (idle->policy == HC_IDLE_SLEEP && !floor)
				floor = hc_sleep_floor(c->rec, now, max_sleep_ns);
			now = yield_core(c, now, &sleep_ns, max_sleep_ns, floor);
			nf_acct_sleep(&c->acct, now);
			nf_idle_slept(&c->idle, t0, now);
			nf_rt_guard_slept(&c->rt_guard, t0, now);
			set_state(c, HC_STATE_IDLE_POLL, now);
			publish(c, now);
			next_publish = now + publish_cycles;
			continue;
		}
		if (now >= next_publish) {
			publish(c, now);
			next_publish = now + publish_cycles;
		}
	}
	rte_rcu_qsbr_thread_offline(c->qsbr, c->idx);
	rte_rcu_qsbr_thread_unregister(c->qsbr, c->idx);
	nf_unmap_reader(RTE_QSBR_THRID_INVALID);
	now = rte_rdtsc();
	nf_acct_iteration(&c->acct, now, false);
	set_state(c, HC_STATE_STOPPED, now);
	publish(c, now);
	return 0;
}
