/* virtio-blk over a raw disk image (backends/disk_image). Request types,
 * status codes, feature bits and the config layout are the kernel's UAPI
 * <linux/virtio_blk.h>. */
#ifndef KVMHOST_VIRTIO_BLK_H
#define KVMHOST_VIRTIO_BLK_H

#include <linux/virtio_blk.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/disk_image.h"
#include "util/error.h"
#include "virtio/virtio.h"

#define VIRTIO_BLK_SEG_MAX     128
#define VIRTIO_BLK_MAX_REQUEST (4u << 20) /* larger data is refused with IOERR */

struct virtio_blk {
	struct disk_image img;
	char id[VIRTIO_BLK_ID_BYTES + 1];
	uint64_t capacity;	/* 512-byte sectors */
	struct virtq_elem elem; /* the request being served, under the transport's lock */
	atomic_uint_fast64_t reads, writes, flushes, errors;
	atomic_uint_fast64_t busy_ns;	   /* host time spent serving requests */
	atomic_uint_fast64_t host_flushes; /* flushes the host asked for (sleep) */
	atomic_uint errors_said;	   /* kinds of I/O error already logged */
};

/* Opens and locks the image; a clear message in err on failure. */
int virtio_blk_open(struct virtio_blk *b, const struct disk_spec *spec, struct error *err);
/* Safe on a device whose open failed or never ran. */
void virtio_blk_close(struct virtio_blk *b);
/* Makes every acknowledged write durable. */
int virtio_blk_flush(struct virtio_blk *b);

extern const struct virtio_device_ops virtio_blk_ops;

#endif
