/* base64.c - RFC 4648 base64 with padding: deploy bodies, the journal, etcd's JSON gateway. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "nemo/base64.h"

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long nemo_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
	size_t o = 0;

	/* tolerate line breaks (base64 -w76 output), nothing else */
	char *clean = malloc(len + 1);
	size_t n = 0;

	if (!clean)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++)
		if (in[i] != '\n' && in[i] != '\r')
			clean[n++] = in[i];
	if (n % 4) {
		free(clean);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int pad = 0;

		for (int k = 0; k < 4; k++) {
			if (clean[i + k] == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad) /* data after padding */
				goto bad;
			v[k] = b64_val((unsigned char)clean[i + k]);
			if (v[k] < 0)
				goto bad;
		}
		if (o + 3 - pad > cap)
			goto bad;
		out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[o++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
		if (pad < 1)
			out[o++] = (uint8_t)(v[2] << 6 | v[3]);
	}
	free(clean);
	return (long)o;
bad:
	free(clean);
	return -EINVAL;
}

char *nemo_base64_encode(const void *data, size_t len)
{
	const uint8_t *in = data;
	char *out = malloc((len + 2) / 3 * 4 + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = b64_chars[v >> 18 & 63];
		out[o++] = b64_chars[v >> 12 & 63];
		out[o++] = i + 1 < len ? b64_chars[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? b64_chars[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}
