/* test-crash.c - test packet function: echoes; "BIG" gets 4000 bytes; it can abort mid-batch. */
#include <stdlib.h>
#include <string.h>

#include <nemo/function.h>

static char big[4000];
static unsigned long seen, crash_at; /* NEMO_TEST_CRASH_AT=N: abort on the N-th packet */

int nemo_init(void)
{
	const char *at = getenv("NEMO_TEST_CRASH_AT");

	crash_at = at ? strtoul(at, NULL, 10) : 0;
	return 0;
}

int handle_batch(const struct nemo_packet *pkts, struct nemo_reply *replies, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		/* not on a batch's first packet: mid-batch, with replies written, none published */
		if (crash_at && ++seen >= crash_at && i > 0)
			abort();
		if (pkts[i].len >= 3 && memcmp(pkts[i].data, "BIG", 3) == 0) {
			memset(big, 'x', sizeof(big));
			replies[i].data = big;
			replies[i].len = sizeof(big);
			continue;
		}
		if (pkts[i].len > replies[i].cap)
			continue;
		memcpy(replies[i].data, pkts[i].data, pkts[i].len);
		replies[i].len = pkts[i].len;
	}
	return 0;
}
