/* The PC's two reset paths, as stateless devices on the port I/O bus: 0xfe
 * to the i8042 command port, or RST_CPU to port 0xcf9, ends the VM with
 * VM_EXIT_RESET. The i8042's status reads as empty, so a driver that waits
 * on it never waits. */
#include "devices/pc_reset.h"

#include <string.h>

#define I8042_CMD_OFFSET  (0x64 - I8042_DATA_PORT)
#define I8042_PULSE_RESET 0xfe
#define RST_CNT_RST_CPU	  0x04

static void i8042_access(void *dev, unsigned vcpu, uint64_t offset, uint8_t *data, uint32_t len,
			 bool is_write)
{
	(void)vcpu;
	if (!is_write) {
		/* Status: output empty, input empty - nothing to wait for. */
		memset(data, 0, len);
		return;
	}
	if (offset == I8042_CMD_OFFSET && len == 1 && data[0] == I8042_PULSE_RESET)
		device_request_exit(dev, VM_EXIT_RESET, 0);
}

static void rst_cnt_access(void *dev, unsigned vcpu, uint64_t offset, uint8_t *data, uint32_t len,
			   bool is_write)
{
	(void)vcpu;
	(void)offset;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if (data[0] & RST_CNT_RST_CPU)
		device_request_exit(dev, VM_EXIT_RESET, 0);
}

const struct device_ops pc_reset_i8042_ops = {.name = "i8042", .access = i8042_access};
const struct device_ops pc_reset_rst_cnt_ops = {.name = "reset-control", .access = rst_cnt_access};
