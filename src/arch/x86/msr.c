/* A vCPU's MSRs a few at a time: KVM_GET_MSRS and KVM_SET_MSRS take a
 * header and a flexible array, here on the stack. */
#include "arch/x86/msr.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#define MAX_FEW 8

union few_msrs {
	struct kvm_msrs head;
	uint8_t bytes[sizeof(struct kvm_msrs) + MAX_FEW * sizeof(struct kvm_msr_entry)];
};

int x86_set_msrs(int vcpu_fd, const struct kvm_msr_entry *entries, unsigned n)
{
	if (n > MAX_FEW)
		return -EINVAL;
	union few_msrs m = {.head.nmsrs = n};
	memcpy(m.head.entries, entries, n * sizeof(*entries));
	int done = ioctl(vcpu_fd, KVM_SET_MSRS, &m);
	return done == (int)n ? 0 : done < 0 ? -errno : -EINVAL;
}

int x86_get_msr(int vcpu_fd, uint32_t index, uint64_t *value)
{
	union few_msrs m = {.head.nmsrs = 1};
	m.head.entries[0].index = index;
	int done = ioctl(vcpu_fd, KVM_GET_MSRS, &m);
	if (done != 1)
		return done < 0 ? -errno : -EINVAL;
	*value = m.head.entries[0].data;
	return 0;
}
