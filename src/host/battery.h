/* Low battery: UPower's display device (the battery, or what the desktop
 * shows) is watched; once it is discharging at warning level critical or
 * action, `low` is called once with why. Nothing is done while charging or
 * above that level. */
#ifndef KVMHOST_BATTERY_H
#define KVMHOST_BATTERY_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

struct control;

enum battery_policy { BATTERY_SAVE, BATTERY_IGNORE };
/* By policy, NULL-terminated: --on-low-battery's words and status's. */
extern const char *const battery_policy_names[];

/* UPower's Device.WarningLevel and Device.State values. */
enum upower_level { UPOWER_LEVEL_LOW = 3, UPOWER_LEVEL_CRITICAL = 4, UPOWER_LEVEL_ACTION = 5 };
enum upower_state { UPOWER_STATE_DISCHARGING = 2, UPOWER_STATE_EMPTY = 3 };

struct battery_watch {
	enum battery_policy policy;
	sd_bus *bus;
	sd_bus_slot *signal_slot, *get_slot, *owner_slot;
	bool upower; /* UPower answered */
	uint32_t level, state;
	bool fired;
	void (*low)(void *opaque, const char *why);
	void *opaque;
};

/* True when level and state call for a save. */
bool battery_is_low(uint32_t level, uint32_t state);
/* Never fails for lack of UPower; -errno otherwise. */
int battery_watch_init(struct battery_watch *bw, sd_event *event, enum battery_policy policy,
		       void (*low)(void *opaque, const char *why), void *opaque);
void battery_watch_destroy(struct battery_watch *bw);
/* Adds `battery` to status. */
int battery_watch_attach_control(struct battery_watch *bw, struct control *ctl);

#endif
