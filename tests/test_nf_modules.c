/* test_nf_modules.c - NF modules and packet validation on real mbufs: what each lets through. */
/* rte_ipv4_udptcp_cksum_verify() is experimental in DPDK 22.11 */
#define ALLOW_EXPERIMENTAL_API 1

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pcap/pcap.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "nemo/nf_module.h"
#include "nemo/nf_monitor.h"
#include "test.h"

#define T_POOL_SIZE 4095
#define T_BURST_MAX 256
#define T_PATH	    "lcores[0].chain[1]"

static struct rte_mempool *t_pool;

static int t_setup(void)
{
	if (nemo_test_eal_init())
		return 1;
	if (!t_pool) {
		/* no per-lcore cache, so the free count shows every leaked or double-freed mbuf */
		t_pool = rte_pktmbuf_pool_create("nf_mod_tests", T_POOL_SIZE, 0, 0,
						 RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
		if (!t_pool) {
			fprintf(stderr, "mempool: %s\n", rte_strerror(rte_errno));
			return 1;
		}
	}
	return 0;
}

static unsigned int t_free(void)
{
	return rte_mempool_avail_count(t_pool);
}

/* ---- building packets ---- */

static uint32_t t_ip(const char *s)
{
	struct in_addr a;

	CU_ASSERT_FATAL(inet_pton(AF_INET, s, &a) == 1);
	return a.s_addr;
}

struct t_pkt {
	uint8_t proto; /* IPPROTO_UDP, _TCP, _ICMP or anything else */
	const char *src;
	const char *dst;
	uint16_t sport;	  /* ICMP: the echo identifier */
	uint16_t dport;	  /* ICMP: the echo type (8 request, 0 reply) */
	uint16_t payload; /* bytes after the L4 header */
	uint16_t port;	  /* m->port, the rx port */
	bool vlan;
	bool no_udp_csum;
	uint8_t ip_opt_words; /* extra IHL words of IPv4 options (NOPs) */
};

static const struct rte_ether_addr t_src_mac = {{0x02, 0xaa, 0, 0, 0, 0x01}};
static const struct rte_ether_addr t_dst_mac = {{0x02, 0xbb, 0, 0, 0, 0x02}};

static uint16_t t_l4_hdr_len(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return sizeof(struct rte_tcp_hdr);
	case IPPROTO_UDP:
		return sizeof(struct rte_udp_hdr);
	case IPPROTO_ICMP:
		return sizeof(struct rte_icmp_hdr);
	default:
		return 8;
	}
}

/* A well-formed frame with correct checksums; frames under 60 bytes are padded like on a wire. */
static struct rte_mbuf *t_mk(const struct t_pkt *s)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(t_pool);
	uint16_t l2 = s->vlan ? 18 : 14, ihl = (uint16_t)(20 + 4 * s->ip_opt_words);
	uint16_t l4len = (uint16_t)(t_l4_hdr_len(s->proto) + s->payload);
	uint16_t frame = (uint16_t)(l2 + ihl + l4len);
	struct rte_ether_hdr *eth;
	struct rte_ipv4_hdr *ip;
	uint8_t *l4;
	char *p;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	p = rte_pktmbuf_append(m, frame < 60 ? 60 : frame);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	memset(p, 0, frame < 60 ? 60 : frame);
	m->port = s->port;
	eth = (struct rte_ether_hdr *)p;
	rte_ether_addr_copy(&t_dst_mac, &eth->dst_addr);
	rte_ether_addr_copy(&t_src_mac, &eth->src_addr);
	if (s->vlan) {
		struct rte_vlan_hdr *vh = (struct rte_vlan_hdr *)(eth + 1);

		eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN);
		vh->vlan_tci = rte_cpu_to_be_16(42);
		vh->eth_proto = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	} else {
		eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	}
	ip = (struct rte_ipv4_hdr *)(p + l2);
	ip->version_ihl = (uint8_t)(0x40 | (ihl / 4));
	ip->total_length = rte_cpu_to_be_16((uint16_t)(ihl + l4len));
	ip->packet_id = rte_cpu_to_be_16(7);
	ip->time_to_live = 64;
	ip->next_proto_id = s->proto;
	ip->src_addr = t_ip(s->src);
	ip->dst_addr = t_ip(s->dst);
	memset(ip + 1, 1, ihl - 20); /* option NOPs */
	l4 = (uint8_t *)ip + ihl;
	for (uint16_t i = 0; i < s->payload; i++)
		l4[t_l4_hdr_len(s->proto) + i] = (uint8_t)(i * 7 + 3);
	if (s->proto == IPPROTO_UDP) {
		struct rte_udp_hdr *udp = (struct rte_udp_hdr *)l4;

		udp->src_port = rte_cpu_to_be_16(s->sport);
		udp->dst_port = rte_cpu_to_be_16(s->dport);
		udp->dgram_len = rte_cpu_to_be_16(l4len);
		if (!s->no_udp_csum)
			udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	} else if (s->proto == IPPROTO_TCP) {
		struct rte_tcp_hdr *tcp = (struct rte_tcp_hdr *)l4;

		tcp->src_port = rte_cpu_to_be_16(s->sport);
		tcp->dst_port = rte_cpu_to_be_16(s->dport);
		tcp->sent_seq = rte_cpu_to_be_32(1000);
		tcp->data_off = 5 << 4;
		tcp->tcp_flags = RTE_TCP_ACK_FLAG;
		tcp->rx_win = rte_cpu_to_be_16(65535);
		tcp->cksum = rte_ipv4_udptcp_cksum(ip, tcp);
	} else if (s->proto == IPPROTO_ICMP) {
		struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)l4;

		icmp->icmp_type = (uint8_t)s->dport;
		icmp->icmp_ident = rte_cpu_to_be_16(s->sport);
		icmp->icmp_seq_nb = rte_cpu_to_be_16(1);
		icmp->icmp_cksum = (uint16_t)~rte_raw_cksum(icmp, l4len);
	}
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	return m;
}

static struct rte_mbuf *t_udp(const char *src, const char *dst, uint16_t sport, uint16_t dport,
			      uint16_t payload)
{
	return t_mk(&(struct t_pkt){.proto = IPPROTO_UDP,
				    .src = src,
				    .dst = dst,
				    .sport = sport,
				    .dport = dport,
				    .payload = payload});
}

static struct rte_mbuf *t_raw(const void *bytes, uint16_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(t_pool);
	char *p;

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	p = rte_pktmbuf_append(m, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	memcpy(p, bytes, len);
	return m;
}

/* An ARP request: a frame that is not IPv4 at all. */
static struct rte_mbuf *t_arp(uint16_t port)
{
	uint8_t f[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0xaa, 0, 0, 0, 0x01, 0x08, 0x06};
	struct rte_mbuf *m = t_raw(f, sizeof(f));

	m->port = port;
	return m;
}

static struct rte_ipv4_hdr *t_iph(struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	size_t l2 = eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN) ? 18 : 14;

	return rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, l2);
}

static void *t_l4(struct rte_mbuf *m)
{
	struct rte_ipv4_hdr *ip = t_iph(m);

	return (uint8_t *)ip + rte_ipv4_hdr_len(ip);
}

/* After editing a header by hand: make the IPv4 checksum right again, so only the edit is wrong. */
static void t_fix_ip_csum(struct rte_mbuf *m)
{
	struct rte_ipv4_hdr *ip = t_iph(m);
	uint8_t ihl = ip->version_ihl & 0xf;

	ip->hdr_checksum = 0;
	if (ihl >= 5 && (uint32_t)(14 + ihl * 4) <= m->data_len)
		ip->hdr_checksum = rte_ipv4_cksum(ip);
}

static uint16_t t_sport(struct rte_mbuf *m)
{
	return rte_be_to_cpu_16(((struct rte_udp_hdr *)t_l4(m))->src_port);
}

static uint16_t t_dport(struct rte_mbuf *m)
{
	return rte_be_to_cpu_16(((struct rte_udp_hdr *)t_l4(m))->dst_port);
}

/* Both checksums as a receiver checks them: 1 if right. */
static int t_csums_ok(struct rte_mbuf *m)
{
	struct rte_ipv4_hdr *ip = t_iph(m);
	void *l4 = t_l4(m);

	if (rte_raw_cksum(ip, rte_ipv4_hdr_len(ip)) != 0xffff)
		return 0;
	switch (ip->next_proto_id) {
	case IPPROTO_UDP:
		if (((struct rte_udp_hdr *)l4)->dgram_cksum == 0)
			return 1;
		/* fall through */
	case IPPROTO_TCP:
		return rte_ipv4_udptcp_cksum_verify(ip, l4) == 0;
	case IPPROTO_ICMP:
		return rte_raw_cksum(l4, rte_be_to_cpu_16(ip->total_length) -
						 rte_ipv4_hdr_len(ip)) == 0xffff;
	default:
		return 1;
	}
}

static void t_free_burst(struct rte_mbuf **pkts, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++)
		rte_pktmbuf_free(pkts[i]);
}

static uint64_t t_sum(const uint64_t drops[NF_DROP_REASONS])
{
	uint64_t s = 0;

	for (int i = 0; i < NF_DROP_REASONS; i++)
		s += drops[i];
	return s;
}

/* ---- module instances ---- */

static void t_env(struct nf_module_env *env, uint16_t nb_ports)
{
	memset(env, 0, sizeof(*env));
	env->lcore_id = rte_lcore_id();
	env->socket_id = rte_socket_id();
	env->nb_ports = nb_ports;
	for (uint16_t p = 0; p < RTE_MAX_ETHPORTS; p++) {
		env->port_mac[p].addr_bytes[0] = 0x02;
		env->port_mac[p].addr_bytes[1] = 0xee;
		env->port_mac[p].addr_bytes[5] = (uint8_t)p;
	}
}

struct t_inst {
	const struct nf_module_ops *ops;
	void *inst;
};

/* Create module `name` from JSON at T_PATH; NULL on failure with ctx->err and errno kept. */
static void *t_create_env(const char *name, const char *json, struct cfg_ctx *ctx,
			  const struct nf_module_env *env)
{
	const struct nf_module_ops *ops = nf_module_find(name);
	cJSON *cfg = cJSON_Parse(json);
	void *inst;
	int e;

	memset(ctx, 0, sizeof(*ctx));
	ctx->file = "test.json";
	CU_ASSERT_PTR_NOT_NULL_FATAL(ops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	errno = 0;
	inst = ops->create(ctx, T_PATH, cfg, env);
	e = errno;
	cJSON_Delete(cfg);
	errno = e;
	return inst;
}

static void *t_create(const char *name, const char *json, uint16_t nb_ports)
{
	struct nf_module_env env;
	struct cfg_ctx ctx;
	void *inst;

	t_env(&env, nb_ports);
	inst = t_create_env(name, json, &ctx, &env);
	if (!inst)
		printf("\n  create %s failed: %s\n", name, ctx.err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(inst);
	return inst;
}

/* Creating must fail with EINVAL and an error naming `key_path` (and saying `what`). */
static void t_expect_cfg_error(const char *name, const char *json, const char *key_path,
			       const char *what)
{
	struct nf_module_env env;
	struct cfg_ctx ctx;
	char needle[300];
	void *inst;

	t_env(&env, 2);
	inst = t_create_env(name, json, &ctx, &env);
	CU_ASSERT_PTR_NULL(inst);
	CU_ASSERT_EQUAL(errno, EINVAL);
	snprintf(needle, sizeof(needle), "key '%s'", key_path);
	if (!strstr(ctx.err, needle) || !strstr(ctx.err, what))
		printf("\n  %s: error was '%s' (wanted %s ... %s)\n", json, ctx.err, needle, what);
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, needle));
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, what));
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, "test.json"));
	if (inst)
		nf_module_find(name)->destroy(inst);
}

static uint16_t t_run(const char *name, void *inst, struct rte_mbuf **pkts, uint16_t n,
		      uint64_t now, uint64_t drops[NF_DROP_REASONS])
{
	return nf_module_find(name)->process(inst, pkts, n, now, drops);
}

static void t_destroy(const char *name, void *inst)
{
	nf_module_find(name)->destroy(inst);
}

/* Telemetry must fill a dict without failing; the figures are checked through behaviour. */
static void t_telemetry(const char *name, void *inst)
{
	struct rte_tel_data *d = rte_tel_data_alloc();

	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_EQUAL(rte_tel_data_start_dict(d), 0);
	nf_module_find(name)->telemetry(inst, d);
	rte_tel_data_free(d);
}

/* ======================= nf_pkt: validation ======================= */

static void test_registry(void)
{
	static const char *const names[] = {"fwd", "acl", "nat", "monitor"};

	for (size_t i = 0; i < RTE_DIM(names); i++) {
		const struct nf_module_ops *ops = nf_module_find(names[i]);

		CU_ASSERT_PTR_NOT_NULL_FATAL(ops);
		CU_ASSERT_STRING_EQUAL(ops->name, names[i]);
		CU_ASSERT_PTR_NOT_NULL(ops->create);
		CU_ASSERT_PTR_NOT_NULL(ops->process);
		CU_ASSERT_PTR_NOT_NULL(ops->destroy);
		CU_ASSERT_PTR_NOT_NULL(ops->telemetry);
	}
	CU_ASSERT_PTR_NULL(nf_module_find("router"));
	CU_ASSERT_PTR_NULL(nf_module_find(NULL));
	for (int r = 0; r < NF_DROP_REASONS; r++)
		CU_ASSERT_PTR_NOT_NULL(nf_drop_reason_names[r]);
	CU_ASSERT_STRING_EQUAL(nf_drop_reason_names[NF_DROP_TRUNC_ETH], "trunc_eth");
	CU_ASSERT_STRING_EQUAL(nf_drop_reason_names[NF_DROP_BAD_IHL], "bad_ihl");
	CU_ASSERT_STRING_EQUAL(nf_drop_reason_names[NF_DROP_FRAGMENT], "fragment");
	CU_ASSERT_STRING_EQUAL(nf_drop_reason_names[NF_DROP_NAT], "nat");
}

static void test_validate_keeps_good(void)
{
	uint64_t drops[NF_DROP_REASONS] = {0};
	struct rte_mbuf *pkts[8];
	uint16_t n;

	pkts[0] = t_udp("10.0.0.1", "10.0.0.2", 1000, 53, 100);
	pkts[1] = t_mk(&(struct t_pkt){.proto = IPPROTO_TCP,
				       .src = "10.0.0.1",
				       .dst = "10.0.0.2",
				       .sport = 5555,
				       .dport = 80,
				       .payload = 10});
	pkts[2] = t_mk(&(struct t_pkt){.proto = IPPROTO_ICMP,
				       .src = "10.0.0.1",
				       .dst = "10.0.0.2",
				       .sport = 9,
				       .dport = 8});
	pkts[3] = t_mk(&(struct t_pkt){.proto = IPPROTO_UDP,
				       .src = "10.0.0.1",
				       .dst = "10.0.0.2",
				       .sport = 1,
				       .dport = 2,
				       .vlan = true});
	pkts[4] = t_arp(0);
	pkts[5] = t_mk(&(struct t_pkt){.proto = IPPROTO_UDP,
				       .src = "10.0.0.1",
				       .dst = "10.0.0.2",
				       .sport = 1,
				       .dport = 2,
				       .ip_opt_words = 2});
	pkts[6] = t_mk(&(struct t_pkt){.proto = 47, .src = "10.0.0.1", .dst = "10.0.0.2"});
	/* 1-byte UDP payload: 43 bytes of IP in a frame padded to 60 */
	pkts[7] = t_udp("10.0.0.1", "10.0.0.2", 1, 2, 1);

	n = nf_pkt_validate(pkts, 8, drops);
	CU_ASSERT_EQUAL(n, 8);
	CU_ASSERT_EQUAL(t_sum(drops), 0);
	CU_ASSERT_EQUAL(pkts[0]->l2_len, 14);
	CU_ASSERT_EQUAL(pkts[0]->l3_len, 20);
	CU_ASSERT_EQUAL(pkts[0]->packet_type,
			RTE_PTYPE_L2_ETHER | RTE_PTYPE_L3_IPV4 | RTE_PTYPE_L4_UDP);
	CU_ASSERT_EQUAL(pkts[1]->packet_type,
			RTE_PTYPE_L2_ETHER | RTE_PTYPE_L3_IPV4 | RTE_PTYPE_L4_TCP);
	CU_ASSERT_EQUAL(pkts[1]->l4_len, 20);
	CU_ASSERT_EQUAL(pkts[2]->packet_type,
			RTE_PTYPE_L2_ETHER | RTE_PTYPE_L3_IPV4 | RTE_PTYPE_L4_ICMP);
	CU_ASSERT_EQUAL(pkts[3]->l2_len, 18);
	CU_ASSERT_EQUAL(pkts[3]->packet_type,
			RTE_PTYPE_L2_ETHER_VLAN | RTE_PTYPE_L3_IPV4 | RTE_PTYPE_L4_UDP);
	CU_ASSERT_EQUAL(pkts[4]->packet_type, RTE_PTYPE_L2_ETHER);
	CU_ASSERT_EQUAL(pkts[4]->l2_len, 14);
	CU_ASSERT_EQUAL(pkts[5]->l3_len, 28);
	CU_ASSERT_EQUAL(pkts[5]->packet_type & RTE_PTYPE_L4_MASK, RTE_PTYPE_L4_UDP);
	CU_ASSERT_EQUAL(pkts[6]->packet_type,
			RTE_PTYPE_L2_ETHER | RTE_PTYPE_L3_IPV4 | RTE_PTYPE_L4_NONFRAG);
	CU_ASSERT_EQUAL(pkts[7]->pkt_len, 60);
	CU_ASSERT_EQUAL(pkts[7]->packet_type & RTE_PTYPE_L4_MASK, RTE_PTYPE_L4_UDP);
	t_free_burst(pkts, n);
}

/* Each malformed kind is dropped for its own reason, freed, and the good ones stay in order. */
static void test_validate_drops_each_kind(void)
{
	enum {
		GOOD0,
		TRUNC_ETH,
		VLAN_TRUNC,
		TRUNC_IP,
		IHL3,
		IHL15,
		VER6,
		TOT_BIG,
		TOT_SMALL,
		UDP_TRUNC,
		UDP_LEN,
		TCP_TRUNC,
		TCP_DOFF,
		ICMP_TRUNC,
		MF,
		OFFSET,
		GOOD1,
		NB
	};
	static const int want[NB] = {
		[GOOD0] = -1,
		[TRUNC_ETH] = NF_DROP_TRUNC_ETH,
		[VLAN_TRUNC] = NF_DROP_TRUNC_ETH,
		[TRUNC_IP] = NF_DROP_TRUNC_IP,
		[IHL3] = NF_DROP_BAD_IHL,
		[IHL15] = NF_DROP_BAD_IHL,
		[VER6] = NF_DROP_BAD_IHL,
		[TOT_BIG] = NF_DROP_BAD_LEN,
		[TOT_SMALL] = NF_DROP_BAD_LEN,
		[UDP_TRUNC] = NF_DROP_BAD_LEN,
		[UDP_LEN] = NF_DROP_BAD_LEN,
		[TCP_TRUNC] = NF_DROP_BAD_LEN,
		[TCP_DOFF] = NF_DROP_BAD_LEN,
		[ICMP_TRUNC] = NF_DROP_BAD_LEN,
		[MF] = NF_DROP_FRAGMENT,
		[OFFSET] = NF_DROP_FRAGMENT,
		[GOOD1] = -1,
	};
	static const uint8_t vlan_short[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0,
					       0,    0,	   0,	 1,    0x81, 0x00, 0, 42};
	uint64_t drops[NF_DROP_REASONS] = {0}, expect[NF_DROP_REASONS] = {0};
	struct rte_mbuf *pkts[NB];
	unsigned int free_before = t_free();
	uint16_t n;

	for (int i = 0; i < NB; i++) {
		uint8_t proto = IPPROTO_UDP;

		if (i == TCP_TRUNC || i == TCP_DOFF)
			proto = IPPROTO_TCP;
		if (i == ICMP_TRUNC)
			proto = IPPROTO_ICMP;
		pkts[i] = t_mk(&(struct t_pkt){.proto = proto,
					       .src = "10.1.0.1",
					       .dst = "10.2.0.1",
					       .sport = (uint16_t)(100 + i),
					       .dport = 8,
					       .payload = 20});
		if (want[i] >= 0)
			expect[want[i]]++;
	}
	rte_pktmbuf_free(pkts[VLAN_TRUNC]);
	pkts[VLAN_TRUNC] = t_raw(vlan_short, sizeof(vlan_short));
	rte_pktmbuf_trim(pkts[TRUNC_ETH], (uint16_t)(pkts[TRUNC_ETH]->pkt_len - 13));
	rte_pktmbuf_trim(pkts[TRUNC_IP], (uint16_t)(pkts[TRUNC_IP]->pkt_len - 14 - 19));
	t_iph(pkts[IHL3])->version_ihl = 0x43;
	t_iph(pkts[IHL15])->version_ihl = 0x4f;
	rte_pktmbuf_trim(pkts[IHL15], (uint16_t)(pkts[IHL15]->pkt_len - 60)); /* 46 L3 bytes */
	t_iph(pkts[VER6])->version_ihl = 0x65;
	t_iph(pkts[TOT_BIG])->total_length = rte_cpu_to_be_16(20 + 8 + 20 + 1);
	t_iph(pkts[TOT_SMALL])->total_length = rte_cpu_to_be_16(19);
	t_iph(pkts[UDP_TRUNC])->total_length = rte_cpu_to_be_16(20 + 7);
	((struct rte_udp_hdr *)t_l4(pkts[UDP_LEN]))->dgram_len = rte_cpu_to_be_16(8 + 21);
	t_iph(pkts[TCP_TRUNC])->total_length = rte_cpu_to_be_16(20 + 19);
	((struct rte_tcp_hdr *)t_l4(pkts[TCP_DOFF]))->data_off = 4 << 4;
	t_iph(pkts[ICMP_TRUNC])->total_length = rte_cpu_to_be_16(20 + 7);
	t_iph(pkts[MF])->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG);
	t_iph(pkts[OFFSET])->fragment_offset = rte_cpu_to_be_16(3);
	for (int i = IHL3; i < NB; i++)
		t_fix_ip_csum(pkts[i]);

	n = nf_pkt_validate(pkts, NB, drops);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(t_sport(pkts[0]), 100 + GOOD0);
	CU_ASSERT_EQUAL(t_sport(pkts[1]), 100 + GOOD1);
	for (int r = 0; r < NF_DROP_REASONS; r++) {
		if (drops[r] != expect[r])
			printf("\n  %s: %" PRIu64 " dropped, wanted %" PRIu64 "\n",
			       nf_drop_reason_names[r], drops[r], expect[r]);
		CU_ASSERT_EQUAL(drops[r], expect[r]);
	}
	CU_ASSERT_EQUAL(expect[NF_DROP_TRUNC_ETH], 2);
	CU_ASSERT_EQUAL(expect[NF_DROP_BAD_LEN], 7);
	/* every dropped mbuf went back to the pool, the kept ones did not */
	CU_ASSERT_EQUAL(t_free(), free_before - 2);
	t_free_burst(pkts, n);
	CU_ASSERT_EQUAL(t_free(), free_before);
}

/* A packet split over two segments, headers straddling the boundary. */
static struct rte_mbuf *t_split(struct rte_mbuf *whole, uint16_t first_len)
{
	struct rte_mbuf *head = rte_pktmbuf_alloc(t_pool), *tail = rte_pktmbuf_alloc(t_pool);
	uint16_t rest = (uint16_t)(whole->pkt_len - first_len);

	CU_ASSERT_FATAL(head && tail);
	memcpy(rte_pktmbuf_append(head, first_len), rte_pktmbuf_mtod(whole, void *), first_len);
	memcpy(rte_pktmbuf_append(tail, rest), rte_pktmbuf_mtod_offset(whole, void *, first_len),
	       rest);
	CU_ASSERT_EQUAL_FATAL(rte_pktmbuf_chain(head, tail), 0);
	rte_pktmbuf_free(whole);
	return head;
}

static void test_validate_multiseg(void)
{
	uint64_t drops[NF_DROP_REASONS] = {0};
	struct rte_mbuf *pkts[3];
	unsigned int free_before = t_free();
	struct rte_mbuf *m;
	uint16_t n;

	/* headers split after 20 bytes: gathered into the first segment, then kept */
	pkts[0] = t_split(t_udp("10.0.0.1", "10.0.0.2", 4000, 53, 200), 20);
	/* total_length larger than both segments together */
	m = t_udp("10.0.0.1", "10.0.0.2", 4001, 53, 200);
	t_iph(m)->total_length = rte_cpu_to_be_16(20 + 8 + 201);
	t_fix_ip_csum(m);
	pkts[1] = t_split(m, 30);
	/* an Ethernet header spread over two segments of 6 + 6 bytes */
	m = t_udp("10.0.0.1", "10.0.0.2", 4002, 53, 0);
	rte_pktmbuf_trim(m, (uint16_t)(m->pkt_len - 12));
	pkts[2] = t_split(m, 6);

	n = nf_pkt_validate(pkts, 3, drops);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(drops[NF_DROP_BAD_LEN], 1);
	CU_ASSERT_EQUAL(drops[NF_DROP_TRUNC_ETH], 1);
	CU_ASSERT_EQUAL(t_sum(drops), 2);
	CU_ASSERT_EQUAL(pkts[0]->pkt_len, 14 + 20 + 8 + 200);
	CU_ASSERT_TRUE(pkts[0]->data_len >= 14 + 20 + 8);
	CU_ASSERT_EQUAL(pkts[0]->l3_len, 20);
	CU_ASSERT_EQUAL(t_sport(pkts[0]), 4000);
	CU_ASSERT_TRUE(t_csums_ok(pkts[0]));
	t_free_burst(pkts, n);
	CU_ASSERT_EQUAL(t_free(), free_before);
}

/* The capture the integration test replays says what it holds: replay it through validation. */
static void test_malformed_pcap(void)
{
	unsigned int nb_good = 0, expected[NF_DROP_REASONS];
	uint64_t drops[NF_DROP_REASONS] = {0};
	char path[64], errbuf[PCAP_ERRBUF_SIZE];
	struct rte_mbuf *pkts[T_BURST_MAX];
	struct pcap_pkthdr *h;
	const u_char *data;
	unsigned int total = 0, want_drops = 0;
	uint16_t n = 0, kept;
	pcap_t *p;

	snprintf(path, sizeof(path), "/tmp/nemo-test-malformed-%d.pcap", (int)getpid());
	CU_ASSERT_EQUAL_FATAL(nemo_test_write_malformed_pcap(path, &nb_good, expected), 0);
	p = pcap_open_offline(path, errbuf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(pcap_datalink(p), DLT_EN10MB);
	while (pcap_next_ex(p, &h, &data) == 1 && n < T_BURST_MAX) {
		CU_ASSERT_EQUAL(h->caplen, h->len);
		pkts[n++] = t_raw(data, (uint16_t)h->caplen);
	}
	pcap_close(p);
	unlink(path);
	total = n;
	for (int r = 0; r < NF_DROP_REASONS; r++)
		want_drops += expected[r];
	CU_ASSERT_EQUAL(nb_good, 20);
	CU_ASSERT_EQUAL(total, nb_good + want_drops);
	/* every malformed kind the writer promises is in there */
	CU_ASSERT_EQUAL(expected[NF_DROP_TRUNC_ETH], 2);
	CU_ASSERT_EQUAL(expected[NF_DROP_TRUNC_IP], 1);
	CU_ASSERT_EQUAL(expected[NF_DROP_BAD_IHL], 2);
	CU_ASSERT_EQUAL(expected[NF_DROP_BAD_LEN], 3);
	CU_ASSERT_EQUAL(expected[NF_DROP_FRAGMENT], 2);

	kept = nf_pkt_validate(pkts, n, drops);
	CU_ASSERT_EQUAL(kept, nb_good);
	for (int r = 0; r < NF_DROP_REASONS; r++)
		CU_ASSERT_EQUAL(drops[r], expected[r]);
	for (uint16_t i = 0; i < kept; i++)
		CU_ASSERT_TRUE(t_csums_ok(pkts[i]));
	t_free_burst(pkts, kept);
}

NEMO_SUITE(nf_pkt, t_setup, NULL, {"registry and drop reason names", test_registry},
	   {"good frames kept and typed", test_validate_keeps_good},
	   {"each malformed kind dropped for its reason", test_validate_drops_each_kind},
	   {"multi-segment mbufs", test_validate_multiseg},
	   {"malformed pcap replays to its stated drops", test_malformed_pcap})

/* ======================= nf_fwd ======================= */

static void t_assert_mac(const struct rte_ether_addr *a, const struct rte_ether_addr *b)
{
	CU_ASSERT_TRUE(rte_is_same_ether_addr(a, b));
}

static void test_fwd_default_pairs_ports(void)
{
	uint64_t drops[NF_DROP_REASONS] = {0};
	struct nf_module_env env;
	struct rte_mbuf *pkts[3];
	void *fwd = t_create("fwd", "{\"module\":\"fwd\"}", 2);
	uint16_t n;

	t_env(&env, 2);
	pkts[0] = t_udp("10.0.0.1", "10.0.0.2", 1, 2, 0);
	pkts[1] = t_udp("10.0.0.1", "10.0.0.2", 1, 2, 0);
	pkts[1]->port = 1;
	pkts[2] = t_arp(0);
	n = nf_pkt_validate(pkts, 3, drops);
	n = t_run("fwd", fwd, pkts, n, 0, drops);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_EQUAL(pkts[0]->port, 1);
	CU_ASSERT_EQUAL(pkts[1]->port, 0);
	CU_ASSERT_EQUAL(pkts[2]->port, 1);
	/* back to the sender's MAC, from the out port's MAC */
	t_assert_mac(&rte_pktmbuf_mtod(pkts[0], struct rte_ether_hdr *)->dst_addr, &t_src_mac);
	t_assert_mac(&rte_pktmbuf_mtod(pkts[0], struct rte_ether_hdr *)->src_addr,
		     &env.port_mac[1]);
	t_assert_mac(&rte_pktmbuf_mtod(pkts[1], struct rte_ether_hdr *)->src_addr,
		     &env.port_mac[0]);
	t_assert_mac(&rte_pktmbuf_mtod(pkts[2], struct rte_ether_hdr *)->dst_addr, &t_src_mac);
	CU_ASSERT_EQUAL(t_sum(drops), 0);
	t_telemetry("fwd", fwd);
	t_free_burst(pkts, n);
	t_destroy("fwd", fwd);

	/* one port: back out of it */
	fwd = t_create("fwd", "{}", 1);
	pkts[0] = t_udp("10.0.0.1", "10.0.0.2", 1, 2, 0);
	n = nf_pkt_validate(pkts, 1, drops);
	n = t_run("fwd", fwd, pkts, n, 0, drops);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(pkts[0]->port, 0);
	t_assert_mac(&rte_pktmbuf_mtod(pkts[0], struct rte_ether_hdr *)->src_addr,
		     &env.port_mac[0]);
	t_free_burst(pkts, n);
	t_destroy("fwd", fwd);

	/* three ports: 2 has no partner 3 and answers on itself */
	fwd = t_create("fwd", "{}", 3);
	pkts[0] = t_udp("10.0.0.1", "10.0.0.2", 1, 2, 0);
	pkts[0]->port = 2;
	n = nf_pkt_validate(pkts, 1, drops);
	n = t_run("fwd", fwd, pkts, n, 0, drops);
	CU_ASSERT_EQUAL(pkts[0]->port, 2);
	t_free_burst(pkts, n);
	t_destroy("fwd", fwd);
}

static void test_fwd_configured(void)
{
	static const struct rte_ether_addr gw = {{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}};
	uint64_t drops[NF_DROP_REASONS] = {0};
	struct nf_module_env env;
	struct rte_mbuf *pkts[2];
	void *fwd = t_create("fwd", "{\"out_port\":2,\"dst_mac\":\"00:11:22:33:44:55\"}", 4);
	uint16_t n;

	t_env(&env, 4);
	pkts[0] = t_udp("10.0.0.1", "10.0.0.2", 1, 2, 0);
	pkts[1] = t_udp("10.0.0.1", "10.0.0.2", 1, 2, 0);
	pkts[1]->port = 3;
	n = nf_pkt_validate(pkts, 2, drops);
	n = t_run("fwd", fwd, pkts, n, 0, drops);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	for (int i = 0; i < 2; i++) {
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(pkts[i], struct rte_ether_hdr *);

		CU_ASSERT_EQUAL(pkts[i]->port, 2);
		t_assert_mac(&eth->dst_addr, &gw);
		t_assert_mac(&eth->src_addr, &env.port_mac[2]);
		CU_ASSERT_TRUE(t_csums_ok(pkts[i])); /* L3 untouched */
	}
	t_free_burst(pkts, n);
	t_destroy("fwd", fwd);
}

static void test_fwd_bad_config(void)
{
	t_expect_cfg_error("fwd", "{\"out_port\":2}", T_PATH ".out_port", "does not exist");
	t_expect_cfg_error("fwd", "{\"out_port\":-1}", T_PATH ".out_port", "out of range");
	t_expect_cfg_error("fwd", "{\"out_port\":\"1\"}", T_PATH ".out_port", "expected");
	t_expect_cfg_error("fwd", "{\"dst_mac\":\"00:11:22:33:44\"}", T_PATH ".dst_mac",
			   "not a MAC address");
	t_expect_cfg_error("fwd", "{\"dst\":\"00:11:22:33:44:55\"}", T_PATH ".dst", "unknown key");
}

NEMO_SUITE(nf_fwd, t_setup, NULL, {"default pairs ports, swaps MACs", test_fwd_default_pairs_ports},
	   {"configured out_port and dst_mac", test_fwd_configured},
	   {"bad config names the key", test_fwd_bad_config})

/* ======================= nf_acl ======================= */

/* Run one packet through an acl instance: 1 if it passed. */
static int t_acl_pass(void *acl, struct rte_mbuf *m)
{
	uint64_t drops[NF_DROP_REASONS] = {0};
	struct rte_mbuf *pkts[1] = {m};
	uint16_t n = nf_pkt_validate(pkts, 1, drops);

	CU_ASSERT_EQUAL_FATAL(n, 1);
	n = t_run("acl", acl, pkts, 1, 0, drops);
	CU_ASSERT_EQUAL(drops[NF_DROP_ACL], n ? 0 : 1);
	t_free_burst(pkts, n);
	return n;
}

static struct rte_mbuf *t_pkt5(uint8_t proto, const char *src, const char *dst, uint16_t sport,
			       uint16_t dport)
{
	return t_mk(&(struct t_pkt){
		.proto = proto, .src = src, .dst = dst, .sport = sport, .dport = dport});
}

static void test_acl_each_field(void)
{
	void *acl;

	/* src */
	acl = t_create(
		"acl",
		"{\"module\":\"acl\",\"default\":\"allow\",\"rules\":[{\"src\":\"10.0.0.0/8\","
		"\"action\":\"deny\"}]}",
		2);
	CU_ASSERT_FALSE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "10.9.8.7", "1.1.1.1", 1, 2)));
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "11.0.0.1", "1.1.1.1", 1, 2)));
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "1.1.1.1", "10.0.0.1", 1, 2)));
	t_destroy("acl", acl);

	/* dst, exact host */
	acl = t_create("acl", "{\"rules\":[{\"dst\":\"192.168.1.1\",\"action\":\"deny\"}]}", 2);
	CU_ASSERT_FALSE(t_acl_pass(acl, t_pkt5(IPPROTO_TCP, "1.1.1.1", "192.168.1.1", 1, 2)));
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_TCP, "1.1.1.1", "192.168.1.2", 1, 2)));
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_TCP, "192.168.1.1", "1.1.1.1", 1, 2)));
	t_destroy("acl", acl);

	/* proto by name and by number */
	acl = t_create("acl",
		       "{\"rules\":[{\"proto\":\"icmp\",\"action\":\"deny\"},"
		       "{\"proto\":47,\"action\":\"deny\"}]}",
		       2);
	CU_ASSERT_FALSE(t_acl_pass(acl, t_pkt5(IPPROTO_ICMP, "1.1.1.1", "2.2.2.2", 1, 8)));
	CU_ASSERT_FALSE(t_acl_pass(acl, t_pkt5(47, "1.1.1.1", "2.2.2.2", 0, 0)));
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "1.1.1.1", "2.2.2.2", 1, 8)));
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_TCP, "1.1.1.1", "2.2.2.2", 1, 8)));
	t_destroy("acl", acl);

	/* sport range, inclusive at both ends */
	acl = t_create(
		"acl",
		"{\"rules\":[{\"proto\":\"udp\",\"sport\":\"1000-2000\",\"action\":\"deny\"}]}", 2);
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "1.1.1.1", "2.2.2.2", 999, 53)));
	CU_ASSERT_FALSE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "1.1.1.1", "2.2.2.2", 1000, 53)));
	CU_ASSERT_FALSE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "1.1.1.1", "2.2.2.2", 2000, 53)));
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "1.1.1.1", "2.2.2.2", 2001, 53)));
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_TCP, "1.1.1.1", "2.2.2.2", 1500, 53)));
	t_destroy("acl", acl);

	/* dport single port, default deny, allow list */
	acl = t_create(
		"acl",
		"{\"default\":\"deny\",\"rules\":[{\"proto\":\"tcp\",\"dport\":80,"
		"\"action\":\"allow\"},{\"proto\":\"udp\",\"dport\":\"53\",\"action\":\"allow\"}]}",
		2);
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_TCP, "1.1.1.1", "2.2.2.2", 5555, 80)));
	CU_ASSERT_FALSE(t_acl_pass(acl, t_pkt5(IPPROTO_TCP, "1.1.1.1", "2.2.2.2", 5555, 81)));
	CU_ASSERT_FALSE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "1.1.1.1", "2.2.2.2", 80, 5555)));
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "1.1.1.1", "2.2.2.2", 80, 53)));
	/* default deny also stops frames with no 5-tuple */
	CU_ASSERT_FALSE(t_acl_pass(acl, t_arp(0)));
	t_telemetry("acl", acl);
	t_destroy("acl", acl);
}

static void test_acl_first_match_wins(void)
{
	void *acl = t_create("acl",
			     "{\"default\":\"deny\",\"rules\":["
			     "{\"src\":\"10.1.0.0/16\",\"action\":\"deny\"},"
			     "{\"src\":\"10.0.0.0/8\",\"proto\":\"udp\",\"action\":\"allow\"},"
			     "{\"src\":\"10.1.2.0/24\",\"action\":\"allow\"},"
			     "{\"src\":\"any\",\"dst\":\"any\",\"proto\":\"any\",\"sport\":\"any\","
			     "\"dport\":\"any\",\"action\":\"deny\"}]}",
			     2);

	/* rule 0 denies before the broader allow of rule 1 and the narrower allow of rule 2 */
	CU_ASSERT_FALSE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "10.1.2.3", "2.2.2.2", 1, 2)));
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "10.2.0.1", "2.2.2.2", 1, 2)));
	CU_ASSERT_FALSE(t_acl_pass(acl, t_pkt5(IPPROTO_TCP, "10.2.0.1", "2.2.2.2", 1, 2)));
	t_destroy("acl", acl);

	/* the same rules reversed: now the allow comes first */
	acl = t_create("acl",
		       "{\"default\":\"deny\",\"rules\":["
		       "{\"src\":\"10.0.0.0/8\",\"proto\":\"udp\",\"action\":\"allow\"},"
		       "{\"src\":\"10.1.0.0/16\",\"action\":\"deny\"}]}",
		       2);
	CU_ASSERT_TRUE(t_acl_pass(acl, t_pkt5(IPPROTO_UDP, "10.1.2.3", "2.2.2.2", 1, 2)));
	CU_ASSERT_FALSE(t_acl_pass(acl, t_pkt5(IPPROTO_TCP, "10.1.2.3", "2.2.2.2", 1, 2)));
	t_destroy("acl", acl);
}

static void test_acl_default_and_burst(void)
{
	uint64_t drops[NF_DROP_REASONS] = {0};
	struct rte_mbuf *pkts[150];
	unsigned int free_before = t_free();
	void *allow_all = t_create("acl", "{\"default\":\"allow\",\"rules\":[]}", 2);
	void *low_udp =
		t_create("acl", "{\"rules\":[{\"dport\":\"0-99\",\"action\":\"deny\"}]}", 2);
	void *deny_all = t_create("acl", "{\"default\":\"deny\"}", 2);
	uint16_t n;

	/* 150 packets, over three rte_acl_classify chunks: UDP to port i, ARP, TCP to 100 + i */
	for (int i = 0; i < 150; i++) {
		if (i % 3 == 2)
			pkts[i] = t_pkt5(IPPROTO_UDP, "1.1.1.1", "2.2.2.2", 7, (uint16_t)i);
		else if (i % 3 == 1)
			pkts[i] = t_arp(0);
		else
			pkts[i] = t_pkt5(IPPROTO_TCP, "1.1.1.1", "2.2.2.2", 7, (uint16_t)(100 + i));
	}
	n = nf_pkt_validate(pkts, 150, drops);
	CU_ASSERT_EQUAL_FATAL(n, 150);
	n = t_run("acl", allow_all, pkts, n, 0, drops);
	CU_ASSERT_EQUAL(n, 150);
	CU_ASSERT_EQUAL(drops[NF_DROP_ACL], 0);
	n = t_run("acl", low_udp, pkts, n, 0, drops);
	/* UDP to ports 2, 5, ..., 98 is denied: 33 packets; the rest keep their order */
	CU_ASSERT_EQUAL(n, 150 - 33);
	CU_ASSERT_EQUAL(drops[NF_DROP_ACL], 33);
	for (uint16_t i = 0; i < n; i++) {
		if ((pkts[i]->packet_type & RTE_PTYPE_L4_MASK) == RTE_PTYPE_L4_UDP)
			CU_ASSERT_TRUE(t_dport(pkts[i]) >= 100);
	}
	CU_ASSERT_EQUAL(t_dport(pkts[0]), 100);
	CU_ASSERT_EQUAL(pkts[1]->packet_type, RTE_PTYPE_L2_ETHER);
	CU_ASSERT_EQUAL(t_dport(pkts[n - 1]), 149);
	n = t_run("acl", deny_all, pkts, n, 0, drops);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(drops[NF_DROP_ACL], 150);
	CU_ASSERT_EQUAL(t_free(), free_before);
	t_destroy("acl", allow_all);
	t_destroy("acl", low_udp);
	t_destroy("acl", deny_all);
}

static void test_acl_bad_rules(void)
{
	const char *r2 = T_PATH ".rules[2]";
	char path[128], json[512];
	static const struct {
		const char *rule;
		const char *key;
		const char *what;
	} bad[] = {
		{"{\"src\":\"10.0.0.0/33\",\"action\":\"deny\"}", "src", "prefix length"},
		{"{\"src\":\"10.0.0.0/\",\"action\":\"deny\"}", "src", "prefix length"},
		{"{\"dst\":\"300.1.1.1\",\"action\":\"deny\"}", "dst", "not an IPv4"},
		{"{\"src\":\"10.1.0.0/8\",\"action\":\"deny\"}", "src", "bits set past"},
		{"{\"src\":8,\"action\":\"deny\"}", "src", "expected"},
		{"{\"sport\":\"2000-1000\",\"action\":\"deny\"}", "sport", "ends before it starts"},
		{"{\"dport\":\"80-\",\"action\":\"deny\"}", "dport", "not a port"},
		{"{\"dport\":70000,\"action\":\"deny\"}", "dport", "not in 0..65535"},
		{"{\"dport\":\"http\",\"action\":\"deny\"}", "dport", "not a port"},
		{"{\"proto\":\"sctpx\",\"action\":\"deny\"}", "proto", "unknown protocol"},
		{"{\"proto\":256,\"action\":\"deny\"}", "proto", "not in 0..255"},
		{"{\"action\":\"drop\"}", "action", "not one of"},
		{"{\"src\":\"any\"}", "action", "required key is missing"},
		{"{\"srcip\":\"any\",\"action\":\"deny\"}", "srcip", "unknown key"},
	};

	for (size_t i = 0; i < RTE_DIM(bad); i++) {
		snprintf(json, sizeof(json),
			 "{\"rules\":[{\"action\":\"allow\"},{\"action\":\"deny\"},%s]}",
			 bad[i].rule);
		snprintf(path, sizeof(path), "%s.%s", r2, bad[i].key);
		t_expect_cfg_error("acl", json, path, bad[i].what);
	}
	t_expect_cfg_error("acl", "{\"rules\":[1]}", T_PATH ".rules[0]", "expected an object");
	t_expect_cfg_error("acl", "{\"rules\":{}}", T_PATH ".rules", "expected an array");
	t_expect_cfg_error("acl", "{\"default\":\"block\"}", T_PATH ".default", "not one of");
}

NEMO_SUITE(nf_acl, t_setup, NULL, {"each field allows and denies", test_acl_each_field},
	   {"first match wins", test_acl_first_match_wins},
	   {"default policy and a long burst", test_acl_default_and_burst},
	   {"bad rules name the key path", test_acl_bad_rules})

/* ======================= nf_nat ======================= */

#define T_EXT "198.51.100.1"

/* One packet through nat; returns it if kept (caller frees), else NULL. */
static struct rte_mbuf *t_nat1(void *nat, struct rte_mbuf *m, uint64_t now,
			       uint64_t drops[NF_DROP_REASONS])
{
	struct rte_mbuf *pkts[1] = {m};
	uint16_t n = nf_pkt_validate(pkts, 1, drops);

	CU_ASSERT_EQUAL_FATAL(n, 1);
	n = t_run("nat", nat, pkts, 1, now, drops);
	return n ? pkts[0] : NULL;
}

static void test_nat_translates_both_ways(void)
{
	uint64_t drops[NF_DROP_REASONS] = {0};
	unsigned int free_before = t_free();
	void *nat = t_create("nat", "{\"module\":\"nat\",\"external_ip\":\"" T_EXT "\"}", 2);
	uint16_t ports[4];
	struct rte_mbuf *m;

	/* four inside flows get four distinct ports, from port_min up */
	for (int i = 0; i < 4; i++) {
		m = t_nat1(nat,
			   t_pkt5(i == 3 ? IPPROTO_TCP : IPPROTO_UDP,
				  i == 2 ? "10.0.0.2" : "10.0.0.1", "8.8.8.8",
				  (uint16_t)(i == 1 ? 5001 : 5000), 53),
			   100, drops);
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		CU_ASSERT_EQUAL(t_iph(m)->src_addr, t_ip(T_EXT));
		CU_ASSERT_EQUAL(t_iph(m)->dst_addr, t_ip("8.8.8.8"));
		CU_ASSERT_EQUAL(t_dport(m), 53);
		CU_ASSERT_TRUE(t_csums_ok(m));
		ports[i] = t_sport(m);
		rte_pktmbuf_free(m);
	}
	CU_ASSERT_EQUAL(ports[0], 1024);
	CU_ASSERT_EQUAL(ports[1], 1025);
	CU_ASSERT_EQUAL(ports[2], 1026);
	CU_ASSERT_EQUAL(ports[3], 1027);

	/* the same flow again keeps its port */
	m = t_nat1(nat, t_pkt5(IPPROTO_UDP, "10.0.0.1", "8.8.8.8", 5001, 53), 200, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(t_sport(m), ports[1]);
	rte_pktmbuf_free(m);

	/* replies are translated back to the inside host and port */
	m = t_nat1(nat, t_pkt5(IPPROTO_UDP, "8.8.8.8", T_EXT, 53, ports[2]), 300, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(t_iph(m)->dst_addr, t_ip("10.0.0.2"));
	CU_ASSERT_EQUAL(t_iph(m)->src_addr, t_ip("8.8.8.8"));
	CU_ASSERT_EQUAL(t_dport(m), 5000);
	CU_ASSERT_EQUAL(t_sport(m), 53);
	CU_ASSERT_TRUE(t_csums_ok(m));
	rte_pktmbuf_free(m);
	m = t_nat1(nat, t_pkt5(IPPROTO_TCP, "8.8.8.8", T_EXT, 53, ports[3]), 300, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(t_iph(m)->dst_addr, t_ip("10.0.0.1"));
	CU_ASSERT_EQUAL(t_dport(m), 5000);
	CU_ASSERT_TRUE(t_csums_ok(m));
	rte_pktmbuf_free(m);
	CU_ASSERT_EQUAL(t_sum(drops), 0);

	/* no mapping: unused port, wrong protocol, wrong peer, wrong peer port */
	CU_ASSERT_PTR_NULL(
		t_nat1(nat, t_pkt5(IPPROTO_UDP, "8.8.8.8", T_EXT, 53, 1028), 300, drops));
	CU_ASSERT_PTR_NULL(
		t_nat1(nat, t_pkt5(IPPROTO_TCP, "8.8.8.8", T_EXT, 53, ports[0]), 300, drops));
	CU_ASSERT_PTR_NULL(
		t_nat1(nat, t_pkt5(IPPROTO_UDP, "8.8.4.4", T_EXT, 53, ports[0]), 300, drops));
	CU_ASSERT_PTR_NULL(
		t_nat1(nat, t_pkt5(IPPROTO_UDP, "8.8.8.8", T_EXT, 54, ports[0]), 300, drops));
	/* a protocol nat cannot translate */
	CU_ASSERT_PTR_NULL(t_nat1(nat, t_pkt5(47, "10.0.0.1", "8.8.8.8", 0, 0), 300, drops));
	CU_ASSERT_EQUAL(drops[NF_DROP_NAT], 5);
	CU_ASSERT_EQUAL(t_sum(drops), 5);

	/* ARP passes untouched */
	m = t_nat1(nat, t_arp(0), 300, drops);
	CU_ASSERT_PTR_NOT_NULL(m);
	rte_pktmbuf_free(m);
	t_telemetry("nat", nat);
	t_destroy("nat", nat);
	CU_ASSERT_EQUAL(t_free(), free_before);
}

static void test_nat_icmp_and_udp_nocsum(void)
{
	uint64_t drops[NF_DROP_REASONS] = {0};
	void *nat = t_create("nat", "{\"external_ip\":\"" T_EXT "\",\"port_min\":40000}", 2);
	struct rte_mbuf *m;
	uint16_t id;

	/* echo request: the identifier is translated like a port */
	m = t_nat1(nat, t_pkt5(IPPROTO_ICMP, "10.0.0.9", "1.1.1.1", 777, RTE_IP_ICMP_ECHO_REQUEST),
		   1, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	id = rte_be_to_cpu_16(((struct rte_icmp_hdr *)t_l4(m))->icmp_ident);
	CU_ASSERT_EQUAL(id, 40000);
	CU_ASSERT_EQUAL(t_iph(m)->src_addr, t_ip(T_EXT));
	CU_ASSERT_TRUE(t_csums_ok(m));
	rte_pktmbuf_free(m);
	m = t_nat1(nat, t_pkt5(IPPROTO_ICMP, "1.1.1.1", T_EXT, id, RTE_IP_ICMP_ECHO_REPLY), 2,
		   drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(rte_be_to_cpu_16(((struct rte_icmp_hdr *)t_l4(m))->icmp_ident), 777);
	CU_ASSERT_EQUAL(t_iph(m)->dst_addr, t_ip("10.0.0.9"));
	CU_ASSERT_TRUE(t_csums_ok(m));
	rte_pktmbuf_free(m);
	/* other ICMP (here a destination unreachable) is not translated */
	CU_ASSERT_PTR_NULL(
		t_nat1(nat, t_pkt5(IPPROTO_ICMP, "10.0.0.9", "1.1.1.1", 0, 3), 3, drops));
	CU_ASSERT_EQUAL(drops[NF_DROP_NAT], 1);

	/* a UDP datagram without checksum keeps none */
	m = t_nat1(nat,
		   t_mk(&(struct t_pkt){.proto = IPPROTO_UDP,
					.src = "10.0.0.9",
					.dst = "1.1.1.1",
					.sport = 9,
					.dport = 9,
					.payload = 33,
					.no_udp_csum = true}),
		   4, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(((struct rte_udp_hdr *)t_l4(m))->dgram_cksum, 0);
	CU_ASSERT_EQUAL(t_sport(m), 40001);
	CU_ASSERT_TRUE(t_csums_ok(m));
	rte_pktmbuf_free(m);

	/* checksums stay right over many different addresses and ports (incremental update) */
	for (int i = 0; i < 200; i++) {
		char src[32];

		snprintf(src, sizeof(src), "10.%d.%d.%d", i % 7, (i * 37) % 256,
			 (i * 101) % 255 + 1);
		m = t_nat1(nat,
			   t_mk(&(struct t_pkt){.proto = i % 2 ? IPPROTO_TCP : IPPROTO_UDP,
						.src = src,
						.dst = "203.0.113.77",
						.sport = (uint16_t)(i * 331),
						.dport = (uint16_t)(i * 7 + 1),
						.payload = (uint16_t)(i % 50),
						.vlan = i % 5 == 0}),
			   5, drops);
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		CU_ASSERT_TRUE(t_csums_ok(m));
		rte_pktmbuf_free(m);
	}
	t_destroy("nat", nat);
}

static void test_nat_exhaustion_and_expiry(void)
{
	uint64_t drops[NF_DROP_REASONS] = {0};
	uint64_t hz = rte_get_tsc_hz(), t0 = 1000, later = t0 + hz; /* 1 s, timeout 100 ms */
	void *nat = t_create("nat",
			     "{\"external_ip\":\"" T_EXT "\",\"port_min\":2000,\"port_max\":2001,"
			     "\"idle_timeout_ms\":100}",
			     2);
	struct rte_mbuf *m, *pkts[1];

	m = t_nat1(nat, t_pkt5(IPPROTO_UDP, "10.0.0.1", "8.8.8.8", 1, 53), t0, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(t_sport(m), 2000);
	rte_pktmbuf_free(m);
	m = t_nat1(nat, t_pkt5(IPPROTO_UDP, "10.0.0.1", "8.8.8.8", 2, 53), t0, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(t_sport(m), 2001);
	rte_pktmbuf_free(m);
	/* a third flow finds no port */
	CU_ASSERT_PTR_NULL(
		t_nat1(nat, t_pkt5(IPPROTO_UDP, "10.0.0.1", "8.8.8.8", 3, 53), t0, drops));
	CU_ASSERT_EQUAL(drops[NF_DROP_NAT], 1);
	/* established flows still pass */
	m = t_nat1(nat, t_pkt5(IPPROTO_UDP, "8.8.8.8", T_EXT, 53, 2001), t0 + hz / 20, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	rte_pktmbuf_free(m);

	/* flow 2 stays busy (a packet every 50 ms), flow 1 goes idle past its 100 ms */
	for (int k = 2; k <= 20; k++) {
		m = t_nat1(nat, t_pkt5(IPPROTO_UDP, "10.0.0.1", "8.8.8.8", 2, 53), t0 + k * hz / 20,
			   drops);
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		CU_ASSERT_EQUAL(t_sport(m), 2001);
		rte_pktmbuf_free(m);
	}
	/* empty bursts still run the sweep */
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(t_run("nat", nat, pkts, 0, later, drops), 0);
	/* the sweep freed flow 1's port: the third flow gets it without flow 1 being seen again */
	m = t_nat1(nat, t_pkt5(IPPROTO_UDP, "10.0.0.1", "8.8.8.8", 3, 53), later, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(t_sport(m), 2000);
	CU_ASSERT_TRUE(t_csums_ok(m));
	rte_pktmbuf_free(m);
	CU_ASSERT_EQUAL(drops[NF_DROP_NAT], 1);
	/* port 2000 now answers for the new flow, not the expired one */
	m = t_nat1(nat, t_pkt5(IPPROTO_UDP, "8.8.8.8", T_EXT, 53, 2000), later, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(t_iph(m)->dst_addr, t_ip("10.0.0.1"));
	CU_ASSERT_EQUAL(t_dport(m), 3);
	rte_pktmbuf_free(m);
	/* the busy flow kept its port through all of it */
	m = t_nat1(nat, t_pkt5(IPPROTO_UDP, "10.0.0.1", "8.8.8.8", 2, 53), later, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(t_sport(m), 2001);
	rte_pktmbuf_free(m);
	/* a reply after the timeout finds no mapping */
	CU_ASSERT_PTR_NULL(
		t_nat1(nat, t_pkt5(IPPROTO_UDP, "8.8.8.8", T_EXT, 53, 2001), later + hz, drops));
	CU_ASSERT_EQUAL(drops[NF_DROP_NAT], 2);
	t_telemetry("nat", nat);
	t_destroy("nat", nat);

	/*
	 * The timeout holds exactly even where the sweep has not come yet: 101 flows, then a
	 * reply to the 51st after the timeout, when the sweep is far past the used entries.
	 */
	nat = t_create("nat", "{\"external_ip\":\"" T_EXT "\",\"idle_timeout_ms\":100}", 2);
	memset(drops, 0, sizeof(drops));
	for (int i = 0; i <= 100; i++) {
		m = t_nat1(nat, t_pkt5(IPPROTO_UDP, "10.0.0.1", "8.8.8.8", (uint16_t)(100 + i), 53),
			   t0, drops);
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		rte_pktmbuf_free(m);
	}
	m = t_nat1(nat, t_pkt5(IPPROTO_UDP, "8.8.8.8", T_EXT, 53, 1024 + 50), t0 + hz / 20, drops);
	CU_ASSERT_PTR_NOT_NULL(m);
	rte_pktmbuf_free(m);
	CU_ASSERT_PTR_NULL(
		t_nat1(nat, t_pkt5(IPPROTO_UDP, "8.8.8.8", T_EXT, 53, 1024 + 51), later, drops));
	CU_ASSERT_EQUAL(drops[NF_DROP_NAT], 1);
	t_destroy("nat", nat);

	/* max_flows below the port range also bounds the table */
	nat = t_create("nat", "{\"external_ip\":\"" T_EXT "\",\"max_flows\":3}", 2);
	memset(drops, 0, sizeof(drops));
	for (int i = 0; i < 5; i++) {
		m = t_nat1(nat, t_pkt5(IPPROTO_TCP, "10.0.0.1", "8.8.8.8", (uint16_t)(100 + i), 80),
			   1, drops);
		CU_ASSERT_EQUAL(m != NULL, i < 3);
		rte_pktmbuf_free(m);
	}
	CU_ASSERT_EQUAL(drops[NF_DROP_NAT], 2);
	t_destroy("nat", nat);
}

static void test_nat_inside_port(void)
{
	uint64_t drops[NF_DROP_REASONS] = {0};
	void *nat = t_create("nat", "{\"external_ip\":\"" T_EXT "\",\"inside_port\":1}", 2);
	struct rte_mbuf *m;
	uint16_t port;

	m = t_pkt5(IPPROTO_UDP, "10.0.0.1", "8.8.8.8", 1, 53);
	m->port = 1;
	m = t_nat1(nat, m, 1, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	port = t_sport(m);
	CU_ASSERT_EQUAL(t_iph(m)->src_addr, t_ip(T_EXT));
	rte_pktmbuf_free(m);
	/* from the outside port and not to the external address: nothing to map it back to */
	m = t_pkt5(IPPROTO_UDP, "8.8.8.8", "10.0.0.1", 53, 1);
	m->port = 0;
	CU_ASSERT_PTR_NULL(t_nat1(nat, m, 1, drops));
	CU_ASSERT_EQUAL(drops[NF_DROP_NAT], 1);
	m = t_pkt5(IPPROTO_UDP, "8.8.8.8", T_EXT, 53, port);
	m->port = 0;
	m = t_nat1(nat, m, 1, drops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL(t_iph(m)->dst_addr, t_ip("10.0.0.1"));
	rte_pktmbuf_free(m);
	t_destroy("nat", nat);
}

static void test_nat_bad_config(void)
{
	t_expect_cfg_error("nat", "{\"port_min\":2000}", T_PATH ".external_ip",
			   "required key is missing");
	t_expect_cfg_error("nat", "{\"external_ip\":\"1.2.3\"}", T_PATH ".external_ip",
			   "not an IPv4 address");
	t_expect_cfg_error("nat",
			   "{\"external_ip\":\"1.2.3.4\",\"port_min\":3000,\"port_max\":2000}",
			   T_PATH ".port_max", "below port_min");
	t_expect_cfg_error("nat", "{\"external_ip\":\"1.2.3.4\",\"port_min\":0}",
			   T_PATH ".port_min", "out of range");
	t_expect_cfg_error("nat", "{\"external_ip\":\"1.2.3.4\",\"inside_port\":5}",
			   T_PATH ".inside_port", "does not exist");
	t_expect_cfg_error("nat", "{\"external_ip\":\"1.2.3.4\",\"idle_timeout\":5}",
			   T_PATH ".idle_timeout", "unknown key");
}

NEMO_SUITE(nf_nat, t_setup, NULL,
	   {"distinct ports, replies translated, checksums right", test_nat_translates_both_ways},
	   {"icmp echo and udp without checksum", test_nat_icmp_and_udp_nocsum},
	   {"port exhaustion and idle expiry", test_nat_exhaustion_and_expiry},
	   {"inside_port decides the direction", test_nat_inside_port},
	   {"bad config names the key", test_nat_bad_config})

/* ======================= nf_monitor ======================= */

static struct nf_flow_key t_key(uint8_t proto, const char *src, const char *dst, uint16_t sport,
				uint16_t dport)
{
	return (struct nf_flow_key){.src_ip = t_ip(src),
				    .dst_ip = t_ip(dst),
				    .src_port = rte_cpu_to_be_16(sport),
				    .dst_port = rte_cpu_to_be_16(dport),
				    .proto = proto};
}

static void t_assert_flow(void *mon, struct nf_flow_key k, uint64_t pkts, uint64_t bytes)
{
	uint64_t p = 0, b = 0;

	CU_ASSERT_EQUAL(nf_monitor_flow_counters(mon, &k, &p, &b), 0);
	CU_ASSERT_EQUAL(p, pkts);
	CU_ASSERT_EQUAL(b, bytes);
}

static void test_monitor_counts_exactly(void)
{
	uint64_t drops[NF_DROP_REASONS] = {0}, p, b;
	struct rte_mbuf *pkts[T_BURST_MAX];
	struct nf_monitor_totals tot;
	void *mon = t_create("monitor", "{\"module\":\"monitor\"}", 2);
	struct nf_flow_key k;
	uint16_t n = 0;

	/* 100 A (UDP, 100 B payload: 142 B frames), 50 B (TCP, 60 B), 3 ICMP, 7 ARP, in one burst */
	for (int i = 0; i < 100; i++)
		pkts[n++] = t_udp("10.0.0.1", "10.0.0.2", 1111, 53, 100);
	for (int i = 0; i < 50; i++)
		pkts[n++] = t_pkt5(IPPROTO_TCP, "10.0.0.3", "10.0.0.4", 2222, 80);
	for (int i = 0; i < 3; i++)
		pkts[n++] = t_pkt5(IPPROTO_ICMP, "10.0.0.5", "10.0.0.6", (uint16_t)i, 8);
	for (int i = 0; i < 7; i++)
		pkts[n++] = t_arp(0);
	CU_ASSERT_EQUAL_FATAL(n, 160);
	n = nf_pkt_validate(pkts, n, drops);
	CU_ASSERT_EQUAL_FATAL(n, 160);
	CU_ASSERT_EQUAL(t_run("monitor", mon, pkts, n, 0, drops), 160);
	CU_ASSERT_EQUAL(t_sum(drops), 0);
	t_assert_flow(mon, t_key(IPPROTO_UDP, "10.0.0.1", "10.0.0.2", 1111, 53), 100, 100 * 142);
	t_assert_flow(mon, t_key(IPPROTO_TCP, "10.0.0.3", "10.0.0.4", 2222, 80), 50, 50 * 60);
	/* ICMP flows are keyed without the identifier */
	t_assert_flow(mon, t_key(IPPROTO_ICMP, "10.0.0.5", "10.0.0.6", 0, 0), 3, 3 * 60);
	/* the reverse direction is another flow, never seen */
	k = t_key(IPPROTO_UDP, "10.0.0.2", "10.0.0.1", 53, 1111);
	CU_ASSERT_EQUAL(nf_monitor_flow_counters(mon, &k, &p, &b), -ENOENT);
	CU_ASSERT_EQUAL(nf_monitor_flow_counters(NULL, &k, &p, &b), -EINVAL);
	CU_ASSERT_EQUAL(nf_monitor_totals(mon, &tot), 0);
	CU_ASSERT_EQUAL(tot.flows, 3);
	CU_ASSERT_EQUAL(tot.other_pkts, 7);
	CU_ASSERT_EQUAL(tot.other_bytes, 7 * 60);
	CU_ASSERT_EQUAL(tot.overflow_pkts, 0);

	/* a second burst adds up; the packets are passed on unchanged and in order */
	CU_ASSERT_EQUAL(t_run("monitor", mon, pkts, 10, 0, drops), 10);
	t_assert_flow(mon, t_key(IPPROTO_UDP, "10.0.0.1", "10.0.0.2", 1111, 53), 110, 110 * 142);
	CU_ASSERT_EQUAL(t_sport(pkts[0]), 1111);
	t_telemetry("monitor", mon);
	t_free_burst(pkts, n);
	t_destroy("monitor", mon);
}

static void test_monitor_overflow(void)
{
	uint64_t drops[NF_DROP_REASONS] = {0};
	struct rte_mbuf *pkts[12];
	struct nf_monitor_totals tot;
	void *mon = t_create("monitor", "{\"max_flows\":2}", 2);
	uint64_t p, b;
	uint16_t n;

	/* flows 0..3, three packets each, interleaved: the first two flows seen get slots */
	for (int i = 0; i < 12; i++)
		pkts[i] = t_udp("10.0.0.1", "10.0.0.2", (uint16_t)(1000 + i % 4), 53, 0);
	n = nf_pkt_validate(pkts, 12, drops);
	CU_ASSERT_EQUAL(t_run("monitor", mon, pkts, n, 0, drops), 12);
	t_assert_flow(mon, t_key(IPPROTO_UDP, "10.0.0.1", "10.0.0.2", 1000, 53), 3, 3 * 60);
	t_assert_flow(mon, t_key(IPPROTO_UDP, "10.0.0.1", "10.0.0.2", 1001, 53), 3, 3 * 60);
	{
		struct nf_flow_key k = t_key(IPPROTO_UDP, "10.0.0.1", "10.0.0.2", 1002, 53);

		CU_ASSERT_EQUAL(nf_monitor_flow_counters(mon, &k, &p, &b), -ENOENT);
	}
	CU_ASSERT_EQUAL(nf_monitor_totals(mon, &tot), 0);
	CU_ASSERT_EQUAL(tot.flows, 2);
	CU_ASSERT_EQUAL(tot.overflow_pkts, 6);
	CU_ASSERT_EQUAL(tot.overflow_bytes, 6 * 60);
	t_free_burst(pkts, n);
	t_destroy("monitor", mon);

	t_expect_cfg_error("monitor", "{\"max_flows\":0}", T_PATH ".max_flows", "out of range");
	t_expect_cfg_error("monitor", "{\"flows\":10}", T_PATH ".flows", "unknown key");
}

NEMO_SUITE(nf_monitor, t_setup, NULL, {"per-flow counts are exact", test_monitor_counts_exactly},
	   {"a full table counts overflow", test_monitor_overflow})

/* ======================= nf_chain ======================= */

static void test_chain(void)
{
	static const char *const names[] = {"acl", "nat", "monitor", "fwd"};
	static const char *const cfgs[] = {
		"{\"module\":\"acl\",\"default\":\"allow\",\"rules\":[{\"src\":\"192.168.0.0/16\","
		"\"action\":\"deny\"}]}",
		"{\"module\":\"nat\",\"external_ip\":\"" T_EXT
		"\",\"port_min\":3000,\"port_max\":3004}",
		"{\"module\":\"monitor\"}",
		"{\"module\":\"fwd\"}",
	};
	uint64_t drops[NF_DROP_REASONS] = {0};
	struct rte_mbuf *pkts[32];
	unsigned int free_before = t_free();
	struct nf_monitor_totals tot;
	struct nf_module_env env;
	void *inst[4];
	uint16_t n = 0;

	t_env(&env, 2);
	for (int i = 0; i < 4; i++)
		inst[i] = t_create(names[i], cfgs[i], 2);

	/* 8 packets on 4 good flows (only 5 nat ports: 6th flow will not fit) */
	for (int i = 0; i < 8; i++)
		pkts[n++] = t_udp("10.0.0.1", "8.8.8.8", (uint16_t)(100 + i % 4), 53, 20);
	/* 3 denied by the acl */
	for (int i = 0; i < 3; i++)
		pkts[n++] = t_udp("192.168.7.7", "8.8.8.8", 100, 53, 20);
	/* 2 malformed: truncated IPv4 and a fragment */
	pkts[n] = t_udp("10.0.0.1", "8.8.8.8", 1, 53, 20);
	rte_pktmbuf_trim(pkts[n], (uint16_t)(pkts[n]->pkt_len - 30));
	n++;
	pkts[n] = t_udp("10.0.0.1", "8.8.8.8", 1, 53, 20);
	t_iph(pkts[n])->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG);
	t_fix_ip_csum(pkts[n]);
	n++;
	/* 1 GRE that nat cannot translate */
	pkts[n++] = t_pkt5(47, "10.0.0.1", "8.8.8.8", 0, 0);
	/* 3 more new flows: 1 fits the 5 ports, 2 are dropped for exhaustion */
	for (int i = 0; i < 3; i++)
		pkts[n++] = t_pkt5(IPPROTO_TCP, "10.0.0.2", "8.8.8.8", (uint16_t)(7000 + i), 443);
	/* 2 ARP frames pass every module */
	pkts[n++] = t_arp(0);
	pkts[n++] = t_arp(1);
	CU_ASSERT_EQUAL_FATAL(n, 19);

	n = nf_pkt_validate(pkts, n, drops);
	for (int i = 0; i < 4; i++)
		n = t_run(names[i], inst[i], pkts, n, 42, drops);

	CU_ASSERT_EQUAL(n, 8 + 1 + 2);
	CU_ASSERT_EQUAL(drops[NF_DROP_TRUNC_IP], 1);
	CU_ASSERT_EQUAL(drops[NF_DROP_FRAGMENT], 1);
	CU_ASSERT_EQUAL(drops[NF_DROP_ACL], 3);
	CU_ASSERT_EQUAL(drops[NF_DROP_NAT], 1 + 2);
	CU_ASSERT_EQUAL(t_sum(drops), 8);
	for (uint16_t i = 0; i < n; i++) {
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(pkts[i], struct rte_ether_hdr *);

		t_assert_mac(&eth->dst_addr, &t_src_mac);
		if (!(pkts[i]->packet_type & RTE_PTYPE_L3_IPV4))
			continue;
		/* rx port 0 -> out port 1, from port 1's MAC, with the external source */
		CU_ASSERT_EQUAL(pkts[i]->port, 1);
		t_assert_mac(&eth->src_addr, &env.port_mac[1]);
		CU_ASSERT_EQUAL(t_iph(pkts[i])->src_addr, t_ip(T_EXT));
		CU_ASSERT_TRUE(t_sport(pkts[i]) >= 3000 && t_sport(pkts[i]) <= 3004);
		CU_ASSERT_TRUE(t_csums_ok(pkts[i]));
	}
	/* monitor sat after nat: it counted the translated flows */
	CU_ASSERT_EQUAL(nf_monitor_totals(inst[2], &tot), 0);
	CU_ASSERT_EQUAL(tot.flows, 5);
	CU_ASSERT_EQUAL(tot.other_pkts, 2);
	t_assert_flow(inst[2], t_key(IPPROTO_UDP, T_EXT, "8.8.8.8", 3000, 53), 2, 2 * 62);
	t_assert_flow(inst[2], t_key(IPPROTO_TCP, T_EXT, "8.8.8.8", 3004, 443), 1, 60);

	t_free_burst(pkts, n);
	for (int i = 0; i < 4; i++)
		t_destroy(names[i], inst[i]);
	CU_ASSERT_EQUAL(t_free(), free_before);
}

NEMO_SUITE(nf_chain, t_setup, NULL,
	   {"validate, acl, nat, monitor, fwd on a mixed burst", test_chain})
