/* cgroup v1 cpuset repair: v1 drops an offline CPU from every cpuset for
 * good (v2 keeps it), so when the CPU comes back we give it back to the
 * cpuset the VMM runs in and to each of its ancestors, parents first. */
#ifndef KVMHOST_CPUSET_H
#define KVMHOST_CPUSET_H

#include <limits.h>
#include <sched.h>

struct cpuset_repair {
	char dir[PATH_MAX]; /* "" when the VMM is in no v1 cpuset (or in its root) */
	cpu_set_t cpus;	    /* what that cpuset had when we first saw it */
};

/* Finds the v1 cpuset the VMM is in now (it may have been moved). */
void cpuset_track(struct cpuset_repair *c);
/* Every CPU the cpuset had that is online again goes back into it. */
void cpuset_repair(struct cpuset_repair *c, const cpu_set_t *online);

#endif
