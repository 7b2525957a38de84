/* pktlib.c - the packet-mode consumer loop: packet/'s host, inside the sandbox. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nemo/fn_ring.h"
#include "packet.h"
#include "pktlib.h"
#include "zygote.h"

static struct fn_ring ring;

int nemo_pkt_attach(void)
{
	int rc = fn_ring_attach(&ring, PKT_RING_FD, PKT_WAKE_FD);

	if (!rc)
		ring.sh->consumer.pid = (int32_t)getpid();
	return rc;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* What batches left running dies before the park (we are PID 1: kill(-1) spares us). */
static void sweep(void)
{
	while (kill(-1, SIGKILL) == 0)
		if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
			break;
}

/*
 * Has the NF closed the lease, or the host the control socket? Neither sends anything once
 * the instance serves, so readable means closed. Returns the exit status, or 0.
 */
static int ended(void)
{
	struct pollfd p[2] = {{.fd = ZYG_CTL_FD, .events = POLLIN},
			      {.fd = PKT_LEASE_FD, .events = POLLIN}};

	if (poll(p, 2, 0) <= 0)
		return 0;
	if (p[1].revents)
		return PKT_EXIT_LEASE;
	return p[0].revents ? PKT_EXIT_HOST : 0;
}

int nemo_pkt_serve(nemo_batch_handler_fn handler, unsigned int batch, unsigned int spin_us)
{
	struct fn_host h = {.ring = &ring, .handler = handler, .batch = batch};
	uint64_t idle_since = 0;

	if (!h.batch || h.batch > FN_HOST_MAX_BATCH)
		h.batch = 32;
	for (;;) {
		int rc = fn_host_step(&h);
		uint64_t now;

		if (rc < 0)
			return PKT_EXIT_RING;
		if (rc > 0) {
			idle_since = 0;
			continue;
		}
		now = mono_ns();
		if (!idle_since)
			idle_since = now;
		if (now - idle_since < (uint64_t)spin_us * 1000)
			continue;
		sweep();
		fn_ring_park(&ring, 100);
		idle_since = 0;
		rc = ended();
		if (rc)
			return rc;
	}
}
