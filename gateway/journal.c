/* journal.c - queued activations on disk: after a nemod crash none is lost and none runs twice. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nemo/base64.h"
#include "nemo/log.h"
#include "gw_internal.h"

/* Compact (rewrite from the table) once the journal passes this. */
#define JOURNAL_MAX_BYTES (32u << 20)
/* what a function's kind may hold to go into a line as it is (a field ends at white space) */
#define KIND_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:._-+/@"

static int jwrite(struct gw_act_table *t, const char *buf, size_t len);

static int by_seq_cmp(const void *x, const void *y, void *arg)
{
	const struct gw_act_table *t = arg;
	uint64_t a = t->slots[*(const uint32_t *)x].seq, b = t->slots[*(const uint32_t *)y].seq;

	return a < b ? -1 : a > b;
}

/* fsync the folder holding `path`, so that a rename in it is durable. */
static int sync_dir(const char *path)
{
	char dir[GW_PATH_MAX + 32];
	char *slash;
	int fd, rc = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fsync(fd) < 0)
		rc = -1;
	close(fd);
	return rc;
}

/* Rewrite the journal from what the table holds: the records that still matter. */
static int rewrite_locked(struct gw_act_table *t)
{
	char tmp[sizeof(t->journal_path) + 8];
	int fd, old = t->journal_fd;
	size_t old_bytes = t->journal_bytes;
	uint32_t *order = malloc(sizeof(*order) * t->capacity), n_order = 0;

	if (!order)
		return -ENOMEM;

	snprintf(tmp, sizeof(tmp), "%s.tmp", t->journal_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;

		NEMO_ERR(GW_MOD, "journal %s: %s", tmp, strerror(e));
		free(order);
		return -e;
	}
	t->journal_fd = fd;
	t->journal_bytes = 0;
	/* oldest first; a live record skipped over by newer ones may sit anywhere */
	for (uint32_t i = 0; i < t->capacity; i++)
		if (t->slots[i].seq && (t->slots[i].queued || t->slots[i].journaled))
			order[n_order++] = i;
	qsort_r(order, n_order, sizeof(*order), by_seq_cmp, t);
	for (uint32_t k = 0; k < n_order; k++) {
		struct gw_activation *a = &t->slots[order[k]];

		if (a->queued)
			gw_journal_note(t, a, 'A');
		if (a->status == GW_ACT_RUNNING)
			gw_journal_note(t, a, 'R');
		else if (gw_act_terminal(a->status))
			gw_journal_note(t, a, 'T');
	}
	if (fsync(fd) < 0 || rename(tmp, t->journal_path) < 0 || sync_dir(t->journal_path) < 0) {
		int e = errno;

		NEMO_ERR(GW_MOD, "journal %s: %s", t->journal_path, strerror(e));
		close(fd);
		unlink(tmp);
		/* the old journal goes on: a torn line is cut back to its own length, not the
		 * new one's */
		t->journal_fd = old;
		t->journal_bytes = old_bytes;
		free(order);
		return -e;
	}
	if (old >= 0)
		close(old);
	free(order);
	return 0;
}

static int jwrite(struct gw_act_table *t, const char *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = write(t->journal_fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			NEMO_LOG_RATELIMITED(NEMO_LOG_ERR, GW_MOD, 1000, 5, "journal %s: write: %s",
					     t->journal_path, strerror(e));
			snprintf(t->journal_err, sizeof(t->journal_err), "journal %s: write: %s",
				 t->journal_path, strerror(e));
			/* no torn line stays behind for the next record to run into, and the next
			 * one goes where this one began (not past a hole) */
			if (off && (ftruncate(t->journal_fd, (off_t)t->journal_bytes) < 0 ||
				    lseek(t->journal_fd, (off_t)t->journal_bytes, SEEK_SET) < 0))
				NEMO_LOG_RATELIMITED(NEMO_LOG_ERR, GW_MOD, 1000, 5,
						     "journal %s: truncate: %s", t->journal_path,
						     strerror(errno));
			return -e;
		}
		off += (size_t)n;
	}
	t->journal_bytes += len;
	atomic_fetch_add_explicit(&t->written, 1, memory_order_release);
	return 0;
}

/* Sleep while *word is still val (or until woken); returns at once if it changed already. */
static void futex_wait(_Atomic uint32_t *word, uint32_t val)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/*
 * Group commit. One caller at a time leads an fdatasync (epoch N) that covers every line
 * written before it began. A caller whose line it covers sleeps on the futex word of epoch N;
 * the first caller it does not cover becomes the next leader and sleeps there too (it leads
 * N + 1 when N ends); later ones sleep on the word of N + 1. When an epoch ends its leader
 * bumps its word and wakes its sleepers, who see `synced` and return without a lock. So
 * each caller sleeps once and wakes once. (A condition variable broadcast woke every waiter,
 * ~45 % of them for nothing, and each then queued for the mutex: at 64 connections most of
 * the durable journal's cost, in wake-ups that are IPIs on a VM.)
 */
int gw_journal_sync(struct gw_act_table *t)
{
	uint64_t want, target, epoch;
	bool next_leader = false;
	int rc = 0, fd;

	if (!t->journal_sync)
		return 0;
	want = atomic_load_explicit(&t->written, memory_order_acquire);
	if (atomic_load_explicit(&t->synced, memory_order_acquire) >= want)
		return 0;
	pthread_mutex_lock(&t->sync_lock);
	while (!rc && atomic_load_explicit(&t->synced, memory_order_relaxed) < want) {
		if (t->syncing) {
			_Atomic uint32_t *word;
			uint32_t gen;

			epoch = t->sync_epoch;
			if (want > t->sync_target && !next_leader) {
				/* not covered: lead the next one, or wait for it */
				if (t->next_leader)
					epoch++;
				else
					t->next_leader = next_leader = true;
			}
			word = &t->sync_gen[epoch & 1];
			gen = atomic_load_explicit(word, memory_order_acquire);
			pthread_mutex_unlock(&t->sync_lock);
			futex_wait(word, gen);
			if (atomic_load_explicit(&t->synced, memory_order_acquire) >= want)
				return 0; /* the common case: covered, and no lock taken again */
			pthread_mutex_lock(&t->sync_lock);
			continue;
		}
		/* lead one fdatasync for all that is written now */
		t->syncing = true;
		t->next_leader = next_leader = false;
		epoch = ++t->sync_epoch;
		pthread_mutex_lock(&t->lock);
		target = atomic_load_explicit(&t->written, memory_order_acquire);
		fd = t->journal_fd >= 0 ? dup(t->journal_fd) : -1; /* compaction may swap it */
		pthread_mutex_unlock(&t->lock);
		t->sync_target = target;
		pthread_mutex_unlock(&t->sync_lock);
		if (fd < 0 || fdatasync(fd) < 0) {
			int e = errno;

			rc = -e;
			pthread_mutex_lock(&t->lock);
			snprintf(t->journal_err, sizeof(t->journal_err),
				 "journal %s: fdatasync: %s", t->journal_path, strerror(e));
			pthread_mutex_unlock(&t->lock);
			NEMO_LOG_RATELIMITED(NEMO_LOG_ERR, GW_MOD, 1000, 5,
					     "journal %s: fdatasync: %s", t->journal_path,
					     strerror(e));
		}
		if (fd >= 0)
			close(fd);
		if (!rc) {
			/* on disk again: whatever failed before, the journal works now */
			pthread_mutex_lock(&t->lock);
			t->journal_err[0] = '\0';
			pthread_mutex_unlock(&t->lock);
		}
		pthread_mutex_lock(&t->sync_lock);
		t->syncing = false;
		t->n_syncs++;
		if (!rc && target > atomic_load_explicit(&t->synced, memory_order_relaxed))
			atomic_store_explicit(&t->synced, target, memory_order_release);
		/* this epoch's sleepers, and the next leader among them, go (after a failure
		 * they find themselves not covered and try again) */
		atomic_fetch_add_explicit(&t->sync_gen[epoch & 1], 1, memory_order_release);
		futex_wake_all(&t->sync_gen[epoch & 1]);
	}
	pthread_mutex_unlock(&t->sync_lock);
	return rc;
}

bool gw_journal_error(struct gw_act_table *t, char *buf, size_t len)
{
	bool bad;

	pthread_mutex_lock(&t->lock);
	if (t->journal_err[0] && t->journal_fd >= 0) {
		struct statvfs sv;

		/* room again (1 MiB): the next append may try; it sets the error again if not */
		if (fstatvfs(t->journal_fd, &sv) == 0 &&
		    (uint64_t)sv.f_bavail * sv.f_frsize >= (1u << 20))
			t->journal_err[0] = '\0';
	}
	bad = t->journal_err[0] != '\0';
	if (bad)
		snprintf(buf, len, "%s", t->journal_err);
	pthread_mutex_unlock(&t->lock);
	return bad;
}

/*
 * A terminal line: the record's fields, not its JSON. Printing the record through cJSON cost
 * ~20 us a call (its numbers go through printf and back); the replay rebuilds the record
 * from these fields, with the code that shows it now.
 *   E id status function start_ms end_ms version kind timeout_ms memory_mb logs_bytes
 *     start_path core trigger queue_ns create_ns init_ns run_ns adopted message result logs
 * message, result and logs are base64 (any bytes); kind is "-" unless it is plain text.
 */
/*
 * Write one line printed from fmt: into buf when it fits (most lines do: no malloc under the
 * table's lock), else into a buffer of its size. Returns jwrite()'s result, or -ENOMEM.
 */
static int jprintf(struct gw_act_table *t, char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int jprintf(struct gw_act_table *t, char *buf, size_t cap, const char *fmt, ...)
{
	char *line = buf;
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	if ((size_t)n >= cap) {
		line = malloc((size_t)n + 1);
		if (!line)
			return -ENOMEM;
		va_start(ap, fmt);
		vsnprintf(line, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	rc = jwrite(t, line, (size_t)n);
	if (line != buf)
		free(line);
	return rc;
}

/* base64 of len bytes, or "" for none (no allocation); free with b64_free(). */
static char *b64_of(const void *data, size_t len)
{
	return len ? nemo_base64_encode(data, len) : (char *)"";
}

static void b64_free(char *s)
{
	if (s && *s)
		free(s);
}

static int note_end(struct gw_act_table *t, const struct gw_activation *a)
{
	char buf[1024];
	char *msg = b64_of(a->message, strlen(a->message));
	char *res = b64_of(a->result, a->result_len);
	char *logs = b64_of(a->logs, a->logs_len);
	bool plain = a->kind[0] && strspn(a->kind, KIND_CHARS) == strlen(a->kind);
	int rc = -ENOMEM;

	if (msg && res && logs)
		rc = jprintf(
			t, buf, sizeof(buf),
			"E\t%s\t%d\t%s\t%llu\t%llu\t%llu\t%s\t%u\t%u\t%u\t%d\t%d\t%d\t%llu\t%llu\t"
			"%llu\t%llu\t%d\t%s\t%s\t%s\n",
			a->id, (int)a->status, a->function, (unsigned long long)a->start_ms,
			(unsigned long long)a->end_ms, (unsigned long long)a->version,
			plain ? a->kind : "-", a->limit_timeout_ms, a->limit_memory_mb,
			a->limit_logs, (int)a->path, a->core, a->trigger,
			(unsigned long long)a->times.queue_ns,
			(unsigned long long)a->times.create_ns,
			(unsigned long long)a->times.init_ns, (unsigned long long)a->times.run_ns,
			a->adopted, msg, res, logs);
	b64_free(msg);
	b64_free(res);
	b64_free(logs);
	return rc;
}

int gw_journal_note(struct gw_act_table *t, struct gw_activation *a, char kind)
{
	char buf[1024], *b64, *corr;
	int n, rc = -ENOMEM;

	if (t->journal_fd < 0)
		return 0;
	switch (kind) {
	case 'A':
		b64 = b64_of(a->payload, a->payload_len);
		/* how the result is delivered travels with the call: a replay delivers it too */
		corr = a->correlation_len ? b64_of(a->correlation, a->correlation_len) : "-";
		if (b64 && corr)
			rc = jprintf(t, buf, sizeof(buf), "A\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n",
				     a->id, a->function, a->trigger,
				     a->reply_topic[0] ? a->reply_topic : "-", b64, a->qos,
				     a->mqtt5, corr, a->callback_url[0] ? a->callback_url : "-");
		b64_free(b64);
		if (a->correlation_len)
			b64_free(corr);
		return rc;
	case 'R':
		n = snprintf(buf, sizeof(buf), "R\t%s\n", a->id);
		return jwrite(t, buf, (size_t)n);
	case 'T':
		if (!a->restored_json) {
			rc = note_end(t, a);
		} else {
			/* a record replayed from a JSON line (older journals) keeps its JSON */
			rc = jprintf(t, buf, sizeof(buf), "T\t%s\t%d\t%s\t%s\n", a->id,
				     (int)a->status, a->function, a->restored_json);
		}
		/* compact only after a terminal line: nothing is half-written then */
		if (!rc && t->journal_bytes > JOURNAL_MAX_BYTES)
			rewrite_locked(t);
		return rc;
	default:
		return -EINVAL;
	}
}

/* One activation as the journal last saw it. */
struct jentry {
	const char *id;
	char *a_line; /* fields after "A\t<id>\t" */
	char *t_json;
	char *t_fn; /* the function, on T lines that carry it (a blocking call's only line) */
	int t_status;
	char *end; /* fields after "E\t<id>\t": the terminal record (replaces t_json) */
	bool started;
};

/* An unsigned decimal field, all of it, up to max. */
static bool field_num(const char *s, unsigned long long max, unsigned long long *out)
{
	char *endp;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoull(s, &endp, 10);
	return !*endp && !errno && *out <= max;
}

/* base64 into a malloc'd buffer of *len bytes (and a NUL after them); NULL if it is not. */
static uint8_t *field_bytes(const char *s, size_t *len)
{
	size_t n = strlen(s);
	uint8_t *out = malloc(n / 4 * 3 + 3);
	long got = out && n ? nemo_base64_decode(s, n, out, n / 4 * 3 + 3) : 0;

	if (!out || got < 0) {
		free(out);
		return NULL;
	}
	out[got] = '\0';
	*len = (size_t)got;
	return out;
}

/* The fields of an E line, in order (note_end() writes them). */
enum end_field {
	EF_STATUS,
	EF_FUNCTION,
	EF_START,
	EF_END,
	EF_VERSION,
	EF_KIND,
	EF_TIMEOUT,
	EF_MEMORY,
	EF_LOGS_LIMIT,
	EF_PATH,
	EF_CORE,
	EF_TRIGGER,
	EF_QUEUE_NS,
	EF_CREATE_NS,
	EF_INIT_NS,
	EF_RUN_NS,
	EF_ADOPTED,
	EF_MESSAGE,
	EF_RESULT,
	EF_LOGS,
	EF_N
};

/* An E line read: its numbers, and its bytes decoded (malloc'd). */
struct jend {
	unsigned long long v[EF_N];
	const char *function, *kind;
	uint8_t *bytes[3]; /* message, result, logs */
	size_t len[3];
};

static void jend_free(struct jend *je)
{
	for (int i = 0; i < 3; i++)
		free(je->bytes[i]);
	memset(je->bytes, 0, sizeof(je->bytes));
}

/*
 * Read an E line's fields (they stay in `fields`). Returns false, and the line is then
 * ignored as a torn one is, if any is missing or out of range.
 */
static bool end_parse(char *fields, struct jend *je)
{
	char *f[EF_N];

	memset(je, 0, sizeof(*je));
	/* a later version may add fields at the end: the known ones are read */
	for (int k = 0; k < EF_N; k++) {
		f[k] = strsep(&fields, "\t");
		if (!f[k])
			return false;
	}
	for (int k = EF_STATUS; k <= EF_ADOPTED; k++) {
		unsigned long long max = UINT64_MAX;

		if (k == EF_FUNCTION || k == EF_KIND)
			continue;
		if (k == EF_CORE && !strcmp(f[k], "-1")) { /* never placed */
			je->v[k] = UINT64_MAX;
			continue;
		}
		if (k == EF_STATUS)
			max = GW_ACT_N_STATUS - 1;
		else if (k == EF_PATH)
			max = SBX_START_PATHS - 1;
		else if (k == EF_TRIGGER)
			max = GW_TRIGGER_MQTT;
		else if (k == EF_ADOPTED)
			max = 1;
		else if (k >= EF_TIMEOUT && k <= EF_CORE)
			max = INT32_MAX;
		if (!field_num(f[k], max, &je->v[k]))
			return false;
	}
	je->function = f[EF_FUNCTION];
	je->kind = strcmp(f[EF_KIND], "-") ? f[EF_KIND] : "";
	if (!gw_act_terminal((enum gw_act_status)je->v[EF_STATUS]) || !gw_key_valid(je->function) ||
	    strlen(je->kind) >= sizeof(((struct gw_activation *)0)->kind))
		return false;
	for (int i = 0; i < 3; i++) {
		je->bytes[i] = field_bytes(f[EF_MESSAGE + i], &je->len[i]);
		if (!je->bytes[i]) {
			jend_free(je);
			return false;
		}
	}
	return true;
}

/* A restored record takes what its E line says; the line's bytes move into it. */
static void end_apply(struct gw_activation *a, struct jend *je)
{
	const unsigned long long *v = je->v;

	a->status = (enum gw_act_status)v[EF_STATUS];
	a->start_ms = v[EF_START];
	a->end_ms = v[EF_END];
	a->version = v[EF_VERSION];
	snprintf(a->kind, sizeof(a->kind), "%s", je->kind);
	a->limit_timeout_ms = (uint32_t)v[EF_TIMEOUT];
	a->limit_memory_mb = (uint32_t)v[EF_MEMORY];
	a->limit_logs = (uint32_t)v[EF_LOGS_LIMIT];
	a->path = (enum sbx_start_path)v[EF_PATH];
	a->core = v[EF_CORE] == UINT64_MAX ? -1 : (int)v[EF_CORE];
	a->trigger = (int)v[EF_TRIGGER];
	a->times.queue_ns = v[EF_QUEUE_NS];
	a->times.create_ns = v[EF_CREATE_NS];
	a->times.init_ns = v[EF_INIT_NS];
	a->times.run_ns = v[EF_RUN_NS];
	a->adopted = v[EF_ADOPTED];
	snprintf(a->message, sizeof(a->message), "%.*s", (int)je->len[0],
		 (const char *)je->bytes[0]);
	if (je->len[1]) {
		a->result = je->bytes[1];
		a->result_len = je->len[1];
		je->bytes[1] = NULL;
	}
	if (je->len[2]) {
		a->logs = (char *)je->bytes[2];
		a->logs_len = je->len[2];
		je->bytes[2] = NULL;
	}
	jend_free(je);
}

static uint32_t hash_id(const char *id)
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < GW_ID_LEN && id[i]; i++)
		h = (h ^ (uint8_t)id[i]) * 16777619u;
	return h;
}

/* Restore one entry into the table; returns the seq to queue again, or 0. */
static uint64_t restore(struct gw_act_table *t, struct jentry *e)
{
	char *fn, *trig, *reply, *b64, *qos, *mqtt5, *corr, *callback, *save;
	struct gw_activation *a;
	struct jend je;

	if (e->end && !end_parse(e->end, &je))
		e->end = NULL; /* as if it were torn: what the lines before it say stands */
	if (!e->a_line && e->end) {
		/* a blocking call's record, in fields: terminal, nothing to run */
		a = gw_act_slot_new(t, e->id);
		if (!a) {
			jend_free(&je);
			return 0;
		}
		snprintf(a->function, sizeof(a->function), "%s", je.function);
		a->journaled = true;
		end_apply(a, &je);
		return 0;
	}
	if (!e->a_line) {
		/* a blocking call's record: terminal, nothing to run */
		if (!e->t_json || !e->t_fn || !gw_key_valid(e->t_fn))
			return 0;
		a = gw_act_slot_new(t, e->id);
		if (!a)
			return 0;
		snprintf(a->function, sizeof(a->function), "%s", e->t_fn);
		a->journaled = true;
		a->status = e->t_status > GW_ACT_RUNNING && e->t_status < GW_ACT_N_STATUS
				    ? (enum gw_act_status)e->t_status
				    : GW_ACT_INTERNAL;
		a->restored_json = strdup(e->t_json);
		return 0;
	}
	/* fields may be empty (a payload of no bytes): strsep keeps them apart */
	save = e->a_line;
	fn = strsep(&save, "\t");
	trig = strsep(&save, "\t");
	reply = strsep(&save, "\t");
	b64 = strsep(&save, "\t");
	/* since the route was journaled: qos, mqtt5, correlation, callback (older lines end) */
	qos = strsep(&save, "\t");
	mqtt5 = strsep(&save, "\t");
	corr = strsep(&save, "\t");
	callback = strsep(&save, "\t");
	if (!fn || !trig || !reply || !gw_key_valid(fn) || !(a = gw_act_slot_new(t, e->id))) {
		if (e->end)
			jend_free(&je);
		return 0;
	}
	snprintf(a->function, sizeof(a->function), "%s", fn);
	a->trigger = atoi(trig);
	a->queued = true;
	if (strcmp(reply, "-"))
		snprintf(a->reply_topic, sizeof(a->reply_topic), "%s", reply);
	if (qos && mqtt5 && corr && callback) {
		a->qos = atoi(qos) == 1;
		a->mqtt5 = atoi(mqtt5) != 0;
		if (strcmp(corr, "-")) {
			long n = nemo_base64_decode(corr, strlen(corr), a->correlation,
						    sizeof(a->correlation));

			a->correlation_len = n > 0 ? (size_t)n : 0;
		}
		if (strcmp(callback, "-"))
			snprintf(a->callback_url, sizeof(a->callback_url), "%s", callback);
	}
	if (e->end) {
		end_apply(a, &je);
		return 0;
	}
	if (e->t_json) {
		a->status = e->t_status > GW_ACT_RUNNING && e->t_status < GW_ACT_N_STATUS
				    ? (enum gw_act_status)e->t_status
				    : GW_ACT_INTERNAL;
		a->restored_json = strdup(e->t_json);
		return 0;
	}
	if (e->started) {
		/* it may have had effects: running it again could run it twice */
		a->status = GW_ACT_INTERRUPTED;
		a->end_ms = gw_epoch_ms();
		snprintf(a->message, sizeof(a->message),
			 "nemod stopped while this activation ran; it was not run again");
		/* the compaction below writes its terminal line first: told at most once */
		a->notify = a->callback_url[0] || a->reply_topic[0];
		return a->notify ? a->seq : 0;
	}
	{
		size_t len = b64 ? strlen(b64) : 0;
		long n;

		a->payload = malloc(len / 4 * 3 + 3);
		n = a->payload && len ? nemo_base64_decode(b64, len, a->payload, len / 4 * 3 + 3)
				      : 0;
		a->payload_len = n > 0 ? (size_t)n : 0;
	}
	return a->seq;
}

int gw_journal_replay(struct gw_act_table *t, const char *dir, uint64_t **requeue, size_t *n_out)
{
	size_t len = 0, n_lines = 0, n_entries = 0, cap;
	struct jentry *entries = NULL;
	uint32_t *index = NULL;
	char *text, *line, *save = NULL;
	int rc = 0, interrupted = 0, restored = 0;

	*requeue = NULL;
	*n_out = 0;
	snprintf(t->journal_path, sizeof(t->journal_path), "%s/.activations.journal", dir);
	text = gw_read_file(t->journal_path, 1u << 30, &len);
	if (!text && errno != ENOENT) {
		NEMO_ERR(GW_MOD, "journal %s: %s", t->journal_path, strerror(errno));
		return -errno;
	}
	for (size_t i = 0; text && i < len; i++) {
		/* a hole or a NUL byte ends a line, not the whole journal */
		if (!text[i])
			text[i] = '\n';
		n_lines += text[i] == '\n';
	}
	cap = 16;
	while (cap < n_lines * 2 + 2)
		cap *= 2;
	entries = calloc(n_lines + 1, sizeof(*entries));
	index = calloc(cap, sizeof(*index)); /* entry index + 1; 0 = empty */
	*requeue = calloc(n_lines + 1, sizeof(**requeue));
	if (!entries || !index || !*requeue) {
		rc = -ENOMEM;
		goto out;
	}
	for (line = text ? strtok_r(text, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		char kind = line[0];
		const char *id = line + 2;
		struct jentry *e;
		uint32_t h;

		if (strlen(line) < 2 + GW_ID_LEN || line[1] != '\t' ||
		    (line[2 + GW_ID_LEN] != '\t' && line[2 + GW_ID_LEN] != '\0'))
			continue; /* a torn last line */
		line[2 + GW_ID_LEN] = '\0';
		for (h = hash_id(id) & (uint32_t)(cap - 1); index[h];
		     h = (h + 1) & (uint32_t)(cap - 1))
			if (!strcmp(entries[index[h] - 1].id, id))
				break;
		if (!index[h]) {
			entries[n_entries].id = id;
			index[h] = (uint32_t)++n_entries;
		}
		e = &entries[index[h] - 1];
		if (kind == 'A') {
			e->a_line = line + 3 + GW_ID_LEN;
		} else if (kind == 'R') {
			e->started = true;
		} else if (kind == 'E') {
			e->end = line + 3 + GW_ID_LEN;
			e->t_json = NULL;
		} else if (kind == 'T') {
			char *st = line + 3 + GW_ID_LEN, *tab = strchr(st, '\t');

			e->end = NULL;
			if (tab) {
				char *fn = tab + 1, *tab2 = strchr(fn, '\t');

				e->t_status = atoi(st);
				e->t_json = fn;
				if (fn[0] != '{' && tab2) { /* T id status function json */
					*tab2 = '\0';
					e->t_fn = fn;
					e->t_json = tab2 + 1;
				}
			}
		}
	}
	/* the newest `capacity` entries fit the table; older ones are history */
	pthread_mutex_lock(&t->lock);
	for (size_t i = n_entries > t->capacity ? n_entries - t->capacity : 0; i < n_entries; i++) {
		bool was_running = entries[i].a_line && entries[i].started && !entries[i].t_json &&
				   !entries[i].end;
		uint64_t seq = restore(t, &entries[i]);

		/* to run again, or (interrupted) to tell its callback or reply topic why not */
		if (seq)
			(*requeue)[(*n_out)++] = seq;
		if (was_running)
			interrupted++;
		else if (!seq && (entries[i].a_line || entries[i].t_fn || entries[i].end))
			restored++;
	}
	/* compact: start the new run with only what the table holds */
	rc = rewrite_locked(t);
	pthread_mutex_unlock(&t->lock);
	if (rc)
		goto out;
	if (n_entries)
		NEMO_INFO(GW_MOD, "journal replayed=%zu requeued=%zu interrupted=%d terminal=%d",
			  n_entries, *n_out, interrupted, restored);
	if (interrupted)
		NEMO_WARN(GW_MOD,
			  "journal: %d activations were running when nemod stopped; they end as "
			  "interrupted",
			  interrupted);
out:
	free(entries);
	free(index);
	free(text);
	if (rc) {
		free(*requeue);
		*requeue = NULL;
		*n_out = 0;
	}
	return rc;
}

void gw_journal_close(struct gw_act_table *t)
{
	if (t->journal_fd >= 0)
		close(t->journal_fd);
	t->journal_fd = -1;
}
