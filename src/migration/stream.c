/* The migration stream's messages (stream.h): HELLO built and parsed, and
 * the destination's receiving side, which checks every length and page
 * number before it writes guest memory. It reads through a callback, not a
 * socket, so the unit tests and fuzz/fuzz_migration.c feed it from memory. */
#include "migration/stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/guest_mem.h"
#include "util/state.h"
#include "util/util.h"

const char *mig_msg_name(uint32_t type)
{
	static const char *const names[] = {
		[MIG_HELLO] = "HELLO",	     [MIG_READY] = "READY", [MIG_ERROR] = "ERROR",
		[MIG_PAGES] = "PAGES",	     [MIG_ZERO] = "ZERO",   [MIG_STATE] = "STATE",
		[MIG_STATE_OK] = "STATE_OK", [MIG_GO] = "GO",	    [MIG_RUNNING] = "RUNNING",
	};
	return type < ARRAY_SIZE(names) && names[type] ? names[type] : "unknown";
}

int mig_hello_build(const struct mig_hello *h, uint8_t **out, uint64_t *len)
{
	struct state_writer w = {0};
	state_put(&w, MIG_MAGIC, 8);
	state_put_u32(&w, h->version);
	state_put_u32(&w, h->nr_vcpus);
	state_put_u64(&w, h->memory_size);
	state_put(&w, h->host_cpu, sizeof(h->host_cpu));
	state_put_u32(&w, h->config_len);
	state_put(&w, h->config, h->config_len);
	state_put_u32(&w, h->cpuid_len);
	state_put(&w, h->cpuid, h->cpuid_len);
	if (w.err) {
		state_writer_free(&w);
		return w.err;
	}
	*out = w.buf;
	*len = w.len;
	return 0;
}

/* A length-prefixed blob of at most `max` bytes, pointed at in place. */
static const uint8_t *get_blob(struct state_reader *r, uint32_t *len, uint32_t max)
{
	*len = state_get_u32(r);
	if (!state_check(r, *len <= max && *len <= r->len - r->off))
		return NULL;
	const uint8_t *p = r->buf + r->off;
	r->off += *len;
	return p;
}

int mig_hello_parse(const uint8_t *buf, uint64_t len, struct mig_hello *h, struct error *err)
{
	struct state_reader r = state_reader_init(buf, len);
	char magic[8];
	memset(h, 0, sizeof(*h));
	state_get(&r, magic, sizeof(magic));
	if (r.err || memcmp(magic, MIG_MAGIC, sizeof(magic)))
		return error_setf(err, "not a kvmhost migration stream (no %s)", MIG_MAGIC);
	h->version = state_get_u32(&r);
	if (h->version != MIG_VERSION)
		return error_setf(err,
				  "the source speaks migration version %u, this kvmhost version %d",
				  h->version, MIG_VERSION);
	h->nr_vcpus = state_get_u32(&r);
	h->memory_size = state_get_u64(&r);
	state_get(&r, h->host_cpu, sizeof(h->host_cpu));
	h->host_cpu[sizeof(h->host_cpu) - 1] = '\0';
	h->config = get_blob(&r, &h->config_len, MIG_MAX_HELLO);
	h->cpuid = get_blob(&r, &h->cpuid_len, MIG_MAX_CPUID_SIZE);
	if (r.err || state_reader_done(&r))
		return error_setf(err, "HELLO: malformed (%llu bytes)", (unsigned long long)len);
	if (h->memory_size == 0 || h->memory_size % MIG_PAGE || h->cpuid_len < 8)
		return error_setf(err, "HELLO: memory %llu bytes, CPUID %u bytes: malformed",
				  (unsigned long long)h->memory_size, h->cpuid_len);
	return 0;
}

static int read_hdr(mig_read_fn read, void *opaque, struct mig_msg_hdr *h, struct error *err)
{
	int r = read(opaque, h, sizeof(*h));
	if (r)
		return error_setf(err, "the connection ended: %s",
				  r == -EPIPE ? "closed by the peer" : strerror(-r));
	return 0;
}

/* The peer's ERROR text into err. */
static int peer_error(mig_read_fn read, void *opaque, uint64_t len, struct error *err)
{
	char text[MIG_MAX_ERROR + 1];
	if (len > MIG_MAX_ERROR || read(opaque, text, len))
		return error_setf(err, "the peer failed (its message was unreadable)");
	text[len] = '\0';
	for (uint64_t i = 0; i < len; i++)
		if ((unsigned char)text[i] < ' ')
			text[i] = ' ';
	return error_setf(err, "%s", text);
}

int mig_expect(mig_read_fn read, void *opaque, uint32_t type, struct error *err)
{
	struct mig_msg_hdr h;
	if (read_hdr(read, opaque, &h, err))
		return -EINVAL;
	if (h.type == MIG_ERROR)
		return peer_error(read, opaque, h.len, err);
	if (h.type != type || h.len != 0)
		return error_setf(err, "expected %s, got %s (type %u, %llu bytes)",
				  mig_msg_name(type), mig_msg_name(h.type), h.type,
				  (unsigned long long)h.len);
	return 0;
}

#define POPULATE_PAGES 256 /* 1 MiB */

static int receive_pages(struct mig_receiver *rx, const struct mig_msg_hdr *h, struct error *err)
{
	uint64_t first, n = (h->len - 8) / MIG_PAGE, total = rx->ram_size / MIG_PAGE;
	if (h->len < 8 + MIG_PAGE || (h->len - 8) % MIG_PAGE || n > MIG_MAX_RUN)
		return error_setf(err, "PAGES: %llu bytes is not a run of 1 to %u pages",
				  (unsigned long long)h->len, MIG_MAX_RUN);
	if (rx->read(rx->opaque, &first, sizeof(first)))
		return error_setf(err, "the connection ended inside a PAGES message");
	if (first >= total || n > total - first)
		return error_setf(err, "PAGES: pages %llu+%llu lie outside the guest's %llu",
				  (unsigned long long)first, (unsigned long long)n,
				  (unsigned long long)total);
	/* Fresh guest memory: one call maps a slice's pages, rather than a
	 * fault per page under the copy (best effort: faults still work); in
	 * slices, so the source's next bytes arrive while one is mapped. */
	for (uint64_t done = 0; done < n; done += POPULATE_PAGES) {
		uint64_t k = n - done < POPULATE_PAGES ? n - done : POPULATE_PAGES;
		uint8_t *p = rx->ram + (first + done) * MIG_PAGE;
		(void)madvise(p, k * MIG_PAGE, MADV_POPULATE_WRITE);
		if (rx->read(rx->opaque, p, k * MIG_PAGE))
			return error_setf(err, "the connection ended inside a PAGES message");
	}
	rx->pages += n;
	return 0;
}

static int receive_zero(struct mig_receiver *rx, const struct mig_msg_hdr *h, struct error *err)
{
	uint64_t run[2], total = rx->ram_size / MIG_PAGE;
	if (h->len != sizeof(run) || rx->read(rx->opaque, run, sizeof(run)))
		return error_setf(err, "ZERO: malformed (%llu bytes)", (unsigned long long)h->len);
	if (run[0] >= total || run[1] > total - run[0])
		return error_setf(err, "ZERO: pages %llu+%llu lie outside the guest's %llu",
				  (unsigned long long)run[0], (unsigned long long)run[1],
				  (unsigned long long)total);
	/* Reading a never-touched page maps the shared zero page; writing it
	 * would allocate memory for nothing. */
	for (uint64_t p = run[0]; p < run[0] + run[1]; p++)
		if (!gm_page_is_zero(rx->ram + p * MIG_PAGE))
			memset(rx->ram + p * MIG_PAGE, 0, MIG_PAGE);
	rx->zero_pages += run[1];
	return 0;
}

static int receive_state(struct mig_receiver *rx, const struct mig_msg_hdr *h, uint8_t **state,
			 uint64_t *state_len, struct error *err)
{
	if (h->len < 64 || h->len > MIG_MAX_STATE)
		return error_setf(err, "STATE: %llu bytes (at most %llu)",
				  (unsigned long long)h->len, (unsigned long long)MIG_MAX_STATE);
	uint8_t *buf = malloc(h->len);
	if (!buf)
		return error_setf(err, "out of memory for the VM's state");
	if (rx->read(rx->opaque, buf, h->len)) {
		free(buf);
		return error_setf(err, "the connection ended inside the VM's state");
	}
	*state = buf;
	*state_len = h->len;
	return 0;
}

int mig_receive_memory(struct mig_receiver *rx, uint8_t **state, uint64_t *state_len,
		       struct error *err)
{
	for (;;) {
		struct mig_msg_hdr h;
		if (read_hdr(rx->read, rx->opaque, &h, err))
			return -EINVAL;
		rx->bytes += sizeof(h) + h.len;
		int r;
		switch (h.type) {
		case MIG_PAGES:
			r = receive_pages(rx, &h, err);
			break;
		case MIG_ZERO:
			r = receive_zero(rx, &h, err);
			break;
		case MIG_STATE:
			return receive_state(rx, &h, state, state_len, err);
		case MIG_ERROR:
			return peer_error(rx->read, rx->opaque, h.len, err);
		default:
			return error_setf(err, "unexpected %s message (type %u) among the pages",
					  mig_msg_name(h.type), h.type);
		}
		if (r)
			return r;
	}
}
