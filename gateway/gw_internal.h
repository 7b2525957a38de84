/*
 * gw_internal.h - the gateway's private types. Layers, top down: the transport (http.c, mqtt.c)
 * hands requests to a front door (api_native.c, api_openwhisk.c, api_openfaas.c, metrics.c),
 * which calls the function service (service.c: registry, deploy, invoke, async queue,
 * activations, logs). The service knows no protocol: it returns -errno with a message.
 */
#ifndef NEMO_GW_INTERNAL_H
#define NEMO_GW_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "nemo/gateway.h"

struct cfg_ctx;

#define GW_MOD "gateway"

/* Names are path components and MQTT/metric labels: keep them boring. */
#define GW_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

#define GW_MAX_TOPICS  8
#define GW_TOPIC_MAX   128
#define GW_ID_LEN      32 /* activation ids: 32 hex digits, as OpenWhisk */
#define GW_MAX_PREWARM 64
#define GW_NS_MAX      64 /* a namespace's name, with its NUL */

/* ---- metrics ------------------------------------------------------------------------------------- */

/* upper bounds in seconds; one more bucket for +Inf */
#define GW_HIST_BUCKETS 18
extern const double gw_hist_bounds[GW_HIST_BUCKETS - 1];

struct gw_hist {
	_Atomic uint64_t bucket[GW_HIST_BUCKETS]; /* not cumulative; summed when rendered */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_ns;
};

enum gw_phase {
	GW_PHASE_TOTAL = 0, /* what the caller waited: queue + create + init + run */
	GW_PHASE_QUEUE,
	GW_PHASE_CREATE,
	GW_PHASE_INIT,
	GW_PHASE_RUN,
	GW_N_PHASES,
};

/* Terminal activation states, and the two before them. */
enum gw_act_status {
	GW_ACT_ACCEPTED = 0,
	GW_ACT_RUNNING,
	GW_ACT_SUCCESS,
	GW_ACT_APP_ERROR, /* the handler reported an error */
	GW_ACT_TIMEOUT,
	GW_ACT_CRASHED,	    /* died: signal, exit or OOM */
	GW_ACT_REJECTED,    /* payload too large, response too large */
	GW_ACT_INTERNAL,    /* the platform failed (init, fork, cgroup) */
	GW_ACT_CANCELLED,   /* queued when nemod shut down */
	GW_ACT_INTERRUPTED, /* running when nemod died: not run again (at most once) */
	GW_ACT_N_STATUS,
};

struct gw_fn_metrics {
	_Atomic uint64_t invocations[GW_ACT_N_STATUS];
	_Atomic uint64_t starts[SBX_START_PATHS]; /* by enum sbx_start_path */
	struct gw_hist phase[GW_N_PHASES];
};

void gw_hist_observe(struct gw_hist *h, uint64_t ns);

/* ---- functions ------------------------------------------------------------------------------------ */

struct gw_mqtt_trigger {
	int n_topics;
	char topics[GW_MAX_TOPICS][GW_TOPIC_MAX];
	char reply_topic[GW_TOPIC_MAX];
	int qos;
};

/*
 * A function fed by an NF's ring (packet.c): the document's "packet" key. The rules (match,
 * payload, reply) live in the NF's config; this says which NF, which lcore, how many
 * instances and how they call the batch handler.
 */
struct gw_packet_trigger {
	bool on;
	char nf[GW_PATH_MAX]; /* as given: a socket path, or an NF name */
	char socket[108];     /* the NF's fn_socket it resolves to */
	char function[48];    /* the NF's name of the ring [the function's name] */
	int lcore;	      /* the NF lcore, or -1: any lcore whose ring is free */
	int core;	      /* the CPU its instances run on, or -1: the lcore's number */
	uint32_t batch;	      /* packets per call, 1..256 */
	uint32_t spin_us;     /* an empty ring is polled this long before parking */
	char handler[64];     /* the batch handler */
	int instances;	      /* consumers kept running, one ring each */
	bool packets_only;    /* its code has no request handler: calls are refused */
};

/* One deployed function. Reference-counted: an invocation holds it while it runs. */
struct gw_function {
	struct gw_function *next;
	atomic_int refs;
	bool deleted;
	struct sbx_spec spec; /* spec.name is the key (gw_fn_key) */
	char ns[GW_NS_MAX];   /* the namespace and name people see */
	char name[SBX_NAME_MAX];
	struct gw_mqtt_trigger mqtt;
	struct gw_packet_trigger packet;
	int prewarm;	    /* instances made ahead of demand at deploy and at start */
	char *doc;	    /* the stored JSON document (spec + code path + triggers), for GET */
	cJSON *parameters;  /* default parameters, merged under an invocation's JSON object */
	cJSON *annotations; /* [{"key": ..., "value": ...}] as deployed */
	char kind[32];	    /* OpenWhisk exec.kind, or the runtime's name */
	bool dict_style;    /* python main(dict) -> dict: the payload is a JSON object */
	uint32_t log_limit; /* bytes of stdout/stderr kept per activation (0: none) */
	uint64_t version;
	int qos;		/* enum cl_qos from its document's "qos", or -1: the cluster's */
	char cluster_sha[65];	/* sha256 of its code as the cluster's registry has it */
	uint64_t cluster_stamp; /* the registry record it was deployed from (its ts) */
	/* the gate: at most spec.concurrency run; up to the per-function limit wait */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	uint32_t running;
	uint32_t waiting;
	struct gw_fn_metrics metrics;
};

/* ---- activations ----------------------------------------------------------------------------------- */

enum gw_trigger {
	GW_TRIGGER_HTTP = 0,
	GW_TRIGGER_MQTT = 1,
	GW_TRIGGER_CALL = 2, /* nemo_call from another function: its record has a cause */
};

struct gw_activation {
	char id[GW_ID_LEN + 1];
	uint64_t seq;
	char function[SBX_NAME_MAX];
	enum gw_act_status status;
	enum sbx_start_path path;
	struct sbx_phase_times times;
	uint64_t start_ms; /* epoch milliseconds: accepted */
	uint64_t end_ms;   /* terminal */
	int core;
	int trigger; /* enum gw_trigger */
	bool blocking;
	char message[SBX_MSG_MAX];
	uint8_t *result; /* the function's response bytes */
	size_t result_len;
	char *logs; /* the function's stdout/stderr lines, "<iso time> stdout: text\n" */
	size_t logs_len;
	uint64_t version; /* of the function that ran */
	char kind[32];
	uint32_t limit_timeout_ms, limit_memory_mb, limit_logs;
	bool queued;	     /* async: journaled, survives a nemod crash */
	bool clustered;	     /* recorded in etcd: its start and end go there too */
	bool adopted;	     /* taken over from a dead node (start_ms: when) */
	bool notify;	     /* interrupted by a crash: its callback or reply says so, once */
	bool journaled;	     /* blocking: its terminal record is in the journal */
	char *restored_json; /* a terminal record replayed from the journal */
	/* async work */
	uint8_t *payload;
	size_t payload_len;
	char reply_topic[GW_TOPIC_MAX];
	int qos;
	bool mqtt5;
	uint8_t correlation[128]; /* MQTT 5 correlation data, echoed on the reply */
	size_t correlation_len;
	char callback_url[256];	   /* OpenFaaS X-Callback-Url */
	char ran_on[CL_NAME_MAX];  /* in a cluster: the peer that ran it for this node */
	char cause[GW_ID_LEN + 1]; /* a nemo_call: the activation of the function that called */
};

/*
 * A bounded table of activations: slot = seq % capacity, so a lookup by id is one probe. The
 * oldest record is overwritten once it is terminal; a record still running is never evicted.
 */
struct gw_act_table {
	pthread_mutex_t lock;
	pthread_cond_t changed; /* a record reached a terminal state */
	struct gw_activation *slots;
	uint32_t capacity;
	uint64_t next_seq;
	char boot_id[17];	    /* random per start: ids never repeat across restarts */
	char default_ns[GW_NS_MAX]; /* whose functions' keys are their bare names */
	char node[CL_NAME_MAX];	    /* in a cluster: this node's name, in every record */
	/* the journal of queued activations: <store>/.activations.journal */
	int journal_fd;
	char journal_path[GW_PATH_MAX + 32];
	size_t journal_bytes;
	bool journal_sync;	  /* records are durable (fdatasync) before they are answered */
	_Atomic uint64_t written; /* lines appended so far (added to under t->lock) */
	char journal_err[160]; /* why the last append or sync failed; "" when it works (t->lock) */
	/* group commit (gw_journal_sync): one fdatasync at a time covers every line written
	 * before it began */
	pthread_mutex_t sync_lock;
	bool syncing;		      /* an fdatasync is in flight (sync_lock) */
	bool next_leader;	      /* a caller waits to lead the next one (sync_lock) */
	uint64_t sync_epoch;	      /* fdatasyncs begun (sync_lock) */
	uint64_t sync_target;	      /* `written` when the one in flight began (sync_lock) */
	_Atomic uint64_t synced;      /* lines known durable (stored under sync_lock) */
	_Atomic uint32_t sync_gen[2]; /* futex words, bumped when an epoch of that parity ends */
	uint64_t n_syncs;	      /* fdatasync calls, for the benchmark's figures (sync_lock) */
};

/*
 * The journal: every queued (async or MQTT) activation appends A (accepted, with its
 * payload), R (started) and E (terminal: the record's fields) lines, written before the
 * state change is visible; a blocking call appends its E line alone (kind 'T' asks for the
 * terminal line; older journals hold T lines with the record's JSON, still read). After a
 * crash of nemod, gw_journal_replay() restores terminal records, ends started ones as
 * interrupted (never run twice) and returns the never-started ones to be queued again (never
 * lost). A line reaches
 * the disk at the next gw_journal_sync(), which the API waits for before it answers 202 or a
 * blocking call's record (a call answered with its result alone does not wait for it). A
 * failed append is cut off again (no torn line stays) and is returned as -errno with
 * t->journal_err set. Called with t->lock held.
 */
int gw_journal_note(struct gw_act_table *t, struct gw_activation *a, char kind);
/*
 * Make every record written so far durable: group commit, so concurrent callers share one
 * fdatasync. Called without t->lock. Returns 0, or -errno with the reason in t->journal_err
 * (then the caller answers 503). A no-op when t->journal_sync is off (the benchmark's
 * baseline).
 */
int gw_journal_sync(struct gw_act_table *t);
/* Why the journal cannot be written now, copied into buf; false when it can. A failure is
 * retried here once there is room again, so a degraded nemod recovers without traffic. */
bool gw_journal_error(struct gw_act_table *t, char *buf, size_t len);
/*
 * Replay and compact the journal in `dir`, then open it for appending. *requeue gets the
 * seqs (malloc'd) of activations to queue again. Returns 0 or -errno.
 */
int gw_journal_replay(struct gw_act_table *t, const char *dir, uint64_t **requeue, size_t *n);
void gw_journal_close(struct gw_act_table *t);
/* Status, message and a copy of the result of `seq`. Returns 0 or -ENOENT (evicted). */
int gw_act_outcome(struct gw_act_table *t, uint64_t seq, enum gw_act_status *status, char *message,
		   size_t msglen, uint8_t **result, size_t *result_len);
/* The id of activation `seq` into id (empty when evicted). */
void gw_act_id_of(struct gw_act_table *t, uint64_t seq, char id[GW_ID_LEN + 1]);
/* Internal to the table: a fresh slot with a given id (NULL: a new one). t->lock held. */
struct gw_activation *gw_act_slot_new(struct gw_act_table *t, const char *id);

int gw_act_table_init(struct gw_act_table *t, uint32_t capacity);
void gw_act_table_fini(struct gw_act_table *t);
/* A new ACCEPTED record; its id is copied to id_out. Returns 0 or -EAGAIN (table full). */
int gw_act_new(struct gw_act_table *t, const char *function, int trigger, bool blocking,
	       char id_out[GW_ID_LEN + 1], uint64_t *seq_out);
/*
 * Attach an async activation's payload (copied) and routing, and append it to the journal.
 * Returns 0, -ENOMEM, -EALREADY, or the journal's -errno (t->journal_err says why).
 */
int gw_act_set_work(struct gw_act_table *t, uint64_t seq, const void *payload, size_t len,
		    const char *reply_topic);
/* Where the result of an async activation goes besides its record. */
void gw_act_set_route(struct gw_act_table *t, uint64_t seq, int qos, bool mqtt5, const void *corr,
		      size_t corr_len, const char *callback_url);
/*
 * ACCEPTED -> RUNNING. Returns 0, -EALREADY if it was not ACCEPTED (run exactly once), or
 * -EIO when a queued activation's start cannot be journaled (it stays ACCEPTED: run later).
 */
int gw_act_begin(struct gw_act_table *t, uint64_t seq, int core);
/*
 * A call a function made with nemo_call, ended already: its record, caused by activation
 * `cause`, id in id_out. Returns 0, or -EAGAIN when the table is full of live records.
 */
int gw_act_called(struct gw_act_table *t, const char *cause, const struct sbx_call_record *c,
		  uint64_t *seq_out, char id_out[GW_ID_LEN + 1]);
/*
 * Record the terminal outcome; the result bytes are copied. Returns 0, or -EALREADY when
 * the record was already terminal (its first outcome stays).
 */
int gw_act_finish(struct gw_act_table *t, uint64_t seq, enum gw_act_status status,
		  const struct sbx_result *res, const char *message);
/* Attach the function's log lines (copied) to a record. t->lock is taken. */
void gw_act_set_logs(struct gw_act_table *t, uint64_t seq, const char *logs, size_t len);
/* Describe what ran: version, kind and limits, for the record's annotations. */
void gw_act_set_function(struct gw_act_table *t, uint64_t seq, uint64_t version, const char *kind,
			 uint32_t timeout_ms, uint32_t memory_mb, uint32_t logs_bytes);
/* A JSON record of activation `id` of namespace `ns` (NULL when unknown there). */
cJSON *gw_act_json(struct gw_act_table *t, const char *ns, const char *id, bool *found_terminal);
/* Which activations a list shows: OpenWhisk's name, skip, limit, since, upto, docs. */
struct gw_act_filter {
	const char *ns;	      /* only this namespace's (NULL: all) */
	const char *function; /* a function key (NULL: all) */
	bool count;	      /* OpenWhisk's count=true: the number, not the records */
	int skip, limit;
	uint64_t since_ms, upto_ms; /* 0: unbounded */
	bool docs;		    /* whole records; else without result and logs */
};
/* The matching activations, newest first (f->count: how many match, before skip/limit). */
cJSON *gw_act_list_json(struct gw_act_table *t, const struct gw_act_filter *f);
/* Wait until `seq` is terminal or `timeout_ms` passes. Returns true when terminal. */
bool gw_act_wait(struct gw_act_table *t, uint64_t seq, uint32_t timeout_ms);
const char *gw_act_status_name(enum gw_act_status s);
/* The status gw_act_status_name() calls `name`; GW_ACT_N_STATUS for none. */
enum gw_act_status gw_act_status_by_name(const char *name);
bool gw_act_terminal(enum gw_act_status s);
/* The API's JSON record of one activation. t->lock held. */
cJSON *gw_act_record_json(const char *default_ns, const struct gw_activation *a);
enum gw_act_status gw_act_status_of(enum sbx_status s);

/* ---- the store -------------------------------------------------------------------------------------- */

/*
 * <store>/<name>/spec.json holds the function document, <store>/<name>/v<N>/<file> its code.
 * A deploy writes the new code version, then renames spec.json.tmp over spec.json: a crash
 * leaves the old or the new function, never half of one.
 */
/*
 * Modes in the store. Only nemod (root) enters it: a sandbox sees its own code through a
 * bind mount in its private root, never the store's path, so the root is 0700 and each
 * spec.json (env secrets) 0600. The code itself stays readable by the function's own uid,
 * which is harmless now that no other sandbox can see it.
 */
#define GW_STORE_ROOT_MODE 0700
#define GW_STORE_DIR_MODE  0755
#define GW_STORE_CODE_MODE 0755
int gw_store_init(const char *dir);
/* Remove version `version` of `name` (a deploy that failed after its code was written), and the
 * function's folder if that leaves it empty. */
void gw_store_discard(const char *dir, const char *name, uint64_t version);
int gw_store_write_code(const char *dir, const char *name, uint64_t version, const char *file,
			const void *code, size_t len, char *path_out, size_t path_len);
int gw_store_copy_code(const char *dir, const char *name, uint64_t version, const char *src,
		       char *path_out, size_t path_len);
int gw_store_commit(const char *dir, const char *name, const char *doc, uint64_t version);
int gw_store_remove(const char *dir, const char *name);
/*
 * Unpack a zip archive into the version's folder (path_out), and keep the archive itself there
 * as GW_STORE_ARCHIVE (what a cluster's peers fetch). Names that leave the folder, links and
 * archives over 256 MiB unpacked are refused. Returns 0, -EINVAL (why says which entry) or the
 * -errno of a write.
 */
#define GW_STORE_ARCHIVE ".nemo-archive.zip"
int gw_store_write_zip(const char *dir, const char *name, uint64_t version, const void *zip,
		       size_t len, char *path_out, size_t path_len, char *why, size_t whylen);
/* Call fn for each stored function's document. Bad entries are logged and skipped. */
int gw_store_load(const char *dir, int (*fn)(void *arg, const char *name, const char *doc),
		  void *arg);
/* Read a whole file (at most `max` bytes). Returns malloc'd bytes or NULL with errno. */
char *gw_read_file(const char *path, size_t max, size_t *len);

/* ---- credentials ----------------------------------------------------------------------------------- */

#define GW_MAX_CREDS 16

/* One line of the credentials file: "uuid:key [namespace]", or a bare token (legacy). */
struct gw_cred {
	char uuid[64];
	char key[160];
	char whole[224]; /* "uuid:key", or the bare token: what Bearer and Basic compare */
	char ns[64];	 /* the namespace `_` resolves to for this caller */
	int line;	 /* in the credentials file, for messages */
};

struct gw_creds {
	int n;
	struct gw_cred c[GW_MAX_CREDS];
};

/*
 * Parse a credentials file's text: one credential a line ("uuid:key [namespace]" or a bare
 * token of 16+ characters), '#' comments. Returns 0 or -EINVAL with err naming the line.
 */
int gw_creds_parse(const char *text, size_t len, struct gw_creds *out, char *err, size_t errlen);
/* The credential an Authorization header carries (Basic or Bearer), or NULL with *why set. */
const struct gw_cred *gw_creds_check(const struct gw_creds *c, const char *authorization,
				     const char **why);

/* ---- deploy requests: every body shape becomes one of these --------------------------------------- */

enum gw_code_kind {
	GW_CODE_NONE = 0, /* an update that keeps the deployed code */
	GW_CODE_BYTES,	  /* one file's bytes */
	GW_CODE_PATH,	  /* a file under one of the code roots */
	GW_CODE_ZIP,	  /* a zip archive, unpacked into the version's folder */
	GW_CODE_STORED,	  /* already in the store (loading at start) */
};

/*
 * A deploy, whatever the body's shape. `doc` holds nemo's native document without its code:
 * the spec keys of sbx_spec_parse() and the gateway's own (mqtt, prewarm, parameters,
 * annotations, logs_bytes, kind, handler_style). With `partial`, keys missing from doc keep
 * their deployed values.
 */
struct gw_deploy_req {
	char name[SBX_NAME_MAX];
	cJSON *doc;
	enum gw_code_kind code_kind;
	uint8_t *code; /* BYTES and ZIP, malloc'd */
	size_t code_len;
	char code_file[128];	     /* BYTES: the file name ("" for the runtime's default) */
	char code_path[GW_PATH_MAX]; /* PATH and STORED */
	bool partial;
};

void gw_deploy_req_release(struct gw_deploy_req *r);
/*
 * nemo's native body: {"runtime": ..., "code": {"base64"|"path"|"zip_base64", "filename"},
 * spec keys, "mqtt", "prewarm", ...}. `stored`: a document from the store, "code" a path.
 * Plain functions of their bytes (no connection needed). Return 0 or -EINVAL/-ENOMEM with
 * err naming the key.
 */
int gw_deploy_parse_native(const char *name, const char *body, size_t len, bool stored,
			   struct gw_deploy_req *out, char *err, size_t errlen);
/* OpenWhisk's action body: exec {kind, code, binary, main}, limits, parameters, annotations. */
int gw_deploy_parse_openwhisk(const char *name, const char *body, size_t len,
			      struct gw_deploy_req *out, char *err, size_t errlen);
/*
 * Parse JSON that nemod takes from outside or reads back from disk, as cfg_parse_json()
 * does: a key given twice anywhere, a \u0000 in a string or text after the value is an
 * error. `what` names the source in err ("request body: env.HOME: given more than once").
 * Returns the tree or NULL with err set (not logged) and errno.
 */
cJSON *gw_json_parse(const char *what, const char *text, size_t len, char *err, size_t errlen);
/* The OpenWhisk kind nemo gives a runtime, and back ("python:3" <-> python). */
const char *gw_kind_of_runtime(int runtime);

/* ---- the function service ------------------------------------------------------------------------- */

struct gw_http;
struct gw_mqtt;
struct gw_packet;

struct gw_daemon {
	struct gw_config cfg;
	struct gw_backend backend;
	struct gw_dispatch dispatch;
	struct gw_creds creds;
	char default_ns[GW_NS_MAX]; /* cfg.default_namespace, or the first credential's */
	uint64_t started_ms;
	int lock_fd;	    /* <store>/.nemod.lock, held while nemod runs */
	int cgroup_lock_fd; /* /run/nemo/cgroup-<cgroup_root>.lock, likewise */

	pthread_rwlock_t fn_lock; /* the function list; each function has its own gate */
	struct gw_function *functions;
	uint64_t next_version;
	pthread_mutex_t deploy_lock; /* serialises deploys and deletes: store + backend */

	struct gw_act_table acts;
	_Atomic uint32_t inflight;
	_Atomic uint64_t http_codes[600]; /* responses by exact status code */
	_Atomic uint64_t rejected_429;

	/* async activations: a FIFO of seqs served by worker threads */
	pthread_mutex_t q_lock;
	pthread_cond_t q_cond;
	pthread_cond_t q_idle;
	uint64_t *queue;
	uint32_t q_head, q_len, q_cap;
	uint32_t q_active; /* workers running one */
	bool q_stop;
	int n_workers;
	pthread_t *workers;

	struct gw_http *http;
	struct gw_mqtt *mqtt;
	struct gw_packet *packet;   /* the packet triggers' supervisor */
	struct gw_cluster *cluster; /* NULL unless cluster.enabled */
	/* results of MQTT-triggered activations go out here (set by the MQTT transport) */
	void (*mqtt_sink)(void *state, const char *topic, int qos, bool mqtt5, const void *corr,
			  size_t corr_len, const char *id, const void *data, size_t len);
	void (*mqtt_topics_changed)(void *state);
	void *mqtt_sink_state;
	volatile int stop;
	bool draining;
};

/*
 * Namespaces. A function's key (its sandbox spec name, store folder, journal and dispatcher
 * key) is its bare name in the default namespace, as before namespaces, and "ns.name" in
 * any other: names hold no '.', so the last '.' splits a key, and two namespaces' functions
 * of one name never meet. Returns 0, or -ENAMETOOLONG when ns.name is over 63 characters.
 */
int gw_fn_key(const char *default_ns, const char *ns, const char *name, char key[SBX_NAME_MAX]);
/* The namespace and name a key stands for. */
void gw_key_split(const char *default_ns, const char *key, char ns[GW_NS_MAX],
		  char name[SBX_NAME_MAX]);
/* A key as gw_fn_key() makes them (store folders, journal lines). */
bool gw_key_valid(const char *key);
/* Whether key belongs to namespace ns. */
bool gw_key_in_ns(const char *default_ns, const char *key, const char *ns);
/* A namespace name: [A-Za-z0-9_.-], 1..63 characters, not "_". */
bool gw_ns_valid(const char *ns);

/* Functions: lookup (by key) takes a reference; put drops it. */
struct gw_function *gw_fn_get(struct gw_daemon *d, const char *name);
void gw_fn_put(struct gw_function *fn);
bool gw_name_valid(const char *name);
/* "pkg/name" (one or more names joined by '/'): each part valid as gw_name_valid() says. */
bool gw_names_valid(const char *s);
/* Call fn for each deployed function under the list's read lock (no service calls inside). */
void gw_fn_foreach(struct gw_daemon *d, void (*fn)(void *arg, struct gw_function *f), void *arg);

#define GW_DEPLOY_OVERWRITE 1u /* replace a function that exists */

/*
 * Deploy `req` (taken over: released here). Returns 0, -EINVAL (bad request: err says which
 * key), -EEXIST (exists and no GW_DEPLOY_OVERWRITE), -ENOENT (a partial update of a function
 * that does not exist), -EIO or -ENOMEM (the store or backend failed; err says how).
 */
int gw_svc_deploy(struct gw_daemon *d, struct gw_deploy_req *req, unsigned flags, char *err,
		  size_t errlen);
/* Returns 0 or -ENOENT. */
int gw_svc_undeploy(struct gw_daemon *d, const char *name);
/* Pre-warmed instances: replicas for OpenFaaS's scale. Returns 0, -ENOENT or -EINVAL. */
int gw_svc_scale(struct gw_daemon *d, const char *name, int instances);

/* The caller's view of one invocation. */
struct gw_call {
	const void *payload; /* the request bytes (a JSON object for dict-style functions) */
	size_t len;
	int trigger;		  /* enum gw_trigger */
	const char *reply_topic;  /* MQTT: where the result goes ("" none) */
	const char *callback_url; /* HTTP: POST the result here when done (async) */
	const void *correlation;  /* MQTT 5 correlation data (or a v3 correlation_id) */
	size_t correlation_len;
	int qos;
	bool mqtt5;	  /* the request came with MQTT 5 routing: reply raw, with properties */
	uint32_t wait_ms; /* blocking: answer pending after this long (0: blocking_timeout_ms) */
	/*
	 * blocking: the caller is answered with the function's result alone (OpenFaaS's
	 * /function, OpenWhisk's result=true), not with the activation record. Its record is
	 * written (it outlives a crash of nemod) but not waited for on disk: the caller holds
	 * what the record would keep. false: the record is durable before the answer.
	 */
	bool result_only;
	/*
	 * What a dict-style function also gets (__ow_method...): built only for such functions,
	 * by the front door that knows the protocol. NULL: nothing.
	 */
	cJSON *(*context)(const void *arg);
	const void *context_arg;
};

/* What a blocking invocation gives back. Release with gw_svc_outcome_release(). */
struct gw_outcome {
	char id[GW_ID_LEN + 1];
	enum gw_act_status status;
	char message[SBX_MSG_MAX];
	uint8_t *result; /* the function's bytes (malloc'd) */
	size_t result_len;
	bool pending;	 /* still running after blocking_timeout_ms: ask by id later */
	bool web;	 /* a main(dict) function: its result may shape the HTTP reply */
	uint64_t run_ns; /* the function's run (to its sandbox and back); 0: not run here */
};
void gw_svc_outcome_release(struct gw_outcome *o);

/*
 * Invoke `name` and wait for it. Its record is durable (fdatasync) before this returns unless
 * call->result_only. Returns 0 (out filled), -ENOENT (not deployed), -E2BIG
 * (payload over max_payload_bytes), -EAGAIN (a concurrency limit or a full table/queue:
 * err says which), -EINVAL (a dict-style function given a payload that is not a JSON object).
 */
int gw_svc_invoke(struct gw_daemon *d, const char *name, const struct gw_call *call,
		  struct gw_outcome *out, char *err, size_t errlen);
/* Accept an activation for the async workers; its id goes to id_out. Errors as above. */
int gw_svc_invoke_async(struct gw_daemon *d, const char *name, const struct gw_call *call,
			char id_out[GW_ID_LEN + 1], char *err, size_t errlen);

/*
 * gw_svc_invoke_async in two halves, so that many calls share one fdatasync (the MQTT
 * transport accepts a round of messages this way). gw_svc_accept_begin writes the call's
 * accepted line (not synced) and fills `a`; the caller keeps `call` and its bytes alive, runs
 * one gw_journal_sync for all the calls it began, and hands its result to gw_svc_accept_end
 * for each: that puts the call in etcd (in a cluster) and on the queue, or rejects it. No
 * worker runs it before gw_svc_accept_end. begin returns 0 (then end must follow) or an
 * error as gw_svc_invoke_async's (nothing to end).
 */
struct gw_accept {
	uint64_t seq;
	char id[GW_ID_LEN + 1];
	int rc;		     /* the accepted line's write: 0, or why it failed */
	const void *payload; /* the bytes the function gets: call->payload or merged */
	size_t len;
	char *merged; /* payload merged with the function's defaults (NULL: none) */
};
int gw_svc_accept_begin(struct gw_daemon *d, const char *name, const struct gw_call *call,
			struct gw_accept *a, char *err, size_t errlen);
/* sync_rc: gw_journal_sync's result after every begin. Returns 0 (queued) or an error. */
int gw_svc_accept_end(struct gw_daemon *d, struct gw_accept *a, const struct gw_call *call,
		      int sync_rc, char *err, size_t errlen);

/* Queue an accepted activation for a worker. Returns 0 or -EAGAIN (queue full). */
int gw_enqueue(struct gw_daemon *d, uint64_t seq);
/* An async worker thread: runs queued activations until q_stop. */
void *gw_svc_worker(void *arg);

/* Prometheus text of every metric; per-function families of namespace ns only (NULL: all).
 * Returns malloc'd text. */
char *gw_metrics_render(struct gw_daemon *d, const char *ns, size_t *len);
void gw_metrics_record(struct gw_function *fn, enum gw_act_status st, const struct sbx_result *res,
		       uint64_t total_ns);

/* JSON views: nemo's native function document. */
cJSON *gw_fn_json(struct gw_daemon *d, struct gw_function *fn, bool with_doc);

/* ---- front doors: a request in, a reply out; no connection needed ------------------------------------ */

#define GW_REQ_MAX_KV	     32
#define GW_REPLY_MAX_HEADERS 13 /* nemo's few, a web function's own, X-Nemo-Node */

struct gw_kv {
	const char *key, *value;
};

struct gw_request {
	const char *method;
	const char *url; /* the path, without the query */
	const char *body;
	size_t len;
	int n_args;
	struct gw_kv args[GW_REQ_MAX_KV]; /* the query */
	int n_headers;
	struct gw_kv headers[GW_REQ_MAX_KV];
	const struct gw_cred *cred; /* who authenticated; NULL: nobody */
	const char *auth_why;	    /* why not, for a 401 */
};

struct gw_reply {
	int status;
	char *body; /* malloc'd unless body_static */
	size_t len;
	bool body_static;
	const char *ctype;
	char ctype_buf[128]; /* a Content-Type the function chose (ctype points here) */
	int n_headers;
	struct {
		char key[64];
		char value[256];
	} headers[GW_REPLY_MAX_HEADERS];
};

const char *gw_req_arg(const struct gw_request *r, const char *key);
const char *gw_req_header(const struct gw_request *r, const char *key);
bool gw_req_arg_true(const struct gw_request *r, const char *key, bool dflt);
/* GET matches HEAD too. */
bool gw_req_is(const struct gw_request *r, const char *method);

void gw_reply_header(struct gw_reply *rp, const char *key, const char *value);
/* 202 for an activation that runs (or goes on running) after the answer: its id in the body
 * ({"activationId"}) and in X-Call-Id and X-Activation-Id */
void gw_reply_accepted(struct gw_reply *rp, const char *id);
/* X-Duration-Seconds: the function's run (request to its sandbox, response back); none for 0 */
void gw_reply_run_time(struct gw_reply *rp, uint64_t run_ns);
/* A JSON reply (j is consumed). */
void gw_reply_json(struct gw_reply *rp, int status, cJSON *j);
void gw_reply_error(struct gw_reply *rp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void gw_reply_not_allowed(struct gw_reply *rp, const struct gw_request *r, const char *allow);
/* The caller's namespace: its credential's, or the default one for open doors. */
const char *gw_req_ns(const struct gw_daemon *d, const struct gw_request *r);
/* The key of `name` in the caller's namespace; false (rp answered 400) when too long. */
bool gw_req_key(const struct gw_daemon *d, const struct gw_request *r, const char *name,
		char key[SBX_NAME_MAX], struct gw_reply *rp);
/* The status an -errno from the service maps to. */
int gw_status_of_errno(int rc);
void gw_reply_release(struct gw_reply *rp);

/* OpenWhisk's routes, parsed without a connection (fuzzable): what the URL names. */
enum gw_ow_route_kind {
	GW_OW_API,		 /* /api/v1 */
	GW_OW_NAMESPACES,	 /* /api/v1/namespaces */
	GW_OW_NAMESPACE,	 /* /api/v1/namespaces/{ns} */
	GW_OW_ACTIONS,		 /* .../{ns}/actions */
	GW_OW_ACTION,		 /* .../{ns}/actions/{name} */
	GW_OW_PACKAGE_ACTION,	 /* .../{ns}/actions/{package}/{name} */
	GW_OW_ACTIVATIONS,	 /* .../{ns}/activations */
	GW_OW_ACTIVATION,	 /* .../{ns}/activations/{id} */
	GW_OW_ACTIVATION_RESULT, /* .../{id}/result */
	GW_OW_ACTIVATION_LOGS,	 /* .../{id}/logs */
	GW_OW_UNSUPPORTED,	 /* triggers, rules, packages, limits, web actions: `what` */
};

struct gw_ow_route {
	enum gw_ow_route_kind route;
	char ns[64];
	char name[2 * SBX_NAME_MAX];
	char id[GW_ID_LEN + 1];
	const char *what;
};

/*
 * Parse an OpenWhisk URL path (without the query). Returns 0, -ENOENT (not a route of
 * OpenWhisk's) or -EINVAL (an action name outside [A-Za-z0-9_-]{1,63}; rt->name holds it).
 */
int gw_ow_route_parse(const char *url, struct gw_ow_route *rt);

/* OpenFaaS's routes, parsed without a connection (fuzzable). */
enum gw_faas_route_kind {
	GW_FAAS_FUNCTION,    /* /function/{name}[/{sub}] */
	GW_FAAS_ASYNC,	     /* /async-function/{name}[/{sub}] */
	GW_FAAS_FUNCTIONS,   /* /system/functions */
	GW_FAAS_DESCRIBE,    /* /system/function/{name} */
	GW_FAAS_SCALE,	     /* /system/scale-function/{name} */
	GW_FAAS_INFO,	     /* /system/info */
	GW_FAAS_NAMESPACES,  /* /system/namespaces */
	GW_FAAS_UNSUPPORTED, /* logs, secrets, alert: `what` */
};

struct gw_faas_route {
	enum gw_faas_route_kind route;
	char name[SBX_NAME_MAX];
	const char *sub; /* into the URL: "/a/b" after the name, or "" */
	const char *what;
};

/* Parse an OpenFaaS URL path. Returns 0, -ENOENT (no such route) or -EINVAL (bad name). */
int gw_faas_route_parse(const char *url, struct gw_faas_route *rt);

/* Each front door answers the routes under its prefix. */
void gw_api_native(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp);
void gw_api_openwhisk(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp);
void gw_api_openfaas(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp);
void gw_api_metrics(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp);

/* ---- transports --------------------------------------------------------------------------------------- */

struct gw_http *gw_http_start(struct gw_daemon *d);
void gw_http_stop(struct gw_http *h);
uint16_t gw_http_port(const struct gw_http *h);
/* Connections closed for late request headers (limits.header_timeout_ms). */
uint64_t gw_http_header_timeouts(struct gw_http *h);

struct gw_mqtt *gw_mqtt_start(struct gw_daemon *d);
void gw_mqtt_stop(struct gw_mqtt *m);
/* The topic set changed (deploy or delete): subscribe to what is new. */
void gw_mqtt_resubscribe(struct gw_mqtt *m);
bool gw_mqtt_connected(struct gw_mqtt *m);

/* ---- packet triggers (packet.c) ---------------------------------------------------------------- */

/*
 * Parse a function document's "packet" object into t (`fn_name`: the ring's default name).
 * Returns 0 or -EINVAL with ctx naming the key.
 */
int gw_packet_parse(struct cfg_ctx *ctx, const cJSON *obj, const char *fn_name,
		    struct gw_packet_trigger *t);
/*
 * Ask the NF's lease socket whether it feeds t->function (on t->lcore). Returns 0, -ENOENT
 * (it has no such ring: err names the function and the rings it has) or -ECONNREFUSED /
 * -errno (no NF listens there: err says where).
 */
int gw_packet_check_nf(const struct gw_packet_trigger *t, char *err, size_t errlen);

/* What the packet triggers of one function did, summed over its instances, dead ones too. */
struct gw_packet_figures {
	uint64_t batches, packets, replies, errors, parks;
	uint64_t restarts; /* instances that ended and were replaced */
	int serving;	   /* instances serving now */
	int wanted;	   /* instances the trigger asks for */
	char state[160];   /* "serving", or why not: "waiting for the NF: ..." */
};

/* Start the supervisor thread (one for all functions). NULL with errno on failure. */
struct gw_packet *gw_packet_start(struct gw_daemon *d);
/* Stop every instance (their leases end) and the thread. */
void gw_packet_stop(struct gw_packet *p);
/*
 * The function list changed: start what a new trigger wants, replace the instances of a
 * redeployed function, stop those of a deleted one. Returns once the supervisor has stopped
 * what must stop (starting new instances goes on in the background).
 */
void gw_packet_sync(struct gw_packet *p);
/* Figures of function `key`. Returns 0, or -ENOENT when it has no packet trigger. */
int gw_packet_figures(struct gw_packet *p, const char *key, struct gw_packet_figures *out);

/*
 * POST `data` to an http:// URL (OpenFaaS X-Callback-Url) with OpenFaaS's headers:
 * X-Call-Id (the activation id), X-Function-Status and X-Function-Name. Returns the
 * status or -errno.
 */
int gw_callback_post(const char *url, const char *activation_id, const char *function, int status,
		     const void *data, size_t len);

uint64_t gw_epoch_ms(void);

/* ---- the cluster (cluster.c): NULL d->cluster means alone, and every call returns at once ------------ */

struct gw_cluster {
	struct cl_node *node;
	pthread_mutex_t lock; /* the spare cache and the record's JSON */
	int n_cores;
	int cores[CL_MAX_CORES];
	double spare[CL_MAX_CORES];
	uint64_t spare_ns;
	char *warm_json, *fns_json;
	_Atomic uint64_t forwarded, forward_failed, decisions, decide_ns;
};

/*
 * Join the cluster when cluster.enabled (before the async workers start): the registry's
 * functions are deployed here, this node's own records from before a restart taken over.
 * Returns 0 or -errno (logged, naming the endpoints).
 */
int gw_cluster_join(struct gw_daemon *d);
void gw_cluster_leave(struct gw_daemon *d);
/* A deploy or delete here (not one that came from the cluster) goes to the registry. */
void gw_cluster_deployed(struct gw_daemon *d, const char *key);
void gw_cluster_undeployed(struct gw_daemon *d, const char *key);
/* Record an async activation in etcd before its 202. Returns 0 or -ENOSPC (err says why). */
int gw_cluster_accept(struct gw_daemon *d, uint64_t seq, const char *id, const char *key,
		      const void *payload, size_t len, const struct gw_call *call, char *err,
		      size_t errlen);
/* May it start? 0, or -ESTALE (another node adopted it) / -errno: do not run it. */
int gw_cluster_begin(struct gw_daemon *d, uint64_t seq, const char *id);
void gw_cluster_end(struct gw_daemon *d, uint64_t seq, const char *id, enum gw_act_status st,
		    const void *result, size_t len);
/* An activation another node holds, from etcd (NULL: not there either). */
cJSON *gw_cluster_act_json(struct gw_daemon *d, const char *id);
/* How a front door's call is forwarded (gw_cluster_forward's flags). */
enum gw_fwd_flags {
	GW_FWD_HELD = 1,    /* its caller waits for the result: a batch call waits here for spare */
	GW_FWD_QOS_ARG = 2, /* ?qos=latency|batch overrides the function's class */
	GW_FWD_HEADERS = 4, /* every header of the call goes on, every header of the answer back */
};
/*
 * The offload policy says a peer should run this call: forward it (method, path, query, body
 * as they came), fill rp with the peer's answer and X-Nemo-Node, return true. A call that a
 * peer forwarded here (X-Nemo-Origin) runs here: false.
 */
bool gw_cluster_forward(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp,
			const char *key, unsigned flags);
/*
 * A queued call (MQTT) that the offload policy sends to a peer: its start is recorded, the
 * peer runs it (POST /api/v1/cluster/run/{key}) and its result comes back into res (release
 * it through the backend) and into its record, which names the node that ran it. Returns 1
 * when a peer ran it, 0 to run it here, or gw_act_begin()'s -errno.
 */
int gw_cluster_run_elsewhere(struct gw_daemon *d, struct gw_function *fn, uint64_t seq,
			     const void *payload, size_t len, struct sbx_result *res);
/* The cluster's word on a function it lists but this node does not serve (its code could not
 * be fetched): true with why filled. */
bool gw_cluster_missing(struct gw_daemon *d, const char *key, char *why, size_t len);
/* GET /api/v1/cluster/nodes, /api/v1/cluster/code/{key}, /api/v1/cluster/activations/{id} */
void gw_api_cluster(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp);
/* Out of the cluster (lease lost, etcd cut off): why, for /healthz. */
bool gw_cluster_degraded(struct gw_daemon *d, char *why, size_t len);
/* An activation with a given id (adopted): 0 and a new slot, or -EEXIST with its seq and
 * status, or -EAGAIN (table full). */
int gw_act_adopt(struct gw_act_table *t, const char *id, const char *function, uint64_t *seq,
		 enum gw_act_status *status);
void gw_act_set_clustered(struct gw_act_table *t, uint64_t seq, bool on);
/* A peer ran activation `seq` for this node: its record names it ("node", "origin" this one). */
void gw_act_set_node(struct gw_act_table *t, uint64_t seq, const char *node);
/* gw_act_begin() taken back: it did not run after all (its journal keeps the start). */
void gw_act_begin_undo(struct gw_act_table *t, uint64_t seq);
/* The function key of activation `seq` (empty when evicted). */
void gw_act_function_of(struct gw_act_table *t, uint64_t seq, char function[SBX_NAME_MAX]);
bool gw_act_clustered(struct gw_act_table *t, uint64_t seq);

#endif /* NEMO_GW_INTERNAL_H */
