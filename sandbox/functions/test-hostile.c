/* test-hostile.c - hostile test functions: crash, spin, hog memory, fork-bomb, reach out, escape. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "nemo/function.h"

/* Each handler is named in a spec; tests/test_sandbox_hostile.c asserts what the caller sees. */

#define REPLY(resp, ...) ((resp)->len = (size_t)snprintf((resp)->data, (resp)->cap, __VA_ARGS__))

int crash(const struct nemo_request *req, struct nemo_response *resp)
{
	volatile int *nowhere = NULL;

	(void)req, (void)resp;
	/* a read through a pointer the compiler cannot prove NULL: the crash is the point */
	// cppcheck-suppress nullPointer
	return *(nowhere + (uintptr_t)req->len * 0);
}

int spin(const struct nemo_request *req, struct nemo_response *resp)
{
	(void)req, (void)resp;
	for (volatile unsigned long i = 0;; i++)
		;
	return 0;
}

int exit_early(const struct nemo_request *req, struct nemo_response *resp)
{
	(void)req, (void)resp;
	exit(3);
}

/* Touch memory 1 MiB at a time until something stops us. */
int memhog(const struct nemo_request *req, struct nemo_response *resp)
{
	size_t mib = 0;

	(void)req;
	for (; mib < 65536; mib++) {
		char *p = malloc(1 << 20);

		if (!p)
			break;
		memset(p, 0xa5, 1 << 20);
	}
	REPLY(resp, "allocated %zu MiB and was not stopped", mib);
	return 1;
}

/* Every process forks until the kernel refuses; the first reports how far it got. */
int forkbomb(const struct nemo_request *req, struct nemo_response *resp)
{
	int forked = 0, err = 0;

	(void)req;
	for (int i = 0; i < 100000; i++) {
		pid_t p = fork();

		if (p == 0) {
			for (;;) {
				if (fork() < 0)
					pause();
			}
		}
		if (p < 0) {
			err = errno;
			break;
		}
		forked++;
	}
	REPLY(resp, "forked %d, then fork failed: %s", forked, err ? strerror(err) : "never");
	return 0;
}

/* Try the outside world: an IPv4 connect, a unix socket, and which interfaces are up. */
int net(const struct nemo_request *req, struct nemo_response *resp)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(53)};
	char inet[96], unix_r[96];
	int fd;

	(void)req;
	inet_pton(AF_INET, "1.1.1.1", &sin.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		snprintf(inet, sizeof(inet), "socket: %s", strerror(errno));
	else if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		snprintf(inet, sizeof(inet), "connect: %s", strerror(errno));
	else
		snprintf(inet, sizeof(inet), "connected");
	if (fd >= 0)
		close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(unix_r, sizeof(unix_r), "%s", fd < 0 ? strerror(errno) : "allowed");
	if (fd >= 0)
		close(fd);
	REPLY(resp, "inet %s; unix socket %s", inet, unix_r);
	return 0;
}

/* Write outside /tmp: to /, and over a system file. */
int write_root(const struct nemo_request *req, struct nemo_response *resp)
{
	int fd = open("/nemo-sandbox-escape", O_CREAT | O_WRONLY, 0644);
	int e1 = errno, e2;

	(void)req;
	if (fd >= 0) {
		close(fd);
		REPLY(resp, "created /nemo-sandbox-escape");
		return 0;
	}
	fd = open("/etc/hostname", O_WRONLY | O_APPEND);
	e2 = errno;
	if (fd >= 0) {
		close(fd);
		REPLY(resp, "opened /etc/hostname for writing");
		return 0;
	}
	REPLY(resp, "create /: %s; write /etc: %s", strerror(e1), strerror(e2));
	return 0;
}

/* abort(): the caller must read signal 6, not a segfault. */
int aborts(const struct nemo_request *req, struct nemo_response *resp)
{
	(void)req, (void)resp;
	abort();
}

/* A response length past 32 bits: 4 GiB + 5 over a 5-byte buffer. */
int huge_length(const struct nemo_request *req, struct nemo_response *resp)
{
	static char five[5] = "hello";

	(void)req;
	resp->data = five;
	resp->len = (4ull << 30) + 5;
	return 0;
}

/* Leave a spinning process behind and return at once. */
int background_spin(const struct nemo_request *req, struct nemo_response *resp)
{
	pid_t pid = fork();

	(void)req;
	if (pid == 0)
		for (volatile unsigned long i = 0;; i++)
			;
	REPLY(resp, "left pid %d spinning", (int)pid);
	return 0;
}

/* Signal the own process group, then every process it may signal: kill(0, 9), kill(-1, 9). */
int kill_group(const struct nemo_request *req, struct nemo_response *resp)
{
	(void)req, (void)resp;
	kill(-1, SIGKILL);
	kill(0, SIGKILL);
	return 0;
}

/* State a zygote's fork inherits: a call counter and a buffer that the call then wrecks. */
static int calls;
static char state[32] = "pristine";
static char *heap_state;

int nemo_init(void)
{
	heap_state = strdup("heap pristine");
	return heap_state ? 0 : 1;
}

int scribble(const struct nemo_request *req, struct nemo_response *resp)
{
	(void)req;
	resp->len = (size_t)snprintf(resp->data, resp->cap, "calls=%d state=%s heap=%s", ++calls,
				     state, heap_state);
	memset(state, 'X', sizeof(state) - 1);
	memset(heap_state, 'Y', strlen(heap_state));
	return 0;
}
