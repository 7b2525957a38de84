/* forward.c - one HTTP request to a peer nemod over kept-alive connections (offload, code fetch). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cl_internal.h"
#include "nemo/log.h"

#define FWD_POOL 16

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static CURL *pool[FWD_POOL];
static int n_pool;

static CURL *take(void)
{
	CURL *c = NULL;

	pthread_mutex_lock(&pool_lock);
	if (n_pool > 0)
		c = pool[--n_pool];
	pthread_mutex_unlock(&pool_lock);
	return c ? c : curl_easy_init();
}

static void give(CURL *c)
{
	pthread_mutex_lock(&pool_lock);
	if (n_pool < FWD_POOL) {
		pool[n_pool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&pool_lock);
	if (c)
		curl_easy_cleanup(c);
}

/* Keep one header line of the answer among out->headers. */
static void keep_header(struct cl_http_reply *out, const char *buf, size_t n)
{
	const char *colon = memchr(buf, ':', n), *v;
	size_t nl, vl;

	if (!colon || out->n_headers >= CL_HTTP_MAX_HEADERS)
		return;
	nl = (size_t)(colon - buf);
	v = colon + 1;
	vl = n - nl - 1;
	while (vl && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
		vl--;
	if (!nl || nl >= sizeof(out->headers[0].name))
		return;
	snprintf(out->headers[out->n_headers].name, sizeof(out->headers[0].name), "%.*s", (int)nl,
		 buf);
	snprintf(out->headers[out->n_headers].value, sizeof(out->headers[0].value), "%.*s", (int)vl,
		 v);
	out->n_headers++;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct cl_http_reply *out = userdata;
	size_t n = size * nitems;
	const char *want[] = {"Content-Type:", "X-Activation-Id:", "X-Call-Id:", "X-Nemo-Node:"};
	char *dst[] = {out->content_type, out->activation_id, out->activation_id, out->node};
	size_t cap[] = {sizeof(out->content_type), sizeof(out->activation_id),
			sizeof(out->activation_id), sizeof(out->node)};

	/* a status line starts an answer: what an interim one (1xx) said is not kept */
	if (n > 5 && !strncmp(buf, "HTTP/", 5)) {
		out->n_headers = 0;
		return n;
	}
	keep_header(out, buf, n);

	for (int i = 0; i < 4; i++) {
		size_t l = strlen(want[i]);

		if (n > l && strncasecmp(buf, want[i], l) == 0) {
			const char *v = buf + l;
			size_t vl = n - l;

			while (vl && (*v == ' ' || *v == '\t')) {
				v++;
				vl--;
			}
			while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
				vl--;
			snprintf(dst[i], cap[i], "%.*s", (int)vl, v);
		}
	}
	return n;
}

void cl_http_reply_release(struct cl_http_reply *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

int cl_http_forward(const char *address, const char *method, const char *path,
		    const char *const *headers, int n_headers, const void *body, size_t len,
		    int timeout_ms, struct cl_http_reply *out)
{
	return cl_http_forward_stall(address, method, path, headers, n_headers, body, len,
				     timeout_ms, 0, out);
}

int cl_http_forward_stall(const char *address, const char *method, const char *path,
			  const char *const *headers, int n_headers, const void *body, size_t len,
			  int timeout_ms, int stall_s, struct cl_http_reply *out)
{
	char url[CL_ADDR_MAX + 2048];
	struct curl_slist *hl = NULL;
	struct cl_buf b = {0};
	CURLcode cc;
	CURL *c;
	long status = 0;

	memset(out, 0, sizeof(*out));
	if (snprintf(url, sizeof(url), "http://%s%s", address, path) >= (int)sizeof(url))
		return -ENAMETOOLONG;
	c = take();
	if (!c)
		return -ENOMEM;
	curl_easy_reset(c);
	for (int i = 0; i < n_headers; i++)
		hl = curl_slist_append(hl, headers[i]);
	hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (body && (len || strcmp(method, "GET") != 0)) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cl_buf_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	if (stall_s > 0) {
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)stall_s);
	}
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	cc = curl_easy_perform(c);
	curl_slist_free_all(hl);
	if (cc != CURLE_OK) {
		free(b.data);
		give(c);
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, CL_MOD, 1000, 5, "forward %s %s to %s: %s",
				     method, path, address, curl_easy_strerror(cc));
		return cl_errno_of_curl(cc);
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	give(c);
	out->status = (int)status;
	out->body = b.data ? b.data : strdup("");
	out->len = b.len;
	return out->body ? 0 : -ENOMEM;
}
