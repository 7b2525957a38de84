/* test_scheduler_cgroup.c - harvest cgroups, thread counts, perf counters and reclaim, for real. */
#include <errno.h>
#include <glob.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/harvester.h"
#include "nemo/scheduler.h"
#include "proc.h"
#include "test.h"

static char root[64];
static char nf_bin[512], gen_bin[512];
static const struct sched_cgroup_ops *ops;
static struct sched_harvest_cg cg;
static pid_t hog = -1;

static int read_str(const char *dir, const char *file, char *buf, size_t len)
{
	char path[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return (int)n;
}

static long read_long(const char *dir, const char *file)
{
	char buf[64];

	return read_str(dir, file, buf, sizeof(buf)) > 0 ? strtol(buf, NULL, 10) : -999;
}

static void kill_hog(void)
{
	if (hog > 0) {
		kill(hog, SIGKILL);
		waitpid(hog, NULL, 0);
		hog = -1;
	}
}

/* A CPU hog that puts itself into every controller's harvest cgroup before it spins. */
static pid_t start_hog(const struct sched_harvest_cg *c)
{
	pid_t pid = fork();

	if (pid == 0) {
		const char *dirs[] = {c->cpu, c->cpuacct, c->cpuset};

		for (int i = 0; i < 3; i++) {
			char path[512];
			FILE *f;

			snprintf(path, sizeof(path), "%s/%s", dirs[i],
				 ops == &sched_cgroup_v1 ? "tasks" : "cgroup.procs");
			f = fopen(path, "w");
			if (!f || fprintf(f, "0\n") < 0 || fclose(f) != 0)
				_exit(3);
			if (ops != &sched_cgroup_v1)
				break;
		}
		for (volatile unsigned long i = 0;; i++)
			;
	}
	return pid;
}

/* The CPU `pid` is on (/proc/<pid>/stat, field 39), or -1. */
static int task_cpu(pid_t pid)
{
	char path[64], buf[1024], *p;
	int cpu = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	/* after "pid (comm)": state is field 3, processor field 39 */
	for (int field = 2; p && field < 39; field++)
		p = strchr(p + 1, ' ');
	if (p)
		cpu = atoi(p + 1);
	fclose(f);
	return cpu;
}

/* Wait up to `ms` until `pid` runs on `cpu`: 0, or -ETIMEDOUT. */
static int wait_on_cpu(pid_t pid, int cpu, int ms)
{
	for (int i = 0; i < ms * 10; i++) {
		if (task_cpu(pid) == cpu)
			return 0;
		usleep(100);
	}
	return -ETIMEDOUT;
}

static int suite_setup(void)
{
	snprintf(root, sizeof(root), "nemo-test-%d", getpid());
	snprintf(nf_bin, sizeof(nf_bin), "%s/nemo-nf", nemo_test_bindir());
	snprintf(gen_bin, sizeof(gen_bin), "%s/nemo-gen", nemo_test_bindir());
	ops = sched_cgroup_detect();
	return sched_harvest_cg_paths(ops, root, 1, &cg);
}

/* Remove the test root in every controller, even after a failed test. */
static int suite_teardown(void)
{
	char pattern[128];
	glob_t g;

	kill_hog();
	test_proc_kill_all();
	ops->remove(&cg);
	snprintf(pattern, sizeof(pattern), "/sys/fs/cgroup/*/%s", root);
	if (glob(pattern, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			rmdir(g.gl_pathv[i]);
		globfree(&g);
	}
	snprintf(pattern, sizeof(pattern), "/tmp/nemo-sct-%d-*", getpid());
	if (glob(pattern, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++)
			unlink(g.gl_pathv[i]);
		globfree(&g);
	}
	snprintf(pattern, sizeof(pattern), "/dev/shm/nemo-hc-sct%d", getpid());
	unlink(pattern);
	snprintf(pattern, sizeof(pattern), "nemo-nf-sct%d", getpid());
	test_remove_runtime_dir(pattern);
	return 0;
}

static void test_cgroup_knobs(void)
{
	char buf[256];
	uint64_t u0, u1;
	uint32_t total, runnable;

	if (geteuid() != 0) {
		nemo_test_skip("cgroup knobs need root");
		return;
	}
	printf("\n    backend %s, harvest cgroup %s", ops->name, cg.cpu);
	CU_ASSERT_EQUAL_FATAL(ops->create(&cg, 0), 0);
	if (ops == &sched_cgroup_v1) {
		CU_ASSERT(read_str(cg.cpuset, "cpuset.cpus", buf, sizeof(buf)) > 0);
		CU_ASSERT_STRING_EQUAL(buf, "1\n");
	}
	/* both policies, and back */
	CU_ASSERT_EQUAL(ops->apply_policy(&cg, SCHED_HARVEST_SHARES), 0);
	CU_ASSERT_EQUAL(read_long(cg.cpu, "cpu.idle"), 0);
	CU_ASSERT_EQUAL(read_long(cg.cpu, ops == &sched_cgroup_v1 ? "cpu.shares" : "cpu.weight"),
			ops == &sched_cgroup_v1 ? 2 : 1);
	CU_ASSERT_EQUAL(ops->apply_policy(&cg, SCHED_HARVEST_IDLE), 0);
	CU_ASSERT_EQUAL(read_long(cg.cpu, "cpu.idle"), 1);
	CU_ASSERT_EQUAL(ops->apply_policy(&cg, 9), -EINVAL);
	/* quota on and off */
	CU_ASSERT_EQUAL(ops->set_quota(&cg, 2000, 10000), 0);
	if (ops == &sched_cgroup_v1) {
		CU_ASSERT_EQUAL(read_long(cg.cpu, "cpu.cfs_quota_us"), 2000);
		CU_ASSERT_EQUAL(read_long(cg.cpu, "cpu.cfs_period_us"), 10000);
	}
	CU_ASSERT_EQUAL(ops->set_quota(&cg, 10, 10000), -EINVAL);

	/* a hog under a 20 % quota gets about 20 % of cpu 1, counted as harvested */
	CU_ASSERT_EQUAL_FATAL(ops->read_usage(&cg, &u0), 0);
	hog = start_hog(&cg);
	CU_ASSERT_FATAL(hog > 0);
	test_msleep(500);
	CU_ASSERT_EQUAL(ops->read_usage(&cg, &u1), 0);
	printf("\n    hog under quota 2/10 ms: %.1f %% of cpu 1", (double)(u1 - u0) / 5e6);
	CU_ASSERT((u1 - u0) > 50000000ull && (u1 - u0) < 150000000ull);
	CU_ASSERT_EQUAL(ops->set_quota(&cg, 0, 10000), 0);
	if (ops == &sched_cgroup_v1)
		CU_ASSERT_EQUAL(read_long(cg.cpu, "cpu.cfs_quota_us"), -1);
	CU_ASSERT_EQUAL(ops->read_usage(&cg, &u0), 0);
	test_msleep(300);
	CU_ASSERT_EQUAL(ops->read_usage(&cg, &u1), 0);
	printf("\n    hog unthrottled: %.1f %% of cpu 1", (double)(u1 - u0) / 3e6);
	CU_ASSERT((u1 - u0) > 200000000ull);

	/* the thread count sees it, runnable */
	CU_ASSERT_EQUAL(sched_cgroup_threads(ops, cg.cpu, &total, &runnable), 0);
	CU_ASSERT_EQUAL(total, 1);
	CU_ASSERT_EQUAL(runnable, 1);

	/* pinned elsewhere: it leaves cpu 1 at once, still runnable, and comes back */
	{
		uint64_t t0 = nemo_now_ns(), t1;

		CU_ASSERT_EQUAL_FATAL(ops->pin(&cg, 0), 0);
		CU_ASSERT_EQUAL(wait_on_cpu(hog, 0, 500), 0);
		t1 = nemo_now_ns();
		printf("\n    move of a spinning task to cpu 0 done in %.2f ms",
		       (double)(t1 - t0) / 1e6);
		CU_ASSERT_EQUAL(ops->read_usage(&cg, &u0), 0);
		test_msleep(100);
		CU_ASSERT_EQUAL(ops->read_usage(&cg, &u1), 0);
		CU_ASSERT(u1 - u0 < 1000000ull); /* nothing more on cpu 1 */
		CU_ASSERT_EQUAL(sched_cgroup_threads(ops, cg.cpu, &total, &runnable), 0);
		CU_ASSERT_EQUAL(runnable, 1);
		CU_ASSERT_EQUAL(ops->pin(&cg, 1), 0);
		CU_ASSERT_EQUAL(wait_on_cpu(hog, 1, 500), 0);
		CU_ASSERT_EQUAL(ops->read_usage(&cg, &u0), 0);
		test_msleep(100);
		CU_ASSERT_EQUAL(ops->read_usage(&cg, &u1), 0);
		CU_ASSERT(u1 - u0 > 50000000ull);
	}
	CU_ASSERT_EQUAL(
		sched_cgroup_threads(ops, "/sys/fs/cgroup/cpu/no-such-nemo", &total, &runnable),
		-ENOENT);
	kill_hog();
}

static void test_iwatch_counters(void)
{
	struct sched_iwatch *w;
	const struct sched_counter *c;
	pid_t child;
	int n, n_open = 0, n_sw = 0;

	child = fork();
	if (child == 0) {
		for (volatile unsigned long i = 0;; i++)
			;
	}
	CU_ASSERT_FATAL(child > 0);
	w = sched_iwatch_new(child, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	test_msleep(50);
	CU_ASSERT_EQUAL(sched_iwatch_read(w), 0);
	c = sched_iwatch_counters(w, &n);
	printf("\n    counters:");
	for (int i = 0; i < n; i++) {
		if (c[i].open)
			printf(" %s=%llu (%s)", c[i].name, (unsigned long long)c[i].value,
			       c[i].source == SCHED_CTR_HW_PFM ? "hw" : "sw");
		else
			printf(" %s=n/a (%s)", c[i].name, strerror(-c[i].error));
		n_open += c[i].open;
		n_sw += c[i].open && c[i].source == SCHED_CTR_SW;
		/* a counter that did not open carries its error, never a value */
		if (!c[i].open) {
			CU_ASSERT(c[i].error < 0);
			CU_ASSERT_EQUAL(c[i].value, 0);
		}
	}
	CU_ASSERT_EQUAL(n_sw, 2);
	CU_ASSERT(c[n - 2].open && c[n - 2].value > 10000000ull); /* task-clock ns of a spinner */
	sched_iwatch_destroy(w);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

/*
 * The reaction time of reclaim, end to end: NF load rises -> windows -> the harvest cgroup
 * moved to the other core (what nemod does by default) and the hog seen running there.
 */
static void test_reclaim_reaction(void)
{
	char name[32], sock[96], cfgp[96];
	struct hv_sampler_config sc = {.period_us = 1000, .n_channels = 1};
	struct sched_reclaim_config rc = {.threshold = 0.5,
					  .k_windows = 3,
					  .release = 0.7,
					  .release_windows = 20,
					  .prefer = SCHED_RECLAIM_MOVE,
					  .move_min_spare = 0.3};
	/* the NF core, and cpu 0 as the place to move to */
	struct sched_reclaim_core core[2] = {{0}};
	const struct sched_core_view views[2] = {{.cpu = 1}, {.cpu = 0, .spare_pred = 1.0}};
	struct test_proc nf, gen;
	struct hv_sampler *s;
	const struct hv_core_sample *c = NULL;
	uint64_t seq = 0, first_low_start = 0, moved_at = 0;
	double worst_reaction = 0.0, sum_reaction = 0.0;
	int reactions = 0;
	uint64_t n_windows = 0, n_low = 0, streak = 0, max_streak = 0;
	double min_spare = 1.0;
	cpu_set_t saved, hk;
	FILE *f;

	if (geteuid() != 0) {
		nemo_test_skip("reclaim needs root for cgroups");
		return;
	}
	snprintf(name, sizeof(name), "sct%d", getpid());
	snprintf(sock, sizeof(sock), "/tmp/nemo-sct-%d-nf.memif", getpid());
	snprintf(cfgp, sizeof(cfgp), "/tmp/nemo-sct-%d-nf.json", getpid());
	f = fopen(cfgp, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fprintf(f,
		"{\"name\":\"%s\",\"stats_interval_ms\":0,\"memory_mb\":256,"
		"\"ports\":[{\"vdev\":\"net_memif0,role=server,socket=%s,socket-abstract=no\","
		"\"rx_ring\":16384,\"line_rate_pps\":25000000}],"
		"\"lcores\":[{\"lcore\":1,\"cpu\":1,\"rx\":[{\"port\":0}],\"chain\":[\"fwd\"],"
		"\"idle\":\"sleep\",\"sched\":{\"policy\":\"fifo\",\"priority\":50}}]}",
		name, sock);
	fclose(f);
	CU_ASSERT_EQUAL_FATAL(ops->create(&cg, 0), 0);
	CU_ASSERT_EQUAL_FATAL(ops->apply_policy(&cg, SCHED_HARVEST_DEFAULT), 0);
	{
		char *argv[] = {nf_bin, "--config", cfgp, "--duration", "0", NULL};

		CU_ASSERT_EQUAL_FATAL(test_proc_start(&nf, argv), 0);
	}
	sc.channels[0] = name;
	s = hv_sampler_new(&sc);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	for (int i = 0; i < 15000 && !(c && c->state == HV_CORE_UP && c->window_seq); i++) {
		hv_sampler_sample(s, nemo_now_ns());
		c = hv_sampler_core(s, 0);
		test_msleep(1);
	}
	CU_ASSERT_FATAL(c && c->state == HV_CORE_UP);
	hog = start_hog(&cg);
	CU_ASSERT_FATAL(hog > 0);
	test_msleep(200);
	/* the sampler runs where nemod does, on the housekeeping core: on cpu 1 the saturated
	 * FIFO NF would leave it 5 % of the time and the reaction would be the test's own delay */
	CU_ASSERT_EQUAL(sched_getaffinity(0, sizeof(saved), &saved), 0);
	CPU_ZERO(&hk);
	CPU_SET(0, &hk);
	CU_ASSERT_EQUAL(sched_setaffinity(0, sizeof(hk), &hk), 0);
	/* three bursts of all the generator can send (~24 Mpps, more than the NF carries), 1 s
	 * each, with 300 ms gaps the core is released in: a reclaim per burst */
	for (int burst = 0; burst < 3; burst++) {
		char *argv[] = {gen_bin, "--socket", sock, "--max",   "--duration",
				"1",	 "--cpu",    "0",  "--quiet", NULL};
		uint64_t quiet_until = 0;

		if (test_proc_start(&gen, argv) != 0) {
			CU_FAIL("nemo-gen did not start");
			break;
		}
		for (;;) {
			struct sched_reclaim_decision d;
			bool was;

			if (!quiet_until && test_proc_wait(&gen, 0) != -ETIMEDOUT)
				quiet_until = nemo_now_ns() + 300000000ull;
			if (quiet_until && nemo_now_ns() > quiet_until)
				break;
			hv_sampler_sample(s, nemo_now_ns());
			c = hv_sampler_core(s, 0);
			if (c->window_seq == seq || c->state != HV_CORE_UP) {
				usleep(200);
				continue;
			}
			seq = c->window_seq;
			n_windows++;
			if (c->w.spare_ratio < min_spare)
				min_spare = c->w.spare_ratio;
			if (c->w.spare_ratio < rc.threshold) {
				n_low++;
				streak++;
				max_streak = streak > max_streak ? streak : max_streak;
			} else {
				streak = 0;
			}
			if (c->w.spare_ratio < rc.threshold && core[0].below == 0)
				first_low_start = nemo_now_ns() - c->window_ns;
			was = core[0].reclaimed;
			d = sched_reclaim_step(&rc, core, 0, c->w.spare_ratio, views, 2);
			if (d.action == SCHED_RECLAIM_MOVE) {
				uint64_t t0 = nemo_now_ns();
				double ms;

				CU_ASSERT_EQUAL(d.target_cpu, 0);
				CU_ASSERT_EQUAL(ops->pin(&cg, 0), 0);
				CU_ASSERT_EQUAL(wait_on_cpu(hog, 0, 200), 0);
				moved_at = nemo_now_ns();
				ms = (double)(moved_at - first_low_start) / 1e6;
				sum_reaction += ms;
				worst_reaction = ms > worst_reaction ? ms : worst_reaction;
				reactions++;
				printf("\n    reclaim %d: spare below %.2f from t0, moved %.2f ms later "
				       "(move itself %.2f ms)",
				       reactions, rc.threshold, ms, (double)(moved_at - t0) / 1e6);
			} else if (was && !core[0].reclaimed) {
				CU_ASSERT_EQUAL(ops->pin(&cg, 1), 0); /* released: home again */
			}
		}
	}
	sched_setaffinity(0, sizeof(saved), &saved);
	if (reactions) {
		printf("\n    reaction time (first low window start -> moved): mean %.2f ms, worst "
		       "%.2f ms over %d reclaims, K=%u windows of 1 ms",
		       sum_reaction / reactions, worst_reaction, reactions, rc.k_windows);
		CU_ASSERT(worst_reaction < 50.0);
	} else {
		printf("\n    the NF never stayed below spare %.2f: lowest %.3f, %llu of %llu "
		       "windows low, longest run %llu",
		       rc.threshold, min_spare, (unsigned long long)n_low,
		       (unsigned long long)n_windows, (unsigned long long)max_streak);
	}
	CU_ASSERT(reactions >= 1);
	ops->pin(&cg, 1);
	kill_hog();
	hv_sampler_destroy(s);
	test_proc_stop(&nf, 10000);
}

NEMO_SUITE(scheduler_cgroup, suite_setup, suite_teardown, {"cgroup_knobs", test_cgroup_knobs},
	   {"iwatch_counters", test_iwatch_counters}, {"reclaim_reaction", test_reclaim_reaction})
