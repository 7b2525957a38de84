/* test-crash.c - test packet function: echoes, aborts on "CRASH", answers "BIG" with 4000 bytes. */
#include <stdlib.h>
#include <string.h>

#include <nemo/function.h>

static char big[4000];

int handle_batch(const struct nemo_packet *pkts, struct nemo_reply *replies, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		if (pkts[i].len >= 5 && memcmp(pkts[i].data, "CRASH", 5) == 0)
			abort(); /* mid-batch: the replies before it were never published */
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
