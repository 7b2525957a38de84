/* cl_internal.h - the cluster module's private helpers: the etcd client's pieces. */
#ifndef NEMO_CL_INTERNAL_H
#define NEMO_CL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "nemo/clock.h"
#include "nemo/cluster.h"

#define CL_MOD "cluster"

/* A growing buffer that libcurl writes into (always NUL-terminated). */
struct cl_buf {
	char *data;
	size_t len, cap;
};
size_t cl_buf_write(char *ptr, size_t size, size_t nmemb, void *userdata);

int cl_errno_of_curl(CURLcode rc);
/* POST a JSON body to an etcd gateway path with failover; *resp parsed on 0. */
int cl_etcd_call(struct cl_etcd *e, const char *path, const char *body, enum cl_req_kind kind,
		 cJSON **resp);
/* TLS options (CA, client certificate) on a handle bound for an etcd member. */
void cl_etcd_curl_tls(const struct cl_etcd *e, CURL *c);
/*
 * "Authorization: <token>" into out for etcd's auth (logging in first when there is no token
 * yet), or "" when the client has no user. Returns 0 or -errno (-EACCES: refused, logged).
 */
int cl_etcd_auth_header(struct cl_etcd *e, char *out, size_t cap);
/* The token in this header line (NULL: any) was refused: log in again next time. */
void cl_etcd_auth_expired(struct cl_etcd *e, const char *header);
/* A watch stream broke or went silent and was opened again. */
void cl_etcd_note_watch_restart(struct cl_etcd *e);
/* A range read from key to range_end (NULL: only key, or the prefix with `prefix`). */
int cl_etcd_range(struct cl_etcd *e, const char *key, const char *range_end, bool prefix,
		  struct cl_kvs *out);
int cl_kvs_append(struct cl_kvs *out, const cJSON *range);
void cl_kv_release(struct cl_kv *kv);
char *cl_prefix_end(const char *key);
int64_t cl_json_i64(const cJSON *obj, const char *name);

const char *cl_etcd_endpoint_at(const struct cl_etcd *e, int i);
int cl_etcd_n_endpoints(const struct cl_etcd *e);
int cl_etcd_timeout_ms(const struct cl_etcd *e);
int cl_etcd_current(struct cl_etcd *e);
void cl_etcd_set_current(struct cl_etcd *e, int i);

void cl_sleep_ms(int ms); /* nanosleep, again after a signal */

#endif /* NEMO_CL_INTERNAL_H */
