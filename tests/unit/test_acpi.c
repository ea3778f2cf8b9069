/* The ACPI tables read as a guest reads them, through arch/x86/acpi_spec.h,
 * and the PM1a power button as its ACPI driver uses it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/acpi_spec.h"
#include "arch/x86/acpi_tables.h"
#include "devices/acpi_pm.h"

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

static const struct acpi_sdt_header *sdt(const uint8_t *ram, uint64_t addr, const char *sig)
{
	const struct acpi_sdt_header *h = (const void *)(ram + addr);
	assert_memory_equal(h->signature, sig, 4);
	assert_int_equal(sum(ram + addr, h->length), 0);
	return h;
}

/* What the MADT says, entry by entry, walked by the entries' own lengths. */
struct madt_seen {
	unsigned cpus, ioapics, nmis;
	uint8_t ioapic_id;
	int pit_gsi, sci_flags; /* -1: no override */
};

static void madt_entry(const uint8_t *e, struct madt_seen *seen)
{
	const struct acpi_madt_local_apic *lapic = (const void *)e;
	const struct acpi_madt_io_apic *io = (const void *)e;
	const struct acpi_madt_interrupt_override *o = (const void *)e;
	const struct acpi_madt_local_apic_nmi *nmi = (const void *)e;
	switch (e[0]) {
	case ACPI_MADT_LOCAL_APIC:
		/* One enabled local APIC per vCPU, ids 0, 1, ... as in CPUID. */
		assert_int_equal(lapic->header.length, sizeof(*lapic));
		assert_int_equal(lapic->apic_id, seen->cpus);
		assert_int_equal(lapic->processor_id, seen->cpus);
		assert_int_equal(lapic->flags & ACPI_MADT_ENABLED, ACPI_MADT_ENABLED);
		seen->cpus++;
		break;
	case ACPI_MADT_IO_APIC:
		assert_int_equal(io->header.length, sizeof(*io));
		assert_int_equal(io->address, 0xfec00000u);
		assert_int_equal(io->global_irq_base, 0);
		seen->ioapic_id = io->io_apic_id;
		seen->ioapics++;
		break;
	case ACPI_MADT_INTERRUPT_OVERRIDE:
		assert_int_equal(o->header.length, sizeof(*o));
		assert_int_equal(o->bus, 0);
		if (o->source_irq == 0)
			seen->pit_gsi = (int)o->global_irq;
		if (o->source_irq == ACPI_SCI_IRQ) {
			assert_int_equal(o->global_irq, ACPI_SCI_IRQ);
			seen->sci_flags = o->flags;
		}
		break;
	case ACPI_MADT_LOCAL_APIC_NMI:
		assert_int_equal(nmi->header.length, sizeof(*nmi));
		assert_int_equal(nmi->processor_id, ACPI_MADT_ALL_PROCESSORS);
		assert_int_equal(nmi->lint, 1);
		seen->nmis++;
		break;
	default:
		fail_msg("MADT entry type %u", e[0]);
	}
}

static void check_madt(const struct acpi_madt *madt, unsigned nr_cpus)
{
	assert_int_equal(madt->local_apic_address, 0xfee00000u);
	assert_int_equal(madt->flags & ACPI_MADT_PCAT_COMPAT, ACPI_MADT_PCAT_COMPAT);
	struct madt_seen seen = {.pit_gsi = -1, .sci_flags = -1};
	const uint8_t *t = (const void *)madt;
	uint32_t off = sizeof(*madt);
	while (off < madt->header.length) {
		const struct acpi_madt_entry_header *e = (const void *)(t + off);
		assert_true(e->length >= sizeof(*e));
		assert_true(off + e->length <= madt->header.length);
		madt_entry(t + off, &seen);
		off += e->length;
	}
	assert_int_equal(off, madt->header.length);
	assert_int_equal(seen.cpus, nr_cpus);
	assert_int_equal(seen.ioapics, 1);
	assert_true(seen.ioapic_id >= nr_cpus); /* no clash with a local APIC id */
	assert_int_equal(seen.nmis, 1);
	assert_int_equal(seen.pit_gsi, 2); /* the PIT is wired to pin 2 */
	/* The SCI is level-triggered, active high: how kvmhost drives it. */
	assert_int_equal(seen.sci_flags, ACPI_MADT_POLARITY_ACTIVE_HI | ACPI_MADT_TRIGGER_LEVEL);
}

/* The FADT leads to the FACS and the DSDT, and to the PM1a blocks and the
 * SCI that devices/acpi_pm implements. */
static void check_fadt(const uint8_t *ram, const struct acpi_fadt *fadt)
{
	assert_int_equal(fadt->header.length, sizeof(*fadt));
	assert_int_equal(fadt->header.revision, 6);
	assert_int_equal(fadt->pm1a_evt_blk, ACPI_PM1A_EVT);
	assert_int_equal(fadt->pm1a_cnt_blk, ACPI_PM1A_CNT);
	assert_int_equal(fadt->pm1_evt_len, ACPI_PM1A_EVT_LEN);
	assert_int_equal(fadt->pm1_cnt_len, ACPI_PM1A_CNT_LEN);
	assert_int_equal(fadt->x_pm1a_evt_blk.address, ACPI_PM1A_EVT);
	assert_int_equal(fadt->x_pm1a_evt_blk.space_id, ACPI_GAS_SYSTEM_IO);
	assert_int_equal(fadt->x_pm1a_evt_blk.bit_width, 8 * ACPI_PM1A_EVT_LEN);
	assert_int_equal(fadt->x_pm1a_cnt_blk.address, ACPI_PM1A_CNT);
	assert_int_equal(fadt->x_pm1a_cnt_blk.bit_width, 8 * ACPI_PM1A_CNT_LEN);
	assert_int_equal(fadt->sci_int, ACPI_SCI_IRQ);
	/* PWR_BUTTON clear: the fixed-feature power button, which kvmhost presses. */
	assert_int_equal(fadt->flags & ACPI_FADT_POWER_BUTTON, 0);
	assert_int_equal(fadt->flags & ACPI_FADT_RESET_REGISTER, ACPI_FADT_RESET_REGISTER);
	assert_int_equal(fadt->reset_reg.space_id, ACPI_GAS_SYSTEM_IO);
	assert_int_equal(fadt->reset_reg.address, 0xcf9);
	/* Only the 64-bit pointers: a guest must not see two that differ. */
	assert_int_equal(fadt->firmware_ctrl, 0);
	assert_int_equal(fadt->dsdt, fadt->x_dsdt);
	const struct acpi_facs *facs = (const void *)(ram + fadt->x_firmware_ctrl);
	assert_int_equal(fadt->x_firmware_ctrl % 64, 0);
	assert_memory_equal(facs->signature, "FACS", 4);
	assert_int_equal(facs->length, sizeof(*facs));
	const struct acpi_sdt_header *dsdt = sdt(ram, fadt->x_dsdt, "DSDT");
	/* Name(_S5_, Package(2){5, 0}): SLP_TYP 5 means power off. */
	assert_int_equal(dsdt->length, sizeof(*dsdt) + 11);
	assert_memory_equal(dsdt + 1, "\x08_S5_\x12\x05\x02\x0a\x05\x00", 11);
}

/* Every table the RSDP leads to is there, whole, checksums to zero and says
 * what the guest needs, for a range of vCPU counts. */
static void tables(void **state)
{
	(void)state;
	const unsigned configs[] = {1, 2, 3, 4, 64, 255};
	uint8_t *ram = malloc(1 << 20);
	for (size_t c = 0; c < sizeof(configs) / sizeof(configs[0]); c++) {
		memset(ram, 0xa5, 1 << 20);
		int used = acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, configs[c]);
		assert_true(used > 0);
		assert_int_equal(ram[ACPI_RSDP_ADDR + (unsigned)used], 0xa5); /* no more */
		const struct acpi_rsdp *rsdp = (const void *)(ram + ACPI_RSDP_ADDR);
		assert_memory_equal(rsdp->signature, ACPI_RSDP_SIGNATURE, 8);
		assert_int_equal(sum((const void *)rsdp, offsetof(struct acpi_rsdp, length)), 0);
		assert_int_equal(sum((const void *)rsdp, rsdp->length), 0);
		assert_int_equal(rsdp->revision, 2);
		const struct acpi_xsdt *xsdt = (const void *)sdt(ram, rsdp->xsdt_address, "XSDT");
		assert_int_equal((xsdt->header.length - sizeof(xsdt->header)) / 8, 2);
		check_fadt(ram, (const void *)sdt(ram, xsdt->entry[0], "FACP"));
		const struct acpi_sdt_header *madt = sdt(ram, xsdt->entry[1], "APIC");
		/* The MADT is last: the tables end where it does. */
		assert_int_equal(xsdt->entry[1] + madt->length, ACPI_RSDP_ADDR + (unsigned)used);
		check_madt((const void *)madt, configs[c]);
	}
	/* Too little room, no vCPU, more vCPUs than APIC ids: refused. */
	int used = acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, 3);
	assert_int_equal(acpi_write_tables(ram, ACPI_RSDP_ADDR, (size_t)used - 1, 3), -1);
	assert_int_equal(acpi_write_tables(ram, ACPI_RSDP_ADDR, (size_t)used, 3), used);
	assert_int_equal(acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, 0), -1);
	assert_int_equal(acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, 256), -1);
	free(ram);
}

static int sci = -1, exits;

static void fake_irq(void *opaque, uint32_t gsi, bool level)
{
	(void)opaque;
	assert_int_equal(gsi, ACPI_SCI_IRQ);
	sci = level;
}

static void fake_exit(void *opaque, enum vm_exit_reason reason, int code)
{
	(void)opaque;
	assert_int_equal(reason, VM_EXIT_POWEROFF);
	assert_int_equal(code, 0);
	exits++;
}

static uint16_t pm_read(struct acpi_pm *pm, const struct device_ops *ops, uint64_t off)
{
	uint16_t v = 0;
	ops->access(pm, 0, off, (uint8_t *)&v, 2, false);
	return v;
}

static void pm_write(struct acpi_pm *pm, const struct device_ops *ops, uint64_t off, uint16_t v)
{
	ops->access(pm, 0, off, (uint8_t *)&v, 2, true);
}

/* The fixed power button as a guest's ACPI driver sees it. */
static void power_button(void **state)
{
	(void)state;
	const struct device_host host = {.set_irq = fake_irq, .request_exit = fake_exit};
	struct acpi_pm pm;
	acpi_pm_init(&pm, &host);
	assert_int_equal(pm_read(&pm, &acpi_pm_cnt_ops, 0) & ACPI_SCI_EN, ACPI_SCI_EN);
	/* Pressed before the guest enabled the event: pending, no SCI yet. */
	assert_false(acpi_pm_press_power_button(&pm));
	assert_int_equal(sci, -1);
	assert_int_equal(pm_read(&pm, &acpi_pm_evt_ops, 0), ACPI_PWRBTN);
	/* Enabling it raises the SCI at once; so does a byte-wide write. */
	uint8_t en_hi = ACPI_PWRBTN >> 8;
	acpi_pm_evt_ops.access(&pm, 0, 3, &en_hi, 1, true);
	assert_int_equal(sci, 1);
	assert_int_equal(pm_read(&pm, &acpi_pm_evt_ops, 2), ACPI_PWRBTN);
	/* Writing 0 changes nothing; writing the bit clears it and the line. */
	pm_write(&pm, &acpi_pm_evt_ops, 0, 0);
	assert_int_equal(sci, 1);
	pm_write(&pm, &acpi_pm_evt_ops, 0, ACPI_PWRBTN);
	assert_int_equal(sci, 0);
	assert_int_equal(pm_read(&pm, &acpi_pm_evt_ops, 0), 0);
	/* Pressed with the event enabled: the SCI at once. */
	assert_true(acpi_pm_press_power_button(&pm));
	assert_int_equal(sci, 1);
	/* Saved and restored into a fresh PM block: the same pending event. */
	struct state_writer w = {0};
	acpi_pm_evt_ops.save(&pm, &w);
	struct acpi_pm copy;
	sci = -1;
	acpi_pm_init(&copy, &host);
	struct state_reader r = state_reader_init(w.buf, w.len);
	assert_int_equal(acpi_pm_evt_ops.restore(&copy, &r), 0);
	assert_int_equal(state_reader_done(&r), 0);
	assert_int_equal(sci, 1);
	for (size_t n = 0; n < w.len; n++) {
		r = state_reader_init(w.buf, n);
		assert_int_not_equal(acpi_pm_evt_ops.restore(&copy, &r), 0);
	}
	state_writer_free(&w);
	/* S1 is not power off; S5 with SLP_EN is. */
	pm_write(&pm, &acpi_pm_cnt_ops, 0, (1u << 10) | ACPI_SLP_EN);
	assert_int_equal(exits, 0);
	pm_write(&pm, &acpi_pm_cnt_ops, 0, (ACPI_SLP_TYP_S5 << 10) | ACPI_SLP_EN);
	assert_int_equal(exits, 1);
	acpi_pm_destroy(&pm);
	acpi_pm_destroy(&copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(tables),
					   cmocka_unit_test(power_button)};
	return cmocka_run_group_tests_name("acpi", tests, NULL, NULL);
}
