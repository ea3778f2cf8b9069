/* A stand-in for systemd's manager on a private D-Bus, just enough for the
 * real systemd-logind to run on it: Subscribe, the LoadState of the targets
 * logind checks, and StartUnit, which only reports (a job path, then
 * JobRemoved "done") and never starts anything.
 *
 * It also notes when logind's PrepareForShutdown/PrepareForSleep go out, so
 * a benchmark can time logind's wait for its delay inhibitors.
 *
 * With STUB_SYSTEMD1_SUSPEND set (only ever inside a throwaway test host),
 * starting suspend.target runs that shell command - `echo mem >
 * /sys/power/state`, a real suspend - and the job ends when it exits, as
 * systemd-suspend.service does.
 *
 * stdin:  hold (later jobs stay running: the host "sleeps") | finish (they end)
 * stdout: ready | start UNIT MODE MONO_NS REAL_NS | prepare SIGNAL B MONO_NS
 *         | suspended STATUS MONO_NS */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define SYSTEMD1_PATH "/org/freedesktop/systemd1"
#define MANAGER	      "org.freedesktop.systemd1.Manager"

static sd_bus *bus;
static sd_event *event;
static unsigned next_job = 1;
static int hold;
static struct {
	unsigned id;
	char path[64], unit[128];
} held[16];
static int nr_held;

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

static int job_removed(unsigned id, const char *job, const char *unit)
{
	return sd_bus_emit_signal(bus, SYSTEMD1_PATH, MANAGER, "JobRemoved", "uoss", id, job, unit,
				  "done");
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	(void)s, (void)revents, (void)userdata;
	char buf[256];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return sd_event_source_set_enabled(s, SD_EVENT_OFF);
	buf[n] = '\0';
	if (strstr(buf, "hold"))
		hold = 1;
	if (strstr(buf, "finish")) {
		hold = 0;
		for (int i = 0; i < nr_held; i++)
			job_removed(held[i].id, held[i].path, held[i].unit);
		nr_held = 0;
		sd_bus_flush(bus);
	}
	return 0;
}

struct suspend_job {
	unsigned id;
	char path[64];
};

static int on_suspend_done(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct suspend_job *job = userdata;
	printf("suspended %d %llu\n", si->si_status, clock_ns(CLOCK_MONOTONIC));
	fflush(stdout);
	job_removed(job->id, job->path, "suspend.target");
	sd_bus_flush(bus);
	free(job);
	return sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

/* The real sleep, the way systemd-suspend.service would: its job ends when
 * the command (which returns on wake) does. */
static int start_suspend(unsigned id, const char *path, const char *cmd)
{
	struct suspend_job *job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	job->id = id;
	snprintf(job->path, sizeof(job->path), "%s", path);
	pid_t pid = fork();
	if (pid < 0) {
		free(job);
		return -errno;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	int r = sd_event_add_child(event, NULL, pid, WEXITED, on_suspend_done, job);
	if (r < 0)
		free(job);
	return r;
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
	const char *suspend = getenv("STUB_SYSTEMD1_SUSPEND");
	if (r >= 0 && suspend && strcmp(unit, "suspend.target") == 0)
		return start_suspend(id, job, suspend);
	if (r < 0 || !hold || nr_held == 16)
		return r < 0 ? r : job_removed(id, job, unit);
	held[nr_held].id = id;
	snprintf(held[nr_held].path, sizeof(held[0].path), "%s", job);
	snprintf(held[nr_held].unit, sizeof(held[0].unit), "%s", unit);
	nr_held++;
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
	int r;
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL); /* sd_event_add_child wants it blocked */
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
	    (r = sd_bus_attach_event(bus, event, 0)) < 0 ||
	    (r = sd_event_add_io(event, NULL, 0, EPOLLIN, on_stdin, NULL)) < 0) {
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
