/* exec-upper.c - sample persistent exec function: speaks nemo frames on stdin/stdout, upper-cases. */
#include <ctype.h>
#include <stdlib.h>
#include <unistd.h>

#include "nemo/function.h"

static int read_full(void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		ssize_t n = read(0, (char *)buf + got, len - got);

		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int write_frame(uint16_t type, uint32_t status, const void *data, uint32_t len)
{
	struct nemo_frame_hdr hdr = {NEMO_FRAME_MAGIC, type, 0, len, status};

	if (write(1, &hdr, sizeof(hdr)) != sizeof(hdr))
		return -1;
	return len && write(1, data, len) != (ssize_t)len ? -1 : 0;
}

int main(void)
{
	struct nemo_frame_hdr hdr;
	char *buf = NULL;

	if (write_frame(NEMO_FRAME_READY, 0, NULL, 0))
		return 1;
	while (read_full(&hdr, sizeof(hdr)) == 0) {
		if (hdr.magic != NEMO_FRAME_MAGIC || hdr.type != NEMO_FRAME_REQUEST)
			return 2;
		char *grown = realloc(buf, hdr.len ? hdr.len : 1);

		if (!grown || read_full(grown, hdr.len)) {
			free(grown ? grown : buf);
			return 3;
		}
		buf = grown;
		for (uint32_t i = 0; i < hdr.len; i++)
			buf[i] = (char)toupper((unsigned char)buf[i]);
		if (write_frame(NEMO_FRAME_RESPONSE, 0, buf, hdr.len))
			return 4;
	}
	return 0;
}
