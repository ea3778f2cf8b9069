/* A stand-in for logind on a private D-Bus, for the host-sleep tests: it owns
 * org.freedesktop.login1, hands out delay inhibitors as real file
 * descriptors and notices when every copy of one is closed, and emits
 * PrepareForSleep or PrepareForShutdown when told to on stdin.
 *
 * --delay-us=N sets its InhibitDelayMaxUSec. With --upower it also stands in for UPower's display
 * device, whose State and WarningLevel the test sets (emitting PropertiesChanged, as UPower does).
 *
 * stdin:  sleep | wake | burst (true,false,true) | wake-only | shutdown |
 *         shutdown-cancel | deny | allow | mute (Inhibit is never answered) |
 *         battery STATE LEVEL | quit
 * stdout: ready | inhibit ID WHO MODE WHAT | released ID NS WHAT | signal B NS
 * (NS: CLOCK_MONOTONIC nanoseconds, comparable with kvmhost's status.) */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

static sd_bus *bus;
static sd_event *event;
static int next_id = 1;
static int deny, mute;
static uint32_t battery_state = 1, battery_level = 1; /* charging, none */
static char whats[4096][16];			      /* what each inhibitor ID is for */

static unsigned long long mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static int on_released(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	(void)revents;
	/* The read end hangs up once every copy of the write end is closed. */
	int id = (int)(long)userdata;
	printf("released %d %llu %s\n", id, mono_ns(), whats[id % 4096]);
	fflush(stdout);
	sd_event_source_disable_unref(s);
	close(fd);
	return 0;
}

static int method_inhibit(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	(void)userdata;
	const char *what, *who, *why, *mode;
	int r = sd_bus_message_read(m, "ssss", &what, &who, &why, &mode);
	if (r < 0)
		return r;
	if (mute) {
		sd_bus_message_ref(m); /* never answered, never freed: a hung logind */
		return 1;
	}
	if (deny)
		return sd_bus_error_set(error, "org.freedesktop.DBus.Error.AccessDenied",
					"inhibitors are not allowed (test)");
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	int id = next_id++;
	snprintf(whats[id % 4096], sizeof(whats[0]), "%s", what);
	sd_event_add_io(event, NULL, p[0], EPOLLHUP, on_released, (void *)(long)id);
	printf("inhibit %d %s %s %s\n", id, who, mode, what);
	fflush(stdout);
	r = sd_bus_reply_method_return(m, "h", p[1]); /* the message takes a copy */
	close(p[1]);
	return r;
}

static uint64_t inhibit_delay_us = 5000000; /* logind's default */

static int get_delay(sd_bus *b, const char *path, const char *iface, const char *prop,
		     sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	(void)b, (void)path, (void)iface, (void)prop, (void)userdata, (void)error;
	return sd_bus_message_append(reply, "t", inhibit_delay_us);
}

static const sd_bus_vtable manager_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("InhibitDelayMaxUSec", "t", get_delay, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_METHOD("Inhibit", "ssss", "h", method_inhibit, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_SIGNAL("PrepareForSleep", "b", 0),
	SD_BUS_SIGNAL("PrepareForShutdown", "b", 0),
	SD_BUS_VTABLE_END,
};

static int get_state(sd_bus *b, const char *path, const char *iface, const char *prop,
		     sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	(void)b, (void)path, (void)iface, (void)prop, (void)userdata, (void)error;
	return sd_bus_message_append(reply, "u", battery_state);
}

static int get_level(sd_bus *b, const char *path, const char *iface, const char *prop,
		     sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	(void)b, (void)path, (void)iface, (void)prop, (void)userdata, (void)error;
	return sd_bus_message_append(reply, "u", battery_level);
}

static const sd_bus_vtable upower_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("State", "u", get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("WarningLevel", "u", get_level, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_VTABLE_END,
};

#define DISPLAY_DEVICE "/org/freedesktop/UPower/devices/DisplayDevice"

static int add_upower(void)
{
	int r = sd_bus_add_object_vtable(bus, NULL, DISPLAY_DEVICE, "org.freedesktop.UPower.Device",
					 upower_vtable, NULL);
	return r < 0 ? r : sd_bus_request_name(bus, "org.freedesktop.UPower", 0);
}

static void set_battery(const char *args)
{
	unsigned state, level;
	if (sscanf(args, "%u %u", &state, &level) != 2)
		return;
	battery_state = state;
	battery_level = level;
	sd_bus_emit_properties_changed(bus, DISPLAY_DEVICE, "org.freedesktop.UPower.Device",
				       "State", "WarningLevel", NULL);
	sd_bus_flush(bus);
	printf("battery %u %u\n", state, level);
	fflush(stdout);
}

static void emit_named(const char *signal, int start)
{
	/* Stamped before sending: nobody can react to it earlier than this. */
	unsigned long long t = mono_ns();
	sd_bus_emit_signal(bus, "/org/freedesktop/login1", "org.freedesktop.login1.Manager", signal,
			   "b", start);
	sd_bus_flush(bus);
	printf("signal %d %llu\n", start, t);
	fflush(stdout);
}

static void emit(int start)
{
	emit_named("PrepareForSleep", start);
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	(void)s;
	(void)revents;
	(void)userdata;
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return sd_event_exit(event, 0);
	buf[n] = '\0';
	for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		if (!strcmp(l, "sleep"))
			emit(1);
		else if (!strcmp(l, "shutdown"))
			emit_named("PrepareForShutdown", 1);
		else if (!strcmp(l, "shutdown-cancel"))
			emit_named("PrepareForShutdown", 0);
		else if (!strcmp(l, "wake") || !strcmp(l, "wake-only"))
			emit(0);
		else if (!strcmp(l, "burst"))
			emit(1), emit(0), emit(1);
		else if (!strncmp(l, "battery ", 8))
			set_battery(l + 8);
		else if (!strcmp(l, "mute"))
			mute = 1;
		else if (!strcmp(l, "deny"))
			deny = 1;
		else if (!strcmp(l, "allow"))
			deny = 0;
		else if (!strcmp(l, "quit"))
			return sd_event_exit(event, 0);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int r;
	bool upower = false;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--upower"))
			upower = true;
		else if (!strncmp(argv[i], "--delay-us=", 11))
			inhibit_delay_us = strtoull(argv[i] + 11, NULL, 10);
	if ((r = sd_event_default(&event)) < 0 || (r = sd_bus_open_system(&bus)) < 0 ||
	    (r = sd_bus_add_object_vtable(bus, NULL, "/org/freedesktop/login1",
					  "org.freedesktop.login1.Manager", manager_vtable, NULL)) <
		    0 ||
	    (r = sd_bus_request_name(bus, "org.freedesktop.login1", 0)) < 0 ||
	    (upower && (r = add_upower()) < 0) || (r = sd_bus_attach_event(bus, event, 0)) < 0 ||
	    (r = sd_event_add_io(event, NULL, 0, EPOLLIN, on_stdin, NULL)) < 0) {
		fprintf(stderr, "fake_logind: %s\n", strerror(-r));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	r = sd_event_loop(event);
	sd_bus_flush_close_unref(bus);
	sd_event_unref(event);
	return r < 0 ? 1 : 0;
}
