/* test_cosched_owed.c - nemod's co-scheduler owes a packet instance its own packets' cycles. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nemo/cgroup.h"
#include "nemo/gateway.h"
#include "nemo/harvest_channel.h"
#include "nemo/sandbox.h"
#include "nemo/scheduler.h"
#include "proc.h"
#include "test.h"

/*
 * The co-scheduler as nemod runs it (its harvest loop, the harvest cgroup of cpu 1), fed by a
 * channel this test writes as nemo-nf would: one lcore on cpu 1 whose busy share and the part
 * of it spent on packets for functions the test sets. What is asserted is what nemod shows:
 * its reclaims of the core, the freeze it asks of the sandbox library, and /metrics.
 */

#define OW_CPU 1

static struct sbx_host *host;
static char root[64];
static int run_id;

/* ---- a channel written as nemo-nf writes it -------------------------------------------------- */

struct ow_writer {
	char name[32];
	char shm[48];
	struct hc_header *hdr;
	pthread_t thread;
	atomic_bool stop;
	/* parts per million of each tick: busy, and of it, packets for functions */
	_Atomic uint32_t busy_ppm, fn_ppm;
};

static inline uint64_t ow_rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* The TSC's rate against CLOCK_MONOTONIC over 50 ms: the reader turns cycles into time. */
static uint64_t ow_tsc_hz(void)
{
	struct timespec a, b, d = {0, 50000000};
	uint64_t t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &a);
	t0 = ow_rdtsc();
	nanosleep(&d, NULL);
	t1 = ow_rdtsc();
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (uint64_t)((double)(t1 - t0) * 1e9 /
			  ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)));
}

/* Every 200 us, the cycles since the last tick split as the test says; the lcore never sleeps. */
static void *ow_run(void *arg)
{
	struct ow_writer *w = arg;
	struct hc_lcore_record *r = hc_records(w->hdr);
	struct timespec tick = {0, 200000};
	uint64_t last = r->start_tsc;

	while (!atomic_load(&w->stop)) {
		uint64_t now = ow_rdtsc(), d = now - last;
		uint64_t busy = d * atomic_load(&w->busy_ppm) / 1000000;
		uint64_t fn = busy * atomic_load(&w->fn_ppm) / 1000000;

		hc_write_begin(r);
		r->now_tsc = now;
		r->state_since_tsc = now;
		r->total_cycles += d;
		r->busy_cycles += busy;
		r->idle_poll_cycles += d - busy;
		r->fn_cycles += fn;
		r->iterations += 100;
		r->busy_iterations += 30;
		r->rx_pkts += 1000;
		r->tx_pkts += 700;
		r->fn_pkts += fn ? 300 : 0;
		r->rx_bursts += 30;
		hc_write_end(r);
		last = now;
		nanosleep(&tick, NULL);
	}
	return NULL;
}

static int ow_start(struct ow_writer *w)
{
	size_t size = hc_shm_size(1);
	struct hc_lcore_record *r;
	int fd;

	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "ow%d-%d", getpid(), ++run_id);
	snprintf(w->shm, sizeof(w->shm), "/" HC_SHM_PREFIX "%s", w->name);
	fd = shm_open(w->shm, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		shm_unlink(w->shm);
		return -EIO;
	}
	w->hdr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (w->hdr == MAP_FAILED) {
		shm_unlink(w->shm);
		return -ENOMEM;
	}
	w->hdr->version = HC_VERSION;
	w->hdr->header_size = sizeof(struct hc_header);
	w->hdr->record_size = sizeof(struct hc_lcore_record);
	w->hdr->nb_records = 1;
	w->hdr->tsc_hz = ow_tsc_hz();
	w->hdr->generation = (uint64_t)time(NULL) * 1000000000ull + (uint64_t)run_id;
	w->hdr->writer_pid = getpid();
	w->hdr->publish_period_us = 200;
	snprintf(w->hdr->name, sizeof(w->hdr->name), "%s", w->name);
	r = hc_records(w->hdr);
	r->lcore_id = 1;
	r->cpu = OW_CPU;
	r->idle_policy = HC_IDLE_SLEEP;
	r->sched_policy = HC_SCHED_FIFO;
	r->sched_prio = 50;
	r->state = HC_STATE_BUSY;
	r->start_tsc = ow_rdtsc();
	r->max_sleep_ns = 500000;
	atomic_store(&w->busy_ppm, 300000);
	atomic_store(&w->fn_ppm, 0);
	__atomic_store_n(&w->hdr->magic, HC_MAGIC, __ATOMIC_RELEASE);
	if (pthread_create(&w->thread, NULL, ow_run, w)) {
		munmap(w->hdr, size);
		shm_unlink(w->shm);
		return -EAGAIN;
	}
	return 0;
}

static void ow_stop(struct ow_writer *w)
{
	if (!w->hdr)
		return;
	atomic_store(&w->stop, true);
	pthread_join(w->thread, NULL);
	__atomic_store_n(&w->hdr->magic, 0, __ATOMIC_RELEASE);
	munmap(w->hdr, hc_shm_size(1));
	shm_unlink(w->shm);
	w->hdr = NULL;
}

/* NF busy `busy` of the core, `fn` of that on packets for functions. */
static void ow_load(struct ow_writer *w, double busy, double fn)
{
	atomic_store(&w->fn_ppm, (uint32_t)(fn * 1e6));
	atomic_store(&w->busy_ppm, (uint32_t)(busy * 1e6));
}

/* ---- the sandbox library as the co-scheduler sees it: no instances, freezes counted --------- */

static atomic_int freezes, thaws;

static int be_prewarm(void *arg, const char *fn, int cpu, int count)
{
	(void)arg;
	(void)fn;
	(void)cpu;
	(void)count;
	return 0;
}

static int be_idle(void *arg, const char *fn, uint32_t *idle)
{
	(void)arg;
	(void)fn;
	*idle = 0;
	return 0;
}

static int be_freeze(void *arg, int cpu, bool freeze)
{
	(void)arg;
	(void)cpu;
	atomic_fetch_add(freeze ? &freezes : &thaws, 1);
	return 1; /* the packet instance */
}

static struct sched_cosched *cs_start_as(const struct ow_writer *w, int prefer)
{
	struct sched_cosched_backend be = {
		.prewarm = be_prewarm, .idle = be_idle, .host = host, .freeze_core = be_freeze};
	struct sched_cosched_config cfg;

	sched_cosched_config_defaults(&cfg);
	snprintf(cfg.channels[0], sizeof(cfg.channels[0]), "%s", w->name);
	cfg.prewarm = false;
	cfg.interference = false; /* no perf events on a test thread */
	cfg.reclaim.prefer = prefer;
	cfg.hk_cpu = -1; /* no housekeeping core to move to: the NF core's own choice */
	atomic_store(&freezes, 0);
	atomic_store(&thaws, 0);
	return sched_cosched_new(&cfg, &be);
}

static struct sched_cosched *cs_start(const struct ow_writer *w)
{
	return cs_start_as(w, SCHED_RECLAIM_FREEZE); /* the instance is frozen where it is */
}

/* The core as nemod shows it `ms` from now (its windows are 2 ms each). */
static struct sched_cosched_core cs_core_after(struct sched_cosched *cs, int ms)
{
	struct sched_cosched_core c[4] = {0};

	test_msleep(ms);
	CU_ASSERT_EQUAL_FATAL(sched_cosched_cores(cs, c, 4), 1);
	return c[0];
}

/* Wait until the co-scheduler harvests the core (it publishes windows of it). */
static bool cs_wait_up(struct sched_cosched *cs)
{
	for (int i = 0; i < 200; i++) {
		struct sched_cosched_core c[4];

		if (sched_cosched_cores(cs, c, 4) == 1 && c[0].up)
			return true;
		test_msleep(10);
	}
	return false;
}

static long long metric(const char *text, const char *name)
{
	char key[96];
	const char *p;

	snprintf(key, sizeof(key), "\n%s{cpu=\"%d\"} ", name, OW_CPU);
	p = strstr(text, key);
	return p ? (long long)(atof(p + strlen(key)) * 1000 + 0.5) : -1; /* in thousandths */
}

/* ---- the cases ------------------------------------------------------------------------------- */

static bool need_root(void)
{
	if (geteuid() != 0 || !host) {
		nemo_test_skip("the co-scheduler's harvest cgroup needs root");
		return false;
	}
	return true;
}

/*
 * NF busy 0.85 of the core, 0.65 of it on packets for the packet instance that lives there:
 * the NF's own load is 0.20 and its spare 0.15, under the 0.20 threshold for a second. With
 * the instance resident the core is never reclaimed and nothing is frozen; /metrics shows the
 * owed share. The same windows without a resident instance do reclaim it (as before), and so
 * does an instance whose packets cost the NF nothing counted (a writer that predates fn_cycles).
 */
static void test_resident_packets_not_reclaimed(void)
{
	struct ow_writer w;
	struct sched_cosched *cs;
	struct sched_cosched_core c;
	char text[16384];
	int n;

	if (!need_root())
		return;
	CU_ASSERT_EQUAL_FATAL(ow_start(&w), 0);
	cs = cs_start(&w);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
	CU_ASSERT_FATAL(cs_wait_up(cs));
	sched_cosched_resident(cs, OW_CPU, +1);
	ow_load(&w, 0.85, 0.65 / 0.85);
	c = cs_core_after(cs, 1000);
	printf("\n    resident: spare %.2f, fn %.2f, judged %.2f, reclaims %llu, freezes %d",
	       c.spare_ratio, c.fn_ratio, c.reclaim_spare, (unsigned long long)c.reclaims,
	       atomic_load(&freezes));
	CU_ASSERT_EQUAL(c.reclaims, 0);
	CU_ASSERT_FALSE(c.reclaimed);
	CU_ASSERT_EQUAL(atomic_load(&freezes), 0);
	CU_ASSERT_EQUAL(c.resident, 1);
	CU_ASSERT(c.spare_ratio > 0.10 && c.spare_ratio < 0.20);
	CU_ASSERT(c.fn_ratio > 0.60 && c.fn_ratio < 0.70);
	CU_ASSERT(c.reclaim_spare > 0.75 && c.reclaim_spare < 0.85);
	/* the NF is asked to sleep its floor for the instance all along */
	CU_ASSERT(c.s.sleep_floor_us > 0);
	n = sched_cosched_metrics(cs, text, sizeof(text));
	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT(metric(text, "nemo_core_fn_ratio") >= 600 &&
		  metric(text, "nemo_core_fn_ratio") <= 700);
	CU_ASSERT(metric(text, "nemo_core_reclaim_spare_ratio") >= 750);
	CU_ASSERT_EQUAL(metric(text, "nemo_core_packet_instances"), 1000);
	CU_ASSERT_EQUAL(metric(text, "nemo_core_reclaims_total"), 0);

	/* the instance gone, the same packets are the NF's load: reclaimed within 3 windows */
	sched_cosched_resident(cs, OW_CPU, -1);
	c = cs_core_after(cs, 300);
	printf("\n    not resident: spare %.2f, judged %.2f, reclaims %llu, freezes %d",
	       c.spare_ratio, c.reclaim_spare, (unsigned long long)c.reclaims,
	       atomic_load(&freezes));
	CU_ASSERT(c.reclaims >= 1);
	CU_ASSERT(c.reclaimed);
	CU_ASSERT_EQUAL(atomic_load(&freezes), 1);
	CU_ASSERT(c.reclaim_spare < 0.20);
	sched_cosched_destroy(cs);
	ow_stop(&w);

	/* a writer that does not count fn_cycles: nothing is owed, the spare decides as before */
	CU_ASSERT_EQUAL_FATAL(ow_start(&w), 0);
	cs = cs_start(&w);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
	CU_ASSERT_FATAL(cs_wait_up(cs));
	sched_cosched_resident(cs, OW_CPU, +1);
	ow_load(&w, 0.85, 0.0);
	c = cs_core_after(cs, 300);
	printf("\n    resident, no fn_cycles: spare %.2f, judged %.2f, reclaims %llu\n",
	       c.spare_ratio, c.reclaim_spare, (unsigned long long)c.reclaims);
	CU_ASSERT(c.reclaims >= 1);
	CU_ASSERT_EQUAL(atomic_load(&freezes), 1);
	sched_cosched_destroy(cs);
	ow_stop(&w);
}

/*
 * The NF's own traffic rising takes the core back as before, packet instance or not: busy
 * 0.30 of the core with 0.10 of it on the instance's packets, then busy 0.95 with the same
 * 0.10: the NF's own 0.85 leaves 0.05 spare, 0.15 with the owed share, under 0.20.
 */
static void test_own_load_still_reclaims(void)
{
	struct ow_writer w;
	struct sched_cosched *cs;
	struct sched_cosched_core c;

	if (!need_root())
		return;
	CU_ASSERT_EQUAL_FATAL(ow_start(&w), 0);
	cs = cs_start(&w);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
	CU_ASSERT_FATAL(cs_wait_up(cs));
	sched_cosched_resident(cs, OW_CPU, +1);
	ow_load(&w, 0.30, 0.10 / 0.30);
	c = cs_core_after(cs, 300);
	printf("\n    light: spare %.2f, fn %.2f, judged %.2f, reclaims %llu", c.spare_ratio,
	       c.fn_ratio, c.reclaim_spare, (unsigned long long)c.reclaims);
	CU_ASSERT_EQUAL(c.reclaims, 0);
	/* the NF's own load to 0.85 of the core, the instance's packets still 0.10 of it */
	ow_load(&w, 0.95, 0.10 / 0.95);
	c = cs_core_after(cs, 300);
	printf("\n    own load up: spare %.2f, fn %.2f, judged %.2f, reclaims %llu, freezes %d\n",
	       c.spare_ratio, c.fn_ratio, c.reclaim_spare, (unsigned long long)c.reclaims,
	       atomic_load(&freezes));
	CU_ASSERT(c.reclaims >= 1);
	CU_ASSERT(c.reclaimed);
	CU_ASSERT_EQUAL(atomic_load(&freezes), 1);
	CU_ASSERT(c.reclaim_spare > 0.10 && c.reclaim_spare < 0.20);
	/* and the freeze holds while the NF needs the core: no sleep floor is asked for */
	CU_ASSERT_EQUAL(c.s.sleep_floor_us, 0);
	sched_cosched_destroy(cs);
	CU_ASSERT_EQUAL(atomic_load(&thaws), 1); /* nothing is left frozen */
	ow_stop(&w);
}

/* ---- the suite ------------------------------------------------------------------------------- */

static int suite_setup(void)
{
	struct sbx_host_config cfg = {.n_cores = 2};

	snprintf(root, sizeof(root), "nemo-cso-%d", getpid());
	if (geteuid() != 0)
		return 0; /* the cases say why they skip */
	cfg.cgroup_root = root;
	host = sbx_host_new(&cfg);
	return host ? 0 : -1;
}

static int suite_teardown(void)
{
	char dirs[8][512];
	int n;

	sbx_host_destroy(host);
	host = NULL;
	n = sbx_cgroup_root_dirs(root, dirs, 8);
	for (int i = 0; i < n; i++)
		rmdir(dirs[i]);
	return 0;
}

/*
 * nemod's default, `action: move`, with nowhere to move to: an NF at 0.88 of its core (a 90 %
 * burst) keeps its sandboxes running on the scraps, no freeze, for a second; at 0.99 it needs
 * the whole core, and the sandboxes are frozen within 3 windows under freeze_below (0.05).
 */
static void test_burst_keeps_sandboxes(void)
{
	struct ow_writer w;
	struct sched_cosched *cs;
	struct sched_cosched_core c;

	if (!need_root())
		return;
	CU_ASSERT_EQUAL_FATAL(ow_start(&w), 0);
	cs = cs_start_as(&w, SCHED_RECLAIM_MOVE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cs);
	CU_ASSERT_FATAL(cs_wait_up(cs));
	ow_load(&w, 0.88, 0.0);
	c = cs_core_after(cs, 1000);
	printf("\n    burst: spare %.2f, reclaims %llu, freezes %d", c.spare_ratio,
	       (unsigned long long)c.reclaims, atomic_load(&freezes));
	CU_ASSERT(c.spare_ratio > 0.05 && c.spare_ratio < 0.20);
	CU_ASSERT_EQUAL(c.reclaims, 0);
	CU_ASSERT_FALSE(c.reclaimed);
	CU_ASSERT_EQUAL(atomic_load(&freezes), 0);
	ow_load(&w, 0.99, 0.0);
	c = cs_core_after(cs, 300);
	printf("\n    saturated: spare %.2f, reclaims %llu, freezes %d\n", c.spare_ratio,
	       (unsigned long long)c.reclaims, atomic_load(&freezes));
	CU_ASSERT(c.spare_ratio < 0.05);
	CU_ASSERT_EQUAL(c.reclaims, 1);
	CU_ASSERT(c.reclaimed);
	CU_ASSERT_EQUAL(atomic_load(&freezes), 1);
	sched_cosched_destroy(cs);
	CU_ASSERT_EQUAL(atomic_load(&thaws), 1); /* nothing is left frozen */
	ow_stop(&w);
}

/*
 * End to end through nemod: an invocation that finds the NF core without spare waits for a
 * core (`overflow: queue`: up to queue_deadline_ms, then the housekeeping core), and its
 * activation record says so in phases.queue_us: a user reading it sees a call that queued,
 * not one that ran slow.
 */
static void test_wait_for_a_core_is_queue_time(void)
{
	char dir[64] = "/var/tmp/nemo-cso-XXXXXX", cfg[128], tok[128], text[2048], cmd[160];
	const char *token = "cso-token-0123456789abcdef0123";
	struct ow_writer w;
	struct test_proc nd = {0};
	struct gw_http_response r = {0};
	uint16_t port = test_free_port();
	double queue_us = -1, run_us = -1;
	int core = -2, rc, started;
	cJSON *j = NULL;

	if (!need_root())
		return;
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	chmod(dir, 0755);
	CU_ASSERT_EQUAL_FATAL(ow_start(&w), 0);
	ow_load(&w, 0.9, 0.0); /* spare 0.1: under placement's 0.2 */
	snprintf(tok, sizeof(tok), "%s/token", dir);
	snprintf(cfg, sizeof(cfg), "%s/nemod.json", dir);
	snprintf(text, sizeof(text),
		 "{\"listen\":\"127.0.0.1:%u\",\"token_file\":\"%s\",\"store_dir\":\"%s/store\","
		 "\"code_roots\":[\"%s/build/functions\"],"
		 "\"cores\":{\"housekeeping\":[0],\"sandbox\":[%d]},"
		 "\"cgroup_root\":\"nemo-cso-nd-%d\","
		 "\"harvest\":{\"enabled\":true,\"channels\":[\"%s\"],\"prewarm\":false,"
		 "\"overflow\":\"queue\",\"queue_deadline_ms\":300,"
		 "\"interference\":{\"enabled\":false}}}",
		 (unsigned)port, tok, dir, nemo_test_srcdir(), OW_CPU, getpid(), w.name);
	CU_ASSERT_FATAL(test_write_text(tok, token) == 0 && test_write_text(cfg, text) == 0);
	started = test_nemod_start(&nd, cfg, port, 15000);
	if (started == 0) {
		snprintf(text, sizeof(text),
			 "{\"runtime\":\"c\",\"handler\":\"handle\",\"code\":{\"path\":"
			 "\"%s/build/functions/echo.so\"}}",
			 nemo_test_srcdir());
		rc = gw_http_request("127.0.0.1", port, "PUT",
				     "/api/v1/namespaces/_/actions/qecho?overwrite=true", token,
				     text, strlen(text), 10000, &r);
		CU_ASSERT(rc == 0 && r.status == 200);
		gw_http_response_release(&r);
		memset(&r, 0, sizeof(r));
		test_msleep(200); /* nemod has seen windows of the core at 0.1 */
		rc = gw_http_request("127.0.0.1", port, "POST",
				     "/api/v1/namespaces/_/actions/qecho?blocking=true", token,
				     "{\"q\":1}", 7, 15000, &r);
		CU_ASSERT(rc == 0 && r.status == 200);
		j = rc == 0 ? cJSON_Parse(r.body) : NULL;
		if (j) {
			const cJSON *ph = cJSON_GetObjectItem(j, "phases");

			queue_us = cJSON_GetNumberValue(cJSON_GetObjectItem(ph, "queue_us"));
			run_us = cJSON_GetNumberValue(cJSON_GetObjectItem(ph, "run_us"));
			core = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "core"));
		}
		printf("\n    NF core at spare 0.1: the call queued %.1f ms, ran %.3f ms, on cpu %d\n",
		       queue_us / 1e3, run_us / 1e3, core);
		/* it waited the deadline (300 ms), and said so */
		CU_ASSERT(queue_us >= 250000);
		CU_ASSERT(run_us >= 0 && run_us < 100000);
		CU_ASSERT_EQUAL(core, 0); /* the housekeeping core took it, not the NF's */
		cJSON_Delete(j);
		gw_http_response_release(&r);
	} else {
		printf("\n  nemod did not start:\n%s\n", test_proc_output(&nd));
		CU_FAIL("nemod did not start");
	}
	if (started == 0 || started == -ETIMEDOUT) /* it runs: stop it */
		test_proc_stop(&nd, 15000);
	ow_stop(&w);
	{
		/* what a nemod that died hard left: its cgroup trees, empty once it is gone */
		char name[48], dirs[8][512], rm[1200];
		int n;

		snprintf(name, sizeof(name), "nemo-cso-nd-%d", getpid());
		n = sbx_cgroup_root_dirs(name, dirs, 8);
		for (int i = 0; i < n; i++) {
			snprintf(rm, sizeof(rm),
				 "[ -d '%.511s' ] && find '%.511s' -depth -type d -exec rmdir {} + "
				 "2>/dev/null; true",
				 dirs[i], dirs[i]);
			if (system(rm) != 0)
				printf("\n  could not remove cgroups %s\n", dirs[i]);
		}
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("\n  could not remove %s\n", dir);
}

NEMO_SUITE(cosched_owed, suite_setup, suite_teardown,
	   {"a core busy with its packet instance's packets is not reclaimed from it",
	    test_resident_packets_not_reclaimed},
	   {"the NF's own load rising still reclaims the core", test_own_load_still_reclaims},
	   {"a 90 % burst keeps its sandboxes; an NF that needs the whole core freezes them",
	    test_burst_keeps_sandboxes},
	   {"a call that waits for a core reports the wait as queue time",
	    test_wait_for_a_core_is_queue_time});
