/* test_nf_fn.c - the fn module on real mbufs and real rings: what it hands over, keeps, answers. */
/* rte_ipv4_udptcp_cksum_verify() is experimental in DPDK 22.11 */
#define ALLOW_EXPERIMENTAL_API 1

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_udp.h>

#include "nemo/fn_ring.h"
#include "nemo/nf_module.h"
#include "test.h"

#define T_POOL_SIZE 2047

static struct rte_mempool *t_pool;
static struct nf_fn_hub *t_hub;
static char t_sock[96];
static uint64_t t_consumed;

static int t_setup(void)
{
	if (nemo_test_eal_init())
		return 1;
	if (!t_pool)
		t_pool = rte_pktmbuf_pool_create("nf_fn_tests", T_POOL_SIZE, 0, 0,
						 RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	return t_pool ? 0 : 1;
}

/* Each test gets its own lease server (the module registers its rings with it). */
static void *t_create(const char *json)
{
	struct cfg_ctx ctx = {.file = "test"};
	struct nf_module_env env = {.nb_ports = 2, .pool = t_pool, .consumed_pkts = &t_consumed};
	cJSON *cfg = cJSON_Parse(json);
	void *inst;

	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	snprintf(t_sock, sizeof(t_sock), "/tmp/nemo-nffn-%d.sock", getpid());
	t_hub = nf_fn_hub_create(t_sock);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t_hub);
	env.fn_hub = t_hub;
	env.socket_id = rte_socket_id();
	inst = nf_module_find("fn")->create(&ctx, "chain[0]", cfg, &env);
	cJSON_Delete(cfg);
	if (!inst)
		printf("\n  create: %s\n", ctx.err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(inst);
	CU_ASSERT_EQUAL_FATAL(nf_fn_hub_start(t_hub), 0);
	return inst;
}

static void t_destroy(void *inst)
{
	nf_fn_hub_destroy(t_hub);
	t_hub = NULL;
	nf_module_find("fn")->destroy(inst);
}

/* A validated Ethernet/IPv4 frame from 10.0.0.1:sport (or ICMP) to 10.0.0.2:dport. */
static struct rte_mbuf *t_pkt(uint8_t proto, uint16_t sport, uint16_t dport, const char *payload,
			      uint16_t in_port)
{
	uint16_t hdr = proto == IPPROTO_TCP ? 20 : 8;
	uint16_t plen = (uint16_t)strlen(payload), l4 = (uint16_t)(hdr + plen);
	struct rte_mbuf *m = rte_pktmbuf_alloc(t_pool), *one[1];
	struct rte_ether_hdr *eth;
	struct rte_ipv4_hdr *ip;
	uint8_t *p;
	uint64_t drops[NF_DROP_REASONS] = {0};

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	p = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(14 + 20 + l4 < 60 ? 60 : 14 + 20 + l4));
	memset(p, 0, m->data_len);
	eth = (struct rte_ether_hdr *)p;
	eth->dst_addr = (struct rte_ether_addr){{0x02, 0xbb, 0, 0, 0, 2}};
	eth->src_addr = (struct rte_ether_addr){{0x02, 0xaa, 0, 0, 0, 1}};
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	ip = (struct rte_ipv4_hdr *)(eth + 1);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(20 + l4));
	ip->time_to_live = 64;
	ip->next_proto_id = proto;
	ip->src_addr = htonl(0x0a000001);
	ip->dst_addr = htonl(0x0a000002);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	if (proto == IPPROTO_UDP || proto == IPPROTO_TCP) {
		struct rte_udp_hdr *u = (struct rte_udp_hdr *)(ip + 1);

		u->src_port = htons(sport);
		u->dst_port = htons(dport);
		if (proto == IPPROTO_UDP)
			u->dgram_len = htons(l4);
		else
			((uint8_t *)u)[12] = 5 << 4; /* TCP data offset: 5 words */
	}
	memcpy((uint8_t *)(ip + 1) + hdr, payload, plen);
	m->port = in_port;
	one[0] = m;
	CU_ASSERT_EQUAL_FATAL(nf_pkt_validate(one, 1, drops), 1);
	return m;
}

static uint16_t t_process(void *inst, struct rte_mbuf **pkts, uint16_t n, uint64_t *drops)
{
	return nf_module_find("fn")->process(inst, pkts, n, 0, drops);
}

static void t_lease(const char *function, struct fn_ring *r, int *lease)
{
	char err[256];

	CU_ASSERT_EQUAL_FATAL(
		fn_lease_acquire(t_sock, function, FN_LEASE_ANY, r, lease, err, sizeof(err)), 0);
}

static void test_rules_and_prefilter(void)
{
	void *fn = t_create("{\"functions\":[{\"name\":\"a\",\"slots\":64}],\"rules\":["
			    "{\"proto\":\"udp\",\"dport\":\"7-9\",\"function\":\"a\"},"
			    "{\"proto\":\"icmp\",\"payload\":\"frame\",\"function\":\"a\"}]}");
	unsigned int free0 = rte_mempool_avail_count(t_pool);
	uint64_t drops[NF_DROP_REASONS] = {0}, consumed0 = t_consumed;
	struct rte_mbuf *pkts[6];
	struct fn_ring r;
	uint16_t kept;
	int lease;

	t_lease("a", &r, &lease);
	pkts[0] = t_pkt(IPPROTO_UDP, 1000, 7, "seven", 0);
	pkts[1] = t_pkt(IPPROTO_UDP, 1000, 10, "ten", 0);  /* no rule: goes on */
	pkts[2] = t_pkt(IPPROTO_ICMP, 0, 0, "ping", 1);	   /* rule 1, the whole frame */
	pkts[3] = t_pkt(IPPROTO_TCP, 1000, 8, "tcp 8", 0); /* port fits, protocol does not */
	pkts[4] = t_pkt(IPPROTO_UDP, 1000, 9, "nine", 0);
	pkts[5] = t_pkt(IPPROTO_UDP, 1000, 6, "six", 0);
	kept = t_process(fn, pkts, 6, drops);
	CU_ASSERT_EQUAL(kept, 3);
	/* what goes on keeps its order */
	CU_ASSERT_EQUAL(
		rte_be_to_cpu_16(
			rte_pktmbuf_mtod_offset(pkts[0], struct rte_udp_hdr *, 34)->dst_port),
		10);
	CU_ASSERT_EQUAL(
		rte_be_to_cpu_16(
			rte_pktmbuf_mtod_offset(pkts[2], struct rte_udp_hdr *, 34)->dst_port),
		6);
	/* handed and stopped: freed, counted as consumed, not dropped */
	CU_ASSERT_EQUAL(t_consumed - consumed0, 3);
	for (int i = 0; i < NF_DROP_REASONS; i++)
		CU_ASSERT_EQUAL(drops[i], 0);
	rte_pktmbuf_free_bulk(pkts, kept);
	CU_ASSERT_EQUAL(rte_mempool_avail_count(t_pool), free0);
	/* the function sees them in order: payloads, or the frame for the ICMP rule */
	CU_ASSERT_EQUAL_FATAL(fn_ring_cons_avail(&r), 3);
	{
		const struct fn_slot *s0 = fn_ring_req_slot(&r, r.head);
		const struct fn_slot *s1 = fn_ring_req_slot(&r, r.head + 1);
		const struct fn_slot *s2 = fn_ring_req_slot(&r, r.head + 2);

		CU_ASSERT_EQUAL(s0->len, 5);
		CU_ASSERT_EQUAL(memcmp(s0->data, "seven", 5), 0);
		CU_ASSERT_EQUAL(s0->rule, 0);
		CU_ASSERT_EQUAL(s0->dst_port, htons(7));
		CU_ASSERT_EQUAL(s0->src_ip, htonl(0x0a000001));
		CU_ASSERT_EQUAL(s1->flags & FN_SLOT_F_FRAME, FN_SLOT_F_FRAME);
		CU_ASSERT_EQUAL(s1->rule, 1);
		CU_ASSERT_EQUAL(s1->len, 60); /* the padded frame, as received */
		CU_ASSERT_EQUAL(s1->proto, IPPROTO_ICMP);
		CU_ASSERT_EQUAL(memcmp(s2->data, "nine", 4), 0);
		CU_ASSERT_EQUAL(s2->seq, s0->seq + 2);
	}
	fn_ring_close(&r);
	close(lease);
	t_destroy(fn);
}

static void test_full_drop_or_pass(void)
{
	void *fn = t_create(
		"{\"functions\":[{\"name\":\"d\",\"slots\":8},{\"name\":\"p\",\"slots\":8}],"
		"\"rules\":[{\"proto\":\"udp\",\"dport\":1,\"function\":\"d\"},"
		"{\"proto\":\"udp\",\"dport\":2,\"function\":\"p\",\"on_full\":\"pass\","
		"\"next\":\"stop\"}]}");
	uint64_t drops[NF_DROP_REASONS] = {0};
	struct rte_mbuf *pkts[24];
	uint16_t kept;

	for (int i = 0; i < 12; i++) {
		pkts[i] = t_pkt(IPPROTO_UDP, 1000, 1, "d", 0);
		pkts[12 + i] = t_pkt(IPPROTO_UDP, 1000, 2, "p", 0);
	}
	/* no consumer at all: each ring takes 8, then drop or pass */
	kept = t_process(fn, pkts, 24, drops);
	CU_ASSERT_EQUAL(drops[NF_DROP_FN_FULL], 4);
	CU_ASSERT_EQUAL(kept, 4);
	for (uint16_t i = 0; i < kept; i++)
		CU_ASSERT_EQUAL(
			rte_be_to_cpu_16(rte_pktmbuf_mtod_offset(pkts[i], struct rte_udp_hdr *, 34)
						 ->dst_port),
			2);
	rte_pktmbuf_free_bulk(pkts, kept);
	CU_ASSERT_STRING_EQUAL(nf_drop_reason_names[NF_DROP_FN_FULL], "fn_full");
	t_destroy(fn);
}

/* Replies: addresses and ports swapped, checksums right, on the input port; once only. */
static void test_replies(void)
{
	void *fn = t_create("{\"mtu\":200,\"functions\":[{\"name\":\"e\",\"slots\":16}],"
			    "\"rules\":[{\"proto\":\"udp\",\"dport\":7,\"function\":\"e\","
			    "\"reply\":true}]}");
	const struct nf_module_ops *ops = nf_module_find("fn");
	uint64_t drops[NF_DROP_REASONS] = {0};
	struct rte_mbuf *pkts[4], *out[8];
	char big[180];
	struct fn_ring r;
	uint16_t n;
	int lease;

	t_lease("e", &r, &lease);
	pkts[0] = t_pkt(IPPROTO_UDP, 4242, 7, "ping", 1);
	pkts[1] = t_pkt(IPPROTO_UDP, 4243, 7, "big", 0);
	CU_ASSERT_EQUAL(t_process(fn, pkts, 2, drops), 0);
	CU_ASSERT_EQUAL_FATAL(fn_ring_cons_avail(&r), 2);
	CU_ASSERT_EQUAL(fn_ring_req_slot(&r, r.head)->flags & FN_SLOT_F_REPLY, FN_SLOT_F_REPLY);
	/* answer both, and the first twice; the second over the 200-byte MTU */
	memset(big, 'b', sizeof(big));
	{
		const struct fn_slot *q0 = fn_ring_req_slot(&r, r.head);
		const struct fn_slot *q1 = fn_ring_req_slot(&r, r.head + 1);
		struct fn_slot *a = fn_ring_rep_slot(&r, r.rep_head);

		a->seq = q0->seq;
		a->len = 4;
		a->flags = 0;
		memcpy(a->data, "pong", 4);
		a = fn_ring_rep_slot(&r, r.rep_head + 1);
		a->seq = q1->seq;
		a->len = sizeof(big);
		a->flags = 0;
		memcpy(a->data, big, sizeof(big));
		a = fn_ring_rep_slot(&r, r.rep_head + 2);
		a->seq = q0->seq;
		a->len = 4;
		a->flags = 0;
		memcpy(a->data, "pong", 4);
		fn_ring_rep_publish(&r, 3);
		fn_ring_cons_release(&r, 2);
	}
	n = ops->poll(fn, out, 8, 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	{
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(out[0], struct rte_ether_hdr *);
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
		struct rte_udp_hdr *u = (struct rte_udp_hdr *)(ip + 1);

		CU_ASSERT_EQUAL(out[0]->port, 1);
		CU_ASSERT_EQUAL(eth->dst_addr.addr_bytes[1], 0xaa);
		CU_ASSERT_EQUAL(eth->src_addr.addr_bytes[1], 0xbb);
		CU_ASSERT_EQUAL(ip->src_addr, htonl(0x0a000002));
		CU_ASSERT_EQUAL(ip->dst_addr, htonl(0x0a000001));
		CU_ASSERT_EQUAL(u->src_port, htons(7));
		CU_ASSERT_EQUAL(u->dst_port, htons(4242));
		CU_ASSERT_EQUAL(ntohs(u->dgram_len), 12);
		CU_ASSERT_EQUAL(memcmp(u + 1, "pong", 4), 0);
		CU_ASSERT_EQUAL(out[0]->pkt_len, 14 + 20 + 8 + 4);
		CU_ASSERT_EQUAL(rte_ipv4_udptcp_cksum_verify(ip, u), 0);
		{
			uint16_t sum = ip->hdr_checksum;

			ip->hdr_checksum = 0;
			CU_ASSERT_EQUAL(rte_ipv4_cksum(ip), sum);
			ip->hdr_checksum = sum;
		}
	}
	rte_pktmbuf_free(out[0]);
	CU_ASSERT_EQUAL(ops->poll(fn, out, 8, 0), 0);
	fn_ring_close(&r);
	close(lease);
	t_destroy(fn);
}

/* The lease ends with requests in the ring: the next poll resets it, a new consumer starts clean. */
static void test_lease_end_resets(void)
{
	void *fn = t_create("{\"functions\":[{\"name\":\"x\",\"slots\":16}],"
			    "\"rules\":[{\"proto\":\"udp\",\"function\":\"x\"}]}");
	const struct nf_module_ops *ops = nf_module_find("fn");
	uint64_t drops[NF_DROP_REASONS] = {0};
	struct rte_mbuf *pkts[5], *out[4];
	struct fn_ring r, r2;
	char err[256], list[256];
	int lease, lease2, rc = -EAGAIN;

	/* what nemod checks a packet trigger against: the rings, and whether they are taken */
	CU_ASSERT_EQUAL(fn_lease_describe(t_sock, list, sizeof(list), err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(list, "x@0");
	t_lease("x", &r, &lease);
	CU_ASSERT_EQUAL(fn_lease_describe(t_sock, list, sizeof(list), err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(list, "x@0*");
	CU_ASSERT_EQUAL(fn_lease_acquire(t_sock, "x", FN_LEASE_ANY, &r2, &lease2, err, sizeof(err)),
			-EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "already has a consumer"));
	CU_ASSERT_EQUAL(
		fn_lease_acquire(t_sock, "nope", FN_LEASE_ANY, &r2, &lease2, err, sizeof(err)),
		-ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no ring for function 'nope'"));
	for (int i = 0; i < 5; i++)
		pkts[i] = t_pkt(IPPROTO_UDP, 1, 2, "r", 0);
	CU_ASSERT_EQUAL(t_process(fn, pkts, 5, drops), 0);
	CU_ASSERT_EQUAL(fn_ring_cons_avail(&r), 5);
	fn_ring_close(&r);
	close(lease);
	/* the lcore resets at its next iteration; until then a new lease must wait */
	for (int i = 0; i < 100 && rc == -EAGAIN; i++) {
		ops->poll(fn, out, 4, 0);
		rc = fn_lease_acquire(t_sock, "x", FN_LEASE_ANY, &r2, &lease2, err, sizeof(err));
		if (rc == -EAGAIN)
			usleep(20000);
	}
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(r2.sh->epoch.v, 1);
	CU_ASSERT_EQUAL(fn_ring_cons_avail(&r2), 0); /* the 5 were dropped with the old consumer */
	pkts[0] = t_pkt(IPPROTO_UDP, 1, 2, "after", 0);
	CU_ASSERT_EQUAL(t_process(fn, pkts, 1, drops), 0);
	CU_ASSERT_EQUAL(fn_ring_cons_avail(&r2), 1);
	fn_ring_close(&r2);
	close(lease2);
	t_destroy(fn);
}

static void test_config_errors(void)
{
	static const struct {
		const char *json, *want;
	} bad[] = {
		{"{\"functions\":[{\"name\":\"a\"}],\"rules\":[{\"proto\":\"udp\",\"function\":"
		 "\"b\"}]}",
		 "no function 'b' among this module's functions (a)"},
		{"{\"functions\":[{\"name\":\"a\"}],\"rules\":[{\"proto\":\"tcp\",\"function\":"
		 "\"a\"}]}",
		 "payload 'udp' needs"},
		{"{\"functions\":[{\"name\":\"a\"}],\"rules\":[{\"proto\":\"tcp\",\"payload\":"
		 "\"frame\",\"reply\":true,\"function\":\"a\"}]}",
		 "replies go back as UDP"},
		{"{\"functions\":[{\"name\":\"a\",\"slots\":100}],\"rules\":[{\"proto\":\"udp\","
		 "\"function\":\"a\"}]}",
		 "powers of two"},
		{"{\"functions\":[{\"name\":\"a\"},{\"name\":\"a\"}],\"rules\":[{\"proto\":\"udp\","
		 "\"function\":\"a\"}]}",
		 "listed twice"},
		{"{\"functions\":[{\"name\":\"a\"}],\"rules\":[{\"proto\":\"udp\",\"function\":"
		 "\"a\",\"on_full\":\"wait\"}]}",
		 "on_full"},
	};
	struct nf_module_env env = {.nb_ports = 1, .pool = t_pool, .consumed_pkts = &t_consumed};

	snprintf(t_sock, sizeof(t_sock), "/tmp/nemo-nffn-%d.sock", getpid());
	env.fn_hub = nf_fn_hub_create(t_sock);
	CU_ASSERT_PTR_NOT_NULL_FATAL(env.fn_hub);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cfg_ctx ctx = {.file = "t.json", .quiet = true};
		cJSON *cfg = cJSON_Parse(bad[i].json);
		void *inst = nf_module_find("fn")->create(&ctx, "chain[0]", cfg, &env);

		CU_ASSERT_PTR_NULL(inst);
		if (!strstr(ctx.err, bad[i].want))
			printf("\n  %s: %s\n", bad[i].want, ctx.err);
		CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, bad[i].want));
		cJSON_Delete(cfg);
	}
	nf_fn_hub_destroy(env.fn_hub);
}

NEMO_SUITE(nf_fn, t_setup, NULL, {"rules, prefilter, stop and frames", test_rules_and_prefilter},
	   {"full ring: drop or pass", test_full_drop_or_pass},
	   {"replies swapped, checksummed, once", test_replies},
	   {"a lease's end resets the ring", test_lease_end_resets},
	   {"config errors name the key", test_config_errors});
