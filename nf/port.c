/* port.c - attach, configure and start nemo-nf's ports; handle memif sockets left behind. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_bus.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>

#include "nemo/log.h"
#include "runtime_internal.h"

/* Copy the value of `key=` from a devargs string ("name,k1=v1,k2=v2"). Returns 1 if found. */
static int devargs_get(const char *devargs, const char *key, char *val, size_t len)
{
	size_t klen = strlen(key);
	const char *p = strchr(devargs, ',');

	while (p) {
		p++;
		if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
			const char *v = p + klen + 1, *end = strchr(v, ',');
			size_t n = end ? (size_t)(end - v) : strlen(v);

			if (n >= len)
				n = len - 1;
			memcpy(val, v, n);
			val[n] = '\0';
			return 1;
		}
		p = strchr(p, ',');
	}
	return 0;
}

/* 1 if a socket in this network namespace listens on `path`, 0 if none, or -errno. */
static int unix_socket_listening(const char *path)
{
	FILE *f = fopen("/proc/net/unix", "r");
	char line[512];
	int found = 0;

	if (!f) {
		NEMO_ERR("nf", "cannot read /proc/net/unix: %s", strerror(errno));
		return -errno;
	}
	/* Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 is __SO_ACCEPTCON */
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long flags;
		char sock_path[256];

		if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %255s", &flags, sock_path) == 2 &&
		    strcmp(sock_path, path) == 0 && (flags & 0x10000))
			found = 1;
	}
	fclose(f);
	return found;
}

/*
 * A memif server binds its socket path; a file left there by a process that died makes the
 * bind fail. Remove it if nobody answers on it, refuse if somebody does.
 */
static int memif_socket_prepare(uint32_t p, const char *devargs)
{
	char path[108], role[16] = "server", abstract[8] = "yes";
	struct stat st;
	int rc;

	devargs_get(devargs, "role", role, sizeof(role));
	devargs_get(devargs, "socket-abstract", abstract, sizeof(abstract));
	if (strcmp(role, "server") != 0 && strcmp(role, "master") != 0)
		return 0;
	if (strcmp(abstract, "no") != 0) {
		NEMO_WARN("nf",
			  "port %u: memif socket is abstract; add socket-abstract=no so that "
			  "other processes see a path",
			  p);
		return 0;
	}
	if (!devargs_get(devargs, "socket", path, sizeof(path)))
		snprintf(path, sizeof(path), "/run/memif.sock");
	if (stat(path, &st) < 0) {
		/* the memif server does not create the folder of its socket */
		char dir[108], *slash;

		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
				NEMO_ERR("nf", "port %u: cannot create %s for the memif socket: %s",
					 p, dir, strerror(errno));
				return -errno;
			}
		}
		return 0;
	}
	if (!S_ISSOCK(st.st_mode)) {
		NEMO_ERR("nf", "port %u: memif socket path %s exists and is not a socket", p, path);
		return -EEXIST;
	}
	/*
	 * Is anybody listening on it? Not by connecting: DPDK 22.11's memif server panics when a
	 * client hangs up before the handshake. /proc/net/unix lists listening sockets by path.
	 */
	rc = unix_socket_listening(path);
	if (rc < 0)
		return rc;
	if (rc) {
		NEMO_ERR("nf", "port %u: memif socket %s is in use by another process", p, path);
		return -EADDRINUSE;
	}
	if (unlink(path) < 0) {
		NEMO_ERR("nf", "port %u: cannot remove stale memif socket %s: %s", p, path,
			 strerror(errno));
		return -errno;
	}
	NEMO_WARN("nf", "port %u: removed stale memif socket %s (no process was listening)", p,
		  path);
	return 0;
}

static bool port_needs_rx_intr(const struct nf_config *cfg, uint32_t p)
{
	for (uint32_t i = 0; i < cfg->nb_lcores; i++) {
		const struct nf_lcore_config *lc = &cfg->lcores[i];

		if (lc->idle.policy != HC_IDLE_INTERRUPT)
			continue;
		for (uint32_t r = 0; r < lc->nb_rx; r++)
			if (lc->rx[r].port == p)
				return true;
	}
	return false;
}

int nf_port_setup(struct nf_runtime *rt, uint32_t p)
{
	const struct nf_port_config *pc = &rt->cfg->ports[p];
	const char *devargs = pc->vdev[0] ? pc->vdev : pc->pci;
	struct rte_eth_conf conf = {0};
	struct rte_eth_dev_info info;
	uint16_t port_id, nb_rxd = (uint16_t)pc->rx_ring, nb_txd = (uint16_t)pc->tx_ring;
	char *comma;
	int rc;

	snprintf(rt->port_name[p], sizeof(rt->port_name[p]), "%s", devargs);
	comma = strchr(rt->port_name[p], ',');
	if (comma)
		*comma = '\0';
	if (strncmp(devargs, "net_memif", 9) == 0) {
		rc = memif_socket_prepare(p, devargs);
		if (rc)
			return rc;
	}
	rc = rte_dev_probe(devargs);
	if (rc < 0) {
		NEMO_ERR("nf", "port %u: cannot attach '%s': %s", p, devargs, rte_strerror(-rc));
		return rc;
	}
	rt->port_attached[p] = true;
	rc = rte_eth_dev_get_port_by_name(rt->port_name[p], &port_id);
	if (rc < 0) {
		NEMO_ERR("nf", "port %u: '%s' attached but is not an ethdev", p, rt->port_name[p]);
		return -ENODEV;
	}
	rt->port_id[p] = port_id;
	rc = rte_eth_dev_info_get(port_id, &info);
	if (rc < 0)
		goto err;
	if (pc->rx_queues > info.max_rx_queues || pc->tx_queues > info.max_tx_queues) {
		NEMO_ERR("nf", "port %u (%s): %u rx / %u tx queues asked, the device has %u / %u",
			 p, rt->port_name[p], pc->rx_queues, pc->tx_queues, info.max_rx_queues,
			 info.max_tx_queues);
		return -EINVAL;
	}
	if (port_needs_rx_intr(rt->cfg, p))
		conf.intr_conf.rxq = 1;
	rc = rte_eth_dev_configure(port_id, (uint16_t)pc->rx_queues, (uint16_t)pc->tx_queues,
				   &conf);
	if (rc < 0) {
		if (conf.intr_conf.rxq)
			NEMO_ERR("nf",
				 "port %u (%s): cannot configure with rx interrupts (%s): idle "
				 "policy 'interrupt' needs a PMD that has them, such as net_tap; "
				 "use 'sleep' on this port",
				 p, rt->port_name[p], rte_strerror(-rc));
		goto err;
	}
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
	if (rc < 0)
		goto err;
	for (uint16_t q = 0; q < pc->rx_queues; q++) {
		rc = rte_eth_rx_queue_setup(port_id, q, nb_rxd, rte_eth_dev_socket_id(port_id),
					    NULL, rt->pool);
		if (rc < 0)
			goto err;
	}
	for (uint16_t q = 0; q < pc->tx_queues; q++) {
		rc = rte_eth_tx_queue_setup(port_id, q, nb_txd, rte_eth_dev_socket_id(port_id),
					    NULL);
		if (rc < 0)
			goto err;
	}
	rc = rte_eth_dev_start(port_id);
	if (rc < 0)
		goto err;
	rt->port_started[p] = true;
	if (pc->promiscuous && rte_eth_promiscuous_enable(port_id) < 0)
		NEMO_DEBUG("nf", "port %u (%s): no promiscuous mode", p, rt->port_name[p]);
	if (conf.intr_conf.rxq) {
		for (uint16_t q = 0; q < pc->rx_queues; q++) {
			if (rte_eth_dev_rx_intr_ctl_q_get_fd(port_id, q) < 0) {
				NEMO_ERR(
					"nf",
					"port %u (%s) rx queue %u has no interrupt: idle policy "
					"'interrupt' needs a PMD that has them (net_tap does); use "
					"'sleep'",
					p, rt->port_name[p], q);
				return -ENOTSUP;
			}
		}
	}
	NEMO_INFO("nf", "port %u: %s up as ethdev %u, %u rx x %u desc, %u tx x %u desc", p,
		  rt->port_name[p], port_id, pc->rx_queues, nb_rxd, pc->tx_queues, nb_txd);
	return 0;
err:
	NEMO_ERR("nf", "port %u (%s): cannot start: %s", p, rt->port_name[p], rte_strerror(-rc));
	return rc;
}

void nf_port_teardown(struct nf_runtime *rt, uint32_t p)
{
	uint16_t port_id = rt->port_id[p];
	const char *devargs = rt->cfg->ports[p].vdev;
	char path[108];

	if (rt->port_started[p] && strncmp(devargs, "net_memif", 9) == 0) {
		/*
		 * A memif peer that has just left is torn down by the EAL's interrupt thread;
		 * stopping and closing the port under it makes that thread crash (DPDK 22.11).
		 * Wait, bounded, for the link to go down, and a little more for the thread to
		 * finish. A peer that is still connected is disconnected by the stop itself.
		 */
		struct rte_eth_link link;

		for (int i = 0; i < 50; i++) {
			if (rte_eth_link_get_nowait(port_id, &link) == 0 && !link.link_status) {
				rte_delay_us_sleep(20000);
				break;
			}
			rte_delay_us_sleep(10000);
		}
	}
	if (rt->port_started[p]) {
		if (rte_eth_dev_stop(port_id) < 0)
			NEMO_WARN("nf", "port %u (%s): stop failed", p, rt->port_name[p]);
		rt->port_started[p] = false;
	}
	if (rt->port_attached[p]) {
		rte_eth_dev_close(port_id);
		if (rte_eal_hotplug_remove(devargs[0] ? "vdev" : "pci", rt->port_name[p]) < 0)
			NEMO_DEBUG("nf", "port %u (%s): detach failed", p, rt->port_name[p]);
		rt->port_attached[p] = false;
		/*
		 * memif hands the release of its control channel to the EAL's interrupt thread;
		 * if rte_eal_cleanup() frees the heap before that thread has run, the thread
		 * writes into unmapped memory (DPDK 22.11, seen as a SIGSEGV at exit under load).
		 */
		if (strncmp(devargs, "net_memif", 9) == 0)
			rte_delay_us_sleep(100000);
	}
	/* a memif server leaves its socket file behind; remove what we created */
	if (strncmp(devargs, "net_memif", 9) == 0 &&
	    devargs_get(devargs, "socket", path, sizeof(path))) {
		char role[16] = "server";

		devargs_get(devargs, "role", role, sizeof(role));
		if (strcmp(role, "client") != 0 && strcmp(role, "slave") != 0)
			unlink(path);
	}
}
