/* http.c - the HTTP API on libmicrohttpd: OpenWhisk and OpenFaaS routes, auth, limits. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "nemo/clock.h"
#include "nemo/log.h"
#include "gw_internal.h"

#define NS_PREFIX "/api/v1/namespaces/"

struct gw_http {
	struct gw_daemon *d;
	struct MHD_Daemon *mhd;
	uint16_t port;
};

/* Per request: the body as it arrives, and what was decided before it did. */
struct req {
	char *body;
	size_t len, cap;
	bool too_large;
	bool too_slow;
	uint64_t t_start;
};

/* ---- responses -------------------------------------------------------------------------------- */

static enum MHD_Result send_buf(struct gw_daemon *d, struct MHD_Connection *c, int status,
				const char *ctype, void *buf, size_t len,
				enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, mode);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"nemo\"");
	ret = MHD_queue_response(c, (unsigned int)status, r);
	MHD_destroy_response(r);
	if (status >= 100 && status < 600)
		atomic_fetch_add_explicit(&d->http_requests[status / 100], 1, memory_order_relaxed);
	if (status == MHD_HTTP_TOO_MANY_REQUESTS)
		atomic_fetch_add_explicit(&d->rejected_429, 1, memory_order_relaxed);
	return ret;
}

static enum MHD_Result send_json(struct gw_daemon *d, struct MHD_Connection *c, int status,
				 cJSON *j)
{
	char *text = cJSON_PrintUnformatted(j);

	cJSON_Delete(j);
	if (!text)
		return MHD_NO;
	return send_buf(d, c, status, "application/json", text, strlen(text),
			MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result send_error(struct gw_daemon *d, struct MHD_Connection *c, int status,
				  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result send_error(struct gw_daemon *d, struct MHD_Connection *c, int status,
				  const char *fmt, ...)
{
	cJSON *j = cJSON_CreateObject();
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(j, "error", msg);
	cJSON_AddNumberToObject(j, "code", status);
	return send_json(d, c, status, j);
}

/* ---- auth ----------------------------------------------------------------------------------------- */

/* Compare in time independent of where the first difference is. */
static bool token_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char diff = alen != blen;

	for (size_t i = 0; i < alen && i < blen; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

/* 0 when allowed; otherwise the message for a 401. */
static const char *check_auth(struct gw_daemon *d, struct MHD_Connection *c)
{
	const char *h =
		MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

	if (!h)
		return "missing token: send 'Authorization: Bearer <token>'";
	if (strncasecmp(h, "Bearer ", 7))
		return "unsupported authorization scheme: send 'Authorization: Bearer <token>'";
	h += 7;
	while (*h == ' ')
		h++;
	if (!token_equal(h, strlen(h), d->token, d->token_len))
		return "invalid token";
	return NULL;
}

/* ---- helpers ------------------------------------------------------------------------------------- */

static bool arg_true(struct MHD_Connection *c, const char *key, bool dflt)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);

	if (!v)
		return dflt;
	return !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes");
}

static bool is(const char *method, const char *want)
{
	return !strcmp(method, want) ||
	       (!strcmp(want, MHD_HTTP_METHOD_GET) && !strcmp(method, MHD_HTTP_METHOD_HEAD));
}

static enum MHD_Result not_allowed(struct gw_daemon *d, struct MHD_Connection *c,
				   const char *method, const char *url, const char *allow)
{
	struct MHD_Response *r;
	cJSON *j = cJSON_CreateObject();
	char msg[512], *text;
	enum MHD_Result ret;

	snprintf(msg, sizeof(msg), "method %s is not allowed on %.200s (allowed: %s)", method, url,
		 allow);
	cJSON_AddStringToObject(j, "error", msg);
	cJSON_AddNumberToObject(j, "code", 405);
	text = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!text)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
	MHD_destroy_response(r);
	atomic_fetch_add(&d->http_requests[4], 1);
	return ret;
}

static enum MHD_Result bad_name(struct gw_daemon *d, struct MHD_Connection *c, const char *name)
{
	return send_error(d, c, MHD_HTTP_BAD_REQUEST,
			  "name '%.80s': must be 1..%d characters of [A-Za-z0-9_-]", name,
			  SBX_NAME_MAX - 1);
}

/* ---- functions ------------------------------------------------------------------------------------ */

static enum MHD_Result list_functions(struct gw_daemon *d, struct MHD_Connection *c, bool faas)
{
	cJSON *arr = cJSON_CreateArray();
	struct gw_function *fn;

	pthread_rwlock_rdlock(&d->fn_lock);
	for (fn = d->functions; fn; fn = fn->next) {
		cJSON *j = gw_fn_json(d, fn, false);

		if (faas) {
			uint64_t n = 0;
			cJSON *pool = cJSON_GetObjectItem(j, "warm_pool");
			cJSON *idle = pool ? cJSON_GetObjectItem(pool, "idle") : NULL;
			cJSON *busy = pool ? cJSON_GetObjectItem(pool, "busy") : NULL;

			for (int s = GW_ACT_SUCCESS; s < GW_ACT_N_STATUS; s++)
				n += atomic_load(&fn->metrics.invocations[s]);
			/* the OpenFaaS shape: name, image, invocationCount, replicas */
			cJSON_AddStringToObject(j, "image", fn->spec.code);
			cJSON_AddNumberToObject(j, "invocationCount", (double)n);
			cJSON_AddNumberToObject(j, "replicas",
						(idle ? idle->valuedouble : 0) +
							(busy ? busy->valuedouble : 0));
			cJSON_AddNumberToObject(j, "availableReplicas",
						idle ? idle->valuedouble : 0);
		}
		cJSON_AddItemToArray(arr, j);
	}
	pthread_rwlock_unlock(&d->fn_lock);
	return send_json(d, c, MHD_HTTP_OK, arr);
}

static enum MHD_Result put_function(struct gw_daemon *d, struct MHD_Connection *c, const char *name,
				    struct req *rq)
{
	struct gw_function *fn;
	char err[1024];
	int status = 500;

	if (!rq->len)
		return send_error(d, c, MHD_HTTP_BAD_REQUEST,
				  "empty body: send the function spec as JSON");
	fn = gw_fn_get(d, name);
	if (fn && !arg_true(c, "overwrite", false)) {
		gw_fn_put(fn);
		return send_error(d, c, MHD_HTTP_CONFLICT,
				  "function '%s' exists: add ?overwrite=true to replace it", name);
	}
	gw_fn_put(fn);
	if (gw_deploy(d, name, rq->body, rq->len, false, err, sizeof(err), &status))
		return send_error(d, c, status, "%s", err);
	fn = gw_fn_get(d, name);
	if (!fn)
		return send_error(d, c, MHD_HTTP_CONFLICT, "function '%s' was deleted meanwhile",
				  name);
	{
		cJSON *j = gw_fn_json(d, fn, true);

		gw_fn_put(fn);
		return send_json(d, c, MHD_HTTP_OK, j);
	}
}

/* ---- invocations ---------------------------------------------------------------------------------- */

enum reply_shape {
	REPLY_RECORD, /* OpenWhisk result=false: the activation record */
	REPLY_RESULT, /* OpenWhisk result=true and OpenFaaS: the function's own bytes */
};

static int status_for(enum gw_act_status st)
{
	switch (st) {
	case GW_ACT_SUCCESS:
		return MHD_HTTP_OK;
	case GW_ACT_REJECTED:
		return MHD_HTTP_CONTENT_TOO_LARGE;
	default:
		return MHD_HTTP_BAD_GATEWAY;
	}
}

static enum MHD_Result send_record(struct gw_daemon *d, struct MHD_Connection *c, int status,
				   const char *id)
{
	cJSON *j = gw_act_json(&d->acts, id, NULL);

	if (!j)
		return send_error(d, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "activation %s was evicted before it could be returned", id);
	return send_json(d, c, status, j);
}

static enum MHD_Result send_async_accepted(struct gw_daemon *d, struct MHD_Connection *c,
					   const char *id)
{
	struct MHD_Response *r;
	char *text;
	cJSON *j = cJSON_CreateObject();
	enum MHD_Result ret;

	cJSON_AddStringToObject(j, "activationId", id);
	text = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!text)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, "X-Call-Id", id);
	MHD_add_response_header(r, "X-Activation-Id", id);
	ret = MHD_queue_response(c, MHD_HTTP_ACCEPTED, r);
	MHD_destroy_response(r);
	atomic_fetch_add(&d->http_requests[2], 1);
	return ret;
}

static enum MHD_Result invoke_async(struct gw_daemon *d, struct MHD_Connection *c,
				    struct gw_function *fn, struct req *rq)
{
	char id[GW_ID_LEN + 1];
	uint64_t seq;

	if (gw_act_new(&d->acts, fn->spec.name, GW_TRIGGER_HTTP, false, id, &seq))
		return send_error(d, c, MHD_HTTP_TOO_MANY_REQUESTS,
				  "too many activations in flight: the activation table is full");
	if (gw_act_set_work(&d->acts, seq, rq->body, rq->len, NULL) || gw_enqueue(d, seq)) {
		gw_act_finish(&d->acts, seq, GW_ACT_REJECTED, NULL, "async queue full");
		return send_error(d, c, MHD_HTTP_TOO_MANY_REQUESTS,
				  "async queue full (%u activations waiting)",
				  d->cfg.limits.async_queue);
	}
	return send_async_accepted(d, c, id);
}

static enum MHD_Result invoke_blocking(struct gw_daemon *d, struct MHD_Connection *c,
				       struct gw_function *fn, struct req *rq,
				       enum reply_shape shape)
{
	char id[GW_ID_LEN + 1];
	struct sbx_result res;
	struct MHD_Response *r;
	enum gw_act_status st;
	enum MHD_Result ret;
	uint64_t seq;
	int rc, status;

	if (gw_admit(d))
		return send_error(d, c, MHD_HTTP_TOO_MANY_REQUESTS,
				  "nemod is at its limit of %u invocations in flight",
				  d->cfg.limits.max_inflight);
	if (gw_act_new(&d->acts, fn->spec.name, GW_TRIGGER_HTTP, true, id, &seq)) {
		gw_unadmit(d);
		return send_error(d, c, MHD_HTTP_TOO_MANY_REQUESTS,
				  "too many activations in flight: the activation table is full");
	}
	if (fn->spec.timeout_ms > d->cfg.limits.blocking_timeout_ms) {
		/* longer than a caller waits: run it as async and answer 202 if it is late */
		if (gw_act_set_work(&d->acts, seq, rq->body, rq->len, NULL) || gw_enqueue(d, seq)) {
			gw_unadmit(d);
			gw_act_finish(&d->acts, seq, GW_ACT_REJECTED, NULL, "async queue full");
			return send_error(d, c, MHD_HTTP_TOO_MANY_REQUESTS, "async queue full");
		}
		if (!gw_act_wait(&d->acts, seq, d->cfg.limits.blocking_timeout_ms)) {
			gw_unadmit(d);
			return send_async_accepted(d, c, id);
		}
		gw_unadmit(d);
		return send_record(d, c, MHD_HTTP_OK, id);
	}
	rc = gw_invoke_sync(d, fn, seq, rq->body, rq->len, true, &res);
	gw_unadmit(d);
	if (rc == -EAGAIN) {
		gw_act_finish(&d->acts, seq, GW_ACT_REJECTED, NULL,
			      "concurrency limit of the function");
		return send_error(d, c, MHD_HTTP_TOO_MANY_REQUESTS,
				  "function '%s' is at its limit of %u invocations in flight",
				  fn->spec.name, d->cfg.limits.max_inflight_per_function);
	}
	st = gw_act_status_of(res.status);
	status = status_for(st);
	if (shape == REPLY_RECORD) {
		d->backend.ops->result_release(d->backend.state, &res);
		return send_record(d, c, status, id);
	}
	if (st != GW_ACT_SUCCESS) {
		cJSON *j = cJSON_CreateObject();

		cJSON_AddStringToObject(j, "error", res.message[0] ? res.message : "failed");
		cJSON_AddStringToObject(j, "status", gw_act_status_name(st));
		cJSON_AddStringToObject(j, "activationId", id);
		cJSON_AddNumberToObject(j, "code", status);
		if (res.response_len) {
			char *out = strndup((const char *)res.response, res.response_len);

			cJSON_AddStringToObject(j, "output", out ? out : "");
			free(out);
		}
		d->backend.ops->result_release(d->backend.state, &res);
		return send_json(d, c, status, j);
	}
	/* the warm fast path: the function's bytes, as they are */
	r = MHD_create_response_from_buffer(res.response_len, res.response, MHD_RESPMEM_MUST_COPY);
	d->backend.ops->result_release(d->backend.state, &res);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, "X-Activation-Id", id);
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	atomic_fetch_add_explicit(&d->http_requests[2], 1, memory_order_relaxed);
	return ret;
}

static enum MHD_Result invoke(struct gw_daemon *d, struct MHD_Connection *c, const char *name,
			      struct req *rq, bool blocking, enum reply_shape shape)
{
	struct gw_function *fn;
	enum MHD_Result ret;

	if (!gw_name_valid(name))
		return bad_name(d, c, name);
	fn = gw_fn_get(d, name);
	if (!fn)
		return send_error(d, c, MHD_HTTP_NOT_FOUND, "function '%s' is not deployed", name);
	if (rq->len > fn->spec.max_payload_bytes) {
		gw_fn_put(fn);
		return send_error(d, c, MHD_HTTP_CONTENT_TOO_LARGE,
				  "payload of %zu bytes is over the function's max_payload_bytes "
				  "(%u)",
				  rq->len, fn->spec.max_payload_bytes);
	}
	ret = blocking ? invoke_blocking(d, c, fn, rq, shape) : invoke_async(d, c, fn, rq);
	gw_fn_put(fn);
	return ret;
}

/* ---- routes --------------------------------------------------------------------------------------- */

static enum MHD_Result route_actions(struct gw_daemon *d, struct MHD_Connection *c,
				     const char *method, const char *url, const char *rest,
				     struct req *rq)
{
	struct gw_function *fn;

	if (!*rest) {
		if (is(method, MHD_HTTP_METHOD_GET))
			return list_functions(d, c, false);
		return not_allowed(d, c, method, url, "GET");
	}
	if (*rest != '/')
		return send_error(d, c, MHD_HTTP_NOT_FOUND, "no route for %s %.200s", method, url);
	rest++;
	if (!gw_name_valid(rest))
		return bad_name(d, c, rest);
	if (is(method, MHD_HTTP_METHOD_PUT))
		return put_function(d, c, rest, rq);
	if (is(method, MHD_HTTP_METHOD_POST))
		return invoke(d, c, rest, rq, arg_true(c, "blocking", false),
			      arg_true(c, "result", false) ? REPLY_RESULT : REPLY_RECORD);
	if (is(method, MHD_HTTP_METHOD_DELETE)) {
		cJSON *j;

		if (gw_undeploy(d, rest) == -ENOENT)
			return send_error(d, c, MHD_HTTP_NOT_FOUND, "function '%s' is not deployed",
					  rest);
		j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "name", rest);
		cJSON_AddBoolToObject(j, "deleted", true);
		return send_json(d, c, MHD_HTTP_OK, j);
	}
	if (is(method, MHD_HTTP_METHOD_GET)) {
		cJSON *j;

		fn = gw_fn_get(d, rest);
		if (!fn)
			return send_error(d, c, MHD_HTTP_NOT_FOUND, "function '%s' is not deployed",
					  rest);
		j = gw_fn_json(d, fn, true);
		gw_fn_put(fn);
		return send_json(d, c, MHD_HTTP_OK, j);
	}
	return not_allowed(d, c, method, url, "GET, PUT, POST, DELETE");
}

static enum MHD_Result route_activations(struct gw_daemon *d, struct MHD_Connection *c,
					 const char *method, const char *url, const char *rest)
{
	if (!is(method, MHD_HTTP_METHOD_GET))
		return not_allowed(d, c, method, url, "GET");
	if (!*rest) {
		const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
		const char *lim = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
		int limit = lim ? atoi(lim) : 30;

		if (name && !gw_name_valid(name))
			return bad_name(d, c, name);
		if (limit <= 0 || limit > 1000)
			return send_error(d, c, MHD_HTTP_BAD_REQUEST,
					  "limit '%.20s': expected 1..1000", lim);
		return send_json(d, c, MHD_HTTP_OK, gw_act_list_json(&d->acts, name, limit));
	}
	if (*rest == '/') {
		cJSON *j = gw_act_json(&d->acts, rest + 1, NULL);

		if (!j)
			return send_error(d, c, MHD_HTTP_NOT_FOUND,
					  "activation '%.40s' is not known (ids are 32 hex digits; "
					  "old ones are evicted)",
					  rest + 1);
		return send_json(d, c, MHD_HTTP_OK, j);
	}
	return send_error(d, c, MHD_HTTP_NOT_FOUND, "no route for %s %.200s", method, url);
}

static enum MHD_Result route_status(struct gw_daemon *d, struct MHD_Connection *c)
{
	cJSON *j = cJSON_CreateObject(), *dm, *fns;
	struct gw_function *fn;

	dm = cJSON_AddObjectToObject(j, "daemon");
	cJSON_AddStringToObject(dm, "status", d->draining ? "draining" : "serving");
	cJSON_AddNumberToObject(dm, "pid", getpid());
	cJSON_AddNumberToObject(dm, "uptime_s", (double)(gw_epoch_ms() - d->started_ms) / 1e3);
	cJSON_AddStringToObject(dm, "backend", d->backend.ops->name);
	if (d->backend.ops->host)
		cJSON_AddStringToObject(
			dm, "cgroup",
			sbx_host_cgroup_backend(d->backend.ops->host(d->backend.state)));
	cJSON_AddStringToObject(dm, "dispatcher", d->dispatch.ops->name);
	cJSON_AddNumberToObject(dm, "inflight", atomic_load(&d->inflight));
	cJSON_AddNumberToObject(dm, "async_queue", d->q_len);
	cJSON_AddStringToObject(dm, "store", d->cfg.store_dir);
	if (d->mqtt)
		cJSON_AddBoolToObject(dm, "mqtt_connected", gw_mqtt_connected(d->mqtt));
	fns = cJSON_AddArrayToObject(j, "functions");
	pthread_rwlock_rdlock(&d->fn_lock);
	for (fn = d->functions; fn; fn = fn->next)
		cJSON_AddItemToArray(fns, gw_fn_json(d, fn, false));
	pthread_rwlock_unlock(&d->fn_lock);
	return send_json(d, c, MHD_HTTP_OK, j);
}

/*
 * GET /api/v1/cores: the NF cores as the co-scheduler sees them, for nemoctl top. With
 * harvesting off, "harvest" is false and the array is empty.
 */
static enum MHD_Result route_cores(struct gw_daemon *d, struct MHD_Connection *c)
{
	static const char *const paths[4] = {"none", "cold", "warm", "prewarmed"};
	struct sched_cosched_core *cores = NULL;
	cJSON *j = cJSON_CreateObject(), *arr;
	int n = 0;

	cJSON_AddBoolToObject(j, "harvest", d->dispatch.ops->cores != NULL);
	cJSON_AddStringToObject(j, "dispatcher", d->dispatch.ops->name);
	arr = cJSON_AddArrayToObject(j, "cores");
	if (d->dispatch.ops->cores) {
		cores = calloc(64, sizeof(*cores));
		n = cores ? d->dispatch.ops->cores(d->dispatch.state, cores, 64) : 0;
	}
	for (int i = 0; i < n; i++) {
		const struct sched_cosched_core *k = &cores[i];
		cJSON *o = cJSON_CreateObject(), *st;

		cJSON_AddNumberToObject(o, "cpu", k->s.cpu);
		cJSON_AddBoolToObject(o, "up", k->up);
		cJSON_AddNumberToObject(o, "busy_ratio", k->busy_ratio);
		cJSON_AddNumberToObject(o, "spare_ratio", k->spare_ratio);
		cJSON_AddNumberToObject(o, "spare_pred", k->s.spare_pred);
		cJSON_AddNumberToObject(o, "harvested_ratio", k->harvested_ratio);
		cJSON_AddNumberToObject(o, "harvest_ratio", k->s.harvest_ratio);
		cJSON_AddNumberToObject(o, "spare_seconds_total", k->spare_s_total);
		cJSON_AddNumberToObject(o, "harvested_seconds_total", k->harvested_s_total);
		cJSON_AddNumberToObject(o, "sampled_seconds_total", k->total_s_total);
		cJSON_AddNumberToObject(o, "warm", k->s.warm);
		cJSON_AddNumberToObject(o, "frozen", k->s.frozen);
		cJSON_AddNumberToObject(o, "moved", (double)k->s.moved);
		cJSON_AddNumberToObject(o, "throttled", (double)k->s.throttled);
		cJSON_AddNumberToObject(o, "runnable", k->s.runnable);
		cJSON_AddNumberToObject(o, "thread_cap", k->s.thread_cap);
		cJSON_AddNumberToObject(o, "sleep_floor_us", k->s.sleep_floor_us);
		cJSON_AddBoolToObject(o, "reclaimed", k->reclaimed);
		cJSON_AddNumberToObject(o, "moved_to", k->moved_to);
		cJSON_AddNumberToObject(o, "reclaims", (double)k->reclaims);
		cJSON_AddNumberToObject(o, "reaction_last_ms", k->reaction_last_ns / 1e6);
		cJSON_AddNumberToObject(o, "reaction_max_ms", k->reaction_max_ns / 1e6);
		cJSON_AddNumberToObject(o, "reaction_mean_ms",
					k->reclaims ? k->reaction_sum_ns / 1e6 / (double)k->reclaims
						    : 0.0);
		cJSON_AddNumberToObject(o, "invocations", (double)k->invocations);
		cJSON_AddNumberToObject(o, "prewarmed", (double)k->prewarmed);
		st = cJSON_AddObjectToObject(o, "starts");
		for (int p = 1; p < 4; p++)
			cJSON_AddNumberToObject(st, paths[p], (double)k->starts[p]);
		cJSON_AddStringToObject(o, "interference_counters", k->iw_counters);
		cJSON_AddItemToArray(arr, o);
	}
	free(cores);
	return send_json(d, c, MHD_HTTP_OK, j);
}

static enum MHD_Result route(struct gw_daemon *d, struct MHD_Connection *c, const char *method,
			     const char *url, struct req *rq)
{
	const char *rest;

	if (!strcmp(url, "/metrics")) {
		size_t len;
		char *text;

		if (!is(method, MHD_HTTP_METHOD_GET))
			return not_allowed(d, c, method, url, "GET");
		text = gw_metrics_render(d, &len);
		if (!text)
			return MHD_NO;
		return send_buf(d, c, MHD_HTTP_OK, "text/plain; version=0.0.4", text, len,
				MHD_RESPMEM_MUST_FREE);
	}
	if (!strncmp(url, NS_PREFIX, strlen(NS_PREFIX))) {
		const char *ns = url + strlen(NS_PREFIX);
		const char *slash = strchr(ns, '/');

		if (!slash)
			return send_error(d, c, MHD_HTTP_NOT_FOUND, "no route for %s %.200s",
					  method, url);
		if (slash - ns != 1 || ns[0] != '_')
			return send_error(d, c, MHD_HTTP_NOT_FOUND,
					  "namespace '%.*s' does not exist (this nemod serves '_')",
					  (int)(slash - ns > 64 ? 64 : slash - ns), ns);
		rest = slash + 1;
		if (!strncmp(rest, "actions", 7) && (rest[7] == '\0' || rest[7] == '/'))
			return route_actions(d, c, method, url, rest + 7, rq);
		if (!strncmp(rest, "activations", 11) && (rest[11] == '\0' || rest[11] == '/'))
			return route_activations(d, c, method, url, rest + 11);
		return send_error(d, c, MHD_HTTP_NOT_FOUND, "no route for %s %.200s", method, url);
	}
	if (!strncmp(url, "/function/", 10)) {
		if (!is(method, MHD_HTTP_METHOD_POST) && !is(method, MHD_HTTP_METHOD_GET))
			return not_allowed(d, c, method, url, "POST, GET");
		return invoke(d, c, url + 10, rq, true, REPLY_RESULT);
	}
	if (!strncmp(url, "/async-function/", 16)) {
		if (!is(method, MHD_HTTP_METHOD_POST))
			return not_allowed(d, c, method, url, "POST");
		return invoke(d, c, url + 16, rq, false, REPLY_RESULT);
	}
	if (!strcmp(url, "/system/functions")) {
		if (!is(method, MHD_HTTP_METHOD_GET))
			return not_allowed(d, c, method, url, "GET");
		return list_functions(d, c, true);
	}
	if (!strcmp(url, "/api/v1/status")) {
		if (!is(method, MHD_HTTP_METHOD_GET))
			return not_allowed(d, c, method, url, "GET");
		return route_status(d, c);
	}
	if (!strcmp(url, "/api/v1/cores")) {
		if (!is(method, MHD_HTTP_METHOD_GET))
			return not_allowed(d, c, method, url, "GET");
		return route_cores(d, c);
	}
	return send_error(d, c, MHD_HTTP_NOT_FOUND, "no route for %s %.200s", method, url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct gw_daemon *d = cls;
	struct req *rq = *con_cls;
	const char *why;

	(void)version;
	if (!rq) {
		const char *cl;

		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->t_start = nemo_now_ns();
		*con_cls = rq;
		/* decided on the headers alone: the body is never read */
		if (!strcmp(url, "/healthz")) {
			if (!is(method, MHD_HTTP_METHOD_GET))
				return not_allowed(d, c, method, url, "GET");
			return send_buf(d, c, d->draining ? 503 : 200, "application/json",
					d->draining ? "{\"status\":\"draining\"}"
						    : "{\"status\":\"ok\"}",
					d->draining ? 20 : 15, MHD_RESPMEM_PERSISTENT);
		}
		why = check_auth(d, c);
		if (why)
			return send_error(d, c, MHD_HTTP_UNAUTHORIZED, "%s", why);
		if (d->draining)
			return send_error(d, c, MHD_HTTP_SERVICE_UNAVAILABLE,
					  "nemod is shutting down");
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > d->cfg.limits.max_body_bytes)
			return send_error(d, c, MHD_HTTP_CONTENT_TOO_LARGE,
					  "body of %s bytes is over the limit of %u bytes "
					  "(limits.max_body_bytes)",
					  cl, d->cfg.limits.max_body_bytes);
		if (cl) {
			size_t want = strtoull(cl, NULL, 10);

			if (want) {
				rq->body = malloc(want + 1);
				if (!rq->body)
					return MHD_NO;
				rq->cap = want + 1;
			}
		}
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;

		*upload_size = 0;
		if (nemo_now_ns() - rq->t_start >
		    (uint64_t)d->cfg.limits.request_timeout_ms * 1000000ull)
			rq->too_slow = true;
		if (rq->too_large || rq->too_slow)
			return MHD_YES;
		if (rq->len + n > d->cfg.limits.max_body_bytes) {
			rq->too_large = true;
			return MHD_YES;
		}
		if (rq->len + n + 1 > rq->cap) {
			size_t cap = rq->cap ? rq->cap * 2 : 4096;
			char *nb;

			while (cap < rq->len + n + 1)
				cap *= 2;
			nb = realloc(rq->body, cap);
			if (!nb)
				return MHD_NO;
			rq->body = nb;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload, n);
		rq->len += n;
		rq->body[rq->len] = '\0';
		return MHD_YES;
	}
	if (rq->too_large)
		return send_error(d, c, MHD_HTTP_CONTENT_TOO_LARGE,
				  "body is over the limit of %u bytes (limits.max_body_bytes)",
				  d->cfg.limits.max_body_bytes);
	if (rq->too_slow)
		return send_error(d, c, MHD_HTTP_REQUEST_TIMEOUT,
				  "the body took longer than %u ms to arrive "
				  "(limits.request_timeout_ms)",
				  d->cfg.limits.request_timeout_ms);
	return route(d, c, method, url, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req *rq = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 10, "http: %s", msg);
}

struct gw_http *gw_http_start(struct gw_daemon *d)
{
	const struct gw_config *cfg = &d->cfg;
	struct gw_http *h = calloc(1, sizeof(*h));
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(cfg->listen_port)};
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;

	if (!h)
		return NULL;
	h->d = d;
	if (inet_pton(AF_INET, cfg->listen_host, &sin.sin_addr) != 1) {
		NEMO_ERR(GW_MOD, "listen: '%s' is not an IPv4 address", cfg->listen_host);
		free(h);
		errno = EINVAL;
		return NULL;
	}
	if (cfg->http_mode == GW_HTTP_THREAD_PER_CONNECTION)
		flags |= MHD_USE_THREAD_PER_CONNECTION;
	else
		flags |= MHD_USE_EPOLL;
	{
		struct MHD_OptionItem opts[16] = {
			{MHD_OPTION_SOCK_ADDR, 0, &sin},
			{MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
			{MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->limits.max_connections, NULL},
			{MHD_OPTION_PER_IP_CONNECTION_LIMIT,
			 (intptr_t)cfg->limits.max_connections_per_ip, NULL},
			{MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)cfg->limits.connection_timeout_s,
			 NULL},
			{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, d},
		};
		int n = 6;

		if (cfg->http_mode == GW_HTTP_POOL)
			opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
							    (intptr_t)cfg->http_threads, NULL};
		opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
		/* the logger must come first, or MHD's own messages escape to stderr */
		h->mhd = MHD_start_daemon(flags, cfg->listen_port, NULL, NULL, on_request, d,
					  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, d, MHD_OPTION_ARRAY,
					  opts, MHD_OPTION_END);
	}
	if (!h->mhd) {
		int e = errno ? errno : EADDRINUSE;

		NEMO_ERR(GW_MOD, "listen %s:%u: %s", cfg->listen_host, cfg->listen_port,
			 strerror(e));
		free(h);
		errno = e;
		return NULL;
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : cfg->listen_port;
	return h;
}

void gw_http_stop(struct gw_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->mhd);
	free(h);
}

uint16_t gw_http_port(const struct gw_http *h)
{
	return h->port;
}
