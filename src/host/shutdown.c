#include "host/shutdown.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "control/server.h"
#include "core/vm.h"
#include "snapshot/snapshot.h"
#include "util/util.h"

static const char *const policy_names[] = {
	[SHUTDOWN_SAVE] = "save", [SHUTDOWN_POWEROFF] = "poweroff", [SHUTDOWN_IGNORE] = "ignore"};

/* The host goes down: save and end, or ask the guest to power off. The
 * inhibitor goes last, so logind waits for the file to be durable. */
static void going_down(struct host_shutdown *hs)
{
	struct snapshot_result res;
	if (hs->policy == SHUTDOWN_POWEROFF) {
		log_info("host shutdown: pressing VM %s's power button", hs->vm->cfg.name);
		vm_request_poweroff(hs->vm); /* the inhibitor goes with the process */
		return;
	}
	if (hs->saved)
		return;
	if (snapshot_save(hs->vm, hs->path, false, &res, hs->last_error, sizeof(hs->last_error))) {
		log_err("host shutdown: VM %s could not be saved: %s", hs->vm->cfg.name,
			hs->last_error);
		inhibitor_release(&hs->inhibitor); /* never hold the host up for nothing */
		return;
	}
	hs->saved = true;
	hs->saves++;
	hs->last_save_ms = res.ms;
	log_info("host shutdown: VM %s saved to %s in %.1f ms", hs->vm->cfg.name, hs->path, res.ms);
	inhibitor_release(&hs->inhibitor);
	vm_request_exit(hs->vm, VM_EXIT_QUIT, 0);
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

int host_shutdown_init(struct host_shutdown *hs, struct vm *vm, sd_event *event,
		       enum shutdown_policy policy, const char *save_path)
{
	memset(hs, 0, sizeof(*hs));
	hs->vm = vm;
	hs->policy = policy;
	snprintf(hs->path, sizeof(hs->path), "%s", save_path ? save_path : "");
	inhibitor_init(&hs->inhibitor, NULL, "shutdown", "");
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
	if ((r = sd_bus_attach_event(hs->bus, event, SD_EVENT_PRIORITY_NORMAL)) < 0 ||
	    (r = sd_bus_match_signal_async(hs->bus, &hs->signal_slot, NULL, LOGIN1_PATH,
					   LOGIN1_MANAGER, "PrepareForShutdown",
					   on_prepare_for_shutdown, NULL, hs)) < 0) {
		log_warn("host shutdown: cannot listen on the system bus: %s", strerror(-r));
		host_shutdown_destroy(hs);
		return 0;
	}
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
	json_object_object_add(o, "policy", json_object_new_string(policy_names[hs->policy]));
	json_object_object_add(o, "logind", json_object_new_boolean(hs->logind));
	json_object_object_add(o, "inhibitor",
			       json_object_new_boolean(inhibitor_held(&hs->inhibitor)));
	json_object_object_add(o, "path", hs->path[0] ? json_object_new_string(hs->path) : NULL);
	json_object_object_add(o, "saves", json_object_new_uint64(hs->saves));
	json_object_object_add(o, "last_save_ms", json_object_new_double(hs->last_save_ms));
	json_object_object_add(o, "last_error",
			       hs->last_error[0] ? json_object_new_string(hs->last_error) : NULL);
	json_object_object_add(status, "host_shutdown", o);
}

int host_shutdown_attach_control(struct host_shutdown *hs, struct control *ctl)
{
	hs->ctl = ctl;
	return control_add_status(ctl, status_part, hs);
}
