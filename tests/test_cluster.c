/* test_cluster.c - the cluster module on real etcd: client, failover, watches, offload policy. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nemo/base64.h"
#include "nemo/clock.h"
#include "nemo/cluster.h"
#include "nemo/log.h"
#include "test.h"
#include "test_cluster.h"

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
		char *s = nemo_base64_encode(cases[i], strlen(cases[i]));

		CU_ASSERT_STRING_EQUAL(s, want[i]);
		CU_ASSERT_EQUAL(nemo_base64_decode(s, strlen(s), out, sizeof(out)),
				(long)strlen(cases[i]));
		free(s);
	}
	CU_ASSERT_EQUAL(nemo_base64_decode("Zm9", 3, out, sizeof(out)), -EINVAL);
	CU_ASSERT_EQUAL(nemo_base64_decode("Zm=v", 4, out, sizeof(out)), -EINVAL);
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
	t0 = nemo_now_ms();
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
	       (unsigned long long)(nemo_now_ms() - t0));
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
	t0 = nemo_now_ms();
	rc = cl_etcd_wait_ready(e, 1000, NULL);
	CU_ASSERT_EQUAL(rc, -ECONNREFUSED);
	CU_ASSERT(nemo_now_ms() - t0 >=
		  700); /* it retried, with a backoff, for the time it was given */
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
		CU_ASSERT_EQUAL(cl_etcd_wait_ready(e, 5000, NULL), 0);
		CU_ASSERT_EQUAL(cl_etcd_put(e, "/t/failover", "1", 1, 0, NULL), 0);
		cl_etcd_destroy(e);
	}
	test_etcd_stop(&late);
}

/* the forward client, against a real HTTP server (etcd's) */
static void test_http_forward(void)
{
	struct cl_http_reply rp;
	char addr[64];
	const char *hdr[] = {"Content-Type: application/json"};

	if (!one_up) {
		nemo_test_skip("etcd did not start");
		return;
	}
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", one.client_port[0]);
	CU_ASSERT_EQUAL(cl_http_forward(addr, "GET", "/version", NULL, 0, NULL, 0, 2000, &rp), 0);
	CU_ASSERT_EQUAL(rp.status, 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(rp.body, "etcdserver"));
	cl_http_reply_release(&rp);
	for (int i = 0; i < 3; i++) { /* kept-alive connections are reused */
		CU_ASSERT_EQUAL(cl_http_forward(addr, "POST", "/v3/kv/range", hdr, 1,
						"{\"key\":\"AA==\"}", 14, 2000, &rp),
				0);
		CU_ASSERT_EQUAL(rp.status, 200);
		CU_ASSERT_STRING_EQUAL(rp.content_type, "application/json");
		cl_http_reply_release(&rp);
	}
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", test_free_port());
	CU_ASSERT_EQUAL(cl_http_forward(addr, "GET", "/", NULL, 0, NULL, 0, 1000, &rp),
			-ECONNREFUSED);
}

NEMO_SUITE(cluster_etcd, etcd_one_setup, etcd_one_teardown, {"kv", test_etcd_kv},
	   {"txn", test_etcd_txn}, {"lease", test_etcd_lease}, {"watch", test_etcd_watch},
	   {"down at start: clear error, retry, failover", test_etcd_down_at_start},
	   {"forward to a peer over HTTP", test_http_forward})

/* ---- secured members: TLS with client certificates; TLS with etcd's auth ------------------------- */

/*
 * Two members, as etcd 3.4's HTTP gateway allows: one asks clients for a certificate (auth
 * off: with --client-cert-auth the gateway refuses logins), the other has auth on over TLS.
 */
static struct test_etcd sec_cert, sec_auth;
static struct test_etcd_tls sec_tls;
static bool sec_up;

static int secure_setup(void)
{
	/* tokens unused for 1 s are dropped: a client must log in again, and does */
	sec_up = test_etcd_available() && test_etcd_make_certs(&sec_tls) == 0 &&
		 test_etcd_start_tls(&sec_cert, &sec_tls, 300, true) == 0 &&
		 test_etcd_start_tls(&sec_auth, &sec_tls, 1, false) == 0 &&
		 test_etcd_enable_auth(&sec_auth, &sec_tls, "nemo", "nemopw", "/s/") == 0;
	return 0;
}

static int secure_teardown(void)
{
	test_etcd_stop(&sec_cert);
	test_etcd_stop(&sec_auth);
	test_etcd_remove_certs(&sec_tls);
	sec_up = false;
	return 0;
}

static bool secure_skip(void)
{
	if (!sec_up) {
		nemo_test_skip(test_etcd_available() ? "the secured etcd did not start"
						     : "no /usr/bin/etcd (Debian etcd-server)");
		return true;
	}
	return false;
}

/* A client of member t: with the CA or not, the client certificate or not, a user or not. */
static struct cl_etcd *secure_client(const struct test_etcd *t, bool ca, bool cert,
				     const char *user, const char *password)
{
	const char *eps[] = {t->endpoint[0]};
	struct cl_etcd_security s = {
		.ca_file = ca ? sec_tls.ca : NULL,
		.cert_file = cert ? sec_tls.client_cert : NULL,
		.key_file = cert ? sec_tls.client_key : NULL,
		.user = user,
		.password = password,
	};

	return cl_etcd_new_secure(eps, 1, 2000, &s);
}

/* kv, txn, lease and watch through e (w_e: the watch's client), under /s/. */
static void kv_txn_lease_watch(struct cl_etcd *e, struct cl_etcd *w_e)
{
	struct watch_seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct cl_cmp cmp = {.key = "/s/k", .target = CL_CMP_VERSION, .result = CL_CMP_GREATER};
	struct cl_op put = {.kind = CL_OP_PUT, .key = "/s/t", .value = "2", .value_len = 1};
	struct cl_watch *w = cl_watch_start(w_e, "/s/", NULL, 3000, on_watch, &s);
	struct cl_kvs kvs;
	int64_t lease = 0;
	int ttl = 0;
	bool ok = false;

	CU_ASSERT_PTR_NOT_NULL(w);
	CU_ASSERT_EQUAL(cl_etcd_put(e, "/s/k", "1", 1, 0, NULL), 0);
	CU_ASSERT_EQUAL(cl_etcd_get(e, "/s/k", false, &kvs), 0);
	CU_ASSERT_EQUAL(kvs.n, 1);
	if (kvs.n == 1)
		CU_ASSERT_STRING_EQUAL((const char *)kvs.kv[0].value, "1");
	cl_kvs_release(&kvs);
	CU_ASSERT_EQUAL(cl_etcd_txn(e, &cmp, 1, &put, 1, NULL, 0, &ok, NULL, NULL), 0);
	CU_ASSERT_TRUE(ok);
	CU_ASSERT_EQUAL(cl_etcd_lease_grant(e, 5, &lease), 0);
	CU_ASSERT_EQUAL(cl_etcd_put(e, "/s/l", "x", 1, lease, NULL), 0);
	CU_ASSERT_EQUAL(cl_etcd_lease_keepalive(e, lease, &ttl), 0);
	CU_ASSERT(ttl > 0);
	CU_ASSERT_EQUAL(cl_etcd_lease_revoke(e, lease), 0);
	CU_ASSERT_TRUE(wait_count(&s, &s.puts, 3, 5000)); /* k, t, l */
	cl_watch_stop(w);
}

static void test_secure_client_certs(void)
{
	struct cl_etcd *e, *w_e;

	if (secure_skip())
		return;
	CU_ASSERT_EQUAL(strncmp(sec_cert.endpoint[0], "https://", 8), 0);
	e = secure_client(&sec_cert, true, true, NULL, NULL);
	w_e = secure_client(&sec_cert, true, true, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w_e);
	kv_txn_lease_watch(e, w_e);
	cl_etcd_destroy(w_e);
	cl_etcd_destroy(e);
	/* without the certificate the member wants, or without the CA that signed the member's */
	e = secure_client(&sec_cert, true, false, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT(cl_etcd_put(e, "/s/x", "1", 1, 0, NULL) < 0);
	cl_etcd_destroy(e);
	e = secure_client(&sec_cert, false, true, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT(cl_etcd_put(e, "/s/x", "1", 1, 0, NULL) < 0);
	cl_etcd_destroy(e);
}

static void test_secure_auth(void)
{
	struct cl_etcd *e, *w_e;
	struct cl_etcd_stats a, b;
	struct watch_seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct cl_watch *w;

	if (secure_skip())
		return;
	e = secure_client(&sec_auth, true, false, "nemo", "nemopw");
	w_e = secure_client(&sec_auth, true, false, "nemo", "nemopw");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w_e);
	kv_txn_lease_watch(e, w_e);
	/* outside its prefix the user may not write: etcd's refusal, said */
	CU_ASSERT_EQUAL(cl_etcd_put(e, "/other", "1", 1, 0, NULL), -EACCES);
	/* etcd drops a token unused for its TTL (1 s here): the client logs in again */
	w = cl_watch_start(w_e, "/s/", NULL, 3000, on_watch, &s);
	CU_ASSERT_PTR_NOT_NULL(w);
	test_msleep(2500);
	cl_etcd_stats(e, &a);
	CU_ASSERT_EQUAL(cl_etcd_put(e, "/s/k", "3", 1, 0, NULL), 0);
	cl_etcd_stats(e, &b);
	printf("\n  after its token expired, a put took %llu calls (refused, log in, put)\n",
	       (unsigned long long)(b.calls[CL_REQ_WRITE] - a.calls[CL_REQ_WRITE]));
	CU_ASSERT_EQUAL(b.calls[CL_REQ_WRITE] - a.calls[CL_REQ_WRITE], 3);
	/* a watch opened before still hears */
	CU_ASSERT_TRUE(wait_count(&s, &s.puts, 1, 5000));
	cl_watch_stop(w);
	cl_etcd_destroy(w_e);
	cl_etcd_destroy(e);
	/* no user, a wrong password: etcd refuses, and says so (-EACCES) */
	e = secure_client(&sec_auth, true, false, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL(cl_etcd_put(e, "/s/x", "1", 1, 0, NULL), -EACCES);
	cl_etcd_destroy(e);
	e = secure_client(&sec_auth, true, false, "nemo", "wrong");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL(cl_etcd_put(e, "/s/x", "1", 1, 0, NULL), -EACCES);
	cl_etcd_destroy(e);
}

static void test_secure_bad_input(void)
{
	const char *eps[] = {"https://127.0.0.1:1"};
	struct cl_etcd_security bad;

	if (secure_skip())
		return;
	/* each named in the log, refused at once */
	bad = (struct cl_etcd_security){.cert_file = sec_tls.client_cert};
	errno = 0;
	CU_ASSERT_PTR_NULL(cl_etcd_new_secure(eps, 1, 1000, &bad));
	CU_ASSERT_EQUAL(errno, EINVAL);
	bad = (struct cl_etcd_security){.ca_file = "/nonexistent/ca.pem"};
	CU_ASSERT_PTR_NULL(cl_etcd_new_secure(eps, 1, 1000, &bad));
	bad = (struct cl_etcd_security){.user = "nemo"};
	CU_ASSERT_PTR_NULL(cl_etcd_new_secure(eps, 1, 1000, &bad));
	eps[0] = "ftp://127.0.0.1:1";
	CU_ASSERT_PTR_NULL(cl_etcd_new_secure(eps, 1, 1000, NULL));
}

/* A node joins a secured member, and records an activation's life. */
static void secure_cfg(struct cl_config *c, const struct test_etcd *t, bool cert, const char *user,
		       const char *password)
{
	cl_config_defaults(c);
	c->enabled = true;
	snprintf(c->node, sizeof(c->node), "s1");
	snprintf(c->address, sizeof(c->address), "127.0.0.1:1");
	snprintf(c->prefix, sizeof(c->prefix), "/s/nemo");
	c->n_endpoints = 1;
	snprintf(c->endpoints[0], sizeof(c->endpoints[0]), "%s", t->endpoint[0]);
	snprintf(c->ca_file, sizeof(c->ca_file), "%s", sec_tls.ca);
	if (cert) {
		snprintf(c->cert_file, sizeof(c->cert_file), "%s", sec_tls.client_cert);
		snprintf(c->key_file, sizeof(c->key_file), "%s", sec_tls.client_key);
	}
	snprintf(c->user, sizeof(c->user), "%s", user ? user : "");
	snprintf(c->password, sizeof(c->password), "%s", password ? password : "");
	c->lease_ttl_s = 2;
	c->start_wait_ms = 3000;
}

static void secure_node(const struct test_etcd *t, bool cert, const char *user,
			const char *password)
{
	struct cl_config c;
	struct cl_node *n;
	struct cl_act_record rec;
	const char *id = "5ec0000000000000000000000000000a";

	secure_cfg(&c, t, cert, user, password);
	n = cl_node_join(&c, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(n);
	CU_ASSERT_TRUE(cl_node_healthy(n, NULL));
	CU_ASSERT_EQUAL(cl_act_accept(n, id, "echo", "p", 1, NULL), 0);
	CU_ASSERT_EQUAL(cl_act_start(n, id), 0);
	CU_ASSERT_EQUAL(cl_act_end(n, id, "success", "r", 1), 0);
	CU_ASSERT_EQUAL(cl_node_flush(n), 0);
	CU_ASSERT_EQUAL(cl_act_lookup(n, id, &rec), 0);
	CU_ASSERT_STRING_EQUAL(rec.state, "success");
	cl_act_record_release(&rec);
	cl_node_leave(n);
}

static void test_secure_nodes(void)
{
	if (secure_skip())
		return;
	secure_node(&sec_cert, true, NULL, NULL);
	secure_node(&sec_auth, false, "nemo", "nemopw");
	/* a wrong password: a clear error at once, not start_wait_ms of retries */
	{
		struct cl_config c;
		uint64_t t0 = nemo_now_ms();

		secure_cfg(&c, &sec_auth, false, "nemo", "wrong");
		errno = 0;
		CU_ASSERT_PTR_NULL(cl_node_join(&c, NULL));
		CU_ASSERT_EQUAL(errno, EACCES);
		CU_ASSERT(nemo_now_ms() - t0 < 1000);
	}
}

NEMO_SUITE(cluster_etcd_secure, secure_setup, secure_teardown,
	   {"TLS with client certificates: kv, txn, lease, watch", test_secure_client_certs},
	   {"auth over TLS: as a user, again after the token expired", test_secure_auth},
	   {"bad TLS and auth settings: named", test_secure_bad_input},
	   {"a node joins either, and records", test_secure_nodes})

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

/* ---- the shared state: nodes, registry, activation records, adoption (three etcd members) ------- */

static struct test_etcd st_etcd;
static bool st_up;
static char st_prefix[64];

static int state_setup(void)
{
	st_up = test_etcd_available() && test_etcd_start(&st_etcd, 3) == 0;
	snprintf(st_prefix, sizeof(st_prefix), "/nemo-test-%d", (int)getpid());
	return 0;
}

static int state_teardown(void)
{
	if (st_up)
		test_etcd_stop(&st_etcd);
	st_up = false;
	return 0;
}

#define MAX_SEEN 512

/* What a node's hooks heard. */
struct heard {
	pthread_mutex_t lock;
	int deployed, deleted, adopted;
	char last_fn[64];
	size_t last_code_len;
	bool last_code_inline;
	char owner_address[128];
	char adopted_ids[MAX_SEEN][40];
	int delivered; /* dead nodes' results handed to deliver */
	char delivered_ids[MAX_SEEN][40], delivered_states[MAX_SEEN][24];
	struct cl_node *self; /* to confirm deliveries on */
	double spare;
	uint32_t queue;
};

static int h_deployed(void *arg, const struct cl_fn_record *r)
{
	struct heard *h = arg;

	pthread_mutex_lock(&h->lock);
	h->deployed++;
	snprintf(h->last_fn, sizeof(h->last_fn), "%s", r->name);
	h->last_code_len = r->code ? r->code_len : r->code_size;
	h->last_code_inline = r->code != NULL;
	snprintf(h->owner_address, sizeof(h->owner_address), "%s", r->owner_address);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static void h_deleted(void *arg, const char *name)
{
	struct heard *h = arg;

	pthread_mutex_lock(&h->lock);
	h->deleted++;
	snprintf(h->last_fn, sizeof(h->last_fn), "%s", name);
	pthread_mutex_unlock(&h->lock);
}

static int h_adopt(void *arg, const struct cl_act_record *r)
{
	struct heard *h = arg;

	pthread_mutex_lock(&h->lock);
	if (h->adopted < MAX_SEEN)
		snprintf(h->adopted_ids[h->adopted], 40, "%s", r->id);
	h->adopted++;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/* A route "delivered" at once: its id and state are noted, the node told. */
static int h_deliver(void *arg, const struct cl_act_record *r)
{
	struct heard *h = arg;
	struct cl_node *self;

	pthread_mutex_lock(&h->lock);
	if (h->delivered < MAX_SEEN) {
		snprintf(h->delivered_ids[h->delivered], 40, "%s", r->id);
		snprintf(h->delivered_states[h->delivered], 24, "%s", r->state);
	}
	h->delivered++;
	self = h->self;
	pthread_mutex_unlock(&h->lock);
	return self ? cl_act_delivered(self, r->id) : 0;
}

static void h_load(void *arg, struct cl_local_load *out)
{
	struct heard *h = arg;

	out->n_cores = 2;
	out->cores[0] = 1;
	out->cores[1] = 2;
	pthread_mutex_lock(&h->lock);
	out->spare[0] = h->spare;
	out->spare[1] = h->spare / 2;
	out->queue = h->queue;
	pthread_mutex_unlock(&h->lock);
	out->warm_json = "{\"echo\": 1}";
	out->functions_json = "[\"echo\"]";
}

static void node_cfg(struct cl_config *c, const char *name, int first_ep, int n_ep)
{
	cl_config_defaults(c);
	c->enabled = true;
	snprintf(c->node, sizeof(c->node), "%s", name);
	snprintf(c->address, sizeof(c->address), "127.0.0.1:%d", 9000 + name[0]);
	snprintf(c->prefix, sizeof(c->prefix), "%s", st_prefix);
	c->n_endpoints = n_ep;
	for (int i = 0; i < n_ep; i++)
		snprintf(c->endpoints[i], sizeof(c->endpoints[i]), "%s",
			 st_etcd.endpoint[(first_ep + i) % 3]);
	c->lease_ttl_s = 2;
	c->publish_ms = 100;
	c->timeout_ms = 500;
	c->start_wait_ms = 3000;
	c->inline_code_max = 1024;
}

static struct cl_node *join(const char *name, struct heard *h, int first_ep, int n_ep)
{
	struct cl_config c;
	struct cl_hooks hooks = {.fn_deployed = h_deployed,
				 .fn_deleted = h_deleted,
				 .adopt = h_adopt,
				 .load = h_load,
				 .deliver = h_deliver,
				 .arg = h};
	struct cl_node *n;

	node_cfg(&c, name, first_ep, n_ep);
	n = cl_node_join(&c, &hooks);
	pthread_mutex_lock(&h->lock);
	h->self = n;
	pthread_mutex_unlock(&h->lock);
	return n;
}

static bool state_skip(void)
{
	if (!st_up) {
		nemo_test_skip(test_etcd_available() ? "etcd did not start"
						     : "no /usr/bin/etcd (Debian etcd-server)");
		return true;
	}
	return false;
}

static int wait_nodes(struct cl_node *n, int want, int ms)
{
	struct cl_node_info info[8];
	int k = 0;

	for (int t = 0; t <= ms; t += 20) {
		k = cl_node_list(n, info, 8);
		for (int i = 0; i < k; i++)
			cl_node_info_release(&info[i]);
		if (k == want)
			return k;
		test_msleep(20);
	}
	return k;
}

static void test_state_nodes_and_registry(void)
{
	struct heard ha = {.lock = PTHREAD_MUTEX_INITIALIZER, .spare = 0.8};
	struct heard hb = {.lock = PTHREAD_MUTEX_INITIALIZER, .spare = 0.0};
	struct heard hc = {.lock = PTHREAD_MUTEX_INITIALIZER, .spare = 0.5};
	struct cl_node *a, *b, *c;
	struct cl_node_info info[8];
	uint8_t big[4096];
	uint64_t t0, t_b = 0, t_c = 0;
	int k;

	if (state_skip())
		return;
	a = join("a", &ha, 0, 3);
	b = join("b", &hb, 1, 3);
	c = join("c", &hc, 2, 3);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	/* a second node of the same name is refused while the first lives */
	{
		struct heard hx = {.lock = PTHREAD_MUTEX_INITIALIZER};

		errno = 0;
		CU_ASSERT_PTR_NULL(join("b", &hx, 0, 3));
		CU_ASSERT_EQUAL(errno, EEXIST);
	}
	CU_ASSERT_EQUAL(wait_nodes(a, 3, 2000), 3);
	k = cl_node_list(c, info, 8);
	CU_ASSERT_EQUAL(k, 3);
	if (k == 3) {
		CU_ASSERT_STRING_EQUAL(info[0].name, "a");
		CU_ASSERT_STRING_EQUAL(info[1].name, "b");
		CU_ASSERT_EQUAL(info[0].n_cores, 2);
		CU_ASSERT_DOUBLE_EQUAL(info[0].spare[0], 0.8, 1e-3);
		CU_ASSERT_DOUBLE_EQUAL(info[1].spare[0], 0.0, 1e-3);
		CU_ASSERT_STRING_EQUAL(info[0].warm, "{\"echo\":1}");
	}
	for (int i = 0; i < k; i++)
		cl_node_info_release(&info[i]);
	/* a change of load is published within publish_ms (plus the watch) */
	pthread_mutex_lock(&hb.lock);
	hb.spare = 0.9;
	pthread_mutex_unlock(&hb.lock);
	t0 = nemo_now_ms();
	for (;;) {
		double s = -1;

		k = cl_node_list(a, info, 8);
		for (int i = 0; i < k; i++) {
			if (strcmp(info[i].name, "b") == 0)
				s = info[i].spare[0];
			cl_node_info_release(&info[i]);
		}
		if (s > 0.85 || nemo_now_ms() - t0 > 2000)
			break;
		test_msleep(10);
	}
	printf("\n  node record change seen by a peer after %llu ms (publish_ms 100)\n",
	       (unsigned long long)(nemo_now_ms() - t0));
	CU_ASSERT(nemo_now_ms() - t0 < 1000);

	/* deploy on a: b and c serve it within 1 s (small code inline, in the record) */
	t0 = nemo_now_ms();
	CU_ASSERT_EQUAL(cl_node_fn_publish(a, "echo", 1, "{\"runtime\":\"c\"}", "code!", 5), 0);
	while ((!t_b || !t_c) && nemo_now_ms() - t0 < 2000) {
		pthread_mutex_lock(&hb.lock);
		if (!t_b && hb.deployed)
			t_b = nemo_now_ms() - t0;
		pthread_mutex_unlock(&hb.lock);
		pthread_mutex_lock(&hc.lock);
		if (!t_c && hc.deployed)
			t_c = nemo_now_ms() - t0;
		pthread_mutex_unlock(&hc.lock);
		test_msleep(2);
	}
	printf("  deploy on a heard by b after %llu ms, by c after %llu ms\n",
	       (unsigned long long)t_b, (unsigned long long)t_c);
	CU_ASSERT(t_b > 0 && t_b < 1000);
	CU_ASSERT(t_c > 0 && t_c < 1000);
	CU_ASSERT_EQUAL(ha.deployed, 0); /* its own deploy is not echoed */
	CU_ASSERT_STRING_EQUAL(hb.last_fn, "echo");
	CU_ASSERT_TRUE(hb.last_code_inline);
	CU_ASSERT_EQUAL(hb.last_code_len, 5);
	/* big code: the record names the owner to fetch it from */
	memset(big, 'x', sizeof(big));
	CU_ASSERT_EQUAL(cl_node_fn_publish(a, "big", 1, "{}", big, sizeof(big)), 0);
	t0 = nemo_now_ms();
	while (hc.deployed < 2 && nemo_now_ms() - t0 < 2000)
		test_msleep(5);
	CU_ASSERT_EQUAL(hc.deployed, 2);
	CU_ASSERT_FALSE(hc.last_code_inline);
	CU_ASSERT_EQUAL(hc.last_code_len, sizeof(big));
	CU_ASSERT_STRING_EQUAL(hc.owner_address, "127.0.0.1:9097");
	/* delete on b: a and c hear it */
	CU_ASSERT_EQUAL(cl_node_fn_unpublish(b, "echo"), 0);
	CU_ASSERT_EQUAL(cl_node_fn_unpublish(b, "echo"), -ENOENT);
	t0 = nemo_now_ms();
	while ((ha.deleted < 1 || hc.deleted < 1) && nemo_now_ms() - t0 < 2000)
		test_msleep(5);
	CU_ASSERT_EQUAL(ha.deleted, 1);
	CU_ASSERT_EQUAL(hc.deleted, 1);
	CU_ASSERT_EQUAL(hb.deleted, 0);

	/* records of another version are ignored, with a log line, and counted */
	{
		struct cl_stats st0, st1;
		char key[128];
		const char *rec = "{\"v\":2,\"name\":\"future\",\"address\":\"x\"}";

		cl_node_stats(c, &st0);
		snprintf(key, sizeof(key), "%s/node/future", st_prefix);
		CU_ASSERT_EQUAL(cl_etcd_put(cl_node_etcd(a), key, rec, strlen(rec), 0, NULL), 0);
		snprintf(key, sizeof(key), "%s/fn/future", st_prefix);
		CU_ASSERT_EQUAL(cl_etcd_put(cl_node_etcd(a), key, "{\"v\":7}", 7, 0, NULL), 0);
		t0 = nemo_now_ms();
		do {
			test_msleep(10);
			cl_node_stats(c, &st1);
		} while (st1.ignored_records < st0.ignored_records + 2 &&
			 nemo_now_ms() - t0 < 2000);
		CU_ASSERT_EQUAL(st1.ignored_records, st0.ignored_records + 2);
		CU_ASSERT_EQUAL(wait_nodes(c, 3, 0), 3); /* "future" is not a node */
		CU_ASSERT_EQUAL(hc.deployed, 2);	 /* nor a function */
		snprintf(key, sizeof(key), "%s/node/future", st_prefix);
		cl_etcd_delete(cl_node_etcd(a), key, false, NULL);
		snprintf(key, sizeof(key), "%s/fn/future", st_prefix);
		cl_etcd_delete(cl_node_etcd(a), key, false, NULL);
	}
	cl_node_fn_unpublish(a, "big");
	/* a node that leaves is gone from the others' lists at once (lease revoked) */
	cl_node_leave(c);
	CU_ASSERT_EQUAL(wait_nodes(a, 2, 2000), 2);
	cl_node_leave(b);
	cl_node_leave(a);
}

struct acc_arg {
	struct cl_node *n;
	int from, count;
	int ok;
};

static void *accept_many(void *arg)
{
	struct acc_arg *a = arg;

	for (int i = a->from; i < a->from + a->count; i++) {
		char id[40];

		snprintf(id, sizeof(id), "%032x", i);
		if (cl_act_accept(a->n, id, "echo", "{\"i\":1}", 7, NULL) == 0 &&
		    cl_act_start(a->n, id) == 0 && cl_act_end(a->n, id, "success", "ok", 2) == 0)
			a->ok++;
	}
	return NULL;
}

static void test_state_activation_records_batched(void)
{
	struct heard ha = {.lock = PTHREAD_MUTEX_INITIALIZER, .spare = 1};
	struct heard hc = {.lock = PTHREAD_MUTEX_INITIALIZER, .spare = 1};
	struct cl_node *a, *c;
	struct acc_arg args[8];
	pthread_t th[8];
	struct cl_stats st;
	struct cl_act_record rec;
	int ok = 0;
	uint64_t t0;

	if (state_skip())
		return;
	a = join("a", &ha, 0, 3);
	c = join("c", &hc, 1, 3);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	t0 = nemo_now_ms();
	for (int i = 0; i < 8; i++) {
		args[i] = (struct acc_arg){a, 0x1000 + i * 50, 50, 0};
		pthread_create(&th[i], NULL, accept_many, &args[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ok += args[i].ok;
	}
	/* ends return at once and ride in a later txn: the last ones wait for company */
	CU_ASSERT_EQUAL(cl_node_flush(a), 0);
	cl_node_stats(a, &st);
	printf("\n  400 activations accepted, started, ended by 8 threads in %llu ms: %llu txns "
	       "(%.2f per activation, %.2f per record write), %llu etcd writes in all (%.2f per "
	       "activation), %llu ops, %.0f bytes out per activation\n",
	       (unsigned long long)(nemo_now_ms() - t0), (unsigned long long)st.txns,
	       st.txns / 400.0, st.txns / 1200.0, (unsigned long long)st.etcd.calls[CL_REQ_WRITE],
	       st.etcd.calls[CL_REQ_WRITE] / 400.0, (unsigned long long)st.act_ops,
	       st.etcd.bytes_out / 400.0);
	CU_ASSERT_EQUAL(ok, 400);
	CU_ASSERT_EQUAL(st.accepted, 400);
	CU_ASSERT_EQUAL(st.ended, 400);
	/* at most one etcd write per activation, its three records, node records and all */
	CU_ASSERT(st.etcd.calls[CL_REQ_WRITE] <= 400);
	/* any node reads the terminal record, with the node that ran it */
	CU_ASSERT_EQUAL(cl_act_lookup(c, "00000000000000000000000000001001", &rec), 0);
	CU_ASSERT_STRING_EQUAL(rec.state, "success");
	CU_ASSERT_STRING_EQUAL(rec.node, "a");
	CU_ASSERT_EQUAL(rec.result_len, 2);
	cl_act_record_release(&rec);
	CU_ASSERT_EQUAL(cl_act_lookup(c, "ffffffffffffffffffffffffffffffff", &rec), -ENOENT);
	/* a start of an activation this node does not own is refused */
	CU_ASSERT_EQUAL(cl_act_start(c, "00000000000000000000000000001001"), -ESTALE);
	cl_node_leave(c);
	cl_node_leave(a);
}

/*
 * Node b in a child process accepts 30 activations, starts 10, ends 4 of those, and is killed
 * with SIGKILL. a and c adopt: the 20 never started run once (each id adopted by exactly one
 * node), the 6 started and unfinished end "interrupted", the 4 finished keep their results.
 */
static void test_state_kill9_adoption(void)
{
	struct heard ha = {.lock = PTHREAD_MUTEX_INITIALIZER, .spare = 1};
	struct heard hc = {.lock = PTHREAD_MUTEX_INITIALIZER, .spare = 1};
	struct cl_node *a, *c;
	int to_child[2], from_child[2];
	pid_t pid;
	char byte = 0;
	uint64_t t_kill, t_done = 0;
	int states[4] = {0}; /* success, interrupted, accepted (elsewhere), other */

	if (state_skip())
		return;
	CU_ASSERT_EQUAL_FATAL(pipe(to_child), 0);
	CU_ASSERT_EQUAL_FATAL(pipe(from_child), 0);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct heard hb = {.lock = PTHREAD_MUTEX_INITIALIZER};
		struct cl_node *b;
		int bad = 0;

		close(to_child[1]);
		close(from_child[0]);
		b = join("b", &hb, 2, 3);
		if (!b || read(to_child[0], &byte, 1) != 1)
			_exit(2);
		for (int i = 0; i < 30; i++) {
			char id[40];

			snprintf(id, sizeof(id), "%032x", 0xb000 + i);
			bad += cl_act_accept(b, id, "echo", "p", 1,
					     "{\"callback\":\"http://x/\"}") != 0;
			if (i < 10)
				bad += cl_act_start(b, id) != 0;
			if (i < 4)
				bad += cl_act_end(b, id, "success", "done", 4) != 0;
			/* two of the four reached their route before the kill, two did not */
			if (i < 2)
				bad += cl_act_delivered(b, id) != 0;
		}
		bad += cl_node_flush(b) != 0;
		byte = bad ? 'x' : 'k';
		if (write(from_child[1], &byte, 1) != 1)
			_exit(3);
		pause(); /* until SIGKILL: no lease revoke, no goodbye */
		_exit(0);
	}
	close(to_child[0]);
	close(from_child[1]);
	a = join("a", &ha, 0, 3);
	c = join("c", &hc, 1, 3);
	CU_ASSERT_PTR_NOT_NULL(a);
	CU_ASSERT_PTR_NOT_NULL(c);
	CU_ASSERT_EQUAL(write(to_child[1], "g", 1), 1);
	CU_ASSERT_EQUAL(read(from_child[0], &byte, 1), 1);
	CU_ASSERT_EQUAL(byte, 'k');
	t_kill = nemo_now_ms();
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(to_child[1]);
	close(from_child[0]);
	if (!a || !c) {
		cl_node_leave(a);
		cl_node_leave(c);
		return;
	}
	while (nemo_now_ms() - t_kill < 8000) {
		int n;

		pthread_mutex_lock(&ha.lock);
		n = ha.adopted;
		pthread_mutex_unlock(&ha.lock);
		pthread_mutex_lock(&hc.lock);
		n += hc.adopted;
		pthread_mutex_unlock(&hc.lock);
		if (n >= 20 && !t_done)
			t_done = nemo_now_ms() - t_kill;
		if (t_done && nemo_now_ms() - t_kill > t_done + 1500)
			break; /* and nothing more comes */
		test_msleep(10);
	}
	printf("\n  kill -9 of b (lease ttl 2 s): 20 activations adopted %llu ms later (a %d, c %d)\n",
	       (unsigned long long)t_done, ha.adopted, hc.adopted);
	CU_ASSERT_EQUAL(ha.adopted + hc.adopted, 20);
	CU_ASSERT(t_done > 0 && t_done <= 2000 + 1000);
	/* each adopted exactly once */
	for (int i = 0; i < 30; i++) {
		char id[40];
		int seen = 0;
		struct cl_act_record rec;

		snprintf(id, sizeof(id), "%032x", 0xb000 + i);
		for (int k = 0; k < ha.adopted && k < MAX_SEEN; k++)
			seen += strcmp(ha.adopted_ids[k], id) == 0;
		for (int k = 0; k < hc.adopted && k < MAX_SEEN; k++)
			seen += strcmp(hc.adopted_ids[k], id) == 0;
		CU_ASSERT_EQUAL(seen, i < 10 ? 0 : 1);
		if (cl_act_lookup(a, id, &rec) == 0) {
			if (strcmp(rec.state, "success") == 0)
				states[0]++;
			else if (strcmp(rec.state, "interrupted") == 0)
				states[1]++;
			else if (strcmp(rec.state, "accepted") == 0 && strcmp(rec.node, "b") != 0)
				states[2]++;
			else
				states[3]++;
			cl_act_record_release(&rec);
		} else {
			states[3]++;
		}
	}
	printf("  records after: %d success, %d interrupted, %d accepted by a live node, %d other\n",
	       states[0], states[1], states[2], states[3]);
	CU_ASSERT_EQUAL(states[0], 4);
	CU_ASSERT_EQUAL(states[1], 6);
	CU_ASSERT_EQUAL(states[2], 20);
	CU_ASSERT_EQUAL(states[3], 0);
	/*
	 * the routes: the two ended ones b had not delivered, and the six interrupted, each
	 * delivered once by one adopter; the two b delivered, not again
	 */
	{
		int success = 0, interrupted = 0, dup = 0, wrong = 0;

		pthread_mutex_lock(&ha.lock);
		pthread_mutex_lock(&hc.lock);
		for (int i = 0; i < 10; i++) {
			char id[40];
			int seen = 0;

			snprintf(id, sizeof(id), "%032x", 0xb000 + i);
			for (int k = 0; k < ha.delivered && k < MAX_SEEN; k++)
				if (!strcmp(ha.delivered_ids[k], id)) {
					seen++;
					success += !strcmp(ha.delivered_states[k], "success");
					interrupted +=
						!strcmp(ha.delivered_states[k], "interrupted");
				}
			for (int k = 0; k < hc.delivered && k < MAX_SEEN; k++)
				if (!strcmp(hc.delivered_ids[k], id)) {
					seen++;
					success += !strcmp(hc.delivered_states[k], "success");
					interrupted +=
						!strcmp(hc.delivered_states[k], "interrupted");
				}
			dup += seen > 1;
			wrong += (i < 2 && seen) || (i >= 2 && seen != 1);
		}
		printf("  routes delivered by the adopters: %d success, %d interrupted (of %d "
		       "handed over); twice: %d; wrong: %d\n",
		       success, interrupted, ha.delivered + hc.delivered, dup, wrong);
		CU_ASSERT_EQUAL(ha.delivered + hc.delivered, 8);
		CU_ASSERT_EQUAL(success, 2);
		CU_ASSERT_EQUAL(interrupted, 6);
		CU_ASSERT_EQUAL(dup, 0);
		CU_ASSERT_EQUAL(wrong, 0);
		pthread_mutex_unlock(&hc.lock);
		pthread_mutex_unlock(&ha.lock);
	}
	/* the adopters run them: start then end, once each */
	for (int k = 0; k < ha.adopted; k++) {
		CU_ASSERT_EQUAL(cl_act_start(a, ha.adopted_ids[k]), 0);
		CU_ASSERT_EQUAL(cl_act_end(a, ha.adopted_ids[k], "success", "x", 1), 0);
	}
	for (int k = 0; k < hc.adopted; k++) {
		CU_ASSERT_EQUAL(cl_act_start(c, hc.adopted_ids[k]), 0);
		CU_ASSERT_EQUAL(cl_act_end(c, hc.adopted_ids[k], "success", "x", 1), 0);
	}
	/* every one delivered (the adopters' own runs included): nothing in flight is left */
	for (int k = 0; k < ha.adopted; k++)
		cl_act_delivered(a, ha.adopted_ids[k]);
	for (int k = 0; k < hc.adopted; k++)
		cl_act_delivered(c, hc.adopted_ids[k]);
	CU_ASSERT_EQUAL(cl_node_flush(a), 0);
	CU_ASSERT_EQUAL(cl_node_flush(c), 0);
	{
		struct cl_kvs left;
		char key[128];

		snprintf(key, sizeof(key), "%s/act/", st_prefix);
		CU_ASSERT_EQUAL(cl_etcd_get(cl_node_etcd(a), key, true, &left), 0);
		CU_ASSERT_EQUAL(left.n, 0);
		cl_kvs_release(&left);
	}
	cl_node_leave(c);
	cl_node_leave(a);
}

/*
 * A node that can reach only one member, and that member stops answering (frozen: a
 * partition): it refuses to accept what it cannot record, says why, and comes back after.
 * The others, on the two live members, keep serving.
 */
static void test_state_partition_and_member_loss(void)
{
	struct heard ha = {.lock = PTHREAD_MUTEX_INITIALIZER, .spare = 1};
	struct heard hp = {.lock = PTHREAD_MUTEX_INITIALIZER, .spare = 1};
	struct cl_node *a, *p;
	const char *why = NULL;
	uint64_t t0;
	int rc;

	if (state_skip())
		return;
	a = join("a", &ha, 0, 3);
	p = join("p", &hp, 2, 1); /* only member 2 */
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(cl_act_accept(p, "p0000000000000000000000000000001", "echo", "x", 1, NULL),
			0);
	CU_ASSERT_TRUE(cl_node_healthy(p, NULL));
	test_etcd_freeze(&st_etcd, 2, true);
	t0 = nemo_now_ms();
	rc = cl_act_accept(p, "p0000000000000000000000000000002", "echo", "x", 1, NULL);
	printf("\n  partitioned node: accept answered %d (%s) after %llu ms (timeout_ms 500)\n", rc,
	       strerror(-rc), (unsigned long long)(nemo_now_ms() - t0));
	CU_ASSERT(rc < 0);
	/* within its one etcd timeout (500 ms here) and the accept's window, whatever it tried */
	CU_ASSERT(nemo_now_ms() - t0 < 500 + 250);
	/* and the next is refused at once: this node knows it is cut off */
	t0 = nemo_now_ms();
	rc = cl_act_accept(p, "p0000000000000000000000000000004", "echo", "x", 1, NULL);
	printf("  the next accept: %d (%s) after %llu ms\n", rc, strerror(-rc),
	       (unsigned long long)(nemo_now_ms() - t0));
	CU_ASSERT(rc == -ENOLINK || rc == -ETIMEDOUT);
	CU_ASSERT(nemo_now_ms() - t0 < 50);
	CU_ASSERT_FALSE(cl_node_healthy(p, &why));
	if (why)
		printf("  healthy at once: no: %s\n", why);
	/* after its TTL it also says it is out */
	test_msleep(2500);
	CU_ASSERT_FALSE(cl_node_healthy(p, &why));
	if (why)
		printf("  healthy: no: %s\n", why);
	/* a, on the two live members, goes on */
	CU_ASSERT_EQUAL(cl_act_accept(a, "a0000000000000000000000000000001", "echo", "x", 1, NULL),
			0);
	test_etcd_freeze(&st_etcd, 2, false);
	t0 = nemo_now_ms();
	do {
		test_msleep(100);
		rc = cl_act_accept(p, "p0000000000000000000000000000003", "echo", "x", 1, NULL);
	} while (rc < 0 && nemo_now_ms() - t0 < 10000);
	printf("  after the partition heals: accept %d after %llu ms\n", rc,
	       (unsigned long long)(nemo_now_ms() - t0));
	CU_ASSERT_EQUAL(rc, 0);
	/*
	 * One member killed: the cluster keeps serving. When it was the leader, the others elect
	 * one (election timeout 500 ms here): an accept in that moment may fail and say so.
	 */
	test_etcd_kill(&st_etcd, 0);
	t0 = nemo_now_ms();
	do {
		char id[40];

		snprintf(id, sizeof(id), "a%031llu", (unsigned long long)nemo_now_ms());
		rc = cl_act_accept(a, id, "echo", "x", 1, NULL);
	} while (rc < 0 && nemo_now_ms() - t0 < 5000);
	printf("  member 0 killed: accept %d after %llu ms\n", rc,
	       (unsigned long long)(nemo_now_ms() - t0));
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(cl_node_fn_publish(a, "after", 1, "{}", "c", 1), 0);
	cl_node_leave(p);
	cl_node_leave(a);
}

/*
 * A node killed and started again under its name (alone in the cluster: nobody adopts for it)
 * claims its own records from before: the never-started ones run, the started one ends
 * interrupted.
 */
static void test_state_restart_claims_own(void)
{
	struct heard hr = {.lock = PTHREAD_MUTEX_INITIALIZER, .spare = 1};
	struct cl_node *r;
	struct cl_act_record rec;
	int p[2];
	pid_t pid;
	char byte = 0;

	if (state_skip())
		return;
	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct heard h = {.lock = PTHREAD_MUTEX_INITIALIZER};
		struct cl_node *first = join("r", &h, 0, 3);
		int bad = !first;

		close(p[0]);
		for (int i = 0; first && i < 3; i++) {
			char id[40];

			snprintf(id, sizeof(id), "%032x", 0xc000 + i);
			bad += cl_act_accept(first, id, "echo", "p", 1, NULL) != 0;
		}
		if (first)
			bad += cl_act_start(first, "0000000000000000000000000000c000") != 0;
		byte = bad ? 'x' : 'k';
		if (write(p[1], &byte, 1) != 1)
			_exit(3);
		pause();
		_exit(0);
	}
	close(p[1]);
	CU_ASSERT_EQUAL(read(p[0], &byte, 1), 1);
	CU_ASSERT_EQUAL(byte, 'k');
	close(p[0]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* its name is free once its lease has expired */
	for (uint64_t t0 = nemo_now_ms(); nemo_now_ms() - t0 < 6000; test_msleep(200)) {
		r = join("r", &hr, 0, 3);
		if (r)
			break;
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	for (uint64_t t0 = nemo_now_ms(); hr.adopted < 2 && nemo_now_ms() - t0 < 3000;)
		test_msleep(10);
	CU_ASSERT_EQUAL(hr.adopted, 2);
	CU_ASSERT_EQUAL(cl_act_lookup(r, "0000000000000000000000000000c000", &rec), 0);
	CU_ASSERT_STRING_EQUAL(rec.state, "interrupted");
	cl_act_record_release(&rec);
	CU_ASSERT_EQUAL(cl_act_start(r, "0000000000000000000000000000c001"), 0);
	CU_ASSERT_EQUAL(cl_act_end(r, "0000000000000000000000000000c001", "success", "", 0), 0);
	cl_node_leave(r);
}

NEMO_SUITE(cluster_state, state_setup, state_teardown,
	   {"nodes and the registry", test_state_nodes_and_registry},
	   {"activation records, batched", test_state_activation_records_batched},
	   {"kill -9: adopted once", test_state_kill9_adoption},
	   {"restart claims its own", test_state_restart_claims_own},
	   {"partition, member loss", test_state_partition_and_member_loss})
