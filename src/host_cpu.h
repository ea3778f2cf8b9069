/* Host CPUs: online/present masks from sysfs, and (later) a monitor of
 * hotplug uevents with a notifier API. */
#ifndef KVMHOST_HOST_CPU_H
#define KVMHOST_HOST_CPU_H

#include <sched.h>

/* $KVMHOST_SYSFS_CPU (for tests), else /sys/devices/system/cpu. */
const char *host_cpu_sysfs_root(void);
/* Reads root/NAME ("online", "present", "possible") as a CPU list. */
int host_cpu_read_mask(const char *root, const char *name, cpu_set_t *set);

#endif
