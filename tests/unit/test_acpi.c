/* The ACPI tables read as a guest reads them, through arch/x86/acpi_spec.h,
 * and the PM1a power button as its ACPI driver uses it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	uint32_t level_isa;	/* ISA IRQs overridden to level, active high */
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
		} else if (o->source_irq != 0) {
			assert_int_equal(o->global_irq, o->source_irq);
			assert_int_equal(o->flags,
					 ACPI_MADT_POLARITY_ACTIVE_HI | ACPI_MADT_TRIGGER_LEVEL);
			seen->level_isa |= 1u << o->source_irq;
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

static void check_madt(const struct acpi_madt *madt, const struct acpi_board *b)
{
	const unsigned nr_cpus = b->nr_cpus;
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
	/* So is every device's line; Linux takes an ISA IRQ as edge otherwise. */
	uint32_t want = 0;
	for (unsigned i = 0; i < b->nr_mmio; i++)
		if (b->mmio[i].gsi < 16)
			want |= 1u << b->mmio[i].gsi;
	assert_int_equal(seen.level_isa, want);
}

/* Each device in the DSDT as ACPI 6.4's resource descriptors spell it
 * (section 6.4.3): its window, read-write, and its line, consumed, level,
 * active high, exclusive; one LNRO0005 (virtio-mmio) name per device. */
static void check_dsdt_devices(const struct acpi_sdt_header *dsdt, const struct acpi_board *b)
{
	const uint8_t *aml = (const uint8_t *)(dsdt + 1);
	size_t n = dsdt->length - sizeof(*dsdt);
	unsigned hids = 0;
	for (const uint8_t *p = aml; (p = memmem(p, n - (size_t)(p - aml), "LNRO0005", 9)); p++)
		hids++;
	assert_int_equal(hids, b->nr_mmio);
	for (unsigned i = 0; i < b->nr_mmio; i++) {
		const struct acpi_mmio_device *d = &b->mmio[i];
		uint8_t mem[12] = {0x86, 9, 0, 1}, irq[9] = {0x89, 6, 0, 0x01, 1};
		memcpy(mem + 4, &(uint32_t){(uint32_t)d->base}, 4);
		memcpy(mem + 8, &d->size, 4);
		memcpy(irq + 5, &d->gsi, 4);
		const uint8_t *at = memmem(aml, n, mem, sizeof(mem));
		assert_non_null(at);
		/* The line follows its window, in the same template. */
		assert_memory_equal(at + sizeof(mem), irq, sizeof(irq));
	}
}

/* The FADT leads to the FACS and the DSDT, and to the PM1a blocks and the
 * SCI that devices/acpi_pm implements. */
static void check_fadt(const uint8_t *ram, const struct acpi_fadt *fadt)
{
	assert_int_equal(fadt->header.length, sizeof(*fadt));
	assert_int_equal(fadt->header.revision, 6);
	assert_int_equal(fadt->iapc_boot_arch, ACPI_FADT_NO_VGA | ACPI_FADT_NO_CMOS_RTC);
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
	assert_memory_equal(dsdt + 1, "\x08_S5_\x12\x05\x02\x0a\x05\x00", 11);
}

/* Boards the tests describe: no devices; a disk; disks and nets as
 * core/vm.c places them (disks on ISA lines, nets from GSI 16). */
static const struct acpi_mmio_device one_disk[] = {{0xd0000000, 0x1000, 5}};
static const struct acpi_mmio_device many[] = {
	{0xd0000000, 0x1000, 5},  {0xd0001000, 0x1000, 6},  {0xd0002000, 0x1000, 7},
	{0xd0003000, 0x1000, 10}, {0xd0004000, 0x1000, 11}, {0xd0005000, 0x1000, 12},
	{0xd0006000, 0x1000, 14}, {0xd0007000, 0x1000, 15}, {0xd0008000, 0x1000, 16},
	{0xd0009000, 0x1000, 17}, {0xd000a000, 0x1000, 18}, {0xd000b000, 0x1000, 19},
};

/* Every table the RSDP leads to is there, whole, checksums to zero and says
 * what the guest needs, for a range of vCPU counts. */
static void tables(void **state)
{
	(void)state;
	const struct acpi_board configs[] = {
		{1, NULL, 0}, {2, one_disk, 1}, {3, many, 12},
		{4, many, 3}, {64, many, 12},	{255, many, 12},
	};
	uint8_t *ram = malloc(1 << 20);
	for (size_t c = 0; c < sizeof(configs) / sizeof(configs[0]); c++) {
		memset(ram, 0xa5, 1 << 20);
		int used = acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, &configs[c]);
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
		check_madt((const void *)madt, &configs[c]);
		const struct acpi_fadt *fadt = (const void *)(ram + xsdt->entry[0]);
		const struct acpi_sdt_header *dsdt = sdt(ram, fadt->x_dsdt, "DSDT");
		check_dsdt_devices(dsdt, &configs[c]);
		/* The DSDT is last: the tables end where it does. */
		assert_true(fadt->x_dsdt >= xsdt->entry[1] + madt->length);
		assert_int_equal(fadt->x_dsdt + dsdt->length, ACPI_RSDP_ADDR + (unsigned)used);
	}
	/* Too little room, no vCPU, more vCPUs than APIC ids, a window above
	 * 4 GiB (Memory32Fixed cannot say it): refused. */
	struct acpi_board b = {3, many, 12};
	int used = acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, &b);
	assert_int_equal(acpi_write_tables(ram, ACPI_RSDP_ADDR, (size_t)used - 1, &b), -1);
	assert_int_equal(acpi_write_tables(ram, ACPI_RSDP_ADDR, (size_t)used, &b), used);
	b.nr_cpus = 0;
	assert_int_equal(acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, &b), -1);
	b.nr_cpus = 256;
	assert_int_equal(acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, &b), -1);
	const struct acpi_mmio_device high[] = {{0x100000000ull, 0x1000, 5}};
	b = (struct acpi_board){1, high, 1};
	assert_int_equal(acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, &b), -1);
	free(ram);
}

static size_t count(const char *text, const char *what)
{
	size_t n = 0;
	for (const char *p = text; (p = strstr(p, what)); p++)
		n++;
	return n;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static const size_t max = 1 << 20;
	char *text = calloc(1, max + 1);
	assert_non_null(text);
	(void)!fread(text, 1, max, f);
	fclose(f);
	return text;
}

/* The DSDT as ACPICA's own disassembler reads it: the same interpreter a
 * Linux kernel runs it with, not this test's idea of AML. */
static void dsdt_as_acpica_reads_it(void **state)
{
	(void)state;
	if (system("command -v iasl >/dev/null 2>&1"))
		skip(); /* tools/setup.sh installs acpica-tools */
	struct acpi_board b = {2, many, 12};
	uint8_t *ram = calloc(1, 1 << 20);
	assert_true(acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, &b) > 0);
	const struct acpi_rsdp *rsdp = (const void *)(ram + ACPI_RSDP_ADDR);
	const struct acpi_xsdt *xsdt = (const void *)(ram + rsdp->xsdt_address);
	const struct acpi_fadt *fadt = (const void *)(ram + xsdt->entry[0]);
	const struct acpi_sdt_header *dsdt = (const void *)(ram + fadt->x_dsdt);
	char dir[] = "/tmp/kvmhost-dsdt-XXXXXX", path[64], cmd[160];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(dsdt, 1, dsdt->length, f), dsdt->length);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.dat >iasl.log 2>&1", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/dsdt.dsl", dir);
	char *asl = read_text(path), want[64];
	assert_int_equal(count(asl, "Name (_S5, Package (0x02)"), 1);
	assert_int_equal(count(asl, "Name (_HID, \"LNRO0005\")"), b.nr_mmio);
	assert_int_equal(count(asl, "Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive"),
			 b.nr_mmio);
	for (unsigned i = 0; i < b.nr_mmio; i++) {
		snprintf(want, sizeof(want), "Device (VR%02u)", i);
		assert_int_equal(count(asl, want), 1);
		snprintf(want, sizeof(want), "0x%08X,         // Address Base",
			 (unsigned)many[i].base);
		assert_int_equal(count(asl, want), 1);
		snprintf(want, sizeof(want), "0x%08X,\n", many[i].gsi);
		assert_int_equal(count(asl, want), 1);
	}
	free(asl);
	free(ram);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
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
	device_save(&acpi_pm_evt_ops, &pm, &w);
	struct acpi_pm copy;
	sci = -1;
	acpi_pm_init(&copy, &host);
	struct state_reader r = state_reader_init(w.buf, w.len);
	assert_int_equal(device_restore(&acpi_pm_evt_ops, &copy, &r), 0);
	assert_int_equal(state_reader_done(&r), 0);
	assert_int_equal(sci, 1);
	for (size_t n = 0; n < w.len; n++) {
		r = state_reader_init(w.buf, n);
		assert_int_not_equal(device_restore(&acpi_pm_evt_ops, &copy, &r), 0);
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
					   cmocka_unit_test(dsdt_as_acpica_reads_it),
					   cmocka_unit_test(power_button)};
	return cmocka_run_group_tests_name("acpi", tests, NULL, NULL);
}
