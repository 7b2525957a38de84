/*
 * test_cluster_net.c - three nemods and a three-member etcd cluster, each in its own network
 * namespace (tests/cluster/cluster.sh): deploy on one node and invoke on another, offload from
 * a node without spare, kill -9 of a node under async load, a lost etcd member, a node cut off
 * from etcd, and an etcd that is down at start.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nemo/base64.h"
#include "nemo/clock.h"
#include "nemo/gateway.h"
#include "proc.h"
#include "test.h"

#define ECHO_PY                                                                         \
	"{\"exec\":{\"kind\":\"python:3\",\"code\":\"import time\\ndef main(a):\\n    " \
	"time.sleep(a.get('sleep', 0))\\n    return a\\n\"},"                           \
	"\"limits\":{\"concurrency\":4,\"timeout\":10000}}"

static char tag[32];
static bool up_ok;
static char work[96];

/* Run a shell command; its exit code. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static const char *harness(void)
{
	static char path[512];

	snprintf(path, sizeof(path), "NEMO_BIN=%s %s/tests/cluster/cluster.sh", nemo_test_bindir(),
		 nemo_test_srcdir());
	return path;
}

struct reply {
	int status;
	char *body;
	char node[32];	/* X-Nemo-Node */
	double seconds; /* curl's time_total: the request alone, without the harness around it */
};

static void reply_release(struct reply *r)
{
	free(r->body);
	r->body = NULL;
}

/* One call to nemod `node` (1..3) inside its namespace. Returns the HTTP status (0: none). */
/* One call to nemod `node` (1..3), with one more header ("Name: value", or NULL). */
static int api_h(int node, const char *method, const char *path, const char *body,
		 const char *header, struct reply *r)
{
	char bodyf[160], outf[160], hdrf[160], cmd[2048], code[64] = "";
	FILE *p;
	char *hdrs;

	memset(r, 0, sizeof(*r));
	snprintf(bodyf, sizeof(bodyf), "%s/body-%d", work, node);
	snprintf(outf, sizeof(outf), "%s/out-%d", work, node);
	snprintf(hdrf, sizeof(hdrf), "%s/hdr-%d", work, node);
	test_write_text(bodyf, body ? body : "");
	snprintf(cmd, sizeof(cmd),
		 "%s api %s %d %s '%s' %s%s -o %s -D %s -w '%%{http_code} %%{time_total}' %s%s%s "
		 "2>/dev/null",
		 harness(), tag, node, method, path, body ? "--data-binary @" : "",
		 body ? bodyf : "", outf, hdrf, header ? "-H '" : "", header ? header : "",
		 header ? "'" : "");
	p = popen(cmd, "r");
	if (!p)
		return 0;
	if (!fgets(code, sizeof(code), p))
		code[0] = '\0';
	pclose(p);
	if (sscanf(code, "%d %lf", &r->status, &r->seconds) < 1)
		r->status = 0;
	r->body = test_read_file(outf, NULL);
	hdrs = test_read_file(hdrf, NULL);
	if (hdrs) {
		char *h = strcasestr(hdrs, "X-Nemo-Node: ");

		if (h)
			sscanf(h + 13, "%31[^\r\n]", r->node);
		free(hdrs);
	}
	return r->status;
}

static int api(int node, const char *method, const char *path, const char *body, struct reply *r)
{
	return api_h(node, method, path, body, NULL, r);
}

/* The pid of a process of the run (etcd "e1".., nemod "1"..) from the harness's pids file. */
static pid_t pid_of(const char *name)
{
	char path[128], line[128];
	FILE *f;
	pid_t pid = 0;

	snprintf(path, sizeof(path), "/tmp/nemo-clnet-%s/pids", tag);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		int p;
		char n[32];

		if (sscanf(line, "%d %31s", &p, n) == 2 && !strcmp(n, name))
			pid = p;
	}
	if (f)
		fclose(f);
	return pid;
}

static bool can_run(void)
{
	if (geteuid() != 0) {
		nemo_test_skip("needs root (network namespaces, cgroups)");
		return false;
	}
	if (access("/usr/bin/etcd", X_OK) || run("command -v nsenter >/dev/null") != 0) {
		nemo_test_skip("needs /usr/bin/etcd (Debian etcd-server) and nsenter");
		return false;
	}
	return true;
}

static int cluster_up(const char *extra_env)
{
	snprintf(tag, sizeof(tag), "t%d", (int)getpid() % 100000);
	snprintf(work, sizeof(work), "/tmp/nemo-clnet-work-%d", (int)getpid());
	run("mkdir -p %s", work);
	run("%s down %s >/dev/null 2>&1", harness(), tag);
	up_ok = run("%s %s up 3 %s >%s/up.log 2>&1", extra_env, harness(), tag, work) == 0;
	if (!up_ok)
		run("cat %s/up.log", work);
	return 0;
}

static int cluster_down(void)
{
	run("%s down %s >/dev/null 2>&1", harness(), tag);
	run("rm -rf %s", work);
	up_ok = false;
	return 0;
}

static bool deploy_echo(int node)
{
	struct reply r;
	int st = api(node, "PUT", "/api/v1/namespaces/_/actions/echo", ECHO_PY, &r);

	if (st != 200)
		printf("deploy on node %d: %d %s\n", node, st, r.body ? r.body : "");
	reply_release(&r);
	return st == 200;
}

/* ---- deploy on A, invoke on C; B without spare sends its calls to A or C ------------------------ */

static int net_setup(void)
{
	bool broker = !access("/usr/sbin/mosquitto", X_OK);
	char env[1024];

	if (geteuid() != 0 || access("/usr/bin/etcd", X_OK))
		return 0;
	/*
	 * b harvests NF cores that do not exist: it has no spare at all; it alone takes MQTT
	 * messages, from a broker in a namespace of its own. a keeps no code in etcd
	 * (inline_code_max 0): the others fetch it from a, checked against its sha256.
	 */
	snprintf(env, sizeof(env),
		 "CLUSTER_BROKER=%d CLUSTER_EXTRA_b='\"harvest\": {\"enabled\": true, "
		 "\"channels\": [\"nemo-cl-none\"]}, %s' CLUSTER_KEYS_a='\"inline_code_max\": 0,'",
		 broker,
		 broker ? "\"mqtt\": {\"enabled\": true, \"host\": \"10.77.0.30\", "
			  "\"reconnect_min_s\": 1, \"reconnect_max_s\": 2},"
			: "");
	return cluster_up(env);
}

static void test_net_deploy_a_invoke_c(void)
{
	struct reply r;
	uint64_t t0;
	int st = 0;

	if (!can_run())
		return;
	CU_ASSERT_TRUE_FATAL(up_ok);
	CU_ASSERT_TRUE_FATAL(deploy_echo(1));
	t0 = nemo_now_ms();
	while (nemo_now_ms() - t0 < 3000) {
		st = api(3, "GET", "/api/v1/namespaces/_/actions/echo", NULL, &r);
		reply_release(&r);
		if (st == 200)
			break;
		test_msleep(10);
	}
	printf("\n  deployed on a, served by c after %llu ms\n",
	       (unsigned long long)(nemo_now_ms() - t0));
	CU_ASSERT_EQUAL(st, 200);
	CU_ASSERT(nemo_now_ms() - t0 < 1000);
	st = api(3, "POST", "/api/v1/namespaces/_/actions/echo?blocking=true&result=true",
		 "{\"hello\":\"c\"}", &r);
	CU_ASSERT_EQUAL(st, 200);
	CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "\"hello\":\"c\"") : NULL);
	reply_release(&r);
}

static void test_net_no_spare_offloads(void)
{
	struct reply r;
	int ok = 0, on_a = 0, on_c = 0;
	char id[64] = "";

	if (!can_run())
		return;
	CU_ASSERT_TRUE_FATAL(up_ok);
	/* b must know echo (from the registry) and see its peers' records */
	for (uint64_t t0 = nemo_now_ms(); nemo_now_ms() - t0 < 3000; test_msleep(20)) {
		int st = api(2, "GET", "/api/v1/namespaces/_/actions/echo", NULL, &r);

		reply_release(&r);
		if (st == 200)
			break;
	}
	/* and its peers' records list it (published within publish_ms of the deploy) */
	for (uint64_t t0 = nemo_now_ms(); nemo_now_ms() - t0 < 3000; test_msleep(20)) {
		int st = api(2, "GET", "/api/v1/cluster/nodes", NULL, &r);
		cJSON *j = st == 200 && r.body ? cJSON_Parse(r.body) : NULL;
		const cJSON *n;
		int with = 0;

		cJSON_ArrayForEach (n, cJSON_GetObjectItemCaseSensitive(j, "nodes")) {
			const cJSON *f;

			cJSON_ArrayForEach (f, cJSON_GetObjectItemCaseSensitive(n, "functions")) {
				with += cJSON_IsString(f) && !strcmp(f->valuestring, "echo");
			}
		}
		cJSON_Delete(j);
		reply_release(&r);
		if (with == 3)
			break;
	}
	for (int i = 0; i < 20; i++) {
		int st = api(2, "POST",
			     "/api/v1/namespaces/_/actions/echo?blocking=true&result=true",
			     "{\"n\":1}", &r);

		ok += st == 200 && r.body && strstr(r.body, "\"n\":1");
		on_a += !strcmp(r.node, "a");
		on_c += !strcmp(r.node, "c");
		reply_release(&r);
	}
	printf("\n  20 calls to b (no spare): %d answered, %d ran on a, %d on c\n", ok, on_a, on_c);
	CU_ASSERT_EQUAL(ok, 20);
	CU_ASSERT_EQUAL(on_a + on_c, 20);
	/* an async call too: the caller polls its id on b and finds where it ran */
	CU_ASSERT_EQUAL(api(2, "POST", "/api/v1/namespaces/_/actions/echo", "{\"n\":2}", &r), 202);
	if (r.body) {
		cJSON *j = cJSON_Parse(r.body);
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "activationId");

		if (cJSON_IsString(a))
			snprintf(id, sizeof(id), "%s", a->valuestring);
		cJSON_Delete(j);
	}
	reply_release(&r);
	CU_ASSERT_EQUAL_FATAL(strlen(id), 32);
	for (uint64_t t0 = nemo_now_ms(); nemo_now_ms() - t0 < 3000; test_msleep(20)) {
		char path[128];
		int st;

		snprintf(path, sizeof(path), "/api/v1/namespaces/_/activations/%s", id);
		st = api(2, "GET", path, NULL, &r);
		if (st == 200 && r.body && strstr(r.body, "\"success\"")) {
			CU_ASSERT(strstr(r.body, "\"node\":\"a\"") ||
				  strstr(r.body, "\"node\":\"c\""));
			reply_release(&r);
			return;
		}
		reply_release(&r);
	}
	CU_FAIL("the forwarded async activation was not found from b");
}

/* QoS on b (no spare): latency goes at once, batch waits out its deadline (5 s) first */
static void test_net_qos_classes(void)
{
	struct reply r;
	uint64_t t0, t_lat, t_batch;
	int st;

	if (!can_run())
		return;
	CU_ASSERT_TRUE_FATAL(up_ok);
	t0 = nemo_now_ms();
	st = api(2, "POST",
		 "/api/v1/namespaces/_/actions/echo?blocking=true&result=true&qos=latency",
		 "{\"q\":1}", &r);
	t_lat = nemo_now_ms() - t0;
	CU_ASSERT_EQUAL(st, 200);
	CU_ASSERT(!strcmp(r.node, "a") || !strcmp(r.node, "c"));
	reply_release(&r);
	t0 = nemo_now_ms();
	st = api(2, "POST", "/api/v1/namespaces/_/actions/echo?blocking=true&result=true&qos=batch",
		 "{\"q\":2}", &r);
	t_batch = nemo_now_ms() - t0;
	printf("\n  on b without spare: latency call answered by %s in %llu ms; batch call by %s "
	       "in %llu ms (batch_deadline_ms 5000)\n",
	       "a peer", (unsigned long long)t_lat, r.node[0] ? r.node : "b",
	       (unsigned long long)t_batch);
	CU_ASSERT_EQUAL(st, 200);
	CU_ASSERT(!strcmp(r.node, "a") || !strcmp(r.node, "c"));
	CU_ASSERT(t_batch >= 5000 && t_batch < 8000);
	CU_ASSERT(t_lat < 2000);
	reply_release(&r);
	CU_ASSERT_EQUAL(api(2, "POST", "/api/v1/namespaces/_/actions/echo?qos=fast", "{}", &r),
			400);
	CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "qos") : NULL);
	reply_release(&r);
}

/* The value of one sample ("name{labels} value" or "name value") in Prometheus text; -1: none. */
static double sample(const char *text, const char *series)
{
	char want[256];
	const char *at;

	snprintf(want, sizeof(want), "\n%s ", series);
	at = text ? strstr(text, want) : NULL;
	return at ? strtod(at + strlen(want), NULL) : -1;
}

/* /metrics of each node: the cluster's families, as promtool accepts them */
static void test_net_metrics(void)
{
	struct reply r[3];
	char file[160], cmd[400];
	double out_b, in_ac;

	if (!can_run())
		return;
	if (access("/usr/bin/promtool", X_OK)) {
		nemo_test_skip("needs promtool (Debian's prometheus package): run make deps");
		return;
	}
	CU_ASSERT_TRUE_FATAL(up_ok);
	for (int k = 0; k < 3; k++)
		CU_ASSERT_EQUAL(api(k + 1, "GET", "/metrics", NULL, &r[k]), 200);
	/* b sent its calls on (it has no spare), a and c took them */
	out_b = sample(r[1].body,
		       "nemo_cluster_offloads_total{direction=\"out\",reason=\"latency_deadline\"}") +
		sample(r[1].body,
		       "nemo_cluster_offloads_total{direction=\"out\",reason=\"latency_sooner\"}") +
		sample(r[1].body,
		       "nemo_cluster_offloads_total{direction=\"out\",reason=\"batch_peer\"}");
	in_ac = 0;
	for (int k = 0; k < 3; k += 2)
		in_ac +=
			sample(r[k].body, "nemo_cluster_offloads_total{direction=\"in\",reason="
					  "\"latency_deadline\"}") +
			sample(r[k].body, "nemo_cluster_offloads_total{direction=\"in\",reason="
					  "\"latency_sooner\"}") +
			sample(r[k].body,
			       "nemo_cluster_offloads_total{direction=\"in\",reason=\"batch_peer\"}");
	printf("\n  metrics: b sent %.0f calls to peers, a and c took %.0f; nodes alive %.0f; a made "
	       "%.0f etcd writes, %.0f reads, %.0f renewals\n",
	       out_b, in_ac, sample(r[0].body, "nemo_cluster_nodes_alive"),
	       sample(r[0].body, "nemo_cluster_etcd_requests_total{kind=\"write\"}"),
	       sample(r[0].body, "nemo_cluster_etcd_requests_total{kind=\"read\"}"),
	       sample(r[0].body, "nemo_cluster_etcd_requests_total{kind=\"renew\"}"));
	CU_ASSERT_EQUAL(sample(r[0].body, "nemo_cluster_nodes_alive"), 3);
	CU_ASSERT_EQUAL(sample(r[0].body, "nemo_cluster_healthy"), 1);
	CU_ASSERT_EQUAL(out_b, 23); /* 20 blocking and 1 async call, and the QoS test's 2 */
	CU_ASSERT_EQUAL(out_b, in_ac);
	CU_ASSERT(sample(r[0].body, "nemo_cluster_etcd_requests_total{kind=\"write\"}") > 0);
	CU_ASSERT(sample(r[0].body, "nemo_cluster_etcd_request_duration_seconds_count") > 0);
	CU_ASSERT_EQUAL(sample(r[0].body, "nemo_cluster_etcd_errors_total"), 0);
	for (int k = 0; k < 3; k++) {
		int rc;

		snprintf(file, sizeof(file), "%s/metrics-%d", work, k);
		test_write_text(file, r[k].body ? r[k].body : "");
		snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", file);
		rc = run("%s", cmd);
		if (rc)
			printf("  promtool on node %d's /metrics: exit %d\n", k + 1, rc);
		CU_ASSERT_EQUAL(rc, 0);
		reply_release(&r[k]);
	}
}

/* ---- OpenFaaS and MQTT calls on b (no spare) run on a peer; a zip deployed on a served by c ---- */

/* A header of the last api_h() answer of `node` into out ("" when absent). */
static void last_header(int node, const char *name, char *out, size_t cap)
{
	char hdrf[160], want[80], *h, *at;

	out[0] = '\0';
	snprintf(hdrf, sizeof(hdrf), "%s/hdr-%d", work, node);
	snprintf(want, sizeof(want), "\n%s: ", name);
	h = test_read_file(hdrf, NULL);
	at = h ? strcasestr(h, want) : NULL;
	if (at)
		snprintf(out, cap, "%.*s", (int)strcspn(at + strlen(want), "\r\n"),
			 at + strlen(want));
	free(h);
}

/* Wait until node `node` serves fn and every node's record lists it. True when they do. */
static bool wait_listed(int node, const char *fn, int ms)
{
	struct reply r;
	char path[160];
	int st = 0, with = 0;

	snprintf(path, sizeof(path), "/api/v1/namespaces/_/actions/%s", fn);
	for (uint64_t t0 = nemo_now_ms(); nemo_now_ms() - t0 < (uint64_t)ms; test_msleep(20)) {
		st = api(node, "GET", path, NULL, &r);
		reply_release(&r);
		if (st == 200)
			break;
	}
	for (uint64_t t0 = nemo_now_ms(); st == 200 && nemo_now_ms() - t0 < (uint64_t)ms;
	     test_msleep(20)) {
		cJSON *j = api(node, "GET", "/api/v1/cluster/nodes", NULL, &r) == 200 && r.body
				   ? cJSON_Parse(r.body)
				   : NULL;
		const cJSON *n;

		with = 0;
		cJSON_ArrayForEach (n, cJSON_GetObjectItemCaseSensitive(j, "nodes")) {
			const cJSON *f;

			cJSON_ArrayForEach (f, cJSON_GetObjectItemCaseSensitive(n, "functions")) {
				with += cJSON_IsString(f) && !strcmp(f->valuestring, fn);
			}
		}
		cJSON_Delete(j);
		reply_release(&r);
		if (with == 3)
			return true;
	}
	printf("\n  %s: node %d answers %d, listed by %d nodes\n", fn, node, st, with);
	return false;
}

/* The calls b sent to peers and those a and c took, from their /metrics. */
static void offload_counts(double *out_b, double *in_ac)
{
	static const char *const why[] = {"latency_deadline", "latency_sooner", "batch_peer"};
	struct reply r;
	char series[160];

	*out_b = *in_ac = 0;
	for (int k = 1; k <= 3; k++) {
		api(k, "GET", "/metrics", NULL, &r);
		for (int i = 0; i < 3; i++) {
			snprintf(series, sizeof(series),
				 "nemo_cluster_offloads_total{direction=\"%s\",reason=\"%s\"}",
				 k == 2 ? "out" : "in", why[i]);
			if (sample(r.body, series) > 0)
				*(k == 2 ? out_b : in_ac) += sample(r.body, series);
		}
		reply_release(&r);
	}
}

/* A result without the Host header its caller sent (the nodes' addresses differ). */
static cJSON *echo_without_host(const char *body)
{
	cJSON *j = body ? cJSON_Parse(body) : NULL;

	cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "__ow_headers"),
						"host");
	return j;
}

/* A string member of a JSON object ("" when absent). */
static const char *str_of(const cJSON *j, const char *key)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, key));

	return v ? v : "";
}

#define WEB_PY                                                                           \
	"{\"exec\":{\"kind\":\"python:3\",\"code\":\"def main(a):\\n    return "         \
	"{'statusCode': 201, 'headers': {'X-Fn': 'yes', 'Content-Type': 'text/plain'}, " \
	"'body': a['__ow_method'] + ' ' + a['__ow_path'] + ' ' + a['__ow_query']}\\n\"}}"

static void test_net_openfaas_offloads(void)
{
	const char *q = "/function/echo/sub/path?x=1&y=two%20words";
	struct reply here, there;
	char fn_hdr[64], ctype[64], call_id[64];
	cJSON *a, *b;
	double out0, in0, out1, in1;

	if (!can_run())
		return;
	CU_ASSERT_TRUE_FATAL(up_ok);
	CU_ASSERT_TRUE_FATAL(wait_listed(2, "echo", 3000));
	offload_counts(&out0, &in0);
	/* the same call on c (spare: it runs there) and on b (none: a peer runs it) */
	CU_ASSERT_EQUAL(api_h(3, "POST", q, "{\"n\":5}", "X-Test: hello", &here), 200);
	CU_ASSERT_EQUAL(api_h(2, "POST", q, "{\"n\":5}", "X-Test: hello", &there), 200);
	printf("\n  OpenFaaS POST %s: on c ran %s, on b ran on %s: %s\n", q,
	       here.node[0] ? here.node : "there", there.node, there.body ? there.body : "");
	CU_ASSERT_STRING_EQUAL(here.node, "");
	CU_ASSERT(!strcmp(there.node, "a") || !strcmp(there.node, "c"));
	last_header(2, "X-Call-Id", call_id, sizeof(call_id));
	CU_ASSERT_EQUAL(strlen(call_id), 32);
	/* what the function saw: the method, sub-path, query, headers and body as they came */
	a = echo_without_host(here.body);
	b = echo_without_host(there.body);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(b, "n")), 5);
	CU_ASSERT_STRING_EQUAL(str_of(b, "__ow_method"), "POST");
	CU_ASSERT_STRING_EQUAL(str_of(b, "__ow_path"), "/sub/path");
	CU_ASSERT_STRING_EQUAL(str_of(b, "__ow_query"), "x=1&y=two words");
	CU_ASSERT_STRING_EQUAL(
		str_of(cJSON_GetObjectItemCaseSensitive(b, "__ow_headers"), "x-test"), "hello");
	CU_ASSERT_PTR_NULL(strcasestr(there.body, "x-nemo"));
	if (!cJSON_Compare(a, b, true))
		printf("  on c: %s\n", here.body ? here.body : "");
	CU_ASSERT_TRUE(cJSON_Compare(a, b, true));
	cJSON_Delete(a);
	cJSON_Delete(b);
	reply_release(&here);
	reply_release(&there);
	/* a web function's own status, headers and body come back through the forward */
	CU_ASSERT_EQUAL(api(1, "PUT", "/api/v1/namespaces/_/actions/web", WEB_PY, &here), 200);
	reply_release(&here);
	CU_ASSERT_TRUE_FATAL(wait_listed(2, "web", 3000));
	CU_ASSERT_EQUAL(api(2, "PUT", "/function/web/a/b?k=v", "", &there), 201);
	last_header(2, "X-Fn", fn_hdr, sizeof(fn_hdr));
	last_header(2, "Content-Type", ctype, sizeof(ctype));
	printf("  OpenFaaS PUT /function/web/a/b?k=v on b: %d from %s, X-Fn %s, %s: %s\n",
	       there.status, there.node, fn_hdr, ctype, there.body ? there.body : "");
	CU_ASSERT(!strcmp(there.node, "a") || !strcmp(there.node, "c"));
	CU_ASSERT_STRING_EQUAL(fn_hdr, "yes");
	CU_ASSERT_PTR_NOT_NULL(strstr(ctype, "text/plain"));
	CU_ASSERT_STRING_EQUAL(there.body ? there.body : "", "PUT /a/b k=v");
	reply_release(&there);
	/* async: 202 from the peer, polled by its id on b */
	CU_ASSERT_EQUAL(api(2, "POST", "/async-function/echo", "{\"n\":6}", &there), 202);
	last_header(2, "X-Call-Id", call_id, sizeof(call_id));
	CU_ASSERT(!strcmp(there.node, "a") || !strcmp(there.node, "c"));
	reply_release(&there);
	CU_ASSERT_EQUAL_FATAL(strlen(call_id), 32);
	{
		char path[128];
		bool done = false;

		snprintf(path, sizeof(path), "/api/v1/namespaces/_/activations/%s", call_id);
		for (uint64_t t0 = nemo_now_ms(); !done && nemo_now_ms() - t0 < 5000;
		     test_msleep(50)) {
			done = api(2, "GET", path, NULL, &there) == 200 && there.body &&
			       strstr(there.body, "\"success\"") &&
			       (strstr(there.body, "\"node\":\"a\"") ||
				strstr(there.body, "\"node\":\"c\""));
			reply_release(&there);
		}
		CU_ASSERT_TRUE(done);
	}
	offload_counts(&out1, &in1);
	printf("  nemo_cluster_offloads_total: b sent %.0f more, a and c took %.0f more\n",
	       out1 - out0, in1 - in0);
	CU_ASSERT_EQUAL(out1 - out0, 3);
	CU_ASSERT_EQUAL(in1 - in0, 3);
}

#define MQ_PY "def main(req):\n    return 'seen ' + req.decode()\n"

static void test_net_mqtt_offloads(void)
{
	char body[512], *b64, cmd[1024], out_f[160], *got, id[40] = "";
	struct reply r;
	FILE *sub;
	double out0, in0, out1, in1;

	if (!can_run())
		return;
	if (access("/usr/bin/mosquitto_pub", X_OK) || access("/usr/sbin/mosquitto", X_OK)) {
		nemo_test_skip("needs mosquitto and mosquitto-clients: run make deps");
		return;
	}
	CU_ASSERT_TRUE_FATAL(up_ok);
	b64 = nemo_base64_encode(MQ_PY, strlen(MQ_PY));
	snprintf(body, sizeof(body),
		 "{\"runtime\":\"python\",\"handler\":\"main\",\"code\":{\"base64\":\"%s\"},"
		 "\"mqtt\":{\"topics\":[\"cl/in\"],\"reply_topic\":\"cl/out\",\"qos\":1}}",
		 b64);
	free(b64);
	/* deployed on a (no broker there); b, connected to the broker, subscribes */
	CU_ASSERT_EQUAL(api(1, "PUT", "/api/v1/namespaces/_/actions/mq", body, &r), 200);
	reply_release(&r);
	CU_ASSERT_TRUE_FATAL(wait_listed(2, "mq", 3000));
	{
		char log[160], *text = NULL;

		snprintf(log, sizeof(log), "/tmp/nemo-clnet-%s/nemod-b.log", tag);
		for (uint64_t t0 = nemo_now_ms(); nemo_now_ms() - t0 < 5000; test_msleep(50)) {
			free(text);
			text = test_read_file(log, NULL);
			if (text && strstr(text, "topic=cl/in"))
				break;
		}
		CU_ASSERT_PTR_NOT_NULL_FATAL(text ? strstr(text, "topic=cl/in") : NULL);
		free(text);
	}
	offload_counts(&out0, &in0);
	snprintf(out_f, sizeof(out_f), "%s/mqtt-out", work);
	snprintf(cmd, sizeof(cmd),
		 "%s exec %s mq mosquitto_sub -h 10.77.0.30 -t cl/out -q 1 -C 1 -W 15 >%s "
		 "2>&1",
		 harness(), tag, out_f);
	sub = popen(cmd, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(sub);
	test_msleep(500); /* the subscription lands before the publish */
	CU_ASSERT_EQUAL(run("%s exec %s mq mosquitto_pub -h 10.77.0.30 -t cl/in -m 42 -q 1",
			    harness(), tag),
			0);
	pclose(sub);
	got = test_read_file(out_f, NULL);
	printf("\n  MQTT cl/in 42 through b (no spare): cl/out got %s", got ? got : "(nothing)\n");
	CU_ASSERT_PTR_NOT_NULL(got ? strstr(got, "\"result\":\"seen 42\"") : NULL);
	if (got && strstr(got, "\"activationId\":\""))
		sscanf(strstr(got, "\"activationId\":\"") + 16, "%39[0-9a-f]", id);
	free(got);
	CU_ASSERT_EQUAL_FATAL(strlen(id), 32);
	/* b's record of it: run on a peer for b, once */
	{
		char path[128];

		snprintf(path, sizeof(path), "/api/v1/namespaces/_/activations/%s", id);
		CU_ASSERT_EQUAL(api(2, "GET", path, NULL, &r), 200);
		printf("  b's record: %s\n", r.body ? r.body : "");
		CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "\"origin\":\"b\"") : NULL);
		CU_ASSERT(r.body &&
			  (strstr(r.body, "\"node\":\"a\"") || strstr(r.body, "\"node\":\"c\"")));
		CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "\"trigger\":\"mqtt\"") : NULL);
		CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "\"success\"") : NULL);
		reply_release(&r);
	}
	offload_counts(&out1, &in1);
	printf("  nemo_cluster_offloads_total: b sent %.0f more, a and c took %.0f more\n",
	       out1 - out0, in1 - in0);
	CU_ASSERT_EQUAL(out1 - out0, 1);
	CU_ASSERT_EQUAL(in1 - in0, 1);
}

/* A zip of two python files: __main__.py imports the other. */
static char *zip_b64(void)
{
	char zipf[160], *bytes, *b64;
	size_t len;

	snprintf(zipf, sizeof(zipf), "%s/two.zip", work);
	if (run("python3 -c 'import zipfile, sys\n"
		"z = zipfile.ZipFile(sys.argv[1], \"w\")\n"
		"z.writestr(\"__main__.py\", \"from words import greet\\n"
		"def main(a):\\n    return {\\\"greeting\\\": greet(a.get(\\\"name\\\", \\\"?\\\"))}\\n\")\n"
		"z.writestr(\"words.py\", \"def greet(n):\\n    return \\\"hello \\\" + n\\n\")\n"
		"z.close()' %s",
		zipf))
		return NULL;
	bytes = test_read_file(zipf, &len);
	b64 = bytes ? nemo_base64_encode(bytes, len) : NULL;
	free(bytes);
	return b64;
}

static void test_net_zip_served_by_c(void)
{
	char *b64, *body;
	struct reply r;
	int st;

	if (!can_run())
		return;
	CU_ASSERT_TRUE_FATAL(up_ok);
	b64 = zip_b64();
	CU_ASSERT_PTR_NOT_NULL_FATAL(b64);
	body = malloc(strlen(b64) + 256);
	sprintf(body, "{\"exec\":{\"kind\":\"python:3\",\"binary\":true,\"code\":\"%s\"}}", b64);
	free(b64);
	/* a keeps no code in etcd (inline_code_max 0): c fetches the archive from a */
	st = api(1, "PUT", "/api/v1/namespaces/_/actions/zipped", body, &r);
	free(body);
	if (st != 200)
		printf("\n  zip deploy on a: %d %s\n", st, r.body ? r.body : "");
	CU_ASSERT_EQUAL_FATAL(st, 200);
	reply_release(&r);
	CU_ASSERT_TRUE_FATAL(wait_listed(3, "zipped", 3000));
	st = api(3, "POST", "/api/v1/namespaces/_/actions/zipped?blocking=true&result=true",
		 "{\"name\":\"c\"}", &r);
	printf("\n  zip of two files deployed on a, called on c: %d %s (ran on %s)\n", st,
	       r.body ? r.body : "", r.node[0] ? r.node : "c");
	CU_ASSERT_EQUAL(st, 200);
	CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "\"greeting\":\"hello c\"") : NULL);
	CU_ASSERT_STRING_EQUAL(r.node, "");
	reply_release(&r);
}

/* Bad input: a zip record whose owner cannot give its code: a call names the function and node */
static void test_net_zip_unfetchable(void)
{
	char rec[768], *key64, *val64, cmd[2048], log[160], *text = NULL;
	const char *key = "/nemo/fn/ghostzip";
	struct reply r;
	int st = 0;

	if (!can_run())
		return;
	CU_ASSERT_TRUE_FATAL(up_ok);
	/* a's name and address, a function a does not have: its code route answers 404 */
	snprintf(rec, sizeof(rec),
		 "{\"v\":1,\"name\":\"ghostzip\",\"version\":1,\"owner\":\"a\","
		 "\"owner_address\":\"10.77.0.21:8080\",\"ts\":%llu,\"code_size\":22,"
		 "\"code_sha256\":\"%064d\",\"spec\":{\"doc\":{\"runtime\":\"python\","
		 "\"handler\":\"__main__:main\"},\"zip\":true}}",
		 (unsigned long long)nemo_epoch_ms(), 0);
	key64 = nemo_base64_encode(key, strlen(key));
	val64 = nemo_base64_encode(rec, strlen(rec));
	snprintf(
		cmd, sizeof(cmd),
		"for e in 11 12 13; do %s exec %s 3 curl -sf -m 3 http://10.77.0.$e:2379/v3/kv/put "
		"-d '{\"key\":\"%s\",\"value\":\"%s\"}' >/dev/null && exit 0; done; exit 1",
		harness(), tag, key64, val64);
	CU_ASSERT_EQUAL_FATAL(run("%s", cmd), 0);
	snprintf(log, sizeof(log), "/tmp/nemo-clnet-%s/nemod-c.log", tag);
	for (uint64_t t0 = nemo_now_ms(); nemo_now_ms() - t0 < 5000; test_msleep(50)) {
		free(text);
		text = test_read_file(log, NULL);
		if (text && strstr(text, "function=ghostzip: its code could not be fetched"))
			break;
	}
	CU_ASSERT_PTR_NOT_NULL(
		text ? strstr(text, "function=ghostzip: its code could not be fetched from node a "
				    "at 10.77.0.21:8080")
		     : NULL);
	free(text);
	st = api(3, "POST", "/api/v1/namespaces/_/actions/ghostzip?blocking=true", "{}", &r);
	printf("\n  a zip record whose owner a has no such function: c answers %d %s\n", st,
	       r.body ? r.body : "");
	CU_ASSERT_EQUAL(st, 404);
	CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "'ghostzip'") : NULL);
	CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "node a at 10.77.0.21:8080") : NULL);
	CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "could not be fetched") : NULL);
	/* its owner may have it later: c tries again, and says when */
	CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "retrying ") : NULL);
	reply_release(&r);
	/* the record goes again: nothing of it stays for the tests after this one */
	snprintf(cmd, sizeof(cmd),
		 "for e in 11 12 13; do %s exec %s 3 curl -sf -m 3 "
		 "http://10.77.0.$e:2379/v3/kv/deleterange -d '{\"key\":\"%s\"}' >/dev/null && "
		 "exit 0; done; exit 1",
		 harness(), tag, key64);
	CU_ASSERT_EQUAL(run("%s", cmd), 0);
	free(key64);
	free(val64);
}

/* A function's state on node `node` as its call answers: the status, the body into r. */
static int call_fn(int node, const char *fn, const char *payload, struct reply *r)
{
	char path[160];

	snprintf(path, sizeof(path), "/api/v1/namespaces/_/actions/%s?blocking=true&result=true",
		 fn);
	return api(node, "POST", path, payload, r);
}

/* c's way to a cut (an unreachable route in c's namespace) or mended: 0 when done. */
static int route_to_a(bool cut)
{
	return run("%s exec %s 3 ip route %s unreachable 10.77.0.21/32", harness(), tag,
		   cut ? "add" : "del");
}

/*
 * A deploy on a while c cannot reach a (an unreachable route to a's address in c's namespace:
 * c still hears etcd and b). c's fetch of the code fails, and its calls say so and when the
 * next try is; once the route is back, c serves the function within the backoff's bound (5 s)
 * without anyone deploying it again.
 */
static void test_net_fetch_retried(void)
{
	char log[160], *text;
	struct reply r;
	double failed, retries, waiting;
	uint64_t t0, t_back = 0;
	int st = 0, cut;
	bool said = false;

	if (!can_run())
		return;
	CU_ASSERT_TRUE_FATAL(up_ok);
	cut = route_to_a(true);
	CU_ASSERT_EQUAL_FATAL(cut, 0);
	/* from here the route goes again whatever happens: no fatal assertion until it has */
	st = api(1, "PUT", "/api/v1/namespaces/_/actions/flaky", ECHO_PY, &r);
	CU_ASSERT_EQUAL(st, 200);
	reply_release(&r);
	/* c's kept-alive connection to a holds the first try until it stalls (3 s) */
	for (t0 = nemo_now_ms(); st == 200 && nemo_now_ms() - t0 < 10000; test_msleep(50)) {
		int cs = call_fn(3, "flaky", "{\"f\":1}", &r);

		said = cs == 404 && r.body && strstr(r.body, "'flaky'") &&
		       strstr(r.body, "could not be fetched from node a at 10.77.0.21:8080") &&
		       strstr(r.body, "retrying in ");
		if (said)
			printf("\n  a out of c's reach: c answers %d %s\n", cs, r.body);
		reply_release(&r);
		if (said)
			break;
	}
	CU_ASSERT_TRUE(said);
	/* it goes on failing, further apart: 100 ms doubling, 5 s at most */
	test_msleep(3000);
	api(3, "GET", "/metrics", NULL, &r);
	failed = sample(r.body, "nemo_cluster_code_fetches_total{outcome=\"failed\"}");
	retries = sample(r.body, "nemo_cluster_code_fetch_retries_total");
	waiting = sample(r.body, "nemo_cluster_code_fetch_waiting");
	reply_release(&r);
	printf("  after 3 s more: c's fetches failed %.0f, retries %.0f, waiting %.0f\n", failed,
	       retries, waiting);
	CU_ASSERT(failed >= 4);
	CU_ASSERT(retries >= 3);
	CU_ASSERT_EQUAL(waiting, 1);
	/* a in reach again: no deploy, c serves it at its next try */
	cut = route_to_a(false);
	CU_ASSERT_EQUAL(cut, 0);
	t0 = nemo_now_ms();
	for (; cut == 0 && nemo_now_ms() - t0 < 15000; test_msleep(50)) {
		st = api(3, "GET", "/api/v1/namespaces/_/actions/flaky", NULL, &r);
		reply_release(&r);
		if (st == 200) {
			t_back = nemo_now_ms() - t0;
			break;
		}
	}
	st = call_fn(3, "flaky", "{\"f\":2}", &r);
	printf("  route back: c serves flaky after %llu ms (backoff at most 5 000 ms); its call: "
	       "%d %s (ran on %s)\n",
	       (unsigned long long)t_back, st, r.body ? r.body : "", r.node[0] ? r.node : "c");
	CU_ASSERT(t_back > 0 && t_back < 5000 + 2500);
	CU_ASSERT_EQUAL(st, 200);
	CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "\"f\":2") : NULL);
	CU_ASSERT_STRING_EQUAL(r.node, "");
	reply_release(&r);
	/* one line when it came back; nothing left to fetch (ghostzip's went with its record) */
	snprintf(log, sizeof(log), "/tmp/nemo-clnet-%s/nemod-c.log", tag);
	text = test_read_file(log, NULL);
	CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, "function=flaky: its code came from node a at "
						   "10.77.0.21:8080 after ")
				    : NULL);
	free(text);
	api(3, "GET", "/metrics", NULL, &r);
	CU_ASSERT(sample(r.body, "nemo_cluster_code_fetches_total{outcome=\"ok\"}") >= 1);
	CU_ASSERT_EQUAL(sample(r.body, "nemo_cluster_code_fetch_waiting"), 0);
	reply_release(&r);
	CU_ASSERT_EQUAL(api(1, "DELETE", "/api/v1/namespaces/_/actions/flaky", NULL, &r), 200);
	reply_release(&r);
}

/* Bad input: the routes for peers reach every namespace: a tenant's credential is refused */
static void test_net_peer_routes_nodes_only(void)
{
	static const char *const calls[][2] = {
		{"GET", "/api/v1/cluster/code/echo"},
		{"POST", "/api/v1/cluster/run/echo"},
	};
	char cmd[1024], out[1024];
	struct reply r;

	if (!can_run())
		return;
	CU_ASSERT_TRUE_FATAL(up_ok);
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		FILE *p;

		/* the tenant's line of the credentials file (tests/cluster/cluster.sh) */
		snprintf(cmd, sizeof(cmd),
			 "%s exec %s 3 curl -s -m 5 -X %s -H 'Authorization: Bearer "
			 "tenant:tenant-key-0123456789' -d '{}' -w ' %%{http_code}' "
			 "http://10.77.0.21:8080%s",
			 harness(), tag, calls[i][0], calls[i][1]);
		out[0] = '\0';
		p = popen(cmd, "r");
		if (p) {
			size_t n = fread(out, 1, sizeof(out) - 1, p);

			out[n] = '\0';
			pclose(p);
		}
		printf("\n  %s %s with a tenant's credential: %s", calls[i][0], calls[i][1], out);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, " 403"));
	}
	/* the nodes' own credential gets the code */
	CU_ASSERT_EQUAL(api(1, "GET", "/api/v1/cluster/code/echo", NULL, &r), 200);
	CU_ASSERT(r.body && strstr(r.body, "def main"));
	reply_release(&r);
	printf("\n");
}

static void test_net_member_lost(void)
{
	struct reply r;
	pid_t e1;
	int ok = 0;

	if (!can_run())
		return;
	CU_ASSERT_TRUE_FATAL(up_ok);
	e1 = pid_of("e1");
	CU_ASSERT_FATAL(e1 > 0);
	kill(e1, SIGKILL);
	/* deploys and async calls (recorded in etcd) go on with two members of three */
	for (int i = 0; i < 10; i++) {
		int st = api(1, "POST", "/api/v1/namespaces/_/actions/echo", "{\"m\":1}", &r);

		ok += st == 202;
		reply_release(&r);
	}
	printf("\n  etcd member 1 killed: %d/10 async calls accepted\n", ok);
	CU_ASSERT_EQUAL(ok, 10);
	CU_ASSERT_EQUAL(api(3, "PUT", "/api/v1/namespaces/_/actions/echo2", ECHO_PY, &r), 200);
	reply_release(&r);
}

NEMO_SUITE(cluster_net, net_setup, cluster_down,
	   {"deploy on a, invoke on c", test_net_deploy_a_invoke_c},
	   {"b has no spare: its calls run on a or c", test_net_no_spare_offloads},
	   {"QoS: latency at once, batch after its deadline", test_net_qos_classes},
	   {"metrics: the cluster's families, promtool clean", test_net_metrics},
	   {"OpenFaaS calls on b run on a or c, passed through as they came",
	    test_net_openfaas_offloads},
	   {"an MQTT call on b runs on a or c; b replies", test_net_mqtt_offloads},
	   {"a zip of two files deployed on a answers on c", test_net_zip_served_by_c},
	   {"a zip its owner cannot give: the call names the function and node",
	    test_net_zip_unfetchable},
	   {"an owner out of reach: c fetches again until it serves the function",
	    test_net_fetch_retried},
	   {"the routes for peers refuse a tenant's credential", test_net_peer_routes_nodes_only},
	   {"an etcd member killed: the cluster serves", test_net_member_lost})

/* ---- kill -9 of b under async load; b cut off from etcd ----------------------------------------- */

static int kill_setup(void)
{
	if (geteuid() != 0 || access("/usr/bin/etcd", X_OK))
		return 0;
	/* b keeps its calls (no offload): they are its to lose */
	return cluster_up("CLUSTER_LEASE_TTL_S=3 CLUSTER_KEYS_b='\"offload\": false,'");
}

struct ids {
	char (*id)[40];
	int n, cap;
};

static void ids_add(struct ids *s, const char *id)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->id = realloc(s->id, (size_t)s->cap * 40);
	}
	snprintf(s->id[s->n++], 40, "%s", id);
}

/* The activation ids in a node's own records. */
static void local_ids(int node, struct ids *out)
{
	struct reply r;
	cJSON *arr, *it;

	api(node, "GET", "/api/v1/namespaces/_/activations?limit=1000", NULL, &r);
	arr = r.body ? cJSON_Parse(r.body) : NULL;
	cJSON_ArrayForEach (it, arr) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "activationId");

		if (cJSON_IsString(id))
			ids_add(out, id->valuestring);
	}
	cJSON_Delete(arr);
	reply_release(&r);
}

static void test_net_kill9_adopted_once(void)
{
	struct ids told = {0}, on_a = {0}, on_c = {0}, with_cb = {0};
	struct reply r;
	pid_t b;
	uint64_t t0, t_kill = 0, t_kill_epoch = 0;
	double adopt_max = 0, end_max = 0;
	int success = 0, interrupted = 0, other = 0, missing = 0, adopted = 0, twice = 0;

	if (!can_run())
		return;
	CU_ASSERT_TRUE_FATAL(up_ok);
	CU_ASSERT_TRUE_FATAL(deploy_echo(1));
	for (t0 = nemo_now_ms(); nemo_now_ms() - t0 < 3000; test_msleep(20)) {
		int st = api(2, "GET", "/api/v1/namespaces/_/actions/echo", NULL, &r);

		reply_release(&r);
		if (st == 200)
			break;
	}
	b = pid_of("2");
	CU_ASSERT_FATAL(b > 0);
	/*
	 * a callback receiver in a's namespace: one line per callback POSTed to it, "<from> <id>
	 * <X-Function-Status>". What b sends it is never answered ("hang <id>"): b dies between
	 * its end record and its callback's completion, and its adopter must deliver again.
	 */
	run("%s exec %s 1 python3 -c '%s' %s/callbacks >/dev/null 2>&1 &", harness(), tag,
	    "import http.server, os, sys, time\n"
	    "open(sys.argv[1] + \".pid\", \"w\").write(str(os.getpid()))\n"
	    "f = open(sys.argv[1], \"a\", buffering=1)\n"
	    "class H(http.server.BaseHTTPRequestHandler):\n"
	    "    def do_POST(self):\n"
	    "        self.rfile.read(int(self.headers.get(\"Content-Length\", 0)))\n"
	    "        i = self.headers.get(\"X-Call-Id\", \"\")\n"
	    "        if self.client_address[0] == \"10.77.0.22\":\n"
	    "            f.write(\"hang \" + i + \"\\n\"); time.sleep(120)\n"
	    "        f.write(self.client_address[0] + \" \" + i + \" \" +\n"
	    "                self.headers.get(\"X-Function-Status\", \"\") + \"\\n\")\n"
	    "        self.send_response(200); self.end_headers()\n"
	    "    def log_message(self, *a): pass\n"
	    "s = http.server.ThreadingHTTPServer((\"10.77.0.21\", 9999), H)\n"
	    "s.daemon_threads = True\n"
	    "s.serve_forever()",
	    work);
	test_msleep(300);
	/* a steady async load on b, 1 s per call, more than its workers keep up with; every
	 * third through OpenFaaS with a callback, which an adopter must still deliver */
	t0 = nemo_now_ms();
	for (int i = 0; i < 30; i++) {
		if (i % 3 == 2) {
			/* OpenFaaS: 202 with the id in X-Call-Id */
			char hdrf[160], *h, id[40] = "";

			if (api_h(2, "POST", "/async-function/echo", "{\"sleep\":1}",
				  "X-Callback-Url: http://10.77.0.21:9999/cb", &r) == 202) {
				snprintf(hdrf, sizeof(hdrf), "%s/hdr-2", work);
				h = test_read_file(hdrf, NULL);
				if (h && strcasestr(h, "X-Call-Id: "))
					sscanf(strcasestr(h, "X-Call-Id: ") + 11, "%39[0-9a-f]",
					       id);
				free(h);
				if (id[0]) {
					ids_add(&told, id);
					ids_add(&with_cb, id);
				}
			}
		} else if (api(2, "POST", "/api/v1/namespaces/_/actions/echo", "{\"sleep\":1}",
			       &r) == 202 &&
			   r.body) {
			cJSON *j = cJSON_Parse(r.body);
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "activationId");

			if (cJSON_IsString(id))
				ids_add(&told, id->valuestring);
			cJSON_Delete(j);
		}
		reply_release(&r);
		test_msleep(30);
	}
	/* kill b once it is stuck in a callback, its end record written */
	{
		char path[160], *cbs = NULL;

		snprintf(path, sizeof(path), "%s/callbacks", work);
		for (uint64_t tw = nemo_now_ms(); nemo_now_ms() - tw < 15000; test_msleep(20)) {
			free(cbs);
			cbs = test_read_file(path, NULL);
			if (cbs && strstr(cbs, "hang "))
				break;
		}
		CU_ASSERT_PTR_NOT_NULL(cbs ? strstr(cbs, "hang ") : NULL);
		free(cbs);
	}
	kill(b, SIGKILL);
	t_kill = nemo_now_ms();
	t_kill_epoch = nemo_epoch_ms();
	printf("\n  %d activations accepted by b (202) before kill -9\n", told.n);
	CU_ASSERT(told.n >= 20);
	/* each ends exactly once, wherever: polled by id on a */
	while (nemo_now_ms() - t_kill < 3000 + 45000) { /* the adopted runs take a while here */
		success = interrupted = other = missing = adopted = 0;
		adopt_max = end_max = 0;
		for (int i = 0; i < told.n; i++) {
			char path[128];
			cJSON *j = NULL;
			const cJSON *stt, *am, *em;

			snprintf(path, sizeof(path), "/api/v1/namespaces/_/activations/%s",
				 told.id[i]);
			if (api(1, "GET", path, NULL, &r) == 200 && r.body)
				j = cJSON_Parse(r.body);
			reply_release(&r);
			stt = cJSON_GetObjectItemCaseSensitive(j, "status");
			am = cJSON_GetObjectItemCaseSensitive(j, "adopted_ms");
			em = cJSON_GetObjectItemCaseSensitive(j, "end");
			if (!j)
				missing++;
			else if (cJSON_IsString(stt) && !strcmp(stt->valuestring, "success"))
				success++;
			else if (cJSON_IsString(stt) && !strcmp(stt->valuestring, "interrupted"))
				interrupted++;
			else
				other++;
			if (cJSON_IsNumber(am)) {
				adopted++;
				if (am->valuedouble - (double)t_kill_epoch > adopt_max)
					adopt_max = am->valuedouble - (double)t_kill_epoch;
			}
			if (cJSON_IsNumber(em) && em->valuedouble - (double)t_kill_epoch > end_max)
				end_max = em->valuedouble - (double)t_kill_epoch;
			cJSON_Delete(j);
		}
		if (success + interrupted == told.n)
			break;
		test_msleep(500);
	}
	local_ids(1, &on_a);
	local_ids(3, &on_c);
	for (int i = 0; i < on_a.n; i++)
		for (int k = 0; k < on_c.n; k++)
			twice += !strcmp(on_a.id[i], on_c.id[k]);
	printf("  after kill -9 of b (lease ttl 3 s): %d success (%d adopted by a or c), %d "
	       "interrupted (had started on b), %d other, %d missing; adopted within %.0f ms of "
	       "the kill, all ended within %.0f ms; run on both a and c: %d\n",
	       success, adopted, interrupted, other, missing, adopt_max, end_max, twice);
	CU_ASSERT_EQUAL(missing, 0);
	CU_ASSERT_EQUAL(other, 0);
	CU_ASSERT_EQUAL(success + interrupted, told.n);
	CU_ASSERT(adopted > 0); /* the load outran b: some never started there */
	CU_ASSERT_EQUAL(twice, 0);
	CU_ASSERT(adopt_max > 0 && adopt_max <= 3000 + 1000); /* lease ttl + 1 s */
	{
		/*
		 * every call with a callback is delivered once by a live node: run there (adopted),
		 * interrupted there, or ended on b, which hung in its callback and died: at least once
		 * in all, the X-Call-Id telling a repeat
		 */
		char path[160], *cbs;
		int once = 0, none = 0, more = 0, hung = 0, hung_again = 0, interrupted_told = 0;

		test_msleep(1000);
		snprintf(path, sizeof(path), "%s/callbacks", work);
		cbs = test_read_file(path, NULL);
		for (int i = 0; i < with_cb.n; i++) {
			char want_hang[64], want_a[80], want_c[80];
			const char *at;
			int live = 0;
			bool h;

			snprintf(want_hang, sizeof(want_hang), "hang %s", with_cb.id[i]);
			snprintf(want_a, sizeof(want_a), "10.77.0.21 %s ", with_cb.id[i]);
			snprintf(want_c, sizeof(want_c), "10.77.0.23 %s ", with_cb.id[i]);
			for (at = cbs; at && (at = strstr(at, want_a)); at++)
				live++;
			for (at = cbs; at && (at = strstr(at, want_c)); at++)
				live++;
			h = cbs && strstr(cbs, want_hang);
			once += live == 1;
			none += live == 0;
			more += live > 1;
			hung += h;
			hung_again += h && live == 1;
			for (at = cbs; at && (at = strstr(at, with_cb.id[i])); at++)
				interrupted_told += !strncmp(at + strlen(with_cb.id[i]), " 500", 4);
		}
		printf("  callbacks: %d calls with X-Callback-Url: delivered by a live node once %d, "
		       "never %d, more than once %d; %d hung on b when it died, %d of them delivered "
		       "again by their adopter; %d told of a failure (interrupted)\n",
		       with_cb.n, once, none, more, hung, hung_again, interrupted_told);
		CU_ASSERT(with_cb.n >= 8);
		CU_ASSERT(hung >= 1);
		CU_ASSERT_EQUAL(hung_again, hung);
		CU_ASSERT_EQUAL(once, with_cb.n);
		CU_ASSERT_EQUAL(none, 0);
		CU_ASSERT_EQUAL(more, 0);
		free(cbs);
		free(with_cb.id);
		/* the receiver, by its pid (the namespace's teardown would take it too) */
		snprintf(path, sizeof(path), "%s/callbacks.pid", work);
		cbs = test_read_file(path, NULL);
		if (cbs && atoi(cbs) > 1)
			kill(atoi(cbs), SIGTERM);
		free(cbs);
	}
	free(told.id);
	free(on_a.id);
	free(on_c.id);
}

static void test_net_partition(void)
{
	struct reply r;
	uint64_t t0;
	int st;

	if (!can_run())
		return;
	CU_ASSERT_TRUE_FATAL(up_ok);
	/* c's link goes down: it reaches neither etcd nor its peers (its own address still works) */
	CU_ASSERT_EQUAL_FATAL(run("%s partition %s 3 on", harness(), tag), 0);
	st = api(3, "POST", "/api/v1/namespaces/_/actions/echo", "{\"p\":1}", &r);
	printf("\n  c cut off: async call answered %d after %.0f ms: %s\n", st, r.seconds * 1e3,
	       r.body ? r.body : "");
	CU_ASSERT_EQUAL(st, 503);
	CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "cannot accept the activation") : NULL);
	CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "etcd") : NULL);
	/* within one etcd timeout (timeout_ms 1000) and the accept's window, not one per member */
	CU_ASSERT(r.seconds > 0 && r.seconds < 1.0 + 0.25);
	reply_release(&r);
	/* the next is refused at once: the node knows it is cut off */
	st = api(3, "POST", "/api/v1/namespaces/_/actions/echo", "{\"p\":3}", &r);
	printf("  the next: %d after %.0f ms: %s\n", st, r.seconds * 1e3, r.body ? r.body : "");
	CU_ASSERT_EQUAL(st, 503);
	CU_ASSERT(r.seconds < 0.25);
	reply_release(&r);
	test_msleep(3500); /* past its lease: it says so on /healthz too */
	st = api(3, "GET", "/healthz", NULL, &r);
	printf("  healthz: %d %s\n", st, r.body ? r.body : "");
	CU_ASSERT_EQUAL(st, 503);
	CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "cluster") : NULL);
	reply_release(&r);
	CU_ASSERT_EQUAL(run("%s partition %s 3 off", harness(), tag), 0);
	for (t0 = nemo_now_ms(); nemo_now_ms() - t0 < 10000; test_msleep(200)) {
		st = api(3, "POST", "/api/v1/namespaces/_/actions/echo", "{\"p\":2}", &r);
		reply_release(&r);
		if (st == 202)
			break;
	}
	printf("  link back: async calls accepted again after %llu ms\n",
	       (unsigned long long)(nemo_now_ms() - t0));
	CU_ASSERT_EQUAL(st, 202);
}

/* SIGTERM of c with queued async work: it leaves at once after its drain, a takes the rest */
static void test_net_sigterm_hands_over(void)
{
	struct ids told = {0};
	struct reply r;
	uint64_t t_term_epoch, t0;
	double adopt_max = 0;
	int success = 0, adopted = 0;
	pid_t c;

	if (!can_run())
		return;
	CU_ASSERT_TRUE_FATAL(up_ok);
	c = pid_of("3");
	CU_ASSERT_FATAL(c > 0);
	for (int i = 0; i < 12; i++) {
		if (api(3, "POST", "/api/v1/namespaces/_/actions/echo", "{\"sleep\":1}", &r) ==
			    202 &&
		    r.body) {
			cJSON *j = cJSON_Parse(r.body);
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "activationId");

			if (cJSON_IsString(id))
				ids_add(&told, id->valuestring);
			cJSON_Delete(j);
		}
		reply_release(&r);
	}
	CU_ASSERT_FATAL(told.n >= 8);
	kill(c, SIGTERM);
	t_term_epoch = nemo_epoch_ms();
	for (t0 = nemo_now_ms(); nemo_now_ms() - t0 < 30000; test_msleep(500)) {
		success = adopted = 0;
		adopt_max = 0;
		for (int i = 0; i < told.n; i++) {
			char path[128];
			cJSON *j = NULL;
			const cJSON *stt, *am;

			snprintf(path, sizeof(path), "/api/v1/namespaces/_/activations/%s",
				 told.id[i]);
			if (api(1, "GET", path, NULL, &r) == 200 && r.body)
				j = cJSON_Parse(r.body);
			reply_release(&r);
			stt = cJSON_GetObjectItemCaseSensitive(j, "status");
			am = cJSON_GetObjectItemCaseSensitive(j, "adopted_ms");
			success += cJSON_IsString(stt) && !strcmp(stt->valuestring, "success");
			if (cJSON_IsNumber(am)) {
				adopted++;
				if (am->valuedouble - (double)t_term_epoch > adopt_max)
					adopt_max = am->valuedouble - (double)t_term_epoch;
			}
			cJSON_Delete(j);
		}
		if (success == told.n)
			break;
	}
	printf("\n  SIGTERM of c with %d async calls: %d success, %d adopted by a within %.0f ms "
	       "(drain_timeout_ms 2000; no lease TTL to wait for)\n",
	       told.n, success, adopted, adopt_max);
	CU_ASSERT_EQUAL(success, told.n);
	CU_ASSERT(adopted == 0 || adopt_max < 2000 + 1500);
	free(told.id);
}

NEMO_SUITE(cluster_net_kill, kill_setup, cluster_down,
	   {"kill -9 under async load: each ends once", test_net_kill9_adopted_once},
	   {"a node cut off from etcd refuses, and says why", test_net_partition},
	   {"SIGTERM hands queued work over at once", test_net_sigterm_hands_over})

/* ---- bad input: an etcd that is down at start --------------------------------------------------- */

static void test_net_etcd_down_at_start(void)
{
	char dir[] = "/var/tmp/nemo-cltest-XXXXXX", cfg[256], text[1024];
	struct test_proc p;
	uint16_t port = test_free_port(), dead = test_free_port();
	char *argv[] = {NULL, "--config", cfg, NULL};
	char bin[512];
	int rc;

	if (geteuid() != 0) {
		nemo_test_skip("needs root (cgroups)");
		return;
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(cfg, sizeof(cfg), "%s/nemod.json", dir);
	snprintf(text, sizeof(text),
		 "{\"listen\": \"127.0.0.1:%u\", \"token_file\": \"%s/token\", \"store_dir\": "
		 "\"%s/store\", \"cgroup_root\": \"nemo-cltest-%d\", \"cluster\": {\"enabled\": "
		 "true, \"endpoints\": [\"http://127.0.0.1:%u\"], \"node\": \"x\", \"address\": "
		 "\"127.0.0.1:%u\", \"start_wait_ms\": 1500}}",
		 port, dir, dir, (int)getpid(), dead, port);
	test_write_text(cfg, text);
	snprintf(text, sizeof(text), "%s/token", dir);
	test_write_text(text, "nemo-cluster-test-token-0123456789\n");
	snprintf(bin, sizeof(bin), "%s/nemod", nemo_test_bindir());
	argv[0] = bin;
	CU_ASSERT_EQUAL_FATAL(test_proc_start(&p, argv), 0);
	rc = test_proc_wait(&p, 15000);
	CU_ASSERT(rc > 0 && rc < 128); /* exits with an error, not a crash */
	{
		char want[128];

		snprintf(want, sizeof(want), "http://127.0.0.1:%u", dead);
		CU_ASSERT_TRUE(test_proc_output_has(&p, "retrying in"));
		CU_ASSERT_TRUE(test_proc_output_has(&p, want));
		CU_ASSERT_TRUE(test_proc_output_has(&p, "not reachable"));
	}
	run("rm -rf %s", dir);
}

/* The cluster keys: off by default; what is missing or malformed is named. */
static void test_cluster_config(void)
{
	static const struct {
		const char *cluster, *want;
	} bad[] = {
		{"{\"enabled\": true, \"node\": \"a\", \"address\": \"h:1\"}", "cluster.endpoints"},
		{"{\"enabled\": true, \"endpoints\": [\"127.0.0.1:2379\"], \"node\": \"a\", "
		 "\"address\": \"h:1\"}",
		 "cluster.endpoints[0]"},
		{"{\"enabled\": true, \"endpoints\": [\"http://e:2379\"], \"address\": \"h:1\"}",
		 "cluster.node"},
		{"{\"enabled\": true, \"endpoints\": [\"http://e:2379\"], \"node\": \"a/b\", "
		 "\"address\": \"h:1\"}",
		 "cluster.node"},
		{"{\"enabled\": true, \"endpoints\": [\"http://e:2379\"], \"node\": \"a\"}",
		 "cluster.address"},
		{"{\"qos\": \"fast\"}", "cluster.qos"},
		{"{\"lease_ttl_s\": 0}", "cluster.lease_ttl_s"},
		{"{\"leases\": 1}", "leases"},
		{"{\"enabled\": true, \"endpoints\": [\"https://e:2379\"], \"node\": \"a\", "
		 "\"address\": \"h:1\", \"cert_file\": \"/etc/hostname\"}",
		 "cluster.key_file"},
		{"{\"enabled\": true, \"endpoints\": [\"http://e:2379\"], \"node\": \"a\", "
		 "\"address\": \"h:1\", \"password\": \"pw\"}",
		 "cluster.user"},
		{"{\"enabled\": true, \"endpoints\": [\"https://e:2379\"], \"node\": \"a\", "
		 "\"address\": \"h:1\", \"ca_file\": \"/nonexistent/ca.pem\"}",
		 "cluster.ca_file"},
		{"{\"start_batch_ms\": 5000}", "cluster.start_batch_ms"},
	};
	char path[128], text[512], err[512];
	struct gw_config cfg;

	snprintf(path, sizeof(path), "/tmp/nemo-cltest-cfg-%d.json", (int)getpid());
	gw_config_defaults(&cfg);
	CU_ASSERT_FALSE(cfg.cluster.cl.enabled);
	CU_ASSERT_TRUE(cfg.cluster.offload);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "{\"cluster\": %s}", bad[i].cluster);
		test_write_text(path, text);
		err[0] = '\0';
		CU_ASSERT_EQUAL(gw_config_load(path, &cfg, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].want))
			printf("\n  %s: %s (wanted %s)\n", bad[i].cluster, err, bad[i].want);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].want));
	}
	snprintf(
		text, sizeof(text),
		"{\"cluster\": {\"enabled\": true, \"endpoints\": [\"http://e1:2379\", "
		"\"http://e2:2379\"], \"node\": \"a\", \"address\": \"10.0.0.1:8080\", "
		"\"qos\": \"batch\", \"lease_ttl_s\": 7, \"user\": \"nemo\", \"password\": \"pw\", "
		"\"ca_file\": \"/etc/hostname\", \"end_batch_ms\": 10}}");
	test_write_text(path, text);
	CU_ASSERT_EQUAL(gw_config_load(path, &cfg, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(cfg.cluster.cl.n_endpoints, 2);
	CU_ASSERT_STRING_EQUAL(cfg.cluster.cl.endpoints[1], "http://e2:2379");
	CU_ASSERT_EQUAL(cfg.cluster.qos, CL_QOS_BATCH);
	CU_ASSERT_EQUAL(cfg.cluster.cl.lease_ttl_s, 7);
	CU_ASSERT_STRING_EQUAL(cfg.cluster.cl.user, "nemo");
	CU_ASSERT_STRING_EQUAL(cfg.cluster.cl.ca_file, "/etc/hostname");
	CU_ASSERT_EQUAL(cfg.cluster.cl.end_batch_ms, 10);
	unlink(path);
}

NEMO_SUITE(cluster_net_bad, NULL, NULL,
	   {"etcd down at start: a clear error after retries", test_net_etcd_down_at_start},
	   {"cluster config: missing and malformed keys are named", test_cluster_config})
