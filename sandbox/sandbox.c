/* sandbox.c - one sandbox: fork into namespaces and cgroup, load code, invoke, freeze, move, reap. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nemo/chain.h"
#include "nemo/clock.h"
#include "nemo/frame.h"
#include "nemo/log.h"
#include "runtime/packet.h"
#include "runtime/zygote.h"
#include "sandbox_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
/* the v1 child runs instrumented code on a buffer of our stack and never returns from it:
 * the shadow of its frames stays poisoned under the launcher's later frames */
#define child_stack_release(p, n) __asan_unpoison_memory_region(p, n)
#else
#define child_stack_release(p, n) ((void)(p), (void)(n))
#endif

#define INIT_TIMEOUT_MIN_MS 10000 /* an interpreter may take longer to load than to answer */
#define FROZEN_RECHECK_MS   10	  /* a paused invocation looks for the thaw this often */

/* One read-only bind mount of the private root: a host path and where it goes in the root. */
struct root_bind {
	char src[SBX_PATH_MAX];
	char dst[SBX_PATH_MAX]; /* relative to the new root */
	bool dir;
	int fd; /* the child's detached copy of src (open_tree) */
};

#define ROOT_BINDS_MAX (SBX_ROOT_TOP_MAX + 5) /* + usr, runtime, shim, two libraries */

/* Everything the child needs, prepared by the parent: the child shares its memory (CLONE_VM)
 * and must not allocate, lock or format. */
struct launch {
	const struct sbx_cgroup *cg;
	const struct sbx_host *host;
	int sock;
	int seccomp_fd;
	/* fds the runtime gets from 5 on: a zygote's filter, or a packet instance's lease */
	int n_keep;
	int keep[PKT_N_FDS];
	int netns_fd;
	const char *runtime; /* the path inside the private root */
	char *const *argv;
	char *const *envp;
	const char *hostname;
	char tmpfs_opts[64];
	bool host_root;	 /* bench only: no private root, the host's / read-only */
	int template_fd; /* the private root's template: its mount namespace */
	int n_binds;
	struct root_bind bind[ROOT_BINDS_MAX];
	/* written by the child when a step fails (v2: through errpipe, memory is not shared) */
	struct {
		int err;
		const char *step;
	} fail;
	int errpipe;
};

/* Where the private root is assembled before pivot_root: a host folder that surely exists. */
#define SBX_ROOT_MNT "/tmp"

/* mkdir -p, relative to the current directory (child side: no allocation). */
static int mkdir_parents(const char *path, bool last)
{
	char buf[SBX_PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return last && mkdir(buf, 0755) && errno != EEXIST ? -1 : 0;
}

static int child_fail(struct launch *l, const char *step)
{
	l->fail.err = errno;
	l->fail.step = step;
	/* the same addresses hold the same strings in a copy of our address space */
	if (l->errpipe >= 0 && write(l->errpipe, &l->fail, sizeof(l->fail)) < 0)
		_exit(126);
	_exit(127);
}

/* The device nodes a runtime needs, made in the private /dev. */
static const struct {
	const char *name;
	unsigned major, minor;
} root_devs[] = {{"dev/null", 1, 3},
		 {"dev/zero", 1, 5},
		 {"dev/full", 1, 7},
		 {"dev/random", 1, 8},
		 {"dev/urandom", 1, 9}};

static const char *const root_dev_links[][2] = {{"/proc/self/fd", "dev/fd"},
						{"/proc/self/fd/0", "dev/stdin"},
						{"/proc/self/fd/1", "dev/stdout"},
						{"/proc/self/fd/2", "dev/stderr"}};

/* A step of the template's build failed: say which, with errno, to its caller. */
static int root_fail(struct launch *l, const char *step)
{
	l->fail.err = errno;
	l->fail.step = step;
	return -1;
}

/*
 * Assemble the private root's template on a tmpfs at SBX_ROOT_MNT and pivot into it: the
 * binds (taken from the host's tree before the tmpfs covers anything), the host's top-level
 * symlinks (bin -> usr/bin), /dev with a few nodes, mount points for /proc, /tmp, /dev/shm
 * and /code. Runs in a mount namespace of its own (template_main). Returns 0, or -1 with
 * l->fail saying which step failed.
 */
static int build_root(struct launch *l)
{
	struct mount_attr ro = {.attr_set =
					MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
	struct mount_attr ro_root = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID};
	const struct sbx_host *host = l->host;

	for (int i = 0; i < l->n_binds; i++) {
		l->bind[i].fd = (int)syscall(SYS_open_tree, AT_FDCWD, l->bind[i].src,
					     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (l->bind[i].fd < 0)
			return root_fail(l, l->bind[i].src);
		if (syscall(SYS_mount_setattr, l->bind[i].fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &ro,
			    sizeof(ro)))
			return root_fail(l, "make a bind of the private root read-only");
	}
	if (mount("tmpfs", SBX_ROOT_MNT, "tmpfs", MS_NOSUID, "size=64k,nr_inodes=256,mode=0755"))
		return root_fail(l, "mount the private root");
	if (chdir(SBX_ROOT_MNT))
		return root_fail(l, "enter the private root");
	umask(0);
	for (int i = 0; i < l->n_binds; i++) {
		const char *dst = l->bind[i].dst;

		if (mkdir_parents(dst, l->bind[i].dir))
			return root_fail(l, dst);
		if (!l->bind[i].dir) {
			int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);

			if (fd < 0)
				return root_fail(l, dst);
			close(fd);
		}
		if (syscall(SYS_move_mount, l->bind[i].fd, "", AT_FDCWD, dst,
			    MOVE_MOUNT_F_EMPTY_PATH))
			return root_fail(l, "bind into the private root");
		close(l->bind[i].fd);
		l->bind[i].fd = -1;
	}
	for (int i = 0; i < host->n_root_top; i++)
		if (host->root_top[i].link &&
		    symlink(host->root_top[i].target, host->root_top[i].name))
			return root_fail(l, host->root_top[i].name);
	if (mkdir("proc", 0555) || mkdir("tmp", 01777) || mkdir("dev", 0755) ||
	    mkdir("dev/shm", 01777) || mkdir("code", 0755))
		return root_fail(l, "make the private root's folders");
	for (size_t i = 0; i < sizeof(root_devs) / sizeof(root_devs[0]); i++)
		if (mknod(root_devs[i].name, S_IFCHR | 0666,
			  makedev(root_devs[i].major, root_devs[i].minor)))
			return root_fail(l, root_devs[i].name);
	for (size_t i = 0; i < sizeof(root_dev_links) / sizeof(root_dev_links[0]); i++)
		if (symlink(root_dev_links[i][0], root_dev_links[i][1]))
			return root_fail(l, root_dev_links[i][1]);
	/* the old root goes under the new one, then away */
	if (syscall(SYS_pivot_root, ".", "."))
		return root_fail(l, "pivot_root");
	if (umount2(".", MNT_DETACH))
		return root_fail(l, "detach the host's root");
	if (chdir("/"))
		return root_fail(l, "chdir /");
	if (syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, &ro_root, sizeof(ro_root)))
		return root_fail(l, "make the private root read-only");
	return 0;
}

/*
 * The child's root: a copy of the host's template (setns into it, then a namespace of its
 * own), and the function's code alone, on a tmpfs of its own at /code. The code's bind is
 * taken from the host's tree before the setns. Child side: raw syscalls only.
 */
static void enter_root(struct launch *l)
{
	struct mount_attr ro = {.attr_set =
					MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
	struct root_bind *code = l->n_binds ? &l->bind[0] : NULL;

	if (code) {
		code->fd = (int)syscall(SYS_open_tree, AT_FDCWD, code->src,
					OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (code->fd < 0)
			child_fail(l, code->src);
		if (syscall(SYS_mount_setattr, code->fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &ro,
			    sizeof(ro)))
			child_fail(l, "make the code's bind read-only");
	}
	/* root and cwd become the template's root */
	if (setns(l->template_fd, CLONE_NEWNS))
		child_fail(l, "enter the private root's template");
	if (unshare(CLONE_NEWNS))
		child_fail(l, "a copy of the private root");
	umask(0);
	if (mount("tmpfs", "code", "tmpfs", MS_NOSUID | MS_NODEV, "size=16k,nr_inodes=8,mode=0755"))
		child_fail(l, "mount /code");
	if (code) {
		int fd = code->dir ? mkdir(code->dst, 0755)
				   : open(code->dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);

		if (fd < 0)
			child_fail(l, code->dst);
		if (!code->dir)
			close(fd);
		if (syscall(SYS_move_mount, code->fd, "", AT_FDCWD, code->dst,
			    MOVE_MOUNT_F_EMPTY_PATH))
			child_fail(l, "bind the code into the private root");
		close(code->fd);
	}
	if (syscall(SYS_mount_setattr, AT_FDCWD, "code", 0, &ro, sizeof(ro)))
		child_fail(l, "make /code read-only");
}

/*
 * The child, PID 1 of its new PID namespace, still root: join the cgroups (v1: before doing
 * anything else, so every page and process it makes is charged to the sandbox), leave
 * nemod's session and process group, enter the shared empty netns, build the private root,
 * then exec the runtime, which drops privileges. Raw syscalls only.
 */
static int launch_child(void *arg)
{
	struct launch *l = arg;
	int fd, sock, filter, keep[PKT_N_FDS];

	for (int i = 0; i < l->cg->n_join; i++) {
		fd = open(l->cg->join[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			child_fail(l, l->cg->join[i]);
		close(fd);
	}
	/* nemod's launcher thread is our parent and lives as long as the host: its death
	 * (nemod killed) kills us, and with us the whole PID namespace */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0))
		child_fail(l, "PR_SET_PDEATHSIG");
	/* our own session and process group: kill(0, ...) reaches only this sandbox */
	if (setsid() < 0)
		child_fail(l, "setsid");
	if (l->netns_fd >= 0 && setns(l->netns_fd, CLONE_NEWNET))
		child_fail(l, "setns net");
	if (sethostname(l->hostname, strlen(l->hostname)))
		child_fail(l, "sethostname");
	if (l->host_root) {
		/* bench-only (sbx_host_bench_host_root): the host's / read-only in a copy of
		 * the host's mount namespace (CLONE_NEWNS), as before issue 13, for
		 * bench-sandbox's side-by-side figure */
		struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID};

		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
			child_fail(l, "make / private");
		if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof(ro)))
			child_fail(l, "remount / read-only");
	} else {
		enter_root(l);
	}
	/* a proc for the new PID namespace: the host's would show every host process */
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		child_fail(l, "mount /proc");
	/* tmpfs pages are charged to the memory cgroup: the limit bounds /tmp too */
	if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, l->tmpfs_opts))
		child_fail(l, "mount /tmp");
	if (mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  "size=1m,mode=1777"))
		child_fail(l, "mount /dev/shm");
	fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		child_fail(l, "open /dev/null");
	/* the sources may sit on 0-4 themselves: lift them out of the way first (F_DUPFD
	 * copies have no close-on-exec) */
	sock = fcntl(l->sock, F_DUPFD, 10);
	filter = fcntl(l->seccomp_fd, F_DUPFD, 10);
	if (sock < 0 || filter < 0)
		child_fail(l, "dup");
	for (int i = 0; i < l->n_keep; i++) {
		keep[i] = fcntl(l->keep[i], F_DUPFD, 10);
		if (keep[i] < 0)
			child_fail(l, "dup");
	}
	if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || dup2(sock, 3) < 0 ||
	    dup2(filter, 4) < 0)
		child_fail(l, "dup2");
	for (int i = 0; i < l->n_keep; i++)
		if (dup2(keep[i], 5 + i) < 0)
			child_fail(l, "dup2");
	/* nothing else of nemod's: another instance's lease above all */
	if (syscall(SYS_close_range, 5 + l->n_keep, ~0u, 0))
		child_fail(l, "close_range");
	execve(l->runtime, l->argv, l->envp);
	child_fail(l, "exec runtime");
	return 127;
}

/* Add a bind of the private root (parent side). */
static int root_bind(struct launch *l, const char *src, const char *dst, bool dir)
{
	struct root_bind *b = &l->bind[l->n_binds];

	if (l->n_binds >= ROOT_BINDS_MAX ||
	    (size_t)snprintf(b->src, sizeof(b->src), "%s", src) >= sizeof(b->src) ||
	    (size_t)snprintf(b->dst, sizeof(b->dst), "%s", dst) >= sizeof(b->dst))
		return -ENAMETOOLONG;
	b->dir = dir;
	b->fd = -1;
	l->n_binds++;
	return 0;
}

/*
 * The private root's template, the same for every sandbox of the host: /usr and the host's
 * other top-level folders that hold programs and libraries (bin, lib, ... when they are not
 * symlinks into /usr), the runtime, the python shim and the zygotes' library under /.nemo
 * (nemo's own files, no tenant's: the shim and library only where they were built).
 */
static int template_plan(struct launch *l, const struct sbx_host *host)
{
	int rc = root_bind(l, "/usr", "usr", true);

	for (int i = 0; !rc && i < host->n_root_top; i++)
		if (!host->root_top[i].link)
			rc = root_bind(l, host->root_top[i].target, host->root_top[i].name, true);
	rc = rc ? rc : root_bind(l, host->runtime_path, SBX_ROOT_RUNTIME + 1, false);
	if (!rc && !access(host->shim_path, F_OK))
		rc = root_bind(l, host->shim_path, SBX_ROOT_SHIM + 1, false);
	if (!rc && !access(host->zygote_lib_path, F_OK))
		rc = root_bind(l, host->zygote_lib_path, SBX_ROOT_ZYGOTE_LIB + 1, false);
	if (!rc && !access(host->pkt_lib_path, F_OK))
		rc = root_bind(l, host->pkt_lib_path, PKT_SHIM_LIB + 1, false);
	return rc;
}

/* What one sandbox adds to the template: the function's code, alone, at /code/<name>. */
static int root_plan(struct launch *l, const struct sbx_spec *spec, char *code_in, size_t code_len)
{
	const char *base = strrchr(spec->code, '/');
	char dst[SBX_PATH_MAX];
	struct stat st;

	base = base ? base + 1 : spec->code;
	if (!base[0] || !strcmp(base, ".") || !strcmp(base, ".."))
		return -EINVAL;
	snprintf(dst, sizeof(dst), "code/%s", base);
	snprintf(code_in, code_len, "/%s", dst);
	/* code that is not there: the runtime says so at init, as for code that does not load */
	if (stat(spec->code, &st))
		return errno == ENOENT ? 0 : -errno;
	return root_bind(l, spec->code, dst, S_ISDIR(st.st_mode));
}

/* The template is built once, on a thread of its own in a mount namespace of its own. */
static void *template_main(void *arg)
{
	struct launch *l = arg;
	int fd = -1;

	/* this thread only: its own root, cwd and umask (fs), and mount namespace */
	if (unshare(CLONE_FS | CLONE_NEWNS)) {
		root_fail(l, "unshare a mount namespace");
		return NULL;
	}
	fd = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		root_fail(l, "open the template's namespace");
		return NULL;
	}
	/* nothing mounted here reaches the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		root_fail(l, "make / private");
		close(fd);
		return NULL;
	}
	if (build_root(l)) {
		close(fd);
		return NULL;
	}
	l->template_fd = fd;
	return NULL;
}

int sbx_root_template_new(struct sbx_host *host)
{
	struct launch *l = calloc(1, sizeof(*l));
	pthread_t t;
	int rc;

	if (!l)
		return -ENOMEM;
	l->host = host;
	l->template_fd = -1;
	rc = template_plan(l, host);
	if (rc) {
		NEMO_ERR(SBX_LOG, "host: private root: %s", strerror(-rc));
		free(l);
		return rc;
	}
	rc = pthread_create(&t, NULL, template_main, l);
	if (rc) {
		free(l);
		return -rc;
	}
	pthread_join(t, NULL);
	for (int i = 0; i < l->n_binds; i++)
		if (l->bind[i].fd >= 0)
			close(l->bind[i].fd);
	rc = l->template_fd;
	if (rc < 0) {
		rc = -(l->fail.err ? l->fail.err : EINVAL);
		NEMO_ERR(SBX_LOG, "host: the private root's template failed at %s: %s",
			 l->fail.step ? l->fail.step : "?", strerror(-rc));
	}
	free(l);
	return rc;
}

/*
 * Bench only (sbx_host_bench_host_root): the code at its host path, under the host's / made
 * read-only. A private /tmp would hide what lives under the host's /tmp: refused.
 */
static int host_root_plan(const struct sbx_host *host, const struct sbx_spec *spec, bool zygote,
			  char *code_in, size_t code_len)
{
	static const char tmp[] = "/tmp/";

	if (zygote || !strncmp(spec->code, tmp, strlen(tmp)) ||
	    !strncmp(host->runtime_path, tmp, strlen(tmp))) {
		NEMO_ERR(SBX_LOG,
			 "%s: the bench's host-root sandboxes take no zygote and nothing "
			 "under /tmp",
			 spec->name);
		return -EINVAL;
	}
	snprintf(code_in, code_len, "%s", spec->code);
	return 0;
}

static void host_link(struct sbx_host *host, struct sbx_sandbox *sb)
{
	pthread_mutex_lock(&host->lock);
	sb->linked = true;
	sb->id = ++host->next_id;
	sb->host_next = host->sandboxes;
	if (host->sandboxes)
		host->sandboxes->host_prev = sb;
	host->sandboxes = sb;
	host->n_sandboxes++;
	pthread_mutex_unlock(&host->lock);
}

/* Under the host's lock. */
static void host_unlink_locked(struct sbx_host *host, struct sbx_sandbox *sb)
{
	if (!sb->linked)
		return;
	sb->linked = false;
	if (sb->host_prev)
		sb->host_prev->host_next = sb->host_next;
	else
		host->sandboxes = sb->host_next;
	if (sb->host_next)
		sb->host_next->host_prev = sb->host_prev;
	sb->host_next = sb->host_prev = NULL;
	host->n_sandboxes--;
}

static void host_unlink(struct sbx_host *host, struct sbx_sandbox *sb)
{
	pthread_mutex_lock(&host->lock);
	host_unlink_locked(host, sb);
	pthread_mutex_unlock(&host->lock);
}

/* v2: clone3 straight into the cgroup. No CLONE_VM (clone3 has no fn/stack pair that C can
 * use safely), but CLONE_VFORK keeps the parent's view the same as on v1. */
static pid_t clone_into_cgroup(struct launch *l, uint64_t flags, int *pidfd)
{
	struct clone_args args = {
		.flags = flags | CLONE_INTO_CGROUP | CLONE_PIDFD | CLONE_VFORK,
		.pidfd = (uint64_t)(uintptr_t)pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = (uint64_t)l->cg->dirfd,
	};
	long pid = syscall(SYS_clone3, &args, sizeof(args));

	if (pid == 0) {
		launch_child(l);
		_exit(127);
	}
	return (pid_t)pid;
}

/* One clone, done by the host's launcher thread for the thread that asked. */
struct launch_job {
	struct launch *l;
	uint64_t flags;
	pid_t pid;
	int pidfd;
	int err;
	bool done;
};

static void launch_run(struct launch_job *job)
{
	char stack[32768] __attribute__((aligned(16)));

	if (job->l->cg->dirfd >= 0)
		job->pid = clone_into_cgroup(job->l, job->flags, &job->pidfd);
	else
		job->pid = clone(launch_child, stack + sizeof(stack),
				 (int)job->flags | CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD,
				 job->l, &job->pidfd);
	job->err = errno;
	child_stack_release(stack, sizeof(stack));
}

/*
 * The launcher thread: the parent of every sandbox. PR_SET_PDEATHSIG fires when the thread
 * that made the child ends, so the clones happen here, on a thread that lives as long as the
 * host, and not on a caller's thread that may end first. Every signal stays blocked here: no
 * handler may run in a child that shares our memory.
 */
static void *launcher_main(void *arg)
{
	struct sbx_host *host = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	pthread_mutex_lock(&host->launch_lock);
	for (;;) {
		while (!host->launch_job && !host->launch_stop)
			pthread_cond_wait(&host->launch_cond, &host->launch_lock);
		if (host->launch_stop)
			break;
		launch_run(host->launch_job);
		host->launch_job->done = true;
		host->launch_job = NULL;
		pthread_cond_broadcast(&host->launch_cond);
	}
	pthread_mutex_unlock(&host->launch_lock);
	return NULL;
}

int sbx_launcher_start(struct sbx_host *host)
{
	int rc;

	pthread_mutex_init(&host->launch_lock, NULL);
	pthread_cond_init(&host->launch_cond, NULL);
	rc = pthread_create(&host->launcher, NULL, launcher_main, host);
	if (rc) {
		NEMO_ERR(SBX_LOG, "host: launcher thread: %s", strerror(rc));
		return -rc;
	}
	host->launcher_running = true;
	return 0;
}

void sbx_launcher_stop(struct sbx_host *host)
{
	if (!host->launcher_running)
		return;
	pthread_mutex_lock(&host->launch_lock);
	host->launch_stop = true;
	pthread_cond_broadcast(&host->launch_cond);
	pthread_mutex_unlock(&host->launch_lock);
	pthread_join(host->launcher, NULL);
	host->launcher_running = false;
}

/* Hand the clone to the launcher thread and wait for it. Returns the pid or -1 with errno. */
static pid_t launch(struct sbx_host *host, struct launch *l, uint64_t flags, int *pidfd)
{
	struct launch_job job = {.l = l, .flags = flags, .pid = -1, .pidfd = -1};

	pthread_mutex_lock(&host->launch_lock);
	while (host->launch_job)
		pthread_cond_wait(&host->launch_cond, &host->launch_lock);
	/* the launcher clears it before it wakes us: `job` outlives its use */
	// cppcheck-suppress autoVariables
	host->launch_job = &job;
	pthread_cond_broadcast(&host->launch_cond);
	while (!job.done)
		pthread_cond_wait(&host->launch_cond, &host->launch_lock);
	pthread_mutex_unlock(&host->launch_lock);
	*pidfd = job.pidfd;
	errno = job.err;
	return job.pid;
}

/* A new sandbox's handle, on the host's list, nothing made yet. */
static struct sbx_sandbox *sandbox_alloc(struct sbx_host *host, const struct sbx_spec *spec)
{
	struct sbx_sandbox *sb = calloc(1, sizeof(*sb));

	if (!sb)
		return NULL;
	sb->host = host;
	sb->spec = *spec;
	pthread_mutex_init(&sb->lock, NULL);
	pthread_mutex_init(&sb->fork_lock, NULL);
	sb->pidfd = -1;
	sb->sock = -1;
	sb->status_fd = -1;
	sb->proc_cg_fd = -1;
	sb->cg.dirfd = -1;
	host_link(host, sb);
	return sb;
}

/*
 * A zygote's forks are born in its cgroup and written into their own a moment later: its pids
 * limit is the function's and room for this many forks on their way.
 */
#define ZYGOTE_PIDS_SLACK 16
/* the forks one zygote has alive at once */
#define ZYGOTE_FORKS_MAX ZYG_FORKS_MAX

/* A packet-mode instance's start (sbx_packet_start): the lease's fds, the loop's figures. */
struct packet_launch {
	int fds[PKT_N_FDS]; /* ring memfd, eventfd, lease: fds 5, 6, 7 in the sandbox */
	uint32_t batch, spin_us;
};

static struct sbx_sandbox *create_sandbox(struct sbx_host *host, const struct sbx_spec *spec,
					  int core, bool zygote, const struct packet_launch *pkt)
{
	char uid[16], gid[16], payload[16], mem[16], shim_env[SBX_PATH_MAX + 32], hostname[80];
	char batch[16], spin[16];
	char *argv[] = {SBX_ROOT_RUNTIME, uid, gid, payload, mem, NULL, NULL, NULL, NULL};
	struct sbx_spec cg_spec = *spec;
	char *envp[SBX_ENV_MAX + 4];
	uint64_t t0 = nemo_now_ns(), flags;
	struct launch l = {0};
	struct sbx_sandbox *sb;
	int socks[2], pidfd = -1, n_env = 0, rc;
	int errpipe[2] = {-1, -1};
	pid_t pid;

	sb = sandbox_alloc(host, spec);
	if (!sb)
		return NULL;
	sb->zygote = zygote;
	if (zygote)
		cg_spec.max_pids += ZYGOTE_PIDS_SLACK;
	rc = host->cg->sandbox_create(host, sb->id, core, &cg_spec, &sb->cg);
	if (rc)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks)) {
		rc = -errno;
		NEMO_ERR(SBX_LOG, "%s: socketpair: %s", spec->name, strerror(-rc));
		goto fail;
	}
	sb->sock = socks[0];
	rc = sbx_host_function_uid(host, spec->name, &sb->uid);
	if (!rc && host->bench_host_root)
		rc = host_root_plan(host, spec, zygote, sb->code_in, sizeof(sb->code_in));
	else if (!rc)
		rc = root_plan(&l, spec, sb->code_in, sizeof(sb->code_in));
	if (rc) {
		if (rc != -ENOSPC)
			NEMO_ERR(SBX_LOG, "%s: private root for %s: %s", spec->name, spec->code,
				 strerror(-rc));
		close(socks[1]);
		goto fail;
	}
	snprintf(uid, sizeof(uid), "%u", (unsigned)sb->uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)sb->uid);
	snprintf(payload, sizeof(payload), "%u", spec->max_payload_bytes);
	snprintf(mem, sizeof(mem), "%u", spec->memory_mb);
	snprintf(hostname, sizeof(hostname), "nemo-%.60s", spec->name);
	snprintf(shim_env, sizeof(shim_env), SBX_SHIM_ENV "=%s",
		 host->bench_host_root ? host->shim_path : SBX_ROOT_SHIM);
	envp[n_env++] = "PATH=/usr/local/bin:/usr/bin:/bin";
	envp[n_env++] = shim_env;
	for (uint32_t i = 0; i < spec->n_env && i < SBX_ENV_MAX; i++)
		envp[n_env++] = sb->spec.env[i];
	envp[n_env] = NULL;
	l.cg = &sb->cg;
	l.host = host;
	l.sock = socks[1];
	l.seccomp_fd = host->seccomp_fd;
	if (zygote) {
		argv[5] = "zygote";
		l.keep[l.n_keep++] = host->zygote_seccomp_fd;
	} else if (pkt) {
		snprintf(batch, sizeof(batch), "%u", pkt->batch);
		snprintf(spin, sizeof(spin), "%u", pkt->spin_us);
		argv[5] = PKT_ARG;
		argv[6] = batch;
		argv[7] = spin;
		for (int i = 0; i < PKT_N_FDS; i++)
			l.keep[l.n_keep++] = pkt->fds[i];
	}
	l.netns_fd = host->netns_fd;
	l.runtime = host->bench_host_root ? host->runtime_path : SBX_ROOT_RUNTIME;
	l.host_root = host->bench_host_root;
	l.template_fd = host->root_template_fd;
	l.argv = argv;
	l.envp = envp;
	l.hostname = hostname;
	l.errpipe = -1;
	if (sb->cg.dirfd >= 0) {
		if (pipe2(errpipe, O_CLOEXEC)) {
			rc = -errno;
			close(socks[1]);
			goto fail;
		}
		l.errpipe = errpipe[1];
	}
	snprintf(l.tmpfs_opts, sizeof(l.tmpfs_opts), "size=%um,mode=1777", spec->memory_mb);

	/* the private root's own mount namespace is made from the template (enter_root): a
	 * CLONE_NEWNS would copy the host's mounts only for them to be dropped at once */
	flags = CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
	if (host->bench_host_root)
		flags |= CLONE_NEWNS;
	if (host->netns_per_sandbox)
		flags |= CLONE_NEWNET;
	pid = launch(host, &l, flags, &pidfd);
	rc = -errno;
	close(socks[1]);
	if (errpipe[1] >= 0) {
		close(errpipe[1]);
		if (pid > 0 && read(errpipe[0], &l.fail, sizeof(l.fail)) != sizeof(l.fail))
			l.fail.step = NULL;
		close(errpipe[0]);
	}
	if (pid < 0) {
		NEMO_ERR(SBX_LOG, "%s: clone: %s", spec->name, strerror(-rc));
		goto fail;
	}
	sb->pid = pid;
	sb->pidfd = pidfd;
	if (l.fail.step) {
		rc = -l.fail.err;
		NEMO_ERR(SBX_LOG, "%s: sandbox setup failed at %s: %s", spec->name, l.fail.step,
			 strerror(l.fail.err));
		goto fail;
	}
	fcntl(sb->sock, F_SETFL, O_NONBLOCK);
	sb->state = SBX_STATE_CREATED;
	sb->create_ns = nemo_now_ns() - t0;
	return sb;
fail:
	sb->state = SBX_STATE_DEAD;
	sbx_destroy(sb);
	errno = -rc;
	return NULL;
}

struct sbx_sandbox *sbx_create(struct sbx_host *host, const struct sbx_spec *spec, int core)
{
	if (!host || core < 0 || core >= host->n_cores || !spec || !spec->code[0]) {
		errno = EINVAL;
		return NULL;
	}
	return create_sandbox(host, spec, core, false, NULL);
}

/*
 * A zygote's fork is not our child: the zygote, its parent, writes its wait status to the
 * pipe once it is gone (zygote.h). Returns true once it is known; without the zygote's word
 * (it was killed, and its forks with it) the fork died of SIGKILL.
 */
static bool reap_fork(struct sbx_sandbox *sb, bool block)
{
	struct pollfd p = {.fd = sb->pidfd, .events = POLLIN};
	int st;

	if (poll(&p, 1, block ? -1 : 0) != 1)
		return false;
	/* the zygote writes as soon as it has waited: a moment after the pidfd said so */
	p.fd = sb->status_fd;
	if (poll(&p, 1, 1000) == 1 && read(sb->status_fd, &st, sizeof(st)) == sizeof(st))
		sb->wait_status = st;
	else
		sb->wait_status = SIGKILL;
	sb->reaped = true;
	return true;
}

/* Reap the sandbox's init, waiting if `block`. Returns true once reaped. */
static bool reap(struct sbx_sandbox *sb, bool block)
{
	siginfo_t si = {0};

	if (sb->reaped)
		return true;
	if (sb->status_fd >= 0)
		return reap_fork(sb, block);
	if (waitid(P_PIDFD, (id_t)sb->pidfd, &si, WEXITED | (block ? 0 : WNOHANG)) < 0) {
		if (errno != ECHILD)
			return false;
		/* SIGCHLD ignored by the application: the kernel reaped it for us */
		sb->wait_status = 0;
		sb->reaped = true;
		return true;
	}
	if (si.si_pid == 0)
		return false;
	sb->wait_status = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status;
	sb->reaped = true;
	return true;
}

static void set_state(struct sbx_sandbox *sb, enum sbx_state state)
{
	pthread_mutex_lock(&sb->lock);
	sb->state = state;
	pthread_mutex_unlock(&sb->lock);
}

/* Under sb->lock: the freezer let go of the sandbox; its frozen time is banked. */
static void unfrozen_locked(struct sbx_sandbox *sb)
{
	sb->frozen_ns += nemo_now_ns() - sb->frozen_at;
	sb->frozen = false;
	if (sb->state == SBX_STATE_FROZEN)
		sb->state = SBX_STATE_READY;
}

/* Kill every process of the sandbox and reap its init: it is DEAD, and thawed. */
static void kill_sandbox(struct sbx_sandbox *sb)
{
	bool alive = !sb->reaped && sb->pidfd >= 0;
	/* a fork not known to be in its own cgroups yet (a ready fork parked, one whose start
	 * failed) is in its zygote's: frozen with it (v1), it dies only at the zygote's thaw or
	 * death, which nothing here may wait for */
	bool parked_frozen = alive && sb->parent && !sb->joined && sbx_frozen(sb->parent);

	/* killing init kills its whole PID namespace; the kernel waits for all of it. The
	 * cgroup's kill also reaches what init's death would leave for a moment */
	if (alive) {
		pidfd_send_signal(sb->pidfd, SIGKILL, NULL, 0);
		if (sb->cg.freezer[0])
			sb->host->cg->kill(&sb->cg);
	}
	pthread_mutex_lock(&sb->lock);
	/* a v1-frozen task cannot die until thawed */
	if (sb->frozen) {
		sb->host->cg->freeze(&sb->cg, false);
		unfrozen_locked(sb);
	}
	sb->state = SBX_STATE_DEAD;
	pthread_mutex_unlock(&sb->lock);
	if (parked_frozen) {
		sb->reaped = true;
		sb->wait_status = SIGKILL;
	} else if (alive) {
		reap(sb, true);
	}
}

/* The sandbox died: say why, in the words of enum sbx_status. */
static enum sbx_status classify_death(struct sbx_sandbox *sb, char *msg, size_t len)
{
	uint64_t kills = 0;
	int st = sb->wait_status;

	reap(sb, true);
	st = sb->wait_status;
	set_state(sb, SBX_STATE_DEAD);
	if (sb->host->cg->oom_kills(&sb->cg, &kills) == 0 && kills > sb->oom_base) {
		snprintf(msg, len, "out of memory: killed by the memory cgroup at %u MiB",
			 sb->spec.memory_mb);
		return SBX_ERR_OOM;
	}
	if (WIFSIGNALED(st)) {
		snprintf(msg, len, "function crashed: killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	} else if (WEXITSTATUS(st) > 128 && WEXITSTATUS(st) < 128 + 65) {
		/* the runtime (PID 1) reports a child's fatal signal as 128 + signal */
		snprintf(msg, len, "function crashed: killed by signal %d (%s)",
			 WEXITSTATUS(st) - 128, strsignal(WEXITSTATUS(st) - 128));
	} else {
		snprintf(msg, len, "function exited with status %d", WEXITSTATUS(st));
	}
	return SBX_ERR_CRASHED;
}

/* Time the sandbox spent frozen since `frozen_base` (sb->frozen_ns when an exchange began). */
static uint64_t paused_since(struct sbx_sandbox *sb, uint64_t frozen_base, uint64_t now,
			     bool *frozen)
{
	uint64_t paused;

	pthread_mutex_lock(&sb->lock);
	*frozen = sb->frozen;
	paused = sb->frozen_ns - frozen_base + (sb->frozen ? now - sb->frozen_at : 0);
	pthread_mutex_unlock(&sb->lock);
	return paused;
}

/*
 * Wait for `p` until the deadline, which stands still while the sandbox is frozen: time
 * spent frozen since the exchange began (`frozen_base`, sb->frozen_ns then) is added to it,
 * up to the host's frozen_wait. Returns 0 (poll returned, or was interrupted), -ETIMEDOUT,
 * -ETIME (frozen longer than frozen_wait) or the -errno of poll.
 */
static int wait_io(struct sbx_sandbox *sb, struct pollfd *p, nfds_t n, uint64_t deadline_ns,
		   uint64_t frozen_base)
{
	uint64_t now = nemo_now_ns(), paused, wait_ms, left_ms;
	bool frozen;

	paused = paused_since(sb, frozen_base, now, &frozen);
	if (paused >= sb->host->frozen_wait_ns)
		return -ETIME;
	if (now >= deadline_ns + paused)
		return -ETIMEDOUT;
	wait_ms = (deadline_ns + paused - now + 999999) / 1000000;
	/*
	 * A freeze from another thread does not wake this poll: look again before a pause that
	 * began now would pass frozen_wait. Frozen, the clock stands still: the thaw is seen at
	 * the next look, none sooner than FROZEN_RECHECK_MS.
	 */
	left_ms = (sb->host->frozen_wait_ns - paused + 999999) / 1000000;
	if (wait_ms > left_ms)
		wait_ms = left_ms;
	if (frozen && wait_ms < FROZEN_RECHECK_MS)
		wait_ms = FROZEN_RECHECK_MS;
	if (poll(p, n, wait_ms > INT32_MAX ? INT32_MAX : (int)wait_ms) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

/* Write header + payload to the sandbox, all of it, by the deadline (see wait_io). */
static int send_frame(struct sbx_sandbox *sb, uint16_t type, const void *data, uint32_t len,
		      uint64_t deadline_ns, uint64_t frozen_base)
{
	struct nemo_frame_hdr hdr = {.magic = NEMO_FRAME_MAGIC, .type = type, .len = len};
	struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {(void *)data, len}};
	size_t left = sizeof(hdr) + len;
	int iovcnt = len ? 2 : 1;
	struct iovec *v = iov;

	while (left) {
		ssize_t n = writev(sb->sock, v, iovcnt);

		if (n < 0) {
			struct pollfd p = {.fd = sb->sock, .events = POLLOUT};
			int rc;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			rc = wait_io(sb, &p, 1, deadline_ns, frozen_base);
			if (rc)
				return rc;
			continue;
		}
		left -= (size_t)n;
		while (iovcnt && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++;
			iovcnt--;
		}
		if (iovcnt) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/*
 * Receive one frame into sb->rbuf (header, then up to `cap` payload bytes), watching the
 * pidfd so a death is seen at once. Returns 0, -ETIMEDOUT (time frozen not counted, see
 * wait_io), -EPIPE (the sandbox died or closed), -EPROTO (bad header) or -EMSGSIZE (payload
 * over cap).
 */
static int recv_frame(struct sbx_sandbox *sb, struct nemo_frame_hdr *hdr, uint32_t cap,
		      uint64_t deadline_ns, uint64_t frozen_base)
{
	size_t have = 0, want = 0; /* want: the whole frame, once the header is in */

	for (;;) {
		size_t room = (want ? want : sizeof(*hdr) + cap) - have;
		ssize_t n = read(sb->sock, sb->rbuf + have, room);
		struct pollfd p[2] = {{.fd = sb->sock, .events = POLLIN},
				      {.fd = sb->pidfd, .events = POLLIN}};
		int rc;

		if (n > 0) {
			have += (size_t)n;
			if (!want) {
				long whole = nemo_frame_check(sb->rbuf, have, cap, hdr);

				if (whole < 0)
					return (int)whole;
				want = (size_t)whole;
			}
			if (want && have > want)
				return -EPROTO; /* a second frame nobody asked for */
			if (want && have == want)
				return 0;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -EPIPE;
		rc = wait_io(sb, p, 2, deadline_ns, frozen_base);
		if (rc)
			return rc;
		/* data first: a response written just before an exit still counts */
		if (!(p[0].revents & (POLLIN | POLLHUP)) && (p[1].revents & POLLIN))
			return -EPIPE;
	}
}

static int ensure_rbuf(struct sbx_sandbox *sb)
{
	uint32_t cap =
		sb->spec.max_payload_bytes > SBX_MSG_MAX ? sb->spec.max_payload_bytes : SBX_MSG_MAX;

	if (sb->rbuf)
		return 0;
	sb->rbuf = malloc(sizeof(struct nemo_frame_hdr) + cap);
	return sb->rbuf ? 0 : -ENOMEM;
}

static uint32_t rbuf_cap(const struct sbx_sandbox *sb)
{
	return sb->spec.max_payload_bytes > SBX_MSG_MAX ? sb->spec.max_payload_bytes : SBX_MSG_MAX;
}

int sbx_recv_frame(struct sbx_sandbox *sb, struct nemo_frame_hdr *hdr, uint32_t cap, char *out,
		   size_t outlen)
{
	uint64_t deadline = nemo_now_ns() + 1000000000ull;
	int rc;

	if (cap >= outlen || ensure_rbuf(sb))
		return -EINVAL;
	rc = recv_frame(sb, hdr, cap, deadline, sb->frozen_ns);
	if (rc)
		return rc;
	memcpy(out, sb->rbuf + sizeof(*hdr), hdr->len);
	out[hdr->len] = '\0';
	return 0;
}

int sbx_send_frame_fds(struct sbx_sandbox *sb, uint16_t type, uint32_t status, const void *data,
		       uint32_t len, const int *fds, int nfds)
{
	struct nemo_frame_hdr hdr = {
		.magic = NEMO_FRAME_MAGIC, .type = type, .len = len, .status = status};
	char cbuf[CMSG_SPACE(4 * sizeof(int))] __attribute__((aligned(8))) = {0};
	struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {(void *)data, len}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	uint64_t deadline = nemo_now_ns() + 1000000000ull;
	ssize_t n;

	if (nfds < 0 || nfds > 4)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	/* the fds go with the first byte; the rest, if the socket takes less, as plain bytes */
	for (;;) {
		n = sendmsg(sb->sock, &msg, MSG_NOSIGNAL);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			struct pollfd p = {.fd = sb->sock, .events = POLLOUT};
			int rc = wait_io(sb, &p, 1, deadline, sb->frozen_ns);

			if (rc)
				return rc;
			continue;
		}
		return -errno;
	}
	/* the fds went with the first byte; what the socket did not take goes as plain bytes */
	for (size_t done = (size_t)n; done < sizeof(hdr) + len;) {
		const uint8_t *from = done < sizeof(hdr)
					      ? (const uint8_t *)&hdr + done
					      : (const uint8_t *)data + done - sizeof(hdr);
		size_t left = done < sizeof(hdr) ? sizeof(hdr) - done : sizeof(hdr) + len - done;

		n = write(sb->sock, from, left);
		if (n > 0) {
			done += (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = sb->sock, .events = POLLOUT};
			int rc = wait_io(sb, &p, 1, deadline, sb->frozen_ns);

			if (rc)
				return rc;
		} else if (n < 0 && errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

int sbx_init(struct sbx_sandbox *sb, char *err, size_t errlen)
{
	struct sbx_host *host = sb->host;
	uint32_t timeout = sb->spec.timeout_ms > INIT_TIMEOUT_MIN_MS ? sb->spec.timeout_ms
								     : INIT_TIMEOUT_MIN_MS;
	uint64_t t0 = nemo_now_ns(), deadline = t0 + (uint64_t)timeout * 1000000ull;
	char block[SBX_PATH_MAX * 3 + SBX_HANDLER_MAX + 16], dummy[8];
	struct nemo_frame_hdr hdr;
	int len, rc;

	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (sb->state != SBX_STATE_CREATED)
		return -EBUSY;
	if (ensure_rbuf(sb))
		return -ENOMEM;
	if (sb->spec.runtime == SBX_RUNTIME_PYTHON && !host->python_path[0]) {
		snprintf(err, errlen, "%s: no python interpreter on this host", sb->spec.name);
		return -ENOEXEC;
	}
	/* the init block: runtime, exec mode, code, handler, interpreter; NUL-separated */
	len = snprintf(block, sizeof(block), "%d%c%d%c%s%c%s%c%s", sb->spec.runtime, 0,
		       sb->spec.exec_mode, 0, sb->code_in, 0, sb->spec.handler, 0,
		       host->python_path);
	/* the OOM counter of a fresh cgroup is 0, but read it: the backend decides */
	host->cg->oom_kills(&sb->cg, &sb->oom_base);
	/* a sandbox being initialised cannot be frozen: no frozen time to skip */
	rc = send_frame(sb, NEMO_FRAME_INIT, block, (uint32_t)len + 1, deadline, sb->frozen_ns);
	if (!rc)
		rc = recv_frame(sb, &hdr, rbuf_cap(sb), deadline, sb->frozen_ns);
	if (rc == -ETIMEDOUT) {
		snprintf(err, errlen, "%s: init took longer than %u ms", sb->spec.name, timeout);
		kill_sandbox(sb);
		return -ETIMEDOUT;
	}
	if (rc == -EPIPE) {
		char why[SBX_MSG_MAX];

		classify_death(sb, why, sizeof(why));
		snprintf(err, errlen, "%s: died during init: %s", sb->spec.name, why);
		NEMO_ERR(SBX_LOG, "%s", err);
		return -EPIPE;
	}
	if (rc) {
		snprintf(err, errlen, "%s: init: protocol error (%s)", sb->spec.name,
			 strerror(-rc));
		kill_sandbox(sb);
		return rc;
	}
	if (hdr.type == NEMO_FRAME_INIT_ERROR) {
		snprintf(err, errlen, "%s: %.*s", sb->spec.name, (int)hdr.len,
			 (char *)sb->rbuf + sizeof(hdr));
		NEMO_ERR(SBX_LOG, "init failed: %s", err);
		kill_sandbox(sb);
		return -ENOEXEC;
	}
	if (hdr.type != NEMO_FRAME_READY) {
		snprintf(err, errlen, "%s: init: expected READY, got frame type %u", sb->spec.name,
			 hdr.type);
		kill_sandbox(sb);
		return -EPROTO;
	}
	set_state(sb, SBX_STATE_READY);
	sb->init_ns = nemo_now_ns() - t0;
	return 0;
}

static void result_set(struct sbx_result *res, enum sbx_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void result_set(struct sbx_result *res, enum sbx_status status, const char *fmt, ...)
{
	va_list ap;

	res->status = status;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}

int sbx_invoke(struct sbx_sandbox *sb, const void *req, size_t len, struct sbx_result *res)
{
	uint64_t t0, deadline, frozen_base;
	struct nemo_frame_hdr hdr;
	enum sbx_state state;
	int rc;

	if (!sb || !res || (len && !req))
		return -EINVAL;
	res->status = SBX_OK;
	res->message[0] = '\0';
	res->response = NULL;
	res->response_len = 0;
	if (sb->zygote || sb->packet) {
		result_set(res, SBX_ERR_STATE, "a %s takes no requests",
			   sb->zygote ? "zygote" : "packet-mode instance");
		return 0;
	}
	if (len > sb->spec.max_payload_bytes) {
		result_set(res, SBX_ERR_PAYLOAD_TOO_LARGE,
			   "request of %zu bytes is over the limit of %u bytes", len,
			   sb->spec.max_payload_bytes);
		return 0;
	}
	/* READY to BUSY in one step: a freeze from another thread sees one or the other */
	pthread_mutex_lock(&sb->lock);
	state = sb->state;
	if (state == SBX_STATE_READY)
		sb->state = SBX_STATE_BUSY;
	frozen_base = sb->frozen_ns;
	pthread_mutex_unlock(&sb->lock);
	if (state != SBX_STATE_READY) {
		result_set(res, SBX_ERR_STATE, "sandbox is %s, not ready", sbx_state_name(state));
		return 0;
	}
	t0 = nemo_now_ns();
	deadline = t0 + (uint64_t)sb->spec.timeout_ms * 1000000ull;
	rc = send_frame(sb, NEMO_FRAME_REQUEST, req, (uint32_t)len, deadline, frozen_base);
	while (!rc) {
		rc = recv_frame(sb, &hdr, rbuf_cap(sb), deadline, frozen_base);
		if (rc || hdr.type != NEMO_FRAME_CALL_OPEN)
			break;
		/* the function calls another (nemo_call): lease it one, then read on */
		if (hdr.len > NEMO_CHAIN_NAME_MAX) {
			rc = -EPROTO;
			break;
		}
		sb->rbuf[sizeof(hdr) + hdr.len] = '\0';
		sbx_chain_open(sb->host->chain, sb, (char *)sb->rbuf + sizeof(hdr));
	}
	res->times.run_ns = nemo_now_ns() - t0;
	switch (rc) {
	case 0:
		break;
	case -ETIME: {
		bool frozen;
		uint64_t paused = paused_since(sb, frozen_base, nemo_now_ns(), &frozen);

		kill_sandbox(sb);
		result_set(res, SBX_ERR_TIMEOUT,
			   "paused %" PRIu64
			   " ms: core %d has been reclaimed by its NF (frozen) for "
			   "longer than a call waits (frozen_wait_ms %" PRIu64 "): killed",
			   paused / 1000000, sb->cg.core, sb->host->frozen_wait_ns / 1000000);
		return 0;
	}
	case -ETIMEDOUT:
		kill_sandbox(sb);
		result_set(res, SBX_ERR_TIMEOUT, "function timed out after %u ms: killed",
			   sb->spec.timeout_ms);
		return 0;
	case -EMSGSIZE:
		kill_sandbox(sb);
		result_set(res, SBX_ERR_RESPONSE_TOO_LARGE,
			   "response is over the limit of %u bytes", sb->spec.max_payload_bytes);
		return 0;
	case -EPIPE:
	case -EPROTO:
	default: {
		char why[SBX_MSG_MAX];
		enum sbx_status st;
		const char *killed;

		if (rc != -EPIPE)
			kill_sandbox(sb);
		st = classify_death(sb, why, sizeof(why));
		pthread_mutex_lock(&sb->lock);
		killed = sb->killed_why;
		pthread_mutex_unlock(&sb->lock);
		if (killed)
			result_set(res, SBX_ERR_INTERNAL, "%s", killed);
		else if (rc != -EPIPE)
			result_set(res, SBX_ERR_CRASHED, "protocol error from function (%s)",
				   strerror(-rc));
		else
			result_set(res, st, "%s", why);
		return 0;
	}
	}
	if (hdr.type != NEMO_FRAME_RESPONSE) {
		kill_sandbox(sb);
		result_set(res, SBX_ERR_CRASHED,
			   "protocol error: frame type %u instead of a response", hdr.type);
		return 0;
	}
	/* the answer may have been on its way when the core froze: then it idles frozen */
	pthread_mutex_lock(&sb->lock);
	sb->state = sb->frozen ? SBX_STATE_FROZEN : SBX_STATE_READY;
	pthread_mutex_unlock(&sb->lock);
	if (hdr.flags & NEMO_FRAME_F_TOO_LARGE) {
		uint64_t big = 0;

		if (hdr.len == sizeof(big))
			memcpy(&big, sb->rbuf + sizeof(hdr), sizeof(big));
		result_set(res, SBX_ERR_RESPONSE_TOO_LARGE,
			   "response of %" PRIu64 " bytes is over the limit of %u bytes", big,
			   sb->spec.max_payload_bytes);
		return 0;
	}
	res->response = malloc(hdr.len + 1);
	if (!res->response) {
		result_set(res, SBX_ERR_INTERNAL, "out of memory for a %u-byte response", hdr.len);
		return 0;
	}
	memcpy(res->response, sb->rbuf + sizeof(hdr), hdr.len);
	res->response[hdr.len] = '\0'; /* convenient for text; not counted */
	res->response_len = hdr.len;
	if (hdr.status) {
		result_set(res, SBX_ERR_FUNCTION, "function error %u: %.*s", hdr.status,
			   (int)(hdr.len < 200 ? hdr.len : 200), (char *)res->response);
	}
	return 0;
}

void sbx_result_release(struct sbx_result *res)
{
	if (!res)
		return;
	free(res->response);
	res->response = NULL;
	res->response_len = 0;
	free(res->calls);
	res->calls = NULL;
	res->n_calls = 0;
}

/* Has the sandbox's init exited? A look only: reaping is for its owner (sbx_state). */
static bool exited(const struct sbx_sandbox *sb)
{
	struct pollfd p = {.fd = sb->pidfd, .events = POLLIN};

	return sb->reaped || (sb->pidfd >= 0 && poll(&p, 1, 0) == 1);
}

int sbx_freeze_begin(struct sbx_sandbox *sb)
{
	int rc = -EBUSY;

	pthread_mutex_lock(&sb->lock);
	if (!sb->frozen &&
	    (sb->state == SBX_STATE_BUSY || (sb->state == SBX_STATE_READY && !exited(sb)))) {
		rc = sb->host->cg->freeze(&sb->cg, true);
		if (!rc) {
			sb->frozen = true;
			sb->frozen_at = nemo_now_ns();
			/* an invocation in flight stays BUSY: it pauses, and goes on at the thaw */
			if (sb->state == SBX_STATE_READY)
				sb->state = SBX_STATE_FROZEN;
		}
	}
	pthread_mutex_unlock(&sb->lock);
	return rc;
}

int sbx_freeze_settle(struct sbx_sandbox *sb, uint64_t deadline_ns)
{
	int rc;

	/* the freezer is asynchronous: the state reads FREEZING until every task stopped */
	while ((rc = sb->host->cg->is_frozen(&sb->cg)) == 0 && nemo_now_ns() <= deadline_ns)
		usleep(50);
	if (rc == 1)
		return 0;
	if (rc == 0)
		NEMO_ERR(SBX_LOG, "%s: freezer of sandbox %" PRIu64 " did not settle in 100 ms",
			 sb->spec.name, sb->id);
	pthread_mutex_lock(&sb->lock);
	if (sb->frozen) {
		sb->host->cg->freeze(&sb->cg, false);
		unfrozen_locked(sb);
	}
	pthread_mutex_unlock(&sb->lock);
	return rc ? rc : -ETIMEDOUT;
}

int sbx_freeze(struct sbx_sandbox *sb)
{
	int rc = sbx_freeze_begin(sb);

	return rc ? rc : sbx_freeze_settle(sb, nemo_now_ns() + SBX_FREEZE_TIMEOUT_NS);
}

int sbx_thaw(struct sbx_sandbox *sb)
{
	int rc = -EBUSY;

	pthread_mutex_lock(&sb->lock);
	if (sb->frozen) {
		rc = sb->host->cg->freeze(&sb->cg, false);
		if (!rc)
			unfrozen_locked(sb);
	}
	pthread_mutex_unlock(&sb->lock);
	return rc;
}

uint64_t sbx_frozen_since(struct sbx_sandbox *sb)
{
	uint64_t since;

	pthread_mutex_lock(&sb->lock);
	since = sb->frozen ? sb->frozen_at : 0;
	pthread_mutex_unlock(&sb->lock);
	return since;
}

void sbx_kill_async(struct sbx_sandbox *sb, const char *why)
{
	pthread_mutex_lock(&sb->lock);
	if (sb->state != SBX_STATE_DEAD && !sb->reaped && sb->pidfd >= 0) {
		sb->killed_why = why;
		pidfd_send_signal(sb->pidfd, SIGKILL, NULL, 0);
		/* v1: freeze, kill every task, thaw; v2: cgroup.kill, which frozen tasks obey */
		if (sb->cg.freezer[0])
			sb->host->cg->kill(&sb->cg);
		if (sb->frozen) {
			sb->host->cg->freeze(&sb->cg, false);
			unfrozen_locked(sb);
		}
		/* a call in flight sees the death through the pidfd and reaps */
		if (sb->state != SBX_STATE_BUSY)
			sb->state = SBX_STATE_DEAD;
	}
	pthread_mutex_unlock(&sb->lock);
}

uint64_t sbx_frozen_total_ns(struct sbx_sandbox *sb, uint64_t now)
{
	bool frozen;

	return paused_since(sb, 0, now, &frozen);
}

bool sbx_frozen(struct sbx_sandbox *sb)
{
	bool frozen;

	pthread_mutex_lock(&sb->lock);
	frozen = sb->frozen;
	pthread_mutex_unlock(&sb->lock);
	return frozen;
}

int sbx_move(struct sbx_sandbox *sb, int core)
{
	enum sbx_state state;

	if (core < 0 || core >= sb->host->n_cores)
		return -EINVAL;
	if (core == sb->cg.core)
		return 0;
	pthread_mutex_lock(&sb->lock);
	state = sb->state;
	pthread_mutex_unlock(&sb->lock);
	if (state == SBX_STATE_DEAD || state == SBX_STATE_BUSY)
		return -EBUSY;
	return sb->host->cg->move(sb->host, &sb->cg, core);
}

void sbx_destroy(struct sbx_sandbox *sb)
{
	struct sbx_host *host;
	struct sbx_sandbox *parent = NULL;

	if (!sb)
		return;
	host = sb->host;
	/* its leases of other instances end with it (chain.c) */
	sbx_chain_forget(host->chain, sb);
	if (sb->parent) {
		/* a ready fork destroyed before its hand-over is its zygote's no more */
		pthread_mutex_lock(&host->lock);
		if (sb->parent->ready == sb)
			sb->parent->ready = NULL;
		pthread_mutex_unlock(&host->lock);
	}
	if (sb->zygote) {
		struct sbx_sandbox *ready;

		/* its ready fork goes first: nobody else would end it (the zygote is not
		 * retired yet, so it does not come back here) */
		pthread_mutex_lock(&host->lock);
		ready = sb->ready;
		sb->ready = NULL;
		pthread_mutex_unlock(&host->lock);
		sbx_destroy(ready);
		/* its forks' PID namespaces nest in its own: it dies after the last of them */
		pthread_mutex_lock(&host->lock);
		if (sb->n_forks > 0) {
			sb->retired = true;
			host_unlink_locked(host, sb);
			pthread_mutex_unlock(&host->lock);
			return;
		}
		pthread_mutex_unlock(&host->lock);
	}
	kill_sandbox(sb);
	/* off the host's list first: sbx_cgroup_core_sandboxes() reads the paths under its lock */
	host_unlink(host, sb);
	if (sb->cg.memory[0] || sb->cg.dirfd >= 0)
		host->cg->sandbox_destroy(host, &sb->cg);
	if (sb->sock >= 0)
		close(sb->sock);
	if (sb->pidfd >= 0)
		close(sb->pidfd);
	if (sb->status_fd >= 0)
		close(sb->status_fd);
	if (sb->proc_cg_fd >= 0)
		close(sb->proc_cg_fd);
	for (int i = 0; i < sb->n_join_fds; i++)
		close(sb->join_fds[i]);
	if (sb->parent) {
		pthread_mutex_lock(&host->lock);
		parent = sb->parent;
		if (--parent->n_forks > 0 || !parent->retired)
			parent = NULL;
		pthread_mutex_unlock(&host->lock);
	}
	if (sb->pkt_ring)
		munmap((void *)sb->pkt_ring, sizeof(*sb->pkt_ring));
	pthread_mutex_destroy(&sb->fork_lock);
	pthread_mutex_destroy(&sb->lock);
	free(sb->rbuf);
	free(sb);
	sbx_destroy(parent);
}

enum sbx_state sbx_state(struct sbx_sandbox *sb)
{
	enum sbx_state state;

	pthread_mutex_lock(&sb->lock);
	/* BUSY: its invoker watches the pidfd and reaps; FROZEN: it cannot die on v1 */
	if ((sb->state == SBX_STATE_CREATED || sb->state == SBX_STATE_READY) && exited(sb)) {
		reap(sb, true);
		sb->state = SBX_STATE_DEAD;
	}
	state = sb->state;
	pthread_mutex_unlock(&sb->lock);
	return state;
}

const char *sbx_state_name(enum sbx_state state)
{
	static const char *const names[] = {"created", "ready", "busy", "frozen", "dead"};

	return (unsigned)state < 5 ? names[state] : "?";
}

const char *sbx_status_name(enum sbx_status status)
{
	static const char *const names[] = {"ok",
					    "function_error",
					    "timeout",
					    "crashed",
					    "oom",
					    "payload_too_large",
					    "response_too_large",
					    "init_failed",
					    "bad_state",
					    "internal"};

	return (unsigned)status < 10 ? names[status] : "?";
}

const char *sbx_start_path_name(enum sbx_start_path path)
{
	static const char *const names[SBX_START_PATHS] = {"none", "cold", "warm", "prewarmed",
							   "zygote"};

	return (unsigned)path < SBX_START_PATHS ? names[path] : "?";
}

const struct sbx_spec *sbx_spec_of(const struct sbx_sandbox *sb)
{
	return &sb->spec;
}

pid_t sbx_pid(const struct sbx_sandbox *sb)
{
	return sb->pid;
}

int sbx_core(const struct sbx_sandbox *sb)
{
	return sb->cg.core;
}

uint64_t sbx_id(const struct sbx_sandbox *sb)
{
	return sb->id;
}

int sbx_memory_bytes(struct sbx_sandbox *sb, uint64_t *bytes)
{
	return sb->host->cg->memory_bytes(&sb->cg, bytes);
}

/* ---- zygotes ------------------------------------------------------------------------------- */

int sbx_zygote_supported(char *why, size_t len)
{
	static const char *const knobs[][2] = {
		{"kernel.unprivileged_userns_clone", "/proc/sys/kernel/unprivileged_userns_clone"},
		{"user.max_user_namespaces", "/proc/sys/user/max_user_namespaces"}};

	for (size_t i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
		char buf[32] = "";
		int fd = open(knobs[i][1], O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		/* a kernel without the setting (upstream has no unprivileged_userns_clone) allows */
		if (n <= 0 || strtoul(buf, NULL, 10) != 0)
			continue;
		buf[strcspn(buf, "\n")] = '\0';
		if (why && len)
			snprintf(why, len,
				 "zygotes need unprivileged user namespaces, and %s is %s (%s)",
				 knobs[i][0], buf, knobs[i][1]);
		return -ENOTSUP;
	}
	if (why && len)
		why[0] = '\0';
	return 0;
}

struct sbx_sandbox *sbx_zygote_create(struct sbx_host *host, const struct sbx_spec *spec, int core,
				      char *err, size_t errlen)
{
	struct sbx_sandbox *sb;
	char why[160];
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!host || core < 0 || core >= host->n_cores || !spec || !spec->code[0]) {
		errno = EINVAL;
		return NULL;
	}
	if (spec->runtime != SBX_RUNTIME_C && spec->runtime != SBX_RUNTIME_PYTHON) {
		if (err)
			snprintf(err, errlen, "%s: %s functions have no zygote", spec->name,
				 sbx_runtime_name(spec->runtime));
		errno = ENOTSUP;
		return NULL;
	}
	if (sbx_zygote_supported(why, sizeof(why))) {
		if (err)
			snprintf(err, errlen, "%s: %s", spec->name, why);
		errno = ENOTSUP;
		return NULL;
	}
	sb = create_sandbox(host, spec, core, true, NULL);
	if (!sb)
		return NULL;
	rc = sbx_init(sb, err, errlen);
	if (rc) {
		sbx_destroy(sb);
		errno = rc == -ENOEXEC ? ENOEXEC : -rc;
		return NULL;
	}
	return sb;
}

bool sbx_is_zygote(const struct sbx_sandbox *sb)
{
	return sb->zygote;
}

/*
 * Hand the zygote a new instance's socket and status pipe: an empty REQUEST frame, with
 * status ZYG_PARK for a ready fork.
 */
static int send_fork(struct sbx_sandbox *zyg, int sock, int status, bool park)
{
	struct nemo_frame_hdr hdr = {.magic = NEMO_FRAME_MAGIC,
				     .type = NEMO_FRAME_REQUEST,
				     .status = park ? ZYG_PARK : 0};
	char cbuf[CMSG_SPACE(2 * sizeof(int))] __attribute__((aligned(8))) = {0};
	struct iovec iov = {&hdr, sizeof(hdr)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	int fds[2] = {sock, status};
	ssize_t n;

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	pthread_mutex_lock(&zyg->fork_lock);
	do
		n = sendmsg(zyg->sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	pthread_mutex_unlock(&zyg->fork_lock);
	if (n < 0)
		return -errno;
	return n == sizeof(hdr) ? 0 : -EPIPE;
}

/*
 * Open the files through which a fork writes itself into its cgroups (v1), `core_too` when
 * it is not in its core's already. Returns how many, -ENOTSUP when it cannot (v2, or the
 * host moves forks itself: zygote_host_attach), or -errno.
 */
static int join_open(struct sbx_sandbox *sb, bool core_too, int *fds)
{
	if (sb->host->zygote_host_attach)
		return -ENOTSUP;
	return sb->host->cg->self_join_open(&sb->cg, core_too, fds);
}

/*
 * The new instance's JOIN frame, on its own socket, with `n` files through which it writes
 * itself into its cgroups (v1), or none (n <= 0; v2: we move it). The files are closed here.
 * Returns how many it carried, or -errno.
 */
static int send_join(struct sbx_sandbox *sb, const int *fds, int n)
{
	struct nemo_frame_hdr hdr = {
		.magic = NEMO_FRAME_MAGIC, .type = NEMO_FRAME_REQUEST, .status = ZYG_JOIN};
	char cbuf[CMSG_SPACE(SBX_CG_JOIN_MAX * sizeof(int))] __attribute__((aligned(8))) = {0};
	struct iovec iov = {&hdr, sizeof(hdr)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t sent;

	_Static_assert(SBX_CG_JOIN_MAX == ZYG_JOIN_MAX, "a JOIN frame carries every join file");
	if (n > 0) {
		struct cmsghdr *c;

		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)n * sizeof(int));
	}
	do
		sent = sendmsg(sb->sock, &msg, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	if (sent < 0)
		return -errno;
	return sent == sizeof(hdr) ? (n > 0 ? n : 0) : -EPIPE;
}

/*
 * One READY frame of a new instance with status `status` (1: born, its setup goes on; 0:
 * ready), and with `cred` not NULL who sent it: the kernel stamps the sender's pid as we see
 * it (SO_PASSCRED), whatever namespaces it is in. Returns 0, -ETIMEDOUT, -EPIPE (it ended
 * first: the zygote's status for it says why) or -EPROTO.
 */
static int recv_hello(struct sbx_sandbox *sb, uint64_t deadline_ns, uint32_t status,
		      struct ucred *cred)
{
	char cbuf[CMSG_SPACE(sizeof(struct ucred))] __attribute__((aligned(8)));
	struct nemo_frame_hdr hdr;
	uint8_t buf[sizeof(hdr)] = {0};
	size_t have = 0;
	bool got_cred = false;

	while (have < sizeof(buf)) {
		struct iovec iov = {buf + have, sizeof(buf) - have};
		struct msghdr msg = {.msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf)};
		struct pollfd p = {.fd = sb->sock, .events = POLLIN};
		uint64_t now = nemo_now_ns();
		ssize_t n;

		if (now >= deadline_ns)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)((deadline_ns - now) / 1000000 + 1)) < 0 && errno != EINTR)
			return -errno;
		if (!p.revents)
			continue;
		n = recvmsg(sb->sock, &msg, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return -EPIPE;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
			    !got_cred) {
				memcpy(cred, CMSG_DATA(c), sizeof(*cred));
				got_cred = true;
			}
		have += (size_t)n;
	}
	if ((cred && !got_cred) || nemo_frame_check(buf, have, 0, &hdr) != (long)sizeof(hdr) ||
	    hdr.type != NEMO_FRAME_READY || hdr.status != status)
		return -EPROTO;
	return 0;
}

/*
 * A new fork of `zyg` begins: its handle (counted among the zygote's forks), its socket and
 * status pipe, handed to the zygote with the command. Returns it, or NULL with errno and
 * `err` filled.
 */
static struct sbx_sandbox *fork_begin(struct sbx_sandbox *zyg, bool park, char *err, size_t errlen)
{
	struct sbx_host *host = zyg->host;
	int socks[2] = {-1, -1}, status[2] = {-1, -1}, on = 1, rc;
	struct sbx_sandbox *sb;

	if (sbx_state(zyg) != SBX_STATE_READY) {
		snprintf(err, errlen, "%s: its zygote is %s", zyg->spec.name,
			 sbx_state_name(sbx_state(zyg)));
		errno = EPIPE;
		return NULL;
	}
	sb = sandbox_alloc(host, &zyg->spec);
	if (!sb)
		return NULL;
	sb->uid = zyg->uid;
	memcpy(sb->code_in, zyg->code_in, sizeof(sb->code_in));
	pthread_mutex_lock(&host->lock);
	rc = zyg->n_forks < ZYGOTE_FORKS_MAX && !zyg->retired ? 0 : -EAGAIN;
	if (!rc) {
		zyg->n_forks++;
		sb->parent = zyg;
	}
	pthread_mutex_unlock(&host->lock);
	if (rc) {
		snprintf(err, errlen, "%s: its zygote has %d forks, the most it holds",
			 zyg->spec.name, ZYGOTE_FORKS_MAX);
		goto fail;
	}
	if (ensure_rbuf(sb) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks) ||
	    pipe2(status, O_CLOEXEC) ||
	    setsockopt(socks[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on))) {
		rc = errno ? -errno : -ENOMEM;
		snprintf(err, errlen, "%s: fork from zygote: %s", sb->spec.name, strerror(-rc));
		for (int i = 0; i < 2; i++) {
			if (socks[i] >= 0)
				close(socks[i]);
			if (status[i] >= 0)
				close(status[i]);
		}
		goto fail;
	}
	sb->sock = socks[0];
	sb->status_fd = status[0];
	rc = send_fork(zyg, socks[1], status[1], park);
	close(socks[1]);
	close(status[1]);
	if (rc) {
		snprintf(err, errlen, "%s: its zygote does not answer: %s", sb->spec.name,
			 strerror(-rc));
		goto fail;
	}
	return sb;
fail:
	NEMO_ERR(SBX_LOG, "%s", err);
	sb->state = SBX_STATE_DEAD;
	sb->reaped = true;
	sbx_destroy(sb);
	errno = -rc;
	return NULL;
}

/*
 * The fork says it is born: who it is, from the kernel (SO_PASSCRED: its pid as we see it,
 * whatever namespace sent it), and a pidfd of it. Returns 0 or -errno with `err` filled.
 */
static int fork_born(struct sbx_sandbox *zyg, struct sbx_sandbox *sb, uint64_t deadline, char *err,
		     size_t errlen)
{
	struct ucred cred = {0};
	int off = 0, rc = recv_hello(sb, deadline, ZYG_BORN, &cred);
	char path[64];

	if (rc == -EPIPE) {
		int st = 0;
		struct pollfd p = {.fd = sb->status_fd, .events = POLLIN};

		if (poll(&p, 1, 1000) == 1 && read(sb->status_fd, &st, sizeof(st)) == sizeof(st) &&
		    WIFEXITED(st))
			snprintf(err, errlen, "%s: fork from zygote failed: %s", sb->spec.name,
				 WEXITSTATUS(st) == ZYG_EXIT_CLONE ? "clone with new namespaces"
								   : strerror(WEXITSTATUS(st)));
		else
			snprintf(err, errlen, "%s: fork from zygote died before it was ready",
				 sb->spec.name);
		return rc;
	}
	if (rc) {
		snprintf(err, errlen, "%s: fork from zygote: %s", sb->spec.name, strerror(-rc));
		return rc;
	}
	/* the zygote's code could only have lied about its own function: still check */
	if (cred.uid != zyg->uid || cred.pid <= 0) {
		snprintf(err, errlen, "%s: fork from zygote: uid %u, not the function's %u",
			 sb->spec.name, (unsigned)cred.uid, (unsigned)zyg->uid);
		return -EPROTO;
	}
	sb->pid = cred.pid;
	sb->pidfd = pidfd_open(cred.pid, 0);
	if (sb->pidfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: pidfd of fork %d: %s", sb->spec.name, (int)cred.pid,
			 strerror(-rc));
		return rc;
	}
	setsockopt(sb->sock, SOL_SOCKET, SO_PASSCRED, &off, sizeof(off));
	/* read once it says it is ready: opened now, while it sets itself up or is parked */
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)cred.pid);
	sb->proc_cg_fd = open(path, O_RDONLY | O_CLOEXEC);
	return 0;
}

/*
 * The fork is born and its JOIN frame sent (`joins` files in it, 0: none, v2): if it could
 * not move itself we move it, then wait for its READY and check with the kernel that it is in
 * its cgroups. Returns 0 (it is READY) or -errno with `err` filled.
 */
static int fork_finish(struct sbx_sandbox *sb, int joins, uint64_t deadline, char *err,
		       size_t errlen)
{
	struct sbx_host *host = sb->host;
	/* v1: it writes itself into its own cgroups first thing (the JOIN frame). Else we
	 * move it while it sets itself up. Either way it takes no request before READY and
	 * runs nothing of the function's before it */
	int rc = joins ? 0 : host->cg->attach(&sb->cg, sb->pid);

	if (rc) {
		snprintf(err, errlen, "%s: fork %d into its cgroup: %s", sb->spec.name,
			 (int)sb->pid, strerror(-rc));
		return rc;
	}
	rc = recv_hello(sb, deadline, 0, NULL);
	if (rc) {
		snprintf(err, errlen, "%s: fork %d did not get ready: %s", sb->spec.name,
			 (int)sb->pid, strerror(-rc));
		return rc;
	}
	/* the move was the instance's (its zygote's code): believe the kernel, not the READY */
	rc = joins ? host->cg->holds(host, &sb->cg, sb->pid, sb->proc_cg_fd) : 1;
	if (rc != 1) {
		rc = rc < 0 ? rc : -EPERM;
		snprintf(err, errlen, "%s: fork %d is not in its own cgroups: %s", sb->spec.name,
			 (int)sb->pid, strerror(-rc));
		return rc;
	}
	fcntl(sb->sock, F_SETFL, O_NONBLOCK);
	sb->joined = true;
	sb->state = SBX_STATE_READY;
	return 0;
}

/* A fork that failed: logged with why, destroyed, errno set. */
static void fork_failed(struct sbx_sandbox *sb, int rc, const char *err)
{
	NEMO_ERR(SBX_LOG, "%s", err[0] ? err : "fork from zygote failed");
	sb->state = SBX_STATE_DEAD;
	sb->reaped = sb->pidfd < 0;
	sbx_destroy(sb);
	errno = -rc;
}

static uint64_t fork_deadline(const struct sbx_sandbox *zyg, uint64_t t0)
{
	uint32_t timeout = zyg->spec.timeout_ms > INIT_TIMEOUT_MIN_MS ? zyg->spec.timeout_ms
								      : INIT_TIMEOUT_MIN_MS;

	return t0 + (uint64_t)timeout * 1000000ull;
}

int sbx_zygote_prepare(struct sbx_sandbox *zyg, char *err, size_t errlen)
{
	uint64_t t0 = nemo_now_ns();
	struct sbx_sandbox *sb;
	struct sbx_host *host;
	char dummy[SBX_MSG_MAX];
	bool have;
	int rc;

	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!zyg || !zyg->zygote)
		return -EINVAL;
	host = zyg->host;
	pthread_mutex_lock(&host->lock);
	have = zyg->ready != NULL;
	pthread_mutex_unlock(&host->lock);
	if (have)
		return 0;
	sb = fork_begin(zyg, true, err, errlen);
	if (!sb)
		return -errno;
	/* made for the zygote's core; a hand-over to another core moves it there first */
	rc = host->cg->sandbox_create(host, sb->id, sbx_core(zyg), &sb->spec, &sb->cg);
	if (rc) {
		snprintf(err, errlen, "%s: cgroup: %s", sb->spec.name, strerror(-rc));
		goto fail;
	}
	host->cg->oom_kills(&sb->cg, &sb->oom_base);
	/* its own cgroups' files, ready for the JOIN frame: it is in its core's already */
	sb->n_join_fds = join_open(sb, false, sb->join_fds);
	if (sb->n_join_fds < 0 && sb->n_join_fds != -ENOTSUP) {
		rc = sb->n_join_fds;
		sb->n_join_fds = 0;
		snprintf(err, errlen, "%s: ready fork: its cgroup's files: %s", sb->spec.name,
			 strerror(-rc));
		goto fail;
	}
	/* it says it is born once it is set up */
	rc = fork_born(zyg, sb, fork_deadline(zyg, t0), err, errlen);
	if (rc)
		goto fail;
	sb->create_ns = nemo_now_ns() - t0;
	pthread_mutex_lock(&host->lock);
	have = zyg->ready != NULL || zyg->retired;
	if (!have) {
		zyg->ready = sb;
		sb->parked = true;
	}
	pthread_mutex_unlock(&host->lock);
	if (have) /* another thread parked one meanwhile */
		sbx_destroy(sb);
	return 0;
fail:
	fork_failed(sb, rc, err);
	return rc;
}

bool sbx_zygote_ready(struct sbx_sandbox *zyg)
{
	bool have;

	if (!zyg || !zyg->zygote)
		return false;
	pthread_mutex_lock(&zyg->host->lock);
	have = zyg->ready != NULL;
	pthread_mutex_unlock(&zyg->host->lock);
	return have;
}

/*
 * Hand the zygote's ready fork over as an instance on `core`: into its cgroup (moved to
 * `core`'s first if it was made for another), then READY. Returns it, or NULL (errno, `err`)
 * when there was none or it failed; a failed one is destroyed.
 */
static struct sbx_sandbox *hand_over(struct sbx_sandbox *zyg, int core, uint64_t t0, char *err,
				     size_t errlen)
{
	struct sbx_host *host = zyg->host;
	int rc, joins, n, fds[SBX_CG_JOIN_MAX];
	struct sbx_sandbox *sb;
	struct pollfd p;

	/* a frozen zygote's ready fork is frozen with it: it stays parked for the thaw */
	if (sbx_state(zyg) != SBX_STATE_READY)
		return NULL;
	pthread_mutex_lock(&host->lock);
	sb = zyg->ready;
	zyg->ready = NULL;
	if (sb)
		sb->parked = false;
	pthread_mutex_unlock(&host->lock);
	if (!sb)
		return NULL;
	p = (struct pollfd){.fd = sb->pidfd, .events = POLLIN};
	if (poll(&p, 1, 0) != 0) {
		rc = -EPIPE;
		snprintf(err, errlen, "%s: its ready fork %d is gone", sb->spec.name, (int)sb->pid);
		goto fail;
	}
	n = sb->n_join_fds;
	memcpy(fds, sb->join_fds, sizeof(fds));
	sb->n_join_fds = 0;
	if (sbx_core(sb) != core) {
		/* not the zygote's core: its cgroup moves there, and it joins that core's too */
		for (int i = 0; i < n; i++)
			close(fds[i]);
		rc = host->cg->retarget(host, &sb->cg, core, &sb->spec, sb->id);
		if (rc) {
			snprintf(err, errlen, "%s: ready fork's cgroup to core %d: %s",
				 sb->spec.name, core, strerror(-rc));
			goto fail;
		}
		host->cg->oom_kills(&sb->cg, &sb->oom_base);
		n = join_open(sb, true, fds);
	}
	/* a JOIN frame either way: without files (v2) it only says "go on" */
	joins = n < 0 && n != -ENOTSUP ? n : send_join(sb, fds, n);
	if (joins < 0) {
		rc = joins;
		snprintf(err, errlen, "%s: ready fork: its cgroup's files: %s", sb->spec.name,
			 strerror(-rc));
		goto fail;
	}
	rc = fork_finish(sb, joins, fork_deadline(zyg, t0), err, errlen);
	if (rc)
		goto fail;
	sb->create_ns = nemo_now_ns() - t0;
	sb->from_ready = true;
	return sb;
fail:
	NEMO_WARN(SBX_LOG, "%s (a fork on demand follows)", err);
	sb->state = SBX_STATE_DEAD;
	sbx_destroy(sb);
	errno = -rc;
	return NULL;
}

struct sbx_sandbox *sbx_zygote_fork(struct sbx_sandbox *zyg, int core, char *err, size_t errlen)
{
	struct sbx_host *host;
	uint64_t t0 = nemo_now_ns(), deadline;
	int rc, joins, n, fds[SBX_CG_JOIN_MAX];
	struct sbx_sandbox *sb;
	char dummy[SBX_MSG_MAX];

	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!zyg || !zyg->zygote || core < 0 || core >= zyg->host->n_cores) {
		errno = EINVAL;
		return NULL;
	}
	host = zyg->host;
	/* a ready fork if one is parked; one that fails leaves the start to a fork on demand */
	sb = hand_over(zyg, core, t0, err, errlen);
	if (sb)
		return sb;
	err[0] = '\0';
	deadline = fork_deadline(zyg, t0);
	sb = fork_begin(zyg, false, err, errlen);
	if (!sb)
		return NULL;
	/* its cgroup is made while the zygote forks */
	rc = host->cg->sandbox_create(host, sb->id, core, &sb->spec, &sb->cg);
	if (rc) {
		snprintf(err, errlen, "%s: cgroup: %s", sb->spec.name, strerror(-rc));
		goto fail;
	}
	/* born of the zygote, it is in the zygote's core's cgroups: on that core it joins only
	 * its own */
	n = join_open(sb, core != sbx_core(zyg), fds);
	/* a JOIN frame either way: without files (v2) it only says "go on" */
	joins = n < 0 && n != -ENOTSUP ? n : send_join(sb, fds, n);
	if (joins < 0) {
		rc = joins;
		snprintf(err, errlen, "%s: fork from zygote: its cgroup's files: %s", sb->spec.name,
			 strerror(-rc));
		goto fail;
	}
	host->cg->oom_kills(&sb->cg, &sb->oom_base);
	rc = fork_born(zyg, sb, deadline, err, errlen);
	rc = rc ? rc : fork_finish(sb, joins, deadline, err, errlen);
	if (rc)
		goto fail;
	sb->create_ns = nemo_now_ns() - t0;
	return sb;
fail:
	fork_failed(sb, rc, err);
	return NULL;
}

bool sbx_from_ready_fork(const struct sbx_sandbox *sb)
{
	return sb && sb->from_ready;
}

/* ---- packet mode ------------------------------------------------------------------------- */

static void close_lease(const struct sbx_packet_lease *lease)
{
	const int fds[] = {lease->ring_fd, lease->wake_fd, lease->lease_fd};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/*
 * The ring header of `fd`, checked as fn_ring_attach() does before the instance is started
 * (magic, version, geometry within the memfd), and mapped read-only for sbx_packet_stats().
 * Returns the mapping or NULL with errno (EPROTO: not a ring this build knows).
 */
static const struct fn_ring_shared *map_ring_header(int fd, char *err, size_t errlen)
{
	struct fn_ring_shared hdr;
	struct stat st;
	void *map;

	if (fstat(fd, &st) || (size_t)st.st_size < sizeof(hdr) ||
	    pread(fd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) || hdr.magic != FN_RING_MAGIC ||
	    hdr.version != FN_RING_VERSION || hdr.size > (uint64_t)st.st_size) {
		snprintf(err, errlen,
			 "ring fd %d is not a function ring of version %d (include/nemo/fn_ring.h)",
			 fd, FN_RING_VERSION);
		errno = EPROTO;
		return NULL;
	}
	map = mmap(NULL, sizeof(hdr), PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(err, errlen, "ring fd %d: mmap: %s", fd, strerror(errno));
		return NULL;
	}
	return map;
}

struct sbx_sandbox *sbx_packet_start(struct sbx_host *host, const struct sbx_spec *spec, int core,
				     const struct sbx_packet_lease *lease,
				     const struct sbx_packet_config *cfg, char *err, size_t errlen)
{
	struct packet_launch pkt = {.batch = 32, .spin_us = 50};
	const struct fn_ring_shared *hdr = NULL;
	struct sbx_sandbox *sb = NULL;
	struct sbx_spec pspec;
	char dummy[8];
	int rc = 0;

	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!host || !spec || !spec->code[0] || !lease || core < 0 || core >= host->n_cores ||
	    lease->ring_fd < 0 || lease->wake_fd < 0 || lease->lease_fd < 0) {
		snprintf(err, errlen,
			 "packet start: a host, a spec, a core below %d and three "
			 "lease fds are needed",
			 host ? host->n_cores : 0);
		rc = EINVAL;
		goto out;
	}
	if (spec->runtime != SBX_RUNTIME_C && spec->runtime != SBX_RUNTIME_PYTHON) {
		snprintf(err, errlen, "%s: %s functions have no packet mode", spec->name,
			 sbx_runtime_name(spec->runtime));
		rc = ENOTSUP;
		goto out;
	}
	if (cfg && cfg->batch > FN_HOST_MAX_BATCH) {
		snprintf(err, errlen, "%s: packet batch %u is over the most a call takes, %d",
			 spec->name, cfg->batch, FN_HOST_MAX_BATCH);
		rc = EINVAL;
		goto out;
	}
	if (cfg && cfg->handler && (!cfg->handler[0] || strlen(cfg->handler) >= SBX_HANDLER_MAX)) {
		snprintf(err, errlen, "%s: the batch handler's name is empty or over %d characters",
			 spec->name, SBX_HANDLER_MAX - 1);
		rc = EINVAL;
		goto out;
	}
	hdr = map_ring_header(lease->ring_fd, err, errlen);
	if (!hdr) {
		rc = errno;
		goto out;
	}
	pspec = *spec;
	snprintf(pspec.handler, sizeof(pspec.handler), "%s",
		 cfg && cfg->handler ? cfg->handler : "handle_batch");
	if (cfg && cfg->batch)
		pkt.batch = cfg->batch;
	if (cfg && cfg->spin_us)
		pkt.spin_us = cfg->spin_us;
	pkt.fds[0] = lease->ring_fd;
	pkt.fds[1] = lease->wake_fd;
	pkt.fds[2] = lease->lease_fd;
	sb = create_sandbox(host, &pspec, core, false, &pkt);
	if (!sb) {
		rc = errno;
		snprintf(err, errlen, "%s: cannot create: %s", spec->name, strerror(rc));
		goto out;
	}
	sb->packet = true;
	sb->pkt_ring = hdr;
	hdr = NULL;
	/* the instance holds the only copies from here: its death ends the lease */
	close_lease(lease);
	rc = sbx_init(sb, err, errlen);
	if (rc) {
		sbx_destroy(sb);
		errno = rc == -ENOEXEC ? ENOEXEC : -rc;
		return NULL;
	}
	return sb;
out:
	if (hdr)
		munmap((void *)hdr, sizeof(*hdr));
	close_lease(lease ? lease : &(struct sbx_packet_lease){-1, -1, -1});
	if (err[0])
		NEMO_ERR(SBX_LOG, "%s", err);
	errno = rc;
	return NULL;
}

int sbx_packet_check(struct sbx_sandbox *sb, char *why, size_t len)
{
	char msg[SBX_MSG_MAX];
	int st;

	if (!sb || !sb->packet)
		return -EINVAL;
	if (sbx_state(sb) != SBX_STATE_DEAD)
		return 0;
	pthread_mutex_lock(&sb->lock);
	if (sb->killed_why) {
		snprintf(msg, sizeof(msg), "killed: %s", sb->killed_why);
		pthread_mutex_unlock(&sb->lock);
		goto out;
	}
	pthread_mutex_unlock(&sb->lock);
	if (!sb->reaped) {
		snprintf(msg, sizeof(msg), "killed");
		goto out;
	}
	st = sb->wait_status;
	if (WIFEXITED(st) && WEXITSTATUS(st) == PKT_EXIT_LEASE)
		snprintf(msg, sizeof(msg), "the NF closed the lease");
	else if (WIFEXITED(st) && WEXITSTATUS(st) == PKT_EXIT_RING)
		snprintf(msg, sizeof(msg),
			 "the NF's ring indices were out of range: the ring is "
			 "broken");
	else if (WIFEXITED(st) && WEXITSTATUS(st) == PKT_EXIT_HOST)
		snprintf(msg, sizeof(msg), "its control socket was closed");
	else
		classify_death(sb, msg, sizeof(msg));
out:
	if (why && len)
		snprintf(why, len, "%s", msg);
	return -EPIPE;
}

int sbx_packet_fd(const struct sbx_sandbox *sb)
{
	return sb && sb->packet ? sb->pidfd : -1;
}

int sbx_packet_stats(const struct sbx_sandbox *sb, struct sbx_packet_stats *st)
{
	const struct fn_ring_shared *h;

	if (!sb || !sb->packet || !sb->pkt_ring || !st)
		return -EINVAL;
	h = sb->pkt_ring;
	memset(st, 0, sizeof(*st));
	memcpy(st->function, h->function, sizeof(st->function) - 1);
	st->lcore = h->lcore_id;
	st->batches = __atomic_load_n(&h->consumer.batches, __ATOMIC_RELAXED);
	st->packets = __atomic_load_n(&h->consumer.packets, __ATOMIC_RELAXED);
	st->replies = __atomic_load_n(&h->consumer.replies, __ATOMIC_RELAXED);
	st->errors = __atomic_load_n(&h->consumer.errors, __ATOMIC_RELAXED);
	st->parks = __atomic_load_n(&h->consumer.parks, __ATOMIC_RELAXED);
	return 0;
}

bool sbx_is_packet(const struct sbx_sandbox *sb)
{
	return sb && sb->packet;
}
