/* One logind delay inhibitor, asked for with an asynchronous Inhibit call
 * and held as the fd logind returns; closing it releases it. While wanted,
 * a logind that restarts (NameOwnerChanged) is asked again: a new logind
 * knows nothing of the inhibitors its predecessor handed out. */
#include "host/inhibitor.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

void inhibitor_init(struct inhibitor *in, sd_bus *bus, const char *what, const char *why)
{
	in->bus = bus;
	in->what = what;
	snprintf(in->why, sizeof(in->why), "%s", why);
	in->slot = NULL;
	in->owner_slot = NULL;
	in->fd = -1;
	in->wanted = false;
}

static void close_fd(struct inhibitor *in)
{
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
}

static void refused(struct inhibitor *in, const char *why)
{
	if (in->refused)
		in->refused(in->opaque, why);
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct inhibitor *in = userdata;
	(void)ret_error;
	in->slot = sd_bus_slot_unref(in->slot);
	const sd_bus_error *e = sd_bus_message_get_error(m);
	int fd;
	char why[512];
	if (e) {
		snprintf(why, sizeof(why), "logind refused the inhibitor (%s)",
			 e->message ? e->message : e->name);
		refused(in, why);
	} else if (sd_bus_message_read(m, "h", &fd) < 0) {
		refused(in, "malformed Inhibit reply");
	} else {
		/* The message owns fd: keep a copy of our own. */
		close_fd(in);
		in->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (in->fd < 0)
			refused(in, "cannot keep the inhibitor");
		else if (in->taken)
			in->taken(in->opaque);
	}
	return 0;
}

static void ask(struct inhibitor *in);

/* logind has a new owner: what the old one handed out is gone. */
static int on_owner(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct inhibitor *in = userdata;
	(void)ret_error;
	const char *name, *old_owner, *new_owner;
	if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !*new_owner ||
	    !in->wanted)
		return 0;
	(void)old_owner; /* a restart is usually the name lost, then a new owner */
	log_info("logind (re)started: asking it for the %s inhibitor again", in->what);
	close_fd(in);
	in->slot = sd_bus_slot_unref(in->slot);
	ask(in);
	return 0;
}

void inhibitor_take(struct inhibitor *in)
{
	if (!in->bus)
		return;
	in->wanted = true;
	if (!in->owner_slot &&
	    sd_bus_add_match_async(in->bus, &in->owner_slot,
				   "type='signal',sender='org.freedesktop.DBus',"
				   "path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',"
				   "member='NameOwnerChanged',arg0='" LOGIN1 "'",
				   on_owner, NULL, in) < 0)
		log_warn("cannot watch for logind restarting: the %s inhibitor is not renewed",
			 in->what);
	ask(in);
}

static void ask(struct inhibitor *in)
{
	if (in->fd >= 0 || in->slot)
		return;
	int r = sd_bus_call_method_async(in->bus, &in->slot, LOGIN1, LOGIN1_PATH, LOGIN1_MANAGER,
					 "Inhibit", on_reply, in, "ssss", in->what, "kvmhost",
					 in->why, "delay");
	if (r < 0)
		refused(in, "cannot ask logind for an inhibitor");
}

void inhibitor_release(struct inhibitor *in)
{
	in->wanted = false;
	close_fd(in);
}

bool inhibitor_held(const struct inhibitor *in)
{
	return in->fd >= 0;
}

void inhibitor_destroy(struct inhibitor *in)
{
	inhibitor_release(in);
	in->slot = sd_bus_slot_unref(in->slot);
	in->owner_slot = sd_bus_slot_unref(in->owner_slot);
}
