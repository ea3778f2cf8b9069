/* A hostile driver from a recording: replays one input of the virtio-blk
 * fuzz target (fuzz/fuzz_virtio_blk.c) against disk 0 of a running VM - the
 * same well-behaved start, the same script of register reads and writes of
 * any width, the same bytes as rings and buffers - so what the fuzzer found
 * is tried again through KVM, the MMIO bus and the sandboxed VMM. The input
 * comes from the host through the test device, a word at a time. */
#include "replay.h"

#include "console.h"

#define REPLAY_MEM   0x2000000UL /* the fuzz target's MEM_BASE, moved here */
#define REPLAY_BLOB  0x2100000UL /* the input as it arrived */
#define REPLAY_BYTES (64 * 1024) /* the fuzz target's MEM_SIZE */
#define MAX_OPS	     48

static u64 target; /* disk 0's window, or net 0's in a VM with no disk */

static void mmio(u32 off, u64 v, u32 width, int write)
{
	volatile u8 *p = (volatile u8 *)(target + off);
	if (!write) {
		(void)(width == 1   ? *p
		       : width == 2 ? *(volatile u16 *)p
		       : width == 4 ? *(volatile u32 *)p
				    : *(volatile u64 *)p);
		return;
	}
	if (width == 1)
		*p = (u8)v;
	else if (width == 2)
		*(volatile u16 *)p = (u16)v;
	else if (width == 4)
		*(volatile u32 *)p = (u32)v;
	else
		*(volatile u64 *)p = v;
}

static u32 fetch(u8 *blob)
{
	u32 len = config(TESTDEV_CFG_BLOB_LEN);
	if (len > REPLAY_BYTES * 2)
		len = REPLAY_BYTES * 2;
	for (u32 i = 0; i < (len + 3) / 4; i++)
		((u32 *)blob)[i] = config(TESTDEV_CFG_BLOB_WORD | i);
	return len;
}

/* fuzz_virtio_blk's start: one queue. */
static void blk_start(void)
{
	static const u32 init[][2] = {
		{0x070, 3}, {0x024, 1},	   {0x020, 1},	   {0x070, 11}, {0x038, 8},
		{0x080, 0}, {0x090, 0x80}, {0x0a0, 0x100}, {0x044, 1},	{0x070, 15},
	};
	for (u32 i = 0; i < sizeof(init) / sizeof(init[0]); i++) {
		u32 off = init[i][0], v = init[i][1];
		if (off == 0x080 || off == 0x090 || off == 0x0a0)
			v += (u32)REPLAY_MEM;
		mmio(off, v, 4, 1);
	}
}

/* fuzz_virtio_net's start: three queues, its features. */
static void net_start(void)
{
	mmio(0x070, 3, 4, 1);
	mmio(0x024, 0, 4, 1), mmio(0x020, (1u << 15) | (1u << 17) | (1u << 21) | (1u << 5), 4, 1);
	mmio(0x024, 1, 4, 1), mmio(0x020, 1, 4, 1);
	mmio(0x070, 11, 4, 1);
	for (u32 q = 0; q < 3; q++) {
		u32 base = (u32)REPLAY_MEM + q * 0x400;
		mmio(0x030, q, 4, 1), mmio(0x038, 8, 4, 1);
		mmio(0x080, base, 4, 1), mmio(0x090, base + 0x80, 4, 1);
		mmio(0x0a0, base + 0x100, 4, 1), mmio(0x044, 1, 4, 1);
	}
	mmio(0x070, 15, 4, 1);
}

/* The net target's frames (for its fake tap) sit between the script and
 * the memory: skipped, as the guest has no tap to put them in. */
static u32 skip_frames(const u8 *blob, u32 at, u32 size)
{
	u32 n = at < size ? blob[at] % 5 : 0, p = at + 1;
	for (u32 f = 0; f < n && p + 2 <= size; f++) {
		u32 len = (u32)(blob[p] | blob[p + 1] << 8) % 2048;
		p += 2;
		p += len < size - p ? len : size - p;
	}
	return p;
}

void virtio_replay(void)
{
	u8 *blob = (u8 *)REPLAY_BLOB, *mem = (u8 *)REPLAY_MEM;
	int net = !config(TESTDEV_CFG_DISKS) && config(TESTDEV_CFG_NETS);
	target = net ? VIRTIO_MMIO_BASE + PC_MAX_DISKS * VIRTIO_MMIO_STRIDE : VIRTIO_MMIO_BASE;
	u32 size = fetch(blob);
	u32 ops = size ? blob[0] % (net ? 32 : MAX_OPS) : 0, script = 1 + ops * 6;
	u32 data = net ? skip_frames(blob, script, size) : script;
	/* The rest of the 64 KiB is still zero: nothing else uses it. */
	for (u32 i = 0; i < REPLAY_BYTES && i + data < size; i++)
		mem[i] = blob[data + i];
	if (net)
		net_start();
	else
		blk_start();
	for (u32 i = 0, pos = 1; i < ops && pos + 6 <= size; i++, pos += 6) {
		u32 off = (blob[pos] | blob[pos + 1] << 8) & 0x1ff;
		u32 v = blob[pos + 2] | blob[pos + 3] << 8 | blob[pos + 4] << 16 |
			(u32)blob[pos + 5] << 24;
		u32 width = 1u << (blob[pos] >> 6);
		mmio(off, (u64)v << 32 | v, width, blob[pos + 1] & 0x80);
	}
	/* And notifies, whatever the script did: every queue the device has. */
	mmio(0x050, net ? 1 : 0, 4, 1);
	if (net)
		mmio(0x050, 2, 4, 1), mmio(0x050, 0, 4, 1);
	report(TESTDEV_EV_REPLAY_DONE, ops);
}
