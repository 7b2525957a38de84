/* client.h - a small client of nemod's HTTP API on libcurl (nemoctl; https, proxies, keep-alive). */
#ifndef NEMO_CLIENT_H
#define NEMO_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct nemo_client;

struct nemo_client_response {
	long status;
	char *body; /* malloc'd, NUL-terminated */
	size_t body_len;
	char content_type[64];
};

/*
 * A client of the nemod at `base_url` ("http://HOST:PORT", https too). `credential` is
 * "uuid:key" (sent as Basic) or a token (sent as Bearer); NULL sends none. The connection is
 * kept open between requests. Returns the client or NULL with errno (ENOMEM, EINVAL).
 */
struct nemo_client *nemo_client_new(const char *base_url, const char *credential, int timeout_ms);
void nemo_client_free(struct nemo_client *c);

/*
 * One request to base_url + path (path starts with '/'). Returns 0 (resp filled: release it
 * with nemo_client_response_release()) or -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -EPROTO
 * for other transport failures; `err` (may be NULL) gets libcurl's words for it.
 */
int nemo_client_request(struct nemo_client *c, const char *method, const char *path,
			const void *body, size_t len, struct nemo_client_response *resp, char *err,
			size_t errlen);
void nemo_client_response_release(struct nemo_client_response *resp);

/* Base64 (RFC 4648, padded). Returns a malloc'd NUL-terminated string or NULL. */
char *nemo_client_base64(const uint8_t *in, size_t len);

#endif /* NEMO_CLIENT_H */
