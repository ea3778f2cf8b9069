/* Device state by field table (util/vmstate.c): the bytes each kind of
 * field writes, fields that come and go with versions, and a restore that
 * checks everything before it changes anything. Then the devices' own
 * tables against the byte layouts their hand-written save/restore pairs
 * had, so snapshots made before still restore. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "builtin_guest/testdev.h"
#include "devices/serial.h"
#include "util/util.h"
#include "util/vmstate.h"

struct elem {
	uint16_t v;
	atomic_uint_fast64_t hits;
};

struct sample {
	uint8_t a;
	uint16_t b;
	uint32_t c;
	uint64_t d;
	bool e;
	uint8_t bytes[5];
	uint32_t shape; /* must match */
	uint32_t old;	/* version 1 only */
	uint32_t len;
	uint8_t buf[8];
	uint32_t nr;
	struct elem *elems;
	uint64_t since2;
};

static const struct vmstate_field elem_fields[] = {
	VMS_UINT(struct elem, v),
	VMS_ATOMIC(struct elem, hits),
};

static const struct vmstate elem_state = {
	.name = "elem", .fields = elem_fields, .nr_fields = ARRAY_SIZE(elem_fields)};

static int post_loads;

static int sample_post_load(void *dev, uint32_t version)
{
	(void)dev;
	(void)version;
	post_loads++;
	return 0;
}

static const struct vmstate_field sample_fields[] = {
	VMS_UINT(struct sample, a),
	VMS_UINT(struct sample, b),
	VMS_UINT(struct sample, c),
	VMS_UINT(struct sample, d),
	VMS_BOOL(struct sample, e),
	VMS_BYTES(struct sample, bytes, 5),
	VMS_UINT(struct sample, shape, .must_match = true),
	VMS_UINT(struct sample, old, .until = 1),
	VMS_VBYTES(struct sample, buf, len),
	VMS_UINT(struct sample, nr, .must_match = true),
	VMS_ARRAY(struct sample, elems, nr, struct elem, &elem_state),
	VMS_UINT(struct sample, since2, .since = 2),
};

static const struct vmstate sample_state = {
	.name = "sample",
	.version = 2,
	.min_version = 1,
	.fields = sample_fields,
	.nr_fields = ARRAY_SIZE(sample_fields),
	.post_load = sample_post_load,
};

static struct elem elems_a[2], elems_b[2];

static struct sample filled(void)
{
	struct sample s = {.a = 0x11,
			   .b = 0x2233,
			   .c = 0x44556677,
			   .d = 0x8899aabbccddeeffull,
			   .e = true,
			   .bytes = {1, 2, 3, 4, 5},
			   .shape = 7,
			   .old = 9,
			   .len = 3,
			   .buf = {0xa, 0xb, 0xc},
			   .nr = 2,
			   .elems = elems_a,
			   .since2 = 42};
	elems_a[0].v = 0x0102;
	atomic_store(&elems_a[0].hits, 5);
	elems_a[1].v = 0x0304;
	atomic_store(&elems_a[1].hits, 6);
	return s;
}

static struct sample empty(void)
{
	memset(elems_b, 0, sizeof(elems_b));
	return (struct sample){.shape = 7, .nr = 2, .elems = elems_b};
}

static void put(uint8_t **p, uint64_t v, size_t n)
{
	memcpy(*p, &v, n);
	*p += n;
}

/* Version 2's bytes, field by field, in table order. */
static size_t expected_v2(uint8_t *out)
{
	uint8_t *p = out;
	put(&p, 2, 4);
	put(&p, 0x11, 1);
	put(&p, 0x2233, 2);
	put(&p, 0x44556677, 4);
	put(&p, 0x8899aabbccddeeffull, 8);
	put(&p, 1, 1);
	memcpy(p, "\1\2\3\4\5", 5), p += 5;
	put(&p, 7, 4);
	put(&p, 3, 4);
	memcpy(p, "\xa\xb\xc", 3), p += 3;
	put(&p, 2, 4);
	put(&p, 0x0102, 2), put(&p, 5, 8);
	put(&p, 0x0304, 2), put(&p, 6, 8);
	put(&p, 42, 8);
	return (size_t)(p - out);
}

static void bytes_and_round_trip(void **state)
{
	(void)state;
	struct sample s = filled();
	struct state_writer w = {0};
	vmstate_save(&sample_state, &s, &w);
	uint8_t want[128];
	size_t n = expected_v2(want);
	assert_int_equal(w.len, n);
	assert_memory_equal(w.buf, want, n);

	struct sample t = empty();
	post_loads = 0;
	struct state_reader r = state_reader_init(w.buf, w.len);
	assert_int_equal(vmstate_load(&sample_state, &t, &r), 0);
	assert_int_equal(state_reader_done(&r), 0);
	assert_int_equal(post_loads, 1);
	assert_int_equal(t.d, s.d);
	assert_true(t.e);
	assert_int_equal(t.old, 0); /* not in version 2 */
	assert_int_equal(t.len, 3);
	assert_memory_equal(t.buf, s.buf, 3);
	assert_int_equal(elems_b[1].v, 0x0304);
	assert_int_equal(atomic_load(&elems_b[1].hits), 6);
	assert_int_equal(t.since2, 42);
	state_writer_free(&w);
}

/* A version 1 state has `old` and not `since2`. */
static void older_version(void **state)
{
	(void)state;
	uint8_t v2[128], v1[128];
	size_t n = expected_v2(v2);
	/* Version 1: the same up to shape, then old, then the rest less since2. */
	size_t at_old = 4 + 1 + 2 + 4 + 8 + 1 + 5 + 4;
	memcpy(v1, v2, at_old);
	memcpy(v1, &(uint32_t){1}, 4);
	memcpy(v1 + at_old, &(uint32_t){9}, 4);
	memcpy(v1 + at_old + 4, v2 + at_old, n - 8 - at_old);
	size_t n1 = n - 8 + 4;
	struct sample t = empty();
	t.since2 = 77;
	struct state_reader r = state_reader_init(v1, n1);
	assert_int_equal(vmstate_load(&sample_state, &t, &r), 0);
	assert_int_equal(state_reader_done(&r), 0);
	assert_int_equal(t.old, 9);
	assert_int_equal(t.since2, 77); /* left as it was */
	assert_int_equal(elems_b[0].v, 0x0102);
	/* Versions outside 1..2 are refused. */
	memcpy(v1, &(uint32_t){3}, 4);
	r = state_reader_init(v1, n1);
	assert_int_not_equal(vmstate_load(&sample_state, &t, &r), 0);
}

/* Cut anywhere, a shape that differs, a count past its buffer: refused,
 * and nothing of the device changed. */
static void refused_whole(void **state)
{
	(void)state;
	struct sample s = filled();
	struct state_writer w = {0};
	vmstate_save(&sample_state, &s, &w);
	for (size_t n = 0; n < w.len; n++) {
		struct sample t = empty(), before = t;
		struct state_reader r = state_reader_init(w.buf, n);
		assert_int_not_equal(vmstate_load(&sample_state, &t, &r), 0);
		assert_memory_equal(&t, &before, sizeof(t));
		assert_int_equal(elems_b[0].v, 0);
	}
	struct sample t = empty();
	t.shape = 8;
	struct sample before = t;
	struct state_reader r = state_reader_init(w.buf, w.len);
	assert_int_not_equal(vmstate_load(&sample_state, &t, &r), 0);
	assert_memory_equal(&t, &before, sizeof(t));
	uint8_t *bad = malloc(w.len);
	memcpy(bad, w.buf, w.len);
	memcpy(bad + 4 + 1 + 2 + 4 + 8 + 1 + 5 + 4, &(uint32_t){9}, 4); /* len 9 > 8 */
	t = empty();
	before = t;
	r = state_reader_init(bad, w.len);
	assert_int_not_equal(vmstate_load(&sample_state, &t, &r), 0);
	assert_memory_equal(&t, &before, sizeof(t));
	free(bad);
	state_writer_free(&w);
}

/* The 16550's state as serial.c wrote it by hand: version, ten registers
 * (IER IIR LCR MCR LSR MSR SCR DLL DLM FCR), the pending THRE interrupt,
 * then the receive FIFO from its head. */
static void serial_layout(void **state)
{
	(void)state;
	struct serial s;
	serial_init(&s, -1, NULL, 4);
	s.ier = 1, s.iir = 2, s.lcr = 3, s.mcr = 4, s.lsr = 5;
	s.msr = 6, s.scr = 7, s.dll = 8, s.dlm = 9, s.fcr = 10;
	s.thri_pending = true;
	s.rx_head = SERIAL_RX_SIZE - 1; /* the FIFO wraps */
	s.rx[SERIAL_RX_SIZE - 1] = 'h';
	s.rx[0] = 'i';
	s.rx_len = 2;
	struct state_writer w = {0};
	device_save(&serial_ops, &s, &w);
	const uint8_t want[] = {1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 0, 0, 0, 'h', 'i'};
	assert_int_equal(w.len, sizeof(want));
	assert_memory_equal(w.buf, want, sizeof(want));
	serial_destroy(&s);
	state_writer_free(&w);
}

/* A version 1 test device state (ten words of configuration, no disk
 * reports) restores, the later settings zero, as testdev.c did by hand;
 * version 3 is written as it was. */
static void testdev_layout(void **state)
{
	(void)state;
	struct testdev t;
	struct testdev_config cfg;
	memset(&cfg, 0xee, sizeof(cfg));
	testdev_configure(&t, &cfg, NULL, 0);
	struct extra_device x = testdev_extra(&t);
	assert_int_equal(x.attach(x.dev, NULL, 1), 0);
	uint8_t v1[4 + 40 + 4 + 4 * 8 + 4 + 4 + 8 + 4], *p = v1;
	put(&p, 1, 4);
	for (uint32_t i = 0; i < 10; i++)
		put(&p, i + 100, 4);
	put(&p, 1, 4); /* vCPUs */
	put(&p, 11, 8), put(&p, 0, 8), put(&p, 2, 8),
		put(&p, 1, 8); /* beats, back, stopped, booted */
	put(&p, 0, 4), put(&p, 5, 4), put(&p, 6, 8), put(&p, 1, 4); /* cmds, key, result, words */
	assert_int_equal((size_t)(p - v1), sizeof(v1));
	struct state_reader r = state_reader_init(v1, sizeof(v1));
	assert_int_equal(device_restore(&testdev_ops, &t, &r), 0);
	assert_int_equal(state_reader_done(&r), 0);
	assert_int_equal(t.cfg.period_us, 100);
	assert_int_equal(t.cfg.memcheck_mib, 109);
	assert_int_equal(t.cfg.memcheck_dirty, 0);
	assert_int_equal(t.cfg.guest_peer, 0);
	assert_int_equal(atomic_load(&t.vcpus[0].heartbeats), 11);
	assert_int_equal(t.vcpus[0].result, 6);

	atomic_store(&t.disk_done, 1);
	struct state_writer w = {0};
	device_save(&testdev_ops, &t, &w);
	size_t v3_len = 4 + sizeof(struct testdev_config) + 4 + (4 * 8 + 4 + 4 + 8 + 4) + 4 * 8 + 4;
	assert_int_equal(w.len, v3_len);
	assert_int_equal(w.buf[0], 3);
	assert_int_equal(w.buf[w.len - 4], 1); /* disk_done, last */
	/* Another vCPU count does not fit. */
	x.detach(x.dev);
	assert_int_equal(x.attach(x.dev, NULL, 2), 0);
	r = state_reader_init(w.buf, w.len);
	assert_int_not_equal(device_restore(&testdev_ops, &t, &r), 0);
	x.detach(x.dev);
	state_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bytes_and_round_trip), cmocka_unit_test(older_version),
		cmocka_unit_test(refused_whole),	cmocka_unit_test(serial_layout),
		cmocka_unit_test(testdev_layout),
	};
	return cmocka_run_group_tests_name("vmstate", tests, NULL, NULL);
}
