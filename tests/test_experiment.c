/* test_experiment.c - the experiments driver's --smoke run: CSVs, plots, report, order, cleanup. */
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"
#include "test.h"

#define N_SCENARIOS 6
#define SMOKE_REPS  2
#define SMOKE_CELLS 2

static const char *const scenarios[N_SCENARIOS] = {"dedicated",	       "colocate-fifo",
						   "colocate-default", "nemo",
						   "nemo-no-prewarm",  "nemo-zygotes"};
static const char *const smoke_cells[SMOKE_CELLS] = {"load50-mixed-r0", "step-mixed-r0"};

static struct {
	char dir[64];	 /* results of the full smoke run */
	char resume[64]; /* results of the interrupted and resumed run */
	char driver[512];
	pid_t pid;	   /* the smoke run's driver: its names carry this pid */
	int rc;		   /* its exit code */
	char before[8192]; /* /var/tmp/nemo-exp-* folders that existed before it */
} ex;

static int rm_tree(const char *path)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

static void list_workdirs(char *buf, size_t len)
{
	glob_t g;

	buf[0] = '\0';
	if (glob("/var/tmp/nemo-exp-*", 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			strncat(buf, g.gl_pathv[i], len - strlen(buf) - 2);
			strncat(buf, "\n", len - strlen(buf) - 1);
		}
		globfree(&g);
	}
}

/* Run the driver --smoke into dir with extra (and --reps if reps); returns its exit code,
 * -ETIMEDOUT, or 0 at once when timeout_ms is 0. */
static int run_driver(struct test_proc *p, const char *dir, const char *extra, const char *reps,
		      int timeout_ms)
{
	char *argv[] = {"/usr/bin/python3",
			ex.driver,
			"--smoke",
			"--out",
			(char *)dir,
			(char *)extra,
			reps ? "--reps" : NULL,
			(char *)reps,
			NULL};

	if (test_proc_start(p, argv))
		return -1;
	return timeout_ms ? test_proc_wait(p, timeout_ms) : 0;
}

static int suite_setup(void)
{
	struct test_proc p;

	if (geteuid() != 0)
		return 0;
	snprintf(ex.driver, sizeof(ex.driver), "%s/experiments/nemo_experiment.py",
		 nemo_test_srcdir());
	snprintf(ex.dir, sizeof(ex.dir), "/var/tmp/nemo-exptest-XXXXXX");
	snprintf(ex.resume, sizeof(ex.resume), "/var/tmp/nemo-exptest-XXXXXX");
	if (!mkdtemp(ex.dir) || !mkdtemp(ex.resume))
		return -1;
	list_workdirs(ex.before, sizeof(ex.before));
	/* the whole smoke run, once: the tests below read what it left */
	ex.rc = run_driver(&p, ex.dir, "--fresh", NULL, 240000);
	ex.pid = p.pid;
	if (ex.rc != 0)
		printf("\n  nemo_experiment.py --smoke exited %d:\n%s\n", ex.rc,
		       test_proc_output(&p));
	test_proc_stop(&p, 5000);
	return 0;
}

static int suite_teardown(void)
{
	test_proc_kill_all();
	if (ex.dir[0])
		rm_tree(ex.dir);
	if (ex.resume[0])
		rm_tree(ex.resume);
	return 0;
}

static bool need_root(void)
{
	if (geteuid() != 0) {
		nemo_test_skip("the experiment driver needs root (cgroups, DPDK)");
		return false;
	}
	return true;
}

static char *slurp(const char *dir, const char *name, size_t *len)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return test_read_file(path, len);
}

static void test_exits_zero(void)
{
	if (!need_root())
		return;
	CU_ASSERT_EQUAL(ex.rc, 0);
}

/* The n-th comma-separated field of line (no quoting in these CSVs), into out. */
static void field(const char *line, int n, char *out, size_t len)
{
	const char *p = line;

	for (int i = 0; i < n && p; i++) {
		p = strchr(p, ',');
		if (p)
			p++;
	}
	out[0] = '\0';
	if (!p)
		return;
	size_t k = strcspn(p, ",\n");
	snprintf(out, len, "%.*s", (int)(k < len ? k : len - 1), p);
}

static void test_results_csv(void)
{
	char *csv, *line, *save = NULL, f[64];
	int rows[N_SCENARIOS][SMOKE_CELLS] = {{0}}, total = 0;

	if (!need_root())
		return;
	csv = slurp(ex.dir, "results.csv", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
	CU_ASSERT_EQUAL(strncmp(csv, "seq,rep,scenario,cell,status,load_kind,load_share", 48), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(strtok_r(csv, "\n", &save), "harvested_s,harvest_ratio"));
	while ((line = strtok_r(NULL, "\n", &save))) {
		char scen[32], cell[32], status[32];

		total++;
		field(line, 2, scen, sizeof(scen));
		field(line, 3, cell, sizeof(cell));
		field(line, 4, status, sizeof(status));
		for (int s = 0; s < N_SCENARIOS; s++)
			for (int c = 0; c < SMOKE_CELLS; c++)
				if (!strcmp(scen, scenarios[s]) && !strcmp(cell, smoke_cells[c]))
					rows[s][c]++;
		/* a scenario runs, or says why it could not; never an empty status */
		CU_ASSERT(!strcmp(status, "ok") || !strcmp(status, "unavailable"));
		if (!strcmp(status, "ok")) {
			field(line, 11, f, sizeof(f)); /* nf_tx_pps */
			CU_ASSERT(atof(f) > 0);
			field(line, 19, f, sizeof(f)); /* spare_ratio */
			CU_ASSERT(f[0] != '\0' && atof(f) >= 0 && atof(f) <= 1.0001);
			field(line, 21, f, sizeof(f)); /* harvested_s: from cgroup accounting */
			CU_ASSERT(f[0] != '\0' && atof(f) >= 0);
			field(line, 23, f, sizeof(f)); /* invocations */
			CU_ASSERT(atoi(f) > 0);
		}
	}
	CU_ASSERT_EQUAL(total, N_SCENARIOS * SMOKE_CELLS * SMOKE_REPS);
	for (int s = 0; s < N_SCENARIOS; s++)
		for (int c = 0; c < SMOKE_CELLS; c++) {
			if (rows[s][c] != SMOKE_REPS)
				printf("\n  %s %s: %d rows\n", scenarios[s], smoke_cells[c],
				       rows[s][c]);
			CU_ASSERT_EQUAL(rows[s][c], SMOKE_REPS);
		}
	free(csv);
}

static void test_other_csvs(void)
{
	static const struct {
		const char *name, *header;
		int min_rows;
	} files[] = {
		{"invocations.csv",
		 "seq,rep,scenario,cell,function,transport,status,start_path,"
		 "total_ms,start_ms,run_ms",
		 10},
		{"timeseries.csv", "seq,rep,scenario,cell,t_s,rx_pps,spare_ratio,harvested_share",
		 10},
		{"order.csv", "seq,rep,scenario,status,started,finished", N_SCENARIOS * SMOKE_REPS},
	};

	if (!need_root())
		return;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *csv = slurp(ex.dir, files[i].name, NULL);
		int lines = 0;

		CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
		CU_ASSERT_EQUAL(strncmp(csv, files[i].header, strlen(files[i].header)), 0);
		for (char *p = csv; (p = strchr(p, '\n')); p++)
			lines++;
		if (lines - 1 < files[i].min_rows)
			printf("\n  %s: %d rows\n", files[i].name, lines - 1);
		CU_ASSERT(lines - 1 >= files[i].min_rows);
		free(csv);
	}
}

static void test_plots_are_pngs(void)
{
	static const char *const pngs[] = {
		"plots/spare_harvested_vs_load.png", "plots/nf_per_scenario.png",
		"plots/completion_per_scenario.png", "plots/step_reclaim.png",
		/* the smoke profile's one load: completion against NF p99.9 per scenario */
		"plots/dominance_load50.png"};
	static const unsigned char magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

	if (!need_root())
		return;
	for (size_t i = 0; i < sizeof(pngs) / sizeof(pngs[0]); i++) {
		size_t len = 0;
		char *png = slurp(ex.dir, pngs[i], &len);

		if (!png)
			printf("\n  missing %s/%s\n", ex.dir, pngs[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(png);
		CU_ASSERT(len > 1000);
		CU_ASSERT_EQUAL(memcmp(png, magic, sizeof(magic)), 0);
		free(png);
	}
}

static void test_report_tables(void)
{
	char *md, row[64];

	if (!need_root())
		return;
	md = slurp(ex.dir, "report.md", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(md);
	CU_ASSERT_PTR_NOT_NULL(
		strstr(md, "| figure | nemo (this run) | NEMO published | goal met? |"));
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "| 41 % |"));
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "| 12.5–25× |"));
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "| scenario | NF rx Mpps | NF loss % | NF p99 µs |"));
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "## Where the goals are missed"));
	/* nemo against each co-location baseline, on both axes, at the smoke profile's load */
	CU_ASSERT_PTR_NOT_NULL(
		strstr(md, "## Dominance: nemo against straightforward co-location"));
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "| load | completion mean ms, nemo / colocate-fifo |"));
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "| load | NF p99.9 µs, nemo / colocate-default |"));
	CU_ASSERT_EQUAL(test_count_of(md, "\n| 50 % | "), 2);
	/* the speed-up over colocate-default is shown, not judged against NEMO's 12.5x */
	CU_ASSERT_PTR_NOT_NULL(strstr(md, "not a goal here: judged in Dominance"));
	for (int s = 0; s < N_SCENARIOS; s++) {
		snprintf(row, sizeof(row), "\n| %s | ", scenarios[s]);
		if (!strstr(md, row))
			printf("\n  report.md has no row for %s\n", scenarios[s]);
		CU_ASSERT_PTR_NOT_NULL(strstr(md, row));
	}
	free(md);
}

/* Each repetition runs every scenario once, and the order rotates by one per repetition. */
static void test_order_interleaved(void)
{
	char *csv, *line, *save = NULL, f[32];
	int order[SMOKE_REPS][N_SCENARIOS], n[SMOKE_REPS] = {0}, seq = 0;

	if (!need_root())
		return;
	csv = slurp(ex.dir, "order.csv", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
	strtok_r(csv, "\n", &save);
	while ((line = strtok_r(NULL, "\n", &save))) {
		int rep, s;

		field(line, 0, f, sizeof(f));
		CU_ASSERT_EQUAL(atoi(f), seq++); /* blocks ran in plan order, none twice */
		field(line, 1, f, sizeof(f));
		rep = atoi(f);
		CU_ASSERT_FATAL(rep >= 0 && rep < SMOKE_REPS && n[rep] < N_SCENARIOS);
		field(line, 2, f, sizeof(f));
		for (s = 0; s < N_SCENARIOS && strcmp(f, scenarios[s]); s++)
			;
		CU_ASSERT_FATAL(s < N_SCENARIOS);
		order[rep][n[rep]++] = s;
	}
	for (int r = 0; r < SMOKE_REPS; r++) {
		CU_ASSERT_EQUAL_FATAL(n[r], N_SCENARIOS);
		for (int i = 0; i < N_SCENARIOS; i++)
			CU_ASSERT_EQUAL(order[r][i], (i + r) % N_SCENARIOS);
	}
	CU_ASSERT_NOT_EQUAL(order[0][0], order[1][0]);
	free(csv);
}

/* The command line of process `pid` (a /proc entry's name), its NULs as spaces; false if none. */
static bool cmdline_of(const char *pid, char *cmd, size_t len)
{
	char path[300];
	size_t n;
	FILE *f;

	if (pid[0] < '1' || pid[0] > '9')
		return false;
	snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(cmd, 1, len - 1, f);
	fclose(f);
	for (size_t i = 0; i < n; i++)
		cmd[i] = cmd[i] ? cmd[i] : ' ';
	cmd[n] = '\0';
	return true;
}

/* Nothing of the driver's pid is left: processes, channels, EAL folders, cgroups, workdirs. */
static void assert_nothing_left(pid_t pid)
{
	char pattern[128], after[8192];
	glob_t g;
	DIR *d;
	struct dirent *e;

	d = opendir("/proc");
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	while ((e = readdir(d))) {
		char cmd[1024];

		if (!cmdline_of(e->d_name, cmd, sizeof(cmd)))
			continue;
		/* every config, socket and broker file of a run lives in /var/tmp/nemo-exp-* */
		if (strstr(cmd, "/var/tmp/nemo-exp-") &&
		    (strstr(cmd, "nemo-nf") || strstr(cmd, "nemod") || strstr(cmd, "nemo-gen") ||
		     strstr(cmd, "mosquitto"))) {
			printf("\n  left running: %s %s\n", e->d_name, cmd);
			CU_FAIL("a process of the experiment is still running");
		}
	}
	closedir(d);
	const char *fmts[] = {"/dev/shm/nemo-hc-exp%d-*", "/var/run/dpdk/nemo-nf-exp%d-*",
			      "/sys/fs/cgroup/*/nemo-exp%d-*",
			      "/sys/fs/cgroup/unified/nemo-exp%d-*"};
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		snprintf(pattern, sizeof(pattern), fmts[i], (int)pid);
		if (glob(pattern, 0, NULL, &g) == 0) {
			printf("\n  left behind: %s\n", g.gl_pathv[0]);
			CU_FAIL("the experiment left something behind");
			globfree(&g);
		}
	}
	list_workdirs(after, sizeof(after));
	for (char *p = after, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		*nl = '\0';
		if (!strstr(ex.before, p)) {
			printf("\n  left behind: %s\n", p);
			CU_FAIL("the experiment left a work folder behind");
		}
	}
}

static void test_nothing_left_behind(void)
{
	if (!need_root())
		return;
	assert_nothing_left(ex.pid);
}

/* Ctrl-C after the first block: a clean stop, then --resume runs only the rest. */
static void test_interrupt_and_resume(void)
{
	struct test_proc p;
	char *csv;
	int rows = 0, rc;

	if (!need_root())
		return;
	/* one repetition: 5 blocks */
	CU_ASSERT_EQUAL_FATAL(run_driver(&p, ex.resume, "--fresh", "1", 0), 0);
	for (int i = 0; i < 1200; i++) { /* until the first block's rows landed */
		struct stat st;
		char path[128];

		snprintf(path, sizeof(path), "%s/order.csv", ex.resume);
		if (stat(path, &st) == 0 || test_proc_wait(&p, 0) != -ETIMEDOUT)
			break;
		test_msleep(100);
	}
	kill(p.pid, SIGINT);
	rc = test_proc_wait(&p, 60000);
	if (rc != 130)
		printf("\n  interrupted driver exited %d:\n%s\n", rc, test_proc_output(&p));
	CU_ASSERT_EQUAL(rc, 130);
	CU_ASSERT_TRUE(test_proc_output_has(&p, "--resume"));
	assert_nothing_left(p.pid);

	rc = run_driver(&p, ex.resume, "--resume", NULL, 240000);
	if (rc != 0)
		printf("\n  resumed driver exited %d:\n%s\n", rc, test_proc_output(&p));
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_TRUE(test_proc_output_has(&p, "resuming"));
	assert_nothing_left(p.pid);
	csv = slurp(ex.resume, "order.csv", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
	for (char *q = csv; (q = strchr(q, '\n')); q++)
		rows++;
	/* the header, then each of the 5 blocks of one repetition exactly once */
	CU_ASSERT_EQUAL(rows, 1 + N_SCENARIOS);
	free(csv);
}

/* The cgroup root `root` exists in no hierarchy. */
static bool cgroup_gone(const char *root)
{
	char pattern[128];
	glob_t g;
	bool gone = true;

	snprintf(pattern, sizeof(pattern), "/sys/fs/cgroup/*/%s", root);
	if (glob(pattern, 0, NULL, &g) == 0) {
		printf("\n  left behind: %s\n", g.gl_pathv[0]);
		gone = false;
		globfree(&g);
	}
	snprintf(pattern, sizeof(pattern), "/sys/fs/cgroup/%s", root);
	if (access(pattern, F_OK) == 0) {
		printf("\n  left behind: %s\n", pattern);
		gone = false;
	}
	return gone;
}

/* A process whose command line names `needle`, or 0. */
static pid_t process_naming(const char *needle)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	while (d && !found && (e = readdir(d))) {
		char cmd[2048];

		if (atoi(e->d_name) == getpid() || !cmdline_of(e->d_name, cmd, sizeof(cmd)))
			continue;
		if (strstr(cmd, needle)) {
			printf("\n  left running: %s %s\n", e->d_name, cmd);
			found = (pid_t)atoi(e->d_name);
		}
	}
	if (d)
		closedir(d);
	return found;
}

/*
 * make run's live mode, short: the packet-triggered sensor answers nemo-gen's flow 0 beside
 * the HTTP and MQTT calls, the summary counts what it handled, and nothing is left behind.
 */
static void test_live_packet_function(void)
{
	char dir[64] = "/var/tmp/nemo-exprun-XXXXXX", cfg[128], sock[128], name[32], text[1024];
	char root[48], workdir[128] = "", shm[96], eal[96], *sum, *p;
	double packets = -1, batches = -1, replies = -1;
	struct test_proc pr;
	int rc;

	if (!need_root())
		return;
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	chmod(dir, 0755);
	/* an NF of its own name and socket: another NF named 'default' may run on this host */
	snprintf(name, sizeof(name), "exprun%d", (int)getpid());
	snprintf(sock, sizeof(sock), "%s/nf.memif", dir);
	snprintf(cfg, sizeof(cfg), "%s/nf.json", dir);
	snprintf(text, sizeof(text),
		 "{\"name\":\"%s\",\"memory_mb\":512,\"ports\":[{\"vdev\":"
		 "\"net_memif0,role=server,socket=%s,socket-abstract=no\",\"rx_ring\":16384}],"
		 "\"lcores\":[{\"lcore\":1,\"cpu\":1,\"rx\":[{\"port\":0}],\"chain\":[\"fwd\"],"
		 "\"idle\":{\"policy\":\"sleep\"}}]}",
		 name, sock);
	CU_ASSERT_EQUAL_FATAL(test_write_text(cfg, text), 0);
	{
		char *argv[] = {"/usr/bin/python3",
				ex.driver,
				"live",
				"--nf-config",
				cfg,
				"--duration",
				"6",
				"--stream-clients",
				"0",
				"--out",
				dir,
				NULL};

		rc = test_proc_start(&pr, argv) ? -1 : test_proc_wait(&pr, 180000);
	}
	if (rc != 0)
		printf("\n  live exited %d:\n%s\n", rc, test_proc_output(&pr));
	CU_ASSERT_EQUAL(rc, 0);
	p = strstr(test_proc_output(&pr), "work folder ");
	if (p)
		sscanf(p, "work folder %127s", workdir);
	sum = slurp(dir, "summary.md", NULL);
	p = sum ? strstr(sum, "packet function sensor") : NULL;
	if (!p)
		printf("\n  summary: %s\n", sum ? sum : "none");
	if (p && (p = strstr(p, "): ")))
		sscanf(p, "): %lf packets in %lf batches (%*[^)]), %lf replies", &packets, &batches,
		       &replies);
	printf("\n  the sensor handled %.0f packets in %.0f batches, %.0f replies", packets,
	       batches, replies);
	CU_ASSERT(packets > 0);
	CU_ASSERT(batches >= 1 && batches <= packets);
	CU_ASSERT(replies > 0 && replies <= packets);
	free(sum);
	/* nothing left: processes of its work folder, the NF's files, nemod's cgroups */
	test_proc_stop(&pr, 5000);
	CU_ASSERT_FATAL(workdir[0] == '/');
	CU_ASSERT_EQUAL(process_naming(workdir), 0);
	CU_ASSERT_EQUAL(process_naming(sock), 0);
	CU_ASSERT_NOT_EQUAL(access(workdir, F_OK), 0);
	CU_ASSERT_NOT_EQUAL(access(sock, F_OK), 0);
	snprintf(shm, sizeof(shm), "/dev/shm/nemo-hc-%s", name);
	snprintf(eal, sizeof(eal), "/var/run/dpdk/nemo-nf-%s", name);
	CU_ASSERT_NOT_EQUAL(access(shm, F_OK), 0);
	CU_ASSERT_NOT_EQUAL(access(eal, F_OK), 0);
	snprintf(root, sizeof(root), "nemo-run%d", (int)pr.pid);
	CU_ASSERT(cgroup_gone(root));
	rm_tree(dir);
}

NEMO_SUITE(experiment, suite_setup, suite_teardown, {"--smoke exits 0", test_exits_zero},
	   {"results.csv: a row per scenario x cell x repetition", test_results_csv},
	   {"invocations, time series and order CSVs", test_other_csvs},
	   {"plots are PNGs", test_plots_are_pngs},
	   {"report.md tables with every scenario and NEMO's figures", test_report_tables},
	   {"scenario order rotates across repetitions", test_order_interleaved},
	   {"nothing left behind", test_nothing_left_behind},
	   {"Ctrl-C cleans up and --resume finishes the run", test_interrupt_and_resume},
	   {"make run: a packet-triggered function beside the calls, nothing left",
	    test_live_packet_function});
