/* virtio-rng: every device-writable buffer the driver queues comes back
 * filled from getrandom(). A buffer the device would have to read is a
 * driver bug (the spec allows none), answered by a device reset. */
#include "virtio/rng.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <string.h>
#include <sys/random.h>

#include "util/util.h"

/* Fills the element's buffers, up to VIRTIO_RNG_MAX_REQUEST bytes in all;
 * returns how many bytes it wrote. GRND_NONBLOCK: a host whose pool is
 * not ready yet gives fewer bytes rather than stall the vCPU. */
static uint32_t rng_fill(const struct virtq_elem *e)
{
	uint64_t done = 0;
	for (unsigned i = 0; i < e->nin && done < VIRTIO_RNG_MAX_REQUEST; i++) {
		uint8_t *p = e->in[i].iov_base;
		uint64_t want = e->in[i].iov_len, got = 0;
		if (want > VIRTIO_RNG_MAX_REQUEST - done)
			want = VIRTIO_RNG_MAX_REQUEST - done;
		while (got < want) {
			ssize_t n = getrandom(p + got, want - got, GRND_NONBLOCK);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return (uint32_t)(done + got);
			got += (uint64_t)n;
		}
		done += got;
	}
	return (uint32_t)done;
}

static int64_t rng_request(void *dev, struct virtq_elem *e)
{
	struct virtio_rng *rng = dev;
	if (e->nout || !e->nin)
		return -EINVAL;
	uint32_t len = rng_fill(e);
	atomic_fetch_add(&rng->bytes, len);
	atomic_fetch_add(&rng->requests, 1);
	return len;
}

static int rng_notify(void *dev, const struct guest_mem *gm, struct virtq *vq, unsigned index)
{
	(void)index; /* one queue */
	struct virtio_rng *rng = dev;
	return virtq_serve(gm, vq, &rng->elem, rng_request, rng);
}

static uint64_t rng_features(void *dev)
{
	(void)dev;
	return 1ull << VIRTIO_F_VERSION_1;
}

static void rng_config_read(void *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
	(void)dev, (void)offset;
	memset(data, 0, len); /* it has no configuration space */
}

static int rng_create(void *dev, const char *options, struct error *err)
{
	(void)dev;
	if (options[0])
		return error_set(err, STATUS_USAGE, EINVAL, "rng takes no options (got '%s')",
				 options);
	return 0;
}

static unsigned rng_figures(void *dev, struct virtio_figure *out)
{
	struct virtio_rng *rng = dev;
	out[0] = (struct virtio_figure){"requests", atomic_load(&rng->requests)};
	out[1] = (struct virtio_figure){"bytes", atomic_load(&rng->bytes)};
	return 2;
}

const struct virtio_device_ops virtio_rng_ops = {
	.device_id = VIRTIO_ID_RNG,
	.nr_queues = 1,
	.features = rng_features,
	.config_read = rng_config_read,
	.notify = rng_notify,
};

const struct virtio_kind virtio_rng_kind = {
	.name = "rng",
	.ops = &virtio_rng_ops,
	.size = sizeof(struct virtio_rng),
	.create = rng_create,
	.figures = rng_figures,
};
