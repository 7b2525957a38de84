/* telemetry.c - /nemo/lcores, /nemo/ports, /nemo/module and /nemo/delay for dpdk-telemetry.py. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include "nemo/log.h"
#include "runtime_internal.h"

/*
 * DPDK's telemetry callbacks take no user pointer, so the one runtime a process runs is
 * kept here, behind a lock because the callbacks run on the telemetry thread.
 */
static pthread_mutex_t tel_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nf_runtime *tel_rt;
static int tel_registered;

static const char *const state_names[] = {"busy", "idle_poll", "sleeping", "stopped"};
static const char *const idle_names[] = {"poll", "sleep", "interrupt"};

static const char *const detect_names[] = {"time", "count"};

static uint64_t cycles_ns(uint64_t cycles, uint64_t tsc_hz)
{
	return (uint64_t)((double)cycles * 1e9 / (double)(tsc_hz ? tsc_hz : 1));
}

/* The NF's own delay histograms of a lcore, by the name telemetry and the summary use. */
static const struct nf_delay_hist *delay_hist(const struct nf_lcore_ctx *c, const char *kind)
{
	if (!strcmp(kind, "wait"))
		return &c->delay_wait;
	if (!strcmp(kind, "send"))
		return &c->delay_send;
	if (!strcmp(kind, "total"))
		return &c->delay_total;
	return NULL;
}

static const char *const delay_kinds[] = {"wait", "send", "total"};

/* Percentiles of the NF's own delay since start ("delay_wait_p99_ns", ...). */
static void add_delay(struct rte_tel_data *d, const struct nf_lcore_ctx *c)
{
	static const struct {
		const char *name;
		double pct;
	} pcts[] = {{"p50", 50}, {"p99", 99}, {"p999", 99.9}, {"max", 100}};

	rte_tel_data_add_dict_u64(d, "delay_sample_every", c->delay_every);
	rte_tel_data_add_dict_u64(d, "delay_samples", c->delay_total.count);
	rte_tel_data_add_dict_u64(d, "delay_unstamped", c->delay_unstamped);
	rte_tel_data_add_dict_u64(d, "delay_bad_clock", c->delay_bad_clock);
	for (size_t k = 0; k < RTE_DIM(delay_kinds); k++)
		for (size_t p = 0; p < RTE_DIM(pcts); p++) {
			char key[40];

			snprintf(key, sizeof(key), "delay_%s_%s_ns", delay_kinds[k], pcts[p].name);
			rte_tel_data_add_dict_u64(
				d, key,
				nf_delay_percentile(delay_hist(c, delay_kinds[k]), pcts[p].pct));
		}
}

static void add_lcore(struct rte_tel_data *d, const struct hc_lcore_record *s,
		      const struct nf_lcore_ctx *c, uint64_t tsc_hz)
{
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_int(d, "lcore", (int)s->lcore_id);
	rte_tel_data_add_dict_int(d, "cpu", (int)s->cpu);
	rte_tel_data_add_dict_string(d, "state", state_names[s->state & 3]);
	rte_tel_data_add_dict_string(d, "idle_policy", idle_names[s->idle_policy % 3]);
	rte_tel_data_add_dict_string(d, "sched_policy", s->sched_policy ? "fifo" : "other");
	rte_tel_data_add_dict_int(d, "sched_prio", s->sched_prio);
	rte_tel_data_add_dict_u64(d, "tsc_hz", tsc_hz);
	rte_tel_data_add_dict_u64(d, "total_cycles", s->total_cycles);
	rte_tel_data_add_dict_u64(d, "busy_cycles", s->busy_cycles);
	rte_tel_data_add_dict_u64(d, "idle_poll_cycles", s->idle_poll_cycles);
	rte_tel_data_add_dict_u64(d, "sleep_cycles", s->sleep_cycles);
	/* 22.11 telemetry carries integers only: the ratio in parts per million, as a number */
	rte_tel_data_add_dict_u64(d, "spare_ratio_ppm",
				  s->total_cycles ? (s->total_cycles - s->busy_cycles) * 1000000 /
							    s->total_cycles
						  : 0);
	/* part of busy: packets for functions, which a harvester owes to their instance */
	rte_tel_data_add_dict_u64(d, "fn_cycles", s->fn_cycles);
	rte_tel_data_add_dict_u64(d, "fn_pkts", s->fn_pkts);
	rte_tel_data_add_dict_u64(d, "iterations", s->iterations);
	rte_tel_data_add_dict_u64(d, "busy_iterations", s->busy_iterations);
	rte_tel_data_add_dict_u64(d, "sleeps", s->sleeps);
	rte_tel_data_add_dict_u64(d, "max_sleep_ns", s->max_sleep_ns);
	/* idle detection: what a wake-up costs here, measured at start, and what was derived */
	rte_tel_data_add_dict_string(d, "idle_detect", detect_names[c->idle.count_only ? 1 : 0]);
	rte_tel_data_add_dict_u64(d, "wake_cost_ns", c->wake.median_ns);
	rte_tel_data_add_dict_u64(d, "wake_cost_p90_ns", c->wake.p90_ns);
	rte_tel_data_add_dict_u64(d, "idle_poll_budget_ns", cycles_ns(c->idle.budget, tsc_hz));
	rte_tel_data_add_dict_u64(d, "sleep_at_once_gap_ns", cycles_ns(c->idle.break_even, tsc_hz));
	rte_tel_data_add_dict_u64(
		d, "predicted_gap_ns",
		cycles_ns(__atomic_load_n(&c->predicted_gap, __ATOMIC_RELAXED), tsc_hz));
	add_delay(d, c);
	rte_tel_data_add_dict_u64(d, "rx_pkts", s->rx_pkts);
	rte_tel_data_add_dict_u64(d, "tx_pkts", s->tx_pkts);
	rte_tel_data_add_dict_u64(d, "drop_pkts", s->drop_pkts);
	for (int i = 0; i < NF_DROP_REASONS; i++) {
		char key[48];

		snprintf(key, sizeof(key), "drop_%s", nf_drop_reason_names[i]);
		rte_tel_data_add_dict_u64(d, key, s->drops[i]);
	}
}

/* Each command's body: fill `d` from the runtime `rt`. Called with tel_lock held. */
typedef int (*tel_fill_fn)(struct nf_runtime *rt, const char *params, struct rte_tel_data *d);

static int fill_lcores(struct nf_runtime *rt, const char *params, struct rte_tel_data *d)
{
	(void)params;
	rte_tel_data_start_dict(d);
	for (uint32_t i = 0; i < rt->cfg->nb_lcores; i++) {
		struct rte_tel_data *ld;
		struct hc_lcore_record s;
		char key[16];

		if (nf_runtime_snapshot(rt, i, &s))
			continue;
		ld = rte_tel_data_alloc();
		if (!ld)
			return -ENOMEM;
		add_lcore(ld, &s, &rt->lcores[i], rt->tsc_hz);
		snprintf(key, sizeof(key), "%u", s.lcore_id);
		rte_tel_data_add_dict_container(d, key, ld, 0);
	}
	return 0;
}

static int fill_ports(struct nf_runtime *rt, const char *params, struct rte_tel_data *d)
{
	(void)params;
	rte_tel_data_start_dict(d);
	for (uint32_t p = 0; p < rt->cfg->nb_ports; p++) {
		struct rte_tel_data *pd = rte_tel_data_alloc();
		struct rte_eth_stats st = {0};
		char key[16];

		if (!pd)
			return -ENOMEM;
		rte_tel_data_start_dict(pd);
		rte_tel_data_add_dict_string(pd, "name", rt->port_name[p]);
		rte_tel_data_add_dict_int(pd, "ethdev", rt->port_id[p]);
		if (rt->port_started[p])
			rte_eth_stats_get(rt->port_id[p], &st);
		rte_tel_data_add_dict_u64(pd, "ipackets", st.ipackets);
		rte_tel_data_add_dict_u64(pd, "opackets", st.opackets);
		rte_tel_data_add_dict_u64(pd, "imissed", st.imissed);
		rte_tel_data_add_dict_u64(pd, "rx_nombuf", st.rx_nombuf);
		rte_tel_data_add_dict_u64(pd, "oerrors", st.oerrors);
		snprintf(key, sizeof(key), "%u", p);
		rte_tel_data_add_dict_container(d, key, pd, 0);
	}
	return 0;
}

/*
 * Without parameters: the module instances, "<lcore>_<index>": "<name>". With "LCORE,INDEX":
 * that instance's own figures (acl hits, nat flows, monitor top flows, ...). One instance per
 * call because 22.11 telemetry nests containers one level deep, and modules use that level.
 */
static int fill_module(struct nf_runtime *rt, const char *params, struct rte_tel_data *d)
{
	unsigned int lcore, index;

	if (!params || !*params) {
		rte_tel_data_start_dict(d);
		for (uint32_t i = 0; i < rt->cfg->nb_lcores; i++) {
			const struct nf_lcore_ctx *c = &rt->lcores[i];

			for (uint32_t m = 0; m < c->chain_len; m++) {
				char key[32];

				snprintf(key, sizeof(key), "%u_%u", c->cfg->lcore_id, m);
				rte_tel_data_add_dict_string(d, key, c->chain_ops[m]->name);
			}
		}
		return 0;
	}
	if (sscanf(params, "%u,%u", &lcore, &index) != 2)
		return -EINVAL;
	for (uint32_t i = 0; i < rt->cfg->nb_lcores; i++) {
		const struct nf_lcore_ctx *c = &rt->lcores[i];

		if (c->cfg->lcore_id != lcore || index >= c->chain_len)
			continue;
		rte_tel_data_start_dict(d);
		rte_tel_data_add_dict_string(d, "module", c->chain_ops[index]->name);
		if (c->chain_ops[index]->telemetry)
			c->chain_ops[index]->telemetry(c->chain_inst[index], d);
		return 0;
	}
	return -ENOENT;
}

/*
 * "LCORE,KIND" (KIND wait, send or total): that delay histogram of that lcore whole, with the
 * lower bound of each bucket, so that a reader can take percentiles over any interval from
 * two readings (counts only grow).
 */
static int fill_delay(struct nf_runtime *rt, const char *params, struct rte_tel_data *d)
{
	char kind[16];
	unsigned int lcore;

	if (!params || sscanf(params, "%u,%15[a-z]", &lcore, kind) != 2)
		return -EINVAL;
	for (uint32_t i = 0; i < rt->cfg->nb_lcores; i++) {
		const struct nf_lcore_ctx *c = &rt->lcores[i];
		const struct nf_delay_hist *h = delay_hist(c, kind);
		struct rte_tel_data *counts, *lows;

		if (c->cfg->lcore_id != lcore)
			continue;
		if (!h)
			return -EINVAL;
		counts = rte_tel_data_alloc();
		lows = rte_tel_data_alloc();
		if (!counts || !lows) {
			rte_tel_data_free(counts);
			rte_tel_data_free(lows);
			return -ENOMEM;
		}
		rte_tel_data_start_array(counts, RTE_TEL_U64_VAL);
		rte_tel_data_start_array(lows, RTE_TEL_U64_VAL);
		for (uint32_t b = 0; b < NF_DELAY_BUCKETS; b++) {
			uint64_t lo, hi;

			nf_delay_bucket_bounds(b, &lo, &hi);
			rte_tel_data_add_array_u64(counts, h->buckets[b]);
			rte_tel_data_add_array_u64(lows, lo);
		}
		rte_tel_data_start_dict(d);
		rte_tel_data_add_dict_int(d, "lcore", (int)lcore);
		rte_tel_data_add_dict_string(d, "kind", kind);
		rte_tel_data_add_dict_u64(d, "sample_every", c->delay_every);
		rte_tel_data_add_dict_u64(d, "count", h->count);
		rte_tel_data_add_dict_u64(d, "sum_ns", h->sum_ns);
		rte_tel_data_add_dict_u64(d, "max_ns", h->max_ns);
		rte_tel_data_add_dict_container(d, "bucket_lo_ns", lows, 0);
		rte_tel_data_add_dict_container(d, "buckets", counts, 0);
		return 0;
	}
	return -ENOENT;
}

static int with_runtime(tel_fill_fn fill, const char *params, struct rte_tel_data *d)
{
	int rc;

	pthread_mutex_lock(&tel_lock);
	rc = tel_rt ? fill(tel_rt, params, d) : -ENODEV;
	pthread_mutex_unlock(&tel_lock);
	return rc;
}

static int tel_lcores(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	return with_runtime(fill_lcores, params, d);
}

static int tel_ports(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	return with_runtime(fill_ports, params, d);
}

static int tel_delay(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	return with_runtime(fill_delay, params, d);
}

static int tel_module(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	return with_runtime(fill_module, params, d);
}

int nf_telemetry_register(struct nf_runtime *rt)
{
	int rc = 0;

	pthread_mutex_lock(&tel_lock);
	tel_rt = rt;
	if (!tel_registered) {
		rc = rte_telemetry_register_cmd("/nemo/lcores", tel_lcores,
						"Per-lcore cycle accounting and packet counters of "
						"nemo-nf. No parameters.");
		if (!rc)
			rc = rte_telemetry_register_cmd("/nemo/ports", tel_ports,
							"nemo-nf ports and their counters. No "
							"parameters.");
		if (!rc)
			rc = rte_telemetry_register_cmd(
				"/nemo/module", tel_module,
				"NF module instances; with 'LCORE,INDEX' that instance's figures.");
		if (!rc)
			rc = rte_telemetry_register_cmd(
				"/nemo/delay", tel_delay,
				"The NF's own delay histogram. Parameters: LCORE,KIND (wait, send or "
				"total).");
		if (rc)
			NEMO_ERR("nf", "cannot register telemetry commands: %s", strerror(-rc));
		else
			tel_registered = 1;
	}
	pthread_mutex_unlock(&tel_lock);
	return rc;
}

/* DPDK cannot unregister a command; it answers -ENODEV once the runtime is gone. */
void nf_telemetry_unregister(void)
{
	pthread_mutex_lock(&tel_lock);
	tel_rt = NULL;
	pthread_mutex_unlock(&tel_lock);
}
