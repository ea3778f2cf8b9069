#include "arch/x86/mptable.h"

#include <string.h>

#include "util/bytes.h"

#define MPC_PROC     0
#define MPC_BUS	     1
#define MPC_IOAPIC   2
#define MPC_INTSRC   3
#define MPC_LINTSRC  4
#define MP_INT	     0
#define MP_NMI	     1
#define MP_EXTINT    3
#define APIC_VERSION 0x14

int mptable_write(uint8_t *ram, uint64_t addr, size_t room, unsigned nr_cpus)
{
	/* Floating pointer (16) + header (44) + CPUs (20 each) + bus (8) +
	 * IOAPIC (8) + 16 ISA interrupts (8 each) + 2 local interrupts (8 each). */
	size_t need = 16 + 44 + 20ull * nr_cpus + 8 + 8 + 16 * 8 + 2 * 8;
	if (need > room || nr_cpus == 0 || nr_cpus > 254)
		return -1;
	uint8_t *mpf = ram + addr, *mpc = mpf + 16, *e = mpc + 44;
	memset(mpf, 0, need);
	uint8_t ioapic_id = (uint8_t)nr_cpus; /* after the CPUs' APIC ids */

	for (unsigned i = 0; i < nr_cpus; i++, e += 20) {
		e[0] = MPC_PROC;
		e[1] = (uint8_t)i; /* local APIC id: the vCPU index, as in CPUID */
		e[2] = APIC_VERSION;
		e[3] = (uint8_t)(1 | (i == 0 ? 2 : 0)); /* enabled, BSP */
		uint32_t sig = 0x600, features = 0x201; /* family 6; FPU, APIC */
		memcpy(e + 4, &sig, 4);
		memcpy(e + 8, &features, 4);
	}
	e[0] = MPC_BUS;
	e[1] = 0;
	memcpy(e + 2, "ISA   ", 6);
	e += 8;
	e[0] = MPC_IOAPIC;
	e[1] = ioapic_id;
	e[2] = 0x11;
	e[3] = 1; /* enabled */
	uint32_t ioapic = MPTABLE_IOAPIC_ADDR;
	memcpy(e + 4, &ioapic, 4);
	e += 8;
	for (unsigned irq = 0; irq < 16; irq++, e += 8) {
		e[0] = MPC_INTSRC;
		e[1] = MP_INT; /* flags 0: conforms to the bus (ISA: edge, high) */
		e[4] = 0;      /* source bus */
		e[5] = (uint8_t)irq;
		e[6] = ioapic_id;
		e[7] = (uint8_t)(irq == 0 ? 2 : irq); /* the PIT is wired to pin 2 */
	}
	e[0] = MPC_LINTSRC;
	e[1] = MP_EXTINT;
	e[6] = 0xff; /* all local APICs */
	e[7] = 0;    /* LINT0 */
	e += 8;
	e[0] = MPC_LINTSRC;
	e[1] = MP_NMI;
	e[6] = 0xff;
	e[7] = 1; /* LINT1 */
	e += 8;

	uint16_t len = (uint16_t)(e - mpc), count = (uint16_t)(nr_cpus + 2 + 16 + 2);
	memcpy(mpc, "PCMP", 4);
	memcpy(mpc + 4, &len, 2);
	mpc[6] = 4; /* spec 1.4 */
	memcpy(mpc + 8, "KVMHOST ", 8);
	memcpy(mpc + 16, "VM          ", 12);
	memcpy(mpc + 34, &count, 2);
	uint32_t lapic = 0xfee00000u;
	memcpy(mpc + 36, &lapic, 4);
	mpc[7] = byte_checksum(mpc, len);

	memcpy(mpf, "_MP_", 4);
	uint32_t phys = (uint32_t)(addr + 16);
	memcpy(mpf + 4, &phys, 4);
	mpf[8] = 1; /* length in 16-byte units */
	mpf[9] = 4;
	mpf[10] = byte_checksum(mpf, 16);
	return (int)need;
}
