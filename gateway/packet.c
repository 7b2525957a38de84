/* packet.c - the packet trigger: functions fed by an NF's rings, their instances supervised. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/config.h"
#include "nemo/fn_ring.h"
#include "nemo/log.h"
#include "gw_internal.h"

/*
 * One thread supervises every packet-mode instance: it leases a ring from the NF
 * (fn_lease_acquire()), hands the three fds to a sandbox on the NF lcore's CPU, and polls
 * each instance's sbx_packet_fd(). An instance that ends is logged once with why, its
 * figures kept, and replaced; while the NF still resets the ring the lease says -EAGAIN and
 * the supervisor retries after a short backoff. No activation record is written per packet
 * or per batch: the figures are counters.
 */

#define PK_BACKOFF_MIN_MS   5
#define PK_BACKOFF_MAX_MS   2000
#define PK_SYNC_TIMEOUT_MS  10000
#define PK_MAX_INSTANCES    16
#define PK_STATS_MS	    50 /* how often a living instance's figures are read */
#define PK_DEFAULT_BATCH    64
#define PK_DEFAULT_SPIN_US  50
#define PK_NF_SOCKET_FORMAT "/run/nemo/%s.fn.sock" /* nemo-nf's default fn_socket */

/* One instance a trigger wants: running (sb) or waiting to be (re)started. */
struct pk_inst {
	struct pk_inst *next;
	char key[SBX_NAME_MAX];
	uint64_t version;
	int idx;
	struct gw_packet_trigger t;
	struct sbx_sandbox *sb;
	uint32_t lcore; /* of the ring it holds */
	int core;
	uint64_t next_try_ns;
	uint32_t backoff_ms;
	bool started_once; /* a start after an end is a restart */
	/* the consumer's figures as last read: the NF zeroes them when it resets the ring after
	 * the instance ended, which may be before the supervisor reads them a last time */
	struct sbx_packet_stats seen;
	char why[160]; /* why it is not serving ("" while it is) */
};

/* What a function's ended instances did, and its restarts: counters outlive instances. */
struct pk_totals {
	struct pk_totals *next;
	char key[SBX_NAME_MAX];
	int wanted;
	uint64_t batches, packets, replies, errors, parks, restarts;
};

struct gw_packet {
	struct gw_daemon *d;
	pthread_t thread;
	int wake_fd;
	pthread_mutex_t lock; /* insts' sb and why, totals, the sync counters */
	pthread_cond_t synced;
	uint64_t sync_req, sync_done;
	bool stop;
	struct pk_inst *insts; /* changed by the supervisor only, under lock */
	struct pk_totals *totals;
};

/* ---- the "packet" key --------------------------------------------------------------------- */

struct pk_doc {
	char nf[GW_PATH_MAX];
	char function[48];
	char handler[64];
	const cJSON *lcore;
	int32_t core;
	uint32_t batch, spin_us, instances;
};

static int pk_item(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		   const struct cfg_key *key)
{
	(void)ctx;
	(void)path;
	*(const cJSON **)((char *)dst + key->offset) = item;
	return 0;
}

static const struct cfg_key pk_keys[] = {
	CFG_KEY_STR("nf", struct pk_doc, nf, true),
	CFG_KEY_STR("function", struct pk_doc, function, false),
	CFG_KEY_STR("handler", struct pk_doc, handler, false),
	{.name = "lcore", .parse = pk_item, .offset = offsetof(struct pk_doc, lcore)},
	CFG_KEY_RANGE("core", cfg_parse_i32, struct pk_doc, core, false, 0, 4095),
	CFG_KEY_RANGE("batch", cfg_parse_u32, struct pk_doc, batch, false, 1, 256),
	CFG_KEY_RANGE("spin_us", cfg_parse_u32, struct pk_doc, spin_us, false, 1, 1000000),
	CFG_KEY_RANGE("instances", cfg_parse_u32, struct pk_doc, instances, false, 1,
		      PK_MAX_INSTANCES),
	CFG_KEY_END,
};

int gw_packet_parse(struct cfg_ctx *ctx, const cJSON *obj, const char *fn_name,
		    struct gw_packet_trigger *t)
{
	struct pk_doc k = {.core = -1,
			   .batch = PK_DEFAULT_BATCH,
			   .spin_us = PK_DEFAULT_SPIN_US,
			   .instances = 1};
	int rc;

	memset(t, 0, sizeof(*t));
	if (!obj)
		return 0;
	if (!cJSON_IsObject(obj))
		return cfg_error(ctx, "packet",
				 "expected an object {\"nf\": ..., \"lcore\": N or \"any\", ...}");
	rc = cfg_parse_object(ctx, "packet", obj, pk_keys, &k);
	if (rc)
		return rc;
	t->lcore = -1;
	if (k.lcore) {
		if (cJSON_IsString(k.lcore) && !strcmp(k.lcore->valuestring, "any"))
			t->lcore = -1;
		else if (cJSON_IsNumber(k.lcore) && k.lcore->valuedouble >= 0 &&
			 k.lcore->valuedouble < 1024 &&
			 k.lcore->valuedouble == (double)k.lcore->valueint)
			t->lcore = k.lcore->valueint;
		else
			return cfg_error(ctx, "packet.lcore",
					 "expected an NF lcore 0..1023 or \"any\"");
	}
	if (k.instances > 1 && t->lcore >= 0)
		return cfg_error(ctx, "packet.instances",
				 "%u instances need \"lcore\": \"any\": the NF has one ring per "
				 "lcore, and one consumer per ring",
				 k.instances);
	if (strchr(k.nf, '/')) {
		if (k.nf[0] != '/' || strlen(k.nf) >= sizeof(t->socket))
			return cfg_error(ctx, "packet.nf",
					 "'%s': expected an absolute socket path shorter than %zu "
					 "characters, or an NF name",
					 k.nf, sizeof(t->socket));
		snprintf(t->socket, sizeof(t->socket), "%s", k.nf);
	} else {
		if (!gw_name_valid(k.nf) ||
		    snprintf(t->socket, sizeof(t->socket), PK_NF_SOCKET_FORMAT, k.nf) >=
			    (int)sizeof(t->socket))
			return cfg_error(ctx, "packet.nf",
					 "'%s': not an NF name ([A-Za-z0-9_-]) nor a socket path",
					 k.nf);
	}
	if (!k.function[0] && strlen(fn_name) >= sizeof(t->function))
		return cfg_error(ctx, "packet.function",
				 "needed: the function's name is longer than an NF ring's name "
				 "(%zu characters)",
				 sizeof(t->function) - 1);
	snprintf(t->nf, sizeof(t->nf), "%s", k.nf);
	snprintf(t->function, sizeof(t->function), "%s", k.function[0] ? k.function : fn_name);
	snprintf(t->handler, sizeof(t->handler), "%s", k.handler[0] ? k.handler : "handle_batch");
	t->core = k.core;
	t->batch = k.batch;
	t->spin_us = k.spin_us;
	t->instances = (int)k.instances;
	t->on = true;
	return 0;
}

int gw_packet_check_nf(const struct gw_packet_trigger *t, char *err, size_t errlen)
{
	char rings[256], why[256];
	int rc = fn_lease_describe(t->socket, rings, sizeof(rings), why, sizeof(why));
	const char *p;

	if (rc) {
		snprintf(err, errlen, "key 'packet.nf': the NF '%s' does not answer at %s: %s",
			 t->nf, t->socket, why);
		return rc;
	}
	/* "echo@1* sensor@1": function@lcore, '*' when leased */
	for (p = rings; *p;) {
		size_t n = strcspn(p, " ");
		const char *at = memchr(p, '@', n);

		if (at && (size_t)(at - p) == strlen(t->function) &&
		    !strncmp(p, t->function, (size_t)(at - p)) &&
		    (t->lcore < 0 || atoi(at + 1) == t->lcore))
			return 0;
		p += n;
		p += strspn(p, " ");
	}
	if (t->lcore >= 0)
		snprintf(err, errlen,
			 "key 'packet': the NF '%s' has no ring for function '%s' on lcore %d "
			 "(its rings: %s)",
			 t->nf, t->function, t->lcore, rings[0] ? rings : "none");
	else
		snprintf(err, errlen,
			 "key 'packet': the NF '%s' has no ring for function '%s' (its rings: %s)",
			 t->nf, t->function, rings[0] ? rings : "none");
	return -ENOENT;
}

/* ---- the supervisor ------------------------------------------------------------------------ */

static struct pk_totals *totals_of(struct gw_packet *p, const char *key)
{
	for (struct pk_totals *tt = p->totals; tt; tt = tt->next)
		if (!strcmp(tt->key, key))
			return tt;
	return NULL;
}

/*
 * Under p->lock: the figures of `in`'s instance. They only grow while it lives; lower ones
 * mean the NF reset the ring after its end, and the last ones read stand.
 */
static const struct sbx_packet_stats *inst_stats(struct pk_inst *in)
{
	struct sbx_packet_stats st;

	if (in->sb && sbx_packet_stats(in->sb, &st) == 0 && st.batches >= in->seen.batches &&
	    st.packets >= in->seen.packets && st.replies >= in->seen.replies)
		in->seen = st;
	return &in->seen;
}

/*
 * An instance lives on its core between batches, parked on the ring's eventfd: the dispatcher
 * hears of it, so that the NF lcore there keeps the sleep floor that lets it run when packets
 * come (without it, a parked instance left no trace in a window and the floor lapsed).
 */
static void resident(struct gw_packet *p, int core, int delta)
{
	const struct gw_dispatch *dp = &p->d->dispatch;

	if (dp->ops->resident)
		dp->ops->resident(dp->state, core, delta);
}

/* Under p->lock: take `in`'s instance off it, its figures into the totals. */
static struct sbx_sandbox *detach(struct gw_packet *p, struct pk_inst *in)
{
	struct sbx_sandbox *sb = in->sb;
	struct pk_totals *tt = totals_of(p, in->key);
	const struct sbx_packet_stats *st = inst_stats(in);

	if (sb && tt) {
		tt->batches += st->batches;
		tt->packets += st->packets;
		tt->replies += st->replies;
		tt->errors += st->errors;
		tt->parks += st->parks;
	}
	if (sb)
		resident(p, in->core, -1);
	in->sb = NULL;
	memset(&in->seen, 0, sizeof(in->seen));
	return sb;
}

static void stop_instance(struct gw_packet *p, struct sbx_sandbox *sb)
{
	if (sb)
		p->d->backend.ops->packet_stop(p->d->backend.state, sb);
}

struct wanted {
	int n, cap;
	struct {
		char key[SBX_NAME_MAX];
		uint64_t version;
		struct gw_packet_trigger t;
	} * v;
};

static void collect_wanted(void *arg, struct gw_function *fn)
{
	struct wanted *w = arg;

	if (!fn->packet.on)
		return;
	if (w->n == w->cap) {
		int cap = w->cap ? 2 * w->cap : 8;
		void *nv = realloc(w->v, (size_t)cap * sizeof(*w->v));

		if (!nv)
			return;
		w->v = nv;
		w->cap = cap;
	}
	snprintf(w->v[w->n].key, SBX_NAME_MAX, "%s", fn->spec.name);
	w->v[w->n].version = fn->version;
	w->v[w->n].t = fn->packet;
	w->n++;
}

/* Bring the instance list in line with the deployed functions' triggers. */
static void reconcile(struct gw_packet *p)
{
	struct wanted w = {0};
	struct pk_inst **pp, *in, *gone = NULL;
	struct pk_totals **tp, *tt;

	gw_fn_foreach(p->d, collect_wanted, &w);
	pthread_mutex_lock(&p->lock);
	/* instances of deleted or redeployed functions, or beyond the count, go */
	for (pp = &p->insts; (in = *pp);) {
		bool keep = false;

		for (int i = 0; i < w.n && !keep; i++)
			keep = !strcmp(w.v[i].key, in->key) && w.v[i].version == in->version &&
			       in->idx < w.v[i].t.instances;
		if (keep) {
			pp = &in->next;
			continue;
		}
		*pp = in->next;
		in->sb = detach(p, in);
		in->next = gone;
		gone = in;
	}
	/* a deleted function's figures go with it; a redeployed one's go on */
	for (tp = &p->totals; (tt = *tp);) {
		bool keep = false;

		for (int i = 0; i < w.n && !keep; i++)
			keep = !strcmp(w.v[i].key, tt->key);
		if (keep) {
			tp = &tt->next;
			continue;
		}
		*tp = tt->next;
		free(tt);
	}
	for (int i = 0; i < w.n; i++) {
		tt = totals_of(p, w.v[i].key);
		if (!tt && (tt = calloc(1, sizeof(*tt)))) {
			snprintf(tt->key, sizeof(tt->key), "%s", w.v[i].key);
			tt->next = p->totals;
			p->totals = tt;
		}
		if (tt)
			tt->wanted = w.v[i].t.instances;
		for (int idx = 0; idx < w.v[i].t.instances; idx++) {
			for (in = p->insts; in; in = in->next)
				if (!strcmp(in->key, w.v[i].key) && in->idx == idx)
					break;
			if (in)
				continue;
			in = calloc(1, sizeof(*in));
			if (!in)
				break;
			snprintf(in->key, sizeof(in->key), "%s", w.v[i].key);
			in->version = w.v[i].version;
			in->idx = idx;
			in->t = w.v[i].t;
			in->core = -1;
			snprintf(in->why, sizeof(in->why), "starting");
			in->next = p->insts;
			p->insts = in;
		}
	}
	pthread_mutex_unlock(&p->lock);
	free(w.v);
	/* stopped outside the lock: the figures do not wait for a sandbox to be reaped */
	while ((in = gone)) {
		gone = in->next;
		if (in->sb)
			NEMO_INFO(GW_MOD, "packet function=%s instance=%d lcore=%u stopped",
				  in->key, in->idx, in->lcore);
		stop_instance(p, in->sb);
		free(in);
	}
}

static void retry_later(struct pk_inst *in, uint32_t min_ms, uint32_t max_ms)
{
	in->backoff_ms = in->backoff_ms < min_ms ? min_ms : in->backoff_ms * 2;
	if (in->backoff_ms > max_ms)
		in->backoff_ms = max_ms;
	in->next_try_ns = nemo_now_ns() + in->backoff_ms * 1000000ull;
}

/* Why it cannot start: logged once per distinct reason, shown in the function's record. */
static void not_started(struct gw_packet *p, struct pk_inst *in, const char *why)
{
	if (strcmp(in->why, why))
		NEMO_WARN(GW_MOD, "packet function=%s instance=%d nf=%s: %s (retrying)", in->key,
			  in->idx, in->t.socket, why);
	pthread_mutex_lock(&p->lock);
	snprintf(in->why, sizeof(in->why), "%s", why);
	pthread_mutex_unlock(&p->lock);
}

/* Lease a ring and start an instance on it. */
static void try_start(struct gw_packet *p, struct pk_inst *in)
{
	const struct gw_backend_ops *ops = p->d->backend.ops;
	struct sbx_packet_config cfg = {
		.handler = in->t.handler, .batch = in->t.batch, .spin_us = in->t.spin_us};
	struct fn_ring ring = {.mem_fd = -1, .wake_fd = -1};
	struct sbx_packet_lease lease;
	struct sbx_sandbox *sb;
	char err[256], why[160];
	int lease_fd, core, rc;
	uint32_t lcore;

	rc = fn_lease_acquire(in->t.socket, in->t.function,
			      in->t.lcore < 0 ? FN_LEASE_ANY : (uint32_t)in->t.lcore, &ring,
			      &lease_fd, err, sizeof(err));
	if (rc == -EAGAIN) {
		/* the NF resets the ring its last consumer left: a matter of an iteration */
		retry_later(in, PK_BACKOFF_MIN_MS, 100);
		return;
	}
	if (rc) {
		snprintf(why, sizeof(why), "waiting for the NF: %s", err);
		not_started(p, in, why);
		retry_later(in, 100, PK_BACKOFF_MAX_MS);
		return;
	}
	lcore = ring.sh->lcore_id;
	lease = (struct sbx_packet_lease){ring.mem_fd, ring.wake_fd, lease_fd};
	ring.mem_fd = ring.wake_fd = -1;
	fn_ring_close(&ring); /* unmaps only: the fds are the instance's */
	core = in->t.core >= 0 ? in->t.core : (int)lcore;
	sb = ops->packet_start(p->d->backend.state, in->key, core, &lease, &cfg, err, sizeof(err));
	if (!sb) {
		snprintf(why, sizeof(why), "does not start on core %d: %s", core, err);
		not_started(p, in, why);
		retry_later(in, 100, PK_BACKOFF_MAX_MS);
		return;
	}
	pthread_mutex_lock(&p->lock);
	in->sb = sb;
	in->lcore = lcore;
	in->core = core;
	in->why[0] = '\0';
	in->backoff_ms = 0;
	resident(p, core, +1);
	pthread_mutex_unlock(&p->lock);
	NEMO_INFO(GW_MOD, "packet function=%s instance=%d nf=%s ring=%s@%u core=%d serving",
		  in->key, in->idx, in->t.socket, in->t.function, lcore, core);
	in->started_once = true;
}

/* An instance ended: keep its figures, log why once, replace it. */
static void ended(struct gw_packet *p, struct pk_inst *in, const char *why)
{
	struct sbx_sandbox *sb;
	struct pk_totals *tt;

	NEMO_WARN(GW_MOD, "packet function=%s instance=%d lcore=%u ended: %s (replacing it)",
		  in->key, in->idx, in->lcore, why);
	pthread_mutex_lock(&p->lock);
	sb = detach(p, in);
	tt = totals_of(p, in->key);
	if (tt)
		tt->restarts++;
	snprintf(in->why, sizeof(in->why), "replacing an instance that ended: %s", why);
	pthread_mutex_unlock(&p->lock);
	stop_instance(p, sb);
	in->backoff_ms = 0;
	in->next_try_ns = 0;
}

static void *supervise(void *arg)
{
	struct gw_packet *p = arg;
	struct pollfd *pfd = NULL;
	struct pk_inst **who = NULL;
	int cap = 0;

	for (;;) {
		uint64_t req, now, next = UINT64_MAX;
		struct pk_inst *in;
		int n = 1, timeout;

		pthread_mutex_lock(&p->lock);
		req = p->sync_req;
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		pthread_mutex_unlock(&p->lock);
		if (req != p->sync_done) {
			reconcile(p);
			pthread_mutex_lock(&p->lock);
			p->sync_done = req;
			pthread_cond_broadcast(&p->synced);
			pthread_mutex_unlock(&p->lock);
		}
		now = nemo_now_ns();
		for (in = p->insts; in; in = in->next)
			if (!in->sb && in->next_try_ns <= now)
				try_start(p, in);
		for (in = p->insts; in; in = in->next)
			n++;
		if (n > cap) {
			void *a = realloc(pfd, (size_t)n * sizeof(*pfd));
			void *b = a ? realloc(who, (size_t)n * sizeof(*who)) : NULL;

			if (a)
				pfd = a;
			if (b)
				who = b;
			if (!a || !b) {
				poll(NULL, 0, 100);
				continue;
			}
			cap = n;
		}
		n = 1;
		pfd[0] = (struct pollfd){.fd = p->wake_fd, .events = POLLIN};
		for (in = p->insts; in; in = in->next) {
			if (in->sb) {
				who[n] = in;
				pfd[n++] = (struct pollfd){.fd = sbx_packet_fd(in->sb),
							   .events = POLLIN};
			} else if (in->next_try_ns < next) {
				next = in->next_try_ns;
			}
		}
		/* the figures of the living, read often enough that an end loses little */
		pthread_mutex_lock(&p->lock);
		for (int i = 1; i < n; i++)
			inst_stats(who[i]);
		pthread_mutex_unlock(&p->lock);
		now = nemo_now_ns();
		timeout = next == UINT64_MAX ? 1000
			  : next <= now	     ? 0
					     : (int)((next - now) / 1000000ull) + 1;
		if (timeout > (n > 1 ? PK_STATS_MS : 1000))
			timeout = n > 1 ? PK_STATS_MS : 1000;
		if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR) {
			NEMO_ERR(GW_MOD, "packet supervisor: poll: %s", strerror(errno));
			poll(NULL, 0, 100);
			continue;
		}
		if (pfd[0].revents) {
			uint64_t v;

			if (read(p->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				NEMO_WARN(GW_MOD, "packet supervisor: read: %s", strerror(errno));
		}
		for (int i = 1; i < n; i++) {
			char why[256];

			if (pfd[i].revents &&
			    sbx_packet_check(who[i]->sb, why, sizeof(why)) == -EPIPE)
				ended(p, who[i], why);
		}
	}
	free(pfd);
	free(who);
	return NULL;
}

static void wake(struct gw_packet *p)
{
	uint64_t one = 1;

	if (write(p->wake_fd, &one, sizeof(one)) < 0)
		NEMO_WARN(GW_MOD, "packet supervisor: wake: %s", strerror(errno));
}

struct gw_packet *gw_packet_start(struct gw_daemon *d)
{
	struct gw_packet *p;
	int rc;

	if (!d->backend.ops->packet_start || !d->backend.ops->packet_stop) {
		errno = ENOTSUP;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->d = d;
	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->wake_fd < 0) {
		rc = errno;
		NEMO_ERR(GW_MOD, "packet supervisor: eventfd: %s", strerror(errno));
		free(p);
		errno = rc;
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->synced, NULL);
	p->sync_req = 1; /* the functions deployed from the store */
	rc = pthread_create(&p->thread, NULL, supervise, p);
	if (rc) {
		NEMO_ERR(GW_MOD, "packet supervisor: thread: %s", strerror(rc));
		close(p->wake_fd);
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->synced);
		free(p);
		errno = rc;
		return NULL;
	}
	return p;
}

void gw_packet_stop(struct gw_packet *p)
{
	struct pk_inst *in;
	struct pk_totals *tt;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_mutex_unlock(&p->lock);
	wake(p);
	pthread_join(p->thread, NULL);
	while ((in = p->insts)) {
		p->insts = in->next;
		if (in->sb)
			NEMO_INFO(GW_MOD, "packet function=%s instance=%d lcore=%u stopped",
				  in->key, in->idx, in->lcore);
		stop_instance(p, in->sb);
		free(in);
	}
	while ((tt = p->totals)) {
		p->totals = tt->next;
		free(tt);
	}
	close(p->wake_fd);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->synced);
	free(p);
}

void gw_packet_sync(struct gw_packet *p)
{
	struct timespec until;
	uint64_t req;

	if (!p)
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += PK_SYNC_TIMEOUT_MS / 1000;
	pthread_mutex_lock(&p->lock);
	req = ++p->sync_req;
	wake(p);
	while (p->sync_done < req && !p->stop)
		if (pthread_cond_timedwait(&p->synced, &p->lock, &until) == ETIMEDOUT) {
			NEMO_WARN(GW_MOD, "packet supervisor: a change not applied within %d ms",
				  PK_SYNC_TIMEOUT_MS);
			break;
		}
	pthread_mutex_unlock(&p->lock);
}

int gw_packet_figures(struct gw_packet *p, const char *key, struct gw_packet_figures *out)
{
	struct pk_totals *tt;
	int rc = -ENOENT;

	memset(out, 0, sizeof(*out));
	if (!p)
		return rc;
	pthread_mutex_lock(&p->lock);
	tt = totals_of(p, key);
	if (tt) {
		rc = 0;
		out->batches = tt->batches;
		out->packets = tt->packets;
		out->replies = tt->replies;
		out->errors = tt->errors;
		out->parks = tt->parks;
		out->restarts = tt->restarts;
		out->wanted = tt->wanted;
		for (struct pk_inst *in = p->insts; in; in = in->next) {
			const struct sbx_packet_stats *st;

			if (strcmp(in->key, key))
				continue;
			if (!in->sb) {
				if (!out->state[0])
					snprintf(out->state, sizeof(out->state), "%s", in->why);
				continue;
			}
			out->serving++;
			st = inst_stats(in);
			out->batches += st->batches;
			out->packets += st->packets;
			out->replies += st->replies;
			out->errors += st->errors;
			out->parks += st->parks;
		}
		if (!out->state[0])
			snprintf(out->state, sizeof(out->state), "%s",
				 out->serving == out->wanted ? "serving" : "starting");
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}
