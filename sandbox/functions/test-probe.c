/* test-probe.c - a test function that reports what a sandbox looks like from inside. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nemo/function.h"

#define APPEND(resp, ...)                                                    \
	((resp)->len += (size_t)snprintf((char *)(resp)->data + (resp)->len, \
					 (resp)->cap - (resp)->len, __VA_ARGS__))

/* pid, ids, hostname, the open fds and the security lines of /proc/self/status. */
int identity(const struct nemo_request *req, struct nemo_response *resp)
{
	char host[64] = "", line[256];
	FILE *f;

	(void)req;
	gethostname(host, sizeof(host));
	resp->len = 0;
	APPEND(resp, "pid=%d uid=%d gid=%d hostname=%s\nfds=", getpid(), getuid(), getgid(), host);
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			APPEND(resp, "%s%d", fd ? " " : "", fd);
	APPEND(resp, "\n");
	f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) ||
		    !strncmp(line, "Seccomp:", 8) || !strncmp(line, "Groups", 6))
			APPEND(resp, "%s", line);
	if (f)
		fclose(f);
	return 0;
}

/* The namespace links, one per line: "pid:[4026531836]". */
int namespaces(const struct nemo_request *req, struct nemo_response *resp)
{
	const char *ns[] = {"pid", "mnt", "ipc", "uts", "net"};
	char path[64], link[64];

	(void)req;
	resp->len = 0;
	for (size_t i = 0; i < 5; i++) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/ns/%s", ns[i]);
		n = readlink(path, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		APPEND(resp, "%s\n", link);
	}
	return 0;
}

static void *thread_fn(void *arg)
{
	return arg;
}

static const char *err_of(long rc)
{
	return rc < 0 ? strerror(errno) : "allowed";
}

/* What the seccomp filter lets through. */
int syscalls(const struct nemo_request *req, struct nemo_response *resp)
{
	struct clone_args ca = {.exit_signal = 17};
	pthread_t t;
	void *ret = NULL;
	int rc;

	(void)req;
	resp->len = 0;
	APPEND(resp, "mount=%s\n", err_of(mount("none", "/tmp", "tmpfs", 0, NULL)));
	APPEND(resp, "ptrace=%s\n", err_of(syscall(SYS_ptrace, 16 /* ATTACH */, 1, 0, 0)));
	APPEND(resp, "bpf=%s\n", err_of(syscall(SYS_bpf, 0, NULL, 0)));
	APPEND(resp, "perf_event_open=%s\n",
	       err_of(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0)));
	APPEND(resp, "init_module=%s\n", err_of(syscall(SYS_init_module, NULL, 0, "")));
	APPEND(resp, "kexec_load=%s\n", err_of(syscall(SYS_kexec_load, 0, 0, NULL, 0)));
	APPEND(resp, "unshare=%s\n", err_of(unshare(CLONE_NEWUSER)));
	APPEND(resp, "clone3=%s\n", err_of(syscall(SYS_clone3, &ca, sizeof(ca))));
	rc = pthread_create(&t, NULL, thread_fn, (void *)42);
	if (rc == 0)
		pthread_join(t, &ret);
	APPEND(resp, "thread=%s\n", rc ? strerror(rc) : ret == (void *)42 ? "ok" : "bad");
	return 0;
}

/* rlimits as "name=soft". */
int limits(const struct nemo_request *req, struct nemo_response *resp)
{
	struct {
		const char *name;
		int res;
	} l[] = {{"core", RLIMIT_CORE},
		 {"nofile", RLIMIT_NOFILE},
		 {"fsize", RLIMIT_FSIZE},
		 {"memlock", RLIMIT_MEMLOCK}};
	struct rlimit rl;

	(void)req;
	resp->len = 0;
	for (size_t i = 0; i < 4; i++) {
		getrlimit(l[i].res, &rl);
		APPEND(resp, "%s=%llu\n", l[i].name, (unsigned long long)rl.rlim_cur);
	}
	return 0;
}

/* Write the request into /tmp/<request>, read it back, and say who else is in /tmp. */
int tmp_write(const struct nemo_request *req, struct nemo_response *resp)
{
	char path[128], back[64] = "";
	int fd;

	snprintf(path, sizeof(path), "/tmp/%.*s", (int)(req->len < 64 ? req->len : 64),
		 (const char *)req->data);
	fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	resp->len = 0;
	if (fd < 0) {
		APPEND(resp, "open %s: %s", path, strerror(errno));
		return 1;
	}
	if (write(fd, "nemo", 4) != 4 || pread(fd, back, 4, 0) != 4) {
		APPEND(resp, "io: %s", strerror(errno));
		close(fd);
		return 1;
	}
	close(fd);
	APPEND(resp, "wrote and read back '%s'", back);
	return 0;
}

/* Sleep the number of milliseconds in the request, then say how many calls this instance
 * served: a warm instance keeps its memory between requests. */
int nap(const struct nemo_request *req, struct nemo_response *resp)
{
	static int calls;
	char num[16] = "";

	memcpy(num, req->data, req->len < 15 ? req->len : 15);
	usleep((useconds_t)atoi(num) * 1000);
	resp->len = 0;
	APPEND(resp, "calls=%d", ++calls);
	return 0;
}

/* A function error: nonzero return with a message. */
int fail(const struct nemo_request *req, struct nemo_response *resp)
{
	(void)req;
	resp->len = 0;
	APPEND(resp, "bad input: %s", "no");
	return 22;
}

/* Claim a response longer than the limit. */
int too_big(const struct nemo_request *req, struct nemo_response *resp)
{
	static char big[8 << 20];

	(void)req;
	resp->data = big;
	resp->len = sizeof(big);
	return 0;
}
