/* test_eal.c - one DPDK EAL for the whole test process, started by the first suite needing it. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include "test.h"

/* 0: not tried yet; 1: up; < 0: the -errno the first attempt failed with */
static int eal_state;
static pid_t eal_pid;
static char eal_runtime_dir[PATH_MAX];

static int eal_rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	if (remove(path) && errno != ENOENT)
		fprintf(stderr, "nemo-tests: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void eal_cleanup(void)
{
	/* a forked child that calls exit() must not tear down its parent's EAL files */
	if (getpid() != eal_pid)
		return;
	rte_eal_cleanup();
	if (eal_runtime_dir[0])
		nftw(eal_runtime_dir, eal_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int nemo_test_eal_init(void)
{
	char prefix[64], lcores[16];
	char *argv[] = {
		"nemo-tests",	       "--no-huge",	"-m",	"256",
		"--no-shconf",	       "--no-pci",	"-l",	lcores,
		"--log-level=warning", "--file-prefix", prefix, NULL,
	};
	int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;
	cpu_set_t saved;
	int cpu = 0;

	if (eal_state)
		return eal_state > 0 ? 0 : eal_state;
	if (sched_getaffinity(0, sizeof(saved), &saved)) {
		eal_state = -errno;
		fprintf(stderr, "nemo-tests: sched_getaffinity: %s\n", strerror(errno));
		return eal_state;
	}
	/* -l 0 would fail under taskset without CPU 0: take the first CPU we may use */
	while (cpu < CPU_SETSIZE - 1 && !CPU_ISSET(cpu, &saved))
		cpu++;
	snprintf(lcores, sizeof(lcores), "%d", cpu);
	snprintf(prefix, sizeof(prefix), "nemo-test-%d", (int)getpid());
	if (rte_eal_init(argc, argv) < 0) {
		eal_state = rte_errno ? -rte_errno : -EIO;
		fprintf(stderr, "nemo-tests: rte_eal_init: %s\n", rte_strerror(-eal_state));
		return eal_state;
	}
	/* the EAL pinned this thread to the lcore's CPU; the rest of the tests must not be */
	if (sched_setaffinity(0, sizeof(saved), &saved))
		fprintf(stderr, "nemo-tests: restoring CPU affinity: %s\n", strerror(errno));
	snprintf(eal_runtime_dir, sizeof(eal_runtime_dir), "%s", rte_eal_get_runtime_dir());
	eal_pid = getpid();
	atexit(eal_cleanup);
	eal_state = 1;
	return 0;
}
