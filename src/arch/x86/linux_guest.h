/* A Linux guest in a VM: files in, boot state out (the loader does the
 * protocol; this does the VM's side: CPUs, PIT, MP table, devices' cmdline). */
#ifndef KVMHOST_LINUX_BOOT_H
#define KVMHOST_LINUX_BOOT_H

struct vm;
struct vcpu;

/* Loads kernel/initrd into guest RAM; -EINVAL with a clear message on a bad image. */
int linux_boot_setup(struct vm *vm);
/* The BSP enters the kernel; APs wait in KVM_RUN for INIT/SIPI. */
int linux_boot_vcpu(struct vm *vm, struct vcpu *vcpu);

#endif
