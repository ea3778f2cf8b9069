/* A tiny network stack on net 0 (virtio-mmio, split rings, polled from
 * vCPU 0's loop and woken by its interrupt): it answers ARP and ICMP echo
 * for the address the host gave (--guest-ip) and sends a gratuitous ARP
 * whenever the device asks it to announce itself. Ring-0 work per frame is
 * a few hundred instructions: guest ring 0 may be emulated. */
#include "virtio_net.h"

#include "clock.h"
#include "console.h"

#define NET_BASE (VIRTIO_MMIO_BASE + PC_MAX_DISKS * VIRTIO_MMIO_STRIDE)
#define REG(off) (*(volatile u32 *)(NET_BASE + (off)))
#define QSZ	 16
#define BUF	 2048
#define HDR	 12 /* struct virtio_net_hdr_mrg_rxbuf */

struct desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

struct queue {
	struct desc desc[QSZ] __attribute__((aligned(16)));
	struct {
		u16 flags, idx, ring[QSZ], used_event;
	} avail __attribute__((aligned(4)));
	volatile struct {
		u16 flags, idx;
		struct {
			u32 id, len;
		} ring[QSZ];
		u16 avail_event;
	} used __attribute__((aligned(4)));
	u16 seen;
};

static struct queue rxq, txq, ctlq;
static u8 rx_buf[QSZ][BUF] __attribute__((aligned(64)));
static u8 tx_buf[QSZ][BUF] __attribute__((aligned(64)));
static u8 ctl_buf[16];
static u8 mac[6];
static u32 my_ip; /* network byte order, as the frames carry it */
static u64 rx_count, replies, announced, pongs, reported;
static u32 peer_ip; /* --guest-ping's, network byte order; 0: none */
static u8 peer_mac[6];
static int peer_known;
static u64 next_ping;
static u16 ping_seq;
static int up;
volatile u64 net_irqs; /* counted by irq_net in entry.S */

static void route_irq(void)
{
	volatile u32 *sel = (volatile u32 *)0xfec00000UL, *win = (volatile u32 *)0xfec00010UL;
	*sel = 0x10 + 2 * VIRTIO_NET0_GSI + 1;
	*win = 0;
	*sel = 0x10 + 2 * VIRTIO_NET0_GSI;
	*win = VIRTIO_NET_IRQ_VECTOR | (1u << 15); /* level, unmasked, to vCPU 0 */
}

static void setup_queue(u32 index, struct queue *q)
{
	REG(0x030) = index;
	REG(0x038) = QSZ;
	u64 d = (u64)q->desc, a = (u64)&q->avail, u = (u64)&q->used;
	REG(0x080) = (u32)d, REG(0x084) = (u32)(d >> 32);
	REG(0x090) = (u32)a, REG(0x094) = (u32)(a >> 32);
	REG(0x0a0) = (u32)u, REG(0x0a4) = (u32)(u >> 32);
	REG(0x044) = 1;
}

/* Features: VERSION_1, MAC, STATUS, CTRL_VQ, GUEST_ANNOUNCE - no mergeable
 * buffers, no offloads: every frame fits one 2 KiB buffer. */
static int negotiate(void)
{
	if (REG(0x000) != 0x74726976 || REG(0x004) != 2 || REG(0x008) != 1)
		return -1;
	REG(0x070) = 0;
	REG(0x070) = 1 | 2;
	u32 want_lo = (1u << 5) | (1u << 16) | (1u << 17) | (1u << 21);
	REG(0x014) = 0;
	u32 lo = REG(0x010);
	REG(0x024) = 0, REG(0x020) = lo & want_lo;
	REG(0x024) = 1, REG(0x020) = 1; /* VERSION_1 */
	REG(0x070) = 1 | 2 | 8;
	return REG(0x070) & 8 ? 0 : -2;
}

static void give_rx(u16 id)
{
	rxq.avail.ring[rxq.avail.idx % QSZ] = id;
	__atomic_store_n(&rxq.avail.idx, (u16)(rxq.avail.idx + 1), __ATOMIC_RELEASE);
}

void net_init(void)
{
	my_ip = config(TESTDEV_CFG_GUEST_IP);
	peer_ip = config(TESTDEV_CFG_GUEST_PEER);
	if (!config(TESTDEV_CFG_NETS) || !my_ip || negotiate())
		return;
	setup_queue(0, &rxq);
	setup_queue(1, &txq);
	setup_queue(2, &ctlq);
	for (int i = 0; i < 6; i++)
		mac[i] = *(volatile u8 *)(NET_BASE + 0x100 + i);
	for (u16 i = 0; i < QSZ; i++) {
		rxq.desc[i] = (struct desc){(u64)rx_buf[i], BUF, 2 /* WRITE */, 0};
		give_rx(i);
	}
	route_irq();
	REG(0x070) = 1 | 2 | 8 | 4; /* DRIVER_OK */
	REG(0x050) = 0;
	up = 1;
}

static void copy(u8 *d, const u8 *s, u32 n)
{
	for (u32 i = 0; i < n; i++)
		d[i] = s[i];
}

/* One frame out: header zeroed (no offload), then the frame. Slots are
 * used in turn; the ring is never more than QSZ ahead of the device. */
static void send(const u8 *frame, u32 len)
{
	static u16 next;
	if (len > BUF - HDR)
		return;
	while ((u16)(txq.avail.idx - txq.used.idx) >= QSZ)
		__asm__ volatile("pause");
	u16 id = next++ % QSZ;
	for (int i = 0; i < HDR; i++)
		tx_buf[id][i] = 0;
	copy(tx_buf[id] + HDR, frame, len);
	txq.desc[id] = (struct desc){(u64)tx_buf[id], HDR + len, 0, 0};
	txq.avail.ring[txq.avail.idx % QSZ] = id;
	__atomic_store_n(&txq.avail.idx, (u16)(txq.avail.idx + 1), __ATOMIC_RELEASE);
	REG(0x050) = 1;
}

static u16 be16(const u8 *p)
{
	return (u16)(p[0] << 8 | p[1]);
}

/* ARP, IPv4 over Ethernet: op 1 request, 2 reply; a gratuitous one is a
 * request for our own address. */
static void send_arp(u16 op, const u8 *to_mac, const u8 *to_ip)
{
	u8 f[42];
	static const u8 head[8] = {0, 1, 8, 0, 6, 4, 0, 0};
	copy(f, op == 2 ? to_mac : (const u8 *)"\xff\xff\xff\xff\xff\xff", 6);
	copy(f + 6, mac, 6);
	f[12] = 0x08, f[13] = 0x06;
	copy(f + 14, head, 8);
	f[21] = (u8)op;
	copy(f + 22, mac, 6);
	copy(f + 28, (const u8 *)&my_ip, 4);
	copy(f + 32, op == 2 ? to_mac : (const u8 *)"\0\0\0\0\0\0", 6);
	copy(f + 38, to_ip, 4);
	send(f, sizeof(f));
}

static void on_arp(const u8 *f, u32 len)
{
	if (len >= 42 && be16(f + 20) == 2 && peer_ip && *(const u32 *)(f + 28) == peer_ip) {
		copy(peer_mac, f + 22, 6);
		peer_known = 1;
		return;
	}
	if (len < 42 || be16(f + 20) != 1 || *(const u32 *)(f + 38) != my_ip)
		return;
	send_arp(2, f + 22, f + 28);
	replies++;
}

/* Echo request to us: the same frame back, addresses swapped, type 0; the
 * checksum changes by the type's difference only. */
static void on_ipv4(u8 *f, u32 len)
{
	u32 ihl = (f[14] & 0xf) * 4u;
	if (len < 14 + ihl + 8 || f[23] != 1 || *(u32 *)(f + 30) != my_ip ||
	    (f[14 + ihl] != 8 && f[14 + ihl] != 0))
		return;
	u8 *icmp = f + 14 + ihl;
	if (icmp[0] == 0) { /* a reply to our own ping */
		pongs += peer_ip && *(u32 *)(f + 26) == peer_ip;
		return;
	}
	u8 tmp[6];
	copy(tmp, f, 6), copy(f, f + 6, 6), copy(f + 6, tmp, 6);
	copy(tmp, f + 26, 4), copy(f + 26, f + 30, 4), copy(f + 30, tmp, 4);
	icmp[0] = 0;
	u32 sum = (u32)be16(icmp + 2) + 0x0800;
	sum = (sum & 0xffff) + (sum >> 16);
	icmp[2] = (u8)(sum >> 8), icmp[3] = (u8)sum;
	send(f, len);
	replies++;
}

static u16 csum(const u8 *p, u32 n)
{
	u32 s = 0;
	for (u32 i = 0; i + 1 < n; i += 2)
		s += (u32)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (u16)~s;
}

/* --guest-ping: the peer's MAC first (ARP), then an echo request every
 * 10 ms: a minimal IPv4 header and 8 bytes of ICMP. */
static void ping_peer(void)
{
	u64 now = guest_now();
	if (!peer_ip || now < next_ping)
		return;
	next_ping = now + 10000000UL;
	if (!peer_known) {
		send_arp(1, 0, (const u8 *)&peer_ip);
		return;
	}
	u8 f[42] = {0};
	copy(f, peer_mac, 6), copy(f + 6, mac, 6);
	f[12] = 0x08, f[14] = 0x45, f[17] = 28, f[22] = 64, f[23] = 1;
	copy(f + 26, (const u8 *)&my_ip, 4), copy(f + 30, (const u8 *)&peer_ip, 4);
	u16 c = csum(f + 14, 20);
	f[24] = (u8)(c >> 8), f[25] = (u8)c;
	f[34] = 8, f[38] = 0x6b, f[39] = 0x68, f[40] = (u8)(ping_seq >> 8), f[41] = (u8)ping_seq;
	ping_seq++;
	c = csum(f + 34, 8);
	f[36] = (u8)(c >> 8), f[37] = (u8)c;
	send(f, sizeof(f));
}

/* The device asked (config status ANNOUNCE): a gratuitous ARP, then the
 * acknowledgement on the control queue. */
static void announce(void)
{
	if (!(*(volatile u16 *)(NET_BASE + 0x100 + 6) & 2))
		return;
	send_arp(1, 0, (const u8 *)&my_ip);
	announced++;
	ctl_buf[0] = 3, ctl_buf[1] = 0, ctl_buf[2] = 0xff; /* ANNOUNCE, ACK; status */
	ctlq.desc[0] = (struct desc){(u64)ctl_buf, 2, 1 /* NEXT */, 1};
	ctlq.desc[1] = (struct desc){(u64)(ctl_buf + 2), 1, 2 /* WRITE */, 0};
	ctlq.avail.ring[ctlq.avail.idx % QSZ] = 0;
	__atomic_store_n(&ctlq.avail.idx, (u16)(ctlq.avail.idx + 1), __ATOMIC_RELEASE);
	REG(0x050) = 2;
	for (int spin = 0; ctlq.used.idx == ctlq.seen && spin < 100000; spin++)
		__asm__ volatile("pause");
	ctlq.seen = ctlq.used.idx;
}

/* From vCPU 0's loop: whatever arrived, answered; then what it counted. */
void net_poll(void)
{
	if (!up)
		return;
	announce();
	int given = 0;
	while (rxq.seen != __atomic_load_n(&rxq.used.idx, __ATOMIC_ACQUIRE)) {
		u16 slot = rxq.seen++ % QSZ;
		u32 id = rxq.used.ring[slot].id % QSZ, len = rxq.used.ring[slot].len;
		u8 *f = rx_buf[id] + HDR;
		len = len > HDR ? len - HDR : 0;
		rx_count++;
		if (len >= 14 && be16(f + 12) == 0x0806)
			on_arp(f, len);
		else if (len >= 34 && be16(f + 12) == 0x0800)
			on_ipv4(f, len);
		give_rx((u16)id);
		given++;
	}
	if (given)
		REG(0x050) = 0;
	ping_peer();
	if (rx_count + replies + announced + pongs != reported) {
		reported = rx_count + replies + announced + pongs;
		report(TESTDEV_EV_NET_PONGS, pongs);
		report(TESTDEV_EV_NET_RX, rx_count);
		report(TESTDEV_EV_NET_REPLIES, replies);
		report(TESTDEV_EV_NET_ANNOUNCED, announced);
	}
}
