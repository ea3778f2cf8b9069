/* An Intel MultiProcessor table, so an SMP guest finds its CPUs, its IOAPIC
 * and how ISA interrupts are wired, and brings the APs up by INIT/SIPI. */
#ifndef KVMHOST_MPTABLE_H
#define KVMHOST_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#define MPTABLE_IOAPIC_ADDR 0xfec00000u

/* Writes the floating pointer and the configuration table at `addr` (in the
 * EBDA); returns the bytes used, or -1 if they do not fit in `room`. */
int mptable_write(uint8_t *ram, uint64_t addr, size_t room, unsigned nr_cpus);

#endif
