/* zygote.h - how a zygote's fork becomes an instance (runtime.c and the python shim's library). */
#ifndef NEMO_SBX_ZYGOTE_H
#define NEMO_SBX_ZYGOTE_H

#define ZYG_CTL_FD     3   /* the control socket, in the zygote and in each instance */
#define ZYG_EXIT_CLONE 125 /* the status a reaper reports when it could not make the instance */
#define ZYG_BORN \
	1 /* status of the READY frame an instance sends at once, before its
			    * setup (the platform moves it into its cgroup meanwhile); the
			    * runtime's READY (status 0) follows when it is ready */

/*
 * Called in a fresh fork of a zygote (single-threaded), with `sock_fd` the new instance's
 * control socket and `status_fd` the write end of its status pipe, both from the platform.
 * Makes the instance, a child in new user, PID, mount, IPC and UTS namespaces, and:
 *  - in the instance (PID 1 of its namespace): sends READY with status ZYG_BORN, maps the function's uid and gid, mounts its
 *    own /proc, /tmp (`tmp_mb` MiB) and /dev/shm, starts its own session, moves `sock_fd`
 *    to ZYG_CTL_FD, drops every capability and stacks the seccomp filter read from
 *    `filter_fd`; returns 0, or the errno of the step that failed (the caller exits);
 *  - in the caller, the instance's reaper: waits for it, writes its wait status (an int)
 *    to `status_fd` and exits. It never returns.
 */
int nemo_zygote_instance(int sock_fd, int status_fd, int filter_fd, unsigned tmp_mb);

#endif /* NEMO_SBX_ZYGOTE_H */
