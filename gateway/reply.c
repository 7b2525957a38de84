/* reply.c - what every front door shares: reading a gw_request, building a gw_reply. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw_internal.h"

const char *gw_req_arg(const struct gw_request *r, const char *key)
{
	for (int i = 0; i < r->n_args; i++)
		if (!strcmp(r->args[i].key, key))
			return r->args[i].value ? r->args[i].value : "";
	return NULL;
}

const char *gw_req_header(const struct gw_request *r, const char *key)
{
	for (int i = 0; i < r->n_headers; i++)
		if (!strcasecmp(r->headers[i].key, key))
			return r->headers[i].value ? r->headers[i].value : "";
	return NULL;
}

bool gw_req_arg_true(const struct gw_request *r, const char *key, bool dflt)
{
	const char *v = gw_req_arg(r, key);

	if (!v)
		return dflt;
	return !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !v[0];
}

bool gw_req_is(const struct gw_request *r, const char *method)
{
	return !strcmp(r->method, method) || (!strcmp(method, "GET") && !strcmp(r->method, "HEAD"));
}

void gw_reply_header(struct gw_reply *rp, const char *key, const char *value)
{
	if (rp->n_headers >= (int)(sizeof(rp->headers) / sizeof(rp->headers[0])))
		return;
	snprintf(rp->headers[rp->n_headers].key, sizeof(rp->headers[0].key), "%s", key);
	snprintf(rp->headers[rp->n_headers].value, sizeof(rp->headers[0].value), "%s", value);
	rp->n_headers++;
}

void gw_reply_accepted(struct gw_reply *rp, const char *id)
{
	cJSON *j = cJSON_CreateObject();

	cJSON_AddStringToObject(j, "activationId", id);
	gw_reply_json(rp, 202, j);
	/* OpenFaaS's name for it and OpenWhisk's */
	gw_reply_header(rp, "X-Call-Id", id);
	gw_reply_header(rp, "X-Activation-Id", id);
}

void gw_reply_run_time(struct gw_reply *rp, uint64_t run_ns)
{
	char secs[32];

	if (!run_ns)
		return;
	/* as OpenFaaS's watchdog says it: the function's own time, in seconds */
	snprintf(secs, sizeof(secs), "%.6f", (double)run_ns / 1e9);
	gw_reply_header(rp, "X-Duration-Seconds", secs);
}

void gw_reply_json(struct gw_reply *rp, int status, cJSON *j)
{
	char *text = j ? cJSON_PrintUnformatted(j) : NULL;

	cJSON_Delete(j);
	rp->status = text ? status : 500;
	rp->body = text ? text : "{\"error\":\"out of memory\",\"code\":500}";
	rp->body_static = !text;
	rp->len = strlen(rp->body);
	rp->ctype = "application/json";
}

void gw_reply_error(struct gw_reply *rp, int status, const char *fmt, ...)
{
	cJSON *j = cJSON_CreateObject();
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddStringToObject(j, "error", msg);
	cJSON_AddNumberToObject(j, "code", status);
	gw_reply_json(rp, status, j);
}

void gw_reply_not_allowed(struct gw_reply *rp, const struct gw_request *r, const char *allow)
{
	gw_reply_error(rp, 405, "method %s is not allowed on %.200s (allowed: %s)", r->method,
		       r->url, allow);
	gw_reply_header(rp, "Allow", allow);
}

int gw_status_of_errno(int rc)
{
	switch (rc) {
	case 0:
		return 200;
	case -EINVAL:
		return 400;
	case -ENOENT:
		return 404;
	case -EEXIST:
		return 409;
	case -E2BIG:
		return 413;
	case -EAGAIN:
		return 429;
	case -ENOSPC: /* the journal cannot keep an accepted activation */
		return 503;
	case -ENOSYS:
		return 501;
	default:
		return 500;
	}
}

void gw_reply_release(struct gw_reply *rp)
{
	if (!rp->body_static)
		free(rp->body);
	rp->body = NULL;
}

const char *gw_req_ns(const struct gw_daemon *d, const struct gw_request *r)
{
	return r->cred ? r->cred->ns : d->default_ns;
}

bool gw_req_key(const struct gw_daemon *d, const struct gw_request *r, const char *name,
		char key[SBX_NAME_MAX], struct gw_reply *rp)
{
	const char *ns = gw_req_ns(d, r);

	if (!gw_fn_key(d->default_ns, ns, name, key))
		return true;
	gw_reply_error(rp, 400,
		       "name '%.63s': with its namespace '%s' it must fit in %d characters "
		       "(namespace.name)",
		       name, ns, SBX_NAME_MAX - 1);
	return false;
}
