/* Guest physical memory as the devices see it: every access is checked
 * against the RAM regions with overflow-safe arithmetic. */
#ifndef KVMHOST_GUEST_MEM_H
#define KVMHOST_GUEST_MEM_H

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

#endif
