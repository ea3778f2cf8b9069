/* virtio-net on a tap: transmit is served on the queue notify (the vCPU that
 * kicked, one copy from guest memory into the tap), receive on a thread of
 * its own that waits on the tap and on the guest adding buffers (one copy
 * from the tap into guest memory), so neither direction needs the VMM's main
 * loop. A full receive queue leaves frames in the tap: back-pressure, never
 * a silent drop. Queues: 0 receive, 1 transmit, 2 control (announcements). */
#ifndef KVMHOST_VIRTIO_NET_H
#define KVMHOST_VIRTIO_NET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backends/tap.h"
#include "sandbox/sandbox.h"
#include "util/error.h"
#include "virtio/mmio.h"
#include "virtio/virtio.h"

#define NET_RX_SEGS 64 /* receive buffers one frame may take (mergeable) */

struct virtio_net_stats {
	atomic_uint_fast64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
	atomic_uint_fast64_t rx_waits;	 /* out of buffers: frames wait in the tap */
	atomic_uint_fast64_t rx_kicks;	 /* the driver notified new receive buffers */
	atomic_uint_fast64_t tx_dropped; /* the tap refused a frame */
	atomic_uint_fast64_t bad_chains; /* malformed chains, the device reset */
	atomic_uint_fast64_t announces;	 /* announcements the guest acknowledged */
};

struct virtio_net {
	struct tap tap;
	struct virtio_mmio *mmio; /* its transport: lock, queues, interrupts */
	const struct guest_mem *gm;
	char id[16];
	uint8_t mac[6];
	uint16_t status;  /* VIRTIO_NET_S_*; transport lock */
	unsigned offload; /* TUN_F_* applied to the tap */
	pthread_t rx_thread;
	bool rx_running;
	const struct sandbox *sandbox;	   /* the receive thread's */
	int kick_efd, stop_efd, again_efd; /* again: requests a notify left */
	struct virtq_elem tx_elem, ctrl_elem;
	struct virtq_elem rx_elems[NET_RX_SEGS]; /* the receive thread's */
	struct virtio_net_stats stats;
};

/* Opens the tap; -errno with err. The receive thread starts with net_start. */
int virtio_net_open(struct virtio_net *n, const struct net_spec *spec, const uint8_t mac[6],
		    struct error *err);
void virtio_net_attach(struct virtio_net *n, struct virtio_mmio *mmio, const struct guest_mem *gm);
int virtio_net_start(struct virtio_net *n, const struct sandbox *sb);
/* Stops the thread, closes the tap. Safe on a half-opened device. */
void virtio_net_close(struct virtio_net *n);
/* Link up or down, and asking the guest to announce itself. Any thread. */
void virtio_net_set_link(struct virtio_net *n, bool up);
void virtio_net_announce(struct virtio_net *n);
bool virtio_net_link_up(struct virtio_net *n);

extern const struct virtio_device_ops virtio_net_ops;

/* Parsing a transmit chain and filling receive buffers, without a tap or
 * thread (the fuzz target's entry): -EINVAL for a chain the device must
 * refuse. */
int virtio_net_tx_chain(const struct virtq_elem *e);
/* What the receive thread does when woken: frames from the tap into the
 * guest's buffers. false: none left to take them. For the fuzz target. */
bool virtio_net_poll_rx(struct virtio_net *n);

#endif
