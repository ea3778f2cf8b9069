/* How the PC's interrupt lines reach the in-kernel PICs and I/O APIC. */
#ifndef KVMHOST_IRQ_ROUTING_H
#define KVMHOST_IRQ_ROUTING_H

#include "util/error.h"

/* The PC wiring our MADT and MP table describe: ISA IRQ 0 (the PIT) on
 * I/O APIC pin 2, every other line on the pin of its own number. KVM's
 * default routes GSI 0 to pin 0, where a guest that reads those tables never
 * looks: its timer would stop once it moves off the PIC. */
int x86_set_irq_routing(int vm_fd, struct error *err);

#endif
