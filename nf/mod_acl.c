/* mod_acl.c - the acl module: allow or deny IPv4 packets by 5-tuple rules, first match wins. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_acl.h>
#include <rte_malloc.h>

#include "nemo/log.h"
#include "nf_internal.h"

#define ACL_MAX_RULES 16384
#define ACL_CHUNK     64 /* packets classified per rte_acl_classify() call */

enum acl_action {
	ACL_ALLOW = 0,
	ACL_DENY = 1,
};

static const char *const acl_action_names[] = {"allow", "deny", NULL};

/* One rule as configured, host byte order (what rte_acl wants for rule fields). */
struct acl_rule_cfg {
	struct {
		uint32_t addr;
		uint32_t len;
	} src, dst;
	struct {
		uint32_t value;
		uint32_t mask;
	} proto;
	struct {
		uint32_t lo;
		uint32_t hi;
	} sport, dport;
	int action;
};

struct acl_cfg {
	int default_action;
	struct acl_rule_cfg *rules; /* malloc'd while parsing, freed after the build */
	uint32_t nb_rules;
};

/*
 * What rte_acl reads per packet, network byte order as in the headers. rte_acl walks the
 * input one byte first and then in groups of 4 bytes (input_index), hence the padding
 * after proto and the two ports sharing one group.
 */
struct acl_key {
	uint8_t proto;
	uint8_t pad[3];
	uint32_t src_ip;
	uint32_t dst_ip;
	uint16_t src_port;
	uint16_t dst_port;
};

enum {
	ACL_F_PROTO,
	ACL_F_SRC,
	ACL_F_DST,
	ACL_F_SPORT,
	ACL_F_DPORT,
	ACL_F_NUM
};

RTE_ACL_RULE_DEF(acl_rule, ACL_F_NUM);

static const struct rte_acl_field_def acl_field_defs[ACL_F_NUM] = {
	{.type = RTE_ACL_FIELD_TYPE_BITMASK,
	 .size = sizeof(uint8_t),
	 .field_index = ACL_F_PROTO,
	 .input_index = 0,
	 .offset = offsetof(struct acl_key, proto)},
	{.type = RTE_ACL_FIELD_TYPE_MASK,
	 .size = sizeof(uint32_t),
	 .field_index = ACL_F_SRC,
	 .input_index = 1,
	 .offset = offsetof(struct acl_key, src_ip)},
	{.type = RTE_ACL_FIELD_TYPE_MASK,
	 .size = sizeof(uint32_t),
	 .field_index = ACL_F_DST,
	 .input_index = 2,
	 .offset = offsetof(struct acl_key, dst_ip)},
	{.type = RTE_ACL_FIELD_TYPE_RANGE,
	 .size = sizeof(uint16_t),
	 .field_index = ACL_F_SPORT,
	 .input_index = 3,
	 .offset = offsetof(struct acl_key, src_port)},
	{.type = RTE_ACL_FIELD_TYPE_RANGE,
	 .size = sizeof(uint16_t),
	 .field_index = ACL_F_DPORT,
	 .input_index = 3,
	 .offset = offsetof(struct acl_key, dst_port)},
};

struct acl_inst {
	struct rte_acl_ctx *ctx; /* NULL when there are no rules: everything takes the default */
	int default_action;
	uint32_t nb_rules;
	uint64_t allowed;
	uint64_t denied;
	uint64_t default_hits; /* packets no rule matched, and non-IPv4 frames */
	uint8_t *rule_action;  /* [nb_rules], enum acl_action */
	uint64_t *rule_hits;   /* [nb_rules] */
};

/* "any", "a.b.c.d" or "a.b.c.d/len" with no host bits set. */
static int acl_parse_cidr(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			  const struct cfg_key *key)
{
	uint32_t *out = (uint32_t *)((char *)dst + key->offset); /* [0] addr, [1] len */
	char buf[32], *slash, *end;
	struct in_addr a;
	unsigned long len = 32;
	uint32_t addr, mask;

	if (!cJSON_IsString(item))
		return cfg_error(ctx, path,
				 "expected \"any\" or an IPv4 prefix like \"10.0.0.0/8\"");
	if (strcmp(item->valuestring, "any") == 0) {
		out[0] = 0;
		out[1] = 0;
		return 0;
	}
	if (strlen(item->valuestring) >= sizeof(buf))
		return cfg_error(ctx, path, "'%s' is not an IPv4 prefix", item->valuestring);
	strcpy(buf, item->valuestring);
	slash = strchr(buf, '/');
	if (slash) {
		*slash = '\0';
		errno = 0;
		len = strtoul(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end || errno || len > 32)
			return cfg_error(ctx, path, "'%s': prefix length must be 0..32",
					 item->valuestring);
	}
	if (inet_pton(AF_INET, buf, &a) != 1)
		return cfg_error(ctx, path, "'%s' is not an IPv4 address or prefix",
				 item->valuestring);
	addr = rte_be_to_cpu_32(a.s_addr);
	mask = len ? UINT32_MAX << (32 - len) : 0;
	/* 10.1.2.3/8 is a typo or a misunderstanding; matching 10.0.0.0/8 would hide it */
	if (addr & ~mask)
		return cfg_error(ctx, path, "'%s' has bits set past the /%lu prefix",
				 item->valuestring, len);
	out[0] = addr;
	out[1] = (uint32_t)len;
	return 0;
}

/* "any", "tcp", "udp", "icmp" or a protocol number 0..255. */
static int acl_parse_proto(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			   const struct cfg_key *key)
{
	static const struct {
		const char *name;
		uint32_t value;
	} names[] = {{"tcp", IPPROTO_TCP}, {"udp", IPPROTO_UDP}, {"icmp", IPPROTO_ICMP}};
	uint32_t *out = (uint32_t *)((char *)dst + key->offset); /* [0] value, [1] mask */

	if (cJSON_IsNumber(item)) {
		double v = item->valuedouble;

		if (v < 0 || v > 255 || v != (double)(int)v)
			return cfg_error(ctx, path, "protocol number %g is not in 0..255", v);
		out[0] = (uint32_t)v;
		out[1] = 0xff;
		return 0;
	}
	if (!cJSON_IsString(item))
		return cfg_error(ctx, path, "expected tcp, udp, icmp, any or a protocol number");
	if (strcmp(item->valuestring, "any") == 0) {
		out[0] = 0;
		out[1] = 0;
		return 0;
	}
	for (size_t i = 0; i < RTE_DIM(names); i++) {
		if (strcmp(item->valuestring, names[i].name) == 0) {
			out[0] = names[i].value;
			out[1] = 0xff;
			return 0;
		}
	}
	return cfg_error(ctx, path, "unknown protocol '%s' (tcp, udp, icmp, any or 0..255)",
			 item->valuestring);
}

static int acl_port_number(const char *s, char **end, uint32_t *out)
{
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, end, 10);
	if (errno || v > UINT16_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* A port 0..65535, "lo-hi", or "any". */
static int acl_parse_ports(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			   const struct cfg_key *key)
{
	uint32_t *out = (uint32_t *)((char *)dst + key->offset); /* [0] lo, [1] hi */
	const char *s;
	char *end;

	if (cJSON_IsNumber(item)) {
		double v = item->valuedouble;

		if (v < 0 || v > UINT16_MAX || v != (double)(int)v)
			return cfg_error(ctx, path, "port %g is not in 0..65535", v);
		out[0] = (uint32_t)v;
		out[1] = (uint32_t)v;
		return 0;
	}
	if (!cJSON_IsString(item))
		return cfg_error(ctx, path, "expected a port, \"lo-hi\" or \"any\"");
	s = item->valuestring;
	if (strcmp(s, "any") == 0) {
		out[0] = 0;
		out[1] = UINT16_MAX;
		return 0;
	}
	if (acl_port_number(s, &end, &out[0]))
		goto bad;
	if (*end == '\0') {
		out[1] = out[0];
		return 0;
	}
	if (*end != '-' || acl_port_number(end + 1, &end, &out[1]) || *end != '\0')
		goto bad;
	if (out[0] > out[1])
		return cfg_error(ctx, path, "range '%s' ends before it starts", s);
	return 0;
bad:
	return cfg_error(ctx, path, "'%s' is not a port, a range lo-hi within 0..65535, or any", s);
}

static const struct cfg_key acl_rule_keys[] = {
	{.name = "src", .parse = acl_parse_cidr, .offset = offsetof(struct acl_rule_cfg, src)},
	{.name = "dst", .parse = acl_parse_cidr, .offset = offsetof(struct acl_rule_cfg, dst)},
	{.name = "proto", .parse = acl_parse_proto, .offset = offsetof(struct acl_rule_cfg, proto)},
	{.name = "sport", .parse = acl_parse_ports, .offset = offsetof(struct acl_rule_cfg, sport)},
	{.name = "dport", .parse = acl_parse_ports, .offset = offsetof(struct acl_rule_cfg, dport)},
	CFG_KEY_ENUM("action", struct acl_rule_cfg, action, true, acl_action_names),
	CFG_KEY_END,
};

static int acl_parse_rules(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			   const struct cfg_key *key)
{
	struct acl_cfg *c = (struct acl_cfg *)((char *)dst + key->offset);
	const cJSON *rule;
	char rpath[256];
	int n, i = 0, rc;

	if (!cJSON_IsArray(item))
		return cfg_error(ctx, path, "expected an array of rule objects");
	n = cJSON_GetArraySize(item);
	if (n > ACL_MAX_RULES)
		return cfg_error(ctx, path, "%d rules, at most %d", n, ACL_MAX_RULES);
	free(c->rules);
	c->rules = calloc(n ? (size_t)n : 1, sizeof(*c->rules));
	c->nb_rules = 0;
	if (!c->rules)
		return cfg_error(ctx, path, "out of memory for %d rules", n);
	cJSON_ArrayForEach (rule, item) {
		struct acl_rule_cfg *r = &c->rules[i];

		/* an absent field matches anything */
		r->sport.hi = UINT16_MAX;
		r->dport.hi = UINT16_MAX;
		rc = cfg_parse_object(ctx, cfg_index(rpath, sizeof(rpath), path, i), rule,
				      acl_rule_keys, r);
		if (rc)
			return rc;
		i++;
	}
	c->nb_rules = (uint32_t)i;
	return 0;
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
	rte_acl_free(acl->ctx);
	rte_free(acl->rule_action);
	rte_free(acl->rule_hits);
	rte_free(acl);
}

static void acl_rule_from_cfg(const struct acl_rule_cfg *r, uint32_t i, uint32_t nb_rules,
			      struct acl_rule *out)
{
	memset(out, 0, sizeof(*out));
	out->data.category_mask = 1;
	/* rte_acl keeps the highest priority among matches: rule 0 must win */
	out->data.priority = (int32_t)(nb_rules - i);
	out->data.userdata = i + 1; /* 0 means "no match" to rte_acl */
	out->field[ACL_F_PROTO].value.u8 = (uint8_t)r->proto.value;
	out->field[ACL_F_PROTO].mask_range.u8 = (uint8_t)r->proto.mask;
	out->field[ACL_F_SRC].value.u32 = r->src.addr;
	out->field[ACL_F_SRC].mask_range.u32 = r->src.len;
	out->field[ACL_F_DST].value.u32 = r->dst.addr;
	out->field[ACL_F_DST].mask_range.u32 = r->dst.len;
	out->field[ACL_F_SPORT].value.u16 = (uint16_t)r->sport.lo;
	out->field[ACL_F_SPORT].mask_range.u16 = (uint16_t)r->sport.hi;
	out->field[ACL_F_DPORT].value.u16 = (uint16_t)r->dport.lo;
	out->field[ACL_F_DPORT].mask_range.u16 = (uint16_t)r->dport.hi;
}

static int acl_build(struct acl_inst *acl, const struct acl_cfg *c, const struct nf_module_env *env)
{
	struct rte_acl_config build = {.num_categories = 1, .num_fields = ACL_F_NUM};
	char name[RTE_ACL_NAMESIZE];
	struct rte_acl_param param = {
		.name = nf_instance_name(name, sizeof(name), "acl", env->lcore_id),
		.socket_id = (int)env->socket_id,
		.rule_size = RTE_ACL_RULE_SZ(ACL_F_NUM),
		.max_rule_num = c->nb_rules,
	};
	int rc;

	acl->ctx = rte_acl_create(&param);
	if (!acl->ctx) {
		rc = -rte_errno;
		NEMO_ERR("nf", "acl on lcore %u: rte_acl_create %s: %s", env->lcore_id, name,
			 rte_strerror(rte_errno));
		return rc ? rc : -ENOMEM;
	}
	for (uint32_t i = 0; i < c->nb_rules; i++) {
		struct acl_rule r;

		acl_rule_from_cfg(&c->rules[i], i, c->nb_rules, &r);
		rc = rte_acl_add_rules(acl->ctx, (const struct rte_acl_rule *)&r, 1);
		if (rc) {
			NEMO_ERR("nf", "acl on lcore %u: adding rule %u: %s", env->lcore_id, i,
				 strerror(-rc));
			return rc;
		}
	}
	memcpy(build.defs, acl_field_defs, sizeof(acl_field_defs));
	rc = rte_acl_build(acl->ctx, &build);
	if (rc)
		NEMO_ERR("nf", "acl on lcore %u: building %u rules: %s", env->lcore_id, c->nb_rules,
			 strerror(-rc));
	return rc;
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
		rc = acl_build(acl, &c, env);
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
	uint16_t kept = 0;

	(void)now_tsc;
	for (uint16_t base = 0; base < nb_pkts; base += ACL_CHUNK) {
		uint16_t n = RTE_MIN((uint16_t)ACL_CHUNK, (uint16_t)(nb_pkts - base)), nb_ip = 0;
		struct acl_key keys[ACL_CHUNK];
		const uint8_t *data[ACL_CHUNK];
		uint32_t results[ACL_CHUNK];

		for (uint16_t j = 0; j < n; j++) {
			struct rte_mbuf *m = pkts[base + j];
			struct nf_flow_key k;

			if (!nf_pkt_is_ipv4(m))
				continue;
			nf_flow_key_from_pkt(m, &k);
			keys[nb_ip] = (struct acl_key){
				.proto = k.proto,
				.src_ip = k.src_ip,
				.dst_ip = k.dst_ip,
				.src_port = k.src_port,
				.dst_port = k.dst_port,
			};
			data[nb_ip] = (const uint8_t *)&keys[nb_ip];
			results[nb_ip] = 0;
			nb_ip++;
		}
		if (acl->ctx && nb_ip)
			rte_acl_classify(acl->ctx, data, results, nb_ip, 1);

		nb_ip = 0;
		for (uint16_t j = 0; j < n; j++) {
			struct rte_mbuf *m = pkts[base + j];
			int action = acl->default_action;

			/* non-IPv4 frames (ARP, ...) carry no 5-tuple: only the default applies */
			if (nf_pkt_is_ipv4(m) && results[nb_ip++]) {
				uint32_t rule = results[nb_ip - 1] - 1;

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
