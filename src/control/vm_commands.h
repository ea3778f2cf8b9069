/* The VM's own commands on the control socket - pause, resume, quit,
 * poweroff, regs, net-link - and the registration of its part of every
 * status reply (built by control/vm_status.h). */
#ifndef KVMHOST_VM_COMMANDS_H
#define KVMHOST_VM_COMMANDS_H

struct vm;
struct control;
struct testdev;

struct vm_commands {
	struct vm *vm;
	struct control *ctl;
	const struct testdev *guest; /* the built-in guest's device, or NULL */
};

/* vc must stay valid while ctl serves; so must guest, if not NULL. */
int vm_commands_register(struct vm_commands *vc, struct control *ctl, struct vm *vm,
			 const struct testdev *guest);

#endif
