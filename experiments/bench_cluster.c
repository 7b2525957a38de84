/*
 * bench_cluster.c - the cluster's costs on real etcd: the offload decision, activation records
 * (etcd writes and bytes per call against calls per second, with and without batching), and
 * failover (a killed node's activations adopted). experiments/bench_cluster.sh starts etcd.
 *
 *   bench_cluster ENDPOINT[,ENDPOINT...] [seconds per row]
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/cluster.h"
#include "nemo/log.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[(size_t)(p * (double)(n - 1))];
}

static char endpoints[CL_MAX_ENDPOINTS][CL_ADDR_MAX];
static int n_endpoints;
static char prefix[64];

static void cfg_for(struct cl_config *c, const char *name, uint32_t batch_ms, uint32_t ttl)
{
	cl_config_defaults(c);
	c->enabled = true;
	snprintf(c->node, sizeof(c->node), "%s", name);
	snprintf(c->address, sizeof(c->address), "127.0.0.1:1");
	snprintf(c->prefix, sizeof(c->prefix), "%s", prefix);
	c->n_endpoints = n_endpoints;
	for (int i = 0; i < n_endpoints; i++)
		memcpy(c->endpoints[i], endpoints[i], CL_ADDR_MAX);
	c->batch_ms = batch_ms;
	c->lease_ttl_s = ttl;
}

/* ---- 1. the decision ----------------------------------------------------------------------------- */

static void bench_decision(void)
{
	struct cl_policy p;
	struct cl_load me = {.name = "b",
			     .spare_best = 0.02,
			     .spare_total = 0.02,
			     .warm = 1,
			     .has_function = true,
			     .accepts = true};
	struct cl_load peers[8];
	struct cl_call call = {.qos = CL_QOS_LATENCY, .deadline_ms = 20, .run_ms = 2};
	struct cl_decision d;
	enum {
		ROUNDS = 20000,
		PER = 100
	};
	static uint64_t t[ROUNDS];
	volatile int sink = 0;

	cl_policy_defaults(&p);
	for (int i = 0; i < 8; i++) {
		peers[i] = me;
		snprintf(peers[i].name, sizeof(peers[i].name), "n%d", i);
		peers[i].spare_best = 0.1 * (i + 1);
		peers[i].spare_total = 0.2 * (i + 1);
		peers[i].warm = (uint32_t)(i % 2);
	}
	for (int npeers = 2; npeers <= 8; npeers *= 2) {
		for (int r = 0; r < ROUNDS; r++) {
			uint64_t t0 = nemo_now_ns();

			for (int k = 0; k < PER; k++) {
				cl_offload_decide(&p, &me, peers, npeers, &call, &d);
				sink += d.peer;
			}
			t[r] = (nemo_now_ns() - t0) / PER;
		}
		printf("decision  peers=%d  p50 %llu ns  p99 %llu ns  (verdict %s)\n", npeers,
		       (unsigned long long)pct(t, ROUNDS, 0.5),
		       (unsigned long long)pct(t, ROUNDS, 0.99),
		       d.verdict == CL_OFFLOAD ? "offload" : "local");
	}
	(void)sink;
}

/* ---- 2. activation records against calls per second --------------------------------------------- */

struct load_arg {
	struct cl_node *n;
	double rate; /* calls per second for this thread */
	uint64_t until_ns;
	int thread;
	uint64_t *lat; /* accept latency, ns */
	size_t n_lat, cap;
	uint64_t done, failed;
};

static void *load_main(void *arg)
{
	struct load_arg *a = arg;
	uint64_t next = nemo_now_ns(), seq = 0;
	double gap = 1e9 / a->rate;

	while (nemo_now_ns() < a->until_ns) {
		char id[40];
		uint64_t t0;
		int rc;

		while (nemo_now_ns() < next) {
			struct timespec ts = {0, 200000};

			nanosleep(&ts, NULL);
		}
		next += (uint64_t)gap;
		snprintf(id, sizeof(id), "%08x%024llx", a->thread, (unsigned long long)seq++);
		t0 = nemo_now_ns();
		rc = cl_act_accept(a->n, id, "echo", "{\"x\":1}", 7, NULL);
		if (rc == 0 && a->n_lat < a->cap)
			a->lat[a->n_lat++] = nemo_now_ns() - t0;
		if (rc == 0)
			rc = cl_act_start(a->n, id);
		if (rc == 0)
			rc = cl_act_end(a->n, id, "success", "{\"x\":1}", 7);
		if (rc == 0)
			a->done++;
		else
			a->failed++;
	}
	return NULL;
}

static void bench_records(int seconds)
{
	const double rates[] = {100, 300, 1000, 3000, 10000};
	const uint32_t batches[] = {0, 2};
	enum {
		THREADS = 64
	};

	printf("\nactivation records: accept + start + end per call (3 record writes); writes: etcd "
	       "requests that go through raft (txns with a put or delete, puts, lease grants), node "
	       "records included\n");
	printf("%-8s %9s %9s %8s %11s %9s %10s %10s %8s\n", "batch_ms", "target/s", "done/s",
	       "failed", "writes/call", "ops/call", "bytes/call", "acc p50us", "acc p99");
	for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
		for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
			struct cl_config c;
			struct cl_node *n;
			struct load_arg args[THREADS];
			pthread_t th[THREADS];
			struct cl_stats s0, s1;
			uint64_t t0, done = 0, failed = 0, *all;
			size_t n_all = 0;
			char name[32];

			snprintf(name, sizeof(name), "bench-%zu-%zu", b, r);
			cfg_for(&c, name, batches[b], 10);
			n = cl_node_join(&c, NULL);
			if (!n) {
				fprintf(stderr, "join: %s\n", strerror(errno));
				exit(1);
			}
			cl_node_stats(n, &s0);
			t0 = nemo_now_ns();
			for (int i = 0; i < THREADS; i++) {
				args[i] = (struct load_arg){.n = n,
							    .rate = rates[r] / THREADS,
							    .until_ns = t0 + (uint64_t)seconds *
										     1000000000ull,
							    .thread = i,
							    .cap = 100000};
				args[i].lat = malloc(args[i].cap * sizeof(uint64_t));
				pthread_create(&th[i], NULL, load_main, &args[i]);
			}
			all = malloc(THREADS * 100000 * sizeof(uint64_t));
			for (int i = 0; i < THREADS; i++) {
				pthread_join(th[i], NULL);
				done += args[i].done;
				failed += args[i].failed;
				memcpy(all + n_all, args[i].lat, args[i].n_lat * sizeof(uint64_t));
				n_all += args[i].n_lat;
				free(args[i].lat);
			}
			double el = (double)(nemo_now_ns() - t0) / 1e9;
			cl_node_flush(n); /* the last ends ride in a later txn */
			cl_node_stats(n, &s1);
			printf("%-8u %9.0f %9.0f %8llu %11.3f %9.2f %10.0f %10.0f %8.0f\n",
			       batches[b], rates[r], (double)done / el, (unsigned long long)failed,
			       done ? (double)(s1.etcd.calls[CL_REQ_WRITE] -
					       s0.etcd.calls[CL_REQ_WRITE]) /
					       (double)done
				    : 0,
			       done ? (double)(s1.act_ops - s0.act_ops) / (double)done : 0,
			       done ? (double)(s1.etcd.bytes_out - s0.etcd.bytes_out) / (double)done
				    : 0,
			       (double)pct(all, n_all, 0.5) / 1e3,
			       (double)pct(all, n_all, 0.99) / 1e3);
			fflush(stdout);
			free(all);
			cl_node_leave(n);
			/* a row that already fell behind its target: a higher target only adds queueing */
			if ((double)done / el < 0.7 * rates[r])
				break;
		}
	}
}

/* ---- 3. failover ------------------------------------------------------------------------------- */

static atomic_int adopted;

static int on_adopt(void *arg, const struct cl_act_record *r)
{
	(void)arg;
	(void)r;
	atomic_fetch_add(&adopted, 1);
	return 0;
}

static void bench_failover(uint32_t ttl, int rounds)
{
	printf("\nfailover: a node with 50 accepted activations is killed (SIGKILL); lease ttl %u s\n",
	       ttl);
	for (int round = 0; round < rounds; round++) {
		struct cl_config c;
		struct cl_hooks h = {.adopt = on_adopt};
		struct cl_node *a;
		struct cl_stats st;
		int p[2];
		pid_t pid;
		char byte;
		char victim[32];
		uint64_t t_kill;

		snprintf(victim, sizeof(victim), "victim%d", round);
		if (pipe(p) < 0)
			exit(1);
		pid = fork();
		if (pid == 0) {
			struct cl_node *v;

			close(p[0]);
			cfg_for(&c, victim, 2, ttl);
			v = cl_node_join(&c, NULL);
			for (int i = 0; v && i < 50; i++) {
				char id[40];

				snprintf(id, sizeof(id), "%08x%024x", round + 0x100, i);
				cl_act_accept(v, id, "echo", "x", 1, NULL);
			}
			byte = v ? 'k' : 'x';
			if (write(p[1], &byte, 1) != 1)
				_exit(1);
			pause();
			_exit(0);
		}
		close(p[1]);
		if (read(p[0], &byte, 1) != 1 || byte != 'k') {
			fprintf(stderr, "victim did not start\n");
			exit(1);
		}
		close(p[0]);
		atomic_store(&adopted, 0);
		cfg_for(&c, "adopter", 2, ttl);
		a = cl_node_join(&c, &h);
		if (!a)
			exit(1);
		t_kill = nemo_now_ns();
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		while (atomic_load(&adopted) < 50 &&
		       nemo_now_ns() - t_kill < (ttl + 10) * 1000000000ull)
			usleep(1000);
		cl_node_stats(a, &st);
		printf("round %d: %d/50 adopted %.0f ms after the kill (lease ttl %u s; from the "
		       "lease's expiry being seen: %llu ms)\n",
		       round, atomic_load(&adopted), (double)(nemo_now_ns() - t_kill) / 1e6, ttl,
		       (unsigned long long)st.last_adoption_ms);
		/* finish them so the next round starts clean */
		cl_node_leave(a);
		{
			struct cl_etcd *e;
			const char *eps[CL_MAX_ENDPOINTS];
			char k[128];

			for (int i = 0; i < n_endpoints; i++)
				eps[i] = endpoints[i];
			e = cl_etcd_new(eps, n_endpoints, 1000);
			snprintf(k, sizeof(k), "%s/act/", prefix);
			cl_etcd_delete(e, k, true, NULL);
			cl_etcd_destroy(e);
		}
	}
}

int main(int argc, char **argv)
{
	int seconds = argc > 2 ? atoi(argv[2]) : 3;
	char *list, *tok, *save = NULL;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_cluster ENDPOINT[,ENDPOINT...] [seconds per row]\n");
		return 1;
	}
	nemo_log_set_level(NEMO_LOG_WARN);
	signal(SIGPIPE, SIG_IGN);
	list = strdup(argv[1]);
	for (tok = strtok_r(list, ",", &save); tok && n_endpoints < CL_MAX_ENDPOINTS;
	     tok = strtok_r(NULL, ",", &save))
		snprintf(endpoints[n_endpoints++], CL_ADDR_MAX, "%s", tok);
	free(list);
	snprintf(prefix, sizeof(prefix), "/nemo-bench-%d", (int)getpid());
	bench_decision();
	bench_records(seconds);
	bench_failover(2, 3);
	return 0;
}
