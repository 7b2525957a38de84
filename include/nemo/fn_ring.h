/* fn_ring.h - the shared-memory rings between an NF lcore and a packet-triggered function. */
#ifndef NEMO_FN_RING_H
#define NEMO_FN_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One memfd per (function, NF lcore) holds two single-producer single-consumer rings of
 * fixed-size slots: requests (the NF produces, the function's consumer consumes) and replies
 * (the consumer produces, the NF consumes). The memfd is all a consumer needs, with one
 * eventfd the NF writes to wake a parked consumer, so a sandbox can be given its rings as two
 * fds and see nothing else.
 *
 * Indices are free-running uint32_t (slot = index & mask), each on its own cache line with
 * one writer: release stores publish, acquire loads observe. The NF never trusts what the
 * consumer wrote: an index out of range, a reply longer than its slot or naming a request it
 * was not given is counted and the ring reset (fn_ring_reset()).
 *
 * Waking: a consumer with nothing to do sets `sleeping`, fences, looks once more, and only
 * then blocks on the eventfd. The producer, after publishing, fences and reads `sleeping`;
 * Dekker's pattern guarantees one of them sees the other. The producer clears `sleeping`
 * with an exchange, so a parked consumer costs one eventfd write per park, never one per
 * burst; a busy consumer costs none.
 */

#define FN_RING_MAGIC	  0x474e5246u /* "FRNG" little-endian */
#define FN_RING_VERSION	  1
#define FN_RING_LINE	  64
#define FN_RING_SLOT_HDR  32
#define FN_RING_NAME_MAX  48
#define FN_RING_MIN_SLOTS 8
#define FN_RING_MAX_SLOTS 65536
#define FN_RING_MIN_SLOT  128
#define FN_RING_MAX_SLOT  16384

/* Slot flags. */
#define FN_SLOT_F_FRAME	  0x1 /* request: data is the whole Ethernet frame, not the UDP payload */
#define FN_SLOT_F_REPLY	  0x2 /* request: the rule sends replies back; the consumer may answer */
#define FN_SLOT_F_TOO_BIG 0x4 /* reply: the function's answer did not fit; len is its length */

/* The 32 bytes before each slot's data. Addresses and ports in network byte order. */
struct fn_slot {
	uint64_t seq;	/* request: the NF's sequence number; reply: the request's */
	uint32_t len;	/* bytes of data after the header */
	uint16_t flags; /* FN_SLOT_F_* */
	uint16_t rule;	/* index of the fn rule that matched */
	uint32_t src_ip;
	uint32_t dst_ip;
	uint16_t src_port;
	uint16_t dst_port;
	uint8_t proto;
	uint8_t pad[3];
	uint8_t data[];
};

_Static_assert(sizeof(struct fn_slot) == FN_RING_SLOT_HDR, "slot header is 32 bytes");

/* One index on a cache line of its own. */
struct fn_ring_idx {
	uint32_t v;
	uint8_t pad[FN_RING_LINE - sizeof(uint32_t)];
} __attribute__((aligned(FN_RING_LINE)));

/* What the consumer reports about itself (it writes, anyone reads; figures only). */
struct fn_ring_consumer_stats {
	uint64_t batches;
	uint64_t packets;
	uint64_t replies;
	uint64_t errors; /* batches whose handler returned non-zero */
	uint64_t parks;	 /* times it blocked on the eventfd */
	int32_t pid;	 /* of the consumer, as it sees itself (0: none attached) */
	uint32_t pad[5];
} __attribute__((aligned(FN_RING_LINE)));

/* Offset 0 of the memfd. Offsets, never pointers: each side maps it where it likes. */
struct fn_ring_shared {
	/* line 0-1: fixed at creation */
	uint32_t magic; /* FN_RING_MAGIC, written last */
	uint32_t version;
	uint32_t nb_slots;  /* per ring, a power of two */
	uint32_t slot_size; /* bytes per slot, header included, a power of two */
	uint64_t size;	    /* bytes of the whole mapping */
	uint64_t req_off;   /* offset of the request slots */
	uint64_t rep_off;   /* offset of the reply slots */
	uint32_t lcore_id;  /* NF lcore that produces */
	uint32_t flags;	    /* FN_SLOT_F_FRAME when every rule for it passes frames */
	char function[FN_RING_NAME_MAX];
	uint8_t pad0[128 - 96];
	struct fn_ring_idx req_head; /* NF writes */
	struct fn_ring_idx req_tail; /* consumer writes (the NF on reset) */
	struct fn_ring_idx sleeping; /* consumer sets 1 before parking; the NF clears it to wake */
	struct fn_ring_idx rep_head; /* consumer writes */
	struct fn_ring_idx rep_tail; /* NF writes */
	struct fn_ring_idx epoch;    /* NF bumps on each reset */
	struct fn_ring_consumer_stats consumer;
};

_Static_assert(offsetof(struct fn_ring_shared, function) == 48, "ring header layout");
_Static_assert(offsetof(struct fn_ring_shared, req_head) == 128, "ring header layout");
_Static_assert(offsetof(struct fn_ring_shared, consumer) == 128 + 6 * FN_RING_LINE,
	       "ring header layout");
_Static_assert(sizeof(struct fn_ring_shared) == 128 + 7 * FN_RING_LINE, "ring header size");

/* A mapping of one ring memfd, as either side holds it (in its own memory, not shared). */
struct fn_ring {
	struct fn_ring_shared *sh;
	uint8_t *req; /* request slots */
	uint8_t *rep; /* reply slots */
	uint32_t mask;
	uint32_t slot_size;
	uint32_t data_cap; /* slot_size - FN_RING_SLOT_HDR */
	uint32_t nb_slots;
	size_t size;
	int mem_fd;  /* the memfd (-1 once closed) */
	int wake_fd; /* the eventfd that wakes the consumer */
	/* the side's private copies of the indices it writes, and caches of those it reads */
	uint32_t head;	     /* producer: req head; consumer: req tail */
	uint32_t other;	     /* producer: cached req tail; consumer: cached req head */
	uint32_t rep_head;   /* consumer: reply head it writes */
	uint32_t rep_tail;   /* producer: reply tail it writes; consumer: cached */
	uint64_t seq;	     /* producer: next request sequence number */
	uint32_t epoch_seen; /* consumer: the epoch it last saw */
};

/* ---- creating and mapping (packet/fn_ring.c; control path, may log) ---- */

/*
 * Create the rings of `function` on NF lcore `lcore_id`: a sealed-size memfd of
 * `nb_slots` slots of `slot_size` bytes per direction (both powers of two within the
 * FN_RING_* bounds) and a non-blocking eventfd. Returns 0 or -EINVAL (sizes, name),
 * -errno of memfd_create/ftruncate/mmap/eventfd.
 */
int fn_ring_create(struct fn_ring *r, const char *function, uint32_t lcore_id, uint32_t nb_slots,
		   uint32_t slot_size, uint32_t flags);

/*
 * Map rings another process created, from the memfd and eventfd it passed (the fds are
 * kept, and closed by fn_ring_close()). Checks magic, version and that every size and offset
 * lies within the memfd. Returns 0, -EPROTO (not a ring, or a version this build does not
 * know: logged with both numbers), or -errno.
 */
int fn_ring_attach(struct fn_ring *r, int mem_fd, int wake_fd);

/* Unmap and close both fds. Safe on a zeroed or already closed ring. */
void fn_ring_close(struct fn_ring *r);

/*
 * Producer (NF) side: drop whatever the rings hold, as after the consumer died or broke the
 * protocol, and start a new epoch. Only the producer's thread may call it, and no consumer
 * may be attached (a misbehaving one is simply outrun). Returns the requests discarded
 * (handed, never consumed).
 */
uint32_t fn_ring_reset(struct fn_ring *r);

/* ---- the producer (NF lcore): no syscalls except fn_ring_wake(), no locks ---- */

static inline struct fn_slot *fn_ring_req_slot(const struct fn_ring *r, uint32_t idx)
{
	return (struct fn_slot *)(r->req + (size_t)(idx & r->mask) * r->slot_size);
}

static inline struct fn_slot *fn_ring_rep_slot(const struct fn_ring *r, uint32_t idx)
{
	return (struct fn_slot *)(r->rep + (size_t)(idx & r->mask) * r->slot_size);
}

/*
 * Free request slots, up to `want`: refreshes the cached tail only when the cache says
 * fewer than `want`. Returns UINT32_MAX when the consumer's tail is out of range (the ring
 * must be reset).
 */
static inline uint32_t fn_ring_prod_free(struct fn_ring *r, uint32_t want)
{
	uint32_t used = r->head - r->other;

	if (r->nb_slots - used >= want)
		return r->nb_slots - used;
	r->other = __atomic_load_n(&r->sh->req_tail.v, __ATOMIC_ACQUIRE);
	used = r->head - r->other;
	if (used > r->nb_slots)
		return UINT32_MAX;
	return r->nb_slots - used;
}

/* The slot of the n-th request after the last published one (n < fn_ring_prod_free()). */
static inline struct fn_slot *fn_ring_prod_slot(struct fn_ring *r, uint32_t n)
{
	return fn_ring_req_slot(r, r->head + n);
}

/*
 * Publish n filled request slots. Returns true when the consumer is parked and needs
 * fn_ring_wake() (the caller may defer it to rate-limit wake-ups: it stays needed).
 */
static inline bool fn_ring_prod_publish(struct fn_ring *r, uint32_t n)
{
	r->head += n;
	r->seq += n;
	__atomic_store_n(&r->sh->req_head.v, r->head, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(&r->sh->sleeping.v, __ATOMIC_RELAXED) != 0;
}

/*
 * Wake a parked consumer: clear its flag and, if this call cleared it, write the eventfd
 * (the one syscall of the producer; once per park). Returns true if it wrote.
 */
bool fn_ring_wake(struct fn_ring *r);

/* Replies ready for the producer. Returns UINT32_MAX when the consumer's head is out of range. */
static inline uint32_t fn_ring_rep_avail(struct fn_ring *r)
{
	uint32_t n = __atomic_load_n(&r->sh->rep_head.v, __ATOMIC_ACQUIRE) - r->rep_tail;

	return n > r->nb_slots ? UINT32_MAX : n;
}

/* Give n reply slots back to the consumer. */
static inline void fn_ring_rep_release(struct fn_ring *r, uint32_t n)
{
	r->rep_tail += n;
	__atomic_store_n(&r->sh->rep_tail.v, r->rep_tail, __ATOMIC_RELEASE);
}

/* ---- the consumer (a function's host) ---- */

/*
 * Requests waiting. Picks up a reset by the NF first (the epoch changed: the indices are
 * read afresh). Returns UINT32_MAX when the NF's head is out of range.
 */
static inline uint32_t fn_ring_cons_avail(struct fn_ring *r)
{
	uint32_t epoch = __atomic_load_n(&r->sh->epoch.v, __ATOMIC_ACQUIRE), n;

	if (epoch != r->epoch_seen) {
		r->epoch_seen = epoch;
		r->head = __atomic_load_n(&r->sh->req_tail.v, __ATOMIC_ACQUIRE);
		r->rep_head = __atomic_load_n(&r->sh->rep_head.v, __ATOMIC_ACQUIRE);
	}
	r->other = __atomic_load_n(&r->sh->req_head.v, __ATOMIC_ACQUIRE);
	n = r->other - r->head;
	return n > r->nb_slots ? UINT32_MAX : n;
}

/* Release n consumed requests (after the replies to them are published). */
static inline void fn_ring_cons_release(struct fn_ring *r, uint32_t n)
{
	r->head += n;
	__atomic_store_n(&r->sh->req_tail.v, r->head, __ATOMIC_RELEASE);
}

/* Free reply slots. */
static inline uint32_t fn_ring_rep_free(struct fn_ring *r)
{
	uint32_t used;

	r->rep_tail = __atomic_load_n(&r->sh->rep_tail.v, __ATOMIC_ACQUIRE);
	used = r->rep_head - r->rep_tail;
	return used > r->nb_slots ? 0 : r->nb_slots - used;
}

/* Publish n filled reply slots. */
static inline void fn_ring_rep_publish(struct fn_ring *r, uint32_t n)
{
	r->rep_head += n;
	__atomic_store_n(&r->sh->rep_head.v, r->rep_head, __ATOMIC_RELEASE);
}

/*
 * Park until the producer publishes or `timeout_ms` passes (-1: no limit). Returns at once
 * when requests are already waiting. Returns 0, or -errno of poll/read (EINTR included).
 */
int fn_ring_park(struct fn_ring *r, int timeout_ms);

/*
 * ---- leases: how a consumer gets its rings (packet/lease.c client, nf/fn_hub.c server) ----
 *
 * nemo-nf listens on a unix SOCK_SEQPACKET socket (its config's "fn_socket"). A consumer
 * (nemod on behalf of a sandbox; nemo-pktfn for now) sends one fn_lease_req and gets one
 * fn_lease_resp; on success the message carries the ring memfd and the wake eventfd
 * (SCM_RIGHTS, in that order). The connection is the lease: one per ring at a time, and when
 * it closes (the consumer exits or dies, and the kernel closes its fds) the NF resets the
 * ring before it lets another consumer have it.
 */
#define FN_LEASE_MAGIC	 0x534c4e46u /* "FNLS" little-endian */
#define FN_LEASE_VERSION 1
#define FN_LEASE_ANY	 UINT32_MAX /* lcore_id: the first free ring of the function */

enum fn_lease_op {
	FN_LEASE_OP_LEASE = 0, /* the rings of `function`, with their fds */
	FN_LEASE_OP_DESCRIBE =
		1, /* no fds: message lists "function@lcore" per ring, "*" if leased */
};

struct fn_lease_req {
	uint32_t magic;
	uint32_t version;
	uint32_t lcore_id; /* an NF lcore, or FN_LEASE_ANY */
	uint32_t op;	   /* enum fn_lease_op */
	char function[FN_RING_NAME_MAX];
};

struct fn_lease_resp {
	uint32_t magic;
	uint32_t version;
	int32_t status;	   /* 0, or -errno: ENOENT no such ring, EBUSY leased, EAGAIN resetting */
	uint32_t lcore_id; /* of the ring granted */
	char message[192]; /* why not, naming the function and lcore */
};

_Static_assert(sizeof(struct fn_lease_req) == 64, "lease request layout");
_Static_assert(sizeof(struct fn_lease_resp) == 208, "lease response layout");

/*
 * Ask the NF at `socket_path` for the rings of `function` on `lcore_id` (or FN_LEASE_ANY)
 * and map them into `r`. *lease_fd is the connection to keep open for as long as the rings
 * are used (close it after fn_ring_close()). Returns 0, the NF's -errno with its message in
 * err, -EPROTO (a reply this build does not understand), or -errno of the socket calls.
 */
int fn_lease_acquire(const char *socket_path, const char *function, uint32_t lcore_id,
		     struct fn_ring *r, int *lease_fd, char *err, size_t errlen);

/*
 * Which rings the NF at `socket_path` feeds: "echo@1* sensor@1" (function@lcore, "*" when a
 * consumer holds it; "..." when more did not fit) into out. What nemod checks a packet
 * trigger against at deploy. Returns 0, -EPROTO, or -errno of the socket calls (err set).
 */
int fn_lease_describe(const char *socket_path, char *out, size_t len, char *err, size_t errlen);

/*
 * ---- the consumer host (packet/host.c): runs a batch handler over a leased ring ----
 *
 * What runs inside a function's sandbox once nemod wires packet triggers; nemo-pktfn runs it
 * as a plain process for now. Each step takes up to `batch` requests (no more than the reply
 * ring has room for), calls the handler once, publishes the replies and then releases the
 * requests, so the NF can always tie a reply to the request it answers.
 */
struct nemo_packet;
struct nemo_reply;
typedef int (*fn_batch_handler)(const struct nemo_packet *pkts, struct nemo_reply *replies,
				unsigned int n);

#define FN_HOST_MAX_BATCH 256

struct fn_host {
	struct fn_ring *ring;
	fn_batch_handler handler;
	uint32_t batch; /* 1..FN_HOST_MAX_BATCH */
	uint64_t batches;
	uint64_t packets;
	uint64_t replies;
	uint64_t too_big; /* replies longer than a slot, flagged to the NF */
	uint64_t errors;
	uint64_t resets; /* NF resets seen (epoch changes) */
};

/*
 * Serve one batch. Returns the requests handled (0: none waiting, or no reply room), or
 * -EPROTO when the NF's index is out of range (the ring is broken; re-lease it).
 */
int fn_host_step(struct fn_host *h);

#endif /* NEMO_FN_RING_H */
