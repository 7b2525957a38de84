/* zygote.c - a fork of a zygote becomes a sandbox of its own before it takes a request. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
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
#include <unistd.h>

#include "nemo/function.h"
#include "zygote.h"

/*
 * A zygote is a sandbox (its own cgroup, uid, private root, PID namespace, seccomp filter)
 * that loaded its function and then only makes instances. It is unprivileged, so an instance
 * gets its namespaces from a user namespace of its own that maps the function's uid to
 * itself: the uid the function runs as is the same as in a sandbox started from scratch, and
 * the capabilities the new namespace grants are used for the few mounts below and dropped
 * before anything else runs. The host's seccomp filter is then stacked on the zygote's
 * (which allows only these namespaces and mount more than the host's), so an instance is
 * held to exactly the filter of a scratch start.
 */

#define INSTANCE_NS (CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS)

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t len = (ssize_t)strlen(text), n;

	if (fd < 0)
		return errno;
	n = write(fd, text, (size_t)len);
	close(fd);
	return n == len ? 0 : (n < 0 ? errno : EIO);
}

/*
 * Into the instance's own cgroups, before anything else runs in it: the platform's JOIN frame
 * carries the files to write "0" into (opened by the platform: the kernel checks the opener).
 * A single-threaded process that moves itself takes no threadgroup lock, so this does not wait
 * for the RCU grace period that the platform's write of a pid into cgroup.procs waits for.
 */
static int join_cgroups(int sock_fd)
{
	char cbuf[CMSG_SPACE(ZYG_JOIN_MAX * sizeof(int))] __attribute__((aligned(8)));
	struct nemo_frame_hdr hdr;
	struct iovec iov = {&hdr, sizeof(hdr)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	int fds[ZYG_JOIN_MAX], n_fds = 0, rc = 0;
	ssize_t n;

	do
		n = recvmsg(sock_fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n < 0 ? errno : EPIPE;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && !n_fds) {
			n_fds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(fds, CMSG_DATA(c), (size_t)n_fds * sizeof(int));
		}
	/* the rest of the header, should the stream have cut it */
	while (!rc && (size_t)n < sizeof(hdr)) {
		ssize_t more = read(sock_fd, (char *)&hdr + n, sizeof(hdr) - (size_t)n);

		if (more <= 0)
			rc = more < 0 ? errno : EPIPE;
		n += more > 0 ? more : 0;
	}
	if (!rc && (msg.msg_flags & MSG_CTRUNC || hdr.magic != NEMO_FRAME_MAGIC || hdr.flags ||
		    hdr.type != NEMO_FRAME_REQUEST || hdr.status != ZYG_JOIN || hdr.len))
		rc = EPROTO;
	for (int i = 0; i < n_fds; i++) {
		if (!rc && write(fds[i], "0", 1) != 1)
			rc = errno ? errno : EIO;
		close(fds[i]);
	}
	return rc;
}

/* The instance's side: namespaces in place, it is PID 1 of its own, still privileged there. */
static int become_instance(uid_t uid, gid_t gid, int sock_fd, int filter_fd, unsigned tmp_mb)
{
	struct __user_cap_header_struct caphdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct capdata[2] = {{0}};
	char map[64], opts[64];
	struct sock_fprog prog;
	struct stat st;
	void *filter;
	int rc, dumpable;

	/* the function's uid and gid, and nothing else, exist in the new user namespace. A
	 * process that changed its credentials is not dumpable and its /proc files are root's:
	 * dumpable for the time of the writes, as it was after */
	dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	if (dumpable < 0 || prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		return errno;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	rc = write_file("/proc/self/uid_map", map);
	rc = rc ? rc : write_file("/proc/self/setgroups", "deny");
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	rc = rc ? rc : write_file("/proc/self/gid_map", map);
	if (rc)
		return rc;
	if (prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0))
		return errno;
	/* what a scratch sandbox gets: /proc of its own PID namespace, its own /tmp (bounded by
	 * memory_mb, charged to its cgroup) and /dev/shm; the zygote's lie under them */
	snprintf(opts, sizeof(opts), "size=%um,mode=1777", tmp_mb);
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) ||
	    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts) ||
	    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "size=1m,mode=1777") ||
	    chdir("/tmp"))
		return errno;
	/* its own session and process group */
	if (setsid() < 0)
		return errno;
	/* the instance's socket takes the place of the zygote's */
	if (sock_fd != ZYG_CTL_FD) {
		if (dup2(sock_fd, ZYG_CTL_FD) < 0)
			return errno;
		close(sock_fd);
	}
	if (fstat(filter_fd, &st) || st.st_size <= 0 || st.st_size % sizeof(struct sock_filter))
		return EINVAL;
	filter = malloc((size_t)st.st_size);
	if (!filter || pread(filter_fd, filter, (size_t)st.st_size, 0) != st.st_size) {
		free(filter);
		return EIO;
	}
	close(filter_fd);
	prog.len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	prog.filter = filter;
	/* no capability survives, in this namespace or any it could make */
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0))
			return errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL)
		return errno;
	if (syscall(SYS_capset, &caphdr, capdata))
		return errno;
	/* the reaper (our parent) lives as long as we do; if it is killed, so are we */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0))
		return errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return errno;
	free(filter);
	return 0;
}

/*
 * The zygote's forks, each with the write end of its status pipe: the zygote is their parent
 * and reports each one's wait status there (nemo_zygote_reap). Only the zygote's one thread
 * touches it, in its loop or its SIGCHLD handling.
 */
static struct {
	pid_t pid;
	int status_fd;
} forks[ZYG_FORKS_MAX];
static int n_forks;

/*
 * The zygote's own page map (/proc/self/pagemap, opened by nemo_zygote_prefault_source()):
 * which pages its page tables hold. A ready fork reads it to map the same file pages; every
 * other fork closes it at once.
 */
static int zygote_pagemap = -1;

/* The instance's side of the clone, before its own setup: nothing of the zygote's stays. */
static void leave_zygote(int status_fd, int zygote_fd)
{
	sigset_t none;

	/* nothing of the zygote's control or of the siblings' pipes stays here */
	close(status_fd);
	if (zygote_fd >= 0 && zygote_fd != ZYG_CTL_FD)
		close(zygote_fd);
	for (int i = 0; i < n_forks; i++)
		close(forks[i].status_fd);
	n_forks = 0;
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static int say_born(int sock_fd)
{
	struct nemo_frame_hdr born = {
		.magic = NEMO_FRAME_MAGIC, .type = NEMO_FRAME_READY, .status = ZYG_BORN};

	return write(sock_fd, &born, sizeof(born)) == sizeof(born) ? 0 : EPIPE;
}

/*
 * Clone the instance. On demand (`ready` false) it says it is born at once, so that the
 * platform makes its cgroup meanwhile, joins it, then sets itself up; a ready fork sets itself
 * up and returns, still in the zygote's cgroups (nemo_zygote_park() parks it).
 */
static int zygote_clone(int sock_fd, int status_fd, int filter_fd, unsigned tmp_mb, int zygote_fd,
			bool ready)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	long pid;
	int status;

	if (n_forks >= ZYG_FORKS_MAX) {
		pid = -EAGAIN;
		goto failed;
	}
	/* a raw clone: like fork, with new namespaces (glibc's fork cannot pass them) */
	pid = syscall(SYS_clone, (unsigned long)INSTANCE_NS | SIGCHLD, NULL, NULL, NULL, 0);
	if (pid == 0) {
		int rc = 0;

		leave_zygote(status_fd, zygote_fd);
		if (!ready) {
			/* only a ready fork maps its zygote's pages (nemo_zygote_park) */
			if (zygote_pagemap >= 0)
				close(zygote_pagemap);
			zygote_pagemap = -1;
			/* born: the platform writes us into our cgroup while we set up */
			rc = say_born(sock_fd);
			rc = rc ? rc : join_cgroups(sock_fd);
		}
		rc = rc ? rc : become_instance(uid, gid, sock_fd, filter_fd, tmp_mb);
		if (rc)
			_exit(rc); /* the zygote reports it; the platform names the errno */
		return 0;
	}
	if (pid < 0)
		pid = -errno;
failed:
	close(sock_fd);
	if (pid < 0) {
		status = W_EXITCODE(ZYG_EXIT_CLONE, 0);
		if (write(status_fd, &status, sizeof(status)) < 0)
			status = 0;
		close(status_fd);
		return (int)pid;
	}
	forks[n_forks].pid = (pid_t)pid;
	forks[n_forks].status_fd = status_fd;
	n_forks++;
	return (int)pid;
}

int nemo_zygote_fork(int sock_fd, int status_fd, int filter_fd, unsigned tmp_mb, int zygote_fd)
{
	return zygote_clone(sock_fd, status_fd, filter_fd, tmp_mb, zygote_fd, false);
}

int nemo_zygote_fork_ready(int sock_fd, int status_fd, int filter_fd, unsigned tmp_mb,
			   int zygote_fd)
{
	return zygote_clone(sock_fd, status_fd, filter_fd, tmp_mb, zygote_fd, true);
}

int nemo_zygote_prefault_source(void)
{
	if (zygote_pagemap < 0)
		zygote_pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	return zygote_pagemap < 0 ? errno : 0;
}

/*
 * Map the pages of [from, to), a file mapping, that the zygote has mapped (its page map's
 * "present" bit, 63) into this process's page tables: the zygote's pages in the page cache,
 * so this costs page tables, not memory, and reads nothing from disk.
 */
static void prefault_as_zygote(unsigned long from, unsigned long to)
{
	const unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
	uint64_t entry[512];

	while (from < to) {
		unsigned long n = (to - from) / page, run = 0;
		ssize_t got;

		n = n < sizeof(entry) / sizeof(entry[0]) ? n : sizeof(entry) / sizeof(entry[0]);
		got = pread(zygote_pagemap, entry, n * sizeof(entry[0]),
			    (off_t)(from / page * sizeof(entry[0])));
		if (got != (ssize_t)(n * sizeof(entry[0])))
			return;
		for (unsigned long i = 0; i <= n; i++) {
			if (i < n && entry[i] >> 63) {
				run++;
				continue;
			}
			if (run)
				madvise((void *)(from + (i - run) * page), run * page,
					MADV_POPULATE_READ);
			run = 0;
		}
		from += n * page;
	}
}

/*
 * Map the pages of the files this process maps read-only (text, read-only data) that its
 * zygote has mapped into its own page tables. A fork copies no page table entries of file
 * mappings it never wrote: without this, its first call faults them in one by one (python:
 * about a third of its first call's faults).
 */
static void prefault_files(void)
{
	char buf[8192], *line, *eol;
	size_t have = 0;
	ssize_t n;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	for (;;) {
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		for (line = buf; (eol = strchr(line, '\n')); line = eol + 1) {
			unsigned long from, to;
			char perms[8], path[2];

			*eol = '\0';
			/* "from-to perms offset dev inode path": a file's path starts with '/' */
			if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %1s", &from, &to, perms, path) ==
				    4 &&
			    path[0] == '/' && perms[0] == 'r' && perms[1] != 'w')
				prefault_as_zygote(from, to);
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
	}
	close(fd);
}

int nemo_zygote_park(int prefault)
{
	int rc;

	if (prefault && zygote_pagemap >= 0)
		prefault_files();
	if (zygote_pagemap >= 0)
		close(zygote_pagemap);
	zygote_pagemap = -1;
	rc = say_born(ZYG_CTL_FD);
	rc = rc ? rc : join_cgroups(ZYG_CTL_FD);
	if (rc)
		_exit(rc);
	return 0;
}

int nemo_zygote_reap(void)
{
	int status, n = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < n_forks; i++) {
			if (forks[i].pid != pid)
				continue;
			if (write(forks[i].status_fd, &status, sizeof(status)) < 0)
				status = 0; /* the platform gave up on it: nobody reads */
			close(forks[i].status_fd);
			forks[i] = forks[--n_forks];
			n++;
			break;
		}
	}
	return n;
}
