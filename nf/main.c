/* main.c - nemo-nf: load the config, start the EAL and the runtime, report, shut down cleanly. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include "nemo/log.h"
#include "nemo/nf.h"
#include "nemo/version.h"

#define MAX_EAL_ARGS 64

static struct nf_runtime *g_rt; /* for the signal handler only */
static volatile sig_atomic_t g_quit;

static void on_signal(int sig)
{
	(void)sig;
	g_quit = 1;
	if (g_rt)
		nf_runtime_request_stop(g_rt);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: nemo-nf --config FILE [--duration SECONDS] [--quiet] "
		     "[--log-level err|warn|info|debug] [--version] [-- EAL args]\n"
		     "  Runs the NF lcores the config describes until SIGINT/SIGTERM or the "
		     "duration ends.\n"
		     "  EAL args given after -- replace the ones nemo-nf derives (lcores, memory, "
		     "file prefix).\n");
}

static bool has_arg(int argc, char **argv, const char *const *names)
{
	for (int i = 0; i < argc; i++)
		for (int n = 0; names[n]; n++)
			if (strncmp(argv[i], names[n], strlen(names[n])) == 0)
				return true;
	return false;
}

/* Build the EAL arguments: derived from the config, unless the user gave their own. */
static int build_eal_args(const struct nf_config *cfg, int uargc, char **uargv, char **eal,
			  char bufs[][256])
{
	static const char *const lcore_opts[] = {"-l", "-c", "--lcores", NULL};
	static const char *const mem_opts[] = {"-m", "--no-huge", "--socket-mem", "--in-memory",
					       NULL};
	static const char *const prefix_opts[] = {"--file-prefix", NULL};
	static const char *const dev_opts[] = {"-a", "-b", "--allow", "--block", "--no-pci", NULL};
	int n = 0, b = 0;

	eal[n++] = "nemo-nf";
	if (!has_arg(uargc, uargv, lcore_opts)) {
		int len = snprintf(bufs[b], 256, "%u@%u", cfg->main_lcore, cfg->main_cpu);

		for (uint32_t i = 0; i < cfg->nb_lcores; i++)
			len += snprintf(bufs[b] + len, (size_t)(256 - len), ",%u@%u",
					cfg->lcores[i].lcore_id, cfg->lcores[i].cpu);
		eal[n++] = "--lcores";
		eal[n++] = bufs[b++];
		snprintf(bufs[b], 256, "--main-lcore=%u", cfg->main_lcore);
		eal[n++] = bufs[b++];
	}
	if (!has_arg(uargc, uargv, mem_opts)) {
		if (!cfg->hugepages)
			eal[n++] = "--no-huge";
		else
			eal[n++] = "--huge-unlink"; /* no hugepage files outlive the process */
		eal[n++] = "-m";
		snprintf(bufs[b], 256, "%u", cfg->memory_mb);
		eal[n++] = bufs[b++];
	}
	if (!has_arg(uargc, uargv, prefix_opts)) {
		snprintf(bufs[b], 256, "--file-prefix=nemo-nf-%s", cfg->name);
		eal[n++] = bufs[b++];
	}
	if (!has_arg(uargc, uargv, dev_opts)) {
		bool pci = false;

		for (uint32_t p = 0; p < cfg->nb_ports; p++)
			pci |= cfg->ports[p].pci[0] != '\0';
		/* ports are attached one by one after init, so that errors name the port */
		if (!pci)
			eal[n++] = "--no-pci";
		else
			eal[n++] = "-a", eal[n++] = "0000:00:00.0"; /* probe none at init */
	}
	if (!has_arg(uargc, uargv, (const char *const[]){"--log-level", NULL})) {
		eal[n++] = "--log-level=lib.eal:warning";
		eal[n++] = "--log-level=pmd.net.memif:warning";
	}
	for (int i = 0; i < uargc && n < MAX_EAL_ARGS - 1; i++)
		eal[n++] = uargv[i];
	eal[n] = NULL;
	return n;
}

/* rte_eal_cleanup() leaves /var/run/dpdk/<prefix>: remove its files and the folder. */
static void remove_runtime_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[512];

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) < 0)
			NEMO_WARN("nf", "cannot remove %s: %s", path, strerror(errno));
	}
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT)
		NEMO_WARN("nf", "cannot remove %s: %s", dir, strerror(errno));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"duration", required_argument, NULL, 'd'},
		{"quiet", no_argument, NULL, 'q'},
		{"log-level", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	char *eal[MAX_EAL_ARGS], bufs[8][256], runtime_dir[256];
	const char *config = NULL;
	struct nf_config cfg;
	struct cfg_ctx ctx = {0};
	double duration = 0;
	int quiet = 0, opt, rc, neal, uargc;
	struct timespec t0, now;
	uint64_t next_live_ms;

	while ((opt = getopt_long(argc, argv, "c:d:qh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'd': {
			char *end;

			duration = strtod(optarg, &end);
			if (*end || duration < 0) {
				fprintf(stderr,
					"nemo-nf: --duration: '%s' is not a number of "
					"seconds\n",
					optarg);
				return 2;
			}
			break;
		}
		case 'q':
			quiet = 1;
			break;
		case 'L':
			rc = nemo_log_parse_level(optarg);
			if (rc < 0) {
				fprintf(stderr, "nemo-nf: --log-level: unknown level '%s'\n",
					optarg);
				return 2;
			}
			nemo_log_set_level((enum nemo_log_level)rc);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("nemo-nf %s\n", NEMO_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config) {
		fprintf(stderr, "nemo-nf: --config FILE is required\n");
		usage(stderr);
		return 2;
	}
	if (nf_config_load(config, &cfg, &ctx) < 0)
		return 2; /* the error, naming file and key, is logged */
	nf_config_log(&cfg);

	uargc = argc - optind;
	neal = build_eal_args(&cfg, uargc, argv + optind, eal, bufs);
	rc = rte_eal_init(neal, eal);
	if (rc < 0) {
		NEMO_ERR("nf", "EAL init failed: %s", rte_strerror(rte_errno));
		nf_config_free(&cfg);
		return 1;
	}
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	g_rt = nf_runtime_create(&cfg);
	if (!g_rt) {
		rc = 1;
		goto out_eal;
	}
	rc = nf_runtime_start(g_rt);
	if (rc) {
		rc = 1;
		goto out_rt;
	}
	NEMO_INFO("nf", "running: %u lcores, harvest channel /dev/shm/" HC_SHM_PREFIX "%s%s",
		  cfg.nb_lcores, cfg.name, g_quit ? " (stopping)" : "");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	next_live_ms = cfg.stats_interval_ms;
	while (!g_quit) {
		uint64_t elapsed_ms;

		usleep(20000);
		nf_runtime_sample_ports(g_rt);
		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed_ms = (uint64_t)(((int64_t)(now.tv_sec - t0.tv_sec) * 1000000000 +
					 (now.tv_nsec - t0.tv_nsec)) /
					1000000);
		if (!quiet && cfg.stats_interval_ms && elapsed_ms >= next_live_ms) {
			nf_runtime_print_live(g_rt);
			next_live_ms += cfg.stats_interval_ms;
		}
		if (duration > 0 && (double)elapsed_ms >= duration * 1000)
			break;
		/* an lcore that failed (scheduling class refused, ...) stops the NF */
		if (nf_runtime_failed(g_rt)) {
			rc = 1;
			break;
		}
	}
	NEMO_INFO("nf", "stopping");
	nf_runtime_request_stop(g_rt);
	nf_runtime_wait(g_rt);
	if (!rc && nf_runtime_failed(g_rt))
		rc = 1;
	nf_runtime_print_summary(g_rt);
out_rt:
	nf_runtime_destroy(g_rt);
	g_rt = NULL;
out_eal:
	rte_eal_cleanup();
	remove_runtime_dir(runtime_dir);
	nf_config_free(&cfg);
	return rc;
}
