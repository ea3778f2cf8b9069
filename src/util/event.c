/* sd-event calls whose failure a caller cannot act on (re-arming a timer,
 * enabling a source, changing what a socket waits for): logged here rather
 * than ignored at each call, except -ESTALE, which only means the loop has
 * finished, as it has during teardown. */
#include "util/event.h"

#include <errno.h>
#include <string.h>

#include "util/util.h"

static void said(const char *what, int r)
{
	/* -ESTALE: the loop has finished, as it has while we tear down. */
	if (r < 0 && r != -ESTALE)
		log_warn("event loop: %s: %s", what, strerror(-r));
}

void event_timer_rearm(sd_event_source *s, uint64_t usec)
{
	int r = sd_event_source_set_time_relative(s, usec);
	if (r >= 0)
		r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	said("re-arming a timer", r);
}

void event_source_enable(sd_event_source *s, int enabled)
{
	said("enabling a source", sd_event_source_set_enabled(s, enabled));
}

void event_io_events(sd_event_source *s, uint32_t events)
{
	said("changing what a socket waits for", sd_event_source_set_io_events(s, events));
}
