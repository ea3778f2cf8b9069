/* The contract between kvmhost and its built-in guest: ports, memory layout
 * and event codes. Shared by the guest (freestanding) and the VMM. */
#ifndef KVMHOST_GUEST_ABI_H
#define KVMHOST_GUEST_ABI_H

#include "arch/x86/pc_layout.h" /* where the devices are: the board's, not ours */

/* Guest image is linked (guest.ld) and loaded here, a flat image entered
 * in 64-bit mode with rdi = vCPU index, rsi = number of vCPUs. */
#define GUEST_LOAD_ADDR	 PC_FLAT_IMAGE_ADDR
#define GUEST_MAX_VCPUS	 PC_MAX_VCPUS /* a stack and a clock for each the board allows */
#define GUEST_STACK_SIZE 4096

/* Paravirtual test device, a block of I/O ports. */
#define TESTDEV_PORT_BASE 0x510
#define TESTDEV_PORT_LEN  0x20
#define TESTDEV_HEARTBEAT (TESTDEV_PORT_BASE + 0x00) /* out32: progress counter */
#define TESTDEV_EVENT	  (TESTDEV_PORT_BASE + 0x04) /* out32: TESTDEV_EV_* */
#define TESTDEV_COMMAND	  (TESTDEV_PORT_BASE + 0x08) /* in32: TESTDEV_CMD_* bits, read clears */
#define TESTDEV_CONFIG	  (TESTDEV_PORT_BASE + 0x0c) /* out32 key, then in32 value */
#define TESTDEV_POWEROFF  (TESTDEV_PORT_BASE + 0x10) /* out8: power the VM off */
#define TESTDEV_BENCH	  (TESTDEV_PORT_BASE + 0x14) /* out32: no-op, for exit round trips */
#define TESTDEV_RESULT	  (TESTDEV_PORT_BASE + 0x18) /* out32: result value (low, then high) */

#define TESTDEV_EV_BOOTED	   1
#define TESTDEV_EV_CLOCK_BACKWARDS 2
#define TESTDEV_EV_GUEST_STOPPED   3
#define TESTDEV_EV_BENCH_DONE	   4

#define TESTDEV_CMD_POWEROFF 0x1

#define TESTDEV_CFG_PERIOD_US	1 /* heartbeat period */
#define TESTDEV_CFG_MODE	2 /* GUEST_MODE_* */
#define TESTDEV_CFG_BENCH_ITERS 3
#define TESTDEV_CFG_PRINT_EVERY 4 /* heartbeats between console lines, 0 = never */

#define GUEST_MODE_HEARTBEAT   0
#define GUEST_MODE_PIO_BENCH   1
#define GUEST_MODE_CRASH       2 /* fault with no handler: a triple fault */
#define GUEST_MODE_WILD_IO     3 /* touch unclaimed ports and MMIO, then heartbeat */
#define GUEST_MODE_DISK	       4 /* write, flush, read back, verify; then heartbeat */
#define GUEST_MODE_DISK_BENCH  5 /* sequential throughput and flush latency */
#define GUEST_MODE_RING0_BENCH 6 /* time a pure ring-0 loop: native or emulated? */

#define TESTDEV_CFG_DISKS	     5
#define TESTDEV_CFG_DISK_BLOCKS	     6 /* 4 KiB blocks the workload writes */
#define TESTDEV_CFG_DISK_REQ_KIB     7 /* bytes per request, in KiB: 4..64 */
#define TESTDEV_CFG_DISK_FLUSH_EVERY 8 /* blocks between flushes */
#define TESTDEV_CFG_DISK_GENERATION  9 /* stamped in every block */

#define TESTDEV_EV_DISK_FLUSHED	 10 /* result: blocks durable so far */
#define TESTDEV_EV_DISK_VERIFIED 11 /* result: blocks read back intact */
#define TESTDEV_EV_DISK_ERROR	 12 /* result: requests that failed or blocks that did not verify */
#define TESTDEV_EV_DISK_DONE	 13
#define TESTDEV_EV_DISK_IRQS	 14 /* result: completions that arrived by interrupt */
#define VIRTIO_IRQ_VECTOR	 0x30
#define TESTDEV_EV_DISK_BENCH	 16 /* +k: result k (ns) of the disk benchmark */
#define DISK_BENCH_RESULTS	 5  /* write 4K, read 4K, write 64K, read 64K, flush */

/* Wall clock: vCPU 0 reads kvmclock's wall clock once at boot and reports
 * boot wall clock + kvmclock now, as Linux keeps its time; the VMM compares
 * it with its own CLOCK_REALTIME (status: wallclock_offset_ms). */
#define TESTDEV_EV_WALLCLOCK 21 /* result: the guest's wall clock, ns since the epoch */
#define WALLCLOCK_EVERY	     10 /* heartbeats between reports */

/* Memory check: vCPU 0 tags every page of [GUEST_MEMCHECK_BASE, +MiB) with
 * its number and a seed (first, middle and last qword), and checks all of
 * them whenever it was stopped (pause, host sleep, snapshot). */
#define GUEST_MODE_MEMCHECK	    7
#define TESTDEV_CFG_MEMCHECK_MIB    10
#define GUEST_MEMCHECK_BASE	    0x1000000UL /* 16 MiB, above the image and stacks */
#define TESTDEV_EV_MEMCHECK_FILLED  22		/* result: pages tagged */
#define TESTDEV_EV_MEMCHECK_CHECKED 23		/* result: pages checked in this pass */
#define TESTDEV_EV_MEMCHECK_ERRORS  24		/* result: bad pages found so far */
/* With a dirty rate the last vCPU rewrites pages at that rate meanwhile; a
 * table of each page's generation follows the region (8 bytes a page). */
#define TESTDEV_CFG_MEMCHECK_DIRTY 11 /* pages per second, 0: none */

/* The guest's CPUID as it sees it, at boot and after every stop. */
#define TESTDEV_EV_CPUID_1_ECX 25 /* result: CPUID.1:ECX */
#define TESTDEV_EV_CPUID_7_EBX 26 /* result: CPUID.(7,0):EBX */
/* vCPU 0, when it finds it was stopped: kvmclock ns since its loop last ran
 * before the stop - a pause, sleep or migration's length as the guest saw it. */
#define TESTDEV_EV_STOP_GAP 27

/* Replays a virtio-blk fuzz input (--guest-blob FILE) against disk 0, then
 * heartbeats; the input is read a 32-bit word at a time. */
#define GUEST_MODE_VIRTIO_REPLAY 8
#define TESTDEV_CFG_BLOB_LEN	 12
#define TESTDEV_CFG_BLOB_WORD	 0x10000000u /* | word index */
#define TESTDEV_EV_REPLAY_DONE	 28	     /* result: script operations replayed */

/* A tiny network stack on net 0 when it has an address: it answers ARP and
 * ICMP echo for it, and announces itself (gratuitous ARP) when asked. */
#define TESTDEV_CFG_NETS	 13
#define TESTDEV_CFG_GUEST_IP	 14 /* IPv4, network byte order; 0: none */
#define TESTDEV_EV_NET_RX	 29 /* result: frames received so far */
#define TESTDEV_EV_NET_REPLIES	 30 /* result: ARP and echo replies sent so far */
#define TESTDEV_EV_NET_ANNOUNCED 31 /* result: gratuitous ARPs sent so far */
#define VIRTIO_NET_IRQ_VECTOR	 0x31
/* --guest-ping ADDR: the guest also pings ADDR every 10 ms (after ARP). */
#define TESTDEV_CFG_GUEST_PEER 15
#define TESTDEV_EV_NET_PONGS   32 /* result: echo replies from the peer so far */

/* Interrupts the guest's handlers took although the context they
 * interrupted had interrupts off (RFLAGS.IF clear in the frame): never on
 * a correct host. vCPU 0 reports the count with the wall clock when it grew. */
#define TESTDEV_EV_IRQS_IF_OFF 33 /* result: such interrupts so far */
/* result: the last one's interrupted RIP, with bit IRQ_WHERE_KIND_SHIFT + k
 * set for the handler of kind k */
#define TESTDEV_EV_IRQ_IF_OFF_WHERE 34
#define IRQ_WHERE_KIND_SHIFT	    56
#define IRQ_KIND_TIMER		    0
#define IRQ_KIND_DISK		    1
#define IRQ_KIND_NET		    2
#define IRQ_KINDS		    3
/* result: a sum of what wild-io's reads returned (the device ignores it) */
#define TESTDEV_EV_WILD_IO 35

#define DISK_BLOCK_MAGIC 0x2174736f686d766bUL /* "kvmhost!" */

#endif
