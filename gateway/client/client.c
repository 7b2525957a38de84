/* client.c - nemod's HTTP API through libcurl: the only library nemoctl links besides cJSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "nemo/client.h"

struct nemo_client {
	CURL *curl;
	char *base;
	struct curl_slist *headers;
	int timeout_ms;
};

struct nemo_client *nemo_client_new(const char *base_url, const char *credential, int timeout_ms)
{
	struct nemo_client *c;

	if (!base_url || (strncmp(base_url, "http://", 7) && strncmp(base_url, "https://", 8))) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c->curl = curl_easy_init();
	c->base = strdup(base_url);
	c->timeout_ms = timeout_ms;
	if (!c->curl || !c->base) {
		nemo_client_free(c);
		errno = ENOMEM;
		return NULL;
	}
	/* a trailing slash would double the one every path starts with */
	while (strlen(c->base) > 8 && c->base[strlen(c->base) - 1] == '/')
		c->base[strlen(c->base) - 1] = '\0';
	if (credential && strchr(credential, ':')) {
		curl_easy_setopt(c->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c->curl, CURLOPT_USERPWD, credential);
	} else if (credential && credential[0]) {
		char h[512];

		snprintf(h, sizeof(h), "Authorization: Bearer %s", credential);
		c->headers = curl_slist_append(c->headers, h);
	}
	c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
	c->headers = curl_slist_append(c->headers, "Expect:");
	return c;
}

void nemo_client_free(struct nemo_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->headers);
	free(c->base);
	free(c);
	curl_global_cleanup();
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct nemo_client_response *r = arg;
	char *nb = realloc(r->body, r->body_len + size * n + 1);

	if (!nb)
		return 0;
	memcpy(nb + r->body_len, data, size * n);
	r->body = nb;
	r->body_len += size * n;
	r->body[r->body_len] = '\0';
	return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct nemo_client_response *r = arg;
	size_t len = size * n;

	if (len > 13 && !strncasecmp(data, "Content-Type:", 13)) {
		const char *v = data + 13;
		size_t vl;

		while (*v == ' ')
			v++;
		vl = strcspn(v, "\r\n");
		snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int)vl, v);
	}
	return len;
}

int nemo_client_request(struct nemo_client *c, const char *method, const char *path,
			const void *body, size_t len, struct nemo_client_response *resp, char *err,
			size_t errlen)
{
	char url[2048];
	CURLcode cc;

	memset(resp, 0, sizeof(*resp));
	snprintf(url, sizeof(url), "%s%s", c->base, path);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(c->curl, CURLOPT_NOBODY, !strcmp(method, "HEAD") ? 1L : 0L);
	if (body) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	} else if (!strcmp(method, "GET") || !strcmp(method, "DELETE")) {
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	} else {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	}
	cc = curl_easy_perform(c->curl);
	if (cc != CURLE_OK) {
		if (err)
			snprintf(err, errlen, "%s", curl_easy_strerror(cc));
		nemo_client_response_release(resp);
		switch (cc) {
		case CURLE_COULDNT_CONNECT:
			return -ECONNREFUSED;
		case CURLE_OPERATION_TIMEDOUT:
			return -ETIMEDOUT;
		case CURLE_COULDNT_RESOLVE_HOST:
			return -EHOSTUNREACH;
		default:
			return -EPROTO;
		}
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	if (!resp->body) {
		resp->body = calloc(1, 1);
		if (!resp->body)
			return -ENOMEM;
	}
	return 0;
}

void nemo_client_response_release(struct nemo_client_response *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
}

char *nemo_client_base64(const uint8_t *in, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((len + 2) / 3 * 4 + 1), *p = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*p++ = tab[(v >> 18) & 63];
		*p++ = tab[(v >> 12) & 63];
		*p++ = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		*p++ = i + 2 < len ? tab[v & 63] : '=';
	}
	*p = '\0';
	return out;
}
