/*
 * fuzz_pkt.c - frames of any bytes, in one to three segments, through nf_pkt_validate(): it
 * keeps or drops each, and what it keeps lies within the bytes that are there.
 */
#include <ftw.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "fuzz.h"
#include "nemo/nf_module.h"
#include "nf_internal.h"

static struct rte_mempool *pool;
static char runtime_dir[256];

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void eal_cleanup(void)
{
	rte_eal_cleanup();
	if (runtime_dir[0])
		nftw(runtime_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char prefix[64], lcores[16];
	char *eal_argv[] = {
		"fuzz-pkt",	 "--no-huge",	   "-m", "64",	 "--no-shconf",
		"--no-pci",	 "--no-telemetry", "-l", lcores, "--log-level=error",
		"--file-prefix", prefix,	   NULL,
	};
	cpu_set_t cpus;
	int cpu = 0;

	(void)argc;
	(void)argv;
	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0)
		while (cpu < CPU_SETSIZE - 1 && !CPU_ISSET(cpu, &cpus))
			cpu++;
	snprintf(lcores, sizeof(lcores), "%d", cpu);
	snprintf(prefix, sizeof(prefix), "nemo-fuzz-%d", (int)getpid());
	if (rte_eal_init((int)(sizeof(eal_argv) / sizeof(eal_argv[0])) - 1, eal_argv) < 0) {
		fprintf(stderr, "fuzz-pkt: rte_eal_init: %s\n", rte_strerror(rte_errno));
		exit(1);
	}
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	atexit(eal_cleanup);
	pool = rte_pktmbuf_pool_create("fuzz_pkt", 63, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				       SOCKET_ID_ANY);
	if (!pool) {
		fprintf(stderr, "fuzz-pkt: mbuf pool: %s\n", rte_strerror(rte_errno));
		exit(1);
	}
	return 0;
}

/* A frame of `len` bytes from `data`, cut where `cuts` say (one to three segments). */
static struct rte_mbuf *build(const uint8_t *data, size_t len, const uint8_t cuts[3])
{
	size_t nseg = 1 + cuts[0] % 3, off = 0;
	struct rte_mbuf *head = NULL;

	for (size_t s = 0; s < nseg; s++) {
		size_t piece = s + 1 == nseg ? len - off : RTE_MIN(len - off, (size_t)cuts[1 + s]);
		struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
		char *dst;

		FUZZ_ASSERT(m);
		dst = rte_pktmbuf_append(m, (uint16_t)piece);
		FUZZ_ASSERT(dst || !piece);
		if (piece)
			memcpy(dst, data + off, piece);
		off += piece;
		if (!head)
			head = m;
		else
			FUZZ_ASSERT(rte_pktmbuf_chain(head, m) == 0);
	}
	return head;
}

/* What the modules may rely on for a packet nf_pkt_validate() kept (nf_module.h). */
static void check_kept(struct rte_mbuf *m)
{
	uint32_t avail = m->data_len, l4 = nf_pkt_l4_type(m);
	const struct rte_ipv4_hdr *ip;
	struct nf_flow_key key;
	uint32_t total;

	FUZZ_ASSERT(m->l2_len == 14 || m->l2_len == 18);
	FUZZ_ASSERT(m->l2_len <= avail);
	if (!nf_pkt_is_ipv4(m))
		return;
	ip = nf_pkt_ipv4(m);
	total = rte_be_to_cpu_16(ip->total_length);
	FUZZ_ASSERT(m->l3_len >= 20 && m->l3_len <= 60);
	FUZZ_ASSERT(m->l2_len + m->l3_len <= avail);
	FUZZ_ASSERT(total >= m->l3_len && total <= m->pkt_len - m->l2_len);
	if (l4 == RTE_PTYPE_L4_TCP || l4 == RTE_PTYPE_L4_UDP || l4 == RTE_PTYPE_L4_ICMP) {
		FUZZ_ASSERT(m->l4_len >= 8);
		FUZZ_ASSERT(m->l2_len + m->l3_len + m->l4_len <= avail);
		FUZZ_ASSERT(m->l3_len + m->l4_len <= total);
	}
	if (l4 == RTE_PTYPE_L4_UDP) {
		const struct rte_udp_hdr *udp = nf_pkt_l4(m);

		FUZZ_ASSERT(rte_be_to_cpu_16(udp->dgram_len) <= total - m->l3_len);
	}
	nf_flow_key_from_pkt(m, &key);
}

/* Input: three bytes that cut the frame into segments, then the frame. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t drops[NF_DROP_REASONS] = {0}, dropped = 0;
	struct rte_mbuf *m;
	uint16_t kept;

	if (size < 3 || size - 3 > 1900) /* one buffer holds what a segment holds */
		return 0;
	m = build(data + 3, size - 3, data);
	kept = nf_pkt_validate(&m, 1, drops);
	for (int i = 0; i < NF_DROP_REASONS; i++)
		dropped += drops[i];
	FUZZ_ASSERT(kept + dropped == 1);
	if (kept) {
		check_kept(m);
		rte_pktmbuf_free(m);
	}
	FUZZ_ASSERT(rte_mempool_avail_count(pool) == 63); /* nothing leaked or freed twice */
	return 0;
}
