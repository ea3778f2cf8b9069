/* Host sleep (sleep.h) at work: PrepareForSleep or `ctl host-sleep` says
 * what is wanted, and an idle-priority source acts on the latest only: park,
 * save the clock, flush the disks, then let logind go; on wake, the clock
 * moved on and the vCPUs unparked. With neither, a BOOTTIME jump seen
 * afterwards still tells each vCPU it was stopped. */
#include "host/sleep.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "control/server.h"
#include "core/vm.h"
#include "util/event.h"
#include "util/util.h"

#define DETECT_PERIOD_USEC  1000000
#define DETECT_THRESHOLD_NS 1000000000LL

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t host_sleep_detect(int64_t prev_gap_ns, int64_t gap_ns, int64_t threshold_ns)
{
	int64_t d = gap_ns - prev_gap_ns;
	return d >= threshold_ns ? d : 0;
}

static void emit(struct host_sleep *hs, const char *name, json_object *o)
{
	control_emit_event(hs->ctl, name, o);
}

static void no_logind(struct host_sleep *hs, const char *why)
{
	if (!hs->said_no_logind)
		log_warn("host sleep: %s; the VM is not quiesced before the host sleeps (use "
			 "'kvmhost ctl --all host-sleep prepare|resume' from a sleep hook); a "
			 "wake is still noticed afterwards",
			 why);
	hs->said_no_logind = true;
	hs->logind = false;
	if (hs->detect_src)
		event_source_enable(hs->detect_src, SD_EVENT_ON);
}

static void on_inhibit_refused(void *opaque, const char *why)
{
	no_logind(opaque, why);
}

static void on_inhibit_taken(void *opaque)
{
	struct host_sleep *hs = opaque;
	hs->logind = true;
	if (hs->detect_src)
		event_source_enable(hs->detect_src, SD_EVENT_OFF);
	/* A sleep may have begun while we asked: then let it go at once. */
	if (hs->asleep)
		inhibitor_release(&hs->inhibitor);
}

static void take_inhibitor(struct host_sleep *hs)
{
	inhibitor_take(&hs->inhibitor);
}

/* Before the host sleeps: every vCPU out of KVM_RUN, the clock saved, every
 * acknowledged write durable - and only then let logind proceed. */
static void enter_sleep(struct host_sleep *hs)
{
	struct vm *vm = hs->vm;
	if (hs->asleep)
		return;
	vm_park_all(vm, PARK_HOST_SLEEP);
	hs->parked_ns = now_ns();
	int r = vm_get_clock(vm, &hs->clock);
	hs->clock_saved = r == 0;
	if (r)
		log_warn("host sleep: KVM_GET_CLOCK: %s", strerror(-r));
	hs->saved_boottime_ns = clock_ns(CLOCK_BOOTTIME);
	hs->flush_error = vm_flush_disks(vm);
	hs->flushed_ns = now_ns();
	/* Timed before: once the fd is closed, logind may go on to suspend before
	 * this thread runs again. */
	hs->released_ns = now_ns();
	inhibitor_release(&hs->inhibitor);
	hs->asleep = true;
	vm_set_host_asleep(vm, true);
	hs->sleeps++;
	log_info("host sleep: VM quiesced in %.2f ms (vCPUs parked in %.2f ms)",
		 (double)(hs->released_ns - hs->signal_ns) / 1e6,
		 (double)(hs->parked_ns - hs->signal_ns) / 1e6);
	json_object *o = json_object_new_object();
	json_object_object_add(
		o, "quiesce_ms",
		json_object_new_double((double)(hs->released_ns - hs->signal_ns) / 1e6));
	json_object_object_add(o, "flush_error", json_object_new_int(hs->flush_error));
	emit(hs, "host-sleep", o);
}

/* After the host wakes: guest time moved on by the real sleep, each vCPU
 * told it was stopped (KVMCLOCK_CTRL, on its own thread as it unparks), the
 * VM running again - unless a user paused it - and a new inhibitor. */
static void leave_sleep(struct host_sleep *hs)
{
	struct vm *vm = hs->vm;
	if (!hs->asleep) {
		take_inhibitor(hs); /* a wake with no sleep before it: nothing to undo */
		return;
	}
	if (hs->clock_saved) {
		int64_t slept = (int64_t)(clock_ns(CLOCK_BOOTTIME) - hs->saved_boottime_ns);
		if (vm_resume_clock(vm, &hs->clock, slept))
			log_warn("host sleep: the guest's clock could not be moved on");
		struct kvm_clock_data now;
		if (vm_get_clock(vm, &now) == 0)
			hs->slept_realtime_ns = (int64_t)(now.clock - hs->clock.clock);
	}
	vm_unpark_all(vm, PARK_HOST_SLEEP);
	/* Switches and bridges may have forgotten the guest while it slept. */
	vm_announce(vm);
	hs->resumed_ns = now_ns();
	hs->asleep = false;
	vm_set_host_asleep(vm, false);
	take_inhibitor(hs);
	log_info("host wake: VM %s after %.3f s",
		 vm->user_paused ? "stays paused (by its user)" : "resumed",
		 (double)hs->slept_realtime_ns / 1e9);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "slept_s",
			       json_object_new_double((double)hs->slept_realtime_ns / 1e9));
	json_object_object_add(
		o, "resume_ms",
		json_object_new_double((double)(hs->resumed_ns - hs->wake_ns) / 1e6));
	json_object_object_add(o, "user_paused", json_object_new_boolean(vm->user_paused));
	emit(hs, "host-wake", o);
}

/* Runs once nothing else is pending: signals that queued up meanwhile have
 * all been seen, and only the latest one counts. */
static int on_apply(sd_event_source *s, void *userdata)
{
	struct host_sleep *hs = userdata;
	(void)s;
	if (hs->want_asleep)
		enter_sleep(hs);
	else
		leave_sleep(hs);
	return 0;
}

static void want(struct host_sleep *hs, bool asleep)
{
	if (asleep && !hs->want_asleep) {
		hs->signal_ns = now_ns();
		hs->signal_wall_s = (int64_t)(clock_ns(CLOCK_REALTIME) / 1000000000ull);
	}
	if (!asleep && hs->want_asleep)
		hs->wake_ns = now_ns();
	hs->want_asleep = asleep;
	event_source_enable(hs->apply_src, SD_EVENT_ONESHOT);
}

static int on_prepare_for_sleep(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct host_sleep *hs = userdata;
	(void)ret_error;
	int start;
	if (sd_bus_message_read(m, "b", &start) < 0)
		return 0; /* malformed: ignore */
	want(hs, start);
	return 0;
}

static int on_detect(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct host_sleep *hs = userdata;
	(void)usec;
	int64_t gap = (int64_t)(clock_ns(CLOCK_BOOTTIME) - clock_ns(CLOCK_MONOTONIC));
	int64_t slept = host_sleep_detect(hs->last_gap_ns, gap, DETECT_THRESHOLD_NS);
	hs->last_gap_ns = gap;
	if (slept && !hs->asleep) {
		/* Nobody told us: the guest ran into the sleep. Tell each vCPU it
		 * was stopped, so the gap is not taken for a lockup. */
		log_info("host wake noticed after the fact: the host slept %.3f s",
			 (double)slept / 1e9);
		if (vm_run_on_all(hs->vm, vcpu_guest_stopped, NULL, false))
			log_warn("host wake: a vCPU had ended; it is not told it was stopped");
		vm_announce(hs->vm);
		hs->sleeps++;
		hs->slept_realtime_ns = slept;
		json_object *o = json_object_new_object();
		json_object_object_add(o, "slept_s", json_object_new_double((double)slept / 1e9));
		json_object_object_add(o, "detected", json_object_new_boolean(true));
		emit(hs, "host-wake", o);
	}
	event_timer_rearm(s, DETECT_PERIOD_USEC);
	return 0;
}

/* Both sources made disabled: host_sleep_destroy undoes whichever exist. */
static int add_sources(struct host_sleep *hs, sd_event *event)
{
	int r = sd_event_add_defer(event, &hs->apply_src, on_apply, hs);
	if (r < 0)
		return r;
	r = sd_event_source_set_priority(hs->apply_src, SD_EVENT_PRIORITY_IDLE);
	if (r < 0)
		return r;
	r = sd_event_source_set_enabled(hs->apply_src, SD_EVENT_OFF);
	if (r < 0)
		return r;
	r = sd_event_add_time_relative(event, &hs->detect_src, CLOCK_MONOTONIC, DETECT_PERIOD_USEC,
				       0, on_detect, hs);
	if (r < 0)
		return r;
	return sd_event_source_set_enabled(hs->detect_src, SD_EVENT_OFF);
}

static int listen_on_bus(struct host_sleep *hs, sd_event *event)
{
	int r = sd_bus_attach_event(hs->bus, event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		return r;
	return sd_bus_match_signal_async(hs->bus, &hs->signal_slot, NULL, LOGIN1_PATH,
					 LOGIN1_MANAGER, "PrepareForSleep", on_prepare_for_sleep,
					 NULL, hs);
}

int host_sleep_init(struct host_sleep *hs, struct vm *vm, sd_event *event,
		    enum host_sleep_policy policy)
{
	memset(hs, 0, sizeof(*hs));
	hs->vm = vm;
	hs->event = event;
	hs->policy = policy;
	inhibitor_init(&hs->inhibitor, NULL, "sleep", "");
	if (policy == HOST_SLEEP_IGNORE)
		return 0;
	int r = add_sources(hs, event);
	if (r < 0) {
		log_err("host sleep: cannot set up the event loop: %s", strerror(-r));
		host_sleep_destroy(hs);
		return r;
	}
	hs->last_gap_ns = (int64_t)(clock_ns(CLOCK_BOOTTIME) - clock_ns(CLOCK_MONOTONIC));

	r = sd_bus_open_system(&hs->bus);
	if (r < 0) {
		hs->bus = NULL;
		char why[256];
		snprintf(why, sizeof(why), "no system bus (%s)", strerror(-r));
		no_logind(hs, why);
		return 0;
	}
	r = listen_on_bus(hs, event);
	if (r < 0) {
		no_logind(hs, "cannot listen on the system bus");
		hs->bus = sd_bus_flush_close_unref(hs->bus);
		return 0;
	}
	char why[160];
	snprintf(why, sizeof(why), "pause VM %s and flush its disks before the host sleeps",
		 vm->cfg.name);
	inhibitor_init(&hs->inhibitor, hs->bus, "sleep", why);
	hs->inhibitor.taken = on_inhibit_taken;
	hs->inhibitor.refused = on_inhibit_refused;
	hs->inhibitor.opaque = hs;
	take_inhibitor(hs);
	return 0;
}

void host_sleep_destroy(struct host_sleep *hs)
{
	inhibitor_release(&hs->inhibitor);
	hs->signal_slot = sd_bus_slot_unref(hs->signal_slot);
	inhibitor_destroy(&hs->inhibitor);
	if (hs->bus) {
		(void)sd_bus_detach_event(hs->bus); /* it only fails when not attached */
		hs->bus = sd_bus_flush_close_unref(hs->bus);
	}
	hs->apply_src = sd_event_source_disable_unref(hs->apply_src);
	hs->detect_src = sd_event_source_disable_unref(hs->detect_src);
}

/* `ctl host-sleep`: {"phase":"prepare"|"resume"}; prepare answers once the
 * VM is quiesced. */
static json_object *cmd_host_sleep(void *opaque, json_object *args, struct error *err)
{
	struct host_sleep *hs = opaque;
	json_object *phase;
	if (!args || !json_object_object_get_ex(args, "phase", &phase) ||
	    !json_object_is_type(phase, json_type_string)) {
		error_setf(err, "host-sleep needs {\"args\":{\"phase\":\"prepare|resume\"}}");
		return NULL;
	}
	const char *p = json_object_get_string(phase);
	if (strcmp(p, "prepare") && strcmp(p, "resume")) {
		error_setf(err, "host-sleep phase must be prepare or resume, not '%.32s'", p);
		return NULL;
	}
	if (hs->policy == HOST_SLEEP_IGNORE) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "ignored", json_object_new_boolean(true));
		return o;
	}
	/* A hook waits for this reply, so apply now rather than when idle. */
	want(hs, !strcmp(p, "prepare"));
	event_source_enable(hs->apply_src, SD_EVENT_OFF);
	on_apply(NULL, hs);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "asleep", json_object_new_boolean(hs->asleep));
	json_object_object_add(o, "flush_error", json_object_new_int(hs->flush_error));
	return o;
}

static json_object *ms_since(uint64_t a, uint64_t b)
{
	return json_object_new_double(a && b >= a ? (double)(b - a) / 1e6 : 0.0);
}

static void status_part(void *opaque, json_object *status)
{
	struct host_sleep *hs = opaque;
	json_object *o = json_object_new_object();
	json_object_object_add(
		o, "policy",
		json_object_new_string(hs->policy == HOST_SLEEP_IGNORE ? "ignore" : "pause"));
	json_object_object_add(o, "logind", json_object_new_boolean(hs->logind));
	json_object_object_add(o, "inhibitor",
			       json_object_new_boolean(inhibitor_held(&hs->inhibitor)));
	json_object_object_add(o, "asleep", json_object_new_boolean(hs->asleep));
	json_object_object_add(o, "sleeps", json_object_new_uint64(hs->sleeps));
	json_object *last = json_object_new_object();
	json_object_object_add(last, "at", json_object_new_int64(hs->signal_wall_s));
	json_object_object_add(last, "signal_ns", json_object_new_uint64(hs->signal_ns));
	json_object_object_add(last, "parked_ns", json_object_new_uint64(hs->parked_ns));
	json_object_object_add(last, "flushed_ns", json_object_new_uint64(hs->flushed_ns));
	json_object_object_add(last, "released_ns", json_object_new_uint64(hs->released_ns));
	json_object_object_add(last, "wake_ns", json_object_new_uint64(hs->wake_ns));
	json_object_object_add(last, "resumed_ns", json_object_new_uint64(hs->resumed_ns));
	json_object_object_add(last, "quiesce_ms", ms_since(hs->signal_ns, hs->released_ns));
	json_object_object_add(last, "resume_ms", ms_since(hs->wake_ns, hs->resumed_ns));
	json_object_object_add(last, "slept_s",
			       json_object_new_double((double)hs->slept_realtime_ns / 1e9));
	json_object_object_add(last, "flush_error", json_object_new_int(hs->flush_error));
	json_object_object_add(o, "last", last);
	json_object_object_add(status, "host_sleep", o);
}

int host_sleep_attach_control(struct host_sleep *hs, struct control *ctl)
{
	hs->ctl = ctl;
	int r = control_register(ctl, "host-sleep", cmd_host_sleep, hs);
	return r ? r : control_add_status(ctl, status_part, hs);
}
