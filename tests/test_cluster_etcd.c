/* test_cluster_etcd.c - start and remove real etcd members for the cluster suites. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_cluster.h"

#define ETCD_BIN "/usr/bin/etcd"

static struct test_etcd *live[8];

bool test_etcd_available(void)
{
	return access(ETCD_BIN, X_OK) == 0;
}

static void rm_rf(const char *dir)
{
	pid_t pid;

	if (!dir[0] || strncmp(dir, "/tmp/nemo-cl-", 13) != 0)
		return;
	pid = fork();
	if (pid == 0) {
		execl("/bin/rm", "rm", "-rf", dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static void cleanup_at_exit(void)
{
	for (int i = 0; i < 8; i++)
		if (live[i])
			test_etcd_stop(live[i]);
}

/* Does the member answer a range on its client port? */
static bool member_serves(const struct test_etcd *t, int i)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd),
		 "curl -s -m 1 -o /dev/null -w '%%{http_code}' -X POST %s/v3/kv/range "
		 "-d '{\"key\":\"AA==\"}' | grep -q 200",
		 t->endpoint[i]);
	return system(cmd) == 0;
}

int test_etcd_start(struct test_etcd *t, int members)
{
	static int runs;
	static bool atexit_set;
	char cluster[512] = "";
	size_t off = 0;

	memset(t, 0, sizeof(*t));
	if (members < 1 || members > TEST_ETCD_MAX)
		return -EINVAL;
	if (!atexit_set) {
		atexit(cleanup_at_exit);
		atexit_set = true;
	}
	for (int i = 0; i < 8; i++)
		if (!live[i]) {
			live[i] = t;
			break;
		}
	t->n = members;
	runs++;
	for (int i = 0; i < members; i++) {
		t->client_port[i] = test_free_port();
		do
			t->peer_port[i] = test_free_port();
		while (t->peer_port[i] == t->client_port[i]);
		snprintf(t->endpoint[i], sizeof(t->endpoint[i]), "http://127.0.0.1:%u",
			 t->client_port[i]);
		snprintf(t->dir[i], sizeof(t->dir[i]), "/tmp/nemo-cl-%d-%d-%d", (int)getpid(), runs,
			 i);
		off += (size_t)snprintf(cluster + off, sizeof(cluster) - off,
					"%sm%d=http://127.0.0.1:%u", i ? "," : "", i,
					t->peer_port[i]);
	}
	for (int i = 0; i < members; i++) {
		char name[16], client[64], peer[64], token[64];
		char *argv[] = {ETCD_BIN,  "--name",
				name,	   "--data-dir",
				t->dir[i], "--listen-client-urls",
				client,	   "--advertise-client-urls",
				client,	   "--listen-peer-urls",
				peer,	   "--initial-advertise-peer-urls",
				peer,	   "--initial-cluster",
				cluster,   "--initial-cluster-state",
				"new",	   "--initial-cluster-token",
				token,	   "--heartbeat-interval",
				"50",	   "--election-timeout",
				"500",	   "--logger",
				"zap",	   "--log-level",
				"warn",	   NULL};
		int rc;

		snprintf(name, sizeof(name), "m%d", i);
		snprintf(client, sizeof(client), "http://127.0.0.1:%u", t->client_port[i]);
		snprintf(peer, sizeof(peer), "http://127.0.0.1:%u", t->peer_port[i]);
		snprintf(token, sizeof(token), "nemo-test-%d-%d", (int)getpid(), runs);
		rc = test_proc_start(&t->p[i], argv);
		if (rc < 0) {
			test_etcd_stop(t);
			return rc;
		}
		t->running[i] = true;
	}
	for (int i = 0; i < members; i++) {
		int waited = 0;

		while (!member_serves(t, i)) {
			if (waited > 20000 || test_proc_wait(&t->p[i], 0) != -ETIMEDOUT) {
				printf("etcd member %d at %s did not serve:\n%s\n", i,
				       t->endpoint[i], test_proc_output(&t->p[i]));
				test_etcd_stop(t);
				return -ETIMEDOUT;
			}
			test_msleep(100);
			waited += 100;
		}
	}
	return 0;
}

void test_etcd_kill(struct test_etcd *t, int i)
{
	if (i < t->n && t->running[i]) {
		kill(t->p[i].pid, SIGKILL);
		test_proc_wait(&t->p[i], 5000);
		t->running[i] = false;
	}
}

void test_etcd_freeze(struct test_etcd *t, int i, bool frozen)
{
	if (i < t->n && t->running[i])
		kill(t->p[i].pid, frozen ? SIGSTOP : SIGCONT);
}

void test_etcd_stop(struct test_etcd *t)
{
	for (int i = 0; i < t->n; i++) {
		if (t->running[i]) {
			kill(t->p[i].pid, SIGCONT);
			test_proc_stop(&t->p[i], 2000);
			t->running[i] = false;
		}
		rm_rf(t->dir[i]);
		t->dir[i][0] = '\0';
	}
	for (int i = 0; i < 8; i++)
		if (live[i] == t)
			live[i] = NULL;
}
