/* fuzz_route.c - URL paths through the OpenWhisk and OpenFaaS route parsers. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "gw_internal.h"

static void check_ow(const char *url)
{
	struct gw_ow_route rt;
	int rc = gw_ow_route_parse(url, &rt);

	FUZZ_ASSERT(rc == 0 || rc == -ENOENT || rc == -EINVAL);
	FUZZ_ASSERT(memchr(rt.ns, 0, sizeof(rt.ns)) && memchr(rt.name, 0, sizeof(rt.name)));
	FUZZ_ASSERT(memchr(rt.id, 0, sizeof(rt.id)));
	if (rc)
		return;
	FUZZ_ASSERT(!strchr(rt.ns, '/'));
	/* a name that reaches the service is a valid one, and all of what the URL said */
	if (rt.route == GW_OW_ACTION) {
		FUZZ_ASSERT(gw_name_valid(rt.name));
		FUZZ_ASSERT(strlen(url) >= strlen(rt.name) &&
			    !strcmp(url + strlen(url) - strlen(rt.name), rt.name));
	}
	if (rt.route == GW_OW_PACKAGE_ACTION)
		FUZZ_ASSERT(gw_names_valid(rt.name) && strchr(rt.name, '/'));
	if (rt.route == GW_OW_ACTIVATION)
		FUZZ_ASSERT(rt.id[0] && !strchr(rt.id, '/'));
}

static void check_faas(const char *url)
{
	struct gw_faas_route rt;
	int rc = gw_faas_route_parse(url, &rt);

	FUZZ_ASSERT(rc == 0 || rc == -ENOENT || rc == -EINVAL);
	FUZZ_ASSERT(memchr(rt.name, 0, sizeof(rt.name)));
	if (rc)
		return;
	FUZZ_ASSERT(rt.sub);
	/* the sub-path is the rest of this URL */
	FUZZ_ASSERT(!rt.sub[0] || (rt.sub >= url && rt.sub < url + strlen(url)));
	switch (rt.route) {
	case GW_FAAS_FUNCTION:
	case GW_FAAS_ASYNC:
		FUZZ_ASSERT(gw_name_valid(rt.name));
		FUZZ_ASSERT(!rt.sub[0] || rt.sub[0] == '/');
		break;
	case GW_FAAS_DESCRIBE:
	case GW_FAAS_SCALE:
		FUZZ_ASSERT(gw_name_valid(rt.name) && !rt.sub[0]);
		break;
	default:
		break;
	}
}

/* Input: one byte picks the parser, the rest is the path (MHD hands it NUL-terminated). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char url[4096];

	if (size < 1 || size > sizeof(url))
		return 0;
	memcpy(url, data + 1, size - 1);
	url[size - 1] = '\0';
	if (data[0] & 1)
		check_faas(url);
	else
		check_ow(url);
	return 0;
}
