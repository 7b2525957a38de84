/* test_harvester_sampler.c - the sampler against a real nemo-nf: windows, restarts, bad input. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/harvester.h"
#include "proc.h"
#include "test.h"

static char nf_bin[512], gen_bin[512];
static int run_id;

static void cleanup_all(void)
{
	test_cleanup_runs("hvt");
}

static int suite_setup(void)
{
	snprintf(nf_bin, sizeof(nf_bin), "%s/nemo-nf", nemo_test_bindir());
	snprintf(gen_bin, sizeof(gen_bin), "%s/nemo-gen", nemo_test_bindir());
	return access(nf_bin, X_OK) || access(gen_bin, X_OK);
}

static int suite_teardown(void)
{
	cleanup_all();
	return 0;
}

/* A one-lcore memif NF on cpu 1 that sleeps when idle; name and socket unique to this run. */
static void nf_config(char *name, size_t nlen, char *sock, size_t slen, char *cfg, size_t clen)
{
	FILE *f;

	run_id++;
	snprintf(name, nlen, "hvt%d-%d", getpid(), run_id);
	snprintf(sock, slen, "/tmp/nemo-hvt-%d-%d.memif", getpid(), run_id);
	snprintf(cfg, clen, "/tmp/nemo-hvt-%d-%d.json", getpid(), run_id);
	f = fopen(cfg, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fprintf(f,
		"{\"name\":\"%s\",\"stats_interval_ms\":0,\"memory_mb\":256,"
		"\"ports\":[{\"vdev\":\"net_memif0,role=server,socket=%s,socket-abstract=no\","
		"\"rx_ring\":16384,\"line_rate_pps\":25000000}],"
		"\"lcores\":[{\"lcore\":1,\"cpu\":1,\"rx\":[{\"port\":0}],\"chain\":[\"fwd\"],"
		"\"idle\":\"sleep\"}]}",
		name, sock);
	fclose(f);
}

static int nf_start(struct test_proc *p, const char *cfg)
{
	char *argv[] = {nf_bin, "--config", (char *)cfg, "--duration", "0", NULL};

	return test_proc_start(p, argv);
}

/* Sample until core 0 is UP with a window after `seq`, or timeout. */
static const struct hv_core_sample *wait_up(struct hv_sampler *s, uint64_t after_gen, int ms)
{
	for (int i = 0; i < ms; i++) {
		const struct hv_core_sample *c;

		hv_sampler_sample(s, nemo_now_ns());
		c = hv_sampler_core(s, 0);
		if (c && c->state == HV_CORE_UP && c->generation != after_gen && c->window_seq > 0)
			return c;
		test_msleep(1);
	}
	return NULL;
}

static int start_gen(struct test_proc *g, const char *sock, const char *rate, const char *dur)
{
	char *argv[] = {gen_bin,      "--socket",   (char *)sock, "--rate",
			(char *)rate, "--duration", (char *)dur,  "--cpu",
			"0",	      "--quiet",    NULL};

	return test_proc_start(g, argv);
}

static void test_sampler_windows_add_up(void)
{
	char name[32], sock[96], cfg[96];
	struct hv_sampler_config sc = {.period_us = 5000, .n_channels = 1};
	struct test_proc nf, gen;
	struct hv_sampler *s;
	const struct hv_core_sample *c;
	uint64_t last_seq = 0, n_win = 0, n_ok = 0, sum_total = 0, sum_parts = 0, rx = 0;
	uint64_t busy = 0, hist[HC_IDLE_BUCKETS] = {0};
	double min_ratio = 1.0, max_ratio = 0.0;

	nf_config(name, sizeof(name), sock, sizeof(sock), cfg, sizeof(cfg));
	sc.channels[0] = name;
	s = hv_sampler_new(&sc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	/* no NF yet: not an error, just nothing to report */
	CU_ASSERT_EQUAL(hv_sampler_sample(s, nemo_now_ns()), 0);
	CU_ASSERT_EQUAL(hv_sampler_nb_cores(s), 0);

	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg), 0);
	c = wait_up(s, 0, 15000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(c->cpu, 1);
	CU_ASSERT_EQUAL(c->attaches, 1);
	CU_ASSERT_EQUAL(hv_sampler_find_cpu(s, 1), 0);
	CU_ASSERT_EQUAL(hv_sampler_find_cpu(s, 7), -ENOENT);

	CU_ASSERT_EQUAL_FATAL(start_gen(&gen, sock, "500000", "1"), 0);
	while (test_proc_wait(&gen, 0) == -ETIMEDOUT) {
		hv_sampler_sample(s, nemo_now_ns());
		c = hv_sampler_core(s, 0);
		if (c->window_seq != last_seq && c->w.total) {
			uint64_t parts = c->w.busy + c->w.idle_poll + c->w.sleep;

			last_seq = c->window_seq;
			n_win++;
			if (parts <= c->w.total * 101 / 100 && parts >= c->w.total * 99 / 100)
				n_ok++;
			sum_total += c->w.total;
			sum_parts += parts;
			rx += c->w.rx_pkts;
			busy += c->w.busy;
			for (int b = 0; b < HC_IDLE_BUCKETS; b++)
				hist[b] += c->idle_hist[b];
			if (c->w.rx_pkts) {
				min_ratio =
					c->w.spare_ratio < min_ratio ? c->w.spare_ratio : min_ratio;
				max_ratio =
					c->w.spare_ratio > max_ratio ? c->w.spare_ratio : max_ratio;
			}
		}
		test_msleep(1);
	}
	printf("\n    %lu windows of 5 ms, %lu within 1 %% (busy+idle_poll+sleep vs total); "
	       "overall %.4f; rx %lu; spare_ratio %.3f..%.3f; median idle period %u us",
	       (unsigned long)n_win, (unsigned long)n_ok, (double)sum_parts / (double)sum_total,
	       (unsigned long)rx, min_ratio, max_ratio, hv_idle_hist_median_us(hist));
	CU_ASSERT(n_win >= 100);
	CU_ASSERT(n_ok * 100 >= n_win * 95);
	CU_ASSERT((double)sum_parts <= (double)sum_total * 1.01 &&
		  (double)sum_parts >= (double)sum_total * 0.99);
	CU_ASSERT(rx > 100000);
	CU_ASSERT(busy > 0);
	CU_ASSERT(c->window_ns >= 5000000 && c->window_ns < 50000000);
	{
		uint64_t n_idle = 0;

		for (int b = 0; b < HC_IDLE_BUCKETS; b++)
			n_idle += c->idle_hist_total[b];
		CU_ASSERT(n_idle > 0);
	}

	/* stop and restart: the core goes, then comes back with a new generation */
	{
		uint64_t gen1 = c->generation;

		CU_ASSERT_EQUAL(test_proc_stop(&nf, 10000), 0);
		hv_sampler_sample(s, nemo_now_ns() + 10000000);
		c = hv_sampler_core(s, 0);
		CU_ASSERT_EQUAL(c->state, HV_CORE_GONE);
		CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg), 0);
		c = wait_up(s, gen1, 15000);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		printf("\n    restart: generation %llu -> %llu, attaches %u",
		       (unsigned long long)gen1, (unsigned long long)c->generation, c->attaches);
		CU_ASSERT_NOT_EQUAL(c->generation, gen1);
		CU_ASSERT_EQUAL(c->attaches, 2);
		CU_ASSERT_EQUAL(hv_sampler_nb_cores(s), 1);
	}

	/* vanished: SIGKILL leaves the channel behind with a good magic; the pid tells */
	kill(nf.pid, SIGKILL);
	test_proc_wait(&nf, 5000);
	hv_sampler_sample(s, nemo_now_ns() + 20000000);
	c = hv_sampler_core(s, 0);
	CU_ASSERT_EQUAL(c->state, HV_CORE_GONE);
	/* and it keeps serving: more samples, no crash, still gone */
	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(hv_sampler_sample(s, nemo_now_ns() + 30000000ull * (i + 2)), 0);
	CU_ASSERT_EQUAL(hv_sampler_core(s, 0)->state, HV_CORE_GONE);
	hv_sampler_destroy(s);
	cleanup_all();
}

/* A shm object that looks like a channel but is not one we can read. */
static void write_fake(const char *name, uint64_t magic, uint32_t version)
{
	char path[96];
	struct hc_header h;
	int fd;

	snprintf(path, sizeof(path), "/" HC_SHM_PREFIX "%s", name);
	fd = shm_open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	memset(&h, 0, sizeof(h));
	h.magic = magic;
	h.version = version;
	h.header_size = sizeof(struct hc_header);
	h.record_size = sizeof(struct hc_lcore_record);
	h.nb_records = 1;
	h.writer_pid = getpid();
	h.generation = 1;
	CU_ASSERT_EQUAL(ftruncate(fd, (off_t)hc_shm_size(1)), 0);
	CU_ASSERT_EQUAL(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	close(fd);
}

static void test_sampler_bad_channels(void)
{
	char bad_magic[32], bad_version[32], dead[32], missing[32];
	struct hv_sampler_config sc = {.period_us = 1000, .n_channels = 4};
	struct hv_sampler *s;

	snprintf(bad_magic, sizeof(bad_magic), "hvt%d-magic", getpid());
	snprintf(bad_version, sizeof(bad_version), "hvt%d-version", getpid());
	snprintf(dead, sizeof(dead), "hvt%d-dead", getpid());
	snprintf(missing, sizeof(missing), "hvt%d-missing", getpid());
	write_fake(bad_magic, 0x4141414141414141ull, HC_VERSION);
	write_fake(bad_version, HC_MAGIC, HC_VERSION + 7);

	/* the reader names what is wrong */
	errno = 0;
	CU_ASSERT_PTR_NULL(hv_channel_open(bad_magic));
	CU_ASSERT_EQUAL(errno, EPROTO);
	CU_ASSERT_PTR_NULL(hv_channel_open(bad_version));
	CU_ASSERT_EQUAL(errno, EPROTONOSUPPORT);
	CU_ASSERT_PTR_NULL(hv_channel_open(missing));
	CU_ASSERT_EQUAL(errno, ENOENT);
	/* a good header whose writer is dead: pid 0 is never a writer */
	write_fake(dead, HC_MAGIC, HC_VERSION);
	{
		char path[96];
		struct hc_header h;
		int fd;

		snprintf(path, sizeof(path), "/" HC_SHM_PREFIX "%s", dead);
		fd = shm_open(path, O_RDWR, 0);
		CU_ASSERT_FATAL(fd >= 0);
		CU_ASSERT_EQUAL(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
		h.writer_pid = 0x3ffffff0; /* above pid_max */
		CU_ASSERT_EQUAL(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
		close(fd);
	}
	CU_ASSERT_PTR_NULL(hv_channel_open(dead));
	CU_ASSERT_EQUAL(errno, ESRCH);

	/* a sampler over all of them keeps sampling and reports no core */
	sc.channels[0] = bad_magic;
	sc.channels[1] = bad_version;
	sc.channels[2] = dead;
	sc.channels[3] = missing;
	s = hv_sampler_new(&sc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	for (int i = 0; i < 50; i++)
		CU_ASSERT_EQUAL(hv_sampler_sample(s, nemo_now_ns() + (uint64_t)i * 200000000ull),
				0);
	CU_ASSERT_EQUAL(hv_sampler_nb_cores(s), 0);
	CU_ASSERT_PTR_NULL(hv_sampler_core(s, 0));
	hv_sampler_destroy(s);

	/* bad sampler configs */
	sc.period_us = 500;
	errno = 0;
	CU_ASSERT_PTR_NULL(hv_sampler_new(&sc));
	CU_ASSERT_EQUAL(errno, EINVAL);
	sc.period_us = 20000;
	CU_ASSERT_PTR_NULL(hv_sampler_new(&sc));
	sc.period_us = 1000;
	sc.n_channels = 0;
	CU_ASSERT_PTR_NULL(hv_sampler_new(&sc));
	sc.n_channels = 1;
	sc.channels[0] = "a-name-that-is-much-too-long-for-a-channel";
	CU_ASSERT_PTR_NULL(hv_sampler_new(&sc));
	CU_ASSERT_EQUAL(errno, EINVAL);

	cleanup_all();
}

/* Mean length of the lcore's sleeps over `ms`, in us, from its channel record. */
static double mean_sleep_us(struct hv_channel *ch, int ms)
{
	struct hc_lcore_record a, b;
	uint64_t hz = hv_channel_tsc_hz(ch);

	if (hv_channel_read(ch, 0, &a))
		return -1.0;
	test_msleep(ms);
	if (hv_channel_read(ch, 0, &b) || b.sleeps <= a.sleeps || !hz)
		return -1.0;
	return (double)(b.sleep_cycles - a.sleep_cycles) * 1e6 / (double)hz /
	       (double)(b.sleeps - a.sleeps);
}

/* Renew a sleep floor of `us` (lease 100 ms) every 20 ms for `ms`; the mean sleep meanwhile. */
static double mean_sleep_with_floor(struct hv_sampler *s, struct hv_channel *ch, uint64_t us,
				    int ms)
{
	struct hc_lcore_record a, b;
	uint64_t hz = hv_channel_tsc_hz(ch);

	CU_ASSERT_EQUAL(hv_sampler_set_sleep_floor(s, 0, us * 1000, 100000000ull), 0);
	test_msleep(30); /* the sleep in progress when it was asked ends first */
	if (hv_channel_read(ch, 0, &a))
		return -1.0;
	for (int t = 0; t < ms; t += 20) {
		hv_sampler_sample(s, nemo_now_ns());
		CU_ASSERT_EQUAL(hv_sampler_set_sleep_floor(s, 0, us * 1000, 100000000ull), 0);
		test_msleep(20);
	}
	if (hv_channel_read(ch, 0, &b) || b.sleeps <= a.sleeps || !hz)
		return -1.0;
	return (double)(b.sleep_cycles - a.sleep_cycles) * 1e6 / (double)hz /
	       (double)(b.sleeps - a.sleeps);
}

/*
 * The harvester asks an NF lcore for long sleeps while its sandboxes work: the lcore sleeps
 * at least that long, never past its max sleep, and goes back to its own short sleeps when
 * the lease lapses (a harvester that died stops costing the NF latency).
 */
static void test_sampler_sleep_floor(void)
{
	char name[32], sock[96], cfg[96];
	struct hv_sampler_config sc = {.period_us = 2000, .n_channels = 1};
	struct test_proc nf, gen;
	struct hv_sampler *s;
	struct hv_channel *ch;
	struct hc_lcore_record r;
	double own, floored, capped, lapsed, max_us;

	nf_config(name, sizeof(name), sock, sizeof(sock), cfg, sizeof(cfg));
	sc.channels[0] = name;
	s = hv_sampler_new(&sc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(wait_up(s, 0, 15000));
	ch = hv_channel_open(name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
	CU_ASSERT_EQUAL_FATAL(hv_channel_read(ch, 0, &r), 0);
	max_us = (double)r.max_sleep_ns / 1e3;
	/* a bad index is refused, not written past the records */
	CU_ASSERT_EQUAL(hv_channel_set_sleep_floor(ch, 9, 1000, 1000000), -ERANGE);
	CU_ASSERT_EQUAL(hv_sampler_set_sleep_floor(s, 9, 1000, 1000000), -ERANGE);

	/* 500 kpps: packets after every sleep, so the lcore keeps to its minimum sleep */
	CU_ASSERT_EQUAL_FATAL(start_gen(&gen, sock, "500000", "4"), 0);
	test_msleep(500);
	own = mean_sleep_us(ch, 600);
	floored = mean_sleep_with_floor(s, ch, 400, 600);
	capped = mean_sleep_with_floor(s, ch, 50000, 600);
	/* stop renewing: the 100 ms lease lapses by itself */
	test_msleep(150);
	lapsed = mean_sleep_us(ch, 600);
	printf("\n    mean sleep: own %.0f us; floor 400 us: %.0f us; floor 50 ms: %.0f us (max sleep "
	       "%.0f us); lease lapsed: %.0f us",
	       own, floored, capped, max_us, lapsed);
	CU_ASSERT(own > 0 && own < 250);
	CU_ASSERT(floored >= 390 && floored < 400 + 250);
	CU_ASSERT(capped >= max_us * 0.95 && capped < max_us + 250);
	CU_ASSERT(lapsed > 0 && lapsed < 250);
	CU_ASSERT_EQUAL(test_proc_wait(&gen, 10000), 0);
	hv_channel_close(ch);
	CU_ASSERT_EQUAL(test_proc_stop(&nf, 10000), 0);
	/* the NF is gone: asking is refused, not written into a dead mapping */
	hv_sampler_sample(s, nemo_now_ns() + 10000000);
	CU_ASSERT_EQUAL(hv_sampler_set_sleep_floor(s, 0, 1000, 1000000), -ENODEV);
	hv_sampler_destroy(s);
	cleanup_all();
}

/*
 * An NF whose record stops moving while its pid lives on (here: stopped; in production also a
 * killed NF its parent has not reaped) is STALE within HV_STALE_MS plus two of its longest
 * sleeps, and UP again, with fresh windows, as soon as its record moves.
 */
static void test_sampler_stale(void)
{
	char name[32], sock[96], cfg[96];
	struct hv_sampler_config sc = {.period_us = 2000, .n_channels = 1};
	const struct hv_core_sample *c;
	struct test_proc nf;
	struct hv_sampler *s;
	uint64_t t0, stale_ms = 0, seq;
	double bound_ms;

	nf_config(name, sizeof(name), sock, sizeof(sock), cfg, sizeof(cfg));
	sc.channels[0] = name;
	s = hv_sampler_new(&sc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg), 0);
	c = wait_up(s, 0, 15000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	/* idle, it sleeps up to its max sleep at a time: still UP, never stale */
	for (int i = 0; i < 400; i++) {
		hv_sampler_sample(s, nemo_now_ns());
		CU_ASSERT_EQUAL_FATAL(hv_sampler_core(s, 0)->state, HV_CORE_UP);
		test_msleep(2);
	}
	{
		struct hv_channel *ch = hv_channel_open(name);
		struct hc_lcore_record r;

		CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
		CU_ASSERT_EQUAL_FATAL(hv_channel_read(ch, 0, &r), 0);
		bound_ms = HV_STALE_MS + 2.0 * (double)r.max_sleep_ns / 1e6;
		hv_channel_close(ch);
	}
	kill(nf.pid, SIGSTOP);
	t0 = nemo_now_ns();
	for (int i = 0; i < 1000 && !stale_ms; i++) {
		hv_sampler_sample(s, nemo_now_ns());
		if (hv_sampler_core(s, 0)->state == HV_CORE_STALE)
			stale_ms = (nemo_now_ns() - t0) / 1000000;
		test_msleep(2);
	}
	seq = hv_sampler_core(s, 0)->window_seq;
	kill(nf.pid, SIGCONT);
	printf("\n    stopped NF: stale after %llu ms (bound %.1f ms + a sample)",
	       (unsigned long long)stale_ms, bound_ms);
	CU_ASSERT(stale_ms >= HV_STALE_MS && stale_ms <= bound_ms + 50);
	/* it moves again: UP, and windows come again */
	c = NULL;
	for (int i = 0; i < 2000 && !c; i++) {
		const struct hv_core_sample *k;

		hv_sampler_sample(s, nemo_now_ns());
		k = hv_sampler_core(s, 0);
		if (k->state == HV_CORE_UP && k->window_seq > seq)
			c = k;
		test_msleep(1);
	}
	CU_ASSERT_PTR_NOT_NULL(c);
	CU_ASSERT_EQUAL(test_proc_stop(&nf, 10000), 0);
	hv_sampler_destroy(s);
	cleanup_all();
}

NEMO_SUITE(harvester_sampler, suite_setup, suite_teardown,
	   {"windows_add_up_restart_vanish", test_sampler_windows_add_up},
	   {"sleep_floor", test_sampler_sleep_floor}, {"stale", test_sampler_stale},
	   {"bad_channels", test_sampler_bad_channels})
