/* cgroup.h - nemod's cgroup tree: one owner (the sandbox host), v1 and v2 behind one ops table. */
#ifndef NEMO_CGROUP_H
#define NEMO_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The sandbox host (struct sbx_host, include/nemo/sandbox.h) owns the whole tree: it detects
 * the hierarchy once, builds <root>/core<N> (the harvest cgroup of CPU N: cpuset N, the CPU
 * weight or cpu.idle, the CFS quota) and one cgroup per sandbox (memory, pids, freezer), and
 * every other layer asks it through the functions below instead of touching cgroupfs. Where
 * the tree lives, per backend (sandbox/README.md has the details):
 *
 *   v1 (hybrid, as on the build machines): /sys/fs/cgroup/<ctrl>/<root>/... per controller.
 *   v2 (unified, systemd): inside nemod's own cgroup, which its unit delegates
 *       (Delegate=yes): <own>/<root>/core<N>/sbx-<id>; nemod itself moves into the leaf
 *       <own>/nemo-daemon so that <own> holds no processes.
 *
 * Every function returns 0 or -errno and logs a failed cgroup read or write once, with the
 * path and strerror. They may be called from any thread.
 */

struct sbx_host;
struct sbx_sandbox;

enum sbx_cgroup_version {
	/* v2 when /sys/fs/cgroup is the unified hierarchy (cgroup2fs), v1 when the v1
	 * controllers are mounted under it (legacy or hybrid); logged at start with the reason */
	SBX_CGROUP_AUTO = 0,
	SBX_CGROUP_V1 = 1,
	SBX_CGROUP_V2 = 2,
};

/*
 * The one detection: SBX_CGROUP_V1 or SBX_CGROUP_V2 for this machine, and in `why` (may be
 * NULL) the fact it was decided on. -ENOENT when neither is usable (named in `why`).
 */
int sbx_cgroup_detect(char *why, size_t len);

/* "v1" or "v2": the backend a host uses (what nemod logs at start and /api/v1/status shows). */
const char *sbx_host_cgroup_backend(const struct sbx_host *host);

/*
 * The directory of `core`'s harvest cgroup in controller `ctrl` ("cpu", "cpuacct", "cpuset";
 * NULL for "cpu"; v2 has one directory for all). For logs and tests. Returns 0, -EINVAL (no
 * such core) or -ENAMETOOLONG.
 */
int sbx_host_core_cgroup(const struct sbx_host *host, int core, const char *ctrl, char *buf,
			 size_t len);

/* The directory of a sandbox's own cgroup in `ctrl` ("memory", "pids", "freezer"; v2: one). */
int sbx_sandbox_cgroup(const struct sbx_sandbox *sb, const char *ctrl, char *buf, size_t len);

/*
 * CPU weight of `core`'s harvest cgroup: idle true sets cpu.idle = 1 (its tasks are
 * SCHED_IDLE to the NF); false clears it and sets the lowest weight (cpu.shares 2 on v1,
 * cpu.weight 1 on v2). Returns 0, -EINVAL (no such core) or the -errno of the write.
 */
int sbx_cgroup_core_idle(struct sbx_host *host, int core, bool idle);

/*
 * CFS bandwidth of `core`'s harvest cgroup: quota_us per period_us (cpu.cfs_* on v1,
 * cpu.max on v2); quota_us 0 lifts the limit. Returns 0, -EINVAL (no such core, or quota or
 * period under the kernel's 1000 us floor) or the -errno of the write.
 */
int sbx_cgroup_core_quota(struct sbx_host *host, int core, uint64_t quota_us, uint64_t period_us);

/*
 * Put `core`'s harvest cgroup on CPU `cpu` (cpuset.cpus): the kernel migrates every sandbox
 * of the core at once, an invocation in flight carries on there (reclaim by move); `core`
 * itself brings them home. Returns 0, -EINVAL (no such core or cpu) or the -errno of the
 * write.
 */
int sbx_cgroup_core_pin(struct sbx_host *host, int core, int cpu);

/*
 * `harvested`, cumulative: the CPU time (ns) sandboxes ran on CPU `cpu` since the host
 * started. A harvest cgroup's time counts for the CPU its cpuset held while it ran: each
 * sbx_cgroup_core_pin() closes the cgroup's segment on the old CPU. So the time sandboxes of
 * core 1 ran on cpu 0 after a move counts for cpu 0, never for cpu 1; the same on v1 and v2
 * (v2 has no per-CPU usage). Returns 0, -EINVAL (cpu out of range) or the -errno of a read.
 */
int sbx_cgroup_cpu_harvested(struct sbx_host *host, int cpu, uint64_t *ns);

/* Threads in `core`'s harvest cgroup and its sandboxes, and how many are runnable ('R'). */
int sbx_cgroup_core_threads(struct sbx_host *host, int core, uint32_t *total, uint32_t *runnable);

/*
 * Sandboxes whose cgroup is under `core` (-1: every core), and how many of them the kernel
 * reads frozen now. Either pointer may be NULL. Returns 0 or -EINVAL.
 */
int sbx_cgroup_core_sandboxes(struct sbx_host *host, int core, uint32_t *n, uint32_t *frozen);

/*
 * The core whose harvest cgroup holds `pid` in the kernel's view (/proc/<pid>/cgroup, the
 * CPU-side controllers on v1), or -ENOENT (not in the host's tree), -ESRCH (no such pid).
 */
int sbx_cgroup_pid_core(const struct sbx_host *host, pid_t pid);

/* Sandbox cgroups (sbx-*) present under the host's root now, in the kernel's tree. */
int sbx_cgroup_sandbox_dirs(const struct sbx_host *host);

/*
 * The directories a tree named `root` occupies on this machine (v1: one per controller;
 * v2: one, inside this process's delegated cgroup), whether they exist or not: for tests
 * and tools that clean up after a process that died. `root` "" gives the directories trees
 * are made in. Returns how many (<= max) or -errno.
 */
int sbx_cgroup_root_dirs(const char *root, char (*dirs)[512], int max);

#endif /* NEMO_CGROUP_H */
