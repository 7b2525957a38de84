/* gateway.h - nemod's front door: config, the daemon, and the seams the scheduler plugs into. */
#ifndef NEMO_GATEWAY_H
#define NEMO_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nemo/cluster.h"
#include "nemo/sandbox.h"
#include "nemo/scheduler.h"

#define GW_MAX_CORES	  64
#define GW_MAX_CODE_ROOTS 8
#define GW_PATH_MAX	  256

/* ---- configuration (configs/nemod.json) ----------------------------------------------------- */

enum gw_http_mode {
	GW_HTTP_THREAD_PER_CONNECTION = 0, /* a blocking invoke holds only its own connection */
	GW_HTTP_POOL = 1,		   /* epoll with `http_threads` threads */
};

struct gw_limits {
	uint32_t max_body_bytes;	    /* request bodies: 413 above */
	uint32_t max_inflight;		    /* invocations at once, all functions: 429 above */
	uint32_t max_inflight_per_function; /* running + waiting for an instance: 429 above */
	uint32_t max_connections;	    /* open HTTP connections */
	uint32_t max_connections_per_ip;    /* 0: no per-address limit */
	uint32_t header_timeout_ms;	    /* a request's headers must arrive within this */
	uint32_t connection_timeout_s;	    /* an idle connection is closed after this */
	uint32_t request_timeout_ms;	    /* a body must arrive within this: 408 */
	uint32_t blocking_timeout_ms;	    /* blocking=true gives up waiting (202) after this */
	uint32_t async_queue;		    /* accepted, not started async activations: 429 above */
	uint32_t activations_kept;	    /* activation records in memory */
};

struct gw_mqtt_config {
	bool enabled;
	char host[128];
	uint32_t port;
	char client_id[64];
	uint32_t keepalive_s;
	uint32_t reconnect_min_s; /* backoff after the broker goes away, doubling up to max */
	uint32_t reconnect_max_s;
};

/*
 * The "harvest" object: with enabled false (the default) nemod places round-robin over
 * cores.sandbox as before; with enabled true the co-scheduler (scheduler/cosched.c) follows
 * the NF cores' spare cycles. Keys and defaults in gateway/README.md, "Harvesting".
 */
struct gw_harvest_config {
	bool enabled;
	struct sched_cosched_config cs;
};

/*
 * The "cluster" object: off by default, and then a nemod is alone as before. With enabled true
 * it joins the edge cluster on etcd (cluster/README.md): the registry is shared, async
 * activations are recorded in etcd before their 202, calls go where the spare is. Keys in
 * gateway/README.md, "Cluster".
 */
struct gw_cluster_config {
	struct cl_config cl;
	bool offload;		      /* forward calls to peers by the policy (true) */
	int qos;		      /* enum cl_qos: the class of functions that name none */
	uint32_t latency_deadline_ms; /* a latency call should start within this */
	uint32_t batch_deadline_ms;   /* a batch call waits for local spare up to this */
};

struct gw_config {
	char file[GW_PATH_MAX]; /* where it was loaded from, for messages */
	char listen_host[64];
	uint16_t listen_port;
	char token_file[GW_PATH_MAX]; /* credentials: "uuid:key [namespace]" lines, or a token */
	bool function_auth;	      /* OpenFaaS function routes need them too */
	/* where open doors (OpenFaaS /function when open, MQTT), bare tokens and the store
	 * from before namespaces live; "" = the first credential's namespace */
	char default_namespace[64];
	char runtime_path[GW_PATH_MAX]; /* nemo-sbx-runtime ("": the sandbox host's search) */
	char store_dir[GW_PATH_MAX];
	int n_code_roots; /* {"path": ...} code must resolve under one of these */
	char code_roots[GW_MAX_CODE_ROOTS][GW_PATH_MAX];
	struct gw_limits limits;
	int n_housekeeping_cores; /* nemod's own threads are pinned here */
	int housekeeping_cores[GW_MAX_CORES];
	int n_sandbox_cores; /* cores that may host sandboxes */
	int sandbox_cores[GW_MAX_CORES];
	int http_mode; /* enum gw_http_mode */
	uint32_t http_threads;
	uint32_t async_workers;
	uint32_t drain_timeout_ms; /* SIGTERM: in-flight invocations get this long */
	bool journal_sync; /* answer only once the activation's record is durable (fdatasync) */
	char cgroup_root[64];
	/* sandbox.uid_base, sandbox.uid_count: the functions' uids (sbx_host_config) [0: its
	 * defaults]; sandbox.zygotes: pre-warming keeps a zygote per function and requests
	 * with no idle instance fork it (sbx_keepalive_params.zygotes) [false];
	 * sandbox.frozen_wait_ms: how long a call waits for an instance its NF's reclaim froze
	 * before it ends with a timeout naming the core (sbx_host_config) [0: 5000] */
	struct {
		uint32_t uid_base, uid_count;
		bool zygotes;
		uint32_t frozen_wait_ms;
	} sandbox;
	int keepalive_policy; /* 0 ttl, 1 greedy_dual */
	uint64_t keepalive_ttl_s;
	uint64_t memory_budget_mb;
	char log_level[16];
	struct gw_mqtt_config mqtt;
	struct gw_harvest_config harvest;
	struct gw_cluster_config cluster;
};

/* Fill `cfg` with the defaults documented in gateway/README.md. */
void gw_config_defaults(struct gw_config *cfg);

/*
 * Load nemod's JSON config. Relative token_file and store_dir are taken from the current
 * directory. On error `err` gets one line naming the file and key. Returns 0, -EINVAL or
 * the -errno of reading the file.
 */
int gw_config_load(const char *file, struct gw_config *cfg, char *err, size_t errlen);

/* Log the effective configuration, one structured line per section. */
void gw_config_log(const struct gw_config *cfg);

/* ---- mechanism: what runs invocations --------------------------------------------------------- */

/*
 * The execution backend: nemod uses gw_backend_sandbox (warm pools from the sandbox library);
 * tests plug in fakes. Every op may be called from several threads at once.
 */
struct gw_backend_ops {
	const char *name;
	int (*deploy)(void *state, const struct sbx_spec *spec);
	int (*undeploy)(void *state, const char *name);
	/* fill res always; returns 0 or -EINVAL like sbx_pool_invoke() */
	int (*invoke)(void *state, const char *name, int core, const void *req, size_t len,
		      struct sbx_result *res);
	void (*result_release)(void *state, struct sbx_result *res);
	int (*stats)(void *state, const char *name, struct sbx_pool_stats *st);
	int (*maintain)(void *state);
	/* make `count` idle instances on `core` ahead of demand; returns how many, or -errno */
	int (*prewarm)(void *state, const char *name, int core, int count);
	/* the sandbox host, owner of the cgroup tree (optional; harvesting asks it) */
	struct sbx_host *(*host)(void *state);
	/*
	 * optional (harvesting): freeze every instance on `core`, idle or in the middle of an
	 * invocation, until the kernel reads them frozen; or thaw them (sbx_pool_freeze_core(),
	 * sbx_pool_thaw_core()). Returns how many are frozen / were thawed, or -errno.
	 */
	int (*freeze_core)(void *state, int core, bool freeze);
	/* optional: the drain's deadline passed; instances frozen with their cores are killed,
	 * so no call waits for a thaw (sbx_pool_stop()) */
	void (*stop)(void *state);
	/* optional (packet triggers): a packet-mode instance of `name` fed by `lease`, whose fds
	 * it owns from the call on (sbx_pool_packet_start()); and its end */
	struct sbx_sandbox *(*packet_start)(void *state, const char *name, int core,
					    const struct sbx_packet_lease *lease,
					    const struct sbx_packet_config *cfg, char *err,
					    size_t errlen);
	void (*packet_stop)(void *state, struct sbx_sandbox *sb);
};

struct gw_backend {
	const struct gw_backend_ops *ops;
	void *state;
};

/*
 * The sandbox backend: an sbx_host with a parent cgroup per core up to the highest sandbox
 * core, and one sbx_pool with the configured keep-alive policy. Returns 0 or -errno (logged).
 */
int gw_backend_sandbox_new(const struct gw_config *cfg, struct gw_backend *be);
void gw_backend_sandbox_destroy(struct gw_backend *be);

/* ---- policy: which core and which instance? ---------------------------------------------------- */

struct gw_placement {
	int core; /* the core to run on (its warm instances preferred); -1: any core */
};

/*
 * The dispatcher. place() answers "which core and which instance?" for one invocation;
 * observe() hears how it went (start path, phase times) so that a policy can learn. The
 * default is round-robin over the sandbox cores; the harvester/co-scheduler replaces it with
 * one that follows spare cycles. Called from many threads: the policy locks what it shares.
 */
struct gw_dispatch_ops {
	const char *name;
	int (*place)(void *state, const char *function, struct gw_placement *out);
	void (*observe)(void *state, const char *function, const struct gw_placement *where,
			const struct sbx_result *res);
	/* optional: per-core Prometheus text appended to /metrics; length or -ENOSPC */
	int (*metrics)(void *state, char *buf, size_t len);
	/* optional: copy up to `max` NF cores for GET /api/v1/cores; returns how many */
	int (*cores)(void *state, struct sched_cosched_core *out, int max);
	/* optional: a sandbox that lives on `core` between calls (a packet-triggered instance)
	 * started (+1) or ended (-1) there */
	void (*resident)(void *state, int core, int delta);
};

struct gw_dispatch {
	const struct gw_dispatch_ops *ops;
	void *state;
};

/* Round-robin over `cores`. Returns 0 or -ENOMEM. */
int gw_dispatch_rr_new(const int *cores, int n_cores, struct gw_dispatch *d);
void gw_dispatch_rr_destroy(struct gw_dispatch *d);

/*
 * The harvesting dispatcher: a co-scheduler over cfg->harvest whose sandboxes are `be`'s
 * (which must have prewarm, stats and host; without freeze_core, reclaim can only
 * move sandboxes, never freeze them). Invocations go where the NF cores have
 * spare (housekeeping core: cfg->housekeeping_cores[0], else 0). Returns 0, -EINVAL (bad
 * harvest config, logged) or -ENOMEM.
 */
int gw_dispatch_harvest_new(const struct gw_config *cfg, const struct gw_backend *be,
			    struct gw_dispatch *d);
void gw_dispatch_harvest_destroy(struct gw_dispatch *d);

/* ---- the daemon --------------------------------------------------------------------------------- */

struct gw_daemon;

/*
 * One nemod per store and per cgroup_root: create the store and take <store>/.nemod.lock and
 * /run/nemo/cgroup-<cgroup_root>.lock (flock, with the pid). Call it before anything touches
 * the sandbox cgroups (the sandbox host removes what it takes for a crashed run's leftovers);
 * gw_daemon_new() adopts the locks. Returns 0, -EBUSY (logged, naming the holder's pid) or
 * -errno.
 */
int gw_store_lock(const struct gw_config *cfg);

/*
 * Build the daemon: read the token, load every function in the store and deploy it on
 * `backend`, start async workers. Nothing listens until gw_daemon_start(). `backend` and
 * `dispatch` must outlive the daemon. Returns the daemon or NULL with errno (logged).
 */
struct gw_daemon *gw_daemon_new(const struct gw_config *cfg, const struct gw_backend *backend,
				const struct gw_dispatch *dispatch);

/* Listen for HTTP and connect to the MQTT broker. Returns 0 or -errno (logged). */
int gw_daemon_start(struct gw_daemon *d);

/* Run housekeeping (keep-alive expiry) until gw_daemon_request_stop(). */
void gw_daemon_run(struct gw_daemon *d);

/* Ask gw_daemon_run() to return. Async-signal-safe. */
void gw_daemon_request_stop(struct gw_daemon *d);

/*
 * Stop taking requests, let in-flight and queued invocations finish for up to
 * drain_timeout_ms, end every activation still queued as "cancelled", then stop listening.
 * Returns the number of activations cancelled.
 */
int gw_daemon_drain(struct gw_daemon *d);

void gw_daemon_destroy(struct gw_daemon *d);

/* The port the daemon listens on (useful with listen port 0). */
uint16_t gw_daemon_port(const struct gw_daemon *d);

/* ---- a small HTTP/1.1 client (nemoctl, tests, benchmarks) --------------------------------------- */

struct gw_http_response {
	int status;
	char *body; /* malloc'd, NUL-terminated */
	size_t body_len;
	char content_type[64];
};

/*
 * One request over a fresh TCP connection, "Connection: close". `token` adds a bearer
 * Authorization header when not NULL. Returns 0 (resp filled; free with
 * gw_http_response_release()), -ECONNREFUSED and friends, -ETIMEDOUT after timeout_ms, or
 * -EPROTO for a reply that is not HTTP.
 */
int gw_http_request(const char *host, uint16_t port, const char *method, const char *path,
		    const char *token, const void *body, size_t len, int timeout_ms,
		    struct gw_http_response *resp);
/* gw_http_request() with more request headers ("Key: value\r\n" lines, or NULL). */
int gw_http_request_headers(const char *host, uint16_t port, const char *method, const char *path,
			    const char *token, const char *headers, const void *body, size_t len,
			    int timeout_ms, struct gw_http_response *resp);
void gw_http_response_release(struct gw_http_response *resp);

#endif /* NEMO_GATEWAY_H */
