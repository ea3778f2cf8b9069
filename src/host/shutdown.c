/* Managed save (shutdown.h) at work: a "shutdown" delay inhibitor held from
 * the start, PrepareForShutdown(true) answered with a save or a press of
 * the power button, and the inhibitor released only then. How long a save
 * would take is measured at start (8 MiB written and synced beside the
 * save file), with a warning if it exceeds logind's delay. */
#include "host/shutdown.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/server.h"
#include "core/vm.h"
#include "snapshot/snapshot.h"
#include "util/util.h"

const char *const shutdown_policy_names[] = {[SHUTDOWN_SAVE] = "save",
					     [SHUTDOWN_POWEROFF] = "poweroff",
					     [SHUTDOWN_IGNORE] = "ignore",
					     NULL};

#define DEFAULT_INHIBIT_DELAY_US (5 * 1000000ull) /* logind's InhibitDelayMaxSec */
#define PROBE_BYTES		 (8u << 20)

/* A save writes at most all of guest memory: the estimate assumes it does. */
static void budget_estimate(struct host_shutdown *hs)
{
	struct save_budget *b = &hs->budget;
	if (b->rate_mib_s > 0)
		b->estimate_ms = (double)hs->vm->cfg.memory_mib / b->rate_mib_s * 1000.0;
}

/* The estimate again, and a warning the first time it exceeds the delay. */
static void budget_update(struct host_shutdown *hs)
{
	struct save_budget *b = &hs->budget;
	budget_estimate(hs);
	if (b->rate_mib_s <= 0 || b->estimate_ms * 1000.0 <= (double)b->delay_us || b->warned)
		return;
	b->warned = true;
	log_warn("VM %s: saving its %llu MiB at the measured %.0f MiB/s takes about %.0f ms, "
		 "more than the %.0f ms logind waits for it (InhibitDelayMaxSec; see README, "
		 "\"Host shutdown\")",
		 hs->vm->cfg.name, (unsigned long long)hs->vm->cfg.memory_mib, b->rate_mib_s,
		 b->estimate_ms, (double)b->delay_us / 1000.0);
}

/* The rate a save can write at: 8 MiB written and fdatasynced next to
 * where the managed save goes. */
static void budget_probe(struct host_shutdown *hs)
{
	char probe[KVMHOST_PATH_MAX + sizeof(".probe")];
	snprintf(probe, sizeof(probe), "%s.probe", hs->path);
	int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char *buf = fd >= 0 ? malloc(1 << 20) : NULL;
	if (buf) {
		memset(buf, 0xa5, 1 << 20); /* not zeros: a save's pages are not sparse */
		uint64_t t0 = now_ns();
		bool ok = true;
		for (unsigned i = 0; ok && i < PROBE_BYTES >> 20; i++)
			ok = write(fd, buf, 1 << 20) == 1 << 20;
		if (ok && !fdatasync(fd))
			hs->budget.rate_mib_s =
				(PROBE_BYTES >> 20) / ((double)(now_ns() - t0) / 1e9);
	}
	free(buf);
	if (fd >= 0) {
		close(fd);
		unlink(probe);
	}
	if (hs->budget.rate_mib_s <= 0)
		log_warn("VM %s: cannot measure how fast %s can be written", hs->vm->cfg.name,
			 hs->path);
}

static int on_delay(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct host_shutdown *hs = userdata;
	(void)ret_error;
	uint64_t us;
	hs->delay_slot = sd_bus_slot_unref(hs->delay_slot);
	if (!sd_bus_message_is_method_error(m, NULL) &&
	    sd_bus_message_read(m, "v", "t", &us) >= 0 && us > 0) {
		hs->budget.delay_us = us;
		hs->budget.delay_from_logind = true;
	}
	budget_update(hs);
	return 0;
}

void host_shutdown_save(struct host_shutdown *hs, const char *why)
{
	struct snapshot_result res;
	if (hs->saved)
		return;
	if (!hs->path[0]) {
		error_setf(&hs->last_error, "no state directory to save into");
	} else if (!snapshot_save(hs->vm, hs->path, false, &res, &hs->last_error)) {
		hs->saved = true;
		hs->saves++;
		hs->last_save_ms = res.ms;
		if (res.ms > 0) /* what this save really took, for the next estimate */
			hs->budget.rate_mib_s = (double)hs->vm->cfg.memory_mib / (res.ms / 1000.0);
		budget_update(hs);
		log_info("%s: VM %s saved to %s in %.1f ms", why, hs->vm->cfg.name, hs->path,
			 res.ms);
		inhibitor_release(&hs->inhibitor); /* only now may logind go on */
		vm_request_exit(hs->vm, VM_EXIT_QUIT, 0);
		return;
	}
	log_err("%s: VM %s could not be saved: %s", why, hs->vm->cfg.name, hs->last_error.msg);
	inhibitor_release(&hs->inhibitor); /* never hold the host up for nothing */
}

/* The host goes down: save and end, or ask the guest to power off. */
static void going_down(struct host_shutdown *hs)
{
	if (hs->policy == SHUTDOWN_POWEROFF) {
		log_info("host shutdown: pressing VM %s's power button", hs->vm->cfg.name);
		vm_request_poweroff(hs->vm); /* the inhibitor goes with the process */
		return;
	}
	host_shutdown_save(hs, "host shutdown");
}

static int on_prepare_for_shutdown(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct host_shutdown *hs = userdata;
	(void)ret_error;
	int start;
	if (sd_bus_message_read(m, "b", &start) < 0)
		return 0; /* malformed: ignore */
	if (start)
		going_down(hs);
	else if (!hs->saved) /* called off: hold it again for the next time */
		inhibitor_take(&hs->inhibitor);
	return 0;
}

static void on_refused(void *opaque, const char *why)
{
	struct host_shutdown *hs = opaque;
	hs->logind = false;
	log_warn("host shutdown: %s; VM %s is not saved when the host goes down", why,
		 hs->vm->cfg.name);
}

static void on_taken(void *opaque)
{
	((struct host_shutdown *)opaque)->logind = true;
}

static int listen_on_bus(struct host_shutdown *hs, sd_event *event)
{
	int r = sd_bus_attach_event(hs->bus, event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		return r;
	return sd_bus_match_signal_async(hs->bus, &hs->signal_slot, NULL, LOGIN1_PATH,
					 LOGIN1_MANAGER, "PrepareForShutdown",
					 on_prepare_for_shutdown, NULL, hs);
}

int host_shutdown_init(struct host_shutdown *hs, struct vm *vm, sd_event *event,
		       enum shutdown_policy policy, const char *save_path)
{
	memset(hs, 0, sizeof(*hs));
	hs->vm = vm;
	hs->policy = policy;
	snprintf(hs->path, sizeof(hs->path), "%s", save_path ? save_path : "");
	hs->budget.delay_us = DEFAULT_INHIBIT_DELAY_US;
	inhibitor_init(&hs->inhibitor, NULL, "shutdown", "");
	if (hs->path[0])
		budget_probe(hs);
	budget_estimate(hs); /* told once logind says how long it waits */
	if (policy == SHUTDOWN_IGNORE)
		return 0;
	int r = sd_bus_open_system(&hs->bus);
	if (r < 0) {
		hs->bus = NULL;
		log_warn("host shutdown: no system bus (%s); VM %s is not saved when the host goes "
			 "down",
			 strerror(-r), vm->cfg.name);
		return 0;
	}
	r = listen_on_bus(hs, event);
	if (r < 0) {
		log_warn("host shutdown: cannot listen on the system bus: %s", strerror(-r));
		host_shutdown_destroy(hs);
		return 0;
	}
	if (policy != SHUTDOWN_SAVE ||
	    sd_bus_call_method_async(hs->bus, &hs->delay_slot, LOGIN1, LOGIN1_PATH,
				     "org.freedesktop.DBus.Properties", "Get", on_delay, hs, "ss",
				     LOGIN1_MANAGER, "InhibitDelayMaxUSec") < 0)
		budget_update(hs);
	char why[160];
	snprintf(why, sizeof(why), "%s VM %s before the host shuts down",
		 policy == SHUTDOWN_SAVE ? "save" : "power off", vm->cfg.name);
	inhibitor_init(&hs->inhibitor, hs->bus, "shutdown", why);
	hs->inhibitor.taken = on_taken;
	hs->inhibitor.refused = on_refused;
	hs->inhibitor.opaque = hs;
	inhibitor_take(&hs->inhibitor);
	return 0;
}

void host_shutdown_destroy(struct host_shutdown *hs)
{
	inhibitor_destroy(&hs->inhibitor);
	hs->delay_slot = sd_bus_slot_unref(hs->delay_slot);
	hs->signal_slot = sd_bus_slot_unref(hs->signal_slot);
	if (hs->bus) {
		(void)sd_bus_detach_event(hs->bus); /* it only fails when not attached */
		hs->bus = sd_bus_flush_close_unref(hs->bus);
	}
}

static void status_part(void *opaque, json_object *status)
{
	struct host_shutdown *hs = opaque;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "policy",
			       json_object_new_string(shutdown_policy_names[hs->policy]));
	json_object_object_add(o, "logind", json_object_new_boolean(hs->logind));
	json_object_object_add(o, "inhibitor",
			       json_object_new_boolean(inhibitor_held(&hs->inhibitor)));
	json_object_object_add(o, "path", hs->path[0] ? json_object_new_string(hs->path) : NULL);
	json_object_object_add(o, "saves", json_object_new_uint64(hs->saves));
	json_object_object_add(o, "last_save_ms", json_object_new_double(hs->last_save_ms));
	json_object_object_add(o, "last_error",
			       hs->last_error.msg[0] ? json_object_new_string(hs->last_error.msg)
						     : NULL);
	json_object_object_add(status, "host_shutdown", o);
	const struct save_budget *b = &hs->budget;
	o = json_object_new_object();
	json_object_object_add(o, "rate_mib_s", json_object_new_double(b->rate_mib_s));
	json_object_object_add(o, "estimate_ms", json_object_new_double(b->estimate_ms));
	json_object_object_add(o, "delay_ms", json_object_new_double((double)b->delay_us / 1000.0));
	json_object_object_add(o, "delay_from_logind",
			       json_object_new_boolean(b->delay_from_logind));
	json_object_object_add(
		o, "fits", json_object_new_boolean(b->estimate_ms * 1000.0 <= (double)b->delay_us));
	json_object_object_add(o, "last_save_ms", json_object_new_double(hs->last_save_ms));
	json_object_object_add(status, "managed_save", o);
}

int host_shutdown_attach_control(struct host_shutdown *hs, struct control *ctl)
{
	return control_add_status(ctl, status_part, hs);
}
