/* gen_stamp.h - the latency stamp nemo-gen writes into every frame it sends, and who reads it. */
#ifndef NEMO_GEN_STAMP_H
#define NEMO_GEN_STAMP_H

#include <stdint.h>

/*
 * nemo-gen sends Ethernet / IPv4 (20-byte header) / UDP frames; the UDP payload opens with this
 * stamp. Two readers: nemo-gen itself, which times a frame's round trip when it comes back, and
 * nemo-nf, which times its own part of the trip (the wait in its rx ring, its sleep, the chain
 * and the send: runtime_internal.h, "the NF's own delay") from a sample of the frames.
 *
 * `tsc` is rte_rdtsc() on the sender's core just before the burst is handed to the port. Both
 * readers subtract it from their own rte_rdtsc(), which is meaningful only on the same host
 * with a TSC the kernel keeps in step across cores (constant_tsc and nonstop_tsc, clocksource
 * tsc): nemo-nf therefore only counts a stamp that lies in its past by less than a second.
 *
 * The stamp has no version field: the frame's smallest size leaves no room. A layout change
 * changes GEN_MAGIC, so that a reader of the old layout ignores the new one.
 */
#define GEN_MAGIC     0x4e454d47u /* "NEMG" in the payload's first 4 bytes, host order */
#define GEN_STAMP_OFF 42	  /* Ethernet 14 + IPv4 20 + UDP 8 */

/*
 * Offsets 42/46/48/56 put seq and tsc on 8-byte boundaries of a 64-byte-aligned mbuf, and the
 * stamp ends exactly at byte 64 so that the smallest frame carries it.
 */
struct gen_stamp {
	uint32_t magic;
	uint16_t run_id; /* tells this run's packets from stale ones still queued in the NF */
	uint64_t seq;
	uint64_t tsc; /* rte_rdtsc() at send */
} __attribute__((packed));
_Static_assert(sizeof(struct gen_stamp) == 22, "stamp layout");
_Static_assert(GEN_STAMP_OFF + sizeof(struct gen_stamp) == 64, "the stamp ends at byte 64");

#endif /* NEMO_GEN_STAMP_H */
