/* pcap_malformed.c - writes a pcap of good and malformed packets, and the drops each must cause. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <pcap/pcap.h>

#include "nemo/nf_module.h"
#include "test.h"

#define PCAP_NB_GOOD	 20
#define PCAP_FRAME_LEN	 60 /* Ethernet minimum without FCS */
#define PCAP_UDP_PAYLOAD 18 /* fills a 60-byte frame exactly */
#define PCAP_ETH_LEN	 14
#define PCAP_IP_LEN	 20

/* What the writer does to a good frame, and the drop reason that must follow. */
enum pcap_defect {
	PCAP_TRUNC_ETH_10,
	PCAP_TRUNC_ETH_13,
	PCAP_TRUNC_IP,
	PCAP_IHL_3,
	PCAP_IHL_15,
	PCAP_TOTLEN_BIG,
	PCAP_TOTLEN_SMALL,
	PCAP_TRUNC_UDP,
	PCAP_FRAG_MF,
	PCAP_FRAG_OFFSET,
	PCAP_DEFECTS,
};

static const enum nf_drop_reason pcap_defect_reason[PCAP_DEFECTS] = {
	[PCAP_TRUNC_ETH_10] = NF_DROP_TRUNC_ETH, [PCAP_TRUNC_ETH_13] = NF_DROP_TRUNC_ETH,
	[PCAP_TRUNC_IP] = NF_DROP_TRUNC_IP,	 [PCAP_IHL_3] = NF_DROP_BAD_IHL,
	[PCAP_IHL_15] = NF_DROP_BAD_IHL,	 [PCAP_TOTLEN_BIG] = NF_DROP_BAD_LEN,
	[PCAP_TOTLEN_SMALL] = NF_DROP_BAD_LEN,	 [PCAP_TRUNC_UDP] = NF_DROP_BAD_LEN,
	[PCAP_FRAG_MF] = NF_DROP_FRAGMENT,	 [PCAP_FRAG_OFFSET] = NF_DROP_FRAGMENT,
};

static uint32_t pcap_sum(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t pcap_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void pcap_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void pcap_ip_csum(uint8_t *ip)
{
	size_t ihl = (size_t)(ip[0] & 0xf) * 4;

	pcap_put16(ip + 10, 0);
	/* a defective IHL still gets a checksum over what is there: only the defect is wrong */
	pcap_put16(ip + 10, pcap_fold(pcap_sum(ip, ihl < PCAP_IP_LEN ? ihl : PCAP_IP_LEN, 0)));
}

/* A good 60-byte UDP frame, 10.0.0.1:(1000+seq) -> 10.0.1.1:53, checksums correct. */
static size_t pcap_build_udp(uint8_t *f, unsigned int seq)
{
	static const uint8_t macs[12] = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
	uint8_t *ip = f + PCAP_ETH_LEN, *udp = ip + PCAP_IP_LEN;
	uint16_t udp_len = 8 + PCAP_UDP_PAYLOAD;
	uint32_t sum;

	memset(f, 0, PCAP_FRAME_LEN);
	memcpy(f, macs, sizeof(macs));
	pcap_put16(f + 12, 0x0800);
	ip[0] = 0x45;
	pcap_put16(ip + 2, PCAP_IP_LEN + udp_len);
	pcap_put16(ip + 4, (uint16_t)seq);
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, (const uint8_t[]){10, 0, 0, 1}, 4);
	memcpy(ip + 16, (const uint8_t[]){10, 0, 1, 1}, 4);
	pcap_ip_csum(ip);
	pcap_put16(udp, (uint16_t)(1000 + seq));
	pcap_put16(udp + 2, 53);
	pcap_put16(udp + 4, udp_len);
	for (unsigned int i = 0; i < PCAP_UDP_PAYLOAD; i++)
		udp[8 + i] = (uint8_t)(seq + i);
	/* pseudo header: addresses, protocol, UDP length */
	sum = pcap_sum(ip + 12, 8, 17 + udp_len);
	sum = pcap_fold(pcap_sum(udp, udp_len, sum));
	pcap_put16(udp + 6, sum ? (uint16_t)sum : 0xffff);
	return PCAP_FRAME_LEN;
}

static size_t pcap_build_defect(uint8_t *f, enum pcap_defect d, unsigned int seq)
{
	uint8_t *ip = f + PCAP_ETH_LEN;
	size_t len = pcap_build_udp(f, seq);

	switch (d) {
	case PCAP_TRUNC_ETH_10:
		return 10;
	case PCAP_TRUNC_ETH_13:
		return 13;
	case PCAP_TRUNC_IP:
		return PCAP_ETH_LEN + 12;
	case PCAP_IHL_3:
		ip[0] = 0x43;
		break;
	case PCAP_IHL_15:
		/* 60 header bytes claimed, 46 in the frame */
		ip[0] = 0x4f;
		break;
	case PCAP_TOTLEN_BIG:
		pcap_put16(ip + 2, 1000);
		break;
	case PCAP_TOTLEN_SMALL:
		pcap_put16(ip + 2, 16);
		break;
	case PCAP_TRUNC_UDP:
		/* the frame stays 60 bytes: the rest is Ethernet padding, not UDP */
		pcap_put16(ip + 2, PCAP_IP_LEN + 4);
		break;
	case PCAP_FRAG_MF:
		pcap_put16(ip + 6, 0x2000);
		break;
	case PCAP_FRAG_OFFSET:
		pcap_put16(ip + 6, 16); /* 128 bytes in, last fragment */
		break;
	default:
		break;
	}
	pcap_ip_csum(ip);
	return len;
}

static void pcap_write(pcap_dumper_t *dump, const uint8_t *f, size_t len, unsigned int seq)
{
	struct pcap_pkthdr h = {
		.ts = {.tv_sec = 1700000000 + seq / 1000, .tv_usec = (seq % 1000) * 1000},
		.caplen = (bpf_u_int32)len,
		.len = (bpf_u_int32)len,
	};

	pcap_dump((u_char *)dump, &h, f);
}

int nemo_test_write_malformed_pcap(const char *path, unsigned int *nb_good,
				   unsigned int expected_drops[])
{
	pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
	pcap_dumper_t *dump;
	unsigned int seq = 0, defect = 0;
	uint8_t f[128];

	if (!p)
		return -ENOMEM;
	dump = pcap_dump_open(p, path);
	if (!dump) {
		fprintf(stderr, "nemo-tests: pcap_dump_open %s: %s\n", path, pcap_geterr(p));
		pcap_close(p);
		return -EIO;
	}
	memset(expected_drops, 0, NF_DROP_REASONS * sizeof(expected_drops[0]));
	*nb_good = 0;
	/* good and bad interleaved, so a validator that stops at the first bad one shows */
	for (unsigned int i = 0; i < PCAP_NB_GOOD; i++) {
		pcap_write(dump, f, pcap_build_udp(f, seq), seq);
		seq++;
		(*nb_good)++;
		if (i % 2 == 1 && defect < PCAP_DEFECTS) {
			pcap_write(dump, f, pcap_build_defect(f, defect, seq), seq);
			expected_drops[pcap_defect_reason[defect]]++;
			seq++;
			defect++;
		}
	}
	if (pcap_dump_flush(dump)) {
		fprintf(stderr, "nemo-tests: writing %s: %s\n", path, pcap_geterr(p));
		pcap_dump_close(dump);
		pcap_close(p);
		return -EIO;
	}
	pcap_dump_close(dump);
	pcap_close(p);
	return 0;
}
