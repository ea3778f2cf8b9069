/* A stand-in for systemd's manager on a private D-Bus, just enough for the
 * real systemd-logind to run on it: Subscribe, the LoadState of the targets
 * logind checks, and StartUnit, which only reports (a job path, then
 * JobRemoved "done") and never starts anything.
 *
 * It also notes when logind's PrepareForShutdown/PrepareForSleep go out, so
 * a benchmark can time logind's wait for its delay inhibitors.
 *
 * stdout: ready | start UNIT MODE MONO_NS REAL_NS | prepare SIGNAL B MONO_NS */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define SYSTEMD1_PATH "/org/freedesktop/systemd1"
#define MANAGER	      "org.freedesktop.systemd1.Manager"

static sd_bus *bus;
static unsigned next_job = 1;

static unsigned long long clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static int method_subscribe(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	(void)userdata, (void)error;
	return sd_bus_reply_method_return(m, NULL);
}

static int method_start_unit(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	(void)userdata, (void)error;
	const char *unit, *mode;
	int r = sd_bus_message_read(m, "ss", &unit, &mode);
	if (r < 0)
		return r;
	unsigned id = next_job++;
	char job[64];
	snprintf(job, sizeof(job), SYSTEMD1_PATH "/job/%u", id);
	printf("start %s %s %llu %llu\n", unit, mode, clock_ns(CLOCK_MONOTONIC),
	       clock_ns(CLOCK_REALTIME));
	fflush(stdout);
	r = sd_bus_reply_method_return(m, "o", job);
	if (r >= 0)
		r = sd_bus_emit_signal(bus, SYSTEMD1_PATH, MANAGER, "JobRemoved", "uoss", id, job,
				       unit, "done");
	return r;
}

static int on_prepare(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	(void)userdata, (void)error;
	int start = 0;
	unsigned long long t = clock_ns(CLOCK_MONOTONIC);
	if (sd_bus_message_read(m, "b", &start) >= 0) {
		printf("prepare %s %d %llu\n", sd_bus_message_get_member(m), start, t);
		fflush(stdout);
	}
	return 0;
}

static int get_load_state(sd_bus *b, const char *path, const char *iface, const char *prop,
			  sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	(void)b, (void)path, (void)iface, (void)prop, (void)userdata, (void)error;
	return sd_bus_message_append(reply, "s", "loaded");
}

static int get_active_state(sd_bus *b, const char *path, const char *iface, const char *prop,
			    sd_bus_message *reply, void *userdata, sd_bus_error *error)
{
	(void)b, (void)path, (void)iface, (void)prop, (void)userdata, (void)error;
	return sd_bus_message_append(reply, "s", "inactive");
}

static const sd_bus_vtable manager_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Subscribe", "", "", method_subscribe, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("StartUnit", "ss", "o", method_start_unit, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_SIGNAL("JobRemoved", "uoss", 0),
	SD_BUS_VTABLE_END,
};

/* Every unit logind asks about is a loaded, inactive target. */
static const sd_bus_vtable unit_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_PROPERTY("LoadState", "s", get_load_state, 0, 0),
	SD_BUS_PROPERTY("ActiveState", "s", get_active_state, 0, 0),
	SD_BUS_VTABLE_END,
};

int main(void)
{
	sd_event *event = NULL;
	int r;
	if ((r = sd_event_default(&event)) < 0 || (r = sd_bus_open_system(&bus)) < 0 ||
	    (r = sd_bus_add_object_vtable(bus, NULL, SYSTEMD1_PATH, MANAGER, manager_vtable,
					  NULL)) < 0 ||
	    (r = sd_bus_add_fallback_vtable(bus, NULL, SYSTEMD1_PATH "/unit",
					    "org.freedesktop.systemd1.Unit", unit_vtable, NULL,
					    NULL)) < 0 ||
	    (r = sd_bus_request_name(bus, "org.freedesktop.systemd1", 0)) < 0 ||
	    (r = sd_bus_match_signal(bus, NULL, NULL, "/org/freedesktop/login1",
				     "org.freedesktop.login1.Manager", NULL, on_prepare, NULL)) <
		    0 ||
	    (r = sd_bus_attach_event(bus, event, 0)) < 0) {
		fprintf(stderr, "stub_systemd1: %s\n", strerror(-r));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	r = sd_event_loop(event);
	sd_bus_flush_close_unref(bus);
	sd_event_unref(event);
	return r < 0 ? 1 : 0;
}
