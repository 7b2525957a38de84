/* packet.h - a packet-mode instance's contract with its host: fds, argv and exit codes. */
#ifndef NEMO_SBX_PACKET_H
#define NEMO_SBX_PACKET_H

/*
 * A packet-mode instance (sbx_packet_start()) is the runtime started with argv
 * `uid gid max_payload memory_mb packet <batch> <spin_us>`, fd 3 its control socket (INIT,
 * then READY or INIT_ERROR, as any instance; nothing after), fd 4 the seccomp program, and
 * the NF's lease at fixed numbers, everything else closed:
 */
#define PKT_ARG	     "packet"
#define PKT_RING_FD  5 /* the rings' memfd (include/nemo/fn_ring.h) */
#define PKT_WAKE_FD  6 /* the eventfd the NF writes to wake a parked consumer */
#define PKT_LEASE_FD 7 /* the lease connection: the NF resets the ring when it closes */
#define PKT_N_FDS    3

/* Exit statuses of a packet-mode instance that ends on its own (the host names them). */
#define PKT_EXIT_LEASE 20 /* the NF closed the lease (it stopped or took the ring back) */
#define PKT_EXIT_RING  21 /* an index the NF wrote is out of range: the ring is broken */
#define PKT_EXIT_HOST  22 /* the host closed the control socket */

/* The python shim's helper (nemo-sbx-pkt.so, inside the root at /.nemo/). */
#define PKT_SHIM_LIB "/.nemo/nemo-sbx-pkt.so"

#endif /* NEMO_SBX_PACKET_H */
