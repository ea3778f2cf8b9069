/* The AML encoder: byte codes and encodings from ACPI 6.4 sections 20.2
 * (AML grammar) and 6.4 (resource descriptors). A package's length comes
 * before its contents and takes 1 to 4 bytes depending on that length, so
 * aml_close moves the contents back once their size is known. */
#include "arch/x86/aml.h"

#include <string.h>

#include "util/bytes.h"

#define AML_ZERO_OP	    0x00
#define AML_ONE_OP	    0x01
#define AML_NAME_OP	    0x08
#define AML_BYTE_PREFIX	    0x0a
#define AML_WORD_PREFIX	    0x0b
#define AML_DWORD_PREFIX    0x0c
#define AML_STRING_PREFIX   0x0d
#define AML_QWORD_PREFIX    0x0e
#define AML_SCOPE_OP	    0x10
#define AML_BUFFER_OP	    0x11
#define AML_EXT_OP_PREFIX   0x5b
#define AML_DEVICE_OP	    0x82 /* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR	    '\\'
#define PKG_LENGTH_MAX_SIZE 4

#define RES_MEMORY32_FIXED 0x86
#define RES_EXT_INTERRUPT  0x89
#define RES_END_TAG	   0x79

void aml_init(struct aml *a, uint8_t *buf, size_t room)
{
	*a = (struct aml){.buf = buf, .room = room};
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->overflow || n > a->room - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void le(struct aml *a, uint64_t v, size_t n)
{
	uint8_t b[8];
	put_le64(b, v);
	aml_bytes(a, b, n);
}

/* The shortest encoding of a constant, as ASL compilers emit it. */
static void integer(struct aml *a, uint64_t v)
{
	if (v <= 1) {
		byte(a, v ? AML_ONE_OP : AML_ZERO_OP);
	} else if (v <= UINT8_MAX) {
		byte(a, AML_BYTE_PREFIX);
		le(a, v, 1);
	} else if (v <= UINT16_MAX) {
		byte(a, AML_WORD_PREFIX);
		le(a, v, 2);
	} else if (v <= UINT32_MAX) {
		byte(a, AML_DWORD_PREFIX);
		le(a, v, 4);
	} else {
		byte(a, AML_QWORD_PREFIX);
		le(a, v, 8);
	}
}

static void name_seg(struct aml *a, const char seg[4])
{
	aml_bytes(a, seg, 4);
}

void aml_name_int(struct aml *a, const char seg[4], uint64_t value)
{
	byte(a, AML_NAME_OP);
	name_seg(a, seg);
	integer(a, value);
}

void aml_name_str(struct aml *a, const char seg[4], const char *value)
{
	byte(a, AML_NAME_OP);
	name_seg(a, seg);
	byte(a, AML_STRING_PREFIX);
	aml_bytes(a, value, strlen(value) + 1);
}

/* Room for the longest PkgLength; aml_close gives back what it does not use. */
static size_t open_package(struct aml *a)
{
	size_t at = a->len;
	static const uint8_t room[PKG_LENGTH_MAX_SIZE];
	aml_bytes(a, room, sizeof(room));
	return at;
}

void aml_close(struct aml *a, size_t opened)
{
	if (a->overflow)
		return;
	size_t body = a->len - opened - PKG_LENGTH_MAX_SIZE, n = 1;
	/* The length counts its own bytes: one holds 6 bits, more hold 4 + 8 each. */
	while (n < PKG_LENGTH_MAX_SIZE && body + n >= (n == 1 ? 1u << 6 : 1u << (4 + 8 * (n - 1))))
		n++;
	size_t total = body + n;
	if (total >= 1u << 28) {
		a->overflow = true;
		return;
	}
	uint8_t *p = a->buf + opened;
	memmove(p + n, p + PKG_LENGTH_MAX_SIZE, body);
	if (n == 1) {
		p[0] = (uint8_t)total;
	} else {
		p[0] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
		for (size_t i = 1; i < n; i++)
			p[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	a->len -= PKG_LENGTH_MAX_SIZE - n;
}

size_t aml_scope(struct aml *a, const char *path)
{
	byte(a, AML_SCOPE_OP);
	size_t at = open_package(a);
	if (path[0] == AML_ROOT_CHAR)
		byte(a, (uint8_t)*path++);
	name_seg(a, path);
	return at;
}

size_t aml_device(struct aml *a, const char seg[4])
{
	byte(a, AML_EXT_OP_PREFIX);
	byte(a, AML_DEVICE_OP);
	size_t at = open_package(a);
	name_seg(a, seg);
	return at;
}

/* A Buffer's size is an integer before its bytes, known only at the end: a
 * DWord is reserved for it and filled in by aml_resources_end. */
size_t aml_resources(struct aml *a, const char seg[4])
{
	byte(a, AML_NAME_OP);
	name_seg(a, seg);
	byte(a, AML_BUFFER_OP);
	size_t at = open_package(a);
	byte(a, AML_DWORD_PREFIX);
	le(a, 0, 4);
	return at;
}

void aml_resources_end(struct aml *a, size_t opened)
{
	static const uint8_t end_tag[2] = {RES_END_TAG, 0}; /* 0: no checksum */
	aml_bytes(a, end_tag, sizeof(end_tag));
	if (a->overflow)
		return;
	size_t size_at = opened + PKG_LENGTH_MAX_SIZE + 1;
	put_le32(a->buf + size_at, (uint32_t)(a->len - size_at - 4));
	aml_close(a, opened);
}

void aml_memory32_fixed(struct aml *a, uint32_t base, uint32_t size, bool writable)
{
	byte(a, RES_MEMORY32_FIXED);
	le(a, 9, 2); /* the length of what follows */
	byte(a, writable ? 1 : 0);
	le(a, base, 4);
	le(a, size, 4);
}

void aml_interrupt(struct aml *a, uint32_t gsi, bool level, bool active_low)
{
	enum { CONSUMER = 1 << 0, EDGE = 1 << 1, ACTIVE_LOW = 1 << 2 };
	byte(a, RES_EXT_INTERRUPT);
	le(a, 6, 2); /* flags, a count of one, the interrupt */
	byte(a, (uint8_t)(CONSUMER | (level ? 0 : EDGE) | (active_low ? ACTIVE_LOW : 0)));
	byte(a, 1);
	le(a, gsi, 4);
}
