/* libFuzzer target: a hostile guest driving virtio-rng over virtio-mmio
 * (virtio_script.c): buffers it may not write, chains past the end of
 * guest memory, more than a request's worth. */
#include <stdint.h>

#include "virtio/rng.h"
#include "virtio_script.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct virtio_rng rng;
	fuzz_virtio_mmio(&virtio_rng_ops, &rng, data, size);
	return 0;
}
