/* iwatch.c - interference watch: the NF's cycles per packet with and without sandboxes, and the quota. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/perf_event.h>
#include <perfmon/pfmlib_perf_event.h>

#include "nemo/log.h"
#include "nemo/scheduler.h"

/*
 * Cycles per packet fall as bursts grow, so they depend on the load as much as on interference:
 * the baseline learnt at one rate says nothing about a window at another. Baseline and shared
 * figures are kept per load level (log2 of the window's packets) and only compared within one.
 */
#define IW_LEVELS 32

struct sched_iwatch {
	struct sched_iwatch_config cfg;
	struct sched_counter ctr[SCHED_IW_COUNTERS];
	int n_ctr;
	double cpp_base[IW_LEVELS], cpp_shared[IW_LEVELS];
	uint64_t quota_us;
	uint32_t calm, since_change;
};

static int perf_open(struct perf_event_attr *attr, pid_t tid)
{
	attr->size = sizeof(*attr);
	attr->disabled = 0;
	attr->inherit = 0;
	return (int)syscall(SYS_perf_event_open, attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

/* A hardware event by its libpfm4 name: encoded for this PMU, then opened on `tid`. */
static void open_pfm(struct sched_counter *c, const char *event, pid_t tid)
{
	struct perf_event_attr attr;
	pfm_perf_encode_arg_t arg;
	int rc;

	memset(&attr, 0, sizeof(attr));
	memset(&arg, 0, sizeof(arg));
	snprintf(c->name, sizeof(c->name), "%s", event);
	c->source = SCHED_CTR_HW_PFM;
	c->fd = -1;
	arg.attr = &attr;
	arg.size = sizeof(arg);
	rc = pfm_get_os_event_encoding(event, PFM_PLM0 | PFM_PLM3, PFM_OS_PERF_EVENT, &arg);
	if (rc != PFM_SUCCESS) {
		c->error = -ENOENT;
		NEMO_WARN("scheduler", "interference watch: %s: libpfm4 cannot encode it: %s",
			  event, pfm_strerror(rc));
		return;
	}
	c->fd = perf_open(&attr, tid);
	if (c->fd < 0) {
		c->error = -errno;
		NEMO_WARN("scheduler",
			  "interference watch: %s on tid %d: %s (not available; "
			  "the software events and the channel stand in)",
			  event, (int)tid, strerror(errno));
		return;
	}
	c->open = true;
}

static void open_sw(struct sched_counter *c, const char *name, uint64_t config, pid_t tid)
{
	struct perf_event_attr attr;

	memset(&attr, 0, sizeof(attr));
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->source = SCHED_CTR_SW;
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = config;
	c->fd = perf_open(&attr, tid);
	if (c->fd < 0) {
		c->error = -errno;
		NEMO_WARN("scheduler", "interference watch: %s on tid %d: %s (not available)", name,
			  (int)tid, strerror(errno));
		return;
	}
	c->open = true;
}

struct sched_iwatch *sched_iwatch_new(pid_t tid, const struct sched_iwatch_config *cfg)
{
	struct sched_iwatch *w;
	char in_use[160] = "";

	if (tid < 0 || (cfg && (cfg->bound < 0.0 || cfg->alpha < 0.0 || cfg->alpha > 1.0))) {
		errno = EINVAL;
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	if (cfg)
		w->cfg = *cfg;
	if (w->cfg.bound == 0.0)
		w->cfg.bound = 0.10;
	if (w->cfg.alpha == 0.0)
		w->cfg.alpha = 0.2;
	if (!w->cfg.calm_windows)
		w->cfg.calm_windows = 50;
	if (!w->cfg.settle_windows)
		w->cfg.settle_windows = 10;
	if (w->cfg.period_us < 1000)
		w->cfg.period_us = 10000;
	if (w->cfg.min_quota_us < 1000)
		w->cfg.min_quota_us = w->cfg.period_us / 20 < 1000 ? 1000 : w->cfg.period_us / 20;
	if (!w->cfg.min_pkts)
		w->cfg.min_pkts = 64;
	w->since_change = w->cfg.settle_windows;
	if (tid == 0)
		return w;

	/* hardware first; this machine's PMU may be detected yet refuse events (ENOENT) */
	if (pfm_initialize() == PFM_SUCCESS) {
		open_pfm(&w->ctr[w->n_ctr++], "cycles", tid);
		open_pfm(&w->ctr[w->n_ctr++], "instructions", tid);
	} else {
		NEMO_WARN("scheduler",
			  "interference watch: libpfm4 did not initialise: no hardware "
			  "events");
	}
	open_sw(&w->ctr[w->n_ctr++], "task-clock", PERF_COUNT_SW_TASK_CLOCK, tid);
	open_sw(&w->ctr[w->n_ctr++], "context-switches", PERF_COUNT_SW_CONTEXT_SWITCHES, tid);
	for (int i = 0; i < w->n_ctr; i++)
		if (w->ctr[i].open)
			snprintf(in_use + strlen(in_use), sizeof(in_use) - strlen(in_use), "%s%s",
				 in_use[0] ? ", " : "", w->ctr[i].name);
	NEMO_INFO("scheduler",
		  "interference watch on tid %d: counters in use: %s; cycles per "
		  "packet from the harvest channel",
		  (int)tid, in_use[0] ? in_use : "none");
	return w;
}

void sched_iwatch_destroy(struct sched_iwatch *w)
{
	if (!w)
		return;
	for (int i = 0; i < w->n_ctr; i++)
		if (w->ctr[i].open)
			close(w->ctr[i].fd);
	free(w);
}

const struct sched_counter *sched_iwatch_counters(const struct sched_iwatch *w, int *n)
{
	*n = w->n_ctr;
	return w->ctr;
}

int sched_iwatch_read(struct sched_iwatch *w)
{
	for (int i = 0; i < w->n_ctr; i++) {
		struct sched_counter *c = &w->ctr[i];
		uint64_t v;

		if (!c->open)
			continue;
		if (read(c->fd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
			int rc = -errno;

			NEMO_ERR("scheduler", "interference watch: read %s: %s", c->name,
				 strerror(errno));
			return rc ? rc : -EIO;
		}
		c->value = v;
	}
	return 0;
}

static double smooth(double old, double x, double alpha)
{
	return old > 0.0 ? alpha * x + (1.0 - alpha) * old : x;
}

void sched_iwatch_step(struct sched_iwatch *w, uint64_t busy_cycles, uint64_t rx_pkts,
		       bool sandboxes_ran, struct sched_iwatch_report *out)
{
	uint64_t old_quota = w->quota_us;
	double ratio = 0.0, *base = NULL, *shared = NULL;

	w->since_change++;
	if (rx_pkts >= w->cfg.min_pkts) {
		double cpp = (double)busy_cycles / (double)rx_pkts;
		int level = 63 - __builtin_clzll(rx_pkts);

		level = level < IW_LEVELS ? level : IW_LEVELS - 1;
		base = &w->cpp_base[level];
		shared = &w->cpp_shared[level];
		if (sandboxes_ran)
			*shared = smooth(*shared, cpp, w->cfg.alpha);
		else
			*base = smooth(*base, cpp, w->cfg.alpha);
		if (*base > 0.0 && *shared > 0.0)
			ratio = *shared / *base;
		if (ratio > 1.0 + w->cfg.bound) {
			w->calm = 0;
			/* tighten, then give cpp a few windows to show the effect */
			if (w->since_change >= w->cfg.settle_windows) {
				if (!w->quota_us)
					w->quota_us = w->cfg.period_us / 2;
				else if (w->quota_us / 2 >= w->cfg.min_quota_us)
					w->quota_us /= 2;
				else
					w->quota_us = w->cfg.min_quota_us;
			}
		} else if (w->quota_us && ++w->calm >= w->cfg.calm_windows) {
			/* within the bound, or a load level with no baseline: no evidence either way,
			 * so the throttle does not outlive the load that set it */
			w->calm = 0;
			w->quota_us *= 2;
			if (w->quota_us >= w->cfg.period_us)
				w->quota_us = 0;
		}
	}
	if (w->quota_us != old_quota)
		w->since_change = 0;
	out->cpp_baseline = base ? *base : 0.0;
	out->cpp_shared = shared ? *shared : 0.0;
	out->ratio = ratio;
	out->quota_us = w->quota_us;
	out->throttled = w->quota_us != 0;
	out->changed = w->quota_us != old_quota;
}
