/* harvester.h - nemod's view of the NF cores: attach to harvest channels and sample them. */
#ifndef NEMO_HARVESTER_H
#define NEMO_HARVESTER_H

#include <stdint.h>

#include "nemo/harvest_channel.h"

/* An attached harvest channel (read-only mapping of /dev/shm/nemo-hc-<name>). */
struct hv_channel;

/*
 * Attach to the channel of NF deployment `name`. Returns NULL with errno: ENOENT (no such
 * NF), EPROTO (wrong magic: not a harvest channel, or the writer exited), EPROTONOSUPPORT
 * (a version or layout this harvester does not know), ESRCH (the writer is dead). The
 * error is logged with the path and what was found.
 */
struct hv_channel *hv_channel_open(const char *name);
void hv_channel_close(struct hv_channel *ch);

uint32_t hv_channel_nb_lcores(const struct hv_channel *ch);
uint64_t hv_channel_tsc_hz(const struct hv_channel *ch);
uint64_t hv_channel_generation(const struct hv_channel *ch);

/*
 * Copy record `idx` without tearing and bring it up to the present (a sleeping lcore's
 * sleep so far counts). Returns 0, -ERANGE for a bad index, -EAGAIN if the writer kept it
 * busy, or -ESTALE if the NF exited or restarted since hv_channel_open() (reattach).
 */
int hv_channel_read(struct hv_channel *ch, uint32_t idx, struct hc_lcore_record *out);

/* One core over a window: the figures DESIGN.md defines, from two snapshots. */
struct hv_window {
	uint64_t total;
	uint64_t busy;
	uint64_t idle_poll;
	uint64_t sleep;
	uint64_t spare; /* total - busy */
	double spare_ratio;
	uint64_t rx_pkts;
	uint64_t tx_pkts;
	uint64_t drop_pkts;
};

/* The window between snapshots `a` (older) and `b`. Fails (-EINVAL) if b is older than a. */
int hv_window(const struct hc_lcore_record *a, const struct hc_lcore_record *b,
	      struct hv_window *w);

#endif /* NEMO_HARVESTER_H */
