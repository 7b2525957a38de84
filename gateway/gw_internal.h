/* gw_internal.h - the gateway's private types: functions, activations, metrics, store, MQTT. */
#ifndef NEMO_GW_INTERNAL_H
#define NEMO_GW_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "nemo/gateway.h"

#define GW_MOD "gateway"

/* Names are path components and MQTT/metric labels: keep them boring. */
#define GW_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

#define GW_MAX_TOPICS  8
#define GW_TOPIC_MAX   128
#define GW_ID_LEN      32 /* activation ids: 32 hex digits, as OpenWhisk */
#define GW_MAX_PREWARM 64

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
	_Atomic uint64_t starts[4]; /* by enum sbx_start_path */
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

/* One deployed function. Reference-counted: an invocation holds it while it runs. */
struct gw_function {
	struct gw_function *next;
	atomic_int refs;
	bool deleted;
	struct sbx_spec spec;
	struct gw_mqtt_trigger mqtt;
	int prewarm; /* instances made ahead of demand at deploy and at start */
	char *doc;   /* the stored JSON document (spec + code path + triggers), for GET */
	uint64_t version;
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
	bool queued;	     /* async: journaled, survives a nemod crash */
	char *restored_json; /* a terminal record replayed from the journal */
	/* async work */
	uint8_t *payload;
	size_t payload_len;
	char reply_topic[GW_TOPIC_MAX];
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
	char boot_id[17]; /* random per start: ids never repeat across restarts */
	/* the journal of queued activations: <store>/.activations.journal */
	int journal_fd;
	char journal_path[GW_PATH_MAX + 32];
	size_t journal_bytes;
};

/*
 * The journal: every queued (async or MQTT) activation appends A (accepted, with its
 * payload), R (started) and T (terminal, the JSON record) lines, written before the state
 * change is visible. After a crash of nemod, gw_journal_replay() restores terminal records,
 * ends started ones as interrupted (never run twice) and returns the never-started ones to be
 * queued again (never lost). Writes reach the page cache, not the disk: a power loss can
 * lose the last ones. Called with t->lock held.
 */
void gw_journal_note(struct gw_act_table *t, struct gw_activation *a, char kind);
/*
 * Replay and compact the journal in `dir`, then open it for appending. *requeue gets the
 * seqs (malloc'd) of activations to queue again. Returns 0 or -errno.
 */
int gw_journal_replay(struct gw_act_table *t, const char *dir, uint64_t **requeue, size_t *n);
void gw_journal_close(struct gw_act_table *t);
/* Internal to the table: a fresh slot with a given id (NULL: a new one). t->lock held. */
struct gw_activation *gw_act_slot_new(struct gw_act_table *t, const char *id);

int gw_act_table_init(struct gw_act_table *t, uint32_t capacity);
void gw_act_table_fini(struct gw_act_table *t);
/* A new ACCEPTED record; its id is copied to id_out. Returns 0 or -EAGAIN (table full). */
int gw_act_new(struct gw_act_table *t, const char *function, int trigger, bool blocking,
	       char id_out[GW_ID_LEN + 1], uint64_t *seq_out);
/* Attach an async activation's payload (copied) and reply topic. Returns 0 or -ENOMEM. */
int gw_act_set_work(struct gw_act_table *t, uint64_t seq, const void *payload, size_t len,
		    const char *reply_topic);
/* ACCEPTED -> RUNNING. Returns 0, or -EALREADY if it was not ACCEPTED (run exactly once). */
int gw_act_begin(struct gw_act_table *t, uint64_t seq, int core);
/*
 * Record the terminal outcome; the result bytes are copied. Returns 0, or -EALREADY when
 * the record was already terminal (its first outcome stays).
 */
int gw_act_finish(struct gw_act_table *t, uint64_t seq, enum gw_act_status status,
		  const struct sbx_result *res, const char *message);
/* A JSON record of activation `id` (NULL when unknown). `result_only`: just the result. */
cJSON *gw_act_json(struct gw_act_table *t, const char *id, bool *found_terminal);
/* The last `limit` activations, newest first, of `function` (NULL: all). */
cJSON *gw_act_list_json(struct gw_act_table *t, const char *function, int limit);
/* Wait until `seq` is terminal or `timeout_ms` passes. Returns true when terminal. */
bool gw_act_wait(struct gw_act_table *t, uint64_t seq, uint32_t timeout_ms);
const char *gw_act_status_name(enum gw_act_status s);
bool gw_act_terminal(enum gw_act_status s);
/* The API's JSON record of one activation. t->lock held. */
cJSON *gw_act_record_json(const struct gw_activation *a);
enum gw_act_status gw_act_status_of(enum sbx_status s);

/* ---- the store -------------------------------------------------------------------------------------- */

/*
 * <store>/<name>/spec.json holds the function document, <store>/<name>/v<N>/<file> its code.
 * A deploy writes the new code version, then renames spec.json.tmp over spec.json: a crash
 * leaves the old or the new function, never half of one.
 */
int gw_store_init(const char *dir);
int gw_store_write_code(const char *dir, const char *name, uint64_t version, const char *file,
			const void *code, size_t len, char *path_out, size_t path_len);
int gw_store_copy_code(const char *dir, const char *name, uint64_t version, const char *src,
		       char *path_out, size_t path_len);
int gw_store_commit(const char *dir, const char *name, const char *doc, uint64_t version);
int gw_store_remove(const char *dir, const char *name);
/* Call fn for each stored function's document. Bad entries are logged and skipped. */
int gw_store_load(const char *dir, int (*fn)(void *arg, const char *name, const char *doc),
		  void *arg);
/* Read a whole file (at most `max` bytes). Returns malloc'd bytes or NULL with errno. */
char *gw_read_file(const char *path, size_t max, size_t *len);

/* ---- the daemon --------------------------------------------------------------------------------------- */

struct gw_http;
struct gw_mqtt;

struct gw_daemon {
	struct gw_config cfg;
	struct gw_backend backend;
	struct gw_dispatch dispatch;
	char token[256];
	size_t token_len;
	uint64_t started_ms;

	pthread_rwlock_t fn_lock; /* the function list; each function has its own gate */
	struct gw_function *functions;
	uint64_t next_version;
	pthread_mutex_t deploy_lock; /* serialises deploys and deletes: store + backend */

	struct gw_act_table acts;
	_Atomic uint32_t inflight;
	_Atomic uint64_t http_requests[6]; /* by status class: 1xx..5xx, index 0 unused */
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
	volatile int stop;
	bool draining;
};

/* Functions: lookup takes a reference; put drops it. */
struct gw_function *gw_fn_get(struct gw_daemon *d, const char *name);
void gw_fn_put(struct gw_function *fn);
bool gw_name_valid(const char *name);

/*
 * Deploy from a request body (or a stored document when `stored` is set: code already in
 * place). On error, err names the field; *http_status gets 400/404/409/500.
 */
int gw_deploy(struct gw_daemon *d, const char *name, const char *body, size_t len, bool stored,
	      char *err, size_t errlen, int *http_status);
int gw_undeploy(struct gw_daemon *d, const char *name);

/*
 * Run activation `seq` of fn in the calling thread and record its outcome; `res` gets the
 * result (release it through the backend). `bounded`: refuse with -EAGAIN when the function
 * already has max_inflight_per_function running or waiting (the activation is left for the
 * caller to finish); otherwise wait for an instance slot. Returns 0, -EAGAIN, or -EALREADY
 * when the activation had already started (it is never run twice).
 */
int gw_invoke_sync(struct gw_daemon *d, struct gw_function *fn, uint64_t seq, const void *req,
		   size_t len, bool bounded, struct sbx_result *res);
/* Queue an accepted activation for a worker. Returns 0 or -EAGAIN (queue full). */
int gw_enqueue(struct gw_daemon *d, uint64_t seq);
/* Admission control: 0, or -EAGAIN when the daemon-wide in-flight limit is reached. */
int gw_admit(struct gw_daemon *d);
void gw_unadmit(struct gw_daemon *d);

/* Prometheus text of every metric. Returns malloc'd text. */
char *gw_metrics_render(struct gw_daemon *d, size_t *len);
void gw_metrics_record(struct gw_function *fn, enum gw_act_status st, const struct sbx_result *res,
		       uint64_t total_ns);

/* JSON views for the API. */
cJSON *gw_fn_json(struct gw_daemon *d, struct gw_function *fn, bool with_doc);

/* HTTP and MQTT front ends. */
struct gw_http *gw_http_start(struct gw_daemon *d);
void gw_http_stop(struct gw_http *h);
uint16_t gw_http_port(const struct gw_http *h);

struct gw_mqtt *gw_mqtt_start(struct gw_daemon *d);
void gw_mqtt_stop(struct gw_mqtt *m);
/* The topic set changed (deploy or delete): subscribe to what is new. */
void gw_mqtt_resubscribe(struct gw_mqtt *m);
bool gw_mqtt_connected(struct gw_mqtt *m);
/* Publish an async activation's result to its reply topic. */
void gw_mqtt_reply(struct gw_mqtt *m, const char *topic, const void *data, size_t len);

uint64_t gw_epoch_ms(void);

#endif /* NEMO_GW_INTERNAL_H */
