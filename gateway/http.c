/* http.c - the HTTP transport on libmicrohttpd: bodies, limits, auth; routes to the front doors. */
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
	const struct gw_cred *cred;
	const char *auth_why;
};

static enum MHD_Result send_reply(struct gw_daemon *d, struct MHD_Connection *c,
				  struct gw_reply *rp)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		rp->len, rp->body,
		rp->body_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (!r) {
		gw_reply_release(rp);
		return MHD_NO;
	}
	rp->body = NULL; /* MHD owns it now */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				rp->ctype ? rp->ctype : "application/json");
	for (int i = 0; i < rp->n_headers; i++)
		MHD_add_response_header(r, rp->headers[i].key, rp->headers[i].value);
	if (rp->status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Basic realm=\"nemo\", Bearer realm=\"nemo\"");
	ret = MHD_queue_response(c, (unsigned int)rp->status, r);
	MHD_destroy_response(r);
	if (rp->status >= 100 && rp->status < 600)
		atomic_fetch_add_explicit(&d->http_codes[rp->status], 1, memory_order_relaxed);
	if (rp->status == MHD_HTTP_TOO_MANY_REQUESTS)
		atomic_fetch_add_explicit(&d->rejected_429, 1, memory_order_relaxed);
	return ret;
}

static enum MHD_Result send_error(struct gw_daemon *d, struct MHD_Connection *c, int status,
				  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result send_error(struct gw_daemon *d, struct MHD_Connection *c, int status,
				  const char *fmt, ...)
{
	struct gw_reply rp = {0};
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	gw_reply_error(&rp, status, "%s", msg);
	return send_reply(d, c, &rp);
}

/* Which routes need credentials: all but /healthz, and OpenFaaS's function routes by config. */
static bool needs_auth(const struct gw_daemon *d, const char *url)
{
	if (!strncmp(url, "/function/", 10) || !strncmp(url, "/async-function/", 16))
		return d->cfg.function_auth;
	return true;
}

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key,
			       const char *value)
{
	struct gw_request *r = cls;

	if (kind == MHD_GET_ARGUMENT_KIND) {
		if (r->n_args < GW_REQ_MAX_KV)
			r->args[r->n_args++] = (struct gw_kv){key, value};
	} else if (r->n_headers < GW_REQ_MAX_KV) {
		r->headers[r->n_headers++] = (struct gw_kv){key, value};
	}
	return MHD_YES;
}

/* Down one layer: the front door that owns the URL's prefix. */
static void route(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp)
{
	const char *url = r->url;

	if ((!strncmp(url, "/api/v1/namespaces", 18) && (url[18] == '\0' || url[18] == '/')) ||
	    !strncmp(url, "/api/v1/web/", 12) || !strcmp(url, "/api/v1") ||
	    !strcmp(url, "/api/v1/"))
		gw_api_openwhisk(d, r, rp);
	else if (!strncmp(url, "/function/", 10) || !strncmp(url, "/async-function/", 16) ||
		 !strncmp(url, "/system/", 8))
		gw_api_openfaas(d, r, rp);
	else if (!strcmp(url, "/metrics"))
		gw_api_metrics(d, r, rp);
	else
		gw_api_native(d, r, rp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct gw_daemon *d = cls;
	struct req *rq = *con_cls;

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
			struct gw_reply rp = {.status = d->draining ? 503 : 200,
					      .body_static = true,
					      .ctype = "application/json"};

			if (strcmp(method, "GET") && strcmp(method, "HEAD"))
				return send_error(d, c, MHD_HTTP_METHOD_NOT_ALLOWED,
						  "method %s is not allowed on /healthz (allowed: "
						  "GET)",
						  method);
			rp.body = d->draining ? "{\"status\":\"draining\"}" : "{\"status\":\"ok\"}";
			rp.len = strlen(rp.body);
			return send_reply(d, c, &rp);
		}
		if (needs_auth(d, url)) {
			rq->cred = gw_creds_check(
				&d->creds,
				MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							    MHD_HTTP_HEADER_AUTHORIZATION),
				&rq->auth_why);
			if (!rq->cred)
				return send_error(d, c, MHD_HTTP_UNAUTHORIZED, "%s", rq->auth_why);
		}
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
	{
		struct gw_request r = {.method = method,
				       .url = url,
				       .body = rq->body ? rq->body : "",
				       .len = rq->len,
				       .cred = rq->cred};
		struct gw_reply rp = {0};

		MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND | MHD_HEADER_KIND, collect, &r);
		route(d, &r, &rp);
		return send_reply(d, c, &rp);
	}
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
			{MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->limits.max_connections, NULL},
			{MHD_OPTION_PER_IP_CONNECTION_LIMIT,
			 (intptr_t)cfg->limits.max_connections_per_ip, NULL},
			{MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)cfg->limits.connection_timeout_s,
			 NULL},
			{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, d},
		};
		/*
		 * No MHD_OPTION_LISTENING_ADDRESS_REUSE: MHD then sets SO_REUSEADDR alone (a
		 * restart binds past TIME_WAIT) and never SO_REUSEPORT, so a second nemod on
		 * this port fails to bind instead of sharing it. Its explicit 0 drops
		 * SO_REUSEADDR too; 1 would add SO_REUSEPORT.
		 */
		int n = 5;

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
