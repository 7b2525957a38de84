/*
 * cluster.c - nemod in an edge cluster (cluster/README.md): joins it, shares deploys through
 * the registry in etcd, records async activations there before their 202, adopts a dead
 * node's, forwards calls by the offload policy, and answers the /api/v1/cluster routes. With
 * cluster.enabled false none of this runs and a nemod is alone, as before.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "nemo/base64.h"
#include "nemo/clock.h"
#include "nemo/log.h"
#include "gw_internal.h"

/* A deploy or delete that came from the cluster is not published back to it. */
static __thread bool from_cluster;

/* A result to deliver to its route for a node that died before it did. */
struct delivery {
	struct delivery *next;
	char id[GW_ID_LEN + 1];
	char function[SBX_NAME_MAX];
	char state[24];
	uint8_t *result;
	size_t len;
	char *route;
};

/* An ended activation whose worker has still to deliver its result (one per worker thread). */
struct undelivered {
	pthread_t worker;
	char id[GW_ID_LEN + 1];
};

struct fetch;

/* What this file keeps beside struct gw_cluster, which comes first: d->cluster points at it. */
struct glue {
	struct gw_cluster c;
	/* the fetcher thread: code of functions deployed on other nodes (struct fetch) */
	pthread_t fetcher;
	bool fetcher_started, fetcher_stop;
	pthread_mutex_t fetch_lock;
	pthread_cond_t fetch_cond;
	struct fetch *fetches;
	uint64_t fetch_gen;
	struct cl_fetch_stats fetch_st;
	/* one record applied at a time: the watch's deploys and deletes, the fetcher's deploys */
	pthread_mutex_t apply_lock;
	pthread_mutex_t ack_lock;
	struct undelivered *acks;
	int n_acks, cap_acks;
	/* the route thread: adopted results to deliver (the adopter's thread must not block) */
	pthread_t router;
	bool router_started, router_stop;
	pthread_mutex_t route_lock;
	pthread_cond_t route_cond;
	struct delivery *dl_head, **dl_tail;
};

static struct glue *glue_of(struct gw_daemon *d)
{
	return (struct glue *)d->cluster;
}

static void fetch_cancel(struct glue *g, const char *name);

/* ---- this node's load, for its record and for the policy ---------------------------------------- */

/* Refresh the cached per-core spare (at most every 50 ms). c->lock held. */
static void refresh_spare(struct gw_daemon *d)
{
	struct gw_cluster *c = d->cluster;
	uint64_t now = nemo_now_ns();

	if (c->n_cores && now - c->spare_ns < 50000000ull)
		return;
	c->spare_ns = now;
	if (d->dispatch.ops->cores) {
		struct sched_cosched_core cores[CL_MAX_CORES];
		int n = d->dispatch.ops->cores(d->dispatch.state, cores, CL_MAX_CORES);

		/* harvesting: the NF cores and their predicted spare; none known means none */
		c->n_cores = 0;
		for (int i = 0; i < n; i++) {
			c->cores[c->n_cores] = cores[i].s.cpu;
			c->spare[c->n_cores++] = cores[i].up ? cores[i].s.spare_pred : 0;
		}
		return;
	}
	/*
	 * Without harvesting the sandbox cores are this nemod's: their spare is what its own
	 * invocations in flight leave of them (other tenants of a shared host are not counted).
	 */
	c->n_cores = d->cfg.n_sandbox_cores < CL_MAX_CORES ? d->cfg.n_sandbox_cores : CL_MAX_CORES;
	memcpy(c->cores, d->cfg.sandbox_cores, sizeof(int) * (size_t)c->n_cores);
	for (int i = 0; i < c->n_cores; i++) {
		double busy = (double)atomic_load(&d->inflight) / (double)c->n_cores;

		c->spare[i] = busy >= 1 ? 0 : 1 - busy;
	}
}

struct load_arg {
	struct gw_daemon *d;
	cJSON *warm, *fns;
};

static void add_load(void *arg, struct gw_function *fn)
{
	struct load_arg *la = arg;
	struct sbx_pool_stats st = {0};

	cJSON_AddItemToArray(la->fns, cJSON_CreateString(fn->spec.name));
	if (la->d->backend.ops->stats &&
	    la->d->backend.ops->stats(la->d->backend.state, fn->spec.name, &st) == 0 && st.idle)
		cJSON_AddNumberToObject(la->warm, fn->spec.name, st.idle);
}

static void hook_load(void *arg, struct cl_local_load *out)
{
	struct gw_daemon *d = arg;
	struct gw_cluster *c = d->cluster;
	struct load_arg la = {d, cJSON_CreateObject(), cJSON_CreateArray()};

	gw_fn_foreach(d, add_load, &la);
	pthread_mutex_lock(&c->lock);
	refresh_spare(d);
	out->n_cores = c->n_cores;
	memcpy(out->cores, c->cores, sizeof(int) * (size_t)c->n_cores);
	memcpy(out->spare, c->spare, sizeof(double) * (size_t)c->n_cores);
	free(c->warm_json);
	free(c->fns_json);
	c->warm_json = cJSON_PrintUnformatted(la.warm);
	c->fns_json = cJSON_PrintUnformatted(la.fns);
	out->warm_json = c->warm_json;
	out->functions_json = c->fns_json;
	pthread_mutex_unlock(&c->lock);
	out->queue = d->q_len;
	cJSON_Delete(la.warm);
	cJSON_Delete(la.fns);
}

/* ---- the registry -------------------------------------------------------------------------------- */

/*
 * The code of a function as the cluster shares it: the archive a zip deploy came in (kept in
 * its version folder, *zip true), or its one file; NULL (errno EISDIR) for a folder without
 * its archive (a zip deployed before archives were kept), or unreadable.
 */
static uint8_t *code_bytes(const struct gw_function *fn, size_t *len, bool *zip)
{
	char dir[GW_PATH_MAX], archive[GW_PATH_MAX + 32];
	struct stat st;
	struct dirent *e;
	DIR *dh;
	int files = 0;
	char *slash;

	*zip = false;
	if (stat(fn->spec.code, &st)) {
		errno = EISDIR;
		return NULL;
	}
	/* the version folder: the code itself (a python package), or the folder of its file */
	snprintf(dir, sizeof(dir), "%s", fn->spec.code);
	slash = S_ISDIR(st.st_mode) ? NULL : strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	snprintf(archive, sizeof(archive), "%s/%s", dir, GW_STORE_ARCHIVE);
	if (access(archive, R_OK) == 0) {
		*zip = true;
		return (uint8_t *)gw_read_file(archive, 256u << 20, len);
	}
	if (!S_ISREG(st.st_mode)) {
		errno = EISDIR;
		return NULL;
	}
	/* one file in its version folder: a zip's entry has company, and is not sent alone */
	dh = opendir(dir);
	while (dh && (e = readdir(dh)))
		files += e->d_name[0] != '.';
	if (dh)
		closedir(dh);
	if (files != 1) {
		errno = EISDIR;
		return NULL;
	}
	return (uint8_t *)gw_read_file(fn->spec.code, 256u << 20, len);
}

void gw_cluster_deployed(struct gw_daemon *d, const char *key)
{
	struct gw_function *fn;
	cJSON *wrap, *doc;
	uint8_t *code;
	size_t len = 0;
	char *text;
	bool zip;
	int rc;

	if (!d->cluster || from_cluster)
		return;
	/* this deploy replaces what another node's record would have brought */
	fetch_cancel(glue_of(d), key);
	fn = gw_fn_get(d, key);
	if (!fn)
		return;
	code = code_bytes(fn, &len, &zip);
	if (!code) {
		NEMO_WARN(
			GW_MOD,
			"function=%s is served here only: its code is a folder without the zip "
			"archive it came in (deployed before archives were kept: deploy it again)",
			key);
		gw_fn_put(fn);
		return;
	}
	doc = cJSON_Parse(fn->doc);
	wrap = cJSON_CreateObject();
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "code");
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "name");
	cJSON_AddItemToObject(wrap, "doc", doc ? doc : cJSON_CreateObject());
	/* a zip is unpacked by each node as the deploy did here; a file keeps its name */
	if (zip)
		cJSON_AddBoolToObject(wrap, "zip", true);
	else
		cJSON_AddStringToObject(wrap, "file", strrchr(fn->spec.code, '/') + 1);
	text = cJSON_PrintUnformatted(wrap);
	cJSON_Delete(wrap);
	cl_sha256_hex(code, len, fn->cluster_sha);
	rc = text ? cl_node_fn_publish(d->cluster->node, key, fn->version, text, code, len)
		  : -ENOMEM;
	if (rc)
		NEMO_ERR(GW_MOD, "function=%s: not shared with the cluster: %s", key,
			 strerror(-rc));
	free(text);
	free(code);
	gw_fn_put(fn);
}

void gw_cluster_undeployed(struct gw_daemon *d, const char *key)
{
	int rc;

	if (!d->cluster || from_cluster)
		return;
	fetch_cancel(glue_of(d), key);
	rc = cl_node_fn_unpublish(d->cluster->node, key);
	if (rc && rc != -ENOENT)
		NEMO_ERR(GW_MOD, "function=%s: its delete did not reach the cluster: %s", key,
			 strerror(-rc));
}

/*
 * Functions of the registry whose code this node has still to fetch from the node that
 * deployed them (struct glue's fetches). The watch hands such a record over and goes on; the
 * fetcher thread fetches the code, deploys it, and after a failure (the owner unreachable,
 * a timeout, an answer that is not the code, a sha256 that does not match) tries again after
 * a backoff, 100 ms doubling to 5 s less up to a quarter at random, until it has the code, a
 * newer record of the function replaces this one, or the function is deleted. A call of it
 * meanwhile hears why, and when the next try is (gw_cluster_missing).
 */
struct fetch {
	struct fetch *next;
	struct cl_fn_record rec; /* its code NULL: that is what is fetched */
	uint64_t gen;		 /* which record: a newer one of the name gets a new gen */
	int failures;		 /* in a row */
	uint64_t due_ns;	 /* the next attempt (nemo_now_ns) */
	uint64_t first_fail_ms;	 /* nemo_now_ms of the first failure */
	uint64_t trying_ns;	 /* when the attempt under way began; 0: none is */
	char why[320];		 /* the last failure */
};

#define FETCH_BACKOFF_MIN_MS 100
#define FETCH_BACKOFF_MAX_MS 5000
#define FETCH_TIMEOUT_MS     30000 /* a whole body, up to 256 MiB */
#define FETCH_STALL_S	     3	   /* nothing coming: the owner went out of reach mid-way */

/* The entry of a function, or where it would go. fetch_lock held. */
static struct fetch **fetch_find(struct glue *g, const char *name)
{
	struct fetch **p = &g->fetches;

	while (*p && strcmp((*p)->rec.name, name))
		p = &(*p)->next;
	return p;
}

static void fetch_free(struct fetch *f)
{
	cl_fn_record_release(&f->rec);
	free(f);
}

/* The counts, to the node's metrics (not before it has joined, nor once it leaves). fetch_lock
 * held. */
static void fetch_publish(struct glue *g)
{
	struct cl_node *n = __atomic_load_n(&g->c.node, __ATOMIC_ACQUIRE);
	uint32_t k = 0;

	for (const struct fetch *f = g->fetches; f; f = f->next)
		k++;
	g->fetch_st.waiting = k;
	if (n && !g->fetcher_stop)
		cl_node_note_fetches(n, &g->fetch_st);
}

/* No more fetching of name's code: a newer record, its delete, or a deploy here won. */
static void fetch_cancel(struct glue *g, const char *name)
{
	struct fetch **p, *f;

	pthread_mutex_lock(&g->fetch_lock);
	p = fetch_find(g, name);
	if (*p) {
		f = *p;
		*p = f->next;
		fetch_free(f);
		fetch_publish(g);
	}
	pthread_mutex_unlock(&g->fetch_lock);
}

bool gw_cluster_missing(struct gw_daemon *d, const char *key, char *why, size_t len)
{
	struct glue *g;
	const struct fetch *f;
	uint64_t now = nemo_now_ns();

	if (!d->cluster)
		return false;
	g = glue_of(d);
	pthread_mutex_lock(&g->fetch_lock);
	f = *fetch_find(g, key);
	if (f && !f->failures)
		snprintf(why, len, "its code is being fetched from node %s at %s (for %.1f s)",
			 f->rec.owner, f->rec.owner_address,
			 f->trying_ns ? (double)(now - f->trying_ns) / 1e9 : 0.0);
	else if (f) {
		char next[32] = "now";

		if (f->due_ns > now)
			snprintf(next, sizeof(next), "in %.1f s", (double)(f->due_ns - now) / 1e9);
		snprintf(why, len,
			 "its code could not be fetched from node %s at %s: %s (attempt %d; "
			 "retrying %s)",
			 f->rec.owner, f->rec.owner_address, f->why, f->failures, next);
	}
	pthread_mutex_unlock(&g->fetch_lock);
	return f != NULL;
}

/* The code of a function from the node that has it, checked against the record's sha256;
 * NULL and why not. */
static uint8_t *fetch_code(struct gw_daemon *d, const struct cl_fn_record *rec, size_t *len,
			   char *why, size_t whylen)
{
	char path[SBX_NAME_MAX + 64], auth[300], sha[65];
	const char *hdr[] = {auth};
	struct cl_http_reply rp;
	uint8_t *code;
	int rc;

	snprintf(path, sizeof(path), "/api/v1/cluster/code/%s", rec->name);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", d->creds.c[0].whole);
	rc = cl_http_forward_stall(rec->owner_address, "GET", path, hdr, 1, NULL, 0,
				   FETCH_TIMEOUT_MS, FETCH_STALL_S, &rp);
	if (rc || rp.status != 200) {
		if (rc == -ETIMEDOUT)
			snprintf(why, whylen,
				 "timed out (no byte for %d s, or not all within %d s)",
				 FETCH_STALL_S, FETCH_TIMEOUT_MS / 1000);
		else if (rc)
			snprintf(why, whylen, "%s", strerror(-rc));
		else
			snprintf(why, whylen, "%d %.250s", rp.status,
				 rp.body ? rp.body : "no answer");
		if (!rc)
			cl_http_reply_release(&rp);
		return NULL;
	}
	cl_sha256_hex(rp.body, rp.len, sha);
	if (strcmp(sha, rec->code_sha)) {
		snprintf(why, whylen,
			 "what it sent (%zu bytes) does not match the record's sha256 (%zu bytes)",
			 rp.len, rec->code_size);
		cl_http_reply_release(&rp);
		return NULL;
	}
	code = (uint8_t *)rp.body;
	*len = rp.len;
	rp.body = NULL;
	cl_http_reply_release(&rp);
	return code;
}

/* The record's spec, or false (logged) when it is not one this build can deploy. */
static bool record_usable(const struct cl_fn_record *rec)
{
	cJSON *wrap = cJSON_Parse(rec->spec);
	const cJSON *doc = cJSON_GetObjectItemCaseSensitive(wrap, "doc");
	bool zip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(wrap, "zip"));
	bool ok = cJSON_IsObject(doc) &&
		  (zip || cJSON_IsString(cJSON_GetObjectItemCaseSensitive(wrap, "file"))) &&
		  gw_key_valid(rec->name);

	cJSON_Delete(wrap);
	if (!ok)
		NEMO_WARN(GW_MOD, "function record %s from node %s ignored: malformed", rec->name,
			  rec->owner);
	return ok;
}

/* Deploy a record with its code (taken over: freed here). Callers hold apply_lock. */
static int deploy_record(struct gw_daemon *d, const struct cl_fn_record *rec, uint8_t *code,
			 size_t len)
{
	struct gw_deploy_req req;
	struct gw_function *have;
	cJSON *wrap = cJSON_Parse(rec->spec);
	const cJSON *doc = cJSON_GetObjectItemCaseSensitive(wrap, "doc");
	const cJSON *file = cJSON_GetObjectItemCaseSensitive(wrap, "file");
	bool zip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(wrap, "zip"));
	char err[512];
	int rc;

	memset(&req, 0, sizeof(req));
	snprintf(req.name, sizeof(req.name), "%s", rec->name);
	if (!zip && cJSON_IsString(file))
		snprintf(req.code_file, sizeof(req.code_file), "%s", file->valuestring);
	req.doc = cJSON_IsObject(doc) ? cJSON_Duplicate(doc, true) : NULL;
	cJSON_Delete(wrap);
	req.code_kind = zip ? GW_CODE_ZIP : GW_CODE_BYTES;
	req.code = code;
	req.code_len = len;
	if (!req.code || !req.doc) {
		gw_deploy_req_release(&req);
		return -EIO;
	}
	from_cluster = true;
	rc = gw_svc_deploy(d, &req, GW_DEPLOY_OVERWRITE, err, sizeof(err));
	from_cluster = false;
	if (rc) {
		NEMO_ERR(GW_MOD, "function=%s from node %s: %s", rec->name, rec->owner, err);
		return rc;
	}
	have = gw_fn_get(d, rec->name);
	if (have) {
		snprintf(have->cluster_sha, sizeof(have->cluster_sha), "%s", rec->code_sha);
		have->cluster_stamp = rec->deployed_ms;
		gw_fn_put(have);
	}
	NEMO_INFO(GW_MOD, "function=%s deployed from node %s (its version %llu)", rec->name,
		  rec->owner, (unsigned long long)rec->version);
	return 0;
}

static int hook_fn_deployed(void *arg, const struct cl_fn_record *rec)
{
	struct gw_daemon *d = arg;
	struct glue *g = glue_of(d);
	struct gw_function *have = gw_fn_get(d, rec->name);
	bool served = have && !strcmp(have->cluster_sha, rec->code_sha) &&
		      have->cluster_stamp == rec->deployed_ms;
	struct fetch **p, *f;
	int rc;

	gw_fn_put(have);
	/* already served, from this very record (a watch that reconnected reads it again) */
	if (served) {
		fetch_cancel(g, rec->name);
		return 0;
	}
	if (!record_usable(rec)) {
		fetch_cancel(g, rec->name);
		return -EINVAL;
	}
	if (rec->code) {
		uint8_t *code = malloc(rec->code_len ? rec->code_len : 1);

		if (code)
			memcpy(code, rec->code, rec->code_len);
		pthread_mutex_lock(&g->apply_lock);
		fetch_cancel(g, rec->name);
		rc = deploy_record(d, rec, code, rec->code_len);
		pthread_mutex_unlock(&g->apply_lock);
		return rc;
	}
	/* from its owner, by the fetcher: the watch does not wait on a peer */
	pthread_mutex_lock(&g->fetch_lock);
	p = fetch_find(g, rec->name);
	if (*p && !strcmp((*p)->rec.code_sha, rec->code_sha) &&
	    (*p)->rec.deployed_ms == rec->deployed_ms &&
	    !strcmp((*p)->rec.owner_address, rec->owner_address)) {
		/* this very record, read again: its fetch goes on as it was */
		pthread_mutex_unlock(&g->fetch_lock);
		return 0;
	}
	f = calloc(1, sizeof(*f));
	if (f) {
		f->rec = *rec;
		f->rec.code = NULL;
		f->rec.code_len = 0;
		f->rec.spec = strdup(rec->spec);
	}
	if (!f || !f->rec.spec) {
		pthread_mutex_unlock(&g->fetch_lock);
		free(f);
		return -ENOMEM;
	}
	f->gen = ++g->fetch_gen;
	f->due_ns = nemo_now_ns();
	if (*p) {
		/* a newer record of a function still fetched: it wins, from its first try */
		f->next = (*p)->next;
		fetch_free(*p);
	}
	*p = f;
	fetch_publish(g);
	pthread_cond_signal(&g->fetch_cond);
	pthread_mutex_unlock(&g->fetch_lock);
	return 0;
}

static void hook_fn_deleted(void *arg, const char *name)
{
	struct gw_daemon *d = arg;
	struct glue *g = glue_of(d);

	pthread_mutex_lock(&g->apply_lock);
	fetch_cancel(g, name);
	from_cluster = true;
	if (gw_svc_undeploy(d, name) == 0)
		NEMO_INFO(GW_MOD, "function=%s deleted by the cluster", name);
	from_cluster = false;
	pthread_mutex_unlock(&g->apply_lock);
}

/* The wait after the n-th failure in a row: 100 ms doubling to 5 s, less up to a quarter. */
static uint64_t fetch_backoff_ms(int failures, unsigned *seed)
{
	uint64_t ms = FETCH_BACKOFF_MIN_MS;

	for (int i = 1; i < failures && ms < FETCH_BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > FETCH_BACKOFF_MAX_MS)
		ms = FETCH_BACKOFF_MAX_MS;
	/* spread: nodes that failed together do not all come back at the same instant */
	return ms - ms * (uint64_t)(rand_r(seed) % 256) / 1024;
}

/* One attempt at rec (a copy of entry gen's record): deploy the code, or note why not. */
static void fetch_one(struct gw_daemon *d, const struct cl_fn_record *rec, uint64_t gen, bool retry,
		      unsigned *seed)
{
	struct glue *g = glue_of(d);
	struct fetch **p;
	char why[sizeof(((struct fetch *)0)->why)];
	size_t len = 0;
	uint8_t *code = fetch_code(d, rec, &len, why, sizeof(why));
	int failures = 0, rc;
	uint64_t since = 0;
	bool current;

	pthread_mutex_lock(&g->apply_lock);
	pthread_mutex_lock(&g->fetch_lock);
	g->fetch_st.retries += retry;
	if (code)
		g->fetch_st.ok++;
	else
		g->fetch_st.failed++;
	p = fetch_find(g, rec->name);
	/* a newer record, a delete, or a deploy here came meanwhile: they win */
	current = *p && (*p)->gen == gen && !g->fetcher_stop;
	if (current && !code) {
		struct fetch *f = *p;
		uint64_t ms;

		f->trying_ns = 0;
		if (!f->failures++)
			f->first_fail_ms = nemo_now_ms();
		ms = fetch_backoff_ms(f->failures, seed);
		f->due_ns = nemo_now_ns() + ms * 1000000ull;
		snprintf(f->why, sizeof(f->why), "%s", why);
		NEMO_LOG_RATELIMITED(NEMO_LOG_ERR, GW_MOD, 1000, 5,
				     "function=%s: its code could not be fetched from node %s at "
				     "%s: %s (attempt %d; retrying in %.1f s)",
				     rec->name, rec->owner, rec->owner_address, why, f->failures,
				     (double)ms / 1e3);
	} else if (current) {
		failures = (*p)->failures;
		since = (*p)->first_fail_ms;
	}
	fetch_publish(g);
	pthread_mutex_unlock(&g->fetch_lock);
	if (!current || !code) {
		pthread_mutex_unlock(&g->apply_lock);
		free(code);
		return;
	}
	rc = deploy_record(d, rec, code, len);
	pthread_mutex_lock(&g->fetch_lock);
	p = fetch_find(g, rec->name);
	if (*p && (*p)->gen == gen) {
		struct fetch *f = *p;

		/* deployed, or refused for what the code is (logged): fetching again won't help */
		*p = f->next;
		fetch_free(f);
	}
	fetch_publish(g);
	pthread_mutex_unlock(&g->fetch_lock);
	pthread_mutex_unlock(&g->apply_lock);
	if (!rc && failures)
		NEMO_INFO(GW_MOD,
			  "function=%s: its code came from node %s at %s after %d failed "
			  "attempts in %.1f s: served here",
			  rec->name, rec->owner, rec->owner_address, failures,
			  (double)(nemo_now_ms() - since) / 1e3);
}

/* The fetcher thread: one fetch at a time, the one due first; asleep while none is due. */
static void *fetcher_main(void *arg)
{
	struct gw_daemon *d = arg;
	struct glue *g = glue_of(d);
	unsigned seed = (unsigned)nemo_now_ns() ^ (unsigned)getpid();

	pthread_mutex_lock(&g->fetch_lock);
	while (!g->fetcher_stop) {
		struct fetch *next = NULL;
		struct cl_fn_record rec;
		uint64_t now = nemo_now_ns(), gen;
		bool retry, copied;

		for (struct fetch *f = g->fetches; f; f = f->next)
			if (!next || f->due_ns < next->due_ns)
				next = f;
		if (!next || next->due_ns > now) {
			struct timespec ts = nemo_deadline_after_ns(
				CLOCK_MONOTONIC, next ? next->due_ns - now : 1000000000ull);

			pthread_cond_timedwait(&g->fetch_cond, &g->fetch_lock, &ts);
			continue;
		}
		/* a copy: the entry may be replaced or cancelled while its code is on the way */
		rec = next->rec;
		rec.spec = strdup(next->rec.spec);
		gen = next->gen;
		retry = next->failures > 0;
		next->trying_ns = now;
		copied = rec.spec != NULL;
		pthread_mutex_unlock(&g->fetch_lock);
		if (copied)
			fetch_one(d, &rec, gen, retry, &seed);
		cl_fn_record_release(&rec);
		pthread_mutex_lock(&g->fetch_lock);
		if (!copied) {
			/* no memory for the copy: a while later, not in a loop */
			struct timespec ts = nemo_deadline_after_ns(CLOCK_MONOTONIC, 100000000ull);

			pthread_cond_timedwait(&g->fetch_cond, &g->fetch_lock, &ts);
		}
	}
	pthread_mutex_unlock(&g->fetch_lock);
	return NULL;
}

/* ---- activation records ------------------------------------------------------------------------ */

/* The node, once cl_node_join() has returned it (its threads may call hooks before). */
static struct cl_node *node_of(struct gw_daemon *d)
{
	struct cl_node *n;

	while (!(n = __atomic_load_n(&d->cluster->node, __ATOMIC_ACQUIRE)))
		usleep(1000);
	return n;
}

static int hook_adopt(void *arg, const struct cl_act_record *rec)
{
	struct gw_daemon *d = arg;
	uint64_t seq;
	enum gw_act_status st;
	int rc;

	rc = gw_act_adopt(&d->acts, rec->id, rec->function, &seq, &st);
	if (rc == -EEXIST) {
		/* ours, replayed from the journal: queued already, or ended before etcd heard */
		gw_act_set_clustered(&d->acts, seq, true);
		if (gw_act_terminal(st)) {
			enum gw_act_status s;
			char msg[SBX_MSG_MAX];
			uint8_t *res = NULL;
			size_t len = 0;

			/* its route heard it in that earlier run, or hears it from the journal */
			if (gw_act_outcome(&d->acts, seq, &s, msg, sizeof(msg), &res, &len) == 0 &&
			    cl_act_end(node_of(d), rec->id, gw_act_status_name(s), res, len) == 0)
				cl_act_delivered(node_of(d), rec->id);
			free(res);
		}
		return 0;
	}
	if (rc)
		return rc;
	gw_act_set_clustered(&d->acts, seq, true);
	{
		/* the dead node's caller still gets its callback or MQTT reply, from here */
		cJSON *route = rec->extra ? cJSON_Parse(rec->extra) : NULL;
		const cJSON *cb = cJSON_GetObjectItemCaseSensitive(route, "callback");
		const cJSON *rt = cJSON_GetObjectItemCaseSensitive(route, "reply_topic");
		const cJSON *qos = cJSON_GetObjectItemCaseSensitive(route, "qos");
		const cJSON *corr = cJSON_GetObjectItemCaseSensitive(route, "correlation");
		uint8_t cbytes[128];
		long clen = 0;

		if (cJSON_IsString(corr))
			clen = nemo_base64_decode(corr->valuestring, strlen(corr->valuestring),
						  cbytes, sizeof(cbytes));
		gw_act_set_route(&d->acts, seq, cJSON_IsNumber(qos) ? qos->valueint : 0,
				 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(route, "mqtt5")),
				 clen > 0 ? cbytes : NULL, clen > 0 ? (size_t)clen : 0,
				 cJSON_IsString(cb) ? cb->valuestring : "");
		rc = gw_act_set_work(&d->acts, seq, rec->payload, rec->payload_len,
				     cJSON_IsString(rt) ? rt->valuestring : "");
		cJSON_Delete(route);
	}
	if (!rc)
		rc = gw_journal_sync(&d->acts);
	if (!rc)
		rc = gw_enqueue(d, seq);
	if (rc) {
		/* this node's record ends; etcd's stays accepted for another node to adopt */
		gw_act_finish(&d->acts, seq, GW_ACT_CANCELLED, NULL,
			      "adopted but not queued here: left to another node");
		gw_act_set_clustered(&d->acts, seq, false);
		return rc;
	}
	NEMO_INFO(GW_MOD, "activation=%s of %s adopted from node %s", rec->id, rec->function,
		  rec->origin);
	return 0;
}

/* ---- routes of dead nodes' results ----------------------------------------------------------------- */

/* Hand a dead node's result to the route thread. */
static int hook_deliver(void *arg, const struct cl_act_record *rec)
{
	struct gw_daemon *d = arg;
	struct glue *g = glue_of(d);
	struct delivery *dl = calloc(1, sizeof(*dl));

	if (!dl)
		return -ENOMEM;
	snprintf(dl->id, sizeof(dl->id), "%s", rec->id);
	snprintf(dl->function, sizeof(dl->function), "%s", rec->function);
	snprintf(dl->state, sizeof(dl->state), "%s", rec->state);
	dl->route = rec->extra ? strdup(rec->extra) : NULL;
	if (rec->result && rec->result_len) {
		dl->result = malloc(rec->result_len);
		if (dl->result)
			memcpy(dl->result, rec->result, rec->result_len);
		dl->len = dl->result ? rec->result_len : 0;
	}
	pthread_mutex_lock(&g->route_lock);
	*g->dl_tail = dl;
	g->dl_tail = &dl->next;
	pthread_cond_signal(&g->route_cond);
	pthread_mutex_unlock(&g->route_lock);
	return 0;
}

/* Deliver one: as run_async() does for a result of its own (callback and MQTT reply). */
static void deliver(struct gw_daemon *d, const struct delivery *dl)
{
	cJSON *route = dl->route ? cJSON_Parse(dl->route) : NULL;
	const cJSON *cb = cJSON_GetObjectItemCaseSensitive(route, "callback");
	const cJSON *rt = cJSON_GetObjectItemCaseSensitive(route, "reply_topic");
	const cJSON *qos = cJSON_GetObjectItemCaseSensitive(route, "qos");
	const cJSON *corr = cJSON_GetObjectItemCaseSensitive(route, "correlation");
	bool ok = !strcmp(dl->state, "success") && dl->result;
	char ns[GW_NS_MAX], name[SBX_NAME_MAX], *text = NULL;
	const void *data = dl->result;
	size_t len = dl->len;

	if (!ok) {
		/* why there is no result, in the shape run_async() gives a failure */
		cJSON *e = cJSON_CreateObject();

		cJSON_AddStringToObject(
			e, "error",
			!strcmp(dl->state, "interrupted")
				? "the node running it died: it may have run, and is not run again"
			: !strcmp(dl->state, "success")
				? "its result (over 64 KiB) was not kept in etcd"
				: "the activation did not succeed");
		cJSON_AddStringToObject(e, "status", dl->state);
		cJSON_AddStringToObject(e, "activationId", dl->id);
		text = cJSON_PrintUnformatted(e);
		cJSON_Delete(e);
		data = text;
		len = text ? strlen(text) : 0;
	}
	gw_key_split(d->default_ns, dl->function, ns, name);
	if (cJSON_IsString(rt) && d->mqtt_sink) {
		uint8_t cbytes[128];
		long clen = cJSON_IsString(corr) ? nemo_base64_decode(corr->valuestring,
								      strlen(corr->valuestring),
								      cbytes, sizeof(cbytes))
						 : 0;

		d->mqtt_sink(d->mqtt_sink_state, rt->valuestring,
			     cJSON_IsNumber(qos) ? qos->valueint : 0,
			     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(route, "mqtt5")),
			     clen > 0 ? cbytes : NULL, clen > 0 ? (size_t)clen : 0, dl->id, data,
			     len);
	}
	if (cJSON_IsString(cb)) {
		int st = gw_callback_post(cb->valuestring, dl->id, name, ok ? 200 : 500, data, len);

		if (st < 200 || st >= 300)
			NEMO_WARN(GW_MOD, "callback url=%s activation=%s: %s %d", cb->valuestring,
				  dl->id, st < 0 ? strerror(-st) : "status", st);
	}
	NEMO_INFO(GW_MOD, "activation=%s (%s) of a dead node: its result delivered to its route",
		  dl->id, dl->state);
	cl_act_delivered(node_of(d), dl->id);
	free(text);
	cJSON_Delete(route);
}

static void delivery_free(struct delivery *dl)
{
	free(dl->result);
	free(dl->route);
	free(dl);
}

static void ack_idle(struct gw_daemon *d);

/* The route thread: dead nodes' results, and the acks of idle workers' deliveries. */
static void *router_main(void *arg)
{
	struct gw_daemon *d = arg;
	struct glue *g = glue_of(d);

	pthread_mutex_lock(&g->route_lock);
	while (!g->router_stop) {
		struct delivery *dl = g->dl_head;

		if (!dl) {
			struct timespec ts = nemo_deadline_after_ns(CLOCK_MONOTONIC, 100000000ull);

			pthread_cond_timedwait(&g->route_cond, &g->route_lock, &ts);
			pthread_mutex_unlock(&g->route_lock);
			if (__atomic_load_n(&d->cluster->node, __ATOMIC_ACQUIRE))
				ack_idle(d);
			pthread_mutex_lock(&g->route_lock);
			continue;
		}
		g->dl_head = dl->next;
		if (!g->dl_head)
			g->dl_tail = &g->dl_head;
		pthread_mutex_unlock(&g->route_lock);
		deliver(d, dl);
		delivery_free(dl);
		pthread_mutex_lock(&g->route_lock);
	}
	pthread_mutex_unlock(&g->route_lock);
	return NULL;
}

/*
 * When has a worker delivered an ended activation's result (callback, MQTT reply)? run_async()
 * in service.c records the end (gw_cluster_end), then delivers, then returns; a worker runs one
 * activation at a time. So a worker's result is delivered once the same worker begins or ends
 * another (ack_mine), or once no worker is running any (ack_idle). Until then the in-flight
 * record stays "ended" in etcd, and a node that adopts it after this one died delivers it again.
 */
static void ack_later(struct gw_daemon *d, const char *id)
{
	struct glue *g = glue_of(d);

	pthread_mutex_lock(&g->ack_lock);
	if (g->n_acks == g->cap_acks) {
		int cap = g->cap_acks ? g->cap_acks * 2 : 8;
		struct undelivered *a = realloc(g->acks, (size_t)cap * sizeof(*a));

		if (!a) {
			pthread_mutex_unlock(&g->ack_lock);
			return; /* its record stays until this node leaves: delivered again then */
		}
		g->acks = a;
		g->cap_acks = cap;
	}
	g->acks[g->n_acks].worker = pthread_self();
	snprintf(g->acks[g->n_acks++].id, GW_ID_LEN + 1, "%s", id);
	pthread_mutex_unlock(&g->ack_lock);
}

static void ack_mine(struct gw_daemon *d)
{
	struct glue *g = glue_of(d);
	char id[GW_ID_LEN + 1] = "";

	pthread_mutex_lock(&g->ack_lock);
	for (int i = 0; i < g->n_acks; i++) {
		if (pthread_equal(g->acks[i].worker, pthread_self())) {
			snprintf(id, sizeof(id), "%s", g->acks[i].id);
			g->acks[i] = g->acks[--g->n_acks];
			break;
		}
	}
	pthread_mutex_unlock(&g->ack_lock);
	if (id[0])
		cl_act_delivered(d->cluster->node, id);
}

static void ack_idle(struct gw_daemon *d)
{
	struct glue *g = glue_of(d);
	char(*ids)[GW_ID_LEN + 1] = NULL;
	int n = 0;
	bool idle;

	/* what was waiting before the workers were seen idle had its delivery done */
	pthread_mutex_lock(&g->ack_lock);
	if (g->n_acks && (ids = malloc((size_t)g->n_acks * sizeof(*ids)))) {
		n = g->n_acks;
		for (int i = 0; i < n; i++)
			memcpy(ids[i], g->acks[i].id, sizeof(ids[i]));
	}
	pthread_mutex_unlock(&g->ack_lock);
	if (!n)
		return;
	pthread_mutex_lock(&d->q_lock);
	idle = d->q_active == 0;
	pthread_mutex_unlock(&d->q_lock);
	for (int k = 0; idle && k < n; k++) {
		bool found = false;

		pthread_mutex_lock(&g->ack_lock);
		for (int i = 0; i < g->n_acks; i++) {
			if (!strcmp(g->acks[i].id, ids[k])) {
				g->acks[i] = g->acks[--g->n_acks];
				found = true;
				break;
			}
		}
		pthread_mutex_unlock(&g->ack_lock);
		if (found)
			cl_act_delivered(d->cluster->node, ids[k]);
	}
	free(ids);
}

/* Where the result goes besides the record (callback, MQTT reply), for an adopter. */
static char *route_json(const struct gw_call *call)
{
	cJSON *j = cJSON_CreateObject();
	char *s;

	if (!j)
		return NULL;
	if (call->callback_url && call->callback_url[0])
		cJSON_AddStringToObject(j, "callback", call->callback_url);
	if (call->reply_topic && call->reply_topic[0]) {
		cJSON_AddStringToObject(j, "reply_topic", call->reply_topic);
		cJSON_AddNumberToObject(j, "qos", call->qos);
		cJSON_AddBoolToObject(j, "mqtt5", call->mqtt5);
		if (call->correlation_len) {
			char *b = nemo_base64_encode(call->correlation, call->correlation_len);

			if (b)
				cJSON_AddStringToObject(j, "correlation", b);
			free(b);
		}
	}
	s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

int gw_cluster_accept(struct gw_daemon *d, uint64_t seq, const char *id, const char *key,
		      const void *payload, size_t len, const struct gw_call *call, char *err,
		      size_t errlen)
{
	const char *why = NULL;
	char *route;
	int rc;

	if (!d->cluster)
		return 0;
	if (!cl_node_healthy(d->cluster->node, &why)) {
		snprintf(err, errlen, "cannot accept the activation: %s (etcd at %s)", why,
			 cl_etcd_endpoints(cl_node_etcd(d->cluster->node)));
		return -ENOSPC;
	}
	route = route_json(call);
	rc = cl_act_accept(d->cluster->node, id, key, payload, len,
			   route && strcmp(route, "{}") ? route : NULL);
	free(route);
	if (rc) {
		if (!cl_node_healthy(d->cluster->node, &why))
			snprintf(err, errlen, "cannot accept the activation: %s (etcd at %s)", why,
				 cl_etcd_endpoints(cl_node_etcd(d->cluster->node)));
		else
			snprintf(err, errlen,
				 "cannot accept the activation: it could not be recorded in etcd "
				 "(%s): %s",
				 cl_etcd_endpoints(cl_node_etcd(d->cluster->node)), strerror(-rc));
		return -ENOSPC;
	}
	gw_act_set_clustered(&d->acts, seq, true);
	return 0;
}

int gw_cluster_begin(struct gw_daemon *d, uint64_t seq, const char *id)
{
	int rc;

	if (!d->cluster)
		return 0;
	ack_mine(d); /* this worker's last activation, its result delivered: it is beginning anew */
	if (!gw_act_clustered(&d->acts, seq)) {
		/* replayed from the journal, not taken over at join: did another node adopt it? */
		struct cl_act_record rec;

		rc = cl_act_lookup(d->cluster->node, id, &rec);
		if (rc == -ENOENT)
			return 0; /* never in etcd (accepted before this node was in a cluster) */
		if (rc)
			return rc;
		rc = strcmp(rec.node, cl_node_name(d->cluster->node)) ||
				     strcmp(rec.state, "accepted")
			     ? -ESTALE
			     : 0;
		cl_act_record_release(&rec);
		if (rc)
			NEMO_WARN(GW_MOD, "activation=%s: another node took it over; not run here",
				  id);
		return rc;
	}
	rc = cl_act_start(d->cluster->node, id);
	if (rc == -ESTALE)
		NEMO_WARN(GW_MOD,
			  "activation=%s: adopted by another node while this one was cut "
			  "off from etcd; not run here",
			  id);
	return rc;
}

void gw_cluster_end(struct gw_daemon *d, uint64_t seq, const char *id, enum gw_act_status st,
		    const void *result, size_t len)
{
	int rc;

	if (!d->cluster || !gw_act_clustered(&d->acts, seq))
		return;
	ack_mine(d);
	rc = cl_act_end(d->cluster->node, id, gw_act_status_name(st), result, len);
	if (rc)
		NEMO_LOG_RATELIMITED(NEMO_LOG_ERR, GW_MOD, 1000, 5,
				     "activation=%s: its end is not in etcd: %s", id,
				     strerror(-rc));
	else
		ack_later(d, id); /* the worker delivers the result next, then returns */
}

/* An activation this node does not hold, from etcd: OpenWhisk's record shape. */
cJSON *gw_cluster_act_json(struct gw_daemon *d, const char *id)
{
	struct cl_act_record rec;
	cJSON *j, *resp;
	char ns[GW_NS_MAX], name[SBX_NAME_MAX];
	bool terminal;

	if (!d->cluster || cl_act_lookup(d->cluster->node, id, &rec))
		return NULL;
	terminal = strcmp(rec.state, "accepted") && strcmp(rec.state, "running");
	gw_key_split(d->default_ns, rec.function, ns, name);
	j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "activationId", rec.id);
	cJSON_AddStringToObject(j, "name", name);
	cJSON_AddStringToObject(j, "namespace", ns);
	cJSON_AddStringToObject(j, "status", rec.state);
	cJSON_AddStringToObject(j, "node", rec.node);
	cJSON_AddStringToObject(j, "origin", rec.origin);
	if (rec.adopted) {
		cJSON_AddBoolToObject(j, "adopted", true);
		cJSON_AddNumberToObject(j, "adopted_ms", (double)rec.adopted_ms);
	}
	cJSON_AddNumberToObject(j, "start", (double)rec.accepted_ms);
	if (rec.ended_ms)
		cJSON_AddNumberToObject(j, "end", (double)rec.ended_ms);
	resp = cJSON_AddObjectToObject(j, "response");
	cJSON_AddStringToObject(resp, "status", rec.state);
	cJSON_AddBoolToObject(resp, "success", !strcmp(rec.state, "success"));
	if (terminal && rec.result) {
		cJSON *r = cJSON_ParseWithLength((const char *)rec.result, rec.result_len);

		cJSON_AddItemToObject(resp, "result",
				      r ? r : cJSON_CreateString((const char *)rec.result));
	}
	cl_act_record_release(&rec);
	return j;
}

/* ---- offload -------------------------------------------------------------------------------------- */

static uint32_t run_ms_of(struct gw_function *fn)
{
	uint64_t n = atomic_load(&fn->metrics.phase[GW_PHASE_RUN].count);
	uint64_t sum = atomic_load(&fn->metrics.phase[GW_PHASE_RUN].sum_ns);
	uint64_t ms = n ? sum / n / 1000000 : 1;

	return ms ? (uint32_t)ms : 1;
}

/* Idle warm instances of `key` in a node record's warm object. */
static uint32_t warm_of(const char *warm_json, const char *key)
{
	cJSON *w = cJSON_Parse(warm_json ? warm_json : "{}");
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(w, key);
	uint32_t n = cJSON_IsNumber(it) && it->valuedouble > 0 ? (uint32_t)it->valuedouble : 0;

	cJSON_Delete(w);
	return n;
}

static bool has_fn(const char *fns_json, const char *key)
{
	cJSON *a = cJSON_Parse(fns_json ? fns_json : "[]");
	const cJSON *it;
	bool has = false;

	cJSON_ArrayForEach (it, a) {
		if (cJSON_IsString(it) && !strcmp(it->valuestring, key))
			has = true;
	}
	cJSON_Delete(a);
	return has;
}

static void load_of(struct cl_load *l, const double *spare, int n)
{
	l->spare_best = 0;
	l->spare_total = 0;
	for (int i = 0; i < n; i++) {
		if (spare[i] > l->spare_best)
			l->spare_best = spare[i];
		l->spare_total += spare[i];
	}
}

/* The query of a request again, for the peer. */
static void query_of(const struct gw_request *r, char *out, size_t cap)
{
	size_t off = 0;

	out[0] = '\0';
	for (int i = 0; i < r->n_args && off < cap; i++) {
		char *k = curl_easy_escape(NULL, r->args[i].key, 0);
		char *v = r->args[i].value ? curl_easy_escape(NULL, r->args[i].value, 0) : NULL;

		off += (size_t)snprintf(out + off, cap - off, "%c%s%s%s", i ? '&' : '?', k ? k : "",
					v ? "=" : "", v ? v : "");
		curl_free(k);
		curl_free(v);
	}
}

/*
 * The request's path again, escaped for the peer (the transport decoded it: a sub-path may
 * hold spaces, '%', '?'). Returns false when it does not fit.
 */
static bool path_of(const char *url, char *out, size_t cap)
{
	static const char keep[] = "-._~/!$&'()*+,;=:@";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || strchr(keep, *p);

		if (o + 4 >= cap)
			return false;
		if (plain)
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
	}
	out[o] = '\0';
	return true;
}

/* Where the policy sends a call: the peer, and why. */
struct target {
	char name[CL_NAME_MAX];
	char address[CL_ADDR_MAX];
	struct cl_decision dec;
};

/*
 * Ask the offload policy where a call of `key` runs: its class is `qos` (-1: the function's,
 * else the cluster's). `held`: its caller waits for the answer, so a batch call waits here
 * for local spare up to its deadline (otherwise it is queued here and waits in the queue).
 * Returns true with *to filled when a peer should run it.
 */
static bool offload_target(struct gw_daemon *d, const char *key, int qos, bool held,
			   struct target *to)
{
	struct gw_cluster *c = d->cluster;
	struct cl_node_info peers[CL_MAX_PEERS];
	struct cl_load me = {0}, loads[CL_MAX_PEERS];
	struct cl_call call = {0};
	struct gw_function *fn;
	struct sbx_pool_stats st = {0};
	int n, n_loads = 0;
	uint64_t t0 = nemo_now_ns(), t_decide = t0, now_ms = gw_epoch_ms();
	char addr[CL_MAX_PEERS][CL_ADDR_MAX];

	fn = gw_fn_get(d, key);
	if (!fn)
		return false;
	call.qos = qos >= 0 ? qos : fn->qos >= 0 ? fn->qos : d->cfg.cluster.qos;
	call.deadline_ms = call.qos == CL_QOS_BATCH ? d->cfg.cluster.batch_deadline_ms
						    : d->cfg.cluster.latency_deadline_ms;
	call.run_ms = run_ms_of(fn);
	gw_fn_put(fn);
	for (;;) {
		pthread_mutex_lock(&c->lock);
		refresh_spare(d);
		load_of(&me, c->spare, c->n_cores);
		pthread_mutex_unlock(&c->lock);
		if (d->backend.ops->stats)
			d->backend.ops->stats(d->backend.state, key, &st);
		me.warm = st.idle;
		me.queue = d->q_len;
		me.has_function = me.accepts = true;
		n_loads = 0;
		n = cl_node_list(c->node, peers, CL_MAX_PEERS);
		for (int i = 0; i < n; i++) {
			struct cl_load *l = &loads[n_loads];

			if (!strcmp(peers[i].name, cl_node_name(c->node)))
				continue;
			memset(l, 0, sizeof(*l));
			snprintf(l->name, sizeof(l->name), "%s", peers[i].name);
			load_of(l, peers[i].spare, peers[i].n_cores);
			l->warm = warm_of(peers[i].warm, key);
			l->queue = peers[i].queue;
			l->age_ms = now_ms > peers[i].updated_ms ? now_ms - peers[i].updated_ms : 0;
			l->has_function = has_fn(peers[i].functions, key);
			l->accepts = true;
			snprintf(addr[n_loads], sizeof(addr[n_loads]), "%s", peers[i].address);
			n_loads++;
		}
		for (int i = 0; i < n; i++)
			cl_node_info_release(&peers[i]);
		call.waited_ms = (uint32_t)((nemo_now_ns() - t0) / 1000000);
		cl_offload_decide(&d->cfg.cluster.cl.policy, &me, loads, n_loads, &call, &to->dec);
		atomic_fetch_add(&c->decisions, 1);
		atomic_fetch_add(&c->decide_ns, nemo_now_ns() - t_decide);
		if (to->dec.verdict != CL_WAIT_LOCAL || !held)
			break;
		struct timespec ts = {0, 10 * 1000000};

		nanosleep(&ts, NULL);
		t_decide = nemo_now_ns();
		now_ms = gw_epoch_ms();
	}
	if (to->dec.verdict != CL_OFFLOAD)
		return false;
	snprintf(to->name, sizeof(to->name), "%s", loads[to->dec.peer].name);
	snprintf(to->address, sizeof(to->address), "%s", addr[to->dec.peer]);
	return true;
}

/* Headers of one hop (and nemo's own between nodes): not passed on, either way. */
static bool hop_header(const char *k)
{
	static const char *const hop[] = {"Content-Length", "Transfer-Encoding",
					  "Connection",	    "Keep-Alive",
					  "Expect",	    "TE",
					  "Upgrade",	    "Proxy-Connection",
					  "Trailer",	    "X-Nemo-Origin",
					  "X-Nemo-Offload", NULL};

	for (int i = 0; hop[i]; i++)
		if (!strcasecmp(k, hop[i]))
			return true;
	return false;
}

/* A forwarded call: note what this node took from a peer. True when it came from one. */
static bool forwarded_here(struct gw_daemon *d, const struct gw_request *r)
{
	if (!d->cluster || !gw_req_header(r, "X-Nemo-Origin"))
		return false;
	cl_node_note_offload(d->cluster->node, true,
			     cl_reason_parse(gw_req_header(r, "X-Nemo-Offload")), false);
	return true;
}

bool gw_cluster_forward(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp,
			const char *key, unsigned flags)
{
	struct gw_cluster *c = d->cluster;
	struct target to;
	struct cl_http_reply fr;
	const char *qos_arg;
	const char *hdrs[GW_REQ_MAX_KV + 6];
	char *line;
	char path[4096], epath[2560], q[1536];
	int n_h = 0, n_own = 0, rc, qos = -1;
	bool had_ct = false, had_accept = false;

	/* forwarded calls run where they land */
	if (forwarded_here(d, r) || !c || !d->cfg.cluster.offload)
		return false;
	if (flags & GW_FWD_QOS_ARG) {
		qos_arg = gw_req_arg(r, "qos");
		if (qos_arg && cl_qos_parse(qos_arg) < 0) {
			gw_reply_error(rp, 400, "qos: expected latency or batch, got '%.20s'",
				       qos_arg);
			return true;
		}
		if (qos_arg)
			qos = cl_qos_parse(qos_arg);
	}
	if (!offload_target(d, key, qos, flags & GW_FWD_HELD, &to))
		return false;
	query_of(r, q, sizeof(q));
	if (!path_of(r->url, epath, sizeof(epath)) ||
	    snprintf(path, sizeof(path), "%s%s", epath, q) >= (int)sizeof(path))
		return false; /* too long to send on: run here */
	if (flags & GW_FWD_HEADERS) {
		/* the caller's headers as they came (its function may read them), its own
		 * credentials or none (an open route serves the default namespace there too) */
		for (int i = 0; i < r->n_headers; i++) {
			const char *k = r->headers[i].key, *v = r->headers[i].value;

			if (hop_header(k) || n_h >= GW_REQ_MAX_KV)
				continue;
			had_ct |= !strcasecmp(k, "Content-Type");
			had_accept |= !strcasecmp(k, "Accept");
			/* libcurl reads "Name:" as "drop it" and "Name;" as an empty value */
			if ((v && *v ? asprintf(&line, "%s: %s", k, v)
				     : asprintf(&line, "%s;", k)) < 0)
				break;
			hdrs[n_h++] = line;
		}
	} else {
		const char *auth = gw_req_header(r, "Authorization");
		const char *ct = gw_req_header(r, "Content-Type");

		if (auth ? asprintf(&line, "Authorization: %s", auth) >= 0
			 : asprintf(&line, "Authorization: Bearer %s", d->creds.c[0].whole) >= 0)
			hdrs[n_h++] = line;
		had_ct = true; /* libcurl's default type is harmless to OpenWhisk's routes */
		had_accept = true;
		if (ct && asprintf(&line, "Content-Type: %s", ct) >= 0)
			hdrs[n_h++] = line;
	}
	n_own = n_h;
	/* nothing the caller did not send: libcurl's own defaults off */
	if (!had_ct)
		hdrs[n_h++] = "Content-Type:";
	if (!had_accept)
		hdrs[n_h++] = "Accept:";
	{
		char h_origin[CL_NAME_MAX + 32], h_why[64];

		snprintf(h_origin, sizeof(h_origin), "X-Nemo-Origin: %s", cl_node_name(c->node));
		snprintf(h_why, sizeof(h_why), "X-Nemo-Offload: %s", cl_reason_name(to.dec.reason));
		hdrs[n_h++] = h_origin;
		hdrs[n_h++] = h_why;
		rc = cl_http_forward(to.address, r->method, path, hdrs, n_h, r->body, r->len,
				     (int)d->cfg.limits.blocking_timeout_ms + 5000, &fr);
	}
	for (int i = 0; i < n_own; i++)
		free((char *)hdrs[i]);
	if (rc) {
		/* the peer did not answer: run here after all */
		atomic_fetch_add(&c->forward_failed, 1);
		cl_node_note_offload(c->node, false, to.dec.reason, true);
		return false;
	}
	atomic_fetch_add(&c->forwarded, 1);
	cl_node_note_offload(c->node, false, to.dec.reason, false);
	rp->status = fr.status;
	rp->body = fr.body;
	rp->len = fr.len;
	fr.body = NULL;
	snprintf(rp->ctype_buf, sizeof(rp->ctype_buf), "%s",
		 fr.content_type[0] ? fr.content_type : "application/json");
	rp->ctype = rp->ctype_buf;
	gw_reply_header(rp, "X-Nemo-Node", fr.node[0] ? fr.node : to.name);
	if (flags & GW_FWD_HEADERS) {
		/* the peer's answer as it gave it: a web function's own headers too */
		for (int i = 0; i < fr.n_headers; i++) {
			const char *k = fr.headers[i].name;

			if (!hop_header(k) && strcasecmp(k, "Content-Type") &&
			    strcasecmp(k, "Date") && strcasecmp(k, "X-Nemo-Node") &&
			    strcasecmp(k, "WWW-Authenticate"))
				gw_reply_header(rp, k, fr.headers[i].value);
		}
	} else if (fr.activation_id[0]) {
		gw_reply_header(rp, "X-Activation-Id", fr.activation_id);
	}
	NEMO_DEBUG(GW_MOD, "function=%s forwarded to node %s: %s (eta here %.1f ms, there %.1f ms)",
		   key, to.name, to.dec.why, to.dec.local_eta_ms, to.dec.peer_eta_ms);
	cl_http_reply_release(&fr);
	return true;
}

/* ---- a queued call run on a peer (MQTT) ------------------------------------------------------------- */

/*
 * What a peer's answer to POST /api/v1/cluster/run says of the run (an activation status
 * name), as the sandbox says it: the inverse of gw_act_status_of() for the terminal states.
 */
static enum sbx_status sbx_status_of(const char *name)
{
	switch (gw_act_status_by_name(name)) {
	case GW_ACT_SUCCESS:
		return SBX_OK;
	case GW_ACT_APP_ERROR:
		return SBX_ERR_FUNCTION;
	case GW_ACT_TIMEOUT:
		return SBX_ERR_TIMEOUT;
	case GW_ACT_CRASHED:
		return SBX_ERR_CRASHED;
	case GW_ACT_REJECTED:
		return SBX_ERR_RESPONSE_TOO_LARGE;
	default:
		return SBX_ERR_INTERNAL;
	}
}

static const char *reply_header(const struct cl_http_reply *fr, const char *name)
{
	for (int i = 0; i < fr->n_headers; i++)
		if (!strcasecmp(fr->headers[i].name, name))
			return fr->headers[i].value;
	return NULL;
}

/*
 * The peer answered 202: the call outlived its wait there and runs as the peer's async
 * activation, recorded in etcd. Its end is read from there.
 */
static int wait_peer_end(struct gw_daemon *d, const char *peer_id, uint32_t timeout_ms,
			 struct sbx_result *res)
{
	uint64_t t0 = nemo_now_ms();

	while (nemo_now_ms() - t0 < (uint64_t)timeout_ms + 10000) {
		struct cl_act_record rec;

		if (cl_act_lookup(d->cluster->node, peer_id, &rec) == 0) {
			if (strcmp(rec.state, "accepted") && strcmp(rec.state, "running")) {
				res->status = sbx_status_of(rec.state);
				snprintf(res->message, sizeof(res->message),
					 "%s on node %s (activation %s)", rec.state, rec.node,
					 peer_id);
				res->response = rec.result;
				res->response_len = rec.result_len;
				rec.result = NULL;
				cl_act_record_release(&rec);
				return 0;
			}
			cl_act_record_release(&rec);
		}
		usleep(100 * 1000);
	}
	return -ETIMEDOUT;
}

int gw_cluster_run_elsewhere(struct gw_daemon *d, struct gw_function *fn, uint64_t seq,
			     const void *payload, size_t len, struct sbx_result *res)
{
	struct gw_cluster *c = d->cluster;
	struct target to;
	struct cl_http_reply fr;
	char path[SBX_NAME_MAX + 32], auth[300], origin[CL_NAME_MAX + 32], why[64];
	const char *hdrs[] = {auth, origin, why, "Content-Type: application/octet-stream",
			      "Accept:"};
	const char *st, *msg;
	uint64_t t0 = nemo_now_ns();
	int rc;

	memset(res, 0, sizeof(*res));
	/* a call longer than a peer holds a caller would come back as 202: it stays here */
	if (!c || !d->cfg.cluster.offload ||
	    fn->spec.timeout_ms > d->cfg.limits.blocking_timeout_ms ||
	    !offload_target(d, fn->spec.name, -1, true, &to))
		return 0;
	/* its start is on record before it runs anywhere: a crash of this node never runs
	 * it twice (as invoke_sync does it) */
	rc = gw_act_begin(&d->acts, seq, -1);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "/api/v1/cluster/run/%s", fn->spec.name);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", d->creds.c[0].whole);
	snprintf(origin, sizeof(origin), "X-Nemo-Origin: %s", cl_node_name(c->node));
	snprintf(why, sizeof(why), "X-Nemo-Offload: %s", cl_reason_name(to.dec.reason));
	rc = cl_http_forward(to.address, "POST", path, hdrs, 5, payload, len,
			     (int)d->cfg.limits.blocking_timeout_ms + 5000, &fr);
	if (rc || (fr.status != 200 && fr.status != 202)) {
		/* not run there (no answer, or refused before it ran): run here */
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
				     "function=%s: node %s did not run it (%s): run here",
				     fn->spec.name, to.name,
				     rc ? strerror(-rc) : (fr.body ? fr.body : "?"));
		if (!rc)
			cl_http_reply_release(&fr);
		atomic_fetch_add(&c->forward_failed, 1);
		cl_node_note_offload(c->node, false, to.dec.reason, true);
		gw_act_begin_undo(&d->acts, seq);
		return 0;
	}
	atomic_fetch_add(&c->forwarded, 1);
	cl_node_note_offload(c->node, false, to.dec.reason, false);
	gw_act_set_node(&d->acts, seq, to.name);
	if (fr.status == 202) {
		rc = wait_peer_end(d, fr.activation_id, fn->spec.timeout_ms, res);
		if (rc) {
			res->status = SBX_ERR_INTERNAL;
			snprintf(res->message, sizeof(res->message),
				 "ran on node %s as activation %s: its end was not seen in etcd",
				 to.name, fr.activation_id);
		}
	} else {
		st = reply_header(&fr, "X-Nemo-Status");
		msg = reply_header(&fr, "X-Nemo-Message");
		res->status = sbx_status_of(st);
		snprintf(res->message, sizeof(res->message), "%s", msg ? msg : "");
		res->response = (uint8_t *)fr.body;
		res->response_len = fr.len;
		fr.body = NULL;
	}
	cl_http_reply_release(&fr);
	res->times.run_ns = nemo_now_ns() - t0;
	gw_act_finish(&d->acts, seq, gw_act_status_of(res->status), res, NULL);
	NEMO_DEBUG(GW_MOD, "function=%s: queued call run on node %s: %s", fn->spec.name, to.name,
		   to.dec.why);
	return 1;
}

/*
 * The routes for peers (a function's code, a queued call) reach any namespace's functions:
 * they are for the nodes' own credential alone, the credentials file's first line, which
 * nodes send each other. False (rp filled: 403) for any other.
 */
static bool node_credential(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp)
{
	if (r->cred == &d->creds.c[0])
		return true;
	gw_reply_error(rp, 403,
		       "%.200s is for nemo's nodes: their credential is the first line of the "
		       "credentials file",
		       r->url);
	return false;
}

/* POST /api/v1/cluster/run/{key}: a peer's queued call (MQTT), run here as it is. */
static void route_run(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp,
		      const char *key)
{
	struct gw_call call = {
		.payload = r->body, .len = r->len, .trigger = GW_TRIGGER_MQTT, .result_only = true};
	struct gw_outcome out;
	char err[512], msg[256];
	size_t k = 0;
	int rc;

	if (!node_credential(d, r, rp))
		return;
	if (!gw_key_valid(key))
		return gw_reply_error(rp, 400, "function '%.80s': not a function key", key);
	forwarded_here(d, r);
	rc = gw_svc_invoke(d, key, &call, &out, err, sizeof(err));
	if (rc)
		return gw_reply_error(rp, gw_status_of_errno(rc), "%s", err);
	if (out.pending) {
		rp->status = 202;
		rp->body = "";
		rp->body_static = true;
		gw_reply_header(rp, "X-Activation-Id", out.id);
		return gw_svc_outcome_release(&out);
	}
	/* the message as a header value: printable, one line */
	for (const char *p = out.message; *p && k < sizeof(msg) - 1; p++)
		msg[k++] = (unsigned char)*p >= ' ' && *p != 0x7f ? *p : ' ';
	msg[k] = '\0';
	rp->status = 200;
	rp->body = out.result ? (char *)out.result : "";
	rp->body_static = !out.result;
	rp->len = out.result_len;
	rp->ctype = "application/octet-stream";
	gw_reply_header(rp, "X-Activation-Id", out.id);
	gw_reply_header(rp, "X-Nemo-Status", gw_act_status_name(out.status));
	if (msg[0])
		gw_reply_header(rp, "X-Nemo-Message", msg);
}

/* ---- routes --------------------------------------------------------------------------------------- */

static void route_nodes(struct gw_daemon *d, struct gw_reply *rp)
{
	struct cl_node_info nodes[CL_MAX_PEERS];
	struct cl_stats st;
	cJSON *j = cJSON_CreateObject(), *arr, *s;
	uint64_t now = gw_epoch_ms();
	int n = cl_node_list(d->cluster->node, nodes, CL_MAX_PEERS);
	const char *why = NULL;

	cJSON_AddStringToObject(j, "node", cl_node_name(d->cluster->node));
	cJSON_AddBoolToObject(j, "healthy", cl_node_healthy(d->cluster->node, &why));
	if (why)
		cJSON_AddStringToObject(j, "why", why);
	cJSON_AddStringToObject(j, "etcd", cl_etcd_endpoints(cl_node_etcd(d->cluster->node)));
	arr = cJSON_AddArrayToObject(j, "nodes");
	for (int i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject(), *cores = cJSON_AddArrayToObject(o, "cores");
		double total = 0;

		cJSON_AddStringToObject(o, "name", nodes[i].name);
		cJSON_AddStringToObject(o, "address", nodes[i].address);
		for (int k = 0; k < nodes[i].n_cores; k++) {
			cJSON *core = cJSON_CreateObject();

			cJSON_AddNumberToObject(core, "cpu", nodes[i].cores[k]);
			cJSON_AddNumberToObject(core, "spare_pred", nodes[i].spare[k]);
			cJSON_AddItemToArray(cores, core);
			total += nodes[i].spare[k];
		}
		cJSON_AddNumberToObject(o, "spare_cores", total);
		cJSON_AddNumberToObject(o, "queue", nodes[i].queue);
		cJSON_AddItemToObject(o, "warm", cJSON_Parse(nodes[i].warm ? nodes[i].warm : "{}"));
		cJSON_AddItemToObject(o, "functions",
				      cJSON_Parse(nodes[i].functions ? nodes[i].functions : "[]"));
		cJSON_AddNumberToObject(
			o, "age_ms",
			now > nodes[i].updated_ms ? (double)(now - nodes[i].updated_ms) : 0);
		cJSON_AddItemToArray(arr, o);
		cl_node_info_release(&nodes[i]);
	}
	cl_node_stats(d->cluster->node, &st);
	s = cJSON_AddObjectToObject(j, "stats");
	cJSON_AddNumberToObject(s, "record_txns", (double)st.txns);
	cJSON_AddNumberToObject(s, "record_ops", (double)st.act_ops);
	cJSON_AddNumberToObject(s, "accepted", (double)st.accepted);
	cJSON_AddNumberToObject(s, "started", (double)st.started);
	cJSON_AddNumberToObject(s, "ended", (double)st.ended);
	cJSON_AddNumberToObject(s, "adopted", (double)st.adopted);
	cJSON_AddNumberToObject(s, "interrupted", (double)st.interrupted);
	cJSON_AddNumberToObject(s, "fenced", (double)st.fenced);
	cJSON_AddNumberToObject(s, "ignored_records", (double)st.ignored_records);
	cJSON_AddNumberToObject(s, "delivered", (double)st.delivered);
	cJSON_AddNumberToObject(s, "redelivered", (double)st.redelivered);
	cJSON_AddNumberToObject(s, "cancelled", (double)st.cancelled);
	cJSON_AddNumberToObject(s, "node_records", (double)st.node_records);
	cJSON_AddNumberToObject(s, "node_records_alone", (double)st.node_records_alone);
	cJSON_AddNumberToObject(s, "etcd_requests", (double)st.etcd.requests);
	cJSON_AddNumberToObject(s, "etcd_writes", (double)st.etcd.calls[CL_REQ_WRITE]);
	cJSON_AddNumberToObject(s, "etcd_reads", (double)st.etcd.calls[CL_REQ_READ]);
	cJSON_AddNumberToObject(s, "etcd_renewals", (double)st.etcd.calls[CL_REQ_RENEW]);
	cJSON_AddNumberToObject(s, "etcd_errors", (double)st.etcd.errors);
	cJSON_AddNumberToObject(s, "etcd_bytes_out", (double)st.etcd.bytes_out);
	cJSON_AddNumberToObject(s, "etcd_bytes_in", (double)st.etcd.bytes_in);
	cJSON_AddNumberToObject(s, "last_adoption_ms", (double)st.last_adoption_ms);
	cJSON_AddNumberToObject(s, "forwarded", (double)atomic_load(&d->cluster->forwarded));
	cJSON_AddNumberToObject(s, "forward_failed",
				(double)atomic_load(&d->cluster->forward_failed));
	cJSON_AddNumberToObject(s, "decisions", (double)atomic_load(&d->cluster->decisions));
	cJSON_AddNumberToObject(s, "decide_ns_mean",
				atomic_load(&d->cluster->decisions)
					? (double)atomic_load(&d->cluster->decide_ns) /
						  (double)atomic_load(&d->cluster->decisions)
					: 0);
	gw_reply_json(rp, 200, j);
}

static void route_code(struct gw_daemon *d, const struct gw_request *r, const char *key,
		       struct gw_reply *rp)
{
	struct gw_function *fn;
	uint8_t *code;
	size_t len = 0;
	bool zip;

	if (!node_credential(d, r, rp))
		return;
	fn = gw_key_valid(key) ? gw_fn_get(d, key) : NULL;
	if (!fn)
		return gw_reply_error(rp, 404, "function '%.80s' is not deployed here", key);
	code = code_bytes(fn, &len, &zip);
	gw_fn_put(fn);
	if (!code)
		return gw_reply_error(
			rp, 404, "function '%.80s': its code is a folder without its zip archive",
			key);
	rp->status = 200;
	rp->body = (char *)code;
	rp->len = len;
	rp->ctype = zip ? "application/zip" : "application/octet-stream";
}

void gw_api_cluster(struct gw_daemon *d, const struct gw_request *r, struct gw_reply *rp)
{
	if (!d->cluster)
		return gw_reply_error(rp, 404,
				      "this nemod is not in a cluster (cluster.enabled is false in "
				      "%s)",
				      d->cfg.file);
	if (!strncmp(r->url, "/api/v1/cluster/run/", 20)) {
		if (!gw_req_is(r, "POST"))
			return gw_reply_not_allowed(rp, r, "POST");
		return route_run(d, r, rp, r->url + 20);
	}
	if (!gw_req_is(r, "GET"))
		return gw_reply_not_allowed(rp, r, "GET");
	if (!strcmp(r->url, "/api/v1/cluster/nodes") || !strcmp(r->url, "/api/v1/cluster"))
		return route_nodes(d, rp);
	if (!strncmp(r->url, "/api/v1/cluster/code/", 21))
		return route_code(d, r, r->url + 21, rp);
	if (!strncmp(r->url, "/api/v1/cluster/activations/", 28)) {
		cJSON *j = gw_cluster_act_json(d, r->url + 28);

		if (!j)
			return gw_reply_error(rp, 404, "activation '%.40s' is not in etcd",
					      r->url + 28);
		return gw_reply_json(rp, 200, j);
	}
	gw_reply_error(rp, 404, "no route for %s %.200s", r->method, r->url);
}

/* ---- join and leave ------------------------------------------------------------------------------- */

static void glue_free(struct gw_daemon *d)
{
	struct glue *g = glue_of(d);

	/* no more fetches nor deploys from them; one on its way ends with its timeout */
	pthread_mutex_lock(&g->fetch_lock);
	g->fetcher_stop = true;
	pthread_cond_signal(&g->fetch_cond);
	pthread_mutex_unlock(&g->fetch_lock);
	if (g->router_started) {
		pthread_mutex_lock(&g->route_lock);
		g->router_stop = true;
		pthread_cond_signal(&g->route_cond);
		pthread_mutex_unlock(&g->route_lock);
		pthread_join(g->router, NULL);
	}
	if (g->c.node)
		cl_node_leave(g->c.node);
	if (g->fetcher_started)
		pthread_join(g->fetcher, NULL);
	while (g->fetches) {
		struct fetch *f = g->fetches;

		g->fetches = f->next;
		fetch_free(f);
	}
	/* results not delivered yet stay "ended" in etcd: the node that adopts them delivers */
	while (g->dl_head) {
		struct delivery *dl = g->dl_head;

		g->dl_head = dl->next;
		delivery_free(dl);
	}
	d->cluster = NULL;
	free(g->acks);
	free(g->c.warm_json);
	free(g->c.fns_json);
	pthread_mutex_destroy(&g->c.lock);
	pthread_mutex_destroy(&g->ack_lock);
	pthread_mutex_destroy(&g->route_lock);
	pthread_cond_destroy(&g->route_cond);
	pthread_mutex_destroy(&g->fetch_lock);
	pthread_cond_destroy(&g->fetch_cond);
	pthread_mutex_destroy(&g->apply_lock);
	free(g);
}

int gw_cluster_join(struct gw_daemon *d)
{
	struct glue *g;
	struct gw_cluster *c;
	struct cl_hooks hooks = {.fn_deployed = hook_fn_deployed,
				 .fn_deleted = hook_fn_deleted,
				 .adopt = hook_adopt,
				 .load = hook_load,
				 .deliver = hook_deliver,
				 .arg = d};
	pthread_condattr_t ca;
	int rc;

	if (!d->cfg.cluster.cl.enabled)
		return 0;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	c = &g->c;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&g->ack_lock, NULL);
	pthread_mutex_init(&g->route_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->route_cond, &ca);
	pthread_mutex_init(&g->fetch_lock, NULL);
	pthread_mutex_init(&g->apply_lock, NULL);
	pthread_cond_init(&g->fetch_cond, &ca);
	pthread_condattr_destroy(&ca);
	g->dl_tail = &g->dl_head;
	d->cluster = c;
	/* before the join: its threads may hand results over at once, and records to fetch */
	rc = -pthread_create(&g->router, NULL, router_main, d);
	g->router_started = rc == 0;
	if (!rc) {
		rc = -pthread_create(&g->fetcher, NULL, fetcher_main, d);
		g->fetcher_started = rc == 0;
	}
	if (rc) {
		NEMO_ERR(GW_MOD, "cluster: cannot start its threads: %s", strerror(-rc));
		glue_free(d);
		return rc;
	}
	/* functions this node has (from its store) go to the registry once it is in */
	__atomic_store_n(&c->node, cl_node_join(&d->cfg.cluster.cl, &hooks), __ATOMIC_RELEASE);
	if (!c->node) {
		rc = -errno;
		NEMO_ERR(GW_MOD, "cluster: cannot join through etcd at %s as node %s: %s",
			 d->cfg.cluster.cl.endpoints[0], d->cfg.cluster.cl.node, strerror(-rc));
		glue_free(d);
		return rc;
	}
	snprintf(d->acts.node, sizeof(d->acts.node), "%s", cl_node_name(c->node));
	/* our own records from before a restart, before any worker runs one */
	rc = cl_node_adopt_orphans(c->node);
	NEMO_INFO(GW_MOD, "cluster: node %s joined through %s; %d activations taken over at start",
		  cl_node_name(c->node), cl_etcd_endpoints(cl_node_etcd(c->node)), rc > 0 ? rc : 0);
	return 0;
}

void gw_cluster_leave(struct gw_daemon *d)
{
	if (d->cluster)
		glue_free(d);
}

bool gw_cluster_degraded(struct gw_daemon *d, char *why, size_t len)
{
	const char *w = NULL;

	if (!d->cluster || cl_node_healthy(d->cluster->node, &w))
		return false;
	snprintf(why, len, "cluster: %s", w);
	return true;
}
