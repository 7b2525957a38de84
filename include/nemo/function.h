/* function.h - the ABI for nemo function authors: C handlers and the framed protocol. */
#ifndef NEMO_FUNCTION_H
#define NEMO_FUNCTION_H

#include <stddef.h>
#include <stdint.h>

/*
 * ---- C functions (runtime "c") ----
 *
 * Build a shared object (cc -shared -fPIC) that exports a handler, "handle" unless the spec
 * names another:
 *
 *   #include <nemo/function.h>
 *   int handle(const struct nemo_request *req, struct nemo_response *resp)
 *   {
 *           memcpy(resp->data, req->data, req->len);    // resp->cap >= max_payload_bytes
 *           resp->len = req->len;
 *           return 0;
 *   }
 *
 * The handler returns 0 for success, anything else for a function error: then resp holds a
 * message (or nothing) that the caller sees with status SBX_ERR_FUNCTION. The response may
 * also point resp->data at the function's own memory, valid until the next call. An optional
 * `int nemo_init(void)` is called once when the code is loaded; non-zero fails the init.
 * Requests are served one at a time on one thread; the function may start threads itself.
 * A response longer than max_payload_bytes is an error naming its length. It runs as its
 * function's own unprivileged user in a private read-only root (/usr, its code at
 * /code/<file>), with a writable /tmp and no network. Processes it starts are killed when
 * its call returns. abort() is reported as signal 6.
 */

#define NEMO_FUNCTION_ABI_VERSION 3 /* 2: batch handlers for packet functions; 3: nemo_call */

struct nemo_request {
	const void *data;
	size_t len;
};

struct nemo_response {
	void *data; /* a buffer of `cap` bytes owned by the runtime, or the function's own */
	size_t cap;
	size_t len; /* bytes of response */
};

typedef int (*nemo_handler_fn)(const struct nemo_request *req, struct nemo_response *resp);
typedef int (*nemo_init_fn)(void);

/*
 * ---- calling another function (nemo_call) ----
 *
 * From its handler, while it serves a call, a function may call another function of its own
 * namespace by name (no namespace in the name: a function reaches only its own tenant's):
 *
 *   struct nemo_response out;
 *   int rc = nemo_call("resize", req->data, req->len, &out);
 *   if (rc < 0)         // nemo could not run it: nemo_call_error() says why
 *           ...
 *   else if (rc > 0)    // the callee's own error: out holds its message
 *           ...
 *   else                // out.data, out.len: its response, valid until the next nemo_call
 *
 * The first call to a name leases an instance of it from nemod; later ones go to that
 * instance through shared memory, without nemod or HTTP on the path (include/nemo/chain.h).
 * Each call is an activation of its own, linked to the caller's ("cause"). The callee runs
 * under its own limits (timeout, memory, payload): one that overruns its timeout is killed
 * and the call returns NEMO_CALL_ETIMEOUT; one that crashes, NEMO_CALL_ECRASHED; the next
 * call gets a fresh instance. Calls nest up to NEMO_CHAIN_MAX_DEPTH (8) deep. nemo_call
 * works on the thread that runs the handler, during a call; from other threads it returns
 * NEMO_CALL_ECONTEXT. Declared weak: a function built against this header still loads in an
 * older runtime, where the symbol is NULL.
 */

enum nemo_call_error {
	NEMO_CALL_ENOFUNC = -1,	  /* no such function in the caller's namespace */
	NEMO_CALL_EDENIED = -2,	  /* a name that is not a function name of its own namespace */
	NEMO_CALL_ETIMEOUT = -3,  /* the callee overran its timeout: killed */
	NEMO_CALL_ECRASHED = -4,  /* the callee died during the call */
	NEMO_CALL_ETOOLARGE = -5, /* request or response over the callee's max_payload_bytes */
	NEMO_CALL_EDEPTH = -6,	  /* calls nested deeper than NEMO_CHAIN_MAX_DEPTH */
	NEMO_CALL_EBUSY = -7,	  /* no instance of the callee could be had (limits) */
	NEMO_CALL_ECONTEXT = -8,  /* not on the handler's thread during a call */
	NEMO_CALL_EPROTO = -9,	  /* the platform broke the protocol */
};

int nemo_call(const char *name, const void *req, size_t len, struct nemo_response *resp)
	__attribute__((weak));
/* Why the last nemo_call on this thread failed, in words; "" after a success. */
const char *nemo_call_error(void) __attribute__((weak));

/*
 * ---- packet functions (a `packet` trigger: an NF hands matched packets over, in batches) ----
 *
 * Export a batch handler, "handle_batch" unless the spec names another:
 *
 *   int handle_batch(const struct nemo_packet *pkts, struct nemo_reply *replies, unsigned int n)
 *   {
 *           for (unsigned int i = 0; i < n; i++) {       // echo every datagram
 *                   if (pkts[i].len > replies[i].cap)    // cap is 0 when no reply is allowed
 *                           continue;
 *                   memcpy(replies[i].data, pkts[i].data, pkts[i].len);
 *                   replies[i].len = pkts[i].len;
 *           }
 *           return 0;
 *   }
 *
 * pkts[i].data is the UDP payload or the whole frame (NEMO_PACKET_F_FRAME), valid until the
 * handler returns. replies[i] starts with len 0 (no reply); setting len answers packet i,
 * sent back by the NF as UDP with addresses and ports swapped. replies[i].data is a buffer of
 * `cap` bytes in the reply ring (no copy), or the function may point it at its own memory.
 * A reply longer than `cap` is not sent and is counted, as is one longer than the NF's MTU.
 * One call is one batch: the platform counts batches and packets, not one call per packet.
 * Non-zero from the handler is a function error for the batch; its replies are dropped.
 * The optional `int nemo_init(void)` is called once before the first batch.
 */

#define NEMO_PACKET_F_FRAME 0x1 /* data is the whole Ethernet frame */
#define NEMO_PACKET_F_REPLY 0x2 /* the NF sends a reply to this packet back (cap > 0) */

struct nemo_packet {
	const void *data;
	uint32_t len;
	uint32_t flags;	 /* NEMO_PACKET_F_* */
	uint32_t src_ip; /* IPv4 addresses and ports in network byte order */
	uint32_t dst_ip;
	uint16_t src_port; /* 0 unless TCP or UDP */
	uint16_t dst_port;
	uint8_t proto; /* IP protocol number */
	uint8_t pad;
	uint16_t rule; /* index of the NF rule that matched */
};

struct nemo_reply {
	void *data;
	uint32_t cap;
	uint32_t len;
};

typedef int (*nemo_batch_handler_fn)(const struct nemo_packet *pkts, struct nemo_reply *replies,
				     unsigned int n);

/*
 * ---- the framed protocol (runtime "exec", persistent mode; and the runtime's socket) ----
 *
 * Every message is a 16-byte header followed by `len` payload bytes, in host byte order.
 * A persistent exec function reads frames on stdin and writes frames on stdout:
 *   1. at start, once initialised, it writes   {NEMO_FRAME_READY, len 0};
 *   2. then, for each {NEMO_FRAME_REQUEST, payload} read, it writes one
 *      {NEMO_FRAME_RESPONSE, status 0, payload} or {NEMO_FRAME_RESPONSE, status != 0,
 *      message} for a function error.
 * End of input means shut down. Anything else on stdout breaks the protocol and the instance
 * is killed. stderr goes nowhere.
 */

#define NEMO_FRAME_MAGIC 0x31464d4eu /* "NMF1" little-endian */

enum nemo_frame_type {
	NEMO_FRAME_INIT = 1,	   /* platform -> runtime: load the code (payload: init block) */
	NEMO_FRAME_READY = 2,	   /* function -> platform: code loaded, ready for requests */
	NEMO_FRAME_INIT_ERROR = 3, /* runtime -> platform: the code did not load (payload: why) */
	NEMO_FRAME_REQUEST = 4,	   /* platform -> function: one request */
	NEMO_FRAME_RESPONSE = 5,   /* function -> platform: its response */
	/* nemo_call (chain.h) */
	NEMO_FRAME_CALL_OPEN = 6,   /* function -> platform: lease me an instance (payload: name) */
	NEMO_FRAME_CALL_OPENED = 7, /* platform -> function: struct nemo_chain_opened (+ fds) */
	NEMO_FRAME_CHAIN_SERVE = 8, /* platform -> callee: serve this box (fds; status: depth) */
	NEMO_FRAME_CHAIN_END = 9,   /* platform -> callee: the lease ended, unmap the box */
};

/*
 * RESPONSE from nemo's C runtime: the handler set resp->len over max_payload_bytes; nothing
 * of it is sent, the payload is that length as a uint64_t (checked in full width, never
 * truncated to the frame's 32 bits).
 */
#define NEMO_FRAME_F_TOO_LARGE 0x1

struct nemo_frame_hdr {
	uint32_t magic;	 /* NEMO_FRAME_MAGIC */
	uint16_t type;	 /* enum nemo_frame_type */
	uint16_t flags;	 /* 0, or NEMO_FRAME_F_* */
	uint32_t len;	 /* payload bytes that follow */
	uint32_t status; /* RESPONSE: 0 ok, else function error */
};

_Static_assert(sizeof(struct nemo_frame_hdr) == 16, "frame header is 16 bytes");
_Static_assert(offsetof(struct nemo_frame_hdr, len) == 8, "frame header layout");

#endif /* NEMO_FUNCTION_H */
