/* policy.c - the offload policy: run here, wait here (batch), or forward to the best peer. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "cl_internal.h"

int cl_qos_parse(const char *s)
{
	if (s && strcmp(s, "latency") == 0)
		return CL_QOS_LATENCY;
	if (s && strcmp(s, "batch") == 0)
		return CL_QOS_BATCH;
	return -EINVAL;
}

const char *cl_qos_name(int qos)
{
	return qos == CL_QOS_BATCH ? "batch" : "latency";
}

static const char *const reason_names[CL_WHY_N] = {
	"local_spare",	 "forwarded",	     "batch_wait",     "batch_peer",
	"batch_no_peer", "latency_deadline", "latency_sooner", "latency_local",
};

const char *cl_reason_name(int reason)
{
	return reason >= 0 && reason < CL_WHY_N ? reason_names[reason] : NULL;
}

int cl_reason_parse(const char *name)
{
	for (int i = 0; name && i < CL_WHY_N; i++)
		if (strcmp(name, reason_names[i]) == 0)
			return i;
	return -EINVAL;
}

void cl_policy_defaults(struct cl_policy *p)
{
	p->cold_ms = 10;
	p->forward_ms = 1;
	p->stale_ms = 3000;
	p->min_spare = 0.05;
}

/* Expected ms from now to the answer on a node with this load; INFINITY without spare. */
static double eta_ms(const struct cl_policy *p, const struct cl_load *n, const struct cl_call *c)
{
	double run = c->run_ms > 0 ? c->run_ms : 1;
	double t;

	if (n->spare_best < p->min_spare || n->spare_total < p->min_spare)
		return INFINITY;
	t = run / n->spare_best + (double)n->queue * run / n->spare_total;
	if (n->warm == 0)
		t += p->cold_ms;
	return t;
}

void cl_offload_decide(const struct cl_policy *p, const struct cl_load *local,
		       const struct cl_load *peers, int n_peers, const struct cl_call *call,
		       struct cl_decision *out)
{
	double best = INFINITY;
	int best_i = -1;

	memset(out, 0, sizeof(*out));
	out->peer = -1;
	out->local_eta_ms = eta_ms(p, local, call);
	out->peer_eta_ms = INFINITY;
	if (call->hops > 0) {
		out->verdict = CL_RUN_LOCAL;
		out->why = "forwarded calls run where they land";
		out->reason = CL_WHY_FORWARDED;
		return;
	}
	if (out->local_eta_ms <= call->deadline_ms) {
		out->verdict = CL_RUN_LOCAL;
		out->why = "local spare meets the deadline";
		out->reason = CL_WHY_LOCAL_SPARE;
		return;
	}
	for (int i = 0; i < n_peers; i++) {
		const struct cl_load *q = &peers[i];
		double t;

		if (!q->accepts || !q->has_function || q->age_ms > p->stale_ms)
			continue;
		t = eta_ms(p, q, call) + p->forward_ms;
		/* ties: more spare, then the name (stable across nodes) */
		if (t < best || (t == best && best_i >= 0 &&
				 (q->spare_best > peers[best_i].spare_best ||
				  (q->spare_best == peers[best_i].spare_best &&
				   strcmp(q->name, peers[best_i].name) < 0)))) {
			best = t;
			best_i = i;
		}
	}
	if (call->qos == CL_QOS_BATCH) {
		if (call->waited_ms < call->deadline_ms) {
			out->verdict = CL_WAIT_LOCAL;
			out->why = "batch: waiting for local spare";
			out->reason = CL_WHY_BATCH_WAIT;
			return;
		}
		if (best_i >= 0 && isfinite(best)) {
			out->verdict = CL_OFFLOAD;
			out->peer = best_i;
			out->peer_eta_ms = best;
			out->why = "batch: deadline passed, a peer has spare";
			out->reason = CL_WHY_BATCH_PEER;
			return;
		}
		out->verdict = CL_RUN_LOCAL;
		out->why = "batch: deadline passed, no peer has spare";
		out->reason = CL_WHY_BATCH_NONE;
		return;
	}
	if (best_i >= 0 && isfinite(best) && best < out->local_eta_ms) {
		out->verdict = CL_OFFLOAD;
		out->peer = best_i;
		out->peer_eta_ms = best;
		out->why = best <= call->deadline_ms
				   ? "latency: a peer meets the deadline, this node does not"
				   : "latency: a peer answers sooner than this node";
		out->reason =
			best <= call->deadline_ms ? CL_WHY_LATENCY_DEADLINE : CL_WHY_LATENCY_SOONER;
		return;
	}
	out->verdict = CL_RUN_LOCAL;
	out->why = "latency: no peer answers sooner; run here at once";
	out->reason = CL_WHY_LATENCY_LOCAL;
}
