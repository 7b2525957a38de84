/* nemoctl.c - the nemo command line: deploy, invoke, list, get, delete, logs, activations, status. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nemo/client.h"
#include "nemo/config.h"
#include "nemo/version.h"

/* Exit codes: scripts branch on these (documented in gateway/README.md). */
enum {
	EXIT_OK = 0,
	EXIT_USAGE = 1,
	EXIT_UNREACHABLE = 2,
	EXIT_AUTH = 3,
	EXIT_NOT_FOUND = 4,
	EXIT_REJECTED = 5, /* 400, 409, 413, 429 */
	EXIT_FUNCTION = 6, /* 502: the function failed or timed out */
	EXIT_SERVER = 7,
};

#define ACT_PATH  "/api/v1/namespaces/_/actions"
#define ACTV_PATH "/api/v1/namespaces/_/activations"

struct ctl {
	const char *url;
	struct nemo_client *client;
	char token[256];
	bool overwrite;
	bool json;
	int timeout_ms;
	/* deploy */
	const char *code, *runtime, *handler, *spec, *exec_mode, *reply_topic, *packet;
	long memory_mb, timeout_fn_ms, concurrency, max_payload, prewarm;
	const char *env[16];
	int n_env;
	const char *topics[8];
	int n_topics;
	bool code_path;
	/* invoke */
	const char *file;
	bool async, full;
	int limit;
	const char *name_filter;
	/* top */
	bool once;
	int interval_ms;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nemoctl [--url http://HOST:PORT] [--token-file FILE] [--json] COMMAND ...\n"
		"       nemoctl COMMAND --help | --version\n"
		"  deploy NAME --code FILE [--runtime c|python|exec] [--handler H] [--memory-mb N]\n"
		"         [--timeout-ms N] [--concurrency N] [--max-payload-bytes N] [--prewarm N]\n"
		"         [--exec-mode persistent|per_request] [--env KEY=VALUE]...\n"
		"         [--mqtt-topic FILTER]... [--reply-topic TOPIC] [--spec FILE.json]\n"
		"         [--packet nf=NF,lcore=N,...]   (fed by the NF's packets, not by calls)\n"
		"         [--code-path]   (send the path for nemod to read instead of the bytes)\n"
		"         [--overwrite]   (replace a deployed function)\n"
		"  invoke NAME [PAYLOAD | -f FILE | -] [--async] [--full]\n"
		"  list | get NAME | delete NAME | status\n"
		"  logs NAME [--limit N]          recent activations of NAME with their output\n"
		"  activations [ID] [--name NAME] [--limit N]\n"
		"  top [--once] [--json] [--interval-ms N]   one line per NF core, refreshed\n"
		"  nodes                          the cluster's nodes, their spare and warm functions\n"
		"environment: NEMO_URL, NEMO_TOKEN (a token, or uuid:key for Basic),\n"
		"  NEMO_TOKEN_FILE [/etc/nemo/token: its first credential]\n"
		"exit codes: 0 ok, 1 usage, 2 nemod unreachable, 3 auth, 4 not found,\n"
		"  5 rejected (bad request, conflict, too large, too many), 6 function failed,\n"
		"  7 server error\n");
}

/* Each command's own help: nemoctl COMMAND --help. */
static const struct {
	const char *cmd, *text;
} command_help[] = {
	{"deploy",
	 "usage: nemoctl deploy NAME --code FILE [options]\n"
	 "  deploy (or, with --overwrite, replace) function NAME\n"
	 "  --code FILE              the code: a .so (c), a .py (python) or an executable\n"
	 "  --code-path              send the path for nemod to read (under its code_roots)\n"
	 "  --runtime c|python|exec  [from the file name]\n"
	 "  --handler H              [c: handle; python: handler]\n"
	 "  --memory-mb N --timeout-ms N --concurrency N --max-payload-bytes N --prewarm N\n"
	 "  --exec-mode persistent|per_request   --env KEY=VALUE (repeat)\n"
	 "  --mqtt-topic FILTER (repeat) --reply-topic TOPIC\n"
	 "  --packet nf=NF[,lcore=N|any][,batch=N][,function=RING][,core=N][,spin_us=N]\n"
	 "           [,handler=H][,instances=N]   fed by the NF's fn module, not by calls\n"
	 "  --spec FILE.json         more spec keys, as JSON\n"
	 "  --overwrite              replace a deployed function (without it: exit 5)\n"},
	{"invoke", "usage: nemoctl invoke NAME [PAYLOAD | -f FILE | -] [--async] [--full]\n"
		   "  run NAME once; prints its result (--full: the whole activation record;\n"
		   "  --async: prints the activation id at once)\n"},
	{"list",
	 "usage: nemoctl list\n  deployed functions, one a line (--json: as nemod sends them)\n"},
	{"get", "usage: nemoctl get NAME\n  the function's document\n"},
	{"delete", "usage: nemoctl delete NAME\n  remove NAME from nemod and its store\n"},
	{"status", "usage: nemoctl status\n  nemod's state, version and functions\n"},
	{"logs",
	 "usage: nemoctl logs NAME [--limit N]\n  NAME's recent activations with their output\n"},
	{"activations", "usage: nemoctl activations [ID] [--name NAME] [--limit N]\n"
			"  one activation record, or the recent ones\n"},
	{"top", "usage: nemoctl top [--once] [--json] [--interval-ms N]\n"
		"  one line per NF core (harvesting), refreshed\n"},
	{"nodes", "usage: nemoctl nodes\n"
		  "  the cluster's nodes: their spare, queue, and where each function is warm\n"},
};

static int command_usage(const char *cmd, FILE *f)
{
	for (size_t i = 0; i < sizeof(command_help) / sizeof(command_help[0]); i++)
		if (!strcmp(cmd, command_help[i].cmd)) {
			fputs(command_help[i].text, f);
			return 0;
		}
	return -ENOENT;
}

static int exit_for(int status)
{
	if (status >= 200 && status < 300)
		return EXIT_OK;
	if (status == 401 || status == 403)
		return EXIT_AUTH;
	if (status == 404)
		return EXIT_NOT_FOUND;
	if (status == 502 || status == 504)
		return EXIT_FUNCTION;
	if (status >= 400 && status < 500)
		return EXIT_REJECTED;
	return EXIT_SERVER;
}

static char *read_stream(FILE *f, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);

	while (buf) {
		size_t r = fread(buf + n, 1, cap - n - 1, f);

		n += r;
		if (r == 0)
			break;
		if (n == cap - 1) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (buf)
		buf[n] = '\0';
	*len = n;
	return buf;
}

static int load_token(struct ctl *c, const char *file)
{
	const char *env = getenv("NEMO_TOKEN");
	size_t len;
	char *tok;

	if (!file && env) {
		snprintf(c->token, sizeof(c->token), "%s", env);
		return 0;
	}
	if (!file)
		file = getenv("NEMO_TOKEN_FILE") ? getenv("NEMO_TOKEN_FILE") : "/etc/nemo/token";
	{
		FILE *f = fopen(file, "r");

		tok = f ? read_stream(f, &len) : NULL;
		if (f)
			fclose(f);
	}
	if (!tok) {
		fprintf(stderr, "nemoctl: token file %s: %s (set NEMO_TOKEN or --token-file)\n",
			file, strerror(errno));
		return -errno;
	}
	/* the first credential: a line "uuid:key [namespace]" or a bare token; # comments */
	{
		char *line = tok, *save = NULL;

		for (line = strtok_r(tok, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			line += strspn(line, " \t\r");
			if (*line && *line != '#')
				break;
		}
		if (!line) {
			fprintf(stderr, "nemoctl: token file %s holds no credential\n", file);
			free(tok);
			return -EINVAL;
		}
		line[strcspn(line, " \t\r")] = '\0';
		memmove(tok, line, strlen(line) + 1);
	}
	snprintf(c->token, sizeof(c->token), "%s", tok);
	free(tok);
	return 0;
}

static int request(struct ctl *c, const char *method, const char *path, const void *body,
		   size_t len, struct nemo_client_response *resp)
{
	char err[256];
	int rc;

	rc = nemo_client_request(c->client, method, path, body, len, resp, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "nemoctl: cannot reach nemod at %s: %s\n", c->url, err);
		return EXIT_UNREACHABLE;
	}
	return exit_for((int)resp->status);
}

/* nemod's answer as JSON, read as strictly as nemod reads what it is sent. */
static cJSON *parse_reply(const char *body)
{
	struct cfg_ctx ctx = {.file = "nemod's reply", .quiet = true};

	return body ? cfg_parse_json(&ctx, body, strlen(body)) : NULL;
}

/* Print the server's error message, or the body in --json mode, and return the exit code. */
static int report_error(struct ctl *c, struct nemo_client_response *r, int code)
{
	cJSON *j = parse_reply(r->body);
	const cJSON *e = j ? cJSON_GetObjectItem(j, "error") : NULL;

	if (c->json)
		printf("%s\n", r->body);
	else
		fprintf(stderr, "nemoctl: %ld: %s\n", r->status,
			cJSON_IsString(e) ? e->valuestring : r->body);
	cJSON_Delete(j);
	return code;
}

static void print_fn_line(const cJSON *f)
{
	const cJSON *pool = cJSON_GetObjectItem(f, "warm_pool");

	printf("%-24s %-7s %6.0f MB %7.0f ms  idle %-3.0f busy %-3.0f prewarmed %-3.0f zygote %-1.0f  "
	       "cold %.0f warm %.0f zygote %.0f\n",
	       cJSON_GetStringValue(cJSON_GetObjectItem(f, "name")),
	       cJSON_GetStringValue(cJSON_GetObjectItem(f, "runtime")),
	       cJSON_GetNumberValue(cJSON_GetObjectItem(f, "memory_mb")),
	       cJSON_GetNumberValue(cJSON_GetObjectItem(f, "timeout_ms")),
	       pool ? cJSON_GetNumberValue(cJSON_GetObjectItem(pool, "idle")) : 0,
	       pool ? cJSON_GetNumberValue(cJSON_GetObjectItem(pool, "busy")) : 0,
	       pool ? cJSON_GetNumberValue(cJSON_GetObjectItem(pool, "prewarmed")) : 0,
	       pool ? cJSON_GetNumberValue(cJSON_GetObjectItem(pool, "zygotes")) : 0,
	       pool ? cJSON_GetNumberValue(cJSON_GetObjectItem(pool, "cold_starts")) : 0,
	       pool ? cJSON_GetNumberValue(cJSON_GetObjectItem(pool, "warm_starts")) : 0,
	       pool ? cJSON_GetNumberValue(cJSON_GetObjectItem(pool, "zygote_starts")) : 0);
}

static void print_activation_line(const cJSON *a)
{
	const cJSON *resp = cJSON_GetObjectItem(a, "response");
	const cJSON *result = resp ? cJSON_GetObjectItem(resp, "result") : NULL;
	char *text = result ? cJSON_PrintUnformatted(result) : NULL;
	time_t start = (time_t)(cJSON_GetNumberValue(cJSON_GetObjectItem(a, "start")) / 1000);
	const cJSON *dur = cJSON_GetObjectItem(a, "duration");
	char when[32];

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&start));
	printf("%s %s %-12s %-17s %-9s %6.0f ms  %.100s\n", when,
	       cJSON_GetStringValue(cJSON_GetObjectItem(a, "activationId")),
	       cJSON_GetStringValue(cJSON_GetObjectItem(a, "name")),
	       cJSON_GetStringValue(cJSON_GetObjectItem(a, "status")),
	       cJSON_GetStringValue(cJSON_GetObjectItem(a, "startPath")),
	       cJSON_IsNumber(dur) ? dur->valuedouble : 0, text ? text : "");
	free(text);
}

static const char *infer_runtime(const char *code)
{
	size_t n = strlen(code);

	if (n > 3 && !strcmp(code + n - 3, ".so"))
		return "c";
	if (n > 3 && !strcmp(code + n - 3, ".py"))
		return "python";
	return "exec";
}

/*
 * --packet nf=edge,lcore=1,batch=64: the function document's "packet" object, a number where
 * the value is one, else a string. nemod checks the keys and says which one is wrong.
 */
static int packet_trigger(cJSON *spec, const char *arg)
{
	char buf[512], *save = NULL, *kv;
	cJSON *t;

	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf)) {
		fprintf(stderr, "nemoctl: --packet: longer than %zu bytes\n", sizeof(buf) - 1);
		return -1;
	}
	cJSON_DeleteItemFromObject(spec, "packet");
	t = cJSON_AddObjectToObject(spec, "packet");
	for (kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '='), *end;
		long long n;

		if (!eq || eq == kv || !eq[1]) {
			fprintf(stderr, "nemoctl: --packet: '%s' is not KEY=VALUE\n", kv);
			return -1;
		}
		*eq = '\0';
		errno = 0;
		n = strtoll(eq + 1, &end, 10);
		if (!*end && !errno)
			cJSON_AddNumberToObject(t, kv, (double)n);
		else
			cJSON_AddStringToObject(t, kv, eq + 1);
	}
	if (!cJSON_GetObjectItemCaseSensitive(t, "nf")) {
		fprintf(stderr,
			"nemoctl: --packet: nf=NAME is needed (the NF whose rings feed it)\n");
		return -1;
	}
	return 0;
}

static int cmd_deploy(struct ctl *c, const char *name)
{
	struct nemo_client_response r;
	cJSON *spec, *code;
	char path[512], *body;
	int rc;

	if (!c->code) {
		fprintf(stderr, "nemoctl: deploy needs --code FILE\n");
		return EXIT_USAGE;
	}
	if (c->spec) {
		struct cfg_ctx sctx = {.file = c->spec, .quiet = true};
		size_t len;
		FILE *f = fopen(c->spec, "r");
		char *text = f ? read_stream(f, &len) : NULL;

		if (f)
			fclose(f);
		spec = text ? cfg_parse_json(&sctx, text, len) : NULL;
		free(text);
		if (text && !spec) {
			fprintf(stderr, "nemoctl: --spec %s: %s\n", c->spec, sctx.err);
			return EXIT_USAGE;
		}
		if (!cJSON_IsObject(spec)) {
			fprintf(stderr, "nemoctl: --spec %s: not a readable JSON object\n",
				c->spec);
			cJSON_Delete(spec);
			return EXIT_USAGE;
		}
	} else {
		spec = cJSON_CreateObject();
	}
	cJSON_DeleteItemFromObject(spec, "runtime");
	cJSON_AddStringToObject(spec, "runtime", c->runtime ? c->runtime : infer_runtime(c->code));
	if (c->handler)
		cJSON_AddStringToObject(spec, "handler", c->handler);
	if (c->exec_mode)
		cJSON_AddStringToObject(spec, "exec_mode", c->exec_mode);
	if (c->memory_mb)
		cJSON_AddNumberToObject(spec, "memory_mb", (double)c->memory_mb);
	if (c->timeout_fn_ms)
		cJSON_AddNumberToObject(spec, "timeout_ms", (double)c->timeout_fn_ms);
	if (c->concurrency)
		cJSON_AddNumberToObject(spec, "concurrency", (double)c->concurrency);
	if (c->max_payload)
		cJSON_AddNumberToObject(spec, "max_payload_bytes", (double)c->max_payload);
	if (c->prewarm)
		cJSON_AddNumberToObject(spec, "prewarm", (double)c->prewarm);
	if (c->n_env) {
		cJSON *env = cJSON_AddObjectToObject(spec, "env");

		for (int i = 0; i < c->n_env; i++) {
			const char *eq = strchr(c->env[i], '=');
			char key[128];

			if (!eq) {
				fprintf(stderr, "nemoctl: --env %s: expected KEY=VALUE\n",
					c->env[i]);
				cJSON_Delete(spec);
				return EXIT_USAGE;
			}
			snprintf(key, sizeof(key), "%.*s", (int)(eq - c->env[i]), c->env[i]);
			cJSON_AddStringToObject(env, key, eq + 1);
		}
	}
	if (c->n_topics) {
		cJSON *m = cJSON_AddObjectToObject(spec, "mqtt");
		cJSON *t = cJSON_AddArrayToObject(m, "topics");

		for (int i = 0; i < c->n_topics; i++)
			cJSON_AddItemToArray(t, cJSON_CreateString(c->topics[i]));
		if (c->reply_topic)
			cJSON_AddStringToObject(m, "reply_topic", c->reply_topic);
	}
	if (c->packet && packet_trigger(spec, c->packet)) {
		cJSON_Delete(spec);
		return EXIT_USAGE;
	}
	cJSON_DeleteItemFromObject(spec, "code");
	code = cJSON_AddObjectToObject(spec, "code");
	if (c->code_path) {
		char real[4096];

		if (!realpath(c->code, real)) {
			fprintf(stderr, "nemoctl: %s: %s\n", c->code, strerror(errno));
			cJSON_Delete(spec);
			return EXIT_USAGE;
		}
		cJSON_AddStringToObject(code, "path", real);
	} else {
		size_t len;
		FILE *f = fopen(c->code, "rb");
		char *bytes = f ? read_stream(f, &len) : NULL;
		char *b64 = bytes ? nemo_client_base64((uint8_t *)bytes, len) : NULL;
		const char *base = strrchr(c->code, '/');

		if (f)
			fclose(f);
		free(bytes);
		if (!b64) {
			fprintf(stderr, "nemoctl: %s: %s\n", c->code, strerror(errno));
			cJSON_Delete(spec);
			return EXIT_USAGE;
		}
		cJSON_AddStringToObject(code, "base64", b64);
		cJSON_AddStringToObject(code, "filename", base ? base + 1 : c->code);
		free(b64);
	}
	body = cJSON_PrintUnformatted(spec);
	cJSON_Delete(spec);
	/* replacing a deployed function is a choice: --overwrite */
	snprintf(path, sizeof(path), ACT_PATH "/%s%s", name, c->overwrite ? "?overwrite=true" : "");
	rc = request(c, "PUT", path, body, strlen(body), &r);
	free(body);
	if (rc == EXIT_UNREACHABLE)
		return rc;
	if (rc && r.status == 409 && !c->json) {
		fprintf(stderr,
			"nemoctl: function '%s' is already deployed: add --overwrite to replace it\n",
			name);
	} else if (rc) {
		rc = report_error(c, &r, rc);
	} else if (c->json) {
		printf("%s\n", r.body);
	} else {
		cJSON *j = parse_reply(r.body);

		printf("deployed %s (version %s)\n", name,
		       cJSON_GetStringValue(cJSON_GetObjectItem(j, "version")));
		cJSON_Delete(j);
	}
	nemo_client_response_release(&r);
	return rc;
}

static int cmd_invoke(struct ctl *c, const char *name, const char *payload)
{
	struct nemo_client_response r;
	char path[512], *body = NULL;
	size_t len = 0;
	int rc;

	if (c->file || (payload && !strcmp(payload, "-")) || (!payload && !isatty(0))) {
		FILE *f = c->file ? fopen(c->file, "rb") : stdin;

		body = f ? read_stream(f, &len) : NULL;
		if (f && f != stdin)
			fclose(f);
		if (!body) {
			fprintf(stderr, "nemoctl: %s: %s\n", c->file ? c->file : "stdin",
				strerror(errno));
			return EXIT_USAGE;
		}
	} else {
		body = strdup(payload ? payload : "{}");
		len = strlen(body);
	}
	if (c->async)
		snprintf(path, sizeof(path), ACT_PATH "/%s?blocking=false", name);
	else
		snprintf(path, sizeof(path), ACT_PATH "/%s?blocking=true&result=%s", name,
			 c->full || c->json ? "false" : "true");
	rc = request(c, "POST", path, body, len, &r);
	free(body);
	if (rc == EXIT_UNREACHABLE)
		return rc;
	if (c->json || (c->full && !rc)) {
		printf("%s\n", r.body);
	} else if (rc) {
		report_error(c, &r, rc);
	} else if (c->async) {
		cJSON *j = parse_reply(r.body);

		printf("%s\n", cJSON_GetStringValue(cJSON_GetObjectItem(j, "activationId")));
		cJSON_Delete(j);
	} else {
		fwrite(r.body, 1, r.body_len, stdout);
		if (!r.body_len || r.body[r.body_len - 1] != '\n')
			putchar('\n');
	}
	/* --json prints the activation record, which nemod sends with the function's code */
	nemo_client_response_release(&r);
	return rc;
}

static int cmd_simple(struct ctl *c, const char *method, const char *path, int kind)
{
	struct nemo_client_response r;
	int rc = request(c, method, path, NULL, 0, &r);
	cJSON *j, *it;

	if (rc == EXIT_UNREACHABLE)
		return rc;
	if (rc) {
		rc = report_error(c, &r, rc);
		nemo_client_response_release(&r);
		return rc;
	}
	if (c->json) {
		printf("%s\n", r.body);
		nemo_client_response_release(&r);
		return 0;
	}
	j = parse_reply(r.body);
	switch (kind) {
	case 'l': /* list */
		if (!cJSON_GetArraySize(j))
			printf("no functions deployed\n");
		cJSON_ArrayForEach (it, j) {
			print_fn_line(it);
		}
		break;
	case 'a': /* activations */
		if (cJSON_IsArray(j)) {
			cJSON_ArrayForEach (it, j) {
				print_activation_line(it);
			}
		} else {
			char *text = cJSON_Print(j);

			printf("%s\n", text ? text : r.body);
			free(text);
		}
		break;
	case 's': { /* status */
		const cJSON *dm = cJSON_GetObjectItem(j, "daemon");
		const cJSON *fns = cJSON_GetObjectItem(j, "functions");

		printf("nemod %s: pid %.0f, up %.0f s, backend %s, dispatcher %s, %.0f in flight, "
		       "%.0f queued\n",
		       cJSON_GetStringValue(cJSON_GetObjectItem(dm, "status")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(dm, "pid")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(dm, "uptime_s")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(dm, "backend")),
		       cJSON_GetStringValue(cJSON_GetObjectItem(dm, "dispatcher")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(dm, "inflight")),
		       cJSON_GetNumberValue(cJSON_GetObjectItem(dm, "async_queue")));
		if (cJSON_GetObjectItem(dm, "mqtt_connected"))
			printf("mqtt: %s\n", cJSON_IsTrue(cJSON_GetObjectItem(dm, "mqtt_connected"))
						     ? "connected"
						     : "disconnected (reconnecting)");
		printf("%d functions\n", cJSON_GetArraySize(fns));
		cJSON_ArrayForEach (it, fns) {
			print_fn_line(it);
		}
		break;
	}
	case 'd':
		printf("deleted\n");
		break;
	case 'n': { /* cluster nodes */
		const cJSON *nodes = cJSON_GetObjectItem(j, "nodes");

		printf("node %s (%s), etcd %s\n",
		       cJSON_GetStringValue(cJSON_GetObjectItem(j, "node")),
		       cJSON_IsTrue(cJSON_GetObjectItem(j, "healthy")) ? "in the cluster"
								       : "OUT of the cluster",
		       cJSON_GetStringValue(cJSON_GetObjectItem(j, "etcd")));
		printf("%-12s %-22s %6s %6s %7s  %s\n", "NODE", "ADDRESS", "SPARE", "QUEUE",
		       "AGE_MS", "WARM");
		cJSON_ArrayForEach (it, nodes) {
			char *warm = cJSON_PrintUnformatted(cJSON_GetObjectItem(it, "warm"));

			printf("%-12s %-22s %6.2f %6.0f %7.0f  %s\n",
			       cJSON_GetStringValue(cJSON_GetObjectItem(it, "name")),
			       cJSON_GetStringValue(cJSON_GetObjectItem(it, "address")),
			       cJSON_GetNumberValue(cJSON_GetObjectItem(it, "spare_cores")),
			       cJSON_GetNumberValue(cJSON_GetObjectItem(it, "queue")),
			       cJSON_GetNumberValue(cJSON_GetObjectItem(it, "age_ms")),
			       warm ? warm : "{}");
			free(warm);
		}
		break;
	}
	default: {
		char *text = cJSON_Print(j);

		printf("%s\n", text ? text : r.body);
		free(text);
	}
	}
	cJSON_Delete(j);
	nemo_client_response_release(&r);
	return 0;
}

/* ---- top ------------------------------------------------------------------------------------- */

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static const cJSON *core_by_cpu(const cJSON *arr, int cpu)
{
	const cJSON *k;

	cJSON_ArrayForEach (k, arr)
		if ((int)num(k, "cpu") == cpu)
			return k;
	return NULL;
}

static int fetch_cores(struct ctl *c, cJSON **out)
{
	struct nemo_client_response r = {0};
	int code = request(c, "GET", "/api/v1/cores", NULL, 0, &r);

	if (code == EXIT_UNREACHABLE)
		return code;
	if (code != EXIT_OK)
		return report_error(c, &r, code);
	*out = parse_reply(r.body);
	nemo_client_response_release(&r);
	return *out ? EXIT_OK : EXIT_SERVER;
}

/*
 * One line per NF core. Rates and the harvest_ratio are over the refresh interval (the
 * difference of two samples of the cumulative figures), so a line says what is happening now.
 */
static void print_top(const cJSON *prev, const cJSON *cur, double dt_s)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(cur, "cores"), *k;
	const cJSON *parr = prev ? cJSON_GetObjectItemCaseSensitive(prev, "cores") : NULL;
	const cJSON *disp = cJSON_GetObjectItemCaseSensitive(cur, "dispatcher");

	printf("nemo top  dispatcher=%s  interval=%.1fs\n",
	       cJSON_IsString(disp) ? disp->valuestring : "?", dt_s);
	printf("%4s %-4s %6s %6s %6s %7s %5s %5s %6s %5s %6s %7s %6s %6s %6s %6s %s\n", "CPU", "NF",
	       "BUSY%", "SPARE%", "HARV%", "H_RATIO", "PRED", "WARM", "FROZEN", "MOVED", "THROTL",
	       "INV/S", "COLD", "WARM", "PREW", "ZYGOTE", "STATE");
	if (!cJSON_GetArraySize(arr))
		printf("  (no NF cores: harvesting is off, or no NF channel is attached yet)\n");
	cJSON_ArrayForEach (k, arr) {
		const cJSON *p = parr ? core_by_cpu(parr, (int)num(k, "cpu")) : NULL;
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(k, "starts");
		const cJSON *up = cJSON_GetObjectItemCaseSensitive(k, "up");
		const cJSON *rec = cJSON_GetObjectItemCaseSensitive(k, "reclaimed");
		double spare = num(k, "spare_seconds_total"),
		       harv = num(k, "harvested_seconds_total");
		double samp = num(k, "sampled_seconds_total"), inv = num(k, "invocations");
		double busy, spare_pct, harv_pct, ratio, rate;
		char state[32];

		if (p) {
			double ds = spare - num(p, "spare_seconds_total");
			double dh = harv - num(p, "harvested_seconds_total");
			double dw = samp - num(p, "sampled_seconds_total");

			spare_pct = dw > 0 ? 100.0 * ds / dw : 0;
			harv_pct = dw > 0 ? 100.0 * dh / dw : 0;
			ratio = ds > 0 ? dh / ds : 0;
			busy = dw > 0 ? 100.0 - spare_pct : 0;
			rate = dt_s > 0 ? (inv - num(p, "invocations")) / dt_s : 0;
		} else {
			spare_pct = samp > 0 ? 100.0 * spare / samp : 0;
			harv_pct = samp > 0 ? 100.0 * harv / samp : 0;
			ratio = spare > 0 ? harv / spare : 0;
			busy = samp > 0 ? 100.0 - spare_pct : 0;
			rate = 0;
		}
		if (!cJSON_IsTrue(up))
			snprintf(state, sizeof(state), "NF gone");
		else if (cJSON_IsTrue(rec) && num(k, "moved_to") >= 0)
			snprintf(state, sizeof(state), "reclaimed->cpu%d", (int)num(k, "moved_to"));
		else if (cJSON_IsTrue(rec))
			snprintf(state, sizeof(state), "reclaimed(frozen)");
		else
			snprintf(state, sizeof(state), "harvesting");
		printf("%4d %-4s %6.1f %6.1f %6.1f %7.2f %5.2f %5d %6d %5d %6d %7.1f %6d %6d %6d %6d "
		       "%s\n",
		       (int)num(k, "cpu"), cJSON_IsTrue(up) ? "up" : "down", busy, spare_pct,
		       harv_pct, ratio, num(k, "spare_pred"), (int)num(k, "warm"),
		       (int)num(k, "frozen"), (int)num(k, "moved"), (int)num(k, "throttled"), rate,
		       (int)num(st, "cold"), (int)num(st, "warm"), (int)num(st, "prewarmed"),
		       (int)num(st, "zygote"), state);
	}
	fflush(stdout);
}

static int cmd_top(struct ctl *c)
{
	cJSON *prev = NULL, *cur = NULL;
	bool tty = isatty(STDOUT_FILENO);
	int code, interval = c->interval_ms > 0 ? c->interval_ms : 1000;

	code = fetch_cores(c, &prev);
	if (code)
		return code;
	if (c->json) {
		char *text = cJSON_Print(prev);

		printf("%s\n", text ? text : "{}");
		free(text);
		cJSON_Delete(prev);
		return EXIT_OK;
	}
	for (;;) {
		usleep((useconds_t)(c->once ? 500 : interval) * 1000);
		code = fetch_cores(c, &cur);
		if (code)
			break;
		if (tty && !c->once)
			printf("\033[H\033[2J");
		print_top(prev, cur, (c->once ? 500 : interval) / 1e3);
		cJSON_Delete(prev);
		prev = cur;
		cur = NULL;
		if (c->once)
			break;
	}
	cJSON_Delete(prev);
	return code;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, 'u'},
		{"token-file", required_argument, NULL, 'T'},
		{"json", no_argument, NULL, 'j'},
		{"request-timeout-ms", required_argument, NULL, 'R'},
		{"code", required_argument, NULL, 'c'},
		{"code-path", no_argument, NULL, 'P'},
		{"runtime", required_argument, NULL, 'r'},
		{"handler", required_argument, NULL, 'H'},
		{"memory-mb", required_argument, NULL, 'm'},
		{"timeout-ms", required_argument, NULL, 't'},
		{"concurrency", required_argument, NULL, 'C'},
		{"max-payload-bytes", required_argument, NULL, 'M'},
		{"prewarm", required_argument, NULL, 'W'},
		{"exec-mode", required_argument, NULL, 'E'},
		{"env", required_argument, NULL, 'e'},
		{"mqtt-topic", required_argument, NULL, 'q'},
		{"reply-topic", required_argument, NULL, 'y'},
		{"packet", required_argument, NULL, 'k'},
		{"spec", required_argument, NULL, 's'},
		{"file", required_argument, NULL, 'f'},
		{"async", no_argument, NULL, 'a'},
		{"full", no_argument, NULL, 'F'},
		{"limit", required_argument, NULL, 'n'},
		{"name", required_argument, NULL, 'N'},
		{"once", no_argument, NULL, 'O'},
		{"interval-ms", required_argument, NULL, 'I'},
		{"overwrite", no_argument, NULL, 'o'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool want_help = false;
	struct ctl c = {.timeout_ms = 120000, .limit = 20};
	const char *url = getenv("NEMO_URL"), *token_file = NULL, *cmd, *arg;
	char path[512];
	int opt;

	while ((opt = getopt_long(argc, argv, "u:jc:r:f:n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 'T':
			token_file = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 'R':
			c.timeout_ms = atoi(optarg);
			break;
		case 'c':
			c.code = optarg;
			break;
		case 'P':
			c.code_path = true;
			break;
		case 'r':
			c.runtime = optarg;
			break;
		case 'H':
			c.handler = optarg;
			break;
		case 'm':
			c.memory_mb = atol(optarg);
			break;
		case 't':
			c.timeout_fn_ms = atol(optarg);
			break;
		case 'C':
			c.concurrency = atol(optarg);
			break;
		case 'M':
			c.max_payload = atol(optarg);
			break;
		case 'W':
			c.prewarm = atol(optarg);
			break;
		case 'E':
			c.exec_mode = optarg;
			break;
		case 'e':
			if (c.n_env < 16)
				c.env[c.n_env++] = optarg;
			break;
		case 'q':
			if (c.n_topics < 8)
				c.topics[c.n_topics++] = optarg;
			break;
		case 'y':
			c.reply_topic = optarg;
			break;
		case 'k':
			c.packet = optarg;
			break;
		case 's':
			c.spec = optarg;
			break;
		case 'f':
			c.file = optarg;
			break;
		case 'a':
			c.async = true;
			break;
		case 'F':
			c.full = true;
			break;
		case 'n':
			c.limit = atoi(optarg);
			break;
		case 'N':
			c.name_filter = optarg;
			break;
		case 'O':
			c.once = true;
			break;
		case 'I':
			c.interval_ms = atoi(optarg);
			break;
		case 'o':
			c.overwrite = true;
			break;
		case 'V':
			printf("nemoctl %s\n", NEMO_VERSION);
			return EXIT_OK;
		case 'h':
			want_help = true;
			break;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(want_help ? stdout : stderr);
		return want_help ? EXIT_OK : EXIT_USAGE;
	}
	cmd = argv[optind];
	arg = optind + 1 < argc ? argv[optind + 1] : NULL;
	if (want_help || !strcmp(cmd, "help")) {
		const char *which = !strcmp(cmd, "help") ? arg : cmd;

		if (!which) {
			usage(stdout);
			return EXIT_OK;
		}
		if (command_usage(which, stdout)) {
			fprintf(stderr, "nemoctl: unknown command '%s'\n", which);
			usage(stderr);
			return EXIT_USAGE;
		}
		return EXIT_OK;
	}
	if (load_token(&c, token_file))
		return EXIT_AUTH;
	c.url = url ? url : "http://127.0.0.1:8080";
	c.client = nemo_client_new(c.url, c.token, c.timeout_ms);
	if (!c.client) {
		fprintf(stderr, "nemoctl: --url %s: expected http://HOST:PORT or https://...\n",
			c.url);
		return EXIT_USAGE;
	}

	if (!strcmp(cmd, "list"))
		return cmd_simple(&c, "GET", ACT_PATH, 'l');
	if (!strcmp(cmd, "status"))
		return cmd_simple(&c, "GET", "/api/v1/status", 's');
	if (!strcmp(cmd, "nodes"))
		return cmd_simple(&c, "GET", "/api/v1/cluster/nodes", 'n');
	if (!strcmp(cmd, "top"))
		return cmd_top(&c);
	if (!strcmp(cmd, "activations")) {
		if (arg)
			snprintf(path, sizeof(path), ACTV_PATH "/%s", arg);
		else if (c.name_filter)
			snprintf(path, sizeof(path), ACTV_PATH "?docs=true&name=%s&limit=%d",
				 c.name_filter, c.limit);
		else
			snprintf(path, sizeof(path), ACTV_PATH "?docs=true&limit=%d", c.limit);
		return cmd_simple(&c, "GET", path, arg ? 'g' : 'a');
	}
	if (!arg) {
		fprintf(stderr, "nemoctl: %s needs a function name\n", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(cmd, "deploy"))
		return cmd_deploy(&c, arg);
	if (!strcmp(cmd, "invoke"))
		return cmd_invoke(&c, arg, optind + 2 < argc ? argv[optind + 2] : NULL);
	if (!strcmp(cmd, "get")) {
		snprintf(path, sizeof(path), ACT_PATH "/%s", arg);
		return cmd_simple(&c, "GET", path, 'g');
	}
	if (!strcmp(cmd, "delete")) {
		snprintf(path, sizeof(path), ACT_PATH "/%s", arg);
		return cmd_simple(&c, "DELETE", path, 'd');
	}
	if (!strcmp(cmd, "logs")) {
		snprintf(path, sizeof(path), ACTV_PATH "?docs=true&name=%s&limit=%d", arg, c.limit);
		return cmd_simple(&c, "GET", path, 'a');
	}
	fprintf(stderr, "nemoctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_USAGE;
}
