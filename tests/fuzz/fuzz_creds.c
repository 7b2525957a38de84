/* fuzz_creds.c - the credentials file (gw_creds_parse) and the Authorization check. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "gw_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gw_creds creds;
	char err[512] = "", header[512];
	const char *why;
	int rc = gw_creds_parse((const char *)data, size, &creds, err, sizeof(err));

	if (rc) {
		FUZZ_ASSERT(rc == -EINVAL && err[0]);
		return 0;
	}
	FUZZ_ASSERT(creds.n >= 0 && creds.n <= GW_MAX_CREDS);
	for (int i = 0; i < creds.n; i++) {
		const struct gw_cred *c = &creds.c[i], *got;
		size_t wl = strnlen(c->whole, sizeof(c->whole));

		FUZZ_ASSERT(wl > 0 && wl < sizeof(c->whole));
		FUZZ_ASSERT(memchr(c->ns, 0, sizeof(c->ns)) && c->ns[0]);
		/* a credential is a whole word of the file, never a cut one */
		{
			const char *at = (const char *)data;
			bool whole_word = false;

			while (!whole_word &&
			       (at = memmem(at, size - (size_t)(at - (const char *)data), c->whole,
					    wl))) {
				size_t end = (size_t)(at - (const char *)data) + wl;

				whole_word = end == size || strchr(" \t\n\r\v\f", data[end]) ||
					     !data[end];
				at++;
			}
			FUZZ_ASSERT(whole_word);
		}
		/* it opens the door as Bearer */
		snprintf(header, sizeof(header), "Bearer %s", c->whole);
		got = gw_creds_check(&creds, header, &why);
		FUZZ_ASSERT(got && !strcmp(got->whole, c->whole));
	}
	/* and what the file does not hold does not */
	FUZZ_ASSERT(!gw_creds_check(&creds, "Bearer \x01not-a-credential-of-this-file", &why));
	return 0;
}
