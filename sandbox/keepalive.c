/* keepalive.c - keep-alive policies for warm pools: fixed TTL and FaaSCache's greedy-dual. */
#include "sandbox_internal.h"

/* ---- fixed TTL: what most platforms do (OpenWhisk keeps an idle container ~10 min) ---- */

static void ttl_on_idle(void *state, struct sbx_keepalive_entry *e, uint64_t now_ns)
{
	(void)state;
	e->priority = (double)now_ns;
}

static bool ttl_expired(void *state, const struct sbx_keepalive_entry *e, uint64_t now_ns)
{
	const struct sbx_keepalive_state *ka = state;

	return now_ns - e->last_used_ns > ka->params.ttl_ns;
}

/* under memory pressure: least recently used first */
static int ttl_compare(void *state, const struct sbx_keepalive_entry *a,
		       const struct sbx_keepalive_entry *b)
{
	(void)state;
	return a->last_used_ns < b->last_used_ns ? -1 : a->last_used_ns > b->last_used_ns;
}

static void ttl_on_evict(void *state, const struct sbx_keepalive_entry *e)
{
	(void)state, (void)e;
}

const struct sbx_keepalive_ops sbx_keepalive_ttl = {
	.name = "ttl",
	.on_idle = ttl_on_idle,
	.expired = ttl_expired,
	.compare = ttl_compare,
	.on_evict = ttl_on_evict,
};

/*
 * ---- greedy-dual (FaaSCache, Fuerst & Sharma, ASPLOS'21) ----
 * Keep-alive as caching: an instance is worth keeping in proportion to how often its
 * function runs and what a cold start costs, per byte it holds. The clock rises to each
 * evicted priority so that instances that stopped being used age out.
 */
static void gd_on_idle(void *state, struct sbx_keepalive_entry *e, uint64_t now_ns)
{
	const struct sbx_keepalive_state *ka = state;
	double cost_ms = (double)e->init_cost_ns / 1e6;
	double size_mib = (double)(e->memory_bytes ? e->memory_bytes : 1 << 20) / (1 << 20);

	(void)now_ns;
	e->priority = ka->clock + (double)(e->frequency ? e->frequency : 1) * cost_ms / size_mib;
}

static bool gd_expired(void *state, const struct sbx_keepalive_entry *e, uint64_t now_ns)
{
	const struct sbx_keepalive_state *ka = state;

	return ka->params.ttl_ns && now_ns - e->last_used_ns > ka->params.ttl_ns;
}

static int gd_compare(void *state, const struct sbx_keepalive_entry *a,
		      const struct sbx_keepalive_entry *b)
{
	(void)state;
	return a->priority < b->priority ? -1 : a->priority > b->priority;
}

static void gd_on_evict(void *state, const struct sbx_keepalive_entry *e)
{
	struct sbx_keepalive_state *ka = state;

	if (e->priority > ka->clock)
		ka->clock = e->priority;
}

const struct sbx_keepalive_ops sbx_keepalive_greedy_dual = {
	.name = "greedy-dual",
	.on_idle = gd_on_idle,
	.expired = gd_expired,
	.compare = gd_compare,
	.on_evict = gd_on_evict,
};
