/* test_gen.c - nemo-gen: rate profiles, percentiles, checksums, options, and runs over memif. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../experiments/gen/gen_internal.h"
#include "proc.h"
#include "test.h"

#define NEAR(a, b, tol) CU_ASSERT_DOUBLE_EQUAL((a), (b), (tol))

/* ---- rate profiles ---- */

static void test_profile_constant(void)
{
	struct gen_profile p;

	gen_profile_constant(&p, 1e6);
	NEAR(gen_profile_rate(&p, 0), 1e6, 1e-9);
	NEAR(gen_profile_rate(&p, 123.4), 1e6, 1e-9);
	NEAR(gen_profile_packets(&p, 2.5), 2.5e6, 1e-6);
	NEAR(gen_profile_natural_duration(&p), 0, 0);
}

static void test_profile_on_off(void)
{
	struct gen_profile p;

	/* 1 Mpps for 100 ms, silent for 50 ms: a 150 ms period carrying 100000 packets */
	gen_profile_on_off(&p, 1e6, 0.100, 0.050);
	NEAR(gen_profile_rate(&p, 0.050), 1e6, 1e-9);
	NEAR(gen_profile_rate(&p, 0.120), 0, 1e-9);
	NEAR(gen_profile_rate(&p, 0.160), 1e6, 1e-9);
	NEAR(gen_profile_packets(&p, 0.100), 1e5, 1e-3);
	NEAR(gen_profile_packets(&p, 0.150), 1e5, 1e-3);
	NEAR(gen_profile_packets(&p, 0.200), 1.5e5, 1e-3);
	NEAR(gen_profile_packets(&p, 3.0), 2e6, 1e-2); /* 20 periods */
}

static void test_profile_steps(void)
{
	struct gen_profile p;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(gen_profile_parse_steps(&p, "1k:2, 5000:1", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(p.n_points, 2);
	NEAR(gen_profile_rate(&p, 0), 1000, 1e-9);
	NEAR(gen_profile_rate(&p, 1.999), 1000, 1e-9);
	NEAR(gen_profile_rate(&p, 2.0), 5000, 1e-9);
	NEAR(gen_profile_rate(&p, 2.5), 5000, 1e-9);
	NEAR(gen_profile_rate(&p, 3.5), 1000, 1e-9); /* the list repeats */
	NEAR(gen_profile_packets(&p, 2), 2000, 1e-6);
	NEAR(gen_profile_packets(&p, 3), 7000, 1e-6);
	NEAR(gen_profile_packets(&p, 4), 8000, 1e-6);
	NEAR(gen_profile_natural_duration(&p), 3, 1e-12);
	gen_profile_free(&p);
}

static void expect_steps_error(const char *spec, const char *needle)
{
	struct gen_profile p;
	char err[256] = "";

	CU_ASSERT_EQUAL(gen_profile_parse_steps(&p, spec, err, sizeof(err)), -EINVAL);
	if (!strstr(err, needle))
		printf("\n  steps '%s': error was '%s' (wanted '%s')\n", spec, err, needle);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, needle));
	CU_ASSERT_PTR_NULL(p.points);
}

static void test_profile_steps_errors(void)
{
	expect_steps_error("1000:2,abc", "--steps: step 2 'abc'");
	expect_steps_error("1000:0", "step 1 '1000:0'");
	expect_steps_error("-5:1", "step 1");
	expect_steps_error("1000:2,", "step 2 ''");
	expect_steps_error("", "--steps: empty");
}

static int read_trace_text(struct gen_profile *p, const char *text, enum gen_interp interp,
			   char *err, size_t errlen)
{
	FILE *in = fmemopen((void *)text, strlen(text), "r");
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(in);
	rc = gen_profile_read_trace(p, in, "mem.csv", interp, err, errlen);
	fclose(in);
	return rc;
}

static const char trace_text[] = "# a ramp up and a stop\ntime_s,pps\n0,1000\n1, 3000\n\n2,0\n";

static void test_profile_trace_step(void)
{
	struct gen_profile p;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(read_trace_text(&p, trace_text, GEN_INTERP_STEP, err, sizeof(err)),
			      0);
	CU_ASSERT_EQUAL(p.n_points, 3);
	NEAR(gen_profile_rate(&p, 0.5), 1000, 1e-9);
	NEAR(gen_profile_rate(&p, 1.0), 3000, 1e-9);
	NEAR(gen_profile_rate(&p, 1.5), 3000, 1e-9);
	NEAR(gen_profile_rate(&p, 2.5), 0, 1e-9);
	NEAR(gen_profile_packets(&p, 1), 1000, 1e-6);
	NEAR(gen_profile_packets(&p, 2), 4000, 1e-6);
	NEAR(gen_profile_packets(&p, 10), 4000, 1e-6);
	NEAR(gen_profile_natural_duration(&p), 2, 1e-12);
	gen_profile_free(&p);
}

static void test_profile_trace_linear(void)
{
	struct gen_profile p;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(read_trace_text(&p, trace_text, GEN_INTERP_LINEAR, err, sizeof(err)),
			      0);
	NEAR(gen_profile_rate(&p, 0.5), 2000, 1e-9);
	NEAR(gen_profile_rate(&p, 1.5), 1500, 1e-9);
	NEAR(gen_profile_packets(&p, 0.5), 750, 1e-6);
	NEAR(gen_profile_packets(&p, 1), 2000, 1e-6);
	NEAR(gen_profile_packets(&p, 2), 3500, 1e-6);
	gen_profile_free(&p);

	/* before the first sample nothing is due */
	CU_ASSERT_EQUAL_FATAL(read_trace_text(&p, "1,100\n", GEN_INTERP_STEP, err, sizeof(err)), 0);
	NEAR(gen_profile_rate(&p, 0.5), 0, 1e-9);
	NEAR(gen_profile_packets(&p, 2), 100, 1e-9);
	gen_profile_free(&p);
}

static void expect_trace_error(const char *text, const char *needle)
{
	struct gen_profile p;
	char err[256] = "";

	CU_ASSERT_EQUAL(read_trace_text(&p, text, GEN_INTERP_STEP, err, sizeof(err)), -EINVAL);
	if (!strstr(err, needle))
		printf("\n  trace: error was '%s' (wanted '%s')\n", err, needle);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, needle));
}

static void test_profile_trace_errors(void)
{
	char path[] = "/tmp/nemo-gen-trace-XXXXXX", err[256] = "", want[128];
	struct gen_profile p;
	int fd;

	expect_trace_error("0,1000\n1,abc\n", "mem.csv:2: expected 'time_s,pps', got '1,abc'");
	expect_trace_error("0,1000\n\n1\n", "mem.csv:3: expected 'time_s,pps'");
	expect_trace_error("0,100\n0,200\n", "mem.csv:2: time 0 is not after");
	expect_trace_error("0,-5\n", "mem.csv:1: time and rate must be >= 0");
	expect_trace_error("# nothing\n", "mem.csv: no 'time_s,pps' samples");

	/* through a real file: the message names the path the user gave */
	fd = mkstemp(path);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, "0,10\n0.5,20\n1,x\n", 16), 16);
	close(fd);
	CU_ASSERT_EQUAL(gen_profile_load_trace(&p, path, GEN_INTERP_STEP, err, sizeof(err)),
			-EINVAL);
	snprintf(want, sizeof(want), "%s:3:", path);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	unlink(path);
	CU_ASSERT_EQUAL(gen_profile_load_trace(&p, path, GEN_INTERP_STEP, err, sizeof(err)),
			-ENOENT);
}

/* ---- latency histogram ---- */

static struct gen_hist *hist_new(void)
{
	struct gen_hist *h = calloc(1, sizeof(*h));

	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	return h;
}

static void test_hist_uniform(void)
{
	struct gen_hist *h = hist_new();

	for (uint64_t v = 1; v <= 1000; v++)
		gen_hist_record(h, v);
	CU_ASSERT_EQUAL(h->count, 1000);
	CU_ASSERT_EQUAL(h->min_ns, 1);
	CU_ASSERT_EQUAL(h->max_ns, 1000);
	/* below 256 ns exact; 512..1023 ns in 4 ns buckets, reported at their midpoint */
	CU_ASSERT_EQUAL(gen_hist_percentile(h, 10), 100);
	CU_ASSERT_EQUAL(gen_hist_percentile(h, 50), 500);   /* [500, 501] */
	CU_ASSERT_EQUAL(gen_hist_percentile(h, 99), 989);   /* rank 990 in [988, 991] */
	CU_ASSERT_EQUAL(gen_hist_percentile(h, 99.9), 997); /* rank 999 in [996, 999] */
	CU_ASSERT_EQUAL(gen_hist_percentile(h, 100), 1000);
	free(h);
}

static void test_hist_bimodal(void)
{
	struct gen_hist *h = hist_new();
	uint64_t p999;

	/* 10000 fast packets at 100 ns and 100 slow ones at 50 us: p99 fast, p99.9 slow */
	for (int i = 0; i < 10000; i++)
		gen_hist_record(h, 100);
	for (int i = 0; i < 100; i++)
		gen_hist_record(h, 50000);
	CU_ASSERT_EQUAL(gen_hist_percentile(h, 50), 100);
	CU_ASSERT_EQUAL(gen_hist_percentile(h, 99), 100); /* rank 9999 */
	p999 = gen_hist_percentile(h, 99.9);		  /* rank 10090 */
	CU_ASSERT(p999 >= 49800 && p999 <= 50200);
	CU_ASSERT_EQUAL(gen_hist_percentile(h, 100), 50000);
	free(h);
}

static void test_hist_precision_and_range(void)
{
	struct gen_hist *h = hist_new();
	uint64_t lo, hi;

	/* every bucket's midpoint is within 0.4 % of any value in it, from 1 ns to 1 s */
	for (double v = 1; v < 1.07e9; v *= 1.013) {
		uint64_t ns = (uint64_t)v;
		double mid;

		gen_hist_bucket_bounds(gen_hist_index(ns), &lo, &hi);
		CU_ASSERT(lo <= ns && ns <= hi);
		mid = (double)(lo + (hi - lo) / 2);
		CU_ASSERT(fabs(mid - (double)ns) <= 0.004 * (double)ns);
	}
	CU_ASSERT_EQUAL(gen_hist_index((1ull << GEN_HIST_MAX_BITS) - 1), GEN_HIST_BUCKETS - 1);
	/* beyond ~1.07 s values share the top bucket, but max stays exact */
	gen_hist_record(h, 5000000000ull);
	CU_ASSERT_EQUAL(h->max_ns, 5000000000ull);
	CU_ASSERT_EQUAL(gen_hist_percentile(h, 50), 5000000000ull);
	CU_ASSERT_EQUAL(gen_hist_percentile(h, 100), 5000000000ull);
	gen_hist_reset(h);
	CU_ASSERT_EQUAL(h->count, 0);
	CU_ASSERT_EQUAL(gen_hist_percentile(h, 99), 0);
	for (uint32_t i = 0; i < GEN_HIST_BUCKETS; i++)
		CU_ASSERT_EQUAL(h->buckets[i], 0);
	free(h);
}

static void test_hist_merge(void)
{
	struct gen_hist *a = hist_new(), *b = hist_new(), *all = hist_new(), *sum = hist_new();

	for (uint64_t v = 1; v <= 1000; v++) {
		gen_hist_record(v <= 500 ? a : b, v * 37);
		gen_hist_record(all, v * 37);
	}
	gen_hist_merge(sum, b);
	gen_hist_merge(sum, a);
	CU_ASSERT_EQUAL(sum->count, 1000);
	CU_ASSERT_EQUAL(sum->min_ns, 37);
	CU_ASSERT_EQUAL(sum->max_ns, 37000);
	CU_ASSERT_EQUAL(sum->sum_ns, all->sum_ns);
	CU_ASSERT_EQUAL(memcmp(sum->buckets, all->buckets, sizeof(all->buckets)), 0);
	CU_ASSERT_EQUAL(gen_hist_percentile(sum, 99), gen_hist_percentile(all, 99));
	free(a);
	free(b);
	free(all);
	free(sum);
}

/* ---- frames ---- */

static void check_frame(const uint8_t *f, uint16_t len, uint32_t flow, uint64_t seq, uint64_t tsc)
{
	static const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x01};
	const uint8_t *ip = f + 14, *udp = ip + 20;
	uint16_t udp_len = (uint16_t)(len - 34);
	uint8_t pseudo[12];
	struct gen_stamp st;
	uint32_t src_ip;

	CU_ASSERT_EQUAL(memcmp(f, dst, 6), 0);
	CU_ASSERT_EQUAL(f[12] << 8 | f[13], 0x0800);
	CU_ASSERT_EQUAL(ip[0], 0x45);
	CU_ASSERT_EQUAL(ip[2] << 8 | ip[3], len - 14);
	CU_ASSERT_EQUAL(ip[9], 17);
	CU_ASSERT_EQUAL(test_inet_sum(ip, 20, 0), 0xffff); /* header checksum valid */

	src_ip = (uint32_t)ip[12] << 24 | (uint32_t)ip[13] << 16 | (uint32_t)ip[14] << 8 | ip[15];
	CU_ASSERT_EQUAL(src_ip, 0x0a000001u + (flow >> 8));
	CU_ASSERT_EQUAL(udp[0] << 8 | udp[1], 1024 + (flow & 0xff));
	CU_ASSERT_EQUAL(udp[2] << 8 | udp[3], GEN_UDP_DPORT);
	CU_ASSERT_EQUAL(udp[4] << 8 | udp[5], udp_len);

	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = 17;
	pseudo[10] = (uint8_t)(udp_len >> 8);
	pseudo[11] = (uint8_t)udp_len;
	CU_ASSERT_NOT_EQUAL(udp[6] << 8 | udp[7], 0); /* a checksum, not "none" */
	CU_ASSERT_EQUAL(test_inet_sum(udp, udp_len, test_inet_sum(pseudo, 12, 0)), 0xffff);

	memcpy(&st, f + GEN_STAMP_OFF, sizeof(st));
	CU_ASSERT_EQUAL(st.magic, GEN_MAGIC);
	CU_ASSERT_EQUAL(st.run_id, 0xbeef);
	CU_ASSERT_EQUAL(st.seq, seq);
	CU_ASSERT_EQUAL(st.tsc, tsc);
}

static void test_pkt_checksums(void)
{
	static const uint16_t sizes[] = {64, 65, 128, 999, 1518};
	static const uint64_t seqs[] = {0, 1, 0xffffffffull, 0x8000000000000000ull, UINT64_MAX};
	static const uint64_t tscs[] = {0, 0x123456789abcdef0ull, UINT64_MAX,
					0xffff0000ffff0000ull};
	struct gen_flow flows[300];
	uint8_t base[GEN_FRAME_MAX], f[GEN_FRAME_MAX];
	struct gen_pkt_spec spec;

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint16_t len = sizes[s];

		gen_pkt_spec_default(&spec, len, 0xbeef);
		CU_ASSERT_EQUAL_FATAL(gen_pkt_build(&spec, base), 0);
		check_frame(base, len, 0, 0, 0);
		CU_ASSERT_EQUAL_FATAL(gen_pkt_flows(base, len, flows, 300), 0);
		for (uint32_t fl = 0; fl < 300; fl += 37) {
			for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
				for (size_t j = 0; j < sizeof(tscs) / sizeof(tscs[0]); j++) {
					memcpy(f, base, len);
					gen_pkt_stamp(f, &flows[fl], seqs[i], tscs[j]);
					check_frame(f, len, fl, seqs[i], tscs[j]);
				}
			}
		}
	}
	/* a frame stamped twice (a reused mbuf) is as valid as a fresh one */
	memcpy(f, base, sizeof(f));
	gen_pkt_stamp(f, &flows[299], 7, 9);
	gen_pkt_stamp(f, &flows[1], 8, 10);
	check_frame(f, 1518, 1, 8, 10);
}

static void test_pkt_limits(void)
{
	struct gen_flow flows[1];
	uint8_t f[GEN_FRAME_MAX + 1];
	struct gen_pkt_spec spec;

	gen_pkt_spec_default(&spec, 63, 1);
	CU_ASSERT_EQUAL(gen_pkt_build(&spec, f), -EINVAL);
	gen_pkt_spec_default(&spec, 1519, 1);
	CU_ASSERT_EQUAL(gen_pkt_build(&spec, f), -EINVAL);
	gen_pkt_spec_default(&spec, 64, 1);
	CU_ASSERT_EQUAL(gen_pkt_build(&spec, f), 0);
	CU_ASSERT_EQUAL(gen_pkt_flows(f, 64, flows, 0), -EINVAL);
	CU_ASSERT_EQUAL(gen_pkt_flows(f, 64, flows, GEN_MAX_FLOWS + 1), -EINVAL);
}

/* ---- options ---- */

static int parse_args(struct gen_opts *o, char *err, size_t errlen, int argc, ...)
{
	static char store[32][128];
	char *argv[33];
	va_list ap;

	argv[0] = "nemo-gen";
	va_start(ap, argc);
	for (int i = 1; i < argc; i++) {
		snprintf(store[i], sizeof(store[i]), "%s", va_arg(ap, const char *));
		argv[i] = store[i];
	}
	va_end(ap);
	argv[argc] = NULL;
	return gen_opts_parse(argc, argv, o, err, errlen);
}

#define PARSE(o, err, ...)                                                                  \
	parse_args(o, err, sizeof(err),                                                     \
		   1 + (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), \
		   __VA_ARGS__)

static void test_opts_good(void)
{
	struct gen_opts o;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(PARSE(&o, err, "--socket", "/tmp/s", "--rate", "2.5M"), 0);
	CU_ASSERT_EQUAL(o.profile, GEN_PROFILE_CONSTANT);
	NEAR(o.rate_pps, 2.5e6, 1e-6);
	CU_ASSERT_EQUAL(o.size, 64);
	CU_ASSERT_EQUAL(o.flows, 1);
	CU_ASSERT_EQUAL(o.interval_ms, 100);
	CU_ASSERT_EQUAL(o.drain_ms, 200);
	CU_ASSERT_EQUAL(o.warmup_ms, 5000);
	CU_ASSERT_EQUAL(o.eal_argc, 0);

	/* the profile follows from its option; EAL arguments are split off at "--" */
	CU_ASSERT_EQUAL_FATAL(PARSE(&o, err, "--steps", "1:1", "--", "-l", "1", "--vdev", "x"), 0);
	CU_ASSERT_EQUAL(o.profile, GEN_PROFILE_STEPS);
	CU_ASSERT_EQUAL(o.eal_argc, 4);
	CU_ASSERT_STRING_EQUAL(o.eal_argv[0], "-l");
	CU_ASSERT_STRING_EQUAL(o.eal_argv[3], "x");

	CU_ASSERT_EQUAL_FATAL(PARSE(&o, err, "--socket", "s", "--on-ms", "10", "--off-ms", "5",
				    "--rate", "1000", "--size", "1518", "--flows", "65536",
				    "--duration", "0.5", "--quiet"),
			      0);
	CU_ASSERT_EQUAL(o.profile, GEN_PROFILE_ON_OFF);
	CU_ASSERT_EQUAL(o.size, 1518);
	CU_ASSERT_EQUAL(o.flows, 65536);
	CU_ASSERT(o.quiet);
	NEAR(o.duration_s, 0.5, 1e-12);

	CU_ASSERT_EQUAL(PARSE(&o, err, "--socket", "s", "--max"), 0);
	CU_ASSERT(o.max_rate);
}

static void expect_opt_error(const char *needle, int rc)
{
	if (rc != -EINVAL)
		printf("\n  parse returned %d (wanted -EINVAL for '%s')\n", rc, needle);
	CU_ASSERT_EQUAL(rc, -EINVAL);
}

#define OPT_ERROR(needle, ...)                                                      \
	do {                                                                        \
		struct gen_opts _o;                                                 \
		char _err[256] = "";                                                \
		expect_opt_error(needle, PARSE(&_o, _err, __VA_ARGS__));            \
		if (!strstr(_err, needle))                                          \
			printf("\n  error was '%s' (wanted '%s')\n", _err, needle); \
		CU_ASSERT_PTR_NOT_NULL(strstr(_err, needle));                       \
	} while (0)

static void test_opts_errors_name_the_option(void)
{
	OPT_ERROR("--size: 40 is out of range 64..1518", "--socket", "s", "--rate", "1", "--size",
		  "40");
	OPT_ERROR("--rate: 'abc' is not a rate", "--socket", "s", "--rate", "abc");
	OPT_ERROR("--flows: 0 is out of range", "--socket", "s", "--rate", "1", "--flows", "0");
	OPT_ERROR("--memif-id: '-1' is not a whole number", "--socket", "s", "--rate", "1",
		  "--memif-id", "-1");
	OPT_ERROR("--profile: 'sine' is not one of", "--socket", "s", "--profile", "sine");
	OPT_ERROR("unknown option '--bogus'", "--socket", "s", "--bogus");
	OPT_ERROR("--size: needs a value", "--socket", "s", "--rate", "1", "--size");
	OPT_ERROR("unexpected argument 'stray'", "--socket", "s", "--rate", "1", "stray");
	OPT_ERROR("--rate: not with --profile steps", "--socket", "s", "--steps", "1:1", "--rate",
		  "5");
	OPT_ERROR("--max: not with --rate", "--socket", "s", "--max", "--rate", "5");
	OPT_ERROR("--on-ms", "--socket", "s", "--profile", "on_off", "--rate", "1");
	OPT_ERROR("--trace: only for --profile trace", "--socket", "s", "--profile", "constant",
		  "--rate", "1", "--trace", "x.csv");
	OPT_ERROR("--duration: -1 is out of range", "--socket", "s", "--rate", "1", "--duration",
		  "-1");
	OPT_ERROR("--rate: required", "--socket", "s");
	OPT_ERROR("--socket: required", "--rate", "1");
}

/* ---- the JSON summary ---- */

static void test_json_keys(void)
{
	static const char *const keys[] = {
		"sent",		  "received",	"lost",	      "tx_dropped", "duration_s",
		"target_pps_avg", "tx_pps",	"rx_pps",     "lat_p50_us", "lat_p99_us",
		"lat_p999_us",	  "lat_max_us", "unknown_rx",
	};
	struct gen_totals t;
	cJSON *o;

	memset(&t, 0, sizeof(t));
	t.lat = hist_new();
	t.sent = 1000;
	t.received = 990;
	t.tx_dropped = 5;
	t.unknown_rx = 3;
	t.duration_s = 2;
	t.target_pkts = 2010;
	for (int i = 0; i < 990; i++)
		gen_hist_record(t.lat, 2000); /* 2 us */
	o = gen_report_json(&t);
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (!cJSON_GetObjectItem(o, keys[i]))
			printf("\n  missing key %s\n", keys[i]);
		CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItem(o, keys[i]));
	}
	NEAR(cJSON_GetObjectItem(o, "lost")->valuedouble, 10, 0);
	NEAR(cJSON_GetObjectItem(o, "tx_pps")->valuedouble, 500, 1e-9);
	NEAR(cJSON_GetObjectItem(o, "rx_pps")->valuedouble, 495, 1e-9);
	NEAR(cJSON_GetObjectItem(o, "target_pps_avg")->valuedouble, 1005, 1e-9);
	NEAR(cJSON_GetObjectItem(o, "lat_p99_us")->valuedouble, 2.0, 0.01);
	NEAR(cJSON_GetObjectItem(o, "lat_max_us")->valuedouble, 2.0, 1e-9);
	cJSON_Delete(o);

	/* nothing came back: latency is unknown, not 0 */
	gen_hist_reset(t.lat);
	t.received = 0;
	o = gen_report_json(&t);
	CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(o, "lat_p50_us")));
	CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(o, "lat_max_us")));
	cJSON_Delete(o);
	free(t.lat);
}

/* ---- the program ---- */

/* Run argv with stdout/stderr to files; returns the exit status, or -1. */
static int run_prog(char *const argv[], const char *out_path, const char *err_path)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (out < 0 || err < 0)
			_exit(127);
		dup2(out, 1);
		dup2(err, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool gen_binary(char *path, size_t len)
{
	snprintf(path, len, "%s/nemo-gen", nemo_test_bindir());
	if (access(path, X_OK) == 0)
		return true;
	nemo_test_skip("build/bin/nemo-gen is not built");
	return false;
}

static void expect_exit(char *const argv[], int want, const char *needle)
{
	char *err;
	int rc = run_prog(argv, "/dev/null", "/tmp/nemo-gen-test.err");

	err = test_read_file("/tmp/nemo-gen-test.err", NULL);
	CU_ASSERT_EQUAL(rc, want);
	CU_ASSERT_PTR_NOT_NULL(err && strstr(err, needle));
	if (rc != want || !err || !strstr(err, needle))
		printf("\n  exit %d (wanted %d), stderr: %s\n", rc, want, err ? err : "?");
	free(err);
	unlink("/tmp/nemo-gen-test.err");
}

static void test_cli_bad_args_exit_2(void)
{
	char bin[PATH_MAX], trace[] = "/tmp/nemo-gen-cli-XXXXXX", want[128];
	int fd;

	if (!gen_binary(bin, sizeof(bin)))
		return;
	expect_exit((char *const[]){bin, "--socket", "s", "--rate", "1", "--size", "10", NULL}, 2,
		    "--size: 10 is out of range");
	expect_exit((char *const[]){bin, "--socket", "s", "--cpu", "x", "--rate", "1", NULL}, 2,
		    "--cpu: 'x' is not a whole number");
	fd = mkstemp(trace);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(write(fd, "0,100\n1;200\n", 12), 12);
	close(fd);
	snprintf(want, sizeof(want), "%s:2: expected 'time_s,pps'", trace);
	expect_exit((char *const[]){bin, "--socket", "s", "--trace", trace, NULL}, 2, want);
	unlink(trace);
	expect_exit((char *const[]){bin, "--help", NULL}, 0, "");
}

/* Replies taken out of the whole: what is left has the percentiles of the rest, exactly. */
static void test_hist_subtract(void)
{
	struct gen_hist *all = hist_new(), *replies = hist_new(), *rest = hist_new();

	for (uint64_t v = 1; v <= 20000; v++) {
		uint64_t ns = v * 37 % 100000 + 100;

		gen_hist_record(all, ns);
		gen_hist_record(v % 3 ? rest : replies, ns);
	}
	gen_hist_subtract(all, replies);
	CU_ASSERT_EQUAL(all->count, rest->count);
	CU_ASSERT_EQUAL(all->sum_ns, rest->sum_ns);
	for (double pct = 1; pct < 100; pct += 7)
		CU_ASSERT_EQUAL(gen_hist_percentile(all, pct), gen_hist_percentile(rest, pct));
	free(all);
	free(replies);
	free(rest);
}

NEMO_SUITE(gen, NULL, NULL, {"profile_constant", test_profile_constant},
	   {"profile_on_off", test_profile_on_off}, {"profile_steps", test_profile_steps},
	   {"profile_steps_errors", test_profile_steps_errors},
	   {"profile_trace_step", test_profile_trace_step},
	   {"profile_trace_linear", test_profile_trace_linear},
	   {"profile_trace_errors_name_file_and_line", test_profile_trace_errors},
	   {"hist_uniform_1_to_1000", test_hist_uniform}, {"hist_bimodal", test_hist_bimodal},
	   {"hist_precision_and_range", test_hist_precision_and_range},
	   {"hist_merge", test_hist_merge}, {"hist_subtract", test_hist_subtract},
	   {"pkt_checksums_valid", test_pkt_checksums}, {"pkt_limits", test_pkt_limits},
	   {"opts_good", test_opts_good},
	   {"opts_errors_name_the_option", test_opts_errors_name_the_option},
	   {"json_summary_keys", test_json_keys}, {"cli_bad_args_exit_2", test_cli_bad_args_exit_2})

/* ---- over memif, against dpdk-testpmd in io forward mode ---- */

static void test_memif_link_down(void)
{
	char bin[PATH_MAX], sock[64];

	if (!gen_binary(bin, sizeof(bin)))
		return;
	snprintf(sock, sizeof(sock), "/tmp/nemo-gen-test-none-%d.sock", (int)getpid());
	unlink(sock);
	expect_exit((char *const[]){bin, "--socket", sock, "--rate", "1000", "--warmup-ms", "300",
				    "--quiet", NULL},
		    1, "did not come up within 300 ms");
	expect_exit((char *const[]){bin, "--socket", sock, "--rate", "1000", "--warmup-ms", "300",
				    "--quiet", NULL},
		    1, "is nemo-nf running?");
}

static pid_t start_testpmd(const char *sock, const char *prefix)
{
	char vdev[160], fprefix[80];
	pid_t pid;

	snprintf(vdev, sizeof(vdev), "net_memif0,role=server,socket=%s,socket-abstract=no", sock);
	snprintf(fprefix, sizeof(fprefix), "--file-prefix=%s", prefix);
	unlink(sock);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		setpgid(0, 0);
		execlp("dpdk-testpmd", "dpdk-testpmd", "--no-huge", "-m", "512", "--no-shconf",
		       "--no-pci", "--no-telemetry", "-l", "0,1", fprefix, "--vdev", vdev, "--",
		       "--forward-mode=io", "--auto-start", "--stats-period", "100",
		       "--total-num-mbufs=16384", "--nb-cores=1", (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* SIGINT lets testpmd close its port; one that does not exit within 5 s is killed. */
static void stop_testpmd(pid_t tp)
{
	struct timespec wait = {0, 50 * 1000 * 1000};

	kill(tp, SIGINT);
	for (int i = 0; i < 100; i++) {
		if (waitpid(tp, NULL, WNOHANG) == tp)
			return;
		nanosleep(&wait, NULL);
	}
	kill(-tp, SIGKILL);
	waitpid(tp, NULL, 0);
}

/* An EAL runtime directory holds only files (sockets, config). */
static void remove_dir(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(o, key);

	if (!cJSON_IsNumber(v))
		printf("\n  JSON key %s is not a number\n", key);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void test_memif_against_testpmd(void)
{
	char bin[PATH_MAX], sock[64], prefix[64], json[80], rundir[128], *text;
	struct timespec wait = {0, 50 * 1000 * 1000};
	cJSON *o;
	pid_t tp;
	int rc;

	if (!gen_binary(bin, sizeof(bin)))
		return;
	if (system("command -v dpdk-testpmd >/dev/null 2>&1") != 0) {
		nemo_test_skip("dpdk-testpmd is not installed");
		return;
	}
	snprintf(sock, sizeof(sock), "/tmp/nemo-gen-test-%d.sock", (int)getpid());
	snprintf(prefix, sizeof(prefix), "nemo-gen-test-tp-%d", (int)getpid());
	snprintf(json, sizeof(json), "/tmp/nemo-gen-test-%d.json", (int)getpid());
	tp = start_testpmd(sock, prefix);
	CU_ASSERT_FATAL(tp > 0);
	for (int i = 0; i < 100 && access(sock, F_OK) != 0; i++)
		nanosleep(&wait, NULL);

	/* 200 kpps for 1 s: modest, so a noisy shared machine does not decide the outcome */
	rc = run_prog((char *const[]){bin, "--socket", sock, "--rate", "200k", "--duration", "1",
				      "--flows", "16", "--json", json, "--quiet", NULL},
		      "/dev/null", "/tmp/nemo-gen-test-tp.err");
	stop_testpmd(tp);
	unlink(sock);
	snprintf(rundir, sizeof(rundir), "/var/run/dpdk/%s", prefix);
	remove_dir(rundir);

	CU_ASSERT_EQUAL(rc, 0);
	if (rc) {
		text = test_read_file("/tmp/nemo-gen-test-tp.err", NULL);
		printf("\n  nemo-gen exit %d, stderr: %s\n", rc, text ? text : "?");
		free(text);
	}
	text = test_read_file(json, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	o = cJSON_Parse(text);
	free(text);
	unlink(json);
	unlink("/tmp/nemo-gen-test-tp.err");
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	{
		double sent = num(o, "sent"), received = num(o, "received");
		double handled = sent + num(o, "tx_dropped") + num(o, "late_skipped");
		double p50 = num(o, "lat_p50_us"), p99 = num(o, "lat_p99_us");

		/*
		 * What the generator owns is exact: it handled every packet the profile asked
		 * for. What testpmd gives back depends on who else uses these two cores, so
		 * the figures (README.md) are a benchmark, and here only sanity is checked.
		 */
		if (fabs(handled - 2e5) > 0.01 * 2e5 || received <= 0)
			printf("\n  sent %.0f handled %.0f received %.0f\n", sent, handled,
			       received);
		CU_ASSERT(fabs(handled - 2e5) <= 0.01 * 2e5);
		CU_ASSERT(received > 0 && received <= sent);
		CU_ASSERT(p50 > 0 && p50 <= p99 && p99 <= num(o, "lat_max_us"));
		NEAR(num(o, "unknown_rx"), 0, 0);
		NEAR(num(o, "duration_s"), 1.0, 0.01);
	}
	cJSON_Delete(o);
}

NEMO_SUITE(gen_memif, NULL, NULL, {"link_down_names_the_socket", test_memif_link_down},
	   {"testpmd_io_fwd_200kpps", test_memif_against_testpmd})
