/* harvest_channel.h - the shared-memory contract between nemo-nf (writer) and the harvester. */
#ifndef NEMO_HARVEST_CHANNEL_H
#define NEMO_HARVEST_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

/*
 * One POSIX shm object per NF deployment, /dev/shm/nemo-hc-<name>. It holds a header and one
 * record per NF lcore. Each record is written by its lcore only, under a sequence counter:
 * the writer makes `seq` odd, stores the fields, then makes it even again. A reader copies
 * the record and retries while `seq` was odd or changed, so it never sees a torn record.
 *
 * All cycle figures are TSC cycles since the record's `start_tsc`; they only grow. A reader
 * takes two snapshots and subtracts them to get a window (DESIGN.md "Definitions"):
 *   total = busy + idle_poll + sleep (+ at most one loop iteration in flight)
 *   spare = total - busy
 * `fn_cycles` is a part of `busy`: what the lcore spent on packets for functions (line 2).
 * While state is HC_STATE_SLEEPING the lcore is not updating its record; a reader that
 * wants the sleep so far adds the time since `now_tsc` to `sleep` and to `total`, but no
 * further than `max_sleep_ns` past `state_since_tsc`: no sleep lasts longer, and an lcore
 * still "asleep" after that has died in its sleep, which is no spare of anyone's
 * (hc_record_extrapolate() does this).
 *
 * One line of each record goes the other way: a harvester whose sandboxes run on the core may
 * ask the lcore to sleep at least `sleep_floor_ns` at a time, until `sleep_floor_until_tsc`.
 * Every wake-up costs the sandboxes the core's timer exit, two context switches and their
 * caches (15-20 us here), so 20 us sleeps leave them half the spare and 300 us sleeps 0.93-0.95 of
 * it; with nothing harvesting, short sleeps cost nobody. The lcore caps the floor at its own
 * max_sleep_ns (the no-loss bound), and the lease lapses by itself if the harvester dies.
 *
 * Restart: nemo-nf creates the object anew at start and sets `generation` to its start
 * time; a harvester that sees a different generation, a dead writer_pid, or magic zeroed at
 * exit must drop its old baseline and start again.
 */

#define HC_MAGIC	0x314843304f4d454eull /* "NEMO0HC1" little-endian */
#define HC_VERSION	3u		      /* 3: line 7, the harvester's sleep floor */
#define HC_CACHE_LINE	64
#define HC_MAX_LCORES	128
#define HC_NAME_MAX	32
#define HC_IDLE_BUCKETS 16 /* idle-period histogram: bucket i holds [2^i, 2^(i+1)) us; 0: < 2 us */
#define HC_DROP_REASONS 16 /* room for enum nf_drop_reason, which is append-only */
#define HC_SHM_PREFIX	"nemo-hc-"

enum hc_lcore_state {
	HC_STATE_BUSY = 0,	/* last iteration moved packets */
	HC_STATE_IDLE_POLL = 1, /* polling, nothing received */
	HC_STATE_SLEEPING = 2,	/* yielding the core (timed sleep or rx-interrupt wait) */
	HC_STATE_STOPPED = 3,	/* the lcore left its loop */
};

enum hc_idle_policy {
	HC_IDLE_POLL = 0,
	HC_IDLE_SLEEP = 1,
	HC_IDLE_INTERRUPT = 2,
};

enum hc_sched_policy {
	HC_SCHED_OTHER = 0,
	HC_SCHED_FIFO = 1,
};

struct hc_header {
	uint64_t magic;	      /* HC_MAGIC once the object is complete; 0 after a clean exit */
	uint32_t version;     /* HC_VERSION */
	uint32_t header_size; /* sizeof(struct hc_header) */
	uint32_t record_size; /* sizeof(struct hc_lcore_record) */
	uint32_t nb_records;  /* records that follow the header */
	uint64_t tsc_hz;      /* TSC frequency, to turn cycles into time */
	uint64_t generation;  /* CLOCK_REALTIME ns at the writer's start: changes on restart */
	int32_t writer_pid;
	uint32_t publish_period_us; /* the writer refreshes every record at least this often */
	char name[HC_NAME_MAX];	    /* NF deployment name */
	uint8_t pad[HC_CACHE_LINE - 24];
} __attribute__((aligned(HC_CACHE_LINE)));

struct hc_lcore_record {
	/* line 0: identity and the sequence counter */
	uint64_t seq;		  /* odd while the writer is updating */
	uint32_t lcore_id;	  /* DPDK lcore id */
	uint32_t cpu;		  /* the CPU the lcore is pinned to */
	uint32_t idle_policy;	  /* enum hc_idle_policy */
	uint32_t sched_policy;	  /* enum hc_sched_policy */
	int32_t sched_prio;	  /* SCHED_FIFO priority, or nice for SCHED_OTHER */
	uint32_t state;		  /* enum hc_lcore_state */
	uint64_t start_tsc;	  /* TSC when the lcore entered its loop */
	uint64_t now_tsc;	  /* TSC of this snapshot */
	uint64_t state_since_tsc; /* TSC when `state` began */
	uint64_t max_sleep_ns;	  /* the bound on one sleep or rx-interrupt wait (README) */
	uint8_t pad0[HC_CACHE_LINE - 64];
	/* line 1: cycle accounting, cumulative since start_tsc */
	uint64_t total_cycles;
	uint64_t busy_cycles;
	uint64_t idle_poll_cycles;
	uint64_t sleep_cycles;
	uint64_t iterations;
	uint64_t busy_iterations;
	uint64_t sleeps;	/* times the lcore yielded */
	uint64_t wakeups_early; /* rx-interrupt wake-ups (interrupt policy) */
	/* line 2: packets */
	uint64_t rx_pkts;
	uint64_t tx_pkts;
	uint64_t drop_pkts; /* the sum of drops[] */
	uint64_t rx_bursts;
	int32_t tid; /* the lcore thread's Linux tid, for perf events and /proc (0 until it runs) */
	uint32_t pad2a;
	/*
	 * The fn module's share of busy: cycles spent matching packets to functions, copying them
	 * into their rings, and building and sending the replies; and the received packets a rule
	 * gave to a function (handed, or dropped or passed on a full ring). Their rx and
	 * validation stay in busy as the NF's own work. Added to version 3 in what was padding, so
	 * no new version: a writer that predates them leaves both 0, which reads as no packets
	 * for functions, and a reader that predates them never looks.
	 */
	uint64_t fn_cycles;
	uint64_t fn_pkts;
	uint8_t pad2[HC_CACHE_LINE - 56];
	/* lines 3-4: drops by reason (enum nf_drop_reason) */
	uint64_t drops[HC_DROP_REASONS];
	/* lines 5-6: idle-period lengths seen (from the end of one busy iteration to the next) */
	uint64_t idle_hist[HC_IDLE_BUCKETS];
	/* line 7: written by the harvester (outside the seqlock), read by the lcore per sleep */
	uint64_t sleep_floor_ns;	/* sleep at least this long... */
	uint64_t sleep_floor_until_tsc; /* ...until this TSC: 0 or past = no floor */
	uint8_t pad7[HC_CACHE_LINE - 16];
} __attribute__((aligned(HC_CACHE_LINE)));

_Static_assert(sizeof(struct hc_header) == 2 * HC_CACHE_LINE, "hc_header layout");
_Static_assert(sizeof(struct hc_lcore_record) == 8 * HC_CACHE_LINE, "hc_lcore_record layout");
_Static_assert(offsetof(struct hc_lcore_record, total_cycles) == HC_CACHE_LINE, "line 1");
_Static_assert(offsetof(struct hc_lcore_record, rx_pkts) == 2 * HC_CACHE_LINE, "line 2");
_Static_assert(offsetof(struct hc_lcore_record, fn_cycles) == 2 * HC_CACHE_LINE + 40, "line 2");
_Static_assert(offsetof(struct hc_lcore_record, drops) == 3 * HC_CACHE_LINE, "line 3");
_Static_assert(offsetof(struct hc_lcore_record, idle_hist) == 5 * HC_CACHE_LINE, "line 5");
_Static_assert(offsetof(struct hc_lcore_record, sleep_floor_ns) == 7 * HC_CACHE_LINE, "line 7");

/* The record array starts right after the header. */
static inline struct hc_lcore_record *hc_records(struct hc_header *h)
{
	return (struct hc_lcore_record *)((char *)h + h->header_size);
}

static inline size_t hc_shm_size(uint32_t nb_records)
{
	return sizeof(struct hc_header) + (size_t)nb_records * sizeof(struct hc_lcore_record);
}

/* Writer side: bracket every update of a record. Single writer per record. */
static inline void hc_write_begin(struct hc_lcore_record *r)
{
	__atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void hc_write_end(struct hc_lcore_record *r)
{
	__atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
}

/*
 * Reader side: copy record `src` into `dst` without tearing. Returns 0, or -EAGAIN if the
 * writer kept it busy for `max_tries` attempts (the caller samples again later).
 */
static inline int hc_read_record(const struct hc_lcore_record *src, struct hc_lcore_record *dst,
				 unsigned int max_tries)
{
	for (unsigned int i = 0; i < max_tries; i++) {
		uint64_t s1 = __atomic_load_n(&src->seq, __ATOMIC_ACQUIRE);

		if (s1 & 1)
			continue;
		__builtin_memcpy(dst, (const void *)src, sizeof(*dst));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&src->seq, __ATOMIC_RELAXED) == s1)
			return 0;
	}
	return -11; /* -EAGAIN, without pulling in errno.h */
}

/*
 * Bring a copied record up to `now_tsc`: a lcore that is sleeping does not refresh its
 * record, so credit the time since it went to sleep as sleep (and total), up to the end of
 * its longest sleep (max_sleep_ns at `tsc_hz`).
 */
static inline void hc_record_extrapolate(struct hc_lcore_record *r, uint64_t now_tsc,
					 uint64_t tsc_hz)
{
	/* whatever the record says, in range: at most a minute of sleep, the sum saturated */
	uint64_t max_ns = r->max_sleep_ns < 60000000000ull ? r->max_sleep_ns : 60000000000ull;
	double span = (double)max_ns * (double)tsc_hz / 1e9;
	uint64_t cycles = span < (double)UINT64_MAX ? (uint64_t)span : UINT64_MAX;
	uint64_t woken_by =
		r->state_since_tsc > UINT64_MAX - cycles ? UINT64_MAX : r->state_since_tsc + cycles;

	if (r->state != HC_STATE_SLEEPING)
		return;
	if (now_tsc > woken_by)
		now_tsc = woken_by;
	if (now_tsc > r->now_tsc) {
		r->sleep_cycles += now_tsc - r->now_tsc;
		r->total_cycles += now_tsc - r->now_tsc;
		r->now_tsc = now_tsc;
	}
}

/*
 * Lcore side: the sleep floor in force at `now_tsc` (0: none), capped at `max_sleep_ns`.
 * Two plain loads; no syscall.
 */
static inline uint64_t hc_sleep_floor(const struct hc_lcore_record *r, uint64_t now_tsc,
				      uint64_t max_sleep_ns)
{
	uint64_t until = __atomic_load_n(&r->sleep_floor_until_tsc, __ATOMIC_ACQUIRE);
	uint64_t ns = __atomic_load_n(&r->sleep_floor_ns, __ATOMIC_RELAXED);

	if (now_tsc >= until)
		return 0;
	return ns < max_sleep_ns ? ns : max_sleep_ns;
}

/* Harvester side: ask for sleeps of at least `ns` until `until_tsc` (0: withdraw). */
static inline void hc_set_sleep_floor(struct hc_lcore_record *r, uint64_t ns, uint64_t until_tsc)
{
	__atomic_store_n(&r->sleep_floor_ns, ns, __ATOMIC_RELAXED);
	__atomic_store_n(&r->sleep_floor_until_tsc, until_tsc, __ATOMIC_RELEASE);
}

#endif /* NEMO_HARVEST_CHANNEL_H */
