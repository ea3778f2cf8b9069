/* A vCPU's x86 identity and first state. CPUID: KVM's list made per vCPU
 * (APIC id, hypervisor bit), trimmed by --cpu-features, and compared by
 * feature name with what a saved guest had. Entry: one GDT for the built-in
 * guest's and Linux's selectors and identity page tables over 4 GiB, so
 * either is entered directly in long mode, with no firmware. */
#include "arch/x86/cpu.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

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

/* A CPUID query that fills a struct kvm_cpuid2: grown on E2BIG. */
static struct kvm_cpuid2 *query_cpuid(int fd, unsigned long req, const char *what)
{
	for (uint32_t n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(fd, req, c) == 0)
			return c;
		int err = errno;
		free(c);
		if (err != E2BIG) {
			log_err("%s: %s", what, strerror(err));
			return NULL;
		}
	}
	return NULL;
}

#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)

/* What KVM supports, and the TSC-deadline timer, which KVM emulates but
 * leaves out of that list for userspace to add where the capability is
 * there (api.rst), as QEMU does. Without it Linux calibrates its LAPIC
 * timer against the PIT, which goes wrong where the host is slow. */
struct kvm_cpuid2 *x86_supported_cpuid(int kvm_fd)
{
	struct kvm_cpuid2 *c =
		query_cpuid(kvm_fd, KVM_GET_SUPPORTED_CPUID, "KVM_GET_SUPPORTED_CPUID");
	if (!c || ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) <= 0)
		return c;
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == 1)
			c->entries[i].ecx |= CPUID_1_ECX_TSC_DEADLINE;
	return c;
}

struct kvm_cpuid2 *x86_vcpu_cpuid(int vcpu_fd)
{
	return query_cpuid(vcpu_fd, KVM_GET_CPUID2, "KVM_GET_CPUID2");
}

int x86_set_cpuid(int vcpu_fd, const struct kvm_cpuid2 *base, uint32_t apic_id, struct error *err)
{
	size_t size = sizeof(*base) + base->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = malloc(size);
	if (!c)
		return error_set(err, STATUS_ERROR, ENOMEM, "out of memory");
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
	int ret = ioctl(vcpu_fd, KVM_SET_CPUID2, c) ? error_set_errno(err, errno, "KVM_SET_CPUID2")
						    : 0;
	free(c);
	return ret;
}

/* Feature words a guest may rely on, and the names of the bits people ask
 * about; any other missing bit is named by its place. */
static const struct feature_word {
	uint32_t leaf, subleaf;
	int reg;	  /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	uint32_t dynamic; /* bits that follow the guest's own CR4 or are ours */
	const char *names[32];
} feature_words[] = {
	{1,
	 0,
	 2,
	 (1u << 27) | (1u << 31),
	 {[0] = "sse3",
	  [1] = "pclmulqdq",
	  [9] = "ssse3",
	  [12] = "fma",
	  [13] = "cx16",
	  [19] = "sse4_1",
	  [20] = "sse4_2",
	  [21] = "x2apic",
	  [22] = "movbe",
	  [23] = "popcnt",
	  [25] = "aes",
	  [26] = "xsave",
	  [28] = "avx",
	  [29] = "f16c",
	  [30] = "rdrand"}},
	{1,
	 0,
	 3,
	 0,
	 {[4] = "tsc", [5] = "msr", [8] = "cx8", [15] = "cmov", [25] = "sse", [26] = "sse2"}},
	{7,
	 0,
	 1,
	 0,
	 {[0] = "fsgsbase",
	  [3] = "bmi1",
	  [5] = "avx2",
	  [8] = "bmi2",
	  [9] = "erms",
	  [16] = "avx512f",
	  [17] = "avx512dq",
	  [18] = "rdseed",
	  [19] = "adx",
	  [29] = "sha_ni",
	  [30] = "avx512bw",
	  [31] = "avx512vl"}},
	{7, 0, 2, 1u << 4, {[1] = "avx512vbmi", [8] = "gfni", [9] = "vaes", [10] = "vpclmulqdq"}},
	{7, 0, 3, 0, {[4] = "fsrm", [8] = "avx512_vp2intersect"}},
	{0xd, 1, 0, 0, {[0] = "xsaveopt", [1] = "xsavec", [3] = "xsaves"}},
	{0x80000001, 0, 2, 0, {[0] = "lahf_lm", [5] = "abm", [8] = "prefetchw"}},
	{0x80000001, 0, 3, 0, {[11] = "syscall", [20] = "nx", [27] = "rdtscp", [29] = "lm"}},
};

static_assert(ARRAY_SIZE(feature_words) == X86_FEATURE_WORDS, "one mask word per feature word");

/* x86-64 micro-architecture levels (as the psABI defines them), by the
 * names above: a baseline keeps its level's features and drops every other
 * named one. x2apic stays: KVM emulates it on every host. */
static const char *const level_features[] = {
	"tsc cx8 cmov msr sse sse2 syscall nx lm x2apic",
	"cx16 lahf_lm popcnt sse3 sse4_1 sse4_2 ssse3",
	"avx avx2 bmi1 bmi2 f16c fma abm movbe xsave",
	"avx512f avx512bw avx512dq avx512vl",
};

static bool find_feature(const char *name, size_t len, size_t *word, int *bit)
{
	for (size_t w = 0; w < ARRAY_SIZE(feature_words); w++)
		for (int b = 0; b < 32; b++) {
			const char *n = feature_words[w].names[b];
			if (n && strlen(n) == len && !strncmp(n, name, len)) {
				*word = w, *bit = b;
				return true;
			}
		}
	return false;
}

/* Drops every named feature not in levels 1..level. */
static void mask_to_level(struct x86_cpu_mask *m, int level)
{
	for (size_t w = 0; w < ARRAY_SIZE(feature_words); w++)
		for (int b = 0; b < 32; b++)
			if (feature_words[w].names[b])
				m->clear[w] |= 1u << b;
	for (int l = 0; l < level; l++) {
		const char *p = level_features[l];
		while (*p) {
			size_t len = strcspn(p, " "), w;
			int b;
			if (find_feature(p, len, &w, &b))
				m->clear[w] &= ~(1u << b);
			p += len + (p[len] == ' ');
		}
	}
}

void x86_cpu_feature_names(char *out, size_t len)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t w = 0; w < ARRAY_SIZE(feature_words); w++)
		for (int b = 0; b < 32 && n < len; b++)
			if (feature_words[w].names[b]) {
				int k = snprintf(out + n, len - n, "%s%s", n ? " " : "",
						 feature_words[w].names[b]);
				n += k > 0 ? (size_t)k : 0;
			}
}

int x86_cpu_mask_parse(const char *list, struct x86_cpu_mask *m, struct error *err)
{
	memset(m, 0, sizeof(*m));
	if (strlen(list) >= sizeof(m->spec))
		return error_setf(err, "too long (at most %zu bytes)", sizeof(m->spec) - 1);
	snprintf(m->spec, sizeof(m->spec), "%s", list);
	for (const char *p = list; *p;) {
		size_t len = strcspn(p, ","), w;
		int b;
		if (len == 9 && !strncmp(p, "x86-64-v", 8) && p[8] >= '1' && p[8] <= '4') {
			mask_to_level(m, p[8] - '0');
		} else if (len > 1 && p[0] == '-' && find_feature(p + 1, len - 1, &w, &b)) {
			m->clear[w] |= 1u << b;
		} else {
			char names[600];
			x86_cpu_feature_names(names, sizeof(names));
			return error_setf(err,
					  "'%.*s' is neither -FEATURE nor a baseline x86-64-v1..v4 "
					  "(features: %s)",
					  (int)len, p, names);
		}
		p += len + (p[len] == ',');
	}
	return 0;
}

void x86_cpuid_apply_mask(struct kvm_cpuid2 *c, const struct x86_cpu_mask *m)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		uint32_t *regs[] = {&e->eax, &e->ebx, &e->ecx, &e->edx};
		for (size_t w = 0; w < ARRAY_SIZE(feature_words); w++) {
			const struct feature_word *f = &feature_words[w];
			if (e->function == f->leaf &&
			    (e->index == f->subleaf ||
			     !(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX)))
				*regs[f->reg] &= ~m->clear[w];
		}
	}
}

static uint32_t cpuid_reg(const struct kvm_cpuid_entry2 *e, uint32_t n, uint32_t leaf,
			  uint32_t subleaf, int reg)
{
	for (uint32_t i = 0; i < n; i++) {
		if (e[i].function != leaf)
			continue;
		if ((e[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e[i].index != subleaf)
			continue;
		const uint32_t regs[] = {e[i].eax, e[i].ebx, e[i].ecx, e[i].edx};
		return regs[reg];
	}
	return 0;
}

int x86_cpuid_missing(const struct kvm_cpuid2 *guest, size_t len,
		      const struct kvm_cpuid2 *supported, char *out, size_t outlen)
{
	static const char reg_names[] = "abcd";
	size_t n = 0;
	uint32_t nent = (uint32_t)((len - sizeof(*guest)) / sizeof(guest->entries[0]));
	if (guest->nent < nent)
		nent = guest->nent;
	out[0] = '\0';
	for (size_t w = 0; w < ARRAY_SIZE(feature_words); w++) {
		const struct feature_word *f = &feature_words[w];
		uint32_t want = cpuid_reg(guest->entries, nent, f->leaf, f->subleaf, f->reg);
		uint32_t have =
			cpuid_reg(supported->entries, supported->nent, f->leaf, f->subleaf, f->reg);
		uint32_t lack = want & ~have & ~f->dynamic;
		for (int b = 0; b < 32 && n < outlen; b++) {
			if (!(lack & (1u << b)))
				continue;
			int k = f->names[b] ? snprintf(out + n, outlen - n, "%s%s", n ? ", " : "",
						       f->names[b])
					    : snprintf(out + n, outlen - n,
						       "%sCPUID %#x.%u e%cx bit %d", n ? ", " : "",
						       f->leaf, f->subleaf, reg_names[f->reg], b);
			n += k > 0 ? (size_t)k : 0;
		}
	}
	return n > 0;
}

int x86_write_boot_tables(uint8_t *ram, uint64_t ram_size)
{
	if (ram_size < BOOT_PML4_ADDR + 6 * 4096)
		return -EINVAL;
	/* Each entry must match the selector KVM_SET_SREGS loads for it: SVM and
	 * VMX re-read descriptors from here on iretq and task-register checks. */
	uint64_t gdt[BOOT_GDT_ENTRIES] = {
		[BOOT_CS_FLAT / 8] = 0x00af9b000000ffffull,  /* 64-bit code */
		[BOOT_CS_LINUX / 8] = 0x00af9b000000ffffull, /* __BOOT_CS of the boot protocol */
		[BOOT_DS / 8] = 0x00cf93000000ffffull,	     /* data, __BOOT_DS */
		[BOOT_TR / 8] = 0x00008b000000ffffull,	     /* busy 64-bit TSS (16 bytes) */
		[BOOT_TR / 8 + 1] = 0,
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

int x86_enter_long_mode(int vcpu_fd, uint16_t cs, uint64_t rip, uint64_t rdi, uint64_t rsi,
			struct error *err)
{
	struct kvm_sregs s;
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return error_set_errno(err, errno, "KVM_GET_SREGS");
	struct kvm_segment code = {.limit = 0xffffffff,
				   .selector = cs,
				   .type = 11,
				   .present = 1,
				   .s = 1,
				   .l = 1,
				   .g = 1};
	struct kvm_segment data = {.limit = 0xffffffff,
				   .selector = BOOT_DS,
				   .type = 3,
				   .present = 1,
				   .db = 1,
				   .s = 1,
				   .g = 1};
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.tr = (struct kvm_segment){.limit = 0xffff, .selector = BOOT_TR, .type = 11, .present = 1};
	s.gdt.base = BOOT_GDT_ADDR;
	s.gdt.limit = sizeof(uint64_t) * BOOT_GDT_ENTRIES - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
	s.cr3 = BOOT_PML4_ADDR;
	s.cr4 = CR4_PAE;
	s.efer = EFER_LME | EFER_LMA;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0)
		return error_set_errno(err, errno, "KVM_SET_SREGS");
	struct kvm_regs r = {.rip = rip, .rdi = rdi, .rsi = rsi, .rflags = 0x2};
	if (ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0)
		return error_set_errno(err, errno, "KVM_SET_REGS");
	/* Application processors would otherwise wait for INIT/SIPI. */
	struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_RUNNABLE};
	if (ioctl(vcpu_fd, KVM_SET_MP_STATE, &mp) < 0)
		return error_set_errno(err, errno, "KVM_SET_MP_STATE");
	return 0;
}

int x86_load_flat_image(uint8_t *ram, uint64_t ram_size, const struct x86_flat_image *img)
{
	if (img->footprint < img->len || ram_size < PC_FLAT_IMAGE_ADDR ||
	    ram_size - PC_FLAT_IMAGE_ADDR < img->footprint)
		return -ENOSPC;
	if (img->len) /* none: a VM whose memory something else fills */
		memcpy(ram + PC_FLAT_IMAGE_ADDR, img->data, img->len);
	return x86_write_boot_tables(ram, ram_size);
}
