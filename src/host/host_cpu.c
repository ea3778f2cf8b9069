/* Host CPU hotplug: online and present masks from sysfs, and the kernel's
 * uevents from a netlink socket on the main loop. An event is applied as it
 * says (reading sysfs just after a CPU comes up costs ~1 ms), and sysfs is
 * read again shortly after, to repair what an event got wrong or lost. */
#include "host/host_cpu.h"

#include <errno.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/event.h"
#include "util/util.h"

struct host_cpu_monitor {
	char root[PATH_MAX];
	cpu_set_t online;
	cpu_set_t present;
	bool can_hotplug;
	int fd;
	sd_event_source *src;
	sd_event_source *resync_src; /* sysfs re-read a little after each event */
	struct host_cpu_notifier *notifiers;
};

const char *host_cpu_sysfs_root(void)
{
	const char *env = getenv("KVMHOST_SYSFS_CPU");
	return env && *env ? env : "/sys/devices/system/cpu";
}

int host_cpu_read_mask(const char *root, const char *name, cpu_set_t *set)
{
	char path[KVMHOST_PATH_MAX], buf[4096];
	snprintf(path, sizeof(path), "%s/%s", root, name);
	int n = read_file(path, buf, sizeof(buf));
	if (n < 0)
		return n;
	buf[strcspn(buf, "\n")] = '\0';
	if (!buf[0]) {
		CPU_ZERO(set); /* e.g. "offline" when every CPU is online */
		return 0;
	}
	return parse_cpu_list(buf, set);
}

int host_cpu_parse_uevent(const char *buf, size_t len, int *cpu, char *action, size_t alen)
{
	/* "ACTION@DEVPATH\0KEY=VALUE\0...": the header alone says what we need,
	 * the SUBSYSTEM key confirms it. */
	if (len == 0 || buf[len - 1] != '\0')
		return -1;
	const char *at = memchr(buf, '@', strnlen(buf, len));
	if (!at)
		return -1;
	static const char prefix[] = "/devices/system/cpu/cpu";
	const char *path = at + 1;
	if (strncmp(path, prefix, sizeof(prefix) - 1))
		return 0;
	const char *num = path + sizeof(prefix) - 1;
	uint64_t n;
	if (parse_u64(num, &n) || n >= CPU_SETSIZE)
		return 0; /* cpufreq, cpuidle ... or not a CPU */
	bool is_cpu_subsystem = false;
	for (const char *p = buf + strlen(buf) + 1; p < buf + len; p += strlen(p) + 1)
		if (!strcmp(p, "SUBSYSTEM=cpu"))
			is_cpu_subsystem = true;
	if (!is_cpu_subsystem)
		return 0;
	size_t alen_in = (size_t)(at - buf);
	static const char *const actions[] = {"online", "offline", "add", "remove"};
	for (size_t i = 0; i < ARRAY_SIZE(actions); i++) {
		if (alen_in == strlen(actions[i]) && !strncmp(buf, actions[i], alen_in)) {
			snprintf(action, alen, "%s", actions[i]);
			*cpu = (int)n;
			return 1;
		}
	}
	return 0; /* change, bind ...: nothing about being online */
}

static void notify(struct host_cpu_monitor *mon, enum host_cpu_event ev, int cpu, uint64_t ns)
{
	for (struct host_cpu_notifier *n = mon->notifiers, *next; n; n = next) {
		next = n->next; /* a callback may unregister itself */
		n->fn(n->opaque, ev, cpu, &mon->online, ns);
	}
}

/* Sysfs is the truth; an event only says when to look. `hint` is a CPU the
 * uevent said came online: told again even if we never saw it go, because
 * a quick offline/online may have changed affinities behind our back. */
static void resync(struct host_cpu_monitor *mon, int online_hint, bool present_changed, uint64_t ns)
{
	cpu_set_t now;
	if (host_cpu_read_mask(mon->root, "online", &now))
		return;
	if (present_changed)
		host_cpu_read_mask(mon->root, "present", &mon->present);
	cpu_set_t old = mon->online;
	mon->online = now;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		bool was = CPU_ISSET(c, &old), is = CPU_ISSET(c, &now);
		if (was && !is)
			notify(mon, HOST_CPU_OFFLINE, c, ns);
		else if (is && (!was || c == online_hint))
			notify(mon, HOST_CPU_ONLINE, c, ns);
	}
}

void host_cpu_monitor_resync(struct host_cpu_monitor *mon)
{
	resync(mon, -1, true, 0);
}

#define RESYNC_DELAY_USEC 50000

void host_cpu_monitor_handle_uevent(struct host_cpu_monitor *mon, const char *buf, size_t len,
				    uint64_t now)
{
	int cpu;
	char action[16];
	if (host_cpu_parse_uevent(buf, len, &cpu, action, sizeof(action)) != 1)
		return;
	/* The event is applied as it says: reading sysfs right after a CPU
	 * comes up costs ~1 ms here. Sysfs is re-read shortly after, which
	 * repairs anything an event got wrong or that we missed. */
	bool up = !strcmp(action, "online") || !strcmp(action, "add");
	bool was = CPU_ISSET(cpu, &mon->online);
	if (up) {
		CPU_SET(cpu, &mon->online);
		CPU_SET(cpu, &mon->present);
		/* Told even if we never saw it go: a quick offline/online may have
		 * changed affinities behind our back. */
		notify(mon, HOST_CPU_ONLINE, cpu, now);
	} else {
		CPU_CLR(cpu, &mon->online);
		if (!strcmp(action, "remove"))
			CPU_CLR(cpu, &mon->present);
		if (was)
			notify(mon, HOST_CPU_OFFLINE, cpu, now);
	}
	if (mon->resync_src) {
		event_timer_rearm(mon->resync_src, RESYNC_DELAY_USEC);
	}
}

static int on_resync_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	(void)s;
	(void)usec;
	resync(userdata, -1, true, 0);
	return 0;
}

static int on_netlink(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct host_cpu_monitor *mon = userdata;
	(void)s;
	(void)revents;
	char buf[8192];
	for (;;) {
		struct sockaddr_nl from;
		struct iovec iov = {buf, sizeof(buf) - 1};
		struct msghdr msg = {.msg_name = &from,
				     .msg_namelen = sizeof(from),
				     .msg_iov = &iov,
				     .msg_iovlen = 1};
		ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == ENOBUFS) {
				/* Events were dropped: look at everything again. */
				resync(mon, -1, true, now_ns());
				continue;
			}
			break; /* EAGAIN */
		}
		/* Only the kernel speaks here (pid 0); udev and others are ignored. */
		if (from.nl_pid != 0 || (msg.msg_flags & MSG_TRUNC))
			continue;
		buf[n] = '\0';
		host_cpu_monitor_handle_uevent(mon, buf, (size_t)n + (n && buf[n - 1] ? 1 : 0),
					       now_ns());
	}
	return 0;
}

static int open_netlink(struct host_cpu_monitor *mon, sd_event *event)
{
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			NETLINK_KOBJECT_UEVENT);
	if (fd < 0)
		return -errno;
	int size = 1 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	struct sockaddr_nl addr = {.nl_family = AF_NETLINK, .nl_groups = 1};
	int r;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		r = -errno;
		goto fail;
	}
	r = sd_event_add_io(event, &mon->src, fd, EPOLLIN, on_netlink, mon);
	if (r < 0)
		goto fail;
	r = sd_event_add_time_relative(event, &mon->resync_src, CLOCK_MONOTONIC, RESYNC_DELAY_USEC,
				       0, on_resync_timer, mon);
	if (r < 0)
		goto fail;
	r = sd_event_source_set_enabled(mon->resync_src, SD_EVENT_OFF);
	if (r < 0)
		goto fail;
	mon->fd = fd;
	return 0;
fail:
	/* Both sources NULL until added: one undo for every step. */
	mon->src = sd_event_source_disable_unref(mon->src);
	mon->resync_src = sd_event_source_disable_unref(mon->resync_src);
	close(fd);
	return r;
}

/* Where some CPU has an online switch, or where CPUs may yet be hot-added:
 * a host that starts with its boot CPU alone (which has no switch on x86)
 * learns of the CPUs added later only from their uevents. */
static bool hotplug_possible(const char *root, const cpu_set_t *present)
{
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, present))
			continue;
		char path[KVMHOST_PATH_MAX];
		snprintf(path, sizeof(path), "%s/cpu%d/online", root, c);
		if (access(path, F_OK) == 0)
			return true;
	}
	cpu_set_t possible;
	if (host_cpu_read_mask(root, "possible", &possible))
		return false;
	CPU_XOR(&possible, &possible, present);
	return CPU_COUNT(&possible) > 0;
}

int host_cpu_monitor_new(struct host_cpu_monitor **out, sd_event *event, const char *root,
			 bool use_netlink)
{
	struct host_cpu_monitor *mon = calloc(1, sizeof(*mon));
	if (!mon)
		return -ENOMEM;
	mon->fd = -1;
	snprintf(mon->root, sizeof(mon->root), "%s", root);
	if (host_cpu_read_mask(root, "online", &mon->online)) {
		/* Not even a mask: assume every CPU we may run on is online. */
		sched_getaffinity(0, sizeof(mon->online), &mon->online);
	}
	if (host_cpu_read_mask(root, "present", &mon->present))
		mon->present = mon->online;
	mon->can_hotplug = hotplug_possible(root, &mon->present);
	if (mon->can_hotplug && use_netlink && event) {
		int r = open_netlink(mon, event);
		if (r) {
			log_warn(
				"host CPU hotplug events unavailable (%s): pinning is not repaired "
				"when CPUs go offline",
				strerror(-r));
			mon->can_hotplug = false;
		}
	} else {
		mon->can_hotplug = false;
	}
	*out = mon;
	return 0;
}

void host_cpu_monitor_free(struct host_cpu_monitor *mon)
{
	if (!mon)
		return;
	sd_event_source_disable_unref(mon->src);
	sd_event_source_disable_unref(mon->resync_src);
	if (mon->fd >= 0)
		close(mon->fd);
	free(mon);
}

int host_cpu_notifier_register(struct host_cpu_monitor *mon, struct host_cpu_notifier *n)
{
	n->next = mon->notifiers;
	mon->notifiers = n;
	return 0;
}

void host_cpu_notifier_unregister(struct host_cpu_monitor *mon, struct host_cpu_notifier *n)
{
	for (struct host_cpu_notifier **pp = &mon->notifiers; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			return;
		}
	}
}

const cpu_set_t *host_cpu_online(const struct host_cpu_monitor *mon)
{
	return &mon->online;
}
const cpu_set_t *host_cpu_present(const struct host_cpu_monitor *mon)
{
	return &mon->present;
}
bool host_cpu_can_hotplug(const struct host_cpu_monitor *mon)
{
	return mon->can_hotplug;
}
