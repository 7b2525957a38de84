/* spec.c - function specs from JSON: defaults, key table, cross-field checks naming the field. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nemo/config.h"
#include "nemo/log.h"
#include "sandbox_internal.h"

static const char *const runtime_names[] = {"c", "python", "exec", NULL};
static const char *const exec_mode_names[] = {"persistent", "per_request", NULL};

const char *sbx_runtime_name(int runtime)
{
	if (runtime < 0 || runtime > SBX_RUNTIME_EXEC)
		return "?";
	return runtime_names[runtime];
}

void sbx_spec_defaults(struct sbx_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->runtime = -1;
	spec->exec_mode = SBX_EXEC_PERSISTENT;
	spec->memory_mb = 128;
	spec->timeout_ms = 1000;
	spec->max_payload_bytes = 1 << 20;
	spec->concurrency = 1;
	spec->max_pids = 32;
}

/* env: {"KEY": "value", ...} into spec->env as "KEY=VALUE". */
static int parse_env(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		     const struct cfg_key *key)
{
	struct sbx_spec *spec = (struct sbx_spec *)((char *)dst + key->offset);
	const cJSON *var;
	char kpath[256];

	if (!cJSON_IsObject(item))
		return cfg_error(ctx, path, "expected an object of strings");
	spec->n_env = 0;
	cJSON_ArrayForEach (var, item) {
		cfg_join(kpath, sizeof(kpath), path, var->string);
		if (!cJSON_IsString(var))
			return cfg_error(ctx, kpath, "expected a string");
		if (!var->string[0] || strchr(var->string, '='))
			return cfg_error(ctx, kpath,
					 "variable names must be non-empty, without '='");
		if (spec->n_env >= SBX_ENV_MAX)
			return cfg_error(ctx, path, "more than %d variables", SBX_ENV_MAX);
		if ((size_t)snprintf(spec->env[spec->n_env], SBX_ENV_LEN, "%s=%s", var->string,
				     var->valuestring) >= SBX_ENV_LEN)
			return cfg_error(ctx, kpath, "longer than %d characters", SBX_ENV_LEN - 2);
		spec->n_env++;
	}
	return 0;
}

/* parse_env gets the whole spec: offset 0 */
static const struct cfg_key spec_keys[] = {
	CFG_KEY_STR("name", struct sbx_spec, name, true),
	CFG_KEY_ENUM("runtime", struct sbx_spec, runtime, true, runtime_names),
	CFG_KEY_STR("code", struct sbx_spec, code, true),
	CFG_KEY_STR("handler", struct sbx_spec, handler, false),
	CFG_KEY_ENUM("exec_mode", struct sbx_spec, exec_mode, false, exec_mode_names),
	CFG_KEY_RANGE("memory_mb", cfg_parse_u32, struct sbx_spec, memory_mb, false, 4, 65536),
	CFG_KEY_RANGE("timeout_ms", cfg_parse_u32, struct sbx_spec, timeout_ms, false, 1, 3600000),
	CFG_KEY_RANGE("max_payload_bytes", cfg_parse_u32, struct sbx_spec, max_payload_bytes, false,
		      1, 64 << 20),
	CFG_KEY_RANGE("concurrency", cfg_parse_u32, struct sbx_spec, concurrency, false, 1, 4096),
	CFG_KEY_RANGE("max_pids", cfg_parse_u32, struct sbx_spec, max_pids, false, 2, 65536),
	{.name = "env", .parse = parse_env, .offset = 0},
	CFG_KEY_END,
};

/* Checks across fields, and defaults that depend on the runtime. */
static int spec_finish(struct cfg_ctx *ctx, struct sbx_spec *spec)
{
	const char *allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";

	if (strspn(spec->name, allowed) != strlen(spec->name))
		return cfg_error(ctx, "name", "'%s' may hold only letters, digits, '_', '.', '-'",
				 spec->name);
	if (spec->code[0] != '/')
		return cfg_error(ctx, "code", "'%s' must be an absolute path", spec->code);
	switch (spec->runtime) {
	case SBX_RUNTIME_C:
		if (!spec->handler[0])
			snprintf(spec->handler, sizeof(spec->handler), "handle");
		break;
	case SBX_RUNTIME_PYTHON:
		if (!spec->handler[0])
			snprintf(spec->handler, sizeof(spec->handler), "handler");
		break;
	default:
		break;
	}
	if (spec->runtime != SBX_RUNTIME_EXEC && spec->exec_mode != SBX_EXEC_PERSISTENT)
		return cfg_error(ctx, "exec_mode", "only for runtime 'exec'");
	return 0;
}

int sbx_spec_parse(const char *json, size_t len, const char *origin, struct sbx_spec *spec,
		   char *err, size_t errlen)
{
	struct cfg_ctx ctx = {.file = origin ? origin : "spec"};
	cJSON *root;
	int rc;

	sbx_spec_defaults(spec);
	root = cfg_parse_json(&ctx, json, len);
	if (!root) {
		rc = cfg_error(&ctx, NULL, "malformed JSON");
		goto out;
	}
	rc = cfg_parse_object(&ctx, "", root, spec_keys, spec);
	if (!rc)
		rc = spec_finish(&ctx, spec);
	cJSON_Delete(root);
out:
	if (err && errlen)
		snprintf(err, errlen, "%s", ctx.err);
	return rc;
}

int sbx_spec_load(const char *file, struct sbx_spec *spec, char *err, size_t errlen)
{
	struct cfg_ctx ctx = {0};
	cJSON *root = cfg_load_file(&ctx, file);
	int rc;

	sbx_spec_defaults(spec);
	if (!root) {
		int e = errno;

		/* only a failed open is an errno worth passing up; the rest is a bad file */
		rc = strstr(ctx.err, "cannot open") && (e == ENOENT || e == EACCES) ? -e : -EINVAL;
		goto out;
	}
	rc = cfg_parse_object(&ctx, "", root, spec_keys, spec);
	if (!rc)
		rc = spec_finish(&ctx, spec);
	cJSON_Delete(root);
out:
	if (err && errlen)
		snprintf(err, errlen, "%s", ctx.err);
	return rc;
}
