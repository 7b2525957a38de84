/* engine.c - nemo-gen's DPDK side: the port, and one lcore loop that paces, sends and receives. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "nemo/log.h"
#include "gen_internal.h"

#define GEN_RX_BURST	  64
#define GEN_RING_DESC	  1024
#define GEN_TX_POOL	  8191	/* memif copies and frees at tx: few mbufs are ever in flight */
#define GEN_RX_POOL	  16383 /* enough to refill the rx ring several times over */
#define GEN_POOL_CACHE	  256
#define GEN_TX_RETRY_US	  20   /* a full ring is retried this long: the peer drains ~100 packets */
#define GEN_MAX_RETRY_US  1000 /* --max waits longer: there, a full ring is the measurement */
#define GEN_STALL_US	  100  /* a loop iteration this long means the lcore was taken away */
#define GEN_COALESCE_US	  5    /* a part burst waits at most this long after the last send */
#define GEN_BACKLOG_MS	  10   /* fall further behind than this and the excess is skipped */
#define GEN_LIVE_MS	  1000
#define GEN_LINK_POLL_US  10000
#define GEN_PROBE_SEQ	  (1ull << 63) /* probes: this run's packets, outside its seq space */
#define GEN_PROBE_MS	  1000	       /* the longest wait for the first probe to return */
#define GEN_WARM_BURST	  32
#define GEN_WARM_GAP_US	  160  /* 200 kpps: the NF faults the pages in with spare to go */
#define GEN_WARM_MS	  1000 /* the longest the ring warm-up may take */
#define GEN_WARM_DRAIN_MS 20   /* and the wait for its last replies */
/*
 * A started port whose link stays down this long starts over. Not shorter: the memif
 * handshake maps both rings (64 MiB at rsize 14) and can take a second on a busy machine,
 * and a client that hangs up mid-handshake crashes DPDK 22.11's memif server.
 */
#define GEN_RECONNECT_MS 3000

/* Counter values at the start of a report interval. */
struct gen_mark {
	uint64_t tsc;
	uint64_t sent;
	uint64_t received;
	double target_pkts;
};

struct gen_engine {
	/* touched per packet */
	uint16_t port;
	uint16_t frame_len;
	uint16_t run_id;
	uint32_t n_flows;
	uint32_t flow_idx;
	uint64_t seq;
	uint64_t ns_mult; /* ns = cycles * ns_mult >> 32 */
	const struct gen_flow *flows;
	struct rte_mempool *tx_pool;
	struct gen_hist *lat_now; /* since the last report tick */
	uint64_t sent;
	uint64_t received;
	uint64_t unknown_rx;
	uint64_t replies;	    /* stamped frames from reply_port: a function answered */
	uint16_t reply_port;	    /* network order: the dport, as a reply's source port */
	struct gen_hist *lat_reply; /* the caller's, or NULL */
	uint64_t tx_dropped;
	uint64_t late_skipped;
	uint64_t alloc_failed;
	uint64_t probe_rx;
	uint64_t probe_tx; /* probes the port accepted: the NF counts them too */
	uint64_t tx_retry_cycles;
	uint64_t stall_cycles; /* GEN_STALL_US */
	uint64_t stamp_late; /* packets whose stamp was GEN_STALL_US old when the port took them */
	uint64_t stalls;
	uint64_t max_gap;

	/* touched per report tick */
	uint64_t hz;
	uint64_t t0;	   /* tsc when sending started */
	uint64_t send_end; /* tsc when sending stops (or stopped) */
	double duration_s;
	const struct gen_profile *profile;
	bool max_rate;
	bool quiet;
	FILE *csv;
	uint64_t csv_cycles;
	uint64_t live_cycles;
	uint64_t next_csv;
	uint64_t next_live;
	struct gen_mark csv_mark;
	struct gen_mark live_mark;
	struct gen_hist *lat_csv;
	struct gen_hist *lat_live;
	struct gen_hist *lat_total;

	struct rte_mempool *rx_pool;
	struct gen_flow *flow_table;
	uint8_t frame[GEN_FRAME_MAX];
};

static inline uint64_t cycles_to_ns(const struct gen_engine *g, uint64_t cycles)
{
	return (uint64_t)(((unsigned __int128)cycles * g->ns_mult) >> 32);
}

/*
 * Every tx mbuf starts out holding the base frame; alloc never clears data, so each packet
 * then needs only gen_pkt_stamp()'s few stores instead of a frame copy.
 */
static void prefill_mbuf(struct rte_mempool *mp, void *arg, void *obj, unsigned int idx)
{
	const struct gen_engine *g = arg;
	struct rte_mbuf *m = obj;

	(void)mp;
	(void)idx;
	memcpy((uint8_t *)m->buf_addr + RTE_PKTMBUF_HEADROOM, g->frame, g->frame_len);
}

static inline void gen_rx(struct gen_engine *g)
{
	struct rte_mbuf *pkts[GEN_RX_BURST];
	uint16_t n = rte_eth_rx_burst(g->port, 0, pkts, GEN_RX_BURST);
	uint64_t now;

	if (!n)
		return;
	now = rte_rdtsc();
	for (uint16_t i = 0; i < n; i++) {
		const uint8_t *d = rte_pktmbuf_mtod(pkts[i], const uint8_t *);
		struct gen_stamp st;

		if (likely(pkts[i]->data_len >= GEN_FRAME_MIN)) {
			memcpy(&st, d + GEN_STAMP_OFF, sizeof(st));
			if (likely(st.magic == GEN_MAGIC && st.run_id == g->run_id)) {
				if (unlikely(st.seq & GEN_PROBE_SEQ)) {
					g->probe_rx++;
					continue;
				}
				uint64_t ns = cycles_to_ns(g, now > st.tsc ? now - st.tsc : 0);
				/* a reply swaps the ports: it comes from the port we sent to */
				bool reply =
					memcmp(d + GEN_L2_HDR + GEN_L3_HDR, &g->reply_port, 2) == 0;

				gen_hist_record(g->lat_now, ns);
				g->received++;
				/* only replies pay for a second histogram: forwarding runs see none */
				if (unlikely(reply)) {
					g->replies++;
					if (g->lat_reply)
						gen_hist_record(g->lat_reply, ns);
				}
				continue;
			}
		}
		g->unknown_rx++;
	}
	rte_pktmbuf_free_bulk(pkts, n);
}

/*
 * Build and send n packets. A full ring is retried for tx_retry_cycles while receiving, so
 * the peer can drain; what is still refused then is tx_dropped. Returns how many were
 * handled (sent or dropped), 0 if the pool was empty.
 */
static inline uint32_t gen_tx(struct gen_engine *g, uint32_t n)
{
	struct rte_mbuf *pkts[GEN_BURST_MAX];
	uint16_t sent;
	uint64_t tsc;

	if (unlikely(rte_pktmbuf_alloc_bulk(g->tx_pool, pkts, n))) {
		g->alloc_failed++;
		return 0;
	}
	tsc = rte_rdtsc();
	for (uint32_t i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];

		m->data_len = g->frame_len;
		m->pkt_len = g->frame_len;
		gen_pkt_stamp(rte_pktmbuf_mtod(m, uint8_t *), &g->flows[g->flow_idx], g->seq++,
			      tsc);
		if (++g->flow_idx == g->n_flows)
			g->flow_idx = 0;
	}
	sent = rte_eth_tx_burst(g->port, 0, pkts, (uint16_t)n);
	/*
	 * The lcore taken away between the stamp and the send ages the stamps of a whole burst
	 * before the NF can see it: a receiver that times its own part from the stamp (nemo-nf)
	 * would count that as its wait. Counted, so that a reader knows how many there were.
	 */
	if (unlikely(rte_rdtsc() - tsc > g->stall_cycles))
		g->stamp_late += n;
	if (unlikely(sent < n)) {
		uint64_t deadline = rte_rdtsc() + g->tx_retry_cycles;

		do {
			gen_rx(g);
			sent += rte_eth_tx_burst(g->port, 0, pkts + sent, (uint16_t)(n - sent));
		} while (sent < n && rte_rdtsc() < deadline);
		if (sent < n) {
			rte_pktmbuf_free_bulk(pkts + sent, n - sent);
			g->tx_dropped += n - sent;
		}
	}
	g->sent += sent;
	return n;
}

/* Packets the profile asks for from the start to tsc, frozen at the end of sending. */
static double target_at(const struct gen_engine *g, uint64_t tsc)
{
	if (g->max_rate)
		return 0;
	if (tsc > g->send_end)
		tsc = g->send_end;
	return gen_profile_packets(g->profile, (double)(tsc - g->t0) / (double)g->hz);
}

static void mark(const struct gen_engine *g, struct gen_mark *m, uint64_t now)
{
	m->tsc = now;
	m->sent = g->sent;
	m->received = g->received;
	m->target_pkts = target_at(g, now);
}

static void interval(const struct gen_engine *g, const struct gen_mark *m, uint64_t now,
		     const struct gen_hist *lat, struct gen_interval *iv)
{
	double len = (double)(now - m->tsc) / (double)g->hz;

	iv->t_s = (double)(now - g->t0) / (double)g->hz;
	iv->len_s = len;
	iv->target_pps = g->max_rate ? NAN : (target_at(g, now) - m->target_pkts) / len;
	iv->tx_pps = (double)(g->sent - m->sent) / len;
	iv->rx_pps = (double)(g->received - m->received) / len;
	iv->lost = (int64_t)(g->sent - m->sent) - (int64_t)(g->received - m->received);
	iv->lat = lat;
}

/* Off the packet path: fold the latest latencies into the report histograms, emit what is due. */
static void tick(struct gen_engine *g, uint64_t now, bool final)
{
	struct gen_interval iv;

	gen_hist_merge(g->lat_csv, g->lat_now);
	gen_hist_merge(g->lat_live, g->lat_now);
	gen_hist_merge(g->lat_total, g->lat_now);
	gen_hist_reset(g->lat_now);
	if (now <= g->csv_mark.tsc)
		return;
	/* the final row is a partial interval: worth a row only if something happened in it */
	if (g->csv && (now >= g->next_csv || (final && (g->sent != g->csv_mark.sent ||
							g->received != g->csv_mark.received)))) {
		interval(g, &g->csv_mark, now, g->lat_csv, &iv);
		gen_report_csv_row(g->csv, &iv);
		gen_hist_reset(g->lat_csv);
		mark(g, &g->csv_mark, now);
	}
	while (g->next_csv <= now)
		g->next_csv += g->csv_cycles;
	if (now >= g->next_live && !final) {
		interval(g, &g->live_mark, now, g->lat_live, &iv);
		if (!g->quiet)
			gen_report_live(stderr, &iv);
		gen_hist_reset(g->lat_live);
		mark(g, &g->live_mark, now);
	}
	while (g->next_live <= now)
		g->next_live += g->live_cycles;
}

static inline uint64_t next_tick(const struct gen_engine *g)
{
	return g->next_csv < g->next_live ? g->next_csv : g->next_live;
}

static uint64_t backlog_cap(const struct gen_segment *seg, uint32_t burst)
{
	double peak = seg->rate0, cap;

	if (seg->slope > 0 && isfinite(seg->t1_s))
		peak += seg->slope * (seg->t1_s - seg->t0_s);
	cap = peak * GEN_BACKLOG_MS / 1e3;
	return cap > 4.0 * burst ? (uint64_t)cap : 4ull * burst;
}

/* The send phase. Returns when the profile's time is up or *stop turns non-zero. */
static void send_phase(struct gen_engine *g, uint32_t burst, const volatile sig_atomic_t *stop)
{
	const uint64_t coalesce = g->hz * GEN_COALESCE_US / 1000000;
	const double sec_per_cycle = 1.0 / (double)g->hz;
	const uint64_t stall = g->hz * GEN_STALL_US / 1000000;
	uint64_t attempted = 0, last_tx, now, prev, tick_at, cap;
	struct gen_segment seg;

	gen_profile_segment(g->profile, 0, &seg);
	cap = backlog_cap(&seg, burst);
	now = last_tx = prev = g->t0;
	tick_at = next_tick(g);
	while (likely(!*stop)) {
		uint32_t n = 0;

		now = rte_rdtsc();
		if (unlikely(now - prev > stall) && !g->max_rate) {
			/* not a generator fault, but it explains drops and catch-up bursts; --max
			 * waits on a full ring by design, so there a long iteration means nothing */
			g->stalls++;
			if (now - prev > g->max_gap)
				g->max_gap = now - prev;
		}
		prev = now;
		if (unlikely(now >= g->send_end))
			break;
		gen_rx(g);
		if (g->max_rate) {
			n = burst;
		} else {
			double t = (double)(now - g->t0) * sec_per_cycle;
			uint64_t want, due;

			if (unlikely(t >= seg.t1_s)) {
				gen_profile_segment(g->profile, t, &seg);
				cap = backlog_cap(&seg, burst);
			}
			want = (uint64_t)gen_segment_packets(&seg, t);
			due = want > attempted ? want - attempted : 0;
			if (unlikely(due > cap)) {
				g->late_skipped += due - cap;
				attempted += due - cap;
				due = cap;
			}
			if (due >= burst)
				n = burst;
			else if (due && now - last_tx >= coalesce)
				n = (uint32_t)due;
		}
		if (n) {
			attempted += gen_tx(g, n);
			last_tx = now;
		}
		if (unlikely(now >= tick_at)) {
			tick(g, now, false);
			tick_at = next_tick(g);
		}
	}
	if (now < g->send_end)
		g->send_end = now; /* stopped early: the run is as long as it really was */
	/* what the last part burst still owed */
	if (!g->max_rate && !*stop) {
		uint64_t want = (uint64_t)target_at(g, g->send_end);

		while (want > attempted) {
			uint64_t due = want - attempted;
			uint32_t done = gen_tx(g, due < burst ? (uint32_t)due : burst);

			if (!done)
				break;
			attempted += done;
		}
	}
	g->duration_s = (double)(g->send_end - g->t0) / (double)g->hz;
}

/* Receive what is still in flight, until all of it is back or drain_ms is over. */
static void drain_phase(struct gen_engine *g, uint32_t drain_ms, const volatile sig_atomic_t *stop)
{
	uint64_t end = rte_rdtsc() + g->hz * drain_ms / 1000, now, tick_at = next_tick(g);
	sig_atomic_t stop_at_start = *stop;

	while ((now = rte_rdtsc()) < end && g->received < g->sent) {
		if (*stop != stop_at_start)
			break; /* a second signal: the user does not want to wait */
		gen_rx(g);
		if (now >= tick_at) {
			tick(g, now, false);
			tick_at = next_tick(g);
		}
	}
	tick(g, rte_rdtsc(), true);
}

static const char *link_name(const struct gen_opts *o, uint16_t port, char *buf, size_t len)
{
	if (o->socket)
		return o->socket;
	if (rte_eth_dev_get_name_by_port(port, buf) != 0)
		snprintf(buf, len, "port %u", port);
	return buf;
}

static int port_setup(struct gen_engine *g)
{
	struct rte_eth_conf conf;
	uint16_t port = RTE_MAX_ETHPORTS;
	int socket, rc;

	RTE_ETH_FOREACH_DEV (port) {
		break;
	}
	if (port >= RTE_MAX_ETHPORTS) {
		NEMO_ERR("gen", "no ethdev port: give --socket, or a --vdev after '--'");
		return -ENODEV;
	}
	g->port = port;
	socket = rte_eth_dev_socket_id(port);
	memset(&conf, 0, sizeof(conf));
	rc = rte_eth_dev_configure(port, 1, 1, &conf);
	if (rc) {
		NEMO_ERR("gen", "port %u: configure: %s", port, strerror(-rc));
		return rc;
	}
	rc = rte_eth_rx_queue_setup(port, 0, GEN_RING_DESC, socket, NULL, g->rx_pool);
	if (!rc)
		rc = rte_eth_tx_queue_setup(port, 0, GEN_RING_DESC, socket, NULL);
	if (rc) {
		NEMO_ERR("gen", "port %u: queue setup: %s", port, strerror(-rc));
		return rc;
	}
	return 0;
}

/*
 * Start the port and wait for its link. A memif client fails to start while the server's
 * socket is missing, and a server that is still setting up its port drops the connection
 * without a retry from the client; so the port is restarted until the link is up or the
 * warm-up time is over. nemo-gen may thus be started before the NF.
 * Returns 0 with the port started and up, -ENOLINK or -EINTR with it stopped.
 */
static int wait_link(struct gen_engine *g, const struct gen_opts *o,
		     const volatile sig_atomic_t *stop)
{
	uint64_t deadline = rte_rdtsc() + g->hz * o->warmup_ms / 1000, started_at = 0;
	int memif_log = rte_log_register("pmd.net.memif");
	int memif_level = memif_log >= 0 ? rte_log_get_level((uint32_t)memif_log) : -1;
	char name[RTE_ETH_NAME_MAX_LEN];
	struct rte_eth_link link;
	bool started = false, up = false;
	int rc = 0, tries = 0;

	while (!up && !*stop && rte_rdtsc() < deadline) {
		if (!started) {
			rc = rte_eth_dev_start(g->port);
			started = rc == 0;
			started_at = rte_rdtsc();
			/* one "Failed to connect" line says it; the retries need not repeat it */
			if (!started && tries++ == 0 && memif_level >= 0)
				rte_log_set_level((uint32_t)memif_log, RTE_LOG_CRIT);
		}
		if (started) {
			memset(&link, 0, sizeof(link));
			rte_eth_link_get_nowait(g->port, &link);
			up = link.link_status == RTE_ETH_LINK_UP;
			if (!up && rte_rdtsc() - started_at > g->hz * GEN_RECONNECT_MS / 1000) {
				rte_eth_dev_stop(g->port);
				started = false;
			}
		}
		if (!up)
			rte_delay_us_sleep(GEN_LINK_POLL_US);
	}
	if (memif_level >= 0)
		rte_log_set_level((uint32_t)memif_log, (uint32_t)memif_level);
	if (up)
		return 0;
	if (started)
		rte_eth_dev_stop(g->port);
	if (*stop)
		return -EINTR;
	if (started)
		NEMO_ERR("gen",
			 "memif link to %s did not come up within %u ms: is nemo-nf running?",
			 link_name(o, g->port, name, sizeof(name)), o->warmup_ms);
	else
		NEMO_ERR("gen",
			 "memif link to %s did not come up within %u ms (port start: %s): is "
			 "nemo-nf running?",
			 link_name(o, g->port, name, sizeof(name)), o->warmup_ms, strerror(-rc));
	return -ENOLINK;
}

/*
 * A link that is up is not yet a path: the NF may still be starting its lcores. Send one
 * probe every 10 ms until one comes back, so the measurement does not start with a burst of
 * drops. An NF that drops everything is still measurable: after GEN_PROBE_MS, go on anyway.
 */
static void wait_path(struct gen_engine *g, const volatile sig_atomic_t *stop)
{
	uint64_t start = rte_rdtsc(), deadline = start + g->hz * GEN_PROBE_MS / 1000;
	uint64_t next = start, probe_seq = GEN_PROBE_SEQ, now;
	struct rte_mbuf *m;

	while (g->probe_rx == 0 && !*stop && (now = rte_rdtsc()) < deadline) {
		gen_rx(g);
		if (now < next)
			continue;
		next = now + g->hz / 100;
		m = rte_pktmbuf_alloc(g->tx_pool);
		if (!m)
			continue;
		m->data_len = g->frame_len;
		m->pkt_len = g->frame_len;
		gen_pkt_stamp(rte_pktmbuf_mtod(m, uint8_t *), &g->flows[0], probe_seq++, now);
		if (rte_eth_tx_burst(g->port, 0, &m, 1) == 0)
			rte_pktmbuf_free(m);
		else
			g->probe_tx++;
	}
	if (g->probe_rx == 0 && !*stop)
		NEMO_WARN("gen", "no probe came back within %d ms: measuring anyway (all loss?)",
			  GEN_PROBE_MS);
	else if (!g->quiet)
		NEMO_INFO("gen", "path up: first probe back after %.1f ms",
			  (double)(rte_rdtsc() - start) * 1e3 / (double)g->hz);
}

/*
 * The memif regions (64 MiB at rsize 14) are faulted in page by page as each slot is first
 * used: 20-25 ms of the NF's time here, which would open the measurement with the NF at no
 * spare at all (and, beside nemod, a reclaim). Use every slot of both rings once before it,
 * at a pace the NF keeps up with, as probes: outside the measured packets and latencies.
 */
static void warm_rings(struct gen_engine *g, uint32_t slots, const volatile sig_atomic_t *stop)
{
	uint64_t start = rte_rdtsc(), gap = g->hz * GEN_WARM_GAP_US / 1000000, now;
	uint64_t deadline = start + g->hz * GEN_WARM_MS / 1000, next = start;
	uint64_t seq = GEN_PROBE_SEQ | (1ull << 62), rx0 = g->probe_rx;
	struct rte_mbuf *pkts[GEN_WARM_BURST];
	uint32_t sent = 0;

	while (sent < slots && !*stop && (now = rte_rdtsc()) < deadline) {
		uint16_t n = GEN_WARM_BURST, done;

		gen_rx(g);
		if (now < next || rte_pktmbuf_alloc_bulk(g->tx_pool, pkts, n))
			continue;
		next = now + gap;
		for (uint16_t i = 0; i < n; i++) {
			pkts[i]->data_len = g->frame_len;
			pkts[i]->pkt_len = g->frame_len;
			gen_pkt_stamp(rte_pktmbuf_mtod(pkts[i], uint8_t *), &g->flows[0], seq++,
				      now);
		}
		done = rte_eth_tx_burst(g->port, 0, pkts, n);
		if (done < n)
			rte_pktmbuf_free_bulk(pkts + done, n - done);
		sent += done;
		g->probe_tx += done;
	}
	/* the replies still on their way back, for a few of the NF's longest sleeps: an NF that
	 * drops some (a filter in its chain) does not hold the measurement up */
	now = rte_rdtsc();
	if (deadline > now + g->hz * GEN_WARM_DRAIN_MS / 1000)
		deadline = now + g->hz * GEN_WARM_DRAIN_MS / 1000;
	while (g->probe_rx - rx0 < sent && !*stop && rte_rdtsc() < deadline)
		gen_rx(g);
	if (!g->quiet)
		NEMO_INFO("gen", "rings warmed: %u packets in %.1f ms, %llu back", sent,
			  (double)(rte_rdtsc() - start) * 1e3 / (double)g->hz,
			  (unsigned long long)(g->probe_rx - rx0));
}

static void engine_free(struct gen_engine *g)
{
	free(g->lat_now);
	free(g->lat_csv);
	free(g->lat_live);
	free(g->flow_table);
	rte_mempool_free(g->tx_pool);
	rte_mempool_free(g->rx_pool);
	free(g);
}

static struct gen_engine *engine_new(const struct gen_opts *o, const struct gen_profile *p,
				     struct gen_hist *total)
{
	struct gen_engine *g = calloc(1, sizeof(*g));
	struct gen_pkt_spec spec;
	int socket = (int)rte_socket_id();

	if (!g)
		return NULL;
	g->hz = rte_get_tsc_hz();
	g->tx_retry_cycles = g->hz * (o->max_rate ? GEN_MAX_RETRY_US : GEN_TX_RETRY_US) / 1000000;
	g->ns_mult = (uint64_t)((1000000000ull << 32) / g->hz);
	g->stall_cycles = g->hz * GEN_STALL_US / 1000000;
	g->profile = p;
	g->max_rate = o->max_rate;
	g->quiet = o->quiet;
	g->frame_len = (uint16_t)o->size;
	g->n_flows = o->flows;
	/* a per-run tag: replies to an earlier run still queued in the NF are not ours */
	g->run_id = (uint16_t)(rte_rdtsc() ^ (uint64_t)getpid());
	g->lat_total = total;
	g->lat_now = calloc(1, sizeof(struct gen_hist));
	g->lat_csv = calloc(1, sizeof(struct gen_hist));
	g->lat_live = calloc(1, sizeof(struct gen_hist));
	g->flow_table = calloc(o->flows, sizeof(struct gen_flow));
	if (!g->lat_now || !g->lat_csv || !g->lat_live || !g->flow_table) {
		NEMO_ERR("gen", "out of memory for histograms and %u flows", o->flows);
		goto fail;
	}
	g->flows = g->flow_table;
	gen_pkt_spec_default(&spec, g->frame_len, g->run_id);
	spec.dst_port = (uint16_t)o->dport;
	g->reply_port = rte_cpu_to_be_16(spec.dst_port);
	if (gen_pkt_build(&spec, g->frame) ||
	    gen_pkt_flows(g->frame, g->frame_len, g->flow_table, g->n_flows)) {
		NEMO_ERR("gen", "cannot build a %u-byte frame for %u flows", o->size, o->flows);
		goto fail;
	}
	g->tx_pool = rte_pktmbuf_pool_create("gen_tx", GEN_TX_POOL, GEN_POOL_CACHE, 0,
					     RTE_MBUF_DEFAULT_BUF_SIZE, socket);
	g->rx_pool = rte_pktmbuf_pool_create("gen_rx", GEN_RX_POOL, GEN_POOL_CACHE, 0,
					     RTE_MBUF_DEFAULT_BUF_SIZE, socket);
	if (!g->tx_pool || !g->rx_pool) {
		NEMO_ERR("gen", "mbuf pools: %s", rte_strerror(rte_errno));
		goto fail;
	}
	rte_mempool_obj_iter(g->tx_pool, prefill_mbuf, g);
	return g;
fail:
	engine_free(g);
	errno = ENOMEM;
	return NULL;
}

int gen_run(const struct gen_opts *o, const struct gen_profile *p, FILE *csv,
	    const volatile sig_atomic_t *stop, struct gen_totals *t)
{
	struct gen_engine *g = engine_new(o, p, t->lat);
	double duration = gen_opts_duration(o, p);
	int rc;

	if (!g)
		return -ENOMEM;
	g->lat_reply = t->lat_reply;
	rc = port_setup(g);
	if (rc == -ENODEV)
		goto out_free;
	if (rc)
		goto out;
	rc = wait_link(g, o, stop);
	if (rc)
		goto out;
	wait_path(g, stop);
	if (!o->no_warm)
		warm_rings(g, 2u << o->ring_log2, stop);
	if (csv)
		gen_report_csv_header(csv);
	g->csv = csv;
	g->csv_cycles = g->hz * o->interval_ms / 1000;
	g->live_cycles = g->hz * GEN_LIVE_MS / 1000;
	g->t0 = rte_rdtsc();
	g->send_end = g->t0 + (uint64_t)(duration * (double)g->hz);
	g->next_csv = g->t0 + g->csv_cycles;
	g->next_live = g->t0 + g->live_cycles;
	mark(g, &g->csv_mark, g->t0);
	mark(g, &g->live_mark, g->t0);

	send_phase(g, o->burst, stop);
	drain_phase(g, o->drain_ms, stop);

	t->sent = g->sent;
	t->probes_sent = g->probe_tx;
	t->received = g->received;
	t->unknown_rx = g->unknown_rx;
	t->replies = g->replies;
	t->tx_dropped = g->tx_dropped;
	t->late_skipped = g->late_skipped;
	t->alloc_failed = g->alloc_failed;
	t->loop_stalls = g->stalls;
	t->stamp_late = g->stamp_late;
	t->loop_max_gap_us = (double)g->max_gap * 1e6 / (double)g->hz;
	t->duration_s = g->duration_s;
	t->max_rate = g->max_rate;
	t->target_pkts = g->max_rate ? 0 : gen_profile_packets(p, g->duration_s);
	rte_eth_dev_stop(g->port);
out:
	rte_eth_dev_close(g->port);
out_free:
	engine_free(g);
	return rc;
}
