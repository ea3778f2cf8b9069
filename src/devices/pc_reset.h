/* The PC's ways to reset: the keyboard controller's pulse (port 0x64, 0xfe)
 * and the reset control register (port 0xcf9). Both end the VM with
 * VM_EXIT_RESET; neither holds state. */
#ifndef KVMHOST_PC_RESET_H
#define KVMHOST_PC_RESET_H

#include "devices/device.h"

#define I8042_DATA_PORT 0x60
#define I8042_PORTS	5 /* 0x60..0x64 */
#define RST_CNT_PORT	0xcf9

/* Both take the `struct device_host` as their device. */
extern const struct device_ops pc_reset_i8042_ops;
extern const struct device_ops pc_reset_rst_cnt_ops;

#endif
