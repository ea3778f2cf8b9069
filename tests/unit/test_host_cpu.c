/* Host CPU monitoring without real hotplug: uevents parsed as the kernel
 * sends them, and the monitor run over a fake sysfs tree in /tmp, with and
 * without cpuN/online files - the no-hotplug stub never fires, uevents
 * reach the notifiers, and a resync makes up for lost ones. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/host_cpu.h"

/* uevents as the kernel sends them: NUL-separated, NUL-terminated. */
#define UEVENT(s) s, sizeof(s)

static void parse_uevents(void **state)
{
	(void)state;
	int cpu = -1;
	char action[16];
	assert_int_equal(host_cpu_parse_uevent(UEVENT("offline@/devices/system/cpu/cpu1\0"
						      "ACTION=offline\0DEVPATH=/devices/system/"
						      "cpu/cpu1\0SUBSYSTEM=cpu\0SEQNUM=7"),
					       &cpu, action, sizeof(action)),
			 1);
	assert_int_equal(cpu, 1);
	assert_string_equal(action, "offline");
	assert_int_equal(host_cpu_parse_uevent(UEVENT("online@/devices/system/cpu/cpu13\0"
						      "SUBSYSTEM=cpu"),
					       &cpu, action, sizeof(action)),
			 1);
	assert_int_equal(cpu, 13);
	assert_string_equal(action, "online");

	/* Not ours: KVM's own per-VM event, cpuid devices, cpufreq, other actions. */
	static const char kvm[] = "change@/devices/virtual/misc/kvm\0ACTION=change\0CREATED=1";
	assert_int_equal(host_cpu_parse_uevent(kvm, sizeof(kvm), &cpu, action, sizeof(action)), 0);
	static const char cpuid[] = "remove@/devices/virtual/cpuid/cpu1\0SUBSYSTEM=cpuid";
	assert_int_equal(host_cpu_parse_uevent(cpuid, sizeof(cpuid), &cpu, action, sizeof(action)),
			 0);
	static const char freq[] = "change@/devices/system/cpu/cpufreq\0SUBSYSTEM=cpu";
	assert_int_equal(host_cpu_parse_uevent(freq, sizeof(freq), &cpu, action, sizeof(action)),
			 0);
	static const char chg[] = "change@/devices/system/cpu/cpu1\0SUBSYSTEM=cpu";
	assert_int_equal(host_cpu_parse_uevent(chg, sizeof(chg), &cpu, action, sizeof(action)), 0);
	static const char nosub[] = "offline@/devices/system/cpu/cpu1\0SUBSYSTEM=memory";
	assert_int_equal(host_cpu_parse_uevent(nosub, sizeof(nosub), &cpu, action, sizeof(action)),
			 0);
	static const char huge[] = "offline@/devices/system/cpu/cpu99999999\0SUBSYSTEM=cpu";
	assert_int_equal(host_cpu_parse_uevent(huge, sizeof(huge), &cpu, action, sizeof(action)),
			 0);

	/* Malformed: no terminator, no '@', empty. */
	static const char unterminated[] = {'o', 'n', 'l', 'i', 'n', 'e', '@', '/'};
	assert_int_equal(host_cpu_parse_uevent(unterminated, sizeof(unterminated), &cpu, action,
					       sizeof(action)),
			 -1);
	assert_int_equal(host_cpu_parse_uevent(UEVENT("libudev"), &cpu, action, sizeof(action)),
			 -1);
	assert_int_equal(host_cpu_parse_uevent("", 0, &cpu, action, sizeof(action)), -1);
}

/* A fake sysfs tree in a temporary directory. */
static char root[64];

static void put(const char *name, const char *value)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", root, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(value, f);
	fclose(f);
}

static void make_tree(bool hotplug)
{
	snprintf(root, sizeof(root), "/tmp/kvmhost-sysfs-XXXXXX");
	assert_non_null(mkdtemp(root));
	put("online", "0-3\n");
	put("present", "0-3\n");
	if (hotplug) {
		for (int c = 1; c < 4; c++) {
			char dir[128];
			snprintf(dir, sizeof(dir), "%s/cpu%d", root, c);
			mkdir(dir, 0755);
			snprintf(dir, sizeof(dir), "cpu%d/online", c);
			put(dir, "1\n");
		}
	}
}

static void remove_tree(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	assert_int_equal(system(cmd), 0);
}

struct seen {
	int offline[8], online[8];
	int calls;
};

static void record(void *opaque, enum host_cpu_event ev, int cpu, const cpu_set_t *online,
		   uint64_t ns)
{
	struct seen *s = opaque;
	(void)online;
	(void)ns;
	s->calls++;
	if (ev == HOST_CPU_OFFLINE)
		s->offline[cpu]++;
	else
		s->online[cpu]++;
}

static void stub_never_fires(void **state)
{
	(void)state;
	make_tree(false); /* no cpuN/online: this host cannot hotplug */
	sd_event *ev;
	assert_int_equal(sd_event_new(&ev), 0);
	struct host_cpu_monitor *mon;
	assert_int_equal(host_cpu_monitor_new(&mon, ev, root, true), 0);
	assert_false(host_cpu_can_hotplug(mon));
	assert_int_equal(CPU_COUNT(host_cpu_online(mon)), 4);
	struct seen seen = {0};
	struct host_cpu_notifier n = {.fn = record, .opaque = &seen};
	assert_int_equal(host_cpu_notifier_register(mon, &n), 0);
	/* Nothing listens, so nothing can fire, even if the world changes. */
	put("online", "0\n");
	for (int i = 0; i < 5; i++)
		sd_event_run(ev, 10000);
	assert_int_equal(seen.calls, 0);
	host_cpu_notifier_unregister(mon, &n);
	host_cpu_monitor_free(mon);
	sd_event_unref(ev);
	remove_tree();
}

static void no_netlink_stub(void **state)
{
	(void)state;
	make_tree(true); /* hotplug files exist, but events are refused */
	struct host_cpu_monitor *mon;
	assert_int_equal(host_cpu_monitor_new(&mon, NULL, root, false), 0);
	assert_false(host_cpu_can_hotplug(mon));
	struct seen seen = {0};
	struct host_cpu_notifier n = {.fn = record, .opaque = &seen};
	assert_int_equal(host_cpu_notifier_register(mon, &n), 0);
	host_cpu_monitor_free(mon);
	assert_int_equal(seen.calls, 0);
	remove_tree();
}

/* A host that starts with its boot CPU alone (no online switch) but may get
 * more: it listens, and a CPU added later is one that exists. */
static void hot_add_to_a_lone_boot_cpu(void **state)
{
	(void)state;
	make_tree(false);
	put("online", "0\n");
	put("present", "0\n");
	put("possible", "0-3\n");
	sd_event *ev;
	assert_int_equal(sd_event_new(&ev), 0);
	struct host_cpu_monitor *mon;
	assert_int_equal(host_cpu_monitor_new(&mon, ev, root, true), 0);
	assert_true(host_cpu_can_hotplug(mon));
	assert_false(CPU_ISSET(1, host_cpu_present(mon)));
	static const char add1[] = "add@/devices/system/cpu/cpu1\0SUBSYSTEM=cpu";
	host_cpu_monitor_handle_uevent(mon, add1, sizeof(add1), 1);
	assert_true(CPU_ISSET(1, host_cpu_present(mon)));
	host_cpu_monitor_free(mon);
	sd_event_unref(ev);
	remove_tree();
}

static void events_and_resync(void **state)
{
	(void)state;
	make_tree(true);
	struct host_cpu_monitor *mon;
	assert_int_equal(host_cpu_monitor_new(&mon, NULL, root, false), 0);
	struct seen seen = {0}, other = {0};
	struct host_cpu_notifier n = {.fn = record, .opaque = &seen};
	struct host_cpu_notifier n2 = {.fn = record, .opaque = &other};
	host_cpu_notifier_register(mon, &n);
	host_cpu_notifier_register(mon, &n2);

	static const char off2[] = "offline@/devices/system/cpu/cpu2\0SUBSYSTEM=cpu";
	put("online", "0-1,3\n");
	host_cpu_monitor_handle_uevent(mon, off2, sizeof(off2), 1);
	assert_int_equal(seen.offline[2], 1);
	assert_int_equal(other.offline[2], 1);
	assert_false(CPU_ISSET(2, host_cpu_online(mon)));

	/* Lost events: cpu1 and cpu3 went away and cpu2 came back, unseen. */
	host_cpu_notifier_unregister(mon, &n2);
	put("online", "0,2\n");
	host_cpu_monitor_resync(mon);
	assert_int_equal(seen.offline[1], 1);
	assert_int_equal(seen.offline[3], 1);
	assert_int_equal(seen.online[2], 1);
	assert_int_equal(other.calls, 1); /* unregistered: told nothing more */

	/* A quick offline+online seen only as "online": told online again. */
	static const char on2[] = "online@/devices/system/cpu/cpu2\0SUBSYSTEM=cpu";
	host_cpu_monitor_handle_uevent(mon, on2, sizeof(on2), 1);
	assert_int_equal(seen.online[2], 2);
	/* Unrelated uevents change nothing. */
	static const char kvm[] = "change@/devices/virtual/misc/kvm\0CREATED=1";
	int before = seen.calls;
	put("online", "0-3\n");
	host_cpu_monitor_handle_uevent(mon, kvm, sizeof(kvm), 1);
	assert_int_equal(seen.calls, before);
	host_cpu_monitor_free(mon);
	remove_tree();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_uevents),     cmocka_unit_test(stub_never_fires),
		cmocka_unit_test(no_netlink_stub),   cmocka_unit_test(hot_add_to_a_lone_boot_cpu),
		cmocka_unit_test(events_and_resync),
	};
	return cmocka_run_group_tests_name("host_cpu", tests, NULL, NULL);
}
