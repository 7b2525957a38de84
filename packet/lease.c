/* lease.c - the client side of a ring lease: ask nemo-nf for a function's rings over its socket. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "nemo/fn_ring.h"
#include "nemo/log.h"

/* Connect, send `req`, receive the response and up to two fds. Returns 0 or -errno. */
static int lease_call(const char *socket_path, struct fn_lease_req *req, struct fn_lease_resp *resp,
		      int fds[2], int *conn, char *err, size_t errlen)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = {.iov_base = resp, .iov_len = sizeof(*resp)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm;
	int fd, rc;
	ssize_t n;

	fds[0] = fds[1] = -1;
	*conn = -1;
	if (strlen(socket_path) >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", socket_path);
		return -ENAMETOOLONG;
	}
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return rc;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "connect %s: %s (is nemo-nf running with an fn module?)",
			 socket_path, strerror(errno));
		goto fail;
	}
	if (send(fd, req, sizeof(*req), MSG_NOSIGNAL) != (ssize_t)sizeof(*req)) {
		rc = errno ? -errno : -EPROTO;
		snprintf(err, errlen, "send to %s: %s", socket_path, strerror(-rc));
		goto fail;
	}
	n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	if (n < 0) {
		rc = -errno;
		snprintf(err, errlen, "recv from %s: %s", socket_path, strerror(errno));
		goto fail;
	}
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(2 * sizeof(int)))
			memcpy(fds, CMSG_DATA(cm), 2 * sizeof(int));
	if (n != (ssize_t)sizeof(*resp) || resp->magic != FN_LEASE_MAGIC ||
	    resp->version != FN_LEASE_VERSION) {
		rc = -EPROTO;
		snprintf(err, errlen, "%s: not a lease reply this build knows (%zd bytes)",
			 socket_path, n);
		goto fail;
	}
	resp->message[sizeof(resp->message) - 1] = '\0';
	*conn = fd;
	return 0;
fail:
	close(fd);
	return rc;
}

int fn_lease_describe(const char *socket_path, char *out, size_t len, char *err, size_t errlen)
{
	struct fn_lease_req req = {.magic = FN_LEASE_MAGIC,
				   .version = FN_LEASE_VERSION,
				   .lcore_id = FN_LEASE_ANY,
				   .op = FN_LEASE_OP_DESCRIBE};
	struct fn_lease_resp resp;
	int fds[2], conn, rc = lease_call(socket_path, &req, &resp, fds, &conn, err, errlen);

	if (rc)
		return rc;
	close(conn);
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (resp.status) {
		snprintf(err, errlen, "%s", resp.message);
		return resp.status < 0 ? resp.status : -EPROTO;
	}
	snprintf(out, len, "%s", resp.message);
	return 0;
}

int fn_lease_acquire(const char *socket_path, const char *function, uint32_t lcore_id,
		     struct fn_ring *r, int *lease_fd, char *err, size_t errlen)
{
	struct fn_lease_req req = {.magic = FN_LEASE_MAGIC,
				   .version = FN_LEASE_VERSION,
				   .lcore_id = lcore_id,
				   .op = FN_LEASE_OP_LEASE};
	struct fn_lease_resp resp;
	int fds[2], conn, rc;

	*lease_fd = -1;
	if (strlen(function) >= sizeof(req.function)) {
		snprintf(err, errlen, "function name longer than %zu characters",
			 sizeof(req.function) - 1);
		return -ENAMETOOLONG;
	}
	snprintf(req.function, sizeof(req.function), "%s", function);
	rc = lease_call(socket_path, &req, &resp, fds, &conn, err, errlen);
	if (rc)
		return rc;
	if (resp.status) {
		rc = resp.status < 0 ? resp.status : -EPROTO;
		snprintf(err, errlen, "%s", resp.message);
		goto fail;
	}
	if (fds[0] < 0 || fds[1] < 0) {
		rc = -EPROTO;
		snprintf(err, errlen, "%s: the lease came without its fds", socket_path);
		goto fail;
	}
	rc = fn_ring_attach(r, fds[0], fds[1]);
	if (rc) {
		snprintf(err, errlen, "%s: the ring of '%s' does not map: %s", socket_path,
			 function, strerror(-rc));
		goto fail;
	}
	*lease_fd = conn;
	return 0;
fail:
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	close(conn);
	return rc;
}
