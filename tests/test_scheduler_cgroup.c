/* test_scheduler_cgroup.c - harvest cgroups, thread counts, perf counters and reclaim, for real. */
#include <errno.h>
#include <glob.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nemo/cgroup.h"
#include "nemo/clock.h"
#include "nemo/harvester.h"
#include "nemo/sandbox.h"
#include "nemo/scheduler.h"
#include "proc.h"
#include "test.h"

/*
 * The harvest cgroups as nemod uses them: through the cgroup tree's owner, the sandbox host,
 * on a root of this suite's own. The CPU hog is a sandbox spinning in an invocation, forked
 * into core 1's harvest cgroup like every function instance.
 */
static char root[64];
static char nf_bin[512], gen_bin[512];
static struct sbx_host *host;
static int mode;

struct hog {
	struct sbx_sandbox *sb;
	pthread_t thread;
	struct sbx_result res;
	pid_t pid; /* the spinning process, as the host sees it */
};
static struct hog hog;

static int read_str(const char *dir, const char *file, char *buf, size_t len)
{
	char path[1024];
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

static int write_str(const char *dir, const char *file, const char *val)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	if (fputs(val, f) < 0) {
		fclose(f);
		return -EIO;
	}
	return fclose(f) ? -errno : 0;
}

static long read_long(const char *dir, const char *file)
{
	char buf[64];

	return read_str(dir, file, buf, sizeof(buf)) > 0 ? strtol(buf, NULL, 10) : -999;
}

static bool runnable(pid_t pid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (read_str(path, "stat", buf, sizeof(buf)) <= 0)
		return false;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'R';
}

static void *hog_main(void *arg)
{
	struct hog *h = arg;

	sbx_invoke(h->sb, "", 0, &h->res);
	return NULL;
}

/* Kill the hog (its invocation ends as a crash) and reap it. */
static void kill_hog(void)
{
	if (!hog.sb)
		return;
	kill(sbx_pid(hog.sb), SIGKILL);
	pthread_join(hog.thread, NULL);
	sbx_result_release(&hog.res);
	sbx_destroy(hog.sb);
	memset(&hog, 0, sizeof(hog));
}

/* A sandbox on `core` spinning in an invocation for at most 20 s. 0, or -1 (message said). */
static int start_hog(int core)
{
	struct sbx_spec s;
	char err[SBX_MSG_MAX] = "", dir[512], procs[256];

	sbx_spec_defaults(&s);
	snprintf(s.name, sizeof(s.name), "hog");
	s.runtime = SBX_RUNTIME_C;
	snprintf(s.code, sizeof(s.code), "%s/build/functions/test-hostile.so", nemo_test_srcdir());
	snprintf(s.handler, sizeof(s.handler), "spin");
	s.timeout_ms = 20000;
	hog.sb = sbx_create(host, &s, core);
	if (!hog.sb || sbx_init(hog.sb, err, sizeof(err))) {
		printf("\n  hog sandbox: %s %s", strerror(errno), err);
		return -1;
	}
	if (pthread_create(&hog.thread, NULL, hog_main, &hog))
		return -1;
	/* the process that spins: the one of the sandbox's cgroup that runs */
	for (int i = 0; i < 2000 && !hog.pid; i++) {
		test_msleep(1);
		if (sbx_sandbox_cgroup(hog.sb, "freezer", dir, sizeof(dir)) ||
		    read_str(dir, "cgroup.procs", procs, sizeof(procs)) <= 0)
			continue;
		for (char *save, *t = strtok_r(procs, "\n", &save); t;
		     t = strtok_r(NULL, "\n", &save))
			if (runnable(atoi(t)))
				hog.pid = atoi(t);
	}
	return hog.pid ? 0 : -1;
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
	struct sbx_host_config cfg = {.n_cores = 2};

	snprintf(root, sizeof(root), "nemo-sct-%d", getpid());
	snprintf(nf_bin, sizeof(nf_bin), "%s/nemo-nf", nemo_test_bindir());
	snprintf(gen_bin, sizeof(gen_bin), "%s/nemo-gen", nemo_test_bindir());
	mode = sbx_cgroup_detect(NULL, 0);
	if (geteuid() != 0)
		return 0; /* the cases say why they skip */
	cfg.cgroup_root = root;
	host = sbx_host_new(&cfg);
	return host ? 0 : -1;
}

/* Remove the test root in every controller, even after a failed test. */
static int suite_teardown(void)
{
	char pattern[128], dirs[8][512];
	glob_t g;
	int n;

	kill_hog();
	test_proc_kill_all();
	sbx_host_destroy(host);
	host = NULL;
	n = sbx_cgroup_root_dirs(root, dirs, 8);
	for (int i = 0; i < n; i++)
		rmdir(dirs[i]);
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

/* Whether `pid` may run only on `cpu`: its cpuset, as the scheduler applies it. */
static bool runs_only_on(pid_t pid, int cpu)
{
	cpu_set_t set;

	return sched_getaffinity(pid, sizeof(set), &set) == 0 && CPU_COUNT(&set) == 1 &&
	       CPU_ISSET(cpu, &set);
}

static void test_cgroup_knobs(void)
{
	bool v1 = mode == SBX_CGROUP_V1;
	char dir[512], buf[64];
	uint64_t u0, u1;
	uint32_t total, nrun, n;

	if (geteuid() != 0) {
		nemo_test_skip("cgroup knobs need root");
		return;
	}
	CU_ASSERT_EQUAL_FATAL(sbx_host_core_cgroup(host, 1, "cpu", dir, sizeof(dir)), 0);
	printf("\n    backend %s, harvest cgroup %s", sbx_host_cgroup_backend(host), dir);
	CU_ASSERT_STRING_EQUAL(sbx_host_cgroup_backend(host), v1 ? "v1" : "v2");
	/* both policies, and back */
	CU_ASSERT_EQUAL(sbx_cgroup_core_idle(host, 1, false), 0);
	CU_ASSERT_EQUAL(read_long(dir, "cpu.idle"), 0);
	CU_ASSERT_EQUAL(read_long(dir, v1 ? "cpu.shares" : "cpu.weight"), v1 ? 2 : 1);
	CU_ASSERT_EQUAL(sbx_cgroup_core_idle(host, 1, true), 0);
	CU_ASSERT_EQUAL(read_long(dir, "cpu.idle"), 1);
	CU_ASSERT_EQUAL(sbx_cgroup_core_idle(host, 7, true), -EINVAL);
	/* quota on and off */
	CU_ASSERT_EQUAL(sbx_cgroup_core_quota(host, 1, 2000, 10000), 0);
	if (v1) {
		CU_ASSERT_EQUAL(read_long(dir, "cpu.cfs_quota_us"), 2000);
		CU_ASSERT_EQUAL(read_long(dir, "cpu.cfs_period_us"), 10000);
	} else {
		CU_ASSERT(read_str(dir, "cpu.max", buf, sizeof(buf)) > 0);
		CU_ASSERT_STRING_EQUAL(buf, "2000 10000\n");
	}
	CU_ASSERT_EQUAL(sbx_cgroup_core_quota(host, 1, 10, 10000), -EINVAL);

	/* a hog under a 20 % quota gets about 20 % of cpu 1, counted as harvested there */
	CU_ASSERT_EQUAL_FATAL(start_hog(1), 0);
	CU_ASSERT_TRUE(runs_only_on(hog.pid, 1));
	CU_ASSERT_EQUAL_FATAL(sbx_cgroup_cpu_harvested(host, 1, &u0), 0);
	test_msleep(500);
	CU_ASSERT_EQUAL(sbx_cgroup_cpu_harvested(host, 1, &u1), 0);
	printf("\n    hog under quota 2/10 ms: %.1f %% of cpu 1", (double)(u1 - u0) / 5e6);
	CU_ASSERT((u1 - u0) > 50000000ull && (u1 - u0) < 150000000ull);
	CU_ASSERT_EQUAL(sbx_cgroup_core_quota(host, 1, 0, 10000), 0);
	if (v1) {
		CU_ASSERT_EQUAL(read_long(dir, "cpu.cfs_quota_us"), -1);
	} else {
		CU_ASSERT(read_str(dir, "cpu.max", buf, sizeof(buf)) > 0 &&
			  !strncmp(buf, "max ", 4));
	}
	CU_ASSERT_EQUAL(sbx_cgroup_cpu_harvested(host, 1, &u0), 0);
	test_msleep(300);
	CU_ASSERT_EQUAL(sbx_cgroup_cpu_harvested(host, 1, &u1), 0);
	printf("\n    hog unthrottled: %.1f %% of cpu 1", (double)(u1 - u0) / 3e6);
	CU_ASSERT((u1 - u0) > 200000000ull);

	/* the counts see it: one sandbox on core 1, none on core 0, its spinner runnable */
	CU_ASSERT_EQUAL(sbx_cgroup_core_threads(host, 1, &total, &nrun), 0);
	CU_ASSERT(total >= 1);
	CU_ASSERT_EQUAL(nrun, 1);
	CU_ASSERT_EQUAL(sbx_cgroup_core_sandboxes(host, 1, &n, NULL), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(sbx_cgroup_core_sandboxes(host, 0, &n, NULL), 0);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(sbx_cgroup_core_threads(host, 9, &total, &nrun), -EINVAL);
	kill_hog();
}

/*
 * `harvested` after a move: core 1's harvest cgroup pinned to cpu 0 (reclaim by move) runs
 * its hog there, and that time counts for cpu 0, not cpu 1; back home, it counts for cpu 1
 * again. On v1 the kernel's own per-CPU accounting (cpuacct.usage_percpu) must agree with it;
 * on v2, which has none, the two CPUs' figures must add up to the cgroup's usage.
 */
/* The hog's CPU time so far, by CPU, from the kernel's own per-CPU accounting (v1 only). */
static void kernel_percpu(const char *acct, uint64_t *cpu0, uint64_t *cpu1)
{
	char buf[1024];
	unsigned long long a = 0, b = 0;

	CU_ASSERT(read_str(acct, "cpuacct.usage_percpu", buf, sizeof(buf)) > 0);
	CU_ASSERT_EQUAL(sscanf(buf, "%llu %llu", &a, &b), 2);
	*cpu0 = a;
	*cpu1 = b;
}

static void test_harvested_follows_the_cpu(void)
{
	bool v1 = mode == SBX_CGROUP_V1;
	uint64_t h0, h1, e0, e1, k0 = 0, k1 = 0, l0 = 0, l1 = 0;
	char acct[512];

	if (geteuid() != 0) {
		nemo_test_skip("harvest cgroups need root");
		return;
	}
	/* the default weight, not the harvest policy: on a busy CI machine a hog at the lowest
	 * weight gets next to nothing of a CPU, and the split would be 0 against 0 */
	CU_ASSERT_EQUAL_FATAL(sbx_cgroup_core_idle(host, 1, false), 0);
	CU_ASSERT_EQUAL_FATAL(sbx_host_core_cgroup(host, 1, "cpu", acct, sizeof(acct)), 0);
	CU_ASSERT_FATAL(write_str(acct, v1 ? "cpu.shares" : "cpu.weight", v1 ? "1024" : "100") ==
			0);
	CU_ASSERT_EQUAL_FATAL(start_hog(1), 0);
	CU_ASSERT_EQUAL_FATAL(sbx_host_core_cgroup(host, 1, "cpuacct", acct, sizeof(acct)), 0);
	/* frozen between steps: the figures are read while nothing runs, so they compare exactly */
	CU_ASSERT_EQUAL_FATAL(sbx_freeze(hog.sb), 0);
	for (int step = 0; step < 3; step++) {
		/* step 0: on cpu 1; step 1: moved to cpu 0; step 2: home again */
		int on = step == 1 ? 0 : 1;
		uint64_t d0, d1, t0, wall;

		if (step > 0)
			CU_ASSERT_EQUAL(sbx_cgroup_core_pin(host, 1, on), 0);
		CU_ASSERT_TRUE(runs_only_on(hog.pid, on));
		CU_ASSERT_EQUAL(sbx_cgroup_cpu_harvested(host, 0, &h0), 0);
		CU_ASSERT_EQUAL(sbx_cgroup_cpu_harvested(host, 1, &h1), 0);
		if (v1)
			kernel_percpu(acct, &k0, &k1);
		t0 = nemo_now_ns();
		CU_ASSERT_EQUAL(sbx_thaw(hog.sb), 0);
		test_msleep(300);
		CU_ASSERT_EQUAL(sbx_freeze(hog.sb), 0);
		wall = nemo_now_ns() - t0;
		CU_ASSERT_EQUAL(sbx_cgroup_cpu_harvested(host, 0, &e0), 0);
		CU_ASSERT_EQUAL(sbx_cgroup_cpu_harvested(host, 1, &e1), 0);
		d0 = e0 - h0;
		d1 = e1 - h1;
		printf("\n    hog %s: harvested cpu 0 +%.1f ms, cpu 1 +%.1f ms in %.1f ms",
		       on == 0 ? "moved to cpu 0" : "on cpu 1", d0 / 1e6, d1 / 1e6, wall / 1e6);
		/* where it ran gets its time (some, however busy the machine), at most the wall
		 * time it had on that one CPU; the other CPU gets nothing */
		CU_ASSERT((on == 0 ? d0 : d1) > 1000000ull);
		CU_ASSERT((on == 0 ? d0 : d1) <= wall);
		CU_ASSERT((on == 0 ? d1 : d0) == 0);
		if (v1) {
			kernel_percpu(acct, &l0, &l1);
			printf(" (kernel per-CPU: +%.1f ms, +%.1f ms)", (l0 - k0) / 1e6,
			       (l1 - k1) / 1e6);
			/* the kernel's per-CPU split, to the nanosecond (nothing ran between reads) */
			CU_ASSERT_EQUAL(l0 - k0, d0);
			CU_ASSERT_EQUAL(l1 - k1, d1);
		}
	}
	CU_ASSERT_EQUAL(sbx_thaw(hog.sb), 0);
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
					  .move_min_spare = 0.3,
					  .freeze_below = 0.05};
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
	CU_ASSERT_EQUAL_FATAL(
		sbx_cgroup_core_idle(host, 1, SCHED_HARVEST_DEFAULT == SCHED_HARVEST_IDLE), 0);
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
	CU_ASSERT_EQUAL_FATAL(start_hog(1), 0);
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
				CU_ASSERT_EQUAL(sbx_cgroup_core_pin(host, 1, 0), 0);
				CU_ASSERT_EQUAL(wait_on_cpu(hog.pid, 0, 200), 0);
				moved_at = nemo_now_ns();
				ms = (double)(moved_at - first_low_start) / 1e6;
				sum_reaction += ms;
				worst_reaction = ms > worst_reaction ? ms : worst_reaction;
				reactions++;
				printf("\n    reclaim %d: spare below %.2f from t0, moved %.2f ms later "
				       "(move itself %.2f ms)",
				       reactions, rc.threshold, ms, (double)(moved_at - t0) / 1e6);
			} else if (was && !core[0].reclaimed) {
				/* released: home again */
				CU_ASSERT_EQUAL(sbx_cgroup_core_pin(host, 1, 1), 0);
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
	sbx_cgroup_core_pin(host, 1, 1);
	kill_hog();
	hv_sampler_destroy(s);
	test_proc_stop(&nf, 10000);
}

NEMO_SUITE(scheduler_cgroup, suite_setup, suite_teardown, {"cgroup_knobs", test_cgroup_knobs},
	   {"harvested follows the cpu a move pins to", test_harvested_follows_the_cpu},
	   {"iwatch_counters", test_iwatch_counters}, {"reclaim_reaction", test_reclaim_reaction})
