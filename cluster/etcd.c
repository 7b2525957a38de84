/* etcd.c - an etcd v3 client over etcd's HTTP/JSON gateway (libcurl, cJSON), with failover. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "nemo/base64.h"
#include "cl_internal.h"
#include "nemo/log.h"

#define POOL_MAX 16

struct cl_etcd {
	int n;
	char endpoints[CL_MAX_ENDPOINTS][CL_ADDR_MAX];
	char joined[CL_MAX_ENDPOINTS * (CL_ADDR_MAX + 1)];
	int timeout_ms;
	/* TLS (https:// endpoints) and etcd's users: empty strings when not used */
	char ca_file[CL_PATH_MAX], cert_file[CL_PATH_MAX], key_file[CL_PATH_MAX];
	char user[CL_NAME_MAX], password[128];
	pthread_mutex_t auth_lock;
	char token[256];	 /* from /v3/auth/authenticate; "" until then, or once it expired */
	atomic_int current;	 /* the endpoint that answered last */
	atomic_bool unreachable; /* the last call found no member answering at all */
	pthread_mutex_t pool_lock;
	CURL *pool[POOL_MAX];
	int n_pool;
	_Atomic uint64_t requests, bytes_out, bytes_in, calls[CL_REQ_KINDS], errors;
	_Atomic uint64_t watch_restarts, latency_sum_us, latency[CL_LATENCY_BUCKETS + 1];
};

const double cl_latency_bounds_s[CL_LATENCY_BUCKETS] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
							0.1,   0.2,   0.5,   1,	   2};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Is this file given, and readable? Else say which and why. */
static bool file_ok(const char *what, const char *path)
{
	if (!path || !path[0])
		return true;
	if (strlen(path) >= CL_PATH_MAX || access(path, R_OK) < 0) {
		NEMO_ERR(CL_MOD, "etcd %s '%s': %s", what, path,
			 strlen(path) >= CL_PATH_MAX ? "path too long" : strerror(errno));
		return false;
	}
	return true;
}

static bool security_ok(const struct cl_etcd_security *sec)
{
	bool cert = sec->cert_file && sec->cert_file[0], key = sec->key_file && sec->key_file[0];
	bool user = sec->user && sec->user[0], pass = sec->password && sec->password[0];

	if (cert != key) {
		NEMO_ERR(CL_MOD, "etcd TLS: %s given without %s: a client certificate needs both",
			 cert ? "cert_file" : "key_file", cert ? "key_file" : "cert_file");
		return false;
	}
	if (user != pass) {
		NEMO_ERR(CL_MOD, "etcd auth: %s given without %s", user ? "user" : "password",
			 user ? "password" : "user");
		return false;
	}
	if ((user && strlen(sec->user) >= CL_NAME_MAX) || (pass && strlen(sec->password) >= 128)) {
		NEMO_ERR(CL_MOD, "etcd auth: user (%d bytes at most) or password (127) too long",
			 CL_NAME_MAX - 1);
		return false;
	}
	return file_ok("ca_file", sec->ca_file) && file_ok("cert_file", sec->cert_file) &&
	       file_ok("key_file", sec->key_file);
}

struct cl_etcd *cl_etcd_new(const char *const *endpoints, int n, int timeout_ms)
{
	return cl_etcd_new_secure(endpoints, n, timeout_ms, NULL);
}

struct cl_etcd *cl_etcd_new_secure(const char *const *endpoints, int n, int timeout_ms,
				   const struct cl_etcd_security *sec)
{
	static const struct cl_etcd_security none = {0};
	struct cl_etcd *e;
	size_t off = 0;

	if (!sec)
		sec = &none;
	if (n <= 0 || n > CL_MAX_ENDPOINTS) {
		NEMO_ERR(CL_MOD, "etcd: %d endpoints given (1..%d)", n, CL_MAX_ENDPOINTS);
		errno = EINVAL;
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		size_t scheme = !strncmp(endpoints[i], "http://", 7)	? 7
				: !strncmp(endpoints[i], "https://", 8) ? 8
									: 0;

		if (!scheme || !endpoints[i][scheme] || strlen(endpoints[i]) >= CL_ADDR_MAX) {
			NEMO_ERR(
				CL_MOD,
				"etcd endpoint '%s': expected http://host:port or https://host:port",
				endpoints[i]);
			errno = EINVAL;
			return NULL;
		}
	}
	if (!security_ok(sec)) {
		errno = EINVAL;
		return NULL;
	}
	pthread_once(&curl_once, curl_init_once);
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->ca_file, sizeof(e->ca_file), "%s", sec->ca_file ? sec->ca_file : "");
	snprintf(e->cert_file, sizeof(e->cert_file), "%s", sec->cert_file ? sec->cert_file : "");
	snprintf(e->key_file, sizeof(e->key_file), "%s", sec->key_file ? sec->key_file : "");
	snprintf(e->user, sizeof(e->user), "%s", sec->user ? sec->user : "");
	snprintf(e->password, sizeof(e->password), "%s", sec->password ? sec->password : "");
	pthread_mutex_init(&e->auth_lock, NULL);
	e->n = n;
	e->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(endpoints[i]);

		memcpy(e->endpoints[i], endpoints[i], l + 1);
		while (l > 0 && e->endpoints[i][l - 1] == '/')
			e->endpoints[i][--l] = '\0';
		off += (size_t)snprintf(e->joined + off, sizeof(e->joined) - off, "%s%s",
					i ? "," : "", e->endpoints[i]);
	}
	pthread_mutex_init(&e->pool_lock, NULL);
	return e;
}

void cl_etcd_destroy(struct cl_etcd *e)
{
	if (!e)
		return;
	for (int i = 0; i < e->n_pool; i++)
		curl_easy_cleanup(e->pool[i]);
	pthread_mutex_destroy(&e->pool_lock);
	pthread_mutex_destroy(&e->auth_lock);
	explicit_bzero(e->password, sizeof(e->password));
	explicit_bzero(e->token, sizeof(e->token));
	free(e);
}

const char *cl_etcd_endpoints(const struct cl_etcd *e)
{
	return e->joined;
}

void cl_etcd_stats(const struct cl_etcd *e, struct cl_etcd_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->requests = atomic_load(&e->requests);
	st->bytes_out = atomic_load(&e->bytes_out);
	st->bytes_in = atomic_load(&e->bytes_in);
	for (int k = 0; k < CL_REQ_KINDS; k++)
		st->calls[k] = atomic_load(&e->calls[k]);
	st->errors = atomic_load(&e->errors);
	st->watch_restarts = atomic_load(&e->watch_restarts);
	st->latency_sum_s = (double)atomic_load(&e->latency_sum_us) / 1e6;
	for (int b = 0; b <= CL_LATENCY_BUCKETS; b++)
		st->latency[b] = atomic_load(&e->latency[b]);
}

bool cl_etcd_reachable(const struct cl_etcd *e)
{
	return !atomic_load(&e->unreachable);
}

void cl_etcd_note_watch_restart(struct cl_etcd *e)
{
	atomic_fetch_add(&e->watch_restarts, 1);
}

/* One call's time, from its first byte sent to its answer or its last failure. */
static void note_latency(struct cl_etcd *e, uint64_t us)
{
	int b = 0;

	while (b < CL_LATENCY_BUCKETS && (double)us > cl_latency_bounds_s[b] * 1e6)
		b++;
	atomic_fetch_add(&e->latency[b], 1);
	atomic_fetch_add(&e->latency_sum_us, us);
}

const char *cl_etcd_endpoint_at(const struct cl_etcd *e, int i)
{
	return e->endpoints[((i % e->n) + e->n) % e->n];
}

int cl_etcd_n_endpoints(const struct cl_etcd *e)
{
	return e->n;
}

int cl_etcd_timeout_ms(const struct cl_etcd *e)
{
	return e->timeout_ms;
}

int cl_etcd_current(struct cl_etcd *e)
{
	return atomic_load(&e->current);
}

void cl_etcd_set_current(struct cl_etcd *e, int i)
{
	atomic_store(&e->current, ((i % e->n) + e->n) % e->n);
}

/* ---- buffers ---------------------------------------------------------------------------------- */

size_t cl_buf_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct cl_buf *b = userdata;
	size_t n = size * nmemb;

	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* ---- one request with failover ------------------------------------------------------------------ */

static CURL *pool_take(struct cl_etcd *e)
{
	CURL *c = NULL;

	pthread_mutex_lock(&e->pool_lock);
	if (e->n_pool > 0)
		c = e->pool[--e->n_pool];
	pthread_mutex_unlock(&e->pool_lock);
	return c ? c : curl_easy_init();
}

static void pool_give(struct cl_etcd *e, CURL *c)
{
	pthread_mutex_lock(&e->pool_lock);
	if (e->n_pool < POOL_MAX) {
		e->pool[e->n_pool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&e->pool_lock);
	if (c)
		curl_easy_cleanup(c);
}

int cl_errno_of_curl(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		return -ECONNRESET;
	case CURLE_OUT_OF_MEMORY:
	case CURLE_WRITE_ERROR:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/*
 * etcd's error body {"error": ..., "code": grpc code, "message": ...} as -errno, and whether
 * another member may do better (no leader, timed out, unavailable). *stale: the auth token was
 * refused (expired): authenticate again.
 */
static int errno_of_etcd(const char *msg, int code, bool *next, bool *stale)
{
	*next = false;
	*stale = false;
	if (strstr(msg, "lease not found"))
		return -ENOENT;
	if (strstr(msg, "too many operations") || strstr(msg, "too large"))
		return -E2BIG;
	if (strstr(msg, "invalid auth token")) {
		*stale = true;
		return -EACCES;
	}
	if (strstr(msg, "authentication failed") || strstr(msg, "permission denied") ||
	    strstr(msg, "user name is empty") || strstr(msg, "authentication is not enabled"))
		return -EACCES;
	if (strstr(msg, "no leader") || strstr(msg, "leader changed") || code == 14) {
		*next = true;
		return -EAGAIN;
	}
	if (strstr(msg, "timed out") || code == 4) {
		*next = true;
		return -ETIMEDOUT;
	}
	if (strstr(msg, "compacted"))
		return -ERANGE;
	return -EIO;
}

void cl_etcd_curl_tls(const struct cl_etcd *e, CURL *c)
{
	/*
	 * HTTP/1.1: over TLS curl would offer HTTP/2, and etcd hands HTTP/2 requests to its gRPC
	 * server, which answers the gateway's JSON with a 400
	 */
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	if (e->ca_file[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, e->ca_file);
	if (e->cert_file[0]) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, e->cert_file);
		curl_easy_setopt(c, CURLOPT_SSLKEY, e->key_file);
	}
}

/*
 * POST `body` to `path` on the current endpoint, then the others in turn, each within
 * timeout_ms (a member waiting out a leader election answers within it; one that is cut off
 * costs it whole). `auth`: an "Authorization: token" header line, or NULL. On 0, *resp is the
 * parsed JSON answer (free it). *stale: a member refused the token. Logs once when every
 * endpoint failed; when none answered at all, the client is unreachable (cl_etcd_reachable)
 * until the next answer, and the next call starts with the next endpoint.
 */
static int call_endpoints(struct cl_etcd *e, const char *path, const char *body,
			  enum cl_req_kind kind, const char *auth, cJSON **resp, bool *stale)
{
	int start = atomic_load(&e->current);
	int rc = -EIO;
	char why[256] = "";
	size_t body_len = strlen(body);
	uint64_t t0 = nemo_now_ns();
	bool answered = false; /* some member answered, even if with a refusal */
	struct curl_slist *hdrs = auth ? curl_slist_append(NULL, auth) : NULL;
	CURL *c = pool_take(e);

	*resp = NULL;
	*stale = false;
	if (!c || (auth && !hdrs)) {
		curl_slist_free_all(hdrs);
		if (c)
			pool_give(e, c);
		return -ENOMEM;
	}
	atomic_fetch_add(&e->calls[kind], 1);
	for (int k = 0; k < e->n; k++) {
		int i = (start + k) % e->n;
		char url[CL_ADDR_MAX + 64];
		struct cl_buf b = {0};
		CURLcode cc;
		long status = 0;
		bool next = false;

		snprintf(url, sizeof(url), "%s%s", e->endpoints[i], path);
		curl_easy_reset(c);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cl_buf_write);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)e->timeout_ms);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(c, CURLOPT_PROXY, "");
		if (hdrs)
			curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
		cl_etcd_curl_tls(e, c);
		atomic_fetch_add(&e->requests, 1);
		atomic_fetch_add(&e->bytes_out, body_len);
		cc = curl_easy_perform(c);
		atomic_fetch_add(&e->bytes_in, b.len);
		if (cc != CURLE_OK) {
			rc = cl_errno_of_curl(cc);
			snprintf(why, sizeof(why), "%s: %s", e->endpoints[i],
				 curl_easy_strerror(cc));
			free(b.data);
			if (rc == -ENOMEM)
				break;
			continue;
		}
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		answered = true;
		*resp = b.data ? cJSON_Parse(b.data) : NULL;
		if (status == 200 && *resp) {
			free(b.data);
			atomic_store(&e->current, i);
			atomic_store(&e->unreachable, false);
			note_latency(e, (nemo_now_ns() - t0) / 1000);
			pool_give(e, c);
			curl_slist_free_all(hdrs);
			return 0;
		}
		if (*resp) {
			const cJSON *m = cJSON_GetObjectItemCaseSensitive(*resp, "message");
			const cJSON *code = cJSON_GetObjectItemCaseSensitive(*resp, "code");
			const char *msg = cJSON_IsString(m) ? m->valuestring : "";

			rc = errno_of_etcd(msg, cJSON_IsNumber(code) ? code->valueint : 0, &next,
					   stale);
			snprintf(why, sizeof(why), "%s: HTTP %ld: %s%s", e->endpoints[i], status,
				 msg,
				 rc == -EACCES && !e->user[0]
					 ? " (etcd has auth enabled: this node needs a user and "
					   "password)"
					 : "");
			cJSON_Delete(*resp);
			*resp = NULL;
		} else {
			rc = -EPROTO;
			next = true;
			snprintf(why, sizeof(why), "%s: HTTP %ld with an answer that is not JSON",
				 e->endpoints[i], status);
		}
		free(b.data);
		if (!next)
			break;
	}
	pool_give(e, c);
	curl_slist_free_all(hdrs);
	note_latency(e, (nemo_now_ns() - t0) / 1000);
	atomic_store(&e->unreachable, !answered);
	if (rc == -ENOENT || rc == -ERANGE || *stale)
		return rc; /* expected answers: the caller decides what they mean */
	atomic_fetch_add(&e->errors, 1);
	/* the next call starts with the next member, not again with the one that failed */
	if (!answered)
		atomic_store(&e->current, (start + 1) % e->n);
	NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, CL_MOD, 1000, 5, "etcd %s failed on %s (%s): %s", path,
			     e->joined, strerror(-rc), why);
	return rc;
}

/* Log in as the configured user: a token for the next calls. auth_lock held. */
static int authenticate(struct cl_etcd *e)
{
	cJSON *req = cJSON_CreateObject(), *resp = NULL;
	const cJSON *tok;
	char *body;
	bool stale;
	int rc;

	if (!req)
		return -ENOMEM;
	cJSON_AddStringToObject(req, "name", e->user);
	cJSON_AddStringToObject(req, "password", e->password);
	body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!body)
		return -ENOMEM;
	rc = call_endpoints(e, "/v3/auth/authenticate", body, CL_REQ_WRITE, NULL, &resp, &stale);
	explicit_bzero(body, strlen(body));
	free(body);
	if (rc < 0) {
		NEMO_ERR(CL_MOD, "etcd at %s: user '%s' could not log in: %s", e->joined, e->user,
			 strerror(-rc));
		return rc;
	}
	tok = cJSON_GetObjectItemCaseSensitive(resp, "token");
	if (!cJSON_IsString(tok) || !tok->valuestring[0] ||
	    strlen(tok->valuestring) >= sizeof(e->token)) {
		NEMO_ERR(CL_MOD, "etcd at %s: no token for user '%s' (is auth enabled?)", e->joined,
			 e->user);
		cJSON_Delete(resp);
		return -EPROTO;
	}
	snprintf(e->token, sizeof(e->token), "%s", tok->valuestring);
	cJSON_Delete(resp);
	return 0;
}

int cl_etcd_auth_header(struct cl_etcd *e, char *out, size_t cap)
{
	int rc = 0;

	out[0] = '\0';
	if (!e->user[0])
		return 0;
	pthread_mutex_lock(&e->auth_lock);
	if (!e->token[0])
		rc = authenticate(e);
	if (rc == 0)
		snprintf(out, cap, "Authorization: %s", e->token);
	pthread_mutex_unlock(&e->auth_lock);
	return rc;
}

void cl_etcd_auth_expired(struct cl_etcd *e, const char *header)
{
	pthread_mutex_lock(&e->auth_lock);
	/* only the token that was refused: another thread may have a fresh one already */
	if (!header || (strlen(header) > 15 && !strcmp(header + 15, e->token)))
		e->token[0] = '\0';
	pthread_mutex_unlock(&e->auth_lock);
}

int cl_etcd_call(struct cl_etcd *e, const char *path, const char *body, enum cl_req_kind kind,
		 cJSON **resp)
{
	int rc = -EIO;

	/* a token that expired (etcd drops one unused for --auth-token-ttl) is renewed once */
	for (int attempt = 0; attempt < 2; attempt++) {
		char auth[sizeof(((struct cl_etcd *)0)->token) + 16];
		bool stale = false;

		rc = cl_etcd_auth_header(e, auth, sizeof(auth));
		if (rc < 0)
			return rc;
		rc = call_endpoints(e, path, body, kind, auth[0] ? auth : NULL, resp, &stale);
		if (!stale)
			return rc;
		cl_etcd_auth_expired(e, auth);
	}
	NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, CL_MOD, 1000, 5,
			     "etcd %s on %s: the token of user '%s' was refused twice", path,
			     e->joined, e->user);
	return rc;
}

/* ---- JSON helpers ------------------------------------------------------------------------------- */

int64_t cl_json_i64(const cJSON *obj, const char *name)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (cJSON_IsString(it))
		return strtoll(it->valuestring, NULL, 10);
	if (cJSON_IsNumber(it))
		return (int64_t)it->valuedouble;
	return 0; /* proto3 JSON leaves out zero values */
}

static int add_b64(cJSON *obj, const char *name, const void *data, size_t len)
{
	char *s = nemo_base64_encode(data, len);

	if (!s)
		return -ENOMEM;
	cJSON_AddStringToObject(obj, name, s);
	free(s);
	return 0;
}

static void add_i64(cJSON *obj, const char *name, int64_t v)
{
	char s[32];

	snprintf(s, sizeof(s), "%" PRId64, v);
	cJSON_AddStringToObject(obj, name, s);
}

/* The range_end that makes `key` a prefix: the key with its last byte plus one. */
char *cl_prefix_end(const char *key)
{
	size_t l = strlen(key);
	char *end = malloc(l + 1);

	if (!end)
		return NULL;
	memcpy(end, key, l + 1);
	while (l > 0) {
		if ((unsigned char)end[l - 1] < 0xff) {
			end[l - 1]++;
			end[l] = '\0';
			return end;
		}
		l--;
	}
	free(end);
	return strdup("\0"); /* every key */
}

static int kv_parse(const cJSON *j, struct cl_kv *kv)
{
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "key");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "value");
	size_t kl, vl;
	long n;

	memset(kv, 0, sizeof(*kv));
	if (!cJSON_IsString(k))
		return -EPROTO;
	kl = strlen(k->valuestring);
	kv->key = malloc(kl / 4 * 3 + 4);
	if (!kv->key)
		return -ENOMEM;
	n = nemo_base64_decode(k->valuestring, kl, (uint8_t *)kv->key, kl / 4 * 3 + 3);
	if (n < 0)
		return -EPROTO;
	kv->key[n] = '\0';
	vl = cJSON_IsString(v) ? strlen(v->valuestring) : 0;
	kv->value = malloc(vl / 4 * 3 + 4);
	if (!kv->value)
		return -ENOMEM;
	n = vl ? nemo_base64_decode(v->valuestring, vl, kv->value, vl / 4 * 3 + 3) : 0;
	if (n < 0)
		return -EPROTO;
	kv->value[n] = '\0';
	kv->value_len = (size_t)n;
	kv->create_rev = cl_json_i64(j, "create_revision");
	kv->mod_rev = cl_json_i64(j, "mod_revision");
	kv->version = cl_json_i64(j, "version");
	kv->lease = cl_json_i64(j, "lease");
	return 0;
}

void cl_kv_release(struct cl_kv *kv)
{
	free(kv->key);
	free(kv->value);
	kv->key = NULL;
	kv->value = NULL;
}

void cl_kvs_release(struct cl_kvs *kvs)
{
	if (!kvs)
		return;
	for (int i = 0; i < kvs->n; i++)
		cl_kv_release(&kvs->kv[i]);
	free(kvs->kv);
	memset(kvs, 0, sizeof(*kvs));
}

/* Append the "kvs" of a range answer to out. */
int cl_kvs_append(struct cl_kvs *out, const cJSON *range)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(range, "kvs");
	int n = cJSON_GetArraySize(arr);
	const cJSON *it;
	struct cl_kv *kv;

	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(range, "more")))
		out->more = true;
	if (n <= 0)
		return 0;
	kv = realloc(out->kv, sizeof(*kv) * (size_t)(out->n + n));
	if (!kv)
		return -ENOMEM;
	out->kv = kv;
	cJSON_ArrayForEach (it, arr) {
		int rc = kv_parse(it, &out->kv[out->n]);

		if (rc < 0) {
			cl_kv_release(&out->kv[out->n]);
			return rc;
		}
		out->n++;
	}
	return 0;
}

static int64_t header_revision(const cJSON *resp)
{
	return cl_json_i64(cJSON_GetObjectItemCaseSensitive(resp, "header"), "revision");
}

static int add_range(cJSON *req, const char *key, const char *range_end, bool prefix)
{
	int rc = add_b64(req, "key", key, strlen(key));

	if (rc == 0 && (range_end || prefix)) {
		char *end = range_end ? strdup(range_end) : cl_prefix_end(key);

		if (!end)
			return -ENOMEM;
		rc = add_b64(req, "range_end", end, strlen(end) ? strlen(end) : 1);
		free(end);
	}
	return rc;
}

/* ---- KV ----------------------------------------------------------------------------------------- */

static int call_json(struct cl_etcd *e, const char *path, cJSON *req, enum cl_req_kind kind,
		     cJSON **resp)
{
	char *body = cJSON_PrintUnformatted(req);
	int rc;

	cJSON_Delete(req);
	if (!body)
		return -ENOMEM;
	rc = cl_etcd_call(e, path, body, kind, resp);
	free(body);
	return rc;
}

int cl_etcd_range(struct cl_etcd *e, const char *key, const char *range_end, bool prefix,
		  struct cl_kvs *out)
{
	cJSON *req = cJSON_CreateObject(), *resp;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!req)
		return -ENOMEM;
	rc = add_range(req, key, range_end, prefix);
	if (rc < 0) {
		cJSON_Delete(req);
		return rc;
	}
	rc = call_json(e, "/v3/kv/range", req, CL_REQ_READ, &resp);
	if (rc < 0)
		return rc;
	out->revision = header_revision(resp);
	rc = cl_kvs_append(out, resp);
	cJSON_Delete(resp);
	if (rc < 0)
		cl_kvs_release(out);
	return rc;
}

int cl_etcd_get(struct cl_etcd *e, const char *key, bool prefix, struct cl_kvs *out)
{
	return cl_etcd_range(e, key, NULL, prefix, out);
}

int cl_etcd_put(struct cl_etcd *e, const char *key, const void *val, size_t len, int64_t lease,
		int64_t *rev)
{
	cJSON *req = cJSON_CreateObject(), *resp;
	int rc;

	if (!req)
		return -ENOMEM;
	rc = add_b64(req, "key", key, strlen(key));
	if (rc == 0)
		rc = add_b64(req, "value", val, len);
	if (rc < 0) {
		cJSON_Delete(req);
		return rc;
	}
	if (lease)
		add_i64(req, "lease", lease);
	rc = call_json(e, "/v3/kv/put", req, CL_REQ_WRITE, &resp);
	if (rc < 0)
		return rc;
	if (rev)
		*rev = header_revision(resp);
	cJSON_Delete(resp);
	return 0;
}

int cl_etcd_delete(struct cl_etcd *e, const char *key, bool prefix, int64_t *deleted)
{
	cJSON *req = cJSON_CreateObject(), *resp;
	int rc;

	if (!req)
		return -ENOMEM;
	rc = add_range(req, key, NULL, prefix);
	if (rc < 0) {
		cJSON_Delete(req);
		return rc;
	}
	rc = call_json(e, "/v3/kv/deleterange", req, CL_REQ_WRITE, &resp);
	if (rc < 0)
		return rc;
	if (deleted)
		*deleted = cl_json_i64(resp, "deleted");
	cJSON_Delete(resp);
	return 0;
}

static const char *const cmp_targets[] = {"VERSION", "CREATE", "MOD", "VALUE"};
static const char *const cmp_results[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL"};
static const char *const cmp_fields[] = {"version", "create_revision", "mod_revision", "value"};

static cJSON *ops_json(const struct cl_op *ops, int n)
{
	cJSON *arr = cJSON_CreateArray();

	for (int i = 0; arr && i < n; i++) {
		cJSON *wrap = cJSON_CreateObject(), *op = cJSON_CreateObject();
		int rc;

		if (!wrap || !op) {
			cJSON_Delete(wrap);
			cJSON_Delete(op);
			cJSON_Delete(arr);
			return NULL;
		}
		cJSON_AddItemToArray(arr, wrap);
		switch (ops[i].kind) {
		case CL_OP_PUT:
			cJSON_AddItemToObject(wrap, "request_put", op);
			rc = add_b64(op, "key", ops[i].key, strlen(ops[i].key));
			if (rc == 0)
				rc = add_b64(op, "value", ops[i].value, ops[i].value_len);
			if (ops[i].lease)
				add_i64(op, "lease", ops[i].lease);
			break;
		case CL_OP_DELETE:
			cJSON_AddItemToObject(wrap, "request_delete_range", op);
			rc = add_range(op, ops[i].key, NULL, ops[i].prefix);
			break;
		default:
			cJSON_AddItemToObject(wrap, "request_range", op);
			rc = add_range(op, ops[i].key, NULL, ops[i].prefix);
			break;
		}
		if (rc < 0) {
			cJSON_Delete(arr);
			return NULL;
		}
	}
	return arr;
}

int cl_etcd_txn(struct cl_etcd *e, const struct cl_cmp *cmp, int n_cmp, const struct cl_op *ok,
		int n_ok, const struct cl_op *fail, int n_fail, bool *succeeded, int64_t *rev,
		struct cl_kvs *ranges)
{
	cJSON *req = cJSON_CreateObject(), *arr, *resp, *it;
	bool writes = false;
	int rc;

	if (ranges)
		memset(ranges, 0, sizeof(*ranges));
	if (!req)
		return -ENOMEM;
	arr = cJSON_AddArrayToObject(req, "compare");
	for (int i = 0; arr && i < n_cmp; i++) {
		cJSON *c = cJSON_CreateObject();

		if (!c)
			goto nomem;
		cJSON_AddItemToArray(arr, c);
		if (add_b64(c, "key", cmp[i].key, strlen(cmp[i].key)) < 0)
			goto nomem;
		cJSON_AddStringToObject(c, "target", cmp_targets[cmp[i].target]);
		cJSON_AddStringToObject(c, "result", cmp_results[cmp[i].result]);
		if (cmp[i].target == CL_CMP_VALUE) {
			if (add_b64(c, "value", cmp[i].value, cmp[i].value_len) < 0)
				goto nomem;
		} else {
			add_i64(c, cmp_fields[cmp[i].target], cmp[i].number);
		}
	}
	it = ops_json(ok, n_ok);
	if (!it)
		goto nomem;
	cJSON_AddItemToObject(req, "success", it);
	it = ops_json(fail, n_fail);
	if (!it)
		goto nomem;
	cJSON_AddItemToObject(req, "failure", it);
	/* etcd serves a txn without a put or delete in either branch as a read, not through raft */
	for (int i = 0; i < n_ok; i++)
		writes |= ok[i].kind != CL_OP_GET;
	for (int i = 0; i < n_fail; i++)
		writes |= fail[i].kind != CL_OP_GET;
	rc = call_json(e, "/v3/kv/txn", req, writes ? CL_REQ_WRITE : CL_REQ_READ, &resp);
	if (rc < 0)
		return rc;
	*succeeded = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "succeeded"));
	if (rev)
		*rev = header_revision(resp);
	if (ranges) {
		const cJSON *r;

		ranges->revision = header_revision(resp);
		cJSON_ArrayForEach (r, cJSON_GetObjectItemCaseSensitive(resp, "responses")) {
			const cJSON *rr = cJSON_GetObjectItemCaseSensitive(r, "response_range");

			if (rr && (rc = cl_kvs_append(ranges, rr)) < 0) {
				cl_kvs_release(ranges);
				break;
			}
		}
	}
	cJSON_Delete(resp);
	return rc;
nomem:
	cJSON_Delete(req);
	return -ENOMEM;
}

/* ---- leases ------------------------------------------------------------------------------------- */

int cl_etcd_lease_grant(struct cl_etcd *e, int ttl_s, int64_t *id)
{
	cJSON *req = cJSON_CreateObject(), *resp;
	const cJSON *err;
	int rc;

	if (!req)
		return -ENOMEM;
	add_i64(req, "TTL", ttl_s);
	rc = call_json(e, "/v3/lease/grant", req, CL_REQ_WRITE, &resp);
	if (rc < 0)
		return rc;
	*id = cl_json_i64(resp, "ID");
	err = cJSON_GetObjectItemCaseSensitive(resp, "error");
	if (*id == 0 || (cJSON_IsString(err) && err->valuestring[0])) {
		NEMO_ERR(CL_MOD, "etcd lease grant on %s: %s", e->joined,
			 cJSON_IsString(err) ? err->valuestring : "no lease ID in the answer");
		rc = -EIO;
	}
	cJSON_Delete(resp);
	return rc;
}

int cl_etcd_lease_keepalive(struct cl_etcd *e, int64_t id, int *ttl_left)
{
	cJSON *req = cJSON_CreateObject(), *resp;
	const cJSON *res;
	int64_t ttl;
	int rc;

	if (!req)
		return -ENOMEM;
	add_i64(req, "ID", id);
	rc = call_json(e, "/v3/lease/keepalive", req, CL_REQ_RENEW, &resp);
	if (rc < 0)
		return rc;
	/* a stream of one message: {"result": {"ID", "TTL"}}; no TTL once the lease is gone */
	res = cJSON_GetObjectItemCaseSensitive(resp, "result");
	ttl = cl_json_i64(res, "TTL");
	cJSON_Delete(resp);
	if (ttl_left)
		*ttl_left = (int)ttl;
	return ttl > 0 ? 0 : -ENOENT;
}

int cl_etcd_lease_revoke(struct cl_etcd *e, int64_t id)
{
	cJSON *req = cJSON_CreateObject(), *resp;
	int rc;

	if (!req)
		return -ENOMEM;
	add_i64(req, "ID", id);
	rc = call_json(e, "/v3/lease/revoke", req, CL_REQ_WRITE, &resp);
	if (rc < 0)
		return rc;
	cJSON_Delete(resp);
	return 0;
}

/* ---- reachability --------------------------------------------------------------------------------- */

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * nmemb;
}

int cl_etcd_probe(struct cl_etcd *e, int timeout_ms)
{
	CURLM *m = curl_multi_init();
	CURL *c[CL_MAX_ENDPOINTS] = {0};
	int running = 0, answered = 0;

	if (!m)
		return -ENOMEM;
	for (int i = 0; i < e->n; i++) {
		char url[CL_ADDR_MAX + 16];

		c[i] = curl_easy_init();
		if (!c[i])
			continue;
		snprintf(url, sizeof(url), "%s/version", e->endpoints[i]);
		curl_easy_setopt(c[i], CURLOPT_URL, url);
		curl_easy_setopt(c[i], CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(c[i], CURLOPT_TIMEOUT_MS, (long)timeout_ms);
		curl_easy_setopt(c[i], CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
		curl_easy_setopt(c[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c[i], CURLOPT_PROXY, "");
		cl_etcd_curl_tls(e, c[i]);
		curl_multi_add_handle(m, c[i]);
	}
	/* all at once: a cut-off node learns it within one timeout_ms, not one per member */
	do {
		CURLMsg *msg;
		int left;

		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(m, &left))) {
			long status = 0;

			if (msg->msg != CURLMSG_DONE || msg->data.result != CURLE_OK)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			answered += status > 0;
		}
		if (answered)
			break;
		if (running)
			curl_multi_poll(m, NULL, 0, 50, NULL);
	} while (running);
	for (int i = 0; i < e->n; i++) {
		if (!c[i])
			continue;
		curl_multi_remove_handle(m, c[i]);
		curl_easy_cleanup(c[i]);
	}
	curl_multi_cleanup(m);
	atomic_store(&e->unreachable, answered == 0);
	return answered;
}

/* ---- readiness ---------------------------------------------------------------------------------- */

int cl_etcd_wait_ready(struct cl_etcd *e, int max_wait_ms, const char *key)
{
	uint64_t t0 = nemo_now_ms();
	int backoff = 50;
	int rc;

	for (;;) {
		struct cl_kvs kvs;

		rc = cl_etcd_range(e, key ? key : "/nemo-ready-probe", NULL, false, &kvs);
		if (rc == 0) {
			cl_kvs_release(&kvs);
			return 0;
		}
		if (rc == -EACCES) {
			NEMO_ERR(CL_MOD, "etcd at %s refuses this client%s%s: %s", e->joined,
				 e->user[0] ? " as user " : " (it has auth on: give a user)",
				 e->user, strerror(-rc));
			return rc;
		}
		if (nemo_now_ms() - t0 + (uint64_t)backoff > (uint64_t)max_wait_ms)
			break;
		NEMO_WARN(CL_MOD, "etcd at %s: %s; retrying in %d ms", e->joined, strerror(-rc),
			  backoff);
		cl_sleep_ms(backoff);
		backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
	}
	NEMO_ERR(CL_MOD, "etcd at %s: not reachable after %d ms: %s", e->joined, max_wait_ms,
		 strerror(-rc));
	return rc;
}
