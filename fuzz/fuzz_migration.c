/* libFuzzer target: a hostile migration source. The input is the stream a
 * destination reads: HELLO, then pages and zero runs into a small guest
 * memory, then the VM's state, which is checked as a snapshot's sections
 * are. Nothing may be read or written outside the input and that memory. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migration/stream.h"
#include "snapshot/format.h"

#define RAM_PAGES 64

struct input {
	const uint8_t *data;
	size_t size, off;
};

static int read_input(void *opaque, void *buf, size_t n)
{
	struct input *in = opaque;
	if (n > in->size - in->off)
		return -32; /* -EPIPE: the peer closed */
	memcpy(buf, in->data + in->off, n);
	in->off += n;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t ram[RAM_PAGES * MIG_PAGE];
	static struct snap_index idx;
	struct input in = {data, size, 0};
	struct mig_msg_hdr h;
	struct mig_hello hello;
	struct error err = {0};
	if (read_input(&in, &h, sizeof(h)) || h.type != MIG_HELLO || h.len > size - in.off)
		return 0;
	const uint8_t *payload = data + in.off;
	in.off += h.len;
	if (mig_hello_parse(payload, h.len, &hello, &err))
		return 0;
	struct mig_receiver rx = {ram, sizeof(ram), read_input, &in, 0, 0, 0};
	uint8_t *state = NULL;
	uint64_t len = 0;
	if (mig_receive_memory(&rx, &state, &len, &err))
		return 0;
	struct snap_header sh = {0};
	if (len >= sizeof(sh))
		memcpy(&sh, state, sizeof(sh));
	uint64_t file_size = sh.memory_offset == len && sh.memory_size < (1ull << 40)
				     ? len + sh.memory_size
				     : len;
	(void)snap_parse(state, len, file_size, &idx, &err);
	free(state);
	return 0;
}
