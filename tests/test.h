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
#define NEMO_SUITE(sname, su, td, ...)                                                           \
	static const struct nemo_test sname##_tests[] = {__VA_ARGS__, {NULL, NULL}};             \
	static struct nemo_suite sname##_suite = {#sname, su, td, sname##_tests, NULL};          \
	__attribute__((constructor)) static void sname##_register(void)                          \
	{                                                                                        \
		nemo_test_register(&sname##_suite);                                              \
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

#endif /* NEMO_TEST_H */
