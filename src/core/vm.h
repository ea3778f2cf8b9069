/* One VM per process: KVM fds, guest memory, buses, devices and vCPUs.
 * Owned by the main thread; devices and vCPU threads reach it only through
 * the calls marked "any thread". */
#ifndef KVMHOST_VM_H
#define KVMHOST_VM_H

#include <linux/kvm.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/cpu.h"
#include "arch/x86/pc.h"
#include "backends/disk_image.h"
#include "core/bus.h"
#include "core/vcpu.h"
#include "devices/device.h"
#include "util/error.h"
#include "util/exit_status.h"
#include "util/guest_mem.h"
#include "util/state.h"
#include "virtio/blk.h"
#include "virtio/kind.h"
#include "virtio/mmio.h"
#include "virtio/net.h"

#define VM_MAX_DISKS   PC_MAX_DISKS /* the MMIO window the board sets aside */
#define VM_MAX_VCPUS   PC_MAX_VCPUS /* and no more than KVM allows */
#define VM_MAX_NETS    PC_MAX_NETS
#define VM_MAX_VIRTIO  PC_MAX_VIRTIO /* `--device`s */
#define VM_MAX_DEVICES 32

/* Guest memory as a snapshot saved it: mapped MAP_PRIVATE from the file;
 * fd -1: zeroed memory a migration stream fills before the VM starts. */
struct vm_image {
	int fd;
	uint64_t offset;
};

/* What the guest sees. Strings are borrowed and outlive the VM. */
struct vm_config {
	const char *name; /* for messages */
	uint32_t cpus;
	uint64_t memory_mib;
	struct disk_spec disks[VM_MAX_DISKS];
	int nr_disks;
	struct net_spec nets[VM_MAX_NETS];
	int nr_nets;
	struct virtio_spec virtio[VM_MAX_VIRTIO]; /* `--device`s, in the board's slots */
	int nr_virtio;
	/* Without a kernel: the image to boot (the built-in guest) and the
	 * device that comes with it (NULL: none). Both borrowed. */
	struct x86_flat_image flat_image;
	const struct extra_device *flat_device;
	/* A snapshot from before config version 4: there every guest had the
	 * flat image's device, a Linux one too. */
	bool flat_device_with_linux;
	/* A Linux guest instead. */
	const char *kernel_path; /* NULL: the flat image */
	const char *initrd_path;
	const char *cmdline;
	bool kernel_decompress_guest;
	bool linux_guest;	      /* a Linux guest: from --kernel, or from a snapshot */
	struct x86_cpu_mask cpu_mask; /* CPUID features the guest does not get */
	/* Restoring: memory comes from here and nothing is loaded into it; the
	 * vCPUs, devices and KVM get their state from the snapshot. */
	const struct vm_image *image;
};

/* One address range of one device, in the order devices were added. */
struct vm_device {
	const struct device_ops *ops;
	void *dev;
	bool pio;
	uint64_t base, len;
};

struct vm_disk {
	struct virtio_blk blk;
	struct virtio_mmio mmio;
	uint64_t base;
	uint32_t gsi;
	bool open;
};

struct vm_net {
	struct virtio_net net;
	struct virtio_mmio mmio;
	uint64_t base;
	uint32_t gsi;
	bool open;
};

/* A `--device`: its kind's device struct (allocated) behind a transport. */
struct vm_virtio {
	const struct virtio_kind *kind;
	void *dev;
	struct virtio_mmio mmio;
	struct pc_slot slot;
	bool wired;
};

struct vm {
	struct vm_config cfg;
	int kvm_fd;
	int vm_fd;
	uint8_t *ram;
	uint64_t ram_size;
	struct guest_mem mem;
	struct kvm_cpuid2 *cpuid;
	struct kvm_msr_list *msr_list;	 /* what a vCPU's saved state carries */
	_Atomic(uint64_t) *device_dirty; /* guest_mem's bitmap, kept to vm_destroy */
	bool has_pit;

	/* What devices may ask of the VM (device.h), pointing back here. */
	struct device_host host;
	struct vcpu_env vcpu_env; /* what the vCPUs see of the VM */
	struct bus pio_bus;
	struct bus mmio_bus;
	struct vm_device devices[VM_MAX_DEVICES];
	int nr_devices;
	struct pc_board board;		  /* its own devices: serial, ACPI PM, reset, POST */
	const struct extra_device *extra; /* cfg.flat_device where the guest has it */
	int console_fd;

	uint32_t nr_vcpus;
	struct vcpu *vcpus;

	uint64_t linux_entry_rip, linux_zero_page; /* with --kernel */

	struct vm_disk disks[VM_MAX_DISKS];
	int nr_disks;
	struct vm_net nets[VM_MAX_NETS];
	int nr_nets;
	struct vm_virtio virtio[VM_MAX_VIRTIO];
	int nr_virtio;

	/* Owned by the main thread. */
	bool user_paused;
	bool host_asleep; /* quiesced for a host sleep */
	uint64_t start_ns;

	int exit_efd; /* becomes readable when the VM should end */
	atomic_int exit_reason;
	atomic_int exit_code;
	atomic_bool quit_requested;    /* the user asked to stop: no restart, whatever came first */
	atomic_bool migrating;	       /* a migration is in flight: no save meanwhile */
	const struct sandbox *sandbox; /* what threads enter; NULL: --sandbox off */
	atomic_uint_fast64_t unhandled_pio;
	atomic_uint_fast64_t unhandled_mmio;
};

/* Returns a negative errno, with err saying why and the exit status its
 * cause calls for (no /dev/kvm, a disk, a bad kernel, an impossible option). */
int vm_create(const struct vm_config *cfg, int console_fd, struct vm **out, struct error *err);
/* Threads started from now on enter their filters from sb (vm_start's
 * vCPUs, a migration's thread). */
void vm_set_sandbox(struct vm *vm, const struct sandbox *sb);
/* Starts every vCPU; affinity(opaque, i) says where vCPU i starts (NULL: anywhere). */
int vm_start(struct vm *vm, const cpu_set_t *(*affinity)(void *opaque, unsigned vcpu),
	     void *opaque);
/* Stops and joins every vCPU thread; safe to call more than once. */
void vm_stop(struct vm *vm);
/* Safe on a VM whose create failed at any step. */
void vm_destroy(struct vm *vm);

/* Main thread only: host/sleep says the VM is quiesced for a host sleep
 * (its vCPUs parked for PARK_HOST_SLEEP), or no longer; `status` shows it. */
void vm_set_host_asleep(struct vm *vm, bool asleep);
/* Any thread: one migration at a time. claim returns false when one is in
 * flight already; release ends it (a snapshot may be saved again). */
bool vm_claim_migration(struct vm *vm);
void vm_release_migration(struct vm *vm);
bool vm_migrating(struct vm *vm);
/* Any thread: an exit was requested (the VM is stopping). */
bool vm_stopping(struct vm *vm);
/* Main thread: bytes typed at the console, for the guest's UART. Returns
 * how many it took (it holds 4 KiB). */
unsigned vm_console_input(struct vm *vm, const uint8_t *buf, unsigned len);

/* Main thread only. Harmless when already in that state. */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
const char *vm_state_name(struct vm *vm);
/* Parks every vCPU for `reason` and returns once all are out of KVM_RUN. */
void vm_park_all(struct vm *vm, unsigned reason);
void vm_unpark_all(struct vm *vm, unsigned reason);

/* Asks the guest to power itself off: through the extra device where it
 * listens for that (the built-in guest), else the ACPI power button. */
void vm_request_poweroff(struct vm *vm);

/* The builder's device the guest has (vm_config.flat_device), or NULL. */
const struct extra_device *vm_extra_device(const struct vm *vm);

/* fdatasync on every writable disk, with each device's queue lock held so no
 * request is half-served. Returns the first error. */
int vm_flush_disks(struct vm *vm);

/* Every disk's image lock, all or none (-EBUSY with which one in err);
 * and giving them up, for a migration's hand-over. Main thread. */
int vm_lock_disks(struct vm *vm, struct error *err);
void vm_unlock_disks(struct vm *vm);

/* The net whose id (or index, as a string) is `id`, or NULL. Any thread. */
struct vm_net *vm_find_net(struct vm *vm, const char *id);
/* Every net asks its guest to announce itself (after a wake, a restore, a
 * migration): gratuitous ARP and unsolicited neighbour advertisements. */
void vm_announce(struct vm *vm);

/* The guest's clock (KVM_GET_CLOCK / KVM_SET_CLOCK). */
int vm_get_clock(struct vm *vm, struct kvm_clock_data *clock);
int vm_set_clock(struct vm *vm, const struct kvm_clock_data *clock);
/* Sets the guest's clock to `saved` moved on by the real time since it was
 * read: by KVM itself where the reading carries the host's realtime
 * (KVM_CLOCK_REALTIME), else by `elapsed_ns` as the caller measured it. */
int vm_resume_clock(struct vm *vm, const struct kvm_clock_data *saved, int64_t elapsed_ns);

/* Runs fn on every vCPU's own thread (arg is passed to each); with wait,
 * returns once all ran, having kicked them all first. Returns -ESRCH if any
 * vCPU had ended. */
int vm_run_on_all(struct vm *vm, vcpu_fn fn, void *arg, bool wait);

/* Any thread: the first caller's reason wins. */
void vm_request_exit(struct vm *vm, enum vm_exit_reason reason, int code);
enum kvmhost_status vm_exit_status(struct vm *vm);
const char *vm_exit_reason_name(enum vm_exit_reason r);

/* State seams for snapshots, with every vCPU parked: each device's own
 * section (name, length, data), and what KVM holds for the VM. */
int vm_save_devices(struct vm *vm, struct state_writer *w);
int vm_restore_devices(struct vm *vm, struct state_reader *r);
int vm_save_kvm_state(struct vm *vm, struct state_writer *w);
/* The clock moves on as vm_resume_clock says, with `elapsed_ns` as fallback. */
int vm_restore_kvm_state(struct vm *vm, struct state_reader *r, int64_t elapsed_ns);

#endif
