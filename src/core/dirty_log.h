/* What a migration or snapshot asks of guest memory: which pages were
 * written (KVM's dirty log and the devices' own marks), and which were
 * ever touched. Implemented in core/dirty_log.c. */
#ifndef KVMHOST_CORE_DIRTY_LOG_H
#define KVMHOST_CORE_DIRTY_LOG_H

#include <stdint.h>

struct vm;

/* Dirty page logging for a migration: KVM's log of what vCPUs wrote, and
 * the devices' own marks (gm_mark_dirty). fetch ORs into `bitmap` (one bit
 * per 4 KiB page of RAM, from offset 0) what was written since the last
 * fetch, or since start. Any thread; stop undoes start. */
int vm_dirty_log_start(struct vm *vm);
int vm_dirty_log_fetch(struct vm *vm, uint64_t *bitmap);
/* How many 64-bit words fetch's bitmap has. */
uint64_t vm_dirty_bitmap_words(const struct vm *vm);
void vm_dirty_log_stop(struct vm *vm);
/* Which of RAM's pages [first, first+n) may hold data, from pm_fd
 * (/proc/self/pagemap): an anonymous page neither present nor swapped was
 * never touched, and reading it would only map the zero page (most of a
 * large, idle guest). A snapshot-backed guest's pages all may. flags[i] &
 * VM_PAGE_IN_USE says; every flag is set when pagemap cannot be read. */
#define VM_PAGE_IN_USE ((1ull << 63) | (1ull << 62)) /* present | swapped */
void vm_pages_in_use(const struct vm *vm, int pm_fd, uint64_t first, uint64_t n, uint64_t *flags);

#endif
