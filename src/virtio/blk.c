/* virtio-blk's device side (blk.h): requests served on the vCPU that
 * kicked, under the transport's lock, at most a ring's worth per kick, each
 * checked (whole sectors, inside the disk, at most 4 MiB) before it reaches
 * the image. A FLUSH completes only once the data is durable. */
#include "virtio/blk.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <string.h>

#include "util/util.h"

#define SECTOR 512

int virtio_blk_open(struct virtio_blk *b, const struct disk_spec *spec, struct error *err)
{
	memset(b, 0, sizeof(*b));
	int r = disk_image_open(&b->img, spec, err);
	if (r)
		return r;
	b->capacity = b->img.size / SECTOR;
	snprintf(b->id, sizeof(b->id), "%s", spec->id[0] ? spec->id : b->img.default_id);
	return 0;
}

void virtio_blk_close(struct virtio_blk *b)
{
	disk_image_close(&b->img);
}

int virtio_blk_flush(struct virtio_blk *b)
{
	return disk_image_flush(&b->img);
}

static uint64_t blk_features(void *dev)
{
	struct virtio_blk *b = dev;
	uint64_t f = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
		     (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH);
	if (b->img.ro)
		f |= 1ull << VIRTIO_BLK_F_RO;
	return f;
}

static void blk_config_read(void *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct virtio_blk *b = dev;
	const struct virtio_blk_config cfg = {
		.capacity = b->capacity,
		.seg_max = VIRTIO_BLK_SEG_MAX,
		.blk_size = SECTOR,
	};
	memset(data, 0, len);
	if (offset < sizeof(cfg))
		memcpy(data, (const uint8_t *)&cfg + offset,
		       len < sizeof(cfg) - offset ? len : sizeof(cfg) - offset);
}

/* Says once per kind of error (a full disk, a failing one) what the guest
 * will see as IOERR; every one is counted in `errors`. */
static void io_error(struct virtio_blk *b, bool write, int err)
{
	unsigned bit = err == -ENOSPC ? 1 : err == -EIO ? 2 : 4;
	if (atomic_fetch_or(&b->errors_said, bit) & bit)
		return;
	log_warn("disk %s: %s failed: %s; the guest gets an I/O error (further ones are counted "
		 "in status)",
		 b->img.path, write ? "a write" : "a read", strerror(-err));
}

/* Serves one request; returns bytes written to the driver's buffers. */
static uint32_t blk_request(struct virtio_blk *b, struct virtq_elem *e)
{
	struct virtio_blk_outhdr h;
	/* Framing: a 16-byte header the device reads, a status byte it writes,
	 * data in between - in whatever descriptors the driver chose. */
	uint8_t status = VIRTIO_BLK_S_IOERR;
	uint64_t in_data = e->in_len - 1, out_data = e->out_len - sizeof(h);
	uint32_t written = 0;
	struct iovec data[VIRTQ_MAX_SEGS];
	unsigned n;
	iov_copy_from(e->out, e->nout, 0, &h, sizeof(h));

	switch (h.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool write = h.type == VIRTIO_BLK_T_OUT;
		uint64_t len = write ? out_data : in_data;
		if (write && b->img.ro)
			break;
		/* Whole sectors, not empty, not huge, and inside the disk. */
		if (len == 0 || len % SECTOR || len > VIRTIO_BLK_MAX_REQUEST ||
		    h.sector > b->capacity || len / SECTOR > b->capacity - h.sector)
			break;
		n = write ? iov_slice(e->out, e->nout, sizeof(h), len, data)
			  : iov_slice(e->in, e->nin, 0, len, data);
		int r = disk_image_rw(&b->img, data, n, h.sector * SECTOR, len, write);
		if (r) {
			io_error(b, write, r);
			break;
		}
		if (write)
			atomic_fetch_add(&b->writes, 1);
		else
			atomic_fetch_add(&b->reads, 1), written = (uint32_t)len;
		status = VIRTIO_BLK_S_OK;
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		/* Complete only once the data is durable. */
		if (virtio_blk_flush(b) == 0) {
			atomic_fetch_add(&b->flushes, 1);
			status = VIRTIO_BLK_S_OK;
		}
		break;
	case VIRTIO_BLK_T_GET_ID: {
		if (in_data == 0)
			break;
		char id[VIRTIO_BLK_ID_BYTES] = {0};
		memcpy(id, b->id, strnlen(b->id, sizeof(id)));
		uint64_t len = in_data < sizeof(id) ? in_data : sizeof(id);
		written = (uint32_t)iov_copy_to(e->in, e->nin, 0, id, len);
		status = VIRTIO_BLK_S_OK;
		break;
	}
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (status == VIRTIO_BLK_S_IOERR)
		atomic_fetch_add(&b->errors, 1);
	iov_copy_to(e->in, e->nin, e->in_len - 1, &status, 1);
	return written + 1;
}

static int64_t blk_serve(void *dev, struct virtq_elem *e)
{
	/* No room for a header and a status byte: the driver is broken. */
	if (e->out_len < sizeof(struct virtio_blk_outhdr) || e->in_len < 1)
		return -EINVAL;
	return blk_request(dev, e);
}

static int blk_notify(void *dev, const struct guest_mem *gm, struct virtq *vq, unsigned index)
{
	(void)index; /* one queue */
	struct virtio_blk *b = dev;
	uint64_t t0 = now_ns();
	int used = virtq_serve(gm, vq, &b->elem, blk_serve, b);
	atomic_fetch_add(&b->busy_ns, now_ns() - t0);
	return used;
}

static int blk_post_load(void *dev, uint32_t version)
{
	struct virtio_blk *b = dev;
	(void)version;
	b->id[sizeof(b->id) - 1] = '\0';
	return 0;
}

/* The guest's view of the disk must not change under it: capacity and
 * read-only must match the image opened here. */
static const struct vmstate_field blk_fields[] = {
	VMS_UINT(struct virtio_blk, capacity, .must_match = true),
	VMS_BOOL(struct virtio_blk, img.ro, .must_match = true),
	VMS_BYTES(struct virtio_blk, id, sizeof(((struct virtio_blk *)0)->id)),
};

static const struct vmstate blk_state = {
	.name = "virtio-blk",
	.version = 1,
	.min_version = 1,
	.fields = blk_fields,
	.nr_fields = ARRAY_SIZE(blk_fields),
	.post_load = blk_post_load,
};

const struct virtio_device_ops virtio_blk_ops = {
	.device_id = VIRTIO_ID_BLOCK,
	.nr_queues = 1,
	.features = blk_features,
	.config_read = blk_config_read,
	.notify = blk_notify,
	.state = &blk_state,
};
