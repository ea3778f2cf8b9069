/* Just enough ACPI Machine Language to describe a board's devices in a DSDT
 * (ACPI 6.4, chapter 20): names, integers, strings, scopes, devices and
 * resource templates. A Linux kernel built without a driver's command-line
 * probing (Debian's virtio_mmio) finds a device only this way. */
#ifndef KVMHOST_AML_H
#define KVMHOST_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* AML written into a caller's buffer; once `overflow` is set, nothing more
 * is written and the result must be thrown away. */
struct aml {
	uint8_t *buf;
	size_t len, room;
	bool overflow;
};

void aml_init(struct aml *a, uint8_t *buf, size_t room);
void aml_bytes(struct aml *a, const void *p, size_t n);

/* Name(SEG, integer) and Name(SEG, "string"); SEG is a 4-character NameSeg. */
void aml_name_int(struct aml *a, const char seg[4], uint64_t value);
void aml_name_str(struct aml *a, const char seg[4], const char *value);

/* Opens Scope(path) or Device(SEG); what follows until aml_close is inside.
 * Returns what aml_close needs. */
size_t aml_scope(struct aml *a, const char *path);
size_t aml_device(struct aml *a, const char seg[4]);
void aml_close(struct aml *a, size_t opened);
/* Opens Name(SEG, Buffer() {...}) of a resource template; closed by
 * aml_resources_end, which adds the end tag. */
size_t aml_resources(struct aml *a, const char seg[4]);
void aml_resources_end(struct aml *a, size_t opened);

/* Resource descriptors, between aml_resources and aml_close. */
void aml_memory32_fixed(struct aml *a, uint32_t base, uint32_t size, bool writable);
/* An Extended Interrupt, consumed, exclusive, as PC boards wire it. */
void aml_interrupt(struct aml *a, uint32_t gsi, bool level, bool active_low);

#endif
