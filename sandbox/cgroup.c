/* cgroup.c - the one owner of nemod's cgroup tree: detection, file helpers, v1 and v2 backends. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/log.h"
#include "sandbox_internal.h"

/* ---- the one set of file helpers ------------------------------------------------------------ */

static int join_path(char *buf, size_t len, const char *dir, const char *file)
{
	int n = file ? snprintf(buf, len, "%s/%s", dir, file) : snprintf(buf, len, "%s", dir);

	if (n < 0 || (size_t)n >= len) {
		NEMO_ERR(SBX_LOG, "cgroup path %s/%s is too long", dir, file ? file : "");
		return -ENAMETOOLONG;
	}
	return 0;
}

static int write_file(const char *dir, const char *file, const char *val, bool quiet)
{
	char path[SBX_CG_PATH + 64];
	size_t len = strlen(val);
	ssize_t n;
	int fd, rc = join_path(path, sizeof(path), dir, file);

	if (rc)
		return rc;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (!quiet)
			NEMO_ERR(SBX_LOG, "open %s: %s", path, strerror(-rc));
		return rc;
	}
	n = write(fd, val, len);
	/* cgroupfs takes a value in one write; a short one left the knob unchanged */
	rc = n < 0 ? -errno : (size_t)n != len ? -EIO : 0;
	close(fd);
	if (rc && !quiet)
		NEMO_ERR(SBX_LOG, "write '%s' to %s: %s", val, path, strerror(-rc));
	return rc;
}

int sbx_cg_write(const char *dir, const char *file, const char *val)
{
	return write_file(dir, file, val, false);
}

int sbx_cg_read(const char *dir, const char *file, char *buf, size_t len, bool quiet)
{
	char path[SBX_CG_PATH + 64];
	ssize_t n;
	int fd, rc = join_path(path, sizeof(path), dir, file);

	if (rc)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (!quiet || rc != -ENOENT)
			NEMO_ERR(SBX_LOG, "open %s: %s", path, strerror(-rc));
		return rc;
	}
	n = read(fd, buf, len - 1);
	rc = n < 0 ? -errno : (int)n;
	close(fd);
	if (rc < 0) {
		NEMO_ERR(SBX_LOG, "read %s: %s", path, strerror(-rc));
		return rc;
	}
	buf[n] = '\0';
	return rc;
}

int sbx_cg_read_u64(const char *dir, const char *file, uint64_t *val)
{
	char buf[64];
	int rc = sbx_cg_read(dir, file, buf, sizeof(buf), false);

	if (rc < 0)
		return rc;
	*val = strtoull(buf, NULL, 10);
	return 0;
}

int sbx_cg_read_key_u64(const char *dir, const char *file, const char *key, uint64_t *val)
{
	char buf[4096];
	size_t klen = strlen(key);
	int rc = sbx_cg_read(dir, file, buf, sizeof(buf), false);

	*val = 0;
	if (rc < 0)
		return rc;
	for (char *line = buf; line && *line;
	     line = strchr(line, '\n'), line = line ? line + 1 : 0) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
			*val = strtoull(line + klen + 1, NULL, 10);
			return 0;
		}
	}
	return -ENOENT;
}

/*
 * /proc/<pid>/cgroup into buf (NUL-terminated), from `fd` if it is open (read from offset 0:
 * the kernel writes the file anew at each read), else by path. Returns its length, -ESRCH if
 * the process is gone, or -errno.
 */
static int proc_cgroup_read(pid_t pid, int fd, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int rc;

	if (fd < 0) {
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
		rc = sbx_cg_read(path, NULL, buf, len, true);
		return rc == -ENOENT ? -ESRCH : rc;
	}
	n = pread(fd, buf, len - 1, 0);
	if (n < 0)
		return errno == ESRCH || errno == ENOENT ? -ESRCH : -errno;
	buf[n] = '\0';
	return (int)n;
}

static int make_dir(const char *path)
{
	if (mkdir(path, 0755) && errno != EEXIST) {
		int e = errno;

		NEMO_ERR(SBX_LOG, "mkdir %s: %s", path, strerror(e));
		return -e;
	}
	return 0;
}

/*
 * rmdir a cgroup whose processes were killed and reaped. The kernel may list an exiting task
 * for a moment after it was reaped, so EBUSY is retried for up to a second.
 */
static int remove_dir(const char *path)
{
	int e;

	for (int i = 0; i < 1000; i++) {
		if (rmdir(path) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			break;
		usleep(1000);
	}
	e = errno;
	NEMO_ERR(SBX_LOG, "rmdir %s: %s", path, strerror(e));
	return -e;
}

/* Move every pid listed in dir_from/cgroup.procs into dir_to. */
static int migrate_procs(const char *dir_from, const char *dir_to)
{
	char buf[8192];
	int rc = sbx_cg_read(dir_from, "cgroup.procs", buf, sizeof(buf), false);

	if (rc < 0)
		return rc;
	for (char *save, *tok = strtok_r(buf, "\n", &save); tok;
	     tok = strtok_r(NULL, "\n", &save)) {
		/* a task that exited meanwhile is not an error */
		rc = write_file(dir_to, "cgroup.procs", tok, true);
		if (rc && rc != -ESRCH) {
			NEMO_ERR(SBX_LOG, "move pid %s from %s to %s: %s", tok, dir_from, dir_to,
				 strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* SIGKILL every process dir/cgroup.procs lists (v1, and v2 kernels without cgroup.kill). */
static int kill_procs(const char *dir)
{
	char buf[8192];
	int rc = sbx_cg_read(dir, "cgroup.procs", buf, sizeof(buf), true);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	for (char *save, *tok = strtok_r(buf, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save))
		kill((pid_t)atoi(tok), SIGKILL);
	return 0;
}

/*
 * A host that died left sandboxes alive under its root (their init is reparented, not
 * killed). A new host on the same root kills what each sbx-* cgroup under `dir` still holds
 * and removes it, so that nothing outlives a crash for longer than the restart.
 */
static void remove_leftovers(const struct sbx_host *host, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d))) {
		struct sbx_cgroup cg = {.dirfd = -1};

		if (strncmp(de->d_name, "sbx-", 4))
			continue;
		snprintf(cg.freezer, sizeof(cg.freezer), "%s/%s", dir, de->d_name);
		memcpy(cg.memory, cg.freezer, sizeof(cg.memory));
		/* a v1-frozen task dies only once thawed; the v2 freezer lets SIGKILL through */
		if (host->cg == &sbx_cgroup_v1_ops)
			write_file(cg.freezer, "freezer.state", "THAWED", true);
		host->cg->kill(&cg);
		remove_dir(cg.freezer);
		n++;
	}
	if (d)
		closedir(d);
	if (n)
		NEMO_WARN(SBX_LOG, "removed %d sandbox cgroups a previous host left in %s", n, dir);
}

static bool has_word(const char *list, const char *word)
{
	size_t len = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += len)
		if ((p == list || p[-1] == ' ' || p[-1] == ',') &&
		    (p[len] == '\0' || p[len] == ' ' || p[len] == '\n' || p[len] == ','))
			return true;
	return false;
}

/* ---- detection: the one place that decides v1 or v2 ---------------------------------------- */

#define CG_MOUNT "/sys/fs/cgroup"

static bool is_cgroup2(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

/* Where the unified hierarchy is mounted: /sys/fs/cgroup (unified) or .../unified (hybrid). */
static const char *v2_mount_point(void)
{
	return is_cgroup2(CG_MOUNT) ? CG_MOUNT : CG_MOUNT "/unified";
}

int sbx_cgroup_detect(char *why, size_t len)
{
	char buf[256] = "", dummy[8];

	if (!why) {
		why = dummy;
		len = sizeof(dummy);
	}
	if (is_cgroup2(CG_MOUNT)) {
		snprintf(why, len, CG_MOUNT " is the unified hierarchy (cgroup2)");
		return SBX_CGROUP_V2;
	}
	if (access(CG_MOUNT "/cpu/cgroup.procs", F_OK) == 0 &&
	    access(CG_MOUNT "/memory/cgroup.procs", F_OK) == 0) {
		snprintf(
			why, len,
			"the cpu and memory controllers are mounted as v1 hierarchies under " CG_MOUNT);
		return SBX_CGROUP_V1;
	}
	/* hybrid with every controller left on the unified side: rare, but it is v2 */
	if (sbx_cg_read(CG_MOUNT "/unified", "cgroup.controllers", buf, sizeof(buf), true) > 0 &&
	    has_word(buf, "cpu") && has_word(buf, "memory")) {
		snprintf(why, len, CG_MOUNT "/unified holds the cpu and memory controllers");
		return SBX_CGROUP_V2;
	}
	snprintf(why, len,
		 "no cgroup v2 hierarchy at " CG_MOUNT " and no v1 cpu/memory controllers");
	return -ENOENT;
}

/*
 * This process's cgroup in the unified hierarchy (the "0::" line of /proc/self/cgroup),
 * relative to its mount: "/" or "/system.slice/nemod.service". A process that moved itself
 * into SBX_CG_LEAF reports that leaf's parent: the cgroup it was given.
 */
static int own_v2_cgroup(char *rel, size_t len)
{
	char buf[4096], *line;
	int rc = sbx_cg_read("/proc/self/cgroup", NULL, buf, sizeof(buf), false);
	size_t n;

	if (rc < 0)
		return rc;
	line = strncmp(buf, "0::", 3) == 0 ? buf : strstr(buf, "\n0::");
	if (!line) {
		NEMO_ERR(SBX_LOG, "/proc/self/cgroup has no cgroup v2 line (0::)");
		return -ENOENT;
	}
	line += line == buf ? 3 : 4;
	line[strcspn(line, "\n")] = '\0';
	n = strlen(line);
	if (n > strlen("/" SBX_CG_LEAF) &&
	    !strcmp(line + n - strlen("/" SBX_CG_LEAF), "/" SBX_CG_LEAF))
		line[n - strlen("/" SBX_CG_LEAF)] = '\0';
	if ((size_t)snprintf(rel, len, "%s", line) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* <mount><own cgroup>: the directory nemod's v2 tree goes in. */
static int v2_base(const char *mount, char *buf, size_t len)
{
	char rel[SBX_CG_PATH];
	int rc = own_v2_cgroup(rel, sizeof(rel));

	if (rc)
		return rc;
	if ((size_t)snprintf(buf, len, "%s%s", mount, strcmp(rel, "/") ? rel : "") >= len)
		return -ENAMETOOLONG;
	return 0;
}

static const char *const v1_all_ctrls[] = {"memory", "pids", "freezer", "cpu", "cpuacct", "cpuset"};

int sbx_cgroup_root_dirs(const char *root, char (*dirs)[512], int max)
{
	char base[SBX_CG_PATH];
	int mode = sbx_cgroup_detect(NULL, 0), n = 0, rc;

	if (mode < 0)
		return mode;
	if (mode == SBX_CGROUP_V1) {
		for (size_t i = 0; i < 6 && n < max; i++)
			snprintf(dirs[n++], 512, CG_MOUNT "/%s/%s", v1_all_ctrls[i], root);
		return n;
	}
	rc = v2_base(v2_mount_point(), base, sizeof(base));
	if (rc)
		return rc;
	if (max > 0)
		snprintf(dirs[n++], 512, "%s/%s", base, root);
	return n;
}

/* ---- v1: one hierarchy per controller ------------------------------------------------------ */

/*
 * Layout: the CPU-side controllers (cpu, cpuacct, cpuset) hold <root>/core<N>, the harvest
 * cgroup of core N, and a sandbox joins it directly: the weight and cpuset apply to every
 * sandbox of the core, and its accounting reads one directory. The memory, pids and freezer
 * hierarchies hold one <root>/sbx-<id> per sandbox for its limits and freezer. v1
 * hierarchies are independent, so moving a sandbox to another core rewrites only its
 * CPU-side membership and its memory charge stays where it is. v1 has no delegation: the
 * tree is made at each hierarchy's root.
 */
static const char *const v1_cpu_ctrls[] = {"cpu", "cpuacct", "cpuset"};
static const char *const v1_sbx_ctrls[] = {"memory", "pids", "freezer"};

static int v1_core_path(const struct sbx_host *host, int core, const char *ctrl, char *buf,
			size_t len)
{
	if (core < 0 || core >= host->n_cores)
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s/%s/%s/core%d", host->v1_mount, ctrl ? ctrl : "cpu",
			     host->cgroup_root, core) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static int v1_host_init(struct sbx_host *host)
{
	char path[SBX_CG_PATH], cpus[256], mems[256], val[16];
	int rc;

	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", host->v1_mount, v1_sbx_ctrls[i],
			 host->cgroup_root);
		rc = make_dir(path);
		if (rc)
			return rc;
		remove_leftovers(host, path);
		snprintf(path, sizeof(path), "%s/%s/%s", host->v1_mount, v1_cpu_ctrls[i],
			 host->cgroup_root);
		rc = make_dir(path);
		if (rc)
			return rc;
	}
	/* a v1 cpuset starts empty: give the root the whole machine's cpus and mems */
	snprintf(path, sizeof(path), "%s/cpuset", host->v1_mount);
	rc = sbx_cg_read(path, "cpuset.mems", mems, sizeof(mems), false);
	if (rc < 0)
		return rc;
	rc = sbx_cg_read(path, "cpuset.cpus", cpus, sizeof(cpus), false);
	if (rc < 0)
		return rc;
	mems[strcspn(mems, "\n")] = '\0';
	cpus[strcspn(cpus, "\n")] = '\0';
	snprintf(path, sizeof(path), "%s/cpuset/%s", host->v1_mount, host->cgroup_root);
	rc = sbx_cg_write(path, "cpuset.cpus", cpus);
	rc = rc ? rc : sbx_cg_write(path, "cpuset.mems", mems);
	if (rc)
		return rc;
	for (int core = 0; core < host->n_cores; core++) {
		for (size_t i = 0; i < 3; i++) {
			v1_core_path(host, core, v1_cpu_ctrls[i], path, sizeof(path));
			rc = make_dir(path);
			if (rc)
				return rc;
		}
		v1_core_path(host, core, "cpuset", path, sizeof(path));
		snprintf(val, sizeof(val), "%d", core);
		rc = sbx_cg_write(path, "cpuset.cpus", val);
		rc = rc ? rc : sbx_cg_write(path, "cpuset.mems", mems);
		if (rc)
			return rc;
	}
	return 0;
}

static void v1_host_fini(struct sbx_host *host)
{
	char path[SBX_CG_PATH];

	for (int core = 0; core < host->n_cores; core++)
		for (size_t i = 0; i < 3; i++)
			if (!v1_core_path(host, core, v1_cpu_ctrls[i], path, sizeof(path)))
				remove_dir(path);
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", host->v1_mount, v1_cpu_ctrls[i],
			 host->cgroup_root);
		remove_dir(path);
		snprintf(path, sizeof(path), "%s/%s/%s", host->v1_mount, v1_sbx_ctrls[i],
			 host->cgroup_root);
		remove_dir(path);
	}
}

static void v1_fill_join(struct sbx_host *host, struct sbx_cgroup *cg)
{
	char *dirs[3] = {cg->memory, cg->pids, cg->freezer};

	cg->n_join = 0;
	for (size_t i = 0; i < 3; i++)
		snprintf(cg->join[cg->n_join++], SBX_CG_PATH, "%s/tasks", dirs[i]);
	for (size_t i = 0; i < 3; i++) {
		char *p = cg->join[cg->n_join++];

		v1_core_path(host, cg->core, v1_cpu_ctrls[i], p, SBX_CG_PATH - 16);
		strcat(p, "/tasks");
	}
}

static int v1_sandbox_destroy(struct sbx_host *host, struct sbx_cgroup *cg)
{
	char *dirs[3] = {cg->memory, cg->pids, cg->freezer};
	int rc = 0, r;

	(void)host;
	for (size_t i = 0; i < 3; i++) {
		if (!dirs[i][0])
			continue;
		r = remove_dir(dirs[i]);
		rc = rc ? rc : r;
		dirs[i][0] = '\0';
	}
	return rc;
}

static int v1_sandbox_create(struct sbx_host *host, uint64_t id, int core,
			     const struct sbx_spec *spec, struct sbx_cgroup *cg)
{
	char val[32], path[SBX_CG_PATH + 64];
	int rc;

	memset(cg, 0, sizeof(*cg));
	cg->dirfd = -1;
	cg->core = core;
	snprintf(cg->memory, sizeof(cg->memory), "%s/memory/%s/sbx-%" PRIu64, host->v1_mount,
		 host->cgroup_root, id);
	snprintf(cg->pids, sizeof(cg->pids), "%s/pids/%s/sbx-%" PRIu64, host->v1_mount,
		 host->cgroup_root, id);
	snprintf(cg->freezer, sizeof(cg->freezer), "%s/freezer/%s/sbx-%" PRIu64, host->v1_mount,
		 host->cgroup_root, id);
	rc = make_dir(cg->memory);
	if (rc)
		goto fail;
	snprintf(val, sizeof(val), "%" PRIu64, (uint64_t)spec->memory_mb << 20);
	rc = sbx_cg_write(cg->memory, "memory.limit_in_bytes", val);
	if (rc)
		goto fail;
	/* with swap accounting, swap must not extend the limit: OOM at memory_mb */
	snprintf(path, sizeof(path), "%s/memory.memsw.limit_in_bytes", cg->memory);
	if (access(path, W_OK) == 0) {
		rc = sbx_cg_write(path, NULL, val);
		if (rc)
			goto fail;
	}
	rc = make_dir(cg->pids);
	if (rc)
		goto fail;
	snprintf(val, sizeof(val), "%u", spec->max_pids);
	rc = sbx_cg_write(cg->pids, "pids.max", val);
	if (rc)
		goto fail;
	rc = make_dir(cg->freezer);
	if (rc)
		goto fail;
	v1_fill_join(host, cg);
	return 0;
fail:
	v1_sandbox_destroy(host, cg);
	return rc;
}

/* A zygote's fork: the platform writes it into every cgroup the child of a clone joins
 * (cgroup.procs beside each join file: all its threads). */
static int v1_attach(struct sbx_cgroup *cg, pid_t pid)
{
	char val[16], path[SBX_CG_PATH + 16];
	size_t len;
	int rc;

	snprintf(val, sizeof(val), "%d", (int)pid);
	for (int i = 0; i < cg->n_join; i++) {
		len = strlen(cg->join[i]) - strlen("tasks");
		snprintf(path, sizeof(path), "%.*scgroup.procs", (int)len, cg->join[i]);
		rc = sbx_cg_write(path, NULL, val);
		if (rc)
			return rc;
	}
	return 0;
}

static int v1_freeze(struct sbx_cgroup *cg, bool frozen)
{
	return sbx_cg_write(cg->freezer, "freezer.state", frozen ? "FROZEN" : "THAWED");
}

static int v1_is_frozen(struct sbx_cgroup *cg)
{
	char buf[32];
	int rc = sbx_cg_read(cg->freezer, "freezer.state", buf, sizeof(buf), false);

	return rc < 0 ? rc : strncmp(buf, "FROZEN", 6) == 0;
}

/*
 * The freezer cgroup lists exactly this sandbox's processes. Freeze it first, so that none
 * can fork past the kill (v1 has no cgroup.kill), kill every task, then thaw: a frozen task
 * dies only once thawed.
 */
static int v1_kill(struct sbx_cgroup *cg)
{
	uint64_t deadline = nemo_now_ns() + SBX_FREEZE_TIMEOUT_NS;
	int rc = v1_freeze(cg, true);

	while (!rc && v1_is_frozen(cg) == 0 && nemo_now_ns() < deadline)
		usleep(100);
	kill_procs(cg->freezer);
	if (!rc)
		rc = v1_freeze(cg, false);
	return rc;
}

static int v1_move(struct sbx_host *host, struct sbx_cgroup *cg, int core)
{
	char to[SBX_CG_PATH];
	int rc;

	for (size_t i = 0; i < 3; i++) {
		rc = v1_core_path(host, core, v1_cpu_ctrls[i], to, sizeof(to));
		rc = rc ? rc : migrate_procs(cg->freezer, to);
		if (rc)
			return rc;
	}
	cg->core = core;
	v1_fill_join(host, cg);
	return 0;
}

static int v1_memory_bytes(struct sbx_cgroup *cg, uint64_t *bytes)
{
	return sbx_cg_read_u64(cg->memory, "memory.usage_in_bytes", bytes);
}

static int v1_oom_kills(struct sbx_cgroup *cg, uint64_t *kills)
{
	return sbx_cg_read_key_u64(cg->memory, "memory.oom_control", "oom_kill", kills);
}

static int v1_set_quota(const char *dir, uint64_t quota_us, uint64_t period_us)
{
	char v[32];
	int rc;

	if (quota_us == 0)
		return sbx_cg_write(dir, "cpu.cfs_quota_us", "-1");
	snprintf(v, sizeof(v), "%" PRIu64, period_us);
	rc = sbx_cg_write(dir, "cpu.cfs_period_us", v);
	if (rc)
		return rc;
	snprintf(v, sizeof(v), "%" PRIu64, quota_us);
	return sbx_cg_write(dir, "cpu.cfs_quota_us", v);
}

/* The hierarchy and the path inside it of one join file: <mount>/<ctrl>/<path>/tasks. */
static int v1_join_split(const char *mount, const char *join, char *ctrl, size_t ctrl_len,
			 char *path, size_t path_len)
{
	size_t mlen = strlen(mount), jlen = strlen(join), tail = strlen("/tasks");
	const char *c, *slash;

	if (jlen <= mlen + tail || strncmp(join, mount, mlen) || join[mlen] != '/')
		return -EINVAL;
	c = join + mlen + 1;
	slash = strchr(c, '/');
	if (!slash || (size_t)(slash - c) >= ctrl_len ||
	    (size_t)(join + jlen - tail - slash) >= path_len)
		return -EINVAL;
	memcpy(ctrl, c, (size_t)(slash - c));
	ctrl[slash - c] = '\0';
	memcpy(path, slash, (size_t)(join + jlen - tail - slash));
	path[join + jlen - tail - slash] = '\0';
	return 0;
}

static int v1_self_join_open(const struct sbx_cgroup *cg, bool core_too, int *fds)
{
	/* v1_fill_join: the sandbox's own three first, then its core's */
	int n = core_too ? cg->n_join : 3;

	for (int i = 0; i < n; i++) {
		fds[i] = open(cg->join[i], O_WRONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			int rc = -errno;

			NEMO_ERR(SBX_LOG, "%s: %s", cg->join[i], strerror(-rc));
			while (i-- > 0)
				close(fds[i]);
			return rc;
		}
	}
	return n;
}

static int v1_holds(const struct sbx_host *host, const struct sbx_cgroup *cg, pid_t pid,
		    int proc_fd)
{
	char buf[4096];
	int rc = proc_cgroup_read(pid, proc_fd, buf, sizeof(buf)), found = 0;

	if (rc < 0)
		return rc;
	for (int i = 0; i < cg->n_join; i++) {
		char ctrl[32], want[SBX_CG_PATH], *line = buf;

		if (v1_join_split(host->v1_mount, cg->join[i], ctrl, sizeof(ctrl), want,
				  sizeof(want)))
			return -EINVAL;
		/* "N:ctrl,ctrl:/path" per hierarchy */
		for (char *eol; line && *line; line = eol ? eol + 1 : NULL) {
			char *ctrls = strchr(line, ':'), *p;
			size_t len;

			eol = strchr(line, '\n');
			len = eol ? (size_t)(eol - line) : strlen(line);
			p = ctrls ? memchr(ctrls + 1, ':', len - (size_t)(ctrls + 1 - line)) : NULL;
			if (!p)
				continue;
			*p = '\0';
			if (eol)
				*eol = '\0';
			if (has_word(ctrls + 1, ctrl)) {
				found += !strcmp(p + 1, want);
				*p = ':';
				if (eol)
					*eol = '\n';
				break;
			}
			*p = ':';
			if (eol)
				*eol = '\n';
		}
	}
	return found == cg->n_join;
}

/* memory, pids and freezer do not depend on the core: only the CPU-side join files change */
static int v1_retarget(struct sbx_host *host, struct sbx_cgroup *cg, int core,
		       const struct sbx_spec *spec, uint64_t id)
{
	(void)spec;
	(void)id;
	cg->core = core;
	v1_fill_join(host, cg);
	return 0;
}

static int v1_usage(const char *dir, uint64_t *ns)
{
	return sbx_cg_read_u64(dir, "cpuacct.usage", ns);
}

const struct sbx_cgroup_ops sbx_cgroup_v1_ops = {
	.name = "v1",
	.host_init = v1_host_init,
	.host_fini = v1_host_fini,
	.core_path = v1_core_path,
	.sandbox_create = v1_sandbox_create,
	.sandbox_destroy = v1_sandbox_destroy,
	.freeze = v1_freeze,
	.is_frozen = v1_is_frozen,
	.kill = v1_kill,
	.attach = v1_attach,
	.self_join_open = v1_self_join_open,
	.holds = v1_holds,
	.retarget = v1_retarget,
	.move = v1_move,
	.memory_bytes = v1_memory_bytes,
	.oom_kills = v1_oom_kills,
	.weight_knob = "cpu.shares",
	.weight_lowest = "2",
	.weight_default = "1024",
	.set_quota = v1_set_quota,
	.usage = v1_usage,
	.threads_file = "tasks",
	.proc_controller = "cpuset",
};

/* ---- v2: one unified hierarchy, inside nemod's delegated cgroup ----------------------------- */

/*
 * Layout: <own>/<root>/core<N> (cpuset N, the weight the scheduler sets) holds one sbx-<id>
 * per sandbox with memory.max, pids.max and cgroup.freeze. <own> is the cgroup nemod was
 * started in (systemd: its service's, delegated with Delegate=yes), never the hierarchy's
 * root; its processes move to the leaf <own>/SBX_CG_LEAF, since a cgroup that hands domain
 * controllers to its children may hold no processes itself. The sandbox is cloned straight
 * into its cgroup with clone3(CLONE_INTO_CGROUP), so there is no join at all. v2 cannot
 * rename a cgroup to another parent: a move makes sbx-<id> under the new core, migrates the
 * processes and removes the old directory. Pages charged before the move stay charged to the
 * old (dying) cgroup until they are freed; the limit applies to new charges.
 */
static const char *const v2_ctrls[] = {"cpu", "cpuset", "memory", "pids"};

static int v2_core_path(const struct sbx_host *host, int core, const char *ctrl, char *buf,
			size_t len)
{
	(void)ctrl;
	if (core < 0 || core >= host->n_cores)
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s/%s/core%d", host->v2_base, host->cgroup_root, core) >=
	    len)
		return -ENAMETOOLONG;
	return 0;
}

/* Hand `ctrls` down from `dir` to its children, one by one so that a refusal names one. */
static int v2_enable(const char *dir, const char *const *ctrls, size_t n)
{
	char val[16];
	int rc;

	for (size_t i = 0; i < n; i++) {
		snprintf(val, sizeof(val), "+%s", ctrls[i]);
		rc = write_file(dir, "cgroup.subtree_control", val, true);
		if (rc) {
			NEMO_ERR(SBX_LOG,
				 "cgroup v2: cannot enable the '%s' controller in %s/"
				 "cgroup.subtree_control: %s; nemod's cgroup must be delegated to "
				 "it (systemd unit: Delegate=yes)",
				 ctrls[i], dir, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/*
 * Make nemod's cgroup ready to hold a tree: every controller needed is offered to it (else
 * it was not delegated: say which and how to fix it), its processes move into the leaf, and
 * the controllers are enabled for its children.
 */
static int v2_own_cgroup(struct sbx_host *host)
{
	char avail[256], leaf[SBX_CG_PATH + 32];
	bool root = !strcmp(host->v2_base, host->v2_mount);
	int rc = sbx_cg_read(host->v2_base, "cgroup.controllers", avail, sizeof(avail), false);

	if (rc < 0)
		return rc;
	avail[strcspn(avail, "\n")] = '\0';
	for (size_t i = 0; i < sizeof(v2_ctrls) / sizeof(v2_ctrls[0]); i++) {
		if (has_word(avail, v2_ctrls[i]))
			continue;
		NEMO_ERR(SBX_LOG,
			 "cgroup v2: the '%s' controller is not available in nemod's cgroup %s "
			 "(it has '%s'): the cgroup is not delegated to nemod; start nemod from a "
			 "systemd unit with Delegate=yes",
			 v2_ctrls[i], host->v2_base, avail);
		return -ENOENT;
	}
	/* the hierarchy's root may hold processes and enable controllers: no leaf needed */
	if (!root) {
		snprintf(leaf, sizeof(leaf), "%s/" SBX_CG_LEAF, host->v2_base);
		rc = make_dir(leaf);
		rc = rc ? rc : migrate_procs(host->v2_base, leaf);
		if (rc)
			return rc;
	}
	return v2_enable(host->v2_base, v2_ctrls, sizeof(v2_ctrls) / sizeof(v2_ctrls[0]));
}

static int v2_host_init(struct sbx_host *host)
{
	static const char *const sbx_ctrls[] = {"memory", "pids"};
	char path[SBX_CG_PATH], val[16];
	int rc = v2_base(host->v2_mount, host->v2_base, sizeof(host->v2_base));

	if (rc)
		return rc;
	rc = v2_own_cgroup(host);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/%s", host->v2_base, host->cgroup_root);
	rc = make_dir(path);
	rc = rc ? rc : v2_enable(path, v2_ctrls, sizeof(v2_ctrls) / sizeof(v2_ctrls[0]));
	if (rc)
		return rc;
	for (int core = 0; core < host->n_cores; core++) {
		rc = v2_core_path(host, core, NULL, path, sizeof(path));
		rc = rc ? rc : make_dir(path);
		if (rc)
			return rc;
		remove_leftovers(host, path);
		snprintf(val, sizeof(val), "%d", core);
		rc = sbx_cg_write(path, "cpuset.cpus", val);
		rc = rc ? rc : v2_enable(path, sbx_ctrls, 2);
		if (rc)
			return rc;
	}
	return 0;
}

static void v2_host_fini(struct sbx_host *host)
{
	char path[SBX_CG_PATH];

	for (int core = 0; core < host->n_cores; core++)
		if (!v2_core_path(host, core, NULL, path, sizeof(path)))
			remove_dir(path);
	snprintf(path, sizeof(path), "%s/%s", host->v2_base, host->cgroup_root);
	remove_dir(path);
}

static int v2_sandbox_destroy(struct sbx_host *host, struct sbx_cgroup *cg)
{
	int rc = 0;

	(void)host;
	if (cg->dirfd >= 0) {
		close(cg->dirfd);
		cg->dirfd = -1;
	}
	if (cg->memory[0])
		rc = remove_dir(cg->memory);
	cg->memory[0] = cg->pids[0] = cg->freezer[0] = '\0';
	return rc;
}

static int v2_make_sandbox_dir(const char *dir, const struct sbx_spec *spec)
{
	char path[SBX_CG_PATH + 32], val[32];
	int rc = make_dir(dir);

	if (rc)
		return rc;
	snprintf(val, sizeof(val), "%" PRIu64, (uint64_t)spec->memory_mb << 20);
	rc = sbx_cg_write(dir, "memory.max", val);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/memory.swap.max", dir);
	if (access(path, W_OK) == 0) {
		rc = sbx_cg_write(path, NULL, "0");
		if (rc)
			return rc;
	}
	snprintf(val, sizeof(val), "%u", spec->max_pids);
	return sbx_cg_write(dir, "pids.max", val);
}

static int v2_open_dir(struct sbx_cgroup *cg)
{
	cg->dirfd = open(cg->memory, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cg->dirfd < 0) {
		int rc = -errno;

		NEMO_ERR(SBX_LOG, "open %s: %s", cg->memory, strerror(-rc));
		return rc;
	}
	return 0;
}

static int v2_sandbox_create(struct sbx_host *host, uint64_t id, int core,
			     const struct sbx_spec *spec, struct sbx_cgroup *cg)
{
	char core_dir[SBX_CG_PATH];
	int rc;

	memset(cg, 0, sizeof(*cg));
	cg->dirfd = -1;
	cg->core = core;
	rc = v2_core_path(host, core, NULL, core_dir, sizeof(core_dir) - 32);
	if (rc)
		return rc;
	snprintf(cg->memory, sizeof(cg->memory), "%s/sbx-%" PRIu64, core_dir, id);
	rc = v2_make_sandbox_dir(cg->memory, spec);
	if (rc)
		goto fail;
	memcpy(cg->pids, cg->memory, sizeof(cg->pids));
	memcpy(cg->freezer, cg->memory, sizeof(cg->freezer));
	rc = v2_open_dir(cg);
	if (rc)
		goto fail;
	return 0;
fail:
	v2_sandbox_destroy(host, cg);
	return rc;
}

static int v2_attach(struct sbx_cgroup *cg, pid_t pid)
{
	char val[16];

	snprintf(val, sizeof(val), "%d", (int)pid);
	return sbx_cg_write(cg->memory, "cgroup.procs", val);
}

static int v2_self_join_open(const struct sbx_cgroup *cg, bool core_too, int *fds)
{
	(void)cg;
	(void)core_too;
	(void)fds;
	return -ENOTSUP;
}

/* sbx-<id> lives under its core's cgroup: made again under the new one (it is empty) */
static int v2_retarget(struct sbx_host *host, struct sbx_cgroup *cg, int core,
		       const struct sbx_spec *spec, uint64_t id)
{
	int rc = v2_sandbox_destroy(host, cg);

	return rc ? rc : v2_sandbox_create(host, id, core, spec, cg);
}

static int v2_holds(const struct sbx_host *host, const struct sbx_cgroup *cg, pid_t pid,
		    int proc_fd)
{
	char buf[4096], *line;
	size_t skip = strlen(host->v2_mount);
	int rc = proc_cgroup_read(pid, proc_fd, buf, sizeof(buf));

	if (rc < 0)
		return rc;
	line = strstr(buf, "0::");
	if (!line || (line != buf && line[-1] != '\n') || strlen(cg->memory) <= skip)
		return -ENOENT;
	line += 3;
	line[strcspn(line, "\n")] = '\0';
	return !strcmp(line, cg->memory + skip);
}

static int v2_freeze(struct sbx_cgroup *cg, bool frozen)
{
	return sbx_cg_write(cg->freezer, "cgroup.freeze", frozen ? "1" : "0");
}

static int v2_is_frozen(struct sbx_cgroup *cg)
{
	uint64_t v;
	int rc = sbx_cg_read_key_u64(cg->freezer, "cgroup.events", "frozen", &v);

	return rc ? rc : v == 1;
}

static int v2_kill(struct sbx_cgroup *cg)
{
	char path[SBX_CG_PATH + 32];

	/* cgroup.kill (5.14): the kernel kills the whole subtree, frozen or not, fork races too */
	snprintf(path, sizeof(path), "%s/cgroup.kill", cg->freezer);
	if (access(path, F_OK) == 0)
		return sbx_cg_write(path, NULL, "1");
	return kill_procs(cg->freezer);
}

static int v2_move(struct sbx_host *host, struct sbx_cgroup *cg, int core)
{
	char dir[SBX_CG_PATH];
	const char *base = strrchr(cg->memory, '/');
	struct sbx_spec limits;
	uint64_t v;
	int rc;

	rc = v2_core_path(host, core, NULL, dir, sizeof(dir) - 64);
	if (rc)
		return rc;
	strcat(dir, base);
	/* carry the limits over */
	sbx_spec_defaults(&limits);
	rc = sbx_cg_read_u64(cg->memory, "memory.max", &v);
	if (rc)
		return rc;
	limits.memory_mb = (uint32_t)(v >> 20);
	rc = sbx_cg_read_u64(cg->memory, "pids.max", &v);
	if (rc)
		return rc;
	limits.max_pids = (uint32_t)v;
	rc = v2_make_sandbox_dir(dir, &limits);
	if (rc)
		return rc;
	/* a frozen sandbox stays frozen in its new place */
	if (v2_is_frozen(cg) == 1) {
		rc = sbx_cg_write(dir, "cgroup.freeze", "1");
		if (rc)
			goto fail;
	}
	rc = migrate_procs(cg->memory, dir);
	if (rc)
		goto fail;
	v2_sandbox_destroy(host, cg);
	snprintf(cg->memory, sizeof(cg->memory), "%s", dir);
	memcpy(cg->pids, cg->memory, sizeof(cg->pids));
	memcpy(cg->freezer, cg->memory, sizeof(cg->freezer));
	cg->core = core;
	return v2_open_dir(cg);
fail:
	rmdir(dir);
	return rc;
}

static int v2_memory_bytes(struct sbx_cgroup *cg, uint64_t *bytes)
{
	return sbx_cg_read_u64(cg->memory, "memory.current", bytes);
}

static int v2_oom_kills(struct sbx_cgroup *cg, uint64_t *kills)
{
	return sbx_cg_read_key_u64(cg->memory, "memory.events", "oom_kill", kills);
}

static int v2_set_quota(const char *dir, uint64_t quota_us, uint64_t period_us)
{
	char v[64];

	if (quota_us == 0)
		snprintf(v, sizeof(v), "max %" PRIu64, period_us ? period_us : 100000);
	else
		snprintf(v, sizeof(v), "%" PRIu64 " %" PRIu64, quota_us, period_us);
	return sbx_cg_write(dir, "cpu.max", v);
}

/* cpu.stat counts the cgroup and its descendants, removed ones included, in microseconds. */
static int v2_usage(const char *dir, uint64_t *ns)
{
	uint64_t us;
	int rc = sbx_cg_read_key_u64(dir, "cpu.stat", "usage_usec", &us);

	if (rc == -ENOENT)
		NEMO_ERR(SBX_LOG, "%s/cpu.stat has no usage_usec", dir);
	*ns = us * 1000;
	return rc;
}

const struct sbx_cgroup_ops sbx_cgroup_v2_ops = {
	.name = "v2",
	.host_init = v2_host_init,
	.host_fini = v2_host_fini,
	.core_path = v2_core_path,
	.sandbox_create = v2_sandbox_create,
	.sandbox_destroy = v2_sandbox_destroy,
	.freeze = v2_freeze,
	.is_frozen = v2_is_frozen,
	.kill = v2_kill,
	.attach = v2_attach,
	.self_join_open = v2_self_join_open,
	.holds = v2_holds,
	.retarget = v2_retarget,
	.move = v2_move,
	.memory_bytes = v2_memory_bytes,
	.oom_kills = v2_oom_kills,
	.weight_knob = "cpu.weight",
	.weight_lowest = "1",
	.weight_default = "100",
	.set_quota = v2_set_quota,
	.usage = v2_usage,
	.threads_file = "cgroup.threads",
	.proc_controller = "",
};

/* ---- the interface everyone else uses (include/nemo/cgroup.h) ------------------------------- */

int sbx_host_core_cgroup(const struct sbx_host *host, int core, const char *ctrl, char *buf,
			 size_t len)
{
	return host->cg->core_path(host, core, ctrl, buf, len);
}

int sbx_sandbox_cgroup(const struct sbx_sandbox *sb, const char *ctrl, char *buf, size_t len)
{
	const char *dir = !ctrl || !strcmp(ctrl, "memory") ? sb->cg.memory
			  : !strcmp(ctrl, "pids")	   ? sb->cg.pids
			  : !strcmp(ctrl, "freezer")	   ? sb->cg.freezer
							   : NULL;

	if (!dir || !dir[0])
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s", dir) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int sbx_cgroup_core_idle(struct sbx_host *host, int core, bool idle)
{
	const struct sbx_cgroup_ops *ops = host->cg;
	char dir[SBX_CG_PATH], buf[16];
	int rc = ops->core_path(host, core, "cpu", dir, sizeof(dir));

	if (rc)
		return rc;
	/* the kernel refuses a weight on an idle group: leave idle first, enter it last */
	if (!idle) {
		rc = sbx_cg_write(dir, "cpu.idle", "0");
		return rc ? rc : sbx_cg_write(dir, ops->weight_knob, ops->weight_lowest);
	}
	/* already idle: leaving it to reset the weight would let the sandboxes compete with
	 * the NF at full weight for a moment */
	if (sbx_cg_read(dir, "cpu.idle", buf, sizeof(buf), false) > 0 && buf[0] == '1')
		return 0;
	rc = sbx_cg_write(dir, ops->weight_knob, ops->weight_default);
	return rc ? rc : sbx_cg_write(dir, "cpu.idle", "1");
}

int sbx_cgroup_core_quota(struct sbx_host *host, int core, uint64_t quota_us, uint64_t period_us)
{
	char dir[SBX_CG_PATH];
	int rc = host->cg->core_path(host, core, "cpu", dir, sizeof(dir));

	if (rc)
		return rc;
	if (quota_us && (period_us < 1000 || quota_us < 1000))
		return -EINVAL; /* the kernel's floor for both */
	return host->cg->set_quota(dir, quota_us, period_us);
}

static int core_usage(struct sbx_host *host, int core, uint64_t *ns)
{
	char dir[SBX_CG_PATH];
	int rc = host->cg->core_path(host, core, "cpuacct", dir, sizeof(dir));

	return rc ? rc : host->cg->usage(dir, ns);
}

int sbx_cgroup_acct_init(struct sbx_host *host)
{
	host->acct = calloc((size_t)host->n_cores, sizeof(*host->acct));
	if (!host->acct)
		return -ENOMEM;
	for (int core = 0; core < host->n_cores; core++) {
		int rc = core_usage(host, core, &host->acct[core].since_ns);

		if (rc)
			return rc;
		host->acct[core].pinned = core;
	}
	return 0;
}

int sbx_cgroup_core_pin(struct sbx_host *host, int core, int cpu)
{
	char dir[SBX_CG_PATH], val[16];
	struct sbx_core_acct *a;
	uint64_t now;
	int rc = host->cg->core_path(host, core, "cpuset", dir, sizeof(dir));

	if (rc)
		return rc;
	if (cpu < 0 || cpu >= SBX_CG_MAX_CPUS)
		return -EINVAL;
	a = &host->acct[core];
	pthread_mutex_lock(&host->acct_lock);
	if (a->pinned == cpu)
		goto out;
	/* close the segment on the old CPU: what ran until now ran there */
	rc = core_usage(host, core, &now);
	if (rc)
		goto out;
	snprintf(val, sizeof(val), "%d", cpu);
	rc = sbx_cg_write(dir, "cpuset.cpus", val);
	if (rc)
		goto out;
	host->closed_ns[a->pinned] += now >= a->since_ns ? now - a->since_ns : 0;
	a->since_ns = now;
	a->pinned = cpu;
out:
	pthread_mutex_unlock(&host->acct_lock);
	return rc;
}

int sbx_cgroup_cpu_harvested(struct sbx_host *host, int cpu, uint64_t *ns)
{
	uint64_t sum, now;
	int rc = 0;

	if (cpu < 0 || cpu >= SBX_CG_MAX_CPUS)
		return -EINVAL;
	pthread_mutex_lock(&host->acct_lock);
	sum = host->closed_ns[cpu];
	for (int core = 0; core < host->n_cores && !rc; core++) {
		if (host->acct[core].pinned != cpu)
			continue;
		rc = core_usage(host, core, &now);
		if (!rc && now >= host->acct[core].since_ns)
			sum += now - host->acct[core].since_ns;
	}
	pthread_mutex_unlock(&host->acct_lock);
	if (!rc)
		*ns = sum;
	return rc;
}

static bool tid_runnable(long tid)
{
	char path[64], buf[512], *p;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false; /* it exited: not runnable */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* the state follows the command name, which may itself hold ") " */
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'R';
}

static int count_threads(const char *file, const char *dir, uint32_t *total, uint32_t *runnable)
{
	char path[SBX_CG_PATH + 64], line[32];
	struct dirent *e;
	FILE *f;
	DIR *d;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		long tid = strtol(line, NULL, 10);

		if (tid <= 0)
			continue;
		(*total)++;
		if (tid_runnable(tid))
			(*runnable)++;
	}
	fclose(f);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		rc = count_threads(file, path, total, runnable);
		if (rc == -ENOENT)
			rc = 0; /* a sandbox cgroup removed while we looked */
		if (rc)
			break;
	}
	closedir(d);
	return rc;
}

int sbx_cgroup_core_threads(struct sbx_host *host, int core, uint32_t *total, uint32_t *runnable)
{
	char dir[SBX_CG_PATH];
	int rc = host->cg->core_path(host, core, "cpu", dir, sizeof(dir));

	*total = *runnable = 0;
	if (rc)
		return rc;
	rc = count_threads(host->cg->threads_file, dir, total, runnable);
	if (rc)
		NEMO_ERR(SBX_LOG, "count threads in %s: %s", dir, strerror(-rc));
	return rc;
}

int sbx_cgroup_core_sandboxes(struct sbx_host *host, int core, uint32_t *n, uint32_t *frozen)
{
	uint32_t count = 0, nf = 0;

	if (core < -1 || core >= host->n_cores)
		return -EINVAL;
	pthread_mutex_lock(&host->lock);
	for (struct sbx_sandbox *sb = host->sandboxes; sb; sb = sb->host_next) {
		/* a parked ready fork's cgroup holds nothing yet (it waits in its zygote's) */
		if ((core >= 0 && sb->cg.core != core) || !sb->cg.freezer[0] || sb->parked)
			continue;
		count++;
		if (frozen)
			nf += host->cg->is_frozen(&sb->cg) == 1;
	}
	pthread_mutex_unlock(&host->lock);
	if (n)
		*n = count;
	if (frozen)
		*frozen = nf;
	return 0;
}

int sbx_cgroup_pid_core(const struct sbx_host *host, pid_t pid)
{
	const char *mount = host->cg == &sbx_cgroup_v1_ops ? host->v1_mount : host->v2_mount;
	char path[64], buf[4096], dir[SBX_CG_PATH], *where = NULL;
	size_t skip = strlen(mount) + (host->cg == &sbx_cgroup_v1_ops ? strlen("/cpuset") : 0);
	int rc;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	rc = sbx_cg_read(path, NULL, buf, sizeof(buf), true);
	if (rc < 0)
		return rc == -ENOENT ? -ESRCH : rc;
	/* "N:ctrl,ctrl:/path" per v1 hierarchy, "0::/path" for v2 */
	for (char *save, *line = strtok_r(buf, "\n", &save); line && !where;
	     line = strtok_r(NULL, "\n", &save)) {
		char *ctrls = strchr(line, ':'), *p = ctrls ? strchr(ctrls + 1, ':') : NULL;

		if (!p)
			continue;
		*p = '\0';
		if (host->cg->proc_controller[0] ? has_word(ctrls + 1, host->cg->proc_controller)
						 : !strcmp(line, "0:"))
			where = p + 1;
	}
	if (!where)
		return -ENOENT;
	for (int core = 0; core < host->n_cores; core++) {
		size_t len;

		if (host->cg->core_path(host, core, "cpuset", dir, sizeof(dir)) ||
		    strlen(dir) <= skip)
			continue;
		len = strlen(dir + skip);
		if (!strncmp(where, dir + skip, len) && (where[len] == '\0' || where[len] == '/'))
			return core;
	}
	return -ENOENT;
}

static int count_sbx_dirs(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	while (d && (de = readdir(d)))
		n += strncmp(de->d_name, "sbx-", 4) == 0;
	if (d)
		closedir(d);
	return n;
}

int sbx_cgroup_sandbox_dirs(const struct sbx_host *host)
{
	char dir[SBX_CG_PATH];
	int n = 0;

	if (host->cg == &sbx_cgroup_v1_ops) {
		for (size_t i = 0; i < 3; i++) {
			snprintf(dir, sizeof(dir), "%s/%s/%s", host->v1_mount, v1_sbx_ctrls[i],
				 host->cgroup_root);
			n += count_sbx_dirs(dir);
		}
		return n;
	}
	for (int core = 0; core < host->n_cores; core++)
		if (!host->cg->core_path(host, core, NULL, dir, sizeof(dir)))
			n += count_sbx_dirs(dir);
	return n;
}
