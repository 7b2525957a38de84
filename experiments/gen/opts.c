/* opts.c - nemo-gen's command line: parse, check each option, and name the one that is wrong. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "gen_internal.h"

enum {
	OPT_SOCKET = 256,
	OPT_MEMIF_ID,
	OPT_RSIZE,
	OPT_PROFILE,
	OPT_RATE,
	OPT_ON_MS,
	OPT_OFF_MS,
	OPT_STEPS,
	OPT_TRACE,
	OPT_TRACE_INTERP,
	OPT_DURATION,
	OPT_SIZE,
	OPT_FLOWS,
	OPT_DPORT,
	OPT_BURST,
	OPT_INTERVAL_MS,
	OPT_CSV,
	OPT_JSON,
	OPT_DRAIN_MS,
	OPT_WARMUP_MS,
	OPT_CPU,
	OPT_MAX,
	OPT_NO_WARM,
};

static const struct option long_opts[] = {
	{"socket", required_argument, NULL, OPT_SOCKET},
	{"memif-id", required_argument, NULL, OPT_MEMIF_ID},
	{"rsize", required_argument, NULL, OPT_RSIZE},
	{"profile", required_argument, NULL, OPT_PROFILE},
	{"rate", required_argument, NULL, OPT_RATE},
	{"on-ms", required_argument, NULL, OPT_ON_MS},
	{"off-ms", required_argument, NULL, OPT_OFF_MS},
	{"steps", required_argument, NULL, OPT_STEPS},
	{"trace", required_argument, NULL, OPT_TRACE},
	{"trace-interp", required_argument, NULL, OPT_TRACE_INTERP},
	{"duration", required_argument, NULL, OPT_DURATION},
	{"size", required_argument, NULL, OPT_SIZE},
	{"flows", required_argument, NULL, OPT_FLOWS},
	{"dport", required_argument, NULL, OPT_DPORT},
	{"burst", required_argument, NULL, OPT_BURST},
	{"interval-ms", required_argument, NULL, OPT_INTERVAL_MS},
	{"csv", required_argument, NULL, OPT_CSV},
	{"json", required_argument, NULL, OPT_JSON},
	{"drain-ms", required_argument, NULL, OPT_DRAIN_MS},
	{"warmup-ms", required_argument, NULL, OPT_WARMUP_MS},
	{"cpu", required_argument, NULL, OPT_CPU},
	{"max", no_argument, NULL, OPT_MAX},
	{"no-warm", no_argument, NULL, OPT_NO_WARM},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static const char *const profile_names[] = {"constant", "on_off", "steps", "trace"};

void gen_opts_usage(FILE *out)
{
	fprintf(out,
		"usage: nemo-gen [options] [-- EAL arguments]\n"
		"Sends Ethernet/IPv4/UDP frames over memif to an NF and measures what comes back.\n"
		"\n"
		"  --socket PATH        memif socket of the NF (the memif server; nemo-gen is the client)\n"
		"  --memif-id N         memif interface id (default 0)\n"
		"  --rsize N            log2 of the memif ring size, 8..14 (default 14: 16384 slots,\n"
		"                       so that an NF sleeping up to its max sleep loses nothing)\n"
		"  --profile NAME       constant | on_off | steps | trace (default: implied by the\n"
		"                       options below, else constant)\n"
		"  --rate PPS           constant rate, or the on-rate of on_off (accepts k, M, G)\n"
		"  --max                send as fast as possible (capacity measurement)\n"
		"  --on-ms MS --off-ms MS   on_off: --rate for MS, then silence for MS, repeating\n"
		"  --steps PPS:S,...    steps: each rate for S seconds; the list repeats\n"
		"  --trace FILE         trace: CSV lines 'time_s,pps'; the rate at t is the last sample\n"
		"                       at or before t (step), 0 before the first sample\n"
		"  --trace-interp step|linear   linear ramps between samples (default step)\n"
		"  --duration S         seconds of sending (default: the steps/trace length, else 10)\n"
		"  --size BYTES         frame size without FCS, 64..1518 (default 64)\n"
		"  --flows N            vary UDP source port and source IP over N flows (default 1)\n"
		"  --dport N            UDP destination port (default 9000); frames that come back\n"
		"                       from it (a function's replies) are counted as replies\n"
		"  --burst N            packets per tx burst, 1..256 (default 32)\n"
		"  --interval-ms N      CSV interval (default 100)\n"
		"  --csv FILE           per interval: t_s,target_pps,tx_pps,rx_pps,lost,lat_p50_us,\n"
		"                       lat_p99_us,lat_max_us\n"
		"  --json FILE          the final summary as one JSON object\n"
		"  --drain-ms N         wait this long for in-flight packets after sending (default 200)\n"
		"  --warmup-ms N        wait this long for the memif link (default 5000)\n"
		"  --no-warm            measure from the first packet: skip using every memif slot\n"
		"                       once at 200 kpps first (the NF faulting the rings in is then\n"
		"                       part of the run)\n"
		"  --cpu N              the lcore to run on (default: the lowest allowed CPU)\n"
		"  --quiet, -q          no live line on stderr\n"
		"  --help, -h           this text\n"
		"\n"
		"Without EAL arguments nemo-gen uses: --no-huge -m 512 --no-shconf --no-pci\n"
		"  --no-telemetry -l CPU --file-prefix nemo-gen-PID\n"
		"  --vdev net_memif0,role=client,socket=PATH,socket-abstract=no,id=N\n"
		"Exit status: 0 done, 1 runtime failure, 2 bad arguments.\n");
}

static int parse_num(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !isfinite(*out))
		return -EINVAL;
	return 0;
}

static int parse_u32(const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out,
		     char *err, size_t errlen)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s == '-' || *s == '+' || errno || end == s || *end != '\0') {
		snprintf(err, errlen, "--%s: '%s' is not a whole number", opt, s);
		return -EINVAL;
	}
	if (v < lo || v > hi) {
		snprintf(err, errlen, "--%s: %s is out of range %u..%u", opt, s, lo, hi);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

static int parse_positive(const char *opt, const char *s, double max, double *out, char *err,
			  size_t errlen)
{
	if (parse_num(s, out)) {
		snprintf(err, errlen, "--%s: '%s' is not a number", opt, s);
		return -EINVAL;
	}
	if (*out <= 0 || *out > max) {
		snprintf(err, errlen, "--%s: %s is out of range (0, %g]", opt, s, max);
		return -EINVAL;
	}
	return 0;
}

static void set_defaults(struct gen_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->size = GEN_FRAME_MIN;
	o->flows = 1;
	o->dport = GEN_UDP_DPORT;
	o->burst = 32;
	o->interval_ms = 100;
	o->ring_log2 = 14;
	o->drain_ms = 200;
	o->warmup_ms = 5000;
	o->cpu = -1;
	o->rate_pps = -1;
	o->on_ms = -1;
	o->off_ms = -1;
}

static int one_opt(struct gen_opts *o, int c, const char *arg, char *err, size_t errlen)
{
	uint32_t u;

	switch (c) {
	case OPT_SOCKET:
		o->socket = arg;
		return 0;
	case OPT_MEMIF_ID:
		return parse_u32("memif-id", arg, 0, UINT32_MAX, &o->memif_id, err, errlen);
	case OPT_RSIZE:
		return parse_u32("rsize", arg, 8, 14, &o->ring_log2, err, errlen);
	case OPT_PROFILE:
		for (size_t i = 0; i < sizeof(profile_names) / sizeof(profile_names[0]); i++) {
			if (strcmp(arg, profile_names[i]) == 0) {
				o->profile = (enum gen_profile_kind)i;
				o->profile_set = true;
				return 0;
			}
		}
		snprintf(err, errlen,
			 "--profile: '%s' is not one of constant, on_off, steps, trace", arg);
		return -EINVAL;
	case OPT_RATE:
		if (gen_parse_rate(arg, &o->rate_pps) || o->rate_pps <= 0 || o->rate_pps > 1e9) {
			snprintf(
				err, errlen,
				"--rate: '%s' is not a rate in (0, 1G] packets/s (e.g. 1000000, 2.5M)",
				arg);
			return -EINVAL;
		}
		return 0;
	case OPT_ON_MS:
		return parse_positive("on-ms", arg, 3.6e6, &o->on_ms, err, errlen);
	case OPT_OFF_MS:
		return parse_positive("off-ms", arg, 3.6e6, &o->off_ms, err, errlen);
	case OPT_STEPS:
		o->steps = arg;
		return 0;
	case OPT_TRACE:
		o->trace = arg;
		return 0;
	case OPT_TRACE_INTERP:
		if (strcmp(arg, "step") == 0)
			o->trace_interp = GEN_INTERP_STEP;
		else if (strcmp(arg, "linear") == 0)
			o->trace_interp = GEN_INTERP_LINEAR;
		else {
			snprintf(err, errlen, "--trace-interp: '%s' is not step or linear", arg);
			return -EINVAL;
		}
		return 0;
	case OPT_DURATION:
		return parse_positive("duration", arg, 1e7, &o->duration_s, err, errlen);
	case OPT_SIZE:
		return parse_u32("size", arg, GEN_FRAME_MIN, GEN_FRAME_MAX, &o->size, err, errlen);
	case OPT_FLOWS:
		return parse_u32("flows", arg, 1, GEN_MAX_FLOWS, &o->flows, err, errlen);
	case OPT_DPORT:
		return parse_u32("dport", arg, 1, 65535, &o->dport, err, errlen);
	case OPT_BURST:
		return parse_u32("burst", arg, 1, GEN_BURST_MAX, &o->burst, err, errlen);
	case OPT_INTERVAL_MS:
		return parse_u32("interval-ms", arg, 1, 3600000, &o->interval_ms, err, errlen);
	case OPT_CSV:
		o->csv = arg;
		return 0;
	case OPT_JSON:
		o->json = arg;
		return 0;
	case OPT_DRAIN_MS:
		return parse_u32("drain-ms", arg, 0, 600000, &o->drain_ms, err, errlen);
	case OPT_WARMUP_MS:
		return parse_u32("warmup-ms", arg, 1, 600000, &o->warmup_ms, err, errlen);
	case OPT_CPU:
		if (parse_u32("cpu", arg, 0, CPU_SETSIZE - 1, &u, err, errlen))
			return -EINVAL;
		o->cpu = (int)u;
		return 0;
	case OPT_MAX:
		o->max_rate = true;
		return 0;
	case OPT_NO_WARM:
		o->no_warm = true;
		return 0;
	case 'q':
		o->quiet = true;
		return 0;
	case 'h':
		o->help = true;
		return 0;
	}
	snprintf(err, errlen, "internal: unhandled option %d", c);
	return -EINVAL;
}

/* Cross-option checks: each option must belong to the profile in use. */
static int check(struct gen_opts *o, char *err, size_t errlen)
{
	bool on_off_given = o->on_ms >= 0 || o->off_ms >= 0;

	if (!o->profile_set) {
		if (o->steps)
			o->profile = GEN_PROFILE_STEPS;
		else if (o->trace)
			o->profile = GEN_PROFILE_TRACE;
		else if (on_off_given)
			o->profile = GEN_PROFILE_ON_OFF;
		else
			o->profile = GEN_PROFILE_CONSTANT;
	}
	if (o->steps && o->profile != GEN_PROFILE_STEPS) {
		snprintf(err, errlen, "--steps: only for --profile steps");
		return -EINVAL;
	}
	if (o->trace && o->profile != GEN_PROFILE_TRACE) {
		snprintf(err, errlen, "--trace: only for --profile trace");
		return -EINVAL;
	}
	if (on_off_given && o->profile != GEN_PROFILE_ON_OFF) {
		snprintf(err, errlen, "--%s: only for --profile on_off",
			 o->on_ms >= 0 ? "on-ms" : "off-ms");
		return -EINVAL;
	}
	if (o->max_rate) {
		if (o->profile != GEN_PROFILE_CONSTANT) {
			snprintf(err, errlen, "--max: not with --profile %s",
				 profile_names[o->profile]);
			return -EINVAL;
		}
		if (o->rate_pps > 0) {
			snprintf(err, errlen,
				 "--max: not with --rate (--max sends without pacing)");
			return -EINVAL;
		}
	}
	switch (o->profile) {
	case GEN_PROFILE_CONSTANT:
		if (!o->max_rate && o->rate_pps <= 0) {
			snprintf(err, errlen,
				 "--rate: required for --profile constant (or use --max)");
			return -EINVAL;
		}
		break;
	case GEN_PROFILE_ON_OFF:
		if (o->rate_pps <= 0 || o->on_ms < 0 || o->off_ms < 0) {
			snprintf(err, errlen,
				 "--%s: --profile on_off needs --rate, --on-ms and "
				 "--off-ms",
				 o->rate_pps <= 0 ? "rate" : (o->on_ms < 0 ? "on-ms" : "off-ms"));
			return -EINVAL;
		}
		break;
	case GEN_PROFILE_STEPS:
	case GEN_PROFILE_TRACE:
		if (o->rate_pps > 0) {
			snprintf(err, errlen,
				 "--rate: not with --profile %s (the rates come from "
				 "--%s)",
				 profile_names[o->profile],
				 o->profile == GEN_PROFILE_STEPS ? "steps" : "trace");
			return -EINVAL;
		}
		if (o->profile == GEN_PROFILE_STEPS && !o->steps) {
			snprintf(err, errlen, "--steps: required for --profile steps");
			return -EINVAL;
		}
		if (o->profile == GEN_PROFILE_TRACE && !o->trace) {
			snprintf(err, errlen, "--trace: required for --profile trace");
			return -EINVAL;
		}
		break;
	}
	if (!o->socket && o->eal_argc == 0) {
		snprintf(err, errlen,
			 "--socket: required (the NF's memif socket), unless EAL "
			 "arguments with a --vdev follow '--'");
		return -EINVAL;
	}
	return 0;
}

int gen_opts_parse(int argc, char **argv, struct gen_opts *o, char *err, size_t errlen)
{
	int own_argc = argc, c, rc;

	set_defaults(o);
	err[0] = '\0';
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			own_argc = i;
			o->eal_argc = argc - i - 1;
			o->eal_argv = argv + i + 1;
			break;
		}
	}
	optind = 0; /* GNU: full re-initialisation, so tests can parse several command lines */
	opterr = 0;
	while ((c = getopt_long(own_argc, argv, "+:hq", long_opts, NULL)) != -1) {
		if (c == '?') {
			if (optopt)
				snprintf(err, errlen, "unknown option '-%c'", optopt);
			else
				snprintf(err, errlen, "unknown option '%s'", argv[optind - 1]);
			return -EINVAL;
		}
		if (c == ':') {
			snprintf(err, errlen, "%s: needs a value", argv[optind - 1]);
			return -EINVAL;
		}
		rc = one_opt(o, c, optarg, err, errlen);
		if (rc)
			return rc;
	}
	if (optind < own_argc) {
		snprintf(err, errlen, "unexpected argument '%s' (EAL arguments go after '--')",
			 argv[optind]);
		return -EINVAL;
	}
	if (o->help)
		return 0;
	return check(o, err, errlen);
}

int gen_opts_profile(const struct gen_opts *o, struct gen_profile *p, char *err, size_t errlen)
{
	switch (o->profile) {
	case GEN_PROFILE_CONSTANT:
		gen_profile_constant(p, o->max_rate ? 0 : o->rate_pps);
		return 0;
	case GEN_PROFILE_ON_OFF:
		gen_profile_on_off(p, o->rate_pps, o->on_ms / 1e3, o->off_ms / 1e3);
		return 0;
	case GEN_PROFILE_STEPS:
		return gen_profile_parse_steps(p, o->steps, err, errlen);
	case GEN_PROFILE_TRACE:
		return gen_profile_load_trace(p, o->trace, o->trace_interp, err, errlen);
	}
	snprintf(err, errlen, "internal: unknown profile %d", (int)o->profile);
	return -EINVAL;
}

double gen_opts_duration(const struct gen_opts *o, const struct gen_profile *p)
{
	double natural;

	if (o->duration_s > 0)
		return o->duration_s;
	natural = gen_profile_natural_duration(p);
	return natural > 0 ? natural : GEN_DEFAULT_DURATION_S;
}
