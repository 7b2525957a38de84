/* nf_module.h - the ops table every NF module (fwd, acl, nat, monitor, ...) implements. */
#ifndef NEMO_NF_MODULE_H
#define NEMO_NF_MODULE_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_telemetry.h>

#include "nemo/config.h"

/*
 * Why a packet was dropped. Counted per lcore, published in the harvest channel and in
 * /nemo/lcores. Append only: the harvest channel carries these by index.
 */
enum nf_drop_reason {
	NF_DROP_TRUNC_ETH = 0, /* shorter than an Ethernet header */
	NF_DROP_TRUNC_IP,      /* IPv4 header cut short */
	NF_DROP_BAD_IHL,       /* IHL < 5 or past the packet */
	NF_DROP_BAD_LEN,       /* IPv4 total length disagrees with the frame, or bad L4 length */
	NF_DROP_FRAGMENT,      /* IPv4 fragment: the NFs do not reassemble */
	NF_DROP_ACL,	       /* denied by an acl rule */
	NF_DROP_NAT,	       /* nat: no free port, or no mapping for a return packet */
	NF_DROP_TX_FULL,       /* tx ring full */
	NF_DROP_RX_NOMBUF,     /* the port had no mbuf to receive into (from port stats) */
	NF_DROP_FN_FULL,       /* fn: the function's ring was full (or the packet too big for it) */
	NF_DROP_REASONS,
};

/* Short names, indexed by enum nf_drop_reason ("trunc_eth", ...). */
extern const char *const nf_drop_reason_names[NF_DROP_REASONS];

struct nf_fn_hub;

/* What a module instance may know about the lcore and ports it runs on. */
struct nf_module_env {
	unsigned int lcore_id;
	unsigned int socket_id;
	uint16_t nb_ports;
	struct rte_ether_addr port_mac[RTE_MAX_ETHPORTS];
	/* mbufs for packets a module makes itself (fn replies) */
	struct rte_mempool *pool;
	/*
	 * The lcore's count of packets a module took out of the chain without dropping them (fn
	 * handing a packet to a function and stopping there): such a module frees the packet and
	 * adds one here instead of to drops[]. Written by the lcore only.
	 */
	uint64_t *consumed_pkts;
	/* nemo-nf's lease server for function rings (fn), NULL when no chain has an fn module */
	struct nf_fn_hub *fn_hub;
};

/*
 * One instance per lcore (state is never shared between lcores, so no locks). A chain is
 * an array of instances run in order on every burst.
 *
 * process(): runs on the packet path. It keeps the packets that go on, compacted to the
 * front of pkts[] in their original order, and returns how many. Packets it drops it frees
 * and counts in drops[reason]. It may set m->port to choose the output port (the lcore
 * transmits each packet on m->port; on rx, m->port is the input port). No syscalls, locks,
 * allocation or logging here.
 */
struct nf_module_ops {
	const char *name;
	/*
	 * Parse `cfg` (the module's JSON object from the chain, never NULL; it may hold the
	 * "module" key, which the module's key table accepts and ignores) and build an
	 * instance. Errors go through cfg_error() naming `path`. Returns NULL with errno set
	 * (EINVAL for config errors, ENOMEM, ...).
	 */
	void *(*create)(struct cfg_ctx *ctx, const char *path, const cJSON *cfg,
			const struct nf_module_env *env);
	uint16_t (*process)(void *inst, struct rte_mbuf **pkts, uint16_t nb_pkts, uint64_t now_tsc,
			    uint64_t drops[NF_DROP_REASONS]);
	void (*destroy)(void *inst);
	/* Optional: add the instance's figures to a telemetry dict. Control thread only. */
	void (*telemetry)(void *inst, struct rte_tel_data *d);
	/*
	 * Optional, packet path: called at the start of every loop iteration, before rx. It
	 * may put up to `max` packets it made (fn's replies) into out[], each with m->port set,
	 * for the lcore to transmit, and returns how many. Same rules as process().
	 */
	uint16_t (*poll)(void *inst, struct rte_mbuf **out, uint16_t max, uint64_t now_tsc);
	/*
	 * Optional, packet path: the lcore is about to yield its core (send deferred wake-ups).
	 * Called only for a module that also has poll: the lcore keeps one list of those.
	 */
	void (*idle)(void *inst, uint64_t now_tsc);
};

/*
 * The lease server of one nemo-nf for the fn modules' function rings (packet/README.md): a
 * unix socket and a thread that hands each ring to one consumer and has it reset when that
 * consumer goes. Created before the chains (fn modules add their rings through env.fn_hub),
 * started after them, destroyed before them.
 * nf_fn_hub_create(): bind `path` (a stale socket file is replaced); NULL with errno set,
 * the error logged. nf_fn_hub_start(): 0 or -errno of pthread_create. nf_fn_hub_destroy():
 * stop the thread, close every lease and the socket, unlink it; NULL is fine.
 */
struct nf_fn_hub *nf_fn_hub_create(const char *path);
int nf_fn_hub_start(struct nf_fn_hub *hub);
void nf_fn_hub_destroy(struct nf_fn_hub *hub);

/* The registry of modules, ended by NULL. nf_module_find() returns NULL for an unknown name. */
extern const struct nf_module_ops *const nf_modules[];
const struct nf_module_ops *nf_module_find(const char *name);

/*
 * Parse and check the L2/L3 headers of a burst before the chain runs: drop (free and count)
 * truncated or malformed IPv4 packets and IPv4 fragments, and fill m->l2_len, m->l3_len and
 * m->packet_type (RTE_PTYPE_L3_IPV4 plus L4 TCP/UDP/ICMP) for the rest. Non-IPv4 frames with
 * a whole Ethernet header go on with packet_type RTE_PTYPE_L2_ETHER. Returns the kept count.
 */
uint16_t nf_pkt_validate(struct rte_mbuf **pkts, uint16_t nb_pkts, uint64_t drops[NF_DROP_REASONS]);

#endif /* NEMO_NF_MODULE_H */
