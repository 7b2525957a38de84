/* fn_internal.h - the fn module's rings as the lease server (fn_hub.c) sees them. */
#ifndef NF_FN_INTERNAL_H
#define NF_FN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "nemo/fn_ring.h"
#include "nemo/nf_module.h"

/*
 * One ring of one fn module instance (a function on an lcore). The lcore owns the ring's
 * indices; the hub thread owns lease_fd. They meet in two counters: the hub bumps
 * reset_req when a lease ends, the lcore resets the ring and sets reset_done to match, and
 * only then does the hub lease the ring again.
 */
struct nf_fn_port {
	struct fn_ring ring;
	char function[FN_RING_NAME_MAX];
	uint32_t lcore_id;
	uint32_t reset_req;  /* hub writes (atomic) */
	uint32_t reset_done; /* lcore writes (atomic) */
	int lease_fd;	     /* hub only: the lease connection, -1 when free */
	uint64_t leases;     /* hub only: leases granted */
};

/* The lease server (struct nf_fn_hub, created through include/nemo/nf_module.h). */

/* Register a ring (control thread, before nf_fn_hub_start()). 0 or -ENOSPC. */
int nf_fn_hub_add(struct nf_fn_hub *hub, struct nf_fn_port *port);
/* Is the ring leased right now (telemetry; racy by nature)? */
bool nf_fn_port_leased(const struct nf_fn_port *port);

/*
 * Add what fn instance `inst` spent on packets for functions to *cycles (TSC cycles of
 * process() on bursts a rule matched: classifying, copying into rings, waking) and the
 * packets a rule matched to *pkts. The lcore adds the replies' cycles itself. Lcore only.
 */
void nf_fn_work(const void *inst, uint64_t *cycles, uint64_t *pkts);

#endif /* NF_FN_INTERNAL_H */
