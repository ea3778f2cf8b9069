#include "arch/x86/linux_guest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/x86/acpi_tables.h"
#include "arch/x86/cpu.h"
#include "arch/x86/mptable.h"
#include "boot/linux_image.h"
#include "core/vm.h"
#include "util/util.h"

#define APIC_LVT0	 0x350
#define APIC_LVT1	 0x360
#define APIC_MODE_NMI	 0x4
#define APIC_MODE_EXTINT 0x7

/* Maps a whole file read-only; NULL with a message on failure. */
static void *map_file(const char *what, const char *path, size_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_err("%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	struct stat st;
	void *p = NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_err("%s %s: not a regular file", what, path);
	} else if (st.st_size == 0) {
		log_err("%s %s is empty", what, path);
	} else {
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			log_err("%s %s: %s", what, path, strerror(errno));
			p = NULL;
		} else {
			*size = (size_t)st.st_size;
		}
	}
	close(fd);
	return p;
}

int linux_boot_setup(struct vm *vm)
{
	const struct run_options *o = &vm->opts;
	size_t ksize = 0, isize = 0;
	void *kernel = map_file("--kernel", o->kernel_path, &ksize), *initrd = NULL;
	int ret = -ENOEXEC; /* the caller's "cannot boot this" */
	if (!kernel)
		return -ENOEXEC;
	if (o->initrd_path[0] && !(initrd = map_file("--initrd", o->initrd_path, &isize)))
		goto out;
	/* The user's command line, then where the virtio-mmio disks are. */
	char cmdline[LINUX_CMDLINE_MAX];
	size_t n = (size_t)snprintf(cmdline, sizeof(cmdline), "%s", o->cmdline);
	for (int i = 0; i < vm->nr_disks && n < sizeof(cmdline); i++)
		n += (size_t)snprintf(cmdline + n, sizeof(cmdline) - n,
				      "%svirtio_mmio.device=4K@0x%llx:%u", n ? " " : "",
				      (unsigned long long)vm->disks[i].base, vm->disks[i].gsi);
	if (n >= sizeof(cmdline)) {
		log_err("--cmdline: too long with the devices added");
		goto out;
	}
	struct linux_ram ram = {vm->mem.regions[0].hva, vm->mem.regions[0].size,
				vm->mem.nr > 1 ? vm->mem.regions[1].size : 0};
	struct linux_boot boot = {kernel, ksize,   initrd,
				  isize,  cmdline, o->kernel_decompress_guest};
	char err[512];
	if (linux_load(&ram, &boot, &vm->linux_entry, err, sizeof(err))) {
		log_err("--kernel %s: %s", o->kernel_path, err);
		goto out;
	}
	/* ACPI for kernels built without MP-table support (Debian's), the MP
	 * table for those built without ACPI. */
	if (x86_write_boot_tables(vm->ram, vm->ram_size) ||
	    mptable_write(vm->ram, LINUX_EBDA, 0x100000 - LINUX_EBDA, vm->nr_vcpus) < 0 ||
	    acpi_write_tables(vm->ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, vm->nr_vcpus) < 0) {
		log_err("cannot write the boot tables");
		goto out;
	}
	/* The BIOS data area points at the EBDA, where the MP table is. */
	uint16_t ebda_seg = (uint16_t)(LINUX_EBDA >> 4);
	memcpy(vm->ram + 0x40e, &ebda_seg, 2);
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		log_err("KVM_CREATE_PIT2: %s", strerror(errno));
		goto out;
	}
	log_info("kernel: %s, entry %#llx, %zu-byte command line", vm->linux_entry.format,
		 (unsigned long long)vm->linux_entry.rip, strlen(cmdline));
	ret = 0;
out:
	if (kernel)
		munmap(kernel, ksize);
	if (initrd)
		munmap(initrd, isize);
	return ret;
}

static int set_lint(int fd)
{
	struct kvm_lapic_state l;
	if (ioctl(fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	uint32_t v;
	/* Virtual wire: LINT0 takes the PIC (ExtINT), LINT1 NMIs. */
	memcpy(&v, l.regs + APIC_LVT0, 4);
	v = (v & ~0x700u) | (APIC_MODE_EXTINT << 8);
	memcpy(l.regs + APIC_LVT0, &v, 4);
	memcpy(&v, l.regs + APIC_LVT1, 4);
	v = (v & ~0x700u) | (APIC_MODE_NMI << 8);
	memcpy(l.regs + APIC_LVT1, &v, 4);
	return ioctl(fd, KVM_SET_LAPIC, &l) < 0 ? -errno : 0;
}

#define MSR_IA32_TSC		0x10
#define MSR_IA32_MISC_ENABLE	0x1a0
#define MSR_MTRR_DEF_TYPE	0x2ff
#define MISC_ENABLE_FAST_STRING 1
#define MTRR_ENABLE		(1u << 11)
#define MTRR_TYPE_WB		6

/* What firmware leaves behind: fast strings on, MTRRs on with write-back as
 * the default type (else the kernel may map all of RAM uncached), TSC at 0. */
static int set_msrs(int fd)
{
	static const struct kvm_msr_entry want[] = {
		{.index = MSR_IA32_MISC_ENABLE, .data = MISC_ENABLE_FAST_STRING},
		{.index = MSR_MTRR_DEF_TYPE, .data = MTRR_ENABLE | MTRR_TYPE_WB},
		{.index = MSR_IA32_TSC, .data = 0},
	};
	union {
		struct kvm_msrs hdr;
		uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(want)];
	} m = {0};
	m.hdr.nmsrs = ARRAY_SIZE(want);
	memcpy(m.hdr.entries, want, sizeof(want));
	int n = ioctl(fd, KVM_SET_MSRS, &m);
	return n == (int)ARRAY_SIZE(want) ? 0 : n < 0 ? -errno : -EINVAL;
}

int linux_boot_vcpu(struct vm *vm, struct vcpu *vcpu)
{
	if (set_msrs(vcpu->fd))
		log_warn("vCPU %d: could not set all boot MSRs", vcpu->index);
	int r = set_lint(vcpu->fd);
	if (r) {
		log_err("vCPU %d: LAPIC setup: %s", vcpu->index, strerror(-r));
		return r;
	}
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0) {
		log_err("vCPU %d: KVM_SET_FPU: %s", vcpu->index, strerror(errno));
		return -errno;
	}
	if (vcpu->index != 0)
		return 0; /* an AP: stays in wait-for-SIPI until the kernel starts it */
	return x86_enter_long_mode(vcpu->fd, BOOT_CS_LINUX, vm->linux_entry.rip, 0,
				   vm->linux_entry.zero_page);
}
