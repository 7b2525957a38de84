/* zygote.c - a fork of a zygote becomes a sandbox of its own before it takes a request. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
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

int nemo_zygote_fork(int sock_fd, int status_fd, int filter_fd, unsigned tmp_mb, int zygote_fd)
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
		/* born: the platform writes us into our cgroup while we set up */
		struct nemo_frame_hdr born = {
			.magic = NEMO_FRAME_MAGIC, .type = NEMO_FRAME_READY, .status = ZYG_BORN};
		sigset_t none;
		int rc;

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
		if (write(sock_fd, &born, sizeof(born)) != sizeof(born))
			_exit(EPIPE);
		rc = become_instance(uid, gid, sock_fd, filter_fd, tmp_mb);
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
