/* virtio-net (net.h): transmit served on the notifying vCPU with one writev
 * into the tap; receive on a thread of its own that polls the tap, a kick
 * eventfd and a stop eventfd, and leaves the tap alone while the guest has
 * no buffers. The offloads the driver takes are applied to the tap. */
#include "virtio/net.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/util.h"
#include <linux/virtio_ids.h>

#define VNET_HDR    12			  /* struct virtio_net_hdr_mrg_rxbuf */
#define MAX_FRAME   (VNET_HDR + 65550)	  /* a TSO frame, as the tap hands it */
#define SMALL_FRAME (VNET_HDR + 1514 + 4) /* without guest TSO: MTU, VLAN tag */
#define RX_BATCH    64			  /* frames per lock hold */
#define MAX_RX_IOV  1024
#define GUEST_OFFLOADS                                                                             \
	((1ull << VIRTIO_NET_F_GUEST_CSUM) | (1ull << VIRTIO_NET_F_GUEST_TSO4) |                   \
	 (1ull << VIRTIO_NET_F_GUEST_TSO6) | (1ull << VIRTIO_NET_F_GUEST_ECN))

static uint64_t net_features(void *dev)
{
	(void)dev;
	return (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MAC) |
	       (1ull << VIRTIO_NET_F_STATUS) | (1ull << VIRTIO_NET_F_MRG_RXBUF) |
	       (1ull << VIRTIO_NET_F_CTRL_VQ) | (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE) |
	       (1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_HOST_TSO4) |
	       (1ull << VIRTIO_NET_F_HOST_TSO6) | (1ull << VIRTIO_NET_F_HOST_ECN) |
	       (1ull << VIRTIO_RING_F_EVENT_IDX) | GUEST_OFFLOADS;
}

static void net_config_read(void *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct virtio_net *n = dev;
	struct virtio_net_config c = {.status = n->status, .max_virtqueue_pairs = 1};
	memcpy(c.mac, n->mac, sizeof(c.mac));
	memset(data, 0, len);
	if (offset < sizeof(c))
		memcpy(data, (uint8_t *)&c + offset,
		       len < sizeof(c) - offset ? len : sizeof(c) - offset);
}

int virtio_net_tx_chain(const struct virtq_elem *e)
{
	/* Device-readable only: a header, then a frame no larger than a TSO one. */
	return e->nin || e->out_len < VNET_HDR || e->out_len > MAX_FRAME ? -EINVAL : 0;
}

static int64_t transmit(void *dev, struct virtq_elem *e)
{
	struct virtio_net *n = dev;
	if (virtio_net_tx_chain(e)) {
		atomic_fetch_add(&n->stats.bad_chains, 1);
		return -EINVAL;
	}
	/* Straight from the guest's buffers into the tap: the one copy. */
	if (writev(n->tap.fd, e->out, (int)e->nout) < 0) {
		atomic_fetch_add(&n->stats.tx_dropped, 1);
	} else {
		atomic_fetch_add(&n->stats.tx_packets, 1);
		atomic_fetch_add(&n->stats.tx_bytes, e->out_len - VNET_HDR);
	}
	return 0;
}

/* Control: only the announcement's acknowledgement is offered. */
static int64_t control(void *dev, struct virtq_elem *e)
{
	struct virtio_net *n = dev;
	struct virtio_net_ctrl_hdr h;
	uint8_t ack = VIRTIO_NET_ERR;
	if (e->out_len < sizeof(h) || e->in_len < 1)
		return -EINVAL;
	iov_copy_from(e->out, e->nout, 0, &h, sizeof(h));
	if (h.class == VIRTIO_NET_CTRL_ANNOUNCE && h.cmd == VIRTIO_NET_CTRL_ANNOUNCE_ACK) {
		n->status &= (uint16_t)~VIRTIO_NET_S_ANNOUNCE;
		atomic_fetch_add(&n->stats.announces, 1);
		ack = VIRTIO_NET_OK;
	}
	iov_copy_to(e->in, e->nin, e->in_len - 1, &ack, 1);
	return 1;
}

static void wake(int efd)
{
	uint64_t one = 1;
	(void)!write(efd, &one, sizeof(one)); /* a counter: cannot fill */
}

/* Transmit or control requests, a ring's worth at most; what is left then
 * goes to the receive thread, since with event indexes the driver will not
 * notify it again. */
static int serve_queue(struct virtio_net *n, const struct guest_mem *gm, struct virtq *vq,
		       unsigned index)
{
	int r = index == 1 ? virtq_serve(gm, vq, &n->tx_elem, transmit, n)
			   : virtq_serve(gm, vq, &n->ctrl_elem, control, n);
	if (r >= 0 && virtq_pending(gm, vq))
		wake(n->again_efd);
	return r;
}

static int net_notify(void *dev, const struct guest_mem *gm, struct virtq *vq, unsigned index)
{
	struct virtio_net *n = dev;
	if (index == 0) {
		atomic_fetch_add(&n->stats.rx_kicks, 1);
		wake(n->kick_efd); /* new receive buffers: the receive thread takes it from here */
		return 0;
	}
	return serve_queue(n, gm, vq, index);
}

/* On the receive thread: what a notify left for later. */
static void serve_again(struct virtio_net *n)
{
	pthread_mutex_lock(&n->mmio->lock);
	for (unsigned index = 1; index <= 2; index++) {
		struct virtq *vq = virtio_mmio_live_queue(n->mmio, index);
		if (vq)
			virtio_mmio_served(n->mmio, index, serve_queue(n, n->gm, vq, index));
	}
	pthread_mutex_unlock(&n->mmio->lock);
}

static void net_reset(void *dev)
{
	struct virtio_net *n = dev;
	n->status &= (uint16_t)~VIRTIO_NET_S_ANNOUNCE;
}

/* Offloads the driver took, applied to the tap: frames it may hand us. */
static void apply_offload(struct virtio_net *n)
{
	uint64_t f = n->mmio->driver_features;
	unsigned want = 0;
	if (f & (1ull << VIRTIO_NET_F_GUEST_CSUM)) {
		want |= TUN_F_CSUM;
		if (f & (1ull << VIRTIO_NET_F_GUEST_TSO4))
			want |= TUN_F_TSO4;
		if (f & (1ull << VIRTIO_NET_F_GUEST_TSO6))
			want |= TUN_F_TSO6;
		if (f & (1ull << VIRTIO_NET_F_GUEST_ECN))
			want |= TUN_F_TSO_ECN;
	}
	if (want != n->offload && !tap_set_offload(&n->tap, want))
		n->offload = want;
}

/* Buffers for one frame of the largest size it may be: one chain, or with
 * mergeable buffers as many as that takes. 0: not enough yet (all given
 * back), -EINVAL: a broken queue. */
static int take_buffers(struct virtio_net *n, struct virtq *vq, bool mrg, unsigned *count)
{
	uint64_t need = (n->offload & TUN_F_TSO4) ? MAX_FRAME : SMALL_FRAME, have = 0;
	unsigned k = 0;
	while (k < NET_RX_SEGS && (k == 0 || (mrg && have < need))) {
		int r = virtq_pop(n->gm, vq, &n->rx_elems[k]);
		if (r <= 0 || n->rx_elems[k].nout) {
			virtq_unpop(vq, (uint16_t)(k + (r > 0)));
			return r < 0 || (r > 0) ? -EINVAL : 0;
		}
		have += n->rx_elems[k++].in_len;
	}
	*count = k;
	return have >= VNET_HDR ? 1 : -EINVAL;
}

/* Reads one frame into the buffers taken; pushes those it filled and gives
 * back the rest. 1: a frame, 0: the tap is empty. */
static int receive_frame(struct virtio_net *n, struct virtq *vq, unsigned count, bool mrg)
{
	struct iovec iov[MAX_RX_IOV];
	int niov = 0;
	for (unsigned i = 0; i < count; i++)
		for (unsigned j = 0; j < n->rx_elems[i].nin && niov < MAX_RX_IOV; j++)
			iov[niov++] = n->rx_elems[i].in[j];
	ssize_t got = readv(n->tap.fd, iov, niov);
	if (got < VNET_HDR) {
		virtq_unpop(vq, (uint16_t)count);
		return 0;
	}
	uint64_t left = (uint64_t)got;
	uint16_t used = 0;
	while (used < count && (used == 0 || left)) {
		uint64_t len = left < n->rx_elems[used].in_len ? left : n->rx_elems[used].in_len;
		left -= len;
		used++;
	}
	/* num_buffers: always there with VERSION_1; 1 without mergeable buffers. */
	uint16_t nb = mrg ? used : 1;
	iov_copy_to(n->rx_elems[0].in, n->rx_elems[0].nin, 10, &nb, sizeof(nb));
	left = (uint64_t)got;
	for (uint16_t i = 0; i < used; i++) {
		uint64_t len = left < n->rx_elems[i].in_len ? left : n->rx_elems[i].in_len;
		virtq_push(n->gm, vq, &n->rx_elems[i], (uint32_t)len);
		left -= len;
	}
	virtq_unpop(vq, (uint16_t)(count - used));
	atomic_fetch_add(&n->stats.rx_packets, 1);
	atomic_fetch_add(&n->stats.rx_bytes, (uint64_t)got - VNET_HDR);
	return 1;
}

/* Frames from the tap into the guest while it has buffers. false: wait for
 * the guest (a kick) before reading the tap again. */
static bool receive(struct virtio_net *n)
{
	bool more = true;
	int frames = 0;
	pthread_mutex_lock(&n->mmio->lock);
	apply_offload(n);
	struct virtq *vq = virtio_mmio_live_queue(n->mmio, 0);
	bool mrg = n->mmio->driver_features & (1ull << VIRTIO_NET_F_MRG_RXBUF);
	if (!vq || !(n->status & VIRTIO_NET_S_LINK_UP))
		more = false;
	else
		virtq_quiet_notify(n->gm, vq); /* taking buffers as they come: no kicks */
	for (int i = 0; more && i < RX_BATCH; i++) {
		unsigned count;
		int r = take_buffers(n, vq, mrg, &count);
		if (r == 0) {
			/* Each wait arms one notify: the driver's only other ones
			 * come before it has seen an armed index. */
			atomic_fetch_add(&n->stats.rx_waits, 1);
			if (!virtq_arm_notify(n->gm, vq))
				continue; /* buffers came as it was armed: look again */
		} else if (r < 0) {
			atomic_fetch_add(&n->stats.bad_chains, 1);
		}
		if (r <= 0) {
			more = false;
			break;
		}
		if (!receive_frame(n, vq, count, mrg))
			break;
		frames++;
	}
	if (frames)
		virtio_mmio_used(n->mmio, 0);
	pthread_mutex_unlock(&n->mmio->lock);
	return more;
}

bool virtio_net_poll_rx(struct virtio_net *n)
{
	return receive(n);
}

static void *rx_thread(void *arg)
{
	struct virtio_net *n = arg;
	(void)pthread_setname_np(pthread_self(), "net-rx"); /* for ps and audit logs only */
	if (sandbox_enter(n->sandbox, SANDBOX_NET)) {
		log_err("net %s: cannot enter the sandbox", n->tap.name);
		return NULL;
	}
	bool waiting = false;
	for (;;) {
		struct pollfd p[4] = {{n->stop_efd, POLLIN, 0},
				      {n->kick_efd, POLLIN, 0},
				      {n->again_efd, POLLIN, 0},
				      {n->tap.fd, (short)(waiting ? 0 : POLLIN), 0}};
		if (poll(p, 4, -1) < 0)
			continue; /* EINTR */
		if (p[0].revents)
			break;
		uint64_t v;
		if (p[2].revents && read(n->again_efd, &v, sizeof(v)) > 0)
			serve_again(n);
		if (p[1].revents && read(n->kick_efd, &v, sizeof(v)) > 0)
			waiting = false;
		if (!waiting && (p[3].revents || p[1].revents))
			waiting = !receive(n);
	}
	return NULL;
}

int virtio_net_open(struct virtio_net *n, const struct net_spec *spec, const uint8_t mac[6],
		    struct error *err)
{
	memset(n, 0, sizeof(*n));
	n->kick_efd = n->stop_efd = n->again_efd = -1;
	n->tap.fd = -1;
	snprintf(n->id, sizeof(n->id), "%s", spec->id);
	memcpy(n->mac, mac, 6);
	n->status = VIRTIO_NET_S_LINK_UP;
	int r = tap_open(&n->tap, spec, err);
	if (r)
		return r;
	n->kick_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	n->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	n->again_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->kick_efd < 0 || n->stop_efd < 0 || n->again_efd < 0) {
		r = -errno;
		error_set_errno(err, -r, "eventfd");
		virtio_net_close(n);
	}
	return r;
}

void virtio_net_attach(struct virtio_net *n, struct virtio_mmio *mmio, const struct guest_mem *gm)
{
	n->mmio = mmio;
	n->gm = gm;
}

int virtio_net_start(struct virtio_net *n, const struct sandbox *sb)
{
	n->sandbox = sb;
	int r = pthread_create(&n->rx_thread, NULL, rx_thread, n);
	n->rx_running = r == 0;
	return -r;
}

void virtio_net_close(struct virtio_net *n)
{
	if (n->rx_running) {
		uint64_t one = 1;
		(void)!write(n->stop_efd, &one, sizeof(one));
		pthread_join(n->rx_thread, NULL);
		n->rx_running = false;
	}
	if (n->kick_efd >= 0)
		close(n->kick_efd);
	if (n->stop_efd >= 0)
		close(n->stop_efd);
	if (n->again_efd >= 0)
		close(n->again_efd);
	n->kick_efd = n->stop_efd = n->again_efd = -1;
	tap_close(&n->tap);
}

void virtio_net_set_link(struct virtio_net *n, bool up)
{
	pthread_mutex_lock(&n->mmio->lock);
	uint16_t before = n->status;
	n->status = up ? (n->status | VIRTIO_NET_S_LINK_UP)
		       : (uint16_t)(n->status & ~VIRTIO_NET_S_LINK_UP);
	if (n->status != before)
		virtio_mmio_config_changed(n->mmio);
	pthread_mutex_unlock(&n->mmio->lock);
	if (up)
		wake(n->kick_efd);
}

bool virtio_net_link_up(struct virtio_net *n)
{
	pthread_mutex_lock(&n->mmio->lock);
	bool up = n->status & VIRTIO_NET_S_LINK_UP;
	pthread_mutex_unlock(&n->mmio->lock);
	return up;
}

void virtio_net_announce(struct virtio_net *n)
{
	pthread_mutex_lock(&n->mmio->lock);
	if (n->mmio->driver_features & (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE)) {
		n->status |= VIRTIO_NET_S_ANNOUNCE;
		virtio_mmio_config_changed(n->mmio);
	}
	pthread_mutex_unlock(&n->mmio->lock);
}

/* The MAC goes with the guest, so it must be this net's. */
static const struct vmstate_field net_fields[] = {
	VMS_BYTES(struct virtio_net, mac, sizeof(((struct virtio_net *)0)->mac),
		  .must_match = true),
	VMS_UINT(struct virtio_net, status),
};

static const struct vmstate net_state = {
	.name = "virtio-net",
	.version = 1,
	.min_version = 1,
	.fields = net_fields,
	.nr_fields = ARRAY_SIZE(net_fields),
};

const struct virtio_device_ops virtio_net_ops = {
	.device_id = VIRTIO_ID_NET,
	.nr_queues = 3,
	.features = net_features,
	.config_read = net_config_read,
	.notify = net_notify,
	.reset = net_reset,
	.state = &net_state,
};
