/* telemetry.c - /nemo/lcores, /nemo/ports and /nemo/module for dpdk-telemetry.py. */
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
