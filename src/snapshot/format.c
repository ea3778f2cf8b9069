/* The snapshot file's parser (format.h): the header and the section table
 * checked - CRCs, and every offset and length against what was read and
 * the file's size - and each section put in its place, with errors that say
 * where. No I/O and no KVM: fuzz/fuzz_snapshot.c runs it on any bytes. */
#include "snapshot/format.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "util/util.h"

const char *snap_section_name(uint32_t type)
{
	switch (type) {
	case SNAP_CONFIG:
		return "config";
	case SNAP_KVM_VM:
		return "vm";
	case SNAP_DEVICES:
		return "devices";
	case SNAP_VCPU:
		return "vcpu";
	default:
		return "unknown";
	}
}

static uint32_t crc(const void *p, uint64_t n)
{
	return (uint32_t)crc32_z(crc32_z(0, NULL, 0), p, n);
}

static int check_header(const uint8_t *buf, size_t len, uint64_t file_size, struct snap_header *h,
			struct error *err)
{
	if (len < sizeof(*h))
		return error_setf(err, "truncated: %zu bytes, less than a snapshot header", len);
	memcpy(h, buf, sizeof(*h));
	if (memcmp(h->magic, SNAP_MAGIC, sizeof(h->magic)))
		return error_setf(err, "not a kvmhost snapshot (no %s at offset 0)", SNAP_MAGIC);
	if (h->version > SNAP_VERSION)
		return error_setf(
			err, "made by a newer kvmhost (format version %u; this one reads up to %u)",
			h->version, SNAP_VERSION);
	if (h->version != SNAP_VERSION || h->header_size != sizeof(*h))
		return error_setf(
			err,
			"header at offset 0: version %u, size %u: not a format this kvmhost reads",
			h->version, h->header_size);
	struct snap_header zeroed = *h;
	zeroed.header_crc = 0;
	if (crc(&zeroed, sizeof(zeroed)) != h->header_crc)
		return error_setf(err, "header at offset 0: checksum mismatch (corrupted)");
	if (h->memory_offset % SNAP_PAGE || h->memory_offset < sizeof(*h))
		return error_setf(err, "header: memory image offset %llu is not page aligned",
				  (unsigned long long)h->memory_offset);
	if (h->memory_size % SNAP_PAGE || h->memory_size == 0)
		return error_setf(err, "header: memory size %llu is not whole pages",
				  (unsigned long long)h->memory_size);
	if (h->memory_offset > file_size || file_size - h->memory_offset != h->memory_size)
		return error_setf(
			err,
			"truncated: the memory image needs %llu bytes from offset %llu, the file has "
			"%llu",
			(unsigned long long)h->memory_size, (unsigned long long)h->memory_offset,
			(unsigned long long)file_size);
	if (len < h->memory_offset)
		return error_setf(err, "truncated: %zu bytes read, the sections end at %llu", len,
				  (unsigned long long)h->memory_offset);
	if (h->nr_sections < 4 || h->nr_sections > SNAP_MAX_SECTIONS)
		return error_setf(err, "header: %u sections (a snapshot has 4 to %d)",
				  h->nr_sections, SNAP_MAX_SECTIONS);
	return 0;
}

/* Puts one checked section where it belongs in idx. */
static int place(struct snap_index *idx, const struct snap_section *s, const uint8_t *data,
		 uint32_t n, struct error *err)
{
	const uint8_t **slot = NULL;
	uint64_t *slot_len = NULL;
	if (s->type == SNAP_CONFIG)
		slot = &idx->config, slot_len = &idx->config_len;
	else if (s->type == SNAP_KVM_VM)
		slot = &idx->kvm_vm, slot_len = &idx->kvm_vm_len;
	else if (s->type == SNAP_DEVICES)
		slot = &idx->devices, slot_len = &idx->devices_len;
	else if (s->type == SNAP_VCPU && s->index < SNAP_MAX_SECTIONS)
		slot = &idx->vcpu[s->index], slot_len = &idx->vcpu_len[s->index];
	if (!slot)
		return error_setf(err, "section %u: unknown type %u", n, s->type);
	if (*slot)
		return error_setf(err, "section %u: a second %s section", n,
				  snap_section_name(s->type));
	*slot = data;
	*slot_len = s->length;
	return 0;
}

static int check_sections(const uint8_t *buf, struct snap_index *idx, struct error *err)
{
	const struct snap_header *h = &idx->header;
	uint64_t table = h->header_size,
		 table_len = (uint64_t)h->nr_sections * sizeof(struct snap_section);
	if (table_len > h->memory_offset - table)
		return error_setf(err, "section table at offset %llu: runs into the memory image",
				  (unsigned long long)table);
	if (crc(buf + table, table_len) != h->table_crc)
		return error_setf(err,
				  "section table at offset %llu: checksum mismatch (corrupted)",
				  (unsigned long long)table);
	uint64_t data_start = table + table_len;
	for (uint32_t i = 0; i < h->nr_sections; i++) {
		struct snap_section s;
		memcpy(&s, buf + table + i * sizeof(s), sizeof(s));
		const char *name = snap_section_name(s.type);
		if (s.offset < data_start || s.offset > h->memory_offset ||
		    s.length > h->memory_offset - s.offset)
			return error_setf(
				err,
				"section %u (%s) at offset %llu, %llu bytes: outside the file's sections",
				i, name, (unsigned long long)s.offset,
				(unsigned long long)s.length);
		if (crc(buf + s.offset, s.length) != s.crc)
			return error_setf(
				err,
				"section %u (%s) at offset %llu: checksum mismatch (corrupted)", i,
				name, (unsigned long long)s.offset);
		if (place(idx, &s, buf + s.offset, i, err))
			return -EINVAL;
	}
	return 0;
}

int snap_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct snap_index *idx,
	       struct error *err)
{
	memset(idx, 0, sizeof(*idx));
	if (check_header(buf, len, file_size, &idx->header, err) || check_sections(buf, idx, err))
		return -EINVAL;
	if (!idx->config || !idx->kvm_vm || !idx->devices)
		return error_setf(err, "a config, vm or devices section is missing");
	idx->nr_vcpus = idx->header.nr_sections - 3;
	for (uint32_t i = 0; i < idx->nr_vcpus; i++)
		if (!idx->vcpu[i])
			return error_setf(err, "the section of vCPU %u is missing", i);
	return 0;
}
