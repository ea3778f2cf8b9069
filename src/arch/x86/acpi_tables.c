#include "arch/x86/acpi_tables.h"

#include <string.h>

#include "arch/x86/mptable.h"
#include "devices/acpi_pm.h"
#include "util/bytes.h"

/* The 36-byte header every SDT starts with; the checksum is set last. */
static void header(uint8_t *t, const char sig[4], uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put_le32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, "KVMHST", 6);
	memcpy(t + 16, "KVMHOST ", 8);
	put_le32(t + 24, 1);
	memcpy(t + 28, "KVMH", 4);
	put_le32(t + 32, 1);
}

static void seal(uint8_t *t)
{
	uint32_t len;
	memcpy(&len, t + 4, 4);
	t[9] = 0;
	t[9] = byte_checksum(t, len);
}

/* A Generic Address Structure in system I/O space. */
static void gas_io(uint8_t *g, uint16_t port, uint8_t bits)
{
	g[0] = 1; /* system I/O */
	g[1] = bits;
	g[2] = 0;
	g[3] = bits <= 8 ? 1 : bits <= 16 ? 2 : 3; /* access size */
	put_le64(g + 4, port);
}

int acpi_write_tables(uint8_t *ram, uint64_t addr, size_t room, unsigned nr_cpus)
{
	/* Name(_S5_, Package(2){5, 0}): what SLP_TYP means "soft off". */
	static const uint8_t s5[] = {0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00};
	const uint64_t rsdp = addr, xsdt = addr + 0x40, facs = addr + 0x100, fadt = addr + 0x140,
		       dsdt = addr + 0x280, madt = addr + 0x300;
	uint32_t madt_len = 44 + 8 * nr_cpus + 12 + 2 * 10 + 6;
	if (nr_cpus == 0 || nr_cpus > 255 || madt - addr + madt_len > room)
		return -1;
	memset(ram + addr, 0, madt - addr + madt_len);

	uint8_t *t = ram + dsdt;
	header(t, "DSDT", 36 + sizeof(s5), 2);
	memcpy(t + 36, s5, sizeof(s5));
	seal(t);

	t = ram + facs; /* no header: a signature, a length, 64-byte aligned */
	memcpy(t, "FACS", 4);
	put_le32(t + 4, 64);
	t[32] = 2; /* version */

	t = ram + fadt;
	header(t, "FACP", 276, 6);
	put_le32(t + 36, 0); /* FIRMWARE_CTRL: zero when X_FIRMWARE_CTRL is set */
	put_le32(t + 40, (uint32_t)dsdt);
	put_le16(t + 46, ACPI_SCI_IRQ);
	/* SMI_CMD 0: already in ACPI mode, nothing to switch. */
	put_le32(t + 56, ACPI_PM1A_EVT);
	put_le32(t + 64, ACPI_PM1A_CNT);
	t[88] = 4;		   /* PM1_EVT_LEN */
	t[89] = 2;		   /* PM1_CNT_LEN */
	put_le16(t + 109, 1 << 1); /* IAPC_BOOT_ARCH: 8042 present */
	/* Flags: WBINVD, PROC_C1, no sleep button, RESET_REG_SUP. PWR_BUTTON
	 * (bit 4) clear: the power button is the fixed-feature one in PM1, which
	 * `ctl poweroff` presses. */
	put_le32(t + 112, (1u << 0) | (1u << 2) | (1u << 5) | (1u << 10));
	gas_io(t + 116, 0xcf9, 8); /* RESET_REG */
	t[128] = 0x06;		   /* RESET_VALUE: the 0xcf9 reset kvmhost handles */
	put_le16(t + 129, 0);	   /* ARM_BOOT_ARCH */
	t[131] = 3;		   /* minor version: FADT 6.3 */
	put_le64(t + 132, facs);   /* X_FIRMWARE_CTRL */
	put_le64(t + 140, dsdt);   /* X_DSDT */
	gas_io(t + 148, ACPI_PM1A_EVT, 32);
	gas_io(t + 172, ACPI_PM1A_CNT, 16);
	seal(t);

	t = ram + madt;
	header(t, "APIC", madt_len, 4);
	put_le32(t + 36, 0xfee00000u);
	put_le32(t + 40, 1); /* PCAT_COMPAT: there are 8259s too */
	uint8_t *e = t + 44;
	for (unsigned i = 0; i < nr_cpus; i++, e += 8) {
		e[0] = 0; /* processor local APIC */
		e[1] = 8;
		e[2] = (uint8_t)i;  /* ACPI processor id */
		e[3] = (uint8_t)i;  /* APIC id, as in CPUID */
		put_le32(e + 4, 1); /* enabled */
	}
	e[0] = 1; /* I/O APIC */
	e[1] = 12;
	e[2] = (uint8_t)nr_cpus;
	put_le32(e + 4, MPTABLE_IOAPIC_ADDR);
	put_le32(e + 8, 0);
	e += 12;
	e[0] = 2; /* interrupt source override: ISA IRQ 0 (PIT) on GSI 2 */
	e[1] = 10;
	e[2] = 0;
	e[3] = 0;
	put_le32(e + 4, 2);
	put_le16(e + 8, 0);
	e += 10;
	e[0] = 2; /* the SCI: level, active high, as kvmhost drives its lines */
	e[1] = 10;
	e[3] = ACPI_SCI_IRQ;
	put_le32(e + 4, ACPI_SCI_IRQ);
	put_le16(e + 8, 0x000d);
	e += 10;
	e[0] = 4; /* local APIC NMI on LINT1, every processor */
	e[1] = 6;
	e[2] = 0xff;
	put_le16(e + 3, 0);
	e[5] = 1;
	seal(t);

	t = ram + xsdt;
	header(t, "XSDT", 36 + 2 * 8, 1);
	put_le64(t + 36, fadt);
	put_le64(t + 44, madt);
	seal(t);

	t = ram + rsdp;
	memcpy(t, "RSD PTR ", 8);
	memcpy(t + 9, "KVMHST", 6);
	t[15] = 2; /* ACPI 2.0+: use the XSDT */
	put_le32(t + 20, 36);
	put_le64(t + 24, xsdt);
	t[8] = byte_checksum(t, 20);
	t[32] = byte_checksum(t, 36);
	return (int)(madt - addr + madt_len);
}
