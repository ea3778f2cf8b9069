/* A hostile driver from a recording: replays one input of the virtio-blk
 * fuzz target (fuzz/fuzz_virtio_blk.c) against disk 0 of a running VM - the
 * same well-behaved start, the same script of register reads and writes of
 * any width, the same bytes as rings and buffers - so what the fuzzer found
 * is tried again through KVM, the MMIO bus and the sandboxed VMM. The input
 * comes from the host through the test device, a word at a time. */
#include "guest.h"

#define REPLAY_MEM   0x2000000UL /* the fuzz target's MEM_BASE, moved here */
#define REPLAY_BLOB  0x2100000UL /* the input as it arrived */
#define REPLAY_BYTES (64 * 1024) /* the fuzz target's MEM_SIZE */
#define MAX_OPS	     48

static void mmio(u32 off, u64 v, u32 width, int write)
{
	volatile u8 *p = (volatile u8 *)(VIRTIO_MMIO_BASE + off);
	if (!write) {
		(void)(width == 1	? *p
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

void virtio_replay(void)
{
	u8 *blob = (u8 *)REPLAY_BLOB, *mem = (u8 *)REPLAY_MEM;
	u32 size = fetch(blob);
	u32 ops = size ? blob[0] % MAX_OPS : 0, script = 1 + ops * 6;
	/* The rest of the 64 KiB is still zero: nothing else uses it. */
	for (u32 i = 0; i < REPLAY_BYTES && i + script < size; i++)
		mem[i] = blob[script + i];
	static const u32 init[][2] = {
		{0x070, 3},  {0x024, 1},  {0x020, 1},	  {0x070, 11},
		{0x038, 8},  {0x080, 0},  {0x090, 0x80},  {0x0a0, 0x100},
		{0x044, 1},  {0x070, 15},
	};
	for (u32 i = 0; i < sizeof(init) / sizeof(init[0]); i++) {
		u32 off = init[i][0], v = init[i][1];
		if (off == 0x080 || off == 0x090 || off == 0x0a0)
			v += (u32)REPLAY_MEM;
		mmio(off, v, 4, 1);
	}
	for (u32 i = 0, pos = 1; i < ops && pos + 6 <= size; i++, pos += 6) {
		u32 off = (blob[pos] | blob[pos + 1] << 8) & 0x1ff;
		u32 v = blob[pos + 2] | blob[pos + 3] << 8 | blob[pos + 4] << 16 |
			(u32)blob[pos + 5] << 24;
		u32 width = 1u << (blob[pos] >> 6);
		mmio(off, (u64)v << 32 | v, width, blob[pos + 1] & 0x80);
	}
	mmio(0x050, 0, 4, 1); /* and a notify, whatever the script did */
	report(TESTDEV_EV_REPLAY_DONE, ops);
}
