/* log.h - nemo's one logging facility: levels, one line per event, rate-limiting for loops. */
#ifndef NEMO_LOG_H
#define NEMO_LOG_H

#include <stdint.h>

enum nemo_log_level {
	NEMO_LOG_ERR = 0,
	NEMO_LOG_WARN = 1,
	NEMO_LOG_INFO = 2,
	NEMO_LOG_DEBUG = 3,
};

/*
 * Set the threshold: messages above it are dropped. The default is INFO, or the value of
 * NEMO_LOG_LEVEL in the environment (err, warn, info, debug) read at the first call.
 * Thread-safe.
 */
void nemo_log_set_level(enum nemo_log_level level);
enum nemo_log_level nemo_log_get_level(void);

/* Parse "err", "warn", "info" or "debug". Returns the level, or -EINVAL. */
int nemo_log_parse_level(const char *name);

/*
 * Select the line format: 0 for human lines ("12:00:01.123 WARN nf: ..."), 1 for
 * logfmt-style structured lines ("ts=... level=warn module=nf msg=\"...\""). Thread-safe.
 */
void nemo_log_set_structured(int on);

/* Write one line to stderr. Use the macros below rather than calling this directly. */
void nemo_log(enum nemo_log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * A rate limit for a log call that can fire from a loop: at most `burst` lines per
 * `interval_ms`; the first line after a quiet period reports how many were suppressed.
 * One per call site (the macro makes it static). Not for the packet path: there, count.
 */
struct nemo_ratelimit {
	uint64_t window_start_ns;
	uint32_t interval_ms;
	uint32_t burst;
	uint32_t printed;
	uint32_t suppressed;
};

/* Returns 1 if the caller may log now; *suppressed gets the count dropped before. */
int nemo_ratelimit_allow(struct nemo_ratelimit *rl, uint32_t *suppressed);

#define NEMO_ERR(mod, ...)   nemo_log(NEMO_LOG_ERR, mod, __VA_ARGS__)
#define NEMO_WARN(mod, ...)  nemo_log(NEMO_LOG_WARN, mod, __VA_ARGS__)
#define NEMO_INFO(mod, ...)  nemo_log(NEMO_LOG_INFO, mod, __VA_ARGS__)
#define NEMO_DEBUG(mod, ...) nemo_log(NEMO_LOG_DEBUG, mod, __VA_ARGS__)

/* Log at most `burst` lines per `ms` milliseconds from this call site. */
#define NEMO_LOG_RATELIMITED(level, mod, ms, burst, fmt, ...)                                    \
	do {                                                                                     \
		static struct nemo_ratelimit _rl = {0, (ms), (burst), 0, 0};                     \
		uint32_t _supp;                                                                  \
		if (nemo_ratelimit_allow(&_rl, &_supp)) {                                        \
			if (_supp)                                                               \
				nemo_log(level, mod, "(%u similar messages suppressed)", _supp); \
			nemo_log(level, mod, fmt, ##__VA_ARGS__);                                \
		}                                                                                \
	} while (0)

#endif /* NEMO_LOG_H */
