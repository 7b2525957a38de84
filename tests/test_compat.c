/* test_compat.c - the tools people already use, unchanged, against a live nemod: the npm
 * openwhisk client, curl as faas-cli calls the OpenFaaS gateway, promtool, MQTT clients. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nemo/gateway.h"
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

static bool wait_healthy(struct test_proc *p, uint16_t port, int ms)
{
	for (int waited = 0; waited < ms; waited += 50) {
		struct gw_http_response r;

		if (gw_http_request("127.0.0.1", port, "GET", "/healthz", NULL, NULL, 0, 1000,
				    &r) == 0) {
			int st = r.status;

			gw_http_response_release(&r);
			if (st == 200)
				return true;
		}
		if (test_proc_wait(p, 0) != -ETIMEDOUT)
			return false;
		test_msleep(50);
	}
	return false;
}

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
		 "  \"cgroup_root\": \"nemo-compat-%d\"%s%s\n"
		 "}\n",
		 (unsigned)port, env.dir, store, getpid(), extra[0] ? ",\n  " : "", extra);
	return test_write_text(path, text);
}

static int start_nemod(void)
{
	char bin[512];
	char *argv[] = {bin, "--config", env.config, NULL};

	snprintf(bin, sizeof(bin), "%s/nemod", nemo_test_bindir());
	if (test_proc_start(&env.nemod, argv))
		return -1;
	env.running = true;
	if (!wait_healthy(&env.nemod, env.port, 10000)) {
		printf("\n  nemod did not become healthy:\n%s\n", test_proc_output(&env.nemod));
		return -1;
	}
	return 0;
}

static int env_setup_with(const char *extra)
{
	char path[256], store[128];

	memset(&env, 0, sizeof(env));
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
	if (write_config(env.config, store, env.port, extra))
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
