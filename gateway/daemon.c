/* daemon.c - nemod's life: credentials, the store lock, start, drain, stop; JSON views. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/log.h"
#include "gw_internal.h"

/* ---- lifecycle ---------------------------------------------------------------------------------- */

static int load_one(void *arg, const char *name, const char *doc)
{
	struct gw_daemon *d = arg;
	struct gw_deploy_req req;
	char err[512];
	int rc;

	rc = gw_deploy_parse_native(name, doc, strlen(doc), true, &req, err, sizeof(err));
	if (!rc)
		rc = gw_svc_deploy(d, &req, 0, err, sizeof(err));
	if (rc)
		NEMO_ERR(GW_MOD, "store: function %s not loaded: %s", name, err);
	return rc;
}

/* First start: make a random token, readable by root only, and say where it is. */
static int make_token(const char *path)
{
	uint8_t rnd[24];
	char hex[sizeof(rnd) * 2 + 2];
	FILE *f;
	int fd;

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	strcat(hex, "\n");
	{
		/* /etc/nemo may not exist on a fresh machine */
		char dir[GW_PATH_MAX];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0755) < 0 && errno != EEXIST)
				NEMO_WARN(GW_MOD, "token dir %s: %s", dir, strerror(errno));
		}
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;

		NEMO_ERR(GW_MOD,
			 "token file %s: cannot create: %s (run make install, or write 64 hex "
			 "characters to it yourself, mode 0600)",
			 path, strerror(e));
		return -e;
	}
	f = fdopen(fd, "w");
	if (!f || fputs(hex, f) < 0 || fclose(f)) {
		NEMO_ERR(GW_MOD, "token file %s: write failed", path);
		if (!f)
			close(fd);
		return -EIO;
	}
	NEMO_WARN(GW_MOD, "token file %s did not exist: generated a new token there", path);
	return 0;
}

static int read_creds(struct gw_daemon *d)
{
	size_t len;
	char *text = gw_read_file(d->cfg.token_file, 64 * 1024, &len);
	char err[256];
	int rc;

	if (!text && errno == ENOENT && !make_token(d->cfg.token_file))
		text = gw_read_file(d->cfg.token_file, 64 * 1024, &len);
	if (!text) {
		int e = errno;

		NEMO_ERR(GW_MOD, "credentials file %s: %s", d->cfg.token_file, strerror(e));
		return -e;
	}
	rc = gw_creds_parse(text, len, &d->creds, err, sizeof(err));
	free(text);
	if (rc) {
		NEMO_ERR(GW_MOD, "credentials file %s: %s", d->cfg.token_file, err);
		return rc;
	}
	/* open doors, MQTT and the store from before namespaces: the operator's namespace */
	snprintf(d->default_ns, sizeof(d->default_ns), "%s",
		 d->cfg.default_namespace[0] ? d->cfg.default_namespace : d->creds.c[0].ns);
	NEMO_INFO(GW_MOD, "credentials file=%s credentials=%d default_namespace=%s",
		  d->cfg.token_file, d->creds.n, d->default_ns);
	return 0;
}

/*
 * One nemod per store: an exclusive flock on <store>/.nemod.lock, with the holder's pid in
 * it. A second nemod on the same store is refused, naming the pid that holds it.
 */
/* Take an exclusive flock on `path` and write our pid in it. Returns the fd, or -errno. */
static int lock_file(const char *path, const char *what, const char *name)
{
	struct stat a, b;
	char pid[32];
	int fd, n;

again:
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;

		NEMO_ERR(GW_MOD, "%s lock %s: %s", what, path, strerror(e));
		return -e;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		n = (int)pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (e == EWOULDBLOCK)
			NEMO_ERR(GW_MOD,
				 "%s %s is in use by another nemod (pid %s holds %s): one nemod "
				 "per %s",
				 what, name, pid[0] ? pid : "unknown", path, what);
		else
			NEMO_ERR(GW_MOD, "%s lock %s: %s", what, path, strerror(e));
		close(fd);
		return e == EWOULDBLOCK ? -EBUSY : -e;
	}
	/* the holder that stopped may have removed the file meanwhile: lock the one in place */
	if (fstat(fd, &a) == 0 &&
	    (stat(path, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
		close(fd);
		goto again;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		NEMO_WARN(GW_MOD, "%s lock %s: cannot write the pid: %s", what, path,
			  strerror(errno));
	return fd;
}

/* Locks taken by gw_store_lock() before the daemon exists, adopted by gw_daemon_new(). */
static int held_store_fd = -1, held_cgroup_fd = -1;
static char held_store[GW_PATH_MAX], cgroup_lock_path[GW_PATH_MAX];

int gw_store_lock(const struct gw_config *cfg)
{
	char path[GW_PATH_MAX + 64], name[sizeof(cfg->cgroup_root)];
	int rc, fd;

	if (held_store_fd >= 0)
		return 0;
	rc = gw_store_init(cfg->store_dir);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/.nemod.lock", cfg->store_dir);
	fd = lock_file(path, "store", cfg->store_dir);
	if (fd < 0)
		return fd;
	/* the sandbox cgroups too: a second nemod would remove the first one's as leftovers */
	snprintf(name, sizeof(name), "%s", cfg->cgroup_root);
	for (char *p = name; *p; p++)
		if (*p == '/')
			*p = '_';
	mkdir("/run/nemo", 0700);
	snprintf(path, sizeof(path), "/run/nemo/cgroup-%s.lock", name);
	held_cgroup_fd = lock_file(path, "cgroup_root", cfg->cgroup_root);
	if (held_cgroup_fd >= 0)
		snprintf(cgroup_lock_path, sizeof(cgroup_lock_path), "%s", path);
	if (held_cgroup_fd < 0 && held_cgroup_fd != -EBUSY) {
		/* no /run to lock in: the store lock still keeps one nemod per store */
		NEMO_WARN(GW_MOD, "cgroup_root %s: not locked", cfg->cgroup_root);
	} else if (held_cgroup_fd < 0) {
		close(fd);
		return -EBUSY;
	}
	held_store_fd = fd;
	snprintf(held_store, sizeof(held_store), "%s", cfg->store_dir);
	return 0;
}

static int lock_store(struct gw_daemon *d)
{
	int rc = 0;

	if (held_store_fd < 0 || strcmp(held_store, d->cfg.store_dir))
		rc = gw_store_lock(&d->cfg);
	if (rc)
		return rc;
	d->lock_fd = held_store_fd;
	d->cgroup_lock_fd = held_cgroup_fd;
	held_store_fd = held_cgroup_fd = -1;
	return 0;
}

struct gw_daemon *gw_daemon_new(const struct gw_config *cfg, const struct gw_backend *backend,
				const struct gw_dispatch *dispatch)
{
	struct gw_daemon *d = calloc(1, sizeof(*d));
	int rc, loaded;

	if (!d)
		return NULL;
	d->cfg = *cfg;
	d->backend = *backend;
	d->dispatch = *dispatch;
	d->started_ms = gw_epoch_ms();
	pthread_rwlock_init(&d->fn_lock, NULL);
	pthread_mutex_init(&d->deploy_lock, NULL);
	pthread_mutex_init(&d->q_lock, NULL);
	pthread_cond_init(&d->q_cond, NULL);
	pthread_cond_init(&d->q_idle, NULL);
	d->lock_fd = d->cgroup_lock_fd = -1;
	rc = read_creds(d);
	if (rc)
		goto fail;
	rc = lock_store(d);
	if (rc)
		goto fail;
	rc = gw_act_table_init(&d->acts, cfg->limits.activations_kept);
	if (rc)
		goto fail_lock;
	d->acts.journal_sync = cfg->journal_sync;
	snprintf(d->acts.default_ns, sizeof(d->acts.default_ns), "%s", d->default_ns);
	d->q_cap = cfg->limits.async_queue;
	d->queue = calloc(d->q_cap, sizeof(*d->queue));
	d->workers = calloc(cfg->async_workers, sizeof(*d->workers));
	if (!d->queue || !d->workers) {
		rc = -ENOMEM;
		goto fail_acts;
	}
	loaded = gw_store_load(cfg->store_dir, load_one, d);
	if (loaded < 0) {
		rc = loaded;
		goto fail_acts;
	}
	NEMO_INFO(GW_MOD, "store dir=%s functions_loaded=%d", cfg->store_dir, loaded);
	{
		uint64_t *requeue;
		size_t n;

		rc = gw_journal_replay(&d->acts, cfg->store_dir, &requeue, &n);
		if (rc)
			goto fail_acts;
		/* activations accepted before a crash and never started run now, once */
		if (n > d->q_cap) {
			uint64_t *q = realloc(d->queue, n * sizeof(*q));

			if (!q) {
				free(requeue);
				rc = -ENOMEM;
				goto fail_acts;
			}
			d->queue = q;
			d->q_cap = (uint32_t)n;
		}
		for (size_t i = 0; i < n; i++)
			d->queue[d->q_len++] = requeue[i];
		free(requeue);
	}
	/* in a cluster: the registry's functions, and our records from before, before any
	 * worker runs (an etcd that is down is waited for, then a clear error) */
	rc = gw_cluster_join(d);
	if (rc)
		goto fail_workers;
	for (uint32_t i = 0; i < cfg->async_workers; i++) {
		rc = -pthread_create(&d->workers[i], NULL, gw_svc_worker, d);
		if (rc) {
			NEMO_ERR(GW_MOD, "async worker: %s", strerror(-rc));
			goto fail_workers;
		}
		d->n_workers++;
	}
	return d;

fail_workers:
	gw_cluster_leave(d);
	pthread_mutex_lock(&d->q_lock);
	d->q_stop = true;
	pthread_cond_broadcast(&d->q_cond);
	pthread_mutex_unlock(&d->q_lock);
	for (int i = 0; i < d->n_workers; i++)
		pthread_join(d->workers[i], NULL);
	while (d->functions) {
		/* the store keeps them: only the in-memory view goes */
		struct gw_function *fn = d->functions;

		d->functions = fn->next;
		d->backend.ops->undeploy(d->backend.state, fn->spec.name);
		gw_fn_put(fn);
	}
fail_acts:
	free(d->queue);
	free(d->workers);
	gw_act_table_fini(&d->acts);
fail_lock:
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	if (d->cgroup_lock_fd >= 0)
		close(d->cgroup_lock_fd);
fail:
	free(d);
	errno = -rc;
	return NULL;
}

/* The pid of the process listening on TCP `port` (from /proc), or 0 when it cannot be told. */
static pid_t port_holder(uint16_t port)
{
	static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	unsigned long inode = 0;
	char line[512], want[64];
	pid_t pid = 0;
	DIR *procs;
	struct dirent *p;

	for (int t = 0; t < 2 && !inode; t++) {
		FILE *f = fopen(tables[t], "r");

		while (f && fgets(line, sizeof(line), f)) {
			char local[64], remote[64], st[8];
			unsigned long ino;
			char *colon;

			if (sscanf(line, "%*d: %63s %63s %7s %*s %*s %*s %*s %*s %lu", local,
				   remote, st, &ino) != 4 ||
			    strcmp(st, "0A")) /* LISTEN */
				continue;
			colon = strrchr(local, ':');
			if (colon && strtoul(colon + 1, NULL, 16) == port) {
				inode = ino;
				break;
			}
		}
		if (f)
			fclose(f);
	}
	if (!inode)
		return 0;
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	procs = opendir("/proc");
	while (procs && !pid && (p = readdir(procs))) {
		char fds[300], target[64];
		struct dirent *fd;
		DIR *fdir;

		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		snprintf(fds, sizeof(fds), "/proc/%s/fd", p->d_name);
		fdir = opendir(fds);
		while (fdir && (fd = readdir(fdir))) {
			ssize_t n;

			if (fd->d_name[0] == '.')
				continue;
			snprintf(fds, sizeof(fds), "/proc/%.20s/fd/%.20s", p->d_name, fd->d_name);
			n = readlink(fds, target, sizeof(target) - 1);
			if (n > 0) {
				target[n] = '\0';
				if (!strcmp(target, want)) {
					pid = (pid_t)atoi(p->d_name);
					break;
				}
			}
		}
		if (fdir)
			closedir(fdir);
	}
	if (procs)
		closedir(procs);
	return pid;
}

int gw_daemon_start(struct gw_daemon *d)
{
	d->http = gw_http_start(d);
	if (!d->http) {
		int rc = -errno;

		if (rc == -EADDRINUSE) {
			pid_t holder = port_holder(d->cfg.listen_port);

			if (holder)
				NEMO_ERR(
					GW_MOD,
					"port %u is in use by pid %d: one nemod per port (stop it, "
					"or set another 'listen' in %s)",
					d->cfg.listen_port, holder, d->cfg.file);
			else
				NEMO_ERR(GW_MOD, "port %u is in use by another process",
					 d->cfg.listen_port);
		}
		return rc;
	}
	if (d->cfg.mqtt.enabled) {
		d->mqtt = gw_mqtt_start(d);
		if (!d->mqtt) {
			int rc = -errno;

			gw_http_stop(d->http);
			d->http = NULL;
			return rc;
		}
	}
	/* packet triggers: instances fed by NF rings, for as long as nemod serves */
	if (d->backend.ops->packet_start) {
		d->packet = gw_packet_start(d);
		if (!d->packet) {
			int rc = -errno;

			if (d->mqtt)
				gw_mqtt_stop(d->mqtt);
			d->mqtt = NULL;
			gw_http_stop(d->http);
			d->http = NULL;
			return rc;
		}
	}
	NEMO_INFO(GW_MOD, "listening addr=%s:%u backend=%s dispatch=%s", d->cfg.listen_host,
		  gw_http_port(d->http), d->backend.ops->name, d->dispatch.ops->name);
	return 0;
}

uint16_t gw_daemon_port(const struct gw_daemon *d)
{
	return d->http ? gw_http_port(d->http) : 0;
}

void gw_daemon_run(struct gw_daemon *d)
{
	uint64_t last = nemo_now_ns();

	while (!d->stop) {
		struct timespec ts = {0, 50 * 1000000};

		nanosleep(&ts, NULL);
		/* keep-alive expiry is a slow loop: once a second is plenty */
		if (nemo_now_ns() - last > 1000000000ull) {
			last = nemo_now_ns();
			if (d->backend.ops->maintain)
				d->backend.ops->maintain(d->backend.state);
		}
	}
}

void gw_daemon_request_stop(struct gw_daemon *d)
{
	d->stop = 1;
}

int gw_daemon_drain(struct gw_daemon *d)
{
	uint64_t deadline = nemo_now_ns() + (uint64_t)d->cfg.drain_timeout_ms * 1000000ull;
	int cancelled = 0;
	struct timespec ts;
	uint32_t left;

	d->draining = true;
	if (d->mqtt) {
		gw_mqtt_stop(d->mqtt);
		d->mqtt = NULL;
	}
	/* packet instances take no calls to drain: their leases end now, the NF resets */
	gw_packet_stop(d->packet);
	d->packet = NULL;
	NEMO_INFO(GW_MOD, "draining inflight=%u queued=%u deadline_ms=%u",
		  atomic_load(&d->inflight), d->q_len, d->cfg.drain_timeout_ms);
	/* in-flight HTTP invocations, and queued async ones, get until the deadline */
	for (;;) {
		pthread_mutex_lock(&d->q_lock);
		left = d->q_len + d->q_active;
		pthread_mutex_unlock(&d->q_lock);
		if ((!left && !atomic_load(&d->inflight)) || nemo_now_ns() >= deadline)
			break;
		ts = (struct timespec){0, 5 * 1000000};
		nanosleep(&ts, NULL);
	}
	/* a call on a core its NF holds frozen would keep a worker, and the join, waiting */
	if (d->backend.ops->stop)
		d->backend.ops->stop(d->backend.state);
	pthread_mutex_lock(&d->q_lock);
	d->q_stop = true;
	pthread_cond_broadcast(&d->q_cond);
	/* what never started ends now, as cancelled: a terminal state, not a lost activation */
	while (d->q_len) {
		uint64_t seq = d->queue[d->q_head];

		d->q_head = (d->q_head + 1) % d->q_cap;
		d->q_len--;
		if (!gw_act_finish(&d->acts, seq, GW_ACT_CANCELLED, NULL,
				   d->cluster ? "nemod shut down before the activation started; "
						"another node of the cluster runs it"
					      : "nemod shut down before the activation started"))
			cancelled++;
	}
	pthread_mutex_unlock(&d->q_lock);
	for (int i = 0; i < d->n_workers; i++)
		pthread_join(d->workers[i], NULL);
	d->n_workers = 0;
	if (d->http) {
		gw_http_stop(d->http);
		d->http = NULL;
	}
	/* leaving revokes our lease: the peers adopt what never started here at once */
	gw_cluster_leave(d);
	NEMO_INFO(GW_MOD, "drained cancelled=%d inflight_left=%u", cancelled,
		  atomic_load(&d->inflight));
	return cancelled;
}

void gw_daemon_destroy(struct gw_daemon *d)
{
	struct gw_function *fn, *next;

	if (!d)
		return;
	if (d->n_workers || d->http)
		gw_daemon_drain(d);
	gw_cluster_leave(d);
	/* functions stay in the store: only the in-memory view goes */
	for (fn = d->functions; fn; fn = next) {
		next = fn->next;
		gw_fn_put(fn);
	}
	gw_act_table_fini(&d->acts);
	free(d->queue);
	free(d->workers);
	pthread_rwlock_destroy(&d->fn_lock);
	pthread_mutex_destroy(&d->deploy_lock);
	pthread_mutex_destroy(&d->q_lock);
	pthread_cond_destroy(&d->q_cond);
	pthread_cond_destroy(&d->q_idle);
	if (d->lock_fd >= 0)
		close(d->lock_fd); /* the flock goes with the descriptor */
	if (d->cgroup_lock_fd >= 0) {
		/* /run keeps no file per cgroup root ever used; a starting nemod checks it locked
		 * the file still in place */
		unlink(cgroup_lock_path);
		close(d->cgroup_lock_fd);
	}
	free(d);
}

cJSON *gw_fn_json(struct gw_daemon *d, struct gw_function *fn, bool with_doc)
{
	const struct sbx_spec *s = &fn->spec;
	struct sbx_pool_stats st;
	cJSON *j = cJSON_CreateObject(), *pool, *m;

	cJSON_AddStringToObject(j, "name", fn->name);
	cJSON_AddStringToObject(j, "namespace", fn->ns);
	cJSON_AddNumberToObject(j, "version", (double)fn->version);
	cJSON_AddStringToObject(j, "runtime", sbx_runtime_name(s->runtime));
	cJSON_AddStringToObject(j, "handler", s->handler);
	cJSON_AddNumberToObject(j, "memory_mb", s->memory_mb);
	cJSON_AddNumberToObject(j, "timeout_ms", s->timeout_ms);
	cJSON_AddNumberToObject(j, "concurrency", s->concurrency);
	cJSON_AddNumberToObject(j, "max_payload_bytes", s->max_payload_bytes);
	cJSON_AddNumberToObject(j, "prewarm", fn->prewarm);
	cJSON_AddStringToObject(j, "code", s->code);
	cJSON_AddStringToObject(j, "kind", fn->kind);
	if (fn->parameters)
		cJSON_AddItemToObject(j, "parameters", cJSON_Duplicate(fn->parameters, true));
	if (fn->log_limit)
		cJSON_AddNumberToObject(j, "logs_bytes", fn->log_limit);
	if (fn->mqtt.n_topics) {
		cJSON *topics;

		m = cJSON_AddObjectToObject(j, "mqtt");
		topics = cJSON_AddArrayToObject(m, "topics");
		for (int i = 0; i < fn->mqtt.n_topics; i++)
			cJSON_AddItemToArray(topics, cJSON_CreateString(fn->mqtt.topics[i]));
		if (fn->mqtt.reply_topic[0])
			cJSON_AddStringToObject(m, "reply_topic", fn->mqtt.reply_topic);
	}
	if (fn->packet.on) {
		const struct gw_packet_trigger *t = &fn->packet;
		struct gw_packet_figures pf;

		m = cJSON_AddObjectToObject(j, "packet");
		cJSON_AddStringToObject(m, "nf", t->nf);
		cJSON_AddStringToObject(m, "socket", t->socket);
		cJSON_AddStringToObject(m, "function", t->function);
		if (t->lcore >= 0)
			cJSON_AddNumberToObject(m, "lcore", t->lcore);
		else
			cJSON_AddStringToObject(m, "lcore", "any");
		if (t->core >= 0)
			cJSON_AddNumberToObject(m, "core", t->core);
		cJSON_AddNumberToObject(m, "batch", t->batch);
		cJSON_AddNumberToObject(m, "spin_us", t->spin_us);
		cJSON_AddStringToObject(m, "handler", t->handler);
		cJSON_AddNumberToObject(m, "instances", t->instances);
		if (gw_packet_figures(d->packet, s->name, &pf) == 0) {
			cJSON_AddStringToObject(m, "state", pf.state);
			cJSON_AddNumberToObject(m, "serving", pf.serving);
			cJSON_AddNumberToObject(m, "packets", (double)pf.packets);
			cJSON_AddNumberToObject(m, "batches", (double)pf.batches);
			cJSON_AddNumberToObject(m, "replies", (double)pf.replies);
			cJSON_AddNumberToObject(m, "errors", (double)pf.errors);
			cJSON_AddNumberToObject(m, "parks", (double)pf.parks);
			cJSON_AddNumberToObject(m, "restarts", (double)pf.restarts);
		}
	}
	pool = cJSON_AddObjectToObject(j, "warm_pool");
	if (d->backend.ops->stats(d->backend.state, s->name, &st) == 0) {
		cJSON_AddNumberToObject(pool, "idle", st.idle);
		cJSON_AddNumberToObject(pool, "busy", st.busy);
		cJSON_AddNumberToObject(pool, "leased", st.leased);
		cJSON_AddNumberToObject(pool, "prewarmed", st.prewarmed);
		cJSON_AddNumberToObject(pool, "cold_starts", (double)st.cold_starts);
		cJSON_AddNumberToObject(pool, "warm_starts", (double)st.warm_starts);
		cJSON_AddNumberToObject(pool, "prewarmed_starts", (double)st.prewarmed_starts);
		cJSON_AddNumberToObject(pool, "zygote_starts", (double)st.zygote_starts);
		cJSON_AddNumberToObject(pool, "zygotes", st.zygotes);
		cJSON_AddNumberToObject(pool, "zygote_memory_bytes",
					(double)st.zygote_memory_bytes);
		cJSON_AddNumberToObject(pool, "crashes", (double)st.crashes);
	}
	if (with_doc && fn->doc) {
		cJSON *doc = gw_json_parse("stored spec", fn->doc, strlen(fn->doc), NULL, 0);

		if (doc)
			cJSON_AddItemToObject(j, "spec", doc);
	}
	return j;
}
