/* A bus of non-overlapping address ranges (port I/O or MMIO) that devices
 * register on. Registration happens before vCPUs run; lookups take no lock. */
#ifndef KVMHOST_BUS_H
#define KVMHOST_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/device.h"

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct device_ops *ops;
	void *dev;
};

struct bus {
	struct bus_range *ranges; /* sorted by base */
	int nr;
	int cap;
};

void bus_init(struct bus *bus);
void bus_destroy(struct bus *bus);
/* -EEXIST if [base, base+len) overlaps a registered range, -EINVAL if empty/wrapping. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct device_ops *ops,
		 void *dev);
int bus_unregister(struct bus *bus, uint64_t base);
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t len);
/* Dispatches one access; an unclaimed read returns all-ones, a write is dropped.
 * Returns false when nothing claimed the address. */
bool bus_access(const struct bus *bus, unsigned vcpu, uint64_t addr, uint8_t *data, uint32_t len,
		bool is_write);

#endif
