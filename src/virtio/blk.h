/* virtio-blk backed by a raw image file. */
#ifndef KVMHOST_VIRTIO_BLK_H
#define KVMHOST_VIRTIO_BLK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/virtio.h"

#define VIRTIO_ID_BLOCK	      2
#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_RO	      5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH    9

#define VIRTIO_BLK_T_IN	    0
#define VIRTIO_BLK_T_OUT    1
#define VIRTIO_BLK_T_FLUSH  4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_ID_BYTES    20
#define VIRTIO_BLK_SEG_MAX     128
#define VIRTIO_BLK_MAX_REQUEST (4u << 20) /* larger data is refused with IOERR */

struct disk_spec {
	char path[4096];
	bool ro;
	char id[VIRTIO_BLK_ID_BYTES + 1];
};

struct virtio_blk {
	int fd;
	bool ro;
	char path[4096];
	char id[VIRTIO_BLK_ID_BYTES + 1];
	uint64_t capacity; /* 512-byte sectors */
	atomic_uint_fast64_t reads, writes, flushes, errors;
	atomic_uint_fast64_t busy_ns;	   /* host time spent serving requests */
	atomic_uint_fast64_t host_flushes; /* flushes the host asked for (sleep) */
};

/* Opens and locks the image; a clear message in err on failure. */
int virtio_blk_open(struct virtio_blk *b, const struct disk_spec *spec, char *err, size_t errlen);
void virtio_blk_close(struct virtio_blk *b);
/* Makes every acknowledged write durable. */
int virtio_blk_flush(struct virtio_blk *b);

extern const struct virtio_device_ops virtio_blk_ops;

/* "FILE[,ro][,id=NAME]" */
int parse_disk_spec(const char *s, struct disk_spec *d, char *err, size_t errlen);

#endif
