/* A device's saved state described once, as a table of its fields (in the
 * spirit of QEMU's VMState): vmstate_save and vmstate_load both walk the
 * table, so the two directions cannot drift, and each field says in which
 * versions of the state it exists. The stream is the version (u32), then
 * each field present in that version, in table order, little-endian as
 * state.h writes it. */
#ifndef KVMHOST_VMSTATE_H
#define KVMHOST_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/state.h"

enum vmstate_kind {
	VMSTATE_UINT,	     /* an unsigned integer of `size` bytes: 1, 2, 4 or 8 */
	VMSTATE_ATOMIC_UINT, /* the same, an _Atomic one (read and written atomically) */
	VMSTATE_BOOL,	     /* a bool, as one byte 0 or 1 */
	VMSTATE_BYTES,	     /* `size` bytes */
	VMSTATE_VBYTES,	     /* a u32 count (the unsigned int at count_offset), then
				that many bytes; at most `size` */
	VMSTATE_ARRAY,	     /* `count` elements of `elem`, each `size` bytes apart,
				from the pointer at `offset` (or, with `inline_array`,
				from `offset` itself); count is the uint32_t at
				count_offset, not written */
};

struct vmstate;

struct vmstate_field {
	const char *name; /* for messages */
	enum vmstate_kind kind;
	size_t offset, size;
	size_t count_offset;	    /* VBYTES, ARRAY */
	const struct vmstate *elem; /* ARRAY */
	bool inline_array;	    /* ARRAY: the elements are in the struct */
	/* Restoring, the saved value must equal the one the device has (its
	 * shape: a disk's capacity, a vCPU count); it is not written. */
	bool must_match;
	uint32_t since, until; /* the versions that have it; until 0: all since */
};

struct vmstate {
	const char *name;
	uint32_t version;     /* what vmstate_save writes */
	uint32_t min_version; /* the oldest vmstate_load reads */
	const struct vmstate_field *fields;
	size_t nr_fields;
	/* Restoring, after every field was read and written: derived state
	 * (an interrupt line), or a check that needs more than one field.
	 * NULL: none. An error here is the restore's. */
	int (*post_load)(void *dev, uint32_t version);
	/* Saving, before any field is read: bring the state into the form the
	 * fields describe (a ring buffer made linear). NULL: none. */
	void (*pre_save)(void *dev);
};

/* Fields of `type`, for the tables. */
#define VMS_UINT(type, f, ...)                                                                     \
	{                                                                                          \
		.name = #f, .kind = VMSTATE_UINT, .offset = offsetof(type, f),                     \
		.size = sizeof(((type *)0)->f), __VA_ARGS__                                        \
	}
#define VMS_ATOMIC(type, f, ...)                                                                   \
	{                                                                                          \
		.name = #f, .kind = VMSTATE_ATOMIC_UINT, .offset = offsetof(type, f),              \
		.size = sizeof(((type *)0)->f), __VA_ARGS__                                        \
	}
#define VMS_BOOL(type, f, ...)                                                                     \
	{                                                                                          \
		.name = #f, .kind = VMSTATE_BOOL, .offset = offsetof(type, f),                     \
		.size = sizeof(bool), __VA_ARGS__                                                  \
	}
#define VMS_BYTES(type, f, n, ...)                                                                 \
	{                                                                                          \
		.name = #f, .kind = VMSTATE_BYTES, .offset = offsetof(type, f), .size = (n),       \
		__VA_ARGS__                                                                        \
	}
#define VMS_VBYTES(type, f, count, ...)                                                            \
	{                                                                                          \
		.name = #f, .kind = VMSTATE_VBYTES, .offset = offsetof(type, f),                   \
		.size = sizeof(((type *)0)->f), .count_offset = offsetof(type, count), __VA_ARGS__ \
	}
#define VMS_ARRAY(type, f, count, elem_type, desc, ...)                                            \
	{                                                                                          \
		.name = #f, .kind = VMSTATE_ARRAY, .offset = offsetof(type, f),                    \
		.size = sizeof(elem_type), .count_offset = offsetof(type, count), .elem = (desc),  \
		__VA_ARGS__                                                                        \
	}

/* Writes dev's state at d->version. */
void vmstate_save(const struct vmstate *d, void *dev, struct state_writer *w);
/* Reads a state of any version from d->min_version to d->version into dev.
 * The whole state is checked (its length, every count, every must_match)
 * before any field of dev changes; then post_load runs. 0, or -EINVAL for
 * a state this device cannot take (logged with the field's name). */
int vmstate_load(const struct vmstate *d, void *dev, struct state_reader *r);

#endif
