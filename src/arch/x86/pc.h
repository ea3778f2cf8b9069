/* The PC board kvmhost builds, as kvmtool's x86/kvm.c: where RAM, devices
 * and their interrupt lines go (pc_layout.h has the numbers the built-in
 * guest shares), the in-kernel irqchip and PIT, and the board's own
 * devices at fixed ports. core/vm.c asks it; it sees KVM's fds, guest
 * memory and a way to add devices, never struct vm. */
#ifndef KVMHOST_ARCH_X86_PC_H
#define KVMHOST_ARCH_X86_PC_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/pc_layout.h"
#include "devices/acpi_pm.h"
#include "devices/device.h"
#include "devices/serial.h"
#include "util/error.h"
#include "util/guest_mem.h"
#include "virtio/kind.h"

/* RAM of `size` bytes at hva as the guest sees it: below the MMIO hole
 * under 4 GiB, the rest from 4 GiB. Fills at most two regions and returns
 * how many. */
int pc_ram_layout(uint64_t size, uint8_t *hva, struct mem_region regions[2]);

/* The in-kernel PICs and I/O APIC, the TSS pages VMX needs, and GSI
 * routing as our MADT says. */
int pc_create_irqchip(int vm_fd, struct error *err);
/* The PIT a Linux guest expects (the built-in guest uses LAPIC timers);
 * ticks it missed are dropped, not replayed. */
int pc_create_pit(int vm_fd, struct error *err);

/* Where virtio device i of a kind sits: its MMIO window and its line. */
struct pc_slot {
	uint64_t base;
	uint32_t gsi;
};
struct pc_slot pc_disk_slot(unsigned i); /* i < PC_MAX_DISKS */
struct pc_slot pc_net_slot(unsigned i);	 /* i < PC_MAX_NETS */
/* The kind of `--device` named `name`, looked up where a name comes in
 * (options, a snapshot's config); NULL with err naming the kinds there are. */
const struct virtio_kind *pc_virtio_kind(const char *name, struct error *err);
/* The slot of the board's nth `--device` (0-based, in the order given). */
struct pc_slot pc_virtio_slot(unsigned nth); /* nth < PC_MAX_VIRTIO */

/* The board's devices at fixed ports. */
struct pc_board {
	const struct device_host *host;
	struct serial serial;
	bool serial_ready;
	struct acpi_pm acpi_pm;
	bool acpi_pm_ready;
};

/* How the board puts a device's range on the machine's buses: the VM's. */
typedef int (*pc_add_device_fn)(void *opaque, bool pio, uint64_t base, uint64_t len,
				const struct device_ops *ops, void *dev, struct error *err);

/* Sets up the board's devices (the serial port writes to console_fd) and
 * adds each of the board's port ranges in the order of its table - the
 * order their state has in snapshots. pc_board_destroy undoes however
 * much was done. */
int pc_board_init(struct pc_board *b, int console_fd, const struct device_host *host,
		  pc_add_device_fn add, void *opaque, struct error *err);
void pc_board_destroy(struct pc_board *b);

#endif
