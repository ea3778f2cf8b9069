/* The VM's own commands on the control socket - pause, resume, quit,
 * poweroff, regs, net-link - and the registration of its part of every
 * status reply (built by control/vm_status.h). */
#ifndef KVMHOST_VM_COMMANDS_H
#define KVMHOST_VM_COMMANDS_H

struct vm;
struct control;

struct vm_commands {
	struct vm *vm;
	struct control *ctl;
};

/* vc must stay valid while ctl serves. */
int vm_commands_register(struct vm_commands *vc, struct control *ctl, struct vm *vm);

#endif
