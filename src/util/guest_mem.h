/* Guest physical memory as the devices see it: every access is checked
 * against the RAM regions with overflow-safe arithmetic. */
#ifndef KVMHOST_GUEST_MEM_H
#define KVMHOST_GUEST_MEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 4

struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct guest_mem {
	struct mem_region regions[GUEST_MEM_MAX_REGIONS];
	int nr;
	/* While a migration copies memory: one bit per 4 KiB page of RAM
	 * (from regions[0].hva), set for what devices write, which KVM's dirty
	 * log cannot see. NULL otherwise. */
	_Atomic(uint64_t) *_Atomic dirty;
};

/* Host pointer for [gpa, gpa+len) if it lies inside one region, else NULL.
 * len 0 is valid at any in-region address. */
static inline void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < gm->nr; i++) {
		const struct mem_region *r = &gm->regions[i];
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		if (off < r->size && len <= r->size - off)
			return r->hva + off;
	}
	return 0;
}

/* A 4 KiB page of guest memory that is all zeros (a snapshot leaves it a
 * hole, a migration sends a marker). Stops at the first non-zero word. */
static inline bool gm_page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;
	for (int i = 0; i < 4096 / 8; i++)
		if (q[i])
			return false;
	return true;
}

/* Marks [p, p+len) written, after the write: a migration that takes the
 * mark sends the page as it is then or later. p must come from gm_ptr. */
static inline void gm_mark_dirty(const struct guest_mem *gm, const void *p, uint64_t len)
{
	_Atomic(uint64_t) *dirty = atomic_load_explicit(&gm->dirty, memory_order_acquire);
	if (!dirty || !len || !gm->nr)
		return;
	uint64_t first = (uint64_t)((const uint8_t *)p - gm->regions[0].hva) >> 12;
	uint64_t last = ((uint64_t)((const uint8_t *)p - gm->regions[0].hva) + len - 1) >> 12;
	for (uint64_t pg = first; pg <= last; pg++)
		atomic_fetch_or_explicit(&dirty[pg / 64], 1ull << (pg % 64), memory_order_release);
}

#endif
