/* activation.c - the activation table: every accepted invocation ends in one terminal state. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "nemo/clock.h"
#include "gw_internal.h"

static const char *const status_names[GW_ACT_N_STATUS] = {
	[GW_ACT_ACCEPTED] = "accepted",	  [GW_ACT_RUNNING] = "running",
	[GW_ACT_SUCCESS] = "success",	  [GW_ACT_APP_ERROR] = "application_error",
	[GW_ACT_TIMEOUT] = "timeout",	  [GW_ACT_CRASHED] = "crashed",
	[GW_ACT_REJECTED] = "rejected",	  [GW_ACT_INTERNAL] = "internal_error",
	[GW_ACT_CANCELLED] = "cancelled", [GW_ACT_INTERRUPTED] = "interrupted",
};

const char *gw_act_status_name(enum gw_act_status s)
{
	return (unsigned)s < GW_ACT_N_STATUS ? status_names[s] : "?";
}

enum gw_act_status gw_act_status_by_name(const char *name)
{
	for (int s = 0; name && s < GW_ACT_N_STATUS; s++)
		if (!strcmp(name, status_names[s]))
			return (enum gw_act_status)s;
	return GW_ACT_N_STATUS;
}

enum gw_act_status gw_act_status_of(enum sbx_status s)
{
	switch (s) {
	case SBX_OK:
		return GW_ACT_SUCCESS;
	case SBX_ERR_FUNCTION:
		return GW_ACT_APP_ERROR;
	case SBX_ERR_TIMEOUT:
		return GW_ACT_TIMEOUT;
	case SBX_ERR_CRASHED:
	case SBX_ERR_OOM:
		return GW_ACT_CRASHED;
	case SBX_ERR_PAYLOAD_TOO_LARGE:
	case SBX_ERR_RESPONSE_TOO_LARGE:
		return GW_ACT_REJECTED;
	default:
		return GW_ACT_INTERNAL;
	}
}

bool gw_act_terminal(enum gw_act_status s)
{
	return s >= GW_ACT_SUCCESS;
}

int gw_act_table_init(struct gw_act_table *t, uint32_t capacity)
{
	uint64_t rnd = 0;

	memset(t, 0, sizeof(*t));
	t->slots = calloc(capacity, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->capacity = capacity;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = nemo_now_ns() ^ (uint64_t)time(NULL) << 20;
	snprintf(t->boot_id, sizeof(t->boot_id), "%016llx", (unsigned long long)rnd);
	t->next_seq = 1;
	t->journal_fd = -1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->changed, NULL);
	pthread_mutex_init(&t->sync_lock, NULL);
	t->journal_sync = true;
	return 0;
}

static void clear_slot(struct gw_activation *a)
{
	free(a->result);
	free(a->payload);
	free(a->restored_json);
	free(a->logs);
	memset(a, 0, sizeof(*a));
}

void gw_act_table_fini(struct gw_act_table *t)
{
	if (!t->slots)
		return;
	gw_journal_close(t);
	for (uint32_t i = 0; i < t->capacity; i++)
		clear_slot(&t->slots[i]);
	free(t->slots);
	t->slots = NULL;
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->changed);
	pthread_mutex_destroy(&t->sync_lock);
}

/* In a cluster a record says which node holds it, and whether it was adopted. */
static void add_cluster_fields(const struct gw_act_table *t, const struct gw_activation *a,
			       cJSON *j)
{
	if (!j || !t->node[0])
		return;
	cJSON_AddStringToObject(j, "node", a->ran_on[0] ? a->ran_on : t->node);
	if (a->ran_on[0])
		cJSON_AddStringToObject(j, "origin", t->node);
	if (a->adopted) {
		cJSON_AddBoolToObject(j, "adopted", true);
		cJSON_AddNumberToObject(j, "adopted_ms", (double)a->start_ms);
	}
}

static struct gw_activation *by_seq(struct gw_act_table *t, uint64_t seq)
{
	struct gw_activation *a = &t->slots[seq % t->capacity];

	return a->seq == seq ? a : NULL;
}

struct gw_activation *gw_act_slot_new(struct gw_act_table *t, const char *id)
{
	struct gw_activation *a = NULL;

	/*
	 * A slot still queued or running is never evicted: its seq is skipped and the next slot
	 * tried, so one long activation cannot block the ring behind it. Only a table full of
	 * live activations refuses.
	 */
	for (uint32_t probe = 0; probe < t->capacity; probe++, t->next_seq++) {
		a = &t->slots[t->next_seq % t->capacity];
		if (!a->seq || gw_act_terminal(a->status))
			break;
		a = NULL;
	}
	if (!a)
		return NULL;
	clear_slot(a);
	a->seq = t->next_seq++;
	if (id)
		snprintf(a->id, sizeof(a->id), "%s", id);
	else
		snprintf(a->id, sizeof(a->id), "%s%016llx", t->boot_id, (unsigned long long)a->seq);
	a->status = GW_ACT_ACCEPTED;
	a->start_ms = gw_epoch_ms();
	a->core = -1;
	return a;
}

int gw_act_new(struct gw_act_table *t, const char *function, int trigger, bool blocking,
	       char id_out[GW_ID_LEN + 1], uint64_t *seq_out)
{
	struct gw_activation *a;

	pthread_mutex_lock(&t->lock);
	a = gw_act_slot_new(t, NULL);
	if (!a) {
		pthread_mutex_unlock(&t->lock);
		return -EAGAIN;
	}
	snprintf(a->function, sizeof(a->function), "%s", function);
	a->trigger = trigger;
	a->blocking = blocking;
	memcpy(id_out, a->id, GW_ID_LEN + 1);
	*seq_out = a->seq;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

int gw_act_set_work(struct gw_act_table *t, uint64_t seq, const void *payload, size_t len,
		    const char *reply_topic)
{
	struct gw_activation *a;
	uint8_t *copy = malloc(len ? len : 1);
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, payload, len);
	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	if (!a || a->status != GW_ACT_ACCEPTED) {
		rc = -EALREADY;
		free(copy);
	} else {
		free(a->payload);
		a->payload = copy;
		a->payload_len = len;
		snprintf(a->reply_topic, sizeof(a->reply_topic), "%s",
			 reply_topic ? reply_topic : "");
		a->queued = true;
		rc = gw_journal_note(t, a, 'A');
		if (rc)
			a->queued = false; /* not on disk: it is refused, and ends so in memory */
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int gw_act_begin(struct gw_act_table *t, uint64_t seq, int core)
{
	struct gw_activation *a;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	if (!a || a->status != GW_ACT_ACCEPTED)
		rc = -EALREADY;
	else if (a->queued && gw_journal_note(t, a, 'R'))
		/*
		 * Its start cannot be recorded (a full disk): a crash now would replay it as never
		 * started and run it again. It stays accepted; the caller tries again later.
		 */
		rc = -EIO;
	else {
		a->status = GW_ACT_RUNNING;
		a->core = core;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int gw_act_called(struct gw_act_table *t, const char *cause, const struct sbx_call_record *c,
		  uint64_t *seq_out, char id_out[GW_ID_LEN + 1])
{
	struct gw_activation *a;

	pthread_mutex_lock(&t->lock);
	a = gw_act_slot_new(t, NULL);
	if (!a) {
		pthread_mutex_unlock(&t->lock);
		return -EAGAIN;
	}
	snprintf(a->function, sizeof(a->function), "%s", c->function);
	snprintf(a->cause, sizeof(a->cause), "%s", cause);
	a->trigger = GW_TRIGGER_CALL;
	a->blocking = true;
	a->path = SBX_START_WARM;
	a->start_ms = c->start_ms;
	a->end_ms = c->start_ms + (c->wait_ns + 999999) / 1000000;
	a->times.run_ns = c->run_ns;
	/* what the call waited beyond the callee's own run: the two wake-ups of the box */
	a->times.queue_ns = c->wait_ns > c->run_ns ? c->wait_ns - c->run_ns : 0;
	a->status = gw_act_status_of(c->status);
	if (c->status == SBX_ERR_FUNCTION)
		snprintf(a->message, sizeof(a->message), "function error %d", c->code);
	else if (c->status != SBX_OK)
		snprintf(a->message, sizeof(a->message), "%s (nemo_call %d)",
			 sbx_status_name(c->status), c->code);
	memcpy(id_out, a->id, GW_ID_LEN + 1);
	*seq_out = a->seq;
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

int gw_act_finish(struct gw_act_table *t, uint64_t seq, enum gw_act_status status,
		  const struct sbx_result *res, const char *message)
{
	struct gw_activation *a;
	uint8_t *copy = NULL;

	if (res && res->response_len) {
		copy = malloc(res->response_len);
		if (copy)
			memcpy(copy, res->response, res->response_len);
	}
	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	if (!a || gw_act_terminal(a->status)) {
		pthread_mutex_unlock(&t->lock);
		free(copy);
		return -EALREADY;
	}
	a->status = status;
	a->end_ms = gw_epoch_ms();
	if (res) {
		a->path = res->path;
		a->times = res->times;
		if (copy) {
			a->result = copy;
			a->result_len = res->response_len;
		}
	}
	snprintf(a->message, sizeof(a->message), "%s",
		 message ? message : (res && res->status != SBX_OK ? res->message : ""));
	free(a->payload);
	a->payload = NULL;
	a->payload_len = 0;
	if (a->queued) {
		gw_journal_note(t, a, 'T');
	} else if (a->blocking && t->journal_sync && status != GW_ACT_REJECTED) {
		/* a blocking call's record outlives nemod too; answered once it is durable */
		a->journaled = gw_journal_note(t, a, 'T') == 0;
	}
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

bool gw_act_wait(struct gw_act_table *t, uint64_t seq, uint32_t timeout_ms)
{
	struct timespec deadline;
	struct gw_activation *a;
	bool done = false;

	deadline = nemo_deadline_after_ns(CLOCK_REALTIME, (uint64_t)timeout_ms * 1000000ull);
	pthread_mutex_lock(&t->lock);
	for (;;) {
		a = by_seq(t, seq);
		if (!a || gw_act_terminal(a->status)) {
			done = true;
			break;
		}
		if (pthread_cond_timedwait(&t->changed, &t->lock, &deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&t->lock);
	return done;
}

static const char *trigger_name(int trigger)
{
	return trigger == GW_TRIGGER_MQTT ? "mqtt" : trigger == GW_TRIGGER_CALL ? "call" : "http";
}

/* The function's bytes as JSON when they are JSON, else as a string. */
static cJSON *result_json(const uint8_t *data, size_t len)
{
	cJSON *j;
	char *s;

	if (!data || !len)
		return cJSON_CreateObject();
	/* shown as JSON only when it reads one way: a key given twice stays a string */
	j = gw_json_parse("result", (const char *)data, len, NULL, 0);
	if (j)
		return j;
	s = strndup((const char *)data, len);
	j = cJSON_CreateString(s ? s : "");
	free(s);
	return j;
}

/* OpenWhisk's words for a terminal status, and its statusCode (0..3). */
static const char *ow_status(enum gw_act_status s, int *code)
{
	switch (s) {
	case GW_ACT_SUCCESS:
		*code = 0;
		return "success";
	case GW_ACT_APP_ERROR:
		*code = 1;
		return "application error";
	case GW_ACT_TIMEOUT:
	case GW_ACT_CRASHED:
	case GW_ACT_REJECTED:
		*code = 2;
		return "action developer error";
	case GW_ACT_ACCEPTED:
	case GW_ACT_RUNNING:
		*code = -1;
		return "pending";
	default:
		*code = 3;
		return "whisk internal error";
	}
}

static void annotate(cJSON *arr, const char *key, cJSON *value)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "key", key);
	cJSON_AddItemToObject(o, "value", value);
	cJSON_AddItemToArray(arr, o);
}

static cJSON *logs_json(const char *logs, size_t len)
{
	cJSON *arr = cJSON_CreateArray();
	const char *p = logs, *end = logs + len;

	while (logs && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *line = strndup(p, n);

		if (line)
			cJSON_AddItemToArray(arr, cJSON_CreateString(line));
		free(line);
		p += n + 1;
	}
	return arr;
}

/*
 * The record in OpenWhisk's shape: activationId, namespace, name, version, subject, start,
 * end, duration, response {status, statusCode, success, result}, logs, annotations (path,
 * waitTime, initTime, kind, limits, and nemo's own: startPath, core, phases). nemo's older
 * top-level fields (status, trigger, startPath, core, phases) stay for its own clients.
 */
cJSON *gw_act_record_json(const char *default_ns, const struct gw_activation *a)
{
	cJSON *j, *resp, *phases, *result, *ann, *lim;
	bool ok = a->status == GW_ACT_SUCCESS;
	char version[32], path[GW_NS_MAX + SBX_NAME_MAX], ns[GW_NS_MAX], name[SBX_NAME_MAX];
	int code;

	gw_key_split(default_ns, a->function, ns, name);
	if (a->restored_json) {
		j = gw_json_parse("journal", a->restored_json, strlen(a->restored_json), NULL, 0);
		if (j) {
			/* records from before namespaces say "_" and may name the key */
			cJSON_ReplaceItemInObjectCaseSensitive(j, "namespace",
							       cJSON_CreateString(ns));
			cJSON_ReplaceItemInObjectCaseSensitive(j, "name", cJSON_CreateString(name));
			return j;
		}
	}
	j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "activationId", a->id);
	cJSON_AddStringToObject(j, "namespace", ns);
	cJSON_AddStringToObject(j, "name", name);
	snprintf(version, sizeof(version), "0.0.%llu", (unsigned long long)a->version);
	cJSON_AddStringToObject(j, "version", version);
	cJSON_AddStringToObject(j, "subject", ns);
	cJSON_AddBoolToObject(j, "publish", false);
	cJSON_AddNumberToObject(j, "start", (double)a->start_ms);
	if (gw_act_terminal(a->status)) {
		cJSON_AddNumberToObject(j, "end", (double)a->end_ms);
		cJSON_AddNumberToObject(j, "duration", (double)(a->end_ms - a->start_ms));
	} else {
		cJSON_AddNumberToObject(j, "end", 0);
		cJSON_AddNumberToObject(j, "duration", 0);
	}
	resp = cJSON_AddObjectToObject(j, "response");
	cJSON_AddStringToObject(resp, "status", ow_status(a->status, &code));
	cJSON_AddNumberToObject(resp, "statusCode", code);
	cJSON_AddBoolToObject(resp, "success", ok);
	if (ok || !a->message[0]) {
		result = result_json(a->result, a->result_len);
	} else {
		result = cJSON_CreateObject();
		cJSON_AddStringToObject(result, "error", a->message);
		if (a->result_len)
			cJSON_AddItemToObject(result, "output",
					      result_json(a->result, a->result_len));
	}
	cJSON_AddItemToObject(resp, "result", result);
	cJSON_AddNumberToObject(j, "statusCode", code < 0 ? 0 : code);
	cJSON_AddItemToObject(j, "logs", logs_json(a->logs, a->logs_len));
	ann = cJSON_AddArrayToObject(j, "annotations");
	snprintf(path, sizeof(path), "%s/%s", ns, name);
	annotate(ann, "path", cJSON_CreateString(path));
	annotate(ann, "waitTime", cJSON_CreateNumber((double)(a->times.queue_ns / 1000000)));
	if (a->path == SBX_START_COLD)
		annotate(ann, "initTime",
			 cJSON_CreateNumber(
				 (double)((a->times.create_ns + a->times.init_ns) / 1000000)));
	annotate(ann, "kind", cJSON_CreateString(a->kind[0] ? a->kind : "unknown"));
	lim = cJSON_CreateObject();
	cJSON_AddNumberToObject(lim, "timeout", a->limit_timeout_ms);
	cJSON_AddNumberToObject(lim, "memory", a->limit_memory_mb);
	cJSON_AddNumberToObject(lim, "logs", a->limit_logs / 1048576);
	annotate(ann, "limits", lim);
	annotate(ann, "nemo.startPath", cJSON_CreateString(sbx_start_path_name(a->path)));
	annotate(ann, "nemo.core", cJSON_CreateNumber(a->core));
	annotate(ann, "nemo.trigger", cJSON_CreateString(trigger_name(a->trigger)));
	phases = cJSON_CreateObject();
	cJSON_AddNumberToObject(phases, "queue_us", (double)a->times.queue_ns / 1e3);
	cJSON_AddNumberToObject(phases, "create_us", (double)a->times.create_ns / 1e3);
	cJSON_AddNumberToObject(phases, "init_us", (double)a->times.init_ns / 1e3);
	cJSON_AddNumberToObject(phases, "run_us", (double)a->times.run_ns / 1e3);
	annotate(ann, "nemo.phases", cJSON_Duplicate(phases, true));
	/* nemo's own names, as before */
	cJSON_AddStringToObject(j, "status", gw_act_status_name(a->status));
	cJSON_AddStringToObject(j, "trigger", trigger_name(a->trigger));
	if (a->cause[0])
		cJSON_AddStringToObject(j, "cause", a->cause);
	cJSON_AddStringToObject(j, "startPath", sbx_start_path_name(a->path));
	cJSON_AddNumberToObject(j, "core", a->core);
	cJSON_AddItemToObject(j, "phases", phases);
	return j;
}

void gw_act_set_logs(struct gw_act_table *t, uint64_t seq, const char *logs, size_t len)
{
	char *copy = malloc(len + 1);
	struct gw_activation *a;

	if (!copy)
		return;
	memcpy(copy, logs, len);
	copy[len] = '\0';
	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	if (a && !gw_act_terminal(a->status)) {
		free(a->logs);
		a->logs = copy;
		a->logs_len = len;
		copy = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	free(copy);
}

void gw_act_set_function(struct gw_act_table *t, uint64_t seq, uint64_t version, const char *kind,
			 uint32_t timeout_ms, uint32_t memory_mb, uint32_t logs_bytes)
{
	struct gw_activation *a;

	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	if (a) {
		a->version = version;
		snprintf(a->kind, sizeof(a->kind), "%s", kind);
		a->limit_timeout_ms = timeout_ms;
		a->limit_memory_mb = memory_mb;
		a->limit_logs = logs_bytes;
	}
	pthread_mutex_unlock(&t->lock);
}

void gw_act_set_route(struct gw_act_table *t, uint64_t seq, int qos, bool mqtt5, const void *corr,
		      size_t corr_len, const char *callback_url)
{
	struct gw_activation *a;

	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	if (a) {
		a->qos = qos;
		a->mqtt5 = mqtt5;
		a->correlation_len = corr && corr_len <= sizeof(a->correlation) ? corr_len : 0;
		if (a->correlation_len)
			memcpy(a->correlation, corr, a->correlation_len);
		snprintf(a->callback_url, sizeof(a->callback_url), "%s",
			 callback_url ? callback_url : "");
	}
	pthread_mutex_unlock(&t->lock);
}

void gw_act_id_of(struct gw_act_table *t, uint64_t seq, char id[GW_ID_LEN + 1])
{
	struct gw_activation *a;

	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	snprintf(id, GW_ID_LEN + 1, "%s", a ? a->id : "");
	pthread_mutex_unlock(&t->lock);
}

cJSON *gw_act_json(struct gw_act_table *t, const char *ns, const char *id, bool *found_terminal)
{
	char *end;
	unsigned long long seq;
	struct gw_activation *a;
	cJSON *j = NULL;

	if (strlen(id) != GW_ID_LEN || strspn(id, "0123456789abcdef") != GW_ID_LEN)
		return NULL;
	seq = strtoull(id + 16, &end, 16);
	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	if (!a || strcmp(a->id, id)) {
		a = NULL;
		/* an id from before a restart, replayed from the journal: the slow path */
		for (uint32_t i = 0; i < t->capacity && strncmp(id, t->boot_id, 16); i++)
			if (t->slots[i].seq && !strcmp(t->slots[i].id, id)) {
				a = &t->slots[i];
				break;
			}
	}
	/* another namespace's activation is as unknown as one that never was */
	if (a && ns && !gw_key_in_ns(t->default_ns, a->function, ns))
		a = NULL;
	if (a) {
		j = gw_act_record_json(t->default_ns, a);
		add_cluster_fields(t, a, j);
		if (found_terminal)
			*found_terminal = gw_act_terminal(a->status);
	}
	pthread_mutex_unlock(&t->lock);
	return j;
}

cJSON *gw_act_list_json(struct gw_act_table *t, const struct gw_act_filter *f)
{
	cJSON *arr = cJSON_CreateArray();
	int skip = f->skip, limit = f->limit, count = 0;

	pthread_mutex_lock(&t->lock);
	/* seqs skipped over live slots leave holes: look back one table's worth */
	for (uint64_t seq = t->next_seq - 1, n = 0; seq > 0 && limit > 0 && n < t->capacity;
	     seq--, n++) {
		struct gw_activation *a = by_seq(t, seq);
		cJSON *j;

		if (!a || (f->function && strcmp(f->function, a->function)) ||
		    (f->ns && !gw_key_in_ns(t->default_ns, a->function, f->ns)))
			continue;
		if ((f->since_ms && a->start_ms < f->since_ms) ||
		    (f->upto_ms && a->start_ms > f->upto_ms))
			continue;
		if (f->count) {
			count++;
			continue;
		}
		if (skip > 0) {
			skip--;
			continue;
		}
		j = gw_act_record_json(t->default_ns, a);
		add_cluster_fields(t, a, j);
		if (!f->docs) {
			/* OpenWhisk lists without the result and the logs unless docs=true */
			cJSON_DeleteItemFromObjectCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(j, "response"), "result");
			cJSON_DeleteItemFromObjectCaseSensitive(j, "logs");
		}
		cJSON_AddItemToArray(arr, j);
		limit--;
	}
	pthread_mutex_unlock(&t->lock);
	if (f->count) {
		/* OpenWhisk's count=true: {"activations": N} */
		cJSON_Delete(arr);
		arr = cJSON_CreateObject();
		cJSON_AddNumberToObject(arr, "activations", count);
	}
	return arr;
}

int gw_act_outcome(struct gw_act_table *t, uint64_t seq, enum gw_act_status *status, char *message,
		   size_t msglen, uint8_t **result, size_t *result_len)
{
	struct gw_activation *a;
	int rc = -ENOENT;

	*result = NULL;
	*result_len = 0;
	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	if (a) {
		*status = a->status;
		snprintf(message, msglen, "%s", a->message);
		if (a->result_len) {
			*result = malloc(a->result_len + 1);
			if (*result) {
				memcpy(*result, a->result, a->result_len);
				(*result)[a->result_len] = '\0';
				*result_len = a->result_len;
			}
		}
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int gw_act_adopt(struct gw_act_table *t, const char *id, const char *function, uint64_t *seq,
		 enum gw_act_status *status)
{
	struct gw_activation *a = NULL;

	pthread_mutex_lock(&t->lock);
	for (uint32_t i = 0; i < t->capacity; i++)
		if (t->slots[i].seq && !strcmp(t->slots[i].id, id)) {
			a = &t->slots[i];
			break;
		}
	if (a) {
		*seq = a->seq;
		*status = a->status;
		pthread_mutex_unlock(&t->lock);
		return -EEXIST;
	}
	a = gw_act_slot_new(t, id);
	if (!a) {
		pthread_mutex_unlock(&t->lock);
		return -EAGAIN;
	}
	snprintf(a->function, sizeof(a->function), "%s", function);
	a->trigger = GW_TRIGGER_HTTP;
	a->blocking = false;
	a->adopted = true;
	*seq = a->seq;
	*status = a->status;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void gw_act_set_clustered(struct gw_act_table *t, uint64_t seq, bool on)
{
	struct gw_activation *a;

	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	if (a)
		a->clustered = on;
	pthread_mutex_unlock(&t->lock);
}

void gw_act_set_node(struct gw_act_table *t, uint64_t seq, const char *node)
{
	struct gw_activation *a;

	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	if (a)
		snprintf(a->ran_on, sizeof(a->ran_on), "%s", node);
	pthread_mutex_unlock(&t->lock);
}

void gw_act_begin_undo(struct gw_act_table *t, uint64_t seq)
{
	struct gw_activation *a;

	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	if (a && a->status == GW_ACT_RUNNING)
		a->status = GW_ACT_ACCEPTED;
	pthread_mutex_unlock(&t->lock);
}

bool gw_act_clustered(struct gw_act_table *t, uint64_t seq)
{
	struct gw_activation *a;
	bool on;

	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	on = a && a->clustered;
	pthread_mutex_unlock(&t->lock);
	return on;
}

void gw_act_function_of(struct gw_act_table *t, uint64_t seq, char function[SBX_NAME_MAX])
{
	struct gw_activation *a;

	pthread_mutex_lock(&t->lock);
	a = by_seq(t, seq);
	snprintf(function, SBX_NAME_MAX, "%s", a ? a->function : "");
	pthread_mutex_unlock(&t->lock);
}
