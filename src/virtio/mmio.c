/* The virtio-mmio transport (version 2): registers, feature negotiation
 * and queue setup, with one lock per device that is also held while a
 * notify is served. A driver that breaks the rules gets NEEDS_RESET and no
 * more service until it resets the device; the VMM goes on. */
#include "virtio/mmio.h"

#include <errno.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <string.h>

#include "util/util.h"

#define MAGIC  0x74726976 /* "virt" */
#define VENDOR 0x4b564d48 /* "KVMH" */

void virtio_mmio_init(struct virtio_mmio *m, const struct virtio_device_ops *ops, void *dev,
		      const struct guest_mem *gm, const struct device_host *host, uint32_t gsi)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->ops = ops;
	m->dev = dev;
	m->gm = gm;
	m->host = host;
	m->gsi = gsi;
	m->device_id = ops->device_id;
	m->nr_queues = ops->nr_queues;
}

void virtio_mmio_destroy(struct virtio_mmio *m)
{
	pthread_mutex_destroy(&m->lock);
}

static void update_irq(struct virtio_mmio *m)
{
	bool level = m->isr != 0;
	if (level != m->irq_level)
		device_set_irq(m->host, m->gsi, level);
	m->irq_level = level;
}

static void reset(struct virtio_mmio *m)
{
	m->status = 0;
	m->isr = 0;
	m->queue_sel = m->dev_feat_sel = m->drv_feat_sel = 0;
	m->driver_features = 0;
	memset(m->vqs, 0, sizeof(m->vqs));
	if (m->ops->reset)
		m->ops->reset(m->dev);
	update_irq(m);
}

/* The selected queue, if the device has it. */
static struct virtq *sel_queue(struct virtio_mmio *m)
{
	return m->queue_sel < m->ops->nr_queues ? &m->vqs[m->queue_sel] : NULL;
}

/* The driver broke the rules: stop serving it until it resets us. */
static void needs_reset(struct virtio_mmio *m)
{
	m->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	m->isr |= VIRTIO_MMIO_INT_CONFIG;
	update_irq(m);
}

static uint32_t read_reg(struct virtio_mmio *m, uint64_t off)
{
	uint64_t dev_features = m->ops->features(m->dev);
	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return m->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return m->dev_feat_sel == 0   ? (uint32_t)dev_features
		       : m->dev_feat_sel == 1 ? (uint32_t)(dev_features >> 32)
					      : 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return sel_queue(m) ? VIRTIO_MMIO_QUEUE_MAX : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return sel_queue(m) && sel_queue(m)->ready;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return m->isr;
	case VIRTIO_MMIO_STATUS:
		return m->status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return m->config_gen;
	default:
		return 0; /* write-only or reserved */
	}
}

static void set_addr(uint64_t *addr, bool high, uint32_t v)
{
	*addr = high ? (*addr & 0xffffffffull) | ((uint64_t)v << 32) : (*addr & ~0xffffffffull) | v;
}

static void write_status(struct virtio_mmio *m, uint32_t v)
{
	if (v == 0) {
		reset(m);
		return;
	}
	if ((v & VIRTIO_CONFIG_S_FEATURES_OK) && !(m->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
		/* Accept only what we offered, and only the modern interface. */
		uint64_t offered = m->ops->features(m->dev);
		if ((m->driver_features & ~offered) ||
		    !(m->driver_features & (1ull << VIRTIO_F_VERSION_1)))
			v &= ~(uint32_t)VIRTIO_CONFIG_S_FEATURES_OK;
	}
	/* The device's own bits are not the driver's to set or clear. */
	m->status = (v & ~(uint32_t)VIRTIO_CONFIG_S_NEEDS_RESET) |
		    (m->status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static bool driver_running(const struct virtio_mmio *m)
{
	return (m->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(m->status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

struct virtq *virtio_mmio_live_queue(struct virtio_mmio *m, unsigned index)
{
	return index < m->ops->nr_queues && driver_running(m) && m->vqs[index].ready
		       ? &m->vqs[index]
		       : NULL;
}

void virtio_mmio_used(struct virtio_mmio *m, unsigned index)
{
	if (index < m->ops->nr_queues && virtq_needs_interrupt(m->gm, &m->vqs[index])) {
		atomic_fetch_add(&m->interrupts, 1);
		m->isr |= VIRTIO_MMIO_INT_VRING;
		update_irq(m);
	}
}

void virtio_mmio_config_changed(struct virtio_mmio *m)
{
	m->config_gen++;
	if (!driver_running(m))
		return;
	m->isr |= VIRTIO_MMIO_INT_CONFIG;
	update_irq(m);
}

void virtio_mmio_served(struct virtio_mmio *m, unsigned index, int result)
{
	if (result < 0)
		needs_reset(m);
	else if (result > 0)
		virtio_mmio_used(m, index);
}

static void notify(struct virtio_mmio *m, uint32_t index)
{
	atomic_fetch_add(&m->notifies, 1);
	struct virtq *vq = virtio_mmio_live_queue(m, index);
	if (vq)
		virtio_mmio_served(m, index, m->ops->notify(m->dev, m->gm, vq, index));
}

/* Which notification words the driver's queues use: fixed once it has
 * accepted the features, before any queue is ready. */
static void set_event_idx(struct virtio_mmio *m, struct virtq *q)
{
	q->event_idx = m->driver_features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	q->signalled_valid = false;
}

static void write_reg(struct virtio_mmio *m, uint64_t off, uint32_t v)
{
	/* Queue layout is fixed once the queue is ready. */
	struct virtq *q = sel_queue(m);
	bool q_writable = q && !q->ready;
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		m->dev_feat_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (m->status & VIRTIO_CONFIG_S_FEATURES_OK)
			break;
		if (m->drv_feat_sel == 0)
			m->driver_features = (m->driver_features & ~0xffffffffull) | v;
		else if (m->drv_feat_sel == 1)
			m->driver_features =
				(m->driver_features & 0xffffffffull) | ((uint64_t)v << 32);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		m->drv_feat_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		m->queue_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (q_writable)
			q->num = v <= VIRTIO_MMIO_QUEUE_MAX ? (uint16_t)v : 0;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (!q)
			break;
		if (!v) {
			q->ready = false;
		} else if (!q->ready) {
			set_event_idx(m, q);
			q->ready = virtq_rings_valid(m->gm, q);
			if (!q->ready)
				needs_reset(m); /* rings outside RAM, or a bad size */
		}
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		notify(m, v);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		m->isr &= ~v;
		update_irq(m);
		break;
	case VIRTIO_MMIO_STATUS:
		write_status(m, v);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (q_writable)
			set_addr(&q->desc_gpa, off == VIRTIO_MMIO_QUEUE_DESC_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		if (q_writable)
			set_addr(&q->avail_gpa, off == VIRTIO_MMIO_QUEUE_AVAIL_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if (q_writable)
			set_addr(&q->used_gpa, off == VIRTIO_MMIO_QUEUE_USED_HIGH, v);
		break;
	default:
		atomic_fetch_add(&m->bad_accesses, 1); /* read-only or reserved */
		break;
	}
}

static void virtio_mmio_access(void *opaque, unsigned vcpu, uint64_t offset, uint8_t *data,
			       uint32_t len, bool is_write)
{
	struct virtio_mmio *m = opaque;
	(void)vcpu;
	pthread_mutex_lock(&m->lock);
	if (offset >= VIRTIO_MMIO_CONFIG) {
		/* Device config: any width; read-only for our devices. */
		if (!is_write)
			m->ops->config_read(m->dev, offset - VIRTIO_MMIO_CONFIG, data, len);
	} else if (len != 4 || (offset & 3)) {
		atomic_fetch_add(&m->bad_accesses, 1);
		if (!is_write)
			memset(data, 0xff, len);
	} else if (is_write) {
		uint32_t v;
		memcpy(&v, data, 4);
		write_reg(m, offset, v);
	} else {
		uint32_t v = read_reg(m, offset);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&m->lock);
}

bool virtio_mmio_needs_reset(struct virtio_mmio *m)
{
	pthread_mutex_lock(&m->lock);
	bool r = m->status & VIRTIO_CONFIG_S_NEEDS_RESET;
	pthread_mutex_unlock(&m->lock);
	return r;
}

bool virtio_mmio_has_feature(struct virtio_mmio *m, unsigned bit)
{
	pthread_mutex_lock(&m->lock);
	bool r = (m->status & VIRTIO_CONFIG_S_FEATURES_OK) && (m->driver_features & (1ull << bit));
	pthread_mutex_unlock(&m->lock);
	return r;
}

/* A ready queue's rings must still be in guest memory. */
static int virtio_mmio_post_load(void *opaque, uint32_t version)
{
	struct virtio_mmio *m = opaque;
	(void)version;
	for (uint32_t i = 0; i < m->nr_queues; i++) {
		if (!virtq_state_valid(m->gm, &m->vqs[i]))
			return -EINVAL;
		set_event_idx(m, &m->vqs[i]);
	}
	return 0;
}

/* Transport registers and each queue's layout and position (version 1: one
 * queue, no count). The device's own part follows, with its own version. */
static const struct vmstate_field virtio_mmio_fields[] = {
	VMS_UINT(struct virtio_mmio, device_id, .must_match = true),
	VMS_UINT(struct virtio_mmio, status),
	VMS_UINT(struct virtio_mmio, isr),
	VMS_UINT(struct virtio_mmio, queue_sel),
	VMS_UINT(struct virtio_mmio, dev_feat_sel),
	VMS_UINT(struct virtio_mmio, drv_feat_sel),
	VMS_UINT(struct virtio_mmio, config_gen),
	VMS_UINT(struct virtio_mmio, driver_features),
	VMS_UINT(struct virtio_mmio, nr_queues, .must_match = true, .since = 2),
	VMS_ARRAY(struct virtio_mmio, vqs, nr_queues, struct virtq, &virtq_state,
		  .inline_array = true),
};

static const struct vmstate virtio_mmio_state = {
	.name = "virtio-mmio",
	.version = 2,
	.min_version = 1,
	.fields = virtio_mmio_fields,
	.nr_fields = ARRAY_SIZE(virtio_mmio_fields),
	.post_load = virtio_mmio_post_load,
};

/* No request is in flight: vCPUs are parked, and requests are served on
 * the vCPU that notified, under this lock. */
static void virtio_mmio_save(void *opaque, struct state_writer *w)
{
	struct virtio_mmio *m = opaque;
	pthread_mutex_lock(&m->lock);
	vmstate_save(&virtio_mmio_state, m, w);
	if (m->ops->state)
		vmstate_save(m->ops->state, m->dev, w);
	pthread_mutex_unlock(&m->lock);
}

static int virtio_mmio_restore(void *opaque, struct state_reader *r)
{
	struct virtio_mmio *m = opaque;
	pthread_mutex_lock(&m->lock);
	int ret = vmstate_load(&virtio_mmio_state, m, r);
	if (!ret && m->ops->state)
		ret = vmstate_load(m->ops->state, m->dev, r);
	if (ret)
		reset(m); /* whatever failed, nothing half-restored stays */
	else
		update_irq(m);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

const struct device_ops virtio_mmio_ops = {
	.name = "virtio-mmio",
	.access = virtio_mmio_access,
	.save = virtio_mmio_save,
	.restore = virtio_mmio_restore,
};
