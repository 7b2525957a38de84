/* test_isolation.c - a real nemod killed with -9: its sandboxes stop, a restart finds none. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nemo/cgroup.h"
#include "nemo/gateway.h"
#include "proc.h"
#include "test.h"

#define TOKEN "isotest-token-0123456789abcdef"
#define ACT   "/api/v1/namespaces/_/actions"

static struct {
	char dir[64];
	char config[128];
	char root[64];
	uint16_t port;
	struct test_proc nemod;
	bool running;
} env;

static int status_of(const char *method, const char *path, const char *body)
{
	struct gw_http_response r;
	int st;

	if (gw_http_request("127.0.0.1", env.port, method, path, TOKEN, body,
			    body ? strlen(body) : 0, 30000, &r))
		return -1;
	st = r.status;
	if (st >= 300)
		printf("\n  %s %s: %d %.300s\n", method, path, st, r.body);
	gw_http_response_release(&r);
	return st;
}

static int start_nemod(void)
{
	int rc = test_nemod_start(&env.nemod, env.config, env.port, 10000);

	env.running = rc == 0 || rc == -ETIMEDOUT; /* started: the teardown stops it */
	return rc ? -1 : 0;
}

static int suite_setup(void)
{
	char text[2048], path[256], fndir[512];

	memset(&env, 0, sizeof(env));
	snprintf(env.dir, sizeof(env.dir), "/var/tmp/nemo-isotest-XXXXXX");
	if (!mkdtemp(env.dir))
		return -1;
	chmod(env.dir, 0755);
	snprintf(env.config, sizeof(env.config), "%s/nemod.json", env.dir);
	snprintf(env.root, sizeof(env.root), "nemo-isotest-%d", getpid());
	snprintf(fndir, sizeof(fndir), "%s/build/functions", nemo_test_srcdir());
	env.port = test_free_port();
	snprintf(text, sizeof(text),
		 "{\n"
		 "  \"listen\": \"127.0.0.1:%u\",\n"
		 "  \"token_file\": \"%s/token\",\n"
		 "  \"store_dir\": \"%s/store\",\n"
		 "  \"code_roots\": [\"%s\"],\n"
		 "  \"cores\": {\"sandbox\": [0]},\n"
		 "  \"cgroup_root\": \"%s\",\n"
		 "  \"sandbox\": {\"uid_base\": 300000, \"uid_count\": 1000},\n"
		 "  \"drain_timeout_ms\": 1000\n"
		 "}\n",
		 (unsigned)env.port, env.dir, env.dir, fndir, env.root);
	snprintf(path, sizeof(path), "%s/token", env.dir);
	if (test_write_text(path, TOKEN "\n") || test_write_text(env.config, text))
		return -1;
	return 0;
}

static int suite_teardown(void)
{
	char cmd[128];

	if (env.running)
		test_proc_stop(&env.nemod, 10000);
	env.running = false;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", env.dir);
	if (!strncmp(env.dir, "/var/tmp/nemo-isotest-", 22) && system(cmd) != 0)
		printf("\n  could not remove %s\n", env.dir);
	return 0;
}

/* Is `pid` a sandbox host's watchdog (`nemo-sbx-runtime --watchdog ...`, cgroup v1)? */
static bool is_watchdog(pid_t pid)
{
	char path[64], cmd[256] = "";
	int fd;
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	len = fd >= 0 ? read(fd, cmd, sizeof(cmd) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (len <= 0)
		return false;
	cmd[len] = '\0';
	return (size_t)len > strlen(cmd) + 1 && !strcmp(cmd + strlen(cmd) + 1, "--watchdog");
}

/* The children of `ppid` (the sandboxes' inits, for nemod; not its watchdog). */
static int children_of(pid_t ppid, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)) && n < max) {
		char path[64], line[128];
		pid_t pid = (pid_t)atoi(de->d_name);
		FILE *f;

		if (pid <= 0 || is_watchdog(pid))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			int pp;

			if (sscanf(line, "PPid: %d", &pp) == 1) {
				if (pp == ppid)
					out[n++] = pid;
				break;
			}
		}
		fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

/* Running (not gone, not a zombie)? */
static bool running(pid_t pid)
{
	char path[64], buf[256], *p;
	FILE *f;
	bool alive = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] == ' ')
		alive = p[2] != 'Z' && p[2] != 'X';
	fclose(f);
	return alive;
}

/* sbx-* cgroups under the tree `root`, one or two levels down (v1 and v2 layouts). */
static int sandbox_cgroups(const char *root)
{
	char dirs[8][512];
	int n = sbx_cgroup_root_dirs(root, dirs, 8), found = 0;

	for (int i = 0; i < n; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *de;

		while (d && (de = readdir(d))) {
			char sub[4400];
			DIR *s;
			struct dirent *e;

			if (!strncmp(de->d_name, "sbx-", 4)) {
				found++;
				continue;
			}
			if (strncmp(de->d_name, "core", 4))
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", dirs[i], de->d_name);
			s = opendir(sub);
			while (s && (e = readdir(s)))
				found += !strncmp(e->d_name, "sbx-", 4);
			if (s)
				closedir(s);
		}
		if (d)
			closedir(d);
	}
	return found;
}

/*
 * nemod runs a function that spins (an async call in flight), and is killed with -9. Its
 * sandboxes stop within 1 s; a restarted nemod finds none running and removes their cgroups.
 */
static void test_nemod_killed(void)
{
	char bin[512], body[1024];
	pid_t inits[16];
	int n = 0, alive = 0, waited;

	CU_ASSERT_EQUAL_FATAL(start_nemod(), 0);
	snprintf(bin, sizeof(bin), "%s/build/functions/test-hostile.so", nemo_test_srcdir());
	snprintf(body, sizeof(body),
		 "{\"runtime\":\"c\",\"handler\":\"spin\",\"timeout_ms\":60000,"
		 "\"code\":{\"path\":\"%s\"}}",
		 bin);
	CU_ASSERT_EQUAL_FATAL(status_of("PUT", ACT "/spinner?overwrite=true", body), 200);
	CU_ASSERT_EQUAL_FATAL(status_of("POST", ACT "/spinner?blocking=false", "{}"), 202);
	/* the call is in flight once its sandbox is up and spinning */
	for (waited = 0; waited < 10000 && n == 0; waited += 50) {
		test_msleep(50);
		n = children_of(env.nemod.pid, inits, 16);
	}
	CU_ASSERT_FATAL(n > 0);
	test_msleep(200);
	CU_ASSERT(sandbox_cgroups(env.root) > 0);
	CU_ASSERT_EQUAL(kill(env.nemod.pid, SIGKILL), 0);
	CU_ASSERT_EQUAL(test_proc_wait(&env.nemod, 5000), 128 + SIGKILL);
	env.running = false;
	test_msleep(1000);
	for (int i = 0; i < n; i++)
		alive += running(inits[i]);
	printf("\n  %d sandbox(es) of nemod, %d still running 1 s after kill -9", n, alive);
	CU_ASSERT_EQUAL(alive, 0);
	/* the dead nemod's cgroups are still there; the next one removes them at start */
	printf(", %d stale sandbox cgroup(s) before the restart", sandbox_cgroups(env.root));
	CU_ASSERT_EQUAL_FATAL(start_nemod(), 0);
	CU_ASSERT_EQUAL(sandbox_cgroups(env.root), 0);
	CU_ASSERT_EQUAL(children_of(env.nemod.pid, inits, 16), 0);
	/* and it serves: the function is still deployed */
	CU_ASSERT_EQUAL(test_proc_stop(&env.nemod, 10000), 0);
	env.running = false;
}

/* A uid range that holds a system user is refused at start, naming the user. */
static void test_uid_range_collision(void)
{
	char text[2048], *orig = test_read_file(env.config, NULL);
	char *at;

	CU_ASSERT_PTR_NOT_NULL_FATAL(orig);
	snprintf(text, sizeof(text), "%s", orig);
	at = strstr(text, "\"uid_base\": 300000");
	CU_ASSERT_PTR_NOT_NULL_FATAL(at);
	/* root is uid 0, "nobody" 65534: a range from 65000 holds nobody */
	memcpy(at, "\"uid_base\":  65000", 18);
	CU_ASSERT_EQUAL(test_write_text(env.config, text), 0);
	{
		char bin[512];
		char *argv[] = {bin, "--config", env.config, NULL};

		snprintf(bin, sizeof(bin), "%s/nemod", nemo_test_bindir());
		CU_ASSERT_EQUAL_FATAL(test_proc_start(&env.nemod, argv), 0);
		CU_ASSERT_NOT_EQUAL(test_proc_wait(&env.nemod, 10000), 0);
		CU_ASSERT(
			test_proc_output_has(&env.nemod, "collides with user 'nobody' (id 65534)"));
	}
	CU_ASSERT_EQUAL(test_write_text(env.config, orig), 0);
	free(orig);
}

NEMO_SUITE(isolation_nemod, suite_setup, suite_teardown,
	   {"kill -9 nemod: its sandboxes stop within 1 s, a restart finds none",
	    test_nemod_killed},
	   {"a uid range holding a system user is refused at start", test_uid_range_collision})
