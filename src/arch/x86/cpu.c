#include "arch/x86/cpu.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "boot/guest_blob.h"
#include "guest_abi.h"
#include "util/util.h"

#define CR0_PE	 (1u << 0)
#define CR0_MP	 (1u << 1)
#define CR0_ET	 (1u << 4)
#define CR0_NE	 (1u << 5)
#define CR0_WP	 (1u << 16)
#define CR0_AM	 (1u << 18)
#define CR0_PG	 (1u << 31)
#define CR4_PAE	 (1u << 5)
#define EFER_LME (1u << 8)
#define EFER_LMA (1u << 10)

#define PTE_P  0x1
#define PTE_RW 0x2
#define PTE_PS 0x80

struct kvm_cpuid2 *x86_supported_cpuid(int kvm_fd)
{
	for (uint32_t n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		int err = errno;
		free(c);
		if (err != E2BIG) {
			log_err("KVM_GET_SUPPORTED_CPUID: %s", strerror(err));
			return NULL;
		}
	}
	return NULL;
}

int x86_set_cpuid(int vcpu_fd, const struct kvm_cpuid2 *base, uint32_t apic_id)
{
	size_t size = sizeof(*base) + base->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = malloc(size);
	if (!c)
		return -ENOMEM;
	memcpy(c, base, size);
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0x00ffffffu) | (apic_id << 24);
			e->ecx |= 1u << 31; /* hypervisor present */
			break;
		case 0xb:
		case 0x1f:
			e->edx = apic_id;
			break;
		default:
			break;
		}
	}
	int ret = ioctl(vcpu_fd, KVM_SET_CPUID2, c) ? -errno : 0;
	if (ret)
		log_err("KVM_SET_CPUID2: %s", strerror(-ret));
	free(c);
	return ret;
}

int x86_write_boot_tables(uint8_t *ram, uint64_t ram_size)
{
	if (ram_size < BOOT_PML4_ADDR + 6 * 4096)
		return -EINVAL;
	uint64_t gdt[4] = {
		0, 0x00af9b000000ffffull, /* 64-bit code */
		0x00cf93000000ffffull,	  /* data */
		0x008f8b000000ffffull,	  /* busy TSS: entry checks want a valid TR */
	};
	memcpy(ram + BOOT_GDT_ADDR, gdt, sizeof(gdt));

	uint64_t *pml4 = (uint64_t *)(ram + BOOT_PML4_ADDR);
	uint64_t *pdpt = pml4 + 512;
	uint64_t *pd = pdpt + 512;
	memset(pml4, 0, 6 * 4096);
	pml4[0] = (BOOT_PML4_ADDR + 0x1000) | PTE_P | PTE_RW;
	for (uint64_t i = 0; i < 4; i++) {
		pdpt[i] = (BOOT_PML4_ADDR + 0x2000 + i * 0x1000) | PTE_P | PTE_RW;
		for (uint64_t j = 0; j < 512; j++)
			pd[i * 512 + j] = ((i << 30) + (j << 21)) | PTE_P | PTE_RW | PTE_PS;
	}
	return 0;
}

int x86_enter_long_mode(int vcpu_fd, uint16_t cs, uint64_t rip, uint64_t rdi, uint64_t rsi)
{
	struct kvm_sregs s;
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0) {
		int err = errno;
		log_err("KVM_GET_SREGS: %s", strerror(err));
		return -err;
	}
	struct kvm_segment code = {.limit = 0xffffffff,
				   .selector = cs,
				   .type = 11,
				   .present = 1,
				   .s = 1,
				   .l = 1,
				   .g = 1};
	struct kvm_segment data = {.limit = 0xffffffff,
				   .selector = 0x18,
				   .type = 3,
				   .present = 1,
				   .db = 1,
				   .s = 1,
				   .g = 1};
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.tr = (struct kvm_segment){.limit = 0xffff, .selector = 0x40, .type = 11, .present = 1};
	s.gdt.base = BOOT_GDT_ADDR;
	s.gdt.limit = 9 * 8 - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
	s.cr3 = BOOT_PML4_ADDR;
	s.cr4 = CR4_PAE;
	s.efer = EFER_LME | EFER_LMA;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0) {
		int err = errno;
		log_err("KVM_SET_SREGS: %s", strerror(err));
		return -err;
	}
	struct kvm_regs r = {.rip = rip, .rdi = rdi, .rsi = rsi, .rflags = 0x2};
	if (ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0) {
		int err = errno;
		log_err("KVM_SET_REGS: %s", strerror(err));
		return -err;
	}
	/* Application processors would otherwise wait for INIT/SIPI. */
	struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_RUNNABLE};
	if (ioctl(vcpu_fd, KVM_SET_MP_STATE, &mp) < 0) {
		int err = errno;
		log_err("KVM_SET_MP_STATE: %s", strerror(err));
		return -err;
	}
	return 0;
}

int x86_load_builtin_guest(uint8_t *ram, uint64_t ram_size)
{
	/* The image's bss (stacks, clocks) follows it; leave room for it. */
	uint64_t need = GUEST_LOAD_ADDR + kvmhost_guest_blob_size +
			(uint64_t)GUEST_MAX_VCPUS * GUEST_STACK_SIZE + (2u << 20);
	if (ram_size < need)
		return -ENOSPC;
	memcpy(ram + GUEST_LOAD_ADDR, kvmhost_guest_blob, kvmhost_guest_blob_size);
	return x86_write_boot_tables(ram, ram_size);
}
