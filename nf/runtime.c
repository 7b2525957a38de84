/* runtime.c - nemo-nf's runtime: ports, chains, the channel, launching lcores, figures. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "fn_internal.h"
#include "nemo/log.h"
#include "runtime_internal.h"

void nf_acct_init(struct nf_acct *a, uint64_t now_tsc, uint64_t tsc_hz)
{
	memset(a, 0, sizeof(*a));
	a->start_tsc = now_tsc;
	a->last_tsc = now_tsc;
	a->tsc_per_us = tsc_hz / 1000000 ? tsc_hz / 1000000 : 1;
}

/* Enough mbufs for every rx and tx ring, the lcores' bursts and the mempool caches. */
static uint32_t mbufs_needed(const struct nf_config *cfg)
{
	uint64_t n = 0;

	for (uint32_t p = 0; p < cfg->nb_ports; p++)
		n += (uint64_t)cfg->ports[p].rx_queues * cfg->ports[p].rx_ring +
		     (uint64_t)cfg->ports[p].tx_queues * cfg->ports[p].tx_ring;
	n += (uint64_t)cfg->nb_lcores * (cfg->burst * 2 + 512) + 1024;
	return (uint32_t)(n < 8191 ? 8191 : n);
}

/* The fn modules' lease server, when a chain has one (before the chains: they add rings). */
static int fn_hub_create(struct nf_runtime *rt)
{
	const struct nf_config *cfg = rt->cfg;
	char path[sizeof(cfg->fn_socket) + NF_NAME_MAX + 16];
	bool any = false;

	for (uint32_t i = 0; i < cfg->nb_lcores; i++)
		for (uint32_t m = 0; m < cfg->lcores[i].chain_len; m++)
			any |= strcmp(cfg->lcores[i].chain_names[m], "fn") == 0;
	if (!any)
		return 0;
	if (cfg->fn_socket[0])
		snprintf(path, sizeof(path), "%s", cfg->fn_socket);
	else
		snprintf(path, sizeof(path), "/run/nemo/%s.fn.sock", cfg->name);
	rt->fn_hub = nf_fn_hub_create(path);
	return rt->fn_hub ? 0 : -errno;
}

static int chains_create(struct nf_runtime *rt)
{
	const struct nf_config *cfg = rt->cfg;
	struct nf_module_env env = {
		.nb_ports = (uint16_t)cfg->nb_ports, .pool = rt->pool, .fn_hub = rt->fn_hub};
	struct cfg_ctx ctx = {.file = cfg->file};
	cJSON *empty = cJSON_CreateObject();

	if (!empty)
		return -ENOMEM;
	for (uint32_t p = 0; p < cfg->nb_ports; p++)
		rte_eth_macaddr_get(rt->port_id[p], &env.port_mac[p]);
	for (uint32_t i = 0; i < cfg->nb_lcores; i++) {
		struct nf_lcore_ctx *c = &rt->lcores[i];
		const struct nf_lcore_config *lc = c->cfg;

		env.lcore_id = lc->lcore_id;
		env.socket_id = rte_lcore_to_socket_id(lc->lcore_id);
		env.consumed_pkts = &c->consumed_pkts;
		for (uint32_t m = 0; m < lc->chain_len; m++) {
			const cJSON *mcfg = lc->chain_cfg[m];
			char path[96];

			snprintf(path, sizeof(path), "lcores[%u].chain[%u]", i, m);
			c->chain_ops[m] = nf_module_find(lc->chain_names[m]);
			/* a bare name ("fwd") has no settings; every module accepts "module" itself */
			c->chain_inst[m] = c->chain_ops[m]->create(
				&ctx, path, cJSON_IsObject(mcfg) ? mcfg : empty, &env);
			if (!c->chain_inst[m]) {
				int rc = errno ? -errno : -EINVAL;

				if (!ctx.err[0])
					NEMO_ERR("nf", "%s: %s: cannot create module '%s': %s",
						 cfg->file, path, lc->chain_names[m],
						 strerror(-rc));
				cJSON_Delete(empty);
				return rc;
			}
			c->chain_len = m + 1;
			if (c->chain_ops[m]->poll) {
				c->poll_ops[c->nb_pollers] = c->chain_ops[m];
				c->poll_inst[c->nb_pollers++] = c->chain_inst[m];
			}
		}
	}
	cJSON_Delete(empty);
	return 0;
}

static void chains_destroy(struct nf_runtime *rt)
{
	for (uint32_t i = 0; i < rt->cfg->nb_lcores; i++) {
		struct nf_lcore_ctx *c = &rt->lcores[i];

		for (uint32_t m = 0; m < c->chain_len; m++)
			c->chain_ops[m]->destroy(c->chain_inst[m]);
		c->chain_len = 0;
		c->nb_pollers = 0;
	}
}

/*
 * RT throttling stalls a SCHED_FIFO thread that never sleeps: say so before it happens, and
 * set the share of every slice a sleeping lcore keeps asleep (nf.h, RT budget guard).
 */
static void rt_throttling(struct nf_runtime *rt, const struct nf_config *cfg)
{
	long runtime = -1, period = 1000000;
	FILE *f;

	f = fopen("/proc/sys/kernel/sched_rt_runtime_us", "r");
	if (f) {
		if (fscanf(f, "%ld", &runtime) != 1)
			runtime = -1;
		fclose(f);
	}
	f = fopen("/proc/sys/kernel/sched_rt_period_us", "r");
	if (f) {
		if (fscanf(f, "%ld", &period) != 1)
			period = 1000000;
		fclose(f);
	}
	if (runtime < 0 || runtime >= period || period <= 0)
		return;
	/* three times the reserved share: nf.h, RT budget guard, says why */
	rt->rt_min_sleep_pct = (uint32_t)((period - runtime) * 300 / period);
	if (rt->rt_min_sleep_pct < 2)
		rt->rt_min_sleep_pct = 2;
	for (uint32_t i = 0; i < cfg->nb_lcores; i++) {
		const struct nf_lcore_config *lc = &cfg->lcores[i];

		if (lc->sched.policy == HC_SCHED_FIFO && lc->idle.policy == HC_IDLE_POLL)
			NEMO_WARN(
				"nf",
				"lcore %u: SCHED_FIFO with idle policy 'poll' never sleeps, so RT "
				"throttling (kernel.sched_rt_runtime_us=%ld of %ld) will stall it "
				"for %ld ms every %ld ms; use idle policy 'sleep' or 'interrupt'",
				lc->lcore_id, runtime, period, (period - runtime) / 1000,
				period / 1000);
	}
}

struct nf_runtime *nf_runtime_create(const struct nf_config *cfg)
{
	struct nf_runtime *rt;
	int rc = -ENOMEM;

	rt = rte_zmalloc("nf_runtime", sizeof(*rt), RTE_CACHE_LINE_SIZE);
	if (!rt)
		goto err;
	rt->cfg = cfg;
	rt->tsc_hz = rte_get_tsc_hz();
	rt->nb_ports = (uint16_t)cfg->nb_ports;
	for (uint32_t i = 0; i < cfg->nb_lcores; i++) {
		if (!rte_lcore_is_enabled(cfg->lcores[i].lcore_id)) {
			NEMO_ERR("nf",
				 "%s: lcores[%u]: lcore %u is not enabled in the EAL (--lcores)",
				 cfg->file, i, cfg->lcores[i].lcore_id);
			rc = -EINVAL;
			goto err_free;
		}
	}
	rt->lcores =
		rte_zmalloc("nf_lcores", sizeof(*rt->lcores) * cfg->nb_lcores, RTE_CACHE_LINE_SIZE);
	rt->qsbr = rte_zmalloc("nf_qsbr", rte_rcu_qsbr_get_memsize(cfg->nb_lcores),
			       RTE_CACHE_LINE_SIZE);
	if (!rt->lcores || !rt->qsbr || rte_rcu_qsbr_init(rt->qsbr, cfg->nb_lcores))
		goto err_free;
	rt->pool = rte_pktmbuf_pool_create("nf_mbufs", cfg->mbufs ? cfg->mbufs : mbufs_needed(cfg),
					   256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	if (!rt->pool) {
		rc = -rte_errno;
		NEMO_ERR("nf", "mbuf pool of %u: %s", cfg->mbufs ? cfg->mbufs : mbufs_needed(cfg),
			 rte_strerror(rte_errno));
		goto err_free;
	}
	for (uint32_t p = 0; p < cfg->nb_ports; p++) {
		rc = nf_port_setup(rt, p);
		if (rc)
			goto err_ports;
	}
	rt->ch = nf_channel_create(cfg->name, cfg->nb_lcores, rt->tsc_hz, cfg->publish_period_us);
	if (!rt->ch) {
		rc = -errno;
		goto err_ports;
	}
	for (uint32_t i = 0; i < cfg->nb_lcores; i++) {
		struct nf_lcore_ctx *c = &rt->lcores[i];
		struct hc_lcore_record *r = nf_channel_record(rt->ch, i);

		c->cfg = &cfg->lcores[i];
		c->rt = rt;
		c->idx = i;
		c->burst = cfg->burst;
		c->qsbr = rt->qsbr;
		c->rec = r;
		c->delay_every = cfg->delay_sample_every;
		c->delay_left = c->delay_every ? c->delay_every : UINT64_MAX;
		c->delay_ns_mult = (uint64_t)(((unsigned __int128)1000000000u << 32) / rt->tsc_hz);
		c->delay_max_age = rt->tsc_hz;
		c->state = HC_STATE_STOPPED;
		c->port_ids_are_indexes = true;
		for (uint32_t p = 0; p < cfg->nb_ports; p++)
			c->port_ids_are_indexes &= rt->port_id[p] == p;
		for (uint32_t q = 0; q < c->cfg->nb_rx; q++) {
			c->rx_port[q] = rt->port_id[c->cfg->rx[q].port];
			c->rx_queue[q] = c->cfg->rx[q].queue;
		}
		r->lcore_id = c->cfg->lcore_id;
		r->cpu = c->cfg->cpu;
		r->idle_policy = (uint32_t)c->cfg->idle.policy;
		r->sched_policy = (uint32_t)c->cfg->sched.policy;
		r->sched_prio = c->cfg->sched.policy == HC_SCHED_FIFO ? c->cfg->sched.priority
								      : c->cfg->sched.nice;
	}
	rc = fn_hub_create(rt);
	if (rc)
		goto err_chains;
	rc = chains_create(rt);
	if (rc)
		goto err_chains;
	if (rt->fn_hub) {
		rc = nf_fn_hub_start(rt->fn_hub);
		if (rc)
			goto err_chains;
	}
	rc = nf_telemetry_register(rt);
	if (rc)
		goto err_chains;
	rt_throttling(rt, cfg);
	return rt;

err_chains:
	nf_fn_hub_destroy(rt->fn_hub);
	chains_destroy(rt);
	nf_channel_destroy(rt->ch);
err_ports:
	for (uint32_t p = 0; p < cfg->nb_ports; p++)
		nf_port_teardown(rt, p);
	rte_mempool_free(rt->pool);
err_free:
	rte_free(rt->qsbr);
	rte_free(rt->lcores);
	rte_free(rt);
err:
	errno = -rc;
	return NULL;
}

int nf_runtime_start(struct nf_runtime *rt)
{
	rt->start_tsc = rte_rdtsc();
	rt->last_live_tsc = rt->start_tsc;
	nf_unmap_guard(rt->qsbr);
	for (uint32_t i = 0; i < rt->cfg->nb_lcores; i++) {
		int rc = rte_eal_remote_launch(nf_lcore_main, &rt->lcores[i],
					       rt->cfg->lcores[i].lcore_id);

		if (rc) {
			NEMO_ERR("nf", "cannot launch lcore %u: %s", rt->cfg->lcores[i].lcore_id,
				 strerror(-rc));
			nf_runtime_request_stop(rt);
			nf_runtime_wait(rt);
			return rc;
		}
	}
	rt->launched = true;
	return 0;
}

void nf_runtime_request_stop(struct nf_runtime *rt)
{
	__atomic_store_n(&rt->quit, 1, __ATOMIC_RELAXED);
}

void nf_runtime_wait(struct nf_runtime *rt)
{
	for (uint32_t i = 0; i < rt->cfg->nb_lcores; i++)
		rte_eal_wait_lcore(rt->cfg->lcores[i].lcore_id);
}

bool nf_runtime_failed(struct nf_runtime *rt)
{
	for (uint32_t i = 0; i < rt->cfg->nb_lcores; i++)
		if (__atomic_load_n(&rt->lcores[i].rc, __ATOMIC_RELAXED))
			return true;
	return false;
}

int nf_runtime_snapshot(struct nf_runtime *rt, uint32_t idx, struct hc_lcore_record *out)
{
	int rc = hc_read_record(rt->lcores[idx].rec, out, 1000);

	if (!rc)
		hc_record_extrapolate(out, rte_rdtsc(), rte_get_tsc_hz());
	return rc;
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

void nf_runtime_print_live(struct nf_runtime *rt)
{
	uint64_t now = rte_rdtsc();
	double secs = (double)(now - rt->last_live_tsc) / (double)rt->tsc_hz;

	rt->last_live_tsc = now;
	for (uint32_t i = 0; i < rt->cfg->nb_lcores; i++) {
		struct nf_lcore_ctx *c = &rt->lcores[i];
		struct hc_lcore_record s, *p = &c->last_live;
		uint64_t total, busy;

		if (nf_runtime_snapshot(rt, i, &s))
			continue;
		total = s.total_cycles - p->total_cycles;
		busy = s.busy_cycles - p->busy_cycles;
		printf("lcore %2u cpu %2u | rx %7.3f Mpps tx %7.3f Mpps drop %8lu | busy %5.1f%% "
		       "idle %5.1f%% sleep %5.1f%% | spare %5.1f%% | %6.0f sleeps/s\n",
		       s.lcore_id, s.cpu, (double)(s.rx_pkts - p->rx_pkts) / secs / 1e6,
		       (double)(s.tx_pkts - p->tx_pkts) / secs / 1e6,
		       (unsigned long)(s.drop_pkts - p->drop_pkts), pct(busy, total),
		       pct(s.idle_poll_cycles - p->idle_poll_cycles, total),
		       pct(s.sleep_cycles - p->sleep_cycles, total), pct(total - busy, total),
		       (double)(s.sleeps - p->sleeps) / secs);
		*p = s;
	}
	fflush(stdout);
}

/* Counters only grow (nemo-nf never resets them): keep each one's highest reading. */
static void stats_merge(struct rte_eth_stats *kept, const struct rte_eth_stats *now)
{
	uint64_t *k = (uint64_t *)kept;
	const uint64_t *n = (const uint64_t *)now;

	_Static_assert(sizeof(*kept) % sizeof(uint64_t) == 0, "rte_eth_stats is all u64");
	for (size_t i = 0; i < sizeof(*kept) / sizeof(uint64_t); i++)
		k[i] = n[i] > k[i] ? n[i] : k[i];
}

void nf_runtime_sample_ports(struct nf_runtime *rt)
{
	for (uint32_t p = 0; p < rt->cfg->nb_ports; p++) {
		struct rte_eth_stats st;

		if (rt->port_started[p] && rte_eth_stats_get(rt->port_id[p], &st) == 0)
			stats_merge(&rt->port_stats[p], &st);
	}
}

/* The NF's own delay over the run, from the packets it sampled (README, "The NF's own delay"). */
static void print_delay(const struct nf_lcore_ctx *c)
{
	static const char *const names[] = {"wait", "send", "total"};
	const struct nf_delay_hist *h[] = {&c->delay_wait, &c->delay_send, &c->delay_total};

	if (!c->delay_every) {
		printf("  own delay: not timed (delay_sample_every 0)\n");
		return;
	}
	printf("  own delay, 1 in %u packets: %lu timed, %lu without a nemo-gen stamp, %lu on "
	       "another clock\n",
	       c->delay_every, (unsigned long)c->delay_total.count,
	       (unsigned long)c->delay_unstamped, (unsigned long)c->delay_bad_clock);
	if (!c->delay_total.count)
		return;
	for (int k = 0; k < 3; k++)
		printf("    %-5s p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n", names[k],
		       (double)nf_delay_percentile(h[k], 50) / 1e3,
		       (double)nf_delay_percentile(h[k], 99) / 1e3,
		       (double)nf_delay_percentile(h[k], 99.9) / 1e3, (double)h[k]->max_ns / 1e3);
}

void nf_runtime_print_summary(struct nf_runtime *rt)
{
	printf("\nnemo-nf %s: summary\n", rt->cfg->name);
	for (uint32_t i = 0; i < rt->cfg->nb_lcores; i++) {
		struct hc_lcore_record s;
		uint64_t acct;

		if (nf_runtime_snapshot(rt, i, &s))
			continue;
		acct = s.busy_cycles + s.idle_poll_cycles + s.sleep_cycles;
		printf("lcore %u (cpu %u): %.3f s, rx %lu, tx %lu, dropped %lu\n", s.lcore_id,
		       s.cpu, (double)s.total_cycles / (double)rt->tsc_hz, (unsigned long)s.rx_pkts,
		       (unsigned long)s.tx_pkts, (unsigned long)s.drop_pkts);
		printf("  cycles: total %lu = busy %lu (%.1f%%) + idle_poll %lu (%.1f%%) + sleep %lu "
		       "(%.1f%%); accounted %.3f%%\n",
		       (unsigned long)s.total_cycles, (unsigned long)s.busy_cycles,
		       pct(s.busy_cycles, s.total_cycles), (unsigned long)s.idle_poll_cycles,
		       pct(s.idle_poll_cycles, s.total_cycles), (unsigned long)s.sleep_cycles,
		       pct(s.sleep_cycles, s.total_cycles), pct(acct, s.total_cycles));
		printf("  spare_ratio %.4f, %lu sleeps, %lu iterations (%lu busy)\n",
		       s.total_cycles ? 1.0 - (double)s.busy_cycles / (double)s.total_cycles : 0.0,
		       (unsigned long)s.sleeps, (unsigned long)s.iterations,
		       (unsigned long)s.busy_iterations);
		printf("  idle: wake-up cost %.1f us (p90 %.1f us, measured at start), predicted gap "
		       "%.1f us\n",
		       (double)rt->lcores[i].wake.median_ns / 1e3,
		       (double)rt->lcores[i].wake.p90_ns / 1e3,
		       (double)rt->lcores[i].predicted_gap * 1e6 / (double)rt->tsc_hz);
		if (rt->lcores[i].rt_guard.slice)
			printf("  RT budget: asleep at least %u%% of every %.0f ms, %lu sleeps asked "
			       "for by that alone\n",
			       rt->lcores[i].rt_guard.min_pct,
			       (double)rt->lcores[i].rt_guard.slice * 1e3 / (double)rt->tsc_hz,
			       (unsigned long)rt->lcores[i].rt_guard.forced);
		print_delay(&rt->lcores[i]);
		if (rt->lcores[i].consumed_pkts)
			printf("  handed to functions and stopped there (neither sent nor dropped): "
			       "%lu\n",
			       (unsigned long)rt->lcores[i].consumed_pkts);
		if (s.fn_pkts)
			printf("  packets for functions: %lu, their cycles %lu (%.1f%% of busy)\n",
			       (unsigned long)s.fn_pkts, (unsigned long)s.fn_cycles,
			       pct(s.fn_cycles, s.busy_cycles));
		printf("  drops:");
		for (int d = 0; d < NF_DROP_REASONS; d++)
			if (s.drops[d])
				printf(" %s %lu", nf_drop_reason_names[d],
				       (unsigned long)s.drops[d]);
		printf(s.drop_pkts ? "\n" : " none\n");
	}
	nf_runtime_sample_ports(rt);
	for (uint32_t p = 0; p < rt->cfg->nb_ports; p++) {
		const struct rte_eth_stats st = rt->port_stats[p];

		if (!rt->port_attached[p])
			continue;
		printf("port %u (%s): ipackets %lu, opackets %lu, imissed %lu, ierrors %lu, "
		       "rx_nombuf %lu, oerrors %lu\n",
		       p, rt->port_name[p], (unsigned long)st.ipackets, (unsigned long)st.opackets,
		       (unsigned long)st.imissed, (unsigned long)st.ierrors,
		       (unsigned long)st.rx_nombuf, (unsigned long)st.oerrors);
	}
	fflush(stdout);
}

void nf_runtime_destroy(struct nf_runtime *rt)
{
	if (!rt)
		return;
	nf_telemetry_unregister();
	nf_unmap_guard(NULL);
	/* the lease server reads the rings the chains own: it goes first */
	nf_fn_hub_destroy(rt->fn_hub);
	chains_destroy(rt);
	for (uint32_t p = 0; p < rt->cfg->nb_ports; p++)
		nf_port_teardown(rt, p);
	nf_channel_destroy(rt->ch);
	rte_mempool_free(rt->pool);
	rte_free(rt->qsbr);
	rte_free(rt->lcores);
	rte_free(rt);
}
