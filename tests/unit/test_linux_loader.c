/* The Linux loader against the boot protocol, with synthetic kernels: an ELF
 * "vmlinux" and bzImages carrying it compressed in every supported format. */
#include <bzlib.h>
#include <elf.h>
#include <errno.h>
#include <lz4.h>
#include <lzma.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include <cmocka.h>

#include "boot/linux_image.h"

#define RAM_SIZE (64u << 20)
#define KBYTES	 8192
#define MEMSZ	 16384

static uint8_t *ram;
static struct linux_ram lram;
static struct error err;

static int setup(void **state)
{
	(void)state;
	ram = calloc(1, RAM_SIZE);
	lram = (struct linux_ram){ram, RAM_SIZE, 0};
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(ram);
	return 0;
}

/* A minimal x86-64 ELF: one PT_LOAD of KBYTES at 16 MiB, entry at its start. */
static uint8_t *make_elf(size_t *len)
{
	size_t off = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr);
	uint8_t *f = calloc(1, off + KBYTES);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)f;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_machine = EM_X86_64;
	eh->e_entry = 0xffffffff81000000ull; /* virtual, as in a real vmlinux */
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = 1;
	Elf64_Phdr *ph = (Elf64_Phdr *)(f + sizeof(Elf64_Ehdr));
	ph->p_type = PT_LOAD;
	ph->p_offset = off;
	ph->p_vaddr = 0xffffffff81000000ull;
	ph->p_paddr = 0x1000000;
	ph->p_filesz = KBYTES;
	ph->p_memsz = MEMSZ;
	for (int i = 0; i < KBYTES; i++)
		f[off + i] = (uint8_t)(i * 7 + 3);
	*len = off + KBYTES;
	return f;
}

static size_t append_size(uint8_t *buf, size_t n, uint32_t size)
{
	memcpy(buf + n, &size, 4);
	return n + 4;
}

static uint8_t *compress_as(const char *fmt, const uint8_t *in, size_t len, size_t *out_len)
{
	size_t cap = len * 2 + 1024;
	uint8_t *out = malloc(cap);
	size_t n = 0;
	if (!strcmp(fmt, "gzip")) {
		z_stream s = {0};
		deflateInit2(&s, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
		s.next_in = (Bytef *)in;
		s.avail_in = (uInt)len;
		s.next_out = out;
		s.avail_out = (uInt)cap;
		assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
		n = s.total_out;
		deflateEnd(&s);
	} else if (!strcmp(fmt, "xz")) {
		assert_int_equal(
			lzma_easy_buffer_encode(6, LZMA_CHECK_CRC32, NULL, in, len, out, &n, cap),
			LZMA_OK);
	} else if (!strcmp(fmt, "lzma")) {
		lzma_options_lzma opt;
		lzma_lzma_preset(&opt, 6);
		lzma_stream s = LZMA_STREAM_INIT;
		assert_int_equal(lzma_alone_encoder(&s, &opt), LZMA_OK);
		s.next_in = in;
		s.avail_in = len;
		s.next_out = out;
		s.avail_out = cap;
		assert_int_equal(lzma_code(&s, LZMA_FINISH), LZMA_STREAM_END);
		n = s.total_out;
		lzma_end(&s);
	} else if (!strcmp(fmt, "bzip2")) {
		unsigned int dl = (unsigned)cap;
		assert_int_equal(BZ2_bzBuffToBuffCompress((char *)out, &dl, (char *)in,
							  (unsigned)len, 9, 0, 0),
				 BZ_OK);
		n = dl;
	} else if (!strcmp(fmt, "lz4")) {
		/* The legacy frame the kernel build writes (lz4 -l). */
		memcpy(out, "\x02\x21\x4c\x18", 4);
		int c = LZ4_compress_default((const char *)in, (char *)out + 8, (int)len,
					     (int)(cap - 8));
		assert_true(c > 0);
		uint32_t cs = (uint32_t)c;
		memcpy(out + 4, &cs, 4);
		n = 8 + (size_t)c;
	} else if (!strcmp(fmt, "zstd")) {
		n = ZSTD_compress(out, cap, in, len, 3);
		assert_false(ZSTD_isError(n));
	} else if (!strcmp(fmt, "lzo")) {
		memcpy(out, "\x89LZO\0\r\n\x1a\n", 9);
		n = 64;
	}
	*out_len = append_size(out, n, (uint32_t)len);
	return out;
}

/* setup_sects = 1: the protected-mode part (the payload) starts at 1024. */
static uint8_t *make_bzimage(const uint8_t *payload, size_t plen, uint16_t version, size_t *len)
{
	size_t total = 1024 + plen;
	uint8_t *b = calloc(1, total);
	b[0x1f1] = 1;
	uint16_t flag = 0xaa55;
	memcpy(b + 0x1fe, &flag, 2);
	b[0x201] = 0x66; /* header runs to 0x268 */
	memcpy(b + 0x202, "HdrS", 4);
	memcpy(b + 0x206, &version, 2);
	uint32_t initrd_max = 0x7fffffff, align = 0x200000, cmdline_size = 2047, off = 0,
		 init_size = 0x40000;
	uint32_t pl = (uint32_t)plen;
	uint16_t xlf = 1;
	uint64_t pref = 0x1000000;
	memcpy(b + 0x22c, &initrd_max, 4);
	memcpy(b + 0x230, &align, 4);
	memcpy(b + 0x236, &xlf, 2);
	memcpy(b + 0x238, &cmdline_size, 4);
	memcpy(b + 0x248, &off, 4);
	memcpy(b + 0x24c, &pl, 4);
	memcpy(b + 0x258, &pref, 8);
	memcpy(b + 0x260, &init_size, 4);
	uint32_t syssize = (uint32_t)((plen + 15) / 16);
	memcpy(b + 0x1f4, &syssize, 4);
	memcpy(b + 1024, payload, plen);
	*len = total;
	return b;
}

static void check_kernel_loaded(void)
{
	for (int i = 0; i < KBYTES; i++)
		assert_int_equal(ram[0x1000000 + i], (uint8_t)(i * 7 + 3));
	for (int i = KBYTES; i < MEMSZ; i++)
		assert_int_equal(ram[0x1000000 + i], 0); /* bss zeroed */
}

static uint32_t zp32(size_t off)
{
	uint32_t v;
	memcpy(&v, ram + LINUX_ZERO_PAGE + off, 4);
	return v;
}

static void vmlinux_direct(void **state)
{
	(void)state;
	size_t len;
	uint8_t *elf = make_elf(&len);
	memset(ram + 0x1000000, 0xee, MEMSZ);
	struct linux_boot b = {elf, len, NULL, 0, "console=ttyS0 root=/dev/vda", false};
	struct linux_entry e;
	assert_int_equal(linux_load(&lram, &b, &e, &err), 0);
	check_kernel_loaded();
	assert_int_equal(e.rip, 0x1000000); /* the virtual entry, made physical */
	assert_int_equal(e.zero_page, LINUX_ZERO_PAGE);
	assert_int_equal(zp32(0x1fe) & 0xffff, 0xaa55);
	assert_memory_equal(ram + LINUX_ZERO_PAGE + 0x202, "HdrS", 4);
	assert_int_equal(ram[LINUX_ZERO_PAGE + 0x210], 0xff); /* type_of_loader */
	assert_int_equal(zp32(0x228), LINUX_CMDLINE);
	assert_string_equal((char *)ram + LINUX_CMDLINE, "console=ttyS0 root=/dev/vda");
	/* e820: low RAM, the BIOS hole, RAM from 1 MiB to the end. */
	assert_int_equal(ram[LINUX_ZERO_PAGE + 0x1e8], 3);
	uint64_t a, sz;
	uint32_t type;
	uint8_t *t = ram + LINUX_ZERO_PAGE + 0x2d0;
	memcpy(&a, t + 40, 8);
	memcpy(&sz, t + 48, 8);
	memcpy(&type, t + 56, 4);
	assert_int_equal(a, 0x100000);
	assert_int_equal(a + sz, RAM_SIZE);
	assert_int_equal(type, 1);
	memcpy(&type, t + 36, 4);
	assert_int_equal(type, 2);
	free(elf);
}

static void every_format(void **state)
{
	(void)state;
	static const char *const fmts[] = {"gzip", "xz", "lzma", "bzip2", "lz4", "zstd"};
	size_t elen;
	uint8_t *elf = make_elf(&elen);
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		size_t plen, blen;
		uint8_t *payload = compress_as(fmts[i], elf, elen, &plen);
		assert_string_equal(linux_payload_format(payload, plen), fmts[i]);
		uint8_t *bz = make_bzimage(payload, plen, 0x020f, &blen);
		memset(ram + 0x1000000, 0xee, MEMSZ);
		struct linux_boot b = {bz, blen, NULL, 0, "quiet", false};
		struct linux_entry e;
		assert_int_equal(linux_load(&lram, &b, &e, &err), 0);
		check_kernel_loaded();
		assert_int_equal(e.rip, 0x1000000);
		assert_non_null(strstr(e.format, fmts[i]));
		/* The zero page starts with the image's own setup header. */
		assert_int_equal(ram[LINUX_ZERO_PAGE + 0x1f1], 1);
		assert_int_equal(zp32(0x24c), (uint32_t)plen);
		/* A corrupt payload is refused, not loaded. */
		payload[plen / 2] ^= 0xff;
		payload[plen / 2 + 1] ^= 0x5a;
		memcpy(bz + 1024, payload, plen);
		int r = linux_load(&lram, &b, &e, &err);
		if (r == 0) /* some formats have no checksum over every byte: still loadable */
			assert_non_null(strstr(e.format, fmts[i]));
		else
			assert_non_null(strstr(err.msg, "corrupt"));
		free(payload);
		free(bz);
	}
	free(elf);
}

static void guest_decompress(void **state)
{
	(void)state;
	size_t elen, plen, blen;
	uint8_t *elf = make_elf(&elen);
	uint8_t *payload = compress_as("gzip", elf, elen, &plen);
	uint8_t *bz = make_bzimage(payload, plen, 0x020f, &blen);
	struct linux_boot b = {bz, blen, NULL, 0, "", true};
	struct linux_entry e;
	assert_int_equal(linux_load(&lram, &b, &e, &err), 0);
	assert_int_equal(e.rip, 0x1000200); /* 64-bit entry of the decompressor */
	assert_memory_equal(ram + 0x1000000, payload, plen);
	uint16_t zero = 0;
	memcpy(bz + 0x236, &zero, 2); /* no XLF_KERNEL_64 */
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "64-bit entry"));
	b = (struct linux_boot){elf, elen, NULL, 0, "", true};
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "needs a bzImage"));
	free(elf);
	free(payload);
	free(bz);
}

static void initrd_placement(void **state)
{
	(void)state;
	size_t elen;
	uint8_t *elf = make_elf(&elen);
	size_t ilen = 3 * 4096 + 123;
	uint8_t *initrd = malloc(ilen);
	memset(initrd, 0x42, ilen);
	struct linux_boot b = {elf, elen, initrd, ilen, "", false};
	struct linux_entry e;
	assert_int_equal(linux_load(&lram, &b, &e, &err), 0);
	assert_int_equal(e.initrd_addr % 4096, 0);
	assert_true(e.initrd_addr >= e.kernel_end);
	assert_true(e.initrd_addr + ilen <= RAM_SIZE);
	assert_int_equal(zp32(0x218), e.initrd_addr);
	assert_int_equal(zp32(0x21c), ilen);
	assert_memory_equal(ram + e.initrd_addr, initrd, ilen);
	/* Below the kernel's initrd_addr_max. */
	size_t plen, blen;
	uint8_t *payload = compress_as("gzip", elf, elen, &plen);
	uint8_t *bz = make_bzimage(payload, plen, 0x020f, &blen);
	uint32_t max = 0x2000000 - 1;
	memcpy(bz + 0x22c, &max, 4);
	b = (struct linux_boot){bz, blen, initrd, ilen, "", false};
	assert_int_equal(linux_load(&lram, &b, &e, &err), 0);
	assert_true(e.initrd_addr + ilen <= 0x2000000);
	/* Too big to fit. */
	b.initrd_size = RAM_SIZE;
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "initrd"));
	free(payload);
	free(bz);
	free(initrd);
	free(elf);
}

static void rejections(void **state)
{
	(void)state;
	struct linux_entry e;
	size_t elen, plen, blen;
	uint8_t *elf = make_elf(&elen);
	uint8_t junk[4096] = {1, 2, 3};
	struct linux_boot b = {junk, sizeof(junk), NULL, 0, "", false};
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "bad magic"));

	uint8_t *payload = compress_as("zstd", elf, elen, &plen);
	uint8_t *bz = make_bzimage(payload, plen, 0x020b, &blen);
	b = (struct linux_boot){bz, blen, NULL, 0, "", false};
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "too old"));
	free(bz);
	bz = make_bzimage(payload, plen, 0x020f, &blen);
	b = (struct linux_boot){bz, blen - 100, NULL, 0, "", false}; /* truncated */
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "truncated"));
	/* The same, decompressing itself: the header's syssize gives it away. */
	b.guest_decompress = true;
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "promises"));
	b = (struct linux_boot){bz, blen, NULL, 0, "", true};
	assert_int_equal(linux_load(&lram, &b, &e, &err), 0);
	b = (struct linux_boot){bz, 800, NULL, 0, "", false};
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	/* A command line longer than the kernel takes. */
	char *longcmd = malloc(3000);
	memset(longcmd, 'a', 2999);
	longcmd[2999] = 0;
	b = (struct linux_boot){bz, blen, NULL, 0, longcmd, false};
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "command line"));
	free(longcmd);
	free(payload);
	free(bz);

	payload = compress_as("lzo", elf, elen, &plen);
	bz = make_bzimage(payload, plen, 0x020f, &blen);
	b = (struct linux_boot){bz, blen, NULL, 0, "", false};
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "LZO"));
	free(payload);
	free(bz);

	/* An impossible size trailer. */
	payload = compress_as("gzip", elf, elen, &plen);
	uint32_t huge = 0xffffffffu;
	memcpy(payload + plen - 4, &huge, 4);
	bz = make_bzimage(payload, plen, 0x020f, &blen);
	b = (struct linux_boot){bz, blen, NULL, 0, "", false};
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "impossible size"));
	free(payload);
	free(bz);

	/* Does not fit in memory; not x86-64; truncated program headers. */
	Elf64_Phdr *ph = (Elf64_Phdr *)(elf + sizeof(Elf64_Ehdr));
	ph->p_memsz = 1ull << 40;
	b = (struct linux_boot){elf, elen, NULL, 0, "", false};
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "does not fit in memory"));
	ph->p_memsz = MEMSZ;
	ph->p_offset = UINT64_MAX - 10;
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "truncated"));
	((Elf64_Ehdr *)elf)->e_machine = EM_AARCH64;
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "x86-64"));
	b.kernel_size = 40;
	assert_int_equal(linux_load(&lram, &b, &e, &err), -EINVAL);
	free(elf);

	/* Too little RAM at all. */
	struct linux_ram tiny = {ram, 1 << 20, 0};
	elf = make_elf(&elen);
	b = (struct linux_boot){elf, elen, NULL, 0, "", false};
	assert_int_equal(linux_load(&tiny, &b, &e, &err), -EINVAL);
	free(elf);
}

static void high_memory_e820(void **state)
{
	(void)state;
	size_t elen;
	uint8_t *elf = make_elf(&elen);
	struct linux_ram big = {ram, RAM_SIZE, 1ull << 30};
	struct linux_boot b = {elf, elen, NULL, 0, "", false};
	struct linux_entry e;
	assert_int_equal(linux_load(&big, &b, &e, &err), 0);
	assert_int_equal(ram[LINUX_ZERO_PAGE + 0x1e8], 4);
	uint64_t a, sz;
	memcpy(&a, ram + LINUX_ZERO_PAGE + 0x2d0 + 60, 8);
	memcpy(&sz, ram + LINUX_ZERO_PAGE + 0x2d0 + 68, 8);
	assert_int_equal(a, 1ull << 32);
	assert_int_equal(sz, 1ull << 30);
	free(elf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(vmlinux_direct),   cmocka_unit_test(every_format),
		cmocka_unit_test(guest_decompress), cmocka_unit_test(initrd_placement),
		cmocka_unit_test(rejections),	    cmocka_unit_test(high_memory_e820),
	};
	return cmocka_run_group_tests_name("linux_loader", tests, setup, teardown);
}
