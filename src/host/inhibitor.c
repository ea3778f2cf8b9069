#include "host/inhibitor.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void inhibitor_init(struct inhibitor *in, sd_bus *bus, const char *what, const char *why)
{
	in->bus = bus;
	in->what = what;
	snprintf(in->why, sizeof(in->why), "%s", why);
	in->slot = NULL;
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
		inhibitor_release(in);
		in->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (in->fd < 0)
			refused(in, "cannot keep the inhibitor");
		else if (in->taken)
			in->taken(in->opaque);
	}
	return 0;
}

void inhibitor_take(struct inhibitor *in)
{
	if (!in->bus || in->fd >= 0 || in->slot)
		return;
	int r = sd_bus_call_method_async(in->bus, &in->slot, LOGIN1, LOGIN1_PATH, LOGIN1_MANAGER,
					 "Inhibit", on_reply, in, "ssss", in->what, "kvmhost",
					 in->why, "delay");
	if (r < 0)
		refused(in, "cannot ask logind for an inhibitor");
}

void inhibitor_release(struct inhibitor *in)
{
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
}

bool inhibitor_held(const struct inhibitor *in)
{
	return in->fd >= 0;
}

void inhibitor_destroy(struct inhibitor *in)
{
	inhibitor_release(in);
	in->slot = sd_bus_slot_unref(in->slot);
}
