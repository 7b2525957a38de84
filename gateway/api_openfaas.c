/* api_openfaas.c - the OpenFaaS gateway API (/function, /async-function, /system) as faas-cli uses it. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#include "nemo/version.h"
#include "gw_internal.h"

/* "NAME" or "NAME/sub/path" -> name; *sub gets "/sub/path" or "". */

static void bad_name(struct gw_reply *rp, const char *s)
{
	gw_reply_error(rp, 400, "name '%.80s': must be 1..%d characters of [A-Za-z0-9_-]", s,
		       SBX_NAME_MAX - 1);
}

struct call_arg {
	const struct gw_request *r;
	const char *sub;
};

/* What a web-style (dict) function sees of the HTTP call: OpenWhisk's __ow_ keys. */
static cJSON *call_context(const void *arg)
{
	const struct call_arg *ca = arg;
	const struct gw_request *r = ca->r;
	const char *sub = ca->sub;
	cJSON *ctx = cJSON_CreateObject(), *h;
	char query[1024] = "";
	size_t ql = 0;

	cJSON_AddStringToObject(ctx, "__ow_method", r->method);
	cJSON_AddStringToObject(ctx, "__ow_path", sub);
	for (int i = 0; i < r->n_args && ql < sizeof(query); i++)
		ql += (size_t)snprintf(query + ql, sizeof(query) - ql, "%s%s=%s", i ? "&" : "",
				       r->args[i].key, r->args[i].value ? r->args[i].value : "");
	cJSON_AddStringToObject(ctx, "__ow_query", query);
	/* header names in lower case, as OpenWhisk's web actions see them */
	h = cJSON_AddObjectToObject(ctx, "__ow_headers");
	for (int i = 0; i < r->n_headers; i++) {
		char key[128];
		size_t k;

		/* nor nemo's own between the nodes of a cluster */
		if (!strcasecmp(r->headers[i].key, "Authorization") ||
		    !strcasecmp(r->headers[i].key, "X-Nemo-Origin") ||
		    !strcasecmp(r->headers[i].key, "X-Nemo-Offload"))
			continue;
		for (k = 0; k < sizeof(key) - 1 && r->headers[i].key[k]; k++)
			key[k] = (char)tolower((unsigned char)r->headers[i].key[k]);
		key[k] = '\0';
		cJSON_AddStringToObject(h, key, r->headers[i].value ? r->headers[i].value : "");
	}
	return ctx;
}

/* A header name as RFC 9110 has them (a token), and one nemod does not set itself. */
static bool header_name_ok(const char *k)
{
	static const char *const own[] = {"content-length", "transfer-encoding", "connection",
					  "x-call-id",	    "x-activation-id",	 NULL};
	size_t n = strlen(k);

	if (!n || n >= 64 ||
	    strspn(k,
		   "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
		    n)
		return false;
	for (int i = 0; own[i]; i++)
		if (!strcasecmp(k, own[i]))
			return false;
	return true;
}

/*
 * The web response convention of a main(dict) function (OpenWhisk's web actions): a result
 * {"statusCode": 201, "headers": {...}, "body": ...} is the HTTP reply itself. Returns 1 when
 * the result took that shape (rp filled), 0 when it is a plain result, -EINVAL when it tried
 * and got it wrong (why says how).
 */
static int web_reply(struct gw_reply *rp, const struct gw_outcome *out, char *why, size_t wlen)
{
	cJSON *j = cJSON_ParseWithLength((const char *)out->result, out->result_len);
	const cJSON *code, *headers, *body, *h;
	int rc = 1;

	if (!cJSON_IsObject(j))
		goto plain;
	code = cJSON_GetObjectItemCaseSensitive(j, "statusCode");
	headers = cJSON_GetObjectItemCaseSensitive(j, "headers");
	body = cJSON_GetObjectItemCaseSensitive(j, "body");
	if (!code && !headers && !body)
		goto plain;
	/* only those three keys: any other and it is a plain result that happens to share one */
	cJSON_ArrayForEach (h, j) {
		if (strcmp(h->string, "statusCode") && strcmp(h->string, "headers") &&
		    strcmp(h->string, "body"))
			goto plain;
	}
	rp->status = 200;
	if (code) {
		if (!cJSON_IsNumber(code) || code->valuedouble != (double)code->valueint ||
		    code->valueint < 100 || code->valueint > 599) {
			snprintf(why, wlen, "statusCode: expected an integer 100..599");
			rc = -EINVAL;
			goto out;
		}
		rp->status = code->valueint;
	}
	if (headers && !cJSON_IsObject(headers)) {
		snprintf(why, wlen, "headers: expected an object of name: value");
		rc = -EINVAL;
		goto out;
	}
	cJSON_ArrayForEach (h, headers) {
		char num[32];
		const char *v = cJSON_IsString(h) ? h->valuestring
				: cJSON_IsNumber(h)
					? (snprintf(num, sizeof(num), "%g", h->valuedouble), num)
				: cJSON_IsBool(h) ? (cJSON_IsTrue(h) ? "true" : "false")
						  : NULL;
		size_t vn = v ? strlen(v) : 0;
		bool printable = v && vn < sizeof(rp->headers[0].value);

		for (size_t i = 0; printable && i < vn; i++)
			printable = (unsigned char)v[i] >= ' ' && v[i] != 0x7f;
		if (!header_name_ok(h->string) || !printable) {
			snprintf(why, wlen,
				 "headers.%.63s: expected a header name nemod does not set and a "
				 "printable value under %zu bytes",
				 h->string, sizeof(rp->headers[0].value));
			rc = -EINVAL;
			goto out;
		}
		if (!strcasecmp(h->string, "Content-Type")) {
			snprintf(rp->ctype_buf, sizeof(rp->ctype_buf), "%s", v);
			rp->ctype = rp->ctype_buf;
		} else if (rp->n_headers >= GW_REPLY_MAX_HEADERS - 3) {
			snprintf(why, wlen, "headers: more than %d", GW_REPLY_MAX_HEADERS - 3);
			rc = -EINVAL;
			goto out;
		} else {
			gw_reply_header(rp, h->string, v);
		}
	}
	if (cJSON_IsString(body)) {
		rp->body = strdup(body->valuestring);
		if (!rp->ctype)
			rp->ctype = "text/plain; charset=utf-8";
	} else if (body) {
		rp->body = cJSON_PrintUnformatted(body);
		if (!rp->ctype)
			rp->ctype = "application/json";
	} else {
		rp->body = strdup("");
		if (!rp->ctype)
			rp->ctype = "text/plain; charset=utf-8";
	}
	if (!rp->body) {
		snprintf(why, wlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	rp->len = strlen(rp->body);
	rp->body_static = false;
out:
	cJSON_Delete(j);
	return rc;
plain:
	cJSON_Delete(j);
	return 0;
}

static int status_of(enum gw_act_status st)
{
	switch (st) {
	case GW_ACT_SUCCESS:
		return 200;
	case GW_ACT_REJECTED:
		return 413;
	default:
		return 502;
	}
}

static void invoke(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp,
		   const struct gw_faas_route *rt, bool async)
{
	struct gw_call call = {.payload = r->body, .len = r->len, .trigger = GW_TRIGGER_HTTP};
	const char *ctype = gw_req_header(r, "Content-Type");
	char err[512], id[GW_ID_LEN + 1], name[SBX_NAME_MAX];
	struct call_arg ca = {r, rt->sub};
	struct gw_outcome out;
	int rc;

	/* an open door (no credential) reaches the default namespace */
	if (!gw_req_key(d, r, rt->name, name, rp))
		return;
	call.context = call_context;
	call.context_arg = &ca;
	if (async) {
		call.callback_url = gw_req_header(r, "X-Callback-Url");
		if (call.callback_url && strncmp(call.callback_url, "http://", 7)) {
			return gw_reply_error(rp, 400,
					      "X-Callback-Url '%.100s': only http:// URLs are "
					      "supported",
					      call.callback_url);
		}
		if (call.callback_url) {
			const char *u = call.callback_url;
			size_t n = strlen(u);
			bool plain = n < 256;

			/* it goes into the journal line and a request line: printable, no space */
			for (size_t i = 0; plain && i < n; i++)
				plain = u[i] > ' ' && u[i] < 0x7f;
			if (!plain)
				return gw_reply_error(rp, 400,
						      "X-Callback-Url: expected a URL of 1..255 "
						      "printable characters without spaces");
		}
		/* in a cluster, the offload policy may send it to a peer with more spare,
		 * its callback with it (accepted, recorded and called back there) */
		if (gw_cluster_forward(d, r, rp, name, GW_FWD_HEADERS))
			return;
		rc = gw_svc_invoke_async(d, name, &call, id, err, sizeof(err));
		if (rc)
			return gw_reply_error(rp, gw_status_of_errno(rc), "%s", err);
		return gw_reply_accepted(rp, id);
	}
	/* in a cluster, the offload policy may send it to a peer with more spare: the caller
	 * gets the peer's answer as it is (status, headers, body), and X-Nemo-Node */
	if (gw_cluster_forward(d, r, rp, name, GW_FWD_HEADERS | GW_FWD_HELD))
		return;
	call.result_only = true; /* the function's bytes, never the record */
	rc = gw_svc_invoke(d, name, &call, &out, err, sizeof(err));
	if (rc)
		return gw_reply_error(rp, gw_status_of_errno(rc), "%s", err);
	if (out.pending) {
		gw_reply_accepted(rp, out.id);
		return gw_svc_outcome_release(&out);
	}
	if (out.status != GW_ACT_SUCCESS) {
		cJSON *j = cJSON_CreateObject();

		cJSON_AddStringToObject(j, "error", out.message[0] ? out.message : "failed");
		cJSON_AddStringToObject(j, "status", gw_act_status_name(out.status));
		cJSON_AddStringToObject(j, "activationId", out.id);
		cJSON_AddNumberToObject(j, "code", status_of(out.status));
		if (out.result_len) {
			char *text = strndup((const char *)out.result, out.result_len);

			cJSON_AddStringToObject(j, "output", text ? text : "");
			free(text);
		}
		gw_svc_outcome_release(&out);
		gw_reply_json(rp, status_of(out.status), j);
	} else if (out.web && (rc = web_reply(rp, &out, err, sizeof(err))) != 0) {
		/* a main(dict) function answered with its own status, headers and body */
		gw_svc_outcome_release(&out);
		if (rc < 0) {
			char id[GW_ID_LEN + 1];

			memcpy(id, out.id, sizeof(id));
			gw_reply_release(rp);
			memset(rp, 0, sizeof(*rp));
			gw_reply_error(rp, 502, "function '%s' answered a web response with %s",
				       rt->name, err);
			gw_reply_header(rp, "X-Call-Id", id);
			gw_reply_header(rp, "X-Activation-Id", id);
			return;
		}
	} else {
		/* the warm fast path: the function's bytes, as they are */
		rp->status = 200;
		rp->body = out.result ? (char *)out.result : "";
		rp->body_static = !out.result;
		rp->len = out.result_len;
		rp->ctype = ctype && *ctype ? "application/octet-stream" : "application/json";
		if (ctype && !strncmp(ctype, "application/json", 16))
			rp->ctype = "application/json";
		else if (ctype && !strncmp(ctype, "text/", 5))
			rp->ctype = "text/plain";
	}
	gw_reply_header(rp, "X-Call-Id", out.id);
	gw_reply_header(rp, "X-Activation-Id", out.id);
	gw_reply_run_time(rp, out.run_ns);
}

struct list_arg {
	struct gw_daemon *d;
	cJSON *arr;
	const char *ns;
};

/* One function in OpenFaaS's FunctionStatus shape. */
static cJSON *status_json(struct gw_daemon *d, struct gw_function *fn)
{
	cJSON *j = cJSON_CreateObject(), *labels, *ann;
	struct sbx_pool_stats st = {0};
	uint64_t n = 0;
	bool have = d->backend.ops->stats(d->backend.state, fn->spec.name, &st) == 0;

	for (int s = GW_ACT_SUCCESS; s < GW_ACT_N_STATUS; s++)
		n += atomic_load(&fn->metrics.invocations[s]);
	cJSON_AddStringToObject(j, "name", fn->name);
	cJSON_AddStringToObject(j, "image", fn->spec.code);
	cJSON_AddStringToObject(j, "namespace", fn->ns);
	cJSON_AddNumberToObject(j, "invocationCount", (double)n);
	cJSON_AddNumberToObject(j, "replicas", have ? st.idle + st.busy : 0);
	cJSON_AddNumberToObject(j, "availableReplicas", have ? st.idle : 0);
	cJSON_AddStringToObject(j, "envProcess", fn->spec.handler);
	labels = cJSON_AddObjectToObject(j, "labels");
	cJSON_AddStringToObject(labels, "nemo.runtime", sbx_runtime_name(fn->spec.runtime));
	ann = cJSON_AddObjectToObject(j, "annotations");
	{
		char v[32];

		snprintf(v, sizeof(v), "%d", fn->prewarm);
		cJSON_AddStringToObject(ann, "nemo.prewarm", v);
	}
	/* nemo's native fields, for its own clients */
	cJSON_AddNumberToObject(j, "prewarm", fn->prewarm);
	return j;
}

static void add_status(void *arg, struct gw_function *fn)
{
	struct list_arg *la = arg;

	if (!strcmp(fn->ns, la->ns))
		cJSON_AddItemToArray(la->arr, status_json(la->d, fn));
}

static void delete_function(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp)
{
	char err[600];
	cJSON *body = gw_json_parse("request body", r->body, r->len, err, sizeof(err));
	const char *name =
		cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "functionName"));
	char key[SBX_NAME_MAX];
	int rc;

	if (!body && r->len)
		return gw_reply_error(rp, 400, "%s", err);
	if (!name) {
		cJSON_Delete(body);
		return gw_reply_error(rp, 400, "expected a body {\"functionName\": \"NAME\"}");
	}
	if (!gw_name_valid(name)) {
		bad_name(rp, name);
		return cJSON_Delete(body);
	}
	if (!gw_req_key(d, r, name, key, rp))
		return cJSON_Delete(body);
	rc = gw_svc_undeploy(d, key);
	if (rc) {
		gw_reply_error(rp, gw_status_of_errno(rc),
			       "function '%s' is not deployed in namespace '%s'", name,
			       gw_req_ns(d, r));
	} else {
		rp->status = 200;
		rp->body = "";
		rp->body_static = true;
		rp->ctype = "text/plain";
	}
	cJSON_Delete(body);
}

static void scale(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp,
		  const char *name)
{
	char err[600];
	cJSON *body = gw_json_parse("request body", r->body, r->len, err, sizeof(err));
	const cJSON *rep = cJSON_GetObjectItemCaseSensitive(body, "replicas");
	const char *svc =
		cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "serviceName"));
	char key[SBX_NAME_MAX];
	int rc;

	if (!body && r->len)
		return gw_reply_error(rp, 400, "%s", err);
	if (!gw_name_valid(name)) {
		cJSON_Delete(body);
		return bad_name(rp, name);
	}
	if (!cJSON_IsNumber(rep) || rep->valuedouble != (double)rep->valueint ||
	    rep->valueint < 0 || rep->valueint > GW_MAX_PREWARM || (svc && strcmp(svc, name))) {
		cJSON_Delete(body);
		return gw_reply_error(rp, 400,
				      "expected {\"serviceName\": \"%s\", \"replicas\": 0..%d}",
				      name, GW_MAX_PREWARM);
	}
	if (!gw_req_key(d, r, name, key, rp))
		return cJSON_Delete(body);
	rc = gw_svc_scale(d, key, rep->valueint);
	cJSON_Delete(body);
	if (rc)
		return gw_reply_error(rp, gw_status_of_errno(rc),
				      "function '%s' is not deployed in namespace '%s'", name,
				      gw_req_ns(d, r));
	rp->status = 202;
	rp->body = "";
	rp->body_static = true;
	rp->ctype = "text/plain";
}

static void info(struct gw_reply *rp)
{
	cJSON *j = cJSON_CreateObject(), *prov, *ver;
	struct utsname u;

	prov = cJSON_AddObjectToObject(j, "provider");
	cJSON_AddStringToObject(prov, "provider", "nemo");
	cJSON_AddStringToObject(prov, "orchestration", "nemo");
	ver = cJSON_AddObjectToObject(prov, "version");
	cJSON_AddStringToObject(ver, "release", NEMO_VERSION);
	cJSON_AddStringToObject(ver, "sha", "");
	ver = cJSON_AddObjectToObject(j, "version");
	cJSON_AddStringToObject(ver, "release", NEMO_VERSION);
	cJSON_AddStringToObject(ver, "sha", "");
	cJSON_AddStringToObject(ver, "commit_message", "");
	cJSON_AddStringToObject(j, "arch", uname(&u) == 0 ? u.machine : "unknown");
	gw_reply_json(rp, 200, j);
}

void gw_api_openfaas(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp)
{
	struct gw_faas_route rt;
	int rc = gw_faas_route_parse(r->url, &rt);

	if (rc == -EINVAL)
		return bad_name(rp, rt.name);
	if (rc)
		return gw_reply_error(rp, 404, "no route for %s %.200s", r->method, r->url);
	switch (rt.route) {
	case GW_FAAS_FUNCTION:
		return invoke(d, r, rp, &rt, false);
	case GW_FAAS_ASYNC:
		if (!gw_req_is(r, "POST"))
			return gw_reply_not_allowed(rp, r, "POST");
		return invoke(d, r, rp, &rt, true);
	case GW_FAAS_FUNCTIONS:
		if (gw_req_is(r, "GET")) {
			struct list_arg la = {d, cJSON_CreateArray(), gw_req_ns(d, r)};

			gw_fn_foreach(d, add_status, &la);
			return gw_reply_json(rp, 200, la.arr);
		}
		if (gw_req_is(r, "DELETE"))
			return delete_function(d, r, rp);
		if (gw_req_is(r, "POST") || gw_req_is(r, "PUT"))
			return gw_reply_error(
				rp, 501,
				"OpenFaaS deploys container images, which nemo does not run: deploy "
				"the code with PUT /api/v1/namespaces/_/actions/NAME (nemoctl "
				"deploy, or any OpenWhisk client)");
		return gw_reply_not_allowed(rp, r, "GET, POST, PUT, DELETE");
	case GW_FAAS_DESCRIBE: {
		struct gw_function *fn;
		char key[SBX_NAME_MAX];

		if (!gw_req_is(r, "GET"))
			return gw_reply_not_allowed(rp, r, "GET");
		if (!gw_req_key(d, r, rt.name, key, rp))
			return;
		fn = gw_fn_get(d, key);
		if (!fn)
			return gw_reply_error(rp, 404,
					      "function '%s' is not deployed in namespace '%s'",
					      rt.name, gw_req_ns(d, r));
		gw_reply_json(rp, 200, status_json(d, fn));
		return gw_fn_put(fn);
	}
	case GW_FAAS_SCALE:
		if (!gw_req_is(r, "POST"))
			return gw_reply_not_allowed(rp, r, "POST");
		return scale(d, r, rp, rt.name);
	case GW_FAAS_INFO:
		if (!gw_req_is(r, "GET"))
			return gw_reply_not_allowed(rp, r, "GET");
		return info(rp);
	case GW_FAAS_NAMESPACES: {
		cJSON *arr;

		if (!gw_req_is(r, "GET"))
			return gw_reply_not_allowed(rp, r, "GET");
		arr = cJSON_CreateArray();
		cJSON_AddItemToArray(arr, cJSON_CreateString(gw_req_ns(d, r)));
		return gw_reply_json(rp, 200, arr);
	}
	default:
		return gw_reply_error(rp, 501, "%.40s is not supported by nemo", rt.what);
	}
}
