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

int sched_metrics_format(const struct sched_core_stats *cores, int n, char *buf, size_t len)
{
	struct out o = {buf, len, 0, len == 0};

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
	return o.full ? -ENOSPC : (int)o.off;
}
