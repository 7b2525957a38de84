/* sandbox_internal.h - what sandbox/ shares: the host, cgroup backends, the sandbox, cleanup. */
#ifndef NEMO_SANDBOX_INTERNAL_H
#define NEMO_SANDBOX_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "nemo/fn_ring.h"
#include "nemo/function.h"
#include "nemo/sandbox.h"

#define SBX_LOG "sandbox"

/* ---- cleanup helpers (STYLE.md: syscall-heavy code may use them) ---- */

static inline void sbx_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static inline void sbx_freep(void *p)
{
	free(*(void **)p);
}

#define _cleanup_close_ __attribute__((cleanup(sbx_closep)))
#define _cleanup_free_	__attribute__((cleanup(sbx_freep)))

/* ---- cgroup backends ---- */

#define SBX_CG_PATH	512
#define SBX_CG_JOIN_MAX 6   /* files a fresh child writes "0" into to join its cgroups (v1) */
#define SBX_CG_MAX_CPUS 256 /* CPUs `harvested` is kept for */
#define SBX_CG_LEAF	"nemo-daemon" /* v2: the leaf nemod moves its own cgroup's processes to */

/* Where one sandbox lives, filled by the backend's sandbox_create. */
struct sbx_cgroup {
	int core;
	/* v1: <ctrl>/<root>/sbx-<id> for memory, pids, freezer; v2: <root>/core<N>/sbx-<id> */
	char memory[SBX_CG_PATH];
	char pids[SBX_CG_PATH];
	char freezer[SBX_CG_PATH];
	/*
	 * v1: the `tasks` file of each of its cgroups. A fresh child, single-threaded, writes
	 * "0" into each before exec: a thread that moves itself takes no threadgroup lock, so it
	 * waits for no RCU grace period as a write into cgroup.procs may (milliseconds).
	 */
	int n_join;
	char join[SBX_CG_JOIN_MAX][SBX_CG_PATH];
	/* v2: an O_PATH fd of the sandbox cgroup for clone3(CLONE_INTO_CGROUP); -1 on v1 */
	int dirfd;
};

/*
 * A cgroup backend (crun's cgroup managers have this shape). Each returns 0 or -errno and
 * logs its own failures once, with the path. The knob names are written here rather than
 * translated by libcgroup (2.0.2 cannot). Mechanism only: the host (cgroup.c, generic part)
 * keeps the accounting and the sandbox list, and the public interface is include/nemo/cgroup.h.
 */
struct sbx_cgroup_ops {
	const char *name;
	/* create <root> and <root>/core<N> for every core, with cpuset N */
	int (*host_init)(struct sbx_host *host);
	/* remove what host_init made (the sandboxes are gone by then) */
	void (*host_fini)(struct sbx_host *host);
	int (*core_path)(const struct sbx_host *host, int core, const char *ctrl, char *buf,
			 size_t len);
	/* make the sandbox's cgroup with its limits, fill `cg` */
	int (*sandbox_create)(struct sbx_host *host, uint64_t id, int core,
			      const struct sbx_spec *spec, struct sbx_cgroup *cg);
	/* remove it; the processes are dead. Retries while the kernel still lists them. */
	int (*sandbox_destroy)(struct sbx_host *host, struct sbx_cgroup *cg);
	int (*freeze)(struct sbx_cgroup *cg, bool frozen);
	/* 1 frozen, 0 not (yet), -errno */
	int (*is_frozen)(struct sbx_cgroup *cg);
	/* SIGKILL every process of the sandbox's cgroup (v2: cgroup.kill) */
	int (*kill)(struct sbx_cgroup *cg);
	/* move process `pid` (all its threads) into the sandbox's cgroups: a zygote's fork */
	int (*attach)(struct sbx_cgroup *cg, pid_t pid);
	/*
	 * Open, as the caller (root), the files through which a single-threaded process moves
	 * itself into the sandbox's cgroups by writing "0" (v1: each hierarchy's `tasks`):
	 * the kernel checks the opener's credentials, and a thread that moves itself takes no
	 * threadgroup lock, so no RCU grace period is waited for. `core_too` false: only the
	 * sandbox's own cgroups (memory, pids, freezer), for a process already in its core's
	 * (a fork of a zygote on that core). Fills up to SBX_CG_JOIN_MAX fds (close-on-exec),
	 * returns how many, or -ENOTSUP where a process cannot move itself this way (v2:
	 * cgroup.threads stays inside one domain).
	 */
	int (*self_join_open)(const struct sbx_cgroup *cg, bool core_too, int *fds);
	/*
	 * 1 if process `pid` is in every cgroup of the sandbox, 0 if not, -errno. `proc_fd`: its
	 * /proc/<pid>/cgroup opened beforehand (read again from the start: the kernel writes it
	 * anew at each read), or -1 to open it now.
	 */
	int (*holds)(const struct sbx_host *host, const struct sbx_cgroup *cg, pid_t pid,
		     int proc_fd);
	/*
	 * Make a sandbox cgroup that no process has joined yet (a ready fork's) the one of
	 * `core`: v1 only changes the CPU-side files it will join; v2 makes it again under
	 * `core`'s cgroup (the sandbox's `id` names it, `spec` gives its limits).
	 */
	int (*retarget)(struct sbx_host *host, struct sbx_cgroup *cg, int core,
			const struct sbx_spec *spec, uint64_t id);
	int (*move)(struct sbx_host *host, struct sbx_cgroup *cg, int core);
	int (*memory_bytes)(struct sbx_cgroup *cg, uint64_t *bytes);
	/* OOM kills in the sandbox's memory cgroup since it was made */
	int (*oom_kills)(struct sbx_cgroup *cg, uint64_t *kills);
	/* the harvest cgroup's CPU weight knob, its lowest value and its default */
	const char *weight_knob;
	const char *weight_lowest, *weight_default;
	/* CFS bandwidth of a harvest cgroup (dir); quota_us 0 lifts it; checked by the caller */
	int (*set_quota)(const char *dir, uint64_t quota_us, uint64_t period_us);
	/* cumulative CPU time (ns) of a harvest cgroup (its cpuacct dir on v1) and below */
	int (*usage)(const char *dir, uint64_t *ns);
	/* the file that lists a cgroup's threads: "tasks" (v1), "cgroup.threads" (v2) */
	const char *threads_file;
	/* the line of /proc/<pid>/cgroup that holds the CPU-side membership: "cpuset" / "" */
	const char *proc_controller;
};

extern const struct sbx_cgroup_ops sbx_cgroup_v1_ops;
extern const struct sbx_cgroup_ops sbx_cgroup_v2_ops;

/*
 * The one set of cgroupfs file helpers. Write `val` to dir/file (file NULL: dir is the file),
 * a short write is an error; read into buf (NUL-terminated) and return the length. Both log
 * a failure once with the path and strerror (the read not for ENOENT when `quiet`).
 */
int sbx_cg_write(const char *dir, const char *file, const char *val);
int sbx_cg_read(const char *dir, const char *file, char *buf, size_t len, bool quiet);
int sbx_cg_read_u64(const char *dir, const char *file, uint64_t *val);
/* the u64 after "key " in a key file (cpu.stat, memory.events); -ENOENT without the key */
int sbx_cg_read_key_u64(const char *dir, const char *file, const char *key, uint64_t *val);

/* ---- the host ---- */

/* The private root: where the runtime and the shim are inside it; the host's top-level
 * entries (bin, lib, ...) that it copies as symlinks into usr/ or binds. */
#define SBX_ROOT_RUNTIME    "/.nemo/nemo-sbx-runtime"
#define SBX_ROOT_SHIM	    "/.nemo/nemo-sbx-shim.py"
#define SBX_ROOT_ZYGOTE_LIB "/.nemo/nemo-sbx-zygote.so" /* python zygotes fork through it */
#define SBX_ROOT_TOP_MAX    8

struct sbx_root_entry {
	char name[16];		   /* "lib" */
	char target[SBX_PATH_MAX]; /* link: its target ("usr/lib"); else the host path */
	bool link;
};

/* A function's uid, assigned once per host (sbx_host_function_uid). */
struct sbx_uid_entry {
	char name[SBX_NAME_MAX];
	uid_t uid;
};

/* Where one harvest cgroup's CPU time goes: the CPU its cpuset holds, since `since_ns`. */
struct sbx_core_acct {
	int pinned;	   /* the CPU cpuset.cpus holds now */
	uint64_t since_ns; /* the cgroup's usage when it was pinned there */
};

struct sbx_host {
	const struct sbx_cgroup_ops *cg;
	char cgroup_why[160]; /* why this backend: logged at start */
	char cgroup_root[128];
	char v1_mount[SBX_CG_PATH]; /* /sys/fs/cgroup */
	char v2_mount[SBX_CG_PATH]; /* /sys/fs/cgroup or /sys/fs/cgroup/unified */
	char v2_base[SBX_CG_PATH];  /* v2: this process's own cgroup, where <root> is made */
	int n_cores;
	char runtime_path[SBX_PATH_MAX];
	char shim_path[SBX_PATH_MAX];
	char zygote_lib_path[SBX_PATH_MAX];
	char pkt_lib_path[SBX_PATH_MAX]; /* the python shim's packet mode (runtime/pktlib.c) */
	char python_path[SBX_PATH_MAX];
	bool netns_per_sandbox;
	bool zygote_host_attach; /* sbx_host_config */
	uint64_t frozen_wait_ns; /* sbx_host_config.frozen_wait_ms */
	bool bench_host_root;	 /* sbx_host_bench_host_root(): bench-sandbox only */
	/* v1: the watchdog that outlives us to thaw and kill our sandboxes (watchdog.c) */
	pid_t watchdog_pid;
	/* the private root's copies of the host's top-level folders */
	int n_root_top;
	struct sbx_root_entry root_top[SBX_ROOT_TOP_MAX];
	/* uids of functions: [uid_base, uid_base + uid_count), under uid_lock */
	uid_t uid_base;
	uint32_t uid_count;
	pthread_mutex_t uid_lock;
	uint32_t n_uids, cap_uids;
	struct sbx_uid_entry *uids;
	/* the launcher thread, parent of every sandbox (sandbox.c) */
	pthread_t launcher;
	bool launcher_running, launch_stop;
	pthread_mutex_t launch_lock;
	pthread_cond_t launch_cond;
	struct launch_job *launch_job;
	int seccomp_fd;	       /* sealed memfd with the compiled BPF program */
	int zygote_seccomp_fd; /* the zygotes' program: it lets them make their instances */
	int netns_fd;	       /* the shared empty network namespace */
	int root_template_fd;  /* the private root's template: a mount namespace (sandbox.c) */
	pthread_mutex_t lock;
	uint64_t next_id;
	int n_sandboxes;
	struct sbx_sandbox *sandboxes; /* every live sandbox, for host_destroy */
	/* `harvested` per CPU (sbx_cgroup_cpu_harvested), under acct_lock */
	pthread_mutex_t acct_lock;
	struct sbx_core_acct *acct;	     /* n_cores */
	uint64_t closed_ns[SBX_CG_MAX_CPUS]; /* CPU time of closed segments, per CPU */
	/* nemo_call's leases: the pool's (sbx_pool_new), NULL without one */
	struct sbx_chain *chain;
};

/* Set up the accounting of `harvested` once host_init made the core cgroups. */
int sbx_cgroup_acct_init(struct sbx_host *host);

/*
 * Build the private root's template (sandbox.c): a mount namespace whose root is a read-only
 * tmpfs with /usr, the host's top-level folders, the runtime, shim and zygote library, /dev
 * nodes and mount points, and nothing of any tenant's. Each sandbox enters a copy of it and
 * adds its own /code, /proc, /tmp and /dev/shm. Returns its fd or -errno (logged).
 */
int sbx_root_template_new(struct sbx_host *host);

/* Start and stop the launcher thread (sandbox.c). */
int sbx_launcher_start(struct sbx_host *host);
void sbx_launcher_stop(struct sbx_host *host);

/*
 * Compile the seccomp filter into a sealed memfd. Returns the fd or -errno. `zygote`: the
 * zygotes' filter, the same but for mount and clone with new user, PID, mount, IPC and UTS
 * namespaces, which a zygote's fork needs to become an instance; each instance stacks the
 * host's filter on it before it runs anything of the function's.
 */
int sbx_seccomp_compile(bool deny_unix_sockets, bool zygote);

/* ---- the sandbox ---- */

struct sbx_sandbox {
	struct sbx_host *host;
	struct sbx_spec spec;
	uint64_t id;
	enum sbx_state state;
	pid_t pid;
	int pidfd;
	int sock; /* our end of the socketpair */
	struct sbx_cgroup cg;
	uid_t uid;		    /* its function's (sbx_host_function_uid) */
	char code_in[SBX_PATH_MAX]; /* the code's path inside the private root */
	bool reaped;
	int wait_status; /* as from waitpid, once reaped */
	uint64_t oom_base;
	uint64_t create_ns;
	uint64_t init_ns;
	uint8_t *rbuf; /* response buffer, max_payload_bytes */
	/*
	 * Zygotes (sbx_zygote_create) and their forks. A fork's init is not our child (the
	 * zygote's reaper is its parent): its wait status comes through `status_fd`. A zygote
	 * is destroyed once retired and without forks: killing it would kill every fork, whose
	 * PID namespaces nest in its own. `n_forks` and `retired` are under the host's lock.
	 */
	bool zygote;
	bool retired;
	bool linked; /* on the host's list */
	int n_forks;
	struct sbx_sandbox *parent; /* the zygote a fork came from */
	/*
	 * A zygote's ready fork (sbx_zygote_prepare), set up and parked in the zygote's cgroups
	 * until a sbx_zygote_fork() hands it over; under the host's lock.
	 */
	struct sbx_sandbox *ready;
	bool parked;	 /* a ready fork, not handed over yet: no process in its cgroup */
	bool from_ready; /* a fork that was handed over ready */
	bool joined;	 /* a fork the kernel said is in its own cgroups (else: its zygote's) */
	/* a ready fork's JOIN files, opened when it was made (-ENOTSUP: it cannot join itself) */
	int n_join_fds;
	int join_fds[SBX_CG_JOIN_MAX];
	int proc_cg_fd; /* a fork's /proc/<pid>/cgroup, opened once it is born */
	int status_fd;
	pthread_mutex_t fork_lock; /* a zygote: one command at a time on its socket */
	struct sbx_sandbox *host_next, *host_prev;
	void *pool_entry; /* owned by the pool that made it, if any */
	/*
	 * A pool freezes a core's instances from its own thread, while their owners may be in
	 * sbx_invoke(): `lock` guards `state` and the freezer fields below against that.
	 */
	pthread_mutex_t lock;
	bool frozen;	    /* the freezer holds it: FROZEN, or BUSY with its invocation paused */
	uint64_t frozen_at; /* when the current freeze began (while frozen) */
	uint64_t frozen_ns; /* time spent frozen in earlier freezes: invocation deadlines skip it */
	/* why another thread killed it (sbx_kill_async): the result of a call in flight */
	const char *killed_why;
	/* packet mode (sbx_packet_start): the ring header, mapped read-only, for its figures */
	bool packet;
	const struct fn_ring_shared *pkt_ring;
	/* nemo_call (chain.c): how deep in a chain it serves while leased (0: it is not) */
	uint32_t chain_depth;
};

/* How long a freeze may take to settle before it is undone. */
#define SBX_FREEZE_TIMEOUT_NS (100 * 1000000ull)

/*
 * sbx_freeze() in two halves, so that a pool freezes many sandboxes at once and then waits
 * for all of them. begin: write the freezer (READY becomes FROZEN, BUSY stays BUSY with its
 * invocation paused); 0, -EBUSY (not READY or BUSY, already frozen, or dead) or the -errno
 * of the write. settle: wait until the kernel reads frozen, at most until deadline_ns, else
 * thaw again; 0, -ETIMEDOUT or the -errno of the read. Either may run on another thread
 * than the owner's sbx_invoke().
 */
int sbx_freeze_begin(struct sbx_sandbox *sb);
int sbx_freeze_settle(struct sbx_sandbox *sb, uint64_t deadline_ns);

/* Whether the freezer holds the sandbox (idle or in the middle of an invocation). */
bool sbx_frozen(struct sbx_sandbox *sb);

/* Time spent frozen so far, in every freeze, the current one up to `now` (nemo_now_ns). */
uint64_t sbx_frozen_total_ns(struct sbx_sandbox *sb, uint64_t now);

/* When the current freeze began (nemo_now_ns), 0 when the sandbox is not frozen. */
uint64_t sbx_frozen_since(struct sbx_sandbox *sb);

/*
 * Kill the sandbox from another thread than its owner's, and thaw it if frozen (a v1-frozen
 * task dies only once thawed). Nothing is reaped here: a BUSY owner's sbx_invoke() sees the
 * death and reports SBX_ERR_INTERNAL with `why` (a static string); a READY or FROZEN one
 * reads DEAD, reaped at its destroy. Safe against sbx_freeze()/sbx_thaw() on other threads.
 */
void sbx_kill_async(struct sbx_sandbox *sb, const char *why);

/* ---- nemo_call between functions (chain.c, include/nemo/chain.h) ---- */

struct sbx_chain;
struct sbx_pool;

/* The leases of a pool's instances; the broker thread starts with the first lease. */
struct sbx_chain *sbx_chain_new(struct sbx_pool *pool);
/* End every lease (callees back to the pool) and stop the broker. */
void sbx_chain_destroy(struct sbx_chain *ch);

/*
 * CALL_OPEN `name` from `caller` (read by its invoker or by the broker): lease it an instance
 * of `name` in its namespace and answer CALL_OPENED, with the box's fds or why not. Returns 0
 * or the -errno of the answer's send.
 */
int sbx_chain_open(struct sbx_chain *ch, struct sbx_sandbox *caller, const char *name);

/* `sb` is being destroyed: the leases it holds end (the broker gives the callees back). */
void sbx_chain_forget(struct sbx_chain *ch, struct sbx_sandbox *sb);

/* After `root` answered a top-level call: its calls (and theirs) into res->calls. */
int sbx_chain_drain(struct sbx_chain *ch, struct sbx_sandbox *root, struct sbx_result *res);

/* sbx_pool_acquire() for a lease: outside the function's concurrency slots (pool.c). */
struct sbx_sandbox *sbx_pool_acquire_lease(struct sbx_pool *pool, const char *name, int core,
					   struct sbx_result *res);

/* The spec of a deployed function (copied). 0 or -ENOENT. */
int sbx_pool_spec(struct sbx_pool *pool, const char *name, struct sbx_spec *spec);

/* A frame with fds to a sandbox (SCM_RIGHTS with its first byte), within a second. */
int sbx_send_frame_fds(struct sbx_sandbox *sb, uint16_t type, uint32_t status, const void *data,
		       uint32_t len, const int *fds, int nfds);

/* One frame from a sandbox whose socket has something, its payload (at most cap < outlen
 * bytes) copied to out with a NUL. 0, -EPIPE, -EPROTO, -EMSGSIZE or -ETIMEDOUT (a second). */
int sbx_recv_frame(struct sbx_sandbox *sb, struct nemo_frame_hdr *hdr, uint32_t cap, char *out,
		   size_t outlen);

/* v1: start the watchdog (host.c, sandbox/runtime/watchdog.c); stop it at a clean exit. */
int sbx_watchdog_start(struct sbx_host *host);
void sbx_watchdog_stop(struct sbx_host *host);

/* Env key for the runtime: where the python shim is. */
#define SBX_SHIM_ENV "NEMO_SBX_SHIM"

/* ---- keep-alive state: what sbx_keepalive_ops get as `state` ---- */

struct sbx_keepalive_state {
	struct sbx_keepalive_params params;
	double clock; /* greedy-dual's inflation clock */
};

#endif /* NEMO_SANDBOX_INTERNAL_H */
