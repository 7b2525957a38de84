/* fuzz_config.c - JSON text through cfg_parse_json(), a table of every stock parser, nf's config. */
#include <string.h>

#include "fuzz.h"
#include "nemo/config.h"
#include "nemo/nf.h"

struct inner {
	uint32_t count;
	char tag[8];
};

struct sample {
	uint32_t u32;
	uint64_t u64;
	int32_t i32;
	double ratio;
	bool enabled;
	char name[16];
	int mode;
	struct inner inner;
};

static const char *const modes[] = {"poll", "sleep", "interrupt", NULL};

static const struct cfg_key inner_keys[] = {
	CFG_KEY_RANGE("count", cfg_parse_u32, struct inner, count, true, 1, 64),
	CFG_KEY_STR("tag", struct inner, tag, false),
	CFG_KEY_END,
};

static int parse_inner(struct cfg_ctx *ctx, const char *path, const cJSON *item, void *dst,
		       const struct cfg_key *key)
{
	return cfg_parse_object(ctx, path, item, inner_keys, (char *)dst + key->offset);
}

static const struct cfg_key sample_keys[] = {
	CFG_KEY("u32", cfg_parse_u32, struct sample, u32, false),
	CFG_KEY("u64", cfg_parse_u64, struct sample, u64, false),
	CFG_KEY_RANGE("i32", cfg_parse_i32, struct sample, i32, false, -100, 100),
	CFG_KEY("ratio", cfg_parse_double, struct sample, ratio, false),
	CFG_KEY("enabled", cfg_parse_bool, struct sample, enabled, false),
	CFG_KEY_STR("name", struct sample, name, false),
	CFG_KEY_ENUM("mode", struct sample, mode, false, modes),
	{.name = "inner", .parse = parse_inner, .offset = offsetof(struct sample, inner)},
	CFG_KEY_END,
};

static struct nf_config nf_cfg; /* large: not on the stack */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg_ctx ctx = {.file = "fuzz.json", .quiet = true};
	struct sample s = {0};
	cJSON *root;
	char *text;

	root = cfg_parse_json(&ctx, (const char *)data, size);
	if (!root) {
		FUZZ_ASSERT(ctx.err[0]); /* every refusal says why */
	} else {
		if (cfg_parse_object(&ctx, "", root, sample_keys, &s) == 0) {
			FUZZ_ASSERT(!ctx.err[0]);
			FUZZ_ASSERT(memchr(s.name, 0, sizeof(s.name)));
			FUZZ_ASSERT(memchr(s.inner.tag, 0, sizeof(s.inner.tag)));
			FUZZ_ASSERT(s.i32 >= -100 && s.i32 <= 100);
			FUZZ_ASSERT(s.mode >= 0 && s.mode <= 2);
			FUZZ_ASSERT(s.u64 <= (1ull << 53));
		} else {
			FUZZ_ASSERT(ctx.err[0]);
		}
		cJSON_Delete(root);
	}

	/* nemo-nf's config reads C text */
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(&ctx, 0, sizeof(ctx));
	ctx.quiet = true;
	if (nf_config_parse(text, "fuzz.json", &nf_cfg, &ctx) == 0) {
		FUZZ_ASSERT(nf_cfg.nb_lcores >= 1 && nf_cfg.nb_lcores <= NF_MAX_LCORES);
		FUZZ_ASSERT(memchr(nf_cfg.name, 0, sizeof(nf_cfg.name)));
		nf_config_free(&nf_cfg);
	} else {
		FUZZ_ASSERT(ctx.err[0]);
	}
	free(text);
	return 0;
}
