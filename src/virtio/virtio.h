/* What a virtio device offers its transport. Feature bits, status bits and
 * ring layouts are the kernel's UAPI definitions. */
#ifndef KVMHOST_VIRTIO_H
#define KVMHOST_VIRTIO_H

#include <linux/virtio_config.h>
#include <stdint.h>

#include "util/guest_mem.h"
#include "util/state.h"
#include "util/vmstate.h"
#include "virtio/virtqueue.h"

#define VIRTIO_MAX_QUEUES 3

struct virtio_device_ops {
	uint32_t device_id; /* VIRTIO_ID_* */
	uint32_t nr_queues; /* 1..VIRTIO_MAX_QUEUES */
	uint64_t (*features)(void *dev);
	void (*config_read)(void *dev, uint64_t offset, uint8_t *data, uint32_t len);
	/* Serves what the driver queued on queue `index`: >0 buffers were used,
	 * 0 none, <0 the driver broke the rules and the device needs a reset.
	 * Called with the transport's lock held. */
	int (*notify)(void *dev, const struct guest_mem *gm, struct virtq *vq, unsigned index);
	/* The driver reset the device (optional); transport lock held. */
	void (*reset)(void *dev);
	/* The device's own state, inside its transport's (NULL: none). */
	const struct vmstate *state;
};

#endif
