/* The snapshot file: a header, a table of sections (each with its type,
 * place, length and a CRC-32), the sections, and from a page boundary the
 * guest's memory as it is in RAM, written sparsely (pages never touched are
 * holes), so that a restore can map it MAP_PRIVATE and load pages lazily.
 * Everything little-endian. The parser here touches no KVM and no file:
 * it checks every offset and length against what was read, and is fuzzed
 * (fuzz/fuzz_snapshot.c). */
#ifndef KVMHOST_SNAPSHOT_FORMAT_H
#define KVMHOST_SNAPSHOT_FORMAT_H

#include "util/error.h"
#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC	  "KVMHSNAP"
#define SNAP_VERSION	  1
#define SNAP_PAGE	  4096
#define SNAP_MAX_SECTIONS (3 + 1024)
#define SNAP_MAX_METADATA (64u << 20) /* everything before the memory image */

enum snap_section_type {
	SNAP_CONFIG = 1, /* what the guest was given: vCPUs, memory, disks */
	SNAP_KVM_VM = 2, /* irqchips, PIT, clock */
	SNAP_DEVICES = 3,
	SNAP_VCPU = 4, /* one per vCPU, `index` says which */
};

struct snap_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size;
	uint32_t nr_sections;
	uint32_t table_crc;
	uint64_t memory_offset; /* page aligned; the memory image runs to the end */
	uint64_t memory_size;
	uint64_t saved_realtime_ns; /* CLOCK_REALTIME when the VM stopped */
	char host_cpu[48];	    /* the saving host's CPU, for messages */
	uint32_t reserved;
	uint32_t header_crc; /* of this header with header_crc zero */
};

struct snap_section {
	uint32_t type;
	uint32_t index;
	uint64_t offset;
	uint64_t length;
	uint32_t crc;
	uint32_t reserved;
};

/* A checked file: where each section is in `buf`. */
struct snap_index {
	struct snap_header header;
	uint32_t nr_vcpus;
	const uint8_t *config, *kvm_vm, *devices;
	uint64_t config_len, kvm_vm_len, devices_len;
	const uint8_t *vcpu[SNAP_MAX_SECTIONS];
	uint64_t vcpu_len[SNAP_MAX_SECTIONS];
};

/* `buf` holds the file's first `len` bytes (at least up to the memory
 * image), `file_size` the whole file's. 0, or -1 with what is wrong and
 * where in err. */
int snap_parse(const uint8_t *buf, size_t len, uint64_t file_size, struct snap_index *idx,
	       struct error *err);

const char *snap_section_name(uint32_t type);

#endif
