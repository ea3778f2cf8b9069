/* virtio-net's receive thread with event indexes, behind the real virtio-mmio
 * transport: a datagram socket pair stands in for the tap, a fake guest
 * drives the rings. The thread arms the receive notify only when it has to
 * wait for buffers, and sends what a transmit notify left for it. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "fake_virtio_driver.h"
#include "virtio/mmio.h"
#include "virtio/net.h"

#define MEM_SIZE (1ull << 20)
#define QN	 8
#define GSI	 16
#define TXQ	 (FAKE_MEM_BASE + 0x4000) /* desc, then avail at +0x1000, used at +0x2000 */
#define RXBUF	 (FAKE_MEM_BASE + 0x10000)
#define TXBUF	 (FAKE_MEM_BASE + 0x20000)
#define HDR	 12
#define FEATURES                                                                                   \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) |                        \
	 (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS))

struct fixture {
	struct fake_driver d;
	struct virtio_net n;
	int peer; /* the host side of the "tap" */
	uint16_t tx_avail;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	f->n.tap.fd = sv[0];
	f->peer = sv[1];
	f->n.kick_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->n.stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->n.again_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->n.status = VIRTIO_NET_S_LINK_UP;
	fake_driver_init(&f->d, MEM_SIZE, 0, QN, GSI, &virtio_net_ops, &f->n);
	virtio_net_attach(&f->n, &f->d.m, &f->d.gm);
	assert_int_equal(fake_driver_start(&f->d, FEATURES), 1 | 2 | 4 | 8);
	/* The transmit queue, as fake_driver_start set the receive one up. */
	fake_wr(&f->d, VIRTIO_MMIO_QUEUE_SEL, 1);
	fake_wr(&f->d, VIRTIO_MMIO_QUEUE_NUM, QN);
	fake_wr(&f->d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)TXQ);
	fake_wr(&f->d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)TXQ + 0x1000);
	fake_wr(&f->d, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)TXQ + 0x2000);
	fake_wr(&f->d, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(virtio_net_start(&f->n, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	virtio_net_close(&f->n); /* stops the thread, closes the eventfds and fd */
	close(f->peer);
	fake_driver_destroy(&f->d);
	free(f);
	return 0;
}

static uint16_t read16(struct fixture *f, uint64_t gpa)
{
	return __atomic_load_n((uint16_t *)fake_gpa(&f->d, gpa), __ATOMIC_ACQUIRE);
}

/* Waits up to 5 s for a 16-bit word in guest memory to read `want`. */
static bool becomes(struct fixture *f, uint64_t gpa, uint16_t want)
{
	for (int i = 0; i < 500; i++) {
		if (read16(f, gpa) == want)
			return true;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	return false;
}

static void give_rx(struct fixture *f, uint16_t id)
{
	fake_set_desc(&f->d, id, RXBUF + 0x1000ull * id, 0x1000, VRING_DESC_F_WRITE, 0);
	uint16_t *avail = fake_gpa(&f->d, FAKE_AVAIL);
	avail[2 + f->d.avail_idx % QN] = id;
	__atomic_store_n(&avail[1], ++f->d.avail_idx, __ATOMIC_SEQ_CST);
}

/* A frame queued on the transmit ring without a notify. */
static void queue_tx(struct fixture *f, uint16_t id, uint8_t fill)
{
	uint8_t *buf = fake_gpa(&f->d, TXBUF + 0x800ull * id);
	memset(buf, 0, HDR);
	memset(buf + HDR, fill, 60);
	struct vring_desc d = {TXBUF + 0x800ull * id, HDR + 60, 0, 0};
	memcpy(fake_gpa(&f->d, TXQ + 16ull * id), &d, sizeof(d));
	uint16_t *avail = fake_gpa(&f->d, TXQ + 0x1000);
	avail[2 + f->tx_avail % QN] = id;
	__atomic_store_n(&avail[1], ++f->tx_avail, __ATOMIC_SEQ_CST);
}

static void send_frame(struct fixture *f, uint8_t fill, uint8_t *frame, size_t len)
{
	memset(frame, 0, HDR);
	memset(frame + HDR, fill, len - HDR);
	assert_int_equal(write(f->peer, frame, len), (ssize_t)len);
}

static void wait_rx_waits(struct fixture *f, uint64_t want)
{
	for (int i = 0; i < 500 && atomic_load(&f->n.stats.rx_waits) < want; i++)
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	assert_int_equal(atomic_load(&f->n.stats.rx_waits), want);
}

/* Out of buffers, the thread arms the receive notify at the driver's index
 * and leaves the next frame in the tap; buffers and a notify bring it in,
 * and while buffers last the armed index stays behind (no notify for each
 * refill). With event indexes the NO_NOTIFY flag is never set. */
static void receive_waits_armed(void **state)
{
	struct fixture *f = *state;
	const uint64_t avail_event = FAKE_USED + 4 + 8 * QN;
	uint8_t a[HDR + 100], b[HDR + 80];
	give_rx(f, 0);
	fake_wr(&f->d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	send_frame(f, 0xaa, a, sizeof(a));
	assert_true(becomes(f, FAKE_USED + 2, 1));
	assert_memory_equal(fake_gpa(&f->d, RXBUF + HDR), a + HDR, 100);
	wait_rx_waits(f, 1);
	assert_int_equal(read16(f, avail_event), 1);

	send_frame(f, 0xbb, b, sizeof(b));
	nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
	assert_int_equal(read16(f, FAKE_USED + 2), 1); /* waits in the tap */
	give_rx(f, 1);
	give_rx(f, 2);
	fake_wr(&f->d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(becomes(f, FAKE_USED + 2, 2));
	assert_memory_equal(fake_gpa(&f->d, RXBUF + 0x1000 + HDR), b + HDR, 80);
	assert_int_equal(read16(f, avail_event), 1); /* buffer 2 is still there */
	assert_int_equal(read16(f, FAKE_USED), 0);
	assert_int_equal(atomic_load(&f->n.stats.rx_kicks), 2);
	assert_int_equal(atomic_load(&f->n.stats.rx_packets), 2);
}

/* What a transmit notify left (with event indexes none follows for it) is
 * sent by the receive thread when asked through again_efd, used, and the
 * driver interrupted. */
static void transmit_left_goes_on(void **state)
{
	struct fixture *f = *state;
	for (uint16_t i = 0; i < 3; i++)
		queue_tx(f, i, (uint8_t)(0x10 + i));
	uint64_t one = 1;
	assert_int_equal(write(f->n.again_efd, &one, sizeof(one)), sizeof(one));
	for (uint16_t i = 0; i < 3; i++) {
		struct pollfd p = {f->peer, POLLIN, 0};
		assert_int_equal(poll(&p, 1, 5000), 1);
		uint8_t got[256];
		assert_int_equal(read(f->peer, got, sizeof(got)), HDR + 60);
		assert_int_equal(got[HDR], 0x10 + i);
	}
	assert_true(becomes(f, TXQ + 0x2000 + 2, 3));
	assert_int_equal(atomic_load(&f->n.stats.tx_packets), 3);
	assert_int_equal(read16(f, TXQ + 0x2000 + 4 + 8 * QN), 3); /* armed for the next */
	assert_true(atomic_load(&f->d.m.interrupts) >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(receive_waits_armed, setup, teardown),
		cmocka_unit_test_setup_teardown(transmit_left_goes_on, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
