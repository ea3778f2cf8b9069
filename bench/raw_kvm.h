/* The baseline for benchmarks: the same built-in guest on a bare KVM_RUN
 * loop, with no bus, no devices, no requests - only what the guest needs. */
#ifndef KVMHOST_BENCH_RAW_KVM_H
#define KVMHOST_BENCH_RAW_KVM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum raw_req { RAW_NONE, RAW_CALL, RAW_PARK };

struct raw_vcpu {
	struct raw_vm *vm;
	int index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	atomic_int req;
	atomic_bool stop;
	uint64_t call_ns; /* when RAW_CALL ran on the vCPU thread */
	uint32_t config_key;
	uint64_t result;
	unsigned words;
};

struct raw_vm {
	int kvm_fd, vm_fd;
	uint8_t *ram;
	uint64_t ram_size;
	int nr;
	struct raw_vcpu *vcpus;
	uint32_t mode, period_us, iters;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_int parked;
	atomic_int resume_gen;
	int called;
	atomic_bool bench_done;
	uint64_t bench_ns;
};

int raw_vm_create(struct raw_vm *vm, int nr_vcpus, uint32_t mode, uint32_t period_us,
		  uint32_t iters);
int raw_vm_start(struct raw_vm *vm);
void raw_vm_destroy(struct raw_vm *vm);
/* Kick one vCPU to run a trivial function; returns request->run latency in ns. */
uint64_t raw_call(struct raw_vm *vm, int index);
/* Kick all, wait until every vCPU is parked; returns the time it took in ns. */
uint64_t raw_pause_all(struct raw_vm *vm);
void raw_resume_all(struct raw_vm *vm);

#endif
