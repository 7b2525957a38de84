/* channel.c - the harvest channel's writer: create, publish records, remove at exit. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nemo/harvest_channel.h"
#include "nemo/log.h"
#include "nemo/nf.h"

struct nf_channel {
	char shm_name[64];
	struct hc_header *hdr;
	size_t size;
	int fd;
};

/* A channel whose writer is gone can be replaced; one whose writer lives cannot. */
static int check_existing(const char *shm_name)
{
	int fd = shm_open(shm_name, O_RDONLY, 0);
	struct hc_header h;
	int rc = 0;

	if (fd < 0)
		return 0;
	if (pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) && h.magic == HC_MAGIC &&
	    h.writer_pid > 0 && (kill(h.writer_pid, 0) == 0 || errno == EPERM)) {
		NEMO_ERR("nf", "harvest channel /dev/shm/%s is in use by nemo-nf pid %d", shm_name,
			 h.writer_pid);
		rc = -EEXIST;
	}
	close(fd);
	if (!rc && shm_unlink(shm_name) == 0)
		NEMO_INFO("nf", "removed stale harvest channel /dev/shm/%s", shm_name);
	return rc;
}

struct nf_channel *nf_channel_create(const char *name, uint32_t nb_lcores, uint64_t tsc_hz,
				     uint32_t publish_period_us)
{
	struct nf_channel *ch = calloc(1, sizeof(*ch));
	struct timespec now;
	int rc;

	if (!ch)
		return NULL;
	snprintf(ch->shm_name, sizeof(ch->shm_name), HC_SHM_PREFIX "%s", name);
	rc = check_existing(ch->shm_name);
	if (rc)
		goto err_free;
	ch->size = hc_shm_size(nb_lcores);
	ch->fd = shm_open(ch->shm_name, O_RDWR | O_CREAT | O_EXCL, 0644);
	if (ch->fd < 0) {
		rc = -errno;
		NEMO_ERR("nf", "shm_open /dev/shm/%s: %s", ch->shm_name, strerror(errno));
		goto err_free;
	}
	if (ftruncate(ch->fd, (off_t)ch->size) < 0) {
		rc = -errno;
		NEMO_ERR("nf", "ftruncate /dev/shm/%s: %s", ch->shm_name, strerror(errno));
		goto err_unlink;
	}
	ch->hdr = mmap(NULL, ch->size, PROT_READ | PROT_WRITE, MAP_SHARED, ch->fd, 0);
	if (ch->hdr == MAP_FAILED) {
		rc = -errno;
		NEMO_ERR("nf", "mmap /dev/shm/%s: %s", ch->shm_name, strerror(errno));
		goto err_unlink;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	ch->hdr->version = HC_VERSION;
	ch->hdr->header_size = sizeof(struct hc_header);
	ch->hdr->record_size = sizeof(struct hc_lcore_record);
	ch->hdr->nb_records = nb_lcores;
	ch->hdr->tsc_hz = tsc_hz;
	ch->hdr->generation = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	ch->hdr->writer_pid = getpid();
	ch->hdr->publish_period_us = publish_period_us;
	snprintf(ch->hdr->name, sizeof(ch->hdr->name), "%s", name);
	for (uint32_t i = 0; i < nb_lcores; i++)
		hc_records(ch->hdr)[i].state = HC_STATE_STOPPED;
	/* the magic goes last: a reader that sees it sees a complete header */
	__atomic_store_n(&ch->hdr->magic, HC_MAGIC, __ATOMIC_RELEASE);
	return ch;

err_unlink:
	close(ch->fd);
	shm_unlink(ch->shm_name);
err_free:
	free(ch);
	errno = -rc;
	return NULL;
}

struct hc_lcore_record *nf_channel_record(struct nf_channel *ch, uint32_t idx)
{
	return idx < ch->hdr->nb_records ? &hc_records(ch->hdr)[idx] : NULL;
}

struct hc_header *nf_channel_header(struct nf_channel *ch)
{
	return ch->hdr;
}

void nf_channel_destroy(struct nf_channel *ch)
{
	if (!ch)
		return;
	__atomic_store_n(&ch->hdr->magic, 0, __ATOMIC_RELEASE);
	munmap(ch->hdr, ch->size);
	close(ch->fd);
	if (shm_unlink(ch->shm_name) < 0 && errno != ENOENT)
		NEMO_ERR("nf", "shm_unlink /dev/shm/%s: %s", ch->shm_name, strerror(errno));
	free(ch);
}
