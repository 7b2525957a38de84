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

/* TLS files of a secured member, made by test_etcd_make_certs() (EC P-256, valid a day). */
struct test_etcd_tls {
	char dir[96];
	char ca[128], server_cert[128], server_key[128], client_cert[128], client_key[128];
};

/* Is /usr/bin/etcd there? */
bool test_etcd_available(void);
/*
 * Start `members` (1 or 3) etcd members on free loopback ports with data under
 * /tmp/nemo-cl-<pid>-<k>, and wait until each serves. Returns 0 or -errno (what etcd said is
 * printed); everything started is removed by test_etcd_stop() and at exit.
 */
int test_etcd_start(struct test_etcd *t, int members);
/*
 * A CA and, signed by it, a certificate for 127.0.0.1 and one for a client, with openssl, under
 * /tmp/nemo-cl-certs-<pid>-<n> (removed by test_etcd_remove_certs and at exit). Returns 0 or
 * -errno.
 */
int test_etcd_make_certs(struct test_etcd_tls *tls);
void test_etcd_remove_certs(struct test_etcd_tls *tls);
/*
 * One member serving https:// only, with tls's server certificate, dropping auth tokens unused
 * for token_ttl_s; with client_certs, asking clients for a certificate the CA signed
 * (--trusted-ca-file, --client-cert-auth: then etcd's gateway refuses logins: keep auth off).
 */
int test_etcd_start_tls(struct test_etcd *t, const struct test_etcd_tls *tls, int token_ttl_s,
			bool client_certs);
/*
 * Turn on etcd's auth on a member of test_etcd_start_tls(): user root (password "rootpw"), and
 * `user` with `password` who may read and write the keys under `prefix`. Returns 0 or -EIO
 * (what etcd said is printed).
 */
int test_etcd_enable_auth(struct test_etcd *t, const struct test_etcd_tls *tls, const char *user,
			  const char *password, const char *prefix);

/* SIGKILL member i (it stays down). */
void test_etcd_kill(struct test_etcd *t, int i);
/* SIGSTOP / SIGCONT member i: a member that is there but answers nothing (a partition). */
void test_etcd_freeze(struct test_etcd *t, int i, bool frozen);
/* Kill every member and remove the data dirs. */
void test_etcd_stop(struct test_etcd *t);

#endif /* NEMO_TEST_CLUSTER_H */
