/* test_cluster.h - real etcd members for the cluster suites: started on loopback, always removed. */
#ifndef NEMO_TEST_CLUSTER_H
#define NEMO_TEST_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "proc.h"

#define TEST_ETCD_MAX 3

struct test_etcd {
	int n;
	struct test_proc p[TEST_ETCD_MAX];
	bool running[TEST_ETCD_MAX];
	char dir[TEST_ETCD_MAX][96];
	uint16_t client_port[TEST_ETCD_MAX], peer_port[TEST_ETCD_MAX];
	char endpoint[TEST_ETCD_MAX][64]; /* http://127.0.0.1:port */
};

/* Is /usr/bin/etcd there? */
bool test_etcd_available(void);
/*
 * Start `members` (1 or 3) etcd members on free loopback ports with data under
 * /tmp/nemo-cl-<pid>-<k>, and wait until each serves. Returns 0 or -errno (what etcd said is
 * printed); everything started is removed by test_etcd_stop() and at exit.
 */
int test_etcd_start(struct test_etcd *t, int members);
/* SIGKILL member i (it stays down). */
void test_etcd_kill(struct test_etcd *t, int i);
/* SIGSTOP / SIGCONT member i: a member that is there but answers nothing (a partition). */
void test_etcd_freeze(struct test_etcd *t, int i, bool frozen);
/* Kill every member and remove the data dirs. */
void test_etcd_stop(struct test_etcd *t);

#endif /* NEMO_TEST_CLUSTER_H */
