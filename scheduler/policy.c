/* policy.c - the harvest-cgroup CPU policy's names, for configs and metrics. */
#include <errno.h>
#include <string.h>

#include "nemo/scheduler.h"

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
