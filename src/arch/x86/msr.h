/* The x86 MSRs kvmhost names (indices from the SDM: no UAPI header carries
 * them), and a vCPU's MSRs read and written a few at a time. */
#ifndef KVMHOST_ARCH_X86_MSR_H
#define KVMHOST_ARCH_X86_MSR_H

#include <linux/kvm.h>
#include <stdint.h>

#define MSR_IA32_TSC	      0x10
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff
#define MSR_IA32_TSC_DEADLINE 0x6e0

/* Writes the `n` entries (at most 8): 0, -errno, or -EINVAL where KVM
 * refused one (KVM_SET_MSRS stops at the first it refuses). */
int x86_set_msrs(int vcpu_fd, const struct kvm_msr_entry *entries, unsigned n);
/* One MSR's value: 0 or -errno (-EINVAL where KVM has no such MSR). */
int x86_get_msr(int vcpu_fd, uint32_t index, uint64_t *value);

#endif
