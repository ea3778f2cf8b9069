/* The bus on its own, with a recording device: overlapping ranges refused,
 * accesses dispatched at their offsets, unclaimed reads all-ones, and a
 * range unregistered and its place taken again. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/bus.h"

struct rec {
	uint64_t offset;
	uint32_t len;
	bool is_write;
	int calls;
};

static void dev(void *opaque, unsigned vcpu, uint64_t offset, uint8_t *data, uint32_t len,
		bool is_write)
{
	struct rec *r = opaque;
	(void)vcpu;
	r->offset = offset;
	r->len = len;
	r->is_write = is_write;
	r->calls++;
	if (!is_write)
		memset(data, 0x42, len);
}

static const struct device_ops dev_ops = {.name = "test", .access = dev};

static void overlap_rejected(void **state)
{
	(void)state;
	struct bus b;
	struct rec r = {0};
	bus_init(&b);
	assert_int_equal(bus_register(&b, 0x100, 0x10, &dev_ops, &r), 0);
	assert_int_equal(bus_register(&b, 0x100, 0x10, &dev_ops, &r), -EEXIST);
	assert_int_equal(bus_register(&b, 0x10f, 0x1, &dev_ops, &r), -EEXIST);
	assert_int_equal(bus_register(&b, 0xf0, 0x11, &dev_ops, &r), -EEXIST);
	assert_int_equal(bus_register(&b, 0x80, 0x100, &dev_ops, &r), -EEXIST);
	assert_int_equal(bus_register(&b, 0x108, 0x2, &dev_ops, &r), -EEXIST);
	/* Touching ranges are fine. */
	assert_int_equal(bus_register(&b, 0xf0, 0x10, &dev_ops, &r), 0);
	assert_int_equal(bus_register(&b, 0x110, 0x10, &dev_ops, &r), 0);
	assert_int_equal(b.nr, 3);
	assert_int_equal(bus_register(&b, 0x200, 0, &dev_ops, &r), -EINVAL);
	assert_int_equal(bus_register(&b, UINT64_MAX - 1, 4, &dev_ops, &r), -EINVAL);
	bus_destroy(&b);
}

static void dispatch_offsets(void **state)
{
	(void)state;
	struct bus b;
	struct rec r1 = {0}, r2 = {0};
	bus_init(&b);
	assert_int_equal(bus_register(&b, 0x3f8, 8, &dev_ops, &r1), 0);
	assert_int_equal(bus_register(&b, 0x510, 0x20, &dev_ops, &r2), 0);
	uint8_t data[8] = {1};
	assert_true(bus_access(&b, 0, 0x3fd, data, 1, false));
	assert_int_equal(r1.offset, 5);
	assert_int_equal(data[0], 0x42);
	assert_true(bus_access(&b, 0, 0x514, data, 4, true));
	assert_int_equal(r2.offset, 4);
	assert_int_equal(r2.len, 4);
	assert_true(r2.is_write);
	assert_int_equal(r1.calls, 1);
	bus_destroy(&b);
}

static void unclaimed_is_all_ones(void **state)
{
	(void)state;
	struct bus b;
	struct rec r = {0};
	bus_init(&b);
	assert_int_equal(bus_register(&b, 0x100, 0x10, &dev_ops, &r), 0);
	uint8_t data[8] = {0};
	assert_false(bus_access(&b, 0, 0x200, data, 4, false));
	assert_memory_equal(data, "\xff\xff\xff\xff\0\0\0\0", 8);
	data[0] = 7;
	assert_false(bus_access(&b, 0, 0x200, data, 1, true));
	assert_int_equal(data[0], 7);
	/* An access that straddles the end of a range is not the device's. */
	assert_false(bus_access(&b, 0, 0x10e, data, 4, false));
	assert_int_equal(r.calls, 0);
	assert_false(bus_access(&b, 0, UINT64_MAX, data, 8, false));
	bus_destroy(&b);
}

static void unregister_and_reuse(void **state)
{
	(void)state;
	struct bus b;
	struct rec r = {0};
	bus_init(&b);
	for (uint64_t i = 0; i < 40; i++)
		assert_int_equal(bus_register(&b, 0x1000 + i * 0x10, 0x10, &dev_ops, &r), 0);
	assert_int_equal(bus_unregister(&b, 0x1100), 0);
	assert_int_equal(bus_unregister(&b, 0x1100), -ENOENT);
	assert_null(bus_find(&b, 0x1105, 1));
	assert_non_null(bus_find(&b, 0x10f5, 1));
	assert_int_equal(bus_register(&b, 0x1100, 0x10, &dev_ops, &r), 0);
	assert_non_null(bus_find(&b, 0x110f, 1));
	bus_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(overlap_rejected),
		cmocka_unit_test(dispatch_offsets),
		cmocka_unit_test(unclaimed_is_all_ones),
		cmocka_unit_test(unregister_and_reuse),
	};
	return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
