/* chain.h - the shared-memory mailbox between a calling function and the instance it calls. */
#ifndef NEMO_CHAIN_H
#define NEMO_CHAIN_H

#include <stddef.h>
#include <stdint.h>

/*
 * nemo_call(name, payload) (include/nemo/function.h) from a function's handler reaches an
 * instance of `name` without nemod on the path. The first call asks nemod, on the runtime's
 * control socket, for a lease (NEMO_FRAME_CALL_OPEN): nemod checks the name against the
 * caller's namespace, takes an instance of the callee out of its pool, makes this mailbox in
 * a memfd with two eventfds, gives the callee its three fds (NEMO_FRAME_CHAIN_SERVE) and the
 * caller the same three (NEMO_FRAME_CALL_OPENED). From then on a call is: the caller writes
 * the request and bumps req_seq, writes the callee's eventfd; the callee runs the handler,
 * writes the reply and bumps rep_seq, writes the caller's eventfd. Two wake-ups a call, no
 * copy through nemod, no HTTP.
 *
 * The lease belongs to the calling instance and outlives its call, so a warm chain costs
 * nothing to set up; nemod ends it when the caller's instance goes, when the callee dies or
 * overruns its timeout (it kills it), or when it has been idle for a while. Ending is a
 * compare-and-swap on `state`: nemod takes an IDLE box to CLOSED, the caller an IDLE box to
 * CALLING, so nemod never closes a box with a call in flight except by killing the callee.
 * A caller that finds CLOSED asks for a lease again.
 *
 * Each side distrusts the other: lengths are checked against the capacities fixed at
 * creation, and nemod checks every record it reads. The caller appends one record per call
 * to `log` (its own figures and the callee's run time); nemod reads them after the top-level
 * call and keeps each as an activation linked to its caller's.
 */

#define NEMO_CHAIN_MAGIC     0x4e484343u /* "CCHN" little-endian */
#define NEMO_CHAIN_VERSION   1
#define NEMO_CHAIN_LOG_SLOTS 64 /* records between two reads by nemod; more are counted lost */
#define NEMO_CHAIN_MAX_DEPTH 8	/* a -> b -> ... : how deep calls nest */
#define NEMO_CHAIN_NAME_MAX  64

enum nemo_chain_state {
	NEMO_CHAIN_IDLE = 0,
	NEMO_CHAIN_CALLING = 1, /* the caller's request is in; rep_seq will reach req_seq */
	NEMO_CHAIN_CLOSED = 2,	/* nemod ended the lease: ask for another */
};

/* rep_flags */
#define NEMO_CHAIN_F_TOO_LARGE 0x1 /* the reply did not fit: rep_len is its length */

/* One call, as the caller saw it. */
struct nemo_chain_rec {
	uint64_t seq;	     /* req_seq of the call */
	uint64_t parent_seq; /* the call the caller was serving from its own box (0: a top call) */
	uint64_t start_ns;   /* CLOCK_REALTIME when it was made */
	uint64_t wait_ns;    /* request written to reply read, as the caller waited */
	uint64_t run_ns;     /* the handler's own time, as the callee measured it */
	int32_t status;	     /* NEMO_CALL_* or the callee's non-zero return */
	uint32_t req_len;
	uint32_t rep_len;
	uint32_t pad;
};

_Static_assert(sizeof(struct nemo_chain_rec) == 56, "chain record layout");

struct nemo_chain_line {
	uint64_t v;
	uint8_t pad[56];
} __attribute__((aligned(64)));

/* Offset 0 of the memfd: offsets, never pointers. */
struct nemo_chain_box {
	/* line 0-1: fixed by nemod at creation */
	uint32_t magic;
	uint32_t version;
	uint64_t size;	  /* of the whole mapping */
	uint64_t req_off; /* request bytes: req_cap of them */
	uint64_t rep_off; /* reply bytes: rep_cap */
	uint64_t log_off; /* NEMO_CHAIN_LOG_SLOTS records */
	uint32_t req_cap; /* the callee's max_payload_bytes */
	uint32_t rep_cap;
	uint32_t timeout_ms; /* the callee's */
	uint32_t depth;	     /* of the callee: 1 for a top-level caller's callee */
	char callee[NEMO_CHAIN_NAME_MAX];
	uint8_t pad0[128 - 120];
	/* line 2: state (caller and nemod, compare-and-swap) */
	struct nemo_chain_line state;
	/* line 3: the caller's request */
	uint64_t req_seq;
	uint64_t call_start_ns; /* CLOCK_MONOTONIC, for nemod's timeout watch */
	uint32_t req_len;
	uint8_t pad3[44];
	/* line 4: the callee's reply */
	uint64_t rep_seq;
	uint64_t run_ns;
	uint32_t rep_len;
	int32_t rep_status; /* the handler's return */
	uint32_t rep_flags; /* NEMO_CHAIN_F_* */
	int32_t callee_pid; /* as the callee sees itself, once attached */
	uint8_t pad4[32];
	/* line 5: the log (head: the caller; tail and lost: nemod) */
	uint64_t log_head;
	uint64_t log_tail;
	uint64_t log_lost;
	uint8_t pad5[40];
};

_Static_assert(offsetof(struct nemo_chain_box, state) == 128, "chain box layout");
_Static_assert(offsetof(struct nemo_chain_box, req_seq) == 192, "chain box layout");
_Static_assert(offsetof(struct nemo_chain_box, rep_seq) == 256, "chain box layout");
_Static_assert(offsetof(struct nemo_chain_box, log_head) == 320, "chain box layout");
_Static_assert(sizeof(struct nemo_chain_box) == 384, "chain box size");

/* The fds that go with CHAIN_SERVE and CALL_OPENED, in this order. */
enum {
	NEMO_CHAIN_FD_MEM = 0,
	NEMO_CHAIN_FD_CALLEE = 1,
	NEMO_CHAIN_FD_CALLER = 2,
	NEMO_CHAIN_FDS
};

/* The payload of CALL_OPENED: the outcome, and why in words when it failed. */
struct nemo_chain_opened {
	int32_t status; /* 0 (fds attached), or a NEMO_CALL_* error */
	uint32_t pad;
	char message[248];
};

_Static_assert(sizeof(struct nemo_chain_opened) == 256, "chain open answer layout");

#endif /* NEMO_CHAIN_H */
