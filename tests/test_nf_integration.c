/* test_nf_integration.c - nemo-nf and nemo-gen for real, on memif, pcap and null vdevs. */
#include <errno.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <pcap/pcap.h>

#include "nemo/harvester.h"
#include "nemo/nf_module.h"
#include "proc.h"
#include "test.h"

static char nf_bin[512], gen_bin[512];
static int run_id;

/* Every name this suite makes starts with nemo-it-<pid>, so teardown finds all of it. */
static void names(char *name, size_t nlen, char *sock, size_t slen)
{
	snprintf(name, nlen, "it%d-%d", getpid(), ++run_id);
	if (sock)
		snprintf(sock, slen, "/tmp/nemo-it-%d-%d.memif", getpid(), run_id);
}

static void cleanup_all(void)
{
	test_cleanup_runs("it");
}

static int suite_setup(void)
{
	snprintf(nf_bin, sizeof(nf_bin), "%s/nemo-nf", nemo_test_bindir());
	snprintf(gen_bin, sizeof(gen_bin), "%s/nemo-gen", nemo_test_bindir());
	return access(nf_bin, X_OK) || access(gen_bin, X_OK);
}

static void hugepages_restore(void);

static int suite_teardown(void)
{
	hugepages_restore();
	cleanup_all();
	return 0;
}

/* Write a one-port, one-lcore config to /tmp/nemo-it-<pid>-<n>.json. */
static void write_config(char *path, size_t len, const char *name, const char *port,
			 const char *lcore_extra)
{
	FILE *f;

	snprintf(path, len, "/tmp/nemo-it-%d-%d.json", getpid(), run_id);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fprintf(f,
		"{\"name\":\"%s\",\"stats_interval_ms\":0,\"memory_mb\":256,"
		"\"ports\":[%s],"
		"\"lcores\":[{\"lcore\":1,\"cpu\":1,\"rx\":[{\"port\":0}],\"chain\":[\"fwd\"]%s}]}",
		name, port, lcore_extra ? lcore_extra : "");
	fclose(f);
}

static void memif_port(char *buf, size_t len, const char *sock)
{
	snprintf(buf, len,
		 "{\"vdev\":\"net_memif0,role=server,socket=%s,socket-abstract=no\","
		 "\"rx_ring\":16384,\"line_rate_pps\":25000000}",
		 sock);
}

static int nf_start(struct test_proc *p, const char *cfg, const char *duration)
{
	char *argv[] = {nf_bin, "--config", (char *)cfg, "--duration", (char *)duration, NULL};

	return test_proc_start(p, argv);
}

/* Wait until the NF publishes its channel (its ports are up by then). */
static struct hv_channel *wait_channel(struct test_proc *p, const char *name)
{
	char path[96];

	snprintf(path, sizeof(path), "/dev/shm/nemo-hc-%s", name);
	for (int i = 0; i < 1500; i++) {
		if (test_proc_wait(p, 0) != -ETIMEDOUT)
			return NULL; /* it exited */
		/* the magic is written last: until then the reader refuses, so look first */
		if (access(path, R_OK) == 0) {
			struct hv_channel *ch = hv_channel_open(name);

			if (ch)
				return ch;
		}
		test_msleep(10);
	}
	return NULL;
}

/* Run nemo-gen to completion and return its JSON summary (caller frees). */
static cJSON *gen_run(const char *sock, const char *rate, const char *duration)
{
	char json[128], *argv[20];
	struct test_proc g;
	cJSON *res = NULL;
	int n = 0, rc;

	snprintf(json, sizeof(json), "/tmp/nemo-it-%d-%d-gen.json", getpid(), run_id);
	/* the generator is the measuring instrument: keep other work on its CPU from stalling it */
	argv[n++] = "/usr/bin/nice";
	argv[n++] = "-n";
	argv[n++] = "-10";
	argv[n++] = gen_bin;
	argv[n++] = "--socket";
	argv[n++] = (char *)sock;
	argv[n++] = "--rate";
	argv[n++] = (char *)rate;
	argv[n++] = "--duration";
	argv[n++] = (char *)duration;
	argv[n++] = "--cpu";
	argv[n++] = "0";
	argv[n++] = "--quiet";
	argv[n++] = "--json";
	argv[n++] = json;
	argv[n] = NULL;
	CU_ASSERT_EQUAL_FATAL(test_proc_start(&g, argv), 0);
	rc = test_proc_wait(&g, 60000);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc == 0) {
		FILE *f = fopen(json, "r");
		char buf[4096] = "";

		if (f) {
			size_t len = fread(buf, 1, sizeof(buf) - 1, f);

			buf[len] = '\0';
			fclose(f);
		}
		res = cJSON_Parse(buf);
	} else {
		printf("\n  nemo-gen failed (%d):\n%s\n", rc, test_proc_output(&g));
		test_proc_stop(&g, 2000);
	}
	unlink(json);
	{
		/* a generator that crashed could not remove its own runtime folder */
		char prefix[32];

		snprintf(prefix, sizeof(prefix), "nemo-gen-%d", g.pid);
		test_remove_runtime_dir(prefix);
	}
	return res;
}

static double jnum(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* Find "<key> <number>" in text after `after`. */
static long long find_count(const char *text, const char *after, const char *key)
{
	const char *p = after ? strstr(text, after) : text;
	char k[64];

	if (!p)
		return -1;
	snprintf(k, sizeof(k), "%s ", key);
	p = strstr(p, k);
	return p ? atoll(p + strlen(k)) : -1;
}

static void test_memif_delivers_exactly(void)
{
	char name[32], sock[96], port[256], cfg[96];
	struct test_proc nf;
	struct hv_channel *ch;
	struct hc_lcore_record a, b;
	struct hv_window w;
	cJSON *res;
	long long nf_rx;
	int rc;

	names(name, sizeof(name), sock, sizeof(sock));
	memif_port(port, sizeof(port), sock);
	write_config(cfg, sizeof(cfg), name, port, ",\"idle\":\"sleep\"");
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg, "0"), 0);
	ch = wait_channel(&nf, name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
	CU_ASSERT_EQUAL(hv_channel_read(ch, 0, &a), 0);

	res = gen_run(sock, "1000000", "2");
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	CU_ASSERT_EQUAL(hv_channel_read(ch, 0, &b), 0);
	printf("\n  sent %.0f received %.0f lost %.0f tx_dropped %.0f, %.0f pps (ratio %.4f), "
	       "p99 %.1f us\n",
	       jnum(res, "sent"), jnum(res, "received"), jnum(res, "lost"), jnum(res, "tx_dropped"),
	       jnum(res, "tx_pps"), jnum(res, "tx_ratio"), jnum(res, "lat_p99_us"));
	/* delivered exactly what was sent, at the rate asked for */
	CU_ASSERT(jnum(res, "sent") >= 1960000);
	CU_ASSERT_EQUAL(jnum(res, "received"), jnum(res, "sent"));
	CU_ASSERT_EQUAL(jnum(res, "lost"), 0);
	CU_ASSERT(jnum(res, "tx_ratio") >= 0.98);

	/* the accounting over the run: every cycle is busy, idle_poll or sleep */
	CU_ASSERT_EQUAL(hv_window(&a, &b, &w), 0);
	printf("  window: busy %.2f%% idle_poll %.2f%% sleep %.2f%% spare_ratio %.4f\n",
	       100.0 * (double)w.busy / (double)w.total,
	       100.0 * (double)w.idle_poll / (double)w.total,
	       100.0 * (double)w.sleep / (double)w.total, w.spare_ratio);
	CU_ASSERT(w.busy > 0 && w.sleep > 0);
	CU_ASSERT(w.spare_ratio > 0.0 && w.spare_ratio < 1.0);
	{
		double acct = (double)(w.busy + w.idle_poll + w.sleep);

		CU_ASSERT(acct <= (double)w.total * 1.01 && acct >= (double)w.total * 0.99);
	}
	/* the NF saw every packet: the run's, and the probes nemo-gen sent to find the path */
	CU_ASSERT_EQUAL(w.rx_pkts, (uint64_t)(jnum(res, "sent") + jnum(res, "probes_sent")));
	hv_channel_close(ch);

	/* SIGTERM: a clean exit with the summary, nothing left behind */
	rc = test_proc_stop(&nf, 10000);
	if (rc != 0)
		printf("\n  nemo-nf exited %d after SIGTERM (%zu bytes of output):\n%s\n", rc,
		       strlen(test_proc_output(&nf)), test_proc_output(&nf));
	CU_ASSERT_EQUAL(rc, 0);
	nf_rx = find_count(test_proc_output(&nf), "summary", "rx");
	CU_ASSERT_EQUAL(nf_rx, (long long)(jnum(res, "sent") + jnum(res, "probes_sent")));
	CU_ASSERT(test_proc_output_has(&nf, "accounted 100.0"));
	{
		char path[128];

		snprintf(path, sizeof(path), "/dev/shm/nemo-hc-%s", name);
		CU_ASSERT_EQUAL(access(path, F_OK), -1);
		snprintf(path, sizeof(path), "/var/run/dpdk/nemo-nf-%s", name);
		CU_ASSERT_EQUAL(access(path, F_OK), -1);
		CU_ASSERT_EQUAL(access(sock, F_OK), -1);
	}
	cJSON_Delete(res);
}

/* CPU time (ns) the process's threads have run, from /proc/<pid>/task/<tid>/schedstat. */
static unsigned long long proc_cpu_ns(pid_t pid)
{
	char pattern[64];
	unsigned long long sum = 0;
	glob_t g;

	snprintf(pattern, sizeof(pattern), "/proc/%d/task/*/schedstat", pid);
	if (glob(pattern, 0, NULL, &g) != 0)
		return 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		FILE *f = fopen(g.gl_pathv[i], "r");
		unsigned long long ns = 0;

		if (f) {
			if (fscanf(f, "%llu", &ns) == 1)
				sum += ns;
			fclose(f);
		}
	}
	globfree(&g);
	return sum;
}

static void test_zero_traffic_sleeps(void)
{
	char name[32], sock[96], port[256], cfg[96];
	struct test_proc nf;
	struct hv_channel *ch;
	struct hc_lcore_record a, b;
	struct hv_window w;
	unsigned long long cpu0, cpu1;

	names(name, sizeof(name), sock, sizeof(sock));
	memif_port(port, sizeof(port), sock);
	write_config(cfg, sizeof(cfg), name, port, ",\"idle\":\"sleep\"");
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg, "0"), 0);
	ch = wait_channel(&nf, name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
	test_msleep(300);
	CU_ASSERT_EQUAL(hv_channel_read(ch, 0, &a), 0);
	cpu0 = proc_cpu_ns(nf.pid);
	test_msleep(1000);
	cpu1 = proc_cpu_ns(nf.pid);
	CU_ASSERT_EQUAL(hv_channel_read(ch, 0, &b), 0);
	CU_ASSERT_EQUAL(hv_window(&a, &b, &w), 0);
	printf("\n  idle NF: sleep %.2f%% of the lcore, %lu sleeps/s, process CPU %.2f%% of a "
	       "core\n",
	       100.0 * (double)w.sleep / (double)w.total, (unsigned long)(b.sleeps - a.sleeps),
	       (double)(cpu1 - cpu0) / 1e7);
	CU_ASSERT(w.sleep > w.total * 95 / 100);
	CU_ASSERT(b.sleeps - a.sleeps > 100);
	CU_ASSERT_EQUAL(w.busy, 0);
	/* the whole process, control thread included, under 5 % of a core */
	CU_ASSERT(cpu1 - cpu0 < 50000000ull);
	hv_channel_close(ch);
	CU_ASSERT_EQUAL(test_proc_stop(&nf, 10000), 0);
}

static void test_telemetry_answers(void)
{
	char name[32], sock[96], port[256], cfg[96], cmd[256], out[8192] = "";
	struct test_proc nf;
	struct hv_channel *ch;
	FILE *f;
	size_t len;

	names(name, sizeof(name), sock, sizeof(sock));
	memif_port(port, sizeof(port), sock);
	write_config(cfg, sizeof(cfg), name, port, NULL);
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg, "0"), 0);
	ch = wait_channel(&nf, name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
	snprintf(cmd, sizeof(cmd),
		 "printf '/nemo/lcores\\n/nemo/module\\n/nemo/module,1,0\\n' | "
		 "timeout 20 /usr/bin/dpdk-telemetry.py -f nemo-nf-%s 2>&1",
		 name);
	f = popen(cmd, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	len = fread(out, 1, sizeof(out) - 1, f);
	out[len] = '\0';
	pclose(f);
	if (!strstr(out, "\"busy_cycles\""))
		printf("\n  dpdk-telemetry.py said:\n%s\n", out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"/nemo/lcores\": {\"1\": {\"lcore\": 1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"busy_cycles\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"sleep_cycles\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"spare_ratio\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"drop_trunc_eth\""));
	/* the chain's module instances, and one instance's own figures */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"/nemo/module\": {\"1_0\": \"fwd\"}"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"/nemo/module\": {\"module\": \"fwd\", \"out_port\""));
	hv_channel_close(ch);
	CU_ASSERT_EQUAL(test_proc_stop(&nf, 10000), 0);
}

static int count_pcap(const char *path)
{
	char err[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *d;
	pcap_t *p = pcap_open_offline(path, err);
	int n = 0;

	if (!p)
		return -1;
	while (pcap_next_ex(p, &h, &d) == 1)
		n++;
	pcap_close(p);
	return n;
}

static void test_malformed_pcap(void)
{
	char name[32], in[96], outp[96], port[512], cfg[96];
	unsigned int nb_good = 0, expected[NF_DROP_REASONS] = {0};
	struct test_proc nf;
	const char *out;

	names(name, sizeof(name), NULL, 0);
	snprintf(in, sizeof(in), "/tmp/nemo-it-%d-%d-in.pcap", getpid(), run_id);
	snprintf(outp, sizeof(outp), "/tmp/nemo-it-%d-%d-out.pcap", getpid(), run_id);
	CU_ASSERT_EQUAL_FATAL(nemo_test_write_malformed_pcap(in, &nb_good, expected), 0);
	snprintf(port, sizeof(port), "{\"vdev\":\"net_pcap0,rx_pcap=%s,tx_pcap=%s\"}", in, outp);
	write_config(cfg, sizeof(cfg), name, port, NULL);
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg, "1.5"), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&nf, 20000), 0);
	out = test_proc_output(&nf);
	/* every malformed kind dropped and counted under its reason, the good ones forwarded */
	for (int r = 0; r < NF_DROP_REASONS; r++) {
		long long got = find_count(out, "drops:", nf_drop_reason_names[r]);

		if (expected[r] == 0)
			continue;
		if (got != (long long)expected[r])
			printf("\n  %s: expected %u, counted %lld\n", nf_drop_reason_names[r],
			       expected[r], got);
		CU_ASSERT_EQUAL(got, (long long)expected[r]);
	}
	CU_ASSERT_EQUAL(find_count(out, "summary", "tx"), (long long)nb_good);
	CU_ASSERT_EQUAL(count_pcap(outp), (int)nb_good);
}

static void test_bad_config_and_module(void)
{
	char name[32], cfg[96], path[96];
	struct test_proc nf;
	FILE *f;

	names(name, sizeof(name), NULL, 0);
	snprintf(path, sizeof(path), "/tmp/nemo-it-%d-%d.json", getpid(), run_id);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("{\"name\": \"x\", \"ports\": [ {\"vdev\": \"net_null0\"} ],\n \"lcores\": 7,\n}", f);
	fclose(f);
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, path, "1"), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&nf, 10000), 2);
	CU_ASSERT(test_proc_output_has(&nf, "malformed JSON near line 3"));

	write_config(cfg, sizeof(cfg), name, "{\"vdev\":\"net_null0\"}",
		     ",\"idle\":{\"policy\":\"sleep\",\"empty_polls\":\"many\"}");
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg, "1"), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&nf, 10000), 2);
	CU_ASSERT(test_proc_output_has(
		&nf, "key 'lcores[0].idle.empty_polls': expected an integer, got a string"));

	f = fopen(cfg, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fprintf(f,
		"{\"name\":\"%s\",\"ports\":[{\"vdev\":\"net_null0\"}],\"lcores\":[{\"lcore\":1,"
		"\"rx\":[{\"port\":0}],\"chain\":[\"fwd\",\"firewall9000\"]}]}",
		name);
	fclose(f);
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg, "1"), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&nf, 10000), 2);
	CU_ASSERT(test_proc_output_has(&nf, "unknown NF module 'firewall9000'"));
}

static void test_port_cannot_start(void)
{
	char name[32], cfg[96], sock[96], port[256];
	struct test_proc nf;

	names(name, sizeof(name), sock, sizeof(sock));
	write_config(cfg, sizeof(cfg), name,
		     "{\"vdev\":\"net_pcap0,rx_pcap=/nonexistent/in.pcap\"}", NULL);
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg, "1"), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&nf, 20000), 1);
	CU_ASSERT(
		test_proc_output_has(&nf, "port 0: cannot attach 'net_pcap0,rx_pcap=/nonexistent"));

	/* rx interrupts on a PMD without them: refused at start, with the way out */
	memif_port(port, sizeof(port), sock);
	write_config(cfg, sizeof(cfg), name, port, ",\"idle\":\"interrupt\"");
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg, "1"), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&nf, 20000), 1);
	CU_ASSERT(test_proc_output_has(&nf, "idle policy 'interrupt' needs a PMD"));
	CU_ASSERT_EQUAL(access(sock, F_OK), -1);
}

static void test_stale_memif_socket(void)
{
	char name[32], name2[48], cfg[96], cfg2[96], sock[96], port[256];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct test_proc nf, nf2;
	struct hv_channel *ch;
	cJSON *res;
	int fd;

	names(name, sizeof(name), sock, sizeof(sock));
	/* a socket file with nobody listening: what a killed memif server leaves */
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	memif_port(port, sizeof(port), sock);
	write_config(cfg, sizeof(cfg), name, port, NULL);
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf, cfg, "0"), 0);
	ch = wait_channel(&nf, name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
	CU_ASSERT(test_proc_output_has(&nf, "removed stale memif socket"));
	res = gen_run(sock, "100000", "0.5");
	CU_ASSERT_PTR_NOT_NULL(res);
	CU_ASSERT(res && jnum(res, "received") == jnum(res, "sent") && jnum(res, "sent") > 40000);
	cJSON_Delete(res);

	/* a second NF on a socket that is alive: refused, and the first is untouched */
	snprintf(name2, sizeof(name2), "%s-b", name);
	write_config(cfg2, sizeof(cfg2), name2, port, NULL);
	run_id++;
	CU_ASSERT_EQUAL_FATAL(nf_start(&nf2, cfg2, "1"), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&nf2, 20000), 1);
	CU_ASSERT(test_proc_output_has(&nf2, "is in use by another process"));
	CU_ASSERT_EQUAL(test_proc_wait(&nf, 0), -ETIMEDOUT);
	hv_channel_close(ch);
	CU_ASSERT_EQUAL(test_proc_stop(&nf, 10000), 0);
}

/* What test_hugepages changed on the machine, for hugepages_restore(). */
static long hp_restore = -1;
static char hp_umount[256];

static int write_long(const char *path, long v);

static void hugepages_restore(void)
{
	if (hp_umount[0]) {
		umount(hp_umount);
		hp_umount[0] = '\0';
	}
	if (hp_restore >= 0) {
		write_long("/proc/sys/vm/nr_hugepages", hp_restore);
		hp_restore = -1;
	}
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int write_long(const char *path, long v)
{
	char text[32];

	snprintf(text, sizeof(text), "%ld\n", v);
	return test_write_text(path, text);
}

/* Is a hugetlbfs mounted? Copies its mount point into dir. */
static bool hugetlbfs_mounted(char *dir, size_t len)
{
	FILE *f = fopen("/proc/mounts", "r");
	char src[128], mnt[256], type[64];
	bool found = false;

	if (!f)
		return false;
	while (!found && fscanf(f, "%127s %255s %63s %*[^\n]", src, mnt, type) == 3)
		if (strcmp(type, "hugetlbfs") == 0) {
			snprintf(dir, len, "%s", mnt);
			found = true;
		}
	fclose(f);
	return found;
}

/* Files in dir whose name starts with prefix (DPDK names hugepage files <prefix>map_N). */
static int count_prefixed(const char *dir, const char *prefix)
{
	char pattern[512];
	glob_t g;
	int n = 0;

	snprintf(pattern, sizeof(pattern), "%s/%s*", dir, prefix);
	if (glob(pattern, 0, NULL, &g) == 0) {
		n = (int)g.gl_pathc;
		globfree(&g);
	}
	return n;
}

static void test_hugepages(void)
{
	static const char nr_path[] = "/proc/sys/vm/nr_hugepages";
	char name[32], sock[96], port[256], cfg[96], dir[256] = "/dev/hugepages", prefix[64];
	long orig = read_long(nr_path), got;
	struct test_proc nf = {0};
	struct hv_channel *ch;
	cJSON *res;
	FILE *f;

	/* 256 MB of EAL memory in 2 MB pages, plus headroom, reserved for this test only */
	if (orig < 0 || write_long(nr_path, orig + 192) != 0) {
		nemo_test_skip("cannot reserve hugepages here (/proc/sys/vm/nr_hugepages)");
		return;
	}
	got = read_long(nr_path);
	if (got < orig + 192) {
		write_long(nr_path, orig);
		nemo_test_skip("the kernel could not reserve 192 hugepages");
		return;
	}
	hp_restore = orig; /* the suite's teardown undoes it too, should an assert stop us */
	if (!hugetlbfs_mounted(dir, sizeof(dir))) {
		mkdir(dir, 0755);
		CU_ASSERT_EQUAL(mount("nodev", dir, "hugetlbfs", 0, NULL), 0);
		snprintf(hp_umount, sizeof(hp_umount), "%s", dir);
	}
	names(name, sizeof(name), sock, sizeof(sock));
	memif_port(port, sizeof(port), sock);
	snprintf(cfg, sizeof(cfg), "/tmp/nemo-it-%d-%d.json", getpid(), run_id);
	/* no fatal assert from here on: the reservation and the mount must be undone */
	f = fopen(cfg, "w");
	CU_ASSERT_PTR_NOT_NULL(f);
	if (!f)
		goto restore;
	fprintf(f,
		"{\"name\":\"%s\",\"stats_interval_ms\":0,\"memory_mb\":256,\"hugepages\":true,"
		"\"ports\":[%s],\"lcores\":[{\"lcore\":1,\"cpu\":1,\"rx\":[{\"port\":0}],"
		"\"chain\":[\"fwd\"]}]}",
		name, port);
	fclose(f);
	CU_ASSERT_EQUAL(nf_start(&nf, cfg, "0"), 0);
	if (nf.pid <= 0)
		goto restore;
	ch = wait_channel(&nf, name);
	CU_ASSERT_PTR_NOT_NULL(ch);
	if (ch) {
		res = gen_run(sock, "200000", "1");
		CU_ASSERT_PTR_NOT_NULL(res);
		CU_ASSERT(res && jnum(res, "sent") > 150000 &&
			  jnum(res, "received") == jnum(res, "sent"));
		cJSON_Delete(res);
		hv_channel_close(ch);
	}
	CU_ASSERT_EQUAL(test_proc_stop(&nf, 10000), 0);
	CU_ASSERT(test_proc_output_has(&nf, "256 MB hugepages"));
	/* --huge-unlink: no hugepage file of this NF outlives it */
	snprintf(prefix, sizeof(prefix), "nemo-nf-%s", name);
	CU_ASSERT_EQUAL(count_prefixed(dir, prefix), 0);
restore:
	hugepages_restore();
}

NEMO_SUITE(nf_integration, suite_setup, suite_teardown,
	   {"memif: 1 Mpps for 2 s delivered exactly, accounting adds up",
	    test_memif_delivers_exactly},
	   {"zero traffic: the lcore sleeps, process under 5% CPU", test_zero_traffic_sleeps},
	   {"dpdk-telemetry.py answers /nemo/lcores and /nemo/module", test_telemetry_answers},
	   {"malformed packets from pcap: dropped by reason", test_malformed_pcap},
	   {"bad config and unknown module: exit 2 naming the key", test_bad_config_and_module},
	   {"port that cannot start: exit 1 naming the port", test_port_cannot_start},
	   {"stale memif socket removed; live one refused", test_stale_memif_socket},
	   {"hugepages: delivers, and leaves no hugepage file", test_hugepages})
