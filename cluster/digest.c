/* digest.c - sha256 (OpenSSL) and a sleep; base64 itself is common/base64.c. */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <time.h>

#include <openssl/evp.h>

#include "cl_internal.h"

void cl_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void cl_sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	hex[0] = '\0';
	if (!EVP_Digest(data ? data : "", data ? len : 0, md, &n, EVP_sha256(), NULL))
		return;
	for (unsigned int i = 0; i < n && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}
