/* watchdog.h - the runtime program's watchdog mode (sbx_host_new() starts it on cgroup v1). */
#ifndef NEMO_SBX_WATCHDOG_H
#define NEMO_SBX_WATCHDOG_H

#define WATCHDOG_ARG   "--watchdog"
#define WATCHDOG_READY 'R' /* the byte it writes to fd 1 once it watches */

/*
 * nemo-sbx-runtime --watchdog <pid> <freezer dir>: writes one byte to fd 1 once it watches
 * process <pid> (its parent), waits for its end, then kills every task of each sbx-* cgroup
 * of <freezer dir> and thaws it until none is left. Returns the exit status.
 */
int nemo_watchdog_main(int argc, char **argv);

#endif /* NEMO_SBX_WATCHDOG_H */
