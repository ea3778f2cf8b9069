/* What a device sees of the machine it is in, and what the machine sees of a
 * device. A device gets a `struct device_host` (raise a line, ask the VM to
 * end) and never the VM itself; the VM gets a `struct device_ops` per address
 * range (access, and the save/restore pair that snapshots use). */
#ifndef KVMHOST_DEVICE_H
#define KVMHOST_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/state.h"

struct vmstate;

enum vm_exit_reason {
	VM_EXIT_NONE = 0,
	VM_EXIT_POWEROFF, /* the guest powered off: status 0 */
	VM_EXIT_QUIT,	  /* asked by the user (signal, ctl quit): status 0 */
	VM_EXIT_RESET,	  /* the guest asked for a reset */
	VM_EXIT_CRASH,	  /* triple fault */
	VM_EXIT_ERROR,	  /* unexpected exit or KVM error */
	VM_EXIT_MIGRATED, /* running on a migration's destination now: status 0 */
};

struct device_host {
	void *opaque;
	/* Any thread; the first reason wins. `code` is the guest's own status. */
	void (*request_exit)(void *opaque, enum vm_exit_reason reason, int code);
	/* Level of an interrupt line (GSI) through the in-kernel irqchip. */
	void (*set_irq)(void *opaque, uint32_t gsi, bool level);
};

static inline void device_request_exit(const struct device_host *h, enum vm_exit_reason reason,
				       int code)
{
	if (h && h->request_exit)
		h->request_exit(h->opaque, reason, code);
}

static inline void device_set_irq(const struct device_host *h, uint32_t gsi, bool level)
{
	if (h && h->set_irq)
		h->set_irq(h->opaque, gsi, level);
}

/* One access from vCPU `vcpu`: `offset` from the range's base, data
 * little-endian, len 1..8. */
typedef void (*device_access_fn)(void *dev, unsigned vcpu, uint64_t offset, uint8_t *data,
				 uint32_t len, bool is_write);

struct device_ops {
	const char *name; /* also the state section's name */
	device_access_fn access;
	/* State a snapshot carries, described once (util/vmstate.h); saved and
	 * restored with the device's lock held (DEVICE_LOCK), if it has one.
	 * NULL: the device has none, or says it with save/restore. */
	const struct vmstate *state;
	size_t lock_offset_plus_1;
	/* Or a device's own pair, for state that is more than one table
	 * (virtio-mmio: its transport, then its device). restore returns
	 * -EINVAL for a stream it cannot use. */
	void (*save)(void *dev, struct state_writer *w);
	int (*restore)(void *dev, struct state_reader *r);
};

/* In a device_ops: the pthread_mutex_t `member` of `type` guards the state. */
#define DEVICE_LOCK(type, member) .lock_offset_plus_1 = offsetof(type, member) + 1

/* A device's state, through whichever of the above it has; called with
 * every vCPU parked. */
bool device_has_state(const struct device_ops *ops);
void device_save(const struct device_ops *ops, void *dev, struct state_writer *w);
int device_restore(const struct device_ops *ops, void *dev, struct state_reader *r);

/* A device the VM's builder brings along with a guest (the built-in test
 * guest's): the VM attaches it at its ports beside the board's devices,
 * saves its state like theirs and passes on the events below. What it is,
 * only the builder knows. */
struct extra_device {
	const struct device_ops *ops;
	void *dev;
	uint16_t port, nr_ports;
	/* Once the VM has a device_host and knows its vCPUs; detach undoes
	 * it, also after a failed attach. */
	int (*attach)(void *dev, const struct device_host *host, unsigned nr_vcpus);
	void (*detach)(void *dev);
	/* The user asks the guest to power off: the guest listens here, not
	 * to the ACPI power button. */
	void (*request_poweroff)(void *dev);
	/* vCPU `vcpu` runs again after a park (any vCPU thread). NULL: no interest. */
	void (*vcpu_unparked)(void *dev, unsigned vcpu);
};

#endif
