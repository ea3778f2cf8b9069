/* The state stream (state.h): the writer grows by doubling and keeps its
 * first error; the reader zero-fills and marks the stream bad once a read
 * would pass the end, so restore code reads every field and checks once. */
#include "util/state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void state_put(struct state_writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	if (n > w->cap - w->len) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap - w->len < n)
			cap *= 2;
		uint8_t *grown = realloc(w->buf, cap);
		if (!grown) {
			w->err = -ENOMEM;
			return;
		}
		w->buf = grown;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void state_writer_free(struct state_writer *w)
{
	free(w->buf);
	*w = (struct state_writer){0};
}

void state_get(struct state_reader *r, void *p, size_t n)
{
	if (r->err || n > r->len - r->off) {
		r->err = -EINVAL;
		memset(p, 0, n);
		return;
	}
	memcpy(p, r->buf + r->off, n);
	r->off += n;
}

uint8_t state_get_u8(struct state_reader *r)
{
	uint8_t v;
	state_get(r, &v, sizeof(v));
	return v;
}

uint16_t state_get_u16(struct state_reader *r)
{
	uint16_t v;
	state_get(r, &v, sizeof(v));
	return v;
}

uint32_t state_get_u32(struct state_reader *r)
{
	uint32_t v;
	state_get(r, &v, sizeof(v));
	return v;
}

uint64_t state_get_u64(struct state_reader *r)
{
	uint64_t v;
	state_get(r, &v, sizeof(v));
	return v;
}

bool state_check(struct state_reader *r, bool ok)
{
	if (!ok)
		r->err = -EINVAL;
	return r->err == 0;
}

int state_reader_done(const struct state_reader *r)
{
	return r->err || r->off != r->len ? -EINVAL : 0;
}
