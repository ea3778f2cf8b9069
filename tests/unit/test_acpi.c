#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/acpi_tables.h"
#include "devices/acpi_pm.h"

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
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
	const uint8_t *xsdt = ram + get64(rsdp + 24);
	assert_memory_equal(xsdt, "XSDT", 4);
	assert_int_equal(sum(xsdt, get32(xsdt + 4)), 0);
	assert_int_equal(get32(xsdt + 4), 36 + 16);
	const uint8_t *fadt = ram + get64(xsdt + 36), *madt = ram + get64(xsdt + 44);
	assert_memory_equal(fadt, "FACP", 4);
	assert_int_equal(get32(fadt + 4), 276);
	assert_int_equal(sum(fadt, 276), 0);
	assert_int_equal(get32(fadt + 64), ACPI_PM1A_CNT);
	assert_int_equal(get32(fadt + 36), 0); /* only X_FIRMWARE_CTRL */
	assert_int_equal(get64(fadt + 132) % 64, 0);
	assert_memory_equal(ram + get64(fadt + 132), "FACS", 4);
	const uint8_t *dsdt = ram + get64(fadt + 140);
	assert_memory_equal(dsdt, "DSDT", 4);
	assert_int_equal(sum(dsdt, get32(dsdt + 4)), 0);
	/* Name(_S5_, Package(2){5, 0}): SLP_TYP 5 means power off. */
	assert_memory_equal(dsdt + 36, "\x08_S5_\x12\x05\x02\x0a\x05\x00", 11);
	assert_memory_equal(madt, "APIC", 4);
	uint32_t len = get32(madt + 4);
	assert_int_equal(sum(madt, len), 0);
	/* One enabled local APIC per CPU, ids 0..2, then the IOAPIC. */
	int cpus = 0, ioapics = 0, overrides = 0;
	for (uint32_t off = 44; off < len; off += madt[off + 1]) {
		assert_true(madt[off + 1] >= 2);
		if (madt[off] == 0) {
			assert_int_equal(madt[off + 3], cpus);
			assert_int_equal(get32(madt + off + 4) & 1, 1);
			cpus++;
		} else if (madt[off] == 1) {
			assert_int_equal(get32(madt + off + 4), 0xfec00000u);
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

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(tables)};
	return cmocka_run_group_tests_name("acpi", tests, NULL, NULL);
}
