/* base64.h - RFC 4648 base64 with padding, one implementation for every module. */
#ifndef NEMO_BASE64_H
#define NEMO_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Decode `len` characters (line breaks are skipped, as base64 -w76 writes them) into at most
 * `cap` bytes. Returns the decoded length, -EINVAL for anything else, -ENOMEM. */
long nemo_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap);
/* Returns a malloc'd NUL-terminated string, or NULL. */
char *nemo_base64_encode(const void *data, size_t len);

#endif /* NEMO_BASE64_H */
