/* unmap.c - munmap() for processes with NF lcores: nothing an lcore may still read is unmapped. */
#include <errno.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <rte_rcu_qsbr.h>

#include "nemo/nf.h"

/*
 * DPDK 22.11's memif PMD tears a connection down on the EAL's interrupt thread when its peer
 * leaves: it clears its "connected" flag, then unmaps the peer's regions, while an lcore that
 * read the flag a moment before may still be in an rx or tx burst on those rings. That lcore
 * then faults (seen in make experiment, where each cell starts a new nemo-gen, and within a
 * few hundred peers killed under traffic: nf_integration, memif peer churn). Nothing in the
 * PMD waits for its readers; DPDK offers the wait, quiescent-state based reclamation
 * (rte_rcu_qsbr), so this process's munmap() takes it: every lcore reports a quiescent state
 * between two poll rounds and goes offline while it sleeps, and a munmap() from any other
 * thread first waits until each online lcore has finished the round it was in. A round is
 * microseconds, so the interrupt thread waits that long; the lcores never wait.
 *
 * munmap() has no context argument, so the guard is one pointer for the process (one NF
 * runtime per process, as for telemetry). nemo-nf exports this symbol, so that the PMD, which
 * the EAL loads as a plugin, calls it instead of libc's.
 */
static struct rte_rcu_qsbr *unmap_guard;
static __thread unsigned int unmap_reader = RTE_QSBR_THRID_INVALID;

void nf_unmap_guard(struct rte_rcu_qsbr *v)
{
	__atomic_store_n(&unmap_guard, v, __ATOMIC_RELEASE);
}

void nf_unmap_reader(unsigned int id)
{
	unmap_reader = id;
}

int munmap(void *addr, size_t len)
{
	struct rte_rcu_qsbr *v = __atomic_load_n(&unmap_guard, __ATOMIC_ACQUIRE);

	/* a reader that unmaps is between two rounds: it counts itself as quiescent */
	if (v)
		rte_rcu_qsbr_synchronize(v, unmap_reader);
	return (int)syscall(SYS_munmap, addr, len);
}
