/* test_nf_core.c - nemo-nf's config checks, cycle accounting and the harvest channel contract. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rte_rcu_qsbr.h>

#include "nemo/harvester.h"
#include "nemo/nf.h"
#include "test.h"

/* ---- config ---- */

static const char *const good_cfg =
	"{\"name\":\"t1\",\"ports\":[{\"vdev\":\"net_null0\",\"rx_ring\":1024,"
	"\"line_rate_pps\":14880952}],"
	"\"lcores\":[{\"lcore\":1,\"cpu\":1,\"rx\":[{\"port\":0}],"
	"\"chain\":[\"fwd\",{\"module\":\"monitor\"}],\"idle\":\"sleep\","
	"\"sched\":{\"policy\":\"fifo\",\"priority\":10}}]}";

static void test_config_good(void)
{
	struct nf_config cfg;
	struct cfg_ctx ctx = {0};

	CU_ASSERT_EQUAL_FATAL(nf_config_parse(good_cfg, "good.json", &cfg, &ctx), 0);
	CU_ASSERT_STRING_EQUAL(cfg.name, "t1");
	CU_ASSERT_EQUAL(cfg.nb_ports, 1);
	CU_ASSERT_EQUAL(cfg.ports[0].tx_queues, 1); /* one per lcore */
	CU_ASSERT_EQUAL(cfg.nb_lcores, 1);
	CU_ASSERT_EQUAL(cfg.lcores[0].chain_len, 2);
	CU_ASSERT_STRING_EQUAL(cfg.lcores[0].chain_names[1], "monitor");
	CU_ASSERT_EQUAL(cfg.lcores[0].idle.policy, HC_IDLE_SLEEP);
	CU_ASSERT_EQUAL(cfg.lcores[0].sched.policy, HC_SCHED_FIFO);
	CU_ASSERT_EQUAL(cfg.lcores[0].sched.priority, 10);
	/* 1024 descriptors fill in 68.8 us at 14.88 Mpps; minus the 40 us wake-up margin */
	CU_ASSERT_EQUAL(cfg.lcores[0].idle.max_sleep_us, 28);
	/* idle detection by time, with no bound on empty polls, unless asked */
	CU_ASSERT_EQUAL(cfg.lcores[0].idle.detect, NF_IDLE_DETECT_TIME);
	CU_ASSERT_EQUAL(cfg.lcores[0].idle.empty_polls, 0);
	CU_ASSERT_EQUAL(cfg.lcores[0].idle.idle_poll_us, 0);
	/* the NF times its own delay on 1 in 64 packets unless told otherwise */
	CU_ASSERT_EQUAL(cfg.delay_sample_every, 64);
	nf_config_free(&cfg);
}

static void test_config_idle_keys(void)
{
	static const char *const count =
		"{\"ports\":[{\"vdev\":\"net_null0\"}],\"lcores\":[{\"lcore\":1,\"rx\":[{\"port\":0}],"
		"\"chain\":[\"fwd\"],\"idle\":{\"policy\":\"sleep\",\"detect\":\"count\"}}]}";
	static const char *const timed =
		"{\"ports\":[{\"vdev\":\"net_null0\"}],\"lcores\":[{\"lcore\":1,\"rx\":[{\"port\":0}],"
		"\"chain\":[\"fwd\"],\"idle\":{\"policy\":\"sleep\",\"idle_poll_us\":50,"
		"\"empty_polls\":1000}}]}";
	struct nf_config cfg;
	struct cfg_ctx ctx = {0};

	/* counting keeps its old default of 256 empty polls */
	CU_ASSERT_EQUAL_FATAL(nf_config_parse(count, "count.json", &cfg, &ctx), 0);
	CU_ASSERT_EQUAL(cfg.lcores[0].idle.detect, NF_IDLE_DETECT_COUNT);
	CU_ASSERT_EQUAL(cfg.lcores[0].idle.empty_polls, 256);
	nf_config_free(&cfg);
	CU_ASSERT_EQUAL_FATAL(nf_config_parse(timed, "time.json", &cfg, &ctx), 0);
	CU_ASSERT_EQUAL(cfg.lcores[0].idle.detect, NF_IDLE_DETECT_TIME);
	CU_ASSERT_EQUAL(cfg.lcores[0].idle.idle_poll_us, 50);
	CU_ASSERT_EQUAL(cfg.lcores[0].idle.empty_polls, 1000);
	nf_config_free(&cfg);
}

static void expect_cfg_error(const char *json, const char *needle)
{
	struct nf_config cfg;
	struct cfg_ctx ctx = {0};

	CU_ASSERT_NOT_EQUAL(nf_config_parse(json, "bad.json", &cfg, &ctx), 0);
	if (!strstr(ctx.err, needle))
		printf("\n  error was: %s\n  wanted:    %s\n", ctx.err, needle);
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, needle));
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, "bad.json"));
}

#define PORT0	  "\"ports\":[{\"vdev\":\"net_null0\"}]"
#define LC(extra) "\"lcores\":[{\"lcore\":1,\"rx\":[{\"port\":0}],\"chain\":[\"fwd\"]" extra "}]"

static void test_config_errors(void)
{
	expect_cfg_error("{\"ports\": [", "malformed JSON");
	expect_cfg_error("{" PORT0 "}", "key 'lcores': required key is missing");
	expect_cfg_error("{" PORT0 "," LC("") ",\"colour\":1}", "key 'colour': unknown key");
	expect_cfg_error("{\"ports\":[{\"vdev\":\"net_null0\",\"rx_ring\":\"big\"}]," LC("") "}",
			 "key 'ports[0].rx_ring': expected an integer, got a string");
	expect_cfg_error("{\"ports\":[{\"vdev\":\"net_null0\",\"rx_ring\":1000}]," LC("") "}",
			 "powers of two");
	expect_cfg_error("{\"ports\":[{}]," LC("") "}", "exactly one of 'vdev' and 'pci'");
	expect_cfg_error("{" PORT0 ",\"lcores\":[{\"lcore\":1,\"rx\":[{\"port\":0}],"
			 "\"chain\":[\"fwd\",\"teleport\"]}]}",
			 "key 'lcores[0].chain[1]': unknown NF module 'teleport' (known: fwd");
	expect_cfg_error("{" PORT0 ",\"lcores\":[{\"lcore\":1,\"rx\":[{\"port\":3}],"
			 "\"chain\":[\"fwd\"]}]}",
			 "key 'lcores[0].rx[0]': port 3 does not exist");
	expect_cfg_error("{" PORT0 ",\"lcores\":[{\"lcore\":1,\"rx\":[{\"port\":0,\"queue\":1}],"
			 "\"chain\":[\"fwd\"]}]}",
			 "port 0 has 1 rx queues; no queue 1");
	expect_cfg_error("{" PORT0 ",\"lcores\":[{\"lcore\":1,\"rx\":[{\"port\":0}],"
			 "\"chain\":[\"fwd\"]},{\"lcore\":2,\"rx\":[{\"port\":0}],"
			 "\"chain\":[\"fwd\"]}]}",
			 "port 0 queue 0 is already polled by another lcore");
	expect_cfg_error("{" PORT0 ",\"lcores\":[{\"lcore\":0,\"rx\":[{\"port\":0}],"
			 "\"chain\":[\"fwd\"]}]}",
			 "lcore 0 is the main (control) lcore");
	expect_cfg_error(
		"{" PORT0 "," LC(",\"idle\":{\"policy\":\"spin\"}") "}",
		"key 'lcores[0].idle.policy': 'spin' is not one of: poll, sleep, interrupt");
	expect_cfg_error("{" PORT0
			 "," LC(",\"idle\":{\"policy\":\"sleep\",\"detect\":\"polls\"}") "}",
			 "key 'lcores[0].idle.detect': 'polls' is not one of: time, count");
	expect_cfg_error("{" PORT0
			 "," LC(",\"idle\":{\"policy\":\"sleep\",\"idle_poll_us\":0}") "}",
			 "key 'lcores[0].idle.idle_poll_us': 0 is out of range [1,");
	expect_cfg_error("{" PORT0
			 "," LC(",\"idle\":{\"policy\":\"sleep\",\"max_sleep_us\":5000}") "}",
			 "max_sleep_us 5000 lets the rx ring overflow");
	expect_cfg_error("{\"ports\":[{\"vdev\":\"net_null0\",\"rx_ring\":256}]," LC("") "}",
			 "key 'lcores[0].idle': the rx ring fills at line rate in less than");
	expect_cfg_error("{" PORT0 "," LC(",\"sched\":{\"policy\":\"fifo\",\"priority\":100}") "}",
			 "key 'lcores[0].sched.priority': 100 is out of range [1, 99]");
	expect_cfg_error("{\"name\":\"a/b\"," PORT0 "," LC("") "}", "key 'name': use letters");
	/* a key given twice, at the root and inside a module's config that no table describes */
	expect_cfg_error("{\"name\":\"a\"," PORT0 "," LC("") ",\"name\":\"b\"}",
			 "key 'name': given more than once");
	expect_cfg_error("{" PORT0 ",\"lcores\":[{\"lcore\":1,\"rx\":[{\"port\":0}],"
			 "\"chain\":[{\"module\":\"acl\",\"rules\":[],\"rules\":[]}]}]}",
			 "key 'lcores[0].chain[0].rules': given more than once");
	expect_cfg_error("{\"name\":\"a\\u0000b\"," PORT0 "," LC("") "}", "holds \\u0000");
	expect_cfg_error("{\"delay_sample_every\":2000000," PORT0 "," LC("") "}",
			 "key 'delay_sample_every': 2e+06 is out of range [0, 1e+06]");
	expect_cfg_error("{\"delay_sample_every\":-1," PORT0 "," LC("") "}",
			 "key 'delay_sample_every'");
}

static void test_max_sleep_bound(void)
{
	/* 16384 descriptors at 14 Mpps fill in 1170 us; less the wake-up margin */
	CU_ASSERT_EQUAL(nf_max_sleep_ns(16384, 14000000, 40000), 1170285 - 40000);
	/* a ring that fills faster than a wake-up: no sleep is safe */
	CU_ASSERT_EQUAL(nf_max_sleep_ns(512, 14880952, 40000), 0);
}

/* ---- the NF's own delay: the histogram its lcores fill ---- */

static void test_delay_hist(void)
{
	static struct nf_delay_hist h;
	uint32_t prev = 0;
	uint64_t lo, hi;

	/* every value lands in a bucket that holds it, at most 1/32 of its value wide (or 32 ns),
	 * and the buckets follow the values in order up to 2^25 ns */
	for (uint64_t v = 0; v < (1ull << 25); v += 1 + v / 97) {
		uint32_t idx = nf_delay_index(v);

		nf_delay_bucket_bounds(idx, &lo, &hi);
		if (!(lo <= v && v <= hi))
			printf("\n  %llu ns: bucket %u holds %llu..%llu\n", (unsigned long long)v,
			       idx, (unsigned long long)lo, (unsigned long long)hi);
		CU_ASSERT_FATAL(lo <= v && v <= hi);
		CU_ASSERT_FATAL(hi - lo + 1 <= 32 || (hi - lo + 1) * 32 <= lo);
		CU_ASSERT_FATAL(idx >= prev && idx < NF_DELAY_BUCKETS);
		prev = idx;
	}
	/* a 33.5 ms delay and more share the top bucket */
	CU_ASSERT_EQUAL(nf_delay_index(1ull << 25), NF_DELAY_BUCKETS - 1);
	CU_ASSERT_EQUAL(nf_delay_index(UINT64_MAX >> 8), NF_DELAY_BUCKETS - 1);
	/* nothing recorded: no figure */
	CU_ASSERT_EQUAL(nf_delay_percentile(&h, 99), 0);
	/* 1, 2, ..., 1000 us: each percentile within 1.6 % of the exact rank's value */
	for (uint64_t us = 1; us <= 1000; us++)
		nf_delay_record(&h, us * 1000, 1);
	CU_ASSERT_EQUAL(h.count, 1000);
	CU_ASSERT_EQUAL(h.max_ns, 1000000);
	CU_ASSERT_EQUAL(h.sum_ns, 500500000ull);
	{
		const double pct[] = {50, 99, 99.9}, want[] = {500000, 990000, 999000};

		for (int i = 0; i < 3; i++) {
			double got = (double)nf_delay_percentile(&h, pct[i]);

			printf("%s p%g %.0f ns (exact %.0f)", i ? "," : "\n  1..1000 us:", pct[i],
			       got, want[i]);
			CU_ASSERT(got >= want[i] * 0.984 && got <= want[i] * 1.016);
		}
		printf("\n");
	}
	CU_ASSERT_EQUAL(nf_delay_percentile(&h, 100), 1000000);
	/* a weighted record counts n values (a burst's send time, one per sampled packet) */
	memset(&h, 0, sizeof(h));
	nf_delay_record(&h, 5000, 10);
	nf_delay_record(&h, 900000, 1);
	CU_ASSERT_EQUAL(h.count, 11);
	CU_ASSERT_EQUAL(h.sum_ns, 950000);
	CU_ASSERT(nf_delay_percentile(&h, 90) >= 4920 && nf_delay_percentile(&h, 90) <= 5080);
	CU_ASSERT(nf_delay_percentile(&h, 99) >= 885600 && nf_delay_percentile(&h, 99) <= 900000);
}

/* ---- munmap waits for lcores in a burst (unmap.c) ---- */

struct unmap_reader {
	struct rte_rcu_qsbr *v;
	volatile const uint8_t *page;
	volatile int in_burst;
	volatile uint64_t sum;
	uint64_t done_ns;
};

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* An lcore in one long "burst": it reads the page for 150 ms, then reports quiescent. */
static void *unmap_reader_main(void *arg)
{
	struct unmap_reader *r = arg;
	uint64_t end;

	nf_unmap_reader(0);
	rte_rcu_qsbr_thread_register(r->v, 0);
	rte_rcu_qsbr_thread_online(r->v, 0);
	r->in_burst = 1;
	end = mono_ns() + 150000000ull;
	while (mono_ns() < end)
		for (int i = 0; i < 4096; i += 64)
			r->sum += r->page[i];
	r->done_ns = mono_ns();
	rte_rcu_qsbr_quiescent(r->v, 0);
	/* its own munmap, between two rounds, waits for nobody (not for itself) */
	{
		void *own = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				 -1, 0);

		if (own != MAP_FAILED)
			munmap(own, 4096);
	}
	rte_rcu_qsbr_thread_offline(r->v, 0);
	rte_rcu_qsbr_thread_unregister(r->v, 0);
	nf_unmap_reader(RTE_QSBR_THRID_INVALID);
	return NULL;
}

/*
 * What the memif PMD does when its peer leaves, made deterministic: another thread unmaps
 * memory an lcore is reading in a burst. With the guard the munmap returns only once the lcore
 * has left its burst (without it, the reader faults and this test binary dies).
 */
static void test_unmap_waits_for_lcores(void)
{
	size_t size = rte_rcu_qsbr_get_memsize(2);
	struct rte_rcu_qsbr *v = aligned_alloc(64, (size + 63) / 64 * 64);
	struct unmap_reader r = {0};
	uint64_t t0, t1;
	pthread_t t;
	uint8_t *page;

	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	CU_ASSERT_EQUAL_FATAL(rte_rcu_qsbr_init(v, 2), 0);
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(page != MAP_FAILED);
	memset(page, 1, 4096);
	r.v = v;
	r.page = page;
	nf_unmap_guard(v);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, unmap_reader_main, &r), 0);
	while (!r.in_burst)
		usleep(100);
	t0 = mono_ns();
	CU_ASSERT_EQUAL(munmap(page, 4096), 0);
	t1 = mono_ns();
	pthread_join(t, NULL);
	printf("\n  munmap returned %.1f ms after the call, %.1f ms after the reader's burst ended\n",
	       (double)(t1 - t0) / 1e6, ((double)t1 - (double)r.done_ns) / 1e6);
	CU_ASSERT(t1 >= r.done_ns);
	CU_ASSERT(r.sum > 0);
	/* no reader online: no wait */
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(page != MAP_FAILED);
	t0 = mono_ns();
	CU_ASSERT_EQUAL(munmap(page, 4096), 0);
	CU_ASSERT(mono_ns() - t0 < 20000000ull);
	/* a bad argument is still the kernel's answer */
	CU_ASSERT_EQUAL(munmap((void *)1, 4096), -1);
	CU_ASSERT_EQUAL(errno, EINVAL);
	nf_unmap_guard(NULL);
	free(v);
}

/* ---- accounting ---- */

static void test_accounting(void)
{
	struct nf_acct a;
	uint64_t t = 1000000;

	nf_acct_init(&a, t, 1000000000ull); /* 1 GHz: 1000 cycles per us */
	t += 500;
	nf_acct_iteration(&a, t, true);
	t += 100;
	nf_acct_iteration(&a, t, false); /* idle period starts at 1000500 */
	t += 100;
	nf_acct_iteration(&a, t, false);
	t += 20000;
	nf_acct_sleep(&a, t);
	t += 100;
	nf_acct_iteration(&a, t, false);
	t += 700;
	nf_acct_iteration(&a, t, true); /* idle period ended at t - 700: 20300 cycles = 20 us */
	CU_ASSERT_EQUAL(a.busy, 1200);
	CU_ASSERT_EQUAL(a.idle_poll, 300);
	CU_ASSERT_EQUAL(a.sleep, 20000);
	CU_ASSERT_EQUAL(nf_acct_total(&a), 21500);
	CU_ASSERT_EQUAL(a.busy + a.idle_poll + a.sleep, nf_acct_total(&a));
	CU_ASSERT_EQUAL(a.iterations, 5);
	CU_ASSERT_EQUAL(a.busy_iterations, 2);
	CU_ASSERT_EQUAL(a.sleeps, 1);
	/* 20 us lands in bucket 4: [16, 32) us */
	CU_ASSERT_EQUAL(a.idle_hist[4], 1);
	for (int i = 0; i < HC_IDLE_BUCKETS; i++)
		if (i != 4)
			CU_ASSERT_EQUAL(a.idle_hist[i], 0);
}

/* ---- idle detection ---- */

/* One empty stretch from `t`, polls every `step` cycles: the cycles until it says "yield". */
static uint64_t cycles_to_yield(struct nf_idle *s, uint64_t t, uint64_t step, bool lease)
{
	for (uint64_t now = t + step;; now += step)
		if (nf_idle_empty(s, now - step, now, lease) || now - t > 100000000)
			return now - t;
}

static void test_idle_time_not_iterations(void)
{
	struct nf_idle_config cfg = {.policy = HC_IDLE_SLEEP, .min_sleep_us = 20};
	struct nf_idle s;

	/* 1 GHz: 1000 cycles per us; a wake-up measured at 15 us */
	nf_idle_init(&s, &cfg, 1000000000ull, 15000);
	CU_ASSERT_EQUAL(s.break_even, 35000); /* min sleep + wake-up */
	CU_ASSERT_EQUAL(s.budget, 35000);
	/* the same time budget whether an empty poll takes 50 or 400 cycles */
	CU_ASSERT_EQUAL(cycles_to_yield(&s, 1000, 50, false), 35000);
	nf_idle_busy(&s, 1000000);
	s.gap_ewma = 0;
	CU_ASSERT_EQUAL(cycles_to_yield(&s, 2000000, 400, false), 35200);
	/* a harvester's lease: the first empty poll yields */
	nf_idle_busy(&s, 3000000);
	s.gap_ewma = 0;
	CU_ASSERT_EQUAL(cycles_to_yield(&s, 4000000, 400, true), 400);
	/* idle_poll_us overrides the budget; empty_polls stays an upper bound */
	cfg.idle_poll_us = 5;
	nf_idle_init(&s, &cfg, 1000000000ull, 15000);
	CU_ASSERT_EQUAL(cycles_to_yield(&s, 1000, 100, false), 5000);
	cfg.empty_polls = 10;
	nf_idle_init(&s, &cfg, 1000000000ull, 15000);
	CU_ASSERT_EQUAL(cycles_to_yield(&s, 1000, 100, false), 1000);
	/* detect "count": iterations alone, however long they last, and no lease */
	cfg = (struct nf_idle_config){.policy = HC_IDLE_SLEEP,
				      .detect = NF_IDLE_DETECT_COUNT,
				      .empty_polls = 256,
				      .min_sleep_us = 20};
	nf_idle_init(&s, &cfg, 1000000000ull, 15000);
	CU_ASSERT_EQUAL(cycles_to_yield(&s, 1000, 400, true), 256 * 400);
}

static void test_idle_learns_gaps(void)
{
	struct nf_idle_config cfg = {.policy = HC_IDLE_SLEEP, .min_sleep_us = 20};
	struct nf_idle s;
	uint64_t t = 1000000;
	int n;

	nf_idle_init(&s, &cfg, 1000000000ull, 15000);
	/* traffic with 200 us gaps: after a few, the lcore sleeps at once */
	for (n = 0; n < 40 && s.gap_ewma < (int64_t)s.break_even; n++) {
		nf_idle_empty(&s, t, t + 100, false);
		t += 200000;
		nf_idle_busy(&s, t);
		t += 1000;
	}
	printf("\n  200 us gaps: sleeps at once after %d gaps (prediction %.0f us)\n", n,
	       (double)s.gap_ewma / 1000);
	CU_ASSERT(n > 1 && n < 20);
	CU_ASSERT_EQUAL(cycles_to_yield(&s, t, 100, false), 100);
	/*
	 * Then the traffic turns dense: each sleep at once finds packets on its first poll, so
	 * the gap is only known to end within the sleep; learnt as its middle, the prediction
	 * falls back under the break-even and the lcore polls again.
	 */
	for (n = 0; n < 100 && s.gap_ewma >= (int64_t)s.break_even; n++) {
		uint64_t slept;

		CU_ASSERT_TRUE(nf_idle_empty(&s, t, t + 100, false));
		slept = t + 100;
		t = slept + 20000 + 15000; /* min sleep + wake-up */
		nf_idle_slept(&s, slept, t);
		nf_idle_busy(&s, t);
		t += 1000;
	}
	printf("  dense again: polls again after %d sleeps\n", n);
	CU_ASSERT(n > 1 && n < 60);
	CU_ASSERT(cycles_to_yield(&s, t, 100, false) >= 35000);
	CU_ASSERT(s.gaps_learnt > 0);
}

/* ---- harvest channel: writer and reader ---- */

struct torn_ctx {
	struct hc_lcore_record *rec;
	volatile int stop;
};

/* Writes records whose fields all derive from one counter: a torn copy would mix two. */
static void *torn_writer(void *arg)
{
	struct torn_ctx *t = arg;

	for (uint64_t k = 1; !t->stop; k++) {
		hc_write_begin(t->rec);
		t->rec->busy_cycles = k;
		t->rec->idle_poll_cycles = 2 * k;
		t->rec->sleep_cycles = 3 * k;
		t->rec->rx_pkts = k;
		for (int i = 0; i < HC_IDLE_BUCKETS; i++)
			t->rec->idle_hist[i] = k;
		t->rec->total_cycles = 6 * k;
		hc_write_end(t->rec);
	}
	return NULL;
}

/*
 * The window's fn: the NF's busy cycles on packets for functions, between two records. It is a
 * part of busy (never more), and a record from a writer that does not count it (0 in what was
 * padding), or counters that went back, give 0: the spare is what it always was.
 */
static void test_window_fn_cycles(void)
{
	struct hc_lcore_record a = {0}, b = {0};
	struct hv_window w;

	a.total_cycles = 1000, a.busy_cycles = 100, a.fn_cycles = 40, a.fn_pkts = 7;
	b = a;
	b.total_cycles += 1000, b.busy_cycles += 850, b.fn_cycles += 650, b.fn_pkts += 300;
	b.rx_pkts = 1000;
	CU_ASSERT_EQUAL_FATAL(hv_window(&a, &b, &w), 0);
	CU_ASSERT_EQUAL(w.busy, 850);
	CU_ASSERT_EQUAL(w.fn, 650);
	CU_ASSERT_EQUAL(w.fn_pkts, 300);
	CU_ASSERT_EQUAL(w.spare, 150);
	CU_ASSERT_DOUBLE_EQUAL(w.spare_ratio, 0.15, 1e-9);
	/* more than busy (garbage): clamped */
	b.fn_cycles = a.fn_cycles + 5000;
	CU_ASSERT_EQUAL(hv_window(&a, &b, &w), 0);
	CU_ASSERT_EQUAL(w.fn, 850);
	/* went back: none */
	b.fn_cycles = 1, b.fn_pkts = 1;
	CU_ASSERT_EQUAL(hv_window(&a, &b, &w), 0);
	CU_ASSERT_EQUAL(w.fn, 0);
	CU_ASSERT_EQUAL(w.fn_pkts, 0);
	/* an older writer: both 0 */
	a.fn_cycles = b.fn_cycles = a.fn_pkts = b.fn_pkts = 0;
	CU_ASSERT_EQUAL(hv_window(&a, &b, &w), 0);
	CU_ASSERT_EQUAL(w.fn, 0);
	CU_ASSERT_DOUBLE_EQUAL(w.spare_ratio, 0.15, 1e-9);
}

static void test_channel_roundtrip(void)
{
	char name[32];
	struct nf_channel *w;
	struct hv_channel *r;
	struct torn_ctx t = {0};
	pthread_t th;
	unsigned int ok = 0, torn = 0;

	snprintf(name, sizeof(name), "test-%d", getpid());
	w = nf_channel_create(name, 2, 2000000000ull, 100);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	/* a second writer under the same name is refused while the first lives */
	CU_ASSERT_PTR_NULL(nf_channel_create(name, 2, 1, 100));
	r = hv_channel_open(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(hv_channel_nb_lcores(r), 2);
	CU_ASSERT_EQUAL(hv_channel_tsc_hz(r), 2000000000ull);

	t.rec = nf_channel_record(w, 1);
	t.rec->state = HC_STATE_BUSY;
	pthread_create(&th, NULL, torn_writer, &t);
	/* 200 000 tries, and on a loaded host more, up to 10 s, until 1 000 have got through */
	uint64_t deadline = mono_ns() + 10000000000ull;

	for (int i = 0; i < 200000 || (ok < 1000 && mono_ns() < deadline); i++) {
		struct hc_lcore_record s;

		if (hv_channel_read(r, 1, &s) != 0)
			continue;
		ok++;
		if (s.idle_poll_cycles != 2 * s.busy_cycles ||
		    s.sleep_cycles != 3 * s.busy_cycles || s.total_cycles != 6 * s.busy_cycles ||
		    s.idle_hist[15] != s.busy_cycles)
			torn++;
	}
	t.stop = 1;
	pthread_join(th, NULL);
	printf("\n  %u untorn reads, %u torn\n", ok, torn);
	CU_ASSERT(ok >= 1000); /* the reader must get through a writer that never pauses */
	CU_ASSERT_EQUAL(torn, 0);
	{
		struct hc_lcore_record s;

		CU_ASSERT_EQUAL(hv_channel_read(r, 2, &s), -ERANGE);
		/* a clean exit is visible to the reader */
		nf_channel_destroy(w);
		CU_ASSERT_EQUAL(hv_channel_read(r, 0, &s), -ESTALE);
	}
	hv_channel_close(r);
	CU_ASSERT_PTR_NULL(hv_channel_open(name));
	CU_ASSERT_EQUAL(errno, ENOENT);
}

static void test_channel_sleep_extrapolated(void)
{
	struct hc_lcore_record r = {0};
	const uint64_t hz = 1000000000ull; /* one cycle a ns */

	r.state = HC_STATE_SLEEPING;
	r.state_since_tsc = 900;
	r.max_sleep_ns = 2000;
	r.now_tsc = 1000;
	r.total_cycles = 600;
	r.sleep_cycles = 100;
	hc_record_extrapolate(&r, 1500, hz);
	CU_ASSERT_EQUAL(r.sleep_cycles, 600);
	CU_ASSERT_EQUAL(r.total_cycles, 1100);
	/* still asleep long after its longest sleep ended (at 2900): dead, not idle */
	hc_record_extrapolate(&r, 50000, hz);
	CU_ASSERT_EQUAL(r.sleep_cycles, 2000);
	CU_ASSERT_EQUAL(r.total_cycles, 2500);
	CU_ASSERT_EQUAL(r.now_tsc, 2900);
	r.state = HC_STATE_BUSY;
	hc_record_extrapolate(&r, 90000, hz);
	CU_ASSERT_EQUAL(r.total_cycles, 2500);
}

/* Write a fake channel object with a chosen header, for the reader's checks. */
static void write_fake(const char *name, uint64_t magic, uint32_t version, int32_t pid)
{
	char path[64];
	struct hc_header h = {0};
	int fd;

	snprintf(path, sizeof(path), "/" HC_SHM_PREFIX "%s", name);
	fd = shm_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	h.magic = magic;
	h.version = version;
	h.header_size = sizeof(h);
	h.record_size = sizeof(struct hc_lcore_record);
	h.nb_records = 1;
	h.writer_pid = pid;
	CU_ASSERT(ftruncate(fd, (off_t)hc_shm_size(1)) == 0);
	CU_ASSERT(pwrite(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h));
	close(fd);
}

static void test_channel_bad_headers(void)
{
	char name[32], path[64];
	pid_t dead;

	snprintf(name, sizeof(name), "test-bad-%d", getpid());
	snprintf(path, sizeof(path), "/" HC_SHM_PREFIX "%s", name);
	write_fake(name, 0x1234, HC_VERSION, getpid());
	CU_ASSERT_PTR_NULL(hv_channel_open(name));
	CU_ASSERT_EQUAL(errno, EPROTO);
	write_fake(name, HC_MAGIC, HC_VERSION + 1, getpid());
	CU_ASSERT_PTR_NULL(hv_channel_open(name));
	CU_ASSERT_EQUAL(errno, EPROTONOSUPPORT);
	dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	write_fake(name, HC_MAGIC, HC_VERSION, dead);
	CU_ASSERT_PTR_NULL(hv_channel_open(name));
	CU_ASSERT_EQUAL(errno, ESRCH);
	/* a live writer with a TSC of 0 Hz: rates would divide by zero */
	write_fake(name, HC_MAGIC, HC_VERSION, getpid());
	CU_ASSERT_PTR_NULL(hv_channel_open(name));
	CU_ASSERT_EQUAL(errno, EPROTO);
	write_fake(name, HC_MAGIC, HC_VERSION, dead);
	/* a new writer replaces the stale object its dead predecessor left */
	{
		struct nf_channel *w = nf_channel_create(name, 1, 1000, 100);

		CU_ASSERT_PTR_NOT_NULL(w);
		nf_channel_destroy(w);
	}
	shm_unlink(path);
}

/*
 * The mapping is shared: a header rewritten after the reader attached (a broken or hostile
 * writer) must not move the reader past what it mapped. It keeps what it checked at open.
 */
static void test_channel_header_rewritten(void)
{
	struct hc_lcore_record s;
	struct nf_channel *w;
	struct hv_channel *r;
	struct hc_header *h;
	char name[32];

	snprintf(name, sizeof(name), "test-rw-%d", getpid());
	w = nf_channel_create(name, 2, 2000000000ull, 100);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	r = hv_channel_open(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	h = nf_channel_header(w);
	h->nb_records = HC_MAX_LCORES;
	h->header_size = 1u << 30;
	h->tsc_hz = 0;
	memset(h->name, 'x', sizeof(h->name));
	CU_ASSERT_EQUAL(hv_channel_nb_lcores(r), 2);
	CU_ASSERT_EQUAL(hv_channel_tsc_hz(r), 2000000000ull);
	CU_ASSERT_EQUAL(hv_channel_read(r, 100, &s), -ERANGE);
	CU_ASSERT_EQUAL(hv_channel_set_sleep_floor(r, 100, 1000, 1000000), -ERANGE);
	CU_ASSERT_EQUAL(hv_channel_read(r, 1, &s), 0);
	CU_ASSERT_EQUAL(hv_channel_set_sleep_floor(r, 1, 1000, 1000000), 0);
	/* the writer's own view goes through its header: put it back first */
	h->header_size = sizeof(*h);
	h->nb_records = 2;
	CU_ASSERT_EQUAL(nf_channel_record(w, 1)->sleep_floor_ns, 1000);
	hv_channel_close(r);
	nf_channel_destroy(w);
}

/*
 * The RT budget guard asks for a sleep once a tenth of its slice has gone by with less than
 * min_pct of it asleep, stops asking once the lcore has slept its share, and starts a new
 * count with every slice; off (slice 0), it never asks.
 */
static void test_rt_guard(void)
{
	struct nf_rt_guard g = {.slice = 10000, .min_pct = 10, .start = 1000};
	struct nf_rt_guard off = {0};

	CU_ASSERT_FALSE(nf_rt_guard_due(&g, 1500)); /* under a tenth of the slice: no verdict */
	CU_ASSERT_TRUE(nf_rt_guard_due(&g, 3000));  /* 2000 cycles run, none asleep */
	nf_rt_guard_slept(&g, 3000, 3100);	    /* 100 of 2100: under 10 % */
	CU_ASSERT_TRUE(nf_rt_guard_due(&g, 3100));
	nf_rt_guard_slept(&g, 3100, 3400); /* 400 of 2400: its share */
	CU_ASSERT_FALSE(nf_rt_guard_due(&g, 3400));
	CU_ASSERT_FALSE(nf_rt_guard_due(&g, 5000)); /* 400 of 4000: still 10 % */
	CU_ASSERT_TRUE(nf_rt_guard_due(&g, 6000));  /* 400 of 5000: 8 % */
	CU_ASSERT_EQUAL(g.forced, 3);
	/* a new slice: the count starts over, and the first tenth asks nothing */
	CU_ASSERT_FALSE(nf_rt_guard_due(&g, 11000));
	CU_ASSERT_EQUAL(g.start, 11000);
	CU_ASSERT_EQUAL(g.slept, 0);
	CU_ASSERT_FALSE(nf_rt_guard_due(&g, 11900));
	CU_ASSERT_TRUE(nf_rt_guard_due(&g, 12100));
	for (uint64_t t = 0; t < 100000; t += 777)
		CU_ASSERT_FALSE(nf_rt_guard_due(&off, t));
	CU_ASSERT_EQUAL(off.forced, 0);
}

NEMO_SUITE(nf_core, NULL, NULL, {"config: a good file parses with defaults", test_config_good},
	   {"config: each bad input names file and key", test_config_errors},
	   {"config: idle detection keys and their defaults", test_config_idle_keys},
	   {"config: max sleep bound from ring and line rate", test_max_sleep_bound},
	   {"accounting: busy + idle_poll + sleep = total", test_accounting},
	   {"own delay: histogram buckets, percentiles, weights", test_delay_hist},
	   {"munmap waits for lcores in a burst", test_unmap_waits_for_lcores},
	   {"idle: a time budget, not a count; a lease yields at once",
	    test_idle_time_not_iterations},
	   {"idle: learns long gaps, and unlearns them", test_idle_learns_gaps},
	   {"idle: the RT budget guard keeps its share of every slice asleep", test_rt_guard},
	   {"channel: writer to reader, never torn", test_channel_roundtrip},
	   {"channel: a window's fn cycles, a part of busy; 0 from an older writer",
	    test_window_fn_cycles},
	   {"channel: a sleeping lcore's sleep is extrapolated, no further than its longest sleep",
	    test_channel_sleep_extrapolated},
	   {"channel: wrong magic, version, dead writer", test_channel_bad_headers},
	   {"channel: a header rewritten after open", test_channel_header_rewritten})
