/* The paravirtual test device the built-in guest reports through. */
#ifndef KVMHOST_TESTDEV_H
#define KVMHOST_TESTDEV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;
struct vcpu;

struct testdev {
	struct vm *vm;
	uint32_t period_us;
	uint32_t mode;
	uint32_t bench_iters;
	uint32_t print_every;
	atomic_uint_fast64_t bench_ns; /* guest-measured, set once BENCH_DONE arrives */
	atomic_uint bench_done;
	atomic_uint_fast64_t bench_writes;
	/* The disk workload, as the guest reports it. */
	atomic_uint_fast64_t disk_flushed, disk_verified, disk_errors, disk_irqs;
	atomic_uint disk_done;
	atomic_uint_fast64_t disk_bench_ns[8];
};

void testdev_init(struct testdev *t, struct vm *vm, uint32_t period_us, uint32_t print_every);
void testdev_access(void *opaque, struct vcpu *vcpu, uint64_t offset, uint8_t *data, uint32_t len,
		    bool is_write);
/* Asks the guest to power itself off at its next heartbeat. */
void testdev_request_poweroff(struct testdev *t);

#endif
