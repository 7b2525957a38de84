/* test_packet_nf.c - packet-triggered functions for real: nemo-nf's fn module, nemo-pktfn, nemo-gen. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <pcap/pcap.h>

#include "nemo/fn_ring.h"
#include "nemo/nf_module.h"
#include "proc.h"
#include "test.h"

static char fn_bin[512], fn_dir[512];
static int run_id;

/* Every name this suite makes starts with nemo-pk-<pid>, so teardown finds all of it. */
static void names(char *name, size_t nlen, char *prefix, size_t plen)
{
	snprintf(name, nlen, "pk%d-%d", getpid(), ++run_id);
	snprintf(prefix, plen, "/tmp/nemo-pk-%d-%d", getpid(), run_id);
}

static int suite_setup(void)
{
	char nf_bin[512], gen_bin[512];

	snprintf(nf_bin, sizeof(nf_bin), "%s/nemo-nf", nemo_test_bindir());
	snprintf(gen_bin, sizeof(gen_bin), "%s/nemo-gen", nemo_test_bindir());
	snprintf(fn_bin, sizeof(fn_bin), "%s/nemo-pktfn", nemo_test_bindir());
	snprintf(fn_dir, sizeof(fn_dir), "%s/../functions", nemo_test_bindir());
	return access(nf_bin, X_OK) || access(gen_bin, X_OK) || access(fn_bin, X_OK);
}

static int suite_teardown(void)
{
	test_cleanup_runs("pk");
	return 0;
}

/* A one-lcore NF: `port` as the port object, the chain `fn` (a module object) then fwd. */
static void write_config(char *path, size_t len, const char *prefix, const char *name,
			 const char *port, const char *fn)
{
	char text[4096];

	snprintf(path, len, "%s.json", prefix);
	snprintf(
		text, sizeof(text),
		"{\"name\":\"%s\",\"stats_interval_ms\":0,\"memory_mb\":256,"
		"\"fn_socket\":\"%s.fn\",\"ports\":[%s],"
		"\"lcores\":[{\"lcore\":1,\"cpu\":1,\"rx\":[{\"port\":0}],\"chain\":[%s,\"fwd\"]}]}",
		name, prefix, port, fn);
	CU_ASSERT_EQUAL_FATAL(test_write_text(path, text), 0);
}

/*
 * Start an NF for `duration` on a memif port (its socket <prefix>.memif, where gen_run()
 * sends) with the chain `fnmod` then fwd. Returns like test_nf_start().
 */
static int memif_nf_start(struct test_proc *nf, const char *prefix, const char *name,
			  const char *fnmod, const char *duration)
{
	char sock[160], port[256], cfg[128];

	snprintf(sock, sizeof(sock), "%s.memif", prefix);
	test_memif_port(port, sizeof(port), sock);
	write_config(cfg, sizeof(cfg), prefix, name, port, fnmod);
	return test_nf_start(nf, cfg, duration);
}

/* Wait for the NF's lease server (it starts once the chains are built). */
static bool wait_fn_socket(struct test_proc *nf, const char *prefix)
{
	char path[160];

	snprintf(path, sizeof(path), "%s.fn", prefix);
	for (int i = 0; i < 1500; i++) {
		if (test_proc_wait(nf, 0) != -ETIMEDOUT)
			return false;
		if (access(path, F_OK) == 0 && strstr(test_proc_output(nf), "leased on"))
			return true;
		test_msleep(10);
	}
	return false;
}

static int fn_start(struct test_proc *p, const char *prefix, const char *function, const char *so,
		    const char *duration)
{
	char sock[160], code[600];
	char *argv[] = {fn_bin,	  "--socket", sock,	    "--function",     (char *)function,
			"--code", code,	      "--duration", (char *)duration, NULL};

	snprintf(sock, sizeof(sock), "%s.fn", prefix);
	snprintf(code, sizeof(code), "%s/%s.so", fn_dir, so);
	return test_proc_start(p, argv);
}

/*
 * Run an NF for 3 s on a pcap port (`in` to `out`) with the chain `fnmod` then fwd, and the
 * function `function` (code `so`) fed by it; both have stopped, each asserted clean, on return.
 */
static void pcap_run(struct test_proc *nf, struct test_proc *fn, const char *prefix,
		     const char *name, const char *in, const char *out, const char *fnmod,
		     const char *function, const char *so)
{
	char port[512], cfg[128];

	snprintf(port, sizeof(port), "{\"vdev\":\"net_pcap0,rx_pcap=%s,tx_pcap=%s\"}", in, out);
	write_config(cfg, sizeof(cfg), prefix, name, port, fnmod);
	CU_ASSERT_EQUAL_FATAL(test_nf_start(nf, cfg, "3"), 0);
	CU_ASSERT_FATAL(wait_fn_socket(nf, prefix));
	/* the packets wait in the ring until the function's host takes it */
	CU_ASSERT_EQUAL_FATAL(fn_start(fn, prefix, function, so, "30"), 0);
	CU_ASSERT_EQUAL(test_proc_wait(nf, 20000), 0);
	CU_ASSERT_EQUAL(test_proc_stop(fn, 5000), 0);
}

/* Wait until the NF says a consumer holds the ring (n-th lease). */
static bool wait_leased(struct test_proc *nf, int n)
{
	for (int i = 0; i < 500; i++) {
		const char *out = test_proc_output(nf);
		int seen = 0;

		for (const char *p = out; (p = strstr(p, "leased to a consumer")); p++)
			seen++;
		if (seen >= n)
			return true;
		test_msleep(10);
	}
	return false;
}

/*
 * Run nemo-gen to the end; its JSON summary (caller frees). `patient`: no ring warm-up burst
 * and a 3 s drain, so that replies a loaded host delays still count as replies.
 */
static cJSON *gen_run(const char *prefix, const char *rate, const char *duration, bool patient)
{
	static const char *const patience[] = {"--no-warm", "--drain-ms", "3000", NULL};
	char json[160], sock[160];
	struct test_proc g;

	snprintf(json, sizeof(json), "%s-gen.json", prefix);
	snprintf(sock, sizeof(sock), "%s.memif", prefix);
	CU_ASSERT_EQUAL_FATAL(
		test_gen_start(&g, json, sock, rate, duration, patient ? patience : NULL), 0);
	return test_gen_finish(&g, json);
}

/* The number just before `key` in text ("17 packets,"), or -1. */
static long long num_before(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	if (!p)
		return -1;
	while (p > text && p[-1] >= '0' && p[-1] <= '9')
		p--;
	return atoll(p);
}

/* ---- pcaps of UDP datagrams ---- */

struct t_dgram {
	const char *src;
	uint16_t sport;
	uint16_t dport;
	const char *payload;
};

/* Append well-formed Ethernet/IPv4/UDP frames (to 10.9.0.1) to an open dumper. */
static void pcap_put(pcap_dumper_t *d, const struct t_dgram *g, int n)
{
	for (int i = 0; i < n; i++) {
		uint8_t f[1600] = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00};
		size_t plen = strlen(g[i].payload), len = 42 + plen;
		struct pcap_pkthdr h = {.caplen = (bpf_u_int32)(len < 60 ? 60 : len)};
		uint8_t *ip = f + 14, *udp = ip + 20;
		struct in_addr a;
		uint16_t c;

		h.len = h.caplen;
		ip[0] = 0x45;
		ip[2] = (uint8_t)((20 + 8 + plen) >> 8);
		ip[3] = (uint8_t)(20 + 8 + plen);
		ip[8] = 64;
		ip[9] = IPPROTO_UDP;
		inet_pton(AF_INET, g[i].src, &a);
		memcpy(ip + 12, &a, 4);
		inet_pton(AF_INET, "10.9.0.1", &a);
		memcpy(ip + 16, &a, 4);
		c = (uint16_t)~test_inet_sum(ip, 20, 0);
		ip[10] = (uint8_t)(c >> 8);
		ip[11] = (uint8_t)c;
		udp[0] = (uint8_t)(g[i].sport >> 8);
		udp[1] = (uint8_t)g[i].sport;
		udp[2] = (uint8_t)(g[i].dport >> 8);
		udp[3] = (uint8_t)g[i].dport;
		udp[4] = (uint8_t)((8 + plen) >> 8);
		udp[5] = (uint8_t)(8 + plen);
		memcpy(udp + 8, g[i].payload, plen);
		pcap_dump((u_char *)d, &h, f);
	}
}

static int pcap_write(const char *path, const struct t_dgram *g, int n)
{
	pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
	pcap_dumper_t *d = p ? pcap_dump_open(p, path) : NULL;

	if (!d) {
		if (p)
			pcap_close(p);
		return -EIO;
	}
	pcap_put(d, g, n);
	pcap_dump_close(d);
	pcap_close(p);
	return 0;
}

/* The UDP replies in a pcap: "sport>dport dst payload" lines, concatenated into out. */
static int pcap_replies(const char *path, uint16_t from_port, char *out, size_t len)
{
	char err[PCAP_ERRBUF_SIZE], dst[INET_ADDRSTRLEN];
	struct pcap_pkthdr *h;
	const u_char *d;
	pcap_t *p = pcap_open_offline(path, err);
	int n = 0;

	out[0] = '\0';
	if (!p)
		return -1;
	while (pcap_next_ex(p, &h, &d) == 1) {
		uint16_t sport, dport, ulen;

		if (h->caplen < 42 || d[12] != 0x08 || d[13] != 0x00 || d[23] != IPPROTO_UDP)
			continue;
		sport = (uint16_t)(d[34] << 8 | d[35]);
		dport = (uint16_t)(d[36] << 8 | d[37]);
		ulen = (uint16_t)(d[38] << 8 | d[39]);
		if (sport != from_port || ulen < 8 || 34u + ulen > h->caplen)
			continue;
		/* the checksum of a reply the NF built must hold (0 when summed with it) */
		inet_ntop(AF_INET, d + 30, dst, sizeof(dst));
		snprintf(out + strlen(out), len - strlen(out), "%u>%u %s %.*s\n", sport, dport, dst,
			 (int)(ulen - 8), (const char *)d + 42);
		n++;
	}
	pcap_close(p);
	return n;
}

/* ---- tests ---- */

/* nemo-gen -> NF -> ring -> echo function -> ring -> NF -> nemo-gen, stamps intact. */
static void test_echo_over_memif(void)
{
	char name[32], prefix[96];
	struct test_proc nf, fn;
	const char *fnmod = "{\"module\":\"fn\",\"functions\":[{\"name\":\"echo\",\"slots\":8192}],"
			    "\"rules\":[{\"proto\":\"udp\",\"dport\":9000,\"function\":\"echo\","
			    "\"reply\":true}]}";
	cJSON *res;
	double sent, recv, p50;
	long long replied, handed;

	names(name, sizeof(name), prefix, sizeof(prefix));
	CU_ASSERT_EQUAL_FATAL(memif_nf_start(&nf, prefix, name, fnmod, "0"), 0);
	CU_ASSERT_FATAL(wait_fn_socket(&nf, prefix));
	CU_ASSERT_EQUAL_FATAL(fn_start(&fn, prefix, "echo", "pkt-echo", "30"), 0);
	CU_ASSERT_FATAL(wait_leased(&nf, 1));
	res = gen_run(prefix, "20k", "2", true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	sent = test_json_num(res, "sent");
	recv = test_json_num(res, "received");
	p50 = test_json_num(res, "lat_p50_us");
	printf("\n  echo: sent %.0f, echoed back %.0f (%.2f %%), p50 %.1f us, p99 %.1f us\n", sent,
	       recv, sent > 0 ? 100.0 * recv / sent : 0, p50, test_json_num(res, "lat_p99_us"));
	/* the reply carries the request's stamp: nemo-gen matched it to its send time */
	CU_ASSERT(sent >
		  10000); /* a loaded host may hold the generator back; what came back counts */
	CU_ASSERT(recv >= 0.95 * sent);
	CU_ASSERT(p50 > 0);
	/* and each one came back as a reply: from port 9000 to the sender's port */
	CU_ASSERT_EQUAL(test_json_num(res, "replies"), recv);
	cJSON_Delete(res);
	{
		/* the module's counters in /nemo/module, the function's under its name */
		char out[8192];

		CU_ASSERT_EQUAL_FATAL(test_nf_telemetry(name, "/nemo/module,1,0", out, sizeof(out)),
				      0);
		if (!strstr(out, "\"echo\": {\"leased\": 1"))
			printf("\n  dpdk-telemetry.py said:\n%s\n", out);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"module\": \"fn\""));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"matched\": "));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"replied\": "));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"echo\": {\"leased\": 1"));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"batches\": "));
	}
	CU_ASSERT_EQUAL(test_proc_stop(&fn, 5000), 0);
	CU_ASSERT(test_proc_output_has(&fn, "replies"));
	CU_ASSERT_EQUAL(test_proc_stop(&nf, 10000), 0);
	handed = test_find_count(test_proc_output(&nf), "function 'echo'", "handed");
	replied = test_find_count(test_proc_output(&nf), "function 'echo'", "replied");
	printf("  NF: handed %lld, replied %lld\n", handed, replied);
	CU_ASSERT(replied >= (long long)recv);
	CU_ASSERT(handed >= replied);
}

/* Malformed packets never reach the function; BIG replies are dropped and counted. */
static void test_pcap_malformed_and_big(void)
{
	char name[32], prefix[96], in[128], in2[128], outp[128];
	char replies[16384];
	unsigned int nb_good = 0, expected[NF_DROP_REASONS] = {0};
	const struct t_dgram extra[] = {
		{"10.0.0.5", 4000, 7, "hello 1"}, {"10.0.0.5", 4000, 7, "hello 2"},
		{"10.0.0.5", 4000, 7, "BIG"},	  {"10.0.0.6", 4001, 7, "BIG please"},
		{"10.0.0.6", 4001, 7, "hello 3"},
	};
	const char *fnmod =
		"{\"module\":\"fn\",\"functions\":[{\"name\":\"t\",\"slot_size\":8192}],"
		"\"rules\":[{\"proto\":\"udp\",\"dport\":53,\"function\":\"t\",\"reply\":true},"
		"{\"proto\":\"udp\",\"dport\":7,\"function\":\"t\",\"reply\":true}]}";
	struct test_proc nf, fn;
	const char *out;
	int n;

	names(name, sizeof(name), prefix, sizeof(prefix));
	snprintf(in, sizeof(in), "%s-in.pcap", prefix);
	snprintf(in2, sizeof(in2), "%s-in2.pcap", prefix);
	snprintf(outp, sizeof(outp), "%s-out.pcap", prefix);
	CU_ASSERT_EQUAL_FATAL(nemo_test_write_malformed_pcap(in, &nb_good, expected), 0);
	{
		/* the malformed set, then the extra datagrams */
		char err[PCAP_ERRBUF_SIZE];
		pcap_t *r = pcap_open_offline(in, err);
		pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
		pcap_dumper_t *d = pcap_dump_open(p, in2);
		struct pcap_pkthdr *h;
		const u_char *data;

		CU_ASSERT_FATAL(r && d);
		while (pcap_next_ex(r, &h, &data) == 1)
			pcap_dump((u_char *)d, h, data);
		pcap_put(d, extra, (int)(sizeof(extra) / sizeof(extra[0])));
		pcap_dump_close(d);
		pcap_close(p);
		pcap_close(r);
	}
	pcap_run(&nf, &fn, prefix, name, in2, outp, fnmod, "t", "test-pkt-crash");
	out = test_proc_output(&nf);
	/* every malformed kind dropped by validation, before the chain */
	for (int r = 0; r < NF_DROP_REASONS; r++)
		if (expected[r])
			CU_ASSERT_EQUAL(test_find_count(out, "drops:", nf_drop_reason_names[r]),
					(long long)expected[r]);
	CU_ASSERT_EQUAL(test_find_count(out, "fn on lcore 1:", "matched"), (long long)nb_good + 5);
	CU_ASSERT_EQUAL(test_find_count(out, "function 't'", "handed"), (long long)nb_good + 5);
	CU_ASSERT_EQUAL(test_find_count(out, "function 't'", "reply_too_big"), 2);
	CU_ASSERT_EQUAL(test_find_count(out, "function 't'", "replied"), (long long)nb_good + 3);
	/* the function saw exactly the good ones */
	CU_ASSERT_EQUAL(num_before(test_proc_output(&fn), " packets,"), (long long)nb_good + 5);
	n = pcap_replies(outp, 53, replies, sizeof(replies));
	CU_ASSERT_EQUAL(n, (int)nb_good);
	/* swapped: from port 53 back to the sender's port, to the sender's address */
	CU_ASSERT_PTR_NOT_NULL(strstr(replies, "53>1000 10.0.0.1"));
	n = pcap_replies(outp, 7, replies, sizeof(replies));
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_PTR_NOT_NULL(strstr(replies, "7>4000 10.0.0.5 hello 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(replies, "7>4001 10.0.0.6 hello 3\n"));
	CU_ASSERT_PTR_NULL(strstr(replies, "BIG"));
	if (n != 3)
		printf("\n  replies from port 7:\n%s\n", replies);
}

/* The sample sensor aggregator answers each reading with its source's summary. */
static void test_sensor_aggregates(void)
{
	char name[32], prefix[96], in[128], outp[128], replies[8192];
	const struct t_dgram readings[] = {
		{"10.0.0.7", 5683, 5683, "temp 21.0"}, {"10.0.0.8", 5683, 5683, "3"},
		{"10.0.0.7", 5683, 5683, "temp 23.0"}, {"10.0.0.7", 5683, 5683, "temp 22.0"},
		{"10.0.0.8", 5683, 5683, "5"},	       {"10.0.0.8", 5683, 5683, "no number"},
	};
	const char *fnmod = "{\"module\":\"fn\",\"functions\":[{\"name\":\"sensor\"}],"
			    "\"rules\":[{\"proto\":\"udp\",\"dport\":5683,\"function\":\"sensor\","
			    "\"reply\":true}]}";
	struct test_proc nf, fn;

	names(name, sizeof(name), prefix, sizeof(prefix));
	snprintf(in, sizeof(in), "%s-in.pcap", prefix);
	snprintf(outp, sizeof(outp), "%s-out.pcap", prefix);
	CU_ASSERT_EQUAL_FATAL(pcap_write(in, readings, 6), 0);
	pcap_run(&nf, &fn, prefix, name, in, outp, fnmod, "sensor", "pkt-sensor");
	CU_ASSERT_EQUAL(pcap_replies(outp, 5683, replies, sizeof(replies)), 6);
	printf("\n%s", replies);
	CU_ASSERT_PTR_NOT_NULL(
		strstr(replies, "10.0.0.7 10.0.0.7:5683 n=3 mean=22.00 min=21.00 max=23.00\n"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(replies, "10.0.0.8 10.0.0.8:5683 n=2 mean=4.00 min=3.00 max=5.00\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(replies, "10.0.0.8:5683 bad reading\n"));
}

/*
 * A consumer that stops: its ring fills, the NF drops what does not fit (fn_full) and goes
 * on at full speed: its rx ring never overflows, and what the rule lets go on is forwarded.
 */
static void test_stopped_consumer(void)
{
	char name[32], prefix[96];
	const char *fnmod = "{\"module\":\"fn\",\"functions\":[{\"name\":\"echo\",\"slots\":64}],"
			    "\"rules\":[{\"proto\":\"udp\",\"dport\":9000,\"function\":\"echo\","
			    "\"next\":\"continue\"}]}";
	struct test_proc nf, fn;
	long long rx, full, handed, imissed;
	const char *out;
	cJSON *res;
	double sent, recv;

	names(name, sizeof(name), prefix, sizeof(prefix));
	CU_ASSERT_EQUAL_FATAL(memif_nf_start(&nf, prefix, name, fnmod, "0"), 0);
	CU_ASSERT_FATAL(wait_fn_socket(&nf, prefix));
	CU_ASSERT_EQUAL_FATAL(fn_start(&fn, prefix, "echo", "pkt-echo", "60"), 0);
	CU_ASSERT_FATAL(wait_leased(&nf, 1));
	kill(fn.pid, SIGSTOP);
	res = gen_run(prefix, "200k", "2", false);
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	sent = test_json_num(res, "sent");
	recv = test_json_num(res, "received");
	kill(fn.pid, SIGCONT);
	CU_ASSERT_EQUAL(test_proc_stop(&fn, 5000), 0);
	CU_ASSERT_EQUAL(test_proc_stop(&nf, 10000), 0);
	out = test_proc_output(&nf);
	rx = test_find_count(out, "summary", "rx");
	full = test_find_count(out, "drops:", "fn_full");
	handed = test_find_count(out, "function 'echo'", "handed");
	imissed = test_find_count(out, "port 0", "imissed");
	printf("\n  stopped consumer: sent %.0f, forwarded %.0f; NF rx %lld, handed %lld, fn_full "
	       "%lld, imissed %lld\n",
	       sent, recv, rx, handed, full, imissed);
	CU_ASSERT_EQUAL(handed, 64); /* the ring's worth, no more */
	CU_ASSERT_EQUAL(full, rx - 64);
	CU_ASSERT_EQUAL(imissed, 0); /* the NF kept up: nothing overflowed its rx ring */
	/* what went on down the chain came back: the handed ones (next: continue) */
	CU_ASSERT(recv <= 64);
	CU_ASSERT_EQUAL(test_json_num(res, "replies"), 0); /* forwarded, not answered */
	CU_ASSERT(sent > 100000);			   /* many times the ring */
	cJSON_Delete(res);
}

/* A consumer that crashes mid-batch: the NF resets its ring, and the next one serves. */
static void test_crash_resets_ring(void)
{
	char name[32], prefix[96];
	const char *fnmod = "{\"module\":\"fn\",\"functions\":[{\"name\":\"t\",\"slots\":4096}],"
			    "\"rules\":[{\"proto\":\"udp\",\"dport\":9000,\"function\":\"t\","
			    "\"reply\":true}]}";
	struct test_proc nf, fn1, fn2;
	cJSON *res;
	const char *out;
	int rc;

	names(name, sizeof(name), prefix, sizeof(prefix));
	CU_ASSERT_EQUAL_FATAL(memif_nf_start(&nf, prefix, name, fnmod, "0"), 0);
	CU_ASSERT_FATAL(wait_fn_socket(&nf, prefix));
	setenv("NEMO_TEST_CRASH_AT", "2000", 1);
	rc = fn_start(&fn1, prefix, "t", "test-pkt-crash", "30");
	unsetenv("NEMO_TEST_CRASH_AT");
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_FATAL(wait_leased(&nf, 1));
	res = gen_run(prefix, "20k", "1", true);
	cJSON_Delete(res);
	/* abort() mid-batch: SIGABRT, and the kernel closed its lease */
	CU_ASSERT_EQUAL(test_proc_wait(&fn1, 5000), 128 + SIGABRT);
	for (int i = 0; i < 200 && !strstr(test_proc_output(&nf), "its ring is reset"); i++)
		test_msleep(10);
	CU_ASSERT(test_proc_output_has(&nf, "its ring is reset"));
	/* its replacement leases the same ring and serves */
	CU_ASSERT_EQUAL_FATAL(fn_start(&fn2, prefix, "t", "test-pkt-crash", "30"), 0);
	CU_ASSERT_FATAL(wait_leased(&nf, 2));
	res = gen_run(prefix, "20k", "1", true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	printf("\n  after the crash: sent %.0f, echoed %.0f\n", test_json_num(res, "sent"),
	       test_json_num(res, "received"));
	CU_ASSERT(test_json_num(res, "received") >= 0.95 * test_json_num(res, "sent"));
	cJSON_Delete(res);
	CU_ASSERT_EQUAL(test_proc_stop(&fn2, 5000), 0);
	CU_ASSERT_EQUAL(test_proc_stop(&nf, 10000), 0);
	out = test_proc_output(&nf);
	/* the crash; and maybe the second consumer's end, if the NF saw it before it stopped */
	CU_ASSERT(test_find_count(out, "function 't'", "resets") >= 1);
	CU_ASSERT_EQUAL(test_find_count(out, "function 't'", "reply_stale"), 0);
}

/*
 * The way a sandbox will get its rings: a supervisor (here the test, later nemod) leases them
 * and hands the consumer three inherited fds, keeping none; when the consumer is killed, the
 * kernel closes the lease and the NF resets the ring.
 */
static void test_inherited_fds(void)
{
	char name[32], prefix[96], sock[160], code[600], fds[48], err[256];
	const char *fnmod = "{\"module\":\"fn\",\"functions\":[{\"name\":\"echo\",\"slots\":4096}],"
			    "\"rules\":[{\"proto\":\"udp\",\"dport\":9000,\"function\":\"echo\","
			    "\"reply\":true}]}";
	char *argv[] = {fn_bin, "--fds", fds, "--code", code, NULL};
	struct test_proc nf, fn;
	struct fn_ring r;
	cJSON *res;
	int lease;

	names(name, sizeof(name), prefix, sizeof(prefix));
	CU_ASSERT_EQUAL_FATAL(memif_nf_start(&nf, prefix, name, fnmod, "0"), 0);
	CU_ASSERT_FATAL(wait_fn_socket(&nf, prefix));
	snprintf(sock, sizeof(sock), "%s.fn", prefix);
	snprintf(code, sizeof(code), "%s/pkt-echo.so", fn_dir);
	CU_ASSERT_EQUAL_FATAL(
		fn_lease_acquire(sock, "echo", FN_LEASE_ANY, &r, &lease, err, sizeof(err)), 0);
	/* the three fds cross exec; the supervisor keeps no copy */
	fcntl(r.mem_fd, F_SETFD, 0);
	fcntl(r.wake_fd, F_SETFD, 0);
	fcntl(lease, F_SETFD, 0);
	snprintf(fds, sizeof(fds), "%d,%d,%d", r.mem_fd, r.wake_fd, lease);
	CU_ASSERT_EQUAL_FATAL(test_proc_start(&fn, argv), 0);
	fn_ring_close(&r);
	close(lease);
	res = gen_run(prefix, "20k", "1", true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	printf("\n  inherited fds: sent %.0f, replies %.0f\n", test_json_num(res, "sent"),
	       test_json_num(res, "replies"));
	CU_ASSERT(test_json_num(res, "sent") > 5000);
	CU_ASSERT_EQUAL(test_json_num(res, "replies"), test_json_num(res, "sent"));
	cJSON_Delete(res);
	kill(fn.pid, SIGKILL);
	CU_ASSERT_EQUAL(test_proc_wait(&fn, 5000), 128 + SIGKILL);
	for (int i = 0; i < 200 && !strstr(test_proc_output(&nf), "its ring is reset"); i++)
		test_msleep(10);
	CU_ASSERT(test_proc_output_has(&nf, "its ring is reset"));
	CU_ASSERT_EQUAL(test_proc_stop(&nf, 10000), 0);
}

/* The number after "key": in dpdk-telemetry.py's JSON, or -1. */
static long long tel_num(const char *json, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\": ", key);
	p = strstr(json, k);
	return p ? atoll(p + strlen(k)) : -1;
}

/*
 * What a harvester reads to owe a packet instance its packets' cycles: the lcore's fn_cycles
 * and fn_pkts, in /nemo/lcores and the exit summary. With a function fed and answering they
 * are a part of busy; with a rule that matches none of the traffic they stay 0, so the NF's
 * own load is never counted as the function's.
 */
static void test_fn_cycles_counted(void)
{
	static const char *const rules[2] = {"9000", "9001"}; /* every packet, then none */
	char name[32], prefix[96], fnmod[512], out[16384];
	struct test_proc nf, fn;

	for (int run = 0; run < 2; run++) {
		long long fn_cycles, fn_pkts, busy, handed;
		cJSON *res;
		double sent;

		snprintf(fnmod, sizeof(fnmod),
			 "{\"module\":\"fn\",\"functions\":[{\"name\":\"echo\",\"slots\":8192}],"
			 "\"rules\":[{\"proto\":\"udp\",\"dport\":%s,\"function\":\"echo\","
			 "\"reply\":true}]}",
			 rules[run]);
		names(name, sizeof(name), prefix, sizeof(prefix));
		CU_ASSERT_EQUAL_FATAL(memif_nf_start(&nf, prefix, name, fnmod, "0"), 0);
		CU_ASSERT_FATAL(wait_fn_socket(&nf, prefix));
		CU_ASSERT_EQUAL_FATAL(fn_start(&fn, prefix, "echo", "pkt-echo", "30"), 0);
		CU_ASSERT_FATAL(wait_leased(&nf, 1));
		res = gen_run(prefix, "20k", "2", true);
		CU_ASSERT_PTR_NOT_NULL_FATAL(res);
		sent = test_json_num(res, "sent");
		/* answered by the function, or forwarded back by fwd: every packet returns */
		CU_ASSERT(sent > 10000);
		CU_ASSERT(test_json_num(res, "received") >= 0.95 * sent);
		CU_ASSERT_EQUAL(test_json_num(res, "replies"),
				run == 0 ? test_json_num(res, "received") : 0);
		cJSON_Delete(res);
		CU_ASSERT_EQUAL_FATAL(test_nf_telemetry(name, "/nemo/lcores", out, sizeof(out)), 0);
		fn_cycles = tel_num(out, "fn_cycles");
		fn_pkts = tel_num(out, "fn_pkts");
		busy = tel_num(out, "busy_cycles");
		printf("\n  rule dport %s: /nemo/lcores fn_cycles %lld of busy %lld, fn_pkts %lld, "
		       "sent %.0f",
		       rules[run], fn_cycles, busy, fn_pkts, sent);
		CU_ASSERT(busy > 0);
		if (run == 0) {
			CU_ASSERT(fn_pkts >= (long long)(0.95 * sent));
			CU_ASSERT(fn_cycles > 0);
			CU_ASSERT(fn_cycles < busy);
		} else {
			CU_ASSERT_EQUAL(fn_pkts, 0);
			CU_ASSERT_EQUAL(fn_cycles, 0);
		}
		CU_ASSERT_EQUAL(test_proc_stop(&fn, 5000), 0);
		CU_ASSERT_EQUAL(test_proc_stop(&nf, 10000), 0);
		/* the summary says it too, for a function that was fed */
		handed = test_find_count(test_proc_output(&nf), "function 'echo'", "handed");
		if (run == 0) {
			CU_ASSERT(test_find_count(test_proc_output(&nf), "  packets for",
						  "functions:") >= handed);
			CU_ASSERT(test_find_count(test_proc_output(&nf),
						  "packets for functions:", "cycles") >= fn_cycles);
		} else {
			CU_ASSERT_EQUAL(handed, 0);
			CU_ASSERT_FALSE(test_proc_output_has(&nf, "packets for functions:"));
		}
	}
	printf("\n");
}

/* A rule naming a function the module does not list: the NF refuses to start, naming it. */
static void test_unknown_function(void)
{
	char name[32], prefix[96];
	const char *fnmod = "{\"module\":\"fn\",\"functions\":[{\"name\":\"echo\"}],"
			    "\"rules\":[{\"proto\":\"udp\",\"function\":\"ehco\"}]}";
	struct test_proc nf;

	names(name, sizeof(name), prefix, sizeof(prefix));
	CU_ASSERT_EQUAL_FATAL(memif_nf_start(&nf, prefix, name, fnmod, "1"), 0);
	CU_ASSERT_NOT_EQUAL(test_proc_wait(&nf, 20000), 0);
	CU_ASSERT(test_proc_output_has(&nf, "'lcores[0].chain[0].rules[0].function': no function "
					    "'ehco' among this module's functions (echo)"));
}

NEMO_SUITE(packet_nf, suite_setup, suite_teardown, {"echo over memif", test_echo_over_memif},
	   {"malformed never reach it; big replies dropped", test_pcap_malformed_and_big},
	   {"sensor aggregator", test_sensor_aggregates},
	   {"stopped consumer: fn_full, NF keeps up", test_stopped_consumer},
	   {"crash mid-batch resets the ring", test_crash_resets_ring},
	   {"inherited fds, as a sandbox will get them", test_inherited_fds},
	   {"fn_cycles: the function's packets counted, the NF's own not", test_fn_cycles_counted},
	   {"unknown function is a config error", test_unknown_function});
