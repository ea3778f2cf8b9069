/* Dirty page logging for live migration. KVM logs what vCPUs write once a
 * slot has KVM_MEM_LOG_DIRTY_PAGES (KVM_GET_DIRTY_LOG returns and clears
 * it); what the VMM's devices write (virtqueue buffers, used rings) KVM
 * never sees, so guest_mem carries a bitmap of its own for those. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/dirty_log.h"

#include "core/vm.h"
#include "util/util.h"

#define PAGE_SHIFT 12

static uint64_t bitmap_words(uint64_t bytes)
{
	return ((bytes >> PAGE_SHIFT) + 63) / 64;
}

uint64_t vm_dirty_bitmap_words(const struct vm *vm)
{
	return bitmap_words(vm->ram_size);
}

static int set_logging(struct vm *vm, bool on)
{
	for (int i = 0; i < vm->mem.nr; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = (uint32_t)i,
			.flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			.guest_phys_addr = vm->mem.regions[i].gpa,
			.memory_size = vm->mem.regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)vm->mem.regions[i].hva,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
			int err = errno;
			log_err("dirty logging %s on memory slot %d: %s", on ? "on" : "off", i,
				strerror(err));
			return -err;
		}
	}
	return 0;
}

int vm_dirty_log_start(struct vm *vm)
{
	uint64_t words = bitmap_words(vm->ram_size);
	/* Kept to vm_destroy: a device may still hold the pointer it loaded
	 * when logging stops, and marking a stale bitmap is harmless. */
	if (!vm->device_dirty && !(vm->device_dirty = calloc(words, sizeof(uint64_t))))
		return -ENOMEM;
	for (uint64_t i = 0; i < words; i++)
		atomic_store(&vm->device_dirty[i], 0);
	atomic_store_explicit(&vm->mem.dirty, vm->device_dirty, memory_order_release);
	int r = set_logging(vm, true);
	if (r)
		vm_dirty_log_stop(vm);
	return r;
}

void vm_dirty_log_stop(struct vm *vm)
{
	atomic_store_explicit(&vm->mem.dirty, NULL, memory_order_release);
	(void)set_logging(vm, false); /* said where it fails; nothing else to undo */
}

int vm_dirty_log_fetch(struct vm *vm, uint64_t *bitmap)
{
	uint64_t words = bitmap_words(vm->ram_size), *slot = calloc(words, sizeof(uint64_t));
	if (!slot)
		return -ENOMEM;
	for (int i = 0; i < vm->mem.nr; i++) {
		const struct mem_region *m = &vm->mem.regions[i];
		/* Regions start at MiB multiples of RAM: whole words of the map. */
		uint64_t first = (uint64_t)(m->hva - vm->ram) >> PAGE_SHIFT,
			 n = bitmap_words(m->size);
		struct kvm_dirty_log log = {.slot = (uint32_t)i, .dirty_bitmap = slot};
		memset(slot, 0, n * sizeof(uint64_t));
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
			int err = errno;
			free(slot);
			log_err("KVM_GET_DIRTY_LOG on slot %d: %s", i, strerror(err));
			return -err;
		}
		for (uint64_t w = 0; w < n; w++)
			bitmap[first / 64 + w] |= slot[w];
	}
	free(slot);
	for (uint64_t w = 0; w < words; w++)
		bitmap[w] |= atomic_exchange(&vm->device_dirty[w], 0);
	return 0;
}

void vm_pages_in_use(const struct vm *vm, int pm_fd, uint64_t first, uint64_t n, uint64_t *flags)
{
	uint64_t vpage = ((uintptr_t)vm->ram >> PAGE_SHIFT) + first;
	bool from_file = vm->cfg.image && vm->cfg.image->fd >= 0;
	if (from_file || pm_fd < 0 ||
	    read_full_at(pm_fd, flags, n * sizeof(*flags), vpage * sizeof(*flags)))
		for (uint64_t i = 0; i < n; i++)
			flags[i] = VM_PAGE_IN_USE;
}
