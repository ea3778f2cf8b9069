/* A raw disk image: a regular file or a block device, opened and locked so
 * that two VMs cannot write one image (exclusive flock for read-write, shared
 * for read-only), read and written with whole-request semantics. */
#ifndef KVMHOST_DISK_IMAGE_H
#define KVMHOST_DISK_IMAGE_H

#include "util/error.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define DISK_ID_BYTES 20 /* what virtio-blk's GET_ID carries */

/* What `--disk` asked for. `path` is the parser's (it outlives the VM). */
struct disk_spec {
	char *path;
	bool ro;
	char id[DISK_ID_BYTES + 1];
	/* Migrating in: the source holds the lock until it hands the guest
	 * over; disk_image_lock takes it then. */
	bool lock_later;
};

struct disk_image {
	int fd;
	bool ro;
	const char *path;
	uint64_t size;			    /* bytes */
	char default_id[DISK_ID_BYTES + 1]; /* from the file's device and inode */
	bool gated;			    /* holds the gate (see disk_image.c) */
};

/* -errno with a message for the user in err. */
int disk_image_open(struct disk_image *d, const struct disk_spec *spec, struct error *err);
/* The flock disk_image_open takes (unless lock_later, when it holds the
 * gate instead - see disk_image.c): -EBUSY with a message if another
 * process holds it. unlock gives it up, for a migration's hand-over; the
 * fd stays open. */
int disk_image_lock(struct disk_image *d, struct error *err);
void disk_image_unlock(struct disk_image *d);
/* Safe on a never-opened or half-opened image. */
void disk_image_close(struct disk_image *d);
/* Every acknowledged write durable (fdatasync); 0 for read-only images. */
int disk_image_flush(struct disk_image *d);
/* All of [off, off+len) or an error; `iov` is consumed. -EIO if the image
 * shrank under us. */
int disk_image_rw(struct disk_image *d, struct iovec *iov, unsigned n, uint64_t off, uint64_t len,
		  bool write);

#endif
