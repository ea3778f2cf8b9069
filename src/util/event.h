/* Small sd-event helpers for timers and sources we own. Changing one fails
 * only when the loop is going away or out of memory; the callers cannot do
 * better than go on, so these say it once in the log and return. */
#ifndef KVMHOST_EVENT_H
#define KVMHOST_EVENT_H

#include <stdint.h>
#include <systemd/sd-event.h>

/* Fires `s` once, `usec` from now. */
void event_timer_rearm(sd_event_source *s, uint64_t usec);
/* SD_EVENT_ON, SD_EVENT_OFF or SD_EVENT_ONESHOT. */
void event_source_enable(sd_event_source *s, int enabled);
/* Which events an I/O source waits for. */
void event_io_events(sd_event_source *s, uint32_t events);

#endif
