/* log.c - levels, human or structured lines on stderr, and per-call-site rate limits. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "nemo/log.h"

static const char *const level_names[] = {"ERR", "WARN", "INFO", "DEBUG"};
static const char *const level_keys[] = {"err", "warn", "info", "debug"};

static int log_level = -1; /* -1: not yet read from the environment */
static int log_structured;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void log_init_from_env(void)
{
	const char *env = getenv("NEMO_LOG_LEVEL");
	int level = env ? nemo_log_parse_level(env) : -EINVAL;

	if (__atomic_load_n(&log_level, __ATOMIC_RELAXED) < 0)
		__atomic_store_n(&log_level, level >= 0 ? level : NEMO_LOG_INFO, __ATOMIC_RELAXED);
	env = getenv("NEMO_LOG_FORMAT");
	if (env && strcmp(env, "structured") == 0)
		log_structured = 1;
}

int nemo_log_parse_level(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcasecmp(name, level_keys[i]) == 0 || strcasecmp(name, level_names[i]) == 0)
			return i;
	if (strcasecmp(name, "error") == 0)
		return NEMO_LOG_ERR;
	if (strcasecmp(name, "warning") == 0)
		return NEMO_LOG_WARN;
	return -EINVAL;
}

void nemo_log_set_level(enum nemo_log_level level)
{
	pthread_once(&log_once, log_init_from_env);
	__atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

enum nemo_log_level nemo_log_get_level(void)
{
	pthread_once(&log_once, log_init_from_env);
	return (enum nemo_log_level)__atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void nemo_log_set_structured(int on)
{
	pthread_once(&log_once, log_init_from_env);
	__atomic_store_n(&log_structured, on, __ATOMIC_RELAXED);
}

void nemo_log(enum nemo_log_level level, const char *module, const char *fmt, ...)
{
	char msg[1024], line[1280];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if ((int)level > (int)nemo_log_get_level())
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (__atomic_load_n(&log_structured, __ATOMIC_RELAXED)) {
		/* logfmt: quote the message, escape quotes and backslashes */
		char esc[2048];
		size_t j = 0;

		for (size_t i = 0; msg[i] && j + 2 < sizeof(esc); i++) {
			if (msg[i] == '"' || msg[i] == '\\')
				esc[j++] = '\\';
			esc[j++] = msg[i] == '\n' ? ' ' : msg[i];
		}
		esc[j] = '\0';
		n = snprintf(
			line, sizeof(line),
			"ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s module=%s msg=\"%s\"\n",
			tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			tm.tm_sec, ts.tv_nsec / 1000000, level_keys[level], module, esc);
	} else {
		n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %-5s %s: %s\n", tm.tm_hour,
			     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], module,
			     msg);
	}
	if (n > (int)sizeof(line))
		n = sizeof(line);
	/* one write per line keeps lines whole between threads and processes */
	if (write(2, line, (size_t)n) < 0)
		return;
}

int nemo_ratelimit_allow(struct nemo_ratelimit *rl, uint32_t *suppressed)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	*suppressed = 0;
	if (now - rl->window_start_ns >= (uint64_t)rl->interval_ms * 1000000ull) {
		*suppressed = rl->suppressed;
		rl->window_start_ns = now;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	if (rl->printed < rl->burst) {
		rl->printed++;
		return 1;
	}
	rl->suppressed++;
	return 0;
}
