/* metrics.c - this node's cluster metrics as Prometheus text (nemo_cluster_*), for /metrics. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_internal.h"

struct out {
	char **buf;
	size_t *len, *cap;
	int rc;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->rc)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (!*o->buf || *o->len + (size_t)n + 1 > *o->cap) {
		size_t cap = *o->cap ? *o->cap : 4096;
		char *nb;

		while (cap < *o->len + (size_t)n + 1)
			cap *= 2;
		nb = realloc(*o->buf, cap);
		if (!nb) {
			o->rc = -ENOMEM;
			return;
		}
		*o->buf = nb;
		*o->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(*o->buf + *o->len, *o->cap - *o->len, fmt, ap);
	va_end(ap);
	*o->len += (size_t)n;
}

static void counter(struct out *o, const char *name, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
}

int cl_node_metrics(struct cl_node *n, char **buf, size_t *len, size_t *cap)
{
	struct out o = {buf, len, cap, 0};
	static const char *const kinds[CL_REQ_KINDS] = {"write", "read", "renew"};
	static const int offload_reasons[] = {CL_WHY_LATENCY_DEADLINE, CL_WHY_LATENCY_SOONER,
					      CL_WHY_BATCH_PEER};
	struct cl_stats st;
	uint64_t cum = 0;

	if (!n)
		return 0;
	cl_node_stats(n, &st);
	put(&o,
	    "# HELP nemo_cluster_healthy 1 while this node is in the cluster (its lease renewed, "
	    "etcd reachable): it accepts async calls only then.\n"
	    "# TYPE nemo_cluster_healthy gauge\nnemo_cluster_healthy %d\n",
	    cl_node_healthy(n, NULL));
	put(&o,
	    "# HELP nemo_cluster_nodes_alive Nodes with a live record in etcd, this one included.\n"
	    "# TYPE nemo_cluster_nodes_alive gauge\nnemo_cluster_nodes_alive %u\n",
	    st.nodes_alive);
	counter(&o, "nemo_cluster_offloads_total",
		"Calls sent to a peer (out) or taken from one (in), by the policy's reason.");
	for (int d = 0; d < 2; d++)
		for (size_t i = 0; i < sizeof(offload_reasons) / sizeof(offload_reasons[0]); i++)
			put(&o,
			    "nemo_cluster_offloads_total{direction=\"%s\",reason=\"%s\"} %llu\n",
			    d ? "in" : "out", cl_reason_name(offload_reasons[i]),
			    (unsigned long long)st.offloads[d][offload_reasons[i]]);
	counter(&o, "nemo_cluster_offload_failures_total",
		"Calls sent to a peer that did not answer (they ran here).");
	put(&o, "nemo_cluster_offload_failures_total %llu\n",
	    (unsigned long long)st.offload_failures);
	counter(&o, "nemo_cluster_adoptions_total",
		"Activations of dead nodes taken over: run here (run), ended as interrupted (had "
		"started), or their result delivered to its route (delivered).");
	put(&o, "nemo_cluster_adoptions_total{outcome=\"run\"} %llu\n",
	    (unsigned long long)st.adopted);
	put(&o, "nemo_cluster_adoptions_total{outcome=\"interrupted\"} %llu\n",
	    (unsigned long long)st.interrupted);
	put(&o, "nemo_cluster_adoptions_total{outcome=\"delivered\"} %llu\n",
	    (unsigned long long)st.redelivered);
	counter(&o, "nemo_cluster_activation_records_total",
		"Activation record writes committed, by what they recorded.");
	put(&o,
	    "nemo_cluster_activation_records_total{record=\"accepted\"} %llu\n"
	    "nemo_cluster_activation_records_total{record=\"started\"} %llu\n"
	    "nemo_cluster_activation_records_total{record=\"ended\"} %llu\n"
	    "nemo_cluster_activation_records_total{record=\"delivered\"} %llu\n"
	    "nemo_cluster_activation_records_total{record=\"cancelled\"} %llu\n",
	    (unsigned long long)st.accepted, (unsigned long long)st.started,
	    (unsigned long long)st.ended, (unsigned long long)st.delivered,
	    (unsigned long long)st.cancelled);
	counter(&o, "nemo_cluster_fenced_writes_total",
		"Record writes refused because this node's lease was lost.");
	put(&o, "nemo_cluster_fenced_writes_total %llu\n", (unsigned long long)st.fenced);
	counter(&o, "nemo_cluster_node_records_total",
		"This node's own record written: riding in an activation txn (shared), or alone "
		"(idle: the heartbeat).");
	put(&o,
	    "nemo_cluster_node_records_total{txn=\"shared\"} %llu\n"
	    "nemo_cluster_node_records_total{txn=\"alone\"} %llu\n",
	    (unsigned long long)(st.node_records - st.node_records_alone),
	    (unsigned long long)st.node_records_alone);
	counter(&o, "nemo_cluster_ignored_records_total",
		"Records read from etcd and ignored (another version, or malformed).");
	put(&o, "nemo_cluster_ignored_records_total %llu\n",
	    (unsigned long long)st.ignored_records);
	counter(&o, "nemo_cluster_etcd_requests_total",
		"Calls to etcd by kind: write (through raft), read, renew (lease keepalive).");
	for (int k = 0; k < CL_REQ_KINDS; k++)
		put(&o, "nemo_cluster_etcd_requests_total{kind=\"%s\"} %llu\n", kinds[k],
		    (unsigned long long)st.etcd.calls[k]);
	counter(&o, "nemo_cluster_etcd_errors_total",
		"Calls to etcd that failed on every member tried.");
	put(&o, "nemo_cluster_etcd_errors_total %llu\n", (unsigned long long)st.etcd.errors);
	counter(&o, "nemo_cluster_etcd_bytes_total", "Request (out) and answer (in) body bytes.");
	put(&o,
	    "nemo_cluster_etcd_bytes_total{direction=\"out\"} %llu\n"
	    "nemo_cluster_etcd_bytes_total{direction=\"in\"} %llu\n",
	    (unsigned long long)st.etcd.bytes_out, (unsigned long long)st.etcd.bytes_in);
	put(&o, "# HELP nemo_cluster_etcd_request_duration_seconds A call to etcd, failover "
		"included.\n# TYPE nemo_cluster_etcd_request_duration_seconds histogram\n");
	for (int b = 0; b <= CL_LATENCY_BUCKETS; b++) {
		cum += st.etcd.latency[b];
		if (b < CL_LATENCY_BUCKETS)
			put(&o,
			    "nemo_cluster_etcd_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
			    cl_latency_bounds_s[b], (unsigned long long)cum);
		else
			put(&o,
			    "nemo_cluster_etcd_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			    (unsigned long long)cum);
	}
	put(&o,
	    "nemo_cluster_etcd_request_duration_seconds_sum %.6f\n"
	    "nemo_cluster_etcd_request_duration_seconds_count %llu\n",
	    st.etcd.latency_sum_s, (unsigned long long)cum);
	counter(&o, "nemo_cluster_code_fetches_total",
		"Fetches of a function's code from the node that deployed it: got it (ok), or not "
		"(failed: unreachable, refused, timed out, sha256 wrong; retried with a backoff).");
	put(&o,
	    "nemo_cluster_code_fetches_total{outcome=\"ok\"} %llu\n"
	    "nemo_cluster_code_fetches_total{outcome=\"failed\"} %llu\n",
	    (unsigned long long)st.fetch.ok, (unsigned long long)st.fetch.failed);
	counter(&o, "nemo_cluster_code_fetch_retries_total",
		"Fetches of a function's code that retried a failed one.");
	put(&o, "nemo_cluster_code_fetch_retries_total %llu\n",
	    (unsigned long long)st.fetch.retries);
	put(&o,
	    "# HELP nemo_cluster_code_fetch_waiting Functions of the registry whose code this node "
	    "has still to fetch from their owner.\n"
	    "# TYPE nemo_cluster_code_fetch_waiting gauge\nnemo_cluster_code_fetch_waiting %u\n",
	    st.fetch.waiting);
	counter(&o, "nemo_cluster_watch_restarts_total",
		"Watch streams on etcd that broke or went silent and were opened again.");
	put(&o, "nemo_cluster_watch_restarts_total %llu\n",
	    (unsigned long long)st.etcd.watch_restarts);
	return o.rc;
}
