/* What a PC firmware would do for a Linux guest, done by the VMM: map the
 * kernel and initrd, have boot/linux_image place them, write the ACPI, MP
 * and BIOS data area tables, and give each vCPU the state a BIOS leaves
 * (virtual-wire LINT0/LINT1, write-back MTRRs) - the BSP at the kernel's
 * 64-bit entry, the APs waiting for INIT/SIPI. */
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
#include "arch/x86/msr.h"
#include "util/bytes.h"
#include "util/util.h"

#define BDA_EBDA_SEGMENT 0x40e /* BIOS data area: where the EBDA is, in paragraphs */
#define APIC_LVT0	 0x350
#define APIC_LVT1	 0x360
#define APIC_MODE_NMI	 0x4
#define APIC_MODE_EXTINT 0x7

/* Maps a whole file read-only; NULL with err set on failure. */
static void *map_file(const char *what, const char *path, size_t *size, struct error *err)
{
	/* O_NONBLOCK: a FIFO given as a kernel must not hang us before the
	 * event loop can hear a signal; it is refused below as not a file. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		error_set(err, STATUS_BAD_KERNEL, errno, "%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	struct stat st;
	void *p = NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		error_set(err, STATUS_BAD_KERNEL, ENOEXEC, "%s %s: not a regular file", what, path);
	} else if (st.st_size == 0) {
		error_set(err, STATUS_BAD_KERNEL, ENOEXEC, "%s %s is empty", what, path);
	} else {
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			error_set(err, STATUS_BAD_KERNEL, errno, "%s %s: %s", what, path,
				  strerror(errno));
			p = NULL;
		} else {
			*size = (size_t)st.st_size;
		}
	}
	close(fd);
	return p;
}

/* Whether the user turned ACPI off on the kernel's command line. */
static bool acpi_off(const char *cmdline)
{
	for (const char *p = cmdline; p && (p = strstr(p, "acpi=off")); p++)
		if ((p == cmdline || p[-1] == ' ') && (p[8] == ' ' || p[8] == '\0'))
			return true;
	return false;
}

/* The user's command line; with ACPI off, where the virtio-mmio devices are
 * too (for kernels with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES). Otherwise the
 * DSDT has them, and naming them twice would probe each twice. */
static int build_cmdline(const struct linux_guest *g, char *buf, size_t len, struct error *err)
{
	size_t n = (size_t)snprintf(buf, len, "%s", g->cmdline ? g->cmdline : "");
	for (unsigned i = 0; acpi_off(g->cmdline) && i < g->nr_mmio && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%svirtio_mmio.device=%uK@0x%llx:%u",
				      n ? " " : "", g->mmio[i].size >> 10,
				      (unsigned long long)g->mmio[i].base, g->mmio[i].gsi);
	if (n >= len)
		return error_set(err, STATUS_BAD_KERNEL, ENOEXEC,
				 "--cmdline: too long with the devices added");
	return 0;
}

/* ACPI for kernels built without MP-table support (Debian's), the MP table
 * for those built without ACPI, and the BIOS data area pointing at the EBDA. */
static int write_firmware_tables(uint8_t *ram, uint64_t ram_size, const struct linux_guest *g,
				 struct error *err)
{
	const struct acpi_board board = {g->nr_cpus, g->mmio, g->nr_mmio};
	if (x86_write_boot_tables(ram, ram_size) ||
	    mptable_write(ram, LINUX_EBDA, 0x100000 - LINUX_EBDA, g->nr_cpus) < 0 ||
	    acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, &board) < 0)
		return error_set(err, STATUS_BAD_KERNEL, ENOEXEC, "cannot write the boot tables");
	put_le16(ram + BDA_EBDA_SEGMENT, (uint16_t)(LINUX_EBDA >> 4));
	return 0;
}

int linux_guest_load(const struct linux_guest *g, struct linux_entry *entry, struct error *err)
{
	const struct mem_region *low = &g->mem->regions[0];
	size_t ksize = 0, isize = 0;
	void *kernel = map_file("--kernel", g->kernel_path, &ksize, err), *initrd = NULL;
	int ret = -ENOEXEC; /* the caller's "cannot boot this" */
	char cmdline[LINUX_CMDLINE_MAX];
	if (!kernel)
		return -ENOEXEC;
	if (g->initrd_path && !(initrd = map_file("--initrd", g->initrd_path, &isize, err)))
		goto out;
	if (build_cmdline(g, cmdline, sizeof(cmdline), err))
		goto out;
	struct linux_ram ram = {low->hva, low->size, g->mem->nr > 1 ? g->mem->regions[1].size : 0};
	struct linux_boot boot = {kernel, ksize, initrd, isize, cmdline, g->decompress_in_guest};
	if (linux_load(&ram, &boot, entry, err)) {
		error_set_status(err, STATUS_BAD_KERNEL);
		error_prepend(err, "--kernel %s: ", g->kernel_path);
		goto out;
	}
	if (write_firmware_tables(low->hva, low->size, g, err))
		goto out;
	log_info("kernel: %s, entry %#llx, %zu-byte command line", entry->format,
		 (unsigned long long)entry->rip, strlen(cmdline));
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
	return x86_set_msrs(fd, want, ARRAY_SIZE(want));
}

int linux_guest_setup_vcpu(int vcpu_fd, unsigned index, const struct linux_entry *entry,
			   struct error *err)
{
	/* The kernel sets these up again itself; a firmware's are a courtesy. */
	if (set_msrs(vcpu_fd))
		log_warn("vCPU %u: could not set all boot MSRs", index);
	int r = set_lint(vcpu_fd);
	if (r)
		return error_set_errno(err, -r, "LAPIC setup");
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
		return error_set_errno(err, errno, "KVM_SET_FPU");
	if (index != 0)
		return 0; /* an AP: stays in wait-for-SIPI until the kernel starts it */
	return x86_enter_long_mode(vcpu_fd, BOOT_CS_LINUX, entry->rip, 0, entry->zero_page, err);
}
