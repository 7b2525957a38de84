/* bench_packet_cost.c - what the fn module costs per packet when no rule matches, in cycles. */
#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "nemo/nf_module.h"

/*
 * Runs bursts of 32 64-byte UDP frames (64 flows, to port 9000) through three chains on one
 * core, in-process, and prints the cycles per packet of each: fwd; fn (its rules match port
 * 7 only) then fwd; acl (denying port 7) then fwd, the reference for a module that classifies
 * every packet. Many short trials, interleaved; the minimum and the median are printed, so
 * other work on a shared host shows as spread, not as cost.
 */

#define BURST  32
#define TRIALS 41
#define ROUNDS 20000

static struct rte_mempool *pool;
static uint64_t consumed;

static void *mk(const char *name, const char *json, struct nf_fn_hub *hub)
{
	struct cfg_ctx ctx = {.file = "bench"};
	struct nf_module_env env = {.nb_ports = 1,
				    .pool = pool,
				    .consumed_pkts = &consumed,
				    .fn_hub = hub,
				    .socket_id = rte_socket_id()};
	cJSON *cfg = cJSON_Parse(json);
	void *inst = nf_module_find(name)->create(&ctx, "chain[0]", cfg, &env);

	cJSON_Delete(cfg);
	if (!inst) {
		fprintf(stderr, "bench_packet_cost: %s: %s\n", name, ctx.err);
		exit(1);
	}
	return inst;
}

static void burst_build(struct rte_mbuf **pkts)
{
	uint64_t drops[NF_DROP_REASONS] = {0};

	for (int i = 0; i < BURST; i++) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
		uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, 64);
		struct rte_ether_hdr *eth = (struct rte_ether_hdr *)p;
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
		struct rte_udp_hdr *u = (struct rte_udp_hdr *)(ip + 1);

		memset(p, 0, 64);
		eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
		ip->version_ihl = RTE_IPV4_VHL_DEF;
		ip->total_length = rte_cpu_to_be_16(50);
		ip->time_to_live = 64;
		ip->next_proto_id = IPPROTO_UDP;
		ip->src_addr = htonl(0x0a000001 + (uint32_t)i / 4);
		ip->dst_addr = htonl(0x0a010001);
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		u->src_port = htons((uint16_t)(1024 + i));
		u->dst_port = htons(9000);
		u->dgram_len = htons(30);
		m->port = 0;
		pkts[i] = m;
	}
	if (nf_pkt_validate(pkts, BURST, drops) != BURST) {
		fprintf(stderr, "bench_packet_cost: the frames do not validate\n");
		exit(1);
	}
}

/* Cycles per packet of one trial of `chain`. */
static double trial(const struct nf_module_ops **ops, void **inst, int len, struct rte_mbuf **pkts)
{
	uint64_t drops[NF_DROP_REASONS] = {0}, t0 = rte_rdtsc_precise();

	for (int r = 0; r < ROUNDS; r++) {
		uint16_t n = BURST;

		for (int m = 0; m < len && n; m++)
			n = ops[m]->process(inst[m], pkts, n, 0, drops);
		if (n != BURST) {
			fprintf(stderr, "bench_packet_cost: a chain kept %u of %d\n", n, BURST);
			exit(1);
		}
	}
	return (double)(rte_rdtsc_precise() - t0) / ROUNDS / BURST;
}

/* The EAL leaves its runtime folder (a file or two in it) even with --no-shconf. */
static void remove_runtime_dir(const char *prefix)
{
	char dir[128], path[400];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/var/run/dpdk/%s", prefix);
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	char prefix[64], sock[96], cpu[16];
	char *eal[] = {argv[0],
		       "--no-huge",
		       "-m",
		       "256",
		       "--no-pci",
		       "--no-shconf",
		       "-l",
		       cpu,
		       "--file-prefix",
		       prefix,
		       "--no-telemetry",
		       "--log-level=lib.eal:warning"};
	const struct nf_module_ops *fwd = nf_module_find("fwd"), *fn = nf_module_find("fn"),
				   *acl = nf_module_find("acl");
	static const char *const names[3] = {"fwd", "fn (no match) > fwd", "acl (no match) > fwd"};
	double res[3][TRIALS];
	struct rte_mbuf *pkts[BURST];
	struct nf_fn_hub *hub;
	void *fwd_i, *fn_i, *acl_i;

	snprintf(cpu, sizeof(cpu), "%s", argc > 1 ? argv[1] : "1");
	snprintf(prefix, sizeof(prefix), "nemo-bench-pkt-%d", getpid());
	snprintf(sock, sizeof(sock), "/tmp/nemo-bench-pkt-%d.sock", getpid());
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])), eal) < 0) {
		fprintf(stderr, "bench_packet_cost: EAL init failed\n");
		return 1;
	}
	pool = rte_pktmbuf_pool_create("bench", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				       (int)rte_socket_id());
	hub = nf_fn_hub_create(sock);
	if (!pool || !hub)
		return 1;
	fwd_i = mk("fwd", "{}", hub);
	fn_i = mk("fn",
		  "{\"functions\":[{\"name\":\"echo\"}],\"rules\":[{\"proto\":\"udp\",\"dport\":7,"
		  "\"function\":\"echo\",\"reply\":true}]}",
		  hub);
	acl_i = mk("acl", "{\"rules\":[{\"proto\":\"udp\",\"dport\":7,\"action\":\"deny\"}]}", hub);
	burst_build(pkts);
	for (int t = 0; t < TRIALS; t++) {
		const struct nf_module_ops *a[1] = {fwd}, *b[2] = {fn, fwd}, *c[2] = {acl, fwd};
		void *ai[1] = {fwd_i}, *bi[2] = {fn_i, fwd_i}, *ci[2] = {acl_i, fwd_i};

		res[0][t] = trial(a, ai, 1, pkts);
		res[1][t] = trial(b, bi, 2, pkts);
		res[2][t] = trial(c, ci, 2, pkts);
	}
	printf("cycles per packet, %d trials of %d bursts of %d, TSC %.2f GHz, cpu %s:\n", TRIALS,
	       ROUNDS, BURST, (double)rte_get_tsc_hz() / 1e9, cpu);
	for (int i = 0; i < 3; i++)
		qsort(res[i], TRIALS, sizeof(double), cmp);
	for (int i = 0; i < 3; i++)
		printf("  %-22s min %6.1f  median %6.1f  (+%.1f cycles, %.2f ns over fwd, at the "
		       "median)\n",
		       names[i], res[i][0], res[i][TRIALS / 2],
		       res[i][TRIALS / 2] - res[0][TRIALS / 2],
		       (res[i][TRIALS / 2] - res[0][TRIALS / 2]) * 1e9 / (double)rte_get_tsc_hz());
	rte_pktmbuf_free_bulk(pkts, BURST);
	nf_fn_hub_destroy(hub); /* it holds the fn module's rings: before the module */
	fn->destroy(fn_i);
	acl->destroy(acl_i);
	fwd->destroy(fwd_i);
	rte_eal_cleanup();
	remove_runtime_dir(prefix);
	return 0;
}
