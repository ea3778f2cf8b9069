/* Host CPUs: online/present masks from sysfs, and a monitor of CPU hotplug
 * uevents with a notifier API. The API works everywhere: where the host
 * cannot hotplug (no cpuN/online files, no netlink) registering succeeds and
 * nothing ever fires, like the 2007 series' stubs for !CONFIG_HOTPLUG_CPU. */
#ifndef KVMHOST_HOST_CPU_H
#define KVMHOST_HOST_CPU_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

/* $KVMHOST_SYSFS_CPU (for tests), else /sys/devices/system/cpu. */
const char *host_cpu_sysfs_root(void);
/* Reads root/NAME ("online", "present", "possible") as a CPU list. */
int host_cpu_read_mask(const char *root, const char *name, cpu_set_t *set);

enum host_cpu_event { HOST_CPU_OFFLINE, HOST_CPU_ONLINE };

/* Called on the main thread. `online` is the mask after the change;
 * `uevent_ns` when the uevent was read (CLOCK_MONOTONIC; 0 for a resync). */
typedef void (*host_cpu_notify_fn)(void *opaque, enum host_cpu_event ev, int cpu,
				   const cpu_set_t *online, uint64_t uevent_ns);

struct host_cpu_notifier {
	host_cpu_notify_fn fn;
	void *opaque;
	struct host_cpu_notifier *next;
};

struct host_cpu_monitor;

/* Reads the masks and, where the host can hotplug and `use_netlink`, listens
 * for uevents on `event`. Never fails for lack of hotplug support. */
int host_cpu_monitor_new(struct host_cpu_monitor **out, sd_event *event, const char *root,
			 bool use_netlink);
void host_cpu_monitor_free(struct host_cpu_monitor *mon);
/* Both always succeed; the notifier must stay valid until unregistered. */
int host_cpu_notifier_register(struct host_cpu_monitor *mon, struct host_cpu_notifier *n);
void host_cpu_notifier_unregister(struct host_cpu_monitor *mon, struct host_cpu_notifier *n);

const cpu_set_t *host_cpu_online(const struct host_cpu_monitor *mon);
const cpu_set_t *host_cpu_present(const struct host_cpu_monitor *mon);
/* True when CPU hotplug events can reach us here. */
bool host_cpu_can_hotplug(const struct host_cpu_monitor *mon);

/* Parses one kernel uevent. Returns 1 and fills cpu/action for a CPU
 * online/offline/add/remove of /devices/system/cpu/cpuN, 0 for any other
 * uevent, -1 for a malformed one. Exposed for tests. */
int host_cpu_parse_uevent(const char *buf, size_t len, int *cpu, char *action, size_t alen);
/* Feeds a uevent as if read from netlink (tests), and re-reads sysfs. */
void host_cpu_monitor_handle_uevent(struct host_cpu_monitor *mon, const char *buf, size_t len,
				    uint64_t now);
/* Re-reads sysfs and fires for every difference (after lost events). */
void host_cpu_monitor_resync(struct host_cpu_monitor *mon);

#endif
