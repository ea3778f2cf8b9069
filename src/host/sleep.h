/* Host suspend/resume (the 2007 series' suspend/resume callbacks): quiesce the VM before the host
 * sleeps and fix guest time after it wakes. Driven by logind's
 * PrepareForSleep over sd-bus with a delay inhibitor, by
 * `ctl host-sleep prepare|resume` (systemd-sleep/pm-utils hooks), or, with
 * neither, by noticing afterwards that CLOCK_BOOTTIME jumped. */
#ifndef KVMHOST_HOST_SLEEP_H
#define KVMHOST_HOST_SLEEP_H

#include <json-c/json.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "host/inhibitor.h"

struct vm;
struct control;

enum host_sleep_policy { HOST_SLEEP_PAUSE, HOST_SLEEP_IGNORE };

struct host_sleep {
	struct vm *vm;
	struct control *ctl;
	sd_event *event;
	enum host_sleep_policy policy;
	sd_bus *bus;
	sd_bus_slot *signal_slot;
	struct inhibitor inhibitor;
	sd_event_source *apply_src;  /* applies the latest wanted state, once idle */
	sd_event_source *detect_src; /* BOOTTIME watch where logind is not there */
	bool logind;		     /* PrepareForSleep reaches us */
	bool said_no_logind;
	bool want_asleep;
	bool asleep;
	bool clock_saved;
	struct kvm_clock_data clock;
	uint64_t saved_boottime_ns;
	int64_t last_gap_ns;
	/* The last sleep, for status (CLOCK_MONOTONIC ns unless named otherwise). */
	uint64_t signal_ns, parked_ns, flushed_ns, released_ns, wake_ns, resumed_ns;
	int64_t slept_realtime_ns;
	int64_t signal_wall_s; /* when the last sleep began, seconds since the epoch */
	uint64_t sleeps;
	int flush_error;
};

/* Sets up the bus side; never fails for lack of logind (it says so once).
 * On failure nothing is left to undo. */
int host_sleep_init(struct host_sleep *hs, struct vm *vm, sd_event *event,
		    enum host_sleep_policy policy);
/* Safe after a failed init and more than once. */
void host_sleep_destroy(struct host_sleep *hs);
/* Registers `host-sleep` and the status part; events go to ctl from then on. */
int host_sleep_attach_control(struct host_sleep *hs, struct control *ctl);

/* How long the host slept between two readings of BOOTTIME - MONOTONIC, or 0
 * if less than `threshold_ns` (exposed for tests). */
int64_t host_sleep_detect(int64_t prev_gap_ns, int64_t gap_ns, int64_t threshold_ns);

#endif
