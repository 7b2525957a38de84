/* test_gateway_parsers.c - the gateway's parsers as plain functions: deploy bodies, routes,
 * credentials. Bytes in, a result or -errno with a message out; no daemon, no connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../gateway/gw_internal.h"
#include "test.h"

/* a literal and its length */
#define B(s) s, strlen(s)

static void test_openwhisk_body(void)
{
	struct gw_deploy_req req;
	char err[512];
	int rc;

	rc = gw_deploy_parse_openwhisk(
		"hello",
		B("{\"exec\":{\"kind\":\"python:3\",\"code\":\"def main(a):\\n  return a\\n\"},"
		  "\"limits\":{\"timeout\":5000,\"memory\":256,\"logs\":2},"
		  "\"parameters\":[{\"key\":\"g\",\"value\":\"hi\"}],"
		  "\"annotations\":[{\"key\":\"web-export\",\"value\":true}]}"),
		&req, err, sizeof(err));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(req.code_kind, GW_CODE_BYTES);
	CU_ASSERT_FALSE(req.partial);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(req.doc, "runtime")),
			       "python");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(req.doc, "handler_style")),
			       "dict");
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(req.doc, "timeout_ms")), 5000);
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(cJSON_GetObjectItem(req.doc, "logs_bytes")),
			2 * 1048576);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(cJSON_GetObjectItem(
				       cJSON_GetObjectItem(req.doc, "parameters"), "g")),
			       "hi");
	gw_deploy_req_release(&req);

	/* only limits: a partial update */
	rc = gw_deploy_parse_openwhisk("hello", B("{\"limits\":{\"timeout\":7000}}"), &req, err,
				       sizeof(err));
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_TRUE(req.partial);
	gw_deploy_req_release(&req);

	/* bad input names what is wrong */
	rc = gw_deploy_parse_openwhisk("hello",
				       B("{\"exec\":{\"kind\":\"java:8\",\"code\":\"x\"}}"), &req,
				       err, sizeof(err));
	CU_ASSERT_EQUAL(rc, -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "exec.kind"));
	rc = gw_deploy_parse_openwhisk("hello", B("{\"exec\":{\"kind\":\"python:3\"},\"bogus\":1}"),
				       &req, err, sizeof(err));
	CU_ASSERT_EQUAL(rc, -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "bogus"));
	rc = gw_deploy_parse_openwhisk("hello", B("{\"limits\":{\"timeout\":0}}"), &req, err,
				       sizeof(err));
	CU_ASSERT_EQUAL(rc, -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "limits.timeout"));
	rc = gw_deploy_parse_openwhisk("hello", B("{\"parameters\":[{\"value\":1}]}"), &req, err,
				       sizeof(err));
	CU_ASSERT_EQUAL(rc, -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "parameters[0]"));
	rc = gw_deploy_parse_openwhisk("a.b", B("{}"), &req, err, sizeof(err));
	CU_ASSERT_EQUAL(rc, -EINVAL);
	rc = gw_deploy_parse_openwhisk("hello", B("{\"exec\":"), &req, err, sizeof(err));
	CU_ASSERT_EQUAL(rc, -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "malformed JSON"));
}

static void test_native_body(void)
{
	struct gw_deploy_req req;
	char err[512];
	int rc;

	rc = gw_deploy_parse_native("f",
				    B("{\"runtime\":\"c\",\"code\":{\"base64\":\"aGVsbG8=\"}}"),
				    false, &req, err, sizeof(err));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(req.code_kind, GW_CODE_BYTES);
	CU_ASSERT_EQUAL(req.code_len, 5);
	CU_ASSERT_EQUAL(memcmp(req.code, "hello", 5), 0);
	gw_deploy_req_release(&req);
	rc = gw_deploy_parse_native("f", B("{\"runtime\":\"c\",\"code\":{\"base64\":\"@@\"}}"),
				    false, &req, err, sizeof(err));
	CU_ASSERT_EQUAL(rc, -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "code.base64"));
	rc = gw_deploy_parse_native("f", B("{\"runtime\":\"c\",\"code\":{\"path\":\"rel\"}}"),
				    false, &req, err, sizeof(err));
	CU_ASSERT_EQUAL(rc, -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "code.path"));
	rc = gw_deploy_parse_native("f", B("{\"runtime\":\"c\"}"), false, &req, err, sizeof(err));
	CU_ASSERT_EQUAL(rc, -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "code"));
}

static void test_routes(void)
{
	struct gw_ow_route ow;
	struct gw_faas_route fa;

	CU_ASSERT_EQUAL(gw_ow_route_parse("/api/v1/namespaces", &ow), 0);
	CU_ASSERT_EQUAL(ow.route, GW_OW_NAMESPACES);
	CU_ASSERT_EQUAL(gw_ow_route_parse("/api/v1/namespaces/_/actions/echo", &ow), 0);
	CU_ASSERT_EQUAL(ow.route, GW_OW_ACTION);
	CU_ASSERT_STRING_EQUAL(ow.ns, "_");
	CU_ASSERT_STRING_EQUAL(ow.name, "echo");
	CU_ASSERT_EQUAL(gw_ow_route_parse("/api/v1/namespaces/guest/actions/pkg/echo", &ow), 0);
	CU_ASSERT_EQUAL(ow.route, GW_OW_PACKAGE_ACTION);
	CU_ASSERT_EQUAL(gw_ow_route_parse("/api/v1/namespaces/_/actions/../x", &ow), -EINVAL);
	CU_ASSERT_EQUAL(gw_ow_route_parse("/api/v1/namespaces/_/activations/0123/logs", &ow), 0);
	CU_ASSERT_EQUAL(ow.route, GW_OW_ACTIVATION_LOGS);
	CU_ASSERT_STRING_EQUAL(ow.id, "0123");
	CU_ASSERT_EQUAL(gw_ow_route_parse("/api/v1/namespaces/_/activations/0123/x", &ow), -ENOENT);
	CU_ASSERT_EQUAL(gw_ow_route_parse("/api/v1/namespaces/_/triggers/t/x", &ow), 0);
	CU_ASSERT_EQUAL(ow.route, GW_OW_UNSUPPORTED);
	CU_ASSERT_STRING_EQUAL(ow.what, "triggers");
	CU_ASSERT_EQUAL(gw_ow_route_parse("/api/v1/web/guest/default/hello.json", &ow), 0);
	CU_ASSERT_EQUAL(ow.route, GW_OW_UNSUPPORTED);
	CU_ASSERT_EQUAL(gw_ow_route_parse("/nope", &ow), -ENOENT);

	CU_ASSERT_EQUAL(gw_faas_route_parse("/function/echo/a/b", &fa), 0);
	CU_ASSERT_EQUAL(fa.route, GW_FAAS_FUNCTION);
	CU_ASSERT_STRING_EQUAL(fa.name, "echo");
	CU_ASSERT_STRING_EQUAL(fa.sub, "/a/b");
	CU_ASSERT_EQUAL(gw_faas_route_parse("/async-function/echo", &fa), 0);
	CU_ASSERT_EQUAL(fa.route, GW_FAAS_ASYNC);
	CU_ASSERT_STRING_EQUAL(fa.sub, "");
	CU_ASSERT_EQUAL(gw_faas_route_parse("/system/scale-function/echo", &fa), 0);
	CU_ASSERT_EQUAL(fa.route, GW_FAAS_SCALE);
	CU_ASSERT_EQUAL(gw_faas_route_parse("/system/function/a/b", &fa), -EINVAL);
	CU_ASSERT_EQUAL(gw_faas_route_parse("/function/..", &fa), -EINVAL);
	CU_ASSERT_EQUAL(gw_faas_route_parse("/system/secrets/x", &fa), 0);
	CU_ASSERT_EQUAL(fa.route, GW_FAAS_UNSUPPORTED);
	CU_ASSERT_EQUAL(gw_faas_route_parse("/system/nothing", &fa), -ENOENT);
}

static void test_credentials(void)
{
	struct gw_creds c;
	const struct gw_cred *k;
	const char *why = NULL;
	char err[256];
	/* base64 of "u1:key-one" */
	const char *basic = "Basic dTE6a2V5LW9uZQ==";

	CU_ASSERT_EQUAL_FATAL(
		gw_creds_parse(B("# comment\nu1:key-one team\nlegacy-token-0123456789\n"), &c, err,
			       sizeof(err)),
		0);
	CU_ASSERT_EQUAL(c.n, 2);
	k = gw_creds_check(&c, basic, &why);
	CU_ASSERT_PTR_NOT_NULL_FATAL(k);
	CU_ASSERT_STRING_EQUAL(k->ns, "team");
	CU_ASSERT_PTR_NOT_NULL(gw_creds_check(&c, "Bearer key-one", &why));
	CU_ASSERT_PTR_NOT_NULL(gw_creds_check(&c, "Bearer u1:key-one", &why));
	k = gw_creds_check(&c, "Bearer legacy-token-0123456789", &why);
	CU_ASSERT_PTR_NOT_NULL_FATAL(k);
	CU_ASSERT_STRING_EQUAL(k->ns, "nemo");
	CU_ASSERT_PTR_NULL(gw_creds_check(&c, "Bearer nope", &why));
	CU_ASSERT_STRING_EQUAL(why, "invalid token");
	CU_ASSERT_PTR_NULL(gw_creds_check(&c, "Digest x", &why));
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "unsupported"));
	CU_ASSERT_PTR_NULL(gw_creds_check(&c, NULL, &why));
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "missing token"));
	CU_ASSERT_EQUAL(gw_creds_parse(B("short\n"), &c, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 1"));
	CU_ASSERT_EQUAL(gw_creds_parse(B("a:b c d\n"), &c, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(gw_creds_parse(B("# nothing\n"), &c, err, sizeof(err)), -EINVAL);
	/* a bare token that is another credential's key would let its holder in as the other
	 * (another namespace): found by the creds fuzzer */
	CU_ASSERT_EQUAL(gw_creds_parse(B("u1:shared-key-0123456789 team\n"
					 "shared-key-0123456789 other\n"),
				       &c, err, sizeof(err)),
			-EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 2"));
	CU_ASSERT_EQUAL(gw_creds_parse(B("u1:k-0123456789abcdef\nu2:k-0123456789abcdef\n"), &c, err,
				       sizeof(err)),
			-EINVAL);
	/* a credential longer than nemod keeps is refused, never cut: its prefix must not
	 * open the door */
	{
		char long_cred[300], header[320];

		/* a bare token of 240 and of 298 characters (the second is more than one word
		 * can hold: its tail must not become a namespace) */
		memset(long_cred, 't', sizeof(long_cred) - 2);
		long_cred[240] = '\n';
		long_cred[241] = '\0';
		CU_ASSERT_EQUAL(gw_creds_parse(long_cred, strlen(long_cred), &c, err, sizeof(err)),
				-EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "longer than"));
		memset(long_cred, 't', sizeof(long_cred) - 2);
		long_cred[sizeof(long_cred) - 2] = '\n';
		long_cred[sizeof(long_cred) - 1] = '\0';
		CU_ASSERT_EQUAL(gw_creds_parse(long_cred, strlen(long_cred), &c, err, sizeof(err)),
				-EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "longer than"));
		long_cred[0] = 'u';
		long_cred[1] = ':';
		long_cred[150] = '\n';
		long_cred[151] = '\0';
		CU_ASSERT_EQUAL(gw_creds_parse(long_cred, strlen(long_cred), &c, err, sizeof(err)),
				0);
		snprintf(header, sizeof(header), "Bearer %.150s", long_cred);
		CU_ASSERT_PTR_NOT_NULL(gw_creds_check(&c, header, &why));
		snprintf(header, sizeof(header), "Bearer %.100s", long_cred);
		CU_ASSERT_PTR_NULL(gw_creds_check(&c, header, &why));
	}
}

/* A function's key: bare in the default namespace, ns.name elsewhere, and back. */
static void test_function_keys(void)
{
	char key[SBX_NAME_MAX], ns[GW_NS_MAX], name[SBX_NAME_MAX], long_ns[64];

	CU_ASSERT_EQUAL(gw_fn_key("nemo", "nemo", "f", key), 0);
	CU_ASSERT_STRING_EQUAL(key, "f"); /* the layout from before namespaces */
	CU_ASSERT_EQUAL(gw_fn_key("nemo", "alice", "f", key), 0);
	CU_ASSERT_STRING_EQUAL(key, "alice.f");
	gw_key_split("nemo", "alice.f", ns, name);
	CU_ASSERT_STRING_EQUAL(ns, "alice");
	CU_ASSERT_STRING_EQUAL(name, "f");
	gw_key_split("nemo", "f", ns, name);
	CU_ASSERT_STRING_EQUAL(ns, "nemo");
	CU_ASSERT_STRING_EQUAL(name, "f");
	/* a dotted namespace: names hold no '.', so the last one splits */
	CU_ASSERT_EQUAL(gw_fn_key("nemo", "a.b", "c", key), 0);
	gw_key_split("nemo", key, ns, name);
	CU_ASSERT_STRING_EQUAL(ns, "a.b");
	CU_ASSERT_STRING_EQUAL(name, "c");
	CU_ASSERT_TRUE(gw_key_in_ns("nemo", "a.b.c", "a.b"));
	CU_ASSERT_FALSE(gw_key_in_ns("nemo", "a.b.c", "a"));
	CU_ASSERT_FALSE(gw_key_in_ns("nemo", "alice.f", "nemo"));
	CU_ASSERT_TRUE(gw_key_in_ns("nemo", "f", "nemo"));
	CU_ASSERT_FALSE(gw_key_in_ns("nemo", "f", "alice"));
	/* ns.name over 63 characters is refused, never cut into another function's key */
	memset(long_ns, 'n', 60);
	long_ns[60] = '\0';
	CU_ASSERT_EQUAL(gw_fn_key("nemo", long_ns, "abc", key), -ENAMETOOLONG);
	CU_ASSERT_TRUE(gw_key_valid("f"));
	CU_ASSERT_TRUE(gw_key_valid("alice.f"));
	CU_ASSERT_FALSE(gw_key_valid(".f"));
	CU_ASSERT_FALSE(gw_key_valid("alice."));
	CU_ASSERT_FALSE(gw_key_valid("_.f"));
	CU_ASSERT_FALSE(gw_key_valid("a/b.f"));
	CU_ASSERT_FALSE(gw_ns_valid("_"));
	CU_ASSERT_FALSE(gw_ns_valid("a@b"));
}

NEMO_SUITE(gateway_parsers, NULL, NULL, {"OpenWhisk action bodies", test_openwhisk_body},
	   {"nemo's native deploy bodies", test_native_body},
	   {"OpenWhisk and OpenFaaS routes", test_routes},
	   {"the credentials file, Basic and Bearer", test_credentials},
	   {"a function's key in its namespace", test_function_keys});
