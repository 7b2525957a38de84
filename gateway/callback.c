/* callback.c - POST an async activation's result to the caller's X-Callback-Url (http only). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_internal.h"

int gw_callback_post(const char *url, const char *activation_id, const char *function, int status,
		     const void *data, size_t len)
{
	char host[128], path[256], headers[256];
	struct gw_http_response resp;
	unsigned port = 80;
	const char *p, *slash;
	size_t hn;
	int rc;

	if (strncmp(url, "http://", 7))
		return -EINVAL;
	p = url + 7;
	slash = strchr(p, '/');
	hn = slash ? (size_t)(slash - p) : strlen(p);
	if (!hn || hn >= sizeof(host))
		return -EINVAL;
	memcpy(host, p, hn);
	host[hn] = '\0';
	if (strchr(host, ':')) {
		const char *digits = strchr(host, ':') + 1;
		char *end;
		unsigned long v;

		/* in its full width: "4294967297" is not port 1 */
		errno = 0;
		v = strtoul(digits, &end, 10);
		if (!*digits || *end || errno || v > 65535 ||
		    strspn(digits, "0123456789") != strlen(digits))
			return -EINVAL;
		port = (unsigned)v;
		*strchr(host, ':') = '\0';
	}
	snprintf(path, sizeof(path), "%s", slash ? slash : "/");
	if (!port || port > 65535)
		return -EINVAL;
	snprintf(headers, sizeof(headers),
		 "X-Call-Id: %s\r\nX-Function-Status: %d\r\nX-Function-Name: %s\r\n", activation_id,
		 status, function);
	rc = gw_http_request_headers(host, (uint16_t)port, "POST", path, NULL, headers, data, len,
				     10000, &resp);
	if (rc)
		return rc;
	rc = resp.status;
	gw_http_response_release(&resp);
	return rc;
}
