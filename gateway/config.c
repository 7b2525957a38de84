/* config.c - configs/nemod.json through key tables, with cross-field checks after. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nemo/config.h"
#include "nemo/log.h"
#include "gw_internal.h"

void gw_config_defaults(struct gw_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
	cfg->listen_port = 8080;
	snprintf(cfg->token_file, sizeof(cfg->token_file), "/etc/nemo/token");
	snprintf(cfg->store_dir, sizeof(cfg->store_dir), "/var/lib/nemo/functions");
	cfg->limits = (struct gw_limits){
		.max_body_bytes = 8 << 20,
		.max_inflight = 1024,
		.max_inflight_per_function = 256,
		.max_connections = 512,
		.max_connections_per_ip = 64,
		.header_timeout_ms = 10000,
		.connection_timeout_s = 30,
		.request_timeout_ms = 10000,
		.blocking_timeout_ms = 60000,
		.async_queue = 4096,
		.activations_kept = 10000,
	};
	cfg->n_housekeeping_cores = 0;
	cfg->n_sandbox_cores = 0;
	cfg->http_mode = GW_HTTP_THREAD_PER_CONNECTION;
	cfg->http_threads = 2;
	cfg->async_workers = 4;
	cfg->drain_timeout_ms = 10000;
	cfg->journal_sync = true;
	snprintf(cfg->cgroup_root, sizeof(cfg->cgroup_root), "nemo");
	cfg->keepalive_policy = 0;
	cfg->keepalive_ttl_s = 600;
	cfg->memory_budget_mb = 1024;
	snprintf(cfg->log_level, sizeof(cfg->log_level), "info");
	cfg->mqtt = (struct gw_mqtt_config){
		.enabled = false,
		.host = "127.0.0.1",
		.port = 1883,
		.client_id = "nemod",
		.keepalive_s = 30,
		.reconnect_min_s = 1,
		.reconnect_max_s = 30,
	};
	cfg->harvest.enabled = false;
	sched_cosched_config_defaults(&cfg->harvest.cs);
	cl_config_defaults(&cfg->cluster.cl);
	cfg->cluster.qos = CL_QOS_LATENCY;
	cfg->cluster.offload = true;
	cfg->cluster.latency_deadline_ms = 50;
	cfg->cluster.batch_deadline_ms = 5000;
}

/* "host:port"; the port may be 0 (any free port, for tests). */
static int parse_listen(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			const struct cfg_key *key)
{
	struct gw_config *cfg = (struct gw_config *)((char *)dst + key->offset);
	const char *colon;
	char *end;
	long port;

	if (!cJSON_IsString(item))
		return cfg_error(ctx, path, "expected a string \"host:port\"");
	colon = strrchr(item->valuestring, ':');
	if (!colon || colon == item->valuestring ||
	    (size_t)(colon - item->valuestring) >= sizeof(cfg->listen_host))
		return cfg_error(ctx, path, "'%s' is not \"host:port\"", item->valuestring);
	port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 0 || port > 65535)
		return cfg_error(ctx, path, "'%s': port must be 0..65535", item->valuestring);
	memcpy(cfg->listen_host, item->valuestring, colon - item->valuestring);
	cfg->listen_host[colon - item->valuestring] = '\0';
	cfg->listen_port = (uint16_t)port;
	return 0;
}

/* An array of core numbers into cores[], count in *n. */
static int parse_cores(struct cfg_ctx *ctx, const char *path, const cJSON *item, int *n, int *cores)
{
	const cJSON *c;
	char ipath[128];
	int i = 0;

	if (!cJSON_IsArray(item))
		return cfg_error(ctx, path, "expected an array of core numbers");
	*n = 0;
	cJSON_ArrayForEach (c, item) {
		cfg_index(ipath, sizeof(ipath), path, i++);
		if (!cJSON_IsNumber(c) || c->valuedouble != (double)(int)c->valuedouble)
			return cfg_error(ctx, ipath, "expected a core number");
		if (c->valueint < 0 || c->valueint >= GW_MAX_CORES)
			return cfg_error(ctx, ipath, "%d is out of range [0, %d]", c->valueint,
					 GW_MAX_CORES - 1);
		if (*n >= GW_MAX_CORES)
			return cfg_error(ctx, path, "more than %d cores", GW_MAX_CORES);
		cores[(*n)++] = c->valueint;
	}
	return 0;
}

static int parse_hk(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		    const struct cfg_key *key)
{
	struct gw_config *cfg = (struct gw_config *)((char *)dst + key->offset);

	return parse_cores(ctx, path, item, &cfg->n_housekeeping_cores, cfg->housekeeping_cores);
}

static int parse_sbx(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		     const struct cfg_key *key)
{
	struct gw_config *cfg = (struct gw_config *)((char *)dst + key->offset);

	return parse_cores(ctx, path, item, &cfg->n_sandbox_cores, cfg->sandbox_cores);
}

static int parse_roots(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		       const struct cfg_key *key)
{
	struct gw_config *cfg = (struct gw_config *)((char *)dst + key->offset);
	const cJSON *r;
	char ipath[128];
	int i = 0;

	if (!cJSON_IsArray(item))
		return cfg_error(ctx, path, "expected an array of absolute directories");
	cfg->n_code_roots = 0;
	cJSON_ArrayForEach (r, item) {
		cfg_index(ipath, sizeof(ipath), path, i++);
		if (!cJSON_IsString(r) || r->valuestring[0] != '/')
			return cfg_error(ctx, ipath, "expected an absolute directory");
		if (cfg->n_code_roots >= GW_MAX_CODE_ROOTS)
			return cfg_error(ctx, path, "more than %d roots", GW_MAX_CODE_ROOTS);
		/* compared against realpath() results, so resolve it now */
		if (!realpath(r->valuestring, cfg->code_roots[cfg->n_code_roots])) {
			NEMO_WARN(GW_MOD, "code root %s: %s (skipped)", r->valuestring,
				  strerror(errno));
			continue;
		}
		cfg->n_code_roots++;
	}
	return 0;
}

static const struct cfg_key limit_keys[] = {
	CFG_KEY_RANGE("max_body_bytes", cfg_parse_u32, struct gw_limits, max_body_bytes, false,
		      1024, 1 << 30),
	CFG_KEY_RANGE("max_inflight", cfg_parse_u32, struct gw_limits, max_inflight, false, 1,
		      1 << 20),
	CFG_KEY_RANGE("max_inflight_per_function", cfg_parse_u32, struct gw_limits,
		      max_inflight_per_function, false, 1, 1 << 20),
	CFG_KEY_RANGE("max_connections", cfg_parse_u32, struct gw_limits, max_connections, false, 1,
		      65536),
	CFG_KEY_RANGE("max_connections_per_ip", cfg_parse_u32, struct gw_limits,
		      max_connections_per_ip, false, 0, 65536),
	CFG_KEY_RANGE("header_timeout_ms", cfg_parse_u32, struct gw_limits, header_timeout_ms,
		      false, 100, 3600000),
	CFG_KEY_RANGE("connection_timeout_s", cfg_parse_u32, struct gw_limits, connection_timeout_s,
		      false, 1, 3600),
	CFG_KEY_RANGE("request_timeout_ms", cfg_parse_u32, struct gw_limits, request_timeout_ms,
		      false, 10, 3600000),
	CFG_KEY_RANGE("blocking_timeout_ms", cfg_parse_u32, struct gw_limits, blocking_timeout_ms,
		      false, 1, 3600000),
	CFG_KEY_RANGE("async_queue", cfg_parse_u32, struct gw_limits, async_queue, false, 1,
		      1 << 24),
	CFG_KEY_RANGE("activations_kept", cfg_parse_u32, struct gw_limits, activations_kept, false,
		      16, 1 << 24),
	CFG_KEY_END,
};

static const struct cfg_key core_keys[] = {
	{.name = "housekeeping", .parse = parse_hk, .offset = 0},
	{.name = "sandbox", .parse = parse_sbx, .offset = 0},
	CFG_KEY_END,
};

static const struct cfg_key mqtt_keys[] = {
	CFG_KEY("enabled", cfg_parse_bool, struct gw_mqtt_config, enabled, false),
	CFG_KEY_STR("host", struct gw_mqtt_config, host, false),
	CFG_KEY_RANGE("port", cfg_parse_u32, struct gw_mqtt_config, port, false, 1, 65535),
	CFG_KEY_STR("client_id", struct gw_mqtt_config, client_id, false),
	CFG_KEY_RANGE("keepalive_s", cfg_parse_u32, struct gw_mqtt_config, keepalive_s, false, 5,
		      3600),
	CFG_KEY_RANGE("reconnect_min_s", cfg_parse_u32, struct gw_mqtt_config, reconnect_min_s,
		      false, 1, 3600),
	CFG_KEY_RANGE("reconnect_max_s", cfg_parse_u32, struct gw_mqtt_config, reconnect_max_s,
		      false, 1, 3600),
	CFG_KEY_END,
};

/* ---- the whole file ------------------------------------------------------------------------- */

static int parse_sub(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		     const struct cfg_key *key)
{
	if (!cJSON_IsObject(item))
		return cfg_error(ctx, path, "expected an object");
	return cfg_parse_object(ctx, path, item, key->arg, (char *)dst + key->offset);
}

/* ---- harvest -------------------------------------------------------------------------------- */

static int parse_channels(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			  const struct cfg_key *key)
{
	struct sched_cosched_config *cs =
		(struct sched_cosched_config *)((char *)dst + key->offset);
	const cJSON *c;
	char ipath[128];
	int i = 0;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) < 1)
		return cfg_error(ctx, path, "expected a non-empty array of NF deployment names");
	cs->n_channels = 0;
	cJSON_ArrayForEach (c, item) {
		cfg_index(ipath, sizeof(ipath), path, i++);
		if (!cJSON_IsString(c) || !c->valuestring[0] ||
		    strlen(c->valuestring) >= SCHED_CS_NAME_MAX ||
		    strspn(c->valuestring, GW_NAME_CHARS) != strlen(c->valuestring))
			return cfg_error(ctx, ipath, "expected an NF name of up to %d characters",
					 SCHED_CS_NAME_MAX - 1);
		if (cs->n_channels >= SCHED_CS_MAX_CHANNELS)
			return cfg_error(ctx, path, "more than %d channels", SCHED_CS_MAX_CHANNELS);
		memcpy(cs->channels[cs->n_channels++], c->valuestring, strlen(c->valuestring) + 1);
	}
	return 0;
}

/* enum sched_reclaim_action from "freeze" | "move" */
static int parse_action(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			const struct cfg_key *key)
{
	int *prefer = (int *)((char *)dst + key->offset);

	if (cJSON_IsString(item) && !strcmp(item->valuestring, "freeze"))
		*prefer = SCHED_RECLAIM_FREEZE;
	else if (cJSON_IsString(item) && !strcmp(item->valuestring, "move"))
		*prefer = SCHED_RECLAIM_MOVE;
	else
		return cfg_error(ctx, path, "expected \"freeze\" or \"move\"");
	return 0;
}

static const struct cfg_key reclaim_keys[] = {
	CFG_KEY_RANGE("threshold", cfg_parse_double, struct sched_reclaim_config, threshold, false,
		      0, 1),
	CFG_KEY_RANGE("windows", cfg_parse_u32, struct sched_reclaim_config, k_windows, false, 1,
		      10000),
	{.name = "action",
	 .parse = parse_action,
	 .offset = offsetof(struct sched_reclaim_config, prefer)},
	CFG_KEY_RANGE("freeze_below", cfg_parse_double, struct sched_reclaim_config, freeze_below,
		      false, 0, 1),
	CFG_KEY_END,
};

struct gw_interference {
	bool enabled;
	double bound;
};

static int parse_interference(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			      const struct cfg_key *key);

static const char *const hv_policies[] = {"idle", "shares", NULL};
static const char *const hv_overflows[] = {"housekeeping", "queue", NULL};

static int parse_sub(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		     const struct cfg_key *key);

static const struct cfg_key harvest_keys[] = {
	CFG_KEY("enabled", cfg_parse_bool, struct gw_harvest_config, enabled, false),
	{.name = "channels",
	 .parse = parse_channels,
	 .offset = offsetof(struct gw_harvest_config, cs)},
	CFG_KEY_RANGE("period_ms", cfg_parse_u32, struct gw_harvest_config, cs.period_ms, false, 1,
		      10),
	CFG_KEY_STR("predictor", struct gw_harvest_config, cs.predictor, false),
	CFG_KEY("prewarm", cfg_parse_bool, struct gw_harvest_config, cs.prewarm, false),
	CFG_KEY_ENUM("policy", struct gw_harvest_config, cs.policy, false, hv_policies),
	CFG_KEY_RANGE("thread_cap", cfg_parse_u32, struct gw_harvest_config, cs.thread_cap, false,
		      0, 4096),
	{.name = "reclaim",
	 .parse = parse_sub,
	 .offset = offsetof(struct gw_harvest_config, cs.reclaim),
	 .arg = reclaim_keys},
	CFG_KEY_ENUM("overflow", struct gw_harvest_config, cs.overflow, false, hv_overflows),
	CFG_KEY_RANGE("queue_deadline_ms", cfg_parse_u64, struct gw_harvest_config,
		      cs.queue_deadline_ms, false, 1, 3600000),
	{.name = "interference",
	 .parse = parse_interference,
	 .offset = offsetof(struct gw_harvest_config, cs)},
	CFG_KEY_RANGE("forecast_ms", cfg_parse_u32, struct gw_harvest_config, cs.forecast_ms, false,
		      10, 3600000),
	CFG_KEY_RANGE("nf_sleep_floor_us", cfg_parse_u32, struct gw_harvest_config,
		      cs.nf_sleep_floor_us, false, 0, 1000000),
	CFG_KEY_RANGE("nf_delay_budget_us", cfg_parse_u32, struct gw_harvest_config,
		      cs.nf_delay_budget_us, false, 0, 1000000),
	CFG_KEY_END,
};

static const struct cfg_key interference_keys[] = {
	CFG_KEY("enabled", cfg_parse_bool, struct gw_interference, enabled, false),
	CFG_KEY_RANGE("bound", cfg_parse_double, struct gw_interference, bound, false, 1.0, 100.0),
	CFG_KEY_END,
};

static int parse_interference(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			      const struct cfg_key *key)
{
	struct sched_cosched_config *cs =
		(struct sched_cosched_config *)((char *)dst + key->offset);
	struct gw_interference iw = {cs->interference, cs->interference_bound};
	int rc;

	if (!cJSON_IsObject(item))
		return cfg_error(ctx, path, "expected an object");
	rc = cfg_parse_object(ctx, path, item, interference_keys, &iw);
	cs->interference = iw.enabled;
	cs->interference_bound = iw.bound;
	return rc;
}

/* ---- cluster -------------------------------------------------------------------------------- */

static int parse_endpoints(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			   const struct cfg_key *key)
{
	struct cl_config *c = (struct cl_config *)((char *)dst + key->offset);
	const cJSON *e;
	char ipath[128];
	int i = 0;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) < 1 ||
	    cJSON_GetArraySize(item) > CL_MAX_ENDPOINTS)
		return cfg_error(ctx, path, "expected 1..%d etcd endpoints \"http(s)://host:port\"",
				 CL_MAX_ENDPOINTS);
	cJSON_ArrayForEach (e, item) {
		const char *u = cJSON_IsString(e) ? e->valuestring : "";
		size_t scheme = !strncmp(u, "http://", 7) ? 7 : !strncmp(u, "https://", 8) ? 8 : 0;

		cfg_index(ipath, sizeof(ipath), path, i);
		if (!scheme || !u[scheme] || strlen(u) >= CL_ADDR_MAX)
			return cfg_error(ctx, ipath,
					 "expected \"http://host:port\" or \"https://host:port\" "
					 "(etcd's client URL)");
		snprintf(c->endpoints[i++], CL_ADDR_MAX, "%s", e->valuestring);
	}
	c->n_endpoints = i;
	return 0;
}

static const char *const qos_names[] = {"latency", "batch", NULL};

static const struct cfg_key cluster_keys[] = {
	CFG_KEY("enabled", cfg_parse_bool, struct gw_cluster_config, cl.enabled, false),
	{.name = "endpoints",
	 .parse = parse_endpoints,
	 .offset = offsetof(struct gw_cluster_config, cl)},
	CFG_KEY_STR("node", struct gw_cluster_config, cl.node, false),
	CFG_KEY_STR("address", struct gw_cluster_config, cl.address, false),
	CFG_KEY_STR("prefix", struct gw_cluster_config, cl.prefix, false),
	CFG_KEY_STR("ca_file", struct gw_cluster_config, cl.ca_file, false),
	CFG_KEY_STR("cert_file", struct gw_cluster_config, cl.cert_file, false),
	CFG_KEY_STR("key_file", struct gw_cluster_config, cl.key_file, false),
	CFG_KEY_STR("user", struct gw_cluster_config, cl.user, false),
	CFG_KEY_STR("password", struct gw_cluster_config, cl.password, false),
	CFG_KEY_RANGE("lease_ttl_s", cfg_parse_u32, struct gw_cluster_config, cl.lease_ttl_s, false,
		      1, 600),
	CFG_KEY_RANGE("publish_ms", cfg_parse_u32, struct gw_cluster_config, cl.publish_ms, false,
		      10, 60000),
	CFG_KEY_RANGE("batch_ms", cfg_parse_u32, struct gw_cluster_config, cl.batch_ms, false, 0,
		      1000),
	CFG_KEY_RANGE("start_batch_ms", cfg_parse_u32, struct gw_cluster_config, cl.start_batch_ms,
		      false, 0, 1000),
	CFG_KEY_RANGE("end_batch_ms", cfg_parse_u32, struct gw_cluster_config, cl.end_batch_ms,
		      false, 0, 10000),
	CFG_KEY_RANGE("inline_code_max", cfg_parse_u32, struct gw_cluster_config,
		      cl.inline_code_max, false, 0, 1 << 20),
	CFG_KEY_RANGE("timeout_ms", cfg_parse_u32, struct gw_cluster_config, cl.timeout_ms, false,
		      10, 600000),
	CFG_KEY_RANGE("start_wait_ms", cfg_parse_u32, struct gw_cluster_config, cl.start_wait_ms,
		      false, 0, 3600000),
	CFG_KEY_RANGE("results_ttl_s", cfg_parse_u32, struct gw_cluster_config, cl.results_ttl_s,
		      false, 10, 86400 * 30),
	CFG_KEY("offload", cfg_parse_bool, struct gw_cluster_config, offload, false),
	CFG_KEY_ENUM("qos", struct gw_cluster_config, qos, false, qos_names),
	CFG_KEY_RANGE("latency_deadline_ms", cfg_parse_u32, struct gw_cluster_config,
		      latency_deadline_ms, false, 1, 3600000),
	CFG_KEY_RANGE("batch_deadline_ms", cfg_parse_u32, struct gw_cluster_config,
		      batch_deadline_ms, false, 1, 3600000),
	CFG_KEY_RANGE("cold_ms", cfg_parse_u32, struct gw_cluster_config, cl.policy.cold_ms, false,
		      0, 600000),
	CFG_KEY_RANGE("forward_ms", cfg_parse_u32, struct gw_cluster_config, cl.policy.forward_ms,
		      false, 0, 600000),
	CFG_KEY_RANGE("stale_ms", cfg_parse_u32, struct gw_cluster_config, cl.policy.stale_ms,
		      false, 1, 3600000),
	CFG_KEY_END,
};

static const struct cfg_key openfaas_keys[] = {
	CFG_KEY("function_auth", cfg_parse_bool, struct gw_config, function_auth, false),
	CFG_KEY_END,
};

static const char *const http_modes[] = {"thread_per_connection", "pool", NULL};
static const char *const ka_policies[] = {"ttl", "greedy_dual", NULL};

/* sandbox.*: the range of the functions' uids; sbx_host_new() checks it against the system */
static const struct cfg_key sandbox_keys[] = {
	CFG_KEY_RANGE("uid_base", cfg_parse_u32, struct gw_config, sandbox.uid_base, false, 1,
		      UINT32_MAX - 1),
	CFG_KEY_RANGE("uid_count", cfg_parse_u32, struct gw_config, sandbox.uid_count, false, 1,
		      UINT32_MAX - 1),
	CFG_KEY("zygotes", cfg_parse_bool, struct gw_config, sandbox.zygotes, false),
	CFG_KEY_RANGE("frozen_wait_ms", cfg_parse_u32, struct gw_config, sandbox.frozen_wait_ms,
		      false, 1, 3600000),
	CFG_KEY_END,
};

static const struct cfg_key gw_keys[] = {
	{.name = "listen", .parse = parse_listen, .offset = 0},
	CFG_KEY_STR("token_file", struct gw_config, token_file, false),
	CFG_KEY_STR("default_namespace", struct gw_config, default_namespace, false),
	CFG_KEY_STR("runtime_path", struct gw_config, runtime_path, false),
	CFG_KEY_STR("store_dir", struct gw_config, store_dir, false),
	{.name = "code_roots", .parse = parse_roots, .offset = 0},
	{.name = "limits",
	 .parse = parse_sub,
	 .offset = offsetof(struct gw_config, limits),
	 .arg = limit_keys},
	{.name = "cores", .parse = parse_sub, .offset = 0, .arg = core_keys},
	{.name = "openfaas", .parse = parse_sub, .offset = 0, .arg = openfaas_keys},
	CFG_KEY_ENUM("http_mode", struct gw_config, http_mode, false, http_modes),
	CFG_KEY_RANGE("http_threads", cfg_parse_u32, struct gw_config, http_threads, false, 1, 256),
	CFG_KEY_RANGE("async_workers", cfg_parse_u32, struct gw_config, async_workers, false, 1,
		      1024),
	CFG_KEY_RANGE("drain_timeout_ms", cfg_parse_u32, struct gw_config, drain_timeout_ms, false,
		      0, 3600000),
	CFG_KEY("journal_sync", cfg_parse_bool, struct gw_config, journal_sync, false),
	CFG_KEY_STR("cgroup_root", struct gw_config, cgroup_root, false),
	{.name = "sandbox", .parse = parse_sub, .offset = 0, .arg = sandbox_keys},
	CFG_KEY_ENUM("keepalive_policy", struct gw_config, keepalive_policy, false, ka_policies),
	CFG_KEY_RANGE("keepalive_ttl_s", cfg_parse_u64, struct gw_config, keepalive_ttl_s, false, 0,
		      86400 * 365),
	CFG_KEY_RANGE("memory_budget_mb", cfg_parse_u64, struct gw_config, memory_budget_mb, false,
		      16, 1 << 24),
	CFG_KEY_STR("log_level", struct gw_config, log_level, false),
	{.name = "mqtt",
	 .parse = parse_sub,
	 .offset = offsetof(struct gw_config, mqtt),
	 .arg = mqtt_keys},
	{.name = "harvest",
	 .parse = parse_sub,
	 .offset = offsetof(struct gw_config, harvest),
	 .arg = harvest_keys},
	{.name = "cluster",
	 .parse = parse_sub,
	 .offset = offsetof(struct gw_config, cluster),
	 .arg = cluster_keys},
	CFG_KEY_END,
};

static void drop_missing(struct cfg_ctx *ctx, const char *path, int *cores, int *n, long ncpu)
{
	int kept = 0;

	for (int i = 0; i < *n; i++) {
		if (cores[i] < ncpu) {
			cores[kept++] = cores[i];
			continue;
		}
		NEMO_ERR(GW_MOD,
			 "%s: key '%s': core %d does not exist (this machine has %ld: 0-%ld); "
			 "serving without it",
			 ctx->file, path, cores[i], ncpu, ncpu - 1);
	}
	*n = kept;
}

static int check(struct cfg_ctx *ctx, struct gw_config *cfg)
{
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);

	if (nemo_log_parse_level(cfg->log_level) < 0)
		return cfg_error(ctx, "log_level", "'%s' is not one of: err, warn, info, debug",
				 cfg->log_level);
	if (cfg->mqtt.reconnect_min_s > cfg->mqtt.reconnect_max_s)
		return cfg_error(ctx, "mqtt.reconnect_min_s", "greater than reconnect_max_s");
	if (cfg->cluster.cl.enabled) {
		const struct cl_config *c = &cfg->cluster.cl;

		if (!c->n_endpoints)
			return cfg_error(ctx, "cluster.endpoints",
					 "required with cluster.enabled: etcd's client URLs");
		if (!c->node[0] || strspn(c->node, GW_NAME_CHARS) != strlen(c->node))
			return cfg_error(ctx, "cluster.node",
					 "required with cluster.enabled: this node's name, of "
					 "[A-Za-z0-9_-]");
		if (!c->address[0] || !strchr(c->address, ':'))
			return cfg_error(
				ctx, "cluster.address",
				"required with cluster.enabled: host:port where peers reach "
				"this nemod");
		if (c->prefix[0] != '/')
			return cfg_error(ctx, "cluster.prefix", "'%s': must start with '/'",
					 c->prefix);
		if (!c->cert_file[0] != !c->key_file[0])
			return cfg_error(ctx,
					 c->cert_file[0] ? "cluster.key_file" : "cluster.cert_file",
					 "cert_file and key_file go together: the client "
					 "certificate and its private key");
		if (!c->user[0] != !c->password[0])
			return cfg_error(ctx, c->user[0] ? "cluster.password" : "cluster.user",
					 "user and password go together: an etcd user");
		const char *files[] = {c->ca_file, c->cert_file, c->key_file};
		const char *names[] = {"cluster.ca_file", "cluster.cert_file", "cluster.key_file"};
		for (int i = 0; i < 3; i++)
			if (files[i][0] && access(files[i], R_OK) < 0)
				return cfg_error(ctx, names[i], "'%s': %s", files[i],
						 strerror(errno));
	}
	if (cfg->n_sandbox_cores == 0) {
		/* every core but the housekeeping ones; on one core, that core */
		for (int c = 0; c < ncpu && c < GW_MAX_CORES; c++) {
			bool hk = false;

			for (int i = 0; i < cfg->n_housekeeping_cores; i++)
				hk |= cfg->housekeeping_cores[i] == c;
			if (!hk)
				cfg->sandbox_cores[cfg->n_sandbox_cores++] = c;
		}
		if (cfg->n_sandbox_cores == 0)
			cfg->sandbox_cores[cfg->n_sandbox_cores++] = 0;
	}
	/*
	 * A core that is not there is an operator's mistake, not a reason to stop serving: it
	 * is named in an error and left out, and nemod runs on the cores that exist.
	 */
	drop_missing(ctx, "cores.sandbox", cfg->sandbox_cores, &cfg->n_sandbox_cores, ncpu);
	drop_missing(ctx, "cores.housekeeping", cfg->housekeeping_cores, &cfg->n_housekeeping_cores,
		     ncpu);
	if (cfg->n_sandbox_cores == 0)
		return cfg_error(ctx, "cores.sandbox", "none of its cores exists (%ld cores)",
				 ncpu);
	if (cfg->harvest.cs.reclaim.threshold > cfg->harvest.cs.reclaim.release)
		cfg->harvest.cs.reclaim.release = cfg->harvest.cs.reclaim.threshold;
	if (cfg->harvest.cs.reclaim.freeze_below > cfg->harvest.cs.reclaim.threshold)
		return cfg_error(ctx, "harvest.reclaim.freeze_below",
				 "%.2f is above the threshold %.2f: a core is frozen only after "
				 "nowhere could take its sandboxes (default 0.05)",
				 cfg->harvest.cs.reclaim.freeze_below,
				 cfg->harvest.cs.reclaim.threshold);
	cfg->harvest.cs.hk_cpu = cfg->n_housekeeping_cores ? cfg->housekeeping_cores[0] : 0;
	if (strcmp(cfg->harvest.cs.predictor, "ewma") &&
	    strcmp(cfg->harvest.cs.predictor, "markov"))
		return cfg_error(ctx, "harvest.predictor", "'%s' is not \"ewma\" or \"markov\"",
				 cfg->harvest.cs.predictor);
	if (!strncmp(cfg->store_dir, "/tmp/", 5) || !strcmp(cfg->store_dir, "/tmp"))
		return cfg_error(ctx, "store_dir",
				 "'%s' is under /tmp, which sandboxes see as their own private "
				 "/tmp: they could not read the code",
				 cfg->store_dir);
	if (cfg->default_namespace[0] && !gw_ns_valid(cfg->default_namespace))
		return cfg_error(ctx, "default_namespace",
				 "'%s' is not a namespace name (1..%d of [A-Za-z0-9_.-], not '_')",
				 cfg->default_namespace, GW_NS_MAX - 1);
	if (cfg->runtime_path[0] && cfg->runtime_path[0] != '/')
		return cfg_error(ctx, "runtime_path", "'%s' must be an absolute path",
				 cfg->runtime_path);
	if (strspn(cfg->cgroup_root, GW_NAME_CHARS "/") != strlen(cfg->cgroup_root) ||
	    strstr(cfg->cgroup_root, ".."))
		return cfg_error(ctx, "cgroup_root", "'%s' is not a plain relative path",
				 cfg->cgroup_root);
	return 0;
}

int gw_config_load(const char *file, struct gw_config *cfg, char *err, size_t errlen)
{
	struct cfg_ctx ctx = {.file = file};
	cJSON *root;
	int rc;

	gw_config_defaults(cfg);
	snprintf(cfg->file, sizeof(cfg->file), "%s", file);
	root = cfg_load_file(&ctx, file);
	if (!root) {
		rc = errno ? -errno : -EINVAL;
		goto out;
	}
	if (!cJSON_IsObject(root))
		rc = cfg_error(&ctx, NULL, "expected a JSON object");
	else
		rc = cfg_parse_object(&ctx, "", root, gw_keys, cfg);
	if (!rc)
		rc = check(&ctx, cfg);
	cJSON_Delete(root);
out:
	if (err && errlen)
		snprintf(err, errlen, "%s", ctx.err);
	return rc;
}

static void cores_str(char *buf, size_t len, const int *cores, int n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && off < len; i++)
		off += snprintf(buf + off, len - off, "%s%d", i ? "," : "", cores[i]);
}

void gw_config_log(const struct gw_config *cfg)
{
	const struct gw_limits *l = &cfg->limits;
	char hk[128], sb[128];

	cores_str(hk, sizeof(hk), cfg->housekeeping_cores, cfg->n_housekeeping_cores);
	cores_str(sb, sizeof(sb), cfg->sandbox_cores, cfg->n_sandbox_cores);
	NEMO_INFO(GW_MOD,
		  "config file=%s listen=%s:%u token_file=%s store_dir=%s code_roots=%d "
		  "http_mode=%s http_threads=%u async_workers=%u drain_timeout_ms=%u "
		  "journal_sync=%d",
		  cfg->file, cfg->listen_host, cfg->listen_port, cfg->token_file, cfg->store_dir,
		  cfg->n_code_roots, http_modes[cfg->http_mode], cfg->http_threads,
		  cfg->async_workers, cfg->drain_timeout_ms, cfg->journal_sync);
	NEMO_INFO(
		GW_MOD,
		"config limits max_body_bytes=%u max_inflight=%u max_inflight_per_function=%u "
		"max_connections=%u max_connections_per_ip=%u header_timeout_ms=%u "
		"connection_timeout_s=%u request_timeout_ms=%u async_queue=%u activations_kept=%u",
		l->max_body_bytes, l->max_inflight, l->max_inflight_per_function,
		l->max_connections, l->max_connections_per_ip, l->header_timeout_ms,
		l->connection_timeout_s, l->request_timeout_ms, l->async_queue,
		l->activations_kept);
	NEMO_INFO(GW_MOD,
		  "config cores housekeeping=%s sandbox=%s cgroup_root=%s keepalive=%s ttl_s=%llu "
		  "memory_budget_mb=%llu mqtt=%s:%u enabled=%d",
		  hk[0] ? hk : "unpinned", sb, cfg->cgroup_root, ka_policies[cfg->keepalive_policy],
		  (unsigned long long)cfg->keepalive_ttl_s,
		  (unsigned long long)cfg->memory_budget_mb, cfg->mqtt.host, cfg->mqtt.port,
		  cfg->mqtt.enabled);
	NEMO_INFO(GW_MOD,
		  "config harvest enabled=%d channels=%u first=%s period_ms=%u predictor=%s "
		  "prewarm=%d policy=%s thread_cap=%u reclaim.threshold=%.3f reclaim.windows=%u "
		  "reclaim.action=%s overflow=%s queue_deadline_ms=%llu interference=%d bound=%.2f "
		  "nf_sleep_floor_us=%u nf_delay_budget_us=%u",
		  cfg->harvest.enabled, cfg->harvest.cs.n_channels, cfg->harvest.cs.channels[0],
		  cfg->harvest.cs.period_ms, cfg->harvest.cs.predictor, cfg->harvest.cs.prewarm,
		  hv_policies[cfg->harvest.cs.policy], cfg->harvest.cs.thread_cap,
		  cfg->harvest.cs.reclaim.threshold, cfg->harvest.cs.reclaim.k_windows,
		  cfg->harvest.cs.reclaim.prefer == SCHED_RECLAIM_FREEZE ? "freeze" : "move",
		  hv_overflows[cfg->harvest.cs.overflow],
		  (unsigned long long)cfg->harvest.cs.queue_deadline_ms,
		  cfg->harvest.cs.interference, cfg->harvest.cs.interference_bound,
		  cfg->harvest.cs.nf_sleep_floor_us, cfg->harvest.cs.nf_delay_budget_us);
	NEMO_INFO(
		GW_MOD,
		"config cluster enabled=%d node=%s address=%s endpoints=%d first=%s prefix=%s "
		"lease_ttl_s=%u publish_ms=%u batch_ms=%u offload=%d qos=%s latency_deadline_ms=%u "
		"batch_deadline_ms=%u",
		cfg->cluster.cl.enabled, cfg->cluster.cl.node, cfg->cluster.cl.address,
		cfg->cluster.cl.n_endpoints, cfg->cluster.cl.endpoints[0], cfg->cluster.cl.prefix,
		cfg->cluster.cl.lease_ttl_s, cfg->cluster.cl.publish_ms, cfg->cluster.cl.batch_ms,
		cfg->cluster.offload, cl_qos_name(cfg->cluster.qos),
		cfg->cluster.latency_deadline_ms, cfg->cluster.batch_deadline_ms);
}
