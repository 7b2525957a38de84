/* match.c - 5-tuple rules for the modules that select packets (acl, fn), on rte_acl. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_acl.h>

#include "nemo/log.h"
#include "nf_internal.h"

/*
 * What rte_acl reads per packet, network byte order as in the headers. rte_acl walks the
 * input one byte first and then in groups of 4 bytes (input_index), hence the padding
 * after proto and the two ports sharing one group.
 */
struct nf_match_key {
	uint8_t proto;
	uint8_t pad[3];
	uint32_t src_ip;
	uint32_t dst_ip;
	uint16_t src_port;
	uint16_t dst_port;
};

enum {
	MATCH_F_PROTO,
	MATCH_F_SRC,
	MATCH_F_DST,
	MATCH_F_SPORT,
	MATCH_F_DPORT,
	MATCH_F_NUM
};

RTE_ACL_RULE_DEF(match_rule, MATCH_F_NUM);

static const struct rte_acl_field_def match_field_defs[MATCH_F_NUM] = {
	{.type = RTE_ACL_FIELD_TYPE_BITMASK,
	 .size = sizeof(uint8_t),
	 .field_index = MATCH_F_PROTO,
	 .input_index = 0,
	 .offset = offsetof(struct nf_match_key, proto)},
	{.type = RTE_ACL_FIELD_TYPE_MASK,
	 .size = sizeof(uint32_t),
	 .field_index = MATCH_F_SRC,
	 .input_index = 1,
	 .offset = offsetof(struct nf_match_key, src_ip)},
	{.type = RTE_ACL_FIELD_TYPE_MASK,
	 .size = sizeof(uint32_t),
	 .field_index = MATCH_F_DST,
	 .input_index = 2,
	 .offset = offsetof(struct nf_match_key, dst_ip)},
	{.type = RTE_ACL_FIELD_TYPE_RANGE,
	 .size = sizeof(uint16_t),
	 .field_index = MATCH_F_SPORT,
	 .input_index = 3,
	 .offset = offsetof(struct nf_match_key, src_port)},
	{.type = RTE_ACL_FIELD_TYPE_RANGE,
	 .size = sizeof(uint16_t),
	 .field_index = MATCH_F_DPORT,
	 .input_index = 3,
	 .offset = offsetof(struct nf_match_key, dst_port)},
};

/* "any", "a.b.c.d" or "a.b.c.d/len" with no host bits set. */
int nf_cfg_parse_cidr(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
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
int nf_cfg_parse_proto(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
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

static int match_port_number(const char *s, char **end, uint32_t *out)
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
int nf_cfg_parse_ports(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
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
	if (match_port_number(s, &end, &out[0]))
		goto bad;
	if (*end == '\0') {
		out[1] = out[0];
		return 0;
	}
	if (*end != '-' || match_port_number(end + 1, &end, &out[1]) || *end != '\0')
		goto bad;
	if (out[0] > out[1])
		return cfg_error(ctx, path, "range '%s' ends before it starts", s);
	return 0;
bad:
	return cfg_error(ctx, path, "'%s' is not a port, a range lo-hi within 0..65535, or any", s);
}

void nf_match_rule_init(struct nf_match_rule *r)
{
	memset(r, 0, sizeof(*r));
	/* an absent field matches anything */
	r->sport.hi = UINT16_MAX;
	r->dport.hi = UINT16_MAX;
}

int nf_match_parse_rules(struct cfg_ctx *ctx, const char *path, const cJSON *item, int max,
			 const struct cfg_key *keys, const void *defaults, size_t size,
			 void **rules, uint32_t *nb_rules)
{
	const cJSON *rule;
	char rpath[256];
	int n, i = 0, rc;

	if (!cJSON_IsArray(item))
		return cfg_error(ctx, path, "expected an array of rule objects");
	n = cJSON_GetArraySize(item);
	if (n > max)
		return cfg_error(ctx, path, "%d rules, at most %d", n, max);
	free(*rules);
	*rules = calloc(n ? (size_t)n : 1, size);
	*nb_rules = 0;
	if (!*rules)
		return cfg_error(ctx, path, "out of memory for %d rules", n);
	cJSON_ArrayForEach (rule, item) {
		void *r = (char *)*rules + (size_t)i * size;

		memcpy(r, defaults, size);
		nf_match_rule_init(r);
		rc = cfg_parse_object(ctx, cfg_index(rpath, sizeof(rpath), path, i), rule, keys, r);
		if (rc)
			return rc;
		i++;
	}
	*nb_rules = (uint32_t)i;
	return 0;
}

static void match_rule_to_acl(const struct nf_match_rule *r, uint32_t i, uint32_t nb_rules,
			      struct match_rule *out)
{
	memset(out, 0, sizeof(*out));
	out->data.category_mask = 1;
	/* rte_acl keeps the highest priority among matches: rule 0 must win */
	out->data.priority = (int32_t)(nb_rules - i);
	out->data.userdata = i + 1; /* 0 means "no match" to rte_acl */
	out->field[MATCH_F_PROTO].value.u8 = (uint8_t)r->proto.value;
	out->field[MATCH_F_PROTO].mask_range.u8 = (uint8_t)r->proto.mask;
	out->field[MATCH_F_SRC].value.u32 = r->src.addr;
	out->field[MATCH_F_SRC].mask_range.u32 = r->src.len;
	out->field[MATCH_F_DST].value.u32 = r->dst.addr;
	out->field[MATCH_F_DST].mask_range.u32 = r->dst.len;
	out->field[MATCH_F_SPORT].value.u16 = (uint16_t)r->sport.lo;
	out->field[MATCH_F_SPORT].mask_range.u16 = (uint16_t)r->sport.hi;
	out->field[MATCH_F_DPORT].value.u16 = (uint16_t)r->dport.lo;
	out->field[MATCH_F_DPORT].mask_range.u16 = (uint16_t)r->dport.hi;
}

int nf_match_build(struct nf_match *m, const char *kind, const void *rules, size_t stride,
		   uint32_t nb_rules, const struct nf_module_env *env)
{
	struct rte_acl_config build = {.num_categories = 1, .num_fields = MATCH_F_NUM};
	char name[RTE_ACL_NAMESIZE];
	struct rte_acl_param param = {
		.name = nf_instance_name(name, sizeof(name), kind, env->lcore_id),
		.socket_id = (int)env->socket_id,
		.rule_size = RTE_ACL_RULE_SZ(MATCH_F_NUM),
		.max_rule_num = nb_rules,
	};
	int rc;

	m->ctx = NULL;
	if (!nb_rules)
		return 0;
	m->ctx = rte_acl_create(&param);
	if (!m->ctx) {
		rc = -rte_errno;
		NEMO_ERR("nf", "%s on lcore %u: rte_acl_create %s: %s", kind, env->lcore_id, name,
			 rte_strerror(rte_errno));
		return rc ? rc : -ENOMEM;
	}
	for (uint32_t i = 0; i < nb_rules; i++) {
		const struct nf_match_rule *r =
			(const struct nf_match_rule *)((const char *)rules + i * stride);
		struct match_rule ar;

		match_rule_to_acl(r, i, nb_rules, &ar);
		rc = rte_acl_add_rules(m->ctx, (const struct rte_acl_rule *)&ar, 1);
		if (rc) {
			NEMO_ERR("nf", "%s on lcore %u: adding rule %u: %s", kind, env->lcore_id, i,
				 strerror(-rc));
			return rc;
		}
	}
	memcpy(build.defs, match_field_defs, sizeof(match_field_defs));
	rc = rte_acl_build(m->ctx, &build);
	if (rc)
		NEMO_ERR("nf", "%s on lcore %u: building %u rules: %s", kind, env->lcore_id,
			 nb_rules, strerror(-rc));
	return rc;
}

void nf_match_free(struct nf_match *m)
{
	rte_acl_free(m->ctx);
	m->ctx = NULL;
}

void nf_match_classify(const struct nf_match *m, struct rte_mbuf **pkts, uint16_t nb_pkts,
		       uint32_t *results)
{
	for (uint16_t base = 0; base < nb_pkts; base += NF_MATCH_CHUNK) {
		uint16_t n = RTE_MIN((uint16_t)NF_MATCH_CHUNK, (uint16_t)(nb_pkts - base));
		uint16_t nb_ip = 0, idx[NF_MATCH_CHUNK];
		struct nf_match_key keys[NF_MATCH_CHUNK];
		const uint8_t *data[NF_MATCH_CHUNK];
		uint32_t res[NF_MATCH_CHUNK];

		for (uint16_t j = 0; j < n; j++) {
			struct rte_mbuf *pkt = pkts[base + j];
			struct nf_flow_key k;

			results[base + j] = 0;
			/* non-IPv4 frames (ARP, ...) carry no 5-tuple: no rule matches them */
			if (!m->ctx || !nf_pkt_is_ipv4(pkt))
				continue;
			nf_flow_key_from_pkt(pkt, &k);
			keys[nb_ip] = (struct nf_match_key){
				.proto = k.proto,
				.src_ip = k.src_ip,
				.dst_ip = k.dst_ip,
				.src_port = k.src_port,
				.dst_port = k.dst_port,
			};
			data[nb_ip] = (const uint8_t *)&keys[nb_ip];
			idx[nb_ip] = (uint16_t)(base + j);
			nb_ip++;
		}
		if (!nb_ip)
			continue;
		rte_acl_classify(m->ctx, data, res, nb_ip, 1);
		for (uint16_t j = 0; j < nb_ip; j++)
			results[idx[j]] = res[j];
	}
}
