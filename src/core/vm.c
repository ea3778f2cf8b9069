#include "core/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/cpu.h"
#include "arch/x86/linux_guest.h"
#include "devices/pc_reset.h"
#include "guest_abi.h"
#include "util/util.h"

#define MIB	       (1024ull * 1024)
#define GIB	       (1024ull * MIB)
#define LOW_RAM_END    (3 * GIB) /* above: LAPIC, IOAPIC and other MMIO */
#define HIGH_RAM_START (4 * GIB)
#define TSS_ADDR       0xfffbd000

static int open_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		if (err == ENOENT || err == ENXIO || err == ENODEV) {
			log_err("/dev/kvm does not exist: is KVM enabled (kvm_intel/kvm_amd loaded)?");
			return -ENODEV;
		}
		if (err == EACCES || err == EPERM) {
			log_err("no permission to open /dev/kvm: run as root or join the kvm group");
			return -EACCES;
		}
		log_err("cannot open /dev/kvm: %s", strerror(err));
		return -err;
	}
	int api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		log_err("unsupported KVM API version %d", api);
		close(fd);
		return -ENODEV;
	}
	return fd;
}

static int check_caps(struct vm *vm)
{
	static const struct {
		int cap;
		const char *name;
	} needed[] = {
		{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
		{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
		{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
		{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(needed); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, needed[i].cap) <= 0) {
			log_err("this KVM lacks %s", needed[i].name);
			return -ENOTSUP;
		}
	}
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max <= 0)
		max = 4;
	if (max > GUEST_MAX_VCPUS)
		max = GUEST_MAX_VCPUS;
	if (vm->opts.cpus > (uint32_t)max) {
		log_err("--cpus %u: at most %d vCPUs are supported here", vm->opts.cpus, max);
		return -E2BIG;
	}
	return 0;
}

static int setup_memory(struct vm *vm)
{
	uint64_t size = vm->opts.memory_mib * MIB;
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	if (pages > 0 && psize > 0 && size > (uint64_t)pages * (uint64_t)psize) {
		log_err("--memory %llu MiB is more than this host's RAM (%llu MiB)",
			(unsigned long long)vm->opts.memory_mib,
			(unsigned long long)((uint64_t)pages * (uint64_t)psize / MIB));
		return -EFBIG;
	}
	vm->ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->ram == MAP_FAILED) {
		vm->ram = NULL;
		log_err("cannot map %llu MiB of guest memory: %s",
			(unsigned long long)vm->opts.memory_mib, strerror(errno));
		return -ENOMEM;
	}
	vm->ram_size = size;
	uint64_t low = size < LOW_RAM_END ? size : LOW_RAM_END;
	vm->mem.regions[vm->mem.nr++] = (struct mem_region){0, low, vm->ram};
	if (size > low)
		vm->mem.regions[vm->mem.nr++] =
			(struct mem_region){HIGH_RAM_START, size - low, vm->ram + low};
	for (int i = 0; i < vm->mem.nr; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = (uint32_t)i,
			.guest_phys_addr = vm->mem.regions[i].gpa,
			.memory_size = vm->mem.regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)vm->mem.regions[i].hva,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
			log_err("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/* Level-triggered lines through the in-kernel IOAPIC. */
static void vm_set_irq(void *opaque, uint32_t gsi, bool level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = {.irq = gsi, .level = level};
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_warn("KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
}

/* Lines free of the legacy devices: not 4 (serial), 8 (RTC), 0-2 (PIT, PIC). */
static const uint32_t disk_gsis[MAX_DISKS] = {5, 6, 7, 9, 10, 11, 12, 13};

static int setup_disks(struct vm *vm)
{
	for (int i = 0; i < vm->opts.nr_disks; i++) {
		struct vm_disk *d = &vm->disks[i];
		char err[512];
		int r = virtio_blk_open(&d->blk, &vm->opts.disks[i], err, sizeof(err));
		if (r) {
			log_err("--disk: %s", err);
			return -EBADF; /* the caller's "disk cannot be used" */
		}
		vm->nr_disks = i + 1;
		d->base = VIRTIO_MMIO_BASE + (uint64_t)i * VIRTIO_MMIO_STRIDE;
		d->gsi = disk_gsis[i];
		virtio_mmio_init(&d->mmio, &virtio_blk_ops, &d->blk, &vm->mem, d->gsi, vm_set_irq,
				 vm);
		r = bus_register(&vm->mmio_bus, d->base, VIRTIO_MMIO_SIZE, virtio_mmio_access,
				 &d->mmio, "virtio-blk");
		if (r)
			return r;
	}
	return 0;
}

int vm_flush_disks(struct vm *vm)
{
	int ret = 0;
	for (int i = 0; i < vm->nr_disks; i++) {
		struct vm_disk *d = &vm->disks[i];
		pthread_mutex_lock(&d->mmio.lock);
		int r = virtio_blk_flush(&d->blk);
		if (!r && !d->blk.ro)
			atomic_fetch_add(&d->blk.host_flushes, 1);
		pthread_mutex_unlock(&d->mmio.lock);
		if (r && !ret) {
			log_err("flushing %s: %s", d->blk.path, strerror(-r));
			ret = r;
		}
	}
	return ret;
}

static int setup_devices(struct vm *vm)
{
	serial_init(&vm->serial, vm->console_fd);
	testdev_init(&vm->testdev, vm, vm->opts.heartbeat_us, vm->opts.print_every);
	vm->testdev.mode = vm->opts.guest_mode;
	vm->testdev.bench_iters = 100000;
	serial_set_irq(&vm->serial, vm_set_irq, vm, 4);
	int r = bus_register(&vm->pio_bus, SERIAL_COM1, 8, serial_access, &vm->serial, "serial");
	if (!r)
		r = reset_dev_register(vm);
	if (!r)
		r = bus_register(&vm->pio_bus, TESTDEV_PORT_BASE, TESTDEV_PORT_LEN, testdev_access,
				 &vm->testdev, "testdev");
	if (r)
		log_err("registering devices: %s", strerror(-r));
	return r;
}

static int setup_vcpus(struct vm *vm)
{
	vm->vcpus = calloc(vm->opts.cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (uint32_t i = 0; i < vm->opts.cpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		int r = vcpu_init(v, vm, (int)i);
		vm->nr_vcpus = i + 1; /* so vm_destroy undoes this one too */
		if (r)
			return r;
		if ((r = x86_set_cpuid(v->fd, vm->cpuid, i)))
			return r;
		if (vm->opts.kernel_path[0])
			r = linux_boot_vcpu(vm, v);
		else
			r = x86_enter_long_mode(v->fd, BOOT_CS_BUILTIN, GUEST_LOAD_ADDR, i,
						vm->opts.cpus);
		if (r)
			return r;
		if (vm->opts.pins[i].set) {
			v->has_pin = true;
			v->desired = vm->opts.pins[i].cpus;
		}
	}
	return 0;
}

int vm_create(const struct run_options *opts, int console_fd, struct vm **out)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->opts = *opts;
	vm->kvm_fd = vm->vm_fd = vm->exit_efd = -1;
	vm->console_fd = console_fd;
	bus_init(&vm->pio_bus);
	bus_init(&vm->mmio_bus);
	int r;

	if ((vm->kvm_fd = open_kvm()) < 0) {
		r = vm->kvm_fd;
		goto fail;
	}
	if ((r = check_caps(vm)))
		goto fail;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		r = -errno;
		log_err("KVM_CREATE_VM: %s", strerror(errno));
		goto fail;
	}
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		r = -errno;
		log_err("setting up the in-kernel irqchip: %s", strerror(errno));
		goto fail;
	}
	if ((r = setup_memory(vm)))
		goto fail;
	if (!opts->kernel_path[0] && (r = x86_load_builtin_guest(vm->ram, vm->ram_size))) {
		log_err("the built-in guest does not fit in %llu MiB",
			(unsigned long long)opts->memory_mib);
		goto fail;
	}
	if (!(vm->cpuid = x86_supported_cpuid(vm->kvm_fd))) {
		r = -EIO;
		goto fail;
	}
	if ((r = setup_devices(vm)) || (r = setup_disks(vm)))
		goto fail;
	vm->nr_vcpus = opts->cpus; /* the MP table needs the count before the vCPUs exist */
	if (opts->kernel_path[0] && (r = linux_boot_setup(vm))) {
		vm->nr_vcpus = 0;
		goto fail;
	}
	vm->nr_vcpus = 0;
	if ((r = setup_vcpus(vm)))
		goto fail;
	vm->exit_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->exit_efd < 0) {
		r = -errno;
		goto fail;
	}
	*out = vm;
	return 0;
fail:
	vm_destroy(vm);
	return r;
}

int vm_start(struct vm *vm)
{
	int r = vcpu_install_kick_handler();
	if (r)
		return r;
	vm->start_ns = now_ns();
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		/* The pinning policy fills `intended`; without it, the pin as asked. */
		const cpu_set_t *aff = CPU_COUNT(&v->intended) ? &v->intended
				       : v->has_pin	       ? &v->desired
							       : NULL;
		r = vcpu_start(v, aff);
		if (r) {
			vm_stop(vm);
			return r;
		}
	}
	return 0;
}

void vm_stop(struct vm *vm)
{
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i].started)
			vcpu_stop(&vm->vcpus[i]);
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		vcpu_join(&vm->vcpus[i]);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	vm_stop(vm);
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	for (int i = 0; i < vm->nr_disks; i++) {
		virtio_mmio_destroy(&vm->disks[i].mmio);
		virtio_blk_close(&vm->disks[i].blk);
	}
	if (vm->pio_bus.nr) {
		serial_destroy(&vm->serial);
	}
	bus_destroy(&vm->pio_bus);
	bus_destroy(&vm->mmio_bus);
	free(vm->cpuid);
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	if (vm->exit_efd >= 0)
		close(vm->exit_efd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	free(vm);
}

void vm_pause(struct vm *vm)
{
	if (vm->user_paused)
		return;
	vm->user_paused = true;
	/* Kick them all first, then collect: the waits overlap. */
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		vcpu_park(&vm->vcpus[i], PARK_USER);
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		vcpu_wait_parked(&vm->vcpus[i]);
}

void vm_resume(struct vm *vm)
{
	if (!vm->user_paused)
		return;
	vm->user_paused = false;
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		vcpu_unpark(&vm->vcpus[i], PARK_USER);
}

const char *vm_state_name(struct vm *vm)
{
	if (atomic_load(&vm->exit_reason) != VM_EXIT_NONE)
		return "stopping";
	if (vm->user_paused)
		return "paused";
	return vm->host_asleep ? "host-sleep" : "running";
}

int vm_run_on_all(struct vm *vm, vcpu_fn fn, void *arg, bool wait)
{
	int ret = 0;
	if (!wait) {
		for (uint32_t i = 0; i < vm->nr_vcpus; i++)
			if (vcpu_run_on(&vm->vcpus[i], fn, arg, false))
				ret = -ESRCH;
		return ret;
	}
	struct vcpu_request *reqs = calloc(vm->nr_vcpus, sizeof(*reqs));
	if (!reqs)
		return -ENOMEM;
	bool *queued = calloc(vm->nr_vcpus, sizeof(*queued));
	if (!queued) {
		free(reqs);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		reqs[i] = (struct vcpu_request){.fn = fn, .arg = arg, .wait = true};
		queued[i] = vcpu_submit(&vm->vcpus[i], &reqs[i]) == 0;
	}
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		if (!queued[i] || vcpu_request_wait(&reqs[i]))
			ret = -ESRCH;
	free(queued);
	free(reqs);
	return ret;
}

void vm_request_exit(struct vm *vm, enum vm_exit_reason reason, int code)
{
	if (reason == VM_EXIT_QUIT)
		atomic_store(&vm->quit_requested, true);
	int expected = VM_EXIT_NONE;
	if (!atomic_compare_exchange_strong(&vm->exit_reason, &expected, (int)reason))
		return;
	atomic_store(&vm->exit_code, code);
	uint64_t one = 1;
	if (write(vm->exit_efd, &one, sizeof(one)) < 0) {
		/* Counter full is impossible here; nothing else to do. */
	}
}

const char *vm_exit_reason_name(enum vm_exit_reason r)
{
	switch (r) {
	case VM_EXIT_POWEROFF:
		return "guest powered off";
	case VM_EXIT_QUIT:
		return "stopped on request";
	case VM_EXIT_RESET:
		return "guest rebooted (or panicked with panic=-1); --on-reboot restart starts it again";
	case VM_EXIT_CRASH:
		return "guest crashed (triple fault)";
	case VM_EXIT_ERROR:
		return "unexpected VM exit";
	default:
		return "running";
	}
}

int vm_exit_status(struct vm *vm)
{
	switch (atomic_load(&vm->exit_reason)) {
	case VM_EXIT_POWEROFF:
		return atomic_load(&vm->exit_code) ? STATUS_GUEST_ERROR : STATUS_OK;
	case VM_EXIT_QUIT:
		return STATUS_OK;
	case VM_EXIT_RESET:
		return STATUS_GUEST_RESET;
	case VM_EXIT_CRASH:
		return STATUS_GUEST_CRASH;
	default:
		return STATUS_GUEST_ERROR;
	}
}

bool vcpu_get_affinity(struct vcpu *vcpu, cpu_set_t *set)
{
	pid_t tid = atomic_load(&vcpu->tid);
	return tid > 0 && sched_getaffinity(tid, sizeof(*set), set) == 0;
}

int vm_get_status(struct vm *vm, struct vm_status *st)
{
	memset(st, 0, sizeof(*st));
	st->vcpus = calloc(vm->nr_vcpus, sizeof(*st->vcpus));
	if (!st->vcpus)
		return -ENOMEM;
	st->name = vm->opts.name;
	st->pid = getpid();
	st->state = vm_state_name(vm);
	st->memory_mib = vm->opts.memory_mib;
	st->uptime_s = (double)(now_ns() - vm->start_ns) / 1e9;
	st->unhandled_pio = atomic_load(&vm->unhandled_pio);
	st->unhandled_mmio = atomic_load(&vm->unhandled_mmio);
	st->nr_vcpus = vm->nr_vcpus;
	for (uint32_t i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		struct vcpu_status *s = &st->vcpus[i];
		s->index = v->index;
		s->tid = atomic_load(&v->tid);
		s->host_cpu = s->tid > 0 ? thread_last_cpu(s->tid) : -1;
		unsigned reasons = vcpu_park_reasons(v);
		int rs = atomic_load(&v->run_state);
		s->state = rs == VCPU_EXITED ? "stopped" : reasons ? "paused" : "running";
		s->has_pin = v->has_pin;
		s->desired = v->desired;
		s->has_actual = vcpu_get_affinity(v, &s->actual);
		s->displaced = v->displaced;
		if (v->has_pin && s->has_actual && !s->displaced) {
			/* Running somewhere it was not asked to: the kernel or our policy moved it.
			 */
			cpu_set_t outside;
			CPU_XOR(&outside, &s->actual, &v->desired);
			CPU_AND(&outside, &outside, &s->actual);
			s->displaced = CPU_COUNT(&outside) > 0;
		}
		s->heartbeats = atomic_load(&v->heartbeats);
		s->clock_backwards = atomic_load(&v->clock_backwards);
		s->guest_stopped_seen = atomic_load(&v->guest_stopped_seen);
		s->exits = atomic_load(&v->exits);
		s->max_beat_gap_ns = atomic_load(&v->max_beat_gap_ns);
	}
	st->nr_disks = vm->nr_disks;
	for (int i = 0; i < vm->nr_disks; i++) {
		struct vm_disk *d = &vm->disks[i];
		st->disks[i] = (struct disk_status){
			.path = d->blk.path,
			.id = d->blk.id,
			.ro = d->blk.ro,
			.capacity_sectors = d->blk.capacity,
			.reads = atomic_load(&d->blk.reads),
			.writes = atomic_load(&d->blk.writes),
			.flushes = atomic_load(&d->blk.flushes),
			.errors = atomic_load(&d->blk.errors),
			.busy_ns = atomic_load(&d->blk.busy_ns),
			.host_flushes = atomic_load(&d->blk.host_flushes),
			.needs_reset = virtio_mmio_needs_reset(&d->mmio),
			.base = d->base,
			.gsi = d->gsi,
		};
	}
	struct testdev *t = &vm->testdev;
	st->guest_disk_flushed = atomic_load(&t->disk_flushed);
	st->guest_disk_verified = atomic_load(&t->disk_verified);
	st->guest_disk_errors = atomic_load(&t->disk_errors);
	st->guest_disk_irqs = atomic_load(&t->disk_irqs);
	st->guest_disk_done = atomic_load(&t->disk_done);
	st->guest_bench_ns = atomic_load(&t->bench_done) ? atomic_load(&t->bench_ns) : 0;
	st->nr_disk_bench = DISK_BENCH_RESULTS;
	for (int i = 0; i < DISK_BENCH_RESULTS; i++)
		st->guest_disk_bench_ns[i] = atomic_load(&t->disk_bench_ns[i]);
	return 0;
}

void vm_status_free(struct vm_status *st)
{
	free(st->vcpus);
	st->vcpus = NULL;
}
