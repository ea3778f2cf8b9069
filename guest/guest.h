/* Shared helpers of the built-in guest. */
#ifndef KVMHOST_GUEST_H
#define KVMHOST_GUEST_H

#include "guest_abi.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef signed char s8;

static inline void outb(u16 port, u8 v)
{
	__asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}
static inline void outl(u16 port, u32 v)
{
	__asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}
static inline u32 inl(u16 port)
{
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline u32 config(u32 key)
{
	outl(TESTDEV_CONFIG, key);
	return inl(TESTDEV_CONFIG);
}

/* A 64-bit result, then the event that says what it is. */
static inline void report(u32 event, u64 value)
{
	outl(TESTDEV_RESULT, (u32)value);
	outl(TESTDEV_RESULT, (u32)(value >> 32));
	outl(TESTDEV_EVENT, event);
}

u64 guest_now(void); /* kvmclock ns of the calling vCPU */
void print_str(const char *s);
void print_line(const char *a, u64 x, const char *b, u64 y, const char *c);
void disk_main(void);
void disk_bench(void);
void memcheck_fill(u64 seed, u64 ncpus);
void memcheck_verify(void);
u64 memcheck_dirty(u64 now, u64 deadline);
void virtio_replay(void);
void net_init(void);
void net_poll(void);

#endif
