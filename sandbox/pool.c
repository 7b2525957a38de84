/* pool.c - warm pools per function under one memory budget and a keep-alive policy. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/log.h"
#include "sandbox_internal.h"

struct fn_pool;

/* One instance the pool made; hangs off sb->pool_entry. */
struct pool_entry {
	struct sbx_sandbox *sb;
	struct fn_pool *fn;
	struct sbx_keepalive_entry ka;
	uint64_t generation; /* of the spec it was made from */
	bool prewarmed;	     /* made ahead of demand and never served */
	bool leased;	     /* acquired for a nemo_call lease (chain.c) */
	bool freezing;	     /* sbx_pool_freeze_core began its freeze and waits for it */
	struct pool_entry *next;
	struct pool_entry *acq_next, *acq_prev; /* on pool->acquired while acquired */
};

/*
 * A function's zygote as the pool holds it: forks are made from it outside the pool's lock,
 * so it is destroyed only when dropped and no fork is under way (`users`, under the lock).
 */
struct zygote_ref {
	struct sbx_sandbox *z;
	uint64_t generation; /* of the spec it loaded */
	int users;	     /* forks under way */
	bool dropped;	     /* the pool let go: the last user destroys it */
	struct sbx_keepalive_entry ka;
	struct zygote_ref *next; /* on a list of dropped ones to destroy */
};

struct fn_pool {
	struct sbx_spec spec;
	struct zygote_ref *zygote;
	uint64_t generation;
	struct pool_entry *idle;
	uint32_t n_idle;
	uint32_t busy;
	uint32_t leased; /* of busy: instances leased to callers, outside spec.concurrency */
	uint32_t prewarm_target; /* idle pre-warmed instances to keep, replacing dead ones */
	uint64_t frequency;
	uint64_t memory_estimate; /* the largest footprint seen, for budget checks */
	uint64_t zygote_estimate; /* its zygote's last measured footprint */
	bool retired;
	struct sbx_pool_stats st;
	struct fn_pool *next;
};

struct sbx_pool {
	struct sbx_host *host;
	const struct sbx_keepalive_ops *ops;
	struct sbx_keepalive_state ka;
	pthread_mutex_t lock;
	pthread_cond_t released;
	pthread_cond_t thawed; /* sbx_pool_thaw_core ran: frozen acquired instances look again */
	struct fn_pool *fns;
	struct pool_entry *acquired; /* every acquired instance, of any function: a core freeze
				      * reaches invocations in flight */
	struct pool_entry *packets;  /* packet-mode instances (sbx_pool_packet_start) */
	uint32_t n_packets;
	uint64_t memory_used;	 /* every instance, idle or busy */
	bool stopping;		 /* sbx_pool_stop: nothing waits for a thaw any more */
	struct sbx_chain *chain; /* instances leased to functions that call them (chain.c) */
};

/* What a call paused in, or waiting for, an instance killed by sbx_pool_stop() reads. */
static const char stop_why[] = "nemod is stopping while its core is reclaimed by its NF "
			       "(frozen): the instance was killed";

#define DEFAULT_ESTIMATE (8ull << 20) /* when the cgroup cannot be read */

/* Under the lock: let go of fn's zygote; returns it when it must be destroyed now. */
static struct zygote_ref *zygote_drop(struct sbx_pool *pool, struct fn_pool *fn)
{
	struct zygote_ref *ref = fn->zygote;

	if (!ref)
		return NULL;
	fn->zygote = NULL;
	pool->memory_used -= ref->ka.memory_bytes;
	ref->dropped = true;
	return ref->users ? NULL : ref;
}

static void zygote_free(struct zygote_ref *ref)
{
	while (ref) {
		struct zygote_ref *next = ref->next;

		sbx_destroy(ref->z); /* forks still alive keep it, retired, until the last goes */
		free(ref);
		ref = next;
	}
}

/* Under the lock: drop fn's zygote onto `list` (destroyed outside the lock). */
static void zygote_drop_to(struct sbx_pool *pool, struct fn_pool *fn, struct zygote_ref **list)
{
	struct zygote_ref *ref = zygote_drop(pool, fn);

	if (ref) {
		ref->next = *list;
		*list = ref;
	}
}

/* Under the lock: a fork of fn's zygote begins; NULL when there is no usable one. */
static struct zygote_ref *zygote_use(struct fn_pool *fn)
{
	struct zygote_ref *ref = fn->zygote;

	if (!ref || ref->generation != fn->generation)
		return NULL;
	ref->users++;
	ref->ka.last_used_ns = nemo_now_ns();
	return ref;
}

/* Give a use of `ref` back (outside the lock); the last user of a dropped one destroys it. */
static void zygote_unuse(struct sbx_pool *pool, struct zygote_ref *ref)
{
	bool last;

	pthread_mutex_lock(&pool->lock);
	last = --ref->users == 0 && ref->dropped;
	pthread_mutex_unlock(&pool->lock);
	if (last)
		zygote_free(ref);
}

/* Fork an instance from `ref` (outside the lock), then give the use back. */
static struct sbx_sandbox *zygote_fork_unlocked(struct sbx_pool *pool, struct zygote_ref *ref,
						int core, char *err, size_t errlen)
{
	struct sbx_sandbox *sb = sbx_zygote_fork(ref->z, core, err, errlen);
	int saved = errno;

	zygote_unuse(pool, ref);
	errno = saved;
	return sb;
}

/*
 * Keep `ref`'s next instance ready-made (outside the lock, on spare cycles: the zygote does
 * the work, on its core), then give the use back. A failure only means the next start forks
 * on demand.
 */
static void zygote_prepare_unlocked(struct sbx_pool *pool, struct zygote_ref *ref)
{
	char err[SBX_MSG_MAX];

	if (sbx_zygote_prepare(ref->z, err, sizeof(err)))
		NEMO_WARN(SBX_LOG, "%s: no ready fork: %s", sbx_spec_of(ref->z)->name, err);
	zygote_unuse(pool, ref);
}

struct sbx_pool *sbx_pool_new(struct sbx_host *host, const struct sbx_keepalive_ops *ka,
			      const struct sbx_keepalive_params *params)
{
	struct sbx_pool *pool;

	if (!host) {
		errno = EINVAL;
		return NULL;
	}
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return NULL;
	pool->host = host;
	pool->ops = ka ? ka : &sbx_keepalive_ttl;
	pool->ka.params.ttl_ns = 600ull * 1000000000ull;
	pool->ka.params.memory_budget_bytes = 1ull << 30;
	if (params) {
		pool->ka.params = *params;
		if (!pool->ka.params.memory_budget_bytes)
			pool->ka.params.memory_budget_bytes = 1ull << 30;
	}
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->released, NULL);
	pthread_cond_init(&pool->thawed, NULL);
	pool->chain = sbx_chain_new(pool);
	if (!pool->chain)
		NEMO_WARN(SBX_LOG, "no nemo_call between functions: %s", strerror(errno));
	if (!host->chain)
		host->chain = pool->chain;
	return pool;
}

/* Under the lock: an instance was handed out (or given back). */
static void acquired_add(struct sbx_pool *pool, struct pool_entry *e)
{
	e->acq_prev = NULL;
	e->acq_next = pool->acquired;
	if (pool->acquired)
		pool->acquired->acq_prev = e;
	pool->acquired = e;
}

static void acquired_remove(struct sbx_pool *pool, struct pool_entry *e)
{
	if (e->acq_prev)
		e->acq_prev->acq_next = e->acq_next;
	else
		pool->acquired = e->acq_next;
	if (e->acq_next)
		e->acq_next->acq_prev = e->acq_prev;
	e->acq_next = e->acq_prev = NULL;
}

static struct fn_pool *find_fn(struct sbx_pool *pool, const char *name)
{
	for (struct fn_pool *fn = pool->fns; fn; fn = fn->next)
		if (strcmp(fn->spec.name, name) == 0)
			return fn;
	return NULL;
}

int sbx_pool_spec(struct sbx_pool *pool, const char *name, struct sbx_spec *spec)
{
	struct fn_pool *fn;

	pthread_mutex_lock(&pool->lock);
	fn = find_fn(pool, name);
	if (fn)
		*spec = fn->spec;
	pthread_mutex_unlock(&pool->lock);
	return fn ? 0 : -ENOENT;
}

/* Destroy a list of entries (outside the lock: killing and rmdir take time). */
static void destroy_entries(struct pool_entry *list)
{
	while (list) {
		struct pool_entry *next = list->next;

		sbx_destroy(list->sb);
		free(list);
		list = next;
	}
}

/* Under the lock: take every idle entry of fn off its list. */
static struct pool_entry *take_idle(struct sbx_pool *pool, struct fn_pool *fn)
{
	struct pool_entry *list = fn->idle;

	for (struct pool_entry *e = list; e; e = e->next)
		pool->memory_used -= e->ka.memory_bytes;
	fn->idle = NULL;
	fn->n_idle = 0;
	return list;
}

void sbx_pool_destroy(struct sbx_pool *pool)
{
	if (!pool)
		return;
	/* leased instances go back to their functions' idle lists first */
	if (pool->host->chain == pool->chain)
		pool->host->chain = NULL;
	sbx_chain_destroy(pool->chain);
	destroy_entries(pool->packets);
	pool->packets = NULL;
	while (pool->fns) {
		struct fn_pool *fn = pool->fns;

		pool->fns = fn->next;
		destroy_entries(take_idle(pool, fn));
		zygote_free(zygote_drop(pool, fn));
		/* instances still acquired are the caller's bug; they die with the host */
		if (fn->busy)
			NEMO_WARN(SBX_LOG, "pool destroyed with %u instances of %s acquired",
				  fn->busy, fn->spec.name);
		free(fn);
	}
	pthread_cond_destroy(&pool->thawed);
	pthread_cond_destroy(&pool->released);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

int sbx_pool_deploy(struct sbx_pool *pool, const struct sbx_spec *spec)
{
	struct pool_entry *old = NULL;
	struct zygote_ref *old_zygote = NULL;
	int zygote_core = -1;
	struct fn_pool *fn;

	if (!spec || !spec->name[0] || !spec->code[0] || spec->runtime < 0 ||
	    spec->runtime > SBX_RUNTIME_EXEC || !spec->concurrency)
		return -EINVAL;
	pthread_mutex_lock(&pool->lock);
	fn = find_fn(pool, spec->name);
	if (fn) {
		/* new code: the old instances must not serve again, nor be forked again */
		old = take_idle(pool, fn);
		if (fn->zygote)
			zygote_core = sbx_core(fn->zygote->z);
		old_zygote = zygote_drop(pool, fn);
		fn->spec = *spec;
		fn->generation++;
		fn->memory_estimate = 0;
		fn->zygote_estimate = 0;
	} else {
		fn = calloc(1, sizeof(*fn));
		if (!fn) {
			pthread_mutex_unlock(&pool->lock);
			return -ENOMEM;
		}
		fn->spec = *spec;
		fn->next = pool->fns;
		pool->fns = fn;
	}
	pthread_mutex_unlock(&pool->lock);
	destroy_entries(old);
	zygote_free(old_zygote);
	/* a redeployed function that had a zygote has one of its new code */
	if (zygote_core >= 0 && sbx_pool_zygote(pool, spec->name, zygote_core) < 0)
		NEMO_WARN(SBX_LOG, "%s: redeployed without its zygote: calls start cold",
			  spec->name);
	return 0;
}

int sbx_pool_undeploy(struct sbx_pool *pool, const char *name)
{
	struct zygote_ref *old_zygote;
	struct pool_entry *old;
	struct fn_pool *fn, **p;

	pthread_mutex_lock(&pool->lock);
	for (p = &pool->fns; *p && strcmp((*p)->spec.name, name); p = &(*p)->next)
		;
	fn = *p;
	if (!fn) {
		pthread_mutex_unlock(&pool->lock);
		return -ENOENT;
	}
	*p = fn->next;
	old = take_idle(pool, fn);
	old_zygote = zygote_drop(pool, fn);
	/* acquired instances still point at fn: the last release frees it */
	fn->retired = true;
	if (!fn->busy)
		free(fn);
	pthread_mutex_unlock(&pool->lock);
	destroy_entries(old);
	zygote_free(old_zygote);
	return 0;
}

/*
 * Under the lock: make room for `need` bytes by evicting idle instances in the policy's
 * order, except those of `exclude` (pre-warming a function must not evict its own warm
 * instances). Returns the evicted entries, and whether the room was found in *fits.
 */
static struct pool_entry *evict_for(struct sbx_pool *pool, uint64_t need,
				    const struct fn_pool *exclude, bool *fits,
				    struct zygote_ref **zygotes)
{
	struct pool_entry *evicted = NULL;

	while (pool->memory_used + need > pool->ka.params.memory_budget_bytes) {
		struct pool_entry **victim = NULL, *e;
		struct fn_pool *victim_fn = NULL, *zygote_fn = NULL;
		const struct sbx_keepalive_entry *best = NULL;

		for (struct fn_pool *fn = pool->fns; fn; fn = fn->next) {
			for (struct pool_entry **pp = &fn->idle; fn != exclude && *pp;
			     pp = &(*pp)->next)
				if (!best || pool->ops->compare(&pool->ka, &(*pp)->ka, best) < 0) {
					victim = pp;
					victim_fn = fn;
					zygote_fn = NULL;
					best = &(*pp)->ka;
				}
			/* zygotes are kept and evicted by the same policy as instances */
			if (fn != exclude && fn->zygote &&
			    (!best || pool->ops->compare(&pool->ka, &fn->zygote->ka, best) < 0)) {
				zygote_fn = fn;
				best = &fn->zygote->ka;
			}
		}
		if (zygote_fn) {
			zygote_fn->st.evictions++;
			pool->ops->on_evict(&pool->ka, &zygote_fn->zygote->ka);
			zygote_drop_to(pool, zygote_fn, zygotes);
			continue;
		}
		if (!victim)
			break;
		e = *victim;
		*victim = e->next;
		victim_fn->n_idle--;
		victim_fn->st.evictions++;
		pool->memory_used -= e->ka.memory_bytes;
		pool->ops->on_evict(&pool->ka, &e->ka);
		e->next = evicted;
		evicted = e;
	}
	*fits = pool->memory_used + need <= pool->ka.params.memory_budget_bytes;
	return evicted;
}

/*
 * Create and initialise one instance of fn (outside the lock), as a pool entry. The
 * memory it was budgeted (`reserved`) is corrected to what it measures.
 */
static struct pool_entry *make_instance(struct sbx_pool *pool, const struct sbx_spec *spec,
					uint64_t generation, int core, struct zygote_ref *zygote,
					struct sbx_result *res)
{
	struct pool_entry *e = calloc(1, sizeof(*e));
	char err[SBX_MSG_MAX];
	int rc;

	if (!e)
		return NULL;
	if (zygote) {
		e->sb = zygote_fork_unlocked(pool, zygote, core, err, sizeof(err));
		if (e->sb)
			goto made;
		/* a zygote that cannot fork: start from scratch, as if there were none */
		if (res)
			res->path = SBX_START_COLD;
	}
	e->sb = sbx_create(pool->host, spec, core);
	if (!e->sb) {
		rc = errno;
		if (res)
			snprintf(res->message, sizeof(res->message), "%s: cannot create: %s",
				 spec->name, strerror(rc));
		if (res)
			res->status = SBX_ERR_INTERNAL;
		free(e);
		errno = rc;
		return NULL;
	}
	rc = sbx_init(e->sb, err, sizeof(err));
	if (rc) {
		if (res) {
			res->status = SBX_ERR_INIT;
			snprintf(res->message, sizeof(res->message), "%s", err);
		}
		sbx_destroy(e->sb);
		free(e);
		errno = rc == -ENOEXEC ? ENOEXEC : -rc;
		return NULL;
	}
made:
	e->sb->pool_entry = e;
	e->generation = generation;
	e->ka.function = e->sb->spec.name;
	e->ka.created_ns = nemo_now_ns();
	e->ka.last_used_ns = e->ka.created_ns;
	e->ka.init_cost_ns = e->sb->create_ns + e->sb->init_ns;
	if (sbx_memory_bytes(e->sb, &e->ka.memory_bytes))
		e->ka.memory_bytes = DEFAULT_ESTIMATE;
	if (res) {
		res->times.create_ns = e->sb->create_ns;
		res->times.init_ns = e->sb->init_ns;
	}
	return e;
}

/* Under the lock: account a made instance's real size instead of the estimate. */
static void settle_memory(struct sbx_pool *pool, struct fn_pool *fn, uint64_t reserved,
			  const struct pool_entry *e)
{
	pool->memory_used = pool->memory_used - reserved + e->ka.memory_bytes;
	if (e->ka.memory_bytes > fn->memory_estimate)
		fn->memory_estimate = e->ka.memory_bytes;
}

/*
 * What an instance of fn is expected to take: the largest measured so far, else the mean of
 * the functions measured, else nothing (the first instance of the first function is
 * budgeted when it is measured).
 */
static uint64_t estimate_of(const struct sbx_pool *pool, const struct fn_pool *fn)
{
	uint64_t sum = 0, n = 0;

	if (fn->memory_estimate)
		return fn->memory_estimate;
	for (const struct fn_pool *f = pool->fns; f; f = f->next)
		if (f->memory_estimate) {
			sum += f->memory_estimate;
			n++;
		}
	return n ? sum / n : 0;
}

int sbx_pool_zygote(struct sbx_pool *pool, const char *name, int core)
{
	struct zygote_ref *ref, *zdead = NULL;
	struct sbx_sandbox *z = NULL;
	struct pool_entry *evicted;
	char err[SBX_MSG_MAX] = "";
	struct sbx_spec spec;
	struct fn_pool *fn;
	uint64_t gen, reserve, now = nemo_now_ns();
	bool fits;

	if (!pool || !name || core < 0 || core >= sbx_host_n_cores(pool->host))
		return -EINVAL;
	pthread_mutex_lock(&pool->lock);
	if (pool->stopping) {
		pthread_mutex_unlock(&pool->lock);
		return -ESHUTDOWN;
	}
	fn = find_fn(pool, name);
	if (!fn || (fn->spec.runtime != SBX_RUNTIME_C && fn->spec.runtime != SBX_RUNTIME_PYTHON)) {
		pthread_mutex_unlock(&pool->lock);
		return fn ? -ENOTSUP : -ENOENT;
	}
	ref = fn->zygote;
	if (ref && ref->generation == fn->generation && sbx_state(ref->z) == SBX_STATE_READY) {
		/* asked for again: the forecast still wants it, which counts as a use; and its
		 * next instance is kept ready-made */
		ref->ka.last_used_ns = now;
		ref->ka.frequency = fn->frequency;
		pool->ops->on_idle(&pool->ka, &ref->ka, now);
		ref->users++;
		pthread_mutex_unlock(&pool->lock);
		zygote_prepare_unlocked(pool, ref);
		return 0;
	}
	zygote_drop_to(pool, fn, &zdead); /* dead, or of older code */
	reserve = fn->zygote_estimate ? fn->zygote_estimate : estimate_of(pool, fn);
	evicted = evict_for(pool, reserve, fn, &fits, &zdead);
	if (fits)
		pool->memory_used += reserve;
	spec = fn->spec;
	gen = fn->generation;
	pthread_mutex_unlock(&pool->lock);
	destroy_entries(evicted);
	zygote_free(zdead);
	if (!fits)
		return -ENOSPC;
	ref = calloc(1, sizeof(*ref));
	if (ref)
		z = sbx_zygote_create(pool->host, &spec, core, err, sizeof(err));
	/* with its next instance ready-made, counted in what it measures */
	if (z && sbx_zygote_prepare(z, err, sizeof(err)))
		NEMO_WARN(SBX_LOG, "%s: no ready fork: %s", name, err);
	pthread_mutex_lock(&pool->lock);
	fn = find_fn(pool, name);
	if (!z || !fn || fn->generation != gen || fn->zygote) {
		int rc = !ref ? -ENOMEM : !z ? -errno : fn && fn->zygote ? 0 : -ENOENT;

		pool->memory_used -= reserve;
		pthread_mutex_unlock(&pool->lock);
		if (!z && err[0])
			NEMO_WARN(SBX_LOG, "%s: no zygote: %s", name, err);
		sbx_destroy(z);
		free(ref);
		return rc;
	}
	ref->z = z;
	ref->generation = gen;
	ref->ka.function = sbx_spec_of(z)->name;
	ref->ka.created_ns = now;
	ref->ka.last_used_ns = nemo_now_ns();
	ref->ka.init_cost_ns = z->create_ns + z->init_ns;
	if (sbx_memory_bytes(z, &ref->ka.memory_bytes))
		ref->ka.memory_bytes = DEFAULT_ESTIMATE;
	pool->memory_used = pool->memory_used - reserve + ref->ka.memory_bytes;
	fn->zygote_estimate = ref->ka.memory_bytes;
	ref->ka.frequency = fn->frequency;
	pool->ops->on_idle(&pool->ka, &ref->ka, ref->ka.last_used_ns);
	fn->zygote = ref;
	fn->st.zygotes_made++;
	pthread_mutex_unlock(&pool->lock);
	return 1;
}

int sbx_pool_prewarm(struct sbx_pool *pool, const char *name, int core, int count)
{
	int made = 0;

	/* zygotes on: on spare cycles, the zygote first (kept if there), then forks of it, each
	 * of which costs a fork, not a start (a function without one starts from scratch) */
	if (count > 0 && pool->ka.params.zygotes)
		sbx_pool_zygote(pool, name, core);
	for (; made < count; made++) {
		struct pool_entry *e, *evicted;
		struct zygote_ref *zref = NULL, *zdead = NULL;
		struct sbx_spec spec;
		struct fn_pool *fn;
		uint64_t gen, reserve;
		bool fits;

		pthread_mutex_lock(&pool->lock);
		fn = find_fn(pool, name);
		if (!fn || pool->stopping) {
			pthread_mutex_unlock(&pool->lock);
			return made ? made : fn ? -ESHUTDOWN : -ENOENT;
		}
		reserve = estimate_of(pool, fn);
		evicted = evict_for(pool, reserve, fn, &fits, &zdead);
		if (fits) {
			pool->memory_used += reserve;
			zref = zygote_use(fn);
		}
		spec = fn->spec;
		gen = fn->generation;
		pthread_mutex_unlock(&pool->lock);
		destroy_entries(evicted);
		zygote_free(zdead);
		if (!fits)
			return made ? made : -ENOSPC;
		e = make_instance(pool, &spec, gen, core, zref, NULL);
		pthread_mutex_lock(&pool->lock);
		fn = find_fn(pool, name);
		if (!e || !fn || fn->generation != gen) {
			int rc = e ? -ENOENT : -errno;

			pool->memory_used -= reserve;
			pthread_mutex_unlock(&pool->lock);
			if (e) {
				sbx_destroy(e->sb);
				free(e);
			}
			return made ? made : rc;
		}
		settle_memory(pool, fn, reserve, e);
		e->fn = fn;
		e->prewarmed = true;
		e->ka.frequency = fn->frequency;
		pool->ops->on_idle(&pool->ka, &e->ka, nemo_now_ns());
		e->next = fn->idle;
		fn->idle = e;
		fn->n_idle++;
		if (fn->prewarm_target < fn->n_idle)
			fn->prewarm_target = fn->n_idle;
		pthread_mutex_unlock(&pool->lock);
	}
	return made;
}

/*
 * Under the lock: the best idle instance for `core` (most recently idle, on that core if
 * any), taken off the list. Frozen ones stay where they are: their core belongs to its NF
 * until the thaw, and an invocation sent there would wait for it. Only the chosen one is
 * checked for life (one poll of its pidfd); a dead one goes to *dead and the next is tried.
 */
static struct pool_entry *take_warm(struct sbx_pool *pool, struct fn_pool *fn, int core,
				    struct pool_entry **dead)
{
	for (;;) {
		struct pool_entry **best = NULL, *e;

		for (struct pool_entry **pp = &fn->idle; *pp; pp = &(*pp)->next)
			if (!sbx_frozen((*pp)->sb) &&
			    (!best || (core >= 0 && sbx_core((*pp)->sb) == core &&
				       sbx_core((*best)->sb) != core)))
				best = pp;
		if (!best)
			return NULL;
		e = *best;
		*best = e->next;
		fn->n_idle--;
		if (sbx_state(e->sb) == SBX_STATE_READY)
			return e;
		fn->st.crashes++;
		pool->memory_used -= e->ka.memory_bytes;
		e->next = *dead;
		*dead = e;
	}
}

/*
 * An instance leased to a calling function runs only while its caller waits on it, so it
 * does not take one of the function's concurrency slots: those are for the function's own
 * invocations, which a long-lived lease would otherwise block.
 */
static struct sbx_sandbox *acquire(struct sbx_pool *pool, const char *name, int core,
				   struct sbx_result *res, bool lease)
{
	struct pool_entry *e, *dead = NULL, *evicted = NULL;
	struct zygote_ref *zref, *zdead = NULL;
	uint64_t t0 = nemo_now_ns(), reserve, gen;
	struct sbx_result local;
	struct sbx_spec spec;
	struct fn_pool *fn;
	bool fits;

	if (!res)
		res = &local;
	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&pool->lock);
	fn = find_fn(pool, name);
	if (!fn) {
		pthread_mutex_unlock(&pool->lock);
		res->status = SBX_ERR_STATE;
		snprintf(res->message, sizeof(res->message), "function '%s' is not deployed", name);
		errno = ENOENT;
		return NULL;
	}
	/* at the concurrency limit, queue for a release, at most one timeout */
	if (!lease && fn->busy - fn->leased >= fn->spec.concurrency) {
		struct timespec until = nemo_deadline_after_ns(
			CLOCK_REALTIME, (uint64_t)fn->spec.timeout_ms * 1000000ull);

		while ((fn = find_fn(pool, name)) && fn->busy - fn->leased >= fn->spec.concurrency)
			if (pthread_cond_timedwait(&pool->released, &pool->lock, &until))
				break;
		if (!fn || fn->busy - fn->leased >= fn->spec.concurrency) {
			pthread_mutex_unlock(&pool->lock);
			res->status = SBX_ERR_STATE;
			snprintf(res->message, sizeof(res->message),
				 "function '%s' is at its concurrency limit", name);
			errno = fn ? EAGAIN : ENOENT;
			return NULL;
		}
	}
	fn->busy++;
	fn->leased += lease;
	fn->frequency++;
	e = take_warm(pool, fn, core, &dead);
	if (e) {
		e->leased = lease;
		res->path = e->prewarmed ? SBX_START_PREWARMED : SBX_START_WARM;
		if (e->prewarmed)
			fn->st.prewarmed_starts++;
		else
			fn->st.warm_starts++;
		e->prewarmed = false;
		acquired_add(pool, e);
		pthread_mutex_unlock(&pool->lock);
		res->times.queue_ns = nemo_now_ns() - t0;
		destroy_entries(dead);
		return e->sb;
	}
	/* no idle instance: a fork of the function's zygote if it has one, else cold */
	zref = zygote_use(fn);
	reserve = estimate_of(pool, fn);
	evicted = evict_for(pool, reserve, fn, &fits, &zdead);
	pool->memory_used += reserve; /* over budget if it must: a request beats the cache */
	spec = fn->spec;
	gen = fn->generation;
	pthread_mutex_unlock(&pool->lock);
	res->times.queue_ns = nemo_now_ns() - t0;
	res->path = zref ? SBX_START_ZYGOTE : SBX_START_COLD;
	destroy_entries(dead);
	destroy_entries(evicted);
	zygote_free(zdead);
	e = make_instance(pool, &spec, gen, core >= 0 ? core : 0, zref, res);
	pthread_mutex_lock(&pool->lock);
	/* counted once the path is known: a zygote that could not fork fell back to cold */
	if (res->path == SBX_START_ZYGOTE) {
		fn->st.zygote_starts++;
		fn->st.zygote_ready_starts += e && sbx_from_ready_fork(e->sb);
	} else
		fn->st.cold_starts++;
	if (!e) {
		int rc = errno;

		pool->memory_used -= reserve;
		fn->busy--;
		fn->leased -= lease;
		pthread_cond_broadcast(&pool->released);
		if (fn->retired && !fn->busy)
			free(fn);
		pthread_mutex_unlock(&pool->lock);
		errno = rc;
		return NULL;
	}
	e->fn = fn;
	e->leased = lease;
	settle_memory(pool, fn, reserve, e);
	acquired_add(pool, e);
	pthread_mutex_unlock(&pool->lock);
	return e->sb;
}

struct sbx_sandbox *sbx_pool_acquire(struct sbx_pool *pool, const char *name, int core,
				     struct sbx_result *res)
{
	return acquire(pool, name, core, res, false);
}

struct sbx_sandbox *sbx_pool_acquire_lease(struct sbx_pool *pool, const char *name, int core,
					   struct sbx_result *res)
{
	return acquire(pool, name, core, res, true);
}

void sbx_pool_release(struct sbx_pool *pool, struct sbx_sandbox *sb)
{
	struct pool_entry *e = sb->pool_entry;
	enum sbx_state state;
	struct sbx_spec spec;
	struct fn_pool *fn;
	bool replace = false;
	int core = sbx_core(sb);

	pthread_mutex_lock(&pool->lock);
	/* read under the lock: a core freeze turns READY into FROZEN under it */
	state = sbx_state(sb);
	acquired_remove(pool, e);
	/* an undeployed function's fn lives on (retired) while instances are acquired */
	fn = e->fn;
	fn->busy--;
	fn->leased -= e->leased;
	e->leased = false;
	pthread_cond_broadcast(&pool->released);
	if (!fn->retired && (state == SBX_STATE_READY || state == SBX_STATE_FROZEN) &&
	    e->generation == fn->generation) {
		e->ka.last_used_ns = nemo_now_ns();
		e->ka.frequency = fn->frequency;
		pool->ops->on_idle(&pool->ka, &e->ka, e->ka.last_used_ns);
		e->next = fn->idle;
		fn->idle = e;
		fn->n_idle++;
		pthread_mutex_unlock(&pool->lock);
		return;
	}
	pool->memory_used -= e->ka.memory_bytes;
	if (state == SBX_STATE_DEAD) {
		fn->st.crashes++;
		/* keep the pre-warmed level the harvester asked for, unless we are leaving */
		replace = !fn->retired && !pool->stopping && fn->n_idle < fn->prewarm_target;
		spec = fn->spec;
	}
	if (fn->retired && !fn->busy)
		free(fn);
	pthread_mutex_unlock(&pool->lock);
	sbx_destroy(sb);
	free(e);
	if (replace)
		sbx_pool_prewarm(pool, spec.name, core, 1);
}

/*
 * An acquired instance was frozen with its core before it was invoked: wait for the thaw
 * until `deadline_ns` at most, and not once the pool stops. Returns 0, -ETIMEDOUT or
 * -ESHUTDOWN, with `res` (if any) saying why.
 */
static int wait_thaw_until(struct sbx_pool *pool, struct sbx_sandbox *sb, uint64_t deadline_ns,
			   struct sbx_result *res)
{
	uint64_t now = nemo_now_ns(), since = 0;
	int rc = 0;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		/* thawed by sbx_pool_thaw_core, which signals; look again now and then anyway */
		uint64_t left = deadline_ns > now ? deadline_ns - now : 0,
			 at = sbx_frozen_since(sb);
		struct timespec until = nemo_deadline_after_ns(
			CLOCK_REALTIME, left < 100000000ull ? left : 100000000ull);

		if (!at) {
			/* thawed, or killed frozen by sbx_pool_stop() */
			if (pool->stopping && sbx_state(sb) == SBX_STATE_DEAD)
				rc = -ESHUTDOWN;
			break;
		}
		since = at;
		if (pool->stopping) {
			rc = -ESHUTDOWN;
			break;
		}
		if (!left) {
			rc = -ETIMEDOUT;
			break;
		}
		pthread_cond_timedwait(&pool->thawed, &pool->lock, &until);
		now = nemo_now_ns();
	}
	pthread_mutex_unlock(&pool->lock);
	if (!rc || !res)
		return rc;
	sbx_result_release(res);
	if (rc == -ESHUTDOWN) {
		res->status = SBX_ERR_INTERNAL;
		snprintf(res->message, sizeof(res->message),
			 "not run: nemod is stopping while core %d is reclaimed by its NF (its "
			 "instance frozen %" PRIu64 " ms)",
			 sbx_core(sb), since ? (now - since) / 1000000 : 0);
	} else {
		res->status = SBX_ERR_TIMEOUT;
		snprintf(res->message, sizeof(res->message),
			 "not run: core %d has been reclaimed by its NF for %" PRIu64
			 " ms (its instance frozen); a call waits at most %" PRIu64
			 " ms for the thaw (frozen_wait_ms)",
			 sbx_core(sb), (now - since) / 1000000,
			 pool->host->frozen_wait_ns / 1000000);
	}
	return rc;
}

int sbx_pool_wait_thaw(struct sbx_pool *pool, struct sbx_sandbox *sb, struct sbx_result *res)
{
	if (!pool || !sb)
		return -EINVAL;
	return wait_thaw_until(pool, sb, nemo_now_ns() + pool->host->frozen_wait_ns, res);
}

int sbx_pool_invoke(struct sbx_pool *pool, const char *name, int core, const void *req, size_t len,
		    struct sbx_result *res)
{
	struct sbx_phase_times t;
	enum sbx_start_path path;
	struct sbx_sandbox *sb;
	uint64_t deadline = 0;

	if (!pool || !name || !res || (len && !req))
		return -EINVAL;
	sb = sbx_pool_acquire(pool, name, core, res);
	if (!sb)
		return 0;
	t = res->times;
	path = res->path;
	sbx_invoke(sb, req, len, res);
	/*
	 * An acquired instance is READY, so a refusal means its core froze since the acquire
	 * (and may have thawed since the refusal): the request waits for the thaw, all told
	 * no longer than the host's frozen_wait.
	 */
	while (res->status == SBX_ERR_STATE) {
		enum sbx_state state = sbx_state(sb);
		uint64_t t1 = nemo_now_ns();
		int rc;

		if (state != SBX_STATE_FROZEN && state != SBX_STATE_READY)
			break;
		if (!deadline)
			deadline = t1 + pool->host->frozen_wait_ns;
		rc = wait_thaw_until(pool, sb, deadline, res);
		t.queue_ns += nemo_now_ns() - t1;
		if (rc)
			break;
		sbx_invoke(sb, req, len, res);
	}
	t.run_ns = res->times.run_ns;
	res->times = t;
	res->path = path;
	sbx_chain_drain(pool->chain, sb, res);
	sbx_pool_release(pool, sb);
	return 0;
}

int sbx_pool_maintain(struct sbx_pool *pool)
{
	struct pool_entry *gone = NULL;
	struct zygote_ref *zgone = NULL, *unready[64];
	uint64_t now = nemo_now_ns();
	int n = 0, n_unready = 0;

	pthread_mutex_lock(&pool->lock);
	for (struct fn_pool *fn = pool->fns; fn; fn = fn->next) {
		/* a zygote lives by the same keep-alive as instances; a dead one goes */
		if (fn->zygote) {
			bool dead = sbx_state(fn->zygote->z) != SBX_STATE_READY;

			if (dead || pool->ops->expired(&pool->ka, &fn->zygote->ka, now)) {
				if (dead)
					fn->st.crashes++;
				else
					fn->st.expirations++;
				zygote_drop_to(pool, fn, &zgone);
				n++;
			} else if (!pool->stopping && !sbx_zygote_ready(fn->zygote->z) &&
				   n_unready < (int)(sizeof(unready) / sizeof(unready[0])) &&
				   fn->zygote->generation == fn->generation) {
				/* its ready fork was handed over: the next, on spare cycles */
				fn->zygote->users++;
				unready[n_unready++] = fn->zygote;
			}
		}
		for (struct pool_entry **pp = &fn->idle; *pp;) {
			struct pool_entry *e = *pp;
			/* a frozen one is alive: it expires like the others, killed frozen */
			bool dead = sbx_state(e->sb) == SBX_STATE_DEAD;

			if (!dead && !pool->ops->expired(&pool->ka, &e->ka, now)) {
				pp = &e->next;
				continue;
			}
			if (dead)
				fn->st.crashes++;
			else
				fn->st.expirations++;
			*pp = e->next;
			fn->n_idle--;
			pool->memory_used -= e->ka.memory_bytes;
			e->next = gone;
			gone = e;
			n++;
		}
	}
	pthread_mutex_unlock(&pool->lock);
	destroy_entries(gone);
	zygote_free(zgone);
	for (int i = 0; i < n_unready; i++)
		zygote_prepare_unlocked(pool, unready[i]);
	return n;
}

/* Under the lock. */
static void add_stats(struct sbx_pool_stats *to, const struct sbx_pool *pool,
		      const struct fn_pool *fn)
{
	to->busy += fn->busy;
	to->leased += fn->leased;
	for (const struct pool_entry *e = fn->idle; e; e = e->next) {
		bool frozen = sbx_frozen(e->sb);

		to->idle += !frozen;
		to->frozen += frozen;
		to->prewarmed += e->prewarmed && !frozen;
	}
	for (const struct pool_entry *e = pool->acquired; e; e = e->acq_next)
		to->frozen += e->fn == fn && sbx_frozen(e->sb);
	to->zygotes += fn->zygote != NULL;
	to->zygote_memory_bytes += fn->zygote ? fn->zygote->ka.memory_bytes : 0;
	to->zygotes_made += fn->st.zygotes_made;
	to->zygote_starts += fn->st.zygote_starts;
	to->zygote_ready_starts += fn->st.zygote_ready_starts;
	to->cold_starts += fn->st.cold_starts;
	to->warm_starts += fn->st.warm_starts;
	to->prewarmed_starts += fn->st.prewarmed_starts;
	to->evictions += fn->st.evictions;
	to->expirations += fn->st.expirations;
	to->crashes += fn->st.crashes;
}

int sbx_pool_stats(struct sbx_pool *pool, const char *name, struct sbx_pool_stats *st)
{
	int rc = 0;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&pool->lock);
	if (name) {
		struct fn_pool *fn = find_fn(pool, name);

		if (fn)
			add_stats(st, pool, fn);
		else
			rc = -ENOENT;
	} else {
		for (struct fn_pool *fn = pool->fns; fn; fn = fn->next)
			add_stats(st, pool, fn);
	}
	st->memory_bytes = pool->memory_used;
	for (struct pool_entry *e = pool->packets; e; e = e->next)
		st->packet += !name || !strcmp(sbx_spec_of(e->sb)->name, name);
	pthread_mutex_unlock(&pool->lock);
	return rc;
}

/* ---- packet-mode instances ----------------------------------------------------------------- */

struct sbx_sandbox *sbx_pool_packet_start(struct sbx_pool *pool, const char *name, int core,
					  const struct sbx_packet_lease *lease,
					  const struct sbx_packet_config *cfg, char *err,
					  size_t errlen)
{
	struct pool_entry *e = calloc(1, sizeof(*e));
	struct sbx_spec spec;
	struct fn_pool *fn;
	int rc = 0;

	if (!pool || !name || !lease || !e) {
		rc = e ? EINVAL : ENOMEM;
		goto fail;
	}
	pthread_mutex_lock(&pool->lock);
	fn = find_fn(pool, name);
	if (fn)
		spec = fn->spec;
	rc = pool->stopping ? ESHUTDOWN : fn ? 0 : ENOENT;
	pthread_mutex_unlock(&pool->lock);
	if (rc) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", name,
				 rc == ENOENT ? "not deployed" : "the pool is stopping");
		goto fail;
	}
	e->sb = sbx_packet_start(pool->host, &spec, core, lease, cfg, err, errlen);
	if (!e->sb) {
		rc = errno;
		free(e);
		errno = rc;
		return NULL;
	}
	e->sb->pool_entry = e;
	pthread_mutex_lock(&pool->lock);
	e->next = pool->packets;
	pool->packets = e;
	pool->n_packets++;
	pthread_mutex_unlock(&pool->lock);
	return e->sb;
fail:
	free(e);
	if (lease)
		for (int i = 0; i < 3; i++) {
			int fd = i == 0	  ? lease->ring_fd
				 : i == 1 ? lease->wake_fd
					  : lease->lease_fd;

			if (fd >= 0)
				close(fd);
		}
	errno = rc;
	return NULL;
}

void sbx_pool_packet_stop(struct sbx_pool *pool, struct sbx_sandbox *sb)
{
	struct pool_entry *e = NULL;

	if (!pool || !sb)
		return;
	pthread_mutex_lock(&pool->lock);
	for (struct pool_entry **pp = &pool->packets; *pp; pp = &(*pp)->next)
		if ((*pp)->sb == sb) {
			e = *pp;
			*pp = e->next;
			pool->n_packets--;
			break;
		}
	pthread_mutex_unlock(&pool->lock);
	sbx_destroy(sb);
	free(e);
}

/* ---- reclaiming a core for its NF ------------------------------------------------------------ */

/* Under the lock: every instance on `core`, idle, acquired or in packet mode, for `step`. */
static void each_on_core(struct sbx_pool *pool, int core,
			 void (*step)(struct pool_entry *e, void *arg), void *arg)
{
	for (struct fn_pool *fn = pool->fns; fn; fn = fn->next)
		for (struct pool_entry *e = fn->idle; e; e = e->next)
			if (sbx_core(e->sb) == core)
				step(e, arg);
	for (struct pool_entry *e = pool->acquired; e; e = e->acq_next)
		if (sbx_core(e->sb) == core)
			step(e, arg);
	for (struct pool_entry *e = pool->packets; e; e = e->next)
		if (sbx_core(e->sb) == core)
			step(e, arg);
}

struct core_walk {
	uint64_t deadline_ns;
	int done; /* frozen (or thawed) */
	int rc;	  /* the first failure */
};

static void freeze_begin_step(struct pool_entry *e, void *arg)
{
	struct core_walk *w = arg;
	int rc;

	if (sbx_frozen(e->sb)) {
		w->done++;
		return;
	}
	rc = sbx_freeze_begin(e->sb);
	/* -EBUSY: it died; nothing runs there to stop */
	if (rc && rc != -EBUSY && !w->rc)
		w->rc = rc;
	e->freezing = !rc;
}

static void freeze_settle_step(struct pool_entry *e, void *arg)
{
	struct core_walk *w = arg;
	int rc;

	if (!e->freezing)
		return;
	e->freezing = false;
	rc = sbx_freeze_settle(e->sb, w->deadline_ns);
	if (!rc)
		w->done++;
	else if (!w->rc)
		w->rc = rc;
}

static void kill_step(struct pool_entry *e, void *arg)
{
	struct core_walk *w = arg;

	if (sbx_state(e->sb) == SBX_STATE_DEAD)
		return;
	sbx_kill_async(e->sb, stop_why);
	w->done++;
}

int sbx_pool_freeze_core(struct sbx_pool *pool, int core)
{
	struct core_walk w = {0};

	if (!pool || core < 0 || core >= sbx_host_n_cores(pool->host))
		return -EINVAL;
	/* stopping: nobody would thaw them; the NF gets its core back all the same */
	pthread_mutex_lock(&pool->lock);
	if (pool->stopping) {
		each_on_core(pool, core, kill_step, &w);
		pthread_mutex_unlock(&pool->lock);
		return w.done;
	}
	pthread_mutex_unlock(&pool->lock);
	/*
	 * Under the lock from first write to last settle: no instance of the core is handed out
	 * half frozen, and none is destroyed under our feet. Every freezer is written first,
	 * then all are awaited against one deadline, so the NF waits for the slowest only.
	 */
	pthread_mutex_lock(&pool->lock);
	each_on_core(pool, core, freeze_begin_step, &w);
	w.deadline_ns = nemo_now_ns() + SBX_FREEZE_TIMEOUT_NS;
	each_on_core(pool, core, freeze_settle_step, &w);
	pthread_mutex_unlock(&pool->lock);
	return w.done || !w.rc ? w.done : w.rc;
}

static void thaw_step(struct pool_entry *e, void *arg)
{
	struct core_walk *w = arg;
	int rc;

	if (!sbx_frozen(e->sb))
		return;
	rc = sbx_thaw(e->sb);
	if (!rc)
		w->done++;
	else if (!w->rc)
		w->rc = rc;
}

int sbx_pool_thaw_core(struct sbx_pool *pool, int core)
{
	struct core_walk w = {0};

	if (!pool || core < 0 || core >= sbx_host_n_cores(pool->host))
		return -EINVAL;
	pthread_mutex_lock(&pool->lock);
	each_on_core(pool, core, thaw_step, &w);
	pthread_cond_broadcast(&pool->thawed);
	pthread_mutex_unlock(&pool->lock);
	return w.rc ? w.rc : w.done;
}

static void kill_frozen_step(struct pool_entry *e, void *arg)
{
	if (sbx_frozen(e->sb))
		kill_step(e, arg);
}

int sbx_pool_stop(struct sbx_pool *pool)
{
	struct core_walk w = {0};

	if (!pool)
		return -EINVAL;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	for (int core = 0; core < sbx_host_n_cores(pool->host); core++)
		each_on_core(pool, core, kill_frozen_step, &w);
	/* calls waiting for a thaw look again, and see the stop */
	pthread_cond_broadcast(&pool->thawed);
	pthread_mutex_unlock(&pool->lock);
	if (w.done)
		NEMO_WARN(SBX_LOG, "pool stopping: killed %d instances frozen with their cores",
			  w.done);
	return w.done;
}
