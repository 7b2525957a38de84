/* test_config.c - the key-table parser: good input, and every kind of bad input, named. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nemo/config.h"
#include "test.h"

struct sample {
	uint32_t queues;
	double ratio;
	bool enabled;
	char name[16];
	int mode;
};

static const char *const modes[] = {"poll", "sleep", "interrupt", NULL};

static const struct cfg_key sample_keys[] = {
	CFG_KEY_RANGE("queues", cfg_parse_u32, struct sample, queues, true, 1, 64),
	CFG_KEY("ratio", cfg_parse_double, struct sample, ratio, false),
	CFG_KEY("enabled", cfg_parse_bool, struct sample, enabled, false),
	CFG_KEY_STR("name", struct sample, name, false),
	CFG_KEY_ENUM("mode", struct sample, mode, false, modes),
	CFG_KEY_END,
};

static int parse(const char *json, struct sample *out, struct cfg_ctx *ctx)
{
	cJSON *root = cJSON_Parse(json);
	int rc;

	memset(ctx, 0, sizeof(*ctx));
	ctx->file = "test.json";
	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	memset(out, 0, sizeof(*out));
	rc = cfg_parse_object(ctx, "", root, sample_keys, out);
	cJSON_Delete(root);
	return rc;
}

static void test_good(void)
{
	struct cfg_ctx ctx;
	struct sample s;

	CU_ASSERT_EQUAL(parse("{\"queues\":4,\"ratio\":0.5,\"enabled\":true,\"name\":\"a\","
			      "\"mode\":\"sleep\"}",
			      &s, &ctx),
			0);
	CU_ASSERT_EQUAL(s.queues, 4);
	CU_ASSERT_DOUBLE_EQUAL(s.ratio, 0.5, 1e-9);
	CU_ASSERT_TRUE(s.enabled);
	CU_ASSERT_STRING_EQUAL(s.name, "a");
	CU_ASSERT_EQUAL(s.mode, 1);
	CU_ASSERT_STRING_EQUAL(ctx.err, "");
}

static void expect_error(const char *json, const char *needle)
{
	struct cfg_ctx ctx;
	struct sample s;

	CU_ASSERT_EQUAL(parse(json, &s, &ctx), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, "test.json"));
	if (!strstr(ctx.err, needle))
		printf("\n  error was: %s (wanted '%s')\n", ctx.err, needle);
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, needle));
}

static void test_errors_name_the_key(void)
{
	expect_error("{\"queues\":4,\"colour\":1}", "key 'colour': unknown key");
	expect_error("{\"queues\":\"4\"}", "key 'queues': expected an integer, got a string");
	expect_error("{\"queues\":1.5}", "key 'queues': expected an integer");
	expect_error("{\"queues\":65}", "key 'queues': 65 is out of range");
	expect_error("{}", "key 'queues': required key is missing");
	expect_error("{\"queues\":1,\"enabled\":1}", "key 'enabled': expected true or false");
	expect_error("{\"queues\":1,\"mode\":\"spin\"}", "'spin' is not one of: poll, sleep");
	expect_error("{\"queues\":1,\"name\":\"0123456789abcdefXYZ\"}", "key 'name': longer than");
	expect_error("[1,2]", "expected an object, got an array");
}

static void test_malformed_file(void)
{
	char path[] = "/tmp/nemo-test-cfg-XXXXXX";
	struct cfg_ctx ctx = {0};
	int fd = mkstemp(path);
	cJSON *root;

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(write(fd, "{\n\"a\": 1,\n\"b\": }\n", 17) == 17);
	close(fd);
	root = cfg_load_file(&ctx, path);
	unlink(path);
	CU_ASSERT_PTR_NULL(root);
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, "malformed JSON near line 3"));
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, path));

	memset(&ctx, 0, sizeof(ctx));
	CU_ASSERT_PTR_NULL(cfg_load_file(&ctx, "/nonexistent/nemo.json"));
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, "cannot open: No such file"));
}

NEMO_SUITE(config, NULL, NULL, {"good config parses", test_good},
	   {"each error names file and key", test_errors_name_the_key},
	   {"malformed and missing files", test_malformed_file})
