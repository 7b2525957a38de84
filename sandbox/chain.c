/* chain.c - nemod's side of nemo_call: leases of callee instances, their boxes, the broker. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "nemo/chain.h"
#include "nemo/clock.h"
#include "nemo/log.h"
#include "sandbox_internal.h"

/*
 * include/nemo/chain.h says what a lease is. Here: nemod makes one when a function's runtime
 * sends CALL_OPEN, which it reads in two places. A caller serving a request from nemod sends
 * it in the middle of sbx_invoke(), which hands it to sbx_chain_open() and reads on. A caller
 * that is itself a leased callee, serving a call from its box, is read by the broker: the one
 * thread that watches every leased callee (its socket for CALL_OPEN, its pidfd for a death)
 * and every box's clock (a callee past its timeout is killed, a lease idle for idle_ns ends).
 * A leased callee is acquired from the pool, so no one else reads its socket; only the
 * broker gives it back, so nothing reads it while the broker might.
 */

#define BROKER_TICK_MS	  20
#define CHAIN_IDLE_NS	  (30ull * 1000000000ull) /* a lease nobody called for this long ends */
#define DRAIN_MAX_RECORDS 1024			  /* per top-level call */

struct lease {
	struct lease *next;
	struct sbx_sandbox *caller; /* NULL once the caller is gone */
	struct sbx_sandbox *callee;
	char key[SBX_NAME_MAX];
	struct nemo_chain_box *box; /* nemod's mapping */
	size_t size;
	struct nemo_chain_rec *log;
	uint32_t req_cap, rep_cap, timeout_ms, depth;
	int fds[NEMO_CHAIN_FDS];
	uint64_t seen_seq;    /* req_seq when last looked at */
	uint64_t active_ns;   /* when it last moved */
	uint64_t frozen_base; /* the callee's time frozen then: a freeze is no run time */
	bool ending;	      /* the broker ends it at its next turn */
	const char *end_why;  /* ... killing the callee, for this reason (NULL: give it back) */
	int32_t answer;	      /* what a call in flight gets when the callee is killed */
};

struct sbx_chain {
	struct sbx_pool *pool;
	pthread_mutex_t lock;
	struct lease *leases;
	pthread_t broker;
	bool running, stop;
	int wake_fd; /* wakes the broker: a lease to watch, or one to end */
};

static int answer(struct sbx_sandbox *caller, int32_t status, const int *fds, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* CALL_OPENED to the caller: the outcome, why in words, and the box's fds on success. */
static int answer(struct sbx_sandbox *caller, int32_t status, const int *fds, const char *fmt, ...)
{
	struct nemo_chain_opened a = {.status = status};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a.message, sizeof(a.message), fmt, ap);
	va_end(ap);
	if (status)
		NEMO_DEBUG(SBX_LOG, "%s: nemo_call refused: %s", caller->spec.name, a.message);
	return sbx_send_frame_fds(caller, NEMO_FRAME_CALL_OPENED, 0, &a, sizeof(a), fds,
				  status ? 0 : NEMO_CHAIN_FDS);
}

static void wake_broker(struct sbx_chain *ch)
{
	uint64_t one = 1;

	(void)!write(ch->wake_fd, &one, sizeof(one));
}

static void lease_free(struct lease *l)
{
	if (l->box)
		munmap(l->box, l->size);
	for (int i = 0; i < NEMO_CHAIN_FDS; i++)
		if (l->fds[i] >= 0)
			close(l->fds[i]);
	free(l);
}

/* The box for a callee of `spec` at `depth`: a memfd, mapped, and its two eventfds. */
static int box_make(struct lease *l, const struct sbx_spec *spec)
{
	size_t log_bytes = NEMO_CHAIN_LOG_SLOTS * sizeof(struct nemo_chain_rec);
	size_t page = 4096, cap = spec->max_payload_bytes;
	size_t req_off = sizeof(struct nemo_chain_box);
	size_t rep_off = (req_off + cap + 63) & ~(size_t)63;
	size_t log_off = (rep_off + cap + 63) & ~(size_t)63;
	size_t size = (log_off + log_bytes + page - 1) & ~(page - 1);
	struct nemo_chain_box *b;

	l->fds[NEMO_CHAIN_FD_MEM] = memfd_create("nemo-chain", MFD_CLOEXEC);
	l->fds[NEMO_CHAIN_FD_CALLEE] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	l->fds[NEMO_CHAIN_FD_CALLER] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	for (int i = 0; i < NEMO_CHAIN_FDS; i++)
		if (l->fds[i] < 0)
			return -errno;
	if (ftruncate(l->fds[NEMO_CHAIN_FD_MEM], (off_t)size))
		return -errno;
	b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, l->fds[NEMO_CHAIN_FD_MEM], 0);
	if (b == MAP_FAILED)
		return -errno;
	l->box = b;
	l->size = size;
	l->log = (struct nemo_chain_rec *)((uint8_t *)b + log_off);
	l->req_cap = l->rep_cap = (uint32_t)cap;
	l->timeout_ms = spec->timeout_ms;
	b->version = NEMO_CHAIN_VERSION;
	b->size = size;
	b->req_off = req_off;
	b->rep_off = rep_off;
	b->log_off = log_off;
	b->req_cap = b->rep_cap = (uint32_t)cap;
	b->timeout_ms = spec->timeout_ms;
	b->depth = l->depth;
	snprintf(b->callee, sizeof(b->callee), "%s", spec->name);
	__atomic_store_n(&b->magic, NEMO_CHAIN_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

/* The callee's key: `name` in the caller's namespace (the part of its key before the last '.'). */
static bool callee_key(const char *caller_key, const char *name, char key[SBX_NAME_MAX])
{
	const char *dot = strrchr(caller_key, '.');
	int ns = dot ? (int)(dot - caller_key) + 1 : 0;
	int n = snprintf(key, SBX_NAME_MAX, "%.*s%s", ns, caller_key, name);

	return n > 0 && n < SBX_NAME_MAX;
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);

	if (!n || n >= NEMO_CHAIN_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

static void *broker_main(void *arg);

int sbx_chain_open(struct sbx_chain *ch, struct sbx_sandbox *caller, const char *name)
{
	uint32_t depth = caller->chain_depth + 1;
	char key[SBX_NAME_MAX];
	struct sbx_result res;
	struct sbx_spec spec;
	struct sbx_sandbox *callee;
	struct lease *l;
	int rc;

	if (!ch)
		return answer(caller, NEMO_CALL_EPROTO, NULL,
			      "calls between functions are not enabled on this host");
	if (!name_ok(name) || !callee_key(caller->spec.name, name, key))
		return answer(caller, NEMO_CALL_EDENIED, NULL,
			      "'%.64s' is not a function name of this namespace", name);
	if (depth > NEMO_CHAIN_MAX_DEPTH)
		return answer(caller, NEMO_CALL_EDEPTH, NULL,
			      "calling '%s' would nest calls %u deep, over the limit of %d", name,
			      depth, NEMO_CHAIN_MAX_DEPTH);
	if (sbx_pool_spec(ch->pool, key, &spec))
		return answer(caller, NEMO_CALL_ENOFUNC, NULL,
			      "no function '%s' is deployed in this namespace", name);
	if (spec.runtime == SBX_RUNTIME_EXEC)
		return answer(caller, NEMO_CALL_EDENIED, NULL,
			      "'%s' is an exec function: only c and python functions take calls "
			      "from functions",
			      name);
	/* asked again: the caller dropped or abandoned its lease of key */
	pthread_mutex_lock(&ch->lock);
	for (l = ch->leases; l; l = l->next)
		if (l->caller == caller && !strcmp(l->key, key) && !l->ending) {
			l->ending = true;
			if (__atomic_load_n(&l->box->state.v, __ATOMIC_ACQUIRE) ==
			    NEMO_CHAIN_CALLING)
				l->end_why = "its caller gave up waiting: killed";
		}
	if (!ch->running && !ch->stop) {
		ch->running = !pthread_create(&ch->broker, NULL, broker_main, ch);
		if (!ch->running)
			NEMO_ERR(SBX_LOG, "the chain broker thread did not start");
	}
	pthread_mutex_unlock(&ch->lock);
	wake_broker(ch);
	callee = sbx_pool_acquire_lease(ch->pool, key, sbx_core(caller), &res);
	if (!callee)
		return answer(caller, errno == ENOENT ? NEMO_CALL_ENOFUNC : NEMO_CALL_EBUSY, NULL,
			      "no instance of '%s': %s", name, res.message);
	l = calloc(1, sizeof(*l));
	if (!l) {
		sbx_pool_release(ch->pool, callee);
		return answer(caller, NEMO_CALL_EBUSY, NULL, "out of memory");
	}
	for (int i = 0; i < NEMO_CHAIN_FDS; i++)
		l->fds[i] = -1;
	l->caller = caller;
	l->callee = callee;
	l->depth = depth;
	snprintf(l->key, sizeof(l->key), "%s", key);
	rc = box_make(l, sbx_spec_of(callee));
	if (!rc)
		rc = sbx_send_frame_fds(callee, NEMO_FRAME_CHAIN_SERVE, depth, NULL, 0, l->fds,
					NEMO_CHAIN_FDS);
	if (rc) {
		lease_free(l);
		sbx_kill_async(callee, "its lease could not be set up");
		sbx_pool_release(ch->pool, callee);
		return answer(caller, NEMO_CALL_EBUSY, NULL, "the lease of '%s' failed: %s", name,
			      strerror(-rc));
	}
	callee->chain_depth = depth;
	l->active_ns = nemo_now_ns();
	pthread_mutex_lock(&ch->lock);
	l->next = ch->leases;
	ch->leases = l;
	pthread_mutex_unlock(&ch->lock);
	wake_broker(ch);
	NEMO_DEBUG(SBX_LOG, "%s (sandbox %" PRIu64 ") leases %s (sandbox %" PRIu64 ") at depth %u",
		   caller->spec.name, sbx_id(caller), key, sbx_id(callee), depth);
	return answer(caller, 0, l->fds, "leased");
}

/*
 * Under the lock: answer a call in flight for a callee that will not, with `status`, so the
 * caller stops waiting; and close the box either way.
 */
static void box_close_for(struct lease *l, int32_t status)
{
	struct nemo_chain_box *b = l->box;
	uint64_t seq = __atomic_load_n(&b->req_seq, __ATOMIC_ACQUIRE);
	uint64_t one = 1;

	if (__atomic_exchange_n(&b->state.v, NEMO_CHAIN_CLOSED, __ATOMIC_ACQ_REL) ==
		    NEMO_CHAIN_CALLING &&
	    __atomic_load_n(&b->rep_seq, __ATOMIC_ACQUIRE) != seq) {
		b->rep_len = 0;
		b->rep_flags = 0;
		b->run_ns = 0;
		__atomic_store_n(&b->rep_status, status, __ATOMIC_RELEASE);
		__atomic_store_n(&b->rep_seq, seq, __ATOMIC_RELEASE);
	}
	(void)!write(l->fds[NEMO_CHAIN_FD_CALLER], &one, sizeof(one));
}

/* Broker, without the lock: the lease is off the list; give the callee back or kill it. */
static void lease_end(struct sbx_chain *ch, struct lease *l)
{
	struct sbx_sandbox *callee = l->callee;

	if (l->end_why) {
		sbx_kill_async(callee, l->end_why);
	} else if (sbx_state(callee) != SBX_STATE_DEAD) {
		sbx_send_frame_fds(callee, NEMO_FRAME_CHAIN_END, 0, NULL, 0, NULL, 0);
	}
	callee->chain_depth = 0;
	sbx_pool_release(ch->pool, callee);
	lease_free(l);
}

/* A leased callee's control socket has something: CALL_OPEN, or the callee is broken. */
static void callee_frame(struct sbx_chain *ch, struct lease *l)
{
	char name[NEMO_CHAIN_NAME_MAX + 1];
	struct nemo_frame_hdr hdr;
	int rc = sbx_recv_frame(l->callee, &hdr, NEMO_CHAIN_NAME_MAX, name, sizeof(name));

	if (rc == 0 && hdr.type == NEMO_FRAME_CALL_OPEN) {
		sbx_chain_open(ch, l->callee, name);
		return;
	}
	pthread_mutex_lock(&ch->lock);
	l->ending = true;
	l->end_why = rc == -EPIPE ? NULL : "it broke the call protocol: killed";
	l->answer = NEMO_CALL_ECRASHED;
	pthread_mutex_unlock(&ch->lock);
}

/* Under the lock: what the clock says about a lease (called every tick). */
static void lease_tick(struct lease *l, uint64_t now)
{
	struct nemo_chain_box *b = l->box;
	uint64_t seq = __atomic_load_n(&b->req_seq, __ATOMIC_ACQUIRE);
	uint32_t state = (uint32_t)__atomic_load_n(&b->state.v, __ATOMIC_ACQUIRE);
	uint64_t expected = NEMO_CHAIN_IDLE, frozen = sbx_frozen_total_ns(l->callee, now);
	uint64_t ran, paused;

	if (seq != l->seen_seq) {
		l->seen_seq = seq;
		l->active_ns = now;
		l->frozen_base = frozen;
	}
	if (l->ending)
		return;
	ran = now - l->active_ns;
	paused = frozen - l->frozen_base;
	ran = paused < ran ? ran - paused : 0;
	if (state == NEMO_CHAIN_CALLING && __atomic_load_n(&b->rep_seq, __ATOMIC_ACQUIRE) != seq &&
	    ran > (uint64_t)l->timeout_ms * 1000000ull) {
		/* active_ns is when this call's seq was first seen: the broker's own clock,
		 * never the caller's word; time frozen with its core does not count */
		l->ending = true;
		l->end_why = "it overran its timeout in a call from a function: killed";
		l->answer = NEMO_CALL_ETIMEOUT;
		return;
	}
	if (!l->caller && state != NEMO_CHAIN_CALLING) {
		l->ending = true;
		return;
	}
	if (now - l->active_ns > CHAIN_IDLE_NS &&
	    __atomic_compare_exchange_n(&b->state.v, &expected, NEMO_CHAIN_CLOSED, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		l->ending = true;
}

static void *broker_main(void *arg)
{
	struct sbx_chain *ch = arg;
	struct pollfd *p = NULL;
	struct lease **who = NULL;
	size_t cap = 0;

	for (;;) {
		struct lease *ending = NULL, **pp;
		size_t n = 1, k = 0;
		uint64_t now = nemo_now_ns(), cnt;

		pthread_mutex_lock(&ch->lock);
		if (ch->stop) {
			pthread_mutex_unlock(&ch->lock);
			break;
		}
		for (pp = &ch->leases; *pp;) {
			struct lease *l = *pp;

			lease_tick(l, now);
			if (l->ending) {
				box_close_for(l, l->answer ? l->answer : NEMO_CALL_ECRASHED);
				*pp = l->next;
				l->next = ending;
				ending = l;
				continue;
			}
			pp = &l->next;
			n += 2;
		}
		if (n > cap) {
			struct pollfd *np = realloc(p, n * sizeof(*p));
			struct lease **nw = np ? realloc(who, n * sizeof(*who)) : NULL;

			if (np)
				p = np;
			if (nw)
				who = nw;
			cap = np && nw ? n : cap;
		}
		p[k++] = (struct pollfd){.fd = ch->wake_fd, .events = POLLIN};
		for (struct lease *l = ch->leases; l && k + 2 <= cap; l = l->next) {
			who[k] = who[k + 1] = l;
			p[k++] = (struct pollfd){.fd = l->callee->sock, .events = POLLIN};
			p[k++] = (struct pollfd){.fd = l->callee->pidfd, .events = POLLIN};
		}
		pthread_mutex_unlock(&ch->lock);
		while (ending) {
			struct lease *next = ending->next;

			lease_end(ch, ending);
			ending = next;
		}
		if (poll(p, k, BROKER_TICK_MS) <= 0)
			continue;
		if (p[0].revents & POLLIN)
			(void)!read(ch->wake_fd, &cnt, sizeof(cnt));
		for (size_t i = 1; i < k; i += 2) {
			struct lease *l = who[i];

			if (p[i].revents & POLLIN && !(p[i + 1].revents & POLLIN)) {
				callee_frame(ch, l);
			} else if (p[i].revents & (POLLIN | POLLHUP | POLLERR) ||
				   p[i + 1].revents & POLLIN) {
				pthread_mutex_lock(&ch->lock);
				l->ending = true;
				l->answer = NEMO_CALL_ECRASHED;
				pthread_mutex_unlock(&ch->lock);
			}
		}
	}
	free(p);
	free(who);
	return NULL;
}

struct sbx_chain *sbx_chain_new(struct sbx_pool *pool)
{
	struct sbx_chain *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return NULL;
	ch->pool = pool;
	ch->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ch->wake_fd < 0) {
		free(ch);
		return NULL;
	}
	pthread_mutex_init(&ch->lock, NULL);
	return ch;
}

void sbx_chain_forget(struct sbx_chain *ch, struct sbx_sandbox *sb)
{
	bool any = false;

	if (!ch)
		return;
	pthread_mutex_lock(&ch->lock);
	for (struct lease *l = ch->leases; l; l = l->next)
		if (l->caller == sb) {
			l->caller = NULL;
			any = true;
		}
	pthread_mutex_unlock(&ch->lock);
	if (any)
		wake_broker(ch);
}

void sbx_chain_destroy(struct sbx_chain *ch)
{
	struct lease *l;

	if (!ch)
		return;
	pthread_mutex_lock(&ch->lock);
	ch->stop = true;
	pthread_mutex_unlock(&ch->lock);
	wake_broker(ch);
	if (ch->running)
		pthread_join(ch->broker, NULL);
	while ((l = ch->leases)) {
		ch->leases = l->next;
		box_close_for(l, NEMO_CALL_ECRASHED);
		lease_end(ch, l);
	}
	close(ch->wake_fd);
	pthread_mutex_destroy(&ch->lock);
	free(ch);
}

/* A record read from a box, checked: nothing in it is trusted. */
static bool record_ok(const struct lease *l, const struct nemo_chain_rec *r)
{
	return r->seq && r->seq <= __atomic_load_n(&l->box->req_seq, __ATOMIC_ACQUIRE) &&
	       r->req_len <= l->req_cap && r->wait_ns < 3600ull * 1000000000ull &&
	       r->run_ns < 3600ull * 1000000000ull;
}

static enum sbx_status status_of(int32_t s)
{
	switch (s) {
	case 0:
		return SBX_OK;
	case NEMO_CALL_ETIMEOUT:
		return SBX_ERR_TIMEOUT;
	case NEMO_CALL_ECRASHED:
		return SBX_ERR_CRASHED;
	case NEMO_CALL_ETOOLARGE:
		return SBX_ERR_RESPONSE_TOO_LARGE;
	default:
		return s > 0 ? SBX_ERR_FUNCTION : SBX_ERR_INTERNAL;
	}
}

/*
 * Under the lock: append the new records of lease l to out[*n...]. A callee's calls belong to
 * the call it was serving, found by its seq among out[from, to) (the level above, served_by
 * which instance); with from == to they are the root's own.
 */
static void drain_one(struct lease *l, struct sbx_call_record *out,
		      const struct sbx_sandbox **served_by, uint32_t from, uint32_t to, uint32_t *n,
		      uint32_t *lost)
{
	uint64_t head = __atomic_load_n(&l->box->log_head, __ATOMIC_ACQUIRE);
	uint64_t tail = l->box->log_tail;

	if (head - tail > NEMO_CHAIN_LOG_SLOTS)
		tail = head - NEMO_CHAIN_LOG_SLOTS; /* the caller's index is not ours to trust */
	for (; tail != head; tail++) {
		struct nemo_chain_rec r = l->log[tail % NEMO_CHAIN_LOG_SLOTS];
		struct sbx_call_record *c;
		int32_t parent = -1;

		if (!record_ok(l, &r) || *n >= DRAIN_MAX_RECORDS) {
			(*lost)++;
			continue;
		}
		for (uint32_t i = from; i < to; i++)
			if (served_by[i] == l->caller && out[i].seq == r.parent_seq)
				parent = (int32_t)i;
		if (from < to && parent < 0) {
			(*lost)++; /* made outside any call we know of */
			continue;
		}
		served_by[*n] = l->callee;
		c = &out[(*n)++];
		*c = (struct sbx_call_record){.parent = parent,
					      .status = status_of(r.status),
					      .code = r.status,
					      .start_ms = r.start_ns / 1000000,
					      .wait_ns = r.wait_ns,
					      .run_ns = r.run_ns,
					      .req_len = r.req_len,
					      .resp_len = r.rep_len,
					      .seq = r.seq,
					      .depth = l->depth};
		snprintf(c->function, sizeof(c->function), "%s", l->key);
	}
	__atomic_store_n(&l->box->log_tail, head, __ATOMIC_RELEASE);
	*lost += (uint32_t)l->box->log_lost;
	l->box->log_lost = 0;
}

int sbx_chain_drain(struct sbx_chain *ch, struct sbx_sandbox *root, struct sbx_result *res)
{
	const struct sbx_sandbox **served_by;
	struct sbx_call_record *out;
	uint32_t n = 0, lost = 0, from = 0;

	if (!ch || !res)
		return 0;
	pthread_mutex_lock(&ch->lock);
	if (!ch->leases) {
		pthread_mutex_unlock(&ch->lock);
		return 0;
	}
	out = calloc(DRAIN_MAX_RECORDS, sizeof(*out));
	served_by = calloc(DRAIN_MAX_RECORDS, sizeof(*served_by));
	if (!out || !served_by) {
		pthread_mutex_unlock(&ch->lock);
		free(out);
		free(served_by);
		return -ENOMEM;
	}
	/* the root's own calls, then level by level: each callee's, within the calls it served */
	for (struct lease *l = ch->leases; l; l = l->next)
		if (l->caller == root)
			drain_one(l, out, served_by, 0, 0, &n, &lost);
	while (from < n) {
		uint32_t to = n;

		for (struct lease *l = ch->leases; l; l = l->next)
			for (uint32_t i = from; i < to; i++)
				if (l->caller && served_by[i] == l->caller) {
					drain_one(l, out, served_by, from, to, &n, &lost);
					break;
				}
		from = to;
	}
	pthread_mutex_unlock(&ch->lock);
	free(served_by);
	res->calls = n ? out : NULL;
	res->n_calls = n;
	res->calls_lost = lost;
	if (!n)
		free(out);
	return 0;
}
