/* idle.c - idle detection: the wake-up cost measured at start, and the lcore's idle policy. */
#include <string.h>
#include <time.h>

#include <rte_cycles.h>

#include "nemo/nf.h"

#define WAKE_SAMPLES_MAX 64
#define WAKE_REQUEST_NS	 1000 /* a short sleep: what it costs beyond this is the wake-up */
#define WAKE_WARMUP	 4    /* first sleeps pay for faults and cold caches: not counted */

static uint64_t cycles_to_ns(uint64_t cycles, uint64_t tsc_hz)
{
	return (uint64_t)((unsigned __int128)cycles * 1000000000u / (tsc_hz ? tsc_hz : 1));
}

static uint64_t ns_to_cycles(uint64_t ns, uint64_t tsc_hz)
{
	return (uint64_t)((unsigned __int128)ns * tsc_hz / 1000000000u);
}

void nf_wake_cost_measure(struct nf_wake_cost *out, uint32_t samples, uint64_t tsc_hz)
{
	const struct timespec req = {.tv_sec = 0, .tv_nsec = WAKE_REQUEST_NS};
	uint64_t late[WAKE_SAMPLES_MAX];
	uint32_t n = samples < WAKE_SAMPLES_MAX ? samples : WAKE_SAMPLES_MAX;

	if (n == 0)
		n = 1;
	for (uint32_t i = 0; i < n + WAKE_WARMUP; i++) {
		uint64_t t0 = rte_rdtsc(), ns;

		clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
		ns = cycles_to_ns(rte_rdtsc() - t0, tsc_hz);
		if (i < WAKE_WARMUP)
			continue;
		late[i - WAKE_WARMUP] = ns > WAKE_REQUEST_NS ? ns - WAKE_REQUEST_NS : 0;
	}
	/* a few dozen values: insertion sort, then order statistics (robust to a preemption) */
	for (uint32_t i = 1; i < n; i++) {
		uint64_t v = late[i];
		uint32_t j = i;

		for (; j > 0 && late[j - 1] > v; j--)
			late[j] = late[j - 1];
		late[j] = v;
	}
	out->median_ns = late[n / 2];
	out->p90_ns = late[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1];
	out->samples = n;
}

void nf_idle_init(struct nf_idle *s, const struct nf_idle_config *cfg, uint64_t tsc_hz,
		  uint64_t wake_cost_ns)
{
	/*
	 * The break-even: the shortest sleep and the wake-up after it. A gap shorter than that
	 * ends before a sleep would, so polling through it costs no latency; a gap predicted
	 * longer is slept through at once. By default the polling budget is that same time.
	 */
	uint64_t break_even_ns = (uint64_t)cfg->min_sleep_us * 1000 + wake_cost_ns;
	uint64_t budget_ns = cfg->idle_poll_us ? (uint64_t)cfg->idle_poll_us * 1000 : break_even_ns;

	memset(s, 0, sizeof(*s));
	s->count_only = cfg->detect == NF_IDLE_DETECT_COUNT;
	s->max_empty = cfg->empty_polls;
	if (s->count_only && !s->max_empty)
		s->max_empty = 1;
	s->budget = ns_to_cycles(budget_ns, tsc_hz);
	s->break_even = ns_to_cycles(break_even_ns, tsc_hz);
}
