/* host.c - the consumer host: one batch handler call per batch of requests from a ring. */
#include <errno.h>
#include <string.h>

#include "nemo/fn_ring.h"
#include "nemo/function.h"

int fn_host_step(struct fn_host *h)
{
	struct fn_ring *r = h->ring;
	struct nemo_packet pkts[FN_HOST_MAX_BATCH];
	struct nemo_reply rep[FN_HOST_MAX_BATCH];
	uint32_t epoch = r->epoch_seen, n, room, nrep = 0;
	int rc;

	n = fn_ring_cons_avail(r);
	if (n == UINT32_MAX)
		return -EPROTO;
	if (r->epoch_seen != epoch)
		h->resets++;
	if (!n)
		return 0;
	room = fn_ring_rep_free(r);
	n = n < h->batch ? n : h->batch;
	n = n < room ? n : room;
	if (!n)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct fn_slot *s = fn_ring_req_slot(r, r->head + i);
		struct fn_slot *d = fn_ring_rep_slot(r, r->rep_head + i);
		bool reply = s->flags & FN_SLOT_F_REPLY;

		pkts[i] = (struct nemo_packet){
			.data = s->data,
			.len = s->len < r->data_cap ? s->len : r->data_cap,
			.flags = (s->flags & FN_SLOT_F_FRAME ? NEMO_PACKET_F_FRAME : 0) |
				 (reply ? NEMO_PACKET_F_REPLY : 0),
			.src_ip = s->src_ip,
			.dst_ip = s->dst_ip,
			.src_port = s->src_port,
			.dst_port = s->dst_port,
			.proto = s->proto,
			.rule = s->rule,
		};
		rep[i] = (struct nemo_reply){.data = reply ? d->data : NULL,
					     .cap = reply ? r->data_cap : 0};
	}
	rc = h->handler(pkts, rep, n);
	for (uint32_t i = 0; !rc && i < n; i++) {
		const struct fn_slot *s = fn_ring_req_slot(r, r->head + i);
		struct fn_slot *d = fn_ring_rep_slot(r, r->rep_head + nrep);

		if (!rep[i].len || !(s->flags & FN_SLOT_F_REPLY))
			continue;
		d->seq = s->seq;
		d->flags = 0;
		d->len = rep[i].len;
		if (rep[i].len > r->data_cap) {
			/* the NF counts it as a reply too big to send */
			d->flags = FN_SLOT_F_TOO_BIG;
			h->too_big++;
		} else if (rep[i].data != d->data) {
			/* the function's own memory, or an earlier slot's when some gave no reply */
			memmove(d->data, rep[i].data, rep[i].len);
		}
		nrep++;
	}
	fn_ring_rep_publish(r, nrep);
	fn_ring_cons_release(r, n);
	h->batches++;
	h->packets += n;
	h->replies += nrep;
	if (rc)
		h->errors++;
	r->sh->consumer.batches = h->batches;
	r->sh->consumer.packets = h->packets;
	r->sh->consumer.replies = h->replies;
	r->sh->consumer.errors = h->errors;
	return (int)n;
}
