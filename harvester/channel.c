/* channel.c - the harvest channel's reader: attach, check the contract, copy records untorn. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harvester_internal.h"
#include "nemo/harvester.h"
#include "nemo/log.h"

/*
 * What the header said when it was checked at open is kept here and used from then on: the
 * mapping is shared with the writer (and anyone who can open the object), so a field read
 * from it again could have changed under the reader, e.g. nb_records past the mapping.
 */
struct hv_channel {
	char path[96];
	struct hc_header *hdr; /* written only in the records' line 7 (the sleep floor) */
	struct hc_lcore_record *records;
	size_t size;
	uint64_t generation;
	uint64_t tsc_hz;
	uint32_t nb_records;
	int32_t writer_pid;
	char name[HC_NAME_MAX];
};

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/*
 * The sampler retries a missing or malformed channel every few hundred ms: it asks for
 * quiet opens and logs once per change of state itself, so a bad channel is not a log flood.
 */
/* A TSC runs at MHz to a few GHz; 0 or 10^18 is garbage that would divide or overflow. */
#define HV_TSC_HZ_MIN 1000000ull
#define HV_TSC_HZ_MAX 100000000000ull

#define CH_ERR(quiet, ...)                                  \
	do {                                                \
		if (!(quiet))                               \
			NEMO_ERR("harvester", __VA_ARGS__); \
	} while (0)

struct hv_channel *__hv_channel_open(const char *name, bool quiet)
{
	struct hv_channel *ch = calloc(1, sizeof(*ch));
	struct hc_header h;
	struct stat st;
	int fd, rc;

	if (!ch)
		return NULL;
	snprintf(ch->path, sizeof(ch->path), "/" HC_SHM_PREFIX "%s", name);
	fd = shm_open(ch->path, O_RDWR, 0);
	if (fd < 0) {
		rc = -errno;
		CH_ERR(quiet, "harvest channel /dev/shm%s: %s (is nemo-nf '%s' running?)", ch->path,
		       strerror(errno), name);
		goto err;
	}
	if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(h) ||
	    pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		CH_ERR(quiet, "harvest channel /dev/shm%s: too short to hold a header", ch->path);
		rc = -EPROTO;
		goto err_close;
	}
	if (h.magic != HC_MAGIC) {
		CH_ERR(quiet,
		       "harvest channel /dev/shm%s: bad magic 0x%016llx (want 0x%016llx): not a "
		       "channel, or its NF has exited",
		       ch->path, (unsigned long long)h.magic, (unsigned long long)HC_MAGIC);
		rc = -EPROTO;
		goto err_close;
	}
	if (h.version != HC_VERSION || h.header_size != sizeof(struct hc_header) ||
	    h.record_size != sizeof(struct hc_lcore_record)) {
		CH_ERR(quiet,
		       "harvest channel /dev/shm%s: version %u (header %u, record %u bytes); this "
		       "harvester reads version %u (%zu, %zu)",
		       ch->path, h.version, h.header_size, h.record_size, HC_VERSION,
		       sizeof(struct hc_header), sizeof(struct hc_lcore_record));
		rc = -EPROTONOSUPPORT;
		goto err_close;
	}
	if (h.nb_records > HC_MAX_LCORES || (size_t)st.st_size < hc_shm_size(h.nb_records)) {
		CH_ERR(quiet, "harvest channel /dev/shm%s: %u records do not fit in %lld bytes",
		       ch->path, h.nb_records, (long long)st.st_size);
		rc = -EPROTO;
		goto err_close;
	}
	if (h.writer_pid <= 0 || (kill(h.writer_pid, 0) < 0 && errno == ESRCH)) {
		CH_ERR(quiet, "harvest channel /dev/shm%s: writer pid %d is gone", ch->path,
		       h.writer_pid);
		rc = -ESRCH;
		goto err_close;
	}
	if (h.tsc_hz < HV_TSC_HZ_MIN || h.tsc_hz > HV_TSC_HZ_MAX) {
		CH_ERR(quiet, "harvest channel /dev/shm%s: TSC frequency %llu Hz is not plausible",
		       ch->path, (unsigned long long)h.tsc_hz);
		rc = -EPROTO;
		goto err_close;
	}
	ch->size = hc_shm_size(h.nb_records);
	ch->hdr = mmap(NULL, ch->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ch->hdr == MAP_FAILED) {
		rc = -errno;
		CH_ERR(quiet, "mmap /dev/shm%s: %s", ch->path, strerror(errno));
		goto err_close;
	}
	close(fd);
	ch->records = (struct hc_lcore_record *)(ch->hdr + 1);
	ch->generation = h.generation;
	ch->tsc_hz = h.tsc_hz;
	ch->nb_records = h.nb_records;
	ch->writer_pid = h.writer_pid;
	/* the writer's name need not end in a NUL: copy at most HC_NAME_MAX - 1 of it */
	memcpy(ch->name, h.name, sizeof(ch->name) - 1);
	ch->name[sizeof(ch->name) - 1] = '\0';
	return ch;

err_close:
	close(fd);
err:
	free(ch);
	errno = -rc;
	return NULL;
}

struct hv_channel *hv_channel_open(const char *name)
{
	return __hv_channel_open(name, false);
}

void hv_channel_close(struct hv_channel *ch)
{
	if (!ch)
		return;
	munmap((void *)ch->hdr, ch->size);
	free(ch);
}

int hv_channel_check(const struct hv_channel *ch)
{
	const struct hc_header *h = ch->hdr;

	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != HC_MAGIC ||
	    h->generation != ch->generation)
		return -ESTALE;
	/* SIGKILL leaves the magic in place: only the pid tells a vanished writer */
	if (kill(ch->writer_pid, 0) < 0 && errno == ESRCH)
		return -ESRCH;
	return 0;
}

const char *__hv_channel_name(const struct hv_channel *ch)
{
	return ch->name;
}

int32_t __hv_channel_writer_pid(const struct hv_channel *ch)
{
	return ch->writer_pid;
}

uint32_t hv_channel_nb_lcores(const struct hv_channel *ch)
{
	return ch->nb_records;
}

uint64_t hv_channel_tsc_hz(const struct hv_channel *ch)
{
	return ch->tsc_hz;
}

uint64_t hv_channel_generation(const struct hv_channel *ch)
{
	return ch->generation;
}

int hv_channel_read(struct hv_channel *ch, uint32_t idx, struct hc_lcore_record *out)
{
	const struct hc_header *h = ch->hdr;
	int rc;

	/* the writer zeroes the magic at exit; a restart unlinks the object and makes another */
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != HC_MAGIC ||
	    h->generation != ch->generation)
		return -ESTALE;
	if (idx >= ch->nb_records)
		return -ERANGE;
	rc = hc_read_record(ch->records + idx, out, 1000);
	if (rc)
		return -EAGAIN;
	hc_record_extrapolate(out, rdtsc(), ch->tsc_hz);
	return 0;
}

int hv_channel_set_sleep_floor(struct hv_channel *ch, uint32_t idx, uint64_t floor_ns,
			       uint64_t lease_ns)
{
	struct hc_header *h = ch->hdr;
	uint64_t until = 0;

	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != HC_MAGIC ||
	    h->generation != ch->generation)
		return -ESTALE;
	if (idx >= ch->nb_records)
		return -ERANGE;
	if (floor_ns && lease_ns)
		until = rdtsc() + (uint64_t)((double)lease_ns * (double)ch->tsc_hz / 1e9);
	hc_set_sleep_floor(ch->records + idx, floor_ns, until);
	return 0;
}

int hv_window(const struct hc_lcore_record *a, const struct hc_lcore_record *b, struct hv_window *w)
{
	if (b->total_cycles < a->total_cycles || b->busy_cycles < a->busy_cycles)
		return -EINVAL;
	w->total = b->total_cycles - a->total_cycles;
	w->busy = b->busy_cycles - a->busy_cycles;
	w->idle_poll = b->idle_poll_cycles - a->idle_poll_cycles;
	w->sleep = b->sleep_cycles - a->sleep_cycles;
	w->spare = w->total - w->busy;
	w->spare_ratio = w->total ? (double)w->spare / (double)w->total : 0.0;
	w->rx_pkts = b->rx_pkts - a->rx_pkts;
	w->tx_pkts = b->tx_pkts - a->tx_pkts;
	w->drop_pkts = b->drop_pkts - a->drop_pkts;
	/* counters that went back (a record from an older writer, or garbage) count as none */
	w->fn = b->fn_cycles >= a->fn_cycles ? b->fn_cycles - a->fn_cycles : 0;
	w->fn = w->fn < w->busy ? w->fn : w->busy;
	w->fn_pkts = b->fn_pkts >= a->fn_pkts ? b->fn_pkts - a->fn_pkts : 0;
	return 0;
}
