/* ACPI tables for Linux guests: a MADT so the kernel finds its CPUs (Debian's
 * kernels ignore MP tables), and a FADT + DSDT with \_S5 so `poweroff` ends
 * the VM through the PM1a control register (devices/acpi_pm), whose fixed
 * power button the host can press. */
#ifndef KVMHOST_ACPI_H
#define KVMHOST_ACPI_H

#include <stddef.h>
#include <stdint.h>

#define ACPI_RSDP_ADDR	 0xe0000ull /* in the BIOS area the kernel scans */
#define ACPI_TABLES_SIZE 0x10000ull

/* Writes RSDP, XSDT, FADT, FACS, DSDT and MADT from `addr`; returns bytes
 * used or -1 if they do not fit in `room`. */
int acpi_write_tables(uint8_t *ram, uint64_t addr, size_t room, unsigned nr_cpus);

#endif
