/* mod_nat.c - the nat module: stateful source NAT of TCP, UDP and ICMP echo to one address. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include "nemo/log.h"
#include "nf_internal.h"

#define NAT_PORT_UNSET	    (-1)
#define NAT_SWEEP_PER_BURST 8 /* entries checked for idleness per burst: bounded work */
#define NAT_MAX_FLOWS	    (1u << 24)

struct nat_cfg {
	uint32_t external_ip; /* network byte order */
	uint32_t port_min;
	uint32_t port_max;
	uint32_t idle_timeout_ms;
	uint32_t max_flows;
	int32_t inside_port;
};

/* One per external port: the inside 5-tuple that holds it. */
struct nat_entry {
	struct nf_flow_key inside; /* also the key in the flows hash */
	uint64_t last_seen_tsc;
	bool in_use;
};

struct nat_inst {
	struct rte_hash *flows;	   /* inside 5-tuple -> index of its external port */
	struct nat_entry *entries; /* [nb_ports], index = external port - port_min */
	uint16_t *free_ports;	   /* stack of free indices: allocation without malloc */
	uint32_t nb_free;
	uint32_t nb_ports;
	uint32_t max_flows;
	uint32_t active;
	uint32_t sweep_next;
	uint32_t external_ip;
	uint16_t port_min;
	int32_t inside_port;
	uint64_t idle_tsc;
	/* counters, read by telemetry */
	uint64_t allocations;
	uint64_t expirations;
	uint64_t exhausted;   /* new flows dropped: no free port or max_flows reached */
	uint64_t no_mapping;  /* inbound packets with no live mapping */
	uint64_t unsupported; /* protocols nat cannot translate */
	uint64_t translated_out;
	uint64_t translated_in;
};

static const struct cfg_key nat_keys[] = {
	NF_CFG_KEY_MODULE,
	{.name = "external_ip",
	 .parse = nf_cfg_parse_ipv4,
	 .offset = offsetof(struct nat_cfg, external_ip),
	 .required = true},
	CFG_KEY_RANGE("port_min", cfg_parse_u32, struct nat_cfg, port_min, false, 1, 65535),
	CFG_KEY_RANGE("port_max", cfg_parse_u32, struct nat_cfg, port_max, false, 1, 65535),
	CFG_KEY_RANGE("idle_timeout_ms", cfg_parse_u32, struct nat_cfg, idle_timeout_ms, false, 1,
		      86400000),
	CFG_KEY_RANGE("max_flows", cfg_parse_u32, struct nat_cfg, max_flows, false, 1,
		      NAT_MAX_FLOWS),
	CFG_KEY_RANGE("inside_port", cfg_parse_i32, struct nat_cfg, inside_port, false, 0,
		      RTE_MAX_ETHPORTS - 1),
	CFG_KEY_END,
};

static void nat_destroy(void *inst)
{
	struct nat_inst *nat = inst;

	if (!nat)
		return;
	rte_hash_free(nat->flows);
	rte_free(nat->entries);
	rte_free(nat->free_ports);
	rte_free(nat);
}

static int nat_check_cfg(struct cfg_ctx *ctx, const char *path, const struct nat_cfg *c,
			 const struct nf_module_env *env)
{
	char kpath[256];

	if (c->port_min > c->port_max)
		return cfg_error(ctx, cfg_join(kpath, sizeof(kpath), path, "port_max"),
				 "%u is below port_min %u", c->port_max, c->port_min);
	if (c->inside_port != NAT_PORT_UNSET && c->inside_port >= env->nb_ports)
		return cfg_error(ctx, cfg_join(kpath, sizeof(kpath), path, "inside_port"),
				 "port %d does not exist (%u ports)", c->inside_port,
				 env->nb_ports);
	return 0;
}

static void *nat_create(struct cfg_ctx *ctx, const char *path, const cJSON *cfg,
			const struct nf_module_env *env)
{
	struct nat_cfg c = {
		.port_min = 1024,
		.port_max = 65535,
		.idle_timeout_ms = 30000,
		.max_flows = 65536,
		.inside_port = NAT_PORT_UNSET,
	};
	int socket = (int)env->socket_id;
	struct rte_hash_parameters hp = {0};
	struct nat_inst *nat = NULL;
	char name[RTE_HASH_NAMESIZE], ip[INET_ADDRSTRLEN];
	int rc = -EINVAL;

	if (cfg_parse_object(ctx, path, cfg, nat_keys, &c) || nat_check_cfg(ctx, path, &c, env))
		goto fail;
	rc = -ENOMEM;
	nat = rte_zmalloc_socket("nf_nat", sizeof(*nat), RTE_CACHE_LINE_SIZE, socket);
	if (!nat)
		goto fail;
	nat->external_ip = c.external_ip;
	nat->port_min = (uint16_t)c.port_min;
	nat->nb_ports = c.port_max - c.port_min + 1;
	nat->max_flows = RTE_MIN(c.max_flows, nat->nb_ports);
	nat->inside_port = c.inside_port;
	nat->idle_tsc = (uint64_t)c.idle_timeout_ms * rte_get_tsc_hz() / 1000;
	nat->entries = rte_zmalloc_socket("nf_nat", nat->nb_ports * sizeof(*nat->entries),
					  RTE_CACHE_LINE_SIZE, socket);
	nat->free_ports = rte_malloc_socket("nf_nat", nat->nb_ports * sizeof(uint16_t),
					    RTE_CACHE_LINE_SIZE, socket);
	if (!nat->entries || !nat->free_ports)
		goto fail;
	/* pushed in reverse so the first flows get port_min, port_min + 1, ... */
	for (uint32_t i = 0; i < nat->nb_ports; i++)
		nat->free_ports[i] = (uint16_t)(nat->nb_ports - 1 - i);
	nat->nb_free = nat->nb_ports;

	hp.name = nf_instance_name(name, sizeof(name), "nat", env->lcore_id);
	/* rte_hash wants at least one bucket (8 entries); max_flows is enforced here anyway */
	hp.entries = RTE_MAX(nat->max_flows, 8u);
	hp.key_len = sizeof(struct nf_flow_key);
	hp.hash_func = rte_hash_crc;
	hp.socket_id = socket;
	/* the extendable table holds all `entries` keys whatever the collisions */
	hp.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
	nat->flows = rte_hash_create(&hp);
	if (!nat->flows) {
		rc = rte_errno ? -rte_errno : -ENOMEM;
		NEMO_ERR("nf", "nat on lcore %u: rte_hash_create %s (%u entries): %s",
			 env->lcore_id, name, hp.entries, rte_strerror(-rc));
		goto fail;
	}
	inet_ntop(AF_INET, &c.external_ip, ip, sizeof(ip));
	NEMO_INFO("nf",
		  "nat on lcore %u: external %s ports %u-%u, %u flows, idle timeout %u ms, "
		  "inside port %d",
		  env->lcore_id, ip, c.port_min, c.port_max, nat->max_flows, c.idle_timeout_ms,
		  c.inside_port);
	return nat;
fail:
	if (rc == -ENOMEM)
		NEMO_ERR("nf", "nat on lcore %u: cannot allocate tables for %u ports",
			 env->lcore_id, nat ? nat->nb_ports : 0);
	nat_destroy(nat);
	errno = -rc;
	return NULL;
}

static void nat_expire(struct nat_inst *nat, uint32_t idx)
{
	struct nat_entry *e = &nat->entries[idx];

	rte_hash_del_key(nat->flows, &e->inside);
	e->in_use = false;
	nat->free_ports[nat->nb_free++] = (uint16_t)idx;
	nat->active--;
	nat->expirations++;
}

static inline bool nat_idle(const struct nat_inst *nat, const struct nat_entry *e, uint64_t now)
{
	return now > e->last_seen_tsc && now - e->last_seen_tsc > nat->idle_tsc;
}

/* Amortised expiry: a few entries per burst, round robin, so no burst pays for a full scan. */
static void nat_sweep(struct nat_inst *nat, uint64_t now)
{
	for (int i = 0; i < NAT_SWEEP_PER_BURST; i++) {
		uint32_t idx = nat->sweep_next;

		if (++nat->sweep_next == nat->nb_ports)
			nat->sweep_next = 0;
		if (nat->entries[idx].in_use && nat_idle(nat, &nat->entries[idx], now))
			nat_expire(nat, idx);
	}
}

/*
 * The identifier nat translates: TCP/UDP ports, or the ICMP echo identifier in the slot of
 * the source port (request) or destination port (reply). Returns a pointer to the 16-bit
 * field on the inside side of the flow (the one rewritten), or NULL if nat cannot translate
 * this packet. `k` gets the flow key.
 */
static nf_ua_u16 *nat_key(struct rte_mbuf *m, struct nf_flow_key *k, bool outbound,
			  nf_ua_u16 **l4_csum)
{
	uint32_t l4 = nf_pkt_l4_type(m);
	void *hdr = nf_pkt_l4(m);

	nf_flow_key_from_pkt(m, k);
	if (l4 == RTE_PTYPE_L4_TCP) {
		struct rte_tcp_hdr *tcp = hdr;

		*l4_csum = &tcp->cksum;
		return outbound ? &tcp->src_port : &tcp->dst_port;
	}
	if (l4 == RTE_PTYPE_L4_UDP) {
		struct rte_udp_hdr *udp = hdr;

		*l4_csum = &udp->dgram_cksum;
		return outbound ? &udp->src_port : &udp->dst_port;
	}
	if (l4 == RTE_PTYPE_L4_ICMP) {
		struct rte_icmp_hdr *icmp = hdr;
		uint8_t want = outbound ? RTE_IP_ICMP_ECHO_REQUEST : RTE_IP_ICMP_ECHO_REPLY;

		if (icmp->icmp_type != want || icmp->icmp_code != 0)
			return NULL;
		*l4_csum = &icmp->icmp_cksum;
		if (outbound)
			k->src_port = icmp->icmp_ident;
		else
			k->dst_port = icmp->icmp_ident;
		return &icmp->icmp_ident;
	}
	return NULL;
}

/*
 * Rewrite one address and the 16-bit id next to it, patching the IPv4 checksum and the L4
 * one. TCP and UDP checksums cover the addresses (pseudo header), ICMP's does not.
 */
static void nat_rewrite(struct rte_mbuf *m, nf_ua_u32 *addr, rte_be32_t new_addr, nf_ua_u16 *id,
			rte_be16_t new_id, nf_ua_u16 *l4_csum)
{
	struct rte_ipv4_hdr *ip = nf_pkt_ipv4(m);
	uint32_t l4 = nf_pkt_l4_type(m);

	ip->hdr_checksum = nf_csum_replace32(ip->hdr_checksum, *addr, new_addr);
	if (l4 == RTE_PTYPE_L4_UDP && *l4_csum == 0) {
		/* UDP checksum 0 means "none": keep it so */
	} else {
		uint16_t c = *l4_csum;

		if (l4 != RTE_PTYPE_L4_ICMP)
			c = nf_csum_replace32(c, *addr, new_addr);
		c = nf_csum_replace16(c, *id, new_id);
		/* a computed UDP checksum of 0 is sent as all ones (RFC 768) */
		if (l4 == RTE_PTYPE_L4_UDP && c == 0)
			c = 0xffff;
		*l4_csum = c;
	}
	*addr = new_addr;
	*id = new_id;
}

/* Returns true to keep the packet. */
static bool nat_outbound(struct nat_inst *nat, struct rte_mbuf *m, uint64_t now,
			 uint64_t drops[NF_DROP_REASONS])
{
	struct nf_flow_key k;
	struct nat_entry *e;
	nf_ua_u16 *l4_csum = NULL;
	nf_ua_u16 *id = nat_key(m, &k, true, &l4_csum);
	void *data;
	uint32_t idx;
	int rc;

	if (!id) {
		nat->unsupported++;
		goto drop;
	}
	if (rte_hash_lookup_data(nat->flows, &k, &data) >= 0) {
		idx = (uint32_t)(uintptr_t)data;
		e = &nat->entries[idx];
		if (!nat_idle(nat, e, now))
			goto translate;
		/* idle past the timeout but not swept yet: it has expired all the same */
		nat_expire(nat, idx);
	}
	if (!nat->nb_free || nat->active >= nat->max_flows) {
		nat->exhausted++;
		goto drop;
	}
	idx = nat->free_ports[--nat->nb_free];
	rc = rte_hash_add_key_data(nat->flows, &k, (void *)(uintptr_t)idx);
	if (rc < 0) {
		nat->free_ports[nat->nb_free++] = (uint16_t)idx;
		nat->exhausted++;
		goto drop;
	}
	e = &nat->entries[idx];
	e->inside = k;
	e->in_use = true;
	nat->active++;
	nat->allocations++;
translate:
	e->last_seen_tsc = now;
	nat_rewrite(m, &nf_pkt_ipv4(m)->src_addr, nat->external_ip, id,
		    rte_cpu_to_be_16((uint16_t)(nat->port_min + idx)), l4_csum);
	nat->translated_out++;
	return true;
drop:
	drops[NF_DROP_NAT]++;
	return false;
}

static bool nat_inbound(struct nat_inst *nat, struct rte_mbuf *m, uint64_t now,
			uint64_t drops[NF_DROP_REASONS])
{
	struct nf_flow_key k;
	struct nat_entry *e;
	nf_ua_u16 *l4_csum = NULL;
	nf_ua_u16 *id = nat_key(m, &k, false, &l4_csum);
	uint32_t idx;

	if (!id) {
		nat->unsupported++;
		goto drop;
	}
	idx = (uint32_t)(uint16_t)(rte_be_to_cpu_16(*id) - nat->port_min);
	if (idx >= nat->nb_ports)
		goto no_mapping;
	e = &nat->entries[idx];
	/* the reply must come from the peer the inside host talked to, over the same protocol */
	if (!e->in_use || e->inside.proto != k.proto || e->inside.dst_ip != k.src_ip ||
	    e->inside.dst_port != k.src_port)
		goto no_mapping;
	if (nat_idle(nat, e, now)) {
		nat_expire(nat, idx);
		goto no_mapping;
	}
	e->last_seen_tsc = now;
	nat_rewrite(m, &nf_pkt_ipv4(m)->dst_addr, e->inside.src_ip, id, e->inside.src_port,
		    l4_csum);
	nat->translated_in++;
	return true;
no_mapping:
	nat->no_mapping++;
drop:
	drops[NF_DROP_NAT]++;
	return false;
}

static uint16_t nat_process(void *inst, struct rte_mbuf **pkts, uint16_t nb_pkts, uint64_t now_tsc,
			    uint64_t drops[NF_DROP_REASONS])
{
	struct nat_inst *nat = inst;
	uint16_t kept = 0;

	nat_sweep(nat, now_tsc);
	for (uint16_t i = 0; i < nb_pkts; i++) {
		struct rte_mbuf *m = pkts[i];
		bool keep = true;

		/* ARP and other non-IPv4 frames are not nat's business */
		if (nf_pkt_is_ipv4(m)) {
			bool to_us = nf_pkt_ipv4(m)->dst_addr == nat->external_ip;
			bool outbound = nat->inside_port == NAT_PORT_UNSET
						? !to_us
						: m->port == (uint16_t)nat->inside_port;

			if (outbound) {
				keep = nat_outbound(nat, m, now_tsc, drops);
			} else if (to_us) {
				keep = nat_inbound(nat, m, now_tsc, drops);
			} else {
				/* from outside and not for the external address: nothing maps it */
				nat->no_mapping++;
				drops[NF_DROP_NAT]++;
				keep = false;
			}
		}
		if (keep)
			pkts[kept++] = m;
		else
			rte_pktmbuf_free(m);
	}
	return kept;
}

static void nat_telemetry(void *inst, struct rte_tel_data *d)
{
	const struct nat_inst *nat = inst;

	rte_tel_data_add_dict_u64(d, "active_flows", nat->active);
	rte_tel_data_add_dict_u64(d, "ports_free", nat->nb_free);
	rte_tel_data_add_dict_u64(d, "allocations", nat->allocations);
	rte_tel_data_add_dict_u64(d, "expirations", nat->expirations);
	rte_tel_data_add_dict_u64(d, "exhaustion_drops", nat->exhausted);
	rte_tel_data_add_dict_u64(d, "no_mapping_drops", nat->no_mapping);
	rte_tel_data_add_dict_u64(d, "unsupported_drops", nat->unsupported);
	rte_tel_data_add_dict_u64(d, "translated_out", nat->translated_out);
	rte_tel_data_add_dict_u64(d, "translated_in", nat->translated_in);
}

const struct nf_module_ops nf_mod_nat_ops = {
	.name = "nat",
	.create = nat_create,
	.process = nat_process,
	.destroy = nat_destroy,
	.telemetry = nat_telemetry,
};
