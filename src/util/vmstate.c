/* Saving and restoring by a device's field table (vmstate.h). One walk
 * serves all three passes - save, check, load - so what is written and
 * what is read are the same fields in the same order by construction. */
#include "util/vmstate.h"

#include <errno.h>
#include <string.h>

#include "util/util.h"

enum pass { SAVE, CHECK, LOAD };

struct walk {
	enum pass pass;
	uint32_t version;
	struct state_writer *w;
	struct state_reader *r;
	const char *failed; /* the field a check failed on */
};

static bool present(const struct vmstate_field *f, uint32_t version)
{
	return version >= f->since && (!f->until || version <= f->until);
}

static uint64_t load_uint(const uint8_t *p, size_t size, bool atomic)
{
	switch (size) {
	case 1:
		return atomic ? __atomic_load_n(p, __ATOMIC_RELAXED) : *p;
	case 2:
		return atomic ? __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED)
			      : *(const uint16_t *)p;
	case 4:
		return atomic ? __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED)
			      : *(const uint32_t *)p;
	default:
		return atomic ? __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED)
			      : *(const uint64_t *)p;
	}
}

static void store_uint(uint8_t *p, size_t size, bool atomic, uint64_t v)
{
	switch (size) {
	case 1:
		atomic ? __atomic_store_n(p, (uint8_t)v, __ATOMIC_RELAXED)
		       : (void)(*p = (uint8_t)v);
		break;
	case 2:
		atomic ? __atomic_store_n((uint16_t *)p, (uint16_t)v, __ATOMIC_RELAXED)
		       : (void)(*(uint16_t *)p = (uint16_t)v);
		break;
	case 4:
		atomic ? __atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_RELAXED)
		       : (void)(*(uint32_t *)p = (uint32_t)v);
		break;
	default:
		atomic ? __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED)
		       : (void)(*(uint64_t *)p = v);
		break;
	}
}

/* A little-endian integer of `size` bytes from the stream. */
static uint64_t get_uint(struct state_reader *r, size_t size)
{
	uint64_t v = 0;
	state_get(r, &v, size);
	return v;
}

static bool fail(struct walk *k, const struct vmstate_field *f)
{
	if (!k->failed)
		k->failed = f->name;
	k->r->err = -EINVAL;
	return false;
}

static bool walk_uint(struct walk *k, const struct vmstate_field *f, uint8_t *p)
{
	bool atomic = f->kind == VMSTATE_ATOMIC_UINT;
	if (k->pass == SAVE) {
		uint64_t v = load_uint(p, f->size, atomic);
		state_put(k->w, &v, f->size);
		return true;
	}
	uint64_t v = get_uint(k->r, f->size);
	if (k->r->err)
		return fail(k, f);
	if (f->must_match)
		return v == load_uint(p, f->size, atomic) || fail(k, f);
	if (k->pass == LOAD)
		store_uint(p, f->size, atomic, v);
	return true;
}

static bool walk_bool(struct walk *k, const struct vmstate_field *f, uint8_t *p)
{
	if (k->pass == SAVE) {
		state_put_u8(k->w, *(bool *)p);
		return true;
	}
	uint8_t v = state_get_u8(k->r);
	if (k->r->err || v > 1 || (f->must_match && (v != 0) != *(bool *)p))
		return fail(k, f);
	if (k->pass == LOAD && !f->must_match)
		*(bool *)p = v;
	return true;
}

/* n bytes at p: written, compared (must_match), skipped or read. */
static bool walk_bytes(struct walk *k, const struct vmstate_field *f, uint8_t *p, size_t n)
{
	if (k->pass == SAVE) {
		state_put(k->w, p, n);
		return true;
	}
	struct state_reader *r = k->r;
	if (r->err || n > r->len - r->off)
		return fail(k, f);
	if (f->must_match && memcmp(r->buf + r->off, p, n))
		return fail(k, f);
	if (k->pass == LOAD && !f->must_match)
		memcpy(p, r->buf + r->off, n);
	r->off += n;
	return true;
}

static bool walk_vbytes(struct walk *k, const struct vmstate_field *f, uint8_t *dev)
{
	uint32_t *count = (uint32_t *)(dev + f->count_offset);
	if (k->pass == SAVE) {
		state_put_u32(k->w, *count);
		return walk_bytes(k, f, dev + f->offset, *count);
	}
	uint32_t n = state_get_u32(k->r);
	if (k->r->err || n > f->size || !walk_bytes(k, f, dev + f->offset, n))
		return fail(k, f);
	if (k->pass == LOAD)
		*count = n;
	return true;
}

static bool walk_fields(struct walk *k, const struct vmstate *d, uint8_t *dev);

static bool walk_array(struct walk *k, const struct vmstate_field *f, uint8_t *dev)
{
	uint8_t *base = f->inline_array ? dev + f->offset : *(uint8_t **)(dev + f->offset);
	uint32_t n = *(const uint32_t *)(dev + f->count_offset);
	for (uint32_t i = 0; i < n; i++)
		if (!walk_fields(k, f->elem, base + (size_t)i * f->size))
			return false;
	return true;
}

static bool walk_fields(struct walk *k, const struct vmstate *d, uint8_t *dev)
{
	for (size_t i = 0; i < d->nr_fields; i++) {
		const struct vmstate_field *f = &d->fields[i];
		if (!present(f, k->version))
			continue;
		uint8_t *p = dev + f->offset;
		bool ok = f->kind == VMSTATE_UINT || f->kind == VMSTATE_ATOMIC_UINT
				  ? walk_uint(k, f, p)
			  : f->kind == VMSTATE_BOOL   ? walk_bool(k, f, p)
			  : f->kind == VMSTATE_BYTES  ? walk_bytes(k, f, p, f->size)
			  : f->kind == VMSTATE_VBYTES ? walk_vbytes(k, f, dev)
						      : walk_array(k, f, dev);
		if (!ok)
			return false;
	}
	return true;
}

void vmstate_save(const struct vmstate *d, void *dev, struct state_writer *w)
{
	if (d->pre_save)
		d->pre_save(dev);
	struct walk k = {.pass = SAVE, .version = d->version, .w = w};
	state_put_u32(w, d->version);
	walk_fields(&k, d, (uint8_t *)dev); /* SAVE only reads dev */
}

int vmstate_load(const struct vmstate *d, void *dev, struct state_reader *r)
{
	uint32_t version = state_get_u32(r);
	if (!state_check(r, version >= d->min_version && version <= d->version)) {
		log_err("restoring %s: state version %u (this kvmhost reads %u to %u)", d->name,
			version, d->min_version, d->version);
		return -EINVAL;
	}
	/* Everything is checked on a copy of the reader before dev changes. */
	struct state_reader probe = *r;
	struct walk k = {.pass = CHECK, .version = version, .r = &probe};
	if (!walk_fields(&k, d, dev)) {
		log_err("restoring %s (version %u): %s does not fit this device", d->name, version,
			k.failed ? k.failed : "the state");
		r->err = -EINVAL;
		return -EINVAL;
	}
	k = (struct walk){.pass = LOAD, .version = version, .r = r};
	walk_fields(&k, d, dev);
	if (r->err)
		return r->err;
	return d->post_load ? d->post_load(dev, version) : 0;
}
