/* metrics.c - per-core harvest figures as Prometheus text for /metrics and nemoctl top. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "nemo/scheduler.h"

double sched_harvest_ratio(uint64_t harvested_ns, uint64_t spare_cycles, uint64_t tsc_hz)
{
	double spare_ns;

	if (!spare_cycles || !tsc_hz)
		return 0.0;
	spare_ns = (double)spare_cycles * 1e9 / (double)tsc_hz;
	return (double)harvested_ns / spare_ns;
}

struct out {
	char *buf;
	size_t len, off;
	bool full;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->off, o->len - o->off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->off)
		o->full = true;
	else
		o->off += (size_t)n;
}

/* The one writer of nemo_core_* text: every figure goes through emit() into `o`. */
static void core_stats(struct out *op, const struct sched_core_stats *cores, int n)
{
#define o (*op)

#define GAUGE(name, help, type, fmt, field)                                                       \
	do {                                                                                      \
		emit(&o,                                                                          \
		     "# HELP nemo_core_" name " " help "\n# TYPE nemo_core_" name " " type "\n"); \
		for (int i = 0; i < n; i++)                                                       \
			emit(&o, "nemo_core_" name "{cpu=\"%d\"} " fmt "\n", cores[i].cpu,        \
			     cores[i].field);                                                     \
	} while (0)

	GAUGE("spare_ratio_predicted", "Predicted spare_ratio of the next window.", "gauge", "%.4f",
	      spare_pred);
	GAUGE("spare_cycles", "Spare cycles (total - busy) in the last window.", "gauge", "%llu",
	      spare_cycles + 0ull);
	GAUGE("total_cycles", "TSC cycles in the last window.", "gauge", "%llu",
	      total_cycles + 0ull);
	GAUGE("harvested_seconds", "CPU time sandboxes used on the core in the last window.",
	      "gauge", "%.9f", harvested_ns / 1e9);
	GAUGE("harvest_ratio", "harvested / spare in the last window.", "gauge", "%.4f",
	      harvest_ratio);
	GAUGE("warm_instances", "Warm instances on the core.", "gauge", "%u", warm);
	GAUGE("frozen_instances", "Frozen instances on the core.", "gauge", "%u", frozen);
	GAUGE("moved_total", "Instances moved off the core by reclaim.", "counter", "%llu",
	      moved + 0ull);
	GAUGE("throttled_windows_total", "Windows the harvest cgroup spent under a CFS quota.",
	      "counter", "%llu", throttled + 0ull);
	GAUGE("runnable_threads", "Runnable sandbox threads on the core.", "gauge", "%u", runnable);
	GAUGE("thread_cap", "Cap on runnable sandbox threads on the core.", "gauge", "%u",
	      thread_cap);
	GAUGE("nf_sleep_floor_seconds",
	      "Sleep floor asked of the NF lcore while sandboxes work there.", "gauge", "%.6f",
	      sleep_floor_us / 1e6);
#undef GAUGE
#undef o
}

int sched_metrics_format(const struct sched_core_stats *cores, int n, char *buf, size_t len)
{
	struct out o = {buf, len, 0, len == 0};

	core_stats(&o, cores, n);
	return o.full ? -ENOSPC : (int)o.off;
}

int sched_metrics_format_cosched(const struct sched_cosched_core *cores, int n, char *buf,
				 size_t len)
{
	struct sched_core_stats st[SCHED_METRICS_MAX_CORES] = {0};
	struct out o = {buf, len, 0, len == 0};

	if (n > SCHED_METRICS_MAX_CORES)
		n = SCHED_METRICS_MAX_CORES;
	for (int i = 0; i < n; i++)
		st[i] = cores[i].s;
	core_stats(&o, st, n);
#define EXTRA(name, help, type, fmt, expr)                                                        \
	do {                                                                                      \
		emit(&o,                                                                          \
		     "# HELP nemo_core_" name " " help "\n# TYPE nemo_core_" name " " type "\n"); \
		for (int i = 0; i < n; i++)                                                       \
			emit(&o, "nemo_core_" name "{cpu=\"%d\"} " fmt "\n", cores[i].s.cpu,      \
			     expr);                                                               \
	} while (0)

	EXTRA("up", "1 while the NF publishes the core.", "gauge", "%d", cores[i].up ? 1 : 0);
	EXTRA("spare_ratio", "spare / total in the last window.", "gauge", "%.4f",
	      cores[i].spare_ratio);
	EXTRA("busy_ratio", "NF busy / total in the last window.", "gauge", "%.4f",
	      cores[i].busy_ratio);
	EXTRA("fn_ratio", "NF busy on packets for functions / total in the last window.", "gauge",
	      "%.4f", cores[i].fn_ratio);
	EXTRA("reclaim_spare_ratio",
	      "The spare_ratio reclaim judged: spare plus the packets' cycles owed to a packet "
	      "instance on the core.",
	      "gauge", "%.4f", cores[i].reclaim_spare);
	EXTRA("packet_instances", "Packet-triggered instances living on the core.", "gauge", "%u",
	      cores[i].resident);
	EXTRA("spare_seconds_total", "Spare time of the core since nemod started.", "counter",
	      "%.6f", cores[i].spare_s_total);
	EXTRA("harvested_seconds_total",
	      "CPU time sandboxes and warm-up used on the core (harvest cgroup accounting).",
	      "counter", "%.6f", cores[i].harvested_s_total);
	EXTRA("sampled_seconds_total", "Wall time covered by windows of the core.", "counter",
	      "%.6f", cores[i].total_s_total);
	EXTRA("reclaimed", "1 while the core is reclaimed (frozen or moved).", "gauge", "%d",
	      cores[i].reclaimed ? 1 : 0);
	EXTRA("reclaims_total", "Times the core was reclaimed.", "counter", "%llu",
	      (unsigned long long)cores[i].reclaims);
	EXTRA("reclaim_reaction_seconds_last",
	      "First low window's start to the reclaim done, last reclaim.", "gauge", "%.6f",
	      cores[i].reaction_last_ns / 1e9);
	EXTRA("reclaim_reaction_seconds_max", "The same, worst since start.", "gauge", "%.6f",
	      cores[i].reaction_max_ns / 1e9);
	EXTRA("prewarmed_total", "Instances pre-warmed on the core's spare cycles.", "counter",
	      "%llu", (unsigned long long)cores[i].prewarmed);
	EXTRA("invocations_total", "Invocations placed on the core.", "counter", "%llu",
	      (unsigned long long)cores[i].invocations);
#undef EXTRA
	/*
	 * The interference watch's perf counters on the NF lcore, read every few windows: an
	 * event that did not open (hardware cycles here) is available 0 and has no value line,
	 * never a 0 that reads as a measurement.
	 */
	emit(&o, "# HELP nemo_core_nf_perf_event_available 1 if the perf counter opened on the NF "
		 "lcore.\n# TYPE nemo_core_nf_perf_event_available gauge\n");
	for (int i = 0; i < n; i++)
		for (int k = 0; k < cores[i].iw_n; k++)
			emit(&o, "nemo_core_nf_perf_event_available{cpu=\"%d\",event=\"%s\"} %d\n",
			     cores[i].s.cpu, cores[i].iw_ctr[k].name,
			     cores[i].iw_ctr[k].open ? 1 : 0);
	emit(&o, "# HELP nemo_core_nf_perf_event_total The perf counter's value on the NF lcore "
		 "thread (task-clock in ns).\n# TYPE nemo_core_nf_perf_event_total counter\n");
	for (int i = 0; i < n; i++)
		for (int k = 0; k < cores[i].iw_n; k++)
			if (cores[i].iw_ctr[k].open && cores[i].iw_read)
				emit(&o,
				     "nemo_core_nf_perf_event_total{cpu=\"%d\",event=\"%s\"} %llu\n",
				     cores[i].s.cpu, cores[i].iw_ctr[k].name,
				     (unsigned long long)cores[i].iw_ctr[k].value);
	return o.full ? -ENOSPC : (int)o.off;
}
