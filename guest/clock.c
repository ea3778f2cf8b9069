/* The built-in guest's clock: each vCPU's kvmclock page, read as Linux
 * does (retry while KVM updates it). */
#include "clock.h"

#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01

static struct pvclock clocks[GUEST_MAX_VCPUS] __attribute__((aligned(4096)));

static inline u64 rdtsc_ordered(void)
{
	u32 lo, hi;
	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((u64)hi << 32) | lo;
}

u64 pvclock_read(struct pvclock *c, u8 *flags)
{
	u32 version;
	u64 ns;
	do {
		version = __atomic_load_n(&c->version, __ATOMIC_ACQUIRE);
		u64 delta = rdtsc_ordered() - c->tsc_timestamp;
		s8 shift = c->tsc_shift;
		if (shift < 0)
			delta >>= -shift;
		else
			delta <<= shift;
		ns = c->system_time +
		     (u64)(((unsigned __int128)delta * c->tsc_to_system_mul) >> 32);
		*flags = c->flags;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while ((version & 1) || version != __atomic_load_n(&c->version, __ATOMIC_RELAXED));
	return ns;
}

static u64 my_index;

u64 guest_now(void)
{
	u8 flags;
	return pvclock_read(&clocks[my_index], &flags);
}

struct pvclock *clock_start(u64 index)
{
	struct pvclock *c = &clocks[index];
	my_index = index; /* only vCPU 0 uses guest_now, from the disk code */
	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (u64)c | 1);
	return c;
}
