/* bench_api_sbx.c - the sandbox-level warm round trip of echo, the floor under nemod's HTTP figure. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/sandbox.h"

/*
 * The same function, payload and core as experiments/bench_api.sh uses through HTTP, but
 * called with sbx_pool_invoke() directly: what is left of the HTTP latency above this is the
 * platform's own overhead (HTTP parsing, auth, activation record, dispatch, metrics).
 * usage: bench_api_sbx ECHO_SO CORE RUNS PAYLOAD
 */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct sbx_host_config hc = {0};
	struct sbx_spec spec;
	struct sbx_host *host;
	struct sbx_pool *pool;
	char root[64];
	uint64_t *lat;
	int core, runs, rc = 1;
	const char *payload;

	if (argc != 5) {
		fprintf(stderr, "usage: bench_api_sbx ECHO_SO CORE RUNS PAYLOAD\n");
		return 2;
	}
	core = atoi(argv[2]);
	runs = atoi(argv[3]);
	payload = argv[4];
	if (runs < 10 || core < 0) {
		fprintf(stderr, "bench_api_sbx: RUNS >= 10 and CORE >= 0\n");
		return 2;
	}
	lat = calloc((size_t)runs, sizeof(*lat));
	snprintf(root, sizeof(root), "nemo-benchapi-%d", getpid());
	hc.cgroup_root = root;
	hc.n_cores = core + 1;
	host = sbx_host_new(&hc);
	if (!lat || !host) {
		fprintf(stderr, "bench_api_sbx: host: %s (run as root)\n", strerror(errno));
		return 1;
	}
	pool = sbx_pool_new(host, NULL, NULL);
	sbx_spec_defaults(&spec);
	snprintf(spec.name, sizeof(spec.name), "echo");
	spec.runtime = SBX_RUNTIME_C;
	snprintf(spec.code, sizeof(spec.code), "%s", argv[1]);
	snprintf(spec.handler, sizeof(spec.handler), "handle");
	if (!pool || sbx_pool_deploy(pool, &spec)) {
		fprintf(stderr, "bench_api_sbx: pool/deploy failed: %s\n", strerror(errno));
		goto out;
	}
	for (int i = -200; i < runs; i++) { /* 200 warm-up calls first */
		struct sbx_result res;
		uint64_t t0 = nemo_now_ns();

		sbx_pool_invoke(pool, "echo", core, payload, strlen(payload), &res);
		if (res.status != SBX_OK) {
			fprintf(stderr, "bench_api_sbx: invoke: %s\n", res.message);
			sbx_result_release(&res);
			goto out;
		}
		sbx_result_release(&res);
		if (i >= 0)
			lat[i] = nemo_now_ns() - t0;
	}
	qsort(lat, (size_t)runs, sizeof(*lat), cmp_u64);
	printf("sbx_warm_p50_us=%.1f sbx_warm_p99_us=%.1f runs=%d\n", (double)lat[runs / 2] / 1e3,
	       (double)lat[(size_t)runs * 99 / 100] / 1e3, runs);
	rc = 0;
out:
	if (pool)
		sbx_pool_destroy(pool);
	sbx_host_destroy(host);
	free(lat);
	return rc;
}
