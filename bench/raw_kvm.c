/* The benchmarks' baseline (raw_kvm.h): the built-in guest on a bare
 * KVM_RUN loop, with requests and pauses done the cheapest way (an atomic,
 * a SIGUSR1 kick, a futex), so that bench_core's ratios show what kvmhost's
 * own machinery costs. */
#include "raw_kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/x86/cpu.h"
#include "builtin_guest/guest_blob.h"
#include "util/util.h"

static void on_sig(int s)
{
	(void)s;
}

int raw_vm_create(struct raw_vm *vm, int nr, uint32_t mode, uint32_t period_us, uint32_t iters)
{
	memset(vm, 0, sizeof(*vm));
	vm->nr = nr;
	vm->mode = mode;
	vm->period_us = period_us;
	vm->iters = iters;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	struct sigaction sa = {.sa_handler = on_sig};
	sigaction(SIGUSR1, &sa, NULL);
	if ((vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0)
		return -errno;
	if ((vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0)) < 0)
		return -errno;
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return -errno;
	vm->ram_size = 64ull << 20;
	vm->ram = mmap(NULL, vm->ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);
	if (vm->ram == MAP_FAILED)
		return -errno;
	struct kvm_userspace_memory_region r = {.memory_size = vm->ram_size,
						.userspace_addr = (uintptr_t)vm->ram};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return -errno;
	const struct x86_flat_image guest = {kvmhost_guest_blob, kvmhost_guest_blob_size,
					     builtin_guest_footprint()};
	if (x86_load_flat_image(vm->ram, vm->ram_size, &guest))
		return -ENOSPC;
	struct kvm_cpuid2 *cpuid = x86_supported_cpuid(vm->kvm_fd);
	if (!cpuid)
		return -EIO;
	int mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->vcpus = calloc((size_t)nr, sizeof(*vm->vcpus));
	for (int i = 0; i < nr; i++) {
		struct raw_vcpu *v = &vm->vcpus[i];
		v->vm = vm;
		v->index = i;
		if ((v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i)) < 0)
			return -errno;
		v->run_size = (size_t)mmap_size;
		v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED)
			return -errno;
		if (x86_set_cpuid(v->fd, cpuid, (uint32_t)i, NULL) ||
		    x86_enter_long_mode(v->fd, BOOT_CS_FLAT, PC_FLAT_IMAGE_ADDR, (uint64_t)i,
					(uint64_t)nr, NULL))
			return -EIO;
	}
	free(cpuid);
	return 0;
}

static void handle_io(struct raw_vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *p = (uint8_t *)run + run->io.data_offset;
	uint32_t val = 0;
	memcpy(&val, p, run->io.size < 4 ? run->io.size : 4);
	if (run->io.direction == KVM_EXIT_IO_IN) {
		uint32_t out = 0xffffffffu;
		if (run->io.port == TESTDEV_CONFIG) {
			out = v->config_key == TESTDEV_CFG_MODE		 ? v->vm->mode
			      : v->config_key == TESTDEV_CFG_PERIOD_US	 ? v->vm->period_us
			      : v->config_key == TESTDEV_CFG_BENCH_ITERS ? v->vm->iters
									 : 0;
		} else if (run->io.port == TESTDEV_COMMAND) {
			out = 0;
		}
		memcpy(p, &out, run->io.size < 4 ? run->io.size : 4);
		return;
	}
	switch (run->io.port) {
	case TESTDEV_CONFIG:
		v->config_key = val;
		break;
	case TESTDEV_RESULT:
		if (v->words++ % 2 == 0)
			v->result = val;
		else
			v->result |= (uint64_t)val << 32;
		break;
	case TESTDEV_EVENT:
		if (val == TESTDEV_EV_BENCH_DONE) {
			v->vm->bench_ns = v->result;
			atomic_store(&v->vm->bench_done, true);
		}
		break;
	default:
		break;
	}
}

static void serve(struct raw_vcpu *v)
{
	struct raw_vm *vm = v->vm;
	int req = atomic_exchange(&v->req, RAW_NONE);
	if (req == RAW_CALL) {
		v->call_ns = now_ns();
		pthread_mutex_lock(&vm->lock);
		vm->called++;
		pthread_cond_broadcast(&vm->cond);
		pthread_mutex_unlock(&vm->lock);
	} else if (req == RAW_PARK) {
		/* The least a pause can cost: one atomic each, the last vCPU wakes
		 * the waiter, then sleep on the resume generation. */
		int gen = atomic_load(&vm->resume_gen);
		if (atomic_fetch_add(&vm->parked, 1) + 1 == vm->nr)
			futex_wake(&vm->parked, 1);
		while (atomic_load(&vm->resume_gen) == gen && !atomic_load(&v->stop))
			futex_wait(&vm->resume_gen, gen);
	}
}

static void *raw_thread(void *arg)
{
	struct raw_vcpu *v = arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	while (!atomic_load(&v->stop)) {
		if (atomic_load(&v->req))
			serve(v);
		__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (atomic_load(&v->req))
			continue;
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (v->run->exit_reason == KVM_EXIT_IO)
			handle_io(v);
		else if (v->run->exit_reason != KVM_EXIT_INTR)
			break;
	}
	return NULL;
}

int raw_vm_start(struct raw_vm *vm)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	for (int i = 0; i < vm->nr; i++)
		if (pthread_create(&vm->vcpus[i].thread, NULL, raw_thread, &vm->vcpus[i]))
			return -1;
	return 0;
}

static void kick(struct raw_vcpu *v, int req)
{
	atomic_store(&v->req, req);
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(v->thread, SIGUSR1);
}

uint64_t raw_call(struct raw_vm *vm, int index)
{
	struct raw_vcpu *v = &vm->vcpus[index];
	pthread_mutex_lock(&vm->lock);
	int before = vm->called;
	pthread_mutex_unlock(&vm->lock);
	uint64_t t0 = now_ns();
	kick(v, RAW_CALL);
	pthread_mutex_lock(&vm->lock);
	while (vm->called == before)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	return v->call_ns - t0;
}

uint64_t raw_pause_all(struct raw_vm *vm)
{
	uint64_t t0 = now_ns();
	for (int i = 0; i < vm->nr; i++)
		kick(&vm->vcpus[i], RAW_PARK);
	int p;
	while ((p = atomic_load(&vm->parked)) < vm->nr)
		futex_wait(&vm->parked, p);
	return now_ns() - t0;
}

void raw_resume_all(struct raw_vm *vm)
{
	atomic_store(&vm->parked, 0);
	atomic_fetch_add(&vm->resume_gen, 1);
	futex_wake(&vm->resume_gen, INT_MAX);
}

void raw_vm_destroy(struct raw_vm *vm)
{
	for (int i = 0; i < vm->nr; i++) {
		struct raw_vcpu *v = &vm->vcpus[i];
		atomic_store(&v->stop, true);
		atomic_fetch_add(&vm->resume_gen, 1);
		futex_wake(&vm->resume_gen, INT_MAX);
		pthread_mutex_lock(&vm->lock);
		pthread_cond_broadcast(&vm->cond);
		pthread_mutex_unlock(&vm->lock);
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		pthread_kill(v->thread, SIGUSR1);
		pthread_join(v->thread, NULL);
		munmap(v->run, v->run_size);
		close(v->fd);
	}
	free(vm->vcpus);
	munmap(vm->ram, vm->ram_size);
	close(vm->vm_fd);
	close(vm->kvm_fd);
}
