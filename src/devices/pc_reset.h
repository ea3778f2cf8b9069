/* The PC's ways to reset and power off: the keyboard controller's pulse
 * (port 0x64, 0xfe), the reset control register (port 0xcf9), and the ACPI
 * PM1a registers (SLP_TYP S5 + SLP_EN powers off). Also swallows the POST
 * port 0x80 that Linux uses as an I/O delay. */
#ifndef KVMHOST_RESET_DEV_H
#define KVMHOST_RESET_DEV_H

struct vm;

int reset_dev_register(struct vm *vm);

#endif
