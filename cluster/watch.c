/* watch.c - etcd watches over the gateway's streamed /v3/watch answer, with resync and failover. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nemo/base64.h"
#include "cl_internal.h"
#include "nemo/log.h"

struct cl_watch {
	struct cl_etcd *e;
	char *key, *range_end;
	int idle_ms;
	cl_watch_fn fn;
	void *arg;
	pthread_t thread;
	atomic_bool stop;
	pthread_mutex_t lock; /* guards multi for wakeups */
	CURLM *multi;
	int64_t next_rev; /* watch from here */
	struct cl_buf buf;
	size_t parsed; /* bytes of buf already handed on */
	bool compacted;
	bool canceled;
	uint64_t last_data_ms;
};

/* Range-read everything and hand it on as a snapshot. */
static int snapshot(struct cl_watch *w)
{
	struct cl_kvs kvs;
	struct cl_watch_event *ev;
	int rc = cl_etcd_range(w->e, w->key, w->range_end, w->range_end == NULL, &kvs);

	if (rc < 0)
		return rc;
	ev = calloc((size_t)kvs.n + 1, sizeof(*ev));
	if (!ev) {
		cl_kvs_release(&kvs);
		return -ENOMEM;
	}
	for (int i = 0; i < kvs.n; i++)
		ev[i].kv = &kvs.kv[i];
	w->fn(w->arg, true, ev, kvs.n, kvs.revision);
	w->next_rev = kvs.revision + 1;
	free(ev);
	cl_kvs_release(&kvs);
	return 0;
}

/* One message of the stream: {"result": {"header", "events": [...], "compact_revision"...}}. */
static void on_message(struct cl_watch *w, const char *text)
{
	cJSON *j = cJSON_Parse(text), *res;
	const cJSON *events, *it;
	struct cl_watch_event *ev = NULL;
	struct cl_kv *kvs = NULL;
	int n = 0, cap;
	int64_t rev;

	if (!j)
		return;
	res = cJSON_GetObjectItemCaseSensitive(j, "result");
	if (!res) {
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");

		NEMO_WARN(CL_MOD, "etcd watch %s: %s%s", w->key,
			  cJSON_IsObject(err) ? "error in the stream: " : "unexpected message",
			  cJSON_IsString(msg) ? msg->valuestring : "");
		if (cJSON_IsString(msg) && strstr(msg->valuestring, "auth token"))
			cl_etcd_auth_expired(w->e, NULL); /* log in again for the next stream */
		w->canceled = true;
		cJSON_Delete(j);
		return;
	}
	if (cl_json_i64(res, "compact_revision") > 0) {
		w->compacted = true;
		cJSON_Delete(j);
		return;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "canceled"))) {
		w->canceled = true;
		cJSON_Delete(j);
		return;
	}
	rev = cl_json_i64(cJSON_GetObjectItemCaseSensitive(res, "header"), "revision");
	events = cJSON_GetObjectItemCaseSensitive(res, "events");
	cap = cJSON_GetArraySize(events);
	if (cap > 0) {
		ev = calloc((size_t)cap, sizeof(*ev));
		kvs = calloc((size_t)cap, sizeof(*kvs));
	}
	if (cap > 0 && (!ev || !kvs)) {
		free(ev);
		free(kvs);
		cJSON_Delete(j);
		w->canceled = true; /* resync from next_rev */
		return;
	}
	cJSON_ArrayForEach (it, events) {
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
		cJSON *kv = cJSON_GetObjectItemCaseSensitive(it, "kv");
		struct cl_kvs one = {0};
		cJSON *wrap = cJSON_CreateObject(), *arr;

		if (!wrap)
			break;
		arr = cJSON_AddArrayToObject(wrap, "kvs");
		cJSON_AddItemReferenceToArray(arr, kv);
		if (cl_kvs_append(&one, wrap) == 0 && one.n == 1) {
			kvs[n] = one.kv[0];
			free(one.kv);
			ev[n].deleted =
				cJSON_IsString(type) && strcmp(type->valuestring, "DELETE") == 0;
			ev[n].kv = &kvs[n];
			if (kvs[n].mod_rev >= w->next_rev)
				w->next_rev = kvs[n].mod_rev + 1;
			n++;
		} else {
			cl_kvs_release(&one);
		}
		cJSON_Delete(wrap);
	}
	if (n > 0)
		w->fn(w->arg, false, ev, n, rev);
	else if (rev >= w->next_rev && cap == 0 &&
		 !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created")))
		w->next_rev = rev + 1; /* a progress notification */
	for (int i = 0; i < n; i++)
		cl_kv_release(&kvs[i]);
	free(kvs);
	free(ev);
	cJSON_Delete(j);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct cl_watch *w = userdata;
	size_t n = cl_buf_write(ptr, size, nmemb, &w->buf);
	char *nl;

	if (n == 0)
		return 0;
	w->last_data_ms = nemo_now_ms();
	/* the gateway ends each message with a newline */
	while ((nl = memchr(w->buf.data + w->parsed, '\n', w->buf.len - w->parsed))) {
		*nl = '\0';
		on_message(w, w->buf.data + w->parsed);
		w->parsed = (size_t)(nl - w->buf.data) + 1;
	}
	if (w->parsed == w->buf.len) {
		w->buf.len = 0;
		w->parsed = 0;
	}
	return n;
}

/* Stream from one endpoint until it breaks, goes silent, or we stop. */
static int stream(struct cl_watch *w, int endpoint)
{
	char url[CL_ADDR_MAX + 16], *body, *kb, *eb = NULL;
	char rev[32], auth[300];
	struct curl_slist *hdrs = NULL;
	CURL *c = curl_easy_init();
	CURLMcode mc;
	int running = 1, rc = 0;

	if (!c)
		return -ENOMEM;
	rc = cl_etcd_auth_header(w->e, auth, sizeof(auth));
	if (rc < 0 || (auth[0] && !(hdrs = curl_slist_append(NULL, auth)))) {
		curl_easy_cleanup(c);
		return rc < 0 ? rc : -ENOMEM;
	}
	kb = nemo_base64_encode(w->key, strlen(w->key));
	if (w->range_end)
		eb = nemo_base64_encode(w->range_end, strlen(w->range_end));
	else {
		char *end = cl_prefix_end(w->key);

		eb = end ? nemo_base64_encode(end, strlen(end)) : NULL;
		free(end);
	}
	snprintf(rev, sizeof(rev), "%" PRId64, w->next_rev);
	if (!kb || !eb ||
	    asprintf(&body,
		     "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\","
		     "\"start_revision\":\"%s\",\"progress_notify\":true}}",
		     kb, eb, rev) < 0) {
		free(kb);
		free(eb);
		curl_easy_cleanup(c);
		curl_slist_free_all(hdrs);
		return -ENOMEM;
	}
	free(kb);
	free(eb);
	snprintf(url, sizeof(url), "%s/v3/watch", cl_etcd_endpoint_at(w->e, endpoint));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)cl_etcd_timeout_ms(w->e));
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	cl_etcd_curl_tls(w->e, c);
	w->buf.len = 0;
	w->parsed = 0;
	w->compacted = false;
	w->canceled = false;
	w->last_data_ms = nemo_now_ms();
	pthread_mutex_lock(&w->lock);
	curl_multi_add_handle(w->multi, c);
	pthread_mutex_unlock(&w->lock);
	while (running && !atomic_load(&w->stop) && !w->compacted && !w->canceled) {
		mc = curl_multi_perform(w->multi, &running);
		if (mc != CURLM_OK) {
			rc = -EIO;
			break;
		}
		if (!running)
			break;
		if (w->idle_ms > 0 && nemo_now_ms() - w->last_data_ms > (uint64_t)w->idle_ms) {
			rc = -ETIMEDOUT;
			break;
		}
		curl_multi_poll(w->multi, NULL, 0, 200, NULL);
	}
	if (!running && rc == 0) {
		CURLMsg *m;
		int left;

		while ((m = curl_multi_info_read(w->multi, &left)))
			if (m->msg == CURLMSG_DONE && m->data.result != CURLE_OK)
				rc = cl_errno_of_curl(m->data.result);
		if (rc == 0)
			rc = -ECONNRESET; /* the member closed the stream */
	}
	pthread_mutex_lock(&w->lock);
	curl_multi_remove_handle(w->multi, c);
	pthread_mutex_unlock(&w->lock);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	free(body);
	if (w->compacted)
		return -ERANGE;
	return rc;
}

static void *watch_main(void *arg)
{
	struct cl_watch *w = arg;
	int endpoint = cl_etcd_current(w->e);
	int backoff = 50;

	while (!atomic_load(&w->stop)) {
		uint64_t t0 = nemo_now_ms();
		int rc = stream(w, endpoint);

		if (atomic_load(&w->stop))
			break;
		if (rc == -ERANGE) {
			NEMO_WARN(CL_MOD,
				  "etcd watch %s: revision %" PRId64 " compacted; reading anew",
				  w->key, w->next_rev);
			while (!atomic_load(&w->stop) && snapshot(w) < 0)
				cl_sleep_ms(500);
			continue;
		}
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, CL_MOD, 2000, 3,
				     "etcd watch %s on %s: %s; reconnecting from revision %" PRId64,
				     w->key, cl_etcd_endpoint_at(w->e, endpoint), strerror(-rc),
				     w->next_rev);
		cl_etcd_note_watch_restart(w->e);
		endpoint = (endpoint + 1) % cl_etcd_n_endpoints(w->e);
		if (nemo_now_ms() - t0 > 2000)
			backoff = 50; /* it ran for a while: a fresh failure */
		for (int slept = 0; slept < backoff && !atomic_load(&w->stop); slept += 50)
			cl_sleep_ms(50);
		backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
	}
	return NULL;
}

struct cl_watch *cl_watch_start(struct cl_etcd *e, const char *key, const char *range_end,
				int idle_ms, cl_watch_fn fn, void *arg)
{
	struct cl_watch *w = calloc(1, sizeof(*w));
	int rc;

	if (!w)
		return NULL;
	w->e = e;
	w->key = strdup(key);
	w->range_end = range_end ? strdup(range_end) : NULL;
	w->idle_ms = idle_ms;
	w->fn = fn;
	w->arg = arg;
	pthread_mutex_init(&w->lock, NULL);
	w->multi = curl_multi_init();
	if (!w->key || (range_end && !w->range_end) || !w->multi) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = snapshot(w);
	if (rc < 0) {
		NEMO_ERR(CL_MOD, "etcd watch %s: first read from %s failed: %s", key,
			 cl_etcd_endpoints(e), strerror(-rc));
		goto fail;
	}
	rc = -pthread_create(&w->thread, NULL, watch_main, w);
	if (rc < 0)
		goto fail;
	return w;
fail:
	if (w->multi)
		curl_multi_cleanup(w->multi);
	pthread_mutex_destroy(&w->lock);
	free(w->key);
	free(w->range_end);
	free(w);
	errno = -rc;
	return NULL;
}

void cl_watch_stop(struct cl_watch *w)
{
	if (!w)
		return;
	atomic_store(&w->stop, true);
	pthread_mutex_lock(&w->lock);
	curl_multi_wakeup(w->multi);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	curl_multi_cleanup(w->multi);
	pthread_mutex_destroy(&w->lock);
	free(w->buf.data);
	free(w->key);
	free(w->range_end);
	free(w);
}
