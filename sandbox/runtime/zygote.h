/* zygote.h - how a zygote's fork becomes an instance (runtime.c and the python shim's library). */
#ifndef NEMO_SBX_ZYGOTE_H
#define NEMO_SBX_ZYGOTE_H

#define ZYG_CTL_FD     3   /* the control socket, in the zygote and in each instance */
#define ZYG_EXIT_CLONE 125 /* the status a reaper reports when it could not make the instance */
#define ZYG_BORN \
	1 /* status of the READY frame an instance sends at once, before its
			    * setup (the platform moves it into its cgroup meanwhile); the
			    * runtime's READY (status 0) follows when it is ready */

#define ZYG_FORKS_MAX 512 /* forks one zygote has alive at once */

/*
 * Called in a zygote (single-threaded) with `sock_fd` a new instance's control socket and
 * `status_fd` the write end of its status pipe, both from the platform, and `zygote_fd` a
 * descriptor of the zygote's own control socket besides ZYG_CTL_FD (-1 if none). Makes the
 * instance, a child in new user, PID, mount, IPC and UTS namespaces. In the instance (PID 1 of
 * its namespace), it sends READY with status ZYG_BORN, closes what is the zygote's (its
 * control socket, the other instances' status pipes), maps the function's uid and gid, mounts
 * its own /proc, /tmp (`tmp_mb` MiB) and /dev/shm, starts its own session, moves `sock_fd` to
 * ZYG_CTL_FD, drops every capability and stacks the seccomp filter read from `filter_fd`,
 * then returns 0 (a step that fails exits with its errno). In the zygote it returns the pid,
 * or -errno (ZYG_EXIT_CLONE written as the status); `sock_fd` is closed there, `status_fd`
 * kept until nemo_zygote_reap() reports the instance's end.
 */
int nemo_zygote_fork(int sock_fd, int status_fd, int filter_fd, unsigned tmp_mb, int zygote_fd);

/*
 * In the zygote, on SIGCHLD: reap every instance that ended and write its wait status (an
 * int) to its status pipe. Returns how many.
 */
int nemo_zygote_reap(void);

#endif /* NEMO_SBX_ZYGOTE_H */
