/* The built-in guest's memory check: tag pages, verify them after every stop, and dirty them
 * meanwhile for migrations to carry. */
#ifndef KVMHOST_GUEST_MEMCHECK_H
#define KVMHOST_GUEST_MEMCHECK_H

#include "io.h"

void memcheck_fill(u64 seed, u64 ncpus);
void memcheck_verify(void);
u64 memcheck_dirty(u64 now, u64 deadline);

#endif
