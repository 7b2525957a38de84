/* echo.c - sample C function: the response is the request. */
#include <string.h>

#include "nemo/function.h"

int handle(const struct nemo_request *req, struct nemo_response *resp)
{
	/* the runtime's buffer holds max_payload_bytes, the most a request can be */
	memcpy(resp->data, req->data, req->len);
	resp->len = req->len;
	return 0;
}
