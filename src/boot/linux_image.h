/* Loading a Linux kernel the way the x86 boot protocol says, into guest RAM,
 * without KVM: an ELF vmlinux is entered in 64-bit mode directly; a bzImage
 * is either decompressed here (its payload becomes that ELF) or entered at
 * its 64-bit entry to decompress itself. Every offset read from a file is
 * bounds-checked. */
#ifndef KVMHOST_LINUX_LOADER_H
#define KVMHOST_LINUX_LOADER_H

#include "util/error.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LINUX_ZERO_PAGE	     0x7000ull
#define LINUX_CMDLINE	     0x20000ull
#define LINUX_CMDLINE_MAX    4096
#define LINUX_EBDA	     0x9fc00ull
#define LINUX_HIGH_MEM	     0x100000ull
#define LINUX_KERNEL_DEFAULT 0x1000000ull

struct linux_ram {
	uint8_t *low;	    /* guest physical 0 .. low_size */
	uint64_t low_size;  /* RAM below the 32-bit MMIO hole */
	uint64_t high_size; /* RAM from 4 GiB up */
};

struct linux_boot {
	const uint8_t *kernel;
	size_t kernel_size;
	const uint8_t *initrd; /* may be NULL */
	size_t initrd_size;
	const char *cmdline;
	bool guest_decompress; /* bzImage: let the kernel decompress itself */
};

struct linux_entry {
	uint64_t rip;
	uint64_t zero_page;
	uint64_t kernel_start, kernel_end; /* guest physical, what the kernel occupies */
	uint64_t initrd_addr;
	char format[64]; /* "vmlinux", "bzImage (lz4, decompressed here)", ... */
};

/* Returns 0, or -1 with a clear reason in err. */
int linux_load(const struct linux_ram *ram, const struct linux_boot *boot, struct linux_entry *out,
	       struct error *err);

/* The compression a kernel payload uses, by magic: "gzip", "xz", "lzma",
 * "bzip2", "lz4", "zstd", "lzo", or NULL. */
const char *linux_payload_format(const uint8_t *p, size_t len);
/* Decompresses a kernel payload (with the kernel's appended 32-bit size) into
 * a malloc'd buffer. Returns 0 or -1 with err. */
int linux_decompress(const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len,
		     struct error *err);

#endif
