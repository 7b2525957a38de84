/* test_gateway_packet.c - nemod's packet trigger for real: nemo-nf's rings, sandboxes, nemo-gen. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nemo/base64.h"
#include "nemo/fn_ring.h"
#include "nemo/gateway.h"
#include "proc.h"
#include "test.h"

#define TOKEN "gwpacket-token-0123456789abcdef"
#define ACT   "/api/v1/namespaces/_/actions"

/* One nemo-nf and one nemod for the suite; the tests run in order on them. */
static struct {
	char dir[64];	  /* nemod's store, config and token */
	char token[96];	  /* dir/token */
	char prefix[96];  /* the NF's files: /tmp/nemo-gp-<pid>-1.* (test_cleanup_runs("gp")) */
	char nf_name[32]; /* its DPDK file prefix is nemo-nf-<name> */
	char fn_sock[128];
	char config[128];
	char so[512];
	uint16_t port;
	struct test_proc nf, nemod;
	bool nf_running, nemod_running;
	struct test_proc harvesting; /* a second nemod, harvesting the NF's core (one case) */
	bool harvesting_running;
} env;

static int http(const char *method, const char *path, const char *body, struct gw_http_response *r)
{
	int rc = gw_http_request("127.0.0.1", env.port, method, path, TOKEN, body,
				 body ? strlen(body) : 0, 30000, r);

	if (rc) {
		printf("\n  %s %s: %s\n", method, path, strerror(-rc));
		r->status = -1;
		r->body = strdup("");
	}
	return r->status;
}

/* Status of a request; the body must contain `needle` (when not NULL). */
static int expect(const char *method, const char *path, const char *body, int status,
		  const char *needle)
{
	struct gw_http_response r;
	int got = http(method, path, body, &r);

	if (got != status || (needle && !strstr(r.body, needle)))
		printf("\n  %s %s: got %d '%.400s', wanted %d with '%s'\n", method, path, got,
		       r.body, status, needle ? needle : "");
	CU_ASSERT_EQUAL(got, status);
	if (needle)
		CU_ASSERT_PTR_NOT_NULL(strstr(r.body, needle));
	gw_http_response_release(&r);
	return got;
}

/* PUT the C echo (pkt-echo.so) as `name` with `packet` as its trigger object. */
static int deploy(const char *name, const char *packet, int status, const char *needle)
{
	char path[256], *bytes, *b64, *body;
	size_t len;
	int got;

	bytes = test_read_file(env.so, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
	b64 = nemo_base64_encode((const uint8_t *)bytes, len);
	free(bytes);
	body = malloc(strlen(b64) + strlen(packet) + 256);
	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	sprintf(body, "{\"runtime\":\"c\",\"packet\":%s,\"code\":{\"base64\":\"%s\"}}", packet,
		b64);
	free(b64);
	snprintf(path, sizeof(path), ACT "/%s?overwrite=true", name);
	got = expect("PUT", path, body, status, needle);
	free(body);
	return got;
}

/* The function record's "packet" object (caller frees the whole record in *rec). */
static cJSON *packet_record(const char *name, cJSON **rec)
{
	struct gw_http_response r;
	char path[256];

	snprintf(path, sizeof(path), ACT "/%s", name);
	*rec = NULL;
	if (http("GET", path, NULL, &r) == 200)
		*rec = cJSON_Parse(r.body);
	gw_http_response_release(&r);
	return cJSON_GetObjectItemCaseSensitive(*rec, "packet");
}

/* Wait up to `ms` for the function's instances to serve, with `restarts` restarts behind. */
static bool wait_serving(const char *name, int restarts, int ms)
{
	for (int i = 0; i < ms / 20; i++) {
		cJSON *rec, *p = packet_record(name, &rec);
		const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "state"));
		bool ok = st && !strcmp(st, "serving") && test_json_num(p, "restarts") == restarts;

		if (ok || i == ms / 20 - 1) {
			if (!ok) {
				char *text = cJSON_Print(p);

				printf("\n  the function's packet record: %s\n",
				       text ? text : "none");
				free(text);
			}
			cJSON_Delete(rec);
			return ok;
		}
		cJSON_Delete(rec);
		test_msleep(20);
	}
	return false;
}

/* The value of the sample `series` (a whole "name{labels}") in /metrics, or -1. */
static double metric(const char *series)
{
	struct gw_http_response r;
	double v = -1;
	char *p;

	if (http("GET", "/metrics", NULL, &r) == 200 && (p = strstr(r.body, series)) &&
	    p[strlen(series)] == ' ')
		v = strtod(p + strlen(series) + 1, NULL);
	gw_http_response_release(&r);
	return v;
}

#define SERIES(family) family "{namespace=\"nemo\",function=\"echo\"}"

/* The pids of nemod's packet-mode sandboxes (runtime argv: ... packet <batch> <spin_us>). */
static int packet_instances(pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)) && n < max) {
		char path[64], buf[512];
		pid_t pid = (pid_t)atoi(de->d_name);
		int fd, ppid = 0;
		ssize_t len;
		bool packet = false;
		FILE *f;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f)) {
			char *p = strrchr(buf, ')');

			if (p && p[1] == ' ' && p[2] != 'Z')
				sscanf(p + 2, "%*c %d", &ppid);
		}
		fclose(f);
		if (ppid != env.nemod.pid)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1) {
			buf[len] = '\0';
			packet |= !strcmp(buf + i, "packet");
		}
		if (packet)
			out[n++] = pid;
	}
	if (d)
		closedir(d);
	return n;
}

/* Run nemo-gen to the end against the NF; its JSON summary (caller frees). */
static cJSON *gen_run(const char *rate, const char *duration)
{
	/*
	 * The instance runs in the harvest cgroup of the NF's CPU, which yields to everything
	 * else there: on a shared machine it may wait seconds for a CPU. The ring (65536 slots)
	 * holds a whole round, and the generator waits 6 s for the replies, so a late reply
	 * still counts; a lost one does not.
	 */
	static const char *const patience[] = {"--no-warm", "--drain-ms", "6000", NULL};
	char json[160], sock[160];
	struct test_proc g;

	snprintf(json, sizeof(json), "%s-gen.json", env.prefix);
	snprintf(sock, sizeof(sock), "%s.memif", env.prefix);
	CU_ASSERT_EQUAL_FATAL(test_gen_start(&g, json, sock, rate, duration, patience), 0);
	return test_gen_finish(&g, json);
}

/* nemo-gen's datagrams come back as replies; returns how many it sent. */
static double echo_round(const char *rate, const char *duration, const char *what)
{
	cJSON *res = gen_run(rate, duration);
	double sent, recv;

	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	sent = test_json_num(res, "sent");
	recv = test_json_num(res, "received");
	printf("\n  %s: sent %.0f, replies %.0f (%.2f %%), p50 %.1f us, p99 %.1f us", what, sent,
	       test_json_num(res, "replies"), sent > 0 ? 100.0 * recv / sent : 0,
	       test_json_num(res, "lat_p50_us"), test_json_num(res, "lat_p99_us"));
	CU_ASSERT(sent > 2000);
	CU_ASSERT(recv >= 0.95 * sent);
	/* a reply, from port 9000 back to the sender, carrying the request's stamp */
	CU_ASSERT_EQUAL(test_json_num(res, "replies"), recv);
	cJSON_Delete(res);
	return recv;
}

/* ---- setup --------------------------------------------------------------------------------- */

static int suite_setup(void)
{
	char text[4096], path[256], port[256], sock[160];
	int rc;
	const char *fnmod =
		"{\"module\":\"fn\",\"functions\":[{\"name\":\"echo\",\"slots\":65536,\"slot_size\":128},"
		"{\"name\":\"sensor\"}],"
		"\"rules\":[{\"proto\":\"udp\",\"dport\":9000,\"function\":\"echo\","
		"\"reply\":true},{\"proto\":\"udp\",\"dport\":5683,"
		"\"function\":\"sensor\"}]}";

	memset(&env, 0, sizeof(env));
	snprintf(env.so, sizeof(env.so), "%s/../functions/pkt-echo.so", nemo_test_bindir());
	snprintf(path, sizeof(path), "%s/nemo-nf", nemo_test_bindir());
	if (access(env.so, R_OK) || access(path, X_OK))
		return -1;
	/* the NF: one lcore (1, on CPU 1), memif port, fn (echo, sensor) then fwd */
	snprintf(env.nf_name, sizeof(env.nf_name), "gp%d-1", getpid());
	snprintf(env.prefix, sizeof(env.prefix), "/tmp/nemo-gp-%d-1", getpid());
	snprintf(env.fn_sock, sizeof(env.fn_sock), "%s.fn", env.prefix);
	snprintf(sock, sizeof(sock), "%s.memif", env.prefix);
	test_memif_port(port, sizeof(port), sock);
	snprintf(path, sizeof(path), "%s.json", env.prefix);
	snprintf(
		text, sizeof(text),
		"{\"name\":\"%s\",\"stats_interval_ms\":0,\"memory_mb\":256,"
		"\"fn_socket\":\"%s\",\"ports\":[%s],"
		"\"lcores\":[{\"lcore\":1,\"cpu\":1,\"rx\":[{\"port\":0}],\"chain\":[%s,\"fwd\"]}]}",
		env.nf_name, env.fn_sock, port, fnmod);
	if (test_write_text(path, text) || test_nf_start(&env.nf, path, "0"))
		return -1;
	env.nf_running = true;
	/* nemod: sandboxes on cores 0 and 1 (the NF lcore's CPU has its harvest cgroup) */
	snprintf(env.dir, sizeof(env.dir), "/var/tmp/nemo-gptest-XXXXXX");
	if (!mkdtemp(env.dir))
		return -1;
	chmod(env.dir, 0755);
	env.port = test_free_port();
	snprintf(env.config, sizeof(env.config), "%s/nemod.json", env.dir);
	snprintf(text, sizeof(text),
		 "{\"listen\": \"127.0.0.1:%u\", \"token_file\": \"%s/token\","
		 " \"store_dir\": \"%s/store\", \"code_roots\": [\"%s\"],"
		 " \"cores\": {\"sandbox\": [0, 1]}, \"async_workers\": 1,"
		 " \"drain_timeout_ms\": 3000, \"cgroup_root\": \"nemo-gptest-%d\"}\n",
		 (unsigned)env.port, env.dir, env.dir, env.dir, getpid());
	snprintf(env.token, sizeof(env.token), "%s/token", env.dir);
	if (test_write_text(env.token, TOKEN "\n") || test_write_text(env.config, text))
		return -1;
	/* the NF's lease server is up once its chains are built */
	for (int i = 0; i < 1500 && !strstr(test_proc_output(&env.nf), "leased on"); i++) {
		if (test_proc_wait(&env.nf, 0) != -ETIMEDOUT) {
			printf("\n  nemo-nf exited: %s\n", test_proc_output(&env.nf));
			return -1;
		}
		test_msleep(10);
	}
	if (access(env.fn_sock, F_OK))
		return -1;
	rc = test_nemod_start(&env.nemod, env.config, env.port, 10000);
	env.nemod_running = rc == 0 || rc == -ETIMEDOUT; /* started: the teardown stops it */
	return rc ? -1 : 0;
}

static int suite_teardown(void)
{
	char cmd[128];

	if (env.nemod_running)
		test_proc_stop(&env.nemod, 15000);
	if (env.harvesting_running)
		test_proc_stop(&env.harvesting, 15000);
	if (env.nf_running)
		test_proc_stop(&env.nf, 10000);
	test_cleanup_runs("gp");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", env.dir);
	if (!strncmp(env.dir, "/var/tmp/nemo-gptest-", 21) && system(cmd) != 0)
		printf("\n  could not remove %s\n", env.dir);
	return 0;
}

/* ---- tests --------------------------------------------------------------------------------- */

/* Deploy through the HTTP API: an instance serves the ring, replies go back, /metrics counts. */
static void test_deploy_serves(void)
{
	char trig[256];
	double recv, packets, batches, replies;
	pid_t pids[4];
	cJSON *rec, *p;

	snprintf(trig, sizeof(trig), "{\"nf\":\"%s\",\"lcore\":1,\"batch\":64}", env.fn_sock);
	CU_ASSERT_EQUAL_FATAL(deploy("echo", trig, 200, "echo"), 200);
	CU_ASSERT_FATAL(wait_serving("echo", 0, 10000));
	CU_ASSERT_EQUAL(packet_instances(pids, 4), 1);
	/* the record says what the trigger is */
	p = packet_record("echo", &rec);
	CU_ASSERT_EQUAL(test_json_num(p, "lcore"), 1);
	CU_ASSERT_EQUAL(test_json_num(p, "batch"), 64);
	CU_ASSERT_EQUAL(test_json_num(p, "serving"), 1);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(p, "handler")),
			       "handle_batch");
	cJSON_Delete(rec);
	recv = echo_round("20k", "2", "echo through nemod's sandbox");
	/* /metrics counts what the instance consumed and answered, by batch, not by call */
	packets = metric(SERIES("nemo_packet_packets_total"));
	batches = metric(SERIES("nemo_packet_batches_total"));
	replies = metric(SERIES("nemo_packet_replies_total"));
	printf("\n  /metrics: packets %.0f, batches %.0f, replies %.0f", packets, batches, replies);
	CU_ASSERT(packets >= recv);
	CU_ASSERT(replies >= recv);
	CU_ASSERT(batches >= 1 && batches <= packets);
	CU_ASSERT(batches >= packets / 64); /* at most 64 a batch */
	CU_ASSERT_EQUAL(metric(SERIES("nemo_packet_errors_total")), 0);
	CU_ASSERT_EQUAL(metric(SERIES("nemo_packet_instance_restarts_total")), 0);
	CU_ASSERT_EQUAL(metric(SERIES("nemo_packet_instances")), 1);
	/* no activation per packet or per batch */
	CU_ASSERT_EQUAL(metric("nemo_invocations_total{namespace=\"nemo\",function=\"echo\","
			       "status=\"success\"}"),
			0);
	/* the sample has a request handler too: the same code answers a call */
	expect("POST", "/function/echo", "hi", 200, "hi");
	CU_ASSERT_EQUAL(packet_instances(pids, 4), 1);
}

/*
 * A function whose code has the batch handler alone is fed by packets only: a call to it is
 * refused before anything is accepted, naming why, on every route.
 */
static void test_packets_only_takes_no_calls(void)
{
	char trig[256], *bytes, *b64, *body, so[512];
	size_t len;
	pid_t pids[4];

	snprintf(so, sizeof(so), "%s/../functions/test-pkt-crash.so", nemo_test_bindir());
	bytes = test_read_file(so, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
	b64 = nemo_base64_encode((const uint8_t *)bytes, len);
	free(bytes);
	body = malloc(strlen(b64) + 512);
	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	snprintf(trig, sizeof(trig), "{\"nf\":\"%s\",\"function\":\"sensor\",\"lcore\":1}",
		 env.fn_sock);
	sprintf(body, "{\"runtime\":\"c\",\"packet\":%s,\"code\":{\"base64\":\"%s\"}}", trig, b64);
	free(b64);
	expect("PUT", ACT "/batchonly?overwrite=true", body, 200, "batchonly");
	free(body);
	expect("POST", "/function/batchonly", "hi", 400, "takes packets only");
	expect("POST", ACT "/batchonly?blocking=true", "{}", 400,
	       "has the batch handler 'handle_batch' and no request handler 'handle'");
	expect("POST", ACT "/batchonly", "{}", 400, "takes packets only");
	expect("POST", "/async-function/batchonly", "hi", 400, "takes packets only");
	/* nothing was accepted: no activation of it */
	CU_ASSERT(metric("nemo_invocations_total{namespace=\"nemo\",function=\"batchonly\","
			 "status=\"success\"}") <= 0);
	expect("DELETE", ACT "/batchonly", NULL, 200, NULL);
	for (int i = 0; i < 100 && packet_instances(pids, 4) != 1; i++)
		test_msleep(20);
	CU_ASSERT_EQUAL(packet_instances(pids, 4), 1);
}

/* /metrics with the packet families still passes promtool. */
static void test_promtool(void)
{
	struct gw_http_response r;
	char file[128], cmd[300];
	int rc;

	if (access("/usr/bin/promtool", X_OK)) {
		nemo_test_skip("needs promtool (Debian's prometheus package): run make deps");
		return;
	}
	CU_ASSERT_EQUAL_FATAL(http("GET", "/metrics", NULL, &r), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "# TYPE nemo_packet_packets_total counter"));
	snprintf(file, sizeof(file), "%s/metrics.txt", env.dir);
	CU_ASSERT_EQUAL_FATAL(test_write_text(file, r.body), 0);
	gw_http_response_release(&r);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", file);
	rc = system(cmd);
	CU_ASSERT_EQUAL(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, 0);
}

/* kill -9 the instance: it is replaced, the NF reset the ring, and the replacement serves. */
static void test_killed_instance_replaced(void)
{
	pid_t pids[4], now[4];
	double before = metric(SERIES("nemo_packet_packets_total"));

	CU_ASSERT_EQUAL_FATAL(packet_instances(pids, 4), 1);
	CU_ASSERT_EQUAL_FATAL(kill(pids[0], SIGKILL), 0);
	CU_ASSERT_FATAL(wait_serving("echo", 1, 10000));
	CU_ASSERT_EQUAL(packet_instances(now, 4), 1);
	CU_ASSERT_NOT_EQUAL(now[0], pids[0]);
	CU_ASSERT(test_proc_output_has(&env.nemod, "ended: "));
	CU_ASSERT_EQUAL(metric(SERIES("nemo_packet_instance_restarts_total")), 1);
	echo_round("10k", "1", "after a kill -9, the replacement");
	/* the dead instance's figures stay counted */
	CU_ASSERT(metric(SERIES("nemo_packet_packets_total")) > before);
}

/* A redeploy replaces the instance with one of the new code; the figures go on. */
static void test_redeploy_replaces(void)
{
	char trig[256];
	pid_t pids[4], now[4];
	double before = metric(SERIES("nemo_packet_packets_total"));

	CU_ASSERT_EQUAL_FATAL(packet_instances(pids, 4), 1);
	snprintf(trig, sizeof(trig), "{\"nf\":\"%s\",\"lcore\":\"any\",\"batch\":32}", env.fn_sock);
	CU_ASSERT_EQUAL_FATAL(deploy("echo", trig, 200, "echo"), 200);
	CU_ASSERT_FATAL(wait_serving("echo", 1, 10000));
	CU_ASSERT_EQUAL(packet_instances(now, 4), 1);
	CU_ASSERT_NOT_EQUAL(now[0], pids[0]);
	CU_ASSERT(metric(SERIES("nemo_packet_packets_total")) >= before);
	echo_round("10k", "1", "after a redeploy");
}

/* Undeploy: the instance is gone and the NF's ring is free again when DELETE answers. */
static void test_undeploy_frees_lease(void)
{
	char rings[256], err[256];
	pid_t pids[4];

	expect("DELETE", ACT "/echo", NULL, 200, NULL);
	CU_ASSERT_EQUAL(packet_instances(pids, 4), 0);
	/* the NF resets the ring at its next iteration once the lease's socket closed */
	for (int i = 0; i < 100; i++) {
		CU_ASSERT_EQUAL_FATAL(
			fn_lease_describe(env.fn_sock, rings, sizeof(rings), err, sizeof(err)), 0);
		if (!strchr(rings, '*'))
			break;
		test_msleep(10);
	}
	printf("\n  the NF's rings after the delete: %s", rings);
	CU_ASSERT_PTR_NOT_NULL(strstr(rings, "echo@1"));
	CU_ASSERT_PTR_NULL(strchr(rings, '*'));
	CU_ASSERT_EQUAL(metric(SERIES("nemo_packet_packets_total")), -1);
}

/* python's batch handler, deployed the same way, answers the same datagrams. */
static void test_python_handler(void)
{
	const char *py = "def handle_batch(packets):\n"
			 "    return [bytes(p) for p in packets]\n";
	char *b64 = nemo_base64_encode((const uint8_t *)py, strlen(py)), *body;
	char rings[256], err[256];
	pid_t pids[4];
	double recv;

	CU_ASSERT_PTR_NOT_NULL_FATAL(b64);
	body = malloc(strlen(b64) + 512);
	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	sprintf(body,
		"{\"runtime\":\"python\",\"packet\":{\"nf\":\"%s\",\"lcore\":1},"
		"\"code\":{\"base64\":\"%s\"}}",
		env.fn_sock, b64);
	free(b64);
	expect("PUT", ACT "/echo?overwrite=true", body, 200, "echo");
	free(body);
	CU_ASSERT_FATAL(wait_serving("echo", 0, 15000));
	CU_ASSERT_EQUAL(packet_instances(pids, 4), 1);
	recv = echo_round("5k", "1", "python handle_batch");
	CU_ASSERT(metric(SERIES("nemo_packet_packets_total")) >= recv);
	CU_ASSERT_EQUAL(metric(SERIES("nemo_packet_errors_total")), 0);
	expect("DELETE", ACT "/echo", NULL, 200, NULL);
	CU_ASSERT_EQUAL(packet_instances(pids, 4), 0);
	for (int i = 0; i < 100; i++) {
		CU_ASSERT_EQUAL_FATAL(
			fn_lease_describe(env.fn_sock, rings, sizeof(rings), err, sizeof(err)), 0);
		if (!strchr(rings, '*'))
			break;
		test_msleep(10);
	}
	CU_ASSERT_PTR_NULL(strchr(rings, '*'));
}

/* Bad triggers: each a 400 naming what is wrong; nothing deployed. */
static void test_bad_triggers(void)
{
	char trig[256];

	snprintf(trig, sizeof(trig), "{\"nf\":\"%s\",\"function\":\"ehco\"}", env.fn_sock);
	deploy("typo", trig, 400, "no ring for function 'ehco' (its rings: echo@1 sensor@1)");
	snprintf(trig, sizeof(trig), "{\"nf\":\"%s\",\"lcore\":0}", env.fn_sock);
	deploy("echo", trig, 400, "no ring for function 'echo' on lcore 0");
	deploy("echo", "{\"nf\":\"gp-no-such-nf\"}", 400,
	       "the NF 'gp-no-such-nf' does not answer at /run/nemo/gp-no-such-nf.fn.sock");
	snprintf(trig, sizeof(trig), "{\"nf\":\"%s\",\"lcore\":\"first\"}", env.fn_sock);
	deploy("echo", trig, 400, "packet.lcore");
	snprintf(trig, sizeof(trig), "{\"nf\":\"%s\",\"batch\":1000}", env.fn_sock);
	deploy("echo", trig, 400, "packet.batch");
	snprintf(trig, sizeof(trig), "{\"nf\":\"%s\",\"match\":\"udp\"}", env.fn_sock);
	deploy("echo", trig, 400, "match");
	snprintf(trig, sizeof(trig), "{\"nf\":\"%s\",\"lcore\":1,\"instances\":2}", env.fn_sock);
	deploy("echo", trig, 400, "packet.instances");
	deploy("echo", "{\"lcore\":1}", 400, "packet.nf");
	expect("GET", ACT "/typo", NULL, 404, NULL);
	expect("GET", ACT "/echo", NULL, 404, NULL);
}

/* nemod's drain (SIGTERM) stops the instances: it exits 0 and the NF's ring is free again. */
static void test_drain_frees_lease(void)
{
	char trig[256], rings[256], err[256];

	snprintf(trig, sizeof(trig), "{\"nf\":\"%s\",\"lcore\":1}", env.fn_sock);
	CU_ASSERT_EQUAL_FATAL(deploy("echo", trig, 200, "echo"), 200);
	CU_ASSERT_FATAL(wait_serving("echo", 0, 10000));
	CU_ASSERT_EQUAL(fn_lease_describe(env.fn_sock, rings, sizeof(rings), err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(rings, "echo@1*"));
	CU_ASSERT_EQUAL(test_proc_stop(&env.nemod, 15000), 0);
	env.nemod_running = false;
	CU_ASSERT(test_proc_output_has(&env.nemod,
				       "packet function=echo instance=0 lcore=1 stopped"));
	for (int i = 0; i < 100; i++) {
		CU_ASSERT_EQUAL_FATAL(
			fn_lease_describe(env.fn_sock, rings, sizeof(rings), err, sizeof(err)), 0);
		if (!strchr(rings, '*'))
			break;
		test_msleep(10);
	}
	printf("\n  the NF's rings after nemod stopped: %s", rings);
	CU_ASSERT_PTR_NULL(strchr(rings, '*'));
}

/*
 * nemod restarted: the function comes back from the store and serves its ring again. The NF
 * stopped: the instance ends, and the record says it waits for the NF.
 */
static void test_restart_and_nf_gone(void)
{
	int rc = test_nemod_start(&env.nemod, env.config, env.port, 10000);
	cJSON *rec, *p;
	const char *st = NULL;

	env.nemod_running = rc == 0 || rc == -ETIMEDOUT;
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_FATAL(wait_serving("echo", 0, 10000));
	echo_round("5k", "1", "after nemod restarted");
	CU_ASSERT_EQUAL(test_proc_stop(&env.nf, 10000), 0);
	env.nf_running = false;
	for (int i = 0; i < 250; i++) {
		p = packet_record("echo", &rec);
		st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "state"));
		if (st && !strncmp(st, "waiting for the NF: ", 20))
			break;
		cJSON_Delete(rec);
		rec = NULL;
		test_msleep(20);
	}
	printf("\n  with the NF stopped: %s", st ? st : "(no state)");
	CU_ASSERT(st && !strncmp(st, "waiting for the NF: ", 20));
	CU_ASSERT_EQUAL(test_json_num(p, "serving"), 0);
	CU_ASSERT_EQUAL(test_json_num(p, "restarts"), 1);
	cJSON_Delete(rec);
	CU_ASSERT(test_proc_output_has(&env.nemod, "lcore=1 ended: "));
}

/* The sleep floor asked of cpu 1's NF lcore, from a nemod's /api/v1/cores (-1: none known). */
static double floor_us(uint16_t port)
{
	struct gw_http_response r;
	double us = -1;
	cJSON *root, *k;

	if (gw_http_request("127.0.0.1", port, "GET", "/api/v1/cores", TOKEN, NULL, 0, 5000, &r))
		return -1;
	root = cJSON_Parse(r.body);
	gw_http_response_release(&r);
	cJSON_ArrayForEach (k, cJSON_GetObjectItemCaseSensitive(root, "cores"))
		if (test_json_num(k, "cpu") == 1)
			us = test_json_num(k, "sleep_floor_us");
	cJSON_Delete(root);
	return us;
}

/*
 * With harvesting on, a packet instance parked on the NF's core keeps the NF lcore's sleep
 * floor asked for as long as it lives, though no call runs there and it uses no CPU while no
 * packet comes; the floor is withdrawn once it is gone. Without the floor the lcore's short
 * sleeps leave the instance, in the core's harvest cgroup, next to no CPU when packets do come.
 * A second nemod, harvesting cpu 1 from the NF's channel, serves the NF's other ring.
 */
static void test_harvesting_keeps_floor(void)
{
	char dir[128], cfg[192], text[1024], out[2048];
	uint16_t port = test_free_port();
	int low = 0, serving = 0, gone_after = -1;
	double min_us = 1e9;
	struct gw_http_response r;

	snprintf(dir, sizeof(dir), "%s/harvesting", env.dir);
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
	snprintf(cfg, sizeof(cfg), "%s/nemod.json", dir);
	snprintf(text, sizeof(text),
		 "{\"listen\": \"127.0.0.1:%u\", \"token_file\": \"%s/token\","
		 " \"store_dir\": \"%s/store\", \"code_roots\": [\"%s\"],"
		 " \"cores\": {\"housekeeping\": [0], \"sandbox\": [1]},"
		 " \"drain_timeout_ms\": 3000, \"cgroup_root\": \"nemo-gptest-%d-h\","
		 " \"harvest\": {\"enabled\": true, \"channels\": [\"%s\"], \"period_ms\": 5}}\n",
		 (unsigned)port, env.dir, dir, env.dir, getpid(), env.nf_name);
	CU_ASSERT_EQUAL_FATAL(test_write_text(cfg, text), 0);
	CU_ASSERT_EQUAL_FATAL(test_nemod_start(&env.harvesting, cfg, port, 10000), 0);
	env.harvesting_running = true;
	/* no sandbox on cpu 1 yet: nothing asks the NF for longer sleeps */
	test_msleep(300);
	CU_ASSERT_EQUAL(floor_us(port), 0);
	/* the C echo on the NF's "sensor" ring, lcore 1, deployed as a user would, by nemoctl */
	CU_ASSERT_EQUAL(test_run_nemoctl(port, env.token, out, sizeof(out),
					 "deploy sensor --code %s --packet lcore=1", env.so),
			1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--packet: nf=NAME is needed"));
	CU_ASSERT_EQUAL(test_run_nemoctl(port, env.token, out, sizeof(out),
					 "deploy sensor --code %s --packet nf=%s,lcore", env.so,
					 env.fn_sock),
			1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--packet: 'lcore' is not KEY=VALUE"));
	if (test_run_nemoctl(port, env.token, out, sizeof(out),
			     "deploy sensor --code %s --packet nf=%s,function=sensor,lcore=1",
			     env.so, env.fn_sock))
		printf("\n  nemoctl deploy: %s", out);
	/* its instance starts in the core's harvest cgroup, which yields to all else there */
	for (int i = 0; i < 750 && !serving; i++) {
		test_msleep(20);
		serving = strstr(test_proc_output(&env.harvesting),
				 "ring=sensor@1 core=1 serving") != NULL;
	}
	CU_ASSERT_FATAL(serving);
	/* parked, idle, no call anywhere: the floor holds, window after window, for 1.5 s */
	test_msleep(300);
	for (int i = 0; i < 30; i++) {
		double us = floor_us(port);

		min_us = us < min_us ? us : min_us;
		low += us <= 0;
		test_msleep(50);
	}
	printf("\n  with a parked packet instance on cpu 1: floor at least %.0f us in 30 reads over "
	       "1.5 s (%d without)",
	       min_us, low);
	CU_ASSERT_EQUAL(low, 0);
	/* the instance gone, the floor is withdrawn */
	CU_ASSERT_EQUAL(gw_http_request("127.0.0.1", port, "DELETE", ACT "/sensor", TOKEN, NULL, 0,
					30000, &r),
			0);
	CU_ASSERT_EQUAL(r.status, 200);
	gw_http_response_release(&r);
	for (int i = 0; i < 100 && gone_after < 0; i++) {
		if (floor_us(port) == 0)
			gone_after = i * 20;
		test_msleep(20);
	}
	printf("; withdrawn %d ms after the delete", gone_after);
	CU_ASSERT(gone_after >= 0);
	CU_ASSERT_EQUAL(test_proc_stop(&env.harvesting, 15000), 0);
	env.harvesting_running = false;
}

NEMO_SUITE(gateway_packet, suite_setup, suite_teardown,
	   {"deploy over HTTP: replies come back, /metrics counts", test_deploy_serves},
	   {"a function with the batch handler alone takes no calls",
	    test_packets_only_takes_no_calls},
	   {"promtool accepts /metrics", test_promtool},
	   {"kill -9 the instance: a replacement serves", test_killed_instance_replaced},
	   {"redeploy replaces the instance", test_redeploy_replaces},
	   {"undeploy: instance gone, lease freed", test_undeploy_frees_lease},
	   {"python's batch handler", test_python_handler},
	   {"harvesting: a parked packet instance keeps its core's sleep floor",
	    test_harvesting_keeps_floor},
	   {"bad triggers are 400s naming the key", test_bad_triggers},
	   {"nemod's drain stops the instances", test_drain_frees_lease},
	   {"restarted nemod serves again; a stopped NF is waited for", test_restart_and_nf_gone});
