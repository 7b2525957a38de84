/* test_sandbox.c - sandbox specs, isolation, lifecycle, hostile functions and warm pools. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nemo/cgroup.h"
#include "nemo/fn_ring.h"
#include "nemo/log.h"
#include "nemo/sandbox.h"
#include "proc.h"
#include "test.h"

/*
 * Every suite runs on its own cgroup root, nemo-test-<pid>, removed in teardown; roots left
 * by a test binary that died are removed at the next setup.
 */

static struct sbx_host *host;
static char root[64];

/*
 * A test binary that died left its root behind, and its sandboxes alive (their init was
 * reparented, not killed): kill what its cgroups still hold, then remove them.
 */
static void kill_cgroup_procs(const char *dir)
{
	char path[600];
	FILE *f;
	int pid;

	/* v2 kills a whole subtree at once, frozen or not; a v1-frozen task dies once thawed */
	snprintf(path, sizeof(path), "%s/cgroup.kill", dir);
	f = fopen(path, "w");
	if (f) {
		fputs("1", f);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/freezer.state", dir);
	f = fopen(path, "w");
	if (f) {
		fputs("THAWED", f);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "r");
	while (f && fscanf(f, "%d", &pid) == 1)
		kill(pid, SIGKILL);
	if (f)
		fclose(f);
}

static void rm_cgroup_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char sub[512];

	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_type == DT_DIR && de->d_name[0] != '.') {
			snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
			rm_cgroup_tree(sub);
		}
	closedir(d);
	kill_cgroup_procs(dir);
	/* killed tasks leave the cgroup a moment later */
	for (int i = 0; i < 500 && rmdir(dir) && errno == EBUSY; i++)
		usleep(1000);
}

/* Roots of test binaries that are gone, wherever the backend makes trees (v1 or v2). */
static void remove_stale_roots(void)
{
	char dirs[8][512];
	int n = sbx_cgroup_root_dirs("", dirs, 8);

	for (int i = 0; i < n; i++) {
		struct dirent *de;
		DIR *d = opendir(dirs[i]);

		while (d && (de = readdir(d))) {
			int pid;
			char sub[1024];

			if (sscanf(de->d_name, "nemo-test-%d", &pid) != 1 || kill(pid, 0) == 0)
				continue;
			snprintf(sub, sizeof(sub), "%.511s/%.255s", dirs[i], de->d_name);
			rm_cgroup_tree(sub);
		}
		if (d)
			closedir(d);
	}
}

static int suite_setup(void)
{
	struct sbx_host_config cfg = {0};

	remove_stale_roots();
	snprintf(root, sizeof(root), "nemo-test-%d", getpid());
	cfg.cgroup_root = root;
	host = sbx_host_new(&cfg);
	return host ? 0 : -1;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static int suite_teardown(void)
{
	char dirs[8][512];
	bool left = false;
	int n;

	sbx_host_destroy(host);
	host = NULL;
	n = sbx_cgroup_root_dirs(root, dirs, 8);
	for (int i = 0; i < n; i++) {
		if (exists(dirs[i])) {
			printf("\n  leftover cgroup %s\n", dirs[i]);
			left = true;
			rm_cgroup_tree(dirs[i]);
		}
	}
	return left ? -1 : 0;
}

static void fn_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/build/functions/%s", nemo_test_srcdir(), name);
}

static struct sbx_spec make_spec(int runtime, const char *file, const char *handler)
{
	struct sbx_spec s;

	sbx_spec_defaults(&s);
	snprintf(s.name, sizeof(s.name), "%s-%s", file, handler ? handler : "default");
	for (char *p = s.name; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
			    *p))
			*p = '_';
	s.runtime = runtime;
	fn_path(s.code, sizeof(s.code), file);
	if (handler)
		snprintf(s.handler, sizeof(s.handler), "%s", handler);
	else
		snprintf(s.handler, sizeof(s.handler),
			 runtime == SBX_RUNTIME_PYTHON ? "handler" : "handle");
	return s;
}

/*
 * The *_zygote suites run the same tests on instances forked from a zygote (c and python;
 * exec functions have none) instead of started from scratch.
 */
static bool via_zygote;

static int zygote_setup(void)
{
	via_zygote = true;
	return suite_setup();
}

static int zygote_teardown(void)
{
	via_zygote = false;
	return suite_teardown();
}

/*
 * The *_zygote_ready suites: the same tests again, each fork its zygote's ready fork (made
 * ahead by sbx_zygote_prepare(), set up before it joins its cgroups) handed over.
 */
static bool via_ready;

static int zygote_ready_setup(void)
{
	via_ready = true;
	return zygote_setup();
}

static int zygote_ready_teardown(void)
{
	via_ready = false;
	return zygote_teardown();
}

/*
 * A kernel that forbids unprivileged user namespaces cannot fork from a zygote: a test that
 * needs one skips, naming the setting and the value this machine has. Returns true then.
 */
static bool zygote_skip(void)
{
	char why[256];

	if (!sbx_zygote_supported(why, sizeof(why)))
		return false;
	nemo_test_skip(why);
	return true;
}

/* A zygote test: run only where the kernel lets zygotes fork. */
#define ZYGOTE_CASE(fn)               \
	static void fn##_zygote(void) \
	{                             \
		if (!zygote_skip())   \
			fn();         \
	}

/* A zygote of `s` on `core`, asserting it loaded. */
static struct sbx_sandbox *zygote_of(const struct sbx_spec *s, int core)
{
	char err[SBX_MSG_MAX] = "";
	struct sbx_sandbox *z = sbx_zygote_create(host, s, core, err, sizeof(err));

	if (!z)
		printf("\n  zygote of %s failed: %s (%s)\n", s->name, err, strerror(errno));
	CU_ASSERT_PTR_NOT_NULL_FATAL(z);
	CU_ASSERT_TRUE(sbx_is_zygote(z));
	return z;
}

/* Its ready fork made and parked, asserting it worked. */
static void ready_fork_of(struct sbx_sandbox *z)
{
	char err[SBX_MSG_MAX] = "";
	int rc = sbx_zygote_prepare(z, err, sizeof(err));

	if (rc)
		printf("\n  ready fork of %s failed: %s (%s)\n", sbx_spec_of(z)->name, err,
		       strerror(-rc));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_TRUE(sbx_zygote_ready(z));
}

/*
 * A READY fork of zygote `z` on `core`, asserting it worked: on demand, or (the
 * *_zygote_ready suites) its ready fork, made now and handed over.
 */
static struct sbx_sandbox *fork_of(struct sbx_sandbox *z, int core)
{
	char err[SBX_MSG_MAX] = "";
	struct sbx_sandbox *sb;

	if (via_ready)
		ready_fork_of(z);
	sb = sbx_zygote_fork(z, core, err, sizeof(err));
	if (!sb)
		printf("\n  fork of %s failed: %s (%s)\n", sbx_spec_of(z)->name, err,
		       strerror(errno));
	CU_ASSERT_PTR_NOT_NULL_FATAL(sb);
	CU_ASSERT_FALSE(sbx_is_zygote(sb));
	CU_ASSERT_EQUAL(sbx_state(sb), SBX_STATE_READY);
	if (via_ready)
		CU_ASSERT_TRUE(sbx_from_ready_fork(sb));
	CU_ASSERT_FALSE(sbx_zygote_ready(z));
	return sb;
}

static bool zygote_runtime(const struct sbx_spec *s)
{
	return via_zygote && (s->runtime == SBX_RUNTIME_C || s->runtime == SBX_RUNTIME_PYTHON);
}

/* A ready instance of `s` on `core`: create + init, or (zygote suites) a zygote's fork. */
static struct sbx_sandbox *start_on(const struct sbx_spec *s, int core)
{
	char err[SBX_MSG_MAX] = "";
	struct sbx_sandbox *sb;
	int rc;

	if (zygote_runtime(s)) {
		struct sbx_sandbox *z = zygote_of(s, core);

		sb = fork_of(z, core);
		sbx_destroy(z); /* retired: it goes with its fork */
		return sb;
	}
	sb = sbx_create(host, s, core);

	CU_ASSERT_PTR_NOT_NULL_FATAL(sb);
	CU_ASSERT_EQUAL(sbx_state(sb), SBX_STATE_CREATED);
	rc = sbx_init(sb, err, sizeof(err));
	if (rc)
		printf("\n  init of %s failed: %s\n", s->name, err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(sbx_state(sb), SBX_STATE_READY);
	return sb;
}

static struct sbx_sandbox *start(const struct sbx_spec *s)
{
	return start_on(s, 0);
}

/* Two instances of `s`; in the zygote suites, two forks of one zygote. */
static void start_two(const struct sbx_spec *s, struct sbx_sandbox **a, struct sbx_sandbox **b)
{
	struct sbx_sandbox *z;

	if (!zygote_runtime(s)) {
		*a = start(s);
		*b = start(s);
		return;
	}
	z = zygote_of(s, 0);
	*a = fork_of(z, 0);
	*b = fork_of(z, 0);
	sbx_destroy(z);
}

/* invoke with a text request; returns the status, copies the response text */
static enum sbx_status call(struct sbx_sandbox *sb, const char *req, char *out, size_t len)
{
	struct sbx_result r = {0};
	enum sbx_status st;

	CU_ASSERT_EQUAL(sbx_invoke(sb, req, strlen(req), &r), 0);
	st = r.status;
	if (out)
		snprintf(out, len, "%.*s%s%s", (int)r.response_len,
			 r.response ? (char *)r.response : "", r.response_len ? "" : "",
			 st == SBX_OK ? "" : r.message);
	sbx_result_release(&r);
	return st;
}

static struct sbx_sandbox *probe(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "identity");

	return start(&s);
}

/* ---- sandbox_spec ---- */

static void expect_spec_error(const char *json, const char *needle)
{
	struct sbx_spec s;
	char err[512] = "";

	CU_ASSERT_EQUAL(sbx_spec_parse(json, strlen(json), "fn.json", &s, err, sizeof(err)),
			-EINVAL);
	if (!strstr(err, needle))
		printf("\n  error was: %s (wanted '%s')\n", err, needle);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, needle));
}

static void test_spec_defaults(void)
{
	const char *json = "{\"name\":\"echo\",\"runtime\":\"c\",\"code\":\"/f/echo.so\"}";
	struct sbx_spec s;
	char err[256];

	CU_ASSERT_EQUAL(sbx_spec_parse(json, strlen(json), "fn.json", &s, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(s.name, "echo");
	CU_ASSERT_EQUAL(s.runtime, SBX_RUNTIME_C);
	CU_ASSERT_STRING_EQUAL(s.handler, "handle");
	CU_ASSERT_EQUAL(s.memory_mb, 128);
	CU_ASSERT_EQUAL(s.timeout_ms, 1000);
	CU_ASSERT_EQUAL(s.max_payload_bytes, 1 << 20);
	CU_ASSERT_EQUAL(s.concurrency, 1);
	CU_ASSERT_EQUAL(s.n_env, 0);
}

static void test_spec_full(void)
{
	const char *json = "{\"name\":\"ws\",\"runtime\":\"python\",\"code\":\"/f/ws.py\","
			   "\"handler\":\"run\",\"memory_mb\":64,\"timeout_ms\":250,"
			   "\"max_payload_bytes\":4096,\"concurrency\":4,"
			   "\"env\":{\"MODE\":\"fast\",\"LEVEL\":\"3\"}}";
	struct sbx_spec s;

	CU_ASSERT_EQUAL(sbx_spec_parse(json, strlen(json), "fn.json", &s, NULL, 0), 0);
	CU_ASSERT_EQUAL(s.runtime, SBX_RUNTIME_PYTHON);
	CU_ASSERT_STRING_EQUAL(s.handler, "run");
	CU_ASSERT_EQUAL(s.memory_mb, 64);
	CU_ASSERT_EQUAL(s.timeout_ms, 250);
	CU_ASSERT_EQUAL(s.max_payload_bytes, 4096);
	CU_ASSERT_EQUAL(s.concurrency, 4);
	CU_ASSERT_EQUAL(s.n_env, 2);
	CU_ASSERT_STRING_EQUAL(s.env[0], "MODE=fast");
	CU_ASSERT_STRING_EQUAL(s.env[1], "LEVEL=3");
}

static void test_spec_errors_name_the_field(void)
{
	expect_spec_error("{\"runtime\":\"c\",\"code\":\"/a\"}", "key 'name': required");
	expect_spec_error("{\"name\":\"a\",\"runtime\":\"go\",\"code\":\"/a\"}",
			  "key 'runtime': 'go' is not one of: c, python, exec");
	expect_spec_error("{\"name\":\"a\",\"runtime\":\"c\",\"code\":\"/a\",\"memory_mb\":0}",
			  "key 'memory_mb': 0 is out of range");
	expect_spec_error("{\"name\":\"a\",\"runtime\":\"c\",\"code\":\"/a\",\"timeout_ms\":\"1\"}",
			  "key 'timeout_ms': expected an integer");
	expect_spec_error("{\"name\":\"a\",\"runtime\":\"c\",\"code\":\"rel.so\"}",
			  "key 'code': 'rel.so' must be an absolute path");
	expect_spec_error("{\"name\":\"a b\",\"runtime\":\"c\",\"code\":\"/a\"}", "key 'name'");
	expect_spec_error("{\"name\":\"a\",\"runtime\":\"c\",\"code\":\"/a\",\"colour\":1}",
			  "key 'colour': unknown key");
	expect_spec_error("{\"name\":\"a\",\"runtime\":\"c\",\"code\":\"/a\",\"env\":{\"X\":1}}",
			  "key 'env.X': expected a string");
	expect_spec_error("{\"name\":\"a\",\"runtime\":\"c\",\"code\":\"/a\","
			  "\"exec_mode\":\"per_request\"}",
			  "key 'exec_mode': only for runtime 'exec'");
	expect_spec_error("{\"name\":", "fn.json: malformed JSON");
}

static void test_spec_file(void)
{
	char path[] = "/tmp/nemo-test-spec-XXXXXX", err[256];
	const char *json = "{\"name\":\"s\",\"runtime\":\"exec\",\"code\":\"/bin/cat\","
			   "\"exec_mode\":\"per_request\"}";
	struct sbx_spec s;
	int fd = mkstemp(path);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(write(fd, json, strlen(json)) == (ssize_t)strlen(json));
	close(fd);
	CU_ASSERT_EQUAL(sbx_spec_load(path, &s, err, sizeof(err)), 0);
	unlink(path);
	CU_ASSERT_EQUAL(s.exec_mode, SBX_EXEC_PER_REQUEST);
	CU_ASSERT_EQUAL(sbx_spec_load("/nonexistent/fn.json", &s, err, sizeof(err)), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot open"));
}

/* Code is checked at deploy without loading it: the handler must be an exported function. */
static void test_code_check(void)
{
	char so[512], py[512], ex[512], cut[] = "/tmp/nemo-test-cut-XXXXXX", err[SBX_MSG_MAX];
	char buf[4096];
	int in, out;
	ssize_t n;

	fn_path(so, sizeof(so), "echo.so");
	fn_path(py, sizeof(py), "wordstats.py");
	fn_path(ex, sizeof(ex), "exec-upper");
	CU_ASSERT_EQUAL(sbx_code_check(SBX_RUNTIME_C, so, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(sbx_code_check(SBX_RUNTIME_C, so, "handle", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(sbx_code_check(SBX_RUNTIME_C, so, "no_such", err, sizeof(err)), -ENOEXEC);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "handler 'no_such' not found in "));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "echo.so"));
	/* a symbol the .so only refers to (libc's memcpy) is not its handler */
	CU_ASSERT_EQUAL(sbx_code_check(SBX_RUNTIME_C, so, "memcpy", err, sizeof(err)), -ENOEXEC);
	CU_ASSERT_EQUAL(sbx_code_check(SBX_RUNTIME_C, py, NULL, err, sizeof(err)), -ENOEXEC);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not an ELF file"));
	/* a PIE program is ELF_DYN too, but exports no handler */
	CU_ASSERT_EQUAL(sbx_code_check(SBX_RUNTIME_C, ex, NULL, err, sizeof(err)), -ENOEXEC);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "handler 'handle' not found in "));
	CU_ASSERT_EQUAL(sbx_code_check(SBX_RUNTIME_C, "/nonexistent.so", NULL, err, sizeof(err)),
			-ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent.so: No such file"));
	CU_ASSERT_EQUAL(sbx_code_check(SBX_RUNTIME_PYTHON, py, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(sbx_code_check(SBX_RUNTIME_EXEC, ex, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(sbx_code_check(SBX_RUNTIME_EXEC, py, NULL, err, sizeof(err)), -ENOEXEC);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not executable"));
	/* the first 4 KiB of a real .so: headers that point past the end are refused */
	in = open(so, O_RDONLY);
	out = mkstemp(cut);
	CU_ASSERT_FATAL(in >= 0 && out >= 0);
	n = read(in, buf, sizeof(buf));
	CU_ASSERT(n > 0 && write(out, buf, (size_t)n) == n);
	close(in);
	close(out);
	CU_ASSERT_EQUAL(sbx_code_check(SBX_RUNTIME_C, cut, NULL, err, sizeof(err)), -ENOEXEC);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "malformed"));
	unlink(cut);
}

NEMO_SUITE(sandbox_spec, NULL, NULL, {"defaults", test_spec_defaults},
	   {"code checked without loading it", test_code_check},
	   {"every field parses", test_spec_full},
	   {"each error names the field", test_spec_errors_name_the_field},
	   {"from a file", test_spec_file})

/* ---- sandbox_isolation ---- */

static void own_ns(const char *ns, char *buf, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/ns/%s", ns);
	n = readlink(path, buf, len - 1);
	buf[n > 0 ? n : 0] = '\0';
}

static void test_namespaces(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "namespaces");
	const char *ns[] = {"pid", "mnt", "ipc", "uts", "net"};
	struct sbx_sandbox *a, *b;
	char out_a[512], out_b[512], mine[64];

	start_two(&s, &a, &b);
	CU_ASSERT_EQUAL(call(a, "", out_a, sizeof(out_a)), SBX_OK);
	CU_ASSERT_EQUAL(call(b, "", out_b, sizeof(out_b)), SBX_OK);
	for (size_t i = 0; i < 5; i++) {
		own_ns(ns[i], mine, sizeof(mine));
		/* never the host's */
		if (strstr(out_a, mine))
			printf("\n  sandbox shares the host's %s namespace\n", ns[i]);
		CU_ASSERT_PTR_NULL(strstr(out_a, mine));
	}
	/* pid, mount, ipc, uts are per sandbox (net is one empty namespace shared by all
	 * sandboxes of the host, see sbx_host_config.netns_per_sandbox) */
	CU_ASSERT_NOT_EQUAL(strncmp(out_a, out_b, strcspn(out_a, "\n")), 0);
	sbx_destroy(a);
	sbx_destroy(b);
}

static void test_identity_caps_nnp_seccomp(void)
{
	struct sbx_sandbox *sb = probe();
	char out[2048], want[64];
	uid_t uid = 0;

	CU_ASSERT_EQUAL(call(sb, "", out, sizeof(out)), SBX_OK);
	/* the function is PID 1 of its own PID namespace, as its function's own uid and gid */
	CU_ASSERT_EQUAL(sbx_host_function_uid(host, sbx_spec_of(sb)->name, &uid), 0);
	CU_ASSERT(uid >= 200000 && uid < 200000 + 65536);
	snprintf(want, sizeof(want), "pid=1 uid=%u gid=%u", (unsigned)uid, (unsigned)uid);
	if (!strstr(out, want))
		printf("\n  wanted '%s' in: %.200s\n", want, out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hostname=nemo-"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "CapEff:\t0000000000000000"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "CapPrm:\t0000000000000000"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "CapBnd:\t0000000000000000"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "CapAmb:\t0000000000000000"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "NoNewPrivs:\t1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "Seccomp:\t2"));
	/* nothing open of nemod's, the launcher's or (zygote forks) the zygote's: its /dev/null
	 * and its own socket */
	if (!strstr(out, "\nfds=0 1 2 3\n"))
		printf("\n  c instance's fds: %.200s\n", out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\nfds=0 1 2 3\n"));
	sbx_destroy(sb);
	{
		struct sbx_spec py = make_spec(SBX_RUNTIME_PYTHON, "test-tenant.py", "open_fds");

		sb = start(&py);
		CU_ASSERT_EQUAL(call(sb, "", out, sizeof(out)), SBX_OK);
		if (strcmp(out, "0 1 2 3"))
			printf("\n  python instance's fds: %.200s\n", out);
		CU_ASSERT_STRING_EQUAL(out, "0 1 2 3");
		sbx_destroy(sb);
	}
}

static void test_seccomp_denies(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "syscalls");
	struct sbx_sandbox *sb = start(&s);
	const char *denied[] = {"mount=",	"ptrace=",     "bpf=",	  "perf_event_open=",
				"init_module=", "kexec_load=", "unshare="};
	char out[2048], want[64];

	CU_ASSERT_EQUAL(call(sb, "", out, sizeof(out)), SBX_OK);
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		snprintf(want, sizeof(want), "%sOperation not permitted", denied[i]);
		if (!strstr(out, want))
			printf("\n  wanted %s in:\n%s", want, out);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	}
	/* clone3 says ENOSYS so that glibc falls back to clone and threads still work */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "clone3=Function not implemented"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "thread=ok"));
	sbx_destroy(sb);
}

static void test_filesystem(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "tmp_write");
	struct sbx_spec w = make_spec(SBX_RUNTIME_C, "test-hostile.so", "write_root");
	struct sbx_sandbox *sb = start(&s), *wr = start(&w);
	char out[512], name[64], host_path[128];

	/* a private, writable /tmp: the file is not in the host's /tmp */
	snprintf(name, sizeof(name), "nemo-probe-%d", getpid());
	CU_ASSERT_EQUAL(call(sb, name, out, sizeof(out)), SBX_OK);
	CU_ASSERT_STRING_EQUAL(out, "wrote and read back 'nemo'");
	snprintf(host_path, sizeof(host_path), "/tmp/%s", name);
	CU_ASSERT_FALSE(exists(host_path));
	/* a read-only view of everything else */
	CU_ASSERT_EQUAL(call(wr, "", out, sizeof(out)), SBX_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "create /: Read-only file system"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "write /etc: "));
	CU_ASSERT_FALSE(exists("/nemo-sandbox-escape"));
	sbx_destroy(sb);
	sbx_destroy(wr);
}

static void test_rlimits(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "limits");
	struct sbx_sandbox *sb;
	char out[512];

	s.memory_mb = 64;
	sb = start(&s);
	CU_ASSERT_EQUAL(call(sb, "", out, sizeof(out)), SBX_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "core=0\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "nofile=1024\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "fsize=67108864\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "memlock=65536\n"));
	sbx_destroy(sb);
}

static uint64_t read_u64(const char *path)
{
	FILE *f = fopen(path, "r");
	unsigned long long v = 0;

	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}

static bool file_has_line(const char *path, const char *line)
{
	char buf[256];
	FILE *f = fopen(path, "r");
	bool found = false;

	while (f && fgets(buf, sizeof(buf), f))
		if (strncmp(buf, line, strlen(line)) == 0 && buf[strlen(line)] == '\n')
			found = true;
	if (f)
		fclose(f);
	return found;
}

/* Whether `pid` may run only on `cpu`: its cpuset, as the scheduler applies it. */
static bool runs_only_on(pid_t pid, int cpu)
{
	cpu_set_t set;

	return sched_getaffinity(pid, sizeof(set), &set) == 0 && CPU_COUNT(&set) == 1 &&
	       CPU_ISSET(cpu, &set);
}

static void test_cgroup(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "echo.so", NULL);
	int mode = sbx_cgroup_detect(NULL, 0), core = 1 % sbx_host_n_cores(host);
	bool v1 = mode == SBX_CGROUP_V1;
	struct sbx_sandbox *sb;
	char dir[512], path[600], pid[16];

	s.memory_mb = 48;
	s.max_pids = 7;
	/* a zygote's fork is written into its cgroup before its first request */
	sb = via_zygote ? start_on(&s, core) : sbx_create(host, &s, core);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sb);
	/* the backend is the one the machine has, never a default */
	CU_ASSERT_FATAL(mode == SBX_CGROUP_V1 || mode == SBX_CGROUP_V2);
	CU_ASSERT_STRING_EQUAL(sbx_host_cgroup_backend(host), v1 ? "v1" : "v2");
	snprintf(pid, sizeof(pid), "%d", sbx_pid(sb));
	CU_ASSERT_EQUAL_FATAL(sbx_sandbox_cgroup(sb, "memory", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, v1 ? "memory.limit_in_bytes" : "memory.max");
	CU_ASSERT_EQUAL(read_u64(path), 48ull << 20);
	CU_ASSERT_EQUAL_FATAL(sbx_sandbox_cgroup(sb, "pids", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/pids.max", dir);
	CU_ASSERT_EQUAL(read_u64(path), 7);
	/* it was forked in: its init is there from the start, in every hierarchy */
	CU_ASSERT_EQUAL_FATAL(sbx_sandbox_cgroup(sb, "freezer", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	CU_ASSERT_TRUE(file_has_line(path, pid));
	CU_ASSERT_EQUAL(sbx_cgroup_pid_core(host, sbx_pid(sb)), core);
	CU_ASSERT_TRUE(runs_only_on(sbx_pid(sb), core));
	sbx_destroy(sb);
}

/*
 * v2 under systemd: a process whose cgroup was not delegated (no controllers offered to it)
 * gets no host, and the message names the missing controller and the unit setting that
 * fixes it. The child moves into a cgroup under this process's leaf, which offers none.
 */
static void test_undelegated_refused(void)
{
	char dirs[1][512], dir[700], logf[64], log[8192] = "";
	int fd, st = 0;
	pid_t child;

	if (sbx_cgroup_detect(NULL, 0) != SBX_CGROUP_V2) {
		nemo_test_skip("cgroup v1 has no delegation to refuse (v2 only)");
		return;
	}
	CU_ASSERT_EQUAL_FATAL(sbx_cgroup_root_dirs("", dirs, 1), 1);
	snprintf(dir, sizeof(dir), "%.511snemo-daemon", dirs[0]);
	if (!exists(dir)) {
		/* no leaf: this process runs in the hierarchy's root, which owns every controller */
		nemo_test_skip("running in the root cgroup, which is never undelegated");
		return;
	}
	snprintf(dir, sizeof(dir), "%.511snemo-daemon/undelegated-%d", dirs[0], getpid());
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
	snprintf(logf, sizeof(logf), "/tmp/nemo-undelegated-%d.log", getpid());
	child = fork();
	if (child == 0) {
		struct sbx_host_config cfg = {.cgroup_root = "nemo-undelegated"};
		char procs[800];
		FILE *f;

		fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(100);
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
		f = fopen(procs, "w");
		if (!f || fprintf(f, "0\n") < 0 || fclose(f))
			_exit(101);
		_exit(sbx_host_new(&cfg) ? 0 : errno);
	}
	CU_ASSERT_FATAL(child > 0);
	waitpid(child, &st, 0);
	fd = open(logf, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, log, sizeof(log) - 1);

		log[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	printf("\n    exit %d, said: %.300s", WIFEXITED(st) ? WEXITSTATUS(st) : -1, log);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "the 'cpu' controller is not available"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "Delegate=yes"));
	unlink(logf);
	for (int i = 0; i < 500 && rmdir(dir) && errno == EBUSY; i++)
		usleep(1000);
}

static void test_no_network(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-hostile.so", "net");
	struct sbx_sandbox *sb = start(&s);
	char out[512];

	CU_ASSERT_EQUAL(call(sb, "", out, sizeof(out)), SBX_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "inet connect: Network is unreachable"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "unix socket Operation not permitted"));
	sbx_destroy(sb);
}

NEMO_SUITE(sandbox_isolation, suite_setup, suite_teardown,
	   {"new pid, mount, ipc, uts, net namespaces", test_namespaces},
	   {"unprivileged uid, no capabilities, no_new_privs, seccomp",
	    test_identity_caps_nnp_seccomp},
	   {"seccomp denies dangerous calls, clone3 is ENOSYS, threads work", test_seccomp_denies},
	   {"read-only filesystem, private /tmp", test_filesystem}, {"rlimits", test_rlimits},
	   {"own cgroup with memory and pids limits, forked in", test_cgroup},
	   {"v2: a cgroup not delegated is refused, naming the controller",
	    test_undelegated_refused},
	   {"no network", test_no_network})

/* ---- sandbox_lifecycle ---- */

static void test_c_echo_roundtrip(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "echo.so", NULL);
	struct sbx_sandbox *sb = start(&s);
	struct sbx_result r = {0};
	char req[1024];

	for (size_t i = 0; i < sizeof(req); i++)
		req[i] = (char)('a' + i % 26);
	CU_ASSERT_EQUAL(sbx_invoke(sb, req, sizeof(req), &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	CU_ASSERT_EQUAL_FATAL(r.response_len, sizeof(req));
	CU_ASSERT_EQUAL(memcmp(r.response, req, sizeof(req)), 0);
	CU_ASSERT(r.times.run_ns > 0);
	sbx_result_release(&r);
	/* the empty request is a request too */
	CU_ASSERT_EQUAL(sbx_invoke(sb, "", 0, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	CU_ASSERT_EQUAL(r.response_len, 0);
	sbx_result_release(&r);
	sbx_destroy(sb);
}

static void test_sha256(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "sha256.so", NULL);
	struct sbx_sandbox *sb = start(&s);
	char out[256];

	/* sha256("abc"), one round */
	CU_ASSERT_EQUAL(call(sb, "1\nabc", out, sizeof(out)), SBX_OK);
	CU_ASSERT_STRING_EQUAL(out,
			       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CU_ASSERT_EQUAL(call(sb, "zero", out, sizeof(out)), SBX_ERR_FUNCTION);
	sbx_destroy(sb);
}

static void test_python(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_PYTHON, "wordstats.py", NULL);
	struct sbx_sandbox *sb = start(&s);
	char out[1024];

	CU_ASSERT_EQUAL(call(sb, "{\"text\":\"the cat and the hat\",\"top\":1}", out, sizeof(out)),
			SBX_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"words\": 5"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[[\"the\", 2]]"));
	sbx_destroy(sb);
}

static void test_exec_modes(void)
{
	struct sbx_spec p = make_spec(SBX_RUNTIME_EXEC, "exec-upper", "-");
	struct sbx_spec r = make_spec(SBX_RUNTIME_EXEC, "sort.sh", "-");
	struct sbx_sandbox *a, *b;
	char out[256];

	r.exec_mode = SBX_EXEC_PER_REQUEST;
	a = start(&p);
	b = start(&r);
	CU_ASSERT_EQUAL(call(a, "hello exec", out, sizeof(out)), SBX_OK);
	CU_ASSERT_STRING_EQUAL(out, "HELLO EXEC");
	CU_ASSERT_EQUAL(call(a, "again", out, sizeof(out)), SBX_OK);
	CU_ASSERT_STRING_EQUAL(out, "AGAIN");
	if (call(b, "pear\napple\nfig\n", out, sizeof(out)) != SBX_OK)
		printf("\n  sort.sh: %s\n", out);
	CU_ASSERT_STRING_EQUAL(out, "apple\nfig\npear\n");
	sbx_destroy(a);
	sbx_destroy(b);
}

/*
 * A response framed with the function's log lines (NEMO_LOG_LIMIT): a 4-byte length, the
 * lines, the response. Returns the number of lines, or -1 when it is not framed so.
 */
static int split_logged(const struct sbx_result *r, char *lines, size_t lines_len, char *resp,
			size_t resp_len)
{
	uint32_t n;
	int count = 0;

	if (!r->response || r->response_len < 4)
		return -1;
	memcpy(&n, r->response, 4);
	if (n > r->response_len - 4 || n >= lines_len || r->response_len - 4 - n >= resp_len)
		return -1;
	memcpy(lines, (const char *)r->response + 4, n);
	lines[n] = '\0';
	memcpy(resp, (const char *)r->response + 4 + n, r->response_len - 4 - n);
	resp[r->response_len - 4 - n] = '\0';
	for (const char *l = lines; n && l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		count++;
	return count;
}

/* Every line is "<UTC time>Z stderr: to stderr <k>", k counting up from 1. */
static bool stderr_lines_in_order(const char *lines, int count)
{
	const char *l = lines;

	for (int k = 1; k <= count; k++) {
		char want[48];
		const char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l) : strlen(l);

		snprintf(want, sizeof(want), "Z stderr: to stderr %d", k);
		if (len < strlen(want) || strncmp(l + len - strlen(want), want, strlen(want)) ||
		    strncmp(l, "20", 2))
			return false;
		l = end ? end + 1 : l + len;
	}
	return true;
}

static void test_exec_stderr_logs(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_EXEC, "test-stderr.sh", "-");
	struct sbx_spec small = s;
	struct sbx_sandbox *sb, *sb_small;
	struct sbx_result r = {0};
	char lines[8192], resp[256];
	int n;

	s.exec_mode = SBX_EXEC_PER_REQUEST;
	snprintf(s.env[s.n_env++], SBX_ENV_LEN, "NEMO_LOG_LIMIT=4096");
	small = s;
	snprintf(small.name, sizeof(small.name), "test-stderr-small");
	snprintf(small.env[small.n_env - 1], SBX_ENV_LEN, "NEMO_LOG_LIMIT=200");
	sb = start(&s);
	sb_small = start(&small);
	/* stdout is the response, stderr the log lines, labelled as such */
	CU_ASSERT_EQUAL(sbx_invoke(sb, "hello exec", 10, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	n = split_logged(&r, lines, sizeof(lines), resp, sizeof(resp));
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_STRING_EQUAL(resp, "hello exec");
	CU_ASSERT(stderr_lines_in_order(lines, 2));
	CU_ASSERT_PTR_NULL(strstr(lines, "stdout:"));
	CU_ASSERT_PTR_NULL(strstr(lines, "hello"));
	sbx_result_release(&r);
	/* the next call gets its own lines only */
	CU_ASSERT_EQUAL(sbx_invoke(sb, "3 more", 6, &r), 0);
	n = split_logged(&r, lines, sizeof(lines), resp, sizeof(resp));
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_STRING_EQUAL(resp, "3 more");
	CU_ASSERT(stderr_lines_in_order(lines, 3));
	sbx_result_release(&r);
	/* 500 lines against a limit of 200 bytes: whole lines, the first ones, within it */
	CU_ASSERT_EQUAL(sbx_invoke(sb_small, "500 x", 5, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	n = split_logged(&r, lines, sizeof(lines), resp, sizeof(resp));
	CU_ASSERT(n >= 1 && n < 500);
	CU_ASSERT(strlen(lines) <= 200);
	CU_ASSERT(stderr_lines_in_order(lines, n));
	CU_ASSERT_STRING_EQUAL(resp, "500 x");
	printf("\n  500 stderr lines, limit 200 bytes: %d lines, %zu bytes kept\n", n,
	       strlen(lines));
	sbx_result_release(&r);
	sbx_destroy(sb);
	sbx_destroy(sb_small);
}

static void test_function_error(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "fail");
	struct sbx_sandbox *sb = start(&s);
	char out[256];

	CU_ASSERT_EQUAL(call(sb, "", out, sizeof(out)), SBX_ERR_FUNCTION);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "function error 22: bad input: no"));
	/* an error is an answer: the instance serves on */
	CU_ASSERT_EQUAL(sbx_state(sb), SBX_STATE_READY);
	sbx_destroy(sb);
}

static void test_freeze_thaw_move(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "nap");
	struct sbx_sandbox *sb = start(&s);
	char out[64];

	CU_ASSERT_EQUAL(call(sb, "0", out, sizeof(out)), SBX_OK);
	CU_ASSERT_EQUAL(sbx_freeze(sb), 0);
	CU_ASSERT_EQUAL(sbx_state(sb), SBX_STATE_FROZEN);
	CU_ASSERT_EQUAL(call(sb, "0", out, sizeof(out)), SBX_ERR_STATE);
	CU_ASSERT_EQUAL(sbx_move(sb, sbx_host_n_cores(host) - 1), 0);
	CU_ASSERT_EQUAL(sbx_core(sb), sbx_host_n_cores(host) - 1);
	/* the kernel's view: in the new core's harvest cgroup, on its CPU only */
	CU_ASSERT_EQUAL(sbx_cgroup_pid_core(host, sbx_pid(sb)), sbx_host_n_cores(host) - 1);
	CU_ASSERT_TRUE(runs_only_on(sbx_pid(sb), sbx_host_n_cores(host) - 1));
	CU_ASSERT_EQUAL(sbx_thaw(sb), 0);
	/* the same instance, state kept: its second call */
	CU_ASSERT_EQUAL(call(sb, "0", out, sizeof(out)), SBX_OK);
	CU_ASSERT_STRING_EQUAL(out, "calls=2");
	CU_ASSERT_EQUAL(sbx_move(sb, 99), -EINVAL);
	sbx_destroy(sb);
}

static void test_payload_limit(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "nap");
	struct sbx_spec big = make_spec(SBX_RUNTIME_C, "test-probe.so", "too_big");
	struct sbx_sandbox *sb, *b;
	struct sbx_result r = {0};
	char req[129] = {0};
	char out[64];

	s.max_payload_bytes = 128;
	sb = start(&s);
	memset(req, '0', sizeof(req));
	CU_ASSERT_EQUAL(sbx_invoke(sb, req, sizeof(req), &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_ERR_PAYLOAD_TOO_LARGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "129 bytes is over the limit of 128"));
	/* it never reached the function: the next call is the first */
	CU_ASSERT_EQUAL(call(sb, "0", out, sizeof(out)), SBX_OK);
	CU_ASSERT_STRING_EQUAL(out, "calls=1");
	sbx_destroy(sb);
	big.max_payload_bytes = 4096;
	b = start(&big);
	CU_ASSERT_EQUAL(call(b, "", out, sizeof(out)), SBX_ERR_RESPONSE_TOO_LARGE);
	sbx_destroy(b);
}

NEMO_SUITE(sandbox_lifecycle, suite_setup, suite_teardown,
	   {"c echo, 1 KiB round trip", test_c_echo_roundtrip}, {"c sha256 sample", test_sha256},
	   {"python wordstats sample", test_python},
	   {"exec persistent and per request", test_exec_modes},
	   {"exec per request: stdout the response, stderr the log lines, within the limit",
	    test_exec_stderr_logs},
	   {"function error is a result", test_function_error},
	   {"freeze, move, thaw", test_freeze_thaw_move},
	   {"payload over the limit never reaches the function", test_payload_limit})

/* ---- sandbox_hostile ---- */

/* Sandbox cgroups left in the kernel's tree under this suite's root. */
static int leftover_sandbox_cgroups(void)
{
	return sbx_cgroup_sandbox_dirs(host);
}

static void test_bad_code(void)
{
	struct sbx_spec bad = make_spec(SBX_RUNTIME_C, "test-badload.so", NULL);
	struct sbx_spec missing = make_spec(SBX_RUNTIME_C, "echo.so", "no_such_handler");
	struct sbx_spec nofile = make_spec(SBX_RUNTIME_C, "does-not-exist.so", NULL);
	struct sbx_spec py = make_spec(SBX_RUNTIME_PYTHON, "wordstats.py", "nope");
	struct sbx_spec ex = make_spec(SBX_RUNTIME_EXEC, "does-not-exist", "-");
	struct {
		struct sbx_spec *spec;
		const char *why;
	} cases[] = {
		{&bad, "code does not load: "},
		{&missing, "handler 'no_such_handler' not found"},
		{&nofile, "cannot open shared object file: No such file or directory"},
		{&py, "handler 'nope' not found in module wordstats"},
		{&ex, "cannot execute"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sbx_sandbox *sb;
		char err[SBX_MSG_MAX] = "";

		if (via_zygote) {
			/* a zygote loads the code: the same error, at its creation */
			bool exec = cases[i].spec->runtime == SBX_RUNTIME_EXEC;

			CU_ASSERT_PTR_NULL(
				sbx_zygote_create(host, cases[i].spec, 0, err, sizeof(err)));
			CU_ASSERT_EQUAL(errno, exec ? ENOTSUP : ENOEXEC);
			if (!strstr(err, exec ? "exec functions have no zygote" : cases[i].why))
				printf("\n  zygote error was: %s (wanted '%s')\n", err,
				       cases[i].why);
			CU_ASSERT_PTR_NOT_NULL(
				strstr(err, exec ? "exec functions have no zygote" : cases[i].why));
			continue;
		}
		sb = sbx_create(host, cases[i].spec, 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(sb);
		CU_ASSERT_EQUAL(sbx_init(sb, err, sizeof(err)), -ENOEXEC);
		if (!strstr(err, cases[i].why))
			printf("\n  init error was: %s (wanted '%s')\n", err, cases[i].why);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].why));
		CU_ASSERT_EQUAL(sbx_state(sb), SBX_STATE_DEAD);
		sbx_destroy(sb);
	}
	CU_ASSERT_EQUAL(leftover_sandbox_cgroups(), 0);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
}

/* Every hostile function, back to back, while a bystander keeps answering. */
static void test_hostile_back_to_back(void)
{
	struct sbx_spec echo = make_spec(SBX_RUNTIME_C, "echo.so", NULL);
	struct {
		const char *handler;
		enum sbx_status status;
		const char *says;
	} cases[] = {
		{"crash", SBX_ERR_CRASHED, "killed by signal 11"},
		{"exit_early", SBX_ERR_CRASHED, "exited with status 3"},
		{"spin", SBX_ERR_TIMEOUT, "timed out after 300 ms"},
		{"memhog", SBX_ERR_OOM, "out of memory: killed by the memory cgroup at 32 MiB"},
		{"forkbomb", SBX_OK, "then fork failed: Resource temporarily unavailable"},
		{"net", SBX_OK, "inet connect: Network is unreachable"},
		{"write_root", SBX_OK, "create /: Read-only file system"},
		{"aborts", SBX_ERR_CRASHED, "killed by signal 6 (Aborted)"},
		{"huge_length", SBX_ERR_RESPONSE_TOO_LARGE,
		 "response of 4294967301 bytes is over the limit of 1048576 bytes"},
	};
	struct sbx_sandbox *bystander = start(&echo);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-hostile.so", cases[i].handler);
		struct sbx_sandbox *sb;
		uint64_t t0 = 0;
		char out[512];
		enum sbx_status st;

		/* 300 ms bounds the spinner; the memory hog is to meet its 32 MiB limit, not a
		 * clock: under emulation (check-vm's TCG guests) writing 32 MiB and the OOM kill
		 * took 280-410 ms, a race with a 300 ms timeout that the OOM lost about half the
		 * time. With 2 s the case still fails if the limit does not stop it */
		s.timeout_ms = strcmp(cases[i].handler, "memhog") ? 300 : 2000;
		s.memory_mb = 32;
		s.max_pids = 16;
		sb = start(&s);
		(void)t0;
		st = call(sb, "", out, sizeof(out));
		if (st != cases[i].status || !strstr(out, cases[i].says))
			printf("\n  %s: %s '%s' (wanted %s '%s')\n", cases[i].handler,
			       sbx_status_name(st), out, sbx_status_name(cases[i].status),
			       cases[i].says);
		CU_ASSERT_EQUAL(st, cases[i].status);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, cases[i].says));
		if (cases[i].status != SBX_OK && cases[i].status != SBX_ERR_RESPONSE_TOO_LARGE)
			CU_ASSERT_EQUAL(sbx_state(sb), SBX_STATE_DEAD);
		if (!strcmp(cases[i].handler, "forkbomb")) {
			int forked = 0;

			sscanf(out, "forked %d", &forked);
			/* init + children + grandchildren stay under pids.max */
			CU_ASSERT(forked > 0 && forked < 16);
		}
		sbx_destroy(sb);
		/* the bystander never noticed */
		CU_ASSERT_EQUAL(call(bystander, "still here", out, sizeof(out)), SBX_OK);
		CU_ASSERT_STRING_EQUAL(out, "still here");
	}
	sbx_destroy(bystander);
	CU_ASSERT_EQUAL(leftover_sandbox_cgroups(), 0);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
}

static void test_crash_detected_at_once(void)
{
	struct sbx_sandbox *sb = probe();

	/* killed from outside while idle: the state says so without an invoke */
	kill(sbx_pid(sb), SIGKILL);
	for (int i = 0; i < 200 && sbx_state(sb) != SBX_STATE_DEAD; i++)
		usleep(1000);
	CU_ASSERT_EQUAL(sbx_state(sb), SBX_STATE_DEAD);
	sbx_destroy(sb);
}

NEMO_SUITE(sandbox_hostile, suite_setup, suite_teardown,
	   {"code that does not load, missing handler: error at init", test_bad_code},
	   {"crash, timeout, OOM, fork bomb, network, write to /: contained",
	    test_hostile_back_to_back},
	   {"a dead idle instance is seen at once", test_crash_detected_at_once})

/* ---- sandbox_pool ---- */

static void test_pool_paths(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "nap");
	struct sbx_pool *pool = sbx_pool_new(host, NULL, NULL);
	struct sbx_pool_stats st;
	struct sbx_result r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &s), 0);
	/* cold: create and init timed */
	CU_ASSERT_EQUAL(sbx_pool_invoke(pool, s.name, 0, "0", 1, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	CU_ASSERT_EQUAL(r.path, SBX_START_COLD);
	CU_ASSERT(r.times.create_ns > 0 && r.times.init_ns > 0 && r.times.run_ns > 0);
	sbx_result_release(&r);
	/* warm: the same instance, no create or init */
	CU_ASSERT_EQUAL(sbx_pool_invoke(pool, s.name, 0, "0", 1, &r), 0);
	CU_ASSERT_EQUAL(r.path, SBX_START_WARM);
	CU_ASSERT_EQUAL(r.times.create_ns, 0);
	CU_ASSERT_EQUAL(r.times.init_ns, 0);
	CU_ASSERT_STRING_EQUAL(r.response ? (char *)r.response : "(no response)", "calls=2");
	sbx_result_release(&r);
	/* pre-warmed: made ahead, first use says so */
	CU_ASSERT_EQUAL(sbx_pool_prewarm(pool, s.name, 0, 2), 2);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.idle, 3);
	CU_ASSERT_EQUAL(st.prewarmed, 2);
	CU_ASSERT_EQUAL(sbx_pool_invoke(pool, s.name, 0, "0", 1, &r), 0);
	CU_ASSERT_EQUAL(r.path, SBX_START_PREWARMED);
	CU_ASSERT_STRING_EQUAL(r.response ? (char *)r.response : "(no response)", "calls=1");
	sbx_result_release(&r);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.cold_starts, 1);
	CU_ASSERT_EQUAL(st.warm_starts, 1);
	CU_ASSERT_EQUAL(st.prewarmed_starts, 1);
	CU_ASSERT_EQUAL(sbx_pool_invoke(pool, "nobody", 0, "", 0, &r), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "not deployed"));
	sbx_pool_destroy(pool);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
}

static void test_pool_crash_replaced(void)
{
	struct sbx_spec crash = make_spec(SBX_RUNTIME_C, "test-hostile.so", "crash");
	struct sbx_pool *pool = sbx_pool_new(host, NULL, NULL);
	struct sbx_pool_stats st;
	struct sbx_result r;

	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &crash), 0);
	CU_ASSERT_EQUAL(sbx_pool_prewarm(pool, crash.name, 0, 1), 1);
	CU_ASSERT_EQUAL(sbx_pool_invoke(pool, crash.name, 0, "", 0, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_ERR_CRASHED);
	CU_ASSERT_EQUAL(r.path, SBX_START_PREWARMED);
	sbx_result_release(&r);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, crash.name, &st), 0);
	CU_ASSERT_EQUAL(st.crashes, 1);
	/* replaced: a fresh pre-warmed instance waits */
	CU_ASSERT_EQUAL(st.idle, 1);
	CU_ASSERT_EQUAL(st.prewarmed, 1);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 1);
	sbx_pool_destroy(pool);
}

static void test_pool_ttl(void)
{
	/* long enough that making two instances fits in it on a host 40x slower (emulated) */
	struct sbx_keepalive_params p = {.ttl_ns = 500 * 1000000ull};
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "echo.so", NULL);
	struct sbx_pool *pool = sbx_pool_new(host, &sbx_keepalive_ttl, &p);
	struct sbx_pool_stats st;

	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &s), 0);
	CU_ASSERT_EQUAL(sbx_pool_prewarm(pool, s.name, 0, 2), 2);
	CU_ASSERT_EQUAL(sbx_pool_maintain(pool), 0);
	usleep(600 * 1000);
	CU_ASSERT_EQUAL(sbx_pool_maintain(pool), 2);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.idle, 0);
	CU_ASSERT_EQUAL(st.expirations, 2);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
	sbx_pool_destroy(pool);
}

/* Greedy-dual keeps what is used often and cheap to hold, whatever was used last. */
static void test_greedy_dual_order(void)
{
	const struct sbx_keepalive_ops *gd = &sbx_keepalive_greedy_dual;
	struct sbx_keepalive_params params = {0};
	struct {
		struct sbx_keepalive_params p;
		double clock;
	} state = {params, 0};
	struct sbx_keepalive_entry hot = {.init_cost_ns = 5000000,
					  .memory_bytes = 4 << 20,
					  .frequency = 100,
					  .last_used_ns = 1};
	struct sbx_keepalive_entry cold = {.init_cost_ns = 5000000,
					   .memory_bytes = 4 << 20,
					   .frequency = 1,
					   .last_used_ns = 2};
	struct sbx_keepalive_entry big = {.init_cost_ns = 5000000,
					  .memory_bytes = 400 << 20,
					  .frequency = 100,
					  .last_used_ns = 3};

	gd->on_idle(&state, &hot, 10);
	gd->on_idle(&state, &cold, 10);
	gd->on_idle(&state, &big, 10);
	CU_ASSERT(gd->compare(&state, &cold, &hot) < 0);
	CU_ASSERT(gd->compare(&state, &big, &hot) < 0);
	/* the clock rises to the evicted priority: later arrivals start from there */
	gd->on_evict(&state, &cold);
	CU_ASSERT_DOUBLE_EQUAL(state.clock, cold.priority, 1e-9);
	CU_ASSERT_FALSE(gd->expired(&state, &hot, 1000000000000ull));
	/* fixed TTL evicts the least recently used instead */
	CU_ASSERT(sbx_keepalive_ttl.compare(&state, &hot, &cold) < 0);
}

static void test_pool_budget_eviction(void)
{
	struct sbx_keepalive_params p = {.memory_budget_bytes = 0};
	struct sbx_spec a = make_spec(SBX_RUNTIME_C, "echo.so", NULL);
	struct sbx_spec b = make_spec(SBX_RUNTIME_C, "test-probe.so", "nap");
	struct sbx_pool *pool;
	struct sbx_pool_stats st;
	uint64_t one;
	struct sbx_sandbox *sb, *b2;
	struct sbx_result r;
	int made;

	/*
	 * Measure one instance, then allow a budget of about two. The second of two: the first
	 * to touch shared pages and kernel objects is charged for them (cgroup v2 charges
	 * kernel memory too), so the first alone would overstate what each costs.
	 */
	sb = start(&a);
	b2 = start(&a);
	CU_ASSERT_EQUAL(sbx_memory_bytes(b2, &one), 0);
	sbx_destroy(b2);
	sbx_destroy(sb);
	p.memory_budget_bytes = one * 2 + one / 2;
	pool = sbx_pool_new(host, &sbx_keepalive_greedy_dual, &p);
	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &a), 0);
	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &b), 0);
	/*
	 * Pre-warming stops when the budget is full: at about two, but instances of one
	 * function measure 404-708 KiB from run to run here, so the count alone proves
	 * nothing. What the pool promises: it admits an instance on its last measured size and
	 * corrects that to what the new one measures, so it holds at most one instance more than
	 * the budget (seen on v2, where a charge varies most: 4 made, 1064 KiB for 920).
	 */
	made = sbx_pool_prewarm(pool, a.name, 0, 10);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, NULL, &st), 0);
	printf("\n    one instance %.0f KiB, budget %.0f KiB: %d pre-warmed, holding %.0f KiB",
	       one / 1024.0, p.memory_budget_bytes / 1024.0, made, st.memory_bytes / 1024.0);
	CU_ASSERT(made >= 1 && made < 10);
	CU_ASSERT(st.memory_bytes <= p.memory_budget_bytes + one);
	/* b needs room: one of a's instances goes */
	CU_ASSERT_EQUAL(sbx_pool_invoke(pool, b.name, 0, "0", 1, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	CU_ASSERT_EQUAL(r.path, SBX_START_COLD);
	sbx_result_release(&r);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, NULL, &st), 0);
	CU_ASSERT(st.evictions >= 1);
	CU_ASSERT_EQUAL(st.idle, (uint32_t)made - st.evictions + 1);
	sbx_pool_destroy(pool);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The host's sandboxes that the kernel reads frozen (freezer.state, cgroup.events). */
static int kernel_frozen_sandboxes(void)
{
	uint32_t frozen = 0;

	CU_ASSERT_EQUAL(sbx_cgroup_core_sandboxes(host, -1, NULL, &frozen), 0);
	return (int)frozen;
}

/* One sbx_pool_invoke on its own thread, as a gateway worker makes it. */
struct pool_call {
	struct sbx_pool *pool;
	const char *name;
	int core;
	const char *req;
	struct sbx_result res;
	uint64_t ms; /* how long it took */
	pthread_t thread;
	bool started;
	volatile bool done;
};

static void *pool_call_main(void *arg)
{
	struct pool_call *c = arg;
	uint64_t t0 = now_ms();

	sbx_pool_invoke(c->pool, c->name, c->core, c->req, strlen(c->req), &c->res);
	c->ms = now_ms() - t0;
	__atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static bool pool_call_done(struct pool_call *c)
{
	return __atomic_load_n(&c->done, __ATOMIC_ACQUIRE);
}

/*
 * Reclaim freezes a core while one instance idles there and another is in the middle of an
 * invocation. The idle one must not be handed out (a new request gets a fresh instance at
 * once instead of hanging on a frozen one), the invocation in flight pauses and finishes with
 * its own result after the thaw, although it stayed frozen longer than its timeout, and no
 * instance is taken for dead.
 */
static void test_pool_freeze_core(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "nap");
	struct sbx_pool *pool = sbx_pool_new(host, NULL, NULL);
	int core = 1 % sbx_host_n_cores(host), frozen, thawed;
	struct pool_call busy = {0};
	struct sbx_pool_stats st;
	struct sbx_result r = {0};
	uint64_t t0, cold_ms;
	bool overtaken;

	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	s.timeout_ms = 300; /* shorter than the freeze below */
	s.concurrency = 4;
	CU_ASSERT_EQUAL_FATAL(sbx_pool_deploy(pool, &s), 0);
	CU_ASSERT_EQUAL_FATAL(sbx_pool_prewarm(pool, s.name, core, 2), 2);
	/* one of the two naps 200 ms: it is in the middle of it when the core freezes */
	busy = (struct pool_call){.pool = pool, .name = s.name, .core = core, .req = "200"};
	busy.started = pthread_create(&busy.thread, NULL, pool_call_main, &busy) == 0;
	CU_ASSERT_FATAL(busy.started);
	for (int i = 0; i < 200 && (sbx_pool_stats(pool, s.name, &st), st.busy < 1); i++)
		usleep(1000);
	usleep(50 * 1000);

	t0 = now_ms();
	frozen = sbx_pool_freeze_core(pool, core);
	printf("\n  froze %d instances of core %d in %llu ms", frozen, core,
	       (unsigned long long)(now_ms() - t0));
	CU_ASSERT_EQUAL(frozen, 2);
	/* reported done only once the kernel says so */
	CU_ASSERT_EQUAL(kernel_frozen_sandboxes(), 2);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.frozen, 2);
	CU_ASSERT_EQUAL(st.idle, 0);
	CU_ASSERT_EQUAL(st.busy, 1);

	/* a new request on that core: not the frozen idle instance, a cold start, at once */
	t0 = now_ms();
	CU_ASSERT_EQUAL(sbx_pool_invoke(pool, s.name, core, "0", 1, &r), 0);
	cold_ms = now_ms() - t0;
	printf(", a new request took %llu ms (%s)", (unsigned long long)cold_ms,
	       sbx_start_path_name(r.path));
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	CU_ASSERT_EQUAL(r.path, SBX_START_COLD);
	CU_ASSERT_STRING_EQUAL(r.response ? (char *)r.response : r.message, "calls=1");
	CU_ASSERT(cold_ms < 250);
	sbx_result_release(&r);

	/* frozen for longer than the function's timeout: the paused invocation is not killed */
	usleep(500 * 1000);
	overtaken = !pool_call_done(&busy);
	CU_ASSERT_TRUE(overtaken);
	CU_ASSERT_EQUAL(kernel_frozen_sandboxes(), 2);
	thawed = sbx_pool_thaw_core(pool, core);
	CU_ASSERT_EQUAL(thawed, 2);
	CU_ASSERT_EQUAL(kernel_frozen_sandboxes(), 0);
	pthread_join(busy.thread, NULL);
	printf(", the paused one took %llu ms: %s '%s'\n  ", (unsigned long long)busy.ms,
	       sbx_status_name(busy.res.status),
	       busy.res.response ? (char *)busy.res.response : busy.res.message);
	CU_ASSERT_EQUAL(busy.res.status, SBX_OK);
	CU_ASSERT_EQUAL(busy.res.path, SBX_START_PREWARMED);
	CU_ASSERT_STRING_EQUAL(busy.res.response ? (char *)busy.res.response : busy.res.message,
			       "calls=1");
	CU_ASSERT(busy.ms >= 500);
	sbx_result_release(&busy.res);

	/* nothing was taken for dead: all three serve, the thawed idle one included */
	CU_ASSERT_EQUAL(sbx_pool_maintain(pool), 0);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.crashes, 0);
	CU_ASSERT_EQUAL(st.frozen, 0);
	CU_ASSERT_EQUAL(st.idle, 3);
	CU_ASSERT_EQUAL(st.prewarmed, 1);
	CU_ASSERT_EQUAL(sbx_pool_invoke(pool, s.name, core, "0", 1, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	sbx_result_release(&r);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.prewarmed_starts + st.warm_starts, 2);
	CU_ASSERT_EQUAL(st.cold_starts, 1);
	sbx_pool_destroy(pool);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
}

/*
 * A frozen idle instance still expires (killed frozen, counted as an expiry, not a crash),
 * and an instance acquired but not yet invoked when its core froze waits for the thaw.
 */
static void test_pool_frozen_expiry_and_acquired(void)
{
	struct sbx_keepalive_params p = {.ttl_ns = 50 * 1000000ull};
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "nap");
	struct sbx_pool *pool = sbx_pool_new(host, &sbx_keepalive_ttl, &p);
	int core = 1 % sbx_host_n_cores(host);
	struct sbx_pool_stats st;
	struct sbx_result r = {0};
	struct sbx_sandbox *sb;

	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	CU_ASSERT_EQUAL_FATAL(sbx_pool_deploy(pool, &s), 0);
	CU_ASSERT_EQUAL_FATAL(sbx_pool_prewarm(pool, s.name, core, 1), 1);
	CU_ASSERT_EQUAL(sbx_pool_freeze_core(pool, core), 1);
	usleep(80 * 1000);
	CU_ASSERT_EQUAL(sbx_pool_maintain(pool), 1);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.expirations, 1);
	CU_ASSERT_EQUAL(st.crashes, 0);
	CU_ASSERT_EQUAL(st.frozen, 0);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
	CU_ASSERT_EQUAL(sbx_pool_thaw_core(pool, core), 0);

	/* acquired, then its core freezes: invoking it directly says so, the thaw lets it run */
	sb = sbx_pool_acquire(pool, s.name, core, &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sb);
	CU_ASSERT_EQUAL(sbx_pool_freeze_core(pool, core), 1);
	CU_ASSERT_EQUAL(sbx_invoke(sb, "0", 1, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_ERR_STATE);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "frozen"));
	CU_ASSERT_EQUAL(sbx_pool_thaw_core(pool, core), 1);
	CU_ASSERT_EQUAL(sbx_invoke(sb, "0", 1, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	sbx_result_release(&r);
	sbx_pool_release(pool, sb);
	CU_ASSERT_EQUAL(sbx_pool_freeze_core(pool, 99), -EINVAL);
	sbx_pool_destroy(pool);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
}

NEMO_SUITE(sandbox_pool, suite_setup, suite_teardown,
	   {"cold, warm, pre-warmed paths and phase times", test_pool_paths},
	   {"a crashed instance is an error result and is replaced", test_pool_crash_replaced},
	   {"fixed TTL expires idle instances", test_pool_ttl},
	   {"greedy-dual priority order and clock", test_greedy_dual_order},
	   {"memory budget evicts by policy", test_pool_budget_eviction},
	   {"a frozen core: idle instance skipped, invocation in flight paused, none dead",
	    test_pool_freeze_core},
	   {"a frozen idle instance expires; an acquired one waits for the thaw",
	    test_pool_frozen_expiry_and_acquired})

/* ---- sandbox_tenants: what one function can do to another's ---- */

struct nap_call {
	struct sbx_sandbox *sb;
	enum sbx_status status;
	char out[256];
};

static void *nap_thread(void *arg)
{
	struct nap_call *c = arg;

	c->status = call(c->sb, "0.6", c->out, sizeof(c->out));
	return NULL;
}

/*
 * A python function calls os.kill(0, 9) and os.kill(-1, 9) while another function's call is in
 * flight: the neighbour answers. Both run in their own session and as their own uid.
 */
static void test_kill_group_spares_neighbour(void)
{
	struct sbx_spec a = make_spec(SBX_RUNTIME_PYTHON, "test-tenant.py", "kill_group");
	struct sbx_spec b = make_spec(SBX_RUNTIME_PYTHON, "test-tenant.py", "nap");
	struct nap_call nb = {0};
	struct sbx_sandbox *sa, *sb;
	pthread_t t;
	char out[256];
	uid_t ua = 0, ub = 0;

	b.timeout_ms = 5000;
	sa = start(&a);
	sb = start(&b);
	CU_ASSERT_EQUAL(sbx_host_function_uid(host, a.name, &ua), 0);
	CU_ASSERT_EQUAL(sbx_host_function_uid(host, b.name, &ub), 0);
	CU_ASSERT_NOT_EQUAL(ua, ub);
	CU_ASSERT_NOT_EQUAL(getpgid(sbx_pid(sa)), getpgid(0));
	CU_ASSERT_NOT_EQUAL(getpgid(sbx_pid(sa)), getpgid(sbx_pid(sb)));
	CU_ASSERT_EQUAL(getsid(sbx_pid(sa)), sbx_pid(sa));
	nb.sb = sb;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, nap_thread, &nb), 0);
	test_msleep(150); /* the neighbour's call is in flight */
	CU_ASSERT_EQUAL(call(sa, "", out, sizeof(out)), SBX_OK);
	CU_ASSERT_STRING_EQUAL(out, "still here");
	pthread_join(t, NULL);
	if (nb.status != SBX_OK)
		printf("\n  neighbour: %s %s\n", sbx_status_name(nb.status), nb.out);
	CU_ASSERT_EQUAL(nb.status, SBX_OK);
	CU_ASSERT_STRING_EQUAL(nb.out, "rested");
	CU_ASSERT_EQUAL(sbx_state(sb), SBX_STATE_READY);
	CU_ASSERT_EQUAL(call(sb, "0", out, sizeof(out)), SBX_OK);
	sbx_destroy(sa);
	sbx_destroy(sb);
}

/* A copy of test-tenant.py at dir/name with a marker line appended. */
static void tenant_code(const char *dir, const char *name, const char *marker, char *path,
			size_t len)
{
	char src[512], *text, *with;
	size_t n;

	fn_path(src, sizeof(src), "test-tenant.py");
	text = test_read_file(src, &n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	with = malloc(n + 128);
	CU_ASSERT_PTR_NOT_NULL_FATAL(with);
	snprintf(with, n + 128, "%s\nMARKER = \"%s\"\n", text, marker);
	snprintf(path, len, "%s/%s", dir, name);
	CU_ASSERT_EQUAL(test_write_text(path, with), 0);
	free(with);
	free(text);
}

/*
 * Function A searches everything it can see for function B's secret env value, B's code
 * (its file name and a marker in it) and B's spec: none is there, nor the host's /etc/passwd,
 * /var/lib/nemo, /home or /root. Its own code is (the search works).
 */
static void test_private_root_hides_neighbour(void)
{
	char dir[64], bdir[128], adir[128], apath[256], bpath[256], spec[256], secret[64];
	char amark[64], bmark[64], aname[64], bname[64], req[512], cmd[160];
	struct sbx_spec a, b;
	struct sbx_sandbox *sa, *sb;
	struct sbx_result r = {0};

	snprintf(dir, sizeof(dir), "/var/tmp/nemo-tenants-%d", getpid());
	snprintf(adir, sizeof(adir), "%s/a", dir);
	snprintf(bdir, sizeof(bdir), "%s/b", dir);
	CU_ASSERT_FATAL(mkdir(dir, 0755) == 0 && mkdir(adir, 0755) == 0 && mkdir(bdir, 0755) == 0);
	snprintf(secret, sizeof(secret), "b-secret-%d-%ld", getpid(), (long)time(NULL));
	snprintf(amark, sizeof(amark), "a-code-marker-%d", getpid());
	snprintf(bmark, sizeof(bmark), "b-code-marker-%d", getpid());
	snprintf(aname, sizeof(aname), "tenant_a_%d.py", getpid());
	snprintf(bname, sizeof(bname), "tenant_b_%d.py", getpid());
	tenant_code(adir, aname, amark, apath, sizeof(apath));
	tenant_code(bdir, bname, bmark, bpath, sizeof(bpath));
	/* B's spec beside its code, as a store keeps it, with the secret in it */
	snprintf(spec, sizeof(spec), "%s/spec.json", bdir);
	snprintf(req, sizeof(req), "{\"env\": {\"SECRET\": \"%s\"}}", secret);
	CU_ASSERT_EQUAL(test_write_text(spec, req), 0);

	sbx_spec_defaults(&a);
	snprintf(a.name, sizeof(a.name), "tenant-a");
	a.runtime = SBX_RUNTIME_PYTHON;
	snprintf(a.code, sizeof(a.code), "%s", apath);
	snprintf(a.handler, sizeof(a.handler), "search");
	a.timeout_ms = 60000;
	b = a;
	snprintf(b.name, sizeof(b.name), "tenant-b");
	snprintf(b.code, sizeof(b.code), "%s", bpath);
	snprintf(b.handler, sizeof(b.handler), "nap");
	b.n_env = 1;
	snprintf(b.env[0], sizeof(b.env[0]), "SECRET=%s", secret);
	sb = start(&b); /* alive while A looks: its /proc and environ would show */
	sa = start(&a);
	snprintf(req, sizeof(req), "{\"needles\": [\"%s\", \"%s\", \"%s\", \"%s\"]}", secret, bmark,
		 bname, amark);
	CU_ASSERT_EQUAL(sbx_invoke(sa, req, strlen(req), &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	if (r.status == SBX_OK) {
		char want[160];

		printf("\n  A's view: %.*s\n", (int)r.response_len, (char *)r.response);
		/* the one hit: A's own code, under /code */
		snprintf(want, sizeof(want), "\"found\": [\"/code/%s\"]", aname);
		CU_ASSERT_PTR_NOT_NULL(strstr((char *)r.response, want));
		CU_ASSERT_PTR_NULL(strstr((char *)r.response, secret));
		CU_ASSERT_PTR_NOT_NULL(strstr((char *)r.response, "\"host_paths_seen\": []"));
	} else {
		printf("\n  search failed: %s\n", r.message);
	}
	sbx_result_release(&r);
	sbx_destroy(sa);
	sbx_destroy(sb);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* CPU time of a core's harvest cgroup, ns (this suite's sandboxes only). */
static uint64_t core_usage_ns(int core)
{
	bool v2 = sbx_cgroup_detect(NULL, 0) == SBX_CGROUP_V2;
	char dir[512], path[600], line[128];
	unsigned long long v = 0;
	FILE *f;

	CU_ASSERT_EQUAL(sbx_host_core_cgroup(host, core, v2 ? "cpu" : "cpuacct", dir, sizeof(dir)),
			0);
	snprintf(path, sizeof(path), "%s/%s", dir, v2 ? "cpu.stat" : "cpuacct.usage");
	f = fopen(path, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	while (fgets(line, sizeof(line), f)) {
		if (!v2 && sscanf(line, "%llu", &v) == 1)
			break;
		if (v2 && sscanf(line, "usage_usec %llu", &v) == 1) {
			v *= 1000;
			break;
		}
	}
	fclose(f);
	return v;
}

/*
 * A call that leaves a spinning process behind answers 200, and the process is gone with the
 * call: the core's CPU time stops growing (before, it kept 54-98 % of the core). C and python.
 */
static void test_background_killed_at_return(void)
{
	struct sbx_spec specs[2] = {make_spec(SBX_RUNTIME_C, "test-hostile.so", "background_spin"),
				    make_spec(SBX_RUNTIME_PYTHON, "test-tenant.py", "background")};
	struct sbx_spec spin = make_spec(SBX_RUNTIME_C, "test-hostile.so", "spin");
	int core = sbx_host_n_cores(host) > 1 ? 1 : 0;
	struct sbx_sandbox *ctl;
	uint64_t c0, c1;
	char msg[256];

	/* the measure sees a spinner: a call that spins 300 ms until its timeout (at the default
	 * weight: the lowest would leave it next to nothing on a busy machine) */
	CU_ASSERT_EQUAL(sbx_cgroup_core_idle(host, core, false), 0);
	spin.timeout_ms = 300;
	ctl = sbx_create(host, &spin, core);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctl);
	CU_ASSERT_EQUAL_FATAL(sbx_init(ctl, msg, sizeof(msg)), 0);
	c0 = core_usage_ns(core);
	CU_ASSERT_EQUAL(call(ctl, "", msg, sizeof(msg)), SBX_ERR_TIMEOUT);
	c1 = core_usage_ns(core);
	sbx_destroy(ctl);
	printf("\n  control: a call spinning until its 300 ms timeout used %.1f ms",
	       (double)(c1 - c0) / 1e6);
	/* on a loaded machine the spinner's share is small, but it is seen; at the default
	 * weight it gets under 1 ms of 300 only when a real-time task holds the core, and
	 * then nothing here can be measured */
	if (c1 - c0 <= 1000000ull) {
		char why[160];

		snprintf(
			why, sizeof(why),
			"a spinner at the default weight got %.1f ms of cpu %d in 300 ms: the core "
			"is held by other (real-time) work on this shared machine",
			(double)(c1 - c0) / 1e6, core);
		nemo_test_skip(why);
		sbx_cgroup_core_idle(host, core, true);
		return;
	}
	for (int i = 0; i < 2; i++) {
		char err[SBX_MSG_MAX], out[256], dir[512], path[600];
		struct sbx_sandbox *sb = start_on(&specs[i], core);
		uint64_t u0, u1;
		int tasks = -1;
		FILE *f;

		(void)err;
		CU_ASSERT_EQUAL(call(sb, "", out, sizeof(out)), SBX_OK);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "spinning"));
		test_msleep(50);
		u0 = core_usage_ns(core);
		test_msleep(500);
		u1 = core_usage_ns(core);
		printf("\n  %s: after the call, the sandbox used %.1f ms of CPU in 500 ms",
		       sbx_runtime_name(specs[i].runtime), (double)(u1 - u0) / 1e6);
		/* a spinner left behind would run at the control's rate: allow a tenth of it */
		CU_ASSERT((u1 - u0) * 300 < (c1 - c0) * 500 / 10);
		/* nothing but the runtime is left: one task in the sandbox's pids cgroup */
		CU_ASSERT_EQUAL(sbx_sandbox_cgroup(sb, "pids", dir, sizeof(dir)), 0);
		snprintf(path, sizeof(path), "%s/pids.current", dir);
		f = fopen(path, "r");
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT(fscanf(f, "%d", &tasks) == 1);
		fclose(f);
		CU_ASSERT_EQUAL(tasks, 1);
		/* and the instance goes on serving */
		CU_ASSERT_EQUAL(call(sb, "", out, sizeof(out)), SBX_OK);
		sbx_destroy(sb);
	}
	sbx_cgroup_core_idle(host, core, true);
}

/*
 * The uid range: one uid per function, the same at every ask, never shared; exhausted, the
 * next function is refused with ENOSPC; a range that overflows or holds a system user is
 * refused at host start.
 */
static void test_uid_range(void)
{
	struct sbx_host_config cfg = {0};
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "echo.so", NULL);
	char small[80];
	struct sbx_host *h;
	uid_t a = 0, a2 = 0, b = 0, c = 0;

	snprintf(small, sizeof(small), "%s-uids", root);
	cfg.cgroup_root = small;
	cfg.uid_base = 400000;
	cfg.uid_count = 2;
	h = sbx_host_new(&cfg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(sbx_host_function_uid(h, "alpha", &a), 0);
	CU_ASSERT_EQUAL(sbx_host_function_uid(h, "beta", &b), 0);
	CU_ASSERT_EQUAL(sbx_host_function_uid(h, "alpha", &a2), 0);
	CU_ASSERT_EQUAL(a, a2);
	CU_ASSERT_NOT_EQUAL(a, b);
	CU_ASSERT(a >= 400000 && a < 400002 && b >= 400000 && b < 400002);
	CU_ASSERT_EQUAL(sbx_host_function_uid(h, "gamma", &c), -ENOSPC);
	/* a sandbox of a third function is refused, naming why */
	snprintf(s.name, sizeof(s.name), "gamma");
	errno = 0;
	CU_ASSERT_PTR_NULL(sbx_create(h, &s, 0));
	CU_ASSERT_EQUAL(errno, ENOSPC);
	sbx_host_destroy(h);

	cfg.uid_base = UINT32_MAX - 10;
	cfg.uid_count = 100;
	errno = 0;
	CU_ASSERT_PTR_NULL(sbx_host_new(&cfg));
	CU_ASSERT_EQUAL(errno, EINVAL);
	/* 65534 is nobody in every Debian /etc/passwd */
	cfg.uid_base = 65000;
	cfg.uid_count = 1000;
	errno = 0;
	CU_ASSERT_PTR_NULL(sbx_host_new(&cfg));
	CU_ASSERT_EQUAL(errno, EEXIST);
}

NEMO_SUITE(sandbox_tenants, suite_setup, suite_teardown,
	   {"a uid per function from a checked range", test_uid_range},
	   {"os.kill(0, 9) and kill(-1, 9) spare a neighbour's call in flight",
	    test_kill_group_spares_neighbour},
	   {"a private root: a function finds nothing of another's, nor the host's",
	    test_private_root_hides_neighbour},
	   {"processes a call leaves behind are killed when it returns",
	    test_background_killed_at_return})

/* ---- the same isolation and hostile tests on instances forked from a zygote ---- */

ZYGOTE_CASE(test_namespaces)
ZYGOTE_CASE(test_identity_caps_nnp_seccomp)
ZYGOTE_CASE(test_seccomp_denies)
ZYGOTE_CASE(test_filesystem)
ZYGOTE_CASE(test_rlimits)
ZYGOTE_CASE(test_cgroup)
ZYGOTE_CASE(test_no_network)

NEMO_SUITE(sandbox_isolation_zygote, zygote_setup, zygote_teardown,
	   {"new pid, mount, ipc, uts, net namespaces (two forks of one zygote)",
	    test_namespaces_zygote},
	   {"unprivileged uid, no capabilities, no_new_privs, seccomp",
	    test_identity_caps_nnp_seccomp_zygote},
	   {"seccomp denies dangerous calls, clone3 is ENOSYS, threads work",
	    test_seccomp_denies_zygote},
	   {"read-only filesystem, private /tmp", test_filesystem_zygote},
	   {"rlimits", test_rlimits_zygote},
	   {"own cgroup with memory and pids limits, written in before its first request",
	    test_cgroup_zygote},
	   {"no network", test_no_network_zygote})

ZYGOTE_CASE(test_bad_code)
ZYGOTE_CASE(test_hostile_back_to_back)
ZYGOTE_CASE(test_crash_detected_at_once)

NEMO_SUITE(sandbox_hostile_zygote, zygote_setup, zygote_teardown,
	   {"code that does not load, missing handler: error at the zygote's init",
	    test_bad_code_zygote},
	   {"crash, timeout, OOM, fork bomb, network, write to /: contained",
	    test_hostile_back_to_back_zygote},
	   {"a dead idle instance is seen at once", test_crash_detected_at_once_zygote})

ZYGOTE_CASE(test_kill_group_spares_neighbour)
ZYGOTE_CASE(test_private_root_hides_neighbour)
ZYGOTE_CASE(test_background_killed_at_return)

NEMO_SUITE(sandbox_tenants_zygote, zygote_setup, zygote_teardown,
	   {"os.kill(0, 9) and kill(-1, 9) spare a neighbour's call in flight",
	    test_kill_group_spares_neighbour_zygote},
	   {"a private root: a function finds nothing of another's, nor the host's",
	    test_private_root_hides_neighbour_zygote},
	   {"processes a call leaves behind are killed when it returns",
	    test_background_killed_at_return_zygote})

/* ---- the same again on ready forks, handed over (sbx_zygote_prepare) ---- */

NEMO_SUITE(sandbox_isolation_zygote_ready, zygote_ready_setup, zygote_ready_teardown,
	   {"new pid, mount, ipc, uts, net namespaces (two ready forks of one zygote)",
	    test_namespaces_zygote},
	   {"unprivileged uid, no capabilities, no_new_privs, seccomp",
	    test_identity_caps_nnp_seccomp_zygote},
	   {"seccomp denies dangerous calls, clone3 is ENOSYS, threads work",
	    test_seccomp_denies_zygote},
	   {"read-only filesystem, private /tmp", test_filesystem_zygote},
	   {"rlimits", test_rlimits_zygote},
	   {"own cgroup with memory and pids limits, written in before its first request",
	    test_cgroup_zygote},
	   {"no network", test_no_network_zygote})

NEMO_SUITE(sandbox_hostile_zygote_ready, zygote_ready_setup, zygote_ready_teardown,
	   {"code that does not load, missing handler: error at the zygote's init",
	    test_bad_code_zygote},
	   {"crash, timeout, OOM, fork bomb, network, write to /: contained",
	    test_hostile_back_to_back_zygote},
	   {"a dead idle instance is seen at once", test_crash_detected_at_once_zygote})

NEMO_SUITE(sandbox_tenants_zygote_ready, zygote_ready_setup, zygote_ready_teardown,
	   {"os.kill(0, 9) and kill(-1, 9) spare a neighbour's call in flight",
	    test_kill_group_spares_neighbour_zygote},
	   {"a private root: a function finds nothing of another's, nor the host's",
	    test_private_root_hides_neighbour_zygote},
	   {"processes a call leaves behind are killed when it returns",
	    test_background_killed_at_return_zygote})

/* ---- sandbox_zygote: what only zygotes have ---- */

/*
 * A call that wrecks its instance's memory and module state: the instance keeps the wreck
 * (its second call sees it), the next fork of the same zygote starts from the zygote's state.
 */
static void test_zygote_fork_starts_fresh(void)
{
	struct sbx_spec c = make_spec(SBX_RUNTIME_C, "test-hostile.so", "scribble");
	struct sbx_spec py = make_spec(SBX_RUNTIME_PYTHON, "test-tenant.py", "corrupt");
	struct {
		struct sbx_spec *spec;
		const char *first, *wrecked;
		enum sbx_status wrecked_status;
	} cases[] = {
		{&c, "calls=1 state=pristine heap=heap pristine", "calls=2 state=XXXX", SBX_OK},
		{&py, "calls=1 json=[1]", "'NoneType' object is not callable", SBX_ERR_FUNCTION},
	};

	for (size_t i = 0; i < 2; i++) {
		struct sbx_sandbox *z = zygote_of(cases[i].spec, 0), *a, *b;
		char out[512];

		a = fork_of(z, 0);
		CU_ASSERT_EQUAL(call(a, "", out, sizeof(out)), SBX_OK);
		CU_ASSERT_STRING_EQUAL(out, cases[i].first);
		CU_ASSERT_EQUAL(call(a, "", out, sizeof(out)), cases[i].wrecked_status);
		if (!strstr(out, cases[i].wrecked))
			printf("\n  wrecked instance said: %s\n", out);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, cases[i].wrecked));
		/* a sibling forked after the wreck, while the wrecked one lives */
		b = fork_of(z, 0);
		CU_ASSERT_EQUAL(call(b, "", out, sizeof(out)), SBX_OK);
		CU_ASSERT_STRING_EQUAL(out, cases[i].first);
		sbx_destroy(a);
		sbx_destroy(b);
		sbx_destroy(z);
	}
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
	CU_ASSERT_EQUAL(leftover_sandbox_cgroups(), 0);
}

/* A zygote serves no request, outlives its forks, and goes with the last of them. */
static void test_zygote_lifetime(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "echo.so", NULL);
	struct sbx_sandbox *z = zygote_of(&s, 0), *a, *b;
	struct sbx_result r = {0};
	char out[64];

	CU_ASSERT_EQUAL(sbx_invoke(z, "x", 1, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_ERR_STATE);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "a zygote takes no requests"));
	sbx_result_release(&r);
	a = fork_of(z, 0);
	b = fork_of(z, sbx_host_n_cores(host) > 1 ? 1 : 0);
	CU_ASSERT_NOT_EQUAL(sbx_pid(a), sbx_pid(b));
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 3);
	/* retired with forks alive: they go on serving; it makes no more */
	sbx_destroy(z);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 2);
	CU_ASSERT_EQUAL(call(a, "a", out, sizeof(out)), SBX_OK);
	CU_ASSERT_STRING_EQUAL(out, "a");
	sbx_destroy(a);
	CU_ASSERT_EQUAL(call(b, "b", out, sizeof(out)), SBX_OK);
	CU_ASSERT_STRING_EQUAL(out, "b");
	sbx_destroy(b);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
	CU_ASSERT_EQUAL(leftover_sandbox_cgroups(), 0);
}

/* A killed zygote takes its forks with it (their PID namespaces nest in its own); a fork
 * of a dead zygote is refused, naming it. */
static void test_zygote_death(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "echo.so", NULL);
	struct sbx_sandbox *z = zygote_of(&s, 0), *a = fork_of(z, 0);
	char err[SBX_MSG_MAX] = "";

	kill(sbx_pid(z), SIGKILL);
	/* the zygote's init exits once its namespace is empty: after its forks */
	for (int i = 0;
	     i < 1000 && (sbx_state(a) != SBX_STATE_DEAD || sbx_state(z) != SBX_STATE_DEAD); i++)
		usleep(1000);
	CU_ASSERT_EQUAL(sbx_state(z), SBX_STATE_DEAD);
	CU_ASSERT_EQUAL(sbx_state(a), SBX_STATE_DEAD);
	CU_ASSERT_PTR_NULL(sbx_zygote_fork(z, 0, err, sizeof(err)));
	CU_ASSERT_EQUAL(errno, EPIPE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "its zygote is dead"));
	sbx_destroy(z);
	sbx_destroy(a);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
	CU_ASSERT_EQUAL(leftover_sandbox_cgroups(), 0);
}

/* The pids in cgroup `ctrl` of `sb` (its cgroup.procs), at most `max`; returns how many. */
static int cgroup_pids(const struct sbx_sandbox *sb, const char *ctrl, pid_t *pids, int max)
{
	char dir[512], path[600], line[32];
	int n = 0;
	FILE *f;

	if (sbx_sandbox_cgroup(sb, ctrl, dir, sizeof(dir)))
		return -1;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "r");
	while (f && n < max && fgets(line, sizeof(line), f))
		pids[n++] = (pid_t)atoi(line);
	if (f)
		fclose(f);
	return n;
}

/* Running (not gone, not a zombie waiting for a reaper)? */
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

/*
 * A host killed with -9 (nemod's death) stops its zygotes and their forks within 1 s, a
 * parked ready fork too: the zygote dies with the launcher thread (PR_SET_PDEATHSIG), its
 * forks with its PID namespace.
 */
static void test_zygote_host_death(void)
{
	int pfd[2];
	pid_t child, pids[4] = {0};
	char croot[64];

	CU_ASSERT_FATAL(pipe(pfd) == 0);
	child = fork();
	CU_ASSERT_FATAL(child >= 0);
	if (child == 0) {
		struct sbx_host_config cfg = {0};
		struct sbx_spec s = make_spec(SBX_RUNTIME_PYTHON, "test-tenant.py", "nap");
		struct sbx_sandbox *z, *a, *b;
		struct sbx_host *h;
		pid_t out[4], parked[2];

		snprintf(croot, sizeof(croot), "nemo-test-%d", getpid());
		cfg.cgroup_root = croot;
		h = sbx_host_new(&cfg);
		z = h ? sbx_zygote_create(h, &s, 0, NULL, 0) : NULL;
		a = z ? sbx_zygote_fork(z, 0, NULL, 0) : NULL;
		b = z ? sbx_zygote_fork(z, 0, NULL, 0) : NULL;
		/* and a ready fork parked: in the zygote's cgroups, beside it */
		if (!a || !b || sbx_zygote_prepare(z, NULL, 0) ||
		    cgroup_pids(z, "memory", parked, 2) != 2)
			_exit(1);
		out[0] = sbx_pid(z);
		out[1] = sbx_pid(a);
		out[2] = sbx_pid(b);
		out[3] = parked[0] == out[0] ? parked[1] : parked[0];
		if (write(pfd[1], out, sizeof(out)) != sizeof(out))
			_exit(1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	CU_ASSERT_EQUAL_FATAL(read(pfd[0], pids, sizeof(pids)), (ssize_t)sizeof(pids));
	close(pfd[0]);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_TRUE(running(pids[i]));
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	for (int i = 0; i < 100 && (kill(pids[0], 0) == 0 || kill(pids[1], 0) == 0 ||
				    kill(pids[2], 0) == 0 || kill(pids[3], 0) == 0);
	     i++)
		usleep(10000);
	for (int i = 0; i < 4; i++) {
		if (running(pids[i]))
			printf("\n  pid %d (%s) outlived its host by 1 s\n", (int)pids[i],
			       i == 3 ? "ready fork"
			       : i    ? "fork"
				      : "zygote");
		CU_ASSERT_FALSE(running(pids[i]));
	}
	/* its cgroups, as nemod's restart would */
	remove_stale_roots();
}

/*
 * Both ways into a fork's cgroups put it in every one before its first request: the fork's
 * own move (v1's default) and the host's write of its pid (zygote_host_attach; v2's way), on
 * its zygote's core and another, forked on demand or handed over ready.
 */
static void test_zygote_fork_cgroups_both_ways(void)
{
	struct sbx_host_config cfg = {.zygote_host_attach = true};
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "echo.so", NULL);
	int core = 1 % sbx_host_n_cores(host);
	char att_root[96], dir[512], path[600], pid[16], out[64];
	struct sbx_host *hosts[2];

	snprintf(att_root, sizeof(att_root), "%s-attach", root);
	cfg.cgroup_root = att_root;
	hosts[0] = host;
	hosts[1] = sbx_host_new(&cfg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(hosts[1]);
	for (int i = 0; i < 2; i++) {
		/* the zygote on core 0, its forks on core 0 (in that core's cpu cgroups already)
		 * and on another (its cpu cgroups its own), forked on demand and ready forks */
		struct sbx_sandbox *z = sbx_zygote_create(hosts[i], &s, 0, NULL, 0), *sb;

		CU_ASSERT_PTR_NOT_NULL_FATAL(z);
		for (int k = 0; k < 4; k++) {
			int on = k % 2 ? core : 0;
			bool ready = k >= 2;

			if (ready)
				CU_ASSERT_EQUAL_FATAL(sbx_zygote_prepare(z, NULL, 0), 0);
			sb = sbx_zygote_fork(z, on, NULL, 0);
			CU_ASSERT_PTR_NOT_NULL_FATAL(sb);
			CU_ASSERT_EQUAL(sbx_from_ready_fork(sb), ready);
			snprintf(pid, sizeof(pid), "%d", sbx_pid(sb));
			for (int c = 0; c < 3; c++) {
				const char *ctrl[] = {"memory", "pids", "freezer"};

				CU_ASSERT_EQUAL_FATAL(
					sbx_sandbox_cgroup(sb, ctrl[c], dir, sizeof(dir)), 0);
				snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
				CU_ASSERT_TRUE(file_has_line(path, pid));
			}
			CU_ASSERT_EQUAL(sbx_cgroup_pid_core(hosts[i], sbx_pid(sb)), on);
			CU_ASSERT_EQUAL(call(sb, "hi", out, sizeof(out)), SBX_OK);
			CU_ASSERT_STRING_EQUAL(out, "hi");
			sbx_destroy(sb);
		}
		sbx_destroy(z);
	}
	sbx_host_destroy(hosts[1]);
}

/*
 * A zygote's ready fork waits, set up, in its zygote's cgroups (its own hold nothing) and
 * joins its own at its hand-over, on another core than the zygote's too; made before a
 * sibling wrecked its state, it still starts from the zygote's; one that died while parked
 * leaves the start to a fork on demand; the zygote's destroy ends a parked one.
 */
static void test_zygote_ready_fork(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-hostile.so", "scribble");
	int core = 1 % sbx_host_n_cores(host);
	struct sbx_sandbox *z = zygote_of(&s, 0), *a, *b, *c;
	pid_t in_zygote[8], ready = 0, own[8];
	uint32_t on_core = 0;
	char out[256];
	int n;

	/* on demand, before any ready fork */
	a = fork_of(z, 0);
	CU_ASSERT_FALSE(sbx_from_ready_fork(a));
	ready_fork_of(z);
	/* parked in the zygote's cgroups: the zygote and it */
	n = cgroup_pids(z, "memory", in_zygote, 8);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	ready = in_zygote[0] == sbx_pid(z) ? in_zygote[1] : in_zygote[0];
	CU_ASSERT_TRUE(running(ready));
	/* a core's sandboxes are the zygote and `a`: the parked one has none of its own yet */
	CU_ASSERT_EQUAL(sbx_cgroup_core_sandboxes(host, 0, &on_core, NULL), 0);
	CU_ASSERT_EQUAL(on_core, 2);
	/* a sibling wrecks its state while the ready fork waits */
	CU_ASSERT_EQUAL(call(a, "", out, sizeof(out)), SBX_OK);
	CU_ASSERT_EQUAL(call(a, "", out, sizeof(out)), SBX_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "calls=2 state=XXXX"));
	/* handed over on another core: the process that was parked, now in its own cgroups */
	b = sbx_zygote_fork(z, core, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_TRUE(sbx_from_ready_fork(b));
	CU_ASSERT_FALSE(sbx_zygote_ready(z));
	CU_ASSERT_EQUAL(sbx_pid(b), ready);
	CU_ASSERT_EQUAL(cgroup_pids(z, "memory", in_zygote, 8), 1);
	for (int i = 0; i < 3; i++) {
		const char *ctrl[] = {"memory", "pids", "freezer"};

		CU_ASSERT_EQUAL(cgroup_pids(b, ctrl[i], own, 8), 1);
		CU_ASSERT_EQUAL(own[0], ready);
	}
	CU_ASSERT_EQUAL(sbx_core(b), core);
	CU_ASSERT_EQUAL(sbx_cgroup_pid_core(host, ready), core);
	CU_ASSERT_EQUAL(call(b, "", out, sizeof(out)), SBX_OK);
	CU_ASSERT_STRING_EQUAL(out, "calls=1 state=pristine heap=heap pristine");
	/* a ready fork killed while parked: the next start forks on demand */
	ready_fork_of(z);
	CU_ASSERT_EQUAL_FATAL(cgroup_pids(z, "memory", in_zygote, 8), 2);
	ready = in_zygote[0] == sbx_pid(z) ? in_zygote[1] : in_zygote[0];
	kill(ready, SIGKILL);
	for (int i = 0; i < 1000 && running(ready); i++)
		usleep(1000);
	c = sbx_zygote_fork(z, 0, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_FALSE(sbx_from_ready_fork(c));
	CU_ASSERT_EQUAL(call(c, "", out, sizeof(out)), SBX_OK);
	CU_ASSERT_STRING_EQUAL(out, "calls=1 state=pristine heap=heap pristine");
	/* the zygote's destroy ends a parked one, and it goes with its last fork */
	ready_fork_of(z);
	CU_ASSERT_EQUAL_FATAL(cgroup_pids(z, "memory", in_zygote, 8), 2);
	ready = in_zygote[0] == sbx_pid(z) ? in_zygote[1] : in_zygote[0];
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 5);
	sbx_destroy(z);
	CU_ASSERT_FALSE(running(ready));
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 3);
	sbx_destroy(a);
	sbx_destroy(b);
	sbx_destroy(c);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
	CU_ASSERT_EQUAL(leftover_sandbox_cgroups(), 0);
}

/*
 * A zygote frozen with its ready fork parked (frozen with it: it is in the zygote's cgroups):
 * a start is refused at once, naming the freeze, and the ready fork stays parked for the thaw,
 * after which it is handed over; frozen again, the zygote is destroyed at once and leaves
 * nothing: the parked fork dies at the zygote's thaw.
 */
static void test_zygote_frozen_with_ready_fork(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "echo.so", NULL);
	struct sbx_sandbox *z = zygote_of(&s, 0), *sb;
	char err[SBX_MSG_MAX] = "", out[64];
	pid_t in_zygote[4], ready;
	uint64_t t0;

	ready_fork_of(z);
	CU_ASSERT_EQUAL_FATAL(sbx_freeze(z), 0);
	t0 = now_ms();
	CU_ASSERT_PTR_NULL(sbx_zygote_fork(z, 0, err, sizeof(err)));
	CU_ASSERT_EQUAL(errno, EPIPE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "its zygote is frozen"));
	CU_ASSERT(now_ms() - t0 < 1000);
	CU_ASSERT_TRUE(sbx_zygote_ready(z));
	CU_ASSERT_EQUAL_FATAL(sbx_thaw(z), 0);
	sb = fork_of(z, 0);
	CU_ASSERT_TRUE(sbx_from_ready_fork(sb));
	CU_ASSERT_EQUAL(call(sb, "hi", out, sizeof(out)), SBX_OK);
	CU_ASSERT_STRING_EQUAL(out, "hi");
	sbx_destroy(sb);

	ready_fork_of(z);
	CU_ASSERT_EQUAL_FATAL(cgroup_pids(z, "freezer", in_zygote, 4), 2);
	ready = in_zygote[0] == sbx_pid(z) ? in_zygote[1] : in_zygote[0];
	CU_ASSERT_EQUAL_FATAL(sbx_freeze(z), 0);
	t0 = now_ms();
	sbx_destroy(z);
	CU_ASSERT(now_ms() - t0 < 1000);
	for (int i = 0; i < 1000 && running(ready); i++)
		usleep(1000);
	CU_ASSERT_FALSE(running(ready));
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
	CU_ASSERT_EQUAL(leftover_sandbox_cgroups(), 0);
}

/* Python's random is reseeded in every fork, a ready one (reseeded when it parks) too. */
static void test_zygote_forks_reseed_random(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_PYTHON, "test-tenant.py", "draw");
	struct sbx_sandbox *z = zygote_of(&s, 0), *sb[4];
	char seen[4][64];

	for (int i = 0; i < 4; i++) {
		if (i % 2)
			ready_fork_of(z);
		sb[i] = fork_of(z, 0);
		CU_ASSERT_EQUAL(sbx_from_ready_fork(sb[i]), i % 2 == 1);
		CU_ASSERT_EQUAL(call(sb[i], "", seen[i], sizeof(seen[i])), SBX_OK);
		for (int j = 0; j < i; j++)
			CU_ASSERT_STRING_NOT_EQUAL(seen[i], seen[j]);
	}
	for (int i = 0; i < 4; i++)
		sbx_destroy(sb[i]);
	sbx_destroy(z);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
}

ZYGOTE_CASE(test_zygote_fork_cgroups_both_ways)
ZYGOTE_CASE(test_zygote_host_death)
ZYGOTE_CASE(test_zygote_fork_starts_fresh)
ZYGOTE_CASE(test_zygote_lifetime)
ZYGOTE_CASE(test_zygote_death)
ZYGOTE_CASE(test_zygote_ready_fork)
ZYGOTE_CASE(test_zygote_forks_reseed_random)
ZYGOTE_CASE(test_zygote_frozen_with_ready_fork)

NEMO_SUITE(sandbox_zygote, suite_setup, suite_teardown,
	   {"a host killed with -9 stops its zygotes and their forks within 1 s",
	    test_zygote_host_death_zygote},
	   {"a fork starts from the zygote's state, not a wrecked sibling's",
	    test_zygote_fork_starts_fresh_zygote},
	   {"a zygote takes no request and outlives its forks", test_zygote_lifetime_zygote},
	   {"a killed zygote takes its forks; a dead one forks nothing", test_zygote_death_zygote},
	   {"a fork is in all its cgroups before its first request, moved by itself or by the "
	    "host",
	    test_zygote_fork_cgroups_both_ways_zygote},
	   {"a ready fork waits in its zygote's cgroups, joins its own at its hand-over, starts "
	    "from the zygote's state; a dead one leaves the start to a fork on demand",
	    test_zygote_ready_fork_zygote},
	   {"python's random is reseeded in every fork, ready or on demand",
	    test_zygote_forks_reseed_random_zygote},
	   {"a frozen zygote refuses a start at once and keeps its ready fork for the thaw; "
	    "destroyed frozen, it leaves nothing",
	    test_zygote_frozen_with_ready_fork_zygote})

/* ---- sandbox_pool_zygote: zygotes kept by a pool ---- */

/* A python function at dir/name that answers `answer`. */
static void version_code(const char *path, const char *answer)
{
	char text[256];

	snprintf(text, sizeof(text), "def handler(req):\n    return %s\n", answer);
	CU_ASSERT_EQUAL_FATAL(test_write_text(path, text), 0);
}

static struct sbx_spec versioned_spec(const char *name, const char *path)
{
	struct sbx_spec s;

	sbx_spec_defaults(&s);
	snprintf(s.name, sizeof(s.name), "%s", name);
	s.runtime = SBX_RUNTIME_PYTHON;
	snprintf(s.code, sizeof(s.code), "%s", path);
	snprintf(s.handler, sizeof(s.handler), "handler");
	s.concurrency = 4;
	return s;
}

/*
 * A kept zygote serves a request that finds no idle instance (path zygote, no init), the
 * released fork serves warm, pre-warmed instances are its forks; a redeploy replaces it and
 * no call after the redeploy runs old code, not even one whose v1 instance was acquired
 * across the redeploy.
 */
static void test_pool_zygote_paths_and_redeploy(void)
{
	char dir[64], v1[128], v2[128];
	struct sbx_spec s;
	struct sbx_pool *pool = sbx_pool_new(host, NULL, NULL);
	struct sbx_sandbox *held[3], *old;
	struct sbx_pool_stats st;
	struct sbx_result r;

	snprintf(dir, sizeof(dir), "/var/tmp/nemo-zygote-%d", getpid());
	CU_ASSERT_FATAL(mkdir(dir, 0755) == 0);
	snprintf(v1, sizeof(v1), "%s/version_one.py", dir);
	snprintf(v2, sizeof(v2), "%s/version_two.py", dir);
	version_code(v1, "'v1'");
	version_code(v2, "'v2'");
	s = versioned_spec("versioned", v1);
	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &s), 0);
	CU_ASSERT_EQUAL(sbx_pool_zygote(pool, s.name, 0), 1);
	CU_ASSERT_EQUAL(sbx_pool_zygote(pool, s.name, 0), 0); /* kept */
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.zygotes, 1);
	CU_ASSERT_EQUAL(st.zygotes_made, 1);
	CU_ASSERT(st.zygote_memory_bytes > 0 && st.memory_bytes >= st.zygote_memory_bytes);
	/* the zygote and its ready fork */
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 2);
	/* no idle instance: forked (the ready fork handed over), no init */
	CU_ASSERT_EQUAL(sbx_pool_invoke(pool, s.name, 0, "", 0, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	CU_ASSERT_EQUAL(r.path, SBX_START_ZYGOTE);
	CU_ASSERT(r.times.create_ns > 0 && r.times.init_ns == 0);
	CU_ASSERT_STRING_EQUAL(r.response ? (char *)r.response : "", "v1");
	printf("\n  zygote start from its ready fork: hand-over %.2f ms, run %.2f ms",
	       r.times.create_ns / 1e6, r.times.run_ns / 1e6);
	sbx_result_release(&r);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.zygote_starts, 1);
	CU_ASSERT_EQUAL(st.zygote_ready_starts, 1);
	CU_ASSERT_EQUAL(sbx_pool_invoke(pool, s.name, 0, "", 0, &r), 0);
	CU_ASSERT_EQUAL(r.path, SBX_START_WARM);
	sbx_result_release(&r);
	/* the slow loop makes the next ready fork: zygote, warm instance, ready fork */
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 2);
	CU_ASSERT_EQUAL(sbx_pool_maintain(pool), 0);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 3);
	/* pre-warmed instances come from the zygote (the first its ready fork): zygote + 1
	 * warm + 2 pre-warmed */
	CU_ASSERT_EQUAL(sbx_pool_prewarm(pool, s.name, 0, 2), 2);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 4);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.zygotes_made, 1);
	CU_ASSERT_EQUAL(st.zygote_starts, 1);
	/* a v1 instance acquired across the redeploy */
	old = sbx_pool_acquire(pool, s.name, 0, &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(old);
	s = versioned_spec("versioned", v2);
	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &s), 0);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.zygotes, 1);
	CU_ASSERT_EQUAL(st.zygotes_made, 2); /* replaced with one of the new code */
	CU_ASSERT_EQUAL(st.idle, 0);	     /* the v1 instances are gone */
	sbx_pool_release(pool, old);	     /* and this one is not kept */
	/* every call from now on runs v2: held at once, so each needs an instance */
	for (int i = 0; i < 3; i++) {
		struct sbx_result rr = {0};

		held[i] = sbx_pool_acquire(pool, s.name, 0, &rr);
		CU_ASSERT_PTR_NOT_NULL_FATAL(held[i]);
		CU_ASSERT_EQUAL(rr.path, SBX_START_ZYGOTE);
		CU_ASSERT_EQUAL(sbx_invoke(held[i], "", 0, &rr), 0);
		CU_ASSERT_STRING_EQUAL(rr.response ? (char *)rr.response : "", "v2");
		sbx_result_release(&rr);
	}
	for (int i = 0; i < 3; i++)
		sbx_pool_release(pool, held[i]);
	for (int i = 0; i < 6; i++) {
		CU_ASSERT_EQUAL(sbx_pool_invoke(pool, s.name, 0, "", 0, &r), 0);
		CU_ASSERT_STRING_EQUAL(r.response ? (char *)r.response : "", "v2");
		sbx_result_release(&r);
	}
	CU_ASSERT_EQUAL(sbx_pool_undeploy(pool, s.name), 0);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
	sbx_pool_destroy(pool);
	unlink(v1);
	unlink(v2);
	rmdir(dir);
	CU_ASSERT_EQUAL(leftover_sandbox_cgroups(), 0);
}

/* Zygotes expire by the keep-alive policy and are evicted for memory like instances. */
static void test_pool_zygote_keepalive(void)
{
	struct sbx_keepalive_params ttl = {.ttl_ns = 200 * 1000000ull};
	struct sbx_keepalive_params tight = {.memory_budget_bytes = 1};
	struct sbx_spec a = make_spec(SBX_RUNTIME_C, "echo.so", NULL);
	struct sbx_spec b = make_spec(SBX_RUNTIME_C, "test-probe.so", "identity");
	struct sbx_spec e = make_spec(SBX_RUNTIME_EXEC, "exec-upper", "-");
	struct sbx_pool *pool = sbx_pool_new(host, NULL, &ttl);
	struct sbx_pool_stats st;

	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &a), 0);
	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &e), 0);
	CU_ASSERT_EQUAL(sbx_pool_zygote(pool, e.name, 0), -ENOTSUP);
	CU_ASSERT_EQUAL(sbx_pool_zygote(pool, "nobody", 0), -ENOENT);
	CU_ASSERT_EQUAL(sbx_pool_zygote(pool, a.name, 0), 1);
	CU_ASSERT_EQUAL(sbx_pool_maintain(pool), 0);
	test_msleep(300);
	CU_ASSERT_EQUAL(sbx_pool_maintain(pool), 1);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, a.name, &st), 0);
	CU_ASSERT_EQUAL(st.zygotes, 0);
	CU_ASSERT_EQUAL(st.expirations, 1);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
	sbx_pool_destroy(pool);

	/* a budget that holds one zygote: the second evicts the first */
	pool = sbx_pool_new(host, NULL, &tight);
	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &a), 0);
	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &b), 0);
	CU_ASSERT_EQUAL(sbx_pool_zygote(pool, a.name, 0), 1);
	CU_ASSERT_EQUAL(sbx_pool_zygote(pool, b.name, 0), 1);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, a.name, &st), 0);
	CU_ASSERT_EQUAL(st.zygotes, 0);
	CU_ASSERT_EQUAL(st.evictions, 1);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, NULL, &st), 0);
	CU_ASSERT_EQUAL(st.zygotes, 1);
	/* b's zygote and its ready fork; a's ready fork went with a's zygote */
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 2);
	sbx_pool_destroy(pool);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
	CU_ASSERT_EQUAL(leftover_sandbox_cgroups(), 0);
}

/* Zygotes on: pre-warming on spare cycles makes the zygote, then forks of it; off, none. */
static void test_pool_prewarm_makes_zygote(void)
{
	struct sbx_keepalive_params on = {.zygotes = true};
	struct sbx_spec s = make_spec(SBX_RUNTIME_PYTHON, "wordstats.py", "handler");
	struct sbx_pool *pool = sbx_pool_new(host, NULL, &on);
	struct sbx_pool_stats st;
	struct sbx_result r;

	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &s), 0);
	CU_ASSERT_EQUAL(sbx_pool_prewarm(pool, s.name, 0, 2), 2);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.zygotes, 1);
	CU_ASSERT_EQUAL(st.zygotes_made, 1);
	CU_ASSERT_EQUAL(st.prewarmed, 2);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 3);
	/* asked again by the next forecast: the zygote is kept, one more fork */
	CU_ASSERT_EQUAL(sbx_pool_prewarm(pool, s.name, 0, 1), 1);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.zygotes_made, 1);
	CU_ASSERT_EQUAL(sbx_pool_invoke(pool, s.name, 0, "a b a", 5, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	CU_ASSERT_EQUAL(r.path, SBX_START_PREWARMED);
	sbx_result_release(&r);
	sbx_pool_destroy(pool);
	/* off (the default): pre-warming alone, no zygote */
	pool = sbx_pool_new(host, NULL, NULL);
	CU_ASSERT_EQUAL(sbx_pool_deploy(pool, &s), 0);
	CU_ASSERT_EQUAL(sbx_pool_prewarm(pool, s.name, 0, 1), 1);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &st), 0);
	CU_ASSERT_EQUAL(st.zygotes_made, 0);
	sbx_pool_destroy(pool);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
}

ZYGOTE_CASE(test_pool_prewarm_makes_zygote)
ZYGOTE_CASE(test_pool_zygote_paths_and_redeploy)
ZYGOTE_CASE(test_pool_zygote_keepalive)

NEMO_SUITE(sandbox_pool_zygote, suite_setup, suite_teardown,
	   {"zygotes on: pre-warming makes the zygote and forks it",
	    test_pool_prewarm_makes_zygote_zygote},
	   {"zygote path, warm after it, pre-warmed forks; a redeploy replaces the zygote and "
	    "no call runs old code",
	    test_pool_zygote_paths_and_redeploy_zygote},
	   {"zygotes expire and are evicted by the keep-alive policy",
	    test_pool_zygote_keepalive_zygote})

/* ---- sandbox_reclaim: a core reclaimed by freezing, and nothing outlives its host ---- */

/* A host of its own (cgroup root <suite root>-<tag>), for the figures a test must set. */
static struct sbx_host *own_host(const char *tag, uint32_t frozen_wait_ms, char *own_root,
				 size_t len)
{
	struct sbx_host_config cfg = {.frozen_wait_ms = frozen_wait_ms};
	struct sbx_host *h;

	snprintf(own_root, len, "%s-%s", root, tag);
	cfg.cgroup_root = own_root;
	h = sbx_host_new(&cfg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	return h;
}

/* Its cgroup directories, in every hierarchy; 0 once the host is gone and left nothing. */
static int root_dirs_left(const char *own_root)
{
	char dirs[8][512];
	int n = sbx_cgroup_root_dirs(own_root, dirs, 8), left = 0;

	for (int i = 0; i < n; i++)
		if (exists(dirs[i])) {
			printf("\n  left behind: %s", dirs[i]);
			left++;
		}
	return left;
}

/* The busy figure of a pool reaching `busy`, at most 2 s. */
static void wait_busy(struct sbx_pool *pool, const char *name, uint32_t busy)
{
	struct sbx_pool_stats st = {0};

	for (int i = 0; i < 2000 && (sbx_pool_stats(pool, name, &st), st.busy < busy); i++)
		usleep(1000);
	CU_ASSERT_EQUAL_FATAL(st.busy, busy);
}

/*
 * A core its NF reclaims and never gives back (the NF crashed frozen): a call paused in mid-
 * run, and an acquired instance waiting for the thaw, each end once the host's
 * frozen_wait_ms has passed, with a timeout that names the core and how long it was held.
 */
static void test_frozen_call_deadline(void)
{
	char own_root[96];
	struct sbx_host *h = own_host("wait", 300, own_root, sizeof(own_root));
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "nap");
	struct sbx_pool *pool = sbx_pool_new(h, NULL, NULL);
	int core = 1 % sbx_host_n_cores(h);
	struct pool_call busy = {0};
	struct sbx_result r = {0};
	struct sbx_sandbox *sb;
	char want[64];
	uint64_t t0, waited;
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	s.concurrency = 4;
	CU_ASSERT_EQUAL_FATAL(sbx_pool_deploy(pool, &s), 0);
	CU_ASSERT_EQUAL_FATAL(sbx_pool_prewarm(pool, s.name, core, 2), 2);
	busy = (struct pool_call){.pool = pool, .name = s.name, .core = core, .req = "200"};
	CU_ASSERT_FATAL(pthread_create(&busy.thread, NULL, pool_call_main, &busy) == 0);
	wait_busy(pool, s.name, 1);
	sb = sbx_pool_acquire(pool, s.name, core, &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sb);
	usleep(50 * 1000);
	CU_ASSERT_EQUAL(sbx_pool_freeze_core(pool, core), 2);

	/* acquired, not run: waits 300 ms, then says why */
	t0 = now_ms();
	rc = sbx_pool_wait_thaw(pool, sb, &r);
	waited = now_ms() - t0;
	snprintf(want, sizeof(want), "core %d has been reclaimed by its NF for", core);
	printf("\n  waiting for the thaw: %llu ms: %s: %s", (unsigned long long)waited,
	       sbx_status_name(r.status), r.message);
	CU_ASSERT_EQUAL(rc, -ETIMEDOUT);
	CU_ASSERT_EQUAL(r.status, SBX_ERR_TIMEOUT);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, want));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "frozen_wait_ms"));
	CU_ASSERT(waited >= 290 && waited < 1000);
	sbx_pool_release(pool, sb); /* frozen: idle until its core thaws */

	/* paused in mid-run: killed once it was frozen 300 ms, its timeout (1 s) notwithstanding */
	pthread_join(busy.thread, NULL);
	printf("\n  the paused call: %llu ms: %s: %s\n  ", (unsigned long long)busy.ms,
	       sbx_status_name(busy.res.status), busy.res.message);
	CU_ASSERT_EQUAL(busy.res.status, SBX_ERR_TIMEOUT);
	snprintf(want, sizeof(want), "core %d has been reclaimed by its NF", core);
	CU_ASSERT_PTR_NOT_NULL(strstr(busy.res.message, want));
	CU_ASSERT(busy.ms >= 340 && busy.ms < 700);
	sbx_result_release(&busy.res);

	/* the thaw comes at last: the waiting one serves again, nothing frozen is left */
	CU_ASSERT_EQUAL(sbx_pool_thaw_core(pool, core), 1);
	CU_ASSERT_EQUAL(kernel_frozen_sandboxes(), 0);
	CU_ASSERT_EQUAL(sbx_pool_invoke(pool, s.name, core, "0", 1, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_OK);
	CU_ASSERT_EQUAL(r.path, SBX_START_PREWARMED);
	sbx_result_release(&r);
	sbx_pool_destroy(pool);
	sbx_host_destroy(h);
	CU_ASSERT_EQUAL(root_dirs_left(own_root), 0);
}

/* One sbx_pool_wait_thaw on its own thread: a worker holding an instance its core froze. */
struct thaw_wait {
	struct sbx_pool *pool;
	struct sbx_sandbox *sb;
	struct sbx_result res;
	int rc;
	uint64_t end_ms;
	pthread_t thread;
};

static void *thaw_wait_main(void *arg)
{
	struct thaw_wait *w = arg;

	w->rc = sbx_pool_wait_thaw(w->pool, w->sb, &w->res);
	w->end_ms = now_ms();
	return NULL;
}

/*
 * nemod's exit with a core frozen: sbx_pool_stop() (its drain's deadline) kills the frozen
 * instances, so the call paused in one and the worker waiting for one end at once, with the
 * reason; the pool and host are then destroyed promptly and leave no process and no
 * cgroup. Afterwards a freeze of a core kills its instances instead (nobody would thaw).
 */
static void test_stop_with_frozen_core(void)
{
	char own_root[96];
	struct sbx_host *h = own_host("stop", 0, own_root, sizeof(own_root));
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-probe.so", "nap");
	struct sbx_pool *pool = sbx_pool_new(h, NULL, NULL);
	int core = 1 % sbx_host_n_cores(h), killed;
	struct pool_call busy = {0};
	struct thaw_wait w = {0};
	struct sbx_result r = {0};
	struct sbx_sandbox *later;
	pid_t pids[4];
	uint64_t t0, stop_ms;

	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	s.concurrency = 4;
	CU_ASSERT_EQUAL_FATAL(sbx_pool_deploy(pool, &s), 0);
	CU_ASSERT_EQUAL_FATAL(sbx_pool_prewarm(pool, s.name, core, 3), 3);
	busy = (struct pool_call){.pool = pool, .name = s.name, .core = core, .req = "200"};
	CU_ASSERT_FATAL(pthread_create(&busy.thread, NULL, pool_call_main, &busy) == 0);
	wait_busy(pool, s.name, 1);
	w.pool = pool;
	w.sb = sbx_pool_acquire(pool, s.name, core, &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w.sb);
	usleep(50 * 1000);
	/* one paused in mid-run, one acquired, one idle */
	CU_ASSERT_EQUAL(sbx_pool_freeze_core(pool, core), 3);
	CU_ASSERT_FATAL(pthread_create(&w.thread, NULL, thaw_wait_main, &w) == 0);
	usleep(200 * 1000);
	CU_ASSERT_FALSE(pool_call_done(&busy));

	t0 = now_ms();
	killed = sbx_pool_stop(pool);
	pthread_join(busy.thread, NULL);
	pthread_join(w.thread, NULL);
	stop_ms = now_ms() - t0;
	printf("\n  stop killed %d frozen instances; the paused call and the waiting one ended "
	       "%llu ms later:\n    %s: %s\n    %s: %s",
	       killed, (unsigned long long)stop_ms, sbx_status_name(busy.res.status),
	       busy.res.message, sbx_status_name(w.res.status), w.res.message);
	CU_ASSERT_EQUAL(killed, 3);
	CU_ASSERT(stop_ms < 500);
	CU_ASSERT_EQUAL(busy.res.status, SBX_ERR_INTERNAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(busy.res.message, "nemod is stopping"));
	CU_ASSERT_EQUAL(w.rc, -ESHUTDOWN);
	CU_ASSERT_EQUAL(w.res.status, SBX_ERR_INTERNAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(w.res.message, "nemod is stopping"));
	CU_ASSERT_EQUAL(kernel_frozen_sandboxes(), 0);
	sbx_result_release(&busy.res);
	sbx_pool_release(pool, w.sb);

	/* stopped: nothing is made ahead of demand, and a reclaim kills what runs on the core
	 * rather than freezing it */
	CU_ASSERT_EQUAL(sbx_pool_prewarm(pool, s.name, core, 1), -ESHUTDOWN);
	later = sbx_pool_acquire(pool, s.name, core, &r);
	CU_ASSERT_EQUAL(r.path, SBX_START_COLD);
	CU_ASSERT_PTR_NOT_NULL_FATAL(later);
	pids[3] = sbx_pid(later);
	killed = sbx_pool_freeze_core(pool, core);
	printf("\n  a freeze after the stop killed %d", killed);
	CU_ASSERT_EQUAL(killed, 1);
	CU_ASSERT_EQUAL(sbx_state(later), SBX_STATE_DEAD);
	sbx_pool_release(pool, later);

	/* the pool's own sandboxes, to look for after the host is gone */
	{
		uint32_t n = 0;

		CU_ASSERT_EQUAL(sbx_cgroup_core_sandboxes(h, -1, &n, NULL), 0);
		printf("\n  %u sandboxes left on the host before its destroy", n);
	}
	pids[0] = pids[1] = pids[2] = 0;
	t0 = now_ms();
	sbx_pool_destroy(pool);
	sbx_host_destroy(h);
	printf(", destroyed in %llu ms\n  ", (unsigned long long)(now_ms() - t0));
	CU_ASSERT(now_ms() - t0 < 1000);
	CU_ASSERT_FALSE(running(pids[3]));
	CU_ASSERT_EQUAL(root_dirs_left(own_root), 0);
}

/* Processes whose command line is `nemo-sbx-runtime --watchdog <owner> ...`. */
static int watchdogs_of(pid_t owner)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d))) {
		char path[300], cmd[512];
		ssize_t len;
		int fd;

		if (!atoi(de->d_name))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (len <= 0)
			continue;
		cmd[len] = '\0';
		/* argv[0] NUL argv[1] NUL argv[2] */
		if (!strcmp(cmd + strlen(cmd) + 1, "--watchdog") &&
		    atoi(cmd + strlen(cmd) + 1 + strlen("--watchdog") + 1) == owner &&
		    running(atoi(de->d_name)))
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

/*
 * nemod killed with -9 while its core is reclaimed: its frozen sandboxes (a scratch
 * instance, a zygote and a fork of it) are gone within 1 s. On v1 a frozen task cannot die
 * of the parent-death SIGKILL until something thaws it: the host's watchdog does, and
 * leaves too.
 */
static void test_owner_killed_frozen(void)
{
	bool zygotes = sbx_zygote_supported(NULL, 0) == 0;
	int pfd[2], n = zygotes ? 4 : 1, watchdogs;
	pid_t child, pids[4] = {0};
	uint64_t t0, gone_ms;

	CU_ASSERT_FATAL(pipe(pfd) == 0);
	child = fork();
	CU_ASSERT_FATAL(child >= 0);
	if (child == 0) {
		struct sbx_host_config cfg = {0};
		struct sbx_spec c = make_spec(SBX_RUNTIME_C, "test-probe.so", "nap");
		struct sbx_spec py = make_spec(SBX_RUNTIME_PYTHON, "test-tenant.py", "nap");
		struct sbx_sandbox *sb[3] = {NULL};
		char croot[64];
		pid_t out[4], parked[2];
		struct sbx_host *h;

		snprintf(croot, sizeof(croot), "nemo-test-%d", getpid());
		cfg.cgroup_root = croot;
		h = sbx_host_new(&cfg);
		sb[0] = h ? sbx_create(h, &c, 0) : NULL;
		if (!sb[0] || sbx_init(sb[0], NULL, 0))
			_exit(1);
		if (n == 4) {
			sb[1] = sbx_zygote_create(h, &py, 0, NULL, 0);
			sb[2] = sb[1] ? sbx_zygote_fork(sb[1], 0, NULL, 0) : NULL;
			/* and the zygote's ready fork, parked in its cgroups: frozen with it */
			if (!sb[2] || sbx_zygote_prepare(sb[1], NULL, 0) ||
			    cgroup_pids(sb[1], "freezer", parked, 2) != 2)
				_exit(1);
			out[3] = parked[0] == sbx_pid(sb[1]) ? parked[1] : parked[0];
		}
		for (int i = 0; i < (n < 3 ? n : 3); i++) {
			if (sbx_freeze(sb[i]))
				_exit(1);
			out[i] = sbx_pid(sb[i]);
		}
		if (write(pfd[1], out, sizeof(out)) != sizeof(out))
			_exit(1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	CU_ASSERT_EQUAL_FATAL(read(pfd[0], pids, sizeof(pids)), (ssize_t)sizeof(pids));
	close(pfd[0]);
	for (int i = 0; i < n; i++)
		CU_ASSERT_TRUE(running(pids[i]));
	if (sbx_cgroup_detect(NULL, 0) == SBX_CGROUP_V1)
		CU_ASSERT_EQUAL(watchdogs_of(child), 1);
	kill(child, SIGKILL);
	t0 = now_ms();
	waitpid(child, NULL, 0);
	for (int i = 0; i < 100; i++) {
		bool any = false;

		for (int k = 0; k < n; k++)
			any |= running(pids[k]);
		if (!any)
			break;
		usleep(10000);
	}
	gone_ms = now_ms() - t0;
	/* its watchdog goes too, once it has looked again and found nothing */
	while ((watchdogs = watchdogs_of(child)) && now_ms() - t0 < 1000)
		usleep(10000);
	printf("\n  %d frozen sandboxes gone %llu ms after their host's kill -9, its watchdog "
	       "%s after %llu ms\n  ",
	       n, (unsigned long long)gone_ms, watchdogs ? "still there" : "gone",
	       (unsigned long long)(now_ms() - t0));
	for (int i = 0; i < n; i++) {
		if (running(pids[i]))
			printf("pid %d outlived its host by 1 s\n  ", (int)pids[i]);
		CU_ASSERT_FALSE(running(pids[i]));
	}
	CU_ASSERT_EQUAL(watchdogs, 0);
	/* its cgroups, as nemod's restart would */
	remove_stale_roots();
}

NEMO_SUITE(sandbox_reclaim, suite_setup, suite_teardown,
	   {"a call on a core frozen past frozen_wait_ms ends, naming the core",
	    test_frozen_call_deadline},
	   {"stop with a frozen core: calls end at once, destroy leaves nothing",
	    test_stop_with_frozen_core},
	   {"owner killed -9 with frozen sandboxes: gone within 1 s", test_owner_killed_frozen})

/* ---- sandbox_packet: a sandboxed consumer of an NF's ring (issue 16) ---- */

/* The test plays the NF: the producer's rings, and its end of each lease. */
struct t_nf {
	struct fn_ring ring;
	int lease_peer; /* the NF's end of the current lease: EOF once the consumer is gone */
};

static void nf_create(struct t_nf *nf, const char *function)
{
	CU_ASSERT_EQUAL_FATAL(fn_ring_create(&nf->ring, function, 0, 64, 512, 0), 0);
	nf->lease_peer = -1;
}

/* A lease as fn_lease_acquire() gives one: copies of the ring's fds, and a connection. */
static struct sbx_packet_lease nf_lease(struct t_nf *nf)
{
	struct sbx_packet_lease l;
	int sv[2];

	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	if (nf->lease_peer >= 0)
		close(nf->lease_peer);
	nf->lease_peer = sv[0];
	l.lease_fd = sv[1];
	l.ring_fd = fcntl(nf->ring.mem_fd, F_DUPFD_CLOEXEC, 3);
	l.wake_fd = fcntl(nf->ring.wake_fd, F_DUPFD_CLOEXEC, 3);
	return l;
}

static void nf_close(struct t_nf *nf)
{
	if (nf->lease_peer >= 0)
		close(nf->lease_peer);
	fn_ring_close(&nf->ring);
}

/* Publish n requests (a reply allowed to each), waking the consumer if it parked. */
static void nf_put(struct t_nf *nf, const char *const *payloads, uint32_t n)
{
	struct fn_ring *r = &nf->ring;

	CU_ASSERT_FATAL(fn_ring_prod_free(r, n) >= n);
	for (uint32_t i = 0; i < n; i++) {
		struct fn_slot *s = fn_ring_prod_slot(r, i);

		memset(s, 0, sizeof(*s));
		s->seq = r->seq + i;
		s->flags = FN_SLOT_F_REPLY;
		s->proto = 17;
		s->len = (uint32_t)strlen(payloads[i]);
		memcpy(s->data, payloads[i], s->len);
	}
	if (fn_ring_prod_publish(r, n))
		fn_ring_wake(r);
}

/* Take the replies that come within `ms`, until `want`: out[i] "<seq>:<text>". */
static int nf_replies(struct t_nf *nf, char out[][160], int want, int ms)
{
	struct fn_ring *r = &nf->ring;
	uint64_t until = now_ms() + (uint64_t)ms;
	int n = 0;

	while (n < want && now_ms() < until) {
		uint32_t avail = fn_ring_rep_avail(r);

		if (avail == UINT32_MAX) {
			CU_FAIL("the consumer's reply index is out of range");
			break;
		}
		for (uint32_t i = 0; i < avail && n < want; i++) {
			const struct fn_slot *s = fn_ring_rep_slot(r, r->rep_tail + i);

			snprintf(out[n++], 160, "%llu:%.*s", (unsigned long long)s->seq,
				 (int)(s->len < 140 ? s->len : 140), (const char *)s->data);
		}
		if (avail)
			fn_ring_rep_release(r, avail);
		else
			usleep(1000);
	}
	return n;
}

/* Whether the NF's end of the lease reads its end within `ms` (the consumer is gone). */
static bool lease_ended(struct t_nf *nf, int ms)
{
	struct pollfd p = {.fd = nf->lease_peer, .events = POLLIN};
	char c;

	return poll(&p, 1, ms) == 1 && recv(nf->lease_peer, &c, 1, MSG_DONTWAIT) == 0;
}

static struct sbx_sandbox *packet_start(const struct sbx_spec *s, struct t_nf *nf, int core)
{
	struct sbx_packet_config cfg = {.batch = 8};
	struct sbx_packet_lease l = nf_lease(nf);
	char err[SBX_MSG_MAX] = "";
	struct sbx_sandbox *sb = sbx_packet_start(host, s, core, &l, &cfg, err, sizeof(err));

	if (!sb)
		printf("\n  packet start of %s failed: %s (%s)\n", s->name, err, strerror(errno));
	CU_ASSERT_PTR_NOT_NULL_FATAL(sb);
	/* the lease is the instance's alone: the caller's copies are closed */
	CU_ASSERT(fcntl(l.lease_fd, F_GETFD) < 0 && errno == EBADF);
	CU_ASSERT(fcntl(l.ring_fd, F_GETFD) < 0 && errno == EBADF);
	CU_ASSERT_TRUE(sbx_is_packet(sb));
	return sb;
}

/*
 * A C batch handler in a sandbox consumes the ring the test fills as the NF would: every
 * packet gets its reply, naming its request, one handler call per batch, the figures in the
 * ring header; idle, it parks, and a publish wakes it.
 */
static void test_packet_consumes(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-pkt-probe.so", "handle_batch");
	const char *batch[20];
	char names[20][16], out[32][160];
	struct sbx_packet_stats st;
	struct sbx_result r = {0};
	struct sbx_sandbox *sb;
	struct t_nf nf;
	uint64_t t0;
	int n;

	nf_create(&nf, "probe");
	sb = packet_start(&s, &nf, 1 % sbx_host_n_cores(host));
	for (int i = 0; i < 20; i++) {
		snprintf(names[i], sizeof(names[i]), "p%d", i);
		batch[i] = names[i];
	}
	t0 = now_ms();
	nf_put(&nf, batch, 20);
	n = nf_replies(&nf, out, 20, 2000);
	printf("\n  20 packets -> %d replies in %llu ms", n, (unsigned long long)(now_ms() - t0));
	CU_ASSERT_EQUAL(n, 20);
	for (int i = 0; i < n; i++) {
		char want[32];

		snprintf(want, sizeof(want), "%d:p%d", i, i);
		CU_ASSERT_STRING_EQUAL(out[i], want);
	}
	CU_ASSERT_EQUAL(sbx_packet_stats(sb, &st), 0);
	printf(", %llu batches (batch 8)", (unsigned long long)st.batches);
	CU_ASSERT_STRING_EQUAL(st.function, "probe");
	CU_ASSERT_EQUAL(st.lcore, 0);
	CU_ASSERT_EQUAL(st.packets, 20);
	CU_ASSERT_EQUAL(st.replies, 20);
	CU_ASSERT_EQUAL(st.errors, 0);
	CU_ASSERT(st.batches >= 3 && st.batches <= 20);
	/* idle: it parks on the eventfd, and a publish wakes it */
	usleep(300 * 1000);
	CU_ASSERT_EQUAL(sbx_packet_stats(sb, &st), 0);
	CU_ASSERT(st.parks >= 1);
	t0 = now_ms();
	nf_put(&nf, (const char *const[]){"wake"}, 1);
	CU_ASSERT_EQUAL(nf_replies(&nf, out, 1, 2000), 1);
	printf(", parked %llu times; a parked one answered in %llu ms\n  ",
	       (unsigned long long)st.parks, (unsigned long long)(now_ms() - t0));
	CU_ASSERT_STRING_EQUAL(out[0], "20:wake");
	CU_ASSERT(now_ms() - t0 < 100); /* the eventfd, not its 100 ms look at the lease */
	/* it takes no requests; it is still serving */
	CU_ASSERT_EQUAL(sbx_invoke(sb, "x", 1, &r), 0);
	CU_ASSERT_EQUAL(r.status, SBX_ERR_STATE);
	CU_ASSERT_EQUAL(sbx_packet_check(sb, NULL, 0), 0);
	sbx_destroy(sb);
	/* destroyed: the lease is over */
	CU_ASSERT_TRUE(lease_ended(&nf, 1000));
	nf_close(&nf);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
}

/*
 * A packet-mode instance is a sandbox like any other: the function's uid, a private root
 * (nothing of the host's /etc or of the checkout), its seccomp filter, the harvest cgroup of
 * its core, and no descriptor of nemod's but its own lease (3 the control socket, 5, 6, 7).
 */
static void test_packet_isolation(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-pkt-probe.so", "handle_batch");
	int core = 1 % sbx_host_n_cores(host);
	char open_src[600], want_src[700], want_uid[64], out[8][160];
	const char *probes[6] = {"uid",	   "open:/etc/passwd",
				 open_src, "open:/proc/1/root/etc/passwd",
				 "fds",	   "seccomp"};
	struct sbx_sandbox *sb;
	struct t_nf nf;
	uid_t uid;

	snprintf(open_src, sizeof(open_src), "open:%s/Makefile", nemo_test_srcdir());
	CU_ASSERT_EQUAL_FATAL(sbx_host_function_uid(host, s.name, &uid), 0);
	nf_create(&nf, "probe");
	sb = packet_start(&s, &nf, core);
	CU_ASSERT_EQUAL(sbx_cgroup_pid_core(host, sbx_pid(sb)), core);
	nf_put(&nf, probes, 6);
	CU_ASSERT_EQUAL_FATAL(nf_replies(&nf, out, 6, 2000), 6);
	for (int i = 0; i < 6; i++)
		printf("\n    %s", out[i]);
	printf("\n  ");
	snprintf(want_uid, sizeof(want_uid), "0:uid=%u gid=%u", (unsigned)uid, (unsigned)uid);
	CU_ASSERT_STRING_EQUAL(out[0], want_uid);
	CU_ASSERT_STRING_EQUAL(out[1], "1:open /etc/passwd: No such file or directory");
	snprintf(want_src, sizeof(want_src), "2:open %s/Makefile: No such file or directory",
		 nemo_test_srcdir());
	CU_ASSERT_STRING_EQUAL(out[2], want_src);
	CU_ASSERT_PTR_NOT_NULL(strstr(out[3], "open /proc/1/root/etc/passwd: "));
	CU_ASSERT_PTR_NULL(strstr(out[3], ": ok"));
	CU_ASSERT_STRING_EQUAL(out[4], "4:0 1 2 3 5 6 7");
	CU_ASSERT_STRING_EQUAL(out[5], "5:Seccomp:\t2");
	sbx_destroy(sb);
	nf_close(&nf);
}

/*
 * A crash mid-batch: the instance dies, its lease ends (the kernel closed the only copy),
 * its owner is told why, no reply of the batch reaches the NF, and once the NF has reset the
 * ring a replacement consumes what comes next.
 */
static void test_packet_crash_and_replace(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-pkt-probe.so", "handle_batch");
	int core = 1 % sbx_host_n_cores(host);
	struct pollfd p = {.events = POLLIN};
	struct sbx_packet_stats st;
	char why[SBX_MSG_MAX] = "", out[4][160];
	struct sbx_sandbox *sb;
	struct t_nf nf;
	uint64_t t0;
	uint32_t lost;

	nf_create(&nf, "probe");
	sb = packet_start(&s, &nf, core);
	p.fd = sbx_packet_fd(sb);
	t0 = now_ms();
	nf_put(&nf, (const char *const[]){"a", "b", "abort", "c"}, 4);
	CU_ASSERT_TRUE(lease_ended(&nf, 2000));
	printf("\n  lease ended %llu ms after the fatal batch",
	       (unsigned long long)(now_ms() - t0));
	CU_ASSERT_EQUAL(poll(&p, 1, 1000), 1);
	CU_ASSERT_EQUAL(sbx_packet_check(sb, why, sizeof(why)), -EPIPE);
	printf(": %s", why);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "killed by signal 6"));
	CU_ASSERT_EQUAL(fn_ring_rep_avail(&nf.ring), 0);
	sbx_destroy(sb);
	/* the NF's part: reset, then lease the ring again */
	lost = fn_ring_reset(&nf.ring);
	printf(", %u requests lost in the reset", lost);
	CU_ASSERT_EQUAL(lost, 4);
	sb = packet_start(&s, &nf, core);
	nf_put(&nf, (const char *const[]){"d", "e"}, 2);
	CU_ASSERT_EQUAL(nf_replies(&nf, out, 2, 2000), 2);
	CU_ASSERT_STRING_EQUAL(out[0], "4:d");
	CU_ASSERT_STRING_EQUAL(out[1], "5:e");
	CU_ASSERT_EQUAL(sbx_packet_stats(sb, &st), 0);
	printf("; the replacement: %llu packets, %llu replies\n  ", (unsigned long long)st.packets,
	       (unsigned long long)st.replies);
	CU_ASSERT_EQUAL(st.packets, 2);
	CU_ASSERT_EQUAL(st.replies, 2);
	CU_ASSERT_EQUAL(nf.ring.sh->epoch.v, 1);
	sbx_destroy(sb);
	nf_close(&nf);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
}

/*
 * Reclaim reaches packet-mode instances of a pool: frozen with their core, they stop
 * consuming (the NF's ring holds what comes) and go on at the thaw; stopped while frozen,
 * they are killed and their owner reads why.
 */
static void test_packet_in_pool_freeze(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_C, "test-pkt-probe.so", "handle_batch");
	struct sbx_pool *pool = sbx_pool_new(host, NULL, NULL);
	int core = 1 % sbx_host_n_cores(host);
	struct sbx_packet_lease l;
	struct sbx_pool_stats ps;
	char out[4][160], why[SBX_MSG_MAX] = "";
	struct sbx_sandbox *sb;
	struct t_nf nf;

	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	CU_ASSERT_EQUAL_FATAL(sbx_pool_deploy(pool, &s), 0);
	nf_create(&nf, "probe");
	l = nf_lease(&nf);
	sb = sbx_pool_packet_start(pool, s.name, core, &l, NULL, NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sb);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &ps), 0);
	CU_ASSERT_EQUAL(ps.packet, 1);
	CU_ASSERT_EQUAL(sbx_pool_freeze_core(pool, core), 1);
	nf_put(&nf, (const char *const[]){"f1", "f2"}, 2);
	CU_ASSERT_EQUAL(nf_replies(&nf, out, 2, 300), 0);
	CU_ASSERT_EQUAL(fn_ring_prod_free(&nf.ring, 64), 62); /* held, not consumed */
	CU_ASSERT_EQUAL(sbx_pool_thaw_core(pool, core), 1);
	CU_ASSERT_EQUAL(nf_replies(&nf, out, 2, 2000), 2);
	CU_ASSERT_STRING_EQUAL(out[1], "1:f2");
	/* nemod leaves while the core is reclaimed */
	CU_ASSERT_EQUAL(sbx_pool_freeze_core(pool, core), 1);
	CU_ASSERT_EQUAL(sbx_pool_stop(pool), 1);
	CU_ASSERT_TRUE(lease_ended(&nf, 2000));
	CU_ASSERT_EQUAL(sbx_packet_check(sb, why, sizeof(why)), -EPIPE);
	printf("\n  stopped while frozen: %s\n  ", why);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "nemod is stopping"));
	sbx_pool_packet_stop(pool, sb);
	CU_ASSERT_EQUAL(sbx_pool_stats(pool, s.name, &ps), 0);
	CU_ASSERT_EQUAL(ps.packet, 0);
	sbx_pool_destroy(pool);
	nf_close(&nf);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
}

/* python's batch handler: a list of bytes in, a list of bytes, str or None out. */
static void test_packet_python(void)
{
	struct sbx_spec s = make_spec(SBX_RUNTIME_PYTHON, "test-pkt.py", "handle_batch");
	struct sbx_packet_stats st;
	char out[8][160], want[64];
	struct sbx_sandbox *sb;
	struct t_nf nf;
	uid_t uid;
	int n;

	CU_ASSERT_EQUAL_FATAL(sbx_host_function_uid(host, s.name, &uid), 0);
	nf_create(&nf, "py");
	sb = packet_start(&s, &nf, 0);
	nf_put(&nf, (const char *const[]){"abc", "none", "uid", "open:/etc/passwd"}, 4);
	n = nf_replies(&nf, out, 4, 3000);
	for (int i = 0; i < n; i++)
		printf("\n    %s", out[i]);
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_STRING_EQUAL(out[0], "0:ABC");
	snprintf(want, sizeof(want), "2:uid=%u gid=%u", (unsigned)uid, (unsigned)uid);
	CU_ASSERT_STRING_EQUAL(out[1], want);
	CU_ASSERT_STRING_EQUAL(out[2], "3:open /etc/passwd: No such file or directory");
	/* a handler that raises fails its batch: no reply of it, one error */
	nf_put(&nf, (const char *const[]){"x", "raise"}, 2);
	usleep(200 * 1000);
	nf_put(&nf, (const char *const[]){"y"}, 1);
	n = nf_replies(&nf, out, 2, 3000);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_STRING_EQUAL(out[0], "6:Y");
	CU_ASSERT_EQUAL(sbx_packet_stats(sb, &st), 0);
	printf("\n  python: %llu batches, %llu packets, %llu replies, %llu errors\n  ",
	       (unsigned long long)st.batches, (unsigned long long)st.packets,
	       (unsigned long long)st.replies, (unsigned long long)st.errors);
	CU_ASSERT_EQUAL(st.packets, 7);
	CU_ASSERT_EQUAL(st.replies, 4);
	CU_ASSERT_EQUAL(st.errors, 1);
	CU_ASSERT_EQUAL(sbx_packet_check(sb, NULL, 0), 0);
	sbx_destroy(sb);
	nf_close(&nf);
}

/* What cannot start says why, and the lease's fds are closed all the same. */
static void test_packet_bad_input(void)
{
	struct sbx_spec c = make_spec(SBX_RUNTIME_C, "test-pkt-probe.so", "handle_batch");
	struct sbx_spec ex = make_spec(SBX_RUNTIME_EXEC, "exec-upper", NULL);
	struct sbx_packet_config nope = {.handler = "nope"}, big = {.batch = 1000};
	struct sbx_packet_lease l;
	char err[SBX_MSG_MAX];
	struct t_nf nf;
	int junk = memfd_create("t-not-a-ring", MFD_CLOEXEC);

	nf_create(&nf, "probe");
	/* not a ring */
	l = nf_lease(&nf);
	close(l.ring_fd);
	CU_ASSERT_EQUAL_FATAL(ftruncate(junk, 4096), 0);
	l.ring_fd = junk;
	CU_ASSERT_PTR_NULL(sbx_packet_start(host, &c, 0, &l, NULL, err, sizeof(err)));
	CU_ASSERT_EQUAL(errno, EPROTO);
	printf("\n  %s", err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "is not a function ring"));
	CU_ASSERT(fcntl(l.lease_fd, F_GETFD) < 0 && fcntl(junk, F_GETFD) < 0);
	/* an exec function */
	l = nf_lease(&nf);
	CU_ASSERT_PTR_NULL(sbx_packet_start(host, &ex, 0, &l, NULL, err, sizeof(err)));
	CU_ASSERT_EQUAL(errno, ENOTSUP);
	printf("\n  %s", err);
	/* no such handler */
	l = nf_lease(&nf);
	CU_ASSERT_PTR_NULL(sbx_packet_start(host, &c, 0, &l, &nope, err, sizeof(err)));
	CU_ASSERT_EQUAL(errno, ENOEXEC);
	printf("\n  %s", err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "handler 'nope' not found"));
	CU_ASSERT_TRUE(lease_ended(&nf, 1000));
	/* a batch over the host's limit */
	l = nf_lease(&nf);
	CU_ASSERT_PTR_NULL(sbx_packet_start(host, &c, 0, &l, &big, err, sizeof(err)));
	CU_ASSERT_EQUAL(errno, EINVAL);
	printf("\n  %s\n  ", err);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "packet batch 1000 is over"));
	CU_ASSERT_TRUE(lease_ended(&nf, 1000));
	nf_close(&nf);
	CU_ASSERT_EQUAL(sbx_host_n_sandboxes(host), 0);
	CU_ASSERT_EQUAL(leftover_sandbox_cgroups(), 0);
}

NEMO_SUITE(sandbox_packet, suite_setup, suite_teardown,
	   {"a sandboxed C batch handler consumes the NF's ring, replies come back",
	    test_packet_consumes},
	   {"its isolation holds: uid, private root, fds, seccomp, cgroup", test_packet_isolation},
	   {"a crash mid-batch ends the lease; after the reset a replacement serves",
	    test_packet_crash_and_replace},
	   {"frozen with its core it stops consuming; stopped frozen, it is killed",
	    test_packet_in_pool_freeze},
	   {"python's batch handler", test_packet_python},
	   {"bad input is refused, naming what is wrong", test_packet_bad_input})
