/* frame.h - one check of a framed-protocol header (function.h) for every reader of frames. */
#ifndef NEMO_FRAME_H
#define NEMO_FRAME_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nemo/function.h"

/*
 * Look at the first `have` bytes received of a frame whose payload may be at most `cap`
 * bytes. Returns 0 while the header is not all in (read more), the length of the whole
 * frame (header + payload) once it is and is valid, copying it to *hdr; -EPROTO for a wrong
 * magic, type or flags (NEMO_FRAME_F_TOO_LARGE on a RESPONSE is the only flag there is),
 * -EMSGSIZE for a payload over `cap`. A reader reads until it
 * has that many bytes; bytes past them belong to no request and are a protocol error for a
 * peer that must wait for an answer. The length is checked in its full width, before any
 * arithmetic on it. No allocation, no syscall; thread-safe.
 */
static inline long nemo_frame_check(const void *buf, size_t have, uint32_t cap,
				    struct nemo_frame_hdr *hdr)
{
	if (have < sizeof(*hdr))
		return 0;
	memcpy(hdr, buf, sizeof(*hdr));
	if (hdr->magic != NEMO_FRAME_MAGIC || hdr->type < NEMO_FRAME_INIT ||
	    hdr->type > NEMO_FRAME_CHAIN_END)
		return -EPROTO;
	if (hdr->flags &&
	    (hdr->flags != NEMO_FRAME_F_TOO_LARGE || hdr->type != NEMO_FRAME_RESPONSE))
		return -EPROTO;
	if (hdr->len > cap)
		return -EMSGSIZE;
	return (long)(sizeof(*hdr) + (size_t)hdr->len);
}

#endif /* NEMO_FRAME_H */
