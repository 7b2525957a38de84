/* test.h - suites register themselves with the one CUnit runner (tests/main.c). */
#ifndef NEMO_TEST_H
#define NEMO_TEST_H

#include <stdbool.h>
#include <stdio.h>

#include <CUnit/CUnit.h>

struct nemo_test {
	const char *name;
	void (*fn)(void);
};

struct nemo_suite {
	const char *name;
	int (*setup)(void);
	int (*teardown)(void);
	const struct nemo_test *tests; /* ended by a NULL name */
	struct nemo_suite *next;
};

void nemo_test_register(struct nemo_suite *suite);

/*
 * NEMO_SUITE(name, setup, teardown, { "case", fn }, ...): defines and registers a suite.
 * setup/teardown may be NULL.
 */
#define NEMO_SUITE(sname, su, td, ...)                                                  \
	static const struct nemo_test sname##_tests[] = {__VA_ARGS__, {NULL, NULL}};    \
	static struct nemo_suite sname##_suite = {#sname, su, td, sname##_tests, NULL}; \
	__attribute__((constructor)) static void sname##_register(void)                 \
	{                                                                               \
		nemo_test_register(&sname##_suite);                                     \
	}

/*
 * A test that cannot run because the machine truly lacks something says so and passes
 * nothing: it is counted in the "skipped" line the runner prints at the end.
 */
void nemo_test_skip(const char *why);

/* Absolute path of build/bin (from /proc/self/exe), for tests that start nemo programs. */
const char *nemo_test_bindir(void);
/* Absolute path of the repository root (for configs/ and test data). */
const char *nemo_test_srcdir(void);

/*
 * Start DPDK's EAL once for the whole test process: no hugepages, 256 MB, no PCI, no shared
 * config, one lcore on the first CPU the process may run on, file prefix nemo-test-<pid>.
 * The thread's CPU affinity is restored afterwards, so later tests and their children are
 * not pinned. Later calls return the first call's result. At exit (of this process only,
 * not of forked children) the EAL is cleaned up and /var/run/dpdk/nemo-test-<pid> removed.
 * Returns 0 or -errno.
 */
int nemo_test_eal_init(void);

/*
 * Write a pcap (DLT_EN10MB) of good UDP packets mixed with each malformed kind that
 * nf_pkt_validate() drops: truncated Ethernet, truncated IPv4, IHL 3, IHL 15 past the data,
 * total_length too big and too small, truncated UDP header, MF fragment, nonzero-offset
 * fragment. *nb_good gets the number of packets a validator must keep; expected_drops
 * (NF_DROP_REASONS entries, indexed by enum nf_drop_reason) the number it must drop for
 * each reason. Returns 0 or -errno (-EIO with a message on stderr if libpcap fails).
 */
int nemo_test_write_malformed_pcap(const char *path, unsigned int *nb_good,
				   unsigned int expected_drops[]);

#endif /* NEMO_TEST_H */
