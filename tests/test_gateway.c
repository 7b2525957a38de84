/* test_gateway.c - nemod as a user meets it: real HTTP against a real daemon and sandboxes. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nemo/base64.h"
#include "nemo/gateway.h"
#include "nemo/version.h"
#include "proc.h"
#include "test.h"

#define TOKEN "gwtest-token-0123456789abcdef"
#define ACT   "/api/v1/namespaces/_/actions"
#define ACTV  "/api/v1/namespaces/_/activations"

/* One nemod (and maybe one broker) per suite; everything lives under dir. */
struct gw_env {
	char dir[64];
	char token[96]; /* dir/token: the credentials file */
	char config[128];
	char fndir[512];
	uint16_t port;
	uint16_t mqtt_port;
	bool mqtt;
	bool zygotes; /* sandbox.zygotes, and two sandbox cores instead of one */
	struct test_proc nemod;
	bool running;
	struct test_proc broker;
	bool broker_running;
};

static struct gw_env env;

static int http(const char *method, const char *path, const char *token, const char *body,
		struct gw_http_response *r)
{
	int rc = gw_http_request("127.0.0.1", env.port, method, path, token, body,
				 body ? strlen(body) : 0, 30000, r);

	if (rc) {
		printf("\n  %s %s: %s\n", method, path, strerror(-rc));
		r->status = -1;
		r->body = strdup("");
	}
	return r->status;
}

/* Status code of a request, and the body must contain `needle` (when not NULL). */
static int expect(const char *method, const char *path, const char *token, const char *body,
		  int status, const char *needle)
{
	struct gw_http_response r;
	int got = http(method, path, token, body, &r);

	if (got != status || (needle && !strstr(r.body, needle)))
		printf("\n  %s %s: got %d '%.300s', wanted %d with '%s'\n", method, path, got,
		       r.body, status, needle ? needle : "");
	CU_ASSERT_EQUAL(got, status);
	if (needle)
		CU_ASSERT_PTR_NOT_NULL(strstr(r.body, needle));
	gw_http_response_release(&r);
	return got;
}

static int start_nemod(void)
{
	int rc = test_nemod_start(&env.nemod, env.config, env.port, 10000);

	env.running = rc == 0 || rc == -ETIMEDOUT; /* started: the teardown stops it */
	return rc ? -1 : 0;
}

static int stop_nemod(void)
{
	int rc = 0;

	if (env.running)
		rc = test_proc_stop(&env.nemod, 15000);
	env.running = false;
	return rc;
}

static int write_config(void)
{
	char text[4096];

	snprintf(text, sizeof(text),
		 "{\n"
		 "  \"listen\": \"127.0.0.1:%u\",\n"
		 "  \"token_file\": \"%s/token\",\n"
		 "  \"store_dir\": \"%s/store\",\n"
		 "  \"code_roots\": [\"%s\", \"%s/code\"],\n"
		 "  \"limits\": {\"max_body_bytes\": 65536, \"max_inflight_per_function\": 2,\n"
		 "             \"max_inflight\": 3, \"blocking_timeout_ms\": 4000,\n"
		 "             \"activations_kept\": 64,\n"
		 "             \"connection_timeout_s\": 2, \"request_timeout_ms\": 1000},\n"
		 "  \"cores\": {\"sandbox\": %s},\n"
		 "  \"async_workers\": 2,\n"
		 "  \"drain_timeout_ms\": 5000,\n"
		 "  \"cgroup_root\": \"nemo-gwtest-%d\",\n"
		 "  \"sandbox\": {\"zygotes\": %s},\n"
		 "  \"mqtt\": {\"enabled\": %s, \"port\": %u, \"client_id\": \"nemod-test-%d\",\n"
		 "           \"reconnect_min_s\": 1, \"reconnect_max_s\": 2}\n"
		 "}\n",
		 (unsigned)env.port, env.dir, env.dir, env.fndir, env.dir,
		 env.zygotes ? "[0, 1]" : "[0]", getpid(), env.zygotes ? "true" : "false",
		 env.mqtt ? "true" : "false", env.mqtt_port ? (unsigned)env.mqtt_port : 1883u,
		 getpid());
	snprintf(env.token, sizeof(env.token), "%s/token", env.dir);
	if (test_write_text(env.token, TOKEN "\n"))
		return -1;
	return test_write_text(env.config, text);
}

static int env_setup(bool mqtt)
{
	char path[256];

	memset(&env, 0, sizeof(env));
	/* not under /tmp: sandboxes have a private /tmp and must read the store */
	snprintf(env.dir, sizeof(env.dir), "/var/tmp/nemo-gwtest-XXXXXX");
	if (!mkdtemp(env.dir))
		return -1;
	chmod(env.dir, 0755);
	snprintf(path, sizeof(path), "%s/code", env.dir);
	mkdir(path, 0755);
	snprintf(env.config, sizeof(env.config), "%s/nemod.json", env.dir);
	snprintf(env.fndir, sizeof(env.fndir), "%s/build/functions", nemo_test_srcdir());
	env.port = test_free_port();
	env.mqtt = mqtt;
	if (mqtt)
		env.mqtt_port = test_free_port();
	if (write_config())
		return -1;
	return 0;
}

static int env_teardown(void)
{
	char cmd[128];

	stop_nemod();
	if (env.broker_running)
		test_proc_stop(&env.broker, 5000);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", env.dir);
	if (!strncmp(env.dir, "/var/tmp/nemo-gwtest-", 21) && system(cmd) != 0)
		printf("\n  could not remove %s\n", env.dir);
	return 0;
}

static int api_setup(void)
{
	if (env_setup(false))
		return -1;
	return start_nemod();
}

/* A deploy body for a sample function: code inline as base64. */
static char *deploy_body(const char *so, const char *handler, const char *extra)
{
	char path[600], *bytes, *b64, *body;
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", env.fndir, so);
	bytes = test_read_file(path, &len);
	if (!bytes)
		return NULL;
	b64 = nemo_base64_encode((const uint8_t *)bytes, len);
	free(bytes);
	body = malloc(strlen(b64) + 512);
	sprintf(body, "{\"runtime\":\"c\",\"handler\":\"%s\"%s%s,\"code\":{\"base64\":\"%s\"}}",
		handler, extra ? "," : "", extra ? extra : "", b64);
	free(b64);
	return body;
}

static void deploy(const char *name, const char *so, const char *handler, const char *extra)
{
	char path[256];
	char *body = deploy_body(so, handler, extra);

	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	snprintf(path, sizeof(path), ACT "/%s?overwrite=true", name);
	expect("PUT", path, TOKEN, body, 200, name);
	free(body);
}

/* Read until the peer closes or ms pass. Returns bytes read, -1 on timeout. */
static int read_until_close(int fd, char *buf, size_t cap, int ms)
{
	size_t used = 0;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, ms) <= 0)
			return -1;
		n = recv(fd, buf + used, cap - used - 1, 0);
		if (n <= 0) {
			buf[used] = '\0';
			return (int)used;
		}
		used += (size_t)n;
	}
}

static int raw_connect(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(env.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- the API round trip ---------------------------------------------------------------------- */

static void test_healthz_needs_no_token(void)
{
	expect("GET", "/healthz", NULL, NULL, 200, "ok");
}

static void test_auth(void)
{
	char buf[4096];
	int fd, n;

	expect("GET", ACT, NULL, NULL, 401, "missing token");
	expect("GET", ACT, "wrong-token-0123456789", NULL, 401, "invalid token");
	expect("GET", "/metrics", NULL, NULL, 401, "missing token");
	/* OpenFaaS's function routes are open by default (openfaas.function_auth) */
	expect("POST", "/function/echo", NULL, "{}", 404, "not deployed");
	expect("GET", "/system/functions", "x", NULL, 401, "invalid token");
	/* Basic with wrong credentials is refused, another scheme by name */
	fd = raw_connect();
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	n = snprintf(buf, sizeof(buf),
		     "GET " ACT " HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dXNlcjpwYXNz\r\n"
		     "Connection: close\r\n\r\n");
	CU_ASSERT_EQUAL(send(fd, buf, (size_t)n, 0), n);
	n = read_until_close(fd, buf, sizeof(buf), 5000);
	CU_ASSERT_TRUE(n > 0 && strstr(buf, " 401 ") && strstr(buf, "invalid credentials"));
	close(fd);
	fd = raw_connect();
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	n = snprintf(buf, sizeof(buf),
		     "GET " ACT " HTTP/1.1\r\nHost: x\r\nAuthorization: Digest x=1\r\n"
		     "Connection: close\r\n\r\n");
	CU_ASSERT_EQUAL(send(fd, buf, (size_t)n, 0), n);
	n = read_until_close(fd, buf, sizeof(buf), 5000);
	CU_ASSERT_TRUE(n > 0 && strstr(buf, " 401 ") && strstr(buf, "unsupported"));
	close(fd);
	expect("GET", ACT, TOKEN, NULL, 200, "[");
}

static void test_round_trip(void)
{
	struct gw_http_response r;
	cJSON *j, *id;
	char path[256];
	bool done = false;

	deploy("echo", "echo.so", "handle", NULL);
	expect("GET", ACT "/echo", TOKEN, NULL, 200, "\"runtime\":\"c\"");
	expect("GET", ACT, TOKEN, NULL, 200, "\"name\":\"echo\"");
	/* redeploy without overwrite is a conflict, with it a new version */
	{
		char *body = deploy_body("echo.so", "handle", NULL);

		expect("PUT", ACT "/echo", TOKEN, body, 409, "overwrite=true");
		free(body);
	}
	expect("POST", ACT "/echo?blocking=true&result=true", TOKEN, "{\"hello\":1}", 200,
	       "{\"hello\":1}");
	/* the whole activation record: id, status, start, end, start path, phases, result */
	CU_ASSERT_EQUAL(http("POST", ACT "/echo?blocking=true", TOKEN, "{\"n\":2}", &r), 200);
	j = cJSON_Parse(r.body);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "status")), "success");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(j, "startPath")), "warm");
	CU_ASSERT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(j, "start")));
	CU_ASSERT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(j, "end")));
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "phases"), "run_us"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"result\":{\"n\":2}"));
	cJSON_Delete(j);
	gw_http_response_release(&r);

	/* async: 202 with an id, then the activation reaches success */
	CU_ASSERT_EQUAL(http("POST", ACT "/echo?blocking=false", TOKEN, "{\"a\":3}", &r), 202);
	j = cJSON_Parse(r.body);
	id = cJSON_GetObjectItem(j, "activationId");
	CU_ASSERT_TRUE_FATAL(cJSON_IsString(id));
	snprintf(path, sizeof(path), ACTV "/%s", id->valuestring);
	cJSON_Delete(j);
	gw_http_response_release(&r);
	for (int i = 0; i < 200 && !done; i++) {
		http("GET", path, TOKEN, NULL, &r);
		done = strstr(r.body, "\"status\":\"success\"") != NULL;
		gw_http_response_release(&r);
		if (!done)
			test_msleep(20);
	}
	CU_ASSERT_TRUE(done);
	expect("GET", ACTV "?name=echo&limit=5", TOKEN, NULL, 200, "\"name\":\"echo\"");

	/* instances made at deploy serve the first requests: the pre-warmed start path */
	deploy("pw", "echo.so", "handle", "\"prewarm\": 1");
	expect("POST", ACT "/pw?blocking=true", TOKEN, "{}", 200, "\"startPath\":\"prewarmed\"");
	expect("POST", ACT "/pw?blocking=true", TOKEN, "{}", 200, "\"startPath\":\"warm\"");
	expect("GET", "/metrics", TOKEN, NULL, 200,
	       "nemo_starts_total{namespace=\"nemo\",function=\"pw\",path=\"prewarmed\"} 1\n");
	expect("PUT", ACT "/pw2", TOKEN,
	       "{\"runtime\":\"c\",\"prewarm\":-1,\"code\":{\"base64\":\"QUJD\"}}", 400, "prewarm");

	/* the OpenFaaS aliases */
	expect("POST", "/function/echo", TOKEN, "raw bytes", 200, "raw bytes");
	expect("POST", "/async-function/echo", TOKEN, "x", 202, "activationId");
	expect("GET", "/system/functions", TOKEN, NULL, 200, "\"invocationCount\"");
	expect("GET", "/api/v1/status", TOKEN, NULL, 200, "\"warm_pool\"");

	/* delete: then it is gone everywhere */
	deploy("gone", "echo.so", "handle", NULL);
	expect("DELETE", ACT "/gone", TOKEN, NULL, 200, "\"deleted\":true");
	expect("GET", ACT "/gone", TOKEN, NULL, 404, "not deployed");
	expect("POST", "/function/gone", TOKEN, "{}", 404, "not deployed");
	expect("DELETE", ACT "/gone", TOKEN, NULL, 404, "not deployed");
	expect("GET", ACTV "/00000000000000000000000000000000", TOKEN, NULL, 404, "not known");
}

static void test_code_by_path(void)
{
	char body[1024];

	snprintf(body, sizeof(body), "{\"runtime\":\"c\",\"code\":{\"path\":\"%s/echo.so\"}}",
		 env.fndir);
	expect("PUT", ACT "/echopath?overwrite=true", TOKEN, body, 200, "echopath");
	expect("POST", "/function/echopath", TOKEN, "by path", 200, "by path");
}

/* ---- bad input ------------------------------------------------------------------------------- */

static void test_malformed_json(void)
{
	expect("PUT", ACT "/f1", TOKEN, "{\"runtime\": \"c\", ", 400, "malformed JSON");
	expect("PUT", ACT "/f1", TOKEN, "[1,2]", 400, "JSON object");
	expect("PUT", ACT "/f1", TOKEN, "", 400, "empty body");
	expect("GET", ACT "/f1", TOKEN, NULL, 404, "not deployed");
}

static void test_spec_wrong_types(void)
{
	expect("PUT", ACT "/f2", TOKEN, "{\"runtime\": 5, \"code\": {\"base64\": \"AAAA\"}}", 400,
	       "runtime");
	expect("PUT", ACT "/f2", TOKEN,
	       "{\"runtime\": \"c\", \"memory_mb\": \"lots\", \"code\": {\"base64\": \"AAAA\"}}",
	       400, "memory_mb");
	expect("PUT", ACT "/f2", TOKEN,
	       "{\"runtime\": \"c\", \"timeout_ms\": 0, \"code\": {\"base64\": \"AAAA\"}}", 400,
	       "timeout_ms");
	expect("PUT", ACT "/f2", TOKEN,
	       "{\"runtime\": \"c\", \"colour\": 1, \"code\": {\"base64\": \"AAAA\"}}", 400,
	       "colour");
	expect("PUT", ACT "/f2", TOKEN, "{\"runtime\": \"c\"}", 400, "code");
	expect("PUT", ACT "/f2", TOKEN, "{\"runtime\": \"c\", \"code\": \"/bin/true\"}", 400,
	       "code");
	expect("PUT", ACT "/f2", TOKEN,
	       "{\"name\": \"other\", \"runtime\": \"c\", \"code\": {\"base64\": \"AAAA\"}}", 400,
	       "name");
	expect("PUT", ACT "/f2", TOKEN,
	       "{\"runtime\": \"c\", \"mqtt\": {\"topics\": 3}, \"code\": {\"base64\": \"AAAA\"}}",
	       400, "mqtt.topics");
	/* nothing half-deployed is left behind */
	expect("GET", ACT "/f2", TOKEN, NULL, 404, "not deployed");
}

static void test_bad_base64(void)
{
	expect("PUT", ACT "/f3", TOKEN, "{\"runtime\": \"c\", \"code\": {\"base64\": \"@@@!\"}}",
	       400, "code.base64");
	expect("PUT", ACT "/f3", TOKEN, "{\"runtime\": \"c\", \"code\": {\"base64\": \"QUJD=\"}}",
	       400, "code.base64");
	expect("PUT", ACT "/f3", TOKEN, "{\"runtime\": \"c\", \"code\": {\"base64\": 12}}", 400,
	       "code.base64");
	expect("PUT", ACT "/f3", TOKEN,
	       "{\"runtime\": \"c\", \"code\": {\"base64\": \"QUJD\", \"path\": \"/x\"}}", 400,
	       "exactly one");
}

/* A shared object without the handler it names is refused at deploy, before any call. */
static void test_missing_handler_refused(void)
{
	char *body = deploy_body("echo.so", "no_such_handler", NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	expect("PUT", ACT "/f5", TOKEN, body, 400, "handler 'no_such_handler' not found");
	free(body);
	expect("GET", ACT "/f5", TOKEN, NULL, 404, "not deployed");
}

static void test_oversized_body(void)
{
	size_t n = 100000;
	char *big = malloc(n + 1);

	memset(big, 'a', n);
	big[n] = '\0';
	expect("PUT", ACT "/f4", TOKEN, big, 413, "max_body_bytes");
	expect("POST", "/function/echo", TOKEN, big, 413, "max_body_bytes");
	free(big);
	/* under the daemon's limit but over the function's own max_payload_bytes */
	deploy("small", "echo.so", "handle", "\"max_payload_bytes\": 16");
	expect("POST", "/function/small", TOKEN, "0123456789abcdefghijklmnop", 413,
	       "max_payload_bytes");
	expect("GET", "/healthz", NULL, NULL, 200, "ok");
}

static void test_unknown_routes_and_methods(void)
{
	expect("GET", "/nope", TOKEN, NULL, 404, "no route");
	/* OpenWhisk routes nemo does not implement answer 501 naming what is missing */
	expect("GET", "/api/v1/namespaces/_/triggers", TOKEN, NULL, 501, "triggers");
	expect("PUT", "/api/v1/namespaces/_/rules/r1", TOKEN, "{}", 501, "rules");
	expect("GET", "/api/v1/namespaces/_/packages", TOKEN, NULL, 501, "packages");
	expect("GET", "/api/v1/namespaces/guest/actions", TOKEN, NULL, 404, "namespace");
	expect("PATCH", ACT "/echo", TOKEN, "{}", 405, "not allowed");
	expect("DELETE", "/healthz", NULL, NULL, 405, "not allowed");
	expect("POST", ACT, TOKEN, "{}", 405, "not allowed");
	expect("PUT", "/metrics", TOKEN, "{}", 405, "not allowed");
	expect("PATCH", "/system/functions", TOKEN, NULL, 405, "not allowed");
	expect("POST", "/system/functions", TOKEN, "{}", 501, "/api/v1/namespaces/_/actions");
}

static void test_path_traversal(void)
{
	char body[1024], link[256];

	expect("GET", ACT "/..%2F..%2Fetc%2Fpasswd", TOKEN, NULL, 400, "name");
	expect("PUT", ACT "/..", TOKEN, "{}", 400, "name");
	expect("PUT", ACT "/a.b", TOKEN, "{}", 400, "name");
	expect("POST", "/function/..%2Fx", TOKEN, "{}", 400, "name");
	expect("GET", ACTV "?name=../x", TOKEN, NULL, 400, "name");
	/* a code path that walks out of the allowed roots, by .. and by symlink */
	snprintf(body, sizeof(body),
		 "{\"runtime\":\"c\",\"code\":{\"path\":\"%s/../../../../../etc/passwd\"}}",
		 env.fndir);
	expect("PUT", ACT "/f5", TOKEN, body, 400, "outside the allowed code roots");
	snprintf(link, sizeof(link), "%s/code/evil.so", env.dir);
	CU_ASSERT_EQUAL(symlink("/etc/shadow", link), 0);
	snprintf(body, sizeof(body), "{\"runtime\":\"c\",\"code\":{\"path\":\"%s\"}}", link);
	expect("PUT", ACT "/f5", TOKEN, body, 400, "outside the allowed code roots");
	expect("PUT", ACT "/f5", TOKEN, "{\"runtime\":\"c\",\"code\":{\"path\":\"relative.so\"}}",
	       400, "code.path");
	expect("PUT", ACT "/f5", TOKEN,
	       "{\"runtime\":\"c\",\"code\":{\"base64\":\"QUJD\",\"filename\":\"../x.so\"}}", 400,
	       "code.filename");
	expect("GET", ACT "/f5", TOKEN, NULL, 404, "not deployed");
}

static void test_slow_client(void)
{
	char buf[4096], req[512];
	int stalled[4], trickle, n;

	/* clients that send half a request and stop: they hold only their own connection */
	for (int i = 0; i < 4; i++) {
		stalled[i] = raw_connect();
		CU_ASSERT_TRUE_FATAL(stalled[i] >= 0);
		CU_ASSERT_TRUE(send(stalled[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n", 32, 0) ==
			       32);
	}
	/* everyone else is served meanwhile */
	for (int i = 0; i < 5; i++) {
		expect("GET", "/healthz", NULL, NULL, 200, "ok");
		expect("POST", "/function/echo", TOKEN, "still here", 200, "still here");
	}
	/* and the stalled ones are cut at connection_timeout_s (2 s here) */
	for (int i = 0; i < 4; i++) {
		n = read_until_close(stalled[i], buf, sizeof(buf), 6000);
		CU_ASSERT_TRUE(n >= 0);
		close(stalled[i]);
	}
	/* a body trickled slower than request_timeout_ms (1 s) gets 408 and says why */
	trickle = raw_connect();
	CU_ASSERT_TRUE_FATAL(trickle >= 0);
	n = snprintf(req, sizeof(req),
		     "POST /function/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " TOKEN
		     "\r\nContent-Length: 6\r\nConnection: close\r\n\r\n");
	CU_ASSERT_EQUAL(send(trickle, req, (size_t)n, 0), n);
	for (int i = 0; i < 6; i++) {
		test_msleep(300);
		CU_ASSERT_EQUAL(send(trickle, "x", 1, MSG_NOSIGNAL), 1);
		if (i == 2)
			expect("POST", "/function/echo", TOKEN, "meanwhile", 200, "meanwhile");
	}
	n = read_until_close(trickle, buf, sizeof(buf), 5000);
	CU_ASSERT_TRUE(n > 0);
	if (n > 0) {
		CU_ASSERT_PTR_NOT_NULL(strstr(buf, " 408 "));
		CU_ASSERT_PTR_NOT_NULL(strstr(buf, "request_timeout_ms"));
	}
	close(trickle);
	expect("GET", "/healthz", NULL, NULL, 200, "ok");
}

/* ---- function failures and limits ------------------------------------------------------------ */

static void test_function_errors_are_502(void)
{
	deploy("fail", "test-probe.so", "fail", NULL);
	expect("POST", "/function/fail", TOKEN, "{}", 502, "bad input");
	expect("POST", ACT "/fail?blocking=true&result=true", TOKEN, "{}", 502,
	       "application_error");
	deploy("spin", "test-hostile.so", "spin", "\"timeout_ms\": 200");
	expect("POST", "/function/spin", TOKEN, "{}", 502, "timeout");
	deploy("crash", "test-hostile.so", "crash", NULL);
	expect("POST", "/function/crash", TOKEN, "{}", 502, "crashed");
	/* the record says so too */
	expect("POST", ACT "/crash?blocking=true", TOKEN, "{}", 502, "\"success\":false");
	expect("GET", "/healthz", NULL, NULL, 200, "ok");
}

struct par_req {
	const char *path;
	const char *body;
	int status;
	char reply[256];
};

static void *par_main(void *arg)
{
	struct par_req *p = arg;
	struct gw_http_response r;

	p->status = http("POST", p->path, TOKEN, p->body, &r);
	snprintf(p->reply, sizeof(p->reply), "%s", r.body);
	gw_http_response_release(&r);
	return NULL;
}

static void test_concurrency_limit_429(void)
{
	struct par_req reqs[6];
	pthread_t th[6];
	int ok = 0, limited = 0;

	/* concurrency 1 and max_inflight_per_function 2: one runs, one waits, the rest 429 */
	deploy("nap", "test-probe.so", "nap", "\"timeout_ms\": 3000");
	expect("POST", "/function/nap", TOKEN, "1", 200, "calls=");
	for (int i = 0; i < 6; i++) {
		reqs[i] = (struct par_req){.path = "/function/nap", .body = "400"};
		pthread_create(&th[i], NULL, par_main, &reqs[i]);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		ok += reqs[i].status == 200;
		limited += reqs[i].status == 429;
	}
	CU_ASSERT_EQUAL(ok + limited, 6);
	CU_ASSERT_TRUE(ok >= 2);
	CU_ASSERT_TRUE(limited >= 1);
	expect("GET", "/metrics", TOKEN, NULL, 200, "nemo_rejected_total");
}

static void test_overall_limit_429(void)
{
	struct par_req reqs[8];
	pthread_t th[8];
	int ok = 0, overall = 0;

	/* two functions, max_inflight 3 for the whole daemon: some are refused daemon-wide */
	deploy("napa", "test-probe.so", "nap", "\"timeout_ms\": 3000, \"concurrency\": 2");
	deploy("napb", "test-probe.so", "nap", "\"timeout_ms\": 3000, \"concurrency\": 2");
	for (int i = 0; i < 8; i++) {
		reqs[i] = (struct par_req){.path = i % 2 ? "/function/napa" : "/function/napb",
					   .body = "400"};
		pthread_create(&th[i], NULL, par_main, &reqs[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ok += reqs[i].status == 200;
		overall += reqs[i].status == 429 && strstr(reqs[i].reply, "nemod is at its limit");
	}
	CU_ASSERT_TRUE(ok >= 1 && ok <= 4);
	CU_ASSERT_TRUE(overall >= 1);
	expect("POST", "/function/napa", TOKEN, "1", 200, "calls=");
}

static const char *activation_status(const char *id)
{
	static char status[64];
	struct gw_http_response r;
	char path[640];
	cJSON *j;

	snprintf(path, sizeof(path), ACTV "/%s", id);
	status[0] = '\0';
	if (http("GET", path, TOKEN, NULL, &r) == 200) {
		j = cJSON_Parse(r.body);
		snprintf(status, sizeof(status), "%s",
			 cJSON_GetStringValue(cJSON_GetObjectItem(j, "status")));
		cJSON_Delete(j);
	}
	gw_http_response_release(&r);
	return status;
}

static void test_blocking_gives_up_with_202(void)
{
	struct gw_http_response r;
	const char *st = "";
	char id[40];
	cJSON *j;

	/* a caller waits blocking_timeout_ms (4 s here), then gets the id to poll */
	deploy("longnap", "test-probe.so", "nap", "\"timeout_ms\": 10000");
	expect("POST", ACT "/longnap?blocking=true", TOKEN, "10", 200, "\"status\":\"success\"");
	CU_ASSERT_EQUAL(http("POST", ACT "/longnap?blocking=true", TOKEN, "5000", &r), 202);
	j = cJSON_Parse(r.body);
	snprintf(id, sizeof(id), "%s",
		 cJSON_GetStringValue(cJSON_GetObjectItem(j, "activationId")));
	cJSON_Delete(j);
	gw_http_response_release(&r);
	CU_ASSERT_EQUAL(strlen(id), 32);
	for (int k = 0; k < 200; k++) {
		st = activation_status(id);
		if (strcmp(st, "accepted") && strcmp(st, "running"))
			break;
		test_msleep(20);
	}
	CU_ASSERT_STRING_EQUAL(st, "success");
}

static void async_ids(const char *path, const char *body, int n, char ids[][40])
{
	struct gw_http_response r;

	for (int i = 0; i < n; i++) {
		cJSON *j;

		CU_ASSERT_EQUAL(http("POST", path, TOKEN, body, &r), 202);
		j = cJSON_Parse(r.body);
		snprintf(ids[i], 40, "%s",
			 cJSON_GetStringValue(cJSON_GetObjectItem(j, "activationId")));
		cJSON_Delete(j);
		gw_http_response_release(&r);
	}
}

static const char *wait_terminal(const char *id, int ms)
{
	const char *st = "";

	for (int waited = 0; waited < ms; waited += 20) {
		st = activation_status(id);
		if (strcmp(st, "accepted") && strcmp(st, "running"))
			break;
		test_msleep(20);
	}
	return st;
}

/* OpenWhisk's timeout on a blocking call: past it, 202 with the id; count=true counts. */
static void test_blocking_timeout_and_count(void)
{
	struct gw_http_response r;
	char id[40], path[200];
	cJSON *j;
	int before;

	deploy("tnap", "test-probe.so", "nap", "\"timeout_ms\": 3000");
	expect("POST", ACT "/tnap?blocking=true&timeout=2000", TOKEN, "10", 200,
	       "\"status\":\"success\"");
	CU_ASSERT_EQUAL(http("POST", ACT "/tnap?blocking=true&timeout=300", TOKEN, "1200", &r),
			202);
	j = cJSON_Parse(r.body);
	snprintf(id, sizeof(id), "%s",
		 cJSON_GetStringValue(cJSON_GetObjectItem(j, "activationId"))
			 ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "activationId"))
			 : "");
	cJSON_Delete(j);
	gw_http_response_release(&r);
	CU_ASSERT_EQUAL_FATAL(strlen(id), 32);
	CU_ASSERT_STRING_EQUAL(wait_terminal(id, 5000), "success");
	expect("POST", ACT "/tnap?blocking=true&timeout=0", TOKEN, "1", 400, "timeout");
	expect("POST", ACT "/tnap?blocking=true&timeout=x", TOKEN, "1", 400, "timeout");
	/* count=true: how many, not which */
	CU_ASSERT_EQUAL(http("GET", ACTV "?name=tnap&count=true", TOKEN, NULL, &r), 200);
	j = cJSON_Parse(r.body);
	before = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "activations"));
	cJSON_Delete(j);
	gw_http_response_release(&r);
	CU_ASSERT_EQUAL(before, 2);
	snprintf(path, sizeof(path), ACT "?count=true");
	CU_ASSERT_EQUAL(http("GET", path, TOKEN, NULL, &r), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "{\"actions\":"));
	gw_http_response_release(&r);
}

static void test_long_activation_does_not_block_the_table(void)
{
	char id[1][40];
	int ok = 0;

	/* the table keeps 64 records here; one long activation must not stall the ring */
	deploy("long", "test-probe.so", "nap", "\"timeout_ms\": 3000");
	async_ids("/async-function/long", "1500", 1, id);
	for (int i = 0; i < 150; i++) {
		struct gw_http_response r;

		ok += http("POST", "/function/echo", TOKEN, "{}", &r) == 200;
		gw_http_response_release(&r);
	}
	CU_ASSERT_EQUAL(ok, 150);
	CU_ASSERT_STRING_EQUAL(wait_terminal(id[0], 5000), "success");
}

static void test_async_crash_reaches_terminal(void)
{
	char ids[8][40];
	struct gw_http_response r;

	deploy("acrash", "test-hostile.so", "crash", NULL);
	deploy("exit", "test-hostile.so", "exit_early", NULL);
	for (int i = 0; i < 8; i++) {
		cJSON *j;

		http("POST", i % 2 ? "/async-function/acrash" : "/async-function/exit", TOKEN, "{}",
		     &r);
		CU_ASSERT_EQUAL(r.status, 202);
		j = cJSON_Parse(r.body);
		snprintf(ids[i], sizeof(ids[i]), "%s",
			 cJSON_GetStringValue(cJSON_GetObjectItem(j, "activationId")));
		cJSON_Delete(j);
		gw_http_response_release(&r);
	}
	for (int i = 0; i < 8; i++) {
		const char *st = "";

		for (int k = 0; k < 300; k++) {
			st = activation_status(ids[i]);
			if (strcmp(st, "accepted") && strcmp(st, "running"))
				break;
			test_msleep(20);
		}
		if (strcmp(st, "crashed"))
			printf("\n  activation %s: %s\n", ids[i], st);
		CU_ASSERT_STRING_EQUAL(st, "crashed");
	}
	/* each ran once: the counters saw 4 crashes of each function, no more */
	CU_ASSERT_EQUAL(http("GET", "/metrics", TOKEN, NULL, &r), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(
		r.body,
		"nemo_invocations_total{namespace=\"nemo\",function=\"exit\",status=\"crashed\"} 4\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		r.body,
		"nemo_invocations_total{namespace=\"nemo\",function=\"acrash\",status=\"crashed\"} 4\n"));
	gw_http_response_release(&r);
}

static void test_metrics(void)
{
	struct gw_http_response r;
	char *line, *save = NULL;
	int samples = 0, bad = 0;

	deploy("counted", "echo.so", "handle", NULL);
	for (int i = 0; i < 5; i++)
		expect("POST", "/function/counted", TOKEN, "{}", 200, "{}");
	CU_ASSERT_EQUAL(http("GET", "/metrics", TOKEN, NULL, &r), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.content_type, "text/plain"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		r.body,
		"nemo_invocations_total{namespace=\"nemo\",function=\"counted\",status=\"success\"} 5\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		r.body,
		"nemo_starts_total{namespace=\"nemo\",function=\"counted\",path=\"cold\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(
		r.body,
		"nemo_starts_total{namespace=\"nemo\",function=\"counted\",path=\"warm\"} 4\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body,
				      "nemo_invocation_duration_seconds_count{namespace="
				      "\"nemo\",function=\"counted\",phase=\"total\"} 5\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "phase=\"run\",le=\"+Inf\"} "));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(r.body, "nemo_warm_pool_instances{namespace=\"nemo\",function=\"counted\","
			       "state=\"idle\"} 1\n"));
	/* every sample line is `name{labels} value` or `name value` with a number */
	for (line = strtok_r(r.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp, *end;

		if (line[0] == '#')
			continue;
		samples++;
		sp = strrchr(line, ' ');
		if (!sp || sp == line) {
			bad++;
			continue;
		}
		strtod(sp + 1, &end);
		if (*end || strspn(line, "abcdefghijklmnopqrstuvwxyz_") == 0)
			bad++;
	}
	CU_ASSERT_TRUE(samples > 20);
	CU_ASSERT_EQUAL(bad, 0);
	gw_http_response_release(&r);
}

/* ---- nemoctl --------------------------------------------------------------------------------- */

/* nemoctl against this suite's nemod; its exit code, and stdout+stderr into out. */
#define ctl(out, cap, ...) test_run_nemoctl(env.port, env.token, out, cap, __VA_ARGS__)

static void test_nemoctl(void)
{
	char out[16384], file[256];
	cJSON *j;
	int rc;

	rc = ctl(out, sizeof(out), "deploy ctlecho --code %s/echo.so", env.fndir);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "deployed ctlecho"));
	/* deploy never replaces silently: --overwrite does */
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "deploy ctlecho --code %s/echo.so", env.fndir), 5);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--overwrite"));
	CU_ASSERT_EQUAL(
		ctl(out, sizeof(out), "deploy ctlecho --overwrite --code %s/echo.so", env.fndir),
		0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "deployed ctlecho (version 0.0."));
	/* each command has its own help; every program its version */
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "deploy --help"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: nemoctl deploy NAME"));
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "logs --help"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: nemoctl logs NAME"));
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "--version"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "nemoctl " NEMO_VERSION "\n"));
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "invoke ctlecho '{\"arg\":1}'"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "{\"arg\":1}"));
	snprintf(file, sizeof(file), "%s/payload.json", env.dir);
	test_write_text(file, "{\"from\":\"file\"}");
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "invoke ctlecho -f %s", file), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "{\"from\":\"file\"}"));
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "invoke ctlecho - < %s", file), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "{\"from\":\"file\"}"));
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "list"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "ctlecho"));
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "status"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "idle"));
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "logs ctlecho"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "success"));
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "activations --limit 3"), 0);
	/* --json is JSON, for scripts */
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "--json list"), 0);
	j = cJSON_Parse(out);
	CU_ASSERT_TRUE(cJSON_IsArray(j));
	cJSON_Delete(j);
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "--json status"), 0);
	j = cJSON_Parse(out);
	CU_ASSERT_TRUE(cJSON_IsObject(j));
	cJSON_Delete(j);
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "--json invoke ctlecho '{}'"), 0);
	j = cJSON_Parse(out);
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItem(j, "activationId"));
	cJSON_Delete(j);
	/* exit codes mean something */
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "get nosuchfn"), 4);
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "invoke nosuchfn '{}'"), 4);
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "bogus-command x"), 1);
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "deploy x"), 1);
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "deploy bad.name --code %s/echo.so", env.fndir), 5);
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "--url http://127.0.0.1:1 list"), 2);
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "--token-file /dev/null list"), 3);
	deploy("ctlfail", "test-probe.so", "fail", NULL);
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "invoke ctlfail '{}'"), 6);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "bad input"));
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "delete ctlecho"), 0);
	CU_ASSERT_EQUAL(ctl(out, sizeof(out), "delete ctlecho"), 4);
}

NEMO_SUITE(gateway_api, api_setup, env_teardown,
	   {"healthz needs no token", test_healthz_needs_no_token},
	   {"bearer token on every other route", test_auth},
	   {"deploy, get, list, invoke, activations, delete", test_round_trip},
	   {"code by an allowed path", test_code_by_path},
	   {"malformed JSON is 400", test_malformed_json},
	   {"spec with wrong types is 400 naming the field", test_spec_wrong_types},
	   {"code that is not base64 is 400", test_bad_base64},
	   {"a .so without its handler is 400 at deploy", test_missing_handler_refused},
	   {"oversized bodies are 413", test_oversized_body},
	   {"unknown routes 404, methods 405", test_unknown_routes_and_methods},
	   {"path traversal in names and code paths is 400", test_path_traversal},
	   {"slow clients do not block others", test_slow_client},
	   {"function error, timeout, crash are 502", test_function_errors_are_502},
	   {"concurrency limits are 429", test_concurrency_limit_429},
	   {"the daemon-wide limit is 429", test_overall_limit_429},
	   {"async activations end even when sandboxes crash", test_async_crash_reaches_terminal},
	   {"a long activation does not block the table",
	    test_long_activation_does_not_block_the_table},
	   {"blocking gives up with 202 after blocking_timeout_ms",
	    test_blocking_gives_up_with_202},
	   {"OpenWhisk's timeout answers 202 with the id; count=true counts",
	    test_blocking_timeout_and_count},
	   {"metrics parse and count", test_metrics}, {"nemoctl", test_nemoctl});

/* ---- restart and drain ------------------------------------------------------------------------ */

static int restart_setup(void)
{
	return api_setup();
}

static void test_restart_keeps_functions(void)
{
	struct gw_http_response r;

	deploy("keep1", "echo.so", "handle", NULL);
	deploy("keep2", "test-probe.so", "nap", "\"timeout_ms\": 3000");
	deploy("dropped", "echo.so", "handle", NULL);
	expect("DELETE", ACT "/dropped", TOKEN, NULL, 200, "deleted");
	/* an in-flight invocation is drained, not cut, when SIGTERM arrives */
	CU_ASSERT_EQUAL(http("POST", "/async-function/keep2", TOKEN, "700", &r), 202);
	gw_http_response_release(&r);
	test_msleep(100);
	CU_ASSERT_EQUAL(stop_nemod(), 0);
	CU_ASSERT_TRUE(test_proc_output_has(&env.nemod, "drained cancelled=0"));
	CU_ASSERT_PTR_NULL(strstr(test_proc_output(&env.nemod), "level=err"));
	CU_ASSERT_EQUAL_FATAL(start_nemod(), 0);
	expect("GET", ACT "/keep1", TOKEN, NULL, 200, "keep1");
	expect("GET", ACT "/keep2", TOKEN, NULL, 200, "\"timeout_ms\":3000");
	expect("GET", ACT "/dropped", TOKEN, NULL, 404, "not deployed");
	expect("POST", "/function/keep1", TOKEN, "after restart", 200, "after restart");
	expect("POST", "/function/keep2", TOKEN, "1", 200, "calls=1");
	/* a redeploy after the restart gets a newer version than the stored one */
	deploy("keep1", "echo.so", "handle", NULL);
	expect("GET", ACT "/keep1", TOKEN, NULL, 200, "\"version\":\"0.0.3\"");
}

static void test_crash_loses_no_activation(void)
{
	char done[1][40], queued[3][40];

	deploy("slow", "test-probe.so", "nap", "\"timeout_ms\": 3000");
	async_ids("/async-function/slow", "5", 1, done);
	CU_ASSERT_STRING_EQUAL(wait_terminal(done[0], 5000), "success");
	/* one runs, two wait for the one instance; then nemod dies without a word */
	async_ids("/async-function/slow", "1500", 3, queued);
	test_msleep(400);
	CU_ASSERT_STRING_EQUAL(activation_status(queued[0]), "running");
	kill(env.nemod.pid, SIGKILL);
	CU_ASSERT_EQUAL(test_proc_wait(&env.nemod, 5000), 128 + SIGKILL);
	env.running = false;
	CU_ASSERT_EQUAL_FATAL(start_nemod(), 0);
	/* finished stays finished; started ends as interrupted (never run twice); the
	 * never-started run now (never lost) */
	CU_ASSERT_STRING_EQUAL(activation_status(done[0]), "success");
	CU_ASSERT_STRING_EQUAL(wait_terminal(queued[0], 5000), "interrupted");
	CU_ASSERT_STRING_EQUAL(wait_terminal(queued[1], 8000), "success");
	CU_ASSERT_STRING_EQUAL(wait_terminal(queued[2], 8000), "success");
	expect("GET", "/metrics", TOKEN, NULL, 200,
	       "nemo_invocations_total{namespace=\"nemo\",function=\"slow\",status=\"success\"} 2\n");
}

/* A loopback X-Callback-Url listener that takes every POST and counts them by X-Call-Id. */
struct cb_counter {
	int fd;
	uint16_t port;
	pthread_t thread;
	volatile int stop;
	pthread_mutex_t lock;
	int n;
	char ids[16][40];
	char bodies[16][256];
};

static void cb_take(struct cb_counter *cb, int c)
{
	char buf[4096], *hdr_end, *cl, *id;
	size_t used = 0;

	for (;;) {
		struct pollfd q = {.fd = c, .events = POLLIN};
		ssize_t n;

		if (poll(&q, 1, 5000) <= 0)
			break;
		n = recv(c, buf + used, sizeof(buf) - used - 1, 0);
		if (n <= 0)
			break;
		used += (size_t)n;
		buf[used] = '\0';
		hdr_end = strstr(buf, "\r\n\r\n");
		cl = strcasestr(buf, "Content-Length:");
		if (hdr_end && cl &&
		    used >= (size_t)(hdr_end + 4 - buf) + strtoul(cl + 15, NULL, 10))
			break;
	}
	(void)!write(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 57);
	id = strcasestr(buf, "X-Call-Id: ");
	hdr_end = strstr(buf, "\r\n\r\n");
	pthread_mutex_lock(&cb->lock);
	if (cb->n < 16) {
		snprintf(cb->ids[cb->n], 40, "%.32s", id ? id + 11 : "");
		snprintf(cb->bodies[cb->n], sizeof(cb->bodies[0]), "%s",
			 hdr_end ? hdr_end + 4 : "");
		cb->n++;
	}
	pthread_mutex_unlock(&cb->lock);
}

static void *cb_main(void *arg)
{
	struct cb_counter *cb = arg;

	while (!cb->stop) {
		struct pollfd p = {.fd = cb->fd, .events = POLLIN};
		int c;

		if (poll(&p, 1, 100) <= 0)
			continue;
		c = accept(cb->fd, NULL, NULL);
		if (c < 0)
			continue;
		cb_take(cb, c);
		close(c);
	}
	return NULL;
}

static int cb_start(struct cb_counter *cb)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sin);

	memset(cb, 0, sizeof(*cb));
	pthread_mutex_init(&cb->lock, NULL);
	cb->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cb->fd < 0 || bind(cb->fd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(cb->fd, 16) || getsockname(cb->fd, (struct sockaddr *)&sin, &sl))
		return -1;
	cb->port = ntohs(sin.sin_port);
	return pthread_create(&cb->thread, NULL, cb_main, cb);
}

static void cb_stop(struct cb_counter *cb)
{
	cb->stop = 1;
	pthread_join(cb->thread, NULL);
	close(cb->fd);
	pthread_mutex_destroy(&cb->lock);
}

/* How many POSTs carried X-Call-Id `id`. */
static int cb_count(struct cb_counter *cb, const char *id)
{
	int n = 0;

	pthread_mutex_lock(&cb->lock);
	for (int i = 0; i < cb->n; i++)
		n += !strcmp(cb->ids[i], id);
	pthread_mutex_unlock(&cb->lock);
	return n;
}

static void test_crash_keeps_callbacks(void)
{
	char ids[3][40], hdr[128];
	struct cb_counter cb;
	int total;

	deploy("cbslow", "test-probe.so", "nap", "\"timeout_ms\": 3000");
	CU_ASSERT_EQUAL_FATAL(cb_start(&cb), 0);
	snprintf(hdr, sizeof(hdr), "X-Callback-Url: http://127.0.0.1:%u/done\r\n",
		 (unsigned)cb.port);
	/* one runs (the function has one instance slot), two wait: all three with a callback */
	for (int i = 0; i < 3; i++) {
		struct gw_http_response r;
		cJSON *j;

		CU_ASSERT_EQUAL(gw_http_request_headers("127.0.0.1", env.port, "POST",
							"/async-function/cbslow", TOKEN, hdr,
							"1500", 4, 10000, &r),
				0);
		CU_ASSERT_EQUAL(r.status, 202);
		j = cJSON_Parse(r.body ? r.body : "");
		snprintf(ids[i], 40, "%s",
			 cJSON_GetStringValue(cJSON_GetObjectItem(j, "activationId"))
				 ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "activationId"))
				 : "");
		cJSON_Delete(j);
		gw_http_response_release(&r);
	}
	test_msleep(400);
	CU_ASSERT_STRING_EQUAL(activation_status(ids[0]), "running");
	kill(env.nemod.pid, SIGKILL);
	CU_ASSERT_EQUAL(test_proc_wait(&env.nemod, 5000), 128 + SIGKILL);
	env.running = false;
	CU_ASSERT_EQUAL(cb.n, 0); /* nothing had finished */
	CU_ASSERT_EQUAL_FATAL(start_nemod(), 0);
	/* the two never started run after the restart and POST their callbacks */
	CU_ASSERT_STRING_EQUAL(wait_terminal(ids[1], 8000), "success");
	CU_ASSERT_STRING_EQUAL(wait_terminal(ids[2], 8000), "success");
	CU_ASSERT_STRING_EQUAL(wait_terminal(ids[0], 1000), "interrupted");
	for (int waited = 0; waited < 3000 && cb.n < 3; waited += 50)
		test_msleep(50);
	test_msleep(500); /* and nothing more comes */
	cb_stop(&cb);
	/* each once, with OpenFaaS's X-Call-Id: the two results, and the interrupted one (never
	 * run again) told why */
	CU_ASSERT_EQUAL(cb_count(&cb, ids[1]), 1);
	CU_ASSERT_EQUAL(cb_count(&cb, ids[2]), 1);
	CU_ASSERT_EQUAL(cb_count(&cb, ids[0]), 1);
	total = cb.n;
	CU_ASSERT_EQUAL(total, 3);
	for (int i = 0; i < total; i++)
		CU_ASSERT_PTR_NOT_NULL(strstr(cb.bodies[i], !strcmp(cb.ids[i], ids[0])
								    ? "\"status\":\"interrupted\""
								    : "calls="));
	if (total != 3)
		printf("\n  callbacks: %d (ids %s %s %s)\n", total, ids[0], ids[1], ids[2]);
}

/*
 * A journal written before results' routes were journaled still replays: its calls run; and
 * a terminal record written as JSON (before field lines) reads as it did.
 */
static void test_old_journal_replays(void)
{
	const char *id = "0123456789abcdef00000000000000aa";
	const char *idj = "0123456789abcdef00000000000000ab";
	char path[600], line[200], *b64;
	FILE *f;

	deploy("oldj", "echo.so", "handle", NULL);
	CU_ASSERT_EQUAL_FATAL(stop_nemod(), 0);
	b64 = nemo_base64_encode((const uint8_t *)"from an old journal", 19);
	snprintf(line, sizeof(line), "A\t%s\toldj\t0\t-\t%s\n", id, b64);
	free(b64);
	snprintf(path, sizeof(path), "%s/store/.activations.journal", env.dir);
	f = fopen(path, "a");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(line, f);
	/* a blocking call's record as journals before field lines held it: its JSON */
	fprintf(f,
		"T\t%s\t2\toldj\t{\"activationId\":\"%s\",\"namespace\":\"_\",\"name\":"
		"\"oldj\",\"status\":\"success\",\"response\":{\"result\":{\"kept\":\"json\"}}}\n",
		idj, idj);
	fclose(f);
	CU_ASSERT_EQUAL_FATAL(start_nemod(), 0);
	CU_ASSERT_STRING_EQUAL(wait_terminal(id, 5000), "success");
	snprintf(path, sizeof(path), ACTV "/%s/result", id);
	expect("GET", path, TOKEN, NULL, 200, "from an old journal");
	snprintf(path, sizeof(path), ACTV "/%s", idj);
	expect("GET", path, TOKEN, NULL, 200, "{\"kept\":\"json\"}");
	/* and again after the compaction wrote it back (as JSON: that is all it has) */
	CU_ASSERT_EQUAL_FATAL(stop_nemod(), 0);
	CU_ASSERT_EQUAL_FATAL(start_nemod(), 0);
	expect("GET", path, TOKEN, NULL, 200, "{\"kept\":\"json\"}");
	CU_ASSERT_STRING_EQUAL(activation_status(idj), "success");
}

/* nemo_journal_syncs_total: the fdatasyncs the journal made so far (-1: not found). */
static long long journal_syncs(void)
{
	struct gw_http_response r;
	const char *p;
	long long n = -1;

	if (http("GET", "/metrics", TOKEN, NULL, &r) == 200 &&
	    (p = strstr(r.body, "\nnemo_journal_syncs_total ")))
		n = strtoll(p + 26, NULL, 10);
	gw_http_response_release(&r);
	return n;
}

/* The id in a 202 or a record: its activationId. */
static void activation_id_of(const char *body, char id[40])
{
	cJSON *j = cJSON_Parse(body);
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(j, "activationId"));

	snprintf(id, 40, "%s", v ? v : "");
	cJSON_Delete(j);
}

/*
 * The durability contract, route by route: a caller answered with the activation record, or
 * with 202 and an id to poll, is answered only once that record is on disk (one fdatasync
 * each, here, one caller at a time); a caller answered with the function's result alone
 * (OpenFaaS /function, OpenWhisk result=true, nemoctl invoke) waits for no fdatasync. Every
 * record is written before its answer, so all of them outlive a kill -9 right after.
 */
static void test_durability_per_route(void)
{
	char rec[3][40], acc[3][40], kept[2][40], path[200], *before[3];
	const char *st;
	struct gw_http_response r;
	long long s0, s1, s2, s3, s;

	deploy("dur", "echo.so", "handle", NULL);
	expect("POST", "/function/dur", TOKEN, "warm", 200, "warm");
	s0 = journal_syncs();
	CU_ASSERT_TRUE_FATAL(s0 >= 0);
	for (int i = 0; i < 10; i++)
		expect("POST", "/function/dur", TOKEN, "result only", 200, "result only");
	for (int i = 0; i < 5; i++)
		expect("POST", ACT "/dur?blocking=true&result=true", TOKEN, "{\"k\":5}", 200,
		       "{\"k\":5}");
	s1 = journal_syncs();
	if (s1 != s0)
		printf("\n  15 result-only calls made %lld fdatasyncs\n", s1 - s0);
	CU_ASSERT_EQUAL(s1, s0);
	/* the record, then 202: each waits for its own fdatasync */
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(http("POST", ACT "/dur?blocking=true", TOKEN, "{\"k\":3}", &r),
				200);
		CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"success\""));
		activation_id_of(r.body, rec[i]);
		gw_http_response_release(&r);
	}
	s2 = journal_syncs();
	CU_ASSERT_EQUAL(s2 - s1, 3);
	/* a wait shorter than the function's timeout runs it through the queue: its accepted
	 * line is synced before it runs and its terminal line before the record is answered */
	CU_ASSERT_EQUAL(http("POST", ACT "/dur?blocking=true&timeout=900", TOKEN, "{\"k\":9}", &r),
			200);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"success\""));
	gw_http_response_release(&r);
	s = journal_syncs();
	CU_ASSERT_EQUAL(s - s2, 2);
	s2 = s;
	/* records with logs, and with a function's error: read back the same after the restart */
	{
		char *body = malloc(strlen(env.fndir) + 200);

		sprintf(body,
			"{\"runtime\":\"exec\",\"exec_mode\":\"per_request\",\"logs_bytes\":4096,"
			"\"code\":{\"path\":"
			"\"%s/test-stderr.sh\"}}",
			env.fndir);
		expect("PUT", ACT "/dlogs?overwrite=true", TOKEN, body, 200, "dlogs");
		free(body);
	}
	deploy("dfail", "test-probe.so", "fail", NULL);
	CU_ASSERT_EQUAL(http("POST", ACT "/dlogs?blocking=true", TOKEN, "3 lines", &r), 200);
	activation_id_of(r.body, kept[0]);
	gw_http_response_release(&r);
	CU_ASSERT_EQUAL(http("POST", ACT "/dfail?blocking=true", TOKEN, "x", &r), 502);
	activation_id_of(r.body, kept[1]);
	gw_http_response_release(&r);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), ACTV "/%s", i < 2 ? kept[i] : rec[0]);
		CU_ASSERT_EQUAL(http("GET", path, TOKEN, NULL, &r), 200);
		before[i] = r.body;
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(before[0], "stderr: to stderr 3"));
	CU_ASSERT_PTR_NOT_NULL(strstr(before[1], "bad input: no"));
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(http("POST", "/async-function/dur", TOKEN, "accepted", &r), 202);
		activation_id_of(r.body, acc[i]);
		gw_http_response_release(&r);
	}
	/* no pause: the 202 promised the record was on disk when it was sent */
	kill(env.nemod.pid, SIGKILL);
	CU_ASSERT_EQUAL(test_proc_wait(&env.nemod, 5000), 128 + SIGKILL);
	env.running = false;
	CU_ASSERT_EQUAL_FATAL(start_nemod(), 0);
	s3 = journal_syncs();
	CU_ASSERT_TRUE(s3 >= 0);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(strlen(rec[i]), 32);
		CU_ASSERT_STRING_EQUAL(activation_status(rec[i]), "success");
		CU_ASSERT_EQUAL(strlen(acc[i]), 32);
		/* kept: run after the restart, or (if it had started) ended as interrupted */
		st = wait_terminal(acc[i], 5000);
		if (strcmp(st, "success") && strcmp(st, "interrupted"))
			printf("\n  202 %s: '%s' after the restart\n", acc[i], st);
		CU_ASSERT_TRUE(!strcmp(st, "success") || !strcmp(st, "interrupted"));
	}
	/* replayed records read as they did before */
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), ACTV "/%s", i < 2 ? kept[i] : rec[0]);
		CU_ASSERT_EQUAL(http("GET", path, TOKEN, NULL, &r), 200);
		if (strcmp(r.body, before[i]))
			printf("\n  before the restart: %s\n  after it:           %s\n", before[i],
			       r.body);
		CU_ASSERT_STRING_EQUAL(r.body, before[i]);
		gw_http_response_release(&r);
		free(before[i]);
	}
	/* the result-only records were written too: a crash of nemod keeps them (only a crash of
	 * the machine before the next fdatasync or writeback could lose them) */
	snprintf(path, sizeof(path), ACTV "?name=dur&count=true");
	expect("GET", path, TOKEN, NULL, 200, "{\"activations\":23}");
}

static void test_bad_config_names_key(void)
{
	char bin[512], path[256];
	struct test_proc p;
	char *argv[] = {bin, "--config", path, "--check", NULL};

	snprintf(bin, sizeof(bin), "%s/nemod", nemo_test_bindir());
	snprintf(path, sizeof(path), "%s/bad.json", env.dir);
	test_write_text(path,
			"{\"listen\": \"127.0.0.1:1\", \"limits\": {\"max_body_bytes\": \"x\"}}");
	CU_ASSERT_EQUAL_FATAL(test_proc_start(&p, argv), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&p, 5000), 2);
	CU_ASSERT_TRUE(test_proc_output_has(&p, "limits.max_body_bytes"));
	test_write_text(path, "{\"store_dir\": \"/tmp/x\"}");
	CU_ASSERT_EQUAL_FATAL(test_proc_start(&p, argv), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&p, 5000), 2);
	CU_ASSERT_TRUE(test_proc_output_has(&p, "store_dir"));
	/* the sleep floor's delay budget: a range, said with the key */
	test_write_text(path, "{\"harvest\": {\"nf_delay_budget_us\": 2000000}}");
	CU_ASSERT_EQUAL_FATAL(test_proc_start(&p, argv), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&p, 5000), 2);
	CU_ASSERT_TRUE(test_proc_output_has(&p, "harvest.nf_delay_budget_us"));
	/* a freeze band above the move threshold: the key, both values */
	test_write_text(path, "{\"harvest\": {\"reclaim\": {\"threshold\": 0.2, "
			      "\"freeze_below\": 0.3}}}");
	CU_ASSERT_EQUAL_FATAL(test_proc_start(&p, argv), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&p, 5000), 2);
	CU_ASSERT_TRUE(test_proc_output_has(&p, "harvest.reclaim.freeze_below"));
	CU_ASSERT_TRUE(test_proc_output_has(&p, "0.30 is above the threshold 0.20"));
	snprintf(path, sizeof(path), "%s/configs/nemod.json", nemo_test_srcdir());
	CU_ASSERT_EQUAL_FATAL(test_proc_start(&p, argv), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&p, 5000), 0);
}

NEMO_SUITE(gateway_restart, restart_setup, env_teardown,
	   {"deployed functions survive a restart; SIGTERM drains", test_restart_keeps_functions},
	   {"after kill -9, no queued activation is lost or run twice",
	    test_crash_loses_no_activation},
	   {"after kill -9, accepted async calls still POST their X-Callback-Url, each once",
	    test_crash_keeps_callbacks},
	   {"202 and records are durable before the answer; result-only calls wait for no sync",
	    test_durability_per_route},
	   {"a journal from before routes were journaled replays", test_old_journal_replays},
	   {"a bad config names the key", test_bad_config_names_key});

/* ---- zygotes: sandbox.zygotes ------------------------------------------------------------ */

static int zygote_setup(void)
{
	if (env_setup(false))
		return -1;
	env.zygotes = true;
	if (write_config())
		return -1;
	return start_nemod();
}

/*
 * With sandbox.zygotes on, pre-warming keeps the function's zygote: an instance that crashed
 * is replaced by a fork of it (start path zygote, shown in the record, /metrics and the
 * function's pool), and a redeploy replaces the zygote, so the next call runs the new code.
 */
static void test_zygote_start_path(void)
{
	struct gw_http_response r;
	bool done = false;

	/* two calls at once on two cores: one takes the pre-warmed instance, the other finds none
	 * idle and forks the zygote */
	deploy("zn", "test-probe.so", "nap", "\"prewarm\": 1, \"concurrency\": 2");
	expect("GET", ACT "/zn", TOKEN, NULL, 200, "\"zygotes\":1");
	expect("POST", ACT "/zn?blocking=false", TOKEN, "400", 202, "activationId");
	expect("POST", ACT "/zn?blocking=false", TOKEN, "400", 202, "activationId");
	for (int i = 0; i < 300 && !done; i++) {
		http("GET", ACTV "?name=zn&limit=5", TOKEN, NULL, &r);
		done = strstr(r.body, "\"startPath\":\"zygote\"") &&
		       strstr(r.body, "\"startPath\":\"prewarmed\"") && !strstr(r.body, "running");
		gw_http_response_release(&r);
		if (!done)
			test_msleep(20);
	}
	CU_ASSERT_TRUE(done);
	expect("GET", "/metrics", TOKEN, NULL, 200,
	       "nemo_starts_total{namespace=\"nemo\",function=\"zn\",path=\"zygote\"} 1\n");
	expect("GET", "/metrics", TOKEN, NULL, 200,
	       "nemo_warm_pool_instances{namespace=\"nemo\",function=\"zn\",state=\"zygote\"} 1\n");
	expect("GET", ACT "/zn", TOKEN, NULL, 200, "\"zygote_starts\":1");

	/* a crashed instance is replaced from the zygote; a redeploy replaces the zygote, so no
	 * call after it runs the crashing handler */
	deploy("zc", "test-hostile.so", "crash", "\"prewarm\": 1");
	expect("POST", ACT "/zc?blocking=true", TOKEN, "{}", 502, "function crashed");
	expect("POST", ACT "/zc?blocking=true", TOKEN, "{}", 502, "function crashed");
	deploy("zc", "test-hostile.so", "scribble", "\"prewarm\": 1");
	expect("POST", ACT "/zc?blocking=true&result=true", TOKEN, "{}", 200, "calls=1 state=");
	expect("GET", ACT "/zc", TOKEN, NULL, 200, "\"zygotes\":1");
}

NEMO_SUITE(gateway_zygote, zygote_setup, env_teardown,
	   {"zygote start path in records, metrics and the pool; a redeploy replaces the zygote",
	    test_zygote_start_path});

/* ---- tenants: one namespace per credential ------------------------------------------------------ */

#define ALICE "alice:alice-key-0123456789abcdef"
#define BOB   "bob:bob-key-0123456789abcdef"
#define OW_PY(who)                                                                            \
	"{\"exec\":{\"kind\":\"python:3\",\"code\":\"def main(a):\\n    return {'who': '" who \
	"'}\\n\"}}"

static int tenants_setup(void)
{
	char path[256];

	if (env_setup(false))
		return -1;
	/* the operator's token first (the default namespace, "nemo"), then two tenants */
	snprintf(path, sizeof(path), "%s/token", env.dir);
	if (test_write_text(path, TOKEN "\n" ALICE " alice\n" BOB " bob\n"))
		return -1;
	return start_nemod();
}

/* The activationId of a blocking call's record. */
static void invoke_id(const char *cred, const char *name, const char *who, char id[40])
{
	char path[160];
	struct gw_http_response r;
	cJSON *j;

	snprintf(path, sizeof(path), ACT "/%s?blocking=true", name);
	id[0] = '\0';
	CU_ASSERT_EQUAL(http("POST", path, cred, "{}", &r), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.body, who));
	j = cJSON_Parse(r.body);
	snprintf(id, 40, "%s",
		 cJSON_GetStringValue(cJSON_GetObjectItem(j, "activationId"))
			 ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "activationId"))
			 : "");
	cJSON_Delete(j);
	gw_http_response_release(&r);
}

static void tenants_check(const char *bob_id)
{
	char path[200];

	/* each tenant's f is its own */
	expect("POST", ACT "/f?blocking=true&result=true", ALICE, "{}", 200, "\"who\":\"alice\"");
	expect("POST", ACT "/f?blocking=true&result=true", BOB, "{}", 200, "\"who\":\"bob\"");
	/* alice sees nothing of bob's g: get, invoke, delete, list, activations */
	expect("GET", ACT "/g", ALICE, NULL, 404,
	       "function 'g' is not deployed in namespace 'alice'");
	expect("POST", ACT "/g?blocking=true", ALICE, "{}", 404,
	       "function 'g' is not deployed in namespace 'alice'");
	expect("DELETE", ACT "/g", ALICE, NULL, 404, "namespace 'alice'");
	expect("POST", "/async-function/g", ALICE, "{}", 404, "namespace 'alice'");
	expect("GET", "/system/function/g", ALICE, NULL, 404, "namespace 'alice'");
	expect("GET", ACT "?count=true", ALICE, NULL, 200, "{\"actions\":1}");
	expect("GET", ACT "?count=true", BOB, NULL, 200, "{\"actions\":2}");
	expect("GET", "/api/v1/namespaces", ALICE, NULL, 200, "[\"alice\"]");
	snprintf(path, sizeof(path), ACTV "/%s", bob_id);
	expect("GET", path, ALICE, NULL, 404, "namespace 'alice'");
	expect("GET", path, BOB, NULL, 200, "\"namespace\":\"bob\"");
	snprintf(path, sizeof(path), ACTV "/%s/result", bob_id);
	expect("GET", path, ALICE, NULL, 404, "not known");
	{
		struct gw_http_response r;

		CU_ASSERT_EQUAL(http("GET", ACTV "?limit=200", ALICE, NULL, &r), 200);
		CU_ASSERT_PTR_NULL(strstr(r.body, bob_id));
		CU_ASSERT_PTR_NULL(strstr(r.body, "\"bob\""));
		gw_http_response_release(&r);
		CU_ASSERT_EQUAL(http("GET", ACT, ALICE, NULL, &r), 200);
		CU_ASSERT_PTR_NULL(strstr(r.body, "\"g\""));
		gw_http_response_release(&r);
		/* a tenant's metrics are its own; the operator's show both, by namespace */
		CU_ASSERT_EQUAL(http("GET", "/metrics", ALICE, NULL, &r), 200);
		CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "namespace=\"alice\",function=\"f\""));
		CU_ASSERT_PTR_NULL(strstr(r.body, "namespace=\"bob\""));
		gw_http_response_release(&r);
		CU_ASSERT_EQUAL(http("GET", "/metrics", TOKEN, NULL, &r), 200);
		CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "namespace=\"bob\",function=\"g\""));
		gw_http_response_release(&r);
	}
	/* the operator's namespace (the default, where open doors lead) has neither */
	expect("GET", ACT "/f", TOKEN, NULL, 404, "namespace 'nemo'");
	expect("POST", "/function/f", NULL, "{}", 404, "namespace 'nemo'");
}

static void test_tenants_apart(void)
{
	char bob_id[40], path[600];
	struct stat st;

	expect("PUT", ACT "/f", ALICE, OW_PY("alice"), 200, "\"namespace\":\"alice\"");
	expect("PUT", ACT "/f", BOB, OW_PY("bob"), 200, "\"namespace\":\"bob\"");
	expect("PUT", ACT "/g", BOB, OW_PY("bob-g"), 200, "\"name\":\"g\"");
	invoke_id(BOB, "g", "bob-g", bob_id);
	CU_ASSERT_EQUAL_FATAL(strlen(bob_id), 32);
	tenants_check(bob_id);
	/* alice's update and delete of "g" and "f" touch only her own */
	expect("PUT", ACT "/f?overwrite=true", ALICE, OW_PY("alice-2"), 200,
	       "\"version\":\"0.0.4\"");
	expect("POST", ACT "/f?blocking=true&result=true", BOB, "{}", 200, "\"who\":\"bob\"");
	expect("PUT", ACT "/g", ALICE, OW_PY("alice-g"), 200, "\"namespace\":\"alice\"");
	expect("DELETE", ACT "/g", ALICE, NULL, 200, "deleted");
	expect("POST", ACT "/g?blocking=true&result=true", BOB, "{}", 200, "\"who\":\"bob-g\"");
	expect("PUT", ACT "/f?overwrite=true", ALICE, OW_PY("alice"), 200,
	       "\"namespace\":\"alice\"");
	/* the store keeps them apart: ns.name outside the default namespace */
	snprintf(path, sizeof(path), "%s/store/alice.f/spec.json", env.dir);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/store/bob.f/spec.json", env.dir);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	/* the default namespace keeps the layout from before namespaces: <store>/<name> */
	deploy("opfn", "echo.so", "handle", NULL);
	snprintf(path, sizeof(path), "%s/store/opfn/spec.json", env.dir);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	expect("POST", "/function/opfn", NULL, "open door", 200, "open door");
	/* a restart keeps all of it: functions, namespaces, activations */
	CU_ASSERT_EQUAL(stop_nemod(), 0);
	CU_ASSERT_PTR_NULL(strstr(test_proc_output(&env.nemod), "level=err"));
	CU_ASSERT_EQUAL_FATAL(start_nemod(), 0);
	tenants_check(bob_id);
	expect("POST", "/function/opfn", NULL, "after restart", 200, "after restart");
}

NEMO_SUITE(gateway_tenants, tenants_setup, env_teardown,
	   {"two credentials, two namespaces: one name, two functions, no crossing, across a "
	    "restart",
	    test_tenants_apart});

/* ---- MQTT ------------------------------------------------------------------------------------- */

static int start_broker(void)
{
	int rc = test_broker_start(&env.broker, env.dir, env.mqtt_port);

	env.broker_running = rc == 0 || rc == -ETIMEDOUT; /* started: the teardown stops it */
	return rc ? -1 : 0;
}

static int mqtt_setup(void)
{
	if (access("/usr/sbin/mosquitto", X_OK))
		return -1;
	if (env_setup(true) || start_broker())
		return -1;
	return start_nemod();
}

/* Wait until the nemod log holds `pattern` `count` times. */
static bool wait_log(const char *pattern, int count, int ms)
{
	for (int waited = 0; waited <= ms; waited += 100) {
		const char *out = test_proc_output(&env.nemod);
		int n = 0;

		for (const char *p = strstr(out, pattern); p; p = strstr(p + 1, pattern))
			n++;
		if (n >= count)
			return true;
		test_msleep(100);
	}
	printf("\n  nemod log lacks %d x '%s':\n%s\n", count, pattern,
	       test_proc_output(&env.nemod));
	return false;
}

/* Publish `msg` on `topic` and return what arrives on `reply` (static buffer). */
static const char *publish_and_wait(const char *topic, const char *msg, const char *reply)
{
	static char out[4096];
	char port[8], bin_sub[] = "/usr/bin/mosquitto_sub", cmd[512];
	char reply_arg[128];
	struct test_proc sub;
	char *argv[] = {bin_sub, "-p", port, "-t", reply_arg, "-C", "1", "-W", "10", NULL};

	snprintf(port, sizeof(port), "%u", env.mqtt_port);
	snprintf(reply_arg, sizeof(reply_arg), "%s", reply);
	out[0] = '\0';
	if (test_proc_start(&sub, argv))
		return out;
	test_msleep(300); /* let the subscription land before the publish */
	snprintf(cmd, sizeof(cmd), "mosquitto_pub -p %u -t '%s' -m '%s' -q 1", env.mqtt_port, topic,
		 msg);
	if (system(cmd) != 0)
		printf("\n  mosquitto_pub failed\n");
	test_proc_wait(&sub, 12000);
	snprintf(out, sizeof(out), "%s", test_proc_output(&sub));
	return out;
}

static void test_mqtt_trigger(void)
{
	const char *got;

	CU_ASSERT_TRUE(wait_log("mqtt connected", 1, 5000));
	deploy("mqecho", "echo.so", "handle",
	       "\"mqtt\": {\"topics\": [\"sensors/+/temp\"], \"reply_topic\": \"sensors/reply\"}");
	test_msleep(200);
	got = publish_and_wait("sensors/a1/temp", "{\"celsius\":21}", "sensors/reply");
	CU_ASSERT_PTR_NOT_NULL(strstr(got, "{\"celsius\":21}"));
	/* the activation is recorded with its trigger */
	expect("GET", ACTV "?name=mqecho", TOKEN, NULL, 200, "\"trigger\":\"mqtt\"");
}

static void test_mqtt_reconnect(void)
{
	const char *got;

	CU_ASSERT_EQUAL(test_proc_stop(&env.broker, 5000), 0);
	env.broker_running = false;
	CU_ASSERT_TRUE(wait_log("mqtt disconnected", 1, 5000));
	/* nemod keeps serving HTTP while the broker is away */
	expect("POST", "/function/mqecho", TOKEN, "http still works", 200, "http still works");
	test_msleep(1500); /* a reconnect attempt or two fails meanwhile */
	CU_ASSERT_EQUAL_FATAL(start_broker(), 0);
	CU_ASSERT_TRUE(wait_log("mqtt connected", 2, 10000));
	test_msleep(300);
	got = publish_and_wait("sensors/b2/temp", "{\"celsius\":22}", "sensors/reply");
	CU_ASSERT_PTR_NOT_NULL(strstr(got, "{\"celsius\":22}"));
}

/* MQTT 5 requests accepted before kill -9 get their replies after the restart, once each,
 * at their response topic with their correlation data. */
static void test_mqtt_crash_keeps_replies(void)
{
	char port[8], bin_sub[] = "/usr/bin/mosquitto_sub", cmd[512];
	char *argv[] = {bin_sub, "-V", "5",	"-p", port, "-t", "slow/out", "-q",
			"1",	 "-F", "%D %p", "-C", "3",  "-W", "20",	      NULL};
	struct test_proc sub;
	const char *got;

	CU_ASSERT_TRUE(wait_log("mqtt connected", 1, 5000));
	deploy("mqslow", "test-probe.so", "nap",
	       "\"timeout_ms\": 3000, \"mqtt\": {\"topics\": [\"slow/in\"], \"qos\": 1}");
	test_msleep(300);
	snprintf(port, sizeof(port), "%u", env.mqtt_port);
	CU_ASSERT_EQUAL_FATAL(test_proc_start(&sub, argv), 0);
	test_msleep(300);
	/* one runs (one instance slot), two wait; then nemod dies */
	for (int i = 1; i <= 3; i++) {
		snprintf(cmd, sizeof(cmd),
			 "mosquitto_pub -V 5 -p %u -t slow/in -m 1500 -q 1 -D publish "
			 "response-topic slow/out -D publish correlation-data corr-%d",
			 env.mqtt_port, i);
		CU_ASSERT_EQUAL(system(cmd), 0);
	}
	test_msleep(500);
	kill(env.nemod.pid, SIGKILL);
	CU_ASSERT_EQUAL(test_proc_wait(&env.nemod, 5000), 128 + SIGKILL);
	env.running = false;
	CU_ASSERT_EQUAL_FATAL(start_nemod(), 0);
	/* the two never started run now and reply; the interrupted one is not run again, and
	 * its reply says so */
	test_proc_wait(&sub, 22000);
	got = test_proc_output(&sub);
	CU_ASSERT_PTR_NOT_NULL(strstr(got, "corr-1 {\"error\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"status\":\"interrupted\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(got, "corr-2 calls="));
	CU_ASSERT_PTR_NOT_NULL(strstr(got, "corr-3 calls="));
	if (!strstr(got, "corr-2 calls=") || !strstr(got, "corr-3 calls="))
		printf("\n  mosquitto_sub got: '%s'\n", got);
	/* each once (-C 3: the subscriber took three and stopped; a fourth would be a repeat) */
	CU_ASSERT_PTR_NULL(
		strstr(strstr(got, "corr-2 ") ? strstr(got, "corr-2 ") + 1 : got, "corr-2 "));
	CU_ASSERT_PTR_NULL(
		strstr(strstr(got, "corr-3 ") ? strstr(got, "corr-3 ") + 1 : got, "corr-3 "));
}

NEMO_SUITE(gateway_mqtt, mqtt_setup, env_teardown,
	   {"a message invokes the function; the result goes to the reply topic",
	    test_mqtt_trigger},
	   {"broker restart: nemod reconnects and resubscribes", test_mqtt_reconnect},
	   {"after kill -9, accepted MQTT 5 requests still get their replies, each once",
	    test_mqtt_crash_keeps_replies});
