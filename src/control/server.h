/* The VM's control socket: JSON lines over a Unix stream socket, served from
 * the main thread's sd-event loop. The server knows two commands of its own,
 * `status` (put together from the parts others added) and `subscribe`; every
 * other command is registered by the module that owns it, as kvmtool's
 * IPC handlers are. */
#ifndef KVMHOST_CONTROL_H
#define KVMHOST_CONTROL_H

#include "util/error.h"
#include <json-c/json.h>
#include <systemd/sd-event.h>

struct control;

/* Binds `path` (mode 0600) and serves it on `event`. */
int control_start(struct control **out, sd_event *event, const char *path);
void control_stop(struct control *ctl);
/* Sends {"event": name, ...fields} to subscribed clients; consumes fields. */
void control_emit_event(struct control *ctl, const char *name, json_object *fields);

/* A command's handler: a result object, or NULL with err set. `args` may be NULL. */
typedef json_object *(*control_cmd_fn)(void *opaque, json_object *args, struct error *err);
/* -EEXIST if the name is taken, -ENOMEM. */
int control_register(struct control *ctl, const char *name, control_cmd_fn fn, void *opaque);
/* Adds a part to every status reply (and to `list`), in the order added. */
typedef void (*control_status_fn)(void *opaque, json_object *status);
int control_add_status(struct control *ctl, control_status_fn fn, void *opaque);

#endif
