/* A minimal polling virtio-blk driver (virtio-mmio, split ring) and the disk
 * workload kvmhost's tests use: numbered, checksummed 4 KiB blocks are
 * written, flushed (reported durable only after FLUSH completes), read back
 * and verified. Guest memory is identity-mapped: an address is its GPA. */
#include "virtio_blk.h"

#include "clock.h"
#include "console.h"

#define REG(off)  (*(volatile u32 *)(VIRTIO_MMIO_BASE + (off)))
#define QSZ	  8
#define BLOCK	  4096
#define BUF_BYTES (64 * 1024)

struct desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

static struct desc ring_desc[QSZ] __attribute__((aligned(16)));
static struct {
	u16 flags, idx, ring[QSZ], used_event;
} ring_avail __attribute__((aligned(4)));
static volatile struct {
	u16 flags, idx;
	struct {
		u32 id, len;
	} ring[QSZ];
	u16 avail_event;
} ring_used __attribute__((aligned(4)));
static struct {
	u32 type, reserved;
	u64 sector;
} hdr;
static volatile u8 status;
static u64 buf[BUF_BYTES / 8] __attribute__((aligned(4096)));
static char disk_id[24];
static u16 avail_idx, used_seen;
static int use_irq;
volatile u64 virtio_irqs; /* counted by irq_virtio in entry.S */

/* Route the disk's IOAPIC pin to our vector, level-triggered, to vCPU 0. */
static void ioapic_route(u32 pin, u32 vector)
{
	volatile u32 *sel = (volatile u32 *)0xfec00000UL, *win = (volatile u32 *)0xfec00010UL;
	*sel = 0x10 + 2 * pin + 1;
	*win = 0; /* destination APIC id 0 */
	*sel = 0x10 + 2 * pin;
	*win = vector | (1u << 15); /* fixed, physical, active high, level, unmasked */
}

static int blk_init(void)
{
	if (REG(0x000) != 0x74726976 || REG(0x004) != 2 || REG(0x008) != 2)
		return -1;
	REG(0x070) = 0;
	REG(0x070) = 1;	    /* ACKNOWLEDGE */
	REG(0x070) = 1 | 2; /* DRIVER */
	REG(0x014) = 0;
	u32 lo = REG(0x010);
	REG(0x014) = 1;
	u32 hi = REG(0x010);
	if (!(hi & 1)) /* VIRTIO_F_VERSION_1 */
		return -2;
	REG(0x024) = 0;
	REG(0x020) = lo & ((1u << 9) | (1u << 6) | (1u << 2) |
			   (1u << 5)); /* FLUSH BLK_SIZE SEG_MAX RO */
	REG(0x024) = 1;
	REG(0x020) = 1;
	REG(0x070) = 1 | 2 | 8; /* FEATURES_OK */
	if (!(REG(0x070) & 8))
		return -3;
	REG(0x030) = 0;
	if (REG(0x034) < QSZ)
		return -4;
	REG(0x038) = QSZ;
	REG(0x080) = (u32)(u64)ring_desc;
	REG(0x084) = 0;
	REG(0x090) = (u32)(u64)&ring_avail;
	REG(0x094) = 0;
	REG(0x0a0) = (u32)(u64)&ring_used;
	REG(0x0a4) = 0;
	ring_avail.flags = 1; /* no interrupts: we poll */
	REG(0x044) = 1;
	REG(0x070) = 1 | 2 | 8 | 4; /* DRIVER_OK */
	return 0;
}

/* One request, header + optional data + status; returns the status byte. */
static int blk_request(u32 type, u64 sector, void *data, u32 len)
{
	hdr.type = type;
	hdr.sector = sector;
	status = 0xff;
	ring_desc[0] = (struct desc){(u64)&hdr, 16, 1, 1};
	int n = 1;
	if (len) {
		/* IN and GET_ID data are written by the device. */
		u16 w = type == 0 || type == 8 ? 2 : 0;
		ring_desc[1] = (struct desc){(u64)data, len, (u16)(1 | w), 2};
		n = 2;
	}
	ring_desc[n] = (struct desc){(u64)&status, 1, 2, 0};
	ring_avail.ring[avail_idx % QSZ] = 0;
	__atomic_store_n(&ring_avail.idx, ++avail_idx, __ATOMIC_RELEASE);
	u64 irqs = virtio_irqs;
	REG(0x050) = 0; /* notify: kvmhost serves it before this write returns */
	if (use_irq) {
		/* Completion by interrupt, as a real driver waits for it. It is
		 * already pending (served during the notify): let it in before
		 * any hlt, so the wait does not rest on the STI shadow alone -
		 * the test host's emulated SVM was seen losing the shadow when
		 * an exit fell inside it, and the hlt after the handler slept. */
		__asm__ volatile("sti; nop; cli" ::: "memory");
		while (virtio_irqs == irqs)
			__asm__ volatile("sti; hlt; cli" ::: "memory");
	}
	while (__atomic_load_n(&ring_used.idx, __ATOMIC_ACQUIRE) == used_seen)
		__asm__ volatile("pause");
	used_seen++;
	return status;
}

static u64 capacity(void)
{
	return *(volatile u64 *)(VIRTIO_MMIO_BASE + 0x100);
}

static void fill_block(u64 *w, u64 block, u64 gen)
{
	u64 x = block * 0x9e3779b97f4a7c15UL ^ gen, sum = 0;
	w[0] = DISK_BLOCK_MAGIC;
	w[1] = block;
	w[2] = gen;
	for (int i = 3; i < 511; i++) {
		x = x * 6364136223846793005UL + 1442695040888963407UL;
		w[i] = x;
	}
	for (int i = 0; i < 511; i++)
		sum = sum * 31 + w[i];
	w[511] = sum;
}

static int block_ok(const u64 *w, u64 block, u64 gen)
{
	u64 sum = 0;
	for (int i = 0; i < 511; i++)
		sum = sum * 31 + w[i];
	return w[0] == DISK_BLOCK_MAGIC && w[1] == block && w[2] == gen && w[511] == sum;
}

void disk_main(void)
{
	int r = blk_init();
	if (!r) {
		ring_avail.flags = 0; /* interrupts wanted */
		ioapic_route(VIRTIO_DISK0_GSI, VIRTIO_IRQ_VECTOR);
		use_irq = 1;
	}
	if (r) {
		print_line("virtio-blk: no usable disk (", (u64)-r, ") ", 0, "\n");
		report(TESTDEV_EV_DISK_ERROR, 1);
		report(TESTDEV_EV_DISK_DONE, 0);
		return;
	}
	if (blk_request(8, 0, disk_id, 20) == 0) { /* GET_ID */
		disk_id[20] = 0;
		print_line("virtio-blk: ", capacity(), " sectors, ", 0, " errors so far");
		print_str(", id ");
		print_str(disk_id);
		print_str("\n");
	}
	u64 blocks = config(TESTDEV_CFG_DISK_BLOCKS);
	u64 per = config(TESTDEV_CFG_DISK_REQ_KIB) * 1024 / BLOCK;
	u64 flush_every = config(TESTDEV_CFG_DISK_FLUSH_EVERY);
	u64 gen = config(TESTDEV_CFG_DISK_GENERATION);
	if (per < 1 || per > BUF_BYTES / BLOCK)
		per = 1;
	if (blocks > capacity() / 8)
		blocks = capacity() / 8;
	/* Durable: written OK, then a flush that completed OK. A write that
	 * failed (a full disk) is not durable whatever the flush says. */
	u64 errors = 0, since_flush = 0, written_ok = 0, durable = 0;
	for (u64 b = 0; b < blocks; b += per) {
		u64 n = blocks - b < per ? blocks - b : per;
		for (u64 i = 0; i < n; i++)
			fill_block(buf + i * 512, b + i, gen);
		if (blk_request(1, b * 8, buf, (u32)(n * BLOCK)) != 0)
			errors++;
		else
			written_ok += n;
		since_flush += n;
		if (since_flush >= flush_every || b + n >= blocks) {
			if (blk_request(4, 0, 0, 0) == 0) {
				durable += written_ok;
				report(TESTDEV_EV_DISK_FLUSHED, durable);
			} else {
				errors++;
			}
			written_ok = 0;
			since_flush = 0;
		}
	}
	u64 verified = 0;
	for (u64 b = 0; b < blocks; b += per) {
		u64 n = blocks - b < per ? blocks - b : per;
		if (blk_request(0, b * 8, buf, (u32)(n * BLOCK)) != 0) {
			errors++;
			continue;
		}
		for (u64 i = 0; i < n; i++) {
			if (block_ok(buf + i * 512, b + i, gen))
				verified++;
			else
				errors++;
		}
	}
	report(TESTDEV_EV_DISK_VERIFIED, verified);
	report(TESTDEV_EV_DISK_ERROR, errors);
	report(TESTDEV_EV_DISK_IRQS, virtio_irqs);
	print_line("virtio-blk: verified ", verified, " blocks, ", errors, " errors\n");
	report(TESTDEV_EV_DISK_DONE, 0);
}

/* Sequential throughput: the buffer is filled once, so only I/O is timed. */
void disk_bench(void)
{
	if (blk_init()) {
		report(TESTDEV_EV_DISK_ERROR, 1);
		return;
	}
	u64 total = (u64)config(TESTDEV_CFG_DISK_BLOCKS) * BLOCK;
	if (total > capacity() * 512)
		total = capacity() * 512;
	static const u32 sizes[2] = {4096, 65536};
	for (int s = 0; s < 2; s++) {
		for (int dir = 1; dir >= 0; dir--) { /* write, then read back */
			u64 t0 = guest_now();
			for (u64 off = 0; off + sizes[s] <= total; off += sizes[s])
				blk_request((u32)dir, off / 512, buf, sizes[s]);
			u64 t = guest_now() - t0;
			report(TESTDEV_EV_DISK_BENCH + (u32)(s * 2 + (1 - dir)), t);
		}
	}
	/* Flush latency: sync what the phases above left, then time the flush
	 * of one 4 KiB write, as the host side does. */
	blk_request(4, 0, 0, 0);
	blk_request(1, 0, buf, 4096);
	u64 t0 = guest_now();
	blk_request(4, 0, 0, 0);
	report(TESTDEV_EV_DISK_BENCH + 4, guest_now() - t0);
	report(TESTDEV_EV_DISK_DONE, 0);
}
