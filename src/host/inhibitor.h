/* A logind delay inhibitor (Manager.Inhibit(what, "kvmhost", why, "delay")),
 * asked for asynchronously on the main loop, kept as our own copy of the fd
 * and released by closing it. Host sleep holds one for "sleep", managed save
 * one for "shutdown". */
#ifndef KVMHOST_INHIBITOR_H
#define KVMHOST_INHIBITOR_H

#include <stdbool.h>
#include <systemd/sd-bus.h>

#define LOGIN1	       "org.freedesktop.login1"
#define LOGIN1_PATH    "/org/freedesktop/login1"
#define LOGIN1_MANAGER "org.freedesktop.login1.Manager"

struct inhibitor {
	sd_bus *bus; /* borrowed */
	const char *what;
	char why[160];
	sd_bus_slot *slot, *owner_slot;
	int fd;
	bool wanted; /* taken and not released: a new logind gets asked again */
	/* Exactly one of these follows each inhibitor_take. */
	void (*taken)(void *opaque);
	void (*refused)(void *opaque, const char *why);
	void *opaque;
};

void inhibitor_init(struct inhibitor *in, sd_bus *bus, const char *what, const char *why);
/* Asks logind, unless one is held or being asked for. From then on until
 * inhibitor_release, a logind that restarts (or appears late) is asked
 * again: a restarted logind has forgotten the inhibitors it handed out. */
void inhibitor_take(struct inhibitor *in);
void inhibitor_release(struct inhibitor *in);
bool inhibitor_held(const struct inhibitor *in);
/* Releases and forgets the pending request; safe more than once. */
void inhibitor_destroy(struct inhibitor *in);

#endif
