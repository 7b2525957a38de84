/* gen_internal.h - nemo-gen's parts: rate profiles, latency histogram, packets, options, report. */
#ifndef NEMO_GEN_INTERNAL_H
#define NEMO_GEN_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "nemo/gen_stamp.h"

/*
 * Everything except engine.c and main.c is plain C without DPDK, so the unit tests can
 * exercise profiles, the histogram and the packet checksums without an EAL.
 */

/* ---- rate profiles (profile.c) ---- */

enum gen_profile_kind {
	GEN_PROFILE_CONSTANT = 0,
	GEN_PROFILE_ON_OFF = 1,
	GEN_PROFILE_STEPS = 2,
	GEN_PROFILE_TRACE = 3,
};

/* How a trace is read between two samples. */
enum gen_interp {
	GEN_INTERP_STEP = 0,   /* a sample's rate holds until the next sample */
	GEN_INTERP_LINEAR = 1, /* the rate ramps linearly from one sample to the next */
};

/* One breakpoint: the rate `pps` starts at `t_s` (seconds from the start of the run). */
struct gen_point {
	double t_s;
	double pps;
};

/*
 * A target rate as a function of time. Pacing needs the packet count due by time t (the
 * integral of the rate), so each profile is a chain of segments whose integral is exact.
 */
struct gen_profile {
	enum gen_profile_kind kind;
	enum gen_interp interp;
	double rate_pps; /* constant: the rate; on_off: the rate while on */
	double on_s;
	double off_s;
	struct gen_point *points; /* steps: step starts within one cycle; trace: samples */
	double *points_pkts;	  /* packets due from 0 to points[i].t_s */
	size_t n_points;
	double cycle_s;	   /* steps: the length of one pass through the steps */
	double cycle_pkts; /* steps: the packets of one pass */
};

/*
 * [t0_s, t1_s): within it, the rate at t is rate0 + slope * (t - t0_s) and the packets due
 * by t are pkts0 + the integral of that rate from t0_s. t1_s may be INFINITY.
 */
struct gen_segment {
	double t0_s;
	double t1_s;
	double pkts0;
	double rate0;
	double slope;
};

/* A rate in packets/s: a finite number with an optional k, M or G suffix. 0 or -EINVAL. */
int gen_parse_rate(const char *s, double *out);

void gen_profile_constant(struct gen_profile *p, double pps);
void gen_profile_on_off(struct gen_profile *p, double peak_pps, double on_s, double off_s);

/*
 * Parse "PPS:SECONDS,PPS:SECONDS,..." (PPS as gen_parse_rate() reads it) into a steps profile
 * that repeats after its last step.
 * Returns 0, -EINVAL with a message in err naming the bad element, or -ENOMEM.
 */
int gen_profile_parse_steps(struct gen_profile *p, const char *spec, char *err, size_t errlen);

/*
 * Read a trace of `time_s,pps` lines from `in` (named `name` in messages). Blank lines,
 * lines starting with '#' and a first line "time_s,pps" are skipped; times must increase
 * and rates be >= 0. Before the first sample the rate is 0; the last sample's rate holds
 * after it. Returns 0, -EINVAL with "NAME:LINE: ..." in err, or -ENOMEM.
 */
int gen_profile_read_trace(struct gen_profile *p, FILE *in, const char *name,
			   enum gen_interp interp, char *err, size_t errlen);
/* Open `path` and read it as above. Returns gen_profile_read_trace()'s codes or -errno. */
int gen_profile_load_trace(struct gen_profile *p, const char *path, enum gen_interp interp,
			   char *err, size_t errlen);

void gen_profile_free(struct gen_profile *p);

/* The segment that holds t_s >= 0. Precondition: the profile was built by one of the above. */
void gen_profile_segment(const struct gen_profile *p, double t_s, struct gen_segment *seg);
/* The target rate at t_s, in packets per second. */
double gen_profile_rate(const struct gen_profile *p, double t_s);
/* The packets due from 0 to t_s (the integral of the rate). */
double gen_profile_packets(const struct gen_profile *p, double t_s);
/* The length the profile implies when --duration is absent (steps, trace), else 0. */
double gen_profile_natural_duration(const struct gen_profile *p);
/* A short description ("constant 1000000 pps") for logs and the summary. */
void gen_profile_describe(const struct gen_profile *p, char *buf, size_t len);

/* Packets due by t_s within the segment. */
static inline double gen_segment_packets(const struct gen_segment *seg, double t_s)
{
	double dt = t_s - seg->t0_s;

	return seg->pkts0 + dt * (seg->rate0 + 0.5 * seg->slope * dt);
}

/* ---- latency histogram (hist.c) ---- */

/*
 * Log-linear, HDR-style: values below 2^GEN_HIST_SUB_BITS ns are exact; above, each power
 * of two is split into 2^(GEN_HIST_SUB_BITS-1) equal buckets, so a bucket is at most 1/128
 * of its value wide and the reported midpoint is within 0.4 %. Values of 2^30 ns (~1.07 s)
 * and more share the top bucket; max_ns stays exact.
 */
#define GEN_HIST_SUB_BITS 8
#define GEN_HIST_MAX_BITS 30
#define GEN_HIST_HALF	  (1u << (GEN_HIST_SUB_BITS - 1))
#define GEN_HIST_BUCKETS  ((GEN_HIST_MAX_BITS - GEN_HIST_SUB_BITS + 2) * GEN_HIST_HALF)

struct gen_hist {
	uint64_t count;
	uint64_t min_ns;
	uint64_t max_ns;
	uint64_t sum_ns;
	uint32_t lo; /* lowest and highest bucket touched: merge and reset walk only these */
	uint32_t hi;
	uint64_t buckets[GEN_HIST_BUCKETS];
};

void gen_hist_reset(struct gen_hist *h);
/* dst += src. */
void gen_hist_merge(struct gen_hist *dst, const struct gen_hist *src);
/*
 * dst -= src, where every value in src was also recorded in dst (a part taken out of its
 * whole). min_ns and max_ns stay dst's, bounds that still hold.
 */
void gen_hist_subtract(struct gen_hist *dst, const struct gen_hist *src);
/* The value at percentile pct (0 < pct <= 100) in ns, nearest rank; 0 if the histogram is empty. */
uint64_t gen_hist_percentile(const struct gen_hist *h, double pct);
/* Bucket bounds, for tests and for reasoning about precision. */
void gen_hist_bucket_bounds(uint32_t idx, uint64_t *lo_ns, uint64_t *hi_ns);

static inline uint32_t gen_hist_index(uint64_t ns)
{
	unsigned int msb, shift;

	if (ns >= (1ull << GEN_HIST_MAX_BITS))
		ns = (1ull << GEN_HIST_MAX_BITS) - 1;
	if (ns < (1ull << GEN_HIST_SUB_BITS))
		return (uint32_t)ns;
	msb = 63 - (unsigned int)__builtin_clzll(ns);
	shift = msb - (GEN_HIST_SUB_BITS - 1);
	return (uint32_t)((shift << (GEN_HIST_SUB_BITS - 1)) + (ns >> shift));
}

/* Record one value. Cheap enough for the receive path: no branches beyond min/max. */
static inline void gen_hist_record(struct gen_hist *h, uint64_t ns)
{
	uint32_t idx = gen_hist_index(ns);

	h->buckets[idx]++;
	if (h->count == 0) {
		h->min_ns = h->max_ns = ns;
		h->lo = h->hi = idx;
	} else {
		if (ns < h->min_ns)
			h->min_ns = ns;
		if (ns > h->max_ns)
			h->max_ns = ns;
		if (idx < h->lo)
			h->lo = idx;
		if (idx > h->hi)
			h->hi = idx;
	}
	h->count++;
	h->sum_ns += ns;
}

/* ---- packets (pkt.c) ---- */

#define GEN_FRAME_MIN	64 /* --size bounds: Ethernet frame bytes without the FCS */
#define GEN_FRAME_MAX	1518
#define GEN_MAX_FLOWS	65536
#define GEN_UDP_DPORT	9000
#define GEN_UDP_SPORT0	1024 /* flow i: src port 1024 + i % 256, src IP 10.0.0.1 + i / 256 */
#define GEN_L2_HDR	14
#define GEN_L3_HDR	20
#define GEN_L4_HDR	8
#define GEN_OFF_SRC_IP	(GEN_L2_HDR + 12)
#define GEN_OFF_IP_SUM	(GEN_L2_HDR + 10)
#define GEN_OFF_SPORT	(GEN_L2_HDR + GEN_L3_HDR)
#define GEN_OFF_UDP_SUM (GEN_L2_HDR + GEN_L3_HDR + 6)

/* The stamp at the start of the UDP payload is include/nemo/gen_stamp.h (nemo-nf reads it too). */
_Static_assert(GEN_STAMP_OFF == GEN_L2_HDR + GEN_L3_HDR + GEN_L4_HDR, "stamp after the UDP header");
_Static_assert(GEN_STAMP_OFF + sizeof(struct gen_stamp) == GEN_FRAME_MIN, "stamp fits 64 B");

/*
 * Per-flow precomputed header values: the sender writes them plus seq/tsc and finishes the
 * UDP checksum incrementally, instead of copying or summing the whole frame.
 */
struct gen_flow {
	uint32_t src_ip;   /* network order */
	uint16_t src_port; /* network order */
	uint16_t ip_sum;   /* the finished IPv4 header checksum, as stored */
	uint64_t udp_sum;  /* unfolded one's-complement sum of everything but seq and tsc */
};

struct gen_pkt_spec {
	uint16_t frame_len; /* GEN_FRAME_MIN..GEN_FRAME_MAX */
	uint16_t run_id;
	uint8_t src_mac[6];
	uint8_t dst_mac[6];
	uint32_t dst_ip;   /* network order */
	uint16_t dst_port; /* host order, GEN_UDP_DPORT unless --dport */
};

/* Fill spec with the defaults: dst MAC 02:00:00:00:00:01, src MAC 02:00:00:00:00:02. */
void gen_pkt_spec_default(struct gen_pkt_spec *spec, uint16_t frame_len, uint16_t run_id);

/*
 * Build the base frame (flow 0, seq 0, tsc 0, valid checksums) into frame[spec->frame_len].
 * Returns 0 or -EINVAL for a length out of range.
 */
int gen_pkt_build(const struct gen_pkt_spec *spec, uint8_t *frame);

/* Fill flows[0..n) from the base frame. Returns 0 or -EINVAL (n out of 1..GEN_MAX_FLOWS). */
int gen_pkt_flows(const uint8_t *frame, uint16_t frame_len, struct gen_flow *flows, uint32_t n);

/* Fold a one's-complement sum to 16 bits (same byte order as the words that were summed). */
static inline uint16_t gen_csum_fold(uint64_t sum)
{
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/*
 * Turn a base frame into flow f's packet number seq sent at tsc: six stores and a checksum
 * finish. One's-complement sums do not care about byte order (RFC 1071), so seq and tsc are
 * summed as stored, in host order.
 */
static inline void gen_pkt_stamp(uint8_t *frame, const struct gen_flow *f, uint64_t seq,
				 uint64_t tsc)
{
	uint64_t sum = f->udp_sum;
	uint16_t udp_sum;

	memcpy(frame + GEN_OFF_SRC_IP, &f->src_ip, 4);
	memcpy(frame + GEN_OFF_IP_SUM, &f->ip_sum, 2);
	memcpy(frame + GEN_OFF_SPORT, &f->src_port, 2);
	memcpy(frame + GEN_STAMP_OFF + offsetof(struct gen_stamp, seq), &seq, 8);
	memcpy(frame + GEN_STAMP_OFF + offsetof(struct gen_stamp, tsc), &tsc, 8);
	sum += (seq & 0xffffffffu) + (seq >> 32) + (tsc & 0xffffffffu) + (tsc >> 32);
	udp_sum = (uint16_t)~gen_csum_fold(sum);
	if (udp_sum == 0)
		udp_sum = 0xffff; /* 0 would mean "no checksum" in UDP over IPv4 */
	memcpy(frame + GEN_OFF_UDP_SUM, &udp_sum, 2);
}

/* ---- options (opts.c) ---- */

struct gen_opts {
	const char *socket;
	uint32_t memif_id;
	uint32_t ring_log2; /* memif rsize: the client sets both rings' size */
	enum gen_profile_kind profile;
	bool profile_set;
	bool max_rate; /* --max: no pacing */
	bool no_warm;  /* --no-warm: no ring warm-up before the measurement */
	double rate_pps;
	double on_ms;
	double off_ms;
	const char *steps;
	const char *trace;
	enum gen_interp trace_interp;
	double duration_s; /* 0: the profile's natural length, or GEN_DEFAULT_DURATION_S */
	uint32_t size;
	uint32_t flows;
	uint32_t dport; /* UDP destination port (default GEN_UDP_DPORT) */
	uint32_t burst;
	uint32_t interval_ms;
	uint32_t drain_ms;
	uint32_t warmup_ms;
	const char *csv;
	const char *json;
	bool quiet;
	int cpu; /* -1: the lowest CPU this process may run on */
	int eal_argc;
	char **eal_argv; /* the arguments after "--"; points into argv */
	bool help;
};

#define GEN_DEFAULT_DURATION_S 10.0
#define GEN_BURST_MAX	       256

/*
 * Parse nemo-gen's command line. Returns 0, or -EINVAL with one line in err that names the
 * option. Uses getopt_long, so it is not thread-safe and resets optind itself.
 */
int gen_opts_parse(int argc, char **argv, struct gen_opts *o, char *err, size_t errlen);
/* Build the rate profile the options describe. Returns 0, -EINVAL (err set) or -ENOMEM. */
int gen_opts_profile(const struct gen_opts *o, struct gen_profile *p, char *err, size_t errlen);
/* The send phase's length in seconds. */
double gen_opts_duration(const struct gen_opts *o, const struct gen_profile *p);
void gen_opts_usage(FILE *out);

/* ---- results (report.c) ---- */

struct gen_totals {
	uint64_t sent;	       /* accepted by tx_burst */
	uint64_t probes_sent;  /* path probes before the run, not in `sent` */
	uint64_t received;     /* came back with this run's stamp */
	uint64_t unknown_rx;   /* came back without it */
	uint64_t replies;      /* of received: came back from the dport (a function's reply) */
	uint64_t tx_dropped;   /* due, built, refused by tx_burst after retries */
	uint64_t late_skipped; /* due but never built: the sender fell too far behind */
	uint64_t alloc_failed; /* bursts delayed because the mbuf pool was empty */
	uint64_t loop_stalls;  /* send-loop iterations over 100 us: the lcore was taken away */
	double loop_max_gap_us;
	uint64_t stamp_late; /* sent with a stamp over 100 us old: the lcore was taken away */
	double duration_s;   /* the send phase, as run */
	double target_pkts;  /* packets the profile asked for over duration_s */
	bool max_rate;
	struct gen_hist *lat; /* over the whole run */
	/* replies alone (from the dport); NULL: not kept. The rest is lat minus this. */
	struct gen_hist *lat_reply;
};

/* One interval's row, also the source of the live line. */
struct gen_interval {
	double t_s; /* end of the interval, from the start of sending */
	double len_s;
	double target_pps;
	double tx_pps;
	double rx_pps;
	int64_t lost; /* sent - received within the interval; in-flight packets shift it */
	const struct gen_hist *lat;
};

void gen_report_csv_header(FILE *out);
void gen_report_csv_row(FILE *out, const struct gen_interval *iv);
void gen_report_live(FILE *out, const struct gen_interval *iv);
/* The human summary (stdout). */
void gen_report_summary(FILE *out, const struct gen_totals *t, const char *profile_desc,
			uint32_t size, uint32_t flows);
/* The summary as a cJSON object (caller deletes), or NULL on allocation failure. */
cJSON *gen_report_json(const struct gen_totals *t);
/* Write gen_report_json() to path. Returns 0 or -errno (logged). */
int gen_report_write_json(const char *path, const struct gen_totals *t);

/* ---- the generator (engine.c, needs an initialised EAL) ---- */

/*
 * Run the whole measurement on the calling lcore: set up the first ethdev port, wait for its
 * link, send along the profile while receiving, drain, and fill *t (t->lat must point to a
 * histogram). `stop` ends sending early when it turns non-zero; a second change skips the
 * drain. csv may be NULL. Returns 0, -ENOLINK if the link never came up, or another -errno.
 */
int gen_run(const struct gen_opts *o, const struct gen_profile *p, FILE *csv,
	    const volatile sig_atomic_t *stop, struct gen_totals *t);

#endif /* NEMO_GEN_INTERNAL_H */
