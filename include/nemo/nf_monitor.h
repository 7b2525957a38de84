/* nf_monitor.h - the flow key the NF modules share, and read access to the monitor's counters. */
#ifndef NEMO_NF_MONITOR_H
#define NEMO_NF_MONITOR_H

#include <stdint.h>

/*
 * An IPv4 5-tuple. Addresses and ports are in network byte order, as on the wire, so a key
 * is built from a header without swapping. For ICMP both ports are 0 (nat uses the echo
 * identifier instead, internally); for other protocols too. The padding must be zero: the
 * whole 16 bytes are hashed and compared.
 */
struct nf_flow_key {
	uint32_t src_ip;
	uint32_t dst_ip;
	uint16_t src_port;
	uint16_t dst_port;
	uint8_t proto;
	uint8_t pad[3];
};

_Static_assert(sizeof(struct nf_flow_key) == 16, "nf_flow_key is hashed as 16 bytes");

/*
 * Read the packet and byte counters of one flow of a monitor instance (from
 * nf_mod_monitor_ops.create). Bytes are frame bytes (pkt_len: Ethernet header to the end of
 * the frame, no FCS). Returns 0, -ENOENT if the flow was never seen (or did not fit in
 * max_flows), -EINVAL for a NULL argument. Not synchronised with the lcore that owns the
 * instance: call it when that lcore is not processing (tests, or after the lcore stopped).
 */
int nf_monitor_flow_counters(void *inst, const struct nf_flow_key *key, uint64_t *pkts,
			     uint64_t *bytes);

/*
 * The counters that are not per flow: frames that are not IPv4 (`other_*`) and IPv4 packets
 * of new flows that found the table full (`overflow_*`), plus the number of flows held.
 * Same synchronisation rule as nf_monitor_flow_counters(). Returns 0 or -EINVAL.
 */
struct nf_monitor_totals {
	uint64_t flows;
	uint64_t other_pkts;
	uint64_t other_bytes;
	uint64_t overflow_pkts;
	uint64_t overflow_bytes;
};
int nf_monitor_totals(void *inst, struct nf_monitor_totals *out);

#endif /* NEMO_NF_MONITOR_H */
