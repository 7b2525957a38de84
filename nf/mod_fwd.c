/* mod_fwd.c - the fwd module: send each packet out of a chosen port with rewritten MACs. */
#include <errno.h>
#include <string.h>

#include <rte_ether.h>
#include <rte_malloc.h>

#include "nemo/log.h"
#include "nf_internal.h"

#define FWD_PORT_UNSET (-1)

struct fwd_cfg {
	int32_t out_port;
	char dst_mac[RTE_ETHER_ADDR_FMT_SIZE];
};

struct fwd_inst {
	uint16_t nb_ports;
	int32_t out_port; /* FWD_PORT_UNSET: choose per packet from its rx port */
	bool set_dst;	  /* false: send back to the frame's source MAC */
	struct rte_ether_addr dst_mac;
	struct rte_ether_addr port_mac[RTE_MAX_ETHPORTS];
};

static const struct cfg_key fwd_keys[] = {
	NF_CFG_KEY_MODULE,
	CFG_KEY_RANGE("out_port", cfg_parse_i32, struct fwd_cfg, out_port, false, 0,
		      RTE_MAX_ETHPORTS - 1),
	CFG_KEY_STR("dst_mac", struct fwd_cfg, dst_mac, false),
	CFG_KEY_END,
};

static void *fwd_create(struct cfg_ctx *ctx, const char *path, const cJSON *cfg,
			const struct nf_module_env *env)
{
	struct fwd_cfg c = {.out_port = FWD_PORT_UNSET};
	struct fwd_inst *fwd;
	char kpath[256];

	if (cfg_parse_object(ctx, path, cfg, fwd_keys, &c)) {
		errno = EINVAL;
		return NULL;
	}
	if (c.out_port != FWD_PORT_UNSET && c.out_port >= env->nb_ports) {
		cfg_error(ctx, cfg_join(kpath, sizeof(kpath), path, "out_port"),
			  "port %d does not exist (%u ports)", c.out_port, env->nb_ports);
		errno = EINVAL;
		return NULL;
	}
	fwd = rte_zmalloc_socket("nf_fwd", sizeof(*fwd), RTE_CACHE_LINE_SIZE, (int)env->socket_id);
	if (!fwd) {
		NEMO_ERR("nf", "fwd on lcore %u: cannot allocate the instance", env->lcore_id);
		errno = ENOMEM;
		return NULL;
	}
	if (c.dst_mac[0]) {
		if (rte_ether_unformat_addr(c.dst_mac, &fwd->dst_mac) != 0) {
			cfg_error(ctx, cfg_join(kpath, sizeof(kpath), path, "dst_mac"),
				  "'%s' is not a MAC address (aa:bb:cc:dd:ee:ff)", c.dst_mac);
			rte_free(fwd);
			errno = EINVAL;
			return NULL;
		}
		fwd->set_dst = true;
	}
	fwd->nb_ports = env->nb_ports;
	fwd->out_port = c.out_port;
	memcpy(fwd->port_mac, env->port_mac, sizeof(fwd->port_mac));
	return fwd;
}

/*
 * With no out_port, ports pair up 0<->1, 2<->3, ...; a single port, or the last of an odd
 * number, sends back where the packet came from.
 */
static inline uint16_t fwd_out_port(const struct fwd_inst *fwd, uint16_t rx_port)
{
	uint16_t peer;

	if (fwd->out_port != FWD_PORT_UNSET)
		return (uint16_t)fwd->out_port;
	peer = rx_port ^ 1;
	return peer < fwd->nb_ports ? peer : rx_port;
}

/* Runs after nf_pkt_validate(): every frame has a whole Ethernet header, none is dropped. */
static uint16_t fwd_process(void *inst, struct rte_mbuf **pkts, uint16_t nb_pkts, uint64_t now_tsc,
			    uint64_t drops[NF_DROP_REASONS])
{
	const struct fwd_inst *fwd = inst;

	(void)now_tsc;
	(void)drops;
	for (uint16_t i = 0; i < nb_pkts; i++) {
		struct rte_mbuf *m = pkts[i];
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
		uint16_t out = fwd_out_port(fwd, m->port);

		if (fwd->set_dst)
			rte_ether_addr_copy(&fwd->dst_mac, &eth->dst_addr);
		else
			rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
		rte_ether_addr_copy(&fwd->port_mac[out], &eth->src_addr);
		m->port = out;
	}
	return nb_pkts;
}

static void fwd_destroy(void *inst)
{
	rte_free(inst);
}

static void fwd_telemetry(void *inst, struct rte_tel_data *d)
{
	const struct fwd_inst *fwd = inst;

	rte_tel_data_add_dict_int(d, "out_port", fwd->out_port);
}

const struct nf_module_ops nf_mod_fwd_ops = {
	.name = "fwd",
	.create = fwd_create,
	.process = fwd_process,
	.destroy = fwd_destroy,
	.telemetry = fwd_telemetry,
};
