/* The MP table a guest without ACPI (or told to ignore it) reads at boot:
 * every vCPU as a processor, one ISA bus, the IOAPIC and how the 16 ISA
 * interrupts and the local APICs' LINT pins are wired. */
#include "arch/x86/mptable.h"

#include <string.h>

#include "arch/x86/mpspec.h"
#include "util/bytes.h"

#define LAPIC_VERSION  0x14 /* what KVM's in-kernel local APIC reports */
#define IOAPIC_VERSION 0x11 /* and its IOAPIC */
#define LAPIC_ADDR     0xfee00000u
#define ISA_IRQS       16

/* Copies one structure to guest memory, which owes it no alignment. */
static uint8_t *emit(uint8_t *p, const void *entry, size_t size)
{
	memcpy(p, entry, size);
	return p + size;
}

static uint8_t *write_cpus(uint8_t *p, unsigned nr_cpus)
{
	for (unsigned i = 0; i < nr_cpus; i++) {
		struct mpc_cpu cpu = {
			.type = MP_PROCESSOR,
			.apicid = (uint8_t)i, /* the vCPU index, as in CPUID */
			.apicver = LAPIC_VERSION,
			.cpuflag = (uint8_t)(CPU_ENABLED | (i == 0 ? CPU_BOOTPROCESSOR : 0)),
			.cpufeature = 0x600,  /* family 6 */
			.featureflag = 0x201, /* FPU, APIC */
		};
		p = emit(p, &cpu, sizeof(cpu));
	}
	return p;
}

/* The ISA bus, the IOAPIC (its id after the CPUs' APIC ids), the ISA IRQs on
 * its pins and the local interrupts: ExtINT on LINT0 (the 8259s), NMI on
 * LINT1, as a PC wires them. */
static uint8_t *write_interrupts(uint8_t *p, uint8_t ioapic_id)
{
	struct mpc_bus bus = {.type = MP_BUS, .busid = 0};
	memcpy(bus.bustype, "ISA   ", sizeof(bus.bustype));
	p = emit(p, &bus, sizeof(bus));
	const struct mpc_ioapic ioapic = {
		.type = MP_IOAPIC,
		.apicid = ioapic_id,
		.apicver = IOAPIC_VERSION,
		.flags = MPC_APIC_USABLE,
		.apicaddr = MPTABLE_IOAPIC_ADDR,
	};
	p = emit(p, &ioapic, sizeof(ioapic));
	for (unsigned irq = 0; irq < ISA_IRQS; irq++) {
		const struct mpc_intsrc src = {
			.type = MP_INTSRC,
			.irqtype = mp_INT,
			.irqflag = MP_IRQPOL_DEFAULT | MP_IRQTRIG_DEFAULT, /* ISA: edge, high */
			.srcbus = bus.busid,
			.srcbusirq = (uint8_t)irq,
			.dstapic = ioapic_id,
			.dstirq = (uint8_t)(irq == 0 ? 2 : irq), /* the PIT is wired to pin 2 */
		};
		p = emit(p, &src, sizeof(src));
	}
	const struct mpc_lintsrc lint[] = {
		{.type = MP_LINTSRC,
		 .irqtype = mp_ExtINT,
		 .destapic = MP_APIC_ALL,
		 .destapiclint = 0},
		{.type = MP_LINTSRC, .irqtype = mp_NMI, .destapic = MP_APIC_ALL, .destapiclint = 1},
	};
	return emit(p, lint, sizeof(lint));
}

int mptable_write(uint8_t *ram, uint64_t addr, size_t room, unsigned nr_cpus)
{
	const unsigned nr_entries = nr_cpus + 1 + 1 + ISA_IRQS + 2;
	const size_t need = sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
			    nr_cpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +
			    sizeof(struct mpc_ioapic) + ISA_IRQS * sizeof(struct mpc_intsrc) +
			    2 * sizeof(struct mpc_lintsrc);
	/* APIC ids are a byte, and the IOAPIC takes the one after the CPUs'. */
	if (need > room || nr_cpus == 0 || nr_cpus > 254)
		return -1;
	uint8_t *mpf = ram + addr, *mpc = mpf + sizeof(struct mpf_intel);
	uint8_t *end = write_cpus(mpc + sizeof(struct mpc_table), nr_cpus);
	end = write_interrupts(end, (uint8_t)nr_cpus);

	struct mpc_table table = {
		.length = (uint16_t)(end - mpc),
		.spec = 4, /* version 1.4 */
		.oemcount = (uint16_t)nr_entries,
		.lapic = LAPIC_ADDR,
	};
	memcpy(table.signature, MPC_SIGNATURE, sizeof(table.signature));
	memcpy(table.oem, "KVMHOST ", sizeof(table.oem));
	memcpy(table.productid, "VM          ", sizeof(table.productid));
	emit(mpc, &table, sizeof(table));
	mpc[offsetof(struct mpc_table, checksum)] = byte_checksum(mpc, table.length);

	struct mpf_intel pointer = {
		.physptr = (uint32_t)(addr + sizeof(struct mpf_intel)),
		.length = sizeof(struct mpf_intel) / 16,
		.specification = 4,
	};
	memcpy(pointer.signature, MPF_SIGNATURE, sizeof(pointer.signature));
	emit(mpf, &pointer, sizeof(pointer));
	mpf[offsetof(struct mpf_intel, checksum)] = byte_checksum(mpf, sizeof(pointer));
	return (int)need;
}
