#include "virtio/mmio.h"

#include <string.h>

#define REG_MAGIC		0x000
#define REG_VERSION		0x004
#define REG_DEVICE_ID		0x008
#define REG_VENDOR_ID		0x00c
#define REG_DEVICE_FEATURES	0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES	0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL		0x030
#define REG_QUEUE_NUM_MAX	0x034
#define REG_QUEUE_NUM		0x038
#define REG_QUEUE_READY		0x044
#define REG_QUEUE_NOTIFY	0x050
#define REG_INTERRUPT_STATUS	0x060
#define REG_INTERRUPT_ACK	0x064
#define REG_STATUS		0x070
#define REG_QUEUE_DESC_LOW	0x080
#define REG_QUEUE_DESC_HIGH	0x084
#define REG_QUEUE_DRIVER_LOW	0x090
#define REG_QUEUE_DRIVER_HIGH	0x094
#define REG_QUEUE_DEVICE_LOW	0x0a0
#define REG_QUEUE_DEVICE_HIGH	0x0a4
#define REG_CONFIG_GENERATION	0x0fc
#define REG_CONFIG		0x100

#define MAGIC		0x74726976 /* "virt" */
#define VENDOR		0x4b564d48 /* "KVMH" */
#define INT_USED_BUFFER 1
#define INT_CONFIG	2

void virtio_mmio_init(struct virtio_mmio *m, const struct virtio_device_ops *ops, void *dev,
		      const struct guest_mem *gm, uint32_t gsi, virtio_irq_fn set_irq,
		      void *irq_opaque)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->ops = ops;
	m->dev = dev;
	m->gm = gm;
	m->gsi = gsi;
	m->set_irq = set_irq;
	m->irq_opaque = irq_opaque;
}

void virtio_mmio_destroy(struct virtio_mmio *m)
{
	pthread_mutex_destroy(&m->lock);
}

static void update_irq(struct virtio_mmio *m)
{
	bool level = m->isr != 0;
	if (level != m->irq_level && m->set_irq)
		m->set_irq(m->irq_opaque, m->gsi, level);
	m->irq_level = level;
}

static void reset(struct virtio_mmio *m)
{
	m->status = 0;
	m->isr = 0;
	m->queue_sel = m->dev_feat_sel = m->drv_feat_sel = 0;
	m->driver_features = 0;
	memset(&m->vq, 0, sizeof(m->vq));
	update_irq(m);
}

/* The driver broke the rules: stop serving it until it resets us. */
static void needs_reset(struct virtio_mmio *m)
{
	m->status |= VIRTIO_STATUS_NEEDS_RESET;
	m->isr |= INT_CONFIG;
	update_irq(m);
}

static uint32_t read_reg(struct virtio_mmio *m, uint64_t off)
{
	uint64_t dev_features = m->ops->features(m->dev);
	switch (off) {
	case REG_MAGIC:
		return MAGIC;
	case REG_VERSION:
		return 2;
	case REG_DEVICE_ID:
		return m->ops->device_id;
	case REG_VENDOR_ID:
		return VENDOR;
	case REG_DEVICE_FEATURES:
		return m->dev_feat_sel == 0   ? (uint32_t)dev_features
		       : m->dev_feat_sel == 1 ? (uint32_t)(dev_features >> 32)
					      : 0;
	case REG_QUEUE_NUM_MAX:
		return m->queue_sel == 0 ? VIRTIO_MMIO_QUEUE_MAX : 0;
	case REG_QUEUE_READY:
		return m->queue_sel == 0 && m->vq.ready;
	case REG_INTERRUPT_STATUS:
		return m->isr;
	case REG_STATUS:
		return m->status;
	case REG_CONFIG_GENERATION:
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
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(m->status & VIRTIO_STATUS_FEATURES_OK)) {
		/* Accept only what we offered, and only the modern interface. */
		uint64_t offered = m->ops->features(m->dev);
		if ((m->driver_features & ~offered) ||
		    !(m->driver_features & (1ull << VIRTIO_F_VERSION_1)))
			v &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
	}
	/* The device's own bits are not the driver's to set or clear. */
	m->status = (v & ~(uint32_t)VIRTIO_STATUS_NEEDS_RESET) |
		    (m->status & VIRTIO_STATUS_NEEDS_RESET);
}

static void notify(struct virtio_mmio *m)
{
	atomic_fetch_add(&m->notifies, 1);
	if (!(m->status & VIRTIO_STATUS_DRIVER_OK) || (m->status & VIRTIO_STATUS_NEEDS_RESET) ||
	    !m->vq.ready)
		return;
	int r = m->ops->notify(m->dev, m->gm, &m->vq);
	if (r < 0) {
		needs_reset(m);
		return;
	}
	if (r > 0 && !virtq_no_interrupt(m->gm, &m->vq)) {
		m->isr |= INT_USED_BUFFER;
		update_irq(m);
	}
}

static void write_reg(struct virtio_mmio *m, uint64_t off, uint32_t v)
{
	/* Queue layout is fixed once the queue is ready. */
	bool q_writable = m->queue_sel == 0 && !m->vq.ready;
	switch (off) {
	case REG_DEVICE_FEATURES_SEL:
		m->dev_feat_sel = v;
		break;
	case REG_DRIVER_FEATURES:
		if (m->status & VIRTIO_STATUS_FEATURES_OK)
			break;
		if (m->drv_feat_sel == 0)
			m->driver_features = (m->driver_features & ~0xffffffffull) | v;
		else if (m->drv_feat_sel == 1)
			m->driver_features =
				(m->driver_features & 0xffffffffull) | ((uint64_t)v << 32);
		break;
	case REG_DRIVER_FEATURES_SEL:
		m->drv_feat_sel = v;
		break;
	case REG_QUEUE_SEL:
		m->queue_sel = v;
		break;
	case REG_QUEUE_NUM:
		if (q_writable)
			m->vq.num = v <= VIRTIO_MMIO_QUEUE_MAX ? (uint16_t)v : 0;
		break;
	case REG_QUEUE_READY:
		if (m->queue_sel != 0)
			break;
		if (!v) {
			m->vq.ready = false;
		} else if (!m->vq.ready) {
			m->vq.ready = virtq_rings_valid(m->gm, &m->vq);
			if (!m->vq.ready)
				needs_reset(m); /* rings outside RAM, or a bad size */
		}
		break;
	case REG_QUEUE_NOTIFY:
		if (v == 0)
			notify(m);
		break;
	case REG_INTERRUPT_ACK:
		m->isr &= ~v;
		update_irq(m);
		break;
	case REG_STATUS:
		write_status(m, v);
		break;
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
		if (q_writable)
			set_addr(&m->vq.desc_gpa, off == REG_QUEUE_DESC_HIGH, v);
		break;
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
		if (q_writable)
			set_addr(&m->vq.avail_gpa, off == REG_QUEUE_DRIVER_HIGH, v);
		break;
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		if (q_writable)
			set_addr(&m->vq.used_gpa, off == REG_QUEUE_DEVICE_HIGH, v);
		break;
	default:
		atomic_fetch_add(&m->bad_accesses, 1); /* read-only or reserved */
		break;
	}
}

void virtio_mmio_access(void *opaque, struct vcpu *vcpu, uint64_t offset, uint8_t *data,
			uint32_t len, bool is_write)
{
	struct virtio_mmio *m = opaque;
	(void)vcpu;
	pthread_mutex_lock(&m->lock);
	if (offset >= REG_CONFIG) {
		/* Device config: any width; writes are not supported by virtio-blk. */
		if (!is_write)
			m->ops->config_read(m->dev, offset - REG_CONFIG, data, len);
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
	bool r = m->status & VIRTIO_STATUS_NEEDS_RESET;
	pthread_mutex_unlock(&m->lock);
	return r;
}
