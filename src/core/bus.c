/* A bus: address ranges kept sorted in an array and found by binary search
 * on every exit. Ranges are registered before any vCPU runs and never
 * overlap, so lookups take no lock; an access must fit inside one range. */
#include "core/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *bus)
{
	memset(bus, 0, sizeof(*bus));
}

void bus_destroy(struct bus *bus)
{
	free(bus->ranges);
	memset(bus, 0, sizeof(*bus));
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct device_ops *ops,
		 void *dev)
{
	if (!len || !ops || !ops->access || base + len < base)
		return -EINVAL;
	int pos = 0;
	while (pos < bus->nr && bus->ranges[pos].base < base)
		pos++;
	if (pos > 0) {
		const struct bus_range *prev = &bus->ranges[pos - 1];
		if (prev->base + prev->len > base)
			return -EEXIST;
	}
	if (pos < bus->nr && base + len > bus->ranges[pos].base)
		return -EEXIST;
	if (bus->nr == bus->cap) {
		int cap = bus->cap ? bus->cap * 2 : 8;
		struct bus_range *r = realloc(bus->ranges, (size_t)cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		bus->ranges = r;
		bus->cap = cap;
	}
	memmove(&bus->ranges[pos + 1], &bus->ranges[pos],
		(size_t)(bus->nr - pos) * sizeof(bus->ranges[0]));
	bus->ranges[pos] = (struct bus_range){base, len, ops, dev};
	bus->nr++;
	return 0;
}

int bus_unregister(struct bus *bus, uint64_t base)
{
	for (int i = 0; i < bus->nr; i++) {
		if (bus->ranges[i].base != base)
			continue;
		memmove(&bus->ranges[i], &bus->ranges[i + 1],
			(size_t)(bus->nr - i - 1) * sizeof(bus->ranges[0]));
		bus->nr--;
		return 0;
	}
	return -ENOENT;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr, uint32_t len)
{
	int lo = 0, hi = bus->nr - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &bus->ranges[mid];
		if (addr < r->base) {
			hi = mid - 1;
		} else if (addr - r->base >= r->len) {
			lo = mid + 1;
		} else {
			/* The whole access must fall inside the range. */
			if (len > r->len - (addr - r->base))
				return NULL;
			return r;
		}
	}
	return NULL;
}

bool bus_access(const struct bus *bus, unsigned vcpu, uint64_t addr, uint8_t *data, uint32_t len,
		bool is_write)
{
	const struct bus_range *r = bus_find(bus, addr, len);
	if (!r) {
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	r->ops->access(r->dev, vcpu, addr - r->base, data, len, is_write);
	return true;
}
