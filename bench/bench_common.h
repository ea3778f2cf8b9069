#ifndef KVMHOST_BENCH_COMMON_H
#define KVMHOST_BENCH_COMMON_H

#include <stdint.h>
#include <stdlib.h>

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorts in place; returns the p-th percentile (0..100). */
static inline uint64_t percentile(uint64_t *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	size_t i = (size_t)((double)(n - 1) * p / 100.0 + 0.5);
	return v[i];
}

#endif
