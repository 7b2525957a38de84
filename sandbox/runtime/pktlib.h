/* pktlib.h - the packet-mode consumer loop: the C runtime's, and the python shim's through ctypes. */
#ifndef NEMO_SBX_PKTLIB_H
#define NEMO_SBX_PKTLIB_H

#include "nemo/function.h"

/*
 * Map the rings inherited at PKT_RING_FD and PKT_WAKE_FD (packet.h) and say who consumes
 * them (the ring header's consumer.pid). Returns 0 or the -errno of fn_ring_attach()
 * (-EPROTO: not a ring, or a version this build does not know). Once per process.
 */
int nemo_pkt_attach(void);

/*
 * Serve the rings until the instance should end: one handler call per batch of at most
 * `batch` requests while requests wait (packet/host.c, fn_host_step()); with none, poll the
 * ring `spin_us`, then kill what earlier batches left running (as at the end of a call) and
 * park on the eventfd, at most 100 ms, then look whether the NF closed the lease or the host
 * the control socket. Returns the exit status to end with: PKT_EXIT_LEASE, PKT_EXIT_HOST or
 * PKT_EXIT_RING (an index the NF wrote is out of range).
 */
int nemo_pkt_serve(nemo_batch_handler_fn handler, unsigned int batch, unsigned int spin_us);

#endif /* NEMO_SBX_PKTLIB_H */
