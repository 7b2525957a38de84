/* fuzz_deploy.c - deploy bodies (nemo's native shape, OpenWhisk's, a stored spec.json). */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "gw_internal.h"
#include "nemo/config.h"

/*
 * Input: one byte picks the parser (native, OpenWhisk, stored native), then the name the URL
 * carried up to the first '\n', then the body.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_deploy_req req;
	char name[128], err[1024];
	const char *body, *nl;
	size_t n, len;
	int rc;

	if (size < 2)
		return 0;
	nl = memchr(data + 1, '\n', size - 1);
	n = nl ? (size_t)(nl - (const char *)data - 1) : 0;
	if (n >= sizeof(name))
		return 0;
	memcpy(name, data + 1, n);
	name[n] = '\0';
	body = nl ? nl + 1 : (const char *)data + 1;
	len = size - (size_t)(body - (const char *)data);
	err[0] = '\0';
	switch (data[0] % 3) {
	case 0:
		rc = gw_deploy_parse_native(name, body, len, false, &req, err, sizeof(err));
		break;
	case 1:
		rc = gw_deploy_parse_openwhisk(name, body, len, &req, err, sizeof(err));
		break;
	default:
		rc = gw_deploy_parse_native(name, body, len, true, &req, err, sizeof(err));
		break;
	}
	if (rc) {
		/* refused, and says why; nothing is left to release */
		FUZZ_ASSERT(rc == -EINVAL || rc == -ENOMEM);
		FUZZ_ASSERT(err[0]);
		FUZZ_ASSERT(!req.doc && !req.code);
		return 0;
	}
	/* the name is the URL's, whole and valid: a body cannot name another function. A stored
	 * spec is read under its key, a name in its namespace ("ns.name", the namespace may hold
	 * dots) */
	FUZZ_ASSERT(!strcmp(req.name, name) &&
		    (data[0] % 3 == 2 ? gw_key_valid(req.name) : gw_name_valid(req.name)));
	FUZZ_ASSERT(!strlen(name) || strlen(name) == strlen(req.name));
	FUZZ_ASSERT(req.doc && cJSON_IsObject(req.doc));
	/* one reading only: no key is given twice anywhere in what the service will read */
	{
		struct cfg_ctx ctx = {.file = "fuzz", .quiet = true};

		FUZZ_ASSERT(cfg_check_unique_keys(&ctx, "", req.doc) == 0);
	}
	switch (req.code_kind) {
	case GW_CODE_BYTES:
		FUZZ_ASSERT(req.code || !req.code_len);
		FUZZ_ASSERT(memchr(req.code_file, 0, sizeof(req.code_file)));
		FUZZ_ASSERT(!strchr(req.code_file, '/') && req.code_file[0] != '.');
		break;
	case GW_CODE_ZIP:
		FUZZ_ASSERT(req.code && req.code_len >= 4 && !memcmp(req.code, "PK", 2));
		break;
	case GW_CODE_PATH:
	case GW_CODE_STORED:
		FUZZ_ASSERT(memchr(req.code_path, 0, sizeof(req.code_path)));
		FUZZ_ASSERT(req.code_kind == GW_CODE_STORED || req.code_path[0] == '/');
		break;
	default:
		break;
	}
	gw_deploy_req_release(&req);
	return 0;
}
