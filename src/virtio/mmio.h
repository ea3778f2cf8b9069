/* virtio-mmio transport, version 2 ("modern"), one queue per device. */
#ifndef KVMHOST_VIRTIO_MMIO_H
#define KVMHOST_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/virtio.h"

#define VIRTIO_MMIO_SIZE      0x1000
#define VIRTIO_MMIO_QUEUE_MAX 256

struct vcpu;

typedef void (*virtio_irq_fn)(void *opaque, uint32_t gsi, bool level);

struct virtio_mmio {
	pthread_mutex_t lock; /* registers and queue processing; also taken by flush */
	const struct virtio_device_ops *ops;
	void *dev;
	const struct guest_mem *gm;
	virtio_irq_fn set_irq;
	void *irq_opaque;
	uint32_t gsi;
	uint32_t status, isr, queue_sel, dev_feat_sel, drv_feat_sel, config_gen;
	uint64_t driver_features;
	struct virtq vq;
	bool irq_level;
	atomic_uint_fast64_t notifies, bad_accesses;
};

void virtio_mmio_init(struct virtio_mmio *m, const struct virtio_device_ops *ops, void *dev,
		      const struct guest_mem *gm, uint32_t gsi, virtio_irq_fn set_irq,
		      void *irq_opaque);
void virtio_mmio_destroy(struct virtio_mmio *m);
void virtio_mmio_access(void *opaque, struct vcpu *vcpu, uint64_t offset, uint8_t *data,
			uint32_t len, bool is_write);
bool virtio_mmio_needs_reset(struct virtio_mmio *m);

#endif
