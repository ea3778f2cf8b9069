/* One VM per process: KVM fds, guest memory, buses, devices and vCPUs. */
#ifndef KVMHOST_VM_H
#define KVMHOST_VM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "boot/linux_image.h"
#include "cli/options.h"
#include "control/protocol.h"
#include "core/bus.h"
#include "core/vcpu.h"
#include "devices/serial.h"
#include "devices/testdev.h"
#include "util/guest_mem.h"
#include "virtio/blk.h"
#include "virtio/mmio.h"

enum vm_exit_reason {
	VM_EXIT_NONE = 0,
	VM_EXIT_POWEROFF, /* the guest powered off: status 0 */
	VM_EXIT_QUIT,	  /* asked by the user (signal, ctl quit): status 0 */
	VM_EXIT_RESET,	  /* the guest asked for a reset */
	VM_EXIT_CRASH,	  /* triple fault */
	VM_EXIT_ERROR,	  /* unexpected exit or KVM error */
};

struct vm {
	struct run_options opts;
	int kvm_fd;
	int vm_fd;
	uint8_t *ram;
	uint64_t ram_size;
	struct guest_mem mem;
	struct kvm_cpuid2 *cpuid;

	struct bus pio_bus;
	struct bus mmio_bus;
	struct serial serial;
	struct testdev testdev;
	int console_fd;
	bool console_owned;

	uint32_t nr_vcpus;
	struct vcpu *vcpus;

	struct linux_entry linux_entry; /* with --kernel */

	struct vm_disk {
		struct virtio_blk blk;
		struct virtio_mmio mmio;
		uint64_t base;
		uint32_t gsi;
	} disks[MAX_DISKS];
	int nr_disks;

	/* Owned by the main thread. */
	bool user_paused;
	bool host_asleep; /* quiesced for a host sleep */
	uint64_t start_ns;

	int exit_efd; /* becomes readable when the VM should end */
	atomic_int exit_reason;
	atomic_int exit_code;
	atomic_bool quit_requested; /* the user asked to stop: no restart, whatever came first */
	atomic_uint_fast64_t unhandled_pio;
	atomic_uint_fast64_t unhandled_mmio;
};

/* Exit status of `kvmhost run` and friends. */
enum kvmhost_status {
	STATUS_OK = 0,
	STATUS_ERROR = 1,
	STATUS_USAGE = 2,
	STATUS_NO_KVM = 3,
	STATUS_NAME_IN_USE = 4,
	STATUS_DISK = 5,
	STATUS_BAD_KERNEL = 6,
	STATUS_GUEST_CRASH = 10,
	STATUS_GUEST_ERROR = 11,
	STATUS_GUEST_RESET = 12,
};

/* Returns a negative errno; -ENODEV/-EACCES mean /dev/kvm is missing/forbidden. */
int vm_create(const struct run_options *opts, int console_fd, struct vm **out);
int vm_start(struct vm *vm);
/* Stops and joins every vCPU thread; safe to call more than once. */
void vm_stop(struct vm *vm);
void vm_destroy(struct vm *vm);

/* Main thread only. Harmless when already in that state. */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
const char *vm_state_name(struct vm *vm);

/* fdatasync on every writable disk, with each device's queue lock held so no
 * request is half-served. Returns the first error. */
int vm_flush_disks(struct vm *vm);

/* Runs fn on every vCPU's own thread (arg is passed to each); with wait,
 * returns once all ran, having kicked them all first. Returns -ESRCH if any
 * vCPU had ended. */
int vm_run_on_all(struct vm *vm, vcpu_fn fn, void *arg, bool wait);

/* Any thread: the first caller's reason wins. */
void vm_request_exit(struct vm *vm, enum vm_exit_reason reason, int code);
int vm_exit_status(struct vm *vm);
const char *vm_exit_reason_name(enum vm_exit_reason r);

/* Actual affinity of a vCPU thread; false if it cannot be read. */
bool vcpu_get_affinity(struct vcpu *vcpu, cpu_set_t *set);

struct vm_status;
/* Snapshot for status/list; st->vcpus is allocated, free with vm_status_free. */
int vm_get_status(struct vm *vm, struct vm_status *st);
void vm_status_free(struct vm_status *st);
#endif
