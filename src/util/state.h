/* Device and VM state as a byte stream, for snapshots and migration: a
 * writer that grows its buffer, and a reader that never reads past the end
 * (a short or hostile stream sets an error and reads zeros). Every device's
 * save/restore pair is written against these. */
#ifndef KVMHOST_STATE_H
#define KVMHOST_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct state_writer {
	uint8_t *buf;
	size_t len, cap;
	int err; /* first error (-ENOMEM); later puts are dropped */
};

struct state_reader {
	const uint8_t *buf;
	size_t len, off;
	int err; /* -EINVAL once a get ran past the end or a check failed */
};

void state_put(struct state_writer *w, const void *p, size_t n);
void state_writer_free(struct state_writer *w);

static inline void state_put_u8(struct state_writer *w, uint8_t v)
{
	state_put(w, &v, sizeof(v));
}
static inline void state_put_u16(struct state_writer *w, uint16_t v)
{
	state_put(w, &v, sizeof(v));
}
static inline void state_put_u32(struct state_writer *w, uint32_t v)
{
	state_put(w, &v, sizeof(v));
}
static inline void state_put_u64(struct state_writer *w, uint64_t v)
{
	state_put(w, &v, sizeof(v));
}

static inline struct state_reader state_reader_init(const void *buf, size_t len)
{
	return (struct state_reader){.buf = buf, .len = len};
}
/* Copies n bytes, or zeros and an error if fewer are left. */
void state_get(struct state_reader *r, void *p, size_t n);
uint8_t state_get_u8(struct state_reader *r);
uint16_t state_get_u16(struct state_reader *r);
uint32_t state_get_u32(struct state_reader *r);
uint64_t state_get_u64(struct state_reader *r);
/* Marks the stream bad unless `ok`; returns r->err == 0. */
bool state_check(struct state_reader *r, bool ok);
/* 0 if every byte was consumed and nothing failed, else -EINVAL. */
int state_reader_done(const struct state_reader *r);

#endif
