/* The memory check: vCPU 0 tags every page of the checked region and
 * verifies all of them whenever the guest was stopped; with a dirty rate,
 * the last vCPU keeps rewriting pages (a new generation each time) while
 * the guest runs, as a busy guest does during a live migration. A page
 * holds its generation, and a table beyond the region holds it too: a page
 * or table entry that missed its last write no longer agree. */
#include "memcheck.h"

#include "clock.h"
#include "console.h"

#define PAGE_QWORDS 512

static u64 seed, pages, errors;
static u64 rate;	   /* pages per second the dirtier rewrites */
static volatile u64 *gens; /* each page's generation, after the region */
static volatile int filled;
/* The checker's hold and the dirtier's page in progress, Dekker-style:
 * each stores its own flag, then reads the other's (sequentially
 * consistent: x86 may otherwise read before its own store is seen). */
static int hold, writing;
static int dirtier_elsewhere; /* on another vCPU than the checker */
static u64 next_page, generation, done, t0;

static volatile u64 *page(u64 p)
{
	return (volatile u64 *)(GUEST_MEMCHECK_BASE + p * 4096);
}

static u64 tag(u64 p)
{
	return (p * 0x9e3779b97f4a7c15UL) ^ seed ^ 0x6b766d686f737421UL;
}

/* Three qwords and the generation a page: on hosts where guest ring 0 is
 * emulated a full-page pattern costs ~1 s per 16 MiB. */
static void write_page(u64 p, u64 g)
{
	volatile u64 *q = page(p);
	u64 t = tag(p);
	q[1] = g;
	q[0] = t ^ g;
	q[PAGE_QWORDS / 2 - 1] = t + 1 + g;
	q[PAGE_QWORDS - 1] = t + 2 + g;
	gens[p] = g;
}

void memcheck_fill(u64 wall_seed, u64 ncpus)
{
	seed = wall_seed;
	dirtier_elsewhere = ncpus > 1;
	pages = (u64)config(TESTDEV_CFG_MEMCHECK_MIB) * 256;
	rate = config(TESTDEV_CFG_MEMCHECK_DIRTY);
	gens = (volatile u64 *)(GUEST_MEMCHECK_BASE + pages * 4096);
	for (u64 p = 0; p < pages; p++)
		write_page(p, 0);
	filled = 1;
	report(TESTDEV_EV_MEMCHECK_FILLED, pages);
}

/* The dirtier stops before its next page while vCPU 0 checks. A page it
 * is in the middle of must be finished first; that takes microseconds,
 * unless the host stopped its vCPU there (a migration's switch-over, a
 * pause) and has not run it again yet, so the wait is long but bounded. */
static void hold_dirtier(void)
{
	__atomic_store_n(&hold, 1, __ATOMIC_SEQ_CST);
	if (!rate || !dirtier_elsewhere)
		return;
	u64 until = guest_now() + 60000000000UL;
	while (__atomic_load_n(&writing, __ATOMIC_SEQ_CST) && guest_now() < until)
		__asm__ volatile("pause");
}

void memcheck_verify(void)
{
	hold_dirtier();
	for (u64 p = 0; p < pages; p++) {
		volatile u64 *q = page(p);
		u64 t = tag(p), g = q[1];
		if (g != gens[p] || q[0] != (t ^ g) || q[PAGE_QWORDS / 2 - 1] != t + 1 + g ||
		    q[PAGE_QWORDS - 1] != t + 2 + g)
			errors++;
	}
	__atomic_store_n(&hold, 0, __ATOMIC_RELEASE);
	report(TESTDEV_EV_MEMCHECK_ERRORS, errors);
	report(TESTDEV_EV_MEMCHECK_CHECKED, pages);
}

/* Says the dirtier is about to write a page, unless a check is on: then
 * it waits the check out and says no. */
static int may_write(void)
{
	__atomic_store_n(&writing, 1, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&hold, __ATOMIC_SEQ_CST))
		return 1;
	__atomic_store_n(&writing, 0, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&hold, __ATOMIC_ACQUIRE))
		__asm__ volatile("pause");
	return 0;
}

/* On the dirtier vCPU, from its heartbeat loop: rewrites what is due at
 * `rate` since it started; returns when it next wants to run. */
u64 memcheck_dirty(u64 now, u64 deadline)
{
	if (!rate || !filled)
		return deadline;
	if (!t0)
		t0 = now;
	u64 due = (now - t0) / 1000 * rate / 1000000;
	for (int k = 0; k < 256; k++, done++) {
		if (done >= due)
			break;
		while (!may_write())
			;
		write_page(next_page, ++generation);
		__atomic_store_n(&writing, 0, __ATOMIC_RELEASE);
		next_page = next_page + 1 < pages ? next_page + 1 : 0;
	}
	u64 soon = now + 1000000; /* a millisecond */
	return soon < deadline ? soon : deadline;
}
