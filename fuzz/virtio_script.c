/* The hostile guest of the virtio fuzz targets: the input is a script of
 * register accesses followed by the bytes of guest memory (rings,
 * descriptors, buffers), so both the transport and the device's own
 * request parsing see arbitrary values; then a save/restore round trip and
 * a restore of the input itself. ASan/UBSan catch the rest. */
#include "virtio_script.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/mmio.h"

#define MEM_BASE 0x10000ull
#define MEM_SIZE (64 * 1024)

static const struct device_host no_host; /* no lines, no exits */

void fuzz_virtio_mmio(const struct virtio_device_ops *dev_ops, void *dev, const uint8_t *data,
		      size_t size)
{
	static uint8_t ram[MEM_SIZE];
	struct guest_mem gm = {.regions = {{MEM_BASE, MEM_SIZE, ram}}, .nr = 1};
	struct virtio_mmio m;
	virtio_mmio_init(&m, dev_ops, dev, &gm, &no_host, 5);

	/* First byte: how many 6-byte register operations follow. */
	size_t ops = size ? data[0] % 48 : 0, pos = 1;
	size_t script = 1 + ops * 6;
	memset(ram, 0, sizeof(ram));
	if (size > script)
		memcpy(ram, data + script, size - script < MEM_SIZE ? size - script : MEM_SIZE);

	/* A well-behaved prefix so the fuzzer reaches queue processing quickly;
	 * the script may undo any of it. */
	static const uint32_t init[][2] = {
		{0x070, 3},
		{0x024, 1},
		{0x020, 1},
		{0x070, 11},
		{0x038, 8},
		{0x080, MEM_BASE},
		{0x090, MEM_BASE + 0x80},
		{0x0a0, MEM_BASE + 0x100},
		{0x044, 1},
		{0x070, 15},
	};
	for (size_t i = 0; i < sizeof(init) / sizeof(init[0]); i++) {
		uint32_t v = init[i][1];
		virtio_mmio_ops.access(&m, 0, init[i][0], (uint8_t *)&v, 4, true);
	}
	for (size_t i = 0; i < ops && pos + 6 <= size; i++, pos += 6) {
		uint16_t off = (uint16_t)((data[pos] | data[pos + 1] << 8) & 0x1ff);
		uint32_t v;
		memcpy(&v, data + pos + 2, 4);
		uint8_t width = (uint8_t)(1u << (data[pos] >> 6)); /* 1, 2, 4 or 8 */
		uint8_t buf[8];
		memcpy(buf, &v, 4);
		memcpy(buf + 4, &v, 4);
		bool write = data[pos + 1] & 0x80;
		virtio_mmio_ops.access(&m, 0, off, buf, width, write);
	}
	/* And a notify whatever the script did. */
	uint32_t zero = 0;
	virtio_mmio_ops.access(&m, 0, 0x050, (uint8_t *)&zero, 4, true);
	/* What it saves restores, and hostile state (the input itself) is
	 * refused or restored without touching memory outside the rings. */
	struct state_writer w = {0};
	virtio_mmio_ops.save(&m, &w);
	struct virtio_mmio copy;
	virtio_mmio_init(&copy, dev_ops, dev, &gm, &no_host, 5);
	struct state_reader r = state_reader_init(w.buf, w.len);
	if (virtio_mmio_ops.restore(&copy, &r) || state_reader_done(&r))
		abort();
	r = state_reader_init(data, size);
	(void)virtio_mmio_ops.restore(&copy, &r);
	virtio_mmio_ops.access(&copy, 0, 0x050, (uint8_t *)&zero, 4, true);
	state_writer_free(&w);
	virtio_mmio_destroy(&copy);
	virtio_mmio_destroy(&m);
}
