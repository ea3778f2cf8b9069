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
#include "virtio/mmio.h"
#include "virtio/rng.h"

#define MEM_BASE  0x100000ull
#define MEM_SIZE  (1ull << 20)
#define DESC	  (MEM_BASE + 0x0000)
#define AVAIL	  (MEM_BASE + 0x1000)
#define USED	  (MEM_BASE + 0x2000)
#define BUF	  (MEM_BASE + 0x10000)
#define QN	  8
#define GSI	  20
#define UNTOUCHED 0xee

struct fixture {
	uint8_t *ram;
	struct guest_mem gm;
	struct virtio_rng rng;
	struct virtio_mmio m;
	struct device_host host;
	int irq_level;
	uint16_t avail_idx;
};

static void fake_irq(void *opaque, uint32_t gsi, bool level)
{
	struct fixture *f = opaque;
	assert_int_equal(gsi, GSI);
	f->irq_level = level;
}

static void *g(struct fixture *f, uint64_t gpa)
{
	return f->ram + (gpa - MEM_BASE);
}

static uint32_t rd(struct fixture *f, uint64_t off)
{
	uint32_t v;
	virtio_mmio_ops.access(&f->m, 0, off, (uint8_t *)&v, 4, false);
	return v;
}

static void wr(struct fixture *f, uint64_t off, uint32_t v)
{
	virtio_mmio_ops.access(&f->m, 0, off, (uint8_t *)&v, 4, true);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->ram = malloc(MEM_SIZE);
	memset(f->ram, UNTOUCHED, MEM_SIZE);
	f->gm.regions[0] = (struct mem_region){MEM_BASE, MEM_SIZE, f->ram};
	f->gm.nr = 1;
	struct error err = {0};
	assert_int_equal(virtio_rng_kind.create(&f->rng, "", &err), 0);
	f->host = (struct device_host){.opaque = f, .set_irq = fake_irq};
	virtio_mmio_init(&f->m, &virtio_rng_ops, &f->rng, &f->gm, &f->host, GSI);
	/* The driver's side: VERSION_1 only, one queue of QN. */
	wr(f, 0x070, 1 | 2);
	wr(f, 0x024, 1);
	wr(f, 0x020, 1); /* VIRTIO_F_VERSION_1 is bit 32 */
	wr(f, 0x070, 1 | 2 | 8);
	memset(g(f, DESC), 0, 0x3000);
	wr(f, 0x030, 0);
	wr(f, 0x038, QN);
	wr(f, 0x080, (uint32_t)DESC);
	wr(f, 0x090, (uint32_t)AVAIL);
	wr(f, 0x0a0, (uint32_t)USED);
	wr(f, 0x044, 1);
	wr(f, 0x070, 1 | 2 | 4 | 8);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	virtio_mmio_destroy(&f->m);
	free(f->ram);
	free(f);
	return 0;
}

static void set_desc(struct fixture *f, int i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	struct vring_desc d = {addr, len, flags, next};
	memcpy(g(f, DESC + 16ull * i), &d, sizeof(d));
}

/* Publishes chain `head`, kicks, and returns the used length it got (-1:
 * none came back). */
static int64_t kick(struct fixture *f, uint16_t head)
{
	uint16_t *avail = g(f, AVAIL);
	avail[2 + f->avail_idx % QN] = head;
	avail[1] = ++f->avail_idx;
	wr(f, 0x050, 0);
	uint16_t used_idx = *(uint16_t *)g(f, USED + 2);
	if (used_idx != f->avail_idx)
		return -1;
	struct vring_used_elem e;
	memcpy(&e, g(f, USED + 4 + 8ull * ((used_idx - 1) % QN)), sizeof(e));
	assert_int_equal(e.id, head);
	return e.len;
}

static size_t untouched(struct fixture *f, uint64_t gpa, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += ((uint8_t *)g(f, gpa))[i] == UNTOUCHED;
	return n;
}

static void identity(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(rd(f, 0x008), VIRTIO_ID_RNG);
	wr(f, 0x014, 0);
	assert_int_equal(rd(f, 0x010), 0);
	wr(f, 0x014, 1);
	assert_int_equal(rd(f, 0x010), 1); /* VERSION_1 and nothing else */
	assert_int_equal(rd(f, 0x070), 1 | 2 | 4 | 8);
}

/* Every byte of a two-buffer chain is written, the used length says so,
 * the interrupt is raised, and the next request gets other bytes. */
static void fills_each_buffer(void **state)
{
	struct fixture *f = *state;
	set_desc(f, 0, BUF, 100, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, BUF + 0x1000, 4000, VRING_DESC_F_WRITE, 0);
	assert_int_equal(kick(f, 0), 4100);
	assert_int_equal(f->irq_level, 1);
	/* Random bytes equal 0xee one time in 256: far fewer than 100 of 4100. */
	assert_true(untouched(f, BUF, 100) + untouched(f, BUF + 0x1000, 4000) < 100);
	assert_int_equal(untouched(f, BUF + 100, 0x1000 - 100), 0x1000 - 100);
	assert_int_equal(untouched(f, BUF + 0x1000 + 4000, 96), 96);
	uint8_t first[64];
	memcpy(first, g(f, BUF + 0x1000), sizeof(first));
	assert_int_equal(kick(f, 1), 4000);
	assert_memory_not_equal(first, g(f, BUF + 0x1000), sizeof(first));
	assert_int_equal(atomic_load(&f->rng.requests), 2);
	assert_int_equal(atomic_load(&f->rng.bytes), 8100);
}

/* One buffer larger than a request gets VIRTIO_RNG_MAX_REQUEST bytes. */
static void caps_a_request(void **state)
{
	struct fixture *f = *state;
	uint32_t len = 2 * VIRTIO_RNG_MAX_REQUEST;
	set_desc(f, 0, BUF, len, VRING_DESC_F_WRITE, 0);
	assert_int_equal(kick(f, 0), VIRTIO_RNG_MAX_REQUEST);
	assert_int_equal(untouched(f, BUF + VIRTIO_RNG_MAX_REQUEST, VIRTIO_RNG_MAX_REQUEST),
			 VIRTIO_RNG_MAX_REQUEST);
}

/* A buffer the device would read breaks the spec: a device reset is
 * asked for and nothing is used or written. */
static void refuses_a_readable_buffer(void **state)
{
	struct fixture *f = *state;
	set_desc(f, 0, BUF, 64, VRING_DESC_F_NEXT, 1);
	set_desc(f, 1, BUF + 64, 64, VRING_DESC_F_WRITE, 0);
	assert_int_equal(kick(f, 0), -1);
	assert_true(rd(f, 0x070) & 0x40); /* DEVICE_NEEDS_RESET */
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
	const struct virtio_kind *kind;
	struct pc_slot slot;
	struct error err = {0};
	assert_int_equal(pc_virtio_device("rng", 0, &kind, &slot, &err), 0);
	assert_ptr_equal(kind, &virtio_rng_kind);
	assert_int_equal(slot.base, VIRTIO_MMIO_BASE + 12 * VIRTIO_MMIO_STRIDE);
	assert_int_equal(slot.gsi, 20);
	assert_int_equal(pc_virtio_device("rng", 3, &kind, &slot, &err), 0);
	assert_int_equal(slot.gsi, 23);
	assert_int_equal(pc_virtio_device("rng", 4, &kind, &slot, &err), -ENOSPC);
	assert_int_equal(pc_virtio_device("gpu", 0, &kind, &slot, &err), -ENOENT);
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
