/*
 * fuzz_channel.c - a harvest channel of garbage, mapped: the reader refuses it or reads it
 * within bounds, also when the header changes under it after attach.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "harvester_internal.h"
#include "nemo/harvest_channel.h"
#include "nemo/harvester.h"

static char name[32], path[64];

static void unlink_channel(void)
{
	shm_unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(name, sizeof(name), "fuzz-%d", getpid());
	snprintf(path, sizeof(path), "/" HC_SHM_PREFIX "%s", name);
	atexit(unlink_channel);
	return 0;
}

/* Read every record and one past the end, and ask for a sleep floor on each. */
static void read_all(struct hv_channel *ch)
{
	uint32_t n = hv_channel_nb_lcores(ch);
	struct hc_lcore_record a, b;
	struct hv_window w;

	FUZZ_ASSERT(n <= HC_MAX_LCORES);
	FUZZ_ASSERT(strlen(__hv_channel_name(ch)) < HC_NAME_MAX);
	for (uint32_t i = 0; i <= n; i++) {
		int rc = hv_channel_read(ch, i, &a);

		if (i == n)
			FUZZ_ASSERT(rc == -ERANGE || rc == -ESTALE);
		else
			FUZZ_ASSERT(rc == 0 || rc == -EAGAIN || rc == -ESTALE);
		rc = hv_channel_set_sleep_floor(ch, i, 1000, 1000000);
		FUZZ_ASSERT(i < n ? rc == 0 || rc == -ESTALE : rc == -ERANGE || rc == -ESTALE);
		if (i < n && hv_channel_read(ch, i, &b) == 0 && hv_window(&a, &b, &w) == 0)
			FUZZ_ASSERT(w.spare <= w.total);
	}
	(void)hv_channel_check(ch);
}

/*
 * Input: one byte of switches, then the object's bytes. Switch 1 makes the writer pid ours
 * (alive), 2 makes magic, version and sizes right, so the fuzzer reaches past the first
 * checks; 4 rewrites the header from the input's tail after attach.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hv_channel *ch;
	struct hc_header h;
	uint8_t sw;
	int fd;

	if (size < 1)
		return 0;
	sw = data[0];
	data++;
	size--;
	fd = shm_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	FUZZ_ASSERT(fd >= 0);
	FUZZ_ASSERT(ftruncate(fd, (off_t)size) == 0);
	if (size >= sizeof(h)) {
		memcpy(&h, data, sizeof(h));
		if (sw & 1)
			h.writer_pid = getpid();
		if (sw & 2) {
			h.magic = HC_MAGIC;
			h.version = HC_VERSION;
			h.header_size = sizeof(h);
			h.record_size = sizeof(struct hc_lcore_record);
		}
		FUZZ_ASSERT(pwrite(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h));
		if (size > sizeof(h))
			FUZZ_ASSERT(pwrite(fd, data + sizeof(h), size - sizeof(h), sizeof(h)) ==
				    (ssize_t)(size - sizeof(h)));
	} else if (size) {
		FUZZ_ASSERT(pwrite(fd, data, size, 0) == (ssize_t)size);
	}
	close(fd);

	ch = __hv_channel_open(name, true);
	if (!ch) {
		FUZZ_ASSERT(errno == EPROTO || errno == EPROTONOSUPPORT || errno == ESRCH);
		return 0;
	}
	read_all(ch);
	if ((sw & 4) && size >= 2 * sizeof(h)) {
		/* a writer that rewrites its header while the reader is attached */
		void *m = mmap(NULL, sizeof(h), PROT_READ | PROT_WRITE, MAP_SHARED,
			       fd = shm_open(path, O_RDWR, 0), 0);

		FUZZ_ASSERT(fd >= 0 && m != MAP_FAILED);
		memcpy(m, data + size - sizeof(h), sizeof(h));
		read_all(ch);
		munmap(m, sizeof(h));
		close(fd);
	}
	hv_channel_close(ch);
	return 0;
}
