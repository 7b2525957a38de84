/* metrics.c - the /metrics front door: Prometheus text of invocations, phases, pools, HTTP codes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nemo/version.h"
#include "gw_internal.h"

const double gw_hist_bounds[GW_HIST_BUCKETS - 1] = {
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05,	 0.1,	 0.25,	  0.5,	  1,	 2.5,	 5,	10,
};

static const char *const phase_names[GW_N_PHASES] = {"total", "queue", "create", "init", "run"};

void gw_hist_observe(struct gw_hist *h, uint64_t ns)
{
	double s = (double)ns / 1e9;
	int b = 0;

	while (b < GW_HIST_BUCKETS - 1 && s > gw_hist_bounds[b])
		b++;
	atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void gw_metrics_record(struct gw_function *fn, enum gw_act_status st, const struct sbx_result *res,
		       uint64_t total_ns)
{
	struct gw_fn_metrics *m = &fn->metrics;

	atomic_fetch_add_explicit(&m->invocations[st], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->starts[(unsigned)res->path < SBX_START_PATHS ? res->path : 0],
				  1, memory_order_relaxed);
	gw_hist_observe(&m->phase[GW_PHASE_TOTAL], total_ns);
	gw_hist_observe(&m->phase[GW_PHASE_QUEUE], res->times.queue_ns);
	gw_hist_observe(&m->phase[GW_PHASE_RUN], res->times.run_ns);
	/* create and init happen on cold starts only: a 0 there would drown the real ones */
	if (res->times.create_ns)
		gw_hist_observe(&m->phase[GW_PHASE_CREATE], res->times.create_ns);
	if (res->times.init_ns)
		gw_hist_observe(&m->phase[GW_PHASE_INIT], res->times.init_ns);
}

struct text {
	char *buf;
	size_t len, cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt,
			      ap);
		va_end(ap);
		if (n < 0)
			return;
		if (t->buf && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		{
			size_t cap = t->cap ? t->cap * 2 : 16384;
			char *nb;

			while (cap < t->len + (size_t)n + 1)
				cap *= 2;
			nb = realloc(t->buf, cap);
			if (!nb)
				return;
			t->buf = nb;
			t->cap = cap;
		}
	}
}

static void hist(struct text *t, const char *name, const char *labels, const struct gw_hist *h)
{
	uint64_t cum = 0;

	for (int b = 0; b < GW_HIST_BUCKETS; b++) {
		cum += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
		if (b < GW_HIST_BUCKETS - 1)
			put(t, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, gw_hist_bounds[b],
			    (unsigned long long)cum);
		else
			put(t, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels,
			    (unsigned long long)cum);
	}
	put(t, "%s_sum{%s} %.9f\n", name, labels,
	    (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
	put(t, "%s_count{%s} %llu\n", name, labels,
	    (unsigned long long)atomic_load_explicit(&h->count, memory_order_relaxed));
}

struct fn_list {
	struct gw_function **v;
	int n, cap;
	const char *ns; /* only this namespace's functions (NULL: all) */
};

/* Under the registry's read lock: keep a reference to each function. */
static void collect(void *arg, struct gw_function *fn)
{
	struct fn_list *fl = arg;

	if (fl->ns && strcmp(fn->ns, fl->ns))
		return;
	if (fl->n == fl->cap) {
		int cap = fl->cap ? fl->cap * 2 : 16;
		struct gw_function **nv = realloc(fl->v, (size_t)cap * sizeof(*nv));

		if (!nv)
			return;
		fl->v = nv;
		fl->cap = cap;
	}
	atomic_fetch_add(&fn->refs, 1);
	fl->v[fl->n++] = fn;
}

/* Packet triggers: counters summed over a function's instances (no activation per batch). */
static void packet_metrics(struct gw_daemon *d, struct text *t, const struct fn_list *fl)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} fam[] = {
		{"nemo_packet_packets_total", "Packets a packet-triggered function consumed.",
		 offsetof(struct gw_packet_figures, packets)},
		{"nemo_packet_batches_total",
		 "Batch handler calls of a packet-triggered function (a batch is a call).",
		 offsetof(struct gw_packet_figures, batches)},
		{"nemo_packet_replies_total", "Replies a packet-triggered function sent back.",
		 offsetof(struct gw_packet_figures, replies)},
		{"nemo_packet_errors_total",
		 "Batches whose handler failed (their replies were dropped).",
		 offsetof(struct gw_packet_figures, errors)},
		{"nemo_packet_instance_restarts_total",
		 "Packet-mode instances that ended and were replaced.",
		 offsetof(struct gw_packet_figures, restarts)},
	};
	struct gw_packet_figures *pf = calloc((size_t)fl->n + 1, sizeof(*pf));
	bool *has = calloc((size_t)fl->n + 1, sizeof(*has));
	int any = 0;

	for (int i = 0; pf && has && i < fl->n; i++)
		any += has[i] = fl->v[i]->packet.on &&
				gw_packet_figures(d->packet, fl->v[i]->spec.name, &pf[i]) == 0;
	for (size_t f = 0; any && f < sizeof(fam) / sizeof(fam[0]); f++) {
		put(t, "# HELP %s %s\n# TYPE %s counter\n", fam[f].name, fam[f].help, fam[f].name);
		for (int i = 0; i < fl->n; i++)
			if (has[i])
				put(t, "%s{namespace=\"%s\",function=\"%s\"} %llu\n", fam[f].name,
				    fl->v[i]->ns, fl->v[i]->name,
				    (unsigned long long)*(const uint64_t *)((const char *)&pf[i] +
									    fam[f].off));
	}
	if (any) {
		put(t, "# HELP nemo_packet_instances Packet-mode instances serving now.\n"
		       "# TYPE nemo_packet_instances gauge\n");
		for (int i = 0; i < fl->n; i++)
			if (has[i])
				put(t,
				    "nemo_packet_instances{namespace=\"%s\",function=\"%s\"} %d\n",
				    fl->v[i]->ns, fl->v[i]->name, pf[i].serving);
	}
	free(pf);
	free(has);
}

char *gw_metrics_render(struct gw_daemon *d, const char *ns, size_t *len)
{
	struct fn_list fl = {.ns = ns};
	struct text t = {0};
	struct gw_function *fn;
	struct sbx_pool_stats st;

	put(&t, "# HELP nemo_up 1 while nemod serves.\n# TYPE nemo_up gauge\nnemo_up 1\n");
	put(&t,
	    "# HELP nemo_build_info nemod's version.\n# TYPE nemo_build_info gauge\n"
	    "nemo_build_info{version=\"%s\"} 1\n",
	    NEMO_VERSION);
	put(&t,
	    "# HELP nemo_harvest_enabled 1 when invocations follow the NF cores' spare cycles.\n"
	    "# TYPE nemo_harvest_enabled gauge\nnemo_harvest_enabled %d\n",
	    d->dispatch.ops->metrics ? 1 : 0);
	put(&t,
	    "# HELP nemo_start_time_seconds When nemod started (epoch).\n"
	    "# TYPE nemo_start_time_seconds gauge\nnemo_start_time_seconds %.3f\n",
	    (double)d->started_ms / 1e3);
	put(&t,
	    "# HELP nemo_inflight_invocations Invocations running or waiting now.\n"
	    "# TYPE nemo_inflight_invocations gauge\nnemo_inflight_invocations %u\n",
	    atomic_load(&d->inflight));
	pthread_mutex_lock(&d->q_lock);
	put(&t,
	    "# HELP nemo_async_queue_length Accepted async activations not started.\n"
	    "# TYPE nemo_async_queue_length gauge\nnemo_async_queue_length %u\n",
	    d->q_len);
	pthread_mutex_unlock(&d->q_lock);
	put(&t, "# HELP nemo_http_responses_total HTTP responses by status code.\n"
		"# TYPE nemo_http_responses_total counter\n");
	for (int c = 100; c < 600; c++) {
		uint64_t n = atomic_load_explicit(&d->http_codes[c], memory_order_relaxed);

		/* the codes nemod answers most, always; the others once they happened */
		if (n || c == 200 || c == 202 || c == 400 || c == 401 || c == 404 || c == 429 ||
		    c == 500 || c == 502)
			put(&t, "nemo_http_responses_total{code=\"%d\"} %llu\n", c,
			    (unsigned long long)n);
	}
	put(&t,
	    "# HELP nemo_rejected_total Requests refused at a concurrency limit (429).\n"
	    "# TYPE nemo_rejected_total counter\nnemo_rejected_total %llu\n",
	    (unsigned long long)atomic_load(&d->rejected_429));

	{
		char why[200];
		uint64_t syncs;

		pthread_mutex_lock(&d->acts.sync_lock);
		syncs = d->acts.n_syncs;
		pthread_mutex_unlock(&d->acts.sync_lock);
		put(&t,
		    "# HELP nemo_journal_syncs_total fdatasync calls that made activation records "
		    "durable (one covers every call that finished meanwhile).\n"
		    "# TYPE nemo_journal_syncs_total counter\nnemo_journal_syncs_total %llu\n",
		    (unsigned long long)syncs);
		put(&t,
		    "# HELP nemo_journal_writable 1 while the journal takes records, 0 while it "
		    "cannot (async calls are then 503).\n"
		    "# TYPE nemo_journal_writable gauge\nnemo_journal_writable %d\n",
		    !gw_journal_error(&d->acts, why, sizeof(why)));
		put(&t,
		    "# HELP nemo_http_header_timeouts_total Connections closed because their "
		    "request headers were later than limits.header_timeout_ms.\n"
		    "# TYPE nemo_http_header_timeouts_total counter\n"
		    "nemo_http_header_timeouts_total %llu\n",
		    (unsigned long long)(d->http ? gw_http_header_timeouts(d->http) : 0));
	}

	/* a referenced snapshot of the registry: rendering holds no lock of the service */
	gw_fn_foreach(d, collect, &fl);
	put(&t, "# HELP nemo_functions Deployed functions.\n# TYPE nemo_functions gauge\n");
	put(&t, "nemo_functions %d\n", fl.n);
	put(&t, "# HELP nemo_invocations_total Invocations by function and terminal status.\n"
		"# TYPE nemo_invocations_total counter\n");
	for (int i = 0; i < fl.n && (fn = fl.v[i]); i++)
		for (int s = GW_ACT_SUCCESS; s < GW_ACT_N_STATUS; s++)
			put(&t,
			    "nemo_invocations_total{namespace=\"%s\",function=\"%s\",status=\"%s\"} "
			    "%llu\n",
			    fn->ns, fn->name, gw_act_status_name(s),
			    (unsigned long long)atomic_load(&fn->metrics.invocations[s]));
	put(&t, "# HELP nemo_starts_total Invocations by start path (cold, warm, prewarmed).\n"
		"# TYPE nemo_starts_total counter\n");
	for (int i = 0; i < fl.n && (fn = fl.v[i]); i++)
		for (int p = SBX_START_COLD; p < SBX_START_PATHS; p++)
			put(&t,
			    "nemo_starts_total{namespace=\"%s\",function=\"%s\",path=\"%s\"} %llu\n",
			    fn->ns, fn->name, sbx_start_path_name(p),
			    (unsigned long long)atomic_load(&fn->metrics.starts[p]));
	put(&t, "# HELP nemo_invocation_duration_seconds Invocation time by phase (total = what "
		"the caller waited inside nemod).\n"
		"# TYPE nemo_invocation_duration_seconds histogram\n");
	for (int i = 0; i < fl.n && (fn = fl.v[i]); i++)
		for (int p = 0; p < GW_N_PHASES; p++) {
			char labels[256];

			snprintf(labels, sizeof(labels),
				 "namespace=\"%s\",function=\"%s\",phase=\"%s\"", fn->ns, fn->name,
				 phase_names[p]);
			hist(&t, "nemo_invocation_duration_seconds", labels, &fn->metrics.phase[p]);
		}
	put(&t, "# HELP nemo_warm_pool_instances Instances per function by state.\n"
		"# TYPE nemo_warm_pool_instances gauge\n");
	for (int i = 0; i < fl.n && (fn = fl.v[i]); i++) {
		if (d->backend.ops->stats(d->backend.state, fn->spec.name, &st))
			continue;
		put(&t,
		    "nemo_warm_pool_instances{namespace=\"%s\",function=\"%s\",state=\"idle\"} "
		    "%u\n",
		    fn->ns, fn->name, st.idle);
		put(&t,
		    "nemo_warm_pool_instances{namespace=\"%s\",function=\"%s\",state=\"busy\"} "
		    "%u\n",
		    fn->ns, fn->name, st.busy);
		put(&t,
		    "nemo_warm_pool_instances{namespace=\"%s\",function=\"%s\",state=\"prewarmed\"} "
		    "%u\n",
		    fn->ns, fn->name, st.prewarmed);
		put(&t,
		    "nemo_warm_pool_instances{namespace=\"%s\",function=\"%s\",state=\"zygote\"} "
		    "%u\n",
		    fn->ns, fn->name, st.zygotes);
	}
	packet_metrics(d, &t, &fl);
	for (int i = 0; i < fl.n; i++)
		gw_fn_put(fl.v[i]);
	free(fl.v);
	if (d->backend.ops->stats(d->backend.state, NULL, &st) == 0) {
		put(&t,
		    "# HELP nemo_pool_evictions_total Idle instances evicted for memory.\n"
		    "# TYPE nemo_pool_evictions_total counter\nnemo_pool_evictions_total "
		    "%llu\n",
		    (unsigned long long)st.evictions);
		put(&t,
		    "# HELP nemo_pool_expirations_total Idle instances expired by keep-alive.\n"
		    "# TYPE nemo_pool_expirations_total counter\nnemo_pool_expirations_total "
		    "%llu\n",
		    (unsigned long long)st.expirations);
		put(&t,
		    "# HELP nemo_pool_crashes_total Instances that died (crash, OOM, "
		    "timeout).\n# TYPE nemo_pool_crashes_total counter\n"
		    "nemo_pool_crashes_total %llu\n",
		    (unsigned long long)st.crashes);
	}
	if (d->dispatch.ops->metrics) {
		size_t cap = 65536;
		char *cores = malloc(cap);
		int n = cores ? d->dispatch.ops->metrics(d->dispatch.state, cores, cap) : -ENOMEM;

		if (n > 0)
			put(&t, "%.*s", n, cores);
		free(cores);
	}
	cl_node_metrics(d->cluster && !ns ? d->cluster->node : NULL, &t.buf, &t.len, &t.cap);
	*len = t.len;
	return t.buf;
}

void gw_api_metrics(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp)
{
	size_t len;

	if (!gw_req_is(r, "GET"))
		return gw_reply_not_allowed(rp, r, "GET");
	/* the operator (the default namespace) sees every tenant's functions, a tenant its own */
	rp->body = gw_metrics_render(
		d, strcmp(gw_req_ns(d, r), d->default_ns) ? gw_req_ns(d, r) : NULL, &len);
	if (!rp->body)
		return gw_reply_error(rp, 500, "out of memory");
	rp->status = 200;
	rp->len = len;
	rp->ctype = "text/plain; version=0.0.4";
}
