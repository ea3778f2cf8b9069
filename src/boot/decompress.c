/* Kernel payload decompression through Debian's libraries. The kernel build
 * appends the uncompressed size as a little-endian u32: we size the output by
 * it and stop there, which also bounds what a hostile image can make us
 * allocate. */
#include <bzlib.h>
#include <errno.h>
#include <lz4.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "util/util.h"

#include "boot/linux_image.h"

#define MAX_KERNEL	 (1ull << 30)
#define LZ4_LEGACY_MAGIC 0x184c2102u
#define LZ4_LEGACY_BLOCK (8u << 20)

const char *linux_payload_format(const uint8_t *p, size_t len)
{
	if (len >= 2 && p[0] == 0x1f && (p[1] == 0x8b || p[1] == 0x9e))
		return "gzip";
	if (len >= 6 && !memcmp(p,
				"\xfd"
				"7zXZ\0",
				6))
		return "xz";
	if (len >= 3 && !memcmp(p, "BZh", 3))
		return "bzip2";
	if (len >= 4 && !memcmp(p, "\x02\x21\x4c\x18", 4))
		return "lz4";
	if (len >= 4 && !memcmp(p, "\x28\xb5\x2f\xfd", 4))
		return "zstd";
	if (len >= 4 && !memcmp(p, "\x89LZO", 4))
		return "lzo";
	if (len >= 3 && p[0] == 0x5d && p[1] == 0 && p[2] == 0)
		return "lzma";
	return NULL;
}

static int gunzip(const uint8_t *in, size_t len, uint8_t *out, size_t out_len)
{
	z_stream s = {0};
	if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK)
		return -1;
	s.next_in = (Bytef *)in;
	s.avail_in = (uInt)len;
	s.next_out = out;
	s.avail_out = (uInt)out_len;
	int r = inflate(&s, Z_FINISH);
	size_t got = s.total_out;
	inflateEnd(&s);
	return (r == Z_STREAM_END || r == Z_BUF_ERROR) && got == out_len ? 0 : -1;
}

static int unxz(const uint8_t *in, size_t len, uint8_t *out, size_t out_len, bool alone)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_ret r =
		alone ? lzma_alone_decoder(&s, UINT64_MAX) : lzma_stream_decoder(&s, UINT64_MAX, 0);
	if (r != LZMA_OK)
		return -1;
	s.next_in = in;
	s.avail_in = len;
	s.next_out = out;
	s.avail_out = out_len;
	r = lzma_code(&s, LZMA_FINISH);
	size_t got = s.total_out;
	lzma_end(&s);
	/* The appended size may follow the stream: a full buffer is success. */
	return (r == LZMA_STREAM_END || got == out_len) && got == out_len ? 0 : -1;
}

static int bunzip(const uint8_t *in, size_t len, uint8_t *out, size_t out_len)
{
	bz_stream s = {0};
	if (BZ2_bzDecompressInit(&s, 0, 0) != BZ_OK)
		return -1;
	s.next_in = (char *)in;
	s.avail_in = (unsigned)len;
	s.next_out = (char *)out;
	s.avail_out = (unsigned)out_len;
	int r = BZ2_bzDecompress(&s);
	size_t got = out_len - s.avail_out;
	BZ2_bzDecompressEnd(&s);
	return (r == BZ_STREAM_END || r == BZ_OK) && got == out_len ? 0 : -1;
}

/* The kernel's LZ4 is the legacy frame: magic, then (u32 size, block)... */
static int unlz4(const uint8_t *in, size_t len, uint8_t *out, size_t out_len)
{
	size_t pos = 0, got = 0;
	while (got < out_len) {
		if (len - pos < 4)
			return -1;
		uint32_t v;
		memcpy(&v, in + pos, 4);
		pos += 4;
		if (v == LZ4_LEGACY_MAGIC)
			continue;
		if (v > len - pos || v > LZ4_COMPRESSBOUND(LZ4_LEGACY_BLOCK))
			return -1;
		size_t room = out_len - got < LZ4_LEGACY_BLOCK ? out_len - got : LZ4_LEGACY_BLOCK;
		int n = LZ4_decompress_safe((const char *)in + pos, (char *)out + got, (int)v,
					    (int)room);
		if (n < 0)
			return -1;
		got += (size_t)n;
		pos += v;
	}
	return 0;
}

static int unzstd(const uint8_t *in, size_t len, uint8_t *out, size_t out_len)
{
	ZSTD_DStream *s = ZSTD_createDStream();
	if (!s)
		return -1;
	ZSTD_inBuffer ib = {in, len, 0};
	ZSTD_outBuffer ob = {out, out_len, 0};
	int ret = -1;
	while (ob.pos < out_len) {
		size_t r = ZSTD_decompressStream(s, &ob, &ib);
		if (ZSTD_isError(r))
			break;
		if (r == 0 || ib.pos == ib.size) {
			ret = ob.pos == out_len ? 0 : -1;
			break;
		}
	}
	if (ob.pos == out_len)
		ret = 0;
	ZSTD_freeDStream(s);
	return ret;
}

int linux_decompress(const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len,
		     struct error *err)
{
	*out = NULL;
	const char *fmt = linux_payload_format(in, in_len);
	uint8_t *buf = NULL;
	if (!fmt) {
		error_setf(err, "the kernel payload is not in a compression format kvmhost knows");
		goto fail;
	}
	if (!strcmp(fmt, "lzo")) {
		error_setf(
			err,
			"LZO-compressed kernels are not supported (gzip, xz, lzma, bzip2, lz4 and zstd "
			"are); use --kernel-decompress guest");
		goto fail;
	}
	if (in_len < 8) {
		error_setf(err, "the kernel payload is truncated");
		goto fail;
	}
	uint32_t size;
	memcpy(&size, in + in_len - 4, 4);
	if (size == 0 || size > MAX_KERNEL) {
		error_setf(err, "the kernel payload claims an impossible size (%u bytes)", size);
		goto fail;
	}
	buf = malloc(size);
	if (!buf) {
		error_setf(err, "out of memory for a %u-byte kernel", size);
		goto fail;
	}
	int r;
	if (!strcmp(fmt, "gzip"))
		r = gunzip(in, in_len, buf, size);
	else if (!strcmp(fmt, "xz"))
		r = unxz(in, in_len, buf, size, false);
	else if (!strcmp(fmt, "lzma"))
		r = unxz(in, in_len, buf, size, true);
	else if (!strcmp(fmt, "bzip2"))
		r = bunzip(in, in_len, buf, size);
	else if (!strcmp(fmt, "lz4"))
		r = unlz4(in, in_len, buf, size);
	else
		r = unzstd(in, in_len, buf, size);
	if (r) {
		error_setf(err, "the %s kernel payload is corrupt or truncated", fmt);
		goto fail;
	}
	*out = buf;
	*out_len = size;
	return 0;
fail:
	free(buf);
	return -EINVAL;
}
