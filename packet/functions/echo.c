/* echo.c - packet function: answer every datagram with itself (a UDP echo, RFC 862). */
#include <string.h>

#include <nemo/function.h>

int handle_batch(const struct nemo_packet *pkts, struct nemo_reply *replies, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		if (pkts[i].len > replies[i].cap)
			continue; /* no reply allowed for this rule, or it would not fit */
		memcpy(replies[i].data, pkts[i].data, pkts[i].len);
		replies[i].len = pkts[i].len;
	}
	return 0;
}

/*
 * The same echo called per request (HTTP, MQTT), so that one shared object serves a packet
 * trigger and calls alike (make bench-packet compares the three).
 */
int handle(const struct nemo_request *req, struct nemo_response *resp)
{
	if (req->len > resp->cap)
		return 1;
	memcpy(resp->data, req->data, req->len);
	resp->len = req->len;
	return 0;
}
