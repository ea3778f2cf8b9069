/* The state seams snapshots build on, against the real KVM: what a vCPU
 * and the VM hold round-trips through save/restore, into the same VM and
 * into a second one; every device's section comes back; streams that are
 * cut short or made for another VM are refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmocka.h>

#include "arch/x86/msr.h"
#include "builtin_guest/guest_blob.h"
#include "builtin_guest/testdev.h"
#include "core/vm.h"
#include "util/util.h"

/* Each VM's own test device (the built-in guest's), as `run` gives it. */
struct guest_device {
	struct testdev dev;
	struct extra_device extra;
};
static struct guest_device devices[8]; /* one per VM these tests make */
static unsigned nr_devices;

/* A VM for the built-in guest, with its device; or, with_guest false, a
 * VM as a Linux guest gets it: no test device. */
static struct vm *make_vm_with(struct vm_config cfg, bool with_guest)
{
	if (with_guest) {
		assert_true(nr_devices < ARRAY_SIZE(devices));
		struct guest_device *g = &devices[nr_devices++];
		testdev_configure(&g->dev, &(struct testdev_config){0}, NULL, 0);
		g->extra = testdev_extra(&g->dev);
		cfg.flat_image = (struct x86_flat_image){
			kvmhost_guest_blob, kvmhost_guest_blob_size, builtin_guest_footprint()};
		cfg.flat_device = &g->extra;
	}
	struct vm *vm = NULL;
	struct error why = {0};
	assert_int_equal(vm_create(&cfg, -1, &vm, &why), 0);
	assert_true((vm_extra_device(vm) != NULL) == with_guest);
	return vm;
}

static struct vm *make_vm(uint32_t cpus)
{
	return make_vm_with((struct vm_config){.name = "state", .cpus = cpus, .memory_mib = 64},
			    true);
}

static void vcpu_round_trip(void **state)
{
	(void)state;
	if (access("/dev/kvm", R_OK | W_OK))
		skip();
	struct vm *a = make_vm(2), *b = make_vm(2);
	struct kvm_regs before, after;
	assert_int_equal(ioctl(a->vcpus[1].fd, KVM_GET_REGS, &before), 0);
	struct state_writer w = {0};
	assert_int_equal(vcpu_save_state(&a->vcpus[1], &w), 0);

	/* Into the same vCPU after it changed, and into another VM's vCPU 1. */
	struct kvm_regs changed = before;
	changed.rax = 0x1234, changed.rip += 16;
	assert_int_equal(ioctl(a->vcpus[1].fd, KVM_SET_REGS, &changed), 0);
	struct state_reader r = state_reader_init(w.buf, w.len);
	assert_int_equal(vcpu_restore_state(&a->vcpus[1], &r), 0);
	assert_int_equal(state_reader_done(&r), 0);
	assert_int_equal(ioctl(a->vcpus[1].fd, KVM_GET_REGS, &after), 0);
	assert_memory_equal(&before, &after, sizeof(before));
	r = state_reader_init(w.buf, w.len);
	assert_int_equal(vcpu_restore_state(&b->vcpus[0], &r), 0);
	assert_int_equal(ioctl(b->vcpus[0].fd, KVM_GET_REGS, &after), 0);
	assert_int_equal(after.rdi, 1); /* vCPU 1's index, as the built-in guest's entry has it */
	struct kvm_sregs sa, sb;
	assert_int_equal(ioctl(a->vcpus[1].fd, KVM_GET_SREGS, &sa), 0);
	assert_int_equal(ioctl(b->vcpus[0].fd, KVM_GET_SREGS, &sb), 0);
	assert_int_equal(sa.cr3, sb.cr3);
	assert_int_equal(sa.efer, sb.efer);
	/* Cut anywhere: refused. */
	for (size_t n = 0; n < w.len; n += 7) {
		r = state_reader_init(w.buf, n);
		assert_int_not_equal(vcpu_restore_state(&b->vcpus[0], &r), 0);
	}
	state_writer_free(&w);
	vm_destroy(a);
	vm_destroy(b);
}

#define APIC_LVTT	  0x320
#define LVTT_TSC_DEADLINE (2u << 17)

static uint64_t get_msr(int vcpu_fd, uint32_t index)
{
	uint64_t v = 0;
	assert_int_equal(x86_get_msr(vcpu_fd, index, &v), 0);
	return v;
}

/* A guest asleep on its TSC-deadline timer (what Linux does between ticks
 * since kvmhost offers that timer) must find the deadline armed after a
 * restore into a fresh VM, or it sleeps for ever. KVM drops the MSR unless
 * the LAPIC is already in TSC-deadline mode. */
static void tsc_deadline_round_trip(void **state)
{
	(void)state;
	if (access("/dev/kvm", R_OK | W_OK))
		skip();
	struct vm *a = make_vm(1), *b = make_vm(1);
	int fd = a->vcpus[0].fd;
	struct kvm_lapic_state lapic;
	assert_int_equal(ioctl(fd, KVM_GET_LAPIC, &lapic), 0);
	uint32_t lvtt = 0xec | LVTT_TSC_DEADLINE;
	memcpy(&lapic.regs[APIC_LVTT], &lvtt, sizeof(lvtt));
	assert_int_equal(ioctl(fd, KVM_SET_LAPIC, &lapic), 0);
	uint64_t deadline = get_msr(fd, MSR_IA32_TSC) + (1ull << 42);
	const struct kvm_msr_entry armed = {.index = MSR_IA32_TSC_DEADLINE, .data = deadline};
	assert_int_equal(x86_set_msrs(fd, &armed, 1), 0);
	if (get_msr(fd, MSR_IA32_TSC_DEADLINE) != deadline) {
		vm_destroy(a); /* this KVM offers no TSC-deadline timer */
		vm_destroy(b);
		skip();
	}

	struct state_writer w = {0};
	assert_int_equal(vcpu_save_state(&a->vcpus[0], &w), 0);
	struct state_reader r = state_reader_init(w.buf, w.len);
	assert_int_equal(vcpu_restore_state(&b->vcpus[0], &r), 0);
	assert_int_equal(get_msr(b->vcpus[0].fd, MSR_IA32_TSC_DEADLINE), deadline);
	state_writer_free(&w);
	vm_destroy(a);
	vm_destroy(b);
}

static void vm_round_trip(void **state)
{
	(void)state;
	if (access("/dev/kvm", R_OK | W_OK))
		skip();
	struct vm *a = make_vm(1), *b = make_vm(1);
	struct kvm_clock_data clock = {.clock = 5000000000ull};
	assert_int_equal(vm_set_clock(a, &clock), 0);
	struct state_writer w = {0};
	assert_int_equal(vm_save_kvm_state(a, &w), 0);
	assert_int_equal(vm_save_devices(a, &w), 0);
	struct state_reader r = state_reader_init(w.buf, w.len);
	assert_int_equal(vm_restore_kvm_state(b, &r, 0), 0);
	assert_int_equal(vm_restore_devices(b, &r), 0);
	assert_int_equal(state_reader_done(&r), 0);
	struct kvm_clock_data got;
	assert_int_equal(vm_get_clock(b, &got), 0);
	/* The guest's clock as saved, give or take the time this test took. */
	assert_true(got.clock >= clock.clock && got.clock - clock.clock < 1000000000ull);
	state_writer_free(&w);

	/* The saved reading says when it was taken: the time a VM spends in
	 * a file or on the wire is added back, whatever the caller measured. */
	assert_int_equal(vm_set_clock(a, &clock), 0);
	w = (struct state_writer){0};
	assert_int_equal(vm_save_kvm_state(a, &w), 0);
	assert_int_equal(vm_save_devices(a, &w), 0);
	usleep(300000);
	r = state_reader_init(w.buf, w.len);
	assert_int_equal(vm_restore_kvm_state(b, &r, 0), 0);
	assert_int_equal(vm_get_clock(b, &got), 0);
	assert_true(got.clock >= clock.clock + 300000000ull);
	state_writer_free(&w);

	/* Device state made for a VM with a disk does not fit one without. */
	char path[] = "/tmp/kvmhost-state-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	struct vm_config cfg = {.name = "disk", .cpus = 1, .memory_mib = 64, .nr_disks = 1};
	cfg.disks[0].path = path;
	struct vm *c = make_vm_with(cfg, true);
	struct state_writer d = {0};
	assert_int_equal(vm_save_devices(c, &d), 0);
	r = state_reader_init(d.buf, d.len);
	assert_int_not_equal(vm_restore_devices(b, &r), 0);
	r = state_reader_init(d.buf, d.len);
	assert_int_equal(vm_restore_devices(c, &r), 0);
	assert_int_equal(state_reader_done(&r), 0);
	state_writer_free(&d);
	vm_destroy(c);
	unlink(path);

	/* Nor does the built-in guest's state fit a VM without its test
	 * device (what a Linux guest gets), or the other way round. */
	struct vm *plain = make_vm_with(
		(struct vm_config){.name = "plain", .cpus = 1, .memory_mib = 64}, false);
	assert_int_equal(vm_save_devices(a, &d), 0);
	r = state_reader_init(d.buf, d.len);
	assert_int_not_equal(vm_restore_devices(plain, &r), 0);
	state_writer_free(&d);
	assert_int_equal(vm_save_devices(plain, &d), 0);
	r = state_reader_init(d.buf, d.len);
	assert_int_not_equal(vm_restore_devices(b, &r), 0);
	state_writer_free(&d);
	vm_destroy(plain);
	vm_destroy(a);
	vm_destroy(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(vcpu_round_trip),
		cmocka_unit_test(tsc_deadline_round_trip),
		cmocka_unit_test(vm_round_trip),
	};
	return cmocka_run_group_tests_name("kvm_state", tests, NULL, NULL);
}
