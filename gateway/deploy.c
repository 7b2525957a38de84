/* deploy.c - deploy bodies of every shape (native, OpenWhisk) into one gw_deploy_req. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nemo/base64.h"
#include "nemo/config.h"
#include "gw_internal.h"

void gw_deploy_req_release(struct gw_deploy_req *r)
{
	if (!r)
		return;
	cJSON_Delete(r->doc);
	free(r->code);
	memset(r, 0, sizeof(*r));
}

/* A key whose value is kept as a pointer into the tree; key->arg names the JSON type. */
static int parse_item(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		      const struct cfg_key *key)
{
	const char *want = key->arg;

	if (want && !strcmp(want, "object") && !cJSON_IsObject(item))
		return cfg_error(ctx, path, "expected an object");
	if (want && !strcmp(want, "array") && !cJSON_IsArray(item))
		return cfg_error(ctx, path, "expected an array");
	if (want && !strcmp(want, "string") && !cJSON_IsString(item))
		return cfg_error(ctx, path, "expected a string");
	if (want && !strcmp(want, "bool") && !cJSON_IsBool(item))
		return cfg_error(ctx, path, "expected true or false");
	*(const cJSON **)((char *)dst + key->offset) = item;
	return 0;
}

#define KEY_ITEM(n, type, field, req, kind)                                        \
	{                                                                          \
		.name = (n), .parse = parse_item, .offset = offsetof(type, field), \
		.required = (req), .arg = (kind)                                   \
	}

static int decode_base64(struct cfg_ctx *ctx, const char *path, const char *text, uint8_t **out,
			 size_t *out_len)
{
	size_t len = strlen(text);
	long n;

	if (!len)
		return cfg_error(ctx, path, "empty code");
	*out = malloc(len / 4 * 3 + 3);
	if (!*out)
		return -ENOMEM;
	n = nemo_base64_decode(text, len, *out, len / 4 * 3 + 3);
	if (n <= 0) {
		free(*out);
		*out = NULL;
		return cfg_error(ctx, path, "not valid base64");
	}
	*out_len = (size_t)n;
	return 0;
}

static bool is_zip(const uint8_t *b, size_t len)
{
	return len >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4;
}

/* ---- nemo's native body ------------------------------------------------------------------------ */

struct native_code {
	const cJSON *base64, *path, *filename, *zip_base64;
};

static const struct cfg_key native_code_keys[] = {
	KEY_ITEM("base64", struct native_code, base64, false, "string"),
	KEY_ITEM("path", struct native_code, path, false, "string"),
	KEY_ITEM("filename", struct native_code, filename, false, "string"),
	KEY_ITEM("zip_base64", struct native_code, zip_base64, false, "string"),
	CFG_KEY_END,
};

static int native_code(struct cfg_ctx *ctx, const cJSON *code, struct gw_deploy_req *out)
{
	struct native_code nc = {0};
	int given, rc;

	if (!cJSON_IsObject(code))
		return cfg_error(ctx, "code",
				 "expected an object {\"base64\": \"...\"} or {\"path\": "
				 "\"/abs/file\"}");
	rc = cfg_parse_object(ctx, "code", code, native_code_keys, &nc);
	if (rc)
		return rc;
	given = !!nc.base64 + !!nc.path + !!nc.zip_base64;
	if (given != 1)
		return cfg_error(ctx, "code",
				 "give exactly one of 'base64', 'path' and 'zip_base64'");
	if (nc.filename) {
		const char *f = nc.filename->valuestring;
		size_t n = strlen(f);

		if (!n || n >= sizeof(out->code_file) || f[0] == '.' ||
		    strspn(f, GW_NAME_CHARS ".") != n)
			return cfg_error(ctx, "code.filename",
					 "expected a plain file name ([A-Za-z0-9_.-], not "
					 "starting with '.')");
		snprintf(out->code_file, sizeof(out->code_file), "%s", f);
	}
	if (nc.path) {
		if (nc.path->valuestring[0] != '/')
			return cfg_error(ctx, "code.path", "expected an absolute path");
		if (strlen(nc.path->valuestring) >= sizeof(out->code_path))
			return cfg_error(ctx, "code.path", "longer than %zu characters",
					 sizeof(out->code_path) - 1);
		snprintf(out->code_path, sizeof(out->code_path), "%s", nc.path->valuestring);
		out->code_kind = GW_CODE_PATH;
		return 0;
	}
	rc = decode_base64(ctx, nc.base64 ? "code.base64" : "code.zip_base64",
			   (nc.base64 ? nc.base64 : nc.zip_base64)->valuestring, &out->code,
			   &out->code_len);
	if (rc)
		return rc;
	out->code_kind = nc.zip_base64 ? GW_CODE_ZIP : GW_CODE_BYTES;
	if (nc.zip_base64 && !is_zip(out->code, out->code_len))
		return cfg_error(ctx, "code.zip_base64", "not a zip archive");
	return 0;
}

static int parse_json_object(struct cfg_ctx *ctx, const char *body, size_t len, cJSON **root)
{
	/* a key given twice is refused: the URL check and the spec parser must read one name */
	*root = cfg_parse_json(ctx, body, len);
	if (!*root)
		return errno == ENOMEM ? -ENOMEM : -EINVAL;
	if (!cJSON_IsObject(*root))
		return cfg_error(ctx, NULL, "expected a JSON object");
	return 0;
}

/* `stored`: a document from the store, named by its key ("ns.name" outside the default) */
static int check_name(struct cfg_ctx *ctx, const char *name, bool stored, cJSON *root,
		      struct gw_deploy_req *out)
{
	const cJSON *jname = cJSON_GetObjectItemCaseSensitive(root, "name");

	if (!(stored ? gw_key_valid(name) : gw_name_valid(name)))
		return cfg_error(ctx, NULL,
				 "name '%.64s': must be 1..%d characters of [A-Za-z0-9_-]", name,
				 SBX_NAME_MAX - 1);
	if (jname && (!cJSON_IsString(jname) || strcmp(jname->valuestring, name)))
		return cfg_error(ctx, "name", "must match the name in the URL ('%s')", name);
	snprintf(out->name, sizeof(out->name), "%s", name);
	return 0;
}

static int finish(struct cfg_ctx *ctx, int rc, struct gw_deploy_req *out, char *err, size_t errlen)
{
	if (rc) {
		snprintf(err, errlen, "%s", ctx->err[0] ? ctx->err : strerror(-rc));
		gw_deploy_req_release(out);
	}
	return rc;
}

int gw_deploy_parse_native(const char *name, const char *body, size_t len, bool stored,
			   struct gw_deploy_req *out, char *err, size_t errlen)
{
	struct cfg_ctx ctx = {.file = stored ? "store" : "request"};
	cJSON *root = NULL, *code;
	int rc;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	rc = parse_json_object(&ctx, body, len, &root);
	if (!rc)
		rc = check_name(&ctx, name, stored, root, out);
	if (rc) {
		cJSON_Delete(root);
		return finish(&ctx, rc, out, err, errlen);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(root, "name");
	out->doc = root;
	code = cJSON_DetachItemFromObjectCaseSensitive(root, "code");
	if (!code)
		return finish(&ctx, cfg_error(&ctx, "code", "required key is missing"), out, err,
			      errlen);
	if (stored) {
		if (!cJSON_IsString(code) || strlen(code->valuestring) >= sizeof(out->code_path))
			rc = cfg_error(&ctx, "code", "expected the stored code's path");
		else
			snprintf(out->code_path, sizeof(out->code_path), "%s", code->valuestring);
		out->code_kind = GW_CODE_STORED;
	} else {
		rc = native_code(&ctx, code, out);
	}
	cJSON_Delete(code);
	return finish(&ctx, rc, out, err, errlen);
}

/* ---- OpenWhisk's action body ------------------------------------------------------------------ */

struct ow_body {
	const cJSON *name, *ns, *exec, *limits, *parameters, *annotations, *version, *publish;
	const cJSON *updated, *entity;
};

static const struct cfg_key ow_body_keys[] = {
	KEY_ITEM("name", struct ow_body, name, false, "string"),
	KEY_ITEM("namespace", struct ow_body, ns, false, "string"),
	KEY_ITEM("exec", struct ow_body, exec, false, "object"),
	KEY_ITEM("limits", struct ow_body, limits, false, "object"),
	KEY_ITEM("parameters", struct ow_body, parameters, false, "array"),
	KEY_ITEM("annotations", struct ow_body, annotations, false, "array"),
	KEY_ITEM("version", struct ow_body, version, false, "string"),
	KEY_ITEM("publish", struct ow_body, publish, false, "bool"),
	KEY_ITEM("updated", struct ow_body, updated, false, NULL),
	KEY_ITEM("entityType", struct ow_body, entity, false, "string"),
	CFG_KEY_END,
};

struct ow_exec {
	const cJSON *kind, *code, *binary, *main, *image, *components;
};

static const struct cfg_key ow_exec_keys[] = {
	KEY_ITEM("kind", struct ow_exec, kind, true, "string"),
	KEY_ITEM("code", struct ow_exec, code, false, "string"),
	KEY_ITEM("binary", struct ow_exec, binary, false, "bool"),
	KEY_ITEM("main", struct ow_exec, main, false, "string"),
	KEY_ITEM("image", struct ow_exec, image, false, "string"),
	KEY_ITEM("components", struct ow_exec, components, false, "array"),
	CFG_KEY_END,
};

/* One OpenWhisk limit: its value, and whether the body gave it (a partial update keeps the
 * deployed value of a limit it does not name). */
struct ow_limit {
	uint32_t value; /* first: cfg_parse_u32() writes here */
	bool given;
};

struct ow_limits {
	struct ow_limit timeout, memory, concurrency, logs;
};

static int parse_limit(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		       const struct cfg_key *key)
{
	struct ow_limit *lim = (struct ow_limit *)((char *)dst + key->offset);
	int rc = cfg_parse_u32(ctx, path, item, dst, key);

	if (!rc)
		lim->given = true;
	return rc;
}

static const struct cfg_key ow_limit_keys[] = {
	{.name = "timeout",
	 .parse = parse_limit,
	 .offset = offsetof(struct ow_limits, timeout),
	 .min = 1,
	 .max = 3600000},
	{.name = "memory",
	 .parse = parse_limit,
	 .offset = offsetof(struct ow_limits, memory),
	 .min = 4,
	 .max = 65536},
	{.name = "concurrency",
	 .parse = parse_limit,
	 .offset = offsetof(struct ow_limits, concurrency),
	 .min = 1,
	 .max = 4096},
	{.name = "logs",
	 .parse = parse_limit,
	 .offset = offsetof(struct ow_limits, logs),
	 .min = 0,
	 .max = 64},
	CFG_KEY_END,
};

/* [{"key": k, "value": v}, ...] -> {k: v, ...}; annotations are kept as they came. */
static int ow_pairs(struct cfg_ctx *ctx, const char *path, const cJSON *arr, cJSON **out)
{
	const cJSON *it;
	char ipath[64];
	int i = 0;

	*out = cJSON_CreateObject();
	if (!*out)
		return -ENOMEM;
	cJSON_ArrayForEach (it, arr) {
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(it, "key");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "value");

		cfg_index(ipath, sizeof(ipath), path, i++);
		if (!cJSON_IsObject(it) || !cJSON_IsString(k) || !v)
			return cfg_error(ctx, ipath, "expected {\"key\": \"...\", \"value\": ...}");
		cJSON_DeleteItemFromObjectCaseSensitive(*out, k->valuestring);
		cJSON_AddItemToObject(*out, k->valuestring, cJSON_Duplicate(v, true));
	}
	return 0;
}

const char *gw_kind_of_runtime(int runtime)
{
	switch (runtime) {
	case SBX_RUNTIME_PYTHON:
		return "python:3";
	case SBX_RUNTIME_C:
		return "nemo:c";
	default:
		return "native";
	}
}

/* exec.kind -> runtime, and what a python kind implies */
static int ow_kind(struct cfg_ctx *ctx, const char *kind, cJSON *doc)
{
	if (!strncmp(kind, "python", 6) && (kind[6] == '\0' || kind[6] == ':')) {
		cJSON_AddStringToObject(doc, "runtime", "python");
		cJSON_AddStringToObject(doc, "handler_style", "dict");
		return 0;
	}
	if (!strcmp(kind, "nemo:c") || !strcmp(kind, "c")) {
		cJSON_AddStringToObject(doc, "runtime", "c");
		return 0;
	}
	if (!strcmp(kind, "native") || !strcmp(kind, "nemo:exec") || !strcmp(kind, "blackbox")) {
		cJSON_AddStringToObject(doc, "runtime", "exec");
		cJSON_AddStringToObject(doc, "exec_mode", "per_request");
		return 0;
	}
	if (!strcmp(kind, "sequence"))
		return cfg_error(ctx, "exec.kind",
				 "'sequence': sequences are not supported by nemo (501)");
	return cfg_error(ctx, "exec.kind",
			 "'%s' is not a kind nemo runs: use python:3, nemo:c (a C shared "
			 "object, base64 with binary true) or native (an executable or a zip "
			 "with 'exec')",
			 kind);
}

static int ow_exec(struct cfg_ctx *ctx, const cJSON *exec, struct gw_deploy_req *out)
{
	struct ow_exec ex = {0};
	cJSON *doc = out->doc;
	bool binary;
	int rc;

	rc = cfg_parse_object(ctx, "exec", exec, ow_exec_keys, &ex);
	if (rc)
		return rc;
	if (ex.image)
		return cfg_error(ctx, "exec.image",
				 "nemo does not run container images: send the code itself");
	if (ex.components)
		return cfg_error(ctx, "exec.components", "sequences are not supported by nemo");
	rc = ow_kind(ctx, ex.kind->valuestring, doc);
	if (rc)
		return rc;
	cJSON_AddStringToObject(doc, "kind", ex.kind->valuestring);
	if (!ex.code)
		return cfg_error(ctx, "exec.code", "required key is missing");
	binary = ex.binary && cJSON_IsTrue(ex.binary);
	/* clients that send a zip as base64 without "binary" (the npm client): OpenWhisk looks */
	if (!binary && !strncmp(ex.code->valuestring, "UEsDB", 5) &&
	    strspn(ex.code->valuestring,
		   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") ==
		    strlen(ex.code->valuestring))
		binary = true;
	if (ex.main) {
		size_t n = strlen(ex.main->valuestring);

		if (!n || n >= SBX_HANDLER_MAX ||
		    strspn(ex.main->valuestring, GW_NAME_CHARS ".:") != n)
			return cfg_error(ctx, "exec.main", "expected a function name");
	}
	if (binary) {
		rc = decode_base64(ctx, "exec.code", ex.code->valuestring, &out->code,
				   &out->code_len);
		if (rc)
			return rc;
	} else {
		out->code_len = strlen(ex.code->valuestring);
		if (!out->code_len)
			return cfg_error(ctx, "exec.code", "empty code");
		out->code = (uint8_t *)strdup(ex.code->valuestring);
		if (!out->code)
			return -ENOMEM;
	}
	out->code_kind = is_zip(out->code, out->code_len) ? GW_CODE_ZIP : GW_CODE_BYTES;
	if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(doc, "runtime")), "python")) {
		const char *m = ex.main ? ex.main->valuestring : "main";
		char handler[SBX_HANDLER_MAX];

		/* a zip runs its __main__.py, as OpenWhisk's python runtime does */
		if (out->code_kind == GW_CODE_ZIP && !strchr(m, ':'))
			snprintf(handler, sizeof(handler), "__main__:%s", m);
		else
			snprintf(handler, sizeof(handler), "%s", m);
		cJSON_AddStringToObject(doc, "handler", handler);
	} else if (ex.main) {
		cJSON_AddStringToObject(doc, "handler", ex.main->valuestring);
	}
	return 0;
}

int gw_deploy_parse_openwhisk(const char *name, const char *body, size_t len,
			      struct gw_deploy_req *out, char *err, size_t errlen)
{
	struct cfg_ctx ctx = {.file = "request"};
	struct ow_limits lim = {0};
	struct ow_body b = {0};
	cJSON *root = NULL, *doc;
	int rc;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	rc = parse_json_object(&ctx, body, len, &root);
	if (!rc)
		rc = check_name(&ctx, name, false, root, out);
	if (!rc)
		rc = cfg_parse_object(&ctx, "", root, ow_body_keys, &b);
	doc = cJSON_CreateObject();
	if (!rc && !doc)
		rc = -ENOMEM;
	out->doc = doc;
	if (!rc && b.exec)
		rc = ow_exec(&ctx, b.exec, out);
	out->partial = !b.exec;
	if (!rc && b.limits)
		rc = cfg_parse_object(&ctx, "limits", b.limits, ow_limit_keys, &lim);
	if (!rc) {
		if (lim.timeout.given)
			cJSON_AddNumberToObject(doc, "timeout_ms", lim.timeout.value);
		if (lim.memory.given)
			cJSON_AddNumberToObject(doc, "memory_mb", lim.memory.value);
		if (lim.concurrency.given)
			cJSON_AddNumberToObject(doc, "concurrency", lim.concurrency.value);
		if (lim.logs.given)
			cJSON_AddNumberToObject(doc, "logs_bytes",
						(double)lim.logs.value * 1048576.0);
	}
	if (!rc && b.parameters) {
		cJSON *params = NULL;

		rc = ow_pairs(&ctx, "parameters", b.parameters, &params);
		if (params)
			cJSON_AddItemToObject(doc, "parameters", params);
	}
	if (!rc && b.annotations) {
		cJSON *check = NULL;

		rc = ow_pairs(&ctx, "annotations", b.annotations, &check);
		cJSON_Delete(check);
		if (!rc)
			cJSON_AddItemToObject(doc, "annotations",
					      cJSON_Duplicate(b.annotations, true));
	}
	cJSON_Delete(root);
	return finish(&ctx, rc, out, err, errlen);
}

cJSON *gw_json_parse(const char *what, const char *text, size_t len, char *err, size_t errlen)
{
	struct cfg_ctx ctx = {.file = what, .quiet = true};
	cJSON *root = cfg_parse_json(&ctx, text, len);

	if (!root && err && errlen)
		snprintf(err, errlen, "%s", ctx.err[0] ? ctx.err : strerror(errno));
	return root;
}
