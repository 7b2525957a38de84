/*
 * node.c - this nemod in the cluster: its lease and record, the peers' records and the function
 * registry (one watch), activation records (batched, fenced txns) and the adoption of a dead
 * node's activations. The key layout and what "once" means are in cluster/README.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nemo/base64.h"
#include "cl_internal.h"
#include "nemo/log.h"

#define OWNED_BUCKETS 1024
#define BATCH_MAX     40	   /* writes per txn: ≤ 2 ops each, within etcd's 128 */
#define BATCH_BYTES   (768 * 1024) /* record bytes per txn: in base64, within etcd's 1.5 MiB */
#define RESULT_INLINE (64 * 1024)
#define ADOPT_BATCH   40
#define NODE_WAIT_MS  100  /* a node record waits this long for an activation txn to ride in */
#define RETRY_MS      1000 /* a txn refused for want of a leader is tried again this long */

enum act_kind {
	ACT_ACCEPT = 0,
	ACT_START,
	ACT_END,
	ACT_DELIVERED, /* its result reached its route: the in-flight record goes */
	ACT_NODE,      /* this node's own record */
	ACT_CANCEL,    /* an accept whose caller heard "no": its record goes if still as written */
	ACT_FLUSH,     /* writes nothing: done once everything queued before it is */
};

/* One activation this node owns (accepted or adopted in this run), by id. */
struct owned {
	struct owned *next;
	char id[40];
	char function[CL_NAME_MAX];
	char origin[CL_NAME_MAX];
	uint64_t accepted_ms;
	int64_t mod_rev; /* of its in-flight record as last written */
	bool started;
	bool ended;	     /* its terminal record is in etcd; the in-flight one awaits delivery */
	bool delivering;     /* its ACT_DELIVERED is queued */
	uint64_t adopted_ms; /* epoch ms it was adopted by this node (0: accepted here) */
	char *route;	     /* where its result goes (JSON object, malloc'd), or NULL */
};

/* One write waiting for the batcher (malloc'd: the batcher frees the ones nobody waits for). */
struct act_op {
	struct act_op *next;
	enum act_kind kind;
	char id[40];
	char *key;   /* P/act/<id>, or P/node/<me> */
	char *value; /* what key becomes; NULL: it is deleted */
	size_t value_len;
	char *res_key, *res_value; /* end: the terminal record, P/res/<id> */
	size_t res_len;
	int64_t expect_mod; /* start, end, delivered: the in-flight record must be as we wrote it */
	uint64_t due_ns;    /* its txn goes by then, with company or without */
	struct owned own;   /* accept: what to remember */
	bool detached;	    /* nobody waits for it */
	bool abandoned;	    /* its waiter gave up waiting */
	bool sent;	    /* taken into a batch */
	bool on_wire;	    /* a txn with it went to etcd: it may have been applied */
	int rc;
	bool done;
};

struct peer {
	struct cl_node_info info;
	int64_t mod_rev;
};

struct cl_node {
	struct cl_config cfg;
	struct cl_hooks hooks;
	struct cl_etcd *e;
	char node_key[256], node_prefix[160], fn_prefix[160], act_prefix[160], res_prefix[160];
	char watch_end[160];

	/* registration: the lease and the create revision of our record (the fence) */
	pthread_mutex_t reg_lock;
	int64_t lease, reg_rev;
	atomic_bool registered;
	atomic_bool stalled; /* a record write's waiter gave up: until etcd answers again */
	_Atomic uint64_t last_renew_ms;
	int64_t results_lease;
	uint64_t results_lease_ms;

	/* peers (this node included) and the functions the registry holds */
	pthread_mutex_t view_lock;
	struct peer peers[CL_MAX_PEERS];
	int n_peers;
	char (*fns)[CL_NAME_MAX];
	int64_t *fn_revs; /* the mod revision of each, as seen */
	int n_fns, cap_fns;
	int64_t own_fn_revs[32]; /* our own recent registry writes: not echoed to the hooks */
	int n_own_fn_revs;
	/* names we are deleting: the watch may report it before the txn's answer is back */
	char own_deletes[8][CL_NAME_MAX];
	uint64_t own_delete_ms[8];
	int n_own_deletes;

	/* activation records */
	pthread_mutex_t b_lock;
	pthread_cond_t b_cond, b_done;
	struct act_op *pending, **pending_tail;
	struct owned *owned[OWNED_BUCKETS];

	pthread_t keeper, batcher;
	bool batcher_started;
	atomic_bool stop;
	atomic_bool adopt_now;
	pthread_mutex_t wake_lock;
	pthread_cond_t wake;
	struct cl_watch *watch;

	/* what we last published */
	char *last_record;
	uint64_t last_publish_ms;

	uint64_t joined_ms; /* epoch ms: our records from before it are from an earlier run */
	pthread_mutex_t stats_lock;
	struct cl_stats st;
	uint64_t death_seen_ms;
};

void cl_config_defaults(struct cl_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->prefix, sizeof(c->prefix), "/nemo");
	c->lease_ttl_s = 5;
	c->publish_ms = 250;
	c->batch_ms = 2;
	c->start_batch_ms = 20;
	c->end_batch_ms = 50;
	c->inline_code_max = 256 * 1024;
	c->timeout_ms = 1000;
	c->start_wait_ms = 10000;
	c->results_ttl_s = 3600;
	cl_policy_defaults(&c->policy);
}

const char *cl_node_name(const struct cl_node *n)
{
	return n->cfg.node;
}

struct cl_etcd *cl_node_etcd(struct cl_node *n)
{
	return n->e;
}

static void stat_add(struct cl_node *n, uint64_t *field, uint64_t v)
{
	pthread_mutex_lock(&n->stats_lock);
	*field += v;
	pthread_mutex_unlock(&n->stats_lock);
}

/* ---- records --------------------------------------------------------------------------------- */

static void add_b64(cJSON *o, const char *name, const void *p, size_t len)
{
	char *s = nemo_base64_encode(p, len);

	if (s)
		cJSON_AddStringToObject(o, name, s);
	free(s);
}

/* Decode a base64 member into a malloc'd buffer (NUL after). Returns 0, -ENOENT, -EINVAL. */
static int get_b64(const cJSON *o, const char *name, uint8_t **out, size_t *len)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
	size_t l;
	long n;

	*out = NULL;
	*len = 0;
	if (!cJSON_IsString(it))
		return -ENOENT;
	l = strlen(it->valuestring);
	*out = malloc(l / 4 * 3 + 4);
	if (!*out)
		return -ENOMEM;
	n = nemo_base64_decode(it->valuestring, l, *out, l / 4 * 3 + 3);
	if (n < 0) {
		free(*out);
		*out = NULL;
		return -EINVAL;
	}
	(*out)[n] = 0;
	*len = (size_t)n;
	return 0;
}

static void copy_str(char *dst, size_t cap, const cJSON *o, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

	snprintf(dst, cap, "%s", cJSON_IsString(it) ? it->valuestring : "");
}

static uint64_t get_u64(const cJSON *o, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(it) && it->valuedouble > 0 ? (uint64_t)it->valuedouble : 0;
}

/*
 * Parse a record and check its version. Returns the tree, or NULL after a log line (rate
 * limited) naming the key and what was wrong.
 */
static cJSON *record_parse(struct cl_node *n, const struct cl_kv *kv, int want)
{
	cJSON *j = cJSON_ParseWithLength((const char *)kv->value, kv->value_len);
	const cJSON *v;

	if (!j || !cJSON_IsObject(j)) {
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, CL_MOD, 1000, 5,
				     "record %s ignored: not a JSON object", kv->key);
		cJSON_Delete(j);
		stat_add(n, &n->st.ignored_records, 1);
		return NULL;
	}
	v = cJSON_GetObjectItemCaseSensitive(j, "v");
	if (!cJSON_IsNumber(v) || v->valuedouble != want) {
		char got[32] = "missing";

		if (cJSON_IsNumber(v))
			snprintf(got, sizeof(got), "%g", v->valuedouble);
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, CL_MOD, 1000, 5,
				     "record %s ignored: version %s, this build reads version %d",
				     kv->key, got, want);
		cJSON_Delete(j);
		stat_add(n, &n->st.ignored_records, 1);
		return NULL;
	}
	return j;
}

char *cl_node_record_json(const struct cl_config *cfg, const struct cl_local_load *load,
			  uint64_t now_ms)
{
	cJSON *j = cJSON_CreateObject(), *cores, *spare, *x;
	char *s;

	if (!j)
		return NULL;
	cJSON_AddNumberToObject(j, "v", CL_NODE_RECORD_V);
	cJSON_AddStringToObject(j, "name", cfg->node);
	cJSON_AddStringToObject(j, "address", cfg->address);
	cores = cJSON_AddArrayToObject(j, "cores");
	spare = cJSON_AddArrayToObject(j, "spare");
	for (int i = 0; i < load->n_cores && i < CL_MAX_CORES; i++) {
		cJSON_AddItemToArray(cores, cJSON_CreateNumber(load->cores[i]));
		cJSON_AddItemToArray(
			spare, cJSON_CreateNumber((double)(int)(load->spare[i] * 1000) / 1000.0));
	}
	cJSON_AddNumberToObject(j, "queue", load->queue);
	x = load->warm_json ? cJSON_Parse(load->warm_json) : NULL;
	cJSON_AddItemToObject(j, "warm", x ? x : cJSON_CreateObject());
	x = load->functions_json ? cJSON_Parse(load->functions_json) : NULL;
	cJSON_AddItemToObject(j, "functions", x ? x : cJSON_CreateArray());
	cJSON_AddNumberToObject(j, "ts", (double)now_ms);
	s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

static int node_info_parse(const cJSON *j, struct cl_node_info *ni)
{
	const cJSON *cores = cJSON_GetObjectItemCaseSensitive(j, "cores");
	const cJSON *spare = cJSON_GetObjectItemCaseSensitive(j, "spare");
	const cJSON *it;
	int i = 0;

	memset(ni, 0, sizeof(*ni));
	copy_str(ni->name, sizeof(ni->name), j, "name");
	copy_str(ni->address, sizeof(ni->address), j, "address");
	cJSON_ArrayForEach (it, cores) {
		if (i >= CL_MAX_CORES)
			break;
		ni->cores[i] = cJSON_IsNumber(it) ? it->valueint : -1;
		const cJSON *s = cJSON_GetArrayItem(spare, i);
		ni->spare[i] = cJSON_IsNumber(s) ? s->valuedouble : 0;
		i++;
	}
	ni->n_cores = i;
	ni->queue = (uint32_t)get_u64(j, "queue");
	ni->updated_ms = get_u64(j, "ts");
	ni->seen_ms = nemo_epoch_ms();
	it = cJSON_GetObjectItemCaseSensitive(j, "warm");
	ni->warm = cJSON_IsObject(it) ? cJSON_PrintUnformatted(it) : strdup("{}");
	it = cJSON_GetObjectItemCaseSensitive(j, "functions");
	ni->functions = cJSON_IsArray(it) ? cJSON_PrintUnformatted(it) : strdup("[]");
	return ni->name[0] ? 0 : -EINVAL;
}

void cl_node_info_release(struct cl_node_info *ni)
{
	free(ni->warm);
	free(ni->functions);
	ni->warm = NULL;
	ni->functions = NULL;
}

void cl_fn_record_release(struct cl_fn_record *r)
{
	free(r->spec);
	free(r->code);
	memset(r, 0, sizeof(*r));
}

void cl_act_record_release(struct cl_act_record *r)
{
	free(r->payload);
	free(r->result);
	free(r->extra);
	memset(r, 0, sizeof(*r));
}

static int fn_record_parse(const cJSON *j, struct cl_fn_record *r)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(j, "spec");

	memset(r, 0, sizeof(*r));
	copy_str(r->name, sizeof(r->name), j, "name");
	copy_str(r->owner, sizeof(r->owner), j, "owner");
	copy_str(r->owner_address, sizeof(r->owner_address), j, "owner_address");
	copy_str(r->code_sha, sizeof(r->code_sha), j, "code_sha256");
	r->version = get_u64(j, "version");
	r->deployed_ms = get_u64(j, "ts");
	r->code_size = get_u64(j, "code_size");
	r->spec = spec ? cJSON_PrintUnformatted(spec) : NULL;
	if (get_b64(j, "code", &r->code, &r->code_len) == -EINVAL)
		return -EINVAL;
	return r->name[0] && r->spec ? 0 : -EINVAL;
}

static int act_record_parse(const cJSON *j, struct cl_act_record *r)
{
	const cJSON *extra = cJSON_GetObjectItemCaseSensitive(j, "extra");

	memset(r, 0, sizeof(*r));
	copy_str(r->id, sizeof(r->id), j, "id");
	copy_str(r->function, sizeof(r->function), j, "fn");
	copy_str(r->node, sizeof(r->node), j, "node");
	copy_str(r->origin, sizeof(r->origin), j, "origin");
	copy_str(r->state, sizeof(r->state), j, "state");
	r->accepted_ms = get_u64(j, "accepted_ms");
	r->ended_ms = get_u64(j, "ended_ms");
	r->adopted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "adopted"));
	r->adopted_ms = get_u64(j, "adopted_ms");
	if (get_b64(j, "payload", &r->payload, &r->payload_len) == -EINVAL ||
	    get_b64(j, "result", &r->result, &r->result_len) == -EINVAL)
		return -EINVAL;
	r->extra = cJSON_IsObject(extra) ? cJSON_PrintUnformatted(extra) : NULL;
	return r->id[0] && r->node[0] ? 0 : -EINVAL;
}

/* The in-flight record of an activation, as JSON text. */
static char *act_json(const char *id, const char *fn, const char *node, const char *origin,
		      const char *state, uint64_t accepted_ms, uint64_t adopted_ms,
		      const void *payload, size_t len, const char *route)
{
	cJSON *j = cJSON_CreateObject(), *x;
	char *s;

	if (!j)
		return NULL;
	cJSON_AddNumberToObject(j, "v", CL_ACT_RECORD_V);
	cJSON_AddStringToObject(j, "id", id);
	cJSON_AddStringToObject(j, "fn", fn);
	cJSON_AddStringToObject(j, "node", node);
	cJSON_AddStringToObject(j, "origin", origin);
	cJSON_AddStringToObject(j, "state", state);
	cJSON_AddNumberToObject(j, "accepted_ms", (double)accepted_ms);
	if (adopted_ms) {
		cJSON_AddBoolToObject(j, "adopted", true);
		cJSON_AddNumberToObject(j, "adopted_ms", (double)adopted_ms);
	}
	if (payload)
		add_b64(j, "payload", payload, len);
	x = route ? cJSON_Parse(route) : NULL;
	if (x)
		cJSON_AddItemToObject(j, "extra", x);
	s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

/* ---- owned activations ------------------------------------------------------------------------- */

static unsigned id_hash(const char *id)
{
	unsigned h = 5381;

	while (*id)
		h = h * 33 + (unsigned char)*id++;
	return h % OWNED_BUCKETS;
}

/* Callers hold b_lock. */
static struct owned *owned_find(struct cl_node *n, const char *id)
{
	for (struct owned *o = n->owned[id_hash(id)]; o; o = o->next)
		if (strcmp(o->id, id) == 0)
			return o;
	return NULL;
}

/* Remember src (its route moves in: src->route is NULL after). Callers hold b_lock. */
static void owned_put(struct cl_node *n, struct owned *src)
{
	struct owned *o = owned_find(n, src->id);

	if (!o) {
		o = malloc(sizeof(*o));
		if (!o) {
			free(src->route);
			src->route = NULL;
			return; /* start will answer -ESTALE: never run without a record */
		}
		*o = *src;
		o->next = n->owned[id_hash(src->id)];
		n->owned[id_hash(src->id)] = o;
		src->route = NULL;
		return;
	}
	o->mod_rev = src->mod_rev;
	o->ended = src->ended;
	if (src->route) {
		free(o->route);
		o->route = src->route;
		src->route = NULL;
	}
}

static void owned_drop(struct cl_node *n, const char *id)
{
	for (struct owned **p = &n->owned[id_hash(id)]; *p; p = &(*p)->next) {
		if (strcmp((*p)->id, id) == 0) {
			struct owned *o = *p;

			*p = o->next;
			free(o->route);
			free(o);
			return;
		}
	}
}

/* A copy of an owned entry, its route duplicated (free it). Callers hold b_lock. */
static bool owned_copy(struct cl_node *n, const char *id, struct owned *out)
{
	struct owned *o = owned_find(n, id);

	if (!o)
		return false;
	*out = *o;
	out->next = NULL;
	out->route = o->route ? strdup(o->route) : NULL;
	return true;
}

/* ---- registration ------------------------------------------------------------------------------ */

/*
 * Take a lease and create our record under it, only if no live node holds the name. Returns 0,
 * -EEXIST or -errno.
 */
static int register_node(struct cl_node *n)
{
	struct cl_local_load load = {0};
	int64_t lease, rev;
	char *rec;
	bool ok;
	int rc;

	rc = cl_etcd_lease_grant(n->e, (int)n->cfg.lease_ttl_s, &lease);
	if (rc < 0)
		return rc;
	if (n->hooks.load)
		n->hooks.load(n->hooks.arg, &load);
	rec = cl_node_record_json(&n->cfg, &load, nemo_epoch_ms());
	if (!rec) {
		cl_etcd_lease_revoke(n->e, lease);
		return -ENOMEM;
	}
	{
		struct cl_cmp cmp = {.key = n->node_key,
				     .target = CL_CMP_VERSION,
				     .result = CL_CMP_EQUAL,
				     .number = 0};
		struct cl_op put = {.kind = CL_OP_PUT,
				    .key = n->node_key,
				    .value = rec,
				    .value_len = strlen(rec),
				    .lease = lease};

		rc = cl_etcd_txn(n->e, &cmp, 1, &put, 1, NULL, 0, &ok, &rev, NULL);
	}
	if (rc == 0 && !ok) {
		NEMO_ERR(CL_MOD,
			 "node name '%s' is taken: %s exists in etcd at %s under a live lease",
			 n->cfg.node, n->node_key, cl_etcd_endpoints(n->e));
		rc = -EEXIST;
	}
	if (rc < 0) {
		free(rec);
		cl_etcd_lease_revoke(n->e, lease);
		return rc;
	}
	pthread_mutex_lock(&n->reg_lock);
	n->lease = lease;
	n->reg_rev = rev;
	free(n->last_record);
	n->last_record = rec;
	n->last_publish_ms = nemo_now_ms();
	atomic_store(&n->last_renew_ms, nemo_now_ms());
	atomic_store(&n->registered, true);
	pthread_mutex_unlock(&n->reg_lock);
	NEMO_INFO(CL_MOD, "node %s joined: lease %" PRId64 " ttl %us, record at revision %" PRId64,
		  n->cfg.node, lease, n->cfg.lease_ttl_s, rev);
	return 0;
}

bool cl_node_healthy(struct cl_node *n, const char **why)
{
	if (!atomic_load(&n->registered)) {
		if (why)
			*why = "this node lost its etcd lease: it cannot record activations";
		return false;
	}
	if (!cl_etcd_reachable(n->e)) {
		if (why)
			*why = "no etcd member answers this node: it cannot record activations";
		return false;
	}
	if (atomic_load(&n->stalled)) {
		if (why)
			*why = "etcd did not answer this node within its timeout: it cannot record "
			       "activations";
		return false;
	}
	if (nemo_now_ms() - atomic_load(&n->last_renew_ms) > n->cfg.lease_ttl_s * 1000ull) {
		if (why)
			*why = "etcd has not renewed this node's lease within its TTL";
		return false;
	}
	return true;
}

static int submit(struct cl_node *n, struct act_op *op, uint32_t wait_ms);
static void op_free(struct act_op *op);

/*
 * Queue this node's record: it rides in the next activation txn, or goes alone after
 * NODE_WAIT_MS (wait: at once, and return its txn's outcome). A record still queued is
 * replaced, not queued twice.
 */
static int publish(struct cl_node *n, bool wait)
{
	struct cl_local_load load = {0};
	struct act_op *op;
	char *rec, *copy;

	if (!atomic_load(&n->registered))
		return -ENOLINK;
	if (n->hooks.load)
		n->hooks.load(n->hooks.arg, &load);
	rec = cl_node_record_json(&n->cfg, &load, nemo_epoch_ms());
	copy = rec ? strdup(rec) : NULL;
	op = calloc(1, sizeof(*op));
	if (!op || !copy || !(op->key = strdup(n->node_key))) {
		free(rec);
		free(copy);
		if (op)
			op_free(op);
		return -ENOMEM;
	}
	op->kind = ACT_NODE;
	snprintf(op->id, sizeof(op->id), "node:"); /* one per txn (ids are hex) */
	op->value = rec;
	op->value_len = strlen(rec);
	op->detached = !wait;
	pthread_mutex_lock(&n->reg_lock);
	free(n->last_record);
	n->last_record = copy;
	n->last_publish_ms = nemo_now_ms();
	pthread_mutex_unlock(&n->reg_lock);
	if (!wait) {
		pthread_mutex_lock(&n->b_lock);
		for (struct act_op *q = n->pending; q; q = q->next) {
			if (q->kind == ACT_NODE && !q->sent && q->detached) {
				free(q->value);
				q->value = op->value;
				q->value_len = op->value_len;
				op->value = NULL;
				break;
			}
		}
		pthread_mutex_unlock(&n->b_lock);
		if (!op->value) {
			op_free(op);
			return 0;
		}
	}
	return submit(n, op, wait ? 0 : NODE_WAIT_MS);
}

int cl_node_publish(struct cl_node *n)
{
	return publish(n, true);
}

/* Has the load changed enough to publish before the heartbeat? */
static bool record_changed(struct cl_node *n)
{
	struct cl_local_load load = {0};
	char *rec;
	bool changed;

	if (!n->hooks.load)
		return false;
	n->hooks.load(n->hooks.arg, &load);
	rec = cl_node_record_json(&n->cfg, &load, 0);
	pthread_mutex_lock(&n->reg_lock);
	/* compare without the timestamp: everything before ,"ts": */
	changed = true;
	if (rec && n->last_record) {
		const char *a = strstr(rec, ",\"ts\":"), *b = strstr(n->last_record, ",\"ts\":");

		changed = !(a && b && a - rec == b - n->last_record &&
			    memcmp(rec, n->last_record, (size_t)(a - rec)) == 0);
	}
	pthread_mutex_unlock(&n->reg_lock);
	free(rec);
	return changed;
}

static uint64_t heartbeat_ms(const struct cl_node *n)
{
	uint64_t hb = n->cfg.lease_ttl_s * 1000ull / 3;

	return hb < 1000 ? hb : 1000;
}

/* The keeper: keepalive, publish, re-register after a lost lease, adoption, results lease. */
static void *keeper_main(void *arg)
{
	struct cl_node *n = arg;
	uint64_t last_keepalive = nemo_now_ms(), last_adopt = nemo_now_ms();

	while (!atomic_load(&n->stop)) {
		uint64_t now = nemo_now_ms();
		uint64_t ka_every = n->cfg.lease_ttl_s * 1000ull / 3;

		if (!atomic_load(&n->registered)) {
			int rc = register_node(n);

			if (rc == 0) {
				NEMO_WARN(CL_MOD, "node %s registered again after losing its lease",
					  n->cfg.node);
				atomic_store(&n->adopt_now, true);
			}
		} else if (now - last_keepalive >= ka_every ||
			   ((!cl_etcd_reachable(n->e) || atomic_load(&n->stalled)) &&
			    now - last_keepalive >= 100)) {
			/* the keepalive is also the probe that finds etcd again after a cut */
			int64_t lease;
			int rc;

			pthread_mutex_lock(&n->reg_lock);
			lease = n->lease;
			pthread_mutex_unlock(&n->reg_lock);
			rc = cl_etcd_lease_keepalive(n->e, lease, NULL);
			last_keepalive = now;
			if (rc == 0) {
				atomic_store(&n->last_renew_ms, nemo_now_ms());
				atomic_store(&n->stalled, false);
			} else if (rc == -ENOENT) {
				NEMO_WARN(CL_MOD,
					  "node %s: lease %" PRId64 " expired; registering again",
					  n->cfg.node, lease);
				atomic_store(&n->registered, false);
				continue;
			}
		}
		if (atomic_load(&n->registered)) {
			uint64_t since;

			pthread_mutex_lock(&n->reg_lock);
			since = nemo_now_ms() - n->last_publish_ms;
			pthread_mutex_unlock(&n->reg_lock);
			if (since >= heartbeat_ms(n) ||
			    (since >= n->cfg.publish_ms && record_changed(n)))
				publish(n, false);
		}
		if (nemo_now_ms() - n->results_lease_ms > n->cfg.results_ttl_s * 500ull) {
			int64_t l;

			if (cl_etcd_lease_grant(n->e, (int)n->cfg.results_ttl_s, &l) == 0) {
				pthread_mutex_lock(&n->reg_lock);
				n->results_lease = l;
				n->results_lease_ms = nemo_now_ms();
				pthread_mutex_unlock(&n->reg_lock);
			}
		}
		if (atomic_exchange(&n->adopt_now, false) ||
		    nemo_now_ms() - last_adopt > n->cfg.lease_ttl_s * 1000ull) {
			last_adopt = nemo_now_ms();
			if (atomic_load(&n->registered))
				cl_node_adopt_orphans(n);
		}
		pthread_mutex_lock(&n->wake_lock);
		if (!atomic_load(&n->stop) && !atomic_load(&n->adopt_now)) {
			uint64_t wait = n->cfg.publish_ms < 100 ? n->cfg.publish_ms : 100;
			struct timespec ts =
				nemo_deadline_after_ns(CLOCK_REALTIME, wait * 1000000ull);

			pthread_cond_timedwait(&n->wake, &n->wake_lock, &ts);
		}
		pthread_mutex_unlock(&n->wake_lock);
	}
	return NULL;
}

static void wake_keeper(struct cl_node *n)
{
	pthread_mutex_lock(&n->wake_lock);
	pthread_cond_signal(&n->wake);
	pthread_mutex_unlock(&n->wake_lock);
}

/* ---- the watch: peers and the registry ----------------------------------------------------------- */

static int peer_find(struct cl_node *n, const char *name)
{
	for (int i = 0; i < n->n_peers; i++)
		if (strcmp(n->peers[i].info.name, name) == 0)
			return i;
	return -1;
}

static void peer_remove(struct cl_node *n, int i)
{
	cl_node_info_release(&n->peers[i].info);
	n->peers[i] = n->peers[--n->n_peers];
}

static bool node_event(struct cl_node *n, const struct cl_kv *kv, bool deleted)
{
	const char *name = kv->key + strlen(n->node_prefix);
	struct cl_node_info ni;
	cJSON *j;
	int i;

	if (deleted) {
		pthread_mutex_lock(&n->view_lock);
		i = peer_find(n, name);
		if (i >= 0)
			peer_remove(n, i);
		pthread_mutex_unlock(&n->view_lock);
		return strcmp(name, n->cfg.node) != 0; /* a peer died (or left): adopt */
	}
	j = record_parse(n, kv, CL_NODE_RECORD_V);
	if (!j)
		return false;
	if (node_info_parse(j, &ni) < 0 || strcmp(ni.name, name) != 0) {
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, CL_MOD, 1000, 5,
				     "record %s ignored: its name does not match its key", kv->key);
		stat_add(n, &n->st.ignored_records, 1);
		cl_node_info_release(&ni);
		cJSON_Delete(j);
		return false;
	}
	cJSON_Delete(j);
	pthread_mutex_lock(&n->view_lock);
	i = peer_find(n, name);
	if (i < 0 && n->n_peers < CL_MAX_PEERS)
		i = n->n_peers++;
	else if (i >= 0)
		cl_node_info_release(&n->peers[i].info);
	if (i >= 0) {
		n->peers[i].info = ni;
		n->peers[i].mod_rev = kv->mod_rev;
	} else {
		cl_node_info_release(&ni);
	}
	pthread_mutex_unlock(&n->view_lock);
	return false;
}

static bool own_fn_write(struct cl_node *n, int64_t rev)
{
	bool own = false;

	pthread_mutex_lock(&n->view_lock);
	for (int i = 0; i < n->n_own_fn_revs; i++)
		if (n->own_fn_revs[i] == rev)
			own = true;
	pthread_mutex_unlock(&n->view_lock);
	return own;
}

static void fn_seen(struct cl_node *n, const char *name, int64_t rev, bool deleted)
{
	int i;

	pthread_mutex_lock(&n->view_lock);
	for (i = 0; i < n->n_fns; i++)
		if (strcmp(n->fns[i], name) == 0)
			break;
	if (deleted) {
		if (i < n->n_fns) {
			n->n_fns--;
			memcpy(n->fns[i], n->fns[n->n_fns], CL_NAME_MAX);
			n->fn_revs[i] = n->fn_revs[n->n_fns];
		}
	} else if (i < n->n_fns) {
		n->fn_revs[i] = rev;
	} else {
		if (n->n_fns == n->cap_fns) {
			int cap = n->cap_fns ? n->cap_fns * 2 : 64;
			void *a = realloc(n->fns, (size_t)cap * CL_NAME_MAX);
			void *b = a ? realloc(n->fn_revs, (size_t)cap * sizeof(int64_t)) : NULL;

			if (a)
				n->fns = a;
			if (b)
				n->fn_revs = b;
			if (!a || !b) {
				pthread_mutex_unlock(&n->view_lock);
				return;
			}
			n->cap_fns = cap;
		}
		snprintf(n->fns[n->n_fns], CL_NAME_MAX, "%s", name);
		n->fn_revs[n->n_fns++] = rev;
	}
	pthread_mutex_unlock(&n->view_lock);
}

static void fn_event(struct cl_node *n, const struct cl_kv *kv, bool deleted)
{
	const char *name = kv->key + strlen(n->fn_prefix);
	struct cl_fn_record rec;
	cJSON *j;

	if (deleted) {
		bool own = own_fn_write(n, kv->mod_rev);

		pthread_mutex_lock(&n->view_lock);
		for (int i = 0; i < 8; i++)
			if (strcmp(n->own_deletes[i], name) == 0 &&
			    nemo_now_ms() - n->own_delete_ms[i] < 5000) {
				own = true;
				n->own_deletes[i][0] = '\0';
			}
		pthread_mutex_unlock(&n->view_lock);
		fn_seen(n, name, kv->mod_rev, true);
		if (!own && n->hooks.fn_deleted)
			n->hooks.fn_deleted(n->hooks.arg, name);
		return;
	}
	j = record_parse(n, kv, CL_FN_RECORD_V);
	if (!j)
		return;
	if (fn_record_parse(j, &rec) < 0 || strcmp(rec.name, name) != 0) {
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, CL_MOD, 1000, 5,
				     "record %s ignored: malformed function record", kv->key);
		stat_add(n, &n->st.ignored_records, 1);
		cl_fn_record_release(&rec);
		cJSON_Delete(j);
		return;
	}
	cJSON_Delete(j);
	fn_seen(n, name, kv->mod_rev, false);
	if (!own_fn_write(n, kv->mod_rev) && strcmp(rec.owner, n->cfg.node) != 0 &&
	    n->hooks.fn_deployed) {
		int rc = n->hooks.fn_deployed(n->hooks.arg, &rec);

		if (rc < 0)
			NEMO_WARN(CL_MOD,
				  "function %s from node %s (version %" PRIu64
				  "): not served here: %s",
				  rec.name, rec.owner, rec.version, strerror(-rc));
	}
	cl_fn_record_release(&rec);
}

static void on_watch(void *arg, bool snapshot, const struct cl_watch_event *ev, int n_ev,
		     int64_t revision)
{
	struct cl_node *n = arg;
	bool death = false;

	(void)revision;
	if (snapshot) {
		/* replace the views: nodes and functions not in the snapshot are gone */
		char(*had)[CL_NAME_MAX] = NULL;
		int n_had = 0;

		pthread_mutex_lock(&n->view_lock);
		while (n->n_peers > 0)
			peer_remove(n, n->n_peers - 1);
		if (n->n_fns > 0 && (had = malloc((size_t)n->n_fns * CL_NAME_MAX))) {
			memcpy(had, n->fns, (size_t)n->n_fns * CL_NAME_MAX);
			n_had = n->n_fns;
		}
		n->n_fns = 0;
		pthread_mutex_unlock(&n->view_lock);
		for (int i = 0; i < n_ev; i++) {
			const char *k = ev[i].kv->key;

			if (strncmp(k, n->node_prefix, strlen(n->node_prefix)) == 0)
				node_event(n, ev[i].kv, false);
			else if (strncmp(k, n->fn_prefix, strlen(n->fn_prefix)) == 0)
				fn_event(n, ev[i].kv, false);
		}
		for (int i = 0; i < n_had; i++) {
			bool still = false;

			pthread_mutex_lock(&n->view_lock);
			for (int k = 0; k < n->n_fns; k++)
				if (strcmp(n->fns[k], had[i]) == 0)
					still = true;
			pthread_mutex_unlock(&n->view_lock);
			if (!still && n->hooks.fn_deleted)
				n->hooks.fn_deleted(n->hooks.arg, had[i]);
		}
		free(had);
		atomic_store(&n->adopt_now, true);
		wake_keeper(n);
		return;
	}
	for (int i = 0; i < n_ev; i++) {
		const char *k = ev[i].kv->key;

		if (strncmp(k, n->node_prefix, strlen(n->node_prefix)) == 0)
			death |= node_event(n, ev[i].kv, ev[i].deleted);
		else if (strncmp(k, n->fn_prefix, strlen(n->fn_prefix)) == 0)
			fn_event(n, ev[i].kv, ev[i].deleted);
	}
	if (death) {
		pthread_mutex_lock(&n->stats_lock);
		n->death_seen_ms = nemo_now_ms();
		pthread_mutex_unlock(&n->stats_lock);
		atomic_store(&n->adopt_now, true);
		wake_keeper(n);
	}
}

int cl_node_list(struct cl_node *n, struct cl_node_info *out, int max)
{
	int k = 0;

	pthread_mutex_lock(&n->view_lock);
	for (int i = 0; i < n->n_peers && k < max; i++) {
		out[k] = n->peers[i].info;
		out[k].warm = strdup(n->peers[i].info.warm ? n->peers[i].info.warm : "{}");
		out[k].functions =
			strdup(n->peers[i].info.functions ? n->peers[i].info.functions : "[]");
		k++;
	}
	pthread_mutex_unlock(&n->view_lock);
	/* sorted by name: a stable order for views and for the policy's ties */
	for (int i = 1; i < k; i++)
		for (int j = i; j > 0 && strcmp(out[j - 1].name, out[j].name) > 0; j--) {
			struct cl_node_info t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return k;
}

/* ---- the registry -------------------------------------------------------------------------------- */

int cl_node_fn_publish(struct cl_node *n, const char *name, uint64_t version, const char *spec,
		       const void *code, size_t code_len)
{
	cJSON *j = cJSON_CreateObject(), *sp = spec ? cJSON_Parse(spec) : NULL;
	char key[256], *s;
	int64_t rev = 0;
	int rc;

	if (!j || !sp) {
		cJSON_Delete(j);
		cJSON_Delete(sp);
		return spec ? -ENOMEM : -EINVAL;
	}
	snprintf(key, sizeof(key), "%s%s", n->fn_prefix, name);
	cJSON_AddNumberToObject(j, "v", CL_FN_RECORD_V);
	cJSON_AddStringToObject(j, "name", name);
	cJSON_AddNumberToObject(j, "version", (double)version);
	cJSON_AddStringToObject(j, "owner", n->cfg.node);
	cJSON_AddStringToObject(j, "owner_address", n->cfg.address);
	cJSON_AddNumberToObject(j, "ts", (double)nemo_epoch_ms());
	cJSON_AddNumberToObject(j, "code_size", (double)code_len);
	{
		char hex[65];

		cl_sha256_hex(code, code_len, hex);
		cJSON_AddStringToObject(j, "code_sha256", hex);
	}
	if (code && code_len <= n->cfg.inline_code_max)
		add_b64(j, "code", code, code_len);
	cJSON_AddItemToObject(j, "spec", sp);
	s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!s)
		return -ENOMEM;
	rc = cl_etcd_put(n->e, key, s, strlen(s), 0, &rev);
	free(s);
	if (rc == 0) {
		pthread_mutex_lock(&n->view_lock);
		n->own_fn_revs[n->n_own_fn_revs++ % 32] = rev;
		if (n->n_own_fn_revs >= 32)
			n->n_own_fn_revs = 32;
		pthread_mutex_unlock(&n->view_lock);
	}
	return rc;
}

int cl_node_fn_unpublish(struct cl_node *n, const char *name)
{
	char key[256];
	bool ok;
	int64_t rev = 0;
	struct cl_cmp cmp;
	struct cl_op del = {.kind = CL_OP_DELETE};
	int rc;

	snprintf(key, sizeof(key), "%s%s", n->fn_prefix, name);
	cmp = (struct cl_cmp){
		.key = key, .target = CL_CMP_VERSION, .result = CL_CMP_GREATER, .number = 0};
	del.key = key;
	pthread_mutex_lock(&n->view_lock);
	snprintf(n->own_deletes[n->n_own_deletes % 8], CL_NAME_MAX, "%s", name);
	n->own_delete_ms[n->n_own_deletes++ % 8] = nemo_now_ms();
	pthread_mutex_unlock(&n->view_lock);
	rc = cl_etcd_txn(n->e, &cmp, 1, &del, 1, NULL, 0, &ok, &rev, NULL);
	if (rc < 0)
		return rc;
	if (!ok)
		return -ENOENT;
	pthread_mutex_lock(&n->view_lock);
	n->own_fn_revs[n->n_own_fn_revs++ % 32] = rev;
	if (n->n_own_fn_revs >= 32)
		n->n_own_fn_revs = 32;
	pthread_mutex_unlock(&n->view_lock);
	return 0;
}

/* ---- activation records: the batcher ----------------------------------------------------------- */

/*
 * Every activation record, and this node's own record, goes through one batcher thread: one txn
 * in flight at a time, the next batch gathering meanwhile. A write waits for company at most
 * its kind's window (accept batch_ms: a 202 waits for it; start start_batch_ms: the run waits
 * for it; end end_batch_ms: nobody waits, unless the result has a route to reach afterwards;
 * the node record NODE_WAIT_MS), and the batch goes when its first window closes. So at any
 * rate the starts, ends and node records ride in the txns the accepts need anyway.
 */

static void op_free(struct act_op *op)
{
	if (!op)
		return;
	free(op->key);
	free(op->value);
	free(op->res_key);
	free(op->res_value);
	free(op->own.route);
	free(op);
}

static struct act_op *op_new(enum act_kind kind, const char *id, const char *prefix)
{
	struct act_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->kind = kind;
	snprintf(op->id, sizeof(op->id), "%s", id);
	if (asprintf(&op->key, "%s%s", prefix, id) < 0) {
		op->key = NULL;
		op_free(op);
		return NULL;
	}
	return op;
}

static uint32_t end_wait_ms(const struct cl_node *n, bool routed)
{
	/* a routed end has a worker waiting to deliver: it waits no longer than a start */
	return routed ? n->cfg.start_batch_ms : n->cfg.end_batch_ms;
}

static void append(struct cl_node *n, struct act_op *op)
{
	op->next = NULL;
	*n->pending_tail = op;
	n->pending_tail = &op->next;
	pthread_cond_signal(&n->b_cond);
}

/*
 * Queue op (the batcher takes it) to go within wait_ms. A detached op returns 0 at once; else
 * wait for its txn. When it has not come after wait_ms plus half an etcd timeout, ask whether
 * any member answers at all (cl_etcd_probe, a quarter of the timeout): if none does, this node
 * is cut off: give up (-ETIMEDOUT) within about one timeout; if one does (a leader election, a
 * slow commit), wait on, up to wait_ms plus three timeouts. A caller that heard -ETIMEDOUT must
 * act as if it failed; an accept that was written after all is deleted again.
 */
static int submit(struct cl_node *n, struct act_op *op, uint32_t wait_ms)
{
	uint64_t now = nemo_now_ns(), t_ms = n->cfg.timeout_ms;
	struct timespec probe_at =
		nemo_deadline_after_ns(CLOCK_MONOTONIC, (wait_ms + t_ms / 2) * 1000000ull);
	struct timespec until =
		nemo_deadline_after_ns(CLOCK_MONOTONIC, (wait_ms + 3 * t_ms) * 1000000ull);
	bool probed = false;
	int rc;

	op->due_ns = now + (uint64_t)wait_ms * 1000000ull;
	pthread_mutex_lock(&n->b_lock);
	append(n, op);
	if (op->detached) {
		pthread_mutex_unlock(&n->b_lock);
		return 0;
	}
	while (!op->done) {
		bool cut_off = false;

		if (pthread_cond_timedwait(&n->b_done, &n->b_lock, probed ? &until : &probe_at) !=
			    ETIMEDOUT ||
		    op->done)
			continue;
		if (!probed) {
			probed = true;
			pthread_mutex_unlock(&n->b_lock);
			cut_off = cl_etcd_probe(n->e, (int)(t_ms / 4 ? t_ms / 4 : 1)) == 0;
			pthread_mutex_lock(&n->b_lock);
			if (op->done || !cut_off)
				continue;
		}
		/* the next ones are refused at once, until etcd answers again */
		atomic_store(&n->stalled, true);
		op->abandoned = true;
		pthread_mutex_unlock(&n->b_lock);
		return -ETIMEDOUT;
	}
	rc = op->rc;
	pthread_mutex_unlock(&n->b_lock);
	op_free(op);
	return rc;
}

/* An accept whose caller heard "no" may have been written: delete it if it is still ours. */
static void queue_cancel(struct cl_node *n, struct act_op *accept, uint64_t delay_ms)
{
	struct act_op *op = calloc(1, sizeof(*op));

	if (!op)
		return;
	op->kind = ACT_CANCEL;
	snprintf(op->id, sizeof(op->id), "%s", accept->id);
	op->key = accept->key;
	op->value = accept->value;
	op->value_len = accept->value_len;
	accept->key = accept->value = NULL;
	op->detached = true;
	op->due_ns = nemo_now_ns() + delay_ms * 1000000ull;
	append(n, op);
}

/* Hand an op its outcome. b_lock held. */
static void finish(struct cl_node *n, struct act_op *op, int rc)
{
	op->rc = rc;
	/* an accept nobody will run, that etcd may hold: take it back */
	if (op->kind == ACT_ACCEPT && op->on_wire && (op->abandoned || rc < 0) && rc != -ENOLINK)
		queue_cancel(n, op, end_wait_ms(n, false));
	/* what nobody waits for is tried again while etcd does not answer (not when fenced) */
	if (op->detached && rc < 0 && rc != -ENOLINK && rc != -ESTALE && rc != -ENOMEM &&
	    !atomic_load(&n->stop) &&
	    (op->kind == ACT_END || op->kind == ACT_DELIVERED || op->kind == ACT_CANCEL)) {
		op->due_ns = nemo_now_ns() + 1000000000ull;
		append(n, op);
		return;
	}
	if (rc < 0 && op->kind == ACT_END && (op->detached || op->abandoned))
		NEMO_LOG_RATELIMITED(NEMO_LOG_ERR, CL_MOD, 1000, 5,
				     "activation %s: its end is not in etcd: %s", op->id,
				     strerror(-rc));
	if (op->detached || op->abandoned) {
		op_free(op);
		return;
	}
	op->done = true;
}

static const struct cl_kv *kv_of(const struct cl_kvs *kvs, const char *key)
{
	for (int i = 0; i < kvs->n; i++)
		if (strcmp(kvs->kv[i].key, key) == 0)
			return &kvs->kv[i];
	return NULL;
}

static bool kv_is(const struct cl_kv *kv, const char *value, size_t len)
{
	return kv && value && kv->value_len == len && memcmp(kv->value, value, len) == 0;
}

/*
 * A cancel goes alone: its compare is on the value (the accept's revision is not known when
 * its answer was lost), and a key that is absent fails a value compare.
 */
static void commit_cancel(struct cl_node *n, struct act_op *op)
{
	struct cl_cmp cmp = {.key = op->key,
			     .target = CL_CMP_VALUE,
			     .result = CL_CMP_EQUAL,
			     .value = op->value,
			     .value_len = op->value_len};
	struct cl_op del = {.kind = CL_OP_DELETE, .key = op->key};
	bool ok = false;
	int rc = cl_etcd_txn(n->e, &cmp, 1, &del, 1, NULL, 0, &ok, NULL, NULL);

	pthread_mutex_lock(&n->b_lock);
	if (rc == 0 && ok) {
		NEMO_WARN(CL_MOD, "activation %s: refused to its caller, its record is deleted",
			  op->id);
		stat_add(n, &n->st.cancelled, 1);
	}
	finish(n, op, rc);
}

/* After a failed compare: what became of each op? b_lock held. */
static void sort_out(struct cl_node *n, struct act_op **items, int k, const struct cl_kvs *ranges,
		     int64_t reg_rev)
{
	const struct cl_kv *me = kv_of(ranges, n->node_key);
	struct act_op *retry = NULL, **tail = &retry;

	if (!me || me->create_rev != reg_rev) {
		NEMO_WARN(CL_MOD,
			  "node %s: its record is not the one it created (lease lost): %d writes "
			  "refused",
			  n->cfg.node, k);
		atomic_store(&n->registered, false);
		stat_add(n, &n->st.fenced, (uint64_t)k);
		for (int i = 0; i < k; i++)
			finish(n, items[i], -ENOLINK);
		wake_keeper(n);
		return;
	}
	/* stale ops fail, ones applied by an earlier try that timed out succeed, the rest retry */
	for (int i = 0; i < k; i++) {
		struct act_op *op = items[i];
		const struct cl_kv *kv =
			op->key && op->kind != ACT_NODE ? kv_of(ranges, op->key) : NULL;
		struct owned *o = owned_find(n, op->id);
		bool retry_it = true;

		switch (op->kind) {
		case ACT_START:
			if (kv && kv->mod_rev == op->expect_mod)
				break;
			retry_it = false;
			if (kv_is(kv, op->value, op->value_len) && o) {
				o->mod_rev = kv->mod_rev;
				o->started = true;
				finish(n, op, 0);
			} else {
				owned_drop(n, op->id);
				finish(n, op, -ESTALE);
			}
			break;
		case ACT_END:
			if (kv && kv->mod_rev == op->expect_mod)
				break;
			retry_it = false;
			if (kv_is(kv_of(ranges, op->res_key), op->res_value, op->res_len)) {
				if (op->value && kv_is(kv, op->value, op->value_len) && o) {
					o->mod_rev = kv->mod_rev;
					o->ended = true;
				} else {
					owned_drop(n, op->id);
				}
				finish(n, op, 0);
			} else {
				owned_drop(n, op->id);
				finish(n, op, -ESTALE);
			}
			break;
		case ACT_DELIVERED:
			if (kv && kv->mod_rev == op->expect_mod)
				break;
			retry_it = false;
			owned_drop(n, op->id); /* gone (applied), or another node's now */
			finish(n, op, kv ? -ESTALE : 0);
			break;
		default:
			break;
		}
		if (retry_it) {
			op->next = NULL;
			*tail = op;
			tail = &op->next;
		}
	}
	if (retry) {
		*tail = n->pending;
		if (!n->pending)
			n->pending_tail = tail;
		n->pending = retry;
	}
}

/*
 * Commit one batch. Every txn holds only while our record is the one we created (the fence);
 * start, end and delivered also need their in-flight record unchanged since we wrote it. When
 * the txn fails, its failure branch reads those keys so we know which op is to blame. Called
 * without b_lock; returns with it held (the ops are finished under it).
 */
static void commit_batch(struct cl_node *n, struct act_op **items, int k)
{
	struct cl_cmp cmp[1 + BATCH_MAX];
	struct cl_op ok[2 * BATCH_MAX], fail[1 + 2 * BATCH_MAX];
	int n_cmp = 0, n_ok = 0, n_fail = 0;
	int64_t reg_rev, lease, lease_res, rev = 0;
	struct cl_kvs ranges = {0};
	bool succeeded = false;
	uint64_t t0;
	int rc;

	if (!cl_etcd_reachable(n->e) && !atomic_load(&n->stop)) {
		/*
		 * cut off from etcd (the last call reached no member): fail at once rather than
		 * each after a timeout; the keeper's keepalive probes, and what nobody waits for
		 * goes again later
		 */
		pthread_mutex_lock(&n->b_lock);
		for (int i = 0; i < k; i++)
			finish(n, items[i], -ETIMEDOUT);
		return;
	}
	if (k == 1 && items[0]->kind == ACT_CANCEL)
		return commit_cancel(n, items[0]);
	pthread_mutex_lock(&n->reg_lock);
	reg_rev = n->reg_rev;
	lease = n->lease;
	lease_res = n->results_lease;
	pthread_mutex_unlock(&n->reg_lock);
	if (!atomic_load(&n->registered)) {
		stat_add(n, &n->st.fenced, (uint64_t)k);
		pthread_mutex_lock(&n->b_lock);
		for (int i = 0; i < k; i++)
			finish(n, items[i], -ENOLINK);
		return;
	}
	cmp[n_cmp++] = (struct cl_cmp){.key = n->node_key,
				       .target = CL_CMP_CREATE,
				       .result = CL_CMP_EQUAL,
				       .number = reg_rev};
	fail[n_fail++] = (struct cl_op){.kind = CL_OP_GET, .key = n->node_key};
	for (int i = 0; i < k; i++) {
		struct act_op *op = items[i];

		switch (op->kind) {
		case ACT_START:
		case ACT_END:
		case ACT_DELIVERED:
			cmp[n_cmp++] = (struct cl_cmp){.key = op->key,
						       .target = CL_CMP_MOD,
						       .result = CL_CMP_EQUAL,
						       .number = op->expect_mod};
			fail[n_fail++] = (struct cl_op){.kind = CL_OP_GET, .key = op->key};
			break;
		default:
			break;
		}
		if (op->kind == ACT_FLUSH)
			continue;
		if (op->kind == ACT_END) {
			ok[n_ok++] = (struct cl_op){.kind = CL_OP_PUT,
						    .key = op->res_key,
						    .value = op->res_value,
						    .value_len = op->res_len,
						    .lease = lease_res};
			fail[n_fail++] = (struct cl_op){.kind = CL_OP_GET, .key = op->res_key};
		}
		if (op->value)
			ok[n_ok++] = (struct cl_op){.kind = CL_OP_PUT,
						    .key = op->key,
						    .value = op->value,
						    .value_len = op->value_len,
						    .lease = op->kind == ACT_NODE ? lease : 0};
		else
			ok[n_ok++] = (struct cl_op){.kind = CL_OP_DELETE, .key = op->key};
	}
	if (n_ok == 0) {
		pthread_mutex_lock(&n->b_lock); /* flushes only: nothing to write */
		for (int i = 0; i < k; i++)
			finish(n, items[i], 0);
		return;
	}
	/*
	 * A leader election makes every member answer "no leader" for a moment: try again for
	 * about a second, as long as some member answers. A txn that timed out may have been
	 * applied; the failure branch's reads tell (sort_out), so trying again is safe.
	 */
	t0 = nemo_now_ms();
	pthread_mutex_lock(&n->b_lock);
	for (int i = 0; i < k; i++)
		items[i]->on_wire = true;
	pthread_mutex_unlock(&n->b_lock);
	for (int attempt = 0;; attempt++) {
		rc = cl_etcd_txn(n->e, cmp, n_cmp, ok, n_ok, fail, n_fail, &succeeded, &rev,
				 &ranges);
		if (rc == 0 || nemo_now_ms() - t0 > RETRY_MS || atomic_load(&n->stop) ||
		    !cl_etcd_reachable(n->e) ||
		    !(rc == -EAGAIN || rc == -ETIMEDOUT || rc == -ECONNREFUSED ||
		      rc == -ECONNRESET || rc == -EPROTO))
			break;
		cl_sleep_ms(attempt < 4 ? 50 << attempt : 400);
	}
	pthread_mutex_lock(&n->b_lock);
	if (rc < 0) {
		for (int i = 0; i < k; i++)
			finish(n, items[i], rc);
		return;
	}
	atomic_store(&n->stalled, false);
	pthread_mutex_lock(&n->stats_lock);
	n->st.txns++;
	n->st.act_ops += (uint64_t)n_ok;
	pthread_mutex_unlock(&n->stats_lock);
	if (!succeeded) {
		sort_out(n, items, k, &ranges, reg_rev);
		cl_kvs_release(&ranges);
		return;
	}
	for (int i = 0; i < k; i++) {
		struct act_op *op = items[i];
		struct owned *o = owned_find(n, op->id);

		switch (op->kind) {
		case ACT_ACCEPT:
			if (!op->abandoned) {
				op->own.mod_rev = rev;
				owned_put(n, &op->own);
				stat_add(n, &n->st.accepted, 1);
			}
			break;
		case ACT_START:
			if (o) {
				o->mod_rev = rev;
				o->started = true;
			}
			stat_add(n, &n->st.started, 1);
			break;
		case ACT_END:
			if (op->value && o) {
				o->mod_rev = rev; /* its record waits for cl_act_delivered() */
				o->ended = true;
			} else {
				owned_drop(n, op->id);
			}
			stat_add(n, &n->st.ended, 1);
			break;
		case ACT_DELIVERED:
			owned_drop(n, op->id);
			stat_add(n, &n->st.delivered, 1);
			break;
		case ACT_NODE:
			stat_add(n, &n->st.node_records, 1);
			if (n_ok == 1)
				stat_add(n, &n->st.node_records_alone, 1);
			break;
		default:
			break;
		}
		finish(n, op, 0);
	}
	cl_kvs_release(&ranges);
}

/* Take the next batch off the queue, in order. b_lock held. */
static int take_batch(struct cl_node *n, struct act_op **items)
{
	size_t bytes = 0;
	int k = 0;

	while (n->pending && k < BATCH_MAX) {
		struct act_op *op = n->pending;
		size_t b = op->value_len + op->res_len;
		bool dup = false;

		if (op->abandoned) {
			/* its waiter gave up: never sent, as if never asked; else as if it failed */
			n->pending = op->next;
			if (!n->pending)
				n->pending_tail = &n->pending;
			if (op->on_wire)
				finish(n, op, -ETIMEDOUT);
			else
				op_free(op);
			continue;
		}
		if (op->kind == ACT_CANCEL && k > 0)
			break;
		/* a later write of an id already in this batch waits for the next one */
		for (int i = 0; i < k && op->kind != ACT_FLUSH; i++)
			if (strcmp(items[i]->id, op->id) == 0)
				dup = true;
		if (dup || (k > 0 && bytes + b > BATCH_BYTES))
			break;
		n->pending = op->next;
		if (!n->pending)
			n->pending_tail = &n->pending;
		op->sent = true;
		items[k++] = op;
		bytes += b;
		if (op->kind == ACT_CANCEL)
			break;
	}
	/* expected revisions come from the owned table, read under the lock */
	for (int i = 0; i < k; i++) {
		if (items[i]->kind == ACT_START || items[i]->kind == ACT_END ||
		    items[i]->kind == ACT_DELIVERED) {
			struct owned *o = owned_find(n, items[i]->id);

			items[i]->expect_mod = o ? o->mod_rev : -1;
		}
	}
	return k;
}

static void *batcher_main(void *arg)
{
	struct cl_node *n = arg;

	pthread_mutex_lock(&n->b_lock);
	for (;;) {
		struct act_op *items[BATCH_MAX];
		uint64_t due = UINT64_MAX;
		int k = 0;

		if (!n->pending) {
			if (atomic_load(&n->stop))
				break;
			pthread_cond_wait(&n->b_cond, &n->b_lock);
			continue;
		}
		/* the batch goes when its first window closes, or when it is full */
		for (struct act_op *op = n->pending; op && k < BATCH_MAX; op = op->next, k++)
			if (op->due_ns < due)
				due = op->due_ns;
		if (!atomic_load(&n->stop) && k < BATCH_MAX && nemo_now_ns() < due) {
			struct timespec ts = {(time_t)(due / 1000000000ull),
					      (long)(due % 1000000000ull)};

			pthread_cond_timedwait(&n->b_cond, &n->b_lock, &ts);
			continue;
		}
		k = take_batch(n, items);
		if (k == 0)
			continue;
		pthread_mutex_unlock(&n->b_lock);
		commit_batch(n, items, k); /* returns with b_lock held */
		pthread_cond_broadcast(&n->b_done);
	}
	pthread_mutex_unlock(&n->b_lock);
	return NULL;
}

int cl_act_accept(struct cl_node *n, const char *id, const char *function, const void *payload,
		  size_t len, const char *route)
{
	struct act_op *op;
	uint64_t now = nemo_epoch_ms();

	if (strlen(id) >= sizeof(op->id))
		return -EINVAL;
	if (!cl_node_healthy(n, NULL))
		return -ENOLINK; /* cut off from etcd: refuse at once, do not wait for timeouts */
	op = op_new(ACT_ACCEPT, id, n->act_prefix);
	if (!op)
		return -ENOMEM;
	op->value = act_json(id, function, n->cfg.node, n->cfg.node, "accepted", now, 0, payload,
			     len, route);
	op->own.route = route ? strdup(route) : NULL;
	if (!op->value || (route && !op->own.route)) {
		op_free(op);
		return -ENOMEM;
	}
	op->value_len = strlen(op->value);
	snprintf(op->own.id, sizeof(op->own.id), "%s", id);
	snprintf(op->own.function, sizeof(op->own.function), "%s", function);
	snprintf(op->own.origin, sizeof(op->own.origin), "%s", n->cfg.node);
	op->own.accepted_ms = now;
	return submit(n, op, n->cfg.batch_ms);
}

int cl_act_start(struct cl_node *n, const char *id)
{
	struct act_op *op;
	struct owned o;
	bool have;

	pthread_mutex_lock(&n->b_lock);
	have = owned_copy(n, id, &o);
	pthread_mutex_unlock(&n->b_lock);
	if (!have)
		return -ESTALE;
	op = op_new(ACT_START, id, n->act_prefix);
	if (op)
		op->value = act_json(id, o.function, n->cfg.node, o.origin, "running",
				     o.accepted_ms, o.adopted_ms, NULL, 0, o.route);
	free(o.route);
	if (!op || !op->value) {
		op_free(op);
		return -ENOMEM;
	}
	op->value_len = strlen(op->value);
	return submit(n, op, n->cfg.start_batch_ms);
}

int cl_act_end(struct cl_node *n, const char *id, const char *status, const void *result,
	       size_t len)
{
	struct act_op *op;
	struct owned o;
	bool have;
	cJSON *j;

	pthread_mutex_lock(&n->b_lock);
	have = owned_copy(n, id, &o);
	pthread_mutex_unlock(&n->b_lock);
	if (!have)
		return -ESTALE;
	op = op_new(ACT_END, id, n->act_prefix);
	j = cJSON_CreateObject();
	if (!op || !j || asprintf(&op->res_key, "%s%s", n->res_prefix, id) < 0) {
		if (op)
			op->res_key = NULL;
		op_free(op);
		cJSON_Delete(j);
		free(o.route);
		return -ENOMEM;
	}
	cJSON_AddNumberToObject(j, "v", CL_ACT_RECORD_V);
	cJSON_AddStringToObject(j, "id", id);
	cJSON_AddStringToObject(j, "fn", o.function);
	cJSON_AddStringToObject(j, "node", n->cfg.node);
	cJSON_AddStringToObject(j, "origin", o.origin);
	cJSON_AddStringToObject(j, "state", status);
	cJSON_AddNumberToObject(j, "accepted_ms", (double)o.accepted_ms);
	if (o.adopted_ms) {
		cJSON_AddBoolToObject(j, "adopted", true);
		cJSON_AddNumberToObject(j, "adopted_ms", (double)o.adopted_ms);
	}
	cJSON_AddNumberToObject(j, "ended_ms", (double)nemo_epoch_ms());
	cJSON_AddNumberToObject(j, "result_size", (double)len);
	if (result && len <= RESULT_INLINE)
		add_b64(j, "result", result, len);
	op->res_value = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	/* with a route, the in-flight record stays (ended) until the result reached it */
	if (o.route)
		op->value = act_json(id, o.function, n->cfg.node, o.origin, "ended", o.accepted_ms,
				     o.adopted_ms, NULL, 0, o.route);
	if (!op->res_value || (o.route && !op->value)) {
		op_free(op);
		free(o.route);
		return -ENOMEM;
	}
	op->res_len = strlen(op->res_value);
	op->value_len = op->value ? strlen(op->value) : 0;
	/* without a route nobody waits for the record: it rides in a later txn */
	op->detached = !o.route;
	free(o.route);
	return submit(n, op, end_wait_ms(n, !op->detached));
}

int cl_act_delivered(struct cl_node *n, const char *id)
{
	struct act_op *op;
	struct owned *o;

	pthread_mutex_lock(&n->b_lock);
	o = owned_find(n, id);
	if (!o || !o->ended || o->delivering) {
		pthread_mutex_unlock(&n->b_lock);
		return 0;
	}
	o->delivering = true;
	pthread_mutex_unlock(&n->b_lock);
	op = op_new(ACT_DELIVERED, id, n->act_prefix);
	if (!op)
		return -ENOMEM;
	op->detached = true;
	return submit(n, op, n->cfg.end_batch_ms);
}

int cl_node_flush(struct cl_node *n)
{
	struct act_op *op = calloc(1, sizeof(*op));

	if (!op)
		return -ENOMEM;
	op->kind = ACT_FLUSH;
	return submit(n, op, 0);
}

int cl_act_lookup(struct cl_node *n, const char *id, struct cl_act_record *out)
{
	char k1[256], k2[256];
	struct cl_op get[2] = {{.kind = CL_OP_GET, .key = k1}, {.kind = CL_OP_GET, .key = k2}};
	struct cl_kvs kvs;
	bool ok;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(k1, sizeof(k1), "%s%s", n->res_prefix, id);
	snprintf(k2, sizeof(k2), "%s%s", n->act_prefix, id);
	/* one read of both: terminal first (an activation moves from act/ to res/ in one txn) */
	rc = cl_etcd_txn(n->e, NULL, 0, get, 2, NULL, 0, &ok, NULL, &kvs);
	if (rc < 0)
		return rc;
	rc = -ENOENT;
	if (kvs.n > 0) {
		cJSON *j = record_parse(n, &kvs.kv[0], CL_ACT_RECORD_V);

		rc = j ? act_record_parse(j, out) : -EINVAL;
		out->mod_rev = kvs.kv[0].mod_rev;
		cJSON_Delete(j);
	}
	cl_kvs_release(&kvs);
	return rc;
}

/* ---- adoption ------------------------------------------------------------------------------------ */

/*
 * One record this node just took over (at revision rev): an accepted one goes to its nemod to
 * run; one whose route may not have heard its result (kept: its record stays, ended, under this
 * node) goes to be delivered. Returns 1 when it is to run here.
 */
static int adopted_one(struct cl_node *n, struct cl_act_record *r, bool kept, int64_t rev)
{
	bool accepted = strcmp(r->state, "accepted") == 0;
	struct owned o = {0};

	memcpy(o.id, r->id, sizeof(o.id));
	memcpy(o.function, r->function, sizeof(o.function));
	memcpy(o.origin, r->origin, sizeof(o.origin));
	o.accepted_ms = r->accepted_ms;
	o.adopted_ms = nemo_epoch_ms();
	o.mod_rev = rev;
	o.ended = !accepted;
	o.route = r->extra ? strdup(r->extra) : NULL;
	if (strcmp(r->state, "running") == 0)
		stat_add(n, &n->st.interrupted, 1);
	if (!accepted && !kept) {
		free(o.route);
		return 0;
	}
	pthread_mutex_lock(&n->b_lock);
	owned_put(n, &o);
	pthread_mutex_unlock(&n->b_lock);
	snprintf(r->node, sizeof(r->node), "%s", n->cfg.node);
	r->adopted = true;
	r->adopted_ms = o.adopted_ms;
	if (!accepted) {
		/* what its route is to hear: the terminal record, with the result when etcd has it */
		struct cl_act_record t;
		char *route = r->extra;
		int rc;

		r->extra = NULL;
		if (cl_act_lookup(n, r->id, &t) == 0) {
			cl_act_record_release(r);
			*r = t;
		}
		free(r->extra);
		r->extra = route;
		snprintf(r->node, sizeof(r->node), "%s", n->cfg.node);
		stat_add(n, &n->st.redelivered, 1);
		rc = n->hooks.deliver(n->hooks.arg, r);
		if (rc < 0)
			NEMO_WARN(CL_MOD,
				  "activation %s: its result was not handed on for delivery (%s): "
				  "its record waits in etcd for the next node",
				  r->id, strerror(-rc));
		return 0;
	}
	stat_add(n, &n->st.adopted, 1);
	if (n->hooks.adopt && n->hooks.adopt(n->hooks.arg, r) < 0) {
		/*
		 * not queued here (full, or stopping): it stays accepted in etcd under this node,
		 * and goes to another when this one leaves or dies; never ended unrun
		 */
		NEMO_WARN(CL_MOD,
			  "activation %s adopted but not queued here: it stays in etcd for the "
			  "next node",
			  r->id);
		pthread_mutex_lock(&n->b_lock);
		owned_drop(n, r->id);
		pthread_mutex_unlock(&n->b_lock);
	}
	return 1;
}

int cl_node_adopt_orphans(struct cl_node *n)
{
	struct cl_kvs nodes, acts;
	int adopted = 0, rc;
	uint64_t t_seen;

	rc = cl_etcd_get(n->e, n->node_prefix, true, &nodes);
	if (rc < 0)
		return rc;
	rc = cl_etcd_get(n->e, n->act_prefix, true, &acts);
	if (rc < 0) {
		cl_kvs_release(&nodes);
		return rc;
	}
	for (int i = 0; i < acts.n;) {
		struct cl_act_record recs[ADOPT_BATCH];
		struct cl_cmp cmp[2 + ADOPT_BATCH];
		struct cl_op ops[2 * ADOPT_BATCH];
		char *vals[ADOPT_BATCH], *res_vals[ADOPT_BATCH] = {0}, *res_keys[ADOPT_BATCH];
		char dead_key[256], dead[CL_NAME_MAX];
		int k = 0, n_cmp = 0, n_ops = 0, base = 0;
		int64_t reg_rev, lease_res, rev = 0;
		bool ok = false;

		dead[0] = '\0';
		/* one dead node per txn: its absence is one compare */
		for (; i < acts.n && k < ADOPT_BATCH; i++) {
			cJSON *j = record_parse(n, &acts.kv[i], CL_ACT_RECORD_V);
			bool live = false;
			char want[256];

			if (!j)
				continue;
			if (act_record_parse(j, &recs[k]) < 0) {
				cJSON_Delete(j);
				cl_act_record_release(&recs[k]);
				continue;
			}
			cJSON_Delete(j);
			snprintf(want, sizeof(want), "%s%s", n->node_prefix, recs[k].node);
			for (int m = 0; m < nodes.n; m++)
				if (strcmp(nodes.kv[m].key, want) == 0)
					live = true;
			if (strcmp(recs[k].node, n->cfg.node) == 0) {
				/* ours from before a restart (not in this run's table): claim them */
				pthread_mutex_lock(&n->b_lock);
				live = owned_find(n, recs[k].id) != NULL ||
				       recs[k].accepted_ms >= n->joined_ms;
				pthread_mutex_unlock(&n->b_lock);
			}
			if (live || (dead[0] && strcmp(dead, recs[k].node) != 0)) {
				cl_act_record_release(&recs[k]);
				if (!live && dead[0])
					break; /* another dead node: next txn */
				continue;
			}
			if (!dead[0]) {
				snprintf(dead, sizeof(dead), "%s", recs[k].node);
				snprintf(dead_key, sizeof(dead_key), "%s", want);
			}
			recs[k].mod_rev = acts.kv[i].mod_rev;
			k++;
		}
		if (k == 0)
			continue;
		pthread_mutex_lock(&n->reg_lock);
		reg_rev = n->reg_rev;
		lease_res = n->results_lease;
		pthread_mutex_unlock(&n->reg_lock);
		/* still dead (our own records: we are the fence) */
		if (strcmp(dead, n->cfg.node) != 0)
			cmp[n_cmp++] = (struct cl_cmp){.key = dead_key,
						       .target = CL_CMP_VERSION,
						       .result = CL_CMP_EQUAL,
						       .number = 0};
		base = n_cmp + 1;
		cmp[n_cmp++] = (struct cl_cmp){.key = n->node_key,
					       .target = CL_CMP_CREATE,
					       .result = CL_CMP_EQUAL,
					       .number = reg_rev};
		for (int m = 0; m < k; m++) {
			struct cl_act_record *r = &recs[m];
			/* a route to reach, and a node here to reach it: the record stays, ended */
			bool keep = r->extra && n->hooks.deliver;
			char *key;

			res_keys[m] = NULL;
			vals[m] = NULL;
			if (asprintf(&key, "%s%s", n->act_prefix, r->id) < 0) {
				k = m;
				break;
			}
			cmp[n_cmp++] = (struct cl_cmp){.key = key,
						       .target = CL_CMP_MOD,
						       .result = CL_CMP_EQUAL,
						       .number = r->mod_rev};
			if (strcmp(r->state, "accepted") == 0) {
				vals[m] = act_json(r->id, r->function, n->cfg.node, r->origin,
						   "accepted", r->accepted_ms, nemo_epoch_ms(),
						   r->payload, r->payload_len, r->extra);
				ops[n_ops++] =
					(struct cl_op){.kind = CL_OP_PUT,
						       .key = key,
						       .value = vals[m],
						       .value_len = vals[m] ? strlen(vals[m]) : 0};
			} else if (strcmp(r->state, "ended") == 0) {
				/* it ended, its result perhaps never reached its route: deliver it */
				vals[m] = keep ? act_json(r->id, r->function, n->cfg.node,
							  r->origin, "ended", r->accepted_ms,
							  nemo_epoch_ms(), NULL, 0, r->extra)
					       : NULL;
				ops[n_ops++] =
					keep ? (struct cl_op){.kind = CL_OP_PUT,
							      .key = key,
							      .value = vals[m],
							      .value_len =
								      vals[m] ? strlen(vals[m]) : 0}
					     : (struct cl_op){.kind = CL_OP_DELETE, .key = key};
			} else {
				/* it started on the dead node: it may have run; never run it again */
				cJSON *t = cJSON_CreateObject();

				cJSON_AddNumberToObject(t, "v", CL_ACT_RECORD_V);
				cJSON_AddStringToObject(t, "id", r->id);
				cJSON_AddStringToObject(t, "fn", r->function);
				cJSON_AddStringToObject(t, "node", r->node);
				cJSON_AddStringToObject(t, "origin", r->origin);
				cJSON_AddStringToObject(t, "state", "interrupted");
				cJSON_AddStringToObject(t, "ended_by", n->cfg.node);
				cJSON_AddNumberToObject(t, "accepted_ms", (double)r->accepted_ms);
				cJSON_AddNumberToObject(t, "ended_ms", (double)nemo_epoch_ms());
				res_vals[m] = cJSON_PrintUnformatted(t);
				cJSON_Delete(t);
				if (asprintf(&res_keys[m], "%s%s", n->res_prefix, r->id) < 0)
					res_keys[m] = NULL;
				ops[n_ops++] = (struct cl_op){
					.kind = CL_OP_PUT,
					.key = res_keys[m] ? res_keys[m] : key,
					.value = res_vals[m],
					.value_len = res_vals[m] ? strlen(res_vals[m]) : 0,
					.lease = lease_res};
				/* its route hears that it was interrupted */
				vals[m] = keep ? act_json(r->id, r->function, n->cfg.node,
							  r->origin, "ended", r->accepted_ms,
							  nemo_epoch_ms(), NULL, 0, r->extra)
					       : NULL;
				ops[n_ops++] =
					keep ? (struct cl_op){.kind = CL_OP_PUT,
							      .key = key,
							      .value = vals[m],
							      .value_len =
								      vals[m] ? strlen(vals[m]) : 0}
					     : (struct cl_op){.kind = CL_OP_DELETE, .key = key};
			}
		}
		rc = cl_etcd_txn(n->e, cmp, n_cmp, ops, n_ops, NULL, 0, &ok, &rev, NULL);
		if (rc == 0 && ok) {
			uint64_t now = nemo_now_ms();

			pthread_mutex_lock(&n->stats_lock);
			t_seen = n->death_seen_ms;
			n->st.txns++;
			n->st.act_ops += (uint64_t)n_ops;
			if (t_seen)
				n->st.last_adoption_ms = now - t_seen;
			pthread_mutex_unlock(&n->stats_lock);
			NEMO_INFO(CL_MOD, "node %s adopted %d activations of %s node %s",
				  n->cfg.node, k,
				  strcmp(dead, n->cfg.node) ? "dead" : "its own earlier", dead);
			for (int m = 0; m < k; m++)
				adopted += adopted_one(n, &recs[m], vals[m] != NULL, rev);
		}
		for (int m = 0; m < k; m++) {
			free((void *)cmp[base + m].key);
			free(vals[m]);
			free(res_vals[m]);
			free(res_keys[m]);
			cl_act_record_release(&recs[m]);
		}
		if (rc < 0)
			break;
	}
	cl_kvs_release(&nodes);
	cl_kvs_release(&acts);
	return rc < 0 ? rc : adopted;
}

/* ---- join and leave ------------------------------------------------------------------------------ */

struct cl_node *cl_node_join(const struct cl_config *cfg, const struct cl_hooks *hooks)
{
	struct cl_node *n = calloc(1, sizeof(*n));
	const char *eps[CL_MAX_ENDPOINTS];
	int rc;

	if (!n)
		return NULL;
	n->cfg = *cfg;
	n->joined_ms = nemo_epoch_ms();
	if (hooks)
		n->hooks = *hooks;
	if (!cfg->node[0] || strchr(cfg->node, '/')) {
		NEMO_ERR(CL_MOD, "cluster.node '%s': a name without '/' is required", cfg->node);
		free(n);
		errno = EINVAL;
		return NULL;
	}
	snprintf(n->node_prefix, sizeof(n->node_prefix), "%s/node/", cfg->prefix);
	snprintf(n->fn_prefix, sizeof(n->fn_prefix), "%s/fn/", cfg->prefix);
	snprintf(n->act_prefix, sizeof(n->act_prefix), "%s/act/", cfg->prefix);
	snprintf(n->res_prefix, sizeof(n->res_prefix), "%s/res/", cfg->prefix);
	/* one watch over fn/ and node/: "fn/" < "node/" < "node0" */
	snprintf(n->watch_end, sizeof(n->watch_end), "%s/node0", cfg->prefix);
	snprintf(n->node_key, sizeof(n->node_key), "%s%s", n->node_prefix, cfg->node);
	pthread_mutex_init(&n->reg_lock, NULL);
	pthread_mutex_init(&n->view_lock, NULL);
	pthread_mutex_init(&n->b_lock, NULL);
	pthread_mutex_init(&n->wake_lock, NULL);
	pthread_mutex_init(&n->stats_lock, NULL);
	{
		pthread_condattr_t ca;

		/* the batcher's windows and its waiters' deadlines are on the monotonic clock */
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&n->b_cond, &ca);
		pthread_cond_init(&n->b_done, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_cond_init(&n->wake, NULL);
	n->pending_tail = &n->pending;
	for (int i = 0; i < cfg->n_endpoints; i++)
		eps[i] = cfg->endpoints[i];
	{
		struct cl_etcd_security sec = {cfg->ca_file, cfg->cert_file, cfg->key_file,
					       cfg->user, cfg->password};

		n->e = cl_etcd_new_secure(eps, cfg->n_endpoints, (int)cfg->timeout_ms, &sec);
	}
	if (!n->e) {
		rc = -errno;
		goto fail;
	}
	rc = cl_etcd_wait_ready(n->e, (int)cfg->start_wait_ms, n->node_key);
	if (rc < 0)
		goto fail;
	rc = cl_etcd_lease_grant(n->e, (int)cfg->results_ttl_s, &n->results_lease);
	if (rc < 0)
		goto fail;
	n->results_lease_ms = nemo_now_ms();
	rc = register_node(n);
	if (rc < 0)
		goto fail;
	n->watch = cl_watch_start(n->e, n->fn_prefix, n->watch_end,
				  (int)(3 * heartbeat_ms(n) + cfg->timeout_ms), on_watch, n);
	if (!n->watch) {
		rc = -errno;
		goto fail_registered;
	}
	rc = -pthread_create(&n->batcher, NULL, batcher_main, n);
	n->batcher_started = rc == 0;
	if (rc == 0)
		rc = -pthread_create(&n->keeper, NULL, keeper_main, n);
	if (rc < 0) {
		atomic_store(&n->stop, true);
		pthread_mutex_lock(&n->b_lock);
		pthread_cond_broadcast(&n->b_cond);
		pthread_mutex_unlock(&n->b_lock);
		if (n->batcher_started)
			pthread_join(n->batcher, NULL);
		goto fail_watch;
	}
	return n;
fail_watch:
	cl_watch_stop(n->watch);
fail_registered:
	cl_etcd_lease_revoke(n->e, n->lease);
fail:
	cl_etcd_destroy(n->e);
	free(n->last_record);
	explicit_bzero(n->cfg.password, sizeof(n->cfg.password));
	free(n);
	errno = -rc;
	return NULL;
}

void cl_node_leave(struct cl_node *n)
{
	if (!n)
		return;
	atomic_store(&n->stop, true);
	wake_keeper(n);
	pthread_join(n->keeper, NULL);
	pthread_mutex_lock(&n->b_lock);
	pthread_cond_broadcast(&n->b_cond);
	pthread_mutex_unlock(&n->b_lock);
	pthread_join(n->batcher, NULL); /* it commits what is queued first */
	cl_watch_stop(n->watch);
	if (atomic_load(&n->registered))
		cl_etcd_lease_revoke(n->e, n->lease);
	cl_etcd_destroy(n->e);
	for (int i = 0; i < n->n_peers; i++)
		cl_node_info_release(&n->peers[i].info);
	for (int b = 0; b < OWNED_BUCKETS; b++)
		while (n->owned[b]) {
			struct owned *o = n->owned[b];

			n->owned[b] = o->next;
			free(o->route);
			free(o);
		}
	free(n->fns);
	free(n->fn_revs);
	free(n->last_record);
	explicit_bzero(n->cfg.password, sizeof(n->cfg.password));
	free(n);
}

void cl_node_note_offload(struct cl_node *n, bool in, int reason, bool failed)
{
	pthread_mutex_lock(&n->stats_lock);
	if (failed)
		n->st.offload_failures++;
	else if (reason >= 0 && reason < CL_WHY_N)
		n->st.offloads[in][reason]++;
	pthread_mutex_unlock(&n->stats_lock);
}

void cl_node_note_fetches(struct cl_node *n, const struct cl_fetch_stats *fs)
{
	pthread_mutex_lock(&n->stats_lock);
	n->st.fetch = *fs;
	pthread_mutex_unlock(&n->stats_lock);
}

void cl_node_stats(struct cl_node *n, struct cl_stats *st)
{
	pthread_mutex_lock(&n->stats_lock);
	*st = n->st;
	pthread_mutex_unlock(&n->stats_lock);
	pthread_mutex_lock(&n->view_lock);
	st->nodes_alive = (uint32_t)n->n_peers;
	pthread_mutex_unlock(&n->view_lock);
	cl_etcd_stats(n->e, &st->etcd);
}
