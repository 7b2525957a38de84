/* clock.h - the monotonic clock, the time of day in ms, and absolute deadlines for timed waits. */
#ifndef NEMO_CLOCK_H
#define NEMO_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in ns: durations, deadlines and rates, never the time of day. */
static inline uint64_t nemo_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC in ms. */
static inline uint64_t nemo_now_ms(void)
{
	return nemo_now_ns() / 1000000ull;
}

/*
 * CLOCK_REALTIME in ms since the epoch: the time of day, for timestamps that other processes or
 * machines read (records, logs). It may jump: never a duration.
 */
static inline uint64_t nemo_epoch_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000;
}

/* Move `ts` on by `ns`, keeping tv_nsec below one second. */
static inline void nemo_timespec_add_ns(struct timespec *ts, uint64_t ns)
{
	uint64_t nsec = (uint64_t)ts->tv_nsec + ns % 1000000000ull;

	ts->tv_sec += (time_t)(ns / 1000000000ull + nsec / 1000000000ull);
	ts->tv_nsec = (long)(nsec % 1000000000ull);
}

/* Now on `clock`, plus `ns`: the deadline of a wait that may last `ns`. */
static inline struct timespec nemo_deadline_after_ns(clockid_t clock, uint64_t ns)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	nemo_timespec_add_ns(&ts, ns);
	return ts;
}

#endif /* NEMO_CLOCK_H */
