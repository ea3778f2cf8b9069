#ifndef KVMHOST_GUEST_BLOB_H
#define KVMHOST_GUEST_BLOB_H

#include <stddef.h>

/* The built-in guest, a flat image linked at GUEST_LOAD_ADDR (built by meson). */
extern const unsigned char kvmhost_guest_blob[];
extern const size_t kvmhost_guest_blob_size;

#endif
