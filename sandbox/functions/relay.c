/* relay.c - a chain of functions: each passes the request on with nemo_call and wraps the answer. */
#include <stdio.h>
#include <string.h>

#include "nemo/function.h"

/*
 * The request is "b,c|body": call b with "c|body" and answer "r:" and b's answer; with no
 * name before the '|' (or no '|'), answer the body. Deployed under three names, a request
 * "b,c|x" to a goes a -> b -> c and comes back as "r:r:x". A failed call is this function's
 * error, with nemo's words for it.
 */
int handle(const struct nemo_request *req, struct nemo_response *resp)
{
	const char *p = req->data, *bar = memchr(p, '|', req->len), *comma, *next;
	struct nemo_response out;
	char name[64];
	size_t n, next_len;
	int rc;

	if (!bar || bar == p) {
		n = bar ? req->len - (size_t)(bar + 1 - p) : req->len;
		resp->data = (void *)(bar ? bar + 1 : p);
		resp->len = n;
		return 0;
	}
	comma = memchr(p, ',', (size_t)(bar - p));
	n = (size_t)((comma ? comma : bar) - p);
	next = comma ? comma + 1 : bar;
	next_len = req->len - (size_t)(next - p);
	if (n >= sizeof(name)) {
		resp->len = (size_t)snprintf(resp->data, resp->cap, "name too long");
		return 1;
	}
	memcpy(name, p, n);
	name[n] = '\0';
	if (!nemo_call) {
		resp->len =
			(size_t)snprintf(resp->data, resp->cap, "this runtime has no nemo_call");
		return 1;
	}
	rc = nemo_call(name, next, next_len, &out);
	if (rc < 0) {
		resp->len = (size_t)snprintf(resp->data, resp->cap, "nemo_call(%s) = %d: %s", name,
					     rc, nemo_call_error());
		return 1;
	}
	if (out.len + 2 > resp->cap) {
		resp->len = (size_t)snprintf(resp->data, resp->cap, "answer of %zu bytes too long",
					     out.len);
		return 1;
	}
	memcpy(resp->data, "r:", 2);
	memcpy((char *)resp->data + 2, out.data, out.len);
	resp->len = out.len + 2;
	return rc; /* the callee's own error passes through, with its message wrapped */
}
