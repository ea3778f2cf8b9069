/* libFuzzer target: a hostile guest driving virtio-blk over virtio-mmio
 * (virtio_script.c), on a 64 KiB disk in a memfd. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "virtio/blk.h"
#include "virtio_script.h"

#define DISK_BYTES (64 * 1024)

static struct virtio_blk blk;
static bool opened;

static void open_disk(void)
{
	int fd = memfd_create("fuzz-disk", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, DISK_BYTES) < 0)
		abort();
	static char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct disk_spec spec = {.path = path};
	struct error err = {0};
	if (virtio_blk_open(&blk, &spec, &err))
		abort();
	close(fd); /* blk has its own descriptor */
	opened = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!opened)
		open_disk();
	fuzz_virtio_mmio(&virtio_blk_ops, &blk, data, size);
	return 0;
}
