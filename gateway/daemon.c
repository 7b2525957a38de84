/* daemon.c - nemod's core: deployed functions, invocation with limits, async workers, drain. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/log.h"
#include "gw_internal.h"

bool gw_name_valid(const char *name)
{
	size_t n = strlen(name);

	return n >= 1 && n < SBX_NAME_MAX && strspn(name, GW_NAME_CHARS) == n;
}

/* ---- the function list ------------------------------------------------------------------------ */

static void fn_free(struct gw_function *fn)
{
	pthread_mutex_destroy(&fn->gate_lock);
	pthread_cond_destroy(&fn->gate_cond);
	free(fn->doc);
	free(fn);
}

struct gw_function *gw_fn_get(struct gw_daemon *d, const char *name)
{
	struct gw_function *fn;

	pthread_rwlock_rdlock(&d->fn_lock);
	for (fn = d->functions; fn; fn = fn->next)
		if (!strcmp(fn->spec.name, name)) {
			atomic_fetch_add(&fn->refs, 1);
			break;
		}
	pthread_rwlock_unlock(&d->fn_lock);
	return fn;
}

void gw_fn_put(struct gw_function *fn)
{
	if (fn && atomic_fetch_sub(&fn->refs, 1) == 1)
		fn_free(fn);
}

/* Swap `fn` in for the function of the same name (or add it); the old one is dropped. */
static void fn_publish(struct gw_daemon *d, struct gw_function *fn)
{
	struct gw_function **p, *old = NULL;

	pthread_rwlock_wrlock(&d->fn_lock);
	for (p = &d->functions; *p; p = &(*p)->next)
		if (!strcmp((*p)->spec.name, fn->spec.name)) {
			old = *p;
			fn->next = old->next;
			/* counters continue across a redeploy: they count the name */
			fn->metrics = old->metrics;
			*p = fn;
			break;
		}
	if (!old) {
		fn->next = d->functions;
		d->functions = fn;
	}
	pthread_rwlock_unlock(&d->fn_lock);
	/* invocations still at the old gate finish there, by name, on the new spec */
	gw_fn_put(old);
}

/* ---- deploy ----------------------------------------------------------------------------------- */

static int bad(char *err, size_t errlen, int *http_status, int status, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int bad(char *err, size_t errlen, int *http_status, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	*http_status = status;
	return status == 500 ? -EIO : -EINVAL;
}

static int parse_mqtt(const cJSON *m, struct gw_mqtt_trigger *t, char *err, size_t errlen,
		      int *http_status)
{
	const cJSON *topics, *reply, *qos, *it;
	int i = 0;

	memset(t, 0, sizeof(*t));
	if (!m)
		return 0;
	if (!cJSON_IsObject(m))
		return bad(
			err, errlen, http_status, 400,
			"key 'mqtt': expected an object {\"topics\": [...], \"reply_topic\": ...}");
	cJSON_ArrayForEach (it, m) {
		if (strcmp(it->string, "topics") && strcmp(it->string, "reply_topic") &&
		    strcmp(it->string, "qos"))
			return bad(err, errlen, http_status, 400, "key 'mqtt.%s': unknown key",
				   it->string);
	}
	topics = cJSON_GetObjectItemCaseSensitive(m, "topics");
	if (!cJSON_IsArray(topics) || cJSON_GetArraySize(topics) < 1)
		return bad(err, errlen, http_status, 400,
			   "key 'mqtt.topics': expected a non-empty array of topic filters");
	cJSON_ArrayForEach (it, topics) {
		if (!cJSON_IsString(it) || !it->valuestring[0] ||
		    strlen(it->valuestring) >= GW_TOPIC_MAX)
			return bad(err, errlen, http_status, 400,
				   "key 'mqtt.topics[%d]': expected a topic filter of 1..%d "
				   "characters",
				   i, GW_TOPIC_MAX - 1);
		if (i >= GW_MAX_TOPICS)
			return bad(err, errlen, http_status, 400,
				   "key 'mqtt.topics': more than %d topics", GW_MAX_TOPICS);
		snprintf(t->topics[i++], GW_TOPIC_MAX, "%s", it->valuestring);
	}
	t->n_topics = i;
	reply = cJSON_GetObjectItemCaseSensitive(m, "reply_topic");
	if (reply) {
		if (!cJSON_IsString(reply) || !reply->valuestring[0] ||
		    strlen(reply->valuestring) >= GW_TOPIC_MAX || strpbrk(reply->valuestring, "+#"))
			return bad(err, errlen, http_status, 400,
				   "key 'mqtt.reply_topic': expected a topic without wildcards");
		snprintf(t->reply_topic, GW_TOPIC_MAX, "%s", reply->valuestring);
	}
	qos = cJSON_GetObjectItemCaseSensitive(m, "qos");
	if (qos) {
		if (!cJSON_IsNumber(qos) || qos->valueint < 0 || qos->valueint > 1 ||
		    qos->valuedouble != (double)qos->valueint)
			return bad(err, errlen, http_status, 400,
				   "key 'mqtt.qos': expected 0 or 1");
		t->qos = qos->valueint;
	}
	return 0;
}

static bool under_root(const struct gw_config *cfg, const char *real)
{
	for (int i = 0; i < cfg->n_code_roots; i++) {
		size_t n = strlen(cfg->code_roots[i]);

		if (!strncmp(real, cfg->code_roots[i], n) &&
		    (real[n] == '/' || (n == 1 && real[0] == '/')))
			return true;
	}
	return false;
}

static void default_file_name(const char *name, int runtime, char *buf, size_t len)
{
	if (runtime == SBX_RUNTIME_C) {
		snprintf(buf, len, "function.so");
	} else if (runtime == SBX_RUNTIME_PYTHON) {
		/* the module name: a python identifier */
		snprintf(buf, len, "%s.py", name);
		for (char *p = buf; *p && strcmp(p, ".py"); p++)
			if (*p == '-')
				*p = '_';
		if (buf[0] >= '0' && buf[0] <= '9')
			buf[0] = '_';
	} else {
		snprintf(buf, len, "function");
	}
}

/*
 * Put the code where the sandbox reads it: decode base64 into the store, or copy a file from
 * under an allowed root. *code_path gets the stored path.
 */
static int place_code(struct gw_daemon *d, const char *name, const cJSON *code,
		      const struct sbx_spec *spec, uint64_t version, char *code_path, size_t cplen,
		      char *err, size_t errlen, int *http_status)
{
	const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(code, "base64");
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(code, "path");
	const cJSON *fname = cJSON_GetObjectItemCaseSensitive(code, "filename");
	const cJSON *it;
	char file[128], real[PATH_MAX];
	int rc;

	cJSON_ArrayForEach (it, code) {
		if (strcmp(it->string, "base64") && strcmp(it->string, "path") &&
		    strcmp(it->string, "filename"))
			return bad(err, errlen, http_status, 400, "key 'code.%s': unknown key",
				   it->string);
	}
	if (!!b64 == !!path)
		return bad(err, errlen, http_status, 400,
			   "key 'code': give exactly one of 'base64' and 'path'");
	if (fname) {
		size_t n = cJSON_IsString(fname) ? strlen(fname->valuestring) : 0;

		if (!n || n >= sizeof(file) || fname->valuestring[0] == '.' ||
		    strspn(fname->valuestring, GW_NAME_CHARS ".") != n)
			return bad(err, errlen, http_status, 400,
				   "key 'code.filename': expected a plain file name "
				   "([A-Za-z0-9_.-], not starting with '.')");
		snprintf(file, sizeof(file), "%s", fname->valuestring);
	} else {
		default_file_name(name, spec->runtime, file, sizeof(file));
	}
	if (b64) {
		size_t len;
		uint8_t *bytes;
		long n;

		if (!cJSON_IsString(b64))
			return bad(err, errlen, http_status, 400,
				   "key 'code.base64': expected a string");
		len = strlen(b64->valuestring);
		if (!len)
			return bad(err, errlen, http_status, 400, "key 'code.base64': empty code");
		bytes = malloc(len / 4 * 3 + 3);
		if (!bytes)
			return bad(err, errlen, http_status, 500, "out of memory");
		n = gw_base64_decode(b64->valuestring, len, bytes, len / 4 * 3 + 3);
		if (n <= 0) {
			free(bytes);
			return bad(err, errlen, http_status, 400,
				   "key 'code.base64': not valid base64");
		}
		rc = gw_store_write_code(d->cfg.store_dir, name, version, file, bytes, (size_t)n,
					 code_path, cplen);
		free(bytes);
		if (rc)
			return bad(err, errlen, http_status, 500, "store: %s", strerror(-rc));
		return 0;
	}
	if (!cJSON_IsString(path) || path->valuestring[0] != '/')
		return bad(err, errlen, http_status, 400,
			   "key 'code.path': expected an absolute path");
	if (!d->cfg.n_code_roots)
		return bad(err, errlen, http_status, 400,
			   "key 'code.path': this nemod has no code_roots; send the code as "
			   "base64");
	if (!realpath(path->valuestring, real))
		return bad(err, errlen, http_status, 400, "key 'code.path': %s: %s",
			   path->valuestring, strerror(errno));
	/* the canonical path decides: ../ and symlinks cannot leave the roots */
	if (!under_root(&d->cfg, real))
		return bad(err, errlen, http_status, 400,
			   "key 'code.path': '%s' is outside the allowed code roots",
			   path->valuestring);
	if (!fname) {
		const char *base = strrchr(real, '/');

		snprintf(file, sizeof(file), "%s", base + 1);
	}
	{
		size_t len;
		char *bytes = gw_read_file(real, 256u << 20, &len);

		if (!bytes)
			return bad(err, errlen, http_status, 400, "key 'code.path': %s: %s",
				   path->valuestring, strerror(errno));
		rc = gw_store_write_code(d->cfg.store_dir, name, version, file, bytes, len,
					 code_path, cplen);
		free(bytes);
	}
	if (rc)
		return bad(err, errlen, http_status, 500, "store: %s", strerror(-rc));
	return 0;
}

/*
 * Instances made ahead of demand, on the core the dispatcher would pick: the first requests
 * then take the pre-warmed path. A failure leaves the function deployed, cold.
 */
static void prewarm_function(struct gw_daemon *d, const char *name, int count)
{
	struct gw_placement where = {.core = -1};
	int made;

	if (!d->backend.ops->prewarm)
		return;
	if (d->dispatch.ops->place(d->dispatch.state, name, &where) || where.core < 0)
		where.core = d->cfg.sandbox_cores[0];
	made = d->backend.ops->prewarm(d->backend.state, name, where.core, count);
	if (made < 0)
		NEMO_WARN(GW_MOD, "prewarm function=%s core=%d: %s", name, where.core,
			  strerror(-made));
	else
		NEMO_INFO(GW_MOD, "prewarmed function=%s core=%d instances=%d", name, where.core,
			  made);
}

int gw_deploy(struct gw_daemon *d, const char *name, const char *body, size_t len, bool stored,
	      char *err, size_t errlen, int *http_status)
{
	const char *origin = stored ? "store" : "request";
	struct gw_function *fn = NULL;
	cJSON *root, *code = NULL, *mqtt = NULL, *prewarm = NULL, *jname;
	int n_prewarm;
	char spec_err[512], code_path[GW_PATH_MAX];
	char *spec_text = NULL, *doc = NULL;
	uint64_t version;
	int rc;

	err[0] = '\0';
	if (!gw_name_valid(name))
		return bad(err, errlen, http_status, 400,
			   "name '%.64s': must be 1..%d characters of [A-Za-z0-9_-]", name,
			   SBX_NAME_MAX - 1);
	root = cJSON_ParseWithLength(body, len);
	if (!root) {
		const char *at = cJSON_GetErrorPtr();

		return bad(err, errlen, http_status, 400, "malformed JSON near byte %ld",
			   at && at >= body && at <= body + len ? (long)(at - body) : 0L);
	}
	if (!cJSON_IsObject(root)) {
		rc = bad(err, errlen, http_status, 400, "expected a JSON object (the spec)");
		goto out;
	}
	fn = calloc(1, sizeof(*fn));
	if (!fn) {
		rc = bad(err, errlen, http_status, 500, "out of memory");
		goto out;
	}
	jname = cJSON_GetObjectItemCaseSensitive(root, "name");
	if (jname && (!cJSON_IsString(jname) || strcmp(jname->valuestring, name))) {
		rc = bad(err, errlen, http_status, 400,
			 "key 'name': must match the name in the URL ('%s')", name);
		goto out;
	}
	if (!jname)
		cJSON_AddStringToObject(root, "name", name);
	mqtt = cJSON_DetachItemFromObjectCaseSensitive(root, "mqtt");
	rc = parse_mqtt(mqtt, &fn->mqtt, err, errlen, http_status);
	if (rc)
		goto out_mqtt;
	prewarm = cJSON_DetachItemFromObjectCaseSensitive(root, "prewarm");
	if (prewarm && (!cJSON_IsNumber(prewarm) || prewarm->valueint < 0 ||
			prewarm->valueint > GW_MAX_PREWARM ||
			prewarm->valuedouble != (double)prewarm->valueint)) {
		rc = bad(err, errlen, http_status, 400, "key 'prewarm': expected an integer 0..%d",
			 GW_MAX_PREWARM);
		goto out_mqtt;
	}
	fn->prewarm = prewarm ? prewarm->valueint : 0;
	code = cJSON_DetachItemFromObjectCaseSensitive(root, "code");
	if (!code) {
		rc = bad(err, errlen, http_status, 400, "key 'code': required key is missing");
		goto out_mqtt;
	}
	if (stored ? !cJSON_IsString(code) : !cJSON_IsObject(code)) {
		rc = bad(err, errlen, http_status, 400,
			 "key 'code': expected an object {\"base64\": \"...\"} or {\"path\": "
			 "\"/abs/file\"}");
		goto out_code;
	}
	/* check the spec before any code is written: a bad spec changes nothing */
	cJSON_AddStringToObject(root, "code",
				stored ? code->valuestring : "/nemo/validating/placeholder");
	spec_text = cJSON_PrintUnformatted(root);
	if (!spec_text) {
		rc = bad(err, errlen, http_status, 500, "out of memory");
		goto out_code;
	}
	rc = sbx_spec_parse(spec_text, strlen(spec_text), origin, &fn->spec, spec_err,
			    sizeof(spec_err));
	if (rc) {
		rc = bad(err, errlen, http_status, rc == -ENOMEM ? 500 : 400, "%s", spec_err);
		goto out_code;
	}

	pthread_mutex_lock(&d->deploy_lock);
	if (stored) {
		char prefix[GW_PATH_MAX + 80];

		/* a stored document may only point into its own store folder */
		snprintf(prefix, sizeof(prefix), "%s/%s/v", d->cfg.store_dir, name);
		if (strncmp(code->valuestring, prefix, strlen(prefix)) ||
		    strstr(code->valuestring, "/../")) {
			rc = bad(err, errlen, http_status, 400,
				 "key 'code': '%s' is not in this function's store folder",
				 code->valuestring);
			goto out_unlock;
		}
		version = strtoull(code->valuestring + strlen(prefix), NULL, 10);
		if (version > d->next_version)
			d->next_version = version;
		snprintf(code_path, sizeof(code_path), "%s", code->valuestring);
	} else {
		version = ++d->next_version;
		rc = place_code(d, name, code, &fn->spec, version, code_path, sizeof(code_path),
				err, errlen, http_status);
		if (rc)
			goto out_unlock;
	}
	snprintf(fn->spec.code, sizeof(fn->spec.code), "%s", code_path);
	cJSON_ReplaceItemInObjectCaseSensitive(root, "code", cJSON_CreateString(code_path));
	if (mqtt) {
		cJSON_AddItemToObject(root, "mqtt", mqtt);
		mqtt = NULL;
	}
	if (prewarm) {
		cJSON_AddItemToObject(root, "prewarm", prewarm);
		prewarm = NULL;
	}
	doc = cJSON_Print(root);
	if (!doc) {
		rc = bad(err, errlen, http_status, 500, "out of memory");
		goto out_unlock;
	}
	rc = d->backend.ops->deploy(d->backend.state, &fn->spec);
	if (rc) {
		rc = bad(err, errlen, http_status, rc == -EINVAL ? 400 : 500, "deploy: %s",
			 strerror(-rc));
		goto out_unlock;
	}
	if (!stored) {
		rc = gw_store_commit(d->cfg.store_dir, name, doc, version);
		if (rc) {
			struct gw_function *old = gw_fn_get(d, name);

			/* keep the backend in step with what the store still says */
			if (old)
				d->backend.ops->deploy(d->backend.state, &old->spec);
			else
				d->backend.ops->undeploy(d->backend.state, name);
			gw_fn_put(old);
			rc = bad(err, errlen, http_status, 500, "store: %s", strerror(-rc));
			goto out_unlock;
		}
	}
	fn->doc = doc;
	doc = NULL;
	fn->version = version;
	atomic_init(&fn->refs, 1);
	pthread_mutex_init(&fn->gate_lock, NULL);
	pthread_cond_init(&fn->gate_cond, NULL);
	n_prewarm = fn->prewarm;
	if (fn->mqtt.n_topics && !d->cfg.mqtt.enabled)
		NEMO_WARN(GW_MOD, "function=%s has MQTT topics but mqtt.enabled is false in %s",
			  name, d->cfg.file);
	fn_publish(d, fn);
	fn = NULL;
	pthread_mutex_unlock(&d->deploy_lock);
	if (d->mqtt)
		gw_mqtt_resubscribe(d->mqtt);
	if (n_prewarm)
		prewarm_function(d, name, n_prewarm);
	NEMO_INFO(GW_MOD, "deployed function=%s version=%llu code=%s origin=%s", name,
		  (unsigned long long)version, code_path, origin);
	*http_status = 200;
	rc = 0;
	goto out_code;

out_unlock:
	pthread_mutex_unlock(&d->deploy_lock);
out_code:
	cJSON_Delete(code);
out_mqtt:
	cJSON_Delete(mqtt);
	cJSON_Delete(prewarm);
out:
	free(spec_text);
	free(doc);
	free(fn);
	cJSON_Delete(root);
	return rc;
}

int gw_undeploy(struct gw_daemon *d, const char *name)
{
	struct gw_function **p, *fn = NULL;
	int rc;

	pthread_mutex_lock(&d->deploy_lock);
	pthread_rwlock_wrlock(&d->fn_lock);
	for (p = &d->functions; *p; p = &(*p)->next)
		if (!strcmp((*p)->spec.name, name)) {
			fn = *p;
			*p = fn->next;
			break;
		}
	pthread_rwlock_unlock(&d->fn_lock);
	if (!fn) {
		pthread_mutex_unlock(&d->deploy_lock);
		return -ENOENT;
	}
	fn->deleted = true;
	rc = gw_store_remove(d->cfg.store_dir, name);
	d->backend.ops->undeploy(d->backend.state, name);
	pthread_mutex_unlock(&d->deploy_lock);
	/* waiters at the gate see `deleted` and give up */
	pthread_mutex_lock(&fn->gate_lock);
	pthread_cond_broadcast(&fn->gate_cond);
	pthread_mutex_unlock(&fn->gate_lock);
	gw_fn_put(fn);
	if (d->mqtt)
		gw_mqtt_resubscribe(d->mqtt);
	NEMO_INFO(GW_MOD, "deleted function=%s", name);
	return rc == -ENOENT ? 0 : rc;
}

/* ---- invoke ------------------------------------------------------------------------------------- */

int gw_admit(struct gw_daemon *d)
{
	if (atomic_fetch_add(&d->inflight, 1) >= d->cfg.limits.max_inflight) {
		atomic_fetch_sub(&d->inflight, 1);
		return -EAGAIN;
	}
	return 0;
}

void gw_unadmit(struct gw_daemon *d)
{
	atomic_fetch_sub(&d->inflight, 1);
}

/*
 * Wait for one of the function's spec.concurrency instance slots. `bounded`: refuse when
 * running + waiting already reach the per-function limit (HTTP callers get 429); async
 * workers wait, because their activation is already accepted.
 */
static int gate_enter(struct gw_daemon *d, struct gw_function *fn, bool bounded)
{
	uint32_t slots = fn->spec.concurrency ? fn->spec.concurrency : 1;
	int rc = 0;

	pthread_mutex_lock(&fn->gate_lock);
	if (fn->running >= slots) {
		if (bounded &&
		    fn->running + fn->waiting >= d->cfg.limits.max_inflight_per_function) {
			pthread_mutex_unlock(&fn->gate_lock);
			return -EAGAIN;
		}
		fn->waiting++;
		while (fn->running >= slots && !fn->deleted)
			pthread_cond_wait(&fn->gate_cond, &fn->gate_lock);
		fn->waiting--;
		if (fn->deleted)
			rc = -ENOENT;
	}
	if (!rc)
		fn->running++;
	pthread_mutex_unlock(&fn->gate_lock);
	return rc;
}

static void gate_leave(struct gw_function *fn)
{
	pthread_mutex_lock(&fn->gate_lock);
	fn->running--;
	pthread_cond_signal(&fn->gate_cond);
	pthread_mutex_unlock(&fn->gate_lock);
}

int gw_invoke_sync(struct gw_daemon *d, struct gw_function *fn, uint64_t seq, const void *req,
		   size_t len, bool bounded, struct sbx_result *res)
{
	uint64_t t0 = nemo_now_ns(), t_gate;
	struct gw_placement where = {.core = -1};
	enum gw_act_status st;
	int rc;

	memset(res, 0, sizeof(*res));
	rc = gate_enter(d, fn, bounded);
	if (rc == -EAGAIN)
		return rc;
	if (rc == -ENOENT) {
		res->status = SBX_ERR_INTERNAL;
		snprintf(res->message, sizeof(res->message), "function '%s' was deleted",
			 fn->spec.name);
		gw_act_finish(&d->acts, seq, GW_ACT_INTERNAL, res, NULL);
		return 0;
	}
	t_gate = nemo_now_ns();
	if (d->dispatch.ops->place(d->dispatch.state, fn->spec.name, &where))
		where.core = -1;
	if (gw_act_begin(&d->acts, seq, where.core)) {
		/* already started or finished elsewhere: never run an activation twice */
		gate_leave(fn);
		return -EALREADY;
	}
	d->backend.ops->invoke(d->backend.state, fn->spec.name, where.core, req, len, res);
	gate_leave(fn);
	/* waiting at our gate is queueing too */
	res->times.queue_ns += t_gate - t0;
	d->dispatch.ops->observe(d->dispatch.state, fn->spec.name, &where, res);
	st = gw_act_status_of(res->status);
	gw_metrics_record(fn, st, res, nemo_now_ns() - t0);
	gw_act_finish(&d->acts, seq, st, res, NULL);
	return 0;
}

/* ---- async activations -------------------------------------------------------------------------- */

int gw_enqueue(struct gw_daemon *d, uint64_t seq)
{
	pthread_mutex_lock(&d->q_lock);
	if (d->q_len >= d->q_cap || d->q_stop) {
		pthread_mutex_unlock(&d->q_lock);
		return -EAGAIN;
	}
	d->queue[(d->q_head + d->q_len++) % d->q_cap] = seq;
	pthread_cond_signal(&d->q_cond);
	pthread_mutex_unlock(&d->q_lock);
	return 0;
}

/* Take the payload and routing of a queued activation (the record keeps the rest). */
static bool take_work(struct gw_daemon *d, uint64_t seq, char *function, uint8_t **payload,
		      size_t *len, char *reply)
{
	struct gw_act_table *t = &d->acts;
	struct gw_activation *a;
	bool ok = false;

	pthread_mutex_lock(&t->lock);
	a = &t->slots[seq % t->capacity];
	if (a->seq == seq && a->status == GW_ACT_ACCEPTED) {
		snprintf(function, SBX_NAME_MAX, "%s", a->function);
		snprintf(reply, GW_TOPIC_MAX, "%s", a->reply_topic);
		/* a copy: the record keeps its payload for the journal until it ends */
		*payload = malloc(a->payload_len ? a->payload_len : 1);
		if (*payload) {
			memcpy(*payload, a->payload, a->payload_len);
			*len = a->payload_len;
			ok = true;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return ok;
}

static void run_async(struct gw_daemon *d, uint64_t seq)
{
	char function[SBX_NAME_MAX], reply[GW_TOPIC_MAX];
	struct sbx_result res;
	struct gw_function *fn;
	uint8_t *payload = NULL;
	size_t len = 0;

	if (!take_work(d, seq, function, &payload, &len, reply))
		return; /* finished already (cancelled): run exactly once */
	fn = gw_fn_get(d, function);
	if (!fn) {
		gw_act_finish(&d->acts, seq, GW_ACT_INTERNAL, NULL,
			      "the function was deleted before the activation ran");
		free(payload);
		return;
	}
	/* async work waits at the gate instead of being refused: it was accepted */
	gw_invoke_sync(d, fn, seq, payload, len, false, &res);
	if (reply[0] && d->mqtt) {
		if (res.status == SBX_OK) {
			gw_mqtt_reply(d->mqtt, reply, res.response, res.response_len);
		} else {
			cJSON *e = cJSON_CreateObject();
			char *text;

			cJSON_AddStringToObject(e, "error", res.message);
			cJSON_AddStringToObject(e, "status",
						gw_act_status_name(gw_act_status_of(res.status)));
			text = cJSON_PrintUnformatted(e);
			if (text)
				gw_mqtt_reply(d->mqtt, reply, text, strlen(text));
			free(text);
			cJSON_Delete(e);
		}
	}
	d->backend.ops->result_release(d->backend.state, &res);
	gw_fn_put(fn);
	free(payload);
}

static void *worker_main(void *arg)
{
	struct gw_daemon *d = arg;

	pthread_mutex_lock(&d->q_lock);
	for (;;) {
		uint64_t seq;

		while (!d->q_len && !d->q_stop)
			pthread_cond_wait(&d->q_cond, &d->q_lock);
		if (d->q_stop)
			break;
		seq = d->queue[d->q_head];
		d->q_head = (d->q_head + 1) % d->q_cap;
		d->q_len--;
		d->q_active++;
		pthread_mutex_unlock(&d->q_lock);
		run_async(d, seq);
		pthread_mutex_lock(&d->q_lock);
		d->q_active--;
		if (!d->q_len && !d->q_active)
			pthread_cond_broadcast(&d->q_idle);
	}
	pthread_mutex_unlock(&d->q_lock);
	return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------------------- */

static int load_one(void *arg, const char *name, const char *doc)
{
	struct gw_daemon *d = arg;
	char err[512];
	int status, rc;

	rc = gw_deploy(d, name, doc, strlen(doc), true, err, sizeof(err), &status);
	if (rc)
		NEMO_ERR(GW_MOD, "store: function %s not loaded: %s", name, err);
	return rc;
}

/* First start: make a random token, readable by root only, and say where it is. */
static int make_token(const char *path)
{
	uint8_t rnd[24];
	char hex[sizeof(rnd) * 2 + 2];
	FILE *f;
	int fd;

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	strcat(hex, "\n");
	{
		/* /etc/nemo may not exist on a fresh machine */
		char dir[GW_PATH_MAX];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0755) < 0 && errno != EEXIST)
				NEMO_WARN(GW_MOD, "token dir %s: %s", dir, strerror(errno));
		}
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;

		NEMO_ERR(GW_MOD, "token file %s: cannot create: %s", path, strerror(e));
		return -e;
	}
	f = fdopen(fd, "w");
	if (!f || fputs(hex, f) < 0 || fclose(f)) {
		NEMO_ERR(GW_MOD, "token file %s: write failed", path);
		if (!f)
			close(fd);
		return -EIO;
	}
	NEMO_WARN(GW_MOD, "token file %s did not exist: generated a new token there", path);
	return 0;
}

static int read_token(struct gw_daemon *d)
{
	size_t len;
	char *tok = gw_read_file(d->cfg.token_file, sizeof(d->token) - 1, &len);

	if (!tok && errno == ENOENT && !make_token(d->cfg.token_file))
		tok = gw_read_file(d->cfg.token_file, sizeof(d->token) - 1, &len);
	if (!tok) {
		int e = errno;

		NEMO_ERR(GW_MOD, "token file %s: %s", d->cfg.token_file, strerror(e));
		return -e;
	}
	while (len && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
		tok[--len] = '\0';
	if (len < 16 || strpbrk(tok, " \t\r\n")) {
		NEMO_ERR(GW_MOD,
			 "token file %s: the token must be one word of at least 16 characters",
			 d->cfg.token_file);
		free(tok);
		return -EINVAL;
	}
	memcpy(d->token, tok, len + 1);
	d->token_len = len;
	free(tok);
	return 0;
}

struct gw_daemon *gw_daemon_new(const struct gw_config *cfg, const struct gw_backend *backend,
				const struct gw_dispatch *dispatch)
{
	struct gw_daemon *d = calloc(1, sizeof(*d));
	int rc, loaded;

	if (!d)
		return NULL;
	d->cfg = *cfg;
	d->backend = *backend;
	d->dispatch = *dispatch;
	d->started_ms = gw_epoch_ms();
	pthread_rwlock_init(&d->fn_lock, NULL);
	pthread_mutex_init(&d->deploy_lock, NULL);
	pthread_mutex_init(&d->q_lock, NULL);
	pthread_cond_init(&d->q_cond, NULL);
	pthread_cond_init(&d->q_idle, NULL);
	rc = read_token(d);
	if (rc)
		goto fail;
	rc = gw_store_init(cfg->store_dir);
	if (rc)
		goto fail;
	rc = gw_act_table_init(&d->acts, cfg->limits.activations_kept);
	if (rc)
		goto fail;
	d->q_cap = cfg->limits.async_queue;
	d->queue = calloc(d->q_cap, sizeof(*d->queue));
	d->workers = calloc(cfg->async_workers, sizeof(*d->workers));
	if (!d->queue || !d->workers) {
		rc = -ENOMEM;
		goto fail_acts;
	}
	loaded = gw_store_load(cfg->store_dir, load_one, d);
	if (loaded < 0) {
		rc = loaded;
		goto fail_acts;
	}
	NEMO_INFO(GW_MOD, "store dir=%s functions_loaded=%d", cfg->store_dir, loaded);
	{
		uint64_t *requeue;
		size_t n;

		rc = gw_journal_replay(&d->acts, cfg->store_dir, &requeue, &n);
		if (rc)
			goto fail_acts;
		/* activations accepted before a crash and never started run now, once */
		if (n > d->q_cap) {
			uint64_t *q = realloc(d->queue, n * sizeof(*q));

			if (!q) {
				free(requeue);
				rc = -ENOMEM;
				goto fail_acts;
			}
			d->queue = q;
			d->q_cap = (uint32_t)n;
		}
		for (size_t i = 0; i < n; i++)
			d->queue[d->q_len++] = requeue[i];
		free(requeue);
	}
	for (uint32_t i = 0; i < cfg->async_workers; i++) {
		rc = -pthread_create(&d->workers[i], NULL, worker_main, d);
		if (rc) {
			NEMO_ERR(GW_MOD, "async worker: %s", strerror(-rc));
			goto fail_workers;
		}
		d->n_workers++;
	}
	return d;

fail_workers:
	pthread_mutex_lock(&d->q_lock);
	d->q_stop = true;
	pthread_cond_broadcast(&d->q_cond);
	pthread_mutex_unlock(&d->q_lock);
	for (int i = 0; i < d->n_workers; i++)
		pthread_join(d->workers[i], NULL);
	while (d->functions)
		gw_undeploy(d, d->functions->spec.name);
fail_acts:
	free(d->queue);
	free(d->workers);
	gw_act_table_fini(&d->acts);
fail:
	free(d);
	errno = -rc;
	return NULL;
}

int gw_daemon_start(struct gw_daemon *d)
{
	d->http = gw_http_start(d);
	if (!d->http)
		return -errno;
	if (d->cfg.mqtt.enabled) {
		d->mqtt = gw_mqtt_start(d);
		if (!d->mqtt) {
			int rc = -errno;

			gw_http_stop(d->http);
			d->http = NULL;
			return rc;
		}
	}
	NEMO_INFO(GW_MOD, "listening addr=%s:%u backend=%s dispatch=%s", d->cfg.listen_host,
		  gw_http_port(d->http), d->backend.ops->name, d->dispatch.ops->name);
	return 0;
}

uint16_t gw_daemon_port(const struct gw_daemon *d)
{
	return d->http ? gw_http_port(d->http) : 0;
}

void gw_daemon_run(struct gw_daemon *d)
{
	uint64_t last = nemo_now_ns();

	while (!d->stop) {
		struct timespec ts = {0, 50 * 1000000};

		nanosleep(&ts, NULL);
		/* keep-alive expiry is a slow loop: once a second is plenty */
		if (nemo_now_ns() - last > 1000000000ull) {
			last = nemo_now_ns();
			if (d->backend.ops->maintain)
				d->backend.ops->maintain(d->backend.state);
		}
	}
}

void gw_daemon_request_stop(struct gw_daemon *d)
{
	d->stop = 1;
}

int gw_daemon_drain(struct gw_daemon *d)
{
	uint64_t deadline = nemo_now_ns() + (uint64_t)d->cfg.drain_timeout_ms * 1000000ull;
	int cancelled = 0;
	struct timespec ts;
	uint32_t left;

	d->draining = true;
	if (d->mqtt) {
		gw_mqtt_stop(d->mqtt);
		d->mqtt = NULL;
	}
	NEMO_INFO(GW_MOD, "draining inflight=%u queued=%u deadline_ms=%u",
		  atomic_load(&d->inflight), d->q_len, d->cfg.drain_timeout_ms);
	/* in-flight HTTP invocations, and queued async ones, get until the deadline */
	for (;;) {
		pthread_mutex_lock(&d->q_lock);
		left = d->q_len + d->q_active;
		pthread_mutex_unlock(&d->q_lock);
		if ((!left && !atomic_load(&d->inflight)) || nemo_now_ns() >= deadline)
			break;
		ts = (struct timespec){0, 5 * 1000000};
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&d->q_lock);
	d->q_stop = true;
	pthread_cond_broadcast(&d->q_cond);
	/* what never started ends now, as cancelled: a terminal state, not a lost activation */
	while (d->q_len) {
		uint64_t seq = d->queue[d->q_head];

		d->q_head = (d->q_head + 1) % d->q_cap;
		d->q_len--;
		if (!gw_act_finish(&d->acts, seq, GW_ACT_CANCELLED, NULL,
				   "nemod shut down before the activation started"))
			cancelled++;
	}
	pthread_mutex_unlock(&d->q_lock);
	for (int i = 0; i < d->n_workers; i++)
		pthread_join(d->workers[i], NULL);
	d->n_workers = 0;
	if (d->http) {
		gw_http_stop(d->http);
		d->http = NULL;
	}
	NEMO_INFO(GW_MOD, "drained cancelled=%d inflight_left=%u", cancelled,
		  atomic_load(&d->inflight));
	return cancelled;
}

void gw_daemon_destroy(struct gw_daemon *d)
{
	struct gw_function *fn, *next;

	if (!d)
		return;
	if (d->n_workers || d->http)
		gw_daemon_drain(d);
	/* functions stay in the store: only the in-memory view goes */
	for (fn = d->functions; fn; fn = next) {
		next = fn->next;
		gw_fn_put(fn);
	}
	gw_act_table_fini(&d->acts);
	free(d->queue);
	free(d->workers);
	pthread_rwlock_destroy(&d->fn_lock);
	pthread_mutex_destroy(&d->deploy_lock);
	pthread_mutex_destroy(&d->q_lock);
	pthread_cond_destroy(&d->q_cond);
	pthread_cond_destroy(&d->q_idle);
	free(d);
}

cJSON *gw_fn_json(struct gw_daemon *d, struct gw_function *fn, bool with_doc)
{
	const struct sbx_spec *s = &fn->spec;
	struct sbx_pool_stats st;
	cJSON *j = cJSON_CreateObject(), *pool, *m;

	cJSON_AddStringToObject(j, "name", s->name);
	cJSON_AddStringToObject(j, "namespace", "_");
	cJSON_AddNumberToObject(j, "version", (double)fn->version);
	cJSON_AddStringToObject(j, "runtime", sbx_runtime_name(s->runtime));
	cJSON_AddStringToObject(j, "handler", s->handler);
	cJSON_AddNumberToObject(j, "memory_mb", s->memory_mb);
	cJSON_AddNumberToObject(j, "timeout_ms", s->timeout_ms);
	cJSON_AddNumberToObject(j, "concurrency", s->concurrency);
	cJSON_AddNumberToObject(j, "max_payload_bytes", s->max_payload_bytes);
	cJSON_AddNumberToObject(j, "prewarm", fn->prewarm);
	cJSON_AddStringToObject(j, "code", s->code);
	if (fn->mqtt.n_topics) {
		cJSON *topics;

		m = cJSON_AddObjectToObject(j, "mqtt");
		topics = cJSON_AddArrayToObject(m, "topics");
		for (int i = 0; i < fn->mqtt.n_topics; i++)
			cJSON_AddItemToArray(topics, cJSON_CreateString(fn->mqtt.topics[i]));
		if (fn->mqtt.reply_topic[0])
			cJSON_AddStringToObject(m, "reply_topic", fn->mqtt.reply_topic);
	}
	pool = cJSON_AddObjectToObject(j, "warm_pool");
	if (d->backend.ops->stats(d->backend.state, s->name, &st) == 0) {
		cJSON_AddNumberToObject(pool, "idle", st.idle);
		cJSON_AddNumberToObject(pool, "busy", st.busy);
		cJSON_AddNumberToObject(pool, "prewarmed", st.prewarmed);
		cJSON_AddNumberToObject(pool, "cold_starts", (double)st.cold_starts);
		cJSON_AddNumberToObject(pool, "warm_starts", (double)st.warm_starts);
		cJSON_AddNumberToObject(pool, "prewarmed_starts", (double)st.prewarmed_starts);
		cJSON_AddNumberToObject(pool, "crashes", (double)st.crashes);
	}
	if (with_doc && fn->doc) {
		cJSON *doc = cJSON_Parse(fn->doc);

		if (doc)
			cJSON_AddItemToObject(j, "spec", doc);
	}
	return j;
}
