/* mod_monitor.c - the monitor module: per-flow packet and byte counters, top flows by bytes. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include "nemo/log.h"
#include "nf_internal.h"

#define MON_MAX_FLOWS (1u << 24)
#define MON_TOP	      16
#define MON_CHUNK     RTE_HASH_LOOKUP_BULK_MAX

struct mon_cfg {
	uint32_t max_flows;
};

struct mon_flow {
	struct nf_flow_key key;
	uint64_t pkts;
	uint64_t bytes;
};

struct mon_inst {
	struct rte_hash *index; /* 5-tuple -> slot in flows[] */
	struct mon_flow *flows; /* [max_flows], filled in order of first sight, never freed */
	uint32_t nb_flows;
	uint32_t max_flows;
	struct nf_monitor_totals totals; /* .flows is filled on read */
};

static const struct cfg_key mon_keys[] = {
	NF_CFG_KEY_MODULE,
	CFG_KEY_RANGE("max_flows", cfg_parse_u32, struct mon_cfg, max_flows, false, 1,
		      MON_MAX_FLOWS),
	CFG_KEY_END,
};

static void mon_destroy(void *inst)
{
	struct mon_inst *mon = inst;

	if (!mon)
		return;
	rte_hash_free(mon->index);
	rte_free(mon->flows);
	rte_free(mon);
}

static void *mon_create(struct cfg_ctx *ctx, const char *path, const cJSON *cfg,
			const struct nf_module_env *env)
{
	struct mon_cfg c = {.max_flows = 65536};
	struct rte_hash_parameters hp = {0};
	int socket = (int)env->socket_id;
	struct mon_inst *mon = NULL;
	char name[RTE_HASH_NAMESIZE];
	int rc = -EINVAL;

	if (cfg_parse_object(ctx, path, cfg, mon_keys, &c))
		goto fail;
	rc = -ENOMEM;
	mon = rte_zmalloc_socket("nf_monitor", sizeof(*mon), RTE_CACHE_LINE_SIZE, socket);
	if (!mon)
		goto fail;
	mon->max_flows = c.max_flows;
	mon->flows = rte_zmalloc_socket("nf_monitor", (size_t)c.max_flows * sizeof(*mon->flows),
					RTE_CACHE_LINE_SIZE, socket);
	if (!mon->flows) {
		NEMO_ERR("nf", "monitor on lcore %u: cannot allocate %u flows", env->lcore_id,
			 c.max_flows);
		goto fail;
	}
	hp.name = nf_instance_name(name, sizeof(name), "mon", env->lcore_id);
	hp.entries = RTE_MAX(c.max_flows, 8u); /* rte_hash's minimum is one bucket */
	hp.key_len = sizeof(struct nf_flow_key);
	hp.hash_func = rte_hash_crc;
	hp.socket_id = socket;
	/* the extendable table holds all max_flows keys whatever the collisions */
	hp.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
	mon->index = rte_hash_create(&hp);
	if (!mon->index) {
		rc = rte_errno ? -rte_errno : -ENOMEM;
		NEMO_ERR("nf", "monitor on lcore %u: rte_hash_create %s (%u entries): %s",
			 env->lcore_id, name, hp.entries, rte_strerror(-rc));
		goto fail;
	}
	NEMO_INFO("nf", "monitor on lcore %u: up to %u flows", env->lcore_id, c.max_flows);
	return mon;
fail:
	mon_destroy(mon);
	errno = -rc;
	return NULL;
}

/* A flow seen for the first time: take the next slot, or count it as overflow. */
static struct mon_flow *mon_add(struct mon_inst *mon, const struct nf_flow_key *key)
{
	void *data;

	/* an earlier packet of this burst may have added it after the bulk lookup */
	if (rte_hash_lookup_data(mon->index, key, &data) >= 0)
		return &mon->flows[(uintptr_t)data];
	if (mon->nb_flows >= mon->max_flows ||
	    rte_hash_add_key_data(mon->index, key, (void *)(uintptr_t)mon->nb_flows) < 0)
		return NULL;
	mon->flows[mon->nb_flows].key = *key;
	return &mon->flows[mon->nb_flows++];
}

static uint16_t mon_process(void *inst, struct rte_mbuf **pkts, uint16_t nb_pkts, uint64_t now_tsc,
			    uint64_t drops[NF_DROP_REASONS])
{
	struct mon_inst *mon = inst;

	(void)now_tsc;
	(void)drops;
	for (uint16_t base = 0; base < nb_pkts; base += MON_CHUNK) {
		uint16_t n = RTE_MIN((uint16_t)MON_CHUNK, (uint16_t)(nb_pkts - base)), nb_ip = 0;
		struct nf_flow_key keys[MON_CHUNK];
		const void *kp[MON_CHUNK];
		void *data[MON_CHUNK];
		uint64_t hits = 0;

		for (uint16_t j = 0; j < n; j++) {
			struct rte_mbuf *m = pkts[base + j];

			if (!nf_pkt_is_ipv4(m)) {
				mon->totals.other_pkts++;
				mon->totals.other_bytes += m->pkt_len;
				continue;
			}
			nf_flow_key_from_pkt(m, &keys[nb_ip]);
			kp[nb_ip] = &keys[nb_ip];
			nb_ip++;
		}
		if (nb_ip)
			rte_hash_lookup_bulk_data(mon->index, kp, nb_ip, &hits, data);

		nb_ip = 0;
		for (uint16_t j = 0; j < n; j++) {
			struct rte_mbuf *m = pkts[base + j];
			struct mon_flow *f;
			uint16_t k;

			if (!nf_pkt_is_ipv4(m))
				continue;
			k = nb_ip++;
			if (hits & (1ull << k))
				f = &mon->flows[(uintptr_t)data[k]];
			else
				f = mon_add(mon, &keys[k]);
			if (unlikely(!f)) {
				mon->totals.overflow_pkts++;
				mon->totals.overflow_bytes += m->pkt_len;
				continue;
			}
			f->pkts++;
			f->bytes += m->pkt_len;
		}
	}
	return nb_pkts;
}

int nf_monitor_flow_counters(void *inst, const struct nf_flow_key *key, uint64_t *pkts,
			     uint64_t *bytes)
{
	struct mon_inst *mon = inst;
	void *data;

	if (!mon || !key || !pkts || !bytes)
		return -EINVAL;
	if (rte_hash_lookup_data(mon->index, key, &data) < 0)
		return -ENOENT;
	*pkts = mon->flows[(uintptr_t)data].pkts;
	*bytes = mon->flows[(uintptr_t)data].bytes;
	return 0;
}

int nf_monitor_totals(void *inst, struct nf_monitor_totals *out)
{
	const struct mon_inst *mon = inst;

	if (!mon || !out)
		return -EINVAL;
	*out = mon->totals;
	out->flows = mon->nb_flows;
	return 0;
}

static const char *mon_proto_name(uint8_t proto, char *buf, size_t len)
{
	switch (proto) {
	case IPPROTO_TCP:
		return "tcp";
	case IPPROTO_UDP:
		return "udp";
	case IPPROTO_ICMP:
		return "icmp";
	default:
		snprintf(buf, len, "proto%u", proto);
		return buf;
	}
}

/*
 * Flows as strings ("udp 10.0.0.1:1000>10.0.0.2:53 pkts=3 bytes=180"): a list of strings is
 * one telemetry container level, so it nests wherever the caller puts this dict.
 */
static void mon_flow_string(const struct mon_flow *f, char *buf, size_t len)
{
	char src[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN], proto[16];

	inet_ntop(AF_INET, &f->key.src_ip, src, sizeof(src));
	inet_ntop(AF_INET, &f->key.dst_ip, dst, sizeof(dst));
	snprintf(buf, len, "%s %s:%u>%s:%u pkts=%" PRIu64 " bytes=%" PRIu64,
		 mon_proto_name(f->key.proto, proto, sizeof(proto)), src,
		 rte_be_to_cpu_16(f->key.src_port), dst, rte_be_to_cpu_16(f->key.dst_port), f->pkts,
		 f->bytes);
}

static void mon_telemetry(void *inst, struct rte_tel_data *d)
{
	const struct mon_inst *mon = inst;
	const struct mon_flow *top[MON_TOP];
	unsigned int nb_top = 0;
	struct rte_tel_data *list;
	char line[RTE_TEL_MAX_STRING_LEN];

	rte_tel_data_add_dict_u64(d, "flows", mon->nb_flows);
	rte_tel_data_add_dict_u64(d, "max_flows", mon->max_flows);
	rte_tel_data_add_dict_u64(d, "overflow_pkts", mon->totals.overflow_pkts);
	rte_tel_data_add_dict_u64(d, "overflow_bytes", mon->totals.overflow_bytes);
	rte_tel_data_add_dict_u64(d, "other_pkts", mon->totals.other_pkts);
	rte_tel_data_add_dict_u64(d, "other_bytes", mon->totals.other_bytes);

	/* insertion into a sorted array of 16: one pass over the flows, no allocation */
	for (uint32_t i = 0; i < mon->nb_flows; i++) {
		const struct mon_flow *f = &mon->flows[i];
		unsigned int pos = nb_top;

		if (nb_top == MON_TOP && f->bytes <= top[MON_TOP - 1]->bytes)
			continue;
		if (nb_top < MON_TOP)
			nb_top++;
		else
			pos = MON_TOP - 1;
		while (pos > 0 && top[pos - 1]->bytes < f->bytes) {
			top[pos] = top[pos - 1];
			pos--;
		}
		top[pos] = f;
	}
	list = rte_tel_data_alloc();
	if (!list)
		return;
	rte_tel_data_start_array(list, RTE_TEL_STRING_VAL);
	for (unsigned int i = 0; i < nb_top; i++) {
		mon_flow_string(top[i], line, sizeof(line));
		rte_tel_data_add_array_string(list, line);
	}
	if (rte_tel_data_add_dict_container(d, "top_flows", list, 0))
		rte_tel_data_free(list);
}

const struct nf_module_ops nf_mod_monitor_ops = {
	.name = "monitor",
	.create = mon_create,
	.process = mon_process,
	.destroy = mon_destroy,
	.telemetry = mon_telemetry,
};
