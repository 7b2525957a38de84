/* auth.c - the credentials file (uuid:key pairs) and the Basic and Bearer checks on it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nemo/base64.h"
#include "gw_internal.h"

int gw_creds_parse(const char *text, size_t len, struct gw_creds *out, char *err, size_t errlen)
{
	const char *p = text, *end = text + len;
	int line = 0;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char buf[512], word[2][256] = {{0}}, extra[8] = {0};
		struct gw_cred *c;
		char *colon;
		int words;

		line++;
		if (n >= sizeof(buf)) {
			snprintf(err, errlen, "line %d: longer than %zu characters", line,
				 sizeof(buf) - 1);
			return -EINVAL;
		}
		memcpy(buf, p, n);
		buf[n] = '\0';
		p = nl ? nl + 1 : end;
		words = sscanf(buf, "%255s %255s %7s", word[0], word[1], extra);
		if (words <= 0 || word[0][0] == '#')
			continue;
		if (words > 2) {
			snprintf(err, errlen,
				 "line %d: expected 'uuid:key [namespace]' or one token", line);
			return -EINVAL;
		}
		if (out->n >= GW_MAX_CREDS) {
			snprintf(err, errlen, "line %d: more than %d credentials", line,
				 GW_MAX_CREDS);
			return -EINVAL;
		}
		c = &out->c[out->n];
		/* never cut short: a prefix of a long credential must not pass for it */
		if (strlen(word[0]) >= sizeof(c->whole) ||
		    (!strchr(word[0], ':') && strlen(word[0]) >= sizeof(c->key)) ||
		    strlen(word[0]) == sizeof(word[0]) - 1) {
			snprintf(err, errlen, "line %d: a credential is longer than %zu characters",
				 line,
				 (strchr(word[0], ':') ? sizeof(c->whole) : sizeof(c->key)) - 1);
			return -EINVAL;
		}
		snprintf(c->whole, sizeof(c->whole), "%s", word[0]);
		colon = strchr(word[0], ':');
		if (colon) {
			*colon = '\0';
			if (!word[0][0] || !colon[1] || strlen(word[0]) >= sizeof(c->uuid) ||
			    strlen(colon + 1) >= sizeof(c->key)) {
				snprintf(err, errlen,
					 "line %d: expected 'uuid:key' with both parts", line);
				return -EINVAL;
			}
			snprintf(c->uuid, sizeof(c->uuid), "%s", word[0]);
			snprintf(c->key, sizeof(c->key), "%s", colon + 1);
		} else {
			if (strlen(word[0]) < 16) {
				snprintf(err, errlen,
					 "line %d: a token must be one word of at least 16 "
					 "characters",
					 line);
				return -EINVAL;
			}
			snprintf(c->key, sizeof(c->key), "%s", word[0]);
		}
		if (words == 2) {
			size_t wn = strlen(word[1]);

			if (wn >= sizeof(c->ns) || !gw_ns_valid(word[1])) {
				snprintf(err, errlen,
					 "line %d: namespace '%s' is not a valid name (1..%d of "
					 "[A-Za-z0-9_.-], not '_')",
					 line, word[1], GW_NS_MAX - 1);
				return -EINVAL;
			}
			snprintf(c->ns, sizeof(c->ns), "%s", word[1]);
		} else {
			snprintf(c->ns, sizeof(c->ns), "%s", c->uuid[0] ? "guest" : "nemo");
		}
		c->line = line;
		out->n++;
	}
	/*
	 * Bearer takes "uuid:key" or the key alone: two credentials whose forms meet would let
	 * one caller in as the other (another namespace). Each must be told apart.
	 */
	for (int i = 0; i < out->n; i++)
		for (int j = 0; j < i; j++) {
			const struct gw_cred *a = &out->c[j], *b = &out->c[i];

			if (!strcmp(a->whole, b->whole) || !strcmp(a->key, b->key) ||
			    !strcmp(a->whole, b->key) || !strcmp(a->key, b->whole)) {
				snprintf(
					err, errlen,
					"line %d: its key is also the key or credential of line %d; "
					"Bearer could not tell them apart",
					b->line, a->line);
				return -EINVAL;
			}
		}
	if (!out->n) {
		snprintf(err, errlen, "no credential in the file");
		return -EINVAL;
	}
	return 0;
}

/* Compare in time independent of where the first difference is. */
static bool secret_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	unsigned char diff = alen != blen;

	for (size_t i = 0; i < alen && i < blen; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

const struct gw_cred *gw_creds_check(const struct gw_creds *c, const char *h, const char **why)
{
	const char *secret;
	uint8_t basic[256];
	size_t slen;

	if (!h) {
		*why = "missing token: send 'Authorization: Bearer <token>' or 'Basic <uuid:key>'";
		return NULL;
	}
	if (!strncasecmp(h, "Bearer ", 7)) {
		secret = h + 7;
		while (*secret == ' ')
			secret++;
		slen = strlen(secret);
		for (int i = 0; i < c->n; i++)
			if (secret_equal(secret, slen, c->c[i].whole, strlen(c->c[i].whole)) ||
			    secret_equal(secret, slen, c->c[i].key, strlen(c->c[i].key)))
				return &c->c[i];
		*why = "invalid token";
		return NULL;
	}
	if (!strncasecmp(h, "Basic ", 6)) {
		long n;

		secret = h + 6;
		while (*secret == ' ')
			secret++;
		n = nemo_base64_decode(secret, strlen(secret), basic, sizeof(basic) - 1);
		if (n <= 0 || !memchr(basic, ':', (size_t)n)) {
			*why = "malformed Basic credentials: expected base64 of 'uuid:key'";
			return NULL;
		}
		basic[n] = '\0';
		for (int i = 0; i < c->n; i++) {
			const struct gw_cred *k = &c->c[i];
			char user_pass[256];

			/* a bare token authenticates as user "nemo" */
			snprintf(user_pass, sizeof(user_pass), "%s:%s",
				 k->uuid[0] ? k->uuid : "nemo", k->key);
			if (secret_equal((const char *)basic, (size_t)n, user_pass,
					 strlen(user_pass)))
				return k;
		}
		*why = "invalid credentials";
		return NULL;
	}
	*why = "unsupported authorization scheme: send 'Authorization: Basic <uuid:key>' or "
	       "'Bearer <token>'";
	return NULL;
}
