/* A fake guest driver for the virtio device unit tests: guest memory is a
 * malloc'd buffer at FAKE_MEM_BASE, the device sits behind the real
 * virtio-mmio transport, and queue 0 has its rings at fixed addresses. */
#ifndef KVMHOST_FAKE_VIRTIO_DRIVER_H
#define KVMHOST_FAKE_VIRTIO_DRIVER_H

#include <stdint.h>

#include "virtio/mmio.h"

#define FAKE_MEM_BASE 0x100000ull
#define FAKE_DESC     (FAKE_MEM_BASE + 0x0000)
#define FAKE_AVAIL    (FAKE_MEM_BASE + 0x1000)
#define FAKE_USED     (FAKE_MEM_BASE + 0x2000)

struct fake_driver {
	uint8_t *ram;
	struct guest_mem gm;
	struct virtio_mmio m;
	struct device_host host;
	uint32_t gsi; /* the only line the device may raise */
	uint16_t qn;  /* queue 0's size */
	uint16_t avail_idx;
	int irq_level, irq_changes;
};

/* Guest memory of `size` bytes, each `fill`, and `ops`/`dev` behind a
 * transport on `gsi`; the driver has not started yet. */
void fake_driver_init(struct fake_driver *d, uint64_t size, uint8_t fill, uint16_t qn, uint32_t gsi,
		      const struct virtio_device_ops *ops, void *dev);
void fake_driver_destroy(struct fake_driver *d);
void *fake_gpa(struct fake_driver *d, uint64_t gpa);
uint32_t fake_rd(struct fake_driver *d, uint64_t off);
void fake_wr(struct fake_driver *d, uint64_t off, uint32_t v);
/* Resets the device, offers `features`, and sets queue 0 up on zeroed
 * rings; returns the device status the driver ends with. */
uint32_t fake_driver_start(struct fake_driver *d, uint64_t features);
void fake_set_desc(struct fake_driver *d, int i, uint64_t addr, uint32_t len, uint16_t flags,
		   uint16_t next);
/* Publishes chain `head` and kicks queue 0. */
void fake_kick(struct fake_driver *d, uint16_t head);
uint16_t fake_used_idx(struct fake_driver *d);

#endif
