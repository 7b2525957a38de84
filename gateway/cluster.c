/*
 * cluster.c - nemod in an edge cluster (cluster/README.md): joins it, shares deploys through
 * the registry in etcd, records async activations there before their 202, adopts a dead
 * node's, forwards calls by the offload policy, and answers the /api/v1/cluster routes. With
 * cluster.enabled false none of this runs and a nemod is alone, as before.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "nemo/base64.h"
#include "nemo/clock.h"
#include "nemo/log.h"
#include "gw_internal.h"

/* A deploy or delete that came from the cluster is not published back to it. */
static __thread bool from_cluster;

/* A result to deliver to its route for a node that died before it did. */
struct delivery {
	struct delivery *next;
	char id[GW_ID_LEN + 1];
	char function[SBX_NAME_MAX];
	char state[24];
	uint8_t *result;
	size_t len;
	char *route;
};

/* An ended activation whose worker has still to deliver its result (one per worker thread). */
struct undelivered {
	pthread_t worker;
	char id[GW_ID_LEN + 1];
};

/* What this file keeps beside struct gw_cluster, which comes first: d->cluster points at it. */
struct glue {
	struct gw_cluster c;
	pthread_mutex_t ack_lock;
	struct undelivered *acks;
	int n_acks, cap_acks;
	/* the route thread: adopted results to deliver (the adopter's thread must not block) */
	pthread_t router;
	bool router_started, router_stop;
	pthread_mutex_t route_lock;
	pthread_cond_t route_cond;
	struct delivery *dl_head, **dl_tail;
};

static struct glue *glue_of(struct gw_daemon *d)
{
	return (struct glue *)d->cluster;
}

/* ---- this node's load, for its record and for the policy ---------------------------------------- */

/* Refresh the cached per-core spare (at most every 50 ms). c->lock held. */
static void refresh_spare(struct gw_daemon *d)
{
	struct gw_cluster *c = d->cluster;
	uint64_t now = nemo_now_ns();

	if (c->n_cores && now - c->spare_ns < 50000000ull)
		return;
	c->spare_ns = now;
	if (d->dispatch.ops->cores) {
		struct sched_cosched_core cores[CL_MAX_CORES];
		int n = d->dispatch.ops->cores(d->dispatch.state, cores, CL_MAX_CORES);

		/* harvesting: the NF cores and their predicted spare; none known means none */
		c->n_cores = 0;
		for (int i = 0; i < n; i++) {
			c->cores[c->n_cores] = cores[i].s.cpu;
			c->spare[c->n_cores++] = cores[i].up ? cores[i].s.spare_pred : 0;
		}
		return;
	}
	/*
	 * Without harvesting the sandbox cores are this nemod's: their spare is what its own
	 * invocations in flight leave of them (other tenants of a shared host are not counted).
	 */
	c->n_cores = d->cfg.n_sandbox_cores < CL_MAX_CORES ? d->cfg.n_sandbox_cores : CL_MAX_CORES;
	memcpy(c->cores, d->cfg.sandbox_cores, sizeof(int) * (size_t)c->n_cores);
	for (int i = 0; i < c->n_cores; i++) {
		double busy = (double)atomic_load(&d->inflight) / (double)c->n_cores;

		c->spare[i] = busy >= 1 ? 0 : 1 - busy;
	}
}

struct load_arg {
	struct gw_daemon *d;
	cJSON *warm, *fns;
};

static void add_load(void *arg, struct gw_function *fn)
{
	struct load_arg *la = arg;
	struct sbx_pool_stats st = {0};

	cJSON_AddItemToArray(la->fns, cJSON_CreateString(fn->spec.name));
	if (la->d->backend.ops->stats &&
	    la->d->backend.ops->stats(la->d->backend.state, fn->spec.name, &st) == 0 && st.idle)
		cJSON_AddNumberToObject(la->warm, fn->spec.name, st.idle);
}

static void hook_load(void *arg, struct cl_local_load *out)
{
	struct gw_daemon *d = arg;
	struct gw_cluster *c = d->cluster;
	struct load_arg la = {d, cJSON_CreateObject(), cJSON_CreateArray()};

	gw_fn_foreach(d, add_load, &la);
	pthread_mutex_lock(&c->lock);
	refresh_spare(d);
	out->n_cores = c->n_cores;
	memcpy(out->cores, c->cores, sizeof(int) * (size_t)c->n_cores);
	memcpy(out->spare, c->spare, sizeof(double) * (size_t)c->n_cores);
	free(c->warm_json);
	free(c->fns_json);
	c->warm_json = cJSON_PrintUnformatted(la.warm);
	c->fns_json = cJSON_PrintUnformatted(la.fns);
	out->warm_json = c->warm_json;
	out->functions_json = c->fns_json;
	pthread_mutex_unlock(&c->lock);
	out->queue = d->q_len;
	cJSON_Delete(la.warm);
	cJSON_Delete(la.fns);
}

/* ---- the registry -------------------------------------------------------------------------------- */

/* The code of a single-file function; NULL (errno EISDIR) for folders (zips), or unreadable. */
static uint8_t *code_bytes(const struct gw_function *fn, size_t *len)
{
	char dir[GW_PATH_MAX];
	struct stat st;
	struct dirent *e;
	DIR *dh;
	int files = 0;
	char *slash;

	if (stat(fn->spec.code, &st) || !S_ISREG(st.st_mode)) {
		errno = EISDIR;
		return NULL;
	}
	/* one file in its version folder: a zip's entry has company, and is not sent alone */
	snprintf(dir, sizeof(dir), "%s", fn->spec.code);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	dh = opendir(dir);
	while (dh && (e = readdir(dh)))
		files += e->d_name[0] != '.';
	if (dh)
		closedir(dh);
	if (files != 1) {
		errno = EISDIR;
		return NULL;
	}
	return (uint8_t *)gw_read_file(fn->spec.code, 256u << 20, len);
}

void gw_cluster_deployed(struct gw_daemon *d, const char *key)
{
	struct gw_function *fn;
	cJSON *wrap, *doc;
	uint8_t *code;
	size_t len = 0;
	char *text;
	int rc;

	if (!d->cluster || from_cluster)
		return;
	fn = gw_fn_get(d, key);
	if (!fn)
		return;
	code = code_bytes(fn, &len);
	if (!code) {
		NEMO_WARN(GW_MOD,
			  "function=%s is served here only: the cluster shares single-file code, "
			  "not folders (zip deploys)",
			  key);
		gw_fn_put(fn);
		return;
	}
	doc = cJSON_Parse(fn->doc);
	wrap = cJSON_CreateObject();
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "code");
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "name");
	cJSON_AddItemToObject(wrap, "doc", doc ? doc : cJSON_CreateObject());
	cJSON_AddStringToObject(wrap, "file", strrchr(fn->spec.code, '/') + 1);
	text = cJSON_PrintUnformatted(wrap);
	cJSON_Delete(wrap);
	cl_sha256_hex(code, len, fn->cluster_sha);
	rc = text ? cl_node_fn_publish(d->cluster->node, key, fn->version, text, code, len)
		  : -ENOMEM;
	if (rc)
		NEMO_ERR(GW_MOD, "function=%s: not shared with the cluster: %s", key,
			 strerror(-rc));
	free(text);
	free(code);
	gw_fn_put(fn);
}

void gw_cluster_undeployed(struct gw_daemon *d, const char *key)
{
	int rc;

	if (!d->cluster || from_cluster)
		return;
	rc = cl_node_fn_unpublish(d->cluster->node, key);
	if (rc && rc != -ENOENT)
		NEMO_ERR(GW_MOD, "function=%s: its delete did not reach the cluster: %s", key,
			 strerror(-rc));
}

/* The code of a function from the node that has it, checked against the record's sha256. */
static uint8_t *fetch_code(struct gw_daemon *d, const struct cl_fn_record *rec, size_t *len)
{
	char path[SBX_NAME_MAX + 64], auth[300], sha[65];
	const char *hdr[] = {auth};
	struct cl_http_reply rp;
	uint8_t *code;
	int rc;

	snprintf(path, sizeof(path), "/api/v1/cluster/code/%s", rec->name);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", d->creds.c[0].whole);
	rc = cl_http_forward(rec->owner_address, "GET", path, hdr, 1, NULL, 0, 30000, &rp);
	if (rc || rp.status != 200) {
		NEMO_ERR(GW_MOD, "function=%s: fetching its code from node %s at %s: %s", rec->name,
			 rec->owner, rec->owner_address,
			 rc ? strerror(-rc) : (rp.body ? rp.body : "no answer"));
		cl_http_reply_release(&rp);
		return NULL;
	}
	cl_sha256_hex(rp.body, rp.len, sha);
	if (strcmp(sha, rec->code_sha)) {
		NEMO_ERR(GW_MOD,
			 "function=%s: code from node %s does not match its record's sha256",
			 rec->name, rec->owner);
		cl_http_reply_release(&rp);
		return NULL;
	}
	code = (uint8_t *)rp.body;
	*len = rp.len;
	rp.body = NULL;
	cl_http_reply_release(&rp);
	return code;
}

static int hook_fn_deployed(void *arg, const struct cl_fn_record *rec)
{
	struct gw_daemon *d = arg;
	struct gw_deploy_req req;
	struct gw_function *have = gw_fn_get(d, rec->name);
	const cJSON *doc, *file;
	cJSON *wrap;
	char err[512];
	int rc;

	/* already served, from this very record (a watch that reconnected reads it again) */
	if (have && !strcmp(have->cluster_sha, rec->code_sha) &&
	    have->cluster_stamp == rec->deployed_ms) {
		gw_fn_put(have);
		return 0;
	}
	gw_fn_put(have);
	memset(&req, 0, sizeof(req));
	wrap = cJSON_Parse(rec->spec);
	doc = cJSON_GetObjectItemCaseSensitive(wrap, "doc");
	file = cJSON_GetObjectItemCaseSensitive(wrap, "file");
	if (!cJSON_IsObject(doc) || !cJSON_IsString(file) || !gw_key_valid(rec->name)) {
		cJSON_Delete(wrap);
		NEMO_WARN(GW_MOD, "function record %s from node %s ignored: malformed", rec->name,
			  rec->owner);
		return -EINVAL;
	}
	snprintf(req.name, sizeof(req.name), "%s", rec->name);
	snprintf(req.code_file, sizeof(req.code_file), "%s", file->valuestring);
	req.doc = cJSON_Duplicate(doc, true);
	cJSON_Delete(wrap);
	req.code_kind = GW_CODE_BYTES;
	if (rec->code) {
		req.code = malloc(rec->code_len ? rec->code_len : 1);
		if (req.code)
			memcpy(req.code, rec->code, rec->code_len);
		req.code_len = rec->code_len;
	} else {
		req.code = fetch_code(d, rec, &req.code_len);
	}
	if (!req.code || !req.doc) {
		gw_deploy_req_release(&req);
		return -EIO;
	}
	from_cluster = true;
	rc = gw_svc_deploy(d, &req, GW_DEPLOY_OVERWRITE, err, sizeof(err));
	from_cluster = false;
	if (rc) {
		NEMO_ERR(GW_MOD, "function=%s from node %s: %s", rec->name, rec->owner, err);
		return rc;
	}
	have = gw_fn_get(d, rec->name);
	if (have) {
		snprintf(have->cluster_sha, sizeof(have->cluster_sha), "%s", rec->code_sha);
		have->cluster_stamp = rec->deployed_ms;
		gw_fn_put(have);
	}
	NEMO_INFO(GW_MOD, "function=%s deployed from node %s (its version %llu)", rec->name,
		  rec->owner, (unsigned long long)rec->version);
	return 0;
}

static void hook_fn_deleted(void *arg, const char *name)
{
	struct gw_daemon *d = arg;

	from_cluster = true;
	if (gw_svc_undeploy(d, name) == 0)
		NEMO_INFO(GW_MOD, "function=%s deleted by the cluster", name);
	from_cluster = false;
}

/* ---- activation records ------------------------------------------------------------------------ */

/* The node, once cl_node_join() has returned it (its threads may call hooks before). */
static struct cl_node *node_of(struct gw_daemon *d)
{
	struct cl_node *n;

	while (!(n = __atomic_load_n(&d->cluster->node, __ATOMIC_ACQUIRE)))
		usleep(1000);
	return n;
}

static int hook_adopt(void *arg, const struct cl_act_record *rec)
{
	struct gw_daemon *d = arg;
	uint64_t seq;
	enum gw_act_status st;
	int rc;

	rc = gw_act_adopt(&d->acts, rec->id, rec->function, &seq, &st);
	if (rc == -EEXIST) {
		/* ours, replayed from the journal: queued already, or ended before etcd heard */
		gw_act_set_clustered(&d->acts, seq, true);
		if (gw_act_terminal(st)) {
			enum gw_act_status s;
			char msg[SBX_MSG_MAX];
			uint8_t *res = NULL;
			size_t len = 0;

			/* its route heard it in that earlier run, or hears it from the journal */
			if (gw_act_outcome(&d->acts, seq, &s, msg, sizeof(msg), &res, &len) == 0 &&
			    cl_act_end(node_of(d), rec->id, gw_act_status_name(s), res, len) == 0)
				cl_act_delivered(node_of(d), rec->id);
			free(res);
		}
		return 0;
	}
	if (rc)
		return rc;
	gw_act_set_clustered(&d->acts, seq, true);
	{
		/* the dead node's caller still gets its callback or MQTT reply, from here */
		cJSON *route = rec->extra ? cJSON_Parse(rec->extra) : NULL;
		const cJSON *cb = cJSON_GetObjectItemCaseSensitive(route, "callback");
		const cJSON *rt = cJSON_GetObjectItemCaseSensitive(route, "reply_topic");
		const cJSON *qos = cJSON_GetObjectItemCaseSensitive(route, "qos");
		const cJSON *corr = cJSON_GetObjectItemCaseSensitive(route, "correlation");
		uint8_t cbytes[128];
		long clen = 0;

		if (cJSON_IsString(corr))
			clen = nemo_base64_decode(corr->valuestring, strlen(corr->valuestring),
						  cbytes, sizeof(cbytes));
		gw_act_set_route(&d->acts, seq, cJSON_IsNumber(qos) ? qos->valueint : 0,
				 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(route, "mqtt5")),
				 clen > 0 ? cbytes : NULL, clen > 0 ? (size_t)clen : 0,
				 cJSON_IsString(cb) ? cb->valuestring : "");
		rc = gw_act_set_work(&d->acts, seq, rec->payload, rec->payload_len,
				     cJSON_IsString(rt) ? rt->valuestring : "");
		cJSON_Delete(route);
	}
	if (!rc)
		rc = gw_journal_sync(&d->acts);
	if (!rc)
		rc = gw_enqueue(d, seq);
	if (rc) {
		/* this node's record ends; etcd's stays accepted for another node to adopt */
		gw_act_finish(&d->acts, seq, GW_ACT_CANCELLED, NULL,
			      "adopted but not queued here: left to another node");
		gw_act_set_clustered(&d->acts, seq, false);
		return rc;
	}
	NEMO_INFO(GW_MOD, "activation=%s of %s adopted from node %s", rec->id, rec->function,
		  rec->origin);
	return 0;
}

/* ---- routes of dead nodes' results ----------------------------------------------------------------- */

/* Hand a dead node's result to the route thread. */
static int hook_deliver(void *arg, const struct cl_act_record *rec)
{
	struct gw_daemon *d = arg;
	struct glue *g = glue_of(d);
	struct delivery *dl = calloc(1, sizeof(*dl));

	if (!dl)
		return -ENOMEM;
	snprintf(dl->id, sizeof(dl->id), "%s", rec->id);
	snprintf(dl->function, sizeof(dl->function), "%s", rec->function);
	snprintf(dl->state, sizeof(dl->state), "%s", rec->state);
	dl->route = rec->extra ? strdup(rec->extra) : NULL;
	if (rec->result && rec->result_len) {
		dl->result = malloc(rec->result_len);
		if (dl->result)
			memcpy(dl->result, rec->result, rec->result_len);
		dl->len = dl->result ? rec->result_len : 0;
	}
	pthread_mutex_lock(&g->route_lock);
	*g->dl_tail = dl;
	g->dl_tail = &dl->next;
	pthread_cond_signal(&g->route_cond);
	pthread_mutex_unlock(&g->route_lock);
	return 0;
}

/* Deliver one: as run_async() does for a result of its own (callback and MQTT reply). */
static void deliver(struct gw_daemon *d, const struct delivery *dl)
{
	cJSON *route = dl->route ? cJSON_Parse(dl->route) : NULL;
	const cJSON *cb = cJSON_GetObjectItemCaseSensitive(route, "callback");
	const cJSON *rt = cJSON_GetObjectItemCaseSensitive(route, "reply_topic");
	const cJSON *qos = cJSON_GetObjectItemCaseSensitive(route, "qos");
	const cJSON *corr = cJSON_GetObjectItemCaseSensitive(route, "correlation");
	bool ok = !strcmp(dl->state, "success") && dl->result;
	char ns[GW_NS_MAX], name[SBX_NAME_MAX], *text = NULL;
	const void *data = dl->result;
	size_t len = dl->len;

	if (!ok) {
		/* why there is no result, in the shape run_async() gives a failure */
		cJSON *e = cJSON_CreateObject();

		cJSON_AddStringToObject(
			e, "error",
			!strcmp(dl->state, "interrupted")
				? "the node running it died: it may have run, and is not run again"
			: !strcmp(dl->state, "success")
				? "its result (over 64 KiB) was not kept in etcd"
				: "the activation did not succeed");
		cJSON_AddStringToObject(e, "status", dl->state);
		cJSON_AddStringToObject(e, "activationId", dl->id);
		text = cJSON_PrintUnformatted(e);
		cJSON_Delete(e);
		data = text;
		len = text ? strlen(text) : 0;
	}
	gw_key_split(d->default_ns, dl->function, ns, name);
	if (cJSON_IsString(rt) && d->mqtt_sink) {
		uint8_t cbytes[128];
		long clen = cJSON_IsString(corr) ? nemo_base64_decode(corr->valuestring,
								      strlen(corr->valuestring),
								      cbytes, sizeof(cbytes))
						 : 0;

		d->mqtt_sink(d->mqtt_sink_state, rt->valuestring,
			     cJSON_IsNumber(qos) ? qos->valueint : 0,
			     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(route, "mqtt5")),
			     clen > 0 ? cbytes : NULL, clen > 0 ? (size_t)clen : 0, dl->id, data,
			     len);
	}
	if (cJSON_IsString(cb)) {
		int st = gw_callback_post(cb->valuestring, dl->id, name, ok ? 200 : 500, data, len);

		if (st < 200 || st >= 300)
			NEMO_WARN(GW_MOD, "callback url=%s activation=%s: %s %d", cb->valuestring,
				  dl->id, st < 0 ? strerror(-st) : "status", st);
	}
	NEMO_INFO(GW_MOD, "activation=%s (%s) of a dead node: its result delivered to its route",
		  dl->id, dl->state);
	cl_act_delivered(node_of(d), dl->id);
	free(text);
	cJSON_Delete(route);
}

static void delivery_free(struct delivery *dl)
{
	free(dl->result);
	free(dl->route);
	free(dl);
}

static void ack_idle(struct gw_daemon *d);

/* The route thread: dead nodes' results, and the acks of idle workers' deliveries. */
static void *router_main(void *arg)
{
	struct gw_daemon *d = arg;
	struct glue *g = glue_of(d);

	pthread_mutex_lock(&g->route_lock);
	while (!g->router_stop) {
		struct delivery *dl = g->dl_head;

		if (!dl) {
			struct timespec ts = nemo_deadline_after_ns(CLOCK_MONOTONIC, 100000000ull);

			pthread_cond_timedwait(&g->route_cond, &g->route_lock, &ts);
			pthread_mutex_unlock(&g->route_lock);
			if (__atomic_load_n(&d->cluster->node, __ATOMIC_ACQUIRE))
				ack_idle(d);
			pthread_mutex_lock(&g->route_lock);
			continue;
		}
		g->dl_head = dl->next;
		if (!g->dl_head)
			g->dl_tail = &g->dl_head;
		pthread_mutex_unlock(&g->route_lock);
		deliver(d, dl);
		delivery_free(dl);
		pthread_mutex_lock(&g->route_lock);
	}
	pthread_mutex_unlock(&g->route_lock);
	return NULL;
}

/*
 * When has a worker delivered an ended activation's result (callback, MQTT reply)? run_async()
 * in service.c records the end (gw_cluster_end), then delivers, then returns; a worker runs one
 * activation at a time. So a worker's result is delivered once the same worker begins or ends
 * another (ack_mine), or once no worker is running any (ack_idle). Until then the in-flight
 * record stays "ended" in etcd, and a node that adopts it after this one died delivers it again.
 */
static void ack_later(struct gw_daemon *d, const char *id)
{
	struct glue *g = glue_of(d);

	pthread_mutex_lock(&g->ack_lock);
	if (g->n_acks == g->cap_acks) {
		int cap = g->cap_acks ? g->cap_acks * 2 : 8;
		struct undelivered *a = realloc(g->acks, (size_t)cap * sizeof(*a));

		if (!a) {
			pthread_mutex_unlock(&g->ack_lock);
			return; /* its record stays until this node leaves: delivered again then */
		}
		g->acks = a;
		g->cap_acks = cap;
	}
	g->acks[g->n_acks].worker = pthread_self();
	snprintf(g->acks[g->n_acks++].id, GW_ID_LEN + 1, "%s", id);
	pthread_mutex_unlock(&g->ack_lock);
}

static void ack_mine(struct gw_daemon *d)
{
	struct glue *g = glue_of(d);
	char id[GW_ID_LEN + 1] = "";

	pthread_mutex_lock(&g->ack_lock);
	for (int i = 0; i < g->n_acks; i++) {
		if (pthread_equal(g->acks[i].worker, pthread_self())) {
			snprintf(id, sizeof(id), "%s", g->acks[i].id);
			g->acks[i] = g->acks[--g->n_acks];
			break;
		}
	}
	pthread_mutex_unlock(&g->ack_lock);
	if (id[0])
		cl_act_delivered(d->cluster->node, id);
}

static void ack_idle(struct gw_daemon *d)
{
	struct glue *g = glue_of(d);
	char(*ids)[GW_ID_LEN + 1] = NULL;
	int n = 0;
	bool idle;

	/* what was waiting before the workers were seen idle had its delivery done */
	pthread_mutex_lock(&g->ack_lock);
	if (g->n_acks && (ids = malloc((size_t)g->n_acks * sizeof(*ids)))) {
		n = g->n_acks;
		for (int i = 0; i < n; i++)
			memcpy(ids[i], g->acks[i].id, sizeof(ids[i]));
	}
	pthread_mutex_unlock(&g->ack_lock);
	if (!n)
		return;
	pthread_mutex_lock(&d->q_lock);
	idle = d->q_active == 0;
	pthread_mutex_unlock(&d->q_lock);
	for (int k = 0; idle && k < n; k++) {
		bool found = false;

		pthread_mutex_lock(&g->ack_lock);
		for (int i = 0; i < g->n_acks; i++) {
			if (!strcmp(g->acks[i].id, ids[k])) {
				g->acks[i] = g->acks[--g->n_acks];
				found = true;
				break;
			}
		}
		pthread_mutex_unlock(&g->ack_lock);
		if (found)
			cl_act_delivered(d->cluster->node, ids[k]);
	}
	free(ids);
}

/* Where the result goes besides the record (callback, MQTT reply), for an adopter. */
static char *route_json(const struct gw_call *call)
{
	cJSON *j = cJSON_CreateObject();
	char *s;

	if (!j)
		return NULL;
	if (call->callback_url && call->callback_url[0])
		cJSON_AddStringToObject(j, "callback", call->callback_url);
	if (call->reply_topic && call->reply_topic[0]) {
		cJSON_AddStringToObject(j, "reply_topic", call->reply_topic);
		cJSON_AddNumberToObject(j, "qos", call->qos);
		cJSON_AddBoolToObject(j, "mqtt5", call->mqtt5);
		if (call->correlation_len) {
			char *b = nemo_base64_encode(call->correlation, call->correlation_len);

			if (b)
				cJSON_AddStringToObject(j, "correlation", b);
			free(b);
		}
	}
	s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

int gw_cluster_accept(struct gw_daemon *d, uint64_t seq, const char *id, const char *key,
		      const void *payload, size_t len, const struct gw_call *call, char *err,
		      size_t errlen)
{
	const char *why = NULL;
	char *route;
	int rc;

	if (!d->cluster)
		return 0;
	if (!cl_node_healthy(d->cluster->node, &why)) {
		snprintf(err, errlen, "cannot accept the activation: %s (etcd at %s)", why,
			 cl_etcd_endpoints(cl_node_etcd(d->cluster->node)));
		return -ENOSPC;
	}
	route = route_json(call);
	rc = cl_act_accept(d->cluster->node, id, key, payload, len,
			   route && strcmp(route, "{}") ? route : NULL);
	free(route);
	if (rc) {
		if (!cl_node_healthy(d->cluster->node, &why))
			snprintf(err, errlen, "cannot accept the activation: %s (etcd at %s)", why,
				 cl_etcd_endpoints(cl_node_etcd(d->cluster->node)));
		else
			snprintf(err, errlen,
				 "cannot accept the activation: it could not be recorded in etcd "
				 "(%s): %s",
				 cl_etcd_endpoints(cl_node_etcd(d->cluster->node)), strerror(-rc));
		return -ENOSPC;
	}
	gw_act_set_clustered(&d->acts, seq, true);
	return 0;
}

int gw_cluster_begin(struct gw_daemon *d, uint64_t seq, const char *id)
{
	int rc;

	if (!d->cluster)
		return 0;
	ack_mine(d); /* this worker's last activation, its result delivered: it is beginning anew */
	if (!gw_act_clustered(&d->acts, seq)) {
		/* replayed from the journal, not taken over at join: did another node adopt it? */
		struct cl_act_record rec;

		rc = cl_act_lookup(d->cluster->node, id, &rec);
		if (rc == -ENOENT)
			return 0; /* never in etcd (accepted before this node was in a cluster) */
		if (rc)
			return rc;
		rc = strcmp(rec.node, cl_node_name(d->cluster->node)) ||
				     strcmp(rec.state, "accepted")
			     ? -ESTALE
			     : 0;
		cl_act_record_release(&rec);
		if (rc)
			NEMO_WARN(GW_MOD, "activation=%s: another node took it over; not run here",
				  id);
		return rc;
	}
	rc = cl_act_start(d->cluster->node, id);
	if (rc == -ESTALE)
		NEMO_WARN(GW_MOD,
			  "activation=%s: adopted by another node while this one was cut "
			  "off from etcd; not run here",
			  id);
	return rc;
}

void gw_cluster_end(struct gw_daemon *d, uint64_t seq, const char *id, enum gw_act_status st,
		    const void *result, size_t len)
{
	int rc;

	if (!d->cluster || !gw_act_clustered(&d->acts, seq))
		return;
	ack_mine(d);
	rc = cl_act_end(d->cluster->node, id, gw_act_status_name(st), result, len);
	if (rc)
		NEMO_LOG_RATELIMITED(NEMO_LOG_ERR, GW_MOD, 1000, 5,
				     "activation=%s: its end is not in etcd: %s", id,
				     strerror(-rc));
	else
		ack_later(d, id); /* the worker delivers the result next, then returns */
}

/* An activation this node does not hold, from etcd: OpenWhisk's record shape. */
cJSON *gw_cluster_act_json(struct gw_daemon *d, const char *id)
{
	struct cl_act_record rec;
	cJSON *j, *resp;
	char ns[GW_NS_MAX], name[SBX_NAME_MAX];
	bool terminal;

	if (!d->cluster || cl_act_lookup(d->cluster->node, id, &rec))
		return NULL;
	terminal = strcmp(rec.state, "accepted") && strcmp(rec.state, "running");
	gw_key_split(d->default_ns, rec.function, ns, name);
	j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "activationId", rec.id);
	cJSON_AddStringToObject(j, "name", name);
	cJSON_AddStringToObject(j, "namespace", ns);
	cJSON_AddStringToObject(j, "status", rec.state);
	cJSON_AddStringToObject(j, "node", rec.node);
	cJSON_AddStringToObject(j, "origin", rec.origin);
	if (rec.adopted) {
		cJSON_AddBoolToObject(j, "adopted", true);
		cJSON_AddNumberToObject(j, "adopted_ms", (double)rec.adopted_ms);
	}
	cJSON_AddNumberToObject(j, "start", (double)rec.accepted_ms);
	if (rec.ended_ms)
		cJSON_AddNumberToObject(j, "end", (double)rec.ended_ms);
	resp = cJSON_AddObjectToObject(j, "response");
	cJSON_AddStringToObject(resp, "status", rec.state);
	cJSON_AddBoolToObject(resp, "success", !strcmp(rec.state, "success"));
	if (terminal && rec.result) {
		cJSON *r = cJSON_ParseWithLength((const char *)rec.result, rec.result_len);

		cJSON_AddItemToObject(resp, "result",
				      r ? r : cJSON_CreateString((const char *)rec.result));
	}
	cl_act_record_release(&rec);
	return j;
}

/* ---- offload -------------------------------------------------------------------------------------- */

static uint32_t run_ms_of(struct gw_function *fn)
{
	uint64_t n = atomic_load(&fn->metrics.phase[GW_PHASE_RUN].count);
	uint64_t sum = atomic_load(&fn->metrics.phase[GW_PHASE_RUN].sum_ns);
	uint64_t ms = n ? sum / n / 1000000 : 1;

	return ms ? (uint32_t)ms : 1;
}

/* Idle warm instances of `key` in a node record's warm object. */
static uint32_t warm_of(const char *warm_json, const char *key)
{
	cJSON *w = cJSON_Parse(warm_json ? warm_json : "{}");
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(w, key);
	uint32_t n = cJSON_IsNumber(it) && it->valuedouble > 0 ? (uint32_t)it->valuedouble : 0;

	cJSON_Delete(w);
	return n;
}

static bool has_fn(const char *fns_json, const char *key)
{
	cJSON *a = cJSON_Parse(fns_json ? fns_json : "[]");
	const cJSON *it;
	bool has = false;

	cJSON_ArrayForEach (it, a) {
		if (cJSON_IsString(it) && !strcmp(it->valuestring, key))
			has = true;
	}
	cJSON_Delete(a);
	return has;
}

static void load_of(struct cl_load *l, const double *spare, int n)
{
	l->spare_best = 0;
	l->spare_total = 0;
	for (int i = 0; i < n; i++) {
		if (spare[i] > l->spare_best)
			l->spare_best = spare[i];
		l->spare_total += spare[i];
	}
}

/* The query of a request again, for the peer. */
static void query_of(const struct gw_request *r, char *out, size_t cap)
{
	size_t off = 0;

	out[0] = '\0';
	for (int i = 0; i < r->n_args && off < cap; i++) {
		char *k = curl_easy_escape(NULL, r->args[i].key, 0);
		char *v = r->args[i].value ? curl_easy_escape(NULL, r->args[i].value, 0) : NULL;

		off += (size_t)snprintf(out + off, cap - off, "%c%s%s%s", i ? '&' : '?', k ? k : "",
					v ? "=" : "", v ? v : "");
		curl_free(k);
		curl_free(v);
	}
}

bool gw_cluster_forward(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp,
			const char *key)
{
	struct gw_cluster *c = d->cluster;
	struct cl_node_info peers[CL_MAX_PEERS];
	struct cl_load me = {0}, loads[CL_MAX_PEERS];
	struct cl_call call = {0};
	struct cl_decision dec;
	struct gw_function *fn;
	struct sbx_pool_stats st = {0};
	struct cl_http_reply fr;
	const char *qos_arg, *hdrs[5];
	char path[2048], q[1536], h_auth[300], h_ct[160], h_origin[CL_NAME_MAX + 32], h_why[64];
	int n, n_loads = 0, n_h = 0, rc;
	uint64_t t0 = nemo_now_ns(), t_decide = t0, now_ms = gw_epoch_ms();
	char addr[CL_MAX_PEERS][CL_ADDR_MAX];

	if (c && gw_req_header(r, "X-Nemo-Origin")) {
		/* forwarded calls run where they land */
		cl_node_note_offload(c->node, true,
				     cl_reason_parse(gw_req_header(r, "X-Nemo-Offload")), false);
		return false;
	}
	if (!c || !d->cfg.cluster.offload)
		return false;
	fn = gw_fn_get(d, key);
	if (!fn)
		return false;
	call.qos = fn->qos >= 0 ? fn->qos : d->cfg.cluster.qos;
	qos_arg = gw_req_arg(r, "qos");
	if (qos_arg && cl_qos_parse(qos_arg) < 0) {
		gw_fn_put(fn);
		gw_reply_error(rp, 400, "qos: expected latency or batch, got '%.20s'", qos_arg);
		return true;
	}
	if (qos_arg)
		call.qos = cl_qos_parse(qos_arg);
	call.deadline_ms = call.qos == CL_QOS_BATCH ? d->cfg.cluster.batch_deadline_ms
						    : d->cfg.cluster.latency_deadline_ms;
	call.run_ms = run_ms_of(fn);
	gw_fn_put(fn);
	/*
	 * A batch call waits here for local spare, up to its deadline (a blocking caller is
	 * held meanwhile); an async one is accepted here at once and waits in the queue.
	 */
	for (;;) {
		pthread_mutex_lock(&c->lock);
		refresh_spare(d);
		load_of(&me, c->spare, c->n_cores);
		pthread_mutex_unlock(&c->lock);
		if (d->backend.ops->stats)
			d->backend.ops->stats(d->backend.state, key, &st);
		me.warm = st.idle;
		me.queue = d->q_len;
		me.has_function = me.accepts = true;
		n_loads = 0;
		n = cl_node_list(c->node, peers, CL_MAX_PEERS);
		for (int i = 0; i < n; i++) {
			struct cl_load *l = &loads[n_loads];

			if (!strcmp(peers[i].name, cl_node_name(c->node)))
				continue;
			memset(l, 0, sizeof(*l));
			snprintf(l->name, sizeof(l->name), "%s", peers[i].name);
			load_of(l, peers[i].spare, peers[i].n_cores);
			l->warm = warm_of(peers[i].warm, key);
			l->queue = peers[i].queue;
			l->age_ms = now_ms > peers[i].updated_ms ? now_ms - peers[i].updated_ms : 0;
			l->has_function = has_fn(peers[i].functions, key);
			l->accepts = true;
			snprintf(addr[n_loads], sizeof(addr[n_loads]), "%s", peers[i].address);
			n_loads++;
		}
		for (int i = 0; i < n; i++)
			cl_node_info_release(&peers[i]);
		call.waited_ms = (uint32_t)((nemo_now_ns() - t0) / 1000000);
		cl_offload_decide(&d->cfg.cluster.cl.policy, &me, loads, n_loads, &call, &dec);
		atomic_fetch_add(&c->decisions, 1);
		atomic_fetch_add(&c->decide_ns, nemo_now_ns() - t_decide);
		if (dec.verdict != CL_WAIT_LOCAL || !gw_req_arg_true(r, "blocking", false))
			break;
		struct timespec ts = {0, 10 * 1000000};

		nanosleep(&ts, NULL);
		t_decide = nemo_now_ns();
		now_ms = gw_epoch_ms();
	}
	if (dec.verdict != CL_OFFLOAD)
		return false;
	query_of(r, q, sizeof(q));
	snprintf(path, sizeof(path), "%s%s", r->url, q);
	if (gw_req_header(r, "Authorization"))
		snprintf(h_auth, sizeof(h_auth), "Authorization: %s",
			 gw_req_header(r, "Authorization"));
	else
		snprintf(h_auth, sizeof(h_auth), "Authorization: Bearer %s", d->creds.c[0].whole);
	hdrs[n_h++] = h_auth;
	if (gw_req_header(r, "Content-Type")) {
		snprintf(h_ct, sizeof(h_ct), "Content-Type: %s", gw_req_header(r, "Content-Type"));
		hdrs[n_h++] = h_ct;
	}
	snprintf(h_origin, sizeof(h_origin), "X-Nemo-Origin: %s", cl_node_name(c->node));
	hdrs[n_h++] = h_origin;
	snprintf(h_why, sizeof(h_why), "X-Nemo-Offload: %s", cl_reason_name(dec.reason));
	hdrs[n_h++] = h_why;
	rc = cl_http_forward(addr[dec.peer], r->method, path, hdrs, n_h, r->body, r->len,
			     (int)d->cfg.limits.blocking_timeout_ms + 5000, &fr);
	if (rc) {
		/* the peer did not answer: run here after all */
		atomic_fetch_add(&c->forward_failed, 1);
		cl_node_note_offload(c->node, false, dec.reason, true);
		return false;
	}
	atomic_fetch_add(&c->forwarded, 1);
	cl_node_note_offload(c->node, false, dec.reason, false);
	rp->status = fr.status;
	rp->body = fr.body;
	rp->len = fr.len;
	fr.body = NULL;
	snprintf(rp->ctype_buf, sizeof(rp->ctype_buf), "%s",
		 fr.content_type[0] ? fr.content_type : "application/json");
	rp->ctype = rp->ctype_buf;
	if (fr.activation_id[0])
		gw_reply_header(rp, "X-Activation-Id", fr.activation_id);
	gw_reply_header(rp, "X-Nemo-Node", fr.node[0] ? fr.node : loads[dec.peer].name);
	NEMO_DEBUG(GW_MOD, "function=%s forwarded to node %s: %s (eta here %.1f ms, there %.1f ms)",
		   key, loads[dec.peer].name, dec.why, dec.local_eta_ms, dec.peer_eta_ms);
	cl_http_reply_release(&fr);
	return true;
}

/* ---- routes --------------------------------------------------------------------------------------- */

static void route_nodes(struct gw_daemon *d, struct gw_reply *rp)
{
	struct cl_node_info nodes[CL_MAX_PEERS];
	struct cl_stats st;
	cJSON *j = cJSON_CreateObject(), *arr, *s;
	uint64_t now = gw_epoch_ms();
	int n = cl_node_list(d->cluster->node, nodes, CL_MAX_PEERS);
	const char *why = NULL;

	cJSON_AddStringToObject(j, "node", cl_node_name(d->cluster->node));
	cJSON_AddBoolToObject(j, "healthy", cl_node_healthy(d->cluster->node, &why));
	if (why)
		cJSON_AddStringToObject(j, "why", why);
	cJSON_AddStringToObject(j, "etcd", cl_etcd_endpoints(cl_node_etcd(d->cluster->node)));
	arr = cJSON_AddArrayToObject(j, "nodes");
	for (int i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject(), *cores = cJSON_AddArrayToObject(o, "cores");
		double total = 0;

		cJSON_AddStringToObject(o, "name", nodes[i].name);
		cJSON_AddStringToObject(o, "address", nodes[i].address);
		for (int k = 0; k < nodes[i].n_cores; k++) {
			cJSON *core = cJSON_CreateObject();

			cJSON_AddNumberToObject(core, "cpu", nodes[i].cores[k]);
			cJSON_AddNumberToObject(core, "spare_pred", nodes[i].spare[k]);
			cJSON_AddItemToArray(cores, core);
			total += nodes[i].spare[k];
		}
		cJSON_AddNumberToObject(o, "spare_cores", total);
		cJSON_AddNumberToObject(o, "queue", nodes[i].queue);
		cJSON_AddItemToObject(o, "warm", cJSON_Parse(nodes[i].warm ? nodes[i].warm : "{}"));
		cJSON_AddItemToObject(o, "functions",
				      cJSON_Parse(nodes[i].functions ? nodes[i].functions : "[]"));
		cJSON_AddNumberToObject(
			o, "age_ms",
			now > nodes[i].updated_ms ? (double)(now - nodes[i].updated_ms) : 0);
		cJSON_AddItemToArray(arr, o);
		cl_node_info_release(&nodes[i]);
	}
	cl_node_stats(d->cluster->node, &st);
	s = cJSON_AddObjectToObject(j, "stats");
	cJSON_AddNumberToObject(s, "record_txns", (double)st.txns);
	cJSON_AddNumberToObject(s, "record_ops", (double)st.act_ops);
	cJSON_AddNumberToObject(s, "accepted", (double)st.accepted);
	cJSON_AddNumberToObject(s, "started", (double)st.started);
	cJSON_AddNumberToObject(s, "ended", (double)st.ended);
	cJSON_AddNumberToObject(s, "adopted", (double)st.adopted);
	cJSON_AddNumberToObject(s, "interrupted", (double)st.interrupted);
	cJSON_AddNumberToObject(s, "fenced", (double)st.fenced);
	cJSON_AddNumberToObject(s, "ignored_records", (double)st.ignored_records);
	cJSON_AddNumberToObject(s, "delivered", (double)st.delivered);
	cJSON_AddNumberToObject(s, "redelivered", (double)st.redelivered);
	cJSON_AddNumberToObject(s, "cancelled", (double)st.cancelled);
	cJSON_AddNumberToObject(s, "node_records", (double)st.node_records);
	cJSON_AddNumberToObject(s, "node_records_alone", (double)st.node_records_alone);
	cJSON_AddNumberToObject(s, "etcd_requests", (double)st.etcd.requests);
	cJSON_AddNumberToObject(s, "etcd_writes", (double)st.etcd.calls[CL_REQ_WRITE]);
	cJSON_AddNumberToObject(s, "etcd_reads", (double)st.etcd.calls[CL_REQ_READ]);
	cJSON_AddNumberToObject(s, "etcd_renewals", (double)st.etcd.calls[CL_REQ_RENEW]);
	cJSON_AddNumberToObject(s, "etcd_errors", (double)st.etcd.errors);
	cJSON_AddNumberToObject(s, "etcd_bytes_out", (double)st.etcd.bytes_out);
	cJSON_AddNumberToObject(s, "etcd_bytes_in", (double)st.etcd.bytes_in);
	cJSON_AddNumberToObject(s, "last_adoption_ms", (double)st.last_adoption_ms);
	cJSON_AddNumberToObject(s, "forwarded", (double)atomic_load(&d->cluster->forwarded));
	cJSON_AddNumberToObject(s, "forward_failed",
				(double)atomic_load(&d->cluster->forward_failed));
	cJSON_AddNumberToObject(s, "decisions", (double)atomic_load(&d->cluster->decisions));
	cJSON_AddNumberToObject(s, "decide_ns_mean",
				atomic_load(&d->cluster->decisions)
					? (double)atomic_load(&d->cluster->decide_ns) /
						  (double)atomic_load(&d->cluster->decisions)
					: 0);
	gw_reply_json(rp, 200, j);
}

static void route_code(struct gw_daemon *d, const char *key, struct gw_reply *rp)
{
	struct gw_function *fn = gw_key_valid(key) ? gw_fn_get(d, key) : NULL;
	uint8_t *code;
	size_t len = 0;

	if (!fn)
		return gw_reply_error(rp, 404, "function '%.80s' is not deployed here", key);
	code = code_bytes(fn, &len);
	gw_fn_put(fn);
	if (!code)
		return gw_reply_error(rp, 404, "function '%.80s': its code is not one file", key);
	rp->status = 200;
	rp->body = (char *)code;
	rp->len = len;
	rp->ctype = "application/octet-stream";
}

void gw_api_cluster(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp)
{
	if (!d->cluster)
		return gw_reply_error(rp, 404,
				      "this nemod is not in a cluster (cluster.enabled is false in "
				      "%s)",
				      d->cfg.file);
	if (!gw_req_is(r, "GET"))
		return gw_reply_not_allowed(rp, r, "GET");
	if (!strcmp(r->url, "/api/v1/cluster/nodes") || !strcmp(r->url, "/api/v1/cluster"))
		return route_nodes(d, rp);
	if (!strncmp(r->url, "/api/v1/cluster/code/", 21))
		return route_code(d, r->url + 21, rp);
	if (!strncmp(r->url, "/api/v1/cluster/activations/", 28)) {
		cJSON *j = gw_cluster_act_json(d, r->url + 28);

		if (!j)
			return gw_reply_error(rp, 404, "activation '%.40s' is not in etcd",
					      r->url + 28);
		return gw_reply_json(rp, 200, j);
	}
	gw_reply_error(rp, 404, "no route for %s %.200s", r->method, r->url);
}

/* ---- join and leave ------------------------------------------------------------------------------- */

static void glue_free(struct gw_daemon *d)
{
	struct glue *g = glue_of(d);

	if (g->router_started) {
		pthread_mutex_lock(&g->route_lock);
		g->router_stop = true;
		pthread_cond_signal(&g->route_cond);
		pthread_mutex_unlock(&g->route_lock);
		pthread_join(g->router, NULL);
	}
	if (g->c.node)
		cl_node_leave(g->c.node);
	/* results not delivered yet stay "ended" in etcd: the node that adopts them delivers */
	while (g->dl_head) {
		struct delivery *dl = g->dl_head;

		g->dl_head = dl->next;
		delivery_free(dl);
	}
	d->cluster = NULL;
	free(g->acks);
	free(g->c.warm_json);
	free(g->c.fns_json);
	pthread_mutex_destroy(&g->c.lock);
	pthread_mutex_destroy(&g->ack_lock);
	pthread_mutex_destroy(&g->route_lock);
	pthread_cond_destroy(&g->route_cond);
	free(g);
}

int gw_cluster_join(struct gw_daemon *d)
{
	struct glue *g;
	struct gw_cluster *c;
	struct cl_hooks hooks = {.fn_deployed = hook_fn_deployed,
				 .fn_deleted = hook_fn_deleted,
				 .adopt = hook_adopt,
				 .load = hook_load,
				 .deliver = hook_deliver,
				 .arg = d};
	pthread_condattr_t ca;
	int rc;

	if (!d->cfg.cluster.cl.enabled)
		return 0;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	c = &g->c;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&g->ack_lock, NULL);
	pthread_mutex_init(&g->route_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->route_cond, &ca);
	pthread_condattr_destroy(&ca);
	g->dl_tail = &g->dl_head;
	d->cluster = c;
	/* before the join: its threads may hand results over at once */
	rc = -pthread_create(&g->router, NULL, router_main, d);
	g->router_started = rc == 0;
	if (rc) {
		NEMO_ERR(GW_MOD, "cluster: cannot start the route thread: %s", strerror(-rc));
		glue_free(d);
		return rc;
	}
	/* functions this node has (from its store) go to the registry once it is in */
	__atomic_store_n(&c->node, cl_node_join(&d->cfg.cluster.cl, &hooks), __ATOMIC_RELEASE);
	if (!c->node) {
		rc = -errno;
		NEMO_ERR(GW_MOD, "cluster: cannot join through etcd at %s as node %s: %s",
			 d->cfg.cluster.cl.endpoints[0], d->cfg.cluster.cl.node, strerror(-rc));
		glue_free(d);
		return rc;
	}
	snprintf(d->acts.node, sizeof(d->acts.node), "%s", cl_node_name(c->node));
	/* our own records from before a restart, before any worker runs one */
	rc = cl_node_adopt_orphans(c->node);
	NEMO_INFO(GW_MOD, "cluster: node %s joined through %s; %d activations taken over at start",
		  cl_node_name(c->node), cl_etcd_endpoints(cl_node_etcd(c->node)), rc > 0 ? rc : 0);
	return 0;
}

void gw_cluster_leave(struct gw_daemon *d)
{
	if (d->cluster)
		glue_free(d);
}

bool gw_cluster_degraded(struct gw_daemon *d, char *why, size_t len)
{
	const char *w = NULL;

	if (!d->cluster || cl_node_healthy(d->cluster->node, &w))
		return false;
	snprintf(why, len, "cluster: %s", w);
	return true;
}
