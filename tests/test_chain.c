/*
 * test_chain.c - nemo_call between functions, through a real nemod: a chain of C and python
 * functions over leased boxes, its activation records linked by cause, and what a caller
 * sees when the callee is missing, of another tenant, crashes, loops, nests too deep or
 * gets too much; and that the leases end with their caller.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nemo/base64.h"
#include "nemo/clock.h"
#include "nemo/gateway.h"
#include "proc.h"
#include "test.h"

#define TOKEN "chaintest-token-0123456789abcdef"
#define ALICE "alice:alice-key-0123456789abcdef"
#define ACT   "/api/v1/namespaces/_/actions"
#define ACTV  "/api/v1/namespaces/_/activations"

static struct {
	char dir[64];
	char config[128];
	char fndir[512];
	uint16_t port;
	struct test_proc nemod;
	bool running;
} env;

static int http_as(const char *who, const char *method, const char *path, const char *body,
		   struct gw_http_response *r)
{
	int rc = gw_http_request("127.0.0.1", env.port, method, path, who, body,
				 body ? strlen(body) : 0, 30000, r);

	if (rc) {
		printf("\n  %s %s: %s\n", method, path, strerror(-rc));
		r->status = -1;
		r->body = strdup("");
	}
	return r->status;
}

static void expect_as(const char *who, const char *method, const char *path, const char *body,
		      int status, const char *needle)
{
	struct gw_http_response r;
	int got = http_as(who, method, path, body, &r);

	if (got != status || (needle && !strstr(r.body, needle)))
		printf("\n  %s %.80s: got %d '%.400s', wanted %d with '%s'\n", method, path, got,
		       r.body, status, needle ? needle : "");
	CU_ASSERT_EQUAL(got, status);
	if (needle)
		CU_ASSERT_PTR_NOT_NULL(strstr(r.body, needle));
	gw_http_response_release(&r);
}

static void expect(const char *method, const char *path, const char *body, int status,
		   const char *needle)
{
	expect_as(TOKEN, method, path, body, status, needle);
}

/* What function `fn` answers to `body`, as the blocking result route gives it. */
static void call_expect(const char *fn, const char *body, const char *needle)
{
	char path[256];

	snprintf(path, sizeof(path), ACT "/%s?blocking=true&result=true", fn);
	expect("POST", path, body, 200, needle);
}

/* The same for a call that fails: 502, the function's error naming what nemo_call said. */
static void call_fails(const char *fn, const char *body, const char *needle)
{
	char path[256];

	snprintf(path, sizeof(path), ACT "/%s?blocking=true&result=true", fn);
	expect("POST", path, body, 502, needle);
}

/* Deploy `file` (c: a .so, python: a .py) from build/functions as `name`, `extra` first. */
static void deploy_as(const char *who, const char *name, const char *file, const char *runtime,
		      const char *handler, const char *extra)
{
	char path[700], *bytes, *b64, *body;
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", env.fndir, file);
	bytes = test_read_file(path, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
	b64 = nemo_base64_encode((const uint8_t *)bytes, len);
	free(bytes);
	body = malloc(strlen(b64) + strlen(extra) + 512);
	sprintf(body,
		"{%s%s\"runtime\":\"%s\",\"handler\":\"%s\",\"code\":{\"base64\":\"%s\","
		"\"filename\":\"%s\"}}",
		extra, extra[0] ? "," : "", runtime, handler, b64, file);
	free(b64);
	snprintf(path, sizeof(path), ACT "/%s?overwrite=true", name);
	expect_as(who, "PUT", path, body, 200, name);
	free(body);
}

static void deploy(const char *name, const char *file, const char *runtime, const char *handler,
		   const char *extra)
{
	deploy_as(TOKEN, name, file, runtime, handler, extra);
}

static int chain_setup(void)
{
	char text[1024], path[256];

	memset(&env, 0, sizeof(env));
	/* not under /tmp: sandboxes have a private /tmp and must read the store */
	snprintf(env.dir, sizeof(env.dir), "/var/tmp/nemo-chaintest-XXXXXX");
	if (!mkdtemp(env.dir))
		return -1;
	chmod(env.dir, 0755);
	snprintf(env.config, sizeof(env.config), "%s/nemod.json", env.dir);
	snprintf(env.fndir, sizeof(env.fndir), "%s/build/functions", nemo_test_srcdir());
	env.port = test_free_port();
	snprintf(text, sizeof(text),
		 "{\"listen\": \"127.0.0.1:%u\", \"token_file\": \"%s/token\",\n"
		 " \"store_dir\": \"%s/store\", \"cores\": {\"sandbox\": [0]},\n"
		 " \"cgroup_root\": \"nemo-chaintest-%d\", \"journal_sync\": false}\n",
		 (unsigned)env.port, env.dir, env.dir, getpid());
	snprintf(path, sizeof(path), "%s/token", env.dir);
	if (test_write_text(path, TOKEN "\n" ALICE " alice\n") || test_write_text(env.config, text))
		return -1;
	if (test_nemod_start(&env.nemod, env.config, env.port, 10000)) {
		env.running = env.nemod.pid > 0; /* the teardown stops what started */
		return -1;
	}
	env.running = true;
	return 0;
}

/*
 * Every case starts from relays a, b, c (C) and p (python). a and p wait up to 20 s: a
 * python callee's cold start happens within its caller's call, and a TCG guest (make
 * check-vm) is 20-40x slower than this host.
 */
static void base_functions(void)
{
	deploy("a", "relay.so", "c", "handle", "\"timeout_ms\":20000");
	deploy("b", "relay.so", "c", "handle", "");
	deploy("c", "relay.so", "c", "handle", "");
	deploy("p", "pyrelay.py", "python", "main", "\"timeout_ms\":20000");
}

static int chain_teardown(void)
{
	char cmd[128];

	if (env.running)
		test_proc_stop(&env.nemod, 15000);
	env.running = false;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", env.dir);
	if (!strncmp(env.dir, "/var/tmp/nemo-chaintest-", 24) && system(cmd) != 0)
		printf("\n  could not remove %s\n", env.dir);
	return 0;
}

/* The activation record `id`, parsed (NULL if nemod has none). */
static cJSON *record(const char *id)
{
	struct gw_http_response r;
	char path[160];
	cJSON *j = NULL;

	snprintf(path, sizeof(path), ACTV "/%s", id);
	if (http_as(TOKEN, "GET", path, NULL, &r) == 200)
		j = cJSON_Parse(r.body);
	gw_http_response_release(&r);
	return j;
}

static const char *str(const cJSON *j, const char *key)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(j, key));

	return s ? s : "";
}

/* The newest record whose cause is `cause` (copied into id), from the namespace's list. */
static bool caused_by(const char *cause, char id[64], char name[64])
{
	struct gw_http_response r;
	cJSON *list, *a;
	bool found = false;

	CU_ASSERT_EQUAL(http_as(TOKEN, "GET", ACTV "?limit=50", NULL, &r), 200);
	list = cJSON_Parse(r.body);
	gw_http_response_release(&r);
	cJSON_ArrayForEach (a, list) {
		if (strcmp(str(a, "cause"), cause))
			continue;
		snprintf(id, 64, "%s", str(a, "activationId"));
		snprintf(name, 64, "%s", str(a, "name"));
		found = true;
		break;
	}
	cJSON_Delete(list);
	return found;
}

/* A function's warm_pool figure from /api/v1/status. */
static double pool_figure(const char *fn, const char *key)
{
	struct gw_http_response r;
	cJSON *st, *f;
	double v = -1;

	CU_ASSERT_EQUAL(http_as(TOKEN, "GET", "/api/v1/status", NULL, &r), 200);
	st = cJSON_Parse(r.body);
	gw_http_response_release(&r);
	cJSON_ArrayForEach (f, cJSON_GetObjectItem(st, "functions"))
		if (!strcmp(str(f, "name"), fn))
			v = cJSON_GetNumberValue(
				cJSON_GetObjectItem(cJSON_GetObjectItem(f, "warm_pool"), key));
	cJSON_Delete(st);
	return v;
}

static void test_chain_of_three(void)
{
	struct gw_http_response r;
	char top[64], id_b[64], id_c[64], name[64];
	cJSON *j, *rec;

	base_functions();
	call_expect("a", "b,c|x", "\"r:r:x\"");
	/* the leases outlive the call: b and c stay leased to their callers */
	CU_ASSERT_EQUAL(pool_figure("b", "leased"), 1);
	CU_ASSERT_EQUAL(pool_figure("c", "leased"), 1);
	/* the second call goes through the same boxes, no new instance */
	CU_ASSERT_EQUAL(http_as(TOKEN, "POST", ACT "/a?blocking=true", "b,c|again", &r), 200);
	j = cJSON_Parse(r.body);
	gw_http_response_release(&r);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(
				       cJSON_GetObjectItem(j, "response"), "result")),
			       "r:r:again");
	snprintf(top, sizeof(top), "%s", str(j, "activationId"));
	cJSON_Delete(j);
	CU_ASSERT_EQUAL(pool_figure("b", "cold_starts"), 1);
	CU_ASSERT_EQUAL(pool_figure("c", "cold_starts"), 1);
	/* each call is an activation of its own, caused by its caller's */
	CU_ASSERT_TRUE_FATAL(caused_by(top, id_b, name));
	CU_ASSERT_STRING_EQUAL(name, "b");
	CU_ASSERT_TRUE_FATAL(caused_by(id_b, id_c, name));
	CU_ASSERT_STRING_EQUAL(name, "c");
	rec = record(id_c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
	CU_ASSERT_STRING_EQUAL(str(rec, "trigger"), "call");
	CU_ASSERT_STRING_EQUAL(str(rec, "status"), "success");
	CU_ASSERT_STRING_EQUAL(str(rec, "cause"), id_b);
	cJSON_Delete(rec);
	/* python on either side: a -> p -> c, and p -> b */
	call_expect("a", "p,c|x", "\"r:py:x\"");
	call_expect("p", "b,c|x", "\"py:r:x\"");
	call_expect("p", "p,p|x", "\"py:py:x\"");
	/* a python callee's own calls are linked to the call it serves, as C's are */
	CU_ASSERT_EQUAL(http_as(TOKEN, "POST", ACT "/p?blocking=true", "p,p|y", &r), 200);
	j = cJSON_Parse(r.body);
	gw_http_response_release(&r);
	snprintf(top, sizeof(top), "%s", str(j, "activationId"));
	cJSON_Delete(j);
	CU_ASSERT_TRUE_FATAL(caused_by(top, id_b, name));
	CU_ASSERT_STRING_EQUAL(name, "p");
	CU_ASSERT_TRUE(caused_by(id_b, id_c, name));
	CU_ASSERT_STRING_EQUAL(name, "p");
}

static void test_names(void)
{
	base_functions();
	call_fails("a", "nosuch|x", "= -1: no function 'nosuch' is deployed in this namespace");
	call_fails("a", "alice.a|x", "= -2: 'alice.a' is not a function name of this namespace");
	call_expect("p", "nosuch|x", "py:error -1 no function 'nosuch'");
	deploy("up", "exec-upper", "exec", "main", "");
	call_fails("a", "up|x", "= -2: 'up' is an exec function");
}

static void test_tenants(void)
{
	base_functions();
	/* alice's a reaches alice's functions only: the default namespace's b is not hers */
	deploy_as(ALICE, "a", "relay.so", "c", "handle", "");
	expect_as(ALICE, "POST", ACT "/a?blocking=true&result=true", "b|x", 502,
		  "no function 'b' is deployed in this namespace");
	deploy_as(ALICE, "b", "relay.so", "c", "handle", "");
	expect_as(ALICE, "POST", ACT "/a?blocking=true&result=true", "b|hers", 200, "\"r:hers\"");
	expect_as(ALICE, "POST", ACT "/a?blocking=true&result=true", "_.b|x", 502,
		  "not a function name of this namespace");
}

static void test_callee_crashes(void)
{
	base_functions();
	deploy("crasher", "test-hostile.so", "c", "crash", "");
	call_fails("a", "crasher|x", "= -4: 'crasher' crashed during the call");
	/* the next call gets a fresh instance, and crashes it again */
	call_fails("a", "crasher|x", "= -4: 'crasher' crashed during the call");
	/* the broker gives the dead instances back just after the caller hears of them */
	for (int i = 0; i < 50 && pool_figure("crasher", "crashes") < 2; i++)
		test_msleep(20);
	CU_ASSERT_TRUE(pool_figure("crasher", "crashes") >= 2);
	call_expect("a", "b,c|still", "\"r:r:still\"");
}

static void test_callee_loops(void)
{
	uint64_t t0;

	base_functions();
	deploy("spinner", "test-hostile.so", "c", "spin", "\"timeout_ms\":300");
	t0 = nemo_now_ns();
	call_fails("a", "spinner|x", "= -3: 'spinner' timed out after 300 ms: killed");
	/* killed at its own timeout, not the caller's 20 s (nor its runtime's last resort,
	 * the callee's timeout + 5 s) */
	CU_ASSERT_TRUE(nemo_now_ns() - t0 < 5000000000ull);
	for (int i = 0; i < 50 && pool_figure("spinner", "crashes") < 1; i++)
		test_msleep(20);
	CU_ASSERT_TRUE(pool_figure("spinner", "crashes") >= 1);
	CU_ASSERT_EQUAL(pool_figure("spinner", "leased"), 0);
	call_expect("a", "b,c|after", "\"r:r:after\"");
}

static void test_depth_and_size(void)
{
	char big[200];

	base_functions();
	deploy("d", "relay.so", "c", "handle", "\"concurrency\":16,\"timeout_ms\":20000");
	call_expect("d", "d,d,d|x", "\"r:r:r:x\"");
	call_fails("d", "d,d,d,d,d,d,d,d,d|x",
		   "= -6: calling 'd' would nest calls 9 deep, over the limit of 8");
	deploy("small", "relay.so", "c", "handle", "\"max_payload_bytes\":64");
	memset(big, 'y', sizeof(big) - 1);
	big[0] = 's', big[1] = 'm', big[2] = 'a', big[3] = 'l', big[4] = 'l', big[5] = '|';
	big[sizeof(big) - 1] = '\0';
	call_fails("a", big, "= -5: request of 194 bytes is over 'small''s limit of 64 bytes");
}

static void test_leases_end_with_caller(void)
{
	base_functions();
	call_expect("a", "c|x", "\"r:x\"");
	CU_ASSERT_TRUE(pool_figure("c", "leased") >= 1);
	/* the caller's instances go with its function: what they leased returns to the pool */
	expect("DELETE", ACT "/a", NULL, 200, NULL);
	for (int i = 0; i < 100 && pool_figure("c", "leased") > 0; i++)
		test_msleep(20);
	CU_ASSERT_EQUAL(pool_figure("c", "leased"), 0);
	CU_ASSERT_TRUE(pool_figure("c", "idle") >= 1);
	/* and serves direct calls as before */
	call_expect("c", "|direct", "\"direct\"");
}

NEMO_SUITE(chain, chain_setup, chain_teardown,
	   {"a -> b -> c over leased boxes: r:r:x, leases kept, records linked by cause; python "
	    "on either side",
	    test_chain_of_three},
	   {"a missing name, another namespace's name, an exec callee: refused by name",
	    test_names},
	   {"tenants: alice's function reaches alice's functions only", test_tenants},
	   {"a callee that crashes: the caller hears it, the next call gets a new instance",
	    test_callee_crashes},
	   {"a callee that loops: killed at its own timeout, the caller hears it",
	    test_callee_loops},
	   {"calls nest 8 deep at most; a request over the callee's limit is refused",
	    test_depth_and_size},
	   {"a caller's leases end with it; the callee serves direct calls again",
	    test_leases_end_with_caller});
