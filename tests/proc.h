/* proc.h - start nemo programs from tests, capture their output, and never leave them behind. */
#ifndef NEMO_TEST_PROC_H
#define NEMO_TEST_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

struct test_proc {
	pid_t pid;
	int status; /* wait status once reaped */
	bool reaped;
	char out_path[32]; /* stdout and stderr, merged (unlinked once the child has it) */
	int out_fd;
};

/*
 * Start argv[0] (a path) with stdout and stderr into a temporary file. The process is
 * registered so that test_proc_kill_all() (run at exit and by suite teardowns) kills it if a
 * test fails before it stops. Returns 0 or -errno.
 */
int test_proc_start(struct test_proc *p, char *const argv[]);
/* Wait up to timeout_ms. Returns the exit code, 128+signal, or -ETIMEDOUT (still running). */
int test_proc_wait(struct test_proc *p, int timeout_ms);
/* SIGTERM, wait up to timeout_ms, then SIGKILL. Returns like test_proc_wait(). */
int test_proc_stop(struct test_proc *p, int timeout_ms);
/* The captured output, NUL-terminated (static buffer, overwritten by the next call). */
const char *test_proc_output(struct test_proc *p);
/* Kill every process started and not yet reaped; remove their output files. */
void test_proc_kill_all(void);
/* Remove a DPDK runtime folder (/var/run/dpdk/<prefix>) and its files. */
void test_remove_runtime_dir(const char *prefix);
/*
 * Kill every process started, then remove what NF test runs tagged `tag` leave: files
 * /tmp/nemo-<tag>-<pid>-*, channels /dev/shm/nemo-hc-<tag><pid>-* and DPDK runtime folders
 * /var/run/dpdk/nemo-*-<tag><pid>-*. Suites name their runs that way so this finds them all.
 */
void test_cleanup_runs(const char *tag);
/* Is `pattern` in the output? Prints the output when not, to make failures readable. */
bool test_proc_output_has(struct test_proc *p, const char *pattern);
/* A loopback TCP port nobody listens on right now, or 0. */
uint16_t test_free_port(void);
/* Write `text` to `path`. Returns 0 or -errno. */
int test_write_text(const char *path, const char *text);
/*
 * The whole of `path`, NUL-terminated (so text can be used as a string), its length in *len
 * if len is not NULL; NULL if it cannot be read. Free it.
 */
char *test_read_file(const char *path, size_t *len);
/* Sleep ms milliseconds. */
void test_msleep(int ms);

/* Wait up to `ms` for the nemod in `p` to answer GET /healthz 200 on 127.0.0.1:`port`; false
 * when it exited first or never did. */
bool test_nemod_healthy(struct test_proc *p, uint16_t port, int ms);

/*
 * Run build/bin/nemoctl (arguments from `fmt`) against the nemod on 127.0.0.1:`port` with the
 * credentials in `token_file`, through the shell. Its exit code, or -1; stdout and stderr
 * into `out`.
 */
int test_run_nemoctl(uint16_t port, const char *token_file, char *out, size_t cap, const char *fmt,
		     ...) __attribute__((format(printf, 5, 6)));

/* Start the built nemod with `--config config` in `p` and wait up to `ms` for it to be healthy
 * on `port`; prints what it said when it is not. Returns 0, -ETIMEDOUT (started, not healthy:
 * p still needs stopping) or the -errno of test_proc_start (nothing started). */
int test_nemod_start(struct test_proc *p, const char *config, uint16_t port, int ms);

/*
 * Start a mosquitto broker in `p` on 127.0.0.1:`port` (anonymous clients allowed), its config
 * written to `dir`/mosquitto.conf, and wait up to 5 s until it accepts connections. Returns 0,
 * -ETIMEDOUT (started, not listening: p still needs stopping) or the -errno of starting it
 * (nothing started).
 */
int test_broker_start(struct test_proc *p, const char *dir, uint16_t port);

/* ---- nemo-nf and nemo-gen ---- */

/* Start the built nemo-nf with --config cfg --duration duration ("0": until stopped). */
int test_nf_start(struct test_proc *p, const char *cfg, const char *duration);
/* A memif server port object for an NF config, its socket at `sock` (not abstract). */
void test_memif_port(char *buf, size_t len, const char *sock);
/*
 * Start the built nemo-gen on the memif socket `sock` at `rate` for `duration`, pinned to cpu 0
 * at nice -10 (it is the measuring instrument: other work on its CPU must not stall it), its
 * JSON summary to `json`; `extra` (NULL-ended, or NULL) are appended to its arguments.
 * Returns like test_proc_start(); test_gen_finish() waits for it.
 */
int test_gen_start(struct test_proc *g, const char *json, const char *sock, const char *rate,
		   const char *duration, const char *const extra[]);
/*
 * Wait up to 60 s for the generator, asserting that it exits 0; its JSON summary (caller
 * frees) or NULL, after printing what it said. Removes `json` and the generator's DPDK runtime
 * folder (one that crashed could not).
 */
cJSON *test_gen_finish(struct test_proc *g, const char *json);
/*
 * Ask the nemo-nf named `name` (DPDK file prefix nemo-nf-<name>) the telemetry `commands`
 * (separated by spaces) through dpdk-telemetry.py, within 20 s; what it answered, into `out`
 * (NUL-terminated). Returns 0, or -errno when it cannot be run.
 */
int test_nf_telemetry(const char *name, const char *commands, char *out, size_t len);
/* How many times `needle` occurs in `text`, without overlaps. */
int test_count_of(const char *text, const char *needle);
/* The number `key` of a JSON object, or -1. */
double test_json_num(const cJSON *o, const char *key);
/* The number in "<key> <number>" in text, after `after` if not NULL; -1 if there is none. */
long long test_find_count(const char *text, const char *after, const char *key);
/*
 * The Internet checksum's ones'-complement sum (RFC 791/768) of `len` bytes, added to `sum`
 * and folded, not inverted: read as big-endian 16-bit words byte by byte, independently of the
 * code under test.
 */
uint16_t test_inet_sum(const uint8_t *p, size_t len, uint32_t sum);

#endif /* NEMO_TEST_PROC_H */
