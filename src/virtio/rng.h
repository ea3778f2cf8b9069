/* virtio-rng (entropy device, virtio 1.x section 5.4): the guest's driver
 * queues buffers and gets them back full of the host's getrandom() bytes.
 * Its only queue is served on the vCPU that kicks it. */
#ifndef KVMHOST_VIRTIO_RNG_H
#define KVMHOST_VIRTIO_RNG_H

#include <stdatomic.h>

#include "virtio/kind.h"
#include "virtio/virtqueue.h"

/* At most this much per buffer the driver queues: a driver asking for
 * more gets this much and is told so by the used length. */
#define VIRTIO_RNG_MAX_REQUEST (64u << 10)

struct virtio_rng {
	struct virtq_elem elem; /* the request being served, under the transport's lock */
	atomic_uint_fast64_t bytes, requests;
};

extern const struct virtio_device_ops virtio_rng_ops;
extern const struct virtio_kind virtio_rng_kind;

#endif
