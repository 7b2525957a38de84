/* main.c - nemo-gen: parse the command line, start the EAL, run the generator, report, clean up. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include "nemo/log.h"
#include "nemo/version.h"
#include "gen_internal.h"

#define GEN_EAL_ARGS_MAX 64

/* The one global a signal handler forces: counts SIGINT/SIGTERM (1 = stop, 2 = skip drain). */
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = stop_requested + 1;
}

static int lowest_allowed_cpu(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &set))
				return c;
	return 0;
}

static bool has_file_prefix(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (strncmp(argv[i], "--file-prefix", 13) == 0)
			return true;
	return false;
}

/* Storage for the default EAL arguments that are built at run time. */
struct gen_eal_bufs {
	char lcores[16];
	char prefix[64];
	char vdev[PATH_MAX + 128];
};

/*
 * The EAL arguments: the user's after "--", or defaults that need no hugepages and no shared
 * state. *own_dir says whether the runtime directory is this process's alone to remove.
 */
static int build_eal_args(const struct gen_opts *o, char *argv0, char **eal, struct gen_eal_bufs *b,
			  bool *own_dir)
{
	int n = 0;

	eal[n++] = argv0;
	if (o->eal_argc) {
		if (o->eal_argc + 1 >= GEN_EAL_ARGS_MAX)
			return -E2BIG;
		for (int i = 0; i < o->eal_argc; i++)
			eal[n++] = o->eal_argv[i];
		*own_dir = has_file_prefix(o->eal_argc, o->eal_argv);
		eal[n] = NULL;
		return n;
	}
	snprintf(b->lcores, sizeof(b->lcores), "%d", o->cpu >= 0 ? o->cpu : lowest_allowed_cpu());
	snprintf(b->prefix, sizeof(b->prefix), "nemo-gen-%d", (int)getpid());
	snprintf(b->vdev, sizeof(b->vdev),
		 "net_memif0,role=client,socket=%s,socket-abstract=no,id=%u,rsize=%u", o->socket,
		 o->memif_id, o->ring_log2);
	eal[n++] = "--no-huge";
	eal[n++] = "-m";
	eal[n++] = "512";
	eal[n++] = "--no-shconf";
	eal[n++] = "--no-pci";
	eal[n++] = "--no-telemetry";
	eal[n++] = "--log-level=lib.eal:warning";
	eal[n++] = "-l";
	eal[n++] = b->lcores;
	eal[n++] = "--file-prefix";
	eal[n++] = b->prefix;
	eal[n++] = "--vdev";
	eal[n++] = b->vdev;
	eal[n] = NULL;
	*own_dir = true;
	return n;
}

/* The EAL leaves its runtime directory (/var/run/dpdk/PREFIX) behind; it holds only files. */
static void remove_runtime_dir(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	/* relative to the directory: no path to build, none to cut short */
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0))
			NEMO_WARN("gen", "cannot remove %s/%s: %s", dir, e->d_name,
				  strerror(errno));
	}
	closedir(d);
	if (rmdir(dir) && errno != ENOENT)
		NEMO_WARN("gen", "cannot remove %s: %s", dir, strerror(errno));
}

/* Fail on an unwritable output path before spending seconds on a run. */
static int check_writable(const char *opt, const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "nemo-gen: %s %s: %s\n", opt, path, strerror(errno));
		return -errno;
	}
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	char err[512], desc[128], runtime_dir[PATH_MAX] = "";
	struct gen_eal_bufs bufs;
	char *eal[GEN_EAL_ARGS_MAX];
	struct gen_totals totals;
	struct gen_profile profile;
	struct sigaction sa;
	struct gen_opts o;
	FILE *csv = NULL;
	bool own_dir = false;
	int eal_argc, rc, status = 0;

	/* --version stands alone, before the options are checked (EAL arguments follow --) */
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--version") == 0) {
			printf("nemo-gen %s\n", NEMO_VERSION);
			return 0;
		}
	if (gen_opts_parse(argc, argv, &o, err, sizeof(err))) {
		fprintf(stderr, "nemo-gen: %s\n(nemo-gen --help lists the options)\n", err);
		return 2;
	}
	if (o.help) {
		gen_opts_usage(stdout);
		return 0;
	}
	rc = gen_opts_profile(&o, &profile, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "nemo-gen: %s\n", err);
		return 2;
	}
	gen_profile_describe(&profile, desc, sizeof(desc));
	if (o.eal_argc && o.cpu >= 0)
		fprintf(stderr, "nemo-gen: --cpu is ignored: the EAL arguments choose the lcore\n");
	if (o.json && check_writable("--json", o.json)) {
		gen_profile_free(&profile);
		return 1;
	}
	if (o.csv) {
		csv = fopen(o.csv, "w");
		if (!csv) {
			fprintf(stderr, "nemo-gen: --csv %s: %s\n", o.csv, strerror(errno));
			gen_profile_free(&profile);
			return 1;
		}
	}

	eal_argc = build_eal_args(&o, argv[0], eal, &bufs, &own_dir);
	if (eal_argc < 0) {
		fprintf(stderr, "nemo-gen: too many EAL arguments (at most %d)\n",
			GEN_EAL_ARGS_MAX - 2);
		status = 2;
		goto out_files;
	}
	if (rte_eal_init(eal_argc, eal) < 0) {
		NEMO_ERR("gen", "EAL init failed: %s", rte_strerror(rte_errno));
		status = 1;
		goto out_files;
	}
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	memset(&totals, 0, sizeof(totals));
	totals.lat = calloc(1, sizeof(*totals.lat));
	totals.lat_reply = calloc(1, sizeof(*totals.lat_reply));
	if (!totals.lat || !totals.lat_reply) {
		NEMO_ERR("gen", "out of memory");
		status = 1;
		goto out_eal;
	}
	if (!o.quiet)
		fprintf(stderr, "nemo-gen: %s, %u-byte frames, %u flow(s), %.3f s\n",
			o.max_rate ? "max rate" : desc, o.size, o.flows,
			gen_opts_duration(&o, &profile));
	rc = gen_run(&o, &profile, csv, &stop_requested, &totals);
	if (rc) {
		status = 1;
	} else {
		gen_report_summary(stdout, &totals, desc, o.size, o.flows);
		if (o.json && gen_report_write_json(o.json, &totals))
			status = 1;
	}
	free(totals.lat);
	free(totals.lat_reply);
out_eal:
	rte_eal_cleanup();
	if (own_dir && runtime_dir[0])
		remove_runtime_dir(runtime_dir);
out_files:
	if (csv && fclose(csv)) {
		fprintf(stderr, "nemo-gen: --csv %s: %s\n", o.csv, strerror(errno));
		status = 1;
	}
	gen_profile_free(&profile);
	return status;
}
