/* virtio-rng behind its virtio-mmio transport, driven by a fake guest, and
 * the board's table that `--device` looks kinds up in. No KVM needed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "arch/x86/pc.h"
#include "fake_virtio_driver.h"
#include "virtio/mmio.h"
#include "virtio/rng.h"

#define MEM_SIZE  (1ull << 20)
#define BUF	  (FAKE_MEM_BASE + 0x10000)
#define QN	  8
#define GSI	  20
#define UNTOUCHED 0xee

struct fixture {
	struct fake_driver d;
	struct virtio_rng rng;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct error err = {0};
	assert_int_equal(virtio_rng_kind.create(&f->rng, "", &err), 0);
	fake_driver_init(&f->d, MEM_SIZE, UNTOUCHED, QN, GSI, &virtio_rng_ops, &f->rng);
	/* VERSION_1 (bit 32) only, one queue of QN. */
	assert_int_equal(fake_driver_start(&f->d, 1ull << 32), 1 | 2 | 4 | 8);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	fake_driver_destroy(&f->d);
	free(f);
	return 0;
}

/* Publishes chain `head`, kicks, and returns the used length it got (-1:
 * none came back). */
static int64_t kick(struct fixture *f, uint16_t head)
{
	fake_kick(&f->d, head);
	uint16_t used_idx = fake_used_idx(&f->d);
	if (used_idx != f->d.avail_idx)
		return -1;
	struct vring_used_elem e;
	memcpy(&e, fake_gpa(&f->d, FAKE_USED + 4 + 8ull * ((used_idx - 1) % QN)), sizeof(e));
	assert_int_equal(e.id, head);
	return e.len;
}

static size_t untouched(struct fixture *f, uint64_t gpa, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((uint8_t *)fake_gpa(&f->d, gpa))[i] == UNTOUCHED;
	return n;
}

static void identity(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(fake_rd(&f->d, 0x008), VIRTIO_ID_RNG);
	fake_wr(&f->d, 0x014, 0);
	assert_int_equal(fake_rd(&f->d, 0x010), 0);
	fake_wr(&f->d, 0x014, 1);
	assert_int_equal(fake_rd(&f->d, 0x010), 1); /* VERSION_1 and nothing else */
	assert_int_equal(fake_rd(&f->d, 0x070), 1 | 2 | 4 | 8);
}

/* Every byte of a two-buffer chain is written, the used length says so,
 * the interrupt is raised, and the next request gets other bytes. */
static void fills_each_buffer(void **state)
{
	struct fixture *f = *state;
	fake_set_desc(&f->d, 0, BUF, 100, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	fake_set_desc(&f->d, 1, BUF + 0x1000, 4000, VRING_DESC_F_WRITE, 0);
	assert_int_equal(kick(f, 0), 4100);
	assert_int_equal(f->d.irq_level, 1);
	/* Random bytes equal 0xee one time in 256: far fewer than 100 of 4100. */
	assert_true(untouched(f, BUF, 100) + untouched(f, BUF + 0x1000, 4000) < 100);
	assert_int_equal(untouched(f, BUF + 100, 0x1000 - 100), 0x1000 - 100);
	assert_int_equal(untouched(f, BUF + 0x1000 + 4000, 96), 96);
	uint8_t first[64];
	memcpy(first, fake_gpa(&f->d, BUF + 0x1000), sizeof(first));
	assert_int_equal(kick(f, 1), 4000);
	assert_memory_not_equal(first, fake_gpa(&f->d, BUF + 0x1000), sizeof(first));
	assert_int_equal(atomic_load(&f->rng.requests), 2);
	assert_int_equal(atomic_load(&f->rng.bytes), 8100);
}

/* One buffer larger than a request gets VIRTIO_RNG_MAX_REQUEST bytes. */
static void caps_a_request(void **state)
{
	struct fixture *f = *state;
	uint32_t len = 2 * VIRTIO_RNG_MAX_REQUEST;
	fake_set_desc(&f->d, 0, BUF, len, VRING_DESC_F_WRITE, 0);
	assert_int_equal(kick(f, 0), VIRTIO_RNG_MAX_REQUEST);
	assert_int_equal(untouched(f, BUF + VIRTIO_RNG_MAX_REQUEST, VIRTIO_RNG_MAX_REQUEST),
			 VIRTIO_RNG_MAX_REQUEST);
}

/* A buffer the device would read breaks the spec: a device reset is
 * asked for and nothing is used or written. */
static void refuses_a_readable_buffer(void **state)
{
	struct fixture *f = *state;
	fake_set_desc(&f->d, 0, BUF, 64, VRING_DESC_F_NEXT, 1);
	fake_set_desc(&f->d, 1, BUF + 64, 64, VRING_DESC_F_WRITE, 0);
	assert_int_equal(kick(f, 0), -1);
	assert_true(fake_rd(&f->d, 0x070) & 0x40); /* DEVICE_NEEDS_RESET */
	assert_int_equal(untouched(f, BUF, 128), 128);
	assert_int_equal(atomic_load(&f->rng.requests), 0);
}

static void takes_no_options(void **state)
{
	(void)state;
	struct virtio_rng rng = {0};
	struct error err = {0};
	assert_int_equal(virtio_rng_kind.create(&rng, "size=4", &err), -EINVAL);
	assert_int_equal(err.status, STATUS_USAGE);
	assert_non_null(strstr(err.msg, "takes no options"));
}

/* The board's table: `rng` by name, in the window after the nets' and on
 * GSI 20 onwards; an unknown kind names the ones there are. */
static void board_table(void **state)
{
	(void)state;
	struct error err = {0};
	assert_ptr_equal(pc_virtio_kind("rng", &err), &virtio_rng_kind);
	struct pc_slot slot = pc_virtio_slot(0);
	assert_int_equal(slot.base, VIRTIO_MMIO_BASE + 12 * VIRTIO_MMIO_STRIDE);
	assert_int_equal(slot.gsi, 20);
	assert_int_equal(pc_virtio_slot(3).gsi, 23);
	assert_null(pc_virtio_kind("gpu", &err));
	assert_int_equal(err.errnum, ENOENT);
	assert_int_equal(err.status, STATUS_USAGE);
	assert_non_null(strstr(err.msg, "no device kind 'gpu' (there are: rng)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(identity, setup, teardown),
		cmocka_unit_test_setup_teardown(fills_each_buffer, setup, teardown),
		cmocka_unit_test_setup_teardown(caps_a_request, setup, teardown),
		cmocka_unit_test_setup_teardown(refuses_a_readable_buffer, setup, teardown),
		cmocka_unit_test(takes_no_options),
		cmocka_unit_test(board_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
