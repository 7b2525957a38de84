/* client.c - a minimal HTTP/1.1 client over TCP for nemoctl, tests and benchmarks. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nemo/clock.h"
#include "nemo/gateway.h"

static long ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static int wait_fd(int fd, short ev, const struct timespec *deadline)
{
	struct pollfd p = {.fd = fd, .events = ev};
	long left = ms_left(deadline);
	int rc;

	if (left <= 0)
		return -ETIMEDOUT;
	rc = poll(&p, 1, (int)left);
	if (rc < 0)
		return -errno;
	return rc == 0 ? -ETIMEDOUT : 0;
}

static int send_all(int fd, const void *buf, size_t len, const struct timespec *deadline)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n;
		int rc = wait_fd(fd, POLLOUT, deadline);

		if (rc)
			return rc;
		n = send(fd, (const char *)buf + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	return 0;
}

static int connect_to(const char *host, uint16_t port, const struct timespec *deadline)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai, *p;
	char portstr[8];
	int fd = -1, rc = -ECONNREFUSED;

	snprintf(portstr, sizeof(portstr), "%u", port);
	if (getaddrinfo(host, portstr, &hints, &ai))
		return -EHOSTUNREACH;
	for (p = ai; p; p = p->ai_next) {
		int one = 1;

		fd = socket(p->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, p->ai_addr, p->ai_addrlen) == 0)
			break;
		rc = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	(void)deadline;
	return fd >= 0 ? fd : rc;
}

int gw_http_request(const char *host, uint16_t port, const char *method, const char *path,
		    const char *token, const void *body, size_t len, int timeout_ms,
		    struct gw_http_response *resp)
{
	return gw_http_request_headers(host, port, method, path, token, NULL, body, len, timeout_ms,
				       resp);
}

int gw_http_request_headers(const char *host, uint16_t port, const char *method, const char *path,
			    const char *token, const char *headers, const void *body, size_t len,
			    int timeout_ms, struct gw_http_response *resp)
{
	struct timespec deadline;
	char head[2048];
	char *buf = NULL, *hdr_end, *p;
	size_t used = 0, cap = 0;
	int fd, rc, n;

	memset(resp, 0, sizeof(*resp));
	deadline = nemo_deadline_after_ns(CLOCK_MONOTONIC, (uint64_t)timeout_ms * 1000000ull);
	fd = connect_to(host, port, &deadline);
	if (fd < 0)
		return fd;
	n = snprintf(head, sizeof(head),
		     "%s %s HTTP/1.1\r\nHost: %s:%u\r\nConnection: close\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n%s%s%s%s\r\n",
		     method, path, host, port, len, token ? "Authorization: Bearer " : "",
		     token ? token : "", token ? "\r\n" : "", headers ? headers : "");
	if (n < 0 || (size_t)n >= sizeof(head)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	rc = send_all(fd, head, (size_t)n, &deadline);
	if (!rc && len)
		rc = send_all(fd, body, len, &deadline);
	if (rc)
		goto out;
	/* Connection: close, so the body ends where the stream does */
	for (;;) {
		ssize_t r;

		if (cap - used < 4096) {
			char *nb = realloc(buf, cap ? cap * 2 : 16384);

			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap = cap ? cap * 2 : 16384;
		}
		rc = wait_fd(fd, POLLIN, &deadline);
		if (rc)
			goto out;
		r = recv(fd, buf + used, cap - used - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		used += (size_t)r;
	}
	buf[used] = '\0';
	if (used < 12 || strncmp(buf, "HTTP/1.", 7)) {
		rc = -EPROTO;
		goto out;
	}
	resp->status = atoi(buf + 9);
	hdr_end = strstr(buf, "\r\n\r\n");
	if (!hdr_end) {
		rc = -EPROTO;
		goto out;
	}
	*hdr_end = '\0';
	p = strcasestr(buf, "\r\nContent-Type:");
	if (p) {
		p += 15;
		while (*p == ' ')
			p++;
		snprintf(resp->content_type, sizeof(resp->content_type), "%.*s",
			 (int)strcspn(p, "\r\n"), p);
	}
	resp->body_len = used - (size_t)(hdr_end + 4 - buf);
	resp->body = malloc(resp->body_len + 1);
	if (!resp->body) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(resp->body, hdr_end + 4, resp->body_len);
	resp->body[resp->body_len] = '\0';
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

void gw_http_response_release(struct gw_http_response *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
}
