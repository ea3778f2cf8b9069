/* What a virtio device offers its transport. */
#ifndef KVMHOST_VIRTIO_H
#define KVMHOST_VIRTIO_H

#include <stdint.h>

#include "util/guest_mem.h"
#include "virtio/virtqueue.h"

#define VIRTIO_F_VERSION_1 32

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER	  2
#define VIRTIO_STATUS_DRIVER_OK	  4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED	  128

struct virtio_device_ops {
	uint32_t device_id;
	uint64_t (*features)(void *dev);
	void (*config_read)(void *dev, uint64_t offset, uint8_t *data, uint32_t len);
	/* Serves what the driver queued: >0 buffers were used, 0 none, <0 the
	 * driver broke the rules and the device needs a reset. */
	int (*notify)(void *dev, const struct guest_mem *gm, struct virtq *vq);
};

#endif
