/* test_cluster_etcd.c - start and remove real etcd members for the cluster suites. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nemo/base64.h"
#include "test_cluster.h"

#define ETCD_BIN "/usr/bin/etcd"

static struct test_etcd *live[8];
static struct test_etcd_tls *live_certs[4];

bool test_etcd_available(void)
{
	return access(ETCD_BIN, X_OK) == 0;
}

static void rm_rf(const char *dir)
{
	pid_t pid;

	if (!dir[0] || strncmp(dir, "/tmp/nemo-cl-", 13) != 0 || strstr(dir, ".."))
		return;
	pid = fork();
	if (pid == 0) {
		execl("/bin/rm", "rm", "-rf", dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static void cleanup_at_exit(void)
{
	for (int i = 0; i < 8; i++)
		if (live[i])
			test_etcd_stop(live[i]);
	for (int i = 0; i < 4; i++)
		if (live_certs[i])
			test_etcd_remove_certs(live_certs[i]);
}

/* curl's options to reach a member: its CA and a client certificate when it has TLS. */
static void curl_tls(const struct test_etcd_tls *tls, char *out, size_t cap)
{
	if (tls)
		snprintf(out, cap, "--cacert %s --cert %s --key %s", tls->ca, tls->client_cert,
			 tls->client_key);
	else
		out[0] = '\0';
}

/* Does the member answer a range on its client port? */
static bool member_serves(const struct test_etcd *t, int i, const struct test_etcd_tls *tls)
{
	char cmd[768], opts[512];

	curl_tls(tls, opts, sizeof(opts));
	snprintf(cmd, sizeof(cmd),
		 "curl -s -m 1 %s -o /dev/null -w '%%{http_code}' -X POST %s/v3/kv/range "
		 "-d '{\"key\":\"AA==\"}' | grep -q 200",
		 opts, t->endpoint[i]);
	return system(cmd) == 0;
}

static int start_members(struct test_etcd *t, int members, const struct test_etcd_tls *tls,
			 int token_ttl_s, bool client_certs);

int test_etcd_start(struct test_etcd *t, int members)
{
	return start_members(t, members, NULL, 0, false);
}

int test_etcd_start_tls(struct test_etcd *t, const struct test_etcd_tls *tls, int token_ttl_s,
			bool client_certs)
{
	return start_members(t, 1, tls, token_ttl_s, client_certs);
}

static int start_members(struct test_etcd *t, int members, const struct test_etcd_tls *tls,
			 int token_ttl_s, bool client_certs)
{
	static int runs;
	static bool atexit_set;
	char cluster[512] = "";
	size_t off = 0;

	memset(t, 0, sizeof(*t));
	if (members < 1 || members > TEST_ETCD_MAX)
		return -EINVAL;
	if (!atexit_set) {
		atexit(cleanup_at_exit);
		atexit_set = true;
	}
	for (int i = 0; i < 8; i++)
		if (!live[i]) {
			live[i] = t;
			break;
		}
	t->n = members;
	runs++;
	for (int i = 0; i < members; i++) {
		t->client_port[i] = test_free_port();
		do
			t->peer_port[i] = test_free_port();
		while (t->peer_port[i] == t->client_port[i]);
		snprintf(t->endpoint[i], sizeof(t->endpoint[i]), "%s://127.0.0.1:%u",
			 tls ? "https" : "http", t->client_port[i]);
		snprintf(t->dir[i], sizeof(t->dir[i]), "/tmp/nemo-cl-%d-%d-%d", (int)getpid(), runs,
			 i);
		off += (size_t)snprintf(cluster + off, sizeof(cluster) - off,
					"%sm%d=http://127.0.0.1:%u", i ? "," : "", i,
					t->peer_port[i]);
	}
	for (int i = 0; i < members; i++) {
		char name[16], client[64], peer[64], token[64], ttl[16];
		char *argv[40] = {ETCD_BIN,  "--name",
				  name,	     "--data-dir",
				  t->dir[i], "--listen-client-urls",
				  client,    "--advertise-client-urls",
				  client,    "--listen-peer-urls",
				  peer,	     "--initial-advertise-peer-urls",
				  peer,	     "--initial-cluster",
				  cluster,   "--initial-cluster-state",
				  "new",     "--initial-cluster-token",
				  token,     "--heartbeat-interval",
				  "50",	     "--election-timeout",
				  "500",     "--logger",
				  "zap",     "--log-level",
				  "warn",    NULL};
		int rc, argc = 0;

		while (argv[argc])
			argc++;
		if (tls) {
			/* clients over https, with a certificate the CA signed; peers stay http */
			const char *more[] = {"--cert-file",
					      tls->server_cert,
					      "--key-file",
					      tls->server_key,
					      "--auth-token-ttl",
					      ttl,
					      NULL};

			snprintf(ttl, sizeof(ttl), "%d", token_ttl_s > 0 ? token_ttl_s : 300);
			for (int k = 0; more[k]; k++)
				argv[argc++] = (char *)more[k];
			/* (a trusted CA alone has etcd ask clients for certificates too) */
			if (client_certs) {
				argv[argc++] = "--trusted-ca-file";
				argv[argc++] = (char *)tls->ca;
				argv[argc++] = "--client-cert-auth";
			}
			argv[argc] = NULL;
		}
		snprintf(name, sizeof(name), "m%d", i);
		snprintf(client, sizeof(client), "%s://127.0.0.1:%u", tls ? "https" : "http",
			 t->client_port[i]);
		snprintf(peer, sizeof(peer), "http://127.0.0.1:%u", t->peer_port[i]);
		snprintf(token, sizeof(token), "nemo-test-%d-%d", (int)getpid(), runs);
		rc = test_proc_start(&t->p[i], argv);
		if (rc < 0) {
			test_etcd_stop(t);
			return rc;
		}
		t->running[i] = true;
	}
	for (int i = 0; i < members; i++) {
		int waited = 0;

		while (!member_serves(t, i, tls)) {
			if (waited > 20000 || test_proc_wait(&t->p[i], 0) != -ETIMEDOUT) {
				printf("etcd member %d at %s did not serve:\n%s\n", i,
				       t->endpoint[i], test_proc_output(&t->p[i]));
				test_etcd_stop(t);
				return -ETIMEDOUT;
			}
			test_msleep(100);
			waited += 100;
		}
	}
	return 0;
}

void test_etcd_kill(struct test_etcd *t, int i)
{
	if (i < t->n && t->running[i]) {
		kill(t->p[i].pid, SIGKILL);
		test_proc_wait(&t->p[i], 5000);
		t->running[i] = false;
	}
}

void test_etcd_freeze(struct test_etcd *t, int i, bool frozen)
{
	if (i < t->n && t->running[i])
		kill(t->p[i].pid, frozen ? SIGSTOP : SIGCONT);
}

void test_etcd_stop(struct test_etcd *t)
{
	for (int i = 0; i < t->n; i++) {
		if (t->running[i]) {
			kill(t->p[i].pid, SIGCONT);
			test_proc_stop(&t->p[i], 2000);
			t->running[i] = false;
		}
		rm_rf(t->dir[i]);
		t->dir[i][0] = '\0';
	}
	for (int i = 0; i < 8; i++)
		if (live[i] == t)
			live[i] = NULL;
}

/* ---- a secured member: certificates, TLS, auth ------------------------------------------------- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int test_etcd_make_certs(struct test_etcd_tls *tls)
{
	static int runs;
	const char *d = tls->dir;
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
	int rc;

	memset(tls, 0, sizeof(*tls));
	snprintf(tls->dir, sizeof(tls->dir), "/tmp/nemo-cl-certs-%d-%d", (int)getpid(), ++runs);
	snprintf(tls->ca, sizeof(tls->ca), "%s/ca.pem", d);
	snprintf(tls->server_cert, sizeof(tls->server_cert), "%s/server.pem", d);
	snprintf(tls->server_key, sizeof(tls->server_key), "%s/server.key", d);
	snprintf(tls->client_cert, sizeof(tls->client_cert), "%s/client.pem", d);
	snprintf(tls->client_key, sizeof(tls->client_key), "%s/client.key", d);
	for (int i = 0; i < 4; i++)
		if (!live_certs[i]) {
			live_certs[i] = tls;
			break;
		}
	rc = sh("set -e; mkdir -p %s; cd %s; "
		"printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' "
		">server.ext; printf 'extendedKeyUsage=clientAuth\\n' >client.ext; "
		"openssl req -x509 %s -keyout ca.key -out ca.pem -days 1 -subj /CN=nemo-test-ca 2>/dev/null; "
		"openssl req %s -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null; "
		"openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		"-out server.pem -days 1 -extfile server.ext 2>/dev/null; "
		"openssl req %s -keyout client.key -out client.csr -subj /CN=nemo-test-client 2>/dev/null; "
		"openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		"-out client.pem -days 1 -extfile client.ext 2>/dev/null",
		d, d, ec, ec, ec);
	if (rc) {
		printf("openssl could not make the test certificates in %s (exit %d)\n", d, rc);
		test_etcd_remove_certs(tls);
		return -EIO;
	}
	return 0;
}

void test_etcd_remove_certs(struct test_etcd_tls *tls)
{
	rm_rf(tls->dir);
	tls->dir[0] = '\0';
	for (int i = 0; i < 4; i++)
		if (live_certs[i] == tls)
			live_certs[i] = NULL;
}

/* POST body to path on the member, with its TLS, before auth is on. 0: HTTP 200. */
static int auth_call(const struct test_etcd *t, const struct test_etcd_tls *tls, const char *path,
		     const char *body)
{
	char opts[512];

	curl_tls(tls, opts, sizeof(opts));
	return sh("curl -s -m 5 %s -X POST %s%s -d '%s' -o /dev/null -w '%%{http_code}' | "
		  "grep -q 200",
		  opts, t->endpoint[0], path, body);
}

int test_etcd_enable_auth(struct test_etcd *t, const struct test_etcd_tls *tls, const char *user,
			  const char *password, const char *prefix)
{
	char body[512], *key, *end;
	size_t l = strlen(prefix);
	char *pe = strdup(prefix);

	if (!pe || !l) {
		free(pe);
		return -EINVAL;
	}
	pe[l - 1]++; /* the range end of the prefix */
	key = nemo_base64_encode(prefix, l);
	end = nemo_base64_encode(pe, l);
	free(pe);
	if (!key || !end) {
		free(key);
		free(end);
		return -ENOMEM;
	}
	if (auth_call(t, tls, "/v3/auth/user/add", "{\"name\":\"root\",\"password\":\"rootpw\"}") ||
	    auth_call(t, tls, "/v3/auth/role/add", "{\"name\":\"root\"}") ||
	    auth_call(t, tls, "/v3/auth/user/grant", "{\"user\":\"root\",\"role\":\"root\"}"))
		goto fail;
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"password\":\"%s\"}", user, password);
	if (auth_call(t, tls, "/v3/auth/user/add", body))
		goto fail;
	snprintf(body, sizeof(body), "{\"name\":\"%s\"}", user);
	if (auth_call(t, tls, "/v3/auth/role/add", body))
		goto fail;
	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"perm\":{\"permType\":\"READWRITE\",\"key\":\"%s\","
		 "\"range_end\":\"%s\"}}",
		 user, key, end);
	free(key);
	free(end);
	key = end = NULL;
	if (auth_call(t, tls, "/v3/auth/role/grant", body))
		goto fail;
	snprintf(body, sizeof(body), "{\"user\":\"%s\",\"role\":\"%s\"}", user, user);
	if (auth_call(t, tls, "/v3/auth/user/grant", body) ||
	    auth_call(t, tls, "/v3/auth/enable", "{}"))
		goto fail;
	return 0;
fail:
	free(key);
	free(end);
	printf("etcd at %s: turning auth on failed:\n%s\n", t->endpoint[0],
	       test_proc_output(&t->p[0]));
	return -EIO;
}
