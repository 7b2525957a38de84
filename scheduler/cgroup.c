/* cgroup.c - harvest cgroups on v1 and v2: cpuset, CPU weight or idle, quota, usage, freezing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nemo/log.h"
#include "nemo/scheduler.h"
#include "sched_internal.h"

#define V1_MOUNT "/sys/fs/cgroup"
#define V2_MOUNT "/sys/fs/cgroup/unified"

int __sched_write(const char *dir, const char *file, const char *value)
{
	char path[512];
	ssize_t n;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		NEMO_ERR("scheduler", "open %s: %s", path, strerror(errno));
		return rc;
	}
	n = write(fd, value, strlen(value));
	if (n < 0) {
		rc = -errno;
		NEMO_ERR("scheduler", "write '%s' to %s: %s", value, path, strerror(errno));
	}
	close(fd);
	return rc;
}

int __sched_read(const char *dir, const char *file, char *buf, size_t len)
{
	char path[512];
	ssize_t n;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	rc = n < 0 ? -errno : (int)n;
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return rc;
}

/*
 * mkdir -p. `on_new(dir, parent)` runs for each level it creates, so v1 cpusets can inherit
 * their parent's CPUs and nodes (a v1 cpuset with empty cpus takes no tasks) and v2 parents
 * can delegate controllers.
 */
static int mkdir_p(const char *path, int (*on_new)(const char *dir, const char *parent))
{
	char buf[256], parent[256];
	int rc;

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1;; p++) {
		bool end = *p == '\0';

		if (*p != '/' && !end)
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) == 0) {
			if (on_new) {
				snprintf(parent, sizeof(parent), "%s", buf);
				*strrchr(parent, '/') = '\0';
				rc = on_new(buf, parent);
				if (rc)
					return rc;
			}
		} else if (errno != EEXIST) {
			rc = -errno;
			NEMO_ERR("scheduler", "mkdir %s: %s", buf, strerror(errno));
			return rc;
		}
		if (end)
			break;
		*p = '/';
	}
	return 0;
}

/* rmdir a cgroup and its children, deepest first. Missing is fine. */
static int rmdir_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int rc = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d)) != NULL) {
		char child[512];

		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
		int r = rmdir_tree(child);

		if (r < 0 && rc == 0)
			rc = r;
	}
	closedir(d);
	if (rmdir(path) < 0 && errno != ENOENT) {
		rc = -errno;
		NEMO_ERR("scheduler", "rmdir %s: %s", path, strerror(errno));
	}
	return rc;
}

/* ---- v1 ------------------------------------------------------------------------------------ */

static int v1_cpuset_inherit(const char *dir, const char *parent)
{
	char buf[256];
	int rc;

	/* only cpuset levels need it; the other controllers' dirs have no such files */
	if (strncmp(dir, V1_MOUNT "/cpuset/", strlen(V1_MOUNT "/cpuset/")) != 0)
		return 0;
	rc = __sched_read(parent, "cpuset.cpus", buf, sizeof(buf));
	if (rc < 0)
		return rc;
	rc = __sched_write(dir, "cpuset.cpus", buf);
	if (rc)
		return rc;
	rc = __sched_read(parent, "cpuset.mems", buf, sizeof(buf));
	if (rc < 0)
		return rc;
	return __sched_write(dir, "cpuset.mems", buf);
}

/* The same file on v1 and v2 (where cg->cpuset is the one directory of the cgroup). */
static int pin(const struct sched_harvest_cg *cg, int cpu)
{
	char v[16];

	snprintf(v, sizeof(v), "%d", cpu);
	return __sched_write(cg->cpuset, "cpuset.cpus", v);
}

static int v1_create(const struct sched_harvest_cg *cg, int mem)
{
	const char *dirs[] = {cg->cpu, cg->cpuacct, cg->cpuset};
	char v[32];
	int rc;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i][0])
			continue;
		rc = mkdir_p(dirs[i], v1_cpuset_inherit);
		if (rc)
			return rc;
	}
	rc = pin(cg, cg->cpu_index);
	if (rc)
		return rc;
	snprintf(v, sizeof(v), "%d", mem);
	return __sched_write(cg->cpuset, "cpuset.mems", v);
}

static int v1_remove(const struct sched_harvest_cg *cg)
{
	const char *dirs[] = {cg->cpu, cg->cpuacct, cg->cpuset};
	int rc = 0;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		int r;

		if (!dirs[i][0] || (i > 0 && strcmp(dirs[i], dirs[0]) == 0))
			continue;
		r = rmdir_tree(dirs[i]);
		if (r && !rc)
			rc = r;
	}
	return rc;
}

/*
 * Already idle? The weight of an idle group cannot be written, and leaving idle to reset it
 * would let the sandboxes compete with the NF at full weight for a moment.
 */
static bool is_idle(const char *dir)
{
	char buf[16];

	return __sched_read(dir, "cpu.idle", buf, sizeof(buf)) > 0 && buf[0] == '1';
}

static int v1_apply_policy(const struct sched_harvest_cg *cg, int policy)
{
	int rc;

	/* the kernel refuses cpu.shares on an idle group: leave idle first, enter it last */
	if (policy == SCHED_HARVEST_SHARES) {
		rc = __sched_write(cg->cpu, "cpu.idle", "0");
		return rc ? rc : __sched_write(cg->cpu, "cpu.shares", "2");
	}
	if (policy == SCHED_HARVEST_IDLE) {
		if (is_idle(cg->cpu))
			return 0;
		rc = __sched_write(cg->cpu, "cpu.shares", "1024");
		return rc ? rc : __sched_write(cg->cpu, "cpu.idle", "1");
	}
	return -EINVAL;
}

static int v1_set_quota(const struct sched_harvest_cg *cg, uint64_t quota_us, uint64_t period_us)
{
	char v[32];
	int rc;

	if (quota_us == 0)
		return __sched_write(cg->cpu, "cpu.cfs_quota_us", "-1");
	if (period_us < 1000 || quota_us < 1000)
		return -EINVAL; /* the kernel's floor for both */
	snprintf(v, sizeof(v), "%llu", (unsigned long long)period_us);
	rc = __sched_write(cg->cpu, "cpu.cfs_period_us", v);
	if (rc)
		return rc;
	snprintf(v, sizeof(v), "%llu", (unsigned long long)quota_us);
	return __sched_write(cg->cpu, "cpu.cfs_quota_us", v);
}

static int v1_read_usage(const struct sched_harvest_cg *cg, uint64_t *ns)
{
	char buf[4096], *p = buf, *end;
	int rc = __sched_read(cg->cpuacct, "cpuacct.usage_percpu", buf, sizeof(buf));

	if (rc < 0) {
		NEMO_ERR("scheduler", "read %s/cpuacct.usage_percpu: %s", cg->cpuacct,
			 strerror(-rc));
		return rc;
	}
	/* one figure per possible CPU, in CPU order */
	for (int i = 0;; i++) {
		unsigned long long v = strtoull(p, &end, 10);

		if (end == p)
			return -ERANGE;
		if (i == cg->cpu_index) {
			*ns = v;
			return 0;
		}
		p = end;
	}
}

const struct sched_cgroup_ops sched_cgroup_v1 = {
	.name = "v1",
	.create = v1_create,
	.remove = v1_remove,
	.apply_policy = v1_apply_policy,
	.set_quota = v1_set_quota,
	.read_usage = v1_read_usage,
	.threads_file = "tasks",
	.pin = pin,
};

/* ---- v2 ------------------------------------------------------------------------------------ */

static int v2_delegate(const char *dir, const char *parent)
{
	(void)dir;
	/* a child gets cpu and cpuset knobs only if its parent hands the controllers down */
	return __sched_write(parent, "cgroup.subtree_control", "+cpu +cpuset");
}

static int v2_create(const struct sched_harvest_cg *cg, int mem)
{
	char v[32];
	int rc = mkdir_p(cg->cpu, v2_delegate);

	if (rc)
		return rc;
	rc = pin(cg, cg->cpu_index);
	if (rc)
		return rc;
	snprintf(v, sizeof(v), "%d", mem);
	return __sched_write(cg->cpu, "cpuset.mems", v);
}

static int v2_remove(const struct sched_harvest_cg *cg)
{
	return rmdir_tree(cg->cpu);
}

static int v2_apply_policy(const struct sched_harvest_cg *cg, int policy)
{
	int rc;

	if (policy == SCHED_HARVEST_SHARES) {
		rc = __sched_write(cg->cpu, "cpu.idle", "0");
		return rc ? rc : __sched_write(cg->cpu, "cpu.weight", "1");
	}
	if (policy == SCHED_HARVEST_IDLE) {
		if (is_idle(cg->cpu))
			return 0;
		rc = __sched_write(cg->cpu, "cpu.weight", "100");
		return rc ? rc : __sched_write(cg->cpu, "cpu.idle", "1");
	}
	return -EINVAL;
}

static int v2_set_quota(const struct sched_harvest_cg *cg, uint64_t quota_us, uint64_t period_us)
{
	char v[64];

	if (quota_us == 0)
		snprintf(v, sizeof(v), "max %llu",
			 (unsigned long long)(period_us ? period_us : 100000));
	else if (period_us < 1000 || quota_us < 1000)
		return -EINVAL;
	else
		snprintf(v, sizeof(v), "%llu %llu", (unsigned long long)quota_us,
			 (unsigned long long)period_us);
	return __sched_write(cg->cpu, "cpu.max", v);
}

static int v2_read_usage(const struct sched_harvest_cg *cg, uint64_t *ns)
{
	char buf[1024], *p;
	int rc = __sched_read(cg->cpu, "cpu.stat", buf, sizeof(buf));

	if (rc < 0) {
		NEMO_ERR("scheduler", "read %s/cpu.stat: %s", cg->cpu, strerror(-rc));
		return rc;
	}
	/* v2 has no per-CPU figure; the cpuset pins the cgroup to its one core, so total is it */
	p = strstr(buf, "usage_usec ");
	if (!p)
		return -ERANGE;
	*ns = strtoull(p + strlen("usage_usec "), NULL, 10) * 1000;
	return 0;
}

const struct sched_cgroup_ops sched_cgroup_v2 = {
	.name = "v2",
	.create = v2_create,
	.remove = v2_remove,
	.apply_policy = v2_apply_policy,
	.set_quota = v2_set_quota,
	.read_usage = v2_read_usage,
	.threads_file = "cgroup.threads",
	.pin = pin,
};

const struct sched_cgroup_ops *sched_cgroup_detect(void)
{
	char buf[512];

	if (__sched_read(V2_MOUNT, "cgroup.controllers", buf, sizeof(buf)) >= 0 &&
	    strstr(buf, "cpu"))
		return &sched_cgroup_v2;
	if (__sched_read("/sys/fs/cgroup", "cgroup.controllers", buf, sizeof(buf)) >= 0 &&
	    strstr(buf, "cpu"))
		return &sched_cgroup_v2;
	return &sched_cgroup_v1;
}

int sched_harvest_cg_paths(const struct sched_cgroup_ops *ops, const char *root, int cpu,
			   struct sched_harvest_cg *cg)
{
	static const char *const ctrls[] = {"cpu", "cpuacct", "cpuset"};
	char *dst[] = {cg->cpu, cg->cpuacct, cg->cpuset};
	const char *v2_mount = V2_MOUNT;
	struct stat st;

	memset(cg, 0, sizeof(*cg));
	cg->cpu_index = cpu;
	/* a pure v2 machine mounts the unified hierarchy at /sys/fs/cgroup itself */
	if (stat(V2_MOUNT, &st) < 0)
		v2_mount = "/sys/fs/cgroup";
	for (int i = 0; i < 3; i++) {
		int n = ops == &sched_cgroup_v2
				? snprintf(dst[i], 256, "%s/%s/core%d", v2_mount, root, cpu)
				: snprintf(dst[i], 256, V1_MOUNT "/%s/%s/core%d", ctrls[i], root,
					   cpu);

		if (n >= 256)
			return -ENAMETOOLONG;
	}
	return 0;
}

const char *sched_harvest_policy_name(int policy)
{
	return policy == SCHED_HARVEST_IDLE	? "idle"
	       : policy == SCHED_HARVEST_SHARES ? "shares"
						: "?";
}

int sched_harvest_policy_parse(const char *name)
{
	if (name && strcmp(name, "idle") == 0)
		return SCHED_HARVEST_IDLE;
	if (name && strcmp(name, "shares") == 0)
		return SCHED_HARVEST_SHARES;
	return -EINVAL;
}

/* ---- threads ------------------------------------------------------------------------------- */

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

static int count_dir(const char *file, const char *dir, uint32_t *total, uint32_t *runnable)
{
	char path[512], line[32];
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
		char child[512];

		if (e->d_type != DT_DIR || e->d_name[0] == '.')
			continue;
		snprintf(child, sizeof(child), "%s/%s", dir, e->d_name);
		rc = count_dir(file, child, total, runnable);
		if (rc == -ENOENT)
			rc = 0; /* a sandbox cgroup removed while we looked */
		if (rc)
			break;
	}
	closedir(d);
	return rc;
}

int sched_cgroup_threads(const struct sched_cgroup_ops *ops, const char *dir, uint32_t *total,
			 uint32_t *runnable)
{
	*total = 0;
	*runnable = 0;
	return count_dir(ops->threads_file, dir, total, runnable);
}
