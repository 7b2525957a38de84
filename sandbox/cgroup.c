/* cgroup.c - the two cgroup backends (v1 hybrid here, v2 in production) behind one ops table. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nemo/log.h"
#include "sandbox_internal.h"

int sbx_write_file(const char *path, const char *val)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t len = strlen(val);

	if (fd < 0) {
		int e = errno;

		NEMO_ERR(SBX_LOG, "open %s: %s", path, strerror(e));
		return -e;
	}
	if (write(fd, val, len) != (ssize_t)len) {
		int e = errno ? errno : EIO;

		NEMO_ERR(SBX_LOG, "write '%s' to %s: %s", val, path, strerror(e));
		return -e;
	}
	return 0;
}

static int read_text(const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

int sbx_read_u64(const char *path, uint64_t *val)
{
	char buf[64];
	int rc = read_text(path, buf, sizeof(buf));

	if (rc) {
		NEMO_ERR(SBX_LOG, "read %s: %s", path, strerror(-rc));
		return rc;
	}
	*val = strtoull(buf, NULL, 10);
	return 0;
}

int sbx_read_key_u64(const char *path, const char *key, uint64_t *val)
{
	char buf[4096];
	size_t klen = strlen(key);
	int rc = read_text(path, buf, sizeof(buf));

	if (rc) {
		NEMO_ERR(SBX_LOG, "read %s: %s", path, strerror(-rc));
		return rc;
	}
	for (char *line = buf; line && *line;
	     line = strchr(line, '\n'), line = line ? line + 1 : 0) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
			*val = strtoull(line + klen + 1, NULL, 10);
			return 0;
		}
	}
	*val = 0;
	return -ENOENT;
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
	for (int i = 0; i < 1000; i++) {
		if (rmdir(path) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			break;
		usleep(1000);
	}
	NEMO_ERR(SBX_LOG, "rmdir %s: %s", path, strerror(errno));
	return -errno;
}

/* Move every pid listed in `from` (a cgroup.procs file) into `to`. */
static int migrate_procs(const char *from, const char *to)
{
	char buf[4096];
	int rc = read_text(from, buf, sizeof(buf));

	if (rc) {
		NEMO_ERR(SBX_LOG, "read %s: %s", from, strerror(-rc));
		return rc;
	}
	for (char *tok = strtok(buf, "\n"); tok; tok = strtok(NULL, "\n")) {
		rc = sbx_write_file(to, tok);
		/* a task that exited meanwhile is not an error */
		if (rc && rc != -ESRCH)
			return rc;
	}
	return 0;
}

/*
 * A host that died left sandboxes alive under its root (their init is reparented, not
 * killed). A new host on the same root kills what each sbx-* cgroup under `dir` still holds
 * and removes it, so that nothing outlives a crash for longer than the restart.
 */
static void remove_leftovers(const char *dir, const char *freezer_knob, const char *thawed)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d))) {
		char sub[SBX_CG_PATH + 300], path[SBX_CG_PATH + 340], pids[4096];

		if (strncmp(de->d_name, "sbx-", 4))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		snprintf(path, sizeof(path), "%s/%s", sub, freezer_knob);
		if (access(path, W_OK) == 0)
			sbx_write_file(path, thawed);
		snprintf(path, sizeof(path), "%s/cgroup.procs", sub);
		if (read_text(path, pids, sizeof(pids)) == 0)
			for (char *tok = strtok(pids, "\n"); tok; tok = strtok(NULL, "\n"))
				kill((pid_t)atoi(tok), SIGKILL);
		remove_dir(sub);
		n++;
	}
	if (d)
		closedir(d);
	if (n)
		NEMO_WARN(SBX_LOG, "removed %d sandbox cgroups a previous host left in %s", n, dir);
}

/* ---- v1: one hierarchy per controller ------------------------------------------------------ */

/*
 * Layout: the CPU-side controllers (cpu, cpuacct, cpuset) hold <root>/core<N>, the harvest
 * cgroup of core N, and a sandbox joins it directly: the scheduler's weight and cpuset apply
 * to every sandbox of the core, and its accounting reads one directory. The memory, pids and
 * freezer hierarchies hold one <root>/sbx-<id> per sandbox for its limits and freezer. v1
 * hierarchies are independent, so moving a sandbox to another core rewrites only its
 * CPU-side membership and its memory charge stays where it is.
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
	char path[SBX_CG_PATH], val[256], mems[256];
	int rc;

	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", host->v1_mount, v1_sbx_ctrls[i],
			 host->cgroup_root);
		rc = make_dir(path);
		if (rc)
			return rc;
		remove_leftovers(path, "freezer.state", "THAWED");
		snprintf(path, sizeof(path), "%s/%s/%s", host->v1_mount, v1_cpu_ctrls[i],
			 host->cgroup_root);
		rc = make_dir(path);
		if (rc)
			return rc;
	}
	/* a v1 cpuset starts empty: give the root the whole machine's cpus and mems */
	snprintf(path, sizeof(path), "%s/cpuset/cpuset.mems", host->v1_mount);
	rc = read_text(path, mems, sizeof(mems));
	if (rc) {
		NEMO_ERR(SBX_LOG, "read %s: %s", path, strerror(-rc));
		return rc;
	}
	mems[strcspn(mems, "\n")] = '\0';
	snprintf(path, sizeof(path), "%s/cpuset/cpuset.cpus", host->v1_mount);
	rc = read_text(path, val, sizeof(val));
	if (rc) {
		NEMO_ERR(SBX_LOG, "read %s: %s", path, strerror(-rc));
		return rc;
	}
	val[strcspn(val, "\n")] = '\0';
	snprintf(path, sizeof(path), "%s/cpuset/%s/cpuset.cpus", host->v1_mount, host->cgroup_root);
	rc = sbx_write_file(path, val);
	snprintf(path, sizeof(path), "%s/cpuset/%s/cpuset.mems", host->v1_mount, host->cgroup_root);
	rc = rc ? rc : sbx_write_file(path, mems);
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
		strncat(path, "/cpuset.cpus", sizeof(path) - strlen(path) - 1);
		rc = sbx_write_file(path, val);
		if (rc)
			return rc;
		v1_core_path(host, core, "cpuset", path, sizeof(path));
		strncat(path, "/cpuset.mems", sizeof(path) - strlen(path) - 1);
		rc = sbx_write_file(path, mems);
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
		snprintf(cg->join[cg->n_join++], SBX_CG_PATH, "%s/cgroup.procs", dirs[i]);
	for (size_t i = 0; i < 3; i++) {
		char *p = cg->join[cg->n_join++];

		v1_core_path(host, cg->core, v1_cpu_ctrls[i], p, SBX_CG_PATH - 16);
		strcat(p, "/cgroup.procs");
	}
}

static int v1_sandbox_destroy(struct sbx_host *host, struct sbx_cgroup *cg)
{
	int rc = 0, r;

	(void)host;
	for (char *dir = cg->memory; dir; dir = dir == cg->memory ? cg->pids
						: dir == cg->pids ? cg->freezer
								  : NULL) {
		if (!dir[0])
			continue;
		r = remove_dir(dir);
		rc = rc ? rc : r;
		dir[0] = '\0';
	}
	return rc;
}

static int v1_sandbox_create(struct sbx_host *host, uint64_t id, int core,
			     const struct sbx_spec *spec, struct sbx_cgroup *cg)
{
	char path[SBX_CG_PATH + 32], val[32];
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
	snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", cg->memory);
	snprintf(val, sizeof(val), "%" PRIu64, (uint64_t)spec->memory_mb << 20);
	rc = sbx_write_file(path, val);
	if (rc)
		goto fail;
	/* with swap accounting, swap must not extend the limit: OOM at memory_mb */
	snprintf(path, sizeof(path), "%s/memory.memsw.limit_in_bytes", cg->memory);
	if (access(path, W_OK) == 0) {
		rc = sbx_write_file(path, val);
		if (rc)
			goto fail;
	}
	rc = make_dir(cg->pids);
	if (rc)
		goto fail;
	snprintf(path, sizeof(path), "%s/pids.max", cg->pids);
	snprintf(val, sizeof(val), "%u", spec->max_pids);
	rc = sbx_write_file(path, val);
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

static int v1_freeze(struct sbx_cgroup *cg, bool frozen)
{
	char path[SBX_CG_PATH + 32];

	snprintf(path, sizeof(path), "%s/freezer.state", cg->freezer);
	return sbx_write_file(path, frozen ? "FROZEN" : "THAWED");
}

static int v1_is_frozen(struct sbx_cgroup *cg)
{
	char path[SBX_CG_PATH + 32], buf[32];
	int rc;

	snprintf(path, sizeof(path), "%s/freezer.state", cg->freezer);
	rc = read_text(path, buf, sizeof(buf));
	if (rc) {
		NEMO_ERR(SBX_LOG, "read %s: %s", path, strerror(-rc));
		return rc;
	}
	return strncmp(buf, "FROZEN", 6) == 0;
}

static int v1_move(struct sbx_host *host, struct sbx_cgroup *cg, int core)
{
	char from[SBX_CG_PATH + 32], to[SBX_CG_PATH + 32];
	int rc;

	/* the freezer cgroup lists exactly this sandbox's processes */
	snprintf(from, sizeof(from), "%s/cgroup.procs", cg->freezer);
	for (size_t i = 0; i < 3; i++) {
		rc = v1_core_path(host, core, v1_cpu_ctrls[i], to, SBX_CG_PATH);
		if (rc)
			return rc;
		strcat(to, "/cgroup.procs");
		rc = migrate_procs(from, to);
		if (rc)
			return rc;
	}
	cg->core = core;
	v1_fill_join(host, cg);
	return 0;
}

static int v1_memory_bytes(struct sbx_cgroup *cg, uint64_t *bytes)
{
	char path[SBX_CG_PATH + 32];

	snprintf(path, sizeof(path), "%s/memory.usage_in_bytes", cg->memory);
	return sbx_read_u64(path, bytes);
}

static int v1_oom_kills(struct sbx_cgroup *cg, uint64_t *kills)
{
	char path[SBX_CG_PATH + 32];

	snprintf(path, sizeof(path), "%s/memory.oom_control", cg->memory);
	return sbx_read_key_u64(path, "oom_kill", kills);
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
	.move = v1_move,
	.memory_bytes = v1_memory_bytes,
	.oom_kills = v1_oom_kills,
};

/* ---- v2: one unified hierarchy -------------------------------------------------------------- */

/*
 * Layout: <root>/core<N> (cpuset N, the weight the scheduler sets) holds one sbx-<id> per
 * sandbox with memory.max, pids.max and cgroup.freeze. The sandbox is cloned straight into it
 * with clone3(CLONE_INTO_CGROUP), so there is no join at all. v2 cannot rename a cgroup to
 * another parent: a move makes sbx-<id> under the new core, migrates the processes and
 * removes the old directory. Pages charged before the move stay charged to the old (dying)
 * cgroup until they are freed; the limit applies to new charges.
 */
static int v2_core_path(const struct sbx_host *host, int core, const char *ctrl, char *buf,
			size_t len)
{
	(void)ctrl;
	if (core < 0 || core >= host->n_cores)
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s/%s/core%d", host->v2_mount, host->cgroup_root, core) >=
	    len)
		return -ENAMETOOLONG;
	return 0;
}

static int v2_host_init(struct sbx_host *host)
{
	char path[SBX_CG_PATH + 32], val[16];
	int rc;

	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", host->v2_mount);
	rc = sbx_write_file(path, "+cpu +cpuset +memory +pids");
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/%s", host->v2_mount, host->cgroup_root);
	rc = make_dir(path);
	if (rc)
		return rc;
	strcat(path, "/cgroup.subtree_control");
	rc = sbx_write_file(path, "+cpu +cpuset +memory +pids");
	if (rc)
		return rc;
	for (int core = 0; core < host->n_cores; core++) {
		v2_core_path(host, core, NULL, path, SBX_CG_PATH);
		rc = make_dir(path);
		if (rc)
			return rc;
		remove_leftovers(path, "cgroup.freeze", "0");
		v2_core_path(host, core, NULL, path, SBX_CG_PATH);
		v2_core_path(host, core, NULL, path, SBX_CG_PATH);
		strcat(path, "/cpuset.cpus");
		snprintf(val, sizeof(val), "%d", core);
		rc = sbx_write_file(path, val);
		if (rc)
			return rc;
		v2_core_path(host, core, NULL, path, SBX_CG_PATH);
		strcat(path, "/cgroup.subtree_control");
		rc = sbx_write_file(path, "+memory +pids");
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
	snprintf(path, sizeof(path), "%s/%s", host->v2_mount, host->cgroup_root);
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
	snprintf(path, sizeof(path), "%s/memory.max", dir);
	snprintf(val, sizeof(val), "%" PRIu64, (uint64_t)spec->memory_mb << 20);
	rc = sbx_write_file(path, val);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/memory.swap.max", dir);
	if (access(path, W_OK) == 0) {
		rc = sbx_write_file(path, "0");
		if (rc)
			return rc;
	}
	snprintf(path, sizeof(path), "%s/pids.max", dir);
	snprintf(val, sizeof(val), "%u", spec->max_pids);
	return sbx_write_file(path, val);
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
	cg->dirfd = open(cg->memory, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cg->dirfd < 0) {
		rc = -errno;
		NEMO_ERR(SBX_LOG, "open %s: %s", cg->memory, strerror(-rc));
		goto fail;
	}
	return 0;
fail:
	v2_sandbox_destroy(host, cg);
	return rc;
}

static int v2_freeze(struct sbx_cgroup *cg, bool frozen)
{
	char path[SBX_CG_PATH + 32];

	snprintf(path, sizeof(path), "%s/cgroup.freeze", cg->freezer);
	return sbx_write_file(path, frozen ? "1" : "0");
}

static int v2_is_frozen(struct sbx_cgroup *cg)
{
	char path[SBX_CG_PATH + 32];
	uint64_t v;
	int rc;

	snprintf(path, sizeof(path), "%s/cgroup.events", cg->freezer);
	rc = sbx_read_key_u64(path, "frozen", &v);
	return rc ? rc : v == 1;
}

static int v2_move(struct sbx_host *host, struct sbx_cgroup *cg, int core)
{
	char dir[SBX_CG_PATH], from[SBX_CG_PATH + 32], to[SBX_CG_PATH + 32], val[8];
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
	snprintf(from, sizeof(from), "%s/memory.max", cg->memory);
	rc = sbx_read_u64(from, &v);
	if (rc)
		return rc;
	limits.memory_mb = (uint32_t)(v >> 20);
	snprintf(from, sizeof(from), "%s/pids.max", cg->memory);
	rc = sbx_read_u64(from, &v);
	if (rc)
		return rc;
	limits.max_pids = (uint32_t)v;
	rc = v2_make_sandbox_dir(dir, &limits);
	if (rc)
		return rc;
	/* a frozen sandbox stays frozen in its new place */
	if (v2_is_frozen(cg) == 1) {
		snprintf(to, sizeof(to), "%s/cgroup.freeze", dir);
		snprintf(val, sizeof(val), "1");
		rc = sbx_write_file(to, val);
		if (rc)
			return rc;
	}
	snprintf(from, sizeof(from), "%s/cgroup.procs", cg->memory);
	snprintf(to, sizeof(to), "%s/cgroup.procs", dir);
	rc = migrate_procs(from, to);
	if (rc)
		return rc;
	v2_sandbox_destroy(host, cg);
	snprintf(cg->memory, sizeof(cg->memory), "%s", dir);
	memcpy(cg->pids, cg->memory, sizeof(cg->pids));
	memcpy(cg->freezer, cg->memory, sizeof(cg->freezer));
	cg->dirfd = open(cg->memory, O_PATH | O_DIRECTORY | O_CLOEXEC);
	cg->core = core;
	return 0;
}

static int v2_memory_bytes(struct sbx_cgroup *cg, uint64_t *bytes)
{
	char path[SBX_CG_PATH + 32];

	snprintf(path, sizeof(path), "%s/memory.current", cg->memory);
	return sbx_read_u64(path, bytes);
}

static int v2_oom_kills(struct sbx_cgroup *cg, uint64_t *kills)
{
	char path[SBX_CG_PATH + 32];

	snprintf(path, sizeof(path), "%s/memory.events", cg->memory);
	return sbx_read_key_u64(path, "oom_kill", kills);
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
	.move = v2_move,
	.memory_bytes = v2_memory_bytes,
	.oom_kills = v2_oom_kills,
};
