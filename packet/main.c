/* main.c - nemo-pktfn: run a packet function's batch handler on rings leased from nemo-nf. */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nemo/fn_ring.h"
#include "nemo/function.h"
#include "nemo/log.h"
#include "nemo/version.h"

static volatile sig_atomic_t g_quit;

static void on_signal(int sig)
{
	(void)sig;
	g_quit = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: nemo-pktfn --socket PATH --function NAME --code FILE.so [options]\n"
		"       nemo-pktfn --fds MEMFD,EVENTFD[,LEASE] --code FILE.so [options]\n"
		"       nemo-pktfn --socket PATH --list\n"
		"Serve a packet function: take the packets nemo-nf hands to NAME through its ring,\n"
		"call the batch handler of FILE.so, and return its replies.\n"
		"  --socket PATH      nemo-nf's fn_socket, to lease the rings from\n"
		"  --function NAME    the function the NF's fn rules name\n"
		"  --lcore N|any      the NF lcore whose ring to take (default any free one)\n"
		"  --fds M,E[,L]      use inherited ring memfd M, eventfd E and lease socket L (kept\n"
		"                     open: when this process dies the NF resets the ring)\n"
		"  --code FILE.so     the function, a shared object with a batch handler\n"
		"  --handler SYMBOL   the handler's name (default handle_batch)\n"
		"  --batch N          at most N packets per call, 1..%d (default 32)\n"
		"  --spin-us N        poll an empty ring N us before parking (default 50)\n"
		"  --duration S       stop after S seconds (default: until SIGTERM)\n"
		"  --list             print the rings the NF feeds (function@lcore, * if leased)\n"
		"  --quiet            no summary line at exit\n",
		FN_HOST_MAX_BATCH);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_uint(const char *opt, const char *arg, unsigned long lo, unsigned long hi,
		      unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(arg, &end, 10);
	if (!*arg || *end || errno || *out < lo || *out > hi) {
		fprintf(stderr, "nemo-pktfn: --%s: '%s' is not a number in %lu..%lu\n", opt, arg,
			lo, hi);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'},
		{"function", required_argument, NULL, 'f'},
		{"lcore", required_argument, NULL, 'l'},
		{"fds", required_argument, NULL, 'F'},
		{"code", required_argument, NULL, 'c'},
		{"handler", required_argument, NULL, 'H'},
		{"batch", required_argument, NULL, 'b'},
		{"spin-us", required_argument, NULL, 'S'},
		{"duration", required_argument, NULL, 'd'},
		{"quiet", no_argument, NULL, 'q'},
		{"list", no_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *function = NULL, *code = NULL, *fds = NULL;
	const char *handler_name = "handle_batch";
	unsigned long batch = 32, spin_us = 50, v;
	uint32_t lcore = FN_LEASE_ANY;
	double duration = 0, t0, idle_since = 0;
	unsigned long busy_steps = 0;
	struct fn_ring ring;
	struct fn_host host = {.ring = &ring};
	nemo_init_fn init;
	int opt, lease_fd = -1, quiet = 0, list = 0, rc, mfd = -1, efd = -1, lfd = -1;
	char err[256];
	void *dl;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'f':
			function = optarg;
			break;
		case 'l':
			if (strcmp(optarg, "any") == 0)
				break;
			if (parse_uint("lcore", optarg, 0, 1023, &v))
				return 2;
			lcore = (uint32_t)v;
			break;
		case 'F':
			fds = optarg;
			break;
		case 'c':
			code = optarg;
			break;
		case 'H':
			handler_name = optarg;
			break;
		case 'b':
			if (parse_uint("batch", optarg, 1, FN_HOST_MAX_BATCH, &batch))
				return 2;
			break;
		case 'S':
			if (parse_uint("spin-us", optarg, 0, 1000000, &spin_us))
				return 2;
			break;
		case 'd': {
			char *end;

			duration = strtod(optarg, &end);
			if (*end || duration < 0) {
				fprintf(stderr, "nemo-pktfn: --duration: '%s' is not seconds\n",
					optarg);
				return 2;
			}
			break;
		}
		case 'q':
			quiet = 1;
			break;
		case 'L':
			list = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("nemo-pktfn %s\n", NEMO_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (list && sock) {
		char out[256];

		rc = fn_lease_describe(sock, out, sizeof(out), err, sizeof(err));
		if (rc) {
			fprintf(stderr, "nemo-pktfn: %s\n", err);
			return 1;
		}
		printf("%s\n", out);
		return 0;
	}
	if (!code || (!fds && (!sock || !function))) {
		fprintf(stderr, "nemo-pktfn: --code and either --socket with --function, or --fds, "
				"are required\n");
		usage(stderr);
		return 2;
	}
	if (fds) {
		int n = sscanf(fds, "%d,%d,%d", &mfd, &efd, &lfd);

		if (n < 2 || mfd < 0 || efd < 0 || (n == 3 && lfd < 0)) {
			fprintf(stderr,
				"nemo-pktfn: --fds: expected MEMFD,EVENTFD[,LEASE], got '%s'\n",
				fds);
			return 2;
		}
	}
	dl = dlopen(code, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		fprintf(stderr, "nemo-pktfn: %s: %s\n", code, dlerror());
		return 1;
	}
	host.handler = (fn_batch_handler)(uintptr_t)dlsym(dl, handler_name);
	if (!host.handler) {
		fprintf(stderr, "nemo-pktfn: %s exports no batch handler '%s'\n", code,
			handler_name);
		return 1;
	}
	init = (nemo_init_fn)(uintptr_t)dlsym(dl, "nemo_init");
	if (init && init() != 0) {
		fprintf(stderr, "nemo-pktfn: %s: nemo_init failed\n", code);
		return 1;
	}
	host.batch = (uint32_t)batch;
	if (fds) {
		lease_fd = lfd;
		rc = fn_ring_attach(&ring, mfd, efd);
		if (rc)
			return 1;
	} else {
		/* a ring is leased again once the NF has reset it after its last consumer */
		for (int tries = 0; tries < 100; tries++) {
			rc = fn_lease_acquire(sock, function, lcore, &ring, &lease_fd, err,
					      sizeof(err));
			if (rc != -EAGAIN)
				break;
			usleep(20000);
		}
		if (rc) {
			fprintf(stderr, "nemo-pktfn: %s\n", err);
			return 1;
		}
	}
	ring.sh->consumer.pid = (int32_t)getpid();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	NEMO_INFO("packet", "serving '%s' on NF lcore %u: %u slots of %u bytes, batch %lu",
		  ring.sh->function, ring.sh->lcore_id, ring.nb_slots, ring.slot_size, batch);
	t0 = now_s();
	while (!g_quit) {
		rc = fn_host_step(&host);
		if (rc < 0) {
			NEMO_ERR("packet", "'%s': the NF's ring index is out of range; stopping",
				 ring.sh->function);
			break;
		}
		if (rc > 0) {
			idle_since = 0;
			if (duration > 0 && ++busy_steps % 256 == 0 && now_s() - t0 >= duration)
				break;
			continue;
		}
		/* nothing to do: poll a little (cheap, and the next burst is often close), park */
		if (!idle_since) {
			idle_since = now_s();
			continue;
		}
		if (now_s() - idle_since < (double)spin_us / 1e6)
			continue;
		if (duration > 0 && now_s() - t0 >= duration)
			break;
		fn_ring_park(&ring, 100);
		idle_since = 0;
	}
	if (!quiet)
		printf("nemo-pktfn: '%s' lcore %u: %lu batches, %lu packets, %lu replies, %lu too "
		       "big, %lu errors, %lu resets, %lu parks\n",
		       ring.sh->function, ring.sh->lcore_id, (unsigned long)host.batches,
		       (unsigned long)host.packets, (unsigned long)host.replies,
		       (unsigned long)host.too_big, (unsigned long)host.errors,
		       (unsigned long)host.resets, (unsigned long)ring.sh->consumer.parks);
	fn_ring_close(&ring);
	if (lease_fd >= 0)
		close(lease_fd);
	dlclose(dl);
	return 0;
}
