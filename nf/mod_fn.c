/* mod_fn.c - the fn module: hand packets that match 5-tuple rules to functions through rings. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_malloc.h>

#include "fn_internal.h"
#include "nemo/log.h"
#include "nf_internal.h"

#define FN_MAX_FUNCTIONS 16
#define FN_MAX_RULES	 1024
#define FN_META_FACTOR	 4 /* request metadata kept for 4 rings' worth of sequence numbers */
#define FN_UDP_HDRS	 (sizeof(struct rte_ipv4_hdr) + sizeof(struct rte_udp_hdr))
#define FN_REPLY_HDRS	 (sizeof(struct rte_ether_hdr) + FN_UDP_HDRS)

enum fn_payload {
	FN_PAYLOAD_UDP = 0,
	FN_PAYLOAD_FRAME = 1,
};
enum fn_on_full {
	FN_FULL_DROP = 0,
	FN_FULL_PASS = 1,
};
enum fn_next {
	FN_NEXT_STOP = 0,
	FN_NEXT_CONTINUE = 1,
};

static const char *const fn_payload_names[] = {"udp", "frame", NULL};
static const char *const fn_on_full_names[] = {"drop", "pass", NULL};
static const char *const fn_next_names[] = {"stop", "continue", NULL};

struct fn_function_cfg {
	char name[FN_RING_NAME_MAX];
	uint32_t slots;
	uint32_t slot_size;
};

struct fn_rule_cfg {
	struct nf_match_rule match; /* first: nf_match_build() reads it there */
	char function[FN_RING_NAME_MAX];
	int payload;
	int on_full;
	int next;
	bool reply;
};

struct fn_cfg {
	uint32_t mtu;
	uint32_t wake_gap_us;
	uint32_t nb_functions;
	struct fn_function_cfg functions[FN_MAX_FUNCTIONS];
	uint32_t nb_rules;
	struct fn_rule_cfg *rules; /* malloc'd while parsing */
};

/* What the NF remembers of a request to address its reply: never read back from the ring. */
struct fn_meta {
	uint64_t seq;
	struct rte_ether_addr src_mac;
	struct rte_ether_addr dst_mac;
	uint32_t src_ip; /* network byte order, as received */
	uint32_t dst_ip;
	uint16_t src_port;
	uint16_t dst_port;
	uint16_t in_port;
	uint8_t tos;
	uint8_t reply; /* the rule allows a reply */
};

struct fn_target {
	struct nf_fn_port port; /* the ring and its lease state */
	struct fn_meta *meta;	/* [nb_slots * FN_META_FACTOR] */
	uint32_t meta_mask;
	uint32_t staged; /* slots filled in this burst, published at its end */
	bool wake_pending;
	bool broken; /* the consumer wrote an index out of range: reset at the next poll */
	uint64_t next_wake_tsc;
	/* counters */
	uint64_t handed;
	uint64_t full;	  /* ring full (drop or pass) */
	uint64_t too_big; /* request longer than a slot (drop or pass, as full) */
	uint64_t replied; /* replies sent */
	uint64_t reply_too_big;
	uint64_t reply_stale; /* replies naming a request the NF no longer knows */
	uint64_t reply_nombuf;
	uint64_t resets;
	uint64_t reset_lost; /* requests discarded by resets */
	uint64_t wakes;
};

struct fn_rule {
	uint16_t target;
	uint8_t frame;
	uint8_t pass_on_full;
	uint8_t stop;
	uint8_t reply;
	uint64_t matched;
};

struct fn_inst {
	/*
	 * A packet whose protocol and destination port no rule can match skips the classifier:
	 * the NF's own traffic pays a table lookup, not rte_acl. A superset of the rules, so
	 * the classifier still decides for every candidate.
	 */
	uint64_t dport_ok[65536 / 64]; /* host byte order; port 0 stands for "not TCP/UDP" */
	uint8_t proto_ok[256];
	struct nf_match match;
	uint32_t nb_rules;
	uint32_t nb_targets;
	uint32_t max_reply; /* UDP payload bytes a reply may carry within the MTU */
	uint64_t wake_gap;  /* cycles between two wake-ups of one ring */
	struct rte_mempool *pool;
	uint64_t *consumed;
	unsigned int lcore_id;
	uint64_t matched;
	uint64_t handed;
	uint64_t dropped; /* fn_full */
	uint64_t passed;  /* full, and on_full pass */
	uint64_t replied;
	uint64_t reply_dropped;
	uint64_t cycles; /* process() on bursts that matched: the lcore's fn_cycles (nf_fn_work) */
	struct fn_rule *rules;
	struct fn_target *targets[FN_MAX_FUNCTIONS];
};

/* ---- config ---- */

static const struct cfg_key fn_function_keys[] = {
	CFG_KEY_STR("name", struct fn_function_cfg, name, true),
	CFG_KEY_RANGE("slots", cfg_parse_u32, struct fn_function_cfg, slots, false,
		      FN_RING_MIN_SLOTS, FN_RING_MAX_SLOTS),
	CFG_KEY_RANGE("slot_size", cfg_parse_u32, struct fn_function_cfg, slot_size, false,
		      FN_RING_MIN_SLOT, FN_RING_MAX_SLOT),
	CFG_KEY_END,
};

static int fn_parse_functions(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			      const struct cfg_key *key)
{
	struct fn_cfg *c = dst;
	const cJSON *f;
	char fpath[256];
	int i = 0, rc;

	(void)key;
	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0)
		return cfg_error(ctx, path,
				 "expected a non-empty array of {name, slots, slot_size}");
	if (cJSON_GetArraySize(item) > FN_MAX_FUNCTIONS)
		return cfg_error(ctx, path, "at most %d functions per fn module", FN_MAX_FUNCTIONS);
	cJSON_ArrayForEach (f, item) {
		struct fn_function_cfg *fc = &c->functions[i];

		cfg_index(fpath, sizeof(fpath), path, i);
		*fc = (struct fn_function_cfg){.slots = 1024, .slot_size = 2048};
		rc = cfg_parse_object(ctx, fpath, f, fn_function_keys, fc);
		if (rc)
			return rc;
		if (fc->slots & (fc->slots - 1) || fc->slot_size & (fc->slot_size - 1))
			return cfg_error(ctx, fpath, "slots and slot_size must be powers of two");
		for (int j = 0; j < i; j++)
			if (strcmp(c->functions[j].name, fc->name) == 0)
				return cfg_error(ctx, fpath, "function '%s' is listed twice",
						 fc->name);
		i++;
	}
	c->nb_functions = (uint32_t)i;
	return 0;
}

static const struct cfg_key fn_rule_keys[] = {
	NF_MATCH_CFG_KEYS(struct fn_rule_cfg, match),
	CFG_KEY_STR("function", struct fn_rule_cfg, function, true),
	CFG_KEY_ENUM("payload", struct fn_rule_cfg, payload, false, fn_payload_names),
	CFG_KEY_ENUM("on_full", struct fn_rule_cfg, on_full, false, fn_on_full_names),
	CFG_KEY_ENUM("next", struct fn_rule_cfg, next, false, fn_next_names),
	CFG_KEY("reply", cfg_parse_bool, struct fn_rule_cfg, reply, false),
	CFG_KEY_END,
};

static int fn_parse_rules(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
			  const struct cfg_key *key)
{
	static const struct fn_rule_cfg defaults = {
		.payload = FN_PAYLOAD_UDP, .on_full = FN_FULL_DROP, .next = FN_NEXT_STOP};
	struct fn_cfg *c = dst;
	void *rules = c->rules;
	int rc;

	(void)key;
	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) == 0)
		return cfg_error(ctx, path, "expected a non-empty array of rule objects");
	rc = nf_match_parse_rules(ctx, path, item, FN_MAX_RULES, fn_rule_keys, &defaults,
				  sizeof(defaults), &rules, &c->nb_rules);
	c->rules = rules;
	return rc;
}

static const struct cfg_key fn_keys[] = {
	NF_CFG_KEY_MODULE,
	{.name = "functions", .parse = fn_parse_functions, .required = true},
	{.name = "rules", .parse = fn_parse_rules, .required = true},
	CFG_KEY_RANGE("mtu", cfg_parse_u32, struct fn_cfg, mtu, false, 68, 9000),
	CFG_KEY_RANGE("wake_gap_us", cfg_parse_u32, struct fn_cfg, wake_gap_us, false, 0, 100000),
	CFG_KEY_END,
};

/* The cross-field rules: every rule names a listed function; udp payloads and replies need udp. */
static int fn_check(struct cfg_ctx *ctx, const char *path, const struct fn_cfg *c)
{
	char rpath[256], fpath[288], known[FN_MAX_FUNCTIONS * (FN_RING_NAME_MAX + 2)] = "";

	for (uint32_t f = 0; f < c->nb_functions; f++)
		snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
			 f ? ", " : "", c->functions[f].name);
	for (uint32_t i = 0; i < c->nb_rules; i++) {
		const struct fn_rule_cfg *r = &c->rules[i];
		bool found = false,
		     udp = r->match.proto.mask == 0xff && r->match.proto.value == IPPROTO_UDP;

		cfg_index(rpath, sizeof(rpath), path, (int)i);
		for (uint32_t f = 0; f < c->nb_functions; f++)
			found |= strcmp(c->functions[f].name, r->function) == 0;
		if (!found)
			return cfg_error(ctx, cfg_join(fpath, sizeof(fpath), rpath, "function"),
					 "no function '%s' among this module's functions (%s)",
					 r->function, known);
		if (r->payload == FN_PAYLOAD_UDP && !udp)
			return cfg_error(
				ctx, rpath,
				"payload 'udp' needs \"proto\": \"udp\" (or payload 'frame')");
		if (r->reply && !udp)
			return cfg_error(ctx, rpath,
					 "replies go back as UDP: \"reply\": true "
					 "needs \"proto\": \"udp\"");
	}
	return 0;
}

/* ---- life cycle ---- */

static void fn_destroy(void *inst)
{
	struct fn_inst *fn = inst;

	if (!fn)
		return;
	if (fn->rules)
		NEMO_INFO("nf",
			  "fn on lcore %u: matched %lu, handed %lu, dropped %lu, passed %lu, "
			  "replied %lu, reply_dropped %lu",
			  fn->lcore_id, (unsigned long)fn->matched, (unsigned long)fn->handed,
			  (unsigned long)fn->dropped, (unsigned long)fn->passed,
			  (unsigned long)fn->replied, (unsigned long)fn->reply_dropped);
	for (uint32_t t = 0; t < fn->nb_targets; t++) {
		const struct fn_target *x = fn->targets[t];

		NEMO_INFO(
			"nf",
			"fn on lcore %u, function '%s': handed %lu full %lu too_big %lu replied %lu "
			"reply_too_big %lu reply_stale %lu resets %lu reset_lost %lu wakes %lu",
			fn->lcore_id, x->port.function, (unsigned long)x->handed,
			(unsigned long)x->full, (unsigned long)x->too_big,
			(unsigned long)x->replied, (unsigned long)x->reply_too_big,
			(unsigned long)x->reply_stale, (unsigned long)x->resets,
			(unsigned long)x->reset_lost, (unsigned long)x->wakes);
	}
	nf_match_free(&fn->match);
	for (uint32_t t = 0; t < fn->nb_targets; t++) {
		fn_ring_close(&fn->targets[t]->port.ring);
		rte_free(fn->targets[t]->meta);
		rte_free(fn->targets[t]);
	}
	rte_free(fn->rules);
	rte_free(fn);
}

static struct fn_target *fn_target_create(const struct fn_function_cfg *f, uint32_t flags,
					  const struct nf_module_env *env)
{
	int socket = (int)env->socket_id;
	struct fn_target *t;

	t = rte_zmalloc_socket("nf_fn", sizeof(*t), RTE_CACHE_LINE_SIZE, socket);
	if (!t)
		return NULL;
	if (fn_ring_create(&t->port.ring, f->name, env->lcore_id, f->slots, f->slot_size, flags))
		goto fail;
	snprintf(t->port.function, sizeof(t->port.function), "%s", f->name);
	t->port.lcore_id = env->lcore_id;
	t->port.lease_fd = -1;
	t->meta_mask = f->slots * FN_META_FACTOR - 1;
	t->meta = rte_zmalloc_socket("nf_fn", sizeof(*t->meta) * (t->meta_mask + 1),
				     RTE_CACHE_LINE_SIZE, socket);
	if (!t->meta)
		goto fail;
	/* no request has sequence number UINT64_MAX: a reply naming an unused entry is stale */
	for (uint32_t i = 0; i <= t->meta_mask; i++)
		t->meta[i].seq = UINT64_MAX;
	return t;
fail:
	fn_ring_close(&t->port.ring);
	rte_free(t);
	return NULL;
}

static void *fn_create(struct cfg_ctx *ctx, const char *path, const cJSON *cfg,
		       const struct nf_module_env *env)
{
	struct fn_cfg c = {.mtu = 1500, .wake_gap_us = 10};
	struct fn_inst *fn = NULL;
	char rpath[256];
	int rc = -EINVAL;

	if (cfg_parse_object(ctx, path, cfg, fn_keys, &c))
		goto fail;
	if (fn_check(ctx, cfg_join(rpath, sizeof(rpath), path, "rules"), &c))
		goto fail;
	if (!env->fn_hub || !env->pool || !env->consumed_pkts) {
		NEMO_ERR("nf", "fn on lcore %u: no lease server, mbuf pool or counter given",
			 env->lcore_id);
		goto fail;
	}
	rc = -ENOMEM;
	fn = rte_zmalloc_socket("nf_fn", sizeof(*fn), RTE_CACHE_LINE_SIZE, (int)env->socket_id);
	if (!fn)
		goto fail;
	fn->rules = rte_zmalloc_socket("nf_fn", sizeof(*fn->rules) * c.nb_rules,
				       RTE_CACHE_LINE_SIZE, (int)env->socket_id);
	if (!fn->rules)
		goto fail;
	fn->nb_rules = c.nb_rules;
	fn->pool = env->pool;
	fn->consumed = env->consumed_pkts;
	fn->lcore_id = env->lcore_id;
	fn->max_reply = c.mtu - (uint32_t)FN_UDP_HDRS;
	fn->wake_gap = rte_get_tsc_hz() / 1000000 * c.wake_gap_us;
	for (uint32_t f = 0; f < c.nb_functions; f++) {
		uint32_t flags = FN_SLOT_F_FRAME;

		/* the ring says "frames" when every rule for the function passes frames */
		for (uint32_t i = 0; i < c.nb_rules; i++)
			if (strcmp(c.rules[i].function, c.functions[f].name) == 0 &&
			    c.rules[i].payload != FN_PAYLOAD_FRAME)
				flags = 0;
		fn->targets[f] = fn_target_create(&c.functions[f], flags, env);
		if (!fn->targets[f]) {
			rc = errno ? -errno : -ENOMEM;
			goto fail;
		}
		fn->nb_targets = f + 1;
		rc = nf_fn_hub_add(env->fn_hub, &fn->targets[f]->port);
		if (rc)
			goto fail;
	}
	for (uint32_t i = 0; i < c.nb_rules; i++) {
		struct fn_rule *r = &fn->rules[i];

		for (uint32_t f = 0; f < c.nb_functions; f++)
			if (strcmp(c.rules[i].function, c.functions[f].name) == 0)
				r->target = (uint16_t)f;
		r->frame = c.rules[i].payload == FN_PAYLOAD_FRAME;
		r->pass_on_full = c.rules[i].on_full == FN_FULL_PASS;
		r->stop = c.rules[i].next == FN_NEXT_STOP;
		r->reply = c.rules[i].reply;
	}
	for (uint32_t i = 0; i < c.nb_rules; i++) {
		const struct nf_match_rule *m = &c.rules[i].match;

		for (uint32_t p = 0; p < 256; p++)
			if ((p & m->proto.mask) == (m->proto.value & m->proto.mask))
				fn->proto_ok[p] = 1;
		for (uint32_t p = m->dport.lo; p <= m->dport.hi; p++)
			fn->dport_ok[p / 64] |= 1ull << (p % 64);
	}
	rc = nf_match_build(&fn->match, "fn", c.rules, sizeof(*c.rules), c.nb_rules, env);
	if (rc)
		goto fail;
	NEMO_INFO("nf", "fn on lcore %u: %u rules to %u functions, mtu %u", env->lcore_id,
		  c.nb_rules, c.nb_functions, c.mtu);
	free(c.rules);
	return fn;
fail:
	free(c.rules);
	fn_destroy(fn);
	errno = -rc;
	return NULL;
}

/* ---- packet path ---- */

/* A packet in several segments: rte_pktmbuf_read() copies it, or points into one segment. */
static void fn_copy_segments(const struct rte_mbuf *m, uint32_t off, uint32_t len, uint8_t *dst)
{
	const void *src = rte_pktmbuf_read(m, off, len, dst);

	if (src && src != dst)
		rte_memcpy(dst, src, len);
}

/* Copy packet `m` into the next free slot of t's ring; false when there is no room. */
static inline bool fn_stage(struct fn_target *t, const struct fn_rule *rule, uint16_t rule_idx,
			    struct rte_mbuf *m)
{
	struct fn_ring *r = &t->port.ring;
	const struct rte_ipv4_hdr *ip = nf_pkt_ipv4(m);
	const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	struct nf_flow_key k;
	uint32_t off, len, room;
	struct fn_slot *s;
	struct fn_meta *meta;

	if (rule->frame) {
		off = 0;
		len = m->pkt_len;
	} else {
		const struct rte_udp_hdr *udp = nf_pkt_l4(m);

		off = m->l2_len + m->l3_len + (uint32_t)sizeof(*udp);
		len = rte_be_to_cpu_16(udp->dgram_len) - (uint32_t)sizeof(*udp);
	}
	if (unlikely(len > r->data_cap)) {
		t->too_big++;
		return false;
	}
	room = fn_ring_prod_free(r, t->staged + 1);
	if (unlikely(room == UINT32_MAX)) {
		t->broken = true;
		return false;
	}
	if (room <= t->staged) {
		t->full++;
		return false;
	}
	nf_flow_key_from_pkt(m, &k);
	s = fn_ring_prod_slot(r, t->staged);
	s->seq = r->seq + t->staged;
	s->len = len;
	s->flags = (uint16_t)((rule->frame ? FN_SLOT_F_FRAME : 0) |
			      (rule->reply ? FN_SLOT_F_REPLY : 0));
	s->rule = rule_idx;
	s->src_ip = k.src_ip;
	s->dst_ip = k.dst_ip;
	s->src_port = k.src_port;
	s->dst_port = k.dst_port;
	s->proto = k.proto;
	if (likely(off + len <= m->data_len))
		rte_memcpy(s->data, rte_pktmbuf_mtod_offset(m, const uint8_t *, off), len);
	else
		fn_copy_segments(m, off, len, s->data);
	if (rule->reply) {
		meta = &t->meta[s->seq & t->meta_mask];
		meta->seq = s->seq;
		meta->src_mac = eth->src_addr;
		meta->dst_mac = eth->dst_addr;
		meta->src_ip = k.src_ip;
		meta->dst_ip = k.dst_ip;
		meta->src_port = k.src_port;
		meta->dst_port = k.dst_port;
		meta->in_port = m->port;
		meta->tos = ip->type_of_service;
		meta->reply = 1;
	}
	t->staged++;
	t->handed++;
	return true;
}

static inline void fn_wake(struct fn_target *t, uint64_t now_tsc, uint64_t gap)
{
	if (now_tsc < t->next_wake_tsc) {
		t->wake_pending = true; /* sent by the next poll, or before the lcore sleeps */
		return;
	}
	t->wake_pending = false;
	if (fn_ring_wake(&t->port.ring)) {
		t->wakes++;
		t->next_wake_tsc = now_tsc + gap;
	}
}

/* Could any rule match m? (The prefilter: see struct fn_inst.) */
static inline bool fn_candidate(const struct fn_inst *fn, struct rte_mbuf *m)
{
	const struct rte_ipv4_hdr *ip;
	uint32_t l4, dport = 0;

	if (!nf_pkt_is_ipv4(m))
		return false;
	ip = nf_pkt_ipv4(m);
	if (!fn->proto_ok[ip->next_proto_id])
		return false;
	l4 = nf_pkt_l4_type(m);
	if (l4 == RTE_PTYPE_L4_TCP || l4 == RTE_PTYPE_L4_UDP)
		dport = rte_be_to_cpu_16(((const struct rte_udp_hdr *)nf_pkt_l4(m))->dst_port);
	return (fn->dport_ok[dport / 64] >> (dport % 64)) & 1;
}

static uint16_t fn_process(void *inst, struct rte_mbuf **pkts, uint16_t nb_pkts, uint64_t now_tsc,
			   uint64_t drops[NF_DROP_REASONS])
{
	struct fn_inst *fn = inst;
	uint32_t results[NF_MATCH_CHUNK];
	struct rte_mbuf *cand[NF_MATCH_CHUNK];
	uint16_t kept = 0;
	uint64_t t0 = 0;
	bool any = false;

	for (uint16_t base = 0; base < nb_pkts; base += NF_MATCH_CHUNK) {
		uint16_t n = RTE_MIN((uint16_t)NF_MATCH_CHUNK, (uint16_t)(nb_pkts - base));
		uint16_t nc = 0, c = 0;

		for (uint16_t j = 0; j < n; j++)
			if (fn_candidate(fn, pkts[base + j]))
				cand[nc++] = pkts[base + j];
		/* the NF's own traffic reads no clock: only a burst with candidates is timed */
		if (nc && !t0)
			t0 = rte_rdtsc();
		if (likely(!nc)) {
			/* the common case for the NF's own traffic: all of it goes on, in place
			 * unless an earlier chunk handed some over */
			if (kept != base)
				memmove(&pkts[kept], &pkts[base], n * sizeof(pkts[0]));
			kept = (uint16_t)(kept + n);
			continue;
		}
		nf_match_classify(&fn->match, cand, nc, results);
		for (uint16_t j = 0; j < n; j++) {
			struct rte_mbuf *m = pkts[base + j];
			const struct fn_rule *rule;
			struct fn_target *t;
			uint32_t res = 0;

			if (c < nc && cand[c] == m)
				res = results[c++];
			if (likely(!res)) {
				pkts[kept++] = m;
				continue;
			}
			rule = &fn->rules[res - 1];
			t = fn->targets[rule->target];
			fn->matched++;
			fn->rules[res - 1].matched++;
			any = true;
			if (fn_stage(t, rule, (uint16_t)(res - 1), m)) {
				fn->handed++;
				if (rule->stop) {
					rte_pktmbuf_free(m);
					(*fn->consumed)++;
				} else {
					pkts[kept++] = m;
				}
			} else if (rule->pass_on_full) {
				fn->passed++;
				pkts[kept++] = m;
			} else {
				fn->dropped++;
				drops[NF_DROP_FN_FULL]++;
				rte_pktmbuf_free(m);
			}
		}
	}
	if (!any)
		return kept;
	for (uint32_t i = 0; i < fn->nb_targets; i++) {
		struct fn_target *t = fn->targets[i];

		if (t->staged && fn_ring_prod_publish(&t->port.ring, t->staged))
			fn_wake(t, now_tsc, fn->wake_gap);
		t->staged = 0;
	}
	fn->cycles += rte_rdtsc() - t0;
	return kept;
}

/* Build the UDP reply to the request `meta` describes, `len` payload bytes from `data`. */
static inline void fn_build_reply(struct rte_mbuf *m, const struct fn_meta *meta,
				  const uint8_t *data, uint32_t len)
{
	uint8_t *p = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(FN_REPLY_HDRS + len));
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)p;
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

	eth->dst_addr = meta->src_mac;
	eth->src_addr = meta->dst_mac;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	*ip = (struct rte_ipv4_hdr){
		.version_ihl = RTE_IPV4_VHL_DEF,
		.type_of_service = meta->tos,
		.total_length = rte_cpu_to_be_16((uint16_t)(FN_UDP_HDRS + len)),
		.fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG),
		.time_to_live = 64,
		.next_proto_id = IPPROTO_UDP,
		.src_addr = meta->dst_ip,
		.dst_addr = meta->src_ip,
	};
	udp->src_port = meta->dst_port;
	udp->dst_port = meta->src_port;
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + len));
	udp->dgram_cksum = 0;
	rte_memcpy(udp + 1, data, len);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
	m->port = meta->in_port;
}

static void fn_reset(struct fn_inst *fn, struct fn_target *t, uint32_t req)
{
	t->reset_lost += fn_ring_reset(&t->port.ring);
	t->resets++;
	t->broken = false;
	t->wake_pending = false;
	__atomic_store_n(&t->port.reset_done, req, __ATOMIC_RELEASE);
	(void)fn;
}

/* Send the replies of one ring, up to max; returns how many went into out[]. */
static inline uint16_t fn_drain(struct fn_inst *fn, struct fn_target *t, struct rte_mbuf **out,
				uint16_t max)
{
	struct fn_ring *r = &t->port.ring;
	uint32_t n = fn_ring_rep_avail(r);
	uint16_t k = 0;

	if (unlikely(n == UINT32_MAX)) {
		t->broken = true;
		return 0;
	}
	if (!n)
		return 0;
	n = RTE_MIN(n, (uint32_t)max);
	if (rte_pktmbuf_alloc_bulk(fn->pool, out, n)) {
		t->reply_nombuf++; /* the replies wait in their ring for the next iteration */
		return 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct fn_slot *s = fn_ring_rep_slot(r, r->rep_tail + i);
		uint64_t seq = s->seq;
		uint32_t len = s->len;
		struct fn_meta *meta = &t->meta[seq & t->meta_mask];

		if (unlikely(s->flags & FN_SLOT_F_TOO_BIG || len > r->data_cap ||
			     len > fn->max_reply)) {
			t->reply_too_big++;
			fn->reply_dropped++;
			continue;
		}
		if (unlikely(meta->seq != seq || !meta->reply)) {
			t->reply_stale++;
			fn->reply_dropped++;
			continue;
		}
		fn_build_reply(out[k++], meta, s->data, len);
		meta->seq = UINT64_MAX; /* one reply per request, however often it is named */
	}
	fn_ring_rep_release(r, n);
	if (k < n)
		rte_pktmbuf_free_bulk(out + k, n - k);
	t->replied += k;
	fn->replied += k;
	return k;
}

static uint16_t fn_poll(void *inst, struct rte_mbuf **out, uint16_t max, uint64_t now_tsc)
{
	struct fn_inst *fn = inst;
	uint16_t k = 0;

	for (uint32_t i = 0; i < fn->nb_targets; i++) {
		struct fn_target *t = fn->targets[i];
		uint32_t req = __atomic_load_n(&t->port.reset_req, __ATOMIC_ACQUIRE);

		if (unlikely(req != t->port.reset_done || t->broken)) {
			fn_reset(fn, t, req);
			continue;
		}
		if (unlikely(t->wake_pending))
			fn_wake(t, now_tsc, fn->wake_gap);
		k += fn_drain(fn, t, out + k, (uint16_t)(max - k));
	}
	return k;
}

static void fn_idle(void *inst, uint64_t now_tsc)
{
	struct fn_inst *fn = inst;

	/* the lcore is about to sleep: a deferred wake-up cannot wait for it */
	for (uint32_t i = 0; i < fn->nb_targets; i++) {
		struct fn_target *t = fn->targets[i];

		if (t->wake_pending) {
			t->next_wake_tsc = 0;
			fn_wake(t, now_tsc, fn->wake_gap);
		}
	}
}

void nf_fn_work(const void *inst, uint64_t *cycles, uint64_t *pkts)
{
	const struct fn_inst *fn = inst;

	*cycles += fn->cycles;
	*pkts += fn->matched;
}

static void fn_telemetry(void *inst, struct rte_tel_data *d)
{
	const struct fn_inst *fn = inst;

	rte_tel_data_add_dict_u64(d, "rules", fn->nb_rules);
	rte_tel_data_add_dict_u64(d, "matched", fn->matched);
	rte_tel_data_add_dict_u64(d, "cycles", fn->cycles);
	rte_tel_data_add_dict_u64(d, "handed", fn->handed);
	rte_tel_data_add_dict_u64(d, "dropped", fn->dropped);
	rte_tel_data_add_dict_u64(d, "passed", fn->passed);
	rte_tel_data_add_dict_u64(d, "replied", fn->replied);
	rte_tel_data_add_dict_u64(d, "reply_dropped", fn->reply_dropped);
	for (uint32_t i = 0; i < fn->nb_targets; i++) {
		const struct fn_target *t = fn->targets[i];
		const struct fn_ring_consumer_stats *cs = &t->port.ring.sh->consumer;
		struct rte_tel_data *f = rte_tel_data_alloc();

		if (!f)
			return;
		rte_tel_data_start_dict(f);
		rte_tel_data_add_dict_u64(f, "leased", nf_fn_port_leased(&t->port));
		rte_tel_data_add_dict_u64(f, "slots", t->port.ring.nb_slots);
		rte_tel_data_add_dict_u64(f, "handed", t->handed);
		rte_tel_data_add_dict_u64(f, "full", t->full);
		rte_tel_data_add_dict_u64(f, "too_big", t->too_big);
		rte_tel_data_add_dict_u64(f, "replied", t->replied);
		rte_tel_data_add_dict_u64(f, "reply_too_big", t->reply_too_big);
		rte_tel_data_add_dict_u64(f, "reply_stale", t->reply_stale);
		rte_tel_data_add_dict_u64(f, "reply_nombuf", t->reply_nombuf);
		rte_tel_data_add_dict_u64(f, "resets", t->resets);
		rte_tel_data_add_dict_u64(f, "reset_lost", t->reset_lost);
		rte_tel_data_add_dict_u64(f, "wakes", t->wakes);
		/* what the consumer says of itself: figures, not trusted for anything */
		rte_tel_data_add_dict_u64(f, "batches", cs->batches);
		rte_tel_data_add_dict_u64(f, "packets", cs->packets);
		rte_tel_data_add_dict_u64(f, "errors", cs->errors);
		if (rte_tel_data_add_dict_container(d, t->port.function, f, 0))
			rte_tel_data_free(f);
	}
}

const struct nf_module_ops nf_mod_fn_ops = {
	.name = "fn",
	.create = fn_create,
	.process = fn_process,
	.destroy = fn_destroy,
	.telemetry = fn_telemetry,
	.poll = fn_poll,
	.idle = fn_idle,
};
