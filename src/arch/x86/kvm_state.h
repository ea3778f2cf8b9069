/* What KVM holds for an x86 VM, as state snapshots and migrations carry:
 * per vCPU, KVM's own structures as tagged parts (arch/x86/kvm_state.c);
 * per VM, the interrupt controllers and the PIT. */
#ifndef KVMHOST_ARCH_X86_KVM_STATE_H
#define KVMHOST_ARCH_X86_KVM_STATE_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/state.h"

/* One vCPU as its state needs it. */
struct x86_vcpu_state {
	int fd;
	int index;			     /* for messages */
	uint32_t xsave_size;		     /* KVM_GET_XSAVE2's, or 0: none */
	const struct kvm_msr_list *msr_list; /* the MSRs the state carries */
};

/* With the vCPU stopped (its own thread, or parked). restore returns
 * -EINVAL for a stream it cannot use. */
int x86_save_vcpu_state(const struct x86_vcpu_state *vcpu, struct state_writer *w);
int x86_restore_vcpu_state(const struct x86_vcpu_state *vcpu, struct state_reader *r);

/* The PICs and I/O APIC, and the PIT where the VM has one. */
int x86_save_vm_state(int vm_fd, bool has_pit, struct state_writer *w);
int x86_restore_vm_state(int vm_fd, bool has_pit, struct state_reader *r);

#endif
