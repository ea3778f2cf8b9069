/* virtio-mmio transport, version 2 ("modern"), up to VIRTIO_MAX_QUEUES queues. */
#ifndef KVMHOST_VIRTIO_MMIO_H
#define KVMHOST_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"
#include "virtio/virtio.h"

#define VIRTIO_MMIO_SIZE      0x1000
#define VIRTIO_MMIO_QUEUE_MAX 256

struct virtio_mmio {
	pthread_mutex_t lock; /* registers and queue processing; also taken by flush */
	const struct virtio_device_ops *ops;
	void *dev;
	const struct guest_mem *gm;
	const struct device_host *host;
	uint32_t gsi;
	uint32_t status, isr, queue_sel, dev_feat_sel, drv_feat_sel, config_gen;
	uint64_t driver_features;
	uint32_t device_id, nr_queues;	     /* ops's, as the saved state checks them */
	struct virtq vqs[VIRTIO_MAX_QUEUES]; /* nr_queues of them */
	bool irq_level;
	atomic_uint_fast64_t notifies, interrupts, bad_accesses;
};

void virtio_mmio_init(struct virtio_mmio *m, const struct virtio_device_ops *ops, void *dev,
		      const struct guest_mem *gm, const struct device_host *host, uint32_t gsi);
void virtio_mmio_destroy(struct virtio_mmio *m);
/* The device is the struct virtio_mmio. */
extern const struct device_ops virtio_mmio_ops;
bool virtio_mmio_needs_reset(struct virtio_mmio *m);
/* The driver took feature `bit` (VIRTIO_F_*, VIRTIO_RING_F_*, the device's). */
bool virtio_mmio_has_feature(struct virtio_mmio *m, unsigned bit);

/* For a device that serves a queue from its own thread: with the lock held,
 * queue `index` if the driver has it running (else NULL), and after using
 * buffers, the interrupt the driver asked for. */
struct virtq *virtio_mmio_live_queue(struct virtio_mmio *m, unsigned index);
void virtio_mmio_used(struct virtio_mmio *m, unsigned index);
/* What serving queue `index` came to, as a notify returns it: buffers used
 * (the interrupt), none, or a driver that broke the rules (NEEDS_RESET). */
void virtio_mmio_served(struct virtio_mmio *m, unsigned index, int result);
/* The device's config changed (its link, an announcement): the config
 * interrupt. Lock held. */
void virtio_mmio_config_changed(struct virtio_mmio *m);

#endif
