/* cluster.h - nemods as one edge cluster: an etcd v3 client, the shared state, the offload policy. */
#ifndef NEMO_CLUSTER_H
#define NEMO_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CL_MAX_ENDPOINTS 8
#define CL_NAME_MAX	 64
#define CL_ADDR_MAX	 128
#define CL_MAX_CORES	 64
#define CL_MAX_PEERS	 64

/* ---- an etcd v3 client over etcd's HTTP/JSON gateway (etcd 3.4: /v3/...) ------------------------ */

struct cl_etcd;

/*
 * A client of the etcd members at `endpoints` ("http://host:port"). Nothing is sent yet. Each
 * request goes to the endpoint that answered last; a member that cannot be reached, times out
 * (`timeout_ms`) or has no leader is left for the next one, in order. Thread-safe: requests
 * from several threads run at once over a small pool of connections. Returns the client or
 * NULL with errno (EINVAL: no endpoint, or one that is not http://host:port, logged).
 */
struct cl_etcd *cl_etcd_new(const char *const *endpoints, int n, int timeout_ms);

#define CL_PATH_MAX 256

/*
 * How to reach etcd when it is secured. Strings may be NULL or "" (not used).
 *   ca_file: PEM CA certificates that sign the members' (https:// endpoints; default: the
 *     system's store); cert_file and key_file: this client's certificate, for members started
 *     with --client-cert-auth (the HTTP gateway does not take its common name as a user);
 *   user, password: an etcd user (auth enabled): the client logs in (/v3/auth/authenticate)
 *     and sends the token in each request's Authorization header, logging in again when etcd
 *     has dropped it (unused for --auth-token-ttl).
 */
struct cl_etcd_security {
	const char *ca_file, *cert_file, *key_file;
	const char *user, *password;
};

/*
 * cl_etcd_new(), with https:// endpoints and etcd's auth. NULL or EINVAL (logged, naming the
 * field): a file that cannot be read, a certificate without its key, a user without a
 * password. A refused login or request is -EACCES, logged with etcd's message.
 */
struct cl_etcd *cl_etcd_new_secure(const char *const *endpoints, int n, int timeout_ms,
				   const struct cl_etcd_security *sec);
void cl_etcd_destroy(struct cl_etcd *e);

/* "http://a:1,http://b:2": the endpoints, for messages. */
const char *cl_etcd_endpoints(const struct cl_etcd *e);

/*
 * Wait until one member answers (a read of `key`, which the client's user may read; NULL:
 * /nemo-ready-probe), retrying with a backoff from 50 ms doubling to 2 s, for at most
 * max_wait_ms (0: one round over the endpoints). Each failed round is logged once with the
 * endpoints tried and why. Returns 0 or the last error (-ECONNREFUSED, -ETIMEDOUT,
 * -EHOSTUNREACH, -EAGAIN: no leader), or -EACCES at once: etcd refused this client (its user,
 * password or permissions), which waiting does not change.
 */
int cl_etcd_wait_ready(struct cl_etcd *e, int max_wait_ms, const char *key);

/* One key-value pair as etcd holds it. */
struct cl_kv {
	char *key;
	uint8_t *value; /* NUL-terminated beyond value_len */
	size_t value_len;
	int64_t create_rev, mod_rev, version, lease;
};

struct cl_kvs {
	struct cl_kv *kv;
	int n;
	int64_t revision; /* of the store when read */
	bool more;
};
void cl_kvs_release(struct cl_kvs *kvs);

/*
 * Read `key`, or every key under it with `prefix`. Linearizable (served through the leader).
 * Returns 0 (out filled, n may be 0), or -errno: -ECONNREFUSED/-ETIMEDOUT/-EHOSTUNREACH when
 * no endpoint answered (logged, naming them), -EAGAIN (no leader), -EPROTO (an answer that is
 * not etcd's), -EIO (etcd refused the request: logged with its message).
 */
int cl_etcd_get(struct cl_etcd *e, const char *key, bool prefix, struct cl_kvs *out);
/* Put `len` bytes at `key`, under `lease` (0: none); *rev (optional) gets the new revision. */
int cl_etcd_put(struct cl_etcd *e, const char *key, const void *val, size_t len, int64_t lease,
		int64_t *rev);
/* Delete `key` (or the prefix); *deleted (optional) gets how many went. */
int cl_etcd_delete(struct cl_etcd *e, const char *key, bool prefix, int64_t *deleted);

enum cl_cmp_target {
	CL_CMP_VERSION = 0, /* how many times the key was written since created; 0: absent */
	CL_CMP_CREATE,	    /* revision that created it */
	CL_CMP_MOD,	    /* revision that last wrote it */
	CL_CMP_VALUE,
};

enum cl_cmp_result {
	CL_CMP_EQUAL = 0,
	CL_CMP_GREATER,
	CL_CMP_LESS,
	CL_CMP_NOT_EQUAL,
};

struct cl_cmp {
	const char *key;
	enum cl_cmp_target target;
	enum cl_cmp_result result;
	int64_t number; /* VERSION, CREATE, MOD */
	const void *value;
	size_t value_len; /* VALUE */
};

enum cl_op_kind {
	CL_OP_PUT = 0,
	CL_OP_DELETE,
	CL_OP_GET,
};

struct cl_op {
	enum cl_op_kind kind;
	const char *key;
	const void *value;
	size_t value_len;
	int64_t lease;
	bool prefix; /* DELETE and GET */
};

/*
 * One transaction: if every compare holds, run `ok`, else `fail`. *succeeded tells which;
 * *rev (optional) the store's revision after it (the revision of its puts when it wrote);
 * `ranges` (optional) gets the kvs of the GET ops of the branch that ran, in order. etcd
 * refuses more than 128 ops per branch by default (-E2BIG). Errors as cl_etcd_get().
 */
int cl_etcd_txn(struct cl_etcd *e, const struct cl_cmp *cmp, int n_cmp, const struct cl_op *ok,
		int n_ok, const struct cl_op *fail, int n_fail, bool *succeeded, int64_t *rev,
		struct cl_kvs *ranges);

/* A lease of ttl_s seconds. Returns 0 (*id set) or -errno as above. */
int cl_etcd_lease_grant(struct cl_etcd *e, int ttl_s, int64_t *id);
/* Renew it: *ttl_left (optional) gets its TTL. Returns 0, -ENOENT (expired or revoked), -errno. */
int cl_etcd_lease_keepalive(struct cl_etcd *e, int64_t id, int *ttl_left);
/* Revoke it: its keys go at once. Returns 0, -ENOENT, or -errno. */
int cl_etcd_lease_revoke(struct cl_etcd *e, int64_t id);

/* What a call to etcd does there. */
enum cl_req_kind {
	CL_REQ_WRITE =
		0, /* a raft proposal: put, delete, a txn with a put or delete, lease grant/revoke */
	CL_REQ_READ,  /* range, read-only txn */
	CL_REQ_RENEW, /* lease keepalive: served by the leader, not replicated through raft */
	CL_REQ_KINDS,
};

#define CL_LATENCY_BUCKETS 11
/* Upper bounds (s) of the call latency buckets; the last bucket (+Inf) is beyond them. */
extern const double cl_latency_bounds_s[CL_LATENCY_BUCKETS];

/* What the client did, for the etcd cost figures and /metrics. Counters only grow. */
struct cl_etcd_stats {
	uint64_t calls[CL_REQ_KINDS]; /* calls made, by kind (each may try several members) */
	uint64_t errors;	      /* calls that failed on every member they tried */
	uint64_t requests;	      /* HTTP requests sent (tries on each member) */
	uint64_t bytes_out, bytes_in; /* request and answer bodies */
	uint64_t watch_restarts;      /* watch streams that broke or went silent and reopened */
	uint64_t latency[CL_LATENCY_BUCKETS + 1]; /* calls per latency bucket (not cumulative) */
	double latency_sum_s;
};
void cl_etcd_stats(const struct cl_etcd *e, struct cl_etcd_stats *st);

/*
 * Did the last call reach a member? False after a call that no member answered at all
 * (unreachable, timed out: the node is cut off from etcd), true again after the next answer.
 */
bool cl_etcd_reachable(const struct cl_etcd *e);

/*
 * Does any member answer at all (GET /version, which needs no leader)? Asks them all at once,
 * each within timeout_ms, and sets what cl_etcd_reachable() says. Returns how many answered
 * (it stops at the first), or -ENOMEM. Tells a member cut off from this node from a cluster
 * electing a leader: both leave a write unanswered for a while.
 */
int cl_etcd_probe(struct cl_etcd *e, int timeout_ms);

/*
 * A watch on the keys from `key` up to `range_end` (NULL: every key under the prefix `key`). It
 * starts with a snapshot (a range read, handed to fn with snapshot true: the consumer replaces
 * its view), then streams changes from the next revision. When the stream breaks, or has been
 * silent for idle_ms (0: never; a member cut off from the others keeps a stream open and
 * silent), it reconnects to the next endpoint, with a backoff, from the revision after the last
 * event seen; when etcd has compacted that away it takes a new snapshot. fn runs on the watch's
 * own thread, one batch at a time.
 */
struct cl_watch_event {
	bool deleted;
	const struct cl_kv *kv; /* deleted: only key and mod_rev */
};
typedef void (*cl_watch_fn)(void *arg, bool snapshot, const struct cl_watch_event *ev, int n,
			    int64_t revision);
struct cl_watch;
/* Returns the watch or NULL with errno (the first snapshot failed: logged). */
struct cl_watch *cl_watch_start(struct cl_etcd *e, const char *key, const char *range_end,
				int idle_ms, cl_watch_fn fn, void *arg);
/* Stop it; fn is not running and will not run once this returns. */
void cl_watch_stop(struct cl_watch *w);

/* The hex sha256 of `len` bytes (OpenSSL), as function records carry it. */
void cl_sha256_hex(const void *data, size_t len, char hex[65]);

/* ---- forwarding to a peer nemod ------------------------------------------------------------------- */

#define CL_HTTP_MAX_HEADERS 24

struct cl_http_reply {
	int status;
	char *body; /* malloc'd, NUL-terminated */
	size_t len;
	char content_type[128];
	char activation_id[48]; /* X-Activation-Id or X-Call-Id */
	char node[CL_NAME_MAX]; /* X-Nemo-Node: the node that answered */
	/* every header of the answer (the first CL_HTTP_MAX_HEADERS; longer values cut) */
	int n_headers;
	struct {
		char name[64];
		char value[256];
	} headers[CL_HTTP_MAX_HEADERS];
};
void cl_http_reply_release(struct cl_http_reply *r);

/*
 * One HTTP request to the nemod at `address` (host:port) over a kept-alive connection from a
 * small process-wide pool: `path` with its query, `headers` as "Name: value" lines ("Name:"
 * drops a header libcurl would add itself, such as Accept). HEAD expects no body. Returns 0
 * (out filled, whatever the status) or -errno when no answer came (logged, rate-limited).
 */
int cl_http_forward(const char *address, const char *method, const char *path,
		    const char *const *headers, int n_headers, const void *body, size_t len,
		    int timeout_ms, struct cl_http_reply *out);
/*
 * The same, given up also when nothing comes for `stall_s` seconds (under 1 byte/s over them):
 * a kept-alive connection to a peer that went out of reach holds no request for timeout_ms.
 */
int cl_http_forward_stall(const char *address, const char *method, const char *path,
			  const char *const *headers, int n_headers, const void *body, size_t len,
			  int timeout_ms, int stall_s, struct cl_http_reply *out);

/* ---- the offload policy: a pure function of what the node knows ------------------------------------ */

enum cl_qos {
	CL_QOS_LATENCY = 0, /* may be offloaded, never queued for spare */
	CL_QOS_BATCH = 1,   /* waits for local spare up to its deadline, then offloads */
};

/* Parse "latency" or "batch". Returns the class or -EINVAL. */
int cl_qos_parse(const char *s);
const char *cl_qos_name(int qos);

/* What a node looks like to the policy: its own measures, or a peer's record. */
struct cl_load {
	char name[CL_NAME_MAX];
	double spare_best;  /* the highest predicted spare_ratio of one core, 0..1 */
	double spare_total; /* sum of the cores' predicted spare_ratio (spare cores) */
	uint32_t warm;	    /* idle warm instances of the function the call is for */
	uint32_t queue;	    /* activations waiting for spare */
	uint64_t age_ms;    /* how old the record is (0 for the node itself) */
	bool has_function;  /* the function is deployed there */
	bool accepts;	    /* its lease is live and it takes forwarded calls */
};

struct cl_call {
	int qos;	      /* enum cl_qos */
	uint32_t deadline_ms; /* the answer should start within this */
	uint32_t run_ms;      /* the function's expected run time on a whole core */
	uint32_t waited_ms;   /* batch: how long it already waited for local spare */
	int hops; /* forwarded this many times: a forwarded call is never forwarded on */
};

struct cl_policy {
	uint32_t cold_ms;    /* a cold start's cost, added where no warm instance is */
	uint32_t forward_ms; /* the cost of a forward, added to every peer */
	uint32_t stale_ms;   /* peer records older than this are not trusted */
	double min_spare;    /* a core with less predicted spare is not "spare" (0.05) */
};
void cl_policy_defaults(struct cl_policy *p);

/* Why the policy decided as it did: a label for metrics (cl_reason_name). */
enum cl_reason {
	CL_WHY_LOCAL_SPARE = 0, /* local spare meets the deadline */
	CL_WHY_FORWARDED,	/* a forwarded call runs where it lands */
	CL_WHY_BATCH_WAIT,	/* batch: waiting for local spare */
	CL_WHY_BATCH_PEER,	/* batch: deadline passed, a peer has spare (offload) */
	CL_WHY_BATCH_NONE,	/* batch: deadline passed, no peer has spare */
	CL_WHY_LATENCY_DEADLINE, /* latency: a peer meets the deadline, this node does not (offload) */
	CL_WHY_LATENCY_SOONER, /* latency: a peer answers sooner (offload) */
	CL_WHY_LATENCY_LOCAL,  /* latency: no peer answers sooner; run here at once */
	CL_WHY_N,
};
/* "batch_peer", "latency_deadline"...; NULL for a value out of range. */
const char *cl_reason_name(int reason);
/* The reason of that name, or -EINVAL. */
int cl_reason_parse(const char *name);

enum cl_verdict {
	CL_RUN_LOCAL = 0, /* run here now (on spare, or on the node's overflow placement) */
	CL_WAIT_LOCAL,	  /* batch: wait here for local spare and ask again */
	CL_OFFLOAD,	  /* forward to peers[peer] */
};

struct cl_decision {
	enum cl_verdict verdict;
	int peer;	     /* CL_OFFLOAD: index into peers */
	double local_eta_ms; /* expected start-to-end here */
	double peer_eta_ms;  /* of the chosen peer, forward included */
	const char *why;     /* a static phrase for logs and records */
	enum cl_reason reason;
};

/*
 * Where should this call run? The expected time to an answer on a node is
 *   eta = (warm ? 0 : cold_ms) + run_ms / spare_best + queue * run_ms / spare_total
 * (infinite without spare), plus forward_ms on a peer. Local runs when its eta meets the
 * deadline. Otherwise a latency call goes to the peer with the lowest eta (warm ones win by
 * cold_ms, then the most spare) if that is sooner than here, else runs locally at once; a batch
 * call waits locally until waited_ms reaches its deadline, then goes to the best peer if one
 * has spare, else runs locally. A forwarded call (hops > 0) always runs locally. Peers that do
 * not accept, lack the function, or whose records are stale are never chosen. Pure: no I/O,
 * no clock, no locks.
 */
void cl_offload_decide(const struct cl_policy *p, const struct cl_load *local,
		       const struct cl_load *peers, int n_peers, const struct cl_call *call,
		       struct cl_decision *out);

/* ---- the cluster node: this nemod's place in the shared state -------------------------------------- */

struct cl_config {
	bool enabled;
	int n_endpoints;
	char endpoints[CL_MAX_ENDPOINTS][CL_ADDR_MAX];
	char node[CL_NAME_MAX];	   /* this node's name, unique in the cluster */
	char address[CL_ADDR_MAX]; /* host:port where peers reach this nemod's HTTP API */
	char prefix[64];	   /* every key lives under it ("/nemo") */
	/* a secured etcd (cl_etcd_security): TLS files for https:// endpoints, an etcd user */
	char ca_file[CL_PATH_MAX], cert_file[CL_PATH_MAX], key_file[CL_PATH_MAX];
	char user[CL_NAME_MAX], password[128];
	uint32_t lease_ttl_s;	  /* node records live this long without a keepalive (5) */
	uint32_t publish_ms;	  /* node records are written at most this often (250) */
	uint32_t batch_ms;	  /* accept records wait this long for company (2) */
	uint32_t start_batch_ms;  /* start records, and ends with a route to reach (20) */
	uint32_t end_batch_ms;	  /* other end records: nobody waits for them (50) */
	uint32_t inline_code_max; /* code up to this many bytes is stored in etcd (256 KiB) */
	uint32_t timeout_ms;	  /* one etcd request (1000) */
	uint32_t start_wait_ms;	  /* wait this long for etcd at start, retrying (10000) */
	uint32_t results_ttl_s;	  /* terminal records are kept in etcd this long (3600) */
	struct cl_policy policy;
};
void cl_config_defaults(struct cl_config *c);

/* The record versions this build writes and reads: a record of another version is ignored. */
#define CL_NODE_RECORD_V 1
#define CL_FN_RECORD_V	 1
#define CL_ACT_RECORD_V	 1

/* A node as its record says (and as the API shows it). */
struct cl_node_info {
	char name[CL_NAME_MAX];
	char address[CL_ADDR_MAX];
	int n_cores;
	int cores[CL_MAX_CORES];
	double spare[CL_MAX_CORES]; /* predicted spare_ratio per core */
	uint32_t queue;
	uint64_t updated_ms; /* epoch ms of the record */
	uint64_t seen_ms;    /* epoch ms this node read it */
	char *warm;	     /* JSON object {"function": idle warm instances} (malloc'd) */
	char *functions;     /* JSON array of deployed names (malloc'd) */
};
void cl_node_info_release(struct cl_node_info *n);

/* What this node publishes about itself; the cluster copies it. */
struct cl_local_load {
	int n_cores;
	int cores[CL_MAX_CORES];
	double spare[CL_MAX_CORES];
	uint32_t queue;
	const char *warm_json;	    /* {"fn": n, ...} or NULL */
	const char *functions_json; /* ["fn", ...] or NULL */
};

/* A function as the registry in etcd holds it. */
struct cl_fn_record {
	char name[CL_NAME_MAX];
	uint64_t version; /* the deploying node's version number */
	char owner[CL_NAME_MAX];
	char owner_address[CL_ADDR_MAX];
	uint64_t deployed_ms;
	char *spec;    /* the deploy request body as JSON text (malloc'd) */
	uint8_t *code; /* inline code, or NULL: fetch it from the owner */
	size_t code_len;
	char code_sha[65]; /* hex sha256 of the code */
	size_t code_size;
};
void cl_fn_record_release(struct cl_fn_record *r);

/* An activation record: accepted or running (in flight), or terminal. */
struct cl_act_record {
	char id[40];
	char function[CL_NAME_MAX];
	char node[CL_NAME_MAX];	  /* who runs it (owns it) now */
	char origin[CL_NAME_MAX]; /* who accepted it */
	char state[24];		  /* accepted, running, or a terminal status name */
	uint64_t accepted_ms, ended_ms, adopted_ms; /* epoch ms */
	uint8_t *payload;			    /* in flight: the request bytes (malloc'd) */
	size_t payload_len;
	uint8_t *result; /* terminal: the result when it fits */
	size_t result_len;
	char *extra; /* JSON object the gateway stores beside (trigger, qos...), malloc'd or NULL */
	int64_t mod_rev;
	bool adopted;
};
void cl_act_record_release(struct cl_act_record *r);

/*
 * What the cluster asks of its nemod. Called from the cluster's threads (the watch, the
 * adopter); each must be thread-safe and must not call back into the cluster synchronously
 * except through the functions documented as safe.
 */
struct cl_hooks {
	/* a function was deployed (or replaced) on another node: serve it. Returns 0 or -errno */
	int (*fn_deployed)(void *arg, const struct cl_fn_record *rec);
	/* a function was deleted on another node */
	void (*fn_deleted)(void *arg, const char *name);
	/* run this activation (adopted from a dead node): queue it. Returns 0 or -errno */
	int (*adopt)(void *arg, const struct cl_act_record *rec);
	/* this node's current load, for its record */
	void (*load)(void *arg, struct cl_local_load *out);
	void *arg;
	/*
	 * deliver this terminal record's result to its route (rec->extra), for a node that may
	 * have died before it did; call cl_act_delivered() once done. Must not block (the
	 * adopter's thread keeps the lease). NULL: routes of dead nodes are dropped.
	 */
	int (*deliver)(void *arg, const struct cl_act_record *rec);
};

struct cl_node;

/*
 * Join the cluster: connect to etcd (waiting up to start_wait_ms, retrying with a backoff;
 * -ECONNREFUSED etc. after that, the endpoints named in the log), take a lease, write this
 * node's record (-EEXIST when a live node already has the name), read the registry (each
 * function goes to hooks->fn_deployed) and start the watches, the keepalive and the record
 * batcher. Returns the node or NULL with errno.
 */
struct cl_node *cl_node_join(const struct cl_config *cfg, const struct cl_hooks *hooks);
/* Leave: stop the threads, revoke the lease (the record goes at once). */
void cl_node_leave(struct cl_node *n);
const char *cl_node_name(const struct cl_node *n);
struct cl_etcd *cl_node_etcd(struct cl_node *n);

/*
 * Is the node in the cluster right now: its lease renewed within the TTL and its records
 * writable? Cheap (no I/O). *why gets a static phrase when not.
 */
bool cl_node_healthy(struct cl_node *n, const char **why);

/* Write this node's record now (normally the publisher does it at most every publish_ms). */
int cl_node_publish(struct cl_node *n);

/* Copy the live nodes (this one included), sorted by name. Returns how many (≤ max). */
int cl_node_list(struct cl_node *n, struct cl_node_info *out, int max);

/*
 * Put a function into the registry: every node hears of it through its watch. `code` is stored
 * inline when it is at most inline_code_max bytes, else the record names this node as its
 * owner (peers fetch it from there). Returns 0 or -errno (-EIO: etcd refused; logged).
 */
int cl_node_fn_publish(struct cl_node *n, const char *name, uint64_t version, const char *spec,
		       const void *code, size_t code_len);
/* Remove it from the registry. Returns 0, -ENOENT or -errno. */
int cl_node_fn_unpublish(struct cl_node *n, const char *name);

/*
 * Activation records. Each write joins the current batch, which goes as one txn when the first
 * of its writes has waited its window (batch_ms, start_batch_ms, end_batch_ms); every txn is
 * fenced on this node's registration (its record's create revision), so a node that lost its
 * lease writes nothing.
 *   accept: the activation is in etcd, owned by this node (before its 202). -ENOLINK: this node
 *     is not in the cluster now (lease lost, cut off from etcd): the caller must refuse the
 *     call; -ETIMEDOUT: no answer within batch_ms + timeout_ms: refuse it too (a record written
 *     after all is deleted again when etcd answers).
 *   start: may it run? 0 yes (it is marked running); -ESTALE it was adopted by another node
 *     (do not run it); -ENOLINK, -ETIMEDOUT as above (it stays accepted: try again later).
 *   end: the terminal record (result kept when ≤ 64 KiB) replaces the in-flight one. Without
 *     a route it returns at once and the record follows within end_batch_ms (a node that dies
 *     meanwhile leaves it running: it ends "interrupted"). With one, it returns once written,
 *     and the in-flight record stays, "ended", until cl_act_delivered(): the result has
 *     reached its route. If the node dies first, the node that adopts the record delivers it.
 * `route` is a JSON object (callback, reply topic) stored beside, or NULL. Returns 0 or -errno.
 */
int cl_act_accept(struct cl_node *n, const char *id, const char *function, const void *payload,
		  size_t len, const char *route);
int cl_act_start(struct cl_node *n, const char *id);
int cl_act_end(struct cl_node *n, const char *id, const char *status, const void *result,
	       size_t len);
/*
 * The result of an ended activation reached its route (or was tried: the route's own answer
 * does not matter): its in-flight record goes, in a later txn. A no-op for one without a route.
 * Returns 0 or -ENOMEM.
 */
int cl_act_delivered(struct cl_node *n, const char *id);
/* Wait until every record write queued before this call is committed or failed. */
int cl_node_flush(struct cl_node *n);
/*
 * Read an activation's record wherever it is (in flight or terminal). Returns 0, -ENOENT or
 * -errno.
 */
int cl_act_lookup(struct cl_node *n, const char *id, struct cl_act_record *out);

/*
 * Adopt the in-flight activations of nodes that have no live record: one txn per batch that
 * holds only while the dead node is still absent and each record unchanged, so each is adopted
 * by one node. Accepted ones go to hooks->adopt; running ones end as "interrupted" (they may
 * have run: not run again). Runs by itself when a node's record goes and every lease TTL.
 * Returns how many this node adopted, or -errno.
 */
int cl_node_adopt_orphans(struct cl_node *n);

/* Functions' code fetched from their owners by the nemod, which counts (the metrics show). */
struct cl_fetch_stats {
	uint64_t ok;	  /* fetches that got the code */
	uint64_t failed;  /* fetches that did not: unreachable, refused, timed out, sha256 wrong */
	uint64_t retries; /* fetches that were retries of a failed one */
	uint32_t waiting; /* registry functions whose code this node waits for now */
};

struct cl_stats {
	uint64_t txns;	  /* activation-record txns committed */
	uint64_t act_ops; /* activation-record operations in them */
	uint64_t accepted, started, ended, adopted, interrupted, fenced;
	uint64_t delivered;    /* in-flight records removed once their route heard the result */
	uint64_t redelivered;  /* results of dead nodes' activations handed to deliver */
	uint64_t cancelled;    /* accepts refused to their callers, found written, deleted */
	uint64_t node_records; /* this node's record written */
	uint64_t node_records_alone; /* of which alone in a txn (nothing to ride with) */
	struct cl_etcd_stats etcd;
	uint64_t offloads[2][CL_WHY_N]; /* calls sent to peers [0], taken from them [1] */
	uint64_t offload_failures;	/* sent, but the peer did not answer: run here */
	uint32_t nodes_alive;		/* live records, this node's included */
	uint64_t ignored_records;	/* wrong version or malformed */
	uint64_t last_adoption_ms;   /* time from the death being seen to the adoption committed */
	struct cl_fetch_stats fetch; /* as the nemod last told (cl_node_note_fetches) */
};
void cl_node_stats(struct cl_node *n, struct cl_stats *st);

/* The nemod's code fetch counts, as they are now (they replace the last ones). */
void cl_node_note_fetches(struct cl_node *n, const struct cl_fetch_stats *fs);

/* A call this node sent to a peer (in false) or took from one (in true), for the reason. */
void cl_node_note_offload(struct cl_node *n, bool in, int reason, bool failed);

/*
 * Append this node's nemo_cluster_* metrics (Prometheus text) to *buf (malloc'd, *len used of
 * *cap; grown with realloc). n NULL (not in a cluster): nothing. Returns 0 or -ENOMEM.
 */
int cl_node_metrics(struct cl_node *n, char **buf, size_t *len, size_t *cap);

/* The JSON of a node record as written (tests write ones of other versions by hand). */
char *cl_node_record_json(const struct cl_config *cfg, const struct cl_local_load *load,
			  uint64_t now_ms);

#endif /* NEMO_CLUSTER_H */
