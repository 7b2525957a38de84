/* dispatch_harvest.c - the harvesting dispatcher: gw_dispatch_ops over the co-scheduler. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nemo/log.h"
#include "gw_internal.h"

/*
 * The gateway keeps no harvesting policy of its own: the co-scheduler decides, and sees the
 * sandboxes only through the backend, wrapped here in its small table.
 */
struct hv_dispatch {
	struct gw_backend be;
	struct sched_cosched *cs;
};

static int cs_prewarm(void *arg, const char *fn, int cpu, int count)
{
	struct hv_dispatch *h = arg;

	return h->be.ops->prewarm(h->be.state, fn, cpu, count);
}

static int cs_idle(void *arg, const char *fn, uint32_t *idle)
{
	struct hv_dispatch *h = arg;
	struct sbx_pool_stats st;
	int rc = h->be.ops->stats(h->be.state, fn, &st);

	*idle = rc ? 0 : st.idle;
	return rc;
}

static int cs_freeze_core(void *arg, int cpu, bool freeze)
{
	struct hv_dispatch *h = arg;

	return h->be.ops->freeze_core(h->be.state, cpu, freeze);
}

static int hv_place(void *state, const char *function, struct gw_placement *out)
{
	struct hv_dispatch *h = state;
	int kind;

	return sched_cosched_place(h->cs, function, &out->core, &kind);
}

static void hv_observe(void *state, const char *function, const struct gw_placement *where,
		       const struct sbx_result *res)
{
	struct hv_dispatch *h = state;

	sched_cosched_observe(h->cs, function, where->core, res->path,
			      res->times.create_ns + res->times.init_ns, res->times.run_ns);
}

static int hv_metrics(void *state, char *buf, size_t len)
{
	return sched_cosched_metrics(((struct hv_dispatch *)state)->cs, buf, len);
}

static int hv_cores(void *state, struct sched_cosched_core *out, int max)
{
	return sched_cosched_cores(((struct hv_dispatch *)state)->cs, out, max);
}

static void hv_resident(void *state, int core, int delta)
{
	sched_cosched_resident(((struct hv_dispatch *)state)->cs, core, delta);
}

static const struct gw_dispatch_ops hv_ops = {
	.name = "harvest",
	.place = hv_place,
	.observe = hv_observe,
	.metrics = hv_metrics,
	.cores = hv_cores,
	.resident = hv_resident,
};

int gw_dispatch_harvest_new(const struct gw_config *cfg, const struct gw_backend *be,
			    struct gw_dispatch *d)
{
	struct sched_cosched_backend csb = {
		.prewarm = cs_prewarm,
		.idle = cs_idle,
	};
	struct hv_dispatch *h;

	if (!be->ops->prewarm || !be->ops->stats || !be->ops->host) {
		NEMO_ERR(GW_MOD,
			 "harvesting needs a backend with prewarm, stats and host "
			 "(backend %s)",
			 be->ops->name);
		return -EINVAL;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->be = *be;
	csb.arg = h;
	csb.host = be->ops->host(be->state);
	if (be->ops->freeze_core)
		csb.freeze_core = cs_freeze_core;
	h->cs = sched_cosched_new(&cfg->harvest.cs, &csb);
	if (!h->cs) {
		int rc = -errno;

		free(h);
		return rc ? rc : -EINVAL;
	}
	d->ops = &hv_ops;
	d->state = h;
	return 0;
}

void gw_dispatch_harvest_destroy(struct gw_dispatch *d)
{
	struct hv_dispatch *h = d->state;

	if (!h)
		return;
	sched_cosched_destroy(h->cs);
	free(h);
	d->state = NULL;
}
