/* modules.c - the registry of NF modules, and the config helpers and names they share. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "nf_internal.h"

const struct nf_module_ops *const nf_modules[] = {
	&nf_mod_fwd_ops,     &nf_mod_acl_ops, &nf_mod_nat_ops,
	&nf_mod_monitor_ops, &nf_mod_fn_ops,  NULL,
};

const struct nf_module_ops *nf_module_find(const char *name)
{
	if (!name)
		return NULL;
	for (int i = 0; nf_modules[i]; i++)
		if (strcmp(nf_modules[i]->name, name) == 0)
			return nf_modules[i];
	return NULL;
}

int nf_cfg_parse_ipv4(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		      const struct cfg_key *key)
{
	struct in_addr a;

	if (!cJSON_IsString(item))
		return cfg_error(ctx, path, "expected an IPv4 address string");
	if (inet_pton(AF_INET, item->valuestring, &a) != 1)
		return cfg_error(ctx, path, "'%s' is not an IPv4 address (a.b.c.d)",
				 item->valuestring);
	*(uint32_t *)((char *)dst + key->offset) = a.s_addr;
	return 0;
}

int nf_cfg_parse_module(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			const struct cfg_key *key)
{
	(void)dst;
	(void)key;
	if (!cJSON_IsString(item))
		return cfg_error(ctx, path, "expected a module name string");
	return 0;
}

const char *nf_instance_name(char *buf, size_t len, const char *kind, unsigned int lcore_id)
{
	/* create() runs on the control thread, but an atomic costs nothing here */
	static unsigned int seq;
	unsigned int n = __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED);

	/* short: rte_hash derives ring names from it within 29 characters ("HT_EXT_" + name) */
	if (lcore_id >= RTE_MAX_LCORE)
		snprintf(buf, len, "%s_x_%u", kind, n);
	else
		snprintf(buf, len, "%s_%u_%u", kind, lcore_id, n);
	return buf;
}
