/* kvmhost built-in guest: a tiny 64-bit kernel that proves the VMM keeps it
 * alive. Ring-0 work per heartbeat is kept small on purpose: on nested PVM
 * hosts guest ring 0 is emulated at ~1M instructions/s. */
#include "clock.h"
#include "console.h"
#include "io.h"
#include "memcheck.h"
#include "replay.h"
#include "virtio_blk.h"
#include "virtio_net.h"

#define MSR_KVM_WALL_CLOCK_NEW 0x4b564d00
#define LAPIC_BASE	       0xfee00000UL
#define LAPIC_EOI	       0xb0
#define LAPIC_SVR	       0xf0
#define LAPIC_LVT_TIMER	       0x320
#define LAPIC_TIMER_ICR	       0x380
#define LAPIC_TIMER_PERIODIC   (1u << 17)
#define LAPIC_TIMER_DCR	       0x3e0
#define TIMER_VECTOR	       0x20

struct idt_gate {
	u16 off0;
	u16 sel;
	u8 ist;
	u8 type;
	u16 off1;
	u32 off2;
	u32 rsvd;
} __attribute__((packed));

static struct {
	u32 version, sec, nsec;
} __attribute__((packed, aligned(4))) wall_clock;
static u64 boot_wall_ns; /* the wall clock when kvmclock read 0 */
static struct idt_gate idt[256] __attribute__((aligned(16)));

extern char irq_timer[], irq_spurious[], irq_virtio[], irq_net[];

static inline void lapic_write(u32 reg, u32 v)
{
	*(volatile u32 *)(LAPIC_BASE + reg) = v;
}

static void set_gate(int vec, void *handler)
{
	u64 a = (u64)handler;
	idt[vec] = (struct idt_gate){.off0 = (u16)a,
				     .sel = 0x08,
				     .type = 0x8e,
				     .off1 = (u16)(a >> 16),
				     .off2 = (u32)(a >> 32)};
}

static volatile int idt_claimed, idt_ready;

static void setup_interrupts(void)
{
	/* One vCPU builds the shared IDT; the others must not rewrite a gate
	 * that a running vCPU may be taking an interrupt through. */
	if (__atomic_exchange_n(&idt_claimed, 1, __ATOMIC_ACQ_REL) == 0) {
		/* Interrupts come through the IOAPIC: mask both 8259s, whose reset
		 * state would deliver ISA lines as vectors 0-15 via LINT0. */
		outb(0x21, 0xff);
		outb(0xa1, 0xff);
		set_gate(TIMER_VECTOR, irq_timer);
		set_gate(VIRTIO_IRQ_VECTOR, irq_virtio);
		set_gate(VIRTIO_NET_IRQ_VECTOR, irq_net);
		set_gate(0xff, irq_spurious);
		__atomic_store_n(&idt_ready, 1, __ATOMIC_RELEASE);
	} else {
		while (!__atomic_load_n(&idt_ready, __ATOMIC_ACQUIRE))
			__asm__ volatile("pause");
	}
	struct {
		u16 limit;
		u64 base;
	} __attribute__((packed)) idtr = {sizeof(idt) - 1, (u64)idt};
	__asm__ volatile("lidt %0" ::"m"(idtr));
	lapic_write(LAPIC_SVR, 0x1ff);
	lapic_write(LAPIC_TIMER_DCR, 0xb); /* divide by 1 */
	/* Periodic, not one-shot: a timer that fires just before the hlt must
	 * wake it through the STI shadow, which the test host's emulated SVM
	 * was seen losing on an exit inside it - the handler then ran first
	 * and the hlt slept for good. The next period wakes it instead. */
	lapic_write(LAPIC_LVT_TIMER, TIMER_VECTOR | LAPIC_TIMER_PERIODIC);
}

/* Sleep until about `deadline` (kvmclock ns). KVM's APIC timer ticks once per
 * ns; if it does not, we only wake early or late, never wrongly. */
static void wait_until(struct pvclock *c, u64 now, u64 deadline)
{
	u64 ns = deadline > now ? deadline - now : 1;
	if (ns > 0xffffffffUL)
		ns = 0xffffffffUL;
	lapic_write(LAPIC_TIMER_ICR, (u32)ns);
	(void)c;
	__asm__ volatile("sti; hlt; cli" ::: "memory");
}

static void pio_bench(struct pvclock *c)
{
	u8 flags;
	u32 iters = config(TESTDEV_CFG_BENCH_ITERS);
	u64 t0 = pvclock_read(c, &flags);
	for (u32 i = 0; i < iters; i++)
		outl(TESTDEV_BENCH, i);
	u64 t1 = pvclock_read(c, &flags);
	outl(TESTDEV_RESULT, (u32)(t1 - t0));
	outl(TESTDEV_RESULT, (u32)((t1 - t0) >> 32));
	outl(TESTDEV_EVENT, TESTDEV_EV_BENCH_DONE);
}

/* A misbehaving guest: ports and addresses nobody claimed must read as
 * all-ones and swallow writes, never stop the VM. */
static void wild_io(void)
{
	static const u16 ports[] = {0x80, 0x2f8, 0x1234, 0x3ff, 0xfff0, 0xffff};
	static u8 sink[64];
	u32 acc = 0;
	for (u32 i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		outb(ports[i], 0x5a);
		outl(ports[i], 0xdeadbeef);
		acc += inb(ports[i]) + inl(ports[i]);
	}
	u8 *p = sink;
	u64 n = sizeof(sink);
	__asm__ volatile("rep insb" : "+D"(p), "+c"(n) : "d"(0x1234) : "memory");
	volatile u32 *mmio = (volatile u32 *)0xc0000000UL; /* no RAM, no device */
	mmio[0] = 0x12345678;
	acc += mmio[1];
	volatile u64 *mmio64 = (volatile u64 *)0xe0001000UL;
	acc += (u32)mmio64[0];
	report(TESTDEV_EV_WILD_IO, acc + sink[0]); /* what it read: keeps the reads */
	/* A software interrupt with interrupts off: the timer's handler counts
	 * it as one that came with IF clear, which shows the count works. */
	__asm__ volatile("int $0x20" ::: "memory");
}

/* Once, at boot: later the guest keeps its own time by kvmclock, so a VMM
 * that fails to move kvmclock on after a stop shows as a wrong wall clock. */
static void read_wall_clock(void)
{
	wrmsr(MSR_KVM_WALL_CLOCK_NEW, (u64)&wall_clock);
	u32 v;
	do {
		v = __atomic_load_n(&wall_clock.version, __ATOMIC_ACQUIRE);
		boot_wall_ns = (u64)wall_clock.sec * 1000000000UL + wall_clock.nsec;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while ((v & 1) || v != __atomic_load_n(&wall_clock.version, __ATOMIC_RELAXED));
}

/* What the guest was given: read at boot and after every stop, so a
 * migration onto a host without a feature shows. */
static void report_cpuid(void)
{
	u32 a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
	report(TESTDEV_EV_CPUID_1_ECX, c);
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
	report(TESTDEV_EV_CPUID_7_EBX, b);
}

extern volatile u64 irqs_if_off, irq_if_off_where; /* entry.S's handlers keep them */

static void report_irqs_if_off(void)
{
	static u64 reported;
	u64 n = irqs_if_off;
	if (n != reported) {
		reported = n;
		report(TESTDEV_EV_IRQ_IF_OFF_WHERE, irq_if_off_where);
		report(TESTDEV_EV_IRQS_IF_OFF, n);
	}
}

void guest_main(u64 index, u64 ncpus)
{
	struct pvclock *c = clock_start(index);
	u8 flags;

	if (index == 0) {
		read_wall_clock();
		report_cpuid();
	}
	setup_interrupts();
	if (index == 0)
		print_line("kvmhost built-in guest: ", ncpus, " vCPUs, boot vCPU ", index, "\n");
	outl(TESTDEV_EVENT, TESTDEV_EV_BOOTED);

	u32 mode = config(TESTDEV_CFG_MODE);
	if (mode == GUEST_MODE_CRASH && index == 0)
		__asm__ volatile("ud2"); /* no #UD gate: #NP, #DF, triple fault */
	if (mode == GUEST_MODE_WILD_IO)
		wild_io();
	if (index == 0 && mode == GUEST_MODE_DISK)
		disk_main();
	if (index == 0 && mode == GUEST_MODE_MEMCHECK)
		memcheck_fill(boot_wall_ns, ncpus);
	if (index == 0 && mode == GUEST_MODE_DISK_BENCH)
		disk_bench();
	if (index == 0 && mode == GUEST_MODE_VIRTIO_REPLAY)
		virtio_replay();
	if (index == 0)
		net_init();
	if (index == 0 && mode == GUEST_MODE_RING0_BENCH) {
		u64 iters = config(TESTDEV_CFG_BENCH_ITERS), n = iters;
		u64 t0 = pvclock_read(c, &flags);
		__asm__ volatile("1: dec %0; jnz 1b" : "+r"(n));
		report(TESTDEV_EV_BENCH_DONE, pvclock_read(c, &flags) - t0);
	}
	if (mode == GUEST_MODE_PIO_BENCH) {
		pio_bench(c);
		for (;;)
			wait_until(c, 0, 1000000000UL);
	}

	u64 period = (u64)config(TESTDEV_CFG_PERIOD_US) * 1000;
	u64 print_every = config(TESTDEV_CFG_PRINT_EVERY);
	u64 last = pvclock_read(c, &flags);
	u64 next = last + period;
	u64 beats = 0;

	for (;;) {
		u64 now = pvclock_read(c, &flags);
		/* Without PVCLOCK_TSC_STABLE_BIT the kvmclock ABI allows steps back
		 * between KVM's updates (Linux clamps them to the last value it
		 * returned, whatever their size); only a step back on a clock KVM
		 * calls stable is the VMM's doing. */
		if (now < last && (flags & PVCLOCK_TSC_STABLE_BIT))
			outl(TESTDEV_EVENT, TESTDEV_EV_CLOCK_BACKWARDS);
		if (now < last)
			now = last;
		u64 prev = last;
		last = now;
		if (flags & PVCLOCK_GUEST_STOPPED) {
			/* The host stopped us on purpose (pause, host sleep): say we
			 * saw it and clear it, as Linux does, so it is not a lockup. */
			__atomic_fetch_and(&c->flags, (u8)~PVCLOCK_GUEST_STOPPED, __ATOMIC_RELAXED);
			outl(TESTDEV_EVENT, TESTDEV_EV_GUEST_STOPPED);
			/* How long the stop looked from in here, in the guest's
			 * own clock: since this loop last ran. */
			if (index == 0)
				report(TESTDEV_EV_STOP_GAP, now - prev);
			if (index == 0 && mode == GUEST_MODE_MEMCHECK)
				memcheck_verify();
			if (index == 0) {
				/* Read again: the memory check may have taken seconds. */
				u8 f;
				report(TESTDEV_EV_WALLCLOCK, boot_wall_ns + pvclock_read(c, &f));
				report_cpuid();
			}
		}
		if (now >= next) {
			beats++;
			outl(TESTDEV_HEARTBEAT, (u32)beats);
			if (inl(TESTDEV_COMMAND) & TESTDEV_CMD_POWEROFF) {
				print_line("vcpu ", index, ": power off after ", beats,
					   " heartbeats\n");
				outb(TESTDEV_POWEROFF, 0);
			}
			if (index == 0 && beats % WALLCLOCK_EVERY == 0) {
				report(TESTDEV_EV_WALLCLOCK, boot_wall_ns + now);
				report_irqs_if_off();
			}
			if (print_every && beats % print_every == 0)
				print_line("vcpu ", index, ": heartbeat ", beats, "\n");
			next += period;
			if (next <= now)
				next = now + period;
		}
		if (index == 0)
			net_poll();
		if (mode == GUEST_MODE_MEMCHECK && index == ncpus - 1)
			wait_until(c, now, memcheck_dirty(now, next));
		else
			wait_until(c, now, next);
	}
}
