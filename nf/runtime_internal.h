/* runtime_internal.h - nemo-nf's runtime state, shared by runtime.c, lcore.c and telemetry.c. */
#ifndef NEMO_NF_RUNTIME_INTERNAL_H
#define NEMO_NF_RUNTIME_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>

#include "nemo/harvest_channel.h"
#include "nemo/nf.h"
#include "nemo/nf_module.h"

/* One per NF lcore; written by that lcore only (the control thread reads its shm record). */
struct nf_lcore_ctx {
	const struct nf_lcore_config *cfg;
	struct nf_runtime *rt;
	uint32_t idx; /* index in cfg->lcores, the harvest-channel record and the tx queue */
	uint32_t burst;
	struct rte_rcu_qsbr *qsbr; /* rt->qsbr: quiescent between rounds, offline asleep */
	struct hc_lcore_record *rec;
	struct nf_acct acct;
	uint64_t rx_pkts;
	uint64_t tx_pkts;
	uint64_t drop_pkts;
	uint64_t rx_bursts;
	uint64_t wakeups_early;
	uint64_t drops[NF_DROP_REASONS];
	uint32_t state;
	uint64_t state_since_tsc;
	uint64_t max_sleep_ns;
	struct nf_idle idle;	     /* when to yield (nf.h, "idle detection") */
	struct nf_wake_cost wake;    /* measured at start, before the loop; read-only after */
	struct nf_rt_guard rt_guard; /* SCHED_FIFO: sleep enough not to be RT-throttled (nf.h) */
	uint64_t predicted_gap;	     /* idle.gap_ewma (cycles), refreshed at each publish */
	uint32_t chain_len;
	const struct nf_module_ops *chain_ops[NF_MAX_CHAIN];
	void *chain_inst[NF_MAX_CHAIN];
	uint32_t nb_pollers; /* the chain's modules with a poll op (fn), in chain order */
	const struct nf_module_ops *poll_ops[NF_MAX_CHAIN];
	void *poll_inst[NF_MAX_CHAIN];
	uint64_t consumed_pkts;	   /* taken out of the chain by a module, not dropped (fn) */
	uint64_t fn_reply_cycles;  /* the pollers' replies: polled and sent (fn_cycles, lcore.c) */
	bool port_ids_are_indexes; /* DPDK port id == config index for every port */
	uint16_t rx_port[NF_MAX_RX_PER_LCORE]; /* DPDK port ids */
	uint16_t rx_queue[NF_MAX_RX_PER_LCORE];
	int rc; /* the loop's exit status */
	/*
	 * The NF's own delay (README, "The NF's own delay"): 1 in delay_every packets, if it
	 * carries a nemo-gen stamp, is timed from its stamp to the dequeue (wait: the rx ring
	 * and the lcore's sleep) and on to the end of its burst's send (send); total is both.
	 * The lcore writes them, telemetry and the summary read them.
	 */
	uint64_t delay_left; /* packets to the next sample, that one included; UINT64_MAX: off */
	uint32_t delay_every;
	uint64_t delay_ns_mult;	  /* ns = cycles * mult >> 32 */
	uint64_t delay_max_age;	  /* cycles: an older stamp (or one from the future) is no clock */
	uint64_t delay_unstamped; /* sampled packets without a nemo-gen stamp */
	uint64_t delay_bad_clock; /* sampled stamps outside [now - 1 s, now]: another TSC */
	struct nf_delay_hist delay_wait;
	struct nf_delay_hist delay_send;
	struct nf_delay_hist delay_total;
	/* control thread only: the snapshot at the last live line */
	struct hc_lcore_record last_live __attribute__((aligned(HC_CACHE_LINE)));
} __attribute__((aligned(RTE_CACHE_LINE_SIZE)));

struct nf_runtime {
	const struct nf_config *cfg;
	uint64_t tsc_hz;
	uint16_t nb_ports;
	uint16_t port_id[NF_MAX_PORTS];
	bool port_attached[NF_MAX_PORTS];
	bool port_started[NF_MAX_PORTS];
	char port_name[NF_MAX_PORTS][64];
	/* control thread only: the highest port counters read so far (nf_runtime_sample_ports) */
	struct rte_eth_stats port_stats[NF_MAX_PORTS];
	struct rte_mempool *pool;
	struct nf_channel *ch;
	struct nf_fn_hub *fn_hub; /* NULL unless a chain has an fn module */
	struct nf_lcore_ctx *lcores;
	struct rte_rcu_qsbr *qsbr; /* the lcores' quiescent states, for munmap() (unmap.c) */
	volatile int quit;
	bool launched;
	uint64_t start_tsc;
	uint64_t last_live_tsc;
	uint32_t
		rt_min_sleep_pct; /* the RT guard's share for SCHED_FIFO lcores; 0: no throttling */
};

/* The loop each NF lcore runs (rte_eal_remote_launch). */
int nf_lcore_main(void *arg);

/* Copy a lcore's record out of the channel, brought up to now. Returns 0 or -EAGAIN. */
int nf_runtime_snapshot(struct nf_runtime *rt, uint32_t idx, struct hc_lcore_record *out);

/* Register /nemo/lcores and /nemo/ports for this runtime (one runtime per process). */
int nf_telemetry_register(struct nf_runtime *rt);
void nf_telemetry_unregister(void);

/* Attach, configure and start port `p` as the config describes. Returns 0 or -errno. */
int nf_port_setup(struct nf_runtime *rt, uint32_t p);
void nf_port_teardown(struct nf_runtime *rt, uint32_t p);

#endif /* NEMO_NF_RUNTIME_INTERNAL_H */
