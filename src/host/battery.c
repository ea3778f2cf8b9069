/* The low-battery watch: UPower's display device on the system bus, read
 * once (GetAll) and then followed (PropertiesChanged). `low` fires once,
 * when it is discharging or empty at warning level critical or action.
 * Without a bus or UPower nothing fires, and nothing fails. */
#include "host/battery.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "control/server.h"
#include "util/util.h"

#define UPOWER		"org.freedesktop.UPower"
#define UPOWER_DISPLAY	"/org/freedesktop/UPower/devices/DisplayDevice"
#define UPOWER_DEVICE	"org.freedesktop.UPower.Device"
#define DBUS_PROPERTIES "org.freedesktop.DBus.Properties"

static const char *const level_names[] = {"unknown", "none",	 "discharging",
					  "low",     "critical", "action"};
static const char *const state_names[] = {
	"unknown",	 "charging",	   "discharging",      "empty",
	"fully-charged", "pending-charge", "pending-discharge"};

bool battery_is_low(uint32_t level, uint32_t state)
{
	bool draining = state == UPOWER_STATE_DISCHARGING || state == UPOWER_STATE_EMPTY;
	return draining && (level == UPOWER_LEVEL_CRITICAL || level == UPOWER_LEVEL_ACTION);
}

const char *const battery_policy_names[] = {
	[BATTERY_SAVE] = "save", [BATTERY_IGNORE] = "ignore", NULL};

static const char *level_name(uint32_t v)
{
	return v < ARRAY_SIZE(level_names) ? level_names[v] : "unknown";
}

static const char *state_name(uint32_t v)
{
	return v < ARRAY_SIZE(state_names) ? state_names[v] : "unknown";
}

/* An a{sv} of Device properties: WarningLevel and State, where present. */
static int read_props(sd_bus_message *m, uint32_t *level, uint32_t *state)
{
	int r = sd_bus_message_enter_container(m, 'a', "{sv}");
	if (r < 0)
		return r;
	for (;;) {
		r = sd_bus_message_enter_container(m, 'e', "sv");
		if (r < 0)
			return r;
		if (r == 0)
			break;
		const char *name;
		uint32_t *into = NULL;
		r = sd_bus_message_read(m, "s", &name);
		if (r < 0)
			return r;
		if (!strcmp(name, "WarningLevel"))
			into = level;
		else if (!strcmp(name, "State"))
			into = state;
		if (into)
			r = sd_bus_message_read(m, "v", "u", into);
		else
			r = sd_bus_message_skip(m, "v");
		if (r < 0)
			return r;
		r = sd_bus_message_exit_container(m);
		if (r < 0)
			return r;
	}
	return sd_bus_message_exit_container(m);
}

static void check(struct battery_watch *bw)
{
	if (bw->fired || !battery_is_low(bw->level, bw->state))
		return;
	char why[128];
	snprintf(why, sizeof(why), "the battery is %s at warning level %s", state_name(bw->state),
		 level_name(bw->level));
	bw->fired = true;
	bw->low(bw->opaque, why);
}

static int on_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct battery_watch *bw = userdata;
	(void)ret_error;
	const char *iface;
	uint32_t level = bw->level, state = bw->state;
	if (sd_bus_message_read(m, "s", &iface) < 0 || strcmp(iface, UPOWER_DEVICE) ||
	    read_props(m, &level, &state) < 0)
		return 0; /* not ours, or malformed: ignored */
	bw->upower = true;
	bw->level = level;
	bw->state = state;
	check(bw);
	return 0;
}

static int on_get_all(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct battery_watch *bw = userdata;
	(void)ret_error;
	bw->get_slot = sd_bus_slot_unref(bw->get_slot);
	uint32_t level = 0, state = 0;
	if (sd_bus_message_is_method_error(m, NULL) || read_props(m, &level, &state) < 0)
		return 0; /* no UPower here: nothing to watch until it appears */
	bw->upower = true;
	bw->level = level;
	bw->state = state;
	log_info("low battery: watching UPower (battery %s, warning level %s)", state_name(state),
		 level_name(level));
	check(bw);
	return 0;
}

static int ask_state(struct battery_watch *bw)
{
	bw->get_slot = sd_bus_slot_unref(bw->get_slot);
	return sd_bus_call_method_async(bw->bus, &bw->get_slot, UPOWER, UPOWER_DISPLAY,
					DBUS_PROPERTIES, "GetAll", on_get_all, bw, "s",
					UPOWER_DEVICE);
}

/* upowerd started (or restarted) after us: it has a state to ask for,
 * whether or not the battery changes soon. Gone: nothing is watched. */
static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct battery_watch *bw = userdata;
	(void)ret_error;
	const char *name, *old_owner, *new_owner;
	if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 ||
	    strcmp(name, UPOWER))
		return 0;
	if (!*new_owner) {
		bw->upower = false;
		return 0;
	}
	int r = ask_state(bw);
	if (r < 0)
		log_warn("low battery: cannot ask UPower for its state: %s", strerror(-r));
	return 0;
}

/* Changes as they come, and the present state asked for at once and each
 * time upowerd appears on the bus. */
static int listen_on_bus(struct battery_watch *bw, sd_event *event)
{
	int r = sd_bus_attach_event(bw->bus, event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0)
		return r;
	r = sd_bus_match_signal_async(bw->bus, &bw->signal_slot, UPOWER, UPOWER_DISPLAY,
				      DBUS_PROPERTIES, "PropertiesChanged", on_changed, NULL, bw);
	if (r < 0)
		return r;
	r = sd_bus_add_match_async(bw->bus, &bw->owner_slot,
				   "type='signal',sender='org.freedesktop.DBus',"
				   "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
				   "arg0='" UPOWER "'",
				   on_owner_changed, NULL, bw);
	if (r < 0)
		return r;
	return ask_state(bw);
}

int battery_watch_init(struct battery_watch *bw, sd_event *event, enum battery_policy policy,
		       void (*low)(void *opaque, const char *why), void *opaque)
{
	memset(bw, 0, sizeof(*bw));
	bw->policy = policy;
	bw->low = low;
	bw->opaque = opaque;
	if (policy == BATTERY_IGNORE)
		return 0;
	int r = sd_bus_open_system(&bw->bus);
	if (r < 0) {
		bw->bus = NULL; /* said by host sleep already */
		return 0;
	}
	r = listen_on_bus(bw, event);
	if (r < 0) {
		log_warn("low battery: cannot listen on the system bus: %s", strerror(-r));
		battery_watch_destroy(bw);
	}
	return 0;
}

void battery_watch_destroy(struct battery_watch *bw)
{
	bw->get_slot = sd_bus_slot_unref(bw->get_slot);
	bw->signal_slot = sd_bus_slot_unref(bw->signal_slot);
	bw->owner_slot = sd_bus_slot_unref(bw->owner_slot);
	if (bw->bus) {
		(void)sd_bus_detach_event(bw->bus); /* it only fails when not attached */
		bw->bus = sd_bus_flush_close_unref(bw->bus);
	}
}

static void status_part(void *opaque, json_object *status)
{
	struct battery_watch *bw = opaque;
	json_object *o = json_object_new_object();
	json_object_object_add(o, "policy",
			       json_object_new_string(battery_policy_names[bw->policy]));
	json_object_object_add(o, "upower", json_object_new_boolean(bw->upower));
	json_object_object_add(o, "state", json_object_new_string(state_name(bw->state)));
	json_object_object_add(o, "warning_level", json_object_new_string(level_name(bw->level)));
	json_object_object_add(o, "low", json_object_new_boolean(bw->fired));
	json_object_object_add(status, "battery", o);
}

int battery_watch_attach_control(struct battery_watch *bw, struct control *ctl)
{
	return control_add_status(ctl, status_part, bw);
}
