/* store.c - the function store on disk: atomic deploys that survive restarts. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zip.h>

#include "nemo/clock.h"
#include "nemo/log.h"
#include "gw_internal.h"

uint64_t gw_epoch_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000;
}

char *gw_read_file(const char *path, size_t max, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t off = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
		goto fail;
	}
	if ((size_t)st.st_size > max) {
		errno = EFBIG;
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		goto fail;
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			goto fail;
		}
		off += (size_t)n;
	}
	buf[off] = '\0';
	close(fd);
	*len = off;
	return buf;
fail : {
	int e = errno;

	free(buf);
	close(fd);
	errno = e;
}
	return NULL;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int gw_store_init(const char *dir)
{
	int rc = mkdir_p(dir, GW_STORE_ROOT_MODE);

	if (rc) {
		NEMO_ERR(GW_MOD, "store %s: %s", dir, strerror(-rc));
		return rc;
	}
	/* nobody lists the store; see GW_STORE_ROOT_MODE for what reads into it */
	if (chmod(dir, GW_STORE_ROOT_MODE) < 0)
		NEMO_WARN(GW_MOD, "store %s: chmod: %s", dir, strerror(errno));
	return 0;
}

/* Write `len` bytes to `path` through path.tmp + fsync + rename. */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX + 8];
	size_t off = 0;
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = -errno;
		NEMO_ERR(GW_MOD, "store: open %s: %s", tmp, strerror(errno));
		return rc;
	}
	while (off < len) {
		ssize_t n = write(fd, (const char *)data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			NEMO_ERR(GW_MOD, "store: write %s: %s", tmp, strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
		rc = -errno;
		NEMO_ERR(GW_MOD, "store: fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		rc = -errno;
		NEMO_ERR(GW_MOD, "store: rename %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return rc;
	}
	return 0;
fail:
	close(fd);
	unlink(tmp);
	return rc;
}

static int remove_tree(const char *path)
{
	struct stat st;
	DIR *dir;
	struct dirent *e;
	int rc = 0;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 ? -errno : 0;
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((e = readdir(dir))) {
		char sub[PATH_MAX];

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		if (remove_tree(sub) && !rc)
			rc = -errno;
	}
	closedir(dir);
	if (rmdir(path) < 0 && !rc)
		rc = -errno;
	return rc;
}

/* fsync a folder, so that the names made or renamed in it are durable. */
static int sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * A new version is written into <name>/.v<N>.tmp and renamed to <name>/v<N> only once every
 * file in it is on disk: a full disk or a crash leaves no half-written version folder behind
 * (a stale .tmp folder is removed here and at the next commit).
 */
static int version_tmp(const char *dir, const char *name, uint64_t version, char *buf, size_t len)
{
	char fdir[PATH_MAX];
	int rc;

	if ((size_t)snprintf(fdir, sizeof(fdir), "%s/%s", dir, name) >= sizeof(fdir) ||
	    (size_t)snprintf(buf, len, "%s/.v%llu.tmp", fdir, (unsigned long long)version) >= len)
		return -ENAMETOOLONG;
	rc = mkdir_p(fdir, GW_STORE_DIR_MODE);
	if (!rc) {
		remove_tree(buf);
		rc = mkdir(buf, GW_STORE_DIR_MODE) < 0 ? -errno : 0;
	}
	if (rc)
		NEMO_ERR(GW_MOD, "store: mkdir %s: %s", buf, strerror(-rc));
	return rc;
}

/* Move a finished .v<N>.tmp into place as v<N> (final gets its path); on error remove it. */
static int version_publish(const char *dir, const char *name, uint64_t version, const char *tmp,
			   int rc, char *final, size_t len)
{
	char fdir[PATH_MAX];

	snprintf(fdir, sizeof(fdir), "%s/%s", dir, name);
	if (!rc &&
	    (size_t)snprintf(final, len, "%s/v%llu", fdir, (unsigned long long)version) >= len)
		rc = -ENAMETOOLONG;
	if (!rc)
		rc = sync_dir(tmp);
	if (!rc && rename(tmp, final) < 0) {
		rc = -errno;
		NEMO_ERR(GW_MOD, "store: rename %s: %s", tmp, strerror(errno));
	}
	if (!rc)
		rc = sync_dir(fdir);
	if (rc) {
		remove_tree(tmp);
		rmdir(fdir); /* a new function's folder, if nothing else is in it */
	}
	return rc;
}

void gw_store_discard(const char *dir, const char *name, uint64_t version)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s/v%llu", dir, name, (unsigned long long)version);
	remove_tree(path);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	rmdir(path); /* only if it is empty: a function that never got its spec.json */
}

int gw_store_write_code(const char *dir, const char *name, uint64_t version, const char *file,
			const void *code, size_t len, char *path_out, size_t path_len)
{
	char tmp[PATH_MAX], path[PATH_MAX + 128], final[PATH_MAX];
	int rc = version_tmp(dir, name, version, tmp, sizeof(tmp));

	if (rc)
		return rc;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", tmp, file) >= sizeof(path))
		rc = -ENAMETOOLONG;
	if (!rc)
		rc = write_atomic(path, code, len, GW_STORE_CODE_MODE);
	rc = version_publish(dir, name, version, tmp, rc, final, sizeof(final));
	if (!rc && (size_t)snprintf(path_out, path_len, "%s/%s", final, file) >= path_len)
		rc = -ENAMETOOLONG;
	return rc;
}

int gw_store_copy_code(const char *dir, const char *name, uint64_t version, const char *src,
		       char *path_out, size_t path_len)
{
	const char *base = strrchr(src, '/');
	size_t len;
	char *code = gw_read_file(src, 256u << 20, &len);
	int rc;

	if (!code) {
		rc = -errno;
		NEMO_WARN(GW_MOD, "store: read %s: %s", src, strerror(errno));
		return rc;
	}
	rc = gw_store_write_code(dir, name, version, base ? base + 1 : src, code, len, path_out,
				 path_len);
	free(code);
	return rc;
}

int gw_store_commit(const char *dir, const char *name, const char *doc, uint64_t version)
{
	char path[PATH_MAX], fdir[PATH_MAX];
	DIR *dh;
	struct dirent *e;
	int rc;

	snprintf(fdir, sizeof(fdir), "%s/%s", dir, name);
	rc = mkdir_p(fdir, GW_STORE_DIR_MODE);
	if (rc) {
		NEMO_ERR(GW_MOD, "store: mkdir %s: %s", fdir, strerror(-rc));
		return rc;
	}
	snprintf(path, sizeof(path), "%s/spec.json", fdir);
	/* its env may hold secrets: nemod alone reads it */
	rc = write_atomic(path, doc, strlen(doc), 0600);
	if (rc)
		return rc;
	/* the switch is done: older code versions are garbage now */
	dh = opendir(fdir);
	if (!dh)
		return 0;
	while ((e = readdir(dh))) {
		char *end;
		unsigned long long v;

		if (!strncmp(e->d_name, ".v", 2)) {
			/* a version a crash or a full disk left half-written */
			snprintf(path, sizeof(path), "%s/%s", fdir, e->d_name);
			remove_tree(path);
			continue;
		}
		if (e->d_name[0] != 'v')
			continue;
		v = strtoull(e->d_name + 1, &end, 10);
		if (*end || v == version)
			continue;
		snprintf(path, sizeof(path), "%s/%s", fdir, e->d_name);
		remove_tree(path);
	}
	closedir(dh);
	return 0;
}

int gw_store_remove(const char *dir, const char *name)
{
	char path[PATH_MAX], grave[PATH_MAX];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(grave, sizeof(grave), "%s/.deleted-%s-%llu", dir, name,
		 (unsigned long long)nemo_now_ns());
	/* one rename makes the delete atomic; the tree goes after */
	if (rename(path, grave) < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			NEMO_ERR(GW_MOD, "store: rename %s: %s", path, strerror(errno));
		return rc;
	}
	rc = remove_tree(grave);
	if (rc)
		NEMO_WARN(GW_MOD, "store: remove %s: %s", grave, strerror(-rc));
	return 0;
}

int gw_store_load(const char *dir, int (*fn)(void *arg, const char *name, const char *doc),
		  void *arg)
{
	DIR *dh = opendir(dir);
	struct dirent *e;
	int loaded = 0;

	if (!dh) {
		NEMO_ERR(GW_MOD, "store %s: %s", dir, strerror(errno));
		return -errno;
	}
	while ((e = readdir(dh))) {
		char path[PATH_MAX];
		size_t len;
		char *doc;

		if (e->d_name[0] == '.') {
			/* a delete interrupted by a crash: finish it */
			if (!strncmp(e->d_name, ".deleted-", 9)) {
				snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
				remove_tree(path);
			}
			continue;
		}
		/* a function's key: its name, or ns.name outside the default namespace */
		if (!gw_key_valid(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s/spec.json", dir, e->d_name);
		doc = gw_read_file(path, 1 << 20, &len);
		if (!doc) {
			NEMO_WARN(GW_MOD, "store: %s: %s (skipped)", path, strerror(errno));
			continue;
		}
		if (fn(arg, e->d_name, doc) == 0)
			loaded++;
		free(doc);
	}
	closedir(dh);
	return loaded;
}

int gw_store_write_zip(const char *dir, const char *name, uint64_t version, const void *zip,
		       size_t len, char *path_out, size_t path_len, char *why, size_t whylen)
{
	zip_source_t *src;
	zip_error_t zerr;
	zip_t *za;
	uint64_t total = 0;
	zip_int64_t n;
	int rc;

	char tmp[PATH_MAX];

	why[0] = '\0';
	rc = version_tmp(dir, name, version, tmp, sizeof(tmp));
	if (rc)
		return rc;
	zip_error_init(&zerr);
	src = zip_source_buffer_create(zip, len, 0, &zerr);
	za = src ? zip_open_from_source(src, ZIP_RDONLY, &zerr) : NULL;
	if (!za) {
		snprintf(why, whylen, "%s", zip_error_strerror(&zerr));
		zip_error_fini(&zerr);
		if (src)
			zip_source_free(src);
		version_publish(dir, name, version, tmp, -EINVAL, path_out, path_len);
		return -EINVAL;
	}
	zip_error_fini(&zerr);
	n = zip_get_num_entries(za, 0);
	for (zip_int64_t i = 0; i < n && !rc; i++) {
		char path[PATH_MAX];
		zip_stat_t st;
		zip_file_t *zf;
		uint8_t *buf;
		size_t nlen;

		if (zip_stat_index(za, (zip_uint64_t)i, 0, &st) || !(st.valid & ZIP_STAT_NAME)) {
			snprintf(why, whylen, "entry %lld: unreadable", (long long)i);
			rc = -EINVAL;
			break;
		}
		nlen = strlen(st.name);
		/* nothing may leave the folder: no absolute names, no .. components */
		if (!nlen || st.name[0] == '/' || strstr(st.name, "..") || strchr(st.name, '\\')) {
			snprintf(why, whylen, "entry '%.100s': names must stay inside the archive",
				 st.name);
			rc = -EINVAL;
			break;
		}
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", tmp, st.name) >= sizeof(path)) {
			rc = -ENAMETOOLONG;
			break;
		}
		if (st.name[nlen - 1] == '/') {
			rc = mkdir_p(path, GW_STORE_DIR_MODE);
			continue;
		}
		total += st.size;
		if (total > (256ull << 20)) {
			snprintf(why, whylen, "unpacks to more than 256 MiB");
			rc = -EINVAL;
			break;
		}
		{
			char *slash = strrchr(path, '/');

			*slash = '\0';
			rc = mkdir_p(path, GW_STORE_DIR_MODE);
			*slash = '/';
			if (rc)
				break;
		}
		buf = malloc(st.size ? st.size : 1);
		zf = buf ? zip_fopen_index(za, (zip_uint64_t)i, 0) : NULL;
		if (!zf || zip_fread(zf, buf, st.size) != (zip_int64_t)st.size) {
			snprintf(why, whylen, "entry '%.100s': cannot be read", st.name);
			rc = buf ? -EINVAL : -ENOMEM;
		} else {
			rc = write_atomic(path, buf, st.size, GW_STORE_CODE_MODE);
		}
		if (zf)
			zip_fclose(zf);
		free(buf);
	}
	zip_close(za);
	if (!rc) {
		/* the archive as it came: a cluster's peers unpack the same bytes */
		char path[PATH_MAX + 32];

		snprintf(path, sizeof(path), "%s/%s", tmp, GW_STORE_ARCHIVE);
		rc = write_atomic(path, zip, len, 0644);
	}
	rc = version_publish(dir, name, version, tmp, rc, path_out, path_len);
	if (rc && !why[0])
		snprintf(why, whylen, "%s", strerror(-rc));
	return rc;
}
