/* call.c - nemo_call(): a function calls another through a leased mailbox (chain.h). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "nemo/chain.h"
#include "nemo/clock.h"
#include "nemo/frame.h"
#include "call.h"

/* A mapped box, from either side. */
struct box {
	struct nemo_chain_box *sh;
	size_t size;
	uint8_t *req, *rep;
	struct nemo_chain_rec *log;
	uint32_t req_cap, rep_cap, timeout_ms; /* as nemod made it: never read back */
	int fds[NEMO_CHAIN_FDS];
};

#define MAX_LEASES 16 /* callees a function keeps leases to; past that the oldest goes */

struct lease {
	char name[NEMO_CHAIN_NAME_MAX];
	struct box b;
	uint64_t used; /* call_clock when last used */
};

static int ctl = -1;
static struct lease leases[MAX_LEASES];
static uint64_t call_clock;
static struct box served = {.fds = {-1, -1, -1}}; /* the callee's box */
static __thread int in_call;
static __thread uint64_t parent_seq;
static __thread char why[256];

static int failed(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int failed(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return rc;
}

const char *nemo_call_error(void)
{
	return why;
}

void nemo_call_setup(int ctl_fd)
{
	ctl = ctl_fd;
	for (int i = 0; i < MAX_LEASES; i++)
		for (int j = 0; j < NEMO_CHAIN_FDS; j++)
			leases[i].b.fds[j] = -1;
}

void nemo_call_enter(uint64_t parent)
{
	in_call = 1;
	parent_seq = parent;
}

void nemo_call_leave(void)
{
	in_call = 0;
}

long nemo_call_recv_hdr(int fd, void *buf, size_t len, int *fds, int *nfds)
{
	char cbuf[CMSG_SPACE(NEMO_CHAIN_FDS * sizeof(int))] __attribute__((aligned(8)));
	struct iovec iov = {buf, len};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	ssize_t n;

	*nfds = 0;
	do
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	for (struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL; c; c = CMSG_NXTHDR(&msg, c)) {
		int k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*nfds < NEMO_CHAIN_FDS)
				fds[(*nfds)++] = f;
			else
				close(f);
		}
	}
	return n;
}

static void box_close(struct box *b)
{
	if (b->sh)
		munmap(b->sh, b->size);
	for (int i = 0; i < NEMO_CHAIN_FDS; i++)
		if (b->fds[i] >= 0)
			close(b->fds[i]);
	*b = (struct box){.fds = {-1, -1, -1}};
}

/* Map a box from its fds (taken over), checking every size nemod wrote against the memfd. */
static int box_map(struct box *b, const int *fds, int nfds)
{
	struct nemo_chain_box hdr;
	off_t size;
	void *m;

	*b = (struct box){.fds = {-1, -1, -1}};
	for (int i = 0; i < nfds && i < NEMO_CHAIN_FDS; i++)
		b->fds[i] = fds[i];
	if (nfds != NEMO_CHAIN_FDS)
		goto bad;
	size = lseek(b->fds[NEMO_CHAIN_FD_MEM], 0, SEEK_END);
	if (size < (off_t)sizeof(hdr) ||
	    pread(b->fds[NEMO_CHAIN_FD_MEM], &hdr, sizeof(hdr), 0) != sizeof(hdr))
		goto bad;
	if (hdr.magic != NEMO_CHAIN_MAGIC || hdr.version != NEMO_CHAIN_VERSION ||
	    hdr.size != (uint64_t)size || hdr.req_off < sizeof(hdr) ||
	    hdr.req_off + hdr.req_cap > hdr.size || hdr.rep_off < sizeof(hdr) ||
	    hdr.rep_off + hdr.rep_cap > hdr.size || hdr.log_off < sizeof(hdr) ||
	    hdr.log_off + NEMO_CHAIN_LOG_SLOTS * sizeof(struct nemo_chain_rec) > hdr.size)
		goto bad;
	m = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fds[NEMO_CHAIN_FD_MEM],
		 0);
	if (m == MAP_FAILED)
		goto bad;
	b->sh = m;
	b->size = (size_t)size;
	/* offsets from our own copy: what the other side writes later changes nothing here */
	b->req = (uint8_t *)m + hdr.req_off;
	b->rep = (uint8_t *)m + hdr.rep_off;
	b->log = (struct nemo_chain_rec *)((uint8_t *)m + hdr.log_off);
	b->req_cap = hdr.req_cap;
	b->rep_cap = hdr.rep_cap;
	b->timeout_ms = hdr.timeout_ms;
	return 0;
bad:
	box_close(b);
	return -EPROTO;
}

static void send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static int read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Ask nemod for a lease of `name`: CALL_OPEN, then CALL_OPENED with the box's fds. */
static int open_lease(const char *name, struct lease *l)
{
	struct nemo_frame_hdr hdr = {.magic = NEMO_FRAME_MAGIC,
				     .type = NEMO_FRAME_CALL_OPEN,
				     .len = (uint32_t)strlen(name)};
	struct nemo_chain_opened ans;
	uint8_t buf[sizeof(hdr)];
	int fds[NEMO_CHAIN_FDS], nfds = 0, got = 0;
	long n;

	if (ctl < 0)
		return failed(NEMO_CALL_ECONTEXT, "this runtime has no control socket");
	send_all(ctl, &hdr, sizeof(hdr));
	send_all(ctl, name, hdr.len);
	/* the header carries the fds: read it alone, with recvmsg */
	while (got < (int)sizeof(buf)) {
		int more[NEMO_CHAIN_FDS], nmore;

		n = nemo_call_recv_hdr(ctl, buf + got, sizeof(buf) - (size_t)got, more, &nmore);
		if (n <= 0)
			return failed(NEMO_CALL_EPROTO, "the platform closed the control socket");
		for (int i = 0; i < nmore; i++)
			if (nfds < NEMO_CHAIN_FDS)
				fds[nfds++] = more[i];
			else
				close(more[i]);
		got += (int)n;
	}
	if (nemo_frame_check(buf, sizeof(buf), sizeof(ans), &hdr) !=
		    (long)(sizeof(hdr) + sizeof(ans)) ||
	    hdr.type != NEMO_FRAME_CALL_OPENED || read_all(ctl, &ans, sizeof(ans))) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return failed(NEMO_CALL_EPROTO,
			      "the platform answered CALL_OPEN with frame type %u", hdr.type);
	}
	ans.message[sizeof(ans.message) - 1] = '\0';
	if (ans.status) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return failed(ans.status < 0 ? ans.status : NEMO_CALL_EPROTO, "%s", ans.message);
	}
	if (box_map(&l->b, fds, nfds))
		return failed(NEMO_CALL_EPROTO, "the platform's box for '%s' does not map", name);
	snprintf(l->name, sizeof(l->name), "%s", name);
	return 0;
}

static struct lease *lease_of(const char *name, int *rc)
{
	struct lease *free_slot = NULL, *oldest = NULL;

	*rc = 0;
	for (int i = 0; i < MAX_LEASES; i++) {
		struct lease *l = &leases[i];

		if (l->b.sh && !strcmp(l->name, name)) {
			if (__atomic_load_n(&l->b.sh->state.v, __ATOMIC_ACQUIRE) !=
			    NEMO_CHAIN_CLOSED)
				return l;
			box_close(&l->b); /* nemod ended it: ask again */
		}
		if (!l->b.sh && !free_slot)
			free_slot = l;
		if (l->b.sh && (!oldest || l->used < oldest->used))
			oldest = l;
	}
	if (!free_slot) {
		/* nemod ends the lease we drop once it idles */
		box_close(&oldest->b);
		free_slot = oldest;
	}
	*rc = open_lease(name, free_slot);
	return *rc ? NULL : free_slot;
}

static void wake(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		(void)!write(fd, &one, sizeof(one));
}

/* Wait until the callee's reply to `seq` is in, at most timeout_ms. 0 or -ETIMEDOUT. */
static int wait_reply(struct box *b, uint64_t seq, uint32_t timeout_ms)
{
	uint64_t deadline = nemo_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	for (;;) {
		struct pollfd p = {.fd = b->fds[NEMO_CHAIN_FD_CALLER], .events = POLLIN};
		uint64_t now, cnt;

		if (__atomic_load_n(&b->sh->rep_seq, __ATOMIC_ACQUIRE) == seq)
			return 0;
		now = nemo_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)((deadline - now) / 1000000 + 1)) > 0)
			(void)!read(p.fd, &cnt, sizeof(cnt));
	}
}

static void log_call(struct box *b, uint64_t seq, uint64_t start, uint64_t wait_ns, int status,
		     size_t len, uint32_t rep_len)
{
	uint64_t head = b->sh->log_head;
	uint64_t tail = __atomic_load_n(&b->sh->log_tail, __ATOMIC_ACQUIRE);

	if (head - tail >= NEMO_CHAIN_LOG_SLOTS) {
		b->sh->log_lost++;
		return;
	}
	b->log[head % NEMO_CHAIN_LOG_SLOTS] = (struct nemo_chain_rec){
		.seq = seq,
		.parent_seq = parent_seq,
		.start_ns = start,
		.wait_ns = wait_ns,
		.run_ns = b->sh->run_ns,
		.status = status,
		.req_len = (uint32_t)len,
		.rep_len = rep_len,
	};
	__atomic_store_n(&b->sh->log_head, head + 1, __ATOMIC_RELEASE);
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int nemo_call(const char *name, const void *req, size_t len, struct nemo_response *resp)
{
	uint64_t idle = NEMO_CHAIN_IDLE, seq, t0, start;
	struct lease *l;
	struct box *b;
	uint32_t rep_len, flags;
	int rc, status;

	why[0] = '\0';
	if (!in_call)
		return failed(NEMO_CALL_ECONTEXT,
			      "nemo_call works on the handler's thread, during a call");
	if (!name || !resp || (len && !req))
		return failed(NEMO_CALL_EPROTO, "nemo_call: NULL name, response or request");
	if (!name[0] || strlen(name) >= NEMO_CHAIN_NAME_MAX || strchr(name, '.') ||
	    strchr(name, '/'))
		return failed(NEMO_CALL_EDENIED,
			      "'%.64s' is not a function name of this namespace (no '.' or '/', "
			      "1 to %d characters)",
			      name, NEMO_CHAIN_NAME_MAX - 1);
	for (int attempt = 0;; attempt++) {
		l = lease_of(name, &rc);
		if (!l)
			return rc;
		b = &l->b;
		if (__atomic_compare_exchange_n(&b->sh->state.v, &idle, NEMO_CHAIN_CALLING, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			break;
		/* closed by nemod since we looked (it idled out): once more, with a new lease */
		box_close(b);
		idle = NEMO_CHAIN_IDLE;
		if (attempt)
			return failed(NEMO_CALL_EPROTO, "the lease of '%s' closed twice in a row",
				      name);
	}
	l->used = ++call_clock;
	if (len > b->req_cap) {
		__atomic_store_n(&b->sh->state.v, NEMO_CHAIN_IDLE, __ATOMIC_RELEASE);
		return failed(NEMO_CALL_ETOOLARGE,
			      "request of %zu bytes is over '%s''s limit of %u bytes", len, name,
			      b->req_cap);
	}
	memcpy(b->req, req, len);
	b->sh->req_len = (uint32_t)len;
	start = realtime_ns();
	t0 = nemo_now_ns();
	b->sh->call_start_ns = t0;
	seq = b->sh->req_seq + 1;
	__atomic_store_n(&b->sh->req_seq, seq, __ATOMIC_RELEASE);
	wake(b->fds[NEMO_CHAIN_FD_CALLEE]);
	/* nemod kills a callee at its timeout and answers for it; this bound is for a nemod
	 * that is gone */
	if (wait_reply(b, seq, b->timeout_ms + 5000)) {
		uint32_t ms = b->timeout_ms + 5000;

		box_close(b);
		return failed(NEMO_CALL_ETIMEOUT, "'%s' did not answer in %u ms", name, ms);
	}
	status = __atomic_load_n(&b->sh->rep_status, __ATOMIC_ACQUIRE);
	rep_len = b->sh->rep_len;
	flags = b->sh->rep_flags;
	if (!(flags & NEMO_CHAIN_F_TOO_LARGE) && rep_len > b->rep_cap)
		status = NEMO_CALL_EPROTO;
	else if (flags & NEMO_CHAIN_F_TOO_LARGE && status >= 0)
		status = NEMO_CALL_ETOOLARGE;
	log_call(b, seq, start, nemo_now_ns() - t0, status, len, rep_len);
	idle = NEMO_CHAIN_CALLING;
	__atomic_compare_exchange_n(&b->sh->state.v, &idle, NEMO_CHAIN_IDLE, false,
				    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
	resp->data = b->rep;
	resp->cap = b->rep_cap;
	resp->len = status < 0 ? 0 : rep_len;
	switch (status) {
	case 0:
		return 0;
	case NEMO_CALL_ETIMEOUT:
		return failed(status, "'%s' timed out after %u ms: killed", name, b->timeout_ms);
	case NEMO_CALL_ECRASHED:
		return failed(status, "'%s' crashed during the call", name);
	case NEMO_CALL_ETOOLARGE:
		return failed(status, "'%s''s response of %u bytes is over its limit of %u bytes",
			      name, rep_len, b->rep_cap);
	case NEMO_CALL_EPROTO:
		return failed(status, "'%s' broke the call protocol", name);
	default:
		if (status < 0)
			return failed(status, "'%s' failed (%d)", name, status);
		return failed(status, "'%s' returned %d", name, status);
	}
}

/* ---- the callee ---- */

int nemo_box_attach(const int *fds, int nfds)
{
	nemo_box_detach();
	if (box_map(&served, fds, nfds))
		return -EPROTO;
	served.sh->callee_pid = getpid();
	/* calls made before we attached are answered now: look at once */
	wake(served.fds[NEMO_CHAIN_FD_CALLEE]);
	return 0;
}

void nemo_box_detach(void)
{
	box_close(&served);
}

int nemo_box_fd(void)
{
	return served.sh ? served.fds[NEMO_CHAIN_FD_CALLEE] : -1;
}

int nemo_box_serve(nemo_box_handler run)
{
	struct nemo_chain_box *sh = served.sh;
	uint64_t cnt, seq;
	int n = 0;

	if (!sh)
		return 0;
	(void)!read(served.fds[NEMO_CHAIN_FD_CALLEE], &cnt, sizeof(cnt));
	while ((seq = __atomic_load_n(&sh->req_seq, __ATOMIC_ACQUIRE)) != sh->rep_seq) {
		struct nemo_response resp = {served.rep, served.rep_cap, 0};
		uint32_t len = sh->req_len;
		uint64_t t0;
		int rc;

		if (seq != sh->rep_seq + 1 || len > served.req_cap) {
			nemo_box_detach(); /* the caller broke it: nemod sees the lease idle */
			return -EPROTO;
		}
		t0 = nemo_now_ns();
		nemo_call_enter(seq);
		rc = run(served.req, len, &resp);
		nemo_call_leave();
		sh->run_ns = nemo_now_ns() - t0;
		sh->rep_flags = 0;
		if (resp.len > served.rep_cap) {
			sh->rep_flags = NEMO_CHAIN_F_TOO_LARGE;
		} else if (resp.data != served.rep) {
			memmove(served.rep, resp.data, resp.len);
		}
		sh->rep_len = (uint32_t)resp.len;
		sh->rep_status = rc;
		__atomic_store_n(&sh->rep_seq, seq, __ATOMIC_RELEASE);
		wake(served.fds[NEMO_CHAIN_FD_CALLER]);
		n++;
	}
	return n;
}
