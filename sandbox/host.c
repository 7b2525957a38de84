/* host.c - the sandbox host: cgroup backend choice, runtime and interpreter paths, seccomp, netns. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <linux/sched.h>
#include <pthread.h>
#include <pwd.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <seccomp.h>

#include "nemo/log.h"
#include "runtime/watchdog.h"
#include "sandbox_internal.h"

/*
 * Calls no function needs and that reach into the kernel's most privileged or most attacked
 * surfaces. Most would fail anyway without capabilities; denying them here also closes the
 * bugs behind those checks.
 */
static const char *const denied_syscalls[] = {
	"mount",
	"umount2",
	"pivot_root",
	"chroot",
	"move_mount",
	"open_tree",
	"fsopen",
	"fsconfig",
	"fsmount",
	"fspick",
	"mount_setattr",
	"ptrace",
	"process_vm_readv",
	"process_vm_writev",
	"bpf",
	"perf_event_open",
	"kexec_load",
	"kexec_file_load",
	"init_module",
	"finit_module",
	"delete_module",
	"reboot",
	"swapon",
	"swapoff",
	"acct",
	"settimeofday",
	"clock_settime",
	"clock_adjtime",
	"adjtimex",
	"unshare",
	"setns",
	"open_by_handle_at",
	"name_to_handle_at",
	"keyctl",
	"add_key",
	"request_key",
	"userfaultfd",
	"syslog",
	"iopl",
	"ioperm",
	"quotactl",
	"sethostname",
	"setdomainname",
	"vhangup",
	"io_uring_setup",
	"io_uring_enter",
	"io_uring_register",
	"lookup_dcookie",
	"fanotify_init",
	"kcmp",
	"pidfd_getfd",
	"personality",
};

static const unsigned long clone_ns_flags[] = {CLONE_NEWNS,    CLONE_NEWUTS, CLONE_NEWIPC,
					       CLONE_NEWUSER,  CLONE_NEWPID, CLONE_NEWNET,
					       CLONE_NEWCGROUP};

int sbx_seccomp_compile(bool deny_unix_sockets, bool zygote)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int fd = -1, rc;

	if (!ctx) {
		NEMO_ERR(SBX_LOG, "seccomp_init failed");
		return -ENOMEM;
	}
	for (size_t i = 0; i < sizeof(denied_syscalls) / sizeof(denied_syscalls[0]); i++) {
		int nr = seccomp_syscall_resolve_name(denied_syscalls[i]);

		/* a zygote's fork mounts its own /proc, /tmp and /dev/shm in its namespace */
		if (zygote && !strcmp(denied_syscalls[i], "mount"))
			continue;
		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (rc)
			goto fail;
	}
	/*
	 * clone3 passes its flags in memory that seccomp cannot read, so it cannot be filtered
	 * for namespace flags. ENOSYS makes glibc fall back to clone, whose flags we can check:
	 * threads and fork keep working, new namespaces do not.
	 */
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	for (size_t i = 0; !rc && i < sizeof(clone_ns_flags) / sizeof(clone_ns_flags[0]); i++)
		if (!zygote || (clone_ns_flags[i] & (CLONE_NEWNET | CLONE_NEWCGROUP)))
			rc = seccomp_rule_add(
				ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				SCMP_A0(SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]));
	/* pushing input into another terminal */
	if (!rc)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
				      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI));
	/* in a shared network namespace, the abstract unix socket namespace is shared too */
	if (!rc && deny_unix_sockets)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
				      SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
	if (rc)
		goto fail;
	fd = memfd_create("nemo-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		rc = -errno;
		NEMO_ERR(SBX_LOG, "memfd_create: %s", strerror(-rc));
		goto out;
	}
	rc = seccomp_export_bpf(ctx, fd);
	if (rc)
		goto fail;
	/* every sandbox inherits this fd: nobody may change the program under the others */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)) {
		rc = -errno;
		NEMO_ERR(SBX_LOG, "seal seccomp memfd: %s", strerror(-rc));
		goto out;
	}
	seccomp_release(ctx);
	return fd;
fail:
	NEMO_ERR(SBX_LOG, "building the seccomp filter: %s", strerror(-rc));
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return rc;
}

static void *make_netns(void *arg)
{
	int *fd = arg;

	/* only this thread enters the new namespace; it ends right after */
	if (unshare(CLONE_NEWNET)) {
		*fd = -errno;
		return NULL;
	}
	*fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		*fd = -errno;
	return NULL;
}

static int empty_netns(void)
{
	pthread_t t;
	int fd = -EINVAL;

	if (pthread_create(&t, NULL, make_netns, &fd))
		return -EAGAIN;
	pthread_join(t, NULL);
	if (fd < 0)
		NEMO_ERR(SBX_LOG, "creating the sandboxes' network namespace: %s", strerror(-fd));
	return fd;
}

static bool is_elf(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char magic[4];

	return fd >= 0 && read(fd, magic, 4) == 4 && memcmp(magic, "\177ELF", 4) == 0;
}

/* Resolve the interpreter once: symlinks followed, shims (scripts) refused. */
static int resolve_python(struct sbx_host *host, const char *want)
{
	const char *candidates[] = {want, "/usr/bin/python3.11", "/usr/bin/python3",
				    "/usr/local/bin/python3"};
	char real[PATH_MAX];

	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		if (!candidates[i] || !realpath(candidates[i], real) || !is_elf(real))
			continue;
		snprintf(host->python_path, sizeof(host->python_path), "%s", real);
		return 0;
	}
	/* python functions will fail at init with this named; others are unaffected */
	NEMO_WARN(SBX_LOG, "no python interpreter found; python functions cannot start");
	host->python_path[0] = '\0';
	return 0;
}

static int resolve_runtime(struct sbx_host *host, const char *want)
{
	char exe[PATH_MAX], dir[PATH_MAX];
	ssize_t n;

	if (want) {
		if (!realpath(want, dir))
			goto missing;
	} else {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n <= 0)
			return -errno;
		exe[n] = '\0';
		snprintf(dir, sizeof(dir), "%s/nemo-sbx-runtime", dirname(exe));
		if (access(dir, X_OK) && !realpath("build/bin/nemo-sbx-runtime", dir))
			goto missing;
	}
	if (access(dir, X_OK))
		goto missing;
	snprintf(host->runtime_path, sizeof(host->runtime_path), "%s", dir);
	snprintf(exe, sizeof(exe), "%s", dir);
	snprintf(host->shim_path, sizeof(host->shim_path), "%s/nemo-sbx-shim.py", dirname(exe));
	snprintf(host->zygote_lib_path, sizeof(host->zygote_lib_path), "%s/nemo-sbx-zygote.so",
		 exe);
	snprintf(host->pkt_lib_path, sizeof(host->pkt_lib_path), "%s/nemo-sbx-pkt.so", exe);
	return 0;
missing:
	NEMO_ERR(SBX_LOG, "runtime program %s not found (build it with make)",
		 want ? want : "nemo-sbx-runtime");
	return -ENOENT;
}

/* The host's top-level folders that hold programs and libraries, for the private root. */
static void scan_root_top(struct sbx_host *host)
{
	static const char *const names[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};

	host->n_root_top = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct sbx_root_entry *e = &host->root_top[host->n_root_top];
		char path[32];
		struct stat st;
		ssize_t n;

		snprintf(path, sizeof(path), "/%s", names[i]);
		if (lstat(path, &st) || host->n_root_top >= SBX_ROOT_TOP_MAX)
			continue;
		snprintf(e->name, sizeof(e->name), "%s", names[i]);
		if (S_ISLNK(st.st_mode)) {
			n = readlink(path, e->target, sizeof(e->target) - 1);
			if (n <= 0)
				continue;
			e->target[n] = '\0';
			e->link = true;
		} else if (S_ISDIR(st.st_mode)) {
			/* not merged into /usr: bound read-only as it is */
			snprintf(e->target, sizeof(e->target), "%s", path);
			e->link = false;
		} else {
			continue;
		}
		host->n_root_top++;
	}
}

/* The uid range: no overflow, no user or group of the system inside it. */
static int check_uid_range(uint32_t base, uint32_t count)
{
	const char *files[] = {"/etc/passwd", "/etc/group"};

	if (base == 0 || count == 0 || (uint64_t)base + count - 1 >= (uint64_t)UINT32_MAX ||
	    (uid_t)(base + count - 1) != (uint64_t)base + count - 1) {
		NEMO_ERR(SBX_LOG,
			 "sandbox uid range [%" PRIu32 ", %" PRIu32 " + %" PRIu32
			 ") is empty or overflows uid_t (largest uid %u)",
			 base, base, count, UINT32_MAX - 1);
		return -EINVAL;
	}
	for (int f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "re");

		if (!fp)
			continue;
		for (;;) {
			unsigned long id;
			const char *name;

			if (f == 0) {
				struct passwd *pw = fgetpwent(fp);

				if (!pw)
					break;
				id = pw->pw_uid;
				name = pw->pw_name;
			} else {
				struct group *gr = fgetgrent(fp);

				if (!gr)
					break;
				id = gr->gr_gid;
				name = gr->gr_name;
			}
			if (id >= base && id - base < count) {
				NEMO_ERR(SBX_LOG,
					 "sandbox uid range [%" PRIu32 ", %" PRIu64
					 ") collides with %s '%s' (id %lu) in %s: move "
					 "sandbox.uid_base",
					 base, (uint64_t)base + count, f ? "group" : "user", name,
					 id, files[f]);
				fclose(fp);
				return -EEXIST;
			}
		}
		fclose(fp);
	}
	return 0;
}

int sbx_host_function_uid(struct sbx_host *host, const char *name, uid_t *uid)
{
	uint32_t h = 2166136261u, slot;
	int rc = 0;

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u; /* FNV-1a */
	pthread_mutex_lock(&host->uid_lock);
	for (uint32_t i = 0; i < host->n_uids; i++) {
		if (!strcmp(host->uids[i].name, name)) {
			*uid = host->uids[i].uid;
			goto out;
		}
	}
	if (host->n_uids >= host->uid_count) {
		NEMO_ERR(SBX_LOG,
			 "%s: no uid left: all %" PRIu32 " of the range [%u, %" PRIu64
			 ") belong to other functions (raise sandbox.uid_count)",
			 name, host->uid_count, (unsigned)host->uid_base,
			 (uint64_t)host->uid_base + host->uid_count);
		rc = -ENOSPC;
		goto out;
	}
	if (host->n_uids == host->cap_uids) {
		uint32_t cap = host->cap_uids ? host->cap_uids * 2 : 64;
		struct sbx_uid_entry *n = realloc(host->uids, cap * sizeof(*n));

		if (!n) {
			rc = -ENOMEM;
			goto out;
		}
		host->uids = n;
		host->cap_uids = cap;
	}
	/* linear probing past the uids taken; the table is small (functions, not instances) */
	for (slot = h % host->uid_count;; slot = (slot + 1) % host->uid_count) {
		uint32_t i;

		for (i = 0; i < host->n_uids; i++)
			if (host->uids[i].uid == host->uid_base + slot)
				break;
		if (i == host->n_uids)
			break;
	}
	snprintf(host->uids[host->n_uids].name, SBX_NAME_MAX, "%s", name);
	host->uids[host->n_uids].uid = host->uid_base + slot;
	*uid = host->uids[host->n_uids++].uid;
out:
	pthread_mutex_unlock(&host->uid_lock);
	return rc;
}

/*
 * v1 only: a frozen task obeys no signal until it is thawed, not even the SIGKILL its
 * PR_SET_PDEATHSIG queues when we die, so a process that outlives us thaws our sandboxes
 * then (sandbox/runtime/watchdog.c). The v2 freezer lets SIGKILL through: none is needed.
 * The watchdog is started in a session of its own, with every signal at its default and
 * none blocked, no environment and only fd 0 (/dev/null), 1 (its ready pipe) and 2 ours.
 */
int sbx_watchdog_start(struct sbx_host *host)
{
	char pid[16], dir[SBX_CG_PATH],
		*argv[] = {"nemo-sbx-runtime", WATCHDOG_ARG, pid, dir, NULL};
	char *envp[] = {NULL}, ready = 0;
	posix_spawn_file_actions_t fa;
	struct pollfd p = {.events = POLLIN};
	posix_spawnattr_t attr;
	sigset_t none, all;
	int pfd[2], rc;

	if (host->cg != &sbx_cgroup_v1_ops)
		return 0;
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	snprintf(dir, sizeof(dir), "%s/freezer/%s", host->v1_mount, host->cgroup_root);
	if (pipe2(pfd, O_CLOEXEC)) {
		rc = -errno;
		NEMO_ERR(SBX_LOG, "watchdog: pipe: %s", strerror(-rc));
		return rc;
	}
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
						POSIX_SPAWN_SETSID);
	rc = -posix_spawn(&host->watchdog_pid, host->runtime_path, &fa, &attr, argv, envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc) {
		host->watchdog_pid = -1;
		NEMO_ERR(SBX_LOG, "watchdog: cannot start %s: %s", host->runtime_path,
			 strerror(-rc));
		close(pfd[0]);
		return rc;
	}
	p.fd = pfd[0];
	if (poll(&p, 1, 5000) != 1 || read(pfd[0], &ready, 1) != 1 || ready != WATCHDOG_READY) {
		NEMO_ERR(SBX_LOG,
			 "watchdog %d did not report ready: frozen sandboxes would outlive "
			 "a killed nemod",
			 (int)host->watchdog_pid);
		close(pfd[0]);
		sbx_watchdog_stop(host);
		return -ECHILD;
	}
	close(pfd[0]);
	NEMO_INFO(SBX_LOG, "host: watchdog %d thaws and kills what %s holds if this process dies",
		  (int)host->watchdog_pid, dir);
	return 0;
}

void sbx_watchdog_stop(struct sbx_host *host)
{
	if (host->watchdog_pid <= 0)
		return;
	kill(host->watchdog_pid, SIGKILL);
	waitpid(host->watchdog_pid, NULL, 0);
	host->watchdog_pid = -1;
}

/* The backend: asked for, or the one detection's answer; either way said at start, with why. */
static int pick_backend(struct sbx_host *host, int version)
{
	char why[128];
	int detected = sbx_cgroup_detect(why, sizeof(why));

	snprintf(host->v1_mount, sizeof(host->v1_mount), "/sys/fs/cgroup");
	snprintf(host->v2_mount, sizeof(host->v2_mount), "%s",
		 detected == SBX_CGROUP_V2 && access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0
			 ? "/sys/fs/cgroup"
			 : "/sys/fs/cgroup/unified");
	if (version == SBX_CGROUP_AUTO) {
		if (detected < 0) {
			NEMO_ERR(SBX_LOG, "no usable cgroup hierarchy: %s", why);
			return detected;
		}
		version = detected;
		snprintf(host->cgroup_why, sizeof(host->cgroup_why), "detected: %s", why);
	} else if (version == SBX_CGROUP_V1 || version == SBX_CGROUP_V2) {
		snprintf(host->cgroup_why, sizeof(host->cgroup_why),
			 "asked for by the configuration");
	} else {
		NEMO_ERR(SBX_LOG, "cgroup version %d: not one of 0 (auto), 1, 2", version);
		return -EINVAL;
	}
	host->cg = version == SBX_CGROUP_V2 ? &sbx_cgroup_v2_ops : &sbx_cgroup_v1_ops;
	if (version == SBX_CGROUP_V1 && access("/sys/fs/cgroup/memory/cgroup.procs", F_OK)) {
		NEMO_ERR(SBX_LOG, "cgroup v1 requested but /sys/fs/cgroup/memory is not mounted");
		return -ENOENT;
	}
	return 0;
}

struct sbx_host *sbx_host_new(const struct sbx_host_config *cfg)
{
	struct sbx_host_config defaults = {0};
	struct sbx_host *host;
	int rc;

	if (!cfg)
		cfg = &defaults;
	host = calloc(1, sizeof(*host));
	if (!host)
		return NULL;
	host->seccomp_fd = -1;
	host->zygote_seccomp_fd = -1;
	host->netns_fd = -1;
	host->root_template_fd = -1;
	pthread_mutex_init(&host->lock, NULL);
	pthread_mutex_init(&host->acct_lock, NULL);
	snprintf(host->cgroup_root, sizeof(host->cgroup_root), "%s",
		 cfg->cgroup_root ? cfg->cgroup_root : "nemo");
	host->n_cores = cfg->n_cores > 0 ? cfg->n_cores : (int)sysconf(_SC_NPROCESSORS_ONLN);
	host->uid_base = cfg->uid_base ? cfg->uid_base : 200000;
	host->uid_count = cfg->uid_count ? cfg->uid_count : 65536;
	pthread_mutex_init(&host->uid_lock, NULL);
	host->netns_per_sandbox = cfg->netns_per_sandbox;
	host->zygote_host_attach = cfg->zygote_host_attach;
	host->frozen_wait_ns =
		(uint64_t)(cfg->frozen_wait_ms ? cfg->frozen_wait_ms : 5000) * 1000000ull;
	host->watchdog_pid = -1;
	if (strchr(host->cgroup_root, '/') || !host->cgroup_root[0] ||
	    strlen(cfg->cgroup_root ? cfg->cgroup_root : "") >= 64) {
		NEMO_ERR(SBX_LOG, "cgroup root '%s' must be one directory name under 64 characters",
			 host->cgroup_root);
		rc = -EINVAL;
		goto fail;
	}
	rc = check_uid_range(host->uid_base, host->uid_count);
	if (rc)
		goto fail;
	scan_root_top(host);
	rc = resolve_runtime(host, cfg->runtime_path);
	if (rc)
		goto fail;
	resolve_python(host, cfg->python_path);
	rc = pick_backend(host, cfg->cgroup_version);
	if (rc)
		goto fail;
	rc = host->cg->host_init(host);
	rc = rc ? rc : sbx_cgroup_acct_init(host);
	if (rc)
		goto fail_cg;
	host->seccomp_fd = sbx_seccomp_compile(!host->netns_per_sandbox, false);
	if (host->seccomp_fd < 0) {
		rc = host->seccomp_fd;
		goto fail_cg;
	}
	host->zygote_seccomp_fd = sbx_seccomp_compile(!host->netns_per_sandbox, true);
	if (host->zygote_seccomp_fd < 0) {
		rc = host->zygote_seccomp_fd;
		close(host->seccomp_fd);
		goto fail_cg;
	}
	if (!host->netns_per_sandbox) {
		host->netns_fd = empty_netns();
		if (host->netns_fd < 0) {
			rc = host->netns_fd;
			goto fail_seccomp;
		}
	}
	host->root_template_fd = sbx_root_template_new(host);
	if (host->root_template_fd < 0) {
		rc = host->root_template_fd;
		goto fail_netns;
	}
	rc = sbx_watchdog_start(host);
	if (rc)
		goto fail_template;
	rc = sbx_launcher_start(host);
	if (rc)
		goto fail_watchdog;
	NEMO_INFO(SBX_LOG, "host: cgroup %s (%s), tree %s/%s, %d cores", host->cg->name,
		  host->cgroup_why,
		  host->cg == &sbx_cgroup_v2_ops ? host->v2_base : "/sys/fs/cgroup/<controller>",
		  host->cgroup_root, host->n_cores);
	NEMO_INFO(SBX_LOG, "host: runtime %s, python %s, netns %s, function uids [%u, %" PRIu64 ")",
		  host->runtime_path, host->python_path[0] ? host->python_path : "(none)",
		  host->netns_per_sandbox ? "per sandbox" : "shared empty",
		  (unsigned)host->uid_base, (uint64_t)host->uid_base + host->uid_count);
	return host;
fail_watchdog:
	sbx_watchdog_stop(host);
fail_template:
	close(host->root_template_fd);
fail_netns:
	if (host->netns_fd >= 0)
		close(host->netns_fd);
fail_seccomp:
	close(host->seccomp_fd);
	close(host->zygote_seccomp_fd);
fail_cg:
	host->cg->host_fini(host);
fail:
	free(host->acct);
	pthread_mutex_destroy(&host->acct_lock);
	pthread_mutex_destroy(&host->lock);
	free(host->uids);
	pthread_mutex_destroy(&host->uid_lock);
	free(host);
	errno = -rc;
	return NULL;
}

void sbx_host_destroy(struct sbx_host *host)
{
	if (!host)
		return;
	for (;;) {
		struct sbx_sandbox *sb;

		pthread_mutex_lock(&host->lock);
		sb = host->sandboxes;
		pthread_mutex_unlock(&host->lock);
		if (!sb)
			break;
		sbx_destroy(sb);
	}
	sbx_launcher_stop(host);
	/* nothing of ours is left for it to thaw */
	sbx_watchdog_stop(host);
	host->cg->host_fini(host);
	if (host->seccomp_fd >= 0)
		close(host->seccomp_fd);
	if (host->zygote_seccomp_fd >= 0)
		close(host->zygote_seccomp_fd);
	if (host->netns_fd >= 0)
		close(host->netns_fd);
	if (host->root_template_fd >= 0)
		close(host->root_template_fd);
	free(host->acct);
	pthread_mutex_destroy(&host->acct_lock);
	pthread_mutex_destroy(&host->lock);
	free(host->uids);
	pthread_mutex_destroy(&host->uid_lock);
	free(host);
}

const char *sbx_host_cgroup_backend(const struct sbx_host *host)
{
	return host->cg->name;
}

int sbx_host_n_cores(const struct sbx_host *host)
{
	return host->n_cores;
}

const char *sbx_host_python(const struct sbx_host *host)
{
	return host->python_path;
}

int sbx_host_n_sandboxes(struct sbx_host *host)
{
	int n;

	pthread_mutex_lock(&host->lock);
	n = host->n_sandboxes;
	pthread_mutex_unlock(&host->lock);
	return n;
}

void sbx_host_bench_host_root(struct sbx_host *host, bool on)
{
	if (on)
		NEMO_WARN(SBX_LOG, "host: sandboxes see the host's / read-only, no private root "
				   "(bench-sandbox's baseline; never for functions of tenants)");
	host->bench_host_root = on;
}
