/* libFuzzer target: a hostile snapshot file. The input is the file's bytes
 * before the memory image; the parser must refuse what is wrong without
 * reading outside them, and whatever it accepts is walked the way restore
 * walks it (the config section, and every vCPU's part headers). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/format.h"
#include "util/state.h"

static void walk_vcpu(const uint8_t *p, uint64_t len)
{
	struct state_reader r = state_reader_init(p, len);
	uint32_t parts = state_get_u32(&r);
	for (uint32_t i = 0; i < parts && !r.err; i++) {
		state_get_u32(&r); /* tag */
		uint32_t n = state_get_u32(&r);
		if (!state_check(&r, n <= r.len - r.off))
			break;
		r.off += n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct snap_index idx;
	struct error err = {0};
	/* The file is the input followed by a memory image of the size the
	 * header claims, as far as the parser can tell. */
	uint64_t file_size = size;
	if (size >= sizeof(struct snap_header)) {
		struct snap_header h;
		memcpy(&h, data, sizeof(h));
		if (h.memory_offset == size && h.memory_size < (1ull << 40))
			file_size = size + h.memory_size;
	}
	if (snap_parse(data, size, file_size, &idx, &err))
		return 0;
	struct state_reader r = state_reader_init(idx.config, idx.config_len);
	uint8_t buf[64];
	while (!r.err)
		state_get(&r, buf, sizeof(buf));
	for (uint32_t i = 0; i < idx.nr_vcpus; i++)
		walk_vcpu(idx.vcpu[i], idx.vcpu_len[i]);
	return 0;
}
