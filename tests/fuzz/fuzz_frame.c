/* fuzz_frame.c - a stream of framed-protocol bytes, read in pieces, through nemo_frame_check(). */
#include <string.h>

#include "fuzz.h"
#include "nemo/frame.h"

/*
 * Input: 4 bytes of payload cap, 1 byte that sizes the reads, then the stream. The reader
 * takes frames the way sandbox.c and the runtime do: read some, check, read the rest.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nemo_frame_hdr hdr;
	uint32_t cap;
	size_t pos = 0, have, step;

	if (size < 5)
		return 0;
	memcpy(&cap, data, sizeof(cap));
	cap %= 1u << 20; /* the buffers a reader would allocate */
	step = 1 + data[4] % 64;
	data += 5;
	size -= 5;
	while (pos < size) {
		long n = 0;

		for (have = 0; have < size - pos;) {
			have += step;
			if (have > size - pos)
				have = size - pos;
			n = nemo_frame_check(data + pos, have, cap, &hdr);
			FUZZ_ASSERT((n == 0) == (have < sizeof(hdr)));
			if (n != 0)
				break;
		}
		if (n <= 0) {
			FUZZ_ASSERT(n == 0 || n == -EPROTO || n == -EMSGSIZE);
			if (n == -EMSGSIZE)
				FUZZ_ASSERT(hdr.magic == NEMO_FRAME_MAGIC && hdr.len > cap);
			return 0;
		}
		FUZZ_ASSERT(hdr.magic == NEMO_FRAME_MAGIC);
		FUZZ_ASSERT(hdr.flags == 0 || (hdr.flags == NEMO_FRAME_F_TOO_LARGE &&
					       hdr.type == NEMO_FRAME_RESPONSE));
		FUZZ_ASSERT(hdr.type >= NEMO_FRAME_INIT && hdr.type <= NEMO_FRAME_CHAIN_END);
		FUZZ_ASSERT(hdr.len <= cap && (size_t)n == sizeof(hdr) + hdr.len);
		if ((size_t)n > size - pos)
			return 0; /* a torn frame: the reader waits for the rest */
		pos += (size_t)n;
	}
	return 0;
}
