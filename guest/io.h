/* The built-in guest's port I/O and its side of the test device: settings
 * by key, and 64-bit results followed by the event that names them. */
#ifndef KVMHOST_GUEST_IO_H
#define KVMHOST_GUEST_IO_H

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

static inline u8 inb(u16 port)
{
	u8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void wrmsr(u32 msr, u64 v)
{
	__asm__ volatile("wrmsr" ::"c"(msr), "a"((u32)v), "d"((u32)(v >> 32)));
}

#endif
