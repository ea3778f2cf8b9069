/* Split virtqueues in guest memory (virtqueue.h): each descriptor copied
 * once before use, every index, address and length checked, a chain no
 * longer than the ring; used entries published with release ordering and
 * marked dirty for migration. Also the iovec helpers devices copy with. */
#include "virtio/virtqueue.h"

#include <errno.h>
#include <linux/virtio_ring.h>
#include <string.h>

#include "util/util.h"

/* Ring sizes with the event-index word at the end (struct vring_avail and
 * struct vring_used are flags, idx, then the entries). */
static uint64_t avail_size(uint16_t num)
{
	return sizeof(struct vring_avail) + sizeof(__virtio16) * (num + 1ull);
}
static uint64_t used_size(uint16_t num)
{
	return sizeof(struct vring_used) + sizeof(struct vring_used_elem) * num +
	       sizeof(__virtio16);
}

bool virtq_rings_valid(const struct guest_mem *gm, const struct virtq *vq)
{
	if (vq->num == 0 || vq->num > VIRTQ_MAX_SIZE)
		return false;
	/* Alignment the spec requires: desc 16, avail 2, used 4. */
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
		return false;
	return gm_ptr(gm, vq->desc_gpa, sizeof(struct vring_desc) * (uint64_t)vq->num) &&
	       gm_ptr(gm, vq->avail_gpa, avail_size(vq->num)) &&
	       gm_ptr(gm, vq->used_gpa, used_size(vq->num));
}

/* The driver's avail ring of a ready queue whose rings fit, else NULL. */
static uint16_t *live_avail(const struct guest_mem *gm, const struct virtq *vq)
{
	return vq->ready && virtq_rings_valid(gm, vq)
		       ? gm_ptr(gm, vq->avail_gpa, avail_size(vq->num))
		       : NULL;
}

/* vring_avail.idx: what the driver has made available so far. */
static uint16_t driver_idx(const uint16_t *avail)
{
	return __atomic_load_n(&avail[1], __ATOMIC_ACQUIRE);
}

int virtq_pop(const struct guest_mem *gm, struct virtq *vq, struct virtq_elem *e)
{
	uint16_t *avail = live_avail(gm, vq);
	if (!avail)
		return -EINVAL;
	const struct vring_desc *table =
		gm_ptr(gm, vq->desc_gpa, sizeof(struct vring_desc) * (uint64_t)vq->num);
	uint16_t idx = vq->avail_seen = driver_idx(avail);
	uint16_t pending = (uint16_t)(idx - vq->last_avail);
	if (pending == 0)
		return 0;
	if (pending > vq->num)
		return -EINVAL; /* more entries than the ring holds */
	uint16_t head = __atomic_load_n(&avail[2 + vq->last_avail % vq->num], __ATOMIC_RELAXED);
	if (head >= vq->num)
		return -EINVAL;

	e->head = head;
	e->nout = e->nin = 0;
	e->out_len = e->in_len = 0;
	uint16_t i = head;
	for (unsigned count = 0;; count++) {
		if (count >= vq->num)
			return -EINVAL; /* a chain longer than the table: a loop */
		struct vring_desc d;
		memcpy(&d, &table[i], sizeof(d)); /* one read: the guest may change it */
		if (d.flags & VRING_DESC_F_INDIRECT)
			return -EINVAL; /* not offered */
		if (d.len) {
			void *p = gm_ptr(gm, d.addr, d.len);
			if (!p)
				return -EINVAL;
			if (d.flags & VRING_DESC_F_WRITE) {
				if (e->nin >= VIRTQ_MAX_SEGS)
					return -EINVAL;
				e->in[e->nin++] = (struct iovec){p, d.len};
				e->in_len += d.len;
			} else {
				/* Device-readable buffers must all come first. */
				if (e->nin || e->nout >= VIRTQ_MAX_SEGS)
					return -EINVAL;
				e->out[e->nout++] = (struct iovec){p, d.len};
				e->out_len += d.len;
			}
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= vq->num)
			return -EINVAL;
		i = d.next;
	}
	vq->last_avail++;
	return 1;
}

int virtq_serve(const struct guest_mem *gm, struct virtq *vq, struct virtq_elem *e,
		virtq_request_fn request, void *dev)
{
	int used = 0;
	for (unsigned k = 0; k < vq->num; k++) {
		int r = virtq_pop(gm, vq, e);
		if (r < 0)
			return r;
		if (r == 0) {
			if (virtq_arm_notify(gm, vq))
				return used;
			continue; /* added meanwhile, maybe without a notify */
		}
		int64_t len = request(dev, e);
		if (len < 0)
			return (int)len;
		virtq_push(gm, vq, e, (uint32_t)len);
		used++;
	}
	/* At the cap: armed too, so that only what is already there (for
	 * virtq_pending) can go without a notify - a ring filled to the last
	 * entry before one notify leaves nothing, and the next buffer notifies. */
	virtq_arm_notify(gm, vq);
	return used;
}

void virtq_unpop(struct virtq *vq, uint16_t n)
{
	vq->last_avail = (uint16_t)(vq->last_avail - n);
}

void virtq_push(const struct guest_mem *gm, struct virtq *vq, const struct virtq_elem *e,
		uint32_t len)
{
	uint8_t *used = gm_ptr(gm, vq->used_gpa, used_size(vq->num));
	if (!used)
		return;
	/* What the device wrote, before the guest may see it is done. */
	for (unsigned i = 0; i < e->nin; i++)
		gm_mark_dirty(gm, e->in[i].iov_base, e->in[i].iov_len);
	struct vring_used_elem elem = {.id = e->head, .len = len};
	memcpy(used + sizeof(struct vring_used) + sizeof(elem) * (vq->used_idx % vq->num), &elem,
	       sizeof(elem));
	vq->used_idx++;
	/* The element must be visible before the index that publishes it. */
	__atomic_store_n((uint16_t *)(used + offsetof(struct vring_used, idx)), vq->used_idx,
			 __ATOMIC_RELEASE);
	gm_mark_dirty(gm, used, used_size(vq->num));
}

bool virtq_needs_interrupt(const struct guest_mem *gm, struct virtq *vq)
{
	uint16_t *avail = gm_ptr(gm, vq->avail_gpa, avail_size(vq->num));
	if (!avail)
		return false;
	/* The used index published before the driver's word is read: it
	 * writes that word, then reads the index (virtio 1.1, 2.6.7.2). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(__atomic_load_n(&avail[0], __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT);
	uint16_t used_event = __atomic_load_n(&avail[2 + vq->num], __ATOMIC_RELAXED);
	uint16_t old = vq->signalled_used;
	bool known = vq->signalled_valid;
	vq->signalled_used = vq->used_idx;
	vq->signalled_valid = true;
	return !known || vring_need_event(used_event, vq->used_idx, old);
}

/* The device's word on notifications: VRING_USED_F_NO_NOTIFY in the used
 * ring's flags, or with event indexes avail_event after its entries. */
static void set_notify_word(const struct guest_mem *gm, struct virtq *vq, bool arm)
{
	uint8_t *used = gm_ptr(gm, vq->used_gpa, used_size(vq->num));
	if (!used || (vq->event_idx && !arm))
		return;
	uint16_t *word = vq->event_idx ? (uint16_t *)(used + used_size(vq->num) - 2)
				       : (uint16_t *)used; /* avail_event, or flags */
	uint16_t value = vq->event_idx ? vq->avail_seen : arm ? 0 : VRING_USED_F_NO_NOTIFY;
	/* Only we write it: a disk's every serve need not dirty the page. */
	if (__atomic_load_n(word, __ATOMIC_RELAXED) == value)
		return;
	__atomic_store_n(word, value, __ATOMIC_RELAXED);
	gm_mark_dirty(gm, word, sizeof(*word));
}

void virtq_quiet_notify(const struct guest_mem *gm, struct virtq *vq)
{
	if (live_avail(gm, vq))
		set_notify_word(gm, vq, false);
}

bool virtq_arm_notify(const struct guest_mem *gm, struct virtq *vq)
{
	uint16_t *avail = live_avail(gm, vq);
	if (!avail)
		return true; /* nothing to serve until the driver sets it up */
	set_notify_word(gm, vq, true);
	/* Our word before its index: the driver writes the index, then reads
	 * our word (virtio 1.1, 2.6.7.2); one of us sees the other. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return driver_idx(avail) == vq->avail_seen;
}

bool virtq_pending(const struct guest_mem *gm, struct virtq *vq)
{
	uint16_t *avail = live_avail(gm, vq);
	return avail && driver_idx(avail) != vq->last_avail;
}

static const struct vmstate_field virtq_fields[] = {
	VMS_UINT(struct virtq, num),	  VMS_BOOL(struct virtq, ready),
	VMS_UINT(struct virtq, desc_gpa), VMS_UINT(struct virtq, avail_gpa),
	VMS_UINT(struct virtq, used_gpa), VMS_UINT(struct virtq, last_avail),
	VMS_UINT(struct virtq, used_idx),
};

const struct vmstate virtq_state = {
	.name = "virtqueue",
	.fields = virtq_fields,
	.nr_fields = ARRAY_SIZE(virtq_fields),
};

bool virtq_state_valid(const struct guest_mem *gm, const struct virtq *vq)
{
	return vq->num <= VIRTQ_MAX_SIZE && (!vq->ready || virtq_rings_valid(gm, vq));
}

/* One walk for both directions: to_iov copies buf into the list. */
static uint64_t iov_copy(const struct iovec *iov, unsigned n, uint64_t off, uint8_t *buf,
			 uint64_t len, bool to_iov)
{
	uint64_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		uint64_t chunk = iov[i].iov_len - off;
		if (chunk > len - done)
			chunk = len - done;
		uint8_t *p = (uint8_t *)iov[i].iov_base + off;
		if (to_iov)
			memcpy(p, buf + done, chunk);
		else
			memcpy(buf + done, p, chunk);
		done += chunk;
		off = 0;
	}
	return done;
}

uint64_t iov_copy_from(const struct iovec *iov, unsigned n, uint64_t off, void *buf, uint64_t len)
{
	return iov_copy(iov, n, off, buf, len, false);
}

uint64_t iov_copy_to(const struct iovec *iov, unsigned n, uint64_t off, const void *buf,
		     uint64_t len)
{
	return iov_copy(iov, n, off, (uint8_t *)buf, len, true);
}

unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len,
		   struct iovec *out)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		uint64_t chunk = iov[i].iov_len - off;
		if (chunk > len)
			chunk = len;
		out[k++] = (struct iovec){(uint8_t *)iov[i].iov_base + off, chunk};
		len -= chunk;
		off = 0;
	}
	return k;
}
