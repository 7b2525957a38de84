/* topology.c - the machine through hwloc: which CPUs exist, share caches, and what role each has. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <hwloc.h>

#include "nemo/log.h"
#include "nemo/scheduler.h"

/* The logical index of the ancestor of `pu` of `type`, or -1. */
static int ancestor_index(hwloc_topology_t topo, hwloc_obj_t pu, hwloc_obj_type_t type)
{
	hwloc_obj_t o = hwloc_get_ancestor_obj_by_type(topo, type, pu);

	return o ? (int)o->logical_index : -1;
}

static int cpu_slot(const struct sched_topology *t, int os_index)
{
	for (int i = 0; i < t->n_cpus; i++)
		if (t->cpus[i].os_index == os_index)
			return i;
	return -1;
}

/* "0-1" style list of the online CPUs, for messages. */
static void online_list(const struct sched_topology *t, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < t->n_cpus && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%d", i ? "," : "",
					t->cpus[i].os_index);
}

static int give_role(struct sched_topology *t, int cpu, int role, const char *what)
{
	int i = cpu_slot(t, cpu);
	char list[256];

	if (i < 0) {
		online_list(t, list, sizeof(list));
		NEMO_ERR("scheduler",
			 "%s core %d in the config does not exist on this machine "
			 "(online CPUs: %s)",
			 what, cpu, list);
		return -EINVAL;
	}
	if (t->cpus[i].role != SCHED_CPU_UNUSED) {
		NEMO_ERR("scheduler", "%s core %d is already a%s core", what, cpu,
			 t->cpus[i].role == SCHED_CPU_NF ? "n NF" : " housekeeping");
		return -EINVAL;
	}
	t->cpus[i].role = role;
	return 0;
}

int sched_topology_discover(struct sched_topology *t, const int *nf_cpus, int n_nf,
			    const int *hk_cpus, int n_hk)
{
	hwloc_topology_t topo;
	hwloc_obj_t pu = NULL;
	int rc = 0;

	memset(t, 0, sizeof(*t));
	if (hwloc_topology_init(&topo) < 0 || hwloc_topology_load(topo) < 0) {
		NEMO_ERR("scheduler", "hwloc cannot load this machine's topology: %s",
			 strerror(errno));
		return -EIO;
	}
	while ((pu = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PU, pu)) != NULL &&
	       t->n_cpus < SCHED_MAX_CPUS) {
		struct sched_cpu *c = &t->cpus[t->n_cpus++];
		hwloc_obj_t numa;

		c->os_index = (int)pu->os_index;
		c->core = ancestor_index(topo, pu, HWLOC_OBJ_CORE);
		if (c->core < 0)
			c->core = (int)pu->logical_index;
		c->l2 = ancestor_index(topo, pu, HWLOC_OBJ_L2CACHE);
		c->l3 = ancestor_index(topo, pu, HWLOC_OBJ_L3CACHE);
		/* NUMA nodes are memory children in hwloc 2: find the one covering this PU */
		numa = hwloc_get_next_obj_covering_cpuset_by_type(topo, pu->cpuset,
								  HWLOC_OBJ_NUMANODE, NULL);
		c->numa = numa ? (int)numa->os_index : 0;
	}
	hwloc_topology_destroy(topo);

	for (int i = 0; i < n_nf && rc == 0; i++)
		rc = give_role(t, nf_cpus[i], SCHED_CPU_NF, "NF");
	for (int i = 0; i < n_hk && rc == 0; i++)
		rc = give_role(t, hk_cpus[i], SCHED_CPU_HOUSEKEEPING, "housekeeping");
	if (rc)
		return rc;
	if (n_hk == 0)
		for (int i = 0; i < t->n_cpus; i++)
			if (t->cpus[i].role == SCHED_CPU_UNUSED)
				t->cpus[i].role = SCHED_CPU_HOUSEKEEPING;
	return 0;
}

const struct sched_cpu *sched_topology_cpu(const struct sched_topology *t, int os_index)
{
	int i = cpu_slot(t, os_index);

	return i < 0 ? NULL : &t->cpus[i];
}

bool sched_topology_share_cache(const struct sched_topology *t, int cpu_a, int cpu_b, int level)
{
	const struct sched_cpu *a = sched_topology_cpu(t, cpu_a), *b = sched_topology_cpu(t, cpu_b);

	if (!a || !b)
		return false;
	if (level == 2)
		return a->l2 >= 0 && a->l2 == b->l2;
	if (level == 3)
		return a->l3 >= 0 && a->l3 == b->l3;
	return false;
}

int sched_topology_format(const struct sched_topology *t, char *buf, size_t len)
{
	static const char *const roles[] = {"unused", "nf", "housekeeping"};
	size_t off = 0;

	if (len)
		buf[0] = '\0';
	for (int i = 0; i < t->n_cpus && off < len; i++) {
		const struct sched_cpu *c = &t->cpus[i];

		off += (size_t)snprintf(buf + off, len - off,
					"cpu %d: core %d numa %d l2 %d l3 %d %s\n", c->os_index,
					c->core, c->numa, c->l2, c->l3, roles[c->role]);
	}
	return (int)(off < len ? off : len);
}
