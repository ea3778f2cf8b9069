#include "boot/linux_image.h"

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* boot_params (the zero page) and its setup_header, by offset. */
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_EXT_CMD_LINE_PTR  0x0c8
#define BP_E820_ENTRIES	     0x1e8
#define BP_HDR		     0x1f1
#define BP_E820_TABLE	     0x2d0
#define BP_E820_MAX	     128

#define HDR_SETUP_SECTS	     0x1f1
#define HDR_BOOT_FLAG	     0x1fe
#define HDR_JUMP	     0x200
#define HDR_HEADER	     0x202
#define HDR_VERSION	     0x206
#define HDR_TYPE_OF_LOADER   0x210
#define HDR_LOADFLAGS	     0x211
#define HDR_RAMDISK_IMAGE    0x218
#define HDR_RAMDISK_SIZE     0x21c
#define HDR_HEAP_END_PTR     0x224
#define HDR_CMD_LINE_PTR     0x228
#define HDR_INITRD_ADDR_MAX  0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE	     0x234
#define HDR_XLOADFLAGS	     0x236
#define HDR_CMDLINE_SIZE     0x238
#define HDR_PAYLOAD_OFFSET   0x248
#define HDR_PAYLOAD_LENGTH   0x24c
#define HDR_PREF_ADDRESS     0x258
#define HDR_INIT_SIZE	     0x260
#define HDR_END_MAX	     0x290

#define LOADED_HIGH   0x01
#define CAN_USE_HEAP  0x80
#define XLF_KERNEL_64 0x01
#define E820_RAM      1
#define E820_RESERVED 2

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		snprintf(err, errlen, __VA_ARGS__);                                                \
		goto fail;                                                                         \
	} while (0)

static uint16_t get16(const uint8_t *p, size_t off)
{
	uint16_t v;
	memcpy(&v, p + off, 2);
	return v;
}

static uint32_t get32(const uint8_t *p, size_t off)
{
	uint32_t v;
	memcpy(&v, p + off, 4);
	return v;
}

static uint64_t get64(const uint8_t *p, size_t off)
{
	uint64_t v;
	memcpy(&v, p + off, 8);
	return v;
}

static void put16(uint8_t *p, size_t off, uint16_t v)
{
	memcpy(p + off, &v, 2);
}
static void put32(uint8_t *p, size_t off, uint32_t v)
{
	memcpy(p + off, &v, 4);
}
static void put64(uint8_t *p, size_t off, uint64_t v)
{
	memcpy(p + off, &v, 8);
}

/* [addr, addr+len) within low RAM, overflow-safe. */
static bool fits(const struct linux_ram *ram, uint64_t addr, uint64_t len)
{
	return addr <= ram->low_size && len <= ram->low_size - addr;
}

static int load_elf(const struct linux_ram *ram, const uint8_t *f, size_t size,
		    struct linux_entry *out, char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	if (size < sizeof(eh))
		FAIL("the ELF kernel is truncated");
	memcpy(&eh, f, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64)
		FAIL("the ELF kernel is not a 64-bit x86-64 image");
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phoff > size ||
	    (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff)
		FAIL("the ELF kernel's program headers are missing or truncated");
	uint64_t lo = UINT64_MAX, hi = 0, entry = eh.e_entry;
	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, f + eh.e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset ||
		    ph.p_filesz > ph.p_memsz)
			FAIL("the ELF kernel is truncated (segment %d)", i);
		if (ph.p_paddr < LINUX_HIGH_MEM || !fits(ram, ph.p_paddr, ph.p_memsz))
			FAIL("the kernel does not fit in memory (segment at %#llx, %llu bytes; "
			     "%llu MiB of low RAM)",
			     (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz,
			     (unsigned long long)(ram->low_size >> 20));
		memcpy(ram->low + ph.p_paddr, f + ph.p_offset, ph.p_filesz);
		memset(ram->low + ph.p_paddr + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
		/* A virtual entry point maps to physical like its segment does. */
		if (entry >= ph.p_vaddr && entry - ph.p_vaddr < ph.p_memsz &&
		    ph.p_vaddr != ph.p_paddr)
			entry = entry - ph.p_vaddr + ph.p_paddr;
		if (ph.p_paddr < lo)
			lo = ph.p_paddr;
		if (ph.p_paddr + ph.p_memsz > hi)
			hi = ph.p_paddr + ph.p_memsz;
	}
	if (hi == 0)
		FAIL("the ELF kernel has nothing to load");
	if (entry < lo || entry >= hi)
		FAIL("the ELF kernel's entry point %#llx is outside what it loads",
		     (unsigned long long)entry);
	out->rip = entry;
	out->kernel_start = lo;
	out->kernel_end = hi;
	return 0;
fail:
	return -1;
}

static void e820_add(uint8_t *zp, uint64_t addr, uint64_t size, uint32_t type)
{
	uint8_t n = zp[BP_E820_ENTRIES];
	if (n >= BP_E820_MAX || size == 0)
		return;
	uint8_t *e = zp + BP_E820_TABLE + 20 * n;
	put64(e, 0, addr);
	put64(e, 8, size);
	put32(e, 16, type);
	zp[BP_E820_ENTRIES] = (uint8_t)(n + 1);
}

int linux_load(const struct linux_ram *ram, const struct linux_boot *boot, struct linux_entry *out,
	       char *err, size_t errlen)
{
	const uint8_t *k = boot->kernel;
	size_t ks = boot->kernel_size;
	uint8_t *elf = NULL;
	memset(out, 0, sizeof(*out));
	if (!fits(ram, LINUX_ZERO_PAGE, 4096) || !fits(ram, LINUX_CMDLINE, LINUX_CMDLINE_MAX) ||
	    ram->low_size < LINUX_KERNEL_DEFAULT)
		FAIL("too little memory for a Linux guest");
	uint8_t *zp = ram->low + LINUX_ZERO_PAGE;
	memset(zp, 0, 4096);
	uint32_t cmdline_max = LINUX_CMDLINE_MAX - 1;
	uint64_t initrd_max = 0x37ffffff; /* the protocol's default before 2.03 */

	if (ks >= 4 && !memcmp(k, ELFMAG, SELFMAG)) {
		if (boot->guest_decompress)
			FAIL("--kernel-decompress guest needs a bzImage, not an ELF vmlinux");
		if (load_elf(ram, k, ks, out, err, errlen))
			goto fail;
		out->format = "vmlinux (ELF, entered in 64-bit mode)";
		put16(zp, HDR_BOOT_FLAG, 0xaa55);
		put32(zp, HDR_HEADER, 0x53726448);
		put32(zp, HDR_KERNEL_ALIGNMENT, 0x1000000);
	} else {
		if (ks < 1024 || get16(k, HDR_BOOT_FLAG) != 0xaa55 ||
		    get32(k, HDR_HEADER) != 0x53726448)
			FAIL("the kernel is neither an ELF vmlinux nor a bzImage (bad magic)");
		uint16_t version = get16(k, HDR_VERSION);
		unsigned setup_sects = k[HDR_SETUP_SECTS] ? k[HDR_SETUP_SECTS] : 4;
		size_t pm = ((size_t)setup_sects + 1) * 512; /* protected-mode code starts here */
		if (pm >= ks)
			FAIL("the bzImage is truncated (no protected-mode part)");
		if (version < 0x020c)
			FAIL("the bzImage's boot protocol %u.%02u is too old (2.12 or newer is needed)",
			     version >> 8, version & 0xff);
		/* The zero page starts with the image's own setup header. */
		size_t hdr_end = HDR_HEADER + k[HDR_JUMP + 1];
		if (hdr_end > HDR_END_MAX)
			hdr_end = HDR_END_MAX;
		memcpy(zp + BP_HDR, k + BP_HDR, hdr_end - BP_HDR);
		cmdline_max = get32(k, HDR_CMDLINE_SIZE);
		if (cmdline_max == 0 || cmdline_max > LINUX_CMDLINE_MAX - 1)
			cmdline_max = LINUX_CMDLINE_MAX - 1;
		initrd_max = get32(k, HDR_INITRD_ADDR_MAX);
		uint32_t init_size = get32(k, HDR_INIT_SIZE);
		if (boot->guest_decompress) {
			if (!(get16(k, HDR_XLOADFLAGS) & XLF_KERNEL_64))
				FAIL("the bzImage has no 64-bit entry point (XLF_KERNEL_64)");
			uint64_t load = get64(k, HDR_PREF_ADDRESS);
			uint32_t align = get32(k, HDR_KERNEL_ALIGNMENT);
			if (load < LINUX_KERNEL_DEFAULT)
				load = LINUX_KERNEL_DEFAULT;
			if (align && (align & (align - 1)) == 0)
				load = (load + align - 1) & ~(uint64_t)(align - 1);
			uint64_t span = init_size > ks - pm ? init_size : ks - pm;
			if (!fits(ram, load, span))
				FAIL("the kernel does not fit in memory (it needs %llu MiB from %#llx; "
				     "%llu MiB of low RAM)",
				     (unsigned long long)(span >> 20), (unsigned long long)load,
				     (unsigned long long)(ram->low_size >> 20));
			memcpy(ram->low + load, k + pm, ks - pm);
			out->rip = load + 0x200; /* startup_64 of the decompressor */
			out->kernel_start = load;
			out->kernel_end = load + span;
			out->format = "bzImage (decompressing itself, 64-bit boot protocol)";
		} else {
			uint32_t off = get32(k, HDR_PAYLOAD_OFFSET),
				 len = get32(k, HDR_PAYLOAD_LENGTH);
			if (off > ks - pm || len > ks - pm - off || len == 0)
				FAIL("the bzImage is truncated (payload at %u+%u, image has %zu bytes)",
				     off, len, ks - pm);
			const char *fmt = linux_payload_format(k + pm + off, len);
			size_t elf_size;
			if (linux_decompress(k + pm + off, len, &elf, &elf_size, err, errlen))
				goto fail;
			if (load_elf(ram, elf, elf_size, out, err, errlen))
				goto fail;
			if (init_size && out->kernel_start + init_size > out->kernel_end)
				out->kernel_end = out->kernel_start + init_size;
			if (!fits(ram, out->kernel_start, out->kernel_end - out->kernel_start))
				FAIL("the kernel does not fit in memory (it needs %llu MiB)",
				     (unsigned long long)((out->kernel_end) >> 20));
			static char desc[64];
			snprintf(desc, sizeof(desc), "bzImage (%s, decompressed by kvmhost)", fmt);
			out->format = desc;
		}
	}

	/* Command line. */
	size_t clen = boot->cmdline ? strlen(boot->cmdline) : 0;
	if (clen > cmdline_max)
		FAIL("the command line is %zu bytes; this kernel takes at most %u", clen,
		     cmdline_max);
	memcpy(ram->low + LINUX_CMDLINE, boot->cmdline ? boot->cmdline : "", clen + 1);
	put32(zp, HDR_CMD_LINE_PTR, (uint32_t)LINUX_CMDLINE);
	put32(zp, HDR_CMDLINE_SIZE, (uint32_t)clen);
	zp[HDR_TYPE_OF_LOADER] = 0xff; /* undefined loader */
	zp[HDR_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
	put16(zp, HDR_HEAP_END_PTR, 0xfe00);

	/* Initrd: as high as the kernel allows, page aligned, above the kernel. */
	if (boot->initrd_size) {
		uint64_t top = ram->low_size;
		if (initrd_max && initrd_max + 1ull < top)
			top = initrd_max + 1ull;
		if (boot->initrd_size > top)
			FAIL("the initrd (%zu bytes) does not fit below %#llx", boot->initrd_size,
			     (unsigned long long)top);
		uint64_t addr = (top - boot->initrd_size) & ~0xfffull;
		if (addr < out->kernel_end)
			FAIL("the initrd (%zu MiB) does not fit in memory beside the kernel",
			     boot->initrd_size >> 20);
		memcpy(ram->low + addr, boot->initrd, boot->initrd_size);
		put32(zp, HDR_RAMDISK_IMAGE, (uint32_t)addr);
		put32(zp, HDR_RAMDISK_SIZE, (uint32_t)boot->initrd_size);
		put32(zp, BP_EXT_RAMDISK_IMAGE, (uint32_t)(addr >> 32));
		put32(zp, BP_EXT_RAMDISK_SIZE, (uint32_t)((uint64_t)boot->initrd_size >> 32));
		out->initrd_addr = addr;
	}

	/* Memory map: the memory slots, less the BIOS holes and the 32-bit MMIO hole. */
	e820_add(zp, 0, LINUX_EBDA, E820_RAM);
	e820_add(zp, LINUX_EBDA, 0x100000 - LINUX_EBDA, E820_RESERVED);
	e820_add(zp, LINUX_HIGH_MEM, ram->low_size - LINUX_HIGH_MEM, E820_RAM);
	if (ram->high_size)
		e820_add(zp, 1ull << 32, ram->high_size, E820_RAM);
	out->zero_page = LINUX_ZERO_PAGE;
	free(elf);
	return 0;
fail:
	free(elf);
	return -1;
}
