/* The ACPI tables a Linux guest boots with: RSDP -> XSDT -> FADT (-> FACS,
 * DSDT) and MADT, filled through the types of arch/x86/acpi_spec.h; the
 * DSDT names the board's virtio-mmio devices, as QEMU's microvm does. */
#include "arch/x86/acpi_tables.h"

#include <stdlib.h>
#include <string.h>

#include "arch/x86/acpi_spec.h"
#include "arch/x86/aml.h"
#include "arch/x86/mptable.h"
#include "devices/acpi_pm.h"
#include "devices/pc_reset.h"
#include "util/bytes.h"

/* Name(_S5_, Package(2){5, 0}): what SLP_TYP means "soft off". */
static const uint8_t s5_aml[] = {0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00};

/* Where each table lies from the RSDP: fixed, but for the MADT, which grows
 * with the vCPUs, and the DSDT after it, which grows with the devices. */
enum {
	RSDP_AT = 0x0,
	XSDT_AT = 0x40,
	FACS_AT = 0x100,
	FADT_AT = 0x140,
	MADT_AT = 0x280,
};
_Static_assert(XSDT_AT >= RSDP_AT + sizeof(struct acpi_rsdp), "RSDP overlaps XSDT");
_Static_assert(FACS_AT >= XSDT_AT + sizeof(struct acpi_xsdt), "XSDT overlaps FACS");
_Static_assert(FACS_AT % 64 == 0, "the FACS must be 64-byte aligned");
_Static_assert(FADT_AT >= FACS_AT + sizeof(struct acpi_facs), "FACS overlaps FADT");
_Static_assert(MADT_AT >= FADT_AT + sizeof(struct acpi_fadt), "FADT overlaps MADT");

#define LAPIC_ADDR 0xfee00000u

/* A device's line among the ISA IRQs, which Linux takes as edge-triggered
 * unless the MADT says otherwise; kvmhost's lines are level-triggered. */
static bool isa_line(const struct acpi_mmio_device *d)
{
	return d->gsi < 16;
}

static unsigned isa_lines(const struct acpi_board *b)
{
	unsigned n = 0;
	for (unsigned i = 0; i < b->nr_mmio; i++)
		n += isa_line(&b->mmio[i]);
	return n;
}

/* The MADT's length: its header, a local APIC per vCPU, the IOAPIC, the
 * overrides (the PIT, the SCI, devices on ISA lines) and the LINT1 NMI. */
static uint32_t madt_length(const struct acpi_board *b)
{
	return (uint32_t)(sizeof(struct acpi_madt) +
			  b->nr_cpus * sizeof(struct acpi_madt_local_apic) +
			  sizeof(struct acpi_madt_io_apic) +
			  (2 + isa_lines(b)) * sizeof(struct acpi_madt_interrupt_override) +
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
		/* No keyboard controller (pc_reset's i8042 only resets), no
		 * VGA, no CMOS clock: Linux then skips probing them - each
		 * probe polls ports with interrupts off for up to seconds -
		 * and takes its wall clock from kvmclock. */
		.iapc_boot_arch = ACPI_FADT_NO_VGA | ACPI_FADT_NO_CMOS_RTC,
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

static struct acpi_madt_interrupt_override level_high(uint32_t irq)
{
	return (struct acpi_madt_interrupt_override){
		.header = {ACPI_MADT_INTERRUPT_OVERRIDE,
			   sizeof(struct acpi_madt_interrupt_override)},
		.source_irq = (uint8_t)irq,
		.global_irq = irq,
		.flags = ACPI_MADT_POLARITY_ACTIVE_HI | ACPI_MADT_TRIGGER_LEVEL,
	};
}

/* The ISA IRQs that are not identity-mapped or not edge/high as ISA's are:
 * the PIT on GSI 2, and the SCI and devices' lines, level and active high
 * as kvmhost drives them. Then NMI on every local APIC's LINT1. */
static uint8_t *write_madt_interrupts(uint8_t *e, const struct acpi_board *b)
{
	const struct acpi_madt_interrupt_override overrides[] = {
		{
			.header = {ACPI_MADT_INTERRUPT_OVERRIDE,
				   sizeof(struct acpi_madt_interrupt_override)},
			.source_irq = 0,
			.global_irq = 2,
			.flags = ACPI_MADT_POLARITY_CONFORMS | ACPI_MADT_TRIGGER_CONFORMS,
		},
		level_high(ACPI_SCI_IRQ),
	};
	e = emit(e, overrides, sizeof(overrides));
	for (unsigned i = 0; i < b->nr_mmio; i++) {
		if (isa_line(&b->mmio[i])) {
			const struct acpi_madt_interrupt_override o = level_high(b->mmio[i].gsi);
			e = emit(e, &o, sizeof(o));
		}
	}
	const struct acpi_madt_local_apic_nmi nmi = {
		.header = {ACPI_MADT_LOCAL_APIC_NMI, sizeof(nmi)},
		.processor_id = ACPI_MADT_ALL_PROCESSORS,
		.flags = ACPI_MADT_POLARITY_CONFORMS | ACPI_MADT_TRIGGER_CONFORMS,
		.lint = 1,
	};
	return emit(e, &nmi, sizeof(nmi));
}

static void write_madt(uint8_t *t, const struct acpi_board *b)
{
	const unsigned nr_cpus = b->nr_cpus;
	const struct acpi_madt madt = {
		.header = sdt_header("APIC", madt_length(b), 4),
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
	write_madt_interrupts(e, b);
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

/* Device(VRnn) { _HID "LNRO0005", _UID n, _CRS: its window and line }, the
 * binding virtio_mmio's ACPI match table looks for. */
static void dsdt_virtio_mmio(struct aml *a, unsigned index, const struct acpi_mmio_device *d)
{
	const char seg[5] = {'V', 'R', (char)('0' + index / 10), (char)('0' + index % 10), 0};
	size_t dev = aml_device(a, seg);
	aml_name_str(a, "_HID", "LNRO0005");
	aml_name_int(a, "_UID", index);
	size_t crs = aml_resources(a, "_CRS");
	aml_memory32_fixed(a, (uint32_t)d->base, d->size, true);
	aml_interrupt(a, d->gsi, true, false);
	aml_resources_end(a, crs);
	aml_close(a, dev);
}

/* The DSDT at `t`, with at most `room` bytes; its length, or 0 if it does
 * not fit. The AML is built aside: the encoder writes ahead of where its
 * packages end up, and nothing past the tables may change. */
static size_t write_dsdt(uint8_t *t, size_t room, const struct acpi_board *b)
{
	const size_t hdr = sizeof(struct acpi_sdt_header);
	const size_t slack = 64; /* for lengths reserved longer than they end up */
	uint8_t *scratch = room > hdr ? malloc(room - hdr + slack) : NULL;
	struct aml a;
	if (!scratch)
		return 0;
	aml_init(&a, scratch, room - hdr + slack);
	aml_bytes(&a, s5_aml, sizeof(s5_aml));
	size_t sb = aml_scope(&a, "\\_SB_");
	for (unsigned i = 0; i < b->nr_mmio; i++)
		dsdt_virtio_mmio(&a, i, &b->mmio[i]);
	aml_close(&a, sb);
	size_t len = a.overflow || hdr + a.len > room ? 0 : hdr + a.len;
	if (len) {
		const struct acpi_sdt_header h = sdt_header("DSDT", (uint32_t)len, 2);
		emit(emit(t, &h, hdr), scratch, a.len);
		seal(t, h.length);
	}
	free(scratch);
	return len;
}

static bool board_valid(const struct acpi_board *b)
{
	if (b->nr_cpus == 0 || b->nr_cpus > 255 || b->nr_mmio > ACPI_MAX_MMIO_DEVICES)
		return false;
	for (unsigned i = 0; i < b->nr_mmio; i++)
		if (b->mmio[i].base > UINT32_MAX - b->mmio[i].size || b->mmio[i].gsi > UINT8_MAX)
			return false;
	return true;
}

int acpi_write_tables(uint8_t *ram, uint64_t addr, size_t room, const struct acpi_board *b)
{
	if (!board_valid(b) || MADT_AT + madt_length(b) > room)
		return -1;
	const size_t dsdt_at = (MADT_AT + madt_length(b) + 15) & ~(size_t)15;
	const uint64_t xsdt = addr + XSDT_AT, facs = addr + FACS_AT, fadt = addr + FADT_AT,
		       dsdt = addr + dsdt_at, madt = addr + MADT_AT;
	if (dsdt_at >= room)
		return -1;
	memset(ram + addr, 0, dsdt_at); /* the gaps between tables too */
	size_t dsdt_len = write_dsdt(ram + dsdt, room - dsdt_at, b);
	if (!dsdt_len)
		return -1;

	struct acpi_facs f = {.length = sizeof(f), .version = 2};
	memcpy(f.signature, "FACS", sizeof(f.signature));
	emit(ram + facs, &f, sizeof(f));

	write_fadt(ram + fadt, facs, dsdt);
	write_madt(ram + madt, b);

	struct acpi_xsdt x = {
		.header = sdt_header("XSDT", sizeof(x), 1),
		.entry = {fadt, madt},
	};
	emit(ram + xsdt, &x, sizeof(x));
	seal(ram + xsdt, sizeof(x));

	write_rsdp(ram + addr + RSDP_AT, xsdt);
	return (int)(dsdt_at + dsdt_len);
}
