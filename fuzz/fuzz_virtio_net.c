/* libFuzzer target: a hostile guest driving virtio-net over virtio-mmio, and
 * frames arriving for it. The input: a script of register accesses (any
 * queue), up to four frames from the "tap" (a datagram socket standing in
 * for it), then the bytes of guest memory - rings, descriptor chains,
 * headers, buffers too small or absurd. Transmit, control and receive all
 * see arbitrary values; ASan/UBSan catch the rest. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "virtio/mmio.h"
#include "virtio/net.h"

#define MEM_BASE 0x10000ull
#define MEM_SIZE (64 * 1024)

static const struct device_host no_host; /* no lines, no exits */

static void reg(struct virtio_mmio *m, uint32_t off, uint32_t v)
{
	virtio_mmio_ops.access(m, 0, off, (uint8_t *)&v, 4, true);
}

/* A driver that sets up all three queues, so the script starts deep; with
 * or without event indexes (bit 29). */
static void well_behaved_start(struct virtio_mmio *m, bool event_idx)
{
	reg(m, 0x070, 3);
	reg(m, 0x024, 0),
		reg(m, 0x020,
		    (1u << 15) | (1u << 17) | (1u << 21) | (1u << 5) | (event_idx ? 1u << 29 : 0));
	reg(m, 0x024, 1), reg(m, 0x020, 1);
	reg(m, 0x070, 11);
	for (uint32_t q = 0; q < 3; q++) {
		uint64_t base = MEM_BASE + q * 0x400;
		reg(m, 0x030, q);
		reg(m, 0x038, 8);
		reg(m, 0x080, (uint32_t)base);
		reg(m, 0x090, (uint32_t)base + 0x80);
		reg(m, 0x0a0, (uint32_t)base + 0x100);
		reg(m, 0x044, 1);
	}
	reg(m, 0x070, 15);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t ram[MEM_SIZE];
	static struct virtio_net n;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		abort();
	memset(&n, 0, sizeof(n));
	n.tap.fd = sv[0];
	n.kick_efd = n.stop_efd = n.again_efd = -1;
	n.status = 1; /* link up */
	struct guest_mem gm = {.regions = {{MEM_BASE, MEM_SIZE, ram}}, .nr = 1};
	struct virtio_mmio m;
	virtio_mmio_init(&m, &virtio_net_ops, &n, &gm, &no_host, 16);
	virtio_net_attach(&n, &m, &gm);

	/* The script is applied after the start below; frames and memory follow it. */
	size_t ops = size ? data[0] % 32 : 0, frames_at = 1 + ops * 6;
	if (frames_at > size)
		frames_at = size;
	size_t nframes = frames_at < size ? data[frames_at] % 5 : 0, p = frames_at + 1;
	for (size_t f = 0; f < nframes && p + 2 <= size; f++) {
		size_t len = (size_t)(data[p] | data[p + 1] << 8) % 2048;
		p += 2;
		if (len > size - p)
			len = size - p;
		(void)!write(sv[1], data + p, len);
		p += len;
	}
	memset(ram, 0, sizeof(ram));
	if (p < size)
		memcpy(ram, data + p, size - p < MEM_SIZE ? size - p : MEM_SIZE);

	well_behaved_start(&m, size && (data[0] & 0x20));
	for (size_t i = 0, q = 1; i < ops && q + 6 <= size; i++, q += 6) {
		uint16_t off = (uint16_t)((data[q] | data[q + 1] << 8) & 0x1ff);
		uint8_t buf[8], width = (uint8_t)(1u << (data[q] >> 6));
		memcpy(buf, data + q + 2, 4);
		memcpy(buf + 4, data + q + 2, 4);
		virtio_mmio_ops.access(&m, 0, off, buf, width, data[q + 1] & 0x80);
	}
	reg(&m, 0x050, 1); /* transmit */
	reg(&m, 0x050, 2); /* control */
	(void)virtio_net_poll_rx(&n);
	virtio_net_announce(&n);
	(void)virtio_net_poll_rx(&n);

	virtio_mmio_destroy(&m);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
