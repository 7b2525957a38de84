/* test_packet_ring.c - the function rings and the consumer host, across real mappings and processes. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nemo/fn_ring.h"
#include "nemo/function.h"
#include "test.h"

/* The producer's rings, and a consumer's own mapping of them through duplicated fds. */
static void t_pair(struct fn_ring *prod, struct fn_ring *cons, uint32_t slots, uint32_t size)
{
	CU_ASSERT_EQUAL_FATAL(fn_ring_create(prod, "t", 3, slots, size, 0), 0);
	CU_ASSERT_EQUAL_FATAL(fn_ring_attach(cons, dup(prod->mem_fd), dup(prod->wake_fd)), 0);
	/* two mappings of one memfd: not the same address, the same memory */
	CU_ASSERT_PTR_NOT_EQUAL(prod->sh, cons->sh);
}

/* Put n requests, payload "<tag>:<seq>". Returns how many went in. */
static uint32_t t_put(struct fn_ring *p, uint32_t n, const char *tag)
{
	uint32_t room = fn_ring_prod_free(p, n), k = n < room ? n : room;

	for (uint32_t i = 0; i < k; i++) {
		struct fn_slot *s = fn_ring_prod_slot(p, i);

		s->seq = p->seq + i;
		s->flags = FN_SLOT_F_REPLY;
		s->len = (uint32_t)snprintf((char *)s->data, p->data_cap, "%s:%llu", tag,
					    (unsigned long long)s->seq);
	}
	if (k)
		fn_ring_prod_publish(p, k);
	return k;
}

/* Take up to n requests and check they carry the sequence numbers from *next on. */
static uint32_t t_take(struct fn_ring *c, uint32_t n, uint64_t *next, const char *tag)
{
	uint32_t avail = fn_ring_cons_avail(c), k = n < avail ? n : avail;
	char want[64];

	for (uint32_t i = 0; i < k; i++) {
		const struct fn_slot *s = fn_ring_req_slot(c, c->head + i);

		snprintf(want, sizeof(want), "%s:%llu", tag, (unsigned long long)*next);
		CU_ASSERT_EQUAL(s->seq, *next);
		CU_ASSERT_EQUAL(s->len, strlen(want));
		CU_ASSERT_EQUAL(memcmp(s->data, want, strlen(want)), 0);
		(*next)++;
	}
	if (k)
		fn_ring_cons_release(c, k);
	return k;
}

static void test_create_bounds(void)
{
	struct fn_ring r;

	CU_ASSERT_EQUAL(fn_ring_create(&r, "x", 0, 1000, 2048, 0), -EINVAL);
	CU_ASSERT_EQUAL(fn_ring_create(&r, "x", 0, 1024, 100, 0), -EINVAL);
	CU_ASSERT_EQUAL(fn_ring_create(&r, "", 0, 1024, 2048, 0), -EINVAL);
	CU_ASSERT_EQUAL(fn_ring_create(&r, "x", 0, 4, 2048, 0), -EINVAL);
	CU_ASSERT_EQUAL_FATAL(fn_ring_create(&r, "echo", 7, 64, 256, 0), 0);
	CU_ASSERT_EQUAL(r.sh->magic, FN_RING_MAGIC);
	CU_ASSERT_EQUAL(r.data_cap, 256 - FN_RING_SLOT_HDR);
	CU_ASSERT_STRING_EQUAL(r.sh->function, "echo");
	CU_ASSERT_EQUAL(r.sh->lcore_id, 7);
	/* the size is sealed: a consumer cannot shrink the memory under the NF */
	CU_ASSERT_EQUAL(ftruncate(r.mem_fd, 4096), -1);
	CU_ASSERT_EQUAL(errno, EPERM);
	fn_ring_close(&r);
}

static void test_attach_refuses(void)
{
	struct fn_ring r, c;
	int fd = memfd_create("t-not-a-ring", MFD_CLOEXEC);
	char junk[4096];

	memset(junk, 0x5a, sizeof(junk));
	CU_ASSERT_EQUAL_FATAL(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	CU_ASSERT_EQUAL(fn_ring_attach(&c, fd, -1), -EPROTO);
	close(fd);
	/* a version this build does not know */
	CU_ASSERT_EQUAL_FATAL(fn_ring_create(&r, "v", 0, 8, 128, 0), 0);
	r.sh->version = FN_RING_VERSION + 1;
	CU_ASSERT_EQUAL(fn_ring_attach(&c, r.mem_fd, -1), -EPROTO);
	r.sh->version = FN_RING_VERSION;
	/* geometry that would reach past the memfd */
	r.sh->nb_slots = 1u << 15;
	CU_ASSERT_EQUAL(fn_ring_attach(&c, r.mem_fd, -1), -EPROTO);
	fn_ring_close(&r);
}

/* Many times round the ring, in uneven steps: nothing lost, reordered or duplicated. */
static void test_wrap_around(void)
{
	struct fn_ring p, c;
	uint64_t next = 0;
	uint32_t put = 0, got = 0;

	t_pair(&p, &c, 16, 128);
	for (int round = 0; round < 400; round++) {
		put += t_put(&p, (uint32_t)(round % 7 + 1), "w");
		got += t_take(&c, (uint32_t)(round % 5 + 1), &next, "w");
	}
	got += t_take(&c, 16, &next, "w");
	CU_ASSERT_EQUAL(put, got);
	CU_ASSERT(put > 16 * 50); /* went round the 16 slots fifty times and more */
	fn_ring_close(&c);
	fn_ring_close(&p);
}

/* The free-running indices themselves wrap past UINT32_MAX. */
static void test_index_wrap(void)
{
	struct fn_ring p, c;
	uint64_t next = 0;
	uint32_t start = UINT32_MAX - 20, moved = 0;

	t_pair(&p, &c, 16, 128);
	p.head = p.other = start;
	p.sh->req_head.v = p.sh->req_tail.v = start;
	c.head = start;
	for (int i = 0; i < 10; i++) {
		CU_ASSERT_EQUAL(t_put(&p, 12, "x"), 12);
		moved += t_take(&c, 12, &next, "x");
	}
	CU_ASSERT_EQUAL(moved, 120);
	CU_ASSERT(p.head < start); /* it did wrap */
	CU_ASSERT_EQUAL(fn_ring_cons_avail(&c), 0);
	fn_ring_close(&c);
	fn_ring_close(&p);
}

/* A consumer that stops: the producer sees a full ring and never waits. */
static void test_full_ring(void)
{
	struct fn_ring p, c;
	uint64_t next = 0;

	t_pair(&p, &c, 32, 128);
	CU_ASSERT_EQUAL(t_put(&p, 40, "f"), 32);
	CU_ASSERT_EQUAL(fn_ring_prod_free(&p, 1), 0);
	CU_ASSERT_EQUAL(t_put(&p, 5, "f"), 0);
	CU_ASSERT_EQUAL(t_take(&c, 3, &next, "f"), 3);
	CU_ASSERT_EQUAL(fn_ring_prod_free(&p, 1), 3);
	CU_ASSERT_EQUAL(t_put(&p, 5, "f"), 3);
	CU_ASSERT_EQUAL(t_take(&c, 64, &next, "f"), 32);
	fn_ring_close(&c);
	fn_ring_close(&p);
}

/* Indices a consumer should never write are seen for what they are, not trusted. */
static void test_corrupt_indices(void)
{
	struct fn_ring p, c;

	t_pair(&p, &c, 16, 128);
	t_put(&p, 4, "c");
	c.sh->req_tail.v = p.head + 5; /* past the head */
	CU_ASSERT_EQUAL(fn_ring_prod_free(&p, 16), UINT32_MAX);
	c.sh->rep_head.v = p.rep_tail + 1000;
	CU_ASSERT_EQUAL(fn_ring_rep_avail(&p), UINT32_MAX);
	CU_ASSERT_EQUAL(fn_ring_reset(&p), 0); /* the tail was nonsense: nothing counted lost */
	CU_ASSERT_EQUAL(fn_ring_prod_free(&p, 16), 16);
	CU_ASSERT_EQUAL(fn_ring_rep_avail(&p), 0);
	fn_ring_close(&c);
	fn_ring_close(&p);
}

static double t_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct t_parker {
	struct fn_ring *c;
	volatile int parked_rc;
	double woke_at;
};

static void *t_park_thread(void *arg)
{
	struct t_parker *pk = arg;

	pk->parked_rc = fn_ring_park(pk->c, 5000);
	pk->woke_at = t_now();
	return NULL;
}

/* A parked consumer wakes on the first publish; a busy one costs the producer no syscall. */
static void test_wake_once_per_park(void)
{
	struct fn_ring p, c;
	struct t_parker pk = {.c = &c};
	pthread_t th;
	uint64_t next = 0;
	double t0;
	int wakes = 0;

	t_pair(&p, &c, 64, 128);
	/* busy consumer: it never parks, so no publish asks for a wake-up */
	for (int i = 0; i < 1000; i++) {
		t_put(&p, 2, "b");
		wakes += __atomic_load_n(&p.sh->sleeping.v, __ATOMIC_RELAXED) != 0;
		t_take(&c, 2, &next, "b");
	}
	CU_ASSERT_EQUAL(wakes, 0);
	CU_ASSERT_FALSE(fn_ring_wake(&p));
	/* parked consumer */
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, t_park_thread, &pk), 0);
	while (!__atomic_load_n(&c.sh->sleeping.v, __ATOMIC_ACQUIRE))
		usleep(100);
	usleep(20000); /* it is in poll() by now, or will see the data on its re-check */
	t0 = t_now();
	{
		struct fn_slot *s = fn_ring_prod_slot(&p, 0);

		s->seq = p.seq;
		s->len = (uint32_t)snprintf((char *)s->data, p.data_cap, "b:%llu",
					    (unsigned long long)p.seq);
		CU_ASSERT_TRUE(fn_ring_prod_publish(&p, 1)); /* it sleeps: wake it */
	}
	CU_ASSERT_TRUE(fn_ring_wake(&p));
	CU_ASSERT_FALSE(fn_ring_wake(&p)); /* once per park, not once per burst */
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(pk.parked_rc, 0);
	printf("\n  parked consumer woke %.0f us after the publish\n", (pk.woke_at - t0) * 1e6);
	CU_ASSERT(pk.woke_at - t0 < 1.0); /* the eventfd, not the 5 s timeout */
	CU_ASSERT_EQUAL(t_take(&c, 8, &next, "b"), 1);
	CU_ASSERT_EQUAL(c.sh->consumer.parks, 1);
	fn_ring_close(&c);
	fn_ring_close(&p);
}

/* A consumer process that dies mid-batch: the producer resets and a new one starts clean. */
static void test_consumer_dies_mid_batch(void)
{
	struct fn_ring p, c2;
	uint64_t next;
	int status;
	pid_t pid;

	CU_ASSERT_EQUAL_FATAL(fn_ring_create(&p, "die", 0, 64, 128, 0), 0);
	CU_ASSERT_EQUAL(t_put(&p, 40, "d"), 40);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct fn_ring c;

		if (fn_ring_attach(&c, p.mem_fd, p.wake_fd))
			_exit(3);
		/* take a batch of 16, answer 5 of them without publishing, release 8, die */
		if (fn_ring_cons_avail(&c) != 40)
			_exit(4);
		for (uint32_t i = 0; i < 5; i++)
			fn_ring_rep_slot(&c, c.rep_head + i)->len = 1;
		fn_ring_cons_release(&c, 8);
		raise(SIGKILL);
		_exit(5);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* 32 handed and never consumed; no reply was published */
	CU_ASSERT_EQUAL(fn_ring_rep_avail(&p), 0);
	CU_ASSERT_EQUAL(fn_ring_reset(&p), 32);
	CU_ASSERT_EQUAL(p.sh->epoch.v, 1);
	CU_ASSERT_EQUAL(fn_ring_prod_free(&p, 64), 64);
	/* a new consumer sees only what comes after the reset */
	CU_ASSERT_EQUAL_FATAL(fn_ring_attach(&c2, dup(p.mem_fd), dup(p.wake_fd)), 0);
	CU_ASSERT_EQUAL(fn_ring_cons_avail(&c2), 0);
	next = p.seq;
	CU_ASSERT_EQUAL(t_put(&p, 10, "d"), 10);
	CU_ASSERT_EQUAL(t_take(&c2, 64, &next, "d"), 10);
	fn_ring_close(&c2);
	fn_ring_close(&p);
}

/* ---- the consumer host ---- */

static unsigned int t_calls, t_seen;

/* Answers even packets in its reply buffer, odd ones from its own memory, every 4th not. */
static int t_handler(const struct nemo_packet *pkts, struct nemo_reply *replies, unsigned int n)
{
	static char own[64];

	t_calls++;
	for (unsigned int i = 0; i < n; i++) {
		unsigned int k = t_seen++;

		if (k % 4 == 3)
			continue;
		if (k % 8 == 5) {
			replies[i].len = replies[i].cap + 1; /* too big for its slot */
			continue;
		}
		if (k % 2) {
			snprintf(own, sizeof(own), "own%u", k);
			replies[i].data = own;
			replies[i].len = (uint32_t)strlen(own);
		} else {
			memcpy(replies[i].data, pkts[i].data, pkts[i].len);
			replies[i].len = pkts[i].len;
		}
	}
	return 0;
}

static void test_host_batches(void)
{
	struct fn_ring p, c;
	struct fn_host h = {.ring = &c, .handler = t_handler, .batch = 8};
	unsigned int replies = 0, too_big = 0;

	t_calls = t_seen = 0;
	t_pair(&p, &c, 64, 128);
	CU_ASSERT_EQUAL(t_put(&p, 20, "h"), 20);
	CU_ASSERT_EQUAL(fn_host_step(&h), 8);
	CU_ASSERT_EQUAL(fn_host_step(&h), 8);
	CU_ASSERT_EQUAL(fn_host_step(&h), 4);
	CU_ASSERT_EQUAL(fn_host_step(&h), 0);
	CU_ASSERT_EQUAL(t_calls, 3); /* one call per batch, not per packet */
	CU_ASSERT_EQUAL(h.batches, 3);
	CU_ASSERT_EQUAL(h.packets, 20);
	CU_ASSERT_EQUAL(c.sh->consumer.packets, 20);
	/* the replies, in order, each naming its request; compacted over the unanswered */
	for (uint32_t i = 0, n = fn_ring_rep_avail(&p); i < n; i++) {
		const struct fn_slot *s = fn_ring_rep_slot(&p, p.rep_tail + i);
		char want[32];

		CU_ASSERT(s->seq % 4 != 3);
		if (s->flags & FN_SLOT_F_TOO_BIG) {
			CU_ASSERT_EQUAL(s->seq % 8, 5);
			CU_ASSERT_EQUAL(s->len, p.data_cap + 1);
			too_big++;
			continue;
		}
		if (s->seq % 2)
			snprintf(want, sizeof(want), "own%llu", (unsigned long long)s->seq);
		else
			snprintf(want, sizeof(want), "h:%llu", (unsigned long long)s->seq);
		CU_ASSERT_EQUAL(s->len, strlen(want));
		CU_ASSERT_EQUAL(memcmp(s->data, want, strlen(want)), 0);
		replies++;
	}
	CU_ASSERT_EQUAL(replies + too_big, 15);
	CU_ASSERT_EQUAL(too_big, 2); /* requests 5 and 13 */
	fn_ring_close(&c);
	fn_ring_close(&p);
}

/* No room for replies: the host waits rather than losing requests. */
static void test_host_waits_for_reply_room(void)
{
	struct fn_ring p, c;
	struct fn_host h = {.ring = &c, .handler = t_handler, .batch = 32};

	t_calls = t_seen = 0;
	t_pair(&p, &c, 8, 128);
	CU_ASSERT_EQUAL(t_put(&p, 8, "r"), 8);
	CU_ASSERT_EQUAL(fn_host_step(&h), 8);
	CU_ASSERT_EQUAL(t_put(&p, 8, "r"), 8);
	/* 8 request slots free again, but the NF has not taken the 6 replies: 2 slots of room */
	CU_ASSERT_EQUAL(fn_host_step(&h), 2);
	fn_ring_rep_release(&p, fn_ring_rep_avail(&p));
	CU_ASSERT_EQUAL(fn_host_step(&h), 6);
	CU_ASSERT_EQUAL(h.packets, 16);
	fn_ring_close(&c);
	fn_ring_close(&p);
}

NEMO_SUITE(packet_ring, NULL, NULL, {"create checks sizes and seals", test_create_bounds},
	   {"attach refuses what is not a ring", test_attach_refuses},
	   {"wrap-around keeps order", test_wrap_around},
	   {"indices wrap past UINT32_MAX", test_index_wrap}, {"full ring", test_full_ring},
	   {"corrupt indices are caught", test_corrupt_indices},
	   {"one wake-up per park", test_wake_once_per_park},
	   {"consumer dies mid-batch: reset", test_consumer_dies_mid_batch},
	   {"host: one call per batch, compacted replies", test_host_batches},
	   {"host: waits for reply room", test_host_waits_for_reply_room});
