/* test-pkt-probe.c - test packet function: reports what it can see and do from its sandbox. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nemo/function.h>

/*
 * One reply per packet, by its payload: "uid" its uid and gid; "open:<path>" whether it can
 * open that path; "fds" its open descriptors; "seccomp" its Seccomp line; "abort" aborts
 * (mid-batch when it is not the first packet); anything else is echoed.
 */
static int probe(const char *req, char *out, size_t cap)
{
	if (!strcmp(req, "uid"))
		return snprintf(out, cap, "uid=%d gid=%d", (int)getuid(), (int)getgid());
	if (!strncmp(req, "open:", 5)) {
		int fd = open(req + 5, O_RDONLY | O_CLOEXEC);

		if (fd < 0)
			return snprintf(out, cap, "open %s: %s", req + 5, strerror(errno));
		close(fd);
		return snprintf(out, cap, "open %s: ok", req + 5);
	}
	if (!strcmp(req, "fds")) {
		DIR *d = opendir("/proc/self/fd");
		struct dirent *de;
		int n = 0;

		out[0] = '\0';
		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
				n += snprintf(out + n, cap - (size_t)n, "%s%s", n ? " " : "",
					      de->d_name);
		if (d)
			closedir(d);
		return n;
	}
	if (!strcmp(req, "seccomp")) {
		FILE *f = fopen("/proc/self/status", "re");
		char line[128];
		int n = snprintf(out, cap, "no Seccomp line");

		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "Seccomp:", 8)) {
				line[strcspn(line, "\n")] = '\0';
				n = snprintf(out, cap, "%s", line);
			}
		if (f)
			fclose(f);
		return n;
	}
	if (!strcmp(req, "abort"))
		abort();
	return snprintf(out, cap, "%s", req);
}

int handle_batch(const struct nemo_packet *pkts, struct nemo_reply *replies, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		char req[256], out[512];
		size_t len = pkts[i].len < sizeof(req) - 1 ? pkts[i].len : sizeof(req) - 1;
		int k;

		memcpy(req, pkts[i].data, len);
		req[len] = '\0';
		k = probe(req, out, sizeof(out));
		if (k < 0 || (size_t)k > replies[i].cap)
			continue;
		memcpy(replies[i].data, out, (size_t)k);
		replies[i].len = (uint32_t)k;
	}
	return 0;
}
