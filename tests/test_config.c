/* test_config.c - the key-table parser: good input, and every kind of bad input, named. */
#include <errno.h>
#include <stdint.h>
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

/* Parse text through cfg_parse_json() as "body.json" (SIZE_MAX: up to the NUL). */
static cJSON *parse_text(const char *text, size_t len, struct cfg_ctx *ctx)
{
	if (len == SIZE_MAX)
		len = strlen(text);
	memset(ctx, 0, sizeof(*ctx));
	ctx->file = "body.json";
	ctx->quiet = true;
	return cfg_parse_json(ctx, text, len);
}

static void expect_text_error(const char *text, size_t len, const char *needle)
{
	struct cfg_ctx ctx;
	cJSON *root = parse_text(text, len, &ctx);

	CU_ASSERT_PTR_NULL(root);
	cJSON_Delete(root);
	CU_ASSERT_EQUAL(errno, EINVAL);
	if (!strstr(ctx.err, needle))
		printf("\n  %s: error was: %s (wanted '%s')\n", text, ctx.err, needle);
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, needle));
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, "body.json"));
}

/*
 * A key given twice is an error naming it, at the root, in nested objects a table describes
 * and in those it does not: cJSON keeps both members and two readers would disagree.
 */
static void test_duplicate_keys(void)
{
	expect_error("{\"queues\":4,\"queues\":5}", "key 'queues': given more than once");
	/* the case that deployed over another function: one reader takes the first name */
	expect_text_error("{\"name\":\"mine\",\"code\":{},\"name\":\"victim\"}", SIZE_MAX,
			  "key 'name': given more than once");
	expect_text_error("{\"env\":{\"A\":\"1\",\"B\":\"2\",\"A\":\"3\"}}", SIZE_MAX,
			  "key 'env.A': given more than once");
	expect_text_error("{\"l\":[{\"x\":1},{\"y\":1,\"y\":2}]}", SIZE_MAX,
			  "key 'l[1].y': given more than once");
	/* \u0000 would have made these two equal after decoding: both are refused */
	expect_text_error("{\"name\":1,\"name\\u0000x\":2}", SIZE_MAX, "\\u0000");
	/* the same key spelt with an escape is the same key */
	expect_text_error("{\"ab\":1,\"a\\u0062\":2}", SIZE_MAX, "key 'ab': given more than once");
}

/* Objects past the pairwise limit are checked by sorting: same answer, in n log n. */
static void test_duplicate_keys_large(void)
{
	size_t cap = 200000, n = 0;
	char *text = malloc(cap);
	struct cfg_ctx ctx;
	cJSON *root;

	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	n += (size_t)snprintf(text + n, cap - n, "{");
	for (int i = 0; i < 5000; i++)
		n += (size_t)snprintf(text + n, cap - n, "%s\"k%d\":%d", i ? "," : "", i, i);
	snprintf(text + n, cap - n, "}");
	root = parse_text(text, strlen(text), &ctx);
	CU_ASSERT_PTR_NOT_NULL(root);
	CU_ASSERT_EQUAL(cJSON_GetArraySize(root), 5000);
	cJSON_Delete(root);
	snprintf(text + n, cap - n, ",\"k4321\":0}");
	expect_text_error(text, strlen(text), "key 'k4321': given more than once");
	free(text);
}

/* What C strings would silently change is refused, naming the line. */
static void test_strings_that_would_change(void)
{
	struct cfg_ctx ctx;
	cJSON *root;

	expect_text_error("{\"name\":\"victim\\u0000junk\"}", SIZE_MAX,
			  "line 1 holds \\u0000, which would cut it short");
	expect_text_error("{\n\"a\":\"x\",\n\"b\":\"tab\there\"}", SIZE_MAX,
			  "line 3 holds a raw control character");
	expect_text_error("{\"a\":1}{\"a\":2}", SIZE_MAX, "unexpected text after the JSON value");
	/* an embedded NUL byte after the value is text, not an end */
	expect_text_error("{\"a\":1}\0{\"a\":2}", 15, "unexpected text after the JSON value");
	expect_text_error("{\"a\":", SIZE_MAX, "malformed JSON near line 1");
	/* escaped backslashes before "u0000" are not an escape of NUL; trailing blanks are fine */
	root = parse_text("{\"a\":\"\\\\u0000\",\"b\":\"\\u0001\"}\n  ", SIZE_MAX, &ctx);
	CU_ASSERT_PTR_NOT_NULL(root);
	if (root)
		CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(root, "a")->valuestring, "\\u0000");
	cJSON_Delete(root);
	/* a string key: control characters in names, paths and handlers */
	expect_error("{\"queues\":1,\"name\":\"ab\\ncd\"}",
		     "key 'name': holds a control character (0x0a) at offset 2");
	expect_error("{\"queues\":1,\"name\":\"ab\\u007f\"}", "holds a control character (0x7f)");
}

/* A duplicate in a file names the file and the key. */
static void test_duplicate_in_file(void)
{
	char path[] = "/tmp/nemo-test-cfg-XXXXXX";
	const char *text = "{\n\"ports\": [{\"vdev\": \"a\", \"vdev\": \"b\"}]\n}\n";
	struct cfg_ctx ctx = {.quiet = true};
	int fd = mkstemp(path);
	cJSON *root;

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	root = cfg_load_file(&ctx, path);
	unlink(path);
	CU_ASSERT_PTR_NULL(root);
	cJSON_Delete(root);
	CU_ASSERT_EQUAL(errno, EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, path));
	CU_ASSERT_PTR_NOT_NULL(strstr(ctx.err, "key 'ports[0].vdev': given more than once"));
}

NEMO_SUITE(config, NULL, NULL, {"good config parses", test_good},
	   {"each error names file and key", test_errors_name_the_key},
	   {"malformed and missing files", test_malformed_file},
	   {"a key given twice is an error naming it", test_duplicate_keys},
	   {"duplicates in a 5000-key object", test_duplicate_keys_large},
	   {"strings C would cut or change are refused", test_strings_that_would_change},
	   {"a duplicate in a file names file and key", test_duplicate_in_file})
