/* The built-in guest's kvmclock, per vCPU. */
#ifndef KVMHOST_GUEST_CLOCK_H
#define KVMHOST_GUEST_CLOCK_H

#include "io.h"

#define PVCLOCK_TSC_STABLE_BIT 0x1
#define PVCLOCK_GUEST_STOPPED  0x2

struct pvclock {
	u32 version;
	u32 pad0;
	u64 tsc_timestamp;
	u64 system_time;
	u32 tsc_to_system_mul;
	s8 tsc_shift;
	u8 flags;
	u8 pad[2];
} __attribute__((packed));

/* Turns on the calling vCPU's kvmclock; returns its page. */
struct pvclock *clock_start(u64 index);
/* ns since boot, and the page's flags as read with them. */
u64 pvclock_read(struct pvclock *c, u8 *flags);
u64 guest_now(void); /* kvmclock ns of vCPU 0: the disk code's clock */

#endif
