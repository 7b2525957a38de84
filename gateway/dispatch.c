/* dispatch.c - the default dispatcher: round-robin over the sandbox cores from the config. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gw_internal.h"

/*
 * Round-robin knows nothing of spare cycles: it spreads invocations evenly and lets the pool
 * prefer a warm instance on the chosen core. The harvester's dispatcher replaces it.
 */
struct rr_state {
	_Atomic uint32_t next;
	int n_cores;
	int cores[];
};

static int rr_place(void *state, const char *function, struct gw_placement *out)
{
	struct rr_state *rr = state;
	uint32_t i = atomic_fetch_add_explicit(&rr->next, 1, memory_order_relaxed);

	(void)function;
	out->core = rr->cores[i % (uint32_t)rr->n_cores];
	return 0;
}

static void rr_observe(void *state, const char *function, const struct gw_placement *where,
		       const struct sbx_result *res)
{
	(void)state;
	(void)function;
	(void)where;
	(void)res;
}

static const struct gw_dispatch_ops rr_ops = {
	.name = "round-robin",
	.place = rr_place,
	.observe = rr_observe,
};

int gw_dispatch_rr_new(const int *cores, int n_cores, struct gw_dispatch *d)
{
	struct rr_state *rr;

	if (n_cores < 1)
		return -EINVAL;
	rr = calloc(1, sizeof(*rr) + sizeof(int) * (size_t)n_cores);
	if (!rr)
		return -ENOMEM;
	rr->n_cores = n_cores;
	memcpy(rr->cores, cores, sizeof(int) * (size_t)n_cores);
	d->ops = &rr_ops;
	d->state = rr;
	return 0;
}

void gw_dispatch_rr_destroy(struct gw_dispatch *d)
{
	free(d->state);
	d->state = NULL;
}
