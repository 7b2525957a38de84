/* sampler.c - samples every NF core of several harvest channels into per-period windows. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harvester_internal.h"
#include "nemo/harvester.h"
#include "nemo/log.h"

/*
 * Per-core state: written only by the sampler's one thread, but kept on its own cache lines
 * so that readers of one core's figures (nemod's metrics thread) do not false-share with the
 * sampler's writes to the next.
 */
struct hv_core {
	struct hv_core_sample pub;
	struct hc_lcore_record base; /* the snapshot the next window starts from */
	uint64_t base_ns;
	uint64_t seq;	   /* the record's seq when it last moved... */
	uint64_t moved_ns; /* ...and when that was seen */
	uint64_t stale_ns; /* no move for this long: HV_CORE_STALE */
	int channel;	   /* index into hv_sampler.channels */
	uint32_t record;   /* record index in that channel */
	bool have_base;
} __attribute__((aligned(HC_CACHE_LINE)));

/* Why a channel is not attached, so that each change is logged once. */
enum ch_status {
	CH_NEVER = 0,
	CH_ATTACHED,
	CH_MISSING,
	CH_BAD,
	CH_VANISHED,
};

struct hv_sampler_channel {
	char name[HC_NAME_MAX];
	struct hv_channel *ch;
	enum ch_status status;
	int last_errno;
	uint64_t next_try_ns;
};

struct hv_sampler {
	uint64_t period_ns;
	uint64_t reattach_ns;
	uint64_t last_ns;
	uint32_t n_channels;
	uint32_t n_cores;
	struct hv_sampler_channel channels[HV_MAX_CHANNELS];
	struct hv_core *cores; /* HV_MAX_CORES, cache-aligned */
};

struct hv_sampler *hv_sampler_new(const struct hv_sampler_config *cfg)
{
	struct hv_sampler *s;

	if (!cfg || cfg->period_us < HV_PERIOD_MIN_US || cfg->period_us > HV_PERIOD_MAX_US) {
		NEMO_ERR("harvester", "sampling period %u us is outside %u..%u us",
			 cfg ? cfg->period_us : 0, HV_PERIOD_MIN_US, HV_PERIOD_MAX_US);
		errno = EINVAL;
		return NULL;
	}
	if (cfg->n_channels == 0 || cfg->n_channels > HV_MAX_CHANNELS) {
		NEMO_ERR("harvester", "%u harvest channels: want 1..%u", cfg->n_channels,
			 HV_MAX_CHANNELS);
		errno = EINVAL;
		return NULL;
	}
	for (uint32_t i = 0; i < cfg->n_channels; i++) {
		const char *n = cfg->channels[i];

		if (!n || !*n || strlen(n) >= HC_NAME_MAX) {
			NEMO_ERR("harvester",
				 "harvest channel %u: name '%s' is empty or longer "
				 "than %d characters",
				 i, n ? n : "(null)", HC_NAME_MAX - 1);
			errno = EINVAL;
			return NULL;
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cores = aligned_alloc(HC_CACHE_LINE, HV_MAX_CORES * sizeof(*s->cores));
	if (!s->cores) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	memset(s->cores, 0, HV_MAX_CORES * sizeof(*s->cores));
	s->period_ns = (uint64_t)cfg->period_us * 1000;
	s->reattach_ns = (uint64_t)(cfg->reattach_ms ? cfg->reattach_ms : 100) * 1000000;
	s->n_channels = cfg->n_channels;
	for (uint32_t i = 0; i < cfg->n_channels; i++)
		snprintf(s->channels[i].name, sizeof(s->channels[i].name), "%s", cfg->channels[i]);
	return s;
}

void hv_sampler_destroy(struct hv_sampler *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->n_channels; i++)
		hv_channel_close(s->channels[i].ch);
	free(s->cores);
	free(s);
}

/* How long a record may stand still before its core counts as stale (HV_STALE_MS). */
static uint64_t stale_after_ns(const struct hc_lcore_record *r)
{
	uint64_t longest_sleep =
		r->max_sleep_ns < 60000000000ull ? r->max_sleep_ns : 60000000000ull;

	return HV_STALE_MS * 1000000ull + 2 * longest_sleep;
}

/* What /proc says of a writer that keeps its pid but does not publish, for the log line. */
static const char *writer_state(int32_t pid)
{
	char path[64], buf[256];
	const char *paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return "is gone";
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return "is gone";
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	if (!paren || paren[1] != ' ')
		return "is in an unknown state";
	switch (paren[2]) {
	case 'Z':
		return "is a zombie: dead, not yet reaped by its parent";
	case 'T':
	case 't':
		return "is stopped";
	default:
		return "runs, but its lcore does not";
	}
}

static void mark_gone(struct hv_sampler *s, int channel)
{
	for (uint32_t i = 0; i < s->n_cores; i++) {
		struct hv_core *c = &s->cores[i];

		if (c->channel == channel) {
			c->pub.state = HV_CORE_GONE;
			c->have_base = false;
		}
	}
}

static void detach(struct hv_sampler *s, int idx, enum ch_status why, int err)
{
	struct hv_sampler_channel *sc = &s->channels[idx];

	if (sc->status != why)
		NEMO_WARN("harvester",
			  "harvest channel '%s': NF %s; its cores are gone until it "
			  "comes back",
			  sc->name,
			  err == -ESRCH ? "vanished (writer killed)" : "exited or restarted");
	hv_channel_close(sc->ch);
	sc->ch = NULL;
	sc->status = why;
	sc->next_try_ns = 0; /* a restarted NF is usually there already: look at once */
	mark_gone(s, idx);
}

/* Find the slot of (channel, lcore), or take a new one. NULL if the table is full. */
static struct hv_core *core_slot(struct hv_sampler *s, int channel, uint32_t lcore_id)
{
	for (uint32_t i = 0; i < s->n_cores; i++)
		if (s->cores[i].channel == channel && s->cores[i].pub.lcore_id == lcore_id)
			return &s->cores[i];
	if (s->n_cores == HV_MAX_CORES)
		return NULL;
	s->cores[s->n_cores].channel = channel;
	s->cores[s->n_cores].pub.lcore_id = lcore_id;
	return &s->cores[s->n_cores++];
}

static void try_attach(struct hv_sampler *s, int idx, uint64_t now_ns)
{
	struct hv_sampler_channel *sc = &s->channels[idx];
	struct hc_lcore_record r;
	struct hv_channel *ch;
	uint32_t n;

	if (now_ns < sc->next_try_ns)
		return;
	sc->next_try_ns = now_ns + s->reattach_ns;
	ch = __hv_channel_open(sc->name, true);
	if (!ch) {
		int err = errno;
		enum ch_status st = err == ENOENT ? CH_MISSING : CH_BAD;

		/* one line per change of state, not one per retry */
		if (st != sc->status || err != sc->last_errno) {
			if (st == CH_MISSING) {
				NEMO_WARN("harvester",
					  "harvest channel '%s': /dev/shm/%s%s not there "
					  "(yet); will attach when nemo-nf starts",
					  sc->name, HC_SHM_PREFIX, sc->name);
			} else {
				/* open once more, loudly: it logs what exactly is wrong */
				hv_channel_close(__hv_channel_open(sc->name, false));
				NEMO_WARN("harvester",
					  "harvest channel '%s': not attached (%s); "
					  "retrying every %llu ms",
					  sc->name, strerror(err),
					  (unsigned long long)(s->reattach_ns / 1000000));
			}
		}
		sc->status = st;
		sc->last_errno = err;
		return;
	}
	n = hv_channel_nb_lcores(ch);
	for (uint32_t i = 0; i < n; i++) {
		struct hv_core *c;

		if (hv_channel_read(ch, i, &r) < 0)
			continue; /* the next sample takes its baseline */
		c = core_slot(s, idx, r.lcore_id);
		if (!c) {
			NEMO_ERR("harvester",
				 "harvest channel '%s': more than %d NF cores; lcore %u "
				 "is not sampled",
				 sc->name, HV_MAX_CORES, r.lcore_id);
			continue;
		}
		snprintf(c->pub.nf, sizeof(c->pub.nf), "%s", sc->name);
		c->pub.cpu = r.cpu;
		c->pub.tid = r.tid;
		c->pub.state = HV_CORE_UP;
		c->pub.generation = hv_channel_generation(ch);
		c->pub.tsc_hz = hv_channel_tsc_hz(ch);
		c->pub.attaches++;
		c->record = i;
		c->base = r;
		c->base_ns = now_ns;
		c->have_base = true;
		c->seq = r.seq;
		c->moved_ns = now_ns;
		c->stale_ns = stale_after_ns(&r);
	}
	NEMO_INFO("harvester", "harvest channel '%s': attached, %u NF cores, generation %llu",
		  sc->name, n, (unsigned long long)hv_channel_generation(ch));
	sc->ch = ch;
	sc->status = CH_ATTACHED;
	sc->last_errno = 0;
}

/*
 * Does the record still move? A running lcore changes its seq at least every
 * publish_period_us and at each sleep; an lcore asleep or waiting for an interrupt does not,
 * for up to its max_sleep_ns. Returns true when it has been still for longer than that
 * allows: the core is marked HV_CORE_STALE (logged once); it is UP again, with a new
 * baseline, when the record moves.
 */
static bool stale(struct hv_sampler *s, struct hv_core *c, const struct hc_lcore_record *r,
		  uint64_t now_ns)
{
	const struct hv_sampler_channel *sc = &s->channels[c->channel];

	if (r->seq != c->seq) {
		c->seq = r->seq;
		c->moved_ns = now_ns;
		c->stale_ns = stale_after_ns(r);
		if (c->pub.state == HV_CORE_STALE) {
			NEMO_INFO("harvester",
				  "harvest channel '%s': lcore %u on cpu %u publishes again",
				  sc->name, r->lcore_id, r->cpu);
			c->pub.state = HV_CORE_UP;
			c->have_base = false;
		}
		return false;
	}
	if (now_ns - c->moved_ns <= c->stale_ns)
		return c->pub.state == HV_CORE_STALE;
	if (c->pub.state != HV_CORE_STALE) {
		int32_t pid = __hv_channel_writer_pid(sc->ch);

		NEMO_WARN("harvester",
			  "harvest channel '%s': lcore %u on cpu %u has not published for %llu ms "
			  "(writer pid %d %s): its core counts as gone until it does",
			  sc->name, r->lcore_id, r->cpu,
			  (unsigned long long)((now_ns - c->moved_ns) / 1000000), pid,
			  writer_state(pid));
		c->pub.state = HV_CORE_STALE;
		c->have_base = false;
	}
	return true;
}

static int sample_core(struct hv_sampler *s, struct hv_core *c, struct hv_channel *ch,
		       uint64_t now_ns)
{
	struct hc_lcore_record r;
	int rc = hv_channel_read(ch, c->record, &r);

	if (rc == -EAGAIN || rc == -ERANGE) {
		c->pub.misses++;
		return 0;
	}
	if (rc < 0)
		return rc;
	c->pub.tid = r.tid;
	if (r.seq == 0)
		return 0; /* the lcore has not published yet (it measures its wake-up cost first) */
	if (r.state != HC_STATE_STOPPED && stale(s, c, &r, now_ns))
		return 0;
	if (r.state == HC_STATE_STOPPED) {
		c->pub.state = HV_CORE_GONE;
		c->have_base = false;
		return 0;
	}
	if (!c->have_base) {
		c->base = r;
		c->base_ns = now_ns;
		c->have_base = true;
		c->pub.state = HV_CORE_UP;
		return 0;
	}
	if (hv_window(&c->base, &r, &c->pub.w) < 0) {
		/* counters went backwards: not the same writer any more; start again */
		c->base = r;
		c->base_ns = now_ns;
		return 0;
	}
	for (int b = 0; b < HC_IDLE_BUCKETS; b++) {
		uint64_t d = r.idle_hist[b] - c->base.idle_hist[b];

		c->pub.idle_hist[b] = d;
		c->pub.idle_hist_total[b] += d;
	}
	c->pub.window_ns = now_ns - c->base_ns;
	c->pub.window_seq++;
	c->base = r;
	c->base_ns = now_ns;
	return 1;
}

int hv_sampler_sample(struct hv_sampler *s, uint64_t now_ns)
{
	int fresh = 0;

	if (s->last_ns && now_ns - s->last_ns < s->period_ns)
		return 0;
	s->last_ns = now_ns;
	for (uint32_t i = 0; i < s->n_channels; i++) {
		struct hv_sampler_channel *sc = &s->channels[i];
		int rc;

		if (!sc->ch) {
			try_attach(s, (int)i, now_ns);
			if (!sc->ch)
				continue;
		}
		rc = hv_channel_check(sc->ch);
		if (rc < 0) {
			detach(s, (int)i, rc == -ESRCH ? CH_VANISHED : CH_MISSING, rc);
			try_attach(s, (int)i, now_ns);
			continue;
		}
		for (uint32_t k = 0; k < s->n_cores; k++) {
			struct hv_core *c = &s->cores[k];

			if (c->channel != (int)i)
				continue;
			rc = sample_core(s, c, sc->ch, now_ns);
			if (rc == -ESTALE) {
				detach(s, (int)i, CH_MISSING, rc);
				try_attach(s, (int)i, now_ns);
				break;
			}
			if (rc > 0)
				fresh++;
		}
	}
	return fresh;
}

uint32_t hv_sampler_nb_cores(const struct hv_sampler *s)
{
	return s->n_cores;
}

const struct hv_core_sample *hv_sampler_core(const struct hv_sampler *s, uint32_t idx)
{
	return idx < s->n_cores ? &s->cores[idx].pub : NULL;
}

int hv_sampler_find_cpu(const struct hv_sampler *s, uint32_t cpu)
{
	int found = -ENOENT;

	for (uint32_t i = 0; i < s->n_cores; i++) {
		if (s->cores[i].pub.cpu != cpu)
			continue;
		/* an UP core beats a GONE one that used to be on the same CPU */
		if (found < 0 || s->cores[i].pub.state == HV_CORE_UP)
			found = (int)i;
	}
	return found;
}

uint64_t hv_sampler_period_ns(const struct hv_sampler *s)
{
	return s->period_ns;
}

int hv_sampler_set_sleep_floor(struct hv_sampler *s, uint32_t idx, uint64_t floor_ns,
			       uint64_t lease_ns)
{
	const struct hv_core *c = idx < s->n_cores ? &s->cores[idx] : NULL;
	struct hv_channel *ch;

	if (!c)
		return -ERANGE;
	ch = s->channels[c->channel].ch;
	if (c->pub.state != HV_CORE_UP || !ch)
		return -ENODEV;
	return hv_channel_set_sleep_floor(ch, c->record, floor_ns, lease_ns);
}

uint32_t hv_idle_hist_median_us(const uint64_t hist[HC_IDLE_BUCKETS])
{
	uint64_t total = 0, acc = 0;

	for (int b = 0; b < HC_IDLE_BUCKETS; b++)
		total += hist[b];
	if (!total)
		return 0;
	for (int b = 0; b < HC_IDLE_BUCKETS; b++) {
		acc += hist[b];
		if (acc * 2 >= total)
			return b == 0 ? 0 : 1u << b;
	}
	return 1u << (HC_IDLE_BUCKETS - 1);
}
