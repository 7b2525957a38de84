/* watchdog.c - outlives its nemod to kill and thaw the v1-frozen sandboxes it leaves behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "watchdog.h"

/*
 * A task frozen by the v1 freezer cannot die: the SIGKILL that PR_SET_PDEATHSIG queues for a
 * sandbox when nemod dies stays pending until something thaws it, and nothing of a dead
 * nemod's will. The watchdog is that something: one per host, started by sbx_host_new() on
 * v1 as `nemo-sbx-runtime --watchdog <nemod's pid> <its freezer root>`, in a session of its
 * own, deaf to the signals a terminal or a process group sends. It waits on nemod's pidfd and
 * does nothing else; when nemod is gone it kills every task of every sbx-* cgroup under the
 * root and thaws it, round after round until none is left (the kernel then delivers the
 * kills), and exits. A clean exit of nemod kills it first (sbx_host_destroy()). The cgroup
 * directories stay for the next nemod on the root to remove, as after any crash.
 */

#define SWEEP_ROUNDS 200 /* 10 ms apart: 2 s at most */
#define SWEEP_GAP_US 10000

static int write_str(const char *dir, const char *name, const char *file, const char *val)
{
	char path[1024];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, name, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		rc = -errno;
	close(fd);
	return rc;
}

/* SIGKILL every task of dir/name, then thaw it. Returns how many tasks it held. */
static int kill_and_thaw(const char *dir, const char *name)
{
	char path[1024], buf[8192];
	int fd, n = 0;
	ssize_t len;

	snprintf(path, sizeof(path), "%s/%s/cgroup.procs", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[len > 0 ? len : 0] = '\0';
	for (char *save, *tok = strtok_r(buf, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save))
		if (kill((pid_t)atoi(tok), SIGKILL) == 0)
			n++;
	/* the kills queued above, and the parent-death one, are delivered at the thaw */
	write_str(dir, name, "freezer.state", "THAWED");
	return n;
}

/* Rounds over every sbx-* cgroup of `dir` until none holds a task. Returns the sandboxes. */
static int sweep(const char *dir)
{
	int sandboxes = 0;

	for (int round = 0; round < SWEEP_ROUNDS; round++) {
		DIR *d = opendir(dir);
		struct dirent *de;
		int tasks = 0, seen = 0;

		if (!d)
			break;
		while ((de = readdir(d))) {
			if (strncmp(de->d_name, "sbx-", 4))
				continue;
			seen++;
			tasks += kill_and_thaw(dir, de->d_name);
		}
		closedir(d);
		if (!round)
			sandboxes = seen;
		if (!tasks)
			break;
		usleep(SWEEP_GAP_US);
	}
	return sandboxes;
}

int nemo_watchdog_main(int argc, char **argv)
{
	static const int deaf[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGTERM, SIGPIPE,
				   SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
	struct pollfd p = {.events = POLLIN};
	char *end;
	pid_t owner;
	int n;

	if (argc != 4)
		return 2;
	owner = (pid_t)strtol(argv[2], &end, 10);
	if (*end || owner <= 1)
		return 2;
	/* nothing of nemod's stays open here (a listening socket, a ring lease) */
	syscall(SYS_close_range, 3, ~0u, 0);
	for (size_t i = 0; i < sizeof(deaf) / sizeof(deaf[0]); i++)
		signal(deaf[i], SIG_IGN);
	/* the pidfd names nemod only while nemod is still our parent */
	p.fd = pidfd_open(owner, 0);
	if (p.fd >= 0 && getppid() == owner) {
		char ready = WATCHDOG_READY;
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (write(1, &ready, 1) != 1 || null < 0 || dup2(null, 1) < 0)
			return 3;
		close(null);
		while (poll(&p, 1, -1) < 0 && errno == EINTR)
			;
	}
	n = sweep(argv[3]);
	if (n)
		fprintf(stderr,
			"nemo-sbx-watchdog: nemod (pid %d) is gone: killed and thawed the "
			"%d sandboxes it left in %s\n",
			(int)owner, n, argv[3]);
	return 0;
}
