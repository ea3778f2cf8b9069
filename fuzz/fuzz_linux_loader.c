/* libFuzzer target: a hostile kernel image (and initrd/cmdline) handed to the
 * loader: headers, offsets, ELF program headers, compressed payloads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boot/linux_image.h"

#define RAM_SIZE (48u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	if (!ram)
		ram = malloc(RAM_SIZE);
	if (size < 2)
		return 0;
	/* First byte: flags; the rest is the kernel file. */
	uint8_t flags = data[0];
	struct linux_ram r = {ram, RAM_SIZE, (flags & 1) ? (1ull << 30) : 0};
	static const uint8_t initrd[4096] = {1};
	struct linux_boot b = {data + 1,
			       size - 1,
			       (flags & 2) ? initrd : NULL,
			       (flags & 2) ? sizeof(initrd) : 0,
			       "console=ttyS0",
			       (flags & 4) != 0};
	struct linux_entry e;
	struct error err = {0};
	if (linux_load(&r, &b, &e, &err) == 0) {
		/* Whatever was accepted lies inside RAM. */
		if (e.kernel_end > RAM_SIZE || e.rip < e.kernel_start || e.rip >= e.kernel_end)
			abort();
	}
	return 0;
}
