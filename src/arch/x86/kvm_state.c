/* What KVM holds, as state: per vCPU (CPUID, registers, FPU/XSAVE, XCRs,
 * special registers, MSRs, MP state, LAPIC, pending events, debug
 * registers) and per VM (interrupt controllers, PIT; core/vm.c adds the
 * clock). Each vCPU part
 * is a tag, a length and KVM's own structure; a part this host's KVM does
 * not have is saved empty, and a part of the wrong size is refused. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/kvm_state.h"
#include "arch/x86/msr.h"

#include "util/util.h"

/* The most CPUID entries and MSRs a saved vCPU may carry (KVM reports
 * fewer than a few hundred of either). */
#define MAX_CPUID_ENTRIES 256
#define MAX_MSRS	  1024
#define MAX_XSAVE_BYTES	  (1u << 20)

/* Fixed-size parts: one ioctl each way with KVM's structure. */
struct fixed_part {
	unsigned long get, set;
	uint32_t size;
	bool optional; /* not every KVM has it (EINVAL/ENOTTY): saved empty */
};

/* What a restore must set after every part: KVM drops a write of the
 * TSC-deadline MSR unless the LAPIC's timer is already in TSC-deadline mode,
 * and the LAPIC comes back after the MSRs (it needs the APIC base MSR). Set
 * before the LAPIC, the deadline of a guest that sleeps on its timer is
 * lost, and the guest with it (as QEMU's kvm_put_tscdeadline_msr knows). */
struct late_msrs {
	bool has_tsc_deadline;
	uint64_t tsc_deadline;
};

struct kvm_part {
	const char *name;
	struct fixed_part fixed; /* size 0: the functions below */
	int (*save)(const struct x86_vcpu_state *vcpu, struct state_writer *w);
	int (*restore)(const struct x86_vcpu_state *vcpu, struct state_reader *r, uint32_t len,
		       struct late_msrs *late);
};

static int save_fixed(const struct x86_vcpu_state *vcpu, const struct kvm_part *p,
		      struct state_writer *w)
{
	uint8_t buf[1024] = {0};
	if (ioctl(vcpu->fd, p->fixed.get, buf) < 0) {
		int err = errno;
		if (p->fixed.optional && (err == EINVAL || err == ENOTTY)) {
			state_put_u32(w, 0);
			return 0;
		}
		log_err("vCPU %d: saving %s: %s", vcpu->index, p->name, strerror(err));
		return -err;
	}
	state_put_u32(w, p->fixed.size);
	state_put(w, buf, p->fixed.size);
	return 0;
}

static int restore_fixed(const struct x86_vcpu_state *vcpu, const struct kvm_part *p,
			 struct state_reader *r, uint32_t len)
{
	uint8_t buf[1024];
	if (len == 0)
		return p->fixed.optional ? 0 : -EINVAL;
	if (!state_check(r, len == p->fixed.size))
		return -EINVAL;
	state_get(r, buf, len);
	if (r->err)
		return r->err;
	if (ioctl(vcpu->fd, p->fixed.set, buf) < 0) {
		int err = errno;
		log_err("vCPU %d: restoring %s: %s", vcpu->index, p->name, strerror(err));
		return -err;
	}
	return 0;
}

/* CPUID first: KVM checks what follows (XSAVE size, MSRs) against it. */
static int save_cpuid(const struct x86_vcpu_state *vcpu, struct state_writer *w)
{
	size_t size =
		sizeof(struct kvm_cpuid2) + MAX_CPUID_ENTRIES * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = calloc(1, size);
	if (!c)
		return -ENOMEM;
	c->nent = MAX_CPUID_ENTRIES;
	int r = ioctl(vcpu->fd, KVM_GET_CPUID2, c) < 0 ? -errno : 0;
	if (!r) {
		uint32_t len = (uint32_t)(sizeof(*c) + c->nent * sizeof(c->entries[0]));
		state_put_u32(w, len);
		state_put(w, c, len);
	} else {
		log_err("vCPU %d: KVM_GET_CPUID2: %s", vcpu->index, strerror(-r));
	}
	free(c);
	return r;
}

static int restore_cpuid(const struct x86_vcpu_state *vcpu, struct state_reader *r, uint32_t len,
			 struct late_msrs *late)
{
	(void)late;
	if (!state_check(r, len >= sizeof(struct kvm_cpuid2) && len <= r->len - r->off))
		return -EINVAL;
	struct kvm_cpuid2 *c = malloc(len);
	if (!c)
		return -ENOMEM;
	state_get(r, c, len);
	int ret = -EINVAL;
	if (state_check(r, c->nent <= MAX_CPUID_ENTRIES &&
				   len == sizeof(*c) + c->nent * sizeof(c->entries[0])))
		ret = ioctl(vcpu->fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	if (ret && !r->err)
		log_err("vCPU %d: KVM_SET_CPUID2: %s", vcpu->index, strerror(-ret));
	free(c);
	return ret;
}

/* XSAVE as large as this KVM makes it (KVM_CAP_XSAVE2), else the 4 KiB one. */
static int save_xsave(const struct x86_vcpu_state *vcpu, struct state_writer *w)
{
	uint32_t size = vcpu->xsave_size;
	if (!size) {
		state_put_u32(w, 0);
		return 0;
	}
	uint8_t *buf = calloc(1, size);
	if (!buf)
		return -ENOMEM;
	unsigned long req = size > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
	int r = ioctl(vcpu->fd, req, buf) < 0 ? -errno : 0;
	if (!r) {
		state_put_u32(w, size);
		state_put(w, buf, size);
	} else {
		log_err("vCPU %d: saving XSAVE: %s", vcpu->index, strerror(-r));
	}
	free(buf);
	return r;
}

static int restore_xsave(const struct x86_vcpu_state *vcpu, struct state_reader *r, uint32_t len,
			 struct late_msrs *late)
{
	(void)late;
	if (len == 0)
		return 0; /* saved where KVM had no XSAVE: the FPU part carries it */
	/* A larger area than this KVM's holds features this host lacks. */
	if (!state_check(r, len <= MAX_XSAVE_BYTES && len <= r->len - r->off &&
				    len >= sizeof(struct kvm_xsave) &&
				    len <= (vcpu->xsave_size > sizeof(struct kvm_xsave)
						    ? vcpu->xsave_size
						    : sizeof(struct kvm_xsave))))
		return -EINVAL;
	uint8_t *buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	state_get(r, buf, len);
	int ret = r->err ? r->err : ioctl(vcpu->fd, KVM_SET_XSAVE, buf) < 0 ? -errno : 0;
	if (ret && !r->err)
		log_err("vCPU %d: KVM_SET_XSAVE: %s", vcpu->index, strerror(-ret));
	free(buf);
	return ret;
}

static struct kvm_msrs *alloc_msrs(uint32_t n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(struct kvm_msr_entry));
	if (m)
		m->nmsrs = n;
	return m;
}

/* KVM_GET_MSRS and KVM_SET_MSRS stop at the first MSR they refuse and say
 * how many they did: skip that one and go on, so one MSR this KVM will not
 * move (some do not on nested PVM hosts) does not lose the rest. */
static uint32_t msrs_io(const struct x86_vcpu_state *vcpu, struct kvm_msrs *m, bool set)
{
	uint32_t done = 0, total = m->nmsrs;
	struct kvm_msr_entry *e = m->entries;
	uint32_t kept = 0;
	while (done < total) {
		struct kvm_msrs *part = alloc_msrs(total - done);
		if (!part)
			break;
		memcpy(part->entries, e + done, (total - done) * sizeof(*e));
		int n = ioctl(vcpu->fd, set ? KVM_SET_MSRS : KVM_GET_MSRS, part);
		if (n < 0)
			n = 0;
		memcpy(e + kept, part->entries, (size_t)n * sizeof(*e));
		kept += (uint32_t)n;
		done += (uint32_t)n;
		if (done < total) {
			if (vcpu->index == 0)
				log_info("MSR %#x: KVM will not %s it; left out", e[done].index,
					 set ? "set" : "read");
			done++;
		}
		free(part);
	}
	m->nmsrs = kept;
	return kept;
}

static int save_msrs(const struct x86_vcpu_state *vcpu, struct state_writer *w)
{
	const struct kvm_msr_list *list = vcpu->msr_list;
	uint32_t n = list ? list->nmsrs : 0;
	struct kvm_msrs *m = alloc_msrs(n);
	if (!m)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		m->entries[i].index = list->indices[i];
	msrs_io(vcpu, m, false);
	uint32_t len = (uint32_t)(m->nmsrs * sizeof(m->entries[0]));
	state_put_u32(w, len);
	state_put(w, m->entries, len);
	free(m);
	return 0;
}

static int restore_msrs(const struct x86_vcpu_state *vcpu, struct state_reader *r, uint32_t len,
			struct late_msrs *late)
{
	uint32_t n = len / sizeof(struct kvm_msr_entry);
	if (!state_check(r, len % sizeof(struct kvm_msr_entry) == 0 && n <= MAX_MSRS &&
				    len <= r->len - r->off))
		return -EINVAL;
	struct kvm_msrs *m = alloc_msrs(n);
	if (!m)
		return -ENOMEM;
	state_get(r, m->entries, len);
	for (uint32_t i = 0; i < n && !r->err; i++) {
		if (m->entries[i].index == MSR_IA32_TSC_DEADLINE) {
			late->has_tsc_deadline = true;
			late->tsc_deadline = m->entries[i].data;
		}
	}
	if (!r->err)
		msrs_io(vcpu, m, true);
	free(m);
	return r->err;
}

static int restore_late_msrs(const struct x86_vcpu_state *vcpu, const struct late_msrs *late)
{
	if (!late->has_tsc_deadline)
		return 0;
	const struct kvm_msr_entry deadline = {.index = MSR_IA32_TSC_DEADLINE,
					       .data = late->tsc_deadline};
	int r = x86_set_msrs(vcpu->fd, &deadline, 1);
	if (r)
		log_err("vCPU %d: restoring the TSC deadline: %s", vcpu->index, strerror(-r));
	return r;
}

#define FIXED(n, g, s, t, opt)                                                                     \
	{                                                                                          \
		n, {g, s, sizeof(t), opt}, NULL, NULL                                              \
	}

/* In the order KVM wants them back: CPUID before anything it constrains,
 * XSAVE after the FPU it extends, MSRs after the special registers (EFER),
 * the LAPIC after the MP state, pending events and debug registers last. */
static const struct kvm_part vcpu_parts[] = {
	{"cpuid", {0}, save_cpuid, restore_cpuid},
	FIXED("regs", KVM_GET_REGS, KVM_SET_REGS, struct kvm_regs, false),
	FIXED("fpu", KVM_GET_FPU, KVM_SET_FPU, struct kvm_fpu, false),
	{"xsave", {0}, save_xsave, restore_xsave},
	FIXED("xcrs", KVM_GET_XCRS, KVM_SET_XCRS, struct kvm_xcrs, true),
	FIXED("sregs", KVM_GET_SREGS, KVM_SET_SREGS, struct kvm_sregs, false),
	{"msrs", {0}, save_msrs, restore_msrs},
	FIXED("mp_state", KVM_GET_MP_STATE, KVM_SET_MP_STATE, struct kvm_mp_state, false),
	FIXED("lapic", KVM_GET_LAPIC, KVM_SET_LAPIC, struct kvm_lapic_state, false),
	FIXED("events", KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, struct kvm_vcpu_events, true),
	FIXED("debugregs", KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, struct kvm_debugregs, true),
};

_Static_assert(sizeof(struct kvm_lapic_state) <= 1024, "lapic part");
_Static_assert(sizeof(struct kvm_fpu) <= 1024, "fpu part");
_Static_assert(sizeof(struct kvm_sregs) <= 1024, "sregs part");

int x86_save_vcpu_state(const struct x86_vcpu_state *vcpu, struct state_writer *w)
{
	state_put_u32(w, ARRAY_SIZE(vcpu_parts));
	for (size_t i = 0; i < ARRAY_SIZE(vcpu_parts); i++) {
		const struct kvm_part *p = &vcpu_parts[i];
		state_put_u32(w, (uint32_t)i);
		int r = p->save ? p->save(vcpu, w) : save_fixed(vcpu, p, w);
		if (r)
			return r;
	}
	return w->err;
}

int x86_restore_vcpu_state(const struct x86_vcpu_state *vcpu, struct state_reader *r)
{
	uint32_t n = state_get_u32(r);
	if (!state_check(r, n == ARRAY_SIZE(vcpu_parts)))
		return -EINVAL;
	struct late_msrs late = {0};
	for (uint32_t i = 0; i < n; i++) {
		uint32_t tag = state_get_u32(r), len = state_get_u32(r);
		if (!state_check(r, tag == i))
			return -EINVAL;
		const struct kvm_part *p = &vcpu_parts[tag];
		int ret = p->restore ? p->restore(vcpu, r, len, &late)
				     : restore_fixed(vcpu, p, r, len);
		if (ret || r->err)
			return ret ? ret : r->err;
	}
	return restore_late_msrs(vcpu, &late);
}

/* The three in-kernel interrupt controllers: PIC master, PIC slave, IOAPIC. */
static int save_irqchips(int vm_fd, struct state_writer *w)
{
	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		struct kvm_irqchip chip = {.chip_id = id};
		if (ioctl(vm_fd, KVM_GET_IRQCHIP, &chip) < 0) {
			int err = errno;
			log_err("KVM_GET_IRQCHIP %u: %s", id, strerror(err));
			return -err;
		}
		state_put(w, &chip, sizeof(chip));
	}
	return 0;
}

static int restore_irqchips(int vm_fd, struct state_reader *r)
{
	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		struct kvm_irqchip chip;
		state_get(r, &chip, sizeof(chip));
		if (!state_check(r, chip.chip_id == id))
			return -EINVAL;
		if (ioctl(vm_fd, KVM_SET_IRQCHIP, &chip) < 0) {
			int err = errno;
			log_err("KVM_SET_IRQCHIP %u: %s", id, strerror(err));
			return -err;
		}
	}
	return 0;
}

int x86_save_vm_state(int vm_fd, bool has_pit, struct state_writer *w)
{
	int r = save_irqchips(vm_fd, w);
	if (r)
		return r;
	state_put_u8(w, has_pit);
	if (has_pit) {
		struct kvm_pit_state2 pit;
		if (ioctl(vm_fd, KVM_GET_PIT2, &pit) < 0)
			return -errno;
		state_put(w, &pit, sizeof(pit));
	}
	return w->err;
}

int x86_restore_vm_state(int vm_fd, bool has_pit, struct state_reader *r)
{
	int ret = restore_irqchips(vm_fd, r);
	if (ret)
		return ret;
	if (!state_check(r, state_get_u8(r) == has_pit))
		return -EINVAL;
	if (has_pit) {
		struct kvm_pit_state2 pit;
		state_get(r, &pit, sizeof(pit));
		if (r->err || ioctl(vm_fd, KVM_SET_PIT2, &pit) < 0)
			return r->err ? r->err : -errno;
	}
	return r->err;
}
