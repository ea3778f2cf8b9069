/* The VM's control socket: JSON lines over a Unix stream socket, served from
 * the main thread's sd-event loop. */
#ifndef KVMHOST_CONTROL_H
#define KVMHOST_CONTROL_H

#include <json-c/json.h>
#include <systemd/sd-event.h>

struct vm;
struct control;

/* Binds `path` (mode 0600) and serves it on `event`. */
int control_start(struct control **out, struct vm *vm, sd_event *event, const char *path);
void control_stop(struct control *ctl);
/* Sends {"event": name, ...fields} to subscribed clients; consumes fields. */
void control_emit_event(struct control *ctl, const char *name, json_object *fields);

/* Hook for commands that other concerns own (pin, host-sleep ...): returns a
 * result object, or NULL with err set. */
typedef json_object *(*control_cmd_fn)(void *opaque, int cmd, json_object *args, char *err,
				       size_t errlen);
void control_set_handler(struct control *ctl, control_cmd_fn fn, void *opaque);
/* Lets other concerns add their part to every status reply. */
typedef void (*control_status_fn)(void *opaque, json_object *status);
void control_set_status_hook(struct control *ctl, control_status_fn fn, void *opaque);

#endif
