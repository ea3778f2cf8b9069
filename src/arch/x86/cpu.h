/* x86-64 vCPU setup: CPUID (KVM's, made per vCPU, masked by --cpu-features)
 * and the entry state for guests the VMM enters directly in long mode. */
#ifndef KVMHOST_X86_CPU_H
#define KVMHOST_X86_CPU_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/pc_layout.h"
#include "util/error.h"

struct vm;
struct vcpu;

#define BOOT_GDT_ADDR  0x500
#define BOOT_PML4_ADDR 0x9000 /* then PDPT and four page directories */

/* KVM_GET_SUPPORTED_CPUID, grown on E2BIG. Caller frees. */
struct kvm_cpuid2 *x86_supported_cpuid(int kvm_fd);
/* Per-vCPU copy with its APIC id and the hypervisor bit, then KVM_SET_CPUID2. */
int x86_set_cpuid(int vcpu_fd, const struct kvm_cpuid2 *base, uint32_t apic_id, struct error *err);

/* What a vCPU's CPUID is now (KVM_GET_CPUID2). Caller frees. On nested PVM
 * hosts this holds more than KVM_GET_SUPPORTED_CPUID said: compare guests
 * with this, not with that. */
struct kvm_cpuid2 *x86_vcpu_cpuid(int vcpu_fd);
/* The features `guest` (len bytes, as saved) has and `supported` (what
 * this host gives a guest) lacks, named in out; returns whether any. */
int x86_cpuid_missing(const struct kvm_cpuid2 *guest, size_t len,
		      const struct kvm_cpuid2 *supported, char *out, size_t outlen);

/* CPUID features hidden from a guest (`--cpu-features`), one word per
 * feature word the VMM knows by name; `spec` as the user gave it. */
#define X86_FEATURE_WORDS 8
struct x86_cpu_mask {
	uint32_t clear[X86_FEATURE_WORDS];
	char spec[256];
};
/* "-cx16,-avx512f" or a baseline "x86-64-v2" (and more -FEATUREs after
 * it); -1 with what is wrong in err. */
int x86_cpu_mask_parse(const char *list, struct x86_cpu_mask *m, struct error *err);
void x86_cpuid_apply_mask(struct kvm_cpuid2 *c, const struct x86_cpu_mask *m);
/* The names parse knows, space-separated. */
void x86_cpu_feature_names(char *out, size_t len);

/* Writes GDT and identity page tables (first 4 GiB, 2 MiB pages) into guest RAM. */
int x86_write_boot_tables(uint8_t *ram, uint64_t ram_size);
#define BOOT_CS_FLAT	 0x08
#define BOOT_CS_LINUX	 0x10
#define BOOT_DS		 0x18
#define BOOT_TR		 0x40
#define BOOT_GDT_ENTRIES (BOOT_TR / 8 + 2)
/* 64-bit entry at rip with rdi/rsi arguments; makes the vCPU runnable. */
int x86_enter_long_mode(int vcpu_fd, uint16_t cs, uint64_t rip, uint64_t rdi, uint64_t rsi,
			struct error *err);

/* A flat 64-bit image loaded at PC_FLAT_IMAGE_ADDR and entered there in
 * long mode (BOOT_CS_FLAT) on every vCPU, with rdi = the vCPU's index and
 * rsi = the count: the built-in guest. `footprint` bytes from the load
 * address on are its own (image, bss, stacks). */
struct x86_flat_image {
	const uint8_t *data;
	uint64_t len;
	uint64_t footprint;
};

/* -ENOSPC where its footprint does not fit in RAM. */
int x86_load_flat_image(uint8_t *ram, uint64_t ram_size, const struct x86_flat_image *img);

#endif
