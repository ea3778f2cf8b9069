/* Split virtqueues (virtio 1.x), read from guest memory the guest may change
 * under us: every index, address and length is checked before use, and each
 * descriptor is copied once before it is looked at. */
#ifndef KVMHOST_VIRTQUEUE_H
#define KVMHOST_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/guest_mem.h"
#include "util/state.h"
#include "util/vmstate.h"

#define VIRTQ_MAX_SIZE 256
#define VIRTQ_MAX_SEGS 130 /* seg_max 128 data segments + header + status */

struct virtq {
	uint16_t num; /* size the driver chose, 1..VIRTQ_MAX_SIZE */
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t last_avail; /* next avail entry to take */
	uint16_t used_idx;
	/* Not saved: the transport sets event_idx from the features, and a
	 * restored queue starts again from signalled_valid false. */
	bool event_idx;		 /* VIRTIO_RING_F_EVENT_IDX: the index words, not flags */
	bool signalled_valid;	 /* signalled_used is known */
	uint16_t signalled_used; /* used_idx when the driver was last asked about */
	uint16_t avail_seen;	 /* the driver's avail index, as last read */
};

/* One request's buffers: `out` the device reads, `in` the device writes. */
struct virtq_elem {
	uint16_t head;
	struct iovec out[VIRTQ_MAX_SEGS], in[VIRTQ_MAX_SEGS];
	unsigned nout, nin;
	uint64_t out_len, in_len;
};

/* True if the rings of this size fit in guest memory at these addresses. */
bool virtq_rings_valid(const struct guest_mem *gm, const struct virtq *vq);
/* 1: an element was taken; 0: nothing available; -EINVAL: the driver broke
 * the rules (bad index, address, loop, layout) and the device needs a reset. */
int virtq_pop(const struct guest_mem *gm, struct virtq *vq, struct virtq_elem *e);
/* What a device does with one request: the bytes it wrote into the
 * element's device-writable buffers, or a negative errno for a request the
 * driver should never have made (the device then needs a reset). */
typedef int64_t (*virtq_request_fn)(void *dev, struct virtq_elem *e);
/* Serves what the driver made available, each request popped into `e`,
 * handed to `request` and pushed back, until the queue is empty with the
 * driver asked to notify its next buffer (virtq_arm_notify); at most one
 * ring's worth per call, so a driver that keeps refilling cannot hold the
 * vCPU here for ever - armed then too, but with event indexes what is
 * already there gets no notify: virtq_pending tells the caller to come
 * back. Returns how many were used, or the first negative errno. */
int virtq_serve(const struct guest_mem *gm, struct virtq *vq, struct virtq_elem *e,
		virtq_request_fn request, void *dev);
/* Gives back the last n elements popped and not pushed, to pop again. */
void virtq_unpop(struct virtq *vq, uint16_t n);
/* Returns the element to the driver with `len` bytes written; its
 * device-writable buffers count as written (gm_mark_dirty). */
void virtq_push(const struct guest_mem *gm, struct virtq *vq, const struct virtq_elem *e,
		uint32_t len);
/* A queue's layout and position, as its transport's state holds it (the
 * rings themselves are in guest memory); a restored one is checked with
 * virtq_state_valid: the rings must still fit when the queue is ready. */
extern const struct vmstate virtq_state;
bool virtq_state_valid(const struct guest_mem *gm, const struct virtq *vq);
/* Whether the driver wants an interrupt for what was used since it was last
 * asked: its flag, or with event indexes its used_event word (then the
 * answer also moves signalled_used on). Call once per batch pushed. */
bool virtq_needs_interrupt(const struct guest_mem *gm, struct virtq *vq);
/* Notification suppression, for a device that serves the queue on its own:
 * quiet while it is busy taking buffers anyway (a flag; with event indexes
 * nothing - the driver notifies once past the armed index, then no more),
 * armed when it has to wait for the driver. virtq_arm_notify returns false
 * if the driver added buffers since the queue was last read (virtq_pop),
 * which it may not have notified: the caller looks again. */
void virtq_quiet_notify(const struct guest_mem *gm, struct virtq *vq);
bool virtq_arm_notify(const struct guest_mem *gm, struct virtq *vq);
/* Buffers are available that have not been taken. */
bool virtq_pending(const struct guest_mem *gm, struct virtq *vq);

/* Gather/scatter helpers over an iovec list, from byte `off`. */
uint64_t iov_copy_from(const struct iovec *iov, unsigned n, uint64_t off, void *buf, uint64_t len);
uint64_t iov_copy_to(const struct iovec *iov, unsigned n, uint64_t off, const void *buf,
		     uint64_t len);
/* Sub-list [off, off+len) of an iovec list into out; returns its count. */
unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len,
		   struct iovec *out);

#endif
