/* nf_internal.h - what the NF modules share: header access after validation, checksums, config. */
#ifndef NF_INTERNAL_H
#define NF_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_byteorder.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "nemo/config.h"
#include "nemo/nf_module.h"
#include "nemo/nf_monitor.h"

extern const struct nf_module_ops nf_mod_fwd_ops;
extern const struct nf_module_ops nf_mod_acl_ops;
extern const struct nf_module_ops nf_mod_nat_ops;
extern const struct nf_module_ops nf_mod_monitor_ops;
extern const struct nf_module_ops nf_mod_fn_ops;

/*
 * Header fields may sit at any address (DPDK's header structs are packed): pointers to them
 * use these types so the compiler never assumes alignment.
 */
typedef uint16_t nf_ua_u16 __attribute__((aligned(1), may_alias));
typedef uint32_t nf_ua_u32 __attribute__((aligned(1), may_alias));

/*
 * The header helpers below trust what nf_pkt_validate() wrote into the mbuf: l2_len,
 * l3_len and packet_type, and that the L2, L3 and L4 headers it typed lie whole in the
 * first segment. The lcore runs validation before every chain, so modules need not parse.
 */
static inline bool nf_pkt_is_ipv4(const struct rte_mbuf *m)
{
	return RTE_ETH_IS_IPV4_HDR(m->packet_type) != 0;
}

static inline uint32_t nf_pkt_l4_type(const struct rte_mbuf *m)
{
	return m->packet_type & RTE_PTYPE_L4_MASK;
}

static inline struct rte_ipv4_hdr *nf_pkt_ipv4(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, m->l2_len);
}

static inline void *nf_pkt_l4(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod_offset(m, void *, m->l2_len + m->l3_len);
}

/* The 5-tuple of a validated IPv4 packet (ports stay 0 unless it is TCP or UDP). */
static inline void nf_flow_key_from_pkt(struct rte_mbuf *m, struct nf_flow_key *k)
{
	const struct rte_ipv4_hdr *ip = nf_pkt_ipv4(m);
	uint32_t l4 = nf_pkt_l4_type(m);

	*k = (struct nf_flow_key){
		.src_ip = ip->src_addr,
		.dst_ip = ip->dst_addr,
		.proto = ip->next_proto_id,
	};
	if (l4 == RTE_PTYPE_L4_TCP || l4 == RTE_PTYPE_L4_UDP) {
		/* TCP and UDP both open with the two ports */
		const struct rte_udp_hdr *ports = nf_pkt_l4(m);

		k->src_port = ports->src_port;
		k->dst_port = ports->dst_port;
	}
}

/*
 * Incremental Internet checksum update (RFC 1624, eqn. 3) for one 16-bit word changing
 * from `from` to `to`. All three are as stored in the packet: one's complement sums do not
 * care about byte order as long as every word is taken the same way.
 */
static inline uint16_t nf_csum_replace16(uint16_t csum, uint16_t from, uint16_t to)
{
	uint32_t sum = (uint16_t)~csum + (uint32_t)(uint16_t)~from + to;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static inline uint16_t nf_csum_replace32(uint16_t csum, uint32_t from, uint32_t to)
{
	csum = nf_csum_replace16(csum, (uint16_t)from, (uint16_t)to);
	return nf_csum_replace16(csum, (uint16_t)(from >> 16), (uint16_t)(to >> 16));
}

/*
 * Key-table parsers shared by the modules. nf_cfg_parse_ipv4 reads "a.b.c.d" into a
 * uint32_t in network byte order. nf_cfg_parse_module accepts the "module" key (a string)
 * and stores nothing, so a module's table works whether or not the caller left that key in
 * the object it passes to create().
 */
int nf_cfg_parse_ipv4(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		      const struct cfg_key *key);
int nf_cfg_parse_module(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			const struct cfg_key *key);

#define NF_CFG_KEY_MODULE                                      \
	{                                                      \
		.name = "module", .parse = nf_cfg_parse_module \
	}

/*
 * A name for a DPDK object (hash, acl context) of one module instance, unique in the
 * process: "<kind>_<lcore>_<seq>". DPDK refuses a second object with the same name, and
 * two instances of one module may run on one lcore. Control thread only.
 */
const char *nf_instance_name(char *buf, size_t len, const char *kind, unsigned int lcore_id);

/*
 * ---- 5-tuple rules (match.c), shared by acl and fn ----
 *
 * A module's rule struct starts with a struct nf_match_rule, parsed by NF_MATCH_CFG_KEYS in
 * its key table: "src"/"dst" ("any", "a.b.c.d" or a prefix), "proto" (tcp, udp, icmp, any
 * or 0..255), "sport"/"dport" (a port, "lo-hi" or "any"). Absent fields match anything.
 * Host byte order, as rte_acl wants rule fields.
 */
struct nf_match_rule {
	struct {
		uint32_t addr;
		uint32_t len;
	} src, dst;
	struct {
		uint32_t value;
		uint32_t mask;
	} proto;
	struct {
		uint32_t lo;
		uint32_t hi;
	} sport, dport;
};

int nf_cfg_parse_cidr(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		      const struct cfg_key *key);
int nf_cfg_parse_proto(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		       const struct cfg_key *key);
int nf_cfg_parse_ports(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		       const struct cfg_key *key);

#define NF_MATCH_CFG_KEYS(type, m)                                                                 \
	{.name = "src", .parse = nf_cfg_parse_cidr, .offset = offsetof(type, m.src)},              \
		{.name = "dst", .parse = nf_cfg_parse_cidr, .offset = offsetof(type, m.dst)},      \
		{.name = "proto", .parse = nf_cfg_parse_proto, .offset = offsetof(type, m.proto)}, \
		{.name = "sport", .parse = nf_cfg_parse_ports, .offset = offsetof(type, m.sport)}, \
	{                                                                                          \
		.name = "dport", .parse = nf_cfg_parse_ports, .offset = offsetof(type, m.dport)    \
	}

/* Set `r` to match everything (call before parsing a rule into it). */
void nf_match_rule_init(struct nf_match_rule *r);

/*
 * Parse `item`, a JSON array of at most `max` rule objects, into a malloc'd array of rules of
 * `size` bytes each (a struct nf_match_rule first): each starts as `defaults` (its match
 * part is ignored: absent fields match anything), then `keys` parse the object into it.
 * *rules (NULL or an earlier array) is replaced by it: free it, also on error. *nb_rules is
 * how many were parsed, 0 on error.
 * Returns 0 or -EINVAL after cfg_error() (not an array, too many, out of memory, a bad rule).
 */
int nf_match_parse_rules(struct cfg_ctx *ctx, const char *path, const cJSON *item, int max,
			 const struct cfg_key *keys, const void *defaults, size_t size,
			 void **rules, uint32_t *nb_rules);

#define NF_MATCH_CHUNK 64 /* packets classified per rte_acl_classify() call */

/* A built rule set: NULL ctx when there are no rules (nothing matches). */
struct nf_match {
	struct rte_acl_ctx *ctx;
};

/*
 * Build `nb_rules` rules, each at `rules + i * stride` (a struct nf_match_rule first), for
 * the module `kind` on env's lcore. Rule 0 wins over later ones. Control thread; logs its
 * errors. Returns 0 or -errno of rte_acl.
 */
int nf_match_build(struct nf_match *m, const char *kind, const void *rules, size_t stride,
		   uint32_t nb_rules, const struct nf_module_env *env);
void nf_match_free(struct nf_match *m);

/*
 * results[i] = 1 + the index of the first rule packet i matches, or 0 (no match, no rules,
 * or not IPv4). Packet path: no allocation, no syscalls.
 */
void nf_match_classify(const struct nf_match *m, struct rte_mbuf **pkts, uint16_t nb_pkts,
		       uint32_t *results);

#endif /* NF_INTERNAL_H */
