/* main.c - the nemo test runner: every registered CUnit suite, or those named on the command line. */
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "test.h"

static struct nemo_suite *suites;
static int skipped;
static char bindir[PATH_MAX];
static char srcdir[PATH_MAX];

void nemo_test_register(struct nemo_suite *suite)
{
	struct nemo_suite **p = &suites;

	/* keep file order stable: append */
	while (*p)
		p = &(*p)->next;
	*p = suite;
}

void nemo_test_skip(const char *why)
{
	CU_pTest t = CU_get_current_test();

	skipped++;
	printf("\n  SKIP %s: %s\n", t ? t->pName : "?", why);
	fflush(stdout);
}

const char *nemo_test_bindir(void)
{
	return bindir;
}

const char *nemo_test_srcdir(void)
{
	return srcdir;
}

static int wanted(const char *name, int argc, char **argv)
{
	if (argc < 2)
		return 1;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	unsigned int failed;

	if (n <= 0) {
		perror("readlink /proc/self/exe");
		return 2;
	}
	exe[n] = '\0';
	snprintf(bindir, sizeof(bindir), "%s", dirname(exe)); /* build/bin */
	/* the repository root is two levels above build/bin */
	snprintf(srcdir, sizeof(srcdir), "%s", bindir);
	for (int up = 0; up < 2; up++) {
		char *slash = strrchr(srcdir, '/');

		if (slash && slash != srcdir)
			*slash = '\0';
	}
	/* tests talk to children over pipes and sockets; a dead peer is an error, not a kill */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	for (struct nemo_suite *s = suites; s; s = s->next) {
		CU_pSuite cs;

		if (!wanted(s->name, argc, argv))
			continue;
		cs = CU_add_suite(s->name, s->setup, s->teardown);
		if (!cs)
			return 2;
		for (const struct nemo_test *t = s->tests; t->name; t++)
			CU_add_test(cs, t->name, t->fn);
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	printf("\nnemo tests: %u asserts failed, %u suites failed, %d tests skipped "
	       "(see SKIP lines)\n",
	       CU_get_number_of_failures(), CU_get_number_of_suites_failed(), skipped);
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
