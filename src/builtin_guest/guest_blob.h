/* The built-in test guest's image (built by meson into guest_blob.c): a
 * flat 64-bit binary linked at GUEST_LOAD_ADDR. */
#ifndef KVMHOST_BUILTIN_GUEST_BLOB_H
#define KVMHOST_BUILTIN_GUEST_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "guest_abi.h"

extern const unsigned char kvmhost_guest_blob[];
extern const size_t kvmhost_guest_blob_size;

/* Bytes from the load address on that the guest uses: the image, then its
 * bss (a stack per vCPU, the clocks) and 2 MiB to spare. */
static inline uint64_t builtin_guest_footprint(void)
{
	return kvmhost_guest_blob_size + (uint64_t)GUEST_MAX_VCPUS * GUEST_STACK_SIZE + (2u << 20);
}

#endif
