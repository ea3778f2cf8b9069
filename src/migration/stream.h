/* The migration stream: the snapshot format sent in order over a socket.
 * Every message is a header (type, length) and a payload:
 *
 *   source                          destination
 *   HELLO (version, sizes, config,  ->  checks disks and CPU, builds the VM
 *          guest CPUID)             <-  READY, or ERROR "why"
 *   PAGES / ZERO ... (rounds)       ->  into guest memory
 *   STATE (a snapshot's sections)   ->  restores vCPUs, devices, KVM
 *                                   <-  STATE_OK, or ERROR
 *   (releases its disk locks)
 *   GO                              ->  takes the disk locks
 *                                   <-  RUNNING, or ERROR
 *
 * Everything little-endian. The receiving side checks every length and
 * page number before it reads or writes (fuzz/fuzz_migration.c). */
#ifndef KVMHOST_MIGRATION_STREAM_H
#define KVMHOST_MIGRATION_STREAM_H

#include "util/error.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIG_MAGIC	   "KVMHMIGR"
#define MIG_VERSION	   1
#define MIG_PAGE	   4096
#define MIG_MAX_RUN	   2048u /* pages in one PAGES message (8 MiB) */
#define MIG_MAX_HELLO	   (1u << 20)
#define MIG_MAX_ERROR	   1024u
#define MIG_MAX_STATE	   (64ull << 20) /* as a snapshot's metadata */
#define MIG_MAX_CPUID_SIZE (64u << 10)

enum mig_msg_type {
	MIG_HELLO = 1,
	MIG_READY = 2,
	MIG_ERROR = 3,
	MIG_PAGES = 4, /* u64 first page, then whole pages */
	MIG_ZERO = 5,  /* u64 first page, u64 count: pages that are all zero */
	MIG_STATE = 6,
	MIG_STATE_OK = 7,
	MIG_GO = 8,
	MIG_RUNNING = 9,
};

struct mig_msg_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t len; /* payload bytes */
};

/* HELLO, parsed: pointers into the payload it came from. */
struct mig_hello {
	uint32_t version;
	uint32_t nr_vcpus;
	uint64_t memory_size;
	char host_cpu[48];
	const uint8_t *config;
	uint32_t config_len;
	const uint8_t *cpuid; /* struct kvm_cpuid2, as a snapshot holds it */
	uint32_t cpuid_len;
};

/* Payload of a HELLO; *out malloc'd. -ENOMEM. */
int mig_hello_build(const struct mig_hello *h, uint8_t **out, uint64_t *len);
/* -1 with what is wrong in err (a newer version says so). */
int mig_hello_parse(const uint8_t *buf, uint64_t len, struct mig_hello *h, struct error *err);

/* Reads exactly n bytes (0) or fails (-errno, -EPIPE at the end). */
typedef int (*mig_read_fn)(void *opaque, void *buf, size_t n);

/* The destination's side of the memory rounds: writes PAGES and ZERO into
 * ram until STATE arrives (*state, *state_len: the caller's to free). A
 * peer's ERROR message ends it with that text in err. */
struct mig_receiver {
	uint8_t *ram;
	uint64_t ram_size;
	mig_read_fn read;
	void *opaque;
	uint64_t bytes, pages, zero_pages; /* received so far */
};
int mig_receive_memory(struct mig_receiver *rx, uint8_t **state, uint64_t *state_len,
		       struct error *err);
/* One message the destination waits for (READY, STATE_OK, GO, RUNNING):
 * 0 if it came, -1 with err for anything else, ERROR's text included. */
int mig_expect(mig_read_fn read, void *opaque, uint32_t type, struct error *err);

const char *mig_msg_name(uint32_t type);

#endif
