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
 * Status of the REQUEST frame the platform sends a new instance on its own socket once its
 * cgroups are made, with the files (SCM_RIGHTS, opened by the platform) through which the
 * instance writes itself into them: "0" into each, then closes them. None attached: the
 * platform moves it itself (v2).
 */
#define ZYG_JOIN     2
#define ZYG_JOIN_MAX 6 /* files a JOIN frame carries at most (SBX_CG_JOIN_MAX) */

/*
 * Status of the REQUEST frame that asks the zygote for its next instance ahead of demand (the
 * platform's "ready fork", made on spare cycles): the same two fds as for an instance made
 * on demand (status 0), but the instance sets itself up first, says it is born only once it
 * is set up, and then waits for its JOIN frame, which is its hand-over.
 */
#define ZYG_PARK 3

/*
 * Called in a zygote (single-threaded) with `sock_fd` a new instance's control socket and
 * `status_fd` the write end of its status pipe, both from the platform, and `zygote_fd` a
 * descriptor of the zygote's own control socket besides ZYG_CTL_FD (-1 if none). Makes the
 * instance, a child in new user, PID, mount, IPC and UTS namespaces. In the instance (PID 1 of
 * its namespace), it sends READY with status ZYG_BORN, closes what is the zygote's (its
 * control socket, the other instances' status pipes), waits for the platform's JOIN frame and
 * writes itself into its cgroups through the files it carries, maps the function's uid and gid, mounts
 * its own /proc, /tmp (`tmp_mb` MiB) and /dev/shm, starts its own session, moves `sock_fd` to
 * ZYG_CTL_FD, drops every capability and stacks the seccomp filter read from `filter_fd`,
 * then returns 0 (a step that fails exits with its errno). In the zygote it returns the pid,
 * or -errno (ZYG_EXIT_CLONE written as the status); `sock_fd` is closed there, `status_fd`
 * kept until nemo_zygote_reap() reports the instance's end.
 */
int nemo_zygote_fork(int sock_fd, int status_fd, int filter_fd, unsigned tmp_mb, int zygote_fd);

/*
 * The same for a ready fork (ZYG_PARK): in the instance, every step but the cgroup join is
 * done (the maps, mounts, session, fd 3, capabilities, seccomp filter) when it returns 0; it
 * is still in its zygote's cgroups and has not said it is born. The caller does its own
 * after-fork steps (python's: reseeding random, the at-fork hooks), then calls
 * nemo_zygote_park(). In the zygote, as nemo_zygote_fork().
 */
int nemo_zygote_fork_ready(int sock_fd, int status_fd, int filter_fd, unsigned tmp_mb,
			   int zygote_fd);

/*
 * In the zygote, once its code is loaded: keep its own page map open, so that its ready forks
 * can map the file pages it maps (nemo_zygote_park). Returns 0 or an errno.
 */
int nemo_zygote_prefault_source(void);

/*
 * In a ready fork, once it is set up: with `prefault` (and nemo_zygote_prefault_source() done
 * in the zygote), map the pages of the files it maps read-only (the interpreter's and
 * libraries' text and read-only data) that its zygote has mapped into its page tables now, so
 * that its first call does not fault them in one by one (a fork copies no page table entries
 * of file mappings it never wrote); the zygote's page map is closed then; then say
 * it is born (READY with status ZYG_BORN on fd 3) and park, still in its zygote's cgroups,
 * until the JOIN frame, its hand-over: write itself into its cgroups through the files it
 * carries. Returns 0; a step that fails exits with its errno.
 */
int nemo_zygote_park(int prefault);

/*
 * In the zygote, on SIGCHLD: reap every instance that ended and write its wait status (an
 * int) to its status pipe. Returns how many.
 */
int nemo_zygote_reap(void);

#endif /* NEMO_SBX_ZYGOTE_H */
