/* proc.c - child processes for integration tests: start, wait, stop, and clean up on failure. */
#include <dirent.h>
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nemo/gateway.h"
#include "proc.h"
#include "test.h"

#define MAX_PROCS 64

static struct test_proc *procs[MAX_PROCS];
static int atexit_set;

void test_msleep(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

int test_proc_start(struct test_proc *p, char *const argv[])
{
	int fd, slot = -1;

	if (!atexit_set) {
		atexit(test_proc_kill_all);
		atexit_set = 1;
	}
	for (int i = 0; i < MAX_PROCS; i++)
		if (!procs[i]) {
			slot = i;
			break;
		}
	if (slot < 0)
		return -ENOSPC;
	memset(p, 0, sizeof(*p));
	snprintf(p->out_path, sizeof(p->out_path), "/tmp/nemo-test-out-XXXXXX");
	fd = mkostemp(p->out_path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	p->pid = fork();
	if (p->pid < 0) {
		close(fd);
		return -errno;
	}
	if (p->pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		/* die with the test runner, even if it is killed */
		setpgid(0, 0);
		/* a runner started in the background (nohup, `&`) ignores SIGINT and SIGQUIT, and
		 * exec keeps that: the programs under test get the default a user's shell gives */
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	/* unlinked at once: the open descriptor keeps the output readable, and nothing is left
	 * in /tmp even if the runner crashes */
	unlink(p->out_path);
	p->out_fd = fd;
	procs[slot] = p;
	return 0;
}

static void forget(struct test_proc *p)
{
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i] == p)
			procs[i] = NULL;
}

static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -EINVAL;
}

int test_proc_wait(struct test_proc *p, int timeout_ms)
{
	for (int waited = 0;; waited += 10) {
		pid_t r;

		if (p->reaped)
			return exit_code(p->status);
		r = waitpid(p->pid, &p->status, WNOHANG);
		if (r == p->pid) {
			p->reaped = true;
			forget(p);
			return exit_code(p->status);
		}
		if (r < 0)
			return -errno;
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		test_msleep(10);
	}
}

int test_proc_stop(struct test_proc *p, int timeout_ms)
{
	int rc;

	if (p->reaped)
		return exit_code(p->status);
	kill(p->pid, SIGTERM);
	rc = test_proc_wait(p, timeout_ms);
	if (rc == -ETIMEDOUT) {
		kill(-p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
		rc = test_proc_wait(p, 5000);
	}
	return rc;
}

const char *test_proc_output(struct test_proc *p)
{
	static char buf[1 << 17];
	ssize_t n = pread(p->out_fd, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

bool test_proc_output_has(struct test_proc *p, const char *pattern)
{
	const char *out = test_proc_output(p);

	if (strstr(out, pattern))
		return true;
	printf("\n  --- output of pid %d has no '%s':\n%s\n  ---\n", p->pid, pattern, out);
	return false;
}

void test_proc_kill_all(void)
{
	for (int i = 0; i < MAX_PROCS; i++) {
		struct test_proc *p = procs[i];

		if (!p)
			continue;
		kill(-p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &p->status, 0);
		p->reaped = true;
		procs[i] = NULL;
	}
}

void test_remove_runtime_dir(const char *prefix)
{
	char dir[256];
	DIR *d;
	struct dirent *e;

	snprintf(dir, sizeof(dir), "/var/run/dpdk/%s", prefix);
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[512];

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* Apply `fn` to every path that matches `pattern`. */
static void for_each_match(const char *pattern, void (*fn)(const char *path))
{
	glob_t g;

	if (glob(pattern, 0, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++)
		fn(g.gl_pathv[i]);
	globfree(&g);
}

static void unlink_path(const char *path)
{
	unlink(path);
}

static void remove_dpdk_dir(const char *path)
{
	test_remove_runtime_dir(path + strlen("/var/run/dpdk/"));
}

void test_cleanup_runs(const char *tag)
{
	char pattern[128];

	test_proc_kill_all();
	snprintf(pattern, sizeof(pattern), "/tmp/nemo-%s-%d-*", tag, getpid());
	for_each_match(pattern, unlink_path);
	snprintf(pattern, sizeof(pattern), "/dev/shm/nemo-hc-%s%d-*", tag, getpid());
	for_each_match(pattern, unlink_path);
	snprintf(pattern, sizeof(pattern), "/var/run/dpdk/nemo-*-%s%d-*", tag, getpid());
	for_each_match(pattern, remove_dpdk_dir);
}

uint16_t test_free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port = 0;

	if (fd < 0)
		return 0;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

int test_write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

char *test_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = n < 0 ? NULL : calloc(1, (size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf && len)
		*len = (size_t)n;
	return buf;
}

bool test_nemod_healthy(struct test_proc *p, uint16_t port, int ms)
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

int test_nemod_start(struct test_proc *p, const char *config, uint16_t port, int ms)
{
	char bin[512];
	char *argv[] = {bin, "--config", (char *)config, NULL};

	int rc;

	snprintf(bin, sizeof(bin), "%s/nemod", nemo_test_bindir());
	rc = test_proc_start(p, argv);
	if (rc)
		return rc;
	if (!test_nemod_healthy(p, port, ms)) {
		printf("\n  nemod did not become healthy:\n%s\n", test_proc_output(p));
		return -ETIMEDOUT;
	}
	return 0;
}

int test_broker_start(struct test_proc *p, const char *dir, uint16_t port)
{
	char conf[256], text[256];
	char *argv[] = {"/usr/sbin/mosquitto", "-c", conf, NULL};
	int rc;

	snprintf(conf, sizeof(conf), "%s/mosquitto.conf", dir);
	snprintf(text, sizeof(text), "listener %u 127.0.0.1\nallow_anonymous true\n",
		 (unsigned)port);
	rc = test_write_text(conf, text);
	if (!rc)
		rc = test_proc_start(p, argv);
	if (rc)
		return rc;
	for (int i = 0; i < 100; i++) {
		struct sockaddr_in sin = {.sin_family = AF_INET,
					  .sin_port = htons(port),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
			close(fd);
			return 0;
		}
		if (fd >= 0)
			close(fd);
		test_msleep(50);
	}
	return -ETIMEDOUT;
}

int test_nf_start(struct test_proc *p, const char *cfg, const char *duration)
{
	char bin[512];
	char *argv[] = {bin, "--config", (char *)cfg, "--duration", (char *)duration, NULL};

	snprintf(bin, sizeof(bin), "%s/nemo-nf", nemo_test_bindir());
	return test_proc_start(p, argv);
}

void test_memif_port(char *buf, size_t len, const char *sock)
{
	snprintf(buf, len,
		 "{\"vdev\":\"net_memif0,role=server,socket=%s,socket-abstract=no\","
		 "\"rx_ring\":16384,\"line_rate_pps\":25000000}",
		 sock);
}

int test_gen_start(struct test_proc *g, const char *json, const char *sock, const char *rate,
		   const char *duration, const char *const extra[])
{
	char bin[512];
	char *argv[32];
	int n = 0;

	snprintf(bin, sizeof(bin), "%s/nemo-gen", nemo_test_bindir());
	argv[n++] = "/usr/bin/nice";
	argv[n++] = "-n";
	argv[n++] = "-10";
	argv[n++] = bin;
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
	argv[n++] = (char *)json;
	for (int i = 0; extra && extra[i]; i++) {
		if (n == (int)(sizeof(argv) / sizeof(argv[0])) - 1)
			return -E2BIG;
		argv[n++] = (char *)extra[i];
	}
	argv[n] = NULL;
	return test_proc_start(g, argv);
}

cJSON *test_gen_finish(struct test_proc *g, const char *json)
{
	cJSON *res = NULL;
	int rc = test_proc_wait(g, 60000);
	char prefix[32];

	CU_ASSERT_EQUAL(rc, 0);
	if (rc == 0) {
		char *text = test_read_file(json, NULL);

		res = text ? cJSON_Parse(text) : NULL;
		free(text);
	} else {
		printf("\n  nemo-gen failed (%d):\n%s\n", rc, test_proc_output(g));
		test_proc_stop(g, 2000);
	}
	unlink(json);
	snprintf(prefix, sizeof(prefix), "nemo-gen-%d", g->pid);
	test_remove_runtime_dir(prefix);
	return res;
}

int test_nf_telemetry(const char *name, const char *commands, char *out, size_t len)
{
	char cmd[512];
	size_t n;
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "printf '%%s\\n' %s | timeout 20 /usr/bin/dpdk-telemetry.py -f nemo-nf-%s 2>&1",
		 commands, name);
	out[0] = '\0';
	f = popen(cmd, "r");
	if (!f)
		return -errno;
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	pclose(f);
	return 0;
}

int test_count_of(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

double test_json_num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

long long test_find_count(const char *text, const char *after, const char *key)
{
	const char *p = after ? strstr(text, after) : text;
	char k[64];

	if (!p)
		return -1;
	snprintf(k, sizeof(k), "%s ", key);
	p = strstr(p, k);
	return p ? atoll(p + strlen(k)) : -1;
}

uint16_t test_inet_sum(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

int test_run_nemoctl(uint16_t port, const char *token_file, char *out, size_t cap, const char *fmt,
		     ...)
{
	char cmd[2048], args[1536];
	va_list ap;
	FILE *p;
	size_t n;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd),
		 "NEMO_URL=http://127.0.0.1:%u NEMO_TOKEN_FILE=%s %s/nemoctl %s 2>&1",
		 (unsigned)port, token_file, nemo_test_bindir(), args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
