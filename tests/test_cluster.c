/* test_cluster.c - the cluster module on real etcd: client, failover, watches, offload policy. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nemo/cluster.h"
#include "nemo/log.h"
#include "test.h"
#include "test_cluster.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the offload policy (pure) ------------------------------------------------------------------ */

static struct cl_load load(const char *name, double best, double total, uint32_t warm,
			   uint32_t queue)
{
	struct cl_load l = {0};

	snprintf(l.name, sizeof(l.name), "%s", name);
	l.spare_best = best;
	l.spare_total = total;
	l.warm = warm;
	l.queue = queue;
	l.has_function = true;
	l.accepts = true;
	return l;
}

static void test_policy_local_when_spare(void)
{
	struct cl_policy p;
	struct cl_load me = load("b", 0.9, 1.8, 1, 0);
	struct cl_load peers[] = {load("a", 1.0, 2.0, 1, 0)};
	struct cl_call c = {.qos = CL_QOS_LATENCY, .deadline_ms = 50, .run_ms = 2};
	struct cl_decision d;

	cl_policy_defaults(&p);
	cl_offload_decide(&p, &me, peers, 1, &c, &d);
	CU_ASSERT_EQUAL(d.verdict, CL_RUN_LOCAL);
	CU_ASSERT(d.local_eta_ms < 50);
}

static void test_policy_latency_offloads_to_most_spare_warm(void)
{
	struct cl_policy p;
	struct cl_load me = load("b", 0.0, 0.0, 1, 0); /* no spare at all */
	struct cl_load peers[] = {
		load("a", 0.9, 0.9, 0, 0), /* more spare, but cold */
		load("c", 0.5, 0.5, 2, 0), /* warm */
		load("d", 1.0, 4.0, 3, 0), /* best, but its record is stale */
	};
	struct cl_call c = {.qos = CL_QOS_LATENCY, .deadline_ms = 50, .run_ms = 2};
	struct cl_decision d;

	cl_policy_defaults(&p);
	peers[2].age_ms = p.stale_ms + 1;
	cl_offload_decide(&p, &me, peers, 3, &c, &d);
	CU_ASSERT_EQUAL(d.verdict, CL_OFFLOAD);
	CU_ASSERT_EQUAL(d.peer, 1); /* warm c: 2/0.5 + 1 = 5 ms against a: 2/0.9 + 10 + 1 */
	CU_ASSERT(isinf(d.local_eta_ms));
	CU_ASSERT_DOUBLE_EQUAL(d.peer_eta_ms, 5.0, 1e-9);
	/* with a warm instance on a too, a's larger spare wins */
	peers[0].warm = 1;
	cl_offload_decide(&p, &me, peers, 3, &c, &d);
	CU_ASSERT_EQUAL(d.peer, 0);
	/* a peer without the function or not accepting is never chosen */
	peers[0].has_function = false;
	peers[1].accepts = false;
	cl_offload_decide(&p, &me, peers, 3, &c, &d);
	CU_ASSERT_EQUAL(d.verdict, CL_RUN_LOCAL);
	CU_ASSERT_EQUAL(d.peer, -1);
}

static void test_policy_latency_never_waits(void)
{
	struct cl_policy p;
	/* a little local spare with a long queue: misses the deadline */
	struct cl_load me = load("b", 0.1, 0.1, 1, 10);
	struct cl_load peers[] = {load("a", 0.06, 0.06, 0, 50)};
	struct cl_call c = {.qos = CL_QOS_LATENCY, .deadline_ms = 20, .run_ms = 2};
	struct cl_decision d;

	cl_policy_defaults(&p);
	cl_offload_decide(&p, &me, peers, 1, &c, &d);
	/* local eta 2/0.1 + 10*2/0.1 = 220; peer's is worse: run here, at once */
	CU_ASSERT_EQUAL(d.verdict, CL_RUN_LOCAL);
	CU_ASSERT_DOUBLE_EQUAL(d.local_eta_ms, 220.0, 1e-9);
}

static void test_policy_batch_waits_then_offloads(void)
{
	struct cl_policy p;
	struct cl_load me = load("b", 0.0, 0.0, 1, 3);
	struct cl_load peers[] = {load("a", 0.8, 0.8, 1, 0)};
	struct cl_call c = {.qos = CL_QOS_BATCH, .deadline_ms = 1000, .run_ms = 5};
	struct cl_decision d;

	cl_policy_defaults(&p);
	c.waited_ms = 200;
	cl_offload_decide(&p, &me, peers, 1, &c, &d);
	CU_ASSERT_EQUAL(d.verdict, CL_WAIT_LOCAL);
	c.waited_ms = 1000;
	cl_offload_decide(&p, &me, peers, 1, &c, &d);
	CU_ASSERT_EQUAL(d.verdict, CL_OFFLOAD);
	CU_ASSERT_EQUAL(d.peer, 0);
	/* nobody has spare: after the deadline it runs here (overflow), never waits forever */
	peers[0].spare_best = peers[0].spare_total = 0;
	cl_offload_decide(&p, &me, peers, 1, &c, &d);
	CU_ASSERT_EQUAL(d.verdict, CL_RUN_LOCAL);
}

static void test_policy_forwarded_runs_where_it_lands(void)
{
	struct cl_policy p;
	struct cl_load me = load("b", 0.0, 0.0, 0, 0);
	struct cl_load peers[] = {load("a", 1.0, 1.0, 1, 0)};
	struct cl_call c = {.qos = CL_QOS_LATENCY, .deadline_ms = 5, .run_ms = 2, .hops = 1};
	struct cl_decision d;

	cl_policy_defaults(&p);
	cl_offload_decide(&p, &me, peers, 1, &c, &d);
	CU_ASSERT_EQUAL(d.verdict, CL_RUN_LOCAL);
	CU_ASSERT_EQUAL(cl_qos_parse("batch"), CL_QOS_BATCH);
	CU_ASSERT_EQUAL(cl_qos_parse("latency"), CL_QOS_LATENCY);
	CU_ASSERT_EQUAL(cl_qos_parse("fast"), -EINVAL);
}

static void test_base64_roundtrip(void)
{
	const char *cases[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	uint8_t out[16];

	for (int i = 0; i < 7; i++) {
		char *s = cl_base64_encode(cases[i], strlen(cases[i]));

		CU_ASSERT_STRING_EQUAL(s, want[i]);
		CU_ASSERT_EQUAL(cl_base64_decode(s, strlen(s), out, sizeof(out)),
				(long)strlen(cases[i]));
		free(s);
	}
	CU_ASSERT_EQUAL(cl_base64_decode("Zm9", 3, out, sizeof(out)), -EINVAL);
	CU_ASSERT_EQUAL(cl_base64_decode("Zm=v", 4, out, sizeof(out)), -EINVAL);
}

NEMO_SUITE(cluster_policy, NULL, NULL, {"local when spare", test_policy_local_when_spare},
	   {"latency offloads to the most spare, warm first",
	    test_policy_latency_offloads_to_most_spare_warm},
	   {"latency never waits", test_policy_latency_never_waits},
	   {"batch waits, then offloads", test_policy_batch_waits_then_offloads},
	   {"forwarded calls run where they land", test_policy_forwarded_runs_where_it_lands},
	   {"base64", test_base64_roundtrip})

/* ---- the etcd client on one real member ------------------------------------------------------- */

static struct test_etcd one;
static bool one_up;

static int etcd_one_setup(void)
{
	one_up = test_etcd_available() && test_etcd_start(&one, 1) == 0;
	return 0;
}

static int etcd_one_teardown(void)
{
	if (one_up)
		test_etcd_stop(&one);
	one_up = false;
	return 0;
}

static struct cl_etcd *one_client(void)
{
	const char *eps[] = {one.endpoint[0]};

	if (!one_up) {
		nemo_test_skip(test_etcd_available() ? "etcd did not start"
						     : "no /usr/bin/etcd (Debian etcd-server)");
		return NULL;
	}
	return cl_etcd_new(eps, 1, 2000);
}

static void test_etcd_kv(void)
{
	struct cl_etcd *e = one_client();
	struct cl_kvs kvs;
	int64_t rev = 0, deleted = 0;
	const char bin[] = {'a', 0, 'b', '\n', (char)0xff};

	if (!e)
		return;
	CU_ASSERT_EQUAL(cl_etcd_put(e, "/t/kv/a", "one", 3, 0, &rev), 0);
	CU_ASSERT(rev > 0);
	CU_ASSERT_EQUAL(cl_etcd_put(e, "/t/kv/b", bin, sizeof(bin), 0, NULL), 0);
	CU_ASSERT_EQUAL(cl_etcd_put(e, "/t/kw", "x", 1, 0, NULL), 0);
	CU_ASSERT_EQUAL(cl_etcd_get(e, "/t/kv/a", false, &kvs), 0);
	CU_ASSERT_EQUAL(kvs.n, 1);
	if (kvs.n == 1) {
		CU_ASSERT_STRING_EQUAL(kvs.kv[0].key, "/t/kv/a");
		CU_ASSERT_EQUAL(kvs.kv[0].value_len, 3);
		CU_ASSERT_STRING_EQUAL((char *)kvs.kv[0].value, "one");
		CU_ASSERT_EQUAL(kvs.kv[0].mod_rev, rev);
		CU_ASSERT_EQUAL(kvs.kv[0].version, 1);
	}
	cl_kvs_release(&kvs);
	CU_ASSERT_EQUAL(cl_etcd_get(e, "/t/kv/", true, &kvs), 0);
	CU_ASSERT_EQUAL(kvs.n, 2); /* not /t/kw */
	if (kvs.n == 2) {
		CU_ASSERT_EQUAL(kvs.kv[1].value_len, sizeof(bin));
		CU_ASSERT(memcmp(kvs.kv[1].value, bin, sizeof(bin)) == 0);
	}
	cl_kvs_release(&kvs);
	CU_ASSERT_EQUAL(cl_etcd_get(e, "/t/none", false, &kvs), 0);
	CU_ASSERT_EQUAL(kvs.n, 0);
	cl_kvs_release(&kvs);
	CU_ASSERT_EQUAL(cl_etcd_delete(e, "/t/kv/", true, &deleted), 0);
	CU_ASSERT_EQUAL(deleted, 2);
	cl_etcd_destroy(e);
}

static void test_etcd_txn(void)
{
	struct cl_etcd *e = one_client();
	struct cl_cmp absent = {.key = "/t/txn", .target = CL_CMP_VERSION, .number = 0};
	struct cl_op put = {.kind = CL_OP_PUT, .key = "/t/txn", .value = "1", .value_len = 1};
	struct cl_op get = {.kind = CL_OP_GET, .key = "/t/txn"};
	struct cl_kvs kvs;
	bool ok = false;
	int64_t rev = 0;

	if (!e)
		return;
	CU_ASSERT_EQUAL(cl_etcd_txn(e, &absent, 1, &put, 1, &get, 1, &ok, &rev, &kvs), 0);
	CU_ASSERT_TRUE(ok);
	CU_ASSERT_EQUAL(kvs.n, 0);
	cl_kvs_release(&kvs);
	/* the second create fails and its failure branch reads what is there */
	CU_ASSERT_EQUAL(cl_etcd_txn(e, &absent, 1, &put, 1, &get, 1, &ok, NULL, &kvs), 0);
	CU_ASSERT_FALSE(ok);
	CU_ASSERT_EQUAL(kvs.n, 1);
	if (kvs.n == 1)
		CU_ASSERT_EQUAL(kvs.kv[0].mod_rev, rev);
	cl_kvs_release(&kvs);
	/* compare on the mod revision */
	{
		struct cl_cmp same = {.key = "/t/txn", .target = CL_CMP_MOD, .number = rev};
		struct cl_op del = {.kind = CL_OP_DELETE, .key = "/t/txn"};

		CU_ASSERT_EQUAL(cl_etcd_txn(e, &same, 1, &del, 1, NULL, 0, &ok, NULL, NULL), 0);
		CU_ASSERT_TRUE(ok);
		CU_ASSERT_EQUAL(cl_etcd_txn(e, &same, 1, &del, 1, NULL, 0, &ok, NULL, NULL), 0);
		CU_ASSERT_FALSE(ok);
	}
	/* etcd's limit of 128 ops in a branch is a clear -E2BIG */
	{
		static struct cl_op many[130];

		for (int i = 0; i < 130; i++)
			many[i] = (struct cl_op){.kind = CL_OP_GET, .key = "/t/x"};
		CU_ASSERT_EQUAL(cl_etcd_txn(e, NULL, 0, many, 130, NULL, 0, &ok, NULL, NULL),
				-E2BIG);
	}
	cl_etcd_destroy(e);
}

static void test_etcd_lease(void)
{
	struct cl_etcd *e = one_client();
	struct cl_kvs kvs;
	int64_t lease = 0;
	int ttl = 0;

	if (!e)
		return;
	CU_ASSERT_EQUAL(cl_etcd_lease_grant(e, 30, &lease), 0);
	CU_ASSERT(lease != 0);
	CU_ASSERT_EQUAL(cl_etcd_put(e, "/t/leased", "x", 1, lease, NULL), 0);
	CU_ASSERT_EQUAL(cl_etcd_lease_keepalive(e, lease, &ttl), 0);
	CU_ASSERT(ttl > 0 && ttl <= 30);
	CU_ASSERT_EQUAL(cl_etcd_lease_revoke(e, lease), 0);
	CU_ASSERT_EQUAL(cl_etcd_get(e, "/t/leased", false, &kvs), 0);
	CU_ASSERT_EQUAL(kvs.n, 0); /* the key went with its lease */
	cl_kvs_release(&kvs);
	CU_ASSERT_EQUAL(cl_etcd_lease_keepalive(e, lease, NULL), -ENOENT);
	CU_ASSERT_EQUAL(cl_etcd_put(e, "/t/leased", "x", 1, lease, NULL), -ENOENT);
	cl_etcd_destroy(e);
}

struct watch_seen {
	pthread_mutex_t lock;
	int snapshots, puts, deletes;
	int64_t last_rev;
	char last_key[64];
};

static void on_watch(void *arg, bool snapshot, const struct cl_watch_event *ev, int n,
		     int64_t revision)
{
	struct watch_seen *s = arg;

	pthread_mutex_lock(&s->lock);
	if (snapshot)
		s->snapshots++;
	for (int i = 0; i < n; i++) {
		if (snapshot)
			continue;
		if (ev[i].deleted)
			s->deletes++;
		else
			s->puts++;
		snprintf(s->last_key, sizeof(s->last_key), "%s", ev[i].kv->key);
	}
	s->last_rev = revision;
	pthread_mutex_unlock(&s->lock);
}

static bool wait_count(struct watch_seen *s, int *field, int want, int ms)
{
	for (int t = 0; t < ms; t += 10) {
		int v;

		pthread_mutex_lock(&s->lock);
		v = *field;
		pthread_mutex_unlock(&s->lock);
		if (v >= want)
			return true;
		test_msleep(10);
	}
	return false;
}

static void test_etcd_watch(void)
{
	struct cl_etcd *e = one_client();
	struct watch_seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct cl_watch *w;
	uint64_t t0;

	if (!e)
		return;
	cl_etcd_put(e, "/t/w/before", "0", 1, 0, NULL);
	w = cl_watch_start(e, "/t/w/", NULL, 0, on_watch, &s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	CU_ASSERT_EQUAL(s.snapshots, 1);
	t0 = now_ms();
	for (int i = 0; i < 20; i++) {
		char k[32];

		snprintf(k, sizeof(k), "/t/w/%d", i);
		cl_etcd_put(e, k, "v", 1, 0, NULL);
	}
	cl_etcd_put(e, "/t/other", "v", 1, 0, NULL); /* outside the prefix */
	cl_etcd_delete(e, "/t/w/3", false, NULL);
	CU_ASSERT_TRUE(wait_count(&s, &s.deletes, 1, 3000));
	CU_ASSERT_EQUAL(s.puts, 20);
	CU_ASSERT_STRING_EQUAL(s.last_key, "/t/w/3");
	printf("\n  watch: 20 puts and a delete seen in %llu ms\n",
	       (unsigned long long)(now_ms() - t0));
	cl_watch_stop(w);
	cl_etcd_destroy(e);
}

static void test_etcd_down_at_start(void)
{
	/* nothing listens there: a clear error naming the endpoint after the retries */
	uint16_t port = test_free_port();
	char ep[64];
	const char *eps[] = {ep};
	struct cl_etcd *e;
	struct test_etcd late;
	uint64_t t0;
	int rc;

	snprintf(ep, sizeof(ep), "http://127.0.0.1:%u", port);
	e = cl_etcd_new(eps, 1, 500);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(cl_etcd_endpoints(e), ep);
	t0 = now_ms();
	rc = cl_etcd_wait_ready(e, 1000);
	CU_ASSERT_EQUAL(rc, -ECONNREFUSED);
	CU_ASSERT(now_ms() - t0 >= 700); /* it retried, with a backoff, for the time it was given */
	cl_etcd_destroy(e);
	/* bad endpoints are refused up front, naming them */
	{
		const char *bad[] = {"127.0.0.1:2379"};

		errno = 0;
		CU_ASSERT_PTR_NULL(cl_etcd_new(bad, 1, 500));
		CU_ASSERT_EQUAL(errno, EINVAL);
	}
	/* an etcd that comes up while we wait is found */
	if (!test_etcd_available()) {
		nemo_test_skip("no /usr/bin/etcd (Debian etcd-server)");
		return;
	}
	if (test_etcd_start(&late, 1) < 0) {
		CU_FAIL("etcd did not start");
		return;
	}
	{
		const char *eps2[] = {ep, late.endpoint[0]}; /* the dead one first: failover */

		e = cl_etcd_new(eps2, 2, 500);
		CU_ASSERT_EQUAL(cl_etcd_wait_ready(e, 5000), 0);
		CU_ASSERT_EQUAL(cl_etcd_put(e, "/t/failover", "1", 1, 0, NULL), 0);
		cl_etcd_destroy(e);
	}
	test_etcd_stop(&late);
}

NEMO_SUITE(cluster_etcd, etcd_one_setup, etcd_one_teardown, {"kv", test_etcd_kv},
	   {"txn", test_etcd_txn}, {"lease", test_etcd_lease}, {"watch", test_etcd_watch},
	   {"down at start: clear error, retry, failover", test_etcd_down_at_start})

/* ---- three members: one dies, the client carries on ----------------------------------------------- */

static void test_etcd_three_members_failover(void)
{
	struct test_etcd three;
	struct watch_seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
	const char *eps[3];
	struct cl_etcd *e, *w_e;
	struct cl_watch *w;
	int ok = 0;

	if (!test_etcd_available()) {
		nemo_test_skip("no /usr/bin/etcd (Debian etcd-server)");
		return;
	}
	CU_ASSERT_EQUAL_FATAL(test_etcd_start(&three, 3), 0);
	for (int i = 0; i < 3; i++)
		eps[i] = three.endpoint[i];
	e = cl_etcd_new(eps, 3, 1000);
	w_e = cl_etcd_new(eps, 3, 1000);
	w = cl_watch_start(w_e, "/t/3/", NULL, 3000, on_watch, &s);
	CU_ASSERT_PTR_NOT_NULL(w);
	CU_ASSERT_EQUAL(cl_etcd_put(e, "/t/3/a", "1", 1, 0, NULL), 0);
	/* the first member (the one both clients use) dies */
	test_etcd_kill(&three, 0);
	for (int i = 0; i < 20; i++) {
		char k[32];

		snprintf(k, sizeof(k), "/t/3/k%d", i);
		if (cl_etcd_put(e, k, "v", 1, 0, NULL) == 0)
			ok++;
	}
	CU_ASSERT_EQUAL(ok, 20);
	CU_ASSERT_TRUE(wait_count(&s, &s.puts, 21, 10000)); /* the watch moved on too */
	printf("\n  3 members, member 0 killed: %d/20 puts, watch saw %d of 21\n", ok, s.puts);
	cl_watch_stop(w);
	cl_etcd_destroy(w_e);
	cl_etcd_destroy(e);
	test_etcd_stop(&three);
}

NEMO_SUITE(cluster_etcd3, NULL, NULL,
	   {"one member killed: writes and watches go on", test_etcd_three_members_failover})
