/* Notification suppression on split virtqueues (virtqueue.h) behind the real
 * virtio-mmio transport: the driver's NO_INTERRUPT flag and used_event word,
 * the device's NO_NOTIFY flag and avail_event word, and a serve that stops
 * at its cap with requests left. A fake guest; no KVM needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include "fake_virtio_driver.h"
#include "virtio/mmio.h"

#define MEM_SIZE (1ull << 20)
#define BUF	 (FAKE_MEM_BASE + 0x10000)
#define QN	 8
#define GSI	 21
#define F_V1	 (1ull << VIRTIO_F_VERSION_1)
#define F_EVENT	 (1ull << VIRTIO_RING_F_EVENT_IDX)

/* A device that uses each request as it comes, writing nothing; `refill`
 * more requests are published while it serves, as another vCPU would. */
struct echo {
	struct fake_driver *d;
	unsigned served, refill;
};

static uint64_t echo_features(void *dev)
{
	(void)dev;
	return F_V1 | F_EVENT;
}

static void echo_config(void *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
	(void)dev, (void)offset;
	memset(data, 0, len);
}

static void publish(struct fake_driver *d, uint16_t head)
{
	uint16_t *avail = fake_gpa(d, FAKE_AVAIL);
	avail[2 + d->avail_idx % d->qn] = head;
	__atomic_store_n(&avail[1], ++d->avail_idx, __ATOMIC_RELEASE);
}

static int64_t echo_request(void *dev, struct virtq_elem *e)
{
	struct echo *x = dev;
	(void)e;
	x->served++;
	if (x->refill) {
		x->refill--;
		publish(x->d, 0);
	}
	return 0;
}

static int echo_notify(void *dev, const struct guest_mem *gm, struct virtq *vq, unsigned index)
{
	struct echo *x = dev;
	(void)index;
	static struct virtq_elem e;
	return virtq_serve(gm, vq, &e, echo_request, x);
}

static const struct virtio_device_ops echo_ops = {
	.device_id = 42,
	.nr_queues = 1,
	.features = echo_features,
	.config_read = echo_config,
	.notify = echo_notify,
};

struct fixture {
	struct fake_driver d;
	struct echo x;
};

static struct fixture *start(void **state, uint64_t features)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->x.d = &f->d;
	fake_driver_init(&f->d, MEM_SIZE, 0, QN, GSI, &echo_ops, &f->x);
	assert_int_equal(fake_driver_start(&f->d, features), 1 | 2 | 4 | 8);
	fake_set_desc(&f->d, 0, BUF, 64, 0, 0);
	*state = f;
	return f;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	fake_driver_destroy(&f->d);
	free(f);
	return 0;
}

static uint16_t *used_event(struct fixture *f)
{
	return (uint16_t *)fake_gpa(&f->d, FAKE_AVAIL) + 2 + QN;
}

static uint16_t avail_event(struct fixture *f)
{
	return *(uint16_t *)fake_gpa(&f->d, FAKE_USED + 4 + 8 * QN);
}

static uint16_t used_flags(struct fixture *f)
{
	return *(uint16_t *)fake_gpa(&f->d, FAKE_USED);
}

/* Kicks one request and says whether it raised the line (then acked). */
static bool kick_interrupts(struct fixture *f)
{
	int before = f->d.irq_changes;
	fake_kick(&f->d, 0);
	bool raised = f->d.irq_changes != before && f->d.irq_level;
	fake_wr(&f->d, VIRTIO_MMIO_INTERRUPT_ACK, fake_rd(&f->d, VIRTIO_MMIO_INTERRUPT_STATUS));
	return raised;
}

/* Without event indexes the driver's flag decides. */
static void flag_stops_interrupts(void **state)
{
	struct fixture *f = start(state, F_V1);
	assert_true(kick_interrupts(f));
	*(uint16_t *)fake_gpa(&f->d, FAKE_AVAIL) = VRING_AVAIL_F_NO_INTERRUPT;
	assert_false(kick_interrupts(f));
	assert_int_equal(fake_used_idx(&f->d), 2);
	*(uint16_t *)fake_gpa(&f->d, FAKE_AVAIL) = 0;
	assert_true(kick_interrupts(f));
}

/* With them, only a used index passing used_event interrupts - and the
 * flag no longer counts. */
static void used_event_decides(void **state)
{
	struct fixture *f = start(state, F_V1 | F_EVENT);
	*used_event(f) = 5;
	assert_true(kick_interrupts(f)); /* the first: nothing known yet */
	*(uint16_t *)fake_gpa(&f->d, FAKE_AVAIL) = VRING_AVAIL_F_NO_INTERRUPT;
	for (int i = 2; i <= 5; i++)
		assert_false(kick_interrupts(f)); /* used index 2..5 */
	assert_true(kick_interrupts(f));	  /* 6: entry 5 was used */
	assert_false(kick_interrupts(f));
	*used_event(f) = 7;
	assert_true(kick_interrupts(f)); /* 8 */
	assert_int_equal(fake_used_idx(&f->d), 8);
}

/* After a serve the device wants the next request notified: avail_event is
 * the driver's index; without event indexes NO_NOTIFY stays clear. */
static void serve_arms_the_next_kick(void **state)
{
	struct fixture *f = start(state, F_V1 | F_EVENT);
	for (int i = 0; i < 3; i++)
		fake_kick(&f->d, 0);
	assert_int_equal(avail_event(f), 3);
	assert_int_equal(used_flags(f), 0);
	assert_int_equal(f->x.served, 3);
}

/* A driver adding requests as fast as they are served stops the serve at a
 * ring's worth; what is left is pending (no notify may come for it), and
 * the next serve takes it. */
static void serve_stops_at_its_cap(void **state)
{
	struct fixture *f = start(state, F_V1 | F_EVENT);
	f->x.refill = QN + 2;
	fake_kick(&f->d, 0);
	assert_int_equal(f->x.served, QN);
	struct virtq *vq = &f->d.m.vqs[0];
	assert_true(virtq_pending(&f->d.gm, vq));
	fake_wr(&f->d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(f->x.served, QN + 3);
	assert_false(virtq_pending(&f->d.gm, vq));
	assert_int_equal(avail_event(f), QN + 3);
}

/* A ring filled to its last entry before one notify: the serve takes it all
 * at its cap and still arms, so the driver's next buffer notifies. */
static void full_ring_arms_at_the_cap(void **state)
{
	struct fixture *f = start(state, F_V1 | F_EVENT);
	for (int i = 0; i < QN; i++)
		publish(&f->d, 0);
	fake_wr(&f->d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(f->x.served, QN);
	assert_false(virtq_pending(&f->d.gm, &f->d.m.vqs[0]));
	assert_int_equal(avail_event(f), QN);
}

/* A device serving on its own thread: quiet while taking, armed to wait;
 * arming reports a request added since the queue was last read. */
static void quiet_and_arm(void **state, uint64_t features)
{
	struct fixture *f = start(state, features);
	struct virtq *vq = &f->d.m.vqs[0];
	struct virtq_elem e;
	bool event = features & F_EVENT;
	publish(&f->d, 0);
	virtq_quiet_notify(&f->d.gm, vq);
	assert_int_equal(used_flags(f), event ? 0 : VRING_USED_F_NO_NOTIFY);
	assert_int_equal(virtq_pop(&f->d.gm, vq, &e), 1);
	assert_int_equal(virtq_pop(&f->d.gm, vq, &e), 0);
	publish(&f->d, 0); /* after the read: the arm must say so */
	assert_false(virtq_arm_notify(&f->d.gm, vq));
	assert_int_equal(virtq_pop(&f->d.gm, vq, &e), 1);
	assert_int_equal(virtq_pop(&f->d.gm, vq, &e), 0);
	assert_true(virtq_arm_notify(&f->d.gm, vq));
	assert_int_equal(used_flags(f), 0);
	if (event)
		assert_int_equal(avail_event(f), 2);
}

static void quiet_and_arm_flags(void **state)
{
	quiet_and_arm(state, F_V1);
}

static void quiet_and_arm_event_idx(void **state)
{
	quiet_and_arm(state, F_V1 | F_EVENT);
}

/* A reset forgets the negotiated words: the next driver may not use them. */
static void reset_forgets_event_idx(void **state)
{
	struct fixture *f = start(state, F_V1 | F_EVENT);
	assert_true(f->d.m.vqs[0].event_idx);
	assert_int_equal(fake_driver_start(&f->d, F_V1), 1 | 2 | 4 | 8);
	assert_false(f->d.m.vqs[0].event_idx);
	*(uint16_t *)fake_gpa(&f->d, FAKE_AVAIL) = VRING_AVAIL_F_NO_INTERRUPT;
	assert_false(kick_interrupts(f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(flag_stops_interrupts, teardown),
		cmocka_unit_test_teardown(used_event_decides, teardown),
		cmocka_unit_test_teardown(serve_arms_the_next_kick, teardown),
		cmocka_unit_test_teardown(serve_stops_at_its_cap, teardown),
		cmocka_unit_test_teardown(full_ring_arms_at_the_cap, teardown),
		cmocka_unit_test_teardown(quiet_and_arm_flags, teardown),
		cmocka_unit_test_teardown(quiet_and_arm_event_idx, teardown),
		cmocka_unit_test_teardown(reset_forgets_event_idx, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
