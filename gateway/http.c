/* http.c - the HTTP transport on libmicrohttpd: bodies, limits, auth; routes to the front doors. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>

#include "nemo/clock.h"
#include "nemo/log.h"
#include "gw_internal.h"

/*
 * A connection while its request's headers arrive: the sweeper shuts down the socket of one
 * that has not sent them all within limits.header_timeout_ms (MHD's own timeout is an idle
 * one, which a client trickling a byte at a time never reaches).
 */
struct conn {
	struct conn *prev, *next;
	int fd;
	uint64_t t_start;  /* when the connection (or, kept alive, its last request) began */
	bool headers_done; /* the current request's headers are in */
	bool shut;
};

struct gw_http {
	struct gw_daemon *d;
	struct MHD_Daemon *mhd;
	uint16_t port;
	pthread_mutex_t lock; /* conns; also held across shutdown() so no fd is reused meanwhile */
	struct conn conns;    /* list head */
	pthread_t sweeper;
	bool sweeper_on;
	atomic_bool stop;
	atomic_ulong header_timeouts;
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

/* An error reply; `close`: the connection is closed after it (where a request ends is in
 * doubt). */
static enum MHD_Result send_verror(struct gw_daemon *d, struct MHD_Connection *c, int status,
				   bool close, const char *fmt, va_list ap)
{
	struct gw_reply rp = {0};
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	gw_reply_error(&rp, status, "%s", msg);
	if (close)
		gw_reply_header(&rp, MHD_HTTP_HEADER_CONNECTION, "close");
	return send_reply(d, c, &rp);
}

static enum MHD_Result send_error(struct gw_daemon *d, struct MHD_Connection *c, int status,
				  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result send_error(struct gw_daemon *d, struct MHD_Connection *c, int status,
				  const char *fmt, ...)
{
	enum MHD_Result ret;
	va_list ap;

	va_start(ap, fmt);
	ret = send_verror(d, c, status, false, fmt, ap);
	va_end(ap);
	return ret;
}

static enum MHD_Result send_close(struct gw_daemon *d, struct MHD_Connection *c, int status,
				  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result send_close(struct gw_daemon *d, struct MHD_Connection *c, int status,
				  const char *fmt, ...)
{
	enum MHD_Result ret;
	va_list ap;

	va_start(ap, fmt);
	ret = send_verror(d, c, status, true, fmt, ap);
	va_end(ap);
	return ret;
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

struct framing {
	int n_cl, n_te;
	bool cl_differ, bad_name;
	const char *cl, *te;
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
				     const char *value)
{
	struct framing *f = cls;

	(void)kind;
	/* "Content-Length : 4" is a header to some proxies and none to MHD */
	if (!key[0] || strpbrk(key, " \t"))
		f->bad_name = true;
	if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
		if (f->cl && strcmp(f->cl, value))
			f->cl_differ = true;
		f->cl = value;
		f->n_cl++;
	} else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
		f->te = value;
		f->n_te++;
	}
	return MHD_YES;
}

/*
 * Request smuggling's openings, refused before a byte of the body is read: a proxy in front
 * and nemod must never disagree on where a request ends. Returns NULL or why not.
 */
static const char *bad_framing(struct MHD_Connection *c, char *why, size_t len)
{
	struct framing f = {0};
	const char *p;
	char *end;

	MHD_get_connection_values(c, MHD_HEADER_KIND, count_framing, &f);
	if (f.bad_name)
		return "a header name holds white space";
	if (f.n_cl && f.n_te)
		return "both Content-Length and Transfer-Encoding are given";
	if (f.cl_differ)
		return "Content-Length is given twice with different values";
	if (f.n_te > 1)
		return "Transfer-Encoding is given more than once";
	if (f.te && strcasecmp(f.te, "chunked")) {
		snprintf(why, len, "transfer coding '%.64s' is not supported (only chunked)", f.te);
		return why;
	}
	if (f.cl) {
		/* digits only, in the full width: "-1", "1e3", " 5" and 2^64 are all refused */
		for (p = f.cl; *p; p++)
			if (*p < '0' || *p > '9')
				return "Content-Length is not a decimal number";
		errno = 0;
		(void)strtoull(f.cl, &end, 10);
		if (!f.cl[0] || errno == ERANGE)
			return "Content-Length is not a number in range";
	}
	return NULL;
}

static void headers_arrived(struct gw_http *h, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *cn = ci ? ci->socket_context : NULL;

	if (!cn)
		return;
	pthread_mutex_lock(&h->lock);
	cn->headers_done = true;
	pthread_mutex_unlock(&h->lock);
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
	struct gw_http *h = cls;
	struct gw_daemon *d = h->d;
	struct req *rq = *con_cls;

	(void)version;
	if (!rq) {
		const char *cl;

		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->t_start = nemo_now_ns();
		*con_cls = rq;
		headers_arrived(h, c);
		{
			char why_buf[128];
			const char *why = bad_framing(c, why_buf, sizeof(why_buf));

			if (why)
				return send_close(d, c, MHD_HTTP_BAD_REQUEST, "%s", why);
		}
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
			if (!d->draining) {
				char why[200];

				/* accepted work could not be kept: say so, with the reason */
				if (gw_journal_error(&d->acts, why, sizeof(why)) ||
				    gw_cluster_degraded(d, why, sizeof(why)))
					return send_error(d, c, MHD_HTTP_SERVICE_UNAVAILABLE,
							  "degraded: %s", why);
			}
			return send_reply(d, c, &rp);
		}
		{
			const char *authz = MHD_lookup_connection_value(
				c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

			/* an open door with credentials serves their namespace: they count */
			if (needs_auth(d, url) || authz) {
				rq->cred = gw_creds_check(&d->creds, authz, &rq->auth_why);
				if (!rq->cred)
					return send_error(d, c, MHD_HTTP_UNAUTHORIZED, "%s",
							  rq->auth_why);
			}
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
	struct gw_http *h = cls;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn *cn = ci ? ci->socket_context : NULL;

	(void)toe;
	if (cn) {
		/* kept alive: the next request's headers get their own deadline */
		pthread_mutex_lock(&h->lock);
		cn->headers_done = false;
		cn->t_start = nemo_now_ns();
		pthread_mutex_unlock(&h->lock);
	}
	struct req *rq = *con_cls;

	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct gw_http *h = cls;
	struct conn *cn = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		cn = calloc(1, sizeof(*cn));
		if (!cn || !ci) {
			free(cn);
			return; /* untracked: MHD's idle timeout still applies */
		}
		cn->fd = ci->connect_fd;
		cn->t_start = nemo_now_ns();
		pthread_mutex_lock(&h->lock);
		cn->next = h->conns.next;
		cn->prev = &h->conns;
		h->conns.next->prev = cn;
		h->conns.next = cn;
		pthread_mutex_unlock(&h->lock);
		*socket_context = cn;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED && cn) {
		/* MHD closes the fd after this returns: the sweeper never sees a reused one */
		pthread_mutex_lock(&h->lock);
		cn->prev->next = cn->next;
		cn->next->prev = cn->prev;
		pthread_mutex_unlock(&h->lock);
		free(cn);
		*socket_context = NULL;
	}
}

/*
 * Bytes the client sent that nemod has not read yet. Late headers are the client's fault only
 * when nemod has read all it was sent: a request queued behind a busy HTTP thread (a pool held
 * by blocking calls, a starved host) is nemod's delay, and cutting it would drop a request
 * the client sent in time.
 */
static int unread_bytes(int fd)
{
	int n = 0;

	return ioctl(fd, FIONREAD, &n) == 0 ? n : 0;
}

/* Close connections whose request headers are late (slowloris). */
static void *sweep(void *arg)
{
	struct gw_http *h = arg;
	uint64_t limit = (uint64_t)h->d->cfg.limits.header_timeout_ms * 1000000ull;
	uint64_t beat_us = h->d->cfg.limits.header_timeout_ms * 1000ull / 10;

	if (beat_us > 100000)
		beat_us = 100000;
	pthread_setname_np(pthread_self(), "nemod-sweep");
	while (!atomic_load(&h->stop)) {
		uint64_t now = nemo_now_ns();

		pthread_mutex_lock(&h->lock);
		for (struct conn *cn = h->conns.next; cn != &h->conns; cn = cn->next)
			if (!cn->headers_done && !cn->shut && now - cn->t_start > limit &&
			    !unread_bytes(cn->fd)) {
				/* INFO: an idle kept-alive connection ends here too */
				NEMO_LOG_RATELIMITED(NEMO_LOG_INFO, GW_MOD, 1000, 10,
						     "http: closed a connection with no complete "
						     "request headers after %u ms "
						     "(limits.header_timeout_ms)",
						     h->d->cfg.limits.header_timeout_ms);
				/* MHD sees the end of the stream and closes it in its own thread */
				shutdown(cn->fd, SHUT_RDWR);
				cn->shut = true;
				atomic_fetch_add(&h->header_timeouts, 1);
			}
		pthread_mutex_unlock(&h->lock);
		usleep((useconds_t)beat_us);
	}
	return NULL;
}

/*
 * URL-decoding as MHD does, but a control character (%00..%1F, %7F) stays encoded: "ab%00cd"
 * must not become the C string "ab". Names then hold a '%' and are refused as names.
 */
static size_t unescape(void *cls, struct MHD_Connection *c, char *s)
{
	char *w = s;
	const char *r = s;

	(void)cls;
	(void)c;
	while (*r) {
		unsigned int v;

		if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2]) &&
		    sscanf(r + 1, "%2x", &v) == 1 && v >= 0x20 && v != 0x7f) {
			*w++ = (char)v;
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
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
	pthread_mutex_init(&h->lock, NULL);
	h->conns.next = h->conns.prev = &h->conns;
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
		struct MHD_OptionItem opts[20] = {
			{MHD_OPTION_SOCK_ADDR, 0, &sin},
			{MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->limits.max_connections, NULL},
			{MHD_OPTION_PER_IP_CONNECTION_LIMIT,
			 (intptr_t)cfg->limits.max_connections_per_ip, NULL},
			{MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)cfg->limits.connection_timeout_s,
			 NULL},
			{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
			{MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h},
			{MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape, NULL},
			/* MHD's own strictness: refuses what RFC 7230 says a server must */
			{MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL},
		};
		/*
		 * No MHD_OPTION_LISTENING_ADDRESS_REUSE: MHD then sets SO_REUSEADDR alone (a
		 * restart binds past TIME_WAIT) and never SO_REUSEPORT, so a second nemod on
		 * this port fails to bind instead of sharing it. Its explicit 0 drops
		 * SO_REUSEADDR too; 1 would add SO_REUSEPORT.
		 */
		int n = 8;

		/* a pool of one is MHD's single polling thread: it warns if told the size */
		if (cfg->http_mode == GW_HTTP_POOL && cfg->http_threads > 1)
			opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
							    (intptr_t)cfg->http_threads, NULL};
		opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
		/* the logger must come first, or MHD's own messages escape to stderr */
		h->mhd = MHD_start_daemon(flags, cfg->listen_port, NULL, NULL, on_request, h,
					  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, d, MHD_OPTION_ARRAY,
					  opts, MHD_OPTION_END);
	}
	if (!h->mhd) {
		int e = errno ? errno : EADDRINUSE;

		NEMO_ERR(GW_MOD, "listen %s:%u: %s", cfg->listen_host, cfg->listen_port,
			 strerror(e));
		pthread_mutex_destroy(&h->lock);
		free(h);
		errno = e;
		return NULL;
	}
	if (pthread_create(&h->sweeper, NULL, sweep, h) == 0)
		h->sweeper_on = true;
	else
		NEMO_WARN(GW_MOD, "http: no header-deadline thread: %s", strerror(errno));
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : cfg->listen_port;
	return h;
}

void gw_http_stop(struct gw_http *h)
{
	if (!h)
		return;
	atomic_store(&h->stop, true);
	if (h->sweeper_on)
		pthread_join(h->sweeper, NULL);
	MHD_stop_daemon(h->mhd);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

uint16_t gw_http_port(const struct gw_http *h)
{
	return h->port;
}

uint64_t gw_http_header_timeouts(struct gw_http *h)
{
	return atomic_load(&h->header_timeouts);
}
