/* api_openwhisk.c - OpenWhisk's REST API (/api/v1/namespaces/...) over the function service. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_internal.h"

/* Rewrite a record's namespace fields to the caller's (the records are the caller's own). */
static void fix_ns(cJSON *rec, const char *ns)
{
	cJSON *ann, *it;

	cJSON_ReplaceItemInObjectCaseSensitive(rec, "namespace", cJSON_CreateString(ns));
	cJSON_ReplaceItemInObjectCaseSensitive(rec, "subject", cJSON_CreateString(ns));
	ann = cJSON_GetObjectItemCaseSensitive(rec, "annotations");
	cJSON_ArrayForEach (it, ann) {
		const char *k = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "key"));
		const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "value"));
		char path[160];

		if (k && v && !strcmp(k, "path") && !strncmp(v, "_/", 2)) {
			snprintf(path, sizeof(path), "%s/%s", ns, v + 2);
			cJSON_ReplaceItemInObjectCaseSensitive(it, "value",
							       cJSON_CreateString(path));
		}
	}
}

static void pairs_add(cJSON *arr, const char *key, cJSON *value)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "key", key);
	cJSON_AddItemToObject(o, "value", value);
	cJSON_AddItemToArray(arr, o);
}

/*
 * An action in OpenWhisk's shape (namespace, name, version, exec, limits, parameters,
 * annotations), with nemo's native document beside it (runtime, warm_pool, spec...).
 */
static cJSON *action_json(struct gw_daemon *d, struct gw_function *fn, const char *ns,
			  bool with_code)
{
	cJSON *j = gw_fn_json(d, fn, with_code), *exec, *lim, *params, *it;
	char version[32];

	snprintf(version, sizeof(version), "0.0.%llu", (unsigned long long)fn->version);
	cJSON_ReplaceItemInObjectCaseSensitive(j, "namespace", cJSON_CreateString(ns));
	cJSON_ReplaceItemInObjectCaseSensitive(j, "version", cJSON_CreateString(version));
	cJSON_DeleteItemFromObjectCaseSensitive(j, "parameters");
	cJSON_AddBoolToObject(j, "publish", false);
	cJSON_AddStringToObject(j, "entityType", "action");
	exec = cJSON_AddObjectToObject(j, "exec");
	cJSON_AddStringToObject(exec, "kind", fn->kind);
	cJSON_AddBoolToObject(exec, "binary", fn->spec.runtime != SBX_RUNTIME_PYTHON);
	cJSON_AddStringToObject(exec, "main", fn->spec.handler);
	lim = cJSON_AddObjectToObject(j, "limits");
	cJSON_AddNumberToObject(lim, "timeout", fn->spec.timeout_ms);
	cJSON_AddNumberToObject(lim, "memory", fn->spec.memory_mb);
	cJSON_AddNumberToObject(lim, "concurrency", fn->spec.concurrency);
	cJSON_AddNumberToObject(lim, "logs", fn->log_limit / 1048576);
	params = cJSON_AddArrayToObject(j, "parameters");
	cJSON_ArrayForEach (it, fn->parameters) {
		pairs_add(params, it->string, cJSON_Duplicate(it, true));
	}
	if (fn->annotations) {
		cJSON_AddItemToObject(j, "annotations", cJSON_Duplicate(fn->annotations, true));
	} else {
		cJSON *ann = cJSON_AddArrayToObject(j, "annotations");

		pairs_add(ann, "exec", cJSON_CreateString(fn->kind));
	}
	return j;
}

/* Routes OpenWhisk has that nemo does not implement: 501 with what is missing. */
static void unsupported(const struct gw_request *r, struct gw_reply *rp, const char *what)
{
	gw_reply_error(rp, 501,
		       "%s are not supported by nemo (%s %.120s): nemo runs actions and "
		       "activations only",
		       what, r->method, r->url);
}

struct list_arg {
	struct gw_daemon *d;
	cJSON *arr;
	const char *ns;
	int skip, limit;
	int count; /* count=true: how many, not which */
};

static void add_action(void *arg, struct gw_function *fn)
{
	struct list_arg *la = arg;

	if (strcmp(fn->ns, la->ns))
		return; /* another namespace's: not there for this caller */
	if (la->count >= 0) {
		la->count++;
		return;
	}
	if (la->skip > 0) {
		la->skip--;
		return;
	}
	if (la->limit-- > 0)
		cJSON_AddItemToArray(la->arr, action_json(la->d, fn, la->ns, false));
}

/* "a/b": every part a valid name */

/* A non-negative integer query argument; -1 when absent, -2 when malformed. */
static long arg_num(const struct gw_request *r, const char *key)
{
	const char *v = gw_req_arg(r, key);
	char *end;
	long n;

	if (!v)
		return -1;
	n = strtol(v, &end, 10);
	return (*end || end == v || n < 0) ? -2 : n;
}

static void list_actions(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp)
{
	long skip = arg_num(r, "skip"), limit = arg_num(r, "limit");
	struct list_arg la = {d, cJSON_CreateArray(), gw_req_ns(d, r), 0, 200, -1};

	if (skip == -2 || limit == -2 || limit > 1000) {
		cJSON_Delete(la.arr);
		return gw_reply_error(rp, 400, "skip and limit: expected integers (limit 0..1000)");
	}
	la.skip = skip > 0 ? (int)skip : 0;
	if (limit > 0)
		la.limit = (int)limit;
	if (gw_req_arg_true(r, "count", false))
		la.count = 0;
	gw_fn_foreach(d, add_action, &la);
	if (la.count >= 0) {
		/* OpenWhisk's count=true: {"actions": N} */
		cJSON_Delete(la.arr);
		la.arr = cJSON_CreateObject();
		cJSON_AddNumberToObject(la.arr, "actions", la.count);
	}
	gw_reply_json(rp, 200, la.arr);
}

static void reply_action(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp,
			 const char *name, int status)
{
	struct gw_function *fn;
	char key[SBX_NAME_MAX];

	if (!gw_req_key(d, r, name, key, rp))
		return;
	fn = gw_fn_get(d, key);
	if (!fn)
		return gw_reply_error(rp, 404,
				      "The requested resource does not exist: function '%s' is not "
				      "deployed in namespace '%s'",
				      name, gw_req_ns(d, r));
	gw_reply_json(rp, status,
		      action_json(d, fn, gw_req_ns(d, r), gw_req_arg_true(r, "code", true)));
	gw_fn_put(fn);
}

static void put_action(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp,
		       const char *name)
{
	struct gw_deploy_req req;
	cJSON *probe;
	bool openwhisk;
	char err[1024];
	int rc;

	if (!r->len)
		return gw_reply_error(
			rp, 400, "empty body: send the action ({\"exec\": ...}) or nemo's spec");
	/* OpenWhisk's shape has exec or only limits/parameters/annotations; nemo's has runtime */
	probe = gw_json_parse("request body", r->body, r->len, err, sizeof(err));
	if (!probe)
		return gw_reply_error(rp, 400, "%s", err);
	openwhisk = probe && !cJSON_GetObjectItemCaseSensitive(probe, "runtime") &&
		    !cJSON_GetObjectItemCaseSensitive(probe, "code");
	cJSON_Delete(probe);
	if (openwhisk)
		rc = gw_deploy_parse_openwhisk(name, r->body, r->len, &req, err, sizeof(err));
	else
		rc = gw_deploy_parse_native(name, r->body, r->len, false, &req, err, sizeof(err));
	if (rc)
		return gw_reply_error(rp, gw_status_of_errno(rc), "%s", err);
	/* the function's identity is its name in the caller's namespace */
	if (!gw_req_key(d, r, name, req.name, rp))
		return gw_deploy_req_release(&req);
	rc = gw_svc_deploy(d, &req,
			   gw_req_arg_true(r, "overwrite", false) ? GW_DEPLOY_OVERWRITE : 0, err,
			   sizeof(err));
	if (rc == -EEXIST)
		return gw_reply_error(
			rp, 409, "function '%s' exists: add ?overwrite=true to replace it", name);
	if (rc)
		return gw_reply_error(rp, gw_status_of_errno(rc), "%s", err);
	reply_action(d, r, rp, name, 200);
}

static void delete_action(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp,
			  const char *name)
{
	struct gw_function *fn;
	char key[SBX_NAME_MAX];
	cJSON *j;

	if (!gw_req_key(d, r, name, key, rp))
		return;
	fn = gw_fn_get(d, key);
	if (!fn)
		return gw_reply_error(rp, 404, "function '%s' is not deployed in namespace '%s'",
				      name, gw_req_ns(d, r));
	j = action_json(d, fn, gw_req_ns(d, r), false);
	gw_fn_put(fn);
	if (gw_svc_undeploy(d, key) == -ENOENT) {
		cJSON_Delete(j);
		return gw_reply_error(rp, 404, "function '%s' is not deployed in namespace '%s'",
				      name, gw_req_ns(d, r));
	}
	cJSON_AddBoolToObject(j, "deleted", true);
	gw_reply_json(rp, 200, j);
}

/* OpenWhisk answers a failed blocking call 502 with the record, a platform failure 500. */
static int status_of(enum gw_act_status st)
{
	switch (st) {
	case GW_ACT_SUCCESS:
		return 200;
	case GW_ACT_REJECTED:
		return 413;
	case GW_ACT_INTERNAL:
	case GW_ACT_CANCELLED:
	case GW_ACT_INTERRUPTED:
		return 500;
	default:
		return 502;
	}
}

static void invoke_action(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp,
			  const char *name)
{
	struct gw_call call = {.payload = r->body, .len = r->len, .trigger = GW_TRIGGER_HTTP};
	bool want_result = gw_req_arg_true(r, "result", false);
	struct gw_outcome out;
	char err[512], id[GW_ID_LEN + 1], key[SBX_NAME_MAX];
	cJSON *rec;
	int rc;

	if (!gw_req_key(d, r, name, key, rp))
		return;
	name = key;
	/* in a cluster, the offload policy may send it to a peer with more spare */
	if (gw_cluster_forward(d, r, rp, key,
			       GW_FWD_QOS_ARG |
				       (gw_req_arg_true(r, "blocking", false) ? GW_FWD_HELD : 0)))
		return;
	if (gw_req_arg(r, "timeout")) {
		/* OpenWhisk's wait for a blocking call: past it, 202 with the activation's id */
		long t = arg_num(r, "timeout");

		if (t < 1 || t > 3600000)
			return gw_reply_error(rp, 400,
					      "timeout: expected milliseconds 1..3600000, got "
					      "'%.20s'",
					      gw_req_arg(r, "timeout"));
		call.wait_ms = (uint32_t)t;
	}
	if (!gw_req_arg_true(r, "blocking", false)) {
		rc = gw_svc_invoke_async(d, name, &call, id, err, sizeof(err));
		if (rc)
			return gw_reply_error(rp, gw_status_of_errno(rc), "%s", err);
		return gw_reply_accepted(rp, id);
	}
	call.result_only = want_result; /* else the record: durable before it is sent */
	rc = gw_svc_invoke(d, name, &call, &out, err, sizeof(err));
	if (rc)
		return gw_reply_error(rp, gw_status_of_errno(rc), "%s", err);
	if (out.pending) {
		gw_reply_accepted(rp, out.id);
		return gw_svc_outcome_release(&out);
	}
	gw_svc_outcome_release(&out);
	rec = gw_act_json(&d->acts, NULL, out.id, NULL);
	if (!rec)
		return gw_reply_error(
			rp, 500, "activation %s was evicted before it could be returned", out.id);
	fix_ns(rec, gw_req_ns(d, r));
	if (want_result) {
		cJSON *result = cJSON_DetachItemViaPointer(
			rec, cJSON_GetObjectItemCaseSensitive(rec, "response"));
		cJSON *res = cJSON_DetachItemFromObjectCaseSensitive(result, "result");
		enum gw_act_status st = out.status;

		cJSON_Delete(result);
		cJSON_Delete(rec);
		if (!res)
			res = cJSON_CreateObject();
		if (st != GW_ACT_SUCCESS && cJSON_IsObject(res)) {
			/* nemo's words beside OpenWhisk's error result */
			cJSON_AddStringToObject(res, "status", gw_act_status_name(st));
			cJSON_AddStringToObject(res, "activationId", out.id);
		}
		gw_reply_json(rp, status_of(st), res);
	} else {
		gw_reply_json(rp, status_of(out.status), rec);
	}
	gw_reply_header(rp, "X-Activation-Id", out.id);
	gw_reply_run_time(rp, out.run_ns);
}

static void route_action(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp,
			 const char *name)
{
	if (gw_req_is(r, "PUT"))
		return put_action(d, r, rp, name);
	if (gw_req_is(r, "POST"))
		return invoke_action(d, r, rp, name);
	if (gw_req_is(r, "DELETE"))
		return delete_action(d, r, rp, name);
	if (gw_req_is(r, "GET"))
		return reply_action(d, r, rp, name, 200);
	gw_reply_not_allowed(rp, r, "GET, PUT, POST, DELETE");
}

static void list_activations(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp)
{
	struct gw_act_filter f = {
		.ns = gw_req_ns(d, r), .function = gw_req_arg(r, "name"), .limit = 30};
	long skip = arg_num(r, "skip"), limit = arg_num(r, "limit");
	long since = arg_num(r, "since"), upto = arg_num(r, "upto");
	char key[SBX_NAME_MAX];
	cJSON *arr, *it;

	if (f.function) {
		/* OpenWhisk accepts "package/name" and "ns/name": nemo's names have no slash */
		const char *slash = strrchr(f.function, '/');

		if (slash && gw_names_valid(f.function))
			f.function = slash + 1;
		if (!gw_name_valid(f.function))
			return gw_reply_error(rp, 400,
					      "name '%.80s': must be 1..%d characters of "
					      "[A-Za-z0-9_-]",
					      f.function, SBX_NAME_MAX - 1);
		if (!gw_req_key(d, r, f.function, key, rp))
			return;
		f.function = key;
	}
	if (skip == -2 || limit == -2 || since == -2 || upto == -2 || limit > 1000)
		return gw_reply_error(rp, 400,
				      "skip, limit, since, upto: expected non-negative integers "
				      "(limit 0..1000)");
	if (limit > 0)
		f.limit = (int)limit;
	f.skip = skip > 0 ? (int)skip : 0;
	f.since_ms = since > 0 ? (uint64_t)since : 0;
	f.upto_ms = upto > 0 ? (uint64_t)upto : 0;
	f.docs = gw_req_arg_true(r, "docs", false);
	f.count = gw_req_arg_true(r, "count", false);
	arr = gw_act_list_json(&d->acts, &f);
	if (f.count)
		return gw_reply_json(rp, 200, arr);
	cJSON_ArrayForEach (it, arr) {
		fix_ns(it, gw_req_ns(d, r));
	}
	gw_reply_json(rp, 200, arr);
}

static void reply_activation(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp,
			     const struct gw_ow_route *rt)
{
	cJSON *rec = gw_act_json(&d->acts, gw_req_ns(d, r), rt->id, NULL);

	/* in a cluster: an activation another node accepted, adopted or ran */
	if (!rec)
		rec = gw_cluster_act_json(d, rt->id);
	if (!rec)
		return gw_reply_error(rp, 404,
				      "activation '%.40s' is not known in namespace '%s' (ids are "
				      "32 hex digits; old ones are evicted)",
				      rt->id, gw_req_ns(d, r));
	fix_ns(rec, gw_req_ns(d, r));
	if (rt->route == GW_OW_ACTIVATION_LOGS) {
		cJSON *j = cJSON_CreateObject();

		cJSON_AddItemToObject(j, "logs",
				      cJSON_DetachItemFromObjectCaseSensitive(rec, "logs"));
		cJSON_Delete(rec);
		return gw_reply_json(rp, 200, j);
	}
	if (rt->route == GW_OW_ACTIVATION_RESULT) {
		/* /result: the response object, without the rest of the record */
		cJSON *resp = cJSON_DetachItemFromObjectCaseSensitive(rec, "response");

		cJSON_Delete(rec);
		return gw_reply_json(rp, 200, resp);
	}
	gw_reply_json(rp, 200, rec);
}

void gw_api_openwhisk(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp)
{
	struct gw_ow_route rt;
	int rc = gw_ow_route_parse(r->url, &rt);

	if (rc == -EINVAL)
		return gw_reply_error(rp, 400,
				      "name '%.80s': must be 1..%d characters of [A-Za-z0-9_-]",
				      rt.name, SBX_NAME_MAX - 1);
	if (rc)
		return gw_reply_error(rp, 404, "no route for %s %.200s", r->method, r->url);
	if (rt.route == GW_OW_UNSUPPORTED)
		return unsupported(r, rp, rt.what);
	if (rt.route == GW_OW_API) {
		/* GET /api/v1: what this API is */
		cJSON *j, *paths;

		if (!gw_req_is(r, "GET"))
			return gw_reply_not_allowed(rp, r, "GET");
		j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "description",
					"nemo: OpenWhisk's REST API, actions and activations");
		paths = cJSON_AddArrayToObject(j, "api_paths");
		cJSON_AddItemToArray(paths, cJSON_CreateString("/api/v1"));
		cJSON_AddStringToObject(j, "api_version", "1.0.0");
		return gw_reply_json(rp, 200, j);
	}
	if (rt.route == GW_OW_NAMESPACES) {
		cJSON *arr;

		if (!gw_req_is(r, "GET"))
			return gw_reply_not_allowed(rp, r, "GET");
		arr = cJSON_CreateArray();
		cJSON_AddItemToArray(arr, cJSON_CreateString(gw_req_ns(d, r)));
		return gw_reply_json(rp, 200, arr);
	}
	if (strcmp(rt.ns, "_") && strcmp(rt.ns, gw_req_ns(d, r)))
		return gw_reply_error(
			rp, 404,
			"namespace '%.64s' does not exist (your namespace is '%s'; '_' "
			"names it)",
			rt.ns, gw_req_ns(d, r));
	switch (rt.route) {
	case GW_OW_NAMESPACE: {
		/* GET /namespaces/{ns}: OpenWhisk lists the namespace's entities */
		struct list_arg la = {d, NULL, gw_req_ns(d, r), 0, 200, -1};
		cJSON *j;

		if (!gw_req_is(r, "GET"))
			return gw_reply_not_allowed(rp, r, "GET");
		j = cJSON_CreateObject();
		la.arr = cJSON_AddArrayToObject(j, "actions");
		gw_fn_foreach(d, add_action, &la);
		cJSON_AddArrayToObject(j, "packages");
		cJSON_AddArrayToObject(j, "triggers");
		cJSON_AddArrayToObject(j, "rules");
		return gw_reply_json(rp, 200, j);
	}
	case GW_OW_ACTIONS:
		if (!gw_req_is(r, "GET"))
			return gw_reply_not_allowed(rp, r, "GET");
		return list_actions(d, r, rp);
	case GW_OW_ACTION:
		return route_action(d, r, rp, rt.name);
	case GW_OW_PACKAGE_ACTION:
		return gw_reply_error(rp, 501,
				      "actions in packages ('%.100s') are not supported by nemo: "
				      "packages are not implemented",
				      rt.name);
	case GW_OW_ACTIVATIONS:
		if (!gw_req_is(r, "GET"))
			return gw_reply_not_allowed(rp, r, "GET");
		return list_activations(d, r, rp);
	default:
		if (!gw_req_is(r, "GET"))
			return gw_reply_not_allowed(rp, r, "GET");
		return reply_activation(d, r, rp, &rt);
	}
}
