/* sandbox.h - isolated function instances: specs, host context, lifecycle, warm pools. */
#ifndef NEMO_SANDBOX_H
#define NEMO_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "nemo/cgroup.h"

/*
 * A sandbox is one instance of one function: a process tree in its own session and new PID,
 * mount, IPC, UTS and network namespaces, with a private read-only root (/usr, the runtime,
 * its own code; private /proc, /tmp, /dev/shm and a few device nodes), running as its
 * function's own unprivileged uid with no capabilities, no_new_privs, a seccomp filter and rlimits, inside
 * its own cgroup (memory, pids, freezer) under a per-core parent cgroup (cpuset, cpu weight).
 *
 * Lifecycle (enum sbx_state):
 *
 *   sbx_create()  ──► CREATED   (cold: processes, namespaces, cgroup; no function code yet)
 *   sbx_init()    ──► READY     (warm: code loaded, handler resolved, waiting for requests)
 *   sbx_invoke()  ──► BUSY ──► READY
 *   sbx_freeze()  ──► FROZEN    sbx_thaw() ──► READY
 *                     (BUSY stays BUSY: the invocation pauses, and goes on at the thaw)
 *   sbx_move()    ──  same state, other core's parent cgroup
 *   crash/OOM/timeout ──► DEAD  (detected through the sandbox's pidfd; result says why)
 *   sbx_destroy() ──  processes killed, cgroup removed, handle freed
 *
 * Everything create and init cost can be paid ahead of demand: sbx_pool_prewarm() does both
 * and marks the instance as pre-warmed, so the next acquire reports SBX_START_PREWARMED.
 *
 * Thread safety: a struct sbx_host and a struct sbx_pool may be used from several threads at
 * once (each holds its own lock). A struct sbx_sandbox belongs to one thread at a time: the
 * thread that created it, or the one that acquired it from a pool until it releases it.
 * Functions on one sandbox must not run concurrently, except sbx_freeze(), sbx_thaw() and
 * sbx_state(), which another thread may call while the owner is in sbx_invoke() (that is how
 * a pool freezes a core's instances, sbx_pool_freeze_core()).
 */

#define SBX_NAME_MAX	64  /* function name, including the NUL */
#define SBX_PATH_MAX	256 /* code path, including the NUL */
#define SBX_HANDLER_MAX 128 /* handler name, including the NUL */
#define SBX_ENV_MAX	16  /* environment variables per function */
#define SBX_ENV_LEN	256 /* one "KEY=VALUE", including the NUL */
#define SBX_MSG_MAX	256 /* result and error messages, including the NUL */

/* ---- function specs ----------------------------------------------------------------------- */

enum sbx_runtime {
	SBX_RUNTIME_C = 0,	/* a shared object exporting a handler (include/nemo/function.h) */
	SBX_RUNTIME_PYTHON = 1, /* module:function, imported once at init */
	SBX_RUNTIME_EXEC = 2,	/* any executable; see enum sbx_exec_mode */
};

enum sbx_exec_mode {
	SBX_EXEC_PERSISTENT = 0,  /* one process speaks the framed protocol on stdin/stdout */
	SBX_EXEC_PER_REQUEST = 1, /* fork+exec per request: request on stdin, response on stdout */
};

/*
 * A function as deployed. JSON keys (defaults in brackets):
 *   name (required), runtime "c" | "python" | "exec" (required), code (required, a path),
 *   handler [c: "handle"; python: "handler"; exec: unused], exec_mode "persistent" |
 *   "per_request" ["persistent"], memory_mb [128], timeout_ms [1000],
 *   max_payload_bytes [1048576], concurrency [1], max_pids [32], env {"KEY": "value"} [{}].
 * For python, code is a .py file (module = its basename) or a directory, and handler is
 * "function" or "module:function".
 */
struct sbx_spec {
	char name[SBX_NAME_MAX];
	int runtime;   /* enum sbx_runtime */
	int exec_mode; /* enum sbx_exec_mode; exec runtime only */
	char code[SBX_PATH_MAX];
	char handler[SBX_HANDLER_MAX];
	uint32_t memory_mb;	    /* memory cgroup limit */
	uint32_t timeout_ms;	    /* per invocation; the instance is killed when it passes */
	uint32_t max_payload_bytes; /* request and response limit */
	uint32_t concurrency;	    /* instances the platform may run at once for this function */
	uint32_t max_pids;	    /* pids cgroup limit (processes and threads) */
	uint32_t n_env;
	char env[SBX_ENV_MAX][SBX_ENV_LEN]; /* "KEY=VALUE" */
};

/* Fill `spec` with the defaults above; name, runtime and code are left empty. */
void sbx_spec_defaults(struct sbx_spec *spec);

/*
 * Parse a function spec from JSON text. `origin` names the source in messages (a file name or
 * "request"). On error, `err` (if not NULL) receives one line naming the field, such as
 * "fn.json: key 'memory_mb': 0 is out of range [4, 65536]".
 * Returns 0, -EINVAL (bad field, message in err) or -ENOMEM. Thread-safe.
 */
int sbx_spec_parse(const char *json, size_t len, const char *origin, struct sbx_spec *spec,
		   char *err, size_t errlen);

/* The same, from a file. Returns 0, -EINVAL, -ENOENT/-EACCES (cannot read) or -ENOMEM. */
int sbx_spec_load(const char *file, struct sbx_spec *spec, char *err, size_t errlen);

/*
 * Is `path` usable as code of `runtime` (enum sbx_runtime), checked without loading or running
 * it. c: an ELF shared object of this machine whose dynamic symbol table (.dynsym, .dynstr)
 * defines `handler` (NULL or "": "handle") as an exported function; python: a file or a
 * folder; exec: an executable regular file. Returns 0, -ENOEXEC (err names the file and what
 * is wrong, such as "handler 'handle' not found in f.so (...)"), -EINVAL or the -errno of
 * stat/open. `err` may be NULL. Thread-safe; nemo's C runtime uses it before dlopen.
 */
int sbx_code_check(int runtime, const char *path, const char *handler, char *err, size_t errlen);

/* Names for messages and APIs: "c", "python", "exec". */
const char *sbx_runtime_name(int runtime);

/* ---- the host: cgroups, runtime paths, shared resources ------------------------------------ */

struct sbx_host_config {
	/* the tree's directory name: under each v1 hierarchy's mount point, or inside nemod's
	 * own (delegated) cgroup on v2 ["nemo"] */
	const char *cgroup_root;
	int cgroup_version; /* enum sbx_cgroup_version (include/nemo/cgroup.h) */
	/* cores that get a parent cgroup <root>/core<N> with cpuset N [all online CPUs] */
	int n_cores;
	/* the in-sandbox runtime program [nemo-sbx-runtime next to /proc/self/exe, then
	 * build/bin/ under the current directory] */
	const char *runtime_path;
	/* python interpreter, resolved once here [the first of /usr/bin/python3.11,
	 * /usr/bin/python3 that is an ELF binary] */
	const char *python_path;
	/*
	 * Each function runs as its own unprivileged uid (and gid of the same number) from
	 * [uid_base, uid_base + uid_count): instances of a function share it, two functions
	 * never do. The range must not overflow uid_t nor hold a user or group of /etc/passwd,
	 * /etc/group. A function's uid is its name's hash in the range, probed linearly past the
	 * uids other functions hold: stable for the host's life, and across restarts unless
	 * names collided [200000, 65536].
	 */
	uint32_t uid_base;
	uint32_t uid_count;
	/*
	 * false [default]: sandboxes share one empty network namespace made at host setup
	 * (setns, no per-sandbox netns cost; unix sockets are denied by seccomp so tenants
	 * cannot meet in the abstract namespace). true: a fresh network namespace per sandbox.
	 */
	bool netns_per_sandbox;
	/*
	 * How a zygote's fork gets into its own cgroups. false [default]: on v1 the fork writes
	 * itself into them (its `tasks` files, opened by the host and handed to it), which waits
	 * for no RCU grace period; on v2, and always with true, the host writes its pid into
	 * cgroup.procs, which may wait for one (milliseconds). Either way nothing of the
	 * function's runs before it is in them, and the host checks that it is.
	 */
	bool zygote_host_attach;
	/*
	 * The longest one call waits on a core its NF reclaimed by freezing it: an instance
	 * frozen before its call ran (sbx_pool_wait_thaw()), or an invocation paused by the
	 * freezer in mid-run (sbx_freeze()), counted apart from the function's timeout_ms.
	 * Then the call ends with SBX_ERR_TIMEOUT naming the core and how long it was
	 * reclaimed (a paused instance is killed) [5000 ms]. Unbounded, a call on a core that
	 * never comes back (its NF crashed frozen) waited forever, and nemod's drain with it.
	 */
	uint32_t frozen_wait_ms;
};

struct sbx_host;

/*
 * Set up a host: pick the cgroup backend (ops table, v1 or v2; logged with the reason),
 * create <root> and one parent cgroup per core (on v2 inside this process's own cgroup, after
 * moving its processes into a leaf and enabling the controllers level by level), compile
 * the seccomp filter once, create the shared empty network namespace. `cfg` may be NULL for all defaults. Returns the host or NULL with errno (EACCES/EPERM when
 * not root, ENOENT when a controller or the runtime program is missing; on v2 a controller
 * that is not delegated is named with the unit setting that fixes it, Delegate=yes).
 */
struct sbx_host *sbx_host_new(const struct sbx_host_config *cfg);

/*
 * Destroy every sandbox still alive on this host, then remove the cgroups it created. Pools
 * on the host must be destroyed first. sbx_host_new() on a root that a crashed host left
 * behind kills and removes the sandboxes still there.
 */
void sbx_host_destroy(struct sbx_host *host);

/* Number of per-core parent cgroups. The cgroup tree's interface: include/nemo/cgroup.h. */
int sbx_host_n_cores(const struct sbx_host *host);

/* The python interpreter the host resolved. */
const char *sbx_host_python(const struct sbx_host *host);

/*
 * The uid (and gid) that function `name`'s sandboxes run as on this host, assigned at its
 * first call: the same for the host's whole life, never another function's (see
 * sbx_host_config.uid_base). Returns 0, or -ENOSPC when every uid of the range belongs to
 * another function (logged, naming the range). Thread-safe.
 */
int sbx_host_function_uid(struct sbx_host *host, const char *name, uid_t *uid);

/* Number of sandboxes alive on this host. Thread-safe. */
int sbx_host_n_sandboxes(struct sbx_host *host);

/*
 * FOR bench-sandbox ONLY. on: sandboxes created from now on get no private root but the
 * host's / read-only, as before issue 13, so that the bench measures the private root's cost
 * against the old cold start in one run. A function then sees every file of the host that
 * its uid may read: no configuration reaches this (it is not a sbx_host_config field, nemod
 * never calls it), and it is logged as a warning. Zygotes and code under /tmp are refused
 * (EINVAL) meanwhile. Not thread-safe against creations in flight.
 */
void sbx_host_bench_host_root(struct sbx_host *host, bool on);

/* ---- one sandbox ---------------------------------------------------------------------------- */

enum sbx_state {
	SBX_STATE_CREATED = 0, /* cold: isolated, runtime waiting for its code */
	SBX_STATE_READY = 1,   /* warm: code loaded, idle */
	SBX_STATE_BUSY = 2,    /* running a request */
	SBX_STATE_FROZEN = 3,  /* stopped by the cgroup freezer */
	SBX_STATE_DEAD = 4,    /* the function exited, crashed, was OOM-killed or timed out */
};

enum sbx_status {
	SBX_OK = 0,
	SBX_ERR_FUNCTION = 1,		/* the handler reported an error; message holds its text */
	SBX_ERR_TIMEOUT = 2,		/* killed at timeout_ms */
	SBX_ERR_CRASHED = 3,		/* died during the request (signal or exit) */
	SBX_ERR_OOM = 4,		/* killed by the memory cgroup at memory_mb */
	SBX_ERR_PAYLOAD_TOO_LARGE = 5,	/* request over max_payload_bytes: never sent */
	SBX_ERR_RESPONSE_TOO_LARGE = 6, /* response over max_payload_bytes: dropped */
	SBX_ERR_INIT = 7,		/* the code did not load or the handler is missing */
	SBX_ERR_STATE = 8,    /* the sandbox is not READY (frozen, dead, not initialised) */
	SBX_ERR_INTERNAL = 9, /* the platform failed (cgroup, fork, protocol) */
};

enum sbx_start_path {
	SBX_START_NONE = 0,	 /* a direct sbx_invoke() on a sandbox the caller holds */
	SBX_START_COLD = 1,	 /* no instance existed: created and initialised for this request */
	SBX_START_WARM = 2,	 /* an idle instance that had served requests before */
	SBX_START_PREWARMED = 3, /* an instance made ahead of demand that had never served */
	SBX_START_ZYGOTE = 4,	 /* no idle instance: one forked for this request from a zygote */
	SBX_START_PATHS = 5,	 /* how many there are: arrays indexed by start path */
};

/* Time of each phase of one invocation, in nanoseconds (0 when the phase did not happen). */
struct sbx_phase_times {
	uint64_t create_ns; /* sbx_create: processes, namespaces, cgroup */
	uint64_t init_ns;   /* sbx_init: load the code */
	uint64_t queue_ns;  /* waiting for an instance (pool lock, concurrency limit) */
	uint64_t run_ns;    /* request sent to response received */
};

/* The outcome of one invocation. Release with sbx_result_release(). */
/*
 * One call a function made to another with nemo_call() (include/nemo/chain.h), read back by
 * nemod after the top-level call that it was part of.
 */
struct sbx_call_record {
	char function[SBX_NAME_MAX]; /* the callee's key */
	int32_t parent;		     /* index of the call it was made within; -1: the top call */
	uint32_t depth;		     /* 1: called by the top call's function */
	enum sbx_status status;
	int32_t code;	   /* the callee's non-zero return (SBX_ERR_FUNCTION), or NEMO_CALL_* */
	uint64_t seq;	   /* in its box */
	uint64_t start_ms; /* epoch milliseconds, as the caller made it */
	uint64_t wait_ns;  /* as the caller waited: request written to reply read */
	uint64_t run_ns;   /* the callee's handler, as it measured itself */
	uint32_t req_len, resp_len;
};

struct sbx_result {
	enum sbx_status status;
	enum sbx_start_path path;
	struct sbx_phase_times times;
	char message[SBX_MSG_MAX]; /* why, for every status but SBX_OK */
	uint8_t *response;	   /* malloc'd response bytes (also for SBX_ERR_FUNCTION) */
	size_t response_len;
	/* sbx_pool_invoke: the calls the function made through nemo_call, in the order read
	 * (a call's parent comes before it), malloc'd; and how many records were lost */
	struct sbx_call_record *calls;
	uint32_t n_calls;
	uint32_t calls_lost;
};

struct sbx_sandbox;

/*
 * Create a sandbox for `spec` (copied) with its processes forked directly into a new cgroup
 * under `core`'s parent. The cost of this call is the cold part of a cold start.
 * Returns the sandbox in SBX_STATE_CREATED, or NULL with errno (EINVAL for a bad core, EAGAIN
 * when out of processes, or the errno of the failing cgroup or clone step, logged).
 */
struct sbx_sandbox *sbx_create(struct sbx_host *host, const struct sbx_spec *spec, int core);

/*
 * Load the function's code and resolve its handler (c: dlopen + dlsym; python: start the
 * interpreter and import; exec: start the program). Precondition: SBX_STATE_CREATED.
 * Returns 0 (now READY), -ENOEXEC when the code does not load or the handler is missing
 * (the reason in `err`, which may be NULL), -ETIMEDOUT when init took longer than
 * max(timeout_ms, 10 s) (interpreters load slower than they answer), -EPIPE when the sandbox
 * died (err says how), -EBUSY in the wrong state. On failure the sandbox is DEAD.
 */
int sbx_init(struct sbx_sandbox *sb, char *err, size_t errlen);

/*
 * Send one request and wait for the response, at most timeout_ms. The payload limit is
 * checked before anything is sent. `res` is always filled (status, message, response,
 * times.run_ns; path and the other times are left as the caller set them); a crash, OOM,
 * timeout or oversized response leaves the sandbox DEAD, to be destroyed.
 * Returns 0 when the invocation reached an outcome (look at res->status), or -EINVAL for
 * NULL arguments. Precondition: READY.
 */
int sbx_invoke(struct sbx_sandbox *sb, const void *req, size_t len, struct sbx_result *res);

/* Free the response bytes and clear the result. NULL is fine. */
void sbx_result_release(struct sbx_result *res);

/*
 * Freeze (cgroup freezer) and wait until the kernel reads the cgroup frozen; thaw back.
 * A READY sandbox becomes FROZEN, and sbx_invoke() on it says SBX_ERR_STATE until the thaw.
 * A BUSY one stays BUSY: its invocation pauses where it is and goes on after the thaw. The
 * invoking thread keeps waiting for the reply, and time spent frozen does not count against
 * timeout_ms (res->times.run_ns is wall time, pause included), up to the host's
 * frozen_wait_ms: an invocation paused longer is killed with the sandbox, and its result is
 * SBX_ERR_TIMEOUT naming the core and the pause. May be called from another thread than the
 * owner's.
 * sbx_freeze returns 0, -EBUSY (not READY or BUSY, already frozen, or dead), -ETIMEDOUT if
 * the freezer did not settle within 100 ms (the sandbox is thawed again, as it was), or the
 * -errno of the cgroup write. sbx_thaw returns 0, -EBUSY (not frozen) or the -errno of the
 * cgroup write.
 */
int sbx_freeze(struct sbx_sandbox *sb);
int sbx_thaw(struct sbx_sandbox *sb);

/*
 * Move the sandbox to `core`'s parent cgroup (cpuset and CPU weight of that core). Memory
 * charge and limits stay with the sandbox. Returns 0, -EINVAL for a bad core, or the -errno
 * of the cgroup write.
 */
int sbx_move(struct sbx_sandbox *sb, int core);

/* Kill every process of the sandbox, wait for them, remove its cgroup, free the handle. */
void sbx_destroy(struct sbx_sandbox *sb);

/*
 * The state, refreshed: a READY sandbox whose processes died is reported (and kept) DEAD.
 * A BUSY sandbox whose invocation is paused by the freezer still reads BUSY.
 */
enum sbx_state sbx_state(struct sbx_sandbox *sb);
const char *sbx_state_name(enum sbx_state state);
const char *sbx_status_name(enum sbx_status status);
const char *sbx_start_path_name(enum sbx_start_path path);

const struct sbx_spec *sbx_spec_of(const struct sbx_sandbox *sb);
pid_t sbx_pid(const struct sbx_sandbox *sb); /* the sandbox's init, as the host sees it */
int sbx_core(const struct sbx_sandbox *sb);
uint64_t sbx_id(const struct sbx_sandbox *sb); /* unique on its host, names its cgroup */

/*
 * Memory charged to the sandbox's cgroup (RSS, page cache, tmpfs, kernel), in bytes.
 * Returns 0 or the -errno of the cgroup read.
 */
int sbx_memory_bytes(struct sbx_sandbox *sb, uint64_t *bytes);

/* ---- zygotes ------------------------------------------------------------------------------- */

/*
 * A zygote is a sandbox of one function (its own cgroup, uid, private root, PID namespace,
 * seccomp filter, as sbx_create() makes them) that has done the expensive part of a start,
 * the python interpreter with the module imported or the shared object loaded and its
 * nemo_init() run, and then serves no request: it only makes instances. An instance is a
 * fork of it that becomes a sandbox of its own before it takes a request: new user (the
 * function's uid mapped to itself), PID, mount, IPC and UTS namespaces, its own /proc, /tmp
 * and /dev/shm, its own session, no capabilities, the host's seccomp filter, and its own
 * cgroup (created here, the fork written into it before its first request is sent). What a
 * fork shares with its siblings and its zygote is in sandbox/README.md.
 *
 * The zygote outlives its forks: sbx_destroy() on a zygote with forks alive retires it (it
 * makes no more) and it is destroyed with the last of them.
 *
 * A zygote can keep its next instance ready-made (sbx_zygote_prepare(): forked and set up on
 * spare cycles, parked in the zygote's cgroups), so that a start through it is a hand-over:
 * the fork's cgroup join, its READY and the check that it is in its cgroups.
 */

/*
 * Whether this kernel lets a zygote make its forks (they need unprivileged user namespaces).
 * Returns 0, or -ENOTSUP with `why` naming the setting and the value read from the machine
 * ("... kernel.unprivileged_userns_clone is 0 (/proc/sys/kernel/unprivileged_userns_clone)").
 * `why` may be NULL. Thread-safe.
 */
int sbx_zygote_supported(char *why, size_t len);

/*
 * Create a zygote for `spec` (c or python) on `core` and load its code. Returns it (READY,
 * sbx_invoke() refuses it), or NULL with errno: EINVAL, ENOTSUP (an exec function, or a
 * kernel that forbids unprivileged user namespaces: kernel.unprivileged_userns_clone or
 * user.max_user_namespaces 0; `err` says which), ENOEXEC (the code does not load; `err` says
 * why) or a create errno.
 */
struct sbx_sandbox *sbx_zygote_create(struct sbx_host *host, const struct sbx_spec *spec, int core,
				      char *err, size_t errlen);

/*
 * Make a READY instance of the zygote's function on `core` by forking the zygote. Its
 * times: create_ns is the whole fork, init_ns 0. With a ready fork parked
 * (sbx_zygote_prepare) that fork is handed over instead: create_ns is then the hand-over
 * alone (its cgroup join, READY and the check that it is in its cgroups); a ready fork that
 * fails is destroyed, with a warning, and a fork on demand follows. Returns it, or NULL
 * with errno (EINVAL not a zygote or a bad core, EPIPE the zygote is dead, EAGAIN it holds
 * the most forks it can, ETIMEDOUT, or the errno of the failing step; `err` says which).
 * Thread-safe for one zygote: forks are made one at a time.
 */
struct sbx_sandbox *sbx_zygote_fork(struct sbx_sandbox *zygote, int core, char *err, size_t errlen);

/*
 * Keep the zygote's next instance ready-made (its "ready fork"), to be called on spare
 * cycles: unless one is parked already, the zygote forks it and it sets itself up as a fork
 * does (its user, PID, mount, IPC and UTS namespaces, its own /proc, /tmp and /dev/shm, its
 * session, no capabilities, the host's seccomp filter; python also maps its files' pages
 * and reseeds random), then parks, still in the zygote's cgroups: its CPU time and memory
 * are the zygote's (sbx_memory_bytes() of the zygote counts it). Its own cgroup is made now
 * for the zygote's core; it joins it at its hand-over, the next sbx_zygote_fork(), and
 * nothing of the function's runs in it before. Waits until it is parked. Returns 0, or
 * -errno as sbx_zygote_fork() (EINVAL not a zygote; `err` says why). Thread-safe.
 */
int sbx_zygote_prepare(struct sbx_sandbox *zygote, char *err, size_t errlen);

/* Whether the zygote has a ready fork parked. Thread-safe. */
bool sbx_zygote_ready(struct sbx_sandbox *zygote);

/* Whether `sb` was a zygote's ready fork, handed over by sbx_zygote_fork(). */
bool sbx_from_ready_fork(const struct sbx_sandbox *sb);

/* Whether `sb` is a zygote. */
bool sbx_is_zygote(const struct sbx_sandbox *sb);

/* ---- packet mode: an instance fed by an NF's rings (issue 16, packet/README.md) ----------- */

/*
 * A packet-mode instance runs a function's batch handler over the rings an NF leased to
 * nemod (include/nemo/fn_ring.h): no requests, no frames; it consumes packets, publishes
 * replies and parks on the NF's eventfd when the ring is empty, until it dies or is
 * destroyed. It is a full sandbox, made as sbx_create() makes one (the function's uid,
 * private root, PID namespace, seccomp filter, rlimits, its own cgroup under `core`'s
 * harvest cgroup, which should be the NF lcore's CPU: the packets are cache-hot there), with
 * the lease's three fds and nothing else of nemod's. Its death (crash, OOM, kill, reclaim)
 * closes the lease (the kernel closes the socket, the only copy), the NF resets the ring,
 * and the owner learns it through sbx_packet_check() / sbx_packet_fd() and starts a
 * replacement (fn_lease_acquire() says -EAGAIN until the NF has reset the ring).
 */

/*
 * One lease of one ring, as fn_lease_acquire() gives it: the rings' memfd, the eventfd that
 * wakes the consumer, and the lease connection. sbx_packet_start() takes all three.
 */
struct sbx_packet_lease {
	int ring_fd;
	int wake_fd;
	int lease_fd;
};

struct sbx_packet_config {
	const char *handler; /* the batch handler's name [NULL: "handle_batch"] */
	uint32_t batch;	     /* at most this many packets per call, 1..256 [0: 32] */
	uint32_t spin_us;    /* an empty ring is polled this long before parking [0: 50] */
};

/* What the consumer reports of itself in the ring header (figures only, never trusted). */
struct sbx_packet_stats {
	char function[48]; /* the function the NF named the ring for */
	uint32_t lcore;	   /* the NF lcore that produces */
	uint64_t batches;  /* handler calls: a batch is the unit of a call */
	uint64_t packets;
	uint64_t replies;
	uint64_t errors; /* batches whose handler failed (their replies were dropped) */
	uint64_t parks;	 /* times it slept on the eventfd */
};

/*
 * Start a packet-mode instance of `spec` (c: a shared object exporting the batch handler,
 * include/nemo/function.h ABI 2; python: a module whose handler takes a list of bytes and
 * returns a list of bytes, str or None) on `core`, fed by `lease`. The three fds are the
 * instance's from this call on: they are closed here whether it succeeds or not, so the
 * lease lives exactly as long as the instance (a caller that keeps the ring mapped, as
 * fn_lease_acquire() leaves it, unmaps it without closing them: set its mem_fd and wake_fd
 * to -1 before fn_ring_close()). Returns the instance, serving, once its runtime has loaded
 * the code and mapped the ring (its READY), or NULL with errno: EINVAL (bad argument; `err`
 * names it), EPROTO (ring_fd is not a ring of the version this build knows), ENOTSUP (an exec
 * function), ENOEXEC (the code does not load or lacks the handler; `err` says why),
 * ETIMEDOUT, EPIPE (it died starting: `err` says how) or a create errno. `err` may be NULL.
 * Thread-safe. Undo with sbx_destroy() (or sbx_pool_packet_stop()).
 */
struct sbx_sandbox *sbx_packet_start(struct sbx_host *host, const struct sbx_spec *spec, int core,
				     const struct sbx_packet_lease *lease,
				     const struct sbx_packet_config *cfg, char *err, size_t errlen);

/*
 * Is the packet-mode instance still serving? Returns 0 while it does (running, or frozen with
 * its core), or -EPIPE once it ended, with `why` (may be NULL) saying how: "crashed: killed
 * by signal 6 (Aborted)", "out of memory: ...", "the NF closed the lease", "the NF's ring
 * indices were out of range: the ring is broken", "killed" (destroyed or stopped). Its
 * lease is over then: sbx_destroy() it and start a replacement. -EINVAL: not a packet-mode
 * instance. Does not block; for the owner's thread.
 */
int sbx_packet_check(struct sbx_sandbox *sb, char *why, size_t len);

/* A descriptor that becomes readable (poll) when the instance ends: for an event loop. */
int sbx_packet_fd(const struct sbx_sandbox *sb);

/*
 * The consumer's figures, read from the ring header (a read-only mapping the host keeps):
 * they stay readable after the instance died (until sbx_destroy()), and start again from 0
 * when the NF resets the ring for the next consumer. Returns 0 or -EINVAL (not packet mode).
 * Thread-safe.
 */
int sbx_packet_stats(const struct sbx_sandbox *sb, struct sbx_packet_stats *st);

/* Whether `sb` is a packet-mode instance (sbx_invoke() refuses it: SBX_ERR_STATE). */
bool sbx_is_packet(const struct sbx_sandbox *sb);

/* ---- keep-alive policies -------------------------------------------------------------------- */

/* What a keep-alive policy knows about one idle warm instance. */
struct sbx_keepalive_entry {
	const char *function;
	uint64_t created_ns;   /* CLOCK_MONOTONIC */
	uint64_t last_used_ns; /* when it was last released (or created, if never used) */
	uint64_t init_cost_ns; /* create + init: what evicting it costs the next request */
	uint64_t memory_bytes; /* its footprint */
	uint64_t frequency;    /* invocations of its function so far */
	double priority;       /* policy-owned (greedy-dual: clock + frequency * cost / size) */
};

/*
 * A keep-alive policy. The pool calls it under its lock, so the policy needs no locking.
 * `state` points to the pool's policy state, which begins with its struct
 * sbx_keepalive_params (a custom policy may read those).
 *  - on_idle: an instance was released (or pre-warmed) and is idle; set e->priority.
 *  - expired: should this idle instance be destroyed now, with no memory pressure?
 *  - compare: eviction order under memory pressure; < 0 when `a` goes before `b`.
 *  - on_evict: an instance was evicted for memory (greedy-dual raises its clock here).
 */
struct sbx_keepalive_ops {
	const char *name;
	void (*on_idle)(void *state, struct sbx_keepalive_entry *e, uint64_t now_ns);
	bool (*expired)(void *state, const struct sbx_keepalive_entry *e, uint64_t now_ns);
	int (*compare)(void *state, const struct sbx_keepalive_entry *a,
		       const struct sbx_keepalive_entry *b);
	void (*on_evict)(void *state, const struct sbx_keepalive_entry *e);
};

/* Fixed TTL: an idle instance lives ttl_ns after its last use; evicts least recently used. */
extern const struct sbx_keepalive_ops sbx_keepalive_ttl;
/*
 * FaaSCache's greedy-dual (Fuerst & Sharma, ASPLOS'21): priority = clock + frequency * cost /
 * size; the lowest priority is evicted first and the clock rises to it. Never expires on its
 * own; ttl_ns, if not 0, bounds idle time as well.
 */
extern const struct sbx_keepalive_ops sbx_keepalive_greedy_dual;

struct sbx_keepalive_params {
	uint64_t ttl_ns;	      /* fixed TTL [10 min]; 0 for greedy-dual = no bound */
	uint64_t memory_budget_bytes; /* all instances of the pool together [1 GiB] */
	/* true: sbx_pool_prewarm() makes (or keeps) the function's zygote first and forks the
	 * pre-warmed instances from it, so the forecast that drives pre-warming keeps zygotes
	 * on spare cycles; false [default]: pre-warming alone, from scratch */
	bool zygotes;
};

/* ---- warm pools ----------------------------------------------------------------------------- */

struct sbx_pool;

/*
 * A set of warm pools, one per deployed function, sharing a memory budget and a keep-alive
 * policy (`ka` NULL: fixed TTL; `params` NULL: defaults). Returns the pool or NULL with errno.
 * The pool keeps a pointer to `ka` and the policy state; both must outlive it.
 */
struct sbx_pool *sbx_pool_new(struct sbx_host *host, const struct sbx_keepalive_ops *ka,
			      const struct sbx_keepalive_params *params);

/* Destroy every instance of every function, then the pool. */
void sbx_pool_destroy(struct sbx_pool *pool);

/*
 * Deploy a function (spec copied; re-deploying a name replaces its spec and retires the old
 * instances). Returns 0, -EINVAL (invalid spec) or -ENOMEM. Thread-safe.
 */
int sbx_pool_deploy(struct sbx_pool *pool, const struct sbx_spec *spec);

/* Remove a function and destroy its instances. Returns 0 or -ENOENT. Thread-safe. */
int sbx_pool_undeploy(struct sbx_pool *pool, const char *name);

/*
 * Create and initialise `count` instances of `name` on `core` ahead of demand and keep them
 * idle, marked pre-warmed. Returns how many were made (>= 0), or -ENOENT (not deployed),
 * -ENOEXEC (init failed), -ENOSPC (memory budget), -ESHUTDOWN (sbx_pool_stop() ran), or a
 * create errno. Thread-safe.
 */
int sbx_pool_prewarm(struct sbx_pool *pool, const char *name, int core, int count);

/*
 * Make (or keep) a zygote of `name` (c or python) on `core` ahead of demand, within the
 * memory budget (evicting by the keep-alive policy, zygotes and idle instances alike). While
 * it is there, a request that finds no idle instance gets a fork of it (SBX_START_ZYGOTE)
 * instead of a cold start, and pre-warmed instances are forks of it. It is counted in
 * memory_bytes, expires and is evicted like an instance (an ask for it again counts as a
 * use), and a redeploy replaces it with one of the new code. Its next instance is kept
 * ready-made (sbx_zygote_prepare()), here and by sbx_pool_maintain() once a start took it,
 * the work done by the zygote on its core. Returns 1 (made), 0 (kept),
 * -ENOENT, -ENOTSUP (an exec function), -ENOSPC (memory budget), -ENOEXEC (the code does not
 * load), -ESHUTDOWN (sbx_pool_stop() ran) or a create errno. Thread-safe.
 */
int sbx_pool_zygote(struct sbx_pool *pool, const char *name, int core);

/*
 * Take an idle instance of `name` (preferring `core`; -1 for any; frozen ones are never
 * taken) or cold-start one on `core` (-1: core 0). res->path and res->times (create, init,
 * queue) say how. On success the caller owns the sandbox until sbx_pool_release(); if its
 * core is frozen before the caller invokes it, sbx_invoke() says SBX_ERR_STATE (frozen)
 * until sbx_pool_thaw_core() (sbx_pool_wait_thaw() waits for it, as sbx_pool_invoke() does).
 * Returns the
 * sandbox, or NULL with errno (ENOENT not deployed, ENOEXEC init failed, EAGAIN at the
 * concurrency limit) and res->status/message set. Thread-safe.
 */
struct sbx_sandbox *sbx_pool_acquire(struct sbx_pool *pool, const char *name, int core,
				     struct sbx_result *res);

/*
 * Give an acquired instance back: READY and FROZEN instances go idle under the keep-alive
 * policy (a frozen one is not handed out until its core is thawed), others are destroyed
 * (a crashed instance is replaced if the function had pre-warmed instances). Thread-safe.
 */
void sbx_pool_release(struct sbx_pool *pool, struct sbx_sandbox *sb);

/*
 * Wait until `sb`, acquired from `pool`, is no longer frozen with its core: at most the
 * host's frozen_wait_ms, and not at all once the pool is stopped (sbx_pool_stop()).
 * Returns 0 (not frozen: invoke it), -ETIMEDOUT (res: SBX_ERR_TIMEOUT, "not run: core 1
 * has been reclaimed by its NF for 5012 ms (its instance frozen) ...") or -ESHUTDOWN (res:
 * SBX_ERR_INTERNAL, the pool stopped). `res` may be NULL. The instance stays the caller's,
 * to release. Thread-safe.
 */
int sbx_pool_wait_thaw(struct sbx_pool *pool, struct sbx_sandbox *sb, struct sbx_result *res);

/*
 * acquire + invoke + release: the whole invocation, with path and every phase time in
 * `res`. An instance frozen with its core between acquire and invoke waits for the thaw
 * (counted in times.queue_ns; sbx_pool_wait_thaw()); one frozen during the invocation
 * pauses (see sbx_freeze()); either way at most the host's frozen_wait_ms.
 * Returns 0 when `res` holds an outcome, -EINVAL for NULL arguments. Thread-safe.
 */
int sbx_pool_invoke(struct sbx_pool *pool, const char *name, int core, const void *req, size_t len,
		    struct sbx_result *res);

/*
 * Housekeeping for the daemon's slow loop: destroy idle instances the policy says expired
 * (frozen ones too: they are killed where they stand), and dead idle ones; make the next
 * ready fork of each zygote whose last one a start took (sbx_zygote_prepare(), waiting for
 * each). Returns how many instances were destroyed. Thread-safe.
 */
int sbx_pool_maintain(struct sbx_pool *pool);

/*
 * Reclaim a core for its NF: freeze every instance of the pool on `core` (sbx_core()) with
 * sbx_freeze(), idle or acquired, and return once the kernel reads each one frozen (at most
 * about 100 ms for all together). Frozen idle instances stay in the pool but are not handed
 * out; an acquired one in the middle of an invocation pauses it (see sbx_freeze()), and an
 * acquired one not invoked yet makes sbx_pool_invoke() wait for the thaw. Instances made on
 * the core afterwards are not frozen. Pool operations wait while the freeze settles.
 * Returns how many of the core's instances are frozen now (>= 0; one that failed to freeze
 * is logged and keeps running), -errno when some failed and none is frozen, or -EINVAL for
 * a bad core. After sbx_pool_stop() the core's instances are killed instead, and the
 * return is how many. Thread-safe.
 */
int sbx_pool_freeze_core(struct sbx_pool *pool, int core);

/*
 * Thaw every frozen instance of the pool on `core`: idle ones can be handed out again,
 * paused invocations go on, and sbx_pool_invoke() calls waiting for the thaw proceed.
 * Returns how many were thawed, the -errno of the first that could not be (the others are
 * thawed), or -EINVAL for a bad core. Thread-safe.
 */
int sbx_pool_thaw_core(struct sbx_pool *pool, int core);

/*
 * sbx_packet_start() for the pool's deployed function `name` (its spec as deployed), and the
 * instance kept on the pool's list of packet-mode instances: sbx_pool_freeze_core() and
 * sbx_pool_thaw_core() reach it with the core's other instances (frozen, it stops consuming;
 * its ring fills and the NF drops or passes on, never waits), sbx_pool_stop() kills it if
 * frozen, sbx_pool_destroy() destroys it. It takes no requests and is outside the memory
 * budget and keep-alive (nemod starts one per packet trigger, not on demand). Returns it or
 * NULL with errno as sbx_packet_start() (and ENOENT: `name` not deployed, ESHUTDOWN: the
 * pool stopped); the lease's fds are closed here in every case. Thread-safe.
 */
struct sbx_sandbox *sbx_pool_packet_start(struct sbx_pool *pool, const char *name, int core,
					  const struct sbx_packet_lease *lease,
					  const struct sbx_packet_config *cfg, char *err,
					  size_t errlen);

/* Take a packet-mode instance off the pool's list and destroy it (its lease ends). */
void sbx_pool_packet_stop(struct sbx_pool *pool, struct sbx_sandbox *sb);

/*
 * The daemon is leaving (call it when its drain's deadline passed, before it joins the
 * threads that invoke): every instance of the pool frozen with its core is killed where it
 * stands and thawed, so that nothing waits for a thaw that will not come. Calls paused in
 * one, or waiting for one (sbx_pool_wait_thaw()), end at once with SBX_ERR_INTERNAL
 * ("nemod is stopping ..."); from now on sbx_pool_freeze_core() kills a core's instances
 * instead of freezing them, nothing is made ahead of demand (sbx_pool_prewarm() and
 * sbx_pool_zygote() say -ESHUTDOWN) and a crashed instance is not replaced. Instances that
 * are not frozen are left to finish; requests are still served. Returns how many were
 * killed. Thread-safe; the pool still needs sbx_pool_destroy().
 */
int sbx_pool_stop(struct sbx_pool *pool);

struct sbx_pool_stats {
	uint32_t idle;	    /* warm instances waiting, not frozen */
	uint32_t busy;	    /* acquired */
	uint32_t leased;    /* of busy: leased to functions that call them (nemo_call) */
	uint32_t frozen;    /* frozen with their core: idle (not counted in idle) or acquired */
	uint32_t prewarmed; /* idle ones that never served */
	uint64_t cold_starts;
	uint64_t warm_starts;
	uint64_t prewarmed_starts;
	uint64_t evictions;    /* for memory */
	uint64_t expirations;  /* by the keep-alive policy */
	uint64_t crashes;      /* instances that died (crash, OOM, timeout) */
	uint64_t memory_bytes; /* pool-wide (whatever `name`): what its instances measure, the
				  figure its memory budget is held to */
	uint32_t zygotes;      /* functions with a zygote kept (0 or 1 for one function) */
	uint64_t zygote_memory_bytes; /* what they measure (counted in memory_bytes too) */
	uint64_t zygotes_made;	      /* zygotes created (sbx_pool_zygote, pre-warming) */
	uint64_t zygote_starts;	      /* instances forked from a zygote for a request */
	uint64_t zygote_ready_starts; /* of which handed over from its ready fork */
	uint32_t packet;	      /* packet-mode instances on the pool's list, alive or not */
};

/* Counters of one function (`name`), or of all when `name` is NULL. Returns 0 or -ENOENT. */
int sbx_pool_stats(struct sbx_pool *pool, const char *name, struct sbx_pool_stats *st);

#endif /* NEMO_SANDBOX_H */
