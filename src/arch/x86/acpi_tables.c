/* The ACPI tables a Linux guest boots with: RSDP -> XSDT -> FADT (-> FACS,
 * DSDT) and MADT, filled through the types of arch/x86/acpi_spec.h. */
#include "arch/x86/acpi_tables.h"

#include <string.h>

#include "arch/x86/acpi_spec.h"
#include "arch/x86/mptable.h"
#include "devices/acpi_pm.h"
#include "devices/pc_reset.h"
#include "util/bytes.h"

/* Name(_S5_, Package(2){5, 0}): what SLP_TYP means "soft off". */
static const uint8_t s5_aml[] = {0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00};

struct dsdt {
	struct acpi_sdt_header header;
	uint8_t aml[sizeof(s5_aml)];
} __attribute__((packed));

/* Where each table lies from the RSDP: fixed, whatever the vCPU count, with
 * the MADT, which grows with it, last. */
enum {
	RSDP_AT = 0x0,
	XSDT_AT = 0x40,
	FACS_AT = 0x100,
	FADT_AT = 0x140,
	DSDT_AT = 0x280,
	MADT_AT = 0x300,
};
_Static_assert(XSDT_AT >= RSDP_AT + sizeof(struct acpi_rsdp), "RSDP overlaps XSDT");
_Static_assert(FACS_AT >= XSDT_AT + sizeof(struct acpi_xsdt), "XSDT overlaps FACS");
_Static_assert(FACS_AT % 64 == 0, "the FACS must be 64-byte aligned");
_Static_assert(FADT_AT >= FACS_AT + sizeof(struct acpi_facs), "FACS overlaps FADT");
_Static_assert(DSDT_AT >= FADT_AT + sizeof(struct acpi_fadt), "FADT overlaps DSDT");
_Static_assert(MADT_AT >= DSDT_AT + sizeof(struct dsdt), "DSDT overlaps MADT");

#define LAPIC_ADDR 0xfee00000u

/* The MADT's length: its header, a local APIC per vCPU, the IOAPIC, two
 * overrides (the PIT, the SCI) and the LINT1 NMI. */
static uint32_t madt_length(unsigned nr_cpus)
{
	return (uint32_t)(sizeof(struct acpi_madt) + nr_cpus * sizeof(struct acpi_madt_local_apic) +
			  sizeof(struct acpi_madt_io_apic) +
			  2 * sizeof(struct acpi_madt_interrupt_override) +
			  sizeof(struct acpi_madt_local_apic_nmi));
}

/* Copies a structure to guest memory, which owes it no alignment. */
static uint8_t *emit(uint8_t *p, const void *s, size_t size)
{
	memcpy(p, s, size);
	return p + size;
}

static struct acpi_sdt_header sdt_header(const char sig[4], uint32_t len, uint8_t rev)
{
	struct acpi_sdt_header h = {
		.length = len,
		.revision = rev,
		.oem_revision = 1,
		.creator_revision = 1,
	};
	memcpy(h.signature, sig, sizeof(h.signature));
	memcpy(h.oem_id, "KVMHST", sizeof(h.oem_id));
	memcpy(h.oem_table_id, "KVMHOST ", sizeof(h.oem_table_id));
	memcpy(h.creator_id, "KVMH", sizeof(h.creator_id));
	return h;
}

/* Sets the checksum of the table at `t`, in place: last, once it is whole. */
static void seal(uint8_t *t, uint32_t len)
{
	t[offsetof(struct acpi_sdt_header, checksum)] = 0;
	t[offsetof(struct acpi_sdt_header, checksum)] = byte_checksum(t, len);
}

/* A Generic Address Structure in system I/O space. */
static struct acpi_gas gas_io(uint16_t port, uint8_t bits)
{
	return (struct acpi_gas){
		.space_id = ACPI_GAS_SYSTEM_IO,
		.bit_width = bits,
		.access_size = bits <= 8    ? ACPI_GAS_ACCESS_U8
			       : bits <= 16 ? ACPI_GAS_ACCESS_U16
					    : ACPI_GAS_ACCESS_U32,
		.address = port,
	};
}

static void write_fadt(uint8_t *t, uint64_t facs, uint64_t dsdt)
{
	const struct acpi_fadt fadt = {
		.header = sdt_header("FACP", sizeof(fadt), 6),
		.firmware_ctrl = 0, /* zero when X_FIRMWARE_CTRL is set */
		.dsdt = (uint32_t)dsdt,
		.sci_int = ACPI_SCI_IRQ,
		.smi_cmd = 0, /* already in ACPI mode, nothing to switch */
		.pm1a_evt_blk = ACPI_PM1A_EVT,
		.pm1a_cnt_blk = ACPI_PM1A_CNT,
		.pm1_evt_len = ACPI_PM1A_EVT_LEN,
		.pm1_cnt_len = ACPI_PM1A_CNT_LEN,
		.iapc_boot_arch = ACPI_FADT_8042,
		/* ACPI_FADT_POWER_BUTTON clear: the power button is the
		 * fixed-feature one in PM1, which `ctl poweroff` presses. */
		.flags = ACPI_FADT_WBINVD | ACPI_FADT_C1_SUPPORTED | ACPI_FADT_SLEEP_BUTTON |
			 ACPI_FADT_RESET_REGISTER,
		.reset_reg = gas_io(RST_CNT_PORT, 8),
		.reset_value = 0x06,	 /* SYS_RST | RST_CPU: devices/pc_reset ends the VM */
		.fadt_minor_version = 3, /* FADT 6.3 */
		.x_firmware_ctrl = facs,
		.x_dsdt = dsdt,
		.x_pm1a_evt_blk = gas_io(ACPI_PM1A_EVT, ACPI_PM1A_EVT_LEN * 8),
		.x_pm1a_cnt_blk = gas_io(ACPI_PM1A_CNT, ACPI_PM1A_CNT_LEN * 8),
	};
	emit(t, &fadt, sizeof(fadt));
	seal(t, sizeof(fadt));
}

/* The ISA IRQs that are not identity-mapped or not edge/high as ISA's are:
 * the PIT on GSI 2, and the SCI, level and active high as kvmhost drives its
 * lines. Then NMI on every local APIC's LINT1. */
static uint8_t *write_madt_interrupts(uint8_t *e)
{
	const struct acpi_madt_interrupt_override overrides[] = {
		{
			.header = {ACPI_MADT_INTERRUPT_OVERRIDE,
				   sizeof(struct acpi_madt_interrupt_override)},
			.source_irq = 0,
			.global_irq = 2,
			.flags = ACPI_MADT_POLARITY_CONFORMS | ACPI_MADT_TRIGGER_CONFORMS,
		},
		{
			.header = {ACPI_MADT_INTERRUPT_OVERRIDE,
				   sizeof(struct acpi_madt_interrupt_override)},
			.source_irq = ACPI_SCI_IRQ,
			.global_irq = ACPI_SCI_IRQ,
			.flags = ACPI_MADT_POLARITY_ACTIVE_HI | ACPI_MADT_TRIGGER_LEVEL,
		},
	};
	e = emit(e, overrides, sizeof(overrides));
	const struct acpi_madt_local_apic_nmi nmi = {
		.header = {ACPI_MADT_LOCAL_APIC_NMI, sizeof(nmi)},
		.processor_id = ACPI_MADT_ALL_PROCESSORS,
		.flags = ACPI_MADT_POLARITY_CONFORMS | ACPI_MADT_TRIGGER_CONFORMS,
		.lint = 1,
	};
	return emit(e, &nmi, sizeof(nmi));
}

static void write_madt(uint8_t *t, unsigned nr_cpus)
{
	const struct acpi_madt madt = {
		.header = sdt_header("APIC", madt_length(nr_cpus), 4),
		.local_apic_address = LAPIC_ADDR,
		.flags = ACPI_MADT_PCAT_COMPAT,
	};
	uint8_t *e = emit(t, &madt, sizeof(madt));
	for (unsigned i = 0; i < nr_cpus; i++) {
		const struct acpi_madt_local_apic lapic = {
			.header = {ACPI_MADT_LOCAL_APIC, sizeof(lapic)},
			.processor_id = (uint8_t)i,
			.apic_id = (uint8_t)i, /* as in CPUID */
			.flags = ACPI_MADT_ENABLED,
		};
		e = emit(e, &lapic, sizeof(lapic));
	}
	const struct acpi_madt_io_apic ioapic = {
		.header = {ACPI_MADT_IO_APIC, sizeof(ioapic)},
		.io_apic_id = (uint8_t)nr_cpus, /* after the CPUs', as in the MP table */
		.address = MPTABLE_IOAPIC_ADDR,
		.global_irq_base = 0,
	};
	e = emit(e, &ioapic, sizeof(ioapic));
	write_madt_interrupts(e);
	seal(t, madt.header.length);
}

static void write_rsdp(uint8_t *t, uint64_t xsdt)
{
	struct acpi_rsdp rsdp = {
		.revision = 2, /* ACPI 2.0+: use the XSDT */
		.length = sizeof(rsdp),
		.xsdt_address = xsdt,
	};
	memcpy(rsdp.signature, ACPI_RSDP_SIGNATURE, sizeof(rsdp.signature));
	memcpy(rsdp.oem_id, "KVMHST", sizeof(rsdp.oem_id));
	/* The first checksum covers what an ACPI 1.0 reader knows of it. */
	rsdp.checksum = byte_checksum((const uint8_t *)&rsdp, offsetof(struct acpi_rsdp, length));
	rsdp.extended_checksum = byte_checksum((const uint8_t *)&rsdp, sizeof(rsdp));
	emit(t, &rsdp, sizeof(rsdp));
}

int acpi_write_tables(uint8_t *ram, uint64_t addr, size_t room, unsigned nr_cpus)
{
	const uint64_t xsdt = addr + XSDT_AT, facs = addr + FACS_AT, fadt = addr + FADT_AT,
		       dsdt = addr + DSDT_AT, madt = addr + MADT_AT;
	if (nr_cpus == 0 || nr_cpus > 255 || MADT_AT + madt_length(nr_cpus) > room)
		return -1;
	size_t used = MADT_AT + madt_length(nr_cpus);
	memset(ram + addr, 0, used); /* the gaps between tables too */

	struct dsdt d = {.header = sdt_header("DSDT", sizeof(d), 2)};
	memcpy(d.aml, s5_aml, sizeof(d.aml));
	emit(ram + dsdt, &d, sizeof(d));
	seal(ram + dsdt, sizeof(d));

	struct acpi_facs f = {.length = sizeof(f), .version = 2};
	memcpy(f.signature, "FACS", sizeof(f.signature));
	emit(ram + facs, &f, sizeof(f));

	write_fadt(ram + fadt, facs, dsdt);
	write_madt(ram + madt, nr_cpus);

	struct acpi_xsdt x = {
		.header = sdt_header("XSDT", sizeof(x), 1),
		.entry = {fadt, madt},
	};
	emit(ram + xsdt, &x, sizeof(x));
	seal(ram + xsdt, sizeof(x));

	write_rsdp(ram + addr + RSDP_AT, xsdt);
	return (int)used;
}
