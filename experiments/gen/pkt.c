/* pkt.c - the Ethernet/IPv4/UDP frame nemo-gen sends, and the per-flow checksum parts. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "gen_internal.h"

#define GEN_SRC_IP0 0x0a000001u /* 10.0.0.1 */
#define GEN_DST_IP  0x0a010001u /* 10.1.0.1 */

void gen_pkt_spec_default(struct gen_pkt_spec *spec, uint16_t frame_len, uint16_t run_id)
{
	static const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x01};
	static const uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x02};

	memset(spec, 0, sizeof(*spec));
	spec->frame_len = frame_len;
	spec->run_id = run_id;
	memcpy(spec->dst_mac, dst, 6);
	memcpy(spec->src_mac, src, 6);
	spec->dst_ip = htonl(GEN_DST_IP);
	spec->dst_port = GEN_UDP_DPORT;
}

/* One's-complement sum of the 16-bit words at p as stored in memory; an odd tail is padded. */
static uint64_t sum_words(const uint8_t *p, size_t len)
{
	uint64_t sum = 0;
	uint16_t w;

	for (; len >= 2; p += 2, len -= 2) {
		memcpy(&w, p, 2);
		sum += w;
	}
	if (len) {
		uint8_t tail[2] = {p[0], 0};

		memcpy(&w, tail, 2);
		sum += w;
	}
	return sum;
}

static uint64_t sum_u32(uint32_t v)
{
	return (v & 0xffff) + (v >> 16);
}

static uint16_t flow_port(uint32_t i)
{
	return htons((uint16_t)(GEN_UDP_SPORT0 + (i & 0xff)));
}

static uint32_t flow_ip(uint32_t i)
{
	return htonl(GEN_SRC_IP0 + (i >> 8));
}

int gen_pkt_flows(const uint8_t *frame, uint16_t frame_len, struct gen_flow *flows, uint32_t n)
{
	uint8_t hdr[GEN_STAMP_OFF];
	uint16_t udp_len = (uint16_t)(frame_len - GEN_L2_HDR - GEN_L3_HDR);
	uint64_t ip_base, udp_base;
	uint8_t pseudo[12];
	uint16_t w;

	if (frame_len < GEN_FRAME_MIN || frame_len > GEN_FRAME_MAX || n < 1 || n > GEN_MAX_FLOWS)
		return -EINVAL;
	/* the sums of everything but the per-flow and per-packet fields */
	memcpy(hdr, frame, sizeof(hdr));
	memset(hdr + GEN_OFF_SRC_IP, 0, 4);
	memset(hdr + GEN_OFF_IP_SUM, 0, 2);
	memset(hdr + GEN_OFF_SPORT, 0, 2);
	memset(hdr + GEN_OFF_UDP_SUM, 0, 2);
	ip_base = sum_words(hdr + GEN_L2_HDR, GEN_L3_HDR);

	memset(pseudo, 0, sizeof(pseudo));
	memcpy(pseudo + 4, frame + GEN_L2_HDR + 16, 4); /* dst IP; src IP is per flow */
	pseudo[9] = 17;					/* IPPROTO_UDP */
	w = htons(udp_len);
	memcpy(pseudo + 10, &w, 2);
	udp_base = sum_words(pseudo, sizeof(pseudo)) +
		   sum_words(hdr + GEN_L2_HDR + GEN_L3_HDR, GEN_L4_HDR) +
		   sum_words(frame + GEN_STAMP_OFF, offsetof(struct gen_stamp, seq)) +
		   sum_words(frame + GEN_STAMP_OFF + sizeof(struct gen_stamp),
			     (size_t)frame_len - GEN_STAMP_OFF - sizeof(struct gen_stamp));

	for (uint32_t i = 0; i < n; i++) {
		struct gen_flow *f = &flows[i];

		f->src_ip = flow_ip(i);
		f->src_port = flow_port(i);
		f->ip_sum = (uint16_t)~gen_csum_fold(ip_base + sum_u32(f->src_ip));
		f->udp_sum = udp_base + sum_u32(f->src_ip) + f->src_port;
	}
	return 0;
}

int gen_pkt_build(const struct gen_pkt_spec *spec, uint8_t *frame)
{
	uint16_t len = spec->frame_len, w;
	uint8_t *ip = frame + GEN_L2_HDR, *udp = ip + GEN_L3_HDR;
	struct gen_stamp stamp = {.magic = GEN_MAGIC, .run_id = spec->run_id};
	struct gen_flow flow0;

	if (len < GEN_FRAME_MIN || len > GEN_FRAME_MAX)
		return -EINVAL;
	memset(frame, 0, len);
	memcpy(frame, spec->dst_mac, 6);
	memcpy(frame + 6, spec->src_mac, 6);
	w = htons(0x0800);
	memcpy(frame + 12, &w, 2);

	ip[0] = 0x45; /* IPv4, 20-byte header */
	w = htons((uint16_t)(len - GEN_L2_HDR));
	memcpy(ip + 2, &w, 2);
	w = htons(0x4000); /* DF: a generator's frames are never meant to be fragmented */
	memcpy(ip + 6, &w, 2);
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 16, &spec->dst_ip, 4);

	w = htons(spec->dst_port);
	memcpy(udp + 2, &w, 2);
	w = htons((uint16_t)(len - GEN_L2_HDR - GEN_L3_HDR));
	memcpy(udp + 4, &w, 2);

	memcpy(frame + GEN_STAMP_OFF, &stamp, sizeof(stamp));
	/* a recognisable filler, so a corrupted copy shows in a capture */
	for (size_t i = GEN_STAMP_OFF + sizeof(stamp); i < len; i++)
		frame[i] = (uint8_t)i;

	gen_pkt_flows(frame, len, &flow0, 1);
	gen_pkt_stamp(frame, &flow0, 0, 0);
	return 0;
}
