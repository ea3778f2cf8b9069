/* Managed save: the VM survives the host shutting down or rebooting. A
 * logind delay inhibitor for "shutdown" is held; on PrepareForShutdown(true)
 * the VM saves itself (the snapshot format, disks flushed) to its managed-save
 * file in the state directory, and only then lets logind go on - or, with the
 * poweroff policy, presses the guest's power button and lets go when the
 * guest has powered off. The next `run --name NAME` continues it. */
#ifndef KVMHOST_SHUTDOWN_H
#define KVMHOST_SHUTDOWN_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "host/inhibitor.h"
#include "util/util.h"

struct vm;
struct control;

enum shutdown_policy { SHUTDOWN_SAVE, SHUTDOWN_POWEROFF, SHUTDOWN_IGNORE };
/* By policy, NULL-terminated: --on-host-shutdown's words and status's. */
extern const char *const shutdown_policy_names[];

/* Whether a save fits in logind's delay: the measured write rate, the
 * estimate for all of guest memory at that rate, and logind's
 * InhibitDelayMaxUSec (5 s until logind says otherwise). */
struct save_budget {
	double rate_mib_s; /* 0: not measured */
	double estimate_ms;
	uint64_t delay_us;
	bool delay_from_logind;
	bool warned;
};

struct host_shutdown {
	struct vm *vm;
	enum shutdown_policy policy;
	char path[KVMHOST_PATH_MAX]; /* the managed-save file */
	sd_bus *bus;
	sd_bus_slot *signal_slot, *delay_slot;
	struct save_budget budget;
	struct inhibitor inhibitor;
	bool logind;
	bool saved;
	uint64_t saves;
	double last_save_ms;
	struct error last_error;
};

/* Never fails for lack of logind (it says so once); -errno otherwise. */
int host_shutdown_init(struct host_shutdown *hs, struct vm *vm, sd_event *event,
		       enum shutdown_policy policy, const char *save_path);
void host_shutdown_destroy(struct host_shutdown *hs);
/* Saves the VM to its managed-save file and ends it, as the host shutting
 * down does; `why` is said with it. Also for the battery running out. */
void host_shutdown_save(struct host_shutdown *hs, const char *why);
/* Adds `host_shutdown` and `managed_save` to status. */
int host_shutdown_attach_control(struct host_shutdown *hs, struct control *ctl);

#endif
