/* nemod.c - the nemo control daemon: config, sandbox backend, dispatcher, front door, signals. */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "nemo/gateway.h"
#include "nemo/log.h"
#include "nemo/version.h"

static struct gw_daemon *the_daemon; /* for the signal handler only */

static void on_signal(int sig)
{
	(void)sig;
	if (the_daemon)
		gw_daemon_request_stop(the_daemon);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: nemod [--config FILE] [--log-level err|warn|info|debug] [--human-logs]\n"
		   "  --config FILE   JSON config [configs/nemod.json]\n"
		   "  --check         load and check the config, then exit\n"
		   "  --version       print nemod's version\n");
}

/* nemod's own threads stay off the cores that host sandboxes and NFs. */
static int pin_housekeeping(const struct gw_config *cfg)
{
	cpu_set_t set;

	if (!cfg->n_housekeeping_cores)
		return 0;
	CPU_ZERO(&set);
	for (int i = 0; i < cfg->n_housekeeping_cores; i++)
		CPU_SET(cfg->housekeeping_cores[i], &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0) {
		NEMO_ERR("nemod", "pin to housekeeping cores: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"log-level", required_argument, NULL, 'l'},
		{"human-logs", no_argument, NULL, 'H'},
		{"check", no_argument, NULL, 'k'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config = "configs/nemod.json", *level = NULL;
	struct gw_backend backend;
	struct gw_dispatch dispatch;
	struct gw_config cfg;
	struct sigaction sa;
	bool structured = true, check_only = false;
	char err[512];
	int opt, rc, cancelled;

	while ((opt = getopt_long(argc, argv, "c:l:Hkh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'l':
			level = optarg;
			break;
		case 'H':
			structured = false;
			break;
		case 'k':
			check_only = true;
			break;
		case 'V':
			printf("nemod %s\n", NEMO_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	nemo_log_set_structured(structured);
	rc = gw_config_load(config, &cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "nemod: %s\n", err[0] ? err : strerror(-rc));
		return 2;
	}
	if (level)
		snprintf(cfg.log_level, sizeof(cfg.log_level), "%s", level);
	rc = nemo_log_parse_level(cfg.log_level);
	if (rc < 0) {
		fprintf(stderr, "nemod: log level '%s' is not err, warn, info or debug\n",
			cfg.log_level);
		return 2;
	}
	nemo_log_set_level(rc);
	gw_config_log(&cfg);
	if (check_only)
		return 0;
	signal(SIGPIPE, SIG_IGN);
	if (pin_housekeeping(&cfg))
		return 1;
	/* before the sandbox host: it clears its cgroup root of what it takes for leftovers */
	if (gw_store_lock(&cfg))
		return 1;
	rc = gw_backend_sandbox_new(&cfg, &backend);
	if (rc)
		return 1;
	if (cfg.harvest.enabled)
		rc = gw_dispatch_harvest_new(&cfg, &backend, &dispatch);
	else
		rc = gw_dispatch_rr_new(cfg.sandbox_cores, cfg.n_sandbox_cores, &dispatch);
	if (rc)
		goto out_backend;
	the_daemon = gw_daemon_new(&cfg, &backend, &dispatch);
	if (!the_daemon) {
		rc = -errno;
		goto out_dispatch;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	rc = gw_daemon_start(the_daemon);
	if (rc)
		goto out_daemon;
	NEMO_INFO("nemod", "ready pid=%d port=%u version=%s", getpid(), gw_daemon_port(the_daemon),
		  NEMO_VERSION);
	/* systemd (Type=notify) learns that nemod serves; outside systemd this does nothing */
	sd_notifyf(0, "READY=1\nMAINPID=%d\nSTATUS=serving on port %u", getpid(),
		   gw_daemon_port(the_daemon));
	gw_daemon_run(the_daemon);
	sd_notify(0, "STOPPING=1\nSTATUS=draining");
	NEMO_INFO("nemod", "stopping: draining for up to %u ms", cfg.drain_timeout_ms);
	cancelled = gw_daemon_drain(the_daemon);
	rc = 0;
	(void)cancelled;
out_daemon:
	gw_daemon_destroy(the_daemon);
	the_daemon = NULL;
out_dispatch:
	if (cfg.harvest.enabled)
		gw_dispatch_harvest_destroy(&dispatch);
	else
		gw_dispatch_rr_destroy(&dispatch);
out_backend:
	gw_backend_sandbox_destroy(&backend);
	NEMO_INFO("nemod", "exited rc=%d", rc);
	return rc ? 1 : 0;
}
