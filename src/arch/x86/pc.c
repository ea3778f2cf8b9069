/* The PC board: its memory map, irqchip, PIT, virtio slots, and the table
 * of its fixed-port devices. A new legacy device is its file under
 * devices/ and a line in pc_ports. */
#include "arch/x86/pc.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/irq_routing.h"
#include "devices/pc_reset.h"
#include "devices/post.h"
#include "util/util.h"
#include "virtio/rng.h"

#define GIB	       (1024ull * 1024 * 1024)
#define LOW_RAM_END    (3 * GIB) /* above: LAPIC, IOAPIC and other MMIO */
#define HIGH_RAM_START (4 * GIB)
#define TSS_ADDR       0xfffbd000
#define SERIAL_GSI     4

/* Lines free of the legacy devices: not 0-2 (PIT, PIC), 4 (serial), 8 (RTC)
 * or 9 (the ACPI SCI). */
static const uint32_t disk_gsis[PC_MAX_DISKS] = {5, 6, 7, 10, 11, 12, 14, 15};
_Static_assert(VIRTIO_DISK0_GSI == 5, "pc_layout.h's first disk line is disk_gsis[0]");

int pc_ram_layout(uint64_t size, uint8_t *hva, struct mem_region regions[2])
{
	uint64_t low = size < LOW_RAM_END ? size : LOW_RAM_END;
	regions[0] = (struct mem_region){0, low, hva};
	if (size == low)
		return 1;
	regions[1] = (struct mem_region){HIGH_RAM_START, size - low, hva + low};
	return 2;
}

int pc_create_irqchip(int vm_fd, struct error *err)
{
	if (ioctl(vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0)
		return error_set_errno(err, errno, "KVM_SET_TSS_ADDR");
	if (ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return error_set_errno(err, errno, "KVM_CREATE_IRQCHIP");
	return x86_set_irq_routing(vm_fd, err);
}

int pc_create_pit(int vm_fd, struct error *err)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	if (ioctl(vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return error_set_errno(err, errno, "KVM_CREATE_PIT2");
	/* Ticks the guest missed (host asleep, VM paused, host slower than the
	 * tick) are dropped, not replayed: KVM's default replays each one on the
	 * guest's EOI, and a guest behind by thousands then does nothing but
	 * take timer interrupts. Linux keeps time by kvmclock, not by counting
	 * ticks. */
	struct kvm_reinject_control no_reinject = {.pit_reinject = 0};
	if (ioctl(vm_fd, KVM_REINJECT_CONTROL, &no_reinject) < 0)
		return error_set_errno(err, errno, "KVM_REINJECT_CONTROL");
	return 0;
}

struct pc_slot pc_disk_slot(unsigned i)
{
	return (struct pc_slot){VIRTIO_MMIO_BASE + (uint64_t)i * VIRTIO_MMIO_STRIDE, disk_gsis[i]};
}

/* Nets after the disks' MMIO window, on GSIs the disks and SCI leave free. */
struct pc_slot pc_net_slot(unsigned i)
{
	return (struct pc_slot){VIRTIO_MMIO_BASE +
					(uint64_t)(PC_MAX_DISKS + i) * VIRTIO_MMIO_STRIDE,
				VIRTIO_NET0_GSI + i};
}

/* The virtio devices `--device KIND` adds: a new one is a line here. */
static const struct virtio_kind *const virtio_kinds[] = {
	&virtio_rng_kind,
};

const struct virtio_kind *pc_virtio_kind(const char *name, struct error *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(virtio_kinds); i++)
		if (!strcmp(virtio_kinds[i]->name, name))
			return virtio_kinds[i];
	char list[128] = "";
	for (size_t i = 0, n = 0; i < ARRAY_SIZE(virtio_kinds) && n < sizeof(list); i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "",
				      virtio_kinds[i]->name);
	error_set(err, STATUS_USAGE, ENOENT, "no device kind '%s' (there are: %s)", name, list);
	return NULL;
}

struct pc_slot pc_virtio_slot(unsigned nth)
{
	return (struct pc_slot){VIRTIO_MMIO_BASE + (uint64_t)(PC_MAX_DISKS + PC_MAX_NETS + nth) *
							   VIRTIO_MMIO_STRIDE,
				VIRTIO_MORE0_GSI + nth};
}

static void *board_serial(struct pc_board *b)
{
	return &b->serial;
}

static void *board_acpi_pm(struct pc_board *b)
{
	return &b->acpi_pm;
}

static void *board_host(struct pc_board *b)
{
	return (void *)b->host;
}

static void *no_state(struct pc_board *b)
{
	(void)b;
	return NULL;
}

/* The board's port ranges, in the order snapshots have their state. */
static const struct pc_port_device {
	uint16_t port, len;
	const struct device_ops *ops;
	void *(*state)(struct pc_board *b);
} pc_ports[] = {
	{SERIAL_COM1, 8, &serial_ops, board_serial},
	{I8042_DATA_PORT, I8042_PORTS, &pc_reset_i8042_ops, board_host},
	{RST_CNT_PORT, 1, &pc_reset_rst_cnt_ops, board_host},
	{POST_PORT, 1, &post_ops, no_state},
	{ACPI_PM1A_EVT, ACPI_PM1A_EVT_LEN, &acpi_pm_evt_ops, board_acpi_pm},
	{ACPI_PM1A_CNT, ACPI_PM1A_CNT_LEN, &acpi_pm_cnt_ops, board_acpi_pm},
};

int pc_board_init(struct pc_board *b, int console_fd, const struct device_host *host,
		  pc_add_device_fn add, void *opaque, struct error *err)
{
	b->host = host;
	serial_init(&b->serial, console_fd, host, SERIAL_GSI);
	b->serial_ready = true;
	acpi_pm_init(&b->acpi_pm, host);
	b->acpi_pm_ready = true;
	for (size_t i = 0; i < ARRAY_SIZE(pc_ports); i++) {
		const struct pc_port_device *d = &pc_ports[i];
		int r = add(opaque, true, d->port, d->len, d->ops, d->state(b), err);
		if (r)
			return r;
	}
	return 0;
}

void pc_board_destroy(struct pc_board *b)
{
	if (b->serial_ready)
		serial_destroy(&b->serial);
	if (b->acpi_pm_ready)
		acpi_pm_destroy(&b->acpi_pm);
	b->serial_ready = b->acpi_pm_ready = false;
}
