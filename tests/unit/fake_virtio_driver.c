/* The fake guest driver the virtio device tests share (fake_virtio_driver.h). */
#include "fake_virtio_driver.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

static void fake_irq(void *opaque, uint32_t gsi, bool level)
{
	struct fake_driver *d = opaque;
	assert_int_equal(gsi, d->gsi);
	d->irq_level = level;
	d->irq_changes++;
}

void fake_driver_init(struct fake_driver *d, uint64_t size, uint8_t fill, uint16_t qn, uint32_t gsi,
		      const struct virtio_device_ops *ops, void *dev)
{
	memset(d, 0, sizeof(*d));
	d->ram = malloc(size);
	assert_non_null(d->ram);
	memset(d->ram, fill, size);
	d->gm.regions[0] = (struct mem_region){FAKE_MEM_BASE, size, d->ram};
	d->gm.nr = 1;
	d->gsi = gsi;
	d->qn = qn;
	d->host = (struct device_host){.opaque = d, .set_irq = fake_irq};
	virtio_mmio_init(&d->m, ops, dev, &d->gm, &d->host, gsi);
}

void fake_driver_destroy(struct fake_driver *d)
{
	virtio_mmio_destroy(&d->m);
	free(d->ram);
}

void *fake_gpa(struct fake_driver *d, uint64_t gpa)
{
	return d->ram + (gpa - FAKE_MEM_BASE);
}

uint32_t fake_rd(struct fake_driver *d, uint64_t off)
{
	uint32_t v;
	virtio_mmio_ops.access(&d->m, 0, off, (uint8_t *)&v, 4, false);
	return v;
}

void fake_wr(struct fake_driver *d, uint64_t off, uint32_t v)
{
	virtio_mmio_ops.access(&d->m, 0, off, (uint8_t *)&v, 4, true);
}

uint32_t fake_driver_start(struct fake_driver *d, uint64_t features)
{
	const uint32_t ack = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	fake_wr(d, VIRTIO_MMIO_STATUS, 0);
	fake_wr(d, VIRTIO_MMIO_STATUS, ack);
	fake_wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	fake_wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	fake_wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	fake_wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	fake_wr(d, VIRTIO_MMIO_STATUS, ack | VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(fake_rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK))
		return fake_rd(d, VIRTIO_MMIO_STATUS);
	memset(fake_gpa(d, FAKE_DESC), 0, FAKE_USED + 0x1000 - FAKE_DESC);
	fake_wr(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	fake_wr(d, VIRTIO_MMIO_QUEUE_NUM, d->qn);
	fake_wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)FAKE_DESC);
	fake_wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	fake_wr(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)FAKE_AVAIL);
	fake_wr(d, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
	fake_wr(d, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)FAKE_USED);
	fake_wr(d, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
	fake_wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
	fake_wr(d, VIRTIO_MMIO_STATUS,
		ack | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	d->avail_idx = 0;
	return fake_rd(d, VIRTIO_MMIO_STATUS);
}

void fake_set_desc(struct fake_driver *d, int i, uint64_t addr, uint32_t len, uint16_t flags,
		   uint16_t next)
{
	struct vring_desc desc = {addr, len, flags, next};
	memcpy(fake_gpa(d, FAKE_DESC + 16ull * (unsigned)i), &desc, sizeof(desc));
}

void fake_kick(struct fake_driver *d, uint16_t head)
{
	uint16_t *avail = fake_gpa(d, FAKE_AVAIL);
	avail[2 + d->avail_idx % d->qn] = head;
	avail[1] = ++d->avail_idx;
	fake_wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

uint16_t fake_used_idx(struct fake_driver *d)
{
	uint16_t idx;
	memcpy(&idx, fake_gpa(d, FAKE_USED + 2), sizeof(idx));
	return idx;
}
