/* The MP table as a guest kernel's MP parser walks it: through the floating
 * pointer, entry by entry, by the types of arch/x86/mpspec.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/mpspec.h"
#include "arch/x86/mptable.h"

#define EBDA	 0x9fc00u
#define RAM_SIZE 0x100000u

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* The size of an entry of this type, 0 for a type the spec does not have. */
static size_t entry_size(uint8_t type)
{
	switch (type) {
	case MP_PROCESSOR:
		return sizeof(struct mpc_cpu);
	case MP_BUS:
		return sizeof(struct mpc_bus);
	case MP_IOAPIC:
		return sizeof(struct mpc_ioapic);
	case MP_INTSRC:
		return sizeof(struct mpc_intsrc);
	case MP_LINTSRC:
		return sizeof(struct mpc_lintsrc);
	}
	return 0;
}

struct seen {
	unsigned cpus, bsps, buses, ioapics, lints;
	uint8_t ioapic_id;
	uint8_t isa_pin[16]; /* 0xff: no entry for the IRQ */
	uint8_t lint_type[2];
};

static void check_cpu(const struct mpc_cpu *cpu, struct seen *seen)
{
	/* Processor entries come first, APIC ids 0, 1, ... as CPUID says. */
	assert_int_equal(seen->buses + seen->ioapics, 0);
	assert_int_equal(cpu->apicid, seen->cpus);
	assert_true(cpu->cpuflag & CPU_ENABLED);
	if (cpu->cpuflag & CPU_BOOTPROCESSOR) {
		assert_int_equal(cpu->apicid, 0);
		seen->bsps++;
	}
	seen->cpus++;
}

static void check_entry(const uint8_t *e, struct seen *seen)
{
	const struct mpc_ioapic *io = (const void *)e;
	const struct mpc_intsrc *src = (const void *)e;
	const struct mpc_lintsrc *lint = (const void *)e;
	switch (e[0]) {
	case MP_PROCESSOR:
		check_cpu((const void *)e, seen);
		break;
	case MP_BUS:
		assert_memory_equal(((const struct mpc_bus *)e)->bustype, "ISA   ", 6);
		seen->buses++;
		break;
	case MP_IOAPIC:
		assert_int_equal(io->apicaddr, MPTABLE_IOAPIC_ADDR);
		assert_true(io->flags & MPC_APIC_USABLE);
		seen->ioapic_id = io->apicid;
		seen->ioapics++;
		break;
	case MP_INTSRC:
		assert_int_equal(src->irqtype, mp_INT);
		assert_true(src->srcbusirq < 16);
		assert_int_equal(src->dstapic, seen->ioapic_id);
		assert_int_equal(seen->isa_pin[src->srcbusirq], 0xff);
		seen->isa_pin[src->srcbusirq] = src->dstirq;
		break;
	case MP_LINTSRC:
		assert_int_equal(lint->destapic, MP_APIC_ALL);
		assert_true(lint->destapiclint < 2);
		seen->lint_type[lint->destapiclint] = lint->irqtype;
		seen->lints++;
		break;
	}
}

/* Walks the table from the floating pointer; checks checksums, the length and
 * the entry count the header gives against what is there. */
static struct seen walk(const uint8_t *ram, int written)
{
	const struct mpf_intel *mpf = (const void *)(ram + EBDA);
	assert_memory_equal(mpf->signature, MPF_SIGNATURE, 4);
	assert_int_equal(mpf->length, 1);
	assert_int_equal(mpf->specification, 4);
	assert_int_equal(sum(ram + EBDA, sizeof(*mpf)), 0);
	assert_int_equal(mpf->feature1, 0); /* a table follows, not a default config */
	const uint8_t *base = ram + mpf->physptr;
	const struct mpc_table *mpc = (const void *)base;
	assert_memory_equal(mpc->signature, MPC_SIGNATURE, 4);
	assert_int_equal(sum(base, mpc->length), 0);
	assert_int_equal(mpc->lapic, 0xfee00000u);
	assert_int_equal(mpf->physptr + mpc->length - EBDA, written);

	struct seen seen = {0};
	memset(seen.isa_pin, 0xff, sizeof(seen.isa_pin));
	unsigned count = 0;
	size_t off = sizeof(*mpc);
	while (off < mpc->length) {
		size_t size = entry_size(base[off]);
		assert_int_not_equal(size, 0);
		assert_true(off + size <= mpc->length);
		check_entry(base + off, &seen);
		off += size;
		count++;
	}
	assert_int_equal(off, mpc->length);
	assert_int_equal(count, mpc->oemcount);
	return seen;
}

static void tables(void **state)
{
	(void)state;
	const unsigned configs[] = {1, 2, 4, 64, 254};
	uint8_t *ram = malloc(RAM_SIZE);
	for (size_t c = 0; c < sizeof(configs) / sizeof(configs[0]); c++) {
		unsigned n = configs[c];
		memset(ram, 0xa5, RAM_SIZE);
		int written = mptable_write(ram, EBDA, RAM_SIZE - EBDA, n);
		assert_true(written > 0);
		/* Nothing after what it says it wrote. */
		assert_int_equal(ram[EBDA + (unsigned)written], 0xa5);
		struct seen seen = walk(ram, written);
		assert_int_equal(seen.cpus, n);
		assert_int_equal(seen.bsps, 1);
		assert_int_equal(seen.buses, 1);
		assert_int_equal(seen.ioapics, 1);
		assert_true(seen.ioapic_id >= n); /* no clash with a CPU's APIC id */
		for (unsigned irq = 0; irq < 16; irq++)
			assert_int_equal(seen.isa_pin[irq], irq == 0 ? 2 : irq);
		assert_int_equal(seen.lints, 2);
		assert_int_equal(seen.lint_type[0], mp_ExtINT);
		assert_int_equal(seen.lint_type[1], mp_NMI);
	}
	/* No CPU, more CPUs than APIC ids, and too little room are refused. */
	assert_int_equal(mptable_write(ram, EBDA, RAM_SIZE - EBDA, 0), -1);
	assert_int_equal(mptable_write(ram, EBDA, RAM_SIZE - EBDA, 255), -1);
	int one = mptable_write(ram, EBDA, RAM_SIZE - EBDA, 1);
	assert_int_equal(mptable_write(ram, EBDA, (size_t)one - 1, 1), -1);
	assert_int_equal(mptable_write(ram, EBDA, (size_t)one, 1), one);
	free(ram);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(tables)};
	return cmocka_run_group_tests_name("mptable", tests, NULL, NULL);
}
