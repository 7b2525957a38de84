/* mod_acl.c - the acl module: allow or deny IPv4 packets by 5-tuple rules, first match wins. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_malloc.h>

#include "nemo/log.h"
#include "nf_internal.h"

#define ACL_MAX_RULES 16384

enum acl_action {
	ACL_ALLOW = 0,
	ACL_DENY = 1,
};

static const char *const acl_action_names[] = {"allow", "deny", NULL};

/* One rule as configured. */
struct acl_rule_cfg {
	struct nf_match_rule match; /* first: nf_match_build() reads it there */
	int action;
};

struct acl_cfg {
	int default_action;
	struct acl_rule_cfg *rules; /* malloc'd while parsing, freed after the build */
	uint32_t nb_rules;
};

struct acl_inst {
	struct nf_match match; /* no rules: everything takes the default */
	int default_action;
	uint32_t nb_rules;
	uint64_t allowed;
	uint64_t denied;
	uint64_t default_hits; /* packets no rule matched, and non-IPv4 frames */
	uint8_t *rule_action;  /* [nb_rules], enum acl_action */
	uint64_t *rule_hits;   /* [nb_rules] */
};

static const struct cfg_key acl_rule_keys[] = {
	NF_MATCH_CFG_KEYS(struct acl_rule_cfg, match),
	CFG_KEY_ENUM("action", struct acl_rule_cfg, action, true, acl_action_names),
	CFG_KEY_END,
};

static int acl_parse_rules(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			   const struct cfg_key *key)
{
	static const struct acl_rule_cfg defaults;
	struct acl_cfg *c = (struct acl_cfg *)((char *)dst + key->offset);
	void *rules = c->rules;
	int rc;

	rc = nf_match_parse_rules(ctx, path, item, ACL_MAX_RULES, acl_rule_keys, &defaults,
				  sizeof(defaults), &rules, &c->nb_rules);
	c->rules = rules;
	return rc;
}

static const struct cfg_key acl_keys[] = {
	NF_CFG_KEY_MODULE,
	CFG_KEY_ENUM("default", struct acl_cfg, default_action, false, acl_action_names),
	{.name = "rules", .parse = acl_parse_rules, .offset = 0},
	CFG_KEY_END,
};

static void acl_destroy(void *inst)
{
	struct acl_inst *acl = inst;

	if (!acl)
		return;
	nf_match_free(&acl->match);
	rte_free(acl->rule_action);
	rte_free(acl->rule_hits);
	rte_free(acl);
}

static void *acl_create(struct cfg_ctx *ctx, const char *path, const cJSON *cfg,
			const struct nf_module_env *env)
{
	struct acl_cfg c = {.default_action = ACL_ALLOW};
	struct acl_inst *acl = NULL;
	int socket = (int)env->socket_id;
	int rc = -EINVAL;

	if (cfg_parse_object(ctx, path, cfg, acl_keys, &c))
		goto fail;
	rc = -ENOMEM;
	acl = rte_zmalloc_socket("nf_acl", sizeof(*acl), RTE_CACHE_LINE_SIZE, socket);
	if (!acl)
		goto fail;
	acl->default_action = c.default_action;
	acl->nb_rules = c.nb_rules;
	if (c.nb_rules) {
		acl->rule_action = rte_zmalloc_socket("nf_acl", c.nb_rules, 0, socket);
		acl->rule_hits = rte_zmalloc_socket("nf_acl", c.nb_rules * sizeof(uint64_t),
						    RTE_CACHE_LINE_SIZE, socket);
		if (!acl->rule_action || !acl->rule_hits)
			goto fail;
		for (uint32_t i = 0; i < c.nb_rules; i++)
			acl->rule_action[i] = (uint8_t)c.rules[i].action;
		rc = nf_match_build(&acl->match, "acl", c.rules, sizeof(*c.rules), c.nb_rules, env);
		if (rc)
			goto fail;
	}
	NEMO_INFO("nf", "acl on lcore %u: %u rules, default %s", env->lcore_id, c.nb_rules,
		  acl_action_names[c.default_action]);
	free(c.rules);
	return acl;
fail:
	if (rc == -ENOMEM && !acl)
		NEMO_ERR("nf", "acl on lcore %u: cannot allocate the instance", env->lcore_id);
	free(c.rules);
	acl_destroy(acl);
	errno = -rc;
	return NULL;
}

static uint16_t acl_process(void *inst, struct rte_mbuf **pkts, uint16_t nb_pkts, uint64_t now_tsc,
			    uint64_t drops[NF_DROP_REASONS])
{
	struct acl_inst *acl = inst;
	uint32_t results[NF_MATCH_CHUNK];
	uint16_t kept = 0;

	(void)now_tsc;
	for (uint16_t base = 0; base < nb_pkts; base += NF_MATCH_CHUNK) {
		uint16_t n = RTE_MIN((uint16_t)NF_MATCH_CHUNK, (uint16_t)(nb_pkts - base));

		nf_match_classify(&acl->match, pkts + base, n, results);
		for (uint16_t j = 0; j < n; j++) {
			struct rte_mbuf *m = pkts[base + j];
			int action = acl->default_action;

			if (results[j]) {
				uint32_t rule = results[j] - 1;

				action = acl->rule_action[rule];
				acl->rule_hits[rule]++;
			} else {
				acl->default_hits++;
			}
			if (action == ACL_ALLOW) {
				acl->allowed++;
				pkts[kept++] = m;
			} else {
				acl->denied++;
				drops[NF_DROP_ACL]++;
				rte_pktmbuf_free(m);
			}
		}
	}
	return kept;
}

static void acl_telemetry(void *inst, struct rte_tel_data *d)
{
	const struct acl_inst *acl = inst;
	struct rte_tel_data *hits;

	rte_tel_data_add_dict_u64(d, "rules", acl->nb_rules);
	rte_tel_data_add_dict_string(d, "default", acl_action_names[acl->default_action]);
	rte_tel_data_add_dict_u64(d, "allowed", acl->allowed);
	rte_tel_data_add_dict_u64(d, "denied", acl->denied);
	rte_tel_data_add_dict_u64(d, "default_hits", acl->default_hits);
	if (!acl->nb_rules)
		return;
	hits = rte_tel_data_alloc();
	if (!hits)
		return;
	rte_tel_data_start_array(hits, RTE_TEL_U64_VAL);
	for (uint32_t i = 0; i < acl->nb_rules && i < RTE_TEL_MAX_ARRAY_ENTRIES; i++)
		rte_tel_data_add_array_u64(hits, acl->rule_hits[i]);
	if (rte_tel_data_add_dict_container(d, "rule_hits", hits, 0))
		rte_tel_data_free(hits);
}

const struct nf_module_ops nf_mod_acl_ops = {
	.name = "acl",
	.create = acl_create,
	.process = acl_process,
	.destroy = acl_destroy,
	.telemetry = acl_telemetry,
};
