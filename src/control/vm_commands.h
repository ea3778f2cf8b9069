/* The VM's own commands on the control socket - pause, resume, quit,
 * poweroff, regs - and its part of every status reply. The core knows
 * nothing of JSON; this is where its state becomes the wire format. */
#ifndef KVMHOST_VM_COMMANDS_H
#define KVMHOST_VM_COMMANDS_H

#include <json-c/json.h>

struct vm;
struct control;

struct vm_commands {
	struct vm *vm;
	struct control *ctl;
};

/* vc must stay valid while ctl serves. */
int vm_commands_register(struct vm_commands *vc, struct control *ctl, struct vm *vm);
/* The VM's part of `status` (name, state, vCPUs, disks, guest reports). */
void vm_status_json(struct vm *vm, json_object *status);

#endif
