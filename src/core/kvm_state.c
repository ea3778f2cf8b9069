/* What KVM holds, as state sections: per vCPU (registers and the rest) and
 * per VM (interrupt controllers, PIT, clock). Each part is a tag, a length
 * and KVM's own structure; a part this host's KVM does not have is saved
 * empty, and a part of the wrong size is refused on restore. */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/vcpu.h"
#include "core/vm.h"
#include "util/util.h"

struct kvm_part {
	const char *name;
	unsigned long get, set;
	uint32_t size;
	bool optional; /* not every KVM has it (EINVAL/ENOTTY): saved empty */
};

/* In the order KVM wants them back: sregs after the general registers,
 * the LAPIC after the MP state, pending events last. */
static const struct kvm_part vcpu_parts[] = {
	{"regs", KVM_GET_REGS, KVM_SET_REGS, sizeof(struct kvm_regs), false},
	{"fpu", KVM_GET_FPU, KVM_SET_FPU, sizeof(struct kvm_fpu), false},
	{"xcrs", KVM_GET_XCRS, KVM_SET_XCRS, sizeof(struct kvm_xcrs), true},
	{"sregs", KVM_GET_SREGS, KVM_SET_SREGS, sizeof(struct kvm_sregs), false},
	{"mp_state", KVM_GET_MP_STATE, KVM_SET_MP_STATE, sizeof(struct kvm_mp_state), false},
	{"lapic", KVM_GET_LAPIC, KVM_SET_LAPIC, sizeof(struct kvm_lapic_state), false},
	{"events", KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, sizeof(struct kvm_vcpu_events), true},
	{"debugregs", KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, sizeof(struct kvm_debugregs), true},
};

/* The largest of the structures above (kvm_lapic_state and kvm_fpu are
 * the big ones); checked below. */
#define KVM_PART_MAX 1024
_Static_assert(sizeof(struct kvm_lapic_state) <= KVM_PART_MAX, "lapic part");
_Static_assert(sizeof(struct kvm_fpu) <= KVM_PART_MAX, "fpu part");
_Static_assert(sizeof(struct kvm_sregs) <= KVM_PART_MAX, "sregs part");

static int save_part(int fd, const struct kvm_part *p, struct state_writer *w)
{
	uint8_t buf[KVM_PART_MAX] = {0};
	state_put_u32(w, (uint32_t)(p - vcpu_parts));
	if (ioctl(fd, p->get, buf) < 0) {
		int err = errno;
		if (p->optional && (err == EINVAL || err == ENOTTY)) {
			state_put_u32(w, 0);
			return 0;
		}
		log_err("%s: %s", p->name, strerror(err));
		return -err;
	}
	state_put_u32(w, p->size);
	state_put(w, buf, p->size);
	return w->err;
}

static int restore_part(int fd, const struct kvm_part *table, size_t nr, struct state_reader *r)
{
	uint32_t tag = state_get_u32(r), len = state_get_u32(r);
	if (!state_check(r, tag < nr && (len == 0 || len == table[tag].size)))
		return -EINVAL;
	const struct kvm_part *p = &table[tag];
	if (len == 0)
		return p->optional ? 0 : -EINVAL;
	uint8_t buf[KVM_PART_MAX];
	state_get(r, buf, len);
	if (r->err)
		return r->err;
	if (ioctl(fd, p->set, buf) < 0) {
		int err = errno;
		log_err("restoring %s: %s", p->name, strerror(err));
		return -err;
	}
	return 0;
}

int vcpu_save_state(struct vcpu *vcpu, struct state_writer *w)
{
	state_put_u32(w, ARRAY_SIZE(vcpu_parts));
	for (size_t i = 0; i < ARRAY_SIZE(vcpu_parts); i++) {
		int r = save_part(vcpu->fd, &vcpu_parts[i], w);
		if (r)
			return r;
	}
	return w->err;
}

int vcpu_restore_state(struct vcpu *vcpu, struct state_reader *r)
{
	uint32_t n = state_get_u32(r);
	if (!state_check(r, n <= ARRAY_SIZE(vcpu_parts)))
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		int ret = restore_part(vcpu->fd, vcpu_parts, ARRAY_SIZE(vcpu_parts), r);
		if (ret)
			return ret;
	}
	return r->err;
}

/* The three in-kernel interrupt controllers: PIC master, PIC slave, IOAPIC. */
static int save_irqchips(struct vm *vm, struct state_writer *w)
{
	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		struct kvm_irqchip chip = {.chip_id = id};
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0) {
			int err = errno;
			log_err("KVM_GET_IRQCHIP %u: %s", id, strerror(err));
			return -err;
		}
		state_put(w, &chip, sizeof(chip));
	}
	return 0;
}

static int restore_irqchips(struct vm *vm, struct state_reader *r)
{
	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		struct kvm_irqchip chip;
		state_get(r, &chip, sizeof(chip));
		if (!state_check(r, chip.chip_id == id))
			return -EINVAL;
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0) {
			int err = errno;
			log_err("KVM_SET_IRQCHIP %u: %s", id, strerror(err));
			return -err;
		}
	}
	return 0;
}

int vm_save_kvm_state(struct vm *vm, struct state_writer *w)
{
	int r = save_irqchips(vm, w);
	if (r)
		return r;
	state_put_u8(w, vm->has_pit);
	if (vm->has_pit) {
		struct kvm_pit_state2 pit;
		if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
			return -errno;
		state_put(w, &pit, sizeof(pit));
	}
	struct kvm_clock_data clock = {0};
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return -errno;
	state_put(w, &clock, sizeof(clock));
	return w->err;
}

int vm_restore_kvm_state(struct vm *vm, struct state_reader *r)
{
	int ret = restore_irqchips(vm, r);
	if (ret)
		return ret;
	if (!state_check(r, state_get_u8(r) == vm->has_pit))
		return -EINVAL;
	if (vm->has_pit) {
		struct kvm_pit_state2 pit;
		state_get(r, &pit, sizeof(pit));
		if (r->err || ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
			return r->err ? r->err : -errno;
	}
	struct kvm_clock_data clock;
	state_get(r, &clock, sizeof(clock));
	if (r->err)
		return r->err;
	/* Only the guest's clock value: the host-time fields say when it was read. */
	struct kvm_clock_data set = {.clock = clock.clock};
	return ioctl(vm->vm_fd, KVM_SET_CLOCK, &set) < 0 ? -errno : 0;
}
