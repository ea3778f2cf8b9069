/* The Intel MultiProcessor Specification 1.4's wire format: the floating
 * pointer, the configuration table header and its entries. Named and laid out
 * as the kernel's <asm/mpspec_def.h>, which is not a UAPI header (no
 * linux-libc-dev ships it), so a guest kernel reads exactly these fields. */
#ifndef KVMHOST_MPSPEC_H
#define KVMHOST_MPSPEC_H

#include <stddef.h>
#include <stdint.h>

#define MPF_SIGNATURE "_MP_"
#define MPC_SIGNATURE "PCMP"

/* The floating pointer: found by a scan of the EBDA, leads to the table. */
struct mpf_intel {
	char signature[4];     /* MPF_SIGNATURE */
	uint32_t physptr;      /* the configuration table's address */
	uint8_t length;	       /* in 16-byte units */
	uint8_t specification; /* 4: version 1.4 */
	uint8_t checksum;      /* of these 16 bytes */
	uint8_t feature1;      /* 0: a configuration table follows */
	uint8_t feature2;
	uint8_t feature3;
	uint8_t feature4;
	uint8_t feature5;
} __attribute__((packed));

/* The configuration table's header; `oemcount` entries follow it. */
struct mpc_table {
	char signature[4]; /* MPC_SIGNATURE */
	uint16_t length;   /* header and entries */
	uint8_t spec;
	uint8_t checksum; /* of `length` bytes */
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic; /* the local APICs' address */
	uint32_t reserved;
} __attribute__((packed));

/* Entry types: the first byte of every entry. */
#define MP_PROCESSOR 0
#define MP_BUS	     1
#define MP_IOAPIC    2
#define MP_INTSRC    3
#define MP_LINTSRC   4

#define CPU_ENABLED	  1
#define CPU_BOOTPROCESSOR 2

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;  /* CPUID 1 EAX: stepping, model, family */
	uint32_t featureflag; /* CPUID 1 EDX */
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6]; /* "ISA   ", space-padded */
} __attribute__((packed));

#define MPC_APIC_USABLE 0x01

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
} __attribute__((packed));

enum mp_irq_source_types {
	mp_INT = 0,
	mp_NMI = 1,
	mp_SMI = 2,
	mp_ExtINT = 3,
};

/* irqflag 0: polarity and trigger as the source bus has them. */
#define MP_IRQPOL_DEFAULT  0x0
#define MP_IRQTRIG_DEFAULT 0x0

struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
} __attribute__((packed));

#define MP_APIC_ALL 0xff

struct mpc_lintsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbusid;
	uint8_t srcbusirq;
	uint8_t destapic;
	uint8_t destapiclint; /* LINT0 or LINT1 */
} __attribute__((packed));

/* The sizes the specification gives (its tables 4-1 to 4-9). */
_Static_assert(sizeof(struct mpf_intel) == 16, "MP floating pointer");
_Static_assert(sizeof(struct mpc_table) == 44, "MP configuration table header");
_Static_assert(offsetof(struct mpc_table, oemcount) == 34, "MP entry count");
_Static_assert(offsetof(struct mpc_table, lapic) == 36, "MP local APIC address");
_Static_assert(sizeof(struct mpc_cpu) == 20, "MP processor entry");
_Static_assert(sizeof(struct mpc_bus) == 8, "MP bus entry");
_Static_assert(sizeof(struct mpc_ioapic) == 8, "MP I/O APIC entry");
_Static_assert(sizeof(struct mpc_intsrc) == 8, "MP I/O interrupt entry");
_Static_assert(sizeof(struct mpc_lintsrc) == 8, "MP local interrupt entry");

#endif
