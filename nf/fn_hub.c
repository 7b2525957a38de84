/* fn_hub.c - nemo-nf's lease server: hands each fn ring to one consumer, resets it when it goes. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fn_internal.h"
#include "nemo/log.h"

#define HUB_MAX_PORTS 256

struct nf_fn_hub {
	char path[108];
	int listen_fd;
	pthread_t thread;
	bool started;
	volatile int quit;
	uint32_t nb_ports;
	struct nf_fn_port *ports[HUB_MAX_PORTS];
};

struct nf_fn_hub *nf_fn_hub_create(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct nf_fn_hub *hub;
	char dir[108], *slash;
	int rc;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		NEMO_ERR("nf", "fn_socket '%s': longer than %zu characters", path,
			 sizeof(addr.sun_path) - 1);
		errno = ENAMETOOLONG;
		return NULL;
	}
	hub = calloc(1, sizeof(*hub));
	if (!hub)
		return NULL;
	snprintf(hub->path, sizeof(hub->path), "%s", path);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			NEMO_WARN("nf", "fn_socket: mkdir %s: %s", dir, strerror(errno));
	}
	hub->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (hub->listen_fd < 0) {
		rc = errno;
		NEMO_ERR("nf", "fn_socket %s: socket: %s", path, strerror(rc));
		goto fail;
	}
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	unlink(path); /* a socket file left by an NF that died */
	if (bind(hub->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    chmod(path, 0600) < 0 || listen(hub->listen_fd, 16) < 0) {
		rc = errno;
		NEMO_ERR("nf", "fn_socket %s: %s", path, strerror(rc));
		close(hub->listen_fd);
		goto fail;
	}
	return hub;
fail:
	free(hub);
	errno = rc;
	return NULL;
}

int nf_fn_hub_add(struct nf_fn_hub *hub, struct nf_fn_port *port)
{
	if (hub->nb_ports == HUB_MAX_PORTS) {
		NEMO_ERR("nf", "fn_socket %s: more than %d function rings", hub->path,
			 HUB_MAX_PORTS);
		return -ENOSPC;
	}
	port->lease_fd = -1;
	hub->ports[hub->nb_ports++] = port;
	return 0;
}

bool nf_fn_port_leased(const struct nf_fn_port *port)
{
	return __atomic_load_n(&port->lease_fd, __ATOMIC_RELAXED) >= 0;
}

static void lease_end(struct nf_fn_port *p)
{
	close(p->lease_fd);
	__atomic_store_n(&p->lease_fd, -1, __ATOMIC_RELAXED);
	/* the lcore resets the ring at its next iteration; no lease until it has */
	__atomic_fetch_add(&p->reset_req, 1, __ATOMIC_RELEASE);
	NEMO_INFO("nf", "fn: the consumer of '%s' on lcore %u is gone; its ring is reset",
		  p->function, p->lcore_id);
}

/* Find the ring a request asks for, or say why not in resp. */
static struct nf_fn_port *lease_find(struct nf_fn_hub *hub, const struct fn_lease_req *req,
				     struct fn_lease_resp *resp)
{
	bool exists = false, resetting = false;

	for (uint32_t i = 0; i < hub->nb_ports; i++) {
		struct nf_fn_port *p = hub->ports[i];

		if (strcmp(p->function, req->function) != 0 ||
		    (req->lcore_id != FN_LEASE_ANY && p->lcore_id != req->lcore_id))
			continue;
		exists = true;
		if (p->lease_fd >= 0)
			continue;
		if (__atomic_load_n(&p->reset_done, __ATOMIC_ACQUIRE) !=
		    __atomic_load_n(&p->reset_req, __ATOMIC_RELAXED)) {
			resetting = true;
			continue;
		}
		return p;
	}
	if (!exists) {
		resp->status = -ENOENT;
		snprintf(resp->message, sizeof(resp->message),
			 "no ring for function '%s'%s in this NF's fn modules", req->function,
			 req->lcore_id == FN_LEASE_ANY ? "" : " on that lcore");
	} else if (resetting) {
		resp->status = -EAGAIN;
		snprintf(resp->message, sizeof(resp->message),
			 "the ring of '%s' is being reset after its last consumer; retry",
			 req->function);
	} else {
		resp->status = -EBUSY;
		snprintf(resp->message, sizeof(resp->message),
			 "every ring of '%s' already has a consumer", req->function);
	}
	return NULL;
}

/* "function@lcore" per ring, "*" when leased, as much as fits. */
static void describe(struct nf_fn_hub *hub, struct fn_lease_resp *resp)
{
	size_t len = 0, cap = sizeof(resp->message);

	for (uint32_t i = 0; i < hub->nb_ports; i++) {
		const struct nf_fn_port *p = hub->ports[i];
		char one[FN_RING_NAME_MAX + 16];
		int n = snprintf(one, sizeof(one), "%s%s@%u%s", i ? " " : "", p->function,
				 p->lcore_id, p->lease_fd >= 0 ? "*" : "");

		if (len + (size_t)n + 4 >= cap) {
			snprintf(resp->message + len, cap - len, " ...");
			return;
		}
		memcpy(resp->message + len, one, (size_t)n + 1);
		len += (size_t)n;
	}
}

static void lease_serve(struct nf_fn_hub *hub, int fd)
{
	struct fn_lease_req req = {0};
	struct fn_lease_resp resp = {.magic = FN_LEASE_MAGIC, .version = FN_LEASE_VERSION};
	struct iovec iov = {.iov_base = &resp, .iov_len = sizeof(resp)};
	char cbuf[CMSG_SPACE(2 * sizeof(int))] = {0};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	struct nf_fn_port *p = NULL;
	ssize_t n = -1;

	if (poll(&pfd, 1, 1000) == 1)
		n = recv(fd, &req, sizeof(req), MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(req) || req.magic != FN_LEASE_MAGIC ||
	    req.version != FN_LEASE_VERSION) {
		resp.status = -EPROTO;
		snprintf(resp.message, sizeof(resp.message),
			 "not a lease request of version %u (%zd bytes)",
			 (unsigned int)FN_LEASE_VERSION, n);
	} else if (req.op == FN_LEASE_OP_DESCRIBE) {
		describe(hub, &resp);
	} else {
		req.function[sizeof(req.function) - 1] = '\0';
		p = lease_find(hub, &req, &resp);
	}
	if (p) {
		struct cmsghdr *cm;
		int fds[2] = {p->ring.mem_fd, p->ring.wake_fd};

		resp.lcore_id = p->lcore_id;
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	}
	if (sendmsg(fd, &msg, MSG_NOSIGNAL) != (ssize_t)sizeof(resp)) {
		NEMO_WARN("nf", "fn_socket %s: answering a lease request: %s", hub->path,
			  strerror(errno));
		p = NULL;
	}
	if (!p) {
		close(fd);
		return;
	}
	p->leases++;
	__atomic_store_n(&p->lease_fd, fd, __ATOMIC_RELAXED);
	NEMO_INFO("nf", "fn: '%s' on lcore %u leased to a consumer", p->function, p->lcore_id);
}

static void *hub_main(void *arg)
{
	struct nf_fn_hub *hub = arg;
	struct pollfd pfd[1 + HUB_MAX_PORTS];
	struct nf_fn_port *owner[1 + HUB_MAX_PORTS];

	while (!__atomic_load_n(&hub->quit, __ATOMIC_RELAXED)) {
		nfds_t n = 1;
		int rc;

		pfd[0] = (struct pollfd){.fd = hub->listen_fd, .events = POLLIN};
		for (uint32_t i = 0; i < hub->nb_ports; i++) {
			if (hub->ports[i]->lease_fd < 0)
				continue;
			owner[n] = hub->ports[i];
			pfd[n++] = (struct pollfd){.fd = hub->ports[i]->lease_fd, .events = POLLIN};
		}
		rc = poll(pfd, n, 100);
		if (rc <= 0)
			continue;
		for (nfds_t i = 1; i < n; i++) {
			char byte;
			ssize_t r;

			if (!pfd[i].revents)
				continue;
			/* a consumer says nothing after its request: end of file is its end */
			r = recv(pfd[i].fd, &byte, sizeof(byte), MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				lease_end(owner[i]);
		}
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(hub->listen_fd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0)
				lease_serve(hub, fd);
		}
	}
	return NULL;
}

int nf_fn_hub_start(struct nf_fn_hub *hub)
{
	int rc = pthread_create(&hub->thread, NULL, hub_main, hub);

	if (rc) {
		NEMO_ERR("nf", "fn_socket %s: cannot start its thread: %s", hub->path,
			 strerror(rc));
		return -rc;
	}
	pthread_setname_np(hub->thread, "nemo-fn-hub");
	hub->started = true;
	NEMO_INFO("nf", "fn: %u function rings, leased on %s", hub->nb_ports, hub->path);
	return 0;
}

void nf_fn_hub_destroy(struct nf_fn_hub *hub)
{
	if (!hub)
		return;
	__atomic_store_n(&hub->quit, 1, __ATOMIC_RELAXED);
	if (hub->started)
		pthread_join(hub->thread, NULL);
	for (uint32_t i = 0; i < hub->nb_ports; i++)
		if (hub->ports[i]->lease_fd >= 0) {
			close(hub->ports[i]->lease_fd);
			hub->ports[i]->lease_fd = -1;
		}
	close(hub->listen_fd);
	unlink(hub->path);
	free(hub);
}
