/* A Linux guest's x86 side: the kernel and initrd loaded by the boot
 * protocol (boot/linux_image), the boot tables a PC firmware would leave
 * (ACPI, MP table, BIOS data area), and each vCPU's entry state. Works on
 * guest memory and vCPU fds; the VM itself stays out of it. */
#ifndef KVMHOST_LINUX_GUEST_H
#define KVMHOST_LINUX_GUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/acpi_tables.h"
#include "boot/linux_image.h"
#include "util/guest_mem.h"

struct linux_guest {
	const char *kernel_path;
	const char *initrd_path; /* may be NULL */
	const char *cmdline;	 /* may be NULL */
	bool decompress_in_guest;
	const struct guest_mem *mem; /* region 0 starts at guest physical 0 */
	unsigned nr_cpus;
	const struct acpi_mmio_device *mmio; /* found in the DSDT (or the command line) */
	unsigned nr_mmio;
};

/* Loads everything into guest memory; -ENOEXEC with err saying why (status
 * STATUS_BAD_KERNEL) when the kernel or initrd cannot be booted. */
int linux_guest_load(const struct linux_guest *g, struct linux_entry *entry, struct error *err);
/* The BSP enters the kernel; APs wait in KVM_RUN for INIT/SIPI. */
int linux_guest_setup_vcpu(int vcpu_fd, unsigned index, const struct linux_entry *entry,
			   struct error *err);

#endif
