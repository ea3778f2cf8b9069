/* ACPI tables for Linux guests: a MADT so the kernel finds its CPUs (Debian's
 * kernels ignore MP tables), and a FADT + DSDT with \_S5 so `poweroff` ends
 * the VM through the PM1a control register (devices/acpi_pm), whose fixed
 * power button the host can press. */
#ifndef KVMHOST_ACPI_H
#define KVMHOST_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACPI_RSDP_ADDR	 0xe0000ull /* in the BIOS area the kernel scans */
#define ACPI_TABLES_SIZE 0x10000ull

#define ACPI_MAX_MMIO_DEVICES 100 /* VR00..VR99 */

/* A virtio-mmio device: its register window and its (level-triggered) line. */
struct acpi_mmio_device {
	uint64_t base;
	uint32_t size, gsi;
};

/* What the tables describe. */
struct acpi_board {
	unsigned nr_cpus;
	const struct acpi_mmio_device *mmio;
	unsigned nr_mmio;
};

/* Writes RSDP, XSDT, FADT, FACS, MADT and DSDT from `addr`; returns bytes
 * used or -1 if they do not fit in `room` or the board cannot be described
 * (no vCPU, more than 255, a window above 4 GiB). */
int acpi_write_tables(uint8_t *ram, uint64_t addr, size_t room, const struct acpi_board *b);

#endif
