/* test_compat.c - the tools people already use, unchanged, against a live nemod: the npm
 * openwhisk client, curl as faas-cli calls the OpenFaaS gateway, promtool, MQTT clients. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "nemo/base64.h"
#include "nemo/gateway.h"
#include "nemo/scheduler.h"
#include "nemo/version.h"
#include "proc.h"
#include "test.h"

#define CRED_UUID "23bc46b1-71f6-4ed5-8c54-816aa4f8c502"
#define CRED_KEY  "nemo-compat-key-0123456789abcdefghijklmnop"
#define CRED	  CRED_UUID ":" CRED_KEY
#define CRED_NS	  "edge"

struct compat_env {
	char dir[64];
	char config[128];
	uint16_t port;
	uint16_t mqtt_port;
	struct test_proc nemod;
	bool running;
	struct test_proc broker;
	bool broker_running;
};

static struct compat_env env;

/* Appended to the cgroup_root of the configs written next ("" for the suite's own). */
static const char *cgroup_tag = "";

/* A config for a nemod on env.port; `extra` is more top-level keys (or ""). */
static int write_config(const char *path, const char *store, uint16_t port, const char *extra)
{
	char text[4096];

	snprintf(text, sizeof(text),
		 "{\n"
		 "  \"listen\": \"127.0.0.1:%u\",\n"
		 "  \"token_file\": \"%s/credentials\",\n"
		 "  \"store_dir\": \"%s\",\n"
		 "  \"cores\": {\"sandbox\": [0]},\n"
		 "  \"async_workers\": 2,\n"
		 "  \"drain_timeout_ms\": 3000,\n"
		 "  \"cgroup_root\": \"nemo-compat-%d%s\"%s%s\n"
		 "}\n",
		 (unsigned)port, env.dir, store, getpid(), cgroup_tag, extra[0] ? ",\n  " : "",
		 extra);
	return test_write_text(path, text);
}

static int start_nemod(void)
{
	int rc = test_nemod_start(&env.nemod, env.config, env.port, 10000);

	env.running = rc == 0 || rc == -ETIMEDOUT; /* started: the teardown stops it */
	return rc ? -1 : 0;
}

/* The folder, credentials and config of a nemod; `extra` is more top-level keys. */
static int env_prepare(const char *extra)
{
	char path[256], store[128];
	uint16_t mqtt_port = env.mqtt_port;

	memset(&env, 0, sizeof(env));
	env.mqtt_port = mqtt_port;
	/* not under /tmp: sandboxes have a private /tmp and must read the store */
	snprintf(env.dir, sizeof(env.dir), "/var/tmp/nemo-compat-XXXXXX");
	if (!mkdtemp(env.dir))
		return -1;
	chmod(env.dir, 0755);
	snprintf(path, sizeof(path), "%s/credentials", env.dir);
	if (test_write_text(path, "# uuid:key namespace\n" CRED " " CRED_NS "\n"))
		return -1;
	snprintf(env.config, sizeof(env.config), "%s/nemod.json", env.dir);
	snprintf(store, sizeof(store), "%s/store", env.dir);
	env.port = test_free_port();
	return write_config(env.config, store, env.port, extra);
}

static int env_setup_with(const char *extra)
{
	env.mqtt_port = 0;
	if (env_prepare(extra))
		return -1;
	return start_nemod();
}

static int env_setup(void)
{
	return env_setup_with("");
}

static int env_teardown(void)
{
	char cmd[128];

	if (env.running)
		test_proc_stop(&env.nemod, 10000);
	env.running = false;
	if (env.broker_running)
		test_proc_stop(&env.broker, 5000);
	env.broker_running = false;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", env.dir);
	if (!strncmp(env.dir, "/var/tmp/nemo-compat-", 21) && system(cmd) != 0)
		printf("\n  could not remove %s\n", env.dir);
	return 0;
}

/* Run argv to its end (at most timeout_ms); its output into *out (static). Returns the code. */
static int run(char *const argv[], int timeout_ms, const char **out)
{
	struct test_proc p;
	int rc;

	*out = "";
	if (test_proc_start(&p, argv))
		return -1;
	rc = test_proc_wait(&p, timeout_ms);
	if (rc == -ETIMEDOUT)
		rc = test_proc_stop(&p, 1000);
	*out = test_proc_output(&p);
	return rc;
}

/* ---- OpenWhisk: the npm client, as a user would point it at nemod ------------------------------ */

static void test_openwhisk_npm_flow(void)
{
	static const char *const steps[] = {
		"OK create ",
		"OK create-exists 409",
		"OK list ",
		"OK get python:3 5000",
		"OK invoke-result hello nemo 42",
		"OK invoke-record ",
		"OK invoke-async ",
		"OK result",
		"OK logs ",
		"OK activations-list 2",
		"OK update 7000 hi nemo",
		"OK namespaces " CRED_NS,
		"OK triggers 501",
		"OK delete",
		"OK all",
	};
	char script[512], module[512], apihost[64];
	char *argv[] = {"/usr/bin/node", script, NULL};
	const char *out;
	struct stat st;
	int rc;

	snprintf(script, sizeof(script), "%s/tests/openwhisk/flow.js", nemo_test_srcdir());
	snprintf(module, sizeof(module), "%s/tests/openwhisk/node_modules/openwhisk/package.json",
		 nemo_test_srcdir());
	if (access("/usr/bin/node", X_OK) || stat(module, &st)) {
		nemo_test_skip("node or the npm openwhisk client is missing: run make deps");
		return;
	}
	snprintf(apihost, sizeof(apihost), "http://127.0.0.1:%u", (unsigned)env.port);
	setenv("NEMO_APIHOST", apihost, 1);
	setenv("NEMO_API_KEY", CRED, 1);
	setenv("NEMO_NS", CRED_NS, 1);
	setenv("NEMO_WORKDIR", env.dir, 1);
	rc = run(argv, 120000, &out);
	if (rc != 0)
		printf("\n  node flow.js exited %d:\n%s\n  nemod:\n%s\n", rc, out,
		       test_proc_output(&env.nemod));
	CU_ASSERT_EQUAL(rc, 0);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (!strstr(out, steps[i]))
			printf("\n  missing step '%s'\n", steps[i]);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, steps[i]));
	}
}

NEMO_SUITE(openwhisk_client, env_setup, env_teardown,
	   {"the npm openwhisk client runs a whole session", test_openwhisk_npm_flow});

static void test_c_function_logs(void);
static void test_native_action_logs(void);

/* ---- OpenFaaS: curl, as faas-cli calls the gateway ------------------------------------------- */

/* curl with `args`; the body into *body (static), the status code returned. */
static int curl(const char *const *args, const char **body)
{
	char *argv[32];
	const char *out;
	static char buf[65536];
	char *nl;
	int n = 0, rc;

	argv[n++] = "/usr/bin/curl";
	argv[n++] = "-sS";
	argv[n++] = "-w";
	argv[n++] = "\n%{http_code}";
	argv[n++] = "--max-time";
	argv[n++] = "30";
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	rc = run(argv, 35000, &out);
	snprintf(buf, sizeof(buf), "%s", out);
	nl = strrchr(buf, '\n');
	*body = buf;
	if (rc != 0 || !nl) {
		printf("\n  curl exited %d: %s\n", rc, buf);
		return -1;
	}
	*nl = '\0';
	return atoi(nl + 1);
}

static void url_of(char *buf, size_t len, const char *path)
{
	snprintf(buf, len, "http://127.0.0.1:%u%s", (unsigned)env.port, path);
}

/* PUT an OpenWhisk python:3 action whose code is `code` (JSON-escaped); returns the status. */
static int put_python_action(const char *name, const char *code)
{
	char url[256], path[128], *doc;
	const char *body;
	int st;

	snprintf(path, sizeof(path), "/api/v1/namespaces/_/actions/%s", name);
	url_of(url, sizeof(url), path);
	if (asprintf(&doc, "{\"exec\":{\"kind\":\"python:3\",\"code\":\"%s\"}}", code) < 0)
		return -1;
	st = curl((const char *[]){"-u", CRED, "-X", "PUT", url, "-H",
				   "Content-Type: application/json", "-d", doc, NULL},
		  &body);
	free(doc);
	return st;
}

/* A loopback listener for X-Callback-Url: accepts one POST and keeps its body. */
struct callback_sink {
	int fd;
	uint16_t port;
	pthread_t thread;
	char got[8192];
};

static void *callback_main(void *arg)
{
	struct callback_sink *cb = arg;
	struct pollfd p = {.fd = cb->fd, .events = POLLIN};
	size_t used = 0;
	int c;

	if (poll(&p, 1, 20000) <= 0)
		return NULL;
	c = accept(cb->fd, NULL, NULL);
	if (c < 0)
		return NULL;
	for (;;) {
		struct pollfd q = {.fd = c, .events = POLLIN};
		char *hdr_end, *cl;
		ssize_t n;

		if (poll(&q, 1, 5000) <= 0)
			break;
		n = recv(c, cb->got + used, sizeof(cb->got) - used - 1, 0);
		if (n <= 0)
			break;
		used += (size_t)n;
		cb->got[used] = '\0';
		hdr_end = strstr(cb->got, "\r\n\r\n");
		cl = strcasestr(cb->got, "Content-Length:");
		if (hdr_end && cl &&
		    used >= (size_t)(hdr_end + 4 - cb->got) + strtoul(cl + 15, NULL, 10))
			break;
	}
	(void)!write(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 57);
	close(c);
	return NULL;
}

static int callback_start(struct callback_sink *cb)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);

	memset(cb, 0, sizeof(*cb));
	cb->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cb->fd < 0 || bind(cb->fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(cb->fd, 4) ||
	    getsockname(cb->fd, (struct sockaddr *)&sin, &sl))
		return -1;
	cb->port = ntohs(sin.sin_port);
	return pthread_create(&cb->thread, NULL, callback_main, cb);
}

static void callback_stop(struct callback_sink *cb)
{
	pthread_join(cb->thread, NULL);
	close(cb->fd);
}

/* A python web function: it answers what it saw of the HTTP call. */
#define WEB_FN                                                                             \
	"def main(args):\\n"                                                               \
	"    h = args.get('__ow_headers', {})\\n"                                          \
	"    return {'method': args.get('__ow_method'), 'path': args.get('__ow_path'),\\n" \
	"            'query': args.get('__ow_query'), 'x_test': h.get('x-test'),\\n"       \
	"            'ctype': h.get('content-type'), 'value': args.get('value')}\\n"

static void test_openfaas_curl_flow(void)
{
	char url[256], cb_url[128], cb_hdr[160], scale_url[256];
	const char *body;
	struct callback_sink cb;
	cJSON *j;
	int st;

	/* deploy through the native/OpenWhisk route (OpenFaaS deploys images: 501 names it) */
	CU_ASSERT_EQUAL_FATAL(put_python_action("web", WEB_FN), 200);
	url_of(url, sizeof(url), "/system/functions");
	st = curl(
		(const char *[]){"-u", CRED, "-X", "POST", url, "-d", "{\"service\":\"x\"}", NULL},
		&body);
	CU_ASSERT_EQUAL(st, 501);
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "/api/v1/namespaces/_/actions/NAME"));

	/* any method, a sub-path, the query and the headers reach the function */
	url_of(url, sizeof(url), "/function/web/orders/42?verbose=1&x=y");
	st = curl((const char *[]){"-X", "PATCH", url, "-H", "X-Test: yes", "-H",
				   "Content-Type: application/json", "-d", "{\"value\":7}", NULL},
		  &body);
	CU_ASSERT_EQUAL(st, 200);
	j = cJSON_Parse(body);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "method")), "PATCH");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "path")), "/orders/42");
	CU_ASSERT_PTR_NOT_NULL(
		strstr(cJSON_GetStringValue(cJSON_GetObjectItem(j, "query")), "verbose=1"));
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "x_test")), "yes");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "ctype")),
			       "application/json");
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "value")), 7);
	cJSON_Delete(j);

	/* async: 202 with X-Call-Id now, the result POSTed to the callback when done */
	CU_ASSERT_EQUAL_FATAL(callback_start(&cb), 0);
	snprintf(cb_url, sizeof(cb_url), "http://127.0.0.1:%u/done", (unsigned)cb.port);
	snprintf(cb_hdr, sizeof(cb_hdr), "X-Callback-Url: %s", cb_url);
	url_of(url, sizeof(url), "/async-function/web");
	st = curl((const char *[]){"-i", "-X", "POST", url, "-H", cb_hdr, "-d", "{\"value\":99}",
				   NULL},
		  &body);
	CU_ASSERT_EQUAL(st, 202);
	CU_ASSERT_PTR_NOT_NULL(strcasestr(body, "X-Call-Id: "));
	callback_stop(&cb);
	CU_ASSERT_PTR_NOT_NULL(strstr(cb.got, "POST /done "));
	/* OpenFaaS's callback headers: the call's id and the function's status */
	CU_ASSERT_PTR_NOT_NULL(strcasestr(cb.got, "X-Call-Id: "));
	CU_ASSERT_PTR_NOT_NULL(strcasestr(cb.got, "X-Function-Status: 200"));
	CU_ASSERT_PTR_NOT_NULL(strstr(cb.got, "\"value\": 99"));
	if (!strstr(cb.got, "\"value\": 99"))
		printf("\n  callback got: '%s'\n", cb.got);

	/* the system routes need Basic auth; list, describe, scale, info, delete */
	url_of(url, sizeof(url), "/system/functions");
	CU_ASSERT_EQUAL(curl((const char *[]){url, NULL}, &body), 401);
	CU_ASSERT_EQUAL(curl((const char *[]){"-u", CRED, url, NULL}, &body), 200);
	j = cJSON_Parse(body);
	CU_ASSERT_EQUAL(cJSON_GetArraySize(j), 1);
	CU_ASSERT_STRING_EQUAL(
		cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "name")), "web");
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(
				cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "invocationCount")),
			2);
	cJSON_Delete(j);
	url_of(scale_url, sizeof(scale_url), "/system/scale-function/web");
	st = curl((const char *[]){"-u", CRED, "-X", "POST", scale_url, "-d",
				   "{\"serviceName\":\"web\",\"replicas\":3}", NULL},
		  &body);
	CU_ASSERT_EQUAL(st, 202);
	url_of(url, sizeof(url), "/system/function/web");
	CU_ASSERT_EQUAL(curl((const char *[]){"-u", CRED, url, NULL}, &body), 200);
	j = cJSON_Parse(body);
	/* replicas become pre-warmed instances: three idle, besides any warm one */
	CU_ASSERT_TRUE(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "availableReplicas")) >= 3);
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "prewarm")), 3);
	cJSON_Delete(j);
	url_of(url, sizeof(url), "/system/info");
	CU_ASSERT_EQUAL(curl((const char *[]){"-u", CRED, url, NULL}, &body), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"provider\":\"nemo\""));
	url_of(url, sizeof(url), "/system/functions");
	st = curl((const char *[]){"-u", CRED, "-X", "DELETE", url, "-d",
				   "{\"functionName\":\"web\"}", NULL},
		  &body);
	CU_ASSERT_EQUAL(st, 200);
	url_of(url, sizeof(url), "/system/function/web");
	CU_ASSERT_EQUAL(curl((const char *[]){"-u", CRED, url, NULL}, &body), 404);
}

/* A main(dict) function that answers with its own status, headers and body. */
#define WEBRESP_FN                                                                       \
	"def main(args):\\n"                                                             \
	"    if args.get('bad'):\\n"                                                     \
	"        return {'statusCode': 42, 'body': 'x'}\\n"                              \
	"    return {'statusCode': 201, 'headers': {'X-Custom': 'yes', 'Content-Type': " \
	"'text/csv'}, 'body': 'a,b\\\\n'}\\n"

static void test_openfaas_web_response(void)
{
	char url[256];
	const char *body;
	int st;

	CU_ASSERT_EQUAL_FATAL(put_python_action("webresp", WEBRESP_FN), 200);
	/* the function's status, headers and body are the reply; nemod adds the call's id */
	url_of(url, sizeof(url), "/function/webresp");
	st = curl((const char *[]){"-i", "-X", "POST", url, "-d", "{}", NULL}, &body);
	CU_ASSERT_EQUAL(st, 201);
	CU_ASSERT_PTR_NOT_NULL(strcasestr(body, "\r\nX-Custom: yes\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strcasestr(body, "\r\nContent-Type: text/csv\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strcasestr(body, "\r\nX-Call-Id: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "\r\n\r\na,b\n"));
	/* a status that is not one is the function's error, named */
	st = curl((const char *[]){"-X", "POST", url, "-d", "{\"bad\":1}", NULL}, &body);
	CU_ASSERT_EQUAL(st, 502);
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "statusCode"));
	/* a plain dict is a plain JSON result, as before */
	url_of(url, sizeof(url), "/api/v1/namespaces/_/actions/webresp?blocking=true&result=true");
	st = curl((const char *[]){"-u", CRED, "-X", "POST", url, "-d", "{}", NULL}, &body);
	CU_ASSERT_EQUAL(st, 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"statusCode\":201"));
}

#define SLOW_FN                   \
	"import time\\n"          \
	"def main(args):\\n"      \
	"    time.sleep(0.25)\\n" \
	"    return {'slept': 1}\\n"

/* The value of response header `key` in curl -i output, or -1. */
static double header_seconds(const char *resp, const char *key)
{
	char pat[64];
	const char *h;

	snprintf(pat, sizeof(pat), "\r\n%s: ", key);
	h = strcasestr(resp, pat);
	return h ? strtod(h + strlen(pat), NULL) : -1;
}

static void test_openfaas_duration_header(void)
{
	char url[256];
	const char *body;
	double secs;
	int st;

	CU_ASSERT_EQUAL_FATAL(put_python_action("slow", SLOW_FN), 200);
	/* the function's own time, as OpenFaaS's watchdog gives it: here its 250 ms sleep */
	url_of(url, sizeof(url), "/function/slow");
	st = curl((const char *[]){"-i", "-X", "POST", url, "-d", "{}", NULL}, &body);
	CU_ASSERT_EQUAL(st, 200);
	secs = header_seconds(body, "X-Duration-Seconds");
	printf("\n  X-Duration-Seconds of a 250 ms sleep: %.6f\n", secs);
	CU_ASSERT(secs >= 0.25 && secs < 10.0);
	/* the same on OpenWhisk's blocking route, beside the activation id */
	url_of(url, sizeof(url), "/api/v1/namespaces/_/actions/slow?blocking=true&result=true");
	st = curl((const char *[]){"-i", "-u", CRED, "-X", "POST", url, "-d", "{}", NULL}, &body);
	CU_ASSERT_EQUAL(st, 200);
	secs = header_seconds(body, "X-Duration-Seconds");
	CU_ASSERT(secs >= 0.25 && secs < 10.0);
	/* an async call answers before the function runs: no duration to give */
	url_of(url, sizeof(url), "/async-function/slow");
	st = curl((const char *[]){"-i", "-X", "POST", url, "-d", "{}", NULL}, &body);
	CU_ASSERT_EQUAL(st, 202);
	CU_ASSERT_PTR_NULL(strcasestr(body, "X-Duration-Seconds"));
}

NEMO_SUITE(openfaas_curl, env_setup, env_teardown,
	   {"curl runs faas-cli's calls: invoke, async callback, list, scale, info, delete",
	    test_openfaas_curl_flow},
	   {"X-Duration-Seconds gives the function's own time on /function and OpenWhisk's "
	    "blocking route",
	    test_openfaas_duration_header},
	   {"a main(dict) function sets its HTTP status, headers and body on /function",
	    test_openfaas_web_response},
	   {"a C function's stdout and stderr are its activation's logs", test_c_function_logs},
	   {"a native action's stderr is its activation's logs, stdout its result; NEMO_ env is "
	    "refused",
	    test_native_action_logs});

/* ---- metrics: promtool accepts what nemod serves ---------------------------------------------- */

/* promtool check metrics on `text`. Returns its exit code; its complaints are printed. */
static int promtool_check(const char *text)
{
	char file[128], out[160], cmd[400];
	int rc;

	snprintf(file, sizeof(file), "%s/metrics.txt", env.dir);
	snprintf(out, sizeof(out), "%s/promtool.out", env.dir);
	if (test_write_text(file, text))
		return -1;
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s 2>&1", file, out);
	rc = system(cmd);
	rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
	if (rc) {
		char *said = test_read_file(out, NULL);

		printf("\n  promtool exited %d:\n%s\n", rc, said ? said : "");
		free(said);
	}
	return rc;
}

static void test_promtool_live_metrics(void)
{
	struct sched_core_stats cores[2] = {
		{.cpu = 1,
		 .spare_cycles = 1000,
		 .total_cycles = 2000,
		 .spare_pred = 0.5,
		 .harvested_ns = 250000,
		 .harvest_ratio = 0.5,
		 .warm = 2,
		 .thread_cap = 4,
		 .sleep_floor_us = 365},
		{.cpu = 2},
	};
	char url[256], buf[16384];
	const char *body;
	int n;

	if (access("/usr/bin/promtool", X_OK)) {
		nemo_test_skip("promtool is missing (Debian's prometheus package): run make deps");
		return;
	}
	/* something to count: a function, an invocation, a 404 */
	url_of(url, sizeof(url), "/api/v1/namespaces/_/actions/py");
	CU_ASSERT_EQUAL(curl((const char *[]){"-u", CRED, "-X", "PUT", url, "-d",
					      "{\"exec\":{\"kind\":\"python:3\",\"code\":\"def "
					      "main(a):\\n    return a\\n\"}}",
					      NULL},
			     &body),
			200);
	url_of(url, sizeof(url), "/function/py");
	CU_ASSERT_EQUAL(curl((const char *[]){"-X", "POST", url, "-d", "{}", NULL}, &body), 200);
	url_of(url, sizeof(url), "/function/nope");
	CU_ASSERT_EQUAL(curl((const char *[]){"-X", "POST", url, NULL}, &body), 404);
	url_of(url, sizeof(url), "/metrics");
	CU_ASSERT_EQUAL_FATAL(curl((const char *[]){"-u", CRED, url, NULL}, &body), 200);
	/* the exact code, base units, and the build */
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "nemo_http_responses_total{code=\"404\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "nemo_build_info{version=\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "nemo_harvest_enabled 1\n"));
	CU_ASSERT_EQUAL(promtool_check(body), 0);
	/* the per-core families with samples, as a harvesting nemod serves them */
	n = sched_metrics_format(cores, 2, buf, sizeof(buf));
	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "nemo_core_harvested_seconds{cpu=\"1\"} 0.000250000\n"));
	CU_ASSERT_EQUAL(promtool_check(buf), 0);
}

static int harvest_setup(void)
{
	/* harvesting on, on a channel no NF publishes: the harvest families are served */
	char extra[256];

	snprintf(extra, sizeof(extra),
		 "\"harvest\": {\"enabled\": true, \"channels\": [\"compat%d-none\"], "
		 "\"period_ms\": 2}",
		 getpid());
	return env_setup_with(extra);
}

NEMO_SUITE(metrics_promtool, harvest_setup, env_teardown,
	   {"promtool check metrics passes on a harvesting nemod", test_promtool_live_metrics});

/* ---- MQTT: correlation at QoS 0 and 1 against a real mosquitto -------------------------------- */

struct mq_client {
	struct mosquitto *mosq;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int n;
	struct mq_msg {
		char topic[128];
		char payload[1024];
		char corr[64];
		int qos;
	} msgs[16];
};

static void mq_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
			  const mosquitto_property *props)
{
	struct mq_client *c = obj;
	void *corr = NULL;
	uint16_t corr_len = 0;

	(void)m;
	pthread_mutex_lock(&c->lock);
	if (c->n < 16) {
		struct mq_msg *k = &c->msgs[c->n++];

		snprintf(k->topic, sizeof(k->topic), "%s", msg->topic);
		snprintf(k->payload, sizeof(k->payload), "%.*s", msg->payloadlen,
			 (const char *)msg->payload);
		k->qos = msg->qos;
		if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr,
						   &corr_len, false))
			snprintf(k->corr, sizeof(k->corr), "%.*s", (int)corr_len, (char *)corr);
		free(corr);
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static int mq_connect(struct mq_client *c, const char *sub)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	mosquitto_lib_init();
	c->mosq = mosquitto_new(NULL, true, c);
	if (!c->mosq)
		return -1;
	mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_message_v5_callback_set(c->mosq, mq_on_message);
	if (mosquitto_connect(c->mosq, "127.0.0.1", env.mqtt_port, 30) ||
	    mosquitto_subscribe(c->mosq, NULL, sub, 1) || mosquitto_loop_start(c->mosq))
		return -1;
	test_msleep(200); /* the subscription lands */
	return 0;
}

static void mq_close(struct mq_client *c)
{
	mosquitto_disconnect(c->mosq);
	mosquitto_loop_stop(c->mosq, true);
	mosquitto_destroy(c->mosq);
	mosquitto_lib_cleanup();
}

/* Wait for message number `i` (0-based). Returns it or NULL after ms. */
static struct mq_msg *mq_wait(struct mq_client *c, int i, int ms)
{
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->lock);
	while (c->n <= i)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &dl))
			break;
	pthread_mutex_unlock(&c->lock);
	return c->n > i ? &c->msgs[i] : NULL;
}

static int start_broker(void)
{
	int rc = test_broker_start(&env.broker, env.dir, env.mqtt_port);

	env.broker_running = rc == 0 || rc == -ETIMEDOUT; /* started: the teardown stops it */
	return rc ? -1 : 0;
}

static int mqtt_setup(void)
{
	char extra[256];

	if (access("/usr/sbin/mosquitto", X_OK))
		return -1;
	env.mqtt_port = test_free_port();
	snprintf(extra, sizeof(extra),
		 "\"mqtt\": {\"enabled\": true, \"port\": %u, \"client_id\": \"nemod-compat-%d\"}",
		 (unsigned)env.mqtt_port, getpid());
	if (env_prepare(extra) || start_broker())
		return -1;
	return start_nemod();
}

static void deploy_echo(const char *name, const char *topics, const char *reply, int qos)
{
	char url[256], so[512], *b64, *bytes, *body;
	const char *out;
	size_t len;

	snprintf(so, sizeof(so), "%s/build/functions/echo.so", nemo_test_srcdir());
	bytes = test_read_file(so, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
	b64 = nemo_base64_encode((const uint8_t *)bytes, len);
	free(bytes);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b64);
	body = malloc(strlen(b64) + 512);
	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	snprintf(body, strlen(b64) + 512,
		 "{\"runtime\":\"c\",\"mqtt\":{\"topics\":[\"%s\"],\"reply_topic\":\"%s\","
		 "\"qos\":%d},\"code\":{\"base64\":\"%s\"}}",
		 topics, reply, qos, b64);
	free(b64);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/v1/namespaces/_/actions/%s",
		 (unsigned)env.port, name);
	CU_ASSERT_EQUAL(
		curl((const char *[]){"-u", CRED, "-X", "PUT", url, "-d", body, NULL}, &out), 200);
	free(body);
}

static void test_mqtt_correlation(void)
{
	struct mq_client c;
	mosquitto_property *props = NULL;
	struct mq_msg *m;
	cJSON *env_json;
	char topic[64];

	deploy_echo("mq0", "cmp/q0/+", "cmp/out/q0", 0);
	deploy_echo("mq1", "cmp/q1/+", "cmp/out/q1", 1);
	test_msleep(300); /* nemod subscribes, at each function's qos */
	CU_ASSERT_TRUE(test_proc_output_has(&env.nemod, "mqtt subscribed topic=cmp/q0/+ qos=0"));
	CU_ASSERT_TRUE(test_proc_output_has(&env.nemod, "mqtt subscribed topic=cmp/q1/+ qos=1"));
	CU_ASSERT_EQUAL_FATAL(mq_connect(&c, "cmp/#"), 0);

	/* MQTT 5: the reply goes to the response topic with the correlation data, at the qos */
	for (int qos = 0; qos <= 1; qos++) {
		char corr[32], resp[64];

		snprintf(corr, sizeof(corr), "corr-%d-%d", qos, getpid());
		snprintf(resp, sizeof(resp), "cmp/resp/%d", qos);
		snprintf(topic, sizeof(topic), "cmp/q%d/dev1", qos);
		mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, resp);
		mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr,
					      (uint16_t)strlen(corr));
		CU_ASSERT_EQUAL(mosquitto_publish_v5(c.mosq, NULL, topic, 9, "{\"v\":123}", qos,
						     false, props),
				MOSQ_ERR_SUCCESS);
		mosquitto_property_free_all(&props);
		/* what arrives: the request itself (we subscribe to cmp/#), then the reply */
		for (int i = 0; i < 16; i++) {
			m = mq_wait(&c, i, 10000);
			if (!m || !strcmp(m->topic, resp))
				break;
		}
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		CU_ASSERT_STRING_EQUAL(m->topic, resp);
		CU_ASSERT_STRING_EQUAL(m->corr, corr);
		CU_ASSERT_STRING_EQUAL(m->payload, "{\"v\":123}");
		CU_ASSERT_EQUAL(m->qos, qos);
		pthread_mutex_lock(&c.lock);
		c.n = 0;
		pthread_mutex_unlock(&c.lock);
	}
	/* MQTT 3 style (no properties): an envelope with the activation id and correlation_id */
	for (int qos = 0; qos <= 1; qos++) {
		char out_topic[32];

		const char *req = "{\"correlation_id\":\"abc\",\"x\":1}";

		snprintf(topic, sizeof(topic), "cmp/q%d/dev2", qos);
		snprintf(out_topic, sizeof(out_topic), "cmp/out/q%d", qos);
		CU_ASSERT_EQUAL(mosquitto_publish_v5(c.mosq, NULL, topic, (int)strlen(req), req,
						     qos, false, NULL),
				MOSQ_ERR_SUCCESS);
		for (int i = 0; i < 16; i++) {
			m = mq_wait(&c, i, 10000);
			if (!m || !strcmp(m->topic, out_topic))
				break;
		}
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		CU_ASSERT_EQUAL(m->qos, qos);
		env_json = cJSON_Parse(m->payload);
		CU_ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItem(env_json, "activationId")) &&
			       strlen(cJSON_GetStringValue(
				       cJSON_GetObjectItem(env_json, "activationId"))) == 32);
		CU_ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItem(env_json, "correlation_id")) &&
			       !strcmp(cJSON_GetStringValue(
					       cJSON_GetObjectItem(env_json, "correlation_id")),
				       "abc"));
		CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(
					cJSON_GetObjectItem(env_json, "result"), "x")),
				1);
		cJSON_Delete(env_json);
		pthread_mutex_lock(&c.lock);
		c.n = 0;
		pthread_mutex_unlock(&c.lock);
	}
	mq_close(&c);
}

/* ---- many QoS 1 requests at once: each answered once, with its own correlation ---- */

#define MANY 200

struct many {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int replies[MANY]; /* replies per correlation "m<i>" */
	int wrong;	   /* replies whose payload is not their request's */
	int total, acked;  /* replies; PUBACKs of our requests */
};

static void many_on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
			    const mosquitto_property *props)
{
	struct many *c = obj;
	void *corr = NULL;
	uint16_t len = 0;
	char buf[16], want[32];
	int i = -1;

	(void)m;
	if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &len, false) &&
	    len > 1 && len < sizeof(buf) && ((char *)corr)[0] == 'm') {
		snprintf(buf, sizeof(buf), "%.*s", (int)len - 1, (char *)corr + 1);
		i = atoi(buf);
	}
	free(corr);
	pthread_mutex_lock(&c->lock);
	c->total++;
	if (i >= 0 && i < MANY) {
		c->replies[i]++;
		snprintf(want, sizeof(want), "{\"i\":%d}", i);
		if (msg->payloadlen != (int)strlen(want) ||
		    memcmp(msg->payload, want, strlen(want)))
			c->wrong++;
	} else {
		c->wrong++;
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void many_on_publish(struct mosquitto *m, void *obj, int mid)
{
	struct many *c = obj;

	(void)m;
	(void)mid;
	pthread_mutex_lock(&c->lock);
	c->acked++;
	pthread_mutex_unlock(&c->lock);
}

/* nemo_journal_syncs_total, or -1. */
static long journal_syncs(void)
{
	const char *body, *p;
	char url[128];

	url_of(url, sizeof(url), "/metrics");
	if (curl((const char *[]){"-u", CRED, url, NULL}, &body) != 200)
		return -1;
	p = strstr(body, "\nnemo_journal_syncs_total ");
	return p ? atol(p + strlen("\nnemo_journal_syncs_total ")) : -1;
}

static void test_mqtt_many_at_once(void)
{
	struct many c = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	struct mosquitto *mosq;
	struct timespec dl;
	long syncs0, syncs1;
	int once = 0;

	deploy_echo("mqmany", "cmp/many/in", "cmp/many/out", 1);
	test_msleep(300);
	syncs0 = journal_syncs();
	CU_ASSERT_FATAL(syncs0 >= 0);
	mosquitto_lib_init();
	mosq = mosquitto_new(NULL, true, &c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(mosq);
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_max_inflight_messages_set(mosq, 0); /* all of them in flight at once */
	mosquitto_message_v5_callback_set(mosq, many_on_message);
	mosquitto_publish_callback_set(mosq, many_on_publish);
	CU_ASSERT_FATAL(mosquitto_connect(mosq, "127.0.0.1", env.mqtt_port, 30) == 0 &&
			mosquitto_subscribe(mosq, NULL, "cmp/many/resp", 1) == 0 &&
			mosquitto_loop_start(mosq) == 0);
	test_msleep(200); /* the subscription lands */
	for (int i = 0; i < MANY; i++) {
		mosquitto_property *props = NULL;
		char corr[16], body[32];

		snprintf(corr, sizeof(corr), "m%d", i);
		snprintf(body, sizeof(body), "{\"i\":%d}", i);
		mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, "cmp/many/resp");
		mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr,
					      (uint16_t)strlen(corr));
		CU_ASSERT_EQUAL(mosquitto_publish_v5(mosq, NULL, "cmp/many/in", (int)strlen(body),
						     body, 1, false, props),
				MOSQ_ERR_SUCCESS);
		mosquitto_property_free_all(&props);
	}
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 30;
	pthread_mutex_lock(&c.lock);
	while (c.total < MANY)
		if (pthread_cond_timedwait(&c.cond, &c.lock, &dl))
			break;
	pthread_mutex_unlock(&c.lock);
	test_msleep(500); /* a reply sent twice would come now */
	mosquitto_disconnect(mosq);
	mosquitto_loop_stop(mosq, true);
	mosquitto_destroy(mosq);
	mosquitto_lib_cleanup();
	syncs1 = journal_syncs();
	for (int i = 0; i < MANY; i++)
		once += c.replies[i] == 1;
	if (once != MANY || c.total != MANY || c.wrong)
		printf("\n  %d of %d answered once; %d replies, %d not their request's\n", once,
		       MANY, c.total, c.wrong);
	CU_ASSERT_EQUAL(once, MANY);
	CU_ASSERT_EQUAL(c.total, MANY);
	CU_ASSERT_EQUAL(c.wrong, 0);
	CU_ASSERT_EQUAL(c.acked, MANY); /* the broker acknowledged every request */
	/* requests that arrive together share their records' fdatasync (one each before) */
	printf("\n  %d requests at once: %ld journal fdatasyncs\n", MANY, syncs1 - syncs0);
	CU_ASSERT(syncs1 - syncs0 > 0 && syncs1 - syncs0 <= MANY / 2);
}

NEMO_SUITE(mqtt_correlation, mqtt_setup, env_teardown,
	   {"replies carry the request's correlation at QoS 0 and 1", test_mqtt_correlation},
	   {"200 QoS 1 requests at once: each answered once with its correlation; their "
	    "records share fdatasyncs",
	    test_mqtt_many_at_once});

/* ---- the daemon's life: one nemod per store and port, systemd notify, --version --------------- */

/* Start a second nemod on `config`; it must exit 1 and name `pid_needle`. */
static void expect_refused(const char *config, const char *needle)
{
	char bin[512];
	char *argv[] = {bin, "--config", (char *)config, NULL};
	struct test_proc p;
	int rc;

	snprintf(bin, sizeof(bin), "%s/nemod", nemo_test_bindir());
	CU_ASSERT_EQUAL_FATAL(test_proc_start(&p, argv), 0);
	rc = test_proc_wait(&p, 15000);
	if (rc == -ETIMEDOUT)
		test_proc_stop(&p, 5000);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_TRUE(test_proc_output_has(&p, needle));
}

static void test_one_nemod_per_store_and_port(void)
{
	char needle[64], config[160], store[128];

	/* the same config: same store, same port */
	snprintf(needle, sizeof(needle), "(pid %d holds", (int)env.nemod.pid);
	expect_refused(env.config, needle);
	/* another store and cgroup_root, the same port */
	snprintf(config, sizeof(config), "%s/second.json", env.dir);
	snprintf(store, sizeof(store), "%s/store2", env.dir);
	cgroup_tag = "-b";
	CU_ASSERT_EQUAL_FATAL(write_config(config, store, env.port, ""), 0);
	cgroup_tag = "";
	snprintf(needle, sizeof(needle), "is in use by pid %d", (int)env.nemod.pid);
	expect_refused(config, needle);
	/* another store and port, the same cgroup_root: it would take the first one's sandbox
	 * cgroups for a crash's leftovers */
	snprintf(store, sizeof(store), "%s/store4", env.dir);
	CU_ASSERT_EQUAL_FATAL(write_config(config, store, test_free_port(), ""), 0);
	snprintf(needle, sizeof(needle), "(pid %d holds /run/nemo/cgroup-", (int)env.nemod.pid);
	expect_refused(config, needle);
	/* the first one serves on */
	CU_ASSERT_TRUE(test_nemod_healthy(&env.nemod, env.port, 2000));
}

static void test_version_everywhere(void)
{
	static const char *const progs[] = {"nemod", "nemoctl", "nemo-sbx-runtime"};

	for (int i = 0; i < 3; i++) {
		char bin[512], want[96];
		char *argv[] = {bin, "--version", NULL};
		const char *out;

		snprintf(bin, sizeof(bin), "%s/%s", nemo_test_bindir(), progs[i]);
		snprintf(want, sizeof(want), "%s %s\n", progs[i], NEMO_VERSION);
		CU_ASSERT_EQUAL(run(argv, 5000, &out), 0);
		if (strcmp(out, want))
			printf("\n  %s --version: '%s'\n", progs[i], out);
		CU_ASSERT_STRING_EQUAL(out, want);
	}
}

/* systemd's side of sd_notify: a datagram socket named by NOTIFY_SOCKET. */
static bool notified(int fd, const char *what, int ms)
{
	char buf[512];

	for (int waited = 0; waited < ms; waited += 50) {
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

		if (n > 0) {
			buf[n] = '\0';
			if (strstr(buf, what))
				return true;
			continue;
		}
		test_msleep(50);
	}
	return false;
}

static void test_sd_notify(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char config[sizeof(env.config)], store[128];
	int fd;

	/* a nemod of its own, on another store and port, told where systemd listens */
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify.sock", env.dir);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(fd >= 0 && bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	if (env.running)
		test_proc_stop(&env.nemod, 10000);
	env.running = false;
	snprintf(config, sizeof(config), "%s/notify.json", env.dir);
	snprintf(store, sizeof(store), "%s/store3", env.dir);
	env.port = test_free_port();
	CU_ASSERT_EQUAL_FATAL(write_config(config, store, env.port, ""), 0);
	snprintf(env.config, sizeof(env.config), "%s", config);
	setenv("NOTIFY_SOCKET", sun.sun_path, 1);
	CU_ASSERT_EQUAL(start_nemod(), 0);
	unsetenv("NOTIFY_SOCKET");
	CU_ASSERT_TRUE(notified(fd, "READY=1", 10000));
	kill(env.nemod.pid, SIGTERM);
	CU_ASSERT_TRUE(notified(fd, "STOPPING=1", 10000));
	CU_ASSERT_EQUAL(test_proc_wait(&env.nemod, 15000), 0);
	env.running = false;
	close(fd);
}

NEMO_SUITE(nemod_life, env_setup, env_teardown,
	   {"a second nemod on the same store or port exits 1 naming the holder",
	    test_one_nemod_per_store_and_port},
	   {"nemod, nemoctl and nemo-sbx-runtime answer --version", test_version_everywhere},
	   {"nemod tells systemd READY=1 once it serves, STOPPING=1 on SIGTERM", test_sd_notify});

/* ---- logs of a C function: its stdout and stderr lines, per activation ---------------------- */

static void test_c_function_logs(void)
{
	char src[160], so[160], cmd[512], url[256], *bytes, *b64, *body;
	const char *out;
	size_t len;
	cJSON *j, *logs;
	int st, lines = 0;

	snprintf(src, sizeof(src), "%s/printer.c", env.dir);
	snprintf(so, sizeof(so), "%s/printer.so", env.dir);
	CU_ASSERT_EQUAL_FATAL(
		test_write_text(
			src,
			"#include <stdio.h>\n#include <string.h>\n"
			"#include \"nemo/function.h\"\n"
			"int handle(const struct nemo_request *req, struct nemo_response *resp)\n"
			"{\n\tprintf(\"got %zu bytes\\n\", req->len);\n"
			"\tfprintf(stderr, \"a warning\\n\");\n"
			"\tmemcpy(resp->data, req->data, req->len);\n"
			"\tresp->len = req->len;\n\treturn 0;\n}\n"),
		0);
	snprintf(cmd, sizeof(cmd), "cc -shared -fPIC -I%s/include -o %s %s", nemo_test_srcdir(), so,
		 src);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	bytes = test_read_file(so, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
	b64 = nemo_base64_encode((const uint8_t *)bytes, len);
	free(bytes);
	body = malloc(strlen(b64) + 256);
	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	sprintf(body,
		"{\"exec\":{\"kind\":\"nemo:c\",\"binary\":true,\"code\":\"%s\"},"
		"\"limits\":{\"logs\":1}}",
		b64);
	free(b64);
	url_of(url, sizeof(url), "/api/v1/namespaces/_/actions/printer");
	st = curl((const char *[]){"-u", CRED, "-X", "PUT", url, "-d", body, NULL}, &out);
	free(body);
	CU_ASSERT_EQUAL_FATAL(st, 200);
	url_of(url, sizeof(url), "/api/v1/namespaces/_/actions/printer?blocking=true");
	CU_ASSERT_EQUAL_FATAL(
		curl((const char *[]){"-u", CRED, "-X", "POST", url, "-d", "{\"abc\":1}", NULL},
		     &out),
		200);
	j = cJSON_Parse(out);
	/* the response is the function's bytes alone; the lines are the record's logs */
	CU_ASSERT_EQUAL(
		cJSON_GetNumberValue(cJSON_GetObjectItem(
			cJSON_GetObjectItem(cJSON_GetObjectItem(j, "response"), "result"), "abc")),
		1);
	logs = cJSON_GetObjectItem(j, "logs");
	for (int i = 0; i < cJSON_GetArraySize(logs); i++) {
		const char *l = cJSON_GetStringValue(cJSON_GetArrayItem(logs, i));

		lines += l && strstr(l, "Z stdout: ") &&
			 (strstr(l, "got 9 bytes") || strstr(l, "a warning"));
	}
	if (lines != 2)
		printf("\n  record: %s\n", out);
	CU_ASSERT_EQUAL(lines, 2);
	cJSON_Delete(j);
}

/* ---- a native (exec) action: stdout is the result, stderr the activation's logs ------------- */

static void test_native_action_logs(void)
{
	const char *script = "{\"exec\":{\"kind\":\"native\",\"code\":\"#!/bin/sh\\ncat\\n"
			     "echo first warning >&2\\necho second warning >&2\\n\"},"
			     "\"limits\":{\"logs\":1}}";
	char url[256];
	const char *out;
	cJSON *j, *logs;
	int lines = 0, n;

	url_of(url, sizeof(url), "/api/v1/namespaces/_/actions/shout");
	CU_ASSERT_EQUAL_FATAL(
		curl((const char *[]){"-u", CRED, "-X", "PUT", url, "-d", script, NULL}, &out),
		200);
	url_of(url, sizeof(url), "/api/v1/namespaces/_/actions/shout?blocking=true");
	CU_ASSERT_EQUAL_FATAL(
		curl((const char *[]){"-u", CRED, "-X", "POST", url, "-d", "{\"abc\":2}", NULL},
		     &out),
		200);
	j = cJSON_Parse(out);
	CU_ASSERT_EQUAL(
		cJSON_GetNumberValue(cJSON_GetObjectItem(
			cJSON_GetObjectItem(cJSON_GetObjectItem(j, "response"), "result"), "abc")),
		2);
	logs = cJSON_GetObjectItem(j, "logs");
	n = cJSON_GetArraySize(logs);
	for (int i = 0; i < n; i++) {
		const char *l = cJSON_GetStringValue(cJSON_GetArrayItem(logs, i));

		lines += l && strstr(l, "Z stderr: ") && strstr(l, i ? "second" : "first");
	}
	if (lines != 2 || n != 2)
		printf("\n  record: %s\n", out);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(lines, 2);
	cJSON_Delete(j);

	/* what nemo tells the runtime is not the function's to set (a native spec with env) */
	url_of(url, sizeof(url), "/api/v1/namespaces/_/actions/sneaky");
	CU_ASSERT_EQUAL(curl((const char *[]){"-u", CRED, "-X", "PUT", url, "-d",
					      "{\"runtime\":\"exec\",\"code\":{\"base64\":"
					      "\"IyEvYmluL3NoCmNhdAo=\"},"
					      "\"env\":{\"NEMO_LOG_LIMIT\":\"9\"}}",
					      NULL},
			     &out),
			400);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "NEMO_LOG_LIMIT"));
}
