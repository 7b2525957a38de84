/* backend_sbx.c - the execution backend on the sandbox library: one host, one warm pool. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nemo/log.h"
#include "gw_internal.h"

struct sbx_backend {
	struct sbx_host *host;
	struct sbx_pool *pool;
};

static int be_deploy(void *state, const struct sbx_spec *spec)
{
	return sbx_pool_deploy(((struct sbx_backend *)state)->pool, spec);
}

static int be_undeploy(void *state, const char *name)
{
	return sbx_pool_undeploy(((struct sbx_backend *)state)->pool, name);
}

static int be_invoke(void *state, const char *name, int core, const void *req, size_t len,
		     struct sbx_result *res)
{
	return sbx_pool_invoke(((struct sbx_backend *)state)->pool, name, core, req, len, res);
}

static void be_release(void *state, struct sbx_result *res)
{
	(void)state;
	sbx_result_release(res);
}

static int be_stats(void *state, const char *name, struct sbx_pool_stats *st)
{
	return sbx_pool_stats(((struct sbx_backend *)state)->pool, name, st);
}

static int be_maintain(void *state)
{
	return sbx_pool_maintain(((struct sbx_backend *)state)->pool);
}

static int be_prewarm(void *state, const char *name, int core, int count)
{
	return sbx_pool_prewarm(((struct sbx_backend *)state)->pool, name, core, count);
}

static struct sbx_host *be_host(void *state)
{
	return ((struct sbx_backend *)state)->host;
}

static int be_freeze_core(void *state, int core, bool freeze)
{
	struct sbx_pool *pool = ((struct sbx_backend *)state)->pool;

	return freeze ? sbx_pool_freeze_core(pool, core) : sbx_pool_thaw_core(pool, core);
}

static void be_stop(void *state)
{
	sbx_pool_stop(((struct sbx_backend *)state)->pool);
}

static struct sbx_sandbox *be_packet_start(void *state, const char *name, int core,
					   const struct sbx_packet_lease *lease,
					   const struct sbx_packet_config *cfg, char *err,
					   size_t errlen)
{
	return sbx_pool_packet_start(((struct sbx_backend *)state)->pool, name, core, lease, cfg,
				     err, errlen);
}

static void be_packet_stop(void *state, struct sbx_sandbox *sb)
{
	sbx_pool_packet_stop(((struct sbx_backend *)state)->pool, sb);
}

static const struct gw_backend_ops sbx_backend_ops = {
	.name = "sandbox",
	.deploy = be_deploy,
	.undeploy = be_undeploy,
	.invoke = be_invoke,
	.result_release = be_release,
	.stats = be_stats,
	.maintain = be_maintain,
	.prewarm = be_prewarm,
	.host = be_host,
	.freeze_core = be_freeze_core,
	.stop = be_stop,
	.packet_start = be_packet_start,
	.packet_stop = be_packet_stop,
};

int gw_backend_sandbox_new(const struct gw_config *cfg, struct gw_backend *be)
{
	struct sbx_host_config hc = {0};
	struct sbx_keepalive_params ka = {
		.ttl_ns = cfg->keepalive_ttl_s * 1000000000ull,
		.memory_budget_bytes = cfg->memory_budget_mb << 20,
		.zygotes = cfg->sandbox.zygotes,
	};
	struct sbx_backend *s = calloc(1, sizeof(*s));
	int max_core = 0, rc;

	if (!s)
		return -ENOMEM;
	/* parent cgroups are numbered from 0: make enough for the highest sandbox core */
	for (int i = 0; i < cfg->n_sandbox_cores; i++)
		if (cfg->sandbox_cores[i] > max_core)
			max_core = cfg->sandbox_cores[i];
	/* overflow runs on the housekeeping core; a harvested NF core may be any CPU */
	for (int i = 0; i < cfg->n_housekeeping_cores; i++)
		if (cfg->housekeeping_cores[i] > max_core)
			max_core = cfg->housekeeping_cores[i];
	if (cfg->harvest.enabled) {
		long n = sysconf(_SC_NPROCESSORS_CONF);

		if (n - 1 > max_core)
			max_core = (int)n - 1;
	}
	hc.cgroup_root = cfg->cgroup_root;
	hc.n_cores = max_core + 1;
	hc.runtime_path = cfg->runtime_path[0] ? cfg->runtime_path : NULL;
	hc.uid_base = cfg->sandbox.uid_base;
	hc.uid_count = cfg->sandbox.uid_count;
	hc.frozen_wait_ms = cfg->sandbox.frozen_wait_ms;
	s->host = sbx_host_new(&hc);
	if (!s->host) {
		rc = -errno;
		NEMO_ERR(GW_MOD, "sandbox host (cgroup root %s): %s", cfg->cgroup_root,
			 strerror(errno));
		goto fail;
	}
	s->pool = sbx_pool_new(
		s->host, cfg->keepalive_policy ? &sbx_keepalive_greedy_dual : &sbx_keepalive_ttl,
		&ka);
	if (!s->pool) {
		rc = -errno;
		NEMO_ERR(GW_MOD, "sandbox pool: %s", strerror(errno));
		goto fail_host;
	}
	NEMO_INFO(GW_MOD, "sandbox host cgroup=%s backend=%s cores=%d python=%s", cfg->cgroup_root,
		  sbx_host_cgroup_backend(s->host), hc.n_cores,
		  sbx_host_python(s->host) ? sbx_host_python(s->host) : "none");
	be->ops = &sbx_backend_ops;
	be->state = s;
	return 0;

fail_host:
	sbx_host_destroy(s->host);
fail:
	free(s);
	return rc;
}

void gw_backend_sandbox_destroy(struct gw_backend *be)
{
	struct sbx_backend *s = be->state;

	if (!s)
		return;
	sbx_pool_destroy(s->pool);
	sbx_host_destroy(s->host);
	free(s);
	be->state = NULL;
}
