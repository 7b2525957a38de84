/* fn_ring.c - creating, mapping, resetting the function rings, and the two syscalls they use. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nemo/fn_ring.h"
#include "nemo/log.h"

static bool pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static size_t ring_bytes(uint32_t nb_slots, uint32_t slot_size)
{
	return sizeof(struct fn_ring_shared) + 2 * (size_t)nb_slots * slot_size;
}

static void ring_view(struct fn_ring *r, struct fn_ring_shared *sh)
{
	r->sh = sh;
	r->req = (uint8_t *)sh + sh->req_off;
	r->rep = (uint8_t *)sh + sh->rep_off;
	r->nb_slots = sh->nb_slots;
	r->mask = sh->nb_slots - 1;
	r->slot_size = sh->slot_size;
	r->data_cap = sh->slot_size - FN_RING_SLOT_HDR;
	r->size = sh->size;
}

int fn_ring_create(struct fn_ring *r, const char *function, uint32_t lcore_id, uint32_t nb_slots,
		   uint32_t slot_size, uint32_t flags)
{
	struct fn_ring_shared *sh;
	char name[64];
	size_t size;
	int rc;

	memset(r, 0, sizeof(*r));
	r->mem_fd = -1;
	r->wake_fd = -1;
	if (!function || !function[0] || strlen(function) >= FN_RING_NAME_MAX || !pow2(nb_slots) ||
	    nb_slots < FN_RING_MIN_SLOTS || nb_slots > FN_RING_MAX_SLOTS || !pow2(slot_size) ||
	    slot_size < FN_RING_MIN_SLOT || slot_size > FN_RING_MAX_SLOT) {
		NEMO_ERR("packet",
			 "ring for '%s': %u slots of %u bytes: slots must be a power of two in "
			 "%u..%u, slot bytes a power of two in %u..%u, the name 1..%d characters",
			 function ? function : "", nb_slots, slot_size, FN_RING_MIN_SLOTS,
			 FN_RING_MAX_SLOTS, FN_RING_MIN_SLOT, FN_RING_MAX_SLOT,
			 FN_RING_NAME_MAX - 1);
		return -EINVAL;
	}
	size = ring_bytes(nb_slots, slot_size);
	snprintf(name, sizeof(name), "nemo-fn-%s-%u", function, lcore_id);
	r->mem_fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (r->mem_fd < 0) {
		rc = -errno;
		NEMO_ERR("packet", "memfd_create %s: %s", name, strerror(errno));
		goto fail;
	}
	if (ftruncate(r->mem_fd, (off_t)size) < 0) {
		rc = -errno;
		NEMO_ERR("packet", "%s: ftruncate %zu: %s", name, size, strerror(errno));
		goto fail;
	}
	/* the consumer may map it but never shrink it under the NF (a SIGBUS in the fast path) */
	if (fcntl(r->mem_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		rc = -errno;
		NEMO_ERR("packet", "%s: sealing its size: %s", name, strerror(errno));
		goto fail;
	}
	sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->mem_fd, 0);
	if (sh == MAP_FAILED) {
		rc = -errno;
		NEMO_ERR("packet", "%s: mmap %zu bytes: %s", name, size, strerror(errno));
		goto fail;
	}
	r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->wake_fd < 0) {
		rc = -errno;
		NEMO_ERR("packet", "%s: eventfd: %s", name, strerror(errno));
		munmap(sh, size);
		goto fail;
	}
	sh->version = FN_RING_VERSION;
	sh->nb_slots = nb_slots;
	sh->slot_size = slot_size;
	sh->size = size;
	sh->req_off = sizeof(*sh);
	sh->rep_off = sizeof(*sh) + (uint64_t)nb_slots * slot_size;
	sh->lcore_id = lcore_id;
	sh->flags = flags;
	snprintf(sh->function, sizeof(sh->function), "%s", function);
	__atomic_store_n(&sh->magic, FN_RING_MAGIC, __ATOMIC_RELEASE);
	ring_view(r, sh);
	return 0;
fail:
	if (r->mem_fd >= 0)
		close(r->mem_fd);
	r->mem_fd = -1;
	return rc;
}

int fn_ring_attach(struct fn_ring *r, int mem_fd, int wake_fd)
{
	struct fn_ring_shared *sh, hdr;
	struct stat st;
	int rc;

	memset(r, 0, sizeof(*r));
	r->mem_fd = -1;
	r->wake_fd = -1;
	if (fstat(mem_fd, &st) < 0) {
		rc = -errno;
		NEMO_ERR("packet", "ring fd %d: %s", mem_fd, strerror(errno));
		return rc;
	}
	if ((size_t)st.st_size < sizeof(hdr) ||
	    pread(mem_fd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr)) {
		NEMO_ERR("packet", "ring fd %d: %lld bytes, not a function ring", mem_fd,
			 (long long)st.st_size);
		return -EPROTO;
	}
	if (hdr.magic != FN_RING_MAGIC) {
		NEMO_ERR("packet", "ring fd %d: magic %#x, not a function ring (%#x)", mem_fd,
			 hdr.magic, FN_RING_MAGIC);
		return -EPROTO;
	}
	if (hdr.version != FN_RING_VERSION) {
		NEMO_ERR("packet", "ring fd %d: version %u, this build knows version %u", mem_fd,
			 hdr.version, FN_RING_VERSION);
		return -EPROTO;
	}
	if (!pow2(hdr.nb_slots) || hdr.nb_slots > FN_RING_MAX_SLOTS || !pow2(hdr.slot_size) ||
	    hdr.slot_size < FN_RING_MIN_SLOT || hdr.slot_size > FN_RING_MAX_SLOT ||
	    hdr.size != ring_bytes(hdr.nb_slots, hdr.slot_size) ||
	    hdr.size > (uint64_t)st.st_size || hdr.req_off != sizeof(hdr) ||
	    hdr.rep_off != sizeof(hdr) + (uint64_t)hdr.nb_slots * hdr.slot_size) {
		NEMO_ERR("packet", "ring fd %d: inconsistent sizes (%u slots of %u, %llu bytes)",
			 mem_fd, hdr.nb_slots, hdr.slot_size, (unsigned long long)hdr.size);
		return -EPROTO;
	}
	sh = mmap(NULL, hdr.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, mem_fd, 0);
	if (sh == MAP_FAILED) {
		rc = -errno;
		NEMO_ERR("packet", "ring fd %d: mmap: %s", mem_fd, strerror(errno));
		return rc;
	}
	r->mem_fd = mem_fd;
	r->wake_fd = wake_fd;
	/* the geometry from the copy that was checked, not from memory the NF could change */
	r->sh = sh;
	r->nb_slots = hdr.nb_slots;
	r->mask = hdr.nb_slots - 1;
	r->slot_size = hdr.slot_size;
	r->data_cap = hdr.slot_size - FN_RING_SLOT_HDR;
	r->size = hdr.size;
	r->req = (uint8_t *)sh + sizeof(hdr);
	r->rep = r->req + (size_t)hdr.nb_slots * hdr.slot_size;
	r->epoch_seen = __atomic_load_n(&sh->epoch.v, __ATOMIC_ACQUIRE);
	r->head = __atomic_load_n(&sh->req_tail.v, __ATOMIC_ACQUIRE);
	r->rep_head = __atomic_load_n(&sh->rep_head.v, __ATOMIC_ACQUIRE);
	return 0;
}

void fn_ring_close(struct fn_ring *r)
{
	if (r->sh)
		munmap(r->sh, r->size);
	r->sh = NULL;
	if (r->mem_fd >= 0 && r->mem_fd != r->wake_fd)
		close(r->mem_fd);
	if (r->wake_fd >= 0)
		close(r->wake_fd);
	r->mem_fd = -1;
	r->wake_fd = -1;
}

uint32_t fn_ring_reset(struct fn_ring *r)
{
	struct fn_ring_shared *sh = r->sh;
	uint32_t tail = __atomic_load_n(&sh->req_tail.v, __ATOMIC_ACQUIRE);
	uint32_t lost = r->head - tail;

	if (lost > r->nb_slots)
		lost = 0; /* a tail the consumer made up says nothing about what it consumed */
	r->other = r->head;
	__atomic_store_n(&sh->req_tail.v, r->head, __ATOMIC_RELAXED);
	r->rep_tail = __atomic_load_n(&sh->rep_head.v, __ATOMIC_ACQUIRE);
	__atomic_store_n(&sh->rep_tail.v, r->rep_tail, __ATOMIC_RELAXED);
	__atomic_store_n(&sh->sleeping.v, 0, __ATOMIC_RELAXED);
	memset(&sh->consumer, 0, sizeof(sh->consumer));
	__atomic_fetch_add(&sh->epoch.v, 1, __ATOMIC_RELEASE);
	return lost;
}

bool fn_ring_wake(struct fn_ring *r)
{
	uint64_t one = 1;

	if (!__atomic_exchange_n(&r->sh->sleeping.v, 0, __ATOMIC_ACQ_REL))
		return false;
	/* EAGAIN: the counter is already non-zero, the consumer will see it */
	return write(r->wake_fd, &one, sizeof(one)) == sizeof(one);
}

int fn_ring_park(struct fn_ring *r, int timeout_ms)
{
	struct pollfd pfd = {.fd = r->wake_fd, .events = POLLIN};
	uint64_t count;
	int rc = 0;

	__atomic_store_n(&r->sh->sleeping.v, 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (fn_ring_cons_avail(r) == 0) {
		r->sh->consumer.parks++;
		if (poll(&pfd, 1, timeout_ms) < 0)
			rc = -errno;
	}
	__atomic_store_n(&r->sh->sleeping.v, 0, __ATOMIC_RELAXED);
	/* drain the counter; EAGAIN when the wake came from a timeout or was never written */
	if (read(r->wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN && !rc)
		rc = -errno;
	return rc;
}
