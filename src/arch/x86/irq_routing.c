/* The GSI routing table of a PC: legacy lines on the PICs, all lines on the
 * I/O APIC, with the PIT's IRQ 0 moved to pin 2 as on real boards. */
#include "arch/x86/irq_routing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/kvm.h>

#include "util/util.h"

#define PIC_LINES    16
#define IOAPIC_PINS  24
#define PIT_GSI	     0
#define PIT_PIN	     2
#define CASCADE_LINE 2 /* the slave PIC's line on the master: no device */

static void route(struct kvm_irq_routing *t, uint32_t gsi, uint32_t chip, uint32_t pin)
{
	struct kvm_irq_routing_entry *e = &t->entries[t->nr++];
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_IRQCHIP;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

int x86_set_irq_routing(int vm_fd, struct error *err)
{
	struct kvm_irq_routing *t =
		calloc(1, sizeof(*t) + (PIC_LINES + IOAPIC_PINS) * sizeof(t->entries[0]));
	if (!t)
		return error_set(err, STATUS_ERROR, ENOMEM, "out of memory");
	for (uint32_t line = 0; line < PIC_LINES; line++) {
		if (line == CASCADE_LINE)
			continue;
		route(t, line, line < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, line % 8);
	}
	route(t, PIT_GSI, KVM_IRQCHIP_IOAPIC, PIT_PIN);
	for (uint32_t pin = 0; pin < IOAPIC_PINS; pin++)
		if (pin != PIT_GSI && pin != PIT_PIN)
			route(t, pin, KVM_IRQCHIP_IOAPIC, pin);
	int r = ioctl(vm_fd, KVM_SET_GSI_ROUTING, t) < 0
			? error_set_errno(err, errno, "KVM_SET_GSI_ROUTING")
			: 0;
	free(t);
	return r;
}
