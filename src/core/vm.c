/* The VM: KVM's fds, guest memory (up to 3 GiB low, the rest from 4 GiB,
 * past the MMIO hole), the PC's legacy devices, virtio disks and nets, and
 * the vCPUs. vm_create builds it step by step and vm_destroy undoes however
 * many steps were done; devices and vCPUs see it only through device_host
 * and vcpu_env. */
#include "core/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/cpu.h"
#include "arch/x86/kvm_state.h"
#include "arch/x86/linux_guest.h"
#include "arch/x86/pc.h"
#include "util/util.h"

#define MIB (1024ull * 1024)

static int open_kvm(struct error *err)
{
	/* $KVMHOST_KVM_DEVICE: another node for the same device, for tests and
	 * packaging (a private node group-owned by a test's own group). */
	const char *dev = getenv("KVMHOST_KVM_DEVICE");
	if (!dev || !*dev)
		dev = "/dev/kvm";
	int fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ENXIO || e == ENODEV)
			return error_set(err, STATUS_NO_KVM, e,
					 "%s does not exist: is KVM enabled (kvm_intel/kvm_amd "
					 "loaded)?",
					 dev);
		if (e == EACCES || e == EPERM)
			return error_set(err, STATUS_NO_KVM, e,
					 "no permission to open %s: run as root or join the kvm "
					 "group",
					 dev);
		return error_set(err, STATUS_NO_KVM, e, "cannot open %s: %s", dev, strerror(e));
	}
	int api = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		close(fd);
		return error_set(err, STATUS_NO_KVM, ENODEV, "unsupported KVM API version %d", api);
	}
	return fd;
}

static int check_caps(struct vm *vm, struct error *err)
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
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, needed[i].cap) <= 0)
			return error_set(err, STATUS_NO_KVM, ENOTSUP, "this KVM lacks %s",
					 needed[i].name);
	}
	/* KVM_CAP_NR_VCPUS is the older, recommended limit; 4 if neither answers. */
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max <= 0)
		max = 4;
	if (max > VM_MAX_VCPUS)
		max = VM_MAX_VCPUS;
	if (vm->cfg.cpus > (uint32_t)max)
		return error_set(err, STATUS_USAGE, E2BIG,
				 "--cpus %u: at most %d vCPUs are supported here", vm->cfg.cpus,
				 max);
	return 0;
}

static int map_memory(struct vm *vm, struct error *err)
{
	for (int i = 0; i < vm->mem.nr; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = (uint32_t)i,
			.guest_phys_addr = vm->mem.regions[i].gpa,
			.memory_size = vm->mem.regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)vm->mem.regions[i].hva,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return error_set_errno(err, errno, "KVM_SET_USER_MEMORY_REGION");
	}
	return 0;
}

static int setup_memory(struct vm *vm, struct error *err)
{
	uint64_t size = vm->cfg.memory_mib * MIB;
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	if (pages > 0 && psize > 0 && size > (uint64_t)pages * (uint64_t)psize)
		return error_set(err, STATUS_USAGE, EFBIG,
				 "--memory %llu MiB is more than this host's RAM (%llu MiB)",
				 (unsigned long long)vm->cfg.memory_mib,
				 (unsigned long long)((uint64_t)pages * (uint64_t)psize / MIB));
	const struct vm_image *image = vm->cfg.image;
	/* A snapshot's memory loads lazily from its file, page by page. */
	vm->ram = image && image->fd >= 0
			  ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
				 image->fd, (off_t)image->offset)
			  : mmap(NULL, size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->ram == MAP_FAILED) {
		int e = errno;
		vm->ram = NULL;
		return error_set_errno(err, e, "cannot map %llu MiB of guest memory",
				       (unsigned long long)vm->cfg.memory_mib);
	}
	vm->ram_size = size;
	vm->mem.nr = pc_ram_layout(size, vm->ram, vm->mem.regions);
	return map_memory(vm, err);
}

/* Level-triggered lines through the in-kernel IOAPIC. */
static void vm_set_irq(void *opaque, uint32_t gsi, bool level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = {.irq = gsi, .level = level};
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_warn("KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
}

static void vm_host_request_exit(void *opaque, enum vm_exit_reason reason, int code)
{
	vm_request_exit(opaque, reason, code);
}

/* Puts a device's range on its bus and in the list snapshots walk. */
static int add_device(void *opaque, bool pio, uint64_t base, uint64_t len,
		      const struct device_ops *ops, void *dev, struct error *err)
{
	struct vm *vm = opaque;
	int r = vm->nr_devices >= VM_MAX_DEVICES
			? -ENOSPC
			: bus_register(pio ? &vm->pio_bus : &vm->mmio_bus, base, len, ops, dev);
	if (r)
		return error_set_errno(err, -r, "adding %s at %#llx", ops->name,
				       (unsigned long long)base);
	vm->devices[vm->nr_devices++] = (struct vm_device){ops, dev, pio, base, len};
	return 0;
}

static int setup_disks(struct vm *vm, struct error *err)
{
	for (int i = 0; i < vm->cfg.nr_disks; i++) {
		struct vm_disk *d = &vm->disks[i];
		struct pc_slot slot = pc_disk_slot((unsigned)i);
		d->base = slot.base;
		d->gsi = slot.gsi;
		int r = virtio_blk_open(&d->blk, &vm->cfg.disks[i], err);
		if (r) {
			error_set_status(err, STATUS_DISK);
			return error_prepend(err, "--disk: ");
		}
		d->open = true;
		vm->nr_disks = i + 1;
		virtio_mmio_init(&d->mmio, &virtio_blk_ops, &d->blk, &vm->mem, &vm->host, d->gsi);
		r = add_device(vm, false, d->base, VIRTIO_MMIO_SIZE, &virtio_mmio_ops, &d->mmio,
			       err);
		if (r)
			return r;
	}
	return 0;
}

static int setup_nets(struct vm *vm, struct error *err)
{
	for (int i = 0; i < vm->cfg.nr_nets; i++) {
		struct vm_net *n = &vm->nets[i];
		const struct net_spec *spec = &vm->cfg.nets[i];
		uint8_t mac[6];
		struct pc_slot slot = pc_net_slot((unsigned)i);
		n->base = slot.base;
		n->gsi = slot.gsi;
		if (spec->mac_given)
			memcpy(mac, spec->mac, 6);
		else
			tap_default_mac(vm->cfg.name ? vm->cfg.name : "", i, mac);
		int r = virtio_net_open(&n->net, spec, mac, err);
		if (r) {
			error_set_status(err, STATUS_NET);
			return error_prepend(err, "--net: ");
		}
		n->open = true;
		vm->nr_nets = i + 1;
		virtio_mmio_init(&n->mmio, &virtio_net_ops, &n->net, &vm->mem, &vm->host, n->gsi);
		virtio_net_attach(&n->net, &n->mmio, &vm->mem);
		r = add_device(vm, false, n->base, VIRTIO_MMIO_SIZE, &virtio_mmio_ops, &n->mmio,
			       err);
		if (r)
			return r;
	}
	return 0;
}

/* The `--device`s, each built by its kind and put in its board slot. */
static int setup_virtio(struct vm *vm, struct error *err)
{
	for (int i = 0; i < vm->cfg.nr_virtio; i++) {
		const struct virtio_spec *spec = &vm->cfg.virtio[i];
		struct vm_virtio *v = &vm->virtio[i];
		if (!spec->type) /* the config's reader looks the name up */
			return error_setf(err, "--device %s: no such kind", spec->kind);
		vm->nr_virtio = i + 1;
		v->kind = spec->type;
		v->slot = pc_virtio_slot((unsigned)i);
		/* destroy copes with a half-done create: it sees dev once allocated */
		if (!(v->dev = calloc(1, v->kind->size)))
			return error_set(err, STATUS_ERROR, ENOMEM, "out of memory");
		int r = v->kind->create(v->dev, spec->options, err);
		if (r)
			return error_prepend(err, "--device %s: ", spec->kind);
		virtio_mmio_init(&v->mmio, v->kind->ops, v->dev, &vm->mem, &vm->host, v->slot.gsi);
		v->wired = true;
		r = add_device(vm, false, v->slot.base, VIRTIO_MMIO_SIZE, &virtio_mmio_ops,
			       &v->mmio, err);
		if (r)
			return error_prepend(err, "--device %s: ", spec->kind);
	}
	return 0;
}

static void destroy_virtio(struct vm *vm)
{
	for (int i = 0; i < vm->nr_virtio; i++) {
		struct vm_virtio *v = &vm->virtio[i];
		if (v->wired)
			virtio_mmio_destroy(&v->mmio);
		if (v->dev && v->kind->destroy)
			v->kind->destroy(v->dev);
		free(v->dev);
	}
}

struct vm_net *vm_find_net(struct vm *vm, const char *id)
{
	for (int i = 0; i < vm->nr_nets; i++) {
		char index[16];
		snprintf(index, sizeof(index), "%d", i);
		if (!strcmp(vm->nets[i].net.id, id) || !strcmp(index, id))
			return &vm->nets[i];
	}
	return NULL;
}

void vm_announce(struct vm *vm)
{
	for (int i = 0; i < vm->nr_nets; i++)
		virtio_net_announce(&vm->nets[i].net);
}

int vm_flush_disks(struct vm *vm)
{
	int ret = 0;
	for (int i = 0; i < vm->nr_disks; i++) {
		struct vm_disk *d = &vm->disks[i];
		pthread_mutex_lock(&d->mmio.lock);
		int r = virtio_blk_flush(&d->blk);
		if (!r && !d->blk.img.ro)
			atomic_fetch_add(&d->blk.host_flushes, 1);
		pthread_mutex_unlock(&d->mmio.lock);
		if (r && !ret) {
			log_err("flushing %s: %s", d->blk.img.path, strerror(-r));
			ret = r;
		}
	}
	return ret;
}

int vm_lock_disks(struct vm *vm, struct error *err)
{
	for (int i = 0; i < vm->nr_disks; i++) {
		int r = disk_image_lock(&vm->disks[i].blk.img, err);
		if (r) {
			while (i--)
				disk_image_unlock(&vm->disks[i].blk.img);
			return r;
		}
	}
	return 0;
}

void vm_unlock_disks(struct vm *vm)
{
	for (int i = 0; i < vm->nr_disks; i++)
		disk_image_unlock(&vm->disks[i].blk.img);
}

/* The builder's device, for a flat image (and an old snapshot's Linux
 * guest, which had it too). Attached before the board's own devices are
 * added, mapped after them: the order snapshots have always had. */
static int attach_extra_device(struct vm *vm)
{
	const struct extra_device *x = vm->cfg.flat_device;
	if (!x || (vm->cfg.linux_guest && !vm->cfg.flat_device_with_linux))
		return 0;
	vm->extra = x;
	return x->attach(x->dev, &vm->host, vm->cfg.cpus);
}

/* The board's own devices, then the builder's extra one. */
static int setup_devices(struct vm *vm, struct error *err)
{
	vm->host = (struct device_host){vm, vm_host_request_exit, vm_set_irq};
	int r = attach_extra_device(vm);
	if (r)
		return error_set_errno(err, -r, "attaching %s", vm->extra->ops->name);
	r = pc_board_init(&vm->board, vm->console_fd, &vm->host, add_device, vm, err);
	if (r || !vm->extra)
		return r;
	return add_device(vm, true, vm->extra->port, vm->extra->nr_ports, vm->extra->ops,
			  vm->extra->dev, err);
}

/* The kernel, initrd and boot tables in guest memory, and the PIT it expects. */
static int setup_linux(struct vm *vm, struct error *err)
{
	struct acpi_mmio_device mmio[VM_MAX_DISKS + VM_MAX_NETS + VM_MAX_VIRTIO];
	for (int i = 0; i < vm->nr_disks; i++)
		mmio[i] = (struct acpi_mmio_device){vm->disks[i].base, VIRTIO_MMIO_SIZE,
						    vm->disks[i].gsi};
	for (int i = 0; i < vm->nr_nets; i++)
		mmio[vm->nr_disks + i] = (struct acpi_mmio_device){
			vm->nets[i].base, VIRTIO_MMIO_SIZE, vm->nets[i].gsi};
	unsigned n = (unsigned)(vm->nr_disks + vm->nr_nets);
	for (int i = 0; i < vm->nr_virtio; i++)
		mmio[n++] = (struct acpi_mmio_device){vm->virtio[i].slot.base, VIRTIO_MMIO_SIZE,
						      vm->virtio[i].slot.gsi};
	struct linux_guest g = {
		.kernel_path = vm->cfg.kernel_path,
		.initrd_path = vm->cfg.initrd_path,
		.cmdline = vm->cfg.cmdline,
		.decompress_in_guest = vm->cfg.kernel_decompress_guest,
		.mem = &vm->mem,
		.nr_cpus = vm->cfg.cpus,
		.mmio = mmio,
		.nr_mmio = n,
	};
	struct linux_entry entry;
	int r = linux_guest_load(&g, &entry, err);
	if (r)
		return r;
	vm->linux_entry_rip = entry.rip;
	vm->linux_zero_page = entry.zero_page;
	return 0;
}

static int create_pit(struct vm *vm, struct error *err)
{
	int r = pc_create_pit(vm->vm_fd, err);
	vm->has_pit = r == 0;
	return r;
}

static int setup_vcpu(struct vm *vm, struct vcpu *v, uint32_t i, struct error *err)
{
	/* Restoring, this CPUID is only what this host would give a guest, to
	 * check the saved one against; the snapshot's replaces it. */
	int r = x86_set_cpuid(v->fd, vm->cpuid, i, err);
	if (r || vm->cfg.image)
		return r;
	if (vm->cfg.linux_guest) {
		struct linux_entry entry = {.rip = vm->linux_entry_rip,
					    .zero_page = vm->linux_zero_page};
		return linux_guest_setup_vcpu(v->fd, i, &entry, err);
	}
	return x86_enter_long_mode(v->fd, BOOT_CS_FLAT, PC_FLAT_IMAGE_ADDR, i, vm->cfg.cpus, err);
}

/* The MSRs KVM says a vCPU's state has (KVM_GET_MSR_INDEX_LIST: E2BIG
 * with the count first). */
static int get_msr_list(struct vm *vm, struct error *err)
{
	struct kvm_msr_list probe = {0};
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return error_set_errno(err, errno, "KVM_GET_MSR_INDEX_LIST");
	vm->msr_list = calloc(1, sizeof(probe) + probe.nmsrs * sizeof(probe.indices[0]));
	if (!vm->msr_list)
		return error_set(err, STATUS_ERROR, ENOMEM, "out of memory");
	vm->msr_list->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, vm->msr_list) < 0)
		return error_set_errno(err, errno, "KVM_GET_MSR_INDEX_LIST");
	return 0;
}

/* How large a vCPU's XSAVE area is here: KVM_CAP_XSAVE2 says, else the
 * fixed 4 KiB of KVM_GET_XSAVE, else none. */
static uint32_t xsave_size(struct vm *vm)
{
	int size = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (size > (int)sizeof(struct kvm_xsave))
		return (uint32_t)size;
	return ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0 ? sizeof(struct kvm_xsave)
									 : 0;
}

static void vcpu_unparked(void *opaque, unsigned vcpu);

static int init_vcpu(struct vm *vm, uint32_t i, struct error *err)
{
	struct vcpu *v = &vm->vcpus[i];
	int r = vcpu_init(v, &vm->vcpu_env, (int)i, err);
	vm->nr_vcpus = i + 1; /* so vm_destroy undoes this one too */
	if (r)
		return r;
	return setup_vcpu(vm, v, i, err);
}

static int setup_vcpus(struct vm *vm, struct error *err)
{
	vm->vcpu_env = (struct vcpu_env){
		.kvm_fd = vm->kvm_fd,
		.vm_fd = vm->vm_fd,
		.pio_bus = &vm->pio_bus,
		.mmio_bus = &vm->mmio_bus,
		.unhandled_pio = &vm->unhandled_pio,
		.unhandled_mmio = &vm->unhandled_mmio,
		.host = &vm->host,
		.msr_list = vm->msr_list,
		.xsave_size = xsave_size(vm),
		.unparked = vcpu_unparked,
		.opaque = vm,
	};
	vm->vcpus = calloc(vm->cfg.cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return error_set(err, STATUS_ERROR, ENOMEM, "out of memory");
	for (uint32_t i = 0; i < vm->cfg.cpus; i++) {
		int r = init_vcpu(vm, i, err);
		if (r)
			return error_prepend(err, "vCPU %u: ", i);
	}
	return 0;
}

/* The VM's own fds: /dev/kvm, the VM, the irqchip, and the exit eventfd. */
static int setup_kvm(struct vm *vm, struct error *err)
{
	vm->kvm_fd = open_kvm(err);
	if (vm->kvm_fd < 0)
		return vm->kvm_fd;
	int r = check_caps(vm, err);
	if (r)
		return r;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return error_set_errno(err, errno, "KVM_CREATE_VM");
	r = pc_create_irqchip(vm->vm_fd, err);
	if (r)
		return error_prepend(err, "creating the interrupt controllers: ");
	vm->exit_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->exit_efd < 0)
		return error_set_errno(err, errno, "eventfd");
	if (!(vm->cpuid = x86_supported_cpuid(vm->kvm_fd)))
		return error_set(err, STATUS_ERROR, EIO, "KVM_GET_SUPPORTED_CPUID failed");
	x86_cpuid_apply_mask(vm->cpuid, &vm->cfg.cpu_mask);
	return get_msr_list(vm, err);
}

static int load_guest(struct vm *vm, struct error *err)
{
	if (vm->cfg.linux_guest) {
		int r = create_pit(vm, err);
		if (r)
			return error_prepend(err, "creating the PIT: ");
	}
	if (vm->cfg.image)
		return 0; /* memory is as the snapshot left it */
	if (vm->cfg.linux_guest)
		return setup_linux(vm, err);
	int r = x86_load_flat_image(vm->ram, vm->ram_size, &vm->cfg.flat_image);
	if (r)
		return error_set(err, STATUS_ERROR, -r,
				 "the guest's image does not fit in %llu MiB",
				 (unsigned long long)vm->cfg.memory_mib);
	return 0;
}

int vm_create(const struct vm_config *cfg, int console_fd, struct vm **out, struct error *err)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return error_set(err, STATUS_ERROR, ENOMEM, "out of memory");
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = vm->exit_efd = -1;
	vm->console_fd = console_fd;
	bus_init(&vm->pio_bus);
	bus_init(&vm->mmio_bus);
	int r = setup_kvm(vm, err);
	if (r)
		goto fail;
	r = setup_memory(vm, err);
	if (r)
		goto fail;
	r = setup_devices(vm, err);
	if (r)
		goto fail;
	r = setup_disks(vm, err);
	if (r)
		goto fail;
	r = setup_nets(vm, err);
	if (r)
		goto fail;
	r = setup_virtio(vm, err);
	if (r)
		goto fail;
	r = load_guest(vm, err);
	if (r)
		goto fail;
	r = setup_vcpus(vm, err);
	if (r)
		goto fail;
	*out = vm;
	return 0;
fail:
	vm_destroy(vm);
	return r;
}

void vm_set_sandbox(struct vm *vm, const struct sandbox *sb)
{
	vm->sandbox = sb;
	vm->vcpu_env.sandbox = sb;
}

int vm_start(struct vm *vm, const cpu_set_t *(*affinity)(void *opaque, unsigned vcpu), void *opaque)
{
	int r = vcpu_install_kick_handler();
	if (r)
		return r;
	vm->start_ns = now_ns();
	for (int i = 0; i < vm->nr_nets && !r; i++)
		r = virtio_net_start(&vm->nets[i].net, vm->sandbox);
	for (uint32_t i = 0; i < vm->nr_vcpus && !r; i++)
		r = vcpu_start(&vm->vcpus[i], affinity ? affinity(opaque, i) : NULL);
	if (r)
		vm_stop(vm);
	return r;
}

void vm_stop(struct vm *vm)
{
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i].started)
			vcpu_stop(&vm->vcpus[i]);
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		vcpu_join(&vm->vcpus[i]);
}

static void destroy_devices(struct vm *vm)
{
	destroy_virtio(vm);
	for (int i = 0; i < VM_MAX_NETS; i++)
		if (vm->nets[i].open)
			virtio_net_close(
				&vm->nets[i].net); /* its thread first: it uses the transport */
	for (int i = 0; i < vm->nr_nets; i++)
		virtio_mmio_destroy(&vm->nets[i].mmio);
	for (int i = 0; i < vm->nr_disks; i++)
		virtio_mmio_destroy(&vm->disks[i].mmio);
	for (int i = 0; i < VM_MAX_DISKS; i++)
		if (vm->disks[i].open)
			virtio_blk_close(&vm->disks[i].blk);
	pc_board_destroy(&vm->board);
	if (vm->extra)
		vm->extra->detach(vm->extra->dev);
	bus_destroy(&vm->pio_bus);
	bus_destroy(&vm->mmio_bus);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	vm_stop(vm);
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	destroy_devices(vm);
	free(vm->cpuid);
	free((void *)vm->device_dirty);
	free(vm->msr_list);
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

void vm_park_all(struct vm *vm, unsigned reason)
{
	/* Kick them all first, then collect: the waits overlap. */
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		vcpu_park(&vm->vcpus[i], reason);
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		vcpu_wait_parked(&vm->vcpus[i]);
	/* A stopped guest's console shows all it sent. */
	if (vm->board.serial_ready)
		serial_flush(&vm->board.serial);
}

void vm_unpark_all(struct vm *vm, unsigned reason)
{
	for (uint32_t i = 0; i < vm->nr_vcpus; i++)
		vcpu_unpark(&vm->vcpus[i], reason);
}

void vm_pause(struct vm *vm)
{
	if (vm->user_paused)
		return;
	vm->user_paused = true;
	vm_park_all(vm, PARK_USER);
}

void vm_resume(struct vm *vm)
{
	if (!vm->user_paused)
		return;
	vm->user_paused = false;
	vm_unpark_all(vm, PARK_USER);
}

const char *vm_state_name(struct vm *vm)
{
	if (atomic_load(&vm->exit_reason) != VM_EXIT_NONE)
		return "stopping";
	if (vm->user_paused)
		return "paused";
	return vm->host_asleep ? "host-sleep" : "running";
}

void vm_request_poweroff(struct vm *vm)
{
	if (!vm->extra || !vm->extra->request_poweroff) {
		if (!acpi_pm_press_power_button(&vm->board.acpi_pm))
			log_info("power button pressed; the guest has not enabled its event yet");
		return;
	}
	if (vm->extra && vm->extra->request_poweroff)
		vm->extra->request_poweroff(vm->extra->dev);
}

void vm_set_host_asleep(struct vm *vm, bool asleep)
{
	vm->host_asleep = asleep;
}

bool vm_claim_migration(struct vm *vm)
{
	bool idle = false;
	return atomic_compare_exchange_strong(&vm->migrating, &idle, true);
}

void vm_release_migration(struct vm *vm)
{
	atomic_store(&vm->migrating, false);
}

bool vm_migrating(struct vm *vm)
{
	return atomic_load(&vm->migrating);
}

bool vm_stopping(struct vm *vm)
{
	return atomic_load(&vm->exit_reason) != VM_EXIT_NONE;
}

unsigned vm_console_input(struct vm *vm, const uint8_t *buf, unsigned len)
{
	return serial_receive(&vm->board.serial, buf, len);
}

const struct extra_device *vm_extra_device(const struct vm *vm)
{
	return vm->extra;
}

int vm_get_clock(struct vm *vm, struct kvm_clock_data *clock)
{
	memset(clock, 0, sizeof(*clock));
	return ioctl(vm->vm_fd, KVM_GET_CLOCK, clock) < 0 ? -errno : 0;
}

int vm_set_clock(struct vm *vm, const struct kvm_clock_data *clock)
{
	return ioctl(vm->vm_fd, KVM_SET_CLOCK, clock) < 0 ? -errno : 0;
}

int vm_resume_clock(struct vm *vm, const struct kvm_clock_data *saved, int64_t elapsed_ns)
{
	struct kvm_clock_data d = {.clock = saved->clock};
	if (saved->flags & KVM_CLOCK_REALTIME) {
		/* KVM adds the real time that passed since the reading. */
		d.flags = KVM_CLOCK_REALTIME;
		d.realtime = saved->realtime;
		if (vm_set_clock(vm, &d) == 0)
			return 0;
		d.flags = 0; /* this KVM has no KVM_CLOCK_REALTIME: do it here */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		elapsed_ns = (int64_t)((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec -
				       saved->realtime);
	}
	if (elapsed_ns > 0)
		d.clock += (uint64_t)elapsed_ns;
	int r = vm_set_clock(vm, &d);
	if (r)
		log_err("KVM_SET_CLOCK: %s", strerror(-r));
	return r;
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
	bool *queued = calloc(vm->nr_vcpus, sizeof(*queued));
	if (!reqs || !queued) {
		free(reqs);
		free(queued);
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
	/* Cannot fail: the counter would need 2^64 - 1 requests to fill. */
	(void)!write(vm->exit_efd, &one, sizeof(one));
}

static void vcpu_unparked(void *opaque, unsigned vcpu)
{
	struct vm *vm = opaque;
	if (vm->extra && vm->extra->vcpu_unparked)
		vm->extra->vcpu_unparked(vm->extra->dev, vcpu);
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
	case VM_EXIT_MIGRATED:
		return "migrated: the guest runs on the destination now";
	default:
		return "running";
	}
}

enum kvmhost_status vm_exit_status(struct vm *vm)
{
	switch (atomic_load(&vm->exit_reason)) {
	case VM_EXIT_POWEROFF:
		return atomic_load(&vm->exit_code) ? STATUS_GUEST_ERROR : STATUS_OK;
	case VM_EXIT_QUIT:
	case VM_EXIT_MIGRATED:
		return STATUS_OK;
	case VM_EXIT_RESET:
		return STATUS_GUEST_RESET;
	case VM_EXIT_CRASH:
		return STATUS_GUEST_CRASH;
	default:
		return STATUS_GUEST_ERROR;
	}
}

int vm_save_kvm_state(struct vm *vm, struct state_writer *w)
{
	int r = x86_save_vm_state(vm->vm_fd, vm->has_pit, w);
	if (r)
		return r;
	struct kvm_clock_data clock;
	r = vm_get_clock(vm, &clock);
	if (r)
		return r;
	if (!(clock.flags & KVM_CLOCK_REALTIME)) {
		/* KVM pairs the two only where the host's clocksource is the TSC.
		 * Read here, not when the snapshot's header is written: the guest
		 * would lose what saving the rest takes (0.1 s under ASan in the
		 * test host, through each migration). */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		clock.realtime = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		clock.flags |= KVM_CLOCK_REALTIME;
	}
	state_put(w, &clock, sizeof(clock));
	return w->err;
}

int vm_restore_kvm_state(struct vm *vm, struct state_reader *r, int64_t elapsed_ns)
{
	int ret = x86_restore_vm_state(vm->vm_fd, vm->has_pit, r);
	if (ret)
		return ret;
	struct kvm_clock_data clock;
	state_get(r, &clock, sizeof(clock));
	if (r->err)
		return r->err;
	return vm_resume_clock(vm, &clock, elapsed_ns);
}

/* How many devices have state of their own. */
static uint32_t stateful_devices(const struct vm *vm)
{
	uint32_t n = 0;
	for (int i = 0; i < vm->nr_devices; i++)
		n += device_has_state(vm->devices[i].ops);
	return n;
}

int vm_save_devices(struct vm *vm, struct state_writer *w)
{
	state_put_u32(w, stateful_devices(vm));
	for (int i = 0; i < vm->nr_devices; i++) {
		const struct vm_device *d = &vm->devices[i];
		if (!device_has_state(d->ops))
			continue;
		struct state_writer dev = {0};
		device_save(d->ops, d->dev, &dev);
		if (dev.err) {
			state_writer_free(&dev);
			return dev.err;
		}
		state_put_u64(w, d->base);
		state_put_u32(w, (uint32_t)dev.len);
		state_put(w, dev.buf, dev.len);
		state_writer_free(&dev);
	}
	return w->err;
}

/* Sections come in the order devices were added; there must be one for
 * each device, at its address, and each must be consumed whole. */
int vm_restore_devices(struct vm *vm, struct state_reader *r)
{
	uint32_t n = state_get_u32(r);
	if (!state_check(r, n == stateful_devices(vm))) {
		log_err("restoring devices: the state has %u, this VM %u", n, stateful_devices(vm));
		return -EINVAL;
	}
	for (int i = 0; i < vm->nr_devices; i++) {
		const struct vm_device *d = &vm->devices[i];
		if (!device_has_state(d->ops))
			continue;
		uint64_t base = state_get_u64(r);
		uint32_t len = state_get_u32(r);
		if (!state_check(r, base == d->base && len <= r->len - r->off))
			return -EINVAL;
		struct state_reader dev = state_reader_init(r->buf + r->off, len);
		r->off += len;
		int ret = device_restore(d->ops, d->dev, &dev);
		if (!ret && state_reader_done(&dev))
			ret = -EINVAL; /* state left over: made for another device */
		if (ret) {
			log_err("restoring %s at %#llx: %s", d->ops->name,
				(unsigned long long)d->base, "state does not fit this device");
			return ret;
		}
	}
	return r->err;
}
