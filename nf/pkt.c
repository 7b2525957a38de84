/* pkt.c - the check every burst passes before the NF chain: drop malformed IPv4, type the rest. */
#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "nemo/nf_module.h"

const char *const nf_drop_reason_names[NF_DROP_REASONS] = {
	[NF_DROP_TRUNC_ETH] = "trunc_eth",
	[NF_DROP_TRUNC_IP] = "trunc_ip",
	[NF_DROP_BAD_IHL] = "bad_ihl",
	[NF_DROP_BAD_LEN] = "bad_len",
	[NF_DROP_FRAGMENT] = "fragment",
	[NF_DROP_ACL] = "acl",
	[NF_DROP_NAT] = "nat",
	[NF_DROP_TX_FULL] = "tx_full",
	[NF_DROP_FN_FULL] = "fn_full",
	[NF_DROP_RX_NOMBUF] = "rx_nombuf",
};

/* Ethernet + one VLAN tag + the longest IPv4 header + the longest TCP header. */
#define PKT_HDR_MAX (RTE_ETHER_HDR_LEN + sizeof(struct rte_vlan_hdr) + 60 + 60)

#define PKT_KEEP (-1)

/* Check the L4 header of an unfragmented IPv4 packet; `l4_bytes` is what total_length leaves. */
static int pkt_parse_l4(struct rte_mbuf *m, const struct rte_ipv4_hdr *ip, uint32_t l4_bytes,
			uint32_t l4_avail, uint32_t *ptype)
{
	const void *l4 = (const uint8_t *)ip + m->l3_len;
	uint32_t hlen;

	switch (ip->next_proto_id) {
	case IPPROTO_TCP: {
		const struct rte_tcp_hdr *tcp = l4;

		if (l4_bytes < sizeof(*tcp) || l4_avail < sizeof(*tcp))
			return NF_DROP_BAD_LEN;
		hlen = (uint32_t)(tcp->data_off >> 4) * 4;
		if (hlen < sizeof(*tcp) || hlen > l4_bytes || hlen > l4_avail)
			return NF_DROP_BAD_LEN;
		m->l4_len = hlen;
		*ptype |= RTE_PTYPE_L4_TCP;
		break;
	}
	case IPPROTO_UDP: {
		const struct rte_udp_hdr *udp = l4;

		if (l4_bytes < sizeof(*udp) || l4_avail < sizeof(*udp))
			return NF_DROP_BAD_LEN;
		/* a datagram longer than its IP payload would make nat and monitor read past it */
		hlen = rte_be_to_cpu_16(udp->dgram_len);
		if (hlen < sizeof(*udp) || hlen > l4_bytes)
			return NF_DROP_BAD_LEN;
		m->l4_len = sizeof(*udp);
		*ptype |= RTE_PTYPE_L4_UDP;
		break;
	}
	case IPPROTO_ICMP:
		/* every ICMP message has type, code, checksum and 4 more bytes; nat reads them */
		if (l4_bytes < 8 || l4_avail < 8)
			return NF_DROP_BAD_LEN;
		m->l4_len = 8;
		*ptype |= RTE_PTYPE_L4_ICMP;
		break;
	default:
		*ptype |= RTE_PTYPE_L4_NONFRAG;
		break;
	}
	return PKT_KEEP;
}

/* Returns PKT_KEEP, or the enum nf_drop_reason to drop the packet for. */
static int pkt_parse(struct rte_mbuf *m)
{
	uint32_t frame = rte_pktmbuf_pkt_len(m), avail, l2, ihl, total;
	uint32_t ptype = RTE_PTYPE_L2_ETHER;
	const struct rte_ether_hdr *eth;
	const struct rte_ipv4_hdr *ip;
	rte_be16_t ether_type;
	int reason;

	/*
	 * Modules rewrite headers in place, so the headers must lie whole in the first segment.
	 * PMDs put at least a buffer's worth (2 KB) there, so this only happens with mbufs built
	 * by hand; gathering them copies into the first segment's tailroom without allocating.
	 * If that fails the packet is judged on its first segment alone and dropped as
	 * truncated: a header that cannot be read in place is, for the modules, not there.
	 */
	if (m->data_len < RTE_MIN(frame, (uint32_t)PKT_HDR_MAX))
		(void)rte_pktmbuf_linearize(m);
	avail = m->data_len;

	m->l2_len = 0;
	m->l3_len = 0;
	m->l4_len = 0;
	m->packet_type = RTE_PTYPE_UNKNOWN;
	if (avail < RTE_ETHER_HDR_LEN)
		return NF_DROP_TRUNC_ETH;
	eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	ether_type = eth->ether_type;
	l2 = RTE_ETHER_HDR_LEN;
	if (ether_type == RTE_BE16(RTE_ETHER_TYPE_VLAN)) {
		const struct rte_vlan_hdr *vlan = (const struct rte_vlan_hdr *)(eth + 1);

		if (avail < l2 + sizeof(*vlan))
			return NF_DROP_TRUNC_ETH;
		ether_type = vlan->eth_proto;
		l2 += sizeof(*vlan);
		ptype = RTE_PTYPE_L2_ETHER_VLAN;
	}
	m->l2_len = l2;
	if (ether_type != RTE_BE16(RTE_ETHER_TYPE_IPV4)) {
		m->packet_type = ptype;
		return PKT_KEEP;
	}

	if (avail - l2 < sizeof(*ip))
		return NF_DROP_TRUNC_IP;
	ip = rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *, l2);
	ihl = (uint32_t)(ip->version_ihl & RTE_IPV4_HDR_IHL_MASK) * RTE_IPV4_IHL_MULTIPLIER;
	/* a wrong version shares the byte with IHL and makes the header as unreadable */
	if ((ip->version_ihl >> 4) != 4 || ihl < sizeof(*ip) || ihl > avail - l2)
		return NF_DROP_BAD_IHL;
	/* frame bytes past total_length are padding (60-byte minimum frames): allowed */
	total = rte_be_to_cpu_16(ip->total_length);
	if (total < ihl || total > frame - l2)
		return NF_DROP_BAD_LEN;
	if (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
		return NF_DROP_FRAGMENT;
	m->l3_len = ihl;
	/*
	 * The contract (nf_module.h) promises RTE_PTYPE_L3_IPV4 even with options; l3_len says
	 * how long the header really is.
	 */
	ptype |= RTE_PTYPE_L3_IPV4;
	reason = pkt_parse_l4(m, ip, total - ihl, avail - l2 - ihl, &ptype);
	if (reason != PKT_KEEP) {
		m->l3_len = 0;
		m->l4_len = 0;
		return reason;
	}
	m->packet_type = ptype;
	return PKT_KEEP;
}

#define NF_PREFETCH_AHEAD 4

uint16_t nf_pkt_validate(struct rte_mbuf **pkts, uint16_t nb_pkts, uint64_t drops[NF_DROP_REASONS])
{
	uint16_t kept = 0;

	for (uint16_t i = 0; i < nb_pkts; i++) {
		struct rte_mbuf *m = pkts[i];
		int reason;

		/* the headers are the first touch of each packet: fetch a few ahead */
		if (i + NF_PREFETCH_AHEAD < nb_pkts)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + NF_PREFETCH_AHEAD], void *));
		reason = pkt_parse(m);

		if (reason == PKT_KEEP) {
			pkts[kept++] = m;
		} else {
			drops[reason]++;
			rte_pktmbuf_free(m);
		}
	}
	return kept;
}
