/* nf_config.c - nemo-nf's JSON config: key tables, defaults and the cross-field checks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nemo/config.h"
#include "nemo/log.h"
#include "nemo/nf.h"
#include "nemo/nf_module.h"

static const char *const idle_policy_names[] = {"poll", "sleep", "interrupt", NULL};
static const char *const sched_policy_names[] = {"other", "fifo", NULL};
static const char *const idle_detect_names[] = {"time", "count", NULL};

/* ---- ports ---- */

static const struct cfg_key port_keys[] = {
	CFG_KEY_STR("vdev", struct nf_port_config, vdev, false),
	CFG_KEY_STR("pci", struct nf_port_config, pci, false),
	CFG_KEY_RANGE("rx_queues", cfg_parse_u32, struct nf_port_config, rx_queues, false, 1, 64),
	CFG_KEY_RANGE("tx_queues", cfg_parse_u32, struct nf_port_config, tx_queues, false, 1, 64),
	CFG_KEY_RANGE("rx_ring", cfg_parse_u32, struct nf_port_config, rx_ring, false, 64, 32768),
	CFG_KEY_RANGE("tx_ring", cfg_parse_u32, struct nf_port_config, tx_ring, false, 64, 32768),
	CFG_KEY_RANGE("line_rate_pps", cfg_parse_u64, struct nf_port_config, line_rate_pps, false,
		      1000, 1e10),
	CFG_KEY("promiscuous", cfg_parse_bool, struct nf_port_config, promiscuous, false),
	CFG_KEY_END,
};

static int parse_ports(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		       const struct cfg_key *key)
{
	struct nf_config *cfg = dst;
	const cJSON *p;
	char ipath[128];
	int i = 0, rc;

	(void)key;
	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0)
		return cfg_error(ctx, path, "expected a non-empty array of ports");
	if (cJSON_GetArraySize(item) > NF_MAX_PORTS)
		return cfg_error(ctx, path, "at most %d ports", NF_MAX_PORTS);
	cJSON_ArrayForEach (p, item) {
		struct nf_port_config *pc = &cfg->ports[i];

		cfg_index(ipath, sizeof(ipath), path, i);
		*pc = (struct nf_port_config){
			.rx_queues = 1,
			.tx_queues = 0, /* default: one per lcore that transmits, set below */
			.rx_ring = 1024,
			.tx_ring = 1024,
			.line_rate_pps = 14880952, /* 10 GbE of 64-byte frames */
			.promiscuous = true,
		};
		rc = cfg_parse_object(ctx, ipath, p, port_keys, pc);
		if (rc)
			return rc;
		if (!pc->vdev[0] == !pc->pci[0])
			return cfg_error(ctx, ipath, "give exactly one of 'vdev' and 'pci'");
		if (pc->rx_ring & (pc->rx_ring - 1) || pc->tx_ring & (pc->tx_ring - 1))
			return cfg_error(ctx, ipath, "rx_ring and tx_ring must be powers of two");
		i++;
	}
	cfg->nb_ports = (uint32_t)i;
	return 0;
}

/* ---- lcores ---- */

struct rx_ref_raw {
	uint32_t port;
	uint32_t queue;
};

static const struct cfg_key rx_keys[] = {
	CFG_KEY("port", cfg_parse_u32, struct rx_ref_raw, port, true),
	CFG_KEY("queue", cfg_parse_u32, struct rx_ref_raw, queue, false),
	CFG_KEY_END,
};

static int parse_rx(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		    const struct cfg_key *key)
{
	struct nf_lcore_config *lc = dst;
	const cJSON *r;
	char ipath[160];
	int i = 0;

	(void)key;
	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0)
		return cfg_error(ctx, path, "expected a non-empty array of {port, queue}");
	if (cJSON_GetArraySize(item) > NF_MAX_RX_PER_LCORE)
		return cfg_error(ctx, path, "at most %d rx queues per lcore", NF_MAX_RX_PER_LCORE);
	cJSON_ArrayForEach (r, item) {
		struct rx_ref_raw raw = {0, 0};
		int rc;

		cfg_index(ipath, sizeof(ipath), path, i);
		rc = cfg_parse_object(ctx, ipath, r, rx_keys, &raw);
		if (rc)
			return rc;
		lc->rx[i].port = (uint16_t)raw.port;
		lc->rx[i].queue = (uint16_t)raw.queue;
		i++;
	}
	lc->nb_rx = (uint32_t)i;
	return 0;
}

static int parse_chain(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		       const struct cfg_key *key)
{
	struct nf_lcore_config *lc = dst;
	const cJSON *m;
	char ipath[160], mpath[192];
	int i = 0;

	(void)key;
	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0)
		return cfg_error(ctx, path, "expected a non-empty array of modules");
	if (cJSON_GetArraySize(item) > NF_MAX_CHAIN)
		return cfg_error(ctx, path, "at most %d modules in a chain", NF_MAX_CHAIN);
	cJSON_ArrayForEach (m, item) {
		const cJSON *name;

		cfg_index(ipath, sizeof(ipath), path, i);
		/* a bare string is a module with no settings: "fwd" */
		if (cJSON_IsString(m)) {
			name = m;
		} else if (cJSON_IsObject(m)) {
			name = cJSON_GetObjectItemCaseSensitive(m, "module");
			if (!name)
				return cfg_error(ctx,
						 cfg_join(mpath, sizeof(mpath), ipath, "module"),
						 "required key is missing");
			if (!cJSON_IsString(name))
				return cfg_error(ctx,
						 cfg_join(mpath, sizeof(mpath), ipath, "module"),
						 "expected a string");
		} else {
			return cfg_error(ctx, ipath, "expected a module name or object");
		}
		if (!nf_module_find(name->valuestring)) {
			char known[160] = "";

			for (int k = 0; nf_modules[k]; k++)
				snprintf(known + strlen(known), sizeof(known) - strlen(known),
					 "%s%s", k ? ", " : "", nf_modules[k]->name);
			return cfg_error(ctx, ipath, "unknown NF module '%s' (known: %s)",
					 name->valuestring, known);
		}
		snprintf(lc->chain_names[i], sizeof(lc->chain_names[i]), "%s", name->valuestring);
		lc->chain_cfg[i] = (cJSON *)m;
		i++;
	}
	lc->chain_len = (uint32_t)i;
	return 0;
}

static const struct cfg_key idle_keys[] = {
	CFG_KEY_ENUM("policy", struct nf_idle_config, policy, true, idle_policy_names),
	CFG_KEY_ENUM("detect", struct nf_idle_config, detect, false, idle_detect_names),
	CFG_KEY_RANGE("empty_polls", cfg_parse_u32, struct nf_idle_config, empty_polls, false, 1,
		      1e8),
	CFG_KEY_RANGE("idle_poll_us", cfg_parse_u32, struct nf_idle_config, idle_poll_us, false, 1,
		      1e6),
	CFG_KEY_RANGE("min_sleep_us", cfg_parse_u32, struct nf_idle_config, min_sleep_us, false, 1,
		      1e6),
	CFG_KEY_RANGE("max_sleep_us", cfg_parse_u32, struct nf_idle_config, max_sleep_us, false, 1,
		      1e6),
	CFG_KEY_RANGE("intr_timeout_ms", cfg_parse_u32, struct nf_idle_config, intr_timeout_ms,
		      false, 1, 10000),
	CFG_KEY_END,
};

static int parse_idle(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		      const struct cfg_key *key)
{
	struct nf_lcore_config *lc = dst;

	(void)key;
	/* "idle": "sleep" is short for {"policy": "sleep"} */
	if (cJSON_IsString(item)) {
		static const struct cfg_key k = CFG_KEY_ENUM("policy", struct nf_idle_config,
							     policy, true, idle_policy_names);
		return cfg_parse_enum(ctx, path, item, &lc->idle, &k);
	}
	return cfg_parse_object(ctx, path, item, idle_keys, &lc->idle);
}

static const struct cfg_key sched_keys[] = {
	CFG_KEY_ENUM("policy", struct nf_sched_config, policy, true, sched_policy_names),
	CFG_KEY_RANGE("priority", cfg_parse_i32, struct nf_sched_config, priority, false, 1, 99),
	CFG_KEY_RANGE("nice", cfg_parse_i32, struct nf_sched_config, nice, false, -20, 19),
	CFG_KEY_END,
};

static int parse_sched(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		       const struct cfg_key *key)
{
	struct nf_lcore_config *lc = dst;

	(void)key;
	return cfg_parse_object(ctx, path, item, sched_keys, &lc->sched);
}

static const struct cfg_key lcore_keys[] = {
	CFG_KEY_RANGE("lcore", cfg_parse_u32, struct nf_lcore_config, lcore_id, true, 0,
		      RTE_MAX_LCORE - 1),
	CFG_KEY_RANGE("cpu", cfg_parse_u32, struct nf_lcore_config, cpu, false, 0, 4095),
	{.name = "rx", .parse = parse_rx, .required = true},
	{.name = "chain", .parse = parse_chain, .required = true},
	{.name = "idle", .parse = parse_idle},
	{.name = "sched", .parse = parse_sched},
	CFG_KEY_END,
};

static int parse_lcores(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			const struct cfg_key *key)
{
	struct nf_config *cfg = dst;
	const cJSON *l;
	char ipath[128];
	int i = 0, rc;

	(void)key;
	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0)
		return cfg_error(ctx, path, "expected a non-empty array of lcores");
	if (cJSON_GetArraySize(item) > NF_MAX_LCORES)
		return cfg_error(ctx, path, "at most %d lcores", NF_MAX_LCORES);
	cJSON_ArrayForEach (l, item) {
		struct nf_lcore_config *lc = &cfg->lcores[i];

		cfg_index(ipath, sizeof(ipath), path, i);
		*lc = (struct nf_lcore_config){
			.cpu = UINT32_MAX, /* default: same number as the lcore */
			.idle = {.policy = HC_IDLE_SLEEP,
				 .detect = NF_IDLE_DETECT_TIME,
				 .min_sleep_us = 20,
				 .max_sleep_us = 0,
				 .intr_timeout_ms = 100},
			.sched = {.policy = HC_SCHED_OTHER, .priority = 50, .nice = -20},
		};
		rc = cfg_parse_object(ctx, ipath, l, lcore_keys, lc);
		if (rc)
			return rc;
		if (lc->cpu == UINT32_MAX)
			lc->cpu = lc->lcore_id;
		i++;
	}
	cfg->nb_lcores = (uint32_t)i;
	return 0;
}

static const struct cfg_key root_keys[] = {
	CFG_KEY_STR("name", struct nf_config, name, false),
	CFG_KEY_RANGE("main_lcore", cfg_parse_u32, struct nf_config, main_lcore, false, 0,
		      RTE_MAX_LCORE - 1),
	CFG_KEY_RANGE("main_cpu", cfg_parse_u32, struct nf_config, main_cpu, false, 0, 4095),
	CFG_KEY_RANGE("memory_mb", cfg_parse_u32, struct nf_config, memory_mb, false, 64, 65536),
	CFG_KEY("hugepages", cfg_parse_bool, struct nf_config, hugepages, false),
	CFG_KEY_RANGE("mbufs", cfg_parse_u32, struct nf_config, mbufs, false, 1023, 1 << 24),
	CFG_KEY_RANGE("burst", cfg_parse_u32, struct nf_config, burst, false, 1, 512),
	CFG_KEY_RANGE("publish_period_us", cfg_parse_u32, struct nf_config, publish_period_us,
		      false, 10, 1000),
	CFG_KEY_RANGE("stats_interval_ms", cfg_parse_u32, struct nf_config, stats_interval_ms,
		      false, 0, 3600000),
	CFG_KEY_RANGE("delay_sample_every", cfg_parse_u32, struct nf_config, delay_sample_every,
		      false, 0, 1000000),
	{.name = "ports", .parse = parse_ports, .required = true},
	{.name = "lcores", .parse = parse_lcores, .required = true},
	CFG_KEY_STR("fn_socket", struct nf_config, fn_socket, false),
	CFG_KEY_END,
};

uint64_t nf_max_sleep_ns(uint32_t ring, uint64_t line_rate_pps, uint64_t wake_latency_ns)
{
	uint64_t fill_ns = (uint64_t)ring * 1000000000ull / (line_rate_pps ? line_rate_pps : 1);

	/* 0: the ring fills faster than a sleeper can wake, so no sleep is safe */
	return fill_ns > wake_latency_ns ? fill_ns - wake_latency_ns : 0;
}

/* The cross-field rules: what each key alone cannot say. */
static int check_config(struct nf_config *cfg, struct cfg_ctx *ctx)
{
	uint8_t polled[NF_MAX_PORTS][64] = {{0}};
	char path[96];

	for (uint32_t i = 0; i < cfg->nb_lcores; i++) {
		struct nf_lcore_config *lc = &cfg->lcores[i];

		if (lc->lcore_id == cfg->main_lcore)
			return cfg_error(ctx, cfg_index(path, sizeof(path), "lcores", (int)i),
					 "lcore %u is the main (control) lcore; pick another",
					 lc->lcore_id);
		for (uint32_t j = 0; j < i; j++) {
			if (cfg->lcores[j].lcore_id == lc->lcore_id)
				return cfg_error(ctx,
						 cfg_index(path, sizeof(path), "lcores", (int)i),
						 "lcore %u is listed twice", lc->lcore_id);
			if (cfg->lcores[j].cpu == lc->cpu)
				return cfg_error(ctx,
						 cfg_index(path, sizeof(path), "lcores", (int)i),
						 "cpu %u already runs lcore %u: NF lcores need a "
						 "core each",
						 lc->cpu, cfg->lcores[j].lcore_id);
		}
		for (uint32_t r = 0; r < lc->nb_rx; r++) {
			struct nf_rx_queue_ref q = lc->rx[r];

			snprintf(path, sizeof(path), "lcores[%u].rx[%u]", i, r);
			if (q.port >= cfg->nb_ports)
				return cfg_error(ctx, path,
						 "port %u does not exist (%u configured)", q.port,
						 cfg->nb_ports);
			if (q.queue >= cfg->ports[q.port].rx_queues)
				return cfg_error(ctx, path, "port %u has %u rx queues; no queue %u",
						 q.port, cfg->ports[q.port].rx_queues, q.queue);
			if (polled[q.port][q.queue]++)
				return cfg_error(ctx, path,
						 "port %u queue %u is already polled by another "
						 "lcore",
						 q.port, q.queue);
		}
		snprintf(path, sizeof(path), "lcores[%u].idle", i);
		/* counting empty polls was the only rule once; it keeps its old default there */
		if (lc->idle.detect == NF_IDLE_DETECT_COUNT && lc->idle.empty_polls == 0)
			lc->idle.empty_polls = 256;
		if (lc->idle.policy == HC_IDLE_SLEEP) {
			uint64_t bound = UINT64_MAX;

			for (uint32_t r = 0; r < lc->nb_rx; r++) {
				const struct nf_port_config *pc = &cfg->ports[lc->rx[r].port];
				uint64_t b = nf_max_sleep_ns(pc->rx_ring, pc->line_rate_pps,
							     NF_WAKE_LATENCY_NS);

				bound = b < bound ? b : bound;
			}
			if (bound < 1000)
				return cfg_error(
					ctx, path,
					"the rx ring fills at line rate in less than the "
					"%llu us a sleeping lcore takes to wake: use a larger "
					"rx_ring, or idle policy 'poll'",
					NF_WAKE_LATENCY_NS / 1000);
			if (lc->idle.max_sleep_us == 0)
				lc->idle.max_sleep_us = (uint32_t)(bound / 1000);
			else if ((uint64_t)lc->idle.max_sleep_us * 1000 > bound)
				return cfg_error(
					ctx, path,
					"max_sleep_us %u lets the rx ring overflow: it fills "
					"in %lu us at line rate; at most %lu us",
					lc->idle.max_sleep_us,
					(unsigned long)((bound + NF_WAKE_LATENCY_NS) / 1000),
					(unsigned long)(bound / 1000));
			if (lc->idle.min_sleep_us > lc->idle.max_sleep_us)
				lc->idle.min_sleep_us = lc->idle.max_sleep_us;
		}
	}
	/* every port needs a tx queue per lcore that may send on it */
	for (uint32_t p = 0; p < cfg->nb_ports; p++) {
		for (uint32_t q = 0; q < cfg->ports[p].rx_queues; q++)
			if (!polled[p][q])
				NEMO_WARN("nf", "%s: port %u rx queue %u is polled by no lcore",
					  cfg->file, p, q);
		if (cfg->ports[p].tx_queues == 0)
			cfg->ports[p].tx_queues = cfg->nb_lcores;
		else if (cfg->ports[p].tx_queues < cfg->nb_lcores)
			return cfg_error(ctx, cfg_index(path, sizeof(path), "ports", (int)p),
					 "tx_queues %u < %u lcores: each lcore needs its own",
					 cfg->ports[p].tx_queues, cfg->nb_lcores);
	}
	return 0;
}

static int config_from_json(cJSON *root, struct nf_config *cfg, struct cfg_ctx *ctx)
{
	int rc;

	cfg->json = root;
	snprintf(cfg->name, sizeof(cfg->name), "default");
	cfg->main_lcore = 0;
	cfg->main_cpu = 0;
	cfg->memory_mb = 512;
	cfg->burst = 32;
	cfg->publish_period_us = 100;
	cfg->stats_interval_ms = 1000;
	cfg->delay_sample_every = 64;
	rc = cfg_parse_object(ctx, "", root, root_keys, cfg);
	if (rc)
		return rc;
	for (const char *c = cfg->name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_'))
			return cfg_error(ctx, "name", "use letters, digits, '-' and '_' only");
	return check_config(cfg, ctx);
}

int nf_config_parse(const char *text, const char *file, struct nf_config *cfg, struct cfg_ctx *ctx)
{
	cJSON *root;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->file, sizeof(cfg->file), "%s", file);
	ctx->file = cfg->file;
	root = cfg_parse_json(ctx, text, strlen(text));
	if (!root)
		return -errno;
	rc = config_from_json(root, cfg, ctx);
	if (rc)
		nf_config_free(cfg);
	return rc;
}

int nf_config_load(const char *file, struct nf_config *cfg, struct cfg_ctx *ctx)
{
	cJSON *root;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->file, sizeof(cfg->file), "%s", file);
	root = cfg_load_file(ctx, cfg->file);
	if (!root)
		return -errno;
	rc = config_from_json(root, cfg, ctx);
	if (rc)
		nf_config_free(cfg);
	return rc;
}

void nf_config_free(struct nf_config *cfg)
{
	cJSON_Delete(cfg->json);
	cfg->json = NULL;
}

void nf_config_log(const struct nf_config *cfg)
{
	char delay[48] = "no packet";

	if (cfg->delay_sample_every)
		snprintf(delay, sizeof(delay), "1 in %u stamped packets", cfg->delay_sample_every);
	NEMO_INFO("nf",
		  "config %s: name %s, main lcore %u on cpu %u, %u MB %s, burst %u, "
		  "publish every %u us, own delay timed on %s",
		  cfg->file, cfg->name, cfg->main_lcore, cfg->main_cpu, cfg->memory_mb,
		  cfg->hugepages ? "hugepages" : "no hugepages", cfg->burst, cfg->publish_period_us,
		  delay);
	for (uint32_t p = 0; p < cfg->nb_ports; p++) {
		const struct nf_port_config *pc = &cfg->ports[p];

		NEMO_INFO("nf", "port %u: %s, %u rxq x %u, %u txq x %u, line rate %lu pps", p,
			  pc->vdev[0] ? pc->vdev : pc->pci, pc->rx_queues, pc->rx_ring,
			  pc->tx_queues, pc->tx_ring, (unsigned long)pc->line_rate_pps);
	}
	for (uint32_t i = 0; i < cfg->nb_lcores; i++) {
		const struct nf_lcore_config *lc = &cfg->lcores[i];
		char chain[256] = "", rx[128] = "", idle[160], detect[96];

		for (uint32_t m = 0; m < lc->chain_len; m++)
			snprintf(chain + strlen(chain), sizeof(chain) - strlen(chain), "%s%s",
				 m ? " > " : "", lc->chain_names[m]);
		for (uint32_t r = 0; r < lc->nb_rx; r++)
			snprintf(rx + strlen(rx), sizeof(rx) - strlen(rx), "%sp%uq%u", r ? "," : "",
				 lc->rx[r].port, lc->rx[r].queue);

		if (lc->idle.detect == NF_IDLE_DETECT_COUNT)
			snprintf(detect, sizeof(detect), "after %u empty polls",
				 lc->idle.empty_polls);
		else if (lc->idle.idle_poll_us)
			snprintf(detect, sizeof(detect), "after %u us of empty polls%s",
				 lc->idle.idle_poll_us,
				 lc->idle.empty_polls ? " or the empty_polls bound" : "");
		else
			snprintf(detect, sizeof(detect),
				 "after min_sleep_us + the measured wake-up cost of empty polls%s",
				 lc->idle.empty_polls ? " or the empty_polls bound" : "");
		if (lc->idle.policy == HC_IDLE_SLEEP)
			snprintf(idle, sizeof(idle), "sleep %s, %u..%u us", detect,
				 lc->idle.min_sleep_us, lc->idle.max_sleep_us);
		else if (lc->idle.policy == HC_IDLE_INTERRUPT)
			snprintf(idle, sizeof(idle), "interrupt %s, wait <= %u ms", detect,
				 lc->idle.intr_timeout_ms);
		else
			snprintf(idle, sizeof(idle), "poll");
		NEMO_INFO("nf", "lcore %u on cpu %u: rx %s, chain %s, idle %s, sched %s %d",
			  lc->lcore_id, lc->cpu, rx, chain, idle,
			  sched_policy_names[lc->sched.policy],
			  lc->sched.policy == HC_SCHED_FIFO ? lc->sched.priority : lc->sched.nice);
	}
}
