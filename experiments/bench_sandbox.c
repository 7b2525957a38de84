/* bench_sandbox.c - sandbox start-up and round-trip figures beside same-run baselines. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/log.h"
#include "nemo/sandbox.h"

/*
 * make bench-sandbox. Every figure is p50 and p99 over N runs, printed beside a baseline
 * measured in the same run on the same machine, so the ratios hold even when the absolute
 * times move with the load of the machine. Nothing here gates on an absolute time.
 */

#define RUNS	  200
#define WARM_RUNS 5000
/*
 * Cold and zygote starts are timed START_GAP_US apart, as sporadic starts come: back to
 * back, one start's cgroup attach finds the kernel's RCU sync still warm from the last and
 * skips the grace period it waits for otherwise.
 */
#define START_GAP_US 20000

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct stat2 {
	double p50_us, p99_us;
};

static struct stat2 pct(uint64_t *v, int n)
{
	struct stat2 s;

	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	s.p50_us = (double)v[n / 2] / 1e3;
	s.p99_us = (double)v[(n * 99) / 100] / 1e3;
	return s;
}

/* one figure, and its p50 as a ratio of `base`'s (named `vs`) */
static void row_vs(const char *what, struct stat2 s, const struct stat2 *base, const char *vs)
{
	printf("  %-52s p50 %9.1f us  p99 %9.1f us", what, s.p50_us, s.p99_us);
	if (base)
		printf("  (%.2fx %s)", s.p50_us / base->p50_us, vs);
	printf("\n");
}

static void row(const char *what, struct stat2 s, const struct stat2 *base)
{
	row_vs(what, s, base, "fork+exec");
}

static char fn_dir[512];

static struct sbx_spec spec_of(int runtime, const char *file, const char *handler)
{
	struct sbx_spec s;

	sbx_spec_defaults(&s);
	snprintf(s.name, sizeof(s.name), "%s", file);
	for (char *p = s.name; *p; p++)
		if (*p == '.')
			*p = '_';
	s.runtime = runtime;
	snprintf(s.code, sizeof(s.code), "%s/%s", fn_dir, file);
	snprintf(s.handler, sizeof(s.handler), "%s", handler);
	/* a loaded machine slows a cold import-heavy first call past the default 1 s */
	s.timeout_ms = 10000;
	return s;
}

/* ---- baselines ---- */

static char stack[65536] __attribute__((aligned(16)));

static int exec_true(void *arg)
{
	char *argv[] = {"/bin/true", NULL};

	(void)arg;
	execv(argv[0], argv);
	_exit(127);
}

/* fork (or clone with `flags`) + exec /bin/true + wait */
static uint64_t spawn_once(int flags)
{
	uint64_t t0 = nemo_now_ns();
	pid_t pid = clone(exec_true, stack + sizeof(stack), flags | SIGCHLD, NULL);
	int st;

	if (pid < 0) {
		perror("clone");
		exit(1);
	}
	waitpid(pid, &st, 0);
	return nemo_now_ns() - t0;
}

static struct stat2 bench_spawn(int flags, int n)
{
	uint64_t *v = calloc((size_t)n, sizeof(*v));
	struct stat2 s;

	for (int i = 0; i < n; i++)
		v[i] = spawn_once(flags);
	s = pct(v, n);
	free(v);
	return s;
}

/* A plain forked echo over a socketpair: the floor for any warm round trip. */
static struct stat2 bench_socket_echo(size_t len, int n)
{
	uint64_t *v = calloc((size_t)n, sizeof(*v));
	char *buf = malloc(len);
	struct stat2 s;
	int sv[2];
	pid_t pid;

	memset(buf, 'x', len);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		exit(1);
	pid = fork();
	if (pid == 0) {
		char *b = malloc(len);

		close(sv[0]);
		for (;;) {
			size_t got = 0;

			while (got < len) {
				ssize_t r = read(sv[1], b + got, len - got);

				if (r <= 0)
					_exit(0);
				got += (size_t)r;
			}
			if (write(sv[1], b, len) != (ssize_t)len)
				_exit(0);
		}
	}
	close(sv[1]);
	for (int i = 0; i < n; i++) {
		uint64_t t0 = nemo_now_ns();
		size_t got = 0;

		if (write(sv[0], buf, len) != (ssize_t)len)
			exit(1);
		while (got < len) {
			ssize_t r = read(sv[0], buf + got, len - got);

			if (r <= 0)
				exit(1);
			got += (size_t)r;
		}
		v[i] = nemo_now_ns() - t0;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	s = pct(v, n);
	free(v);
	free(buf);
	return s;
}

/* ---- sandboxes ---- */

struct cold {
	struct stat2 total, create, init, run;
};

/* The times of n cold starts, run by run. */
struct cold_runs {
	uint64_t *tot, *cr, *in, *ru;
};

static void cold_runs_alloc(struct cold_runs *v, int n)
{
	v->tot = calloc((size_t)n, 8);
	v->cr = calloc((size_t)n, 8);
	v->in = calloc((size_t)n, 8);
	v->ru = calloc((size_t)n, 8);
}

static struct cold cold_runs_done(struct cold_runs *v, int n)
{
	struct cold c = {pct(v->tot, n), pct(v->cr, n), pct(v->in, n), pct(v->ru, n)};

	free(v->tot), free(v->cr), free(v->in), free(v->ru);
	return c;
}

/* create + init + first response of a fresh sandbox: run i of v */
static void cold_once(struct sbx_host *host, const struct sbx_spec *spec, int i, const char *req,
		      struct cold_runs *v)
{
	uint64_t t0 = nemo_now_ns(), t1, t2;
	struct sbx_sandbox *sb = sbx_create(host, spec, i % sbx_host_n_cores(host));
	struct sbx_result r = {0};
	char err[256];

	t1 = nemo_now_ns();
	if (!sb || sbx_init(sb, err, sizeof(err))) {
		fprintf(stderr, "cold start of %s failed: %s\n", spec->name,
			sb ? err : strerror(errno));
		exit(1);
	}
	t2 = nemo_now_ns();
	sbx_invoke(sb, req, strlen(req), &r);
	v->tot[i] = nemo_now_ns() - t0;
	if (r.status != SBX_OK) {
		fprintf(stderr, "%s: %s\n", spec->name, r.message);
		exit(1);
	}
	v->cr[i] = t1 - t0;
	v->in[i] = t2 - t1;
	v->ru[i] = r.times.run_ns;
	sbx_result_release(&r);
	sbx_destroy(sb);
	usleep(START_GAP_US);
}

/* create + init + first response, each run a fresh sandbox */
static struct cold bench_cold(struct sbx_host *host, const struct sbx_spec *spec, int n,
			      const char *req)
{
	struct cold_runs v;

	cold_runs_alloc(&v, n);
	for (int i = 0; i < n; i++)
		cold_once(host, spec, i, req, &v);
	return cold_runs_done(&v, n);
}

/* The same cold start on two hosts, alternating run by run: both see the same load. */
static void bench_cold_pair(struct sbx_host *a, struct sbx_host *b, const struct sbx_spec *spec,
			    int n, const char *req, struct cold *ca, struct cold *cb)
{
	struct cold_runs va, vb;

	cold_runs_alloc(&va, n);
	cold_runs_alloc(&vb, n);
	for (int i = 0; i < n; i++) {
		cold_once(a, spec, i, req, &va);
		cold_once(b, spec, i, req, &vb);
	}
	*ca = cold_runs_done(&va, n);
	*cb = cold_runs_done(&vb, n);
}

static struct stat2 bench_warm(struct sbx_host *host, size_t len, int n)
{
	struct sbx_spec s = spec_of(SBX_RUNTIME_C, "echo.so", "handle");
	uint64_t *v = calloc((size_t)n, 8);
	struct sbx_sandbox *sb = sbx_create(host, &s, 0);
	char *req = malloc(len);
	struct stat2 st;

	memset(req, 'y', len);
	if (!sb || sbx_init(sb, NULL, 0))
		exit(1);
	for (int i = 0; i < n; i++) {
		struct sbx_result r = {0};
		uint64_t t0 = nemo_now_ns();

		sbx_invoke(sb, req, len, &r);
		v[i] = nemo_now_ns() - t0;
		if (r.status != SBX_OK || r.response_len != len)
			exit(1);
		sbx_result_release(&r);
	}
	sbx_destroy(sb);
	st = pct(v, n);
	free(v);
	free(req);
	return st;
}

/* pool: acquire a pre-warmed instance and get its first response */
static struct stat2 bench_prewarmed(struct sbx_host *host, const struct sbx_spec *spec, int n,
				    const char *req)
{
	struct sbx_pool *pool = sbx_pool_new(host, NULL, NULL);
	uint64_t *v = calloc((size_t)n, 8);
	struct stat2 st;

	sbx_pool_deploy(pool, spec);
	for (int i = 0; i < n; i++) {
		struct sbx_result r;

		if (sbx_pool_prewarm(pool, spec->name, 0, 1) != 1)
			exit(1);
		sbx_pool_invoke(pool, spec->name, 0, req, strlen(req), &r);
		if (r.status != SBX_OK || r.path != SBX_START_PREWARMED)
			exit(1);
		v[i] = r.times.queue_ns + r.times.run_ns;
		sbx_result_release(&r);
		/* keep the pool at one instance per round: the next prewarm is fresh */
		sbx_pool_undeploy(pool, spec->name);
		sbx_pool_deploy(pool, spec);
	}
	sbx_pool_destroy(pool);
	st = pct(v, n);
	free(v);
	return st;
}

/* memory of idle warm instances: cgroup charge after init and one request */
static double idle_memory_mib(struct sbx_host *host, const struct sbx_spec *spec, const char *req)
{
	enum {
		N = 8
	};
	struct sbx_sandbox *sb[N];
	uint64_t total = 0;

	for (int i = 0; i < N; i++) {
		struct sbx_result r = {0};

		sb[i] = sbx_create(host, spec, i % sbx_host_n_cores(host));
		if (!sb[i] || sbx_init(sb[i], NULL, 0))
			exit(1);
		sbx_invoke(sb[i], req, strlen(req), &r);
		sbx_result_release(&r);
	}
	for (int i = 0; i < N; i++) {
		uint64_t b = 0;

		sbx_memory_bytes(sb[i], &b);
		total += b;
		sbx_destroy(sb[i]);
	}
	return (double)total / N / (1 << 20);
}

/* ---- zygotes ---- */

static struct sbx_sandbox *zygote_or_die(struct sbx_host *host, const struct sbx_spec *spec,
					 int core)
{
	char err[256];
	struct sbx_sandbox *z = sbx_zygote_create(host, spec, core, err, sizeof(err));

	if (!z) {
		fprintf(stderr, "zygote of %s failed: %s\n", spec->name, err);
		exit(1);
	}
	return z;
}

/* A start through a zygote, run by run. */
struct zyg_runs {
	struct stat2 total; /* the start (fork on demand, or hand-over) + first response */
	struct stat2 start; /* sbx_zygote_fork() alone: the fork until ready in its cgroup */
	struct stat2 run;   /* the first call, inside the total */
	struct stat2 again; /* a second call of the same instance, apart: a warm call */
	struct stat2 made;  /* making the ready fork ahead (sbx_zygote_prepare), apart */
	/* the baselines, one of each before each start, so that a load that comes and goes
	 * reaches them as it reaches the start: fork+exec of /bin/true, and a cold start */
	struct stat2 fe;
	struct stat2 cold;
};

/*
 * Fork from a zygote + first response, each run a fresh instance (the zygote made once).
 * `ready`: each run's instance is the zygote's ready fork, made ahead (sbx_zygote_prepare,
 * timed apart, then START_GAP_US of quiet, as spare cycles would make it) and handed over:
 * the timed start is then the hand-over and the first response.
 */
static struct zyg_runs bench_zygote(struct sbx_host *host, const struct sbx_spec *spec, int n,
				    const char *req, bool ready)
{
	uint64_t *tot = calloc((size_t)n, 8), *cr = calloc((size_t)n, 8),
		 *ru = calloc((size_t)n, 8), *ag = calloc((size_t)n, 8), *mk = calloc((size_t)n, 8),
		 *fe = calloc((size_t)n, 8);
	struct sbx_sandbox *z = zygote_or_die(host, spec, 0);
	struct zyg_runs c = {0};
	struct cold_runs cold;

	cold_runs_alloc(&cold, n);
	for (int i = 0; i < n; i++) {
		uint64_t t0, t1;
		char err[256];
		struct sbx_sandbox *sb;
		struct sbx_result r = {0};

		if (ready) {
			t0 = nemo_now_ns();
			if (sbx_zygote_prepare(z, err, sizeof(err))) {
				fprintf(stderr, "ready fork of %s failed: %s\n", spec->name, err);
				exit(1);
			}
			mk[i] = nemo_now_ns() - t0;
			usleep(START_GAP_US);
		}
		fe[i] = spawn_once(0);
		cold_once(host, spec, i, req, &cold); /* then START_GAP_US of quiet */
		t0 = nemo_now_ns();
		sb = sbx_zygote_fork(z, 0, err, sizeof(err));
		t1 = nemo_now_ns();
		if (!sb || sbx_from_ready_fork(sb) != ready) {
			fprintf(stderr, "fork of %s failed: %s\n", spec->name,
				sb ? "not the ready fork" : err);
			exit(1);
		}
		sbx_invoke(sb, req, strlen(req), &r);
		tot[i] = nemo_now_ns() - t0;
		if (r.status != SBX_OK) {
			fprintf(stderr, "%s: %s\n", spec->name, r.message);
			exit(1);
		}
		cr[i] = t1 - t0;
		ru[i] = r.times.run_ns;
		sbx_result_release(&r);
		sbx_invoke(sb, req, strlen(req), &r);
		ag[i] = r.times.run_ns;
		sbx_result_release(&r);
		sbx_destroy(sb);
		usleep(START_GAP_US);
	}
	sbx_destroy(z);
	c.total = pct(tot, n);
	c.start = pct(cr, n);
	c.run = pct(ru, n);
	c.again = pct(ag, n);
	if (ready)
		c.made = pct(mk, n);
	c.fe = pct(fe, n);
	c.cold = cold_runs_done(&cold, n).total;
	free(tot), free(cr), free(ru), free(ag), free(mk), free(fe);
	return c;
}

/* ---- where a fork on demand's time goes ---- */

enum fork_step {
	STEP_PLAIN,   /* a plain fork, until the child runs */
	STEP_CLONE,   /* clone with the five namespaces, until the child runs */
	STEP_MAPS,    /* the uid and gid maps */
	STEP_PROC,    /* its own /proc */
	STEP_TMP,     /* its own /tmp and /dev/shm */
	STEP_SETSID,  /* its own session */
	STEP_SECCOMP, /* the host's filter stacked (its size), JIT-compiled for the process */
	STEP_REAP,    /* exit of the instance and its namespaces, until reaped (not in a start) */
	STEP_FE,      /* fork+exec of /usr/bin/true from the same process, alongside */
	STEP_NS,      /* clone with a new user ns and one more, until the child runs: 5 */
	STEP_N = STEP_NS + 5
};

/* the namespaces one by one: a user namespace alone, then with each of the others */
static const unsigned long ns_one[5] = {0, CLONE_NEWPID, CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUTS};

/* Clone with `flags`, the child exits at once; returns the ns until the child ran. */
static uint64_t clone_until_runs(unsigned long flags, uint64_t *at)
{
	uint64_t t0 = nemo_now_ns();
	long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
	int st;

	if (pid == 0) {
		at[0] = nemo_now_ns();
		_exit(0);
	}
	if (pid < 0 || waitpid((pid_t)pid, &st, 0) < 0 || st)
		_exit(9);
	return at[0] - t0;
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? write(fd, text, strlen(text)) : -1;

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* fork+exec of /usr/bin/true and its wait (the baseline, from inside the steps' root) */
static uint64_t spawn_true(void)
{
	uint64_t t0 = nemo_now_ns();
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		execl("/usr/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || st)
		_exit(8);
	return nemo_now_ns() - t0;
}

/*
 * In a child of the bench: what a zygote is (an unprivileged uid in a mount namespace of a
 * few mounts), then n forks each timed step by step as runtime/zygote.c makes them. Writes
 * the p50 of each step (ns, enum fork_step) to `out`.
 */
static void fork_steps_child(int n, int out)
{
	struct sock_filter filter[99];
	struct sock_fprog prog = {99, filter};
	uint64_t *at = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t *v[STEP_N], p50[STEP_N];
	const uid_t uid = 199999;
	char map[32];

	/* the host's filter is a list of denials this long (libseccomp's output) */
	filter[0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, nr));
	for (int i = 1; i < 98; i++)
		filter[i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1000 + i, 0, 0);
	filter[98] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	/* a mount namespace of its own, its root a tmpfs with /usr, /proc, /tmp and /dev/shm, as
	 * the private root's template; made under a tmpfs of its own on /tmp, pivoted into */
	if (at == MAP_FAILED || unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", "/tmp", "tmpfs", 0, "size=64k") || mkdir("/tmp/root", 0755) ||
	    mount("tmpfs", "/tmp/root", "tmpfs", 0, "size=64k") || chdir("/tmp/root"))
		_exit(10);
	/* merged /usr (Debian 12): the loader and libraries through lib, lib64 -> usr/... */
	if (mkdir("usr", 0755) || mkdir("proc", 0555) || mkdir("tmp", 01777) ||
	    mkdir("dev", 0755) || mkdir("dev/shm", 01777) || symlink("usr/lib", "lib") ||
	    symlink("usr/lib64", "lib64") || symlink("usr/bin", "bin") ||
	    mount("/usr", "usr", NULL, MS_BIND | MS_REC, NULL))
		_exit(11);
	if (syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH) || chdir("/"))
		_exit(12);
	if (mount("proc", "/proc", "proc", 0, NULL) || mount("tmpfs", "/tmp", "tmpfs", 0, NULL) ||
	    mount("tmpfs", "/dev/shm", "tmpfs", 0, NULL))
		_exit(13);
	if (setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
		_exit(14);
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	for (int k = 0; k < STEP_N; k++)
		v[k] = calloc((size_t)n, sizeof(uint64_t));
	for (int i = 0; i < n; i++) {
		for (int plain = 1; plain >= 0; plain--) {
			unsigned long flags = plain ? 0
						    : CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS |
							      CLONE_NEWIPC | CLONE_NEWUTS;
			uint64_t t0 = nemo_now_ns();
			long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
			int st;

			if (pid == 0) {
				at[0] = nemo_now_ns();
				if (plain)
					_exit(0);
				/* a process that changed its credentials is not dumpable and its
				 * /proc files are root's: dumpable for the writes, as zygote.c does */
				if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) ||
				    write_text("/proc/self/uid_map", map) ||
				    write_text("/proc/self/setgroups", "deny") ||
				    write_text("/proc/self/gid_map", map) ||
				    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
					_exit(2);
				at[1] = nemo_now_ns();
				if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
					  NULL))
					_exit(3);
				at[2] = nemo_now_ns();
				if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
					  "size=128m,mode=1777") ||
				    mount("tmpfs", "/dev/shm", "tmpfs",
					  MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=1777"))
					_exit(4);
				at[3] = nemo_now_ns();
				setsid();
				at[4] = nemo_now_ns();
				if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
				    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
					_exit(5);
				at[5] = nemo_now_ns();
				_exit(0);
			}
			/* which step failed: 6 the clone, 20 + the child's exit code */
			if (pid < 0 || waitpid((pid_t)pid, &st, 0) < 0 || st)
				_exit(pid < 0 ? 6 : WIFEXITED(st) ? 20 + WEXITSTATUS(st) : 7);
			if (plain) {
				v[STEP_PLAIN][i] = at[0] - t0;
				v[STEP_FE][i] = spawn_true();
				for (int k = 0; k < 5; k++)
					v[STEP_NS + k][i] =
						clone_until_runs(CLONE_NEWUSER | ns_one[k], at);
				continue;
			}
			v[STEP_REAP][i] = nemo_now_ns() - at[5];
			v[STEP_CLONE][i] = at[0] - t0;
			for (int k = 1; k <= 5; k++)
				v[STEP_CLONE + k][i] = at[k] - at[k - 1];
			usleep(2000);
		}
	}
	for (int k = 0; k < STEP_N; k++)
		p50[k] = (uint64_t)(pct(v[k], n).p50_us * 1e3);
	_exit(write(out, p50, sizeof(p50)) == sizeof(p50) ? 0 : 7);
}

/*
 * The steps of a fork on demand, one by one, in a bare process as a zygote is: why a fork on
 * demand cannot come below a bare fork+exec with this isolation, and what a ready fork takes
 * out of a start.
 */
static void bench_fork_steps(int n)
{
	static const char *const what[STEP_N] = {
		"baseline: a plain fork of it, until the child runs",
		"clone, new user+pid+mnt+ipc+uts ns, until it runs",
		"  uid and gid maps (uid_map, setgroups, gid_map)",
		"  its own /proc",
		"  its own /tmp and /dev/shm",
		"  setsid",
		"  the seccomp filter, 99 instructions, JIT-compiled",
		"its exit, until reaped (not part of a start)",
		"baseline: fork+exec /usr/bin/true + wait, alongside",
		"clone, new user ns alone, until it runs",
		"clone, new user+pid ns",
		"clone, new user+mnt ns",
		"clone, new user+ipc ns",
		"clone, new user+uts ns"};
	uint64_t p50[STEP_N], sum = 0;
	struct stat2 fe_s, *fe = &fe_s;
	int pfd[2], st;
	pid_t child;

	if (pipe(pfd))
		return;
	child = fork();
	if (child == 0) {
		close(pfd[0]);
		fork_steps_child(n, pfd[1]);
	}
	close(pfd[1]);
	if (child < 0 || read(pfd[0], p50, sizeof(p50)) != sizeof(p50)) {
		st = 0;
		close(pfd[0]);
		if (child > 0)
			waitpid(child, &st, 0);
		printf("\n(the steps of a fork could not be timed: step %d failed)\n",
		       WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		return;
	}
	close(pfd[0]);
	waitpid(child, &st, 0);
	fe_s = (struct stat2){(double)p50[STEP_FE] / 1e3, 0};
	printf("\nwhere a fork on demand's time goes: its steps one by one in a bare process as a "
	       "zygote is\n(an unprivileged uid in a mount namespace of a few mounts), before its "
	       "cgroup join and the round trips with nemod\n");
	for (int j = 0; j < STEP_N; j++) {
		/* the baselines first, then the namespaces one by one, then the steps */
		int k = j == 0 ? STEP_FE : j == 1 ? STEP_PLAIN : j < 7 ? STEP_NS + j - 2 : j - 6;
		struct stat2 one = {(double)p50[k] / 1e3, 0};

		printf("  %-52s p50 %9.1f us", what[k], one.p50_us);
		if (k >= STEP_NS || k == STEP_CLONE)
			printf("  (%+.1f us over the plain fork)",
			       one.p50_us - (double)p50[STEP_PLAIN] / 1e3);
		if (k >= STEP_CLONE && k <= STEP_SECCOMP) {
			sum += p50[k];
			printf("  (%.2fx fork+exec)", one.p50_us / fe->p50_us);
		}
		printf("\n");
	}
	printf("  %-52s p50 %9.1f us  (%.2fx fork+exec; a ready fork does all of it ahead)\n",
	       "sum of the steps of a start", (double)sum / 1e3, (double)sum / 1e3 / fe->p50_us);
}

/* Proportional set size of one process, in KiB (smaps_rollup), 0 if unreadable. */
static uint64_t pss_kib(pid_t pid)
{
	char path[64], line[256];
	unsigned long long kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Pss: %llu kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

/* How the instances of a figure start. */
enum start_way {
	FROM_SCRATCH,
	ZYGOTE_ON_DEMAND,
	ZYGOTE_READY, /* each its zygote's ready fork, handed over */
};

/* The pid of `z`'s ready fork: the one process of the zygote's memory cgroup but the zygote. */
static pid_t ready_fork_pid(const struct sbx_sandbox *z)
{
	char dir[512], path[600], line[32];
	pid_t pid = 0;
	FILE *f;

	if (sbx_sandbox_cgroup(z, "memory", dir, sizeof(dir)))
		return 0;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (atoi(line) != sbx_pid(z))
			pid = (pid_t)atoi(line);
	if (f)
		fclose(f);
	return pid;
}

/*
 * PSS and cgroup charge of N idle instances alive together, each after one request: from
 * scratch, or forked from one zygote, on demand or each from a ready fork (the zygote's own
 * PSS is printed apart: it is paid once).
 */
static void idle_pss(struct sbx_host *host, const struct sbx_spec *spec, const char *req,
		     enum start_way way, double *pss_mib, double *charge_mib, double *zygote_mib)
{
	enum {
		N = 8
	};
	struct sbx_sandbox *sb[N], *z = way != FROM_SCRATCH ? zygote_or_die(host, spec, 0) : NULL;
	uint64_t pss = 0, charge = 0;

	for (int i = 0; i < N; i++) {
		struct sbx_result r = {0};

		if (way == ZYGOTE_READY && sbx_zygote_prepare(z, NULL, 0))
			exit(1);
		sb[i] = z ? sbx_zygote_fork(z, 0, NULL, 0) : sbx_create(host, spec, 0);
		if (!sb[i] || (!z && sbx_init(sb[i], NULL, 0)))
			exit(1);
		sbx_invoke(sb[i], req, strlen(req), &r);
		sbx_result_release(&r);
	}
	for (int i = 0; i < N; i++) {
		uint64_t b = 0;

		pss += pss_kib(sbx_pid(sb[i]));
		sbx_memory_bytes(sb[i], &b);
		charge += b;
	}
	*zygote_mib = z ? (double)pss_kib(sbx_pid(z)) / 1024 : 0;
	for (int i = 0; i < N; i++)
		sbx_destroy(sb[i]);
	sbx_destroy(z);
	*pss_mib = (double)pss / N / 1024;
	*charge_mib = (double)charge / N / (1 << 20);
}

/*
 * What keeping a ready fork costs: its PSS, and what its zygote's memory cgroup is charged
 * more with it parked (the kernel's part of the fork, its page tables, the pages it wrote).
 */
static void ready_fork_memory(struct sbx_host *host, const struct sbx_spec *spec,
			      double *pss_kib_out, double *charge_kib)
{
	struct sbx_sandbox *z = zygote_or_die(host, spec, 0);
	uint64_t before = 0, after = 0;

	usleep(START_GAP_US);
	sbx_memory_bytes(z, &before);
	if (sbx_zygote_prepare(z, NULL, 0))
		exit(1);
	usleep(START_GAP_US);
	sbx_memory_bytes(z, &after);
	*pss_kib_out = (double)pss_kib(ready_fork_pid(z));
	*charge_kib = ((double)after - (double)before) / 1024;
	sbx_destroy(z);
}

/* Instances one core makes per second: everything (this process, the zygote, the forks)
 * on cpu 0, fork + destroy back to back for about a second. */
static double instances_per_second(struct sbx_host *host, const struct sbx_spec *spec, bool zygote)
{
	struct sbx_sandbox *z = zygote ? zygote_or_die(host, spec, 0) : NULL;
	uint64_t t0 = nemo_now_ns(), t = t0;
	cpu_set_t one, all;
	int n = 0;

	sched_getaffinity(0, sizeof(all), &all);
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	sched_setaffinity(0, sizeof(one), &one);
	while (t - t0 < 1000000000ull) {
		struct sbx_sandbox *sb =
			z ? sbx_zygote_fork(z, 0, NULL, 0) : sbx_create(host, spec, 0);

		if (!sb || (!z && sbx_init(sb, NULL, 0)))
			exit(1);
		sbx_destroy(sb);
		n++;
		t = nemo_now_ns();
	}
	sched_setaffinity(0, sizeof(all), &all);
	sbx_destroy(z);
	return n / ((double)(t - t0) / 1e9);
}

/*
 * Issue 13's figure: the private root's cold start against the old one (the host's / read
 * only, sbx_host_bench_host_root(), a bench-only switch), c and python, in one run.
 */
static void bench_private_root(struct sbx_host *host, struct sbx_host *host_old, int runs,
			       const struct sbx_spec *c, const struct sbx_spec *py)
{
	struct cold c_new, c_old, py_new, py_old;
	struct stat2 fe;

	printf("\nthe private root against the host's / read-only (before issue 13), cold starts "
	       "alternating run by run\n");
	fe = bench_spawn(0, runs);
	bench_cold_pair(host_old, host, c, runs, "hi", &c_old, &c_new);
	bench_cold_pair(host_old, host, py, runs, "{\"text\":\"a b a\"}", &py_old, &py_new);
	row("baseline: fork+exec /bin/true + wait", fe, NULL);
	row("c cold, the host's / read-only", c_old.total, &fe);
	row("  of which create", c_old.create, &fe);
	row("c cold, private root", c_new.total, &fe);
	row_vs("  against the host's /", c_new.total, &c_old.total, "host's /");
	row("  of which create", c_new.create, &fe);
	row_vs("  create against the host's /", c_new.create, &c_old.create, "host's /");
	row_vs("python cold, the host's / read-only", py_old.total, &fe, "fork+exec");
	row_vs("python cold, private root", py_new.total, &py_old.total, "host's /");
	printf("  private root / host's /, cold p50: c %.2fx, python %.2fx (goal <= 1.5x)\n",
	       c_new.total.p50_us / c_old.total.p50_us, py_new.total.p50_us / py_old.total.p50_us);
	{
		double old_ps = instances_per_second(host_old, c, false);
		double new_ps = instances_per_second(host, c, false);

		printf("  c instances one core creates and destroys per second: host's / %.0f/s, "
		       "private root %.0f/s (%.2fx)\n",
		       old_ps, new_ps, new_ps / old_ps);
	}
}

static struct stat2 bench_move(struct sbx_host *host, int n)
{
	struct sbx_spec s = spec_of(SBX_RUNTIME_C, "echo.so", "handle");
	struct sbx_sandbox *sb = sbx_create(host, &s, 0);
	uint64_t *v = calloc((size_t)n, 8);
	struct stat2 st;

	if (!sb || sbx_init(sb, NULL, 0))
		exit(1);
	for (int i = 0; i < n; i++) {
		uint64_t t0 = nemo_now_ns();

		if (sbx_move(sb, (i + 1) % sbx_host_n_cores(host)))
			exit(1);
		v[i] = nemo_now_ns() - t0;
	}
	sbx_destroy(sb);
	st = pct(v, n);
	free(v);
	return st;
}

/* One start through a zygote, against the baselines measured alongside it. */
static void zyg_rows(const char *what, const struct zyg_runs *z, bool ready, bool c)
{
	row_vs(what, z->total, &z->fe, "fork+exec alongside");
	row_vs("  cold start alongside", z->cold, &z->total, "via zygote");
	row(ready ? "  of which hand-over" : "  of which fork (until ready in its cgroups)",
	    z->start, NULL);
	row(c || !ready ? "  of which first call"
			: "  of which first call (copy-on-write, its lazy imports)",
	    z->run, NULL);
	row("  a second call of the same instance", z->again, NULL);
	if (ready)
		row("  making the ready fork, ahead (not in the start)", z->made, NULL);
}

/*
 * Issue 15's figures: starts through a zygote, forked on demand and from a ready fork, each
 * run beside a bare fork+exec and a cold start of the same function measured just before it;
 * the steps of a fork on demand; memory; instances per second.
 */
static void bench_zygotes(struct sbx_host *host, struct sbx_host *host_att, int runs,
			  const struct sbx_spec *echo, const struct sbx_spec *py)
{
	struct sbx_spec heavy = spec_of(SBX_RUNTIME_PYTHON, "heavyimport.py", "handler");
	const char *py_req = "{\"text\":\"a b a\"}";
	struct zyg_runs z_c = bench_zygote(host, echo, runs, "hi", false);
	struct zyg_runs r_c = bench_zygote(host, echo, runs, "hi", true);
	struct zyg_runs z_py = bench_zygote(host, py, runs, py_req, false);
	struct zyg_runs r_py = bench_zygote(host, py, runs, py_req, true);
	struct zyg_runs za_c = bench_zygote(host_att, echo, runs, "hi", false);
	struct zyg_runs z_heavy = bench_zygote(host, &heavy, runs, "1 2.5 x", false);
	struct zyg_runs r_heavy = bench_zygote(host, &heavy, runs, "1 2.5 x", true);
	double la[3] = {0};

	printf("\nzygotes: a new instance forked from its function's zygote, to first response\n"
	       "(before each start, one fork+exec of /bin/true and one cold start of the same "
	       "function: the baselines alongside)\n");
	printf("  fork on demand: the zygote clones it, it sets itself up (user, pid, mnt, ipc, uts "
	       "ns, uid map, /proc, /tmp, /dev/shm, seccomp) and joins its cgroups\n");
	zyg_rows("c via zygote, fork on demand", &z_c, false, true);
	printf("  from a ready fork: made ahead on spare cycles (the same set-up, parked in the "
	       "zygote's cgroups);\n  the start is its hand-over (JOIN into its own cgroups, READY, "
	       "the kernel's word on its cgroups) and the first call\n");
	zyg_rows("c via zygote, from a ready fork", &r_c, true, true);
	zyg_rows("python via zygote (wordstats.py), fork on demand", &z_py, false, false);
	zyg_rows("python via zygote, from a ready fork", &r_py, true, false);
	printf("  the host writing each fork's pid into its cgroups (zygote_host_attach, v2's "
	       "way), fork on demand:\n");
	row_vs("c via zygote, host attach", za_c.total, &za_c.fe, "fork+exec alongside");
	row_vs("  the fork joining its cgroups itself, against it", z_c.total, &za_c.total,
	       "host attach");
	zyg_rows("python, import-heavy (heavyimport.py), fork on demand", &z_heavy, false, false);
	zyg_rows("python, import-heavy, from a ready fork", &r_heavy, true, false);
	printf("  faster than the cold start alongside: fork on demand c %.1fx, python %.1fx, "
	       "import-heavy %.1fx; from a ready fork c %.1fx, python %.1fx, import-heavy %.1fx\n",
	       z_c.cold.p50_us / z_c.total.p50_us, z_py.cold.p50_us / z_py.total.p50_us,
	       z_heavy.cold.p50_us / z_heavy.total.p50_us, r_c.cold.p50_us / r_c.total.p50_us,
	       r_py.cold.p50_us / r_py.total.p50_us, r_heavy.cold.p50_us / r_heavy.total.p50_us);

	bench_fork_steps(runs);

	printf("\nidle instances, 8 alive at once after one request: PSS and cgroup charge each\n");
	{
		struct {
			const char *name;
			const struct sbx_spec *spec;
			const char *req;
		} rts[] = {{"c (echo.so)", echo, "hi"},
			   {"python (wordstats.py)", py, "{\"text\":\"a\"}"},
			   {"python (heavyimport.py)", &heavy, "1"}};

		for (size_t i = 0; i < sizeof(rts) / sizeof(rts[0]); i++) {
			double sp, sc, zp, zc, rp, rc, zz, dummy, ready_pss, ready_charge;

			idle_pss(host, rts[i].spec, rts[i].req, FROM_SCRATCH, &sp, &sc, &dummy);
			idle_pss(host, rts[i].spec, rts[i].req, ZYGOTE_ON_DEMAND, &zp, &zc, &zz);
			idle_pss(host, rts[i].spec, rts[i].req, ZYGOTE_READY, &rp, &rc, &dummy);
			ready_fork_memory(host, rts[i].spec, &ready_pss, &ready_charge);
			printf("  %-24s scratch PSS %6.2f MiB charge %6.2f | zygote fork PSS %6.2f "
			       "MiB charge %6.2f (%.2fx PSS) | from a ready fork PSS %6.2f MiB "
			       "charge %6.2f\n  %-24s the zygote itself PSS %6.2f MiB; a parked "
			       "ready fork PSS %6.0f KiB, charged to its zygote %+.0f KiB\n",
			       rts[i].name, sp, sc, zp, zc, zp / sp, rp, rc, "", zz, ready_pss,
			       ready_charge);
		}
	}

	printf("\ninstances one core creates per second (create + destroy, all on cpu 0)\n");
	{
		double c_scratch = instances_per_second(host, echo, false);
		double c_zyg = instances_per_second(host, echo, true);
		double p_scratch = instances_per_second(host, py, false);
		double p_zyg = instances_per_second(host, py, true);

		printf("  c:      from scratch %7.0f/s   via zygote %7.0f/s  (%.1fx)\n", c_scratch,
		       c_zyg, c_zyg / c_scratch);
		printf("  python: from scratch %7.0f/s   via zygote %7.0f/s  (%.1fx)\n", p_scratch,
		       p_zyg, p_zyg / p_scratch);
	}
	if (getloadavg(la, 3) == 3)
		printf("\nload average during the run: %.2f %.2f %.2f (machine shared: ratios, not "
		       "absolute times)\n",
		       la[0], la[1], la[2]);
	printf("zygote figures, p50 (goals: python <= 3 ms and >= 8x faster than cold; c <= 0.5 "
	       "ms and below fork+exec):\n");
	printf("  fork on demand:    python %.2f ms (%.1fx faster than cold), c %.3f ms (%.2fx "
	       "fork+exec)\n",
	       z_py.total.p50_us / 1e3, z_py.cold.p50_us / z_py.total.p50_us,
	       z_c.total.p50_us / 1e3, z_c.total.p50_us / z_c.fe.p50_us);
	printf("  from a ready fork: python %.2f ms (%.1fx faster than cold), c %.3f ms (%.2fx "
	       "fork+exec)\n",
	       r_py.total.p50_us / 1e3, r_py.cold.p50_us / r_py.total.p50_us,
	       r_c.total.p50_us / 1e3, r_c.total.p50_us / r_c.fe.p50_us);
}

/* The hosts of the run, destroyed at exit, also when a figure fails (exit(1)). */
static struct sbx_host *bench_hosts[4];

static void destroy_hosts(void)
{
	for (int i = 0; i < 4; i++) {
		sbx_host_destroy(bench_hosts[i]);
		bench_hosts[i] = NULL;
	}
}

int main(void)
{
	const int ns_flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
	struct sbx_host_config cfg = {0}, cfg_net = {0}, cfg_att = {0}, cfg_old = {0};
	char exe[512], root[64], root_net[64], root_att[64], root_old[64];
	struct sbx_host *host, *host_net, *host_att, *host_old;
	/* BENCH_SANDBOX_ONLY=private-root or zygote: that comparison alone */
	const char *only = getenv("BENCH_SANDBOX_ONLY");
	struct stat2 fork_exec, fork_ns, fork_ns_net, sock, warm, pre_c, pre_py, mv;
	struct cold cold_c, cold_c_net, cold_py;
	struct sbx_spec echo, py, up, sort;
	/* BENCH_SANDBOX_RUNS scales the run counts down, for an emulated guest (tests/vm) */
	const char *scale = getenv("BENCH_SANDBOX_RUNS");
	const int runs = scale && atoi(scale) >= 5 ? atoi(scale) : RUNS;
	const int warm_runs = runs * (WARM_RUNS / RUNS);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return 1;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	*slash = '\0'; /* build/bin */
	slash = strrchr(exe, '/');
	*slash = '\0'; /* build */
	snprintf(fn_dir, sizeof(fn_dir), "%s/functions", exe);
	nemo_log_set_level(NEMO_LOG_WARN);
	snprintf(root, sizeof(root), "nemo-bench-%d", getpid());
	snprintf(root_net, sizeof(root_net), "nemo-bench-net-%d", getpid());
	cfg.cgroup_root = root;
	cfg_net.cgroup_root = root_net;
	cfg_net.netns_per_sandbox = true;
	/* the same, but the host writes each zygote fork's pid into its cgroups */
	snprintf(root_att, sizeof(root_att), "nemo-bench-att-%d", getpid());
	cfg_att.cgroup_root = root_att;
	cfg_att.zygote_host_attach = true;
	/* the old cold start, with no private root: a host of its own, for the bench only */
	snprintf(root_old, sizeof(root_old), "nemo-bench-old-%d", getpid());
	cfg_old.cgroup_root = root_old;
	host = sbx_host_new(&cfg);
	host_net = sbx_host_new(&cfg_net);
	host_att = sbx_host_new(&cfg_att);
	host_old = sbx_host_new(&cfg_old);
	bench_hosts[0] = host_old;
	bench_hosts[1] = host_att;
	bench_hosts[2] = host_net;
	bench_hosts[3] = host;
	/* a figure that fails exits: its sandboxes and cgroups go with the hosts all the same */
	atexit(destroy_hosts);
	if (!host || !host_net || !host_att || !host_old) {
		fprintf(stderr, "bench_sandbox: host setup failed: %s (run as root)\n",
			strerror(errno));
		return 1;
	}
	echo = spec_of(SBX_RUNTIME_C, "echo.so", "handle");
	py = spec_of(SBX_RUNTIME_PYTHON, "wordstats.py", "handler");
	up = spec_of(SBX_RUNTIME_EXEC, "exec-upper", "-");
	sort = spec_of(SBX_RUNTIME_EXEC, "sort.sh", "-");
	sort.exec_mode = SBX_EXEC_PER_REQUEST;

	nemo_log_set_level(NEMO_LOG_ERR);
	sbx_host_bench_host_root(host_old, true);
	nemo_log_set_level(NEMO_LOG_WARN);
	printf("bench_sandbox: cgroup %s, %d cores, python %s, %d runs per start figure\n",
	       sbx_host_cgroup_backend(host), sbx_host_n_cores(host), sbx_host_python(host), runs);
	if (only && !strcmp(only, "private-root")) {
		bench_private_root(host, host_old, runs, &echo, &py);
		goto out;
	}
	if (only && !strcmp(only, "zygote")) {
		bench_zygotes(host, host_att, runs, &echo, &py);
		goto out;
	}
	printf("\ncold start of a c function (echo), create to first response\n");
	fork_exec = bench_spawn(0, runs);
	fork_ns = bench_spawn(ns_flags, runs);
	fork_ns_net = bench_spawn(ns_flags | CLONE_NEWNET, runs);
	cold_c = bench_cold(host, &echo, runs, "hi");
	cold_c_net = bench_cold(host_net, &echo, runs, "hi");
	row("baseline: fork+exec /bin/true + wait", fork_exec, NULL);
	row("baseline: clone pid/mnt/ipc/uts ns + exec + wait", fork_ns, &fork_exec);
	row("baseline: clone pid/mnt/ipc/uts/net ns + exec + wait", fork_ns_net, &fork_exec);
	row("nemo cold start, shared empty netns (default)", cold_c.total, &fork_exec);
	row("  of which create (ns, cgroup, mounts, exec)", cold_c.create, &fork_exec);
	/* the runtime's own exec, linking and confinement finish during init */
	row("  of which init (runtime start, confine, dlopen)", cold_c.init, NULL);
	row("  of which first invoke", cold_c.run, NULL);
	row("nemo cold start, netns per sandbox", cold_c_net.total, &fork_exec);

	printf("\nwarm invoke round trip, 1 KiB in and out (c echo, %d runs)\n", warm_runs);
	sock = bench_socket_echo(1024, warm_runs);
	warm = bench_warm(host, 1024, warm_runs);
	row("baseline: plain process echo over a socketpair", sock, NULL);
	row_vs("nemo warm invoke (framed, timeout and pidfd watched)", warm, &sock,
	       "plain socket echo");

	printf("\npython (wordstats.py: json, re, hashlib, zlib)\n");
	cold_py = bench_cold(host, &py, runs, "{\"text\":\"a b a\"}");
	pre_py = bench_prewarmed(host, &py, runs, "{\"text\":\"a b a\"}");
	pre_c = bench_prewarmed(host, &echo, runs, "hi");
	row("python cold start (interpreter + module + response)", cold_py.total, &fork_exec);
	row("  of which init (interpreter + import)", cold_py.init, NULL);
	row_vs("python pre-warmed (acquire + first response)", pre_py, &cold_py.total,
	       "python cold");
	row_vs("c pre-warmed (acquire + first response)", pre_c, &cold_c.total, "c cold");

	/* the charge counts pages the sandbox made or first touched; shared library pages
	 * already cached by the host are not counted again */
	printf("\nidle warm sandboxes in 1 GiB (memory cgroup charge after one request)\n");
	{
		struct {
			const char *name;
			struct sbx_spec *spec;
			const char *req;
		} rts[] = {{"c (echo.so)", &echo, "hi"},
			   {"python (wordstats.py)", &py, "{\"text\":\"a\"}"},
			   {"exec persistent (exec-upper)", &up, "hi"},
			   {"exec per request (sort.sh)", &sort, "b\na\n"}};

		for (size_t i = 0; i < sizeof(rts) / sizeof(rts[0]); i++) {
			double mib = idle_memory_mib(host, rts[i].spec, rts[i].req);

			printf("  %-34s %7.2f MiB each  -> %6.0f per GiB\n", rts[i].name, mib,
			       1024.0 / mib);
		}
	}

	bench_zygotes(host, host_att, runs, &echo, &py);

	bench_private_root(host, host_old, runs, &echo, &py);

	printf("\nmove a warm sandbox to another core's cgroup (attach of a running task)\n");
	mv = bench_move(host, 50);
	row("sbx_move (cpu, cpuacct, cpuset)", mv, &fork_exec);

	printf("\nfigures: cold c p50 %.2f ms (target <= 5 ms), warm 1 KiB p50 %.1f us (target <= "
	       "50 us)\n",
	       cold_c.total.p50_us / 1e3, warm.p50_us);
out:
	printf("load average at the end: ");
	{
		double la[3];

		if (getloadavg(la, 3) == 3)
			printf("%.2f %.2f %.2f\n", la[0], la[1], la[2]);
	}
	destroy_hosts();
	return 0;
}
