/* service.c - the function service: registry, deploy, invoke, async queue. No protocol here. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/config.h"
#include "nemo/log.h"
#include "gw_internal.h"

/* ---- the function list ------------------------------------------------------------------------ */

static void fn_free(struct gw_function *fn)
{
	pthread_mutex_destroy(&fn->gate_lock);
	pthread_cond_destroy(&fn->gate_cond);
	cJSON_Delete(fn->parameters);
	cJSON_Delete(fn->annotations);
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

void gw_fn_foreach(struct gw_daemon *d, void (*cb)(void *arg, struct gw_function *f), void *arg)
{
	struct gw_function *fn;

	pthread_rwlock_rdlock(&d->fn_lock);
	for (fn = d->functions; fn; fn = fn->next)
		cb(arg, fn);
	pthread_rwlock_unlock(&d->fn_lock);
}

/* ---- deploy ----------------------------------------------------------------------------------- */

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* A key as people know the function: its name (the namespace is theirs). */
static const char *fn_shown(const char *key)
{
	return strrchr(key, '.') ? strrchr(key, '.') + 1 : key;
}

/* -ENOENT, naming the function in its namespace. */
static int not_deployed(struct gw_daemon *d, const char *key, char *err, size_t errlen)
{
	char ns[GW_NS_MAX], name[SBX_NAME_MAX], why[512];

	gw_key_split(d->default_ns, key, ns, name);
	/* in a cluster, one the registry has but this node could not take: say why */
	if (gw_cluster_missing(d, key, why, sizeof(why)))
		return fail(err, errlen, -ENOENT,
			    "function '%s' is not deployed on this node in namespace '%s': %s",
			    name, ns, why);
	return fail(err, errlen, -ENOENT, "function '%s' is not deployed in namespace '%s'", name,
		    ns);
}

/* A function fed only by packets is no target for a call: refused before it is accepted. */
static int takes_calls(const struct gw_function *fn, char *err, size_t errlen)
{
	if (!fn->packet.packets_only)
		return 0;
	return fail(err, errlen, -EINVAL,
		    "function '%s' takes packets only: its code has the batch handler '%s' and no "
		    "request handler '%s'",
		    fn->name, fn->packet.handler,
		    fn->spec.handler[0] ? fn->spec.handler : "handle");
}

/* The gateway's own keys of a function document; the spec keys go to sbx_spec_parse(). */
struct fn_doc {
	const cJSON *mqtt, *packet, *prewarm, *parameters, *annotations, *logs, *kind, *style, *qos;
	const cJSON *spec_key; /* any spec key: checked by sbx_spec_parse() */
};

static int doc_item(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		    const struct cfg_key *key)
{
	(void)ctx;
	(void)path;
	*(const cJSON **)((char *)dst + key->offset) = item;
	return 0;
}

#define DOC_KEY(n, field)                                                                \
	{                                                                                \
		.name = (n), .parse = doc_item, .offset = offsetof(struct fn_doc, field) \
	}

static const struct cfg_key fn_doc_keys[] = {
	DOC_KEY("mqtt", mqtt),
	DOC_KEY("packet", packet),
	DOC_KEY("prewarm", prewarm),
	DOC_KEY("parameters", parameters),
	DOC_KEY("annotations", annotations),
	DOC_KEY("logs_bytes", logs),
	DOC_KEY("kind", kind),
	DOC_KEY("handler_style", style),
	DOC_KEY("qos", qos),
	DOC_KEY("name", spec_key),
	DOC_KEY("code", spec_key),
	DOC_KEY("runtime", spec_key),
	DOC_KEY("handler", spec_key),
	DOC_KEY("exec_mode", spec_key),
	DOC_KEY("memory_mb", spec_key),
	DOC_KEY("timeout_ms", spec_key),
	DOC_KEY("max_payload_bytes", spec_key),
	DOC_KEY("concurrency", spec_key),
	DOC_KEY("max_pids", spec_key),
	DOC_KEY("env", spec_key),
	CFG_KEY_END,
};

static int parse_mqtt(struct cfg_ctx *ctx, const cJSON *m, struct gw_mqtt_trigger *t)
{
	const cJSON *topics, *reply, *qos, *it;
	int i = 0;

	memset(t, 0, sizeof(*t));
	if (!m)
		return 0;
	if (!cJSON_IsObject(m))
		return cfg_error(ctx, "mqtt",
				 "expected an object {\"topics\": [...], \"reply_topic\": ...}");
	cJSON_ArrayForEach (it, m) {
		if (strcmp(it->string, "topics") && strcmp(it->string, "reply_topic") &&
		    strcmp(it->string, "qos"))
			return cfg_error(ctx, "mqtt", "'%s': unknown key", it->string);
	}
	topics = cJSON_GetObjectItemCaseSensitive(m, "topics");
	if (!cJSON_IsArray(topics) || cJSON_GetArraySize(topics) < 1)
		return cfg_error(ctx, "mqtt.topics", "expected a non-empty array of topic filters");
	cJSON_ArrayForEach (it, topics) {
		if (!cJSON_IsString(it) || !it->valuestring[0] ||
		    strlen(it->valuestring) >= GW_TOPIC_MAX)
			return cfg_error(ctx, "mqtt.topics",
					 "[%d]: expected a topic filter of 1..%d characters", i,
					 GW_TOPIC_MAX - 1);
		if (i >= GW_MAX_TOPICS)
			return cfg_error(ctx, "mqtt.topics", "more than %d topics", GW_MAX_TOPICS);
		snprintf(t->topics[i++], GW_TOPIC_MAX, "%s", it->valuestring);
	}
	t->n_topics = i;
	reply = cJSON_GetObjectItemCaseSensitive(m, "reply_topic");
	if (reply) {
		if (!cJSON_IsString(reply) || !reply->valuestring[0] ||
		    strlen(reply->valuestring) >= GW_TOPIC_MAX || strpbrk(reply->valuestring, "+#"))
			return cfg_error(ctx, "mqtt.reply_topic",
					 "expected a topic without wildcards");
		snprintf(t->reply_topic, GW_TOPIC_MAX, "%s", reply->valuestring);
	}
	qos = cJSON_GetObjectItemCaseSensitive(m, "qos");
	if (qos) {
		if (!cJSON_IsNumber(qos) || qos->valueint < 0 || qos->valueint > 1 ||
		    qos->valuedouble != (double)qos->valueint)
			return cfg_error(ctx, "mqtt.qos", "expected 0 or 1");
		t->qos = qos->valueint;
	}
	return 0;
}

/* The gateway's keys of `doc` into fn (spec excluded). Returns 0 or -EINVAL. */
static int fn_doc_apply(struct cfg_ctx *ctx, const cJSON *doc, struct gw_function *fn)
{
	struct fn_doc k = {0};
	int rc = cfg_parse_object(ctx, "", doc, fn_doc_keys, &k);

	if (rc)
		return rc;
	rc = parse_mqtt(ctx, k.mqtt, &fn->mqtt);
	if (rc)
		return rc;
	rc = gw_packet_parse(ctx, k.packet, fn->name, &fn->packet);
	if (rc)
		return rc;
	if (k.prewarm && (!cJSON_IsNumber(k.prewarm) || k.prewarm->valueint < 0 ||
			  k.prewarm->valueint > GW_MAX_PREWARM ||
			  k.prewarm->valuedouble != (double)k.prewarm->valueint))
		return cfg_error(ctx, "prewarm", "expected an integer 0..%d", GW_MAX_PREWARM);
	fn->prewarm = k.prewarm ? k.prewarm->valueint : 0;
	if (k.parameters && !cJSON_IsObject(k.parameters))
		return cfg_error(ctx, "parameters", "expected an object of default parameters");
	if (k.annotations && !cJSON_IsArray(k.annotations))
		return cfg_error(ctx, "annotations", "expected an array of {key, value}");
	if (k.logs && (!cJSON_IsNumber(k.logs) || k.logs->valuedouble < 0 ||
		       k.logs->valuedouble > 64.0 * 1048576))
		return cfg_error(ctx, "logs_bytes", "expected bytes 0..%u", 64u << 20);
	if (k.kind && (!cJSON_IsString(k.kind) || strlen(k.kind->valuestring) >= sizeof(fn->kind)))
		return cfg_error(ctx, "kind", "expected a kind name");
	if (k.style && (!cJSON_IsString(k.style) || (strcmp(k.style->valuestring, "bytes") &&
						     strcmp(k.style->valuestring, "dict"))))
		return cfg_error(ctx, "handler_style", "expected \"bytes\" or \"dict\"");
	fn->dict_style = k.style && !strcmp(k.style->valuestring, "dict");
	fn->qos = -1;
	if (k.qos && (!cJSON_IsString(k.qos) || cl_qos_parse(k.qos->valuestring) < 0))
		return cfg_error(ctx, "qos", "expected \"latency\" or \"batch\"");
	if (k.qos)
		fn->qos = cl_qos_parse(k.qos->valuestring);
	fn->parameters = k.parameters ? cJSON_Duplicate(k.parameters, true) : NULL;
	fn->annotations = k.annotations ? cJSON_Duplicate(k.annotations, true) : NULL;
	/* OpenWhisk keeps 10 MB of logs by default; native functions keep none unless asked */
	fn->log_limit = k.logs ? (uint32_t)k.logs->valuedouble : k.kind ? 10u << 20 : 0;
	snprintf(fn->kind, sizeof(fn->kind), "%s", k.kind ? k.kind->valuestring : "");
	return 0;
}

/* The spec keys of doc, as text for sbx_spec_parse(); `code` set to code_path. */
static char *spec_text(const cJSON *doc, const char *name, const char *code_path)
{
	static const char *const own[] = {"mqtt",	"packet",	 "prewarm",
					  "parameters", "annotations",	 "logs_bytes",
					  "kind",	"handler_style", NULL};
	cJSON *s = cJSON_Duplicate(doc, true);
	char *text;

	if (!s)
		return NULL;
	for (int i = 0; own[i]; i++)
		cJSON_DeleteItemFromObjectCaseSensitive(s, own[i]);
	cJSON_DeleteItemFromObjectCaseSensitive(s, "name");
	cJSON_DeleteItemFromObjectCaseSensitive(s, "code");
	cJSON_AddStringToObject(s, "name", name);
	cJSON_AddStringToObject(s, "code", code_path);
	text = cJSON_PrintUnformatted(s);
	cJSON_Delete(s);
	return text;
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

static void default_file_name(const char *key, int runtime, char *buf, size_t len)
{
	/* the name without its namespace: "ns.name" is no python module name */
	const char *name = strrchr(key, '.') ? strrchr(key, '.') + 1 : key;

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

/* Put the code where the sandbox reads it; code_path gets the stored path. */
static int place_code(struct gw_daemon *d, struct gw_deploy_req *req, const struct sbx_spec *spec,
		      uint64_t version, char *code_path, size_t cplen, char *err, size_t errlen)
{
	char file[128], real[PATH_MAX];
	int rc;

	switch (req->code_kind) {
	case GW_CODE_BYTES:
		if (req->code_file[0])
			snprintf(file, sizeof(file), "%s", req->code_file);
		else
			default_file_name(req->name, spec->runtime, file, sizeof(file));
		rc = gw_store_write_code(d->cfg.store_dir, req->name, version, file, req->code,
					 req->code_len, code_path, cplen);
		return rc ? fail(err, errlen, -EIO, "store: %s", strerror(-rc)) : 0;
	case GW_CODE_ZIP: {
		/* python runs the folder (its __main__.py); native its `exec`; c its .so */
		const char *entry = spec->runtime == SBX_RUNTIME_EXEC ? "exec"
				    : spec->runtime == SBX_RUNTIME_C  ? "function.so"
								      : "__main__.py";
		char why[256];

		rc = gw_store_write_zip(d->cfg.store_dir, req->name, version, req->code,
					req->code_len, code_path, cplen, why, sizeof(why));
		if (rc)
			return fail(err, errlen, rc == -EINVAL ? -EINVAL : -EIO,
				    "key 'code': zip archive: %s", why);
		if (spec->runtime != SBX_RUNTIME_PYTHON || strncmp(spec->handler, "__main__", 8)) {
			size_t n = strlen(code_path);

			if (snprintf(code_path + n, cplen - n, "/%s", entry) >= (int)(cplen - n))
				return fail(err, errlen, -EINVAL, "key 'code': path too long");
		} else {
			snprintf(file, sizeof(file), "%s/%s", code_path, entry);
			entry = file;
		}
		if (access(spec->runtime == SBX_RUNTIME_PYTHON ? entry : code_path, R_OK))
			return fail(err, errlen, -EINVAL,
				    "key 'code': the zip archive has no '%s' at its top",
				    strrchr(entry, '/') ? strrchr(entry, '/') + 1 : entry);
		return 0;
	}
	case GW_CODE_PATH:
		if (!d->cfg.n_code_roots)
			return fail(err, errlen, -EINVAL,
				    "key 'code.path': this nemod has no code_roots; send the code "
				    "as base64");
		if (!realpath(req->code_path, real))
			return fail(err, errlen, -EINVAL, "key 'code.path': %s: %s", req->code_path,
				    strerror(errno));
		/* the canonical path decides: ../ and symlinks cannot leave the roots */
		if (!under_root(&d->cfg, real))
			return fail(err, errlen, -EINVAL,
				    "key 'code.path': '%s' is outside the allowed code roots",
				    req->code_path);
		if (req->code_file[0])
			snprintf(file, sizeof(file), "%s", req->code_file);
		else
			snprintf(file, sizeof(file), "%s", strrchr(real, '/') + 1);
		{
			size_t len;
			char *bytes = gw_read_file(real, 256u << 20, &len);

			if (!bytes)
				return fail(err, errlen, -EINVAL, "key 'code.path': %s: %s",
					    req->code_path, strerror(errno));
			rc = gw_store_write_code(d->cfg.store_dir, req->name, version, file, bytes,
						 len, code_path, cplen);
			free(bytes);
		}
		return rc ? fail(err, errlen, -EIO, "store: %s", strerror(-rc)) : 0;
	default:
		return fail(err, errlen, -EINVAL, "key 'code': required key is missing");
	}
}

/* doc := old's document overlaid with the keys `req` gives (a partial update). */
static int merge_partial(struct gw_function *old, struct gw_deploy_req *req)
{
	cJSON *base = gw_json_parse("stored spec", old->doc, strlen(old->doc), NULL, 0), *it;

	if (!base)
		return -ENOMEM;
	cJSON_ArrayForEach (it, req->doc) {
		cJSON_DeleteItemFromObjectCaseSensitive(base, it->string);
		cJSON_AddItemToObject(base, it->string, cJSON_Duplicate(it, true));
	}
	cJSON_Delete(req->doc);
	req->doc = base;
	req->code_kind = GW_CODE_STORED;
	snprintf(req->code_path, sizeof(req->code_path), "%s", old->spec.code);
	return 0;
}

/* The environment a runtime reads for the gateway's features (dict style, log capture). */
static int spec_add_env(struct sbx_spec *s, const char *kv)
{
	if (s->n_env >= SBX_ENV_MAX)
		return -ENOSPC;
	snprintf(s->env[s->n_env++], SBX_ENV_LEN, "%s", kv);
	return 0;
}

int gw_svc_deploy(struct gw_daemon *d, struct gw_deploy_req *req, unsigned flags, char *err,
		  size_t errlen)
{
	struct cfg_ctx ctx = {.file = req->code_kind == GW_CODE_STORED ? "store" : "request"};
	bool stored = req->code_kind == GW_CODE_STORED && !req->partial;
	struct gw_function *fn = NULL, *old;
	char spec_err[512], code_path[GW_PATH_MAX], kv[SBX_ENV_LEN];
	char *text = NULL, *doc = NULL;
	uint64_t version, placed = 0;
	int n_prewarm, rc;

	err[0] = '\0';
	pthread_mutex_lock(&d->deploy_lock);
	old = gw_fn_get(d, req->name);
	if (old && !stored && !(flags & GW_DEPLOY_OVERWRITE)) {
		rc = fail(err, errlen, -EEXIST, "function '%s' exists: overwrite to replace it",
			  fn_shown(req->name));
		goto out;
	}
	if (req->partial) {
		if (!old) {
			rc = fail(err, errlen, -EINVAL,
				  "key 'exec': required to create action '%s'",
				  fn_shown(req->name));
			goto out;
		}
		rc = merge_partial(old, req);
		if (rc) {
			rc = fail(err, errlen, rc, "out of memory");
			goto out;
		}
	}
	fn = calloc(1, sizeof(*fn));
	if (!fn) {
		rc = fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	gw_key_split(d->default_ns, req->name, fn->ns, fn->name);
	rc = fn_doc_apply(&ctx, req->doc, fn);
	if (rc) {
		rc = fail(err, errlen, rc, "%s", ctx.err);
		goto out;
	}
	/* check the spec before any code is written: a bad spec changes nothing */
	text = spec_text(req->doc, req->name,
			 req->code_kind == GW_CODE_STORED ? req->code_path
							  : "/nemo/validating/placeholder");
	if (!text) {
		rc = fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	rc = sbx_spec_parse(text, strlen(text), ctx.file, &fn->spec, spec_err, sizeof(spec_err));
	if (rc) {
		rc = fail(err, errlen, rc, "%s", spec_err);
		goto out;
	}
	if (fn->dict_style && fn->spec.runtime != SBX_RUNTIME_PYTHON) {
		rc = fail(err, errlen, -EINVAL, "key 'handler_style': \"dict\" is for python only");
		goto out;
	}
	if (req->code_kind == GW_CODE_STORED) {
		char prefix[GW_PATH_MAX + 80];

		/* a stored document may only point into its own store folder */
		snprintf(prefix, sizeof(prefix), "%s/%s/v", d->cfg.store_dir, req->name);
		if (strncmp(req->code_path, prefix, strlen(prefix)) ||
		    strstr(req->code_path, "/../")) {
			rc = fail(err, errlen, -EINVAL,
				  "key 'code': '%s' is not in this function's store folder",
				  req->code_path);
			goto out;
		}
		version = strtoull(req->code_path + strlen(prefix), NULL, 10);
		if (version > d->next_version)
			d->next_version = version;
		snprintf(code_path, sizeof(code_path), "%s", req->code_path);
	} else {
		version = ++d->next_version;
		placed = version; /* from here on a failure removes what was written */
		rc = place_code(d, req, &fn->spec, version, code_path, sizeof(code_path), err,
				errlen);
		if (rc)
			goto out;
	}
	snprintf(fn->spec.code, sizeof(fn->spec.code), "%s", code_path);
	{
		/* a .so without its handler is refused now, not at its first call; nothing loads */
		char why[256];

		rc = sbx_code_check(fn->spec.runtime, fn->spec.code,
				    fn->packet.on ? fn->packet.handler : fn->spec.handler, why,
				    sizeof(why));
		if (rc) {
			rc = fail(err, errlen, -EINVAL, "key 'code': %s", why);
			goto out;
		}
		/* a C batch handler alone takes packets, not calls; the call says so, not the
		 * runtime at its start (python is known only once loaded: the runtime says it) */
		fn->packet.packets_only =
			fn->packet.on && fn->spec.runtime == SBX_RUNTIME_C &&
			sbx_code_check(fn->spec.runtime, fn->spec.code, fn->spec.handler, NULL, 0);
	}
	/* a trigger naming a ring the NF does not have is refused now; a function loaded from
	 * the store waits for its NF instead (the record says so) */
	if (fn->packet.on && !stored) {
		if (!d->packet) {
			rc = fail(err, errlen, -EINVAL,
				  "key 'packet': this nemod's backend (%s) runs no packet triggers",
				  d->backend.ops->name);
			goto out;
		}
		rc = gw_packet_check_nf(&fn->packet, err, errlen);
		if (rc) {
			rc = -EINVAL;
			goto out;
		}
	}
	cJSON_DeleteItemFromObjectCaseSensitive(req->doc, "name");
	cJSON_DeleteItemFromObjectCaseSensitive(req->doc, "code");
	cJSON_AddStringToObject(req->doc, "name", req->name);
	cJSON_AddStringToObject(req->doc, "code", code_path);
	doc = cJSON_Print(req->doc);
	if (!doc) {
		rc = fail(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	/* NEMO_* is what nemo tells the runtime (below): a function may not set it itself */
	for (uint32_t i = 0; i < fn->spec.n_env; i++)
		if (!strncmp(fn->spec.env[i], "NEMO_", 5)) {
			rc = fail(err, errlen, -EINVAL,
				  "key 'env': '%.*s' is reserved for nemo (names starting NEMO_)",
				  (int)strcspn(fn->spec.env[i], "="), fn->spec.env[i]);
			goto out;
		}
	/* what the runtime reads: main(dict) calling convention, and how much output to keep */
	if (fn->dict_style && spec_add_env(&fn->spec, "NEMO_HANDLER_STYLE=dict")) {
		rc = fail(err, errlen, -EINVAL, "key 'env': no room for nemo's own variables");
		goto out;
	}
	snprintf(kv, sizeof(kv), "NEMO_LOG_LIMIT=%u", fn->log_limit);
	/* a persistent exec program speaks the frames itself and sends no log lines; per
	 * request, the runtime keeps the program's stderr as the call's log lines */
	if (fn->spec.runtime == SBX_RUNTIME_EXEC && fn->spec.exec_mode != SBX_EXEC_PER_REQUEST)
		fn->log_limit = 0;
	if (fn->log_limit && spec_add_env(&fn->spec, kv)) {
		rc = fail(err, errlen, -EINVAL, "key 'env': no room for nemo's own variables");
		goto out;
	}
	rc = d->backend.ops->deploy(d->backend.state, &fn->spec);
	if (rc) {
		rc = fail(err, errlen, rc == -EINVAL ? -EINVAL : -EIO, "deploy: %s", strerror(-rc));
		goto out;
	}
	if (!stored) {
		rc = gw_store_commit(d->cfg.store_dir, req->name, doc, version);
		if (rc) {
			/* keep the backend in step with what the store still says */
			if (old)
				d->backend.ops->deploy(d->backend.state, &old->spec);
			else
				d->backend.ops->undeploy(d->backend.state, req->name);
			rc = fail(err, errlen, -EIO, "store: %s", strerror(-rc));
			goto out;
		}
	}
	fn->doc = doc;
	doc = NULL;
	fn->version = version;
	if (!fn->kind[0])
		snprintf(fn->kind, sizeof(fn->kind), "%s", gw_kind_of_runtime(fn->spec.runtime));
	atomic_init(&fn->refs, 1);
	pthread_mutex_init(&fn->gate_lock, NULL);
	pthread_cond_init(&fn->gate_cond, NULL);
	n_prewarm = fn->prewarm;
	if (fn->mqtt.n_topics && !d->cfg.mqtt.enabled)
		NEMO_WARN(GW_MOD, "function=%s has MQTT topics but mqtt.enabled is false in %s",
			  req->name, d->cfg.file);
	fn_publish(d, fn);
	fn = NULL;
	gw_fn_put(old);
	old = NULL;
	pthread_mutex_unlock(&d->deploy_lock);
	if (d->mqtt_topics_changed)
		d->mqtt_topics_changed(d->mqtt_sink_state);
	gw_packet_sync(d->packet);
	if (n_prewarm)
		prewarm_function(d, req->name, n_prewarm);
	if (!stored)
		gw_cluster_deployed(d, req->name);
	NEMO_INFO(GW_MOD, "deployed function=%s version=%llu code=%s origin=%s", req->name,
		  (unsigned long long)version, code_path, ctx.file);
	rc = 0;
	goto done;
out:
	/* a deploy that fails leaves nothing of itself in the store */
	if (placed)
		gw_store_discard(d->cfg.store_dir, req->name, placed);
	pthread_mutex_unlock(&d->deploy_lock);
	gw_fn_put(old);
done:
	if (fn) {
		cJSON_Delete(fn->parameters);
		cJSON_Delete(fn->annotations);
		free(fn);
	}
	free(text);
	free(doc);
	gw_deploy_req_release(req);
	return rc;
}

int gw_svc_undeploy(struct gw_daemon *d, const char *name)
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
	if (d->mqtt_topics_changed)
		d->mqtt_topics_changed(d->mqtt_sink_state);
	/* its instances are gone, and their leases with them, when the delete is answered */
	gw_packet_sync(d->packet);
	gw_cluster_undeployed(d, name);
	NEMO_INFO(GW_MOD, "deleted function=%s", name);
	return rc == -ENOENT ? 0 : rc;
}

/* ---- invoke ------------------------------------------------------------------------------------- */

static int admit(struct gw_daemon *d)
{
	if (atomic_fetch_add(&d->inflight, 1) >= d->cfg.limits.max_inflight) {
		atomic_fetch_sub(&d->inflight, 1);
		return -EAGAIN;
	}
	return 0;
}

static void unadmit(struct gw_daemon *d)
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

/*
 * With log capture on, the runtime puts the function's output before its response: a 4-byte
 * length, the log lines, then the response. Split them: the record gets the lines.
 */
static void split_logs(struct gw_daemon *d, struct gw_function *fn, uint64_t seq,
		       struct sbx_result *res)
{
	uint32_t n;

	if (!fn->log_limit || !res->response || res->response_len < 4)
		return;
	memcpy(&n, res->response, 4);
	if (n > res->response_len - 4)
		return; /* not the runtime's framing: leave the bytes as they are */
	gw_act_set_logs(&d->acts, seq, (const char *)res->response + 4, n);
	res->response_len -= 4 + n;
	memmove(res->response, res->response + 4 + n, res->response_len);
	res->response[res->response_len] = '\0';
	if (res->status == SBX_ERR_FUNCTION)
		snprintf(res->message, sizeof(res->message), "function error: %.200s",
			 (const char *)res->response);
}

/*
 * The calls the function made with nemo_call during activation `seq`: one record each,
 * caused by the activation of the function that made it, counted in its callee's metrics.
 */
static void record_calls(struct gw_daemon *d, uint64_t seq, const struct sbx_result *res)
{
	char(*ids)[GW_ID_LEN + 1];

	if (res->calls_lost)
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
				     "%u records of calls between functions were lost",
				     res->calls_lost);
	if (!res->n_calls)
		return;
	ids = calloc(res->n_calls + 1, sizeof(*ids));
	if (!ids)
		return;
	gw_act_id_of(&d->acts, seq, ids[0]);
	for (uint32_t i = 0; i < res->n_calls; i++) {
		const struct sbx_call_record *c = &res->calls[i];
		int32_t parent = c->parent >= 0 && (uint32_t)c->parent < i ? c->parent + 1 : 0;
		struct gw_function *fn = gw_fn_get(d, c->function);
		struct sbx_result one = {.status = c->status};
		uint64_t cseq;

		one.times.run_ns = c->run_ns;
		if (!gw_act_called(&d->acts, ids[parent], c, &cseq, ids[i + 1]) && fn)
			gw_act_set_function(&d->acts, cseq, fn->version, fn->kind,
					    fn->spec.timeout_ms, fn->spec.memory_mb, fn->log_limit);
		if (fn) {
			gw_metrics_record(fn, gw_act_status_of(c->status), &one, c->wait_ns);
			gw_fn_put(fn);
		}
	}
	free(ids);
}

/*
 * Run activation `seq` of fn in the calling thread and record its outcome; `res` gets the
 * result (release it through the backend). `bounded`: refuse with -EAGAIN when the function
 * already has max_inflight_per_function running or waiting. Returns 0, -EAGAIN, or -EALREADY
 * when the activation had already started (it is never run twice).
 */
static int invoke_sync(struct gw_daemon *d, struct gw_function *fn, uint64_t seq, const void *req,
		       size_t len, bool bounded, struct sbx_result *res)
{
	uint64_t t0 = nemo_now_ns(), t_placed;
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
	/* harvesting, placement waits for a core with spare (up to the queue deadline and, while
	 * the housekeeping core is busy-polled, past it) */
	if (d->dispatch.ops->place(d->dispatch.state, fn->spec.name, &where))
		where.core = -1;
	t_placed = nemo_now_ns();
	rc = gw_act_begin(&d->acts, seq, where.core);
	if (rc) {
		/* already started or finished elsewhere (never run an activation twice), or its
		 * start cannot be journaled (-EIO: it waits) */
		gate_leave(fn);
		return rc;
	}
	d->backend.ops->invoke(d->backend.state, fn->spec.name, where.core, req, len, res);
	gate_leave(fn);
	/* waiting at our gate and for a core is queueing too */
	res->times.queue_ns += t_placed - t0;
	d->dispatch.ops->observe(d->dispatch.state, fn->spec.name, &where, res);
	split_logs(d, fn, seq, res);
	st = gw_act_status_of(res->status);
	gw_metrics_record(fn, st, res, nemo_now_ns() - t0);
	gw_act_finish(&d->acts, seq, st, res, NULL);
	record_calls(d, seq, res);
	return 0;
}

/*
 * The bytes the function gets. A dict-style function, or one with default parameters, gets
 * a JSON object: the parameters, overlaid by the invocation's object and its context.
 * *out is NULL when the payload goes as it is.
 */
static int build_payload(struct gw_function *fn, const struct gw_call *call, char **out,
			 size_t *out_len, char *err, size_t errlen)
{
	cJSON *obj = NULL, *ctx = NULL, *it;

	*out = NULL;
	if (!fn->dict_style && !fn->parameters)
		return 0;
	if (fn->dict_style && call->context)
		ctx = call->context(call->context_arg);
	if (call->len) {
		obj = cJSON_ParseWithLength(call->payload, call->len);
		if (cJSON_IsObject(obj)) {
			/* merged with defaults, a key given twice would read one way here and
			 * another in the function */
			struct cfg_ctx cc = {.file = "payload", .quiet = true};

			if (cfg_check_unique_keys(&cc, "", obj)) {
				cJSON_Delete(obj);
				cJSON_Delete(ctx);
				return fail(err, errlen, -EINVAL, "%s", cc.err);
			}
		} else {
			cJSON_Delete(obj);
			if (!fn->dict_style)
				return 0; /* bytes for a bytes function: parameters do not apply */
			if (!ctx)
				return fail(err, errlen, -EINVAL,
					    "function '%s' takes a JSON object (main(dict)); the "
					    "payload is not one",
					    fn->name);
			/* a web call with a body that is not JSON: OpenWhisk's __ow_body */
			char *text = strndup(call->payload, call->len);

			obj = cJSON_CreateObject();
			cJSON_AddStringToObject(obj, "__ow_body", text ? text : "");
			free(text);
		}
	} else {
		obj = cJSON_CreateObject();
	}
	if (!obj) {
		cJSON_Delete(ctx);
		return -ENOMEM;
	}
	/* the invocation's own keys win over the defaults and the context */
	cJSON_ArrayForEach (it, fn->parameters) {
		if (!cJSON_GetObjectItemCaseSensitive(obj, it->string))
			cJSON_AddItemToObject(obj, it->string, cJSON_Duplicate(it, true));
	}
	cJSON_ArrayForEach (it, ctx) {
		if (!cJSON_GetObjectItemCaseSensitive(obj, it->string))
			cJSON_AddItemToObject(obj, it->string, cJSON_Duplicate(it, true));
	}
	*out = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	cJSON_Delete(ctx);
	if (!*out)
		return -ENOMEM;
	*out_len = strlen(*out);
	return 0;
}

/*
 * The bytes a call hands its function: merged with the function's defaults where they apply,
 * and within its max_payload_bytes. *merged is what the caller frees (NULL if nothing was).
 */
static int call_payload(struct gw_function *fn, const struct gw_call *call, const void **payload,
			size_t *len, char **merged, char *err, size_t errlen)
{
	int rc;

	*payload = call->payload;
	*len = call->len;
	rc = build_payload(fn, call, merged, len, err, errlen);
	if (rc)
		return rc;
	if (*merged)
		*payload = *merged;
	if (*len > fn->spec.max_payload_bytes)
		return fail(err, errlen, -E2BIG,
			    "payload of %zu bytes is over the function's max_payload_bytes (%u)",
			    *len, fn->spec.max_payload_bytes);
	return 0;
}

void gw_svc_outcome_release(struct gw_outcome *o)
{
	free(o->result);
	o->result = NULL;
	o->result_len = 0;
}

static int accept_call(struct gw_daemon *d, struct gw_function *fn, const struct gw_call *call,
		       bool blocking, char *id, uint64_t *seq, char *err, size_t errlen)
{
	if (gw_act_new(&d->acts, fn->spec.name, call->trigger, blocking, id, seq))
		return fail(err, errlen, -EAGAIN,
			    "too many activations in flight: the activation table is full");
	gw_act_set_function(&d->acts, *seq, fn->version, fn->kind, fn->spec.timeout_ms,
			    fn->spec.memory_mb, fn->log_limit);
	return 0;
}

/* Where the result goes and the payload: the accepted line is written, not yet synced. */
static int queue_note(struct gw_daemon *d, uint64_t seq, const void *payload, size_t len,
		      const struct gw_call *call)
{
	/* the route is in place before a worker can take the activation, and in its journal
	 * line: a replay after a crash still delivers the result where it was asked to go */
	gw_act_set_route(&d->acts, seq, call->qos, call->mqtt5, call->correlation,
			 call->correlation_len, call->callback_url);
	return gw_act_set_work(&d->acts, seq, payload, len, call->reply_topic);
}

/*
 * After the line's fdatasync (rc: the note's or the sync's error, or 0): accepted means on
 * disk, so no worker runs it, no caller hears 202, before that. Then in etcd (in a cluster)
 * and on the queue, or rejected.
 */
static int queue_commit(struct gw_daemon *d, uint64_t seq, int rc, const void *payload, size_t len,
			const struct gw_call *call, char *err, size_t errlen)
{
	if (rc && rc != -EALREADY) {
		char why[200];

		if (!gw_journal_error(&d->acts, why, sizeof(why)))
			snprintf(why, sizeof(why), "journal: %s", strerror(-rc));
		gw_act_finish(&d->acts, seq, GW_ACT_REJECTED, NULL, why);
		return fail(err, errlen, -ENOSPC, "cannot accept the activation: %s", why);
	}
	if (!rc) {
		char id[GW_ID_LEN + 1], fnkey[SBX_NAME_MAX];

		/* in a cluster, accepted also means in etcd: it outlives this node */
		gw_act_id_of(&d->acts, seq, id);
		gw_act_function_of(&d->acts, seq, fnkey);
		rc = gw_cluster_accept(d, seq, id, fnkey, payload, len, call, err, errlen);
		if (rc) {
			gw_act_finish(&d->acts, seq, GW_ACT_REJECTED, NULL, err);
			return rc;
		}
	}
	if (!rc && gw_enqueue(d, seq) == 0)
		return 0;
	gw_act_finish(&d->acts, seq, GW_ACT_REJECTED, NULL, "async queue full");
	return fail(err, errlen, -EAGAIN, "async queue full (%u activations waiting)",
		    d->cfg.limits.async_queue);
}

static int queue_call(struct gw_daemon *d, uint64_t seq, const void *payload, size_t len,
		      const struct gw_call *call, char *err, size_t errlen)
{
	int rc = queue_note(d, seq, payload, len, call);

	if (!rc)
		rc = gw_journal_sync(&d->acts);
	return queue_commit(d, seq, rc, payload, len, call, err, errlen);
}

int gw_svc_invoke(struct gw_daemon *d, const char *name, const struct gw_call *call,
		  struct gw_outcome *out, char *err, size_t errlen)
{
	struct gw_function *fn = gw_fn_get(d, name);
	const void *payload = call->payload;
	size_t len = call->len;
	struct sbx_result res;
	char *merged = NULL;
	uint64_t seq;
	/* how long the caller waits: its own bound (OpenWhisk's timeout) within nemod's */
	uint32_t wait_ms = call->wait_ms && call->wait_ms < d->cfg.limits.blocking_timeout_ms
				   ? call->wait_ms
				   : d->cfg.limits.blocking_timeout_ms;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!fn)
		return not_deployed(d, name, err, errlen);
	rc = takes_calls(fn, err, errlen);
	rc = rc ? rc : call_payload(fn, call, &payload, &len, &merged, err, errlen);
	if (rc)
		goto out_fn;
	if (d->acts.journal_sync) {
		char why[200];

		/* its record could not be kept: refuse before anything runs */
		if (gw_journal_error(&d->acts, why, sizeof(why))) {
			rc = fail(err, errlen, -ENOSPC, "cannot accept the activation: %s", why);
			goto out_fn;
		}
	}
	if (admit(d)) {
		rc = fail(err, errlen, -EAGAIN, "nemod is at its limit of %u invocations in flight",
			  d->cfg.limits.max_inflight);
		goto out_fn;
	}
	rc = accept_call(d, fn, call, true, out->id, &seq, err, errlen);
	if (rc)
		goto out_admit;
	out->web = fn->dict_style;
	if (fn->spec.timeout_ms > wait_ms) {
		/* longer than a caller waits: run it as async and answer pending if it is late */
		rc = queue_call(d, seq, payload, len, call, err, errlen);
		if (rc)
			goto out_admit;
		out->pending = !gw_act_wait(&d->acts, seq, wait_ms);
		out->status = GW_ACT_RUNNING;
		if (!out->pending &&
		    gw_act_outcome(&d->acts, seq, &out->status, out->message, sizeof(out->message),
				   &out->result, &out->result_len))
			out->pending = true; /* evicted already: the caller asks by id */
		/* it ended in time: its record goes to the caller, durable as the sync path's */
		if (!out->pending && !call->result_only && gw_journal_sync(&d->acts))
			NEMO_LOG_RATELIMITED(NEMO_LOG_ERR, GW_MOD, 1000, 5,
					     "activation %s of %s: its record is not durable",
					     out->id, name);
		goto out_admit;
	}
	rc = invoke_sync(d, fn, seq, payload, len, true, &res);
	if (rc == -EAGAIN) {
		gw_act_finish(&d->acts, seq, GW_ACT_REJECTED, NULL,
			      "concurrency limit of the function");
		rc = fail(err, errlen, -EAGAIN,
			  "function '%s' is at its limit of %u invocations in flight", fn->name,
			  d->cfg.limits.max_inflight_per_function);
		goto out_admit;
	}
	/*
	 * A caller given the record (whose id it may ask for later) hears nothing before the
	 * record is durable. One given the result alone holds what the record keeps: it does
	 * not wait for the disk; its record is written and goes with the next group commit.
	 */
	if (!call->result_only && gw_journal_sync(&d->acts))
		NEMO_LOG_RATELIMITED(NEMO_LOG_ERR, GW_MOD, 1000, 5,
				     "activation %s of %s: its record is not durable", out->id,
				     name);
	out->status = gw_act_status_of(res.status);
	out->run_ns = res.times.run_ns;
	snprintf(out->message, sizeof(out->message), "%s", res.message);
	/* the bytes move to the caller: no copy on the fast path */
	out->result = res.response;
	out->result_len = res.response_len;
	res.response = NULL;
	res.response_len = 0;
	d->backend.ops->result_release(d->backend.state, &res);
	rc = 0;
out_admit:
	unadmit(d);
out_fn:
	free(merged);
	gw_fn_put(fn);
	return rc;
}

int gw_svc_accept_begin(struct gw_daemon *d, const char *name, const struct gw_call *call,
			struct gw_accept *a, char *err, size_t errlen)
{
	struct gw_function *fn = gw_fn_get(d, name);
	int rc;

	memset(a, 0, sizeof(*a));
	if (!fn)
		return not_deployed(d, name, err, errlen);
	rc = takes_calls(fn, err, errlen);
	rc = rc ? rc : call_payload(fn, call, &a->payload, &a->len, &a->merged, err, errlen);
	rc = rc ? rc : accept_call(d, fn, call, false, a->id, &a->seq, err, errlen);
	gw_fn_put(fn);
	if (rc) {
		free(a->merged);
		a->merged = NULL;
		return rc;
	}
	a->rc = queue_note(d, a->seq, a->payload, a->len, call);
	return 0;
}

int gw_svc_accept_end(struct gw_daemon *d, struct gw_accept *a, const struct gw_call *call,
		      int sync_rc, char *err, size_t errlen)
{
	int rc = queue_commit(d, a->seq, a->rc ? a->rc : sync_rc, a->payload, a->len, call, err,
			      errlen);

	free(a->merged);
	a->merged = NULL;
	return rc;
}

int gw_svc_invoke_async(struct gw_daemon *d, const char *name, const struct gw_call *call,
			char id_out[GW_ID_LEN + 1], char *err, size_t errlen)
{
	struct gw_accept a;
	int rc = gw_svc_accept_begin(d, name, call, &a, err, errlen);

	if (rc)
		return rc;
	rc = gw_svc_accept_end(d, &a, call, a.rc ? 0 : gw_journal_sync(&d->acts), err, errlen);
	memcpy(id_out, a.id, sizeof(a.id));
	return rc;
}

int gw_svc_scale(struct gw_daemon *d, const char *name, int instances)
{
	struct gw_function *fn;

	if (instances < 0 || instances > GW_MAX_PREWARM)
		return -EINVAL;
	fn = gw_fn_get(d, name);
	if (!fn)
		return -ENOENT;
	fn->prewarm = instances;
	gw_fn_put(fn);
	if (instances)
		prewarm_function(d, name, instances);
	NEMO_INFO(GW_MOD, "scaled function=%s prewarm=%d", name, instances);
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

/* What a queued activation carries besides its record. */
struct work {
	char function[SBX_NAME_MAX];
	char reply[GW_TOPIC_MAX];
	char callback[256];
	uint8_t corr[128];
	size_t corr_len;
	int qos;
	bool mqtt5;
	uint8_t *payload;
	size_t len;
	int trigger;	  /* enum gw_trigger */
	bool interrupted; /* not to run: tell the route it was interrupted */
	char message[SBX_MSG_MAX];
};

/* Take the payload and routing of a queued activation (the record keeps the rest). */
static bool take_work(struct gw_daemon *d, uint64_t seq, struct work *w)
{
	struct gw_act_table *t = &d->acts;
	struct gw_activation *a;
	bool ok = false;

	pthread_mutex_lock(&t->lock);
	a = &t->slots[seq % t->capacity];
	if (a->seq == seq && a->notify) {
		/* interrupted by a crash: only its route, to say so */
		a->notify = false;
		w->interrupted = true;
		snprintf(w->function, sizeof(w->function), "%s", a->function);
		snprintf(w->reply, sizeof(w->reply), "%s", a->reply_topic);
		snprintf(w->callback, sizeof(w->callback), "%s", a->callback_url);
		snprintf(w->message, sizeof(w->message), "%s", a->message);
		memcpy(w->corr, a->correlation, a->correlation_len);
		w->corr_len = a->correlation_len;
		w->qos = a->qos;
		w->mqtt5 = a->mqtt5;
		ok = true;
	} else if (a->seq == seq && a->status == GW_ACT_ACCEPTED) {
		w->trigger = a->trigger;
		snprintf(w->function, sizeof(w->function), "%s", a->function);
		snprintf(w->reply, sizeof(w->reply), "%s", a->reply_topic);
		snprintf(w->callback, sizeof(w->callback), "%s", a->callback_url);
		memcpy(w->corr, a->correlation, a->correlation_len);
		w->corr_len = a->correlation_len;
		w->qos = a->qos;
		w->mqtt5 = a->mqtt5;
		/* a copy: the record keeps its payload for the journal until it ends */
		w->payload = malloc(a->payload_len ? a->payload_len : 1);
		if (w->payload) {
			memcpy(w->payload, a->payload, a->payload_len);
			w->len = a->payload_len;
			ok = true;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return ok;
}

/* The reply of an MQTT-triggered or called-back activation: its bytes, or why it failed. */
static char *failure_text(const struct sbx_result *res, const char *id)
{
	cJSON *e = cJSON_CreateObject();
	char *text;

	cJSON_AddStringToObject(e, "error", res->message);
	cJSON_AddStringToObject(e, "status", gw_act_status_name(gw_act_status_of(res->status)));
	cJSON_AddStringToObject(e, "activationId", id);
	text = cJSON_PrintUnformatted(e);
	cJSON_Delete(e);
	return text;
}

/* Wait (a while) for the broker connection: a call replayed at start may end before it. */
static void wait_for_mqtt(struct gw_daemon *d)
{
	for (int i = 0; d->cfg.mqtt.enabled && !d->stop && i < 200 &&
			!(d->mqtt_sink && d->mqtt && gw_mqtt_connected(d->mqtt));
	     i++)
		usleep(50 * 1000);
}

/* A call that was running when nemod died: its callback or reply topic hears why, once. */
static void deliver_interrupted(struct gw_daemon *d, const struct work *w, const char *id)
{
	char ns[GW_NS_MAX], name[SBX_NAME_MAX];
	cJSON *e = cJSON_CreateObject();
	char *text;

	gw_key_split(d->default_ns, w->function, ns, name);
	cJSON_AddStringToObject(e, "error", w->message);
	cJSON_AddStringToObject(e, "status", gw_act_status_name(GW_ACT_INTERRUPTED));
	cJSON_AddStringToObject(e, "activationId", id);
	text = cJSON_PrintUnformatted(e);
	cJSON_Delete(e);
	if (!text)
		return;
	if (w->reply[0]) {
		wait_for_mqtt(d);
		if (d->mqtt_sink)
			d->mqtt_sink(d->mqtt_sink_state, w->reply, w->qos, w->mqtt5, w->corr,
				     w->corr_len, id, text, strlen(text));
	}
	if (w->callback[0]) {
		int st = gw_callback_post(w->callback, id, name, 500, text, strlen(text));

		if (st < 200 || st >= 300)
			NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
					     "callback url=%s activation=%s: %s %d", w->callback,
					     id, st < 0 ? strerror(-st) : "status", st);
	}
	free(text);
}

static void run_async(struct gw_daemon *d, uint64_t seq)
{
	struct sbx_result res;
	struct gw_function *fn;
	struct work w = {0};
	char id[GW_ID_LEN + 1];
	int rc;

	if (!take_work(d, seq, &w))
		return; /* finished already (cancelled): run exactly once */
	gw_act_id_of(&d->acts, seq, id);
	if (w.interrupted) {
		deliver_interrupted(d, &w, id);
		return;
	}
	fn = gw_fn_get(d, w.function);
	if (!fn) {
		gw_act_finish(&d->acts, seq, GW_ACT_INTERNAL, NULL,
			      "the function was deleted before the activation ran");
		free(w.payload);
		return;
	}
	/* in a cluster: marked running in etcd first, so a node that adopts it never runs it */
	rc = gw_cluster_begin(d, seq, id);
	if (rc == -ESTALE) {
		gw_act_finish(&d->acts, seq, GW_ACT_CANCELLED, NULL,
			      "adopted by another node while this one was cut off from etcd");
	} else if (rc) {
		usleep(200 * 1000); /* etcd did not answer: it stays accepted, and waits */
		if (gw_enqueue(d, seq))
			NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
					     "activation %s: queue full or stopping; it stays "
					     "accepted in etcd for adoption",
					     id);
	}
	if (rc) {
		gw_fn_put(fn);
		free(w.payload);
		return;
	}
	/* in a cluster, an MQTT call may run on a peer with spare (the offload policy); its
	 * result comes back here, to its record and its reply topic */
	rc = w.trigger == GW_TRIGGER_MQTT
		     ? gw_cluster_run_elsewhere(d, fn, seq, w.payload, w.len, &res)
		     : 0;
	/* async work waits at the gate instead of being refused: it was accepted */
	if (rc == 0)
		rc = invoke_sync(d, fn, seq, w.payload, w.len, false, &res);
	else if (rc > 0)
		rc = 0;
	if (!rc)
		gw_cluster_end(d, seq, id, gw_act_status_of(res.status), res.response,
			       res.response_len);
	if (rc == -EIO) {
		/* the journal cannot record its start: try again once there may be room, and
		 * leave it to the replay if nemod stops meanwhile (it never ran) */
		usleep(200 * 1000);
		if (gw_enqueue(d, seq))
			NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
					     "activation %s: queue full or stopping; it stays "
					     "accepted for the next start",
					     id);
	}
	/* a call replayed at start may end before the broker connection is up: its reply
	 * waits for it (a while), rather than being dropped */
	if (!rc && w.reply[0])
		wait_for_mqtt(d);
	if (!rc && ((w.reply[0] && d->mqtt_sink) || w.callback[0])) {
		char *text = res.status == SBX_OK ? NULL : failure_text(&res, id);
		const void *data = text ? (const void *)text : res.response;
		size_t len = text ? strlen(text) : res.response_len;

		if (w.reply[0] && d->mqtt_sink)
			d->mqtt_sink(d->mqtt_sink_state, w.reply, w.qos, w.mqtt5, w.corr,
				     w.corr_len, id, data, len);
		if (w.callback[0]) {
			int st = gw_callback_post(w.callback, id, fn->name,
						  res.status == SBX_OK ? 200 : 500, data, len);

			if (st < 200 || st >= 300)
				NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
						     "callback url=%s activation=%s: %s %d",
						     w.callback, id,
						     st < 0 ? strerror(-st) : "status", st);
		}
		free(text);
	}
	d->backend.ops->result_release(d->backend.state, &res);
	gw_fn_put(fn);
	free(w.payload);
}

void *gw_svc_worker(void *arg)
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
