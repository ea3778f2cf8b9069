/* virtio-blk and its virtio-mmio transport, driven by a fake guest: guest
 * memory is a malloc'd buffer, the disk a temporary file. No KVM needed. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/virtio_ring.h>

#include "fake_virtio_driver.h"
#include "virtio/blk.h"
#include "virtio/mmio.h"

#define MEM_SIZE     (8ull << 20)
#define HDR	     (FAKE_MEM_BASE + 0x3000)
#define STATUS	     (FAKE_MEM_BASE + 0x3100)
#define DATA	     (FAKE_MEM_BASE + 0x10000)
#define QN	     16
#define DISK_SECTORS 2048

struct fixture {
	struct fake_driver d;
	char path[64];
	struct virtio_blk blk;
};

static int setup_disk(void **state, bool ro)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "/tmp/kvmhost-blk-XXXXXX");
	int fd = mkstemp(f->path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DISK_SECTORS * 512), 0);
	close(fd);
	struct disk_spec spec = {.path = f->path, .ro = ro};
	snprintf(spec.id, sizeof(spec.id), "unit-disk");
	struct error err = {0};
	assert_int_equal(virtio_blk_open(&f->blk, &spec, &err), 0);
	fake_driver_init(&f->d, MEM_SIZE, 0, QN, 5, &virtio_blk_ops, &f->blk);
	*state = f;
	return 0;
}

static int setup_rw(void **state)
{
	return setup_disk(state, false);
}
static int setup_ro(void **state)
{
	return setup_disk(state, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	fake_driver_destroy(&f->d);
	virtio_blk_close(&f->blk);
	unlink(f->path);
	free(f);
	return 0;
}

#define GOOD_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_FLUSH))

/* header + data + status; returns the status byte (0xee if never written). */
static int request(struct fixture *f, uint32_t type, uint64_t sector, uint32_t len)
{
	uint32_t hdr[4] = {type, 0, (uint32_t)sector, (uint32_t)(sector >> 32)};
	memcpy(fake_gpa(&f->d, HDR), hdr, 16);
	*(uint8_t *)fake_gpa(&f->d, STATUS) = 0xee;
	bool dev_writes = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	fake_set_desc(&f->d, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	if (len) {
		fake_set_desc(&f->d, 1, DATA, len,
			      VRING_DESC_F_NEXT | (dev_writes ? VRING_DESC_F_WRITE : 0), 2);
		fake_set_desc(&f->d, 2, STATUS, 1, VRING_DESC_F_WRITE, 0);
	} else {
		fake_set_desc(&f->d, 1, STATUS, 1, VRING_DESC_F_WRITE, 0);
	}
	fake_kick(&f->d, 0);
	return *(uint8_t *)fake_gpa(&f->d, STATUS);
}

static void negotiation(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(fake_rd(&f->d, 0x000), 0x74726976);
	assert_int_equal(fake_rd(&f->d, 0x004), 2);
	assert_int_equal(fake_rd(&f->d, 0x008), VIRTIO_ID_BLOCK);
	fake_wr(&f->d, 0x014, 0);
	uint32_t lo = fake_rd(&f->d, 0x010);
	fake_wr(&f->d, 0x014, 1);
	assert_int_equal(fake_rd(&f->d, 0x010), 1); /* VERSION_1 */
	assert_true(lo & (1u << VIRTIO_BLK_F_FLUSH));
	assert_true(lo & (1u << VIRTIO_BLK_F_SEG_MAX));
	assert_true(lo & (1u << VIRTIO_BLK_F_BLK_SIZE));
	assert_false(lo & (1u << VIRTIO_BLK_F_RO));
	uint64_t cap;
	virtio_mmio_ops.access(&f->d.m, 0, 0x100, (uint8_t *)&cap, 8, false);
	assert_int_equal(cap, DISK_SECTORS);
	uint32_t seg_max = fake_rd(&f->d, 0x100 + 12), blk_size = fake_rd(&f->d, 0x100 + 20);
	assert_int_equal(seg_max, VIRTIO_BLK_SEG_MAX);
	assert_int_equal(blk_size, 512);
	/* Without VERSION_1, or with a feature not offered: FEATURES_OK refused. */
	assert_false(fake_driver_start(&f->d, 1ull << VIRTIO_BLK_F_FLUSH) & 8);
	assert_false(fake_driver_start(&f->d, GOOD_FEATURES | (1ull << 28)) & 8);
	assert_int_equal(fake_driver_start(&f->d, GOOD_FEATURES), 1 | 2 | 4 | 8);
	/* Once FEATURES_OK, features are frozen. */
	fake_wr(&f->d, 0x024, 0);
	fake_wr(&f->d, 0x020, 0xffffffff);
	assert_int_equal(f->d.m.driver_features, GOOD_FEATURES);
	/* Register accesses of the wrong width read as all-ones. */
	uint16_t half = 0;
	virtio_mmio_ops.access(&f->d.m, 0, 0x000, (uint8_t *)&half, 2, false);
	assert_int_equal(half, 0xffff);
}

static void read_write_flush_id(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(fake_driver_start(&f->d, GOOD_FEATURES) & 4, 4);
	memset(fake_gpa(&f->d, DATA), 0xab, 4096);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 8, 4096), VIRTIO_BLK_S_OK);
	assert_int_equal(fake_used_idx(&f->d), 1);
	assert_int_equal(f->d.irq_level, 1); /* used buffer interrupt */
	assert_int_equal(fake_rd(&f->d, 0x060), 1);
	fake_wr(&f->d, 0x064, 1);
	assert_int_equal(f->d.irq_level, 0);
	/* The bytes are in the file, at sector 8. */
	int fd = open(f->path, O_RDONLY);
	uint8_t back[4096];
	assert_int_equal(pread(fd, back, sizeof(back), 8 * 512), 4096);
	close(fd);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(back[i], 0xab);
	memset(fake_gpa(&f->d, DATA), 0, 4096);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 8, 4096), VIRTIO_BLK_S_OK);
	assert_int_equal(((uint8_t *)fake_gpa(&f->d, DATA))[4095], 0xab);
	uint32_t used_len;
	memcpy(&used_len, fake_gpa(&f->d, FAKE_USED + 4 + 8 * 1 + 4), 4);
	assert_int_equal(used_len, 4096 + 1);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(atomic_load(&f->blk.flushes), 1);
	memset(fake_gpa(&f->d, DATA), 0, 20);
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, 20), VIRTIO_BLK_S_OK);
	assert_string_equal((char *)fake_gpa(&f->d, DATA), "unit-disk");
	assert_int_equal(request(f, 99, 0, 0), VIRTIO_BLK_S_UNSUPP);
	/* Header and data split across descriptors any way the driver likes. */
	uint32_t hdr[4] = {VIRTIO_BLK_T_IN, 0, 8, 0};
	memcpy(fake_gpa(&f->d, HDR), hdr, 16);
	fake_set_desc(&f->d, 3, HDR, 10, VRING_DESC_F_NEXT, 4);
	fake_set_desc(&f->d, 4, HDR + 10, 6, VRING_DESC_F_NEXT, 5);
	fake_set_desc(&f->d, 5, DATA, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 6);
	fake_set_desc(&f->d, 6, STATUS, 1, VRING_DESC_F_WRITE, 0);
	*(uint8_t *)fake_gpa(&f->d, STATUS) = 0xee;
	fake_kick(&f->d, 3);
	assert_int_equal(*(uint8_t *)fake_gpa(&f->d, STATUS), VIRTIO_BLK_S_OK);
	assert_false(virtio_mmio_needs_reset(&f->d.m));
}

static void request_errors(void **state)
{
	struct fixture *f = *state;
	fake_driver_start(&f->d, GOOD_FEATURES);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, DISK_SECTORS, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 1024), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, UINT64_MAX, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, UINT64_MAX / 512, 1024), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 100),
			 VIRTIO_BLK_S_IOERR); /* partial sector */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 0), VIRTIO_BLK_S_IOERR); /* no data */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 0), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_GET_ID, 0, 0), VIRTIO_BLK_S_IOERR);
	/* Larger than any request we take. */
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, VIRTIO_BLK_MAX_REQUEST + 512),
			 VIRTIO_BLK_S_IOERR);
	/* Wrong direction: data for a read the device may not write. */
	uint32_t hdr[4] = {VIRTIO_BLK_T_IN, 0, 0, 0};
	memcpy(fake_gpa(&f->d, HDR), hdr, 16);
	fake_set_desc(&f->d, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	fake_set_desc(&f->d, 1, DATA, 512, VRING_DESC_F_NEXT, 2);
	fake_set_desc(&f->d, 2, STATUS, 1, VRING_DESC_F_WRITE, 0);
	*(uint8_t *)fake_gpa(&f->d, STATUS) = 0xee;
	fake_kick(&f->d, 0);
	assert_int_equal(*(uint8_t *)fake_gpa(&f->d, STATUS), VIRTIO_BLK_S_IOERR);
	assert_int_equal(atomic_load(&f->blk.reads), 0);
	assert_false(virtio_mmio_needs_reset(&f->d.m)); /* request errors are not fatal */
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512), VIRTIO_BLK_S_OK);
}

static void read_only(void **state)
{
	struct fixture *f = *state;
	fake_wr(&f->d, 0x014, 0);
	assert_true(fake_rd(&f->d, 0x010) & (1u << VIRTIO_BLK_F_RO));
	fake_driver_start(&f->d, GOOD_FEATURES | (1ull << VIRTIO_BLK_F_RO));
	memset(fake_gpa(&f->d, DATA), 0x5a, 512);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 0, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 0, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(((uint8_t *)fake_gpa(&f->d, DATA))[0], 0); /* nothing was written */
}

/* Each broken chain must leave the device needing a reset, and nothing else. */
static void expect_reset(struct fixture *f, uint16_t head)
{
	uint16_t before = fake_used_idx(&f->d);
	fake_kick(&f->d, head);
	assert_true(virtio_mmio_needs_reset(&f->d.m));
	assert_int_equal(fake_used_idx(&f->d), before);
	assert_true(fake_rd(&f->d, 0x070) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(fake_rd(&f->d, 0x060) & 2); /* config-change interrupt */
	/* Further kicks are ignored until the driver resets the device. */
	fake_kick(&f->d, 0);
	assert_int_equal(fake_used_idx(&f->d), before);
	fake_driver_start(&f->d, GOOD_FEATURES);
	assert_false(virtio_mmio_needs_reset(&f->d.m));
	*(uint16_t *)fake_gpa(&f->d, FAKE_USED + 2) = 0;
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0), VIRTIO_BLK_S_OK);
}

static void broken_chains(void **state)
{
	struct fixture *f = *state;
	fake_driver_start(&f->d, GOOD_FEATURES);
	uint32_t hdr[4] = {VIRTIO_BLK_T_IN, 0, 0, 0};
	memcpy(fake_gpa(&f->d, HDR), hdr, 16);

	/* Buffer outside guest memory, and one whose end wraps around. */
	fake_set_desc(&f->d, 0, FAKE_MEM_BASE + MEM_SIZE - 8, 16, VRING_DESC_F_NEXT, 1);
	fake_set_desc(&f->d, 1, STATUS, 1, VRING_DESC_F_WRITE, 0);
	expect_reset(f, 0);
	fake_set_desc(&f->d, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	fake_set_desc(&f->d, 1, UINT64_MAX - 4, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	fake_set_desc(&f->d, 2, STATUS, 1, VRING_DESC_F_WRITE, 0);
	expect_reset(f, 0);
	/* A loop, a next past the table, a head past the table. */
	fake_set_desc(&f->d, 0, HDR, 16, VRING_DESC_F_NEXT, 1);
	fake_set_desc(&f->d, 1, DATA, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 0);
	expect_reset(f, 0);
	fake_set_desc(&f->d, 1, DATA, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, QN);
	expect_reset(f, 0);
	expect_reset(f, QN + 3);
	/* Readable after writable; indirect (never offered). */
	fake_set_desc(&f->d, 0, STATUS, 1, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	fake_set_desc(&f->d, 1, HDR, 16, 0, 0);
	expect_reset(f, 0);
	fake_set_desc(&f->d, 0, HDR, 16, VRING_DESC_F_INDIRECT, 0);
	expect_reset(f, 0);
	/* No status byte at all; a header too short. */
	fake_set_desc(&f->d, 0, HDR, 16, 0, 0);
	expect_reset(f, 0);
	fake_set_desc(&f->d, 0, HDR, 8, VRING_DESC_F_NEXT, 1);
	fake_set_desc(&f->d, 1, STATUS, 1, VRING_DESC_F_WRITE, 0);
	expect_reset(f, 0);
	/* The driver claims more new entries than the ring holds. */
	uint16_t *avail = fake_gpa(&f->d, FAKE_AVAIL);
	avail[1] = (uint16_t)(f->d.avail_idx + QN + 1);
	fake_wr(&f->d, 0x050, 0);
	assert_true(virtio_mmio_needs_reset(&f->d.m));
}

static void bad_queue_setup(void **state)
{
	struct fixture *f = *state;
	fake_wr(&f->d, 0x070, 1 | 2);
	fake_wr(&f->d, 0x024, 1);
	fake_wr(&f->d, 0x020, 1);
	fake_wr(&f->d, 0x070, 1 | 2 | 8);
	fake_wr(&f->d, 0x038, QN);
	fake_wr(&f->d, 0x080, 0x1000); /* not guest memory */
	fake_wr(&f->d, 0x090, (uint32_t)FAKE_AVAIL);
	fake_wr(&f->d, 0x0a0, (uint32_t)FAKE_USED);
	fake_wr(&f->d, 0x044, 1);
	assert_int_equal(fake_rd(&f->d, 0x044), 0);
	assert_true(virtio_mmio_needs_reset(&f->d.m));
	fake_wr(&f->d, 0x070, 0);
	assert_false(virtio_mmio_needs_reset(&f->d.m));
	fake_wr(&f->d, 0x038, 100000); /* beyond QueueNumMax */
	fake_wr(&f->d, 0x080, (uint32_t)FAKE_DESC);
	fake_wr(&f->d, 0x044, 1);
	assert_int_equal(fake_rd(&f->d, 0x044), 0);
	/* Notifying a device that is not ready does nothing. */
	int changes = f->d.irq_changes;
	fake_wr(&f->d, 0x050, 0);
	assert_int_equal(f->d.irq_changes, changes);
	assert_int_equal(atomic_load(&f->d.m.notifies), 1);
	assert_int_equal(fake_used_idx(&f->d), 0);
}

static void open_errors(void **state)
{
	(void)state;
	struct error err = {0};
	struct virtio_blk a, b;
	struct disk_spec s = {.path = "/nonexistent/disk.img"};
	assert_int_not_equal(virtio_blk_open(&a, &s, &err), 0);
	assert_non_null(strstr(err.msg, "No such file"));
	s.path = "/tmp";
	assert_int_not_equal(virtio_blk_open(&a, &s, &err), 0);
	assert_non_null(strstr(err.msg, "directory"));
	char path[] = "/tmp/kvmhost-lock-XXXXXX";
	int fd = mkstemp(path);
	assert_int_equal(ftruncate(fd, 4096), 0);
	close(fd);
	s.path = path;
	assert_int_equal(virtio_blk_open(&a, &s, &err), 0);
	assert_int_equal(virtio_blk_open(&b, &s, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "in use by another VM"));
	s.ro = true; /* a reader cannot join a writer either */
	assert_int_equal(virtio_blk_open(&b, &s, &err), -EBUSY);
	virtio_blk_close(&a);
	struct virtio_blk r1, r2; /* two readers share */
	assert_int_equal(virtio_blk_open(&r1, &s, &err), 0);
	assert_int_equal(virtio_blk_open(&r2, &s, &err), 0);
	virtio_blk_close(&r1);
	virtio_blk_close(&r2);
	assert_int_equal(truncate(path, 100), 0);
	s.ro = false;
	assert_int_not_equal(virtio_blk_open(&a, &s, &err), 0);
	assert_non_null(strstr(err.msg, "smaller than one"));
	unlink(path);
}

/* The transport and its queue, saved mid-stream and restored into a fresh
 * transport over the same guest memory, go on where they were: the next
 * request is taken from the right ring entry and completes at the right
 * used index, with the same features and status. */
static void save_restore(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(fake_driver_start(&f->d, GOOD_FEATURES) & 4, 4);
	memset(fake_gpa(&f->d, DATA), 0x5a, 512);
	assert_int_equal(request(f, VIRTIO_BLK_T_OUT, 3, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(request(f, VIRTIO_BLK_T_FLUSH, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(fake_used_idx(&f->d), 2);
	struct state_writer w = {0};
	virtio_mmio_ops.save(&f->d.m, &w);
	assert_int_equal(w.err, 0);

	virtio_mmio_destroy(&f->d.m);
	virtio_mmio_init(&f->d.m, &virtio_blk_ops, &f->blk, &f->d.gm, &f->d.host, 5);
	assert_int_equal(fake_rd(&f->d, 0x070), 0); /* a fresh transport knows nothing */
	struct state_reader r = state_reader_init(w.buf, w.len);
	assert_int_equal(virtio_mmio_ops.restore(&f->d.m, &r), 0);
	assert_int_equal(state_reader_done(&r), 0);
	assert_int_equal(fake_rd(&f->d, 0x070), 1 | 2 | 4 | 8);
	assert_int_equal(f->d.m.driver_features, GOOD_FEATURES);
	fake_wr(&f->d, 0x030, 0);
	assert_int_equal(fake_rd(&f->d, 0x044), 1);
	memset(fake_gpa(&f->d, DATA), 0, 512);
	assert_int_equal(request(f, VIRTIO_BLK_T_IN, 3, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(fake_used_idx(&f->d), 3);
	assert_int_equal(((uint8_t *)fake_gpa(&f->d, DATA))[511], 0x5a);

	/* A stream cut anywhere is refused, and leaves the device reset, never
	 * half-restored. */
	for (size_t n = 0; n < w.len; n++) {
		struct state_reader t = state_reader_init(w.buf, n);
		assert_int_not_equal(virtio_mmio_ops.restore(&f->d.m, &t), 0);
		assert_int_equal(fake_rd(&f->d, 0x070), 0);
	}
	/* Rings that would lie outside guest memory are refused. */
	uint8_t *bad = malloc(w.len);
	memcpy(bad, w.buf, w.len);
	uint64_t far = FAKE_MEM_BASE + MEM_SIZE;
	memcpy(bad + 9 * 4 + 4 + 2 + 1, &far, 8); /* the descriptor table's address */
	struct state_reader t = state_reader_init(bad, w.len);
	assert_int_not_equal(virtio_mmio_ops.restore(&f->d.m, &t), 0);
	free(bad);
	/* A different disk size is refused: the guest's view must not change. */
	f->blk.capacity--;
	t = state_reader_init(w.buf, w.len);
	assert_int_not_equal(virtio_mmio_ops.restore(&f->d.m, &t), 0);
	f->blk.capacity++;
	state_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(negotiation, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(read_write_flush_id, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(request_errors, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(read_only, setup_ro, teardown),
		cmocka_unit_test_setup_teardown(broken_chains, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(bad_queue_setup, setup_rw, teardown),
		cmocka_unit_test_setup_teardown(save_restore, setup_rw, teardown),
		cmocka_unit_test(open_errors),
	};
	return cmocka_run_group_tests_name("virtio_blk", tests, NULL, NULL);
}
