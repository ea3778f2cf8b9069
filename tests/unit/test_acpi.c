#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/acpi_tables.h"
#include "devices/acpi_pm.h"
#include "util/bytes.h"

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* Every table the RSDP leads to is there, whole, and checksums to zero. */
static void tables(void **state)
{
	(void)state;
	uint8_t *ram = calloc(1, 1 << 20);
	assert_true(acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, 3) > 0);
	const uint8_t *rsdp = ram + ACPI_RSDP_ADDR;
	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(sum(rsdp, 20), 0);
	assert_int_equal(sum(rsdp, 36), 0);
	assert_int_equal(rsdp[15], 2);
	const uint8_t *xsdt = ram + get_le64(rsdp + 24);
	assert_memory_equal(xsdt, "XSDT", 4);
	assert_int_equal(sum(xsdt, get_le32(xsdt + 4)), 0);
	assert_int_equal(get_le32(xsdt + 4), 36 + 16);
	const uint8_t *fadt = ram + get_le64(xsdt + 36), *madt = ram + get_le64(xsdt + 44);
	assert_memory_equal(fadt, "FACP", 4);
	assert_int_equal(get_le32(fadt + 4), 276);
	assert_int_equal(sum(fadt, 276), 0);
	assert_int_equal(get_le32(fadt + 64), ACPI_PM1A_CNT);
	assert_int_equal(get_le32(fadt + 56), ACPI_PM1A_EVT);
	assert_int_equal(get_le16(fadt + 46), ACPI_SCI_IRQ);
	/* PWR_BUTTON clear: the fixed-feature power button, which kvmhost presses. */
	assert_int_equal(get_le32(fadt + 112) & (1u << 4), 0);
	assert_int_equal(get_le32(fadt + 36), 0); /* only X_FIRMWARE_CTRL */
	assert_int_equal(get_le64(fadt + 132) % 64, 0);
	assert_memory_equal(ram + get_le64(fadt + 132), "FACS", 4);
	const uint8_t *dsdt = ram + get_le64(fadt + 140);
	assert_memory_equal(dsdt, "DSDT", 4);
	assert_int_equal(sum(dsdt, get_le32(dsdt + 4)), 0);
	/* Name(_S5_, Package(2){5, 0}): SLP_TYP 5 means power off. */
	assert_memory_equal(dsdt + 36, "\x08_S5_\x12\x05\x02\x0a\x05\x00", 11);
	assert_memory_equal(madt, "APIC", 4);
	uint32_t len = get_le32(madt + 4);
	assert_int_equal(sum(madt, len), 0);
	/* One enabled local APIC per CPU, ids 0..2, then the IOAPIC. */
	int cpus = 0, ioapics = 0, overrides = 0;
	for (uint32_t off = 44; off < len; off += madt[off + 1]) {
		assert_true(madt[off + 1] >= 2);
		if (madt[off] == 0) {
			assert_int_equal(madt[off + 3], cpus);
			assert_int_equal(get_le32(madt + off + 4) & 1, 1);
			cpus++;
		} else if (madt[off] == 1) {
			assert_int_equal(get_le32(madt + off + 4), 0xfec00000u);
			ioapics++;
		} else if (madt[off] == 2) {
			overrides++;
		}
	}
	assert_int_equal(cpus, 3);
	assert_int_equal(ioapics, 1);
	assert_int_equal(overrides, 2);
	assert_int_equal(acpi_write_tables(ram, ACPI_RSDP_ADDR, 0x100, 3), -1);
	assert_int_equal(acpi_write_tables(ram, ACPI_RSDP_ADDR, ACPI_TABLES_SIZE, 0), -1);
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
