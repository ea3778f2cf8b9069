/* The x86 boot protocol's loader: an ELF vmlinux or a bzImage placed in
 * guest RAM, and the zero page filled (setup header, e820 map, command
 * line, initrd). It works on plain buffers, not KVM, and checks every
 * offset it reads from the image: the unit tests and the fuzz target
 * (fuzz/fuzz_linux_loader.c) run it as the VMM does. */
#include "boot/linux_image.h"

#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#include "util/bytes.h"

/* boot_params (the zero page) and its setup_header, by offset: a bzImage
 * carries the setup header at the same place, so one set of offsets serves
 * both the image and the zero page. */
#define BP(field)	     offsetof(struct boot_params, field)
#define BP_EXT_RAMDISK_IMAGE BP(ext_ramdisk_image)
#define BP_EXT_RAMDISK_SIZE  BP(ext_ramdisk_size)
#define BP_E820_ENTRIES	     BP(e820_entries)
#define BP_HDR		     BP(hdr)
#define BP_E820_TABLE	     BP(e820_table)
#define HDR_SETUP_SECTS	     BP(hdr.setup_sects)
#define HDR_SYSSIZE	     BP(hdr.syssize)
#define HDR_BOOT_FLAG	     BP(hdr.boot_flag)
#define HDR_JUMP	     BP(hdr.jump)
#define HDR_HEADER	     BP(hdr.header)
#define HDR_VERSION	     BP(hdr.version)
#define HDR_TYPE_OF_LOADER   BP(hdr.type_of_loader)
#define HDR_LOADFLAGS	     BP(hdr.loadflags)
#define HDR_RAMDISK_IMAGE    BP(hdr.ramdisk_image)
#define HDR_RAMDISK_SIZE     BP(hdr.ramdisk_size)
#define HDR_HEAP_END_PTR     BP(hdr.heap_end_ptr)
#define HDR_CMD_LINE_PTR     BP(hdr.cmd_line_ptr)
#define HDR_INITRD_ADDR_MAX  BP(hdr.initrd_addr_max)
#define HDR_KERNEL_ALIGNMENT BP(hdr.kernel_alignment)
#define HDR_XLOADFLAGS	     BP(hdr.xloadflags)
#define HDR_CMDLINE_SIZE     BP(hdr.cmdline_size)
#define HDR_PAYLOAD_OFFSET   BP(hdr.payload_offset)
#define HDR_PAYLOAD_LENGTH   BP(hdr.payload_length)
#define HDR_PREF_ADDRESS     BP(hdr.pref_address)
#define HDR_INIT_SIZE	     BP(hdr.init_size)
#define HDR_END_MAX	     BP(edd_mbr_sig_buffer) /* the header may grow up to here */
#define BOOT_FLAG_MAGIC	     0xaa55
#define HDR_MAGIC	     0x53726448 /* "HdrS" */

#define E820_RAM      1
#define E820_RESERVED 2

/* [addr, addr+len) within low RAM, overflow-safe. */
static bool fits(const struct linux_ram *ram, uint64_t addr, uint64_t len)
{
	return addr <= ram->low_size && len <= ram->low_size - addr;
}

static int load_elf(const struct linux_ram *ram, const uint8_t *f, size_t size,
		    struct linux_entry *out, struct error *err)
{
	Elf64_Ehdr eh;
	if (size < sizeof(eh))
		return error_setf(err, "the ELF kernel is truncated");
	memcpy(&eh, f, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_machine != EM_X86_64)
		return error_setf(err, "the ELF kernel is not a 64-bit x86-64 image");
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phoff > size ||
	    (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff)
		return error_setf(err, "the ELF kernel's program headers are missing or truncated");
	uint64_t lo = UINT64_MAX, hi = 0, entry = eh.e_entry;
	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, f + eh.e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset ||
		    ph.p_filesz > ph.p_memsz)
			return error_setf(err, "the ELF kernel is truncated (segment %d)", i);
		if (ph.p_paddr < LINUX_HIGH_MEM || !fits(ram, ph.p_paddr, ph.p_memsz))
			return error_setf(
				err,
				"the kernel does not fit in memory (segment at %#llx, %llu bytes; "
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
		return error_setf(err, "the ELF kernel has nothing to load");
	if (entry < lo || entry >= hi)
		return error_setf(err,
				  "the ELF kernel's entry point %#llx is outside what it loads",
				  (unsigned long long)entry);
	out->rip = entry;
	out->kernel_start = lo;
	out->kernel_end = hi;
	return 0;
}

static void e820_add(uint8_t *zp, uint64_t addr, uint64_t size, uint32_t type)
{
	uint8_t n = zp[BP_E820_ENTRIES];
	if (n >= E820_MAX_ENTRIES_ZEROPAGE || size == 0)
		return;
	struct boot_e820_entry e = {.addr = addr, .size = size, .type = type};
	memcpy(zp + BP_E820_TABLE + sizeof(e) * n, &e, sizeof(e));
	zp[BP_E820_ENTRIES] = (uint8_t)(n + 1);
}

/* What the image's setup header tells the loader. */
struct bz_header {
	size_t pm;	      /* protected-mode code starts here in the file */
	uint32_t cmdline_max; /* longest command line the kernel takes */
	uint64_t initrd_max;  /* highest address the initrd may end at */
	uint32_t init_size;   /* memory the kernel needs from its load address */
};

static int read_bz_header(const uint8_t *k, size_t ks, uint8_t *zp, struct bz_header *h,
			  struct error *err)
{
	if (ks < 1024 || get_le16(k + HDR_BOOT_FLAG) != BOOT_FLAG_MAGIC ||
	    get_le32(k + HDR_HEADER) != HDR_MAGIC)
		return error_setf(err,
				  "the kernel is neither an ELF vmlinux nor a bzImage (bad magic)");
	uint16_t version = get_le16(k + HDR_VERSION);
	unsigned setup_sects = k[HDR_SETUP_SECTS] ? k[HDR_SETUP_SECTS] : 4;
	h->pm = ((size_t)setup_sects + 1) * 512;
	if (h->pm >= ks)
		return error_setf(err, "the bzImage is truncated (no protected-mode part)");
	if (version < 0x020c)
		return error_setf(
			err,
			"the bzImage's boot protocol %u.%02u is too old (2.12 or newer is needed)",
			version >> 8, version & 0xff);
	/* What the header promises (in 16-byte paragraphs, the last one maybe
	 * partial) must be there, whoever decompresses it. */
	uint64_t sys = (uint64_t)get_le32(k + HDR_SYSSIZE) * 16;
	if (sys > ks - h->pm + 15)
		return error_setf(
			err,
			"the bzImage is truncated (its header promises %llu bytes after the setup, the "
			"image has %zu)",
			(unsigned long long)sys, ks - h->pm);
	/* The zero page starts with the image's own setup header. */
	size_t hdr_end = HDR_HEADER + k[HDR_JUMP + 1];
	if (hdr_end > HDR_END_MAX)
		hdr_end = HDR_END_MAX;
	memcpy(zp + BP_HDR, k + BP_HDR, hdr_end - BP_HDR);
	h->cmdline_max = get_le32(k + HDR_CMDLINE_SIZE);
	if (h->cmdline_max == 0 || h->cmdline_max > LINUX_CMDLINE_MAX - 1)
		h->cmdline_max = LINUX_CMDLINE_MAX - 1;
	h->initrd_max = get_le32(k + HDR_INITRD_ADDR_MAX);
	h->init_size = get_le32(k + HDR_INIT_SIZE);
	return 0;
}

/* The 64-bit boot protocol: the protected-mode part goes where the kernel
 * prefers and is entered at startup_64 to decompress itself. */
static int load_bz_in_guest(const struct linux_ram *ram, const uint8_t *k, size_t ks,
			    const struct bz_header *h, struct linux_entry *out, struct error *err)
{
	if (!(get_le16(k + HDR_XLOADFLAGS) & XLF_KERNEL_64))
		return error_setf(err, "the bzImage has no 64-bit entry point (XLF_KERNEL_64)");
	uint64_t load = get_le64(k + HDR_PREF_ADDRESS);
	uint32_t align = get_le32(k + HDR_KERNEL_ALIGNMENT);
	if (load < LINUX_KERNEL_DEFAULT)
		load = LINUX_KERNEL_DEFAULT;
	if (align && (align & (align - 1)) == 0)
		load = (load + align - 1) & ~(uint64_t)(align - 1);
	uint64_t span = h->init_size > ks - h->pm ? h->init_size : ks - h->pm;
	if (!fits(ram, load, span))
		return error_setf(
			err,
			"the kernel does not fit in memory (it needs %llu MiB from %#llx; "
			"%llu MiB of low RAM)",
			(unsigned long long)(span >> 20), (unsigned long long)load,
			(unsigned long long)(ram->low_size >> 20));
	memcpy(ram->low + load, k + h->pm, ks - h->pm);
	out->rip = load + 0x200; /* startup_64 of the decompressor */
	out->kernel_start = load;
	out->kernel_end = load + span;
	snprintf(out->format, sizeof(out->format),
		 "bzImage (decompressing itself, 64-bit boot protocol)");
	return 0;
}

/* The payload decompressed here and loaded as the ELF it is. */
static int load_bz_on_host(const struct linux_ram *ram, const uint8_t *k, size_t ks,
			   const struct bz_header *h, struct linux_entry *out, struct error *err)
{
	uint8_t *elf = NULL;
	uint32_t off = get_le32(k + HDR_PAYLOAD_OFFSET), len = get_le32(k + HDR_PAYLOAD_LENGTH);
	if (off > ks - h->pm || len > ks - h->pm - off || len == 0) {
		error_setf(err, "the bzImage is truncated (payload at %u+%u, image has %zu bytes)",
			   off, len, ks - h->pm);
		goto fail;
	}
	const char *fmt = linux_payload_format(k + h->pm + off, len);
	size_t elf_size;
	if (linux_decompress(k + h->pm + off, len, &elf, &elf_size, err))
		goto fail;
	if (load_elf(ram, elf, elf_size, out, err))
		goto fail;
	if (h->init_size && out->kernel_start + h->init_size > out->kernel_end)
		out->kernel_end = out->kernel_start + h->init_size;
	if (!fits(ram, out->kernel_start, out->kernel_end - out->kernel_start)) {
		error_setf(err, "the kernel does not fit in memory (it needs %llu MiB)",
			   (unsigned long long)((out->kernel_end) >> 20));
		goto fail;
	}
	snprintf(out->format, sizeof(out->format), "bzImage (%s, decompressed by kvmhost)", fmt);
	free(elf);
	return 0;
fail:
	free(elf);
	return -EINVAL;
}

/* Initrd: as high as the kernel allows, page aligned, above the kernel. */
static int place_initrd(const struct linux_ram *ram, const struct linux_boot *boot,
			uint64_t initrd_max, uint8_t *zp, struct linux_entry *out,
			struct error *err)
{
	uint64_t top = ram->low_size;
	if (initrd_max && initrd_max + 1ull < top)
		top = initrd_max + 1ull;
	if (boot->initrd_size > top)
		return error_setf(err, "the initrd (%zu bytes) does not fit below %#llx",
				  boot->initrd_size, (unsigned long long)top);
	uint64_t addr = (top - boot->initrd_size) & ~0xfffull;
	if (addr < out->kernel_end)
		return error_setf(err,
				  "the initrd (%zu MiB) does not fit in memory beside the kernel",
				  boot->initrd_size >> 20);
	memcpy(ram->low + addr, boot->initrd, boot->initrd_size);
	put_le32(zp + HDR_RAMDISK_IMAGE, (uint32_t)addr);
	put_le32(zp + HDR_RAMDISK_SIZE, (uint32_t)boot->initrd_size);
	put_le32(zp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(addr >> 32));
	put_le32(zp + BP_EXT_RAMDISK_SIZE, (uint32_t)((uint64_t)boot->initrd_size >> 32));
	out->initrd_addr = addr;
	return 0;
}

static int set_cmdline(const struct linux_ram *ram, const char *cmdline, uint32_t cmdline_max,
		       uint8_t *zp, struct error *err)
{
	size_t clen = cmdline ? strlen(cmdline) : 0;
	if (clen > cmdline_max)
		return error_setf(err,
				  "the command line is %zu bytes; this kernel takes at most %u",
				  clen, cmdline_max);
	memcpy(ram->low + LINUX_CMDLINE, cmdline ? cmdline : "", clen + 1);
	put_le32(zp + HDR_CMD_LINE_PTR, (uint32_t)LINUX_CMDLINE);
	put_le32(zp + HDR_CMDLINE_SIZE, (uint32_t)clen);
	zp[HDR_TYPE_OF_LOADER] = 0xff; /* undefined loader */
	zp[HDR_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
	put_le16(zp + HDR_HEAP_END_PTR, 0xfe00);
	return 0;
}

/* Memory map: the memory slots, less the BIOS holes and the 32-bit MMIO hole. */
static void write_e820(const struct linux_ram *ram, uint8_t *zp)
{
	e820_add(zp, 0, LINUX_EBDA, E820_RAM);
	e820_add(zp, LINUX_EBDA, 0x100000 - LINUX_EBDA, E820_RESERVED);
	e820_add(zp, LINUX_HIGH_MEM, ram->low_size - LINUX_HIGH_MEM, E820_RAM);
	if (ram->high_size)
		e820_add(zp, 1ull << 32, ram->high_size, E820_RAM);
}

static int load_kernel(const struct linux_ram *ram, const struct linux_boot *boot, uint8_t *zp,
		       struct bz_header *h, struct linux_entry *out, struct error *err)
{
	const uint8_t *k = boot->kernel;
	size_t ks = boot->kernel_size;
	if (ks >= 4 && !memcmp(k, ELFMAG, SELFMAG)) {
		if (boot->guest_decompress) {
			error_setf(err,
				   "--kernel-decompress guest needs a bzImage, not an ELF vmlinux");
			goto fail;
		}
		if (load_elf(ram, k, ks, out, err))
			goto fail;
		snprintf(out->format, sizeof(out->format), "vmlinux (ELF, entered in 64-bit mode)");
		put_le16(zp + HDR_BOOT_FLAG, BOOT_FLAG_MAGIC);
		put_le32(zp + HDR_HEADER, HDR_MAGIC);
		put_le32(zp + HDR_KERNEL_ALIGNMENT, 0x1000000);
		return 0;
	}
	if (read_bz_header(k, ks, zp, h, err))
		goto fail;
	return boot->guest_decompress ? load_bz_in_guest(ram, k, ks, h, out, err)
				      : load_bz_on_host(ram, k, ks, h, out, err);
fail:
	return -EINVAL;
}

int linux_load(const struct linux_ram *ram, const struct linux_boot *boot, struct linux_entry *out,
	       struct error *err)
{
	memset(out, 0, sizeof(*out));
	if (!fits(ram, LINUX_ZERO_PAGE, 4096) || !fits(ram, LINUX_CMDLINE, LINUX_CMDLINE_MAX) ||
	    ram->low_size < LINUX_KERNEL_DEFAULT) {
		return error_setf(err, "too little memory for a Linux guest");
	}
	uint8_t *zp = ram->low + LINUX_ZERO_PAGE;
	memset(zp, 0, 4096);
	/* An ELF has no setup header: the protocol's defaults before 2.03. */
	struct bz_header h = {.cmdline_max = LINUX_CMDLINE_MAX - 1, .initrd_max = 0x37ffffff};
	if (load_kernel(ram, boot, zp, &h, out, err) ||
	    set_cmdline(ram, boot->cmdline, h.cmdline_max, zp, err))
		return -EINVAL;
	if (boot->initrd_size && place_initrd(ram, boot, h.initrd_max, zp, out, err))
		return -EINVAL;
	write_e820(ram, zp);
	out->zero_page = LINUX_ZERO_PAGE;
	return 0;
}
